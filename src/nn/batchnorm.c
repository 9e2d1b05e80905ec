#include "nn/batchnorm.h"

#include <math.h>

static void check(const char *fn, const cg_tensor *y, const cg_tensor *x, const cg_tensor *gamma) {
    CG_REQUIRE_CPU(fn, x);
    CG_REQUIRE_CPU(fn, y);
    CG_REQUIRE_CPU(fn, gamma);
    if (x->ndim < 1 || !cg_tensor_same_shape(x, y)) cg_tensor_fail(fn, "x and y must have the same shape");
    if (cg_tensor_numel(gamma) != x->shape[0]) cg_tensor_fail(fn, "gamma must have C = %lld values", (long long)x->shape[0]);
}

void cg_batchnorm_forward_train(cg_tensor *y, const cg_tensor *x, const cg_tensor *gamma, const cg_tensor *beta,
                                cg_tensor *running_mean, cg_tensor *running_var, cg_tensor *save_mean,
                                cg_tensor *save_rstd, float momentum, float eps) {
    check("cg_batchnorm_forward_train", y, x, gamma);
    int64_t C = x->shape[0], M = cg_tensor_numel(x) / C;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t c = 0; c < C; c++) {
        const float *xc = x->data + c * M;
        float *yc = y->data + c * M;
        double s = 0;
        for (int64_t i = 0; i < M; i++) s += xc[i];
        double mean = s / (double)M;
        double ss = 0;
        for (int64_t i = 0; i < M; i++) { double d = xc[i] - mean; ss += d * d; }
        double var = ss / (double)M;
        double rstd = 1.0 / sqrt(var + eps);
        float a = (float)(gamma->data[c] * rstd), bb = (float)(beta->data[c] - mean * gamma->data[c] * rstd);
        for (int64_t i = 0; i < M; i++) yc[i] = a * xc[i] + bb;
        save_mean->data[c] = (float)mean;
        save_rstd->data[c] = (float)rstd;
        if (running_mean) {
            double unbiased = M > 1 ? ss / (double)(M - 1) : var;
            running_mean->data[c] = (float)((1.0 - momentum) * running_mean->data[c] + momentum * mean);
            running_var->data[c] = (float)((1.0 - momentum) * running_var->data[c] + momentum * unbiased);
        }
    }
}

void cg_batchnorm_backward_train(cg_tensor *dx, cg_tensor *dgamma, cg_tensor *dbeta, const cg_tensor *dy,
                                 const cg_tensor *x, const cg_tensor *gamma, const cg_tensor *save_mean,
                                 const cg_tensor *save_rstd) {
    check("cg_batchnorm_backward_train", dy, x, gamma);
    int64_t C = x->shape[0], M = cg_tensor_numel(x) / C;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t c = 0; c < C; c++) {
        const float *xc = x->data + c * M, *gc = dy->data + c * M;
        float mean = save_mean->data[c], rstd = save_rstd->data[c];
        double sg = 0, sgx = 0;
        for (int64_t i = 0; i < M; i++) {
            sg += gc[i];
            sgx += (double)gc[i] * ((xc[i] - mean) * rstd);
        }
        dgamma->data[c] += (float)sgx;
        dbeta->data[c] += (float)sg;
        if (!dx) continue;
        float *dxc = dx->data + c * M;
        float k = gamma->data[c] * rstd;
        float mg = (float)(sg / (double)M), mgx = (float)(sgx / (double)M);
        for (int64_t i = 0; i < M; i++) {
            float xh = (xc[i] - mean) * rstd;
            dxc[i] += k * (gc[i] - mg - xh * mgx);
        }
    }
}

void cg_batchnorm_forward_eval(cg_tensor *y, const cg_tensor *x, const cg_tensor *gamma, const cg_tensor *beta,
                               const cg_tensor *running_mean, const cg_tensor *running_var, float eps) {
    check("cg_batchnorm_forward_eval", y, x, gamma);
    int64_t C = x->shape[0], M = cg_tensor_numel(x) / C;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        float rstd = (float)(1.0 / sqrt((double)running_var->data[c] + eps));
        float a = gamma->data[c] * rstd, bb = beta->data[c] - running_mean->data[c] * a;
        const float *xc = x->data + c * M;
        float *yc = y->data + c * M;
        for (int64_t i = 0; i < M; i++) yc[i] = a * xc[i] + bb;
    }
}

void cg_batchnorm_backward_eval(cg_tensor *dx, cg_tensor *dgamma, cg_tensor *dbeta, const cg_tensor *dy,
                                const cg_tensor *x, const cg_tensor *gamma, const cg_tensor *running_mean,
                                const cg_tensor *running_var, float eps) {
    check("cg_batchnorm_backward_eval", dy, x, gamma);
    int64_t C = x->shape[0], M = cg_tensor_numel(x) / C;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        float rstd = (float)(1.0 / sqrt((double)running_var->data[c] + eps)), mean = running_mean->data[c];
        const float *xc = x->data + c * M, *gc = dy->data + c * M;
        double sg = 0, sgx = 0;
        for (int64_t i = 0; i < M; i++) {
            sg += gc[i];
            sgx += (double)gc[i] * ((xc[i] - mean) * rstd);
        }
        dgamma->data[c] += (float)sgx;
        dbeta->data[c] += (float)sg;
        if (dx) {
            float k = gamma->data[c] * rstd;
            float *dxc = dx->data + c * M;
            for (int64_t i = 0; i < M; i++) dxc[i] += k * gc[i];
        }
    }
}
