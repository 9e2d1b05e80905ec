/* fake_nvml.c — a stand-in libnvidia-ml.so.1 for tests.
 *
 * It exports the NVML symbols clipgrid uses (versioned and old names) and invents its GPUs from a
 * text file named by $FAKE_NVML_CONFIG. The file is RE-READ ON EVERY CALL, so a test may edit it
 * while the launcher runs (write it atomically — temp file + rename — or a call may see half a
 * file). Load it exactly as the real library: CLIPGRID_NVML_LIBRARY=<dir>/libnvidia-ml.so.1, or
 * LD_LIBRARY_PATH=<dir>.
 *
 * File format (one directive per line; `#` starts a comment; blank lines ignored):
 *
 *   start=1764217000.25     optional: epoch seconds that util times are relative to;
 *                           default: the time of this process's first nvmlInit call
 *   fail_init=1             optional: nvmlInit returns NVML_ERROR_DRIVER_NOT_LOADED (9)
 *   gpu KEY=VALUE ...       one GPU; the n-th `gpu` line is NVML index n (0, 1, 2, ...)
 *
 * Keys of a `gpu` line (all optional):
 *   uuid=GPU-fake-0         default "GPU-fake-<index>"; `unsupported`: nvmlDeviceGetUUID -> 3
 *   name=FakeGPU            default "Fake GPU"; a value may be quoted: name="NVIDIA H100 80GB HBM3"
 *   mem_total_mib=81920     default 81920
 *   mem_used_mib=1024       default 0
 *   mem=unsupported         nvmlDeviceGetMemoryInfo returns NVML_ERROR_NOT_SUPPORTED (3)
 *   util=95@0,10@3          utilization schedule, V@T: V percent from T seconds after `start`;
 *                           the last entry whose T has passed applies, before the first T the
 *                           first V. `util=40` is a constant. Default 0. The `memory` field of
 *                           nvmlUtilization_t equals the `gpu` field.
 *   util=unsupported        nvmlDeviceGetUtilizationRates returns NVML_ERROR_NOT_SUPPORTED (3)
 *   procs=1234:512,99:64    compute processes, PID:used MiB (":MiB" optional, default 0)
 *   procs=unsupported       the process queries return NVML_ERROR_NOT_SUPPORTED (3)
 *   broken=1                nvmlDeviceGetHandleByIndex for this index fails with
 *                           NVML_ERROR_GPU_IS_LOST (15)
 *
 * Errors, as the real library gives them:
 *   - $FAKE_NVML_CONFIG unset or unreadable: nvmlInit -> NVML_ERROR_DRIVER_NOT_LOADED (9); any
 *     later call -> NVML_ERROR_UNKNOWN (999).
 *   - A malformed file (unknown key, bad number): a line "fake_nvml: FILE:LINE: what" on stderr
 *     and every call, nvmlInit included, -> NVML_ERROR_UNKNOWN (999).
 *   - Any device call before nvmlInit (or after the matching nvmlShutdown) ->
 *     NVML_ERROR_UNINITIALIZED (1).
 *   - Index >= GPU count -> NVML_ERROR_INVALID_ARGUMENT (2). A handle whose GPU has since gone
 *     from the file (or became broken) -> NVML_ERROR_GPU_IS_LOST (15).
 *   - Buffers too small -> NVML_ERROR_INSUFFICIENT_SIZE (7), with the needed process count.
 *
 * $FAKE_NVML_LOG, when set, names a file to which every nvmlDeviceGetUtilizationRates call
 * that returns a value appends "util <index> <value> <epoch seconds>\n" (tests use it to see
 * that the launcher polled).
 *
 * Process info: nvmlDeviceGetComputeRunningProcesses_v3 and _v2 write 24-byte entries
 * {pid, usedGpuMemory, gpuInstanceId, computeInstanceId}; the v1 name writes 16-byte entries
 * {pid, usedGpuMemory}.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

/* ---------------------------------------------------------------- NVML's types, as used here */

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_UNKNOWN = 999,
};

typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;
typedef struct { unsigned int pid; unsigned long long usedGpuMemory; } nvmlProcessInfo_v1_t;
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_v2_t;

/* ---------------------------------------------------------------- the configuration file */

#define FAKE_MAX_GPUS 256
#define MIB (1024ULL * 1024ULL)

typedef struct { unsigned value; double at; } fake_util_step;
typedef struct { unsigned pid; unsigned long long used_mib; } fake_proc;

typedef struct {
    char uuid[96], name[96];
    int uuid_unsupported, mem_unsupported, util_unsupported, procs_unsupported, broken;
    unsigned long long mem_total_mib, mem_used_mib;
    fake_util_step *util;       /* schedule, in file order */
    int nutil;
    fake_proc *procs;
    int nprocs;
} fake_gpu;

typedef struct {
    int has_start, fail_init;
    double start;
    fake_gpu gpus[FAKE_MAX_GPUS];
    int ngpus;
} fake_config;

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static int fake_init_count;      /* nvmlInit minus nvmlShutdown calls */
static double fake_first_init;   /* time of this process's first nvmlInit; 0 before it */

/* One "handle" per index: a handle is the address of its slot, so it maps back to an index. */
static char fake_handle_slots[FAKE_MAX_GPUS];

static double now_epoch(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void config_free(fake_config *c) {
    if (!c) return;
    for (int i = 0; i < c->ngpus; i++) {
        free(c->gpus[i].util);
        free(c->gpus[i].procs);
    }
    free(c);
}

static int parse_error(const char *path, int line, const char *what, const char *token) {
    fprintf(stderr, "fake_nvml: %s:%d: %s \"%s\"\n", path, line, what, token);
    return NVML_ERROR_UNKNOWN;
}

/* Whole-string unsigned number; 0 on success. */
static int parse_ull(const char *s, unsigned long long *out) {
    char *end;
    if (!*s || *s == '-') return -1;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return (errno || *end) ? -1 : 0;
}

static int parse_double(const char *s, double *out) {
    char *end;
    if (!*s) return -1;
    errno = 0;
    *out = strtod(s, &end);
    return (errno || *end) ? -1 : 0;
}

static int count_items(const char *s) {
    int n = 1;
    for (; *s; s++) n += *s == ',';
    return n;
}

/* "95@0,10@3" or "40". */
static int parse_util(fake_gpu *g, char *v) {
    g->util = calloc((size_t)count_items(v), sizeof *g->util);
    if (!g->util) return -1;
    for (char *save = NULL, *item = strtok_r(v, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        unsigned long long value;
        double at = 0;
        char *sep = strchr(item, '@');
        if (sep) {
            *sep = 0;
            if (parse_double(sep + 1, &at)) return -1;
        }
        if (parse_ull(item, &value) || value > 100) return -1;
        g->util[g->nutil].value = (unsigned)value;
        g->util[g->nutil].at = at;
        g->nutil++;
    }
    return g->nutil ? 0 : -1;
}

/* "1234:512,99:64". */
static int parse_procs(fake_gpu *g, char *v) {
    g->procs = calloc((size_t)count_items(v), sizeof *g->procs);
    if (!g->procs) return -1;
    for (char *save = NULL, *item = strtok_r(v, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        unsigned long long pid, mib = 0;
        char *sep = strchr(item, ':');
        if (sep) {
            *sep = 0;
            if (parse_ull(sep + 1, &mib)) return -1;
        }
        if (parse_ull(item, &pid) || pid > UINT32_MAX) return -1;
        g->procs[g->nprocs].pid = (unsigned)pid;
        g->procs[g->nprocs].used_mib = mib;
        g->nprocs++;
    }
    return 0;
}

static int copy_string(char *dst, size_t cap, const char *v) {
    if (strlen(v) >= cap) return -1;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int apply_gpu_key(fake_gpu *g, const char *key, char *v) {
    int unsupported = strcmp(v, "unsupported") == 0;
    unsigned long long n;
    if (!strcmp(key, "uuid")) {
        g->uuid_unsupported = unsupported;
        return copy_string(g->uuid, sizeof g->uuid, v);
    }
    if (!strcmp(key, "name")) return copy_string(g->name, sizeof g->name, v);
    if (!strcmp(key, "mem_total_mib")) return parse_ull(v, &g->mem_total_mib);
    if (!strcmp(key, "mem_used_mib")) return parse_ull(v, &g->mem_used_mib);
    if (!strcmp(key, "mem")) return unsupported ? (g->mem_unsupported = 1, 0) : -1;
    if (!strcmp(key, "util")) return unsupported ? (g->util_unsupported = 1, 0) : parse_util(g, v);
    if (!strcmp(key, "procs")) return unsupported ? (g->procs_unsupported = 1, 0) : parse_procs(g, v);
    if (!strcmp(key, "broken")) {
        if (parse_ull(v, &n)) return -1;
        g->broken = n != 0;
        return 0;
    }
    return -2;
}

/* Next whitespace-separated token of *p, NUL-terminated in place; `key="a b"` keeps its spaces
 * (the quotes are removed). NULL at the end of the line or at a `#` comment. */
static char *next_token(char **p) {
    char *s = *p;
    while (*s == ' ' || *s == '\t' || *s == '\r') s++;
    if (!*s || *s == '#') { *p = s; return NULL; }
    char *tok = s, *out = s;
    int quoted = 0;
    for (; *s; s++) {
        if (*s == '"') { quoted = !quoted; continue; }
        if (!quoted && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '#')) break;
        *out++ = *s;
    }
    char stop = *s;
    *out = 0;                  /* may overwrite a '#' right after the token: the line ends there */
    *p = (stop == ' ' || stop == '\t' || stop == '\r') ? s + 1 : s;
    return tok;
}

static int parse_gpu_line(fake_config *c, char *rest, const char *path, int line) {
    if (c->ngpus == FAKE_MAX_GPUS) return parse_error(path, line, "too many gpu lines, at most", "256");
    fake_gpu *g = &c->gpus[c->ngpus];
    snprintf(g->uuid, sizeof g->uuid, "GPU-fake-%d", c->ngpus);
    snprintf(g->name, sizeof g->name, "Fake GPU");
    g->mem_total_mib = 81920;
    c->ngpus++;
    for (char *tok; (tok = next_token(&rest));) {
        char *eq = strchr(tok, '=');
        if (!eq) return parse_error(path, line, "expected KEY=VALUE, got", tok);
        *eq = 0;
        int rc = apply_gpu_key(g, tok, eq + 1);
        if (rc == -2) return parse_error(path, line, "unknown gpu key", tok);
        if (rc) return parse_error(path, line, "bad value for gpu key", tok);
    }
    return NVML_SUCCESS;
}

static int parse_global(fake_config *c, char *tok, const char *path, int line) {
    char *eq = strchr(tok, '=');
    if (!eq) return parse_error(path, line, "unknown directive", tok);
    *eq = 0;
    unsigned long long n;
    if (!strcmp(tok, "start")) {
        if (parse_double(eq + 1, &c->start)) return parse_error(path, line, "bad number for", tok);
        c->has_start = 1;
    } else if (!strcmp(tok, "fail_init")) {
        if (parse_ull(eq + 1, &n)) return parse_error(path, line, "bad number for", tok);
        c->fail_init = n != 0;
    } else {
        return parse_error(path, line, "unknown directive", tok);
    }
    return NVML_SUCCESS;
}

static int parse_text(fake_config *c, char *text, const char *path) {
    int line = 0;
    for (char *l = text, *next; l; l = next) {
        line++;
        next = strchr(l, '\n');
        if (next) *next++ = 0;
        char *rest = l, *tok = next_token(&rest);
        if (!tok) continue;
        int is_gpu = !strcmp(tok, "gpu");
        int rc = is_gpu ? parse_gpu_line(c, rest, path, line) : parse_global(c, tok, path, line);
        if (rc) return rc;
        if (!is_gpu && (tok = next_token(&rest)))
            return parse_error(path, line, "one directive per line; extra text", tok);
    }
    return NVML_SUCCESS;
}

/* Read and parse $FAKE_NVML_CONFIG. NVML_ERROR_DRIVER_NOT_LOADED when it cannot be read,
 * NVML_ERROR_UNKNOWN when it is malformed. */
static int config_load(fake_config **out) {
    *out = NULL;
    const char *path = getenv("FAKE_NVML_CONFIG");
    if (!path || !*path) return NVML_ERROR_DRIVER_NOT_LOADED;
    FILE *f = fopen(path, "rb");
    if (!f) return NVML_ERROR_DRIVER_NOT_LOADED;
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    for (size_t got; text && (got = fread(text + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (len + 1 == cap) {
            char *bigger = realloc(text, cap * 2);
            if (!bigger) { free(text); text = NULL; break; }
            text = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (!text) return NVML_ERROR_UNKNOWN;
    text[len] = 0;
    fake_config *c = calloc(1, sizeof *c);
    int rc = c ? parse_text(c, text, path) : NVML_ERROR_UNKNOWN;
    free(text);
    if (rc) { config_free(c); return rc; }
    *out = c;
    return NVML_SUCCESS;
}

/* The utilization the schedule gives now. */
static unsigned util_now(const fake_config *c, const fake_gpu *g) {
    if (!g->nutil) return 0;
    double start = c->has_start ? c->start : fake_first_init;
    double elapsed = now_epoch() - start;
    unsigned v = g->util[0].value;
    for (int i = 0; i < g->nutil; i++)
        if (elapsed >= g->util[i].at) v = g->util[i].value;
    return v;
}

/* ---------------------------------------------------------------- call prologue */

static int initialized(void) {
    pthread_mutex_lock(&fake_lock);
    int n = fake_init_count;
    pthread_mutex_unlock(&fake_lock);
    return n > 0;
}

/* Load the file for a call that needs NVML initialised. */
static int begin_call(fake_config **c) {
    *c = NULL;
    if (!initialized()) return NVML_ERROR_UNINITIALIZED;
    int rc = config_load(c);
    return rc == NVML_ERROR_DRIVER_NOT_LOADED ? NVML_ERROR_UNKNOWN : rc;
}

/* Load the file and find the GPU behind `dev`. */
static int begin_device_call(nvmlDevice_t dev, fake_config **c, fake_gpu **g, int *index) {
    *g = NULL;
    int rc = begin_call(c);
    if (rc) return rc;
    const char *slot = (const char *)dev;
    if (!slot || slot < fake_handle_slots || slot >= fake_handle_slots + FAKE_MAX_GPUS) {
        config_free(*c);
        *c = NULL;
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    *index = (int)(slot - fake_handle_slots);
    if (*index >= (*c)->ngpus || (*c)->gpus[*index].broken) {
        config_free(*c);
        *c = NULL;
        return NVML_ERROR_GPU_IS_LOST;
    }
    *g = &(*c)->gpus[*index];
    return NVML_SUCCESS;
}

/* ---------------------------------------------------------------- exported: initialisation */

EXPORT int nvmlInit_v2(void) {
    pthread_mutex_lock(&fake_lock);
    if (fake_first_init == 0) fake_first_init = now_epoch();
    pthread_mutex_unlock(&fake_lock);
    fake_config *c;
    int rc = config_load(&c);
    if (rc) return rc;
    int fail = c->fail_init;
    config_free(c);
    if (fail) return NVML_ERROR_DRIVER_NOT_LOADED;
    pthread_mutex_lock(&fake_lock);
    fake_init_count++;
    pthread_mutex_unlock(&fake_lock);
    return NVML_SUCCESS;
}

EXPORT int nvmlInit(void) { return nvmlInit_v2(); }
EXPORT int nvmlInitWithFlags(unsigned int flags) { (void)flags; return nvmlInit_v2(); }

EXPORT int nvmlShutdown(void) {
    pthread_mutex_lock(&fake_lock);
    int rc = fake_init_count > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
    if (fake_init_count > 0) fake_init_count--;
    pthread_mutex_unlock(&fake_lock);
    return rc;
}

EXPORT const char *nvmlErrorString(int result) {
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
    default: return "Unknown Error";
    }
}

/* ---------------------------------------------------------------- exported: devices */

EXPORT int nvmlDeviceGetCount_v2(unsigned int *count) {
    fake_config *c;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    int rc = begin_call(&c);
    if (rc) return rc;
    *count = (unsigned)c->ngpus;
    config_free(c);
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

EXPORT int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    fake_config *c;
    if (!device) return NVML_ERROR_INVALID_ARGUMENT;
    int rc = begin_call(&c);
    if (rc) return rc;
    if (index >= (unsigned)c->ngpus) rc = NVML_ERROR_INVALID_ARGUMENT;
    else if (c->gpus[index].broken) rc = NVML_ERROR_GPU_IS_LOST;
    else *device = (nvmlDevice_t)(void *)&fake_handle_slots[index];
    config_free(c);
    return rc;
}

EXPORT int nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device) {
    return nvmlDeviceGetHandleByIndex_v2(index, device);
}

static int give_string(const char *s, char *buf, unsigned int length) {
    if (!buf) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(s) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(buf, s, strlen(s) + 1);
    return NVML_SUCCESS;
}

EXPORT int nvmlDeviceGetUUID(nvmlDevice_t dev, char *uuid, unsigned int length) {
    fake_config *c;
    fake_gpu *g;
    int index, rc = begin_device_call(dev, &c, &g, &index);
    if (rc) return rc;
    rc = g->uuid_unsupported ? NVML_ERROR_NOT_SUPPORTED : give_string(g->uuid, uuid, length);
    config_free(c);
    return rc;
}

EXPORT int nvmlDeviceGetName(nvmlDevice_t dev, char *name, unsigned int length) {
    fake_config *c;
    fake_gpu *g;
    int index, rc = begin_device_call(dev, &c, &g, &index);
    if (rc) return rc;
    rc = give_string(g->name, name, length);
    config_free(c);
    return rc;
}

static void log_util(int index, unsigned value) {
    const char *path = getenv("FAKE_NVML_LOG");
    if (!path || !*path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "util %d %u %.3f\n", index, value, now_epoch());
    fclose(f);
}

EXPORT int nvmlDeviceGetUtilizationRates(nvmlDevice_t dev, nvmlUtilization_t *u) {
    fake_config *c;
    fake_gpu *g;
    if (!u) return NVML_ERROR_INVALID_ARGUMENT;
    int index, rc = begin_device_call(dev, &c, &g, &index);
    if (rc) return rc;
    if (g->util_unsupported) {
        rc = NVML_ERROR_NOT_SUPPORTED;
    } else {
        u->gpu = u->memory = util_now(c, g);
        log_util(index, u->gpu);
    }
    config_free(c);
    return rc;
}

EXPORT int nvmlDeviceGetMemoryInfo(nvmlDevice_t dev, nvmlMemory_t *m) {
    fake_config *c;
    fake_gpu *g;
    if (!m) return NVML_ERROR_INVALID_ARGUMENT;
    int index, rc = begin_device_call(dev, &c, &g, &index);
    if (rc) return rc;
    if (g->mem_unsupported) {
        rc = NVML_ERROR_NOT_SUPPORTED;
    } else {
        m->total = g->mem_total_mib * MIB;
        m->used = g->mem_used_mib * MIB;
        m->free = m->total > m->used ? m->total - m->used : 0;
    }
    config_free(c);
    return rc;
}

/* The size-probing protocol: *count too small -> *count = needed, INSUFFICIENT_SIZE. */
static int get_procs(nvmlDevice_t dev, unsigned int *count, void *infos, int version) {
    fake_config *c;
    fake_gpu *g;
    if (!count) return NVML_ERROR_INVALID_ARGUMENT;
    int index, rc = begin_device_call(dev, &c, &g, &index);
    if (rc) return rc;
    if (g->procs_unsupported) {
        rc = NVML_ERROR_NOT_SUPPORTED;
    } else if (*count < (unsigned)g->nprocs) {
        *count = (unsigned)g->nprocs;
        rc = NVML_ERROR_INSUFFICIENT_SIZE;
    } else if (g->nprocs && !infos) {
        rc = NVML_ERROR_INVALID_ARGUMENT;
    } else {
        for (int i = 0; i < g->nprocs; i++) {
            if (version == 1) {
                nvmlProcessInfo_v1_t *p = (nvmlProcessInfo_v1_t *)infos + i;
                p->pid = g->procs[i].pid;
                p->usedGpuMemory = g->procs[i].used_mib * MIB;
            } else {
                nvmlProcessInfo_v2_t *p = (nvmlProcessInfo_v2_t *)infos + i;
                p->pid = g->procs[i].pid;
                p->usedGpuMemory = g->procs[i].used_mib * MIB;
                p->gpuInstanceId = p->computeInstanceId = 0xFFFFFFFFu;
            }
        }
        *count = (unsigned)g->nprocs;
    }
    config_free(c);
    return rc;
}

EXPORT int nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t dev, unsigned int *count, nvmlProcessInfo_v2_t *infos) {
    return get_procs(dev, count, infos, 3);
}

EXPORT int nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t dev, unsigned int *count, nvmlProcessInfo_v2_t *infos) {
    return get_procs(dev, count, infos, 2);
}

EXPORT int nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t dev, unsigned int *count, nvmlProcessInfo_v1_t *infos) {
    return get_procs(dev, count, infos, 1);
}
