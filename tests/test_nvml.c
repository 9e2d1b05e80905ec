/* Tests for src/grid/nvml.c and `clipgrid gpus`, through the real dlopen() path: the fake
 * libnvidia-ml.so.1 (tests/fake_nvml/fake_nvml.c) is loaded by file name
 * ($CLIPGRID_NVML_LIBRARY) or by soname through LD_LIBRARY_PATH, and its GPUs come from a
 * config file each test writes. */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "grid/nvml.h"

#define FAKE_LIB FAKE_NVML_DIR "/libnvidia-ml.so.1"
#define MIB (1024ULL * 1024ULL)

static char tmpdir[256];
static char config_path[320];

static double now_epoch(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Write the fake's config (atomically: the fake may be reading it) and point the process at
 * the fake library and that config. */
static void write_config(const char *text) {
    CHECK_EQ_INT(cg_file_write_atomic(config_path, text, strlen(text)), CG_OK);
    setenv("FAKE_NVML_CONFIG", config_path, 1);
    setenv("CLIPGRID_NVML_LIBRARY", FAKE_LIB, 1);
}

static nvml_session *open_with(const char *config) {
    write_config(config);
    nvml_session *s = NULL;
    int rc = nvml_open(&s);
    CHECK_EQ_INT(rc, CG_OK);
    if (rc) fprintf(stderr, "  nvml_open: %s\n", cg_error_message());
    return s;
}

static int contains(const char *haystack, const char *needle) {
    return haystack && strstr(haystack, needle) != NULL;
}

/* Run `clipgrid ARGS...` as a child. `env` entries "NAME=VALUE" are set in the child, entries
 * "NAME" unset. Its stdout and stderr come back in *out and *err (free()d by the caller).
 * Returns the exit status, or 128 + signal. */
static int run_clipgrid(const char *const *args, const char *const *env, char **out, char **err) {
    char *out_path = cg_path_join(tmpdir, "child.out"), *err_path = cg_path_join(tmpdir, "child.err");
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; env && env[i]; i++) {
            const char *eq = strchr(env[i], '=');
            if (!eq) { unsetenv(env[i]); continue; }
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(eq - env[i]), env[i]);
            setenv(name, eq + 1, 1);
        }
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        char *argv[16];
        int n = 0;
        argv[n++] = (char *)CLIPGRID_BIN;
        for (int i = 0; args[i] && n < 15; i++) argv[n++] = (char *)args[i];
        argv[n] = NULL;
        execv(CLIPGRID_BIN, argv);
        _exit(127);
    }
    int status = 0;
    CHECK(pid > 0);
    waitpid(pid, &status, 0);
    *out = *err = NULL;
    CHECK_EQ_INT(cg_file_read(out_path, out, NULL), CG_OK);
    CHECK_EQ_INT(cg_file_read(err_path, err, NULL), CG_OK);
    free(out_path);
    free(err_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---------------------------------------------------------------- the library layer */

static void test_count_uuid_name_memory(void) {
    nvml_session *s = open_with(
        "# three GPUs\n"
        "\n"
        "gpu uuid=GPU-aaaa-0 name=\"NVIDIA H100 80GB HBM3\" mem_total_mib=81559 mem_used_mib=1024\n"
        "gpu   # all defaults\n"
        "gpu uuid=GPU-cccc-2 name=A100 mem_total_mib=40960 mem_used_mib=40000\n");
    if (!s) return;
    CHECK_EQ_INT(nvml_device_count(s), 3);
    nvml_gpu_info g;
    CHECK_EQ_INT(nvml_gpu_query(s, 0, &g), CG_OK);
    CHECK_EQ_INT(g.index, 0);
    CHECK_EQ_STR(g.uuid, "GPU-aaaa-0");
    CHECK_EQ_STR(g.name, "NVIDIA H100 80GB HBM3");
    CHECK_EQ_INT(g.mem_total, 81559 * MIB);
    CHECK_EQ_INT(g.mem_used, 1024 * MIB);
    CHECK_EQ_INT(nvml_gpu_query(s, 1, &g), CG_OK);
    CHECK_EQ_INT(g.index, 1);
    CHECK_EQ_STR(g.uuid, "GPU-fake-1");
    CHECK_EQ_STR(g.name, "Fake GPU");
    CHECK_EQ_INT(g.mem_total, 81920 * MIB);
    CHECK_EQ_INT(g.mem_used, 0);
    CHECK_EQ_INT(g.util_gpu, 0);
    CHECK_EQ_INT(g.nprocs, 0);
    CHECK_EQ_INT(nvml_gpu_query(s, 2, &g), CG_OK);
    CHECK_EQ_STR(g.uuid, "GPU-cccc-2");
    CHECK_EQ_STR(g.name, "A100");
    CHECK_EQ_INT(g.mem_used, 40000 * MIB);
    nvml_close(s);
}

static void test_processes(void) {
    /* 70 processes: more than NVML_MAX_PROCS, and the count probe must allocate for them */
    char many[2048] = "gpu procs=";
    for (int i = 0; i < 70; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s%d:%d", i ? "," : "", 5000 + i, i);
    char config[4096];
    snprintf(config, sizeof config,
             "gpu procs=1234:512,99:64\n"
             "gpu\n"
             "gpu procs=unsupported\n"
             "%s\n", many);
    nvml_session *s = open_with(config);
    if (!s) return;
    nvml_gpu_info g;
    CHECK_EQ_INT(nvml_gpu_query(s, 0, &g), CG_OK);
    CHECK_EQ_INT(g.nprocs, 2);
    CHECK_EQ_INT(g.procs[0].pid, 1234);
    CHECK_EQ_INT(g.procs[0].used_mem, 512 * MIB);
    CHECK_EQ_INT(g.procs[1].pid, 99);            /* the second entry: the struct stride is right */
    CHECK_EQ_INT(g.procs[1].used_mem, 64 * MIB);
    CHECK_EQ_INT(nvml_gpu_query(s, 1, &g), CG_OK);
    CHECK_EQ_INT(g.nprocs, 0);
    CHECK_EQ_INT(nvml_gpu_query(s, 2, &g), CG_OK);
    CHECK_EQ_INT(g.nprocs, -1);                  /* not supported is not an error */
    CHECK_EQ_INT(nvml_gpu_query(s, 3, &g), CG_OK);
    CHECK_EQ_INT(g.nprocs, NVML_MAX_PROCS);      /* capped at the array size */
    CHECK_EQ_INT(g.procs[0].pid, 5000);
    CHECK_EQ_INT(g.procs[NVML_MAX_PROCS - 1].pid, 5000 + NVML_MAX_PROCS - 1);
    CHECK_EQ_INT(g.procs[NVML_MAX_PROCS - 1].used_mem, (NVML_MAX_PROCS - 1) * MIB);
    nvml_close(s);
}

static void test_utilization_schedule(void) {
    char config[512];
    snprintf(config, sizeof config,
             "start=%.3f\n"
             "gpu util=95@0,10@3\n"      /* 5 s in: the second step applies */
             "gpu util=95@0,10@100\n"    /* the second step is still ahead */
             "gpu util=50@2,60@4\n"      /* past both steps: the last one */
             "gpu util=40\n",           /* a constant */
             now_epoch() - 5);           /* start = 5 s ago: no sleeping */
    nvml_session *s = open_with(config);
    if (!s) return;
    CHECK_EQ_INT(nvml_gpu_utilization(s, 0), 10);
    CHECK_EQ_INT(nvml_gpu_utilization(s, 1), 95);
    CHECK_EQ_INT(nvml_gpu_utilization(s, 2), 60);
    CHECK_EQ_INT(nvml_gpu_utilization(s, 3), 40);
    nvml_gpu_info g;
    CHECK_EQ_INT(nvml_gpu_query(s, 0, &g), CG_OK);
    CHECK_EQ_INT(g.util_gpu, 10);
    CHECK_EQ_INT(g.util_mem, 10);

    /* the file is re-read on every call; before the first T the first value applies */
    snprintf(config, sizeof config, "start=%.3f\ngpu util=50@2,60@4\n", now_epoch() + 60);
    write_config(config);
    CHECK_EQ_INT(nvml_device_count(s), 1);
    CHECK_EQ_INT(nvml_gpu_utilization(s, 0), 50);
    CHECK_EQ_INT(nvml_gpu_utilization(s, 1), -1);   /* gone from the file */
    nvml_close(s);
}

static void test_default_start_is_first_init(void) {
    /* no start=: times count from nvmlInit, so right after opening the first step applies */
    nvml_session *s = open_with("gpu util=7@0,8@1000\n");
    if (!s) return;
    CHECK_EQ_INT(nvml_gpu_utilization(s, 0), 7);
    nvml_close(s);
}

static void test_utilization_log(void) {
    char *log_path = cg_path_join(tmpdir, "util.log");
    unlink(log_path);
    setenv("FAKE_NVML_LOG", log_path, 1);
    nvml_session *s = open_with("gpu util=40\ngpu util=70\n");
    if (s) {
        CHECK_EQ_INT(nvml_gpu_utilization(s, 1), 70);
        CHECK_EQ_INT(nvml_gpu_utilization(s, 0), 40);
        nvml_close(s);
    }
    unsetenv("FAKE_NVML_LOG");
    char *text = NULL;
    CHECK_EQ_INT(cg_file_read(log_path, &text, NULL), CG_OK);
    CHECK(contains(text, "util 1 70 "));
    CHECK(contains(text, "util 0 40 "));
    const char *first = text ? strstr(text, "util 1 70 ") : NULL, *second = text ? strstr(text, "util 0 40 ") : NULL;
    CHECK(first && second && first < second);   /* in call order */
    free(text);
    free(log_path);
}

static void test_broken_and_missing_gpu(void) {
    nvml_session *s = open_with("gpu\ngpu broken=1\ngpu uuid=GPU-after-broken\n");
    if (!s) return;
    CHECK_EQ_INT(nvml_device_count(s), 3);
    nvml_gpu_info g;
    CHECK_EQ_INT(nvml_gpu_query(s, 1, &g), CG_ERR_DEVICE);
    CHECK(contains(cg_error_message(), "GPU 1"));
    CHECK(contains(cg_error_message(), "GPU is lost"));
    CHECK_EQ_INT(nvml_gpu_utilization(s, 1), -1);
    CHECK_EQ_INT(nvml_gpu_query(s, 2, &g), CG_OK);   /* the others still work */
    CHECK_EQ_STR(g.uuid, "GPU-after-broken");

    CHECK_EQ_INT(nvml_gpu_query(s, 5, &g), CG_ERR_DEVICE);
    CHECK(contains(cg_error_message(), "GPU 5: nvmlDeviceGetHandleByIndex failed: Invalid Argument"));
    CHECK(contains(cg_error_message(), "NVML sees 3 GPUs"));
    CHECK_EQ_INT(nvml_gpu_query(s, -1, &g), CG_ERR_DEVICE);
    CHECK(contains(cg_error_message(), "GPU -1"));
    nvml_close(s);
}

static void test_unsupported_fields(void) {
    nvml_session *s = open_with("gpu util=unsupported\ngpu mem=unsupported uuid=unsupported util=30\n");
    if (!s) return;
    nvml_gpu_info g;
    CHECK_EQ_INT(nvml_gpu_query(s, 0, &g), CG_OK);
    CHECK_EQ_INT(g.util_gpu, -1);
    CHECK_EQ_INT(g.util_mem, -1);
    CHECK_EQ_STR(g.uuid, "GPU-fake-0");
    CHECK_EQ_INT(nvml_gpu_utilization(s, 0), -1);
    CHECK_EQ_INT(nvml_gpu_query(s, 1, &g), CG_OK);
    CHECK_EQ_INT(g.util_gpu, 30);
    CHECK_EQ_INT(g.mem_total, 0);
    CHECK_EQ_INT(g.mem_used, 0);
    CHECK_EQ_STR(g.uuid, "");
    nvml_close(s);
}

static void test_init_failures(void) {
    nvml_session *s = (nvml_session *)1;
    write_config("fail_init=1\ngpu\n");
    CHECK_EQ_INT(nvml_open(&s), CG_ERR_DEVICE);
    CHECK(s == NULL);
    CHECK(contains(cg_error_message(), "nvmlInit failed: Driver Not Loaded"));

    char *missing = cg_path_join(tmpdir, "no-such-config");
    setenv("FAKE_NVML_CONFIG", missing, 1);
    CHECK_EQ_INT(nvml_open(&s), CG_ERR_DEVICE);
    CHECK(contains(cg_error_message(), "Driver Not Loaded"));
    free(missing);

    write_config("gpu colour=red\n");   /* a malformed config fails loudly, not silently */
    CHECK_EQ_INT(nvml_open(&s), CG_ERR_DEVICE);
    CHECK(contains(cg_error_message(), "Unknown Error"));
}

static void test_missing_library(void) {
    write_config("gpu\n");
    char *lib = cg_path_join(tmpdir, "nowhere/libnvidia-ml.so.1");
    setenv("CLIPGRID_NVML_LIBRARY", lib, 1);
    nvml_session *s = (nvml_session *)1;
    CHECK_EQ_INT(nvml_open(&s), CG_ERR_DEVICE);
    CHECK(s == NULL);
    CHECK(contains(cg_error_message(), "NVML not available: cannot load"));
    CHECK(contains(cg_error_message(), lib));
    free(lib);

    /* a library without NVML's symbols is refused by name */
    setenv("CLIPGRID_NVML_LIBRARY", "libc.so.6", 1);
    CHECK_EQ_INT(nvml_open(&s), CG_ERR_DEVICE);
    CHECK(contains(cg_error_message(), "has no nvmlInit"));
}

/* ---------------------------------------------------------------- clipgrid gpus */

static const char *const gpus_config =
    "start=0\n"
    "gpu uuid=GPU-fake-0 name=FakeGPU mem_total_mib=81920 mem_used_mib=1024 util=95@0,10@3 procs=1234:512,99:64\n"
    "gpu broken=1\n"
    "gpu uuid=GPU-fake-2 util=unsupported procs=unsupported\n";

static void test_gpus_table(void) {
    write_config(gpus_config);
    const char *args[] = {"gpus", NULL};
    char *out, *err;
    CHECK_EQ_INT(run_clipgrid(args, NULL, &out, &err), 0);
    CHECK(contains(out, "GPU-fake-0"));
    CHECK(contains(out, "FakeGPU"));
    CHECK(contains(out, "10%"));
    CHECK(contains(out, "1024 / 81920 MiB"));
    CHECK(contains(out, "2: 1234 (512 MiB), 99 (64 MiB)"));
    CHECK(contains(out, "GPU-fake-2"));
    CHECK(contains(out, "n/a"));
    CHECK(!contains(out, "GPU-fake-1"));
    CHECK(contains(err, "[ERROR] GPU 1 unavailable: "));
    CHECK(contains(err, "GPU is lost"));
    /* the unsupported GPU's line has n/a for util and processes */
    const char *line2 = out ? strstr(out, "GPU-fake-2") : NULL;
    CHECK(line2 && contains(line2, "n/a"));
    if (line2) {
        const char *eol = strchr(line2, '\n');
        int na = 0;
        for (const char *p = line2; (p = strstr(p, "n/a")) && (!eol || p < eol); p++) na++;
        CHECK_EQ_INT(na, 2);
    }
    free(out);
    free(err);
}

static void test_gpus_json(void) {
    write_config(gpus_config);
    const char *args[] = {"gpus", "--json", NULL};
    char *out, *err;
    CHECK_EQ_INT(run_clipgrid(args, NULL, &out, &err), 0);
    cJSON *root = out ? cJSON_Parse(out) : NULL;
    CHECK(root != NULL);
    if (root) {
        cJSON *gpus = cJSON_GetObjectItem(root, "gpus"), *errors = cJSON_GetObjectItem(root, "errors");
        CHECK_EQ_INT(cJSON_GetArraySize(gpus), 2);
        CHECK_EQ_INT(cJSON_GetArraySize(errors), 1);
        cJSON *g0 = cJSON_GetArrayItem(gpus, 0), *g2 = cJSON_GetArrayItem(gpus, 1);
        CHECK_EQ_INT(cJSON_GetObjectItem(g0, "index")->valueint, 0);
        CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(g0, "uuid")), "GPU-fake-0");
        CHECK_EQ_INT(cJSON_GetObjectItem(g0, "util_gpu")->valueint, 10);
        CHECK_EQ_INT(cJSON_GetObjectItem(g0, "memory_used_mib")->valueint, 1024);
        CHECK_EQ_INT(cJSON_GetObjectItem(g0, "memory_total_mib")->valueint, 81920);
        cJSON *procs = cJSON_GetObjectItem(g0, "processes");
        CHECK_EQ_INT(cJSON_GetArraySize(procs), 2);
        CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetArrayItem(procs, 1), "pid")->valueint, 99);
        CHECK_EQ_INT(cJSON_GetObjectItem(g2, "index")->valueint, 2);
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(g2, "util_gpu")));
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(g2, "processes")));
        cJSON *e = cJSON_GetArrayItem(errors, 0);
        CHECK_EQ_INT(cJSON_GetObjectItem(e, "index")->valueint, 1);
        CHECK(contains(cJSON_GetStringValue(cJSON_GetObjectItem(e, "error")), "GPU is lost"));
        cJSON_Delete(root);
    }
    free(out);
    free(err);
}

static void test_gpus_default_soname(void) {
    /* no CLIPGRID_NVML_LIBRARY: the soname libnvidia-ml.so.1 is found through LD_LIBRARY_PATH */
    write_config("gpu uuid=GPU-via-soname\n");
    const char *args[] = {"gpus", NULL};
    const char *env[] = {"CLIPGRID_NVML_LIBRARY", "LD_LIBRARY_PATH=" FAKE_NVML_DIR, NULL};
    char *out, *err;
    CHECK_EQ_INT(run_clipgrid(args, env, &out, &err), 0);
    CHECK(contains(out, "GPU-via-soname"));
    free(out);
    free(err);
}

static void test_gpus_without_nvml(void) {
    write_config("gpu\n");
    char *lib = cg_path_join(tmpdir, "nowhere/libnvidia-ml.so.1");
    char *env_lib = cg_xasprintf("CLIPGRID_NVML_LIBRARY=%s", lib);
    const char *args[] = {"gpus", NULL};
    const char *env[] = {env_lib, NULL};
    char *out, *err;
    CHECK_EQ_INT(run_clipgrid(args, env, &out, &err), 1);
    CHECK(contains(err, "no NVML"));
    CHECK(contains(err, lib));
    CHECK(contains(err, "clipgrid run --gpus cpu"));
    free(out);
    free(err);

    const char *env_fail[] = {"FAKE_NVML_CONFIG=/nonexistent/fake.conf", NULL};
    CHECK_EQ_INT(run_clipgrid(args, env_fail, &out, &err), 1);
    CHECK(contains(err, "Driver Not Loaded"));
    free(out);
    free(err);
    free(env_lib);
    free(lib);
}

static void test_gpus_help_and_usage(void) {
    write_config("gpu\n");
    char *out, *err;
    const char *help[] = {"gpus", "--help", NULL};
    CHECK_EQ_INT(run_clipgrid(help, NULL, &out, &err), 0);
    CHECK(contains(out, "usage: clipgrid gpus"));
    free(out);
    free(err);
    const char *bad[] = {"gpus", "--bogus", NULL};
    CHECK_EQ_INT(run_clipgrid(bad, NULL, &out, &err), 2);
    CHECK(contains(err, "--bogus"));
    free(out);
    free(err);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/nvml_test_XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    snprintf(config_path, sizeof config_path, "%s/fake.conf", tmpdir);
    unsetenv("FAKE_NVML_LOG");
    TEST_RUN(test_count_uuid_name_memory);
    TEST_RUN(test_processes);
    TEST_RUN(test_utilization_schedule);
    TEST_RUN(test_default_start_is_first_init);
    TEST_RUN(test_utilization_log);
    TEST_RUN(test_broken_and_missing_gpu);
    TEST_RUN(test_unsupported_fields);
    TEST_RUN(test_init_failures);
    TEST_RUN(test_missing_library);
    TEST_RUN(test_gpus_table);
    TEST_RUN(test_gpus_json);
    TEST_RUN(test_gpus_default_soname);
    TEST_RUN(test_gpus_without_nvml);
    TEST_RUN(test_gpus_help_and_usage);
    return TEST_REPORT();
}
