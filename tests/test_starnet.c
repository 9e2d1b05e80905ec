/* test_starnet.c — the StarNet image encoder against timm.
 *
 *  - parameter counts of all seven variants equal timm's (numbers printed by timm 1.0.31:
 *    sum(p.numel()) of timm.create_model(name, num_classes=0), and len(state_dict()))
 *  - golden cases from tools/reference/starnet_golden.py (timm, torch CPU fp32): load timm's
 *    weights by name, run train mode forward + backward and eval mode, compare the output
 *    embedding (<= 1e-5 relative), every parameter gradient (<= 1e-4 relative) and every
 *    BatchNorm running statistic after the step. Relative error of a tensor is
 *    max|ours - timm| / max|timm|; the worst tensor of each kind is printed.
 *  - weights round-trip through safetensors; wrong shapes / names are errors naming the tensor.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "models/starnet.h"
#include "models/zoo.h"

static void test_param_counts(void) {
    static const struct { const char *name; long long backbone, timm1k; int entries; } timm_counts[] = {
        {"starnet_s050", 413728, 542728, 162}, {"starnet_s100", 882280, 1043280, 202},
        {"starnet_s150", 1367616, 1560616, 222}, {"starnet_s1", 2676168, 2869168, 342},
        {"starnet_s2", 3425024, 3682024, 262}, {"starnet_s3", 5493792, 5750792, 362},
        {"starnet_s4", 7225728, 7482728, 502},
    };
    int n = 0;
    for (const char *const *nm = cg_zoo_image_names(); *nm; nm++) n++;
    CHECK_EQ_INT(n, 7);
    for (int i = 0; i < 7; i++) {
        const cg_starnet_config *cfg = cg_zoo_starnet(timm_counts[i].name);
        CHECK(cfg != NULL);
        if (!cfg) continue;
        cg_starnet m;
        cg_starnet_create(&m, cfg, 1000, 0.0f, 1);
        CHECK_EQ_INT(cg_params_count(&m.params, "head."), timm_counts[i].backbone);
        CHECK_EQ_INT(cg_params_count(&m.params, NULL), timm_counts[i].timm1k);
        CHECK_EQ_INT(m.params.n, timm_counts[i].entries);
        CHECK_EQ_INT(cg_starnet_backbone_params(cfg), timm_counts[i].backbone);
        CHECK_EQ_INT(cg_starnet_backbone_params(cfg) + cg_starnet_head_params(cfg, 1000), timm_counts[i].timm1k);
        cg_starnet_free(&m);
    }
    /* MACs of s1 at 224 with the 1000-class head: 421.9M (model_specs.md §1.1, conv + linear) */
    long long macs = cg_starnet_macs(cg_zoo_starnet("starnet_s1"), 224, 224, 1000);
    CHECK(macs > 421850000LL && macs < 421950000LL);
    CHECK(cg_zoo_starnet("starnet_s5") == NULL);
    CHECK(cg_zoo_unknown_image("starnet_s5") != 0);
    CHECK(strstr(cg_error_message(), "starnet_s5") != NULL);
}

static void test_names_and_init(void) {
    cg_starnet m;
    cg_starnet_create(&m, cg_zoo_starnet("starnet_s1"), 512, 0.0f, 7);
    const char *expect[] = {"stem.0.conv.weight", "stem.0.bn.num_batches_tracked", "stages.0.0.conv.weight",
                            "stages.0.1.dwconv.conv.weight", "stages.0.2.dwconv.bn.running_var", "stages.2.8.f1.conv.bias",
                            "stages.3.3.dwconv2.conv.weight", "stages.3.3.g.bn.weight", "norm.running_mean", "head.weight",
                            NULL};
    for (int i = 0; expect[i]; i++) CHECK(cg_params_find(&m.params, expect[i]) >= 0);
    CHECK(cg_params_find(&m.params, "stages.0.3.dwconv.conv.weight") < 0);
    /* shapes */
    int i = cg_params_find(&m.params, "stages.1.2.g.conv.weight");
    CHECK(i >= 0 && m.params.e[i].shape[0] == 48 && m.params.e[i].shape[1] == 192);
    /* init: conv weights ~ N(0, .02), conv bias U(+-1/sqrt(fan_in)), BN 1/0, head bias 0 */
    cg_tensor w = cg_params_value(&m.params, cg_params_find(&m.params, "stages.2.0.conv.weight"));
    double s = 0, ss = 0;
    int64_t n = cg_tensor_numel(&w);
    for (int64_t k = 0; k < n; k++) { s += w.data[k]; ss += (double)w.data[k] * w.data[k]; }
    CHECK(fabs(s / n) < 1e-3);
    CHECK_NEAR(sqrt(ss / n), 0.02, 1e-3);
    cg_tensor b = cg_params_value(&m.params, cg_params_find(&m.params, "stages.2.0.conv.bias"));
    float bound = 1.0f / sqrtf(48 * 9), mx = 0;
    for (int64_t k = 0; k < b.shape[0]; k++) mx = fmaxf(mx, fabsf(b.data[k]));
    CHECK(mx <= bound && mx > 0.5f * bound);
    cg_tensor g = cg_params_value(&m.params, cg_params_find(&m.params, "norm.weight"));
    cg_tensor rv = cg_params_value(&m.params, cg_params_find(&m.params, "norm.running_var"));
    CHECK(g.data[0] == 1.0f && rv.data[5] == 1.0f);
    cg_tensor hb = cg_params_value(&m.params, cg_params_find(&m.params, "head.bias"));
    CHECK(hb.data[0] == 0.0f && hb.data[511] == 0.0f);
    /* same seed, same weights */
    cg_starnet m2;
    cg_starnet_create(&m2, cg_zoo_starnet("starnet_s1"), 512, 0.0f, 7);
    CHECK(!memcmp(m.params.params, m2.params.params, (size_t)m.params.n_params * sizeof(float)));
    cg_starnet_free(&m2);
    cg_starnet_free(&m);
}

/* ---------------------------------------------------------------- golden comparisons */

static double rel_err(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / fmax(den, 1e-30);
}

/* Compare every entry of `p` of the given kind (params: values or grads; buffers) with `st`. */
/* In train mode BatchNorm subtracts the batch mean per channel, so a constant added per channel
 * just before it has no effect: the gradient of a conv bias feeding a BN (stem, downsamplers,
 * dwconv, g) is exactly 0, and so is that of the last block's dwconv2 (it feeds the residual
 * and then the final norm). timm's and our values there are rounding noise (~1e-6 of the
 * largest gradient); they are checked to be noise-sized instead of compared. */
static int last_dwconv2_bias_index;
static int train_zero_grad(const cg_params *p, const char *name) {
    size_t n = strlen(name);
    if (n < 10 || strcmp(name + n - 10, ".conv.bias")) return 0;
    char bn[256];
    snprintf(bn, sizeof bn, "%.*s.bn.weight", (int)(n - 10), name);
    return cg_params_find(p, bn) >= 0 || cg_params_find(p, name) == last_dwconv2_bias_index;
}

static void compare_all(const char *what, const cg_params *p, const cg_safetensors *st, cg_param_kind kind, int grads,
                        double tol, int (*zero_by_construction)(const cg_params *, const char *)) {
    double worst = 0, zero_worst = 0, gmax = 0;
    const char *worst_name = "-", *zero_name = "-";
    int count = 0, n_zero = 0;
    if (grads)
        for (int64_t k = 0; k < p->n_params; k++) gmax = fmax(gmax, fabs(p->grads[k]));
    for (int i = 0; i < p->n; i++) {
        const cg_param_entry *e = &p->e[i];
        if (e->kind != kind) continue;
        if (e->kind == CG_KIND_COUNTER) {
            int64_t v = -1;
            CHECK(cg_st_read_scalar_i64(st, e->name, &v) == 0);
            if (v != *cg_params_counter(p, i)) {
                fprintf(stderr, "  %s: %s = %lld, timm %lld\n", what, e->name, (long long)*cg_params_counter(p, i), (long long)v);
                CHECK(v == *cg_params_counter(p, i));
            }
            count++;
            continue;
        }
        float *ref = malloc((size_t)e->numel * sizeof(float));
        int rc = cg_st_read_f32(st, e->name, ref, e->ndim, e->shape);
        CHECK(rc == 0);
        if (rc) { fprintf(stderr, "  %s\n", cg_error_message()); free(ref); continue; }
        cg_tensor t = grads ? cg_params_grad(p, i) : cg_params_value(p, i);
        if (zero_by_construction && zero_by_construction(p, e->name)) {
            /* exact gradient 0: both sides hold rounding noise; it must stay at noise level */
            double mo = 0, mr = 0;
            for (int64_t k = 0; k < e->numel; k++) { mo = fmax(mo, fabs(t.data[k])); mr = fmax(mr, fabs(ref[k])); }
            if (fmax(mo, mr) > zero_worst) { zero_worst = fmax(mo, mr); zero_name = e->name; }
            n_zero++;
            free(ref);
            continue;
        }
        double err = rel_err(t.data, ref, e->numel);
        if (err > worst || count == 0) { worst = err; worst_name = e->name; }
        if (!(err <= tol)) {
            fprintf(stderr, "  %s: %s relative error %.3g > %.1g\n", what, e->name, err, tol);
            CHECK(err <= tol);
        }
        count++;
        free(ref);
    }
    fprintf(stderr, "  %-24s %4d tensors, worst %-40s %.3g\n", what, count, worst_name, worst);
    if (n_zero) {
        fprintf(stderr, "  %-24s %4d tensors, largest |value| %.3g = %.2g of the largest gradient (%s)\n",
                "  exact-zero gradients", n_zero, zero_worst, zero_worst / gmax, zero_name);
        CHECK(zero_worst <= 1e-5 * gmax);
    }
    CHECK(count > 0);
}

static int meta_int(const cg_safetensors *st, const char *key) {
    const char *v = cg_st_meta(st, key);
    return v ? atoi(v) : -1;
}

static void golden_case(const char *dir) {
    char path[512];
    cg_safetensors io, gt, ba, ge;
    snprintf(path, sizeof path, "%s/golden/%s/io.safetensors", TEST_SOURCE_DIR, dir);
    if (cg_st_open(path, &io)) { fprintf(stderr, "  %s\n", cg_error_message()); CHECK(0); return; }
    cg_starnet_config cfg = {dir, meta_int(&io, "base_dim"), {0, 0, 0, 0}, meta_int(&io, "mlp_ratio"), 32};
    cJSON *dj = cJSON_Parse(cg_st_meta(&io, "depths") ? cg_st_meta(&io, "depths") : "[]");
    for (int i = 0; i < 4 && dj; i++) cfg.depths[i] = cJSON_GetArrayItem(dj, i) ? cJSON_GetArrayItem(dj, i)->valueint : 0;
    cJSON_Delete(dj);
    int N = meta_int(&io, "batch"), S = meta_int(&io, "size"), D = meta_int(&io, "embed");
    CHECK(N > 0 && S > 0 && D > 0 && cfg.base_dim > 0);
    fprintf(stderr, "  case %s: base %d depths %d,%d,%d,%d mlp %d, batch %d at %dx%d, embed %d\n", dir, cfg.base_dim,
            cfg.depths[0], cfg.depths[1], cfg.depths[2], cfg.depths[3], cfg.mlp_ratio, N, S, S, D);

    cg_starnet m;
    cg_starnet_create(&m, &cfg, D, 0.0f, 0);
    snprintf(path, sizeof path, "%s/golden/%s/weights.safetensors", TEST_SOURCE_DIR, dir);
    int rc = cg_starnet_load(&m, path, 0);
    CHECK(rc == 0);
    if (rc) fprintf(stderr, "  %s\n", cg_error_message());

    float *x = malloc(sizeof(float) * (size_t)N * 3 * S * S), *r = malloc(sizeof(float) * (size_t)N * D);
    float *ref = malloc(sizeof(float) * (size_t)N * D);
    CHECK(cg_st_read_f32(&io, "x", x, 4, (int64_t[]){N, 3, S, S}) == 0);
    CHECK(cg_st_read_f32(&io, "r", r, 2, (int64_t[]){N, D}) == 0);

    /* train mode */
    cg_params_zero_grad(&m.params);
    cg_starnet_forward(&m, x, N, S, S, 1);
    CHECK(cg_st_read_f32(&io, "out_train", ref, 2, (int64_t[]){N, D}) == 0);
    double e = rel_err(m.emb.data, ref, (int64_t)N * D);
    fprintf(stderr, "  %-24s relative error %.3g\n", "train forward output", e);
    CHECK(e <= 1e-5);
    cg_starnet_backward(&m, r);
    snprintf(path, sizeof path, "%s/golden/%s/grads_train.safetensors", TEST_SOURCE_DIR, dir);
    CHECK(cg_st_open(path, &gt) == 0);
    {
        char last[64];
        snprintf(last, sizeof last, "stages.3.%d.dwconv2.conv.bias", cfg.depths[3]);
        last_dwconv2_bias_index = cg_params_find(&m.params, last);
        CHECK(last_dwconv2_bias_index >= 0);
    }
    compare_all("train gradients", &m.params, &gt, CG_KIND_PARAM, 1, 1e-4, train_zero_grad);
    snprintf(path, sizeof path, "%s/golden/%s/buffers_after.safetensors", TEST_SOURCE_DIR, dir);
    CHECK(cg_st_open(path, &ba) == 0);
    compare_all("running stats after", &m.params, &ba, CG_KIND_BUFFER, 0, 1e-5, NULL);
    compare_all("num_batches_tracked", &m.params, &ba, CG_KIND_COUNTER, 0, 0, NULL);

    /* eval mode with the running statistics the step left */
    cg_params_zero_grad(&m.params);
    cg_starnet_forward(&m, x, N, S, S, 0);
    CHECK(cg_st_read_f32(&io, "out_eval", ref, 2, (int64_t[]){N, D}) == 0);
    e = rel_err(m.emb.data, ref, (int64_t)N * D);
    fprintf(stderr, "  %-24s relative error %.3g\n", "eval forward output", e);
    CHECK(e <= 1e-5);
    snprintf(path, sizeof path, "%s/golden/%s/grads_eval.safetensors", TEST_SOURCE_DIR, dir);
    if (access(path, R_OK) == 0) {
        cg_starnet_backward(&m, r);
        CHECK(cg_st_open(path, &ge) == 0);
        compare_all("eval gradients", &m.params, &ge, CG_KIND_PARAM, 1, 1e-4, NULL);
        cg_st_close(&ge);
    }
    cg_st_close(&gt);
    cg_st_close(&ba);
    cg_st_close(&io);
    free(x); free(r); free(ref);
    cg_starnet_free(&m);
}

static void test_golden_s050(void) { golden_case("starnet_s050"); }
static void test_golden_s1_w8(void) { golden_case("starnet_s1_w8"); }

/* ---------------------------------------------------------------- checkpoints */

static void test_save_load(void) {
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/starnet_rt_%d.safetensors", TEST_BINARY_DIR, (int)getpid());
    snprintf(bad, sizeof bad, "%s/starnet_bad_%d.safetensors", TEST_BINARY_DIR, (int)getpid());
    const cg_starnet_config *cfg = cg_zoo_starnet("starnet_s050");
    cg_starnet a, b;
    cg_starnet_create(&a, cfg, 64, 0.0f, 11);
    cg_starnet_create(&b, cfg, 64, 0.0f, 12);
    *cg_params_counter(&a.params, cg_params_find(&a.params, "norm.num_batches_tracked")) = 42;
    a.params.buffers[3] = 0.25f;
    CHECK(cg_starnet_save(&a, path) == 0);
    CHECK(cg_starnet_load(&b, path, 0) == 0);
    CHECK(!memcmp(a.params.params, b.params.params, (size_t)a.params.n_params * sizeof(float)));
    CHECK(!memcmp(a.params.buffers, b.params.buffers, (size_t)a.params.n_buffers * sizeof(float)));
    CHECK_EQ_INT(*cg_params_counter(&b.params, cg_params_find(&b.params, "norm.num_batches_tracked")), 42);

    /* a wrong shape names the tensor and both shapes */
    cg_st_writer w;
    cg_st_writer_init(&w);
    cg_params_to_writer(&a.params, &w, 0);
    cg_st_writer_free(&w);
    cg_starnet c;  /* other head width: head.weight [32,128] vs [64,128] */
    cg_starnet_create(&c, cfg, 32, 0.0f, 1);
    CHECK(cg_starnet_load(&c, path, 0) != 0);
    CHECK(strstr(cg_error_message(), "head.weight") && strstr(cg_error_message(), "[64, 128]") &&
          strstr(cg_error_message(), "[32, 128]"));
    /* ... unless the head is ignored (a timm 1000-class checkpoint into a CLIP tower) */
    CHECK(cg_starnet_load(&c, path, 1) == 0);
    cg_starnet_free(&c);

    /* a missing tensor, an unexpected tensor */
    cg_st_writer_init(&w);
    cg_params_to_writer(&a.params, &w, 0);
    float extra = 1;
    cg_st_writer_add_f32(&w, "stages.9.0.conv.weight", &extra, 1, (int64_t[]){1});
    CHECK(cg_st_writer_save(&w, bad) == 0);
    cg_st_writer_free(&w);
    CHECK(cg_starnet_load(&b, bad, 0) != 0);
    CHECK(strstr(cg_error_message(), "stages.9.0.conv.weight") != NULL);
    cg_starnet s4;
    cg_starnet_create(&s4, cg_zoo_starnet("starnet_s4"), 64, 0.0f, 1);
    CHECK(cg_starnet_load(&s4, path, 0) != 0);  /* s050 file into s4 */
    fprintf(stderr, "  s050 weights into s4: %s\n", cg_error_message());
    cg_starnet_free(&s4);
    unlink(path);
    unlink(bad);
    cg_starnet_free(&a);
    cg_starnet_free(&b);
}

/* DropPath: active only in train mode, per sample; eval is deterministic. */
static void test_droppath_model(void) {
    cg_starnet m;
    cg_starnet_create(&m, cg_zoo_starnet("starnet_s050"), 16, 0.5f, 3);
    CHECK(m.blocks[0].drop_prob == 0.0f);
    CHECK_NEAR(m.blocks[m.n_blocks - 1].drop_prob, 0.5, 1e-6);
    int N = 4, S = 32;
    float *x = malloc(sizeof(float) * N * 3 * S * S), *e1 = malloc(sizeof(float) * N * 16);
    cg_rng r;
    cg_rng_seed(&r, 5);
    cg_rng_fill_normal(&r, x, (size_t)N * 3 * S * S, 0, 1);
    cg_starnet_forward(&m, x, N, S, S, 0);
    memcpy(e1, m.emb.data, sizeof(float) * N * 16);
    cg_starnet_forward(&m, x, N, S, S, 0);
    CHECK(!memcmp(e1, m.emb.data, sizeof(float) * N * 16));
    int differ = 0;
    for (int t = 0; t < 4; t++) {
        cg_starnet_forward(&m, x, N, S, S, 1);
        memcpy(e1, m.emb.data, sizeof(float) * N * 16);
        cg_starnet_forward(&m, x, N, S, S, 1);
        differ += memcmp(e1, m.emb.data, sizeof(float) * N * 16) != 0;
    }
    CHECK(differ > 0);
    float *d = calloc((size_t)N * 16, sizeof(float));
    d[0] = 1;
    cg_params_zero_grad(&m.params);
    cg_starnet_backward(&m, d);
    double s = 0;
    for (int64_t i = 0; i < m.params.n_params; i++) s += fabs(m.params.grads[i]);
    CHECK(s > 0 && isfinite(s));
    free(d); free(x); free(e1);
    cg_starnet_free(&m);
}

int main(void) {
    TEST_RUN(test_param_counts);
    TEST_RUN(test_names_and_init);
    TEST_RUN(test_golden_s050);
    TEST_RUN(test_golden_s1_w8);
    TEST_RUN(test_save_load);
    TEST_RUN(test_droppath_model);
    return TEST_REPORT();
}
