#define _XOPEN_SOURCE 700  /* strptime */
#include "grid/run_slurm.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "grid/i18n.h"
#include "grid/ledger.h"
#include "grid/sched.h"
#include "grid/summary.h"
#include "grid/template.h"

/* Stands for {gpu} while the command is built; replaced by "$CLIPGRID_GPU" (set by the task). */
#define GPU_TOKEN "@CLIPGRID_GPU@"

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* ------------------------------------------------------------------ parsing Slurm's output */

/* Value of `key=` in a line of space-separated key=value pairs, into buf. 1 when found. */
static int kv_get(const char *line, const char *key, char *buf, size_t n) {
    size_t kl = strlen(key);
    for (const char *p = line; (p = strstr(p, key)) != NULL; p += kl) {
        if ((p == line || p[-1] == ' ') && p[kl] == '=') {
            const char *v = p + kl + 1;
            size_t len = strcspn(v, " \n");
            if (len >= n) len = n - 1;
            memcpy(buf, v, len);
            buf[len] = 0;
            return 1;
        }
    }
    return 0;
}

static double parse_slurm_time(const char *s) {
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end) return 0;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    return t == (time_t)-1 ? 0 : (double)t;
}

static void first_word(const char *s, char *buf, size_t n) {
    size_t len = strcspn(s, " \n+");
    if (len >= n) len = n - 1;
    memcpy(buf, s, len);
    buf[len] = 0;
}

static void parse_exit(const char *s, int *code, int *sig) {
    *code = *sig = 0;
    if (sscanf(s, "%d:%d", code, sig) < 1) *code = 0;
}

static void set_task_field(slurm_task_info *t, const char *tasks) {
    snprintf(t->tasks, sizeof t->tasks, "%.127s", tasks);
    char *end;
    long v = strtol(tasks, &end, 10);
    t->task = (end != tasks && *end == 0 && v >= 0) ? v : -1;
}

int slurm_parse_scontrol_line(const char *line, const char *array_id, slurm_task_info *t) {
    char buf[256];
    memset(t, 0, sizeof *t);
    t->task = -1;
    if (!kv_get(line, "ArrayJobId", buf, sizeof buf)) return 0;
    if (array_id && *array_id && strcmp(buf, array_id) != 0) return 0;
    char arr[24];
    snprintf(arr, sizeof arr, "%.23s", buf);
    if (!kv_get(line, "ArrayTaskId", buf, sizeof buf)) return 0;
    set_task_field(t, buf);
    if (t->task >= 0) snprintf(t->job_id, sizeof t->job_id, "%s_%ld", arr, t->task);
    else snprintf(t->job_id, sizeof t->job_id, "%s", arr);
    if (kv_get(line, "JobState", buf, sizeof buf)) first_word(buf, t->state, sizeof t->state);
    if (kv_get(line, "ExitCode", buf, sizeof buf)) parse_exit(buf, &t->exit_code, &t->signal);
    if (kv_get(line, "NodeList", buf, sizeof buf) && strcmp(buf, "(null)") != 0)
        snprintf(t->node, sizeof t->node, "%.63s", buf);
    if (kv_get(line, "StartTime", buf, sizeof buf)) t->start = parse_slurm_time(buf);
    if (kv_get(line, "EndTime", buf, sizeof buf)) t->end = parse_slurm_time(buf);
    return 1;
}

int slurm_parse_sacct_line(const char *line, const char *array_id, slurm_task_info *t) {
    memset(t, 0, sizeof *t);
    t->task = -1;
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", line);
    copy[strcspn(copy, "\n")] = 0;
    char *f[6] = {0};
    int nf = 0;
    for (char *p = copy; nf < 6;) {
        f[nf++] = p;
        char *bar = strchr(p, '|');
        if (!bar) break;
        *bar = 0;
        p = bar + 1;
    }
    if (nf < 3) return 0;
    char *us = strchr(f[0], '_');
    if (!us) return 0;
    *us = 0;
    if (array_id && *array_id && strcmp(f[0], array_id) != 0) return 0;
    char tasks[128];
    snprintf(tasks, sizeof tasks, "%s", us + 1);
    if (tasks[0] == '[') {  /* "[4-5%2]" */
        memmove(tasks, tasks + 1, strlen(tasks));
        tasks[strcspn(tasks, "]")] = 0;
    }
    set_task_field(t, tasks);
    /* a job id longer than the field is cut; the check keeps -Wformat-truncation quiet */
    if (snprintf(t->job_id, sizeof t->job_id, "%s_%s", f[0], us + 1) >= (int)sizeof t->job_id)
        cg_log_debug("sacct job id %s_%s cut to %s", f[0], us + 1, t->job_id);
    first_word(f[1], t->state, sizeof t->state);
    parse_exit(f[2], &t->exit_code, &t->signal);
    if (nf > 3) t->start = parse_slurm_time(f[3]);
    if (nf > 4) t->end = parse_slurm_time(f[4]);
    if (nf > 5 && strcmp(f[5], "None assigned") != 0) snprintf(t->node, sizeof t->node, "%s", f[5]);
    return 1;
}

int slurm_task_list_contains(const char *list, long t) {
    const char *p = list;
    if (*p == '[') p++;
    while (*p && *p != '%' && *p != ']') {
        char *end;
        long lo = strtol(p, &end, 10), hi = lo;
        if (end == p) return 0;
        p = end;
        if (*p == '-') {
            hi = strtol(p + 1, &end, 10);
            p = end;
        }
        if (*p == ':') {  /* step: lo-hi:s */
            long step = strtol(p + 1, &end, 10);
            p = end;
            if (step > 0 && t >= lo && t <= hi && (t - lo) % step == 0) return 1;
        } else if (t >= lo && t <= hi) {
            return 1;
        }
        if (*p == ',') p++;
    }
    return 0;
}

int slurm_state_outcome(const char *state, job_status *st) {
    static const struct { const char *name; job_status status; } map[] = {
        {"COMPLETED", JOB_SUCCEEDED},       {"FAILED", JOB_FAILED},          {"TIMEOUT", JOB_TIMEOUT},
        {"DEADLINE", JOB_TIMEOUT},          {"OUT_OF_MEMORY", JOB_OUT_OF_MEMORY}, {"CANCELLED", JOB_CANCELLED},
        {"PREEMPTED", JOB_PREEMPTED},       {"NODE_FAIL", JOB_NODE_FAIL},    {"BOOT_FAIL", JOB_NODE_FAIL},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (!strcmp(state, map[i].name)) {
            *st = map[i].status;
            return 1;
        }
    return 0;  /* PENDING, RUNNING, CONFIGURING, COMPLETING, SUSPENDED, REQUEUED, ... */
}

/* ------------------------------------------------------------------ running Slurm's commands */

/* Run argv (PATH lookup), stdout+stderr into *out (malloc()ed). Returns the exit status, 127 when
 * the program is not there, -1 when it could not be started. */
static int run_capture(const char *const argv[], char **out) {
    *out = NULL;
    int pfd[2];
    if (pipe(pfd) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) { dup2(devnull, 0); close(devnull); }
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0, cap = 4096;
    char *buf = cg_xmalloc(cap);
    for (;;) {
        if (cap - len < 2048) buf = cg_xrealloc(buf, cap *= 2);
        ssize_t r = read(pfd[0], buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    buf[len] = 0;
    close(pfd[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {}
    *out = buf;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
}

static void trim_newlines(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ')) s[--n] = 0;
}

/* ------------------------------------------------------------------ the batch script */

static char *absolute(const char *path) {
    if (path[0] == '/') return cg_xstrdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return cg_xstrdup(path);
    return cg_path_join(cwd, path);
}

static char *log_name(const job_record *j, const char *stamp) {
    return cg_xasprintf("%s_slurm_%s.log", j->cfg->id, stamp);
}

/* The job's command with {gpu} left to the task. */
static char *slurm_job_command(const run_options *o, const slurm_options *so, const job_record *j,
                               const char *log_path) {
    int cpu = o->cpu_slots > 0 || (so->gres && (!so->gres[0] || !strcmp(so->gres, "none")));
    char *cmd = run_job_command(o, j, cpu ? -1 : 0, log_path);
    if (!o->command_template) return cmd;
    /* a template: expand again with a token for {gpu}, then let the shell fill it in */
    template_values v = {
        .image_encoder = j->cfg->image_encoder, .text_encoder = j->cfg->text_encoder, .id = j->cfg->id,
        .out_dir = j->out_dir, .gpu = GPU_TOKEN, .log = log_path, .train = j->cfg->train,
        .extra_args = o->extra_args, .n_extra = o->n_extra,
    };
    free(cmd);
    char *t = template_expand(o->command_template, &v);
    size_t tl = strlen(GPU_TOKEN);
    size_t count = 0;
    for (const char *p = t; (p = strstr(p, GPU_TOKEN)) != NULL; p += tl) count++;
    if (!count) return t;
    const char *rep = "\"$CLIPGRID_GPU\"";
    char *out = cg_xmalloc(strlen(t) + count * strlen(rep) + 1), *w = out;
    for (const char *p = t;;) {
        const char *q = strstr(p, GPU_TOKEN);
        if (!q) { strcpy(w, p); break; }
        memcpy(w, p, (size_t)(q - p));
        w += q - p;
        strcpy(w, rep);
        w += strlen(rep);
        p = q + tl;
    }
    free(t);
    return out;
}

static const char *effective_gres(const run_options *o, const slurm_options *so) {
    if (so->gres) return (!so->gres[0] || !strcmp(so->gres, "none")) ? NULL : so->gres;
    return o->cpu_slots > 0 ? NULL : "gpu:1";
}

static int array_limit(const run_options *o, int ntasks) {
    return o->max_parallel > 0 && o->max_parallel < ntasks ? o->max_parallel : ntasks;
}

typedef struct { char *s; size_t len, cap; } sbuf;
static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->s && b->len + (size_t)n < b->cap) { b->len += (size_t)n; return; }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->s = cg_xrealloc(b->s, b->cap);
        if (b->len == 0) b->s[0] = 0;
    }
}

char *slurm_batch_script(const run_options *o, const slurm_options *so, const job_record *jobs,
                         const int *run_order, int ntasks, const char *dir, const char *stamp) {
    sbuf b = {0};
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
    const char *gres = effective_gres(o, so);
    sb_add(&b, "#!/bin/sh\n");
    sb_add(&b, "# clipgrid run --backend slurm: %d configuration%s, one per array task\n", ntasks,
           ntasks == 1 ? "" : "s");
    sb_add(&b, "#SBATCH --job-name=%s\n", so->job_name ? so->job_name : "clipgrid");
    sb_add(&b, "#SBATCH --array=0-%d%%%d\n", ntasks - 1, array_limit(o, ntasks));
    if (gres) sb_add(&b, "#SBATCH --gres=%s\n", gres);
    if (so->cpus_per_task > 0) sb_add(&b, "#SBATCH --cpus-per-task=%d\n", so->cpus_per_task);
    if (so->partition) sb_add(&b, "#SBATCH --partition=%s\n", so->partition);
    if (so->account) sb_add(&b, "#SBATCH --account=%s\n", so->account);
    if (so->time) sb_add(&b, "#SBATCH --time=%s\n", so->time);
    else if (o->timeout > 0) sb_add(&b, "#SBATCH --time=%d\n", (int)ceil(o->timeout / 60.0));
    if (so->mem) sb_add(&b, "#SBATCH --mem=%s\n", so->mem);
    for (int i = 0; i < so->n_sbatch_args; i++) sb_add(&b, "#SBATCH %s\n", so->sbatch_args[i]);
    sb_add(&b, "#SBATCH --output=%s/task_%%a.log\n", dir);
    sb_add(&b, "#SBATCH --open-mode=append\n");
    sb_add(&b, "#SBATCH --chdir=%s\n", cwd);
    char *qdir = shell_quote(dir);
    sb_add(&b, "# task_N.log -> the configuration's log in the log directory; task_N.exit: its exit status\n");
    sb_add(&b, "D=%s\nT=\"$SLURM_ARRAY_TASK_ID\"\ncase \"$T\" in\n", qdir);
    free(qdir);
    for (int k = 0; k < ntasks; k++) {
        const job_record *j = &jobs[run_order[k]];
        char *name = log_name(j, stamp);
        char *log = cg_path_join(o->log_dir, name);
        char *cmd = slurm_job_command(o, so, j, log);
        char *qid = shell_quote(j->cfg->id), *qout = shell_quote(j->out_dir), *qcmd = shell_quote(cmd);
        sb_add(&b, "%d) ID=%s\n   OUT=%s\n   CMD=%s ;;\n", k, qid, qout, qcmd);
        free(qid); free(qout); free(qcmd); free(cmd); free(log); free(name);
    }
    sb_add(&b, "*) echo \"clipgrid: no configuration for array task $T\" >&2; exit 2 ;;\nesac\n");
    sb_add(&b,
           "export CLIPGRID_CONFIG_ID=\"$ID\" CLIPGRID_OUT_DIR=\"$OUT\" CLIPGRID_GPU=\"${CUDA_VISIBLE_DEVICES-}\"\n"
           "export CUDA_DEVICE_ORDER=PCI_BUS_ID PYTHONUNBUFFERED=1\n"
           "[ -n \"${SLURM_CPUS_PER_TASK-}\" ] && export OMP_NUM_THREADS=\"$SLURM_CPUS_PER_TASK\"\n"
           "printf '# clipgrid run: config %%s (Slurm array task %%s_%%s)\\n# command: %%s\\n"
           "# gpu: CUDA_VISIBLE_DEVICES=%%s\\n# host: %%s\\n# start: %%s\\n# out_dir: %%s\\n# ---\\n' \\\n"
           "  \"$ID\" \"$SLURM_ARRAY_JOB_ID\" \"$T\" \"$CMD\" \"${CUDA_VISIBLE_DEVICES-}\" \"$(hostname)\" "
           "\"$(date '+%%Y-%%m-%%d %%H:%%M:%%S %%z')\" \"$OUT\"\n"
           "if mkdir -p \"$OUT\"; then sh -c \"$CMD\" </dev/null; rc=$?; else rc=1; fi\n"
           "printf '%%s\\t%%s\\t%%s\\n' \"$rc\" \"${CUDA_VISIBLE_DEVICES-}\" \"$(hostname)\" >\"$D/task_$T.exit.tmp\" "
           "&& mv \"$D/task_$T.exit.tmp\" \"$D/task_$T.exit\"\n"
           "exit $rc\n");
    return b.s;
}

/* Pending jobs in start order (longest first unless --order grid). */
static int pending_order(const run_options *o, job_record *jobs, int n, int *run) {
    double *costs = cg_xcalloc((size_t)n + 1, sizeof *costs);
    int *order = cg_xcalloc((size_t)n + 1, sizeof *order);
    for (int i = 0; i < n; i++) costs[i] = jobs[i].cfg->cost;
    sched_order(costs, n, o->order, order);
    int m = 0;
    for (int k = 0; k < n; k++)
        if (jobs[order[k]].status == JOB_PENDING) run[m++] = order[k];
    free(costs);
    free(order);
    return m;
}

static void stamp_now(char *buf, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, n, "%Y%m%d_%H%M%S", &tm);
}

void slurm_print_dry_run(const run_options *o, const slurm_options *so, job_record *jobs, int n) {
    int *run = cg_xcalloc((size_t)n + 1, sizeof *run);
    int m = pending_order(o, jobs, n, run);
    int skipped = 0;
    for (int i = 0; i < n; i++) skipped += jobs[i].status == JOB_SKIPPED;
    printf(ngettext("plan: %d config as one Slurm job array, at most %d at once",
                    "plan: %d configs as one Slurm job array, at most %d at once", (unsigned long)m),
           m, m ? array_limit(o, m) : 0);
    if (skipped) printf(_(" (%d skipped: already done per the ledger)"), skipped);
    printf("\n");
    if (m == 0) {
        printf(_("nothing to submit\n"));
        free(run);
        return;
    }
    char stamp[32];
    stamp_now(stamp, sizeof stamp);
    char *abs_log = absolute(o->log_dir);
    char *sub = cg_xasprintf("%s/slurm/%s", abs_log, stamp);
    printf(_("logs: %s/<id>_slurm_%s.log   outputs: %s/<id>/\n"), o->log_dir, stamp, o->out_dir);
    printf(_("would run: sbatch --parsable %s/job.sh\n"), sub);
    printf("----8<---- %s/job.sh\n", sub);
    char *script = slurm_batch_script(o, so, jobs, run, m, sub, stamp);
    fputs(script, stdout);
    printf("----8<----\n");
    free(script);
    free(sub);
    free(abs_log);
    free(run);
}

/* ------------------------------------------------------------------ following the array */

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(sig_pipe[1], &b, 1) < 0) { /* full: the loop wakes up anyway */ }
    errno = saved;
}

typedef struct {
    int job;             /* index in jobs[] */
    int done;
    int seen_running;
    int misses;          /* polls in which scontrol did not mention the task */
} task_state;

typedef struct {
    const run_options *o;
    const slurm_options *so;
    job_record *jobs;
    task_state *tasks;
    int ntasks;
    char array_id[32];
    char *dir;           /* submission directory */
    int have_sacct;      /* -1 unknown, 0 no accounting, 1 yes */
    int finished;
} follow_state;

static void read_exit_file(follow_state *fs, int k, int *rc, job_record *j) {
    char name[64];
    snprintf(name, sizeof name, "task_%d.exit", k);
    char *path = cg_path_join(fs->dir, name);
    char *text = NULL;
    *rc = -1;
    if (cg_file_exists(path) && cg_file_read(path, &text, NULL) == CG_OK) {
        char *f1 = strchr(text, '\t'), *f2 = f1 ? strchr(f1 + 1, '\t') : NULL;
        *rc = atoi(text);
        if (f1 && f2) {
            *f2 = 0;
            snprintf(j->gpu_env, sizeof j->gpu_env, "%s", f1 + 1);
            char *nl = f2 + 1;
            nl[strcspn(nl, "\n")] = 0;
            if (!j->node[0]) snprintf(j->node, sizeof j->node, "%s", nl);
        }
    }
    free(text);
    free(path);
    if (!j->gpu_env[0] && j->log_path && cg_file_read(j->log_path, &text, NULL) == CG_OK) {
        /* no exit record (cancelled, timed out, ...): the header the task wrote says it */
        const char *key = "\n# gpu: CUDA_VISIBLE_DEVICES=";
        char *g = strstr(text, key);
        if (g) {
            g += strlen(key);
            g[strcspn(g, "\n")] = 0;
            snprintf(j->gpu_env, sizeof j->gpu_env, "%.95s", g);
        }
        free(text);
    }
}

static void mark_started(follow_state *fs, int k, const slurm_task_info *t) {
    task_state *ts = &fs->tasks[k];
    job_record *j = &fs->jobs[ts->job];
    if (ts->seen_running) return;
    ts->seen_running = 1;
    j->status = JOB_RUNNING;
    j->start_time = t->start > 0 ? t->start : now_s();
    snprintf(j->node, sizeof j->node, "%s", t->node);
    printf(_("[start] %s: array task %s on %s, log %s\n"), j->cfg->id, t->job_id, t->node[0] ? t->node : "?",
           j->log_path);
    fflush(stdout);
}

static void finish_task(follow_state *fs, int k, const slurm_task_info *t, job_status st, const char *state) {
    task_state *ts = &fs->tasks[k];
    job_record *j = &fs->jobs[ts->job];
    ts->done = 1;
    fs->finished++;
    j->status = st;
    snprintf(j->sched_state, sizeof j->sched_state, "%s", state);
    if (t) {
        if (t->start > 0) j->start_time = t->start;
        if (t->end > 0) j->end_time = t->end;
        if (t->node[0]) snprintf(j->node, sizeof j->node, "%s", t->node);
        j->exit_code = t->exit_code;
        j->signal = t->signal;
    }
    int rc;
    read_exit_file(fs, k, &rc, j);
    if (!t && rc >= 0) j->exit_code = rc;
    if (j->end_time <= 0) j->end_time = now_s();
    if (j->start_time <= 0) j->start_time = j->end_time;
    char *end;
    long g = strtol(j->gpu_env, &end, 10);
    j->gpu = j->gpu_env[0] && *end == 0 ? (int)g : -2;
    if (j->status == JOB_SUCCEEDED) j->exit_code = 0;
    char status[64], dur[32];
    summary_status_text(j, status, sizeof status);
    summary_duration_text(j->end_time - j->start_time, dur, sizeof dur);
    char *line = cg_xasprintf("\n# end: %s after %s (Slurm job %s)\n", status, dur, j->sched_id);
    if (cg_file_append(j->log_path, line, strlen(line)) != CG_OK) cg_log_warn("%s", cg_error_message());
    free(line);
    summary_load_result(j);
    char *ledger = cg_path_join(fs->o->log_dir, "ledger.tsv");
    if (ledger_append(ledger, j) != CG_OK) cg_log_warn("%s", cg_error_message());
    free(ledger);
    printf(_("[done] %s: %s in %s\n"), j->cfg->id, status, dur);
    fflush(stdout);
}

/* A task scontrol no longer knows: ask sacct (when there is accounting), then its exit file. */
static void settle_forgotten(follow_state *fs, int k) {
    job_record *j = &fs->jobs[fs->tasks[k].job];
    if (fs->have_sacct != 0) {
        const char *argv[] = {"sacct", "-n", "-P", "-X", "-j", j->sched_id, "-o", "JobID,State,ExitCode,Start,End,NodeList",
                              NULL};
        char *out = NULL;
        int rc = run_capture(argv, &out);
        if (rc != 0) fs->have_sacct = 0;
        else {
            fs->have_sacct = 1;
            char *save = NULL;
            for (char *l = strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                slurm_task_info t;
                job_status st;
                if (slurm_parse_sacct_line(l, fs->array_id, &t) && t.task == k && slurm_state_outcome(t.state, &st)) {
                    finish_task(fs, k, &t, st, t.state);
                    free(out);
                    return;
                }
            }
        }
        free(out);
    }
    int rc;
    read_exit_file(fs, k, &rc, j);
    if (rc >= 0) finish_task(fs, k, NULL, rc == 0 ? JOB_SUCCEEDED : JOB_FAILED, rc == 0 ? "COMPLETED" : "FAILED");
    else finish_task(fs, k, NULL, JOB_LOST, "LOST");
}

/* One poll: scontrol for the whole array. Returns 0, or -1 when scontrol failed. */
static int poll_array(follow_state *fs, int *warned) {
    const char *argv[] = {"scontrol", "-o", "show", "job", fs->array_id, NULL};
    char *out = NULL;
    int rc = run_capture(argv, &out);
    int purged = rc != 0 && out && strstr(out, "Invalid job id");
    if (rc != 0 && !purged) {
        trim_newlines(out ? out : (char *)"");
        if (!*warned) cg_log_warn(_("scontrol show job %s failed (exit %d): %s; retrying"), fs->array_id, rc,
                                  out ? out : "");
        *warned = 1;
        free(out);
        return -1;
    }
    *warned = 0;
    int *mentioned = cg_xcalloc((size_t)fs->ntasks + 1, sizeof *mentioned);
    char *save = NULL;
    for (char *l = purged ? NULL : strtok_r(out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        slurm_task_info t;
        if (!slurm_parse_scontrol_line(l, fs->array_id, &t)) continue;
        if (t.task < 0) {  /* aggregated pending record */
            for (int k = 0; k < fs->ntasks; k++)
                if (slurm_task_list_contains(t.tasks, k)) mentioned[k] = 1;
            continue;
        }
        if (t.task >= fs->ntasks) continue;
        int k = (int)t.task;
        mentioned[k] = 1;
        task_state *ts = &fs->tasks[k];
        if (ts->done) continue;
        job_status st;
        if (slurm_state_outcome(t.state, &st)) {
            if (!ts->seen_running && t.start > 0) mark_started(fs, k, &t);
            finish_task(fs, k, &t, st, t.state);
        } else if (!strcmp(t.state, "RUNNING") || !strcmp(t.state, "COMPLETING")) {
            mark_started(fs, k, &t);
        } else if (!strcmp(t.state, "PENDING") && ts->seen_running) {  /* requeued */
            ts->seen_running = 0;
            fs->jobs[ts->job].status = JOB_PENDING;
            printf(_("[requeued] %s: array task %s is pending again\n"), fs->jobs[ts->job].cfg->id, t.job_id);
        }
    }
    for (int k = 0; k < fs->ntasks; k++) {
        if (fs->tasks[k].done) continue;
        if (mentioned[k]) fs->tasks[k].misses = 0;
        else if (++fs->tasks[k].misses >= 2) settle_forgotten(fs, k);
    }
    free(mentioned);
    free(out);
    return 0;
}

static void print_status(follow_state *fs, double now) {
    int running = 0, pending = 0;
    for (int k = 0; k < fs->ntasks; k++) {
        if (fs->tasks[k].done) continue;
        if (fs->tasks[k].seen_running) running++;
        else pending++;
    }
    printf(_("[status] array %s: %d running, %d pending, %d finished\n"), fs->array_id, running, pending,
           fs->finished);
    for (int k = 0; k < fs->ntasks; k++) {
        if (fs->tasks[k].done || !fs->tasks[k].seen_running) continue;
        const job_record *j = &fs->jobs[fs->tasks[k].job];
        char el[32];
        summary_duration_text(now - j->start_time, el, sizeof el);
        printf("  %-40s %-12s %-10s %s\n", j->cfg->id, j->sched_id, j->node, el);
    }
    fflush(stdout);
}

static int scancel_array(const char *array_id) {
    const char *argv[] = {"scancel", array_id, NULL};
    char *out = NULL;
    int rc = run_capture(argv, &out);
    if (rc != 0) {
        trim_newlines(out ? out : (char *)"");
        cg_log_error(_("scancel %s failed (exit %d): %s"), array_id, rc, out ? out : "");
    } else {
        printf(_("[interrupt] cancelled array job %s (scancel %s)\n"), array_id, array_id);
    }
    free(out);
    fflush(stdout);
    return rc;
}

/* 1: cancel, 0: keep running. */
static int ask_cancel(const follow_state *fs, int sig) {
    const char *mode = fs->so->on_interrupt ? fs->so->on_interrupt : "ask";
    if (!strcmp(mode, "cancel")) return 1;
    if (!strcmp(mode, "keep")) return 0;
    if (sig != SIGINT || !isatty(0)) return 1;
    int left = fs->ntasks - fs->finished;
    printf(_("\nCancel Slurm array job %s (%d tasks not finished) with scancel? [y/N] "), fs->array_id, left);
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) return 0;
    return line[0] == 'y' || line[0] == 'Y' || !strncmp(line, "是", strlen("是"));
}

/* Earlier submissions into this log dir whose arrays still have tasks in the queue. */
static int check_earlier_arrays(const char *log_dir) {
    char *sdir = cg_path_join(log_dir, "slurm");
    DIR *d = opendir(sdir);
    int rc = CG_OK;
    if (!d) { free(sdir); return CG_OK; }
    struct dirent *e;
    while (rc == CG_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char *sub = cg_path_join(sdir, e->d_name);
        char *idf = cg_path_join(sub, "array_job_id"), *donef = cg_path_join(sub, "followed");
        char *id = NULL;
        if (!cg_file_exists(donef) && cg_file_exists(idf) && cg_file_read(idf, &id, NULL) == CG_OK) {
            trim_newlines(id);
            const char *argv[] = {"squeue", "-h", "-r", "-j", id, "-o", "%i %T", NULL};
            char *out = NULL;
            int r = run_capture(argv, &out);
            int live = 0;
            if (r == 0)
                for (char *p = out; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                    if (*p && *p != '\n') live++;
            if (live > 0)
                rc = cg_error_set(CG_ERR_STATE,
                                  _("array job %s (submitted from %s) still has %d task(s) queued or running; "
                                    "wait for it or `scancel %s` before submitting this grid again"),
                                  id, sub, live, id);
            free(out);
        }
        free(id); free(idf); free(donef); free(sub);
    }
    closedir(d);
    free(sdir);
    return rc;
}

int run_slurm(const run_options *o, const slurm_options *so, job_record *jobs, int n, int *interrupted) {
    *interrupted = 0;
    int *run = cg_xcalloc((size_t)n + 1, sizeof *run);
    int m = pending_order(o, jobs, n, run);
    if (m == 0) {
        printf(_("nothing to submit: every configuration is done or skipped\n"));
        free(run);
        return CG_OK;
    }
    int rc = cg_mkdir_p(o->log_dir);
    if (!rc) rc = check_earlier_arrays(o->log_dir);
    if (rc) { free(run); return rc; }

    /* the submission directory, the logs' symlinks, the script */
    char stamp[32];
    stamp_now(stamp, sizeof stamp);
    char *abs_log = absolute(o->log_dir);
    char *dir = NULL;
    for (int k = 1; !dir; k++) {
        char *cand = k == 1 ? cg_xasprintf("%s/slurm/%s", abs_log, stamp)
                            : cg_xasprintf("%s/slurm/%s-%d", abs_log, stamp, k);
        if (!cg_file_exists(cand)) dir = cand;
        else free(cand);
    }
    if ((rc = cg_mkdir_p(dir))) goto out;
    for (int k = 0; k < m; k++) {
        job_record *j = &jobs[run[k]];
        char *name = log_name(j, stamp);
        free(j->log_path);
        j->log_path = cg_path_join(o->log_dir, name);
        free(j->command);
        j->command = slurm_job_command(o, so, j, j->log_path);
        j->attempts = 1;
        char link[64];
        snprintf(link, sizeof link, "task_%d.log", k);
        char *lp = cg_path_join(dir, link), *target = cg_xasprintf("../../%s", name);
        if (symlink(target, lp) != 0)
            rc = cg_error_set(CG_ERR_IO, _("cannot create %s: %s"), lp, strerror(errno));
        int fd = rc ? -1 : open(j->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) close(fd);
        else if (!rc) rc = cg_error_set(CG_ERR_IO, _("cannot create %s: %s"), j->log_path, strerror(errno));
        free(lp); free(target); free(name);
        if (rc) goto out;
    }
    char *script = slurm_batch_script(o, so, jobs, run, m, dir, stamp);
    char *script_path = cg_path_join(dir, "job.sh");
    rc = cg_file_write_atomic(script_path, script, strlen(script));
    free(script);
    if (rc) { free(script_path); goto out; }

    const char *argv[] = {"sbatch", "--parsable", script_path, NULL};
    char *sout = NULL;
    int src = run_capture(argv, &sout);
    if (src != 0) {
        trim_newlines(sout ? sout : (char *)"");
        if (src == 127)
            rc = cg_error_set(CG_ERR_DEVICE, _("sbatch not found: is Slurm installed on this machine? "
                                               "(for a local test cluster: sudo bash scripts/slurm-local.sh start)"));
        else
            rc = cg_error_set(CG_ERR_DEVICE, _("sbatch %s failed (exit %d): %s"), script_path, src, sout ? sout : "");
        free(sout);
        free(script_path);
        goto out;
    }
    follow_state fs = {.o = o, .so = so, .jobs = jobs, .ntasks = m, .dir = dir, .have_sacct = -1};
    {   /* the job id: the last line that starts with a digit ("123" or "123;cluster") */
        char *save = NULL;
        for (char *l = strtok_r(sout, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
            if (isdigit((unsigned char)l[0])) {
                l[strcspn(l, ";")] = 0;
                snprintf(fs.array_id, sizeof fs.array_id, "%s", l);
            }
    }
    free(sout);
    if (!fs.array_id[0]) {
        rc = cg_error_set(CG_ERR_DEVICE, _("sbatch %s printed no job id"), script_path);
        free(script_path);
        goto out;
    }
    free(script_path);
    char *idf = cg_path_join(dir, "array_job_id");
    char *idtext = cg_xasprintf("%s\n", fs.array_id);
    if (cg_file_write_atomic(idf, idtext, strlen(idtext)) != CG_OK) cg_log_warn("%s", cg_error_message());
    free(idtext);
    free(idf);
    fs.tasks = cg_xcalloc((size_t)m, sizeof *fs.tasks);
    for (int k = 0; k < m; k++) {
        fs.tasks[k].job = run[k];
        snprintf(jobs[run[k]].sched_id, sizeof jobs[run[k]].sched_id, "%s_%d", fs.array_id, k);
    }
    printf(ngettext("[slurm] submitted array job %s: %d task, at most %d at once; batch script %s/job.sh\n",
                    "[slurm] submitted array job %s: %d tasks, at most %d at once; batch script %s/job.sh\n",
                    (unsigned long)m),
           fs.array_id, m, array_limit(o, m), dir);
    fflush(stdout);

    /* follow it */
    struct sigaction sa, old_int, old_term;
    if (pipe(sig_pipe) == 0)
        for (int i = 0; i < 2; i++) {
            fcntl(sig_pipe[i], F_SETFL, O_NONBLOCK);
            fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
        }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    double poll_every = so->poll_interval > 0 ? so->poll_interval : 5;
    double now = now_s(), next_status = now + o->status_interval, stop_deadline = 0;
    int warned = 0, kept = 0, stopping = 0;
    for (;;) {
        poll_array(&fs, &warned);
        now = now_s();
        if (fs.finished == m) break;
        if (stopping && now > stop_deadline) break;
        if (o->status_interval > 0 && now >= next_status) {
            next_status = now + o->status_interval;
            print_status(&fs, now);
        }
        struct pollfd pfd = {.fd = sig_pipe[0], .events = POLLIN};
        if (poll(&pfd, 1, (int)(poll_every * 1000)) > 0) {
            unsigned char sigs[16];
            ssize_t got = read(sig_pipe[0], sigs, sizeof sigs);
            int sig = 0;
            for (ssize_t i = 0; i < got; i++) if (sigs[i] == SIGINT || sigs[i] == SIGTERM) sig = sigs[i];
            if (!sig) continue;
            if (stopping) {
                printf(_("[interrupt] second signal: not waiting for the cancelled tasks any more\n"));
                break;
            }
            *interrupted = 1;
            if (ask_cancel(&fs, sig)) {
                scancel_array(fs.array_id);
                stopping = 1;
                stop_deadline = now_s() + 120;
            } else {
                kept = 1;
                printf(_("[interrupt] array job %s keeps running; follow it with `squeue -j %s`, "
                         "cancel it with `scancel %s`\n"), fs.array_id, fs.array_id, fs.array_id);
                break;
            }
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    sig_pipe[0] = sig_pipe[1] = -1;
    for (int k = 0; k < m; k++) {  /* what is still queued or running when we stop following */
        if (fs.tasks[k].done) continue;
        job_record *j = &jobs[fs.tasks[k].job];
        snprintf(j->sched_state, sizeof j->sched_state, "%s", fs.tasks[k].seen_running ? "RUNNING" : "PENDING");
        j->status = JOB_INTERRUPTED;
        if (j->start_time <= 0) j->start_time = now_s();
        j->end_time = now_s();
    }
    if (!kept && fs.finished == m) {
        char *donef = cg_path_join(dir, "followed");
        cg_file_write_atomic(donef, "1\n", 2);
        free(donef);
    }
    free(fs.tasks);
out:
    free(dir);
    free(abs_log);
    free(run);
    return rc;
}
