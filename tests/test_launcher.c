/* End-to-end tests of `clipgrid run`: the real binary, real processes, and GPUs from the fake
 * libnvidia-ml.so.1 (tests/fake_nvml), loaded through the real dlopen path (LD_LIBRARY_PATH).
 * Jobs are --command templates (sh), so no trainer is needed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"

static char root[256];   /* per-program temp dir */
static char dir[512];    /* per-test dir: logs in dir/logs, outputs in dir/out */

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static void new_test_dir(const char *name) {
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    cg_mkdir_p(dir);
}

static char *in_dir(const char *name) { return cg_path_join(dir, name); }

static void write_text(const char *name, const char *text) {
    char *p = in_dir(name);
    if (cg_file_write_atomic(p, text, strlen(text)) != CG_OK) { fprintf(stderr, "%s\n", cg_error_message()); abort(); }
    free(p);
}

static char *read_text(const char *path) {
    char *t = NULL;
    if (cg_file_read(path, &t, NULL) != CG_OK) return cg_xstrdup("");
    return t;
}

/* Start `clipgrid run ARGS...` with the fake NVML (config dir/nvml.txt), stdout and stderr to
 * dir/stdout and dir/stderr, --log-dir dir/logs --out-dir dir/out. Returns the pid. */
static pid_t start_clipgrid(const char *const *args) {
    pid_t pid = fork();
    if (pid == 0) {
        char *out = in_dir("stdout"), *err = in_dir("stderr"), *nvml = in_dir("nvml.txt");
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fo, 1);
        dup2(fe, 2);
        setenv("FAKE_NVML_CONFIG", nvml, 1);
        setenv("LD_LIBRARY_PATH", FAKE_NVML_DIR, 1);
        unsetenv("CLIPGRID_NVML_LIBRARY");
        const char *argv[64];
        int n = 0;
        char *logs = in_dir("logs"), *outs = in_dir("out");
        argv[n++] = CLIPGRID_BIN;
        argv[n++] = "run";
        argv[n++] = "--log-dir"; argv[n++] = logs;
        argv[n++] = "--out-dir"; argv[n++] = outs;
        for (int i = 0; args[i] && n < 62; i++) argv[n++] = args[i];
        argv[n] = NULL;
        execv(CLIPGRID_BIN, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Wait for the launcher (at most `limit` seconds; then kill it and fail). Returns its exit status. */
static int wait_clipgrid(pid_t pid, double limit) {
    double t0 = now_s();
    for (;;) {
        int ws;
        pid_t r = waitpid(pid, &ws, WNOHANG);
        if (r == pid) return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        if (now_s() - t0 > limit) {
            kill(pid, SIGKILL);
            waitpid(pid, &ws, 0);
            fprintf(stderr, "  clipgrid did not finish in %.0f s\n", limit);
            return -1;
        }
        usleep(20000);
    }
}

static int run_clipgrid(const char *const *args, double limit) { return wait_clipgrid(start_clipgrid(args), limit); }

static void dump_output(void) {
    char *o = in_dir("stdout"), *e = in_dir("stderr");
    char *to = read_text(o), *te = read_text(e);
    fprintf(stderr, "---- stdout ----\n%s---- stderr ----\n%s----\n", to, te);
    free(o); free(e); free(to); free(te);
}

static cJSON *load_summary(void) {
    char *p = in_dir("logs/summary.json");
    cg_json_doc doc;
    cJSON *root_json = NULL;
    if (cg_json_load(p, &doc) == CG_OK) { root_json = doc.root; doc.root = NULL; cg_json_free(&doc); }
    free(p);
    return root_json;
}

static const cJSON *summary_config(const cJSON *summary, const char *id) {
    const cJSON *arr = cJSON_GetObjectItem(summary, "configs");
    for (const cJSON *c = arr ? arr->child : NULL; c; c = c->next)
        if (!strcmp(cJSON_GetObjectItem(c, "id")->valuestring, id)) return c;
    return NULL;
}

static const char *summary_status(const cJSON *summary, const char *id) {
    const cJSON *c = summary_config(summary, id);
    return c ? cJSON_GetObjectItem(c, "status")->valuestring : "(missing)";
}

static double read_number(const char *path) {
    char *t = read_text(path);
    double v = atof(t);
    free(t);
    return v;
}

/* Names of files in dir/logs matching a POSIX regex. */
static int count_logs_matching(const char *pattern) {
    regex_t re;
    regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB);
    char *p = in_dir("logs");
    DIR *d = opendir(p);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += regexec(&re, e->d_name, 0, NULL, 0) == 0;
    if (d) closedir(d);
    regfree(&re);
    free(p);
    return n;
}

static int pid_alive(pid_t pid) {
    if (kill(pid, 0) != 0) return 0;
    /* a zombie is gone for our purposes */
    char path[64], state = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    if (fscanf(f, "%*d %*s %c", &state) != 1) state = 0;
    fclose(f);
    return state != 'Z';
}

/* ------------------------------------------------------------------ tests */

/* 3 configs on 2 fake GPUs: all run, at most two at once, the third starts only when a slot
 * frees; logs are named {id}_gpu{N}_{YYYYMMDD_HHMMSS}.log; each job sees its GPU's UUID. */
static void test_three_configs_two_gpus(void) {
    new_test_dir("three");
    write_text("nvml.txt", "gpu uuid=GPU-aaaa-0000\ngpu uuid=GPU-bbbb-1111\n");
    const char *args[] = {"--gpus", "0,1", "--image-encoders", "starnet_s1,starnet_s2,starnet_s4",
        "--text-encoders", "clip:tiny", "--gpu-poll-interval", "0.05", "--status-interval", "0",
        "--command", "mkdir -p {out_dir} && date +%s.%N > {out_dir}/t0 && echo \"$CUDA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER\" > {out_dir}/env && sleep 1 && date +%s.%N > {out_dir}/t1",
        NULL};
    int rc = run_clipgrid(args, 30);
    CHECK_EQ_INT(rc, 0);
    cJSON *s = load_summary();
    CHECK(s != NULL);
    const char *ids[] = {"starnet_s1_clip_tiny", "starnet_s2_clip_tiny", "starnet_s4_clip_tiny"};
    double t0[3], t1[3];
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_STR(summary_status(s, ids[i]), "SUCCEEDED");
        char *p0 = cg_xasprintf("%s/out/%s/t0", dir, ids[i]), *p1 = cg_xasprintf("%s/out/%s/t1", dir, ids[i]);
        char *pe = cg_xasprintf("%s/out/%s/env", dir, ids[i]);
        t0[i] = read_number(p0);
        t1[i] = read_number(p1);
        char *env = read_text(pe);
        CHECK(strstr(env, "GPU-aaaa-0000 PCI_BUS_ID") || strstr(env, "GPU-bbbb-1111 PCI_BUS_ID"));
        free(env); free(p0); free(p1); free(pe);
    }
    /* longest first: s4 and s2 start together; s1 only after one of them ended */
    double first_end = t1[1] < t1[2] ? t1[1] : t1[2];
    CHECK(t0[0] >= first_end - 0.05);
    CHECK(t0[1] < t1[2] && t0[2] < t1[1]);  /* ran at the same time */
    CHECK_EQ_INT(count_logs_matching("^starnet_s4_clip_tiny_gpu[01]_[0-9]{8}_[0-9]{6}\\.log$"), 1);
    CHECK_EQ_INT(count_logs_matching("^starnet_s1_clip_tiny_gpu[01]_[0-9]{8}_[0-9]{6}\\.log$"), 1);
    /* the two that ran together were on different GPUs */
    const cJSON *c2 = summary_config(s, ids[1]), *c4 = summary_config(s, ids[2]);
    CHECK(c2 && c4 && cJSON_GetObjectItem(c2, "gpu")->valueint != cJSON_GetObjectItem(c4, "gpu")->valueint);
    /* the log starts with a header naming the command and GPU */
    const cJSON *lg = c4 ? cJSON_GetObjectItem(c4, "log") : NULL;
    char *log = lg ? read_text(lg->valuestring) : cg_xstrdup("");
    CHECK(strstr(log, "# clipgrid run: config starnet_s4_clip_tiny") == log);
    CHECK(strstr(log, "# command: mkdir -p") != NULL);
    CHECK(strstr(log, "# end: SUCCEEDED") != NULL);
    free(log);
    if (check_failures_now) dump_output();
    cJSON_Delete(s);
}

/* exit 1, a segfault and a hang past --timeout are each reported; the others succeed. */
static void test_failures_are_reported(void) {
    new_test_dir("failures");
    write_text("nvml.txt", "gpu\ngpu\n");
    const char *args[] = {"--gpus", "0,1", "--jobs-per-gpu", "2", "--image-encoders", "ok,exit1,segv,hang",
        "--text-encoders", "t", "--timeout", "2", "--kill-grace", "1", "--gpu-util-threshold", "100",
        "--status-interval", "0",
        "--command", "case {image_encoder} in exit1) echo failing; exit 1;; segv) kill -SEGV $$;; "
                     "hang) trap '' TERM; sleep 60;; *) echo fine;; esac", NULL};
    double t = now_s();
    int rc = run_clipgrid(args, 30);
    double took = now_s() - t;
    CHECK_EQ_INT(rc, 1);
    CHECK(took < 10);  /* the hang was stopped: timeout 2 s + grace 1 s */
    cJSON *s = load_summary();
    CHECK_EQ_STR(summary_status(s, "ok_t"), "SUCCEEDED");
    CHECK_EQ_STR(summary_status(s, "exit1_t"), "FAILED");
    CHECK_EQ_STR(summary_status(s, "segv_t"), "SIGNALED");
    CHECK_EQ_STR(summary_status(s, "hang_t"), "TIMEOUT");
    const cJSON *e1 = summary_config(s, "exit1_t"), *sg = summary_config(s, "segv_t"), *hg = summary_config(s, "hang_t");
    CHECK(e1 && cJSON_GetObjectItem(e1, "exit_code")->valueint == 1);
    CHECK(sg && cJSON_GetObjectItem(sg, "signal")->valueint == SIGSEGV);
    CHECK(hg && cJSON_GetObjectItem(hg, "signal")->valueint == SIGKILL);  /* it ignored TERM */
    CHECK_EQ_INT(cJSON_GetObjectItem(s, "failed")->valueint, 3);
    char *out = in_dir("stdout");
    char *text = read_text(out);
    CHECK(strstr(text, "FAILED (exit 1)") != NULL);
    CHECK(strstr(text, "SIGNALED (SIGSEGV)") != NULL);
    CHECK(strstr(text, "TIMEOUT (SIGKILL)") != NULL);
    CHECK(strstr(text, "exit1_t: see ") != NULL);  /* log path of each failure */
    CHECK(strstr(text, "1 succeeded, 3 failed") != NULL);
    free(text); free(out);
    if (check_failures_now) dump_output();
    cJSON_Delete(s);
}

/* A GPU at 95% that drops to 10% after 3 s: the job waits, then starts. */
static void test_busy_gpu_wait_then_start(void) {
    new_test_dir("busy_drop");
    char cfg[128];
    double t = now_s();  /* the fake's clock starts here: utilization drops at t + 3 */
    snprintf(cfg, sizeof cfg, "start=%.3f\ngpu util=95@0,10@3\n", t);
    write_text("nvml.txt", cfg);
    const char *args[] = {"--gpus", "0", "--image-encoders", "a", "--text-encoders", "b",
        "--gpu-poll-interval", "0.2", "--gpu-util-samples", "3", "--gpu-wait-timeout", "60", "--status-interval", "0",
        "--command", "date +%s.%N > {out_dir}/t0", NULL};
    int rc = run_clipgrid(args, 30);
    CHECK_EQ_INT(rc, 0);
    char *p = in_dir("out/a_b/t0");
    double started = read_number(p) - t;
    free(p);
    CHECK(started >= 3.0);   /* not before the drop */
    CHECK(started < 6.0);    /* and soon after it (3 readings 0.2 s apart) */
    cJSON *s = load_summary();
    const cJSON *c = summary_config(s, "a_b");
    CHECK(c && cJSON_GetObjectItem(c, "gpu_wait_s") && cJSON_GetObjectItem(c, "gpu_wait_s")->valueint >= 2);  /* launcher start may lag t */
    CHECK(c && !cJSON_GetObjectItem(c, "started_on_busy_gpu"));
    char *out = in_dir("stdout"), *text = read_text(out);
    CHECK(strstr(text, "[wait] GPU 0 busy (95% > 70% utilization)") != NULL);
    free(out); free(text);
    if (check_failures_now) dump_output();
    cJSON_Delete(s);
}

/* A GPU that stays busy: the job starts after --gpu-wait-timeout, with a warning in its log. */
static void test_busy_gpu_timeout_starts_anyway(void) {
    new_test_dir("busy_stays");
    write_text("nvml.txt", "gpu util=99\n");
    const char *args[] = {"--gpus", "0", "--image-encoders", "a", "--text-encoders", "b",
        "--gpu-poll-interval", "0.1", "--gpu-wait-timeout", "2", "--status-interval", "0",
        "--command", "date +%s.%N > {out_dir}/t0", NULL};
    double t = now_s();
    int rc = run_clipgrid(args, 30);
    CHECK_EQ_INT(rc, 0);
    char *p = in_dir("out/a_b/t0");
    double started = read_number(p) - t;
    free(p);
    CHECK(started >= 2.0 && started < 5.0);
    cJSON *s = load_summary();
    const cJSON *c = summary_config(s, "a_b");
    CHECK(c && cJSON_IsTrue(cJSON_GetObjectItem(c, "started_on_busy_gpu")));
    char *log = c ? read_text(cJSON_GetObjectItem(c, "log")->valuestring) : cg_xstrdup("");
    CHECK(strstr(log, "[WARN] GPU 0 utilization 99% stayed above the threshold 70%") != NULL);
    free(log);
    if (check_failures_now) dump_output();
    cJSON_Delete(s);
}

/* Wait until `path` exists (at most `limit` s). */
static int wait_for_file(const char *path, double limit) {
    double t0 = now_s();
    while (!cg_file_exists(path)) {
        if (now_s() - t0 > limit) return 0;
        usleep(20000);
    }
    return 1;
}

/* SIGINT while jobs run: every job process (and its children) is gone within the grace period,
 * the summary is still printed, exit status 130. Then --resume runs only the unfinished configs. */
static void test_sigint_then_resume(void) {
    new_test_dir("sigint");
    write_text("nvml.txt", "gpu\ngpu\n");
    /* quick finishes at once; slowA/slowB start a background child, record pids, and sleep;
     * slowB ignores TERM so only KILL ends it; later never starts (2 slots) */
    const char *cmd =
        "echo {id} >> {out_dir}/../../ran; case {image_encoder} in quick) exit 0;; "
        "slowA) sleep 60 & echo $! > {out_dir}/child; echo $$ > {out_dir}/pid; wait;; "
        "slowB) trap '' TERM; sleep 60 & echo $! > {out_dir}/child; echo $$ > {out_dir}/pid; wait;; "
        "*) sleep 60;; esac";
    char *ran = in_dir("out/../ran");
    const char *args[] = {"--gpus", "0,1", "--image-encoders", "quick,slowA,slowB,later", "--text-encoders", "t",
        "--order", "grid", "--kill-grace", "1.5", "--gpu-util-threshold", "100", "--status-interval", "0",
        "--command", cmd, NULL};
    cg_mkdir_p(dir);
    char *outdir = in_dir("out");
    cg_mkdir_p(outdir);
    pid_t pid = start_clipgrid(args);
    char *pa = in_dir("out/slowA_t/child"), *pb = in_dir("out/slowB_t/child");
    char *qa = in_dir("out/slowA_t/pid"), *qb = in_dir("out/slowB_t/pid");
    /* quick runs first on one GPU, then slowA there; slowB on the other */
    int up = wait_for_file(pa, 10) && wait_for_file(pb, 10) && wait_for_file(qa, 10) && wait_for_file(qb, 10);
    CHECK(up);
    usleep(200000);
    pid_t kids[4] = {(pid_t)read_number(pa), (pid_t)read_number(pb), (pid_t)read_number(qa), (pid_t)read_number(qb)};
    for (int i = 0; i < 4; i++) CHECK(kids[i] > 0 && pid_alive(kids[i]));
    double t = now_s();
    kill(pid, SIGINT);
    int rc = wait_clipgrid(pid, 20);
    double took = now_s() - t;
    CHECK_EQ_INT(rc, 130);
    CHECK(took < 1.5 + 3.0);  /* grace period, then KILL (slack for a loaded machine) */
    usleep(100000);
    for (int i = 0; i < 4; i++) {
        if (kids[i] > 0 && pid_alive(kids[i])) fprintf(stderr, "  process %d is still alive\n", (int)kids[i]);
        CHECK(kids[i] > 0 && !pid_alive(kids[i]));
    }
    cJSON *s = load_summary();
    CHECK_EQ_STR(summary_status(s, "quick_t"), "SUCCEEDED");
    CHECK_EQ_STR(summary_status(s, "slowA_t"), "INTERRUPTED");
    CHECK_EQ_STR(summary_status(s, "slowB_t"), "INTERRUPTED");
    CHECK_EQ_STR(summary_status(s, "later_t"), "NOT_STARTED");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(s, "interrupted")));
    cJSON_Delete(s);
    if (check_failures_now) dump_output();

    /* --resume: only the unfinished ones (slowA, slowB, later) run again */
    unlink(ran);
    const char *args2[] = {"--gpus", "0,1", "--image-encoders", "quick,slowA,slowB,later", "--text-encoders", "t",
        "--gpu-util-threshold", "100", "--status-interval", "0", "--resume", "--command", "echo {id} >> {out_dir}/../../ran", NULL};
    rc = run_clipgrid(args2, 20);
    CHECK_EQ_INT(rc, 0);
    char *text = read_text(ran);
    CHECK(strstr(text, "quick_t") == NULL);
    CHECK(strstr(text, "slowA_t") && strstr(text, "slowB_t") && strstr(text, "later_t"));
    free(text);
    s = load_summary();
    CHECK_EQ_STR(summary_status(s, "quick_t"), "SKIPPED");
    CHECK_EQ_STR(summary_status(s, "later_t"), "SUCCEEDED");
    cJSON_Delete(s);
    /* and a second --resume has nothing left to do */
    unlink(ran);
    rc = run_clipgrid(args2, 20);
    CHECK_EQ_INT(rc, 0);
    CHECK(!cg_file_exists(ran));
    if (check_failures_now) dump_output();
    free(ran); free(outdir); free(pa); free(pb); free(qa); free(qb);
}

/* --retries reruns a failed job (on the other GPU), --retry-failed reruns only failures. */
static void test_retries_and_retry_failed(void) {
    new_test_dir("retries");
    write_text("nvml.txt", "gpu\ngpu\n");
    /* flaky fails on its first attempt only; bad always fails */
    const char *cmd = "case {image_encoder} in flaky) if [ -e {out_dir}/once ]; then exit 0; fi; touch {out_dir}/once; exit 3;; "
                      "bad) exit 4;; *) exit 0;; esac";
    const char *args[] = {"--gpus", "0,1", "--image-encoders", "flaky,bad,good", "--text-encoders", "t",
        "--retries", "1", "--gpu-util-threshold", "100", "--status-interval", "0", "--command", cmd, NULL};
    int rc = run_clipgrid(args, 20);
    CHECK_EQ_INT(rc, 1);
    cJSON *s = load_summary();
    const cJSON *f = summary_config(s, "flaky_t"), *b = summary_config(s, "bad_t");
    CHECK_EQ_STR(summary_status(s, "flaky_t"), "SUCCEEDED");
    CHECK(f && cJSON_GetObjectItem(f, "attempts")->valueint == 2);
    CHECK(b && cJSON_GetObjectItem(b, "attempts")->valueint == 2);
    CHECK_EQ_STR(summary_status(s, "bad_t"), "FAILED");
    cJSON_Delete(s);
    /* --resume: everything that has not succeeded, here only bad (which fails again) */
    const char *args_resume[] = {"--gpus", "0", "--image-encoders", "flaky,bad,good", "--text-encoders", "t",
        "--gpu-util-threshold", "100", "--status-interval", "0", "--resume",
        "--command", "echo {id} >> {out_dir}/../resumed; exit 4", NULL};
    CHECK_EQ_INT(run_clipgrid(args_resume, 20), 1);
    char *resumed = in_dir("out/resumed"), *rtext = read_text(resumed);
    CHECK_EQ_STR(rtext, "bad_t\n");
    free(resumed); free(rtext);
    /* --retry-failed: only bad runs (and now succeeds) */
    const char *args2[] = {"--gpus", "0", "--image-encoders", "flaky,bad,good", "--text-encoders", "t",
        "--gpu-util-threshold", "100", "--status-interval", "0", "--retry-failed",
        "--command", "echo {id} > {out_dir}/../only; exit 0", NULL};
    rc = run_clipgrid(args2, 20);
    CHECK_EQ_INT(rc, 0);
    char *only = in_dir("out/only"), *text = read_text(only);
    CHECK_EQ_STR(text, "bad_t\n");
    free(only); free(text);
    s = load_summary();
    CHECK_EQ_STR(summary_status(s, "flaky_t"), "SKIPPED");
    CHECK_EQ_STR(summary_status(s, "bad_t"), "SUCCEEDED");
    cJSON_Delete(s);
    if (check_failures_now) dump_output();
}

/* A GPU that does not exist is reported and dropped; none left is an error, nothing started. */
static void test_missing_gpu_skipped(void) {
    new_test_dir("missing_gpu");
    write_text("nvml.txt", "gpu uuid=GPU-only-0\ngpu broken=1\n");
    const char *args[] = {"--gpus", "0,5,1", "--image-encoders", "a", "--text-encoders", "b",
        "--gpu-util-threshold", "100", "--status-interval", "0", "--command", "echo $CUDA_VISIBLE_DEVICES > {out_dir}/env", NULL};
    int rc = run_clipgrid(args, 20);
    CHECK_EQ_INT(rc, 0);
    char *e = in_dir("stderr"), *text = read_text(e);
    CHECK(strstr(text, "[ERROR] GPU 5 unavailable, skipped") != NULL);
    CHECK(strstr(text, "[ERROR] GPU 1 unavailable, skipped") != NULL);  /* broken */
    free(text);
    char *env = in_dir("out/a_b/env");
    text = read_text(env);
    CHECK_EQ_STR(text, "GPU-only-0\n");
    free(text); free(env);
    if (check_failures_now) dump_output();

    new_test_dir("no_gpu_left");
    write_text("nvml.txt", "gpu\n");
    const char *args2[] = {"--gpus", "5,7", "--image-encoders", "a", "--text-encoders", "b", "--command", "true", NULL};
    rc = run_clipgrid(args2, 20);
    CHECK_EQ_INT(rc, 6);
    text = read_text(e);
    free(e);
    e = in_dir("stderr");
    free(text);
    text = read_text(e);
    CHECK(strstr(text, "no usable GPU among \"5,7\"") != NULL);
    free(text);
    char *logs = in_dir("logs/ledger.tsv");
    CHECK(!cg_file_exists(logs));
    free(logs); free(e);

    /* no NVML at all: an error that points at --gpus cpu */
    new_test_dir("no_nvml");
    write_text("nvml.txt", "fail_init=1\n");
    rc = run_clipgrid(args2, 20);
    CHECK_EQ_INT(rc, 6);
    e = in_dir("stderr");
    text = read_text(e);
    CHECK(strstr(text, "--gpus cpu") != NULL);
    free(text); free(e);
}

/* Malformed JSON, an unknown key, an empty encoder list: clear error, nothing started. */
static void test_bad_input_starts_nothing(void) {
    new_test_dir("bad_input");
    write_text("nvml.txt", "gpu\n");
    struct { const char *file, *text, *want; int code; } cases[] = {
        {"g1.json", "{\"image_encoders\": [\"a\"],\n \"text_encoders\": [\"b\"\n}", "g1.json:3:", 3},
        {"g2.json", "{\"image_encoders\": [\"a\"],\n \"text_encoders\": [\"b\"],\n \"gpu\": [0]}",
         "g2.json:3: unknown key \"gpu\" in the grid file (did you mean \"gpus\"?)", 3},
        {"g3.json", "{\"image_encoders\": [\"a\"],\n \"text_encoders\": []}", "g3.json:2: \"text_encoders\" is empty", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_text(cases[i].file, cases[i].text);
        char *p = in_dir(cases[i].file);
        const char *args[] = {"--config", p, "--gpus", "0", "--command", "touch {out_dir}/../started", NULL};
        int rc = run_clipgrid(args, 20);
        CHECK_EQ_INT(rc, cases[i].code);
        char *e = in_dir("stderr"), *text = read_text(e);
        if (!strstr(text, cases[i].want)) fprintf(stderr, "  stderr: %s  wanted: %s\n", text, cases[i].want);
        CHECK(strstr(text, cases[i].want) != NULL);
        free(e); free(text); free(p);
    }
    const char *args[] = {"--gpus", "0", "--image-encoders", "", "--text-encoders", "b", "--command", "true", NULL};
    CHECK_EQ_INT(run_clipgrid(args, 20), 2);
    const char *args2[] = {"--gpus", "0", "--image-encoders", "a", "--text-encoders", "b", "--command", "echo {nope}", NULL};
    CHECK_EQ_INT(run_clipgrid(args2, 20), 2);
    const char *args3[] = {"--gpus", "0", "--jobs-per-gpu", "zero", "--image-encoders", "a", "--text-encoders", "b", NULL};
    CHECK_EQ_INT(run_clipgrid(args3, 20), 2);
    char *e = in_dir("stderr"), *text = read_text(e);
    CHECK(strstr(text, "--jobs-per-gpu: \"zero\" is not a number") != NULL);
    free(e); free(text);
    char *started = in_dir("out/started"), *logs = in_dir("logs");
    CHECK(!cg_file_exists(started));
    CHECK(!cg_file_exists(logs));
    free(started); free(logs);
}

/* CPU slots: no NVML needed; each job gets CUDA_VISIBLE_DEVICES="" and its share of the cores. */
static void test_cpu_slots_and_dry_run(void) {
    new_test_dir("cpu");
    write_text("nvml.txt", "fail_init=1\n");  /* NVML unusable: must not matter */
    const char *args[] = {"--gpus", "cpu:2", "--image-encoders", "a,b", "--text-encoders", "t", "--status-interval", "0",
        "--command", "echo \"[$CUDA_VISIBLE_DEVICES] $OMP_NUM_THREADS $CLIPGRID_GPU\" > {out_dir}/env", NULL};
    CHECK_EQ_INT(run_clipgrid(args, 20), 0);
    char *p = in_dir("out/a_t/env"), *text = read_text(p);
    char want[64];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(want, sizeof want, "[] %ld cpu\n", cores / 2 > 0 ? cores / 2 : 1);
    CHECK_EQ_STR(text, want);
    free(p); free(text);
    CHECK_EQ_INT(count_logs_matching("^a_t_cpu_[0-9]{8}_[0-9]{6}\\.log$"), 1);

    /* --dry-run: the plan, with no NVML and nothing started */
    new_test_dir("dry");
    write_text("nvml.txt", "fail_init=1\n");
    const char *args2[] = {"--dry-run", "--gpus", "0,1", "--image-encoders", "starnet_s1,starnet_s4",
        "--text-encoders", "clip:ViT-B/32", "--", "--epochs", "3", NULL};
    CHECK_EQ_INT(run_clipgrid(args2, 20), 0);
    char *o = in_dir("stdout");
    text = read_text(o);
    CHECK(strstr(text, "plan: 2 configs to run on 2 slots") != NULL);
    char *s4 = strstr(text, "starnet_s4_clip_ViT-B_32"), *s1 = strstr(text, "starnet_s1_clip_ViT-B_32");
    CHECK(s4 && s1 && s4 < s1);  /* longest first */
    CHECK(strstr(text, "train --image-encoder starnet_s4 --text-encoder clip:ViT-B/32 --out ") != NULL);
    CHECK(strstr(text, "--device cuda --epochs 3") != NULL);
    free(text); free(o);
    char *logs = in_dir("logs");
    CHECK(!cg_file_exists(logs));
    free(logs);
}

/* result.json metrics reach the summary; progress.json reaches the live status. */
static void test_metrics_and_progress(void) {
    new_test_dir("metrics");
    write_text("nvml.txt", "gpu\n");
    const char *args[] = {"--gpus", "0", "--image-encoders", "a", "--text-encoders", "b", "--gpu-util-threshold", "100",
        "--status-interval", "0.3",
        "--command", "echo '{{\"step\": 5, \"total_steps\": 10, \"loss\": 2.5, \"eta_s\": 65}}' > {out_dir}/progress.json; "
                     "sleep 2; echo '{{\"zeroshot_top1\": 0.9123, \"loss\": 0.25, \"images_per_s\": 1234.5}}' > {out_dir}/result.json",
        NULL};
    CHECK_EQ_INT(run_clipgrid(args, 20), 0);
    char *o = in_dir("stdout"), *text = read_text(o);
    CHECK(strstr(text, "step 5/10  loss 2.5000  ETA 0:01:05") != NULL);
    CHECK(strstr(text, "0.9123") && strstr(text, "0.2500") && strstr(text, "1234.5"));
    free(o); free(text);
    cJSON *s = load_summary();
    const cJSON *c = summary_config(s, "a_b");
    const cJSON *r = c ? cJSON_GetObjectItem(c, "result") : NULL;
    CHECK(r && fabs(cJSON_GetObjectItem(r, "zeroshot_top1")->valuedouble - 0.9123) < 1e-9);
    cJSON_Delete(s);
    if (check_failures_now) dump_output();
}

/* Without --gpus, an inherited CUDA_VISIBLE_DEVICES (e.g. a Slurm allocation) limits the GPUs. */
static void test_inherited_cuda_visible_devices(void) {
    new_test_dir("inherited");
    write_text("nvml.txt", "gpu uuid=GPU-aaaa\ngpu uuid=GPU-bbbb\ngpu uuid=GPU-cccc\n");
    setenv("CUDA_VISIBLE_DEVICES", "GPU-cccc", 1);
    const char *args[] = {"--image-encoders", "a,b", "--text-encoders", "t", "--gpu-util-threshold", "100",
        "--status-interval", "0", "--command", "echo $CUDA_VISIBLE_DEVICES > {out_dir}/env", NULL};
    int rc = run_clipgrid(args, 20);
    unsetenv("CUDA_VISIBLE_DEVICES");
    CHECK_EQ_INT(rc, 0);
    for (int i = 0; i < 2; i++) {
        char *p = in_dir(i ? "out/b_t/env" : "out/a_t/env"), *text = read_text(p);
        CHECK_EQ_STR(text, "GPU-cccc\n");
        free(p); free(text);
    }
    if (check_failures_now) dump_output();
}

int main(void) {
    snprintf(root, sizeof root, "%s/launcher_XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    unsetenv("CUDA_VISIBLE_DEVICES");  /* the launcher would honour one from the environment */
    TEST_RUN(test_three_configs_two_gpus);
    TEST_RUN(test_failures_are_reported);
    TEST_RUN(test_busy_gpu_wait_then_start);
    TEST_RUN(test_busy_gpu_timeout_starts_anyway);
    TEST_RUN(test_sigint_then_resume);
    TEST_RUN(test_retries_and_retry_failed);
    TEST_RUN(test_missing_gpu_skipped);
    TEST_RUN(test_bad_input_starts_nothing);
    TEST_RUN(test_cpu_slots_and_dry_run);
    TEST_RUN(test_metrics_and_progress);
    TEST_RUN(test_inherited_cuda_visible_devices);
    return TEST_REPORT();
}
