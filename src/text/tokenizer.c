/* tokenizer.c — encoder names, vocabulary lookup, and row layout over clip_bpe / wordpiece. */
#include "text/tokenizer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fileio.h"
#include "core/log.h"
#include "text/clip_bpe.h"
#include "text/wordpiece.h"

struct text_tokenizer {
    text_tok_kind kind;
    int context;
    clip_bpe *bpe;
    wordpiece *wp;
    char *path;
};

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

int text_tok_defaults_for(const char *encoder, text_tok_defaults *out) {
    memset(out, 0, sizeof *out);
    if (!encoder || !*encoder) return cg_error_set(CG_ERR_USAGE, "no text encoder name given");
    if (starts_with(encoder, "clip:") || starts_with(encoder, "openai/clip") || starts_with(encoder, "clip-")) {
        out->kind = TEXT_TOK_CLIP_BPE;
        out->context = 77;
        out->lower_case = 1;
        out->vocab_file = "bpe_simple_vocab_16e6.txt.gz";
        return CG_OK;
    }
    if (starts_with(encoder, "bert") || starts_with(encoder, "chinese-roberta") ||
        starts_with(encoder, "roberta-wwm") || starts_with(encoder, "rbt") || strstr(encoder, "/bert") ||
        strstr(encoder, "/chinese-roberta")) {
        out->kind = TEXT_TOK_WORDPIECE;
        out->context = 52;
        out->lower_case = 1;
        out->vocab_file = "vocab.txt";
        return CG_OK;
    }
    return cg_error_set(CG_ERR_USAGE,
                        "text encoder \"%s\": unknown tokenizer (clip:* uses CLIP BPE; bert*, chinese-roberta*, "
                        "roberta-wwm*, rbt* use WordPiece)", encoder);
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int load_clip_dir(const char *dir, clip_bpe **out, char **used) {
    char *vj = cg_path_join(dir, "vocab.json"), *mt = cg_path_join(dir, "merges.txt");
    char *gz = cg_path_join(dir, "bpe_simple_vocab_16e6.txt.gz");
    int rc;
    if (cg_file_exists(vj) && cg_file_exists(mt)) {
        rc = clip_bpe_load_hf(vj, mt, out);
        *used = cg_xstrdup(vj);
    } else if (cg_file_exists(gz)) {
        rc = clip_bpe_load_merges(gz, out);
        *used = cg_xstrdup(gz);
    } else if (cg_file_exists(mt)) {
        rc = clip_bpe_load_merges(mt, out);
        *used = cg_xstrdup(mt);
    } else {
        rc = cg_error_set(CG_ERR_IO, "%s: no CLIP vocabulary (looked for vocab.json + merges.txt, "
                          "bpe_simple_vocab_16e6.txt.gz, merges.txt)", dir);
    }
    free(vj);
    free(mt);
    free(gz);
    return rc;
}

int text_tokenizer_load_kind(text_tok_kind kind, const text_tok_options *opt, text_tokenizer **out) {
    *out = NULL;
    text_tok_options o = {0};
    if (opt) o = *opt;
    if (!o.vocab && !o.pretrained)
        return cg_error_set(CG_ERR_USAGE, "no vocabulary: give --vocab FILE or --text-pretrained DIR");
    if (o.context < 0 || o.context == 1)
        return cg_error_set(CG_ERR_USAGE, "context length %d: needs at least 2 (start and end tokens)", o.context);
    text_tokenizer *t = cg_xcalloc(1, sizeof *t);
    t->kind = kind;
    t->context = o.context > 0 ? o.context : (kind == TEXT_TOK_CLIP_BPE ? 77 : 52);
    int rc = CG_OK;
    const char *src = o.vocab ? o.vocab : o.pretrained;
    if (kind == TEXT_TOK_CLIP_BPE) {
        if (is_dir(src)) {
            rc = load_clip_dir(src, &t->bpe, &t->path);
        } else {
            t->path = cg_xstrdup(src);
            /* a vocab.json next to its merges.txt is the HF layout */
            size_t n = strlen(src);
            if (n >= 5 && strcmp(src + n - 5, ".json") == 0)
                rc = cg_error_set(CG_ERR_USAGE, "%s: give the model directory (vocab.json + merges.txt) or the merges file", src);
            else
                rc = clip_bpe_load_merges(src, &t->bpe);
        }
    } else if (kind == TEXT_TOK_WORDPIECE) {
        int lower = o.casing != TEXT_TOK_CASED;
        if (is_dir(src)) {
            t->path = cg_path_join(src, "vocab.txt");
            if (!cg_file_exists(t->path))
                rc = cg_error_set(CG_ERR_IO, "%s: no vocab.txt in this directory", src);
        } else {
            t->path = cg_xstrdup(src);
        }
        if (!rc) rc = wordpiece_load(t->path, lower, o.max_chars_per_word, &t->wp);
    } else {
        rc = cg_error_set(CG_ERR_USAGE, "unknown tokenizer kind %d", (int)kind);
    }
    if (rc) {
        text_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return CG_OK;
}

int text_tokenizer_load(const char *encoder, const text_tok_options *opt, text_tokenizer **out) {
    *out = NULL;
    text_tok_defaults d;
    int rc = text_tok_defaults_for(encoder, &d);
    if (rc) return rc;
    text_tok_options o = {0};
    if (opt) o = *opt;
    if (o.context == 0) o.context = d.context;
    if (o.casing == TEXT_TOK_CASE_DEFAULT) o.casing = d.lower_case ? TEXT_TOK_LOWER : TEXT_TOK_CASED;
    return text_tokenizer_load_kind(d.kind, &o, out);
}

void text_tokenizer_free(text_tokenizer *t) {
    if (!t) return;
    clip_bpe_free(t->bpe);
    wordpiece_free(t->wp);
    free(t->path);
    free(t);
}

text_tok_kind text_tokenizer_kind(const text_tokenizer *t) { return t->kind; }
int text_tokenizer_context(const text_tokenizer *t) { return t->context; }
const char *text_tokenizer_vocab_path(const text_tokenizer *t) { return t->path; }

int text_tokenizer_vocab_size(const text_tokenizer *t) {
    return t->bpe ? clip_bpe_vocab_size(t->bpe) : wordpiece_vocab_size(t->wp);
}
int text_tokenizer_bos(const text_tokenizer *t) { return t->bpe ? clip_bpe_sot(t->bpe) : wordpiece_cls(t->wp); }
int text_tokenizer_eos(const text_tokenizer *t) { return t->bpe ? clip_bpe_eot(t->bpe) : wordpiece_sep(t->wp); }
int text_tokenizer_pad(const text_tokenizer *t) { return t->bpe ? 0 : wordpiece_pad(t->wp); }
const char *text_tokenizer_piece(const text_tokenizer *t, int id) {
    return t->bpe ? clip_bpe_piece(t->bpe, id) : wordpiece_piece(t->wp, id);
}

int text_tokenizer_encode_raw(const text_tokenizer *t, const char *text, size_t len, int32_t *ids, int max_ids,
                              int *more) {
    return t->bpe ? clip_bpe_encode(t->bpe, text, len, ids, max_ids, more)
                  : wordpiece_encode(t->wp, text, len, ids, max_ids, more);
}

int text_tokenizer_encode_ex(const text_tokenizer *t, const char *text, size_t len, int32_t *ids, int context,
                             int *truncated) {
    if (context <= 0) context = t->context;
    if (context < 2) context = 2;   /* callers validate; never write outside the row */
    int more = 0;
    int n = text_tokenizer_encode_raw(t, text ? text : "", text ? len : 0, ids + 1, context - 2, &more);
    ids[0] = text_tokenizer_bos(t);
    ids[n + 1] = text_tokenizer_eos(t);
    int32_t pad = text_tokenizer_pad(t);
    for (int i = n + 2; i < context; i++) ids[i] = pad;
    if (truncated) *truncated = more;
    return n + 2;
}

int text_tokenizer_encode(const text_tokenizer *t, const char *text, int32_t *ids, int context) {
    return text_tokenizer_encode_ex(t, text, text ? strlen(text) : 0, ids, context, NULL);
}

void text_tokenizer_encode_batch(const text_tokenizer *t, const char *const *texts, size_t n, int32_t *ids,
                                 int context, int32_t *lengths) {
    if (context <= 0) context = t->context;
#pragma omp parallel for schedule(dynamic, 16)
    for (long i = 0; i < (long)n; i++) {
        int len = text_tokenizer_encode(t, texts[i], ids + (size_t)i * (size_t)context, context);
        if (lengths) lengths[i] = len;
    }
}

int text_tokenizer_learn(text_tok_kind kind, const char *const *texts, size_t n, int vocab_size, int lower_case,
                         const char *path) {
    if (kind == TEXT_TOK_CLIP_BPE) return clip_bpe_learn(texts, n, vocab_size, path);
    if (kind == TEXT_TOK_WORDPIECE) return wordpiece_learn(texts, n, vocab_size, lower_case < 0 ? 1 : lower_case, path);
    return cg_error_set(CG_ERR_USAGE, "unknown tokenizer kind %d", (int)kind);
}
