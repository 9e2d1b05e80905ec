/* backend_cuda.cu — the CUDA training backend (train/backend.h), built as the plugin
 * libclipgrid-cuda.so and loaded by train/backend.c when --device cuda asks for it.
 *
 * A thin adapter: one context (cg_cuda.h) and one device CLIP model (models/cuda/clip_cuda.h)
 * sized for the run's (B, S, T, precision), created once; a step is cg_cuda_clip_step; to_host
 * is cg_cuda_clip_download. Evaluation encodes on the device in chunks of B (a short chunk is
 * padded with copies of its first row, whose outputs are dropped: eval-mode rows are
 * independent), downloads [B, E] and L2-normalises on the host as clip_model_encode_* do.
 * With --accum-steps the towers hold a micro-batch, and so does each eval chunk.
 * Not yet run on a GPU (see docs/cuda.md).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/cuda/clip_cuda.h"
#include "nn/cuda/cg_cuda.h"
#include "nn/cuda/cuda_check.h"

extern "C" {
#include "core/log.h"
#include "nn/clip_loss.h"
#include "train/backend.h"
}

typedef struct {
    train_backend_args a;
    cg_cuda_ctx *ctx;
    cg_cuda_clip m;
    int have_model;
    int poisoned;                    /* a step ran on a non-finite loss: its update reached the weights */
    size_t used_before, used_peak;   /* device-wide use before our allocations, largest seen since */
    int64_t steps;
    float *img, *emb;                /* host staging: [B, 3, S, S], [B, E] */
    int32_t *ids;                    /* [B, T] */
    char device[256];
} cuda_backend;

static cg_precision prec_of(train_precision p) { return p == TRAIN_PREC_BF16 ? CG_PREC_BF16 : CG_PREC_FP32; }

static int cuda_probe(int device_index, char *what, size_t n) {
    cg_cuda_device_info info;
    int rc = cg_cuda_device_query(device_index, &info);
    if (rc) {
        char *why = cg_xstrdup(cg_error_message());   /* cg_error_set rewrites the message buffer */
        rc = cg_error_set(CG_ERR_DEVICE, "--device cuda: %s", why);
        free(why);
        return rc;
    }
    if (n)
        snprintf(what, n, "cuda:%d %s (sm_%d%d, %.0f GiB, %zu MiB free)", device_index, info.name, info.cc_major,
                 info.cc_minor, (double)info.total_mem / (1u << 30), info.free_mem >> 20);
    return CG_OK;
}

static void note_memory(cuda_backend *b) {
    size_t used = 0;
    if (cg_cuda_mem_used(&used, NULL) == CG_OK && used > b->used_peak) b->used_peak = used;
}

static void cuda_destroy(void *h) {
    cuda_backend *b = (cuda_backend *)h;
    if (!b) return;
    if (b->have_model) cg_cuda_clip_free(&b->m);
    if (b->ctx) cg_cuda_ctx_destroy(b->ctx);
    free(b->img);
    free(b->emb);
    free(b->ids);
    free(b);
}

static int cuda_create(const train_backend_args *a, void **h) {
    *h = NULL;
    if (a->args_size != sizeof(train_backend_args))
        return cg_error_set(CG_ERR_DEVICE, "--device cuda: the backend's argument block is %zu bytes, clipgrid's %zu "
                            "(rebuild both)", sizeof(train_backend_args), a->args_size);
    if (!a->opt_img || !a->opt_scale)
        return cg_error_set(CG_ERR_STATE, "--device cuda: the backend needs the run's AdamW states");
    cuda_backend *b = (cuda_backend *)cg_xcalloc(1, sizeof *b);
    b->a = *a;
    int rc = cuda_probe(a->device_index, b->device, sizeof b->device);
    if (!rc) rc = cg_cuda_mem_used(&b->used_before, NULL);
    b->used_peak = b->used_before;
    const clip_model *cpu = a->model;
    int B = a->batch, S = a->image_size, T = a->context;
    cg_precision p = prec_of(a->precision);
    if (!rc) rc = cg_cuda_ctx_create(&b->ctx, a->device_index, cg_cuda_clip_scratch_bytes(cpu, p, B, S, T, a->accum_steps));
    if (!rc) {
        rc = cg_cuda_clip_create(&b->m, b->ctx, cpu, a->opt_img, a->opt_txt, a->opt_scale, &a->acfg, a->grad_clip, p, B,
                                 S, T, a->accum_steps);
        b->have_model = rc == CG_OK;
    }
    if (rc) {
        char *why = cg_xstrdup(cg_error_message());
        rc = cg_error_set(rc, "--device cuda: batch %d of %dx%d, context %d, %s: %s", B, S, S, T,
                          train_precision_name(a->precision), why);
        free(why);
        cuda_destroy(b);
        return rc;
    }
    note_memory(b);
    b->img = (float *)cg_xmalloc((size_t)B * 3 * S * S * sizeof(float));
    b->emb = (float *)cg_xmalloc((size_t)B * cpu->embed_dim * sizeof(float));
    b->ids = (int32_t *)cg_xmalloc((size_t)B * T * sizeof(int32_t));
    *h = b;
    return CG_OK;
}

static int cuda_step(void *h, const float *images, const int32_t *ids, float lr, train_step_result *r) {
    cuda_backend *b = (cuda_backend *)h;
    memset(r, 0, sizeof *r);
    if (b->poisoned) return cg_error_set(CG_ERR_STATE, "--device cuda: a step after a non-finite loss");
    int rc = cg_cuda_clip_step(&b->m, images, ids, lr, &r->loss, &r->acc_i2t);
    if (rc) return rc;
    /* the loss is read after the update (one synchronisation a step), so unlike the CPU backend
     * the device has already applied a non-finite step: refuse to hand that model on */
    if (!isfinite(r->loss)) b->poisoned = 1;
    r->grad_norm = b->m.last_grad_norm;
    r->logit_scale = b->m.last_scale;
    if (++b->steps == 1) note_memory(b);   /* everything is allocated by now; cuBLAS may add its own once */
    return CG_OK;
}

/* rows [0, n) of emb (the staging [B, E]) -> out, L2-normalised */
static void take_rows(cuda_backend *b, int n, float *out) {
    l2_normalize_rows(b->emb, out, NULL, n, b->a.model->embed_dim);
}

static int refuse_poisoned(const cuda_backend *b) {
    return cg_error_set(CG_ERR_STATE, "--device cuda: the device model took a step on a non-finite loss; it cannot be "
                        "evaluated or saved");
}

static int cuda_encode_images(void *h, const float *images, int n, float *emb) {
    cuda_backend *b = (cuda_backend *)h;
    if (b->poisoned) return refuse_poisoned(b);
    int B = b->m.mb, E = b->a.model->embed_dim;   /* the towers' batch (a micro-batch with --accum-steps) */
    size_t plane = (size_t)3 * b->a.image_size * b->a.image_size;
    for (int s = 0; s < n; s += B) {
        int k = n - s < B ? n - s : B;
        memcpy(b->img, images + (size_t)s * plane, (size_t)k * plane * sizeof(float));
        for (int i = k; i < B; i++) memcpy(b->img + (size_t)i * plane, b->img, plane * sizeof(float));
        CG_TRY(cg_cuda_starnet_forward(&b->m.image, b->img, 0));
        CG_TRY(cg_cuda_starnet_read_emb(&b->m.image, b->emb));
        take_rows(b, k, emb + (size_t)s * E);
    }
    return CG_OK;
}

static int cuda_encode_texts(void *h, const int32_t *ids, int n, float *emb) {
    cuda_backend *b = (cuda_backend *)h;
    if (b->poisoned) return refuse_poisoned(b);
    int B = b->m.mb, T = b->a.context, E = b->a.model->embed_dim;
    for (int s = 0; s < n; s += B) {
        int k = n - s < B ? n - s : B;
        memcpy(b->ids, ids + (size_t)s * T, (size_t)k * T * sizeof(int32_t));
        for (int i = k; i < B; i++) memcpy(b->ids + (size_t)i * T, b->ids, (size_t)T * sizeof(int32_t));
        CG_TRY(cg_cuda_text_forward(&b->m.text, b->ids));
        CG_TRY(cg_cuda_text_read_emb(&b->m.text, b->emb));
        take_rows(b, k, emb + (size_t)s * E);
    }
    return CG_OK;
}

static int cuda_to_host(void *h) {
    cuda_backend *b = (cuda_backend *)h;
    if (b->poisoned) return refuse_poisoned(b);
    note_memory(b);
    return cg_cuda_clip_download(&b->m, b->a.model, b->a.opt_img, b->a.opt_txt, b->a.opt_scale, 0);
}

static void cuda_info(void *h, train_backend_info *i) {
    cuda_backend *b = (cuda_backend *)h;
    memset(i, 0, sizeof *i);
    note_memory(b);
    snprintf(i->device, sizeof i->device, "%s", b->device);
    i->allocated_bytes = b->m.image.arena.capacity + b->m.text.arena.capacity + b->m.arena.capacity +
                         cg_cuda_ctx_bytes(b->ctx);
    i->device_used_bytes = b->used_peak - b->used_before;
}

extern "C" __attribute__((visibility("default"))) const train_backend_ops *clipgrid_train_backend_cuda(void) {
    static train_backend_ops ops = {TRAIN_BACKEND_ABI, 0, "cuda", cuda_probe, cuda_create, cuda_step,
                                    cuda_encode_images, cuda_encode_texts, cuda_to_host, cuda_info, cuda_destroy};
    ops.layout_id = train_backend_layout_id();
    return &ops;
}
