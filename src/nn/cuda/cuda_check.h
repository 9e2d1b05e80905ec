/* cuda_check.h — error checks for the CUDA backend's sources (the .cu files in nn/cuda).
 *
 * Every CUDA runtime and cuBLAS call and every kernel launch goes through one of these. On
 * failure they record "file:line: the call: CUDA's error string (its name)" with cg_error_set()
 * (core/log.h) and `return` the error code from the enclosing function (which must return int);
 * nothing prints and nothing exits.
 *
 *   CG_CUDA_CHECK(cudaMemcpyAsync(...));
 *   CG_CUBLAS_CHECK(cublasGemmEx(...));
 *   kernel<<<grid, block, 0, ctx->stream>>>(...);
 *   CG_CUDA_CHECK_LAUNCH(ctx, "kernel");     // cudaGetLastError, and with CLIPGRID_CUDA_SYNC=1 a
 *                                            // stream sync, so async faults name this line
 *   CG_CUDA_ARG(n >= 0, "n = %lld", (long long)n);   // argument checks: CG_ERR_STATE naming the function
 */
#ifndef CLIPGRID_NN_CUDA_CUDA_CHECK_H
#define CLIPGRID_NN_CUDA_CUDA_CHECK_H

#include <stdio.h>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "core/log.h"
#ifdef __cplusplus
}
#endif

/* On failure the runtime's last-error state is cleared too (cudaGetLastError): an error already
 * reported here (a failed cudaMalloc, say) must not surface again at the next launch check. */
#define CG_CUDA_CHECK(call) do { \
    cudaError_t cg_cuda_e_ = (call); \
    if (cg_cuda_e_ != cudaSuccess) { \
        (void)cudaGetLastError(); \
        return cg_error_set(CG_ERR_DEVICE, "%s:%d: %s: %s (%s)", __FILE__, __LINE__, #call, \
                            cudaGetErrorString(cg_cuda_e_), cudaGetErrorName(cg_cuda_e_)); \
    } \
} while (0)

#define CG_CUBLAS_CHECK(call) do { \
    cublasStatus_t cg_cublas_s_ = (call); \
    if (cg_cublas_s_ != CUBLAS_STATUS_SUCCESS) \
        return cg_error_set(CG_ERR_DEVICE, "%s:%d: %s: %s (cuBLAS status %d)", __FILE__, __LINE__, #call, \
                            cublasGetStatusString(cg_cublas_s_), (int)cg_cublas_s_); \
} while (0)

/* Defined in cg_cuda.cu: cudaGetLastError (+ stream sync when the context asks for it). */
#ifdef __cplusplus
extern "C" {
#endif
struct cg_cuda_ctx;
int cg_cuda_launch_check_(struct cg_cuda_ctx *ctx, const char *file, int line, const char *what);
#ifdef __cplusplus
}
#endif

#define CG_CUDA_CHECK_LAUNCH(ctx, what) do { \
    int cg_launch_rc_ = cg_cuda_launch_check_((ctx), __FILE__, __LINE__, (what)); \
    if (cg_launch_rc_) return cg_launch_rc_; \
} while (0)

#define CG_CUDA_ARG(cond, ...) do { \
    if (!(cond)) { \
        char cg_arg_msg_[256]; \
        snprintf(cg_arg_msg_, sizeof cg_arg_msg_, __VA_ARGS__); \
        return cg_error_set(CG_ERR_STATE, "%s:%d: %s: invalid arguments: %s", __FILE__, __LINE__, __func__, cg_arg_msg_); \
    } \
} while (0)

/* Propagate an error code from a helper. */
#define CG_TRY(expr) do { int cg_try_rc_ = (expr); if (cg_try_rc_) return cg_try_rc_; } while (0)

#endif
