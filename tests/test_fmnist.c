/* Tests for src/data/fmnist.c: the real Debian Fashion-MNIST files, captions, image tensors,
 * deterministic augmentation, and broken files. Reference values (labels, pixel sums) were read
 * from the same files with Python's gzip module, an independent reader. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "core/fileio.h"
#include "core/log.h"
#include "data/fmnist.h"

static char tmpdir[256];

static void test_loads_both_splits(void) {
    fmnist_set tr, te;
    int rc = fmnist_load(NULL, "train", &tr);
    if (rc) fprintf(stderr, "  %s\n", cg_error_message());
    CHECK_EQ_INT(rc, CG_OK);
    CHECK_EQ_INT(fmnist_load(NULL, "test", &te), CG_OK);
    if (rc) return;
    CHECK_EQ_INT(tr.n, 60000);
    CHECK_EQ_INT(te.n, 10000);
    CHECK_EQ_INT(tr.rows, 28);
    CHECK_EQ_INT(tr.cols, 28);
    static const int first_train[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, first_test[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    for (int i = 0; i < 10; i++) {
        CHECK_EQ_INT(tr.labels[i], first_train[i]);
        CHECK_EQ_INT(te.labels[i], first_test[i]);
    }
    long s0 = 0, slast = 0, st0 = 0;
    for (int k = 0; k < 784; k++) {
        s0 += tr.images[k];
        slast += tr.images[(size_t)59999 * 784 + k];
        st0 += te.images[k];
    }
    CHECK_EQ_INT(s0, 76247);
    CHECK_EQ_INT(slast, 16684);
    CHECK_EQ_INT(st0, 33456);
    int counts[10] = {0};
    for (int i = 0; i < tr.n; i++) counts[tr.labels[i]]++;
    for (int c = 0; c < 10; c++) CHECK_EQ_INT(counts[c], 6000);  /* balanced classes */
    fmnist_free(&tr);
    fmnist_free(&te);
}

static void test_captions(void) {
    char buf[256];
    fmnist_caption(FMNIST_EN, 7, 0, buf, sizeof buf);
    CHECK_EQ_STR(buf, "a photo of a sneaker.");
    fmnist_caption(FMNIST_ZH, 7, 0, buf, sizeof buf);
    CHECK_EQ_STR(buf, "一张运动鞋的照片。");
    CHECK(fmnist_n_templates(FMNIST_EN) >= 4 && fmnist_n_templates(FMNIST_ZH) >= 4);
    /* every caption names its class, in every template, and classes differ */
    for (int lang = 0; lang < 2; lang++)
        for (int c = 0; c < 10; c++)
            for (int t = 0; t < fmnist_n_templates((fmnist_lang)lang); t++) {
                fmnist_caption((fmnist_lang)lang, c, t, buf, sizeof buf);
                CHECK(strstr(buf, fmnist_class_name((fmnist_lang)lang, c)) != NULL);
            }
    for (int a = 0; a < 10; a++)
        for (int b = a + 1; b < 10; b++) CHECK(strcmp(fmnist_class_name(FMNIST_ZH, a), fmnist_class_name(FMNIST_ZH, b)));
}

static void test_image_tensor(void) {
    fmnist_set s;
    if (fmnist_load(NULL, "test", &s) != CG_OK) { CHECK(0); return; }
    float *a = malloc(3 * 28 * 28 * sizeof *a), *b = malloc(3 * 64 * 64 * sizeof *b), *c = malloc(3 * 64 * 64 * sizeof *c);
    /* at its own size without augmentation: the pixels, normalised, the same in all channels up to mean/std */
    fmnist_image(&s, 0, 28, 0, 0, 0, a);
    for (int k = 0; k < 784; k += 37) {
        float v = s.images[k] / 255.0f;
        CHECK_NEAR(a[k], (v - 0.48145466f) / 0.26862954f, 1e-5);
        CHECK_NEAR(a[2 * 784 + k], (v - 0.40821073f) / 0.27577711f, 1e-5);
    }
    /* resized: the mean brightness is kept */
    fmnist_image(&s, 0, 64, 0, 0, 0, b);
    double m28 = 0, m64 = 0;
    for (int k = 0; k < 784; k++) m28 += a[k];
    for (int k = 0; k < 64 * 64; k++) m64 += b[k];
    CHECK_NEAR(m28 / 784, m64 / 4096, 0.05);
    /* augmentation: deterministic in (seed, epoch, index), different across epochs */
    fmnist_image(&s, 5, 64, 1, 42, 3, b);
    fmnist_image(&s, 5, 64, 1, 42, 3, c);
    CHECK(memcmp(b, c, 3 * 64 * 64 * sizeof *b) == 0);
    int differ = 0;
    for (int e = 4; e < 8 && !differ; e++) {
        fmnist_image(&s, 5, 64, 1, 42, e, c);
        differ = memcmp(b, c, 3 * 64 * 64 * sizeof *b) != 0;
    }
    CHECK(differ);
    free(a); free(b); free(c);
    fmnist_free(&s);
}

static void write_gz(const char *path, const void *data, size_t n, size_t keep) {
    gzFile g = gzopen(path, "wb");
    gzwrite(g, data, (unsigned)n);
    gzclose(g);
    if (keep) {  /* cut the compressed file short */
        char *buf; size_t len;
        cg_file_read(path, &buf, &len);
        cg_file_write_atomic(path, buf, keep < len ? keep : len);
        free(buf);
    }
}

static void test_broken_files_are_named(void) {
    fmnist_set s;
    CHECK_EQ_INT(fmnist_load("/nonexistent/fmnist", "train", &s), CG_ERR_IO);
    CHECK(strstr(cg_error_message(), "/nonexistent/fmnist") && strstr(cg_error_message(), "dataset-fashion-mnist"));
    CHECK_EQ_INT(fmnist_load(NULL, "validation", &s), CG_ERR_USAGE);
    CHECK(strstr(cg_error_message(), "fmnist:validation") != NULL);
    /* wrong magic */
    unsigned char hdr[16 + 4 * 784] = {0, 0, 8, 4, 0, 0, 0, 4, 0, 0, 0, 28, 0, 0, 0, 28};
    char *ip = cg_xasprintf("%s/train-images-idx3-ubyte.gz", tmpdir), *lp = cg_xasprintf("%s/train-labels-idx1-ubyte.gz", tmpdir);
    write_gz(ip, hdr, sizeof hdr, 0);
    unsigned char lab[8 + 4] = {0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 4};
    write_gz(lp, lab, sizeof lab, 0);
    CHECK_EQ_INT(fmnist_load(tmpdir, "train", &s), CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "train-images-idx3-ubyte.gz: not an idx file") != NULL);
    /* right magic, wrong length */
    hdr[3] = 3;
    write_gz(ip, hdr, sizeof hdr - 10, 0);
    CHECK_EQ_INT(fmnist_load(tmpdir, "train", &s), CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "header promises 3136 bytes") != NULL);
    /* a valid tiny set loads; a label out of range does not */
    write_gz(ip, hdr, sizeof hdr, 0);
    CHECK_EQ_INT(fmnist_load(tmpdir, "train", &s), CG_OK);
    if (s.n == 4) fmnist_free(&s);
    lab[11] = 10;
    write_gz(lp, lab, sizeof lab, 0);
    CHECK_EQ_INT(fmnist_load(tmpdir, "train", &s), CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), "label 10 of sample 3") != NULL);
    /* truncated gzip stream */
    lab[11] = 4;
    write_gz(lp, lab, sizeof lab, 0);
    write_gz(ip, hdr, sizeof hdr, 40);
    CHECK(fmnist_load(tmpdir, "train", &s) != CG_OK);
    CHECK(strstr(cg_error_message(), "train-images-idx3-ubyte.gz") != NULL);
    free(ip); free(lp);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/fmnist_XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    TEST_RUN(test_loads_both_splits);
    TEST_RUN(test_captions);
    TEST_RUN(test_image_tensor);
    TEST_RUN(test_broken_files_are_named);
    return TEST_REPORT();
}
