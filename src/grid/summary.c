#include "grid/summary.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "grid/i18n.h"

static const char *signal_name(int sig) {
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGKILL: return "SIGKILL";
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGHUP: return "SIGHUP";
    case SIGPIPE: return "SIGPIPE";
    default: return NULL;
    }
}

void summary_status_text(const job_record *j, char *buf, size_t n) {
    const char *name = job_status_name(j->status);
    const char *sig = signal_name(j->signal);
    char signum[16];
    if (!sig) { snprintf(signum, sizeof signum, "signal %d", j->signal); sig = signum; }
    if (j->sched_state[0]) {  /* Slurm: its own state names */
        if (j->status == JOB_FAILED && j->signal) snprintf(buf, n, "%s (%s)", j->sched_state, sig);
        else if (j->status == JOB_FAILED) snprintf(buf, n, "%s (exit %d)", j->sched_state, j->exit_code);
        else snprintf(buf, n, "%s", j->sched_state);
        return;
    }
    switch (j->status) {
    case JOB_FAILED: snprintf(buf, n, "%s (exit %d)", name, j->exit_code); break;
    case JOB_SIGNALED: snprintf(buf, n, "%s (%s)", name, sig); break;
    case JOB_TIMEOUT:
    case JOB_INTERRUPTED:
        if (j->signal) snprintf(buf, n, "%s (%s)", name, sig);
        else snprintf(buf, n, "%s (exit %d)", name, j->exit_code);
        break;
    default: snprintf(buf, n, "%s", name);
    }
}

void summary_duration_text(double s, char *buf, size_t n) {
    if (s < 0) s = 0;
    long t = (long)(s + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

void summary_load_result(job_record *j) {
    if (!j->out_dir) return;
    char *path = cg_path_join(j->out_dir, "result.json");
    if (cg_file_exists(path)) {
        cg_json_doc doc;
        if (cg_json_load(path, &doc) == CG_OK) {
            cJSON_Delete(j->result);
            j->result = doc.root;
            doc.root = NULL;
            cg_json_free(&doc);
        } else {
            cg_log_warn("%s: %s", j->cfg->id, cg_error_message());
        }
    }
    free(path);
}

static void metric_text(const job_record *j, const char *key, const char *fmt, char *buf, size_t n) {
    const cJSON *v = j->result ? cJSON_GetObjectItemCaseSensitive(j->result, key) : NULL;
    if (cJSON_IsNumber(v)) snprintf(buf, n, fmt, v->valuedouble);
    else snprintf(buf, n, "-");
}

static int print_rank(const job_record *j) { return job_status_is_failure(j->status) || j->status == JOB_START_FAILED ? 0 : 1; }

void summary_print(FILE *f, const job_record *jobs, int n) {
    int idw = 6;
    for (int i = 0; i < n; i++) {
        int l = (int)strlen(jobs[i].cfg->id);
        if (l > idw) idw = l;
    }
    int ok = 0, failed = 0, skipped = 0, other = 0;
    fprintf(f, "\n%-*s  %-4s  %-20s  %5s  %8s  %7s  %8s  %8s\n", idw, "CONFIG", "GPU", "STATUS", "TRIES", "TIME",
            "TOP1", "LOSS", "IMG/S");
    for (int rank = 0; rank < 2; rank++) {
        for (int i = 0; i < n; i++) {
            const job_record *j = &jobs[i];
            if (print_rank(j) != rank) continue;
            char status[64], dur[32], gpu[16], top1[32], loss[32], ips[32];
            summary_status_text(j, status, sizeof status);
            double d = j->end_time > j->start_time && j->start_time > 0 ? j->end_time - j->start_time : 0;
            summary_duration_text(d, dur, sizeof dur);
            if (j->gpu >= 0) snprintf(gpu, sizeof gpu, "%d", j->gpu);
            else snprintf(gpu, sizeof gpu, "%s", j->gpu == -1 ? "cpu" : "-");
            metric_text(j, "zeroshot_top1", "%.4f", top1, sizeof top1);
            metric_text(j, "loss", "%.4f", loss, sizeof loss);
            metric_text(j, "images_per_s", "%.1f", ips, sizeof ips);
            fprintf(f, "%-*s  %-4s  %-20s  %5d  %8s  %7s  %8s  %8s\n", idw, j->cfg->id, gpu, status, j->attempts,
                    dur, top1, loss, ips);
            if (j->status == JOB_SUCCEEDED) ok++;
            else if (job_status_is_failure(j->status) || j->status == JOB_START_FAILED) failed++;
            else if (j->status == JOB_SKIPPED) skipped++;
            else other++;
        }
    }
    fprintf(f, _("\n%d succeeded, %d failed"), ok, failed);
    if (skipped) fprintf(f, _(", %d skipped (done in an earlier run)"), skipped);
    if (other) fprintf(f, _(", %d not run to completion"), other);
    fprintf(f, _(" (of %d)\n"), n);
    for (int i = 0; i < n; i++) {
        const job_record *j = &jobs[i];
        if ((job_status_is_failure(j->status) || j->status == JOB_INTERRUPTED || j->status == JOB_START_FAILED ||
             j->status == JOB_CANCELLED || j->status == JOB_PREEMPTED || j->status == JOB_NODE_FAIL ||
             j->status == JOB_LOST) &&
            j->log_path)
            fprintf(f, _("  %s: see %s\n"), j->cfg->id, j->log_path);
    }
}

static char *iso_time(double t, char *buf, size_t n) {
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

int summary_write_json(const char *path, const job_record *jobs, int n, double started, double finished,
                       int interrupted) {
    char t[32];
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "started", iso_time(started, t, sizeof t));
    cJSON_AddStringToObject(root, "finished", iso_time(finished, t, sizeof t));
    cJSON_AddBoolToObject(root, "interrupted", interrupted);
    int ok = 0, failed = 0;
    cJSON *arr = cJSON_AddArrayToObject(root, "configs");
    for (int i = 0; i < n; i++) {
        const job_record *j = &jobs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", j->cfg->id);
        cJSON_AddStringToObject(o, "image_encoder", j->cfg->image_encoder);
        cJSON_AddStringToObject(o, "text_encoder", j->cfg->text_encoder);
        cJSON_AddStringToObject(o, "status", job_status_name(j->status));
        if (j->status == JOB_FAILED || j->status == JOB_SUCCEEDED) cJSON_AddNumberToObject(o, "exit_code", j->exit_code);
        if (j->signal) cJSON_AddNumberToObject(o, "signal", j->signal);
        if (j->gpu >= 0) cJSON_AddNumberToObject(o, "gpu", j->gpu);
        else cJSON_AddStringToObject(o, "gpu", j->gpu == -1 ? "cpu" : "none");
        if (j->uuid[0]) cJSON_AddStringToObject(o, "gpu_uuid", j->uuid);
        cJSON_AddNumberToObject(o, "attempts", j->attempts);
        if (j->start_time > 0) {
            cJSON_AddStringToObject(o, "start", iso_time(j->start_time, t, sizeof t));
            cJSON_AddNumberToObject(o, "duration_s", j->end_time > j->start_time ? j->end_time - j->start_time : 0);
        }
        if (j->gpu_wait_s) cJSON_AddNumberToObject(o, "gpu_wait_s", j->gpu_wait_s);
        if (j->forced_start) cJSON_AddBoolToObject(o, "started_on_busy_gpu", 1);
        if (j->log_path) cJSON_AddStringToObject(o, "log", j->log_path);
        if (j->out_dir) cJSON_AddStringToObject(o, "out_dir", j->out_dir);
        if (j->command) cJSON_AddStringToObject(o, "command", j->command);
        if (j->sched_state[0]) cJSON_AddStringToObject(o, "slurm_state", j->sched_state);
        if (j->sched_id[0]) cJSON_AddStringToObject(o, "slurm_job", j->sched_id);
        if (j->node[0]) cJSON_AddStringToObject(o, "node", j->node);
        if (j->gpu_env[0]) cJSON_AddStringToObject(o, "cuda_visible_devices", j->gpu_env);
        if (j->result) cJSON_AddItemToObject(o, "result", cJSON_Duplicate(j->result, 1));
        cJSON_AddItemToArray(arr, o);
        ok += j->status == JOB_SUCCEEDED;
        failed += job_status_is_failure(j->status) || j->status == JOB_START_FAILED;
    }
    cJSON_AddNumberToObject(root, "succeeded", ok);
    cJSON_AddNumberToObject(root, "failed", failed);
    cJSON_AddNumberToObject(root, "total", n);
    char *text = cg_json_print(root, 1);
    cJSON_Delete(root);
    size_t len = strlen(text);
    char *with_nl = cg_xasprintf("%s\n", text);
    free(text);
    int rc = cg_file_write_atomic(path, with_nl, len + 1);
    free(with_nl);
    return rc;
}
