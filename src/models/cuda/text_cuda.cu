/* text_cuda.cu — the text towers on the device (models/cuda/text_cuda.h).
 *
 * Host code only: the forward and backward of models/text_transformer.c, op for op and in the
 * same order, with each CPU layer call replaced by its nn/cuda twin. No kernels of its own.
 * Not yet run on a GPU.
 */
#include "models/cuda/text_cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/cuda/cuda_ops.h"

extern "C" {
#include "core/log.h"
#include "nn/gelu.h"
}

#define TX_TRY(expr) do { int tx_rc_ = (expr); if (tx_rc_) return tx_rc_; } while (0)

/* ---------------------------------------------------------------- layout (plan, then allocate) */

typedef struct {
    cg_cuda_arena *a;
    int failed;
} layout_ctx;

static void *take(layout_ctx *L, size_t bytes) {
    if (bytes == 0) bytes = 1;
    void *ptr = cg_cuda_arena_alloc(L->a, bytes);
    if (!ptr && !L->a->planning) L->failed = 1;
    return ptr;
}

static int is_bert(const cg_cuda_text *m) { return m->cfg.kind == CG_TEXT_BERT; }

/* Every device buffer of the tower, in one place (the order of text_transformer.c's alloc_acts);
 * run once on a planning arena and once on the real one. */
static void layout(cg_cuda_text *m, layout_ctx *L) {
    size_t xs = cg_prec_size(m->p);
    const cg_text_config *c = &m->cfg;
    int64_t C = c->width, F = c->mlp, B = m->B, T = m->T, N = B * T, H = c->heads;
    int bert = is_bert(m);
    m->w.params = (float *)take(L, (size_t)m->w.n_params * sizeof(float));
    m->w.grads = (float *)take(L, (size_t)m->w.n_params * sizeof(float));
    m->w.wx = m->p == CG_PREC_FP32 ? (void *)m->w.params : take(L, (size_t)m->w.n_params * xs);
    m->ids = (int32_t *)take(L, (size_t)N * sizeof(int32_t));
    m->zero_ids = (int32_t *)take(L, (size_t)N * sizeof(int32_t));
    m->pool_rows = (int32_t *)take(L, (size_t)B * sizeof(int32_t));
    m->key_mask = bert ? (uint8_t *)take(L, (size_t)N) : NULL;
    m->e0 = bert ? take(L, (size_t)(N * C) * xs) : NULL;
    m->emb_mean = bert ? (float *)take(L, (size_t)N * sizeof(float)) : NULL;
    m->emb_rstd = bert ? (float *)take(L, (size_t)N * sizeof(float)) : NULL;
    for (int l = 0; l <= c->layers; l++) m->res[l] = take(L, (size_t)(N * C) * xs);
    for (int l = 0; l < c->layers; l++) {
        cg_cuda_text_layer_acts *la = &m->lacts[l];
        la->qkv = take(L, (size_t)(N * 3 * C) * xs);
        la->att = take(L, (size_t)(B * H * T * T) * xs);
        la->a = take(L, (size_t)(N * C) * xs);
        la->x1 = take(L, (size_t)(N * C) * xs);
        la->h = take(L, (size_t)(N * F) * xs);
        la->g = m->frozen ? NULL : take(L, (size_t)(N * F) * xs);   /* kept for fc2's backward */
        la->mean1 = (float *)take(L, (size_t)N * sizeof(float));
        la->rstd1 = (float *)take(L, (size_t)N * sizeof(float));
        la->mean2 = (float *)take(L, (size_t)N * sizeof(float));
        la->rstd2 = (float *)take(L, (size_t)N * sizeof(float));
        if (bert) {
            la->r1 = take(L, (size_t)(N * C) * xs);
            la->r2 = take(L, (size_t)(N * C) * xs);
            la->ln1 = la->ln2 = NULL;
        } else {
            la->ln1 = take(L, (size_t)(N * C) * xs);
            la->ln2 = take(L, (size_t)(N * C) * xs);
            la->r1 = la->r2 = NULL;
        }
    }
    m->pool_in = take(L, (size_t)(B * C) * xs);
    m->pool_mean = (float *)take(L, (size_t)B * sizeof(float));
    m->pool_rstd = (float *)take(L, (size_t)B * sizeof(float));
    m->pooled = take(L, (size_t)(B * C) * xs);
    m->emb = take(L, (size_t)(B * m->embed_dim) * xs);
    m->g4 = m->frozen ? take(L, (size_t)(N * F) * xs) : NULL;
    m->dcur = take(L, (size_t)(N * C) * xs);
    m->dA = take(L, (size_t)(N * C) * xs);
    m->dB = take(L, (size_t)(N * C) * xs);
    m->dqkv = take(L, (size_t)(N * 3 * C) * xs);
    m->d4 = take(L, (size_t)(N * F) * xs);
    m->dh = take(L, (size_t)(N * F) * xs);
    m->dpool = take(L, (size_t)(B * C) * xs);
    m->d_emb = take(L, (size_t)(B * m->embed_dim) * xs);
}

/* Copy the CPU tower's structure (indices, offsets) into m; no device work. */
static void copy_structure(cg_cuda_text *m, const cg_text_tower *cpu, cg_precision p, int B, int T) {
    memset(m, 0, sizeof *m);
    m->p = p;
    m->cfg = cpu->cfg;
    m->embed_dim = cpu->embed_dim;
    m->frozen = cpu->frozen;
    m->tok_emb = cpu->tok_emb;
    m->pos_emb = cpu->pos_emb;
    m->type_emb = cpu->type_emb;
    m->emb_ln_w = cpu->emb_ln_w;
    m->emb_ln_b = cpu->emb_ln_b;
    m->final_ln_w = cpu->final_ln_w;
    m->final_ln_b = cpu->final_ln_b;
    m->proj_w = cpu->proj_w;
    int nl = cpu->cfg.layers;
    m->layers = (cg_text_layer *)cg_xcalloc((size_t)(nl ? nl : 1), sizeof *m->layers);
    if (nl) memcpy(m->layers, cpu->layers, (size_t)nl * sizeof *m->layers);
    m->lacts = (cg_cuda_text_layer_acts *)cg_xcalloc((size_t)(nl ? nl : 1), sizeof *m->lacts);
    m->res = (void **)cg_xcalloc((size_t)nl + 1, sizeof *m->res);
    cg_cuda_params_layout(&m->w, &cpu->params);
    m->B = B;
    m->T = T;
    m->host_rows = (int32_t *)cg_xcalloc((size_t)(B > 0 ? B : 1), sizeof *m->host_rows);
    m->host_mask = (uint8_t *)cg_xcalloc((size_t)((int64_t)B * T > 0 ? (int64_t)B * T : 1), 1);
}

static void free_host(cg_cuda_text *m) {
    free(m->layers);
    free(m->lacts);
    free(m->res);
    cg_cuda_params_free(&m->w);
    free(m->host_rows);
    free(m->host_mask);
    m->layers = NULL;
    m->lacts = NULL;
    m->res = NULL;
    m->host_rows = NULL;
    m->host_mask = NULL;
}

extern "C" size_t cg_cuda_text_arena_bytes(const cg_text_tower *cpu, cg_precision p, int B, int T) {
    cg_cuda_text m;
    copy_structure(&m, cpu, p, B, T);
    cg_cuda_arena_plan(&m.arena);
    layout_ctx L = {&m.arena, 0};
    layout(&m, &L);
    size_t bytes = m.arena.used;
    free_host(&m);
    return bytes;
}

extern "C" size_t cg_cuda_text_scratch_bytes(const cg_text_tower *cpu, cg_precision p, int B, int T) {
    size_t need = (size_t)1 << 20;   /* LayerNorm and linear partial sums: they adapt, but want room */
    int64_t N = (int64_t)B * T;
    size_t s = cg_cuda_attention_scratch_bytes(p, B, T, cpu->cfg.width, cpu->cfg.heads);
    if (s > need) need = s;
    s = cg_cuda_embedding_scratch_bytes(N, cpu->cfg.width);   /* the token and token-type tables: both C wide */
    if (s > need) need = s;
    return need;
}

extern "C" int cg_cuda_text_create(cg_cuda_text *m, cg_cuda_ctx *ctx, const cg_text_tower *cpu, cg_precision p, int B,
                                   int T) {
    memset(m, 0, sizeof *m);
    if (B < 1 || T < 1 || T > cpu->cfg.max_positions)
        return cg_error_set(CG_ERR_STATE, "cg_cuda_text_create: batch %d x %d tokens (need B >= 1, 1 <= T <= %d)", B,
                            T, cpu->cfg.max_positions);
    if (cpu->cfg.kind != CG_TEXT_CLIP && cpu->cfg.kind != CG_TEXT_BERT)
        return cg_error_set(CG_ERR_STATE, "cg_cuda_text_create: unknown text tower kind %d", (int)cpu->cfg.kind);
    if (cpu->params.n_buffers || cpu->params.n_counters)
        return cg_error_set(CG_ERR_STATE, "cg_cuda_text_create: a text tower with buffers or counters");
    size_t need = cg_cuda_text_scratch_bytes(cpu, p, B, T);
    if (cg_cuda_scratch_bytes(ctx) < need)
        return cg_error_set(CG_ERR_STATE, "cg_cuda_text_create: the context's scratch is %zu bytes, needs %zu",
                            cg_cuda_scratch_bytes(ctx), need);
    copy_structure(m, cpu, p, B, T);
    m->ctx = ctx;
    cg_cuda_arena_plan(&m->arena);
    layout_ctx L = {&m->arena, 0};
    layout(m, &L);
    size_t bytes = m->arena.used;
    int rc = cg_cuda_arena_init(&m->arena, bytes);
    if (rc) {
        free_host(m);
        return rc;
    }
    L.a = &m->arena;
    layout(m, &L);
    if (L.failed) {
        cg_cuda_text_free(m);
        return cg_error_set(CG_ERR_NOMEM, "cg_cuda_text_create: arena of %zu bytes too small (planning bug)", bytes);
    }
    int64_t N = (int64_t)B * T;
    rc = cg_cuda_memset0(ctx, m->w.grads, (size_t)m->w.n_params * sizeof(float));
    if (!rc) rc = cg_cuda_memset0(ctx, m->zero_ids, (size_t)N * sizeof(int32_t));   /* token types: all 0 */
    if (!rc) rc = cg_cuda_text_upload(m, &cpu->params);
    if (rc) cg_cuda_text_free(m);
    return rc;
}

extern "C" void cg_cuda_text_free(cg_cuda_text *m) {
    if (m->ctx) cg_cuda_sync(m->ctx);
    cg_cuda_arena_free(&m->arena);
    free_host(m);
    memset(m, 0, sizeof *m);
}

extern "C" int cg_cuda_text_refresh_weights(cg_cuda_text *m) { return cg_cuda_params_refresh(m->ctx, &m->w, m->p); }

extern "C" int cg_cuda_text_upload(cg_cuda_text *m, const cg_params *src) {
    return cg_cuda_params_upload(m->ctx, &m->w, m->p, src, "cg_cuda_text_upload");
}

extern "C" int cg_cuda_text_download(cg_cuda_text *m, cg_params *dst, int grads) {
    return cg_cuda_params_download(m->ctx, &m->w, dst, grads, "cg_cuda_text_download");
}

extern "C" int cg_cuda_text_zero_grad(cg_cuda_text *m) { return cg_cuda_params_zero_grad(m->ctx, &m->w); }

/* ---------------------------------------------------------------- pointers into the flat arrays */

/* X view of a parameter's value (what the forward reads); for qkv_w / qkv_b the fused [3C, C] /
 * [3C] q|k|v block (k and v follow q in memory, as on the CPU) */
static const void *PX(const cg_cuda_text *m, int i) {
    return (const char *)m->w.wx + (size_t)m->w.offsets[i] * cg_prec_size(m->p);
}
static float *GR(const cg_cuda_text *m, int i) { return m->w.grads + m->w.offsets[i]; }
static int zero_x(cg_cuda_text *m, void *d, int64_t n) {
    return cg_cuda_memset0(m->ctx, d, (size_t)n * cg_prec_size(m->p));
}
static int copy_x(cg_cuda_text *m, void *dst, const void *src, int64_t n) {
    return cg_cuda_d2d(m->ctx, dst, src, (size_t)n * cg_prec_size(m->p));
}
/* y += x over n elements (the CPU's add_into): residual with one "channel" and no DropPath */
static int add_into(cg_cuda_text *m, void *y, const void *x, int64_t n) {
    return cg_cuda_residual_forward(m->ctx, m->p, y, x, y, NULL, 1, 1, n);
}
static int act_forward(cg_cuda_text *m, void *y, const void *x, int64_t n) {
    if (m->cfg.act == CG_ACT_QUICK_GELU) return cg_cuda_quick_gelu_forward(m->ctx, m->p, y, x, n);
    return cg_cuda_gelu_forward(m->ctx, m->p, y, x, n);
}
/* dx = act'(x) dy (overwritten) */
static int act_backward(cg_cuda_text *m, void *dx, const void *dy, const void *x, int64_t n) {
    if (m->cfg.act == CG_ACT_QUICK_GELU) return cg_cuda_quick_gelu_backward(m->ctx, m->p, CG_GRAD_SET, dx, dy, x, n);
    return cg_cuda_gelu_backward(m->ctx, m->p, CG_GRAD_SET, dx, dy, x, n);
}

/* ---------------------------------------------------------------- forward */

/* text_transformer.c's check_input + pool_positions, on the host ids */
static int check_ids(cg_cuda_text *m, const int32_t *ids) {
    const cg_text_config *c = &m->cfg;
    int B = m->B, T = m->T;
    for (int64_t i = 0; i < (int64_t)B * T; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return cg_error_set(CG_ERR_FORMAT, "%s: token id %d (text %lld, position %lld) outside the vocabulary [0, %d)",
                                c->name, ids[i], (long long)(i / T), (long long)(i % T), c->vocab_size);
    for (int b = 0; b < B; b++) {
        const int32_t *r = ids + (int64_t)b * T;
        int pos = -1;
        if (c->kind == CG_TEXT_BERT) {
            pos = 0;
        } else if (c->eos_id < 0 || c->eos_id == 2) {
            pos = 0;   /* argmax, first maximum (torch.argmax) */
            for (int t = 1; t < T; t++)
                if (r[t] > r[pos]) pos = t;
        } else {
            for (int t = 0; t < T && pos < 0; t++)
                if (r[t] == c->eos_id) pos = t;
            if (pos < 0)
                return cg_error_set(CG_ERR_FORMAT, "%s: text %d has no end-of-text token (id %d) to pool at", c->name, b,
                                    c->eos_id);
        }
        m->host_rows[b] = b * T + pos;
    }
    return CG_OK;
}

static int clip_layer_forward(cg_cuda_text *m, int l, const void *x, void *out) {
    const cg_text_layer *Ly = &m->layers[l];
    cg_cuda_text_layer_acts *la = &m->lacts[l];
    const cg_text_config *c = &m->cfg;
    int64_t C = c->width, F = c->mlp, N = (int64_t)m->B * m->T;
    cg_cuda_ctx *ctx = m->ctx;
    cg_precision p = m->p;
    TX_TRY(cg_cuda_layernorm_forward(ctx, p, la->ln1, la->mean1, la->rstd1, x, PX(m, Ly->ln1_w), PX(m, Ly->ln1_b), N,
                                     C, c->ln_eps));
    TX_TRY(cg_cuda_linear_forward(ctx, p, la->qkv, la->ln1, PX(m, Ly->qkv_w), PX(m, Ly->qkv_b), N, C, 3 * C));
    TX_TRY(cg_cuda_attention_forward(ctx, p, la->a, la->att, la->qkv, m->B, m->T, C, c->heads, 1, NULL));
    TX_TRY(cg_cuda_linear_forward(ctx, p, la->x1, la->a, PX(m, Ly->o_w), PX(m, Ly->o_b), N, C, C));
    TX_TRY(add_into(m, la->x1, x, N * C));
    TX_TRY(cg_cuda_layernorm_forward(ctx, p, la->ln2, la->mean2, la->rstd2, la->x1, PX(m, Ly->ln2_w),
                                     PX(m, Ly->ln2_b), N, C, c->ln_eps));
    TX_TRY(cg_cuda_linear_forward(ctx, p, la->h, la->ln2, PX(m, Ly->fc1_w), PX(m, Ly->fc1_b), N, C, F));
    void *g = la->g ? la->g : m->g4;
    TX_TRY(act_forward(m, g, la->h, N * F));
    TX_TRY(cg_cuda_linear_forward(ctx, p, out, g, PX(m, Ly->fc2_w), PX(m, Ly->fc2_b), N, F, C));
    return add_into(m, out, la->x1, N * C);
}

static int bert_layer_forward(cg_cuda_text *m, int l, const void *x, void *out) {
    const cg_text_layer *Ly = &m->layers[l];
    cg_cuda_text_layer_acts *la = &m->lacts[l];
    const cg_text_config *c = &m->cfg;
    int64_t C = c->width, F = c->mlp, N = (int64_t)m->B * m->T;
    cg_cuda_ctx *ctx = m->ctx;
    cg_precision p = m->p;
    TX_TRY(cg_cuda_linear_forward(ctx, p, la->qkv, x, PX(m, Ly->qkv_w), PX(m, Ly->qkv_b), N, C, 3 * C));
    TX_TRY(cg_cuda_attention_forward(ctx, p, la->a, la->att, la->qkv, m->B, m->T, C, c->heads, 0, m->key_mask));
    TX_TRY(cg_cuda_linear_forward(ctx, p, la->r1, la->a, PX(m, Ly->o_w), PX(m, Ly->o_b), N, C, C));
    TX_TRY(add_into(m, la->r1, x, N * C));
    TX_TRY(cg_cuda_layernorm_forward(ctx, p, la->x1, la->mean1, la->rstd1, la->r1, PX(m, Ly->ln1_w),
                                     PX(m, Ly->ln1_b), N, C, c->ln_eps));
    TX_TRY(cg_cuda_linear_forward(ctx, p, la->h, la->x1, PX(m, Ly->fc1_w), PX(m, Ly->fc1_b), N, C, F));
    void *g = la->g ? la->g : m->g4;
    TX_TRY(act_forward(m, g, la->h, N * F));
    TX_TRY(cg_cuda_linear_forward(ctx, p, la->r2, g, PX(m, Ly->fc2_w), PX(m, Ly->fc2_b), N, F, C));
    TX_TRY(add_into(m, la->r2, la->x1, N * C));
    return cg_cuda_layernorm_forward(ctx, p, out, la->mean2, la->rstd2, la->r2, PX(m, Ly->ln2_w), PX(m, Ly->ln2_b), N,
                                     C, c->ln_eps);
}

extern "C" int cg_cuda_text_forward(cg_cuda_text *m, const int32_t *ids) {
    m->have_forward = 0;
    TX_TRY(check_ids(m, ids));
    const cg_text_config *c = &m->cfg;
    int64_t B = m->B, T = m->T, N = B * T, C = c->width;
    cg_cuda_ctx *ctx = m->ctx;
    cg_precision p = m->p;
    TX_TRY(cg_cuda_h2d(ctx, m->ids, ids, (size_t)N * sizeof(int32_t)));
    TX_TRY(cg_cuda_h2d(ctx, m->pool_rows, m->host_rows, (size_t)B * sizeof(int32_t)));
    if (c->kind == CG_TEXT_CLIP) {
        TX_TRY(cg_cuda_embedding_forward(ctx, p, m->res[0], m->ids, PX(m, m->tok_emb), N, C, c->vocab_size, 0));
        TX_TRY(cg_cuda_posemb_forward(ctx, p, m->res[0], PX(m, m->pos_emb), B, T, C));
    } else {
        for (int64_t i = 0; i < N; i++) m->host_mask[i] = ids[i] != c->pad_id;
        TX_TRY(cg_cuda_h2d(ctx, m->key_mask, m->host_mask, (size_t)N));
        TX_TRY(cg_cuda_embedding_forward(ctx, p, m->e0, m->ids, PX(m, m->tok_emb), N, C, c->vocab_size, 0));
        TX_TRY(cg_cuda_posemb_forward(ctx, p, m->e0, PX(m, m->pos_emb), B, T, C));
        TX_TRY(cg_cuda_embedding_forward(ctx, p, m->e0, m->zero_ids, PX(m, m->type_emb), N, C, c->type_vocab, 1));
        TX_TRY(cg_cuda_layernorm_forward(ctx, p, m->res[0], m->emb_mean, m->emb_rstd, m->e0, PX(m, m->emb_ln_w),
                                         PX(m, m->emb_ln_b), N, C, c->ln_eps));
    }
    for (int l = 0; l < c->layers; l++) {
        if (c->kind == CG_TEXT_CLIP) TX_TRY(clip_layer_forward(m, l, m->res[l], m->res[l + 1]));
        else TX_TRY(bert_layer_forward(m, l, m->res[l], m->res[l + 1]));
    }
    void *last = m->res[c->layers];
    TX_TRY(cg_cuda_gather_rows(ctx, p, m->pool_in, last, m->pool_rows, B, C));
    if (c->kind == CG_TEXT_CLIP)
        TX_TRY(cg_cuda_layernorm_forward(ctx, p, m->pooled, m->pool_mean, m->pool_rstd, m->pool_in,
                                         PX(m, m->final_ln_w), PX(m, m->final_ln_b), B, C, c->ln_eps));
    else
        TX_TRY(copy_x(m, m->pooled, m->pool_in, B * C));
    TX_TRY(cg_cuda_linear_forward(ctx, p, m->emb, m->pooled, PX(m, m->proj_w), NULL, B, C, m->embed_dim));
    m->have_forward = 1;
    return CG_OK;
}

/* ---------------------------------------------------------------- backward */

/* MLP backward shared by both flavours: dy = gradient w.r.t. the MLP output (fc2's), xin = the
 * MLP input (CLIP: ln2, BERT: x1); writes (CG_GRAD_SET) or adds (CG_GRAD_ADD) d xin into dxin. */
static int mlp_backward(cg_cuda_text *m, const cg_text_layer *Ly, cg_cuda_text_layer_acts *la, const void *dy,
                        const void *xin, cg_grad_mode mode, void *dxin) {
    int64_t C = m->cfg.width, F = m->cfg.mlp, N = (int64_t)m->B * m->T;
    cg_cuda_ctx *ctx = m->ctx;
    cg_precision p = m->p;
    TX_TRY(cg_cuda_linear_backward(ctx, p, CG_GRAD_SET, m->d4, GR(m, Ly->fc2_w), GR(m, Ly->fc2_b), dy, la->g, PX(m, Ly->fc2_w), N,
                                   F, C));
    TX_TRY(act_backward(m, m->dh, m->d4, la->h, N * F));
    return cg_cuda_linear_backward(ctx, p, mode, dxin, GR(m, Ly->fc1_w), GR(m, Ly->fc1_b), m->dh, xin, PX(m, Ly->fc1_w), N,
                                   C, F);
}

/* attention sub-block backward: dy = gradient w.r.t. the out-projection's output, xin = the qkv
 * projection's input; writes or adds (mode) d xin into dxin. */
static int attn_backward(cg_cuda_text *m, const cg_text_layer *Ly, cg_cuda_text_layer_acts *la, const void *dy,
                         const void *xin, cg_grad_mode mode, void *dxin) {
    int64_t C = m->cfg.width, N = (int64_t)m->B * m->T;
    cg_cuda_ctx *ctx = m->ctx;
    cg_precision p = m->p;
    void *da = m->dB;
    TX_TRY(cg_cuda_linear_backward(ctx, p, CG_GRAD_SET, da, GR(m, Ly->o_w), GR(m, Ly->o_b), dy, la->a, PX(m, Ly->o_w), N, C, C));
    TX_TRY(cg_cuda_attention_backward(ctx, p, CG_GRAD_SET, m->dqkv, da, la->qkv, la->att, m->B, m->T, C, m->cfg.heads));
    return cg_cuda_linear_backward(ctx, p, mode, dxin, GR(m, Ly->qkv_w), GR(m, Ly->qkv_b), m->dqkv, xin, PX(m, Ly->qkv_w), N,
                                   C, 3 * C);
}

/* dcur holds d res[l+1] on entry and d res[l] on return */
static int clip_layer_backward(cg_cuda_text *m, int l) {
    const cg_text_layer *Ly = &m->layers[l];
    cg_cuda_text_layer_acts *la = &m->lacts[l];
    int64_t C = m->cfg.width, N = (int64_t)m->B * m->T;
    /* out = x1 + mlp(ln2(x1)): d x1 = dcur + LN2'(mlp'(dcur)) */
    TX_TRY(mlp_backward(m, Ly, la, m->dcur, la->ln2, CG_GRAD_SET, m->dA));
    TX_TRY(cg_cuda_layernorm_backward(m->ctx, m->p, CG_GRAD_ADD, m->dcur, GR(m, Ly->ln2_w), GR(m, Ly->ln2_b), m->dA, la->x1,
                                      la->mean2, la->rstd2, PX(m, Ly->ln2_w), N, C));
    /* x1 = x + attn(ln1(x)) */
    TX_TRY(attn_backward(m, Ly, la, m->dcur, la->ln1, CG_GRAD_SET, m->dA));
    return cg_cuda_layernorm_backward(m->ctx, m->p, CG_GRAD_ADD, m->dcur, GR(m, Ly->ln1_w), GR(m, Ly->ln1_b), m->dA, m->res[l],
                                      la->mean1, la->rstd1, PX(m, Ly->ln1_w), N, C);
}

static int bert_layer_backward(cg_cuda_text *m, int l) {
    const cg_text_layer *Ly = &m->layers[l];
    cg_cuda_text_layer_acts *la = &m->lacts[l];
    int64_t C = m->cfg.width, N = (int64_t)m->B * m->T;
    /* out = LN2(r2), r2 = x1 + mlp(x1): d x1 = d r2 + mlp'(d r2). d r2 goes to dA, then the MLP's
     * backward reads it as dy and adds into it as dxin: every read of dy (fc2's three products)
     * is issued before fc1's dx product adds into the same buffer, so no copy is needed. */
    TX_TRY(cg_cuda_layernorm_backward(m->ctx, m->p, CG_GRAD_SET, m->dA, GR(m, Ly->ln2_w), GR(m, Ly->ln2_b), m->dcur, la->r2,
                                      la->mean2, la->rstd2, PX(m, Ly->ln2_w), N, C));   /* dA = d r2 */
    TX_TRY(mlp_backward(m, Ly, la, m->dA, la->x1, CG_GRAD_ADD, m->dA));                 /* dA = d x1 */
    /* x1 = LN1(r1), r1 = x + attn(x): the same in place (out-projection's products first) */
    TX_TRY(cg_cuda_layernorm_backward(m->ctx, m->p, CG_GRAD_SET, m->dcur, GR(m, Ly->ln1_w), GR(m, Ly->ln1_b), m->dA, la->r1,
                                      la->mean1, la->rstd1, PX(m, Ly->ln1_w), N, C));   /* dcur = d r1 */
    return attn_backward(m, Ly, la, m->dcur, m->res[l], CG_GRAD_ADD, m->dcur);         /* dcur = d x */
}

extern "C" int cg_cuda_text_backward(cg_cuda_text *m, const void *d_emb) {
    if (m->frozen) return CG_OK;
    if (!m->have_forward) return cg_error_set(CG_ERR_STATE, "cg_cuda_text_backward: no forward pass to differentiate");
    const cg_text_config *c = &m->cfg;
    int64_t B = m->B, T = m->T, N = B * T, C = c->width;
    cg_cuda_ctx *ctx = m->ctx;
    cg_precision p = m->p;
    TX_TRY(cg_cuda_linear_backward(ctx, p, CG_GRAD_SET, m->dpool, GR(m, m->proj_w), NULL, d_emb, m->pooled, PX(m, m->proj_w), B, C,
                                   m->embed_dim));
    void *dpin = m->dpool;
    if (c->kind == CG_TEXT_CLIP) {
        void *dp = m->dA;   /* [B, C] at the start of dA, as on the CPU */
        TX_TRY(cg_cuda_layernorm_backward(ctx, p, CG_GRAD_SET, dp, GR(m, m->final_ln_w), GR(m, m->final_ln_b), m->dpool,
                                          m->pool_in, m->pool_mean, m->pool_rstd, PX(m, m->final_ln_w), B, C));
        dpin = dp;
    }
    /* scatter: each text's gradient row lands in its own pooled row of a zeroed dcur */
    TX_TRY(zero_x(m, m->dcur, N * C));
    TX_TRY(cg_cuda_scatter_rows(ctx, p, m->dcur, dpin, m->pool_rows, B, C));
    for (int l = c->layers - 1; l >= 0; l--) {
        if (c->kind == CG_TEXT_CLIP) TX_TRY(clip_layer_backward(m, l));
        else TX_TRY(bert_layer_backward(m, l));
    }
    if (c->kind == CG_TEXT_CLIP) {
        TX_TRY(cg_cuda_embedding_backward(ctx, p, GR(m, m->tok_emb), m->dcur, m->ids, N, C, c->vocab_size, -1));
        return cg_cuda_posemb_backward(ctx, p, GR(m, m->pos_emb), m->dcur, B, T, C);
    }
    TX_TRY(cg_cuda_layernorm_backward(ctx, p, CG_GRAD_SET, m->dA, GR(m, m->emb_ln_w), GR(m, m->emb_ln_b), m->dcur, m->e0,
                                      m->emb_mean, m->emb_rstd, PX(m, m->emb_ln_w), N, C));
    TX_TRY(cg_cuda_embedding_backward(ctx, p, GR(m, m->tok_emb), m->dA, m->ids, N, C, c->vocab_size,
                                      c->pad_id));   /* padding_idx: no gradient */
    TX_TRY(cg_cuda_posemb_backward(ctx, p, GR(m, m->pos_emb), m->dA, B, T, C));
    return cg_cuda_embedding_backward(ctx, p, GR(m, m->type_emb), m->dA, m->zero_ids, N, C, c->type_vocab, -1);
}

extern "C" int cg_cuda_text_read_emb(cg_cuda_text *m, float *host) {
    return cg_cuda_download(m->ctx, m->p, host, m->emb, (int64_t)m->B * m->embed_dim);
}

extern "C" int cg_cuda_text_set_d_emb(cg_cuda_text *m, const float *host) {
    return cg_cuda_upload(m->ctx, m->p, m->d_emb, host, (int64_t)m->B * m->embed_dim);
}
