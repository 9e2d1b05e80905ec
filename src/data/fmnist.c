#include "data/fmnist.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/rng.h"

static const char *const names_en[FMNIST_CLASSES] = {
    "t-shirt", "pair of trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"};
static const char *const names_zh[FMNIST_CLASSES] = {
    "T恤", "长裤", "套头衫", "连衣裙", "外套", "凉鞋", "衬衫", "运动鞋", "包", "短靴"};
/* each template has one %s */
static const char *const templates_en[] = {
    "a photo of a %s.", "a black and white photo of a %s.", "a low resolution photo of a %s.",
    "a grayscale photo of the %s.", "a small photo of a %s.", "a photo of a %s, a type of clothing."};
static const char *const templates_zh[] = {
    "一张%s的照片。", "一张%s的黑白照片。", "一张低分辨率的%s的照片。", "一张%s的灰度图片。", "这是%s的图片。",
    "一张小小的%s的照片。"};

const char *fmnist_class_name(fmnist_lang lang, int label) {
    if (label < 0 || label >= FMNIST_CLASSES) return "?";
    return lang == FMNIST_ZH ? names_zh[label] : names_en[label];
}

int fmnist_n_templates(fmnist_lang lang) {
    return lang == FMNIST_ZH ? (int)(sizeof templates_zh / sizeof *templates_zh)
                             : (int)(sizeof templates_en / sizeof *templates_en);
}

int fmnist_caption(fmnist_lang lang, int label, int t, char *buf, size_t n) {
    int nt = fmnist_n_templates(lang);
    const char *tmpl = lang == FMNIST_ZH ? templates_zh[((t % nt) + nt) % nt] : templates_en[((t % nt) + nt) % nt];
    return snprintf(buf, n, tmpl, fmnist_class_name(lang, label));
}

int fmnist_template_of(fmnist_lang lang, uint64_t seed, int64_t epoch, int64_t index) {
    cg_rng r;
    cg_rng_seed(&r, seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch * 0xBF58476D1CE4E5B9ull + (uint64_t)index + 1);
    return (int)cg_rng_below(&r, (uint64_t)fmnist_n_templates(lang));
}

/* ---- idx files ---- */

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read a whole gzip file; a plain file is read as is (zlib passes it through). */
static int read_gz(const char *path, unsigned char **out, size_t *len) {
    gzFile g = gzopen(path, "rb");
    if (!g) return cg_error_set(CG_ERR_IO, "cannot open %s: %s", path, errno ? strerror(errno) : "gzopen failed");
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = cg_xmalloc(cap);
    for (;;) {
        if (cap - n < (1 << 16)) buf = cg_xrealloc(buf, cap *= 2);
        int got = gzread(g, buf + n, (unsigned)(cap - n));
        if (got < 0) {
            int e;
            const char *msg = gzerror(g, &e);
            int rc = cg_error_set(CG_ERR_FORMAT, "%s: corrupt gzip data (%s)", path, msg);
            gzclose(g);
            free(buf);
            return rc;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    int e = Z_OK;
    const char *msg = gzerror(g, &e);
    if (e != Z_OK && e != Z_STREAM_END) {
        int rc = cg_error_set(CG_ERR_FORMAT, "%s: truncated or corrupt gzip data (%s)", path, msg);
        gzclose(g);
        free(buf);
        return rc;
    }
    gzclose(g);
    *out = buf;
    *len = n;
    return CG_OK;
}

static int load_idx(const char *path, uint32_t magic, int ndims, uint32_t *dims, unsigned char **data) {
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = read_gz(path, &buf, &len);
    if (rc) return rc;
    size_t header = 4 + 4 * (size_t)ndims;
    if (len < header || be32(buf) != magic) {
        rc = cg_error_set(CG_ERR_FORMAT, "%s: not an idx file of %d dimension%s (magic %08x, expected %08x)", path,
                          ndims, ndims == 1 ? "" : "s", len >= 4 ? be32(buf) : 0, magic);
        free(buf);
        return rc;
    }
    size_t count = 1;
    for (int i = 0; i < ndims; i++) {
        dims[i] = be32(buf + 4 + 4 * i);
        count *= dims[i];
    }
    if (len - header != count) {
        rc = cg_error_set(CG_ERR_FORMAT, "%s: header promises %zu bytes of data, the file has %zu", path, count,
                          len - header);
        free(buf);
        return rc;
    }
    memmove(buf, buf + header, count);
    *data = buf;
    return CG_OK;
}

int fmnist_load(const char *dir, const char *split, fmnist_set *out) {
    memset(out, 0, sizeof *out);
    if (!dir) dir = getenv("CLIPGRID_FMNIST_DIR") ? getenv("CLIPGRID_FMNIST_DIR") : FMNIST_DEFAULT_DIR;
    const char *prefix;
    if (!strcmp(split, "train")) prefix = "train";
    else if (!strcmp(split, "test")) prefix = "t10k";
    else return cg_error_set(CG_ERR_USAGE, "fmnist:%s: the splits are fmnist:train and fmnist:test", split);
    char *ip = cg_xasprintf("%s/%s-images-idx3-ubyte.gz", dir, prefix);
    char *lp = cg_xasprintf("%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    uint32_t idims[3] = {0}, ldims[1] = {0};
    unsigned char *images = NULL, *labels = NULL;
    int rc = load_idx(ip, 0x803, 3, idims, &images);
    if (!rc) rc = load_idx(lp, 0x801, 1, ldims, &labels);
    if (!rc && idims[0] != ldims[0])
        rc = cg_error_set(CG_ERR_FORMAT, "%s has %u images but %s has %u labels", ip, idims[0], lp, ldims[0]);
    for (uint32_t i = 0; !rc && i < ldims[0]; i++)
        if (labels[i] >= FMNIST_CLASSES)
            rc = cg_error_set(CG_ERR_FORMAT, "%s: label %u of sample %u is not a class (0-9)", lp, labels[i], i);
    if (rc == CG_ERR_IO && !cg_file_exists(dir))
        rc = cg_error_set(CG_ERR_IO, "Fashion-MNIST not found in %s: install the Debian package "
                          "dataset-fashion-mnist or set CLIPGRID_FMNIST_DIR", dir);
    free(ip);
    free(lp);
    if (rc) {
        free(images);
        free(labels);
        return rc;
    }
    out->n = (int)idims[0];
    out->rows = (int)idims[1];
    out->cols = (int)idims[2];
    out->images = images;
    out->labels = labels;
    return CG_OK;
}

void fmnist_free(fmnist_set *s) {
    free(s->images);
    free(s->labels);
    memset(s, 0, sizeof *s);
}

/* ---- images ---- */

static const float clip_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float clip_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

/* Bilinear sample of the source at continuous pixel coordinates (x, y), clamped at the edges. */
static float sample_bilinear(const uint8_t *img, int rows, int cols, float x, float y) {
    if (x < 0) x = 0;
    if (y < 0) y = 0;
    if (x > cols - 1) x = (float)(cols - 1);
    if (y > rows - 1) y = (float)(rows - 1);
    int x0 = (int)x, y0 = (int)y;
    int x1 = x0 + 1 < cols ? x0 + 1 : x0, y1 = y0 + 1 < rows ? y0 + 1 : y0;
    float fx = x - x0, fy = y - y0;
    float top = img[y0 * cols + x0] * (1 - fx) + img[y0 * cols + x1] * fx;
    float bot = img[y1 * cols + x0] * (1 - fx) + img[y1 * cols + x1] * fx;
    return top * (1 - fy) + bot * fy;
}

void fmnist_image(const fmnist_set *s, int index, int size, int augment, uint64_t seed, int64_t epoch, float *out) {
    const uint8_t *img = s->images + (size_t)index * s->rows * s->cols;
    /* crop window in source pixels: the whole image, or a random resized crop */
    float cx = 0, cy = 0, cw = (float)s->cols, ch = (float)s->rows;
    int flip = 0;
    if (augment) {
        cg_rng r;
        cg_rng_seed(&r, seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(epoch + 1)) ^ ((uint64_t)index << 20));
        for (int attempt = 0; attempt < 10; attempt++) {
            float area = (float)(s->rows * s->cols) * (0.8f + 0.2f * cg_rng_uniform(&r));
            float logr = logf(3.0f / 4.0f) + (logf(4.0f / 3.0f) - logf(3.0f / 4.0f)) * cg_rng_uniform(&r);
            float ratio = expf(logr);
            float w = sqrtf(area * ratio), h = sqrtf(area / ratio);
            if (w <= s->cols && h <= s->rows) {
                cw = w;
                ch = h;
                cx = (s->cols - w) * cg_rng_uniform(&r);
                cy = (s->rows - h) * cg_rng_uniform(&r);
                break;
            }
        }
        flip = cg_rng_uniform(&r) < 0.5f;
    }
    float sx = cw / size, sy = ch / size;
    size_t plane = (size_t)size * size;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            int xs = flip ? size - 1 - x : x;
            float v = sample_bilinear(img, s->rows, s->cols, cx + (xs + 0.5f) * sx - 0.5f, cy + (y + 0.5f) * sy - 0.5f);
            v /= 255.0f;
            for (int c = 0; c < 3; c++) out[c * plane + (size_t)y * size + x] = (v - clip_mean[c]) / clip_std[c];
        }
}
