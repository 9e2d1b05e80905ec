/* ledger.h — the grid's job log, keyed by config ID, for --resume and --retry-failed.
 *
 * {log_dir}/ledger.tsv gets one line per finished attempt (fsync()ed append), like GNU
 * parallel's --joblog, with a header line:
 *   id  status  exit  signal  gpu  start  duration_s  attempt  log
 * The latest line of an ID decides what --resume (rerun what never finished: no line, or
 * INTERRUPTED / NOT_STARTED / START_FAILED) and --retry-failed (rerun FAILED, SIGNALED, TIMEOUT)
 * do. Lines from an older grid with other IDs are ignored, so the grid may be edited.
 */
#ifndef CLIPGRID_GRID_LEDGER_H
#define CLIPGRID_GRID_LEDGER_H

#include "grid/job.h"

int ledger_append(const char *path, const job_record *job);

/* For each of the n IDs, the status of its latest ledger line, or -1 if it has none.
 * A missing ledger file is not an error (every entry -1). A malformed line is an error
 * naming the file and line. */
int ledger_last_status(const char *path, const grid_config *configs, int n, int *last_status);

#endif
