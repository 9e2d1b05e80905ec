/* linear.h — fully connected layer on rows, PyTorch nn.Linear layout.
 *
 * x [N, in], w [out, in], b [out] or NULL, y [N, out]
 * Forward:   y = x @ w^T + b
 * Backward:  dx += dy @ w ;  dw += dy^T @ x ;  db += sum_n dy[n, :]
 * Gradients accumulate (+=); dx and db may be NULL. x may have more than 2 dims: all leading
 * dims are rows ([B, T, in] works as [B*T, in]).
 */
#ifndef CLIPGRID_NN_LINEAR_H
#define CLIPGRID_NN_LINEAR_H

#include "core/tensor.h"

void cg_linear_forward(cg_tensor *y, const cg_tensor *x, const cg_tensor *w, const cg_tensor *b);
void cg_linear_backward(cg_tensor *dx, cg_tensor *dw, cg_tensor *db, const cg_tensor *dy, const cg_tensor *x,
                        const cg_tensor *w);

#endif
