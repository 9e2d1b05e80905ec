/* starnet_cuda.h — the StarNet image tower (models/starnet.h) on a CUDA device, built from the
 * nn/cuda layer ops. NOT YET RUN ON A GPU: written and compiled on a machine without one; its test
 * (tests/test_cuda_starnet.c) has only been seen to skip. See docs/cuda.md, "Device StarNet tower".
 *
 * The CPU model stays the source of truth: it builds and initialises the parameters (timm init,
 * seed) and loads/saves checkpoints; the device model mirrors its cg_params layout exactly
 * (the same offsets in one flat float array for params, one for grads, one for buffers; counters
 * kept on the host), so upload/download are one copy each and a checkpoint round-trips by name.
 *
 * Memory: everything (fp32 master params, fp32 grads, running stats, the bf16 weight copy in bf16
 * mode, every activation and gradient buffer for one (config, N, H, W, precision)) comes from ONE
 * device arena, sized by a planning pass that runs the same allocations and counts bytes.
 * The context's scratch must hold cg_cuda_starnet_scratch_bytes() (conv im2col of one image,
 * depthwise-conv partials, BatchNorm partials).
 *
 * Precision: CG_PREC_FP32 — everything float. CG_PREC_BF16 — activations, their gradients and the
 * weights the forward reads are bf16 (a copy of the fp32 master params, refreshed by
 * cg_cuda_starnet_refresh_weights() or by cg_cuda_adamw_step writing m->wx); parameter gradients,
 * BN statistics and running stats are fp32.
 *
 * DropPath: as on the CPU. In train mode the forward draws every block's per-sample scales from
 * m->rng (a copy of the CPU model's generator, taken at create/upload) in block order, exactly the
 * draws cg_starnet_forward makes, uploads them in one copy and applies them in the residual add;
 * the backward scales the branch gradient by them. cg_cuda_starnet_rng() gives the generator
 * state back for checkpoints (the trainer's drop_path_rng).
 *
 *   cg_starnet cpu; cg_starnet_create(&cpu, cg_zoo_starnet("starnet_s050"), 512, 0.0f, seed);
 *   cg_cuda_starnet m;
 *   cg_cuda_ctx_create(&ctx, 0, cg_cuda_starnet_scratch_bytes(&cpu, p, N, H, W));
 *   cg_cuda_starnet_create(&m, ctx, &cpu, p, N, H, W);          // plans, allocates, uploads
 *   cg_cuda_starnet_forward(&m, images_nchw_host, 1);           // m.emb [N, D] X on the device
 *   cg_cuda_starnet_zero_grad(&m);
 *   cg_cuda_starnet_backward(&m, d_emb_device);                 // grads in m.grads (float)
 *   cg_cuda_starnet_download(&m, &cpu.params, 1);               // values, buffers, counters, grads
 */
#ifndef CLIPGRID_MODELS_CUDA_STARNET_CUDA_H
#define CLIPGRID_MODELS_CUDA_STARNET_CUDA_H

#include <stdint.h>

#include "nn/cuda/cg_cuda.h"
#include "nn/cuda/cuda_params.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "core/rng.h"
#include "models/starnet.h"
#include "nn/params.h"

typedef struct {
    void *a, *ab, *h, *z, *gp, *gb, *out;          /* X; as cg_sn_block_acts (h is [2R, N, H, W]) */
    float *mean1, *rstd1, *mean2, *rstd2;           /* [C] */
} cg_cuda_sn_block_acts;

typedef struct {
    cg_cuda_ctx *ctx;
    cg_precision p;
    /* structure, copied from the CPU model */
    cg_starnet_config cfg;
    int embed_dim, widths[4], n_blocks;
    cg_sn_block *blocks;                 /* [n_blocks] (host copy of the CPU model's indices) */
    cg_sn_conv stem_conv, down_conv[4];
    cg_sn_bn stem_bn, down_bn[4], norm;
    int head_w, head_b;
    float bn_momentum, bn_eps;

    /* batch shape */
    int N, H, W, train, have_forward;

    /* device memory: one arena */
    cg_cuda_arena arena;
    cg_cuda_params w;                    /* params, grads, buffers, wx: the CPU layout (in the arena) */
    void *x;                             /* input [3, N, H, W] X */
    void *stem_c, *stem_b, *stem_a;
    float *stem_mean, *stem_rstd;
    void *down_c[4], *down_b[4];
    float *down_mean[4], *down_rstd[4];
    cg_cuda_sn_block_acts *bacts;        /* host array [n_blocks] of device pointers */
    void *norm_out, *pooled, *emb;       /* emb [N, D] X: the output */
    float *norm_mean, *norm_rstd;
    void *g0, *g1, *gs_c2, *gs_c3, *gs_c1, *gs_r1, *gs_r2, *d_pooled, *d_emb;   /* gradient buffers, X */
    float *x_nchw;                       /* the images as given, [N, 3, H, W] float (device), before
                                          * cg_cuda_nchw_to_cnhw writes x */
    cg_rng rng;                          /* DropPath draws (the CPU model's generator, continued) */
    float *drop_scale, *host_drop_scale; /* [n_blocks, N] per-sample scales: device (arena), host */
} cg_cuda_starnet;

/* Bytes the arena needs / the context's scratch needs for this model and batch shape. */
size_t cg_cuda_starnet_arena_bytes(const cg_starnet *cpu, cg_precision p, int N, int H, int W);
size_t cg_cuda_starnet_scratch_bytes(const cg_starnet *cpu, cg_precision p, int N, int H, int W);

/* Plan, allocate the arena (one cudaMalloc), upload cpu->params (values, buffers, counters).
 * CG_ERR_STATE if ctx's scratch is smaller than cg_cuda_starnet_scratch_bytes. */
int cg_cuda_starnet_create(cg_cuda_starnet *m, cg_cuda_ctx *ctx, const cg_starnet *cpu, cg_precision p, int N, int H,
                           int W);
void cg_cuda_starnet_free(cg_cuda_starnet *m);

/* Host params (same layout as the model's) -> device: values, buffers, counters; refreshes wx. */
int cg_cuda_starnet_upload(cg_cuda_starnet *m, const cg_params *src);
/* Device -> host params: values, buffers, counters, and with grads != 0 the gradients too. */
int cg_cuda_starnet_download(cg_cuda_starnet *m, cg_params *dst, int grads);
/* bf16 mode: wx <- bf16(params). No-op in fp32. */
int cg_cuda_starnet_refresh_weights(cg_cuda_starnet *m);
int cg_cuda_starnet_zero_grad(cg_cuda_starnet *m);
/* The DropPath generator (device model's copy): read it back for checkpoints, or set it. */
cg_rng cg_cuda_starnet_rng(const cg_cuda_starnet *m);
void cg_cuda_starnet_set_rng(cg_cuda_starnet *m, cg_rng rng);

/* images: host [N, 3, H, W] float (NCHW), copied up as they are and transposed/converted into
 * m->x on the device; or NULL when the caller has written m->x ([3, N, H, W], X) itself (or the
 * previous call's images are to be used again). train != 0: BN batch statistics, running
 * stats updated, num_batches_tracked += 1. Result in m->emb [N, D] (X, device). */
int cg_cuda_starnet_forward(cg_cuda_starnet *m, const float *images, int train);
/* d_emb: device [N, D] X (may be m->d_emb after cg_cuda_starnet_set_d_emb). Accumulates into
 * m->grads; BN backward follows the last forward's mode. */
int cg_cuda_starnet_backward(cg_cuda_starnet *m, const void *d_emb);
/* Host helpers for tests: emb -> host [N, D] float; host [N, D] float -> m->d_emb. */
int cg_cuda_starnet_read_emb(cg_cuda_starnet *m, float *host);
int cg_cuda_starnet_set_d_emb(cg_cuda_starnet *m, const float *host);

#ifdef __cplusplus
}
#endif

#endif
