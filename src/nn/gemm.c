#include "nn/gemm.h"

#include <cblas.h>
#include <omp.h>
#include <stdatomic.h>

static atomic_int gemm_ready;
static int gemm_profiling;
static double prof_seconds, prof_flops;

void cg_gemm_init(void) {
    if (atomic_load(&gemm_ready)) return;
    openblas_set_num_threads(1);
    atomic_store(&gemm_ready, 1);
}

void cg_gemm_profile(int on) { gemm_profiling = on; }
void cg_gemm_stats(double *seconds, double *flops) { *seconds = prof_seconds; *flops = prof_flops; }
void cg_gemm_stats_reset(void) { prof_seconds = 0; prof_flops = 0; }

static void sgemm1(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                   int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
}

void cg_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
             int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    cg_gemm_init();
    double t0 = gemm_profiling ? omp_get_wtime() : 0;
    int in_par = omp_in_parallel();
    int nt = in_par ? 1 : omp_get_max_threads();
    double work = (double)M * N * (K > 0 ? K : 1);
    if (nt > 1 && work < 2e5) nt = 1;  /* not worth waking a team */
    if (nt == 1) {
        sgemm1(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    } else if (N >= M) {
        /* column blocks, multiples of 16 */
        int per = (N + nt - 1) / nt;
        per = (per + 15) / 16 * 16;
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num();
            int n0 = t * per, n1 = n0 + per < N ? n0 + per : N;
            if (n0 < n1)
                sgemm1(transA, transB, M, n1 - n0, K, alpha, A, lda, transB ? B + (int64_t)n0 * ldb : B + n0, ldb, beta,
                       C + n0, ldc);
        }
    } else {
        int per = (M + nt - 1) / nt;
        per = (per + 3) / 4 * 4;
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num();
            int m0 = t * per, m1 = m0 + per < M ? m0 + per : M;
            if (m0 < m1)
                sgemm1(transA, transB, m1 - m0, N, K, alpha, transA ? A + m0 : A + (int64_t)m0 * lda, lda, B, ldb, beta,
                       C + (int64_t)m0 * ldc, ldc);
        }
    }
    if (gemm_profiling) {
        double dt = omp_get_wtime() - t0;
        if (in_par) dt /= omp_get_num_threads();
        double fl = 2.0 * M * N * K;
#pragma omp atomic
        prof_seconds += dt;
#pragma omp atomic
        prof_flops += fl;
    }
}
