/* emu_blas.cpp — the CUDA emulator's cuBLAS and cuBLASLt (tools/cuda_emu/README.md).
 *
 * Column-major throughout, as the libraries define it: op(A) is m x k, op(B) k x n, C m x n;
 * a matrix of `rows` x `cols` with leading dimension ld >= rows has element (i, j) at i + j ld.
 * The arguments are checked as cuBLAS documents (sizes, leading dimensions, type combinations
 * for CUBLAS_COMPUTE_32F) and a violation returns CUBLAS_STATUS_INVALID_VALUE or _NOT_SUPPORTED
 * instead of computing. Only the rows x cols elements of each operand are read (never the padding
 * of the last column), C only when beta != 0 (so a NaN-poisoned output is overwritten, as on the
 * device). Products: operands widened to float (bf16 exactly), cblas_sgemm, the result rounded
 * once to C's type.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "cublasLt.h"
#include "cuda_bf16.h"

struct cg_emu_cublas {
    int math_mode;
};
struct cg_emu_lt {
    int unused;
};
struct cg_emu_lt_desc {
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t ta, tb;
    cublasLtEpilogue_t epilogue;
    const void *bias;
};
struct cg_emu_lt_layout {
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};
struct cg_emu_lt_pref {
    uint64_t max_ws;
};

extern "C" const char *cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    default: return "CUBLAS_STATUS_(other)";
    }
}

static cublasStatus_t bad(const char *fn, const char *why) {
    fprintf(stderr, "cuda_emu: %s: %s\n", fn, why);
    return CUBLAS_STATUS_INVALID_VALUE;
}

static int type_ok(cudaDataType_t t) { return t == CUDA_R_32F || t == CUDA_R_16BF; }
static size_t type_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

static float load(const void *base, cudaDataType_t t, size_t i) {
    if (t == CUDA_R_32F) return ((const float *)base)[i];
    return __bfloat162float(((const __nv_bfloat16 *)base)[i]);
}
static void store(void *base, cudaDataType_t t, size_t i, float v) {
    if (t == CUDA_R_32F) ((float *)base)[i] = v;
    else ((__nv_bfloat16 *)base)[i] = __float2bfloat16_rn(v);
}

/* A column-major operand (rows x cols, leading dimension ld, `batch` of them `stride` elements
 * apart) must lie inside one device allocation: cuBLAS would read or write past it silently. */
static cublasStatus_t operand_in_memory(const char *fn, const char *what, const void *p, cudaDataType_t t, int64_t rows,
                                        int64_t cols, int64_t ld, int64_t stride = 0, int64_t batch = 1) {
    if (rows <= 0 || cols <= 0 || batch <= 0) return CUBLAS_STATUS_SUCCESS;
    size_t span = ((size_t)(cols - 1) * (size_t)ld + (size_t)rows + (size_t)(batch - 1) * (size_t)stride) * type_size(t);
    if (p && stride >= 0 && cg_emu_in_device_memory(p, span)) return CUBLAS_STATUS_SUCCESS;
    fprintf(stderr, "cuda_emu: %s: %s (%lld x %lld, ld %lld, %lld of them %lld apart: %zu bytes at %p) is not inside one "
            "device allocation (or leaves its arena piece)\n", fn, what, (long long)rows, (long long)cols, (long long)ld, (long long)batch,
            (long long)stride, span, p);
    return CUBLAS_STATUS_INVALID_VALUE;
}

/* op(A) [m, k], op(B) [k, n] and C [m, n] of a GEMM (or `batch` of them, stride elements apart),
 * each inside one device allocation */
static cublasStatus_t gemm_operands_in_memory(const char *fn, cublasOperation_t transa, cublasOperation_t transb,
                                              int m, int n, int k, const void *A, cudaDataType_t Atype, int lda,
                                              int64_t strideA, const void *B, cudaDataType_t Btype, int ldb,
                                              int64_t strideB, const void *C, cudaDataType_t Ctype, int ldc,
                                              int64_t strideC, int64_t batch) {
    cublasStatus_t s;
    if ((s = operand_in_memory(fn, "A", A, Atype, transa == CUBLAS_OP_N ? m : k, transa == CUBLAS_OP_N ? k : m, lda,
                               strideA, batch)) ||
        (s = operand_in_memory(fn, "B", B, Btype, transb == CUBLAS_OP_N ? k : n, transb == CUBLAS_OP_N ? n : k, ldb,
                               strideB, batch)))
        return s;
    return operand_in_memory(fn, "C", C, Ctype, m, n, ldc, strideC, batch);
}

/* rows x cols of a column-major matrix (leading dimension ld) -> a compact float copy */
static std::vector<float> widen(const void *M, cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld) {
    std::vector<float> out((size_t)(rows * cols));
    for (int64_t j = 0; j < cols; j++)
        for (int64_t i = 0; i < rows; i++) out[(size_t)(i + j * rows)] = load(M, t, (size_t)(i + j * ld));
    return out;
}

/* D = alpha op(A) op(B) + beta C (+ bias[i] on row i); all column-major; C read only when beta != 0 */
static int split_k(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("CG_EMU_GEMM");
        v = e && strcmp(e, "split") == 0;
    }
    return v;
}

static void gemm(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, float alpha,
                 const void *A, cudaDataType_t at, int64_t lda, const void *B, cudaDataType_t bt, int64_t ldb, float beta,
                 const void *C, cudaDataType_t ct, int64_t ldc, void *D, cudaDataType_t dt, int64_t ldd,
                 const void *bias) {
    int64_t ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
    int64_t br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
    std::vector<float> a = widen(A, at, ar, ac, lda), b = widen(B, bt, br, bc, ldb), d((size_t)(m * n), 0.0f);
    CBLAS_TRANSPOSE cta = ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, ctb = tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
    /* CG_EMU_GEMM=split: the k sum in two halves, added (split-K): the same product in another
     * order of additions, as a real cuBLAS picks, so fp32 results differ from the CPU's by rounding */
    int64_t k1 = split_k() && k >= 2 ? k / 2 : k;
    if (k1 > 0)
        cblas_sgemm(CblasColMajor, cta, ctb, (int)m, (int)n, (int)k1, alpha, a.data(), (int)ar, b.data(), (int)br, 0.0f,
                    d.data(), (int)m);
    if (k1 < k) {
        /* the second half of k: columns k1.. of op(A), rows k1.. of op(B) */
        const float *a2 = a.data() + (ta == CUBLAS_OP_N ? (size_t)(k1 * ar) : (size_t)k1);
        const float *b2 = b.data() + (tb == CUBLAS_OP_N ? (size_t)k1 : (size_t)(k1 * br));
        std::vector<float> d2((size_t)(m * n), 0.0f);
        cblas_sgemm(CblasColMajor, cta, ctb, (int)m, (int)n, (int)(k - k1), alpha, a2, (int)ar, b2, (int)br, 0.0f,
                    d2.data(), (int)m);
        for (size_t i = 0; i < d.size(); i++) d[i] += d2[i];
    }
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < m; i++) {
            float v = d[(size_t)(i + j * m)];
            if (beta != 0.0f) v += beta * load(C, ct, (size_t)(i + j * ldc));
            if (bias) v += load(bias, dt, (size_t)i);
            store(D, dt, (size_t)(i + j * ldd), v);
        }
}

/* ---------------------------------------------------------------- cuBLAS */

extern "C" cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = new cg_emu_cublas();
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasDestroy(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    (void)s;
    return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}
extern "C" cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math_mode = (int)mode;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *ws, size_t bytes) {
    (void)ws;
    (void)bytes;
    return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

static cublasStatus_t check_gemm(const char *fn, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                 cudaDataType_t at, int lda, cudaDataType_t bt, int ldb, cudaDataType_t ct, int ldc,
                                 cublasComputeType_t compute) {
    if (ta > CUBLAS_OP_T || tb > CUBLAS_OP_T) return bad(fn, "transpose is not N or T");
    if (m < 0 || n < 0 || k < 0) return bad(fn, "negative size");
    if (lda < (ta == CUBLAS_OP_N ? (m > 1 ? m : 1) : (k > 1 ? k : 1))) return bad(fn, "lda < rows of A");
    if (ldb < (tb == CUBLAS_OP_N ? (k > 1 ? k : 1) : (n > 1 ? n : 1))) return bad(fn, "ldb < rows of B");
    if (ldc < (m > 1 ? m : 1)) return bad(fn, "ldc < m");
    if (compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!type_ok(at) || at != bt || !type_ok(ct)) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (at == CUDA_R_32F && ct != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;   /* 32F inputs: 32F output only */
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb, int m,
                                       int n, int k, const void *alpha, const void *A, cudaDataType_t Atype, int lda,
                                       const void *B, cudaDataType_t Btype, int ldb, const void *beta, void *C,
                                       cudaDataType_t Ctype, int ldc, cublasComputeType_t compute,
                                       cublasGemmAlgo_t algo) {
    (void)algo;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    const char *fn = "cublasGemmEx";
    cublasStatus_t s = check_gemm(fn, transa, transb, m, n, k, Atype, lda, Btype, ldb, Ctype, ldc, compute);
    if (s) return s;
    if ((s = gemm_operands_in_memory(fn, transa, transb, m, n, k, A, Atype, lda, 0, B, Btype, ldb, 0, C, Ctype, ldc, 0, 1)))
        return s;
    if (cg_emu_dry()) {
        cg_emu_dry_count_gemm();
        return CUBLAS_STATUS_SUCCESS;
    }
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    gemm(transa, transb, m, n, k, *(const float *)alpha, A, Atype, lda, B, Btype, ldb, *(const float *)beta, C, Ctype,
         ldc, C, Ctype, ldc, NULL);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t transa,
                                                     cublasOperation_t transb, int m, int n, int k, const void *alpha,
                                                     const void *A, cudaDataType_t Atype, int lda, long long strideA,
                                                     const void *B, cudaDataType_t Btype, int ldb, long long strideB,
                                                     const void *beta, void *C, cudaDataType_t Ctype, int ldc,
                                                     long long strideC, int batch, cublasComputeType_t compute,
                                                     cublasGemmAlgo_t algo) {
    (void)algo;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    cublasStatus_t s = check_gemm("cublasGemmStridedBatchedEx", transa, transb, m, n, k, Atype, lda, Btype, ldb, Ctype,
                                  ldc, compute);
    if (s) return s;
    if (batch < 0) return bad("cublasGemmStridedBatchedEx", "negative batch count");
    const char *fn = "cublasGemmStridedBatchedEx";
    if ((s = gemm_operands_in_memory(fn, transa, transb, m, n, k, A, Atype, lda, strideA, B, Btype, ldb, strideB, C,
                                     Ctype, ldc, strideC, batch)))
        return s;
    if (cg_emu_dry()) {
        cg_emu_dry_count_gemm();
        return CUBLAS_STATUS_SUCCESS;
    }
    for (int i = 0; i < batch && m > 0 && n > 0; i++) {
        const char *a = (const char *)A + (size_t)(strideA * i) * type_size(Atype);
        const char *b = (const char *)B + (size_t)(strideB * i) * type_size(Btype);
        char *c = (char *)C + (size_t)(strideC * i) * type_size(Ctype);
        gemm(transa, transb, m, n, k, *(const float *)alpha, a, Atype, lda, b, Btype, ldb, *(const float *)beta, c, Ctype,
             ldc, c, Ctype, ldc, NULL);
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* The pointer arrays are device memory (read here as the library would: after the stream's
 * earlier work, which the emulator has done); each batch's operands are checked like GemmEx's.
 * A dry run checks the arrays' own extent only: the kernels that would have filled them did not run. */
extern "C" cublasStatus_t cublasGemmBatchedEx(cublasHandle_t h, cublasOperation_t transa, cublasOperation_t transb,
                                              int m, int n, int k, const void *alpha, const void *const Aarray[],
                                              cudaDataType_t Atype, int lda, const void *const Barray[],
                                              cudaDataType_t Btype, int ldb, const void *beta, void *const Carray[],
                                              cudaDataType_t Ctype, int ldc, int batch, cublasComputeType_t compute,
                                              cublasGemmAlgo_t algo) {
    (void)algo;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    const char *fn = "cublasGemmBatchedEx";
    cublasStatus_t s = check_gemm(fn, transa, transb, m, n, k, Atype, lda, Btype, ldb, Ctype, ldc, compute);
    if (s) return s;
    if (batch < 0) return bad(fn, "negative batch count");
    if (batch == 0) return CUBLAS_STATUS_SUCCESS;
    const void *arrays[3] = {Aarray, Barray, Carray};
    for (int a = 0; a < 3; a++)
        if (!arrays[a] || !cg_emu_in_device_memory(arrays[a], (size_t)batch * sizeof(void *))) {
            fprintf(stderr, "cuda_emu: %s: the %c pointer array (%d pointers at %p) is not inside one device allocation\n",
                    fn, "ABC"[a], batch, arrays[a]);
            return CUBLAS_STATUS_INVALID_VALUE;
        }
    if (cg_emu_dry()) {
        cg_emu_dry_count_gemm();
        return CUBLAS_STATUS_SUCCESS;
    }
    for (int i = 0; i < batch; i++)
        if ((s = gemm_operands_in_memory(fn, transa, transb, m, n, k, Aarray[i], Atype, lda, 0, Barray[i], Btype, ldb, 0,
                                         Carray[i], Ctype, ldc, 0, 1)))
            return s;
    for (int i = 0; i < batch && m > 0 && n > 0; i++)
        gemm(transa, transb, m, n, k, *(const float *)alpha, Aarray[i], Atype, lda, Barray[i], Btype, ldb,
             *(const float *)beta, Carray[i], Ctype, ldc, Carray[i], Ctype, ldc, NULL);
    return CUBLAS_STATUS_SUCCESS;
}

/* ---------------------------------------------------------------- cuBLASLt */

extern "C" cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = new cg_emu_lt();
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *d, cublasComputeType_t compute,
                                                   cudaDataType_t scale) {
    cg_emu_lt_desc *x = new cg_emu_lt_desc();
    x->compute = compute;
    x->scale = scale;
    x->ta = x->tb = CUBLAS_OP_N;
    x->epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    x->bias = NULL;
    *d = x;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                                         const void *buf, size_t bytes) {
    const char *fn = "cublasLtMatmulDescSetAttribute";
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB: {
        if (bytes != sizeof(int32_t)) return bad(fn, "TRANSA/TRANSB take an int32");
        int32_t v;
        memcpy(&v, buf, 4);
        if (v != CUBLAS_OP_N && v != CUBLAS_OP_T) return bad(fn, "transpose is not N or T");
        (attr == CUBLASLT_MATMUL_DESC_TRANSA ? d->ta : d->tb) = (cublasOperation_t)v;
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_EPILOGUE: {
        if (bytes != sizeof(uint32_t)) return bad(fn, "EPILOGUE takes a uint32");
        uint32_t v;
        memcpy(&v, buf, 4);
        if (v != CUBLASLT_EPILOGUE_DEFAULT && v != CUBLASLT_EPILOGUE_BIAS) return CUBLAS_STATUS_NOT_SUPPORTED;
        d->epilogue = (cublasLtEpilogue_t)v;
        return CUBLAS_STATUS_SUCCESS;
    }
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
        if (bytes != sizeof(void *)) return bad(fn, "BIAS_POINTER takes a pointer");
        memcpy(&d->bias, buf, sizeof(void *));
        return CUBLAS_STATUS_SUCCESS;
    }
    return CUBLAS_STATUS_NOT_SUPPORTED;
}
extern "C" cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *l, cudaDataType_t type, uint64_t rows,
                                                     uint64_t cols, int64_t ld) {
    if (ld < (int64_t)(rows > 1 ? rows : 1)) return bad("cublasLtMatrixLayoutCreate", "ld < rows");
    cg_emu_lt_layout *x = new cg_emu_lt_layout();
    x->type = type;
    x->rows = rows;
    x->cols = cols;
    x->ld = ld;
    *l = x;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *p) {
    *p = new cg_emu_lt_pref();
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}
extern "C" cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                               cublasLtMatmulPreferenceAttributes_t attr,
                                                               const void *buf, size_t bytes) {
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        if (bytes != sizeof(uint64_t)) return bad("cublasLtMatmulPreferenceSetAttribute", "workspace takes a uint64");
        memcpy(&p->max_ws, buf, 8);
        return CUBLAS_STATUS_SUCCESS;
    }
    if (attr >= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES && attr <= CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES)
        return bytes == sizeof(uint32_t) ? CUBLAS_STATUS_SUCCESS
                                         : bad("cublasLtMatmulPreferenceSetAttribute", "alignment takes a uint32");
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

/* the shape rules: op(A) m x k, op(B) k x n, C and D m x n, one type for A and B, C and D alike */
static cublasStatus_t lt_check(const char *fn, const cg_emu_lt_desc *d, const cg_emu_lt_layout *a,
                               const cg_emu_lt_layout *b, const cg_emu_lt_layout *c, const cg_emu_lt_layout *dl) {
    if (d->compute != CUBLAS_COMPUTE_32F || d->scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
    uint64_t m = dl->rows, n = dl->cols;
    uint64_t am = d->ta == CUBLAS_OP_N ? a->rows : a->cols, ak = d->ta == CUBLAS_OP_N ? a->cols : a->rows;
    uint64_t bk = d->tb == CUBLAS_OP_N ? b->rows : b->cols, bn = d->tb == CUBLAS_OP_N ? b->cols : b->rows;
    if (am != m || bn != n || ak != bk) return bad(fn, "op(A), op(B) and D do not multiply");
    if (c->rows != m || c->cols != n) return bad(fn, "C and D differ in shape");
    if (!type_ok(a->type) || a->type != b->type || !type_ok(dl->type) || c->type != dl->type)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
                                                         cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                                         cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl,
                                                         cublasLtMatmulPreference_t p, int requested,
                                                         cublasLtMatmulHeuristicResult_t *results, int *returned) {
    (void)p;
    *returned = 0;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (requested < 1) return bad("cublasLtMatmulAlgoGetHeuristic", "requested < 1");
    cublasStatus_t s = lt_check("cublasLtMatmulAlgoGetHeuristic", d, a, b, c, dl);
    if (s) return s;
    memset(&results[0], 0, sizeof results[0]);
    results[0].workspaceSize = 0;
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void *alpha, const void *A,
                                         cublasLtMatrixLayout_t a, const void *B, cublasLtMatrixLayout_t b,
                                         const void *beta, const void *C, cublasLtMatrixLayout_t c, void *D,
                                         cublasLtMatrixLayout_t dl, const cublasLtMatmulAlgo_t *algo, void *ws,
                                         size_t ws_bytes, cudaStream_t s) {
    (void)algo;
    (void)ws;
    (void)ws_bytes;
    (void)s;
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    cublasStatus_t st = lt_check("cublasLtMatmul", d, a, b, c, dl);
    if (st) return st;
    if (d->epilogue == CUBLASLT_EPILOGUE_BIAS && !d->bias) return bad("cublasLtMatmul", "BIAS epilogue without a bias");
    const char *fn = "cublasLtMatmul";
    if ((st = operand_in_memory(fn, "A", A, a->type, (int64_t)a->rows, (int64_t)a->cols, a->ld)) ||
        (st = operand_in_memory(fn, "B", B, b->type, (int64_t)b->rows, (int64_t)b->cols, b->ld)) ||
        (*(const float *)beta != 0.0f && (st = operand_in_memory(fn, "C", C, c->type, (int64_t)c->rows, (int64_t)c->cols, c->ld))) ||
        (st = operand_in_memory(fn, "D", D, dl->type, (int64_t)dl->rows, (int64_t)dl->cols, dl->ld)) ||
        (d->epilogue == CUBLASLT_EPILOGUE_BIAS &&
         (st = operand_in_memory(fn, "bias", d->bias, dl->type, (int64_t)dl->rows, 1, (int64_t)dl->rows))))
        return st;
    if (cg_emu_dry()) {
        cg_emu_dry_count_gemm();
        return CUBLAS_STATUS_SUCCESS;
    }
    int64_t m = (int64_t)dl->rows, n = (int64_t)dl->cols, k = (int64_t)(d->ta == CUBLAS_OP_N ? a->cols : a->rows);
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    gemm(d->ta, d->tb, m, n, k, *(const float *)alpha, A, a->type, a->ld, B, b->type, b->ld, *(const float *)beta, C,
         c->type, c->ld, D, dl->type, dl->ld, d->epilogue == CUBLASLT_EPILOGUE_BIAS ? d->bias : NULL);
    return CUBLAS_STATUS_SUCCESS;
}
