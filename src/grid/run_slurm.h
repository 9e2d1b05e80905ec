/* run_slurm.h — runs a grid as one Slurm job array (--backend slurm).
 *
 * The pending configurations become the tasks 0..N-1 of one `sbatch --array=0-(N-1)%K` with
 * `--gres=gpu:1` per task (partition, account, time, memory and any other sbatch option from
 * the flags or the grid file's "slurm" object). Files, under {log_dir}/slurm/{YYYYMMDD_HHMMSS}/:
 *   job.sh          the batch script (also what --dry-run prints)
 *   task_N.log      symlink to the config's log {log_dir}/{id}_slurm_{stamp}.log: Slurm's
 *                   --output=task_%a.log, so the Slurm output file *is* the config's log
 *   task_N.exit     written by the task as it ends: exit status, CUDA_VISIBLE_DEVICES, node
 *   array_job_id    the array's job id
 * The launcher follows the array with `scontrol -o show job ID` (`squeue` for the live counts,
 * `sacct` once scontrol has forgotten a task, when accounting exists; task_N.exit last), prints
 * [start]/[done] lines and status blocks, appends each outcome to ledger.tsv and writes the same
 * summary as the local backend, with Slurm's states (COMPLETED, FAILED, TIMEOUT,
 * OUT_OF_MEMORY, CANCELLED, PREEMPTED, NODE_FAIL). On SIGINT it asks whether to scancel the
 * array (on a terminal; otherwise, and on SIGTERM, it cancels), then waits for the tasks to end.
 */
#ifndef CLIPGRID_GRID_RUN_SLURM_H
#define CLIPGRID_GRID_RUN_SLURM_H

#include "grid/job.h"
#include "grid/run_local.h"

typedef struct {
    const char *partition, *account, *time, *mem;  /* NULL: not given */
    const char *gres;            /* NULL: "gpu:1" (or none with --gpus cpu); "" or "none": none */
    int cpus_per_task;           /* 0: Slurm's default */
    const char *job_name;        /* NULL: "clipgrid" */
    const char *const *sbatch_args; /* extra sbatch options, each one argument ("--qos=high") */
    int n_sbatch_args;
    double poll_interval;        /* seconds between scontrol polls (default 5) */
    const char *on_interrupt;    /* "ask" (default), "cancel", "keep" */
} slurm_options;

/* One task as Slurm reports it. */
typedef struct {
    long task;                   /* array task id; -1 for an aggregated record ("3-5,7%2") */
    char tasks[128];             /* the task id field as Slurm wrote it */
    char state[24];              /* "PENDING", "RUNNING", "COMPLETED", ... (first word) */
    int exit_code, signal;       /* ExitCode=a:b */
    char node[64];
    char job_id[160];            /* "12345_3" */
    double start, end;           /* epoch seconds; 0 when unknown */
} slurm_task_info;

/* Parse one line of `scontrol -o show job` (key=value pairs). Returns 1 when it is a task of
 * array `array_id` ("" matches any), 0 otherwise. */
int slurm_parse_scontrol_line(const char *line, const char *array_id, slurm_task_info *t);
/* Parse one line of `sacct -n -P -X -o JobID,State,ExitCode,Start,End,NodeList`. */
int slurm_parse_sacct_line(const char *line, const char *array_id, slurm_task_info *t);
/* Whether task `t` is in an array task list such as "0-5%4", "1,3-4", "[2-3]". */
int slurm_task_list_contains(const char *list, long t);
/* Map a Slurm state to an outcome. 1: terminal (*status set), 0: still pending or running. */
int slurm_state_outcome(const char *state, job_status *status);

/* The batch script for the jobs in run_order[0..ntasks) (task k runs jobs[run_order[k]]).
 * `dir` is the submission directory, `stamp` its time stamp (log names). malloc()ed. */
char *slurm_batch_script(const run_options *o, const slurm_options *so, const job_record *jobs,
                         const int *run_order, int ntasks, const char *dir, const char *stamp);

/* Print what --dry-run shows for --backend slurm: the sbatch command and the batch script. */
void slurm_print_dry_run(const run_options *o, const slurm_options *so, job_record *jobs, int n);

/* Submit every JOB_PENDING job as one array and follow it to the end. */
int run_slurm(const run_options *o, const slurm_options *so, job_record *jobs, int n, int *interrupted);

#endif
