/* cuda_elementwise.cu — activations (ReLU6, the StarNet star op, GELU, QuickGELU), residual with
 * DropPath, global average pooling, token and position embeddings.
 *
 * Element-wise kernels run a grid-stride loop over int64 indices, read X as float, compute in
 * float and write once. Outputs may alias inputs where the CPU allows it (no __restrict__ there).
 */
#include <cub/device/device_radix_sort.cuh>

#include "nn/cuda/cuda_common.cuh"
#include "nn/cuda/cuda_ops.h"

#define GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* launch kernel<ET> with ET the element type of p; the arguments name ET for their casts */
#define LAUNCH_EW(p, kernel, n, ...) do { \
    if ((p) == CG_PREC_BF16) { typedef bf16 ET; kernel<ET><<<cg_grid((n), 256), 256, 0, ctx->stream>>>(__VA_ARGS__); } \
    else { typedef float ET; kernel<ET><<<cg_grid((n), 256), 256, 0, ctx->stream>>>(__VA_ARGS__); } \
    CG_CUDA_CHECK_LAUNCH(ctx, #kernel); \
} while (0)

#define EW_ARGS(p, n) do { CG_CHECK_PREC(p); CG_CUDA_ARG((n) >= 0, "n = %lld", (long long)(n)); \
    if ((n) == 0) return CG_OK; } while (0)

/* ---------------------------------------------------------------- image layout
 * dst[c, n, k] = src[n, c, k]: one thread per output element, so the writes are coalesced and
 * the reads are runs of HW consecutive floats.
 */
template <typename T> __global__ void nchw_to_cnhw_kernel(T *dst, const float *src, int64_t N, int64_t C, int64_t HW) {
    GRID_STRIDE(i, N * C * HW) {
        int64_t k = i % HW, n = (i / HW) % N, c = i / (HW * N);
        dst[i] = stf<T>(src[(n * C + c) * HW + k]);
    }
}

extern "C" int cg_cuda_nchw_to_cnhw(cg_cuda_ctx *ctx, cg_precision p, void *dst, const float *src, int64_t N, int64_t C,
                                    int64_t HW) {
    CG_CUDA_ARG(N >= 0 && C >= 0 && HW >= 0, "N=%lld C=%lld HW=%lld", (long long)N, (long long)C, (long long)HW);
    int64_t n = N * C * HW;
    EW_ARGS(p, n);
    LAUNCH_EW(p, nchw_to_cnhw_kernel, n, (ET *)dst, src, N, C, HW);
    return CG_OK;
}

/* Every kernel below walks a [rows, cols] view (ROW_STRIDE; rows = channels where a per-channel
 * value is needed, else one row of n) V elements at a time (xvec: V = CG_VEC when cg_vec_ok, else
 * 1), and computes each element as the formula says: the same bits for either V. */

/* launch kernel<ET, V> over [rows, cols] with ET the element type of p and V = CG_VEC when `vec`
 * (cols a multiple of CG_VEC, every pointer aligned), else 1 */
#define LAUNCH_VEC(p, kernel, rows, cols, vec, ...) do { \
    dim3 grid_ = cg_rows_grid((rows), (vec) ? (cols) / CG_VEC : (cols)); \
    if ((p) == CG_PREC_BF16) { typedef bf16 ET; \
        if (vec) kernel<ET, CG_VEC><<<grid_, 256, 0, ctx->stream>>>(__VA_ARGS__); \
        else kernel<ET, 1><<<grid_, 256, 0, ctx->stream>>>(__VA_ARGS__); } \
    else { typedef float ET; \
        if (vec) kernel<ET, CG_VEC><<<grid_, 256, 0, ctx->stream>>>(__VA_ARGS__); \
        else kernel<ET, 1><<<grid_, 256, 0, ctx->stream>>>(__VA_ARGS__); } \
    CG_CUDA_CHECK_LAUNCH(ctx, #kernel); \
} while (0)

/* ---------------------------------------------------------------- ReLU6 and star
 * ReLU6   y = min(max(x, 0), 6)          | dx += dy [0 < x < 6]
 * Star    z = relu6(a) b                 | da += dz b [0 < a < 6] ;  db += dz relu6(a)
 *         with per-channel biases (optional): a = a' + ba[c], b = b' + bb[c] (the bias of the 1x1
 *         conv that made a', b', added here instead of by a pass of its own over the conv's output)
 */
__device__ __forceinline__ float relu6f(float x) { return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x); }

/* the star op over rows = channels of cols = M values each (biased), or one row of n (no biases) */
template <typename T, int V>
__device__ __forceinline__ void star_inputs(const T *a, const T *b, const T *ba, const T *bb, int64_t r, int64_t i,
                                            float (&av)[V], float (&bv)[V]) {
    xvec<T, V> a4 = ldv<T, V>(a + i), b4 = ldv<T, V>(b + i);
#pragma unroll
    for (int e = 0; e < V; e++) {
        av[e] = ldf(a4.v[e]);
        bv[e] = ldf(b4.v[e]);
        if (ba) av[e] += ldf(ba[r]);
        if (bb) bv[e] += ldf(bb[r]);
    }
}
template <typename T, int V>
__global__ void star_fwd_kernel(T *z, const T *a, const T *b, const T *ba, const T *bb, int64_t rows, int64_t cols) {
    ROW_STRIDE(r, rows, jv, cols / V) {
        const int64_t i = r * cols + jv * V;
        float av[V], bv[V];
        star_inputs<T, V>(a, b, ba, bb, r, i, av, bv);
        xvec<T, V> zv;
#pragma unroll
        for (int e = 0; e < V; e++) zv.v[e] = stf<T>(relu6f(av[e]) * bv[e]);
        stv<T, V>(z + i, zv);
    }
}
template <typename T, int V>
__global__ void star_bwd_kernel(T *da, T *db, const T *dz, const T *a, const T *b, const T *ba, const T *bb,
                                int64_t rows, int64_t cols, int set) {
    ROW_STRIDE(r, rows, jv, cols / V) {
        const int64_t i = r * cols + jv * V;
        float av[V], bv[V], ga[V], gb[V];
        star_inputs<T, V>(a, b, ba, bb, r, i, av, bv);
        xvec<T, V> gv = ldv<T, V>(dz + i);
#pragma unroll
        for (int e = 0; e < V; e++) {
            float g = ldf(gv.v[e]);
            ga[e] = (av[e] > 0.0f && av[e] < 6.0f) ? g * bv[e] : 0.0f;
            gb[e] = g * relu6f(av[e]);
        }
        if (da) put_grad_v<T, V>(da + i, ga, set);
        if (db) put_grad_v<T, V>(db + i, gb, set);
    }
}

#define STAR_ARGS(p, n, M, ba, bb) do { EW_ARGS(p, n); \
    CG_CUDA_ARG((!(ba) && !(bb)) || ((M) >= 1 && (n) % (M) == 0), "n = %lld is not a whole number of M = %lld planes", \
                (long long)(n), (long long)(M)); } while (0)

extern "C" int cg_cuda_star_relu6_forward(cg_cuda_ctx *ctx, cg_precision p, void *z, const void *a, const void *b,
                                          const void *bias_a, const void *bias_b, int64_t M, int64_t n) {
    STAR_ARGS(p, n, M, bias_a, bias_b);
    int64_t rows = bias_a || bias_b ? n / M : 1, cols = n / rows;
    int vec = cg_vec_ok(cols, cg_prec_size(p), {z, a, b});
    LAUNCH_VEC(p, star_fwd_kernel, rows, cols, vec, (ET *)z, (const ET *)a, (const ET *)b, (const ET *)bias_a,
               (const ET *)bias_b, rows, cols);
    return CG_OK;
}
extern "C" int cg_cuda_star_relu6_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *da, void *db,
                                           const void *dz, const void *a, const void *b, const void *bias_a,
                                           const void *bias_b, int64_t M, int64_t n) {
    STAR_ARGS(p, n, M, bias_a, bias_b);
    if (!da && !db) return CG_OK;
    int64_t rows = bias_a || bias_b ? n / M : 1, cols = n / rows;
    int vec = cg_vec_ok(cols, cg_prec_size(p), {da, db, dz, a, b});
    LAUNCH_VEC(p, star_bwd_kernel, rows, cols, vec, (ET *)da, (ET *)db, (const ET *)dz, (const ET *)a, (const ET *)b,
               (const ET *)bias_a, (const ET *)bias_b, rows, cols, (int)mode);
    return CG_OK;
}

/* ---------------------------------------------------------------- GELU, QuickGELU (and ReLU6's kernels)
 * GELU       y = 0.5 x (1 + erf(x / sqrt 2))   | dx += dy (Phi(x) + x phi(x)), phi = exp(-x^2/2)/sqrt(2 pi)
 * QuickGELU  y = x s, s = sigmoid(1.702 x)     | dx += dy (s + 1.702 x s (1 - s))
 * expf/erff are CUDA's full-precision functions (no --use_fast_math).
 */
#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

__device__ __forceinline__ float gelu_f(float v) { return 0.5f * v * (1.0f + erff(v * INV_SQRT2)); }
__device__ __forceinline__ float gelu_grad_f(float v) {
    float cdf = 0.5f * (1.0f + erff(v * INV_SQRT2)), pdf = INV_SQRT_2PI * expf(-0.5f * v * v);
    return cdf + v * pdf;
}
__device__ __forceinline__ float sigmoid_f(float v) { return 1.0f / (1.0f + expf(-v)); }
__device__ __forceinline__ float qgelu_f(float v) { return v * sigmoid_f(1.702f * v); }
__device__ __forceinline__ float qgelu_grad_f(float v) {
    float s = sigmoid_f(1.702f * v);
    return s + 1.702f * v * s * (1.0f - s);
}

/* The three activations through one pair of bodies: y = act(x) ; dx (+)= act_grad(x, dy) */
enum { ACT_GELU, ACT_QUICK_GELU, ACT_RELU6 };
template <int ACT> __device__ __forceinline__ float act_f(float v) {
    return ACT == ACT_RELU6 ? relu6f(v) : ACT == ACT_QUICK_GELU ? qgelu_f(v) : gelu_f(v);
}
template <int ACT> __device__ __forceinline__ float act_grad_f(float v, float g) {
    if (ACT == ACT_RELU6) return (v > 0.0f && v < 6.0f) ? g : 0.0f;
    return g * (ACT == ACT_QUICK_GELU ? qgelu_grad_f(v) : gelu_grad_f(v));
}
template <typename T, int V, int ACT> __device__ __forceinline__ void act_fwd_body(T *y, const T *x, int64_t n) {
    ROW_STRIDE(r, 1, jv, n / V) {
        const int64_t i = r * n + jv * V;
        xvec<T, V> xv = ldv<T, V>(x + i), yv;
#pragma unroll
        for (int e = 0; e < V; e++) yv.v[e] = stf<T>(act_f<ACT>(ldf(xv.v[e])));
        stv<T, V>(y + i, yv);
    }
}
template <typename T, int V, int ACT>
__device__ __forceinline__ void act_bwd_body(T *dx, const T *dy, const T *x, int64_t n, int set) {
    ROW_STRIDE(r, 1, jv, n / V) {
        const int64_t i = r * n + jv * V;
        xvec<T, V> xv = ldv<T, V>(x + i), gv = ldv<T, V>(dy + i);
        float d[V];
#pragma unroll
        for (int e = 0; e < V; e++) d[e] = act_grad_f<ACT>(ldf(xv.v[e]), ldf(gv.v[e]));
        put_grad_v<T, V>(dx + i, d, set);
    }
}
#define ACT_KERNELS(name, ACT) \
    template <typename T, int V> __global__ void name##_fwd_kernel(T *y, const T *x, int64_t n) { \
        act_fwd_body<T, V, ACT>(y, x, n); \
    } \
    template <typename T, int V> __global__ void name##_bwd_kernel(T *dx, const T *dy, const T *x, int64_t n, int set) { \
        act_bwd_body<T, V, ACT>(dx, dy, x, n, set); \
    }
ACT_KERNELS(gelu, ACT_GELU)
ACT_KERNELS(qgelu, ACT_QUICK_GELU)
ACT_KERNELS(relu6, ACT_RELU6)

/* cg_cuda_<api>_forward / _backward over name's kernels (ACT_KERNELS), 4 elements a thread where
 * the length and the pointers allow */
#define ACT_ENTRY_POINTS(api, name) \
    extern "C" int cg_cuda_##api##_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, int64_t n) { \
        EW_ARGS(p, n); \
        int vec = cg_vec_ok(n, cg_prec_size(p), {y, x}); \
        LAUNCH_VEC(p, name##_fwd_kernel, 1, n, vec, (ET *)y, (const ET *)x, n); \
        return CG_OK; \
    } \
    extern "C" int cg_cuda_##api##_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, \
                                            const void *dy, const void *x, int64_t n) { \
        EW_ARGS(p, n); \
        int vec = cg_vec_ok(n, cg_prec_size(p), {dx, dy, x}); \
        LAUNCH_VEC(p, name##_bwd_kernel, 1, n, vec, (ET *)dx, (const ET *)dy, (const ET *)x, n, (int)mode); \
        return CG_OK; \
    }
ACT_ENTRY_POINTS(gelu, gelu)
ACT_ENTRY_POINTS(quick_gelu, qgelu)
ACT_ENTRY_POINTS(relu6, relu6)

/* ---------------------------------------------------------------- residual + DropPath
 * [C, N, K]:  y = x + s[n] f          | dx += dy ; df += s[n] dy          (s = 1 when scale is NULL)
 */
/* rows = the C channels, cols = N K: the sample of column j is j / K (32-bit when it fits; only
 * with a scale) */
__device__ __forceinline__ int64_t residual_sample(int64_t j, int64_t K, int64_t cols) {
    return cols <= 0x7fffffffLL ? (int64_t)((uint32_t)j / (uint32_t)K) : j / K;
}
template <typename T, int V>
__global__ void residual_fwd_kernel(T *y, const T *x, const T *f, const float *__restrict__ scale, int64_t rows,
                                    int64_t cols, int64_t K) {
    ROW_STRIDE(r, rows, jv, cols / V) {
        const int64_t i = r * cols + jv * V;
        xvec<T, V> xv = ldv<T, V>(x + i), fv = ldv<T, V>(f + i), yv;
        int64_t j = i - r * cols;
#pragma unroll
        for (int e = 0; e < V; e++) {
            float s = scale ? scale[residual_sample(j + e, K, cols)] : 1.0f;
            yv.v[e] = stf<T>(ldf(xv.v[e]) + s * ldf(fv.v[e]));
        }
        stv<T, V>(y + i, yv);
    }
}
template <typename T, int V>
__global__ void residual_bwd_kernel(T *dx, T *df, const T *dy, const float *__restrict__ scale, int64_t rows,
                                    int64_t cols, int64_t K, int set) {
    ROW_STRIDE(r, rows, jv, cols / V) {
        const int64_t i = r * cols + jv * V;
        xvec<T, V> gv = ldv<T, V>(dy + i);
        int64_t j = i - r * cols;
        float g[V], gs[V];
#pragma unroll
        for (int e = 0; e < V; e++) {
            g[e] = ldf(gv.v[e]);
            gs[e] = (scale ? scale[residual_sample(j + e, K, cols)] : 1.0f) * g[e];
        }
        if (dx) put_grad_v<T, V>(dx + i, g, set);
        if (df) put_grad_v<T, V>(df + i, gs, set);
    }
}

extern "C" int cg_cuda_residual_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *f,
                                        const float *scale, int64_t C, int64_t N, int64_t K) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(C >= 0 && N >= 0 && K >= 0, "C=%lld N=%lld K=%lld", (long long)C, (long long)N, (long long)K);
    int64_t n = C * N * K;
    if (n == 0) return CG_OK;
    int vec = cg_vec_ok(N * K, cg_prec_size(p), {y, x, f});
    LAUNCH_VEC(p, residual_fwd_kernel, C, N * K, vec, (ET *)y, (const ET *)x, (const ET *)f, scale, C, N * K, K);
    return CG_OK;
}
extern "C" int cg_cuda_residual_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, void *df, const void *dy,
                                         const float *scale, int64_t C, int64_t N, int64_t K) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(C >= 0 && N >= 0 && K >= 0, "C=%lld N=%lld K=%lld", (long long)C, (long long)N, (long long)K);
    int64_t n = C * N * K;
    if (n == 0 || (!dx && !df)) return CG_OK;
    int vec = cg_vec_ok(N * K, cg_prec_size(p), {dx, df, dy});
    LAUNCH_VEC(p, residual_bwd_kernel, C, N * K, vec, (ET *)dx, (ET *)df, (const ET *)dy, scale, C, N * K, K, (int)mode);
    return CG_OK;
}

/* ---------------------------------------------------------------- global average pooling
 * y[n, c] = (1/HW) sum_hw x[c, n, hw]  (one warp per plane)   | dx[c, n, hw] += dy[n, c] (1/HW)
 */
template <typename T>
__global__ void __launch_bounds__(CG_BLOCK)
avgpool_fwd_kernel(T *__restrict__ y, const T *__restrict__ x, int64_t C, int64_t N, int64_t HW) {
    int64_t plane = (int64_t)blockIdx.x * CG_WARPS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (plane >= C * N) return;
    const T *xp = x + plane * HW;
    float s = 0.0f;
    for (int64_t i = lane; i < HW; i += 32) s += ldf(xp[i]);
    s = warp_sum(s);
    if (lane == 0) {
        int64_t c = plane / N, n = plane % N;
        y[n * C + c] = stf<T>(s / (float)HW);
    }
}
template <typename T>
__global__ void avgpool_bwd_kernel(T *__restrict__ dx, const T *__restrict__ dy, int64_t C, int64_t N, int64_t HW,
                                   float inv, int64_t n, int set) {
    GRID_STRIDE(i, n) {
        int64_t plane = i / HW, c = plane / N, nn = plane % N;
        put_grad(dx[i], ldf(dy[nn * C + c]) * inv, set);
    }
}

extern "C" int cg_cuda_avgpool_global_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, int64_t C,
                                              int64_t N, int64_t HW) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(C >= 0 && N >= 0 && HW >= 1 && (C * N + CG_WARPS - 1) / CG_WARPS <= 0x7fffffffLL, "C=%lld N=%lld HW=%lld",
                (long long)C, (long long)N, (long long)HW);
    if (C * N == 0) return CG_OK;
    unsigned int grid = (unsigned int)((C * N + CG_WARPS - 1) / CG_WARPS);
    if (p == CG_PREC_BF16) avgpool_fwd_kernel<bf16><<<grid, CG_BLOCK, 0, ctx->stream>>>((bf16 *)y, (const bf16 *)x, C, N, HW);
    else avgpool_fwd_kernel<float><<<grid, CG_BLOCK, 0, ctx->stream>>>((float *)y, (const float *)x, C, N, HW);
    CG_CUDA_CHECK_LAUNCH(ctx, "avgpool_fwd_kernel");
    return CG_OK;
}
extern "C" int cg_cuda_avgpool_global_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, const void *dy, int64_t C,
                                               int64_t N, int64_t HW) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(C >= 0 && N >= 0 && HW >= 1, "C=%lld N=%lld HW=%lld", (long long)C, (long long)N, (long long)HW);
    int64_t n = C * N * HW;
    if (n == 0) return CG_OK;
    float inv = 1.0f / (float)HW;
    LAUNCH_EW(p, avgpool_bwd_kernel, n, (ET *)dx, (const ET *)dy, C, N, HW, inv, n, (int)mode);
    return CG_OK;
}

/* ---------------------------------------------------------------- token embedding
 * Forward:   y[n, :] (+)= table[ids[n], :]           (an id outside [0, V): row skipped, fault raised)
 * Backward:  dtable[ids[n], :] += dy[n, :] for ids[n] != skip_id
 *   1. (id, n) pairs sorted by id with a stable radix sort (cub), over all 32 bits so that even an
 *      invalid id sorts into its own run; a run = the sorted positions of one id, rows in order of n;
 *   2. short runs (at most L = EMB_SHORT rows): one block per run start, its threads take columns,
 *      each adds the run's rows in order: d = dtable[id]; d += dy[row] ...; — the CPU's additions in
 *      the CPU's order, so bitwise the CPU's result;
 *   3. long runs (more than L rows): the sorted positions cut into segments of R = EMB_SEG <= L rows,
 *      one block per segment. A long run is never inside one segment: only a segment's first piece
 *      (continuing a run from the left) or last piece (starting one that goes on to the right) can
 *      belong to one. Such a piece leaves its partial sum p = 0 + dy[row] ... (its rows in order) in
 *      slot 0 of the segment (a continuation) or slot 1 (the run's start: that segment owns the run);
 *   4. one block per owner and 32 columns: the run's end found by a few rounds of parallel probes,
 *      its K partials (slot 1 of the owner, slot 0 of each later segment) split into 8 consecutive
 *      groups, one per warp, each summed in order, then dtable[id] += the group sums in order.
 *   Fixed grouping and no float atomics: the same result every run. One writer per table row (a
 *   run's id is in no other run). Faults (invalid ids) are raised by step 2 only, once per run.
 */
template <typename T>
__global__ void emb_fwd_kernel(T *y, const int32_t *__restrict__ ids, const T *__restrict__ table, int64_t C, int64_t V,
                               int accumulate, unsigned int *faults, int64_t n) {
    GRID_STRIDE(i, n) {
        int64_t row = i / C, c = i % C;
        int32_t id = ids[row];
        if (id < 0 || id >= V) {
            if (c == 0) atomicOr(faults, CG_CUDA_FAULT_EMBEDDING_ID);
            if (!accumulate) y[i] = stf<T>(0.0f);
            continue;
        }
        float v = ldf(table[(int64_t)id * C + c]);
        y[i] = stf<T>(accumulate ? ldf(y[i]) + v : v);
    }
}

__global__ void iota_kernel(int32_t *v, int64_t n) {
    GRID_STRIDE(i, n) v[i] = (int32_t)i;
}

#define EMB_SEG 32            /* R: sorted positions per segment */
#define EMB_SHORT 64          /* L: a run of at most L rows is summed whole, in the CPU's order */
#define EMB_SHORT_THREADS 128 /* > L: one probe per thread finds a run's length */
#define EMB_SEG_THREADS 256
#define EMB_JOIN_WARPS 8
static_assert(EMB_SHORT >= EMB_SEG, "a long run must span two segments at least");
static_assert(EMB_SHORT_THREADS > EMB_SHORT, "one thread per position of [i, i + L]");

/* step 2, block per sorted position i: at a run start, thread t <= L checks position i + t; the
 * one whose position holds the id and whose next does not (or t = L) knows the length (L + 1:
 * longer than L, left to step 3). */
template <typename T>
__global__ void __launch_bounds__(EMB_SHORT_THREADS)
emb_bwd_short_kernel(float *__restrict__ dtable, const T *__restrict__ dy, const int32_t *__restrict__ keys,
                     const int32_t *__restrict__ rows, int64_t N, int64_t C, int64_t V, int32_t skip_id,
                     unsigned int *faults) {
    __shared__ int32_t srow[EMB_SHORT];
    __shared__ int s_len;
    for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
        __syncthreads();  /* the previous run is done with srow and s_len */
        int32_t id = keys[i];
        if (i > 0 && keys[i - 1] == id) continue;  /* not the start of a run (the same for the whole block) */
        if (id == skip_id) continue;
        if (id < 0 || id >= V) {
            if (threadIdx.x == 0) atomicOr(faults, CG_CUDA_FAULT_EMBEDDING_ID);
            continue;
        }
        int t = (int)threadIdx.x;
        if (t <= EMB_SHORT) {
            int64_t p = i + t;
            int here = p < N && keys[p] == id, next = t < EMB_SHORT && p + 1 < N && keys[p + 1] == id;
            if (here && !next) s_len = t + 1;
            if (here && t < EMB_SHORT) srow[t] = rows[p];
        }
        __syncthreads();
        int len = s_len;
        if (len > EMB_SHORT) continue;
        float *dst = dtable + (int64_t)id * C;
        for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
            float d = dst[c];
#pragma unroll 4
            for (int j = 0; j < len; j++) d += ldf(dy[(int64_t)srow[j] * C + c]);
            dst[c] = d;
        }
    }
}

/* equal keys are contiguous, so key == k holds on one interval: these find its ends by bisection */
/* the first x in [lo, hi) with key[x] != k (hi if none), given key == k on [lo, x) */
__device__ __forceinline__ int emb_run_end(const int32_t *key, int lo, int hi, int32_t k) {
    while (lo < hi) {
        int m = lo + (hi - lo) / 2;
        if (key[m] == k) lo = m + 1;
        else hi = m;
    }
    return lo;
}
/* the first x in [lo, hi] with key[x..hi] == k, given key[hi] == k */
__device__ __forceinline__ int emb_run_start(const int32_t *key, int lo, int hi, int32_t k) {
    while (lo < hi) {
        int m = lo + (hi - lo) / 2;
        if (key[m] == k) hi = m;
        else lo = m + 1;
    }
    return lo;
}

/* step 3: segment s = sorted positions [a, b); its block holds the keys of [a - L, b + L) (clipped
 * to [0, N)): a run longer than L reaches past that window, so the clipped length still tells a
 * long run from a short one. owner[s] = 1 when slot 1 holds a long run's start. */
template <typename T>
__global__ void __launch_bounds__(EMB_SEG_THREADS)
emb_bwd_seg_kernel(float *__restrict__ part, int32_t *__restrict__ owner, const T *__restrict__ dy,
                   const int32_t *__restrict__ keys, const int32_t *__restrict__ rows, int64_t N, int64_t C,
                   int64_t V, int32_t skip_id) {
    __shared__ int32_t skey[EMB_SEG + 2 * EMB_SHORT], srow[EMB_SEG];
    int64_t nseg = (N + EMB_SEG - 1) / EMB_SEG;
    for (int64_t s = blockIdx.x; s < nseg; s += gridDim.x) {
        int64_t a = s * EMB_SEG, b = a + EMB_SEG < N ? a + EMB_SEG : N;
        int64_t w0 = a > EMB_SHORT ? a - EMB_SHORT : 0, w1 = b + EMB_SHORT < N ? b + EMB_SHORT : N;
        int ia = (int)(a - w0), ib = (int)(b - w0), iw = (int)(w1 - w0);  /* window indices */
        __syncthreads();  /* the previous segment is done with the window */
        for (int x = threadIdx.x; x < iw; x += blockDim.x) skey[x] = keys[w0 + x];
        for (int x = threadIdx.x; x < ib - ia; x += blockDim.x) srow[x] = rows[a + x];
        __syncthreads();
        int owns = 0;
        for (int f = 0; f < 2; f++) {  /* the first piece [i, e), then the last if it is another */
            int32_t k = f ? skey[ib - 1] : skey[ia];
            int i = f ? emb_run_start(skey, ia, ib - 1, k) : ia, e = f ? ib : emb_run_end(skey, ia + 1, ib, k);
            if (f && i == ia) break;
            int rs = i == ia ? emb_run_start(skey, 0, ia, k) : i;  /* its run [rs, re), clipped */
            int re = e == ib ? emb_run_end(skey, ib, iw, k) : e;
            if (re - rs <= EMB_SHORT || k == skip_id || k < 0 || k >= V) continue;
            int starts = rs >= ia;
            float *dst = part + (2 * s + starts) * C;
            for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
                float p = 0.0f;
#pragma unroll 4
                for (int x = i; x < e; x++) p += ldf(dy[(int64_t)srow[x - ia] * C + c]);
                dst[c] = p;
            }
            owns |= starts;
        }
        if (threadIdx.x == 0) owner[s] = owns;
    }
}

/* step 4: block (s, columns), for an owner s: the run holds key k = keys[b - 1] and ends at the
 * first position from b with another key. Each round the block probes blockDim.x evenly spaced
 * positions of [lo, hi) (keys[lo] == k, hi past the run): the one probe in the run whose next
 * probe is not narrows it to one step. Its partials: slot 1 of s, then slot 0 of s+1 .. t. */
__global__ void __launch_bounds__(EMB_JOIN_WARPS * 32)
emb_bwd_join_kernel(float *__restrict__ dtable, const float *__restrict__ part, const int32_t *__restrict__ owner,
                    const int32_t *__restrict__ keys, int64_t N, int64_t C) {
    __shared__ int64_t s_lo, s_hi;
    __shared__ float g[EMB_JOIN_WARPS][32];
    int64_t nseg = (N + EMB_SEG - 1) / EMB_SEG;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int64_t s = blockIdx.x; s < nseg; s += gridDim.x) {
        __syncthreads();  /* the previous segment is done with s_lo, s_hi and g */
        if (!owner[s]) continue;
        int64_t b = (s + 1) * EMB_SEG < N ? (s + 1) * EMB_SEG : N;
        int32_t k = keys[b - 1];
        int64_t lo = b, hi = N;
        while (hi - lo > 1) {
            int64_t step = (hi - lo + blockDim.x - 1) / blockDim.x, p = lo + threadIdx.x * step, q = p + step;
            if (p < hi && keys[p] == k && !(q < hi && keys[q] == k)) {
                s_lo = p;
                s_hi = q < hi ? q : hi;
            }
            __syncthreads();
            lo = s_lo;
            hi = s_hi;
            __syncthreads();
        }
        int64_t K = (hi - 1) / EMB_SEG - s + 1;  /* hi: the run's end; K >= 2 */
        int64_t j0 = K * warp / EMB_JOIN_WARPS, j1 = K * (warp + 1) / EMB_JOIN_WARPS;
        for (int64_t c0 = (int64_t)blockIdx.y * 32; c0 < C; c0 += (int64_t)gridDim.y * 32) {
            int64_t c = c0 + lane;
            float v = 0.0f;
            if (c < C)
                for (int64_t j = j0; j < j1; j++) v += part[(j ? 2 * (s + j) : 2 * s + 1) * C + c];
            g[warp][lane] = v;
            __syncthreads();
            if (warp == 0 && c < C) {
                float d = dtable[(int64_t)k * C + c];
                for (int w = 0; w < EMB_JOIN_WARPS; w++)
                    if (K * (w + 1) / EMB_JOIN_WARPS > K * w / EMB_JOIN_WARPS) d += g[w][lane];
                dtable[(int64_t)k * C + c] = d;
            }
            __syncthreads();
        }
    }
}

static int emb_sort_temp_bytes(int64_t N, cudaStream_t stream, size_t *bytes) {
    *bytes = 0;
    cudaError_t e = cub::DeviceRadixSort::SortPairs((void *)NULL, *bytes, (const int32_t *)NULL, (int32_t *)NULL,
                                                    (const int32_t *)NULL, (int32_t *)NULL, (int)N, 0, 32, stream);
    return e == cudaSuccess;
}

/* keys_out, rows_in, rows_out: N int32 each (256-aligned), then cub's temporary storage; once the
 * sort is done the segment pass reuses that: owner flags (nseg int32, 256-aligned), then two
 * partial rows of C floats per segment */
static size_t emb_seg_flags_bytes(int64_t N) {
    return cg_align_up((size_t)((N + EMB_SEG - 1) / EMB_SEG) * sizeof(int32_t), 256);
}
static size_t emb_layout(int64_t N, int64_t C, size_t temp) {
    size_t seg = emb_seg_flags_bytes(N) + 2 * (size_t)((N + EMB_SEG - 1) / EMB_SEG) * (size_t)C * sizeof(float);
    return 3 * cg_align_up((size_t)N * sizeof(int32_t), 256) + (temp > seg ? temp : seg);
}

extern "C" size_t cg_cuda_embedding_scratch_bytes(int64_t N, int64_t C) {
    size_t temp = 0;
    if (!emb_sort_temp_bytes(N, 0, &temp)) {
        (void)cudaGetLastError();
        temp = (size_t)N * 16 + ((size_t)4 << 20);  /* no device to ask: a generous estimate */
    }
    return emb_layout(N, C, temp);
}

extern "C" int cg_cuda_embedding_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const int32_t *ids,
                                         const void *table, int64_t N, int64_t C, int64_t V, int accumulate) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(N >= 0 && C >= 1 && V >= 1, "N=%lld C=%lld V=%lld", (long long)N, (long long)C, (long long)V);
    int64_t n = N * C;
    if (n == 0) return CG_OK;
    LAUNCH_EW(p, emb_fwd_kernel, n, (ET *)y, ids, (const ET *)table, C, V, accumulate, ctx->faults, n);
    return CG_OK;
}

template <typename T>
static int emb_backward(cg_cuda_ctx *ctx, float *dtable, const void *dy, const int32_t *ids, int64_t N, int64_t C,
                        int64_t V, int32_t skip_id) {
    size_t temp = 0;
    if (!emb_sort_temp_bytes(N, ctx->stream, &temp)) CG_CUDA_CHECK(cudaGetLastError());
    size_t need = emb_layout(N, C, temp), slot = cg_align_up((size_t)N * sizeof(int32_t), 256);
    CG_SCRATCH_NEED(ctx, need, "embedding backward");
    char *base = (char *)ctx->scratch;
    int32_t *keys = (int32_t *)base, *rows_in = (int32_t *)(base + slot), *rows = (int32_t *)(base + 2 * slot);
    void *tmp = base + 3 * slot;
    int32_t *owner = (int32_t *)tmp;
    float *part = (float *)(base + 3 * slot + emb_seg_flags_bytes(N));
    iota_kernel<<<cg_grid(N, 256), 256, 0, ctx->stream>>>(rows_in, N);
    CG_CUDA_CHECK_LAUNCH(ctx, "iota_kernel");
    CG_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(tmp, temp, ids, keys, rows_in, rows, (int)N, 0, 32, ctx->stream));
    int64_t nseg = (N + EMB_SEG - 1) / EMB_SEG;
    int threads = C >= EMB_SEG_THREADS ? EMB_SEG_THREADS : (int)cg_align_up((size_t)C, 32);
    emb_bwd_short_kernel<T><<<cg_grid(N, 1, 65536), EMB_SHORT_THREADS, 0, ctx->stream>>>(
        dtable, (const T *)dy, keys, rows, N, C, V, skip_id, ctx->faults);
    CG_CUDA_CHECK_LAUNCH(ctx, "emb_bwd_short_kernel");
    emb_bwd_seg_kernel<T><<<cg_grid(nseg, 1, 65536), threads, 0, ctx->stream>>>(part, owner, (const T *)dy, keys,
                                                                               rows, N, C, V, skip_id);
    CG_CUDA_CHECK_LAUNCH(ctx, "emb_bwd_seg_kernel");
    dim3 grid(cg_grid(nseg, 1, 65536), cg_grid(C, 32, 65535));
    emb_bwd_join_kernel<<<grid, EMB_JOIN_WARPS * 32, 0, ctx->stream>>>(dtable, part, owner, keys, N, C);
    CG_CUDA_CHECK_LAUNCH(ctx, "emb_bwd_join_kernel");
    return CG_OK;
}

extern "C" int cg_cuda_embedding_backward(cg_cuda_ctx *ctx, cg_precision p, float *dtable, const void *dy,
                                          const int32_t *ids, int64_t N, int64_t C, int64_t V, int32_t skip_id) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(N >= 0 && N <= 0x7fffffffLL && C >= 1 && V >= 1, "N=%lld C=%lld V=%lld", (long long)N, (long long)C,
                (long long)V);
    if (N == 0) return CG_OK;
    if (p == CG_PREC_BF16) return emb_backward<bf16>(ctx, dtable, dy, ids, N, C, V, skip_id);
    return emb_backward<float>(ctx, dtable, dy, ids, N, C, V, skip_id);
}

/* ---------------------------------------------------------------- position embedding
 * Forward:   y[b, t, :] += pos[t, :]          | Backward: dpos[t, :] += sum_b dy[b, t, :]
 * (the backward is a column sum of dy viewed as [B, T*C]: deterministic partials) */
template <typename T>
__global__ void posemb_fwd_kernel(T *y, const T *__restrict__ pos, int64_t TC, int64_t n) {
    GRID_STRIDE(i, n) y[i] = stf<T>(ldf(y[i]) + ldf(pos[i % TC]));
}

extern "C" int cg_cuda_posemb_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *pos, int64_t B, int64_t T,
                                      int64_t C) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(B >= 0 && T >= 1 && C >= 1, "B=%lld T=%lld C=%lld", (long long)B, (long long)T, (long long)C);
    int64_t n = B * T * C;
    if (n == 0) return CG_OK;
    int64_t TC = T * C;
    LAUNCH_EW(p, posemb_fwd_kernel, n, (ET *)y, (const ET *)pos, TC, n);
    return CG_OK;
}

extern "C" int cg_cuda_posemb_backward(cg_cuda_ctx *ctx, cg_precision p, float *dpos, const void *dy, int64_t B,
                                       int64_t T, int64_t C) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(B >= 0 && T >= 1 && C >= 1, "B=%lld T=%lld C=%lld", (long long)B, (long long)T, (long long)C);
    if (B == 0) return CG_OK;
    return cg_cuda_colsum_acc(ctx, p, dpos, dy, B, T * C);
}

/* ---------------------------------------------------------------- row gather / scatter
 * gather:  dst[b, c] = src[rows[b], c]        (the text towers' pooling: one row per text)
 * scatter: dst[rows[b], c] = src[b, c]        (its backward; other rows of dst untouched)
 * One thread per element of the B x C block; rows on the device, distinct for the scatter. */
template <typename T>
__global__ void copy_rows_kernel(T *__restrict__ dst, const T *__restrict__ src, const int32_t *__restrict__ rows,
                                 int64_t C, int64_t n, int scatter) {
    GRID_STRIDE(i, n) {
        int64_t j = (int64_t)rows[i / C] * C + i % C;   /* element i of the B x C block <-> element j of the tensor */
        if (scatter) dst[j] = src[i];
        else dst[i] = src[j];
    }
}

static int copy_rows(cg_cuda_ctx *ctx, cg_precision p, void *dst, const void *src, const int32_t *rows, int64_t B,
                     int64_t C, int scatter) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(B >= 0 && C >= 1, "B=%lld C=%lld", (long long)B, (long long)C);
    if (B == 0) return CG_OK;
    LAUNCH_EW(p, copy_rows_kernel, B * C, (ET *)dst, (const ET *)src, rows, C, B * C, scatter);
    return CG_OK;
}

extern "C" int cg_cuda_gather_rows(cg_cuda_ctx *ctx, cg_precision p, void *dst, const void *src, const int32_t *rows,
                                   int64_t B, int64_t C) {
    return copy_rows(ctx, p, dst, src, rows, B, C, 0);
}

extern "C" int cg_cuda_scatter_rows(cg_cuda_ctx *ctx, cg_precision p, void *dst, const void *src, const int32_t *rows,
                                    int64_t B, int64_t C) {
    return copy_rows(ctx, p, dst, src, rows, B, C, 1);
}
