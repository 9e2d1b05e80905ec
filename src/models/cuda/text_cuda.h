/* text_cuda.h — the text towers (models/text_transformer.h: OpenAI CLIP's text transformer and
 * BERT) on a CUDA device, built from the nn/cuda layer ops. NOT YET RUN ON A GPU: written and
 * compiled on a machine without one; its test (tests/test_cuda_text.c) has only been seen to skip.
 * See docs/cuda.md, "Device text towers".
 *
 * The CPU tower stays the source of truth: it builds and initialises the parameters (seed, or a
 * Hugging Face directory) and loads/saves checkpoints; the device tower mirrors its cg_params
 * layout exactly (the same offsets in one flat float array for values, one for gradients; a text
 * tower has no buffers or counters), so upload/download are one copy each.
 *
 * Computation: cg_text_forward / cg_text_backward of text_transformer.c, op for op and in the same
 * order, each CPU layer call replaced by its nn/cuda twin:
 *   CLIP  token + position embeddings; per layer pre-LN, fused q|k|v GEMM, causal attention,
 *         out-proj + residual, LN, fc1, QuickGELU (cfg.act), fc2 + residual; the row of each text
 *         at its pooled position (argmax of the ids, or the first cfg.eos_id; found on the host
 *         from the host ids, as the CPU does), final LN, bias-free projection.
 *   BERT  LN(word + position + token_type[0]); per layer post-LN with the key padding mask
 *         (ids != pad_id) and GELU (erf); the [CLS] row (position 0), bias-free projection;
 *         no gradient into the word-embedding row of pad_id (padding_idx).
 * Pooled rows are gathered and their gradients scattered with one device-to-device copy per text
 * (B copies: each text contributes exactly one row, so the scatter into a zeroed buffer is exact).
 *
 * Memory: everything (fp32 master params, fp32 grads, the bf16 weight copy in bf16 mode, ids, the
 * key mask, every activation and gradient buffer for one (config, B, T, precision)) comes from ONE
 * device arena, sized by a planning pass that runs the same allocations and counts bytes. The
 * context's scratch must hold cg_cuda_text_scratch_bytes() (attention scores, embedding sort,
 * LayerNorm/linear partial sums).
 *
 * Precision: CG_PREC_FP32 — everything float. CG_PREC_BF16 — activations, their gradients and the
 * weights the forward reads are bf16 (a copy of the fp32 master params, refreshed by
 * cg_cuda_text_refresh_weights()); parameter gradients and LayerNorm statistics are fp32.
 *
 *   cg_text_tower cpu; cg_text_create(&cpu, cg_zoo_text("clip:tiny"), 64, seed);
 *   cg_cuda_text m;
 *   cg_cuda_ctx_create(&ctx, 0, cg_cuda_text_scratch_bytes(&cpu, p, B, T));
 *   cg_cuda_text_create(&m, ctx, &cpu, p, B, T);       // plans, allocates, uploads
 *   cg_cuda_text_forward(&m, ids_host);                 // int32 [B, T] -> m.emb [B, E] X (device)
 *   cg_cuda_text_zero_grad(&m);
 *   cg_cuda_text_backward(&m, d_emb_device);            // grads in m.grads (float)
 *   cg_cuda_text_download(&m, &cpu.params, 1);          // values and grads
 */
#ifndef CLIPGRID_MODELS_CUDA_TEXT_CUDA_H
#define CLIPGRID_MODELS_CUDA_TEXT_CUDA_H

#include <stdint.h>

#include "nn/cuda/cg_cuda.h"
#include "nn/cuda/cuda_params.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "models/text_transformer.h"
#include "nn/params.h"

/* per-layer device activations (as cg_text_layer_acts; X unless noted) */
typedef struct {
    void *ln1, *qkv, *att, *a, *x1, *r1, *ln2, *h, *r2;   /* CLIP: ln1, ln2; BERT: r1, r2 (others NULL) */
    void *g;                                              /* act(h), for fc2's backward; NULL when frozen */
    float *mean1, *rstd1, *mean2, *rstd2;                 /* [B*T] */
} cg_cuda_text_layer_acts;

typedef struct {
    cg_cuda_ctx *ctx;
    cg_precision p;
    /* structure, copied from the CPU tower */
    cg_text_config cfg;
    int embed_dim, frozen;
    int tok_emb, pos_emb, type_emb, emb_ln_w, emb_ln_b, final_ln_w, final_ln_b, proj_w;
    cg_text_layer *layers;               /* [cfg.layers] (host copy of the CPU tower's indices) */

    /* batch shape */
    int B, T, have_forward;
    int32_t *host_rows;                  /* host [B]: b * T + the pooled position of text b (-> pool_rows) */
    uint8_t *host_mask;                  /* host staging [B*T] for the BERT key mask */

    /* device memory: one arena */
    cg_cuda_arena arena;
    cg_cuda_params w;                    /* params, grads, wx: the CPU layout (in the arena; no buffers) */
    int32_t *ids, *zero_ids;             /* [B*T] int32 */
    int32_t *pool_rows;                  /* [B] int32: the pooled row of each text in [B*T] */
    uint8_t *key_mask;                   /* BERT [B*T] (NULL for CLIP) */
    void *e0;                            /* BERT: embeddings before their LayerNorm [B, T, C] */
    float *emb_mean, *emb_rstd;          /* BERT [B*T] */
    void **res;                          /* host array [layers + 1] of device [B, T, C]: residual stream */
    cg_cuda_text_layer_acts *lacts;      /* host array [layers] */
    void *pool_in, *pooled;              /* [B, C] */
    float *pool_mean, *pool_rstd;        /* CLIP [B] */
    void *emb;                           /* [B, E]: the output */
    void *g4;                            /* [B, T, F] act(h) of a frozen tower (no backward: one buffer
                                            for every layer); NULL otherwise (each layer keeps its own) */
    void *dcur, *dA, *dB, *dqkv, *d4, *dh, *dpool, *d_emb;   /* gradient buffers, X */
} cg_cuda_text;

/* Bytes the arena needs / the context's scratch needs for this tower and batch shape. */
size_t cg_cuda_text_arena_bytes(const cg_text_tower *cpu, cg_precision p, int B, int T);
size_t cg_cuda_text_scratch_bytes(const cg_text_tower *cpu, cg_precision p, int B, int T);

/* Plan, allocate the arena (one cudaMalloc), upload cpu->params. CG_ERR_STATE if B < 1, T outside
 * [1, max_positions], or ctx's scratch is smaller than cg_cuda_text_scratch_bytes. The device
 * tower copies cpu->frozen (a frozen tower's backward does nothing, as on the CPU). */
int cg_cuda_text_create(cg_cuda_text *m, cg_cuda_ctx *ctx, const cg_text_tower *cpu, cg_precision p, int B, int T);
void cg_cuda_text_free(cg_cuda_text *m);

/* Host params (same layout as the tower's) -> device values; refreshes wx. */
int cg_cuda_text_upload(cg_cuda_text *m, const cg_params *src);
/* Device -> host params: values, and with grads != 0 the gradients too. */
int cg_cuda_text_download(cg_cuda_text *m, cg_params *dst, int grads);
/* bf16 mode: wx <- bf16(params). No-op in fp32. */
int cg_cuda_text_refresh_weights(cg_cuda_text *m);
int cg_cuda_text_zero_grad(cg_cuda_text *m);

/* ids: host int32 [B, T] (the shape given at creation). Checked on the host like cg_text_forward
 * (CG_ERR_FORMAT naming a bad id, or a CLIP text without its eos_id), uploaded, then the forward.
 * Result in m->emb [B, E] (X, device). */
int cg_cuda_text_forward(cg_cuda_text *m, const int32_t *ids);
/* d_emb: device [B, E] X (may be m->d_emb after cg_cuda_text_set_d_emb). Accumulates into
 * m->grads. No-op when m->frozen. */
int cg_cuda_text_backward(cg_cuda_text *m, const void *d_emb);
/* Host helpers for tests: emb -> host [B, E] float; host [B, E] float -> m->d_emb. */
int cg_cuda_text_read_emb(cg_cuda_text *m, float *host);
int cg_cuda_text_set_d_emb(cg_cuda_text *m, const float *host);

#ifdef __cplusplus
}
#endif

#endif
