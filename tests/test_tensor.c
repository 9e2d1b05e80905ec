/* test_tensor.c — tensors (views, arena allocation, shapes, layout conversion) and the RNG
 * (determinism, independence of split streams, distribution moments, truncation). */
#include <stdlib.h>

#include "check.h"
#include "core/arena.h"
#include "core/rng.h"
#include "core/tensor.h"

static void test_tensor_basics(void) {
    cg_arena a;
    cg_arena_init(&a, 1024);
    cg_tensor t = cg_tensor_arena(&a, CG_DEV_CPU, 4, (int64_t[]){2, 3, 4, 5});
    CHECK_EQ_INT(cg_tensor_numel(&t), 120);
    CHECK_EQ_INT(cg_tensor_bytes(&t), 480);
    CHECK(((uintptr_t)t.data % 64) == 0);
    for (int i = 0; i < 120; i++) CHECK(t.data[i] == 0.0f);
    char buf[64];
    CHECK_EQ_STR(cg_shape_str(t.shape, t.ndim, buf, sizeof buf), "[2, 3, 4, 5]");
    cg_tensor u = cg_tensor_4d(t.data, CG_DEV_CPU, 2, 3, 4, 5), v = cg_tensor_2d(t.data, CG_DEV_CPU, 6, 20);
    CHECK(cg_tensor_same_shape(&t, &u));
    CHECK(!cg_tensor_same_shape(&t, &v));
    for (int i = 0; i < 120; i++) t.data[i] = (float)i;
    cg_tensor w = cg_tensor_arena(&a, CG_DEV_CPU, 2, (int64_t[]){6, 20});
    cg_tensor_copy(&w, &t);
    CHECK(w.data[119] == 119.0f);
    cg_tensor_zero(&w);
    CHECK(w.data[119] == 0.0f);
    /* NCHW <-> CNHW */
    int N = 2, C = 3, HW = 4;
    float src[24], mid[24], back[24];
    for (int i = 0; i < 24; i++) src[i] = (float)i;
    cg_nchw_to_cnhw(src, mid, N, C, HW);
    CHECK(mid[(1 * N + 0) * HW + 2] == src[(0 * C + 1) * HW + 2]);  /* c=1, n=0, p=2 */
    CHECK(mid[(2 * N + 1) * HW + 3] == src[(1 * C + 2) * HW + 3]);
    cg_cnhw_to_nchw(mid, back, N, C, HW);
    CHECK(!memcmp(src, back, sizeof src));
    cg_arena_free(&a);
}

static void test_rng(void) {
    cg_rng a, b;
    cg_rng_seed(&a, 42);
    cg_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) CHECK(cg_rng_u64(&a) == cg_rng_u64(&b));
    cg_rng_seed(&b, 43);
    CHECK(cg_rng_u64(&a) != cg_rng_u64(&b));
    /* the state is one word: copying it replays the stream */
    cg_rng c = a;
    uint64_t x = cg_rng_u64(&a);
    CHECK(cg_rng_u64(&c) == x);
    cg_rng s1 = cg_rng_split(&a), s2 = cg_rng_split(&a);
    CHECK(cg_rng_u64(&s1) != cg_rng_u64(&s2));
    /* moments */
    enum { n = 200000 };
    float *v = malloc(n * sizeof(float));
    cg_rng_fill_normal(&a, v, n, 1.0f, 2.0f);
    double m = 0, q = 0;
    for (int i = 0; i < n; i++) m += v[i];
    m /= n;
    for (int i = 0; i < n; i++) q += (v[i] - m) * (v[i] - m);
    CHECK_NEAR(m, 1.0, 0.02);
    CHECK_NEAR(sqrt(q / n), 2.0, 0.02);
    cg_rng_fill_uniform(&a, v, n, -1.0f, 3.0f);
    float lo = 9, hi = -9;
    m = 0;
    for (int i = 0; i < n; i++) { lo = fminf(lo, v[i]); hi = fmaxf(hi, v[i]); m += v[i]; }
    CHECK(lo >= -1.0f && hi < 3.0f && lo < -0.99f && hi > 2.99f);
    CHECK_NEAR(m / n, 1.0, 0.02);
    cg_rng_fill_trunc_normal(&a, v, n, 0.0f, 1.0f, -0.5f, 1.0f);
    lo = 9; hi = -9;
    for (int i = 0; i < n; i++) { lo = fminf(lo, v[i]); hi = fmaxf(hi, v[i]); }
    CHECK(lo >= -0.5f && hi <= 1.0f && lo < -0.49f && hi > 0.99f);
    int counts[7] = {0};
    for (int i = 0; i < 70000; i++) counts[cg_rng_below(&a, 7)]++;
    for (int i = 0; i < 7; i++) CHECK(abs(counts[i] - 10000) < 500);
    free(v);
}

int main(void) {
    TEST_RUN(test_tensor_basics);
    TEST_RUN(test_rng);
    return TEST_REPORT();
}
