/* gpus_cli.c — `clipgrid gpus`: the GPUs as NVML sees them (what `clipgrid run` will see).
 *
 *   clipgrid gpus           a table: index, name, UUID, utilization, memory, compute processes
 *   clipgrid gpus --json    the same as one JSON object
 *
 * A GPU that cannot be queried is reported on stderr ("[ERROR] GPU 3 unavailable: ...") and the
 * others are still listed; exit status 0. Without NVML: a message and exit status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "core/json.h"
#include "core/log.h"
#include "grid/nvml.h"

#define MIB (1024ULL * 1024ULL)

typedef struct {
    nvml_gpu_info info;
    char *error;        /* NULL when the query worked */
} gpu_row;

static void usage(FILE *f) {
    fprintf(f,
            "usage: clipgrid gpus [--json]\n"
            "\n"
            "List the GPUs as NVML sees them (the same view `clipgrid run` schedules on):\n"
            "index, name, UUID, GPU utilization, memory used/total, compute processes.\n"
            "Fields a GPU does not support print as n/a (null in JSON).\n"
            "\n"
            "  --json     print one JSON object {\"gpus\": [...], \"errors\": [...]}\n"
            "  --help     this text\n"
            "\n"
            "NVML indices ignore CUDA_VISIBLE_DEVICES and may differ from CUDA ordinals;\n"
            "clipgrid hands jobs their GPU by UUID. $CLIPGRID_NVML_LIBRARY overrides the\n"
            "library loaded (default libnvidia-ml.so.1). Exit status 1 when NVML is missing.\n");
}

/* "GPU 3: x failed: y" -> "x failed: y" (the row already names the GPU). */
static const char *without_gpu_prefix(const char *msg, int index) {
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "GPU %d: ", index);
    return strncmp(msg, prefix, (size_t)n) == 0 ? msg + n : msg;
}

static gpu_row *query_all(nvml_session *s, int n) {
    gpu_row *rows = cg_xcalloc((size_t)n, sizeof *rows);
    for (int i = 0; i < n; i++) {
        if (nvml_gpu_query(s, i, &rows[i].info) == CG_OK) continue;
        rows[i].error = cg_xstrdup(without_gpu_prefix(cg_error_message(), i));
        cg_log_error("GPU %d unavailable: %s", i, rows[i].error);
    }
    return rows;
}

/* ---------------------------------------------------------------- table */

static const char *or_na(const char *s) { return s[0] ? s : "n/a"; }

static void format_util(char *buf, size_t cap, int util) {
    if (util < 0) snprintf(buf, cap, "n/a");
    else snprintf(buf, cap, "%d%%", util);
}

static void format_memory(char *buf, size_t cap, const nvml_gpu_info *g) {
    if (g->mem_total == 0) snprintf(buf, cap, "n/a");
    else snprintf(buf, cap, "%llu / %llu MiB", (unsigned long long)(g->mem_used / MIB),
                  (unsigned long long)(g->mem_total / MIB));
}

/* "n/a", "0", or "2: 1234 (512 MiB), 99 (64 MiB)". */
static void format_procs(char *buf, size_t cap, const nvml_gpu_info *g) {
    if (g->nprocs < 0) { snprintf(buf, cap, "n/a"); return; }
    size_t len = (size_t)snprintf(buf, cap, "%d", g->nprocs);
    for (int i = 0; i < g->nprocs && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%u (%llu MiB)", i ? ", " : ": ", g->procs[i].pid,
                                (unsigned long long)(g->procs[i].used_mem / MIB));
}

static void print_table(const gpu_row *rows, int n) {
    int wname = 4, wuuid = 4, wmem = 12;
    char buf[64];
    for (int i = 0; i < n; i++) {
        if (rows[i].error) continue;
        int l = (int)strlen(or_na(rows[i].info.name));
        if (l > wname) wname = l;
        l = (int)strlen(or_na(rows[i].info.uuid));
        if (l > wuuid) wuuid = l;
        format_memory(buf, sizeof buf, &rows[i].info);
        if ((int)strlen(buf) > wmem) wmem = (int)strlen(buf);
    }
    printf("%3s  %-*s  %-*s  %4s  %*s  %s\n", "GPU", wname, "NAME", wuuid, "UUID", "UTIL", wmem, "MEMORY", "PROCS");
    for (int i = 0; i < n; i++) {
        const nvml_gpu_info *g = &rows[i].info;
        if (rows[i].error) continue;
        char util[16], mem[64], procs[NVML_MAX_PROCS * 32];
        format_util(util, sizeof util, g->util_gpu);
        format_memory(mem, sizeof mem, g);
        format_procs(procs, sizeof procs, g);
        printf("%3d  %-*s  %-*s  %4s  %*s  %s\n", i, wname, or_na(g->name), wuuid, or_na(g->uuid), util, wmem, mem, procs);
    }
}

/* ---------------------------------------------------------------- JSON */

static cJSON *int_or_null(long long v, int valid) {
    return valid ? cJSON_CreateNumber((double)v) : cJSON_CreateNull();
}

static cJSON *string_or_null(const char *s) {
    return s[0] ? cJSON_CreateString(s) : cJSON_CreateNull();
}

static cJSON *gpu_json(const nvml_gpu_info *g) {
    cJSON *o = cJSON_CreateObject();
    int has_mem = g->mem_total != 0;
    cJSON_AddNumberToObject(o, "index", g->index);
    cJSON_AddItemToObject(o, "name", string_or_null(g->name));
    cJSON_AddItemToObject(o, "uuid", string_or_null(g->uuid));
    cJSON_AddItemToObject(o, "util_gpu", int_or_null(g->util_gpu, g->util_gpu >= 0));
    cJSON_AddItemToObject(o, "util_mem", int_or_null(g->util_mem, g->util_mem >= 0));
    cJSON_AddItemToObject(o, "memory_used_mib", int_or_null((long long)(g->mem_used / MIB), has_mem));
    cJSON_AddItemToObject(o, "memory_total_mib", int_or_null((long long)(g->mem_total / MIB), has_mem));
    if (g->nprocs < 0) {
        cJSON_AddNullToObject(o, "processes");
        return o;
    }
    cJSON *procs = cJSON_AddArrayToObject(o, "processes");
    for (int i = 0; i < g->nprocs; i++) {
        cJSON *p = cJSON_CreateObject();
        cJSON_AddNumberToObject(p, "pid", g->procs[i].pid);
        cJSON_AddNumberToObject(p, "used_mib", (double)(g->procs[i].used_mem / MIB));
        cJSON_AddItemToArray(procs, p);
    }
    return o;
}

static void print_json(const gpu_row *rows, int n) {
    cJSON *root = cJSON_CreateObject();
    cJSON *gpus = cJSON_AddArrayToObject(root, "gpus");
    cJSON *errors = cJSON_AddArrayToObject(root, "errors");
    for (int i = 0; i < n; i++) {
        if (!rows[i].error) {
            cJSON_AddItemToArray(gpus, gpu_json(&rows[i].info));
            continue;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "index", i);
        cJSON_AddStringToObject(e, "error", rows[i].error);
        cJSON_AddItemToArray(errors, e);
    }
    char *text = cg_json_print(root, 1);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(root);
}

/* ---------------------------------------------------------------- command */

int cmd_gpus(int argc, char **argv) {
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json")) {
            json = 1;
            continue;
        }
        cg_log_error("gpus: unknown option \"%s\"", argv[i]);
        usage(stderr);
        return CG_ERR_USAGE;
    }
    nvml_session *s;
    if (nvml_open(&s) != CG_OK) {
        const char *why = cg_error_message();
        const char *prefix = "NVML not available: ";
        if (!strncmp(why, prefix, strlen(prefix))) why += strlen(prefix);
        cg_log_error("no NVML: %s; clipgrid run --gpus cpu runs on CPU slots", why);
        return 1;
    }
    int n = nvml_device_count(s);
    gpu_row *rows = query_all(s, n);
    nvml_close(s);
    if (json) print_json(rows, n);
    else if (n == 0) printf("NVML sees no GPUs\n");
    else print_table(rows, n);
    for (int i = 0; i < n; i++) free(rows[i].error);
    free(rows);
    return 0;
}
