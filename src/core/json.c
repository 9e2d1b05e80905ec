#include "core/json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"

/* ---- line table: a second, tiny scan of text that cJSON already accepted ---- */

typedef struct {
    const char *p, *end;
    int line;
    int *lines;
    int n, cap;
} line_scan;

static void ls_skip_ws(line_scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) {
        if (*s->p == '\n') s->line++;
        s->p++;
    }
}

static void ls_push(line_scan *s, int line) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->lines = cg_xrealloc(s->lines, (size_t)s->cap * sizeof *s->lines);
    }
    s->lines[s->n++] = line;
}

static void ls_skip_string(line_scan *s) {
    s->p++;  /* opening quote */
    while (s->p < s->end && *s->p != '"') {
        if (*s->p == '\\' && s->p + 1 < s->end) s->p++;
        s->p++;
    }
    if (s->p < s->end) s->p++;
}

static void ls_value(line_scan *s, int key_line, int depth) {
    ls_skip_ws(s);
    if (s->p >= s->end || depth > 1000) return;
    ls_push(s, key_line ? key_line : s->line);
    char c = *s->p;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        s->p++;
        for (;;) {
            ls_skip_ws(s);
            if (s->p >= s->end) return;
            if (*s->p == close) { s->p++; return; }
            if (*s->p == ',') { s->p++; continue; }
            int kl = 0;
            if (c == '{') {
                kl = s->line;
                ls_skip_string(s);
                ls_skip_ws(s);
                if (s->p < s->end && *s->p == ':') s->p++;
            }
            ls_value(s, kl, depth + 1);
        }
    } else if (c == '"') {
        ls_skip_string(s);
    } else {
        while (s->p < s->end && !strchr(",]} \t\r\n", *s->p)) s->p++;
    }
}

static void collect_items(const cJSON *item, cg_json_doc *doc, int *cap) {
    if (doc->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        doc->items = cg_xrealloc(doc->items, (size_t)*cap * sizeof *doc->items);
    }
    doc->items[doc->n++] = item;
    for (const cJSON *c = item->child; c && (cJSON_IsObject(item) || cJSON_IsArray(item)); c = c->next)
        collect_items(c, doc, cap);
}

int cg_json_parse(const char *path, const char *text, size_t len, cg_json_doc *doc) {
    memset(doc, 0, sizeof *doc);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        const char *at = end ? end : text;
        if (at < text || at > text + len) at = text;
        int line = 1, col = 1;
        for (const char *q = text; q < at; q++) {
            if (*q == '\n') { line++; col = 1; } else col++;
        }
        return cg_error_set(CG_ERR_CONFIG, "%s:%d:%d: malformed JSON near \"%.20s\"", path, line, col,
                            at < text + len ? at : "(end of file)");
    }
    doc->root = root;
    doc->path = cg_xstrdup(path);
    int cap = 0;
    collect_items(root, doc, &cap);
    line_scan s = {.p = text, .end = text + len, .line = 1};
    ls_value(&s, 0, 0);
    if (s.n == doc->n) {
        doc->lines = s.lines;
    } else {  /* should not happen on valid JSON; fall back to "no line" rather than wrong lines */
        free(s.lines);
        doc->lines = cg_xcalloc((size_t)doc->n, sizeof *doc->lines);
    }
    return CG_OK;
}

int cg_json_load(const char *path, cg_json_doc *doc) {
    char *text;
    size_t len;
    int rc = cg_file_read(path, &text, &len);
    if (rc) return rc;
    rc = cg_json_parse(path, text, len, doc);
    free(text);
    return rc;
}

void cg_json_free(cg_json_doc *doc) {
    cJSON_Delete(doc->root);
    free(doc->path);
    free(doc->items);
    free(doc->lines);
    memset(doc, 0, sizeof *doc);
}

int cg_json_line(const cg_json_doc *doc, const cJSON *item) {
    for (int i = 0; i < doc->n; i++)
        if (doc->items[i] == item) return doc->lines[i];
    return 0;
}

static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    int prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(int) * (lb + 1));
    }
    return prev[lb];
}

const char *cg_closest_word(const char *s, const char *const *candidates) {
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; candidates[i]; i++) {
        int d = edit_distance(s, candidates[i]);
        if (d < best_d) { best_d = d; best = candidates[i]; }
    }
    return best;
}

int cg_json_check_keys(const cg_json_doc *doc, const cJSON *obj, const char *const *allowed, const char *where) {
    for (const cJSON *c = obj->child; c; c = c->next) {
        int ok = 0;
        for (int i = 0; allowed[i]; i++)
            if (strcmp(c->string, allowed[i]) == 0) { ok = 1; break; }
        if (!ok) {
            const char *hint = cg_closest_word(c->string, allowed);
            return cg_error_set(CG_ERR_CONFIG, "%s:%d: unknown key \"%s\" in %s%s%s%s", doc->path,
                                cg_json_line(doc, c), c->string, where, hint ? " (did you mean \"" : "",
                                hint ? hint : "", hint ? "\"?)" : "");
        }
        for (const cJSON *d = obj->child; d != c; d = d->next)
            if (strcmp(c->string, d->string) == 0)
                return cg_error_set(CG_ERR_CONFIG, "%s:%d: key \"%s\" appears twice in %s (first on line %d)",
                                    doc->path, cg_json_line(doc, c), c->string, where, cg_json_line(doc, d));
    }
    return CG_OK;
}

static const char *type_name(const cJSON *item) {
    if (cJSON_IsObject(item)) return "an object";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsNull(item)) return "null";
    return "invalid";
}

int cg_json_want_type(const cg_json_doc *doc, const cJSON *item, int mask, const char *what) {
    if (item->type & mask) return CG_OK;
    const char *want = (mask & cJSON_Object) ? "an object" : (mask & cJSON_Array) ? "an array"
                     : (mask & cJSON_String) ? ((mask & cJSON_Number) ? "a string or number" : "a string")
                     : (mask & cJSON_Number) ? "a number" : (mask & (cJSON_True | cJSON_False)) ? "a boolean"
                     : "another type";
    return cg_error_set(CG_ERR_CONFIG, "%s:%d: %s must be %s, not %s", doc->path, cg_json_line(doc, item),
                        what, want, type_name(item));
}

char *cg_json_print(const cJSON *item, int pretty) {
    char *s = pretty ? cJSON_Print(item) : cJSON_PrintUnformatted(item);
    if (!s) cg_xmalloc(SIZE_MAX);
    return s;
}
