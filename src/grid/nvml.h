/* nvml.h — the GPUs of this machine, through NVML loaded at run time.
 *
 * libnvidia-ml.so.1 is dlopen()ed (never linked), so clipgrid builds and runs on machines
 * without an NVIDIA driver. $CLIPGRID_NVML_LIBRARY, when set, names the library file to load
 * instead (the tests point it, or LD_LIBRARY_PATH, at a fake one). Versioned symbols are looked
 * up first (nvmlInit_v2, nvmlDeviceGetCount_v2, ...), then the old names.
 *
 *   nvml_session *s;
 *   if (nvml_open(&s) != CG_OK) -> no NVML: cg_error_message() says why
 *   int n = nvml_device_count(s);
 *   nvml_gpu_info info; nvml_gpu_query(s, 0, &info);
 *   nvml_close(s);
 */
#ifndef CLIPGRID_GRID_NVML_H
#define CLIPGRID_GRID_NVML_H

#include <stdint.h>

typedef struct nvml_session nvml_session;

#define NVML_MAX_PROCS 64

typedef struct {
    int index;                  /* NVML index */
    char uuid[96];              /* "GPU-..." ("" if NVML did not give one) */
    char name[96];              /* product name */
    int util_gpu;               /* percent, -1 when not supported (e.g. MIG) */
    int util_mem;               /* percent, -1 when not supported */
    uint64_t mem_total, mem_used;   /* bytes; 0 when not supported */
    int nprocs;                 /* compute processes, -1 when not supported */
    struct { uint32_t pid; uint64_t used_mem; } procs[NVML_MAX_PROCS];
} nvml_gpu_info;

/* Load the library and initialise NVML. CG_ERR_DEVICE with a message when either fails. */
int nvml_open(nvml_session **out);
void nvml_close(nvml_session *s);

/* Number of GPUs NVML enumerates (NVML ignores CUDA_VISIBLE_DEVICES). */
int nvml_device_count(nvml_session *s);

/* Everything about GPU `index`; CG_ERR_DEVICE when the GPU does not exist or cannot be
 * queried (the message names the index and NVML's error string). Fields a GPU does not
 * support are marked as above, not an error. */
int nvml_gpu_query(nvml_session *s, int index, nvml_gpu_info *info);

/* Current GPU utilization in percent, -1 when unknown. Cheap: one NVML call. */
int nvml_gpu_utilization(nvml_session *s, int index);

#endif
