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

/* ---------------------------------------------------------------- text towers
 * clip:ViT-B/32 is OpenAI's text transformer (model_specs.md §2), bert-base-chinese is
 * google-bert/bert-base-chinese (§3) with Chinese-CLIP's projection. The tiny ones keep every
 * code path (same vocabularies and tokenizers) at width 128, 2 layers, 2 heads of 64; the
 * launcher's cost table (grid/cost.c) assumes these sizes. */
static const cg_text_config text_towers[] = {
    /* name               kind          vocab  ctx  maxpos width L  H   mlp  types embed eps    act pad eos */
    {"clip:ViT-B/32",     CG_TEXT_CLIP, 49408, 77,  77,    512, 12, 8,  2048, 0,   512,  1e-5f, 2, -1, -1},
    {"bert-base-chinese", CG_TEXT_BERT, 21128, 52,  512,   768, 12, 12, 3072, 2,   512,  1e-12f, 1, 0, -1},
    {"clip:tiny",         CG_TEXT_CLIP, 49408, 77,  77,    128, 2,  2,  512,  0,   512,  1e-5f, 2, -1, -1},
    {"bert:tiny",         CG_TEXT_BERT, 21128, 52,  512,   128, 2,  2,  512,  2,   512,  1e-12f, 1, 0, -1},
};
#define N_TEXT (int)(sizeof text_towers / sizeof *text_towers)

static const char *const text_names[] = {"clip:tiny", "bert:tiny", "clip:ViT-B/32", "bert-base-chinese", NULL};

const cg_text_config *cg_zoo_text(const char *name) {
    for (int i = 0; name && i < N_TEXT; i++)
        if (!strcmp(name, text_towers[i].name)) return &text_towers[i];
    return NULL;
}

int cg_zoo_unknown_text(const char *name) {
    const char *hint = cg_closest_word(name ? name : "", text_names);
    char known[256];
    size_t o = 0;
    known[0] = 0;
    for (int i = 0; text_names[i] && o < sizeof known; i++)
        o += (size_t)snprintf(known + o, sizeof known - o, i ? ", %s" : "%s", text_names[i]);
    if (hint)
        return cg_error_set(CG_ERR_CONFIG, "unknown text encoder \"%s\" (did you mean \"%s\"? known: %s)", name, hint, known);
    return cg_error_set(CG_ERR_CONFIG, "unknown text encoder \"%s\" (known: %s)", name ? name : "(null)", known);
}

const char *const *cg_zoo_text_names(void) { return text_names; }
