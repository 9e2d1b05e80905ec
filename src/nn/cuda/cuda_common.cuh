/* cuda_common.cuh — what the CUDA sources share (C++/CUDA only; not for .c files): the context's
 * layout, element types and conversions, launch sizes, warp and block reductions.
 *
 * Conventions of every kernel in nn/cuda/:
 *  - indices are int64_t (tensors may exceed 2^31 elements); grids are 1-D in x (up to 2^31-1
 *    blocks) with grid-stride loops where the element count may exceed the grid;
 *  - no op launches a kernel with zero blocks: sizes of 0 return before launching;
 *  - reductions are deterministic: fixed partitions, partial sums in scratch, a final pass in a
 *    fixed order; no floating-point atomics anywhere;
 *  - X elements (T = float or bf16) are read as float, computed in float, written once rounded.
 */
#ifndef CLIPGRID_NN_CUDA_CUDA_COMMON_CUH
#define CLIPGRID_NN_CUDA_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <initializer_list>

#include "nn/cuda/cg_cuda.h"
#include "nn/cuda/cuda_check.h"

typedef __nv_bfloat16 bf16;

/* A cached cuBLASLt plan of the linear forward (cuda_gemm.cu): the matmul descriptor (bias
 * epilogue set; the bias pointer is set per call), the three layouts and the algorithm the
 * heuristic chose, for one key (precision, N, in, out, bias or not, operand alignments).
 * algo_ok = 0 records that no algorithm fits (the caller falls back to cublasGemmEx). Built on
 * first use, destroyed with the context: no descriptor work or heuristic query per call. */
typedef struct {
    int p, has_bias;
    int64_t N, in, out;
    uint32_t al_a, al_b, al_c;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    int algo_ok;
} cg_lt_plan;

#define CG_LT_PLANS 64   /* distinct linear shapes of a run: ~5 per text layer kind, x train/eval batch */

#define CG_PROF_ROWS 96
struct cg_cuda_ctx {
    int device;
    int sm_count;
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *blas_ws;          /* cuBLAS workspace (cublasSetWorkspace): no allocations inside cuBLAS */
    size_t blas_ws_bytes;
    void *lt_ws;            /* cuBLASLt matmul workspace */
    size_t lt_ws_bytes;
    void *scratch;          /* ops' temporaries, 256-byte aligned */
    size_t scratch_bytes;
    unsigned int *faults;   /* device word: bit flags of data faults (CG_CUDA_FAULT_*) */
    int use_lt;
    int dw_tiles;           /* 1: depthwise convs on the tile kernels only (cg_cuda_set_dw_planes(ctx, 0)) */
    int attn_permute;       /* 1: attention on permuted copies (cg_cuda_set_attn_in_place(ctx, 0)) */
    int sync_each;          /* CLIPGRID_CUDA_SYNC=1 */
    cg_lt_plan lt_plans[CG_LT_PLANS];
    int n_lt_plans;         /* when full, further shapes are planned per call and not kept */
    long lt_plan_builds;    /* plans built (cached or not): for the test of the cache */
    int profiling;          /* cg_cuda_profile_start: cg_cuda_profile_mark_ times each call */
    double prof_last;       /* host seconds at the previous mark */
    cg_cuda_prof_row prof[CG_PROF_ROWS];
    int n_prof;
};

/* When profiling: wait for the stream and add the time since the previous mark to `what`'s row
 * (names are compared as strings; more than CG_PROF_ROWS names go to one "(other)" row). */
extern "C" void cg_cuda_profile_mark_(cg_cuda_ctx *ctx, const char *what);

/* Destroy the cached cuBLASLt plans (cuda_gemm.cu); before the cuBLASLt handle goes. */
void cg_cuda_lt_plans_clear(cg_cuda_ctx *ctx);

#define CG_CUDA_FAULT_EMBEDDING_ID 1u

#define CG_BLOCK 256          /* threads of every block-reduction kernel */
#define CG_WARPS (CG_BLOCK / 32)

/* ---------------------------------------------------------------- element types */

template <typename T> struct cg_prec_of;
template <> struct cg_prec_of<float> { static const cg_precision value = CG_PREC_FP32; };
template <> struct cg_prec_of<bf16> { static const cg_precision value = CG_PREC_BF16; };

__device__ __forceinline__ float ldf(float x) { return x; }
__device__ __forceinline__ float ldf(bf16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T stf(float x);
template <> __device__ __forceinline__ float stf<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 stf<bf16>(float x) { return __float2bfloat16_rn(x); }

/* An activation gradient's store under cg_grad_mode: d = v (set) or d + v, rounded once to T.
 * With set the old value is never read. */
template <typename T> __device__ __forceinline__ void put_grad(T &d, float v, int set) {
    d = stf<T>(set ? v : ldf(d) + v);
}

static inline cudaDataType_t cg_cuda_dtype(cg_precision p) { return p == CG_PREC_BF16 ? CUDA_R_16BF : CUDA_R_32F; }

#define CG_CHECK_PREC(p) CG_CUDA_ARG((p) == CG_PREC_FP32 || (p) == CG_PREC_BF16, "precision %d", (int)(p))

/* ---------------------------------------------------------------- launch sizes */

/* Blocks for n items at `per_block` items per block, capped (grid-stride loops cover the rest). */
static inline unsigned int cg_grid(int64_t n, int64_t per_block, int64_t cap = (int64_t)1 << 20) {
    int64_t b = (n + per_block - 1) / per_block;
    if (b < 1) b = 1;
    if (b > cap) b = cap;
    return (unsigned int)b;
}

/* Per-row element-wise loops over a [rows, cols] tensor (a channel's plane, a row of a matrix):
 * y of the grid strides the rows, x a row's columns, so the row index comes with the block and no
 * element pays an integer division to find it (a 64-bit division per element made the GPU
 * profile's element-wise passes compute-bound). Launch with cg_rows_grid(rows, cols), 256 threads. */
#define ROW_STRIDE(r, rows, j, cols) \
    for (int64_t r = blockIdx.y; r < (rows); r += gridDim.y) \
        for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < (cols); j += (int64_t)gridDim.x * blockDim.x)
static inline dim3 cg_rows_grid(int64_t rows, int64_t cols) {
    int64_t gy = rows < 1 ? 1 : rows > 65535 ? 65535 : rows;
    int64_t cap = ((int64_t)1 << 20) / gy;   /* at most ~2^20 blocks in all */
    return dim3(cg_grid(cols, 256, cap < 1 ? 1 : cap), (unsigned int)gy);
}

/* V neighbouring X elements moved as one access (V = CG_VEC: 8 bytes of bf16, 16 of float) or one
 * element (V = 1). Element-wise kernels take V as a template argument and walk their rows V at a
 * time; the launch picks CG_VEC when cg_vec_ok says every row holds whole groups and every
 * pointer is aligned, 1 otherwise. Each element's arithmetic is the same either way (same bits).
 * Why: a 2-byte load per thread keeps too few bytes in flight to use the card's bandwidth. */
#define CG_VEC 4
template <typename T, int V> struct alignas(V * sizeof(T)) xvec { T v[V]; };
template <typename T, int V> __device__ __forceinline__ xvec<T, V> ldv(const T *p) { return *(const xvec<T, V> *)p; }
template <typename T, int V> __device__ __forceinline__ void stv(T *p, const xvec<T, V> &x) { *(xvec<T, V> *)p = x; }
/* d[e] = v[e] (set) or d[e] + v[e], rounded once: put_grad for the V elements at d */
template <typename T, int V> __device__ __forceinline__ void put_grad_v(T *d, const float (&v)[V], int set) {
    xvec<T, V> o;
    if (!set) o = ldv<T, V>(d);
#pragma unroll
    for (int e = 0; e < V; e++) o.v[e] = stf<T>(set ? v[e] : ldf(o.v[e]) + v[e]);
    stv<T, V>(d, o);
}
static inline int cg_vec_ok(int64_t cols, size_t es, std::initializer_list<const void *> ptrs) {
    if (cols % CG_VEC) return 0;
    for (const void *q : ptrs)
        if (q && ((uintptr_t)q % (CG_VEC * es))) return 0;
    return 1;
}

/* The context's scratch, as a typed pointer, after checking it holds `bytes`. */
#define CG_SCRATCH_NEED(ctx, bytes, what) CG_CUDA_ARG((size_t)(bytes) <= (ctx)->scratch_bytes, \
    "%s needs %zu bytes of scratch, the context has %zu (cg_cuda_ctx_create)", (what), (size_t)(bytes), (ctx)->scratch_bytes)

static inline size_t cg_align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* ---------------------------------------------------------------- reductions */

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over a CG_BLOCK-thread block; every thread gets the result. `shm` holds CG_WARPS floats.
 * Safe to call repeatedly (it synchronizes before returning). All threads must call it. */
__device__ __forceinline__ float block_sum(float v, float *shm) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) shm[warp] = v;
    __syncthreads();
    float t = lane < CG_WARPS ? shm[lane] : 0.0f;
    t = warp_sum(t);
    __syncthreads();
    return t;
}
__device__ __forceinline__ double block_sum_d(double v, double *shm) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum_d(v);
    if (lane == 0) shm[warp] = v;
    __syncthreads();
    double t = lane < CG_WARPS ? shm[lane] : 0.0;
    t = warp_sum_d(t);
    __syncthreads();
    return t;
}

/* ---------------------------------------------------------------- shared with other .cu files */

/* Row-major GEMM on the context's cuBLAS handle (nn/cuda/cuda_gemm.cu):
 *   C[M,N] = alpha * op(A) @ op(B) + beta * C, A and B of X type `p`, C of X type (c_fp32 = 0)
 *   or float (c_fp32 = 1); fp32 accumulation. */
int cg_cuda_gemm(cg_cuda_ctx *ctx, cg_precision p, int transA, int transB, int64_t M, int64_t N, int64_t K,
                 float alpha, const void *A, int64_t lda, const void *B, int64_t ldb, float beta, void *C, int64_t ldc,
                 int c_fp32);
/* Batched: batch products at element strides sA, sB, sC. */
int cg_cuda_gemm_batched(cg_cuda_ctx *ctx, cg_precision p, int transA, int transB, int64_t M, int64_t N, int64_t K,
                         float alpha, const void *A, int64_t lda, int64_t sA, const void *B, int64_t ldb, int64_t sB,
                         float beta, void *C, int64_t ldc, int64_t sC, int64_t batch, int c_fp32);
/* Batched over arbitrary operands: A, B, C are device arrays of `batch` device pointers
 * (cublasGemmBatchedEx); otherwise as cg_cuda_gemm_batched. */
int cg_cuda_gemm_ptr_batched(cg_cuda_ctx *ctx, cg_precision p, int transA, int transB, int64_t M, int64_t N, int64_t K,
                             float alpha, const void *const *A, int64_t lda, const void *const *B, int64_t ldb,
                             float beta, void *const *C, int64_t ldc, int64_t batch, int c_fp32);
/* dst[c] += sum over the M contiguous values of row c of src ([C, M], X type), deterministic. */
int cg_cuda_rowsum_acc(cg_cuda_ctx *ctx, cg_precision p, float *dst, const void *src, int64_t C, int64_t M);
/* dst[c] += sum_r src[r, c] over the rows of src ([R, C], X type), deterministic. */
int cg_cuda_colsum_acc(cg_cuda_ctx *ctx, cg_precision p, float *dst, const void *src, int64_t R, int64_t C);
/* Set y[c, j] = b[c] for a [C, M] X tensor (b of X type). */
int cg_cuda_fill_rows(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *b, int64_t C, int64_t M);

#endif
