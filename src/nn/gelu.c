#include "nn/gelu.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static int64_t same_numel(const char *fn, const cg_tensor *a, const cg_tensor *b) {
    CG_REQUIRE_CPU(fn, a);
    CG_REQUIRE_CPU(fn, b);
    int64_t n = cg_tensor_numel(a);
    if (cg_tensor_numel(b) != n) cg_tensor_fail(fn, "numel %lld vs %lld", (long long)n, (long long)cg_tensor_numel(b));
    return n;
}

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

void cg_gelu_forward(cg_tensor *y, const cg_tensor *x) {
    int64_t n = same_numel("cg_gelu_forward", y, x);
    float *yp = y->data;
    const float *xp = x->data;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) yp[i] = 0.5f * xp[i] * (1.0f + erff(xp[i] * INV_SQRT2));
}

void cg_gelu_backward(cg_tensor *dx, const cg_tensor *dy, const cg_tensor *x) {
    int64_t n = same_numel("cg_gelu_backward", dx, x);
    same_numel("cg_gelu_backward", dy, x);
    float *d = dx->data;
    const float *g = dy->data, *xp = x->data;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
        float v = xp[i];
        float cdf = 0.5f * (1.0f + erff(v * INV_SQRT2)), pdf = INV_SQRT_2PI * expf(-0.5f * v * v);
        d[i] += g[i] * (cdf + v * pdf);
    }
}

/* QuickGELU runs on the whole MLP activation three times a step (forward, recompute, backward),
 * so its exp is written to vectorize (libm's expf is an opaque call): x = n ln2 + r with
 * |r| <= ln2/2 (n rounded by adding 1.5 * 2^23, ln2 split in two so n ln2 is exact), e^r by its
 * degree-6 Taylor polynomial (truncation r^7/7! < 1.3e-7 relative), times 2^n put straight into
 * the exponent bits. x is first clamped to [-87, 88] (2^n stays a normal float) with bit masks,
 * not a branch or fminf, which GCC would not vectorize without -ffinite-math-only; a NaN input
 * passes the clamp and comes out NaN. Within 2 ulp of expf on the clamped range. */
static inline uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
static inline float bitsf(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }

static inline float exp_vec(float x) {
    const float magic = 12582912.0f;
    uint32_t lo = 0u - (uint32_t)(x < -87.0f), hi = 0u - (uint32_t)(x > 88.0f);
    x = bitsf((fbits(x) & ~(lo | hi)) | (lo & fbits(-87.0f)) | (hi & fbits(88.0f)));
    float t = x * 1.44269504088896341f + magic;
    float n = t - magic;
    float r = x - n * 0.693359375f - n * -2.12194440e-4f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720))))));
    return p * bitsf((fbits(t) - fbits(magic) + 127u) << 23);
}

static inline float sigmoidf(float v) { return 1.0f / (1.0f + exp_vec(-v)); }

void cg_quick_gelu_forward(cg_tensor *y, const cg_tensor *x) {
    int64_t n = same_numel("cg_quick_gelu_forward", y, x);
    float *yp = y->data;
    const float *xp = x->data;
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) yp[i] = xp[i] * sigmoidf(1.702f * xp[i]);
}

void cg_quick_gelu_backward(cg_tensor *dx, const cg_tensor *dy, const cg_tensor *x) {
    int64_t n = same_numel("cg_quick_gelu_backward", dx, x);
    same_numel("cg_quick_gelu_backward", dy, x);
    float *d = dx->data;
    const float *g = dy->data, *xp = x->data;
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; i++) {
        float v = xp[i], s = sigmoidf(1.702f * v);
        d[i] += g[i] * (s + 1.702f * v * s * (1.0f - s));
    }
}

void cg_act_forward(cg_act_kind k, cg_tensor *y, const cg_tensor *x) {
    if (k == CG_ACT_GELU) cg_gelu_forward(y, x);
    else if (k == CG_ACT_QUICK_GELU) cg_quick_gelu_forward(y, x);
    else cg_tensor_fail("cg_act_forward", "unknown activation %d", (int)k);
}

void cg_act_backward(cg_act_kind k, cg_tensor *dx, const cg_tensor *dy, const cg_tensor *x) {
    if (k == CG_ACT_GELU) cg_gelu_backward(dx, dy, x);
    else if (k == CG_ACT_QUICK_GELU) cg_quick_gelu_backward(dx, dy, x);
    else cg_tensor_fail("cg_act_backward", "unknown activation %d", (int)k);
}
