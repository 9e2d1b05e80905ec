/* transform.h — image preprocessing as open_clip / torchvision / PIL do it.
 *
 * Resizing is PIL's Image.resize(..., BICUBIC) arithmetic (ImagingResample): separable, the
 * filter support widened by the scale factor when shrinking (antialiasing), cubic a = -0.5,
 * coefficients normalised per output pixel and held as 22-bit fixed point, horizontal pass first
 * into 8-bit (only over the rows the vertical pass needs), then vertical, rounded and clamped to
 * 0..255. The integer arithmetic is Pillow's, so outputs equal Pillow 13's bit for bit
 * (tests/test_transform.c checks max |diff| <= 1 against tests/golden/resize/, and finds 0).
 *
 * Two ways to take a region, which differ only near its edges:
 *   - resize_bicubic_u8 with a box (x0, y0, x1, y1, floats) is Image.resize(size, BICUBIC, box):
 *     the filter of an edge pixel reaches source pixels outside the box;
 *   - resized_crop_u8 is torchvision's F.resized_crop on a PIL image, img.crop(box) followed by
 *     img.resize(size): the filter stops at the box's edges. RandomResizedCrop does this.
 *
 * Train transform (open_clip's defaults): RandomResizedCrop(size, scale = [scale_lo, scale_hi],
 * ratio = [3/4, 4/3], bicubic) with torchvision's sampling (10 tries, log-uniform ratio, fallback
 * to a centre crop of the clamped ratio), optional horizontal flip, then CLIP normalisation.
 * Eval transform: Resize(size) of the shorter side (bicubic), CenterCrop(size), normalise.
 * The random draws come from the cg_rng the caller passes (seeded per sample by the loader), so
 * a sample's pixels do not depend on which thread made them. The draws differ from torch's RNG,
 * so only the distribution of the boxes matches torchvision, not the individual boxes.
 *
 * The loader's path: probe the JPEG's size, transform_plan (box, flip), transform_scale_hint,
 * decode at a DCT scale (image.h), transform_finish with sx = decoded_w / full_w.
 *
 * All functions are thread-safe; scratch memory is allocated per call (no per-pixel allocation).
 */
#ifndef CLIPGRID_DATA_TRANSFORM_H
#define CLIPGRID_DATA_TRANSFORM_H

#include <stdint.h>

#include "core/rng.h"

/* CLIP's normalisation (open_clip OPENAI_DATASET_MEAN / STD). */
extern const float CLIP_MEAN[3], CLIP_STD[3];

typedef struct { float x0, y0, x1, y1; } crop_box;   /* source coordinates, x1 > x0, y1 > y0 */

/* Resize the `box` region of src (sw × sh × c, 8-bit interleaved, c = 1 or 3) to dst
 * (dw × dh × c), PIL bicubic with antialiasing: Image.resize((dw, dh), BICUBIC, box). box NULL:
 * the whole image. Allocates its own coefficient tables and intermediate rows. */
void resize_bicubic_u8(const uint8_t *src, int sw, int sh, int c, const crop_box *box, uint8_t *dst, int dw, int dh);

/* torchvision's resized_crop on a PIL image: crop `box` out of src, then resize the crop to
 * dw × dh (bicubic). Integer boxes give torchvision's pixels exactly; a fractional box (a box
 * scaled to a DCT-downscaled decode) crops the pixels it touches and resamples the fractional
 * box inside them. */
void resized_crop_u8(const uint8_t *src, int sw, int sh, int c, crop_box box, uint8_t *dst, int dw, int dh);

/* torchvision Resize(size) (shorter side to size, the longer to int(size * long / short),
 * bicubic) then CenterCrop(size), in one pass that computes only the kept pixels; equal to the
 * two steps bit for bit. dst: size × size × c. */
void resize_center_crop_u8(const uint8_t *src, int sw, int sh, int c, int size, uint8_t *dst);

/* torchvision RandomResizedCrop.get_params for an image of w × h: the crop box (integers as
 * floats). scale_lo/hi as fractions of the area (open_clip train: 0.9, 1.0). */
crop_box random_resized_crop_box(cg_rng *r, int w, int h, float scale_lo, float scale_hi, float ratio_lo, float ratio_hi);

/* The source region torchvision's Resize(size) + CenterCrop(size) keeps: resizing this box to
 * size × size (Image.resize's box) gives the two steps' pixels. The box depends on size only
 * through the rounding of the resized long side and of the crop offset (a fraction of a source
 * pixel); center_crop_box(w, h) is the size-independent box, the centred min(w, h) square. */
crop_box resize_center_crop_box(int w, int h, int size);
crop_box center_crop_box(int w, int h);

typedef struct {
    int size;                       /* output side */
    int train;                      /* 1: random resized crop (+ flip); 0: resize + centre crop */
    float scale_lo, scale_hi;       /* RRC area range; defaults 0.9, 1.0 */
    float ratio_lo, ratio_hi;       /* RRC aspect range; defaults 3/4, 4/3 */
    int hflip;                      /* 1: flip with p = 0.5 in train mode */
} transform_opts;

/* size, train as given; scale 0.9..1.0, ratio 3/4..4/3, hflip 0 (open_clip flips nothing). */
void transform_opts_defaults(transform_opts *t, int size, int train);

/* The box this transform will take from a w × h image and whether it flips: every random draw
 * of the transform happens here, so the loader can pick a JPEG DCT scale before decoding.
 * Train: random_resized_crop_box, then one uniform draw for the flip when hflip is set.
 * Eval: resize_center_crop_box(w, h, size), no draw, *flip = 0. */
crop_box transform_plan(const transform_opts *t, cg_rng *r, int w, int h, int *flip);

/* The decoded size to ask image_decode for (image_decode_opts.scale_hint_w/h) so that the
 * planned box of a w × h image still spans at least t->size pixels each way (a DCT-downscaled
 * decode never turns the resize into an upscale): w × h times the smallest of 1/8, 1/4, 1/2, 1
 * that allows it. Only these factors, because libjpeg-turbo's 3/8 and 5/8..7/8 decodes are
 * slower than a full one. */
void transform_scale_hint(const transform_opts *t, crop_box box, int w, int h, int *hint_w, int *hint_h);

/* Apply a planned box/flip to an RGB u8 image (w × h × 3) whose coordinates are `sx`, `sy`
 * times the coordinates the box was planned in (1 when decoded at full size; a JPEG decoded at
 * 1/4 scale has sx = sy = 0.25): resize the box to size × size, flip, normalise with CLIP
 * mean/std into out (3 × size × size floats, CHW). tmp: size*size*3 bytes of scratch.
 * Train: resized_crop_u8 of the scaled box. Eval at sx = sy = 1: resize_center_crop_u8 (box
 * must be the planned one). Eval at another scale: Image.resize of the scaled box. The floats
 * equal torchvision's ToTensor + Normalize of the same 8-bit pixels bit for bit. */
void transform_finish(const transform_opts *t, const uint8_t *rgb, int w, int h, crop_box box, float sx, float sy,
                      int flip, uint8_t *tmp, float *out);

/* 0: use the portable resampling kernels only; 1 (default): AVX2 kernels where the CPU has
 * them. Both give the same pixels; the tests run both. */
void transform_use_simd(int on);

#endif
