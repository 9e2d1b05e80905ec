/* job.h — one configuration's run as the launcher sees it: state, outcome, where its files are. */
#ifndef CLIPGRID_GRID_JOB_H
#define CLIPGRID_GRID_JOB_H

#include <cjson/cJSON.h>
#include <sys/types.h>

#include "grid/spec.h"

typedef enum {
    JOB_PENDING,       /* not started yet */
    JOB_RUNNING,
    JOB_SUCCEEDED,     /* exit status 0 */
    JOB_FAILED,        /* exit status != 0 */
    JOB_SIGNALED,      /* killed by a signal it did not get from us (segfault, OOM killer, ...) */
    JOB_TIMEOUT,       /* ran past --timeout; we stopped it */
    JOB_INTERRUPTED,   /* stopped because the launcher was interrupted */
    JOB_NOT_STARTED,   /* the launcher was interrupted before starting it */
    JOB_SKIPPED,       /* --resume / --retry-failed: nothing to do */
    JOB_START_FAILED,  /* could not be started (log file, fork) */
    /* Slurm outcomes without a local equivalent (--backend slurm) */
    JOB_OUT_OF_MEMORY, /* Slurm OUT_OF_MEMORY: killed at its memory limit (a failure) */
    JOB_CANCELLED,     /* Slurm CANCELLED: scancel (rerun by --resume) */
    JOB_PREEMPTED,     /* Slurm PREEMPTED (rerun by --resume) */
    JOB_NODE_FAIL,     /* Slurm NODE_FAIL / BOOT_FAIL: the node let it down (rerun by --resume) */
    JOB_LOST,          /* Slurm no longer knows the task and it left no exit record (rerun by --resume) */
} job_status;

/* "SUCCEEDED", "FAILED", ... */
const char *job_status_name(job_status s);
/* Parse a name written by job_status_name; -1 when unknown. */
int job_status_parse(const char *name);
/* A finished attempt that counts as a failure (retried, rerun by --retry-failed). */
int job_status_is_failure(job_status s);

typedef struct {
    const grid_config *cfg;
    job_status status;
    int exit_code;        /* JOB_FAILED / JOB_SUCCEEDED */
    int signal;           /* JOB_SIGNALED / TIMEOUT / INTERRUPTED: the signal that ended it */
    int attempts;         /* started attempts */
    int gpu;              /* NVML index of the last attempt, -1 for CPU, -2 never placed */
    char uuid[96];
    int slot;
    pid_t pid;            /* while running: also the process group id */
    double start_time;    /* epoch seconds of the last attempt's start */
    double end_time;
    double deadline;      /* --timeout: when to stop it (0: none) */
    double kill_at;       /* after TERM: when to send KILL (0: not stopping) */
    int stop_reason;      /* JOB_TIMEOUT or JOB_INTERRUPTED while stopping, else 0 */
    int gpu_wait_s;       /* seconds waited for a busy GPU before the last start */
    int forced_start;     /* started on a busy GPU after --gpu-wait-timeout */
    char *log_path;       /* last attempt's log */
    char *out_dir;        /* {out_dir}/{id} */
    char *command;        /* last attempt's command line */
    cJSON *result;        /* the job's result.json, when it left one */
    /* --backend slurm */
    char sched_state[24]; /* Slurm's state ("COMPLETED", "FAILED", "CANCELLED", ...); "" locally */
    char sched_id[48];    /* array task "12345_3" */
    char node[64];        /* node it ran on */
    char gpu_env[96];     /* CUDA_VISIBLE_DEVICES the task saw */
} job_record;

#endif
