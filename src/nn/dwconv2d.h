/* dwconv2d.h — depthwise 2-D convolution (groups = C), stride 1, "same" padding k/2, odd k,
 * in the nn/ image layout [C, N, H, W]. Weight [C, 1, k, k] (PyTorch layout), bias [C].
 *
 * Forward:   y[c,n,h,w]  = b[c] + sum_{u,v} w[c,u,v] * x[c, n, h+u-p, w+v-p]      (p = k/2)
 * Backward:  dw[c,u,v]  += sum_{n,h,w} dy[c,n,h,w] * x[c, n, h+u-p, w+v-p]
 *            db[c]      += sum_{n,h,w} dy[c,n,h,w]
 *            dx[c,n,h,w]+= sum_{u,v} w[c,u,v] * dy[c, n, h-u+p, w-v+p]
 * Each (c, n) plane is independent; OpenMP runs over channels (a channel's weight gradient
 * then belongs to one thread). The inner loops are shifted row AXPYs/dots the compiler
 * vectorizes. Gradients accumulate (+=); dx, db may be NULL.
 */
#ifndef CLIPGRID_NN_DWCONV2D_H
#define CLIPGRID_NN_DWCONV2D_H

#include "core/tensor.h"

void cg_dwconv2d_forward(cg_tensor *y, const cg_tensor *x, const cg_tensor *w, const cg_tensor *b);
void cg_dwconv2d_backward(cg_tensor *dx, cg_tensor *dw, cg_tensor *db, const cg_tensor *dy, const cg_tensor *x,
                          const cg_tensor *w);

#endif
