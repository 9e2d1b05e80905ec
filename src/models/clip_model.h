/* clip_model.h — a CLIP model: a StarNet image tower, a text tower, a learnable logit scale and
 * the symmetric contrastive loss (open_clip's CLIP + ClipLoss).
 *
 *   image emb = StarNet(images)        [B, E]   (timm StarNet, head = projection to E)
 *   text emb  = TextTower(ids)          [B, E]   (CLIP text transformer or BERT + projection)
 *   loss      = ClipLoss(image emb, text emb, logit_scale)       (nn/clip_loss.h normalises)
 *   logit_scale starts at ln(1/0.07) and is clamped to [0, ln 100] after each optimizer step.
 *
 * Parameters are three sets (nn/params.h), saved under the prefixes "visual." (timm names),
 * "text." (Hugging Face names) and "" (logit_scale).
 *
 *   clip_model m;
 *   clip_model_create(&m, &opts)              -> cg_error_message() names a bad encoder / file
 *   clip_model_step(&m, images, B, S, ids, T, &loss, &acc)   forward + backward, grads set
 *   clip_model_encode_images / _texts          eval-mode embeddings (normalised)
 */
#ifndef CLIPGRID_MODELS_CLIP_MODEL_H
#define CLIPGRID_MODELS_CLIP_MODEL_H

#include <stdint.h>

#include "models/starnet.h"
#include "models/text_transformer.h"
#include "nn/clip_loss.h"
#include "nn/params.h"

typedef struct {
    const char *image_encoder, *text_encoder;
    int embed_dim;                 /* 0: the text tower's default (512) */
    float drop_path;
    uint64_t seed;
    const char *text_pretrained;   /* Hugging Face directory, or NULL (from scratch) */
    const char *image_pretrained;  /* timm StarNet safetensors, or NULL */
    int vocab_size;                /* from scratch: the tokenizer's vocabulary (0: the zoo's) */
    int pad_id, eos_id;            /* from scratch: the tokenizer's ids (-1: the zoo's) */
    int freeze_text;
} clip_model_options;

typedef struct {
    cg_starnet image;
    cg_text_tower text;
    cg_params scale;               /* one parameter: "logit_scale" */
    clip_loss loss;
    int embed_dim;
    int loss_batch;                /* batch size the loss buffers are sized for */
    float *d_img, *d_txt;          /* [loss_batch, E] */
    float *feat_img, *feat_txt;    /* gradient accumulation: the whole batch's features [loss_batch, E] */
} clip_model;

#define CLIP_LOGIT_SCALE_INIT 2.6592600f   /* ln(1/0.07) */
#define CLIP_LOGIT_SCALE_MAX 4.6051702f    /* ln(100) */

int clip_model_create(clip_model *m, const clip_model_options *o);
void clip_model_free(clip_model *m);

static inline float *clip_model_logit_scale(clip_model *m) { return m->scale.params; }

/* Forward and backward of one batch: images [B, 3, S, S] (NCHW), ids [B, T]. Zeroes and then
 * fills the gradients of all three parameter sets. CG_ERR_* for a bad token id. */
int clip_model_step(clip_model *m, const float *images, int B, int S, const int32_t *ids, int T, float *loss,
                    float *acc_i2t);
/* The same with the batch split into `accum` micro-batches of B / accum (B % accum == 0), for a
 * contrastive batch larger than the activations that fit (open_clip's --accum-freq): pass 1
 * computes every micro-batch's features; the loss and its gradient w.r.t. the features are
 * taken over the whole batch; pass 2 recomputes each micro-batch with its activations and
 * backpropagates its slice. BatchNorm statistics are those of each micro-batch, its running
 * averages are updated once per micro-batch, and DropPath draws the same masks in both passes,
 * so the gradients are exactly those of the micro-batched forward. accum <= 1: clip_model_step. */
int clip_model_step_accum(clip_model *m, const float *images, int B, int S, const int32_t *ids, int T, int accum,
                          float *loss, float *acc_i2t);

/* After the optimizer step: keep logit_scale in [0, ln 100]. */
void clip_model_clamp_scale(clip_model *m);

/* Eval-mode embeddings, L2-normalised, into out [B, E]. */
void clip_model_encode_images(clip_model *m, const float *images, int B, int S, float *out);
int clip_model_encode_texts(clip_model *m, const int32_t *ids, int B, int T, float *out);

#endif
