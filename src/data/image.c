/* image.c — JPEG (libturbojpeg), PNG (libpng) and WebP (libwebp) to 8-bit RGB, and the PNG and
 * JPEG encoders. The contract, and the PIL behaviour it follows, is in image.h. */
#include "data/image.h"

#include <png.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <webp/decode.h>

#include "core/fileio.h"
#include "core/log.h"

/* ------------------------------------------------------------------ small helpers */

static const char *label(const char *name) { return name && *name ? name : "(image)"; }

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void image_clear(cg_image *img) {
    img->w = img->h = 0;
    img->rgb = NULL;
}

/* The decompression-bomb guard: sides must be positive and w*h at most max_pixels. Called with
 * the header's full size, before any pixel buffer exists. */
static int check_size(const char *name, const char *fmt, int64_t w, int64_t h, int64_t max_pixels) {
    if (w <= 0 || h <= 0)
        return cg_error_set(CG_ERR_FORMAT, "%s: %s header gives a zero side (%lld x %lld)", label(name), fmt,
                            (long long)w, (long long)h);
    if (w > max_pixels / h)
        return cg_error_set(CG_ERR_FORMAT,
                            "%s: %s of %lld x %lld pixels exceeds the limit of %lld pixels (possible decompression bomb)",
                            label(name), fmt, (long long)w, (long long)h, (long long)max_pixels);
    return CG_OK;
}

static int64_t opts_max_pixels(const image_decode_opts *o) {
    return o && o->max_pixels > 0 ? o->max_pixels : IMAGE_MAX_PIXELS;
}

/* ------------------------------------------------------------------ format sniffing */

image_format image_sniff(const uint8_t *data, size_t n) {
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (!data) return IMAGE_UNKNOWN;
    if (n >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return IMAGE_JPEG;
    if (n >= 8 && memcmp(data, png_sig, 8) == 0) return IMAGE_PNG;
    if (n >= 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0) return IMAGE_WEBP;
    return IMAGE_UNKNOWN;
}

const char *image_format_name(image_format f) {
    switch (f) {
    case IMAGE_JPEG: return "JPEG";
    case IMAGE_PNG: return "PNG";
    case IMAGE_WEBP: return "WebP";
    default: return "unknown";
    }
}

/* ------------------------------------------------------------------ EXIF orientation */

/* A TIFF integer of `size` bytes (2 or 4) in the byte order of the EXIF block. */
static uint32_t tiff_uint(const uint8_t *p, int size, int little) {
    if (size == 2) return little ? (uint32_t)(p[0] | p[1] << 8) : be16(p);
    return little ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : be32(p);
}

/* The Orientation tag (0x0112) of IFD0 in a TIFF block (the EXIF payload after "Exif\0\0"):
 * 1..8, or 1 when absent, out of range or malformed. Every offset is checked against n. */
static int tiff_orientation(const uint8_t *t, size_t n) {
    if (n < 8) return 1;
    int little;
    if (t[0] == 'I' && t[1] == 'I') little = 1;
    else if (t[0] == 'M' && t[1] == 'M') little = 0;
    else return 1;
    if (tiff_uint(t + 2, 2, little) != 42) return 1;
    uint32_t ifd = tiff_uint(t + 4, 4, little);
    if (ifd > n - 2) return 1;
    uint32_t count = tiff_uint(t + ifd, 2, little);
    for (uint32_t i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)12 * i;
        if (e + 12 > n) return 1;
        if (tiff_uint(t + e, 2, little) != 0x0112) continue;
        uint32_t type = tiff_uint(t + e + 2, 2, little), v;
        if (type == 3) v = tiff_uint(t + e + 8, 2, little);        /* SHORT, the standard type */
        else if (type == 4) v = tiff_uint(t + e + 8, 4, little);   /* LONG, seen from some writers */
        else return 1;
        return v >= 1 && v <= 8 ? (int)v : 1;
    }
    return 1;
}

/* The EXIF orientation of a JPEG: the marker segments before the first scan are walked for an
 * APP1 segment starting "Exif\0\0"; 1 when there is none. */
static int jpeg_exif_orientation(const uint8_t *d, size_t n) {
    size_t p = 2;   /* after SOI */
    while (p + 4 <= n) {
        if (d[p] != 0xFF) return 1;
        uint8_t m = d[p + 1];
        if (m == 0xFF) { p++; continue; }                                   /* fill byte */
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { p += 2; continue; }    /* no length */
        if (m == 0xDA || m == 0xD9) return 1;                               /* scan or EOI: too late */
        size_t len = be16(d + p + 2);
        if (len < 2 || len > n - p - 2) return 1;
        if (m == 0xE1 && len >= 8 && memcmp(d + p + 4, "Exif\0\0", 6) == 0) return tiff_orientation(d + p + 10, len - 8);
        p += 2 + len;
    }
    return 1;
}

/* Re-lay an RGB image as EXIF orientation o (2..8) asks, into a new buffer (*ow × *oh; 5..8
 * swap the sides). Output pixel (x, y) comes from source pixel base + x*step_x + y*step_y. */
static uint8_t *orient_rgb(const uint8_t *src, int w, int h, int o, int *ow, int *oh) {
    ptrdiff_t W = w, H = h, base, sx, sy;
    switch (o) {
    case 2: base = W - 1;               sx = -1; sy = W;  break;   /* mirror horizontal */
    case 3: base = (H - 1) * W + W - 1; sx = -1; sy = -W; break;   /* rotate 180 */
    case 4: base = (H - 1) * W;         sx = 1;  sy = -W; break;   /* mirror vertical */
    case 5: base = 0;                   sx = W;  sy = 1;  break;   /* transpose */
    case 6: base = (H - 1) * W;         sx = -W; sy = 1;  break;   /* rotate 90 clockwise */
    case 7: base = (H - 1) * W + W - 1; sx = -W; sy = -1; break;   /* transverse */
    case 8: base = W - 1;               sx = W;  sy = -1; break;   /* rotate 90 counter-clockwise */
    default: base = 0;                  sx = 1;  sy = W;  break;
    }
    *ow = o >= 5 ? h : w;
    *oh = o >= 5 ? w : h;
    uint8_t *dst = malloc((size_t)w * (size_t)h * 3);
    if (!dst) return NULL;
    uint8_t *q = dst;
    for (ptrdiff_t y = 0; y < *oh; y++) {
        const uint8_t *row = src + (base + y * sy) * 3;
        for (ptrdiff_t x = 0; x < *ow; x++, q += 3) memcpy(q, row + x * sx * 3, 3);
    }
    return dst;
}

/* ------------------------------------------------------------------ JPEG */

/* One decompressor and one compressor per thread, made on first use and destroyed when the
 * thread exits: a tjhandle is not thread-safe, and making one per image costs more than a
 * small image's decode. Error strings (tjGetErrorStr2) are per handle, so per thread too. */
typedef struct {
    tjhandle dec, enc;
} tj_handles;

static pthread_key_t tj_key;
static pthread_once_t tj_once = PTHREAD_ONCE_INIT;

static void tj_handles_free(void *p) {
    tj_handles *t = p;
    if (t->dec) tjDestroy(t->dec);
    if (t->enc) tjDestroy(t->enc);
    free(t);
}

static void tj_key_make(void) { (void)pthread_key_create(&tj_key, tj_handles_free); }

/* This thread's decompressor (enc = 0) or compressor (enc = 1); NULL if libturbojpeg fails. */
static tjhandle tj_handle(int enc) {
    pthread_once(&tj_once, tj_key_make);
    tj_handles *t = pthread_getspecific(tj_key);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) return NULL;
        if (pthread_setspecific(tj_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    tjhandle *h = enc ? &t->enc : &t->dec;
    if (!*h) *h = enc ? tjInitCompress() : tjInitDecompress();
    return *h;
}

/* Drop this thread's decompressor after an error: libjpeg-turbo 2.1's tjDecompressHeader3 returns
 * from a libjpeg error without aborting the decompression, and the handle then fails every later
 * image with the same message (seen with "Unsupported marker type"). A fresh handle is cheap
 * next to the error path, so every failure drops it. */
static void tj_drop_decompressor(void) {
    tj_handles *t = pthread_getspecific(tj_key);
    if (t && t->dec) {
        tjDestroy(t->dec);
        t->dec = NULL;
    }
}

/* Whether the JPEG stream reaches its EOI marker. The segments are skipped by their lengths and
 * the entropy-coded data after each SOS scanned for the next marker (FF 00 is a stuffed byte,
 * RSTn belongs to the scan, FF FF is fill); bytes that are not a marker between segments are
 * skipped, as libjpeg does. Used when libjpeg's first warning was a harmless one, because
 * libjpeg reports only its first warning and a file cut short would then go unnoticed. */
static int jpeg_reaches_eoi(const uint8_t *d, size_t n) {
    size_t p = 2;
    while (p < n) {
        const uint8_t *ff = memchr(d + p, 0xFF, n - p);
        if (!ff) return 0;
        p = (size_t)(ff - d);
        if (p + 1 >= n) return 0;
        uint8_t m = d[p + 1];
        if (m == 0xD9) return 1;
        if (m == 0xFF) { p++; continue; }
        if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { p += 2; continue; }
        if (p + 4 > n) return 0;
        size_t len = be16(d + p + 2);
        if (len < 2) return 0;
        p += 2 + len;
    }
    return 0;
}

/* libjpeg warnings make TurboJPEG return -1 with TJERR_WARNING. A file cut short ("Premature end
 * of JPEG file") or corrupt entropy data are errors here, as PIL raises "image file is
 * truncated". The one warning tolerated is junk between segments ("N extraneous bytes before
 * marker"), common in camera and web files, which PIL also decodes: the pixels are intact,
 * provided the stream still reaches EOI. */
static int jpeg_warning_is_benign(tjhandle h, const uint8_t *d, size_t n) {
    return tjGetErrorCode(h) == TJERR_WARNING && strstr(tjGetErrorStr2(h), "extraneous bytes before marker") &&
           jpeg_reaches_eoi(d, n);
}

typedef struct {
    int w, h;          /* full size, as stored (before orientation) */
    int cmyk;          /* 4-component (CMYK or YCCK) */
    int orientation;   /* EXIF, 1..8 */
} jpeg_header;

static int jpeg_read_header(tjhandle tj, const uint8_t *d, size_t n, const char *name, jpeg_header *hd) {
    int subsamp = 0, colorspace = 0, rc = CG_OK;
    hd->w = hd->h = 0;
    if (tjDecompressHeader3(tj, d, (unsigned long)n, &hd->w, &hd->h, &subsamp, &colorspace) != 0 &&
        !jpeg_warning_is_benign(tj, d, n))
        rc = cg_error_set(CG_ERR_FORMAT, "%s: corrupt or truncated JPEG: %s", label(name), tjGetErrorStr2(tj));
    else if (hd->w <= 0 || hd->h <= 0)   /* libjpeg reached a (fake) EOI before any frame header */
        rc = cg_error_set(CG_ERR_FORMAT, "%s: JPEG without a frame header, or with a zero side (%d x %d)", label(name),
                          hd->w, hd->h);
    if (rc) {
        tj_drop_decompressor();
        return rc;
    }
    hd->cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
    hd->orientation = jpeg_exif_orientation(d, n);
    return CG_OK;
}

/* The smallest of libjpeg-turbo's scaling factors at most 1 whose output still covers
 * hint_w × hint_h (in stored coordinates); 1/1 without a hint. */
static tjscalingfactor jpeg_pick_scale(int w, int h, int hint_w, int hint_h) {
    tjscalingfactor best = {1, 1};
    if (hint_w <= 0 && hint_h <= 0) return best;
    int nf = 0;
    tjscalingfactor *sf = tjGetScalingFactors(&nf);
    for (int i = 0; sf && i < nf; i++) {
        tjscalingfactor f = sf[i];
        if (f.num > f.denom) continue;   /* no upscaling */
        if (TJSCALED(w, f) >= hint_w && TJSCALED(h, f) >= hint_h && f.num * best.denom < best.num * f.denom) best = f;
    }
    return best;
}

/* Inverted CMYK (Adobe's convention, what libjpeg returns for Photoshop and ImageMagick files;
 * PIL's "CMYK;I" assumes it for every CMYK JPEG) to RGB, in place: with true ink
 * C = 255 - c and K = 255 - k, PIL's cmyk2rgb R = (255 - C)(255 - K)/255 = c·k/255. */
static void cmyk_inverted_to_rgb(uint8_t *px, size_t npix) {
    uint8_t *q = px;
    for (size_t i = 0; i < npix; i++, px += 4, q += 3) {
        unsigned k = px[3];
        uint8_t r = (uint8_t)((px[0] * k + 127) / 255), g = (uint8_t)((px[1] * k + 127) / 255),
                b = (uint8_t)((px[2] * k + 127) / 255);
        q[0] = r;
        q[1] = g;
        q[2] = b;
    }
}

static int jpeg_decode(const uint8_t *d, size_t n, const char *name, const image_decode_opts *opts, cg_image *out) {
    tjhandle tj = tj_handle(0);
    if (!tj) return cg_error_set(CG_ERR_NOMEM, "%s: cannot make a TurboJPEG decompressor", label(name));
    jpeg_header hd;
    int rc = jpeg_read_header(tj, d, n, name, &hd);
    if (rc) return rc;
    if ((rc = check_size(name, "JPEG", hd.w, hd.h, opts_max_pixels(opts)))) return rc;

    /* the hint is in displayed coordinates: orientations 5..8 swap the sides */
    int hint_w = opts ? opts->scale_hint_w : 0, hint_h = opts ? opts->scale_hint_h : 0;
    if (hd.orientation >= 5) {
        int t = hint_w;
        hint_w = hint_h;
        hint_h = t;
    }
    tjscalingfactor f = jpeg_pick_scale(hd.w, hd.h, hint_w, hint_h);
    int sw = TJSCALED(hd.w, f), sh = TJSCALED(hd.h, f);
    int pf = hd.cmyk ? TJPF_CMYK : TJPF_RGB;
    size_t npix = (size_t)sw * (size_t)sh;
    uint8_t *px = malloc(npix * (size_t)tjPixelSize[pf]);
    if (!px) return cg_error_set(CG_ERR_NOMEM, "%s: no memory for %d x %d pixels", label(name), sw, sh);
    if (tjDecompress2(tj, d, (unsigned long)n, px, sw, 0, sh, pf, TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS) != 0 &&
        !jpeg_warning_is_benign(tj, d, n)) {
        free(px);
        rc = cg_error_set(CG_ERR_FORMAT, "%s: corrupt or truncated JPEG: %s", label(name), tjGetErrorStr2(tj));
        tj_drop_decompressor();
        return rc;
    }
    if (hd.cmyk) {
        cmyk_inverted_to_rgb(px, npix);
        uint8_t *shrunk = realloc(px, npix * 3);
        if (shrunk) px = shrunk;
    }
    out->w = sw;
    out->h = sh;
    if (hd.orientation != 1) {
        uint8_t *o = orient_rgb(px, sw, sh, hd.orientation, &out->w, &out->h);
        free(px);
        if (!o) return cg_error_set(CG_ERR_NOMEM, "%s: no memory to rotate %d x %d pixels", label(name), sw, sh);
        px = o;
    }
    out->rgb = px;
    return CG_OK;
}

/* ------------------------------------------------------------------ PNG */

/* libpng reads from this cursor; its errors longjmp back to png_decode with the message here. */
typedef struct {
    const uint8_t *data;
    size_t n, pos;
    char msg[200];
} png_source;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_source *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Warnings (bad ancillary chunks, unknown profiles) do not change the pixels; PIL ignores them. */
static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_read_memory(png_structp png, png_bytep out, size_t len) {
    png_source *s = png_get_io_ptr(png);
    if (len > s->n - s->pos) png_error(png, "the data ends early (truncated file)");
    memcpy(out, s->data + s->pos, len);
    s->pos += len;
}

/* Ask libpng for 8-bit RGB whatever the file holds, as PIL's convert("RGB"): palette entries
 * expanded (tRNS transparency dropped), gray of 1..16 bits widened and replicated, 16-bit
 * samples cut to their high byte (PIL's "RGB;16B" raw mode), alpha channels dropped, no gamma
 * correction (gAMA, sRGB, iCCP are not even read), interlaced passes merged. */
static void png_want_rgb8(png_structp png, png_infop info) {
    int depth = png_get_bit_depth(png, info), ctype = png_get_color_type(png, info);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    png_set_strip_alpha(png);
    if (!(ctype & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
}

/* Width and height from the IHDR chunk, which the PNG specification puts first. The decoder
 * checks this too, so that probe and decode agree: libpng reads unknown (and, as we configure
 * it, all ancillary) chunks before IHDR without complaint (found by fuzz_image_png). */
static int png_probe(const uint8_t *d, size_t n, const char *name, int *w, int *h) {
    if (n < 8 + 8 + 13 || be32(d + 8) != 13 || memcmp(d + 12, "IHDR", 4) != 0)
        return cg_error_set(CG_ERR_FORMAT, "%s: PNG without an IHDR chunk first (truncated or corrupt)", label(name));
    uint32_t pw = be32(d + 16), ph = be32(d + 20);
    if (pw == 0 || ph == 0 || pw > 0x7FFFFFFFu || ph > 0x7FFFFFFFu)
        return cg_error_set(CG_ERR_FORMAT, "%s: PNG header gives an invalid size (%u x %u)", label(name), pw, ph);
    *w = (int)pw;
    *h = (int)ph;
    return CG_OK;
}

static int png_decode(const uint8_t *d, size_t n, const char *name, const image_decode_opts *opts, cg_image *out) {
    int pw, ph, rc = png_probe(d, n, name, &pw, &ph);
    if (rc) return rc;
    png_source src = {.data = d, .n = n};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return cg_error_set(CG_ERR_NOMEM, "%s: cannot make a libpng reader", label(name));
    }
    uint8_t *volatile px = NULL;     /* volatile: live across the longjmp of a libpng error */
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(px);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return cg_error_set(CG_ERR_FORMAT, "%s: corrupt or truncated PNG: %s", label(name), src.msg);
    }
    png_set_read_fn(png, &src, png_read_memory);
    /* Every chunk but IHDR, PLTE, tRNS, IDAT and IEND is skipped unread: none changes the pixels
     * we produce, and libpng 1.6.39 allocates a text chunk's declared length before reading it
     * (a 92-byte file declaring a 1.3 GB tEXt took 1.3 GB and 2 s; found by fuzz_image_png). */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_read_info(png, info);
    int64_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    rc = check_size(name, "PNG", w, h, opts_max_pixels(opts));
    if (rc) {
        png_destroy_read_struct(&png, &info, NULL);
        return rc;
    }
    png_want_rgb8(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) png_error(png, "unexpected row layout after the RGB transforms");
    px = malloc((size_t)w * (size_t)h * 3);
    rows = malloc((size_t)h * sizeof *rows);
    if (!px || !rows) png_error(png, "no memory for the pixels");
    for (int64_t y = 0; y < h; y++) rows[y] = px + (size_t)y * (size_t)w * 3;
    png_read_image(png, rows);   /* the rest of the file (text chunks, IEND) is not needed */
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    out->w = (int)w;
    out->h = (int)h;
    out->rgb = px;
    return CG_OK;
}

/* ------------------------------------------------------------------ WebP */

static const char *webp_status_name(VP8StatusCode s) {
    switch (s) {
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data (truncated file)";
    default: return "error";
    }
}

static int webp_features(const uint8_t *d, size_t n, const char *name, WebPBitstreamFeatures *f) {
    VP8StatusCode s = WebPGetFeatures(d, n, f);
    if (s != VP8_STATUS_OK)
        return cg_error_set(CG_ERR_FORMAT, "%s: corrupt or truncated WebP: %s", label(name), webp_status_name(s));
    if (f->has_animation)
        return cg_error_set(CG_ERR_FORMAT, "%s: animated WebP is not supported", label(name));
    return CG_OK;
}

/* Decoded straight into our buffer as RGB: libwebp leaves out any alpha, keeping the colour
 * values (not premultiplied), which is what PIL's RGBA -> RGB conversion does. */
static int webp_decode(const uint8_t *d, size_t n, const char *name, const image_decode_opts *opts, cg_image *out) {
    WebPBitstreamFeatures f;
    int rc = webp_features(d, n, name, &f);
    if (rc) return rc;
    if ((rc = check_size(name, "WebP", f.width, f.height, opts_max_pixels(opts)))) return rc;
    size_t size = (size_t)f.width * (size_t)f.height * 3;
    uint8_t *px = malloc(size);
    if (!px) return cg_error_set(CG_ERR_NOMEM, "%s: no memory for %d x %d pixels", label(name), f.width, f.height);
    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg)) {
        free(px);
        return cg_error_set(CG_ERR_STATE, "%s: libwebp version mismatch", label(name));
    }
    cfg.output.colorspace = MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = px;
    cfg.output.u.RGBA.stride = f.width * 3;
    cfg.output.u.RGBA.size = size;
    VP8StatusCode s = WebPDecode(d, n, &cfg);
    WebPFreeDecBuffer(&cfg.output);   /* external memory: frees nothing of ours */
    if (s != VP8_STATUS_OK) {
        free(px);
        return cg_error_set(CG_ERR_FORMAT, "%s: corrupt or truncated WebP: %s", label(name), webp_status_name(s));
    }
    out->w = f.width;
    out->h = f.height;
    out->rgb = px;
    return CG_OK;
}

/* ------------------------------------------------------------------ public decoding API */

static int unknown_format(const uint8_t *d, size_t n, const char *name) {
    if (!d || n == 0) return cg_error_set(CG_ERR_FORMAT, "%s: empty image data", label(name));
    return cg_error_set(CG_ERR_FORMAT, "%s: not a JPEG, PNG or WebP image (first bytes %02x %02x %02x %02x)",
                        label(name), d[0], n > 1 ? d[1] : 0, n > 2 ? d[2] : 0, n > 3 ? d[3] : 0);
}

int image_probe(const uint8_t *data, size_t n, const char *name, int *w, int *h) {
    *w = *h = 0;
    switch (image_sniff(data, n)) {
    case IMAGE_JPEG: {
        tjhandle tj = tj_handle(0);
        if (!tj) return cg_error_set(CG_ERR_NOMEM, "%s: cannot make a TurboJPEG decompressor", label(name));
        jpeg_header hd;
        int rc = jpeg_read_header(tj, data, n, name, &hd);
        if (rc) return rc;
        *w = hd.orientation >= 5 ? hd.h : hd.w;
        *h = hd.orientation >= 5 ? hd.w : hd.h;
        return CG_OK;
    }
    case IMAGE_PNG: return png_probe(data, n, name, w, h);
    case IMAGE_WEBP: {
        WebPBitstreamFeatures f;
        int rc = webp_features(data, n, name, &f);
        if (rc) return rc;
        *w = f.width;
        *h = f.height;
        return CG_OK;
    }
    default: return unknown_format(data, n, name);
    }
}

int image_decode(const uint8_t *data, size_t n, const char *name, const image_decode_opts *opts, cg_image *out) {
    image_clear(out);
    switch (image_sniff(data, n)) {
    case IMAGE_JPEG: return jpeg_decode(data, n, name, opts, out);
    case IMAGE_PNG: return png_decode(data, n, name, opts, out);
    case IMAGE_WEBP: return webp_decode(data, n, name, opts, out);
    default: return unknown_format(data, n, name);
    }
}

int image_decode_file(const char *path, const image_decode_opts *opts, cg_image *out) {
    image_clear(out);
    char *buf = NULL;
    size_t len = 0;
    int rc = cg_file_read(path, &buf, &len);   /* its error names the path */
    if (rc) return rc;
    rc = image_decode((const uint8_t *)buf, len, path, opts, out);
    free(buf);
    return rc;
}

void image_free(cg_image *img) {
    if (!img) return;
    free(img->rgb);
    image_clear(img);
}

/* ------------------------------------------------------------------ encoders */

static int check_encode_args(const char *fmt, const uint8_t *pixels, int w, int h, int channels, int max_side) {
    if (!pixels || w <= 0 || h <= 0 || w > max_side || h > max_side || (channels != 1 && channels != 3))
        return cg_error_set(CG_ERR_USAGE, "%s encoder: bad image (%d x %d, %d channels; sides 1..%d, channels 1 or 3)",
                            fmt, w, h, channels, max_side);
    return CG_OK;
}

int image_encode_png(const uint8_t *pixels, int w, int h, int channels, uint8_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    int rc = check_encode_args("PNG", pixels, w, h, channels, 0x7FFFFFFF / 3);
    if (rc) return rc;
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    png_alloc_size_t size = 0;
    if (!png_image_write_get_memory_size(im, size, 0, pixels, 0, NULL))
        return cg_error_set(CG_ERR_FORMAT, "PNG encoder: %s", im.message);
    uint8_t *buf = malloc(size);
    if (!buf) return cg_error_set(CG_ERR_NOMEM, "PNG encoder: no memory for %zu bytes", (size_t)size);
    if (!png_image_write_to_memory(&im, buf, &size, 0, pixels, 0, NULL)) {
        free(buf);
        return cg_error_set(CG_ERR_FORMAT, "PNG encoder: %s", im.message);
    }
    *out = buf;
    *n = size;
    return CG_OK;
}

int image_encode_jpeg(const uint8_t *pixels, int w, int h, int channels, int quality, uint8_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    int rc = check_encode_args("JPEG", pixels, w, h, channels, 65535);
    if (rc) return rc;
    if (quality < 1 || quality > 100) return cg_error_set(CG_ERR_USAGE, "JPEG encoder: quality %d is not 1..100", quality);
    tjhandle tj = tj_handle(1);
    if (!tj) return cg_error_set(CG_ERR_NOMEM, "JPEG encoder: cannot make a TurboJPEG compressor");
    int subsamp = channels == 1 ? TJSAMP_GRAY : TJSAMP_420;
    unsigned long cap = tjBufSize(w, h, subsamp);
    if (cap == (unsigned long)-1) return cg_error_set(CG_ERR_USAGE, "JPEG encoder: %s", tjGetErrorStr2(tj));
    /* our own malloc'd buffer of the worst-case size, so the caller frees it with free() */
    unsigned char *buf = malloc(cap);
    if (!buf) return cg_error_set(CG_ERR_NOMEM, "JPEG encoder: no memory for %lu bytes", cap);
    unsigned long size = cap;
    if (tjCompress2(tj, pixels, w, 0, h, channels == 1 ? TJPF_GRAY : TJPF_RGB, &buf, &size, subsamp, quality,
                    TJFLAG_NOREALLOC) != 0) {
        free(buf);
        return cg_error_set(CG_ERR_FORMAT, "JPEG encoder: %s", tjGetErrorStr2(tj));
    }
    uint8_t *shrunk = realloc(buf, size);
    *out = shrunk ? shrunk : buf;
    *n = size;
    return CG_OK;
}
