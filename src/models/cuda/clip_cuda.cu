/* clip_cuda.cu — one CLIP training step on the device (models/cuda/clip_cuda.h).
 *
 * Host code plus one tiny kernel (the logit-scale clamp). The towers, the loss and the optimizer
 * are the existing device pieces; this file sequences them exactly as train/trainer.c sequences
 * clip_model_step, clip_grad_norm, adamw_step and clip_model_clamp_scale. Not yet run on a GPU.
 */
#include "models/cuda/clip_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/cuda/cuda_common.cuh"

extern "C" {
#include "core/log.h"
}

/* logit_scale <- clamp(logit_scale, 0, ln 100): clip_model_clamp_scale (NaN stays NaN, as there) */
__global__ void clamp_scale_kernel(float *s, float hi) {
    if (threadIdx.x == 0 && blockIdx.x == 0) {
        float v = *s;
        if (v < 0.0f) v = 0.0f;
        if (v > hi) v = hi;
        *s = v;
    }
}

/* The small arena: scale, its gradient, the clip norm, the loss buffers, the three AdamW states.
 * Run once on a planning arena (device pointers NULL, nothing uploaded) and once on the real one. */
static int layout(cg_cuda_clip *m, cg_cuda_arena *a, const clip_model *cpu, const adamw_state *oi,
                  const adamw_state *ot, const adamw_state *os) {
    m->scale = (float *)cg_cuda_arena_alloc(a, sizeof(float));
    m->scale_grad = (float *)cg_cuda_arena_alloc(a, sizeof(float));
    m->norm = (float *)cg_cuda_arena_alloc(a, 2 * sizeof(float));
    if (!a->planning && (!m->scale || !m->scale_grad || !m->norm)) return CG_ERR_NOMEM;
    if (m->accum > 1) {
        size_t feat = (size_t)m->B * m->E * cg_prec_size(m->p);
        m->feat_img = cg_cuda_arena_alloc(a, feat);
        m->feat_txt = cg_cuda_arena_alloc(a, feat);
        m->d_img = cg_cuda_arena_alloc(a, feat);
        m->d_txt = cg_cuda_arena_alloc(a, feat);
        m->saved_buffers = (float *)cg_cuda_arena_alloc(a, (size_t)(cpu->image.params.n_buffers + 1) * sizeof(float));
        if (!a->planning && (!m->feat_img || !m->feat_txt || !m->d_img || !m->d_txt || !m->saved_buffers))
            return CG_ERR_NOMEM;
    }
    CG_TRY(cg_cuda_clip_loss_init(&m->loss, a, m->B, m->E));
    CG_TRY(cg_cuda_adamw_init(m->ctx, &m->opt_img, a, &cpu->image.params, oi));
    if (!m->freeze_text) CG_TRY(cg_cuda_adamw_init(m->ctx, &m->opt_txt, a, &cpu->text.params, ot));
    CG_TRY(cg_cuda_adamw_init(m->ctx, &m->opt_scale, a, &cpu->scale, os));
    return CG_OK;
}

static size_t small_arena_bytes(const clip_model *cpu, cg_precision p, int B, int accum) {
    size_t bytes = cg_cuda_arena_piece_bytes(sizeof(float)) * 2 + cg_cuda_arena_piece_bytes(2 * sizeof(float)) +
                   cg_cuda_clip_loss_bytes(B, cpu->embed_dim) + cg_cuda_adamw_bytes(&cpu->image.params) +
                   cg_cuda_adamw_bytes(&cpu->scale);
    if (!cpu->text.frozen) bytes += cg_cuda_adamw_bytes(&cpu->text.params);
    if (accum > 1)
        bytes += 4 * cg_cuda_arena_piece_bytes((size_t)B * cpu->embed_dim * cg_prec_size(p)) +
                 cg_cuda_arena_piece_bytes((size_t)(cpu->image.params.n_buffers + 1) * sizeof(float));
    return bytes;
}

/* the towers' batch: a micro-batch */
static int micro_batch(int B, int accum) { return accum > 1 ? B / accum : B; }

extern "C" size_t cg_cuda_clip_scratch_bytes(const clip_model *cpu, cg_precision p, int B, int S, int T, int accum) {
    int mb = micro_batch(B, accum);
    size_t a = cg_cuda_starnet_scratch_bytes(&cpu->image, p, mb, S, S);
    size_t b = cg_cuda_text_scratch_bytes(&cpu->text, p, mb, T);
    size_t c = (size_t)3 * 256 * sizeof(double);   /* cg_cuda_clip_grad_norm's partial sums */
    size_t s = a > b ? a : b;
    return s > c ? s : c;
}

extern "C" size_t cg_cuda_clip_arena_bytes(const clip_model *cpu, cg_precision p, int B, int S, int T, int accum) {
    int mb = micro_batch(B, accum);
    return cg_cuda_starnet_arena_bytes(&cpu->image, p, mb, S, S) + cg_cuda_text_arena_bytes(&cpu->text, p, mb, T) +
           small_arena_bytes(cpu, p, B, accum);
}

extern "C" int cg_cuda_clip_create(cg_cuda_clip *m, cg_cuda_ctx *ctx, const clip_model *cpu, const adamw_state *opt_img,
                                   const adamw_state *opt_txt, const adamw_state *opt_scale, const adamw_config *acfg,
                                   float grad_clip, cg_precision p, int B, int S, int T, int accum) {
    memset(m, 0, sizeof *m);
    CG_CUDA_ARG(B >= 1 && S >= 1 && T >= 1, "B=%d S=%d T=%d", B, S, T);
    if (accum < 1) accum = 1;
    CG_CUDA_ARG(B % accum == 0, "cg_cuda_clip_create: batch %d does not split into %d equal micro-batches", B, accum);
    CG_CUDA_ARG(opt_img && opt_scale && (cpu->text.frozen || opt_txt),
                "cg_cuda_clip_create: AdamW states missing (image %p, text %p, scale %p)", (const void *)opt_img,
                (const void *)opt_txt, (const void *)opt_scale);
    CG_CUDA_ARG(cpu->scale.n_params == 1, "cg_cuda_clip_create: the scale set has %lld values, expected 1",
                (long long)cpu->scale.n_params);
    m->ctx = ctx;
    m->p = p;
    m->B = B;
    m->S = S;
    m->T = T;
    m->E = cpu->embed_dim;
    m->freeze_text = cpu->text.frozen;
    m->acfg = *acfg;
    m->grad_clip = grad_clip;
    m->accum = accum;
    m->mb = micro_batch(B, accum);
    int rc = cg_cuda_starnet_create(&m->image, ctx, &cpu->image, p, m->mb, S, S);
    if (!rc) rc = cg_cuda_text_create(&m->text, ctx, &cpu->text, p, m->mb, T);
    if (!rc && (m->image.embed_dim != m->E || m->text.embed_dim != m->E))
        rc = cg_error_set(CG_ERR_STATE, "cg_cuda_clip_create: embedding widths differ (image %d, text %d, model %d)",
                          m->image.embed_dim, m->text.embed_dim, m->E);
    if (!rc) {
        cg_cuda_arena plan;
        cg_cuda_arena_plan(&plan);
        rc = layout(m, &plan, cpu, opt_img, opt_txt, opt_scale);
        if (!rc) rc = cg_cuda_arena_init(&m->arena, plan.used);
        if (!rc) rc = layout(m, &m->arena, cpu, opt_img, opt_txt, opt_scale);
    }
    if (!rc) rc = cg_cuda_h2d(ctx, m->scale, cpu->scale.params, sizeof(float));
    if (!rc) rc = cg_cuda_memset0(ctx, m->scale_grad, sizeof(float));
    if (!rc) rc = cg_cuda_memset0(ctx, m->norm, 2 * sizeof(float));
    if (!rc) rc = cg_cuda_sync(ctx);
    if (!rc && accum > 1)
        m->saved_counters = (int64_t *)cg_xmalloc((size_t)(m->image.w.n_counters + 1) * sizeof(int64_t));
    if (rc) cg_cuda_clip_free(m);
    return rc;
}

extern "C" void cg_cuda_clip_free(cg_cuda_clip *m) {
    if (m->ctx) cg_cuda_sync(m->ctx);
    cg_cuda_starnet_free(&m->image);
    cg_cuda_text_free(&m->text);
    cg_cuda_arena_free(&m->arena);
    free(m->saved_counters);
    memset(m, 0, sizeof *m);
}

/* clip_model_step_accum's two passes (accum > 1): features of every micro-batch with the BN
 * running stats, counters and DropPath generator put back after them; the loss over all B
 * pairs; each micro-batch again with its slice of the gradient. */
static int accum_forward_backward(cg_cuda_clip *m, const float *images, const int32_t *ids) {
    cg_cuda_ctx *ctx = m->ctx;
    int mb = m->mb, T = m->T;
    size_t xs = cg_prec_size(m->p), row = (size_t)mb * m->E * xs, plane = (size_t)3 * m->S * m->S;
    cg_cuda_params *iw = &m->image.w;
    CG_TRY(cg_cuda_d2d(ctx, m->saved_buffers, iw->buffers, (size_t)iw->n_buffers * sizeof(float)));
    memcpy(m->saved_counters, iw->counters, (size_t)iw->n_counters * sizeof(int64_t));
    cg_rng saved_rng = cg_cuda_starnet_rng(&m->image);
    for (int k = 0; k < m->accum; k++) {
        CG_TRY(cg_cuda_text_forward(&m->text, ids + (size_t)k * mb * T));
        CG_TRY(cg_cuda_d2d(ctx, (char *)m->feat_txt + k * row, m->text.emb, row));
        CG_TRY(cg_cuda_starnet_forward(&m->image, images + (size_t)k * mb * plane, 1));
        CG_TRY(cg_cuda_d2d(ctx, (char *)m->feat_img + k * row, m->image.emb, row));
    }
    CG_TRY(cg_cuda_d2d(ctx, iw->buffers, m->saved_buffers, (size_t)iw->n_buffers * sizeof(float)));
    memcpy(iw->counters, m->saved_counters, (size_t)iw->n_counters * sizeof(int64_t));
    cg_cuda_starnet_set_rng(&m->image, saved_rng);
    CG_TRY(cg_cuda_clip_loss_forward(ctx, m->p, &m->loss, m->feat_img, m->feat_txt, m->scale));
    CG_TRY(cg_cuda_starnet_zero_grad(&m->image));
    CG_TRY(cg_cuda_text_zero_grad(&m->text));
    CG_TRY(cg_cuda_clip_loss_backward(ctx, m->p, &m->loss, m->d_img, m->d_txt, m->scale_grad));
    for (int k = 0; k < m->accum; k++) {
        CG_TRY(cg_cuda_text_forward(&m->text, ids + (size_t)k * mb * T));
        CG_TRY(cg_cuda_text_backward(&m->text, (char *)m->d_txt + k * row));
        CG_TRY(cg_cuda_starnet_forward(&m->image, images + (size_t)k * mb * plane, 1));
        CG_TRY(cg_cuda_starnet_backward(&m->image, (char *)m->d_img + k * row));
    }
    return CG_OK;
}

extern "C" int cg_cuda_clip_step(cg_cuda_clip *m, const float *images, const int32_t *ids, float lr, float *loss,
                                 float *acc_i2t) {
    cg_cuda_ctx *ctx = m->ctx;
    if (m->accum > 1) {
        CG_CUDA_ARG(images != NULL, "cg_cuda_clip_step: images NULL with %d micro-batches", m->accum);
        CG_TRY(accum_forward_backward(m, images, ids));
    } else {
        /* clip_model_step: text first (its ids are checked on the host before any device work) */
        CG_TRY(cg_cuda_text_forward(&m->text, ids));
        CG_TRY(cg_cuda_starnet_forward(&m->image, images, 1));
        CG_TRY(cg_cuda_clip_loss_forward(ctx, m->p, &m->loss, m->image.emb, m->text.emb, m->scale));
        CG_TRY(cg_cuda_starnet_zero_grad(&m->image));
        CG_TRY(cg_cuda_text_zero_grad(&m->text));
        /* overwrites d_emb of both towers and the scale gradient */
        CG_TRY(cg_cuda_clip_loss_backward(ctx, m->p, &m->loss, m->image.d_emb, m->text.d_emb, m->scale_grad));
        CG_TRY(cg_cuda_starnet_backward(&m->image, m->image.d_emb));
        CG_TRY(cg_cuda_text_backward(&m->text, m->text.d_emb));   /* no-op when frozen */
    }

    /* clip_grad_norm over the trainer's sets: image, text (unless frozen), scale */
    cg_cuda_adamw *sets[3];
    float *grads[3];
    int n = 0;
    sets[n] = &m->opt_img;
    grads[n++] = m->image.w.grads;
    if (!m->freeze_text) {
        sets[n] = &m->opt_txt;
        grads[n++] = m->text.w.grads;
    }
    sets[n] = &m->opt_scale;
    grads[n++] = m->scale_grad;
    CG_TRY(cg_cuda_clip_grad_norm(ctx, sets, grads, n, m->grad_clip, m->norm));

    /* adamw_step per set; in bf16 the towers' weight copies are written in the same pass */
    int bf = m->p == CG_PREC_BF16;
    CG_TRY(cg_cuda_adamw_step(ctx, &m->opt_img, m->image.w.params, m->image.w.grads, bf ? m->image.w.wx : NULL, &m->acfg, lr));
    if (!m->freeze_text)
        CG_TRY(cg_cuda_adamw_step(ctx, &m->opt_txt, m->text.w.params, m->text.w.grads, bf ? m->text.w.wx : NULL, &m->acfg,
                                  lr));
    CG_TRY(cg_cuda_adamw_step(ctx, &m->opt_scale, m->scale, m->scale_grad, NULL, &m->acfg, lr));
    clamp_scale_kernel<<<1, 32, 0, ctx->stream>>>(m->scale, CLIP_LOGIT_SCALE_MAX);
    CG_CUDA_CHECK_LAUNCH(ctx, "clamp_scale_kernel");

    /* one synchronisation: the loss and accuracies (written by the forward), the norm */
    CG_TRY(cg_cuda_clip_loss_read(ctx, &m->loss, &m->last_loss, &m->last_acc_i2t, &m->last_acc_t2i));
    float nrm[2];
    CG_TRY(cg_cuda_d2h(ctx, nrm, m->norm, sizeof nrm));
    m->last_grad_norm = nrm[0];
    CG_TRY(cg_cuda_d2h(ctx, &m->last_scale, m->scale, sizeof(float)));
    if (loss) *loss = m->last_loss;
    if (acc_i2t) *acc_i2t = m->last_acc_i2t;
    return CG_OK;
}

extern "C" int cg_cuda_clip_download(cg_cuda_clip *m, clip_model *cpu, adamw_state *opt_img, adamw_state *opt_txt,
                                     adamw_state *opt_scale, int grads) {
    cg_cuda_ctx *ctx = m->ctx;
    CG_TRY(cg_cuda_starnet_download(&m->image, &cpu->image.params, grads));
    cpu->image.rng = cg_cuda_starnet_rng(&m->image);
    CG_TRY(cg_cuda_text_download(&m->text, &cpu->text.params, grads));
    CG_TRY(cg_cuda_d2h(ctx, cpu->scale.params, m->scale, sizeof(float)));
    if (grads) CG_TRY(cg_cuda_d2h(ctx, cpu->scale.grads, m->scale_grad, sizeof(float)));
    if (opt_img) CG_TRY(cg_cuda_adamw_download(ctx, &m->opt_img, opt_img));
    if (opt_txt && !m->freeze_text) CG_TRY(cg_cuda_adamw_download(ctx, &m->opt_txt, opt_txt));
    if (opt_scale) CG_TRY(cg_cuda_adamw_download(ctx, &m->opt_scale, opt_scale));
    return CG_OK;
}
