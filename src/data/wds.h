/* wds.h — WebDataset tar shards, read sequentially through libarchive.
 *
 * Shard lists use WebDataset's brace notation: "data-{000000..000099}.tar" (zero-padded ranges),
 * "{a,b,c}" alternatives, several groups in one pattern, and "::" between patterns (open_clip).
 * Members are grouped into samples by key exactly as webdataset's tariterators: the key is the
 * member path up to the first dot of its last component, the field the rest (lower-cased); a
 * new sample starts when the key changes (a sample's files must be adjacent); names like
 * "__x__" are metadata and skipped. The image is the first of jpg, jpeg, png, webp present; the
 * caption is the txt field, else json's "caption" or "text" string.
 *
 * A sample without an image or caption, a duplicate field, or a member over WDS_MAX_MEMBER is
 * returned with `ok = 0` and `why` saying what is wrong, so the loader counts it and moves on. A
 * shard that cannot be opened or is truncated ends with an error naming the shard and the member
 * reached; the loader reports it, counts the shard as skipped and continues with the next one.
 * Compressed tars (.tar.gz etc.) work through libarchive's filters.
 */
#ifndef CLIPGRID_DATA_WDS_H
#define CLIPGRID_DATA_WDS_H

#include <stddef.h>
#include <stdint.h>

#define WDS_MAX_MEMBER ((int64_t)256 << 20)

/* Expand a shard pattern into paths (malloc'd array of malloc'd strings). Errors (unbalanced
 * braces, a range of more than 10M, a..b with b < a) name the pattern and the position. */
int wds_expand(const char *pattern, char ***paths, int *n);
void wds_free_paths(char **paths, int n);

typedef struct wds_reader wds_reader;

typedef struct {
    char *key;               /* e.g. "000000123" or "dir/abc" */
    uint8_t *image;          /* encoded image bytes, malloc'd; NULL if none */
    size_t image_n;
    char *caption;           /* UTF-8, malloc'd; NULL if none */
    int ok;                  /* 1: has image and caption */
    char why[128];           /* when !ok: "no image (fields: txt, json)", "duplicate field jpg", ... */
} wds_sample;

int wds_open(const char *shard, wds_reader **out);
/* Next sample: returns 1 and fills s, 0 at the end of the shard, or an error code (message
 * names the shard). */
int wds_next(wds_reader *r, wds_sample *s);
void wds_sample_free(wds_sample *s);
void wds_close(wds_reader *r);

/* Count samples in a shard without keeping the data (used to size an epoch). */
int wds_count(const char *shard, int64_t *n);

#endif
