/* cuda_conv.cu — dense conv2d (im2col + cuBLAS) and depthwise conv2d (direct tiled kernels), in the
 * nn/ image layout [C, N, H, W] (each channel one contiguous run of N*H*W values).
 */
#include "nn/cuda/cuda_common.cuh"
#include "nn/cuda/cuda_ops.h"

/* ================================================================ conv2d
 *
 * Forward:   y[o,n,i,j] = b[o] + sum_{c,u,v} w[o,c,u,v] x[c, n, i*s-p+u, j*s-p+v]   (x outside = 0)
 *            = (W[Cout, KK] @ col[KK, n i j]) with col[(c k + u) k + v, (n, i, j)] = x[...]  (im2col)
 * Backward:  db[o]      += sum_{n,i,j} dy[o,n,i,j]                               (row sums)
 *            dW[Cout,KK] += dY[Cout, cols] @ col[KK, cols]^T                     (GEMM, fp32 out)
 *            dcol[KK, cols] = W^T @ dY ;  dx[c,n,h,w] += sum_{u,v: h = i s - p + u, w = j s - p + v} dcol
 *            (col2im written as a gather: each dx element sums the dcol entries that map to it,
 *             so there are no atomics and no races)
 * 1x1 / stride 1 / pad 0: col = x itself, one GEMM each way: Y = W @ X, dW += dY @ X^T, dX += W^T @ dY.
 * Images are processed in groups of g: columns (n - n0, i, j) of a group are contiguous in y and dy
 * ([Cout, N*Ho*Wo] with leading dimension N*Ho*Wo), so each group is one GEMM.
 */

/* col[r, q] for r = (c k + u) k + v < Cin k k, q = (n - n0) Ho Wo + i Wo + j < g Ho Wo.
 * Grid: y over the rows r (c, u, v once per block row), x over groups of V columns q (V = CG_VEC
 * when a row holds whole groups: one 8- / 16-byte store and one index split per group, the next
 * columns stepped without dividing; else 1). The column buffer lives in the scratch (far below
 * 2^31 elements), so the index arithmetic is 32-bit (a 64-bit division costs several times a
 * 32-bit one); only the addresses are 64-bit. */
template <typename T, int V>
__global__ void im2col_kernel(T *__restrict__ col, const T *__restrict__ x, int Cin, int64_t N, int H, int W, int k,
                              int s, int pad, int Ho, int Wo, int64_t n0, int g) {
    int HoWo = Ho * Wo, cols = g * HoWo, KK = Cin * k * k;
    for (int r = blockIdx.y; r < KK; r += gridDim.y) {
        int c = r / (k * k), uv = r - c * (k * k), u = uv / k, v = uv - u * k;
        const T *xc = x + ((int64_t)c * N + n0) * H * W;
        T *cr = col + (int64_t)r * cols;
        for (int q = (blockIdx.x * blockDim.x + threadIdx.x) * V; q < cols; q += gridDim.x * blockDim.x * V) {
            int nl = q / HoWo, ij = q - nl * HoWo, i = ij / Wo, j = ij - i * Wo;
            xvec<T, V> out;
#pragma unroll
            for (int e = 0; e < V; e++) {
                int h = i * s - pad + u, w = j * s - pad + v;
                out.v[e] = (h >= 0 && h < H && w >= 0 && w < W) ? xc[((int64_t)nl * H + h) * W + w] : stf<T>(0.0f);
                if (++j == Wo) {   /* the next column: (nl, i, j + 1) with carries */
                    j = 0;
                    if (++i == Ho) { i = 0; nl++; }
                }
            }
            stv<T, V>(cr + q, out);
        }
    }
}

/* im2col of images [n0, n0 + g) into col (grid rows: the KK rows of col; x: groups of columns) */
template <typename T>
static int im2col(cg_cuda_ctx *ctx, T *col, const T *x, int64_t Cin, int64_t N, int64_t H, int64_t W, int k, int stride,
                  int pad, int64_t Ho, int64_t Wo, int64_t n0, int64_t g) {
    int64_t cols = g * Ho * Wo, KK = Cin * k * k;
    if (cg_vec_ok(cols, sizeof(T), {col}))
        im2col_kernel<T, CG_VEC><<<cg_rows_grid(KK, cols / CG_VEC), 256, 0, ctx->stream>>>(
            col, x, (int)Cin, N, (int)H, (int)W, k, stride, pad, (int)Ho, (int)Wo, n0, (int)g);
    else
        im2col_kernel<T, 1><<<cg_rows_grid(KK, cols), 256, 0, ctx->stream>>>(col, x, (int)Cin, N, (int)H, (int)W, k, stride,
                                                                          pad, (int)Ho, (int)Wo, n0, (int)g);
    CG_CUDA_CHECK_LAUNCH(ctx, "im2col_kernel");
    return CG_OK;
}

/* dx[c, n0 + nl, h, w] (+)= sum_{u, v} dcol[(c k + u) k + v, nl Ho Wo + i Wo + j]
 *                         over i = (h + p - u) / s, j = (w + p - v) / s when exact and in range.
 * Grid: y over the channels c, x over (nl, h, w); 32-bit index arithmetic as im2col's. */
template <typename T, int S>
__global__ void col2im_kernel(T *__restrict__ dx, const T *__restrict__ dcol, int Cin, int64_t N, int H, int W, int k,
                              int s_rt, int pad, int Ho, int Wo, int64_t n0, int g, int set) {
    const int s = S ? S : s_rt;   /* S = 1, 2 compiled: the tap tests are shifts, not divisions */
    int HW = H * W, HoWo = Ho * Wo, cols = g * HoWo, per = g * HW;
    for (int c = blockIdx.y; c < Cin; c += gridDim.y) {
        T *dxc = dx + ((int64_t)c * N + n0) * HW;
        const T *dc = dcol + (int64_t)c * k * k * cols;
        for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < per; e += gridDim.x * blockDim.x) {
            int nl = e / HW, hw = e - nl * HW, h = hw / W, w = hw - h * W;
            const T *dn = dc + nl * HoWo;
            float acc = 0.0f;
            for (int u = 0; u < k; u++) {
                int th = h + pad - u;
                if (th < 0) break;   /* th only falls as u grows */
                int i = th / s;
                if (i * s != th || i >= Ho) continue;
                for (int v = 0; v < k; v++) {
                    int tw = w + pad - v;
                    if (tw < 0) break;
                    int j = tw / s;
                    if (j * s != tw || j >= Wo) continue;
                    acc += ldf(dn[(u * k + v) * cols + i * Wo + j]);
                }
            }
            put_grad(dxc[e], acc, set);
        }
    }
}

static int conv_dims(int64_t Cin, int64_t N, int64_t H, int64_t W, int64_t Cout, int k, int stride, int pad,
                     int64_t *Ho, int64_t *Wo) {
    CG_CUDA_ARG(Cin >= 1 && N >= 0 && H >= 1 && W >= 1 && Cout >= 1 && k >= 1 && stride >= 1 && pad >= 0,
                "Cin=%lld N=%lld H=%lld W=%lld Cout=%lld k=%d stride=%d pad=%d", (long long)Cin, (long long)N,
                (long long)H, (long long)W, (long long)Cout, k, stride, pad);
    *Ho = (H + 2 * pad - k) / stride + 1;
    *Wo = (W + 2 * pad - k) / stride + 1;
    CG_CUDA_ARG(H + 2 * pad >= k && W + 2 * pad >= k, "kernel %d larger than the padded %lldx%lld input", k,
                (long long)H, (long long)W);
    /* the kernels' 32-bit index arithmetic (their comment) */
    CG_CUDA_ARG(H * W <= (1LL << 28) && Cin * k * k <= (1LL << 28), "a %lldx%lld input with %lld x %dx%d taps is beyond "
                "the kernels' 32-bit indexing", (long long)H, (long long)W, (long long)Cin, k, k);
    return CG_OK;
}

extern "C" size_t cg_cuda_conv2d_scratch_bytes(cg_precision p, int64_t Cin, int64_t H, int64_t W, int k, int stride,
                                               int pad) {
    if (k == 1 && stride == 1 && pad == 0) return 0;
    int64_t Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
    if (Ho < 1 || Wo < 1) return 0;
    /* backward: col + dcol for one image, each padded to 256 bytes */
    return 2 * cg_align_up((size_t)(Cin * k * k * Ho * Wo) * cg_prec_size(p), 256);
}

template <typename T>
static int conv_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *w, const void *b,
                        int64_t Cin, int64_t N, int64_t H, int64_t W, int64_t Cout, int k, int stride, int pad,
                        int64_t Ho, int64_t Wo) {
    int64_t HoWo = Ho * Wo, M = N * HoWo, KK = Cin * k * k;
    size_t es = sizeof(T);
    if (b) CG_TRY(cg_cuda_fill_rows(ctx, p, y, b, Cout, M));
    float beta = b ? 1.0f : 0.0f;
    if (k == 1 && stride == 1 && pad == 0)
        return cg_cuda_gemm(ctx, p, 0, 0, Cout, M, Cin, 1.0f, w, Cin, x, M, beta, y, M, 0);
    size_t per = cg_align_up((size_t)(KK * HoWo) * es, 256);
    CG_SCRATCH_NEED(ctx, per, "conv2d forward (one image of im2col columns)");
    int64_t g = (int64_t)(ctx->scratch_bytes / per);
    if (g > N) g = N;
    T *col = (T *)ctx->scratch;
    for (int64_t n0 = 0; n0 < N; n0 += g) {
        int64_t gn = N - n0 < g ? N - n0 : g, cols = gn * HoWo;
        CG_TRY(im2col<T>(ctx, col, (const T *)x, Cin, N, H, W, k, stride, pad, Ho, Wo, n0, gn));
        CG_TRY(cg_cuda_gemm(ctx, p, 0, 0, Cout, cols, KK, 1.0f, w, KK, col, cols, beta, (char *)y + (size_t)(n0 * HoWo) * es,
                            M, 0));
    }
    return CG_OK;
}

extern "C" int cg_cuda_conv2d_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *w,
                                      const void *b, int64_t Cin, int64_t N, int64_t H, int64_t W, int64_t Cout, int k,
                                      int stride, int pad) {
    CG_CHECK_PREC(p);
    int64_t Ho = 0, Wo = 0;
    CG_TRY(conv_dims(Cin, N, H, W, Cout, k, stride, pad, &Ho, &Wo));
    if (N == 0) return CG_OK;
    if (p == CG_PREC_BF16) return conv_forward<bf16>(ctx, p, y, x, w, b, Cin, N, H, W, Cout, k, stride, pad, Ho, Wo);
    return conv_forward<float>(ctx, p, y, x, w, b, Cin, N, H, W, Cout, k, stride, pad, Ho, Wo);
}

template <typename T>
static int conv_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, float *dw, float *db, const void *dy,
                         const void *x, const void *w, int64_t Cin, int64_t N, int64_t H, int64_t W, int64_t Cout,
                         int k, int stride, int pad, int64_t Ho, int64_t Wo) {
    int64_t HoWo = Ho * Wo, M = N * HoWo, KK = Cin * k * k;
    size_t es = sizeof(T);
    /* row sums run (and finish, in stream order) before the loop below reuses the scratch */
    if (db) CG_TRY(cg_cuda_rowsum_acc(ctx, p, db, dy, Cout, M));
    if (k == 1 && stride == 1 && pad == 0) {
        CG_TRY(cg_cuda_gemm(ctx, p, 0, 1, Cout, Cin, M, 1.0f, dy, M, x, M, 1.0f, dw, Cin, 1));
        if (dx)
            CG_TRY(cg_cuda_gemm(ctx, p, 1, 0, Cin, M, Cout, 1.0f, w, Cin, dy, M, mode == CG_GRAD_SET ? 0.0f : 1.0f, dx, M,
                                0));
        return CG_OK;
    }
    size_t per = cg_align_up((size_t)(KK * HoWo) * es, 256);
    int nbuf = dx ? 2 : 1;
    CG_SCRATCH_NEED(ctx, per * nbuf, "conv2d backward (one image of im2col columns)");
    int64_t g = (int64_t)(ctx->scratch_bytes / (per * nbuf));
    if (g > N) g = N;
    T *col = (T *)ctx->scratch;
    T *dcol = (T *)((char *)ctx->scratch + cg_align_up((size_t)(g * KK * HoWo) * es, 256));
    for (int64_t n0 = 0; n0 < N; n0 += g) {
        int64_t gn = N - n0 < g ? N - n0 : g, cols = gn * HoWo;
        const char *dyg = (const char *)dy + (size_t)(n0 * HoWo) * es;
        CG_TRY(im2col<T>(ctx, col, (const T *)x, Cin, N, H, W, k, stride, pad, Ho, Wo, n0, gn));
        CG_TRY(cg_cuda_gemm(ctx, p, 0, 1, Cout, KK, cols, 1.0f, dyg, M, col, cols, 1.0f, dw, KK, 1));
        if (dx) {
            CG_TRY(cg_cuda_gemm(ctx, p, 1, 0, KK, cols, Cout, 1.0f, w, KK, dyg, M, 0.0f, dcol, cols, 0));
            dim3 cgrid = cg_rows_grid(Cin, gn * H * W);
#define COL2IM(S) col2im_kernel<T, S><<<cgrid, 256, 0, ctx->stream>>>((T *)dx, dcol, (int)Cin, N, (int)H, (int)W, k, \
                                                                       stride, pad, (int)Ho, (int)Wo, n0, (int)gn, (int)mode)
            if (stride == 1) COL2IM(1);
            else if (stride == 2) COL2IM(2);
            else COL2IM(0);
#undef COL2IM
            CG_CUDA_CHECK_LAUNCH(ctx, "col2im_kernel");
        }
    }
    return CG_OK;
}

extern "C" int cg_cuda_conv2d_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, float *dw, float *db,
                                       const void *dy, const void *x, const void *w, int64_t Cin, int64_t N,
                                       int64_t H, int64_t W, int64_t Cout, int k, int stride, int pad) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(dw != NULL, "dw is required");
    int64_t Ho = 0, Wo = 0;
    CG_TRY(conv_dims(Cin, N, H, W, Cout, k, stride, pad, &Ho, &Wo));
    if (N == 0) return CG_OK;
    if (p == CG_PREC_BF16)
        return conv_backward<bf16>(ctx, p, mode, dx, dw, db, dy, x, w, Cin, N, H, W, Cout, k, stride, pad, Ho, Wo);
    return conv_backward<float>(ctx, p, mode, dx, dw, db, dy, x, w, Cin, N, H, W, Cout, k, stride, pad, Ho, Wo);
}

/* ================================================================ depthwise conv2d
 *
 * Stride 1, pad p = k/2, odd k <= 15; each (c, n) plane is independent:
 * Forward:   y[c,n,h,w]   = b[c] + sum_{u,v} w[c,u,v] x[c, n, h+u-p, w+v-p]
 * Backward:  dx[c,n,h,w] += sum_{u,v} w[c,u,v] dy[c, n, h-u+p, w-v+p]
 *                         = sum_{u,v} wf[c,u,v] dy[c, n, h+u-p, w+v-p],  wf[i] = w[k k - 1 - i]
 *                           (the forward kernel with the flipped filter, accumulating or not)
 *            dw[c,u,v]   += sum_{n,h,w} dy[c,n,h,w] x[c, n, h+u-p, w+v-p]
 *            db[c]       += sum_{n,h,w} dy[c,n,h,w]
 * Two kernel families. The whole-plane kernels (further below) serve k = 3, 5, 7 whenever a
 * padded plane fits in shared memory (every StarNet plane). The tile kernels here serve the rest
 * (larger planes, other k) and the benchmark's comparison (cg_cuda_set_dw_planes(ctx, 0)):
 * Forward/dx: a block computes an 8 x 32 tile of one plane, one output per thread, from a
 * zero-padded (8 + k - 1) x (32 + k - 1) input tile in shared memory (a warp reads a row:
 * consecutive words, no bank conflicts). The filters are in shared memory too.
 * dw, db: block (c, part) walks the tiles of its planes; each thread keeps k*k + 1 running sums
 * in registers (k = 3, 5, 7 are compiled with unrolled loops; other k take a generic kernel that
 * makes one pass per filter tap), then a block reduction writes one partial per block; a final
 * kernel adds the partials of a channel in order. y must not alias x.
 */

#define DW_KMAX 15

/* a DW_TH x DW_TW = 8 x 32 tile of one plane per block (an H200 ran it at 281 GB/s on 56x56
 * planes, 143 / 72 GB/s on 14x14 / 7x7: the whole-plane kernels replace it there) */
#define DW_TW 32
#define DW_TH 8

template <typename T, int KT>
__global__ void __launch_bounds__(CG_BLOCK)
dw_fwd_kernel(T *__restrict__ y, const T *__restrict__ x, const T *__restrict__ w, const T *__restrict__ b, int64_t N,
              int H, int W, int k_rt, int flip, int accumulate) {
    const int k = KT ? KT : k_rt, pad = k / 2;
    __shared__ float xs[(DW_TH + DW_KMAX - 1) * (DW_TW + DW_KMAX - 1)];
    __shared__ float wsh[DW_KMAX * DW_KMAX];
    int64_t plane = blockIdx.x, c = plane / N;
    int w0 = blockIdx.y * DW_TW, h0 = blockIdx.z * DW_TH;
    int tx = threadIdx.x % DW_TW, ty = threadIdx.x / DW_TW;
    const int sw = DW_TW + k - 1, sh = DW_TH + k - 1;
    const T *xp = x + plane * (int64_t)H * W;
    for (int i = threadIdx.x; i < sh * sw; i += CG_BLOCK) {
        int r = i / sw, q = i % sw, hh = h0 - pad + r, ww = w0 - pad + q;
        xs[i] = (hh >= 0 && hh < H && ww >= 0 && ww < W) ? ldf(xp[(int64_t)hh * W + ww]) : 0.0f;
    }
    for (int i = threadIdx.x; i < k * k; i += CG_BLOCK) wsh[i] = ldf(w[c * k * k + (flip ? k * k - 1 - i : i)]);
    __syncthreads();
    int h = h0 + ty, wq = w0 + tx;
    if (h < H && wq < W) {
        float acc = b ? ldf(b[c]) : 0.0f;
#pragma unroll
        for (int u = 0; u < (KT ? KT : DW_KMAX); u++) {
            if (!KT && u >= k) break;
#pragma unroll
            for (int v = 0; v < (KT ? KT : DW_KMAX); v++) {
                if (!KT && v >= k) break;
                acc += wsh[u * k + v] * xs[(ty + u) * sw + tx + v];
            }
        }
        T *o = y + plane * (int64_t)H * W + (int64_t)h * W + wq;
        *o = stf<T>(accumulate ? ldf(*o) + acc : acc);
    }
}

/* the block's KK + 1 running sums (one set per thread) added over the block, in a fixed order:
 * each warp's by shuffles, then the warps' in order; out[t] = the block's sum t */
template <int KK>
__device__ __forceinline__ void dw_wgrad_block_store(const float (&acc)[KK + 1], float (*red)[KK + 1],
                                                     float *__restrict__ out) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
    for (int t = 0; t <= KK; t++) {
        float s = warp_sum(acc[t]);
        if (lane == 0) red[warp][t] = s;
    }
    __syncthreads();
    for (int t = threadIdx.x; t <= KK; t += CG_BLOCK) {
        float s = 0.0f;
        for (int q = 0; q < CG_WARPS; q++) s += red[q][t];
        out[t] = s;
    }
}

/* part[(c * P + pp) * (k k + 1) + t] = sum over the block's planes of dy * shifted x (t < k k), sum dy (t = k k) */
template <typename T, int KT>
__global__ void __launch_bounds__(CG_BLOCK)
dw_wgrad_kernel(const T *__restrict__ dy, const T *__restrict__ x, int64_t N, int H, int W, int64_t P, int64_t nper,
                float *__restrict__ part) {
    constexpr int K = KT, KK = KT * KT, pad = KT / 2, sw = DW_TW + KT - 1, sh = DW_TH + KT - 1;
    __shared__ float xs[sh * sw];
    __shared__ float red[CG_WARPS][KK + 1];
    int64_t c = blockIdx.x / P, pp = blockIdx.x % P;
    int64_t n0 = pp * nper, n1 = n0 + nper < N ? n0 + nper : N;
    int tx = threadIdx.x % DW_TW, ty = threadIdx.x / DW_TW;
    float acc[KK + 1];
#pragma unroll
    for (int t = 0; t <= KK; t++) acc[t] = 0.0f;
    for (int64_t n = n0; n < n1; n++) {
        const T *xp = x + (c * N + n) * (int64_t)H * W, *gp = dy + (c * N + n) * (int64_t)H * W;
        for (int h0 = 0; h0 < H; h0 += DW_TH)
            for (int w0 = 0; w0 < W; w0 += DW_TW) {
                for (int i = threadIdx.x; i < sh * sw; i += CG_BLOCK) {
                    int r = i / sw, q = i % sw, hh = h0 - pad + r, ww = w0 - pad + q;
                    xs[i] = (hh >= 0 && hh < H && ww >= 0 && ww < W) ? ldf(xp[(int64_t)hh * W + ww]) : 0.0f;
                }
                __syncthreads();
                int h = h0 + ty, wq = w0 + tx;
                if (h < H && wq < W) {
                    float g = ldf(gp[(int64_t)h * W + wq]);
                    acc[KK] += g;
#pragma unroll
                    for (int u = 0; u < K; u++)
#pragma unroll
                        for (int v = 0; v < K; v++) acc[u * K + v] += g * xs[(ty + u) * sw + tx + v];
                }
                __syncthreads();  /* before the next tile overwrites xs */
            }
    }
    dw_wgrad_block_store<KK>(acc, red, part + (c * P + pp) * (KK + 1));
}

/* any odd k: one pass over the block's planes per filter tap t (t = k k: the bias sum) */
template <typename T>
__global__ void __launch_bounds__(CG_BLOCK)
dw_wgrad_generic_kernel(const T *__restrict__ dy, const T *__restrict__ x, int64_t N, int H, int W, int k, int64_t P,
                        int64_t nper, float *__restrict__ part) {
    __shared__ float shm[CG_WARPS];
    int pad = k / 2, KK = k * k;
    int64_t c = blockIdx.x / P, pp = blockIdx.x % P;
    int64_t n0 = pp * nper, n1 = n0 + nper < N ? n0 + nper : N, HW = (int64_t)H * W;
    for (int t = 0; t <= KK; t++) {
        int u = t / k, v = t % k;
        float s = 0.0f;
        for (int64_t n = n0; n < n1; n++) {
            const T *xp = x + (c * N + n) * HW, *gp = dy + (c * N + n) * HW;
            for (int64_t i = threadIdx.x; i < HW; i += CG_BLOCK) {
                float g = ldf(gp[i]);
                if (t == KK) {
                    s += g;
                } else {
                    int64_t h = i / W + u - pad, w = i % W + v - pad;
                    if (h >= 0 && h < H && w >= 0 && w < W) s += g * ldf(xp[h * W + w]);
                }
            }
        }
        s = block_sum(s, shm);
        if (threadIdx.x == 0) part[(c * P + pp) * (KK + 1) + t] = s;
    }
}

/* dw[c, t] += sum_p part[c, p, t] (t < k k) ; db[c] += sum_p part[c, p, k k] */
__global__ void dw_wgrad_finalize_kernel(float *__restrict__ dw, float *__restrict__ db, const float *__restrict__ part,
                                         int64_t C, int64_t P, int KK) {
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= C * (KK + 1)) return;
    int64_t c = idx / (KK + 1);
    int t = (int)(idx % (KK + 1));
    double s = 0.0;
    for (int64_t p = 0; p < P; p++) s += (double)part[(c * P + p) * (KK + 1) + t];
    if (t < KK) dw[c * KK + t] += (float)s;
    else if (db) db[c] += (float)s;
}

/* ---------------------------------------------------------------- whole-plane kernels (k = 3, 5, 7)
 *
 * The tile kernels above read each input 49 times from shared memory (k = 7), one output per
 * thread, and a 8x32 tile reloads a halo twice its size: on an H200 they moved 115-281 GB/s
 * (docs/cuda.md). These hold whole zero-padded planes in (dynamic) shared memory, PL planes of
 * one channel per block, and give each thread DW_R = 4 neighbouring outputs of a row: per filter
 * row it reads the 4 + k - 1 inputs it needs with 16-byte loads (3 for k = 7) and does 4 k
 * multiply-adds, so shared-memory traffic per output falls from k*k words to k*(4+k-1)/4 (49 ->
 * 17.5 at k = 7). The filter taps live in registers (one channel per block).
 *
 * Layout of a block's shared memory: PL planes of SH = H + k - 1 rows of SW floats; row r,
 * column q holds x(r - k/2, q - k/2), zero outside the plane. SW = 4 * WR + k - 1 rounded up to a
 * multiple of 4 (WR = ceil(W / 4) groups of 4 outputs), so every row starts 16-byte aligned and
 * the last group's loads stay inside the row (they read zeros past W + k - 1).
 * Forward and dx add the taps in the tile kernels' order (bias, then u-major, v-minor), so both
 * families give the same bits; dw/db sum over the positions in another order (partials per block,
 * dw_wgrad_block_store, then dw_wgrad_finalize_kernel as above). */

#define DW_R 4                          /* outputs per thread, along a row */
#define DW_PLANE_SMEM (48 * 1024)       /* bytes of shared memory (static + dynamic) a block may use without opt-in */
/* the static shared memory of dw_wgrad_plane_kernel (its per-warp partial sums), which the
 * dynamic planes must leave room for: a launch over the 48 KiB total fails (invalid argument) */
#define DW_WGRAD_RED_BYTES(k) ((size_t)CG_WARPS * ((size_t)(k) * (k) + 1) * sizeof(float))
#define DW_PLANE_ITEMS 1024             /* 4-output groups a block aims for (4 per thread) */

struct dw_plane_geom {
    int SH, SW, WR, PL;  /* rows and row length (floats) of a padded plane; 4-groups per row; planes per block */
    size_t smem;         /* PL padded planes, bytes */
};

/* 1 and the geometry when a padded plane fits in DW_PLANE_SMEM less `reserve` bytes (the kernel's
 * static shared memory); 0 otherwise (the tile kernels) */
static int dw_plane_geom_for(int64_t N, int H, int W, int k, size_t reserve, dw_plane_geom *g) {
    const size_t budget = DW_PLANE_SMEM - reserve;
    g->WR = (W + DW_R - 1) / DW_R;
    g->SW = (g->WR * DW_R + k - 1 + 3) / 4 * 4;
    g->SH = H + k - 1;
    size_t plane = (size_t)g->SH * (size_t)g->SW * sizeof(float);
    if (plane > budget) return 0;
    int64_t groups = (int64_t)H * g->WR;
    int64_t pl = (DW_PLANE_ITEMS + groups - 1) / groups, maxpl = (int64_t)(budget / plane);
    if (pl > maxpl) pl = maxpl;
    if (pl > N) pl = N;
    if (pl < 1) pl = 1;
    g->PL = (int)pl;
    g->smem = (size_t)pl * plane;
    return 1;
}

/* xs = np consecutive planes of xp, zero-padded (layout above); the indices (plane q, row r,
 * column cc) of element i advance with i by the block size, without a division */
template <typename T>
__device__ __forceinline__ void dw_plane_load(float *__restrict__ xs, const T *__restrict__ xp, int np, int H, int W,
                                              int pad, int SH, int SW) {
    const int HW = H * W, total = np * SH * SW, dc = CG_BLOCK % SW, dr = CG_BLOCK / SW;
    int cc = (int)threadIdx.x % SW, r = (int)threadIdx.x / SW, q = 0;
    while (r >= SH) { r -= SH; q++; }
    for (int i = threadIdx.x; i < total; i += CG_BLOCK) {
        int hh = r - pad, ww = cc - pad;
        xs[i] = (hh >= 0 && hh < H && ww >= 0 && ww < W) ? ldf(xp[(int64_t)q * HW + hh * W + ww]) : 0.0f;
        cc += dc;
        r += dr;
        if (cc >= SW) { cc -= SW; r++; }
        while (r >= SH) { r -= SH; q++; }
    }
}

/* xr[0 .. 4 XV) = row[0 .. 4 XV) by 16-byte shared loads (row 16-byte aligned) */
template <int XV>
__device__ __forceinline__ void dw_row_load(float (&xr)[4 * XV], const float *row) {
    const float4 *r4 = (const float4 *)row;
#pragma unroll
    for (int t = 0; t < XV; t++) {
        float4 f = r4[t];
        xr[4 * t] = f.x;
        xr[4 * t + 1] = f.y;
        xr[4 * t + 2] = f.z;
        xr[4 * t + 3] = f.w;
    }
}

/* y (or y += when accumulate, or y = res + s[n] y when res) for PL planes of channel c per block:
 * blockIdx.x = c * G + group */
template <typename T, int K>
__global__ void __launch_bounds__(CG_BLOCK)
dw_fwd_plane_kernel(T *__restrict__ y, const T *__restrict__ x, const T *__restrict__ w, const T *__restrict__ b,
                    int64_t N, int H, int W, int PL, int SW, int flip, int accumulate, const T *__restrict__ res,
                    const float *__restrict__ scale) {
    constexpr int KK = K * K, pad = K / 2, XV = (DW_R + K - 1 + 3) / 4;
    extern __shared__ float4 dw_plane_smem[];
    float *xs = (float *)dw_plane_smem;
    const int64_t G = (N + PL - 1) / PL, c = blockIdx.x / G, n0 = blockIdx.x % G * PL;
    const int np = (int)(N - n0 < PL ? N - n0 : PL), SH = H + K - 1, PS = SH * SW, WR = (W + DW_R - 1) / DW_R,
              HW = H * W, per = H * WR;
    const int64_t base = (c * N + n0) * HW;
    dw_plane_load<T>(xs, x + base, np, H, W, pad, SH, SW);
    float wr[KK];
#pragma unroll
    for (int t = 0; t < KK; t++) wr[t] = ldf(w[c * KK + (flip ? KK - 1 - t : t)]);
    const float bias = b ? ldf(b[c]) : 0.0f;
    __syncthreads();
    for (int it = threadIdx.x; it < np * per; it += CG_BLOCK) {
        int q = it / per, rem = it - q * per, h = rem / WR, w0 = (rem - h * WR) * DW_R;
        const float *row = xs + q * PS + h * SW + w0;
        float acc[DW_R];
#pragma unroll
        for (int r = 0; r < DW_R; r++) acc[r] = bias;
#pragma unroll
        for (int u = 0; u < K; u++) {
            float xr[4 * XV];
            dw_row_load<XV>(xr, row + u * SW);
#pragma unroll
            for (int v = 0; v < K; v++)
#pragma unroll
                for (int r = 0; r < DW_R; r++) acc[r] += wr[u * K + v] * xr[r + v];
        }
        int64_t off = base + (int64_t)q * HW + h * W + w0;
        T *o = y + off;
        if (res) {
            const float s = scale ? scale[n0 + q] : 1.0f;
#pragma unroll
            for (int r = 0; r < DW_R; r++)
                if (w0 + r < W) o[r] = stf<T>(ldf(res[off + r]) + s * acc[r]);
        } else {
#pragma unroll
            for (int r = 0; r < DW_R; r++)
                if (w0 + r < W) o[r] = stf<T>(accumulate ? ldf(o[r]) + acc[r] : acc[r]);
        }
    }
}

/* part[(c * P + pp) * (k k + 1) + t]: block (c, pp) over its planes [pp nper, (pp + 1) nper), PL at a time */
template <typename T, int K>
__global__ void __launch_bounds__(CG_BLOCK)
dw_wgrad_plane_kernel(const T *__restrict__ dy, const T *__restrict__ x, int64_t N, int H, int W, int PL, int SW,
                      int64_t P, int64_t nper, float *__restrict__ part) {
    constexpr int KK = K * K, pad = K / 2, XV = (DW_R + K - 1 + 3) / 4;
    extern __shared__ float4 dw_plane_smem[];
    float *xs = (float *)dw_plane_smem;
    __shared__ float red[CG_WARPS][KK + 1];   /* DW_WGRAD_RED_BYTES(K) */
    const int64_t c = blockIdx.x / P, pp = blockIdx.x % P, n0 = pp * nper, n1 = n0 + nper < N ? n0 + nper : N;
    const int SH = H + K - 1, PS = SH * SW, WR = (W + DW_R - 1) / DW_R, HW = H * W, per = H * WR;
    float acc[KK + 1];
#pragma unroll
    for (int t = 0; t <= KK; t++) acc[t] = 0.0f;
    for (int64_t nb = n0; nb < n1; nb += PL) {
        const int np = (int)(n1 - nb < PL ? n1 - nb : PL);
        const int64_t base = (c * N + nb) * HW;
        dw_plane_load<T>(xs, x + base, np, H, W, pad, SH, SW);
        __syncthreads();
        for (int it = threadIdx.x; it < np * per; it += CG_BLOCK) {
            int q = it / per, rem = it - q * per, h = rem / WR, w0 = (rem - h * WR) * DW_R;
            const T *g = dy + base + (int64_t)q * HW + h * W + w0;
            const float *row = xs + q * PS + h * SW + w0;
            float gr[DW_R];
#pragma unroll
            for (int r = 0; r < DW_R; r++) gr[r] = w0 + r < W ? ldf(g[r]) : 0.0f;
#pragma unroll
            for (int r = 0; r < DW_R; r++) acc[KK] += gr[r];
#pragma unroll
            for (int u = 0; u < K; u++) {
                float xr[4 * XV];
                dw_row_load<XV>(xr, row + u * SW);
#pragma unroll
                for (int v = 0; v < K; v++)
#pragma unroll
                    for (int r = 0; r < DW_R; r++) acc[u * K + v] += gr[r] * xr[r + v];
            }
        }
        __syncthreads();  /* before the next planes overwrite xs */
    }
    dw_wgrad_block_store<KK>(acc, red, part + (c * P + pp) * (KK + 1));
}

static int dw_check(int64_t C, int64_t N, int64_t H, int64_t W, int k) {
    CG_CUDA_ARG(C >= 1 && N >= 0 && H >= 1 && W >= 1 && k >= 1 && k % 2 == 1 && k <= DW_KMAX,
                "C=%lld N=%lld H=%lld W=%lld k=%d (odd k <= %d)", (long long)C, (long long)N, (long long)H,
                (long long)W, k, DW_KMAX);
    CG_CUDA_ARG(C * N <= 0x7fffffffLL && (W + 7) / 8 <= 65535 && (H + 7) / 8 <= 65535 &&
                    H * W <= 0x7fffffffLL,
                "plane count or size beyond the grid limits");
    return CG_OK;
}

/* the whole-plane kernels' geometry when they serve (C, N, H, W, k) on ctx, else 0; `reserve`:
 * the kernel's static shared memory (0 forward, DW_WGRAD_RED_BYTES(k) weight gradient) */
static int dw_use_planes(const cg_cuda_ctx *ctx, int64_t N, int H, int W, int k, size_t reserve, dw_plane_geom *g) {
    return !ctx->dw_tiles && (k == 3 || k == 5 || k == 7) && dw_plane_geom_for(N, H, W, k, reserve, g);
}

/* the whole-plane forward (dw_use_planes said yes) */
template <typename T>
static int dw_forward_planes(cg_cuda_ctx *ctx, const dw_plane_geom &g, T *y, const T *x, const T *w, const T *b,
                             int64_t C, int64_t N, int H, int W, int k, int flip, int accumulate, const T *res,
                             const float *scale) {
    int64_t blocks = C * ((N + g.PL - 1) / g.PL);
    CG_CUDA_ARG(blocks <= 0x7fffffffLL, "depthwise conv: %lld blocks beyond the grid limit", (long long)blocks);
    dim3 grid((unsigned int)blocks);
    switch (k) {
    case 3: dw_fwd_plane_kernel<T, 3><<<grid, CG_BLOCK, g.smem, ctx->stream>>>(y, x, w, b, N, H, W, g.PL, g.SW, flip, accumulate, res, scale); break;
    case 5: dw_fwd_plane_kernel<T, 5><<<grid, CG_BLOCK, g.smem, ctx->stream>>>(y, x, w, b, N, H, W, g.PL, g.SW, flip, accumulate, res, scale); break;
    default: dw_fwd_plane_kernel<T, 7><<<grid, CG_BLOCK, g.smem, ctx->stream>>>(y, x, w, b, N, H, W, g.PL, g.SW, flip, accumulate, res, scale); break;
    }
    CG_CUDA_CHECK_LAUNCH(ctx, res ? "dw_fwd_plane_kernel(residual)" : "dw_fwd_plane_kernel");
    return CG_OK;
}

template <typename T>
static int dw_forward_any(cg_cuda_ctx *ctx, T *y, const T *x, const T *w, const T *b, int64_t C, int64_t N, int H,
                          int W, int k, int flip, int accumulate) {
    dw_plane_geom g;
    if (dw_use_planes(ctx, N, H, W, k, 0, &g))
        return dw_forward_planes<T>(ctx, g, y, x, w, b, C, N, H, W, k, flip, accumulate, (const T *)NULL, NULL);
    dim3 grid((unsigned int)(C * N), (unsigned int)((W + DW_TW - 1) / DW_TW), (unsigned int)((H + DW_TH - 1) / DW_TH));
    switch (k) {
    case 3: dw_fwd_kernel<T, 3><<<grid, CG_BLOCK, 0, ctx->stream>>>(y, x, w, b, N, H, W, k, flip, accumulate); break;
    case 5: dw_fwd_kernel<T, 5><<<grid, CG_BLOCK, 0, ctx->stream>>>(y, x, w, b, N, H, W, k, flip, accumulate); break;
    case 7: dw_fwd_kernel<T, 7><<<grid, CG_BLOCK, 0, ctx->stream>>>(y, x, w, b, N, H, W, k, flip, accumulate); break;
    default: dw_fwd_kernel<T, 0><<<grid, CG_BLOCK, 0, ctx->stream>>>(y, x, w, b, N, H, W, k, flip, accumulate); break;
    }
    CG_CUDA_CHECK_LAUNCH(ctx, "dw_fwd_kernel");
    return CG_OK;
}

extern "C" int cg_cuda_dwconv2d_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *w,
                                        const void *b, int64_t C, int64_t N, int64_t H, int64_t W, int k) {
    CG_CHECK_PREC(p);
    CG_TRY(dw_check(C, N, H, W, k));
    if (N == 0) return CG_OK;
    if (p == CG_PREC_BF16)
        return dw_forward_any<bf16>(ctx, (bf16 *)y, (const bf16 *)x, (const bf16 *)w, (const bf16 *)b, C, N, (int)H,
                                    (int)W, k, 0, 0);
    return dw_forward_any<float>(ctx, (float *)y, (const float *)x, (const float *)w, (const float *)b, C, N, (int)H,
                                 (int)W, k, 0, 0);
}

extern "C" int cg_cuda_dwconv2d_forward_residual(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *w,
                                                 const void *b, const void *res, const float *scale, int64_t C,
                                                 int64_t N, int64_t H, int64_t W, int k) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(res != NULL && y != res && y != x, "res is required; y must not alias x or res");
    CG_TRY(dw_check(C, N, H, W, k));
    if (N == 0) return CG_OK;
    dw_plane_geom g;
    if (!dw_use_planes(ctx, N, (int)H, (int)W, k, 0, &g)) {
        CG_TRY(cg_cuda_dwconv2d_forward(ctx, p, y, x, w, b, C, N, H, W, k));
        return cg_cuda_residual_forward(ctx, p, y, res, y, scale, C, N, H * W);
    }
    if (p == CG_PREC_BF16)
        return dw_forward_planes<bf16>(ctx, g, (bf16 *)y, (const bf16 *)x, (const bf16 *)w, (const bf16 *)b, C, N, (int)H,
                                       (int)W, k, 0, 0, (const bf16 *)res, scale);
    return dw_forward_planes<float>(ctx, g, (float *)y, (const float *)x, (const float *)w, (const float *)b, C, N, (int)H,
                                    (int)W, k, 0, 0, (const float *)res, scale);
}

/* partials per channel: at most 64 groups of planes (fewer when the scratch is small) */
static int64_t dw_parts(int64_t N, size_t avail, int64_t C, int k) {
    int64_t P = N < 64 ? N : 64;
    int64_t maxP = (int64_t)(avail / ((size_t)C * (k * k + 1) * sizeof(float)));
    if (P > maxP) P = maxP;
    return P;
}

extern "C" size_t cg_cuda_dwconv2d_scratch_bytes(int64_t C, int64_t N, int k) {
    int64_t P = N < 64 ? N : 64;
    if (P < 1) P = 1;
    return (size_t)(C * P * (k * k + 1)) * sizeof(float);
}

template <typename T>
static int dw_backward(cg_cuda_ctx *ctx, cg_grad_mode mode, T *dx, float *dw, float *db, const T *dy, const T *x, const T *w, int64_t C,
                       int64_t N, int H, int W, int k) {
    if (dx) CG_TRY(dw_forward_any<T>(ctx, dx, dy, w, (const T *)NULL, C, N, H, W, k, 1, mode == CG_GRAD_ADD));
    int64_t P = dw_parts(N, ctx->scratch_bytes, C, k);
    CG_CUDA_ARG(P >= 1, "depthwise conv backward needs %zu bytes of scratch, the context has %zu",
                (size_t)C * (k * k + 1) * sizeof(float), ctx->scratch_bytes);
    dw_plane_geom g;
    const int planes = dw_use_planes(ctx, N, H, W, k, DW_WGRAD_RED_BYTES(k), &g);
    if (planes && P > (N + g.PL - 1) / g.PL) P = (N + g.PL - 1) / g.PL;   /* a block: at least PL planes */
    int64_t nper = (N + P - 1) / P;
    if (planes && nper > g.PL) nper = (nper + g.PL - 1) / g.PL * g.PL;   /* whole loads of PL planes */
    P = (N + nper - 1) / nper;
    CG_CUDA_ARG(C * P <= 0x7fffffffLL, "C=%lld too many channels", (long long)C);
    float *part = (float *)ctx->scratch;
    unsigned int grid = (unsigned int)(C * P);
    if (planes) {
        switch (k) {
        case 3: dw_wgrad_plane_kernel<T, 3><<<grid, CG_BLOCK, g.smem, ctx->stream>>>(dy, x, N, H, W, g.PL, g.SW, P, nper, part); break;
        case 5: dw_wgrad_plane_kernel<T, 5><<<grid, CG_BLOCK, g.smem, ctx->stream>>>(dy, x, N, H, W, g.PL, g.SW, P, nper, part); break;
        default: dw_wgrad_plane_kernel<T, 7><<<grid, CG_BLOCK, g.smem, ctx->stream>>>(dy, x, N, H, W, g.PL, g.SW, P, nper, part); break;
        }
        CG_CUDA_CHECK_LAUNCH(ctx, "dw_wgrad_plane_kernel");
        dw_wgrad_finalize_kernel<<<cg_grid(C * (k * k + 1), 256), 256, 0, ctx->stream>>>(dw, db, part, C, P, k * k);
        CG_CUDA_CHECK_LAUNCH(ctx, "dw_wgrad_finalize_kernel");
        return CG_OK;
    }
    switch (k) {
    case 3: dw_wgrad_kernel<T, 3><<<grid, CG_BLOCK, 0, ctx->stream>>>(dy, x, N, H, W, P, nper, part); break;
    case 5: dw_wgrad_kernel<T, 5><<<grid, CG_BLOCK, 0, ctx->stream>>>(dy, x, N, H, W, P, nper, part); break;
    case 7: dw_wgrad_kernel<T, 7><<<grid, CG_BLOCK, 0, ctx->stream>>>(dy, x, N, H, W, P, nper, part); break;
    default: dw_wgrad_generic_kernel<T><<<grid, CG_BLOCK, 0, ctx->stream>>>(dy, x, N, H, W, k, P, nper, part); break;
    }
    CG_CUDA_CHECK_LAUNCH(ctx, "dw_wgrad_kernel");
    dw_wgrad_finalize_kernel<<<cg_grid(C * (k * k + 1), 256), 256, 0, ctx->stream>>>(dw, db, part, C, P, k * k);
    CG_CUDA_CHECK_LAUNCH(ctx, "dw_wgrad_finalize_kernel");
    return CG_OK;
}

extern "C" int cg_cuda_dwconv2d_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, float *dw, float *db,
                                         const void *dy, const void *x, const void *w, int64_t C, int64_t N, int64_t H,
                                         int64_t W, int k) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(dw != NULL, "dw is required");
    CG_TRY(dw_check(C, N, H, W, k));
    if (N == 0) return CG_OK;
    if (p == CG_PREC_BF16)
        return dw_backward<bf16>(ctx, mode, (bf16 *)dx, dw, db, (const bf16 *)dy, (const bf16 *)x, (const bf16 *)w, C, N,
                                 (int)H, (int)W, k);
    return dw_backward<float>(ctx, mode, (float *)dx, dw, db, (const float *)dy, (const float *)x, (const float *)w, C, N,
                              (int)H, (int)W, k);
}
