/* run_local.h — runs a grid's jobs as local processes, on GPU or CPU slots.
 *
 * One event loop: start jobs in order on free slots (after the GPU-busy check), reap them,
 * enforce timeouts, print status, handle SIGINT/SIGTERM. Each job is its own process group
 * running `/bin/sh -c COMMAND`, with stdout+stderr in its log and CUDA_VISIBLE_DEVICES (the
 * GPU's UUID, or index), CUDA_DEVICE_ORDER=PCI_BUS_ID, PYTHONUNBUFFERED=1, CLIPGRID_CONFIG_ID
 * and CLIPGRID_GPU in its environment (CPU slots: CUDA_VISIBLE_DEVICES="" and OMP_NUM_THREADS
 * = cores / slots). On SIGINT/SIGTERM no job is started any more, every job's group gets
 * SIGTERM, then SIGKILL after the grace period (a second signal kills at once); no process of
 * any job outlives the launcher.
 *
 * GPU busy check: every poll interval the launcher reads each GPU's utilization and keeps the
 * last `util_samples` readings. A free slot whose GPU has no job of ours and whose average is
 * above the threshold is not used; once a slot has been held back that way for
 * gpu_wait_timeout seconds, the next job starts on it anyway, with a warning in its log.
 */
#ifndef CLIPGRID_GRID_RUN_LOCAL_H
#define CLIPGRID_GRID_RUN_LOCAL_H

#include "grid/job.h"
#include "grid/nvml.h"
#include "grid/sched.h"

typedef struct {
    int ngpus;                  /* usable GPUs (0 in CPU mode) */
    const int *gpu_index;       /* NVML indices */
    const char (*gpu_uuid)[96]; /* UUIDs ("" when unknown) */
    int cpu_slots;              /* > 0: CPU mode with this many slots */
    int jobs_per_gpu;
    int max_parallel;           /* 0: no cap beyond the slots */
    double util_threshold;      /* percent; >= 100 disables the check */
    double gpu_wait_timeout;    /* seconds */
    double poll_interval;       /* seconds between utilization readings */
    int util_samples;
    double timeout;             /* per job, seconds; 0: none */
    double kill_grace;          /* seconds between TERM and KILL */
    double status_interval;     /* seconds between status blocks; 0: none */
    int retries;
    sched_order_kind order;
    const char *log_dir, *out_dir;
    const char *command_template;   /* NULL: the default `clipgrid train ...` command */
    const char *self_exe;           /* path of this clipgrid binary, for the default command */
    char **extra_args;
    int n_extra;
    nvml_session *nvml;         /* NULL in CPU mode */
    int cores;                  /* for OMP_NUM_THREADS on CPU slots */
} run_options;

/* The command line of one job on GPU `gpu` (-1: CPU) with its log (malloc()ed). */
char *run_job_command(const run_options *o, const job_record *job, int gpu, const char *log_path);

/* Run every job in state JOB_PENDING; others are left as they are. *interrupted is set when a
 * signal stopped the grid. Returns CG_OK (the outcome of each job is in jobs[]). */
int run_local(const run_options *o, job_record *jobs, int n, int *interrupted);

#endif
