/* Tests for src/data/manifest.c: CSV/TSV (RFC 4180 quoting, CRLF, BOM, bad rows, missing
 * columns), JSONL (both key spellings, bad lines, Chinese captions), Chinese-CLIP (text JSONL +
 * base64 image TSV, missing ids, bad base64), image bytes from files, thread safety.
 * Fixtures are written at test time under TEST_BINARY_DIR; warnings are captured from stderr so
 * that their file:line can be checked. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/log.h"
#include "data/manifest.h"

static char tmpdir[256];

static char *tmp_path(const char *name) { return cg_xasprintf("%s/%s", tmpdir, name); }

static char *write_tmp(const char *name, const char *text, size_t n) {
    char *p = tmp_path(name);
    if (cg_file_write_atomic(p, text, n)) fprintf(stderr, "  %s\n", cg_error_message());
    return p;
}

static char *write_tmp_str(const char *name, const char *text) { return write_tmp(name, text, strlen(text)); }

/* ---- stderr capture: the warnings name file:line */

static int saved_stderr = -1;
static char capture_path[300];

static void capture_begin(void) {
    snprintf(capture_path, sizeof capture_path, "%s/stderr.txt", tmpdir);
    fflush(stderr);
    saved_stderr = dup(2);
    FILE *f = fopen(capture_path, "w");
    dup2(fileno(f), 2);
    fclose(f);
}

/* The captured text (malloc'd); also echoed to the real stderr. */
static char *capture_end(void) {
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    char *text = NULL;
    size_t n;
    if (cg_file_read(capture_path, &text, &n)) return cg_xstrdup("");
    fputs(text, stderr);
    return text;
}

/* ---- CSV / TSV */

static void test_csv_quoting_crlf_bom(void) {
    /* BOM, CRLF, a quoted comma, a doubled quote, a newline inside quotes, an extra column,
     * blank lines (not rows), an absolute path, a lone LF line end mixed in */
    const char *csv =
        "\xEF\xBB\xBF" "filepath,title,extra\r\n"
        "img/a.jpg,\"a cat, sitting\",1\r\n"
        "\r\n"
        "b.png,\"she said \"\"hi\"\"\",2\r\n"
        "/abs/c.webp,\"two\r\nlines\",3\n"
        "d.jpg,一只猫,\"\"\r\n"
        "\n"
        "e.jpg,last row without newline,5";
    char *p = write_tmp_str("quoting.csv", csv);
    manifest *m;
    int rc = manifest_open_csv(p, NULL, &m);
    if (rc) fprintf(stderr, "  %s\n", cg_error_message());
    CHECK_EQ_INT(rc, CG_OK);
    if (rc) return;
    CHECK_EQ_INT(manifest_count(m), 5);
    CHECK_EQ_INT(manifest_skipped(m), 0);
    CHECK_EQ_STR(manifest_caption(m, 0), "a cat, sitting");
    CHECK_EQ_STR(manifest_caption(m, 1), "she said \"hi\"");
    CHECK_EQ_STR(manifest_caption(m, 2), "two\r\nlines");
    CHECK_EQ_STR(manifest_caption(m, 3), "一只猫");
    CHECK_EQ_STR(manifest_caption(m, 4), "last row without newline");
    char *a = tmp_path("img/a.jpg");
    CHECK_EQ_STR(manifest_image_name(m, 0), a);       /* relative to the manifest's directory */
    CHECK_EQ_STR(manifest_image_name(m, 2), "/abs/c.webp");
    CHECK(manifest_caption(m, 5) == NULL && manifest_image_name(m, -1) == NULL);
    free(a);
    manifest_close(m);
    free(p);
}

static void test_csv_quote_details(void) {
    /* a quote inside an unquoted field is a character; text after a closing quote is kept
     * (Python's csv, pandas); a separator right after a closing quote ends the field */
    const char *csv = "filepath,title\nx\"y.jpg,ab\"c\n\"q.jpg\"tail,\"cap\"x\n\"r.jpg\",\"\"\"\"\n";
    manifest *m;
    CHECK_EQ_INT(manifest_parse_csv("d/q.csv", csv, strlen(csv), NULL, &m), CG_OK);
    CHECK_EQ_INT(manifest_count(m), 3);
    CHECK_EQ_STR(manifest_image_name(m, 0), "d/x\"y.jpg");
    CHECK_EQ_STR(manifest_caption(m, 0), "ab\"c");
    CHECK_EQ_STR(manifest_image_name(m, 1), "d/q.jpgtail");
    CHECK_EQ_STR(manifest_caption(m, 1), "capx");
    CHECK_EQ_STR(manifest_caption(m, 2), "\"");
    manifest_close(m);
    /* a lone CR ends a record too (old Mac files); no directory: paths as written */
    /* a NUL byte in a used field makes the row unusable (found by fuzzing: "\0x" looked empty) */
    static const char nul[] = "filepath,title,z\na.jpg,\0x,1\nb.jpg,fine,\0\n";
    CHECK_EQ_INT(manifest_parse_csv("nul.csv", nul, sizeof nul - 1, NULL, &m), CG_OK);
    CHECK_EQ_INT(manifest_count(m), 1);
    CHECK_EQ_INT(manifest_skipped(m), 1);
    CHECK_EQ_STR(manifest_caption(m, 0), "fine");
    manifest_close(m);
    const char *cr = "filepath,title\ra.jpg,one\rb.jpg,two";
    CHECK_EQ_INT(manifest_parse_csv("cr.csv", cr, strlen(cr), NULL, &m), CG_OK);
    CHECK_EQ_INT(manifest_count(m), 2);
    CHECK_EQ_STR(manifest_image_name(m, 1), "b.jpg");
    CHECK_EQ_STR(manifest_caption(m, 1), "two");
    manifest_close(m);
}

static void test_csv_bad_rows_are_counted_and_named(void) {
    const char *csv =
        "filepath,title\n"          /* line 1 */
        "ok1.jpg,fine\n"            /* 2 */
        "only_one_field\n"          /* 3: 1 field */
        "a.jpg,b,c\n"               /* 4: 3 fields */
        "e.jpg,\n"                  /* 5: empty caption */
        ",no path\n"                /* 6: empty path */
        "\"multi\nline.jpg\",x,y\n" /* 7-8: 3 fields, reported at its first line */
        "ok2.jpg,\"fine, too\"\n"   /* 9 */
        "late.jpg,\"never closed\n" /* 10: quote runs to the end */
        "more text\n";
    char *p = write_tmp_str("bad.csv", csv);
    manifest *m;
    capture_begin();
    int rc = manifest_open_csv(p, NULL, &m);
    char *err = capture_end();
    CHECK_EQ_INT(rc, CG_OK);
    if (rc) return;
    CHECK_EQ_INT(manifest_count(m), 2);
    CHECK_EQ_INT(manifest_skipped(m), 6);
    CHECK_EQ_STR(manifest_caption(m, 1), "fine, too");
    char want[512];
    static const int lines[] = {3, 4, 5, 6, 7};   /* the first 5 are warned one by one */
    for (int k = 0; k < 5; k++) {
        snprintf(want, sizeof want, "%s:%d: ", p, lines[k]);
        CHECK(strstr(err, want) != NULL);
    }
    snprintf(want, sizeof want, "%s:10: ", p);
    CHECK(strstr(err, want) == NULL);
    CHECK(strstr(err, "1 fields, the header has 2") != NULL);
    CHECK(strstr(err, "empty \"title\"") != NULL);
    CHECK(strstr(err, "empty \"filepath\"") != NULL);
    CHECK(strstr(err, "6 skipped in all") != NULL);
    free(err);
    manifest_close(m);
    free(p);
}

static void test_tsv_and_keys(void) {
    /* .tsv: tab separated, commas are text; other column names through the options */
    const char *tsv = "path\tcaption\tid\nx/1.jpg\ta, b and c\t1\n2.jpg\t\"quoted\ttab\"\t2\n";
    char *p = write_tmp_str("data.tsv", tsv);
    manifest_opts o = {.img_key = "path", .caption_key = "caption"};
    manifest *m;
    CHECK_EQ_INT(manifest_open_csv(p, &o, &m), CG_OK);
    CHECK_EQ_INT(manifest_count(m), 2);
    CHECK_EQ_STR(manifest_caption(m, 0), "a, b and c");
    CHECK_EQ_STR(manifest_caption(m, 1), "quoted\ttab");
    manifest_close(m);
    /* an explicit separator beats the suffix (open_clip's --csv-separator) */
    const char *csv_tab = "filepath\ttitle\na.jpg\tx,y\n";
    manifest_opts t = {.sep = '\t'};
    CHECK_EQ_INT(manifest_parse_csv("tab.csv", csv_tab, strlen(csv_tab), &t, &m), CG_OK);
    CHECK_EQ_INT(manifest_count(m), 1);
    CHECK_EQ_STR(manifest_caption(m, 0), "x,y");
    manifest_close(m);
    free(p);
}

static void test_missing_columns_and_files(void) {
    manifest *m = (manifest *)1;
    const char *csv = "path,caption\na.jpg,x\n";
    CHECK_EQ_INT(manifest_parse_csv("train.csv", csv, strlen(csv), NULL, &m), CG_ERR_FORMAT);
    CHECK_EQ_STR(cg_error_message(), "train.csv:1: no column \"filepath\" (columns: path, caption)");
    CHECK(m == NULL);
    manifest_opts o = {.img_key = "path"};
    CHECK_EQ_INT(manifest_parse_csv("train.csv", csv, strlen(csv), &o, &m), CG_ERR_FORMAT);
    CHECK_EQ_STR(cg_error_message(), "train.csv:1: no column \"title\" (columns: path, caption)");
    /* the header is found after blank lines and a BOM; empty column names are listed as such */
    CHECK_EQ_INT(manifest_parse_csv("b.csv", "\n\r\n,\t\n\n", 7, NULL, &m), CG_ERR_FORMAT);
    CHECK_EQ_STR(cg_error_message(), "b.csv:3: no column \"filepath\" (columns: , \t)");
    /* a file with nothing is an error */
    CHECK_EQ_INT(manifest_parse_csv("e.csv", "\xEF\xBB\xBF\r\n\n", 6, NULL, &m), CG_ERR_FORMAT);
    CHECK_EQ_STR(cg_error_message(), "e.csv: empty file, no header row");
    char *empty = write_tmp("empty.csv", "", 0);
    CHECK_EQ_INT(manifest_open_csv(empty, NULL, &m), CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "empty.csv: empty file") != NULL);
    char *missing = tmp_path("nope.csv");
    CHECK_EQ_INT(manifest_open_csv(missing, NULL, &m), CG_ERR_IO);
    CHECK(strstr(cg_error_message(), missing) != NULL);
    CHECK_EQ_INT(manifest_open_jsonl(missing, NULL, &m), CG_ERR_IO);
    /* a header only: zero samples, not an error */
    CHECK_EQ_INT(manifest_parse_csv("h.csv", "filepath,title\n", 15, NULL, &m), CG_OK);
    CHECK_EQ_INT(manifest_count(m), 0);
    manifest_close(m);
    free(empty);
    free(missing);
}

static void test_large_csv(void) {
    /* 200k rows: one string blob, no per-row allocations; spot-check rows */
    int n = 200000;
    size_t cap = (size_t)n * 48 + 64, len = 0;
    char *text = malloc(cap);
    len += (size_t)sprintf(text, "filepath,title\n");
    for (int i = 0; i < n; i++) len += (size_t)sprintf(text + len, "im/%07d.jpg,\"caption, number %d\"\n", i, i);
    manifest *m;
    CHECK_EQ_INT(manifest_parse_csv("big/m.csv", text, len, NULL, &m), CG_OK);
    CHECK_EQ_INT(manifest_count(m), n);
    CHECK_EQ_STR(manifest_caption(m, 123456), "caption, number 123456");
    CHECK_EQ_STR(manifest_image_name(m, n - 1), "big/im/0199999.jpg");
    manifest_close(m);
    free(text);
}

/* ---- JSONL */

static void test_jsonl(void) {
    const char *jl =
        "\xEF\xBB\xBF{\"image\": \"a.jpg\", \"caption\": \"a dog\"}\n"          /* 1 */
        "{\"file_name\": \"sub/b.png\", \"text\": \"一张狗的照片\"}\r\n"      /* 2: HF spelling, CRLF */
        "   \n"                                                              /* 3: blank */
        "{\"image\": \"c.jpg\", \"caption\": \"x\"\n"                        /* 4: bad JSON */
        "[1, 2]\n"                                                           /* 5: not an object */
        "{\"image\": \"d.jpg\"}\n"                                           /* 6: no caption */
        "{\"image\": 5, \"caption\": \"n\"}\n"                               /* 7: path not a string */
        "{\"image\": \"e.jpg\", \"caption\": \"\"}\n"                        /* 8: empty caption */
        "{\"image\": \"f.jpg\", \"caption\": \"tail\"} garbage\n"            /* 9: trailing text */
        "{\"image\": \"/abs/g.jpg\", \"caption\": \"\\u4e2d\\u6587 \\\"q\\\"\", \"extra\": [1]}"; /* 10 */
    char *p = write_tmp_str("caps.jsonl", jl);
    manifest *m;
    capture_begin();
    int rc = manifest_open_jsonl(p, NULL, &m);
    char *err = capture_end();
    CHECK_EQ_INT(rc, CG_OK);
    if (rc) return;
    CHECK_EQ_INT(manifest_count(m), 3);
    CHECK_EQ_INT(manifest_skipped(m), 6);
    CHECK_EQ_STR(manifest_caption(m, 0), "a dog");
    CHECK_EQ_STR(manifest_caption(m, 1), "一张狗的照片");
    CHECK_EQ_STR(manifest_caption(m, 2), "中文 \"q\"");
    char *b = tmp_path("sub/b.png");
    CHECK_EQ_STR(manifest_image_name(m, 1), b);
    CHECK_EQ_STR(manifest_image_name(m, 2), "/abs/g.jpg");
    char want[512];
    static const int lines[] = {4, 5, 6, 7, 8};
    for (int k = 0; k < 5; k++) {
        snprintf(want, sizeof want, "%s:%d: ", p, lines[k]);
        CHECK(strstr(err, want) != NULL);
    }
    CHECK(strstr(err, "not valid JSON") && strstr(err, "not a JSON object") && strstr(err, "no \"caption\" or \"text\""));
    free(b);
    free(err);
    manifest_close(m);
    free(p);
}

/* ---- image bytes */

static void test_read_image_files(void) {
    char *dir = tmp_path("imgs");
    CHECK_EQ_INT(cg_mkdir_p(dir), CG_OK);
    free(dir);
    char *img = write_tmp("imgs/one.jpg", "\xFF\xD8\xFF\x00 bytes", 9);
    const char *jl = "{\"image\": \"imgs/one.jpg\", \"caption\": \"c\"}\n{\"image\": \"imgs/missing.jpg\", \"caption\": \"c\"}\n";
    char *p = write_tmp_str("img.jsonl", jl);
    manifest *m;
    CHECK_EQ_INT(manifest_open_jsonl(p, NULL, &m), CG_OK);
    uint8_t *data;
    size_t n;
    CHECK_EQ_INT(manifest_read_image(m, 0, &data, &n), CG_OK);
    CHECK_EQ_INT(n, 9);
    CHECK(data && memcmp(data, "\xFF\xD8\xFF\x00 bytes", 9) == 0);
    free(data);
    CHECK_EQ_INT(manifest_read_image(m, 1, &data, &n), CG_ERR_IO);
    CHECK(strstr(cg_error_message(), "imgs/missing.jpg") != NULL);
    CHECK(data == NULL);
    CHECK_EQ_INT(manifest_read_image(m, 2, &data, &n), CG_ERR_STATE);
    manifest_close(m);
    free(img);
    free(p);
}

/* ---- Chinese-CLIP */

/* Reference base64 (standard alphabet, padded), written independently of the decoder. */
static char *b64(const uint8_t *d, size_t n) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(n / 3 * 4 + 5), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        *o++ = al[v >> 18];
        *o++ = al[(v >> 12) & 63];
        *o++ = i + 1 < n ? al[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? al[v & 63] : '=';
    }
    *o = 0;
    return out;
}

static const char *cn_texts =
    "{\"text_id\": 1, \"text\": \"一件红色的连衣裙\", \"image_ids\": [101, 102]}\n"   /* 1: two pairs */
    "{\"text_id\": 2, \"text\": \"白色运动鞋\", \"image_ids\": [103, 999, 104]}\n"    /* 2: 999 missing */
    "{\"text_id\": 3, \"text\": \"no images\", \"image_ids\": []}\n"                  /* 3: no pairs */
    "{\"text_id\": 4, \"image_ids\": [101]}\n"                                        /* 4: no text */
    "{\"text_id\": 5, \"text\": \"bad ids\", \"image_ids\": [\"101\", 1.5, 105]}\n"   /* 5: two bad ids */
    "not json\n"                                                                      /* 6 */
    "{\"text_id\": 7, \"text\": \"urlsafe\", \"image_ids\": [106, 107, 108]}\n";      /* 7 */

static void test_chinese_clip(void) {
    uint8_t bytes[300];
    for (int i = 0; i < 300; i++) bytes[i] = (uint8_t)(i * 7 + 3);
    char *e101 = b64(bytes, 10), *e102 = b64(bytes + 10, 11), *e103 = b64(bytes + 21, 12), *e104 = b64(bytes, 300);
    char *e105 = b64((const uint8_t *)"\xFB\xFF\xBF", 3);   /* "+/+/" : both URL-unsafe digits */
    char *e106 = cg_xstrdup(e105);
    for (char *c = e106; *c; c++) *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    char *e107 = cg_xstrdup(e101);
    e107[strcspn(e107, "=")] = 0;                            /* padding left out */
    char *tsv = cg_xasprintf(
        "101\t%s\n102\t%s\r\n103\t%s\n104\t%s\n105\t%s\n106\t%s\n107\t%s\n108\tAB!D\n"
        "no tab here\nx12\tAAAA\n101\tAAAA\n109\t\n", e101, e102, e103, e104, e105, e106, e107);
    char *tp = write_tmp_str("images.tsv", tsv);
    char *jp = write_tmp_str("texts.jsonl", cn_texts);
    manifest_opts o = {.image_tsv = tp};
    manifest *m;
    capture_begin();
    int rc = manifest_open_jsonl(jp, &o, &m);
    char *err = capture_end();
    CHECK_EQ_INT(rc, CG_OK);
    if (rc) return;
    /* pairs: 101 102 | 103 104 | 105 | 106 107 108 */
    CHECK_EQ_INT(manifest_count(m), 8);
    /* 999, "101", 1.5, the text-less line and the bad line */
    CHECK_EQ_INT(manifest_skipped(m), 5);
    CHECK_EQ_STR(manifest_caption(m, 0), "一件红色的连衣裙");
    CHECK(manifest_caption(m, 0) == manifest_caption(m, 1));   /* one copy per text */
    CHECK_EQ_STR(manifest_caption(m, 3), "白色运动鞋");
    char *name = cg_xasprintf("%s:id 104", tp);
    CHECK_EQ_STR(manifest_image_name(m, 3), name);
    free(name);
    char want[512];
    snprintf(want, sizeof want, "%s:2: image id 999 not in %s; pair skipped", jp, tp);
    CHECK(strstr(err, want) != NULL);
    snprintf(want, sizeof want, "%s:9: no tab", tp);
    CHECK(strstr(err, want) != NULL);
    snprintf(want, sizeof want, "%s:10: image id is not an integer", tp);
    CHECK(strstr(err, want) != NULL);
    snprintf(want, sizeof want, "%s:11: repeated image id", tp);
    CHECK(strstr(err, want) != NULL);
    free(err);

    static const size_t off[] = {0, 10, 21, 0}, len[] = {10, 11, 12, 300};
    uint8_t *data;
    size_t n;
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(manifest_read_image(m, i, &data, &n), CG_OK);
        CHECK_EQ_INT(n, len[i]);
        CHECK(data && memcmp(data, bytes + off[i], len[i]) == 0);
        free(data);
    }
    for (int i = 4; i < 6; i++) {   /* standard and URL-safe alphabets */
        CHECK_EQ_INT(manifest_read_image(m, i, &data, &n), CG_OK);
        CHECK(n == 3 && memcmp(data, "\xFB\xFF\xBF", 3) == 0);
        free(data);
    }
    CHECK_EQ_INT(manifest_read_image(m, 6, &data, &n), CG_OK);   /* no padding */
    CHECK(n == 10 && memcmp(data, bytes, 10) == 0);
    free(data);
    CHECK_EQ_INT(manifest_read_image(m, 7, &data, &n), CG_ERR_FORMAT);
    snprintf(want, sizeof want, "%s:id 108: bad base64 character 0x21 at offset 2", tp);
    CHECK_EQ_STR(cg_error_message(), want);
    CHECK(data == NULL);
    manifest_close(m);

    /* a missing TSV is an error naming it */
    manifest_opts bad = {.image_tsv = "/nonexistent/images.tsv"};
    CHECK_EQ_INT(manifest_open_jsonl(jp, &bad, &m), CG_ERR_IO);
    CHECK(strstr(cg_error_message(), "/nonexistent/images.tsv") != NULL);
    free(e101), free(e102), free(e103), free(e104), free(e105), free(e106), free(e107);
    free(tsv), free(tp), free(jp);
}

static void test_base64_rules(void) {
    /* round trips of every length 0..40 with and without padding; then malformed inputs */
    char *tp = tmp_path("b64.tsv"), *jp = tmp_path("b64.jsonl");
    uint8_t bytes[40];
    for (int i = 0; i < 40; i++) bytes[i] = (uint8_t)(255 - i * 13);
    size_t cap = 8192, tn = 0, jn = 0;
    char *tsv = malloc(cap), *jl = malloc(cap);
    for (int len = 1; len <= 40; len++) {
        char *e = b64(bytes, (size_t)len);
        tn += (size_t)sprintf(tsv + tn, "%d\t%s\n", len, e);
        e[strcspn(e, "=")] = 0;
        tn += (size_t)sprintf(tsv + tn, "%d\t%s\n", 1000 + len, e);
        jn += (size_t)sprintf(jl + jn, "{\"text\": \"t\", \"image_ids\": [%d, %d]}\n", len, 1000 + len);
        free(e);
    }
    /* malformed: a lone digit, "=" in the middle, three "=", padding that does not complete 4 */
    static const char *bad[] = {"QUJDR", "QU=JD", "QQ===", "QUI==", ""};
    for (int k = 0; k < 5; k++) {
        tn += (size_t)sprintf(tsv + tn, "%d\t%s\n", 2000 + k, bad[k]);
        jn += (size_t)sprintf(jl + jn, "{\"text\": \"t\", \"image_ids\": [%d]}\n", 2000 + k);
    }
    cg_file_write_atomic(tp, tsv, tn);
    cg_file_write_atomic(jp, jl, jn);
    manifest_opts o = {.image_tsv = tp};
    manifest *m;
    CHECK_EQ_INT(manifest_open_jsonl(jp, &o, &m), CG_OK);
    CHECK_EQ_INT(manifest_count(m), 85);
    uint8_t *data;
    size_t n;
    for (int i = 0; i < 80; i++) {
        int len = i / 2 + 1;
        CHECK_EQ_INT(manifest_read_image(m, i, &data, &n), CG_OK);
        CHECK_EQ_INT(n, len);
        CHECK(data && memcmp(data, bytes, (size_t)len) == 0);
        free(data);
    }
    for (int k = 0; k < 5; k++) {
        CHECK_EQ_INT(manifest_read_image(m, 80 + k, &data, &n), CG_ERR_FORMAT);
        char id[32];
        snprintf(id, sizeof id, ":id %d: ", 2000 + k);
        CHECK(strstr(cg_error_message(), id) != NULL);
    }
    manifest_close(m);
    free(tsv), free(jl), free(tp), free(jp);
}

/* ---- threads */

typedef struct {
    const manifest *m;
    int failures;
} reader_arg;

static void *reader_thread(void *p) {
    reader_arg *a = p;
    for (int round = 0; round < 200; round++)
        for (int64_t i = 0; i < manifest_count(a->m); i++) {
            uint8_t *data;
            size_t n;
            if (manifest_read_image(a->m, i, &data, &n) != CG_OK || n != 64 || data[0] != (uint8_t)i) a->failures++;
            free(data);
        }
    return NULL;
}

static void test_threads(void) {
    /* eight Chinese-CLIP samples decoded by four threads at once */
    char *tsv = malloc(4096), *jl = malloc(4096);
    size_t tn = 0, jn = 0;
    for (int id = 0; id < 8; id++) {
        uint8_t bytes[64];
        for (int k = 0; k < 64; k++) bytes[k] = (uint8_t)(id + k * 3);
        char *e = b64(bytes, 64);
        tn += (size_t)sprintf(tsv + tn, "%d\t%s\n", id, e);
        jn += (size_t)sprintf(jl + jn, "{\"text\": \"t%d\", \"image_ids\": [%d]}\n", id, id);
        free(e);
    }
    char *tp = write_tmp("thr.tsv", tsv, tn);
    manifest_opts o = {.image_tsv = tp};
    manifest *m;
    CHECK_EQ_INT(manifest_parse_jsonl("thr.jsonl", jl, jn, &o, &m), CG_OK);
    pthread_t th[4];
    reader_arg args[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (reader_arg){m, 0};
        pthread_create(&th[t], NULL, reader_thread, &args[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(args[t].failures, 0);
    }
    manifest_close(m);
    free(tsv), free(jl), free(tp);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/manifest_XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    TEST_RUN(test_csv_quoting_crlf_bom);
    TEST_RUN(test_csv_quote_details);
    TEST_RUN(test_csv_bad_rows_are_counted_and_named);
    TEST_RUN(test_tsv_and_keys);
    TEST_RUN(test_missing_columns_and_files);
    TEST_RUN(test_large_csv);
    TEST_RUN(test_jsonl);
    TEST_RUN(test_read_image_files);
    TEST_RUN(test_chinese_clip);
    TEST_RUN(test_base64_rules);
    TEST_RUN(test_threads);
    return TEST_REPORT();
}
