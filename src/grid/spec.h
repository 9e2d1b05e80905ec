/* spec.h — the grid: which configurations to train, from a JSON file and/or the command line.
 *
 * A grid is image encoders × text encoders (× any extra axis such as seeds), plus explicit
 * extra configurations. Each configuration gets a stable ID made from its parameters, not its
 * position — "starnet_s1_clip_ViT-B_32" (':' '/' and other characters unsafe in file names
 * become '_'; an extra axis adds "_seed1") — so a grid can be edited and resumed.
 *
 * The file (docs/grid-file.md has the reference):
 *   {
 *     "gpus": [0, 1],                                  or "all", "cpu", "cpu:4"
 *     "image_encoders": ["starnet_s1", "starnet_s2"],
 *     "text_encoders": ["clip:ViT-B/32", "bert-base-chinese"],
 *     "axes": {"seed": [0, 1]},                        extra axes, each a train option
 *     "train": {"data": "fmnist:train", "epochs": 10},  options of every `clipgrid train`
 *     "overrides": {"bert-base-chinese": {"context_length": 52}},   per encoder name
 *     "configs": [{"image_encoder": "starnet_s4", "text_encoder": "clip:ViT-B/32",
 *                  "train": {"lr": 3e-4}}],            extra configurations
 *     "launcher": {"jobs_per_gpu": 1, "log_dir": "logs/clip_training", ...}   run options
 *   }
 * Unknown keys and wrong types are errors naming the file, line and key.
 * Precedence: command line > file; train options: "train" < overrides[image] <
 * overrides[text] < the axis value < the config's own "train".
 */
#ifndef CLIPGRID_GRID_SPEC_H
#define CLIPGRID_GRID_SPEC_H

#include <cjson/cJSON.h>

typedef struct {
    char *image_encoder;
    char *text_encoder;
    char *id;          /* stable, file-name safe */
    double cost;       /* expected relative run time (grid/cost.h) */
    cJSON *train;      /* resolved train options (object; owned) */
    int index;         /* position in expansion order */
} grid_config;

/* What the file and the command line say; strings are owned (malloc). */
typedef struct {
    char *gpus;                 /* "0,1" / "all" / "cpu" / "cpu:4" / NULL (not given) */
    char **image_encoders; int n_image;
    char **text_encoders;  int n_text;
    cJSON *axes;                /* object: name -> array of values, or NULL */
    cJSON *train;               /* object, never NULL after grid_spec_init */
    cJSON *overrides;           /* object: encoder name -> object of train options, or NULL */
    cJSON *configs;             /* array of explicit configs, or NULL */
    cJSON *launcher;            /* object of run options from the file ("launcher"), or NULL */
    char *source;               /* file name for messages, or "command line" */
} grid_spec;

void grid_spec_init(grid_spec *s);
void grid_spec_free(grid_spec *s);

/* Read a grid file into `s` (keys it does not have keep their current values). */
int grid_spec_load_file(grid_spec *s, const char *path);

/* Replace the encoder lists from a comma-separated command-line value. An empty list is an error. */
int grid_spec_set_list(grid_spec *s, const char *which /* "image" | "text" */, const char *csv);

/* Expand into configurations (cartesian product, then explicit configs; a config whose ID already
 * exists replaces the earlier one's train options). Errors: no encoders, duplicate IDs that differ
 * in their names, unknown train keys. *out is malloc()ed; free with grid_configs_free. */
int grid_expand(const grid_spec *s, grid_config **out, int *n);
void grid_configs_free(grid_config *c, int n);

/* Stable ID of one configuration (malloc()ed). `suffix` may be NULL. */
char *grid_config_id(const char *image_encoder, const char *text_encoder, const char *suffix);

/* The train options a grid may set (those of `clipgrid train`), NULL-terminated. */
extern const char *const grid_train_keys[];

#endif
