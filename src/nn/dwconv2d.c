#include "nn/dwconv2d.h"

#include <string.h>

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

/* One plane: y = b + sum_{u,v} w[u,v] * shift(x). */
static void plane_forward(float *restrict y, const float *restrict x, const float *restrict w, float b, int H, int W,
                          int k) {
    int p = k / 2;
    for (int h = 0; h < H; h++) {
        float *restrict yr = y + (int64_t)h * W;
        for (int j = 0; j < W; j++) yr[j] = b;
        for (int u = 0; u < k; u++) {
            int hi = h + u - p;
            if (hi < 0 || hi >= H) continue;
            const float *restrict xr = x + (int64_t)hi * W;
            for (int v = 0; v < k; v++) {
                float wv = w[u * k + v];
                int off = v - p;
                int j0 = off < 0 ? -off : 0, j1 = off > 0 ? W - off : W;
                for (int j = j0; j < j1; j++) yr[j] += wv * xr[j + off];
            }
        }
    }
}

void cg_dwconv2d_forward(cg_tensor *y, const cg_tensor *x, const cg_tensor *w, const cg_tensor *b) {
    check("cg_dwconv2d_forward", y, x, w, b);
    int64_t C = x->shape[0], N = x->shape[1];
    int H = (int)x->shape[2], W = (int)x->shape[3], k = (int)w->shape[2];
    int64_t HW = (int64_t)H * W;
#pragma omp parallel for schedule(static) collapse(2)
    for (int64_t c = 0; c < C; c++)
        for (int64_t n = 0; n < N; n++)
            plane_forward(y->data + (c * N + n) * HW, x->data + (c * N + n) * HW, w->data + c * k * k,
                          b ? b->data[c] : 0.0f, H, W, k);
}

void cg_dwconv2d_backward(cg_tensor *dx, cg_tensor *dw, cg_tensor *db, const cg_tensor *dy, const cg_tensor *x,
                          const cg_tensor *w) {
    check("cg_dwconv2d_backward", dy, x, w, db);
    CG_REQUIRE_CPU("cg_dwconv2d_backward", dw);
    if (dx && !cg_tensor_same_shape(dx, x)) cg_tensor_fail("cg_dwconv2d_backward", "dx must have x's shape");
    if (!cg_tensor_same_shape(dw, w)) cg_tensor_fail("cg_dwconv2d_backward", "dw must have w's shape");
    int64_t C = x->shape[0], N = x->shape[1];
    int H = (int)x->shape[2], W = (int)x->shape[3], k = (int)w->shape[2], p = k / 2;
    int64_t HW = (int64_t)H * W;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t c = 0; c < C; c++) {
        double acc[15 * 15];  /* k <= 15 */
        double bsum = 0;
        int kk = k * k;
        for (int i = 0; i < kk; i++) acc[i] = 0;
        const float *wc = w->data + c * kk;
        for (int64_t n = 0; n < N; n++) {
            const float *restrict g = dy->data + (c * N + n) * HW;
            const float *restrict xp = x->data + (c * N + n) * HW;
            float *restrict dxp = dx ? dx->data + (c * N + n) * HW : NULL;
            float s = 0;
            for (int64_t i = 0; i < HW; i++) s += g[i];
            bsum += s;
            for (int h = 0; h < H; h++) {
                const float *restrict gr = g + (int64_t)h * W;
                for (int u = 0; u < k; u++) {
                    int hi = h + u - p;
                    if (hi < 0 || hi >= H) continue;
                    const float *restrict xr = xp + (int64_t)hi * W;
                    float *restrict dxr = dxp ? dxp + (int64_t)hi * W : NULL;
                    for (int v = 0; v < k; v++) {
                        int off = v - p;
                        int j0 = off < 0 ? -off : 0, j1 = off > 0 ? W - off : W;
                        float dot = 0, wv = wc[u * k + v];
                        for (int j = j0; j < j1; j++) dot += gr[j] * xr[j + off];
                        acc[u * k + v] += dot;
                        if (dxr)
                            for (int j = j0; j < j1; j++) dxr[j + off] += wv * gr[j];
                    }
                }
            }
        }
        float *dwc = dw->data + c * kk;
        for (int i = 0; i < kk; i++) dwc[i] += (float)acc[i];
        if (db) db->data[c] += (float)bsum;
    }
}
