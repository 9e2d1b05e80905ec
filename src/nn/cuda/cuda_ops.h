/* cuda_ops.h — the nn/ layers on a CUDA device, callable from C. Each function is the device twin
 * of the CPU function named beside it (the headers in src/nn): same layouts (row-major; images [C, N, H, W]),
 * same formulas, same accumulate-or-overwrite rule. The math of each is written above its kernels
 * in the .cu file (forward and backward side by side).
 *
 * Arguments: device pointers. "X" = float (CG_PREC_FP32) or __nv_bfloat16 (CG_PREC_BF16), by the
 * call's precision p (nn/cuda/cg_cuda.h). Parameter gradients (dw, db, dgamma, ...) are float and
 * ACCUMULATE (+=) like the CPU's. Activation gradients (dx, da, df, dqkv: X) follow the call's
 * cg_grad_mode: CG_GRAD_ADD accumulates like the CPU, CG_GRAD_SET overwrites (never reads the
 * buffer, so it may hold anything). Statistics (mean, rstd, running stats) are float. NULL is
 * allowed exactly where the CPU function allows it.
 *
 * Returns CG_OK, CG_ERR_STATE for invalid arguments (a message naming the function and the
 * problem, including "needs N bytes of scratch"), CG_ERR_DEVICE for CUDA/cuBLAS failures.
 * Errors of kernels that run asynchronously surface at the next check or cg_cuda_sync().
 */
#ifndef CLIPGRID_NN_CUDA_CUDA_OPS_H
#define CLIPGRID_NN_CUDA_CUDA_OPS_H

#include <stdint.h>

#include "nn/cuda/cg_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a backward function writes its activation gradients. CG_GRAD_SET is CG_GRAD_ADD into a
 * zeroed buffer (the same value, rounded once) without the zero fill and the read: a model uses
 * it wherever it would otherwise clear a gradient buffer first. */
typedef enum { CG_GRAD_ADD = 0, CG_GRAD_SET = 1 } cg_grad_mode;

/* ---------------------------------------------------------------- linear (nn/linear.h)
 * x [N, in] X, w [out, in] X, b [out] X or NULL, y [N, out] X (overwritten).
 * Backward: dx [N, in] X += dy @ w (dx may be NULL); dw [out, in] float += dy^T @ x;
 * db [out] float += column sums of dy (may be NULL). */
int cg_cuda_linear_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *w, const void *b,
                           int64_t N, int64_t in, int64_t out);
int cg_cuda_linear_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, float *dw, float *db, const void *dy,
                            const void *x, const void *w, int64_t N, int64_t in, int64_t out);

/* ---------------------------------------------------------------- conv2d (nn/conv2d.h)
 * Dense convolution, groups = 1: x [Cin, N, H, W] X, w [Cout, Cin, k, k] X, b [Cout] X or NULL,
 * y [Cout, N, Ho, Wo] X (overwritten), Ho = (H + 2 pad - k) / stride + 1.
 * 1x1 / stride 1 / pad 0 is one GEMM; otherwise im2col + GEMM over groups of whole images,
 * as many images per group as the scratch holds (at least one: cg_cuda_conv2d_scratch_bytes).
 * Backward: dx X += (may be NULL), dw float +=, db float += (may be NULL). */
int cg_cuda_conv2d_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *w, const void *b,
                           int64_t Cin, int64_t N, int64_t H, int64_t W, int64_t Cout, int k, int stride, int pad);
int cg_cuda_conv2d_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, float *dw, float *db, const void *dy,
                            const void *x, const void *w, int64_t Cin, int64_t N, int64_t H, int64_t W, int64_t Cout,
                            int k, int stride, int pad);
/* Scratch the conv needs for one image per group (forward and backward); more makes groups larger. */
size_t cg_cuda_conv2d_scratch_bytes(cg_precision p, int64_t Cin, int64_t H, int64_t W, int k, int stride, int pad);

/* ---------------------------------------------------------------- dwconv2d (nn/dwconv2d.h)
 * Depthwise, stride 1, pad k/2, odd k <= 15: x, y [C, N, H, W] X, w [C, 1, k, k] X, b [C] X or NULL.
 * Backward: dx X += (may be NULL), dw float +=, db float += (may be NULL). */
int cg_cuda_dwconv2d_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *w, const void *b,
                             int64_t C, int64_t N, int64_t H, int64_t W, int k);
int cg_cuda_dwconv2d_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, float *dw, float *db, const void *dy,
                              const void *x, const void *w, int64_t C, int64_t N, int64_t H, int64_t W, int k);
size_t cg_cuda_dwconv2d_scratch_bytes(int64_t C, int64_t N, int k);
/* The forward with StarNet's residual and DropPath in its store: y[c, n] = res[c, n] + s[n] *
 * dwconv(x)[c, n] (s = scale[n], or 1 when scale is NULL), one rounding in bf16 (the separate
 * conv + residual round twice; fp32 gives the same bits). y must not alias x or res. On the
 * whole-plane kernels one pass; otherwise the conv, then cg_cuda_residual_forward. */
int cg_cuda_dwconv2d_forward_residual(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *w,
                                      const void *b, const void *res, const float *scale, int64_t C, int64_t N,
                                      int64_t H, int64_t W, int k);

/* ---------------------------------------------------------------- batchnorm (nn/batchnorm.h)
 * x, y [C, M] X (M = N*H*W contiguous per channel); gamma, beta [C] X; save_mean, save_rstd [C]
 * float (written); running_mean/var [C] float or both NULL. y may alias x.
 * xbias [C] X or NULL: the BatchNorm's input is x + xbias[c] (the bias of the conv before it,
 * which then runs without one: no pass writes it). save_mean and running_mean include it; the
 * backward takes the same x and xbias.
 * Backward (train): dx X (may be NULL; mode), dgamma, dbeta float +=. */
int cg_cuda_batchnorm_forward_train(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *xbias,
                                    const void *gamma, const void *beta, float *running_mean, float *running_var,
                                    float *save_mean, float *save_rstd, int64_t C, int64_t M, float momentum,
                                    float eps);
int cg_cuda_batchnorm_backward_train(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, float *dgamma,
                                     float *dbeta, const void *dy, const void *x, const void *xbias, const void *gamma,
                                     const float *save_mean, const float *save_rstd, int64_t C, int64_t M);
int cg_cuda_batchnorm_forward_eval(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *xbias,
                                   const void *gamma, const void *beta, const float *running_mean,
                                   const float *running_var, int64_t C, int64_t M, float eps);
int cg_cuda_batchnorm_backward_eval(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, float *dgamma,
                                    float *dbeta, const void *dy, const void *x, const void *xbias, const void *gamma,
                                    const float *running_mean, const float *running_var, int64_t C, int64_t M,
                                    float eps);

/* ---------------------------------------------------------------- layernorm (nn/layernorm.h)
 * x, y [N, C] X; w [C] X; b [C] X or NULL; mean, rstd [N] float (written). y may alias x.
 * Backward: dx X +=, dw float +=, db float += (each may be NULL). */
int cg_cuda_layernorm_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, float *mean, float *rstd, const void *x,
                              const void *w, const void *b, int64_t N, int64_t C, float eps);
int cg_cuda_layernorm_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, float *dw, float *db, const void *dy,
                               const void *x, const float *mean, const float *rstd, const void *w, int64_t N,
                               int64_t C);

/* ---------------------------------------------------------------- activations (nn/activations.h, nn/gelu.h)
 * n elements each; forward outputs overwritten (y may alias x), backward += . */
int cg_cuda_relu6_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, int64_t n);
int cg_cuda_relu6_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, const void *dy, const void *x, int64_t n);
/* z = relu6(a) * b ; da, db may be NULL. bias_a, bias_b: [n / M] X or NULL, a per-channel bias
 * added to a, b on the fly (element i is in channel i / M): the 1x1 conv that made a and b then
 * runs without its bias, and no pass writes it. Backward: da, db w.r.t. the biased inputs. */
int cg_cuda_star_relu6_forward(cg_cuda_ctx *ctx, cg_precision p, void *z, const void *a, const void *b,
                               const void *bias_a, const void *bias_b, int64_t M, int64_t n);
int cg_cuda_star_relu6_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *da, void *db,
                                const void *dz, const void *a, const void *b, const void *bias_a, const void *bias_b,
                                int64_t M, int64_t n);
int cg_cuda_gelu_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, int64_t n);
int cg_cuda_gelu_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, const void *dy, const void *x, int64_t n);
int cg_cuda_quick_gelu_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, int64_t n);
int cg_cuda_quick_gelu_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, const void *dy, const void *x, int64_t n);

/* ---------------------------------------------------------------- image layout (core/tensor.h)
 * cg_nchw_to_cnhw on the device: src [N, C, HW] float (images as the loader makes them, copied
 * up as they are) -> dst [C, N, HW] X (rounded to bf16, nearest-even, in BF16 mode). */
int cg_cuda_nchw_to_cnhw(cg_cuda_ctx *ctx, cg_precision p, void *dst, const float *src, int64_t N, int64_t C,
                         int64_t HW);

/* ---------------------------------------------------------------- residual + DropPath (nn/residual.h)
 * [C, N, K] tensors (K = numel / (C N)); scale [N] float on the device, or NULL (all 1); the
 * caller draws it with cg_droppath_scales() and uploads it. y may alias x or f.
 * Backward: dx += dy, df += s[n] dy (either may be NULL). */
int cg_cuda_residual_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, const void *f,
                             const float *scale, int64_t C, int64_t N, int64_t K);
int cg_cuda_residual_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, void *df, const void *dy, const float *scale,
                              int64_t C, int64_t N, int64_t K);

/* ---------------------------------------------------------------- pooling (nn/pooling.h)
 * x [C, N, HW] X -> y [N, C] X (overwritten); backward dx += dy / HW. */
int cg_cuda_avgpool_global_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *x, int64_t C, int64_t N,
                                   int64_t HW);
int cg_cuda_avgpool_global_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dx, const void *dy, int64_t C, int64_t N,
                                    int64_t HW);

/* ---------------------------------------------------------------- embeddings (nn/embedding.h)
 * ids [N] int32 on the device; table [V, C] X; y [N, C] X (overwritten, or += with accumulate).
 * An id outside [0, V) leaves its row untouched (zero when overwriting) and raises a fault that
 * cg_cuda_check_faults() reports: the kernel never reads outside the table.
 * Backward: dtable [V, C] float += dy rows (rows with ids[n] == skip_id skipped; -1: none), after
 * a stable sort of the ids: an id with at most 64 rows gets the CPU's additions in the CPU's order
 * (bitwise equal in fp32); a longer one is summed in pieces of up to 32 sorted rows, the pieces
 * then added in a fixed grouping. Deterministic: no float atomics, the same result every run.
 * Scratch: cg_cuda_embedding_scratch_bytes(N, C). */
int cg_cuda_embedding_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const int32_t *ids, const void *table,
                              int64_t N, int64_t C, int64_t V, int accumulate);
int cg_cuda_embedding_backward(cg_cuda_ctx *ctx, cg_precision p, float *dtable, const void *dy, const int32_t *ids,
                               int64_t N, int64_t C, int64_t V, int32_t skip_id);
size_t cg_cuda_embedding_scratch_bytes(int64_t N, int64_t C);
/* y [B, T, C] X += pos[t] (pos [P >= T, C] X); backward dpos [T.., C] float += sum_b dy[b, t]. */
int cg_cuda_posemb_forward(cg_cuda_ctx *ctx, cg_precision p, void *y, const void *pos, int64_t B, int64_t T, int64_t C);
int cg_cuda_posemb_backward(cg_cuda_ctx *ctx, cg_precision p, float *dpos, const void *dy, int64_t B, int64_t T,
                            int64_t C);
/* dst [B, C] X = the rows rows[b] of src [.., C] X (gather); dst [.., C] X rows rows[b] = src [B, C] X
 * (scatter: the other rows untouched, rows distinct). rows: B int32 on the device. */
int cg_cuda_gather_rows(cg_cuda_ctx *ctx, cg_precision p, void *dst, const void *src, const int32_t *rows, int64_t B,
                        int64_t C);
int cg_cuda_scatter_rows(cg_cuda_ctx *ctx, cg_precision p, void *dst, const void *src, const int32_t *rows, int64_t B,
                         int64_t C);

/* ---------------------------------------------------------------- attention (nn/attention.h)
 * qkv [B, T, 3C] X (q | k | v, head h at columns h*D..), out [B, T, C] X (overwritten),
 * att [B, H, T, T] X (probabilities, kept for backward), key_mask [B, T] uint8 on the device or
 * NULL (0 = padding: that key gets probability 0), causal: key j > query i gets 0. A query with no
 * allowed key gets P = 0 and out = 0. Backward: dqkv [B, T, 3C] X +=. */
int cg_cuda_attention_forward(cg_cuda_ctx *ctx, cg_precision p, void *out, void *att, const void *qkv, int64_t B,
                              int64_t T, int64_t C, int n_heads, int causal, const uint8_t *key_mask);
int cg_cuda_attention_backward(cg_cuda_ctx *ctx, cg_precision p, cg_grad_mode mode, void *dqkv, const void *dout, const void *qkv,
                               const void *att, int64_t B, int64_t T, int64_t C, int n_heads);
size_t cg_cuda_attention_scratch_bytes(cg_precision p, int64_t B, int64_t T, int64_t C, int n_heads);

/* ---------------------------------------------------------------- CLIP loss (nn/clip_loss.h)
 * open_clip ClipLoss on B pairs of D-wide features. Internal buffers are float and come from an
 * arena once (cg_cuda_clip_loss_init). logit_scale: a float on the device (the fp32 master value).
 * Forward writes, on the device, out[0] = loss, out[1] = image->text top-1, out[2] = text->image
 * top-1, out[3] = exp(logit_scale); cg_cuda_clip_loss_read() copies them to the host.
 * Backward OVERWRITES dxi, dxt [B, D] X and *dlogit_scale (float on the device; may be NULL),
 * like clip_loss_backward. */
typedef struct {
    int B, D;
    float *ni, *nt;           /* normalised features [B, D] */
    float *norm_i, *norm_t;   /* row norms [B] */
    float *logits;            /* [B, B] */
    float *p_rows, *p_cols;   /* softmax over rows (image->text), over columns (text->image) */
    float *G;                 /* dloss/dlogits [B, B] */
    float *dni, *dnt;         /* [B, D] */
    double *terms;            /* per-row and per-column loss terms and hits, dscale partials [5 B] */
    float *out;               /* [4]: loss, acc_i2t, acc_t2i, scale */
} cg_cuda_clip_loss;

/* Bytes cg_cuda_clip_loss_init takes from its arena. */
size_t cg_cuda_clip_loss_bytes(int B, int D);
int cg_cuda_clip_loss_init(cg_cuda_clip_loss *c, cg_cuda_arena *a, int B, int D);
int cg_cuda_clip_loss_forward(cg_cuda_ctx *ctx, cg_precision p, cg_cuda_clip_loss *c, const void *xi, const void *xt,
                              const float *logit_scale);
int cg_cuda_clip_loss_read(cg_cuda_ctx *ctx, const cg_cuda_clip_loss *c, float *loss, float *acc_i2t, float *acc_t2i);
int cg_cuda_clip_loss_backward(cg_cuda_ctx *ctx, cg_precision p, cg_cuda_clip_loss *c, void *dxi, void *dxt,
                               float *dlogit_scale);
/* Row L2 normalisation (l2_normalize_rows): y = x / max(||x||, 1e-12), norms [B] float or NULL.
 * x of X type, y float. */
int cg_cuda_l2_normalize_rows(cg_cuda_ctx *ctx, cg_precision p, float *y, float *norms, const void *x, int64_t B,
                              int64_t D);

#ifdef __cplusplus
}
#endif

#endif
