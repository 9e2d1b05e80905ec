/* clip_bpe.c — CLIP byte-level BPE: loading, cleaning, splitting, merging. See clip_bpe.h. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/clip_bpe.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"
#include "text/text_util.h"

#define SOT_STR "<|startoftext|>"
#define EOT_STR "<|endoftext|>"
#define EOW_STR "</w>"

/* The reference pattern; its last class also takes U+180E, which PCRE2's \s (UCP) matches but the
 * `regex` module's \s does not (the two \s sets differ in that code point only). */
static const char split_pattern[] =
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|(?:[^\\s\\p{L}\\p{N}]|\\x{180E})+";

struct clip_bpe {
    int n_vocab, n_merges, sot, eot;
    char **piece;                 /* id -> string (NULL for ids a vocab.json leaves out) */
    char *pool;                   /* the strings */
    tx_strmap map;                /* string -> id (last duplicate wins, as the reference's dict) */
    int32_t byte_id[256];         /* byte -> its symbol id */
    int32_t byte_end_id[256];     /* byte -> its symbol + "</w>" id */
    uint16_t byte_of_cp[512];     /* byte-unicode code point -> byte (0xFFFF: none) */
    int32_t *merge_a, *merge_b;   /* per rank */
    /* pair table: (a,b) -> rank, result id; open addressing */
    uint64_t *pkey;
    int32_t *prank, *pres;
    size_t pmask;
    int use_heap;
    pcre2_code *re;
};

/* ------------------------------------------------------------------ bytes_to_unicode */

/* order[k] = the byte whose symbol has id k; cp[k] = the symbol's code point. */
static void byte_unicode_order(int order[256], uint32_t cp[256]) {
    int seen[256] = {0}, k = 0;
    for (int b = '!'; b <= '~'; b++) order[k] = b, cp[k] = (uint32_t)b, seen[b] = 1, k++;
    for (int b = 0xA1; b <= 0xAC; b++) order[k] = b, cp[k] = (uint32_t)b, seen[b] = 1, k++;
    for (int b = 0xAE; b <= 0xFF; b++) order[k] = b, cp[k] = (uint32_t)b, seen[b] = 1, k++;
    int extra = 0;
    for (int b = 0; b < 256; b++)
        if (!seen[b]) order[k] = b, cp[k] = (uint32_t)(256 + extra++), k++;
}

/* ------------------------------------------------------------------ pair table */

static inline size_t pair_slot(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 20) & mask;
}

static void pair_put(clip_bpe *t, int32_t a, int32_t b, int32_t rank, int32_t res) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = pair_slot(key, t->pmask);
    while (t->pkey[i] != UINT64_MAX && t->pkey[i] != key) i = (i + 1) & t->pmask;
    t->pkey[i] = key;
    t->prank[i] = rank;
    t->pres[i] = res;
}

/* Rank of pair (a,b) or INT32_MAX; *res gets the merged id. */
static inline int32_t pair_get(const clip_bpe *t, int32_t a, int32_t b, int32_t *res) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = pair_slot(key, t->pmask);
    for (;;) {
        uint64_t k = t->pkey[i];
        if (k == key) {
            *res = t->pres[i];
            return t->prank[i];
        }
        if (k == UINT64_MAX) {
            *res = -1;
            return INT32_MAX;
        }
        i = (i + 1) & t->pmask;
    }
}

/* ------------------------------------------------------------------ construction */

void clip_bpe_free(clip_bpe *t) {
    if (!t) return;
    free(t->piece);
    free(t->pool);
    tx_strmap_free(&t->map);
    free(t->merge_a);
    free(t->merge_b);
    free(t->pkey);
    free(t->prank);
    free(t->pres);
    if (t->re) pcre2_code_free(t->re);
    free(t);
}

static pcre2_code *compile_split_regex(void) {
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)split_pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &errcode, &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        cg_error_set(CG_ERR_STATE, "CLIP split regex: %s at offset %zu", (const char *)msg, (size_t)erroff);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* falls back to the interpreter if unavailable */
    return re;
}

typedef struct {
    const char *a, *b;   /* symbol strings (NUL-terminated in the file buffer) */
    int line;
} merge_text;

/* Parse the merges text: skip the header line, take up to CLIP_BPE_MAX_MERGES "A B" lines.
 * Modifies buf (NUL-terminates the symbols). */
static int parse_merges(char *buf, size_t len, const char *path, merge_text **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!tx_utf8_valid(buf, len)) return cg_error_set(CG_ERR_FORMAT, "%s: not UTF-8 text", path);
    char *p = buf, *end = buf + len;
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) return cg_error_set(CG_ERR_FORMAT, "%s: no merges after the header line", path);
    p = nl + 1;
    int cap = 1024, n = 0, line = 1;
    merge_text *m = cg_xmalloc((size_t)cap * sizeof *m);
    while (p < end && n < CLIP_BPE_MAX_MERGES) {
        line++;
        nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        char *q = p;
        char *f[3] = {0};
        int nf = 0;
        while (q < le) {
            while (q < le && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\v' || *q == '\f')) q++;
            if (q >= le) break;
            char *s = q;
            while (q < le && !(*q == ' ' || *q == '\t' || *q == '\r' || *q == '\v' || *q == '\f')) q++;
            if (nf < 3) f[nf] = s;
            nf++;
            if (q < le) *q++ = 0;
        }
        *le = 0;   /* also terminates a symbol that ran to the end of the line */
        if (nf == 0) {
            /* blank: fine only as the end of the file */
            char *r = le + (nl ? 1 : 0);
            while (r < end && (*r == '\n' || *r == '\r' || *r == ' ' || *r == '\t')) r++;
            if (r >= end) break;
            free(m);
            return cg_error_set(CG_ERR_FORMAT, "%s:%d: empty line inside the merges", path, line);
        }
        if (nf != 2) {
            free(m);
            return cg_error_set(CG_ERR_FORMAT, "%s:%d: expected a merge \"A B\" (two symbols), found %d field%s",
                                path, line, nf, nf == 1 ? "" : "s");
        }
        if (n == cap) m = cg_xrealloc(m, (size_t)(cap *= 2) * sizeof *m);
        m[n].a = f[0];
        m[n].b = f[1];
        m[n].line = line;
        n++;
        if (!nl) break;
        p = nl + 1;
    }
    if (n == 0) {
        free(m);
        return cg_error_set(CG_ERR_FORMAT, "%s: no merges after the header line", path);
    }
    *out = m;
    *n_out = n;
    return CG_OK;
}

static char *pool_add(char *pool, size_t *used, const char *s, size_t n) {
    char *dst = pool + *used;
    memcpy(dst, s, n);
    dst[n] = 0;
    *used += n + 1;
    return dst;
}

/* Shared tail of both loaders: byte symbols, pair table, heap eligibility, regex.
 * Expects piece[], map, n_vocab, sot, eot filled, and merges resolved to ids in ma/mb. */
static int finish(clip_bpe *t, const char *what) {
    int order[256];
    uint32_t cps[256];
    byte_unicode_order(order, cps);
    for (int i = 0; i < 512; i++) t->byte_of_cp[i] = 0xFFFF;
    for (int k = 0; k < 256; k++) {
        char sym[16];
        int n = tx_utf8_put(cps[k], sym);
        memcpy(sym + n, EOW_STR, sizeof EOW_STR);
        int32_t id = tx_strmap_get(&t->map, sym, (size_t)n);
        int32_t idw = tx_strmap_get(&t->map, sym, (size_t)n + 4);
        if (id < 0 || idw < 0) {
            if (id < 0) sym[n] = 0;
            return cg_error_set(CG_ERR_FORMAT, "%s: the vocabulary lacks the byte symbol \"%s\"", what, sym);
        }
        t->byte_id[order[k]] = id;
        t->byte_end_id[order[k]] = idw;
        t->byte_of_cp[cps[k]] = (uint16_t)order[k];
    }
    size_t cap = 16;
    while (cap < (size_t)t->n_merges * 2 + 16) cap <<= 1;
    t->pmask = cap - 1;
    t->pkey = cg_xmalloc(cap * sizeof *t->pkey);
    memset(t->pkey, 0xFF, cap * sizeof *t->pkey);
    t->prank = cg_xmalloc(cap * sizeof *t->prank);
    t->pres = cg_xmalloc(cap * sizeof *t->pres);
    /* created[id]: first merge producing id; -1 for byte symbols; INT_MAX if never produced */
    int32_t *created = cg_xmalloc((size_t)t->n_vocab * sizeof *created);
    for (int i = 0; i < t->n_vocab; i++) created[i] = INT32_MAX;
    for (int b = 0; b < 256; b++) created[t->byte_id[b]] = created[t->byte_end_id[b]] = -1;
    int heap_ok = 1;
    for (int r = 0; r < t->n_merges; r++) {
        char *res_str;
        int32_t res;
        {
            const char *a = t->piece[t->merge_a[r]], *b = t->piece[t->merge_b[r]];
            size_t la = strlen(a), lb = strlen(b);
            res_str = cg_xmalloc(la + lb + 1);
            memcpy(res_str, a, la);
            memcpy(res_str + la, b, lb + 1);
            res = tx_strmap_get(&t->map, res_str, la + lb);
        }
        if (res < 0) {
            int rc = cg_error_set(CG_ERR_FORMAT, "%s: merge %d gives \"%s\", which the vocabulary lacks", what, r + 1, res_str);
            free(res_str);
            free(created);
            return rc;
        }
        free(res_str);
        int32_t old;
        if (pair_get(t, t->merge_a[r], t->merge_b[r], &old) != INT32_MAX) heap_ok = 0;   /* repeated pair */
        pair_put(t, t->merge_a[r], t->merge_b[r], r, res);
        if (created[t->merge_a[r]] >= r || created[t->merge_b[r]] >= r) heap_ok = 0;
        if (created[res] != INT32_MAX) heap_ok = 0;   /* two merges give the same token */
        else created[res] = r;
    }
    free(created);
    t->use_heap = heap_ok;
    t->re = compile_split_regex();
    return t->re ? CG_OK : CG_ERR_STATE;
}

int clip_bpe_load_merges(const char *path, clip_bpe **out) {
    *out = NULL;
    char *buf;
    size_t len;
    int rc = tx_read_file_gz(path, &buf, &len);
    if (rc) return rc;
    merge_text *mt;
    int nm;
    rc = parse_merges(buf, len, path, &mt, &nm);
    if (rc) {
        free(buf);
        return rc;
    }
    clip_bpe *t = cg_xcalloc(1, sizeof *t);
    t->n_merges = nm;
    t->n_vocab = 512 + nm + 2;
    t->piece = cg_xcalloc((size_t)t->n_vocab, sizeof *t->piece);
    /* pool: byte symbols (<= 2 bytes) x2 with </w>, merges a+b, specials */
    size_t pool_cap = 256 * (3 + 7) + sizeof SOT_STR + sizeof EOT_STR;
    for (int i = 0; i < nm; i++) pool_cap += strlen(mt[i].a) + strlen(mt[i].b) + 1;
    t->pool = cg_xmalloc(pool_cap);
    size_t used = 0;
    int order[256];
    uint32_t cps[256];
    byte_unicode_order(order, cps);
    for (int k = 0; k < 256; k++) {
        char sym[8];
        int n = tx_utf8_put(cps[k], sym);
        memcpy(sym + n, EOW_STR, 4);
        t->piece[k] = pool_add(t->pool, &used, sym, (size_t)n);
        t->piece[256 + k] = pool_add(t->pool, &used, sym, (size_t)n + 4);
    }
    for (int i = 0; i < nm; i++) {
        size_t la = strlen(mt[i].a), lb = strlen(mt[i].b);
        char *dst = t->pool + used;
        memcpy(dst, mt[i].a, la);
        memcpy(dst + la, mt[i].b, lb);
        dst[la + lb] = 0;
        used += la + lb + 1;
        t->piece[512 + i] = dst;
    }
    t->sot = 512 + nm;
    t->eot = 513 + nm;
    t->piece[t->sot] = pool_add(t->pool, &used, SOT_STR, strlen(SOT_STR));
    t->piece[t->eot] = pool_add(t->pool, &used, EOT_STR, strlen(EOT_STR));
    tx_strmap_init(&t->map, (size_t)t->n_vocab);
    for (int i = 0; i < t->n_vocab; i++) tx_strmap_put(&t->map, t->piece[i], strlen(t->piece[i]), i);
    t->merge_a = cg_xmalloc((size_t)nm * sizeof *t->merge_a);
    t->merge_b = cg_xmalloc((size_t)nm * sizeof *t->merge_b);
    for (int i = 0; i < nm; i++) {
        t->merge_a[i] = tx_strmap_get(&t->map, mt[i].a, strlen(mt[i].a));
        t->merge_b[i] = tx_strmap_get(&t->map, mt[i].b, strlen(mt[i].b));
        if (t->merge_a[i] < 0 || t->merge_b[i] < 0) {
            rc = cg_error_set(CG_ERR_FORMAT, "%s:%d: symbol \"%s\" is neither a byte symbol nor made by a merge",
                              path, mt[i].line, t->merge_a[i] < 0 ? mt[i].a : mt[i].b);
            free(mt);
            free(buf);
            clip_bpe_free(t);
            return rc;
        }
    }
    free(mt);
    free(buf);
    rc = finish(t, path);
    if (rc) {
        clip_bpe_free(t);
        return rc;
    }
    *out = t;
    return CG_OK;
}

int clip_bpe_load_hf(const char *vocab_json, const char *merges_txt, clip_bpe **out) {
    *out = NULL;
    if (!vocab_json) return clip_bpe_load_merges(merges_txt, out);
    if (!merges_txt) return cg_error_set(CG_ERR_USAGE, "%s: a CLIP vocab.json needs its merges.txt", vocab_json);
    char *jbuf;
    size_t jlen;
    int rc = cg_file_read(vocab_json, &jbuf, &jlen);
    if (rc) return rc;
    cJSON *root = cJSON_ParseWithLength(jbuf, jlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        free(jbuf);
        return cg_error_set(CG_ERR_FORMAT, "%s: not a JSON object of token -> id", vocab_json);
    }
    int max_id = -1, count = 0;
    size_t pool_cap = 0;
    for (cJSON *e = root->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 10000000 ||
            e->valuedouble != (double)(int)e->valuedouble || !e->string) {
            rc = cg_error_set(CG_ERR_FORMAT, "%s: token \"%s\" has no valid id", vocab_json, e->string ? e->string : "?");
            cJSON_Delete(root);
            free(jbuf);
            return rc;
        }
        if (e->valueint > max_id) max_id = e->valueint;
        pool_cap += strlen(e->string) + 1;
        count++;
    }
    char *mbuf;
    size_t mlen;
    rc = tx_read_file_gz(merges_txt, &mbuf, &mlen);
    if (rc) {
        cJSON_Delete(root);
        free(jbuf);
        return rc;
    }
    merge_text *mt;
    int nm;
    rc = parse_merges(mbuf, mlen, merges_txt, &mt, &nm);
    if (rc) {
        cJSON_Delete(root);
        free(jbuf);
        free(mbuf);
        return rc;
    }
    clip_bpe *t = cg_xcalloc(1, sizeof *t);
    t->n_vocab = max_id + 1;
    t->n_merges = nm;
    t->piece = cg_xcalloc((size_t)t->n_vocab, sizeof *t->piece);
    t->pool = cg_xmalloc(pool_cap + 1);
    size_t used = 0;
    tx_strmap_init(&t->map, (size_t)count);
    for (cJSON *e = root->child; e; e = e->next) {
        char *s = pool_add(t->pool, &used, e->string, strlen(e->string));
        t->piece[e->valueint] = s;
        tx_strmap_put(&t->map, s, strlen(s), e->valueint);
    }
    cJSON_Delete(root);
    free(jbuf);
    t->sot = tx_strmap_get(&t->map, SOT_STR, strlen(SOT_STR));
    t->eot = tx_strmap_get(&t->map, EOT_STR, strlen(EOT_STR));
    t->merge_a = cg_xmalloc((size_t)nm * sizeof *t->merge_a);
    t->merge_b = cg_xmalloc((size_t)nm * sizeof *t->merge_b);
    if (t->sot < 0 || t->eot < 0) {
        rc = cg_error_set(CG_ERR_FORMAT, "%s: no %s token", vocab_json, t->sot < 0 ? SOT_STR : EOT_STR);
        goto fail;
    }
    for (int i = 0; i < nm; i++) {
        t->merge_a[i] = tx_strmap_get(&t->map, mt[i].a, strlen(mt[i].a));
        t->merge_b[i] = tx_strmap_get(&t->map, mt[i].b, strlen(mt[i].b));
        if (t->merge_a[i] < 0 || t->merge_b[i] < 0) {
            rc = cg_error_set(CG_ERR_FORMAT, "%s:%d: symbol \"%s\" is not in %s", merges_txt, mt[i].line,
                              t->merge_a[i] < 0 ? mt[i].a : mt[i].b, vocab_json);
            goto fail;
        }
    }
    free(mt);
    free(mbuf);
    rc = finish(t, vocab_json);
    if (rc) {
        clip_bpe_free(t);
        return rc;
    }
    *out = t;
    return CG_OK;
fail:
    free(mt);
    free(mbuf);
    clip_bpe_free(t);
    return rc;
}

int clip_bpe_vocab_size(const clip_bpe *t) { return t->n_vocab; }
int clip_bpe_n_merges(const clip_bpe *t) { return t->n_merges; }
int clip_bpe_sot(const clip_bpe *t) { return t->sot; }
int clip_bpe_eot(const clip_bpe *t) { return t->eot; }
void clip_bpe_force_reference_merge(clip_bpe *t, int on) {
    if (on) t->use_heap = 0;
}
int clip_bpe_uses_heap(const clip_bpe *t) { return t->use_heap; }

const char *clip_bpe_piece(const clip_bpe *t, int id) {
    return (id >= 0 && id < t->n_vocab) ? t->piece[id] : NULL;
}

char *clip_bpe_piece_text(const clip_bpe *t, int id, char *buf, size_t cap) {
    size_t k = 0;
    const char *s = clip_bpe_piece(t, id);
    if (cap == 0) return buf;
    if (s && (id == t->sot || id == t->eot)) {
        snprintf(buf, cap, "%s", s);
        return buf;
    }
    if (s) {
        size_t n = strlen(s);
        if (n >= 4 && memcmp(s + n - 4, EOW_STR, 4) == 0) n -= 4;
        uint32_t cps[64];
        size_t i = 0;
        while (i < n) {
            size_t chunk = n - i < 64 ? n - i : 64;
            /* decode whole characters only: back off to a lead byte */
            while (chunk < n - i && ((unsigned char)s[i + chunk] & 0xC0) == 0x80) chunk--;
            size_t nc = tx_utf8_decode(s + i, chunk, cps);
            for (size_t c = 0; c < nc && k + 1 < cap; c++) {
                uint32_t byte = cps[c] < 512 ? t->byte_of_cp[cps[c]] : 0xFFFF;
                buf[k++] = byte == 0xFFFF ? '?' : (char)byte;
            }
            i += chunk;
        }
    }
    buf[k] = 0;
    return buf;
}

/* ------------------------------------------------------------------ cleaning */

/* Clean cps[0..n) in place and into `low` (room for 2n): unescape twice (using tmp, room for n),
 * strip, collapse whitespace, lower. Returns the length of `low`. */
static size_t clean_cps(uint32_t *cps, size_t n, uint32_t *tmp, uint32_t *low) {
    for (int pass = 0; pass < 2; pass++) {
        size_t i = 0;
        while (i < n && cps[i] != '&') i++;
        if (i == n) break;
        size_t m = tx_html_unescape(cps, n, tmp);
        memcpy(cps, tmp, m * sizeof *cps);
        n = m;
    }
    /* str.strip() (str.isspace), then regex.sub(r"\s+", " ") with the `regex` module's \s, which
     * is str.isspace() without U+001C..U+001F; the final strip() then has nothing left to do
     * because both ends are already non-space. */
    size_t s = 0, e = n, k = 0;
    while (s < e && tx_py_isspace(cps[s])) s++;
    while (e > s && tx_py_isspace(cps[e - 1])) e--;
    int in_run = 0;
    for (size_t i = s; i < e; i++) {
        uint32_t c = cps[i];
        if (tx_py_isspace(c) && !(c >= 0x1C && c <= 0x1F)) {
            if (!in_run) cps[k++] = ' ';
            in_run = 1;
            continue;
        }
        in_run = 0;
        cps[k++] = c;
    }
    return tx_py_lower(cps, k, low);
}

char *clip_bpe_clean(const char *text, size_t len) {
    uint32_t *a = cg_xmalloc((len + 1) * sizeof *a), *b = cg_xmalloc((len + 1) * sizeof *b);
    uint32_t *low = cg_xmalloc((2 * len + 1) * sizeof *low);
    size_t n = tx_utf8_decode(text, len, a);
    size_t m = clean_cps(a, n, b, low);
    char *out = cg_xmalloc(4 * m + 1);
    size_t k = tx_utf8_encode(low, m, out);
    out[k] = 0;
    free(a);
    free(b);
    free(low);
    return out;
}

int clip_bpe_split(const clip_bpe *t, const char *clean, size_t len,
                   int (*fn)(const char *piece, size_t n, void *ctx), void *ctx) {
    pcre2_code *own = NULL;
    const pcre2_code *re = t ? t->re : NULL;
    if (!re) {
        re = own = compile_split_regex();
        if (!re) return CG_ERR_STATE;
    }
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) cg_xmalloc((size_t)-1);   /* out of memory: reported and fatal */
    int rc = CG_OK;
    size_t off = 0;
    while (off < len) {
        int r = pcre2_match(re, (PCRE2_SPTR)clean, len, off, PCRE2_NO_UTF_CHECK, md, NULL);
        if (r == PCRE2_ERROR_NOMATCH) break;
        if (r < 0) {
            rc = cg_error_set(CG_ERR_STATE, "CLIP split regex failed (PCRE2 error %d)", r);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] <= ov[0]) break;   /* cannot happen: every alternative consumes a character */
        if (fn(clean + ov[0], ov[1] - ov[0], ctx)) break;
        off = ov[1];
    }
    pcre2_match_data_free(md);
    if (own) pcre2_code_free(own);
    return rc;
}

/* ------------------------------------------------------------------ merging */

typedef struct {
    int32_t rank, pos;
} heap_ent;

static inline int ent_less(heap_ent x, heap_ent y) {
    return x.rank < y.rank || (x.rank == y.rank && x.pos < y.pos);
}

static void heap_push(heap_ent *h, int *n, heap_ent e) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!ent_less(e, h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static heap_ent heap_pop(heap_ent *h, int *n) {
    heap_ent top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && ent_less(h[c + 1], h[c])) c++;
        if (!ent_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

/* Merge symbols sym[0..n) with a heap of (rank, position): valid when every merge's inputs exist
 * before it (so merging never creates a pair of lower rank), which makes "lowest rank first,
 * leftmost first" the same as the reference's "every occurrence of the lowest-ranked pair, left
 * to right". Result: the surviving symbols in order, written back to sym; returns their count. */
static int merge_heap(const clip_bpe *t, int32_t *sym, int n, int32_t *nxt, int32_t *prv, heap_ent *heap) {
    int hn = 0;
    for (int i = 0; i < n; i++) {
        nxt[i] = i + 1 < n ? i + 1 : -1;
        prv[i] = i - 1;
    }
    for (int i = 0; i + 1 < n; i++) {
        int32_t res, r = pair_get(t, sym[i], sym[i + 1], &res);
        if (r != INT32_MAX) heap_push(heap, &hn, (heap_ent){r, i});
    }
    while (hn > 0) {
        heap_ent e = heap_pop(heap, &hn);
        int i = e.pos, j = nxt[i];
        if (sym[i] < 0 || j < 0) continue;   /* consumed or now last */
        int32_t res, r = pair_get(t, sym[i], sym[j], &res);
        if (r != e.rank) continue;           /* stale: the pair here changed */
        sym[i] = res;
        sym[j] = -1;
        nxt[i] = nxt[j];
        if (nxt[j] >= 0) prv[nxt[j]] = i;
        if (prv[i] >= 0) {
            int32_t res2, r2 = pair_get(t, sym[prv[i]], sym[i], &res2);
            if (r2 != INT32_MAX) heap_push(heap, &hn, (heap_ent){r2, prv[i]});
        }
        if (nxt[i] >= 0) {
            int32_t res2, r2 = pair_get(t, sym[i], sym[nxt[i]], &res2);
            if (r2 != INT32_MAX) heap_push(heap, &hn, (heap_ent){r2, i});
        }
    }
    int k = 0;
    for (int i = 0; i >= 0; i = nxt[i]) sym[k++] = sym[i];
    return k;
}

/* The reference loop: find the lowest-ranked adjacent pair, merge all its occurrences left to
 * right, repeat. Quadratic in the worst case; used when the merge table is not heap-eligible. */
static int merge_reference(const clip_bpe *t, int32_t *sym, int n) {
    while (n > 1) {
        int32_t best = INT32_MAX, best_res = -1, a = -1, b = -1;
        for (int i = 0; i + 1 < n; i++) {
            int32_t res, r = pair_get(t, sym[i], sym[i + 1], &res);
            if (r < best) best = r, best_res = res, a = sym[i], b = sym[i + 1];
        }
        if (best == INT32_MAX) break;
        int w = 0;
        for (int i = 0; i < n;) {
            if (i + 1 < n && sym[i] == a && sym[i + 1] == b) {
                sym[w++] = best_res;
                i += 2;
            } else {
                sym[w++] = sym[i++];
            }
        }
        n = w;
    }
    return n;
}

/* ------------------------------------------------------------------ encode */

typedef struct {
    const clip_bpe *t;
    int32_t *ids;
    int max_ids, n, more;
    tx_scratch *ws;
} enc_state;

static int encode_piece(const char *p, size_t n, void *ctx) {
    enc_state *st = ctx;
    const clip_bpe *t = st->t;
    if (st->n >= st->max_ids) {   /* a further token exists */
        st->more = 1;
        return 1;
    }
    if (n == sizeof SOT_STR - 1 && memcmp(p, SOT_STR, n) == 0) {
        st->ids[st->n++] = t->sot;
        return 0;
    }
    if (n == sizeof EOT_STR - 1 && memcmp(p, EOT_STR, n) == 0) {
        st->ids[st->n++] = t->eot;
        return 0;
    }
    if (n > INT_MAX / 4) n = INT_MAX / 4;   /* not reachable for real text */
    int m = (int)n;
    tx_scratch_reserve(st->ws, (size_t)m * (3 * sizeof(int32_t) + 3 * sizeof(heap_ent)) + 128);
    int32_t *sym = tx_scratch_take(st->ws, (size_t)m * sizeof *sym);
    const unsigned char *u = (const unsigned char *)p;
    for (int i = 0; i < m - 1; i++) sym[i] = t->byte_id[u[i]];
    sym[m - 1] = t->byte_end_id[u[m - 1]];
    int k;
    if (m == 1) {
        k = 1;
    } else if (t->use_heap) {
        int32_t *nxt = tx_scratch_take(st->ws, (size_t)m * sizeof *nxt);
        int32_t *prv = tx_scratch_take(st->ws, (size_t)m * sizeof *prv);
        heap_ent *heap = tx_scratch_take(st->ws, (size_t)m * 3 * sizeof *heap);   /* n-1 + 2 per merge */
        k = merge_heap(t, sym, m, nxt, prv, heap);
    } else {
        k = merge_reference(t, sym, m);
    }
    for (int i = 0; i < k; i++) {
        if (st->n >= st->max_ids) {
            st->more = 1;
            return 1;
        }
        st->ids[st->n++] = sym[i];
    }
    return 0;
}

int clip_bpe_encode(const clip_bpe *t, const char *text, size_t len, int32_t *ids, int max_ids, int *more) {
    if (more) *more = 0;
    if (max_ids < 0) max_ids = 0;
    unsigned char stack_a[16384], stack_b[8192];
    tx_scratch wa, wb;
    tx_scratch_init(&wa, stack_a, sizeof stack_a);
    tx_scratch_init(&wb, stack_b, sizeof stack_b);
    /* cps (n) + tmp (n) + lower (2n) code points, then UTF-8 of the lowered text (8n bytes) */
    tx_scratch_reserve(&wa, len * (4 * sizeof(uint32_t) + 8) + 128);
    uint32_t *cps = tx_scratch_take(&wa, (len + 1) * sizeof *cps);
    uint32_t *tmp = tx_scratch_take(&wa, (len + 1) * sizeof *tmp);
    uint32_t *low = tx_scratch_take(&wa, (2 * len + 1) * sizeof *low);
    size_t n = tx_utf8_decode(text, len, cps);
    size_t m = clean_cps(cps, n, tmp, low);
    char *u8 = tx_scratch_take(&wa, 4 * m + 1);
    size_t ulen = tx_utf8_encode(low, m, u8);
    enc_state st = {t, ids, max_ids, 0, 0, &wb};
    clip_bpe_split(t, u8, ulen, encode_piece, &st);
    tx_scratch_free(&wa);
    tx_scratch_free(&wb);
    if (more) *more = st.more;
    return st.n;
}

/* ------------------------------------------------------------------ saving */

int clip_bpe_save_merges(const clip_bpe *t, const char *path) {
    size_t cap = 64;
    for (int r = 0; r < t->n_merges; r++) cap += strlen(t->piece[t->merge_a[r]]) + strlen(t->piece[t->merge_b[r]]) + 2;
    char *buf = cg_xmalloc(cap);
    size_t k = (size_t)snprintf(buf, cap, "#version: 0.2\n");
    for (int r = 0; r < t->n_merges; r++)
        k += (size_t)snprintf(buf + k, cap - k, "%s %s\n", t->piece[t->merge_a[r]], t->piece[t->merge_b[r]]);
    int rc = tx_write_text_maybe_gz(path, buf, k);
    free(buf);
    return rc;
}
