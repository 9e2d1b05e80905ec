/* manifest.c — image–caption manifests: CSV/TSV, JSONL and Chinese-CLIP (JSONL + image TSV).
 *
 * Memory: every string a manifest keeps (captions, resolved image paths, Chinese-CLIP sample
 * names) lives NUL-terminated in one growing blob; a sample is two 64-bit offsets. A manifest
 * of millions of rows therefore costs its text plus 16 bytes a row, and no malloc per row.
 * A Chinese-CLIP image TSV stays memory-mapped; an open-addressing table maps each image id to
 * the (offset, length) of its base64 text, decoded only when manifest_read_image asks.
 *
 * After opening, a manifest is read-only, so every accessor is thread-safe.
 */
#include "data/manifest.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"

#define MAX_WARNINGS 5           /* skipped rows warned one by one; the rest only counted */
#define NO_NAME UINT32_MAX       /* tsv_entry.name before a sample refers to the image */
#define EMPTY_SLOT UINT32_MAX    /* free place in the id hash table */

/* One image of a Chinese-CLIP TSV: where its base64 text stands in the mapping. */
typedef struct {
    int64_t id;
    uint64_t off;        /* base64 text: tsv[off .. off+len) */
    uint32_t len;
    uint32_t name;       /* index in manifest.names once a sample refers to it, else NO_NAME */
} tsv_entry;

struct manifest {
    char *path;                  /* the manifest as the caller named it (messages) */
    char *blob;                  /* every string, NUL-terminated, back to back */
    size_t blob_n, blob_cap;
    uint64_t *caption;           /* per sample: blob offset of the caption */
    uint64_t *image;             /* per sample: blob offset of the image path, or TSV entry */
    int64_t n, cap, skipped;
    int warned;                  /* skipped rows warned so far */
    /* Chinese-CLIP mode (tsv_path != NULL) */
    char *tsv_path;
    char *tsv;                   /* mmap()ed image TSV (NULL when empty) */
    size_t tsv_len;
    tsv_entry *entries;          /* the TSV's images in file order */
    uint32_t n_entries;
    uint32_t *slots;             /* id -> entry index: open addressing, power-of-two size */
    size_t n_slots;
    uint64_t *names;             /* blob offsets of "<tsv>:id <id>", for images samples use */
    uint32_t n_names;
};

/* ------------------------------------------------------------------ storage */

static manifest *manifest_new(const char *path) {
    manifest *m = cg_xcalloc(1, sizeof *m);
    m->path = cg_xstrdup(path);
    return m;
}

/* Append a ++ b (either may be empty) and a NUL to the blob; return the offset. */
static uint64_t blob_add2(manifest *m, const char *a, size_t an, const char *b, size_t bn) {
    size_t need = m->blob_n + an + bn + 1;
    if (need > m->blob_cap) {
        size_t cap = m->blob_cap ? m->blob_cap : 4096;
        while (cap < need) cap *= 2;
        m->blob = cg_xrealloc(m->blob, cap);
        m->blob_cap = cap;
    }
    uint64_t off = m->blob_n;
    if (an) memcpy(m->blob + m->blob_n, a, an);
    if (bn) memcpy(m->blob + m->blob_n + an, b, bn);
    m->blob[need - 1] = 0;
    m->blob_n = need;
    return off;
}

static uint64_t blob_add(manifest *m, const char *s, size_t n) { return blob_add2(m, s, n, NULL, 0); }

static void add_sample(manifest *m, uint64_t caption, uint64_t image) {
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->caption = cg_xrealloc(m->caption, (size_t)m->cap * sizeof *m->caption);
        m->image = cg_xrealloc(m->image, (size_t)m->cap * sizeof *m->image);
    }
    m->caption[m->n] = caption;
    m->image[m->n] = image;
    m->n++;
}

/* Count a dropped row and warn about the first few, as file:line. */
static void skip_what(manifest *m, long long line, const char *why, const char *what) {
    m->skipped++;
    if (m->warned++ < MAX_WARNINGS) cg_log_warn("%s:%lld: %s; %s skipped", m->path, line, why, what);
}

static void skip_row(manifest *m, long long line, const char *why) { skip_what(m, line, why, "row"); }
/* Chinese-CLIP: one (text, image id) pair of a line is dropped, the line's other pairs kept. */
static void skip_pair(manifest *m, long long line, const char *why) { skip_what(m, line, why, "pair"); }

/* After parsing: one line for the skipped rows that were not warned one by one. */
static void report_skipped(const manifest *m) {
    if (m->skipped > MAX_WARNINGS)
        cg_log_warn("%s: %lld skipped in all (the first %d shown)", m->path, (long long)m->skipped, MAX_WARNINGS);
}

/* Image path as stored: absolute paths as they are, relative ones under the manifest's directory. */
static uint64_t add_image_path(manifest *m, const char *p, size_t n) {
    const char *slash = strrchr(m->path, '/');
    size_t dn = (p[0] == '/' || !slash) ? 0 : (size_t)(slash - m->path) + 1;
    return blob_add2(m, m->path, dn, p, n);
}

/* Map a whole file read-only. An empty file gives *data = NULL, *len = 0. */
static int map_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cg_error_set(CG_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cg_error_set(CG_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int rc = cg_error_set(CG_ERR_IO, "cannot map %s: %s", path, strerror(errno));
            close(fd);
            return rc;
        }
        *data = p;
        *len = (size_t)st.st_size;
    }
    close(fd);
    return CG_OK;
}

static void unmap_file(char *data, size_t len) {
    if (data) munmap(data, len);
}

/* A UTF-8 byte order mark at the very start of a file is not text. */
static size_t skip_bom(const char *s, size_t len) {
    return len >= 3 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF ? 3 : 0;
}

/* ------------------------------------------------------------------ CSV / TSV (RFC 4180) */

/* One parsed record: field k is buf[start[k] .. start[k]+len[k]) (quotes removed). */
typedef struct {
    char *buf;
    size_t n, cap;
    size_t *start, *len;
    int nf, fcap;
    int unterminated;        /* a quoted field ran to the end of the input */
} csv_record;

static void rec_putc(csv_record *r, char c) {
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->buf = cg_xrealloc(r->buf, r->cap);
    }
    r->buf[r->n++] = c;
}

static void rec_new_field(csv_record *r) {
    if (r->nf == r->fcap) {
        r->fcap = r->fcap ? r->fcap * 2 : 16;
        r->start = cg_xrealloc(r->start, (size_t)r->fcap * sizeof *r->start);
        r->len = cg_xrealloc(r->len, (size_t)r->fcap * sizeof *r->len);
    }
    r->start[r->nf] = r->n;
    r->len[r->nf] = 0;
    r->nf++;
}

static void rec_free(csv_record *r) {
    free(r->buf);
    free(r->start);
    free(r->len);
}

/* Parse the record at s[*pos..len): fields split by `sep`, ended by LF, CRLF or a lone CR.
 * A field that starts with '"' is quoted: separators and line breaks inside belong to it, ""
 * is one quote; text after the closing quote is kept (as Python's csv and pandas do). A quote
 * inside an unquoted field is an ordinary character. *line counts the line breaks passed.
 * Returns 0 at the end of the input, 1 with a record in r. */
static int csv_next_record(const char *s, size_t len, size_t *pos, char sep, long long *line, csv_record *r) {
    size_t i = *pos;
    if (i >= len) return 0;
    if (!r->buf) r->buf = cg_xmalloc(r->cap = 256);   /* never NULL, even for empty fields */
    r->n = 0;
    r->nf = 0;
    r->unterminated = 0;
    rec_new_field(r);
    int in_quotes = 0, at_field_start = 1;
    while (i < len) {
        char c = s[i++];
        if (in_quotes) {
            if (c == '"') {
                if (i < len && s[i] == '"') {
                    rec_putc(r, '"');
                    i++;
                } else {
                    in_quotes = 0;
                }
                continue;
            }
            if (c == '\n') ++*line;
            rec_putc(r, c);
            continue;
        }
        if (c == sep) {
            r->len[r->nf - 1] = r->n - r->start[r->nf - 1];
            rec_new_field(r);
            at_field_start = 1;
            continue;
        }
        if (c == '\n' || c == '\r') {
            if (c == '\r' && i < len && s[i] == '\n') i++;
            ++*line;
            break;
        }
        if (c == '"' && at_field_start) {
            in_quotes = 1;
            at_field_start = 0;
            continue;
        }
        at_field_start = 0;
        rec_putc(r, c);
    }
    r->len[r->nf - 1] = r->n - r->start[r->nf - 1];
    r->unterminated = in_quotes;
    *pos = i;
    return 1;
}

/* A record that is one empty, unquoted field: a blank line, skipped without a count. */
static int csv_blank(const char *s, size_t start, size_t end, const csv_record *r) {
    return r->nf == 1 && r->len[0] == 0 && (end == start || s[start] == '\n' || s[start] == '\r');
}

static int csv_find_column(const csv_record *h, const char *key) {
    size_t kn = strlen(key);
    for (int k = 0; k < h->nf; k++)
        if (h->len[k] == kn && memcmp(h->buf + h->start[k], key, kn) == 0) return k;
    return -1;
}

/* "file:1: no column "filepath" (columns: path, caption)". */
static int csv_missing_column(const char *name, long long line, const csv_record *h, const char *key) {
    size_t cap = 256, n = 0;
    char *cols = cg_xmalloc(cap);
    cols[0] = 0;
    for (int k = 0; k < h->nf && n < 800; k++) {
        size_t need = n + h->len[k] + 3;
        if (need > cap) cols = cg_xrealloc(cols, cap = need * 2);
        n += (size_t)sprintf(cols + n, "%s%.*s", k ? ", " : "", (int)h->len[k], h->buf + h->start[k]);
    }
    int rc = cg_error_set(CG_ERR_FORMAT, "%s:%lld: no column \"%s\" (columns: %s)", name, line, key, cols);
    free(cols);
    return rc;
}

/* The separator: the caller's, else from the suffix (.tsv: tab, anything else: comma). */
static char csv_separator(const char *name, const manifest_opts *o) {
    if (o && o->sep) return o->sep;
    size_t n = strlen(name);
    return n >= 4 && strcmp(name + n - 4, ".tsv") == 0 ? '\t' : ',';
}

int manifest_parse_csv(const char *name, const char *text, size_t len, const manifest_opts *o, manifest **out) {
    *out = NULL;
    const char *img_key = o && o->img_key ? o->img_key : "filepath";
    const char *cap_key = o && o->caption_key ? o->caption_key : "title";
    char sep = csv_separator(name, o);
    size_t pos = skip_bom(text, len);
    long long line = 1, rec_line = 1;
    csv_record hdr = {0}, row = {0};

    /* header: the first record that is not a blank line */
    int have = 0;
    while (!have) {
        size_t start = pos;
        rec_line = line;
        if (!csv_next_record(text, len, &pos, sep, &line, &hdr)) break;
        have = !csv_blank(text, start, pos, &hdr);
    }
    if (!have) {
        rec_free(&hdr);
        return cg_error_set(CG_ERR_FORMAT, "%s: empty file, no header row", name);
    }
    int ci = csv_find_column(&hdr, img_key), cc = csv_find_column(&hdr, cap_key);
    if (ci < 0 || cc < 0) {
        int rc = csv_missing_column(name, rec_line, &hdr, ci < 0 ? img_key : cap_key);
        rec_free(&hdr);
        return rc;
    }
    manifest *m = manifest_new(name);
    char why[96];
    for (;;) {
        size_t start = pos;
        rec_line = line;
        if (!csv_next_record(text, len, &pos, sep, &line, &row)) break;
        if (csv_blank(text, start, pos, &row)) continue;
        if (row.unterminated) {
            skip_row(m, rec_line, "quoted field not closed before the end of the file");
        } else if (row.nf != hdr.nf) {
            snprintf(why, sizeof why, "%d fields, the header has %d", row.nf, hdr.nf);
            skip_row(m, rec_line, why);
        } else if (memchr(row.buf + row.start[ci], 0, row.len[ci]) || memchr(row.buf + row.start[cc], 0, row.len[cc])) {
            skip_row(m, rec_line, "NUL byte in a field");   /* binary data: no C string holds it */
        } else if (row.len[ci] == 0) {
            snprintf(why, sizeof why, "empty \"%.40s\"", img_key);
            skip_row(m, rec_line, why);
        } else if (row.len[cc] == 0) {
            snprintf(why, sizeof why, "empty \"%.40s\"", cap_key);
            skip_row(m, rec_line, why);
        } else {
            uint64_t img = add_image_path(m, row.buf + row.start[ci], row.len[ci]);
            uint64_t cap = blob_add(m, row.buf + row.start[cc], row.len[cc]);
            add_sample(m, cap, img);
        }
    }
    rec_free(&hdr);
    rec_free(&row);
    report_skipped(m);
    *out = m;
    return CG_OK;
}

int manifest_open_csv(const char *path, const manifest_opts *o, manifest **out) {
    char *text;
    size_t len;
    *out = NULL;
    int rc = map_file(path, &text, &len);
    if (rc) return rc;
    rc = manifest_parse_csv(path, text ? text : "", len, o, out);
    unmap_file(text, len);
    return rc;
}

/* ------------------------------------------------------------------ Chinese-CLIP image TSV */

static uint64_t hash_id(int64_t id) {   /* splitmix64 finaliser */
    uint64_t x = (uint64_t)id + 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static tsv_entry *tsv_lookup(const manifest *m, int64_t id) {
    if (!m->n_slots) return NULL;
    size_t mask = m->n_slots - 1;
    for (size_t k = hash_id(id) & mask;; k = (k + 1) & mask) {
        uint32_t e = m->slots[k];
        if (e == EMPTY_SLOT) return NULL;
        if (m->entries[e].id == id) return &m->entries[e];
    }
}

/* Add an image unless its id is there already (then return 0: the first one counts). */
static int tsv_insert(manifest *m, int64_t id, uint64_t off, uint32_t len) {
    size_t mask = m->n_slots - 1;
    for (size_t k = hash_id(id) & mask;; k = (k + 1) & mask) {
        uint32_t e = m->slots[k];
        if (e == EMPTY_SLOT) {
            m->slots[k] = m->n_entries;
            m->entries[m->n_entries++] = (tsv_entry){.id = id, .off = off, .len = len, .name = NO_NAME};
            return 1;
        }
        if (m->entries[e].id == id) return 0;
    }
}

/* A decimal int64 (optional '-') filling s[0..n) exactly. */
static int parse_id(const char *s, size_t n, int64_t *id) {
    size_t i = 0;
    int neg = 0;
    if (n && s[0] == '-') neg = 1, i = 1;
    if (i == n || n - i > 18) return 0;
    int64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *id = neg ? -v : v;
    return 1;
}

/* Index the TSV's `id<TAB>base64` lines. Bad lines and repeated ids are warned (a few) and left
 * out; they are not manifest rows, so manifest_skipped does not count them. */
static int tsv_index(manifest *m) {
    const char *s = m->tsv;
    size_t len = m->tsv_len, lines = 1;
    for (size_t i = 0; i < len; i++) lines += s[i] == '\n';
    if (lines >= UINT32_MAX / 2)
        return cg_error_set(CG_ERR_FORMAT, "%s: %zu lines, more images than an index holds", m->tsv_path, lines);
    m->n_slots = 16;
    while (m->n_slots < 2 * lines) m->n_slots *= 2;     /* load factor <= 1/2 */
    m->slots = cg_xmalloc(m->n_slots * sizeof *m->slots);
    memset(m->slots, 0xFF, m->n_slots * sizeof *m->slots);
    m->entries = cg_xmalloc(lines * sizeof *m->entries);
    int warned = 0;
    long long line = 0;
    for (size_t i = skip_bom(s, len); i < len;) {
        line++;
        const char *nl = memchr(s + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - s) : len, next = nl ? end + 1 : len;
        if (end > i && s[end - 1] == '\r') end--;
        if (end == i) {            /* blank line */
            i = next;
            continue;
        }
        const char *tab = memchr(s + i, '\t', end - i);
        size_t b64 = tab ? (size_t)(tab - s) + 1 : 0;
        int64_t id;
        const char *why = NULL;
        if (!tab) why = "no tab between image id and base64";
        else if (!parse_id(s + i, b64 - 1 - i, &id)) why = "image id is not an integer";
        else if (end - b64 >= UINT32_MAX) why = "base64 longer than 4 GiB";
        else if (!tsv_insert(m, id, b64, (uint32_t)(end - b64))) why = "repeated image id (the first is used)";
        if (why && warned++ < MAX_WARNINGS) cg_log_warn("%s:%lld: %s; line ignored", m->tsv_path, line, why);
        i = next;
    }
    if (warned > MAX_WARNINGS) cg_log_warn("%s: %d lines ignored in all", m->tsv_path, warned);
    return CG_OK;
}

static int tsv_open(manifest *m, const char *path) {
    m->tsv_path = cg_xstrdup(path);
    int rc = map_file(path, &m->tsv, &m->tsv_len);
    if (rc) return rc;
    return tsv_index(m);
}

/* ------------------------------------------------------------------ JSONL */

/* A string member, or NULL when absent; *bad when present but not a string. */
static const char *json_string(const cJSON *obj, const char *key, int *bad) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return NULL;
    if (!cJSON_IsString(v) || !v->valuestring) {
        *bad = 1;
        return NULL;
    }
    return v->valuestring;
}

/* The first of two keys present: "image" else "file_name", "caption" else "text". */
static const char *json_either(const cJSON *obj, const char *k1, const char *k2, int *bad) {
    const char *s = json_string(obj, k1, bad);
    return s || *bad ? s : json_string(obj, k2, bad);
}

static void jsonl_plain_row(manifest *m, const cJSON *obj, long long line) {
    int bad_img = 0, bad_cap = 0;
    const char *img = json_either(obj, "image", "file_name", &bad_img);
    const char *cap = json_either(obj, "caption", "text", &bad_cap);
    if (bad_img || bad_cap) skip_row(m, line, bad_img ? "image path is not a string" : "caption is not a string");
    else if (!img || !cap) skip_row(m, line, !img ? "no \"image\" or \"file_name\"" : "no \"caption\" or \"text\"");
    else if (!*img) skip_row(m, line, "empty image path");
    else if (!*cap) skip_row(m, line, "empty caption");
    else {
        uint64_t i = add_image_path(m, img, strlen(img));
        add_sample(m, blob_add(m, cap, strlen(cap)), i);
    }
}

/* An integral JSON number that fits in int64. */
static int json_id(const cJSON *v, int64_t *id) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= -9.2e18 && d <= 9.2e18) || d != floor(d)) return 0;
    *id = (int64_t)d;
    return 1;
}

/* {"text_id", "text", "image_ids": [...]}: one sample per image id found in the TSV. */
static void jsonl_cnclip_row(manifest *m, const cJSON *obj, long long line) {
    int bad = 0;
    const char *text = json_string(obj, "text", &bad);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(obj, "image_ids");
    const char *why = !text ? (bad ? "\"text\" is not a string" : "no \"text\"")
                      : !*text ? "empty \"text\""
                      : !cJSON_IsArray(ids) ? (ids ? "\"image_ids\" is not an array" : "no \"image_ids\"") : NULL;
    if (why) {
        skip_row(m, line, why);
        return;
    }
    uint64_t cap = UINT64_MAX;
    char msg[160];
    const cJSON *v;
    cJSON_ArrayForEach(v, ids) {
        int64_t id;
        if (!json_id(v, &id)) {
            skip_pair(m, line, "an image id is not an integer");
            continue;
        }
        tsv_entry *e = tsv_lookup(m, id);
        if (!e) {
            snprintf(msg, sizeof msg, "image id %lld not in %.100s", (long long)id, m->tsv_path);
            skip_pair(m, line, msg);
            continue;
        }
        if (e->name == NO_NAME) {  /* the first sample of this image: give it a name */
            char idbuf[32];
            int k = snprintf(idbuf, sizeof idbuf, ":id %lld", (long long)id);
            if (m->n_names % 1024 == 0) m->names = cg_xrealloc(m->names, (m->n_names + 1024) * sizeof *m->names);
            m->names[m->n_names] = blob_add2(m, m->tsv_path, strlen(m->tsv_path), idbuf, (size_t)k);
            e->name = m->n_names++;
        }
        if (cap == UINT64_MAX) cap = blob_add(m, text, strlen(text));   /* once per text, shared by its pairs */
        add_sample(m, cap, (uint64_t)(e - m->entries));
    }
}

/* Is s[0..n) only JSON whitespace? */
static int json_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

int manifest_parse_jsonl(const char *name, const char *text, size_t len, const manifest_opts *o, manifest **out) {
    *out = NULL;
    manifest *m = manifest_new(name);
    if (o && o->image_tsv) {
        int rc = tsv_open(m, o->image_tsv);
        if (rc) {
            manifest_close(m);
            return rc;
        }
    }
    long long line = 0;
    for (size_t i = skip_bom(text, len); i < len;) {
        line++;
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        const char *s = text + i;
        size_t n = end - i;
        i = nl ? end + 1 : len;
        if (json_blank(s, n)) continue;
        const char *stop = NULL;
        cJSON *obj = cJSON_ParseWithLengthOpts(s, n, &stop, 0);
        if (!obj || !stop || !json_blank(stop, n - (size_t)(stop - s))) skip_row(m, line, "not valid JSON");
        else if (!cJSON_IsObject(obj)) skip_row(m, line, "not a JSON object");
        else if (m->tsv_path) jsonl_cnclip_row(m, obj, line);
        else jsonl_plain_row(m, obj, line);
        cJSON_Delete(obj);
    }
    report_skipped(m);
    *out = m;
    return CG_OK;
}

int manifest_open_jsonl(const char *path, const manifest_opts *o, manifest **out) {
    char *text;
    size_t len;
    *out = NULL;
    int rc = map_file(path, &text, &len);
    if (rc) return rc;
    rc = manifest_parse_jsonl(path, text ? text : "", len, o, out);
    unmap_file(text, len);
    return rc;
}

/* ------------------------------------------------------------------ access */

void manifest_close(manifest *m) {
    if (!m) return;
    unmap_file(m->tsv, m->tsv_len);
    free(m->slots);
    free(m->entries);
    free(m->names);
    free(m->tsv_path);
    free(m->blob);
    free(m->caption);
    free(m->image);
    free(m->path);
    free(m);
}

int64_t manifest_count(const manifest *m) { return m->n; }
int64_t manifest_skipped(const manifest *m) { return m->skipped; }

const char *manifest_caption(const manifest *m, int64_t i) {
    return i >= 0 && i < m->n ? m->blob + m->caption[i] : NULL;
}

const char *manifest_image_name(const manifest *m, int64_t i) {
    if (i < 0 || i >= m->n) return NULL;
    return m->blob + (m->tsv_path ? m->names[m->entries[m->image[i]].name] : m->image[i]);
}

/* Base64 digit value of c (standard and URL-safe alphabets), or -1. */
static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Decode s[0..n): '=' padding optional but, when present, only at the end and completing a
 * group of 4 (as Python's b64decode, which Chinese-CLIP uses, minus its silent skipping of
 * foreign characters). Returns 0, or -1 with *bad the offset of the first offending character
 * (n when the length itself is wrong). */
static int b64_decode(const char *s, size_t n, uint8_t **out, size_t *out_n, size_t *bad) {
    size_t data = n;
    while (data > 0 && s[data - 1] == '=' && n - data < 2) data--;
    size_t pad = n - data;
    uint8_t *buf = cg_xmalloc(data / 4 * 3 + 3);
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    *out = NULL;
    *out_n = 0;
    for (size_t i = 0; i < data; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) {
            free(buf);
            *bad = i;
            return -1;
        }
        acc = (acc << 6 | (uint32_t)v) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[k++] = (uint8_t)(acc >> bits);
        }
    }
    if (data % 4 == 1 || (pad && (data + pad) % 4 != 0)) {   /* a lone 6-bit digit, or wrong padding */
        free(buf);
        *bad = n;
        return -1;
    }
    *out = buf;
    *out_n = k;
    return 0;
}

static int read_tsv_image(const manifest *m, int64_t i, uint8_t **data, size_t *n) {
    const tsv_entry *e = &m->entries[m->image[i]];
    const char *name = m->blob + m->names[e->name];
    if (e->len == 0) return cg_error_set(CG_ERR_FORMAT, "%s: empty base64 image", name);
    size_t bad;
    if (b64_decode(m->tsv + e->off, e->len, data, n, &bad) != 0) {
        if (bad == e->len)
            return cg_error_set(CG_ERR_FORMAT, "%s: base64 of %llu characters has a wrong length or padding", name,
                                (unsigned long long)e->len);
        return cg_error_set(CG_ERR_FORMAT, "%s: bad base64 character 0x%02x at offset %zu", name,
                            (unsigned char)m->tsv[e->off + bad], bad);
    }
    return CG_OK;
}

int manifest_read_image(const manifest *m, int64_t i, uint8_t **data, size_t *n) {
    *data = NULL;
    *n = 0;
    if (i < 0 || i >= m->n)
        return cg_error_set(CG_ERR_STATE, "%s: sample %lld out of range (%lld samples)", m->path, (long long)i, (long long)m->n);
    if (m->tsv_path) return read_tsv_image(m, i, data, n);
    const char *path = m->blob + m->image[i];
    char *buf;
    size_t len;
    int rc = cg_file_read(path, &buf, &len);
    if (rc) return rc;
    if (len == 0) {
        free(buf);
        return cg_error_set(CG_ERR_FORMAT, "%s: empty image file", path);
    }
    *data = (uint8_t *)buf;
    *n = len;
    return CG_OK;
}
