/* text_util.h — pieces shared by the tokenizers (internal to src/text/).
 *
 * Code points are uint32_t. Character properties come from utf8proc (Debian's libutf8proc);
 * the few rules below reproduce what Python's str methods do, since the reference tokenizers
 * are Python code:
 *   - tx_utf8_decode drops bytes that do not start a valid UTF-8 sequence, exactly like
 *     bytes.decode("utf-8", "ignore") (strict UTF-8: no overlongs, no surrogates, <= U+10FFFF);
 *   - tx_py_isspace is str.isspace() (bidi class WS/B/S or category Zs);
 *   - tx_py_lower is str.lower(): the simple lower-case mapping plus the full mapping of
 *     U+0130 and the Final_Sigma rule, the only two differences in Unicode's SpecialCasing
 *     that Python applies.
 */
#ifndef CLIPGRID_TEXT_UTIL_H
#define CLIPGRID_TEXT_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Decode `n` bytes into `out` (room for n code points); returns the number written. */
size_t tx_utf8_decode(const char *s, size_t n, uint32_t *out);
/* 1 when s[0..n) is valid UTF-8. */
int tx_utf8_valid(const char *s, size_t n);
/* Encode one code point (must be a valid scalar value); returns 1..4 bytes written. */
int tx_utf8_put(uint32_t cp, char *out);
/* Encode `n` code points; `out` needs 4*n bytes; returns bytes written (no NUL added). */
size_t tx_utf8_encode(const uint32_t *cps, size_t n, char *out);

int tx_py_isspace(uint32_t cp);
/* str.lower() of in[0..n); `out` needs room for 2*n code points; returns the count. */
size_t tx_py_lower(const uint32_t *in, size_t n, uint32_t *out);

/* Hash of a byte string (FNV-1a, 64 bit). */
uint64_t tx_hash_bytes(const void *p, size_t n);

/* ------------------------------------------------------------ string -> int map
 * Open addressing over (pointer, length) keys that the caller keeps alive (the map does not copy
 * them). Put overwrites, so a later duplicate wins — as a Python dict built in file order does. */
typedef struct {
    const char **keys;
    uint32_t *lens;
    int32_t *vals;
    size_t cap;      /* power of two */
    size_t count;
} tx_strmap;

void tx_strmap_init(tx_strmap *m, size_t expected);
void tx_strmap_free(tx_strmap *m);
void tx_strmap_put(tx_strmap *m, const char *key, size_t len, int32_t val);
/* -1 when absent. */
int32_t tx_strmap_get(const tx_strmap *m, const char *key, size_t len);

/* ------------------------------------------------------------ scratch memory
 * Encode calls must be thread-safe and allocation-light: each call carves its working arrays out
 * of a caller-provided stack buffer and falls back to the heap only for long inputs. */
typedef struct {
    unsigned char *mem;
    size_t cap, used;
    unsigned char *heap;    /* non-NULL when mem came from malloc */
} tx_scratch;

void tx_scratch_init(tx_scratch *s, void *stack_buf, size_t stack_len);
/* Make room for `bytes` in total from a fresh start (discarding what was handed out). */
void tx_scratch_reserve(tx_scratch *s, size_t bytes);
/* 16-byte aligned piece of the reserved memory; the caller reserved enough. */
void *tx_scratch_take(tx_scratch *s, size_t bytes);
void tx_scratch_free(tx_scratch *s);

/* ------------------------------------------------------------ files
 * Read a whole file, gunzipping it when it is gzip-compressed (zlib reads plain files as they are).
 * *out is NUL-terminated and must be free()d. Errors name the path. */
int tx_read_file_gz(const char *path, char **out, size_t *len);

/* Write text atomically, gzip-compressed when path ends in ".gz". */
int tx_write_text_maybe_gz(const char *path, const char *data, size_t len);

/* Python's html.unescape() of cps[0..n) into out (room for n code points: it never grows the
 * text); returns the output length. html_unescape.c. */
size_t tx_html_unescape(const uint32_t *cps, size_t n, uint32_t *out);

#endif
