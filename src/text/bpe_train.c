/* bpe_train.c — learning merges: pair counts kept up to date word by word. See bpe_train.h. */
#include "text/bpe_train.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

void tx_bpe_init(tx_bpe_state *s) {
    memset(s, 0, sizeof *s);
    tx_strmap_init(&s->tok_map, 1024);
}

void tx_bpe_free(tx_bpe_state *s) {
    for (size_t i = 0; i < s->n_words; i++) free(s->syms[i]);
    free(s->syms);
    free(s->len);
    free(s->count);
    for (int i = 0; i < s->n_tok; i++) free(s->tok[i]);
    free(s->tok);
    tx_strmap_free(&s->tok_map);
    free(s->merge_a);
    free(s->merge_b);
    memset(s, 0, sizeof *s);
}

int32_t tx_bpe_add_token(tx_bpe_state *s, const char *str, size_t n) {
    int32_t id = tx_strmap_get(&s->tok_map, str, n);
    if (id >= 0) return id;
    if (s->n_tok == s->cap_tok) {
        s->cap_tok = s->cap_tok ? 2 * s->cap_tok : 1024;
        s->tok = cg_xrealloc(s->tok, (size_t)s->cap_tok * sizeof *s->tok);
    }
    char *copy = cg_xmalloc(n + 1);
    memcpy(copy, str, n);
    copy[n] = 0;
    s->tok[s->n_tok] = copy;
    tx_strmap_put(&s->tok_map, copy, n, s->n_tok);
    return s->n_tok++;
}

void tx_bpe_add_word(tx_bpe_state *s, const int32_t *ids, int n, int64_t count) {
    if (s->n_words == s->cap_words) {
        s->cap_words = s->cap_words ? 2 * s->cap_words : 1024;
        s->syms = cg_xrealloc(s->syms, s->cap_words * sizeof *s->syms);
        s->len = cg_xrealloc(s->len, s->cap_words * sizeof *s->len);
        s->count = cg_xrealloc(s->count, s->cap_words * sizeof *s->count);
    }
    s->syms[s->n_words] = cg_xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    memcpy(s->syms[s->n_words], ids, (size_t)n * sizeof(int32_t));
    s->len[s->n_words] = n;
    s->count[s->n_words] = count;
    s->n_words++;
}

/* ------------------------------------------------------------------ pair counts */

typedef struct {
    uint64_t *key;     /* UINT64_MAX: empty */
    int64_t *cnt;      /* -1: banned */
    size_t mask, used;
} pair_counts;

static void pc_init(pair_counts *p, size_t cap) {
    size_t c = 1024;
    while (c < cap * 2) c <<= 1;
    p->mask = c - 1;
    p->used = 0;
    p->key = cg_xmalloc(c * sizeof *p->key);
    memset(p->key, 0xFF, c * sizeof *p->key);
    p->cnt = cg_xcalloc(c, sizeof *p->cnt);
}

static void pc_free(pair_counts *p) {
    free(p->key);
    free(p->cnt);
}

static size_t pc_slot(const pair_counts *p, uint64_t k) {
    size_t i = (size_t)((k * 0x9E3779B97F4A7C15ULL) >> 17) & p->mask;
    while (p->key[i] != UINT64_MAX && p->key[i] != k) i = (i + 1) & p->mask;
    return i;
}

static void pc_add(pair_counts *p, int32_t a, int32_t b, int64_t d) {
    if ((p->used + 1) * 2 > p->mask + 1) {   /* grow */
        pair_counts q;
        pc_init(&q, p->mask + 1);
        for (size_t i = 0; i <= p->mask; i++)
            if (p->key[i] != UINT64_MAX) {
                size_t j = pc_slot(&q, p->key[i]);
                q.key[j] = p->key[i];
                q.cnt[j] = p->cnt[i];
                q.used++;
            }
        pc_free(p);
        *p = q;
    }
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = pc_slot(p, k);
    if (p->key[i] == UINT64_MAX) {
        p->key[i] = k;
        p->cnt[i] = 0;
        p->used++;
    }
    if (p->cnt[i] >= 0) p->cnt[i] += d;
}

static void word_pairs(pair_counts *p, const int32_t *w, int n, int64_t d) {
    for (int i = 0; i + 1 < n; i++) pc_add(p, w[i], w[i + 1], d);
}

/* ------------------------------------------------------------------ training */

static int better(const tx_bpe_state *s, int64_t c1, uint64_t k1, int64_t c2, uint64_t k2) {
    if (c1 != c2) return c1 > c2;
    int cmp = strcmp(s->tok[(int32_t)(k1 >> 32)], s->tok[(int32_t)(k2 >> 32)]);
    if (cmp) return cmp < 0;
    return strcmp(s->tok[(int32_t)(uint32_t)k1], s->tok[(int32_t)(uint32_t)k2]) < 0;
}

void tx_bpe_train(tx_bpe_state *s, int max_tokens, int wordpiece) {
    pair_counts pc;
    pc_init(&pc, 4096);
    for (size_t w = 0; w < s->n_words; w++) word_pairs(&pc, s->syms[w], s->len[w], s->count[w]);
    int cap_m = 0;
    while (s->n_tok < max_tokens) {
        size_t best = (size_t)-1;
        for (size_t i = 0; i <= pc.mask; i++) {
            if (pc.key[i] == UINT64_MAX || pc.cnt[i] <= 0) continue;
            if (best == (size_t)-1 || better(s, pc.cnt[i], pc.key[i], pc.cnt[best], pc.key[best])) best = i;
        }
        if (best == (size_t)-1) break;
        int32_t a = (int32_t)(pc.key[best] >> 32), b = (int32_t)(uint32_t)pc.key[best];
        const char *sa = s->tok[a], *sb = s->tok[b];
        if (wordpiece && sb[0] == '#' && sb[1] == '#') sb += 2;
        size_t la = strlen(sa), lb = strlen(sb);
        char *merged = cg_xmalloc(la + lb + 1);
        memcpy(merged, sa, la);
        memcpy(merged + la, sb, lb + 1);
        if (tx_strmap_get(&s->tok_map, merged, la + lb) >= 0) {
            pc.cnt[best] = -1;   /* would duplicate a token: never merge this pair */
            free(merged);
            continue;
        }
        int32_t id = tx_bpe_add_token(s, merged, la + lb);
        free(merged);
        if (s->n_merges == cap_m) {
            cap_m = cap_m ? 2 * cap_m : 1024;
            s->merge_a = cg_xrealloc(s->merge_a, (size_t)cap_m * sizeof *s->merge_a);
            s->merge_b = cg_xrealloc(s->merge_b, (size_t)cap_m * sizeof *s->merge_b);
        }
        s->merge_a[s->n_merges] = a;
        s->merge_b[s->n_merges] = b;
        s->n_merges++;
        for (size_t w = 0; w < s->n_words; w++) {
            int32_t *x = s->syms[w];
            int n = s->len[w], hit = 0;
            for (int i = 0; i + 1 < n; i++)
                if (x[i] == a && x[i + 1] == b) {
                    hit = 1;
                    break;
                }
            if (!hit) continue;
            word_pairs(&pc, x, n, -s->count[w]);
            int k = 0;
            for (int i = 0; i < n;) {
                if (i + 1 < n && x[i] == a && x[i + 1] == b) {
                    x[k++] = id;
                    i += 2;
                } else {
                    x[k++] = x[i++];
                }
            }
            s->len[w] = k;
            word_pairs(&pc, x, k, s->count[w]);
        }
    }
    pc_free(&pc);
}
