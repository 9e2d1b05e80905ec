/* Tests for src/data/transform.c: PIL-exact resizing against Pillow 13 / torchvision 0.29
 * (tests/golden/resize/, made by tools/reference/resize_golden.py), both kernel sets (AVX2 and
 * portable), RandomResizedCrop's box statistics and fallback, flip, normalisation, and the
 * plan/finish path at a DCT-like half scale. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"
#include "core/rng.h"
#include "data/transform.h"

#define GOLDEN TEST_SOURCE_DIR "/golden/resize"

/* ------------------------------------------------------------------ test images */

static uint32_t mix32(uint32_t h) {
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    h *= 0xC2B2AE35u;
    h ^= h >> 16;
    return h;
}

/* tools/reference/resize_golden.py's make_image, in the same integer arithmetic. noise 0: a
 * smooth image instead (gradients and one large rectangle), for comparisons across scales. */
static uint8_t *make_image(int w, int h, int c, int seed, int noise) {
    uint8_t *img = malloc((size_t)w * h * c);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            for (int64_t ch = 0; ch < c; ch++) {
                int64_t v = ch == 0   ? x * 255 / (w > 1 ? w - 1 : 1)
                            : ch == 1 ? y * 255 / (h > 1 ? h - 1 : 1)
                                      : (x + y) * 255 / (w + h > 2 ? w + h - 2 : 1);
                uint64_t key = ((uint64_t)x * 73856093u) ^ ((uint64_t)y * 19349663u) ^ ((uint64_t)ch * 83492791u) ^
                               ((uint64_t)seed * 2654435761u);
                if (noise) v += (int64_t)(mix32((uint32_t)key) % 49) - 24;
                if (x >= w / 4 && x < w / 2 && y >= h / 3 && y < 2 * h / 3) v = ch % 2 == 0 ? 250 : 5;
                if (noise && x >= 3 * w / 5 && x < 4 * w / 5 && y >= h / 8 && y < h / 3) v = ((x / 3 + y / 3) % 2) * 255;
                if (noise && llabs(x * h - y * w) < (w > h ? w : h)) v = 255 - v;
                img[((size_t)y * w + x) * c + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return img;
}

static uint32_t fnv1a(const uint8_t *b, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

/* ------------------------------------------------------------------ golden index */

typedef struct { char name[16]; int w, h, c, seed; uint8_t *px; } gimage;
typedef struct { char name[64], image[16], op[16]; int dw, dh; char a[4][32]; } gcase;

static gimage images[16];
static gcase cases[64];
static int n_images, n_cases;

static int index_loaded;

static int load_index(void) {
    if (index_loaded) return n_cases > 0;
    index_loaded = 1;
    FILE *f = fopen(GOLDEN "/index.txt", "r");
    if (!f) {
        fprintf(stderr, "  cannot open %s\n", GOLDEN "/index.txt");
        return 0;
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "image ", 6) && n_images < 16) {
            gimage *g = &images[n_images++];
            long long sum;
            unsigned long hash;
            CHECK_EQ_INT(sscanf(line + 6, "%15s %d %d %d %d %lld %lu", g->name, &g->w, &g->h, &g->c, &g->seed, &sum, &hash), 7);
            g->px = make_image(g->w, g->h, g->c, g->seed, 1);
            size_t n = (size_t)g->w * g->h * g->c;
            long long s = 0;
            for (size_t i = 0; i < n; i++) s += g->px[i];
            CHECK_EQ_INT(s, sum);   /* the C and numpy image generators agree */
            CHECK_EQ_INT(fnv1a(g->px, n), (long long)hash);
        } else if (!strncmp(line, "case ", 5) && n_cases < 64) {
            gcase *k = &cases[n_cases++];
            CHECK_EQ_INT(sscanf(line + 5, "%63s %15s %15s %d %d %31s %31s %31s %31s", k->name, k->image, k->op, &k->dw,
                                &k->dh, k->a[0], k->a[1], k->a[2], k->a[3]),
                         9);
        }
    }
    fclose(f);
    return n_cases > 0;
}

static const gimage *find_image(const char *name) {
    for (int i = 0; i < n_images; i++)
        if (!strcmp(images[i].name, name)) return &images[i];
    return NULL;
}

static uint8_t *load_gz(const char *name, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.u8.gz", GOLDEN, name);
    gzFile g = gzopen(path, "rb");
    if (!g) return NULL;
    uint8_t *b = malloc(n + 1);
    int got = gzread(g, b, (unsigned)n + 1);
    gzclose(g);
    if (got != (int)n) {
        fprintf(stderr, "  %s: %d bytes, expected %zu\n", path, got, n);
        free(b);
        return NULL;
    }
    return b;
}

/* Run a golden case through the C functions. */
static void run_case(const gcase *k, const gimage *g, uint8_t *out) {
    if (!strcmp(k->op, "resize")) {
        if (k->a[0][0] == '-') {
            resize_bicubic_u8(g->px, g->w, g->h, g->c, NULL, out, k->dw, k->dh);
        } else {
            crop_box b = {strtof(k->a[0], NULL), strtof(k->a[1], NULL), strtof(k->a[2], NULL), strtof(k->a[3], NULL)};
            resize_bicubic_u8(g->px, g->w, g->h, g->c, &b, out, k->dw, k->dh);
        }
    } else if (!strcmp(k->op, "crop")) {
        crop_box b = {strtof(k->a[0], NULL), strtof(k->a[1], NULL), strtof(k->a[2], NULL), strtof(k->a[3], NULL)};
        resized_crop_u8(g->px, g->w, g->h, g->c, b, out, k->dw, k->dh);
    } else {
        resize_center_crop_u8(g->px, g->w, g->h, g->c, k->dw, out);
    }
}

static void diff_stats(const uint8_t *a, const uint8_t *b, size_t n, int *maxd, double *meand) {
    long long sum = 0;
    int mx = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        sum += d;
        if (d > mx) mx = d;
    }
    *maxd = mx;
    *meand = n ? (double)sum / (double)n : 0.0;
}

/* ------------------------------------------------------------------ tests */

static void test_golden_resizes(void) {
    if (!load_index()) {
        CHECK(!"golden index missing: run tools/reference/resize_golden.py");
        return;
    }
    int worst = 0;
    double worst_mean = 0.0;
    for (int i = 0; i < n_cases; i++) {
        const gcase *k = &cases[i];
        const gimage *g = find_image(k->image);
        CHECK(g != NULL);
        if (!g) continue;
        size_t n = (size_t)k->dw * k->dh * g->c;
        uint8_t *want = load_gz(k->name, n), *simd = malloc(n), *plain = malloc(n);
        CHECK(want != NULL);
        if (!want) continue;
        transform_use_simd(1);
        run_case(k, g, simd);
        transform_use_simd(0);
        run_case(k, g, plain);
        transform_use_simd(1);
        int mx;
        double mean;
        diff_stats(simd, want, n, &mx, &mean);
        fprintf(stderr, "  %-20s %-6s %3dx%-3d c=%d  max |diff| %d  mean %.4f\n", k->name, k->op, k->dw, k->dh, g->c, mx,
                mean);
        CHECK(mx <= 1);
        CHECK(mean <= 0.5);
        CHECK(memcmp(simd, plain, n) == 0);   /* both kernel sets compute the same sums */
        if (mx > worst) worst = mx;
        if (mean > worst_mean) worst_mean = mean;
        free(want);
        free(simd);
        free(plain);
    }
    fprintf(stderr, "  all %d cases: max |diff| %d, worst mean %.4f\n", n_cases, worst, worst_mean);
}

/* Image.resize's box form of the eval transform (resize_center_crop_box) against torchvision's
 * two steps; resized_crop (crop, then resize) against Image.resize(box) of the same box, to show
 * the edge difference that resized_crop_u8 exists for. */
static void test_box_forms(void) {
    CHECK(load_index());
    for (int i = 0; i < n_cases; i++) {
        const gcase *k = &cases[i];
        const gimage *g = find_image(k->image);
        if (!g || !strcmp(k->op, "resize")) continue;
        size_t n = (size_t)k->dw * k->dh * g->c;
        uint8_t *want = load_gz(k->name, n), *got = malloc(n);
        if (!want) continue;
        crop_box b;
        if (!strcmp(k->op, "eval")) b = resize_center_crop_box(g->w, g->h, k->dw);
        else b = (crop_box){strtof(k->a[0], NULL), strtof(k->a[1], NULL), strtof(k->a[2], NULL), strtof(k->a[3], NULL)};
        resize_bicubic_u8(g->px, g->w, g->h, g->c, &b, got, k->dw, k->dh);
        int mx;
        double mean;
        diff_stats(got, want, n, &mx, &mean);
        fprintf(stderr, "  %-20s as Image.resize(box): max |diff| %d  mean %.4f\n", k->name, mx, mean);
        if (!strcmp(k->op, "eval")) CHECK(mx <= 1 && mean <= 0.01);   /* float rounding of the box only */
        free(want);
        free(got);
    }
}

static void test_normalise_and_flip(void) {
    float norm[3 * 256];
    FILE *f = fopen(GOLDEN "/normalize.f32", "rb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK_EQ_INT(fread(norm, sizeof(float), 3 * 256, f), 3 * 256);
    fclose(f);
    CHECK(load_index());
    for (int c = 0; c < 3; c++) {   /* the constants, and torch's value at 0 and 255 */
        CHECK(norm[c * 256] == (0.0f - CLIP_MEAN[c]) / CLIP_STD[c]);
        CHECK(norm[c * 256 + 255] == (1.0f - CLIP_MEAN[c]) / CLIP_STD[c]);
    }
    const gimage *g = find_image("A");
    CHECK(g != NULL);
    if (!g) return;
    const int S = 224;
    uint8_t *want = load_gz("eval_224", (size_t)S * S * 3), *tmp = malloc((size_t)S * S * 3);
    float *out = malloc(sizeof(float) * 3 * S * S), *outf = malloc(sizeof(float) * 3 * S * S);
    CHECK(want != NULL);
    if (!want) return;
    transform_opts t;
    transform_opts_defaults(&t, S, 0);
    int flip = 1;
    crop_box b = transform_plan(&t, NULL, g->w, g->h, &flip);   /* eval draws nothing */
    CHECK_EQ_INT(flip, 0);
    for (int simd = 1; simd >= 0; simd--) {   /* both kernel sets */
        transform_use_simd(simd);
        transform_finish(&t, g->px, g->w, g->h, b, 1.f, 1.f, 0, tmp, out);
        transform_finish(&t, g->px, g->w, g->h, b, 1.f, 1.f, 1, tmp, outf);
        long bad = 0, bad_flip = 0;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    /* torchvision's float for torchvision's pixel, bit for bit */
                    float v = norm[c * 256 + want[((size_t)y * S + x) * 3 + c]];
                    bad += out[((size_t)c * S + y) * S + x] != v;
                    bad_flip += outf[((size_t)c * S + y) * S + (S - 1 - x)] != v;
                }
        CHECK_EQ_INT(bad, 0);
        CHECK_EQ_INT(bad_flip, 0);
    }
    transform_use_simd(1);
    /* a size that is not a multiple of 8 (the vector loop's tail), flipped, against the table */
    const int S2 = 45;
    uint8_t *px = malloc((size_t)S2 * S2 * 3);
    float *o1 = malloc(sizeof(float) * 3 * S2 * S2), *o2 = malloc(sizeof(float) * 3 * S2 * S2);
    for (int i = 0; i < S2 * S2 * 3; i++) px[i] = (uint8_t)(i * 37 + i / 7);
    transform_opts t2;
    transform_opts_defaults(&t2, S2, 1);
    crop_box whole = {0, 0, (float)S2, (float)S2};   /* identity resize */
    transform_finish(&t2, px, S2, S2, whole, 1.f, 1.f, 1, tmp, o1);
    transform_use_simd(0);
    transform_finish(&t2, px, S2, S2, whole, 1.f, 1.f, 1, tmp, o2);
    transform_use_simd(1);
    long bad = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < S2; y++)
            for (int x = 0; x < S2; x++) {
                float v = norm[c * 256 + px[((size_t)y * S2 + x) * 3 + c]];
                size_t i = ((size_t)c * S2 + y) * S2 + (S2 - 1 - x);
                bad += o1[i] != v || o2[i] != v;
            }
    CHECK_EQ_INT(bad, 0);
    free(px);
    free(o1);
    free(o2);
    free(want);
    free(tmp);
    free(out);
    free(outf);
}

static void test_rrc_statistics(void) {
    const int w = 500, h = 375;
    const float ratios[2] = {3.f / 4.f, 4.f / 3.f};
    const float scales[2][2] = {{0.08f, 1.0f}, {0.9f, 1.0f}};
    for (int s = 0; s < 2; s++) {
        cg_rng r;
        cg_rng_seed(&r, 1234 + s);
        double sum_frac = 0, min_frac = 9, max_frac = 0, min_ar = 9, max_ar = 0;
        int n = 20000, outside = 0, fractional = 0;
        for (int i = 0; i < n; i++) {
            crop_box b = random_resized_crop_box(&r, w, h, scales[s][0], scales[s][1], ratios[0], ratios[1]);
            outside += b.x0 < 0 || b.y0 < 0 || b.x1 > w || b.y1 > h || !(b.x1 > b.x0) || !(b.y1 > b.y0);
            fractional += b.x0 != floorf(b.x0) || b.y0 != floorf(b.y0) || b.x1 != floorf(b.x1) || b.y1 != floorf(b.y1);
            double bw = b.x1 - b.x0, bh = b.y1 - b.y0, frac = bw * bh / ((double)w * h);
            /* the drawn area and ratio, before rounding the sides to integers, lie in range */
            double ar_lo = (bw - 0.5) / (bh + 0.5), ar_hi = (bw + 0.5) / (bh - 0.5);
            double fr_lo = (bw - 0.5) * (bh - 0.5) / ((double)w * h), fr_hi = (bw + 0.5) * (bh + 0.5) / ((double)w * h);
            CHECK(fr_hi >= scales[s][0] && fr_lo <= scales[s][1]);
            CHECK(ar_hi >= ratios[0] && ar_lo <= ratios[1]);
            sum_frac += frac;
            if (frac < min_frac) min_frac = frac;
            if (frac > max_frac) max_frac = frac;
            if (bw / bh < min_ar) min_ar = bw / bh;
            if (bw / bh > max_ar) max_ar = bw / bh;
        }
        CHECK_EQ_INT(outside, 0);
        CHECK_EQ_INT(fractional, 0);
        fprintf(stderr, "  scale %.2f..%.2f: area fraction mean %.3f [%.3f, %.3f], aspect [%.3f, %.3f]\n", scales[s][0],
                scales[s][1], sum_frac / n, min_frac, max_frac, min_ar, max_ar);
        /* the range is covered (at 0.9..1 of a 4:3 image, ratios below ~1.2 cannot fit) */
        CHECK(min_frac < scales[s][0] + 0.02 && max_frac > 0.97);
        CHECK(max_ar > 1.30);
        if (s == 0) CHECK(min_ar < 0.77);
    }
    /* scale 0.08..1 on 500x375: less than the uniform mean 0.54, as tries with w > width or
     * h > height are redrawn (large areas at extreme ratios); torchvision's own get_params, 100k
     * draws after torch.manual_seed(0), gives 0.4338 */
    {
        cg_rng r;
        cg_rng_seed(&r, 99);
        double sum = 0;
        for (int i = 0; i < 100000; i++) {
            crop_box b = random_resized_crop_box(&r, w, h, 0.08f, 1.f, ratios[0], ratios[1]);
            sum += (double)(b.x1 - b.x0) * (b.y1 - b.y0) / ((double)w * h);
        }
        fprintf(stderr, "  mean area fraction over 100k draws: %.4f (torchvision 0.4338)\n", sum / 100000);
        CHECK_NEAR(sum / 100000, 0.4338, 0.005);
    }
}

static void test_rrc_determinism_and_fallback(void) {
    cg_rng a, b, c;
    cg_rng_seed(&a, 7);
    cg_rng_seed(&b, 7);
    cg_rng_seed(&c, 8);
    int same = 1, differs = 0;
    for (int i = 0; i < 100; i++) {
        crop_box x = random_resized_crop_box(&a, 640, 480, 0.08f, 1.f, .75f, 4.f / 3.f);
        crop_box y = random_resized_crop_box(&b, 640, 480, 0.08f, 1.f, .75f, 4.f / 3.f);
        crop_box z = random_resized_crop_box(&c, 640, 480, 0.08f, 1.f, .75f, 4.f / 3.f);
        same &= !memcmp(&x, &y, sizeof x);
        differs |= memcmp(&x, &z, sizeof x) != 0;
    }
    CHECK(same);
    CHECK(differs);
    /* fallback (no try can fit an area of 2x..3x the image): the centred crop of the clamped ratio,
     * as torchvision's get_params: 1000x100 -> h 100, w round(100 * 4/3) = 133, centred */
    cg_rng r;
    cg_rng_seed(&r, 1);
    crop_box f = random_resized_crop_box(&r, 1000, 100, 2.f, 3.f, .75f, 4.f / 3.f);
    CHECK(f.x0 == 433 && f.x1 == 566 && f.y0 == 0 && f.y1 == 100);
    f = random_resized_crop_box(&r, 100, 1000, 2.f, 3.f, .75f, 4.f / 3.f);   /* h = round(100 / 0.75) = 133 */
    CHECK(f.x0 == 0 && f.x1 == 100 && f.y0 == 433 && f.y1 == 566);
    f = random_resized_crop_box(&r, 500, 375, 2.f, 3.f, .75f, 4.f / 3.f);    /* in range: the whole image */
    CHECK(f.x0 == 0 && f.x1 == 500 && f.y0 == 0 && f.y1 == 375);
    /* a very thin image: the 10 tries all fail for a 4:3 ratio, whatever the scale */
    f = random_resized_crop_box(&r, 300, 2, 0.9f, 1.f, .75f, 4.f / 3.f);
    CHECK(f.x0 == 148 && f.x1 == 151 && f.y0 == 0 && f.y1 == 2);   /* w = round(2 * 4/3) = 3, left 148 */
}

static void test_plan_flip_draws(void) {
    transform_opts t;
    transform_opts_defaults(&t, 224, 1);
    CHECK(t.scale_lo == 0.9f && t.scale_hi == 1.f && t.hflip == 0);
    t.hflip = 1;
    cg_rng r;
    cg_rng_seed(&r, 5);
    int flips = 0, n = 2000;
    for (int i = 0; i < n; i++) {
        int f = -1;
        cg_rng before = r;
        crop_box b = transform_plan(&t, &r, 500, 375, &f);
        CHECK(f == 0 || f == 1);
        flips += f;
        /* the plan is the RRC box plus one flip draw from the same stream */
        crop_box rb = random_resized_crop_box(&before, 500, 375, t.scale_lo, t.scale_hi, t.ratio_lo, t.ratio_hi);
        CHECK(!memcmp(&b, &rb, sizeof b));
        CHECK_EQ_INT((cg_rng_uniform(&before) < 0.5f), f);
        CHECK_EQ_INT(before.state, r.state);
    }
    CHECK(flips > n * 0.45 && flips < n * 0.55);
}

/* The loader's DCT path: plan on the full size, decode smaller, finish with sx = sy = 0.5. A
 * half-size image (here: resized by 2 with the same bicubic) gives nearly the same tensor. */
static void test_finish_half_scale(void) {
    const int w = 500, h = 376, S = 224;
    uint8_t *full = make_image(w, h, 3, 11, 0), *half = malloc((size_t)(w / 2) * (h / 2) * 3);
    resize_bicubic_u8(full, w, h, 3, NULL, half, w / 2, h / 2);
    transform_opts t;
    transform_opts_defaults(&t, S, 1);
    t.scale_lo = 0.3f;   /* boxes of 0.3 .. 1 of the area: up- and downscales at half size */
    t.hflip = 1;
    uint8_t *tmp_a = malloc((size_t)S * S * 3), *tmp_b = malloc((size_t)S * S * 3);
    float *out_a = malloc(sizeof(float) * 3 * S * S), *out_b = malloc(sizeof(float) * 3 * S * S);
    cg_rng r;
    cg_rng_seed(&r, 3);
    for (int it = 0; it < 8; it++) {
        int flip;
        crop_box b = transform_plan(&t, &r, w, h, &flip);
        int hw, hh;
        transform_scale_hint(&t, b, w, h, &hw, &hh);
        /* decoded at the hint, the box spans >= S pixels (or all it has, when smaller than S) */
        CHECK((b.x1 - b.x0) * hw / w >= fminf(S, b.x1 - b.x0) - 1e-3);
        CHECK((b.y1 - b.y0) * hh / h >= fminf(S, b.y1 - b.y0) - 1e-3);
        CHECK((hw == w && hh == h) || (hw == (w + 1) / 2 && hh == (h + 1) / 2) ||
              (hw == (w + 3) / 4 && hh == (h + 3) / 4) || (hw == (w + 7) / 8 && hh == (h + 7) / 8));
        transform_finish(&t, full, w, h, b, 1.f, 1.f, flip, tmp_a, out_a);
        /* at sx = 1 the train path is resized_crop_u8 of the box, then flip + normalise */
        uint8_t *direct = malloc((size_t)S * S * 3);
        resized_crop_u8(full, w, h, 3, b, direct, S, S);
        CHECK(!memcmp(direct, tmp_a, (size_t)S * S * 3));
        free(direct);
        transform_finish(&t, half, w / 2, h / 2, b, 0.5f, 0.5f, flip, tmp_b, out_b);
        int mx;
        double mean;
        diff_stats(tmp_a, tmp_b, (size_t)S * S * 3, &mx, &mean);
        double fmean = 0;
        for (size_t i = 0; i < (size_t)3 * S * S; i++) fmean += fabs(out_a[i] - out_b[i]);
        fmean /= 3.0 * S * S;
        fprintf(stderr, "  box %.0f,%.0f,%.0f,%.0f flip %d: full vs half scale: mean |diff| %.3f levels (max %d), "
                        "%.4f normalised\n", b.x0, b.y0, b.x1, b.y1, flip, mean, mx, fmean);
        CHECK(mean < 1.0 && fmean < 0.02);
    }
    /* eval at half scale: Image.resize of the scaled box */
    t.train = 0;
    crop_box b = transform_plan(&t, NULL, w, h, NULL);
    transform_finish(&t, full, w, h, b, 1.f, 1.f, 0, tmp_a, out_a);
    transform_finish(&t, half, w / 2, h / 2, b, 0.5f, 0.5f, 0, tmp_b, out_b);
    int mx;
    double mean;
    diff_stats(tmp_a, tmp_b, (size_t)S * S * 3, &mx, &mean);
    fprintf(stderr, "  eval: full vs half scale: mean |diff| %.3f levels (max %d)\n", mean, mx);
    CHECK(mean < 1.0);
    free(full);
    free(half);
    free(tmp_a);
    free(tmp_b);
    free(out_a);
    free(out_b);
}

/* The DCT hint: the box keeps >= size pixels, and only the fast factors 1/8, 1/4, 1/2, 1. */
static void test_scale_hint(void) {
    transform_opts t;
    transform_opts_defaults(&t, 224, 1);
    int hw, hh;
    transform_scale_hint(&t, (crop_box){100, 50, 1900, 1450}, 2000, 1500, &hw, &hh);   /* needs 0.16: 1/4 */
    CHECK(hw == 500 && hh == 375);
    transform_scale_hint(&t, (crop_box){0, 0, 1800, 1800}, 2001, 1999, &hw, &hh);      /* 0.124: 1/8, ceil */
    CHECK(hw == 251 && hh == 250);
    transform_scale_hint(&t, (crop_box){25, 17, 475, 357}, 500, 375, &hw, &hh);       /* 0.66: full */
    CHECK(hw == 500 && hh == 375);
    transform_scale_hint(&t, (crop_box){0, 0, 448, 600}, 1000, 1000, &hw, &hh);        /* 0.5 exactly: 1/2 */
    CHECK(hw == 500 && hh == 500);
    transform_scale_hint(&t, (crop_box){0, 0, 100, 100}, 1000, 1000, &hw, &hh);        /* box < size: full */
    CHECK(hw == 1000 && hh == 1000);
}

/* Odd shapes: one-pixel images and outputs, extreme ratios, a box outside the image (clamped). */
static void test_edge_shapes(void) {
    uint8_t one[3] = {10, 200, 30}, out[64 * 3];
    resize_bicubic_u8(one, 1, 1, 3, NULL, out, 4, 4);
    for (int i = 0; i < 16; i++) CHECK(out[i * 3] == 10 && out[i * 3 + 1] == 200 && out[i * 3 + 2] == 30);
    uint8_t *img = make_image(64, 48, 3, 9, 1);
    resize_bicubic_u8(img, 64, 48, 3, NULL, out, 1, 1);
    CHECK(out[0] > 0 && out[0] < 255);
    resize_bicubic_u8(img, 64, 48, 3, NULL, out, 64, 1);
    crop_box far = {-10.f, -5.f, 100.f, 60.f};
    resize_bicubic_u8(img, 64, 48, 3, &far, out, 8, 8);
    resized_crop_u8(img, 64, 48, 3, far, out, 8, 8);
    uint8_t *same = malloc(64 * 48 * 3);
    resize_bicubic_u8(img, 64, 48, 3, NULL, same, 64, 48);   /* identity */
    CHECK(!memcmp(same, img, 64 * 48 * 3));
    resize_center_crop_u8(img, 64, 48, 3, 48, same);          /* Resize keeps 64x48: a plain crop */
    for (int y = 0; y < 48; y++) CHECK(!memcmp(same + y * 48 * 3, img + (y * 64 + 8) * 3, 48 * 3));
    free(same);
    free(img);
}

int main(void) {
    TEST_RUN(test_golden_resizes);
    TEST_RUN(test_box_forms);
    TEST_RUN(test_normalise_and_flip);
    TEST_RUN(test_rrc_statistics);
    TEST_RUN(test_rrc_determinism_and_fallback);
    TEST_RUN(test_plan_flip_draws);
    TEST_RUN(test_finish_half_scale);
    TEST_RUN(test_scale_hint);
    TEST_RUN(test_edge_shapes);
    for (int i = 0; i < n_images; i++) free(images[i].px);
    return TEST_REPORT();
}
