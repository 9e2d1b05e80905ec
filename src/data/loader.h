/* loader.h — the samples of a run, decoded ahead of the trainer by a pool of threads.
 *
 * One interface over every source `--data` accepts:
 *   fmnist:train | fmnist:test         the built-in Fashion-MNIST (data/fmnist.h)
 *   a .csv / .tsv manifest             image paths + captions (data/manifest.h)
 *   a .jsonl manifest                  {"image","caption"}; Chinese-CLIP with --image-tsv
 *   WebDataset shards                  "shards/data-{000000..000099}.tar" (data/wds.h)
 * (`type` overrides the guess from the name: fmnist, csv, jsonl, webdataset.)
 *
 * The stream. Samples are numbered by a position p = 0, 1, 2, ... that runs on across epochs.
 * A single reader thread fixes which sample sits at each position: for manifests and
 * Fashion-MNIST, epoch e = p / N is a permutation of the N samples drawn from (seed, e); for
 * shards, epoch e reads the shards in an order drawn from (seed, e) through a shuffle buffer
 * whose draws come from the same generator. Worker threads then decode positions in parallel,
 * each with a generator seeded by (seed, epoch, sample) for its crop and flip, and the trainer
 * takes them strictly in position order. So the batches, their order and their pixels are the
 * same for any number of workers and any thread timing.
 *
 * Skipping. A sample whose image is missing, unreadable, corrupt or too large, or whose caption
 * is missing, is skipped: its position is consumed, the next good one takes its place, it is
 * counted (loader_skipped, logged by the trainer as data/skipped) and the first ones are warned
 * with the reason. Nothing about one sample is fatal; a whole epoch without one usable sample is.
 *
 * Resume. loader_position() after a batch is the next unconsumed position; opening a loader at
 * that position (start_position) continues the stream exactly (shards are re-read up to it
 * without decoding).
 */
#ifndef CLIPGRID_DATA_LOADER_H
#define CLIPGRID_DATA_LOADER_H

#include <stdint.h>

#include "data/fmnist.h"
#include "data/manifest.h"

typedef enum { DATA_FMNIST, DATA_CSV, DATA_JSONL, DATA_WDS } data_kind;

typedef struct {
    const char *spec;          /* --data */
    const char *type;          /* NULL or "auto": from spec; "fmnist", "csv", "jsonl", "webdataset" */
    manifest_opts manifest;    /* CSV keys, separator, Chinese-CLIP image TSV */
    int image_size;
    int train;                 /* 1: shuffle + random resized crop (+ flip); 0: file order, centre crop */
    int workers;               /* decode threads, >= 1 */
    int prefetch;              /* samples decoded ahead; 0: enough for two batches of batch_hint */
    int batch_hint;            /* the batch size the trainer will ask for (sizes the prefetch) */
    int shuffle_buffer;        /* shards: samples held for shuffling; 0: 1000 */
    uint64_t seed;
    fmnist_lang lang;          /* Fashion-MNIST caption language */
    float scale_lo, scale_hi;  /* random resized crop area range; 0, 0: open_clip's 0.9, 1.0 */
    int hflip;                 /* random horizontal flip in train mode */
} loader_opts;

typedef struct loader loader;

void loader_opts_defaults(loader_opts *o);

/* What kind of source `spec` (with an optional `type`) names; an error names the flag value. */
int data_spec_kind(const char *spec, const char *type, data_kind *kind);

/* Open the source, count its samples and start the threads at `start_position`. */
int loader_open(const loader_opts *o, int64_t start_position, loader **out);
void loader_close(loader *l);

data_kind loader_kind(const loader *l);
int64_t loader_epoch_size(const loader *l);   /* positions per epoch (samples listed, usable or not) */
int64_t loader_position(const loader *l);     /* next position the trainer will get */
int64_t loader_skipped(const loader *l);      /* samples skipped so far in this process (incl. manifest rows) */

/* The next B good samples: images (B × 3 × S × S, CLIP-normalised), captions (B strings owned
 * by the loader, valid until the next call), labels (B ints, the Fashion-MNIST class or -1; may
 * be NULL). Blocks until they are decoded. Errors: a whole epoch without a usable sample, or a
 * source that cannot be read at all. */
int loader_next(loader *l, int B, float *images, const char **captions, int *labels);

/* Captions of the first (at most) `max` samples in file order, for learning a vocabulary;
 * no image is read. *texts: malloc'd array of malloc'd strings. */
int loader_captions(const loader_opts *o, int max, char ***texts, int *n);

#endif
