#include "grid/run_local.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "grid/i18n.h"
#include "grid/ledger.h"
#include "grid/summary.h"
#include "grid/template.h"

/* ------------------------------------------------------------------ signals -> self-pipe */

static int signal_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(signal_pipe[1], &b, 1) < 0) { /* pipe full: the loop wakes up anyway */ }
    errno = saved;
}

static void install_handlers(struct sigaction *old_int, struct sigaction *old_term, struct sigaction *old_chld) {
    if (pipe(signal_pipe) == 0) {
        for (int i = 0; i < 2; i++) {
            fcntl(signal_pipe[i], F_SETFL, O_NONBLOCK);
            fcntl(signal_pipe[i], F_SETFD, FD_CLOEXEC);
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, old_int);
    sigaction(SIGTERM, &sa, old_term);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, old_chld);
}

static void restore_handlers(const struct sigaction *old_int, const struct sigaction *old_term,
                             const struct sigaction *old_chld) {
    sigaction(SIGINT, old_int, NULL);
    sigaction(SIGTERM, old_term, NULL);
    sigaction(SIGCHLD, old_chld, NULL);
    close(signal_pipe[0]);
    close(signal_pipe[1]);
    signal_pipe[0] = signal_pipe[1] = -1;
}

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* ------------------------------------------------------------------ commands and logs */

char *run_job_command(const run_options *o, const job_record *j, int gpu, const char *log_path) {
    char gpu_text[16];
    if (gpu >= 0) snprintf(gpu_text, sizeof gpu_text, "%d", gpu);
    else snprintf(gpu_text, sizeof gpu_text, "cpu");
    template_values v = {
        .image_encoder = j->cfg->image_encoder, .text_encoder = j->cfg->text_encoder, .id = j->cfg->id,
        .out_dir = j->out_dir, .gpu = gpu_text, .log = log_path, .train = j->cfg->train,
        .extra_args = o->extra_args, .n_extra = o->n_extra,
    };
    if (o->command_template) return template_expand(o->command_template, &v);
    char *exe = shell_quote(o->self_exe ? o->self_exe : "clipgrid");
    const char *device = cJSON_GetObjectItemCaseSensitive(j->cfg->train, "device") ? ""
                         : gpu >= 0 ? " --device cuda" : " --device cpu";
    int has_train = j->cfg->train && j->cfg->train->child;
    char *tmpl = cg_xasprintf("%s train --image-encoder {image_encoder} --text-encoder {text_encoder} "
                              "--out {out_dir}%s%s", exe, device, has_train ? " {train_args}" : "");
    char *cmd = template_expand(tmpl, &v);
    free(exe);
    free(tmpl);
    return cmd;
}

static char *log_path_for(const run_options *o, const job_record *j, int gpu, double t) {
    time_t s = (time_t)t;
    struct tm tm;
    localtime_r(&s, &tm);
    char stamp[32], where[16];
    strftime(stamp, sizeof stamp, "%Y%m%d_%H%M%S", &tm);
    if (gpu >= 0) snprintf(where, sizeof where, "gpu%d", gpu);
    else snprintf(where, sizeof where, "cpu");
    char *name = cg_xasprintf("%s_%s_%s.log", j->cfg->id, where, stamp);
    char *path = cg_path_join(o->log_dir, name);
    free(name);
    return path;
}

static void log_printf(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_printf(const char *path, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    if (cg_file_append(path, buf, (size_t)n) != CG_OK) cg_log_warn("%s", cg_error_message());
}

static void iso_local(double t, char *buf, size_t n) {
    time_t s = (time_t)t;
    struct tm tm;
    localtime_r(&s, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M:%S %z", &tm);
}

/* ------------------------------------------------------------------ the loop's state */

typedef struct {
    const run_options *o;
    job_record *jobs;
    int n;
    int nslots;
    int *slot_gpu;          /* NVML index or -1 */
    int *slot_gpu_pos;      /* position in o->gpu_index, -1 for CPU */
    int *slot_job;          /* job index or -1 */
    double *blocked_since;  /* 0: not held back */
    int *announced;         /* "[wait] GPU busy" printed for this hold */
    double *wait_since;     /* per job: when it first found only held-back slots (0: never) */
    int *queue, qlen;       /* pending jobs in start order */
    int *avoid_gpu;         /* per job: GPU its last attempt failed on, -2 none */
    /* utilization windows, per GPU position */
    int *util_ring, *util_count;
    double next_sample;
    int running;
    int stopping;           /* 0, or the signal that started the stop */
    double next_status;
    char hostname[256];
} loop_state;

static double util_average(const loop_state *st, int g) {
    int k = st->util_count[g] < st->o->util_samples ? st->util_count[g] : st->o->util_samples;
    if (k == 0) return NAN;
    double sum = 0;
    for (int i = 0; i < k; i++) sum += st->util_ring[g * st->o->util_samples + i];
    return sum / k;
}

static int gpu_has_our_job(const loop_state *st, int gpu_pos) {
    for (int s = 0; s < st->nslots; s++)
        if (st->slot_gpu_pos[s] == gpu_pos && st->slot_job[s] >= 0) return 1;
    return 0;
}

static int check_enabled(const run_options *o) { return o->nvml && o->ngpus > 0 && o->util_threshold < 100; }

/* Held back: the GPU has no job of ours and its utilization is above the threshold, or not
 * known yet (fewer readings than util_samples). */
static int slot_held_back(const loop_state *st, int s) {
    const run_options *o = st->o;
    int g = st->slot_gpu_pos[s];
    if (!check_enabled(o) || g < 0 || gpu_has_our_job(st, g)) return 0;
    if (st->util_count[g] < o->util_samples) return 1;
    return util_average(st, g) > o->util_threshold;
}

static void sample_utilization(loop_state *st, double now) {
    const run_options *o = st->o;
    if (!check_enabled(o) || now < st->next_sample) return;
    st->next_sample = now + o->poll_interval;
    for (int g = 0; g < o->ngpus; g++) {
        int u = nvml_gpu_utilization(o->nvml, o->gpu_index[g]);
        if (u < 0) u = 0;  /* unknown (e.g. MIG): do not hold jobs back on a reading we do not have */
        st->util_ring[g * o->util_samples + st->util_count[g] % o->util_samples] = u;
        st->util_count[g]++;
    }
}

static double next_sample_wait(const loop_state *st, double now) {
    if (!check_enabled(st->o) || st->qlen == 0 || st->stopping) return 1e9;
    return st->next_sample - now;
}

/* ------------------------------------------------------------------ starting a job */

static void queue_remove_head(loop_state *st) {
    memmove(st->queue, st->queue + 1, (size_t)(st->qlen - 1) * sizeof *st->queue);
    st->qlen--;
}

static void queue_push_front(loop_state *st, int j) {
    memmove(st->queue + 1, st->queue, (size_t)st->qlen * sizeof *st->queue);
    st->queue[0] = j;
    st->qlen++;
}

static void child_exec(const run_options *o, const job_record *j, int gpu, const char *uuid, int log_fd) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGINT, &dfl, NULL);
    sigaction(SIGTERM, &dfl, NULL);
    sigaction(SIGCHLD, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) { dup2(devnull, 0); close(devnull); }
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    if (log_fd > 2) close(log_fd);
    char num[32];
    if (gpu >= 0) {
        setenv("CUDA_VISIBLE_DEVICES", uuid[0] ? uuid : (snprintf(num, sizeof num, "%d", gpu), num), 1);
        snprintf(num, sizeof num, "%d", gpu);
        setenv("CLIPGRID_GPU", num, 1);
    } else {
        setenv("CUDA_VISIBLE_DEVICES", "", 1);
        setenv("CLIPGRID_GPU", "cpu", 1);
        int threads = o->cores / (o->cpu_slots > 0 ? o->cpu_slots : 1);
        snprintf(num, sizeof num, "%d", threads > 0 ? threads : 1);
        setenv("OMP_NUM_THREADS", num, 1);
    }
    setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID", 1);
    setenv("PYTHONUNBUFFERED", "1", 1);
    setenv("CLIPGRID_CONFIG_ID", j->cfg->id, 1);
    setenv("CLIPGRID_OUT_DIR", j->out_dir, 1);
    execl("/bin/sh", "sh", "-c", j->command, (char *)NULL);
    fprintf(stderr, _("clipgrid: cannot run /bin/sh: %s\n"), strerror(errno));
    _exit(127);
}

static void start_job(loop_state *st, int ji, int s, double now, int forced) {
    const run_options *o = st->o;
    job_record *j = &st->jobs[ji];
    int gpu = st->slot_gpu[s];
    int gpos = st->slot_gpu_pos[s];
    const char *uuid = gpos >= 0 && o->gpu_uuid ? o->gpu_uuid[gpos] : "";
    j->attempts++;
    j->gpu = gpu;
    snprintf(j->uuid, sizeof j->uuid, "%s", uuid);
    j->slot = s;
    j->start_time = now;
    j->end_time = 0;
    j->exit_code = j->signal = 0;
    j->stop_reason = 0;
    j->kill_at = 0;
    j->deadline = o->timeout > 0 ? now + o->timeout : 0;
    j->forced_start = forced;
    j->gpu_wait_s = st->wait_since[ji] > 0 ? (int)(now - st->wait_since[ji] + 0.5) : 0;
    st->wait_since[ji] = 0;
    free(j->log_path);
    free(j->command);
    j->log_path = log_path_for(o, j, gpu, now);
    j->command = run_job_command(o, j, gpu, j->log_path);

    int rc = cg_mkdir_p(j->out_dir);
    int fd = rc ? -1 : open(j->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        cg_log_error(_("%s: cannot start: %s"), j->cfg->id,
                     rc ? cg_error_message() : strerror(errno));
        j->status = JOB_START_FAILED;
        j->end_time = now;
        return;
    }
    char when[64], gpu_text[160];
    iso_local(now, when, sizeof when);
    if (gpu >= 0) snprintf(gpu_text, sizeof gpu_text, "%d (%s)", gpu, uuid[0] ? uuid : "no UUID");
    else snprintf(gpu_text, sizeof gpu_text, "cpu (slot %d of %d)", s, st->nslots);
    dprintf(fd, "# clipgrid run: config %s (attempt %d of %d)\n# command: %s\n# gpu: %s\n# host: %s\n"
                "# start: %s\n# out_dir: %s\n",
            j->cfg->id, j->attempts, o->retries + 1, j->command, gpu_text, st->hostname, when, j->out_dir);
    if (forced)
        dprintf(fd, "# [WARN] GPU %d utilization %.0f%% stayed above the threshold %.0f%% for %.0f s "
                    "(--gpu-wait-timeout); starting anyway\n", gpu, util_average(st, gpos), o->util_threshold,
                now - st->blocked_since[s]);
    else if (j->gpu_wait_s > 0)
        dprintf(fd, "# waited %d s for GPU %d to fall below %.0f%% utilization\n", j->gpu_wait_s, gpu,
                o->util_threshold);
    dprintf(fd, "# ---\n");

    pid_t pid = fork();
    if (pid < 0) {
        cg_log_error(_("%s: fork failed: %s"), j->cfg->id, strerror(errno));
        close(fd);
        j->status = JOB_START_FAILED;
        j->end_time = now;
        return;
    }
    if (pid == 0) child_exec(o, j, gpu, uuid, fd);
    setpgid(pid, pid);  /* also done in the child: whichever runs first */
    close(fd);
    j->pid = pid;
    j->status = JOB_RUNNING;
    st->slot_job[s] = ji;
    st->blocked_since[s] = 0;
    st->running++;
    if (gpu >= 0) printf(_("[start] %s on GPU %d%s, log %s\n"), j->cfg->id, gpu, forced ? _(" (GPU busy, wait timed out)") : "",
                         j->log_path);
    else printf(_("[start] %s on CPU slot %d, log %s\n"), j->cfg->id, s, j->log_path);
    fflush(stdout);
}

static void dispatch(loop_state *st, double now) {
    const run_options *o = st->o;
    int limit = o->max_parallel > 0 && o->max_parallel < st->nslots ? o->max_parallel : st->nslots;
    int *busy = cg_xcalloc((size_t)st->nslots, sizeof *busy);
    int *blocked = cg_xcalloc((size_t)st->nslots, sizeof *blocked);
    while (st->qlen > 0 && st->running < limit && !st->stopping) {
        int any_blocked = 0;
        for (int s = 0; s < st->nslots; s++) {
            busy[s] = st->slot_job[s] >= 0;
            blocked[s] = !busy[s] && slot_held_back(st, s);
            any_blocked |= blocked[s];
            if (!blocked[s]) {
                st->blocked_since[s] = 0;
                st->announced[s] = 0;
                continue;
            }
            if (st->blocked_since[s] == 0) st->blocked_since[s] = now;
            int g = st->slot_gpu_pos[s];
            if (!st->announced[s] && st->util_count[g] >= o->util_samples) {
                st->announced[s] = 1;
                printf(_("[wait] GPU %d busy (%.0f%% > %.0f%% utilization), holding jobs up to %.0f s\n"),
                       st->slot_gpu[s], util_average(st, g), o->util_threshold, o->gpu_wait_timeout);
            }
        }
        int ji = st->queue[0];
        int s = sched_pick_slot(busy, st->slot_gpu, blocked, st->nslots, st->avoid_gpu[ji]);
        int forced = 0;
        if (s < 0) {  /* every free slot is held back: has one waited long enough? */
            for (int k = 0; k < st->nslots && s < 0; k++)
                if (blocked[k] && st->util_count[st->slot_gpu_pos[k]] >= o->util_samples &&
                    now - st->blocked_since[k] >= o->gpu_wait_timeout)
                    s = k, forced = 1;
        }
        if (s < 0) {
            if (any_blocked && st->wait_since[ji] == 0) st->wait_since[ji] = now;
            break;
        }
        queue_remove_head(st);
        start_job(st, ji, s, now, forced);
    }
    free(busy);
    free(blocked);
}

/* ------------------------------------------------------------------ ending a job */

static void finish_job(loop_state *st, int ji, int wstatus, double now) {
    const run_options *o = st->o;
    job_record *j = &st->jobs[ji];
    j->end_time = now;
    if (WIFEXITED(wstatus)) {
        j->exit_code = WEXITSTATUS(wstatus);
        j->status = j->stop_reason ? (job_status)j->stop_reason : j->exit_code == 0 ? JOB_SUCCEEDED : JOB_FAILED;
    } else if (WIFSIGNALED(wstatus)) {
        j->signal = WTERMSIG(wstatus);
        j->status = j->stop_reason ? (job_status)j->stop_reason : JOB_SIGNALED;
    }
    /* anything the job left running in its group goes too: no orphans */
    if (kill(-j->pid, 0) == 0) {
        kill(-j->pid, SIGKILL);
        log_printf(j->log_path, "# clipgrid: killed processes the job left running in its group\n");
    }
    st->slot_job[j->slot] = -1;
    st->running--;
    char status[64], dur[32];
    summary_status_text(j, status, sizeof status);
    summary_duration_text(j->end_time - j->start_time, dur, sizeof dur);
    log_printf(j->log_path, "\n# end: %s after %s\n", status, dur);
    summary_load_result(j);
    char *ledger = cg_path_join(o->log_dir, "ledger.tsv");
    if (ledger_append(ledger, j) != CG_OK) cg_log_warn("%s", cg_error_message());
    free(ledger);
    printf(_("[done] %s: %s in %s\n"), j->cfg->id, status, dur);
    if (job_status_is_failure(j->status) && j->attempts <= o->retries && !st->stopping) {
        printf(_("[retry] %s: attempt %d of %d%s\n"), j->cfg->id, j->attempts + 1, o->retries + 1,
               j->gpu >= 0 ? _(" (on another GPU if one is free)") : "");
        st->avoid_gpu[ji] = j->gpu >= 0 && o->ngpus > 1 ? j->gpu : -2;
        j->status = JOB_PENDING;
        queue_push_front(st, ji);
    }
    fflush(stdout);
}

static void reap(loop_state *st, double now) {
    for (;;) {
        int ws;
        pid_t pid = waitpid(-1, &ws, WNOHANG);
        if (pid <= 0) break;
        for (int i = 0; i < st->n; i++)
            if (st->jobs[i].status == JOB_RUNNING && st->jobs[i].pid == pid) {
                finish_job(st, i, ws, now);
                break;
            }
    }
}

static void stop_job(job_record *j, int reason, double now, double grace) {
    if (j->kill_at > 0) return;
    j->stop_reason = reason;
    j->kill_at = now + grace;
    kill(-j->pid, SIGTERM);
    log_printf(j->log_path, "\n# clipgrid: %s, sent SIGTERM to the job's process group\n",
               reason == JOB_TIMEOUT ? "timeout reached" : "launcher interrupted");
}

static void enforce_deadlines(loop_state *st, double now) {
    for (int i = 0; i < st->n; i++) {
        job_record *j = &st->jobs[i];
        if (j->status != JOB_RUNNING) continue;
        if (j->deadline > 0 && now >= j->deadline && j->kill_at == 0) {
            printf(_("[timeout] %s ran past %.0f s: stopping it\n"), j->cfg->id, st->o->timeout);
            stop_job(j, JOB_TIMEOUT, now, st->o->kill_grace);
        }
        if (j->kill_at > 0 && now >= j->kill_at) {
            kill(-j->pid, SIGKILL);
            j->kill_at = now + 3600;  /* once */
        }
    }
}

static void begin_stop(loop_state *st, int sig, double now) {
    if (st->stopping) {
        printf(_("[interrupt] second signal: killing every job now\n"));
        for (int i = 0; i < st->n; i++)
            if (st->jobs[i].status == JOB_RUNNING) kill(-st->jobs[i].pid, SIGKILL);
        return;
    }
    st->stopping = sig;
    printf(_("[interrupt] %s: starting no more jobs; stopping %d running (SIGTERM, SIGKILL after %.0f s)\n"),
           sig == SIGINT ? "SIGINT" : "SIGTERM", st->running, st->o->kill_grace);
    for (int i = 0; i < st->n; i++)
        if (st->jobs[i].status == JOB_RUNNING) stop_job(&st->jobs[i], JOB_INTERRUPTED, now, st->o->kill_grace);
    fflush(stdout);
}

/* ------------------------------------------------------------------ status */

static void print_status(loop_state *st, double now) {
    if (st->o->status_interval <= 0 || now < st->next_status) return;
    st->next_status = now + st->o->status_interval;
    if (st->running == 0) return;
    int done = 0;
    for (int i = 0; i < st->n; i++)
        done += st->jobs[i].status != JOB_PENDING && st->jobs[i].status != JOB_RUNNING &&
                st->jobs[i].status != JOB_SKIPPED;
    printf(_("[status] %d running, %d waiting, %d finished\n"), st->running, st->qlen, done);
    for (int i = 0; i < st->n; i++) {
        job_record *j = &st->jobs[i];
        if (j->status != JOB_RUNNING) continue;
        char el[32], where[16], extra[256] = "";
        summary_duration_text(now - j->start_time, el, sizeof el);
        if (j->gpu >= 0) snprintf(where, sizeof where, "gpu%d", j->gpu);
        else snprintf(where, sizeof where, "cpu");
        char *pp = cg_path_join(j->out_dir, "progress.json");
        cg_json_doc doc;
        if (cg_file_exists(pp) && cg_json_load(pp, &doc) == CG_OK) {
            const cJSON *step = cJSON_GetObjectItemCaseSensitive(doc.root, "step");
            const cJSON *total = cJSON_GetObjectItemCaseSensitive(doc.root, "total_steps");
            const cJSON *loss = cJSON_GetObjectItemCaseSensitive(doc.root, "loss");
            const cJSON *eta = cJSON_GetObjectItemCaseSensitive(doc.root, "eta_s");
            size_t len = 0;
            if (cJSON_IsNumber(step)) {
                len += (size_t)snprintf(extra + len, sizeof extra - len, "  step %d", step->valueint);
                if (cJSON_IsNumber(total))
                    len += (size_t)snprintf(extra + len, sizeof extra - len, "/%d", total->valueint);
            }
            if (cJSON_IsNumber(loss) && len < sizeof extra)
                len += (size_t)snprintf(extra + len, sizeof extra - len, "  loss %.4f", loss->valuedouble);
            if (cJSON_IsNumber(eta) && len < sizeof extra) {
                char e[32];
                summary_duration_text(eta->valuedouble, e, sizeof e);
                snprintf(extra + len, sizeof extra - len, "  ETA %s", e);
            }
            cg_json_free(&doc);
        }
        free(pp);
        printf("  %-40s %-5s %s%s\n", j->cfg->id, where, el, extra);
    }
    fflush(stdout);
}

/* ------------------------------------------------------------------ the loop */

int run_local(const run_options *o, job_record *jobs, int n, int *interrupted) {
    *interrupted = 0;
    int rc = cg_mkdir_p(o->log_dir);
    if (rc) return rc;
    loop_state st = {.o = o, .jobs = jobs, .n = n};
    gethostname(st.hostname, sizeof st.hostname - 1);
    st.nslots = o->cpu_slots > 0 ? o->cpu_slots : o->ngpus * (o->jobs_per_gpu > 0 ? o->jobs_per_gpu : 1);
    if (st.nslots <= 0) return cg_error_set(CG_ERR_DEVICE, _("no slots to run jobs on"));
    st.slot_gpu = cg_xcalloc((size_t)st.nslots, sizeof *st.slot_gpu);
    st.slot_gpu_pos = cg_xcalloc((size_t)st.nslots, sizeof *st.slot_gpu_pos);
    st.slot_job = cg_xcalloc((size_t)st.nslots, sizeof *st.slot_job);
    st.blocked_since = cg_xcalloc((size_t)st.nslots, sizeof *st.blocked_since);
    st.announced = cg_xcalloc((size_t)st.nslots, sizeof *st.announced);
    st.wait_since = cg_xcalloc((size_t)n + 1, sizeof *st.wait_since);
    for (int s = 0; s < st.nslots; s++) {
        st.slot_job[s] = -1;
        st.slot_gpu_pos[s] = o->cpu_slots > 0 ? -1 : s % o->ngpus;
        st.slot_gpu[s] = o->cpu_slots > 0 ? -1 : o->gpu_index[s % o->ngpus];
    }
    int samples = o->util_samples > 0 ? o->util_samples : 1;
    st.util_ring = cg_xcalloc((size_t)(o->ngpus + 1) * (size_t)samples, sizeof *st.util_ring);
    st.util_count = cg_xcalloc((size_t)o->ngpus + 1, sizeof *st.util_count);
    st.queue = cg_xcalloc((size_t)n + 1, sizeof *st.queue);
    st.avoid_gpu = cg_xcalloc((size_t)n + 1, sizeof *st.avoid_gpu);
    double *costs = cg_xcalloc((size_t)n + 1, sizeof *costs);
    int *order = cg_xcalloc((size_t)n + 1, sizeof *order);
    for (int i = 0; i < n; i++) { costs[i] = jobs[i].cfg->cost; st.avoid_gpu[i] = -2; }
    sched_order(costs, n, o->order, order);
    for (int k = 0; k < n; k++)
        if (jobs[order[k]].status == JOB_PENDING) st.queue[st.qlen++] = order[k];
    free(costs);
    free(order);

    struct sigaction old_int, old_term, old_chld;
    install_handlers(&old_int, &old_term, &old_chld);
    double now = now_s();
    st.next_status = now + o->status_interval;
    for (;;) {
        now = now_s();
        reap(&st, now);
        if (!st.stopping) {
            sample_utilization(&st, now);
            dispatch(&st, now);
        }
        enforce_deadlines(&st, now);
        print_status(&st, now);
        if (st.running == 0 && (st.stopping || st.qlen == 0)) break;

        /* sleep until a signal, a child's exit, or the next timed event */
        double wait = 1.0;
        double ws = next_sample_wait(&st, now);
        if (ws < wait) wait = ws;
        for (int i = 0; i < n; i++) {
            if (jobs[i].status != JOB_RUNNING) continue;
            if (jobs[i].deadline > 0 && jobs[i].kill_at == 0 && jobs[i].deadline - now < wait) wait = jobs[i].deadline - now;
            if (jobs[i].kill_at > 0 && jobs[i].kill_at - now < wait) wait = jobs[i].kill_at - now;
        }
        if (wait < 0) wait = 0;
        struct pollfd pfd = {.fd = signal_pipe[0], .events = POLLIN};
        if (poll(&pfd, 1, (int)(wait * 1000) + 1) > 0) {
            unsigned char sigs[64];
            ssize_t got = read(signal_pipe[0], sigs, sizeof sigs);
            for (ssize_t i = 0; i < got; i++)
                if (sigs[i] == SIGINT || sigs[i] == SIGTERM) begin_stop(&st, sigs[i], now_s());
        }
    }
    for (int i = 0; i < n; i++)
        if (jobs[i].status == JOB_PENDING) jobs[i].status = st.stopping ? JOB_NOT_STARTED : JOB_PENDING;
    *interrupted = st.stopping;
    restore_handlers(&old_int, &old_term, &old_chld);
    free(st.slot_gpu); free(st.slot_gpu_pos); free(st.slot_job); free(st.blocked_since); free(st.announced); free(st.wait_since);
    free(st.util_ring); free(st.util_count); free(st.queue); free(st.avoid_gpu);
    return CG_OK;
}
