/* tokenizer.h — the text tokenizer the trainer and the text towers use.
 *
 * One interface over the two kinds: CLIP byte-level BPE (clip_bpe.h) for `clip:*` text encoders
 * and BERT WordPiece (wordpiece.h) for `bert*` ones. An encoder name decides the kind and the
 * defaults; the vocabulary comes from a file (--vocab) or a Hugging Face model directory
 * (--text-pretrained).
 *
 *   text_tokenizer *tok;
 *   text_tok_options o = {.vocab = "bpe_simple_vocab_16e6.txt.gz"};   // zero fields: defaults
 *   if (text_tokenizer_load("clip:ViT-B/32", &o, &tok)) -> cg_error_message()
 *   int32_t ids[77];
 *   int n = text_tokenizer_encode(tok, "a photo of a cat", ids, 77);   // 7: SOT ... EOT, then pads
 *   text_tokenizer_free(tok);
 *
 * Every row is laid out as the references do: CLIP `[SOT] ids [EOT]` padded with 0 (OpenAI /
 * open_clip), BERT `[CLS] ids [SEP]` padded with [PAD]; a text too long keeps its first
 * context-2 tokens and still ends with EOT/[SEP]. The EOT/[SEP] position is the return value - 1
 * (what CLIP's argmax pooling finds).
 *
 * Thread safety: after loading, encode and the accessors only read the tokenizer; any number of
 * threads may encode at once. Each encode call works in stack buffers (heap only for texts of
 * several kB) plus one small PCRE2 match block for CLIP.
 */
#ifndef CLIPGRID_TEXT_TOKENIZER_H
#define CLIPGRID_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef enum { TEXT_TOK_CLIP_BPE = 1, TEXT_TOK_WORDPIECE = 2 } text_tok_kind;

/* What an encoder name implies. */
typedef struct {
    text_tok_kind kind;
    int context;       /* 77 for CLIP, 52 for BERT (Chinese-CLIP) */
    int lower_case;    /* WordPiece: 1 (Chinese-CLIP's tokenizer); CLIP always lower-cases */
    const char *vocab_file;   /* the file name to look for in a model directory */
} text_tok_defaults;

/* `clip:*` -> CLIP BPE; `bert*`, `chinese-roberta*`, `roberta-wwm*`, `rbt*` -> WordPiece.
 * Unknown names are CG_ERR_USAGE with a message. */
int text_tok_defaults_for(const char *encoder, text_tok_defaults *out);

typedef enum { TEXT_TOK_CASE_DEFAULT = 0, TEXT_TOK_LOWER = 1, TEXT_TOK_CASED = 2 } text_tok_casing;

typedef struct {
    const char *vocab;        /* --vocab FILE: CLIP merges (.gz or text, or HF merges.txt), or vocab.txt */
    const char *pretrained;   /* --text-pretrained DIR: vocab.txt, or vocab.json + merges.txt */
    int context;              /* 0: the encoder's default */
    text_tok_casing casing;   /* WordPiece: TEXT_TOK_CASE_DEFAULT (0) is the encoder's default */
    int max_chars_per_word;   /* 0: WordPiece default (200) */
} text_tok_options;

typedef struct text_tokenizer text_tokenizer;

int text_tokenizer_load(const char *encoder, const text_tok_options *opt, text_tokenizer **out);
/* Load by kind directly (no encoder name). */
int text_tokenizer_load_kind(text_tok_kind kind, const text_tok_options *opt, text_tokenizer **out);
void text_tokenizer_free(text_tokenizer *t);

text_tok_kind text_tokenizer_kind(const text_tokenizer *t);
int text_tokenizer_context(const text_tokenizer *t);     /* the default row length */
int text_tokenizer_vocab_size(const text_tokenizer *t);
int text_tokenizer_bos(const text_tokenizer *t);         /* <|startoftext|> or [CLS] */
int text_tokenizer_eos(const text_tokenizer *t);         /* <|endoftext|> or [SEP] */
int text_tokenizer_pad(const text_tokenizer *t);         /* 0 for CLIP, [PAD] for BERT */
/* Token string ("photo</w>", "##ing"); NULL when out of range. */
const char *text_tokenizer_piece(const text_tokenizer *t, int id);
const char *text_tokenizer_vocab_path(const text_tokenizer *t);   /* what was loaded */

/* One row of exactly `context` ids (context >= 2; 0 means the default). Returns the number of
 * real tokens (>= 2, specials included); sets *truncated when not NULL. Thread-safe. */
int text_tokenizer_encode_ex(const text_tokenizer *t, const char *text, size_t len, int32_t *ids,
                             int context, int *truncated);
int text_tokenizer_encode(const text_tokenizer *t, const char *text, int32_t *ids, int context);
/* n rows of `context` ids (row-major). lengths (optional) receives each row's token count.
 * Uses OpenMP threads over the texts. */
void text_tokenizer_encode_batch(const text_tokenizer *t, const char *const *texts, size_t n, int32_t *ids,
                                 int context, int32_t *lengths);

/* Without specials or padding (for tools): up to max_ids ids, returns the count. */
int text_tokenizer_encode_raw(const text_tokenizer *t, const char *text, size_t len, int32_t *ids, int max_ids,
                              int *more);

/* From-scratch vocabulary: learn `vocab_size` tokens of this kind from captions and write the file
 * the loaders read (CLIP: merges, gzip when path ends in .gz; WordPiece: vocab.txt). */
int text_tokenizer_learn(text_tok_kind kind, const char *const *texts, size_t n, int vocab_size, int lower_case,
                         const char *path);

#endif
