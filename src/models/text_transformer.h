/* text_transformer.h — the text towers: OpenAI CLIP's text transformer and BERT (Chinese-CLIP's
 * text tower), forward and backward on CPU (llm.c style: flat parameters, activations in an
 * arena, no autograd).
 *
 * CLIP flavour (model_specs.md §2):
 *   x = token_embedding[ids] + position_embedding[0..T)
 *   per layer (pre-LN):  x = x + out_proj(attn_causal(qkv(LN1(x))))
 *                        x = x + fc2(QuickGELU(fc1(LN2(x))))
 *   pooled = final_LN(x[b, eot_b])          eot_b = argmax(ids[b]) (OpenAI), or the first
 *                                           position of cfg.eos_id (HF configs with eos != 2)
 *   emb = pooled @ text_projection.weight^T  ([E, C], HF Linear layout; OpenAI's
 *                                             text_projection [C, E] is its transpose)
 * BERT flavour (§3):
 *   x = LN_emb(word[ids] + position[0..T) + token_type[0])
 *   per layer (post-LN): x = LN1(x + dense(attn(qkv(x), key mask ids != pad)))
 *                        x = LN2(x + out(GELU(inter(x))))
 *   emb = x[b, 0] @ text_projection.weight^T     ([CLS] of the last hidden state, no pooler,
 *                                                 no tanh, no bias: Chinese-CLIP)
 * No dropout (Chinese-CLIP trains BERT with 0.1; here the tower is always deterministic).
 *
 * Parameters carry Hugging Face names, so the tower's state dict *is* an HF one:
 *   CLIP  text_model.embeddings.token_embedding.weight, text_model.encoder.layers.3.self_attn.
 *         q_proj.weight, ..., text_model.final_layer_norm.bias, text_projection.weight
 *   BERT  embeddings.word_embeddings.weight, encoder.layer.3.attention.self.query.weight, ...,
 *         text_projection.weight (BertModel's bare names)
 * q, k and v weights (and biases) are registered next to each other, so they form one [3C, C]
 * matrix and the projection is a single GEMM.
 *
 * Use (the trainer):
 *   cg_text_tower t;
 *   cg_text_create(&t, cg_zoo_text("clip:tiny"), 512, seed);           // from scratch, or
 *   cg_text_create_pretrained(&t, "bert-base-chinese", "hf/dir", 512, seed)  -> cg_error_message()
 *   t.frozen = freeze_text;                    // --freeze-text
 *   cg_text_forward(&t, ids, B, T)             // int32 ids [B, T] -> t.emb [B, E]; CG_OK or
 *                                              // an error naming the bad id / row
 *   cg_params_zero_grad(&t.params);
 *   cg_text_backward(&t, d_emb);               // d_emb [B, E]; accumulates into t.params.grads
 *                                              // (nothing at all when t.frozen)
 *   t.params: names, shapes, values, grads (nn/params.h); cg_text_trainable(&t) says whether
 *   the optimizer should see them (a frozen tower must be left out, or weight decay moves it).
 */
#ifndef CLIPGRID_MODELS_TEXT_TRANSFORMER_H
#define CLIPGRID_MODELS_TEXT_TRANSFORMER_H

#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"
#include "models/zoo.h"
#include "nn/params.h"

typedef struct {
    /* param indices; qkv_w / qkv_b are the q entries (k and v follow in memory) */
    int ln1_w, ln1_b, qkv_w, qkv_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} cg_text_layer;

typedef struct {
    /* CLIP: ln1 = LN1(x), x1 = x + attention, ln2 = LN2(x1), out = next layer's input
     * BERT: r1 = x + attention, x1 = LN1(r1), r2 = x1 + MLP, out = LN2(r2) */
    cg_tensor ln1, qkv, att, a, x1, r1, ln2, h, r2;
    cg_tensor mean1, rstd1, mean2, rstd2;
} cg_text_layer_acts;

typedef struct {
    cg_text_config cfg;      /* the resolved configuration (zoo + config.json) */
    int embed_dim;
    int frozen;              /* --freeze-text: backward does nothing */
    cg_params params;
    int tok_emb, pos_emb, type_emb, emb_ln_w, emb_ln_b;   /* type_emb, emb_ln_*: BERT only (-1) */
    cg_text_layer *layers;
    int final_ln_w, final_ln_b;                           /* CLIP only (-1) */
    int proj_w;

    /* activations for the current (B, T) */
    cg_arena arena;
    int B, T;
    int32_t *ids, *zero_ids;  /* [B*T] copy of the input; zeros (token types) */
    uint8_t *key_mask;        /* BERT [B*T]: ids != pad */
    int32_t *pool_pos;        /* [B]: the pooled position of each row */
    cg_tensor e0, emb_mean, emb_rstd;   /* embeddings sum (BERT: before its LayerNorm) */
    cg_tensor *res;           /* [layers + 1] residual stream: res[0] = embeddings, res[L] = last */
    cg_text_layer_acts *lacts;
    cg_tensor pool_in, pool_mean, pool_rstd, pooled;   /* [B, C] gathered rows (CLIP: + final LN) */
    cg_tensor emb;            /* [B, E] the output */
    /* backward scratch */
    cg_tensor dcur, dA, dB, dqkv, d4, dh, g4, dpool;
} cg_text_tower;

/* Build and initialise from a config (OpenAI's init for CLIP, BERT's for BERT; deterministic in
 * seed). embed_dim 0: cfg->embed_dim. */
void cg_text_create(cg_text_tower *m, const cg_text_config *cfg, int embed_dim, uint64_t seed);
/* By zoo name; CG_ERR_CONFIG naming an unknown encoder. */
int cg_text_create_named(cg_text_tower *m, const char *name, int embed_dim, uint64_t seed);
void cg_text_free(cg_text_tower *m);

/* ids [B, T] row-major int32. T <= cfg.max_positions; ids in [0, vocab). Result in m->emb. */
int cg_text_forward(cg_text_tower *m, const int32_t *ids, int B, int T);
/* d_emb [B, E]: gradient w.r.t. m->emb of the forward just before. No-op when m->frozen. */
void cg_text_backward(cg_text_tower *m, const float *d_emb);

/* Trainable values of a tower of this config (projection to embed_dim included), without
 * building it; equals the sum over m->params. */
int64_t cg_text_param_count(const cg_text_config *cfg, int embed_dim);

static inline int cg_text_trainable(const cg_text_tower *m) { return !m->frozen; }

/* Weights in/out under the tower's own (HF) names: clipgrid checkpoints. */
int cg_text_load(cg_text_tower *m, const char *path);
int cg_text_save(const cg_text_tower *m, const char *path);

/* ---- Hugging Face model directories (models/hf_loader.c) ----
 * dir holds config.json and model.safetensors (or model.safetensors.index.json + shards).
 * Accepted: CLIPTextModel / CLIPTextModelWithProjection / CLIPModel (text_model.* names,
 * text_projection.weight), BertModel (bare names), BertForPreTraining / BertForMaskedLM
 * (bert.* names; cls.* and pooler.* are ignored), ChineseCLIPModel (text_model.* + projection).
 * config.json values override the zoo config of `name` (sizes, eps, activation, ids). */
int cg_text_config_from_hf(const char *dir, const cg_text_config *base, cg_text_config *out, int *projection_dim);
/* Load the tower's weights from dir; every tensor must be present with its shape (errors name
 * the file, the tensor and both shapes), except text_projection.weight, which keeps its
 * initialisation (with a log line) when the directory has none (BERT, CLIPTextModel). */
int cg_text_load_hf(cg_text_tower *m, const char *dir);
/* cg_text_create with the zoo config of `name` overridden by dir/config.json, then
 * cg_text_load_hf. embed_dim 0: the checkpoint's projection_dim (or the zoo's); a nonzero
 * embed_dim that differs from the checkpoint's projection is an error naming both. */
int cg_text_create_pretrained(cg_text_tower *m, const char *name, const char *dir, int embed_dim, uint64_t seed);

#endif
