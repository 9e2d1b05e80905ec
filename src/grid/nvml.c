/* nvml.c — the GPUs of this machine through a dlopen()ed libnvidia-ml (see nvml.h).
 *
 * No nvml.h: the few NVML types used are declared below, with the layout the NVML ABI has.
 * Every symbol is looked up by hand, versioned name first (the header's unversioned names are
 * macros for the _v2 symbols, so a dlopen() user must ask for the versioned ones itself).
 * Optional symbols may be missing: their fields are then "not supported", never an error.
 *
 * Process lists: the entry struct grew over driver branches (v1: {pid, usedGpuMemory}, 16 bytes;
 * v2/v3: + gpuInstanceId, computeInstanceId, 24 bytes; some 535.x drivers wrote 32-byte entries
 * through _v3). Only pid (offset 0) and usedGpuMemory (offset 8) are read, and the buffer has
 * room for 64 bytes per entry, so a driver with a larger struct than expected can at worst give
 * wrong PIDs, never write past the buffer.
 */
#include "grid/nvml.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* ---------------------------------------------------------------- NVML's ABI, as much as is used */

typedef int nvmlReturn_t;
typedef struct nvml_device_opaque *nvmlDevice_t;
typedef struct { unsigned int gpu, memory; } nvmlUtilization_t;
typedef struct { unsigned long long total, free, used; } nvmlMemory_t;   /* nvmlMemory_t, v1 */

#define NVML_SUCCESS 0
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NO_PERMISSION 4
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_FUNCTION_NOT_FOUND 13
#define NVML_VALUE_NOT_AVAILABLE ULLONG_MAX

#define NVML_DEFAULT_LIBRARY "libnvidia-ml.so.1"

#define PROC_STRIDE_V1 16          /* sizeof(nvmlProcessInfo_v1_t) */
#define PROC_STRIDE_V2 24          /* sizeof(nvmlProcessInfo_v2_t), used by _v2 and _v3 */
#define PROC_ENTRY_ROOM 64         /* bytes allocated per entry, whatever the driver's struct */
#define PROC_PROBE_TRIES 5         /* processes may start between the size probe and the call */

struct nvml_session {
    void *lib;
    char lib_name[256];
    nvmlReturn_t (*init)(void);
    nvmlReturn_t (*shutdown)(void);
    nvmlReturn_t (*get_count)(unsigned int *count);
    nvmlReturn_t (*get_handle)(unsigned int index, nvmlDevice_t *dev);
    /* optional */
    const char *(*error_string)(nvmlReturn_t r);
    nvmlReturn_t (*get_uuid)(nvmlDevice_t dev, char *buf, unsigned int len);
    nvmlReturn_t (*get_name)(nvmlDevice_t dev, char *buf, unsigned int len);
    nvmlReturn_t (*get_util)(nvmlDevice_t dev, nvmlUtilization_t *u);
    nvmlReturn_t (*get_memory)(nvmlDevice_t dev, nvmlMemory_t *m);
    nvmlReturn_t (*get_procs)(nvmlDevice_t dev, unsigned int *count, void *infos);
    size_t proc_stride;
};

/* ---------------------------------------------------------------- loading */

/* Store the first of `names` that the library exports into the function pointer at `fn`.
 * 1 when found. (memcpy: ISO C has no cast from void * to a function pointer.) */
static int load_symbol(void *lib, void *fn, const char *const *names, int *which) {
    for (int i = 0; names[i]; i++) {
        void *p = dlsym(lib, names[i]);
        if (p) {
            memcpy(fn, &p, sizeof p);
            if (which) *which = i;
            return 1;
        }
    }
    return 0;
}

#define LOAD(s, field, which, ...) load_symbol((s)->lib, (void *)&(s)->field, (const char *const[]){__VA_ARGS__, NULL}, which)

static int load_symbols(nvml_session *s) {
    if (!LOAD(s, init, NULL, "nvmlInit_v2", "nvmlInit"))
        return cg_error_set(CG_ERR_DEVICE, "NVML not available: %s has no nvmlInit_v2 or nvmlInit", s->lib_name);
    if (!LOAD(s, shutdown, NULL, "nvmlShutdown"))
        return cg_error_set(CG_ERR_DEVICE, "NVML not available: %s has no nvmlShutdown", s->lib_name);
    if (!LOAD(s, get_count, NULL, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"))
        return cg_error_set(CG_ERR_DEVICE, "NVML not available: %s has no nvmlDeviceGetCount", s->lib_name);
    if (!LOAD(s, get_handle, NULL, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"))
        return cg_error_set(CG_ERR_DEVICE, "NVML not available: %s has no nvmlDeviceGetHandleByIndex", s->lib_name);
    LOAD(s, error_string, NULL, "nvmlErrorString");
    LOAD(s, get_uuid, NULL, "nvmlDeviceGetUUID");
    LOAD(s, get_name, NULL, "nvmlDeviceGetName");
    LOAD(s, get_util, NULL, "nvmlDeviceGetUtilizationRates");
    LOAD(s, get_memory, NULL, "nvmlDeviceGetMemoryInfo");
    int which = 0;
    if (LOAD(s, get_procs, &which, "nvmlDeviceGetComputeRunningProcesses_v3",
             "nvmlDeviceGetComputeRunningProcesses_v2", "nvmlDeviceGetComputeRunningProcesses"))
        s->proc_stride = which == 2 ? PROC_STRIDE_V1 : PROC_STRIDE_V2;
    return CG_OK;
}

/* NVML's text for `r`, or a number when the library has no nvmlErrorString. */
static const char *nvml_strerror(nvml_session *s, nvmlReturn_t r, char *buf, size_t cap) {
    const char *msg = s->error_string ? s->error_string(r) : NULL;
    if (msg && *msg) return msg;
    snprintf(buf, cap, "NVML error %d", r);
    return buf;
}

static int gpu_error(nvml_session *s, int index, const char *call, nvmlReturn_t r) {
    char buf[32];
    return cg_error_set(CG_ERR_DEVICE, "GPU %d: %s failed: %s", index, call, nvml_strerror(s, r, buf, sizeof buf));
}

int nvml_open(nvml_session **out) {
    *out = NULL;
    const char *name = getenv("CLIPGRID_NVML_LIBRARY");
    if (!name || !*name) name = NVML_DEFAULT_LIBRARY;
    dlerror();
    void *lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        return cg_error_set(CG_ERR_DEVICE, "NVML not available: cannot load %s (%s)", name, why ? why : "dlopen failed");
    }
    nvml_session *s = cg_xcalloc(1, sizeof *s);
    s->lib = lib;
    snprintf(s->lib_name, sizeof s->lib_name, "%s", name);
    int rc = load_symbols(s);
    if (rc == CG_OK) {
        nvmlReturn_t r = s->init();
        if (r != NVML_SUCCESS) {
            char buf[32];
            rc = cg_error_set(CG_ERR_DEVICE, "NVML not available: nvmlInit failed: %s (library %s)",
                              nvml_strerror(s, r, buf, sizeof buf), name);
        }
    }
    if (rc != CG_OK) {
        dlclose(lib);
        free(s);
        return rc;
    }
    *out = s;
    return CG_OK;
}

void nvml_close(nvml_session *s) {
    if (!s) return;
    s->shutdown();
    dlclose(s->lib);
    free(s);
}

/* ---------------------------------------------------------------- devices */

int nvml_device_count(nvml_session *s) {
    unsigned int n = 0;
    nvmlReturn_t r = s->get_count(&n);
    if (r != NVML_SUCCESS) {
        char buf[32];
        cg_error_set(CG_ERR_DEVICE, "nvmlDeviceGetCount failed: %s", nvml_strerror(s, r, buf, sizeof buf));
        return 0;
    }
    return n > INT_MAX ? INT_MAX : (int)n;
}

static int get_device(nvml_session *s, int index, nvmlDevice_t *dev) {
    if (index < 0) return cg_error_set(CG_ERR_DEVICE, "GPU %d: no such GPU (NVML indices start at 0)", index);
    nvmlReturn_t r = s->get_handle((unsigned)index, dev);
    if (r == NVML_SUCCESS) return CG_OK;
    gpu_error(s, index, "nvmlDeviceGetHandleByIndex", r);
    unsigned int n;
    if (s->get_count(&n) == NVML_SUCCESS && (unsigned)index >= n) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", cg_error_message());
        cg_error_set(CG_ERR_DEVICE, "%s (NVML sees %u GPU%s)", msg, n, n == 1 ? "" : "s");
    }
    return CG_ERR_DEVICE;
}

/* A field query's result: CG_OK with *ok = 1 (value valid) or 0 (not supported, not
 * permitted, function absent), or CG_ERR_DEVICE for a real failure. */
static int field_result(nvml_session *s, int index, const char *call, nvmlReturn_t r, int *ok) {
    *ok = r == NVML_SUCCESS;
    if (r == NVML_SUCCESS || r == NVML_ERROR_NOT_SUPPORTED || r == NVML_ERROR_NO_PERMISSION ||
        r == NVML_ERROR_FUNCTION_NOT_FOUND)
        return CG_OK;
    return gpu_error(s, index, call, r);
}

static int query_strings(nvml_session *s, int index, nvmlDevice_t dev, nvml_gpu_info *info) {
    int ok, rc;
    if (s->get_uuid) {
        rc = field_result(s, index, "nvmlDeviceGetUUID", s->get_uuid(dev, info->uuid, sizeof info->uuid), &ok);
        if (rc) return rc;
        if (!ok) info->uuid[0] = 0;
        info->uuid[sizeof info->uuid - 1] = 0;
    }
    if (s->get_name) {
        rc = field_result(s, index, "nvmlDeviceGetName", s->get_name(dev, info->name, sizeof info->name), &ok);
        if (rc) return rc;
        if (!ok) info->name[0] = 0;
        info->name[sizeof info->name - 1] = 0;
    }
    return CG_OK;
}

static int query_util_memory(nvml_session *s, int index, nvmlDevice_t dev, nvml_gpu_info *info) {
    int ok, rc;
    if (s->get_util) {
        nvmlUtilization_t u;
        rc = field_result(s, index, "nvmlDeviceGetUtilizationRates", s->get_util(dev, &u), &ok);
        if (rc) return rc;
        if (ok) {
            info->util_gpu = u.gpu > 100 ? 100 : (int)u.gpu;
            info->util_mem = u.memory > 100 ? 100 : (int)u.memory;
        }
    }
    if (s->get_memory) {
        nvmlMemory_t m;
        rc = field_result(s, index, "nvmlDeviceGetMemoryInfo", s->get_memory(dev, &m), &ok);
        if (rc) return rc;
        if (ok) {
            info->mem_total = m.total;
            info->mem_used = m.used;
        }
    }
    return CG_OK;
}

/* Size-probing: ask with count 0; NVML_ERROR_INSUFFICIENT_SIZE gives the count; allocate with
 * headroom (count*2+5) and ask again, a few times if processes keep appearing. */
static int query_procs(nvml_session *s, int index, nvmlDevice_t dev, nvml_gpu_info *info) {
    if (!s->get_procs) return CG_OK;
    unsigned char *buf = NULL;
    unsigned int count = 0;
    nvmlReturn_t r = s->get_procs(dev, &count, NULL);
    for (int tries = 0; r == NVML_ERROR_INSUFFICIENT_SIZE && tries < PROC_PROBE_TRIES; tries++) {
        unsigned int cap = count > 1000000 ? 2000005 : count * 2 + 5;
        free(buf);
        buf = cg_xcalloc(cap, PROC_ENTRY_ROOM);
        count = cap;
        r = s->get_procs(dev, &count, buf);
    }
    int ok, rc = field_result(s, index, "nvmlDeviceGetComputeRunningProcesses", r, &ok);
    if (rc == CG_OK && ok) {
        int n = (buf && count > 0) ? (int)(count < NVML_MAX_PROCS ? count : NVML_MAX_PROCS) : 0;
        for (int i = 0; i < n; i++) {
            const unsigned char *e = buf + (size_t)i * s->proc_stride;
            unsigned int pid;
            unsigned long long used;
            memcpy(&pid, e, sizeof pid);
            memcpy(&used, e + 8, sizeof used);
            info->procs[i].pid = pid;
            info->procs[i].used_mem = used == NVML_VALUE_NOT_AVAILABLE ? 0 : used;
        }
        info->nprocs = n;
    }
    free(buf);
    return rc;
}

int nvml_gpu_query(nvml_session *s, int index, nvml_gpu_info *info) {
    memset(info, 0, sizeof *info);
    info->index = index;
    info->util_gpu = info->util_mem = -1;
    info->nprocs = -1;
    nvmlDevice_t dev;
    int rc = get_device(s, index, &dev);
    if (rc == CG_OK) rc = query_strings(s, index, dev, info);
    if (rc == CG_OK) rc = query_util_memory(s, index, dev, info);
    if (rc == CG_OK) rc = query_procs(s, index, dev, info);
    return rc;
}

int nvml_gpu_utilization(nvml_session *s, int index) {
    nvmlDevice_t dev;
    if (!s->get_util || get_device(s, index, &dev) != CG_OK) return -1;
    nvmlUtilization_t u;
    nvmlReturn_t r = s->get_util(dev, &u);
    if (r != NVML_SUCCESS) {
        gpu_error(s, index, "nvmlDeviceGetUtilizationRates", r);
        return -1;
    }
    return u.gpu > 100 ? 100 : (int)u.gpu;
}
