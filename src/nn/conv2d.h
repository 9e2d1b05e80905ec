/* conv2d.h — dense 2-D convolution (groups = 1) in the nn/ image layout [C, N, H, W].
 *
 * Image activations in nn/ are channel-major: x[c, n, h, w] (call it CNHW). Every channel is one
 * contiguous run of N*H*W values, so a 1x1 convolution over the whole batch is ONE matrix
 * product, Y[Cout, N*H*W] = W[Cout, Cin] @ X[Cin, N*H*W], and BatchNorm statistics are sums
 * over contiguous memory. Weights keep PyTorch's layout [Cout, Cin, kh, kw].
 *
 * Forward:   y[o,n,i,j] = b[o] + sum_{c,u,v} w[o,c,u,v] * x[c, n, i*s - p + u, j*s - p + v]
 *            (x outside the image is 0; Ho = (H + 2p - k)/s + 1)
 * Backward:  dw[o,c,u,v] += sum_{n,i,j} dy[o,n,i,j] * x[c, n, i*s-p+u, j*s-p+v]
 *            db[o]       += sum_{n,i,j} dy[o,n,i,j]
 *            dx[c,n,h,w] += sum_{o,u,v : h = i*s-p+u, w = j*s-p+v} w[o,c,u,v] * dy[o,n,i,j]
 * 1x1/stride 1/pad 0 runs as one GEMM; other kernels as im2col + GEMM over groups of whole
 * images (each OpenMP thread owns its images, so col2im never races).
 *
 * Gradients ACCUMULATE (+=) into dx, dw, db (as every nn/ backward does): zero them first.
 * dx and db may be NULL (not needed).
 */
#ifndef CLIPGRID_NN_CONV2D_H
#define CLIPGRID_NN_CONV2D_H

#include "core/tensor.h"

/* x [Cin,N,H,W], w [Cout,Cin,k,k], b [Cout] or NULL, y [Cout,N,Ho,Wo] (written). */
void cg_conv2d_forward(cg_tensor *y, const cg_tensor *x, const cg_tensor *w, const cg_tensor *b, int stride, int pad);
void cg_conv2d_backward(cg_tensor *dx, cg_tensor *dw, cg_tensor *db, const cg_tensor *dy, const cg_tensor *x,
                        const cg_tensor *w, int stride, int pad);

/* Output size of a convolution along one axis. */
static inline int64_t cg_conv_out_size(int64_t in, int k, int stride, int pad) { return (in + 2 * pad - k) / stride + 1; }

/* Per-row sums used for biases: db[r] += sum_j dy[r*ld + j], j < cols (rows in parallel). */
void cg_rowsum_acc_cpu(float *db, const float *dy, int64_t rows, int64_t cols);

#endif
