#include "train/schedule.h"

#include <math.h>

double lr_at_step(lr_schedule_kind kind, double base, int64_t warmup, int64_t total, int64_t step) {
    if (step < warmup) return base * (double)(step + 1) / (double)warmup;
    if (kind == LR_CONST) return base;
    int64_t span = total - warmup;
    if (span <= 0) return base;
    double e = (double)(step - warmup);
    if (e > (double)span) e = (double)span;
    return 0.5 * (1.0 + cos(M_PI * e / (double)span)) * base;
}
