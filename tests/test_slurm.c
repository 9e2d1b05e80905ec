/* `clipgrid run --backend slurm`: parsing of Slurm's output, the batch script, bad input — and
 * a real one-node Slurm cluster with 4 fake GPUs (scripts/slurm-local.sh) running a grid of 6
 * configurations: each task's CUDA_VISIBLE_DEVICES, the %K limit, a FAILED task with its log,
 * --resume resubmitting only it, a task cancelled with scancel, Ctrl-C.
 *
 * The cluster: when `sinfo` does not answer, the test starts it with scripts/slurm-local.sh
 * (root only; it is left running for other test runs). Without root or without Slurm installed the
 * cluster tests fail with a message saying how to start it: nothing is skipped silently. */
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
#include "grid/run_slurm.h"

static char root[256];
static char dir[512];
static int cluster_ok;        /* a cluster answers */
static int cluster_started;   /* we started it: stop it at the end */

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

static char *read_text(const char *path) {
    char *t = NULL;
    if (cg_file_read(path, &t, NULL) != CG_OK) return cg_xstrdup("");
    return t;
}

static char *read_in_dir(const char *name) {
    char *p = in_dir(name), *t = read_text(p);
    free(p);
    return t;
}

/* Run a shell command line; its exit status. */
static int sh(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* `clipgrid run --backend slurm --log-dir dir/logs --out-dir dir/out ARGS`, in dir, with stdout and
 * stderr to dir/stdout, dir/stderr; stdin /dev/null (not a terminal). */
static pid_t start_clipgrid(const char *const *args) {
    pid_t pid = fork();
    if (pid == 0) {
        char *out = in_dir("stdout"), *err = in_dir("stderr");
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fi = open("/dev/null", O_RDONLY);
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        if (chdir(dir) != 0) _exit(126);
        const char *argv[64];
        int n = 0;
        argv[n++] = CLIPGRID_BIN;
        argv[n++] = "run";
        argv[n++] = "--backend"; argv[n++] = "slurm";
        argv[n++] = "--log-dir"; argv[n++] = "logs";
        argv[n++] = "--out-dir"; argv[n++] = "out";
        for (int i = 0; args[i] && n < 62; i++) argv[n++] = args[i];
        argv[n] = NULL;
        execv(CLIPGRID_BIN, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int wait_clipgrid(pid_t pid, double limit) {
    double t0 = now_s();
    for (;;) {
        int ws;
        if (waitpid(pid, &ws, WNOHANG) == pid) return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        if (now_s() - t0 > limit) {
            kill(pid, SIGKILL);
            waitpid(pid, &ws, 0);
            fprintf(stderr, "  clipgrid did not finish in %.0f s\n", limit);
            return -1;
        }
        usleep(50000);
    }
}

static int run_clipgrid(const char *const *args, double limit) { return wait_clipgrid(start_clipgrid(args), limit); }

static void dump_output(void) {
    char *o = read_in_dir("stdout"), *e = read_in_dir("stderr");
    fprintf(stderr, "---- stdout ----\n%s---- stderr ----\n%s----\n", o, e);
    free(o);
    free(e);
}

static cJSON *load_summary(void) {
    char *p = in_dir("logs/summary.json");
    cg_json_doc doc;
    cJSON *r = NULL;
    if (cg_json_load(p, &doc) == CG_OK) { r = doc.root; doc.root = NULL; cg_json_free(&doc); }
    free(p);
    return r;
}

static const cJSON *summary_config(const cJSON *s, const char *id) {
    const cJSON *arr = cJSON_GetObjectItem(s, "configs");
    for (const cJSON *c = arr ? arr->child : NULL; c; c = c->next)
        if (!strcmp(cJSON_GetObjectItem(c, "id")->valuestring, id)) return c;
    return NULL;
}

static const char *field(const cJSON *s, const char *id, const char *key) {
    const cJSON *c = summary_config(s, id);
    const cJSON *v = c ? cJSON_GetObjectItem(c, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : "(missing)";
}

/* Wait until dir/stdout contains `needle` (at most `limit` seconds). */
static int wait_stdout(const char *needle, double limit) {
    double t0 = now_s();
    while (now_s() - t0 < limit) {
        char *o = read_in_dir("stdout");
        int found = strstr(o, needle) != NULL;
        free(o);
        if (found) return 1;
        usleep(100000);
    }
    return 0;
}

/* ------------------------------------------------------------------ without a cluster */

static void test_parse_scontrol(void) {
    slurm_task_info t;
    const char *done = "JobId=42 ArrayJobId=40 ArrayTaskId=3 ArrayTaskThrottle=4 JobName=clipgrid UserId=root(0) "
                       "JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 RunTime=00:00:02 "
                       "StartTime=2026-11-27T04:43:53 EndTime=2026-11-27T04:43:55 NodeList=node7 BatchHost=node7";
    CHECK_EQ_INT(slurm_parse_scontrol_line(done, "40", &t), 1);
    CHECK_EQ_INT(t.task, 3);
    CHECK_EQ_STR(t.state, "FAILED");
    CHECK_EQ_INT(t.exit_code, 3);
    CHECK_EQ_STR(t.node, "node7");
    CHECK_EQ_STR(t.job_id, "40_3");
    CHECK_NEAR(t.end - t.start, 2, 0.01);
    CHECK_EQ_INT(slurm_parse_scontrol_line(done, "41", &t), 0);  /* another array */
    const char *pending = "JobId=40 ArrayJobId=40 ArrayTaskId=4-5,7%4 JobState=PENDING Reason=JobArrayTaskLimit "
                          "ExitCode=0:0 StartTime=Unknown EndTime=Unknown NodeList=(null)";
    CHECK_EQ_INT(slurm_parse_scontrol_line(pending, "40", &t), 1);
    CHECK_EQ_INT(t.task, -1);
    CHECK_EQ_STR(t.tasks, "4-5,7%4");
    CHECK_EQ_STR(t.node, "");
    CHECK(slurm_task_list_contains(t.tasks, 4) && slurm_task_list_contains(t.tasks, 5) &&
          slurm_task_list_contains(t.tasks, 7));
    CHECK(!slurm_task_list_contains(t.tasks, 6) && !slurm_task_list_contains(t.tasks, 3));
    CHECK(slurm_task_list_contains("[0-8:4]", 4) && !slurm_task_list_contains("[0-8:4]", 5));
    CHECK(!slurm_parse_scontrol_line("JobId=9 JobState=RUNNING", "", &t));  /* not an array */
    const char *killed = "JobId=43 ArrayJobId=40 ArrayTaskId=5 JobState=CANCELLED Reason=None ExitCode=0:15";
    CHECK_EQ_INT(slurm_parse_scontrol_line(killed, "", &t), 1);
    CHECK_EQ_STR(t.state, "CANCELLED");
    CHECK_EQ_INT(t.signal, 15);
}

static void test_parse_sacct_and_states(void) {
    slurm_task_info t;
    CHECK_EQ_INT(slurm_parse_sacct_line("40_2|CANCELLED by 0|0:15|2026-11-27T04:43:53|2026-11-27T04:44:03|node1\n",
                                        "40", &t), 1);
    CHECK_EQ_INT(t.task, 2);
    CHECK_EQ_STR(t.state, "CANCELLED");
    CHECK_EQ_STR(t.node, "node1");
    CHECK_NEAR(t.end - t.start, 10, 0.01);
    CHECK_EQ_INT(slurm_parse_sacct_line("40_[3-5%2]|PENDING|0:0|Unknown|Unknown|None assigned", "40", &t), 1);
    CHECK_EQ_INT(t.task, -1);
    CHECK(slurm_task_list_contains(t.tasks, 5));
    CHECK_EQ_INT(slurm_parse_sacct_line("41_1|COMPLETED|0:0|||", "40", &t), 0);
    job_status st;
    const char *terminal[] = {"COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "CANCELLED", "PREEMPTED", "NODE_FAIL"};
    const job_status want[] = {JOB_SUCCEEDED, JOB_FAILED, JOB_TIMEOUT, JOB_OUT_OF_MEMORY, JOB_CANCELLED,
                               JOB_PREEMPTED, JOB_NODE_FAIL};
    for (int i = 0; i < 7; i++) {
        CHECK_EQ_INT(slurm_state_outcome(terminal[i], &st), 1);
        CHECK_EQ_INT(st, want[i]);
        CHECK_EQ_STR(job_status_name(st), i == 0 ? "SUCCEEDED" : terminal[i]);
    }
    CHECK_EQ_INT(slurm_state_outcome("PENDING", &st), 0);
    CHECK_EQ_INT(slurm_state_outcome("RUNNING", &st), 0);
    CHECK_EQ_INT(slurm_state_outcome("COMPLETING", &st), 0);
    /* what --resume and --retry-failed do with them */
    CHECK(job_status_is_failure(JOB_OUT_OF_MEMORY));
    CHECK(!job_status_is_failure(JOB_CANCELLED) && !job_status_is_failure(JOB_PREEMPTED));
    CHECK_EQ_INT(job_status_parse("CANCELLED"), JOB_CANCELLED);
}

/* --dry-run prints the batch script: the array with %K, gres, partition/account/time/mem, extra
 * options, output into the log dir, one case per configuration; it submits and writes nothing. */
static void test_dry_run_prints_batch_script(void) {
    new_test_dir("dry");
    char *grid = in_dir("grid.json");
    const char *text = "{\n  \"image_encoders\": [\"starnet_s1\", \"starnet_s2\", \"starnet_s4\"],\n"
                       "  \"text_encoders\": [\"clip:ViT-B/32\", \"bert-base-chinese\"],\n"
                       "  \"train\": {\"epochs\": 2},\n"
                       "  \"max_parallel\": 4,\n"
                       "  \"slurm\": {\"partition\": \"gpu\", \"account\": \"vision\", \"time\": \"4:00:00\",\n"
                       "            \"mem\": \"32G\", \"sbatch_args\": [\"--qos=high\"]}\n}\n";
    cg_file_write_atomic(grid, text, strlen(text));
    const char *args[] = {"--config", grid, "--dry-run", "--sbatch-arg=--constraint=a100", NULL};
    CHECK_EQ_INT(run_clipgrid(args, 30), 0);
    char *o = read_in_dir("stdout");
    CHECK(strstr(o, "plan: 6 configs as one Slurm job array, at most 4 at once") != NULL);
    CHECK(strstr(o, "#SBATCH --array=0-5%4\n") != NULL);
    CHECK(strstr(o, "#SBATCH --gres=gpu:1\n") != NULL);
    CHECK(strstr(o, "#SBATCH --partition=gpu\n") != NULL);
    CHECK(strstr(o, "#SBATCH --account=vision\n") != NULL);
    CHECK(strstr(o, "#SBATCH --time=4:00:00\n") != NULL);
    CHECK(strstr(o, "#SBATCH --mem=32G\n") != NULL);
    CHECK(strstr(o, "#SBATCH --constraint=a100\n") != NULL);  /* the command line replaces the file's list */
    CHECK(strstr(o, "--qos=high") == NULL);
    CHECK(strstr(o, "/logs/slurm/") != NULL && strstr(o, "/task_%a.log\n") != NULL);
    /* longest first: starnet_s4 with the BERT tower is task 0 */
    CHECK(strstr(o, "0) ID=starnet_s4_bert-base-chinese\n") != NULL);
    CHECK(strstr(o, "5) ID=") != NULL && strstr(o, "6) ID=") == NULL);
    CHECK(strstr(o, "train --image-encoder starnet_s1 --text-encoder clip:ViT-B/32 --out out/starnet_s1_clip_ViT-B_32 "
                    "--device cuda --epochs 2") != NULL);
    free(o);
    char *logs = in_dir("logs");
    CHECK(!cg_file_exists(logs));  /* nothing written */
    free(logs);
    /* --gpus cpu: no gres, jobs on CPU; --timeout becomes --time in minutes */
    const char *args2[] = {"--image-encoders", "a", "--text-encoders", "x", "--gpus", "cpu", "--timeout", "90",
                           "--dry-run", NULL};
    CHECK_EQ_INT(run_clipgrid(args2, 30), 0);
    o = read_in_dir("stdout");
    CHECK(strstr(o, "--gres") == NULL);
    CHECK(strstr(o, "#SBATCH --time=2\n") != NULL);
    CHECK(strstr(o, "--device cpu") != NULL);
    free(o);
    free(grid);
}

static void expect_usage_error(const char *const *args, const char *needle) {
    int rc = run_clipgrid(args, 30);
    CHECK(rc == 2 || rc == 3);
    char *e = read_in_dir("stderr");
    if (!strstr(e, needle)) {
        fprintf(stderr, "  expected \"%s\" in stderr\n", needle);
        dump_output();
        CHECK(0);
    }
    free(e);
}

static void test_bad_slurm_input(void) {
    new_test_dir("bad");
    const char *a1[] = {"--image-encoders", "a", "--text-encoders", "x", "--time", "4h", "--dry-run", NULL};
    expect_usage_error(a1, "--time \"4h\"");
    const char *a2[] = {"--image-encoders", "a", "--text-encoders", "x", "--mem", "lots", "--dry-run", NULL};
    expect_usage_error(a2, "--mem \"lots\"");
    const char *a3[] = {"--image-encoders", "a", "--text-encoders", "x", "--sbatch-arg=--array=0-3", "--dry-run", NULL};
    expect_usage_error(a3, "sbatch option \"--array=0-3\"");
    const char *a4[] = {"--image-encoders", "a", "--text-encoders", "x", "--jobs-per-gpu", "2", "--dry-run", NULL};
    expect_usage_error(a4, "--jobs-per-gpu 2");
    const char *a5[] = {"--image-encoders", "a", "--text-encoders", "x", "--on-interrupt", "maybe", "--dry-run", NULL};
    expect_usage_error(a5, "--on-interrupt \"maybe\"");
    char *grid = in_dir("grid.json");
    const char *text = "{\n  \"image_encoders\": [\"a\"], \"text_encoders\": [\"x\"],\n"
                       "  \"slurm\": {\"partiton\": \"gpu\"}\n}\n";
    cg_file_write_atomic(grid, text, strlen(text));
    const char *a6[] = {"--config", grid, "--dry-run", NULL};
    expect_usage_error(a6, "partiton");
    const char *text2 = "{\"image_encoders\": [\"a\"], \"text_encoders\": [\"x\"], \"backend\": \"pbs\"}\n";
    cg_file_write_atomic(grid, text2, strlen(text2));
    /* --backend slurm on the command line wins over the file; without it the file's value is an error */
    pid_t pid = fork();
    if (pid == 0) {
        int fe = open("/dev/null", O_WRONLY);
        dup2(fe, 1);
        dup2(fe, 2);
        execl(CLIPGRID_BIN, CLIPGRID_BIN, "run", "--config", grid, "--dry-run", (char *)NULL);
        _exit(127);
    }
    int ws;
    waitpid(pid, &ws, 0);
    CHECK_EQ_INT(WEXITSTATUS(ws), 2);
    free(grid);
}

/* ------------------------------------------------------------------ the cluster */

static void setup_cluster(void) {
    static const char conf[] = "/var/spool/clipgrid-slurm/etc/slurm.conf";
    if (!getenv("SLURM_CONF") && access(conf, R_OK) == 0) setenv("SLURM_CONF", conf, 1);
    if (sh("timeout 10 sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed|alloc'") == 0) {
        cluster_ok = 1;
        return;
    }
    int have_slurm = sh("command -v slurmctld >/dev/null && command -v sbatch >/dev/null") == 0;
    if (geteuid() == 0 && have_slurm) {
        double t0 = now_s();
        char *cmd = cg_xasprintf("bash %s/../scripts/slurm-local.sh start >&2", TEST_SOURCE_DIR);
        int rc = sh(cmd);
        free(cmd);
        setenv("SLURM_CONF", conf, 1);
        if (rc == 0) {
            cluster_ok = cluster_started = 1;
            fprintf(stderr, "  started the local Slurm cluster in %.1f s\n", now_s() - t0);
            return;
        }
        fprintf(stderr, "  scripts/slurm-local.sh start failed (exit %d)\n", rc);
        return;
    }
    fprintf(stderr,
            "  no Slurm cluster answers `sinfo`, and this test cannot start one (%s).\n"
            "  Start the local test cluster as root:   sudo bash scripts/slurm-local.sh start\n"
            "  (packages: sudo bash scripts/install-deps.sh), then run the test again.\n",
            !have_slurm ? "Slurm is not installed" : "not root");
}

static int need_cluster(void) {
    if (!cluster_ok) {
        fprintf(stderr, "  FAIL: no Slurm cluster (see above)\n");
        CHECK(cluster_ok);
    }
    return cluster_ok;
}

/* Each job writes its CUDA_VISIBLE_DEVICES and start/end times, runs 2 s; b_y fails unless
 * dir/fixed exists. */
static const char *grid_command =
    "mkdir -p {out_dir} && echo \"$CUDA_VISIBLE_DEVICES\" > {out_dir}/cvd && date +%s.%N > {out_dir}/t0 && "
    "echo job {id} on gpu {gpu} && sleep 2 && date +%s.%N > {out_dir}/t1 && "
    "if [ {id} = b_y ] && [ ! -e fixed ]; then echo b_y breaks >&2; exit 3; fi";

static void test_grid_of_six(void) {
    new_test_dir("six");
    if (!need_cluster()) return;
    const char *args[] = {"--image-encoders", "a,b,c", "--text-encoders", "x,y", "--max-parallel", "4",
                          "--slurm-poll", "0.3", "--status-interval", "0", "--command", grid_command, NULL};
    double t0 = now_s();
    int rc = run_clipgrid(args, 180);
    fprintf(stderr, "  6 configs through Slurm: %.1f s\n", now_s() - t0);
    CHECK_EQ_INT(rc, 1);
    cJSON *s = load_summary();
    CHECK(s != NULL);
    const char *ids[] = {"a_x", "a_y", "b_x", "b_y", "c_x", "c_y"};
    double start[6], end[6];
    int cvd[6];
    for (int i = 0; i < 6; i++) {
        int bad = !strcmp(ids[i], "b_y");
        CHECK_EQ_STR(field(s, ids[i], "slurm_state"), bad ? "FAILED" : "COMPLETED");
        CHECK_EQ_STR(field(s, ids[i], "status"), bad ? "FAILED" : "SUCCEEDED");
        char *p = cg_xasprintf("%s/out/%s/cvd", dir, ids[i]), *q0 = cg_xasprintf("%s/out/%s/t0", dir, ids[i]),
             *q1 = cg_xasprintf("%s/out/%s/t1", dir, ids[i]);
        char *c = read_text(p), *a = read_text(q0), *b = read_text(q1);
        char *end_c;
        cvd[i] = (int)strtol(c, &end_c, 10);
        CHECK(end_c != c && (*end_c == '\n') && cvd[i] >= 0 && cvd[i] < 4);  /* one fake GPU, by index */
        CHECK_EQ_STR(field(s, ids[i], "cuda_visible_devices"), (c[strcspn(c, "\n")] = 0, c));
        start[i] = atof(a);
        end[i] = atof(b);
        free(p); free(q0); free(q1); free(c); free(a); free(b);
    }
    /* tasks that ran at the same time had different GPUs; never more than 4 at once (%4) */
    int max_conc = 0;
    for (int i = 0; i < 6; i++) {
        int conc = 0;
        for (int k = 0; k < 6; k++) {
            if (start[k] <= start[i] && end[k] > start[i]) conc++;
            if (k != i && start[k] < end[i] && start[i] < end[k]) CHECK(cvd[k] != cvd[i]);
        }
        if (conc > max_conc) max_conc = conc;
    }
    CHECK(max_conc >= 2 && max_conc <= 4);
    /* the failure: its exit code, its log path in the summary, the log is Slurm's output file */
    const cJSON *by = summary_config(s, "b_y");
    CHECK(by && cJSON_GetObjectItem(by, "exit_code") && cJSON_GetObjectItem(by, "exit_code")->valueint == 3);
    const char *log = field(s, "b_y", "log");
    regex_t re;
    regcomp(&re, "^logs/b_y_slurm_[0-9]{8}_[0-9]{6}\\.log$", REG_EXTENDED | REG_NOSUB);
    CHECK(regexec(&re, log, 0, NULL, 0) == 0);
    regfree(&re);
    char *out = read_in_dir("stdout");
    char *see = cg_xasprintf("b_y: see %s\n", log);
    CHECK(strstr(out, see) != NULL);
    CHECK(strstr(out, "FAILED (exit 3)") != NULL);
    CHECK(strstr(out, "5 succeeded, 1 failed (of 6)") != NULL);
    char *lt = read_in_dir(log);
    CHECK(strstr(lt, "# clipgrid run: config b_y (Slurm array task ") == lt);
    CHECK(strstr(lt, "b_y breaks\n") != NULL);           /* the job's stderr */
    CHECK(strstr(lt, "# end: FAILED (exit 3)") != NULL);
    free(lt);
    /* Slurm's --output of that task is a link to the config's log */
    char *job = cg_xasprintf("%s/logs/slurm", dir);
    DIR *d = opendir(job);
    struct dirent *e;
    char sub[256] = "";
    while (d && (e = readdir(d))) if (e->d_name[0] != '.') snprintf(sub, sizeof sub, "%s", e->d_name);
    if (d) closedir(d);
    char *script_path = cg_xasprintf("%s/%s/job.sh", job, sub);
    char *script = read_text(script_path);
    CHECK(strstr(script, "#SBATCH --array=0-5%4\n") != NULL);
    CHECK(strstr(script, "#SBATCH --gres=gpu:1\n") != NULL);
    char *pos = strstr(script, "ID=b_y\n");
    int task = pos ? atoi(pos - 3) : -1;
    char *link = cg_xasprintf("%s/%s/task_%d.log", job, sub, task), target[512];
    ssize_t tl = readlink(link, target, sizeof target - 1);
    target[tl > 0 ? tl : 0] = 0;
    CHECK(strstr(target, "b_y_slurm_") != NULL);
    free(link); free(script); free(script_path); free(job); free(see); free(out);
    if (rc != 1) dump_output();
    cJSON_Delete(s);

    /* --resume after the fix: one task, b_y, is submitted; the others stay done */
    char *fixed = in_dir("fixed");
    cg_file_write_atomic(fixed, "", 0);
    free(fixed);
    const char *args2[] = {"--image-encoders", "a,b,c", "--text-encoders", "x,y", "--max-parallel", "4",
                           "--slurm-poll", "0.3", "--status-interval", "0", "--resume",
                           "--command", grid_command, NULL};
    rc = run_clipgrid(args2, 120);
    CHECK_EQ_INT(rc, 0);
    out = read_in_dir("stdout");
    CHECK(strstr(out, ": 1 task, at most 1 at once") != NULL);
    CHECK(strstr(out, "[start] b_y:") != NULL);
    CHECK(strstr(out, "[start] a_x:") == NULL);
    CHECK(strstr(out, "1 succeeded, 0 failed, 5 skipped") != NULL);
    if (rc != 0) dump_output();
    free(out);
    s = load_summary();
    CHECK_EQ_STR(field(s, "b_y", "slurm_state"), "COMPLETED");
    CHECK_EQ_STR(field(s, "a_x", "status"), "SKIPPED");
    cJSON_Delete(s);
}

/* scancel of one task while the launcher follows: that task is CANCELLED, the other COMPLETED,
 * and --resume would submit the cancelled one again. */
static void test_scancel_one_task(void) {
    new_test_dir("cancel");
    if (!need_cluster()) return;
    const char *args[] = {"--image-encoders", "a,b", "--text-encoders", "x", "--slurm-poll", "0.3",
                          "--status-interval", "0", "--command",
                          "if [ {id} = a_x ]; then sleep 120; else sleep 1; fi", NULL};
    pid_t pid = start_clipgrid(args);
    int started = wait_stdout("[start] a_x: array task ", 60);
    CHECK(started);
    char *o = read_in_dir("stdout");
    char *p = strstr(o, "[start] a_x: array task ");
    char task[64] = "";
    if (p) sscanf(p + strlen("[start] a_x: array task "), "%63s", task);
    free(o);
    char *cmd = cg_xasprintf("scancel %s", task);
    CHECK(task[0] && sh(cmd) == 0);
    free(cmd);
    int rc = wait_clipgrid(pid, 90);
    CHECK_EQ_INT(rc, 1);
    cJSON *s = load_summary();
    CHECK_EQ_STR(field(s, "a_x", "slurm_state"), "CANCELLED");
    CHECK_EQ_STR(field(s, "a_x", "status"), "CANCELLED");
    CHECK_EQ_STR(field(s, "b_x", "slurm_state"), "COMPLETED");
    o = read_in_dir("stdout");
    CHECK(strstr(o, "[done] a_x: CANCELLED") != NULL);
    CHECK(strstr(o, "a_x: see logs/a_x_slurm_") != NULL);
    free(o);
    cJSON_Delete(s);
    const char *args2[] = {"--image-encoders", "a,b", "--text-encoders", "x", "--resume", "--dry-run", NULL};
    CHECK_EQ_INT(run_clipgrid(args2, 30), 0);
    o = read_in_dir("stdout");
    CHECK(strstr(o, "plan: 1 config as one Slurm job array") != NULL);
    CHECK(strstr(o, "0) ID=a_x\n") != NULL);
    free(o);
    if (rc != 1) dump_output();
}

/* SIGINT without a terminal: the launcher cancels the array, waits for it, prints the summary
 * with CANCELLED and exits 130; nothing of the array is left in the queue. */
static void test_sigint_cancels_array(void) {
    new_test_dir("sigint");
    if (!need_cluster()) return;
    const char *args[] = {"--image-encoders", "a,b", "--text-encoders", "x", "--slurm-poll", "0.3",
                          "--status-interval", "0", "--command", "sleep 120", NULL};
    pid_t pid = start_clipgrid(args);
    CHECK(wait_stdout("[start] ", 60));
    char *o = read_in_dir("stdout");
    char *p = strstr(o, "submitted array job ");
    char id[32] = "";
    if (p) sscanf(p + strlen("submitted array job "), "%31[0-9]", id);
    free(o);
    kill(pid, SIGINT);
    int rc = wait_clipgrid(pid, 90);
    CHECK_EQ_INT(rc, 130);
    o = read_in_dir("stdout");
    CHECK(strstr(o, "[interrupt] cancelled array job ") != NULL);
    CHECK(strstr(o, "CANCELLED") != NULL);
    free(o);
    char *cmd = cg_xasprintf("test -z \"$(squeue -h -j %s 2>/dev/null)\"", id);
    CHECK(id[0] && sh(cmd) == 0);
    free(cmd);
    if (rc != 130) dump_output();
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/clipgrid_test_slurm_XXXXXX");
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    chmod(root, 0755);
    TEST_RUN(test_parse_scontrol);
    TEST_RUN(test_parse_sacct_and_states);
    TEST_RUN(test_dry_run_prints_batch_script);
    TEST_RUN(test_bad_slurm_input);
    setup_cluster();
    TEST_RUN(test_grid_of_six);
    TEST_RUN(test_scancel_one_task);
    TEST_RUN(test_sigint_cancels_array);
    /* A cluster this test started is left running: another test run (the ASan suite, a second
     * build tree) may be using it right now. */
    if (cluster_started)
        fprintf(stderr, "  the local Slurm cluster stays up; stop it with: sudo bash scripts/slurm-local.sh stop\n");
    char *rm = cg_xasprintf("rm -rf %s", root);
    if (check_tests_failed == 0) sh(rm);
    free(rm);
    return TEST_REPORT();
}
