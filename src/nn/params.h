/* params.h — a model's named parameters and buffers in flat arrays (llm.c style).
 *
 * A model registers every tensor by its checkpoint name (timm / Hugging Face naming) and shape;
 * cg_params_alloc() then lays them out in three flat arrays, in registration order:
 *   params  (trainable fp32)      grads (same layout, zeroed)
 *   buffers (fp32, not trained: BatchNorm running_mean / running_var)
 *   counters (int64 scalars: BatchNorm num_batches_tracked)
 * so an optimizer walks one array and a checkpoint is one loop. Tensors registered one after
 * another are adjacent in memory (StarNet relies on it to run f1 and f2 as one GEMM).
 *
 * Safetensors in and out by name: cg_params_load() requires every registered tensor, with
 * its exact shape (errors name the tensor and both shapes), and rejects tensors the model does
 * not have unless their name starts with one of `ignore_prefixes`.
 */
#ifndef CLIPGRID_NN_PARAMS_H
#define CLIPGRID_NN_PARAMS_H

#include <stdint.h>

#include "core/safetensors.h"
#include "core/tensor.h"

typedef enum { CG_KIND_PARAM, CG_KIND_BUFFER, CG_KIND_COUNTER } cg_param_kind;

typedef struct {
    char *name;
    cg_param_kind kind;
    int ndim;
    int64_t shape[4];
    int64_t offset;  /* in its array (floats, or int64 for counters) */
    int64_t numel;
} cg_param_entry;

typedef struct {
    cg_param_entry *e;
    int n, cap;
    int64_t n_params, n_buffers, n_counters;  /* element counts */
    float *params, *grads, *buffers;
    int64_t *counters;
} cg_params;

void cg_params_init(cg_params *p);
/* Register a tensor (before cg_params_alloc); returns its index. */
int cg_params_add(cg_params *p, const char *name, cg_param_kind kind, int ndim, const int64_t *shape);
void cg_params_alloc(cg_params *p);
void cg_params_free(cg_params *p);

int cg_params_find(const cg_params *p, const char *name);  /* index or -1 */
/* Views of entry i: its values, and (params only) its gradient. */
cg_tensor cg_params_value(const cg_params *p, int i);
cg_tensor cg_params_grad(const cg_params *p, int i);
int64_t *cg_params_counter(const cg_params *p, int i);
void cg_params_zero_grad(cg_params *p);
/* Number of trainable values whose name does not start with `exclude_prefix` (NULL: all). */
int64_t cg_params_count(const cg_params *p, const char *exclude_prefix);

int cg_params_load(cg_params *p, const cg_safetensors *st, const char *const *ignore_prefixes);
int cg_params_load_file(cg_params *p, const char *path, const char *const *ignore_prefixes);
/* Add every entry (params, buffers, counters as I64) to a writer; with grads != 0, the
 * gradients of the params instead of their values (same names). */
void cg_params_to_writer(const cg_params *p, cg_st_writer *w, int grads);
int cg_params_save(const cg_params *p, const char *path);

#endif
