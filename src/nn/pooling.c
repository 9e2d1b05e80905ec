#include "nn/pooling.h"

static void check(const char *fn, const cg_tensor *y, const cg_tensor *x) {
    CG_REQUIRE_CPU(fn, x);
    CG_REQUIRE_CPU(fn, y);
    if (x->ndim != 4 || y->ndim != 2 || y->shape[0] != x->shape[1] || y->shape[1] != x->shape[0])
        cg_tensor_fail(fn, "want x [C, N, H, W] and y [N, C]");
}

void cg_avgpool_global_forward(cg_tensor *y, const cg_tensor *x) {
    check("cg_avgpool_global_forward", y, x);
    int64_t C = x->shape[0], N = x->shape[1], HW = x->shape[2] * x->shape[3];
    for (int64_t c = 0; c < C; c++)
        for (int64_t n = 0; n < N; n++) {
            const float *p = x->data + (c * N + n) * HW;
            double s = 0;
            for (int64_t i = 0; i < HW; i++) s += p[i];
            y->data[n * C + c] = (float)(s / (double)HW);
        }
}

void cg_avgpool_global_backward(cg_tensor *dx, const cg_tensor *dy) {
    check("cg_avgpool_global_backward", dy, dx);
    int64_t C = dx->shape[0], N = dx->shape[1], HW = dx->shape[2] * dx->shape[3];
    float inv = 1.0f / (float)HW;
    for (int64_t c = 0; c < C; c++)
        for (int64_t n = 0; n < N; n++) {
            float g = dy->data[n * C + c] * inv;
            float *p = dx->data + (c * N + n) * HW;
            for (int64_t i = 0; i < HW; i++) p[i] += g;
        }
}
