/* test_text_transformer.c — the CLIP and BERT text towers against Hugging Face transformers.
 *
 *  - zoo: the four names, parameter counts (clip:ViT-B/32 = 63,428,096 as OpenAI's text tower,
 *    bert-base-chinese = BertModel without pooler + a 768x512 projection), OpenAI / BERT init
 *  - golden cases from tools/reference/text_golden.py: real save_pretrained() directories in
 *    tests/golden/text_*, loaded through cg_text_create_pretrained (the --text-pretrained path);
 *    pooled + projected output <= 1e-5 relative, every parameter gradient <= 1e-4 relative
 *    (relative error of a tensor = max|ours - HF| / max|HF|; the worst is printed)
 *  - CLIP's two pooling rules (argmax of ids, first EOS id), the causal mask (pads after EOT
 *    change nothing), BERT's bert.* and bare names, OpenAI's transposed text_projection
 *  - --freeze-text: backward leaves every gradient at zero
 *  - loader and input errors name the file, tensor, shapes, key or token
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "models/text_transformer.h"
#include "models/zoo.h"

#define GOLDEN TEST_SOURCE_DIR "/golden/"

static double rel_err(const float *a, const float *b, int64_t n) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

static double tensor_stats(const float *x, int64_t n, double *mean) {
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) { s += x[i]; ss += (double)x[i] * x[i]; }
    *mean = s / n;
    return sqrt(ss / n - *mean * *mean);
}

/* ---------------------------------------------------------------- zoo, counts, init */

static void test_zoo(void) {
    const char *want[] = {"clip:ViT-B/32", "bert-base-chinese", "clip:tiny", "bert:tiny"};
    int n = 0;
    for (const char *const *nm = cg_zoo_text_names(); *nm; nm++) n++;
    CHECK_EQ_INT(n, 4);
    for (int i = 0; i < 4; i++) CHECK(cg_zoo_text(want[i]) != NULL);
    const cg_text_config *c = cg_zoo_text("clip:ViT-B/32");
    CHECK_EQ_INT(c->vocab_size, 49408); CHECK_EQ_INT(c->context, 77); CHECK_EQ_INT(c->width, 512);
    CHECK_EQ_INT(c->layers, 12); CHECK_EQ_INT(c->heads, 8); CHECK_EQ_INT(c->act, 2);
    /* model_specs.md §2.1: the OpenAI text tower, text_projection 512x512 included */
    CHECK_EQ_INT(cg_text_param_count(c, 512), 63428096LL);
    c = cg_zoo_text("bert-base-chinese");
    CHECK_EQ_INT(c->vocab_size, 21128); CHECK_EQ_INT(c->width, 768); CHECK_EQ_INT(c->max_positions, 512);
    /* §3.2: 101,677,056 without the pooler, + Chinese-CLIP's 768x512 projection */
    CHECK_EQ_INT(cg_text_param_count(c, 512), 101677056LL + 768 * 512);
    /* the tiny ones: what grid/cost.c assumes */
    CHECK_EQ_INT(cg_zoo_text("clip:tiny")->width, 128); CHECK_EQ_INT(cg_zoo_text("clip:tiny")->layers, 2);
    CHECK_EQ_INT(cg_zoo_text("bert:tiny")->width, 128); CHECK_EQ_INT(cg_zoo_text("bert:tiny")->layers, 2);
    CHECK_EQ_INT(cg_text_param_count(cg_zoo_text("clip:tiny"), 512), 6796416LL);   /* docs/text_towers.md */
    CHECK_EQ_INT(cg_text_param_count(cg_zoo_text("bert:tiny"), 512), 3232512LL);
    CHECK(cg_zoo_text("clip:ViT-B/16") == NULL);
    CHECK(cg_zoo_unknown_text("clip:tinyy") != 0);
    CHECK(strstr(cg_error_message(), "clip:tinyy") && strstr(cg_error_message(), "clip:tiny"));
    cg_text_tower t;
    CHECK(cg_text_create_named(&t, "bert:large", 0, 1) == CG_ERR_CONFIG);
    CHECK(strstr(cg_error_message(), "bert:large") != NULL);
}

static float *pv(cg_text_tower *t, const char *name, int64_t *n) {
    int i = cg_params_find(&t->params, name);
    CHECK(i >= 0);
    if (i < 0) return NULL;
    *n = t->params.e[i].numel;
    return cg_params_value(&t->params, i).data;
}

static void test_init(void) {
    cg_text_tower t;
    CHECK(cg_text_create_named(&t, "clip:tiny", 64, 5) == 0);
    CHECK_EQ_INT(cg_params_count(&t.params, NULL), cg_text_param_count(&t.cfg, 64));
    CHECK_EQ_INT(t.params.n, 2 + 2 * 16 + 2 + 1);
    int64_t n;
    double mean, sd;
    float *w = pv(&t, "text_model.embeddings.token_embedding.weight", &n);
    sd = tensor_stats(w, n, &mean);
    CHECK_NEAR(sd, 0.02, 5e-4);
    w = pv(&t, "text_model.embeddings.position_embedding.weight", &n);
    CHECK_NEAR(tensor_stats(w, n, &mean), 0.01, 5e-4);
    w = pv(&t, "text_model.encoder.layers.1.self_attn.k_proj.weight", &n);   /* attn_std = 128^-0.5 */
    CHECK_NEAR(tensor_stats(w, n, &mean), pow(128, -0.5), 3e-3);
    w = pv(&t, "text_model.encoder.layers.0.self_attn.out_proj.weight", &n);  /* proj_std */
    CHECK_NEAR(tensor_stats(w, n, &mean), pow(128, -0.5) * pow(4, -0.5), 2e-3);
    w = pv(&t, "text_model.encoder.layers.0.mlp.fc1.weight", &n);
    CHECK_NEAR(tensor_stats(w, n, &mean), pow(256, -0.5), 2e-3);
    w = pv(&t, "text_model.encoder.layers.0.mlp.fc1.bias", &n);             /* U(+-1/sqrt(128)) */
    float mx = 0;
    for (int64_t k = 0; k < n; k++) mx = fmaxf(mx, fabsf(w[k]));
    CHECK(mx <= 1.0f / sqrtf(128.0f) && mx > 0.5f / sqrtf(128.0f));
    w = pv(&t, "text_model.encoder.layers.0.self_attn.v_proj.bias", &n);
    CHECK(w && w[0] == 0.0f && w[n - 1] == 0.0f);
    w = pv(&t, "text_model.final_layer_norm.weight", &n);
    CHECK(w && w[0] == 1.0f);
    w = pv(&t, "text_projection.weight", &n);
    CHECK_EQ_INT(n, 64 * 128);
    CHECK_NEAR(tensor_stats(w, n, &mean), pow(128, -0.5), 4e-3);
    /* q, k, v adjacent: one [3C, C] matrix */
    int q = cg_params_find(&t.params, "text_model.encoder.layers.0.self_attn.q_proj.weight");
    int v = cg_params_find(&t.params, "text_model.encoder.layers.0.self_attn.v_proj.weight");
    CHECK_EQ_INT(t.params.e[v].offset - t.params.e[q].offset, 2 * 128 * 128);
    cg_text_free(&t);

    CHECK(cg_text_create_named(&t, "bert:tiny", 0, 5) == 0);
    CHECK_EQ_INT(t.embed_dim, 512);
    CHECK_EQ_INT(cg_params_count(&t.params, NULL), cg_text_param_count(&t.cfg, 0));
    w = pv(&t, "embeddings.word_embeddings.weight", &n);
    CHECK(w && w[0] == 0.0f && w[127] == 0.0f && w[128] != 0.0f);   /* padding row 0 */
    CHECK_NEAR(tensor_stats(w, n, &mean), 0.02, 5e-4);
    w = pv(&t, "encoder.layer.1.intermediate.dense.weight", &n);
    CHECK_NEAR(tensor_stats(w, n, &mean), 0.02, 5e-4);
    w = pv(&t, "encoder.layer.1.output.LayerNorm.weight", &n);
    CHECK(w && w[3] == 1.0f);
    CHECK(cg_params_find(&t.params, "encoder.layer.1.attention.self.value.bias") >= 0);
    cg_text_free(&t);
}

/* ---------------------------------------------------------------- golden */

typedef struct {
    cg_safetensors io, grads;
    int32_t *ids;
    int B, T, E;
    float *r, *emb;
} golden;

static int golden_open(const char *dir, golden *g, int want_grads) {
    char path[512];
    memset(g, 0, sizeof *g);
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    if (cg_st_open(path, &g->io)) { fprintf(stderr, "  %s\n", cg_error_message()); return 1; }
    if (want_grads) {
        snprintf(path, sizeof path, "%s/grads.safetensors", dir);
        if (cg_st_open(path, &g->grads)) { fprintf(stderr, "  %s\n", cg_error_message()); return 1; }
    }
    const cg_st_tensor *ids = cg_st_find(&g->io, "ids"), *emb = cg_st_find(&g->io, "emb");
    if (!ids || ids->dtype != CG_ST_I64 || !emb) return 1;
    g->B = (int)ids->shape[0];
    g->T = (int)ids->shape[1];
    g->E = (int)emb->shape[1];
    g->ids = malloc(sizeof(int32_t) * g->B * g->T);
    for (int i = 0; i < g->B * g->T; i++) {
        int64_t v;
        memcpy(&v, ids->data + 8 * i, 8);
        g->ids[i] = (int32_t)v;
    }
    g->r = malloc(sizeof(float) * g->B * g->E);
    g->emb = malloc(sizeof(float) * g->B * g->E);
    int64_t s[2] = {g->B, g->E};
    return cg_st_read_f32(&g->io, "r", g->r, 2, s) || cg_st_read_f32(&g->io, "emb", g->emb, 2, s);
}

static void golden_close(golden *g) {
    cg_st_close(&g->io);
    if (g->grads.buf) cg_st_close(&g->grads);
    free(g->ids); free(g->r); free(g->emb);
}

/* every gradient of the tower against the file (by name); returns the worst relative error.
 * The key bias has an exactly-zero gradient (softmax ignores a constant added to a row of
 * scores), so both sides are rounding noise there: a reference tensor below 1e-5 of the model's
 * largest gradient is checked absolutely (ours must be as small), the rest relatively. */
static double compare_grads(const cg_text_tower *t, const golden *g, const char *label) {
    double worst = 0, gscale = 0;
    const char *wn = "";
    int compared = 0, zero_grads = 0;
    float **refs = calloc((size_t)t->params.n, sizeof *refs);
    for (int i = 0; i < t->params.n; i++) {
        const cg_param_entry *e = &t->params.e[i];
        refs[i] = malloc(sizeof(float) * (size_t)e->numel);
        if (cg_st_read_f32(&g->grads, e->name, refs[i], e->ndim, e->shape)) {
            fprintf(stderr, "  %s\n", cg_error_message());
            CHECK(!"golden gradient missing");
            free(refs[i]);
            refs[i] = NULL;
            continue;
        }
        for (int64_t k = 0; k < e->numel; k++) gscale = fmax(gscale, fabs(refs[i][k]));
    }
    for (int i = 0; i < t->params.n; i++) {
        const cg_param_entry *e = &t->params.e[i];
        if (!refs[i]) continue;
        cg_tensor gr = cg_params_grad(&t->params, i);
        double mref = 0, mours = 0;
        for (int64_t k = 0; k < e->numel; k++) { mref = fmax(mref, fabs(refs[i][k])); mours = fmax(mours, fabs(gr.data[k])); }
        if (mref < 1e-5 * gscale) {
            zero_grads++;
            if (mours >= 1e-5 * gscale) fprintf(stderr, "  %s: gradient of %s should be ~0, is %.3g\n", label, e->name, mours);
            CHECK(mours < 1e-5 * gscale);
        } else {
            double err = rel_err(gr.data, refs[i], e->numel);
            if (err > 1e-4) fprintf(stderr, "  %s: gradient of %s: relative error %.3g\n", label, e->name, err);
            CHECK(err <= 1e-4);
            if (err > worst) { worst = err; wn = e->name; }
        }
        compared++;
        free(refs[i]);
    }
    free(refs);
    CHECK_EQ_INT(compared, t->params.n);
    CHECK_EQ_INT(g->grads.n, t->params.n);   /* HF has no gradient we lack */
    CHECK_EQ_INT(zero_grads, t->cfg.layers); /* only the key biases */
    fprintf(stderr, "  %-22s worst gradient relative error %.2e (%s; %d tensors, %d zero)\n", label, worst, wn, compared,
            zero_grads);
    return worst;
}

static double check_forward(cg_text_tower *t, const golden *g, const int32_t *ids, const char *label) {
    int rc = cg_text_forward(t, ids, g->B, g->T);
    if (rc) fprintf(stderr, "  %s\n", cg_error_message());
    CHECK_EQ_INT(rc, 0);
    double err = rel_err(t->emb.data, g->emb, (int64_t)g->B * g->E);
    fprintf(stderr, "  %-22s output relative error %.2e\n", label, err);
    CHECK(err <= 1e-5);
    return err;
}

static void test_golden_clip(void) {
    const char *dir = GOLDEN "text_clip_tiny";
    golden g;
    CHECK(golden_open(dir, &g, 1) == 0);
    cg_text_tower t;
    int rc = cg_text_create_pretrained(&t, "clip:tiny", dir, 0, 1);
    if (rc) fprintf(stderr, "  %s\n", cg_error_message());
    CHECK_EQ_INT(rc, 0);
    if (rc) { golden_close(&g); return; }
    /* config.json overrode the zoo */
    CHECK_EQ_INT(t.cfg.width, 32); CHECK_EQ_INT(t.cfg.layers, 2); CHECK_EQ_INT(t.cfg.heads, 4);
    CHECK_EQ_INT(t.cfg.mlp, 80); CHECK_EQ_INT(t.cfg.vocab_size, 1000); CHECK_EQ_INT(t.cfg.max_positions, 16);
    CHECK_EQ_INT(t.embed_dim, 24); CHECK_EQ_INT(t.cfg.eos_id, 999);
    CHECK_EQ_INT(g.E, 24);
    check_forward(&t, &g, g.ids, "clip forward");
    cg_params_zero_grad(&t.params);
    cg_text_backward(&t, g.r);
    compare_grads(&t, &g, "clip backward");

    /* OpenAI layout: pad 0 after EOT and argmax pooling give the same embedding (the causal mask
     * keeps the pads out of the EOT position) */
    int32_t *ids0 = malloc(sizeof(int32_t) * g.B * g.T);
    for (int b = 0; b < g.B; b++) {
        int seen = 0;
        for (int k = 0; k < g.T; k++) {
            int32_t v = g.ids[b * g.T + k];
            ids0[b * g.T + k] = seen ? 0 : v;
            if (v == 999) seen = 1;
        }
    }
    t.cfg.eos_id = -1;
    check_forward(&t, &g, ids0, "clip argmax, pad 0");
    /* HF pooling with pad 0 too */
    t.cfg.eos_id = 999;
    check_forward(&t, &g, ids0, "clip first-eos, pad 0");
    /* no EOS in a row -> error naming the row */
    for (int k = 0; k < g.T; k++) if (ids0[g.T + k] == 999) ids0[g.T + k] = 5;
    CHECK(cg_text_forward(&t, ids0, g.B, g.T) == CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "text 1") && strstr(cg_error_message(), "999"));
    /* bad ids, too long */
    ids0[g.T + 3] = 1000;
    CHECK(cg_text_forward(&t, ids0, g.B, g.T) == CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "token id 1000") && strstr(cg_error_message(), "position 3"));
    CHECK(cg_text_forward(&t, ids0, 1, 17) == CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "17 tokens") != NULL);
    free(ids0);

    /* --freeze-text: no gradient at all */
    t.cfg.eos_id = 999;
    CHECK(cg_text_forward(&t, g.ids, g.B, g.T) == 0);
    cg_params_zero_grad(&t.params);
    t.frozen = 1;
    CHECK(!cg_text_trainable(&t));
    cg_text_backward(&t, g.r);
    int nz = 0;
    for (int64_t i = 0; i < t.params.n_params; i++) nz += t.params.grads[i] != 0.0f;
    CHECK_EQ_INT(nz, 0);
    cg_text_free(&t);
    golden_close(&g);
}

/* BERT: the projection comes from io.safetensors (a BertModel directory has none) */
static void bert_case(const char *dir, const char *label, const golden *g) {
    cg_text_tower t;
    int rc = cg_text_create_pretrained(&t, "bert:tiny", dir, g->E, 1);
    if (rc) fprintf(stderr, "  %s\n", cg_error_message());
    CHECK_EQ_INT(rc, 0);
    if (rc) return;
    CHECK_EQ_INT(t.cfg.width, 32); CHECK_EQ_INT(t.cfg.mlp, 72); CHECK_EQ_INT(t.cfg.vocab_size, 500);
    CHECK_EQ_INT(t.cfg.max_positions, 20); CHECK(t.cfg.ln_eps == 1e-12f); CHECK_EQ_INT(t.cfg.act, 1);
    int p = cg_params_find(&t.params, "text_projection.weight");
    cg_tensor w = cg_params_value(&t.params, p);
    CHECK(cg_st_read_f32(&g->io, "text_projection.weight", w.data, 2, t.params.e[p].shape) == 0);
    char l[64];
    snprintf(l, sizeof l, "%s forward", label);
    check_forward(&t, g, g->ids, l);
    cg_params_zero_grad(&t.params);
    cg_text_backward(&t, g->r);
    snprintf(l, sizeof l, "%s backward", label);
    compare_grads(&t, g, l);
    cg_text_free(&t);
}

static void test_golden_bert(void) {
    golden g;
    CHECK(golden_open(GOLDEN "text_bert_tiny", &g, 1) == 0);
    bert_case(GOLDEN "text_bert_tiny", "bert (bare names)", &g);
    bert_case(GOLDEN "text_bert_tiny_pt", "bert (bert.* names)", &g);
    golden_close(&g);
}

/* ---------------------------------------------------------------- loader errors */

static char tmpdir[256];

static void copy_file(const char *from, const char *to) {
    char *buf;
    size_t len;
    CHECK(cg_file_read(from, &buf, &len) == 0);
    CHECK(cg_file_write_atomic(to, buf, len) == 0);
    free(buf);
}

/* tmpdir := a copy of `src` with config.json edited: key = value (JSON) */
static void variant(const char *src, const char *key, const char *json_value) {
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/model.safetensors", src);
    snprintf(to, sizeof to, "%s/model.safetensors", tmpdir);
    copy_file(from, to);
    snprintf(from, sizeof from, "%s/config.json", src);
    char *text;
    size_t len;
    CHECK(cg_file_read(from, &text, &len) == 0);
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (key) {
        cJSON_DeleteItemFromObject(root, key);
        cJSON_AddItemToObject(root, key, cJSON_Parse(json_value));
    }
    char *out = cJSON_Print(root);
    snprintf(to, sizeof to, "%s/config.json", tmpdir);
    CHECK(cg_file_write_atomic(to, out, strlen(out)) == 0);
    free(out);
    cJSON_Delete(root);
}

static int expect_error(const char *name, int embed, const char *s1, const char *s2) {
    cg_text_tower t;
    int rc = cg_text_create_pretrained(&t, name, tmpdir, embed, 1);
    CHECK(rc != 0);
    if (!rc) { cg_text_free(&t); return 0; }
    const char *msg = cg_error_message();
    int ok = (!s1 || strstr(msg, s1)) && (!s2 || strstr(msg, s2));
    if (!ok) fprintf(stderr, "  message lacks \"%s\" / \"%s\": %s\n", s1, s2 ? s2 : "", msg);
    CHECK(ok);
    return rc;
}

static void test_loader_errors(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/clipgrid_text_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    const char *clip = GOLDEN "text_clip_tiny", *bert = GOLDEN "text_bert_tiny";
    /* more layers than the weights: the first missing tensor is named */
    variant(clip, "num_hidden_layers", "3");
    expect_error("clip:tiny", 0, "text_model.encoder.layers.2.", "missing");
    /* fewer: a tensor the tower does not have */
    variant(clip, "num_hidden_layers", "1");
    expect_error("clip:tiny", 0, "text_model.encoder.layers.1.", "not part of");
    /* a wrong size: the tensor and both shapes */
    variant(clip, "intermediate_size", "64");
    expect_error("clip:tiny", 0, "mlp.fc1.weight", "80");
    variant(clip, "hidden_act", "\"gelu_new\"");
    expect_error("clip:tiny", 0, "gelu_new", "config.json");
    variant(clip, "num_attention_heads", "5");
    expect_error("clip:tiny", 0, "num_attention_heads 5", NULL);
    variant(clip, "vocab_size", "\"many\"");
    expect_error("clip:tiny", 0, "vocab_size", "config.json:");
    /* flavour mismatch, embedding width mismatch */
    variant(clip, NULL, NULL);
    expect_error("bert:tiny", 0, "clip_text_model", "bert:tiny");
    expect_error("clip:tiny", 16, "24", "16");
    expect_error("clip:huge", 0, "clip:huge", NULL);
    variant(bert, "position_embedding_type", "\"relative_key\"");
    expect_error("bert:tiny", 24, "relative_key", NULL);
    /* a tensor missing from the file */
    variant(clip, NULL, NULL);
    {
        char path[512];
        cg_safetensors st;
        CHECK(cg_st_open(GOLDEN "text_clip_tiny/model.safetensors", &st) == 0);
        cg_st_writer w;
        cg_st_writer_init(&w);
        float *tp = NULL;
        for (int i = 0; i < st.n; i++) {
            const cg_st_tensor *x = &st.tensors[i];
            if (!strcmp(x->name, "text_model.encoder.layers.1.mlp.fc2.bias")) continue;
            if (!strcmp(x->name, "text_projection.weight")) {
                /* store it the OpenAI way: "text_projection" [C, E] */
                int64_t E = x->shape[0], C = x->shape[1];
                tp = malloc(sizeof(float) * E * C);
                const float *src = (const float *)x->data;
                for (int64_t o = 0; o < E; o++)
                    for (int64_t c = 0; c < C; c++) tp[c * E + o] = src[o * C + c];
                cg_st_writer_add_f32(&w, "text_projection", tp, 2, (int64_t[]){C, E});
                continue;
            }
            cg_st_writer_add(&w, x->name, x->dtype, x->ndim, x->shape, x->data);
        }
        snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);
        CHECK(cg_st_writer_save(&w, path) == 0);
        cg_st_writer_free(&w);
        free(tp);
        expect_error("clip:tiny", 0, "text_model.encoder.layers.1.mlp.fc2.bias", "missing");
        /* with the bias back: the transposed OpenAI projection loads and gives the same output */
        cg_st_writer_init(&w);
        for (int i = 0; i < st.n; i++) {
            const cg_st_tensor *x = &st.tensors[i];
            if (!strcmp(x->name, "text_projection.weight")) {
                int64_t E = x->shape[0], C = x->shape[1];
                tp = malloc(sizeof(float) * E * C);
                const float *src = (const float *)x->data;
                for (int64_t o = 0; o < E; o++)
                    for (int64_t c = 0; c < C; c++) tp[c * E + o] = src[o * C + c];
                cg_st_writer_add_f32(&w, "text_projection", tp, 2, (int64_t[]){C, E});
            } else {
                cg_st_writer_add(&w, x->name, x->dtype, x->ndim, x->shape, x->data);
            }
        }
        CHECK(cg_st_writer_save(&w, path) == 0);
        cg_st_writer_free(&w);
        free(tp);
        cg_st_close(&st);
        golden g;
        CHECK(golden_open(clip, &g, 0) == 0);
        cg_text_tower t;
        CHECK(cg_text_create_pretrained(&t, "clip:tiny", tmpdir, 0, 1) == 0);
        CHECK_EQ_INT(t.embed_dim, 24);
        check_forward(&t, &g, g.ids, "openai text_projection");
        cg_text_free(&t);
        golden_close(&g);
    }
    /* no weights at all */
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", tmpdir);
    unlink(path);
    expect_error("clip:tiny", 0, tmpdir, "model.safetensors");
    snprintf(path, sizeof path, "%s/config.json", tmpdir);
    unlink(path);
    expect_error("clip:tiny", 0, "config.json", NULL);
    rmdir(tmpdir);
}

/* ---------------------------------------------------------------- zoo sizes run, save/load */

static void test_tiny_zoo_runs(void) {
    const char *names[] = {"clip:tiny", "bert:tiny"};
    for (int k = 0; k < 2; k++) {
        cg_text_tower t;
        CHECK(cg_text_create_named(&t, names[k], 64, 3) == 0);
        int B = 2, T = t.cfg.context;
        int32_t *ids = calloc((size_t)B * T, sizeof(int32_t));
        for (int b = 0; b < B; b++) {
            int n = 5 + 3 * b;
            for (int i = 0; i < n; i++) ids[b * T + i] = 100 + 37 * i + b;
            ids[b * T] = k ? 101 : 49406;
            ids[b * T + n - 1] = k ? 102 : 49407;
        }
        CHECK(cg_text_forward(&t, ids, B, T) == 0);
        CHECK_EQ_INT(t.pool_pos[1], k ? 0 : 7);   /* [CLS], or the EOT of an 8-token text */
        float *d = malloc(sizeof(float) * B * 64);
        for (int i = 0; i < B * 64; i++) d[i] = (float)((i % 7) - 3) * 0.1f;
        cg_params_zero_grad(&t.params);
        cg_text_backward(&t, d);
        double gn = 0;
        for (int64_t i = 0; i < t.params.n_params; i++) gn += (double)t.params.grads[i] * t.params.grads[i];
        CHECK(gn > 0 && isfinite(gn));
        /* a second batch shape reallocates the activations */
        CHECK(cg_text_forward(&t, ids, 1, T - 3) == 0);
        free(ids); free(d);
        cg_text_free(&t);
    }
}

static void test_save_load(void) {
    golden g;
    CHECK(golden_open(GOLDEN "text_clip_tiny", &g, 0) == 0);
    cg_text_tower t, u;
    CHECK(cg_text_create_pretrained(&t, "clip:tiny", GOLDEN "text_clip_tiny", 0, 1) == 0);
    char path[256];
    snprintf(path, sizeof path, "/tmp/clipgrid_text_rt_%d.safetensors", (int)getpid());
    CHECK(cg_text_save(&t, path) == 0);
    cg_text_create(&u, &t.cfg, t.embed_dim, 99);
    CHECK(cg_text_load(&u, path) == 0);
    CHECK(memcmp(u.params.params, t.params.params, (size_t)t.params.n_params * sizeof(float)) == 0);
    check_forward(&u, &g, g.ids, "saved and reloaded");
    unlink(path);
    cg_text_free(&t);
    cg_text_free(&u);
    golden_close(&g);
}

/* `clipgrid models` lists the text encoders with their counts */
static void test_models_cli(void) {
    FILE *f = popen(CLIPGRID_BIN " models --embed-dim 512 2>&1", "r");
    CHECK(f != NULL);
    if (!f) return;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    CHECK_EQ_INT(pclose(f), 0);
    CHECK(strstr(buf, "clip:ViT-B/32") && strstr(buf, "63428096"));
    CHECK(strstr(buf, "bert-base-chinese") && strstr(buf, "102070272"));
    CHECK(strstr(buf, "clip:tiny") && strstr(buf, "bert:tiny"));
}

int main(void) {
    cg_log_set_level(CG_LOG_WARN);
    TEST_RUN(test_zoo);
    TEST_RUN(test_init);
    TEST_RUN(test_golden_clip);
    TEST_RUN(test_golden_bert);
    TEST_RUN(test_loader_errors);
    TEST_RUN(test_tiny_zoo_runs);
    TEST_RUN(test_save_load);
    TEST_RUN(test_models_cli);
    return TEST_REPORT();
}
