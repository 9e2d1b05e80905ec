/* transform.c — PIL-exact bicubic resampling, torchvision's crop sampling, CLIP normalisation.
 *
 * The resampler follows Pillow's ImagingResample for 8-bit images (libImaging/Resample.c) in its
 * arithmetic, written afresh for speed:
 *   - per axis, output i covers source [center - support, center + support) with
 *     center = in0 + (i + 0.5) * scale and support = 2 * max(scale, 1); the cubic (a = -0.5) is
 *     evaluated at (x - center + 0.5) / max(scale, 1), normalised to sum 1 in double, then
 *     rounded (half away from zero) to 22-bit fixed point — the same doubles, the same ints;
 *   - horizontal pass first, over the source rows the vertical pass reads, each sum started at
 *     1 << 21, shifted right by 22 and clamped to 0..255; then the vertical pass the same way.
 * Every sum is an exact int32, so any evaluation order gives Pillow's pixels.
 *
 * Speed: the horizontal pass transposes blocks of 8 rows (SSE2) so that the 8 rows' sums for one
 * output pixel fill one 8-lane int32 vector; the vertical pass runs along rows, 8 bytes a vector.
 * The kernels exist twice: AVX2 intrinsics, picked at run time where the CPU has AVX2, and
 * portable scalar C with the same sums (tests compare the two byte for byte).
 */
#include "data/transform.h"

#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>
#define XF_X86 1
#else
#define XF_X86 0
#endif

const float CLIP_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float CLIP_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

#define PREC_BITS 22                 /* Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2 */
#define HALF_ULP (1 << (PREC_BITS - 1))

/* ------------------------------------------------------------------ coefficients */

/* Keys' cubic convolution kernel with a = -0.5, as Pillow writes it (same operation order, so
 * the same doubles). */
static double cubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* Where one axis of the output samples the source. Output i (0 <= i < out) is output
 * i + off of a resize whose output 0 starts at source coordinate in0 with `scale` source pixels
 * per output pixel; the filter reads source pixels 0 .. in_size - 1 only. */
typedef struct {
    int in_size;
    double in0, scale;
    int off, out;
} axis_geom;

/* The taps of each output along one axis: source lo[i] .. lo[i] + n[i] - 1 with weights
 * k[i * ksize ...] in PREC_BITS fixed point. */
typedef struct {
    int ksize;
    int *lo, *n;
    int32_t *k;
} axis_taps;

static int axis_ksize(const axis_geom *g) {
    double fscale = g->scale < 1.0 ? 1.0 : g->scale;
    return (int)ceil(2.0 * fscale) * 2 + 1;
}

static int axis_is_identity(const axis_geom *g) {
    return g->in0 == 0.0 && g->scale == 1.0 && g->off == 0 && g->out == g->in_size;
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for one axis. w: ksize doubles of scratch. */
static void axis_fill(const axis_geom *g, axis_taps *a, double *w) {
    double fscale = g->scale < 1.0 ? 1.0 : g->scale;
    double support = 2.0 * fscale, ss = 1.0 / fscale;
    for (int i = 0; i < g->out; i++) {
        double center = g->in0 + (i + g->off + 0.5) * g->scale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > g->in_size) xmax = g->in_size;
        int n = xmax - xmin > 0 ? xmax - xmin : 0;
        double ww = 0.0;
        for (int t = 0; t < n; t++) {
            w[t] = cubic((t + xmin - center + 0.5) * ss);
            ww += w[t];
        }
        int32_t *k = a->k + (size_t)i * a->ksize;
        for (int t = 0; t < n; t++) {
            double v = ww != 0.0 ? w[t] / ww : w[t];
            k[t] = v < 0 ? (int32_t)(-0.5 + v * (1 << PREC_BITS)) : (int32_t)(0.5 + v * (1 << PREC_BITS));
        }
        for (int t = n; t < a->ksize; t++) k[t] = 0;
        a->lo[i] = xmin;
        a->n[i] = n;
    }
}

/* ------------------------------------------------------------------ scratch memory */

/* Per resize, one malloc for the coefficient tables and one for the pixel buffers, each cut
 * into pieces at 64-byte multiples. */
typedef struct {
    unsigned char *base;
    size_t used, cap;
} scratch;

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static void *scratch_take(scratch *s, size_t n) {
    void *p = s->base + s->used;
    s->used += align64(n);
    if (s->used > s->cap) abort();   /* a sizing bug, never data-dependent */
    return p;
}

/* ------------------------------------------------------------------ 8-row byte transposes */

/* Interleave 8 rows into lanes: t[j * 8 + r] = rows[r][j] for j < J. */
static void rows_to_lanes(const uint8_t *const rows[8], int J, uint8_t *t) {
    int j = 0;
#if XF_X86
    for (; j + 16 <= J; j += 16) {   /* 8 rows x 16 columns: three rounds of unpacking */
        __m128i m[8];
        for (int r = 0; r < 8; r++) m[r] = _mm_loadu_si128((const __m128i *)(const void *)(rows[r] + j));
        /* row pairs per column (a), then row quads (b): b0 = rows 0-3 of columns 0-3, ... */
        __m128i a0 = _mm_unpacklo_epi8(m[0], m[1]), a1 = _mm_unpackhi_epi8(m[0], m[1]);
        __m128i a2 = _mm_unpacklo_epi8(m[2], m[3]), a3 = _mm_unpackhi_epi8(m[2], m[3]);
        __m128i a4 = _mm_unpacklo_epi8(m[4], m[5]), a5 = _mm_unpackhi_epi8(m[4], m[5]);
        __m128i a6 = _mm_unpacklo_epi8(m[6], m[7]), a7 = _mm_unpackhi_epi8(m[6], m[7]);
        __m128i b0 = _mm_unpacklo_epi16(a0, a2), b1 = _mm_unpackhi_epi16(a0, a2);   /* rows 0-3 */
        __m128i b2 = _mm_unpacklo_epi16(a1, a3), b3 = _mm_unpackhi_epi16(a1, a3);
        __m128i b4 = _mm_unpacklo_epi16(a4, a6), b5 = _mm_unpackhi_epi16(a4, a6);   /* rows 4-7 */
        __m128i b6 = _mm_unpacklo_epi16(a5, a7), b7 = _mm_unpackhi_epi16(a5, a7);
        __m128i *o = (__m128i *)(void *)(t + (size_t)j * 8);   /* two columns of 8 lanes per store */
        _mm_storeu_si128(o + 0, _mm_unpacklo_epi32(b0, b4));
        _mm_storeu_si128(o + 1, _mm_unpackhi_epi32(b0, b4));
        _mm_storeu_si128(o + 2, _mm_unpacklo_epi32(b1, b5));
        _mm_storeu_si128(o + 3, _mm_unpackhi_epi32(b1, b5));
        _mm_storeu_si128(o + 4, _mm_unpacklo_epi32(b2, b6));
        _mm_storeu_si128(o + 5, _mm_unpackhi_epi32(b2, b6));
        _mm_storeu_si128(o + 6, _mm_unpacklo_epi32(b3, b7));
        _mm_storeu_si128(o + 7, _mm_unpackhi_epi32(b3, b7));
    }
#endif
    for (; j < J; j++)
        for (int r = 0; r < 8; r++) t[(size_t)j * 8 + r] = rows[r][j];
}

/* The inverse: rows[r][j] = t[j * 8 + r] for j < J. */
static void lanes_to_rows(const uint8_t *t, int J, uint8_t *const rows[8]) {
    int j = 0;
#if XF_X86
    for (; j + 16 <= J; j += 16) {   /* two 8x8 blocks, joined into 16-byte row stores */
        const __m128i *in = (const __m128i *)(const void *)(t + (size_t)j * 8);
        __m128i w[2][4];
        for (int h = 0; h < 2; h++) {
            /* x0 = columns 0, 1 (8 lanes each), x1 = 2, 3, ...; y0 interleaves columns 0 and 2, y1
             * 1 and 3, so z0 = rows 0-3 of columns 0-3 in order */
            __m128i x0 = _mm_loadu_si128(in + 4 * h), x1 = _mm_loadu_si128(in + 4 * h + 1);
            __m128i x2 = _mm_loadu_si128(in + 4 * h + 2), x3 = _mm_loadu_si128(in + 4 * h + 3);
            __m128i y0 = _mm_unpacklo_epi8(x0, x1), y1 = _mm_unpackhi_epi8(x0, x1);
            __m128i y2 = _mm_unpacklo_epi8(x2, x3), y3 = _mm_unpackhi_epi8(x2, x3);
            __m128i z0 = _mm_unpacklo_epi8(y0, y1), z1 = _mm_unpackhi_epi8(y0, y1);
            __m128i z2 = _mm_unpacklo_epi8(y2, y3), z3 = _mm_unpackhi_epi8(y2, y3);
            w[h][0] = _mm_unpacklo_epi32(z0, z2);   /* rows 0 and 1, 8 columns each */
            w[h][1] = _mm_unpackhi_epi32(z0, z2);   /* rows 2, 3 */
            w[h][2] = _mm_unpacklo_epi32(z1, z3);   /* rows 4, 5 */
            w[h][3] = _mm_unpackhi_epi32(z1, z3);   /* rows 6, 7 */
        }
        for (int q = 0; q < 4; q++) {
            _mm_storeu_si128((__m128i *)(void *)(rows[2 * q] + j), _mm_unpacklo_epi64(w[0][q], w[1][q]));
            _mm_storeu_si128((__m128i *)(void *)(rows[2 * q + 1] + j), _mm_unpackhi_epi64(w[0][q], w[1][q]));
        }
    }
#endif
    for (; j < J; j++)
        for (int r = 0; r < 8; r++) rows[r][j] = t[(size_t)j * 8 + r];
}

/* ------------------------------------------------------------------ kernels */

static inline uint8_t clip8(int32_t s) {
    int32_t v = s >> PREC_BITS;   /* arithmetic shift (GCC, Clang): floor division, as Pillow */
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Horizontal pass for 8 rows at once. t: the source bytes as lanes (t[j * 8 + r]: byte column j
 * of row r, j counted from the first column read); a->lo[] in pixels from that column. Writes
 * ot[(x * c + ch) * 8 + r] for the dw outputs. The portable version; hpass_avx2 below is the same
 * with one 8-lane vector per (x, ch). */
static void hpass_scalar(const uint8_t *t, int c, int dw, const axis_taps *a, uint8_t *ot) {
    for (int x = 0; x < dw; x++) {
        const int32_t *k = a->k + (size_t)x * a->ksize;
        for (int ch = 0; ch < c; ch++) {
            const uint8_t *p = t + ((size_t)a->lo[x] * c + ch) * 8;
            int32_t s[8];
            for (int r = 0; r < 8; r++) s[r] = HALF_ULP;
            for (int i = 0; i < a->n[x]; i++, p += (size_t)c * 8)
                for (int r = 0; r < 8; r++) s[r] += p[r] * k[i];
            for (int r = 0; r < 8; r++) ot[((size_t)x * c + ch) * 8 + r] = clip8(s[r]);
        }
    }
}

/* Vertical pass for one output row: out[j] = clip8(sum_i row(lo + i)[j] * k[i]) for j < W, rows
 * hs bytes apart from h. */
static void vpass_scalar(const uint8_t *h, ptrdiff_t hs, int W, int lo, int n, const int32_t *k, uint8_t *out) {
    const uint8_t *base = h + (ptrdiff_t)lo * hs;
    for (int j = 0; j < W; j++) {
        int32_t s = HALF_ULP;
        const uint8_t *p = base + j;
        for (int i = 0; i < n; i++, p += hs) s += *p * k[i];
        out[j] = clip8(s);
    }
}

#if XF_X86 && defined(__GNUC__)
#define XF_HAVE_AVX2 1
#include <immintrin.h>

#define AVX2_FN static inline __attribute__((target("avx2"), always_inline))

/* s + 8 bytes at p (zero-extended) * k */
AVX2_FN __m256i mac8(__m256i s, const uint8_t *p, __m256i k) {
    __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
    return _mm256_add_epi32(s, _mm256_mullo_epi32(v, k));
}

/* 8 sums -> 8 int16 of sum >> PREC_BITS (|value| < 2^10: the 16-bit pack saturates nothing) */
AVX2_FN __m128i shift_pack16(__m256i s) {
    s = _mm256_srai_epi32(s, PREC_BITS);
    return _mm_packs_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

/* 8 bytes clip8(s) at p (packus clamps to 0..255) */
AVX2_FN void store8(uint8_t *p, __m256i s) {
    __m128i w = shift_pack16(s);
    _mm_storel_epi64((__m128i *)(void *)p, _mm_packus_epi16(w, w));
}

/* 16 bytes clip8(s0), clip8(s1) at p */
AVX2_FN void store16(uint8_t *p, __m256i s0, __m256i s1) {
    _mm_storeu_si128((__m128i *)(void *)p, _mm_packus_epi16(shift_pack16(s0), shift_pack16(s1)));
}

__attribute__((target("avx2"))) static void hpass_avx2(const uint8_t *t, int c, int dw, const axis_taps *a,
                                                       uint8_t *ot) {
    const __m256i half = _mm256_set1_epi32(HALF_ULP);
    for (int x = 0; x < dw; x++) {
        const int32_t *k = a->k + (size_t)x * a->ksize;
        const int n = a->n[x];
        if (c == 3) {   /* the three channels of a pixel are 24 consecutive lane bytes */
            const uint8_t *p = t + (size_t)a->lo[x] * 24;
            __m256i s0 = half, s1 = half, s2 = half;
            for (int i = 0; i < n; i++, p += 24) {
                __m256i kk = _mm256_set1_epi32(k[i]);
                s0 = mac8(s0, p, kk);
                s1 = mac8(s1, p + 8, kk);
                s2 = mac8(s2, p + 16, kk);
            }
            store16(ot + (size_t)x * 24, s0, s1);
            store8(ot + (size_t)x * 24 + 16, s2);
            continue;
        }
        for (int ch = 0; ch < c; ch++) {
            const uint8_t *p = t + ((size_t)a->lo[x] * c + ch) * 8;
            __m256i s = half;
            for (int i = 0; i < n; i++, p += (size_t)c * 8) s = mac8(s, p, _mm256_set1_epi32(k[i]));
            store8(ot + ((size_t)x * c + ch) * 8, s);
        }
    }
}

__attribute__((target("avx2"))) static void vpass_avx2(const uint8_t *h, ptrdiff_t hs, int W, int lo, int n,
                                                       const int32_t *k, uint8_t *out) {
    const __m256i half = _mm256_set1_epi32(HALF_ULP);
    const uint8_t *base = h + (ptrdiff_t)lo * hs;
    int j = 0;
    for (; j + 32 <= W; j += 32) {   /* four accumulators: 32 bytes of the row per pass over the taps */
        __m256i s0 = half, s1 = half, s2 = half, s3 = half;
        const uint8_t *p = base + j;
        for (int i = 0; i < n; i++, p += hs) {
            __m256i kk = _mm256_set1_epi32(k[i]);
            s0 = mac8(s0, p, kk);
            s1 = mac8(s1, p + 8, kk);
            s2 = mac8(s2, p + 16, kk);
            s3 = mac8(s3, p + 24, kk);
        }
        store16(out + j, s0, s1);
        store16(out + j + 16, s2, s3);
    }
    for (; j + 8 <= W; j += 8) {
        __m256i s = half;
        const uint8_t *p = base + j;
        for (int i = 0; i < n; i++, p += hs) s = mac8(s, p, _mm256_set1_epi32(k[i]));
        store8(out + j, s);
    }
    if (j < W) vpass_scalar(h + j, hs, W - j, lo, n, k, out + j);   /* the last < 8 bytes */
}
#else
#define XF_HAVE_AVX2 0
#endif

static atomic_int simd_allowed = 1;

void transform_use_simd(int on) { atomic_store_explicit(&simd_allowed, on ? 1 : 0, memory_order_relaxed); }

static int use_avx2(void) {
#if XF_HAVE_AVX2
    return atomic_load_explicit(&simd_allowed, memory_order_relaxed) && __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

/* ------------------------------------------------------------------ the resampler */

/* Resample `src` (rows `stride` bytes apart, c channels) to gx.out × gy.out × c at dst. */
static void resample(const uint8_t *src, ptrdiff_t stride, int c, const axis_geom *gx, const axis_geom *gy,
                     uint8_t *dst) {
    const int dw = gx->out, dh = gy->out;
    if (dw <= 0 || dh <= 0) return;
    const int avx2 = use_avx2();
    void (*hpass)(const uint8_t *, int, int, const axis_taps *, uint8_t *) = hpass_scalar;
    void (*vpass)(const uint8_t *, ptrdiff_t, int, int, int, const int32_t *, uint8_t *) = vpass_scalar;
#if XF_HAVE_AVX2
    if (avx2) hpass = hpass_avx2, vpass = vpass_avx2;
#else
    (void)avx2;
#endif
    const int need_h = !axis_is_identity(gx), need_v = !axis_is_identity(gy);
    axis_taps ax = {axis_ksize(gx), NULL, NULL, NULL}, ay = {axis_ksize(gy), NULL, NULL, NULL};
    int kmax = ax.ksize > ay.ksize ? ax.ksize : ay.ksize;

    /* coefficient tables first: the rows the vertical pass reads fix the size of the rest */
    scratch cs = {0};
    cs.cap = align64((size_t)kmax * sizeof(double)) + 2 * align64((size_t)dw * sizeof(int)) +
             align64((size_t)dw * ax.ksize * sizeof(int32_t)) + 2 * align64((size_t)dh * sizeof(int)) +
             align64((size_t)dh * ay.ksize * sizeof(int32_t));
    cs.base = cg_xmalloc(cs.cap);
    double *wtmp = scratch_take(&cs, (size_t)kmax * sizeof(double));
    ax.lo = scratch_take(&cs, (size_t)dw * sizeof(int));
    ax.n = scratch_take(&cs, (size_t)dw * sizeof(int));
    ax.k = scratch_take(&cs, (size_t)dw * ax.ksize * sizeof(int32_t));
    ay.lo = scratch_take(&cs, (size_t)dh * sizeof(int));
    ay.n = scratch_take(&cs, (size_t)dh * sizeof(int));
    ay.k = scratch_take(&cs, (size_t)dh * ay.ksize * sizeof(int32_t));
    axis_fill(gx, &ax, wtmp);
    axis_fill(gy, &ay, wtmp);

    /* source rows [y0, y1) feed the vertical pass, source pixels [x0, x1) the horizontal one */
    const int y0 = ay.lo[0], y1 = ay.lo[dh - 1] + ay.n[dh - 1];
    const int x0 = need_h ? ax.lo[0] : 0, x1 = need_h ? ax.lo[dw - 1] + ax.n[dw - 1] : gx->in_size;
    const int nrows = y1 - y0 > 0 ? y1 - y0 : 0;
    for (int i = 0; i < dw; i++) ax.lo[i] -= x0;
    for (int i = 0; i < dh; i++) ay.lo[i] -= y0;

    const int W = dw * c;                     /* bytes in an output row */
    const uint8_t *hrows = src + (ptrdiff_t)y0 * stride;
    ptrdiff_t hs = stride;
    scratch ps = {0};
    if (need_h && nrows > 0) {
        const int J = (x1 - x0) * c;         /* source bytes per row that the filter reads */
        const int nrows8 = (nrows + 7) & ~7;
        ps.cap = align64((size_t)nrows8 * W) + align64((size_t)J * 8) + align64((size_t)W * 8);
        ps.base = cg_xmalloc(ps.cap);
        uint8_t *hbuf = scratch_take(&ps, (size_t)nrows8 * W);
        uint8_t *lanes = scratch_take(&ps, (size_t)J * 8), *olanes = scratch_take(&ps, (size_t)W * 8);
        for (int r0 = 0; r0 < nrows; r0 += 8) {
            const uint8_t *in[8];
            uint8_t *out[8];
            for (int r = 0; r < 8; r++) {
                int y = r0 + r < nrows ? r0 + r : nrows - 1;   /* repeat the last row in a short block */
                in[r] = src + (ptrdiff_t)(y0 + y) * stride + (ptrdiff_t)x0 * c;
                out[r] = hbuf + (size_t)(r0 + r) * W;
            }
            rows_to_lanes(in, J, lanes);
            hpass(lanes, c, dw, &ax, olanes);
            lanes_to_rows(olanes, W, out);
        }
        hrows = hbuf;
        hs = W;
    }
    for (int y = 0; y < dh; y++) {
        uint8_t *orow = dst + (size_t)y * W;
        if (need_v) vpass(hrows, hs, W, ay.lo[y], ay.n[y], ay.k + (size_t)y * ay.ksize, orow);
        else memcpy(orow, hrows + (ptrdiff_t)(y - y0) * hs, (size_t)W);   /* identity: row y itself */
    }
    free(ps.base);
    free(cs.base);
}

/* ------------------------------------------------------------------ public resizes */

static float clampf(float v, float lo, float hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The box inside the image, never empty. */
static crop_box box_clamp(crop_box b, int w, int h) {
    b.x0 = clampf(b.x0, 0.f, (float)w);
    b.x1 = clampf(b.x1, 0.f, (float)w);
    b.y0 = clampf(b.y0, 0.f, (float)h);
    b.y1 = clampf(b.y1, 0.f, (float)h);
    if (!(b.x1 > b.x0)) b.x0 = b.x1 >= 1.f ? b.x1 - 1.f : 0.f, b.x1 = b.x0 + 1.f;
    if (!(b.y1 > b.y0)) b.y0 = b.y1 >= 1.f ? b.y1 - 1.f : 0.f, b.y1 = b.y0 + 1.f;
    return b;
}

/* Image.resize's axis for a box [b0, b1) of a source axis of n pixels: Pillow takes the box as
 * floats and its width as a float difference. */
static axis_geom box_axis(int n, float b0, float b1, int out) {
    axis_geom g = {n, b0, (double)(b1 - b0) / out, 0, out};
    return g;
}

void resize_bicubic_u8(const uint8_t *src, int sw, int sh, int c, const crop_box *box, uint8_t *dst, int dw, int dh) {
    crop_box b = box ? box_clamp(*box, sw, sh) : (crop_box){0.f, 0.f, (float)sw, (float)sh};
    axis_geom gx = box_axis(sw, b.x0, b.x1, dw), gy = box_axis(sh, b.y0, b.y1, dh);
    resample(src, (ptrdiff_t)sw * c, c, &gx, &gy, dst);
}

void resized_crop_u8(const uint8_t *src, int sw, int sh, int c, crop_box box, uint8_t *dst, int dw, int dh) {
    crop_box b = box_clamp(box, sw, sh);
    /* the crop: every source pixel the box touches (all of an integer box, nothing more) */
    int l = (int)floorf(b.x0), t = (int)floorf(b.y0), r = (int)ceilf(b.x1), bt = (int)ceilf(b.y1);
    if (r > sw) r = sw;
    if (bt > sh) bt = sh;
    axis_geom gx = box_axis(r - l, b.x0 - (float)l, b.x1 - (float)l, dw);
    axis_geom gy = box_axis(bt - t, b.y0 - (float)t, b.y1 - (float)t, dh);
    resample(src + ((ptrdiff_t)t * sw + l) * c, (ptrdiff_t)sw * c, c, &gx, &gy, dst);
}

/* torchvision's Resize(size) output size and CenterCrop(size) offset for a w × h image. */
static void eval_geometry(int w, int h, int size, int *nw, int *nh, int *left, int *top) {
    /* int(size * long / short): an exact product, a correctly rounded division, truncation */
    if (w <= h) *nw = size, *nh = (int)((double)((int64_t)size * h) / w);
    else *nh = size, *nw = (int)((double)((int64_t)size * w) / h);
    /* int(round((n - size) / 2.0)): Python rounds halves to even, as nearbyint does by default */
    *left = (int)nearbyint((*nw - size) / 2.0);
    *top = (int)nearbyint((*nh - size) / 2.0);
}

void resize_center_crop_u8(const uint8_t *src, int sw, int sh, int c, int size, uint8_t *dst) {
    int nw, nh, left, top;
    eval_geometry(sw, sh, size, &nw, &nh, &left, &top);
    /* outputs left .. left + size - 1 of Image.resize((nw, nh)): Pillow's centres, offset */
    axis_geom gx = {sw, 0.0, (double)sw / nw, left, size}, gy = {sh, 0.0, (double)sh / nh, top, size};
    resample(src, (ptrdiff_t)sw * c, c, &gx, &gy, dst);
}

crop_box resize_center_crop_box(int w, int h, int size) {
    int nw, nh, left, top;
    eval_geometry(w, h, size, &nw, &nh, &left, &top);
    double fx = (double)w / nw, fy = (double)h / nh;
    crop_box b = {(float)(left * fx), (float)(top * fy), (float)((left + size) * fx), (float)((top + size) * fy)};
    return b;
}

crop_box center_crop_box(int w, int h) {
    int s = w < h ? w : h;
    crop_box b = {(float)(w - s) * 0.5f, (float)(h - s) * 0.5f, 0.f, 0.f};
    b.x1 = b.x0 + (float)s;
    b.y1 = b.y0 + (float)s;
    return b;
}

/* ------------------------------------------------------------------ random resized crop */

/* Python's round() of a float: halves to even (nearbyint in the default rounding mode). */
static int round_half_even(double v) { return (int)nearbyint(v); }

crop_box random_resized_crop_box(cg_rng *r, int w, int h, float scale_lo, float scale_hi, float ratio_lo,
                                 float ratio_hi) {
    const double area = (double)w * h, lr0 = log((double)ratio_lo), lr1 = log((double)ratio_hi);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (scale_lo + (scale_hi - scale_lo) * cg_rng_uniform_d(r));
        double aspect = exp(lr0 + (lr1 - lr0) * cg_rng_uniform_d(r));
        int cw = round_half_even(sqrt(target * aspect)), ch = round_half_even(sqrt(target / aspect));
        if (0 < cw && cw <= w && 0 < ch && ch <= h) {
            int top = (int)cg_rng_below(r, (uint64_t)(h - ch + 1));
            int left = (int)cg_rng_below(r, (uint64_t)(w - cw + 1));
            return (crop_box){(float)left, (float)top, (float)(left + cw), (float)(top + ch)};
        }
    }
    /* fallback: the whole image, cut to the nearest allowed aspect ratio, centred */
    double in_ratio = (double)w / h, rmin = fmin(ratio_lo, ratio_hi), rmax = fmax(ratio_lo, ratio_hi);
    int cw = w, ch = h;
    if (in_ratio < rmin) ch = round_half_even(cw / rmin);
    else if (in_ratio > rmax) cw = round_half_even(ch * rmax);
    int top = (h - ch) / 2, left = (w - cw) / 2;
    return (crop_box){(float)left, (float)top, (float)(left + cw), (float)(top + ch)};
}

/* ------------------------------------------------------------------ the transform */

void transform_opts_defaults(transform_opts *t, int size, int train) {
    t->size = size;
    t->train = train;
    t->scale_lo = 0.9f;
    t->scale_hi = 1.0f;
    t->ratio_lo = 3.0f / 4.0f;
    t->ratio_hi = 4.0f / 3.0f;
    t->hflip = 0;
}

crop_box transform_plan(const transform_opts *t, cg_rng *r, int w, int h, int *flip) {
    crop_box b;
    int f = 0;
    if (t->train) {
        b = random_resized_crop_box(r, w, h, t->scale_lo, t->scale_hi, t->ratio_lo, t->ratio_hi);
        if (t->hflip) f = cg_rng_uniform(r) < 0.5f;
    } else {
        b = resize_center_crop_box(w, h, t->size);
    }
    if (flip) *flip = f;
    return b;
}

/* libjpeg-turbo decodes at 1/8, 1/4, 1/2 with its SIMD reduced IDCTs; 3/8 and 5/8..7/8 use
 * plain C and are slower than a full decode (6/8: 2.2x the time of 8/8 on ~500x375 q90 JPEGs,
 * docs/data.md), so the hint asks only for those factors. */
void transform_scale_hint(const transform_opts *t, crop_box box, int w, int h, int *hint_w, int *hint_h) {
    double bw = box.x1 - box.x0, bh = box.y1 - box.y0;
    /* the box keeps >= size pixels each way at a decoded scale of at least f */
    double f = fmax(bw > 0 ? t->size / bw : 1.0, bh > 0 ? t->size / bh : 1.0);
    double p = 1.0;
    while (p > 0.125 && p / 2 >= f) p /= 2;
    *hint_w = p < 1.0 ? (int)ceil(w * p) : w;
    *hint_h = p < 1.0 ? (int)ceil(h * p) : h;
}

/* u8 HWC (size × size × 3) -> float CHW, mirrored when flip, as ToTensor (v / 255) then
 * Normalize ((x - mean) / std) compute it in float32. Portable: a table of those exact values. */
static void normalise_scalar(const uint8_t *px, int size, int flip, float *out) {
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - CLIP_MEAN[c]) / CLIP_STD[c];
    const size_t plane = (size_t)size * size;
    for (int y = 0; y < size; y++) {
        const uint8_t *p = px + (size_t)y * size * 3;
        float *o0 = out + (size_t)y * size, *o1 = o0 + plane, *o2 = o1 + plane;
        for (int x = 0; x < size; x++, p += 3) {
            int xo = flip ? size - 1 - x : x;
            o0[xo] = lut[0][p[0]];
            o1[xo] = lut[1][p[1]];
            o2[xo] = lut[2][p[2]];
        }
    }
}

#if XF_HAVE_AVX2
/* The same floats, 8 pixels at a time: the IEEE divisions and subtraction in the same order
 * (vdivps / vsubps round as divss / subss), so the results are identical. */
__attribute__((target("avx2"))) static void normalise_avx2(const uint8_t *px, int size, int flip, float *out) {
    /* byte shuffles picking channel c of 8 pixels from bytes 0..15 (lo) and 16..23 (hi) */
    static const int8_t sel[3][2][16] = {
        {{0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}, {-1, -1, -1, -1, -1, -1, 2, 5, -1, -1, -1, -1, -1, -1, -1, -1}},
        {{1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}, {-1, -1, -1, -1, -1, 0, 3, 6, -1, -1, -1, -1, -1, -1, -1, -1}},
        {{2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}, {-1, -1, -1, -1, -1, 1, 4, 7, -1, -1, -1, -1, -1, -1, -1, -1}}};
    __m128i m[3][2];
    __m256 mean[3], std[3];
    for (int c = 0; c < 3; c++) {
        m[c][0] = _mm_loadu_si128((const __m128i *)(const void *)sel[c][0]);
        m[c][1] = _mm_loadu_si128((const __m128i *)(const void *)sel[c][1]);
        mean[c] = _mm256_set1_ps(CLIP_MEAN[c]);
        std[c] = _mm256_set1_ps(CLIP_STD[c]);
    }
    const __m256 k255 = _mm256_set1_ps(255.0f);
    const __m256i rev = _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    const size_t plane = (size_t)size * size;
    for (int y = 0; y < size; y++) {
        const uint8_t *row = px + (size_t)y * size * 3;
        float *o = out + (size_t)y * size;
        int x = 0;
        for (; x + 8 <= size; x += 8) {
            const uint8_t *p = row + (size_t)x * 3;
            __m128i lo = _mm_loadu_si128((const __m128i *)(const void *)p);
            __m128i hi = _mm_loadl_epi64((const __m128i *)(const void *)(p + 16));
            int xo = flip ? size - 8 - x : x;
            for (int c = 0; c < 3; c++) {
                __m128i b = _mm_or_si128(_mm_shuffle_epi8(lo, m[c][0]), _mm_shuffle_epi8(hi, m[c][1]));
                __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
                v = _mm256_div_ps(_mm256_sub_ps(_mm256_div_ps(v, k255), mean[c]), std[c]);
                if (flip) v = _mm256_permutevar8x32_ps(v, rev);
                _mm256_storeu_ps(o + c * plane + xo, v);
            }
        }
        for (; x < size; x++) {   /* the last size % 8 pixels */
            const uint8_t *p = row + (size_t)x * 3;
            int xo = flip ? size - 1 - x : x;
            for (int c = 0; c < 3; c++) o[c * plane + xo] = ((float)p[c] / 255.0f - CLIP_MEAN[c]) / CLIP_STD[c];
        }
    }
}
#endif

static void normalise_chw(const uint8_t *px, int size, int flip, float *out) {
#if XF_HAVE_AVX2
    if (use_avx2()) {
        normalise_avx2(px, size, flip, out);
        return;
    }
#endif
    normalise_scalar(px, size, flip, out);
}

void transform_finish(const transform_opts *t, const uint8_t *rgb, int w, int h, crop_box box, float sx, float sy,
                      int flip, uint8_t *tmp, float *out) {
    const int size = t->size;
    crop_box b = {box.x0 * sx, box.y0 * sy, box.x1 * sx, box.y1 * sy};
    if (t->train) {
        resized_crop_u8(rgb, w, h, 3, b, tmp, size, size);
    } else {
        crop_box planned = resize_center_crop_box(w, h, size);
        int same = planned.x0 == box.x0 && planned.y0 == box.y0 && planned.x1 == box.x1 && planned.y1 == box.y1;
        if (sx == 1.f && sy == 1.f && same)
            resize_center_crop_u8(rgb, w, h, 3, size, tmp);
        else
            resize_bicubic_u8(rgb, w, h, 3, &b, tmp, size, size);
    }
    normalise_chw(tmp, size, flip, out);
}
