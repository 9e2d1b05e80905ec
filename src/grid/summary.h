/* summary.h — what a grid run reports at the end.
 *
 * The table (failures first, then grid order):
 *   CONFIG                          GPU  STATUS           TRIES  TIME     TOP1    LOSS    IMG/S
 *   starnet_s1_clip_ViT-B_32        1    FAILED (exit 1)  1      0:00:03  -       -       -
 * followed by the log path of every failure, and the same as JSON in {log_dir}/summary.json.
 * TOP1, LOSS and IMG/S come from the job's {out_dir}/{id}/result.json ("zeroshot_top1",
 * "loss", "images_per_s"), when it left one.
 */
#ifndef CLIPGRID_GRID_SUMMARY_H
#define CLIPGRID_GRID_SUMMARY_H

#include <stdio.h>

#include "grid/job.h"

/* "FAILED (exit 1)", "SIGNALED (SIGSEGV)", "TIMEOUT (SIGTERM)" into buf. */
void summary_status_text(const job_record *j, char *buf, size_t n);
/* "1:02:03" / "0:00:07" into buf. */
void summary_duration_text(double seconds, char *buf, size_t n);

/* Read {out_dir}/result.json into j->result when present (a malformed one is warned about). */
void summary_load_result(job_record *j);

void summary_print(FILE *f, const job_record *jobs, int n);
int summary_write_json(const char *path, const job_record *jobs, int n, double started, double finished,
                       int interrupted);

#endif
