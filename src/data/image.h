/* image.h — decode and encode image files: JPEG (libturbojpeg), PNG (libpng), WebP (libwebp).
 *
 * Every decoder produces 8-bit RGB, interleaved, row-major (w × h × 3): grayscale is replicated,
 * CMYK/YCCK JPEG converted (Adobe inverted CMYK handled), 16-bit PNG reduced to 8 bits, palette
 * and alpha composited onto black (as PIL's convert("RGB") drops alpha; transparency in palette
 * and tRNS chunks included). The JPEG EXIF orientation tag (1..8) is applied, so the pixels come
 * out as a viewer shows them. The format is sniffed from the bytes, never from the file name.
 *
 * Guards for untrusted data: the header is read first and an image with more than max_pixels
 * pixels (default IMAGE_MAX_PIXELS, as PIL's decompression-bomb limit) or a zero side is
 * refused before any pixel buffer is allocated; truncated or corrupt data is an error, not a
 * crash. Errors are CG_ERR_FORMAT (or CG_ERR_IO for files) with a message naming `name`.
 *
 * DCT-domain downscaling (JPEG only): with scale_hint_w/h > 0 the decoder picks the smallest of
 * libjpeg-turbo's scaling factors (1/8, 2/8, ... 8/8) whose output is still at least
 * scale_hint_w × scale_hint_h pixels, so a 2000 px photo headed for 224 px decodes at 1/4 or
 * 1/8 of the work. Other formats ignore the hint (out->w/h are then the full size). The caller
 * works in the decoded image's coordinates; `image_probe` gives the full size beforehand.
 *
 * All functions are thread-safe (libturbojpeg handles are per call or per thread).
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
 * channels: 1 (gray) or 3 (RGB), pixels interleaved. quality: 1..100. */
int image_encode_png(const uint8_t *pixels, int w, int h, int channels, uint8_t **out, size_t *n);
int image_encode_jpeg(const uint8_t *pixels, int w, int h, int channels, int quality, uint8_t **out, size_t *n);

#endif
