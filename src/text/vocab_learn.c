/* vocab_learn.c — from-scratch vocabularies: CLIP byte-level BPE merges and BERT WordPiece vocab.txt,
 * learned from training captions and written in the formats the loaders read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "text/bpe_train.h"
#include "text/clip_bpe.h"
#include "text/text_util.h"
#include "text/wordpiece.h"

/* ------------------------------------------------------------------ word counting */

typedef struct {
    tx_strmap map;     /* word -> index */
    char **word;
    int64_t *count;
    size_t n, cap;
} word_counts;

static void wc_init(word_counts *w) {
    memset(w, 0, sizeof *w);
    tx_strmap_init(&w->map, 4096);
}

static void wc_free(word_counts *w) {
    for (size_t i = 0; i < w->n; i++) free(w->word[i]);
    free(w->word);
    free(w->count);
    tx_strmap_free(&w->map);
}

static int wc_add(const char *s, size_t n, void *ctx) {
    word_counts *w = ctx;
    int32_t i = tx_strmap_get(&w->map, s, n);
    if (i >= 0) {
        w->count[i]++;
        return 0;
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 1024;
        w->word = cg_xrealloc(w->word, w->cap * sizeof *w->word);
        w->count = cg_xrealloc(w->count, w->cap * sizeof *w->count);
    }
    char *copy = cg_xmalloc(n + 1);
    memcpy(copy, s, n);
    copy[n] = 0;
    w->word[w->n] = copy;
    w->count[w->n] = 1;
    tx_strmap_put(&w->map, copy, n, (int32_t)w->n);
    w->n++;
    return 0;
}

static int wc_add_clip_piece(const char *s, size_t n, void *ctx) {
    if ((n == 15 && memcmp(s, "<|startoftext|>", 15) == 0) || (n == 13 && memcmp(s, "<|endoftext|>", 13) == 0))
        return 0;   /* the specials are not learned */
    return wc_add(s, n, ctx);
}

/* ------------------------------------------------------------------ CLIP BPE */

/* Same order as clip_bpe.c: byte b's symbol id and code point. */
static void byte_symbols(int32_t byte_id[256], uint32_t cp_of_id[256]) {
    int seen[256] = {0}, k = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        if (printable) seen[b] = 1;
    }
    for (int b = 0; b < 256; b++)
        if (seen[b]) byte_id[b] = k, cp_of_id[k] = (uint32_t)b, k++;
    int extra = 0;
    for (int b = 0; b < 256; b++)
        if (!seen[b]) byte_id[b] = k, cp_of_id[k] = (uint32_t)(256 + extra++), k++;
}

int clip_bpe_learn(const char *const *texts, size_t n_texts, int vocab_size, const char *path) {
    if (vocab_size < 514 || vocab_size > 512 + CLIP_BPE_MAX_MERGES + 2)
        return cg_error_set(CG_ERR_USAGE, "CLIP BPE vocabulary size %d: must be between 514 (bytes, no merges) and %d",
                            vocab_size, 512 + CLIP_BPE_MAX_MERGES + 2);
    word_counts wc;
    wc_init(&wc);
    int rc = CG_OK;
    for (size_t i = 0; i < n_texts && !rc; i++) {
        if (!texts[i]) continue;
        char *clean = clip_bpe_clean(texts[i], strlen(texts[i]));
        rc = clip_bpe_split(NULL, clean, strlen(clean), wc_add_clip_piece, &wc);
        free(clean);
    }
    if (rc) {
        wc_free(&wc);
        return rc;
    }
    tx_bpe_state s;
    tx_bpe_init(&s);
    int32_t byte_id[256];
    uint32_t cp_of_id[256];
    byte_symbols(byte_id, cp_of_id);
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < 256; k++) {
            char sym[16];
            int n = tx_utf8_put(cp_of_id[k], sym);
            if (pass) memcpy(sym + n, "</w>", 4), n += 4;
            tx_bpe_add_token(&s, sym, (size_t)n);
        }
    int32_t *ids = NULL;
    size_t cap = 0;
    for (size_t w = 0; w < wc.n; w++) {
        size_t n = strlen(wc.word[w]);
        if (n > cap) ids = cg_xrealloc(ids, (cap = n) * sizeof *ids);
        const unsigned char *u = (const unsigned char *)wc.word[w];
        for (size_t i = 0; i < n; i++) ids[i] = byte_id[u[i]] + (i + 1 == n ? 256 : 0);
        tx_bpe_add_word(&s, ids, (int)n, wc.count[w]);
    }
    free(ids);
    wc_free(&wc);
    tx_bpe_train(&s, vocab_size - 2, 0);
    size_t bytes = 32;
    for (int m = 0; m < s.n_merges; m++) bytes += strlen(s.tok[s.merge_a[m]]) + strlen(s.tok[s.merge_b[m]]) + 2;
    char *buf = cg_xmalloc(bytes);
    size_t k = (size_t)snprintf(buf, bytes, "#version: 0.2\n");
    for (int m = 0; m < s.n_merges; m++)
        k += (size_t)snprintf(buf + k, bytes - k, "%s %s\n", s.tok[s.merge_a[m]], s.tok[s.merge_b[m]]);
    if (s.n_merges == 0) {
        rc = cg_error_set(CG_ERR_USAGE, "%s: the captions give no merge to learn (empty corpus?)", path);
    } else {
        if (s.n_merges + 514 < vocab_size)
            cg_log_warn("CLIP BPE: the captions support only %d merges: vocabulary of %d instead of %d",
                        s.n_merges, s.n_merges + 514, vocab_size);
        rc = tx_write_text_maybe_gz(path, buf, k);
    }
    free(buf);
    tx_bpe_free(&s);
    return rc;
}

/* ------------------------------------------------------------------ WordPiece */

typedef struct {
    uint32_t cp;
    int cont;        /* appears as "##c" */
    int64_t count;
} char_count;

static int cmp_char_count(const void *x, const void *y) {
    const char_count *a = x, *b = y;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    if (a->cp != b->cp) return a->cp < b->cp ? -1 : 1;
    return a->cont - b->cont;
}

static const char *const wp_specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
#define N_WP_SPECIALS 5

int wordpiece_learn(const char *const *texts, size_t n_texts, int vocab_size, int lower_case, const char *path) {
    if (vocab_size < N_WP_SPECIALS + 1)
        return cg_error_set(CG_ERR_USAGE, "WordPiece vocabulary size %d: needs more than the %d special tokens",
                            vocab_size, N_WP_SPECIALS);
    word_counts wc;
    wc_init(&wc);
    for (size_t i = 0; i < n_texts; i++)
        if (texts[i]) wordpiece_basic_tokens(texts[i], strlen(texts[i]), lower_case, wc_add, &wc);
    /* characters, as word-initial and as continuation */
    tx_strmap cmap;
    tx_strmap_init(&cmap, 4096);
    char_count *cc = NULL;
    size_t ncc = 0, capcc = 0;
    uint32_t *cps = NULL;
    size_t capcps = 0;
    char (*keys)[8] = NULL;   /* stable storage for map keys: cp bytes + cont flag */
    size_t capkeys = 0;
    for (size_t w = 0; w < wc.n; w++) {
        size_t n = strlen(wc.word[w]);
        if (n + 1 > capcps) cps = cg_xrealloc(cps, (capcps = n + 1) * sizeof *cps);
        size_t m = tx_utf8_decode(wc.word[w], n, cps);
        for (size_t i = 0; i < m; i++) {
            char key[8];
            int kl = tx_utf8_put(cps[i], key);
            key[kl++] = i ? '#' : '^';
            int32_t at = tx_strmap_get(&cmap, key, (size_t)kl);
            if (at < 0) {
                if (ncc == capcc) {
                    capcc = capcc ? 2 * capcc : 1024;
                    cc = cg_xrealloc(cc, capcc * sizeof *cc);
                }
                if (ncc == capkeys) {
                    /* keys move on realloc: rebuild the map over the new storage */
                    capkeys = capcc;
                    keys = cg_xrealloc(keys, capkeys * sizeof *keys);
                    tx_strmap_free(&cmap);
                    tx_strmap_init(&cmap, capkeys);
                    for (size_t j = 0; j < ncc; j++) {
                        size_t l = strlen(keys[j]);
                        tx_strmap_put(&cmap, keys[j], l, (int32_t)j);
                    }
                }
                memcpy(keys[ncc], key, (size_t)kl);
                keys[ncc][kl] = 0;
                tx_strmap_put(&cmap, keys[ncc], (size_t)kl, (int32_t)ncc);
                cc[ncc] = (char_count){cps[i], i ? 1 : 0, 0};
                at = (int32_t)ncc++;
            }
            cc[at].count += wc.count[w];
        }
    }
    free(cps);
    tx_strmap_free(&cmap);
    free(keys);
    if (ncc) qsort(cc, ncc, sizeof *cc, cmp_char_count);
    tx_bpe_state s;
    tx_bpe_init(&s);
    for (int i = 0; i < N_WP_SPECIALS; i++) tx_bpe_add_token(&s, wp_specials[i], strlen(wp_specials[i]));
    size_t room = (size_t)vocab_size - N_WP_SPECIALS;
    if (ncc > room)
        cg_log_warn("WordPiece: %zu distinct characters but room for %zu: the rarest become [UNK]", ncc, room);
    for (size_t i = 0; i < ncc && (size_t)s.n_tok < (size_t)vocab_size; i++) {
        char tok[16];
        int n = 0;
        if (cc[i].cont) tok[n++] = '#', tok[n++] = '#';
        n += tx_utf8_put(cc[i].cp, tok + n);
        tx_bpe_add_token(&s, tok, (size_t)n);
    }
    free(cc);
    /* words as pieces; words with a character left out cannot take part in merges */
    int32_t *ids = NULL;
    size_t capids = 0;
    uint32_t *wc_cps = NULL;
    size_t capw = 0;
    for (size_t w = 0; w < wc.n; w++) {
        size_t n = strlen(wc.word[w]);
        if (n + 1 > capw) wc_cps = cg_xrealloc(wc_cps, (capw = n + 1) * sizeof *wc_cps);
        if (n + 1 > capids) ids = cg_xrealloc(ids, (capids = n + 1) * sizeof *ids);
        size_t m = tx_utf8_decode(wc.word[w], n, wc_cps);
        if (m < 2) continue;   /* nothing to merge */
        int ok = 1;
        for (size_t i = 0; i < m && ok; i++) {
            char tok[16];
            int tl = 0;
            if (i) tok[tl++] = '#', tok[tl++] = '#';
            tl += tx_utf8_put(wc_cps[i], tok + tl);
            ids[i] = tx_strmap_get(&s.tok_map, tok, (size_t)tl);
            ok = ids[i] >= 0;
        }
        if (ok) tx_bpe_add_word(&s, ids, (int)m, wc.count[w]);
    }
    free(ids);
    free(wc_cps);
    wc_free(&wc);
    tx_bpe_train(&s, vocab_size, 1);
    size_t bytes = 16;
    for (int i = 0; i < s.n_tok; i++) bytes += strlen(s.tok[i]) + 1;
    char *buf = cg_xmalloc(bytes);
    size_t k = 0;
    for (int i = 0; i < s.n_tok; i++) {
        size_t l = strlen(s.tok[i]);
        memcpy(buf + k, s.tok[i], l);
        k += l;
        buf[k++] = '\n';
    }
    if (s.n_tok < vocab_size)
        cg_log_warn("WordPiece: the captions support %d tokens, fewer than the %d asked for", s.n_tok, vocab_size);
    int rc = tx_write_text_maybe_gz(path, buf, k);
    free(buf);
    tx_bpe_free(&s);
    return rc;
}
