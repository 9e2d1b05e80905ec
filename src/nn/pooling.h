/* pooling.h — global average pooling from the image layout to rows.
 *
 * Forward:   y[n, c] = (1/HW) sum_{h,w} x[c, n, h, w]      x [C, N, H, W] -> y [N, C]
 * Backward:  dx[c, n, h, w] += dy[n, c] / HW
 */
#ifndef CLIPGRID_NN_POOLING_H
#define CLIPGRID_NN_POOLING_H

#include "core/tensor.h"

void cg_avgpool_global_forward(cg_tensor *y, const cg_tensor *x);
void cg_avgpool_global_backward(cg_tensor *dx, const cg_tensor *dy);

#endif
