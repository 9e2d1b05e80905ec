/* Tests for src/text/wordpiece: the reference cases in both casing settings, max chars per word,
 * row layout, bad vocabularies, concurrent encoding. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "text/tokenizer.h"
#include "text/wordpiece.h"
#include "tokdata.h"

static char tmpdir[256];
static char *vocab_path;

static int ids_equal(const int32_t *ids, int n, const cJSON *arr) {
    if (cJSON_GetArraySize(arr) != n) return 0;
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++)
        if (!cJSON_IsNumber(e) || e->valueint != ids[i]) return 0;
    return 1;
}

static int tokens_equal(const wordpiece *t, const int32_t *ids, int n, const cJSON *arr) {
    if (cJSON_GetArraySize(arr) != n) return 0;
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        const char *p = wordpiece_piece(t, ids[i]);
        if (!cJSON_IsString(e) || !p || strcmp(p, e->valuestring) != 0) return 0;
    }
    return 1;
}

static void run_cases(const char *key, int lower) {
    cg_json_doc doc;
    if (tokdata_cases("bert_wordpiece_cases.json", &doc)) return;
    wordpiece *t = NULL;
    CHECK_EQ_INT(wordpiece_load(vocab_path, lower, 0, &t), CG_OK);
    text_tokenizer *tok = NULL;
    text_tok_options o = {.vocab = vocab_path, .casing = lower ? TEXT_TOK_LOWER : TEXT_TOK_CASED};
    CHECK_EQ_INT(text_tokenizer_load("bert-base-chinese", &o, &tok), CG_OK);
    if (!t || !tok) {
        wordpiece_free(t);
        text_tokenizer_free(tok);
        cg_json_free(&doc);
        return;
    }
    CHECK_EQ_INT(wordpiece_vocab_size(t), cJSON_GetObjectItem(doc.root, "vocab_size")->valueint);
    CHECK_EQ_INT(wordpiece_cls(t), cJSON_GetObjectItem(doc.root, "cls")->valueint);
    CHECK_EQ_INT(wordpiece_sep(t), cJSON_GetObjectItem(doc.root, "sep")->valueint);
    CHECK_EQ_INT(wordpiece_pad(t), cJSON_GetObjectItem(doc.root, "pad")->valueint);
    CHECK_EQ_INT(wordpiece_unk(t), cJSON_GetObjectItem(doc.root, "unk")->valueint);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc.root, key);
    CHECK(cJSON_IsArray(cases) && cJSON_GetArraySize(cases) > 0);
    int n_ok = 0, n_cases = 0;
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next, n_cases++) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        int32_t ids[256];
        int more = 0;
        int n = wordpiece_encode(t, text, strlen(text), ids, 256, &more);
        int ok = !more && ids_equal(ids, n, cJSON_GetObjectItem(c, "ids")) &&
                 tokens_equal(t, ids, n, cJSON_GetObjectItem(c, "tokens"));
        const cJSON *sp = cJSON_GetObjectItem(c, "with_special");
        int32_t row[52];
        int len = text_tokenizer_encode(tok, text, row, 52);
        if (sp) ok = ok && ids_equal(row, len, sp);
        else ok = ok && len == n + 2 && row[0] == 101 && row[len - 1] == 102 && !memcmp(row + 1, ids, (size_t)n * 4);
        for (int i = len; i < 52; i++) ok = ok && row[i] == 0;
        if (!ok) {
            fprintf(stderr, "  case \"%s\" differs:", text);
            for (int i = 0; i < n; i++) fprintf(stderr, " %d(%s)", ids[i], wordpiece_piece(t, ids[i]));
            fprintf(stderr, "\n");
        }
        CHECK(ok);
        n_ok += ok;
    }
    fprintf(stderr, "    %d/%d WordPiece \"%s\" exact (do_lower_case=%d)\n", n_ok, n_cases, key, lower);
    text_tokenizer_free(tok);
    wordpiece_free(t);
    cg_json_free(&doc);
}

static void test_reference_cases_lower(void) {
    if (vocab_path) run_cases("cases", 1);
}
static void test_reference_cases_cased(void) {
    if (vocab_path) run_cases("cased_cases", 0);
}

static void test_max_chars_per_word(void) {
    if (!vocab_path) return;
    wordpiece *t200 = NULL, *t100 = NULL;
    CHECK_EQ_INT(wordpiece_load(vocab_path, 1, 0, &t200), CG_OK);
    CHECK_EQ_INT(wordpiece_load(vocab_path, 1, 100, &t100), CG_OK);
    if (!t200 || !t100) goto done;
    char word[260];
    for (int len = 99; len <= 202; len++) {
        memset(word, 'a', (size_t)len);
        int32_t a[300], b[300];
        int na = wordpiece_encode(t200, word, (size_t)len, a, 300, NULL);
        int nb = wordpiece_encode(t100, word, (size_t)len, b, 300, NULL);
        /* longer than the limit: exactly one [UNK]; otherwise real pieces */
        if (len > 200) CHECK(na == 1 && a[0] == 100);
        else CHECK(na >= 1 && a[0] != 100);
        if (len > 100) CHECK(nb == 1 && b[0] == 100);
        else CHECK(na == nb && memcmp(a, b, (size_t)na * 4) == 0);
    }
    /* a CJK character counts as one character, and every CJK character is a word of its own */
    int32_t ids[8];
    CHECK_EQ_INT(wordpiece_encode(t100, "\xe7\x8c\xab\xe7\x8c\xab", 6, ids, 8, NULL), 2);
done:
    wordpiece_free(t200);
    wordpiece_free(t100);
}

static void test_row_layout_and_truncation(void) {
    if (!vocab_path) return;
    text_tokenizer *tok = NULL;
    text_tok_options o = {.vocab = vocab_path};
    CHECK_EQ_INT(text_tokenizer_load("bert:tiny", &o, &tok), CG_OK);
    if (!tok) return;
    CHECK_EQ_INT(text_tokenizer_context(tok), 52);
    CHECK_EQ_INT(text_tokenizer_kind(tok), TEXT_TOK_WORDPIECE);
    char text[1024] = "";
    for (int i = 0; i < 60; i++) strcat(text, "\xe7\x8c\xab");   /* 60 CJK characters */
    int32_t row[52];
    int truncated = 0;
    int len = text_tokenizer_encode_ex(tok, text, strlen(text), row, 52, &truncated);
    CHECK_EQ_INT(len, 52);
    CHECK(truncated);
    CHECK_EQ_INT(row[0], 101);
    CHECK_EQ_INT(row[51], 102);
    CHECK_EQ_INT(row[50], row[1]);
    /* zeroed options give the encoder's default casing (lower-case for bert*); --cased differs */
    wordpiece *lw = NULL, *cw = NULL;
    text_tokenizer *cased = NULL;
    text_tok_options oc = {.vocab = vocab_path, .casing = TEXT_TOK_CASED};
    CHECK_EQ_INT(wordpiece_load(vocab_path, 1, 0, &lw), CG_OK);
    CHECK_EQ_INT(wordpiece_load(vocab_path, 0, 0, &cw), CG_OK);
    CHECK_EQ_INT(text_tokenizer_load("bert-base-chinese", &oc, &cased), CG_OK);
    if (lw && cw && cased) {
        int32_t a[8], b[8], r1[8], r2[8];
        int na = wordpiece_encode(lw, "Hello", 5, a, 8, NULL), nb = wordpiece_encode(cw, "Hello", 5, b, 8, NULL);
        CHECK(na != nb || memcmp(a, b, (size_t)na * 4) != 0);   /* the settings differ on Latin text */
        CHECK_EQ_INT(text_tokenizer_encode(tok, "Hello", r1, 8), na + 2);
        CHECK(memcmp(r1 + 1, a, (size_t)na * 4) == 0);
        CHECK_EQ_INT(text_tokenizer_encode(cased, "Hello", r2, 8), nb + 2);
        CHECK(memcmp(r2 + 1, b, (size_t)nb * 4) == 0);
    }
    wordpiece_free(lw);
    wordpiece_free(cw);
    text_tokenizer_free(cased);
    len = text_tokenizer_encode_ex(tok, "", 0, row, 52, &truncated);
    CHECK_EQ_INT(len, 2);
    CHECK(!truncated);
    CHECK(row[0] == 101 && row[1] == 102 && row[2] == 0 && row[51] == 0);
    text_tokenizer_free(tok);
}

static void test_invalid_utf8_and_controls(void) {
    if (!vocab_path) return;
    wordpiece *t = NULL;
    CHECK_EQ_INT(wordpiece_load(vocab_path, 1, 0, &t), CG_OK);
    if (!t) return;
    const char bad[] = "\xff\xe4\xb8\x80\xe5\xbc\xa0\xe7\x8c\xab\xed\xa0\x80\xe7\x9a\x84\x01\xe2\x80\x8b\xe7\x85\xa7\xe7\x89\x87\xc3";
    int32_t a[32], b[32];
    int na = wordpiece_encode(t, bad, sizeof bad - 1, a, 32, NULL);
    const char *good = "\xe4\xb8\x80\xe5\xbc\xa0\xe7\x8c\xab\xe7\x9a\x84\xe7\x85\xa7\xe7\x89\x87";
    int nb = wordpiece_encode(t, good, strlen(good), b, 32, NULL);
    CHECK_EQ_INT(na, nb);
    CHECK(na == nb && memcmp(a, b, (size_t)na * 4) == 0);
    wordpiece_free(t);
}

static void write_file(const char *path, const char *text) {
    CHECK_EQ_INT(cg_file_write_atomic(path, text, strlen(text)), CG_OK);
}

static void test_bad_vocab(void) {
    char *p = cg_path_join(tmpdir, "vocab.txt");
    wordpiece *t = NULL;
    write_file(p, "[PAD]\n[UNK]\n[CLS]\nhello\n");
    CHECK_EQ_INT(wordpiece_load(p, 1, 0, &t), CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "[SEP]") != NULL);
    CHECK(strstr(cg_error_message(), "vocab.txt") != NULL);
    write_file(p, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhel\xfflo\n");
    CHECK_EQ_INT(wordpiece_load(p, 1, 0, &t), CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "vocab.txt:5") != NULL);
    write_file(p, "");
    CHECK_EQ_INT(wordpiece_load(p, 1, 0, &t), CG_ERR_FORMAT);
    /* CRLF lines, surrounding spaces stripped as the reference's str.strip() does */
    write_file(p, "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n  un \r\n##aff\r\n##able\r\nun\r\n");
    CHECK_EQ_INT(wordpiece_load(p, 1, 0, &t), CG_OK);
    if (t) {
        int32_t ids[8];
        int n = wordpiece_encode(t, "UNAFFABLE unx", 13, ids, 8, NULL);
        CHECK_EQ_INT(n, 4);
        CHECK_EQ_INT(ids[0], 7);   /* "un" twice: the later line wins */
        CHECK_EQ_INT(ids[1], 5);
        CHECK_EQ_INT(ids[2], 6);
        CHECK_EQ_INT(ids[3], 1);   /* "unx": no "##x" -> [UNK] */
        CHECK_EQ_STR(wordpiece_piece(t, 4), "un");
    }
    wordpiece_free(t);
    char *missing = cg_path_join(tmpdir, "missing_vocab.txt");
    CHECK_EQ_INT(wordpiece_load(missing, 1, 0, &t), CG_ERR_IO);
    CHECK(strstr(cg_error_message(), "missing_vocab.txt") != NULL);
    free(missing);
    free(p);
}

typedef struct {
    const wordpiece *t;
    int mismatches;
} thread_arg;

static void *encode_many(void *p) {
    thread_arg *a = p;
    const char *text = "Hello World! \xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c\xef\xbc\x81 caf\xc3\xa9 unaffable";
    int32_t first[64], ids[64];
    int n0 = wordpiece_encode(a->t, text, strlen(text), first, 64, NULL);
    for (int it = 0; it < 2000; it++) {
        int n = wordpiece_encode(a->t, text, strlen(text), ids, 64, NULL);
        if (n != n0 || memcmp(ids, first, (size_t)n * 4)) a->mismatches++;
    }
    return NULL;
}

static void test_concurrent_encode(void) {
    if (!vocab_path) return;
    wordpiece *t = NULL;
    CHECK_EQ_INT(wordpiece_load(vocab_path, 1, 0, &t), CG_OK);
    if (!t) return;
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){t, 0};
        pthread_create(&th[i], NULL, encode_many, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(args[i].mismatches, 0);
    }
    wordpiece_free(t);
}

/* The data directory is required: without it this fails (and the tests below do nothing). */
static void test_data_present(void) { vocab_path = tokdata_path("bert_base_chinese_vocab.txt"); }

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/clipgrid_test_wordpiece_%ld", (long)getpid());
    cg_mkdir_p(tmpdir);
    TEST_RUN(test_data_present);
    TEST_RUN(test_reference_cases_lower);
    TEST_RUN(test_reference_cases_cased);
    TEST_RUN(test_max_chars_per_word);
    TEST_RUN(test_row_layout_and_truncation);
    TEST_RUN(test_invalid_utf8_and_controls);
    TEST_RUN(test_bad_vocab);
    TEST_RUN(test_concurrent_encode);
    free(vocab_path);
    char *cmd = cg_xasprintf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    free(cmd);
    return TEST_REPORT();
}
