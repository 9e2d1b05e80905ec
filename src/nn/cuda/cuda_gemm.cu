/* cuda_gemm.cu — row-major GEMM on cuBLAS, and the linear layer (cuBLASLt with a fused bias).
 *
 * Row-major -> cuBLAS (column-major) mapping, used by every product in nn/cuda/:
 *   A row-major matrix X [r, c] with leading dimension ld is, byte for byte, the column-major
 *   matrix X^T [c, r] with the same ld. So the row-major product
 *       C[M,N] = op(A) @ op(B)
 *   is the column-major product
 *       C^T[N,M] = op(B)^T @ op(A)^T
 *   and cuBLAS is called with the operands swapped and the same transpose flags:
 *       cublasGemmEx(h, transB ? T : N, transA ? T : N, m = N, n = M, k = K,
 *                    B, ldb, A, lda, C, ldc)
 *   (transB = 0: B is row-major [K,N] = column-major [N,K] = op(B)^T as stored -> OP_N;
 *    transB = 1: B is row-major [N,K] = column-major [K,N], its transpose is wanted -> OP_T.)
 *   The leading dimensions are the row-major ones unchanged (ldb >= N or K, lda >= K or M, ldc >= N).
 *
 * Types: A and B are X (fp32 or bf16), C is X or fp32, the compute type is always
 * CUBLAS_COMPUTE_32F (fp32 accumulation; in fp32 mode no TF32, see ctx_setup). All three
 * combinations used (32F/32F/32F, 16BF/16BF/16BF, 16BF/16BF/32F) are supported by cublasGemmEx.
 */
#include <limits.h>
#include <string.h>

#include "nn/cuda/cuda_common.cuh"
#include "nn/cuda/cuda_ops.h"

static int fits_int(int64_t v) { return v >= 0 && v <= INT_MAX; }

int cg_cuda_gemm(cg_cuda_ctx *ctx, cg_precision p, int transA, int transB, int64_t M, int64_t N,
                              int64_t K, float alpha, const void *A, int64_t lda, const void *B, int64_t ldb,
                              float beta, void *C, int64_t ldc, int c_fp32) {
    CG_CHECK_PREC(p);
    if (M == 0 || N == 0) return CG_OK;
    CG_CUDA_ARG(fits_int(M) && fits_int(N) && K >= 1 && fits_int(K), "M=%lld N=%lld K=%lld", (long long)M, (long long)N,
                (long long)K);
    CG_CUDA_ARG(fits_int(lda) && fits_int(ldb) && fits_int(ldc), "leading dimensions beyond int");
    CG_CUDA_ARG(lda >= (transA ? M : K) && ldb >= (transB ? K : N) && ldc >= N, "lda=%lld ldb=%lld ldc=%lld too small",
                (long long)lda, (long long)ldb, (long long)ldc);
    cudaDataType_t ab = cg_cuda_dtype(p), ct = c_fp32 ? CUDA_R_32F : ab;
    CG_CUBLAS_CHECK(cublasGemmEx(ctx->blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 (int)N, (int)M, (int)K, &alpha, B, ab, (int)ldb, A, ab, (int)lda, &beta, C, ct,
                                 (int)ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    /* the profile tells the weight-gradient products (fp32 out; StarNet's 1x1 convs: a few
     * thousand outputs over K = N*H*W up to 800k) from the rest */
    cg_cuda_profile_mark_(ctx, c_fp32 ? "cublasGemmEx (fp32 out: weight gradients, loss)" : "cublasGemmEx");
    return CG_OK;
}

/* the batched products' sizes: int ranges, leading dimensions at least the rows they stride */
static int batched_args_ok(int transA, int transB, int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb,
                           int64_t ldc, int64_t batch) {
    CG_CUDA_ARG(fits_int(M) && fits_int(N) && K >= 1 && fits_int(K) && fits_int(batch), "M=%lld N=%lld K=%lld batch=%lld",
                (long long)M, (long long)N, (long long)K, (long long)batch);
    CG_CUDA_ARG(fits_int(lda) && fits_int(ldb) && fits_int(ldc), "leading dimensions beyond int");
    CG_CUDA_ARG(lda >= (transA ? M : K) && ldb >= (transB ? K : N) && ldc >= N, "lda=%lld ldb=%lld ldc=%lld too small",
                (long long)lda, (long long)ldb, (long long)ldc);
    return CG_OK;
}

int cg_cuda_gemm_ptr_batched(cg_cuda_ctx *ctx, cg_precision p, int transA, int transB, int64_t M, int64_t N, int64_t K,
                             float alpha, const void *const *A, int64_t lda, const void *const *B, int64_t ldb,
                             float beta, void *const *C, int64_t ldc, int64_t batch, int c_fp32) {
    CG_CHECK_PREC(p);
    if (M == 0 || N == 0 || batch == 0) return CG_OK;
    CG_TRY(batched_args_ok(transA, transB, M, N, K, lda, ldb, ldc, batch));
    cudaDataType_t ab = cg_cuda_dtype(p), ct = c_fp32 ? CUDA_R_32F : ab;
    CG_CUBLAS_CHECK(cublasGemmBatchedEx(ctx->blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N,
                                        (int)N, (int)M, (int)K, &alpha, B, ab, (int)ldb, A, ab, (int)lda, &beta, C, ct,
                                        (int)ldc, (int)batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    cg_cuda_profile_mark_(ctx, "cublasGemmBatchedEx");
    return CG_OK;
}

int cg_cuda_gemm_batched(cg_cuda_ctx *ctx, cg_precision p, int transA, int transB, int64_t M, int64_t N,
                                      int64_t K, float alpha, const void *A, int64_t lda, int64_t sA, const void *B,
                                      int64_t ldb, int64_t sB, float beta, void *C, int64_t ldc, int64_t sC,
                                      int64_t batch, int c_fp32) {
    CG_CHECK_PREC(p);
    if (M == 0 || N == 0 || batch == 0) return CG_OK;
    CG_TRY(batched_args_ok(transA, transB, M, N, K, lda, ldb, ldc, batch));
    cudaDataType_t ab = cg_cuda_dtype(p), ct = c_fp32 ? CUDA_R_32F : ab;
    CG_CUBLAS_CHECK(cublasGemmStridedBatchedEx(ctx->blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                                               transA ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N, (int)M, (int)K, &alpha, B, ab,
                                               (int)ldb, (long long)sB, A, ab, (int)lda, (long long)sA, &beta, C, ct,
                                               (int)ldc, (long long)sC, (int)batch, CUBLAS_COMPUTE_32F,
                                               CUBLAS_GEMM_DEFAULT));
    cg_cuda_profile_mark_(ctx, "cublasGemmStridedBatchedEx");
    return CG_OK;
}

/* ---------------------------------------------------------------- bias broadcasts */

/* y[r, j] = b[r] (by_row: a [C, M] tensor, the conv bias before the GEMM adds W @ col) or b[j]
 * (an [N, out] tensor: the linear bias when cuBLASLt is not used), ROW_STRIDE: no division per
 * element (the flat-index form spent 61 us a call on a 64-bit division per element on an H200,
 * 1.2 ms of a starnet_s1 step). */
template <typename T>
__global__ void bias_bcast_kernel(T *__restrict__ y, const T *__restrict__ b, int64_t rows, int64_t cols, int by_row) {
    ROW_STRIDE(r, rows, j, cols) y[r * cols + j] = b[by_row ? r : j];
}

static int bias_bcast(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *b, int64_t rows, int64_t cols, int by_row,
                      const char *name) {
    if (rows * cols == 0) return CG_OK;
    dim3 grid = cg_rows_grid(rows, cols);
    if (p == CG_PREC_BF16)
        bias_bcast_kernel<bf16><<<grid, 256, 0, ctx->stream>>>((bf16 *)y, (const bf16 *)b, rows, cols, by_row);
    else
        bias_bcast_kernel<float><<<grid, 256, 0, ctx->stream>>>((float *)y, (const float *)b, rows, cols, by_row);
    CG_CUDA_CHECK_LAUNCH(ctx, name);
    return CG_OK;
}

int cg_cuda_fill_rows(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *b, int64_t C, int64_t M) {
    return bias_bcast(ctx, p, y, b, C, M, 1, "bias_bcast_kernel(rows)");
}

static int fill_cols(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *b, int64_t N, int64_t out) {
    return bias_bcast(ctx, p, y, b, N, out, 0, "bias_bcast_kernel(cols)");
}

/* ---------------------------------------------------------------- linear
 *
 * Forward:   y[n, o] = b[o] + sum_i x[n, i] w[o, i]          y = x @ w^T + b
 * Backward:  dx[n, i] += sum_o dy[n, o] w[o, i]              dx += dy @ w   (= with CG_GRAD_SET: beta 0)
 *            dw[o, i] += sum_n dy[n, o] x[n, i]              dw += dy^T @ x      (fp32 output)
 *            db[o]    += sum_n dy[n, o]                      (deterministic column sums)
 *
 * cuBLASLt forward (bias in the epilogue), column-major view of the row-major tensors:
 *   D = Y^T [out, N] (ld out) = op(A) @ B + bias, A = W stored [in, out] (ld in) with op T,
 *   B = X^T stored [in, N] (ld in) with op N; CUBLASLT_EPILOGUE_BIAS adds bias[row] = b[o].
 * The heuristic is told the operands' real alignment (it assumes 256 bytes otherwise and may pick
 * a kernel that faults on a less aligned pointer); it is used only when every pointer is 16-byte
 * aligned and the rows are whole 16-byte multiples, else (or when no algorithm is offered) the
 * forward falls back to a bias fill plus cublasGemmEx with beta = 1.
 */

static uint32_t align_of(const void *ptr) {
    uintptr_t a = (uintptr_t)ptr;
    uint32_t al = 256;
    while (al > 1 && (a % al)) al >>= 1;
    return al;
}

#define LT_TRY(call) do { \
    cublasStatus_t lt_s_ = (call); \
    if (lt_s_ != CUBLAS_STATUS_SUCCESS) { \
        rc = cg_error_set(CG_ERR_DEVICE, "%s:%d: %s: %s (cuBLAS status %d)", __FILE__, __LINE__, #call, \
                          cublasGetStatusString(lt_s_), (int)lt_s_); \
        goto done; \
    } \
} while (0)

static void lt_plan_destroy(cg_lt_plan *pl) {
    if (pl->lc) cublasLtMatrixLayoutDestroy(pl->lc);
    if (pl->lb) cublasLtMatrixLayoutDestroy(pl->lb);
    if (pl->la) cublasLtMatrixLayoutDestroy(pl->la);
    if (pl->op) cublasLtMatmulDescDestroy(pl->op);
    memset(pl, 0, sizeof *pl);
}

void cg_cuda_lt_plans_clear(cg_cuda_ctx *ctx) {
    for (int i = 0; i < ctx->n_lt_plans; i++) lt_plan_destroy(&ctx->lt_plans[i]);
    ctx->n_lt_plans = 0;
}

/* Descriptors and the heuristic's algorithm for pl's key (filled in by the caller); algo_ok = 0
 * when the heuristic offers nothing that fits the workspace. On error pl is left destroyed. */
static int lt_plan_build(cg_cuda_ctx *ctx, cg_lt_plan *pl) {
    int rc = CG_OK;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cudaDataType_t dt = cg_cuda_dtype((cg_precision)pl->p);
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    cublasLtEpilogue_t epi = pl->has_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    uint64_t ws = ctx->lt_ws_bytes;
    cublasStatus_t hs;

    ctx->lt_plan_builds++;
    LT_TRY(cublasLtMatmulDescCreate(&pl->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_TRY(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LT_TRY(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
    LT_TRY(cublasLtMatrixLayoutCreate(&pl->la, dt, (uint64_t)pl->in, (uint64_t)pl->out, (int64_t)pl->in));
    LT_TRY(cublasLtMatrixLayoutCreate(&pl->lb, dt, (uint64_t)pl->in, (uint64_t)pl->N, (int64_t)pl->in));
    LT_TRY(cublasLtMatrixLayoutCreate(&pl->lc, dt, (uint64_t)pl->out, (uint64_t)pl->N, (int64_t)pl->out));
    LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &pl->al_a,
                                                sizeof pl->al_a));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &pl->al_b,
                                                sizeof pl->al_b));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &pl->al_c,
                                                sizeof pl->al_c));
    LT_TRY(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &pl->al_c,
                                                sizeof pl->al_c));
    hs = cublasLtMatmulAlgoGetHeuristic(ctx->lt, pl->op, pl->la, pl->lb, pl->lc, pl->lc, pref, 1, &res, &nres);
    pl->algo_ok = hs == CUBLAS_STATUS_SUCCESS && nres >= 1 && res.workspaceSize <= ctx->lt_ws_bytes;
    if (pl->algo_ok) pl->algo = res.algo;
done:
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (rc) lt_plan_destroy(pl);
    return rc;
}

/* *used = 1 when cuBLASLt ran the product; 0 (and CG_OK) when the caller must fall back. The
 * plan for this key comes from the context's cache (built on first use); the bias pointer is the
 * only per-call attribute. */
static int lt_linear_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *w, const void *b,
                             int64_t N, int64_t in, int64_t out, int *used) {
    *used = 0;
    size_t es = cg_prec_size(p);
    if (!fits_int(N) || !fits_int(in) || !fits_int(out)) return CG_OK;
    if ((in * (int64_t)es) % 16 || (out * (int64_t)es) % 16) return CG_OK;
    if (align_of(x) < 16 || align_of(w) < 16 || align_of(y) < 16 || (b && align_of(b) < 16)) return CG_OK;

    cg_lt_plan key;
    memset(&key, 0, sizeof key);
    key.p = (int)p;
    key.has_bias = b != NULL;
    key.N = N;
    key.in = in;
    key.out = out;
    key.al_a = align_of(w);
    key.al_b = align_of(x);
    key.al_c = align_of(y);
    cg_lt_plan *pl = NULL;
    for (int i = 0; i < ctx->n_lt_plans && !pl; i++) {
        cg_lt_plan *c = &ctx->lt_plans[i];
        if (c->p == key.p && c->has_bias == key.has_bias && c->N == N && c->in == in && c->out == out &&
            c->al_a == key.al_a && c->al_b == key.al_b && c->al_c == key.al_c)
            pl = c;
    }
    int cached = pl != NULL;
    if (!pl) {
        CG_TRY(lt_plan_build(ctx, &key));
        if (ctx->n_lt_plans < CG_LT_PLANS) {
            ctx->lt_plans[ctx->n_lt_plans++] = key;
            cached = 1;
            pl = &ctx->lt_plans[ctx->n_lt_plans - 1];
        } else {
            pl = &key;   /* the cache is full: this plan lives for this call only */
        }
    }
    int rc = CG_OK;
    float alpha = 1.0f, beta = 0.0f;
    if (pl->algo_ok) {
        if (b) LT_TRY(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b));
        LT_TRY(cublasLtMatmul(ctx->lt, pl->op, &alpha, w, pl->la, x, pl->lb, &beta, y, pl->lc, y, pl->lc, &pl->algo,
                              ctx->lt_ws, ctx->lt_ws_bytes, ctx->stream));
        cg_cuda_profile_mark_(ctx, "cublasLtMatmul");
        *used = 1;
    }
done:
    if (!cached) lt_plan_destroy(pl);
    return rc;
}

extern "C" int cg_cuda_linear_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *w,
                                      const void *b, int64_t N, int64_t in, int64_t out) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(N >= 0 && in >= 1 && out >= 1, "N=%lld in=%lld out=%lld", (long long)N, (long long)in, (long long)out);
    if (N == 0) return CG_OK;
    if (ctx->use_lt) {
        int used = 0;
        CG_TRY(lt_linear_forward(ctx, p, y, x, w, b, N, in, out, &used));
        if (used) return CG_OK;
    }
    if (b) CG_TRY(fill_cols(ctx, p, y, b, N, out));
    return cg_cuda_gemm(ctx, p, 0, 1, N, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, out, 0);
}

extern "C" int cg_cuda_linear_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, float *dw, float *db,
                                       const void *dy, const void *x, const void *w, int64_t N, int64_t in,
                                       int64_t out) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(N >= 0 && in >= 1 && out >= 1 && dw, "N=%lld in=%lld out=%lld dw=%p", (long long)N, (long long)in,
                (long long)out, (void *)dw);
    if (N == 0) return CG_OK;
    if (dx)
        CG_TRY(cg_cuda_gemm(ctx, p, 0, 0, N, in, out, 1.0f, dy, out, w, in, mode == CG_GRAD_SET ? 0.0f : 1.0f, dx, in, 0));
    CG_TRY(cg_cuda_gemm(ctx, p, 1, 0, out, in, N, 1.0f, dy, out, x, in, 1.0f, dw, in, 1));
    if (db) CG_TRY(cg_cuda_colsum_acc(ctx, p, db, dy, N, out));
    return CG_OK;
}
