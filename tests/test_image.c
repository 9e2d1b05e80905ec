/* Tests for src/data/image.c: decoding JPEG, PNG and WebP to RGB, EXIF orientation, DCT
 * scaling, the guards against truncated, corrupt and oversized data, and the encoders.
 *
 * Fixtures are written at test time, by independent encoders, from a picture this program
 * draws: ImageMagick (/usr/bin/convert when present), cjpeg/djpeg (libjpeg-turbo-progs) and
 * pngcrush. Expected pixels come from the source picture (lossless formats), from djpeg (the
 * reference decoder of the same libjpeg-turbo: exact) and from ImageMagick's own decode
 * (CMYK, palette, orientation semantics). A missing tool skips its checks with a SKIP line,
 * except under CI=true, where it is a failure. */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <webp/decode.h>
#include <zlib.h>

#include "check.h"
#include "core/fileio.h"
#include "core/log.h"
#include "data/image.h"

#define W 203   /* not multiples of 8 or 16: partial MCUs, ceil() in the DCT scaling */
#define H 117

static char dir[256];
static const char *convert_bin = "convert";
static uint8_t src_rgb[W * H * 3];    /* the source picture */
static uint8_t src_alpha[W * H];      /* its alpha for the RGBA / gray+alpha fixtures (never 0) */

/* ------------------------------------------------------------------ helpers */

static void fail_now(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  FAIL ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    check_failures_now++;
    check_failures_total++;
}

static int have_tool(const char *tool) {
    if (tool[0] == '/') return access(tool, X_OK) == 0;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v '%s' >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* Whether the checks that need `tool` can run. Missing: SKIP, or a failure under CI=true. */
static int need(const char *tool, const char *what) {
    if (have_tool(tool)) return 1;
    const char *ci = getenv("CI");
    if (ci && strcmp(ci, "true") == 0) fail_now("%s needs %s, which is missing (CI=true)", what, tool);
    else fprintf(stderr, "  SKIP %s: %s is not installed\n", what, tool);
    return 0;
}

/* Run a shell command (printf-style); a failure is reported with the command. */
static int sh(const char *fmt, ...) {
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0) fail_now("command failed (%d): %s", rc, cmd);
    return rc;
}

static char *path_of(const char *name) { return cg_xasprintf("%s/%s", dir, name); }

static uint8_t *read_all(const char *name, size_t *n) {
    char *p = path_of(name), *buf = NULL;
    if (cg_file_read(p, &buf, n) != CG_OK) {
        fail_now("cannot read %s: %s", p, cg_error_message());
        buf = NULL;
    }
    free(p);
    return (uint8_t *)buf;
}

static void write_all(const char *name, const void *data, size_t n) {
    char *p = path_of(name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, n, f) != n) fail_now("cannot write %s", p);
    if (f) fclose(f);
    free(p);
}

/* A binary PPM (P6) or PGM (P5, replicated to RGB) with maxval 255, as djpeg and convert write. */
typedef struct {
    int w, h, gray;
    uint8_t *rgb;
} pnm;

static int pnm_read(const char *name, pnm *img) {
    size_t n = 0;
    uint8_t *d = read_all(name, &n);
    memset(img, 0, sizeof *img);
    if (!d) return -1;
    int w = 0, h = 0, maxval = 0, off = 0;
    char magic[3] = {0};
    if (sscanf((char *)d, "%2s %d %d %d%n", magic, &w, &h, &maxval, &off) != 4 || maxval != 255 ||
        (strcmp(magic, "P6") && strcmp(magic, "P5"))) {
        fail_now("%s: not an 8-bit PPM/PGM", name);
        free(d);
        return -1;
    }
    int ch = magic[1] == '6' ? 3 : 1;
    off++;   /* the single whitespace after maxval */
    if ((size_t)off + (size_t)w * h * ch > n) {
        fail_now("%s: short PNM", name);
        free(d);
        return -1;
    }
    img->w = w;
    img->h = h;
    img->gray = ch == 1;
    img->rgb = malloc((size_t)w * h * 3);
    for (size_t i = 0; i < (size_t)w * h; i++)
        for (int c = 0; c < 3; c++) img->rgb[i * 3 + c] = d[off + i * ch + (ch == 3 ? c : 0)];
    free(d);
    return 0;
}

static void write_ppm(const char *name, const uint8_t *rgb, int w, int h) {
    char hdr[64];
    int k = snprintf(hdr, sizeof hdr, "P6\n%d %d\n255\n", w, h);
    size_t n = (size_t)w * h * 3;
    uint8_t *buf = malloc(k + n);
    memcpy(buf, hdr, k);
    memcpy(buf + k, rgb, n);
    write_all(name, buf, k + n);
    free(buf);
}

/* A 16-bit PPM whose samples have the source's values as high bytes and varying low bytes, so
 * that keeping the high byte and rounding to 8 bits give different pixels. */
static void write_ppm16(const char *name, const uint8_t *rgb, int w, int h) {
    char hdr[64];
    int k = snprintf(hdr, sizeof hdr, "P6\n%d %d\n65535\n", w, h);
    size_t n = (size_t)w * h * 3;
    uint8_t *buf = malloc(k + 2 * n);
    memcpy(buf, hdr, k);
    for (size_t i = 0; i < n; i++) {
        buf[k + 2 * i] = rgb[i];
        buf[k + 2 * i + 1] = (uint8_t)(i * 37 + 11);
    }
    write_all(name, buf, k + 2 * n);
    free(buf);
}

/* A PAM with alpha: channels 2 (GRAYSCALE_ALPHA) or 4 (RGB_ALPHA). */
static void write_pam(const char *name, const uint8_t *rgb, const uint8_t *alpha, int w, int h, int channels) {
    char hdr[160];
    int k = snprintf(hdr, sizeof hdr, "P7\nWIDTH %d\nHEIGHT %d\nDEPTH %d\nMAXVAL 255\nTUPLTYPE %s\nENDHDR\n", w, h,
                     channels, channels == 4 ? "RGB_ALPHA" : "GRAYSCALE_ALPHA");
    size_t n = (size_t)w * h * channels;
    uint8_t *buf = malloc(k + n), *q = buf + k;
    memcpy(buf, hdr, k);
    for (size_t i = 0; i < (size_t)w * h; i++) {
        if (channels == 4) {
            memcpy(q, rgb + i * 3, 3);
            q += 3;
        } else {
            *q++ = rgb[i * 3];
        }
        *q++ = alpha[i];
    }
    write_all(name, buf, k + n);
    free(buf);
}

static double mean_abs_diff(const uint8_t *a, const uint8_t *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += abs((int)a[i] - (int)b[i]);
    return n ? s / (double)n : 0;
}

static int max_abs_diff(const uint8_t *a, const uint8_t *b, size_t n) {
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > m) m = d;
    }
    return m;
}

/* Decode a fixture file; on failure the message is printed and img stays empty. */
static int decode(const char *name, const image_decode_opts *o, cg_image *img) {
    char *p = path_of(name);
    int rc = image_decode_file(p, o, img);
    if (rc) fprintf(stderr, "  (%s: %s)\n", name, cg_error_message());
    free(p);
    return rc;
}

/* Decode `name` and compare it with an image: same size, max difference <= max_tol and mean
 * difference <= mean_tol. */
static void expect_pixels(const char *name, const image_decode_opts *o, const uint8_t *ref, int w, int h, int max_tol,
                          double mean_tol) {
    cg_image img;
    int rc = decode(name, o, &img);
    CHECK_EQ_INT(rc, CG_OK);
    if (rc) return;
    CHECK_EQ_INT(img.w, w);
    CHECK_EQ_INT(img.h, h);
    if (img.w == w && img.h == h) {
        size_t n = (size_t)w * h * 3;
        int mx = max_abs_diff(img.rgb, ref, n);
        double mean = mean_abs_diff(img.rgb, ref, n);
        if (getenv("IMAGE_TEST_VERBOSE")) fprintf(stderr, "  %s: max diff %d, mean %.3f\n", name, mx, mean);
        if (mx > max_tol || mean > mean_tol)
            fail_now("%s: max diff %d (tol %d), mean %.3f (tol %.3f)", name, mx, max_tol, mean, mean_tol);
    }
    image_free(&img);
}

/* Decode `name` and compare it with an ImageMagick or djpeg decode of a file (PPM/PGM). */
static void expect_like_pnm(const char *name, const image_decode_opts *o, const char *ref_pnm, int max_tol,
                            double mean_tol) {
    pnm ref;
    if (pnm_read(ref_pnm, &ref)) return;
    expect_pixels(name, o, ref.rgb, ref.w, ref.h, max_tol, mean_tol);
    free(ref.rgb);
}

/* The source picture: smooth gradients, a disc and a rectangle with sharp edges, and four
 * differently coloured 12-pixel corner squares so that every orientation is told apart. */
static void draw_source(void) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = src_rgb + ((size_t)y * W + x) * 3;
            p[0] = (uint8_t)(x * 255 / (W - 1));
            p[1] = (uint8_t)(y * 255 / (H - 1));
            p[2] = (uint8_t)(128 + 100 * ((x + 2 * y) % 64 < 32 ? 1 : -1) * ((x + 2 * y) % 32) / 32);
            int dx = x - 120, dy = y - 60;
            if (dx * dx + dy * dy < 25 * 25) p[0] = 250, p[1] = 200, p[2] = 40;
            if (x >= 30 && x < 70 && y >= 35 && y < 65) p[0] = 30, p[1] = 60, p[2] = 160;
            int left = x < 12, right = x >= W - 12, top = y < 12, bottom = y >= H - 12;
            if (top && left) p[0] = 255, p[1] = 0, p[2] = 0;
            if (top && right) p[0] = 0, p[1] = 255, p[2] = 0;
            if (bottom && left) p[0] = 0, p[1] = 0, p[2] = 255;
            if (bottom && right) p[0] = 255, p[1] = 255, p[2] = 255;
            src_alpha[(size_t)y * W + x] = (uint8_t)(1 + (x * 7 + y * 3) % 255);
        }
}

static uint32_t be32_at(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* PNG IHDR fields of a fixture: bit depth, colour type, interlace. */
static void png_ihdr(const char *name, int *depth, int *ctype, int *interlace) {
    size_t n = 0;
    uint8_t *d = read_all(name, &n);
    *depth = *ctype = *interlace = -1;
    if (d && n > 29) {
        *depth = d[24];
        *ctype = d[25];
        *interlace = d[28];
    }
    free(d);
}

static int png_has_chunk(const char *name, const char *type) {
    size_t n = 0;
    uint8_t *d = read_all(name, &n);
    int found = 0;
    for (size_t p = 8; d && p + 8 <= n; p += 12 + be32_at(d + p))
        if (memcmp(d + p + 4, type, 4) == 0) found = 1;
    free(d);
    return found;
}

/* Where the last IDAT chunk of a PNG ends (its CRC included). */
static size_t png_idat_end(const uint8_t *d, size_t n) {
    size_t end = 0;
    for (size_t p = 8; p + 12 <= n; p += 12 + be32_at(d + p))
        if (memcmp(d + p + 4, "IDAT", 4) == 0) end = p + 12 + be32_at(d + p);
    return end;
}

/* ------------------------------------------------------------------ fixtures */

static int fixtures_ok;

/* TIFF integers in either byte order. */
static void put16(uint8_t *t, size_t *n, unsigned v, int little) {
    t[(*n)++] = (uint8_t)(little ? v : v >> 8);
    t[(*n)++] = (uint8_t)(little ? v >> 8 : v);
}
static void put32(uint8_t *t, size_t *n, uint32_t v, int little) {
    put16(t, n, little ? v & 0xFFFF : v >> 16, little);
    put16(t, n, little ? v >> 16 : v & 0xFFFF, little);
}

/* An APP1 EXIF segment with IFD0 = {Make (ASCII, out of line), Orientation = o}, in Intel (II)
 * or Motorola (MM) byte order. Returns its length. */
static size_t exif_app1(uint8_t *seg, int o, int little) {
    uint8_t t[64];
    size_t n = 0;
    t[n++] = little ? 'I' : 'M';
    t[n++] = little ? 'I' : 'M';
    put16(t, &n, 42, little);
    put32(t, &n, 8, little);        /* IFD0 right after the header */
    put16(t, &n, 2, little);        /* two entries */
    put16(t, &n, 0x010F, little);   /* Make, ASCII, 6 bytes at offset 38 */
    put16(t, &n, 2, little);
    put32(t, &n, 6, little);
    put32(t, &n, 38, little);
    put16(t, &n, 0x0112, little);   /* Orientation, SHORT, 1 value, left-justified in the value field */
    put16(t, &n, 3, little);
    put32(t, &n, 1, little);
    put16(t, &n, (unsigned)o, little);
    put16(t, &n, 0, little);
    put32(t, &n, 0, little);        /* no next IFD */
    memcpy(t + n, "clipg", 6);
    n += 6;
    seg[0] = 0xFF;
    seg[1] = 0xE1;
    size_t len = 2 + 6 + n;
    seg[2] = (uint8_t)(len >> 8);
    seg[3] = (uint8_t)len;
    memcpy(seg + 4, "Exif\0\0", 6);
    memcpy(seg + 10, t, n);
    return 2 + len;
}

/* baseline.jpg with `seg` inserted right after SOI, written as `name`. */
static void write_with_segment(const char *name, const uint8_t *seg, size_t seg_n) {
    size_t n = 0;
    uint8_t *d = read_all("baseline.jpg", &n);
    if (!d) return;
    uint8_t *o = malloc(n + seg_n);
    memcpy(o, d, 2);
    memcpy(o + 2, seg, seg_n);
    memcpy(o + 2 + seg_n, d + 2, n - 2);
    write_all(name, o, n + seg_n);
    free(o);
    free(d);
}

/* baseline.jpg with an EXIF orientation 1..8, in both byte orders: orient<o>_<II|MM>.jpg */
static void make_orientation_fixtures(void) {
    for (int little = 0; little <= 1; little++)
        for (int o = 1; o <= 8; o++) {
            char name[64];
            uint8_t seg[128];
            snprintf(name, sizeof name, "orient%d_%s.jpg", o, little ? "II" : "MM");
            write_with_segment(name, seg, exif_app1(seg, o, little));
        }
}

/* Writes every fixture; a failing tool (or, under CI=true, a missing one) fails this test. */
static void test_fixtures(void) {
    if (!need(convert_bin, "image fixtures") || !need("cjpeg", "image fixtures") || !need("djpeg", "image fixtures") ||
        !need("pngcrush", "image fixtures"))
        return;
    const char *cv = convert_bin, *d = dir;
    int bad = 0;
    bad |= sh("cjpeg -quality 90 -outfile '%s/baseline.jpg' '%s/src.ppm'", d, d);
    bad |= sh("cjpeg -quality 90 -progressive -outfile '%s/progressive.jpg' '%s/src.ppm'", d, d);
    bad |= sh("cjpeg -quality 90 -grayscale -outfile '%s/gray.jpg' '%s/src.ppm'", d, d);
    bad |= sh("'%s' '%s/src.ppm' -colorspace CMYK -quality 95 '%s/cmyk.jpg'", cv, d, d);
    bad |= sh("'%s' '%s/src.ppm' '%s/rgb.png'", cv, d, d);
    bad |= sh("'%s' '%s/src16.ppm' -depth 16 PNG48:'%s/rgb16.png'", cv, d, d);
    bad |= sh("'%s' '%s/src_rgba.pam' -depth 8 '%s/rgba.png'", cv, d, d);
    bad |= sh("'%s' '%s/src_ga.pam' -depth 8 -define png:color-type=4 '%s/gray_alpha.png'", cv, d, d);
    bad |= sh("'%s' '%s/src_pal.pam' PNG8:'%s/palette.png'", cv, d, d);
    bad |= sh("'%s' '%s/src.ppm' -interlace PNG '%s/interlaced.png'", cv, d, d);
    bad |= sh("'%s' '%s/src.ppm' -colorspace Gray -threshold 50%% -type Bilevel '%s/bilevel.png'", cv, d, d);
    bad |= sh("pngcrush -q '%s/rgb.png' '%s/crushed.png' >/dev/null 2>&1", d, d);
    bad |= sh("pngcrush -q '%s/palette.png' '%s/crushed_palette.png' >/dev/null 2>&1", d, d);
    bad |= sh("'%s' '%s/src.ppm' -define webp:lossless=true '%s/lossless.webp'", cv, d, d);
    bad |= sh("'%s' '%s/src.ppm' -quality 90 '%s/lossy.webp'", cv, d, d);
    bad |= sh("'%s' '%s/src_rgba.pam' -define webp:lossless=true -define webp:exact=true '%s/alpha.webp'", cv, d, d);
    /* the independent decodes used as references */
    bad |= sh("djpeg -ppm -outfile '%s/baseline_djpeg.ppm' '%s/baseline.jpg'", d, d);
    bad |= sh("djpeg -ppm -outfile '%s/progressive_djpeg.ppm' '%s/progressive.jpg'", d, d);
    bad |= sh("djpeg -outfile '%s/gray_djpeg.pgm' '%s/gray.jpg'", d, d);
    bad |= sh("'%s' '%s/cmyk.jpg' -colorspace sRGB -depth 8 ppm:'%s/cmyk_im.ppm'", cv, d, d);
    bad |= sh("'%s' '%s/palette.png' -alpha off -depth 8 ppm:'%s/palette_im.ppm'", cv, d, d);
    bad |= sh("'%s' '%s/bilevel.png' -depth 8 ppm:'%s/bilevel_im.ppm'", cv, d, d);
    bad |= sh("'%s' '%s/lossy.webp' -depth 8 ppm:'%s/lossy_im.ppm'", cv, d, d);
    fixtures_ok = !bad;
    if (fixtures_ok) make_orientation_fixtures();
}

/* ------------------------------------------------------------------ tests */

static void test_sniff_probe(void) {
    static const uint8_t jpg[] = {0xFF, 0xD8, 0xFF, 0xE0}, png[] = {0x89, 'P', 'N', 'G', 13, 10, 26, 10},
                         webp[] = "RIFF\0\0\0\0WEBPVP8 ", junk[] = "GIF89a....";
    CHECK_EQ_INT(image_sniff(jpg, sizeof jpg), IMAGE_JPEG);
    CHECK_EQ_INT(image_sniff(png, sizeof png), IMAGE_PNG);
    CHECK_EQ_INT(image_sniff(webp, 16), IMAGE_WEBP);
    CHECK_EQ_INT(image_sniff(junk, sizeof junk), IMAGE_UNKNOWN);
    CHECK_EQ_INT(image_sniff(jpg, 2), IMAGE_UNKNOWN);
    CHECK_EQ_INT(image_sniff(png, 7), IMAGE_UNKNOWN);
    CHECK_EQ_INT(image_sniff(NULL, 0), IMAGE_UNKNOWN);
    CHECK_EQ_STR(image_format_name(IMAGE_JPEG), "JPEG");
    CHECK_EQ_STR(image_format_name(IMAGE_PNG), "PNG");
    CHECK_EQ_STR(image_format_name(IMAGE_WEBP), "WebP");
    CHECK_EQ_STR(image_format_name(IMAGE_UNKNOWN), "unknown");
    if (!fixtures_ok) return;
    static const char *const files[] = {"baseline.jpg", "progressive.jpg", "gray.jpg", "cmyk.jpg", "rgb.png",
                                        "rgb16.png", "interlaced.png", "palette.png", "lossless.webp", "lossy.webp"};
    static const image_format fmts[] = {IMAGE_JPEG, IMAGE_JPEG, IMAGE_JPEG, IMAGE_JPEG, IMAGE_PNG,
                                        IMAGE_PNG,  IMAGE_PNG,  IMAGE_PNG,  IMAGE_WEBP, IMAGE_WEBP};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        size_t n = 0;
        uint8_t *d = read_all(files[i], &n);
        if (!d) continue;
        CHECK_EQ_INT(image_sniff(d, n), fmts[i]);
        int w = 0, h = 0;
        CHECK_EQ_INT(image_probe(d, n, files[i], &w, &h), CG_OK);
        CHECK_EQ_INT(w, W);
        CHECK_EQ_INT(h, H);
        free(d);
    }
}

static void test_jpeg(void) {
    if (!fixtures_ok) return;
    /* libjpeg-turbo's own djpeg (accurate DCT, fancy upsampling) gives the very same pixels */
    expect_like_pnm("baseline.jpg", NULL, "baseline_djpeg.ppm", 0, 0);
    expect_like_pnm("progressive.jpg", NULL, "progressive_djpeg.ppm", 0, 0);
    /* and both are close to the picture that was encoded */
    expect_pixels("baseline.jpg", NULL, src_rgb, W, H, 255, 5.0);
    expect_pixels("progressive.jpg", NULL, src_rgb, W, H, 255, 5.0);
    /* grayscale: one channel replicated, equal to djpeg's PGM */
    expect_like_pnm("gray.jpg", NULL, "gray_djpeg.pgm", 0, 0);
    cg_image img;
    if (decode("gray.jpg", NULL, &img) == CG_OK) {
        int same = 1;
        for (size_t i = 0; i < (size_t)img.w * img.h; i++)
            same &= img.rgb[3 * i] == img.rgb[3 * i + 1] && img.rgb[3 * i] == img.rgb[3 * i + 2];
        CHECK(same);
        image_free(&img);
    }
    CHECK(img.rgb == NULL && img.w == 0);
}

/* CMYK (ImageMagick writes Adobe inverted YCCK): as ImageMagick converts it back to sRGB, within
 * a rounding step, and near the source. */
static void test_jpeg_cmyk(void) {
    if (!fixtures_ok) return;
    size_t n = 0;
    uint8_t *d = read_all("cmyk.jpg", &n);
    /* the fixture is what it should be: an Adobe APP14 segment and 4 components in the frame */
    int adobe = 0, comps = 0;
    for (size_t p = 2; d && p + 10 < n && d[p] == 0xFF;) {
        size_t len = (size_t)d[p + 2] << 8 | d[p + 3];
        if (d[p + 1] == 0xEE && memcmp(d + p + 4, "Adobe", 5) == 0) adobe = 1;
        if (d[p + 1] == 0xC0 || d[p + 1] == 0xC2) comps = d[p + 9];
        if (d[p + 1] == 0xDA) break;
        p += 2 + len;
    }
    free(d);
    CHECK(adobe);
    CHECK_EQ_INT(comps, 4);
    expect_like_pnm("cmyk.jpg", NULL, "cmyk_im.ppm", 1, 0.5);
    expect_pixels("cmyk.jpg", NULL, src_rgb, W, H, 255, 3.0);
}

/* ---- EXIF orientation */

static const char *const orient_names[9] = {"", "TopLeft", "TopRight", "BottomRight", "BottomLeft",
                                            "LeftTop", "RightTop", "RightBottom", "LeftBottom"};

/* The orientation applied to an image by forward mapping of every source pixel, written from the
 * EXIF definitions (a different route from the decoder's, which maps output to source). */
static uint8_t *reference_orient(const uint8_t *s, int w, int h, int o, int *ow, int *oh) {
    *ow = o >= 5 ? h : w;
    *oh = o >= 5 ? w : h;
    uint8_t *d = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int X = x, Y = y;
            switch (o) {
            case 2: X = w - 1 - x; break;
            case 3: X = w - 1 - x; Y = h - 1 - y; break;
            case 4: Y = h - 1 - y; break;
            case 5: X = y; Y = x; break;
            case 6: X = h - 1 - y; Y = x; break;              /* 90° clockwise */
            case 7: X = h - 1 - y; Y = w - 1 - x; break;
            case 8: X = y; Y = w - 1 - x; break;              /* 90° counter-clockwise */
            }
            memcpy(d + ((size_t)Y * *ow + X) * 3, s + ((size_t)y * w + x) * 3, 3);
        }
    return d;
}

/* Mean colour of the 6x6 square at a corner (cx, cy in {0, 1}) of an image. */
static void corner_mean(const cg_image *im, int cx, int cy, double m[3]) {
    m[0] = m[1] = m[2] = 0;
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 6; x++) {
            int X = cx ? im->w - 1 - x : x, Y = cy ? im->h - 1 - y : y;
            for (int c = 0; c < 3; c++) m[c] += im->rgb[((size_t)Y * im->w + X) * 3 + c] / 36.0;
        }
}

static void test_jpeg_orientation(void) {
    if (!fixtures_ok) return;
    pnm plain;
    if (pnm_read("baseline_djpeg.ppm", &plain)) return;
    for (int little = 0; little <= 1; little++)
        for (int o = 1; o <= 8; o++) {
            char name[64], ref_name[80];
            snprintf(name, sizeof name, "orient%d_%s.jpg", o, little ? "II" : "MM");
            /* ImageMagick reads the same tag from our segment ... */
            char *p = path_of(name), *tag = cg_xasprintf("%s/%s.tag", dir, name);
            sh("'%s' '%s' -format '%%[orientation]' info: > '%s'", convert_bin, p, tag);
            char *got = NULL;
            size_t got_n = 0;
            if (cg_file_read(tag, &got, &got_n) == CG_OK) {
                if (strcmp(got, orient_names[o])) fail_now("%s: ImageMagick reads orientation %s, wrote %d", name, got, o);
                free(got);
            }
            /* ... and its -auto-orient is the independent meaning of the tag */
            snprintf(ref_name, sizeof ref_name, "%s.im.ppm", name);
            sh("'%s' '%s' -auto-orient -depth 8 ppm:'%s/%s'", convert_bin, p, dir, ref_name);
            int ew = o >= 5 ? H : W, eh = o >= 5 ? W : H;
            expect_like_pnm(name, NULL, ref_name, 4, 0.1);   /* ImageMagick's JPEG decode: same library, maybe other settings */
            /* exact: djpeg's pixels of the untagged file, re-laid by the reference mapping */
            int rw, rh;
            uint8_t *ref = reference_orient(plain.rgb, W, H, o, &rw, &rh);
            expect_pixels(name, NULL, ref, ew, eh, 0, 0);
            free(ref);
            /* probe sees the displayed size */
            size_t n = 0;
            uint8_t *d = read_all(name, &n);
            int pw = 0, ph = 0;
            if (d) CHECK_EQ_INT(image_probe(d, n, name, &pw, &ph), CG_OK);
            CHECK_EQ_INT(pw, ew);
            CHECK_EQ_INT(ph, eh);
            free(d);
            /* corner squares where a viewer shows them: red, green, blue, white as stored
             * (top-left, top-right, bottom-left, bottom-right) move with the orientation */
            cg_image img;
            if (o == 6 && decode(name, NULL, &img) == CG_OK) {
                double m[3];
                corner_mean(&img, 1, 0, m);   /* rotated clockwise: red is now top-right */
                CHECK(m[0] > 200 && m[1] < 60 && m[2] < 60);
                corner_mean(&img, 0, 0, m);   /* blue (bottom-left) is now top-left */
                CHECK(m[2] > 200 && m[0] < 60 && m[1] < 60);
                corner_mean(&img, 0, 1, m);   /* white (bottom-right) is now bottom-left */
                CHECK(m[0] > 200 && m[1] > 200 && m[2] > 200);
                image_free(&img);
            }
            free(p);
            free(tag);
        }
    free(plain.rgb);
}

/* EXIF blocks that are broken in every way the parser checks: no crash, orientation 1. */
static void test_jpeg_bad_exif(void) {
    if (!fixtures_ok) return;
    uint8_t seg[128];
    size_t n = exif_app1(seg, 6, 1);
    struct {
        size_t at[2];
        uint8_t v[2];
    } edits[] = {
        {{10, 10}, {'X', 'X'}},         /* byte order neither II nor MM */
        {{12, 12}, {43, 43}},           /* TIFF magic not 42 */
        {{14, 14}, {0xF0, 0xF0}},       /* IFD0 offset far beyond the block */
        {{17, 17}, {0xFF, 0xFF}},       /* IFD0 offset near 2^32 */
        {{18, 32}, {0xFF, 0x13}},       /* 255 entries, none Orientation: the walk runs into the end */
        {{40, 40}, {9, 9}},             /* orientation 9: out of range */
        {{34, 34}, {9, 9}},             /* orientation of type SLONG: not SHORT or LONG */
        {{32, 32}, {0x13, 0x13}},       /* tag 0x0113, not Orientation */
        {{4, 4}, {'e', 'e'}},           /* "exif": not an EXIF segment */
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        uint8_t s2[128];
        memcpy(s2, seg, n);
        s2[edits[i].at[0]] = edits[i].v[0];
        s2[edits[i].at[1]] = edits[i].v[1];
        write_with_segment("bad_exif.jpg", s2, n);
        expect_like_pnm("bad_exif.jpg", NULL, "baseline_djpeg.ppm", 0, 0);
    }
    /* an APP1 segment whose length runs past the end of the data: the decoder refuses it, no read overrun */
    uint8_t s3[128];
    memcpy(s3, seg, n);
    s3[2] = 0x7F;
    write_with_segment("bad_exif.jpg", s3, n);
    cg_image img;
    char *p = path_of("bad_exif.jpg");
    CHECK_EQ_INT(image_decode_file(p, NULL, &img), CG_ERR_FORMAT);
    free(p);
}

/* ---- DCT scaling */

static int scaled(int side, int k) { return (side * k + 7) / 8; }

/* Mean of each k x k source block (the last ones partial): what a 1/k decode approximates. */
static uint8_t *box_downsample(const uint8_t *s, int w, int h, int k, int *ow, int *oh) {
    *ow = (w + k - 1) / k;
    *oh = (h + k - 1) / k;
    uint8_t *d = malloc((size_t)*ow * *oh * 3);
    for (int Y = 0; Y < *oh; Y++)
        for (int X = 0; X < *ow; X++)
            for (int c = 0; c < 3; c++) {
                int sum = 0, cnt = 0;
                for (int y = Y * k; y < h && y < Y * k + k; y++)
                    for (int x = X * k; x < w && x < X * k + k; x++, cnt++) sum += s[((size_t)y * w + x) * 3 + c];
                d[((size_t)Y * *ow + X) * 3 + c] = (uint8_t)((sum + cnt / 2) / cnt);
            }
    return d;
}

static void test_jpeg_dct_scaling(void) {
    if (!fixtures_ok) return;
    /* hint exactly k/8 of the size: that factor, pixel for pixel what djpeg -scale k/8 gives */
    for (int k = 1; k <= 8; k++) {
        char ref[64];
        snprintf(ref, sizeof ref, "baseline_k%d.ppm", k);
        sh("djpeg -scale %d/8 -ppm -outfile '%s/%s' '%s/baseline.jpg'", k, dir, ref, dir);
        image_decode_opts o = {0, scaled(W, k), scaled(H, k)};
        expect_like_pnm("baseline.jpg", &o, ref, 0, 0);
        expect_like_pnm("progressive.jpg", &o, ref, 0, 0);   /* cjpeg -progressive keeps the coefficients */
    }
    /* one pixel more than k/8 needs the next factor up */
    image_decode_opts o = {0, scaled(W, 2) + 1, 1};
    cg_image img;
    if (decode("baseline.jpg", &o, &img) == CG_OK) {
        CHECK_EQ_INT(img.w, scaled(W, 3));
        CHECK_EQ_INT(img.h, scaled(H, 3));
        image_free(&img);
    }
    /* one side constrained, the other 0 */
    o = (image_decode_opts){0, 0, scaled(H, 5)};
    if (decode("baseline.jpg", &o, &img) == CG_OK) {
        CHECK_EQ_INT(img.w, scaled(W, 5));
        CHECK_EQ_INT(img.h, scaled(H, 5));
        image_free(&img);
    }
    /* a hint larger than the image: full size, never upscaled */
    o = (image_decode_opts){0, 4 * W, 4 * H};
    expect_like_pnm("baseline.jpg", &o, "baseline_djpeg.ppm", 0, 0);
    /* 1/4: ceil(w/4) x ceil(h/4), close to 4x4 block means of the source */
    int bw, bh;
    uint8_t *box = box_downsample(src_rgb, W, H, 4, &bw, &bh);
    o = (image_decode_opts){0, (W + 3) / 4, (H + 3) / 4};
    expect_pixels("baseline.jpg", &o, box, bw, bh, 255, 3.0);
    free(box);
    /* grayscale and CMYK scale too */
    if (decode("gray.jpg", &o, &img) == CG_OK) {
        CHECK_EQ_INT(img.w, scaled(W, 2));
        image_free(&img);
    }
    if (decode("cmyk.jpg", &o, &img) == CG_OK) {
        CHECK_EQ_INT(img.w, scaled(W, 2));
        CHECK_EQ_INT(img.h, scaled(H, 2));
        image_free(&img);
    }
    /* with orientation 6 the hint is in displayed coordinates (117 wide, 203 high): a hint of
     * 30 x 102 needs 4/8 of the stored 203 x 117; read in stored coordinates it would be 7/8 */
    o = (image_decode_opts){0, 30, 102};
    if (decode("orient6_II.jpg", &o, &img) == CG_OK) {
        CHECK_EQ_INT(img.w, scaled(H, 4));
        CHECK_EQ_INT(img.h, scaled(W, 4));
        /* and the pixels are the 1/2 decode, rotated */
        pnm half;
        if (pnm_read("baseline_k4.ppm", &half) == 0) {
            int rw, rh;
            uint8_t *ref = reference_orient(half.rgb, half.w, half.h, 6, &rw, &rh);
            if (rw == img.w && rh == img.h) CHECK_EQ_INT(max_abs_diff(ref, img.rgb, (size_t)rw * rh * 3), 0);
            free(ref);
            free(half.rgb);
        }
        image_free(&img);
    }
    /* PNG and WebP ignore the hint */
    o = (image_decode_opts){0, 10, 10};
    expect_pixels("rgb.png", &o, src_rgb, W, H, 0, 0);
    expect_pixels("lossless.webp", &o, src_rgb, W, H, 0, 0);
}

/* ---- PNG */

static void test_png(void) {
    if (!fixtures_ok) return;
    int depth, ctype, interlace;
    expect_pixels("rgb.png", NULL, src_rgb, W, H, 0, 0);
    expect_pixels("crushed.png", NULL, src_rgb, W, H, 0, 0);
    /* 16-bit: the high byte of each sample, as PIL (not rounded: the low bytes vary) */
    png_ihdr("rgb16.png", &depth, &ctype, &interlace);
    CHECK_EQ_INT(depth, 16);
    expect_pixels("rgb16.png", NULL, src_rgb, W, H, 0, 0);
    /* interlaced (Adam7) */
    png_ihdr("interlaced.png", &depth, &ctype, &interlace);
    CHECK_EQ_INT(interlace, 1);
    expect_pixels("interlaced.png", NULL, src_rgb, W, H, 0, 0);
    /* RGBA: alpha dropped, colours kept exactly */
    png_ihdr("rgba.png", &depth, &ctype, &interlace);
    CHECK_EQ_INT(ctype, 6);
    expect_pixels("rgba.png", NULL, src_rgb, W, H, 0, 0);
    /* gray + alpha: the gray replicated, alpha dropped */
    png_ihdr("gray_alpha.png", &depth, &ctype, &interlace);
    CHECK_EQ_INT(ctype, 4);
    CHECK_EQ_INT(depth, 8);
    uint8_t *gray = malloc((size_t)W * H * 3);
    for (size_t i = 0; i < (size_t)W * H; i++) gray[3 * i] = gray[3 * i + 1] = gray[3 * i + 2] = src_rgb[3 * i];
    expect_pixels("gray_alpha.png", NULL, gray, W, H, 0, 0);
    free(gray);
    /* palette with a tRNS chunk: the palette colours (as ImageMagick's decode with alpha off),
     * and the opaque pixels exactly the source's */
    png_ihdr("palette.png", &depth, &ctype, &interlace);
    CHECK_EQ_INT(ctype, 3);
    CHECK(png_has_chunk("palette.png", "tRNS"));
    expect_like_pnm("palette.png", NULL, "palette_im.ppm", 0, 0);
    expect_like_pnm("crushed_palette.png", NULL, "palette_im.ppm", 0, 0);
    /* 1-bit gray */
    png_ihdr("bilevel.png", &depth, &ctype, &interlace);
    CHECK_EQ_INT(depth, 1);
    expect_like_pnm("bilevel.png", NULL, "bilevel_im.ppm", 0, 0);
}

/* The palette source: 40 colours in 16-pixel cells, fully transparent in one rectangle. */
static uint8_t pal_rgb[W * H * 3], pal_alpha[W * H];
static void draw_palette_source(void) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int c = (x / 16 + (y / 16) * 13) % 40;
            uint8_t *p = pal_rgb + ((size_t)y * W + x) * 3;
            p[0] = (uint8_t)(c * 6);
            p[1] = (uint8_t)(255 - c * 5);
            p[2] = (uint8_t)((c * 37) % 256);
            pal_alpha[(size_t)y * W + x] = x >= 150 && x < 190 && y >= 10 && y < 50 ? 0 : 255;
        }
}

static void test_png_palette_opaque_pixels(void) {
    if (!fixtures_ok) return;
    cg_image img;
    if (decode("palette.png", NULL, &img) != CG_OK) {
        CHECK(0);
        return;
    }
    int bad = 0;
    for (size_t i = 0; i < (size_t)W * H; i++)
        if (pal_alpha[i] == 255 && memcmp(img.rgb + 3 * i, pal_rgb + 3 * i, 3)) bad++;
    CHECK_EQ_INT(bad, 0);
    image_free(&img);
}

/* ---- WebP */

static void test_webp(void) {
    if (!fixtures_ok) return;
    expect_pixels("lossless.webp", NULL, src_rgb, W, H, 0, 0);
    expect_pixels("lossy.webp", NULL, src_rgb, W, H, 255, 5.0);
    expect_like_pnm("lossy.webp", NULL, "lossy_im.ppm", 1, 0.1);
    /* with alpha: dropped, colours exact */
    size_t n = 0;
    uint8_t *d = read_all("alpha.webp", &n);
    WebPBitstreamFeatures f;
    CHECK(d && WebPGetFeatures(d, n, &f) == VP8_STATUS_OK && f.has_alpha);
    free(d);
    expect_pixels("alpha.webp", NULL, src_rgb, W, H, 0, 0);
}

/* ---- broken data */

/* Decoding must fail with CG_ERR_FORMAT, a message naming the input, and an empty image. */
static void expect_format_error(const uint8_t *d, size_t n, const char *what, const image_decode_opts *o) {
    cg_image img = {7, 7, (uint8_t *)&img};
    int rc = image_decode(d, n, what, o, &img);
    if (rc != CG_ERR_FORMAT) {
        fail_now("%s (%zu bytes): rc %d, expected CG_ERR_FORMAT", what, n, rc);
        if (rc == CG_OK) image_free(&img);
        return;
    }
    CHECK(img.rgb == NULL && img.w == 0 && img.h == 0);
    if (!strstr(cg_error_message(), what)) fail_now("message does not name %s: %s", what, cg_error_message());
}

static void test_truncated(void) {
    if (!fixtures_ok) return;
    static const char *const files[] = {"baseline.jpg", "progressive.jpg", "cmyk.jpg", "gray.jpg", "rgb.png",
                                        "interlaced.png", "palette.png", "lossless.webp", "lossy.webp"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        size_t n = 0;
        uint8_t *d = read_all(files[i], &n);
        if (!d) continue;
        /* PNG: the image data must be complete; what follows the last IDAT (IEND) is not
         * needed, as for PIL. JPEG and WebP: every byte up to the end. */
        size_t need_n = n;
        if (strstr(files[i], ".png")) need_n = png_idat_end(d, n);
        char what[96];
        snprintf(what, sizeof what, "half of %s", files[i]);
        expect_format_error(d, n / 2, what, NULL);
        for (size_t cut = 0; cut < need_n; cut += 1 + need_n / 97) {
            snprintf(what, sizeof what, "%s cut at %zu", files[i], cut);
            expect_format_error(d, cut, what, NULL);
        }
        for (size_t cut = need_n > 8 ? need_n - 8 : 0; cut < need_n; cut++) {
            snprintf(what, sizeof what, "%s cut at %zu", files[i], cut);
            expect_format_error(d, cut, what, NULL);
        }
        free(d);
    }
}

static void test_jpeg_extraneous_bytes(void) {
    if (!fixtures_ok) return;
    size_t n = 0;
    uint8_t *d = read_all("baseline.jpg", &n);
    if (!d) return;
    /* junk between segments (before SOS): libjpeg warns, the pixels are intact, accepted as
     * PIL does */
    uint8_t *x = malloc(n + 4);
    size_t sos = 0;
    for (size_t p = 2; p + 1 < n; p++)
        if (d[p] == 0xFF && d[p + 1] == 0xDA) { sos = p; break; }
    memcpy(x, d, sos);
    memcpy(x + sos, "\x12\x34", 2);
    memcpy(x + sos + 2, d + sos, n - sos);
    write_all("junk_before_sos.jpg", x, n + 2);
    expect_like_pnm("junk_before_sos.jpg", NULL, "baseline_djpeg.ppm", 0, 0);
    /* the same junk (libjpeg's first and only reported warning), then the file cut short: an error */
    expect_format_error(x, sos + 2 + (n - sos) / 2, "junk then cut", NULL);
    expect_format_error(x, n + 2 - 2, "junk then no EOI", NULL);
    expect_format_error(x, n + 2 - 1, "junk then half an EOI", NULL);
    /* junk before EOI (here swallowed by the entropy decoder's read-ahead, or a warning): the same pixels */
    memcpy(x, d, n - 2);
    memcpy(x + n - 2, "\x12\x34\xFF\xD9", 4);
    write_all("junk_before_eoi.jpg", x, n + 2);
    expect_like_pnm("junk_before_eoi.jpg", NULL, "baseline_djpeg.ppm", 0, 0);
    /* trailing bytes after EOI are ignored */
    memcpy(x, d, n);
    memcpy(x + n, "abcd", 4);
    write_all("trailing.jpg", x, n + 4);
    expect_like_pnm("trailing.jpg", NULL, "baseline_djpeg.ppm", 0, 0);
    free(x);
    free(d);
}

static void test_garbage(void) {
    uint8_t buf[4096];
    uint32_t s = 12345;
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)((s = s * 1103515245u + 12345u) >> 24);
    expect_format_error(buf, sizeof buf, "random bytes", NULL);
    expect_format_error(buf, 0, "empty", NULL);
    expect_format_error(buf, 1, "one byte", NULL);
    /* random bytes behind each format's magic */
    static const uint8_t jpg[] = {0xFF, 0xD8, 0xFF}, png[] = {0x89, 'P', 'N', 'G', 13, 10, 26, 10};
    uint8_t g[4096];
    memcpy(g, buf, sizeof g);
    memcpy(g, jpg, sizeof jpg);
    expect_format_error(g, sizeof g, "garbage.jpg", NULL);
    expect_format_error(g, 3, "jpeg magic only", NULL);
    if (fixtures_ok)   /* libjpeg-turbo 2.1 breaks a handle on such errors: the next image must still decode */
        expect_like_pnm("baseline.jpg", NULL, "baseline_djpeg.ppm", 0, 0);
    memcpy(g, png, sizeof png);
    expect_format_error(g, sizeof g, "garbage.png", NULL);
    memcpy(g, "RIFF\xf8\x0f\0\0WEBPVP8 ", 16);
    expect_format_error(g, sizeof g, "garbage.webp", NULL);
    memcpy(g + 12, "VP8L", 4);
    expect_format_error(g, sizeof g, "garbage-lossless.webp", NULL);
    int w, h;
    CHECK_EQ_INT(image_probe(buf, sizeof buf, "random bytes", &w, &h), CG_ERR_FORMAT);
    /* image_decode_file: a missing file is an I/O error naming the path; a bad one names it too */
    cg_image img;
    char *p = path_of("no-such-file.jpg");
    CHECK_EQ_INT(image_decode_file(p, NULL, &img), CG_ERR_IO);
    CHECK(strstr(cg_error_message(), p) != NULL);
    free(p);
    write_all("garbage.png", g, sizeof g);
    p = path_of("garbage.png");
    CHECK_EQ_INT(image_decode_file(p, NULL, &img), CG_ERR_FORMAT);
    CHECK(strstr(cg_error_message(), p) != NULL);
    free(p);
}

/* A PNG chunk with its CRC. */
static size_t png_chunk(uint8_t *o, const char *type, const uint8_t *data, uint32_t len) {
    o[0] = (uint8_t)(len >> 24), o[1] = (uint8_t)(len >> 16), o[2] = (uint8_t)(len >> 8), o[3] = (uint8_t)len;
    memcpy(o + 4, type, 4);
    if (len) memcpy(o + 8, data, len);
    uint32_t crc = (uint32_t)crc32(0, o + 4, 4 + len);
    o[8 + len] = (uint8_t)(crc >> 24), o[9 + len] = (uint8_t)(crc >> 16), o[10 + len] = (uint8_t)(crc >> 8),
    o[11 + len] = (uint8_t)crc;
    return 12 + len;
}

/* A valid-looking PNG of w x h (8-bit RGB) whose IDAT holds a few compressed zero bytes. */
static size_t png_bomb(uint8_t *o, uint32_t w, uint32_t h) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 13, 10, 26, 10};
    uint8_t ihdr[13] = {(uint8_t)(w >> 24), (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w, (uint8_t)(h >> 24),
                        (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h, 8, 2, 0, 0, 0};
    uint8_t zeros[4096] = {0}, z[256];
    uLongf zn = sizeof z;
    compress(z, &zn, zeros, sizeof zeros);
    size_t n = 8;
    memcpy(o, sig, 8);
    n += png_chunk(o + n, "IHDR", ihdr, 13);
    n += png_chunk(o + n, "IDAT", z, (uint32_t)zn);
    n += png_chunk(o + n, "IEND", NULL, 0);
    return n;
}

static void expect_refused_for_size(const uint8_t *d, size_t n, const char *what, const image_decode_opts *o) {
    expect_format_error(d, n, what, o);
    if (!strstr(cg_error_message(), "exceeds the limit")) fail_now("%s: not refused for its size: %s", what, cg_error_message());
}

/* Peak resident memory of this process, in MiB. */
static long peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

/* A chunk declaring a huge length in a tiny file: libpng 1.6.39 allocates a tEXt chunk's
 * declared length before reading it (found by fuzz_image_png: 92 bytes, 1.3 GB, 2 s). The decoder
 * skips such chunks unread: an error for the missing bytes, and no memory spent. */
static void test_png_chunk_bomb(void) {
    uint8_t b[512];
    size_t n = png_bomb(b, 40, 28) - 12;                 /* without IEND */
    static const uint8_t text[] = {0x50, 0x47, 0x00, 0x00, 't', 'E', 'X', 't', 'k', 'e', 'y', 0, 'v'};
    size_t ihdr_end = 8 + 25;
    memmove(b + ihdr_end + sizeof text, b + ihdr_end, n - ihdr_end);   /* the chunk before IDAT */
    memcpy(b + ihdr_end, text, sizeof text);
    long before = peak_rss_mib();
    expect_format_error(b, n + sizeof text, "text-bomb.png", NULL);
    long grew = peak_rss_mib() - before;
    if (grew > 100) fail_now("text-bomb.png: peak memory grew by %ld MiB", grew);
}

/* IHDR must be the first chunk (PNG specification); libpng would read ancillary or unknown
 * chunks before it, and image_probe, which reads IHDR at its fixed place, would disagree with
 * the decoder (found by fuzz_image_png). */
static void test_png_ihdr_first(void) {
    uint8_t b[512], o[600];
    size_t n = png_bomb(b, 40, 28);
    n -= 12;   /* no IEND: the image data are short anyway, the IHDR check comes first */
    static const uint8_t gama[4] = {0, 0, 0xB1, 0x8F};
    memcpy(o, b, 8);
    size_t k = 8 + png_chunk(o + 8, "gAMA", gama, 4);
    memcpy(o + k, b + 8, n - 8);
    int w, h;
    CHECK_EQ_INT(image_probe(o, k + n - 8, "gama-first.png", &w, &h), CG_ERR_FORMAT);
    expect_format_error(o, k + n - 8, "gama-first.png", NULL);
    CHECK(strstr(cg_error_message(), "IHDR") != NULL);
    k = 8 + png_chunk(o + 8, "tYME", gama, 4);   /* an unknown ancillary chunk */
    memcpy(o + k, b + 8, n - 8);
    expect_format_error(o, k + n - 8, "unknown-first.png", NULL);
    CHECK(strstr(cg_error_message(), "IHDR") != NULL);
}

static void test_bombs(void) {
    uint8_t b[512];
    /* PNG: 30000 x 30000 = 9e8 pixels > the default limit; probe still reads the header */
    size_t n = png_bomb(b, 30000, 30000);
    int w = 0, h = 0;
    CHECK_EQ_INT(image_probe(b, n, "bomb.png", &w, &h), CG_OK);
    CHECK_EQ_INT(w, 30000);
    CHECK_EQ_INT(h, 30000);
    expect_refused_for_size(b, n, "bomb.png", NULL);
    /* under the limit the same construction is decoded until the data runs out */
    n = png_bomb(b, 64, 64);
    expect_format_error(b, n, "short.png", NULL);
    CHECK(strstr(cg_error_message(), "Not enough image data") != NULL);
    /* zero side */
    n = png_bomb(b, 0, 10);
    expect_format_error(b, n, "zero.png", NULL);
    CHECK_EQ_INT(image_probe(b, n, "zero.png", &w, &h), CG_ERR_FORMAT);
    /* WebP lossless header claiming 16384 x 16384 (2.7e8 pixels) */
    uint8_t wb[64] = "RIFF\x24\0\0\0WEBPVP8L\x18\0\0\0\x2f";
    uint32_t bits = (16384 - 1) | (uint32_t)(16384 - 1) << 14;
    wb[21] = (uint8_t)bits, wb[22] = (uint8_t)(bits >> 8), wb[23] = (uint8_t)(bits >> 16), wb[24] = (uint8_t)(bits >> 24);
    CHECK_EQ_INT(image_probe(wb, 44, "bomb.webp", &w, &h), CG_OK);
    CHECK_EQ_INT(w, 16384);
    expect_refused_for_size(wb, 44, "bomb.webp", NULL);
    if (!fixtures_ok) return;
    /* JPEG: the frame header patched to 30000 x 30000, and to a zero height */
    size_t jn = 0;
    uint8_t *j = read_all("baseline.jpg", &jn);
    if (!j) return;
    size_t sof = 0;
    for (size_t p = 2; p + 1 < jn; p++)
        if (j[p] == 0xFF && j[p + 1] == 0xC0) { sof = p; break; }
    CHECK(sof > 0);
    j[sof + 5] = 30000 >> 8, j[sof + 6] = 30000 & 0xFF, j[sof + 7] = 30000 >> 8, j[sof + 8] = 30000 & 0xFF;
    CHECK_EQ_INT(image_probe(j, jn, "bomb.jpg", &w, &h), CG_OK);
    CHECK_EQ_INT(w, 30000);
    expect_refused_for_size(j, jn, "bomb.jpg", NULL);
    j[sof + 5] = 0, j[sof + 6] = 0;
    expect_format_error(j, jn, "zero.jpg", NULL);
    free(j);
    /* the limit is exact: w*h pixels pass with max_pixels = w*h, not with one less */
    static const char *const files[] = {"baseline.jpg", "rgb.png", "lossless.webp"};
    for (size_t i = 0; i < 3; i++) {
        size_t fn = 0;
        uint8_t *d = read_all(files[i], &fn);
        if (!d) continue;
        image_decode_opts at = {(int64_t)W * H, 0, 0}, below = {(int64_t)W * H - 1, 0, 0};
        cg_image img;
        CHECK_EQ_INT(image_decode(d, fn, files[i], &at, &img), CG_OK);
        image_free(&img);
        expect_refused_for_size(d, fn, files[i], &below);
        free(d);
    }
}

/* ---- encoders */

static void test_encoders(void) {
    uint8_t *out = NULL;
    size_t n = 0;
    cg_image img;
    /* PNG RGB and gray: lossless through our decoder ... */
    CHECK_EQ_INT(image_encode_png(src_rgb, W, H, 3, &out, &n), CG_OK);
    CHECK_EQ_INT(image_decode(out, n, "enc.png", NULL, &img), CG_OK);
    if (img.rgb) CHECK_EQ_INT(max_abs_diff(img.rgb, src_rgb, (size_t)W * H * 3), 0);
    image_free(&img);
    if (fixtures_ok) write_all("enc_rgb.png", out, n);
    free(out);
    uint8_t *g = malloc((size_t)W * H), *g3 = malloc((size_t)W * H * 3);
    for (size_t i = 0; i < (size_t)W * H; i++) g[i] = g3[3 * i] = g3[3 * i + 1] = g3[3 * i + 2] = src_rgb[3 * i + 1];
    CHECK_EQ_INT(image_encode_png(g, W, H, 1, &out, &n), CG_OK);
    CHECK_EQ_INT(out[25], 0);   /* IHDR colour type gray */
    CHECK_EQ_INT(image_decode(out, n, "enc_gray.png", NULL, &img), CG_OK);
    if (img.rgb) CHECK_EQ_INT(max_abs_diff(img.rgb, g3, (size_t)W * H * 3), 0);
    image_free(&img);
    if (fixtures_ok) write_all("enc_gray.png", out, n);
    free(out);
    /* JPEG RGB: 4:2:0 (luma sampling factors 2x2, chroma 1x1), near the source */
    CHECK_EQ_INT(image_encode_jpeg(src_rgb, W, H, 3, 90, &out, &n), CG_OK);
    size_t sof = 0;
    for (size_t p = 2; p + 1 < n; p++)
        if (out[p] == 0xFF && out[p + 1] == 0xC0) { sof = p; break; }
    CHECK(sof > 0 && out[sof + 9] == 3 && out[sof + 11] == 0x22 && out[sof + 14] == 0x11 && out[sof + 17] == 0x11);
    CHECK_EQ_INT(image_decode(out, n, "enc.jpg", NULL, &img), CG_OK);
    if (img.rgb) CHECK(mean_abs_diff(img.rgb, src_rgb, (size_t)W * H * 3) < 5.0);
    image_free(&img);
    if (fixtures_ok) write_all("enc_rgb.jpg", out, n);
    free(out);
    /* JPEG gray: one component */
    CHECK_EQ_INT(image_encode_jpeg(g, W, H, 1, 95, &out, &n), CG_OK);
    for (sof = 0; sof + 1 < n && !(out[sof] == 0xFF && out[sof + 1] == 0xC0); sof++) {}
    CHECK(sof + 9 < n && out[sof + 9] == 1);
    CHECK_EQ_INT(image_decode(out, n, "enc_gray.jpg", NULL, &img), CG_OK);
    if (img.rgb) CHECK(mean_abs_diff(img.rgb, g3, (size_t)W * H * 3) < 1.5);
    image_free(&img);
    if (fixtures_ok) write_all("enc_gray.jpg", out, n);
    free(out);
    /* ... and through the independent decoders */
    if (fixtures_ok) {
        sh("'%s' '%s/enc_rgb.png' -depth 8 ppm:'%s/enc_rgb_im.ppm'", convert_bin, dir, dir);
        sh("'%s' '%s/enc_gray.png' -depth 8 ppm:'%s/enc_gray_im.ppm'", convert_bin, dir, dir);
        sh("djpeg -ppm -outfile '%s/enc_rgb_djpeg.ppm' '%s/enc_rgb.jpg'", dir, dir);
        sh("djpeg -outfile '%s/enc_gray_djpeg.pgm' '%s/enc_gray.jpg'", dir, dir);
        pnm r;
        if (pnm_read("enc_rgb_im.ppm", &r) == 0) {
            CHECK(r.w == W && r.h == H && max_abs_diff(r.rgb, src_rgb, (size_t)W * H * 3) == 0);
            free(r.rgb);
        }
        if (pnm_read("enc_gray_im.ppm", &r) == 0) {
            CHECK(r.w == W && r.h == H && max_abs_diff(r.rgb, g3, (size_t)W * H * 3) == 0);
            free(r.rgb);
        }
        expect_like_pnm("enc_rgb.jpg", NULL, "enc_rgb_djpeg.ppm", 0, 0);
        expect_like_pnm("enc_gray.jpg", NULL, "enc_gray_djpeg.pgm", 0, 0);
    }
    free(g);
    free(g3);
    /* bad arguments */
    CHECK_EQ_INT(image_encode_png(src_rgb, W, H, 2, &out, &n), CG_ERR_USAGE);
    CHECK(out == NULL && n == 0);
    CHECK_EQ_INT(image_encode_png(src_rgb, 0, H, 3, &out, &n), CG_ERR_USAGE);
    CHECK_EQ_INT(image_encode_jpeg(src_rgb, W, H, 3, 0, &out, &n), CG_ERR_USAGE);
    CHECK_EQ_INT(image_encode_jpeg(src_rgb, W, H, 3, 101, &out, &n), CG_ERR_USAGE);
    CHECK_EQ_INT(image_encode_jpeg(src_rgb, 70000, 1, 3, 90, &out, &n), CG_ERR_USAGE);
    CHECK_EQ_INT(image_encode_jpeg(NULL, W, H, 3, 90, &out, &n), CG_ERR_USAGE);
}

/* ---- threads: per-thread TurboJPEG handles give the same pixels as one thread */

typedef struct {
    const uint8_t *jpg, *prog, *cut;
    size_t jpg_n, prog_n, cut_n;
    uint32_t sum;
    int errors;
} thread_job;

static uint32_t adler(const cg_image *im) { return (uint32_t)adler32(1, im->rgb, (uInt)((size_t)im->w * im->h * 3)); }

static void *decode_many(void *arg) {
    thread_job *j = arg;
    for (int i = 0; i < 12; i++) {
        cg_image a, b;
        image_decode_opts o = {0, W / 3, H / 3};
        if (image_decode(j->cut, j->cut_n, "cut", NULL, &a) != CG_ERR_FORMAT) j->errors++;   /* errors don't poison the handle */
        if (image_decode(j->jpg, j->jpg_n, "jpg", &o, &a) || image_decode(j->prog, j->prog_n, "prog", NULL, &b)) {
            j->errors++;
            continue;
        }
        uint32_t s = adler(&a) ^ adler(&b);
        if (i == 0) j->sum = s;
        else if (s != j->sum) j->errors++;
        image_free(&a);
        image_free(&b);
    }
    return NULL;
}

static void test_threads(void) {
    if (!fixtures_ok) return;
    thread_job base = {0};
    uint8_t *jpg = read_all("orient6_II.jpg", &base.jpg_n), *prog = read_all("progressive.jpg", &base.prog_n);
    if (!jpg || !prog) return;
    base.jpg = jpg;
    base.prog = prog;
    base.cut = prog;
    base.cut_n = base.prog_n / 2;
    thread_job jobs[4];
    pthread_t t[4];
    decode_many(&base);
    CHECK_EQ_INT(base.errors, 0);
    for (int i = 0; i < 4; i++) {
        jobs[i] = base;
        pthread_create(&t[i], NULL, decode_many, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(jobs[i].errors, 0);
        CHECK_EQ_INT(jobs[i].sum, base.sum);
    }
    free(jpg);
    free(prog);
}

int main(void) {
    if (have_tool("/usr/bin/convert")) convert_bin = "/usr/bin/convert";   /* not a wrapper earlier on PATH */
    snprintf(dir, sizeof dir, "%s/image_fixtures.XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "cannot make %s\n", dir);
        return 1;
    }
    draw_source();
    draw_palette_source();
    write_ppm("src.ppm", src_rgb, W, H);
    write_ppm16("src16.ppm", src_rgb, W, H);
    write_pam("src_rgba.pam", src_rgb, src_alpha, W, H, 4);
    write_pam("src_ga.pam", src_rgb, src_alpha, W, H, 2);   /* gray = the red channel */
    write_pam("src_pal.pam", pal_rgb, pal_alpha, W, H, 4);

    TEST_RUN(test_fixtures);
    TEST_RUN(test_sniff_probe);
    TEST_RUN(test_jpeg);
    TEST_RUN(test_jpeg_cmyk);
    TEST_RUN(test_jpeg_orientation);
    TEST_RUN(test_jpeg_bad_exif);
    TEST_RUN(test_jpeg_dct_scaling);
    TEST_RUN(test_jpeg_extraneous_bytes);
    TEST_RUN(test_png);
    TEST_RUN(test_png_palette_opaque_pixels);
    TEST_RUN(test_webp);
    TEST_RUN(test_truncated);
    TEST_RUN(test_garbage);
    TEST_RUN(test_bombs);
    TEST_RUN(test_png_chunk_bomb);
    TEST_RUN(test_png_ihdr_first);
    TEST_RUN(test_encoders);
    TEST_RUN(test_threads);
    int rc = TEST_REPORT();
    if (rc == 0) {   /* keep the fixtures of a failing run for a look */
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    } else {
        fprintf(stderr, "fixtures kept in %s\n", dir);
    }
    return rc;
}
