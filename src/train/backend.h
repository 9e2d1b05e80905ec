/* backend.h — where `clipgrid train` runs its steps: the CPU (built in) or a CUDA device.
 *
 * The trainer (train/trainer.c) owns the run: data, schedule, metrics, checkpoints, evaluation
 * order. A backend owns the arithmetic: one optimizer step, and eval-mode embeddings. The CPU
 * clip_model and its three AdamW states stay the source of truth for everything saved: a device
 * backend mirrors them at creation and writes them back on train_backend_to_host(), which the
 * trainer calls before every checkpoint.
 *
 *   cpu   clip_model_step_accum, clip_grad_norm, adamw_step per set, logit-scale clamp
 *         (train/backend_cpu.c); fp32 only.
 *   cuda  models/cuda/clip_cuda.h on the device, fp32 or bf16 (train/cuda/backend_cuda.cu). It
 *         is a plugin, libclipgrid-cuda.so, loaded with dlopen when --device cuda asks for it,
 *         so the clipgrid binary runs on machines with no CUDA driver or cuBLAS at all. Looked
 *         for in $CLIPGRID_CUDA_BACKEND, then next to the executable, then ../lib/clipgrid/.
 *         The plugin resolves clipgrid's own functions against the executable (built with
 *         --export-dynamic), so the model code exists once.
 *
 *   char what[256];
 *   if (train_backend_probe("cuda", what, sizeof what)) ...   // before anything is written
 *   train_backend be;
 *   train_backend_args a = {.model = &m, .opt_img = &oi, ...};
 *   if (train_backend_open("cuda", &a, &be)) ...
 *   train_backend_step(&be, images, ids, lr, &r);             // r.loss, r.grad_norm, ...
 *   train_backend_to_host(&be);                               // then ckpt_save as usual
 *   train_backend_encode_images(&be, imgs, n, emb);           // eval
 *   train_backend_close(&be);
 *
 * Errors: CG_ERR_DEVICE ("--device cuda: ...") when the plugin cannot be loaded or there is no
 * device; CG_ERR_USAGE for a setting the backend does not support; otherwise the step's own.
 */
#ifndef CLIPGRID_TRAIN_BACKEND_H
#define CLIPGRID_TRAIN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

#include "models/clip_model.h"
#include "train/adamw.h"

/* Bumped whenever train_backend_args or train_backend_ops change; the plugin must match. */
#define TRAIN_BACKEND_ABI 2

/* A fingerprint of the layouts the plugin reads through the arguments (the model, its towers,
 * parameter sets, AdamW states): compiled into both sides and compared when the plugin loads, so
 * a libclipgrid-cuda.so left from another build of these structs is refused, not misread. */
static inline uint64_t train_backend_layout_id(void) {
    const uint64_t sizes[] = {sizeof(clip_model),   sizeof(cg_starnet),         sizeof(cg_text_tower),
                              sizeof(cg_params),    sizeof(cg_param_entry),     sizeof(adamw_state),
                              sizeof(adamw_config), sizeof(cg_starnet_config),  sizeof(cg_text_config),
                              sizeof(cg_rng),       offsetof(clip_model, text), offsetof(clip_model, scale),
                              offsetof(clip_model, embed_dim)};
    uint64_t h = 1469598103934665603ull;   /* FNV-1a over the numbers */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) h = (h ^ sizes[i]) * 1099511628211ull;
    return h;
}

typedef enum { TRAIN_PREC_FP32 = 0, TRAIN_PREC_BF16 = 1 } train_precision;

/* "fp32" / "bf16" -> the enum; CG_ERR_USAGE naming the flag otherwise. */
int train_precision_parse(const char *s, train_precision *p);
const char *train_precision_name(train_precision p);

typedef struct {
    int abi;                          /* TRAIN_BACKEND_ABI (filled by train_backend_open) */
    size_t args_size;                 /* sizeof(train_backend_args) (ditto) */
    clip_model *model;
    /* the trainer's AdamW states; all NULL for an evaluation-only backend (no steps), opt_txt
     * NULL when the text tower is frozen */
    adamw_state *opt_img, *opt_txt, *opt_scale;
    adamw_config acfg;
    float grad_clip;
    int batch, image_size, context;   /* the step's shapes: B, S, T */
    int accum_steps;                  /* micro-batches per step (1: none) */
    train_precision precision;
    int device_index;                 /* CUDA device ordinal, as CUDA_VISIBLE_DEVICES numbers them */
} train_backend_args;

typedef struct {
    float loss;                       /* the batch's contrastive loss (before the update) */
    float acc_i2t;                    /* image->text top-1 within the batch */
    float grad_norm;                  /* global gradient norm before clipping */
    float logit_scale;                /* after the update and clamp (log space) */
} train_step_result;

typedef struct {
    char device[256];                 /* "cpu" or "cuda:0 NVIDIA H100 80GB HBM3 (sm_90)" */
    size_t allocated_bytes;           /* device bytes clipgrid allocated (arenas, scratch, cuBLAS workspaces):
                                       * allocated once, so also the peak. 0 on the CPU */
    size_t device_used_bytes;         /* largest device-wide use seen minus the use just before the backend's
                                       * first allocation (adds what cuBLAS and the driver take); 0 on the CPU */
} train_backend_info;

/* What a backend implements (the CPU one in backend_cpu.c, the CUDA plugin's in its .so). */
typedef struct {
    int abi;
    uint64_t layout_id;               /* train_backend_layout_id() as the backend was compiled */
    const char *name;
    /* device check before anything is written: a description or an error */
    int (*probe)(int device_index, char *what, size_t n);
    int (*create)(const train_backend_args *a, void **h);
    /* a non-finite r->loss: the CPU returns before the update (the model keeps its last values);
     * the CUDA backend has already applied it and refuses every later call but destroy/info */
    int (*step)(void *h, const float *images, const int32_t *ids, float lr, train_step_result *r);
    /* eval mode, L2-normalised rows [n, E]; any n >= 0 */
    int (*encode_images)(void *h, const float *images, int n, float *emb);
    int (*encode_texts)(void *h, const int32_t *ids, int n, float *emb);
    int (*to_host)(void *h);
    void (*info)(void *h, train_backend_info *i);
    void (*destroy)(void *h);
} train_backend_ops;

typedef struct {
    const train_backend_ops *ops;
    void *h;
    void *dl;                         /* dlopen handle of the plugin, or NULL */
    train_backend_args args;
} train_backend;

/* The CPU backend's table (backend_cpu.c). */
const train_backend_ops *train_backend_cpu_ops(void);

/* "cpu" or "cuda": load the backend (the plugin for cuda) and check the device; `what` gets a
 * one-line description. Writes nothing anywhere. */
int train_backend_probe(const char *device, int device_index, char *what, size_t n);
int train_backend_open(const char *device, const train_backend_args *a, train_backend *b);
void train_backend_close(train_backend *b);

int train_backend_step(train_backend *b, const float *images, const int32_t *ids, float lr, train_step_result *r);
int train_backend_encode_images(train_backend *b, const float *images, int n, float *emb);
int train_backend_encode_texts(train_backend *b, const int32_t *ids, int n, float *emb);
/* Device -> the CPU model and AdamW states (parameters, BN buffers, moments, DropPath generator). */
int train_backend_to_host(train_backend *b);
void train_backend_info_get(train_backend *b, train_backend_info *i);

/* The plugin's one exported symbol: returns its table. */
typedef const train_backend_ops *(*train_backend_entry_fn)(void);
#define TRAIN_BACKEND_CUDA_ENTRY "clipgrid_train_backend_cuda"
#define TRAIN_BACKEND_CUDA_LIBRARY "libclipgrid-cuda.so"

#endif
