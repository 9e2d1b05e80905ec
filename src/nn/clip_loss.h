/* clip_loss.h — CLIP's symmetric contrastive loss (open_clip ClipLoss), forward and backward.
 *
 * Inputs: image features xi [B, D] and text features xt [B, D] as the towers produce them, and
 * the learnable logit_scale (a log temperature). Pair b of the batch is the positive of row b.
 *   ni = xi / ||xi||,  nt = xt / ||xt||                      (L2 over D, per row)
 *   s = exp(logit_scale)
 *   L = s * ni @ nt^T                                         [B, B] image -> text logits
 *   loss = ( CE(L, labels) + CE(L^T, labels) ) / 2,  labels = 0..B-1, CE = mean over rows
 * Backward:
 *   G = ( softmax_rows(L) - I ) / (2B) + ( softmax_cols(L) - I ) / (2B)      dloss/dL
 *   dni = s * G @ nt ;  dnt = s * G^T @ ni ;  dlogit_scale = sum(G ∘ L)
 *   dx = ( dn - n * <n, dn> ) / ||x||                          (through the normalisation)
 * Buffers are allocated once for a batch size and width (clip_loss_init).
 */
#ifndef CLIPGRID_NN_CLIP_LOSS_H
#define CLIPGRID_NN_CLIP_LOSS_H

typedef struct {
    int B, D;
    float *ni, *nt;          /* normalised features [B, D] */
    float *norm_i, *norm_t;  /* row norms [B] */
    float *logits;           /* [B, B] */
    float *p_rows, *p_cols;  /* softmax over rows (image->text) and over columns (text->image) */
    float scale;
} clip_loss;

/* y = x / max(||x||, 1e-12) per row of D (torch F.normalize); the row norms into norms when not
 * NULL. x and y may be the same buffer. Used by the loss, the model's eval embeddings and eval. */
void l2_normalize_rows(const float *x, float *y, float *norms, int B, int D);

void clip_loss_init(clip_loss *c, int B, int D);
void clip_loss_free(clip_loss *c);
/* Returns the loss; also the image->text and text->image top-1 accuracy of the batch if asked. */
float clip_loss_forward(clip_loss *c, const float *xi, const float *xt, float logit_scale, float *acc_i2t,
                        float *acc_t2i);
/* Gradients (overwritten, not accumulated) of the last forward's loss. */
void clip_loss_backward(const clip_loss *c, float *dxi, float *dxt, float *dlogit_scale);

#endif
