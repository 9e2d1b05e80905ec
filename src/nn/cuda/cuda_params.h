/* cuda_params.h — the device mirror of a parameter set (nn/params.h).
 *
 * A device tower keeps its parameters, gradients and buffers in flat fp32 arrays laid out
 * exactly as the CPU's cg_params (the same offsets), so upload and download are one copy each
 * and checkpoints keep going through the CPU code. This struct holds that layout (host copies of
 * each entry's offset and kind, the counters, which stay on the host) and the device pointers,
 * which the owning tower points into its own arena. `wx` is what the forward reads: `params`
 * itself in fp32, a bf16 copy in bf16 (cg_cuda_params_refresh rewrites it after an update).
 * Not yet run on a GPU.
 */
#ifndef CLIPGRID_NN_CUDA_PARAMS_H
#define CLIPGRID_NN_CUDA_PARAMS_H

#include <stdint.h>

#include "nn/cuda/cg_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "nn/params.h"

typedef struct {
    int n_entries;
    int64_t *offsets;                    /* [n_entries]: offset of each entry in its array (host) */
    cg_param_kind *kinds;                /* [n_entries] */
    int64_t n_params, n_buffers, n_counters;
    int64_t *counters;                   /* host copy of num_batches_tracked etc. */
    float *params, *grads, *buffers;     /* device, fp32, the CPU layout (in the owner's arena) */
    void *wx;                            /* device: == params (fp32) or the bf16 copy */
} cg_cuda_params;

/* Copy the host layout of `src` (entries, counts; counters zeroed); no device work. */
void cg_cuda_params_layout(cg_cuda_params *d, const cg_params *src);
/* Free the host arrays (the device memory belongs to the owner's arena). */
void cg_cuda_params_free(cg_cuda_params *d);
/* CG_ERR_STATE naming `what` unless `hp` has exactly d's layout. */
int cg_cuda_params_check(const cg_cuda_params *d, const cg_params *hp, const char *what);
/* Rewrite wx from params (bf16; nothing to do in fp32). */
int cg_cuda_params_refresh(cg_cuda_ctx *ctx, cg_cuda_params *d, cg_precision p);
/* Host -> device: values, buffers, counters; then refresh wx. */
int cg_cuda_params_upload(cg_cuda_ctx *ctx, cg_cuda_params *d, cg_precision p, const cg_params *src, const char *what);
/* Device -> host: values, buffers, counters, and the gradients when grads != 0. */
int cg_cuda_params_download(cg_cuda_ctx *ctx, const cg_cuda_params *d, cg_params *dst, int grads, const char *what);
int cg_cuda_params_zero_grad(cg_cuda_ctx *ctx, cg_cuda_params *d);

#ifdef __cplusplus
}
#endif

#endif
