#include "models/text_transformer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "nn/attention.h"
#include "nn/embedding.h"
#include "nn/gelu.h"
#include "nn/layernorm.h"
#include "nn/linear.h"

/* ---------------------------------------------------------------- construction */

static int add(cg_params *p, const char *name, int64_t a, int64_t b) {
    int64_t s[2] = {a, b};
    return cg_params_add(p, name, CG_KIND_PARAM, b ? 2 : 1, s);
}

/* q, k, v weights then q, k, v biases: adjacent, so [3C, C] and [3C] */
static void add_qkv(cg_params *p, const char *pre, const char *const names[3], int C, int *w, int *b) {
    char n[200];
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "%s%s.weight", pre, names[i]);
        int k = add(p, n, C, C);
        if (i == 0) *w = k;
    }
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "%s%s.bias", pre, names[i]);
        int k = add(p, n, C, 0);
        if (i == 0) *b = k;
    }
}

static void register_clip(cg_text_tower *m) {
    const cg_text_config *c = &m->cfg;
    cg_params *p = &m->params;
    char pre[128], n[200];
    m->tok_emb = add(p, "text_model.embeddings.token_embedding.weight", c->vocab_size, c->width);
    m->pos_emb = add(p, "text_model.embeddings.position_embedding.weight", c->max_positions, c->width);
    static const char *const qkv[3] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
    for (int i = 0; i < c->layers; i++) {
        cg_text_layer *L = &m->layers[i];
        snprintf(pre, sizeof pre, "text_model.encoder.layers.%d.", i);
#define ADD(field, suffix, a, b) do { snprintf(n, sizeof n, "%s%s", pre, suffix); L->field = add(p, n, a, b); } while (0)
        add_qkv(p, pre, qkv, c->width, &L->qkv_w, &L->qkv_b);
        ADD(o_w, "self_attn.out_proj.weight", c->width, c->width);
        ADD(o_b, "self_attn.out_proj.bias", c->width, 0);
        ADD(ln1_w, "layer_norm1.weight", c->width, 0);
        ADD(ln1_b, "layer_norm1.bias", c->width, 0);
        ADD(fc1_w, "mlp.fc1.weight", c->mlp, c->width);
        ADD(fc1_b, "mlp.fc1.bias", c->mlp, 0);
        ADD(fc2_w, "mlp.fc2.weight", c->width, c->mlp);
        ADD(fc2_b, "mlp.fc2.bias", c->width, 0);
        ADD(ln2_w, "layer_norm2.weight", c->width, 0);
        ADD(ln2_b, "layer_norm2.bias", c->width, 0);
    }
    m->final_ln_w = add(p, "text_model.final_layer_norm.weight", c->width, 0);
    m->final_ln_b = add(p, "text_model.final_layer_norm.bias", c->width, 0);
    m->type_emb = m->emb_ln_w = m->emb_ln_b = -1;
}

static void register_bert(cg_text_tower *m) {
    const cg_text_config *c = &m->cfg;
    cg_params *p = &m->params;
    char pre[128], n[200];
    m->tok_emb = add(p, "embeddings.word_embeddings.weight", c->vocab_size, c->width);
    m->pos_emb = add(p, "embeddings.position_embeddings.weight", c->max_positions, c->width);
    m->type_emb = add(p, "embeddings.token_type_embeddings.weight", c->type_vocab, c->width);
    m->emb_ln_w = add(p, "embeddings.LayerNorm.weight", c->width, 0);
    m->emb_ln_b = add(p, "embeddings.LayerNorm.bias", c->width, 0);
    static const char *const qkv[3] = {"attention.self.query", "attention.self.key", "attention.self.value"};
    for (int i = 0; i < c->layers; i++) {
        cg_text_layer *L = &m->layers[i];
        snprintf(pre, sizeof pre, "encoder.layer.%d.", i);
        add_qkv(p, pre, qkv, c->width, &L->qkv_w, &L->qkv_b);
        ADD(o_w, "attention.output.dense.weight", c->width, c->width);
        ADD(o_b, "attention.output.dense.bias", c->width, 0);
        ADD(ln1_w, "attention.output.LayerNorm.weight", c->width, 0);
        ADD(ln1_b, "attention.output.LayerNorm.bias", c->width, 0);
        ADD(fc1_w, "intermediate.dense.weight", c->mlp, c->width);
        ADD(fc1_b, "intermediate.dense.bias", c->mlp, 0);
        ADD(fc2_w, "output.dense.weight", c->width, c->mlp);
        ADD(fc2_b, "output.dense.bias", c->width, 0);
        ADD(ln2_w, "output.LayerNorm.weight", c->width, 0);
        ADD(ln2_b, "output.LayerNorm.bias", c->width, 0);
#undef ADD
    }
    m->final_ln_w = m->final_ln_b = -1;
}

static cg_tensor P(const cg_text_tower *m, int i) { return cg_params_value(&m->params, i); }
static cg_tensor G(const cg_text_tower *m, int i) { return cg_params_grad(&m->params, i); }

static void fill_normal(cg_text_tower *m, cg_rng *r, int i, double std) {
    cg_tensor t = P(m, i);
    cg_rng_fill_normal(r, t.data, (size_t)cg_tensor_numel(&t), 0.0f, (float)std);
}
static void fill_const(cg_text_tower *m, int i, float v) {
    cg_tensor t = P(m, i);
    for (int64_t k = 0; k < cg_tensor_numel(&t); k++) t.data[k] = v;
}
static void fill_uniform(cg_text_tower *m, cg_rng *r, int i, double bound) {
    cg_tensor t = P(m, i);
    cg_rng_fill_uniform(r, t.data, (size_t)cg_tensor_numel(&t), (float)-bound, (float)bound);
}
/* [3C, C] / [3C] views of the fused q|k|v weight and bias (values or gradients) */
static cg_tensor qkv_view(const cg_text_tower *m, const cg_text_layer *L, int grad, int bias) {
    int i = bias ? L->qkv_b : L->qkv_w;
    float *base = (grad ? m->params.grads : m->params.params) + m->params.e[i].offset;
    int64_t C = m->cfg.width;
    return bias ? cg_tensor_1d(base, CG_DEV_CPU, 3 * C) : cg_tensor_2d(base, CG_DEV_CPU, 3 * C, C);
}

static void init_clip(cg_text_tower *m, cg_rng *r) {
    /* OpenAI CLIP.initialize_parameters (model_specs.md §2.3) */
    double C = m->cfg.width, L = m->cfg.layers;
    double attn_std = pow(C, -0.5), proj_std = pow(C, -0.5) * pow(2 * L, -0.5), fc_std = pow(2 * C, -0.5);
    fill_normal(m, r, m->tok_emb, 0.02);
    fill_normal(m, r, m->pos_emb, 0.01);
    for (int i = 0; i < m->cfg.layers; i++) {
        cg_text_layer *ly = &m->layers[i];
        cg_tensor w = qkv_view(m, ly, 0, 0), b = qkv_view(m, ly, 0, 1);
        cg_rng_fill_normal(r, w.data, (size_t)cg_tensor_numel(&w), 0.0f, (float)attn_std);
        memset(b.data, 0, cg_tensor_bytes(&b));
        fill_normal(m, r, ly->o_w, proj_std);
        fill_const(m, ly->o_b, 0.0f);
        fill_const(m, ly->ln1_w, 1.0f);
        fill_const(m, ly->ln1_b, 0.0f);
        fill_normal(m, r, ly->fc1_w, fc_std);
        fill_uniform(m, r, ly->fc1_b, 1.0 / sqrt(C));               /* nn.Linear default bias */
        fill_normal(m, r, ly->fc2_w, proj_std);
        fill_uniform(m, r, ly->fc2_b, 1.0 / sqrt((double)m->cfg.mlp));
        fill_const(m, ly->ln2_w, 1.0f);
        fill_const(m, ly->ln2_b, 0.0f);
    }
    fill_const(m, m->final_ln_w, 1.0f);
    fill_const(m, m->final_ln_b, 0.0f);
}

static void init_bert(cg_text_tower *m, cg_rng *r) {
    /* BertPreTrainedModel._init_weights: N(0, 0.02) everywhere, biases 0, LN 1/0, padding row 0 */
    fill_normal(m, r, m->tok_emb, 0.02);
    if (m->cfg.pad_id >= 0 && m->cfg.pad_id < m->cfg.vocab_size)
        memset(P(m, m->tok_emb).data + (int64_t)m->cfg.pad_id * m->cfg.width, 0, (size_t)m->cfg.width * sizeof(float));
    fill_normal(m, r, m->pos_emb, 0.02);
    fill_normal(m, r, m->type_emb, 0.02);
    fill_const(m, m->emb_ln_w, 1.0f);
    fill_const(m, m->emb_ln_b, 0.0f);
    for (int i = 0; i < m->cfg.layers; i++) {
        cg_text_layer *ly = &m->layers[i];
        cg_tensor w = qkv_view(m, ly, 0, 0), b = qkv_view(m, ly, 0, 1);
        cg_rng_fill_normal(r, w.data, (size_t)cg_tensor_numel(&w), 0.0f, 0.02f);
        memset(b.data, 0, cg_tensor_bytes(&b));
        int ws[] = {ly->o_w, ly->fc1_w, ly->fc2_w}, bs[] = {ly->o_b, ly->fc1_b, ly->fc2_b};
        for (int k = 0; k < 3; k++) { fill_normal(m, r, ws[k], 0.02); fill_const(m, bs[k], 0.0f); }
        fill_const(m, ly->ln1_w, 1.0f);
        fill_const(m, ly->ln1_b, 0.0f);
        fill_const(m, ly->ln2_w, 1.0f);
        fill_const(m, ly->ln2_b, 0.0f);
    }
}

void cg_text_create(cg_text_tower *m, const cg_text_config *cfg, int embed_dim, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->embed_dim = embed_dim > 0 ? embed_dim : cfg->embed_dim;
    if (cfg->width <= 0 || cfg->heads <= 0 || cfg->width % cfg->heads || cfg->layers < 0 || cfg->mlp <= 0 ||
        cfg->vocab_size <= 0 || cfg->max_positions <= 0 || m->embed_dim <= 0 ||
        (cfg->kind == CG_TEXT_BERT && cfg->type_vocab <= 0))
        cg_tensor_fail("cg_text_create", "%s: inconsistent config (width %d, heads %d, mlp %d, vocab %d, embed %d)",
                       cfg->name ? cfg->name : "?", cfg->width, cfg->heads, cfg->mlp, cfg->vocab_size, m->embed_dim);
    cg_params_init(&m->params);
    m->layers = cg_xcalloc((size_t)(cfg->layers ? cfg->layers : 1), sizeof *m->layers);
    if (cfg->kind == CG_TEXT_CLIP) register_clip(m);
    else register_bert(m);
    m->proj_w = add(&m->params, "text_projection.weight", m->embed_dim, cfg->width);
    cg_params_alloc(&m->params);
    cg_rng r;
    cg_rng_seed(&r, seed);
    if (cfg->kind == CG_TEXT_CLIP) init_clip(m, &r);
    else init_bert(m, &r);
    /* OpenAI text_projection ~ N(0, width^-0.5); Chinese-CLIP the same (hidden^-0.5) */
    fill_normal(m, &r, m->proj_w, pow((double)cfg->width, -0.5));
    cg_arena_init(&m->arena, 16u << 20);
}

int64_t cg_text_param_count(const cg_text_config *c, int embed_dim) {
    int64_t C = c->width, F = c->mlp, n = (int64_t)c->vocab_size * C + (int64_t)c->max_positions * C;
    int64_t layer = 3 * C * C + 3 * C + C * C + C + 2 * C + F * C + F + C * F + C + 2 * C;
    n += layer * c->layers;
    if (c->kind == CG_TEXT_BERT) n += (int64_t)c->type_vocab * C + 2 * C;
    else n += 2 * C;
    return n + (int64_t)(embed_dim > 0 ? embed_dim : c->embed_dim) * C;
}

int cg_text_create_named(cg_text_tower *m, const char *name, int embed_dim, uint64_t seed) {
    const cg_text_config *cfg = cg_zoo_text(name);
    if (!cfg) return cg_zoo_unknown_text(name);
    cg_text_create(m, cfg, embed_dim, seed);
    return CG_OK;
}

void cg_text_free(cg_text_tower *m) {
    cg_params_free(&m->params);
    free(m->layers);
    free(m->lacts);
    free(m->res);
    cg_arena_free(&m->arena);
    memset(m, 0, sizeof *m);
}

int cg_text_load(cg_text_tower *m, const char *path) { return cg_params_load_file(&m->params, path, NULL); }
int cg_text_save(const cg_text_tower *m, const char *path) { return cg_params_save(&m->params, path); }

/* ---------------------------------------------------------------- activations */

static cg_tensor t2(cg_arena *a, int64_t r, int64_t c) { return cg_tensor_arena(a, CG_DEV_CPU, 2, (int64_t[]){r, c}); }
static cg_tensor t3(cg_arena *a, int64_t B, int64_t T, int64_t c) {
    return cg_tensor_arena(a, CG_DEV_CPU, 3, (int64_t[]){B, T, c});
}
static cg_tensor t1(cg_arena *a, int64_t n) { return cg_tensor_arena(a, CG_DEV_CPU, 1, (int64_t[]){n}); }

static void alloc_acts(cg_text_tower *m, int B, int T) {
    if (m->lacts && m->B == B && m->T == T) return;
    cg_arena_reset(&m->arena);
    cg_arena *a = &m->arena;
    const cg_text_config *c = &m->cfg;
    int64_t C = c->width, F = c->mlp, N = (int64_t)B * T, H = c->heads;
    int bert = c->kind == CG_TEXT_BERT;
    m->B = B;
    m->T = T;
    free(m->lacts);
    free(m->res);
    m->lacts = cg_xcalloc((size_t)(c->layers ? c->layers : 1), sizeof *m->lacts);
    m->res = cg_xcalloc((size_t)c->layers + 1, sizeof *m->res);
    m->ids = cg_arena_alloc(a, (size_t)N * sizeof(int32_t));
    m->zero_ids = cg_arena_alloc(a, (size_t)N * sizeof(int32_t));
    m->key_mask = cg_arena_alloc(a, (size_t)N);
    m->pool_pos = cg_arena_alloc(a, (size_t)B * sizeof(int32_t));
    m->e0 = bert ? t3(a, B, T, C) : (cg_tensor){0};
    m->emb_mean = bert ? t1(a, N) : (cg_tensor){0};
    m->emb_rstd = bert ? t1(a, N) : (cg_tensor){0};
    for (int l = 0; l <= c->layers; l++) m->res[l] = t3(a, B, T, C);
    for (int l = 0; l < c->layers; l++) {
        cg_text_layer_acts *la = &m->lacts[l];
        la->qkv = t3(a, B, T, 3 * C);
        la->att = cg_tensor_arena(a, CG_DEV_CPU, 4, (int64_t[]){B, H, T, T});
        la->a = t3(a, B, T, C);
        la->x1 = t3(a, B, T, C);
        la->h = t3(a, B, T, F);
        la->mean1 = t1(a, N); la->rstd1 = t1(a, N);
        la->mean2 = t1(a, N); la->rstd2 = t1(a, N);
        if (bert) {
            la->r1 = t3(a, B, T, C);
            la->r2 = t3(a, B, T, C);
        } else {
            la->ln1 = t3(a, B, T, C);
            la->ln2 = t3(a, B, T, C);
        }
    }
    m->pool_in = t2(a, B, C);
    m->pool_mean = t1(a, B);
    m->pool_rstd = t1(a, B);
    m->pooled = t2(a, B, C);
    m->emb = t2(a, B, m->embed_dim);
    m->dcur = t3(a, B, T, C);
    m->dA = t3(a, B, T, C);
    m->dB = t3(a, B, T, C);
    m->dqkv = t3(a, B, T, 3 * C);
    m->d4 = t3(a, B, T, F);
    m->dh = t3(a, B, T, F);
    m->g4 = t3(a, B, T, F);
    m->dpool = t2(a, B, C);
}

/* ---------------------------------------------------------------- forward */

static void zero(cg_tensor *t) { memset(t->data, 0, cg_tensor_bytes(t)); }
static void add_into(cg_tensor *y, const cg_tensor *x) {
    int64_t n = cg_tensor_numel(y);
    float *yp = y->data;
    const float *xp = x->data;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) yp[i] += xp[i];
}

static int check_input(cg_text_tower *m, const int32_t *ids, int B, int T) {
    const cg_text_config *c = &m->cfg;
    if (B <= 0 || T <= 0) return cg_error_set(CG_ERR_FORMAT, "%s: empty batch (%d x %d tokens)", c->name, B, T);
    if (T > c->max_positions)
        return cg_error_set(CG_ERR_FORMAT, "%s: %d tokens per text, but the tower has %d positions", c->name, T,
                            c->max_positions);
    for (int64_t i = 0; i < (int64_t)B * T; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return cg_error_set(CG_ERR_FORMAT, "%s: token id %d (text %lld, position %lld) outside the vocabulary [0, %d)",
                                c->name, ids[i], (long long)(i / T), (long long)(i % T), c->vocab_size);
    return CG_OK;
}

/* CLIP pooling position of each row */
static int pool_positions(cg_text_tower *m, const int32_t *ids, int B, int T) {
    const cg_text_config *c = &m->cfg;
    for (int b = 0; b < B; b++) {
        const int32_t *r = ids + (int64_t)b * T;
        int pos = -1;
        if (c->kind == CG_TEXT_BERT) {
            pos = 0;
        } else if (c->eos_id < 0 || c->eos_id == 2) {
            pos = 0;  /* argmax, first maximum (torch.argmax) */
            for (int t = 1; t < T; t++)
                if (r[t] > r[pos]) pos = t;
        } else {
            for (int t = 0; t < T && pos < 0; t++)
                if (r[t] == c->eos_id) pos = t;
            if (pos < 0)
                return cg_error_set(CG_ERR_FORMAT, "%s: text %d has no end-of-text token (id %d) to pool at", c->name, b,
                                    c->eos_id);
        }
        m->pool_pos[b] = pos;
    }
    return CG_OK;
}

static void clip_layer_forward(cg_text_tower *m, int l, const cg_tensor *x, cg_tensor *out) {
    const cg_text_layer *L = &m->layers[l];
    cg_text_layer_acts *la = &m->lacts[l];
    float eps = m->cfg.ln_eps;
    cg_tensor w = P(m, L->ln1_w), b = P(m, L->ln1_b);
    cg_layernorm_forward(&la->ln1, &la->mean1, &la->rstd1, x, &w, &b, eps);
    w = qkv_view(m, L, 0, 0);
    b = qkv_view(m, L, 0, 1);
    cg_linear_forward(&la->qkv, &la->ln1, &w, &b);
    cg_attention_forward(&la->a, &la->att, &la->qkv, m->cfg.heads, 1, NULL);
    w = P(m, L->o_w); b = P(m, L->o_b);
    cg_linear_forward(&la->x1, &la->a, &w, &b);
    add_into(&la->x1, x);
    w = P(m, L->ln2_w); b = P(m, L->ln2_b);
    cg_layernorm_forward(&la->ln2, &la->mean2, &la->rstd2, &la->x1, &w, &b, eps);
    w = P(m, L->fc1_w); b = P(m, L->fc1_b);
    cg_linear_forward(&la->h, &la->ln2, &w, &b);
    cg_act_forward((cg_act_kind)m->cfg.act, &m->g4, &la->h);
    w = P(m, L->fc2_w); b = P(m, L->fc2_b);
    cg_linear_forward(out, &m->g4, &w, &b);
    add_into(out, &la->x1);
}

static void bert_layer_forward(cg_text_tower *m, int l, const cg_tensor *x, cg_tensor *out) {
    const cg_text_layer *L = &m->layers[l];
    cg_text_layer_acts *la = &m->lacts[l];
    float eps = m->cfg.ln_eps;
    cg_tensor w = qkv_view(m, L, 0, 0), b = qkv_view(m, L, 0, 1);
    cg_linear_forward(&la->qkv, x, &w, &b);
    cg_attention_forward(&la->a, &la->att, &la->qkv, m->cfg.heads, 0, m->key_mask);
    w = P(m, L->o_w); b = P(m, L->o_b);
    cg_linear_forward(&la->r1, &la->a, &w, &b);
    add_into(&la->r1, x);
    w = P(m, L->ln1_w); b = P(m, L->ln1_b);
    cg_layernorm_forward(&la->x1, &la->mean1, &la->rstd1, &la->r1, &w, &b, eps);
    w = P(m, L->fc1_w); b = P(m, L->fc1_b);
    cg_linear_forward(&la->h, &la->x1, &w, &b);
    cg_act_forward((cg_act_kind)m->cfg.act, &m->g4, &la->h);
    w = P(m, L->fc2_w); b = P(m, L->fc2_b);
    cg_linear_forward(&la->r2, &m->g4, &w, &b);
    add_into(&la->r2, &la->x1);
    w = P(m, L->ln2_w); b = P(m, L->ln2_b);
    cg_layernorm_forward(out, &la->mean2, &la->rstd2, &la->r2, &w, &b, eps);
}

int cg_text_forward(cg_text_tower *m, const int32_t *ids, int B, int T) {
    int rc = check_input(m, ids, B, T);
    if (rc) return rc;
    alloc_acts(m, B, T);
    rc = pool_positions(m, ids, B, T);
    if (rc) return rc;
    const cg_text_config *c = &m->cfg;
    int64_t N = (int64_t)B * T, C = c->width;
    memcpy(m->ids, ids, (size_t)N * sizeof(int32_t));
    cg_tensor tok = P(m, m->tok_emb), pos = P(m, m->pos_emb);
    if (c->kind == CG_TEXT_CLIP) {
        cg_embedding_forward(&m->res[0], m->ids, &tok, 0);
        cg_posemb_forward(&m->res[0], &pos);
    } else {
        for (int64_t i = 0; i < N; i++) m->key_mask[i] = ids[i] != c->pad_id;
        cg_tensor type = P(m, m->type_emb), w = P(m, m->emb_ln_w), b = P(m, m->emb_ln_b);
        cg_embedding_forward(&m->e0, m->ids, &tok, 0);
        cg_posemb_forward(&m->e0, &pos);
        cg_embedding_forward(&m->e0, m->zero_ids, &type, 1);
        cg_layernorm_forward(&m->res[0], &m->emb_mean, &m->emb_rstd, &m->e0, &w, &b, c->ln_eps);
    }
    for (int l = 0; l < c->layers; l++) {
        if (c->kind == CG_TEXT_CLIP) clip_layer_forward(m, l, &m->res[l], &m->res[l + 1]);
        else bert_layer_forward(m, l, &m->res[l], &m->res[l + 1]);
    }
    const cg_tensor *last = &m->res[c->layers];
    for (int b = 0; b < B; b++)
        memcpy(m->pool_in.data + b * C, last->data + ((int64_t)b * T + m->pool_pos[b]) * C, (size_t)C * sizeof(float));
    if (c->kind == CG_TEXT_CLIP) {
        cg_tensor w = P(m, m->final_ln_w), b = P(m, m->final_ln_b);
        cg_layernorm_forward(&m->pooled, &m->pool_mean, &m->pool_rstd, &m->pool_in, &w, &b, c->ln_eps);
    } else {
        memcpy(m->pooled.data, m->pool_in.data, cg_tensor_bytes(&m->pooled));
    }
    cg_tensor pw = P(m, m->proj_w);
    cg_linear_forward(&m->emb, &m->pooled, &pw, NULL);
    return CG_OK;
}

/* ---------------------------------------------------------------- backward */

/* MLP backward shared by both flavours: dy = gradient w.r.t. the MLP output (fc2's), xin = the
 * MLP input (CLIP: ln2, BERT: x1); adds d xin into dxin. */
static void mlp_backward(cg_text_tower *m, const cg_text_layer *L, cg_text_layer_acts *la, const cg_tensor *dy,
                         const cg_tensor *xin, cg_tensor *dxin) {
    cg_act_forward((cg_act_kind)m->cfg.act, &m->g4, &la->h);   /* recompute instead of storing */
    zero(&m->d4);
    cg_tensor w = P(m, L->fc2_w), gw = G(m, L->fc2_w), gb = G(m, L->fc2_b);
    cg_linear_backward(&m->d4, &gw, &gb, dy, &m->g4, &w);
    zero(&m->dh);
    cg_act_backward((cg_act_kind)m->cfg.act, &m->dh, &m->d4, &la->h);
    w = P(m, L->fc1_w); gw = G(m, L->fc1_w); gb = G(m, L->fc1_b);
    cg_linear_backward(dxin, &gw, &gb, &m->dh, xin, &w);
}

/* attention sub-block backward: dy = gradient w.r.t. the out-projection's output, xin = the
 * qkv projection's input; adds d xin into dxin. */
static void attn_backward(cg_text_tower *m, const cg_text_layer *L, cg_text_layer_acts *la, const cg_tensor *dy,
                          const cg_tensor *xin, cg_tensor *dxin) {
    cg_tensor da = m->dB;
    zero(&da);
    cg_tensor w = P(m, L->o_w), gw = G(m, L->o_w), gb = G(m, L->o_b);
    cg_linear_backward(&da, &gw, &gb, dy, &la->a, &w);
    zero(&m->dqkv);
    cg_attention_backward(&m->dqkv, &da, &la->qkv, &la->att, m->cfg.heads);
    w = qkv_view(m, L, 0, 0);
    gw = qkv_view(m, L, 1, 0);
    gb = qkv_view(m, L, 1, 1);
    cg_linear_backward(dxin, &gw, &gb, &m->dqkv, xin, &w);
}

/* dcur holds d res[l+1] on entry and d res[l] on return */
static void clip_layer_backward(cg_text_tower *m, int l) {
    const cg_text_layer *L = &m->layers[l];
    cg_text_layer_acts *la = &m->lacts[l];
    /* out = x1 + mlp(ln2(x1)): d x1 = dcur + LN2'(mlp'(dcur)) */
    zero(&m->dA);
    mlp_backward(m, L, la, &m->dcur, &la->ln2, &m->dA);
    cg_tensor w = P(m, L->ln2_w), gw = G(m, L->ln2_w), gb = G(m, L->ln2_b);
    cg_layernorm_backward(&m->dcur, &gw, &gb, &m->dA, &la->x1, &la->mean2, &la->rstd2, &w);
    /* x1 = x + attn(ln1(x)) */
    zero(&m->dA);
    attn_backward(m, L, la, &m->dcur, &la->ln1, &m->dA);
    w = P(m, L->ln1_w); gw = G(m, L->ln1_w); gb = G(m, L->ln1_b);
    cg_layernorm_backward(&m->dcur, &gw, &gb, &m->dA, &m->res[l], &la->mean1, &la->rstd1, &w);
}

static void bert_layer_backward(cg_text_tower *m, int l) {
    const cg_text_layer *L = &m->layers[l];
    cg_text_layer_acts *la = &m->lacts[l];
    /* out = LN2(r2), r2 = x1 + mlp(x1) */
    zero(&m->dA);
    cg_tensor w = P(m, L->ln2_w), gw = G(m, L->ln2_w), gb = G(m, L->ln2_b);
    cg_layernorm_backward(&m->dA, &gw, &gb, &m->dcur, &la->r2, &la->mean2, &la->rstd2, &w);   /* dA = d r2 */
    memcpy(m->dcur.data, m->dA.data, cg_tensor_bytes(&m->dA));                                /* dcur = d x1 */
    mlp_backward(m, L, la, &m->dA, &la->x1, &m->dcur);
    /* x1 = LN1(r1), r1 = x + attn(x) */
    zero(&m->dA);
    w = P(m, L->ln1_w); gw = G(m, L->ln1_w); gb = G(m, L->ln1_b);
    cg_layernorm_backward(&m->dA, &gw, &gb, &m->dcur, &la->r1, &la->mean1, &la->rstd1, &w);   /* dA = d r1 */
    memcpy(m->dcur.data, m->dA.data, cg_tensor_bytes(&m->dA));                                /* dcur = d x */
    attn_backward(m, L, la, &m->dA, &m->res[l], &m->dcur);
}

void cg_text_backward(cg_text_tower *m, const float *d_emb) {
    if (m->frozen) return;
    if (!m->lacts) cg_tensor_fail("cg_text_backward", "no forward pass to differentiate");
    const cg_text_config *c = &m->cfg;
    int B = m->B, T = m->T;
    int64_t C = c->width;
    cg_tensor demb = cg_tensor_2d((float *)d_emb, CG_DEV_CPU, B, m->embed_dim);
    cg_tensor pw = P(m, m->proj_w), gpw = G(m, m->proj_w);
    zero(&m->dpool);
    cg_linear_backward(&m->dpool, &gpw, NULL, &demb, &m->pooled, &pw);
    cg_tensor dpin = m->dpool;
    if (c->kind == CG_TEXT_CLIP) {
        dpin = cg_tensor_2d(m->dA.data, CG_DEV_CPU, B, C);
        zero(&dpin);
        cg_tensor w = P(m, m->final_ln_w), gw = G(m, m->final_ln_w), gb = G(m, m->final_ln_b);
        cg_layernorm_backward(&dpin, &gw, &gb, &m->dpool, &m->pool_in, &m->pool_mean, &m->pool_rstd, &w);
    }
    zero(&m->dcur);
    for (int b = 0; b < B; b++) {
        float *dst = m->dcur.data + ((int64_t)b * T + m->pool_pos[b]) * C;
        for (int64_t k = 0; k < C; k++) dst[k] += dpin.data[b * C + k];
    }
    for (int l = c->layers - 1; l >= 0; l--) {
        if (c->kind == CG_TEXT_CLIP) clip_layer_backward(m, l);
        else bert_layer_backward(m, l);
    }
    cg_tensor gtok = G(m, m->tok_emb), gpos = G(m, m->pos_emb);
    if (c->kind == CG_TEXT_CLIP) {
        cg_embedding_backward(&gtok, &m->dcur, m->ids, -1);
        cg_posemb_backward(&gpos, &m->dcur);
    } else {
        zero(&m->dA);
        cg_tensor w = P(m, m->emb_ln_w), gw = G(m, m->emb_ln_w), gb = G(m, m->emb_ln_b);
        cg_layernorm_backward(&m->dA, &gw, &gb, &m->dcur, &m->e0, &m->emb_mean, &m->emb_rstd, &w);
        cg_tensor gtype = G(m, m->type_emb);
        cg_embedding_backward(&gtok, &m->dA, m->ids, c->pad_id);   /* padding_idx: no gradient */
        cg_posemb_backward(&gpos, &m->dA);
        cg_embedding_backward(&gtype, &m->dA, m->zero_ids, -1);
    }
}
