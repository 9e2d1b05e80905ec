/* zoo.h — encoder names -> configurations.
 *
 * Image encoders: the seven StarNet variants of timm (starnet_s050 ... starnet_s4), by the
 * names timm registers. Text encoders: the CLIP text transformer and BERT flavours
 * (clip:ViT-B/32, bert-base-chinese and small CPU variants; see docs/text_towers.md). Each kind
 * has its own table and lookup; cg_zoo_image_names() / cg_zoo_text_names() are what
 * `clipgrid models` and the launcher enumerate.
 */
#ifndef CLIPGRID_MODELS_ZOO_H
#define CLIPGRID_MODELS_ZOO_H

typedef struct {
    const char *name;   /* "starnet_s1" */
    int base_dim;       /* stage widths base_dim * 2^i */
    int depths[4];
    int mlp_ratio;
    int stem_chs;       /* 32 for every timm variant */
} cg_starnet_config;

/* NULL when unknown; cg_zoo_unknown_image() then sets an error naming it and listing the known ones. */
const cg_starnet_config *cg_zoo_starnet(const char *name);
int cg_zoo_unknown_image(const char *name);
/* NULL-terminated list of image encoder names, in size order. */
const char *const *cg_zoo_image_names(void);

/* Text towers (models/text_transformer.h). A Hugging Face config.json overrides these values
 * when a tower is loaded from a model directory. */
typedef enum { CG_TEXT_CLIP = 1, CG_TEXT_BERT = 2 } cg_text_kind;

typedef struct {
    const char *name;     /* "clip:ViT-B/32" */
    cg_text_kind kind;    /* CLIP: pre-LN, causal, EOT pooling; BERT: post-LN, padding mask, [CLS] */
    int vocab_size;
    int context;          /* default sequence length of the tokenizer (77 CLIP, 52 Chinese-CLIP) */
    int max_positions;    /* rows of the position embedding (>= context) */
    int width, layers, heads, mlp;   /* mlp = hidden size of the MLP */
    int type_vocab;       /* BERT token types (2); 0 for CLIP */
    int embed_dim;        /* default width of the projection (the CLIP joint space) */
    float ln_eps;
    int act;              /* 1 = GELU (erf), 2 = QuickGELU (nn/gelu.h cg_act_kind) */
    int pad_id;           /* BERT: [PAD] id (attention mask, embedding padding_idx); CLIP: -1 */
    int eos_id;           /* CLIP pooling: -1 (or HF's legacy 2): argmax of the ids (OpenAI);
                             otherwise the first position holding this id (HF) */
} cg_text_config;

/* NULL when unknown; cg_zoo_unknown_text() then sets an error naming it and the known ones. */
const cg_text_config *cg_zoo_text(const char *name);
int cg_zoo_unknown_text(const char *name);
/* NULL-terminated list of text encoder names. */
const char *const *cg_zoo_text_names(void);

#endif
