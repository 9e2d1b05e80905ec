/* Tests for src/train/checkpoint.c: save -> load is exact; `latest` only moves when both files
 * are complete; damaged or mismatched checkpoints are errors naming the file and tensor. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/rng.h"
#include "train/checkpoint.h"

static char tmpdir[256];

static void build(cg_params *p, int width) {
    cg_params_init(p);
    cg_params_add(p, "stem.0.conv.weight", CG_KIND_PARAM, 4, (int64_t[]){4, 3, 3, 3});
    cg_params_add(p, "stem.0.bn.weight", CG_KIND_PARAM, 1, (int64_t[]){4});
    cg_params_add(p, "stem.0.bn.running_mean", CG_KIND_BUFFER, 1, (int64_t[]){4});
    cg_params_add(p, "stem.0.bn.num_batches_tracked", CG_KIND_COUNTER, 0, (int64_t[]){1});
    cg_params_add(p, "text.proj.weight", CG_KIND_PARAM, 2, (int64_t[]){width, 4});
    cg_params_alloc(p);
}

static void fill(cg_params *p, adamw_state *opt, uint64_t seed) {
    cg_rng r;
    cg_rng_seed(&r, seed);
    cg_rng_fill_normal(&r, p->params, (size_t)p->n_params, 0, 1);
    cg_rng_fill_normal(&r, p->grads, (size_t)p->n_params, 0, 1);
    cg_rng_fill_normal(&r, p->buffers, (size_t)p->n_buffers, 0, 1);
    p->counters[0] = 17;
    adamw_config cfg = ADAMW_DEFAULTS;
    adamw_step(opt, p, &cfg, 1e-3f);
    adamw_step(opt, p, &cfg, 1e-3f);
}

static void test_roundtrip_is_exact(void) {
    char *out = cg_path_join(tmpdir, "run1");
    cg_params a, b;
    build(&a, 8);
    build(&b, 8);
    adamw_state oa, ob;
    adamw_init(&oa, &a);
    adamw_init(&ob, &b);
    fill(&a, &oa, 1);
    cJSON *state = cJSON_Parse("{\"epoch\": 3, \"rng\": \"12345678901234567890\", \"data_position\": 4096}");
    ckpt_group ga[1] = {{"visual.", &a, &oa}}, gb[1] = {{"visual.", &b, &ob}};
    CHECK_EQ_INT(ckpt_save(out, 200, ga, 1, state), CG_OK);
    int64_t latest = -1;
    CHECK_EQ_INT(ckpt_latest(out, &latest), CG_OK);
    CHECK_EQ_INT(latest, 200);
    cJSON *got = NULL;
    CHECK_EQ_INT(ckpt_load(out, 200, gb, 1, &got), CG_OK);
    CHECK(memcmp(a.params, b.params, (size_t)a.n_params * sizeof(float)) == 0);
    CHECK(memcmp(a.buffers, b.buffers, (size_t)a.n_buffers * sizeof(float)) == 0);
    CHECK(memcmp(oa.m, ob.m, (size_t)oa.n * sizeof(float)) == 0);
    CHECK(memcmp(oa.v, ob.v, (size_t)oa.n * sizeof(float)) == 0);
    CHECK_EQ_INT(b.counters[0], 17);
    CHECK_EQ_INT(ob.step, 2);
    CHECK(got && cJSON_GetObjectItem(got, "epoch")->valueint == 3);
    CHECK(got && !strcmp(cJSON_GetObjectItem(got, "rng")->valuestring, "12345678901234567890"));
    CHECK(got && cJSON_GetObjectItem(got, "step")->valueint == 200);
    /* continuing both gives identical parameters */
    adamw_config cfg = ADAMW_DEFAULTS;
    adamw_step(&oa, &a, &cfg, 1e-3f);
    memcpy(b.grads, a.grads, (size_t)a.n_params * sizeof(float));
    adamw_step(&ob, &b, &cfg, 1e-3f);
    CHECK(memcmp(a.params, b.params, (size_t)a.n_params * sizeof(float)) == 0);
    cJSON_Delete(got);
    cJSON_Delete(state);
    adamw_free(&oa); adamw_free(&ob);
    cg_params_free(&a); cg_params_free(&b);
    free(out);
}

static void test_latest_moves_only_on_complete_saves(void) {
    char *out = cg_path_join(tmpdir, "run2");
    cg_params a;
    build(&a, 8);
    adamw_state oa;
    adamw_init(&oa, &a);
    fill(&a, &oa, 2);
    ckpt_group ga[1] = {{"", &a, &oa}};
    CHECK_EQ_INT(ckpt_save(out, 10, ga, 1, NULL), CG_OK);
    /* a save that cannot write its state file leaves latest at 10 */
    char *blocker = cg_xasprintf("%s/checkpoints/state_20.safetensors", out);
    CHECK_EQ_INT(cg_mkdir_p(blocker), CG_OK);  /* a directory where the file should go */
    CHECK(ckpt_save(out, 20, ga, 1, NULL) != CG_OK);
    int64_t latest = -1;
    CHECK_EQ_INT(ckpt_latest(out, &latest), CG_OK);
    CHECK_EQ_INT(latest, 10);
    rmdir(blocker);
    free(blocker);
    for (int s = 20; s <= 50; s += 10) CHECK_EQ_INT(ckpt_save(out, s, ga, 1, NULL), CG_OK);
    ckpt_prune(out, 2);
    for (int s = 10; s <= 50; s += 10) {
        char *m = cg_xasprintf("%s/checkpoints/step_%d.safetensors", out, s);
        CHECK_EQ_INT(cg_file_exists(m), s >= 40);
        free(m);
    }
    /* no checkpoint at all */
    char *fresh = cg_path_join(tmpdir, "fresh");
    CHECK_EQ_INT(ckpt_latest(fresh, &latest), CG_ERR_IO);
    free(fresh);
    adamw_free(&oa);
    cg_params_free(&a);
    free(out);
}

static void test_damage_is_reported(void) {
    char *out = cg_path_join(tmpdir, "run3");
    cg_params a, wide;
    build(&a, 8);
    build(&wide, 16);
    adamw_state oa, ow;
    adamw_init(&oa, &a);
    adamw_init(&ow, &wide);
    fill(&a, &oa, 3);
    ckpt_group ga[1] = {{"", &a, &oa}}, gw[1] = {{"", &wide, &ow}};
    CHECK_EQ_INT(ckpt_save(out, 5, ga, 1, NULL), CG_OK);
    /* another model configuration: the mismatching tensor is named */
    CHECK(ckpt_load(out, 5, gw, 1, NULL) != CG_OK);
    CHECK(strstr(cg_error_message(), "text.proj.weight") != NULL);
    /* a model with fewer tensors than the file: extra tensors are reported */
    cg_params small;
    cg_params_init(&small);
    cg_params_add(&small, "stem.0.bn.weight", CG_KIND_PARAM, 1, (int64_t[]){4});
    cg_params_alloc(&small);
    ckpt_group gs[1] = {{"", &small, NULL}};
    char *mp = cg_xasprintf("%s/checkpoints/step_5.safetensors", out);
    CHECK_EQ_INT(ckpt_load_model_file(mp, gs, 1), CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "holds 5 tensors, this model has 1") != NULL);
    free(mp);
    cg_params_free(&small);
    /* a truncated state file */
    char *sp = cg_xasprintf("%s/checkpoints/state_5.safetensors", out), *buf;
    size_t len;
    cg_file_read(sp, &buf, &len);
    cg_file_write_atomic(sp, buf, len / 2);
    free(buf);
    CHECK(ckpt_load(out, 5, ga, 1, NULL) != CG_OK);
    CHECK(strstr(cg_error_message(), "state_5.safetensors") != NULL);
    /* a garbled latest */
    char *lp = cg_xasprintf("%s/checkpoints/latest", out);
    cg_file_write_atomic(lp, "step five\n", 10);
    int64_t s;
    CHECK_EQ_INT(ckpt_latest(out, &s), CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "checkpoints/latest") != NULL);
    free(sp); free(lp);
    adamw_free(&oa); adamw_free(&ow);
    cg_params_free(&a); cg_params_free(&wide);
    free(out);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/ckpt_XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    TEST_RUN(test_roundtrip_is_exact);
    TEST_RUN(test_latest_moves_only_on_complete_saves);
    TEST_RUN(test_damage_is_reported);
    return TEST_REPORT();
}
