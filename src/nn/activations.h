/* activations.h — element-wise activations and the StarNet "star" product.
 *
 * ReLU6:   y = min(max(x, 0), 6)          dx += dy * [0 < x < 6]   (PyTorch's hardtanh gradient:
 *                                                                    0 at the kinks)
 * Star:    z = relu6(a) * b               da += dz * b * [0 < a < 6]
 *                                          db += dz * relu6(a)
 * Tensors of any shape (same numel). Gradients accumulate (+=); either of da/db may be NULL.
 */
#ifndef CLIPGRID_NN_ACTIVATIONS_H
#define CLIPGRID_NN_ACTIVATIONS_H

#include "core/tensor.h"

void cg_relu6_forward(cg_tensor *y, const cg_tensor *x);
void cg_relu6_backward(cg_tensor *dx, const cg_tensor *dy, const cg_tensor *x);

void cg_star_relu6_forward(cg_tensor *z, const cg_tensor *a, const cg_tensor *b);
void cg_star_relu6_backward(cg_tensor *da, cg_tensor *db, const cg_tensor *dz, const cg_tensor *a, const cg_tensor *b);

#endif
