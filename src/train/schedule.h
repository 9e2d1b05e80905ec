/* schedule.h — learning-rate schedules, stepped once per optimizer step (open_clip's).
 *
 *   cosine with linear warmup (open_clip cosine_lr), step counted from 0:
 *     step <  warmup:  lr = base * (step + 1) / warmup
 *     otherwise:       lr = 0.5 * (1 + cos(pi * (step - warmup) / (total - warmup))) * base
 *   const: base (after the same warmup).
 */
#ifndef CLIPGRID_TRAIN_SCHEDULE_H
#define CLIPGRID_TRAIN_SCHEDULE_H

#include <stdint.h>

typedef enum { LR_COSINE, LR_CONST } lr_schedule_kind;

double lr_at_step(lr_schedule_kind kind, double base, int64_t warmup, int64_t total, int64_t step);

#endif
