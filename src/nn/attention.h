/* attention.h — multi-head scaled dot-product attention core (after the qkv projection,
 * before the output projection), fused per (sequence, head).
 *
 * qkv [B, T, 3C]: row (b, t) holds q | k | v, each C = H * D wide, head h at columns h*D..
 * (the layout of one Linear(C, 3C) whose weight is [Wq; Wk; Wv]).
 * out [B, T, C]; att [B, H, T, T] keeps the probabilities for backward.
 * For each b, h:
 *   S = Q K^T / sqrt(D)                          Q, K, V: [T, D] slices of qkv
 *   S[i, j] is dropped (probability exactly 0) when causal and j > i, or when key_mask
 *   (uint8 [B, T], NULL: none) has key_mask[b, j] == 0  (BERT's padding mask: HF adds the
 *   dtype minimum there, which gives the same 0 after softmax)
 *   P = softmax_j(S)  (a row with no allowed key gets P = 0, out = 0)
 *   O = P V  -> out[b, :, h*D:(h+1)*D]
 * Backward (dqkv accumulates):
 *   dP = dO V^T ;  dV += P^T dO ;  dS = P * (dP - rowsum(P * dP))
 *   dQ += dS K / sqrt(D) ;  dK += dS^T Q / sqrt(D)
 * Each (b, h) is three (forward) or four (backward) single-threaded BLAS calls on strided
 * slices; OpenMP runs the B*H pairs in parallel. No [B, H, T, D] copies are made.
 */
#ifndef CLIPGRID_NN_ATTENTION_H
#define CLIPGRID_NN_ATTENTION_H

#include <stdint.h>

#include "core/tensor.h"

void cg_attention_forward(cg_tensor *out, cg_tensor *att, const cg_tensor *qkv, int n_heads, int causal,
                          const uint8_t *key_mask);
void cg_attention_backward(cg_tensor *dqkv, const cg_tensor *dout, const cg_tensor *qkv, const cg_tensor *att,
                           int n_heads);

#endif
