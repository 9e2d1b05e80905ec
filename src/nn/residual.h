/* residual.h — residual add with DropPath (stochastic depth, timm's drop_path).
 *
 * Layout [C, N, ...]: the sample index is dimension 1 (the nn/ image layout), or use
 * cg_tensor views with C = 1 for [N, ...] data.
 *
 * Forward:   y[c,n,:] = x[c,n,:] + s[n] * f[c,n,:]
 *            s[n] = 1 without DropPath; with drop probability p: s[n] = Bernoulli(1-p) / (1-p)
 *            (timm, scale_by_keep=True; s[n] = Bernoulli(1-p) when scale_by_keep is off)
 * Backward:  dx += dy ;  df += s[n] * dy
 * scale may be NULL (s = 1). y may alias x or f.
 */
#ifndef CLIPGRID_NN_RESIDUAL_H
#define CLIPGRID_NN_RESIDUAL_H

#include "core/rng.h"
#include "core/tensor.h"

/* Draw the per-sample scales s[0..N) for one DropPath call. Returns the number kept. */
int cg_droppath_scales(cg_rng *rng, float *scale, int64_t N, float drop_prob, int scale_by_keep);

void cg_residual_forward(cg_tensor *y, const cg_tensor *x, const cg_tensor *f, const float *scale);
void cg_residual_backward(cg_tensor *dx, cg_tensor *df, const cg_tensor *dy, const float *scale);

#endif
