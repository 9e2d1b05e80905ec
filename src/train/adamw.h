/* adamw.h — AdamW over a model's flat parameters, as torch.optim.AdamW computes it, with
 * open_clip's weight-decay rule, global-norm gradient clipping and frozen parameter groups.
 *
 * One step, per element (t = step count after this step, fp32 like PyTorch on CPU):
 *   p <- p * (1 - lr*wd)                          decoupled decay (wd = 0 for exempt tensors)
 *   m <- m + (1-beta1) * (g - m)                  first moment (torch: lerp)
 *   v <- beta2*v + (1-beta2) * g^2                second moment
 *   p <- p - lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps)
 * Exempt from decay (open_clip): tensors with fewer than 2 dimensions, and names containing
 * "bn", "ln", "norm", "bias", "logit_scale", "position" or "token_type" (positional and
 * token-type tables, LayerNorm/BatchNorm in timm and Hugging Face naming).
 * Frozen tensors (adamw_freeze_prefix) are neither decayed nor updated, and keep no moments.
 *
 *   adamw_state opt;
 *   adamw_init(&opt, &model_params);
 *   adamw_freeze_prefix(&opt, &model_params, "text.");     // --freeze-text
 *   float norm = clip_grad_norm((cg_params *[]){&model_params}, NULL, 1, 1.0f);   // optional
 *   adamw_step(&opt, &model_params, &cfg, lr_at_this_step);
 */
#ifndef CLIPGRID_TRAIN_ADAMW_H
#define CLIPGRID_TRAIN_ADAMW_H

#include <stdint.h>

#include "nn/params.h"

typedef struct {
    float beta1, beta2, eps, wd;
} adamw_config;

/* open_clip's defaults for non-ViT models: betas (0.9, 0.999), eps 1e-8, wd 0.2. */
#define ADAMW_DEFAULTS ((adamw_config){0.9f, 0.999f, 1e-8f, 0.2f})

typedef struct {
    float *m, *v;          /* moments, same layout as params->params */
    int64_t n;             /* number of parameter values */
    int64_t step;          /* steps taken */
    unsigned char *decay;  /* per entry of the cg_params: 1 = weight decay applies */
    unsigned char *frozen; /* per entry: 1 = not trained */
    int n_entries;
} adamw_state;

/* Does a tensor with this name and rank get weight decay (open_clip's rule, above)? */
int adamw_decays(const char *name, int ndim);

void adamw_init(adamw_state *s, const cg_params *p);
void adamw_free(adamw_state *s);
/* Freeze every parameter whose name starts with `prefix`; returns how many entries. */
int adamw_freeze_prefix(adamw_state *s, const cg_params *p, const char *prefix);
/* One optimizer step with learning rate lr, using p->grads. */
void adamw_step(adamw_state *s, cg_params *p, const adamw_config *c, float lr);

/* Scale the gradients of the trainable parameters of n parameter sets so that their global L2
 * norm is at most max_norm (torch.nn.utils.clip_grad_norm_: coefficient max_norm / (norm + 1e-6),
 * applied only when below 1; max_norm <= 0 only measures). Returns the norm before clipping.
 * frozen[i] is the per-entry frozen mask of set i (adamw_state.frozen), or NULL. */
float clip_grad_norm(cg_params *const *p, const unsigned char *const *frozen, int n, float max_norm);

#endif
