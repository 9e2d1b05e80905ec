#include "models/starnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/conv2d.h"
#include "nn/dwconv2d.h"
#include "nn/linear.h"
#include "nn/pooling.h"
#include "nn/residual.h"

static inline int conv_out(int x) { return (x + 2 * 1 - 3) / 2 + 1; }

/* ---------------------------------------------------------------- counting */

int cg_starnet_feature_dim(const cg_starnet_config *cfg) { return cfg->base_dim * 8; }

int64_t cg_starnet_backbone_params(const cg_starnet_config *cfg) {
    int64_t n = 0, prev = cfg->stem_chs;
    n += (int64_t)cfg->stem_chs * 3 * 9 + cfg->stem_chs + 2 * cfg->stem_chs;
    for (int i = 0; i < 4; i++) {
        int64_t C = (int64_t)cfg->base_dim << i, R = C * cfg->mlp_ratio;
        n += C * prev * 9 + C + 2 * C;
        int64_t block = (C * 49 + C + 2 * C)      /* dwconv + BN */
                        + 2 * (R * C + R)         /* f1, f2 */
                        + (C * R + C + 2 * C)     /* g + BN */
                        + (C * 49 + C);           /* dwconv2 */
        n += block * cfg->depths[i];
        prev = C;
    }
    n += 2 * prev;  /* norm */
    return n;
}

int64_t cg_starnet_head_params(const cg_starnet_config *cfg, int head_out) {
    return head_out > 0 ? (int64_t)cg_starnet_feature_dim(cfg) * head_out + head_out : 0;
}

int64_t cg_starnet_macs(const cg_starnet_config *cfg, int H, int W, int head_out) {
    int h = conv_out(H), w = conv_out(W);
    int64_t macs = (int64_t)cfg->stem_chs * 3 * 9 * h * w, prev = cfg->stem_chs;
    for (int i = 0; i < 4; i++) {
        int64_t C = (int64_t)cfg->base_dim << i, R = C * cfg->mlp_ratio;
        h = conv_out(h);
        w = conv_out(w);
        int64_t hw = (int64_t)h * w;
        macs += C * prev * 9 * hw;
        macs += cfg->depths[i] * (2 * 49 * C * hw + 3 * R * C * hw);
        prev = C;
    }
    return macs + prev * (head_out > 0 ? head_out : 0);
}

/* ---------------------------------------------------------------- construction */

static const int64_t *shp(int64_t a, int64_t b, int64_t c, int64_t d, int64_t *buf) {
    buf[0] = a; buf[1] = b; buf[2] = c; buf[3] = d;
    return buf;
}

static cg_sn_conv add_conv(cg_params *p, const char *prefix, int cout, int cin_per_group, int k) {
    char name[160];
    int64_t s[4];
    cg_sn_conv c;
    snprintf(name, sizeof name, "%s.conv.weight", prefix);
    c.w = cg_params_add(p, name, CG_KIND_PARAM, 4, shp(cout, cin_per_group, k, k, s));
    snprintf(name, sizeof name, "%s.conv.bias", prefix);
    c.b = cg_params_add(p, name, CG_KIND_PARAM, 1, shp(cout, 0, 0, 0, s));
    return c;
}

static cg_sn_bn add_bn(cg_params *p, const char *prefix, int C) {
    char name[160];
    int64_t s[4] = {C, 0, 0, 0};
    cg_sn_bn b;
    snprintf(name, sizeof name, "%s.weight", prefix);
    b.w = cg_params_add(p, name, CG_KIND_PARAM, 1, s);
    snprintf(name, sizeof name, "%s.bias", prefix);
    b.b = cg_params_add(p, name, CG_KIND_PARAM, 1, s);
    snprintf(name, sizeof name, "%s.running_mean", prefix);
    b.rm = cg_params_add(p, name, CG_KIND_BUFFER, 1, s);
    snprintf(name, sizeof name, "%s.running_var", prefix);
    b.rv = cg_params_add(p, name, CG_KIND_BUFFER, 1, s);
    snprintf(name, sizeof name, "%s.num_batches_tracked", prefix);
    b.nbt = cg_params_add(p, name, CG_KIND_COUNTER, 0, s);
    return b;
}

static void init_conv(cg_starnet *m, cg_sn_conv c, cg_rng *r) {
    cg_tensor w = cg_params_value(&m->params, c.w), b = cg_params_value(&m->params, c.b);
    cg_rng_fill_trunc_normal(r, w.data, (size_t)cg_tensor_numel(&w), 0.0f, 0.02f, -2.0f, 2.0f);
    /* PyTorch Conv2d default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = Cin/groups * k * k */
    float bound = 1.0f / sqrtf((float)(w.shape[1] * w.shape[2] * w.shape[3]));
    cg_rng_fill_uniform(r, b.data, (size_t)cg_tensor_numel(&b), -bound, bound);
}

static void init_bn(cg_starnet *m, cg_sn_bn b) {
    cg_tensor w = cg_params_value(&m->params, b.w), bb = cg_params_value(&m->params, b.b);
    cg_tensor rm = cg_params_value(&m->params, b.rm), rv = cg_params_value(&m->params, b.rv);
    for (int64_t i = 0; i < w.shape[0]; i++) { w.data[i] = 1; bb.data[i] = 0; rm.data[i] = 0; rv.data[i] = 1; }
    *cg_params_counter(&m->params, b.nbt) = 0;
}

void cg_starnet_create(cg_starnet *m, const cg_starnet_config *cfg, int embed_dim, float drop_path_rate, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->embed_dim = embed_dim;
    m->bn_momentum = CG_BN_MOMENTUM;
    m->bn_eps = CG_BN_EPS;
    cg_params *p = &m->params;
    cg_params_init(p);
    m->stem_conv = add_conv(p, "stem.0", cfg->stem_chs, 3, 3);
    m->stem_bn = add_bn(p, "stem.0.bn", cfg->stem_chs);
    int total = 0;
    for (int i = 0; i < 4; i++) total += cfg->depths[i];
    m->n_blocks = total;
    m->blocks = cg_xcalloc((size_t)total, sizeof *m->blocks);
    int prev = cfg->stem_chs, bi = 0;
    char pre[128], name[160];
    for (int i = 0; i < 4; i++) {
        int C = cfg->base_dim << i, R = C * cfg->mlp_ratio;
        m->widths[i] = C;
        snprintf(pre, sizeof pre, "stages.%d.0", i);
        m->down_conv[i] = add_conv(p, pre, C, prev, 3);
        snprintf(name, sizeof name, "%s.bn", pre);
        m->down_bn[i] = add_bn(p, name, C);
        for (int j = 1; j <= cfg->depths[i]; j++, bi++) {
            cg_sn_block *b = &m->blocks[bi];
            int64_t s[4];
            b->C = C;
            b->R = R;
            b->drop_prob = total > 1 ? drop_path_rate * (float)bi / (float)(total - 1) : 0.0f;
            snprintf(pre, sizeof pre, "stages.%d.%d.dwconv", i, j);
            b->dw = add_conv(p, pre, C, 1, 7);
            snprintf(name, sizeof name, "%s.bn", pre);
            b->dw_bn = add_bn(p, name, C);
            /* f1 and f2 weights adjacent, then their biases adjacent: [f1; f2] is one [2R, C] matrix */
            snprintf(name, sizeof name, "stages.%d.%d.f1.conv.weight", i, j);
            b->f1.w = cg_params_add(p, name, CG_KIND_PARAM, 4, shp(R, C, 1, 1, s));
            snprintf(name, sizeof name, "stages.%d.%d.f2.conv.weight", i, j);
            b->f2.w = cg_params_add(p, name, CG_KIND_PARAM, 4, shp(R, C, 1, 1, s));
            snprintf(name, sizeof name, "stages.%d.%d.f1.conv.bias", i, j);
            b->f1.b = cg_params_add(p, name, CG_KIND_PARAM, 1, shp(R, 0, 0, 0, s));
            snprintf(name, sizeof name, "stages.%d.%d.f2.conv.bias", i, j);
            b->f2.b = cg_params_add(p, name, CG_KIND_PARAM, 1, shp(R, 0, 0, 0, s));
            snprintf(pre, sizeof pre, "stages.%d.%d.g", i, j);
            b->g = add_conv(p, pre, C, R, 1);
            snprintf(name, sizeof name, "%s.bn", pre);
            b->g_bn = add_bn(p, name, C);
            snprintf(pre, sizeof pre, "stages.%d.%d.dwconv2", i, j);
            b->dw2 = add_conv(p, pre, C, 1, 7);
        }
        prev = C;
    }
    m->norm = add_bn(p, "norm", prev);
    int64_t s[4];
    m->head_w = cg_params_add(p, "head.weight", CG_KIND_PARAM, 2, shp(embed_dim, prev, 0, 0, s));
    m->head_b = cg_params_add(p, "head.bias", CG_KIND_PARAM, 1, shp(embed_dim, 0, 0, 0, s));
    cg_params_alloc(p);

    /* init, in module order */
    cg_rng r;
    cg_rng_seed(&r, seed);
    m->rng = cg_rng_split(&r);
    init_conv(m, m->stem_conv, &r);
    init_bn(m, m->stem_bn);
    for (int i = 0, k = 0; i < 4; i++) {
        init_conv(m, m->down_conv[i], &r);
        init_bn(m, m->down_bn[i]);
        for (int j = 0; j < cfg->depths[i]; j++, k++) {
            cg_sn_block *b = &m->blocks[k];
            init_conv(m, b->dw, &r);
            init_bn(m, b->dw_bn);
            init_conv(m, b->f1, &r);
            init_conv(m, b->f2, &r);
            init_conv(m, b->g, &r);
            init_bn(m, b->g_bn);
            init_conv(m, b->dw2, &r);
        }
    }
    init_bn(m, m->norm);
    cg_tensor hw = cg_params_value(p, m->head_w), hb = cg_params_value(p, m->head_b);
    cg_rng_fill_trunc_normal(&r, hw.data, (size_t)cg_tensor_numel(&hw), 0.0f, 0.02f, -2.0f, 2.0f);
    memset(hb.data, 0, cg_tensor_bytes(&hb));
    cg_arena_init(&m->arena, 64u << 20);
}

void cg_starnet_free(cg_starnet *m) {
    cg_params_free(&m->params);
    free(m->blocks);
    free(m->bacts);
    cg_arena_free(&m->arena);
    memset(m, 0, sizeof *m);
}

int cg_starnet_load(cg_starnet *m, const char *path, int ignore_head) {
    static const char *const head[] = {"head.", NULL};
    return cg_params_load_file(&m->params, path, ignore_head ? head : NULL);
}

int cg_starnet_save(const cg_starnet *m, const char *path) { return cg_params_save(&m->params, path); }

/* ---------------------------------------------------------------- activations */

static cg_tensor act4(cg_arena *a, int64_t C, int64_t N, int64_t H, int64_t W) {
    return cg_tensor_arena(a, CG_DEV_CPU, 4, (int64_t[]){C, N, H, W});
}
static cg_tensor act1(cg_arena *a, int64_t n) { return cg_tensor_arena(a, CG_DEV_CPU, 1, (int64_t[]){n}); }

static void alloc_acts(cg_starnet *m, int N, int H, int W) {
    if (m->bacts && m->N == N && m->H == H && m->W == W) return;
    cg_arena_reset(&m->arena);
    cg_arena *a = &m->arena;
    free(m->bacts);
    m->bacts = cg_xcalloc((size_t)m->n_blocks, sizeof *m->bacts);
    m->N = N; m->H = H; m->W = W;
    int sc = m->cfg.stem_chs;
    m->x = act4(a, 3, N, H, W);
    int h = conv_out(H), w = conv_out(W);
    m->stem_c = act4(a, sc, N, h, w);
    m->stem_b = act4(a, sc, N, h, w);
    m->stem_a = act4(a, sc, N, h, w);
    m->stem_mean = act1(a, sc);
    m->stem_rstd = act1(a, sc);
    int64_t maxact = (int64_t)sc * N * h * w, maxc = 0, maxr = 0;
    for (int i = 0, k = 0; i < 4; i++) {
        int C = m->widths[i];
        h = conv_out(h);
        w = conv_out(w);
        m->down_c[i] = act4(a, C, N, h, w);
        m->down_b[i] = act4(a, C, N, h, w);
        m->down_mean[i] = act1(a, C);
        m->down_rstd[i] = act1(a, C);
        int64_t cm = (int64_t)C * N * h * w;
        if (cm > maxact) maxact = cm;
        for (int j = 0; j < m->cfg.depths[i]; j++, k++) {
            cg_sn_block_acts *ba = &m->bacts[k];
            int R = m->blocks[k].R;
            ba->C = C; ba->H = h; ba->W = w;
            ba->a = act4(a, C, N, h, w);
            ba->ab = act4(a, C, N, h, w);
            ba->h = act4(a, 2 * R, N, h, w);
            ba->z = act4(a, R, N, h, w);
            ba->gp = act4(a, C, N, h, w);
            ba->gb = act4(a, C, N, h, w);
            ba->out = act4(a, C, N, h, w);
            ba->mean1 = act1(a, C); ba->rstd1 = act1(a, C);
            ba->mean2 = act1(a, C); ba->rstd2 = act1(a, C);
            ba->scale = cg_arena_alloc(a, (size_t)N * sizeof(float));
            if (cm > maxc) maxc = cm;
            if ((int64_t)R * N * h * w > maxr) maxr = (int64_t)R * N * h * w;
        }
    }
    int Cl = m->widths[3];
    m->norm_out = act4(a, Cl, N, h, w);
    m->norm_mean = act1(a, Cl);
    m->norm_rstd = act1(a, Cl);
    m->pooled = cg_tensor_arena(a, CG_DEV_CPU, 2, (int64_t[]){N, Cl});
    m->emb = cg_tensor_arena(a, CG_DEV_CPU, 2, (int64_t[]){N, m->embed_dim});
    m->g0 = act1(a, maxact);
    m->g1 = act1(a, maxact);
    m->gs_c1 = act1(a, maxc ? maxc : 1).data;
    m->gs_c2 = act1(a, maxc ? maxc : 1).data;
    m->gs_c3 = act1(a, maxc ? maxc : 1).data;
    m->gs_r1 = act1(a, maxr ? maxr : 1).data;
    m->gs_r2 = act1(a, maxr ? 2 * maxr : 1).data;
    m->d_pooled = act1(a, (int64_t)N * Cl).data;
}

/* ---------------------------------------------------------------- forward */

static cg_tensor P(const cg_starnet *m, int i) { return cg_params_value(&m->params, i); }
static cg_tensor G(const cg_starnet *m, int i) { return cg_params_grad(&m->params, i); }

static void bn_forward(cg_starnet *m, cg_sn_bn bn, cg_tensor *y, const cg_tensor *x, cg_tensor *mean, cg_tensor *rstd) {
    cg_tensor w = P(m, bn.w), b = P(m, bn.b), rm = P(m, bn.rm), rv = P(m, bn.rv);
    if (m->train) {
        cg_batchnorm_forward_train(y, x, &w, &b, &rm, &rv, mean, rstd, m->bn_momentum, m->bn_eps);
        (*cg_params_counter(&m->params, bn.nbt))++;
    } else {
        cg_batchnorm_forward_eval(y, x, &w, &b, &rm, &rv, m->bn_eps);
    }
}

static void bn_backward(cg_starnet *m, cg_sn_bn bn, cg_tensor *dx, const cg_tensor *dy, const cg_tensor *x,
                        const cg_tensor *mean, const cg_tensor *rstd) {
    cg_tensor w = P(m, bn.w), gw = G(m, bn.w), gb = G(m, bn.b);
    if (m->train) {
        cg_batchnorm_backward_train(dx, &gw, &gb, dy, x, &w, mean, rstd);
    } else {
        cg_tensor rm = P(m, bn.rm), rv = P(m, bn.rv);
        cg_batchnorm_backward_eval(dx, &gw, &gb, dy, x, &w, &rm, &rv, m->bn_eps);
    }
}

/* [f1; f2] as one [2R, C, 1, 1] weight and [2R] bias (adjacent in the parameter array) */
static void f12_views(const cg_starnet *m, const cg_sn_block *b, float *base_w, float *base_b, cg_tensor *w, cg_tensor *bias) {
    *w = cg_tensor_4d(base_w + m->params.e[b->f1.w].offset, CG_DEV_CPU, 2 * b->R, b->C, 1, 1);
    *bias = cg_tensor_1d(base_b + m->params.e[b->f1.b].offset, CG_DEV_CPU, 2 * b->R);
}

static cg_tensor rows_view(const cg_tensor *t, int64_t r0, int64_t nr) {
    return cg_tensor_4d(t->data + r0 * t->shape[1] * t->shape[2] * t->shape[3], CG_DEV_CPU, nr, t->shape[1], t->shape[2],
                        t->shape[3]);
}

static void block_forward(cg_starnet *m, int k, const cg_tensor *x) {
    cg_sn_block *b = &m->blocks[k];
    cg_sn_block_acts *ba = &m->bacts[k];
    cg_tensor w = P(m, b->dw.w), bias = P(m, b->dw.b);
    cg_dwconv2d_forward(&ba->a, x, &w, &bias);
    bn_forward(m, b->dw_bn, &ba->ab, &ba->a, &ba->mean1, &ba->rstd1);
    f12_views(m, b, m->params.params, m->params.params, &w, &bias);
    cg_conv2d_forward(&ba->h, &ba->ab, &w, &bias, 1, 0);
    cg_tensor h1 = rows_view(&ba->h, 0, b->R), h2 = rows_view(&ba->h, b->R, b->R);
    cg_star_relu6_forward(&ba->z, &h1, &h2);
    w = P(m, b->g.w); bias = P(m, b->g.b);
    cg_conv2d_forward(&ba->gp, &ba->z, &w, &bias, 1, 0);
    bn_forward(m, b->g_bn, &ba->gb, &ba->gp, &ba->mean2, &ba->rstd2);
    w = P(m, b->dw2.w); bias = P(m, b->dw2.b);
    cg_dwconv2d_forward(&ba->out, &ba->gb, &w, &bias);
    int drop = m->train && b->drop_prob > 0.0f;
    if (drop) cg_droppath_scales(&m->rng, ba->scale, m->N, b->drop_prob, 1);
    cg_residual_forward(&ba->out, x, &ba->out, drop ? ba->scale : NULL);
}

void cg_starnet_forward(cg_starnet *m, const float *images, int N, int H, int W, int train) {
    alloc_acts(m, N, H, W);
    m->train = train;
    cg_nchw_to_cnhw(images, m->x.data, N, 3, (int64_t)H * W);
    cg_tensor w = P(m, m->stem_conv.w), b = P(m, m->stem_conv.b);
    cg_conv2d_forward(&m->stem_c, &m->x, &w, &b, 2, 1);
    bn_forward(m, m->stem_bn, &m->stem_b, &m->stem_c, &m->stem_mean, &m->stem_rstd);
    cg_relu6_forward(&m->stem_a, &m->stem_b);
    const cg_tensor *cur = &m->stem_a;
    for (int i = 0, k = 0; i < 4; i++) {
        w = P(m, m->down_conv[i].w);
        b = P(m, m->down_conv[i].b);
        cg_conv2d_forward(&m->down_c[i], cur, &w, &b, 2, 1);
        bn_forward(m, m->down_bn[i], &m->down_b[i], &m->down_c[i], &m->down_mean[i], &m->down_rstd[i]);
        cur = &m->down_b[i];
        for (int j = 0; j < m->cfg.depths[i]; j++, k++) {
            block_forward(m, k, cur);
            cur = &m->bacts[k].out;
        }
    }
    bn_forward(m, m->norm, &m->norm_out, cur, &m->norm_mean, &m->norm_rstd);
    cg_avgpool_global_forward(&m->pooled, &m->norm_out);
    w = P(m, m->head_w);
    b = P(m, m->head_b);
    cg_linear_forward(&m->emb, &m->pooled, &w, &b);
}

/* ---------------------------------------------------------------- backward */

static cg_tensor like(float *data, const cg_tensor *t) { return cg_tensor_view(data, CG_DEV_CPU, t->ndim, t->shape); }
static void zero(cg_tensor *t) { memset(t->data, 0, cg_tensor_bytes(t)); }

/* dy: gradient w.r.t. the block output; dx (written): gradient w.r.t. its input x. */
static void block_backward(cg_starnet *m, int k, cg_tensor *dx, const cg_tensor *dy, const cg_tensor *x) {
    cg_sn_block *b = &m->blocks[k];
    cg_sn_block_acts *ba = &m->bacts[k];
    int drop = m->train && b->drop_prob > 0.0f;
    memcpy(dx->data, dy->data, cg_tensor_bytes(dy));  /* residual path */
    cg_tensor d2 = *dy;
    if (drop) {
        d2 = like(m->gs_c1, dy);
        zero(&d2);
        cg_residual_backward(NULL, &d2, dy, ba->scale);
    }
    cg_tensor w = P(m, b->dw2.w), gw = G(m, b->dw2.w), gb = G(m, b->dw2.b);
    cg_tensor d_gb = like(m->gs_c2, &ba->gb);
    zero(&d_gb);
    cg_dwconv2d_backward(&d_gb, &gw, &gb, &d2, &ba->gb, &w);
    cg_tensor d_gp = like(m->gs_c3, &ba->gp);
    zero(&d_gp);
    bn_backward(m, b->g_bn, &d_gp, &d_gb, &ba->gp, &ba->mean2, &ba->rstd2);
    cg_tensor d_z = like(m->gs_r1, &ba->z);
    zero(&d_z);
    w = P(m, b->g.w); gw = G(m, b->g.w); gb = G(m, b->g.b);
    cg_conv2d_backward(&d_z, &gw, &gb, &d_gp, &ba->z, &w, 1, 0);
    cg_tensor d_h = like(m->gs_r2, &ba->h);
    zero(&d_h);
    cg_tensor h1 = rows_view(&ba->h, 0, b->R), h2 = rows_view(&ba->h, b->R, b->R);
    cg_tensor dh1 = rows_view(&d_h, 0, b->R), dh2 = rows_view(&d_h, b->R, b->R);
    cg_star_relu6_backward(&dh1, &dh2, &d_z, &h1, &h2);
    cg_tensor d_ab = like(m->gs_c1, &ba->ab);
    zero(&d_ab);
    f12_views(m, b, m->params.params, m->params.params, &w, &gb);
    cg_tensor gw12, gb12;
    f12_views(m, b, m->params.grads, m->params.grads, &gw12, &gb12);
    cg_conv2d_backward(&d_ab, &gw12, &gb12, &d_h, &ba->ab, &w, 1, 0);
    cg_tensor d_a = like(m->gs_c2, &ba->a);
    zero(&d_a);
    bn_backward(m, b->dw_bn, &d_a, &d_ab, &ba->a, &ba->mean1, &ba->rstd1);
    w = P(m, b->dw.w); gw = G(m, b->dw.w); gb = G(m, b->dw.b);
    cg_dwconv2d_backward(dx, &gw, &gb, &d_a, x, &w);
}

void cg_starnet_backward(cg_starnet *m, const float *d_emb) {
    if (!m->bacts) cg_tensor_fail("cg_starnet_backward", "no forward pass to differentiate");
    int N = m->N, Cl = m->widths[3];
    cg_tensor demb = cg_tensor_2d((float *)d_emb, CG_DEV_CPU, N, m->embed_dim);
    cg_tensor dpool = cg_tensor_2d(m->d_pooled, CG_DEV_CPU, N, Cl);
    zero(&dpool);
    cg_tensor w = P(m, m->head_w), gw = G(m, m->head_w), gb = G(m, m->head_b);
    cg_linear_backward(&dpool, &gw, &gb, &demb, &m->pooled, &w);
    float *buf[2] = {m->g0.data, m->g1.data};
    int cb = 0;
    cg_tensor gcur = like(buf[cb], &m->norm_out);
    zero(&gcur);
    cg_avgpool_global_backward(&gcur, &dpool);
    const cg_tensor *last = &m->bacts[m->n_blocks - 1].out;
    cg_tensor gnext = like(buf[cb ^ 1], last);
    zero(&gnext);
    bn_backward(m, m->norm, &gnext, &gcur, last, &m->norm_mean, &m->norm_rstd);
    gcur = gnext;
    cb ^= 1;
    int k = m->n_blocks - 1;
    for (int i = 3; i >= 0; i--) {
        for (int j = m->cfg.depths[i] - 1; j >= 0; j--, k--) {
            const cg_tensor *xin = j > 0 ? &m->bacts[k - 1].out : &m->down_b[i];
            cg_tensor gin = like(buf[cb ^ 1], xin);
            block_backward(m, k, &gin, &gcur, xin);
            gcur = gin;
            cb ^= 1;
        }
        /* downsampler: BN then conv; gcur is d(down_b[i]) */
        cg_tensor dc = like(buf[cb ^ 1], &m->down_c[i]);
        zero(&dc);
        bn_backward(m, m->down_bn[i], &dc, &gcur, &m->down_c[i], &m->down_mean[i], &m->down_rstd[i]);
        const cg_tensor *prev = i == 0 ? &m->stem_a : (k >= 0 ? &m->bacts[k].out : &m->down_b[i - 1]);
        if (i > 0 && m->cfg.depths[i - 1] == 0) prev = &m->down_b[i - 1];
        cg_tensor gprev = like(buf[cb], prev);
        zero(&gprev);
        w = P(m, m->down_conv[i].w); gw = G(m, m->down_conv[i].w); gb = G(m, m->down_conv[i].b);
        cg_conv2d_backward(&gprev, &gw, &gb, &dc, prev, &w, 2, 1);
        gcur = gprev;
    }
    /* stem: ReLU6, BN, conv (no input gradient) */
    cg_tensor db = like(buf[cb ^ 1], &m->stem_b);
    zero(&db);
    cg_relu6_backward(&db, &gcur, &m->stem_b);
    cg_tensor dc = like(buf[cb], &m->stem_c);
    zero(&dc);
    bn_backward(m, m->stem_bn, &dc, &db, &m->stem_c, &m->stem_mean, &m->stem_rstd);
    w = P(m, m->stem_conv.w); gw = G(m, m->stem_conv.w); gb = G(m, m->stem_conv.b);
    cg_conv2d_backward(NULL, &gw, &gb, &dc, &m->x, &w, 2, 1);
}
