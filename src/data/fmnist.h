/* fmnist.h — Fashion-MNIST as a CLIP dataset: images, labels and captions.
 *
 * The idx files come from Debian's dataset-fashion-mnist package
 * (/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz), read
 * through zlib; $CLIPGRID_FMNIST_DIR or the `dir` argument points elsewhere. Every header is
 * checked (magic numbers, counts that agree, sizes that match the data); errors name the file.
 *
 * Captions pair each image with a template and its class name, in English for CLIP-BPE text
 * towers ("a photo of a sneaker.") and in Chinese for BERT-Chinese ones ("一张运动鞋的照片。").
 * Images become 3×S×S float tensors: grayscale replicated to three channels, resized
 * (bilinear, half-pixel centres), optionally augmented (random resized crop with scale
 * [0.8, 1] and aspect [3/4, 4/3], horizontal flip with p = 0.5), then normalised with CLIP's
 * mean and std. Augmentation draws from a generator seeded by (seed, epoch, index) alone, so a
 * sample looks the same whatever thread or order produced it.
 */
#ifndef CLIPGRID_DATA_FMNIST_H
#define CLIPGRID_DATA_FMNIST_H

#include <stddef.h>
#include <stdint.h>

#define FMNIST_CLASSES 10
#define FMNIST_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

typedef enum { FMNIST_EN, FMNIST_ZH } fmnist_lang;

typedef struct {
    int n, rows, cols;
    uint8_t *images;   /* n × rows × cols, row-major */
    uint8_t *labels;   /* n, in [0, 10) */
} fmnist_set;

/* split: "train" or "test". dir NULL: $CLIPGRID_FMNIST_DIR, else FMNIST_DEFAULT_DIR. */
int fmnist_load(const char *dir, const char *split, fmnist_set *out);
void fmnist_free(fmnist_set *s);

/* Class names, as used in captions. */
const char *fmnist_class_name(fmnist_lang lang, int label);
int fmnist_n_templates(fmnist_lang lang);
/* The caption template of sample `index` in `epoch` (training draws one per sample and epoch): a
 * function of (seed, epoch, index) alone. */
int fmnist_template_of(fmnist_lang lang, uint64_t seed, int64_t epoch, int64_t index);
/* Caption of class `label` with template `t` into buf; returns its length. */
int fmnist_caption(fmnist_lang lang, int label, int t, char *buf, size_t n);

/* Image `index` as a normalised 3×size×size tensor into out. augment != 0 applies the train
 * augmentation drawn from (seed, epoch, index). */
void fmnist_image(const fmnist_set *s, int index, int size, int augment, uint64_t seed, int64_t epoch, float *out);

#endif
