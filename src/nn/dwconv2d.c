#include "nn/dwconv2d.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Kernels are compiled twice (AVX2+FMA and baseline x86-64) and picked at load time, so the
 * binary stays portable; other architectures get the plain version. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define CG_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CG_MULTIVERSION
#endif

#define BLK 16  /* outputs of a row kept in registers */

static void check(const char *fn, const cg_tensor *y, const cg_tensor *x, const cg_tensor *w, const cg_tensor *b) {
    CG_REQUIRE_CPU(fn, x);
    CG_REQUIRE_CPU(fn, y);
    CG_REQUIRE_CPU(fn, w);
    if (x->ndim != 4 || !cg_tensor_same_shape(x, y)) cg_tensor_fail(fn, "x and y must be the same 4-d shape");
    if (w->ndim != 4 || w->shape[0] != x->shape[0] || w->shape[1] != 1 || w->shape[2] != w->shape[3] ||
        w->shape[2] % 2 == 0 || w->shape[2] > 15)
        cg_tensor_fail(fn, "weight must be [C, 1, k, k] with odd k <= 15");
    if (b && (b->ndim != 1 || b->shape[0] != x->shape[0])) cg_tensor_fail(fn, "bias must be [C]");
}

/* Padded copy of a plane: rows of `ld` floats, p zero rows/cols around, zeros up to ld. */
typedef struct { int H, W, p, ld, rows; } padinfo;

static padinfo pad_info(int H, int W, int k) {
    padinfo pi;
    pi.H = H; pi.W = W; pi.p = k / 2;
    int wr = (W + BLK - 1) / BLK * BLK;           /* outputs computed in whole blocks */
    pi.ld = wr + 2 * pi.p;
    pi.rows = H + 2 * pi.p;
    return pi;
}

static void pad_plane(float *buf, const float *x, const padinfo *pi) {
    memset(buf, 0, sizeof(float) * (size_t)pi->ld * pi->rows);
    for (int h = 0; h < pi->H; h++) memcpy(buf + (int64_t)(h + pi->p) * pi->ld + pi->p, x + (int64_t)h * pi->W, sizeof(float) * pi->W);
}

/* out[h, j] (+)= b + sum_{u,v} w[u,v] * xp[h+u, j+v] over a padded input; accumulate != 0 adds. */
CG_MULTIVERSION
static void plane_conv(float *restrict out, const float *restrict xp, const float *restrict w, float b, const padinfo *pi,
                       int k, int accumulate) {
    for (int h = 0; h < pi->H; h++) {
        for (int j0 = 0; j0 < pi->W; j0 += BLK) {
            float acc[BLK];
            for (int t = 0; t < BLK; t++) acc[t] = b;
            for (int u = 0; u < k; u++) {
                const float *restrict xr = xp + (int64_t)(h + u) * pi->ld + j0;
                for (int v = 0; v < k; v++) {
                    float wv = w[u * k + v];
                    for (int t = 0; t < BLK; t++) acc[t] += wv * xr[v + t];
                }
            }
            int n = pi->W - j0 < BLK ? pi->W - j0 : BLK;
            float *o = out + (int64_t)h * pi->W + j0;
            if (accumulate)
                for (int t = 0; t < n; t++) o[t] += acc[t];
            else
                for (int t = 0; t < n; t++) o[t] = acc[t];
        }
    }
}

/* dw[u,v] += sum_{h,j} g[h,j] * xp[h+u, j+v]; g padded with zeros to whole blocks (ld gld). */
CG_MULTIVERSION
static void plane_wgrad(double *restrict dw, const float *restrict g, int gld, const float *restrict xp, const padinfo *pi,
                        int k) {
    float acc[15][BLK];
    for (int u = 0; u < k; u++) {
        for (int v = 0; v < k; v++)
            for (int t = 0; t < BLK; t++) acc[v][t] = 0;
        for (int h = 0; h < pi->H; h++) {
            const float *restrict gr = g + (int64_t)h * gld;
            const float *restrict xr = xp + (int64_t)(h + u) * pi->ld;
            for (int j0 = 0; j0 < gld; j0 += BLK)
                for (int v = 0; v < k; v++)
                    for (int t = 0; t < BLK; t++) acc[v][t] += gr[j0 + t] * xr[j0 + v + t];
        }
        for (int v = 0; v < k; v++) {
            float s = 0;
            for (int t = 0; t < BLK; t++) s += acc[v][t];
            dw[u * k + v] += s;
        }
    }
}

void cg_dwconv2d_forward(cg_tensor *y, const cg_tensor *x, const cg_tensor *w, const cg_tensor *b) {
    check("cg_dwconv2d_forward", y, x, w, b);
    int64_t C = x->shape[0], N = x->shape[1];
    int H = (int)x->shape[2], W = (int)x->shape[3], k = (int)w->shape[2];
    int64_t HW = (int64_t)H * W;
    padinfo pi = pad_info(H, W, k);
#pragma omp parallel
    {
        float *buf = cg_xmalloc(sizeof(float) * ((size_t)pi.ld * pi.rows + BLK));
#pragma omp for schedule(static) collapse(2)
        for (int64_t c = 0; c < C; c++)
            for (int64_t n = 0; n < N; n++) {
                pad_plane(buf, x->data + (c * N + n) * HW, &pi);
                plane_conv(y->data + (c * N + n) * HW, buf, w->data + c * k * k, b ? b->data[c] : 0.0f, &pi, k, 0);
            }
        free(buf);
    }
}

void cg_dwconv2d_backward(cg_tensor *dx, cg_tensor *dw, cg_tensor *db, const cg_tensor *dy, const cg_tensor *x,
                          const cg_tensor *w) {
    check("cg_dwconv2d_backward", dy, x, w, db);
    CG_REQUIRE_CPU("cg_dwconv2d_backward", dw);
    if (dx && !cg_tensor_same_shape(dx, x)) cg_tensor_fail("cg_dwconv2d_backward", "dx must have x's shape");
    if (!cg_tensor_same_shape(dw, w)) cg_tensor_fail("cg_dwconv2d_backward", "dw must have w's shape");
    int64_t C = x->shape[0], N = x->shape[1];
    int H = (int)x->shape[2], W = (int)x->shape[3], k = (int)w->shape[2];
    int64_t HW = (int64_t)H * W;
    padinfo pi = pad_info(H, W, k);
    int gld = (W + BLK - 1) / BLK * BLK;
#pragma omp parallel
    {
        float *xbuf = cg_xmalloc(sizeof(float) * ((size_t)pi.ld * pi.rows + BLK));
        float *gbuf = cg_xmalloc(sizeof(float) * ((size_t)pi.ld * pi.rows + BLK));
        float *gflat = cg_xmalloc(sizeof(float) * ((size_t)gld * H + BLK));
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < C; c++) {
            double acc[15 * 15];
            int kk = k * k;
            float wflip[15 * 15];
            for (int i = 0; i < kk; i++) { acc[i] = 0; wflip[i] = w->data[c * kk + kk - 1 - i]; }
            double bsum = 0;
            for (int64_t n = 0; n < N; n++) {
                const float *g = dy->data + (c * N + n) * HW;
                float s = 0;
                for (int64_t i = 0; i < HW; i++) s += g[i];
                bsum += s;
                /* weight gradient: g (zero-padded to whole blocks) against padded x */
                pad_plane(xbuf, x->data + (c * N + n) * HW, &pi);
                memset(gflat, 0, sizeof(float) * (size_t)gld * H);
                for (int h = 0; h < H; h++) memcpy(gflat + (int64_t)h * gld, g + (int64_t)h * W, sizeof(float) * W);
                plane_wgrad(acc, gflat, gld, xbuf, &pi, k);
                /* input gradient: correlation of padded g with the flipped kernel */
                if (dx) {
                    pad_plane(gbuf, g, &pi);
                    plane_conv(dx->data + (c * N + n) * HW, gbuf, wflip, 0.0f, &pi, k, 1);
                }
            }
            float *dwc = dw->data + c * kk;
            for (int i = 0; i < kk; i++) dwc[i] += (float)acc[i];
            if (db) db->data[c] += (float)bsum;
        }
        free(xbuf);
        free(gbuf);
        free(gflat);
    }
}
