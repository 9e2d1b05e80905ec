/* checkpoint.h — training checkpoints that survive a kill at any instant.
 *
 * A model is one or more named parameter sets (groups) — for CLIP the image tower ("visual."),
 * the text tower ("text.") and the logit scale ("") — each saved under its prefix + the tensor's
 * own timm / Hugging Face name. In {out}/checkpoints/:
 *   step_N.safetensors   the model: every parameter, buffer and counter of every group
 *   state_N.safetensors  the optimizer: "<name>.exp_avg" and "<name>.exp_avg_sq" per trained
 *                        parameter, plus metadata "clipgrid_state": a JSON object with
 *                        "step", "adamw_step" and whatever the trainer adds (epoch, RNG state,
 *                        data position, ...)
 *   latest               "N\n": the newest step whose two files are complete
 * Each file is written atomically (temp + fsync + rename) and `latest` last, so a run killed
 * during a save still resumes from the previous checkpoint.
 */
#ifndef CLIPGRID_TRAIN_CHECKPOINT_H
#define CLIPGRID_TRAIN_CHECKPOINT_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "nn/params.h"
#include "train/adamw.h"

typedef struct {
    const char *prefix;   /* prepended to every tensor name ("visual.", "text.", "") */
    cg_params *params;
    adamw_state *opt;     /* its optimizer state, or NULL (e.g. a frozen tower) */
} ckpt_group;

/* Save step `step`. `state` (may be NULL) is copied into the metadata; "step" is set here and
 * "adamw_step" from the first group with an optimizer. */
int ckpt_save(const char *out_dir, int64_t step, const ckpt_group *groups, int n, const cJSON *state);

/* The step in {out}/checkpoints/latest; CG_ERR_IO when there is none (a fresh run). */
int ckpt_latest(const char *out_dir, int64_t *step);

/* Load step `step` into the groups (built for the same configuration); optimizer states are
 * loaded for groups that have one. *state gets the metadata object (free with cJSON_Delete)
 * when state is not NULL. Every mismatch (missing or extra tensor, other shape) is an error
 * naming the file and the tensor. */
int ckpt_load(const char *out_dir, int64_t step, const ckpt_group *groups, int n, cJSON **state);

/* Only the model tensors of a step_N.safetensors file (evaluation, export). */
int ckpt_load_model_file(const char *path, const ckpt_group *groups, int n);

/* Delete the files of complete checkpoints older than the newest `keep` (keep >= 1). */
void ckpt_prune(const char *out_dir, int keep);

#endif
