/* html_unescape.c — Python's html.unescape() over code points, for the CLIP text cleaning.
 *
 * A reference starts at '&' and is one of
 *   #DIGITS[;]   #xHEX[;] / #XHEX[;]   NAME[;]   (NAME: 1..32 characters other than \t \n \f space < & # ;)
 * Numeric ones map through the fix-up table (Windows-1252 for 0x80..0x9F, NUL and CR), become
 * U+FFFD when they are surrogates or beyond U+10FFFF, and vanish when they name a control
 * character or noncharacter. A name is looked up whole (with its ';' when present); failing that,
 * its longest prefix of length >= 2 that is an entity is replaced and the rest kept; failing
 * that, the text stays as it was. The tables are generated from Python's own (tools/).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/text_util.h"

typedef struct {
    const char *name;
    uint32_t cp0, cp1;
} html_entity;

#include "text/html_entities.inc"

#define N_ENTITIES (sizeof html_entities / sizeof *html_entities)

/* Entity for name[0..len) (ASCII), or NULL. The table is sorted by strcmp. */
static const html_entity *entity_find(const char *name, size_t len) {
    size_t lo = 0, hi = N_ENTITIES;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *e = html_entities[mid].name;
        size_t elen = strlen(e);
        /* byte comparison: the name may hold NUL characters (they never match) */
        int c = memcmp(e, name, elen < len ? elen : len);
        if (c == 0) c = elen < len ? -1 : elen > len ? 1 : 0;
        if (c == 0) return &html_entities[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int u32_in(const uint32_t *sorted, size_t n, uint32_t v) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sorted[mid] == v) return 1;
        if (sorted[mid] < v) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* Writes the replacement of numeric reference value `num` (already clamped); returns count. */
static size_t numeric_ref(uint64_t num, uint32_t *out) {
    for (size_t i = 0; i < sizeof html_charref_fix / sizeof *html_charref_fix; i++)
        if (html_charref_fix[i][0] == num) {
            out[0] = html_charref_fix[i][1];
            return 1;
        }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        out[0] = 0xFFFD;
        return 1;
    }
    if (u32_in(html_charref_drop, sizeof html_charref_drop / sizeof *html_charref_drop, (uint32_t)num)) return 0;
    out[0] = (uint32_t)num;
    return 1;
}

static int is_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static int hex_val(uint32_t c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}
static int is_name_char(uint32_t c) {
    return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' && c != ';';
}

/* Tries a reference at s[i] == '&'. On success writes its replacement to out, sets *consumed
 * (characters of input used, '&' included) and returns the count written; returns -1 if no
 * reference starts here. */
static long try_ref(const uint32_t *s, size_t n, size_t i, uint32_t *out, size_t *consumed) {
    size_t j = i + 1;
    if (j < n && s[j] == '#') {
        j++;
        uint64_t num = 0;
        const uint64_t clamp = 0x110000;   /* anything above is U+FFFD anyway */
        if (j < n && is_digit(s[j])) {
            while (j < n && is_digit(s[j])) {
                num = num * 10 + (s[j] - '0');
                if (num > clamp) num = clamp;
                j++;
            }
        } else if (j + 1 < n && (s[j] == 'x' || s[j] == 'X') && hex_val(s[j + 1]) >= 0) {
            j++;
            while (j < n && hex_val(s[j]) >= 0) {
                num = num * 16 + (uint64_t)hex_val(s[j]);
                if (num > clamp) num = clamp;
                j++;
            }
        } else {
            return -1;
        }
        if (j < n && s[j] == ';') j++;
        *consumed = j - i;
        return (long)numeric_ref(num, out);
    }
    /* named: up to 32 name characters, then an optional ';' */
    size_t len = 0;
    while (j + len < n && len < 32 && is_name_char(s[j + len])) len++;
    if (len == 0) return -1;
    size_t slen = len + (j + len < n && s[j + len] == ';' ? 1 : 0);
    /* the ASCII prefix of the name, as bytes (entity names are ASCII) */
    char name[34];
    size_t ascii = 0;
    while (ascii < slen && s[j + ascii] < 0x80) {
        name[ascii] = (char)s[j + ascii];
        ascii++;
    }
    *consumed = 1 + slen;
    const html_entity *e = NULL;
    size_t x = slen;
    if (ascii == slen) e = entity_find(name, slen);
    if (!e) {
        for (x = slen - 1; x >= 2; x--) {
            if (x > ascii) continue;
            if ((e = entity_find(name, x)) != NULL) break;
        }
    }
    if (!e) {   /* nothing matched: '&' + the name, unchanged */
        out[0] = '&';
        memcpy(out + 1, s + j, slen * sizeof *s);
        return (long)(1 + slen);
    }
    size_t k = 0;
    out[k++] = e->cp0;
    if (e->cp1) out[k++] = e->cp1;
    memcpy(out + k, s + j + x, (slen - x) * sizeof *s);
    return (long)(k + slen - x);
}

size_t tx_html_unescape(const uint32_t *s, size_t n, uint32_t *out) {
    size_t k = 0, i = 0;
    while (i < n) {
        if (s[i] != '&') {
            out[k++] = s[i++];
            continue;
        }
        size_t consumed = 0;
        long w = try_ref(s, n, i, out + k, &consumed);
        if (w < 0) {
            out[k++] = s[i++];
            continue;
        }
        k += (size_t)w;
        i += consumed;
    }
    return k;
}
