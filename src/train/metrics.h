/* metrics.h — what a training run writes while it runs.
 *
 * In the run's directory:
 *   metrics.csv     one row per logged value: step,wall_time,tag,value   (long format: train and
 *                   eval rows carry different tags, and a spreadsheet pivots it in one step)
 *   metrics.jsonl   one object per log call: {"step": 100, "wall_time": ..., "train/loss": 2.31, ...}
 *   events.out.tfevents.*   TensorBoard scalars, open_clip's tag names (train/loss, train/lr,
 *                   train/scale, val/image_to_text_R@1, ...)
 *   progress.json   rewritten atomically (metrics_progress) for `clipgrid run`'s live status
 * On resume the files are appended to; rows past the resumed step are not rewritten, so a
 * reader that wants one value per (step, tag) keeps the last.
 */
#ifndef CLIPGRID_TRAIN_METRICS_H
#define CLIPGRID_TRAIN_METRICS_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>

#include "train/tensorboard.h"

typedef struct {
    FILE *csv, *jsonl;
    tb_writer tb;
    char *dir;
} metrics_log;

int metrics_open(metrics_log *m, const char *dir);
/* Log n values under their tags for `step`, to all three files (flushed). */
int metrics_write(metrics_log *m, int64_t step, const char *const *tags, const double *values, int n);
void metrics_close(metrics_log *m);

/* {dir}/progress.json := {"step", "total_steps", "loss", "eta_s", "images_per_s"} (atomic). */
int metrics_progress(const char *dir, int64_t step, int64_t total_steps, double loss, double eta_s,
                     double images_per_s);

#endif
