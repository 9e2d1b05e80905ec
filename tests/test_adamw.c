/* Tests for src/train/adamw.c and schedule.c against torch.optim.AdamW, open_clip's cosine_lr
 * and torch's clip_grad_norm_ (golden file from tools/reference/optim_golden.py). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "nn/params.h"
#include "train/adamw.h"
#include "train/schedule.h"

#define GOLDEN TEST_SOURCE_DIR "/golden/optim/optim.safetensors"


static void setup(cg_params *p) {
    cg_params_init(p);
    cg_params_add(p, "w", CG_KIND_PARAM, 2, (int64_t[]){6, 5});
    cg_params_add(p, "ln.weight", CG_KIND_PARAM, 1, (int64_t[]){5});
    cg_params_add(p, "proj.bias", CG_KIND_PARAM, 1, (int64_t[]){5});
    cg_params_alloc(p);
}

static int read_into(const cg_safetensors *st, const cg_params *p, int i, const char *suffix, float *dst) {
    char name[128];
    snprintf(name, sizeof name, "%s%s", p->e[i].name, suffix);
    return cg_st_read_f32(st, name, dst, p->e[i].ndim, p->e[i].shape);
}

static void test_matches_torch_adamw(void) {
    cg_safetensors st;
    int rc = cg_st_open(GOLDEN, &st);
    CHECK_EQ_INT(rc, CG_OK);
    if (rc) { fprintf(stderr, "  %s\n", cg_error_message()); return; }
    cg_params p;
    setup(&p);
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(read_into(&st, &p, i, ".init", p.params + p.e[i].offset), CG_OK);
    adamw_state opt;
    adamw_init(&opt, &p);
    CHECK(opt.decay[0] && !opt.decay[1] && !opt.decay[2]);
    adamw_config cfg = {0.9f, 0.98f, 1e-6f, 0.2f};
    double golden_lr[5];
    float golden_norm[5], expect[64];
    CHECK_EQ_INT(cg_st_read_f32(&st, "grad_norm", golden_norm, 1, (int64_t[]){5}), CG_OK);
    const cg_st_tensor *lr_t = cg_st_find(&st, "lr");
    CHECK(lr_t && lr_t->nbytes == sizeof golden_lr);
    if (lr_t) memcpy(golden_lr, lr_t->data, sizeof golden_lr);
    double worst = 0;
    for (int k = 0; k < 5; k++) {
        char suffix[32];
        snprintf(suffix, sizeof suffix, ".grad.%d", k);
        for (int i = 0; i < 3; i++) CHECK_EQ_INT(read_into(&st, &p, i, suffix, p.grads + p.e[i].offset), CG_OK);
        double lr = lr_at_step(LR_COSINE, 0.05, 2, 5, k);
        CHECK_NEAR(lr, golden_lr[k], 1e-15);
        cg_params *sets[1] = {&p};
        const unsigned char *fr[1] = {opt.frozen};
        float norm = clip_grad_norm(sets, fr, 1, 1.0f);
        CHECK_NEAR(norm, golden_norm[k], 1e-5 * golden_norm[k]);
        adamw_step(&opt, &p, &cfg, (float)lr);
        snprintf(suffix, sizeof suffix, ".after.%d", k);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ_INT(read_into(&st, &p, i, suffix, expect), CG_OK);
            const float *got = p.params + p.e[i].offset;
            for (int64_t j = 0; j < p.e[i].numel; j++) {
                double err = fabs(got[j] - expect[j]) / fmax(fabs(expect[j]), 1e-3);
                if (err > worst) worst = err;
            }
        }
    }
    fprintf(stderr, "    worst relative error after 5 AdamW steps vs torch: %.3g\n", worst);
    CHECK(worst <= 1e-5);
    adamw_free(&opt);
    cg_params_free(&p);
    cg_st_close(&st);
}

static void test_frozen_params_do_not_move(void) {
    cg_params p;
    setup(&p);
    for (int64_t j = 0; j < p.n_params; j++) { p.params[j] = 1.0f; p.grads[j] = 0.5f; }
    adamw_state opt;
    adamw_init(&opt, &p);
    CHECK_EQ_INT(adamw_freeze_prefix(&opt, &p, "ln."), 1);
    cg_params *sets[2] = {&p, &p};
    const unsigned char *fr[2] = {opt.frozen, opt.frozen};
    float norm_all = clip_grad_norm(sets, NULL, 1, 1e9f);
    float norm_trainable = clip_grad_norm(sets, fr, 1, 1e9f);
    CHECK_NEAR(clip_grad_norm(sets, fr, 2, 0), sqrtf(70 * 0.25f), 1e-5);   /* two sets: one global norm */
    CHECK_NEAR(norm_all, sqrtf(40 * 0.25f), 1e-5);
    CHECK_NEAR(norm_trainable, sqrtf(35 * 0.25f), 1e-5);   /* frozen grads do not count */
    adamw_config cfg = ADAMW_DEFAULTS;
    adamw_step(&opt, &p, &cfg, 0.1f);
    const float *ln = p.params + p.e[1].offset, *w = p.params + p.e[0].offset;
    for (int j = 0; j < 5; j++) CHECK(ln[j] == 1.0f);
    CHECK(w[0] < 1.0f);
    adamw_free(&opt);
    cg_params_free(&p);
}

static void test_decay_rule_on_real_names(void) {
    /* timm StarNet and Hugging Face CLIP/BERT names */
    CHECK(adamw_decays("stages.0.1.dwconv.conv.weight", 4));
    CHECK(!adamw_decays("stages.0.1.dwconv.bn.weight", 1));
    CHECK(!adamw_decays("stem.0.conv.bias", 1));
    CHECK(adamw_decays("text_model.encoder.layers.0.mlp.fc1.weight", 2));
    CHECK(!adamw_decays("text_model.encoder.layers.0.layer_norm1.weight", 1));
    CHECK(!adamw_decays("text_model.embeddings.position_embedding.weight", 2));
    CHECK(!adamw_decays("bert.embeddings.token_type_embeddings.weight", 2));
    CHECK(!adamw_decays("bert.embeddings.LayerNorm.weight", 1));
    CHECK(adamw_decays("bert.embeddings.word_embeddings.weight", 2));
    CHECK(!adamw_decays("logit_scale", 0));
}

static void test_schedule_shape(void) {
    CHECK_NEAR(lr_at_step(LR_COSINE, 1.0, 10, 110, 0), 0.1, 1e-12);
    CHECK_NEAR(lr_at_step(LR_COSINE, 1.0, 10, 110, 9), 1.0, 1e-12);
    CHECK_NEAR(lr_at_step(LR_COSINE, 1.0, 10, 110, 10), 1.0, 1e-12);
    CHECK_NEAR(lr_at_step(LR_COSINE, 1.0, 10, 110, 60), 0.5, 1e-12);
    CHECK_NEAR(lr_at_step(LR_COSINE, 1.0, 10, 110, 110), 0.0, 1e-12);
    CHECK_NEAR(lr_at_step(LR_COSINE, 1.0, 10, 110, 500), 0.0, 1e-12);  /* past the end: stays at 0 */
    CHECK_NEAR(lr_at_step(LR_CONST, 2.0, 4, 100, 1), 1.0, 1e-12);
    CHECK_NEAR(lr_at_step(LR_CONST, 2.0, 4, 100, 50), 2.0, 1e-12);
    CHECK_NEAR(lr_at_step(LR_COSINE, 1.0, 0, 0, 3), 1.0, 1e-12);       /* no span: constant */
}

int main(void) {
    TEST_RUN(test_matches_torch_adamw);
    TEST_RUN(test_frozen_params_do_not_move);
    TEST_RUN(test_decay_rule_on_real_names);
    TEST_RUN(test_schedule_shape);
    return TEST_REPORT();
}
