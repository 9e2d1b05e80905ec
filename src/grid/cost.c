#include "grid/cost.h"

#include <string.h>

/* StarNet MACs at 224x224 (conv and linear layers), from the spec's table
 * (shared/reference/model_specs.md §1.1). Every StarNet layer is a convolution over the
 * feature map, so MACs scale with the pixel count. */
static const struct { const char *name; double mmacs_224; } image_costs[] = {
    {"starnet_s050", 91.3},  {"starnet_s100", 185.6}, {"starnet_s150", 227.4},
    {"starnet_s1", 421.9},   {"starnet_s2", 544.1},   {"starnet_s3", 754.0},
    {"starnet_s4", 1049.6},
};

/* Text towers: `layers` transformer blocks of width `width` (MLP 4x) over `ctx` tokens.
 * Per token and block: 4w^2 (q, k, v, out) + 8w^2 (MLP) + 2*ctx*w (scores and mix). */
static const struct { const char *name; int width, layers, ctx; } text_costs[] = {
    {"clip:ViT-B/32", 512, 12, 77},
    {"bert-base-chinese", 768, 12, 52},
    /* small CPU variants; keep in step with the model zoo */
    {"clip:tiny", 128, 2, 77},
    {"bert:tiny", 128, 2, 52},
};

double cost_image_encoder(const char *name, int image_size, int *known) {
    double scale = image_size > 0 ? (double)image_size * image_size / (224.0 * 224.0) : 1.0;
    for (size_t i = 0; i < sizeof image_costs / sizeof *image_costs; i++)
        if (strcmp(name, image_costs[i].name) == 0) {
            if (known) *known = 1;
            return image_costs[i].mmacs_224 * scale;
        }
    if (known) *known = 0;
    return COST_UNKNOWN_ENCODER;
}

double cost_text_encoder(const char *name, int *known) {
    for (size_t i = 0; i < sizeof text_costs / sizeof *text_costs; i++)
        if (strcmp(name, text_costs[i].name) == 0) {
            double w = text_costs[i].width, ctx = text_costs[i].ctx;
            if (known) *known = 1;
            return ctx * text_costs[i].layers * (12.0 * w * w + 2.0 * ctx * w) / 1e6;
        }
    if (known) *known = 0;
    return COST_UNKNOWN_ENCODER;
}

double cost_config(const char *image_encoder, const char *text_encoder, int image_size) {
    return cost_image_encoder(image_encoder, image_size, NULL) + cost_text_encoder(text_encoder, NULL);
}
