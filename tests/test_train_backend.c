/* test_train_backend.c — train/backend.h: the CPU backend and the loading of a device plugin.
 *
 *   cpu step      a step through the backend leaves the model, the AdamW states and the reported
 *                 loss / accuracy / gradient norm / logit scale exactly (bit for bit) as the
 *                 trainer's sequence written out by hand (clip_model_step, clip_grad_norm over the
 *                 sets, adamw_step per set, the clamp), with and without a frozen text tower;
 *                 a non-finite loss leaves the model untouched; eval embeddings equal
 *                 clip_model_encode_*; an evaluation-only backend refuses steps; bf16 is refused.
 *   plugin        CLIPGRID_CUDA_BACKEND at a missing file, at a file that is not a library, and at
 *                 a plugin of another ABI or layout fingerprint, at a bare name (a file here,
 *                 not a library search): CG_ERR_DEVICE naming the file and the reason. Then the
 *                 fake plugin of the right ABI (tests/fake_backend): probe says "fake device",
 *                 and its steps (CPU arithmetic reached through this executable's exported
 *                 symbols) match the built-in CPU backend bit for bit.
 * The real plugin is loaded by the clipgrid binary in test_cuda_train.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/rng.h"
#include "train/backend.h"

enum { B = 4, S = 32, E = 32 };

static int make_model(clip_model *m, int freeze, float drop) {
    clip_model_options o = {.image_encoder = "starnet_s050", .text_encoder = "clip:tiny", .embed_dim = E,
                            .drop_path = drop, .seed = 7, .vocab_size = 0, .pad_id = -1, .eos_id = -1,
                            .freeze_text = freeze};
    int rc = clip_model_create(m, &o);
    if (rc) fprintf(stderr, "  clip_model_create: %s\n", cg_error_message());
    return rc;
}

typedef struct {
    clip_model m;
    adamw_state oi, ot, os;
} run_state;

static int state_init(run_state *r, int freeze, float drop) {
    memset(r, 0, sizeof *r);
    if (make_model(&r->m, freeze, drop)) return 1;
    adamw_init(&r->oi, &r->m.image.params);
    adamw_init(&r->ot, &r->m.text.params);
    adamw_init(&r->os, &r->m.scale);
    return 0;
}

static void state_free(run_state *r) {
    adamw_free(&r->oi);
    adamw_free(&r->ot);
    adamw_free(&r->os);
    clip_model_free(&r->m);
}

static const adamw_config ACFG = {0.9f, 0.98f, 1e-6f, 0.2f};

static train_backend_args args_for(run_state *r, int freeze) {
    train_backend_args a = {.model = &r->m, .opt_img = &r->oi, .opt_txt = freeze ? NULL : &r->ot, .opt_scale = &r->os,
                            .acfg = ACFG, .grad_clip = 0.5f, .batch = B, .image_size = S,
                            .context = r->m.text.cfg.context, .accum_steps = 1, .precision = TRAIN_PREC_FP32};
    return a;
}

/* a batch: images N(0, 1); CLIP texts: random ids, the end-of-text id (vocab - 1, the largest)
 * at a random length, zeros after */
static void make_batch(const clip_model *m, uint64_t seed, float *images, int32_t *ids) {
    cg_rng rng;
    cg_rng_seed(&rng, seed);
    cg_rng_fill_normal(&rng, images, (size_t)B * 3 * S * S, 0.0f, 1.0f);
    const cg_text_config *c = &m->text.cfg;
    int T = c->context;
    for (int b = 0; b < B; b++) {
        int n = 3 + (int)cg_rng_below(&rng, (uint64_t)(T - 3));
        for (int t = 0; t < T; t++)
            ids[b * T + t] = t < n - 1 ? 1 + (int32_t)cg_rng_below(&rng, (uint64_t)(c->vocab_size - 2))
                             : t == n - 1 ? c->vocab_size - 1 : 0;
    }
}

/* the trainer's step, written out */
static void manual_step(run_state *r, int freeze, const float *images, const int32_t *ids, float lr,
                        train_step_result *out) {
    clip_model *m = &r->m;
    CHECK(clip_model_step(m, images, B, S, ids, m->text.cfg.context, &out->loss, &out->acc_i2t) == CG_OK);
    cg_params *sets[3] = {&m->image.params, freeze ? &m->scale : &m->text.params, &m->scale};
    const unsigned char *fr[3] = {r->oi.frozen, freeze ? r->os.frozen : r->ot.frozen, r->os.frozen};
    out->grad_norm = clip_grad_norm(sets, fr, freeze ? 2 : 3, 0.5f);
    adamw_step(&r->oi, &m->image.params, &ACFG, lr);
    if (!freeze) adamw_step(&r->ot, &m->text.params, &ACFG, lr);
    adamw_step(&r->os, &m->scale, &ACFG, lr);
    clip_model_clamp_scale(m);
    out->logit_scale = m->scale.params[0];
}

static int same_floats(const float *a, const float *b, int64_t n) { return !memcmp(a, b, (size_t)n * sizeof *a); }

static int same_state(const run_state *a, const run_state *b) {
    return same_floats(a->m.image.params.params, b->m.image.params.params, a->m.image.params.n_params) &&
           same_floats(a->m.image.params.buffers, b->m.image.params.buffers, a->m.image.params.n_buffers) &&
           same_floats(a->m.text.params.params, b->m.text.params.params, a->m.text.params.n_params) &&
           same_floats(a->m.scale.params, b->m.scale.params, 1) &&
           same_floats(a->oi.m, b->oi.m, a->m.image.params.n_params) &&
           same_floats(a->oi.v, b->oi.v, a->m.image.params.n_params) && a->oi.step == b->oi.step &&
           a->m.image.rng.state == b->m.image.rng.state;
}

/* Three steps through `device` ("cpu", or "cuda" resolved to a fake plugin) vs by hand. */
static void compare_steps(const char *device, int freeze, float drop) {
    run_state a, b;
    if (state_init(&a, freeze, drop) || state_init(&b, freeze, drop)) { CHECK(0); return; }
    train_backend be;
    train_backend_args args = args_for(&a, freeze);
    int rc = train_backend_open(device, &args, &be);
    CHECK_EQ_INT(rc, CG_OK);
    if (rc) { fprintf(stderr, "  %s\n", cg_error_message()); state_free(&a); state_free(&b); return; }
    int T = a.m.text.cfg.context;
    float *images = malloc((size_t)B * 3 * S * S * sizeof *images);
    int32_t *ids = malloc((size_t)B * T * sizeof *ids);
    for (int s = 0; s < 3; s++) {
        make_batch(&a.m, 100 + (uint64_t)s, images, ids);
        float lr = 1e-3f * (float)(s + 1);
        train_step_result ra, rb;
        CHECK_EQ_INT(train_backend_step(&be, images, ids, lr, &ra), CG_OK);
        manual_step(&b, freeze, images, ids, lr, &rb);
        CHECK(ra.loss == rb.loss && ra.acc_i2t == rb.acc_i2t && ra.grad_norm == rb.grad_norm &&
              ra.logit_scale == rb.logit_scale);
        CHECK(isfinite(ra.loss) && ra.grad_norm > 0);
    }
    CHECK_EQ_INT(train_backend_to_host(&be), CG_OK);
    CHECK(same_state(&a, &b));
    if (freeze) CHECK(a.ot.step == 0);
    /* eval embeddings: the model's own */
    float *e1 = malloc((size_t)B * E * sizeof *e1), *e2 = malloc((size_t)B * E * sizeof *e2);
    CHECK_EQ_INT(train_backend_encode_images(&be, images, B, e1), CG_OK);
    clip_model_encode_images(&b.m, images, B, S, e2);
    CHECK(same_floats(e1, e2, (int64_t)B * E));
    CHECK_EQ_INT(train_backend_encode_texts(&be, ids, B, e1), CG_OK);
    CHECK_EQ_INT(clip_model_encode_texts(&b.m, ids, B, T, e2), CG_OK);
    CHECK(same_floats(e1, e2, (int64_t)B * E));
    train_backend_info info;
    train_backend_info_get(&be, &info);
    CHECK(info.allocated_bytes == 0 && info.device_used_bytes == 0);
    train_backend_close(&be);
    CHECK(be.ops == NULL);
    free(e1); free(e2); free(images); free(ids);
    state_free(&a);
    state_free(&b);
}

static void test_cpu_step_matches_trainer(void) { compare_steps("cpu", 0, 0.0f); }
static void test_cpu_step_frozen_text(void) { compare_steps("cpu", 1, 0.0f); }
static void test_cpu_step_drop_path(void) { compare_steps("cpu", 0, 0.2f); }

/* A NaN loss: reported, and the model keeps its values (nothing to save from a bad step). */
static void test_cpu_nonfinite_loss_leaves_model(void) {
    run_state a;
    if (state_init(&a, 0, 0.0f)) { CHECK(0); return; }
    train_backend be;
    train_backend_args args = args_for(&a, 0);
    CHECK_EQ_INT(train_backend_open("cpu", &args, &be), CG_OK);
    int T = a.m.text.cfg.context;
    float *images = malloc((size_t)B * 3 * S * S * sizeof *images);
    int32_t *ids = malloc((size_t)B * T * sizeof *ids);
    make_batch(&a.m, 5, images, ids);
    images[17] = NAN;
    size_t n = (size_t)a.m.image.params.n_params;
    float *before = malloc(n * sizeof *before);
    memcpy(before, a.m.image.params.params, n * sizeof *before);
    train_step_result r;
    CHECK_EQ_INT(train_backend_step(&be, images, ids, 1e-3f, &r), CG_OK);
    CHECK(!isfinite(r.loss));
    CHECK(same_floats(before, a.m.image.params.params, (int64_t)n));
    CHECK_EQ_INT(a.oi.step, 0);
    train_backend_close(&be);
    free(before); free(images); free(ids);
    state_free(&a);
}

static void test_cpu_refusals(void) {
    run_state a;
    if (state_init(&a, 0, 0.0f)) { CHECK(0); return; }
    train_backend be;
    train_backend_args args = args_for(&a, 0);
    args.precision = TRAIN_PREC_BF16;
    CHECK_EQ_INT(train_backend_open("cpu", &args, &be), CG_ERR_USAGE);
    CHECK(strstr(cg_error_message(), "--precision bf16") != NULL);
    CHECK(be.ops == NULL);
    CHECK_EQ_INT(train_backend_open("tpu", &args, &be), CG_ERR_USAGE);
    CHECK(strstr(cg_error_message(), "--device tpu: cpu or cuda") != NULL);
    /* evaluation only: no optimizer states, so no steps */
    train_backend_args ev = {.model = &a.m, .image_size = S, .context = a.m.text.cfg.context};
    CHECK_EQ_INT(train_backend_open("cpu", &ev, &be), CG_OK);
    train_step_result r;
    CHECK_EQ_INT(train_backend_step(&be, NULL, NULL, 1e-3f, &r), CG_ERR_STATE);
    train_backend_close(&be);
    state_free(&a);
}

static void test_precision_names(void) {
    train_precision p = TRAIN_PREC_BF16;
    CHECK_EQ_INT(train_precision_parse("fp32", &p), CG_OK);
    CHECK_EQ_INT(p, TRAIN_PREC_FP32);
    CHECK_EQ_INT(train_precision_parse("bf16", &p), CG_OK);
    CHECK_EQ_INT(p, TRAIN_PREC_BF16);
    CHECK_EQ_STR(train_precision_name(p), "bf16");
    CHECK_EQ_INT(train_precision_parse("fp16", &p), CG_ERR_USAGE);
    CHECK(strstr(cg_error_message(), "--precision fp16: fp32 or bf16") != NULL);
}

/* The failures come first: a successful load is kept for the life of the process. */
static void test_plugin_load_failures(void) {
    char what[256];
    setenv("CLIPGRID_CUDA_BACKEND", "/nonexistent/libclipgrid-cuda.so", 1);
    CHECK_EQ_INT(train_backend_probe("cuda", 0, what, sizeof what), CG_ERR_DEVICE);
    CHECK(strstr(cg_error_message(), "no CUDA backend") && strstr(cg_error_message(), "/nonexistent/libclipgrid-cuda.so"));

    char *junk = cg_path_join(TEST_BINARY_DIR, "not-a-library.so");
    CHECK_EQ_INT(cg_file_write_atomic(junk, "hello\n", 6), CG_OK);
    setenv("CLIPGRID_CUDA_BACKEND", junk, 1);
    CHECK_EQ_INT(train_backend_probe("cuda", 0, what, sizeof what), CG_ERR_DEVICE);
    CHECK(strstr(cg_error_message(), "cannot load") && strstr(cg_error_message(), junk));
    free(junk);

    setenv("CLIPGRID_CUDA_BACKEND", FAKE_BACKEND_ABI_LIB, 1);
    CHECK_EQ_INT(train_backend_probe("cuda", 0, what, sizeof what), CG_ERR_DEVICE);
    CHECK(strstr(cg_error_message(), "speaks backend ABI 999") != NULL);

    setenv("CLIPGRID_CUDA_BACKEND", FAKE_BACKEND_LAYOUT_LIB, 1);
    CHECK_EQ_INT(train_backend_probe("cuda", 0, what, sizeof what), CG_ERR_DEVICE);
    CHECK(strstr(cg_error_message(), "other model structures") && strstr(cg_error_message(), "0000000000003039"));

    /* a bare name is a file in the current directory (here: none), not a library-path search */
    setenv("CLIPGRID_CUDA_BACKEND", "libc.so.6", 1);
    CHECK_EQ_INT(train_backend_probe("cuda", 0, what, sizeof what), CG_ERR_DEVICE);
    CHECK(strstr(cg_error_message(), "no CUDA backend") && strstr(cg_error_message(), "./libc.so.6"));
    unsetenv("CLIPGRID_CUDA_BACKEND");
}

static void test_plugin_fake_device(void) {
    setenv("CLIPGRID_CUDA_BACKEND", FAKE_BACKEND_GOOD, 1);
    char what[256] = "";
    CHECK_EQ_INT(train_backend_probe("cuda", 0, what, sizeof what), CG_OK);
    CHECK_EQ_STR(what, "fake device");
    CHECK_EQ_INT(train_backend_probe("cuda", 1, what, sizeof what), CG_ERR_DEVICE);
    CHECK(strstr(cg_error_message(), "no device 1") != NULL);
    compare_steps("cuda", 0, 0.1f);
    unsetenv("CLIPGRID_CUDA_BACKEND");
}

int main(void) {
    TEST_RUN(test_precision_names);
    TEST_RUN(test_cpu_step_matches_trainer);
    TEST_RUN(test_cpu_step_frozen_text);
    TEST_RUN(test_cpu_step_drop_path);
    TEST_RUN(test_cpu_nonfinite_loss_leaves_model);
    TEST_RUN(test_cpu_refusals);
    TEST_RUN(test_plugin_load_failures);
    TEST_RUN(test_plugin_fake_device);
    return TEST_REPORT();
}
