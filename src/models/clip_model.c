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
    memset(m, 0, sizeof *m);
}

static void size_loss(clip_model *m, int B) {
    if (m->loss_batch == B) return;
    clip_loss_free(&m->loss);
    clip_loss_init(&m->loss, B, m->embed_dim);
    free(m->d_img);
    free(m->d_txt);
    m->d_img = cg_xmalloc((size_t)B * m->embed_dim * sizeof(float));
    m->d_txt = cg_xmalloc((size_t)B * m->embed_dim * sizeof(float));
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

void clip_model_clamp_scale(clip_model *m) {
    float *s = &m->scale.params[0];
    if (*s < 0) *s = 0;
    if (*s > CLIP_LOGIT_SCALE_MAX) *s = CLIP_LOGIT_SCALE_MAX;
}

static void normalize_rows(const float *x, float *y, int B, int E) {
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int k = 0; k < E; k++) s += (double)x[(size_t)b * E + k] * x[(size_t)b * E + k];
        float r = (float)sqrt(s);
        if (r < 1e-12f) r = 1e-12f;
        for (int k = 0; k < E; k++) y[(size_t)b * E + k] = x[(size_t)b * E + k] / r;
    }
}

void clip_model_encode_images(clip_model *m, const float *images, int B, int S, float *out) {
    cg_starnet_forward(&m->image, images, B, S, S, 0);
    normalize_rows(m->image.emb.data, out, B, m->embed_dim);
}

int clip_model_encode_texts(clip_model *m, const int32_t *ids, int B, int T, float *out) {
    int rc = cg_text_forward(&m->text, ids, B, T);
    if (rc) return rc;
    normalize_rows(m->text.emb.data, out, B, m->embed_dim);
    return CG_OK;
}
