#include "nn/activations.h"

static int64_t same_numel(const char *fn, const cg_tensor *a, const cg_tensor *b) {
    CG_REQUIRE_CPU(fn, a);
    CG_REQUIRE_CPU(fn, b);
    int64_t n = cg_tensor_numel(a);
    if (cg_tensor_numel(b) != n) cg_tensor_fail(fn, "numel %lld vs %lld", (long long)n, (long long)cg_tensor_numel(b));
    return n;
}

static inline float relu6f(float x) { return x < 0.0f ? 0.0f : (x > 6.0f ? 6.0f : x); }

void cg_relu6_forward(cg_tensor *y, const cg_tensor *x) {
    int64_t n = same_numel("cg_relu6_forward", y, x);
    float *restrict yp = y->data;
    const float *restrict xp = x->data;
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) yp[i] = relu6f(xp[i]);
}

void cg_relu6_backward(cg_tensor *dx, const cg_tensor *dy, const cg_tensor *x) {
    int64_t n = same_numel("cg_relu6_backward", dx, x);
    same_numel("cg_relu6_backward", dy, x);
    float *restrict d = dx->data;
    const float *restrict g = dy->data, *restrict xp = x->data;
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) d[i] += (xp[i] > 0.0f && xp[i] < 6.0f) ? g[i] : 0.0f;
}

void cg_star_relu6_forward(cg_tensor *z, const cg_tensor *a, const cg_tensor *b) {
    int64_t n = same_numel("cg_star_relu6_forward", z, a);
    same_numel("cg_star_relu6_forward", z, b);
    float *restrict zp = z->data;
    const float *restrict ap = a->data, *restrict bp = b->data;
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) zp[i] = relu6f(ap[i]) * bp[i];
}

void cg_star_relu6_backward(cg_tensor *da, cg_tensor *db, const cg_tensor *dz, const cg_tensor *a, const cg_tensor *b) {
    int64_t n = same_numel("cg_star_relu6_backward", dz, a);
    same_numel("cg_star_relu6_backward", dz, b);
    const float *restrict g = dz->data, *restrict ap = a->data, *restrict bp = b->data;
    float *restrict dap = da ? da->data : NULL, *restrict dbp = db ? db->data : NULL;
    if (dap) same_numel("cg_star_relu6_backward", da, a);
    if (dbp) same_numel("cg_star_relu6_backward", db, b);
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
        float av = ap[i];
        if (dap) dap[i] += (av > 0.0f && av < 6.0f) ? g[i] * bp[i] : 0.0f;
        if (dbp) dbp[i] += g[i] * relu6f(av);
    }
}
