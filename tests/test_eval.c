/* Tests for src/train/eval.c: zero-shot accuracy and retrieval recall on embeddings whose
 * answers are known by construction. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/rng.h"
#include "train/eval.h"

static void test_class_embedding_is_normalised_mean(void) {
    float prompts[2 * 3] = {3, 0, 0, 0, 0.5f, 0};  /* two prompts of different length */
    float out[3];
    eval_class_embedding(prompts, 2, 3, out);
    CHECK_NEAR(out[0], 1 / sqrt(2), 1e-6);  /* each prompt counts the same, whatever its norm */
    CHECK_NEAR(out[1], 1 / sqrt(2), 1e-6);
    CHECK_NEAR(out[2], 0, 1e-7);
}

static void test_zero_shot_counts(void) {
    /* 4 classes along the axes; images near their class, one mislabelled on purpose */
    enum { C = 4, D = 4, N = 6 };
    float classes[C * D] = {0}, img[N * D] = {0};
    for (int c = 0; c < C; c++) classes[c * D + c] = 1;
    int labels[N] = {0, 1, 2, 3, 0, 1};
    for (int i = 0; i < N; i++) {
        img[i * D + labels[i]] = 2.0f;
        img[i * D + (labels[i] + 1) % C] = 0.5f;  /* second choice: the next class */
    }
    labels[5] = 2;  /* image 5 looks like class 1 (then 2): top-1 miss, top-2 hit */
    double t1, t5;
    eval_zero_shot(img, N, classes, C, D, labels, &t1, &t5);
    CHECK_NEAR(t1, 5.0 / 6, 1e-12);
    CHECK_NEAR(t5, 1.0, 1e-12);  /* with 4 classes, top-5 covers everything */
}

static void test_retrieval_ranks(void) {
    /* N random captions; images = captions with pairs 0 and 1 swapped: those two rank their
     * partner second (or worse), the rest first */
    enum { N = 20, D = 32 };
    float txt[N * D], img[N * D];
    cg_rng r;
    cg_rng_seed(&r, 5);
    cg_rng_fill_normal(&r, txt, N * D, 0, 1);
    memcpy(img, txt, sizeof img);
    memcpy(img, txt + D, D * sizeof(float));
    memcpy(img + D, txt, D * sizeof(float));
    eval_retrieval m;
    eval_retrieval_metrics(img, txt, N, D, &m);
    CHECK_NEAR(m.image_to_text.r1, 18.0 / 20, 1e-12);
    CHECK_NEAR(m.text_to_image.r1, 18.0 / 20, 1e-12);
    CHECK(m.image_to_text.r5 >= 18.0 / 20 && m.image_to_text.r10 >= m.image_to_text.r5);
    CHECK_NEAR(m.image_to_text.median_rank, 1.0, 1e-12);
    CHECK(m.image_to_text.mean_rank > 1.0);
    /* identical embeddings: perfect retrieval */
    eval_retrieval_metrics(txt, txt, N, D, &m);
    CHECK_NEAR(m.image_to_text.r1, 1.0, 1e-12);
    CHECK_NEAR(m.text_to_image.mean_rank, 1.0, 1e-12);
    /* random, unrelated embeddings: R@10 of 20 is about half */
    cg_rng_fill_normal(&r, img, N * D, 0, 1);
    eval_retrieval_metrics(img, txt, N, D, &m);
    CHECK(m.image_to_text.r1 < 0.5);
}

int main(void) {
    TEST_RUN(test_class_embedding_is_normalised_mean);
    TEST_RUN(test_zero_shot_counts);
    TEST_RUN(test_retrieval_ranks);
    return TEST_REPORT();
}
