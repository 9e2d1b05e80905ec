#include "nn/residual.h"

int cg_droppath_scales(cg_rng *rng, float *scale, int64_t N, float drop_prob, int scale_by_keep) {
    float keep = 1.0f - drop_prob;
    int kept = 0;
    for (int64_t n = 0; n < N; n++) {
        int k = drop_prob <= 0.0f || cg_rng_uniform(rng) < keep;
        kept += k;
        scale[n] = k ? ((scale_by_keep && keep > 0.0f) ? 1.0f / keep : 1.0f) : 0.0f;
    }
    return kept;
}

static void dims(const char *fn, const cg_tensor *t, int64_t *C, int64_t *N, int64_t *inner) {
    CG_REQUIRE_CPU(fn, t);
    if (t->ndim < 2) cg_tensor_fail(fn, "want [C, N, ...]");
    *C = t->shape[0];
    *N = t->shape[1];
    *inner = cg_tensor_numel(t) / (*C * *N);
}

void cg_residual_forward(cg_tensor *y, const cg_tensor *x, const cg_tensor *f, const float *scale) {
    int64_t C, N, K;
    dims("cg_residual_forward", y, &C, &N, &K);
    if (!cg_tensor_same_shape(y, x) || !cg_tensor_same_shape(y, f)) cg_tensor_fail("cg_residual_forward", "shape mismatch");
#pragma omp parallel for collapse(2) schedule(static) if (C * N * K > 32768)
    for (int64_t c = 0; c < C; c++)
        for (int64_t n = 0; n < N; n++) {
            float s = scale ? scale[n] : 1.0f;
            const float *xp = x->data + (c * N + n) * K, *fp = f->data + (c * N + n) * K;
            float *yp = y->data + (c * N + n) * K;
            for (int64_t i = 0; i < K; i++) yp[i] = xp[i] + s * fp[i];
        }
}

void cg_residual_backward(cg_tensor *dx, cg_tensor *df, const cg_tensor *dy, const float *scale) {
    int64_t C, N, K;
    dims("cg_residual_backward", dy, &C, &N, &K);
#pragma omp parallel for collapse(2) schedule(static) if (C * N * K > 32768)
    for (int64_t c = 0; c < C; c++)
        for (int64_t n = 0; n < N; n++) {
            float s = scale ? scale[n] : 1.0f;
            const float *g = dy->data + (c * N + n) * K;
            float *a = dx ? dx->data + (c * N + n) * K : NULL, *b = df ? df->data + (c * N + n) * K : NULL;
            for (int64_t i = 0; i < K; i++) {
                if (a) a[i] += g[i];
                if (b) b[i] += s * g[i];
            }
        }
}
