/* json.h — JSON documents on cJSON, with line numbers for error messages.
 *
 * cJSON parses; this module remembers on which line every value (or its key) stands, so that
 * a grid or config file error can say "grid.json:7: unknown key "bach_size" in "train"
 * (did you mean "batch_size"?)". Parse errors give line and column.
 *
 *   cg_json_doc doc;
 *   if (cg_json_load("grid.json", &doc)) -> cg_error_message() says what and where
 *   int line = cg_json_line(&doc, item);
 *   cg_json_free(&doc);
 */
#ifndef CLIPGRID_CORE_JSON_H
#define CLIPGRID_CORE_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

typedef struct {
    cJSON *root;
    char *path;             /* for messages ("<string>" when parsed from memory) */
    const cJSON **items;    /* every value, in document order ... */
    int *lines;             /* ... and the line of its key (or of the value itself) */
    int n;
} cg_json_doc;

int cg_json_parse(const char *path, const char *text, size_t len, cg_json_doc *doc);
int cg_json_load(const char *path, cg_json_doc *doc);
void cg_json_free(cg_json_doc *doc);

/* 1-based line of `item` in the source, 0 if unknown. */
int cg_json_line(const cg_json_doc *doc, const cJSON *item);

/* Error if `obj` has a key outside `allowed` (NULL-terminated) or a key twice. `where` names the
 * object in messages ("top level", "train", ...). Mistyped keys get a "did you mean" hint. */
int cg_json_check_keys(const cg_json_doc *doc, const cJSON *obj, const char *const *allowed, const char *where);

/* Typed access with errors naming file, line and key. Each returns CG_OK, or CG_ERR_CONFIG. */
int cg_json_want_type(const cg_json_doc *doc, const cJSON *item, int cjson_type_mask, const char *what);

/* The closest string in `candidates` to `s` within edit distance 2, or NULL. */
const char *cg_closest_word(const char *s, const char *const *candidates);

/* A JSON string from a cJSON tree (malloc()ed); pretty when `pretty`. */
char *cg_json_print(const cJSON *item, int pretty);

#endif
