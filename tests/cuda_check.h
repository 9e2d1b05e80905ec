/* cuda_check.h — what the device-vs-CPU tests (tests/test_cuda_*.c) share.
 *
 *   OK(call)                       a CG_OK call, or a failure naming the call and the error message
 *   rel_err(got, ref, n)           max |got - ref| / max |ref| (INFINITY on a NaN)
 *   round_bf16(x, n)               round a host array to bf16 values in place
 *   if (skip_without_device(&info)) return 77;   prints "no CUDA device: skipped (why)"
 */
#ifndef CLIPGRID_TEST_CUDA_CHECK_H
#define CLIPGRID_TEST_CUDA_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/log.h"
#include "nn/cuda/cg_cuda.h"
#include "nn/params.h"

#define OK(call) do { int ok_rc_ = (call); if (ok_rc_) fprintf(stderr, "  FAIL %s:%d: %s -> %d: %s\n", __FILE__, __LINE__, \
    #call, ok_rc_, cg_error_message()); CHECK(ok_rc_ == CG_OK); } while (0)

static inline double rel_err(const float *got, const float *ref, int64_t n) {
    double maxerr = 0, maxref = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(got[i]) || isnan(ref[i])) return INFINITY;
        double e = fabs((double)got[i] - (double)ref[i]);
        if (e > maxerr) maxerr = e;
        if (fabs((double)ref[i]) > maxref) maxref = fabs((double)ref[i]);
    }
    return maxref > 0 ? maxerr / maxref : maxerr;
}

/* ||got - ref|| / ||ref|| (L2), INFINITY for NaN */
static inline double l2_rel_err(const float *got, const float *ref, int64_t n) {
    double se = 0, sr = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(got[i]) || isnan(ref[i])) return INFINITY;
        double e = (double)got[i] - (double)ref[i];
        se += e * e;
        sr += (double)ref[i] * ref[i];
    }
    return sr > 0 ? sqrt(se / sr) : sqrt(se);
}

static inline double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs((double)x[i]) > m ? fabs((double)x[i]) : m;
    return m;
}

/* Largest |gradient| over the parameters of a set (the scale of the zero-gradient floor below). */
static inline double grads_max_abs(const cg_params *p) {
    double m = 0;
    for (int i = 0; i < p->n; i++)
        if (p->e[i].kind == CG_KIND_PARAM) {
            double t = max_abs(p->grads + p->e[i].offset, p->e[i].numel);
            if (t > m) m = t;
        }
    return m;
}

/* A tensor whose true gradient is zero — a conv bias before a train-mode BatchNorm (the batch
 * mean removes it), attention's key bias (softmax ignores a constant per query) — holds only
 * rounding noise on both sides, and the relative error of noise means nothing. So a reference
 * tensor whose largest |value| is below ref_floor (1e-5 of the model's largest gradient: the
 * fp32 reference's noise is ~1e-9 of it, its smallest real gradient far above) is checked as
 * "the device's stays below dev_floor" (the device's own noise: fp32 like the CPU's, bf16 a few
 * 1e-3 of the largest gradient); returns 1 when the tensor is such a case (and sets *pass), 0
 * when it should be compared relatively. */
static inline int zero_grad_case(const float *got, const float *ref, int64_t n, double ref_floor, double dev_floor,
                                 int *pass, double *got_max) {
    if (max_abs(ref, n) >= ref_floor) return 0;
    *got_max = max_abs(got, n);
    *pass = *got_max <= dev_floor;
    return 1;
}

/* ---- per-tensor comparison shared by the tower tests (test_cuda_starnet, test_cuda_text) ---- */

/* [precision][forward, gradients, stats]: the worst max-relative error seen, for the summary */
static inline double (*cmp_worst(void))[3] {
    static double w[2][3];
    return w;
}

/* max relative error (of the tensor's largest |ref|) within tol and, when tol_l2 > 0, the L2
 * relative error within tol_l2; printed when it fails or when $verbose_env is set */
static inline void cmp_tensor(const char *verbose_env, const char *who, const char *name, cg_precision p, int slot,
                              const float *got, const float *ref, int64_t n, double tol, double tol_l2) {
    double e = rel_err(got, ref, n), l2 = l2_rel_err(got, ref, n);
    if (e > cmp_worst()[p][slot]) cmp_worst()[p][slot] = e;
    int pass = e <= tol && (tol_l2 <= 0 || l2 <= tol_l2);
    if (!pass || getenv(verbose_env))
        fprintf(stderr, "  %s %-10s %-58s max rel %.3g (tol %.3g), L2 rel %.3g (tol %.3g)%s\n", cg_prec_name(p), who, name,
                e, tol, l2, tol_l2, pass ? "" : "  FAIL");
    CHECK(pass);
}

/* every parameter gradient of `got` (downloaded) against the CPU's, by cmp_tensor; tensors with a
 * zero true gradient by the floor rule above, the device's noise allowed up to dev_floor_rel of
 * the largest gradient */
static inline void cmp_grads(const char *verbose_env, const char *who, cg_precision p, const cg_params *got,
                             const cg_params *ref, double tol, double tol_l2, double dev_floor_rel) {
    double largest = grads_max_abs(ref);
    for (int i = 0; i < ref->n; i++) {
        if (ref->e[i].kind != CG_KIND_PARAM) continue;
        const float *g = got->grads + ref->e[i].offset, *r = ref->grads + ref->e[i].offset;
        int pass = 0;
        double gmax = 0;
        if (zero_grad_case(g, r, ref->e[i].numel, 1e-5 * largest, dev_floor_rel * largest, &pass, &gmax)) {
            if (!pass || getenv(verbose_env))
                fprintf(stderr, "  %s %-10s %-58s zero gradient: |device| max %.3g (allowed %.3g)%s\n", cg_prec_name(p), who,
                        ref->e[i].name, gmax, dev_floor_rel * largest, pass ? "" : "  FAIL");
            CHECK(pass);
            continue;
        }
        cmp_tensor(verbose_env, who, ref->e[i].name, p, 1, g, r, ref->e[i].numel, tol, tol_l2);
    }
}

static inline void round_bf16(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = cg_bf16_round(x[i]);
}

/* The test's context on device 0 with `scratch` bytes; 1 (after printing why) when it fails. */
static inline int cuda_test_ctx(cg_cuda_ctx **ctx, size_t scratch) {
    if (cg_cuda_ctx_create(ctx, 0, scratch) == CG_OK) return 0;
    fprintf(stderr, "cg_cuda_ctx_create: %s\n", cg_error_message());
    return 1;
}

/* After the tests: an asynchronous error left on the stream fails the program; the context goes. */
static inline void cuda_test_finish(cg_cuda_ctx *ctx) {
    if (cg_cuda_sync(ctx)) {
        fprintf(stderr, "FAIL: asynchronous CUDA error: %s\n", cg_error_message());
        check_tests_failed++;
    }
    cg_cuda_ctx_destroy(ctx);
}

/* 1 (after printing why) when device 0 cannot be used; 0 with *info filled otherwise. */
static inline int skip_without_device(cg_cuda_device_info *info) {
    if (cg_cuda_device_query(0, info) == CG_OK) return 0;
    const char *why = cg_error_message(), *pre = "no CUDA device: ";
    if (!strncmp(why, pre, strlen(pre))) why += strlen(pre);
    printf("no CUDA device: skipped (%s)\n", why);
    return 1;
}

#endif
