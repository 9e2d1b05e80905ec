/* cuda_adamw.h — AdamW and global-norm gradient clipping on the device, with the arithmetic of
 * train/adamw.h: fp32 master weights, fp32 moments, open_clip's decay rule and frozen entries
 * taken from the CPU adamw_state, and (in bf16 training) a bf16 copy of the weights written in
 * the same pass for the next forward (round to nearest even).
 *
 * Per element, for the trainable, non-frozen entries (t = step after this one):
 *   p <- p (1 - lr wd)          only entries that decay (adamw_decays)
 *   m <- m + (1 - b1)(g - m) ;  v <- b2 v + (1 - b2) g g
 *   p <- p - lr/(1 - b1^t) * m / (sqrt(v)/sqrt(1 - b2^t) + eps)
 * written with round-to-nearest intrinsics (no FMA contraction) so that fp32 results equal the
 * CPU's (which gcc compiles without contraction in ISO C mode).
 *
 *   cg_cuda_adamw opt;
 *   adamw_init(&cpu_opt, &params); adamw_freeze_prefix(&cpu_opt, &params, "text.");   // the CPU state
 *   cg_cuda_adamw_init(ctx, &opt, &arena, &params, &cpu_opt);      // flags, moments, step copied
 *   cg_cuda_clip_grad_norm(ctx, (cg_cuda_adamw *[]){&opt}, (float *[]){d_grads}, 1, 1.0f, d_norm2);
 *   cg_cuda_adamw_step(ctx, &opt, d_params, d_grads, d_params_bf16, &cfg, lr);
 */
#ifndef CLIPGRID_NN_CUDA_CUDA_ADAMW_H
#define CLIPGRID_NN_CUDA_CUDA_ADAMW_H

#include <stdint.h>

#include "nn/cuda/cg_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "nn/params.h"
#include "train/adamw.h"

typedef struct {
    int n_entries;       /* trainable entries of the cg_params (kind PARAM), in offset order */
    int any_frozen;
    int64_t n;           /* parameter values (length of the params / grads arrays) */
    int64_t *starts;     /* device [n_entries]: first value of each entry (ascending) */
    uint8_t *flags;      /* device [n_entries]: bit 0 = decays, bit 1 = frozen */
    float *m, *v;        /* device [n] */
    int64_t step;
} cg_cuda_adamw;

#define CG_CUDA_ADAMW_DECAY 1u
#define CG_CUDA_ADAMW_FROZEN 2u

/* Arena bytes cg_cuda_adamw_init takes for these parameters. */
size_t cg_cuda_adamw_bytes(const cg_params *p);
/* Copies the CPU state's decay and frozen flags, moments and step (so a resumed run continues). */
int cg_cuda_adamw_init(cg_cuda_ctx *ctx, cg_cuda_adamw *s, cg_cuda_arena *a, const cg_params *p, const adamw_state *cpu);
/* params, grads: device float [n]; params_bf16: device bf16 [n] or NULL (not written). */
int cg_cuda_adamw_step(cg_cuda_ctx *ctx, cg_cuda_adamw *s, float *params, const float *grads, void *params_bf16,
                       const adamw_config *c, float lr);
/* Moments and step back into the CPU state (for checkpoints). */
int cg_cuda_adamw_download(cg_cuda_ctx *ctx, const cg_cuda_adamw *s, adamw_state *cpu);

/* torch.nn.utils.clip_grad_norm_ over n parameter sets (frozen entries left out):
 * norm = sqrt(sum g^2) (double sums, fixed order); coef = max_norm / (norm + 1e-6); when
 * max_norm > 0 and coef < 1 every trainable gradient is multiplied by coef. All on the device:
 * out[0] = norm, out[1] = the factor applied (1 when none); out is a device float[2]. */
int cg_cuda_clip_grad_norm(cg_cuda_ctx *ctx, cg_cuda_adamw *const *sets, float *const *grads, int n, float max_norm,
                           float *out);

#ifdef __cplusplus
}
#endif

#endif
