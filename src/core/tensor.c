#include "core/tensor.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

cg_tensor cg_tensor_view(float *data, cg_device dev, int ndim, const int64_t *shape) {
    cg_tensor t;
    memset(&t, 0, sizeof t);
    if (ndim < 0 || ndim > CG_MAX_DIMS) cg_tensor_fail("cg_tensor_view", "ndim %d out of range", ndim);
    t.data = data;
    t.ndim = ndim;
    t.device = dev;
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    return t;
}

cg_tensor cg_tensor_arena(cg_arena *a, cg_device dev, int ndim, const int64_t *shape) {
    cg_tensor t = cg_tensor_view(NULL, dev, ndim, shape);
    if (dev != CG_DEV_CPU) cg_tensor_fail("cg_tensor_arena", "device %d arenas are not built", (int)dev);
    t.data = cg_arena_alloc(a, cg_tensor_bytes(&t));
    return t;
}

cg_tensor cg_tensor_1d(float *data, cg_device dev, int64_t a) {
    return cg_tensor_view(data, dev, 1, (int64_t[]){a});
}
cg_tensor cg_tensor_2d(float *data, cg_device dev, int64_t a, int64_t b) {
    return cg_tensor_view(data, dev, 2, (int64_t[]){a, b});
}
cg_tensor cg_tensor_4d(float *data, cg_device dev, int64_t a, int64_t b, int64_t c, int64_t d) {
    return cg_tensor_view(data, dev, 4, (int64_t[]){a, b, c, d});
}

int64_t cg_tensor_numel(const cg_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t cg_tensor_bytes(const cg_tensor *t) { return (size_t)cg_tensor_numel(t) * sizeof(float); }

int cg_tensor_same_shape(const cg_tensor *a, const cg_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

char *cg_shape_str(const int64_t *shape, int ndim, char *buf, size_t n) {
    size_t off = 0;
    if (n == 0) return buf;
    buf[0] = 0;
    off += (size_t)snprintf(buf + off, n - off, "[");
    for (int i = 0; i < ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
    return buf;
}

void cg_tensor_zero(cg_tensor *t) {
    CG_REQUIRE_CPU("cg_tensor_zero", t);
    memset(t->data, 0, cg_tensor_bytes(t));
}

void cg_tensor_copy(cg_tensor *y, const cg_tensor *x) {
    CG_REQUIRE_CPU("cg_tensor_copy", y);
    CG_REQUIRE_CPU("cg_tensor_copy", x);
    if (cg_tensor_numel(x) != cg_tensor_numel(y))
        cg_tensor_fail("cg_tensor_copy", "numel %lld vs %lld", (long long)cg_tensor_numel(x),
                       (long long)cg_tensor_numel(y));
    memmove(y->data, x->data, cg_tensor_bytes(x));
}

void cg_nchw_to_cnhw(const float *src, float *dst, int64_t N, int64_t C, int64_t HW) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            memcpy(dst + (c * N + n) * HW, src + (n * C + c) * HW, (size_t)HW * sizeof(float));
}

void cg_cnhw_to_nchw(const float *src, float *dst, int64_t N, int64_t C, int64_t HW) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            memcpy(dst + (n * C + c) * HW, src + (c * N + n) * HW, (size_t)HW * sizeof(float));
}

void cg_tensor_fail(const char *fn, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[ERROR] %s: ", fn);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}
