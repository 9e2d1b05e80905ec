/* embedding.h — table lookups: token embeddings (nn.Embedding) and learned positions.
 *
 * Token embedding: ids [N] (int32, each in [0, V)), table [V, C], y [N, C]
 *   Forward:   y[n, :] = table[ids[n], :]        (accumulate != 0: y[n, :] += ...)
 *   Backward:  dtable[ids[n], :] += dy[n, :]     for every n with ids[n] != skip_id
 *              (skip_id = PyTorch's padding_idx, whose row never receives a gradient; -1: none)
 * Position embedding: y [B, T, C], pos [P, C] with T <= P (row t of every sequence gets pos[t])
 *   Forward:   y[b, t, :] += pos[t, :]
 *   Backward:  dpos[t, :] += sum_b dy[b, t, :]
 * Ids out of range are a programming error here (the model checks user input first).
 * Backward runs OpenMP over column blocks, so repeated ids never race.
 */
#ifndef CLIPGRID_NN_EMBEDDING_H
#define CLIPGRID_NN_EMBEDDING_H

#include <stdint.h>

#include "core/tensor.h"

void cg_embedding_forward(cg_tensor *y, const int32_t *ids, const cg_tensor *table, int accumulate);
void cg_embedding_backward(cg_tensor *dtable, const cg_tensor *dy, const int32_t *ids, int32_t skip_id);

void cg_posemb_forward(cg_tensor *y, const cg_tensor *pos);
void cg_posemb_backward(cg_tensor *dpos, const cg_tensor *dy);

#endif
