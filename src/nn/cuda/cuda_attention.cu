/* cuda_attention.cu — multi-head scaled dot-product attention (nn/attention.h semantics).
 *
 * qkv [B, L, 3C] holds q | k | v per row, head h at columns h*D.. of each (C = H*D); out [B, L, C];
 * att [B, H, L, L] keeps the probabilities. (L is the sequence length, T in the API.)
 * Forward, per (b, h)                          | Backward (dqkv accumulates)
 *   S = Q K^T / sqrt(D)            [L, L] fp32 |   dP = dO V^T                 [L, L] fp32
 *   S[i, j] masked when causal and j > i, or   |   dV += P^T dO
 *     when key_mask[b, j] == 0                 |   dS = P (dP - rowsum(P dP))  (X)
 *   P = softmax_j(S) -> att (X); a row with no |   dQ += dS K / sqrt(D)
 *     allowed key is all 0                     |   dK += dS^T Q / sqrt(D)
 *   O = P V -> out[b, :, h*D:(h+1)*D]          |
 * The strided qkv layout cannot be one strided batch over (b, h) (two strides). Default ("in
 * place"): a small kernel writes, per product, a device array of B*H operand pointers (q of head
 * h of text b at qkv + b L 3C + h D, and so on), and every product is ONE cublasGemmBatchedEx
 * reading q, k, v, dO where they are (leading dimension 3C or C) and writing O into `out` and
 * dq, dk, dv into `dqkv` directly (beta = 1 adds): no copies. With cg_cuda_set_attn_in_place(ctx,
 * 0): q, k, v (and dO) are first permuted into [B, H, L, D] copies in scratch, each product is
 * one cublasGemmStridedBatchedEx, and O, dq, dk, dv are permuted back (the first version, kept
 * for comparison). Both use the row-major mapping of cuda_gemm.cu.
 * S and dP are fp32 (cuBLAS writes fp32 from bf16 operands), so the softmax and its backward see
 * unrounded scores in bf16 mode; P and dS are X because they feed the next products.
 * Softmax kernels: one warp per row. The re-layouts: a block per row of qkv (below).
 */
#include <math.h>

#include "nn/cuda/cuda_common.cuh"
#include "nn/cuda/cuda_ops.h"

/* The three re-layouts: a block per source row r = b L + t (gridDim.x = B L, int32 ranges
 * checked in attn_dims), its threads over the row's C columns j = h D + d; per element one
 * 32-bit division (h = j / D), reads and writes in runs of D neighbours. (The first version
 * decomposed a 64-bit flat index with four 64-bit divisions per element: an H200 profile put the
 * four kernels at 6.9 ms of a 90 ms starnet_s1 x ViT-B/32 step.) */

/* q, k, v [B, H, L, D] <- qkv [B, L, 3, H, D]  (and dO [B, H, L, D] <- dout [B, L, H, D] with three = 0) */
template <typename T>
__global__ void __launch_bounds__(CG_BLOCK)
attn_permute_kernel(T *__restrict__ q, T *__restrict__ k, T *__restrict__ v, const T *__restrict__ src, int H, int L,
                    int D, int three) {
    const int r = blockIdx.x, b = r / L, t = r - b * L, C = H * D;
    const T *s = src + (int64_t)r * (three ? 3 * C : C);
    const int64_t head0 = (int64_t)b * H;
    for (int j = threadIdx.x; j < C; j += CG_BLOCK) {
        int h = j / D, d = j - h * D;
        int64_t o = ((head0 + h) * L + t) * D + d;
        q[o] = s[j];
        if (three) {
            k[o] = s[C + j];
            v[o] = s[2 * C + j];
        }
    }
}

/* out[b, t, h*D + d] = o[b, h, t, d] */
template <typename T>
__global__ void __launch_bounds__(CG_BLOCK)
attn_unpermute_kernel(T *__restrict__ out, const T *__restrict__ o, int H, int L, int D) {
    const int r = blockIdx.x, b = r / L, t = r - b * L, C = H * D;
    const int64_t head0 = (int64_t)b * H;
    for (int j = threadIdx.x; j < C; j += CG_BLOCK) {
        int h = j / D, d = j - h * D;
        out[(int64_t)r * C + j] = o[((head0 + h) * L + t) * D + d];
    }
}

/* dqkv[b, t, s*C + h*D + d] (+)= {dq, dk, dv}[b, h, t, d] */
template <typename T>
__global__ void __launch_bounds__(CG_BLOCK)
attn_unpermute_acc_kernel(T *__restrict__ dqkv, const T *__restrict__ dq, const T *__restrict__ dk,
                          const T *__restrict__ dv, int H, int L, int D, int set) {
    const int r = blockIdx.x, b = r / L, t = r - b * L, C = H * D;
    const int64_t head0 = (int64_t)b * H;
    T *dst = dqkv + (int64_t)r * 3 * C;
    for (int j = threadIdx.x; j < C; j += CG_BLOCK) {
        int h = j / D, d = j - h * D;
        int64_t i = ((head0 + h) * L + t) * D + d;
        put_grad(dst[j], ldf(dq[i]), set);
        put_grad(dst[C + j], ldf(dk[i]), set);
        put_grad(dst[2 * C + j], ldf(dv[i]), set);
    }
}

/* att[row, :] = softmax over the allowed keys of S[row, :]; row = (b h) L + i */
template <typename T>
__global__ void __launch_bounds__(CG_BLOCK)
attn_softmax_kernel(T *__restrict__ att, const float *__restrict__ S, int64_t H, int64_t L, int64_t rows, int causal,
                    const uint8_t *__restrict__ key_mask) {
    int64_t row = (int64_t)blockIdx.x * CG_WARPS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;  /* whole warps; no block-wide synchronisation */
    int64_t i = row % L, b = row / (L * H);
    int64_t jmax = causal ? i + 1 : L;
    const float *s = S + row * L;
    T *a = att + row * L;
    const uint8_t *km = key_mask ? key_mask + b * L : NULL;
    float mx = -INFINITY;
    for (int64_t j = lane; j < jmax; j += 32)
        if (!km || km[j]) mx = fmaxf(mx, s[j]);
    mx = warp_max(mx);
    if (mx == -INFINITY) {  /* no key allowed */
        for (int64_t j = lane; j < L; j += 32) a[j] = stf<T>(0.0f);
        return;
    }
    float sum = 0.0f;
    for (int64_t j = lane; j < jmax; j += 32)
        if (!km || km[j]) sum += expf(s[j] - mx);
    float inv = 1.0f / warp_sum(sum);
    for (int64_t j = lane; j < L; j += 32) {
        float pj = (j < jmax && (!km || km[j])) ? expf(s[j] - mx) * inv : 0.0f;
        a[j] = stf<T>(pj);
    }
}

/* dS[row, j] = P[row, j] (dP[row, j] - sum_j P dP) */
template <typename T>
__global__ void __launch_bounds__(CG_BLOCK)
attn_softmax_bwd_kernel(T *__restrict__ dS, const T *__restrict__ P, const float *__restrict__ dP, int64_t L,
                        int64_t rows) {
    int64_t row = (int64_t)blockIdx.x * CG_WARPS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const T *pr = P + row * L;
    const float *dr = dP + row * L;
    float dot = 0.0f;
    for (int64_t j = lane; j < L; j += 32) dot += ldf(pr[j]) * dr[j];
    dot = warp_sum(dot);
    for (int64_t j = lane; j < L; j += 32) dS[row * L + j] = stf<T>(ldf(pr[j]) * (dr[j] - dot));
}

static int attn_dims(int64_t B, int64_t L, int64_t C, int H) {
    CG_CUDA_ARG(B >= 0 && L >= 1 && C >= 1 && H >= 1 && C % H == 0, "B=%lld T=%lld C=%lld heads=%d (C %% heads must be 0)",
                (long long)B, (long long)L, (long long)C, H);
    CG_CUDA_ARG(((B * H * L) + CG_WARPS - 1) / CG_WARPS <= 0x7fffffffLL && B * L <= 0x7fffffffLL && 3 * C <= 0x7fffffffLL,
                "B*H*T too large");
    return CG_OK;
}

/* Scratch of the permuting path's backward (its largest): 7 [B, H, L, D] copies, dP (fp32), dS (X) */
static size_t attn_permute_scratch(size_t es, int64_t B, int64_t T, int64_t C, int64_t H) {
    size_t bhld = cg_align_up((size_t)(B * T * C) * es, 256), bhll = (size_t)(B * H * T * T);
    return 7 * bhld + cg_align_up(bhll * sizeof(float), 256) + cg_align_up(bhll * es, 256);
}
/* Scratch of the in-place path's backward (its largest): dP (fp32), dS (X), ATTN_PTRS arrays of B*H pointers */
#define ATTN_PTRS 10
static size_t attn_in_place_scratch(size_t es, int64_t B, int64_t T, int64_t H) {
    size_t bhll = (size_t)(B * H * T * T);
    return cg_align_up(bhll * sizeof(float), 256) + cg_align_up(bhll * es, 256) +
           cg_align_up((size_t)(ATTN_PTRS * B * H) * sizeof(void *), 256);
}

extern "C" size_t cg_cuda_attention_scratch_bytes(cg_precision p, int64_t B, int64_t T, int64_t C, int n_heads) {
    size_t es = cg_prec_size(p), a = attn_permute_scratch(es, B, T, C, n_heads), b = attn_in_place_scratch(es, B, T, n_heads);
    return a > b ? a : b;   /* either path may be chosen at run time (cg_cuda_set_attn_in_place) */
}

/* ---------------------------------------------------------------- in place: operand pointers
 * out[s * BH + i] = base[s] + b * sb[s] + h * sh[s] (bytes) for i = b H + h < BH: the operand of
 * head h of text b for product operand s. */
struct attn_ptr_set {
    const char *base[ATTN_PTRS];
    int64_t sb[ATTN_PTRS], sh[ATTN_PTRS];
    int n;
};
static void attn_ptr_add(attn_ptr_set *set, const void *base, int64_t sb, int64_t sh) {
    set->base[set->n] = (const char *)base;
    set->sb[set->n] = sb;
    set->sh[set->n] = sh;
    set->n++;
}
__global__ void attn_ptrs_kernel(const void **out, attn_ptr_set set, int64_t H, int64_t BH) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= BH) return;
    int64_t b = i / H, h = i - b * H;
    for (int s = 0; s < set.n; s++) out[s * BH + i] = set.base[s] + b * set.sb[s] + h * set.sh[s];
}
static int attn_ptrs(cg_cuda_ctx *ctx, const void **out, const attn_ptr_set *set, int64_t H, int64_t BH) {
    attn_ptrs_kernel<<<cg_grid(BH, 256), 256, 0, ctx->stream>>>(out, *set, H, BH);
    CG_CUDA_CHECK_LAUNCH(ctx, "attn_ptrs_kernel");
    return CG_OK;
}

template <typename T>
static void attn_softmax(cg_cuda_ctx *ctx, void *att, const float *S, int64_t H, int64_t L, int64_t rows, int causal,
                         const uint8_t *key_mask) {
    attn_softmax_kernel<T><<<(unsigned int)((rows + CG_WARPS - 1) / CG_WARPS), CG_BLOCK, 0, ctx->stream>>>(
        (T *)att, S, H, L, rows, causal, key_mask);
}

/* S = Q K^T scale (fp32), P = softmax -> att, O = P V -> out: q, k, v read in qkv, O written in out */
template <typename T>
static int attn_forward_in_place(cg_cuda_ctx *ctx, cg_precision p, void *out, void *att, const void *qkv, int64_t B,
                                 int64_t L, int64_t C, int64_t H, int causal, const uint8_t *key_mask) {
    int64_t D = C / H, BH = B * H, rows = BH * L, es = (int64_t)sizeof(T);
    size_t bhll = cg_align_up((size_t)(rows * L) * sizeof(float), 256);
    CG_SCRATCH_NEED(ctx, bhll + (size_t)(6 * BH) * sizeof(void *), "attention forward");
    float *S = (float *)ctx->scratch;
    const void **P = (const void **)((char *)ctx->scratch + bhll);
    attn_ptr_set set = {};
    const char *q = (const char *)qkv;
    attn_ptr_add(&set, q, L * 3 * C * es, D * es);                 /* 0 Q */
    attn_ptr_add(&set, q + C * es, L * 3 * C * es, D * es);        /* 1 K */
    attn_ptr_add(&set, q + 2 * C * es, L * 3 * C * es, D * es);    /* 2 V */
    attn_ptr_add(&set, S, H * L * L * 4, L * L * 4);               /* 3 S */
    attn_ptr_add(&set, att, H * L * L * es, L * L * es);           /* 4 P */
    attn_ptr_add(&set, out, L * C * es, D * es);                   /* 5 O */
    CG_TRY(attn_ptrs(ctx, P, &set, H, BH));
    float scale = 1.0f / sqrtf((float)D);
    CG_TRY(cg_cuda_gemm_ptr_batched(ctx, p, 0, 1, L, L, D, scale, P, 3 * C, P + BH, 3 * C, 0.0f, (void *const *)(P + 3 * BH),
                                    L, BH, 1));
    attn_softmax<T>(ctx, att, S, H, L, rows, causal, key_mask);
    CG_CUDA_CHECK_LAUNCH(ctx, "attn_softmax_kernel");
    return cg_cuda_gemm_ptr_batched(ctx, p, 0, 0, L, D, L, 1.0f, P + 4 * BH, L, P + 2 * BH, 3 * C, 0.0f,
                                    (void *const *)(P + 5 * BH), C, BH, 0);
}

template <typename T>
static int attn_forward(cg_cuda_ctx *ctx, cg_precision p, void *out, void *att, const void *qkv, int64_t B, int64_t L,
                        int64_t C, int64_t H, int causal, const uint8_t *key_mask) {
    if (!ctx->attn_permute) return attn_forward_in_place<T>(ctx, p, out, att, qkv, B, L, C, H, causal, key_mask);
    int64_t D = C / H, BH = B * H, n = B * L * C, rows = BH * L;
    size_t bhld = cg_align_up((size_t)n * sizeof(T), 256), bhll = cg_align_up((size_t)(rows * L) * sizeof(float), 256);
    CG_SCRATCH_NEED(ctx, 4 * bhld + bhll, "attention forward");
    char *base = (char *)ctx->scratch;
    T *q = (T *)base, *k = (T *)(base + bhld), *v = (T *)(base + 2 * bhld), *o = (T *)(base + 3 * bhld);
    float *S = (float *)(base + 4 * bhld);
    float scale = 1.0f / sqrtf((float)D);
    const unsigned int nrows = (unsigned int)(B * L);
    attn_permute_kernel<T><<<nrows, CG_BLOCK, 0, ctx->stream>>>(q, k, v, (const T *)qkv, (int)H, (int)L, (int)D, 1);
    CG_CUDA_CHECK_LAUNCH(ctx, "attn_permute_kernel");
    CG_TRY(cg_cuda_gemm_batched(ctx, p, 0, 1, L, L, D, scale, q, D, L * D, k, D, L * D, 0.0f, S, L, L * L, BH, 1));
    attn_softmax<T>(ctx, att, S, H, L, rows, causal, key_mask);
    CG_CUDA_CHECK_LAUNCH(ctx, "attn_softmax_kernel");
    CG_TRY(cg_cuda_gemm_batched(ctx, p, 0, 0, L, D, L, 1.0f, att, L, L * L, v, D, L * D, 0.0f, o, D, L * D, BH, 0));
    attn_unpermute_kernel<T><<<nrows, CG_BLOCK, 0, ctx->stream>>>((T *)out, o, (int)H, (int)L, (int)D);
    CG_CUDA_CHECK_LAUNCH(ctx, "attn_unpermute_kernel");
    return CG_OK;
}

extern "C" int cg_cuda_attention_forward(cg_cuda_ctx *ctx, cg_precision p, void *out, void *att, const void *qkv,
                                         int64_t B, int64_t T, int64_t C, int n_heads, int causal,
                                         const uint8_t *key_mask) {
    CG_CHECK_PREC(p);
    CG_TRY(attn_dims(B, T, C, n_heads));
    if (B == 0) return CG_OK;
    if (p == CG_PREC_BF16) return attn_forward<bf16>(ctx, p, out, att, qkv, B, T, C, n_heads, causal, key_mask);
    return attn_forward<float>(ctx, p, out, att, qkv, B, T, C, n_heads, causal, key_mask);
}

/* dP = dO V^T (fp32), dV (+)= P^T dO, dS = P (dP - rowsum(P dP)), dQ (+)= dS K scale, dK (+)= dS^T Q scale:
 * q, k, v read in qkv, dO in dout, dq, dk, dv written (beta 0) or added (beta 1) in dqkv */
template <typename T>
static int attn_backward_in_place(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dqkv, const void *dout,
                                  const void *qkv, const void *att, int64_t B, int64_t L, int64_t C, int64_t H) {
    int64_t D = C / H, BH = B * H, rows = BH * L, es = (int64_t)sizeof(T);
    size_t bhll_f = cg_align_up((size_t)(rows * L) * sizeof(float), 256);
    size_t bhll_x = cg_align_up((size_t)(rows * L) * sizeof(T), 256);
    CG_SCRATCH_NEED(ctx, bhll_f + bhll_x + (size_t)(ATTN_PTRS * BH) * sizeof(void *), "attention backward");
    float *dP = (float *)ctx->scratch;
    T *dS = (T *)((char *)ctx->scratch + bhll_f);
    const void **P = (const void **)((char *)ctx->scratch + bhll_f + bhll_x);
    attn_ptr_set set = {};
    const char *q = (const char *)qkv, *dq = (const char *)dqkv;
    attn_ptr_add(&set, q, L * 3 * C * es, D * es);                 /* 0 Q */
    attn_ptr_add(&set, q + C * es, L * 3 * C * es, D * es);        /* 1 K */
    attn_ptr_add(&set, q + 2 * C * es, L * 3 * C * es, D * es);    /* 2 V */
    attn_ptr_add(&set, dout, L * C * es, D * es);                  /* 3 dO */
    attn_ptr_add(&set, att, H * L * L * es, L * L * es);           /* 4 P */
    attn_ptr_add(&set, dP, H * L * L * 4, L * L * 4);              /* 5 dP */
    attn_ptr_add(&set, dS, H * L * L * es, L * L * es);            /* 6 dS */
    attn_ptr_add(&set, dq, L * 3 * C * es, D * es);                /* 7 dQ */
    attn_ptr_add(&set, dq + C * es, L * 3 * C * es, D * es);       /* 8 dK */
    attn_ptr_add(&set, dq + 2 * C * es, L * 3 * C * es, D * es);   /* 9 dV */
    CG_TRY(attn_ptrs(ctx, P, &set, H, BH));
#define AP(s) (P + (s) * BH)
#define AW(s) ((void *const *)(P + (s) * BH))
    float scale = 1.0f / sqrtf((float)D), beta = mode == CG_GRAD_SET ? 0.0f : 1.0f;
    CG_TRY(cg_cuda_gemm_ptr_batched(ctx, p, 0, 1, L, L, D, 1.0f, AP(3), C, AP(2), 3 * C, 0.0f, AW(5), L, BH, 1));
    CG_TRY(cg_cuda_gemm_ptr_batched(ctx, p, 1, 0, L, D, L, 1.0f, AP(4), L, AP(3), C, beta, AW(9), 3 * C, BH, 0));
    attn_softmax_bwd_kernel<T><<<(unsigned int)((rows + CG_WARPS - 1) / CG_WARPS), CG_BLOCK, 0, ctx->stream>>>(
        dS, (const T *)att, dP, L, rows);
    CG_CUDA_CHECK_LAUNCH(ctx, "attn_softmax_bwd_kernel");
    CG_TRY(cg_cuda_gemm_ptr_batched(ctx, p, 0, 0, L, D, L, scale, AP(6), L, AP(1), 3 * C, beta, AW(7), 3 * C, BH, 0));
    CG_TRY(cg_cuda_gemm_ptr_batched(ctx, p, 1, 0, L, D, L, scale, AP(6), L, AP(0), 3 * C, beta, AW(8), 3 * C, BH, 0));
#undef AP
#undef AW
    return CG_OK;
}

template <typename T>
static int attn_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dqkv, const void *dout, const void *qkv,
                         const void *att, int64_t B, int64_t L, int64_t C, int64_t H) {
    if (!ctx->attn_permute) return attn_backward_in_place<T>(ctx, p, mode, dqkv, dout, qkv, att, B, L, C, H);
    int64_t D = C / H, BH = B * H, n = B * L * C, rows = BH * L;
    size_t bhld = cg_align_up((size_t)n * sizeof(T), 256);
    size_t bhll_f = cg_align_up((size_t)(rows * L) * sizeof(float), 256);
    size_t bhll_x = cg_align_up((size_t)(rows * L) * sizeof(T), 256);
    CG_SCRATCH_NEED(ctx, 7 * bhld + bhll_f + bhll_x, "attention backward");
    char *base = (char *)ctx->scratch;
    T *q = (T *)base, *k = (T *)(base + bhld), *v = (T *)(base + 2 * bhld), *dO = (T *)(base + 3 * bhld);
    T *dq = (T *)(base + 4 * bhld), *dk = (T *)(base + 5 * bhld), *dv = (T *)(base + 6 * bhld);
    float *dP = (float *)(base + 7 * bhld);
    T *dS = (T *)(base + 7 * bhld + bhll_f);
    float scale = 1.0f / sqrtf((float)D);
    const unsigned int nrows = (unsigned int)(B * L);
    attn_permute_kernel<T><<<nrows, CG_BLOCK, 0, ctx->stream>>>(q, k, v, (const T *)qkv, (int)H, (int)L, (int)D, 1);
    CG_CUDA_CHECK_LAUNCH(ctx, "attn_permute_kernel");
    attn_permute_kernel<T><<<nrows, CG_BLOCK, 0, ctx->stream>>>(dO, NULL, NULL, (const T *)dout, (int)H, (int)L, (int)D, 0);
    CG_CUDA_CHECK_LAUNCH(ctx, "attn_permute_kernel(dout)");
    CG_TRY(cg_cuda_gemm_batched(ctx, p, 0, 1, L, L, D, 1.0f, dO, D, L * D, v, D, L * D, 0.0f, dP, L, L * L, BH, 1));
    CG_TRY(cg_cuda_gemm_batched(ctx, p, 1, 0, L, D, L, 1.0f, att, L, L * L, dO, D, L * D, 0.0f, dv, D, L * D, BH, 0));
    attn_softmax_bwd_kernel<T><<<(unsigned int)((rows + CG_WARPS - 1) / CG_WARPS), CG_BLOCK, 0, ctx->stream>>>(
        dS, (const T *)att, dP, L, rows);
    CG_CUDA_CHECK_LAUNCH(ctx, "attn_softmax_bwd_kernel");
    CG_TRY(cg_cuda_gemm_batched(ctx, p, 0, 0, L, D, L, scale, dS, L, L * L, k, D, L * D, 0.0f, dq, D, L * D, BH, 0));
    CG_TRY(cg_cuda_gemm_batched(ctx, p, 1, 0, L, D, L, scale, dS, L, L * L, q, D, L * D, 0.0f, dk, D, L * D, BH, 0));
    attn_unpermute_acc_kernel<T><<<nrows, CG_BLOCK, 0, ctx->stream>>>((T *)dqkv, dq, dk, dv, (int)H, (int)L, (int)D, (int)mode);
    CG_CUDA_CHECK_LAUNCH(ctx, "attn_unpermute_acc_kernel");
    return CG_OK;
}

extern "C" int cg_cuda_attention_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dqkv, const void *dout,
                                          const void *qkv, const void *att, int64_t B, int64_t T, int64_t C,
                                          int n_heads) {
    CG_CHECK_PREC(p);
    CG_TRY(attn_dims(B, T, C, n_heads));
    if (B == 0) return CG_OK;
    if (p == CG_PREC_BF16) return attn_backward<bf16>(ctx, p, mode, dqkv, dout, qkv, att, B, T, C, n_heads);
    return attn_backward<float>(ctx, p, mode, dqkv, dout, qkv, att, B, T, C, n_heads);
}
