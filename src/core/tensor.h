/* tensor.h — a tensor is a shape, a device tag and a pointer to fp32 data.
 *
 * Tensors do not own memory: the data lives in a model's parameter buffer or in an activation
 * arena (sized once per batch, see cg_tensor_arena). Layout is always dense row-major over
 * `shape` (the last dimension is contiguous); each nn/ function documents what its dimensions
 * mean. The device tag lets model code call nn/ functions without #ifdef: each function
 * dispatches on it (only CG_DEV_CPU is implemented today; others abort with a message).
 *
 *   cg_tensor x = cg_tensor_arena(&arena, CG_DEV_CPU, 4, (int64_t[]){C, N, H, W});
 *   cg_tensor w = cg_tensor_view(ptr, CG_DEV_CPU, 2, (int64_t[]){out, in});
 */
#ifndef CLIPGRID_CORE_TENSOR_H
#define CLIPGRID_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"

#define CG_MAX_DIMS 6

typedef enum { CG_DEV_CPU = 0, CG_DEV_CUDA = 1 } cg_device;

typedef struct {
    float *data;
    int64_t shape[CG_MAX_DIMS];
    int ndim;
    cg_device device;
} cg_tensor;

/* A tensor over existing memory (no copy). */
cg_tensor cg_tensor_view(float *data, cg_device dev, int ndim, const int64_t *shape);
/* A zeroed tensor taken from an arena (CPU memory; 64-byte aligned). */
cg_tensor cg_tensor_arena(cg_arena *a, cg_device dev, int ndim, const int64_t *shape);
/* Shape helpers: cg_shape4(a,b,c,d) etc. produce views with the given dims. */
cg_tensor cg_tensor_1d(float *data, cg_device dev, int64_t a);
cg_tensor cg_tensor_2d(float *data, cg_device dev, int64_t a, int64_t b);
cg_tensor cg_tensor_4d(float *data, cg_device dev, int64_t a, int64_t b, int64_t c, int64_t d);

int64_t cg_tensor_numel(const cg_tensor *t);
size_t cg_tensor_bytes(const cg_tensor *t);
/* 1 when both have the same ndim and dims. */
int cg_tensor_same_shape(const cg_tensor *a, const cg_tensor *b);
/* "[2, 3, 4]" into buf (always NUL-terminated); returns buf. */
char *cg_shape_str(const int64_t *shape, int ndim, char *buf, size_t n);

void cg_tensor_zero(cg_tensor *t);
/* y := x (same numel). */
void cg_tensor_copy(cg_tensor *y, const cg_tensor *x);

/* Layout conversion for image batches: [N, C, H, W] <-> [C, N, H, W] (the nn/ image layout). */
void cg_nchw_to_cnhw(const float *src, float *dst, int64_t N, int64_t C, int64_t HW);
void cg_cnhw_to_nchw(const float *src, float *dst, int64_t N, int64_t C, int64_t HW);

/* Programming errors (wrong device, shape mismatch between layers) are not recoverable:
 * print the message and abort. User input errors go through cg_error_set instead. */
void cg_tensor_fail(const char *fn, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
#define CG_REQUIRE_CPU(fn, t) do { if ((t)->device != CG_DEV_CPU) \
    cg_tensor_fail(fn, "device %d not supported (only CPU is built)", (int)(t)->device); } while (0)

#endif
