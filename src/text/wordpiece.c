/* wordpiece.c — BERT basic tokenizer + greedy WordPiece. See wordpiece.h. */
#include "text/wordpiece.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/log.h"
#include "text/text_util.h"

struct wordpiece {
    int n_vocab;
    char **piece;
    char *pool;
    tx_strmap head;      /* every token as written */
    tx_strmap cont;      /* "##x" tokens, keyed by x */
    int max_head_chars;  /* longest token, in characters */
    int max_cont_chars;  /* longest "##" token, in characters after the "##" */
    int cls, sep, pad, unk;
    int lower;
    int max_chars;
};

/* ------------------------------------------------------------------ loading */

static size_t utf8_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* Python's str.strip() on a UTF-8 slice: trims isspace() characters at both ends. */
static void py_strip(const char **s, size_t *n) {
    const char *p = *s;
    size_t len = *n;
    while (len > 0) {
        uint32_t cp;
        size_t k = 1;
        while (k < len && k < 4 && ((unsigned char)p[k] & 0xC0) == 0x80) k++;
        if (tx_utf8_decode(p, k, &cp) != 1 || !tx_py_isspace(cp)) break;
        p += k;
        len -= k;
    }
    while (len > 0) {
        size_t k = 1;
        while (k < len && k < 4 && ((unsigned char)p[len - k] & 0xC0) == 0x80) k++;
        uint32_t cp;
        if (tx_utf8_decode(p + len - k, k, &cp) != 1 || !tx_py_isspace(cp)) break;
        len -= k;
    }
    *s = p;
    *n = len;
}

void wordpiece_free(wordpiece *t) {
    if (!t) return;
    free(t->piece);
    free(t->pool);
    tx_strmap_free(&t->head);
    tx_strmap_free(&t->cont);
    free(t);
}

int wordpiece_load(const char *path, int lower_case, int max_chars, wordpiece **out) {
    *out = NULL;
    char *buf;
    size_t len;
    int rc = tx_read_file_gz(path, &buf, &len);
    if (rc) return rc;
    /* lines end at \n, \r\n or \r (Python's universal newlines) */
    size_t n_lines = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n' || (buf[i] == '\r' && (i + 1 >= len || buf[i + 1] != '\n'))) n_lines++;
    }
    if (len > 0 && buf[len - 1] != '\n' && buf[len - 1] != '\r') n_lines++;
    if (n_lines == 0) {
        free(buf);
        return cg_error_set(CG_ERR_FORMAT, "%s: empty vocabulary", path);
    }
    wordpiece *t = cg_xcalloc(1, sizeof *t);
    t->n_vocab = (int)n_lines;
    t->piece = cg_xcalloc(n_lines, sizeof *t->piece);
    t->pool = buf;   /* tokens are NUL-terminated in place */
    t->lower = lower_case ? 1 : 0;
    t->max_chars = max_chars > 0 ? max_chars : WORDPIECE_MAX_CHARS_DEFAULT;
    tx_strmap_init(&t->head, n_lines);
    tx_strmap_init(&t->cont, n_lines / 4 + 16);
    size_t i = 0;
    for (size_t line = 0; line < n_lines; line++) {
        size_t s = i;
        while (i < len && buf[i] != '\n' && buf[i] != '\r') i++;
        size_t e = i;
        if (i < len && buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n') i++;
        if (i < len) i++;
        if (!tx_utf8_valid(buf + s, e - s)) {
            wordpiece_free(t);
            return cg_error_set(CG_ERR_FORMAT, "%s:%zu: not valid UTF-8", path, line + 1);
        }
        const char *tok = buf + s;
        size_t tl = e - s;
        py_strip(&tok, &tl);
        ((char *)tok)[tl] = 0;   /* safe: the strip only shortens, and [e] is a line end or the NUL */
        t->piece[line] = (char *)tok;
        tx_strmap_put(&t->head, tok, tl, (int32_t)line);
        int chars = (int)utf8_chars(tok, tl);
        if (chars > t->max_head_chars) t->max_head_chars = chars;
        if (tl > 2 && tok[0] == '#' && tok[1] == '#') {
            tx_strmap_put(&t->cont, tok + 2, tl - 2, (int32_t)line);
            if (chars - 2 > t->max_cont_chars) t->max_cont_chars = chars - 2;
        }
    }
    struct { const char *name; int *id; } specials[] = {
        {"[CLS]", &t->cls}, {"[SEP]", &t->sep}, {"[PAD]", &t->pad}, {"[UNK]", &t->unk}};
    for (size_t k = 0; k < sizeof specials / sizeof *specials; k++) {
        *specials[k].id = tx_strmap_get(&t->head, specials[k].name, strlen(specials[k].name));
        if (*specials[k].id < 0) {
            rc = cg_error_set(CG_ERR_FORMAT, "%s: no %s token (is this a BERT vocab.txt?)", path, specials[k].name);
            wordpiece_free(t);
            return rc;
        }
    }
    *out = t;
    return CG_OK;
}

int wordpiece_vocab_size(const wordpiece *t) { return t->n_vocab; }
int wordpiece_cls(const wordpiece *t) { return t->cls; }
int wordpiece_sep(const wordpiece *t) { return t->sep; }
int wordpiece_pad(const wordpiece *t) { return t->pad; }
int wordpiece_unk(const wordpiece *t) { return t->unk; }
int wordpiece_lower_case(const wordpiece *t) { return t->lower; }
const char *wordpiece_piece(const wordpiece *t, int id) {
    return (id >= 0 && id < t->n_vocab) ? t->piece[id] : NULL;
}

/* ------------------------------------------------------------------ character classes */

static int is_control(uint32_t cp) {
    if (cp == '\t' || cp == '\n' || cp == '\r') return 0;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF;
}

static int is_bert_space(uint32_t cp) {
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return 1;
    return cp >= 0x80 && utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_ZS;
}

static int is_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
           (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

static int is_punct(uint32_t cp) {
    if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126))
        return 1;
    if (cp < 0x80) return 0;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return 1;
    default:
        return 0;
    }
}

/* NFD of s[0..n) into out (room for 4n), canonical order, then drop Mn. Returns the count. */
static size_t strip_accents(const uint32_t *s, size_t n, uint32_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x80) {
            out[k++] = s[i];
            continue;
        }
        utf8proc_int32_t d[8];
        int bound = 0;
        utf8proc_ssize_t m = utf8proc_decompose_char((utf8proc_int32_t)s[i], d, 8, UTF8PROC_DECOMPOSE, &bound);
        if (m < 1 || m > 4) {   /* never for valid scalars; keep the character */
            out[k++] = s[i];
            continue;
        }
        for (utf8proc_ssize_t j = 0; j < m; j++) out[k++] = (uint32_t)d[j];
    }
    /* canonical ordering: stable sort of each run of non-starters by combining class */
    for (size_t i = 1; i < k; i++) {
        uint32_t c = out[i];
        int cc = utf8proc_get_property((utf8proc_int32_t)c)->combining_class;
        if (cc == 0) continue;
        size_t j = i;
        while (j > 0) {
            int pc = utf8proc_get_property((utf8proc_int32_t)out[j - 1])->combining_class;
            if (pc == 0 || pc <= cc) break;
            out[j] = out[j - 1];
            j--;
        }
        out[j] = c;
    }
    size_t w = 0;
    for (size_t i = 0; i < k; i++)
        if (out[i] < 0x80 || utf8proc_category((utf8proc_int32_t)out[i]) != UTF8PROC_CATEGORY_MN) out[w++] = out[i];
    return w;
}

/* ------------------------------------------------------------------ basic tokenizer core */

/* Words come out as code-point slices; fn returns non-zero to stop. */
typedef int (*word_fn)(const uint32_t *w, size_t n, void *ctx);

typedef struct {
    int lower;
    tx_scratch *ws;
    word_fn fn;
    void *ctx;
} basic_state;

/* One whitespace-separated token: lower + strip accents, then punctuation split. */
static int basic_token(basic_state *b, const uint32_t *s, size_t n) {
    const uint32_t *d = s;
    size_t dn = n;
    if (b->lower) {
        tx_scratch_reserve(b->ws, n * (2 + 8) * sizeof(uint32_t) + 64);
        uint32_t *low = tx_scratch_take(b->ws, 2 * n * sizeof *low);
        uint32_t *nfd = tx_scratch_take(b->ws, 8 * n * sizeof *nfd);
        size_t ln = tx_py_lower(s, n, low);
        dn = strip_accents(low, ln, nfd);
        d = nfd;
    }
    size_t start = 0;
    for (size_t i = 0; i < dn; i++) {
        if (!is_punct(d[i])) continue;
        if (i > start && b->fn(d + start, i - start, b->ctx)) return 1;
        if (b->fn(d + i, 1, b->ctx)) return 1;
        start = i + 1;
    }
    if (dn > start && b->fn(d + start, dn - start, b->ctx)) return 1;
    return 0;
}

static void basic_run(const char *text, size_t len, int lower, word_fn fn, void *ctx) {
    unsigned char stack_a[16384], stack_b[16384];
    tx_scratch wa, wb;
    tx_scratch_init(&wa, stack_a, sizeof stack_a);
    tx_scratch_init(&wb, stack_b, sizeof stack_b);
    tx_scratch_reserve(&wa, (len + 1) * sizeof(uint32_t) + 32);
    uint32_t *cps = tx_scratch_take(&wa, (len + 1) * sizeof *cps);
    size_t n = tx_utf8_decode(text, len, cps), k = 0;
    for (size_t i = 0; i < n; i++) {   /* _clean_text, in place */
        uint32_t c = cps[i];
        if (c == 0 || c == 0xFFFD || is_control(c)) continue;
        cps[k++] = is_bert_space(c) ? ' ' : c;
    }
    basic_state b = {lower, &wb, fn, ctx};
    size_t start = 0;
    for (size_t i = 0; i <= k; i++) {
        int end = i == k || tx_py_isspace(cps[i]);
        int cjk = !end && is_cjk(cps[i]);
        if (end || cjk) {
            if (i > start && basic_token(&b, cps + start, i - start)) break;
            if (cjk && basic_token(&b, cps + i, 1)) break;
            start = i + 1;
        }
    }
    tx_scratch_free(&wa);
    tx_scratch_free(&wb);
}

typedef struct {
    int (*fn)(const char *, size_t, void *);
    void *ctx;
    char *buf;
    size_t cap;
} utf8_words;

static int word_to_utf8(const uint32_t *w, size_t n, void *ctx) {
    utf8_words *u = ctx;
    if (4 * n + 1 > u->cap) {
        u->cap = 4 * n + 64;
        u->buf = cg_xrealloc(u->buf, u->cap);
    }
    size_t m = tx_utf8_encode(w, n, u->buf);
    u->buf[m] = 0;
    return u->fn(u->buf, m, u->ctx);
}

void wordpiece_basic_tokens(const char *text, size_t len, int lower_case,
                            int (*fn)(const char *word, size_t n, void *ctx), void *ctx) {
    utf8_words u = {fn, ctx, NULL, 0};
    basic_run(text, len, lower_case, word_to_utf8, &u);
    free(u.buf);
}

/* ------------------------------------------------------------------ WordPiece */

typedef struct {
    const wordpiece *t;
    int32_t *ids;
    int max_ids, n, more;
} wp_state;

static int emit(wp_state *st, int32_t id) {
    if (st->n >= st->max_ids) {
        st->more = 1;
        return 1;
    }
    st->ids[st->n++] = id;
    return 0;
}

static int wordpiece_word(const uint32_t *w, size_t n, void *ctx) {
    wp_state *st = ctx;
    const wordpiece *t = st->t;
    if (n > (size_t)t->max_chars) return emit(st, t->unk);
    /* n <= max_chars: small fixed buffers would do for the default, but max_chars is a parameter */
    char stack_u8[1024];
    uint32_t stack_off[257];
    int32_t stack_sub[256];
    char *u8 = 4 * n + 1 <= sizeof stack_u8 ? stack_u8 : cg_xmalloc(4 * n + 1);
    uint32_t *off = n + 1 <= 257 ? stack_off : cg_xmalloc((n + 1) * sizeof *off);
    int32_t *sub = n <= 256 ? stack_sub : cg_xmalloc(n * sizeof *sub);
    size_t b = 0;
    for (size_t i = 0; i < n; i++) {
        off[i] = (uint32_t)b;
        b += (size_t)tx_utf8_put(w[i], u8 + b);
    }
    off[n] = (uint32_t)b;
    size_t start = 0, nsub = 0;
    int bad = 0;
    while (start < n) {
        const tx_strmap *map = start == 0 ? &t->head : &t->cont;
        size_t longest = (size_t)(start == 0 ? t->max_head_chars : t->max_cont_chars);
        size_t end = n - start > longest ? start + longest : n;
        int32_t id = -1;
        for (; end > start; end--) {
            id = tx_strmap_get(map, u8 + off[start], off[end] - off[start]);
            if (id >= 0) break;
        }
        if (id < 0) {
            bad = 1;
            break;
        }
        sub[nsub++] = id;
        start = end;
    }
    int stop = 0;
    if (bad) stop = emit(st, t->unk);
    else
        for (size_t i = 0; i < nsub && !stop; i++) stop = emit(st, sub[i]);
    if (u8 != stack_u8) free(u8);
    if (off != stack_off) free(off);
    if (sub != stack_sub) free(sub);
    return stop;
}

int wordpiece_encode(const wordpiece *t, const char *text, size_t len, int32_t *ids, int max_ids, int *more) {
    wp_state st = {t, ids, max_ids < 0 ? 0 : max_ids, 0, 0};
    basic_run(text, len, t->lower, wordpiece_word, &st);
    if (more) *more = st.more;
    return st.n;
}

/* ------------------------------------------------------------------ saving */

int wordpiece_save(const wordpiece *t, const char *path) {
    size_t cap = 16;
    for (int i = 0; i < t->n_vocab; i++) cap += strlen(t->piece[i]) + 1;
    char *buf = cg_xmalloc(cap);
    size_t k = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        size_t l = strlen(t->piece[i]);
        memcpy(buf + k, t->piece[i], l);
        k += l;
        buf[k++] = '\n';
    }
    int rc = tx_write_text_maybe_gz(path, buf, k);
    free(buf);
    return rc;
}
