#include "nn/layernorm.h"
#include <math.h>

static void dims(const char *fn, const cg_tensor *x, const cg_tensor *w, const cg_tensor *mean, int64_t *N, int64_t *C) {
    CG_REQUIRE_CPU(fn, x);
    CG_REQUIRE_CPU(fn, w);
    *C = w->shape[0];
    if (w->ndim != 1 || x->ndim < 1 || x->shape[x->ndim - 1] != *C)
        cg_tensor_fail(fn, "x's last dim must equal the %lld weights", (long long)*C);
    *N = cg_tensor_numel(x) / *C;
    if (cg_tensor_numel(mean) != *N) cg_tensor_fail(fn, "mean/rstd must hold %lld rows", (long long)*N);
}

void cg_layernorm_forward(cg_tensor *y, cg_tensor *mean, cg_tensor *rstd, const cg_tensor *x, const cg_tensor *w,
                          const cg_tensor *b, float eps) {
    int64_t N, C;
    dims("cg_layernorm_forward", x, w, mean, &N, &C);
    if (cg_tensor_numel(y) != N * C || cg_tensor_numel(rstd) != N) cg_tensor_fail("cg_layernorm_forward", "y/rstd size");
    const float *wp = w->data, *bp = b ? b->data : NULL;
#pragma omp parallel for schedule(static) if (N * C > 16384)
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x->data + n * C;
        float *yr = y->data + n * C;
        double s = 0;
        for (int64_t c = 0; c < C; c++) s += xr[c];
        float mu = (float)(s / (double)C);
        double v = 0;
        for (int64_t c = 0; c < C; c++) { double d = (double)xr[c] - mu; v += d * d; }
        float rs = (float)(1.0 / sqrt(v / (double)C + (double)eps));
        for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mu) * rs * wp[c] + (bp ? bp[c] : 0.0f);
        mean->data[n] = mu;
        rstd->data[n] = rs;
    }
}

void cg_layernorm_backward(cg_tensor *dx, cg_tensor *dw, cg_tensor *db, const cg_tensor *dy, const cg_tensor *x,
                           const cg_tensor *mean, const cg_tensor *rstd, const cg_tensor *w) {
    int64_t N, C;
    dims("cg_layernorm_backward", x, w, mean, &N, &C);
    if (cg_tensor_numel(dy) != N * C) cg_tensor_fail("cg_layernorm_backward", "dy size");
    const float *wp = w->data, *mu = mean->data, *rs = rstd->data;
    if (dx) {
#pragma omp parallel for schedule(static) if (N * C > 16384)
        for (int64_t n = 0; n < N; n++) {
            const float *xr = x->data + n * C, *gr = dy->data + n * C;
            float *dr = dx->data + n * C;
            float m = mu[n], r = rs[n];
            double sg = 0, sgx = 0;
            for (int64_t c = 0; c < C; c++) {
                float g = gr[c] * wp[c];
                sg += g;
                sgx += (double)g * (xr[c] - m) * r;
            }
            float a = (float)(sg / (double)C), bb = (float)(sgx / (double)C);
            for (int64_t c = 0; c < C; c++) {
                float xh = (xr[c] - m) * r;
                dr[c] += r * (gr[c] * wp[c] - a - xh * bb);
            }
        }
    }
    if (dw || db) {
        int64_t blk = 64, nblk = (C + blk - 1) / blk;
#pragma omp parallel for schedule(static) if (N * C > 16384)
        for (int64_t k = 0; k < nblk; k++) {
            int64_t c0 = k * blk, c1 = c0 + blk < C ? c0 + blk : C;
            float aw[64] = {0}, ab[64] = {0};
            for (int64_t n = 0; n < N; n++) {
                const float *xr = x->data + n * C, *gr = dy->data + n * C;
                float m = mu[n], r = rs[n];
                for (int64_t c = c0; c < c1; c++) {
                    aw[c - c0] += gr[c] * (xr[c] - m) * r;
                    ab[c - c0] += gr[c];
                }
            }
            for (int64_t c = c0; c < c1; c++) {
                if (dw) dw->data[c] += aw[c - c0];
                if (db) db->data[c] += ab[c - c0];
            }
        }
    }
}
