/* clip_cuda.h — one training step of the CLIP model (models/clip_model.h) on a CUDA device: both
 * device towers (starnet_cuda.h, text_cuda.h), the logit scale, open_clip's ClipLoss, global-norm
 * gradient clipping and AdamW (nn/cuda/cuda_adamw.h), all on the device. NOT YET RUN ON A GPU:
 * written and compiled on a machine without one; its test (tests/test_cuda_clip.c) has only been
 * seen to skip. See docs/cuda.md, "Device CLIP step".
 *
 * The CPU clip_model and its three adamw_states stay the source of truth: they build and
 * initialise (or load from a checkpoint) the parameters and the optimizer state; the device model
 * mirrors them for one (image tower, text tower, B, image size S, context T, precision) and
 * cg_cuda_clip_download() writes everything back (parameters, BN running stats and counters, the
 * logit scale, AdamW moments and step counts) so the existing checkpoint code saves it unchanged.
 *
 * One step (cg_cuda_clip_step) is the trainer's step (train/backend_cpu.c):
 *   clip_model_step      text forward, image forward (train mode), ClipLoss forward, zeroed
 *                        gradients, ClipLoss backward (incl. d logit_scale), both tower backwards
 *   clip_grad_norm       over the image set, the text set (left out when the text tower is
 *                        frozen) and the scale, frozen entries excluded, max_norm = grad_clip
 *   adamw_step           per set with the same config and lr (a frozen text tower gets none);
 *                        in bf16 the step also writes each tower's bf16 weight copy
 *   clamp                logit_scale to [0, ln 100]
 * then one synchronisation to read the loss, the image->text accuracy and the gradient norm.
 * With accum > 1 the first line is clip_model_step_accum's two passes instead: the towers are
 * sized for micro-batches of B / accum; pass 1 runs every micro-batch forward in train mode and
 * keeps its features (the BN running stats, counters and DropPath generator are put back after
 * it), the loss and its gradient are taken over all B pairs, pass 2 runs each micro-batch again
 * and backpropagates its slice of the gradient.
 *
 *   clip_model cpu; clip_model_create(&cpu, &opts);
 *   adamw_state oi, ot, os; adamw_init(&oi, &cpu.image.params); ... (as the trainer)
 *   cg_cuda_ctx_create(&ctx, 0, cg_cuda_clip_scratch_bytes(&cpu, p, B, S, T, 1));
 *   cg_cuda_clip m;
 *   cg_cuda_clip_create(&m, ctx, &cpu, &oi, &ot, &os, &acfg, 1.0f, p, B, S, T, 1);
 *   for (...) cg_cuda_clip_step(&m, images, ids, lr, &loss, &acc);      // host [B,3,S,S], [B,T]
 *   cg_cuda_clip_download(&m, &cpu, &oi, &ot, &os);                     // then ckpt_save as usual
 */
#ifndef CLIPGRID_MODELS_CUDA_CLIP_CUDA_H
#define CLIPGRID_MODELS_CUDA_CLIP_CUDA_H

#include <stdint.h>

#include "models/cuda/starnet_cuda.h"
#include "models/cuda/text_cuda.h"
#include "nn/cuda/cg_cuda.h"
#include "nn/cuda/cuda_adamw.h"
#include "nn/cuda/cuda_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "models/clip_model.h"
#include "train/adamw.h"

typedef struct {
    cg_cuda_ctx *ctx;
    cg_precision p;
    int B, S, T, E, freeze_text;
    int accum, mb;                       /* micro-batches per step, their size B / accum */
    cg_cuda_starnet image;
    cg_cuda_text text;
    /* loss, scale and optimizer state: one more arena */
    cg_cuda_arena arena;
    cg_cuda_clip_loss loss;
    float *scale, *scale_grad;           /* device [1]: logit_scale (fp32 master) and its gradient */
    cg_cuda_adamw opt_img, opt_txt, opt_scale;   /* opt_txt unused when freeze_text */
    float *norm;                         /* device [2]: gradient norm, clip factor */
    void *feat_img, *feat_txt;           /* accum > 1: the whole batch's features [B, E] X */
    void *d_img, *d_txt;                 /* accum > 1: their gradients [B, E] X */
    float *saved_buffers;                /* accum > 1: the image tower's BN buffers before pass 1 */
    int64_t *saved_counters;             /* (host) and its counters */
    adamw_config acfg;
    float grad_clip;
    /* results of the last step (host) */
    float last_loss, last_acc_i2t, last_acc_t2i, last_grad_norm, last_scale;   /* scale: after the update */
} cg_cuda_clip;

/* Context scratch this model needs (the larger of the towers' and the clipping's). */
size_t cg_cuda_clip_scratch_bytes(const clip_model *cpu, cg_precision p, int B, int S, int T, int accum);
/* Device bytes of all three arenas (towers, loss + scale + AdamW state). */
size_t cg_cuda_clip_arena_bytes(const clip_model *cpu, cg_precision p, int B, int S, int T, int accum);

/* Builds both device towers from cpu (cpu->text.frozen decides freeze_text), uploads the logit
 * scale, and copies the AdamW states (flags, moments, step): opt_img, opt_scale always, opt_txt
 * unless the text tower is frozen (then it may be NULL). acfg and grad_clip are the trainer's
 * (--beta1/2, --eps, --wd, --grad-clip); accum its --accum-steps (B % accum == 0, B / accum >= 1;
 * <= 1: none). */
int cg_cuda_clip_create(cg_cuda_clip *m, cg_cuda_ctx *ctx, const clip_model *cpu, const adamw_state *opt_img,
                        const adamw_state *opt_txt, const adamw_state *opt_scale, const adamw_config *acfg,
                        float grad_clip, cg_precision p, int B, int S, int T, int accum);
void cg_cuda_clip_free(cg_cuda_clip *m);

/* One training step: images host [B, 3, S, S] float (NCHW) — or NULL to use the images already
 * on the device (accum 1 only) — ids host int32 [B, T]. *loss and *acc_i2t as clip_model_step's
 * (either may be NULL); m->last_grad_norm is clip_grad_norm's return value. Ends with one
 * synchronisation (the loss read). CG_ERR_FORMAT for a bad token id (before any device work). */
int cg_cuda_clip_step(cg_cuda_clip *m, const float *images, const int32_t *ids, float lr, float *loss, float *acc_i2t);

/* Device -> CPU: parameters, BN buffers and counters of both towers, the DropPath generator,
 * logit_scale (and with grads != 0 every gradient), and the AdamW moments and steps into
 * opt_img, opt_txt (skipped when NULL or the text tower is frozen), opt_scale (either may be
 * NULL). */
int cg_cuda_clip_download(cg_cuda_clip *m, clip_model *cpu, adamw_state *opt_img, adamw_state *opt_txt,
                          adamw_state *opt_scale, int grads);

#ifdef __cplusplus
}
#endif

#endif
