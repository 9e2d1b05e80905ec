#include "nn/attention.h"

#include <math.h>
#include <stdlib.h>

#include "core/log.h"
#include "nn/gemm.h"

static void dims(const char *fn, const cg_tensor *out, const cg_tensor *att, const cg_tensor *qkv, int H, int64_t *B,
                 int64_t *T, int64_t *C) {
    CG_REQUIRE_CPU(fn, out);
    CG_REQUIRE_CPU(fn, att);
    CG_REQUIRE_CPU(fn, qkv);
    if (qkv->ndim != 3 || out->ndim != 3) cg_tensor_fail(fn, "qkv and out must be [B, T, 3C] and [B, T, C]");
    *B = qkv->shape[0];
    *T = qkv->shape[1];
    *C = out->shape[2];
    if (qkv->shape[2] != 3 * *C || out->shape[0] != *B || out->shape[1] != *T)
        cg_tensor_fail(fn, "qkv [B, T, 3C] vs out [B, T, C] mismatch");
    if (H <= 0 || *C % H) cg_tensor_fail(fn, "width %lld not divisible by %d heads", (long long)*C, H);
    if (cg_tensor_numel(att) != *B * H * *T * *T) cg_tensor_fail(fn, "att must be [B, H, T, T]");
}

void cg_attention_forward(cg_tensor *out, cg_tensor *att, const cg_tensor *qkv, int n_heads, int causal,
                          const uint8_t *key_mask) {
    int64_t B, T, C;
    dims("cg_attention_forward", out, att, qkv, n_heads, &B, &T, &C);
    int64_t H = n_heads, D = C / H, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)D);
    cg_gemm_init();
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < B * H; bh++) {
        int64_t b = bh / H, h = bh % H;
        const float *q = qkv->data + b * T * C3 + h * D, *k = q + C, *v = q + 2 * C;
        float *P = att->data + bh * T * T;
        const uint8_t *km = key_mask ? key_mask + b * T : NULL;
        cg_gemm(0, 1, (int)T, (int)T, (int)D, scale, q, (int)C3, k, (int)C3, 0.0f, P, (int)T);
        for (int64_t i = 0; i < T; i++) {
            float *row = P + i * T;
            int64_t jmax = causal ? i + 1 : T;
            float mx = -INFINITY;
            for (int64_t j = 0; j < jmax; j++)
                if (!km || km[j]) mx = row[j] > mx ? row[j] : mx;
            if (mx == -INFINITY) {  /* no key allowed */
                for (int64_t j = 0; j < T; j++) row[j] = 0.0f;
                continue;
            }
            float sum = 0.0f;
            for (int64_t j = 0; j < jmax; j++) {
                float e = (!km || km[j]) ? expf(row[j] - mx) : 0.0f;
                row[j] = e;
                sum += e;
            }
            float inv = 1.0f / sum;
            for (int64_t j = 0; j < jmax; j++) row[j] *= inv;
            for (int64_t j = jmax; j < T; j++) row[j] = 0.0f;
        }
        cg_gemm(0, 0, (int)T, (int)D, (int)T, 1.0f, P, (int)T, v, (int)C3, 0.0f, out->data + b * T * C + h * D, (int)C);
    }
}

void cg_attention_backward(cg_tensor *dqkv, const cg_tensor *dout, const cg_tensor *qkv, const cg_tensor *att,
                           int n_heads) {
    int64_t B, T, C;
    dims("cg_attention_backward", (cg_tensor *)dout, (cg_tensor *)att, qkv, n_heads, &B, &T, &C);
    if (!cg_tensor_same_shape(dqkv, qkv)) cg_tensor_fail("cg_attention_backward", "dqkv must be shaped like qkv");
    int64_t H = n_heads, D = C / H, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)D);
    cg_gemm_init();
#pragma omp parallel
    {
        float *dP = cg_xmalloc((size_t)(T * T) * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (int64_t bh = 0; bh < B * H; bh++) {
            int64_t b = bh / H, h = bh % H;
            const float *q = qkv->data + b * T * C3 + h * D, *k = q + C, *v = q + 2 * C;
            float *dq = dqkv->data + b * T * C3 + h * D, *dk = dq + C, *dv = dq + 2 * C;
            const float *P = att->data + bh * T * T, *dO = dout->data + b * T * C + h * D;
            cg_gemm(0, 1, (int)T, (int)T, (int)D, 1.0f, dO, (int)C, v, (int)C3, 0.0f, dP, (int)T);
            cg_gemm(1, 0, (int)T, (int)D, (int)T, 1.0f, P, (int)T, dO, (int)C, 1.0f, dv, (int)C3);
            for (int64_t i = 0; i < T; i++) {
                const float *pr = P + i * T;
                float *dr = dP + i * T;
                float dot = 0.0f;
                for (int64_t j = 0; j < T; j++) dot += pr[j] * dr[j];
                for (int64_t j = 0; j < T; j++) dr[j] = pr[j] * (dr[j] - dot);
            }
            cg_gemm(0, 0, (int)T, (int)D, (int)T, scale, dP, (int)T, k, (int)C3, 1.0f, dq, (int)C3);
            cg_gemm(1, 0, (int)T, (int)D, (int)T, scale, dP, (int)T, q, (int)C3, 1.0f, dk, (int)C3);
        }
        free(dP);
    }
}
