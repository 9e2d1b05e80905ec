/* cuda_adamw.cu — AdamW step and global-norm gradient clipping (see cuda_adamw.h).
 *
 * The flat parameter array is covered by its trainable entries back to back (cg_params lays them
 * out in registration order), so the entry of element i is the last one whose start is <= i: a
 * binary search over the entry starts (a few hundred, cached) replaces any per-element table.
 *
 * AdamW, per element (fp32, round-to-nearest intrinsics: no contraction, the CPU's rounding)
 *   p *= 1 - lr wd  (decaying entries)   m += (1 - b1)(g - m)   v = b2 v + ((1 - b2) g) g
 *   p -= step_size (m / (sqrt(v) / bc2_sqrt + eps)),  step_size = lr / (1 - b1^t), bc2_sqrt = sqrt(1 - b2^t)
 * Clipping: per set, a fixed grid of CLIP_BLOCKS blocks sums g^2 in double into partials; one
 * block adds all partials in order (norm, coefficient, kept on the device); a scale pass
 * multiplies by the coefficient read from device memory. Deterministic for a given size.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/cuda/cuda_adamw.h"
#include "nn/cuda/cuda_common.cuh"

#define CLIP_BLOCKS 256

__device__ __forceinline__ int find_entry(const int64_t *__restrict__ starts, int ne, int64_t i) {
    int lo = 0, hi = ne - 1;
    while (lo < hi) {  /* last entry with starts[e] <= i */
        int mid = (lo + hi + 1) >> 1;
        if (starts[mid] <= i) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

__global__ void adamw_kernel(float *__restrict__ w, const float *__restrict__ g, float *__restrict__ m,
                             float *__restrict__ v, bf16 *__restrict__ wl, const int64_t *__restrict__ starts,
                             const uint8_t *__restrict__ flags, int ne, int64_t n, float b2, float omb1, float omb2,
                             float eps, float decay, float step_size, float bc2_sqrt) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint8_t f = flags[find_entry(starts, ne, i)];
        if (f & CG_CUDA_ADAMW_FROZEN) continue;
        float wi = w[i], gi = g[i], mi = m[i], vi = v[i];
        if (f & CG_CUDA_ADAMW_DECAY) wi = __fmul_rn(wi, decay);
        mi = __fadd_rn(mi, __fmul_rn(omb1, __fsub_rn(gi, mi)));
        vi = __fadd_rn(__fmul_rn(b2, vi), __fmul_rn(__fmul_rn(omb2, gi), gi));
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
        wi = __fsub_rn(wi, __fmul_rn(step_size, __fdiv_rn(mi, denom)));
        w[i] = wi;
        m[i] = mi;
        v[i] = vi;
        if (wl) wl[i] = __float2bfloat16_rn(wi);
    }
}

/* part[b] = sum of g^2 over this block's grid-stride share, trainable non-frozen entries only */
__global__ void __launch_bounds__(CG_BLOCK)
sumsq_kernel(const float *__restrict__ g, const int64_t *__restrict__ starts, const uint8_t *__restrict__ flags, int ne,
             int any_frozen, int64_t n, double *__restrict__ part) {
    __shared__ double shm[CG_WARPS];
    double s = 0.0;
    for (int64_t i = (int64_t)blockIdx.x * CG_BLOCK + threadIdx.x; i < n; i += (int64_t)gridDim.x * CG_BLOCK) {
        if (any_frozen && (flags[find_entry(starts, ne, i)] & CG_CUDA_ADAMW_FROZEN)) continue;
        double x = (double)g[i];
        s += x * x;
    }
    s = block_sum_d(s, shm);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* out[0] = norm = sqrt(sum part) ; out[1] = coef when clipping applies, else 1 */
__global__ void __launch_bounds__(CG_BLOCK) clip_final_kernel(const double *__restrict__ part, int64_t np, float max_norm, float *__restrict__ out) {
    __shared__ double shm[CG_WARPS];
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < np; i += CG_BLOCK) s += part[i];
    s = block_sum_d(s, shm);
    if (threadIdx.x == 0) {
        float norm = (float)sqrt(s);
        float coef = max_norm / (norm + 1e-6f);
        out[0] = norm;
        out[1] = (max_norm > 0.0f && coef < 1.0f) ? coef : 1.0f;
    }
}

__global__ void clip_scale_kernel(float *__restrict__ g, const int64_t *__restrict__ starts,
                                  const uint8_t *__restrict__ flags, int ne, int any_frozen, int64_t n,
                                  const float *__restrict__ out) {
    float coef = out[1];
    if (coef == 1.0f) return;  /* nothing to clip (uniform across the grid) */
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        if (any_frozen && (flags[find_entry(starts, ne, i)] & CG_CUDA_ADAMW_FROZEN)) continue;
        g[i] = __fmul_rn(g[i], coef);
    }
}

/* ---------------------------------------------------------------- host side */

static int count_trainable(const cg_params *p) {
    int ne = 0;
    for (int i = 0; i < p->n; i++) ne += p->e[i].kind == CG_KIND_PARAM;
    return ne;
}

extern "C" size_t cg_cuda_adamw_bytes(const cg_params *p) {
    int ne = count_trainable(p);
    size_t n = (size_t)(p->n_params ? p->n_params : 1);
    return cg_cuda_arena_piece_bytes((size_t)(ne ? ne : 1) * sizeof(int64_t)) +
           cg_cuda_arena_piece_bytes((size_t)(ne ? ne : 1)) + 2 * cg_cuda_arena_piece_bytes(n * sizeof(float));
}

extern "C" int cg_cuda_adamw_init(cg_cuda_ctx *ctx, cg_cuda_adamw *s, cg_cuda_arena *a, const cg_params *p,
                                  const adamw_state *cpu) {
    memset(s, 0, sizeof *s);
    CG_CUDA_ARG(cpu && cpu->n == p->n_params && cpu->n_entries == p->n, "the CPU adamw_state must be adamw_init'ed on these params");
    int ne = count_trainable(p);
    int64_t n = p->n_params;
    s->n_entries = ne;
    s->n = n;
    s->step = cpu->step;
    s->starts = (int64_t *)cg_cuda_arena_alloc(a, (size_t)(ne ? ne : 1) * sizeof(int64_t));
    s->flags = (uint8_t *)cg_cuda_arena_alloc(a, (size_t)(ne ? ne : 1));
    s->m = (float *)cg_cuda_arena_alloc(a, (size_t)(n ? n : 1) * sizeof(float));
    s->v = (float *)cg_cuda_arena_alloc(a, (size_t)(n ? n : 1) * sizeof(float));
    if (a->planning) return CG_OK;
    if (!s->starts || !s->flags || !s->m || !s->v) return CG_ERR_NOMEM;
    if (ne == 0 || n == 0) return CG_OK;
    int64_t *starts = (int64_t *)malloc((size_t)ne * sizeof(int64_t));
    uint8_t *flags = (uint8_t *)malloc((size_t)ne);
    if (!starts || !flags) {
        free(starts);
        free(flags);
        return cg_error_set(CG_ERR_NOMEM, "cg_cuda_adamw_init: out of host memory");
    }
    int k = 0, rc = CG_OK;
    int64_t expect = 0;
    for (int i = 0; i < p->n && !rc; i++) {
        const cg_param_entry *e = &p->e[i];
        if (e->kind != CG_KIND_PARAM) continue;
        if (e->offset != expect)  /* the search needs entries that tile [0, n) in order */
            rc = cg_error_set(CG_ERR_STATE, "cg_cuda_adamw_init: entry \"%s\" at %lld, expected %lld", e->name,
                              (long long)e->offset, (long long)expect);
        expect = e->offset + e->numel;
        starts[k] = e->offset;
        flags[k] = (uint8_t)((cpu->decay[i] ? CG_CUDA_ADAMW_DECAY : 0u) | (cpu->frozen[i] ? CG_CUDA_ADAMW_FROZEN : 0u));
        s->any_frozen |= cpu->frozen[i] != 0;
        k++;
    }
    if (!rc) rc = cg_cuda_h2d(ctx, s->starts, starts, (size_t)ne * sizeof(int64_t));
    if (!rc) rc = cg_cuda_h2d(ctx, s->flags, flags, (size_t)ne);
    if (!rc) rc = cg_cuda_h2d(ctx, s->m, cpu->m, (size_t)n * sizeof(float));
    if (!rc) rc = cg_cuda_h2d(ctx, s->v, cpu->v, (size_t)n * sizeof(float));
    free(starts);
    free(flags);
    return rc;
}

extern "C" int cg_cuda_adamw_step(cg_cuda_ctx *ctx, cg_cuda_adamw *s, float *params, const float *grads,
                                  void *params_bf16, const adamw_config *c, float lr) {
    s->step++;
    if (s->n == 0 || s->n_entries == 0) return CG_OK;
    /* the scalars exactly as adamw_step computes them */
    double bc1 = 1.0 - pow((double)c->beta1, (double)s->step);
    double bc2 = 1.0 - pow((double)c->beta2, (double)s->step);
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float omb1 = 1.0f - c->beta1, omb2 = 1.0f - c->beta2;
    float decay = 1.0f - lr * c->wd;
    adamw_kernel<<<cg_grid(s->n, 256), 256, 0, ctx->stream>>>(params, grads, s->m, s->v, (bf16 *)params_bf16, s->starts,
                                                             s->flags, s->n_entries, s->n, c->beta2, omb1, omb2, c->eps,
                                                             decay, step_size, bc2_sqrt);
    CG_CUDA_CHECK_LAUNCH(ctx, "adamw_kernel");
    return CG_OK;
}

extern "C" int cg_cuda_adamw_download(cg_cuda_ctx *ctx, const cg_cuda_adamw *s, adamw_state *cpu) {
    CG_CUDA_ARG(cpu->n == s->n, "state sizes differ (%lld vs %lld)", (long long)cpu->n, (long long)s->n);
    CG_TRY(cg_cuda_d2h(ctx, cpu->m, s->m, (size_t)s->n * sizeof(float)));
    CG_TRY(cg_cuda_d2h(ctx, cpu->v, s->v, (size_t)s->n * sizeof(float)));
    cpu->step = s->step;
    return CG_OK;
}

extern "C" int cg_cuda_clip_grad_norm(cg_cuda_ctx *ctx, cg_cuda_adamw *const *sets, float *const *grads, int n,
                                      float max_norm, float *out) {
    CG_CUDA_ARG(n >= 1 && out, "n=%d sets, out=%p", n, (void *)out);
    CG_SCRATCH_NEED(ctx, (size_t)n * CLIP_BLOCKS * sizeof(double), "gradient clipping");
    double *part = (double *)ctx->scratch;
    for (int k = 0; k < n; k++) {
        const cg_cuda_adamw *s = sets[k];
        if (s->n == 0 || s->n_entries == 0) {
            CG_CUDA_CHECK(cudaMemsetAsync(part + (size_t)k * CLIP_BLOCKS, 0, CLIP_BLOCKS * sizeof(double), ctx->stream));
            continue;
        }
        sumsq_kernel<<<CLIP_BLOCKS, CG_BLOCK, 0, ctx->stream>>>(grads[k], s->starts, s->flags, s->n_entries, s->any_frozen,
                                                               s->n, part + (size_t)k * CLIP_BLOCKS);
        CG_CUDA_CHECK_LAUNCH(ctx, "sumsq_kernel");
    }
    clip_final_kernel<<<1, CG_BLOCK, 0, ctx->stream>>>(part, (int64_t)n * CLIP_BLOCKS, max_norm, out);
    CG_CUDA_CHECK_LAUNCH(ctx, "clip_final_kernel");
    if (!(max_norm > 0.0f)) return CG_OK;
    for (int k = 0; k < n; k++) {
        const cg_cuda_adamw *s = sets[k];
        if (s->n == 0 || s->n_entries == 0) continue;
        clip_scale_kernel<<<cg_grid(s->n, 256), 256, 0, ctx->stream>>>(grads[k], s->starts, s->flags, s->n_entries,
                                                                      s->any_frozen, s->n, out);
        CG_CUDA_CHECK_LAUNCH(ctx, "clip_scale_kernel");
    }
    return CG_OK;
}
