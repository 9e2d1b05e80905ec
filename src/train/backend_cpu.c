/* backend_cpu.c — the CPU backend (train/backend.h): the reference, fp32, OpenMP + BLAS.
 *
 * One step is what the trainer always did: clip_model_step_accum (forward, ClipLoss, backward),
 * clip_grad_norm over the image set, the text set (unless frozen) and the scale, adamw_step per
 * set with one lr, then the logit-scale clamp. A non-finite loss returns before the update, so
 * the model keeps its last good values. Nothing to copy back: the model is the CPU's own.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "train/backend.h"

typedef struct {
    train_backend_args a;
} cpu_backend;

static int cpu_probe(int device_index, char *what, size_t n) {
    if (n) snprintf(what, n, "cpu");
    return CG_OK;
}

static int cpu_create(const train_backend_args *a, void **h) {
    if (a->precision != TRAIN_PREC_FP32)
        return cg_error_set(CG_ERR_USAGE, "--precision %s: the CPU trains in fp32 only (bf16 is for --device cuda)",
                            train_precision_name(a->precision));
    cpu_backend *b = cg_xcalloc(1, sizeof *b);
    b->a = *a;
    *h = b;
    return CG_OK;
}

static int cpu_step(void *h, const float *images, const int32_t *ids, float lr, train_step_result *r) {
    cpu_backend *b = h;
    const train_backend_args *a = &b->a;
    clip_model *m = a->model;
    if (!a->opt_img || !a->opt_scale) return cg_error_set(CG_ERR_STATE, "cpu backend: opened for evaluation only");
    memset(r, 0, sizeof *r);
    int rc = clip_model_step_accum(m, images, a->batch, a->image_size, ids, a->context, a->accum_steps, &r->loss,
                                   &r->acc_i2t);
    if (rc || !isfinite(r->loss)) return rc;
    int frozen_text = a->opt_txt == NULL;
    cg_params *sets[3] = {&m->image.params, &m->text.params, &m->scale};
    const unsigned char *frozen[3] = {a->opt_img->frozen, frozen_text ? NULL : a->opt_txt->frozen, a->opt_scale->frozen};
    int nsets = 3;
    if (frozen_text) {
        sets[1] = &m->scale;
        frozen[1] = a->opt_scale->frozen;
        nsets = 2;
    }
    r->grad_norm = clip_grad_norm(sets, frozen, nsets, a->grad_clip);
    adamw_step(a->opt_img, &m->image.params, &a->acfg, lr);
    if (!frozen_text) adamw_step(a->opt_txt, &m->text.params, &a->acfg, lr);
    adamw_step(a->opt_scale, &m->scale, &a->acfg, lr);
    clip_model_clamp_scale(m);
    r->logit_scale = m->scale.params[0];
    return CG_OK;
}

static int cpu_encode_images(void *h, const float *images, int n, float *emb) {
    cpu_backend *b = h;
    if (n > 0) clip_model_encode_images(b->a.model, images, n, b->a.image_size, emb);
    return CG_OK;
}

static int cpu_encode_texts(void *h, const int32_t *ids, int n, float *emb) {
    cpu_backend *b = h;
    return n > 0 ? clip_model_encode_texts(b->a.model, ids, n, b->a.context, emb) : CG_OK;
}

static int cpu_to_host(void *h) { return CG_OK; }

static void cpu_info(void *h, train_backend_info *i) {
    memset(i, 0, sizeof *i);
    snprintf(i->device, sizeof i->device, "cpu");
}

static void cpu_destroy(void *h) { free(h); }

const train_backend_ops *train_backend_cpu_ops(void) {
    static train_backend_ops ops = {TRAIN_BACKEND_ABI, 0, "cpu", cpu_probe, cpu_create, cpu_step,
                                    cpu_encode_images, cpu_encode_texts, cpu_to_host, cpu_info, cpu_destroy};
    ops.layout_id = train_backend_layout_id();
    return &ops;
}
