/* text_util.c — UTF-8, Python-compatible character rules, a string map, scratch memory. */
#include "text/text_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <zlib.h>

#include "core/fileio.h"
#include "core/log.h"

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the valid sequence starting at s[0] (n bytes available), or 0 when invalid. */
static int utf8_seq(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char b = s[0];
    if (b < 0x80) { *cp = b; return 1; }
    if (b >= 0xC2 && b <= 0xDF) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (b >= 0xE0 && b <= 0xEF) {
        if (n < 3) return 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;   /* no surrogates */
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        if (n < 4) return 0;
        unsigned char lo = 0x80, hi = 0xBF;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
        if (s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
              ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        return 4;
    }
    return 0;
}

size_t tx_utf8_decode(const char *s, size_t n, uint32_t *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, k = 0;
    while (i < n) {
        if (p[i] < 0x80) { out[k++] = p[i++]; continue; }
        uint32_t cp;
        int len = utf8_seq(p + i, n - i, &cp);
        if (len == 0) { i++; continue; }   /* "ignore": drop the byte, resync on the next */
        out[k++] = cp;
        i += (size_t)len;
    }
    return k;
}

int tx_utf8_valid(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int len = utf8_seq(p + i, n - i, &cp);
        if (len == 0) return 0;
        i += (size_t)len;
    }
    return 1;
}

int tx_utf8_put(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t tx_utf8_encode(const uint32_t *cps, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (cps[i] < 0x80) out[k++] = (char)cps[i];
        else k += (size_t)tx_utf8_put(cps[i], out + k);
    }
    return k;
}

/* ------------------------------------------------------------------ Python str rules */

int tx_py_isspace(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F);
    if (cp > 0x10FFFF) return 0;
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    return p->bidi_class == UTF8PROC_BIDI_CLASS_WS || p->bidi_class == UTF8PROC_BIDI_CLASS_B ||
           p->bidi_class == UTF8PROC_BIDI_CLASS_S || p->category == UTF8PROC_CATEGORY_ZS;
}

/* Unicode "Cased": letters with case (Lu, Ll, Lt) or anything with a case mapping. */
static int is_cased(uint32_t cp) {
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT) return 1;
    return utf8proc_tolower((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp ||
           utf8proc_toupper((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp;
}

/* Unicode "Case_Ignorable": Mn, Me, Cf, Lm, Sk and the word-internal punctuation of UAX #29. */
static int is_case_ignorable(uint32_t cp) {
    switch (cp) {
    case 0x27: case 0x2E: case 0x3A: case 0x5E: case 0x60: case 0xA8: case 0xAD: case 0xAF:
    case 0xB4: case 0xB7: case 0xB8: case 0x387: case 0x5F4: case 0x2018: case 0x2019:
    case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07: case 0xFF0E:
    case 0xFF1A:
        return 1;
    default: break;
    }
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME || c == UTF8PROC_CATEGORY_CF ||
           c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_SK;
}

/* Final_Sigma: preceded by a cased letter and not followed by one (case-ignorables skipped). */
static int final_sigma(const uint32_t *s, size_t n, size_t i) {
    size_t j = i;
    int before = 0;
    while (j > 0) {
        uint32_t c = s[--j];
        if (is_case_ignorable(c)) continue;
        before = is_cased(c);
        break;
    }
    if (!before) return 0;
    for (j = i + 1; j < n; j++) {
        if (is_case_ignorable(s[j])) continue;
        return !is_cased(s[j]);
    }
    return 1;
}

size_t tx_py_lower(const uint32_t *in, size_t n, uint32_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = in[i];
        if (c < 0x80) {
            out[k++] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        } else if (c == 0x130) {          /* LATIN CAPITAL LETTER I WITH DOT ABOVE -> i + U+0307 */
            out[k++] = 'i';
            out[k++] = 0x307;
        } else if (c == 0x3A3) {          /* GREEK CAPITAL SIGMA: final form at the end of a word */
            out[k++] = final_sigma(in, n, i) ? 0x3C2 : 0x3C3;
        } else {
            out[k++] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
        }
    }
    return k;
}

/* ------------------------------------------------------------------ hashing, string map */

uint64_t tx_hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

void tx_strmap_init(tx_strmap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap <<= 1;
    m->cap = cap;
    m->count = 0;
    m->keys = cg_xcalloc(cap, sizeof *m->keys);
    m->lens = cg_xcalloc(cap, sizeof *m->lens);
    m->vals = cg_xcalloc(cap, sizeof *m->vals);
}

void tx_strmap_free(tx_strmap *m) {
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static void strmap_grow(tx_strmap *m) {
    tx_strmap bigger;
    tx_strmap_init(&bigger, m->cap);   /* doubles the capacity */
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) tx_strmap_put(&bigger, m->keys[i], m->lens[i], m->vals[i]);
    tx_strmap_free(m);
    *m = bigger;
}

void tx_strmap_put(tx_strmap *m, const char *key, size_t len, int32_t val) {
    if ((m->count + 1) * 2 > m->cap) strmap_grow(m);
    size_t mask = m->cap - 1, i = (size_t)tx_hash_bytes(key, len) & mask;
    while (m->keys[i]) {
        if (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0) {
            m->vals[i] = val;
            return;
        }
        i = (i + 1) & mask;
    }
    m->keys[i] = key;
    m->lens[i] = (uint32_t)len;
    m->vals[i] = val;
    m->count++;
}

int32_t tx_strmap_get(const tx_strmap *m, const char *key, size_t len) {
    if (!m->cap) return -1;
    size_t mask = m->cap - 1, i = (size_t)tx_hash_bytes(key, len) & mask;
    while (m->keys[i]) {
        if (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0) return m->vals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

/* ------------------------------------------------------------------ scratch */

void tx_scratch_init(tx_scratch *s, void *stack_buf, size_t stack_len) {
    s->mem = stack_buf;
    s->cap = stack_len;
    s->used = 0;
    s->heap = NULL;
}

void tx_scratch_reserve(tx_scratch *s, size_t bytes) {
    s->used = 0;
    if (bytes <= s->cap) return;
    free(s->heap);
    s->heap = cg_xmalloc(bytes);
    s->mem = s->heap;
    s->cap = bytes;
}

void *tx_scratch_take(tx_scratch *s, size_t bytes) {
    size_t at = (s->used + 15) & ~(size_t)15;
    if (at + bytes > s->cap) {   /* a sizing bug: fail loudly rather than overrun */
        cg_log_error("text: scratch overflow (%zu + %zu > %zu)", at, bytes, s->cap);
        abort();
    }
    s->used = at + bytes;
    return s->mem + at;
}

void tx_scratch_free(tx_scratch *s) {
    free(s->heap);
    s->heap = NULL;
    s->mem = NULL;
    s->cap = s->used = 0;
}

/* ------------------------------------------------------------------ files */

int tx_read_file_gz(const char *path, char **out, size_t *len) {
    *out = NULL;
    if (len) *len = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) return cg_error_set(CG_ERR_IO, "cannot open %s: %s", path, errno ? strerror(errno) : "zlib error");
    size_t cap = 1 << 16, n = 0;
    char *buf = cg_xmalloc(cap);
    for (;;) {
        if (cap - n < (1 << 15)) buf = cg_xrealloc(buf, cap *= 2);
        int got = gzread(f, buf + n, (unsigned)(cap - n - 1));
        if (got < 0) {
            int errnum = 0;
            const char *msg = gzerror(f, &errnum);
            int rc = cg_error_set(CG_ERR_FORMAT, "cannot read %s: %s", path, msg ? msg : "zlib error");
            gzclose(f);
            free(buf);
            return rc;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    gzclose(f);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return CG_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int tx_write_text_maybe_gz(const char *path, const char *data, size_t len) {
    if (!ends_with(path, ".gz")) return cg_file_write_atomic(path, data, len);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return cg_error_set(CG_ERR_STATE, "%s: zlib deflateInit2 failed", path);
    size_t cap = deflateBound(&zs, (uLong)len) + 64;
    unsigned char *out = cg_xmalloc(cap);
    zs.next_in = (Bytef *)(uintptr_t)data;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int zr = deflate(&zs, Z_FINISH);
    size_t outlen = cap - zs.avail_out;
    deflateEnd(&zs);
    if (zr != Z_STREAM_END) {
        free(out);
        return cg_error_set(CG_ERR_STATE, "%s: zlib deflate failed (%d)", path, zr);
    }
    int rc = cg_file_write_atomic(path, out, outlen);
    free(out);
    return rc;
}
