/* models_cli.c — `clipgrid models`: the encoders clipgrid knows, with parameter counts and MACs.
 *
 *   clipgrid models [--image-size N] [--embed-dim D] [--json]
 *
 * Parameter counts come from building each model (every registered tensor is counted), so they
 * are the numbers a checkpoint holds; they equal timm's (backbone = timm num_classes=0,
 * "timm-1k" = timm's default 1000-class model). MACs count conv and linear multiply-adds.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "core/json.h"
#include "core/log.h"
#include "models/starnet.h"
#include "models/text_transformer.h"
#include "models/zoo.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: clipgrid models [--image-size N] [--embed-dim D] [--json]\n"
            "\n"
            "List the image encoders: StarNet variant, stage widths and depths, trainable\n"
            "parameters (backbone without head; with timm's 1000-class head; with the CLIP\n"
            "projection to D), and multiply-accumulates of one image at N x N (convs + linears,\n"
            "projection included). Then the text encoders: flavour, sizes, context length and\n"
            "trainable parameters with the projection to D (docs/text_towers.md).\n"
            "\n"
            "  --image-size N   default 224\n"
            "  --embed-dim D    CLIP embedding width, default 512\n"
            "  --json           one JSON object instead of the table\n");
}

static int parse_int(const char *opt, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x < lo || x > hi)
        return cg_error_set(CG_ERR_USAGE, "%s wants an integer in [%d, %d], got \"%s\"", opt, lo, hi, v ? v : "");
    *out = (int)x;
    return CG_OK;
}

int cmd_models(int argc, char **argv) {
    int size = 224, embed = 512, json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--image-size") || !strcmp(argv[i], "--embed-dim")) {
            int rc = parse_int(argv[i], i + 1 < argc ? argv[i + 1] : NULL, !strcmp(argv[i], "--image-size") ? 32 : 1,
                               !strcmp(argv[i], "--image-size") ? 4096 : 65536,
                               !strcmp(argv[i], "--image-size") ? &size : &embed);
            if (rc) { cg_log_error("%s", cg_error_message()); return 2; }
            i++;
        } else {
            cg_log_error("models: unknown option \"%s\"", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "image_encoders");
    cJSON_AddNumberToObject(root, "image_size", size);
    cJSON_AddNumberToObject(root, "embed_dim", embed);
    if (!json) {
        printf("image encoders at %dx%d, CLIP embedding width %d\n\n", size, size, embed);
        printf("%-13s %-16s %-12s %3s %5s %11s %11s %11s %10s\n", "name", "widths", "depths", "mlp", "feat",
               "backbone", "timm-1k", "+proj", "GMACs");
    }
    for (const char *const *n = cg_zoo_image_names(); *n; n++) {
        const cg_starnet_config *cfg = cg_zoo_starnet(*n);
        cg_starnet m;
        cg_starnet_create(&m, cfg, embed, 0.0f, 0);
        int64_t backbone = cg_params_count(&m.params, "head."), with_proj = cg_params_count(&m.params, NULL);
        cg_starnet_free(&m);
        int64_t timm1k = backbone + cg_starnet_head_params(cfg, 1000);
        int64_t macs = cg_starnet_macs(cfg, size, size, embed);
        char widths[32], depths[32];
        snprintf(widths, sizeof widths, "%d,%d,%d,%d", cfg->base_dim, cfg->base_dim * 2, cfg->base_dim * 4, cfg->base_dim * 8);
        snprintf(depths, sizeof depths, "%d,%d,%d,%d", cfg->depths[0], cfg->depths[1], cfg->depths[2], cfg->depths[3]);
        if (!json) {
            printf("%-13s %-16s %-12s %3d %5d %11lld %11lld %11lld %10.4f\n", *n, widths, depths, cfg->mlp_ratio,
                   cg_starnet_feature_dim(cfg), (long long)backbone, (long long)timm1k, (long long)with_proj, macs / 1e9);
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", *n);
        cJSON_AddNumberToObject(o, "base_dim", cfg->base_dim);
        cJSON_AddItemToObject(o, "depths", cJSON_CreateIntArray(cfg->depths, 4));
        cJSON_AddNumberToObject(o, "mlp_ratio", cfg->mlp_ratio);
        cJSON_AddNumberToObject(o, "feature_dim", cg_starnet_feature_dim(cfg));
        cJSON_AddNumberToObject(o, "params_backbone", (double)backbone);
        cJSON_AddNumberToObject(o, "params_timm_1k", (double)timm1k);
        cJSON_AddNumberToObject(o, "params_with_projection", (double)with_proj);
        cJSON_AddNumberToObject(o, "macs", (double)macs);
        cJSON_AddItemToArray(arr, o);
    }
    /* text towers (docs/text_towers.md): counted from the config, not built */
    cJSON *tarr = cJSON_AddArrayToObject(root, "text_encoders");
    if (!json) {
        printf("\nbackbone = timm num_classes=0; timm-1k = timm's 1000-class model; +proj = backbone + Linear(feat, %d)\n", embed);
        printf("\ntext encoders, projection to %d\n\n%-18s %-5s %6s %4s %5s %6s %6s %5s %11s\n", embed, "name", "kind",
               "vocab", "ctx", "width", "layers", "heads", "mlp", "params");
    }
    for (const char *const *n = cg_zoo_text_names(); *n; n++) {
        const cg_text_config *c = cg_zoo_text(*n);
        int64_t np = cg_text_param_count(c, embed);
        const char *kind = c->kind == CG_TEXT_CLIP ? "clip" : "bert";
        if (!json)
            printf("%-18s %-5s %6d %4d %5d %6d %6d %5d %11lld\n", *n, kind, c->vocab_size, c->context, c->width, c->layers,
                   c->heads, c->mlp, (long long)np);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", *n);
        cJSON_AddStringToObject(o, "kind", kind);
        cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
        cJSON_AddNumberToObject(o, "context", c->context);
        cJSON_AddNumberToObject(o, "width", c->width);
        cJSON_AddNumberToObject(o, "layers", c->layers);
        cJSON_AddNumberToObject(o, "heads", c->heads);
        cJSON_AddNumberToObject(o, "mlp", c->mlp);
        cJSON_AddNumberToObject(o, "params_with_projection", (double)np);
        cJSON_AddItemToArray(tarr, o);
    }
    if (json) {
        char *s = cg_json_print(root, 1);
        printf("%s\n", s);
        free(s);
    }
    cJSON_Delete(root);
    return 0;
}
