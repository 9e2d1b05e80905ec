/* Tests for src/data/wds.c: shard-pattern brace expansion (and its errors), webdataset's
 * member-name rule (checked against its own regex through PCRE2), and samples out of tars made
 * two independent ways at test time: GNU tar (gnu, posix and ustar formats, gzip and xz) and
 * libarchive's write API (pax with long and Chinese names, links, an over-limit member in a
 * .tar.gz). Truncated, missing and non-tar shards end with errors naming shard and member. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <archive.h>
#include <archive_entry.h>
#include <locale.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/log.h"
#include "data/wds.h"

static char tmpdir[256];

static char *tmp_path(const char *name) { return cg_xasprintf("%s/%s", tmpdir, name); }

static void write_str(const char *dir, const char *name, const char *text) {
    char *p = cg_xasprintf("%s/%s", dir, name);
    if (cg_file_write_atomic(p, text, strlen(text))) fprintf(stderr, "  %s\n", cg_error_message());
    free(p);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc) fprintf(stderr, "  command failed (%d): %s\n", rc, cmd);
    return rc;
}

/* ---- brace expansion */

static void expect_paths(const char *pattern, int n, const char *const *want) {
    char **p;
    int got;
    int rc = wds_expand(pattern, &p, &got);
    if (rc) fprintf(stderr, "  %s\n", cg_error_message());
    CHECK_EQ_INT(rc, CG_OK);
    if (rc) return;
    CHECK_EQ_INT(got, n);
    for (int i = 0; i < n && i < got; i++) CHECK_EQ_STR(p[i], want[i]);
    wds_free_paths(p, got);
}

static void expect_error(const char *pattern, const char *message) {
    char **p = (char **)1;
    int n = -1;
    CHECK_EQ_INT(wds_expand(pattern, &p, &n), CG_ERR_CONFIG);
    CHECK_EQ_STR(cg_error_message(), message);
    CHECK(p == NULL && n == 0);
}

static void test_expand(void) {
    expect_paths("plain.tar", 1, (const char *[]){"plain.tar"});
    expect_paths("data-{000..003}.tar", 4, (const char *[]){"data-000.tar", "data-001.tar", "data-002.tar", "data-003.tar"});
    expect_paths("{098..101}", 4, (const char *[]){"098", "099", "100", "101"});
    expect_paths("{8..11}", 4, (const char *[]){"8", "9", "10", "11"});
    expect_paths("s{5..5}", 1, (const char *[]){"s5"});
    expect_paths("{0000..0001}.tgz", 2, (const char *[]){"0000.tgz", "0001.tgz"});
    expect_paths("a{x,y}b{1..2}", 4, (const char *[]){"axb1", "axb2", "ayb1", "ayb2"});
    expect_paths("s{a,,c}", 3, (const char *[]){"sa", "s", "sc"});
    expect_paths("{a,b}{c,d}{0..1}", 8, (const char *[]){"ac0", "ac1", "ad0", "ad1", "bc0", "bc1", "bd0", "bd1"});
    expect_paths("a.tar::b-{0..1}.tar::/abs/{x,y}", 5, (const char *[]){"a.tar", "b-0.tar", "b-1.tar", "/abs/x", "/abs/y"});
    expect_paths("pipe:{1..2}", 2, (const char *[]){"pipe:1", "pipe:2"});   /* a single ':' is text */
    /* 00000..99999: 100k paths, the widths kept */
    char **p;
    int n;
    CHECK_EQ_INT(wds_expand("/d/laion-{00000..99999}.tar", &p, &n), CG_OK);
    CHECK_EQ_INT(n, 100000);
    if (n == 100000) {
        CHECK_EQ_STR(p[0], "/d/laion-00000.tar");
        CHECK_EQ_STR(p[4321], "/d/laion-04321.tar");
        CHECK_EQ_STR(p[99999], "/d/laion-99999.tar");
    }
    wds_free_paths(p, n);

    expect_error("x{000..099.tar", "shard pattern \"x{000..099.tar\": '{' is never closed at position 2");
    expect_error("x}.tar", "shard pattern \"x}.tar\": '}' without '{' at position 2");
    expect_error("{a,{b,c}}", "shard pattern \"{a,{b,c}}\": nested braces are not supported at position 4");
    expect_error("d-{abc}.tar", "shard pattern \"d-{abc}.tar\": a brace group needs a range {a..b} or a list {x,y} at position 3");
    expect_error("{}", "shard pattern \"{}\": a brace group needs a range {a..b} or a list {x,y} at position 1");
    expect_error("{1..x}", "shard pattern \"{1..x}\": range end is not a number at position 5");
    expect_error("{y..3}", "shard pattern \"{y..3}\": range start is not a number at position 2");
    expect_error("{..3}", "shard pattern \"{..3}\": range start is not a number at position 2");
    expect_error("{-1..3}", "shard pattern \"{-1..3}\": range start is not a number at position 2");
    expect_error("{1..3..2}", "shard pattern \"{1..3..2}\": range end is not a number at position 5");
    expect_error("a{9..1}", "shard pattern \"a{9..1}\": range end is before its start at position 6");
    expect_error("{0..10000000}", "shard pattern \"{0..10000000}\": range of more than 10000000 shards at position 1");
    expect_error("{0..9999}{0..9999}", "shard pattern \"{0..9999}{0..9999}\": more than 10000000 shards at position 1");
    expect_error("a.tar::{0..9999}{0..999}", "shard pattern \"a.tar::{0..9999}{0..999}\": more than 10000000 shards at position 8");
    expect_error("", "shard pattern \"\": empty shard pattern at position 1");
    expect_error("a.tar::", "shard pattern \"a.tar::\": empty shard pattern at position 8");
    expect_error("::a.tar", "shard pattern \"::a.tar\": empty shard pattern at position 1");
    expect_error("a::{1..2::b}", "shard pattern \"a::{1..2::b}\": '{' is never closed at position 4");
}

/* ---- the member-name rule against webdataset's own regular expressions */

typedef struct {
    pcre2_code *ext, *meta;
    pcre2_match_data *md;
} py_rules;

// tariterators.py: skip if ("/" not in f and f.startswith("__") and f.endswith("__")) or
// re.match(r"__[^/]*__($|/)", f); else base_plus_ext: re.match(r"^((?:.*/|)[^.]+)[.]([^/]*)$", f).
// (Line comments: the regex holds the characters that would end a block comment.)
static int python_split(py_rules *r, const char *name, size_t *key_len) {
    size_t n = strlen(name);
    if (!strchr(name, '/') && n >= 2 && strncmp(name, "__", 2) == 0 && strcmp(name + n - 2, "__") == 0) return 0;
    if (pcre2_match(r->meta, (PCRE2_SPTR)name, n, 0, PCRE2_ANCHORED, r->md, NULL) >= 0) return 0;
    if (pcre2_match(r->ext, (PCRE2_SPTR)name, n, 0, 0, r->md, NULL) < 0) return 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
    *key_len = ov[3] - ov[2];
    return 1;
}

static void test_split_name_matches_webdataset(void) {
    int err;
    PCRE2_SIZE off;
    py_rules r;
    r.ext = pcre2_compile((PCRE2_SPTR) "^((?:.*/|)[^.]+)[.]([^/]*)$", PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    r.meta = pcre2_compile((PCRE2_SPTR) "__[^/]*__($|/)", PCRE2_ZERO_TERMINATED, 0, &err, &off, NULL);
    CHECK(r.ext && r.meta);
    if (!r.ext || !r.meta) return;
    r.md = pcre2_match_data_create(8, NULL);
    /* named cases first */
    static const struct { const char *name; int ok; const char *key, *field; } cases[] = {
        {"000123.jpg", 1, "000123", "jpg"},
        {"dir/abc.seg.jpg", 1, "dir/abc", "seg.jpg"},
        {"a.b/c.JPG", 1, "a.b/c", "JPG"},
        {"dir/.hidden", 1, "dir/", "hidden"},
        {"x.y/.z", 0, NULL, NULL},
        {".hidden", 0, NULL, NULL},
        {"README", 0, NULL, NULL},
        {"dir.d/README", 0, NULL, NULL},
        {"__meta__", 0, NULL, NULL},
        {"___", 0, NULL, NULL},
        {"__index__/x.json", 0, NULL, NULL},
        {"__x__.json", 1, "__x__", "json"},
        {"d/__x__.json", 1, "d/__x__", "json"},
        {"a.", 1, "a", ""},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        size_t kl = 0, fa = 0;
        int ok = wds_split_name(cases[k].name, &kl, &fa);
        CHECK_EQ_INT(ok, cases[k].ok);
        if (ok && cases[k].ok) {
            CHECK(kl == strlen(cases[k].key) && strncmp(cases[k].name, cases[k].key, kl) == 0);
            CHECK_EQ_STR(cases[k].name + fa, cases[k].field);
        }
    }
    /* then every name of up to 7 characters from "a_./" and 300k random longer ones */
    static const char alpha[] = "a_./";
    char name[32];
    long mismatches = 0, tried = 0;
    unsigned long long seed = 12345;
    for (int len = 0; len <= 20; len++) {
        long total = 1;
        for (int i = 0; i < len && len <= 7; i++) total *= 4;
        if (len > 7) total = 300000 / 13;
        for (long idx = 0; idx < total; idx++) {
            long v = idx;
            for (int i = 0; i < len; i++) {
                if (len <= 7) {
                    name[i] = alpha[v % 4];
                    v /= 4;
                } else {
                    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                    name[i] = "a_./A"[(seed >> 33) % 5];
                }
            }
            name[len] = 0;
            size_t pk = 0, ck = 0, fa = 0;
            int py = python_split(&r, name, &pk), c = wds_split_name(name, &ck, &fa);
            tried++;
            if (py != c || (py && (pk != ck || fa != ck + 1))) {
                if (mismatches++ < 5) fprintf(stderr, "  name \"%s\": python %d key %zu, C %d key %zu\n", name, py, pk, c, ck);
            }
        }
    }
    CHECK_EQ_INT(mismatches, 0);
    CHECK(tried > 300000);
    pcre2_match_data_free(r.md);
    pcre2_code_free(r.ext);
    pcre2_code_free(r.meta);
}

/* ---- samples */

typedef struct {
    const char *key;
    int ok;
    const char *image, *caption, *why;   /* image bytes as text; `why` a substring */
} want_sample;

/* The GNU tar fixture, in member order (see make_gnu_fixture) and what comes out of it. */
static const want_sample gnu_want[] = {
    {"000", 1, "JPG000", "a cat", NULL},
    {"001", 1, "PNG001", "caption one", NULL},
    {"002", 0, "JPG002", NULL, "no caption (fields: jpg)"},
    {"003", 0, "JPG003", NULL, "no caption (fields: jpg)"},
    {"002", 0, NULL, "late", "no image (fields: txt)"},          /* the split sample: key change */
    {"dir/abc", 1, "ABC", "abc caption", NULL},                  /* abc.seg.jpg is field seg.jpg */
    {"004", 1, "JPG004", "upper", NULL},
    {"005", 1, "JPG005", "five", NULL},                          /* metadata in between is skipped */
    {"006", 1, "JPG006", "从 json 来的标题", NULL},
    {"007", 1, "WEBP007", "text key", NULL},
    {"008", 0, "JPG008", NULL, "no caption (fields: jpg)"},
    {"009", 0, "JPG009", NULL, "duplicate field jpg"},          /* nothing read after the problem */
    {"010", 1, "JPG010", "pref", NULL},                          /* jpg before png whatever the order */
    {"011", 1, "JPG011", "json fallback", NULL},                 /* empty txt: the json caption */
    {"012", 1, "JPG012", "twelve", NULL},
    {"013", 0, "JPG013", NULL, "no caption (fields: json, jpg)"},
    {"014", 0, NULL, NULL, "no image and no caption (fields: cls)"},
};
#define N_GNU_WANT ((int)(sizeof gnu_want / sizeof *gnu_want))

static const char *gnu_members =
    "dir 000.jpg 000.txt 001.txt 001.json 001.png 002.jpg 003.jpg 002.txt "
    "dir/abc.seg.jpg dir/abc.jpg dir/abc.txt 004.JPG 004.TXT 005.jpg __meta__ __index__/x.json 005.txt "
    "006.jpg 006.json 007.webp 007.json 008.jpg 009.jpg 009.JPG 009.txt 010.png 010.jpg 010.txt "
    "011.jpg 011.txt 011.json README 012.jpg 012.txt 012.cls 013.json 013.jpg 014.cls";

static char *gnu_src;

static void make_gnu_fixture(void) {
    gnu_src = tmp_path("gnu_src");
    char *sub = cg_xasprintf("%s/dir", gnu_src), *idx = cg_xasprintf("%s/__index__", gnu_src);
    cg_mkdir_p(sub);
    cg_mkdir_p(idx);
    static const char *files[][2] = {
        {"000.jpg", "JPG000"}, {"000.txt", "a cat"}, {"001.txt", "caption one"},
        {"001.json", "{\"caption\": \"not used: txt wins\"}"}, {"001.png", "PNG001"}, {"002.jpg", "JPG002"},
        {"003.jpg", "JPG003"}, {"002.txt", "late"}, {"dir/abc.seg.jpg", "SEG"}, {"dir/abc.jpg", "ABC"},
        {"dir/abc.txt", "abc caption"}, {"004.JPG", "JPG004"}, {"004.TXT", "upper"}, {"005.jpg", "JPG005"},
        {"__meta__", "meta"}, {"__index__/x.json", "{}"}, {"005.txt", "five"}, {"006.jpg", "JPG006"},
        {"006.json", "{\"url\": \"http://x\", \"caption\": \"从 json 来的标题\"}"}, {"007.webp", "WEBP007"},
        {"007.json", "{\"text\": \"text key\"}"}, {"008.jpg", "JPG008"}, {"009.jpg", "JPG009"}, {"009.JPG", "JPG009b"},
        {"009.txt", "dup"}, {"010.png", "PNG010"}, {"010.jpg", "JPG010"}, {"010.txt", "pref"}, {"011.jpg", "JPG011"},
        {"011.txt", ""}, {"011.json", "{\"caption\": \"json fallback\"}"}, {"README", "not a sample"},
        {"012.jpg", "JPG012"}, {"012.txt", "twelve"}, {"012.cls", "3"}, {"013.json", "{\"caption\": 5}"},
        {"013.jpg", "JPG013"}, {"014.cls", "4"},
    };
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) write_str(gnu_src, files[k][0], files[k][1]);
    free(sub);
    free(idx);
}

/* Read every sample of a reader and compare with `want`. */
static void expect_samples(wds_reader *r, const want_sample *want, int n_want, const char *label) {
    wds_sample s;
    int i = 0, rc;
    while ((rc = wds_next(r, &s)) == 1) {
        if (i < n_want) {
            const want_sample *w = &want[i];
            int bad = 0;
            if (!s.key || strcmp(s.key, w->key) != 0 || s.ok != w->ok) bad = 1;
            if (w->image && (!s.image || s.image_n != strlen(w->image) || memcmp(s.image, w->image, s.image_n) != 0)) bad = 1;
            if (!w->image && s.image) bad = 1;
            if (w->caption ? !s.caption || strcmp(s.caption, w->caption) != 0 : s.caption != NULL) bad = 1;
            if (w->why ? !strstr(s.why, w->why) : s.why[0] != 0) bad = 1;
            if (s.ok && (!s.image || !s.caption)) bad = 1;
            if (bad) {
                fprintf(stderr, "  %s: sample %d: key \"%s\" ok %d caption \"%s\" why \"%s\" (want \"%s\" %d \"%s\" \"%s\")\n", label,
                        i, s.key ? s.key : "(null)", s.ok, s.caption ? s.caption : "(null)", s.why, w->key, w->ok,
                        w->caption ? w->caption : "(null)", w->why ? w->why : "");
                CHECK(0);
            }
        }
        i++;
        wds_sample_free(&s);
    }
    if (rc) fprintf(stderr, "  %s: %s\n", label, cg_error_message());
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(i, n_want);
    CHECK_EQ_INT(wds_next(r, &s), 0);   /* stays at the end */
}

static void expect_shard(const char *path, const want_sample *want, int n_want) {
    wds_reader *r;
    int rc = wds_open(path, &r);
    if (rc) fprintf(stderr, "  %s\n", cg_error_message());
    CHECK_EQ_INT(rc, CG_OK);
    if (rc) return;
    expect_samples(r, want, n_want, path);
    wds_close(r);
    int64_t n = -1;
    CHECK_EQ_INT(wds_count(path, &n), CG_OK);
    CHECK_EQ_INT(n, n_want);
}

static void test_gnu_tar_shards(void) {
    make_gnu_fixture();
    static const char *variants[][2] = {
        {"gnu.tar", "--format=gnu -cf"}, {"posix.tar", "--format=posix -cf"}, {"ustar.tar", "--format=ustar -cf"},
        {"gnu.tar.gz", "-czf"}, {"gnu.tar.xz", "-cJf"},
    };
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        char *out = tmp_path(variants[v][0]);
        if (sh("tar --no-recursion %s '%s' -C '%s' %s", variants[v][1], out, gnu_src, gnu_members) == 0)
            expect_shard(out, gnu_want, N_GNU_WANT);
        else
            CHECK(0);
        free(out);
    }
    /* "./" names (tar -C dir .): the key keeps the "./" as webdataset's does */
    char *dot = tmp_path("dot.tar");
    if (sh("tar --no-recursion -cf '%s' -C '%s' ./000.jpg ./000.txt", dot, gnu_src) == 0) {
        static const want_sample w[] = {{"./000", 1, "JPG000", "a cat", NULL}};
        expect_shard(dot, w, 1);
    }
    free(dot);
}

static void test_memory_reader(void) {
    char *path = tmp_path("gnu.tar"), *data;
    size_t n;
    CHECK_EQ_INT(cg_file_read(path, &data, &n), CG_OK);
    wds_reader *r;
    CHECK_EQ_INT(wds_open_memory(data, n, "in-memory", &r), CG_OK);
    expect_samples(r, gnu_want, N_GNU_WANT, "in-memory");
    wds_close(r);
    free(data);
    free(path);
}

/* ---- tars written through libarchive */

static void add_entry(struct archive *a, const char *name, const char *data, size_t n, int type, const char *link) {
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname_utf8(e, name);
    archive_entry_set_filetype(e, (unsigned)type);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, 1700000000, 0);
    if (type == AE_IFLNK) archive_entry_set_symlink(e, link);
    if (type == AE_IFREG && link) archive_entry_set_hardlink(e, link);
    archive_entry_set_size(e, type == AE_IFREG && !link ? (la_int64_t)n : 0);
    if (archive_write_header(a, e) != ARCHIVE_OK) fprintf(stderr, "  write header %s: %s\n", name, archive_error_string(a));
    if (type == AE_IFREG && !link && n && archive_write_data(a, data, n) != (la_ssize_t)n)
        fprintf(stderr, "  write data %s: %s\n", name, archive_error_string(a));
    archive_entry_free(e);
}

/* libarchive's writer converts names through the locale, so the UTF-8 names need a UTF-8
 * LC_CTYPE while writing; reading happens back in the "C" locale, where the reader must fall
 * back to the entries' UTF-8 names. */
static struct archive *writer(const char *path, int pax, int gzip) {
    setlocale(LC_CTYPE, "C.UTF-8");
    struct archive *a = archive_write_new();
    if (pax) archive_write_set_format_pax_restricted(a);
    else archive_write_set_format_ustar(a);
    if (gzip) {
        archive_write_add_filter_gzip(a);
        archive_write_set_filter_option(a, "gzip", "compression-level", "1");
    }
    if (archive_write_open_filename(a, path) != ARCHIVE_OK) fprintf(stderr, "  open %s: %s\n", path, archive_error_string(a));
    return a;
}

static void finish_writer(struct archive *a) {
    archive_write_close(a);
    archive_write_free(a);
    setlocale(LC_CTYPE, "C");
}

static void test_libarchive_written(void) {
    char longdir[160];
    memset(longdir, 'd', 150);
    longdir[150] = 0;
    char *long_jpg = cg_xasprintf("%s/sample.jpg", longdir), *long_txt = cg_xasprintf("%s/sample.TXT", longdir);
    char *path = tmp_path("la.tar");
    struct archive *a = writer(path, 1, 0);
    add_entry(a, long_jpg, "LONGJPG", 7, AE_IFREG, NULL);          /* pax: names over 100 bytes */
    add_entry(a, long_txt, "long name", 9, AE_IFREG, NULL);
    add_entry(a, "图片/", NULL, 0, AE_IFDIR, NULL);
    add_entry(a, "图片/猫.jpg", "CAT", 3, AE_IFREG, NULL);         /* UTF-8 names */
    add_entry(a, "图片/猫.txt", "一只猫", strlen("一只猫"), AE_IFREG, NULL);
    add_entry(a, "020.jpg", NULL, 0, AE_IFLNK, "图片/猫.jpg");      /* a symlink is not a file */
    add_entry(a, "020.txt", "link", 4, AE_IFREG, NULL);
    add_entry(a, "021.jpg", NULL, 0, AE_IFREG, "图片/猫.jpg");      /* neither is a hard link */
    add_entry(a, "021.txt", "hard", 4, AE_IFREG, NULL);
    add_entry(a, "022.webp", "", 0, AE_IFREG, NULL);                /* empty members are members */
    add_entry(a, "022.txt", "empty image", 11, AE_IFREG, NULL);
    finish_writer(a);
    char *keylong = cg_xasprintf("%s/sample", longdir);
    const want_sample want[] = {
        {keylong, 1, "LONGJPG", "long name", NULL},
        {"图片/猫", 1, "CAT", "一只猫", NULL},
        {"020", 0, NULL, "link", "no image (fields: txt)"},
        {"021", 0, NULL, "hard", "no image (fields: txt)"},
        {"022", 1, "", "empty image", NULL},
    };
    expect_shard(path, want, 5);
    free(keylong), free(long_jpg), free(long_txt), free(path);
}

static void test_member_over_limit(void) {
    /* 256 MiB + 1 of zeros, gzip'd to a few hundred KiB: the sample is refused, not read */
    char *path = tmp_path("big.tar.gz");
    struct archive *a = writer(path, 0, 1);
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "030.jpg");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_size(e, WDS_MAX_MEMBER + 1);
    archive_write_header(a, e);
    archive_entry_free(e);
    char *zeros = calloc(1, 1 << 20);
    for (int k = 0; k < 256; k++) archive_write_data(a, zeros, 1 << 20);
    archive_write_data(a, zeros, 1);
    free(zeros);
    add_entry(a, "030.txt", "big", 3, AE_IFREG, NULL);
    add_entry(a, "031.jpg", "J", 1, AE_IFREG, NULL);
    add_entry(a, "031.txt", "small", 5, AE_IFREG, NULL);
    finish_writer(a);
    const want_sample want[] = {
        {"030", 0, NULL, NULL, "member 030.jpg is 268435457 bytes, over the limit of 268435456"},
        {"031", 1, "J", "small", NULL},
    };
    expect_shard(path, want, 2);
    free(path);
}

/* ---- broken shards */

static void test_truncated_and_missing(void) {
    char *path = tmp_path("cut.tar");
    char big[30000];
    memset(big, 'x', sizeof big);
    struct archive *a = writer(path, 0, 0);
    add_entry(a, "000.jpg", big, 5000, AE_IFREG, NULL);   /* header at 0, data 512..5512 */
    add_entry(a, "000.txt", "zero", 4, AE_IFREG, NULL);    /* header at 5632 */
    add_entry(a, "001.jpg", big, 30000, AE_IFREG, NULL);   /* header at 6656, data from 7168 */
    add_entry(a, "001.txt", "one", 3, AE_IFREG, NULL);
    finish_writer(a);
    /* cut inside 001.jpg's data, inside 001.jpg's header, inside the very first header */
    static const struct { long size; const char *member; int samples_before; } cuts[] = {
        {17168, "001.jpg", 1}, {6756, "000.txt", 1}, {300, NULL, 0}};
    for (int c = 0; c < 3; c++) {
        char *cut = cg_xasprintf("%s/cut%d.tar", tmpdir, c);
        sh("head -c %ld '%s' > '%s'", cuts[c].size, path, cut);
        wds_reader *r = NULL;
        wds_sample s;
        int rc = wds_open(cut, &r), got = 0;   /* libarchive may read the first header already */
        while (r && (rc = wds_next(r, &s)) == 1) {
            got += s.ok;
            wds_sample_free(&s);
        }
        CHECK_EQ_INT(rc, CG_ERR_FORMAT);
        CHECK_EQ_INT(got, cuts[c].samples_before);   /* complete samples before the cut come out */
        const char *msg = cg_error_message();
        fprintf(stderr, "  cut at %ld: %s\n", cuts[c].size, msg);
        CHECK(strstr(msg, cut) != NULL);
        if (cuts[c].member) CHECK(strstr(msg, cuts[c].member) != NULL);
        if (r) {
            CHECK_EQ_INT(wds_next(r, &s), CG_ERR_FORMAT);    /* the error sticks */
            CHECK(strstr(cg_error_message(), cut) != NULL);
            wds_close(r);
        }
        int64_t n;
        CHECK_EQ_INT(wds_count(cut, &n), CG_ERR_FORMAT);
        free(cut);
    }
    /* a cut gzip stream */
    char *gz = tmp_path("gnu.tar.gz"), *gzcut = tmp_path("cut.tar.gz");
    sh("head -c 200 '%s' > '%s'", gz, gzcut);
    int64_t n;
    CHECK_EQ_INT(wds_count(gzcut, &n), CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), gzcut) != NULL);
    free(gz), free(gzcut);

    /* missing, not a tar, empty */
    char *missing = tmp_path("missing-000.tar");
    wds_reader *r = (wds_reader *)1;
    CHECK_EQ_INT(wds_open(missing, &r), CG_ERR_IO);
    CHECK(r == NULL);
    CHECK(strstr(cg_error_message(), missing) != NULL);
    CHECK_EQ_INT(wds_count(missing, &n), CG_ERR_IO);
    write_str(tmpdir, "text.tar", "this is not a tar archive at all, just some text\n");
    write_str(tmpdir, "empty.tar", "");
    static const char *bad[] = {"text.tar", "empty.tar"};
    for (int k = 0; k < 2; k++) {
        char *p = tmp_path(bad[k]);
        int rc = wds_open(p, &r);
        if (rc == CG_OK) {
            wds_sample s;
            rc = wds_next(r, &s);
            wds_close(r);
        }
        fprintf(stderr, "  %s: rc %d: %s\n", bad[k], rc, rc ? cg_error_message() : "");
        CHECK_EQ_INT(rc, CG_ERR_FORMAT);
        CHECK(strstr(cg_error_message(), p) != NULL);
        free(p);
    }
    free(missing);
    free(path);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/wds_XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    TEST_RUN(test_expand);
    TEST_RUN(test_split_name_matches_webdataset);
    TEST_RUN(test_gnu_tar_shards);
    TEST_RUN(test_memory_reader);
    TEST_RUN(test_libarchive_written);
    TEST_RUN(test_member_over_limit);
    TEST_RUN(test_truncated_and_missing);
    free(gnu_src);
    return TEST_REPORT();
}
