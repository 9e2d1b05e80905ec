#include "nn/embedding.h"

#include <string.h>

static void dims(const char *fn, const cg_tensor *y, const cg_tensor *table, int64_t *N, int64_t *V, int64_t *C) {
    CG_REQUIRE_CPU(fn, y);
    CG_REQUIRE_CPU(fn, table);
    if (table->ndim != 2) cg_tensor_fail(fn, "table must be [V, C]");
    *V = table->shape[0];
    *C = table->shape[1];
    if (y->shape[y->ndim - 1] != *C) cg_tensor_fail(fn, "last dim must be C = %lld", (long long)*C);
    *N = cg_tensor_numel(y) / *C;
}

void cg_embedding_forward(cg_tensor *y, const int32_t *ids, const cg_tensor *table, int accumulate) {
    int64_t N, V, C;
    dims("cg_embedding_forward", y, table, &N, &V, &C);
    for (int64_t n = 0; n < N; n++)
        if (ids[n] < 0 || ids[n] >= V) cg_tensor_fail("cg_embedding_forward", "id %d at %lld outside [0, %lld)", ids[n], (long long)n, (long long)V);
#pragma omp parallel for schedule(static) if (N * C > 65536)
    for (int64_t n = 0; n < N; n++) {
        const float *src = table->data + (int64_t)ids[n] * C;
        float *dst = y->data + n * C;
        if (accumulate)
            for (int64_t c = 0; c < C; c++) dst[c] += src[c];
        else
            memcpy(dst, src, (size_t)C * sizeof(float));
    }
}

void cg_embedding_backward(cg_tensor *dtable, const cg_tensor *dy, const int32_t *ids, int32_t skip_id) {
    int64_t N, V, C;
    dims("cg_embedding_backward", dy, dtable, &N, &V, &C);
    int64_t blk = 64, nblk = (C + blk - 1) / blk;
#pragma omp parallel for schedule(static) if (N * C > 65536)
    for (int64_t k = 0; k < nblk; k++) {
        int64_t c0 = k * blk, c1 = c0 + blk < C ? c0 + blk : C;
        for (int64_t n = 0; n < N; n++) {
            if (ids[n] == skip_id) continue;
            float *dst = dtable->data + (int64_t)ids[n] * C;
            const float *src = dy->data + n * C;
            for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

static void pdims(const char *fn, const cg_tensor *y, const cg_tensor *pos, int64_t *B, int64_t *T, int64_t *C) {
    CG_REQUIRE_CPU(fn, y);
    CG_REQUIRE_CPU(fn, pos);
    if (y->ndim != 3 || pos->ndim != 2 || pos->shape[1] != y->shape[2] || y->shape[1] > pos->shape[0])
        cg_tensor_fail(fn, "want y [B, T, C] and pos [P >= T, C]");
    *B = y->shape[0];
    *T = y->shape[1];
    *C = y->shape[2];
}

void cg_posemb_forward(cg_tensor *y, const cg_tensor *pos) {
    int64_t B, T, C;
    pdims("cg_posemb_forward", y, pos, &B, &T, &C);
#pragma omp parallel for schedule(static) if (B * T * C > 65536)
    for (int64_t r = 0; r < B * T; r++) {
        const float *src = pos->data + (r % T) * C;
        float *dst = y->data + r * C;
        for (int64_t c = 0; c < C; c++) dst[c] += src[c];
    }
}

void cg_posemb_backward(cg_tensor *dpos, const cg_tensor *dy) {
    int64_t B, T, C;
    pdims("cg_posemb_backward", dy, dpos, &B, &T, &C);
#pragma omp parallel for schedule(static) if (B * T * C > 65536)
    for (int64_t t = 0; t < T; t++) {
        float *dst = dpos->data + t * C;
        for (int64_t b = 0; b < B; b++) {
            const float *src = dy->data + (b * T + t) * C;
            for (int64_t c = 0; c < C; c++) dst[c] += src[c];
        }
    }
}
