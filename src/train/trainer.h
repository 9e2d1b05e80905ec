/* trainer.h — `clipgrid train`: CLIP training of one configuration, end to end.
 *
 * data -> batch (images + caption ids) -> clip_model_step -> clip grad norm -> AdamW (cosine lr)
 * -> logit-scale clamp -> metrics / progress / periodic eval and checkpoints -> result.json.
 * Everything a run leaves is in `out` (see docs/train.md): config.json, vocab (from scratch),
 * metrics.csv, metrics.jsonl, events.out.tfevents.*, progress.json, checkpoints/, result.json.
 * A run is deterministic for a seed and a thread count; --resume continues from
 * checkpoints/latest exactly (the data order, augmentation and DropPath draws depend only on
 * the seed and the step).
 */
#ifndef CLIPGRID_TRAIN_TRAINER_H
#define CLIPGRID_TRAIN_TRAINER_H

#include <stdint.h>

typedef struct {
    const char *image_encoder, *text_encoder;
    const char *data, *eval_data;     /* --data / --eval-data specs (data/loader.h); eval_data NULL: the default,
                                       * "" none */
    const char *dataset_type;         /* NULL/"auto", fmnist, csv, jsonl, webdataset */
    const char *csv_img_key, *csv_caption_key;
    char csv_separator;               /* 0: from the suffix */
    const char *image_tsv, *eval_image_tsv;   /* Chinese-CLIP image TSVs */
    int workers, shuffle_buffer, hflip;
    const char *out;
    const char *device;               /* "cpu" or "cuda" (train/backend.h) */
    const char *precision;            /* "fp32", "bf16", or NULL: bf16 on cuda, fp32 on cpu */
    const char *text_pretrained, *image_pretrained, *vocab;
    int freeze_text;
    int64_t steps;                    /* 0: from epochs */
    double epochs;                    /* default 1 */
    int batch_size, image_size, context_length, embed_dim, threads;
    double lr, wd, beta1, beta2, eps, grad_clip, drop_path;
    int64_t warmup;                   /* -1: default */
    int64_t save_every, eval_every, log_every;
    int eval_samples, retrieval_samples, keep_checkpoints;
    int resume;
    uint64_t seed;
    int vocab_size;                   /* from-scratch vocabulary size to learn */
    int accum_steps;                  /* micro-batches per step (clip_model_step_accum) */
} train_options;

void train_options_defaults(train_options *o);

/* Run training; returns a process exit status (0 success; messages already printed). */
int train_run(const train_options *o);

/* `clipgrid eval`: evaluate a run directory's checkpoint on a dataset; prints and returns JSON
 * metrics via stdout. step < 0: checkpoints/latest. device "cpu" or "cuda" (NULL: cpu);
 * precision "fp32"/"bf16" (NULL: bf16 on cuda, fp32 on cpu); batch: images or texts encoded
 * per device call (cuda; the CPU encodes any number at once). Exit codes as `clipgrid train`'s
 * (0 done, 2 bad input, 3 device unavailable, 4 data unreadable). */
int eval_run(const char *run_dir, const char *data, int64_t step, int eval_samples, int retrieval_samples,
             int threads, const char *device, const char *precision, int batch);

#endif
