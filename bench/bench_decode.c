/* bench_decode — images/s of the training loader's per-sample image work, on one thread.
 *
 *   bench_decode --dir DIR [--passes 3] [--size 224] [--json out.json]
 *
 * For every JPEG in DIR (bench/decode_images.py makes ~500x375 ones), in order: read the file,
 * image_probe, transform_plan (RandomResizedCrop + flip, torchvision's sampling from a per-image
 * cg_rng), image_decode, transform_finish (PIL-exact bicubic resize of the box to size x size,
 * flip, CLIP normalisation into a float CHW tensor). Configurations: RRC scale 0.9-1 (open_clip's
 * train default) and 0.08-1 (ImageNet's), each with three DCT scale hints: "dct" is
 * transform_scale_hint (factors 1/8, 1/4, 1/2 or full size), "dct_any" the smallest size that
 * keeps the box >= size pixels (ceil(size * w / box_w); the decoder may then pick 3/8, 5/8..7/8),
 * "full" no hint. Each configuration makes --passes
 * passes over the files and reports the best and the median pass (the machine may be shared),
 * with the time split into read, decode and transform, and the share of images the decoder
 * scaled down. bench/decode_torch.py measures PIL + torchvision on the same files;
 * bench/decode_compare.sh runs both.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/image.h"
#include "data/transform.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The .jpg/.jpeg files of dir, sorted, as full paths. */
static char **list_jpegs(const char *dir, int *n_out) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    int n = 0, cap = 256;
    char **v = cg_xmalloc((size_t)cap * sizeof *v);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (!((l > 4 && !strcmp(e->d_name + l - 4, ".jpg")) || (l > 5 && !strcmp(e->d_name + l - 5, ".jpeg")))) continue;
        if (n == cap) v = cg_xrealloc(v, (size_t)(cap *= 2) * sizeof *v);
        v[n++] = cg_path_join(dir, e->d_name);
    }
    closedir(d);
    qsort(v, (size_t)n, sizeof *v, cmp_str);
    *n_out = n;
    return v;
}

enum { HINT_NONE, HINT_POW2, HINT_ANY };

typedef struct {
    const char *name;
    float scale_lo;
    int hint;
} config;

typedef struct {
    double best_ips, median_ips;
    double read_ms, decode_ms, transform_ms;   /* per image, in the best pass */
    double scaled_share;                       /* images the decoder shrank */
    double mean_decoded_px;                    /* decoded pixels per image */
} result;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One pass over the files; returns images/s (0 on an error) and the stage times. */
static double run_pass(const config *c, char **files, int n, int size, int pass, result *stage) {
    transform_opts t;
    transform_opts_defaults(&t, size, 1);
    t.scale_lo = c->scale_lo;
    t.hflip = 1;
    uint8_t *tmp = cg_xmalloc((size_t)size * size * 3);
    float *out = cg_xmalloc(sizeof(float) * 3 * (size_t)size * size);
    double t_read = 0, t_dec = 0, t_tf = 0, px = 0;
    int scaled = 0;
    double t0 = now();
    for (int i = 0; i < n; i++) {
        double a = now();
        char *bytes;
        size_t len;
        if (cg_file_read(files[i], &bytes, &len)) {
            fprintf(stderr, "[ERROR] %s\n", cg_error_message());
            free(tmp), free(out);
            return 0;
        }
        double b = now();
        int w, h, flip;
        cg_image img;
        cg_rng r;
        cg_rng_seed(&r, (uint64_t)pass * 1000003u + (uint64_t)i);
        int rc = image_probe((const uint8_t *)bytes, len, files[i], &w, &h);
        crop_box box = {0, 0, 0, 0};
        image_decode_opts o = {0};
        if (!rc) {
            box = transform_plan(&t, &r, w, h, &flip);
            if (c->hint == HINT_POW2) transform_scale_hint(&t, box, w, h, &o.scale_hint_w, &o.scale_hint_h);
            if (c->hint == HINT_ANY) {
                o.scale_hint_w = (int)ceil((double)size * w / (box.x1 - box.x0));
                o.scale_hint_h = (int)ceil((double)size * h / (box.y1 - box.y0));
            }
            rc = image_decode((const uint8_t *)bytes, len, files[i], &o, &img);
        }
        free(bytes);
        if (rc) {
            fprintf(stderr, "[ERROR] %s\n", cg_error_message());
            free(tmp), free(out);
            return 0;
        }
        double d = now();
        transform_finish(&t, img.rgb, img.w, img.h, box, (float)img.w / (float)w, (float)img.h / (float)h, flip, tmp,
                         out);
        double e = now();
        scaled += img.w < w;
        px += (double)img.w * img.h;
        image_free(&img);
        t_read += b - a;
        t_dec += d - b;
        t_tf += e - d;
    }
    double ips = n / (now() - t0);
    stage->read_ms = 1e3 * t_read / n;
    stage->decode_ms = 1e3 * t_dec / n;
    stage->transform_ms = 1e3 * t_tf / n;
    stage->scaled_share = (double)scaled / n;
    stage->mean_decoded_px = px / n;
    free(tmp);
    free(out);
    return ips;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *json = NULL;
    int passes = 3, size = 224;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--passes") && i + 1 < argc) passes = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s --dir DIR [--passes 3] [--size 224] [--json out.json]\n", argv[0]);
            return 2;
        }
    }
    if (passes < 1) passes = 1;
    int n = 0;
    char **files = dir ? list_jpegs(dir, &n) : NULL;
    if (!files || n == 0) {
        fprintf(stderr, "[ERROR] no .jpg files in %s (bench/decode_compare.sh makes them)\n", dir ? dir : "(no --dir)");
        return 1;
    }
    static const config configs[] = {{"rrc_0.9-1_dct", 0.9f, HINT_POW2},     {"rrc_0.9-1_dct_any", 0.9f, HINT_ANY},
                                     {"rrc_0.9-1_full", 0.9f, HINT_NONE},    {"rrc_0.08-1_dct", 0.08f, HINT_POW2},
                                     {"rrc_0.08-1_dct_any", 0.08f, HINT_ANY}, {"rrc_0.08-1_full", 0.08f, HINT_NONE}};
    const int nc = (int)(sizeof configs / sizeof configs[0]);
    result res[sizeof configs / sizeof configs[0]];
    printf("%d JPEGs from %s, one thread, %d passes each, output %dx%d float CHW\n", n, dir, passes, size, size);
    printf("%-20s %10s %10s %9s %9s %9s %8s\n", "config", "best_ips", "median", "read_ms", "decode_ms", "xform_ms",
           "scaled");
    for (int k = 0; k < nc; k++) {
        double *ips = cg_xmalloc(sizeof(double) * (size_t)passes);
        result best = {0};
        for (int p = 0; p < passes; p++) {
            result st;
            ips[p] = run_pass(&configs[k], files, n, size, p, &st);
            if (ips[p] <= 0) return 1;
            if (ips[p] > best.best_ips) best = st, best.best_ips = ips[p];
        }
        qsort(ips, (size_t)passes, sizeof *ips, cmp_double);
        best.median_ips = ips[passes / 2];
        res[k] = best;
        free(ips);
        printf("%-20s %10.1f %10.1f %9.3f %9.3f %9.3f %7.0f%%\n", configs[k].name, best.best_ips, best.median_ips,
               best.read_ms, best.decode_ms, best.transform_ms, 100 * best.scaled_share);
    }
    if (json) {
        cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "configs");
        cJSON_AddStringToObject(root, "side", "clipgrid");
        cJSON_AddNumberToObject(root, "images", n);
        cJSON_AddNumberToObject(root, "passes", passes);
        cJSON_AddNumberToObject(root, "size", size);
        for (int k = 0; k < nc; k++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", configs[k].name);
            cJSON_AddNumberToObject(o, "scale_lo", configs[k].scale_lo);
            cJSON_AddStringToObject(o, "dct_hint", configs[k].hint == HINT_POW2  ? "transform_scale_hint"
                                                   : configs[k].hint == HINT_ANY ? "any_factor"
                                                                                 : "none");
            cJSON_AddNumberToObject(o, "best_images_per_s", res[k].best_ips);
            cJSON_AddNumberToObject(o, "median_images_per_s", res[k].median_ips);
            cJSON_AddNumberToObject(o, "read_ms", res[k].read_ms);
            cJSON_AddNumberToObject(o, "decode_ms", res[k].decode_ms);
            cJSON_AddNumberToObject(o, "transform_ms", res[k].transform_ms);
            cJSON_AddNumberToObject(o, "dct_scaled_share", res[k].scaled_share);
            cJSON_AddNumberToObject(o, "mean_decoded_pixels", res[k].mean_decoded_px);
            cJSON_AddItemToArray(arr, o);
        }
        char *s = cJSON_Print(root);
        int rc = cg_file_write_atomic(json, s, strlen(s));
        free(s);
        cJSON_Delete(root);
        if (rc) {
            fprintf(stderr, "[ERROR] %s\n", cg_error_message());
            return 1;
        }
    }
    for (int i = 0; i < n; i++) free(files[i]);
    free(files);
    return 0;
}
