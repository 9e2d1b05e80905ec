/* starnet.h — StarNet image encoder (Ma et al., CVPR 2024), exactly timm's starnet.py, with the
 * 1000-class head replaced by a linear projection to the CLIP embedding width.
 *
 *   stem      ConvBN(3->32, 3x3 s2 p1) + ReLU6
 *   stage i   ConvBN(prev->W_i, 3x3 s2 p1)  then depths[i] x Block(W_i)     W_i = base_dim * 2^i
 *   Block     x + DropPath(dwconv2(g(relu6(f1(dwconv(x))) * f2(dwconv(x)))))
 *             dwconv: 7x7 depthwise + BN; f1, f2: 1x1 C->rC (no BN); g: 1x1 rC->C + BN;
 *             dwconv2: 7x7 depthwise (no BN). Every conv has a bias.
 *   norm      BN(C_last), global average pool, head: Linear(C_last -> embed_dim) (with bias)
 * Tensor names are timm's (stem.0.conv.weight, stages.2.3.f1.conv.bias, norm.running_var,
 * head.weight, ...), so a timm state dict saved as safetensors loads directly (a 1000-class
 * timm head is skipped with ignore_head).
 *
 * Init (timm _init_weights): conv and linear weights trunc_normal(std .02, cut at +-2), linear
 * bias 0, conv biases PyTorch default U(+-1/sqrt(fan_in)), BN weight 1 / bias 0, running
 * mean 0 / var 1. DropPath rate of block j is linspace(0, drop_path_rate, sum(depths))[j].
 *
 * Use:
 *   cg_starnet m;
 *   cg_starnet_create(&m, cg_zoo_starnet("starnet_s1"), 512, 0.0f, seed);
 *   cg_starnet_forward(&m, images_nchw, N, H, W, 1);          // train mode; m.emb is [N, 512]
 *   cg_params_zero_grad(&m.params);
 *   cg_starnet_backward(&m, d_emb);                           // grads in m.params.grads
 * Activations live in an arena sized once per (N, H, W) and reused while it stays the same.
 * Internally images are [C, N, H, W] (see nn/conv2d.h). Backward needs the forward of the
 * same batch just before it (train or eval mode: BN backward follows the forward's mode).
 */
#ifndef CLIPGRID_MODELS_STARNET_H
#define CLIPGRID_MODELS_STARNET_H

#include <stdint.h>

#include "core/arena.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "models/zoo.h"
#include "nn/params.h"

typedef struct { int w, b; } cg_sn_conv;           /* param indices */
typedef struct { int w, b, rm, rv, nbt; } cg_sn_bn;

typedef struct {
    int C, R;                 /* width, mlp_ratio * width */
    float drop_prob;
    cg_sn_conv dw, f1, f2, g, dw2;
    cg_sn_bn dw_bn, g_bn;
} cg_sn_block;

typedef struct {
    /* shapes of this batch */
    int C, H, W;              /* block width and spatial size */
    cg_tensor a, ab, h, z, gp, gb, out;   /* dwconv out, its BN, f1|f2 out [2R..], star, g out, its BN, block out */
    cg_tensor mean1, rstd1, mean2, rstd2;
    float *scale;             /* DropPath per-sample scales [N] (NULL: none this step) */
} cg_sn_block_acts;

typedef struct {
    cg_starnet_config cfg;
    int embed_dim;
    int widths[4];
    cg_params params;
    cg_sn_conv stem_conv, down_conv[4];
    cg_sn_bn stem_bn, down_bn[4], norm;
    cg_sn_block *blocks;      /* sum(depths), stage by stage */
    int n_blocks;
    int head_w, head_b;
    float bn_momentum, bn_eps;
    cg_rng rng;               /* DropPath draws */

    /* activations for the current batch shape (arena) */
    cg_arena arena;
    int N, H, W, train;
    cg_tensor x;                              /* input [3, N, H, W] */
    cg_tensor stem_c, stem_b, stem_a;         /* conv, BN, ReLU6 */
    cg_tensor stem_mean, stem_rstd;
    cg_tensor down_c[4], down_b[4], down_mean[4], down_rstd[4];
    cg_sn_block_acts *bacts;
    cg_tensor norm_out, norm_mean, norm_rstd, pooled, emb;
    /* gradient scratch */
    cg_tensor g0, g1;                         /* stage-level ping-pong (largest activation) */
    float *gs_c1, *gs_c2, *gs_c3, *gs_r2, *gs_r1;  /* block-internal gradients */
    float *d_pooled;
} cg_starnet;

/* Build and initialise (timm init, deterministic in `seed`). embed_dim > 0. */
void cg_starnet_create(cg_starnet *m, const cg_starnet_config *cfg, int embed_dim, float drop_path_rate, uint64_t seed);
void cg_starnet_free(cg_starnet *m);

/* images: [N, 3, H, W] row-major (NCHW, as PyTorch). train != 0: BN batch statistics (and
 * running-average updates, num_batches_tracked += 1), DropPath active. Result in m->emb [N, D]. */
void cg_starnet_forward(cg_starnet *m, const float *images, int N, int H, int W, int train);
/* d_emb [N, D]: gradient of the loss w.r.t. m->emb. Accumulates into m->params.grads. */
void cg_starnet_backward(cg_starnet *m, const float *d_emb);

/* Weights in/out (timm names). ignore_head: leave head.* alone (a 1000-class timm checkpoint). */
int cg_starnet_load(cg_starnet *m, const char *path, int ignore_head);
int cg_starnet_save(const cg_starnet *m, const char *path);

/* Counts without building: trainable params of the backbone (without head), of a head of
 * `head_out` outputs (with bias), and multiply-accumulates of convs and linears at HxW. */
int64_t cg_starnet_backbone_params(const cg_starnet_config *cfg);
int64_t cg_starnet_head_params(const cg_starnet_config *cfg, int head_out);
int64_t cg_starnet_macs(const cg_starnet_config *cfg, int H, int W, int head_out);
/* Width of the pooled features (the last stage's width). */
int cg_starnet_feature_dim(const cg_starnet_config *cfg);

#endif
