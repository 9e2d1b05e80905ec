#include "models/clip_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int clip_model_create(clip_model *m, const clip_model_options *o) {
    memset(m, 0, sizeof *m);
    const cg_starnet_config *icfg = cg_zoo_starnet(o->image_encoder);
    if (!icfg) return cg_zoo_unknown_image(o->image_encoder);
    int rc;
    if (o->text_pretrained) {
        rc = cg_text_create_pretrained(&m->text, o->text_encoder, o->text_pretrained, o->embed_dim, o->seed + 1);
        if (rc) return rc;
    } else {
        const cg_text_config *base = cg_zoo_text(o->text_encoder);
        if (!base) return cg_zoo_unknown_text(o->text_encoder);
        cg_text_config cfg = *base;
        if (o->vocab_size > 0) cfg.vocab_size = o->vocab_size;
        if (o->pad_id >= 0 && cfg.kind == CG_TEXT_BERT) cfg.pad_id = o->pad_id;
        if (o->eos_id >= 0 && cfg.kind == CG_TEXT_CLIP) cfg.eos_id = o->eos_id;
        cg_text_create(&m->text, &cfg, o->embed_dim, o->seed + 1);
    }
    m->text.frozen = o->freeze_text;
    m->embed_dim = m->text.embed_dim;
    cg_starnet_create(&m->image, icfg, m->embed_dim, o->drop_path, o->seed);
    if (o->image_pretrained && (rc = cg_starnet_load(&m->image, o->image_pretrained, 1))) {
        clip_model_free(m);
        return rc;
    }
    cg_params_init(&m->scale);
    cg_params_add(&m->scale, "logit_scale", CG_KIND_PARAM, 0, (int64_t[]){1});
    cg_params_alloc(&m->scale);
    m->scale.params[0] = CLIP_LOGIT_SCALE_INIT;
    return CG_OK;
}

void clip_model_free(clip_model *m) {
    cg_starnet_free(&m->image);
    cg_text_free(&m->text);
    cg_params_free(&m->scale);
    clip_loss_free(&m->loss);
    free(m->d_img);
    free(m->d_txt);
    free(m->feat_img);
    free(m->feat_txt);
    memset(m, 0, sizeof *m);
}

static void size_loss(clip_model *m, int B) {
    if (m->loss_batch == B) return;
    clip_loss_free(&m->loss);
    clip_loss_init(&m->loss, B, m->embed_dim);
    free(m->d_img);
    free(m->d_txt);
    free(m->feat_img);
    free(m->feat_txt);
    m->d_img = cg_xmalloc((size_t)B * m->embed_dim * sizeof(float));
    m->d_txt = cg_xmalloc((size_t)B * m->embed_dim * sizeof(float));
    m->feat_img = cg_xmalloc((size_t)B * m->embed_dim * sizeof(float));
    m->feat_txt = cg_xmalloc((size_t)B * m->embed_dim * sizeof(float));
    m->loss_batch = B;
}

int clip_model_step(clip_model *m, const float *images, int B, int S, const int32_t *ids, int T, float *loss,
                    float *acc_i2t) {
    size_loss(m, B);
    int rc = cg_text_forward(&m->text, ids, B, T);
    if (rc) return rc;
    cg_starnet_forward(&m->image, images, B, S, S, 1);
    *loss = clip_loss_forward(&m->loss, m->image.emb.data, m->text.emb.data, m->scale.params[0], acc_i2t, NULL);
    cg_params_zero_grad(&m->image.params);
    cg_params_zero_grad(&m->text.params);
    cg_params_zero_grad(&m->scale);
    clip_loss_backward(&m->loss, m->d_img, m->d_txt, &m->scale.grads[0]);
    cg_starnet_backward(&m->image, m->d_img);
    cg_text_backward(&m->text, m->d_txt);
    return CG_OK;
}

int clip_model_step_accum(clip_model *m, const float *images, int B, int S, const int32_t *ids, int T, int accum,
                          float *loss, float *acc_i2t) {
    if (accum <= 1) return clip_model_step(m, images, B, S, ids, T, loss, acc_i2t);
    if (B % accum) return cg_error_set(CG_ERR_USAGE, "batch %d does not split into %d equal micro-batches", B, accum);
    int mb = B / accum, E = m->embed_dim, rc = CG_OK;
    size_t plane = (size_t)3 * S * S, row = (size_t)mb * E;
    size_loss(m, B);
    /* pass 1: features only; the running statistics and DropPath generator are put back after it */
    cg_params *ip = &m->image.params;
    float *saved_buffers = cg_xmalloc((size_t)(ip->n_buffers + 1) * sizeof(float));
    int64_t *saved_counters = cg_xmalloc((size_t)(ip->n_counters + 1) * sizeof(int64_t));
    memcpy(saved_buffers, ip->buffers, (size_t)ip->n_buffers * sizeof(float));
    memcpy(saved_counters, ip->counters, (size_t)ip->n_counters * sizeof(int64_t));
    cg_rng saved_rng = m->image.rng;
    for (int k = 0; k < accum; k++) {
        if ((rc = cg_text_forward(&m->text, ids + (size_t)k * mb * T, mb, T))) goto out;
        memcpy(m->feat_txt + k * row, m->text.emb.data, row * sizeof(float));
        cg_starnet_forward(&m->image, images + (size_t)k * mb * plane, mb, S, S, 1);
        memcpy(m->feat_img + k * row, m->image.emb.data, row * sizeof(float));
    }
    memcpy(ip->buffers, saved_buffers, (size_t)ip->n_buffers * sizeof(float));
    memcpy(ip->counters, saved_counters, (size_t)ip->n_counters * sizeof(int64_t));
    m->image.rng = saved_rng;
    *loss = clip_loss_forward(&m->loss, m->feat_img, m->feat_txt, m->scale.params[0], acc_i2t, NULL);
    cg_params_zero_grad(&m->image.params);
    cg_params_zero_grad(&m->text.params);
    cg_params_zero_grad(&m->scale);
    clip_loss_backward(&m->loss, m->d_img, m->d_txt, &m->scale.grads[0]);
    /* pass 2: each micro-batch again, with its activations, and its slice of the gradient */
    for (int k = 0; k < accum; k++) {
        if ((rc = cg_text_forward(&m->text, ids + (size_t)k * mb * T, mb, T))) goto out;
        cg_text_backward(&m->text, m->d_txt + k * row);
        cg_starnet_forward(&m->image, images + (size_t)k * mb * plane, mb, S, S, 1);
        cg_starnet_backward(&m->image, m->d_img + k * row);
    }
out:
    free(saved_buffers);
    free(saved_counters);
    return rc;
}

void clip_model_clamp_scale(clip_model *m) {
    float *s = &m->scale.params[0];
    if (*s < 0) *s = 0;
    if (*s > CLIP_LOGIT_SCALE_MAX) *s = CLIP_LOGIT_SCALE_MAX;
}

void clip_model_encode_images(clip_model *m, const float *images, int B, int S, float *out) {
    cg_starnet_forward(&m->image, images, B, S, S, 0);
    l2_normalize_rows(m->image.emb.data, out, NULL, B, m->embed_dim);
}

int clip_model_encode_texts(clip_model *m, const int32_t *ids, int B, int T, float *out) {
    int rc = cg_text_forward(&m->text, ids, B, T);
    if (rc) return rc;
    l2_normalize_rows(m->text.emb.data, out, NULL, B, m->embed_dim);
    return CG_OK;
}
