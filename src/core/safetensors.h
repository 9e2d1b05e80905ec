/* safetensors.h — read and write the safetensors format (Hugging Face; what timm, transformers
 * and open_clip save).
 *
 * File: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "value"}}
 * then the raw little-endian tensor bytes; offsets are relative to the end of the header.
 * The reader checks everything (header bounds, dtypes, shape × dtype size = byte range, ranges
 * inside the file and not overlapping); each error names the file and the tensor.
 *
 *   cg_safetensors st;
 *   if (cg_st_open("w.safetensors", &st)) -> cg_error_message()
 *   cg_st_read_f32(&st, "stem.0.conv.weight", dst, 4, (int64_t[]){32, 3, 3, 3});
 *   cg_st_close(&st);
 *
 *   cg_st_writer w; cg_st_writer_init(&w);
 *   cg_st_writer_add_f32(&w, "head.weight", data, 2, (int64_t[]){512, 192});
 *   cg_st_writer_meta(&w, "format", "pt");
 *   cg_st_writer_save(&w, "out.safetensors");   // atomic (temp file + rename)
 *   cg_st_writer_free(&w);
 */
#ifndef CLIPGRID_CORE_SAFETENSORS_H
#define CLIPGRID_CORE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define CG_ST_MAX_DIMS 8

typedef enum {
    CG_ST_F32, CG_ST_F16, CG_ST_BF16, CG_ST_F64, CG_ST_I64, CG_ST_I32, CG_ST_I16, CG_ST_I8,
    CG_ST_U8, CG_ST_BOOL, CG_ST_NDTYPES
} cg_st_dtype;

typedef struct {
    const char *name;
    cg_st_dtype dtype;
    int ndim;
    int64_t shape[CG_ST_MAX_DIMS];
    const unsigned char *data;  /* into the file buffer */
    size_t nbytes;
} cg_st_tensor;

typedef struct {
    char *path;
    char *buf;                /* whole file */
    size_t len;
    cg_st_tensor *tensors;    /* in header order */
    int n;
    char **meta_keys, **meta_values;
    int n_meta;
} cg_safetensors;

const char *cg_st_dtype_name(cg_st_dtype d);
size_t cg_st_dtype_size(cg_st_dtype d);

int cg_st_open(const char *path, cg_safetensors *st);
/* Parse from memory (takes ownership of buf, which must come from malloc). `path` names it. */
int cg_st_parse(const char *path, char *buf, size_t len, cg_safetensors *st);
void cg_st_close(cg_safetensors *st);
const cg_st_tensor *cg_st_find(const cg_safetensors *st, const char *name);
const char *cg_st_meta(const cg_safetensors *st, const char *key);
/* Copy tensor `name` into dst as float32 (F32, F16, BF16, F64, I64, I32 are converted).
 * Errors: missing tensor, or a shape other than `shape` (both shapes in the message). */
int cg_st_read_f32(const cg_safetensors *st, const char *name, float *dst, int ndim, const int64_t *shape);
/* Integer tensor (I64/I32) with numel 1 -> *v (e.g. BatchNorm num_batches_tracked). */
int cg_st_read_scalar_i64(const cg_safetensors *st, const char *name, int64_t *v);

typedef struct {
    struct cg_st_wentry *entries;
    int n, cap;
    char **meta_keys, **meta_values;
    int n_meta;
} cg_st_writer;

void cg_st_writer_init(cg_st_writer *w);
/* The data are copied, so the caller's buffer may change afterwards. Names must be unique. */
void cg_st_writer_add(cg_st_writer *w, const char *name, cg_st_dtype dtype, int ndim, const int64_t *shape,
                      const void *data);
void cg_st_writer_add_f32(cg_st_writer *w, const char *name, const float *data, int ndim, const int64_t *shape);
void cg_st_writer_add_i64(cg_st_writer *w, const char *name, int64_t v);  /* a 0-dim I64 tensor */
void cg_st_writer_meta(cg_st_writer *w, const char *key, const char *value);
/* The whole file in memory (malloc()ed) — cg_st_writer_save writes it atomically. */
int cg_st_writer_serialize(const cg_st_writer *w, unsigned char **out, size_t *len);
int cg_st_writer_save(const cg_st_writer *w, const char *path);
void cg_st_writer_free(cg_st_writer *w);

#endif
