/* checkpoint.h — training checkpoints that survive a kill at any instant.
 *
 * In {out}/checkpoints/:
 *   step_N.safetensors   the model: every parameter, buffer and counter by its timm / Hugging
 *                        Face name (loads into timm/transformers as it is)
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

/* Save step `step`. `state` (may be NULL) is copied into the metadata; "step" and
 * "adamw_step" are set by this function. */
int ckpt_save(const char *out_dir, int64_t step, const cg_params *model, const adamw_state *opt, const cJSON *state);

/* The step in {out}/checkpoints/latest; CG_ERR_IO when there is none (a fresh run). */
int ckpt_latest(const char *out_dir, int64_t *step);

/* Load step `step` into model and opt (both already built for the same configuration);
 * *state gets the metadata object (free with cJSON_Delete), or stays NULL if state is NULL.
 * Every mismatch (missing tensor, other shape) is an error naming the file and tensor. */
int ckpt_load(const char *out_dir, int64_t step, cg_params *model, adamw_state *opt, cJSON **state);

/* Delete the files of complete checkpoints older than the newest `keep` (keep >= 1). */
void ckpt_prune(const char *out_dir, int keep);

#endif
