#include "train/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "nn/clip_loss.h"
#include "nn/gemm.h"

void eval_class_embedding(const float *prompts, int T, int D, float *out) {
    float *n = cg_xmalloc((size_t)T * D * sizeof *n);
    l2_normalize_rows(prompts, n, NULL, T, D);
    for (int k = 0; k < D; k++) {
        double s = 0;
        for (int t = 0; t < T; t++) s += n[(size_t)t * D + k];
        out[k] = (float)(s / T);
    }
    l2_normalize_rows(out, out, NULL, 1, D);
    free(n);
}

/* S[N, M] = normalise(a) @ normalise(b)^T */
static float *similarity(const float *a, int N, const float *b, int M, int D) {
    float *na = cg_xmalloc((size_t)N * D * sizeof *na), *nb = cg_xmalloc((size_t)M * D * sizeof *nb);
    float *S = cg_xmalloc((size_t)N * M * sizeof *S);
    l2_normalize_rows(a, na, NULL, N, D);
    l2_normalize_rows(b, nb, NULL, M, D);
    cg_gemm(0, 1, N, M, D, 1.0f, na, D, nb, D, 0.0f, S, M);
    free(na);
    free(nb);
    return S;
}

/* 0-based rank of entry `target` in a row of n scores read with stride `stride`. */
static int rank_of(const float *row, int n, int stride, int target) {
    float v = row[(size_t)target * stride];
    int r = 0;
    for (int j = 0; j < n; j++) r += row[(size_t)j * stride] > v;
    return r;
}

void eval_zero_shot(const float *img, int N, const float *classes, int C, int D, const int *labels, double *top1,
                    double *top5) {
    float *S = similarity(img, N, classes, C, D);
    int h1 = 0, h5 = 0;
    for (int i = 0; i < N; i++) {
        int r = rank_of(S + (size_t)i * C, C, 1, labels[i]);
        h1 += r < 1;
        h5 += r < 5;
    }
    *top1 = N ? (double)h1 / N : 0;
    *top5 = N ? (double)h5 / N : 0;
    free(S);
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static void summarize(int *ranks, int N, eval_retrieval_dir *d) {
    double sum = 0;
    int r1 = 0, r5 = 0, r10 = 0;
    for (int i = 0; i < N; i++) {
        sum += ranks[i] + 1;
        r1 += ranks[i] < 1;
        r5 += ranks[i] < 5;
        r10 += ranks[i] < 10;
    }
    qsort(ranks, (size_t)N, sizeof *ranks, cmp_int);
    d->r1 = (double)r1 / N;
    d->r5 = (double)r5 / N;
    d->r10 = (double)r10 / N;
    d->mean_rank = sum / N;
    d->median_rank = N % 2 ? ranks[N / 2] + 1 : (ranks[N / 2 - 1] + ranks[N / 2]) / 2.0 + 1;
}

void eval_retrieval_metrics(const float *img, const float *txt, int N, int D, eval_retrieval *out) {
    memset(out, 0, sizeof *out);
    if (N <= 0) return;
    float *S = similarity(img, N, txt, N, D);  /* S[i][j]: image i, caption j */
    int *ranks = cg_xmalloc((size_t)N * sizeof *ranks);
    for (int i = 0; i < N; i++) ranks[i] = rank_of(S + (size_t)i * N, N, 1, i);
    summarize(ranks, N, &out->image_to_text);
    for (int j = 0; j < N; j++) ranks[j] = rank_of(S + j, N, N, j);  /* column j */
    summarize(ranks, N, &out->text_to_image);
    free(ranks);
    free(S);
}
