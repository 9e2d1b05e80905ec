/* Tests for src/text/tokenizer (the common interface), vocabulary learning round trips and the
 * `clipgrid tokenize` command. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "text/clip_bpe.h"
#include "text/text_util.h"
#include "text/tokenizer.h"
#include "text/wordpiece.h"
#include "tokdata.h"

static char tmpdir[256];

static void test_encoder_names(void) {
    text_tok_defaults d;
    CHECK_EQ_INT(text_tok_defaults_for("clip:ViT-B/32", &d), CG_OK);
    CHECK(d.kind == TEXT_TOK_CLIP_BPE && d.context == 77);
    CHECK_EQ_INT(text_tok_defaults_for("clip:tiny", &d), CG_OK);
    CHECK(d.kind == TEXT_TOK_CLIP_BPE && d.context == 77);
    CHECK_EQ_INT(text_tok_defaults_for("bert-base-chinese", &d), CG_OK);
    CHECK(d.kind == TEXT_TOK_WORDPIECE && d.context == 52 && d.lower_case == 1);
    CHECK_EQ_INT(text_tok_defaults_for("bert:tiny", &d), CG_OK);
    CHECK(d.kind == TEXT_TOK_WORDPIECE && d.context == 52);
    CHECK_EQ_INT(text_tok_defaults_for("gpt2", &d), CG_ERR_USAGE);
    CHECK(strstr(cg_error_message(), "gpt2") != NULL);
    CHECK_EQ_INT(text_tok_defaults_for("", &d), CG_ERR_USAGE);
}

static void test_load_errors(void) {
    text_tokenizer *t = NULL;
    CHECK_EQ_INT(text_tokenizer_load("clip:ViT-B/32", NULL, &t), CG_ERR_USAGE);
    CHECK(strstr(cg_error_message(), "--vocab") != NULL);
    text_tok_options o = {.pretrained = tmpdir};
    CHECK_EQ_INT(text_tokenizer_load("clip:ViT-B/32", &o, &t), CG_ERR_IO);
    CHECK(strstr(cg_error_message(), "merges.txt") != NULL);
    CHECK_EQ_INT(text_tokenizer_load("bert-base-chinese", &o, &t), CG_ERR_IO);
    CHECK(strstr(cg_error_message(), "vocab.txt") != NULL);
    text_tok_options bad_ctx = {.vocab = "x", .context = 1};
    CHECK_EQ_INT(text_tokenizer_load("clip:tiny", &bad_ctx, &t), CG_ERR_USAGE);
    CHECK(t == NULL);
}

/* ------------------------------------------------------------------ vocabulary learning */

static const char *en_classes[] = {"t-shirt/top", "trouser", "pullover", "dress", "coat",
                                   "sandal", "shirt", "sneaker", "bag", "ankle boot"};
static const char *en_templates[] = {"a photo of a %s.", "a black and white photo of the %s.",
                                     "a low resolution photo of a %s.", "itap of my %s!", "A Photo Of The %s &amp; more"};
static const char *zh_classes[] = {"T恤/上衣", "裤子", "套头衫", "连衣裙", "外套", "凉鞋", "衬衫", "运动鞋", "包", "踝靴"};
static const char *zh_templates[] = {"一张%s的照片。", "这是一件%s。", "一张黑白的%s照片", "denim %s jacket"};

static char **make_corpus(const char **classes, size_t nc, const char **templates, size_t nt, size_t *n) {
    char **texts = cg_xmalloc(nc * nt * sizeof *texts);
    *n = 0;
    for (size_t t = 0; t < nt; t++)
        for (size_t c = 0; c < nc; c++) texts[(*n)++] = cg_xasprintf(templates[t], classes[c]);
    return texts;
}

static void free_corpus(char **texts, size_t n) {
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
}

typedef struct {
    char buf[4096];
    size_t len;
} joined;

static int join_piece(const char *p, size_t n, void *ctx) {
    joined *j = ctx;
    if (j->len + n + 2 < sizeof j->buf) {
        memcpy(j->buf + j->len, p, n);
        j->len += n;
        j->buf[j->len++] = ' ';
        j->buf[j->len] = 0;
    }
    return 0;
}

static void test_learn_clip_bpe_round_trip(void) {
    size_t n;
    char **texts = make_corpus(en_classes, 10, en_templates, 5, &n);
    char *path = cg_path_join(tmpdir, "learned_merges.txt.gz");
    CHECK_EQ_INT(text_tokenizer_learn(TEXT_TOK_CLIP_BPE, (const char *const *)texts, n, 600, 1, path), CG_OK);
    text_tokenizer *tok = NULL;
    text_tok_options o = {.vocab = path};
    CHECK_EQ_INT(text_tokenizer_load("clip:tiny", &o, &tok), CG_OK);
    clip_bpe *bpe = NULL;
    CHECK_EQ_INT(clip_bpe_load_merges(path, &bpe), CG_OK);
    if (!tok || !bpe) goto done;
    int vs = text_tokenizer_vocab_size(tok);
    CHECK(vs > 514 && vs <= 600);
    CHECK(clip_bpe_uses_heap(bpe));   /* learned tables satisfy the fast merge's condition */
    CHECK_EQ_INT(text_tokenizer_bos(tok), vs - 2);
    CHECK_EQ_INT(text_tokenizer_eos(tok), vs - 1);
    for (size_t i = 0; i < n; i++) {
        int32_t row[77];
        int len = text_tokenizer_encode(tok, texts[i], row, 77);
        int ok = len >= 3 && row[0] == vs - 2 && row[len - 1] == vs - 1;
        for (int k = 0; k < len; k++) ok = ok && row[k] >= 0 && row[k] < vs;
        /* lossless: the pieces spell the split words (each ending in </w>) */
        char *clean = clip_bpe_clean(texts[i], strlen(texts[i]));
        joined want = {.len = 0}, got = {.len = 0};
        clip_bpe_split(bpe, clean, strlen(clean), join_piece, &want);
        for (int k = 1; k < len - 1; k++) {
            char piece[256];
            clip_bpe_piece_text(bpe, row[k], piece, sizeof piece);
            size_t pl = strlen(piece);
            memcpy(got.buf + got.len, piece, pl);
            got.len += pl;
            const char *raw = clip_bpe_piece(bpe, row[k]);
            if (strlen(raw) >= 4 && !strcmp(raw + strlen(raw) - 4, "</w>")) got.buf[got.len++] = ' ';
            got.buf[got.len] = 0;
        }
        if (!ok || strcmp(want.buf, got.buf) != 0)
            fprintf(stderr, "  \"%s\": want \"%s\" got \"%s\"\n", texts[i], want.buf, got.buf);
        CHECK(ok);
        CHECK_EQ_STR(got.buf, want.buf);
        free(clean);
    }
    /* frequent words of the corpus became single tokens */
    int32_t ids[8];
    CHECK_EQ_INT(clip_bpe_encode(bpe, "photo", 5, ids, 8, NULL), 1);
    CHECK_EQ_STR(clip_bpe_piece(bpe, ids[0]), "photo</w>");
    /* save -> load -> save is the identity, and learning is deterministic */
    char *p1 = cg_path_join(tmpdir, "resaved.txt"), *p2 = cg_path_join(tmpdir, "relearned.txt");
    CHECK_EQ_INT(clip_bpe_save_merges(bpe, p1), CG_OK);
    CHECK_EQ_INT(text_tokenizer_learn(TEXT_TOK_CLIP_BPE, (const char *const *)texts, n, 600, 1, p2), CG_OK);
    char *a = NULL, *b = NULL, *c = NULL;
    size_t la = 0, lb = 0, lc = 0;
    CHECK_EQ_INT(tx_read_file_gz(path, &a, &la), CG_OK);
    CHECK_EQ_INT(tx_read_file_gz(p1, &b, &lb), CG_OK);
    CHECK_EQ_INT(tx_read_file_gz(p2, &c, &lc), CG_OK);
    CHECK(a && b && c && la == lb && la == lc && !memcmp(a, b, la) && !memcmp(a, c, la));
    CHECK(a && strncmp(a, "#version: 0.2\n", 14) == 0);
    free(a);
    free(b);
    free(c);
    free(p1);
    free(p2);
done:
    /* sizes outside [514, 49408] are refused */
    CHECK_EQ_INT(text_tokenizer_learn(TEXT_TOK_CLIP_BPE, (const char *const *)texts, n, 100, 1, path), CG_ERR_USAGE);
    CHECK_EQ_INT(text_tokenizer_learn(TEXT_TOK_CLIP_BPE, (const char *const *)texts, n, 50000, 1, path), CG_ERR_USAGE);
    text_tokenizer_free(tok);
    clip_bpe_free(bpe);
    free(path);
    free_corpus(texts, n);
}

typedef struct {
    char buf[4096];
    size_t len;
} words;

static int add_word(const char *w, size_t n, void *ctx) {
    words *j = ctx;
    if (j->len + n + 2 < sizeof j->buf) {
        memcpy(j->buf + j->len, w, n);
        j->len += n;
        j->buf[j->len++] = ' ';
        j->buf[j->len] = 0;
    }
    return 0;
}

static void test_learn_wordpiece_round_trip(void) {
    size_t n;
    char **texts = make_corpus(zh_classes, 10, zh_templates, 4, &n);
    char *path = cg_path_join(tmpdir, "vocab.txt");
    CHECK_EQ_INT(text_tokenizer_learn(TEXT_TOK_WORDPIECE, (const char *const *)texts, n, 80, 1, path), CG_OK);
    text_tokenizer *tok = NULL;
    text_tok_options o = {.pretrained = tmpdir};   /* found as DIR/vocab.txt */
    CHECK_EQ_INT(text_tokenizer_load("bert:tiny", &o, &tok), CG_OK);
    wordpiece *wp = NULL;
    CHECK_EQ_INT(wordpiece_load(path, 1, 0, &wp), CG_OK);
    if (!tok || !wp) goto done;
    /* every character plus all the merges the corpus has: fewer than the 80 asked for */
    CHECK(text_tokenizer_vocab_size(tok) > 40 && text_tokenizer_vocab_size(tok) <= 80);
    CHECK_EQ_INT(text_tokenizer_vocab_size(tok), wordpiece_vocab_size(wp));
    CHECK_EQ_INT(text_tokenizer_pad(tok), 0);
    CHECK_EQ_STR(text_tokenizer_piece(tok, text_tokenizer_bos(tok)), "[CLS]");
    CHECK_EQ_STR(text_tokenizer_piece(tok, text_tokenizer_eos(tok)), "[SEP]");
    int unk = wordpiece_unk(wp);
    for (size_t i = 0; i < n; i++) {
        int32_t row[52];
        int len = text_tokenizer_encode(tok, texts[i], row, 52);
        int ok = len >= 3;
        /* every character of the corpus is known: no [UNK]; the pieces spell the basic tokens */
        words want = {.len = 0}, got = {.len = 0};
        wordpiece_basic_tokens(texts[i], strlen(texts[i]), 1, add_word, &want);
        for (int k = 1; k < len - 1; k++) {
            ok = ok && row[k] != unk;
            const char *p = text_tokenizer_piece(tok, row[k]);
            int cont = p[0] == '#' && p[1] == '#';
            if (cont && got.len > 0) got.len--;   /* glue to the previous piece */
            add_word(p + (cont ? 2 : 0), strlen(p) - (cont ? 2 : 0), &got);
        }
        if (!ok || strcmp(got.buf, want.buf)) fprintf(stderr, "  \"%s\": want \"%s\" got \"%s\"\n", texts[i], want.buf, got.buf);
        CHECK(ok);
        CHECK_EQ_STR(got.buf, want.buf);
    }
    /* the frequent Latin word was merged into one token */
    int32_t ids[8];
    CHECK_EQ_INT(wordpiece_encode(wp, "denim", 5, ids, 8, NULL), 1);
    CHECK_EQ_STR(wordpiece_piece(wp, ids[0]), "denim");
    /* save -> load -> save is the identity */
    char *p1 = cg_path_join(tmpdir, "vocab_resaved.txt");
    CHECK_EQ_INT(wordpiece_save(wp, p1), CG_OK);
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    CHECK_EQ_INT(cg_file_read(path, &a, &la), CG_OK);
    CHECK_EQ_INT(cg_file_read(p1, &b, &lb), CG_OK);
    CHECK(a && b && la == lb && !memcmp(a, b, la));
    free(a);
    free(b);
    free(p1);
    /* too small for every character: still a valid vocabulary, the rarest become [UNK] */
    char *small = cg_path_join(tmpdir, "vocab_small.txt");
    CHECK_EQ_INT(text_tokenizer_learn(TEXT_TOK_WORDPIECE, (const char *const *)texts, n, 12, 1, small), CG_OK);
    wordpiece *ws = NULL;
    CHECK_EQ_INT(wordpiece_load(small, 1, 0, &ws), CG_OK);
    if (ws) CHECK_EQ_INT(wordpiece_vocab_size(ws), 12);
    wordpiece_free(ws);
    CHECK_EQ_INT(text_tokenizer_learn(TEXT_TOK_WORDPIECE, (const char *const *)texts, n, 5, 1, small), CG_ERR_USAGE);
    free(small);
done:
    text_tokenizer_free(tok);
    wordpiece_free(wp);
    free(path);
    free_corpus(texts, n);
}

/* ------------------------------------------------------------------ the command */

static int run_capture(const char *cmd, char *out, size_t cap) {
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void) {
    cg_json_doc doc;
    if (tokdata_cases("clip_bpe_cases.json", &doc)) return;
    char *gz = tokdata_path("clip_bpe_simple_vocab_16e6.txt.gz");
    const cJSON *c = cJSON_GetObjectItem(doc.root, "cases")->child;
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    char want[512] = "\"ids\":[";
    for (const cJSON *e = cJSON_GetObjectItem(c, "with_special")->child; e; e = e->next)
        snprintf(want + strlen(want), sizeof want - strlen(want), "%d%s", e->valueint, e->next ? "," : "]");
    char *cmd = cg_xasprintf("'%s' tokenize --text-encoder clip:ViT-B/32 --vocab '%s' --json '%s'", CLIPGRID_BIN, gz, text);
    char out[8192];
    CHECK_EQ_INT(run_capture(cmd, out, sizeof out), 0);
    if (!strstr(out, want)) fprintf(stderr, "  output: %s\n  wanted: %s\n", out, want);
    CHECK(strstr(out, want) != NULL);
    CHECK(strstr(out, "\"truncated\":false") != NULL);
    free(cmd);
    /* plain output: ids and pieces lines */
    cmd = cg_xasprintf("'%s' tokenize --text-encoder=clip:tiny --vocab='%s' --context 5 'a photo of a cat'", CLIPGRID_BIN, gz);
    CHECK_EQ_INT(run_capture(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "ids:") && strstr(out, "pieces:") && strstr(out, "<|endoftext|>") && strstr(out, "truncated"));
    free(cmd);
    /* errors: unknown option, unknown encoder, missing vocab file: exit status 2 or the error code */
    cmd = cg_xasprintf("'%s' tokenize --text-encoder clip:tiny --vocab '%s' --bogus x 2>&1", CLIPGRID_BIN, gz);
    CHECK_EQ_INT(run_capture(cmd, out, sizeof out), 2);
    CHECK(strstr(out, "--bogus") != NULL);
    free(cmd);
    cmd = cg_xasprintf("'%s' tokenize --text-encoder clip:tiny --vocab /nonexistent/merges.txt.gz x 2>&1", CLIPGRID_BIN);
    CHECK(run_capture(cmd, out, sizeof out) != 0);
    CHECK(strstr(out, "/nonexistent/merges.txt.gz") != NULL);
    free(cmd);
    /* --learn through the command, then tokenize with what it wrote */
    char *captions = cg_path_join(tmpdir, "captions.txt"), *vocab = cg_path_join(tmpdir, "cli_vocab.txt");
    const char *lines = "一张运动鞋的照片。\n一张凉鞋的照片。\n这是一件外套。\n";
    CHECK_EQ_INT(cg_file_write_atomic(captions, lines, strlen(lines)), CG_OK);
    cmd = cg_xasprintf("'%s' tokenize --text-encoder bert:tiny --learn '%s' --vocab-size 40 --out '%s' 2>&1", CLIPGRID_BIN,
                       captions, vocab);
    CHECK_EQ_INT(run_capture(cmd, out, sizeof out), 0);
    free(cmd);
    cmd = cg_xasprintf("'%s' tokenize --text-encoder bert:tiny --vocab '%s' --json '一张外套的照片'", CLIPGRID_BIN, vocab);
    CHECK_EQ_INT(run_capture(cmd, out, sizeof out), 0);
    CHECK(strstr(out, "\"pieces\":[\"[CLS]\",\"一\",\"张\",\"外\",\"套\",\"的\",\"照\",\"片\",\"[SEP]\"]") != NULL);
    free(cmd);
    free(captions);
    free(vocab);
    free(gz);
    cg_json_free(&doc);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/clipgrid_test_tokenizer_%ld", (long)getpid());
    cg_mkdir_p(tmpdir);
    TEST_RUN(test_encoder_names);
    TEST_RUN(test_load_errors);
    TEST_RUN(test_learn_clip_bpe_round_trip);
    TEST_RUN(test_learn_wordpiece_round_trip);
    TEST_RUN(test_cli);
    char *cmd = cg_xasprintf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    free(cmd);
    return TEST_REPORT();
}
