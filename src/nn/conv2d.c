#include "nn/conv2d.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "nn/gemm.h"

typedef struct {
    int64_t Cin, N, H, W, Cout, k, Ho, Wo;
} conv_dims;

static conv_dims check_dims(const char *fn, const cg_tensor *y, const cg_tensor *x, const cg_tensor *w, const cg_tensor *b,
                            int stride, int pad) {
    conv_dims d;
    CG_REQUIRE_CPU(fn, x);
    CG_REQUIRE_CPU(fn, w);
    CG_REQUIRE_CPU(fn, y);
    if (x->ndim != 4 || w->ndim != 4 || y->ndim != 4) cg_tensor_fail(fn, "want 4-d x, w, y");
    d.Cin = x->shape[0]; d.N = x->shape[1]; d.H = x->shape[2]; d.W = x->shape[3];
    d.Cout = w->shape[0]; d.k = w->shape[2];
    if (w->shape[1] != d.Cin || w->shape[3] != d.k) cg_tensor_fail(fn, "weight shape does not match Cin=%lld", (long long)d.Cin);
    d.Ho = cg_conv_out_size(d.H, (int)d.k, stride, pad);
    d.Wo = cg_conv_out_size(d.W, (int)d.k, stride, pad);
    if (y->shape[0] != d.Cout || y->shape[1] != d.N || y->shape[2] != d.Ho || y->shape[3] != d.Wo)
        cg_tensor_fail(fn, "output shape must be [%lld, %lld, %lld, %lld]", (long long)d.Cout, (long long)d.N,
                       (long long)d.Ho, (long long)d.Wo);
    if (b && (b->ndim != 1 || b->shape[0] != d.Cout)) cg_tensor_fail(fn, "bias must be [%lld]", (long long)d.Cout);
    return d;
}

void cg_rowsum_acc_cpu(float *db, const float *dy, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
    for (int64_t r = 0; r < rows; r++) {
        const float *p = dy + r * cols;
        float s = 0;
        for (int64_t j = 0; j < cols; j++) s += p[j];
        db[r] += s;
    }
}

/* col[(c*k + u)*k + v][j] for the images n0..n1 (j runs over (n - n0, i, j) of the output). */
static void im2col(float *col, const float *x, const conv_dims *d, int64_t n0, int64_t n1, int stride, int pad) {
    int64_t HoWo = d->Ho * d->Wo, cols = (n1 - n0) * HoWo;
    for (int64_t c = 0; c < d->Cin; c++)
        for (int64_t u = 0; u < d->k; u++)
            for (int64_t v = 0; v < d->k; v++) {
                float *row = col + ((c * d->k + u) * d->k + v) * cols;
                for (int64_t n = n0; n < n1; n++) {
                    const float *plane = x + (c * d->N + n) * d->H * d->W;
                    float *out = row + (n - n0) * HoWo;
                    for (int64_t i = 0; i < d->Ho; i++) {
                        int64_t h = i * stride - pad + u;
                        float *o = out + i * d->Wo;
                        if (h < 0 || h >= d->H) { memset(o, 0, (size_t)d->Wo * sizeof(float)); continue; }
                        const float *src = plane + h * d->W;
                        for (int64_t j = 0; j < d->Wo; j++) {
                            int64_t w = j * stride - pad + v;
                            o[j] = (w >= 0 && w < d->W) ? src[w] : 0.0f;
                        }
                    }
                }
            }
}

static void col2im_acc(float *dx, const float *col, const conv_dims *d, int64_t n0, int64_t n1, int stride, int pad) {
    int64_t HoWo = d->Ho * d->Wo, cols = (n1 - n0) * HoWo;
    for (int64_t c = 0; c < d->Cin; c++)
        for (int64_t u = 0; u < d->k; u++)
            for (int64_t v = 0; v < d->k; v++) {
                const float *row = col + ((c * d->k + u) * d->k + v) * cols;
                for (int64_t n = n0; n < n1; n++) {
                    float *plane = dx + (c * d->N + n) * d->H * d->W;
                    const float *in = row + (n - n0) * HoWo;
                    for (int64_t i = 0; i < d->Ho; i++) {
                        int64_t h = i * stride - pad + u;
                        if (h < 0 || h >= d->H) continue;
                        float *dst = plane + h * d->W;
                        const float *g = in + i * d->Wo;
                        for (int64_t j = 0; j < d->Wo; j++) {
                            int64_t w = j * stride - pad + v;
                            if (w >= 0 && w < d->W) dst[w] += g[j];
                        }
                    }
                }
            }
}

/* Images per im2col group: enough columns for an efficient GEMM, enough groups for the threads. */
static int64_t group_size(const conv_dims *d) {
    int64_t HoWo = d->Ho * d->Wo;
    int64_t g = HoWo >= 4096 ? 1 : 4096 / HoWo;
    int nt = omp_get_max_threads();
    int64_t fair = (d->N + nt - 1) / nt;
    if (g > fair) g = fair;
    return g < 1 ? 1 : g;
}

void cg_conv2d_forward(cg_tensor *y, const cg_tensor *x, const cg_tensor *w, const cg_tensor *b, int stride, int pad) {
    conv_dims d = check_dims("cg_conv2d_forward", y, x, w, b, stride, pad);
    int64_t M = d.N * d.Ho * d.Wo;
    /* bias first, then GEMM with beta = 1 */
    for (int64_t o = 0; o < d.Cout; o++) {
        float bv = b ? b->data[o] : 0.0f;
        float *p = y->data + o * M;
        for (int64_t j = 0; j < M; j++) p[j] = bv;
    }
    if (d.k == 1 && stride == 1 && pad == 0) {
        cg_gemm(0, 0, (int)d.Cout, (int)M, (int)d.Cin, 1.0f, w->data, (int)d.Cin, x->data, (int)M, 1.0f, y->data, (int)M);
        return;
    }
    int64_t g = group_size(&d), HoWo = d.Ho * d.Wo, KK = d.Cin * d.k * d.k;
    int64_t ngroups = (d.N + g - 1) / g;
#pragma omp parallel
    {
        float *col = cg_xmalloc((size_t)(KK * g * HoWo) * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (int64_t gi = 0; gi < ngroups; gi++) {
            int64_t n0 = gi * g, n1 = n0 + g < d.N ? n0 + g : d.N, cols = (n1 - n0) * HoWo;
            im2col(col, x->data, &d, n0, n1, stride, pad);
            cg_gemm(0, 0, (int)d.Cout, (int)cols, (int)KK, 1.0f, w->data, (int)KK, col, (int)cols, 1.0f,
                    y->data + n0 * HoWo, (int)M);
        }
        free(col);
    }
}

void cg_conv2d_backward(cg_tensor *dx, cg_tensor *dw, cg_tensor *db, const cg_tensor *dy, const cg_tensor *x,
                        const cg_tensor *w, int stride, int pad) {
    conv_dims d = check_dims("cg_conv2d_backward", dy, x, w, db, stride, pad);
    CG_REQUIRE_CPU("cg_conv2d_backward", dw);
    if (dx && !cg_tensor_same_shape(dx, x)) cg_tensor_fail("cg_conv2d_backward", "dx must have x's shape");
    if (!cg_tensor_same_shape(dw, w)) cg_tensor_fail("cg_conv2d_backward", "dw must have w's shape");
    int64_t M = d.N * d.Ho * d.Wo;
    if (db) cg_rowsum_acc_cpu(db->data, dy->data, d.Cout, M);
    if (d.k == 1 && stride == 1 && pad == 0) {
        /* dW[Cout,Cin] += dY[Cout,M] @ X[Cin,M]^T ; dX[Cin,M] += W^T @ dY */
        cg_gemm(0, 1, (int)d.Cout, (int)d.Cin, (int)M, 1.0f, dy->data, (int)M, x->data, (int)M, 1.0f, dw->data, (int)d.Cin);
        if (dx)
            cg_gemm(1, 0, (int)d.Cin, (int)M, (int)d.Cout, 1.0f, w->data, (int)d.Cin, dy->data, (int)M, 1.0f, dx->data, (int)M);
        return;
    }
    int64_t g = group_size(&d), HoWo = d.Ho * d.Wo, KK = d.Cin * d.k * d.k;
    int64_t ngroups = (d.N + g - 1) / g;
    int nt = omp_get_max_threads();
    float *dw_part = cg_xcalloc((size_t)(nt * d.Cout * KK), sizeof(float));
#pragma omp parallel
    {
        int t = omp_get_thread_num();
        float *col = cg_xmalloc((size_t)(KK * g * HoWo) * sizeof(float));
        float *dcol = dx ? cg_xmalloc((size_t)(KK * g * HoWo) * sizeof(float)) : NULL;
        float *mydw = dw_part + t * d.Cout * KK;
        /* static: which groups a thread sums into its partial dW must not depend on timing, or
         * the rounding of the final sum (and so training) differs from run to run */
#pragma omp for schedule(static)
        for (int64_t gi = 0; gi < ngroups; gi++) {
            int64_t n0 = gi * g, n1 = n0 + g < d.N ? n0 + g : d.N, cols = (n1 - n0) * HoWo;
            const float *dyg = dy->data + n0 * HoWo;
            im2col(col, x->data, &d, n0, n1, stride, pad);
            cg_gemm(0, 1, (int)d.Cout, (int)KK, (int)cols, 1.0f, dyg, (int)M, col, (int)cols, 1.0f, mydw, (int)KK);
            if (dx) {
                cg_gemm(1, 0, (int)KK, (int)cols, (int)d.Cout, 1.0f, w->data, (int)KK, dyg, (int)M, 0.0f, dcol, (int)cols);
                col2im_acc(dx->data, dcol, &d, n0, n1, stride, pad);
            }
        }
        free(col);
        free(dcol);
    }
    int64_t nw = d.Cout * KK;
    for (int t = 0; t < nt; t++)
        for (int64_t i = 0; i < nw; i++) dw->data[i] += dw_part[t * nw + i];
    free(dw_part);
}
