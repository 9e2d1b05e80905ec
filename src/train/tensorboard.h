/* tensorboard.h — TensorBoard event files written in C (no protobuf library).
 *
 * A file `events.out.tfevents.<unix seconds>.<host>` in a directory is a TFRecord stream:
 *   u64 length (LE) | u32 masked_crc32c(length bytes) | data | u32 masked_crc32c(data)
 * masked_crc = ((crc >> 15) | (crc << 17)) + 0xa282ead8, crc = CRC-32C (Castagnoli).
 * Each data is one serialized Event: the first `file_version: "brain.Event:2"`, then one per
 * scalar: {wall_time (1, double), step (2, varint), summary (5) {value (1) {tag (1),
 * simple_value (2, float)}}}. Records are flushed as written, so TensorBoard can read a file of
 * a run in progress; a run killed mid-write leaves at most a truncated last record, which
 * TensorBoard skips.
 *
 *   tb_writer tb;
 *   if (tb_open(&tb, "runs/x") == CG_OK) { tb_add_scalar(&tb, "train/loss", step, loss); tb_close(&tb); }
 */
#ifndef CLIPGRID_TRAIN_TENSORBOARD_H
#define CLIPGRID_TRAIN_TENSORBOARD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    char *path;
} tb_writer;

/* Create the event file in `dir` (created if missing) and write the file_version record. */
int tb_open(tb_writer *w, const char *dir);
int tb_add_scalar(tb_writer *w, const char *tag, int64_t step, float value);
void tb_close(tb_writer *w);

/* The pieces, exposed for tests and other writers. */
uint32_t crc32c(const void *data, size_t n);
uint32_t tb_masked_crc(uint32_t crc);
/* Serialized Event messages into buf (returns the length; buf must hold 64 + strlen(tag)). */
size_t tb_encode_file_version(double wall_time, unsigned char *buf);
size_t tb_encode_scalar(double wall_time, int64_t step, const char *tag, float value, unsigned char *buf);
/* A whole TFRecord (12 + n + 4 bytes) for `data` into out; returns its length. */
size_t tb_frame_record(const unsigned char *data, size_t n, unsigned char *out);

#endif
