/* cuda_clip_loss.cu — open_clip's ClipLoss (nn/clip_loss.h semantics), all in fp32 on the device.
 *
 * Forward                                            | Backward (overwrites dxi, dxt, dlogit_scale)
 *   ni = xi / max(||xi||, 1e-12), nt likewise        |   G = (softmax_rows(L) - I)/(2B) + (softmax_cols(L) - I)/(2B)
 *   s = exp(logit_scale)                             |   dlogit_scale = sum G o L
 *   L = s ni nt^T              [B, B]                |   dni = s G nt ;  dnt = s G^T ni
 *   loss = (CE(L) + CE(L^T)) / 2, labels = 0..B-1    |   dx = (dn - n <n, dn>) / ||x||
 * s is read from the device (the fp32 master logit_scale): the GEMM computes ni nt^T with alpha 1
 * and a kernel multiplies by s, so nothing waits for the host. Softmaxes use double exp and
 * sums like the CPU; per-row and per-column loss terms and the dlogit_scale row partials go to
 * `terms` and are added by one block in a fixed order (deterministic). The features xi, xt and
 * the gradients dxi, dxt are X; everything inside is float.
 */
#include <math.h>
#include <string.h>

#include "nn/cuda/cuda_common.cuh"
#include "nn/cuda/cuda_ops.h"

/* y[r, :] = x[r, :] / max(||x[r, :]||, 1e-12) ; norms[r] = that divisor (one warp per row) */
template <typename T>
__global__ void __launch_bounds__(CG_BLOCK)
l2norm_kernel(float *__restrict__ y, float *__restrict__ norms, const T *__restrict__ x, int64_t B, int64_t D) {
    int64_t row = (int64_t)blockIdx.x * CG_WARPS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= B) return;
    const T *xr = x + row * D;
    double s = 0.0;
    for (int64_t d = lane; d < D; d += 32) {
        double v = (double)ldf(xr[d]);
        s += v * v;
    }
    s = warp_sum_d(s);
    float r = (float)sqrt(s);
    if (r < 1e-12f) r = 1e-12f;
    for (int64_t d = lane; d < D; d += 32) y[row * D + d] = ldf(xr[d]) / r;
    if (norms && lane == 0) norms[row] = r;
}

/* L *= s, s = exp(*logit_scale); out[3] = s */
__global__ void scale_logits_kernel(float *__restrict__ L, const float *__restrict__ logit_scale, float *__restrict__ out,
                                    int64_t n) {
    float s = expf(*logit_scale);
    int64_t i0 = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i0 == 0) out[3] = s;
    for (int64_t i = i0; i < n; i += (int64_t)gridDim.x * blockDim.x) L[i] *= s;
}

/* Softmax of one line of L (a row: stride 1, or a column: stride B), in a warp:
 * P[line] = exp(L - max) / z, terms[0] = (log z + max - L[diag]) / (2B), terms[1] = (argmax == diag). */
__device__ __forceinline__ void softmax_line(const float *__restrict__ Lp, float *__restrict__ Pp, int64_t stride, int64_t B,
                             int64_t diag, double *term, double *hit) {
    int lane = threadIdx.x & 31;
    float mx = -INFINITY;
    int64_t arg = B;
    for (int64_t j = lane; j < B; j += 32) {
        float v = Lp[j * stride];
        if (v > mx || arg == B) { mx = v; arg = j; }   /* lanes walk j upwards: the first maximum wins */
    }
    for (int o = 16; o > 0; o >>= 1) {   /* (max, smallest index of the max) across lanes */
        float ov = __shfl_xor_sync(0xffffffffu, mx, o);
        long long oa = __shfl_xor_sync(0xffffffffu, (long long)arg, o);
        if (ov > mx || (ov == mx && oa < arg)) { mx = ov; arg = oa; }
    }
    double z = 0.0;
    for (int64_t j = lane; j < B; j += 32) z += exp((double)Lp[j * stride] - (double)mx);
    z = warp_sum_d(z);
    for (int64_t j = lane; j < B; j += 32) Pp[j * stride] = (float)(exp((double)Lp[j * stride] - (double)mx) / z);
    if (lane == 0) {
        *term = (log(z) + (double)mx - (double)Lp[diag * stride]) / (2.0 * (double)B);
        *hit = arg == diag ? 1.0 : 0.0;
    }
}

/* rows r < B: image r against every text; then columns: text c against every image */
__global__ void __launch_bounds__(CG_BLOCK)
clip_softmax_kernel(const float *__restrict__ L, float *__restrict__ p_rows, float *__restrict__ p_cols,
                    double *__restrict__ terms, int64_t B) {
    int64_t line = (int64_t)blockIdx.x * CG_WARPS + (threadIdx.x >> 5);
    if (line >= 2 * B) return;
    if (line < B) softmax_line(L + line * B, p_rows + line * B, 1, B, line, &terms[line], &terms[2 * B + line]);
    else softmax_line(L + (line - B), p_cols + (line - B), B, B, line - B, &terms[line], &terms[2 * B + line]);
}

/* one block: out[0] = sum terms[0, 2B) ; out[1] = sum terms[2B, 3B) / B ; out[2] = sum terms[3B, 4B) / B */
__global__ void __launch_bounds__(CG_BLOCK) clip_loss_final_kernel(const double *__restrict__ terms, float *__restrict__ out, int64_t B) {
    __shared__ double shm[CG_WARPS];
    double l = 0.0, hi = 0.0, ht = 0.0;
    for (int64_t i = threadIdx.x; i < 2 * B; i += CG_BLOCK) l += terms[i];
    for (int64_t i = threadIdx.x; i < B; i += CG_BLOCK) {
        hi += terms[2 * B + i];
        ht += terms[3 * B + i];
    }
    l = block_sum_d(l, shm);
    hi = block_sum_d(hi, shm);
    ht = block_sum_d(ht, shm);
    if (threadIdx.x == 0) {
        out[0] = (float)l;
        out[1] = (float)(hi / (double)B);
        out[2] = (float)(ht / (double)B);
    }
}

/* G[i, j] = (p_rows + p_cols - 2 [i == j]) / (2B) ; terms[4B + i] = sum_j G[i, j] L[i, j]  (warp per row) */
__global__ void __launch_bounds__(CG_BLOCK)
clip_grad_kernel(float *__restrict__ G, const float *__restrict__ p_rows, const float *__restrict__ p_cols,
                 const float *__restrict__ L, double *__restrict__ terms, int64_t B) {
    int64_t i = (int64_t)blockIdx.x * CG_WARPS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (i >= B) return;
    double dot = 0.0;
    for (int64_t j = lane; j < B; j += 32) {
        int64_t k = i * B + j;
        float g = (p_rows[k] + p_cols[k] - (i == j ? 2.0f : 0.0f)) / (2.0f * (float)B);
        G[k] = g;
        dot += (double)g * (double)L[k];
    }
    dot = warp_sum_d(dot);
    if (lane == 0) terms[4 * B + i] = dot;
}

/* *dscale = sum terms[4B, 5B) (one block) */
__global__ void __launch_bounds__(CG_BLOCK) clip_dscale_kernel(const double *__restrict__ terms, float *__restrict__ dscale, int64_t B) {
    __shared__ double shm[CG_WARPS];
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < B; i += CG_BLOCK) s += terms[4 * B + i];
    s = block_sum_d(s, shm);
    if (threadIdx.x == 0) *dscale = (float)s;
}

/* dx[r, :] = (dn - n <n, dn>) / norm[r], dn = s * raw[r, :]   (warp per row; dx overwritten) */
template <typename T>
__global__ void __launch_bounds__(CG_BLOCK)
l2norm_bwd_kernel(T *__restrict__ dx, const float *__restrict__ raw, const float *__restrict__ n,
                  const float *__restrict__ norm, const float *__restrict__ out, int64_t B, int64_t D) {
    int64_t row = (int64_t)blockIdx.x * CG_WARPS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= B) return;
    float s = out[3];
    const float *rr = raw + row * D, *nr = n + row * D;
    double dot = 0.0;
    for (int64_t d = lane; d < D; d += 32) dot += (double)nr[d] * (double)(s * rr[d]);
    float dotf = (float)warp_sum_d(dot), r = norm[row];
    for (int64_t d = lane; d < D; d += 32) dx[row * D + d] = stf<T>((s * rr[d] - nr[d] * dotf) / r);
}

/* ---------------------------------------------------------------- host side */

static unsigned int warp_rows_grid(int64_t rows) { return (unsigned int)((rows + CG_WARPS - 1) / CG_WARPS); }

extern "C" int cg_cuda_l2_normalize_rows(cg_cuda_ctx *ctx, cg_precision p, float *y, float *norms, const void *x,
                                         int64_t B, int64_t D) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(B >= 0 && D >= 1 && B <= 0x7fffffffLL, "B=%lld D=%lld", (long long)B, (long long)D);
    if (B == 0) return CG_OK;
    if (p == CG_PREC_BF16)
        l2norm_kernel<bf16><<<warp_rows_grid(B), CG_BLOCK, 0, ctx->stream>>>(y, norms, (const bf16 *)x, B, D);
    else
        l2norm_kernel<float><<<warp_rows_grid(B), CG_BLOCK, 0, ctx->stream>>>(y, norms, (const float *)x, B, D);
    CG_CUDA_CHECK_LAUNCH(ctx, "l2norm_kernel");
    return CG_OK;
}

extern "C" int cg_cuda_clip_loss_init(cg_cuda_clip_loss *c, cg_cuda_arena *a, int B, int D) {
    CG_CUDA_ARG(B >= 1 && D >= 1, "B=%d D=%d", B, D);
    memset(c, 0, sizeof *c);
    c->B = B;
    c->D = D;
    size_t bd = (size_t)B * D * sizeof(float), bb = (size_t)B * B * sizeof(float), b = (size_t)B * sizeof(float);
    c->ni = (float *)cg_cuda_arena_alloc(a, bd);
    c->nt = (float *)cg_cuda_arena_alloc(a, bd);
    c->norm_i = (float *)cg_cuda_arena_alloc(a, b);
    c->norm_t = (float *)cg_cuda_arena_alloc(a, b);
    c->logits = (float *)cg_cuda_arena_alloc(a, bb);
    c->p_rows = (float *)cg_cuda_arena_alloc(a, bb);
    c->p_cols = (float *)cg_cuda_arena_alloc(a, bb);
    c->G = (float *)cg_cuda_arena_alloc(a, bb);
    c->dni = (float *)cg_cuda_arena_alloc(a, bd);
    c->dnt = (float *)cg_cuda_arena_alloc(a, bd);
    c->terms = (double *)cg_cuda_arena_alloc(a, (size_t)5 * B * sizeof(double));
    c->out = (float *)cg_cuda_arena_alloc(a, 4 * sizeof(float));
    if (a->planning) return CG_OK;
    if (!c->ni || !c->nt || !c->norm_i || !c->norm_t || !c->logits || !c->p_rows || !c->p_cols || !c->G || !c->dni ||
        !c->dnt || !c->terms || !c->out)
        return CG_ERR_NOMEM;  /* cg_cuda_arena_alloc said which allocation did not fit */
    return CG_OK;
}

extern "C" size_t cg_cuda_clip_loss_bytes(int B, int D) {
    cg_cuda_arena a;
    cg_cuda_arena_plan(&a);
    cg_cuda_clip_loss c;
    if (cg_cuda_clip_loss_init(&c, &a, B, D)) return 0;
    return a.used;
}

template <typename T>
static int clip_forward(cg_cuda_ctx *ctx, cg_precision p, cg_cuda_clip_loss *c, const void *xi, const void *xt,
                        const float *logit_scale) {
    int64_t B = c->B, D = c->D;
    CG_TRY(cg_cuda_l2_normalize_rows(ctx, p, c->ni, c->norm_i, xi, B, D));
    CG_TRY(cg_cuda_l2_normalize_rows(ctx, p, c->nt, c->norm_t, xt, B, D));
    CG_TRY(cg_cuda_gemm(ctx, CG_PREC_FP32, 0, 1, B, B, D, 1.0f, c->ni, D, c->nt, D, 0.0f, c->logits, B, 1));
    scale_logits_kernel<<<cg_grid(B * B, 256), 256, 0, ctx->stream>>>(c->logits, logit_scale, c->out, B * B);
    CG_CUDA_CHECK_LAUNCH(ctx, "scale_logits_kernel");
    clip_softmax_kernel<<<warp_rows_grid(2 * B), CG_BLOCK, 0, ctx->stream>>>(c->logits, c->p_rows, c->p_cols, c->terms, B);
    CG_CUDA_CHECK_LAUNCH(ctx, "clip_softmax_kernel");
    clip_loss_final_kernel<<<1, CG_BLOCK, 0, ctx->stream>>>(c->terms, c->out, B);
    CG_CUDA_CHECK_LAUNCH(ctx, "clip_loss_final_kernel");
    return CG_OK;
}

extern "C" int cg_cuda_clip_loss_forward(cg_cuda_ctx *ctx, cg_precision p, cg_cuda_clip_loss *c, const void *xi,
                                         const void *xt, const float *logit_scale) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(c && c->out && logit_scale, "an initialised loss and a device logit_scale are required");
    if (p == CG_PREC_BF16) return clip_forward<bf16>(ctx, p, c, xi, xt, logit_scale);
    return clip_forward<float>(ctx, p, c, xi, xt, logit_scale);
}

extern "C" int cg_cuda_clip_loss_read(cg_cuda_ctx *ctx, const cg_cuda_clip_loss *c, float *loss, float *acc_i2t,
                                      float *acc_t2i) {
    float h[4];
    CG_TRY(cg_cuda_d2h(ctx, h, c->out, sizeof h));
    if (loss) *loss = h[0];
    if (acc_i2t) *acc_i2t = h[1];
    if (acc_t2i) *acc_t2i = h[2];
    return CG_OK;
}

template <typename T>
static int clip_backward(cg_cuda_ctx *ctx, cg_cuda_clip_loss *c, void *dxi, void *dxt, float *dlogit_scale) {
    int64_t B = c->B, D = c->D;
    clip_grad_kernel<<<warp_rows_grid(B), CG_BLOCK, 0, ctx->stream>>>(c->G, c->p_rows, c->p_cols, c->logits, c->terms, B);
    CG_CUDA_CHECK_LAUNCH(ctx, "clip_grad_kernel");
    if (dlogit_scale) {
        clip_dscale_kernel<<<1, CG_BLOCK, 0, ctx->stream>>>(c->terms, dlogit_scale, B);
        CG_CUDA_CHECK_LAUNCH(ctx, "clip_dscale_kernel");
    }
    /* raw products (alpha 1); the scale s multiplies inside l2norm_bwd_kernel */
    CG_TRY(cg_cuda_gemm(ctx, CG_PREC_FP32, 0, 0, B, D, B, 1.0f, c->G, B, c->nt, D, 0.0f, c->dni, D, 1));
    CG_TRY(cg_cuda_gemm(ctx, CG_PREC_FP32, 1, 0, B, D, B, 1.0f, c->G, B, c->ni, D, 0.0f, c->dnt, D, 1));
    l2norm_bwd_kernel<T><<<warp_rows_grid(B), CG_BLOCK, 0, ctx->stream>>>((T *)dxi, c->dni, c->ni, c->norm_i, c->out, B, D);
    CG_CUDA_CHECK_LAUNCH(ctx, "l2norm_bwd_kernel");
    l2norm_bwd_kernel<T><<<warp_rows_grid(B), CG_BLOCK, 0, ctx->stream>>>((T *)dxt, c->dnt, c->nt, c->norm_t, c->out, B, D);
    CG_CUDA_CHECK_LAUNCH(ctx, "l2norm_bwd_kernel");
    return CG_OK;
}

extern "C" int cg_cuda_clip_loss_backward(cg_cuda_ctx *ctx, cg_precision p, cg_cuda_clip_loss *c, void *dxi, void *dxt,
                                          float *dlogit_scale) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(c && c->out && dxi && dxt, "an initialised loss and dxi, dxt are required");
    if (p == CG_PREC_BF16) return clip_backward<bf16>(ctx, c, dxi, dxt, dlogit_scale);
    return clip_backward<float>(ctx, c, dxi, dxt, dlogit_scale);
}
