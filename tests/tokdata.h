/* tokdata.h — the reference tokenizer data the tokenizer tests read (not in the repository).
 *
 * The directory is $CLIPGRID_SHARED_DATA/tokenizers, or CLIPGRID_SHARED_DATA_DEFAULT's (the build's
 * ../shared/data beside the source tree) when the variable is unset; CI sets it. When it is
 * missing the calling test FAILS with a message saying what to set — it never passes silently.
 */
#ifndef CLIPGRID_TEST_TOKDATA_H
#define CLIPGRID_TEST_TOKDATA_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "check.h"
#include "core/json.h"
#include "core/log.h"

/* malloc()ed path of `name` in the tokenizer data directory, or NULL after recording a failure. */
static char *tokdata_path(const char *name) {
    const char *root = getenv("CLIPGRID_SHARED_DATA");
#ifdef CLIPGRID_SHARED_DATA_DEFAULT
    if (!root || !*root) root = CLIPGRID_SHARED_DATA_DEFAULT;
#endif
    if (!root || !*root) {
        fprintf(stderr, "  FAIL: CLIPGRID_SHARED_DATA is not set: it must name the shared data directory "
                        "(../shared/data) holding tokenizers/%s\n", name);
        CHECK(!"CLIPGRID_SHARED_DATA set");
        return NULL;
    }
    char *p = cg_xasprintf("%s/tokenizers/%s", root, name);
    struct stat st;
    if (stat(p, &st) != 0) {
        fprintf(stderr, "  FAIL: %s is missing (CLIPGRID_SHARED_DATA=%s): the tokenizer reference data is "
                        "required, see ../shared/data/tokenizers/README.md\n", p, root);
        CHECK(!"tokenizer reference data present");
        free(p);
        return NULL;
    }
    return p;
}

/* Load a *_cases.json; returns 0 and fills doc, or records a failure. */
static int tokdata_cases(const char *name, cg_json_doc *doc) {
    char *p = tokdata_path(name);
    if (!p) return -1;
    int rc = cg_json_load(p, doc);
    if (rc) {
        fprintf(stderr, "  FAIL: %s\n", cg_error_message());
        CHECK(!"cases file parses");
    }
    free(p);
    return rc ? -1 : 0;
}

#endif
