/* gemm.h — single-precision matrix multiply on OpenBLAS, threaded by OpenMP.
 *
 *   C[M,N] = alpha * op(A) @ op(B) + beta * C        (row-major; op(X) = X or X^T)
 *
 * A is [M,K] (or [K,M] when transA), B is [K,N] (or [N,K] when transB), with leading
 * dimensions lda/ldb/ldc as in CBLAS row-major. OpenBLAS itself runs single-threaded: called
 * outside a parallel region, cg_gemm splits C into column (or row) blocks over the OpenMP
 * threads, so OpenBLAS's thread pool and OpenMP's never compete for the cores. Called inside a
 * parallel region it runs on the calling thread only.
 *
 * Profiling (for bench/): cg_gemm_profile(1) makes every call add its wall time (calls from
 * inside a parallel region add time / team size) and 2*M*N*K flops to cg_gemm_stats().
 */
#ifndef CLIPGRID_NN_GEMM_H
#define CLIPGRID_NN_GEMM_H

#include <stdint.h>

void cg_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
             int ldb, float beta, float *C, int ldc);

/* Make OpenBLAS single-threaded (done automatically on the first cg_gemm). */
void cg_gemm_init(void);

void cg_gemm_profile(int on);
void cg_gemm_stats(double *seconds, double *flops);
void cg_gemm_stats_reset(void);

#endif
