#include "nn/clip_loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "nn/gemm.h"

void clip_loss_init(clip_loss *c, int B, int D) {
    memset(c, 0, sizeof *c);
    c->B = B;
    c->D = D;
    c->ni = cg_xcalloc((size_t)B * D, sizeof(float));
    c->nt = cg_xcalloc((size_t)B * D, sizeof(float));
    c->norm_i = cg_xcalloc((size_t)B, sizeof(float));
    c->norm_t = cg_xcalloc((size_t)B, sizeof(float));
    c->logits = cg_xcalloc((size_t)B * B, sizeof(float));
    c->p_rows = cg_xcalloc((size_t)B * B, sizeof(float));
    c->p_cols = cg_xcalloc((size_t)B * B, sizeof(float));
}

void clip_loss_free(clip_loss *c) {
    free(c->ni); free(c->nt); free(c->norm_i); free(c->norm_t);
    free(c->logits); free(c->p_rows); free(c->p_cols);
    memset(c, 0, sizeof *c);
}

void l2_normalize_rows(const float *x, float *y, float *norms, int B, int D) {
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int d = 0; d < D; d++) s += (double)x[(size_t)b * D + d] * x[(size_t)b * D + d];
        float r = (float)sqrt(s);
        if (r < 1e-12f) r = 1e-12f;
        if (norms) norms[b] = r;
        for (int d = 0; d < D; d++) y[(size_t)b * D + d] = x[(size_t)b * D + d] / r;
    }
}

/* dx = (dn - n <n, dn>) / ||x||, row by row (dn is overwritten with dx). */
static void l2_normalize_backward(float *dn, const float *n, const float *norm, int B, int D) {
    for (int b = 0; b < B; b++) {
        double dot = 0;
        for (int d = 0; d < D; d++) dot += (double)n[b * D + d] * dn[b * D + d];
        for (int d = 0; d < D; d++) dn[b * D + d] = (dn[b * D + d] - n[b * D + d] * (float)dot) / norm[b];
    }
}

float clip_loss_forward(clip_loss *c, const float *xi, const float *xt, float logit_scale, float *acc_i2t,
                        float *acc_t2i) {
    int B = c->B, D = c->D;
    l2_normalize_rows(xi, c->ni, c->norm_i, B, D);
    l2_normalize_rows(xt, c->nt, c->norm_t, B, D);
    c->scale = expf(logit_scale);
    cg_gemm(0, 1, B, B, D, c->scale, c->ni, D, c->nt, D, 0.0f, c->logits, B);
    double loss = 0;
    int hit_i = 0, hit_t = 0;
    for (int r = 0; r < B; r++) {  /* rows: image r against every text */
        const float *L = c->logits + (size_t)r * B;
        float mx = L[0];
        int arg = 0;
        for (int j = 1; j < B; j++) if (L[j] > mx) { mx = L[j]; arg = j; }
        double z = 0;
        for (int j = 0; j < B; j++) z += exp((double)L[j] - mx);
        for (int j = 0; j < B; j++) c->p_rows[(size_t)r * B + j] = (float)(exp((double)L[j] - mx) / z);
        loss += (log(z) + mx - L[r]) / (2.0 * B);
        hit_i += arg == r;
    }
    for (int col = 0; col < B; col++) {  /* columns: text col against every image */
        float mx = c->logits[col];
        int arg = 0;
        for (int i = 1; i < B; i++) if (c->logits[(size_t)i * B + col] > mx) { mx = c->logits[(size_t)i * B + col]; arg = i; }
        double z = 0;
        for (int i = 0; i < B; i++) z += exp((double)c->logits[(size_t)i * B + col] - mx);
        for (int i = 0; i < B; i++)
            c->p_cols[(size_t)i * B + col] = (float)(exp((double)c->logits[(size_t)i * B + col] - mx) / z);
        loss += (log(z) + mx - c->logits[(size_t)col * B + col]) / (2.0 * B);
        hit_t += arg == col;
    }
    if (acc_i2t) *acc_i2t = (float)hit_i / B;
    if (acc_t2i) *acc_t2i = (float)hit_t / B;
    return (float)loss;
}

void clip_loss_backward(const clip_loss *c, float *dxi, float *dxt, float *dlogit_scale) {
    int B = c->B, D = c->D;
    float *G = cg_xmalloc((size_t)B * B * sizeof *G);
    double dscale_log = 0;
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            size_t k = (size_t)i * B + j;
            float g = (c->p_rows[k] + c->p_cols[k] - 2.0f * (i == j)) / (2.0f * B);
            G[k] = g;
            dscale_log += (double)g * c->logits[k];  /* dL/dlogit_scale = sum G * L (L = s * sim) */
        }
    cg_gemm(0, 0, B, D, B, c->scale, G, B, c->nt, D, 0.0f, dxi, D);
    cg_gemm(1, 0, B, D, B, c->scale, G, B, c->ni, D, 0.0f, dxt, D);
    l2_normalize_backward(dxi, c->ni, c->norm_i, B, D);
    l2_normalize_backward(dxt, c->nt, c->norm_t, B, D);
    if (dlogit_scale) *dlogit_scale = (float)dscale_log;
    free(G);
}
