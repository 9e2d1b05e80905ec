#include "models/zoo.h"

#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"

/* timm/models/starnet.py: starnet_s050 ... starnet_s4 */
static const cg_starnet_config starnets[] = {
    {"starnet_s050", 16, {1, 1, 3, 1}, 3, 32},
    {"starnet_s100", 20, {1, 2, 4, 1}, 4, 32},
    {"starnet_s150", 24, {1, 2, 4, 2}, 3, 32},
    {"starnet_s1", 24, {2, 2, 8, 3}, 4, 32},
    {"starnet_s2", 32, {1, 2, 6, 2}, 4, 32},
    {"starnet_s3", 32, {2, 2, 8, 4}, 4, 32},
    {"starnet_s4", 32, {3, 3, 12, 5}, 4, 32},
};
#define N_STARNETS (int)(sizeof starnets / sizeof *starnets)

static const char *const image_names[] = {"starnet_s050", "starnet_s100", "starnet_s150", "starnet_s1",
                                          "starnet_s2",   "starnet_s3",   "starnet_s4",   NULL};

const cg_starnet_config *cg_zoo_starnet(const char *name) {
    for (int i = 0; i < N_STARNETS; i++)
        if (!strcmp(name, starnets[i].name)) return &starnets[i];
    return NULL;
}

int cg_zoo_unknown_image(const char *name) {
    const char *hint = cg_closest_word(name, image_names);
    char known[256];
    size_t o = 0;
    known[0] = 0;
    for (int i = 0; image_names[i] && o < sizeof known; i++)
        o += (size_t)snprintf(known + o, sizeof known - o, i ? ", %s" : "%s", image_names[i]);
    if (hint)
        return cg_error_set(CG_ERR_CONFIG, "unknown image encoder \"%s\" (did you mean \"%s\"? known: %s)", name, hint, known);
    return cg_error_set(CG_ERR_CONFIG, "unknown image encoder \"%s\" (known: %s)", name, known);
}

const char *const *cg_zoo_image_names(void) { return image_names; }
