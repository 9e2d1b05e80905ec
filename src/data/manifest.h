/* manifest.h — image–caption pairs listed in a file: CSV/TSV, JSONL, Chinese-CLIP.
 *
 *   CSV/TSV (open_clip's --dataset-type csv): a header row names the columns; img_key (default
 *     "filepath") and caption_key (default "title") pick them; sep is ',' or '\t' (open_clip's
 *     default for .csv is '\t' via --csv-separator; here the default follows the file suffix:
 *     .tsv -> tab, .csv -> comma). RFC 4180 quoting ("a, b", "" for a quote, newlines inside
 *     quotes) is honoured; a UTF-8 BOM at the start is dropped, lines end in LF, CRLF or CR,
 *     blank lines are not rows. Image paths are relative to the manifest's directory unless
 *     absolute.
 *   JSONL: one object per line, {"image": path, "caption": text} (also "file_name"/"text" as
 *     Hugging Face image folders write them).
 *   Chinese-CLIP: a JSONL of {"text_id", "text", "image_ids": [...]} plus an image TSV of
 *     `image_id<TAB>base64(jpeg|png)` lines; every (text, image id) pair is one sample. The TSV is
 *     memory-mapped and indexed by id; an id the TSV lacks makes its pairs skipped samples
 *     (manifest_skipped counts pairs there; bad TSV lines are warned and left out).
 *
 * A header that lacks a requested column is an error naming the file, the key and the columns
 * that exist. A row that cannot be used (wrong column count, bad JSON, empty caption, missing
 * key) is skipped and counted (manifest_skipped), with the first few warned as file:line.
 * Captions are UTF-8 strings owned by the manifest; reading an image's bytes happens later, in
 * the loader's threads (manifest_read_image is thread-safe).
 */
#ifndef CLIPGRID_DATA_MANIFEST_H
#define CLIPGRID_DATA_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

typedef struct manifest manifest;

typedef struct {
    const char *img_key, *caption_key;   /* CSV/TSV columns; NULL: "filepath", "title" */
    char sep;                            /* 0: from the suffix (.tsv tab, otherwise comma) */
    const char *image_tsv;               /* Chinese-CLIP image TSV (with a text JSONL) */
} manifest_opts;

int manifest_open_csv(const char *path, const manifest_opts *o, manifest **out);
int manifest_open_jsonl(const char *path, const manifest_opts *o, manifest **out);
void manifest_close(manifest *m);

int64_t manifest_count(const manifest *m);       /* usable samples */
int64_t manifest_skipped(const manifest *m);     /* rows dropped while reading the manifest */
const char *manifest_caption(const manifest *m, int64_t i);
/* What to call sample i in messages: its path, or "images.tsv:id 1076345". */
const char *manifest_image_name(const manifest *m, int64_t i);
/* The encoded image bytes of sample i (file contents or decoded base64), malloc'd. Errors
 * (missing file, bad base64) name the sample; the loader counts them as skipped. Base64 takes the
 * standard alphabet (what Chinese-CLIP's README writes) and also '-' and '_' (its loader reads
 * with urlsafe_b64decode, which takes both); padding may be missing; any other character is an
 * error (Python would drop it silently). */
int manifest_read_image(const manifest *m, int64_t i, uint8_t **data, size_t *n);

/* The same readers on bytes in memory (tests, fuzzing). `name` stands for the file: messages
 * use it, its suffix picks the CSV separator, its directory resolves relative image paths. The
 * text is not referenced after the call. A Chinese-CLIP image TSV (o->image_tsv) is still a
 * file. manifest_open_* map the file and call these. */
int manifest_parse_csv(const char *name, const char *text, size_t len, const manifest_opts *o, manifest **out);
int manifest_parse_jsonl(const char *name, const char *text, size_t len, const manifest_opts *o, manifest **out);

#endif
