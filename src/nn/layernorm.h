/* layernorm.h — LayerNorm over the last dimension (PyTorch nn.LayerNorm(C, eps)).
 *
 * x, y [N, C] (any leading dims are rows), w, b [C]; mean, rstd [N] are saved for backward.
 * Forward:   mu = mean_c x ;  var = mean_c (x - mu)^2   (biased, as PyTorch)
 *            rstd = 1 / sqrt(var + eps) ;  xh = (x - mu) * rstd ;  y = xh * w + b
 * Backward:  dw += sum_n dy * xh ;  db += sum_n dy
 *            g = dy * w ;  dx += rstd * (g - mean_c(g) - xh * mean_c(g * xh))
 * Gradients accumulate (+=); dx, dw, db may each be NULL. y may alias x in forward.
 * Rows are independent: OpenMP over rows for y and dx, over column blocks for dw and db (no
 * shared accumulators, so results do not depend on the thread count).
 */
#ifndef CLIPGRID_NN_LAYERNORM_H
#define CLIPGRID_NN_LAYERNORM_H

#include "core/tensor.h"

void cg_layernorm_forward(cg_tensor *y, cg_tensor *mean, cg_tensor *rstd, const cg_tensor *x, const cg_tensor *w,
                          const cg_tensor *b, float eps);
void cg_layernorm_backward(cg_tensor *dx, cg_tensor *dw, cg_tensor *db, const cg_tensor *dy, const cg_tensor *x,
                           const cg_tensor *mean, const cg_tensor *rstd, const cg_tensor *w);

#endif
