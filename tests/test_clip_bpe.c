/* Tests for src/text/clip_bpe: the reference cases, cleaning, the two merge loops, the HF
 * directory layout, truncation, bad files, concurrent encoding. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "text/clip_bpe.h"
#include "text/tokenizer.h"
#include "tokdata.h"

static char tmpdir[256];
static clip_bpe *ref;   /* the OpenAI merges, loaded once */

static int ids_equal(const int32_t *ids, int n, const cJSON *arr) {
    if (cJSON_GetArraySize(arr) != n) return 0;
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++)
        if (!cJSON_IsNumber(e) || e->valueint != ids[i]) return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *ids, int n) {
    fprintf(stderr, "    %s:", what);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* Every reference case: raw ids, and the 77-wide row with specials and 0 padding. */
static void check_cases(const clip_bpe *t, const text_tokenizer *tok) {
    cg_json_doc doc;
    if (tokdata_cases("clip_bpe_cases.json", &doc)) return;
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc.root, "cases");
    CHECK(cJSON_IsArray(cases) && cJSON_GetArraySize(cases) >= 20);
    CHECK_EQ_INT(clip_bpe_sot(t), cJSON_GetObjectItem(doc.root, "sot")->valueint);
    CHECK_EQ_INT(clip_bpe_eot(t), cJSON_GetObjectItem(doc.root, "eot")->valueint);
    CHECK_EQ_INT(clip_bpe_vocab_size(t), cJSON_GetObjectItem(doc.root, "vocab_size")->valueint);
    int n_ok = 0, n_cases = 0;
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next, n_cases++) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(c, "ids"), *want_sp = cJSON_GetObjectItem(c, "with_special");
        int32_t ids[256];
        int more = 0;
        int n = clip_bpe_encode(t, text, strlen(text), ids, 256, &more);
        int ok = ids_equal(ids, n, want) && !more;
        int32_t row[77];
        int len = tok ? text_tokenizer_encode(tok, text, row, 77) : 0;
        if (tok) {
            ok = ok && ids_equal(row, len, want_sp);
            for (int i = len; i < 77; i++) ok = ok && row[i] == 0;
        }
        if (!ok) {
            fprintf(stderr, "  case \"%s\" differs\n", text);
            print_ids("got", ids, n);
        }
        CHECK(ok);
        n_ok += ok;
    }
    fprintf(stderr, "    %d/%d CLIP reference cases exact\n", n_ok, n_cases);
    cg_json_free(&doc);
}

static void test_reference_cases(void) {
    if (!ref) {
        CHECK(!"OpenAI merges loaded");
        return;
    }
    CHECK_EQ_INT(clip_bpe_n_merges(ref), CLIP_BPE_MAX_MERGES);
    CHECK(clip_bpe_uses_heap(ref));   /* the OpenAI table allows the fast merge */
    CHECK_EQ_STR(clip_bpe_piece(ref, 0), "!");
    CHECK_EQ_STR(clip_bpe_piece(ref, 256), "!</w>");
    CHECK_EQ_STR(clip_bpe_piece(ref, 49406), "<|startoftext|>");
    CHECK_EQ_STR(clip_bpe_piece(ref, 49407), "<|endoftext|>");
    char *path = tokdata_path("clip_bpe_simple_vocab_16e6.txt.gz");
    text_tokenizer *tok = NULL;
    text_tok_options o = {.vocab = path};
    if (path) CHECK_EQ_INT(text_tokenizer_load("clip:ViT-B/32", &o, &tok), CG_OK);
    check_cases(ref, tok);
    if (tok) {
        CHECK_EQ_INT(text_tokenizer_context(tok), 77);
        CHECK_EQ_INT(text_tokenizer_pad(tok), 0);
        CHECK_EQ_INT(text_tokenizer_bos(tok), 49406);
        CHECK_EQ_INT(text_tokenizer_eos(tok), 49407);
    }
    text_tokenizer_free(tok);
    free(path);
}

/* The cleaning stage against Python 3.11 + the `regex` module (html.unescape twice, strip, regex \s+ -> " ", lower). */
static void test_cleaning_matches_python(void) {
    static const struct { const char *in, *out; } cases[] = {
        {"&amp;lt;b&gt;", "<b>"},
        {"  A\xe3\x80\x80" "B\x1c" "C\xe2\x80\xa8 ", "a b\x1c" "c"},
        {"&#65;&#x42;&#0;&#128;&#xD800;&#1114112;&#1;x", "ab\xef\xbf\xbd\xe2\x82\xac\xef\xbf\xbd\xef\xbf\xbdx"},
        {"&notit; &notin; &amp &ampx &AMP;", "\xc2\xacit; \xe2\x88\x89 & &x &"},
        {"\xce\xa3\xce\x91\xce\xa3 \xce\x9f\xce\x94\xce\x9f\xce\xa3. \xce\xa3",
         "\xcf\x83\xce\xb1\xcf\x82 \xce\xbf\xce\xb4\xce\xbf\xcf\x82. \xcf\x83"},
        {"\xc4\xb0stanbul", "i\xcc\x87stanbul"},
        {"&;&#;&#x;&&lt", "&;&#;&#x;&<"},
        {"AT&T Q&A; &abcdefghijklmnopqrstuvwxyz0123456789;", "at&t q&a; &abcdefghijklmnopqrstuvwxyz0123456789;"},
        /* the `regex` module's \s (the collapse) lacks U+001C..U+001F; str.strip() has them */
        {"a \x1c b", "a \x1c b"},
        {" \x1c A \x1d\x1e ", "a"},
        {"a\xc2\x85\xc2\xa0" "b", "a b"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *got = clip_bpe_clean(cases[i].in, strlen(cases[i].in));
        CHECK_EQ_STR(got, cases[i].out);
        free(got);
    }
    /* a NUL inside an entity name (found by fuzzing: the lookup read past a table string) */
    char *got = clip_bpe_clean("x&gt\0;y &lt\0", 12);
    CHECK(memcmp(got, "x>\0;y <\0", 9) == 0);   /* 8 characters and the terminator */
    free(got);
}

static int collect_piece(const char *p, size_t n, void *ctx) {
    char *buf = ctx;
    strncat(buf, p, n);
    strcat(buf, "|");
    return 0;
}

/* Split pieces as the `regex` module gives them (checked with regex 2024+ in Python 3.11). */
static void test_split_like_regex_module(void) {
    static const struct { const char *in, *pieces; } cases[] = {
        {"a \x1c b", "a|\x1c|b|"},
        {"a\xe1\xa0\x8e" "b", "a|\xe1\xa0\x8e|b|"},                       /* U+180E is not \s there */
        {"x\xe1\xa0\x8e\xe1\xa0\x8e!y", "x|\xe1\xa0\x8e\xe1\xa0\x8e!|y|"},
        {"it's 3:45pm <|endoftext|>", "it|'s|3|:|4|5|pm|<|endoftext|>|"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *clean = clip_bpe_clean(cases[i].in, strlen(cases[i].in));
        char got[256] = "";
        CHECK_EQ_INT(clip_bpe_split(ref, clean, strlen(clean), collect_piece, got), CG_OK);
        CHECK_EQ_STR(got, cases[i].pieces);
        free(clean);
    }
}

/* Invalid UTF-8 bytes are dropped (bytes.decode("utf-8", "ignore")): same ids as without them. */
static void test_invalid_utf8_dropped(void) {
    if (!ref) return;
    const char bad[] = "a \xff" "ph\xc3" "oto \xed\xa0\x80of\xf4\x90\x80\x80 a cat\xe2\x82";
    int32_t a[64], b[64];
    int na = clip_bpe_encode(ref, bad, sizeof bad - 1, a, 64, NULL);
    int nb = clip_bpe_encode(ref, "a photo of a cat", 16, b, 64, NULL);
    CHECK_EQ_INT(na, nb);
    CHECK(na == nb && memcmp(a, b, (size_t)na * sizeof *a) == 0);
    /* NUL bytes inside the text are characters like any other, not terminators */
    int nz = clip_bpe_encode(ref, "a\0b", 3, a, 64, NULL);
    CHECK(nz >= 2);
}

/* The heap merge must agree with the reference loop on arbitrary words. */
static void test_heap_equals_reference_merge(void) {
    char *path = tokdata_path("clip_bpe_simple_vocab_16e6.txt.gz");
    if (!path || !ref) {
        free(path);
        return;
    }
    clip_bpe *slow = NULL;
    CHECK_EQ_INT(clip_bpe_load_merges(path, &slow), CG_OK);
    free(path);
    if (!slow) return;
    clip_bpe_force_reference_merge(slow, 1);
    CHECK(!clip_bpe_uses_heap(slow));
    static const char *alphabet[] = {"a", "e", "i", "o", "n", "s", "t", "r", "l", "th", "ing", "er", "an",
                                     "\xc3\xa9", "\xe4\xb8\xad", "1", "!", "'", " ", "-", "x", "q", "z"};
    unsigned seed = 12345;
    int mismatches = 0;
    for (int trial = 0; trial < 3000; trial++) {
        char text[400];
        size_t len = 0;
        int parts = 1 + (int)(seed % 40);
        for (int p = 0; p < parts; p++) {
            seed = seed * 1103515245u + 12345u;
            const char *s = alphabet[(seed >> 16) % (sizeof alphabet / sizeof *alphabet)];
            size_t l = strlen(s);
            memcpy(text + len, s, l);
            len += l;
        }
        int32_t a[256], b[256];
        int na = clip_bpe_encode(ref, text, len, a, 256, NULL);
        int nb = clip_bpe_encode(slow, text, len, b, 256, NULL);
        if (na != nb || memcmp(a, b, (size_t)na * sizeof *a) != 0) mismatches++;
    }
    CHECK_EQ_INT(mismatches, 0);
    clip_bpe_free(slow);
}

static void test_truncation_keeps_eot_last(void) {
    if (!ref) return;
    char *path = tokdata_path("clip_bpe_simple_vocab_16e6.txt.gz");
    text_tokenizer *tok = NULL;
    text_tok_options o = {.vocab = path};
    if (!path || text_tokenizer_load("clip:tiny", &o, &tok)) {
        free(path);
        CHECK(!"clip:tiny loads");
        return;
    }
    free(path);
    char text[4000] = "";
    for (int i = 0; i < 100; i++) strcat(text, "cat dog ");   /* 200 words */
    int32_t raw[300], row[77];
    int more = 0;
    int n = clip_bpe_encode(ref, text, strlen(text), raw, 300, &more);
    CHECK_EQ_INT(n, 200);
    CHECK(!more);
    int truncated = 0;
    int len = text_tokenizer_encode_ex(tok, text, strlen(text), row, 77, &truncated);
    CHECK_EQ_INT(len, 77);
    CHECK(truncated);
    CHECK_EQ_INT(row[0], 49406);
    CHECK_EQ_INT(row[76], 49407);
    CHECK(memcmp(row + 1, raw, 75 * sizeof *raw) == 0);
    /* exactly full: 75 tokens fit without truncation */
    int32_t part[80];
    CHECK_EQ_INT(clip_bpe_encode(ref, text, strlen(text), part, 75, &more), 75);
    CHECK(more);
    /* a shorter context, as for a small model */
    int32_t small[8];
    len = text_tokenizer_encode_ex(tok, "a photo of a cat", 16, small, 4, &truncated);
    CHECK_EQ_INT(len, 4);
    CHECK(truncated);
    CHECK_EQ_INT(small[3], 49407);
    CHECK_EQ_INT(small[1], 320);
    text_tokenizer_free(tok);
}

/* The Hugging Face layout (vocab.json + merges.txt) gives the same ids. */
static void test_hf_directory(void) {
    if (!ref) return;
    char *dir = cg_path_join(tmpdir, "hf-clip");
    CHECK_EQ_INT(cg_mkdir_p(dir), CG_OK);
    char *merges = cg_path_join(dir, "merges.txt"), *vocab = cg_path_join(dir, "vocab.json");
    CHECK_EQ_INT(clip_bpe_save_merges(ref, merges), CG_OK);
    cJSON *obj = cJSON_CreateObject();
    for (int i = 0; i < clip_bpe_vocab_size(ref); i++) cJSON_AddNumberToObject(obj, clip_bpe_piece(ref, i), i);
    char *json = cJSON_PrintUnformatted(obj);
    CHECK_EQ_INT(cg_file_write_atomic(vocab, json, strlen(json)), CG_OK);
    free(json);
    cJSON_Delete(obj);
    text_tokenizer *tok = NULL;
    text_tok_options o = {.pretrained = dir};
    CHECK_EQ_INT(text_tokenizer_load("clip:ViT-B/32", &o, &tok), CG_OK);
    if (tok) {
        CHECK(strstr(text_tokenizer_vocab_path(tok), "vocab.json") != NULL);
        CHECK_EQ_INT(text_tokenizer_vocab_size(tok), 49408);
        int32_t a[77], b[77];
        const char *s = "A Photo Of A Cat. &amp; don't stop believin' 123";
        text_tokenizer_encode(tok, s, a, 77);
        int32_t raw[77];
        int n = clip_bpe_encode(ref, s, strlen(s), raw, 75, NULL);
        b[0] = 49406;
        memcpy(b + 1, raw, (size_t)n * sizeof *raw);
        b[n + 1] = 49407;
        for (int i = n + 2; i < 77; i++) b[i] = 0;
        CHECK(memcmp(a, b, sizeof a) == 0);
        text_tokenizer_free(tok);
    }
    /* the merges file alone (no vocab.json) also loads, in the reference id order */
    clip_bpe *m = NULL;
    CHECK_EQ_INT(clip_bpe_load_merges(merges, &m), CG_OK);
    if (m) CHECK_EQ_INT(clip_bpe_vocab_size(m), 49408);
    clip_bpe_free(m);
    free(merges);
    free(vocab);
    free(dir);
}

static void write_file(const char *path, const char *text) {
    CHECK_EQ_INT(cg_file_write_atomic(path, text, strlen(text)), CG_OK);
}

static void test_bad_files_name_file_and_line(void) {
    char *p = cg_path_join(tmpdir, "bad_merges.txt");
    write_file(p, "#version: 0.2\nt h\nth e\nthree fields here\n");
    clip_bpe *t = NULL;
    CHECK(clip_bpe_load_merges(p, &t) == CG_ERR_FORMAT);
    CHECK(t == NULL);
    CHECK(strstr(cg_error_message(), "bad_merges.txt:4") != NULL);
    write_file(p, "#version: 0.2\nt h\n\nth e\n");
    CHECK(clip_bpe_load_merges(p, &t) == CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "bad_merges.txt:3") != NULL);
    write_file(p, "#version: 0.2\nt h\nQQ e\n");   /* QQ is neither a byte symbol nor a merge */
    CHECK(clip_bpe_load_merges(p, &t) == CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "bad_merges.txt:3") != NULL);
    CHECK(strstr(cg_error_message(), "QQ") != NULL);
    write_file(p, "#version: 0.2\n");
    CHECK(clip_bpe_load_merges(p, &t) == CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "no merges") != NULL);
    write_file(p, "#version: 0.2\nt \xff\n");
    CHECK(clip_bpe_load_merges(p, &t) == CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "UTF-8") != NULL);
    char *missing = cg_path_join(tmpdir, "nope.txt.gz");
    CHECK(clip_bpe_load_merges(missing, &t) == CG_ERR_IO);
    CHECK(strstr(cg_error_message(), "nope.txt.gz") != NULL);
    /* a CRLF file with a trailing blank line is fine */
    write_file(p, "#version: 0.2\r\nt h\r\nth e</w>\r\n\r\n");
    CHECK_EQ_INT(clip_bpe_load_merges(p, &t), CG_OK);
    if (t) {
        CHECK_EQ_INT(clip_bpe_vocab_size(t), 512 + 2 + 2);
        int32_t ids[8];
        int n = clip_bpe_encode(t, "the", 3, ids, 8, NULL);
        CHECK_EQ_INT(n, 1);
        CHECK_EQ_STR(clip_bpe_piece(t, ids[0]), "the</w>");
        char buf[32];
        CHECK_EQ_STR(clip_bpe_piece_text(t, ids[0], buf, sizeof buf), "the");
    }
    clip_bpe_free(t);
    free(missing);
    free(p);
}

typedef struct {
    const clip_bpe *t;
    int mismatches;
} thread_arg;

static void *encode_many(void *p) {
    thread_arg *a = p;
    static const char *texts[] = {"a photo of a cat", "The quick brown fox jumps over the lazy dog",
                                  "emoji \xf0\x9f\x99\x82 and caf\xc3\xa9", "supercalifragilisticexpialidocious"};
    int32_t first[4][80];
    int nfirst[4];
    for (int k = 0; k < 4; k++) nfirst[k] = clip_bpe_encode(a->t, texts[k], strlen(texts[k]), first[k], 80, NULL);
    for (int it = 0; it < 400; it++) {
        int k = it % 4;
        int32_t ids[80];
        int n = clip_bpe_encode(a->t, texts[k], strlen(texts[k]), ids, 80, NULL);
        if (n != nfirst[k] || memcmp(ids, first[k], (size_t)n * sizeof *ids)) a->mismatches++;
    }
    return NULL;
}

static void test_concurrent_encode(void) {
    if (!ref) return;
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){ref, 0};
        pthread_create(&th[i], NULL, encode_many, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(args[i].mismatches, 0);
    }
}

/* A text of a few MB and a single 1 MB word: linear-ish time, no overflow. */
static void test_huge_inputs(void) {
    if (!ref) return;
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++) big[i] = (char)('a' + (i * 7919) % 26);
    big[n] = 0;
    int32_t ids[80];
    int more = 0;
    int k = clip_bpe_encode(ref, big, n, ids, 75, &more);
    CHECK_EQ_INT(k, 75);
    CHECK(more);
    for (size_t i = 0; i < n; i++) big[i] = "ab &amp;\xe4\xb8\xad"[i % 12];
    k = clip_bpe_encode(ref, big, n, ids, 80, &more);
    CHECK_EQ_INT(k, 80);
    free(big);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/clipgrid_test_clip_bpe_%ld", (long)getpid());
    cg_mkdir_p(tmpdir);
    char *path = tokdata_path("clip_bpe_simple_vocab_16e6.txt.gz");
    if (path && clip_bpe_load_merges(path, &ref)) fprintf(stderr, "  load failed: %s\n", cg_error_message());
    free(path);
    TEST_RUN(test_reference_cases);
    TEST_RUN(test_cleaning_matches_python);
    TEST_RUN(test_split_like_regex_module);
    TEST_RUN(test_invalid_utf8_dropped);
    TEST_RUN(test_heap_equals_reference_merge);
    TEST_RUN(test_truncation_keeps_eot_last);
    TEST_RUN(test_hf_directory);
    TEST_RUN(test_bad_files_name_file_and_line);
    TEST_RUN(test_concurrent_encode);
    TEST_RUN(test_huge_inputs);
    clip_bpe_free(ref);
    char *cmd = cg_xasprintf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    free(cmd);
    return TEST_REPORT();
}
