/* transform.h — image preprocessing as open_clip / torchvision / PIL do it.
 *
 * Resizing is PIL's Image.resize(..., BICUBIC) arithmetic (ImagingResample): separable, the
 * filter support widened by the scale factor when shrinking (antialiasing), cubic a = -0.5,
 * coefficients normalised per output pixel, horizontal pass first into 8-bit, then vertical,
 * rounded and clamped to 0..255 — so outputs match Pillow within one gray level. A box in
 * source coordinates (x0, y0, x1, y1, floats, as Image.resize's `box`) selects the region, which
 * is how a crop and a resize happen in one pass.
 *
 * Train transform (open_clip's defaults): RandomResizedCrop(size, scale = [scale_lo, scale_hi],
 * ratio = [3/4, 4/3], bicubic) with torchvision's sampling (10 tries, log-uniform ratio, fallback
 * to a centre crop of the clamped ratio), optional horizontal flip, then CLIP normalisation.
 * Eval transform: resize the shorter side to `size` (bicubic), centre crop, normalise.
 * The random draws come from the cg_rng the caller passes (seeded per sample by the loader), so
 * a sample's pixels do not depend on which thread made them.
 */
#ifndef CLIPGRID_DATA_TRANSFORM_H
#define CLIPGRID_DATA_TRANSFORM_H

#include <stdint.h>

#include "core/rng.h"

/* CLIP's normalisation (open_clip OPENAI_DATASET_MEAN / STD). */
extern const float CLIP_MEAN[3], CLIP_STD[3];

typedef struct { float x0, y0, x1, y1; } crop_box;   /* source coordinates, x1 > x0, y1 > y0 */

/* Resize the `box` region of src (sw × sh × c, 8-bit interleaved, c = 1 or 3) to dst
 * (dw × dh × c), PIL bicubic with antialiasing. box NULL: the whole image. Allocates its own
 * coefficient tables and intermediate rows. */
void resize_bicubic_u8(const uint8_t *src, int sw, int sh, int c, const crop_box *box, uint8_t *dst, int dw, int dh);

/* torchvision RandomResizedCrop.get_params for an image of w × h: the crop box (integers as
 * floats). scale_lo/hi as fractions of the area (open_clip train: 0.9, 1.0). */
crop_box random_resized_crop_box(cg_rng *r, int w, int h, float scale_lo, float scale_hi, float ratio_lo, float ratio_hi);

/* The box torchvision's Resize(size) + CenterCrop(size) keeps, in source coordinates. */
crop_box center_crop_box(int w, int h);

typedef struct {
    int size;                       /* output side */
    int train;                      /* 1: random resized crop (+ flip); 0: resize + centre crop */
    float scale_lo, scale_hi;       /* RRC area range; defaults 0.9, 1.0 */
    float ratio_lo, ratio_hi;       /* RRC aspect range; defaults 3/4, 4/3 */
    int hflip;                      /* 1: flip with p = 0.5 in train mode */
} transform_opts;

void transform_opts_defaults(transform_opts *t, int size, int train);

/* The box this transform will take from a w × h image and whether it flips, drawing from r
 * exactly as transform_apply does (so the loader can pick a JPEG DCT scale before decoding). */
crop_box transform_plan(const transform_opts *t, cg_rng *r, int w, int h, int *flip);

/* Apply a planned box/flip to an RGB u8 image (w × h × 3) whose coordinates are `sx`, `sy`
 * times the coordinates the box was planned in (1 when decoded at full size; a JPEG decoded at
 * 1/4 scale has sx = sy = 0.25): resize the box to size × size, flip, normalise with CLIP
 * mean/std into out (3 × size × size floats, CHW). tmp: size*size*3 bytes of scratch. */
void transform_finish(const transform_opts *t, const uint8_t *rgb, int w, int h, crop_box box, float sx, float sy,
                      int flip, uint8_t *tmp, float *out);

#endif
