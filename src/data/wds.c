/* wds.c — WebDataset shards: brace expansion of shard lists, and samples out of tar members.
 *
 * Reading: libarchive streams the tar (any compression filter) one member at a time. Members
 * are grouped as webdataset's tariterators.group_by_keys does; since the member that ends a
 * sample is the first of the next one, its header is kept "pending" (libarchive lets us read
 * its data later, as long as we do not ask for the next header first).
 */
#include "data/wds.h"

#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

#define MAX_PATHS 10000000      /* wds_expand: paths in one pattern list, and in one range */
#define MAX_FIELDS 64           /* fields in one sample before it is called broken */
#define BLOCK_SIZE (1 << 20)    /* archive_read_open_filename block */

/* ------------------------------------------------------------------ brace expansion */

/* One piece of a pattern: literal text, a list of alternatives, or a numeric range. */
typedef struct {
    const char *lit;        /* literal: lit[0..lit_n) */
    size_t lit_n;
    const char **alt;       /* list: alt[k][0..alt_n[k]) */
    size_t *alt_len;
    long long lo, count;    /* range: lo .. lo+count-1, printed with `width` digits */
    int width, n_alt, is_range;
} piece;

typedef struct {
    piece *p;
    int n, cap;
} pieces;

static piece *pieces_add(pieces *ps) {
    if (ps->n == ps->cap) ps->p = cg_xrealloc(ps->p, (size_t)(ps->cap = ps->cap ? ps->cap * 2 : 8) * sizeof *ps->p);
    piece *p = &ps->p[ps->n++];
    memset(p, 0, sizeof *p);
    return p;
}

static void pieces_free(pieces *ps) {
    for (int k = 0; k < ps->n; k++) {
        free(ps->p[k].alt);
        free(ps->p[k].alt_len);
    }
    free(ps->p);
    ps->p = NULL;
    ps->n = ps->cap = 0;
}

/* How many choices a piece offers (literal: one). */
static long long piece_choices(const piece *p) {
    return p->is_range ? p->count : p->n_alt ? p->n_alt : 1;
}

static int pattern_error(const char *pattern, size_t at, const char *what) {
    return cg_error_set(CG_ERR_CONFIG, "shard pattern \"%s\": %s at position %zu", pattern, what, at + 1);
}

/* Digits only, at most 18 of them. */
static int parse_count(const char *s, size_t n, long long *v) {
    if (n == 0 || n > 18) return 0;
    long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 1;
}

/* The inside of a brace group, pattern[a..b) (braces excluded), into p. */
static int parse_group(const char *pattern, size_t a, size_t b, piece *p) {
    const char *s = pattern + a;
    size_t n = b - a;
    if (memchr(s, ',', n)) {
        int k = 1;
        for (size_t i = 0; i < n; i++) k += s[i] == ',';
        p->alt = cg_xmalloc((size_t)k * sizeof *p->alt);
        p->alt_len = cg_xmalloc((size_t)k * sizeof *p->alt_len);
        size_t start = 0;
        for (size_t i = 0; i <= n; i++)
            if (i == n || s[i] == ',') {
                p->alt[p->n_alt] = s + start;
                p->alt_len[p->n_alt++] = i - start;
                start = i + 1;
            }
        return CG_OK;
    }
    const char *dots = NULL;
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '.' && s[i + 1] == '.') {
            dots = s + i;
            break;
        }
    if (!dots) return pattern_error(pattern, a - 1, "a brace group needs a range {a..b} or a list {x,y}");
    size_t n1 = (size_t)(dots - s), n2 = n - n1 - 2;
    long long lo, hi;
    if (!parse_count(s, n1, &lo)) return pattern_error(pattern, a, "range start is not a number");
    if (!parse_count(dots + 2, n2, &hi)) return pattern_error(pattern, a + n1 + 2, "range end is not a number");
    if (hi < lo) return pattern_error(pattern, a + n1 + 2, "range end is before its start");
    if (hi - lo >= MAX_PATHS) return pattern_error(pattern, a - 1, "range of more than 10000000 shards");
    p->is_range = 1;
    p->lo = lo;
    p->count = hi - lo + 1;
    p->width = (int)n1;
    return CG_OK;
}

/* Split pattern[a..b) (one "::" part) into pieces. */
static int parse_part(const char *pattern, size_t a, size_t b, pieces *ps) {
    if (a == b) return pattern_error(pattern, a, "empty shard pattern");
    size_t lit = a;
    for (size_t i = a; i < b; i++) {
        if (pattern[i] == '}') return pattern_error(pattern, i, "'}' without '{'");
        if (pattern[i] != '{') continue;
        size_t j = i + 1;
        while (j < b && pattern[j] != '}' && pattern[j] != '{') j++;
        if (j == b) return pattern_error(pattern, i, "'{' is never closed");
        if (pattern[j] == '{') return pattern_error(pattern, j, "nested braces are not supported");
        if (i > lit) {
            piece *p = pieces_add(ps);
            p->lit = pattern + lit;
            p->lit_n = i - lit;
        }
        int rc = parse_group(pattern, i + 1, j, pieces_add(ps));
        if (rc) return rc;
        i = j;
        lit = j + 1;
    }
    if (b > lit) {
        piece *p = pieces_add(ps);
        p->lit = pattern + lit;
        p->lit_n = b - lit;
    }
    return CG_OK;
}

/* Choice c of piece p appended to buf (which has room: see piece_max_len). */
static size_t piece_put(const piece *p, long long c, char *buf) {
    if (p->is_range) return (size_t)sprintf(buf, "%0*lld", p->width, p->lo + c);
    const char *s = p->n_alt ? p->alt[c] : p->lit;
    size_t n = p->n_alt ? p->alt_len[c] : p->lit_n;
    memcpy(buf, s, n);
    return n;
}

static size_t piece_max_len(const piece *p) {
    if (p->is_range) return (size_t)p->width + 20;
    if (!p->n_alt) return p->lit_n;
    size_t m = 0;
    for (int k = 0; k < p->n_alt; k++) m = p->alt_len[k] > m ? p->alt_len[k] : m;
    return m;
}

/* Append every path of one part (the cartesian product of its pieces, last piece fastest). */
static void expand_part(const pieces *ps, long long total, char **out) {
    size_t max = 1;
    for (int k = 0; k < ps->n; k++) max += piece_max_len(&ps->p[k]);
    char *buf = cg_xmalloc(max);
    for (long long idx = 0; idx < total; idx++) {
        long long rest = idx, div = total;
        size_t n = 0;
        for (int k = 0; k < ps->n; k++) {
            div /= piece_choices(&ps->p[k]);
            n += piece_put(&ps->p[k], rest / div, buf + n);
            rest %= div;
        }
        buf[n] = 0;
        out[idx] = cg_xstrdup(buf);
    }
    free(buf);
}

/* The number of paths of one part, or -1 when over MAX_PATHS. */
static long long part_total(const pieces *ps) {
    long long total = 1;
    for (int k = 0; k < ps->n; k++) {
        total *= piece_choices(&ps->p[k]);
        if (total > MAX_PATHS) return -1;
    }
    return total;
}

int wds_expand(const char *pattern, char ***paths, int *n) {
    *paths = NULL;
    *n = 0;
    size_t len = strlen(pattern), a = 0;
    char **out = NULL;
    long long count = 0;
    for (;;) {
        const char *sep = strstr(pattern + a, "::");
        size_t b = sep ? (size_t)(sep - pattern) : len;
        pieces ps = {0};
        int rc = parse_part(pattern, a, b, &ps);
        long long total = rc ? 0 : part_total(&ps);
        if (!rc && (total < 0 || count + total > MAX_PATHS))
            rc = pattern_error(pattern, a, "more than 10000000 shards");
        if (rc) {
            pieces_free(&ps);
            wds_free_paths(out, (int)count);
            return rc;
        }
        out = cg_xrealloc(out, (size_t)(count + total) * sizeof *out);
        expand_part(&ps, total, out + count);
        count += total;
        pieces_free(&ps);
        if (!sep) break;
        a = b + 2;
    }
    *paths = out;
    *n = (int)count;
    return CG_OK;
}

void wds_free_paths(char **paths, int n) {
    if (!paths) return;
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

/* ------------------------------------------------------------------ member names */

/* tariterators' metadata rules: a name without '/' that starts and ends with "__", or whose
 * first path component matches __[^/]*__ (skip_meta, anchored at the start). */
static int is_meta(const char *name) {
    size_t n = strlen(name);
    const char *slash = strchr(name, '/');
    if (!slash) return n >= 2 && strncmp(name, "__", 2) == 0 && strcmp(name + n - 2, "__") == 0;
    size_t c = (size_t)(slash - name);
    return c >= 4 && strncmp(name, "__", 2) == 0 && strncmp(name + c - 2, "__", 2) == 0;
}

/* tariterators.base_plus_ext's regex (quoted in tests/test_wds.c, which checks this function
 * against it through PCRE2 on random names), worked out by hand:
 *   - the last component has a dot after its first character: key up to that (first) dot;
 *   - the last component starts with a dot ("dir/.x"): the regex still matches, with key
 *     "dir/" and field "x", when the component before it has no dot (it becomes [^.]+);
 *   - otherwise (no dot in the last component, or a top-level ".x") it does not match. */
int wds_split_name(const char *name, size_t *key_len, size_t *field_at) {
    if (is_meta(name)) return 0;
    const char *slash = strrchr(name, '/');
    size_t last = slash ? (size_t)(slash - name) + 1 : 0;
    const char *dot = strchr(name + last, '.');
    if (!dot) return 0;
    size_t d = (size_t)(dot - name);
    if (d == last) {
        if (last == 0) return 0;
        size_t prev = last - 1;    /* the '/' ending the parent component */
        while (prev > 0 && name[prev - 1] != '/') prev--;
        if (memchr(name + prev, '.', last - prev)) return 0;
    }
    *key_len = d;
    *field_at = d + 1;
    return 1;
}

/* ------------------------------------------------------------------ reader */

struct wds_reader {
    struct archive *a;
    char *shard;             /* messages */
    int count_only;          /* wds_count: never read member data */
    int done;                /* end of the archive reached */
    int failed;              /* an error ended the shard: its code, repeated on later calls */
    char *error;             /* ... and its message */
    int pending;             /* `member` has been reached but belongs to the next sample */
    char *member;            /* name of the last member reached (messages) */
    int64_t member_size;
    int64_t n_members;       /* members reached (0: an error is in the tar's start) */
};

/* The sample being assembled. */
typedef struct {
    char *key;
    size_t key_n;
    char *fields[MAX_FIELDS];
    int n_fields;
    int image_rank;          /* index in image_fields of the image kept; -1 none */
    uint8_t *image;
    size_t image_n;
    char *txt, *json;        /* NUL-terminated */
    size_t txt_n, json_n;
    char why[128];           /* first problem found */
} assembly;

static const char *const image_fields[] = {"jpg", "jpeg", "png", "webp"};
#define N_IMAGE_FIELDS 4

static void assembly_free(assembly *s) {
    free(s->key);
    for (int k = 0; k < s->n_fields; k++) free(s->fields[k]);
    free(s->image);
    free(s->txt);
    free(s->json);
}

/* Record the error that ends the shard (code and message naming it), so later calls repeat it. */
static int reader_fail(wds_reader *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int reader_fail(wds_reader *r, int code, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cg_error_set(code, "%s: %s", r->shard, msg);
    r->failed = code;
    free(r->error);
    r->error = cg_xstrdup(cg_error_message());
    return code;
}

static const char *archive_why(wds_reader *r) {
    const char *e = archive_error_string(r->a);
    return e ? e : "no detail from libarchive";
}

static int open_common(struct archive *a, const char *name, int rc, wds_reader **out) {
    if (rc != ARCHIVE_OK) {   /* the file opened (wds_open checks), so libarchive's read-ahead found no tar */
        const char *e = archive_error_string(a);
        int code = cg_error_set(CG_ERR_FORMAT, "%s: not a readable tar (%s)", name, e ? e : "unknown format");
        archive_read_free(a);
        return code;
    }
    wds_reader *r = cg_xcalloc(1, sizeof *r);
    r->a = a;
    r->shard = cg_xstrdup(name);
    *out = r;
    return CG_OK;
}

static struct archive *new_archive(void) {
    struct archive *a = archive_read_new();
    if (!a) abort();
    archive_read_support_format_tar(a);
    archive_read_support_filter_all(a);   /* ARCHIVE_WARN for filters run as external programs: fine */
    return a;
}

int wds_open(const char *shard, wds_reader **out) {
    *out = NULL;
    int fd = open(shard, O_RDONLY | O_CLOEXEC);   /* a missing file is an I/O error, not a format one */
    if (fd < 0) return cg_error_set(CG_ERR_IO, "cannot open shard %s: %s", shard, strerror(errno));
    close(fd);
    struct archive *a = new_archive();
    return open_common(a, shard, archive_read_open_filename(a, shard, BLOCK_SIZE), out);
}

int wds_open_memory(const void *data, size_t n, const char *name, wds_reader **out) {
    *out = NULL;
    struct archive *a = new_archive();
    return open_common(a, name, archive_read_open_memory(a, data, n), out);
}

void wds_close(wds_reader *r) {
    if (!r) return;
    archive_read_free(r->a);
    free(r->shard);
    free(r->error);
    free(r->member);
    free(r);
}

/* Advance to the next member that webdataset would group: 1 (r->member set), 0 at the end,
 * or an error. Directories, links, metadata and names without an extension are passed over. */
static int next_member(wds_reader *r) {
    for (int retries = 0;;) {
        struct archive_entry *e;
        int rc = archive_read_next_header(r->a, &e);
        if (rc == ARCHIVE_EOF) {
            r->done = 1;
            return 0;
        }
        if (rc == ARCHIVE_RETRY && ++retries < 100) continue;   /* libarchive: "retry might succeed" */
        if (rc < ARCHIVE_WARN || rc == ARCHIVE_RETRY) {   /* (RETRY, -10, is above WARN, -20) */
            if (!r->n_members) return reader_fail(r, CG_ERR_FORMAT, "not a readable tar (%s)", archive_why(r));
            return reader_fail(r, CG_ERR_FORMAT, "truncated or corrupt after member %s (%s)", r->member, archive_why(r));
        }
        const char *name = archive_entry_pathname(e);
        if (!name) name = archive_entry_pathname_utf8(e);
        if (!name) continue;   /* a name libarchive cannot convert: tarfile would give none either */
        free(r->member);
        r->member = cg_xstrdup(name);
        r->n_members++;
        r->member_size = archive_entry_size(e);
        size_t kn, fa;
        if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e)) continue;
        if (!wds_split_name(name, &kn, &fa)) continue;
        if (r->member_size < 0) return reader_fail(r, CG_ERR_FORMAT, "member %s has a negative size", name);
        return 1;
    }
}

/* Read the current member's data (at most its declared size) into a malloc'd, NUL-terminated
 * buffer. The buffer grows with the data, so a header that lies about the size costs nothing. */
static int read_member(wds_reader *r, char **out, size_t *n) {
    size_t size = (size_t)r->member_size, cap = size < 65536 ? size + 1 : 65536, got = 0;
    char *buf = cg_xmalloc(cap);
    int soft = 0;
    while (got < size) {
        if (cap - 1 == got) {
            cap = cap * 2 - 1 < size + 1 ? cap * 2 - 1 : size + 1;
            buf = cg_xrealloc(buf, cap);
        }
        la_ssize_t k = archive_read_data(r->a, buf + got, cap - 1 - got);
        if ((k == ARCHIVE_WARN || k == ARCHIVE_RETRY) && ++soft < 100) continue;   /* no bytes, go on */
        if (k <= 0) {
            free(buf);
            if (k < 0) return reader_fail(r, CG_ERR_FORMAT, "truncated or corrupt data in member %s (%s)", r->member, archive_why(r));
            return reader_fail(r, CG_ERR_FORMAT, "member %s ends after %zu of its %zu bytes", r->member, got, size);
        }
        got += (size_t)k;
    }
    buf[got] = 0;
    *out = buf;
    *n = got;
    return CG_OK;
}

static int skip_member(wds_reader *r) {
    if (archive_read_data_skip(r->a) >= ARCHIVE_WARN) return CG_OK;
    return reader_fail(r, CG_ERR_FORMAT, "truncated or corrupt data in member %s (%s)", r->member, archive_why(r));
}

static void set_why(assembly *s, const char *fmt, const char *arg) {
    if (!s->why[0]) snprintf(s->why, sizeof s->why, fmt, arg);
}

static int image_rank(const char *field) {
    for (int k = 0; k < N_IMAGE_FIELDS; k++)
        if (strcmp(field, image_fields[k]) == 0) return k;
    return -1;
}

/* Keep what the sample needs from the current member (whose field is `field`, lower-cased). */
static int take_member(wds_reader *r, assembly *s, char *field) {
    for (int k = 0; k < s->n_fields; k++)
        if (strcmp(s->fields[k], field) == 0) {
            set_why(s, "duplicate field %s", field);
            free(field);
            return skip_member(r);
        }
    if (s->n_fields == MAX_FIELDS) {
        set_why(s, "more than %s fields", "64");
        free(field);
        return skip_member(r);
    }
    s->fields[s->n_fields++] = field;
    int rank = image_rank(field);
    int wanted = rank >= 0 ? s->image_rank < 0 || rank < s->image_rank : strcmp(field, "txt") == 0 || strcmp(field, "json") == 0;
    if (!wanted || r->count_only || s->why[0]) return skip_member(r);
    if (r->member_size > WDS_MAX_MEMBER) {
        snprintf(s->why, sizeof s->why, "member %.60s is %lld bytes, over the limit of %lld", r->member,
                 (long long)r->member_size, (long long)WDS_MAX_MEMBER);
        return skip_member(r);
    }
    char *data = NULL;
    size_t n = 0;
    int rc = read_member(r, &data, &n);
    if (rc) return rc;
    if (rank >= 0) {
        free(s->image);
        s->image = (uint8_t *)data;
        s->image_n = n;
        s->image_rank = rank;
    } else if (field[0] == 't') {
        s->txt = data;
        s->txt_n = n;
    } else {
        s->json = data;
        s->json_n = n;
    }
    return CG_OK;
}

/* The caption: a non-empty txt, else a non-empty "caption" or "text" string of the json. */
static char *caption_of(assembly *s) {
    if (s->txt && s->txt[0]) {
        char *c = s->txt;
        s->txt = NULL;
        return c;
    }
    if (!s->json) return NULL;
    cJSON *j = cJSON_ParseWithLength(s->json, s->json_n);
    char *c = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "caption");
    if (!cJSON_IsString(v) || !v->valuestring[0]) v = cJSON_GetObjectItemCaseSensitive(j, "text");
    if (cJSON_IsString(v) && v->valuestring[0]) c = cg_xstrdup(v->valuestring);
    cJSON_Delete(j);
    return c;
}

/* Hand the assembled sample over to the caller's wds_sample. */
static void finish(assembly *s, wds_sample *out) {
    out->key = s->key;
    s->key = NULL;
    out->image = s->image;
    out->image_n = s->image_n;
    s->image = NULL;
    out->caption = caption_of(s);
    if (s->why[0]) {
        snprintf(out->why, sizeof out->why, "%s", s->why);
    } else if (!out->image || !out->caption) {
        char list[96] = "";
        size_t n = 0;
        for (int k = 0; k < s->n_fields && n < sizeof list; k++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", k ? ", " : "", s->fields[k]);
        snprintf(out->why, sizeof out->why, "%s (fields: %s)",
                 !out->image && !out->caption ? "no image and no caption" : !out->image ? "no image" : "no caption", list);
    }
    out->ok = !out->why[0];
    assembly_free(s);
}

static char *lower_field(const char *name, size_t at) {
    char *f = cg_xstrdup(name + at);
    for (char *p = f; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    return f;
}

int wds_next(wds_reader *r, wds_sample *out) {
    memset(out, 0, sizeof *out);
    if (r->failed) return cg_error_set(r->failed, "%s", r->error);   /* the shard ended with this error */
    assembly s = {.image_rank = -1};
    for (;;) {
        if (!r->pending) {
            int rc = r->done ? 0 : next_member(r);
            if (rc > 1 && s.key) break;   /* a bad header: the sample so far was read whole; the error comes next call */
            if (rc > 1) {
                assembly_free(&s);
                return rc;
            }
            if (rc == 0) break;
        }
        size_t kn, fa;
        wds_split_name(r->member, &kn, &fa);
        if (s.key && (kn != s.key_n || memcmp(r->member, s.key, kn) != 0)) {
            r->pending = 1;    /* the first member of the next sample */
            break;
        }
        r->pending = 0;
        if (!s.key) {
            s.key = cg_xmalloc(kn + 1);
            memcpy(s.key, r->member, kn);
            s.key[kn] = 0;
            s.key_n = kn;
        }
        int rc = take_member(r, &s, lower_field(r->member, fa));
        if (rc) {
            assembly_free(&s);
            return rc;
        }
    }
    if (!s.key) return 0;
    finish(&s, out);
    return 1;
}

void wds_sample_free(wds_sample *s) {
    if (!s) return;
    free(s->key);
    free(s->image);
    free(s->caption);
    s->key = NULL;
    s->image = NULL;
    s->caption = NULL;
}

int wds_count(const char *shard, int64_t *n) {
    *n = 0;
    wds_reader *r;
    int rc = wds_open(shard, &r);
    if (rc) return rc;
    r->count_only = 1;
    wds_sample s;
    while ((rc = wds_next(r, &s)) == 1) {
        ++*n;
        wds_sample_free(&s);
    }
    wds_close(r);
    return rc;
}
