/* batchnorm.h — BatchNorm over the channel dimension, PyTorch semantics.
 *
 * x is [C, ...] (the nn/ image layout [C, N, H, W]); statistics are taken over the M = numel/C
 * values of each channel, which are contiguous.
 *
 * Train mode:  mean = sum x / M ;  var = sum (x - mean)^2 / M  (biased, used to normalize)
 *              xhat = (x - mean) * rstd,  rstd = 1/sqrt(var + eps) ;  y = gamma * xhat + beta
 *              running_mean = (1-m) running_mean + m mean
 *              running_var  = (1-m) running_var  + m var * M/(M-1)   (unbiased, as PyTorch)
 *              (m = momentum, 0.1 by default; num_batches_tracked is the caller's counter)
 * Backward:    dbeta += sum dy ; dgamma += sum dy*xhat
 *              dx += gamma*rstd/M * (M*dy - sum dy - xhat * sum dy*xhat)
 * Eval mode:   y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta
 *              backward: dx += dy * gamma / sqrt(running_var + eps), same dgamma/dbeta with that xhat.
 * Sums are accumulated in double. save_mean/save_rstd ([C]) carry the batch statistics from the
 * train forward to its backward. Gradients accumulate (+=); dx may be NULL.
 */
#ifndef CLIPGRID_NN_BATCHNORM_H
#define CLIPGRID_NN_BATCHNORM_H

#include "core/tensor.h"

#define CG_BN_EPS 1e-5f
#define CG_BN_MOMENTUM 0.1f

/* running_mean/var may be NULL (no running update). */
void cg_batchnorm_forward_train(cg_tensor *y, const cg_tensor *x, const cg_tensor *gamma, const cg_tensor *beta,
                                cg_tensor *running_mean, cg_tensor *running_var, cg_tensor *save_mean,
                                cg_tensor *save_rstd, float momentum, float eps);
void cg_batchnorm_backward_train(cg_tensor *dx, cg_tensor *dgamma, cg_tensor *dbeta, const cg_tensor *dy,
                                 const cg_tensor *x, const cg_tensor *gamma, const cg_tensor *save_mean,
                                 const cg_tensor *save_rstd);
void cg_batchnorm_forward_eval(cg_tensor *y, const cg_tensor *x, const cg_tensor *gamma, const cg_tensor *beta,
                               const cg_tensor *running_mean, const cg_tensor *running_var, float eps);
void cg_batchnorm_backward_eval(cg_tensor *dx, cg_tensor *dgamma, cg_tensor *dbeta, const cg_tensor *dy,
                                const cg_tensor *x, const cg_tensor *gamma, const cg_tensor *running_mean,
                                const cg_tensor *running_var, float eps);

#endif
