/* Tests of the threaded loader (data/loader.h) over real files: Fashion-MNIST exported by
 * `clipgrid data fmnist` as PNG + CSV/JSONL and as WebDataset shards, plus hand-made broken
 * samples. What must hold: the same samples, order and pixels for any number of workers; each
 * sample once per epoch; broken samples skipped and counted, never fatal; resuming at a position
 * continues the stream exactly. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "check.h"
#include "core/fileio.h"
#include "core/log.h"
#include "data/loader.h"

static char root[512];

static int sh(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *at(const char *name) { return cg_path_join(root, name); }

/* Read `nb` batches of B from a loader opened with these options; images and captions appended. */
typedef struct {
    float *img;
    char **cap;
    int n;
} samples;

static int read_batches(const loader_opts *o, int64_t start, int B, int nb, samples *s, int64_t *end_pos, int64_t *skipped) {
    loader *l;
    int rc = loader_open(o, start, &l);
    if (rc) { fprintf(stderr, "  loader_open: %s\n", cg_error_message()); return rc; }
    size_t plane = (size_t)3 * o->image_size * o->image_size;
    s->img = cg_xmalloc((size_t)B * nb * plane * sizeof(float));
    s->cap = cg_xcalloc((size_t)B * nb, sizeof(char *));
    s->n = 0;
    const char **caps = cg_xmalloc((size_t)B * sizeof *caps);
    for (int b = 0; b < nb && !rc; b++) {
        rc = loader_next(l, B, s->img + (size_t)b * B * plane, caps, NULL);
        if (rc) { fprintf(stderr, "  loader_next: %s\n", cg_error_message()); break; }
        for (int i = 0; i < B; i++) s->cap[s->n++] = cg_xstrdup(caps[i]);
    }
    if (end_pos) *end_pos = loader_position(l);
    if (skipped) *skipped = loader_skipped(l);
    free(caps);
    loader_close(l);
    return rc;
}

static void samples_free(samples *s) {
    for (int i = 0; i < s->n; i++) free(s->cap[i]);
    free(s->cap);
    free(s->img);
}

static int samples_equal(const samples *a, const samples *b, size_t plane) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->cap[i], b->cap[i])) { fprintf(stderr, "  sample %d: \"%s\" vs \"%s\"\n", i, a->cap[i], b->cap[i]); return 0; }
    return memcmp(a->img, b->img, (size_t)a->n * plane * sizeof(float)) == 0;
}

static void opts(loader_opts *o, const char *spec, int workers) {
    loader_opts_defaults(o);
    o->spec = spec;
    o->image_size = 32;
    o->workers = workers;
    o->batch_hint = 16;
    o->seed = 7;
    o->shuffle_buffer = 50;
    o->hflip = 1;
}

/* A manifest whose captions name the sample ("sample 17"), so order is visible. */
static void write_unique_csv(const char *name, int n, const char *extra_rows) {
    char *p = at(name);
    FILE *f = fopen(p, "w");
    fprintf(f, "filepath,title\n");
    for (int i = 0; i < n; i++) fprintf(f, "png/train/%06d.png,sample %d\n", i, i);
    if (extra_rows) fputs(extra_rows, f);
    fclose(f);
    free(p);
}

static void test_same_samples_for_any_worker_count(void) {
    /* jpg128: JPEGs four times the crop size, so the DCT-domain downscaling path runs */
    const char *specs[] = {"png/train.csv", "png/train.jsonl", "wds/train-{000000..000002}.tar", "jpg128/train.csv",
                           "fmnist:train"};
    for (int k = 0; k < 5; k++) {
        char *spec = k < 4 ? at(specs[k]) : cg_xstrdup(specs[k]);
        loader_opts o1, o4;
        opts(&o1, spec, 1);
        opts(&o4, spec, 4);
        o4.prefetch = 7;   /* a ring smaller than a batch: workers wrap around it */
        samples a, b;
        CHECK_EQ_INT(read_batches(&o1, 0, 16, 5, &a, NULL, NULL), CG_OK);
        CHECK_EQ_INT(read_batches(&o4, 0, 16, 5, &b, NULL, NULL), CG_OK);
        int same = samples_equal(&a, &b, (size_t)3 * 32 * 32);
        if (!same) fprintf(stderr, "  %s differs between 1 and 4 workers\n", specs[k]);
        CHECK(same);
        /* shuffled: not the file order */
        CHECK(a.n == 80);
        samples_free(&a);
        samples_free(&b);
        free(spec);
    }
}

static void test_each_sample_once_per_epoch(void) {
    write_unique_csv("unique.csv", 300, NULL);
    char *spec = at("unique.csv");
    loader_opts o;
    opts(&o, spec, 3);
    samples s;
    CHECK_EQ_INT(read_batches(&o, 0, 30, 20, &s, NULL, NULL), CG_OK);   /* two epochs of 300 */
    int seen[2][300] = {{0}};
    int in_order = 1;
    for (int i = 0; i < s.n; i++) {
        int id = atoi(s.cap[i] + 7);
        CHECK(id >= 0 && id < 300);
        if (id >= 0 && id < 300) seen[i / 300][id]++;
        if (i < 300 && id != i) in_order = 0;
    }
    for (int e = 0; e < 2; e++)
        for (int id = 0; id < 300; id++) CHECK_EQ_INT(seen[e][id], 1);
    CHECK(!in_order);
    int same_order = 1;
    for (int i = 0; i < 300; i++) same_order &= !strcmp(s.cap[i], s.cap[300 + i]);
    CHECK(!same_order);   /* each epoch has its own permutation */
    samples_free(&s);
    /* eval mode: file order, centre crop, deterministic */
    o.train = 0;
    CHECK_EQ_INT(read_batches(&o, 0, 25, 2, &s, NULL, NULL), CG_OK);
    for (int i = 0; i < s.n; i++) {
        char want[32];
        snprintf(want, sizeof want, "sample %d", i);
        CHECK_EQ_STR(s.cap[i], want);
    }
    samples_free(&s);
    free(spec);
}

static void test_broken_samples_are_skipped_and_counted(void) {
    /* a truncated PNG, a garbage file, a missing file, an empty caption: 4 bad rows among 300 */
    CHECK_EQ_INT(sh("cd \"$ROOT\" && head -c 60 png/train/000001.png > bad_truncated.png && "
                    "printf 'not an image at all' > bad_garbage.png"), 0);
    write_unique_csv("broken.csv", 300,
                     "bad_truncated.png,truncated\n"
                     "bad_garbage.png,garbage\n"
                     "png/train/does_not_exist.png,missing\n"
                     "png/train/000002.png,\n");
    char *spec = at("broken.csv");
    loader_opts o1, o3;
    opts(&o1, spec, 1);
    opts(&o3, spec, 3);
    samples a, b;
    int64_t end_a = 0, end_b = 0, sk_a = 0, sk_b = 0;
    /* 303 positions per epoch (the empty caption is dropped by the manifest): 2 epochs */
    CHECK_EQ_INT(read_batches(&o1, 0, 50, 12, &a, &end_a, &sk_a), CG_OK);
    CHECK_EQ_INT(read_batches(&o3, 0, 50, 12, &b, &end_b, &sk_b), CG_OK);
    CHECK(samples_equal(&a, &b, (size_t)3 * 32 * 32));
    CHECK_EQ_INT(end_a, end_b);
    CHECK_EQ_INT(sk_a, sk_b);
    /* 600 good samples: every position consumed is a good sample or a counted skip; the three bad
     * files of epoch 0 are all behind us, those of epoch 1 maybe not yet. loader_skipped also
     * counts the manifest's own dropped row (the empty caption). */
    CHECK_EQ_INT(end_a, 600 + (sk_a - 1));
    CHECK(sk_a - 1 >= 3 && sk_a - 1 <= 6);
    for (int i = 0; i < a.n; i++) {
        CHECK(strcmp(a.cap[i], "truncated") && strcmp(a.cap[i], "garbage") && strcmp(a.cap[i], "missing"));
    }
    samples_free(&a);
    samples_free(&b);
    free(spec);
}

static void test_all_broken_is_an_error(void) {
    char *p = at("all_bad.csv");
    FILE *f = fopen(p, "w");
    fprintf(f, "filepath,title\nbad_garbage.png,one\nnope.png,two\n");
    fclose(f);
    loader_opts o;
    opts(&o, p, 2);
    loader *l;
    CHECK_EQ_INT(loader_open(&o, 0, &l), CG_OK);
    float img[3 * 32 * 32 * 2];
    const char *caps[2];
    int rc = loader_next(l, 2, img, caps, NULL);
    CHECK(rc != CG_OK);
    CHECK(strstr(cg_error_message(), "no usable sample") != NULL);
    loader_close(l);
    free(p);
}

/* Reading k batches, then reopening at loader_position() and reading the rest, equals reading
 * them all in one go: for a manifest and for shards with their shuffle buffer. */
static void test_resume_at_position_continues_exactly(void) {
    const char *specs[] = {"broken.csv", "wds/train-{000000..000002}.tar"};
    for (int k = 0; k < 2; k++) {
        char *spec = at(specs[k]);
        loader_opts o;
        opts(&o, spec, 2);
        samples all, first, rest;
        int64_t pos = 0;
        CHECK_EQ_INT(read_batches(&o, 0, 40, 12, &all, NULL, NULL), CG_OK);     /* crosses an epoch */
        CHECK_EQ_INT(read_batches(&o, 0, 40, 5, &first, &pos, NULL), CG_OK);
        CHECK_EQ_INT(read_batches(&o, pos, 40, 7, &rest, NULL, NULL), CG_OK);
        size_t plane = (size_t)3 * 32 * 32;
        int ok = all.n == first.n + rest.n;
        for (int i = 0; ok && i < first.n; i++) ok = !strcmp(all.cap[i], first.cap[i]);
        for (int i = 0; ok && i < rest.n; i++) ok = !strcmp(all.cap[first.n + i], rest.cap[i]);
        ok = ok && !memcmp(all.img, first.img, (size_t)first.n * plane * sizeof(float)) &&
             !memcmp(all.img + (size_t)first.n * plane, rest.img, (size_t)rest.n * plane * sizeof(float));
        if (!ok) fprintf(stderr, "  %s: resume at %lld differs\n", specs[k], (long long)pos);
        CHECK(ok);
        samples_free(&all);
        samples_free(&first);
        samples_free(&rest);
        free(spec);
    }
}

static void test_shards_every_sample_once_per_epoch(void) {
    char *spec = at("wds/train-{000000..000002}.tar");
    loader_opts o;
    opts(&o, spec, 2);
    loader *l;
    CHECK_EQ_INT(loader_open(&o, 0, &l), CG_OK);
    CHECK_EQ_INT(loader_epoch_size(l), 300);
    loader_close(l);
    /* the shards hold Fashion-MNIST captions, not unique ones: compare pixel checksums instead */
    samples s;
    CHECK_EQ_INT(read_batches(&o, 0, 50, 6, &s, NULL, NULL), CG_OK);
    size_t plane = (size_t)3 * 32 * 32;
    o.train = 0;
    samples ordered;
    CHECK_EQ_INT(read_batches(&o, 0, 50, 6, &ordered, NULL, NULL), CG_OK);
    /* eval mode reads the tar order; train mode shuffles: a permutation of the same captions */
    int counts[2][16] = {{0}};
    (void)plane;
    for (int i = 0; i < 300; i++) {
        unsigned h1 = 0, h2 = 0;
        for (const char *p = s.cap[i]; *p; p++) h1 = h1 * 31 + (unsigned char)*p;
        for (const char *p = ordered.cap[i]; *p; p++) h2 = h2 * 31 + (unsigned char)*p;
        counts[0][h1 % 16]++;
        counts[1][h2 % 16]++;
    }
    CHECK(memcmp(counts[0], counts[1], sizeof counts[0]) == 0);
    int same = 1;
    for (int i = 0; i < 300; i++) same &= !strcmp(s.cap[i], ordered.cap[i]);
    CHECK(!same);
    samples_free(&s);
    samples_free(&ordered);
    free(spec);
}

/* Chinese-CLIP: texts JSONL + an id<TAB>base64 image TSV, through the same loader. Text t pairs
 * with images 2t and 2t+1, so 10 texts give 20 samples. */
static void test_chinese_clip_pairs(void) {
    CHECK_EQ_INT(sh("cd \"$ROOT\" && : > cn_imgs.tsv && for i in $(seq 0 19); do "
                    "printf '%d\\t%s\\n' $((1000 + i)) \"$(base64 -w0 png/train/$(printf %06d $i).png)\" >> cn_imgs.tsv; done && "
                    ": > cn_texts.jsonl && for t in $(seq 0 9); do "
                    "printf '{\"text_id\": %d, \"text\": \"文本 %d\", \"image_ids\": [%d, %d]}\\n' $t $t $((1000 + 2 * t)) "
                    "$((1001 + 2 * t)) >> cn_texts.jsonl; done"), 0);
    char *spec = at("cn_texts.jsonl"), *tsv = at("cn_imgs.tsv");
    loader_opts o1, o3;
    opts(&o1, spec, 1);
    opts(&o3, spec, 3);
    o1.manifest.image_tsv = o3.manifest.image_tsv = tsv;
    o1.train = o3.train = 0;   /* file order: pair k is text k / 2 */
    samples a, b;
    int64_t skipped = -1;
    CHECK_EQ_INT(read_batches(&o1, 0, 10, 2, &a, NULL, &skipped), CG_OK);
    CHECK_EQ_INT(read_batches(&o3, 0, 10, 2, &b, NULL, NULL), CG_OK);
    CHECK(samples_equal(&a, &b, (size_t)3 * 32 * 32));
    CHECK_EQ_INT(skipped, 0);
    for (int i = 0; i < a.n; i++) {
        char want[32];
        snprintf(want, sizeof want, "文本 %d", i / 2);
        CHECK_EQ_STR(a.cap[i], want);
    }
    /* the same pixels as the PNG manifest's first 20 images in file order */
    char *csv = at("png/train.csv");
    loader_opts oc;
    opts(&oc, csv, 2);
    oc.train = 0;
    samples c;
    CHECK_EQ_INT(read_batches(&oc, 0, 10, 2, &c, NULL, NULL), CG_OK);
    CHECK(memcmp(a.img, c.img, (size_t)20 * 3 * 32 * 32 * sizeof(float)) == 0);
    samples_free(&a);
    samples_free(&b);
    samples_free(&c);
    free(spec); free(tsv); free(csv);
}

static void test_bad_specs_are_named(void) {
    data_kind k;
    CHECK(data_spec_kind("photos.zip", NULL, &k) != CG_OK);
    CHECK(strstr(cg_error_message(), "photos.zip") != NULL);
    CHECK(data_spec_kind("x.csv", "parquet", &k) != CG_OK);
    CHECK(strstr(cg_error_message(), "parquet") != NULL);
    CHECK_EQ_INT(data_spec_kind("a/b-{000..009}.tar", NULL, &k), CG_OK);
    CHECK_EQ_INT(k, DATA_WDS);
    CHECK_EQ_INT(data_spec_kind("list.txt", "csv", &k), CG_OK);
    CHECK_EQ_INT(k, DATA_CSV);
    loader_opts o;
    char *missing = at("nope.csv");
    opts(&o, missing, 1);
    loader *l = NULL;
    CHECK(loader_open(&o, 0, &l) != CG_OK);
    CHECK(strstr(cg_error_message(), "nope.csv") != NULL);
    free(missing);
}

int main(void) {
    snprintf(root, sizeof root, "%s/loader_test", TEST_BINARY_DIR);
    char *cmd = cg_xasprintf("rm -rf '%s' && mkdir -p '%s' && %s data fmnist --out '%s/png' --format png --split train "
                             "--limit 300 >/dev/null && %s data fmnist --out '%s/wds' --format wds --split train --limit 300 "
                             "--shard-size 100 >/dev/null && %s data fmnist --out '%s/jpg128' --format jpg --size 128 --split train "
                             "--limit 100 >/dev/null", root, root, CLIPGRID_BIN, root, CLIPGRID_BIN, root, CLIPGRID_BIN, root);
    int rc = sh(cmd);
    free(cmd);
    if (rc != 0) {
        fprintf(stderr, "cannot export Fashion-MNIST with %s\n", CLIPGRID_BIN);
        return 1;
    }
    setenv("ROOT", root, 1);
    TEST_RUN(test_same_samples_for_any_worker_count);
    TEST_RUN(test_each_sample_once_per_epoch);
    TEST_RUN(test_broken_samples_are_skipped_and_counted);
    TEST_RUN(test_all_broken_is_an_error);
    TEST_RUN(test_resume_at_position_continues_exactly);
    TEST_RUN(test_shards_every_sample_once_per_epoch);
    TEST_RUN(test_chinese_clip_pairs);
    TEST_RUN(test_bad_specs_are_named);
    return TEST_REPORT();
}
