/* libFuzzer target: image_probe and image_decode (JPEG, PNG, WebP) on arbitrary bytes.
 *
 * Input: one selector byte, then the file. Selector 0 decodes at full size; otherwise it gives
 * a JPEG DCT-scaling hint of (1 + 4·(s & 15)) × (1 + 4·(s >> 4)) pixels. max_pixels is 2^20
 * so that a mutated header cannot make one input allocate or decode for long.
 * Checks: no crash, leak or out-of-bounds access (ASan, UBSan); a decode that succeeds has
 * positive sides and w·h·3 readable bytes; at full size it agrees with image_probe; scaled, it is
 * no larger than the full size and covers the hint unless it is the full size; a small decoded
 * image survives the PNG encoder round trip exactly, and the JPEG encoder's output decodes.
 *
 * Built once per decoder (run.sh: fuzz_image_jpeg, _png, _webp, each with its own seed corpus)
 * with FUZZ_FORCE_FORMAT = 1 (JPEG), 2 (PNG) or 3 (WebP): the format's magic bytes are stamped
 * on every input, so that no execution is lost to a mutated signature. Without it the input is
 * taken as is (sniffing included). At exit the binary prints how many inputs reached each
 * decoder, the counts docs/data.md records. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "fuzz_common.h"

static unsigned long long reached[4];
static volatile unsigned sink;   /* inputs per sniffed format (IMAGE_UNKNOWN, JPEG, PNG, WebP) */

static void print_counts(void) {
    fprintf(stderr, "fuzz_image: inputs per decoder: JPEG %llu, PNG %llu, WebP %llu, unknown %llu\n",
            reached[IMAGE_JPEG], reached[IMAGE_PNG], reached[IMAGE_WEBP], reached[IMAGE_UNKNOWN]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    atexit(print_counts);
    return 0;
}

/* Every byte of the pixels, so that ASan sees a buffer shorter than w·h·3. */
static unsigned touch(const cg_image *im) {
    unsigned s = 0;
    for (size_t i = 0; i < (size_t)im->w * (size_t)im->h * 3; i++) s += im->rgb[i];
    return s;
}

static void round_trip(const cg_image *im) {
    uint8_t *enc = NULL;
    size_t n = 0;
    FUZZ_ASSERT(image_encode_png(im->rgb, im->w, im->h, 3, &enc, &n) == 0);
    cg_image back;
    FUZZ_ASSERT(image_decode(enc, n, "round trip.png", NULL, &back) == 0);
    FUZZ_ASSERT(back.w == im->w && back.h == im->h);
    FUZZ_ASSERT(memcmp(back.rgb, im->rgb, (size_t)im->w * im->h * 3) == 0);
    image_free(&back);
    free(enc);
    FUZZ_ASSERT(image_encode_jpeg(im->rgb, im->w, im->h, 3, 75, &enc, &n) == 0);
    FUZZ_ASSERT(image_decode(enc, n, "round trip.jpg", NULL, &back) == 0);
    FUZZ_ASSERT(back.w == im->w && back.h == im->h);
    image_free(&back);
    free(enc);
}

#ifdef FUZZ_FORCE_FORMAT
/* The magic bytes of the forced format (WebP: "RIFF" at 0 and "WEBP" at 8, the size between
 * left to the input). */
#if FUZZ_FORCE_FORMAT == 1
#define MAGIC_N 3
static const uint8_t magic[MAGIC_N] = {0xFF, 0xD8, 0xFF};
#elif FUZZ_FORCE_FORMAT == 2
#define MAGIC_N 8
static const uint8_t magic[MAGIC_N] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
#else
#define MAGIC_N 12
static const uint8_t magic[MAGIC_N] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P'};
#endif

/* A copy of the input with the forced format's magic stamped on it, zero-padded to the magic's
 * length when shorter; exactly *n bytes, so ASan sees any read past them. */
static uint8_t *stamp_magic(const uint8_t *in, size_t size, size_t *n) {
    *n = size > MAGIC_N ? size : MAGIC_N;
    uint8_t *d = calloc(1, *n);
    if (size) memcpy(d, in, size);
    for (size_t i = 0; i < MAGIC_N; i++)
        if (!(MAGIC_N == 12 && i >= 4 && i < 8)) d[i] = magic[i];
    return d;
}
#endif

/* One input: probe, decode with the selected hint, check the result. */
static void fuzz_one(uint8_t sel, const uint8_t *data, size_t size) {
    image_format f = image_sniff(data, size);
    reached[f]++;
    image_decode_opts o = {.max_pixels = (int64_t)1 << 20};
    if (sel) {
        o.scale_hint_w = 1 + 4 * (sel & 15);
        o.scale_hint_h = 1 + 4 * (sel >> 4);
    }
    int pw = 0, ph = 0;
    int probed = image_probe(data, size, "fuzz", &pw, &ph) == 0;
    if (probed) FUZZ_ASSERT(pw > 0 && ph > 0);
    cg_image im;
    if (image_decode(data, size, "fuzz", &o, &im) != 0) {
        FUZZ_ASSERT(im.rgb == NULL && im.w == 0 && im.h == 0);
        return;
    }
    FUZZ_ASSERT(f != IMAGE_UNKNOWN && im.rgb && im.w > 0 && im.h > 0);
    FUZZ_ASSERT(probed);   /* whatever decodes has a readable header */
    sink += touch(&im);
    if (!sel || f != IMAGE_JPEG) {
        FUZZ_ASSERT(im.w == pw && im.h == ph);
    } else {
        FUZZ_ASSERT(im.w <= pw && im.h <= ph);
        FUZZ_ASSERT((im.w >= o.scale_hint_w && im.h >= o.scale_hint_h) || (im.w == pw && im.h == ph));
    }
    if ((size_t)im.w * im.h <= 4096) round_trip(&im);
    image_free(&im);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
#ifdef FUZZ_FORCE_FORMAT
    size_t n = 0;
    uint8_t *d = stamp_magic(data + 1, size - 1, &n);
    fuzz_one(data[0], d, n);
    free(d);
#else
    fuzz_one(data[0], data + 1, size - 1);
#endif
    return 0;
}
