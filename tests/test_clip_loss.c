/* Tests for src/nn/clip_loss.c: against open_clip's ClipLoss in torch (golden file from
 * tools/reference/clip_loss_golden.py) and against central finite differences. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "nn/clip_loss.h"

#define GOLDEN TEST_SOURCE_DIR "/golden/clip_loss/clip_loss.safetensors"

static double max_rel(const float *a, const float *b, int n) {
    double amax = 0, err = 0;
    for (int i = 0; i < n; i++) {
        amax = fmax(amax, fabs(b[i]));
        err = fmax(err, fabs(a[i] - b[i]));
    }
    return err / fmax(amax, 1e-12);
}

static void test_matches_torch(void) {
    cg_safetensors st;
    if (cg_st_open(GOLDEN, &st) != CG_OK) { fprintf(stderr, "  %s\n", cg_error_message()); CHECK(0); return; }
    enum { B = 8, D = 16 };
    float xi[B * D], xt[B * D], dxi[B * D], dxt[B * D], gxi[B * D], gxt[B * D], ls, loss, gdls;
    int64_t shape[2] = {B, D}, one[1] = {1};
    CHECK_EQ_INT(cg_st_read_f32(&st, "xi", xi, 2, shape), CG_OK);
    CHECK_EQ_INT(cg_st_read_f32(&st, "xt", xt, 2, shape), CG_OK);
    CHECK_EQ_INT(cg_st_read_f32(&st, "d_xi", gxi, 2, shape), CG_OK);
    CHECK_EQ_INT(cg_st_read_f32(&st, "d_xt", gxt, 2, shape), CG_OK);
    CHECK_EQ_INT(cg_st_read_f32(&st, "logit_scale", &ls, 1, one), CG_OK);
    CHECK_EQ_INT(cg_st_read_f32(&st, "loss", &loss, 1, one), CG_OK);
    CHECK_EQ_INT(cg_st_read_f32(&st, "d_logit_scale", &gdls, 1, one), CG_OK);
    clip_loss c;
    clip_loss_init(&c, B, D);
    float acc_i, acc_t;
    float got = clip_loss_forward(&c, xi, xt, ls, &acc_i, &acc_t);
    float dls;
    clip_loss_backward(&c, dxi, dxt, &dls);
    double e_loss = fabs(got - loss) / fabs(loss), e_xi = max_rel(dxi, gxi, B * D), e_xt = max_rel(dxt, gxt, B * D);
    double e_ls = fabs(dls - gdls) / fabs(gdls);
    fprintf(stderr, "    vs torch: loss %.3g, d_xi %.3g, d_xt %.3g, d_logit_scale %.3g (relative)\n", e_loss, e_xi,
            e_xt, e_ls);
    CHECK(e_loss <= 1e-5);
    CHECK(e_xi <= 1e-4 && e_xt <= 1e-4 && e_ls <= 1e-4);
    CHECK(acc_i >= 0 && acc_i <= 1 && acc_t >= 0 && acc_t <= 1);
    clip_loss_free(&c);
    cg_st_close(&st);
}

/* Central differences in double-checked float: directional derivative along a random direction. */
static void test_finite_differences(void) {
    enum { B = 5, D = 7 };
    float xi[B * D], xt[B * D], dxi[B * D], dxt[B * D], ui[B * D], ut[B * D], p[B * D], q[B * D];
    cg_rng r;
    cg_rng_seed(&r, 99);
    cg_rng_fill_normal(&r, xi, B * D, 0, 1);
    cg_rng_fill_normal(&r, xt, B * D, 0, 1);
    cg_rng_fill_normal(&r, ui, B * D, 0, 1);
    cg_rng_fill_normal(&r, ut, B * D, 0, 1);
    float ls = 1.2f, dls;
    clip_loss c;
    clip_loss_init(&c, B, D);
    clip_loss_forward(&c, xi, xt, ls, NULL, NULL);
    clip_loss_backward(&c, dxi, dxt, &dls);
    double analytic = 0;
    for (int k = 0; k < B * D; k++) analytic += (double)dxi[k] * ui[k] + (double)dxt[k] * ut[k];
    const float h = 1e-2f;
    for (int k = 0; k < B * D; k++) { p[k] = xi[k] + h * ui[k]; q[k] = xt[k] + h * ut[k]; }
    double lp = clip_loss_forward(&c, p, q, ls, NULL, NULL);
    for (int k = 0; k < B * D; k++) { p[k] = xi[k] - h * ui[k]; q[k] = xt[k] - h * ut[k]; }
    double lm = clip_loss_forward(&c, p, q, ls, NULL, NULL);
    double numeric = (lp - lm) / (2 * h);
    CHECK_NEAR(analytic, numeric, 2e-3 * fmax(1.0, fabs(numeric)));
    double sp = clip_loss_forward(&c, xi, xt, ls + h, NULL, NULL), sm = clip_loss_forward(&c, xi, xt, ls - h, NULL, NULL);
    CHECK_NEAR(dls, (sp - sm) / (2 * h), 2e-3 * fmax(1.0, fabs(dls)));
    clip_loss_free(&c);
}

static void test_perfect_alignment_gives_low_loss(void) {
    enum { B = 4, D = 4 };
    float x[B * D] = {0};
    for (int b = 0; b < B; b++) x[b * D + b] = 3.0f;  /* orthogonal, identical pairs */
    clip_loss c;
    clip_loss_init(&c, B, D);
    float ai, at;
    float loss = clip_loss_forward(&c, x, x, logf(100.0f), &ai, &at);
    CHECK(loss < 1e-6f);
    CHECK_NEAR(ai, 1.0, 0);
    CHECK_NEAR(at, 1.0, 0);
    /* with scale 1 (logit_scale 0) the same features give log(B) - 1 + log-sum stuff: just > 0 and < log(B) */
    loss = clip_loss_forward(&c, x, x, 0.0f, NULL, NULL);
    CHECK(loss > 0.5f && loss < logf(B));
    clip_loss_free(&c);
}

int main(void) {
    TEST_RUN(test_matches_torch);
    TEST_RUN(test_finite_differences);
    TEST_RUN(test_perfect_alignment_gives_low_loss);
    return TEST_REPORT();
}
