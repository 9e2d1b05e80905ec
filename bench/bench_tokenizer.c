/* bench_tokenizer — tokenizer throughput (captions/s) on fixed caption corpora.
 *
 *   bench_tokenizer --clip-vocab GZ --bert-vocab TXT [--out DIR] [--n N] [--threads T]
 *
 * Corpora (deterministic, N captions each, written to DIR so the Python reference script reads
 * the very same lines — bench/tokenizer_ref.py):
 *   en_templates.txt  Fashion-MNIST-style English captions ("a photo of a sneaker.", ...)
 *   en_varied.txt     English sentences of 5-15 words drawn from the CLIP vocabulary's whole words,
 *                     with digits, punctuation, capitals and the odd HTML entity
 *   zh_templates.txt  Chinese Fashion-MNIST-style captions ("一张运动鞋的照片。", ...)
 *   zh_varied.txt     8-30 CJK characters from the BERT vocabulary with Latin words and punctuation
 * Each corpus is encoded into rows (77 for CLIP, 52 for WordPiece) on one thread, and with
 * text_tokenizer_encode_batch on T threads. The ids go to DIR/<corpus>.ids (int32 rows) so the
 * Python script can check it gets the same ones. Prints a table and writes DIR/bench_tokenizer.json.
 */
#include <cjson/cJSON.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fileio.h"
#include "core/log.h"
#include "text/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

typedef struct {
    char **s;
    size_t n;
} corpus;

static void corpus_free(corpus *c) {
    for (size_t i = 0; i < c->n; i++) free(c->s[i]);
    free(c->s);
}

static const char *en_classes[] = {"t-shirt/top", "trouser", "pullover", "dress", "coat",
                                   "sandal", "shirt", "sneaker", "bag", "ankle boot"};
static const char *en_templates[] = {"a photo of a %s.", "a blurry photo of a %s.", "a black and white photo of a %s.",
                                     "a low contrast photo of a %s.", "a high contrast photo of a %s.",
                                     "a bad photo of a %s.", "a good photo of a %s.", "a photo of a small %s.",
                                     "a photo of a big %s.", "a photo of the %s.", "a bright photo of the %s.",
                                     "a cropped photo of a %s.", "itap of a %s.", "a close-up photo of a %s."};
static const char *zh_classes[] = {"T恤/上衣", "裤子", "套头衫", "连衣裙", "外套", "凉鞋", "衬衫", "运动鞋", "包", "踝靴"};
static const char *zh_templates[] = {"一张%s的照片。", "一张模糊的%s的照片。", "一张黑白的%s照片。", "一张低对比度的%s的照片。",
                                     "这是一件%s。", "一张小%s的照片。", "一张大%s的照片。", "一张%s的特写照片。"};

static corpus templates(const char **cls, size_t nc, const char **tpl, size_t nt, size_t n) {
    corpus c = {cg_xmalloc(n * sizeof(char *)), n};
    for (size_t i = 0; i < n; i++) c.s[i] = cg_xasprintf(tpl[rnd((uint32_t)nt)], cls[rnd((uint32_t)nc)]);
    return c;
}

/* whole ASCII words of a vocabulary: CLIP pieces "word</w>" */
static char **clip_words(const text_tokenizer *t, size_t *n_out) {
    size_t cap = 1024, n = 0;
    char **w = cg_xmalloc(cap * sizeof *w);
    for (int id = 0; id < text_tokenizer_vocab_size(t); id++) {
        const char *p = text_tokenizer_piece(t, id);
        size_t l = p ? strlen(p) : 0;
        if (l < 7 || strcmp(p + l - 4, "</w>") != 0) continue;
        int ok = 1;
        for (size_t i = 0; i + 4 < l; i++) ok = ok && p[i] >= 'a' && p[i] <= 'z';
        if (!ok) continue;
        if (n == cap) w = cg_xrealloc(w, (cap *= 2) * sizeof *w);
        w[n] = cg_xmalloc(l - 3);
        memcpy(w[n], p, l - 4);
        w[n][l - 4] = 0;
        n++;
    }
    *n_out = n;
    return w;
}

static corpus en_varied(char **words, size_t nw, size_t n) {
    static const char *punct[] = {",", ".", "!", "?", ";", " -", "'s", " &amp;", "'"};
    corpus c = {cg_xmalloc(n * sizeof(char *)), n};
    char buf[1024];
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        int len = 5 + (int)rnd(11);
        for (int j = 0; j < len && k < 900; j++) {
            const char *w = words[rnd((uint32_t)nw)];
            if (j) buf[k++] = ' ';
            size_t l = strlen(w);
            memcpy(buf + k, w, l);
            if (rnd(8) == 0) buf[k] = (char)(buf[k] - 32);   /* Capitalised */
            k += l;
            if (rnd(6) == 0) k += (size_t)snprintf(buf + k, sizeof buf - k, "%s", punct[rnd(9)]);
            if (rnd(15) == 0) k += (size_t)snprintf(buf + k, sizeof buf - k, " %u", rnd(2025));
        }
        buf[k] = 0;
        c.s[i] = cg_xstrdup(buf);
    }
    return c;
}

static corpus zh_varied(const text_tokenizer *bert, size_t n) {
    /* CJK ideographs of the vocabulary */
    size_t cap = 4096, nc = 0;
    const char **chars = cg_xmalloc(cap * sizeof *chars);
    for (int id = 0; id < text_tokenizer_vocab_size(bert); id++) {
        const unsigned char *p = (const unsigned char *)text_tokenizer_piece(bert, id);
        if (!p || strlen((const char *)p) != 3 || p[0] < 0xE4 || p[0] > 0xE9) continue;
        if (nc == cap) chars = cg_xrealloc(chars, (cap *= 2) * sizeof *chars);
        chars[nc++] = (const char *)p;
    }
    static const char *extra[] = {"，", "。", "！", "（", "）", " iPhone ", " 2024", "年", " T恤", " Nike ", "、", "“", "”"};
    corpus c = {cg_xmalloc(n * sizeof(char *)), n};
    char buf[1024];
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        int len = 8 + (int)rnd(23);
        for (int j = 0; j < len && k < 900; j++) {
            const char *s = rnd(6) == 0 ? extra[rnd(13)] : chars[rnd((uint32_t)nc)];
            size_t l = strlen(s);
            memcpy(buf + k, s, l);
            k += l;
        }
        buf[k] = 0;
        c.s[i] = cg_xstrdup(buf);
    }
    free(chars);
    return c;
}

static int write_corpus(const char *dir, const char *name, const corpus *c) {
    size_t total = 0;
    for (size_t i = 0; i < c->n; i++) total += strlen(c->s[i]) + 1;
    char *buf = cg_xmalloc(total + 1), *p = buf;
    for (size_t i = 0; i < c->n; i++) p += sprintf(p, "%s\n", c->s[i]);
    char *path = cg_xasprintf("%s/%s.txt", dir, name);
    int rc = cg_file_write_atomic(path, buf, total);
    free(path);
    free(buf);
    return rc;
}

typedef struct {
    const char *name;
    double single, multi;
    size_t n;
    double tokens_per_caption;
} result;

static result run(const char *dir, const char *name, const text_tokenizer *t, const corpus *c, int threads) {
    int ctx = text_tokenizer_context(t);
    int32_t *ids = cg_xmalloc(c->n * (size_t)ctx * sizeof *ids);
    int32_t *lens = cg_xmalloc(c->n * sizeof *lens);
    result r = {name, 0, 0, c->n, 0};
    /* warm-up, then the best of 3 single-thread passes */
    for (size_t i = 0; i < c->n && i < 1000; i++) text_tokenizer_encode(t, c->s[i], ids, ctx);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        for (size_t i = 0; i < c->n; i++) lens[i] = text_tokenizer_encode(t, c->s[i], ids + i * (size_t)ctx, ctx);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    r.single = (double)c->n / best;
    omp_set_num_threads(threads);
    best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        text_tokenizer_encode_batch(t, (const char *const *)c->s, c->n, ids, ctx, lens);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    r.multi = (double)c->n / best;
    double tok = 0;
    for (size_t i = 0; i < c->n; i++) tok += lens[i];
    r.tokens_per_caption = tok / (double)c->n;
    char *path = cg_xasprintf("%s/%s.ids", dir, name);
    if (cg_file_write_atomic(path, ids, c->n * (size_t)ctx * sizeof *ids)) cg_log_error("%s", cg_error_message());
    free(path);
    free(ids);
    free(lens);
    return r;
}

int main(int argc, char **argv) {
    const char *clip_vocab = NULL, *bert_vocab = NULL, *dir = "bench_tokenizer_out";
    size_t n = 50000;
    int threads = omp_get_max_threads();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--clip-vocab") && i + 1 < argc) clip_vocab = argv[++i];
        else if (!strcmp(argv[i], "--bert-vocab") && i + 1 < argc) bert_vocab = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--n") && i + 1 < argc) n = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_tokenizer --clip-vocab GZ --bert-vocab TXT [--out DIR] [--n N] [--threads T]\n");
            return 2;
        }
    }
    if (!clip_vocab || !bert_vocab) {
        fprintf(stderr, "bench_tokenizer: --clip-vocab and --bert-vocab are required "
                        "(../shared/data/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz, bert_base_chinese_vocab.txt)\n");
        return 2;
    }
    if (cg_mkdir_p(dir)) {
        cg_log_error("%s", cg_error_message());
        return 1;
    }
    text_tokenizer *clip = NULL, *bert = NULL;
    text_tok_options oc = {.vocab = clip_vocab}, ob = {.vocab = bert_vocab};
    double t0 = now();
    if (text_tokenizer_load("clip:ViT-B/32", &oc, &clip)) {
        cg_log_error("%s", cg_error_message());
        return 1;
    }
    double load_clip = now() - t0;
    t0 = now();
    if (text_tokenizer_load("bert-base-chinese", &ob, &bert)) {
        cg_log_error("%s", cg_error_message());
        return 1;
    }
    double load_bert = now() - t0;
    size_t nw;
    char **words = clip_words(clip, &nw);
    corpus cs[4] = {templates(en_classes, 10, en_templates, 14, n), en_varied(words, nw, n),
                    templates(zh_classes, 10, zh_templates, 8, n), zh_varied(bert, n)};
    const char *names[4] = {"en_templates", "en_varied", "zh_templates", "zh_varied"};
    for (int k = 0; k < 4; k++)
        if (write_corpus(dir, names[k], &cs[k])) cg_log_error("%s", cg_error_message());
    result rs[4];
    for (int k = 0; k < 4; k++) rs[k] = run(dir, names[k], k < 2 ? clip : bert, &cs[k], threads);
    printf("tokenizer load: CLIP BPE %.0f ms, WordPiece %.0f ms\n\n", 1e3 * load_clip, 1e3 * load_bert);
    printf("| corpus | tokenizer | captions | tokens/caption | captions/s (1 thread) | captions/s (%d threads) |\n", threads);
    printf("|---|---|---:|---:|---:|---:|\n");
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "threads", threads);
    cJSON_AddNumberToObject(root, "load_clip_ms", 1e3 * load_clip);
    cJSON_AddNumberToObject(root, "load_bert_ms", 1e3 * load_bert);
    cJSON *arr = cJSON_AddArrayToObject(root, "results");
    for (int k = 0; k < 4; k++) {
        const char *tk = k < 2 ? "CLIP BPE (ctx 77)" : "WordPiece lower (ctx 52)";
        printf("| %s | %s | %zu | %.1f | %.0f | %.0f |\n", rs[k].name, tk, rs[k].n, rs[k].tokens_per_caption,
               rs[k].single, rs[k].multi);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "corpus", rs[k].name);
        cJSON_AddStringToObject(o, "tokenizer", tk);
        cJSON_AddNumberToObject(o, "captions", (double)rs[k].n);
        cJSON_AddNumberToObject(o, "tokens_per_caption", rs[k].tokens_per_caption);
        cJSON_AddNumberToObject(o, "captions_per_s_1thread", rs[k].single);
        cJSON_AddNumberToObject(o, "captions_per_s_threads", rs[k].multi);
        cJSON_AddItemToArray(arr, o);
    }
    char *json = cJSON_Print(root);
    char *path = cg_xasprintf("%s/bench_tokenizer.json", dir);
    if (cg_file_write_atomic(path, json, strlen(json))) cg_log_error("%s", cg_error_message());
    printf("\nwrote %s and the corpora / ids next to it\n", path);
    free(path);
    free(json);
    cJSON_Delete(root);
    for (int k = 0; k < 4; k++) corpus_free(&cs[k]);
    for (size_t i = 0; i < nw; i++) free(words[i]);
    free(words);
    text_tokenizer_free(clip);
    text_tokenizer_free(bert);
    return 0;
}
