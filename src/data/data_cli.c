/* clipgrid data — export Fashion-MNIST as real files: images + CSV/JSONL manifests, or
 * WebDataset shards. The tests and the demo use it to run the file paths end to end.
 *
 *   clipgrid data fmnist --out DIR --format png|jpg|wds [--split train|test|both] [--limit N]
 *                        [--size S] [--quality Q] [--shard-size N] [--lang en|zh]
 *
 * png/jpg: DIR/<split>/<index>.<ext>, DIR/<split>.csv (filepath,title,title_zh,label; paths
 * relative to DIR) and DIR/<split>.jsonl ({"image","caption","caption_zh","label"}).
 * wds: DIR/<split>-000000.tar, ... with <index>.<png|jpg>, <index>.txt (the caption in --lang)
 * and <index>.json ({"caption","caption_zh","label"}), `--shard-size` samples per shard.
 * Captions use template (index mod templates), so every image has one fixed caption.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "core/fileio.h"
#include "core/log.h"
#include "data/fmnist.h"
#include "data/image.h"

static const char data_usage[] =
"usage: clipgrid data fmnist --out DIR [--format png|jpg|wds] [options]\n"
"\n"
"Export Fashion-MNIST as image files with CSV and JSONL manifests, or as WebDataset shards,\n"
"for training through --data DIR/train.csv, DIR/train.jsonl or 'DIR/train-{000000..000005}.tar'.\n"
"\n"
"  --out DIR           where to write (created)\n"
"  --format F          png (default), jpg or wds (tar shards of PNG images + .txt + .json)\n"
"  --split S           train, test or both (default both)\n"
"  --limit N           only the first N images of each split\n"
"  --size S            upscale to S x S pixels by nearest neighbour (default 28, as stored)\n"
"  --quality Q         JPEG quality 1..100 (default 90)\n"
"  --shard-size N      samples per shard for wds (default 10000)\n"
"  --image-format F    image inside wds shards: png (default) or jpg\n"
"  --lang en|zh        caption in .txt for wds (default en); manifests carry both\n";

typedef struct {
    const char *out, *format, *split, *lang, *image_format;
    int limit, size, quality, shard_size;
} export_opts;

/* The image at `index`, 1 channel, nearest-upscaled to size × size. */
static void export_pixels(const fmnist_set *s, int index, int size, uint8_t *out) {
    const uint8_t *src = s->images + (size_t)index * s->rows * s->cols;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) out[y * size + x] = src[(y * s->rows / size) * s->cols + x * s->cols / size];
}

static int encode(const export_opts *o, const char *fmt, const uint8_t *px, uint8_t **buf, size_t *n) {
    if (!strcmp(fmt, "jpg")) return image_encode_jpeg(px, o->size, o->size, 1, o->quality, buf, n);
    return image_encode_png(px, o->size, o->size, 1, buf, n);
}

static void captions_of(const fmnist_set *s, int i, char *en, char *zh, size_t cap) {
    int label = s->labels[i];
    fmnist_caption(FMNIST_EN, label, i % fmnist_n_templates(FMNIST_EN), en, cap);
    fmnist_caption(FMNIST_ZH, label, i % fmnist_n_templates(FMNIST_ZH), zh, cap);
}

/* One CSV field, quoted when it holds a separator, quote or newline (RFC 4180). */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* Images are written plainly (no fsync per file: 60,000 of them); the manifests, renamed into
 * place last, are what make an export complete. */
static int write_plain(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return cg_error_set(CG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    size_t w = fwrite(data, 1, n, f);
    if (fclose(f) != 0 || w != n) return cg_error_set(CG_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return CG_OK;
}

static int export_files(const export_opts *o, const fmnist_set *s, const char *split, int n) {
    char *dir = cg_path_join(o->out, split);
    int rc = cg_mkdir_p(dir);
    char *csv_name = cg_xasprintf("%s.csv", split), *jsonl_name = cg_xasprintf("%s.jsonl", split);
    char *csv_path = cg_path_join(o->out, csv_name), *jsonl_path = cg_path_join(o->out, jsonl_name);
    char *csv_tmp = cg_xasprintf("%s.tmp", csv_path), *jsonl_tmp = cg_xasprintf("%s.tmp", jsonl_path);
    FILE *csv = rc ? NULL : fopen(csv_tmp, "w"), *jsonl = rc || !csv ? NULL : fopen(jsonl_tmp, "w");
    if (!rc && (!csv || !jsonl)) rc = cg_error_set(CG_ERR_IO, "cannot write %s: %s", !csv ? csv_tmp : jsonl_tmp, strerror(errno));
    if (!rc) fputs("filepath,title,title_zh,label\n", csv);
    uint8_t *px = cg_xmalloc((size_t)o->size * o->size);
    for (int i = 0; i < n && !rc; i++) {
        export_pixels(s, i, o->size, px);
        uint8_t *buf = NULL;
        size_t len = 0;
        if ((rc = encode(o, o->format, px, &buf, &len))) break;
        char *rel = cg_xasprintf("%s/%06d.%s", split, i, o->format);
        char *path = cg_path_join(o->out, rel);
        rc = write_plain(path, buf, len);
        char en[256], zh[256];
        captions_of(s, i, en, zh, sizeof en);
        if (!rc) {
            csv_field(csv, rel); fputc(',', csv); csv_field(csv, en); fputc(',', csv); csv_field(csv, zh);
            fprintf(csv, ",%d\n", s->labels[i]);
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "image", rel);
            cJSON_AddStringToObject(j, "caption", en);
            cJSON_AddStringToObject(j, "caption_zh", zh);
            cJSON_AddNumberToObject(j, "label", s->labels[i]);
            char *line = cJSON_PrintUnformatted(j);
            fprintf(jsonl, "%s\n", line);
            free(line);
            cJSON_Delete(j);
        }
        free(buf); free(rel); free(path);
    }
    free(px);
    if (csv && fclose(csv) && !rc) rc = cg_error_set(CG_ERR_IO, "cannot write %s", csv_tmp);
    if (jsonl && fclose(jsonl) && !rc) rc = cg_error_set(CG_ERR_IO, "cannot write %s", jsonl_tmp);
    if (!rc && (rename(csv_tmp, csv_path) || rename(jsonl_tmp, jsonl_path)))
        rc = cg_error_set(CG_ERR_IO, "cannot rename the manifests into %s: %s", o->out, strerror(errno));
    if (!rc) printf("%s: %d images in %s/, manifests %s and %s\n", split, n, dir, csv_path, jsonl_path);
    free(dir); free(csv_name); free(jsonl_name); free(csv_path); free(jsonl_path); free(csv_tmp); free(jsonl_tmp);
    return rc;
}

static int tar_add(struct archive *a, const char *name, const void *data, size_t n, const char *shard) {
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)n);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, 0, 0);   /* reproducible shards */
    int rc = CG_OK;
    if (archive_write_header(a, e) != ARCHIVE_OK || archive_write_data(a, data, n) != (la_ssize_t)n)
        rc = cg_error_set(CG_ERR_IO, "%s: cannot write %s: %s", shard, name, archive_error_string(a));
    archive_entry_free(e);
    return rc;
}

static int export_shards(const export_opts *o, const fmnist_set *s, const char *split, int n) {
    int rc = cg_mkdir_p(o->out), nshards = 0;
    fmnist_lang lang = !strcmp(o->lang, "zh") ? FMNIST_ZH : FMNIST_EN;
    uint8_t *px = cg_xmalloc((size_t)o->size * o->size);
    for (int first = 0; first < n && !rc; first += o->shard_size, nshards++) {
        char *name = cg_xasprintf("%s-%06d.tar", split, nshards), *path = cg_path_join(o->out, name);
        char *tmp = cg_xasprintf("%s.tmp", path);
        struct archive *a = archive_write_new();
        archive_write_set_format_ustar(a);
        if (archive_write_open_filename(a, tmp) != ARCHIVE_OK)
            rc = cg_error_set(CG_ERR_IO, "cannot write %s: %s", tmp, archive_error_string(a));
        for (int i = first; i < n && i < first + o->shard_size && !rc; i++) {
            export_pixels(s, i, o->size, px);
            uint8_t *buf = NULL;
            size_t len = 0;
            if ((rc = encode(o, o->image_format, px, &buf, &len))) break;
            char en[256], zh[256], key[32], member[48];
            captions_of(s, i, en, zh, sizeof en);
            snprintf(key, sizeof key, "%09d", i);
            snprintf(member, sizeof member, "%s.%s", key, o->image_format);
            rc = tar_add(a, member, buf, len, tmp);
            free(buf);
            const char *txt = lang == FMNIST_ZH ? zh : en;
            snprintf(member, sizeof member, "%s.txt", key);
            if (!rc) rc = tar_add(a, member, txt, strlen(txt), tmp);
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "caption", en);
            cJSON_AddStringToObject(j, "caption_zh", zh);
            cJSON_AddNumberToObject(j, "label", s->labels[i]);
            char *js = cJSON_PrintUnformatted(j);
            snprintf(member, sizeof member, "%s.json", key);
            if (!rc) rc = tar_add(a, member, js, strlen(js), tmp);
            free(js);
            cJSON_Delete(j);
        }
        if (archive_write_close(a) != ARCHIVE_OK && !rc)
            rc = cg_error_set(CG_ERR_IO, "cannot finish %s: %s", tmp, archive_error_string(a));
        archive_write_free(a);
        if (!rc && rename(tmp, path)) rc = cg_error_set(CG_ERR_IO, "cannot rename %s: %s", tmp, strerror(errno));
        free(name); free(path); free(tmp);
    }
    free(px);
    if (!rc)
        printf("%s: %d samples in %d shard%s: --data '%s/%s-{000000..%06d}.tar'\n", split, n, nshards,
               nshards == 1 ? "" : "s", o->out, split, nshards - 1);
    return rc;
}

static int int_arg(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return cg_error_set(CG_ERR_USAGE, "%s: \"%s\" is not an integer in [%d, %d]", flag, v, lo, hi);
    *out = (int)x;
    return CG_OK;
}

int cmd_data(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(data_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "fmnist") != 0) {
        cg_log_error("clipgrid data %s: the only export is \"fmnist\"", argv[1]);
        return 2;
    }
    export_opts o = {NULL, "png", "both", "en", "png", 0, 28, 90, 10000};
    static const struct option longs[] = {
        {"out", required_argument, 0, 'o'}, {"format", required_argument, 0, 'f'}, {"split", required_argument, 0, 's'},
        {"limit", required_argument, 0, 'n'}, {"size", required_argument, 0, 'z'}, {"quality", required_argument, 0, 'q'},
        {"shard-size", required_argument, 0, 'k'}, {"lang", required_argument, 0, 'l'},
        {"image-format", required_argument, 0, 'i'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int c, rc = CG_OK;
    argc--, argv++;
    while (!rc && (c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (c) {
        case 'o': o.out = optarg; break;
        case 'f': o.format = optarg; break;
        case 's': o.split = optarg; break;
        case 'l': o.lang = optarg; break;
        case 'i': o.image_format = optarg; break;
        case 'n': rc = int_arg("--limit", optarg, 1, 1 << 30, &o.limit); break;
        case 'z': rc = int_arg("--size", optarg, 1, 4096, &o.size); break;
        case 'q': rc = int_arg("--quality", optarg, 1, 100, &o.quality); break;
        case 'k': rc = int_arg("--shard-size", optarg, 1, 1 << 30, &o.shard_size); break;
        case 'h': fputs(data_usage, stdout); return 0;
        case ':': rc = cg_error_set(CG_ERR_USAGE, "%s needs a value", argv[optind - 1]); break;
        default: rc = cg_error_set(CG_ERR_USAGE, "unknown option \"%s\" (clipgrid data --help)", argv[optind - 1]); break;
        }
    }
    if (!rc && optind < argc) rc = cg_error_set(CG_ERR_USAGE, "unexpected argument \"%s\"", argv[optind]);
    if (!rc && !o.out) rc = cg_error_set(CG_ERR_USAGE, "clipgrid data fmnist needs --out DIR");
    if (!rc && strcmp(o.format, "png") && strcmp(o.format, "jpg") && strcmp(o.format, "wds"))
        rc = cg_error_set(CG_ERR_USAGE, "--format %s: choose png, jpg or wds", o.format);
    if (!rc && strcmp(o.image_format, "png") && strcmp(o.image_format, "jpg"))
        rc = cg_error_set(CG_ERR_USAGE, "--image-format %s: choose png or jpg", o.image_format);
    if (!rc && strcmp(o.split, "train") && strcmp(o.split, "test") && strcmp(o.split, "both"))
        rc = cg_error_set(CG_ERR_USAGE, "--split %s: choose train, test or both", o.split);
    if (!rc && strcmp(o.lang, "en") && strcmp(o.lang, "zh")) rc = cg_error_set(CG_ERR_USAGE, "--lang %s: choose en or zh", o.lang);
    if (rc) { cg_log_error("%s", cg_error_message()); return 2; }
    if ((rc = cg_mkdir_p(o.out))) { cg_log_error("%s", cg_error_message()); return 4; }
    const char *splits[2] = {"train", "test"};
    for (int k = 0; k < 2 && !rc; k++) {
        if (strcmp(o.split, "both") && strcmp(o.split, splits[k])) continue;
        fmnist_set s;
        if ((rc = fmnist_load(NULL, splits[k], &s))) break;
        int n = o.limit > 0 && o.limit < s.n ? o.limit : s.n;
        rc = !strcmp(o.format, "wds") ? export_shards(&o, &s, splits[k], n) : export_files(&o, &s, splits[k], n);
        fmnist_free(&s);
    }
    if (rc) { cg_log_error("%s", cg_error_message()); return 4; }
    return 0;
}
