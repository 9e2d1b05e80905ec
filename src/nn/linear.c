#include "nn/linear.h"

#include "nn/gemm.h"

static void dims(const char *fn, const cg_tensor *y, const cg_tensor *x, const cg_tensor *w, int64_t *N, int64_t *in,
                 int64_t *out) {
    CG_REQUIRE_CPU(fn, x);
    CG_REQUIRE_CPU(fn, y);
    CG_REQUIRE_CPU(fn, w);
    if (w->ndim != 2) cg_tensor_fail(fn, "weight must be [out, in]");
    *out = w->shape[0];
    *in = w->shape[1];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != *in) cg_tensor_fail(fn, "x's last dim must be in = %lld", (long long)*in);
    *N = cg_tensor_numel(x) / *in;
    if (y->shape[y->ndim - 1] != *out || cg_tensor_numel(y) != *N * *out)
        cg_tensor_fail(fn, "y must be [%lld, %lld]", (long long)*N, (long long)*out);
}

void cg_linear_forward(cg_tensor *y, const cg_tensor *x, const cg_tensor *w, const cg_tensor *b) {
    int64_t N, in, out;
    dims("cg_linear_forward", y, x, w, &N, &in, &out);
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < out; o++) y->data[n * out + o] = b ? b->data[o] : 0.0f;
    cg_gemm(0, 1, (int)N, (int)out, (int)in, 1.0f, x->data, (int)in, w->data, (int)in, 1.0f, y->data, (int)out);
}

void cg_linear_backward(cg_tensor *dx, cg_tensor *dw, cg_tensor *db, const cg_tensor *dy, const cg_tensor *x,
                        const cg_tensor *w) {
    int64_t N, in, out;
    dims("cg_linear_backward", dy, x, w, &N, &in, &out);
    CG_REQUIRE_CPU("cg_linear_backward", dw);
    if (dx) cg_gemm(0, 0, (int)N, (int)in, (int)out, 1.0f, dy->data, (int)out, w->data, (int)in, 1.0f, dx->data, (int)in);
    cg_gemm(1, 0, (int)out, (int)in, (int)N, 1.0f, dy->data, (int)out, x->data, (int)in, 1.0f, dw->data, (int)in);
    if (db)
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < out; o++) db->data[o] += dy->data[n * out + o];
}
