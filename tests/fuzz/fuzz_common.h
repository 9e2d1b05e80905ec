/* fuzz_common.h — shared by the libFuzzer targets: where the reference vocabularies are. */
#ifndef CLIPGRID_FUZZ_COMMON_H
#define CLIPGRID_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"

/* $CLIPGRID_SHARED_DATA/tokenizers/<name>; aborts with a message when unset (a fuzz run without
 * its vocabulary would test nothing). */
static char *fuzz_vocab_path(const char *name) {
    const char *root = getenv("CLIPGRID_SHARED_DATA");
    if (!root || !*root) {
        fprintf(stderr, "CLIPGRID_SHARED_DATA must name the shared data directory (../shared/data)\n");
        abort();
    }
    return cg_xasprintf("%s/tokenizers/%s", root, name);
}

#define FUZZ_ASSERT(cond) do { if (!(cond)) { \
    fprintf(stderr, "fuzz assertion failed %s:%d: %s\n", __FILE__, __LINE__, #cond); abort(); } } while (0)

#endif
