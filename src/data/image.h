/* image.h — decode and encode image files: JPEG (libturbojpeg), PNG (libpng), WebP (libwebp).
 *
 * Every decoder produces 8-bit RGB, interleaved, row-major (w × h × 3), the pixels PIL's
 * Image.open(f).convert("RGB") gives: grayscale is replicated; 16-bit PNG samples keep their
 * high byte (as PIL does for RGB; also for 16-bit gray, where PIL clips to 255); palette images
 * give their palette colours; alpha is dropped, the colour values kept as they are (no
 * compositing onto a background; a tRNS transparency is ignored likewise). CMYK/YCCK JPEG is
 * taken as Adobe's inverted CMYK, as PIL assumes for every CMYK JPEG, and converted as PIL's
 * cmyk2rgb: R = (255 - C)(255 - K)/255. The JPEG EXIF orientation tag (1..8) is applied (what
 * PIL leaves to ImageOps.exif_transpose), so the pixels come out as a viewer shows them. The
 * format is sniffed from the bytes, never from the file name. Animated WebP is refused.
 *
 * Guards for untrusted data: the header is read first and an image with more than max_pixels
 * pixels (default IMAGE_MAX_PIXELS, as PIL's decompression-bomb limit; counted on the full size,
 * also for a JPEG decoded scaled down) or a zero side is refused before any pixel buffer is
 * allocated; truncated or corrupt data is an error, not a crash (a JPEG cut short too, as PIL's
 * "image file is truncated"; junk bytes between JPEG segments are tolerated). Errors are
 * CG_ERR_FORMAT (or CG_ERR_IO for files, CG_ERR_NOMEM) with a message naming `name`.
 *
 * DCT-domain downscaling (JPEG only): with scale_hint_w/h > 0 the decoder picks the smallest of
 * libjpeg-turbo's scaling factors (1/8, 2/8, ... 8/8) whose output is still at least
 * scale_hint_w × scale_hint_h pixels, so a 2000 px photo headed for 224 px decodes at 1/4 or
 * 1/8 of the work; a side is ceil(side × factor). The hint is in displayed coordinates (after
 * the EXIF orientation, like out->w/h); a hint of 0 leaves that side unconstrained. Other formats
 * ignore the hint (out->w/h are then the full size). `image_probe` gives the full size beforehand.
 *
 * All functions are thread-safe (libturbojpeg handles are per thread).
 */
#ifndef CLIPGRID_DATA_IMAGE_H
#define CLIPGRID_DATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define IMAGE_MAX_PIXELS ((int64_t)178956970)   /* 2 × 89,478,485, PIL's DecompressionBombError limit */

typedef enum { IMAGE_UNKNOWN = 0, IMAGE_JPEG, IMAGE_PNG, IMAGE_WEBP } image_format;

typedef struct {
    int w, h;          /* as decoded (after orientation and any DCT downscaling) */
    uint8_t *rgb;      /* w*h*3 bytes, malloc'd; image_free releases it */
} cg_image;

typedef struct {
    int64_t max_pixels;              /* <= 0: IMAGE_MAX_PIXELS */
    int scale_hint_w, scale_hint_h;  /* JPEG DCT downscaling target; 0: full size */
} image_decode_opts;

/* Format from the first bytes (JPEG FF D8 FF, PNG signature, RIFF....WEBP). */
image_format image_sniff(const uint8_t *data, size_t n);
const char *image_format_name(image_format f);

/* Full-size width and height as displayed (EXIF orientation 5..8 swaps them), from the header
 * only. */
int image_probe(const uint8_t *data, size_t n, const char *name, int *w, int *h);

/* Decode `n` bytes; `name` (a path or a shard member) only labels errors. opts may be NULL. */
int image_decode(const uint8_t *data, size_t n, const char *name, const image_decode_opts *opts, cg_image *out);
/* Read and decode a file. */
int image_decode_file(const char *path, const image_decode_opts *opts, cg_image *out);
void image_free(cg_image *img);

/* Encoders (used by `clipgrid data fmnist` and the tests). Output is malloc'd into *out / *n.
 * channels: 1 (gray) or 3 (RGB), pixels interleaved. quality: 1..100. JPEG: 4:2:0 chroma
 * subsampling for RGB, one component for gray; sides up to 65535. Bad arguments: CG_ERR_USAGE. */
int image_encode_png(const uint8_t *pixels, int w, int h, int channels, uint8_t **out, size_t *n);
int image_encode_jpeg(const uint8_t *pixels, int w, int h, int channels, int quality, uint8_t **out, size_t *n);

#endif
