/* Tests for src/models/clip_model.c beyond the golden training test (tests/test_clip_train.c):
 * the gradient of a step with micro-batches (gradient accumulation) is the true gradient of the
 * micro-batched loss (central differences), and its second pass reproduces the first pass's
 * features exactly, DropPath included. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/log.h"
#include "core/rng.h"
#include "models/clip_model.h"

enum { B = 8, S = 32, T = 12, V = 100, ACCUM = 2 };

static void make_batch(float *images, int32_t *ids) {
    cg_rng r;
    cg_rng_seed(&r, 11);
    cg_rng_fill_normal(&r, images, (size_t)B * 3 * S * S, 0, 1);
    for (int b = 0; b < B; b++) {
        int len = 3 + (int)cg_rng_below(&r, T - 4);
        for (int t = 0; t < T; t++) ids[b * T + t] = t == 0 ? V - 2 : t < len ? 1 + (int32_t)cg_rng_below(&r, V - 3) : t == len ? V - 1 : 0;
    }
}

static int build(clip_model *m, float drop_path) {
    clip_model_options o = {.image_encoder = "starnet_s050", .text_encoder = "clip:tiny", .embed_dim = 32,
                            .drop_path = drop_path, .seed = 3, .vocab_size = V, .pad_id = 0, .eos_id = V - 1};
    return clip_model_create(m, &o);
}

static float loss_at(clip_model *m, const float *images, const int32_t *ids) {
    float loss = 0;
    if (clip_model_step_accum(m, images, B, S, ids, T, ACCUM, &loss, NULL)) return NAN;
    return loss;
}

static void test_accumulated_gradient_is_exact(void) {
    clip_model m;
    if (build(&m, 0.0f)) { fprintf(stderr, "  %s\n", cg_error_message()); CHECK(0); return; }
    float *images = malloc((size_t)B * 3 * S * S * sizeof *images);
    int32_t ids[B * T];
    make_batch(images, ids);
    float loss = loss_at(&m, images, ids);
    CHECK(isfinite(loss));
    /* a few scalars from all over the model (not the stem: at 32 px with random inputs its loss
     * surface is full of ReLU6 kinks, and central differences disagree even without micro-batches) */
    struct { cg_params *p; const char *name; int64_t k; } probe[] = {
        {&m.scale, "logit_scale", 0},
        {&m.image.params, "head.weight", 5},
        {&m.image.params, "stages.1.1.f1.conv.weight", 3},
        {&m.text.params, "text_projection.weight", 9},
        {&m.text.params, "text_model.encoder.layers.0.mlp.fc1.weight", 4},
        {&m.text.params, "text_model.embeddings.token_embedding.weight", (int64_t)ids[1] * 128 + 2},
    };
    int n = sizeof probe / sizeof *probe;
    float analytic[16];
    for (int j = 0; j < n; j++) {
        int i = cg_params_find(probe[j].p, probe[j].name);
        CHECK(i >= 0);
        analytic[j] = i >= 0 ? probe[j].p->grads[probe[j].p->e[i].offset + probe[j].k] : 0;
    }
    double worst = 0;
    for (int j = 0; j < n; j++) {
        int i = cg_params_find(probe[j].p, probe[j].name);
        if (i < 0) continue;
        float *w = &probe[j].p->params[probe[j].p->e[i].offset + probe[j].k];
        float w0 = *w, h = 2e-3f;
        *w = w0 + h;
        double lp = loss_at(&m, images, ids);
        *w = w0 - h;
        double lm = loss_at(&m, images, ids);
        *w = w0;
        double numeric = (lp - lm) / (2 * h);
        double err = fabs(numeric - analytic[j]) / fmax(fabs(numeric), 1e-2);
        fprintf(stderr, "    %-48s analytic %+.6f numeric %+.6f\n", probe[j].name, analytic[j], numeric);
        if (err > worst) worst = err;
    }
    CHECK(worst < 3e-2);
    free(images);
    clip_model_free(&m);
}

static void test_second_pass_reproduces_features(void) {
    clip_model m;
    if (build(&m, 0.2f)) { CHECK(0); return; }
    float *images = malloc((size_t)B * 3 * S * S * sizeof *images);
    int32_t ids[B * T];
    make_batch(images, ids);
    int64_t before = m.image.params.counters[0];
    float loss = 0;
    CHECK_EQ_INT(clip_model_step_accum(&m, images, B, S, ids, T, ACCUM, &loss, NULL), CG_OK);
    size_t row = (size_t)(B / ACCUM) * m.embed_dim;
    /* the last micro-batch's pass-2 outputs are still in the towers */
    CHECK(memcmp(m.image.emb.data, m.feat_img + (ACCUM - 1) * row, row * sizeof(float)) == 0);
    CHECK(memcmp(m.text.emb.data, m.feat_txt + (ACCUM - 1) * row, row * sizeof(float)) == 0);
    /* BatchNorm counted each micro-batch once */
    CHECK_EQ_INT(m.image.params.counters[0] - before, ACCUM);
    /* a batch that does not split evenly is refused */
    CHECK_EQ_INT(clip_model_step_accum(&m, images, B, S, ids, T, 3, &loss, NULL), CG_ERR_USAGE);
    free(images);
    clip_model_free(&m);
}

int main(void) {
    TEST_RUN(test_accumulated_gradient_is_exact);
    TEST_RUN(test_second_pass_reproduces_features);
    return TEST_REPORT();
}
