/* wds.h — WebDataset tar shards, read sequentially through libarchive.
 *
 * Shard lists use WebDataset's brace notation: "data-{000000..000099}.tar" (zero-padded ranges),
 * "{a,b,c}" alternatives, several groups in one pattern, and "::" between patterns (open_clip).
 * Members are grouped into samples by key exactly as webdataset's tariterators: the key is the
 * member path up to the first dot of its last component, the field the rest (lower-cased); a
 * new sample starts when the key changes (a sample's files must be adjacent); names like
 * "__x__" are metadata and skipped, as are directories, links and other non-regular members.
 * Field names are lower-cased in ASCII only (Python lower-cases all of Unicode; field names
 * are ASCII in practice). The image is the first of jpg, jpeg, png, webp present; the
 * caption is the txt field, else json's "caption" or "text" string.
 *
 * A sample without an image or caption (an empty txt counts as none), a duplicate field, or an
 * image/txt/json member over WDS_MAX_MEMBER (other fields are skipped unread, whatever their
 * size) is returned with `ok = 0` and `why` saying what is wrong, so the loader counts it and
 * moves on (webdataset raises on a duplicate; open_clip starts a new sample there). A
 * shard that cannot be opened or is truncated ends with an error naming the shard and the member
 * reached; the loader reports it, counts the shard as skipped and continues with the next one.
 * Compressed tars (.tar.gz etc.) work through libarchive's filters.
 */
#ifndef CLIPGRID_DATA_WDS_H
#define CLIPGRID_DATA_WDS_H

#include <stddef.h>
#include <stdint.h>

#define WDS_MAX_MEMBER ((int64_t)256 << 20)

/* Expand a shard pattern into paths (malloc'd array of malloc'd strings), first group slowest.
 * A range {a..b} is decimal, zero-padded to the width of a ("{000..099}", "{8..11}": 8 9 10 11);
 * a list {x,y,} may hold empty items; nested braces are not supported. Errors (unbalanced or
 * nested braces, a group that is neither a..b nor a list, a range of more than 10M or b < a,
 * more than 10M paths in all, an empty pattern between "::") name the pattern and the 1-based
 * position of the offending character. */
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

/* Count samples in a shard without keeping the data (used to size an epoch): every sample
 * wds_next would return, ok or not; member data is skipped, not read (a gzip shard is still
 * decompressed). */
int wds_count(const char *shard, int64_t *n);

/* A reader on a tar held in memory (tests, fuzzing); `name` labels messages. The bytes must
 * outlive the reader. */
int wds_open_memory(const void *data, size_t n, const char *name, wds_reader **out);

/* The webdataset rule for one member name (exposed for tests): 1 when the member belongs to a
 * sample, with the key name[0 .. *key_len) and the field from name + *field_at (not yet
 * lower-cased); 0 when webdataset skips it: metadata ("__x__", "__x__/..."), or no '.' in the
 * last path component where tariterators' base_plus_ext regex needs one. */
int wds_split_name(const char *name, size_t *key_len, size_t *field_at);

#endif
