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
#include <string.h>

#include "check.h"
#include "core/log.h"
#include "nn/cuda/cg_cuda.h"

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

static inline void round_bf16(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = cg_bf16_round(x[i]);
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
