/* zoo.h — encoder names -> configurations.
 *
 * Image encoders: the seven StarNet variants of timm (starnet_s050 ... starnet_s4), by the
 * names timm registers. Text encoders will be listed here too (each kind has its own table and
 * lookup; cg_zoo_image_names() is what `clipgrid models` and the launcher enumerate).
 */
#ifndef CLIPGRID_MODELS_ZOO_H
#define CLIPGRID_MODELS_ZOO_H

typedef struct {
    const char *name;   /* "starnet_s1" */
    int base_dim;       /* stage widths base_dim * 2^i */
    int depths[4];
    int mlp_ratio;
    int stem_chs;       /* 32 for every timm variant */
} cg_starnet_config;

/* NULL when unknown; cg_zoo_unknown_image() then sets an error naming it and listing the known ones. */
const cg_starnet_config *cg_zoo_starnet(const char *name);
int cg_zoo_unknown_image(const char *name);
/* NULL-terminated list of image encoder names, in size order. */
const char *const *cg_zoo_image_names(void);

#endif
