/* gelu.h — the transformer MLP activations: GELU (exact, erf) and QuickGELU.
 *
 * GELU (BERT, PyTorch nn.GELU() / F.gelu default):
 *   y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
 *   dx += dy * (Phi(x) + x * phi(x))          phi(x) = exp(-x^2/2) / sqrt(2 pi)
 * QuickGELU (OpenAI CLIP):
 *   y = x * s,  s = sigmoid(1.702 x)
 *   dx += dy * (s + 1.702 x s (1 - s))
 * Tensors of any shape (same numel). Gradients accumulate (+=). y may alias x.
 */
#ifndef CLIPGRID_NN_GELU_H
#define CLIPGRID_NN_GELU_H

#include "core/tensor.h"

typedef enum { CG_ACT_GELU = 1, CG_ACT_QUICK_GELU = 2 } cg_act_kind;

void cg_gelu_forward(cg_tensor *y, const cg_tensor *x);
void cg_gelu_backward(cg_tensor *dx, const cg_tensor *dy, const cg_tensor *x);
void cg_quick_gelu_forward(cg_tensor *y, const cg_tensor *x);
void cg_quick_gelu_backward(cg_tensor *dx, const cg_tensor *dy, const cg_tensor *x);

/* Dispatch on kind. */
void cg_act_forward(cg_act_kind k, cg_tensor *y, const cg_tensor *x);
void cg_act_backward(cg_act_kind k, cg_tensor *dx, const cg_tensor *dy, const cg_tensor *x);

#endif
