/* cuda_norm.cu — BatchNorm, LayerNorm, and the deterministic per-row / per-column sums that the
 * other layers' bias gradients use.
 *
 * Reductions: a [C, M] tensor (one channel per row) is cut into P chunks per channel; block
 * (c, p) sums its chunk (double accumulators per thread, a double block reduction) into
 * scratch; a second kernel, one thread per channel, adds the P partials in order. Column sums of
 * an [R, C] tensor do the same with row chunks, threads along the columns (coalesced). No
 * atomics: the result does not depend on scheduling, and the sums are at least as accurate as the
 * CPU's double sums.
 */
#include "nn/cuda/cuda_common.cuh"
#include "nn/cuda/cuda_ops.h"

enum { RED_SUM = 0, RED_BWD = 2 };

/* ---------------------------------------------------------------- partition plans */

typedef struct {
    int64_t P, chunk;
} red_plan;

/* P chunks of `target` items (at most 1024), fewer when the partials (P * lanes * 2 doubles)
 * would not fit in `avail` bytes of scratch; every chunk is non-empty and, when longer than
 * CG_VEC, a whole number of CG_VEC groups. */
static int plan(int64_t n_items, int64_t lanes, int64_t target, size_t avail, red_plan *pl, const char *what) {
    int64_t P = (n_items + target - 1) / target;
    if (P > 1024) P = 1024;
    if (P < 1) P = 1;
    int64_t maxP = (int64_t)(avail / ((size_t)lanes * 2 * sizeof(double)));
    CG_CUDA_ARG(maxP >= 1, "%s: scratch too small for %lld partial sums", what, (long long)lanes);
    if (P > maxP) P = maxP;
    pl->chunk = (n_items + P - 1) / P;
    if (pl->chunk > CG_VEC) pl->chunk = (pl->chunk + CG_VEC - 1) / CG_VEC * CG_VEC;   /* whole groups (chan_partials) */
    pl->P = (n_items + pl->chunk - 1) / pl->chunk;
    return CG_OK;
}

/* ---------------------------------------------------------------- channel (row) partial sums
 * x, dy [C, M]. Block b = c * P + p sums items [p*chunk, min(M, (p+1)*chunk)) of channel c:
 *   RED_SUM:    s0 = sum x
 *   RED_BWD:    s0 = sum dy,  s1 = sum dy * (x - mean[c]) * rstd[c]
 * part[(c * P + p) * 2 + {0, 1}] = s0, s1. */
template <typename T, int MODE, int V>
__global__ void __launch_bounds__(CG_BLOCK)
chan_partials_kernel(const T *__restrict__ x, const T *__restrict__ dy, const float *__restrict__ mean,
                     const float *__restrict__ rstd, int64_t M, int64_t P, int64_t chunk,
                     double *__restrict__ part) {
    __shared__ double shm[CG_WARPS];
    int64_t c = blockIdx.x / P, pp = blockIdx.x % P;
    int64_t i0 = pp * chunk, i1 = i0 + chunk < M ? i0 + chunk : M;
    const T *xc = x + c * M;
    double s0 = 0.0, s1 = 0.0;
    if (MODE == RED_SUM) {
        for (int64_t i = i0 + (int64_t)threadIdx.x * V; i < i1; i += CG_BLOCK * V) {
            xvec<T, V> xv = ldv<T, V>(xc + i);
#pragma unroll
            for (int e = 0; e < V; e++) s0 += (double)ldf(xv.v[e]);
        }
    } else {
        const T *gc = dy + c * M;
        float mu = mean[c], rs = rstd[c];
        for (int64_t i = i0 + (int64_t)threadIdx.x * V; i < i1; i += CG_BLOCK * V) {
            xvec<T, V> gv = ldv<T, V>(gc + i), xv = ldv<T, V>(xc + i);
#pragma unroll
            for (int e = 0; e < V; e++) {
                float g = ldf(gv.v[e]);
                s0 += (double)g;
                s1 += (double)g * (double)((ldf(xv.v[e]) - mu) * rs);
            }
        }
    }
    s0 = block_sum_d(s0, shm);
    s1 = block_sum_d(s1, shm);
    if (threadIdx.x == 0) {
        part[(c * P + pp) * 2] = s0;
        part[(c * P + pp) * 2 + 1] = s1;
    }
}

/* CG_VEC elements per access when every chunk and row holds whole groups and the pointers are
 * aligned (plan() makes chunks multiples of CG_VEC), else one */
template <typename T, int MODE>
static int chan_partials(cg_cuda_ctx *ctx, const void *x, const void *dy, const float *mean,
                         const float *rstd, int64_t C, int64_t M, const red_plan *pl, double *part) {
    unsigned int grid = (unsigned int)(C * pl->P);
    if (pl->chunk % CG_VEC == 0 && cg_vec_ok(M, sizeof(T), {x, dy}))
        chan_partials_kernel<T, MODE, CG_VEC><<<grid, CG_BLOCK, 0, ctx->stream>>>(
            (const T *)x, (const T *)dy, mean, rstd, M, pl->P, pl->chunk, part);
    else
        chan_partials_kernel<T, MODE, 1><<<grid, CG_BLOCK, 0, ctx->stream>>>(
            (const T *)x, (const T *)dy, mean, rstd, M, pl->P, pl->chunk, part);
    CG_CUDA_CHECK_LAUNCH(ctx, "chan_partials_kernel");
    return CG_OK;
}

/* dst[c] += sum_p part[c, p, 0] */
__global__ void rowsum_finalize_kernel(float *__restrict__ dst, const double *__restrict__ part, int64_t C, int64_t P) {
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0.0;
    for (int64_t p = 0; p < P; p++) s += part[(c * P + p) * 2];
    dst[c] += (float)s;
}

/* Grid limit for one block per (channel, chunk). */
#define CHAN_CHECK(C, P) CG_CUDA_ARG((C) * (P) <= 0x7fffffffLL, "C=%lld too many channels", (long long)(C))

int cg_cuda_rowsum_acc(cg_cuda_ctx *ctx, cg_precision p, float *dst, const void *src, int64_t C, int64_t M) {
    CG_CHECK_PREC(p);
    if (C == 0 || M == 0) return CG_OK;
    red_plan pl = {0, 0};
    CG_TRY(plan(M, C, 8192, ctx->scratch_bytes, &pl, "row sums"));
    CHAN_CHECK(C, pl.P);
    double *part = (double *)ctx->scratch;
    if (p == CG_PREC_BF16) CG_TRY((chan_partials<bf16, RED_SUM>(ctx, src, NULL, NULL, NULL, C, M, &pl, part)));
    else CG_TRY((chan_partials<float, RED_SUM>(ctx, src, NULL, NULL, NULL, C, M, &pl, part)));
    rowsum_finalize_kernel<<<cg_grid(C, 256), 256, 0, ctx->stream>>>(dst, part, C, pl.P);
    CG_CUDA_CHECK_LAUNCH(ctx, "rowsum_finalize_kernel");
    return CG_OK;
}

/* ---------------------------------------------------------------- column partial sums
 * a, x [R, C]. Block b = p * ncb + cb covers columns [cb * 32, cb * 32 + 32) of the rows
 * [p*chunk, min(R, (p+1)*chunk)): lane l of warp w sums column cb * 32 + l over the rows
 * p*chunk + w, + 8, + 16, ... (a warp reads 32 neighbouring values of a row), then the 8 warps'
 * sums are added in warp order:
 *   RED_SUM:  s0 = sum_r a[r, c]
 *   RED_BWD:  s0 = sum_r a[r, c] * (x[r, c] - mean[r]) * rstd[r],  s1 = sum_r a[r, c]   (LayerNorm dw, db)
 * part[(p * C + c) * 2 + {0, 1}]. Chunks of COL_CHUNK rows keep the partials few (a GPU profile
 * showed 64-row chunks spending more time adding 300 partials per column than reading a). */
#define COL_LANES 32
#define COL_ROWS (CG_BLOCK / COL_LANES)
#define COL_CHUNK 512
template <typename T, int MODE>
__global__ void __launch_bounds__(CG_BLOCK)
col_partials_kernel(const T *__restrict__ a, const T *__restrict__ x, const float *__restrict__ mean,
                    const float *__restrict__ rstd, int64_t R, int64_t C, int64_t P, int64_t chunk,
                    double *__restrict__ part) {
    __shared__ double red[COL_ROWS][COL_LANES][2];
    int64_t ncb = (C + COL_LANES - 1) / COL_LANES;
    int64_t cb = blockIdx.x % ncb, pp = blockIdx.x / ncb;
    int lane = threadIdx.x % COL_LANES, rl = threadIdx.x / COL_LANES;
    int64_t c = cb * COL_LANES + lane;
    int64_t r0 = pp * chunk, r1 = r0 + chunk < R ? r0 + chunk : R;
    double s0 = 0.0, s1 = 0.0;
    if (c < C) {
        for (int64_t r = r0 + rl; r < r1; r += COL_ROWS) {
            float g = ldf(a[r * C + c]);
            if (MODE == RED_SUM) {
                s0 += (double)g;
            } else {
                s0 += (double)g * (double)((ldf(x[r * C + c]) - mean[r]) * rstd[r]);
                s1 += (double)g;
            }
        }
    }
    red[rl][lane][0] = s0;
    red[rl][lane][1] = s1;
    __syncthreads();
    if (rl == 0 && c < C) {
        for (int q = 1; q < COL_ROWS; q++) {
            s0 += red[q][lane][0];
            s1 += red[q][lane][1];
        }
        part[(pp * C + c) * 2] = s0;
        part[(pp * C + c) * 2 + 1] = s1;
    }
}

/* d0[c] += sum_p part[p, c, 0] ; d1[c] += sum_p part[p, c, 1] (either may be NULL) */
__global__ void col_finalize_kernel(float *__restrict__ d0, float *__restrict__ d1, const double *__restrict__ part,
                                    int64_t C, int64_t P) {
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s0 = 0.0, s1 = 0.0;
    for (int64_t p = 0; p < P; p++) {
        s0 += part[(p * C + c) * 2];
        s1 += part[(p * C + c) * 2 + 1];
    }
    if (d0) d0[c] += (float)s0;
    if (d1) d1[c] += (float)s1;
}

template <typename T, int MODE>
static int col_sums(cg_cuda_ctx *ctx, float *d0, float *d1, const void *a, const void *x, const float *mean,
                    const float *rstd, int64_t R, int64_t C) {
    red_plan pl = {0, 0};
    CG_TRY(plan(R, C, COL_CHUNK, ctx->scratch_bytes, &pl, "column sums"));
    int64_t ncb = (C + COL_LANES - 1) / COL_LANES;
    CG_CUDA_ARG(ncb * pl.P <= 0x7fffffffLL, "C=%lld too wide", (long long)C);
    double *part = (double *)ctx->scratch;
    col_partials_kernel<T, MODE><<<(unsigned int)(ncb * pl.P), CG_BLOCK, 0, ctx->stream>>>(
        (const T *)a, (const T *)x, mean, rstd, R, C, pl.P, pl.chunk, part);
    CG_CUDA_CHECK_LAUNCH(ctx, "col_partials_kernel");
    col_finalize_kernel<<<cg_grid(C, 256), 256, 0, ctx->stream>>>(d0, d1, part, C, pl.P);
    CG_CUDA_CHECK_LAUNCH(ctx, "col_finalize_kernel");
    return CG_OK;
}

int cg_cuda_colsum_acc(cg_cuda_ctx *ctx, cg_precision p, float *dst, const void *src, int64_t R, int64_t C) {
    CG_CHECK_PREC(p);
    if (R == 0 || C == 0) return CG_OK;
    if (p == CG_PREC_BF16) return col_sums<bf16, RED_SUM>(ctx, dst, NULL, src, NULL, NULL, NULL, R, C);
    return col_sums<float, RED_SUM>(ctx, dst, NULL, src, NULL, NULL, NULL, R, C);
}

/* ---------------------------------------------------------------- BatchNorm
 *
 * x [C, M], per channel c over its M values (nn/batchnorm.h):
 * Train forward                                  | Train backward
 *   mean = sum x / M                             |   sg = sum dy ; sgx = sum dy * xhat
 *   var  = sum (x - mean)^2 / M   (biased)       |   dbeta += sg ; dgamma += sgx
 *   rstd = 1 / sqrt(var + eps)                   |   dx += gamma rstd (dy - sg/M - xhat sgx/M)
 *   y = a x + b, a = gamma rstd, b = beta - mean a
 *   running_mean = (1-m) running_mean + m mean
 *   running_var  = (1-m) running_var + m var M/(M-1)
 * Eval forward                                   | Eval backward
 *   rstd = 1 / sqrt(running_var + eps)           |   xhat with running stats; dbeta += sum dy,
 *   y = gamma (x - running_mean) rstd + beta     |   dgamma += sum dy xhat ; dx += gamma rstd dy
 * xbias (optional, [C]): the input is x + xbias[c] (the bias of the conv before, which then need
 * not write it). The statistics are taken over x itself (var is the same; mean and running_mean
 * get xbias added), the apply pass folds it into b, and the backward uses mean - xbias.
 * Kernels: partial sums -> one thread per channel finalises (double) -> one element-wise pass.
 * Train forward reads x twice: the statistics (bn_chunk_moments_kernel: each block keeps its
 * chunk of a channel in shared memory and takes the sum and the squared deviations about the
 * chunk's own mean from there; the chunks are merged with Chan et al.'s pairwise update, so the
 * variance is never E[x^2] - E[x]^2), then the apply pass.
 *
 * Scratch: per-channel values first (double mean, four float arrays), the partials after them.
 */

typedef struct {
    float *f0, *f1, *f2, *f3, *f4;
    double *part;
    red_plan pl = {0, 0};
} bn_scratch;

static int bn_layout(cg_cuda_ctx *ctx, int64_t C, int64_t M, bn_scratch *s) {
    size_t chan = cg_align_up((size_t)C * 5 * sizeof(float), 256);
    CG_SCRATCH_NEED(ctx, chan + (size_t)C * 2 * sizeof(double), "batchnorm");
    char *base = (char *)ctx->scratch;
    s->f0 = (float *)base;
    s->f1 = s->f0 + C;
    s->f2 = s->f1 + C;
    s->f3 = s->f2 + C;
    s->f4 = s->f3 + C;
    s->part = (double *)(base + chan);
    CG_TRY(plan(M, C, 8192, ctx->scratch_bytes - chan, &s->pl, "batchnorm"));
    CHAN_CHECK(C, s->pl.P);
    return CG_OK;
}

/* One read of a channel's chunk [i0, i1) (block c * P + p): the values go to shared memory (a
 * chunk longer than BN_CHUNK is read a second time instead), then
 *   part[(c P + p) 2] = s = sum x,   part[(c P + p) 2 + 1] = q = sum (x - s / n)^2,  n = i1 - i0
 * with double accumulators: the chunk's own two-pass moments. */
#define BN_CHUNK 8192
template <typename T>
__global__ void __launch_bounds__(CG_BLOCK)
bn_chunk_moments_kernel(const T *__restrict__ x, int64_t M, int64_t P, int64_t chunk, double *__restrict__ part) {
    __shared__ float xs[BN_CHUNK];
    __shared__ double shm[CG_WARPS];
    int64_t c = blockIdx.x / P, pp = blockIdx.x % P;
    int64_t i0 = pp * chunk, i1 = i0 + chunk < M ? i0 + chunk : M, n = i1 - i0;
    const T *xc = x + c * M + i0;
    int cached = n <= BN_CHUNK;
    double s = 0.0, q = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += CG_BLOCK) {
        float v = ldf(xc[i]);
        if (cached) xs[i] = v;
        s += (double)v;
    }
    s = block_sum_d(s, shm);   /* its barriers also publish xs */
    double mu = s / (double)n;
    for (int64_t i = threadIdx.x; i < n; i += CG_BLOCK) {
        double d = (double)(cached ? xs[i] : ldf(xc[i])) - mu;
        q += d * d;
    }
    q = block_sum_d(q, shm);
    if (threadIdx.x == 0) {
        part[(c * P + pp) * 2] = s;
        part[(c * P + pp) * 2 + 1] = q;
    }
}

/* Per channel: the chunks' moments merged in order (Chan, Golub, LeVeque: with n, mean, M2 so
 * far and a chunk's nb, mb, qb: d = mb - mean, mean += d nb / (n + nb), M2 += qb + d^2 n nb /
 * (n + nb)); var = M2 / M (biased), rstd, the running stats (unbiased M2 / (M - 1)), and the
 * affine a (ca), shift m (cm) and b (cb) of the apply pass on x itself, y = a (x - m) + b.
 * save_mean and running_mean get xbias added (the mean of the BatchNorm's real input x + xbias). */
template <typename T>
__global__ void bn_stats_kernel(const double *__restrict__ part, int64_t C, int64_t P, int64_t M, int64_t chunk,
                                const T *__restrict__ xb, const T *__restrict__ gamma, const T *__restrict__ beta,
                                float eps, float momentum, float *__restrict__ rm, float *__restrict__ rv,
                                float *__restrict__ save_mean, float *__restrict__ save_rstd, float *__restrict__ ca,
                                float *__restrict__ cm, float *__restrict__ cb) {
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double n = 0.0, mean = 0.0, m2 = 0.0;
    for (int64_t p = 0; p < P; p++) {
        int64_t left = M - p * chunk;
        double nb = (double)(left < chunk ? left : chunk);
        double mb = part[(c * P + p) * 2] / nb, d = mb - mean, tot = n + nb;
        mean += d * nb / tot;
        m2 += part[(c * P + p) * 2 + 1] + d * d * n * nb / tot;
        n = tot;
    }
    double var = m2 / (double)M;
    double rstd = 1.0 / sqrt(var + (double)eps);
    double g = (double)ldf(gamma[c]), bt = (double)ldf(beta[c]);
    double biased_mean = xb ? mean + (double)ldf(xb[c]) : mean;
    ca[c] = (float)(g * rstd);
    cm[c] = (float)mean;
    cb[c] = (float)bt;
    save_mean[c] = (float)biased_mean;
    save_rstd[c] = (float)rstd;
    if (rm) {
        double unbiased = M > 1 ? m2 / (double)(M - 1) : var;
        rm[c] = (float)((1.0 - (double)momentum) * (double)rm[c] + (double)momentum * biased_mean);
        rv[c] = (float)((1.0 - (double)momentum) * (double)rv[c] + (double)momentum * unbiased);
    }
}

/* eval: a = gamma rstd, m = running_mean - xbias, b = beta, rstd = 1/sqrt(running_var + eps);
 * cm and cb only when beta is given (the forward) */
template <typename T>
__global__ void bn_eval_coef_kernel(const T *__restrict__ xb, const T *__restrict__ gamma, const T *__restrict__ beta,
                                    const float *__restrict__ rm, const float *__restrict__ rv, float eps, int64_t C,
                                    float *__restrict__ ca, float *__restrict__ cm, float *__restrict__ cb,
                                    float *__restrict__ crstd) {
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float rstd = (float)(1.0 / sqrt((double)rv[c] + (double)eps));
    float a = ldf(gamma[c]) * rstd;
    crstd[c] = rstd;
    ca[c] = a;
    if (beta) {
        cm[c] = xb ? rm[c] - ldf(xb[c]) : rm[c];
        cb[c] = ldf(beta[c]);
    }
}

/* y[c, i] = ca[c] (x[c, i] - cm[c]) + cb[c]   (y may alias x). The shift before the scale, as
 * PyTorch's CUDA BatchNorm: folded into one offset, a x + (b - a m) (the CPU's form, and PyTorch's
 * on the CPU), b is lost to cancellation when a is large (variance ~0: a = gamma / sqrt(eps)) and
 * the GPU's fused multiply-add rounds that loss otherwise than the CPU (H200 run 3) */
template <typename T, int V>
__global__ void chan_affine_kernel(T *y, const T *x, const float *__restrict__ ca, const float *__restrict__ cm,
                                   const float *__restrict__ cb, int64_t C, int64_t M) {
    ROW_STRIDE(c, C, jv, M / V) {
        const int64_t i = c * M + jv * V;
        xvec<T, V> xv = ldv<T, V>(x + i), yv;
#pragma unroll
        for (int e = 0; e < V; e++) yv.v[e] = stf<T>(ca[c] * (ldf(xv.v[e]) - cm[c]) + cb[c]);
        stv<T, V>(y + i, yv);
    }
}
/* chan_affine_kernel V elements at a time where rows and pointers allow (cg_vec_ok) */
template <typename T>
static int chan_affine(cg_cuda_ctx *ctx, void *y, const void *x, const float *ca, const float *cm, const float *cb,
                       int64_t C, int64_t M) {
    if (cg_vec_ok(M, sizeof(T), {y, x}))
        chan_affine_kernel<T, CG_VEC><<<cg_rows_grid(C, M / CG_VEC), 256, 0, ctx->stream>>>((T *)y, (const T *)x, ca, cm, cb, C, M);
    else
        chan_affine_kernel<T, 1><<<cg_rows_grid(C, M), 256, 0, ctx->stream>>>((T *)y, (const T *)x, ca, cm, cb, C, M);
    CG_CUDA_CHECK_LAUNCH(ctx, "chan_affine_kernel");
    return CG_OK;
}

/* dgamma += sgx ; dbeta += sg ; k = gamma rstd ; mg = sg/M, mgx = sgx/M (train) or 0 (eval) */
template <typename T>
__global__ void bn_bwd_finalize_kernel(const double *__restrict__ part, int64_t C, int64_t P, int64_t M,
                                       const T *__restrict__ gamma, const float *__restrict__ rstd, int train,
                                       float *__restrict__ dgamma, float *__restrict__ dbeta, float *__restrict__ ck,
                                       float *__restrict__ cmg, float *__restrict__ cmgx) {
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double sg = 0.0, sgx = 0.0;
    for (int64_t p = 0; p < P; p++) {
        sg += part[(c * P + p) * 2];
        sgx += part[(c * P + p) * 2 + 1];
    }
    dgamma[c] += (float)sgx;
    dbeta[c] += (float)sg;
    ck[c] = ldf(gamma[c]) * rstd[c];
    cmg[c] = train ? (float)(sg / (double)M) : 0.0f;
    cmgx[c] = train ? (float)(sgx / (double)M) : 0.0f;
}

/* dx += k (dy - mg - xhat mgx),  xhat = (x - mean) rstd */
template <typename T, int V>
__global__ void bn_bwd_apply_kernel(T *__restrict__ dx, const T *__restrict__ dy, const T *__restrict__ x,
                                    const float *__restrict__ mean, const float *__restrict__ rstd,
                                    const float *__restrict__ ck, const float *__restrict__ cmg,
                                    const float *__restrict__ cmgx, int64_t C, int64_t M, int set) {
    ROW_STRIDE(c, C, jv, M / V) {
        const int64_t i = c * M + jv * V;
        xvec<T, V> xv = ldv<T, V>(x + i), gv = ldv<T, V>(dy + i);
        float d[V];
#pragma unroll
        for (int e = 0; e < V; e++) {
            float xh = (ldf(xv.v[e]) - mean[c]) * rstd[c];
            d[e] = ck[c] * (ldf(gv.v[e]) - cmg[c] - xh * cmgx[c]);
        }
        put_grad_v<T, V>(dx + i, d, set);
    }
}

#define BN_ARGS_OK(C, M) CG_CUDA_ARG((C) >= 1 && (M) >= 1, "C=%lld M=%lld", (long long)(C), (long long)(M))

template <typename T>
static int bn_forward_train(cg_cuda_ctx *ctx, void *y, const void *x, const void *xb, const void *gamma, const void *beta, float *rm,
                            float *rv, float *save_mean, float *save_rstd, int64_t C, int64_t M, float momentum,
                            float eps) {
    bn_scratch s = {};
    CG_TRY(bn_layout(ctx, C, M, &s));
    unsigned int gc = cg_grid(C, 256);
    bn_chunk_moments_kernel<T><<<(unsigned int)(C * s.pl.P), CG_BLOCK, 0, ctx->stream>>>((const T *)x, M, s.pl.P,
                                                                                       s.pl.chunk, s.part);
    CG_CUDA_CHECK_LAUNCH(ctx, "bn_chunk_moments_kernel");
    bn_stats_kernel<T><<<gc, 256, 0, ctx->stream>>>(s.part, C, s.pl.P, M, s.pl.chunk, (const T *)xb, (const T *)gamma,
                                                    (const T *)beta, eps, momentum, rm, rv, save_mean, save_rstd, s.f0,
                                                    s.f2, s.f1);
    CG_CUDA_CHECK_LAUNCH(ctx, "bn_stats_kernel");
    CG_TRY(chan_affine<T>(ctx, y, x, s.f0, s.f2, s.f1, C, M));
    return CG_OK;
}

extern "C" int cg_cuda_batchnorm_forward_train(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *xbias,
                                               const void *gamma, const void *beta, float *running_mean,
                                               float *running_var, float *save_mean, float *save_rstd, int64_t C,
                                               int64_t M, float momentum, float eps) {
    CG_CHECK_PREC(p);
    BN_ARGS_OK(C, M);
    CG_CUDA_ARG(!running_mean == !running_var, "running_mean and running_var: both or neither");
    CG_CUDA_ARG(gamma && beta && save_mean && save_rstd, "gamma, beta, save_mean and save_rstd are required");
    if (p == CG_PREC_BF16)
        return bn_forward_train<bf16>(ctx, y, x, xbias, gamma, beta, running_mean, running_var, save_mean, save_rstd, C, M,
                                      momentum, eps);
    return bn_forward_train<float>(ctx, y, x, xbias, gamma, beta, running_mean, running_var, save_mean, save_rstd, C, M,
                                   momentum, eps);
}

/* out[c] = mean[c] - xbias[c]: the mean of x itself, for the backward's xhat */
template <typename T>
__global__ void bn_unbias_mean_kernel(float *__restrict__ out, const float *__restrict__ mean, const T *__restrict__ xb,
                                      int64_t C) {
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c < C) out[c] = mean[c] - ldf(xb[c]);
}

template <typename T>
static int bn_backward(cg_cuda_ctx *ctx, cg_grad_mode mode, void *dx, float *dgamma, float *dbeta, const void *dy,
                       const void *x, const void *xb, const void *gamma, const float *mean, const float *rstd,
                       int64_t C, int64_t M, int train, const bn_scratch *s) {
    unsigned int gc = cg_grid(C, 256);
    if (xb) {
        bn_unbias_mean_kernel<T><<<gc, 256, 0, ctx->stream>>>(s->f4, mean, (const T *)xb, C);
        CG_CUDA_CHECK_LAUNCH(ctx, "bn_unbias_mean_kernel");
        mean = s->f4;
    }
    CG_TRY((chan_partials<T, RED_BWD>(ctx, x, dy, mean, rstd, C, M, &s->pl, s->part)));
    bn_bwd_finalize_kernel<T><<<gc, 256, 0, ctx->stream>>>(s->part, C, s->pl.P, M, (const T *)gamma, rstd, train, dgamma,
                                                           dbeta, s->f0, s->f1, s->f2);
    CG_CUDA_CHECK_LAUNCH(ctx, "bn_bwd_finalize_kernel");
    if (dx) {
        if (cg_vec_ok(M, sizeof(T), {dx, dy, x}))
            bn_bwd_apply_kernel<T, CG_VEC><<<cg_rows_grid(C, M / CG_VEC), 256, 0, ctx->stream>>>(
                (T *)dx, (const T *)dy, (const T *)x, mean, rstd, s->f0, s->f1, s->f2, C, M, (int)mode);
        else
            bn_bwd_apply_kernel<T, 1><<<cg_rows_grid(C, M), 256, 0, ctx->stream>>>(
                (T *)dx, (const T *)dy, (const T *)x, mean, rstd, s->f0, s->f1, s->f2, C, M, (int)mode);
        CG_CUDA_CHECK_LAUNCH(ctx, "bn_bwd_apply_kernel");
    }
    return CG_OK;
}

extern "C" int cg_cuda_batchnorm_backward_train(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, float *dgamma, float *dbeta,
                                                const void *dy, const void *x, const void *xbias, const void *gamma,
                                                const float *save_mean, const float *save_rstd, int64_t C,
                                                int64_t M) {
    CG_CHECK_PREC(p);
    BN_ARGS_OK(C, M);
    CG_CUDA_ARG(dgamma && dbeta, "dgamma and dbeta are required");
    bn_scratch s = {};
    CG_TRY(bn_layout(ctx, C, M, &s));
    if (p == CG_PREC_BF16) return bn_backward<bf16>(ctx, mode, dx, dgamma, dbeta, dy, x, xbias, gamma, save_mean, save_rstd, C, M, 1, &s);
    return bn_backward<float>(ctx, mode, dx, dgamma, dbeta, dy, x, xbias, gamma, save_mean, save_rstd, C, M, 1, &s);
}

template <typename T>
static int bn_forward_eval(cg_cuda_ctx *ctx, void *y, const void *x, const void *xb, const void *gamma, const void *beta,
                           const float *rm, const float *rv, int64_t C, int64_t M, float eps) {
    bn_scratch s = {};
    CG_TRY(bn_layout(ctx, C, M, &s));
    bn_eval_coef_kernel<T><<<cg_grid(C, 256), 256, 0, ctx->stream>>>((const T *)xb, (const T *)gamma, (const T *)beta, rm, rv, eps, C,
                                                                      s.f0, s.f2, s.f1, s.f3);
    CG_CUDA_CHECK_LAUNCH(ctx, "bn_eval_coef_kernel");
    CG_TRY(chan_affine<T>(ctx, y, x, s.f0, s.f2, s.f1, C, M));
    return CG_OK;
}

extern "C" int cg_cuda_batchnorm_forward_eval(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *xbias,
                                              const void *gamma, const void *beta, const float *running_mean,
                                              const float *running_var, int64_t C, int64_t M, float eps) {
    CG_CHECK_PREC(p);
    BN_ARGS_OK(C, M);
    CG_CUDA_ARG(gamma && beta && running_mean && running_var, "gamma, beta and the running stats are required");
    if (p == CG_PREC_BF16) return bn_forward_eval<bf16>(ctx, y, x, xbias, gamma, beta, running_mean, running_var, C, M, eps);
    return bn_forward_eval<float>(ctx, y, x, xbias, gamma, beta, running_mean, running_var, C, M, eps);
}

template <typename T>
static int bn_backward_eval(cg_cuda_ctx *ctx, cg_grad_mode mode, void *dx, float *dgamma, float *dbeta, const void *dy,
                            const void *x, const void *xb, const void *gamma, const float *rm, const float *rv, int64_t C, int64_t M, float eps) {
    bn_scratch s = {};
    CG_TRY(bn_layout(ctx, C, M, &s));
    /* rstd of the running variance into f3 (f0..f2 are the finaliser's outputs) */
    bn_eval_coef_kernel<T><<<cg_grid(C, 256), 256, 0, ctx->stream>>>((const T *)NULL, (const T *)gamma, (const T *)NULL, rm, rv, eps, C,
                                                                      s.f0, (float *)NULL, s.f1, s.f3);
    CG_CUDA_CHECK_LAUNCH(ctx, "bn_eval_coef_kernel");
    return bn_backward<T>(ctx, mode, dx, dgamma, dbeta, dy, x, xb, gamma, rm, s.f3, C, M, 0, &s);
}

extern "C" int cg_cuda_batchnorm_backward_eval(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, float *dgamma, float *dbeta,
                                               const void *dy, const void *x, const void *xbias, const void *gamma,
                                               const float *running_mean, const float *running_var, int64_t C,
                                               int64_t M, float eps) {
    CG_CHECK_PREC(p);
    BN_ARGS_OK(C, M);
    CG_CUDA_ARG(dgamma && dbeta && running_mean && running_var, "dgamma, dbeta and the running stats are required");
    if (p == CG_PREC_BF16)
        return bn_backward_eval<bf16>(ctx, mode, dx, dgamma, dbeta, dy, x, xbias, gamma, running_mean, running_var, C, M, eps);
    return bn_backward_eval<float>(ctx, mode, dx, dgamma, dbeta, dy, x, xbias, gamma, running_mean, running_var, C, M, eps);
}

/* ---------------------------------------------------------------- LayerNorm
 *
 * One warp per row of C values (nn/layernorm.h):
 * Forward                                        | Backward
 *   mu = sum x / C                               |   g = dy w
 *   var = sum (x - mu)^2 / C   (two passes)      |   dx += rstd (g - mean(g) - xh mean(g xh))
 *   rstd = 1 / sqrt(var + eps)                   |   dw += sum_rows dy xh ; db += sum_rows dy
 *   xh = (x - mu) rstd ;  y = xh w + b           |   (column sums: col_partials_kernel, RED_BWD)
 * The row is re-read from memory (L1/L2) per pass rather than held in registers, so any C works.
 */

/* One warp per row; lane l takes the V-wide groups at V l, V l + 32 V, ... (V = CG_VEC when the
 * row length and every pointer allow 8- / 16-byte accesses, else 1). */
template <typename T, int V>
__global__ void __launch_bounds__(CG_BLOCK)
ln_forward_kernel(T *y, float *__restrict__ mean, float *__restrict__ rstd, const T *x, const T *__restrict__ w,
                  const T *__restrict__ b, int64_t N, int64_t C, float eps) {
    int64_t row = (int64_t)blockIdx.x * CG_WARPS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= N) return;  /* whole warps leave; no block-wide synchronisation below */
    const T *xr = x + row * C;
    T *yr = y + row * C;
    float s = 0.0f;
    for (int64_t c = lane * V; c < C; c += 32 * V) {
        xvec<T, V> xv = ldv<T, V>(xr + c);
#pragma unroll
        for (int e = 0; e < V; e++) s += ldf(xv.v[e]);
    }
    float mu = warp_sum(s) / (float)C;
    float v = 0.0f;
    for (int64_t c = lane * V; c < C; c += 32 * V) {
        xvec<T, V> xv = ldv<T, V>(xr + c);
#pragma unroll
        for (int e = 0; e < V; e++) {
            float d = ldf(xv.v[e]) - mu;
            v += d * d;
        }
    }
    float rs = 1.0f / sqrtf(warp_sum(v) / (float)C + eps);
    for (int64_t c = lane * V; c < C; c += 32 * V) {
        xvec<T, V> xv = ldv<T, V>(xr + c), wv = ldv<T, V>(w + c), bv, yv;
        if (b) bv = ldv<T, V>(b + c);
#pragma unroll
        for (int e = 0; e < V; e++) {
            float o = (ldf(xv.v[e]) - mu) * rs * ldf(wv.v[e]);
            if (b) o += ldf(bv.v[e]);
            yv.v[e] = stf<T>(o);
        }
        stv<T, V>(yr + c, yv);
    }
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

template <typename T, int V>
__global__ void __launch_bounds__(CG_BLOCK)
ln_backward_dx_kernel(T *__restrict__ dx, const T *__restrict__ dy, const T *__restrict__ x,
                      const float *__restrict__ mean, const float *__restrict__ rstd, const T *__restrict__ w,
                      int64_t N, int64_t C, int set) {
    int64_t row = (int64_t)blockIdx.x * CG_WARPS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= N) return;
    const T *xr = x + row * C, *gr = dy + row * C;
    T *dr = dx + row * C;
    float m = mean[row], r = rstd[row];
    float sg = 0.0f, sgx = 0.0f;
    for (int64_t c = lane * V; c < C; c += 32 * V) {
        xvec<T, V> gv = ldv<T, V>(gr + c), wv = ldv<T, V>(w + c), xv = ldv<T, V>(xr + c);
#pragma unroll
        for (int e = 0; e < V; e++) {
            float g = ldf(gv.v[e]) * ldf(wv.v[e]);
            sg += g;
            sgx += g * ((ldf(xv.v[e]) - m) * r);
        }
    }
    float a = warp_sum(sg) / (float)C, bb = warp_sum(sgx) / (float)C;
    for (int64_t c = lane * V; c < C; c += 32 * V) {
        xvec<T, V> gv = ldv<T, V>(gr + c), wv = ldv<T, V>(w + c), xv = ldv<T, V>(xr + c);
        float d[V];
#pragma unroll
        for (int e = 0; e < V; e++) {
            float xh = (ldf(xv.v[e]) - m) * r;
            d[e] = r * (ldf(gv.v[e]) * ldf(wv.v[e]) - a - xh * bb);
        }
        put_grad_v<T, V>(dr + c, d, set);
    }
}

/* kernel<TT, CG_VEC or 1> (TT: bf16 or float by p), one warp per row of N, then the launch check */
#define LN_LAUNCH(p, vec, kernel, N, ...) do { \
    unsigned int grid_ = (unsigned int)(((N) + CG_WARPS - 1) / CG_WARPS); \
    if ((p) == CG_PREC_BF16) { typedef bf16 TT; \
        if (vec) kernel<TT, CG_VEC><<<grid_, CG_BLOCK, 0, ctx->stream>>>(__VA_ARGS__); \
        else kernel<TT, 1><<<grid_, CG_BLOCK, 0, ctx->stream>>>(__VA_ARGS__); } \
    else { typedef float TT; \
        if (vec) kernel<TT, CG_VEC><<<grid_, CG_BLOCK, 0, ctx->stream>>>(__VA_ARGS__); \
        else kernel<TT, 1><<<grid_, CG_BLOCK, 0, ctx->stream>>>(__VA_ARGS__); } \
    CG_CUDA_CHECK_LAUNCH(ctx, #kernel); } while (0)

#define LN_ARGS_OK(N, C) CG_CUDA_ARG((N) >= 0 && (C) >= 1 && ((N) + CG_WARPS - 1) / CG_WARPS <= 0x7fffffffLL, \
                                     "N=%lld C=%lld", (long long)(N), (long long)(C))

extern "C" int cg_cuda_layernorm_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, float *mean, float *rstd,
                                         const void *x, const void *w, const void *b, int64_t N, int64_t C,
                                         float eps) {
    CG_CHECK_PREC(p);
    LN_ARGS_OK(N, C);
    if (N == 0) return CG_OK;
    int vec = cg_vec_ok(C, cg_prec_size(p), {y, x, w, b});
    LN_LAUNCH(p, vec, ln_forward_kernel, N, (TT *)y, mean, rstd, (const TT *)x, (const TT *)w, (const TT *)b, N, C, eps);
    return CG_OK;
}

extern "C" int cg_cuda_layernorm_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, float *dw, float *db,
                                          const void *dy, const void *x, const float *mean, const float *rstd,
                                          const void *w, int64_t N, int64_t C) {
    CG_CHECK_PREC(p);
    LN_ARGS_OK(N, C);
    if (N == 0) return CG_OK;
    if (dx) {
        int vec = cg_vec_ok(C, cg_prec_size(p), {dx, dy, x, w});
        LN_LAUNCH(p, vec, ln_backward_dx_kernel, N, (TT *)dx, (const TT *)dy, (const TT *)x, mean, rstd, (const TT *)w,
                  N, C, (int)mode);
    }
    if (dw || db) {
        if (p == CG_PREC_BF16) CG_TRY((col_sums<bf16, RED_BWD>(ctx, dw, db, dy, x, mean, rstd, N, C)));
        else CG_TRY((col_sums<float, RED_BWD>(ctx, dw, db, dy, x, mean, rstd, N, C)));
    }
    return CG_OK;
}
