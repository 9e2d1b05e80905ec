/* bench_cuda_train.c — the clipgrid side of the GPU training benchmark (issue 7), the twin of
 * bench/clip_train_gpu_torch.py: the same configurations, batch, image size, precision, random
 * inputs made once, and the same three measurements.
 *
 *   step       one CLIP training step on the device (models/cuda/clip_cuda.h: both towers,
 *              ClipLoss, global-norm clipping 1.0, AdamW lr 5e-4 wd 0.2 betas 0.9/0.98 eps 1e-6,
 *              the logit-scale clamp), images already on the device (the first step uploads
 *              them; later steps pass NULL, as PyTorch's inputs stay on the device); images/s
 *              over --steps timed steps after --warmup, each step ending in its loss read
 *              (a synchronisation); memory: the bytes clipgrid allocated (arenas, scratch,
 *              cuBLAS workspaces, allocated once: the peak) and the device-wide use it added.
 *   split      the image tower alone and the text tower alone (forward + zero_grad + backward of
 *              a fixed d_emb each), and the rest of the step (ClipLoss, clipping, AdamW): where
 *              the time goes, for the performance work.
 *   text MFU   the text tower alone: forward + zero_grad + backward of a fixed d_emb, no
 *              optimizer; 6 * N * B * T / time / peak, N = the tower's parameters without its
 *              embedding tables (token, position, token type), as the PyTorch side counts. The
 *              tower is timed again with attention on permuted copies (cg_cuda_set_attn_in_place
 *              off) for the comparison with the in-place products the step uses.
 *   kernels    --profile-steps (2) more steps with one synchronisation after every kernel, cuBLAS
 *              call and copy (cg_cuda_profile_start): each name's ms per step and share of that
 *              (slower) step, the largest first: which kernel to work on. The wall time between
 *              two synchronisations goes to the second call's name (its launch and the host's
 *              work before it included).
 *   dwconv     each stage's 7x7 depthwise conv (the first of a block, its shape at this batch
 *              and size) forward and backward alone: bytes that must move (x read, y written,
 *              weights; backward: dy and x read, dx written) / time, against the card's memory
 *              bandwidth when known; then the same with the tile kernels (cg_cuda_set_dw_planes
 *              off) for the comparison with the whole-plane kernels the step uses.
 *
 *   bench_cuda_train [--configs starnet_s1:clip:ViT-B/32,starnet_s4:bert-base-chinese]
 *                    [--batch-size 256] [--image-size 224] [--precision bf16|fp32] [--steps 10]
 *                    [--warmup 3] [--profile-steps 2] [--peak-tflops F] [--out FILE.jsonl] [--plan]
 *
 * --plan prints the device memory each configuration would take (the planning arenas) and
 * needs no device.
 *
 * One JSON object per configuration (to --out, JSON lines) and a table. Written and compiled on a
 * machine without a GPU; NOT YET RUN on one. No device: prints why and exits 77.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/json.h"
#include "core/log.h"
#include "core/rng.h"
#include "models/clip_model.h"
#include "models/cuda/clip_cuda.h"
#include "nn/cuda/cg_cuda.h"
#include "nn/cuda/cuda_ops.h"
#include "train/adamw.h"

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* Dense bf16 peak (FLOP/s) and HBM bandwidth (bytes/s) by card name, as the PyTorch side's table. */
static void card_peaks(const char *name, double *flops, double *bw) {
    *flops = 0;
    *bw = 0;
    if (strstr(name, "H200")) {
        *flops = strstr(name, "NVL") ? 835e12 : 989e12;
        *bw = 4.8e12;
    } else if (strstr(name, "H100")) {
        *flops = strstr(name, "PCIe") ? 756e12 : strstr(name, "NVL") ? 835e12 : 989e12;
        *bw = strstr(name, "PCIe") ? 2.0e12 : strstr(name, "NVL") ? 3.9e12 : 3.35e12;
    } else if (strstr(name, "A100")) {
        *flops = 312e12;
        *bw = strstr(name, "80GB") ? 2.0e12 : 1.555e12;
    }
}

typedef struct {
    const char *configs;
    int B, S, steps, warmup, profile_steps;
    cg_precision p;
    double peak_tflops;
    const char *out;
    int plan;   /* --plan: device bytes each configuration would allocate, no device needed */
} bench_opts;

/* random CLIP / BERT ids as the PyTorch side makes them */
static void make_ids(const cg_text_config *c, cg_rng *rng, int32_t *ids, int B, int T) {
    for (int b = 0; b < B; b++) {
        int n = 3 + (int)cg_rng_below(rng, (uint64_t)(T - 2));
        for (int t = 0; t < T; t++) {
            int32_t *r = ids + (int64_t)b * T + t;
            if (c->kind == CG_TEXT_CLIP)
                *r = t < n - 1 ? 1 + (int32_t)cg_rng_below(rng, (uint64_t)(c->vocab_size - 2)) : t == n - 1 ? c->vocab_size - 1 : 0;
            else
                *r = t >= n ? 0 : t == 0 ? 101 : t == n - 1 ? 102 : 1000 + (int32_t)cg_rng_below(rng, (uint64_t)(c->vocab_size - 1000));
        }
    }
}

static int64_t text_matmul_params(const cg_text_tower *t) {
    int64_t n = t->params.n_params;
    int skip[3] = {t->tok_emb, t->pos_emb, t->type_emb};
    for (int i = 0; i < 3; i++)
        if (skip[i] >= 0) n -= t->params.e[skip[i]].numel;
    return n;
}

#define PROF_ROWS 96   /* kernel names kept per configuration (cg_cuda.cu keeps as many) */
#define TRY(x) do { if ((rc = (x))) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cg_error_message()); goto out; } } while (0)

/* dwconv forward / backward alone at (C, N, H, W); GB/s of the bytes each must move */
static int bench_dwconv(cg_cuda_ctx *ctx, cg_precision p, int64_t C, int64_t N, int64_t H, int64_t W, double *fwd_gbs,
                        double *bwd_gbs) {
    size_t xs = cg_prec_size(p), act = (size_t)(C * N * H * W) * xs;
    void *x = NULL, *y = NULL, *dx = NULL, *w = NULL, *b = NULL;
    float *dw = NULL, *db = NULL;
    int rc = CG_OK, reps = 20;
    TRY(cg_cuda_malloc(&x, act));
    TRY(cg_cuda_malloc(&y, act));
    TRY(cg_cuda_malloc(&dx, act));
    TRY(cg_cuda_malloc(&w, (size_t)C * 49 * xs));
    TRY(cg_cuda_malloc(&b, (size_t)C * xs));
    TRY(cg_cuda_malloc((void **)&dw, (size_t)C * 49 * sizeof(float)));
    TRY(cg_cuda_malloc((void **)&db, (size_t)C * sizeof(float)));
    TRY(cg_cuda_fill(ctx, p, x, 0.5f, C * N * H * W));
    TRY(cg_cuda_fill(ctx, p, w, 0.01f, C * 49));
    TRY(cg_cuda_fill(ctx, p, b, 0.0f, C));
    TRY(cg_cuda_dwconv2d_forward(ctx, p, y, x, w, b, C, N, H, W, 7));
    TRY(cg_cuda_sync(ctx));
    double t0 = now_s();
    for (int i = 0; i < reps; i++) TRY(cg_cuda_dwconv2d_forward(ctx, p, y, x, w, b, C, N, H, W, 7));
    TRY(cg_cuda_sync(ctx));
    double tf = (now_s() - t0) / reps;
    TRY(cg_cuda_dwconv2d_backward(ctx, p, CG_GRAD_ADD, dx, dw, db, y, x, w, C, N, H, W, 7));
    TRY(cg_cuda_sync(ctx));
    t0 = now_s();
    for (int i = 0; i < reps; i++) TRY(cg_cuda_dwconv2d_backward(ctx, p, CG_GRAD_ADD, dx, dw, db, y, x, w, C, N, H, W, 7));
    TRY(cg_cuda_sync(ctx));
    double tb = (now_s() - t0) / reps;
    *fwd_gbs = (2.0 * act + (double)C * 50 * xs) / tf / 1e9;
    *bwd_gbs = (3.0 * act + (double)C * 50 * xs) / tb / 1e9;   /* dy, x read; dx written (+= reads it too: not counted) */
out:
    cg_cuda_free(x); cg_cuda_free(y); cg_cuda_free(dx); cg_cuda_free(w); cg_cuda_free(b);
    cg_cuda_free(dw); cg_cuda_free(db);
    return rc;
}

/* seconds per text-tower forward + zero_grad + backward of its d_emb, after one untimed pass */
static int time_text_tower(cg_cuda_text *t, const int32_t *ids, int steps, double *seconds) {
    int rc = CG_OK;
    double t0 = 0;
    TRY(cg_cuda_text_forward(t, ids));
    TRY(cg_cuda_text_backward(t, t->d_emb));
    TRY(cg_cuda_sync(t->ctx));
    t0 = now_s();
    for (int i = 0; i < steps; i++) {
        TRY(cg_cuda_text_forward(t, ids));
        TRY(cg_cuda_text_zero_grad(t));
        TRY(cg_cuda_text_backward(t, t->d_emb));
    }
    TRY(cg_cuda_sync(t->ctx));
    *seconds = (now_s() - t0) / steps;
out:
    return rc;
}

/* the benchmark's model for IMAGE x TEXT: 512-wide embeddings, seed 1, the towers' own vocab sizes */
static int bench_model(clip_model *m, const char *image, const char *text) {
    memset(m, 0, sizeof *m);
    clip_model_options mo = {.image_encoder = image, .text_encoder = text, .embed_dim = 512, .seed = 1, .vocab_size = 0,
                             .pad_id = -1, .eos_id = -1};
    int rc = clip_model_create(m, &mo);
    if (rc) fprintf(stderr, "%s x %s: %s\n", image, text, cg_error_message());
    return rc;
}

static int bench_config(const bench_opts *o, const cg_cuda_device_info *dev, const char *image, const char *text,
                        FILE *jf) {
    int B = o->B, S = o->S, rc = CG_OK;
    double peak_flops, peak_bw;
    card_peaks(dev->name, &peak_flops, &peak_bw);
    if (o->peak_tflops > 0) peak_flops = o->peak_tflops * 1e12;
    clip_model m;
    if ((rc = bench_model(&m, image, text))) return rc;
    int T = m.text.cfg.context;
    adamw_state oi, ot, os;
    adamw_init(&oi, &m.image.params);
    adamw_init(&ot, &m.text.params);
    adamw_init(&os, &m.scale);
    adamw_config acfg = {0.9f, 0.98f, 1e-6f, 0.2f};
    float *images = malloc((size_t)B * 3 * S * S * sizeof *images);
    int32_t *ids = malloc((size_t)B * T * sizeof *ids);
    cg_rng rng;
    cg_rng_seed(&rng, 5);
    cg_rng_fill_normal(&rng, images, (size_t)B * 3 * S * S, 0.0f, 1.0f);
    make_ids(&m.text.cfg, &rng, ids, B, T);
    cg_cuda_ctx *ctx = NULL;
    cg_cuda_clip dm;
    int have = 0;
    size_t used0 = 0, used1 = 0;
    cg_cuda_mem_used(&used0, NULL);
    size_t scratch = cg_cuda_clip_scratch_bytes(&m, o->p, B, S, T, 1);
    int64_t dwC[4] = {0}, dwH[4] = {0};
    for (int i = 0; i < 4; i++) { dwC[i] = m.image.widths[i]; dwH[i] = S / (4 << i); }
    for (int i = 0; i < 4; i++) {
        size_t s = cg_cuda_dwconv2d_scratch_bytes(dwC[i], B, 7);
        if (s > scratch) scratch = s;
    }
    TRY(cg_cuda_ctx_create(&ctx, 0, scratch));
    TRY(cg_cuda_clip_create(&dm, ctx, &m, &oi, &ot, &os, &acfg, 1.0f, o->p, B, S, T, 1));
    have = 1;
    float loss = 0, acc = 0;
    TRY(cg_cuda_clip_step(&dm, images, ids, 5e-4f, &loss, &acc));   /* uploads the images once */
    for (int i = 1; i < o->warmup; i++) TRY(cg_cuda_clip_step(&dm, NULL, ids, 5e-4f, &loss, &acc));
    double t0 = now_s();
    for (int i = 0; i < o->steps; i++) TRY(cg_cuda_clip_step(&dm, NULL, ids, 5e-4f, &loss, &acc));
    double step_s = (now_s() - t0) / o->steps;
    cg_cuda_mem_used(&used1, NULL);

    /* where a step goes, kernel by kernel (one synchronisation per call: a slower step) */
    cg_cuda_prof_row prof[PROF_ROWS];
    int n_prof = 0;
    double prof_step_s = 0;
    if (o->profile_steps > 0) {
        TRY(cg_cuda_profile_start(ctx));
        t0 = now_s();
        for (int i = 0; i < o->profile_steps; i++) TRY(cg_cuda_clip_step(&dm, NULL, ids, 5e-4f, &loss, &acc));
        prof_step_s = (now_s() - t0) / o->profile_steps;
        n_prof = cg_cuda_profile_stop(ctx, prof, PROF_ROWS);
        if (n_prof > PROF_ROWS) n_prof = PROF_ROWS;
    }
    size_t allocated = dm.image.arena.capacity + dm.text.arena.capacity + dm.arena.capacity + cg_cuda_ctx_bytes(ctx);

    /* the text tower alone: forward, zero_grad, backward of a fixed d_emb */
    float *demb = malloc((size_t)B * m.embed_dim * sizeof *demb);
    for (int64_t i = 0; i < (int64_t)B * m.embed_dim; i++) demb[i] = 1e-3f;
    TRY(cg_cuda_text_set_d_emb(&dm.text, demb));
    free(demb);
    double text_s = 0, text_perm_s = 0;
    TRY(time_text_tower(&dm.text, ids, o->steps, &text_s));
    /* the same with attention on permuted copies (cg_cuda_set_attn_in_place off), for the comparison */
    cg_cuda_set_attn_in_place(ctx, 0);
    TRY(time_text_tower(&dm.text, ids, o->steps, &text_perm_s));
    cg_cuda_set_attn_in_place(ctx, 1);

    /* the image tower alone, the same way (train-mode forward on the images already uploaded) */
    demb = malloc((size_t)B * m.embed_dim * sizeof *demb);
    for (int64_t i = 0; i < (int64_t)B * m.embed_dim; i++) demb[i] = 1e-3f;
    TRY(cg_cuda_starnet_set_d_emb(&dm.image, demb));
    free(demb);
    TRY(cg_cuda_starnet_forward(&dm.image, NULL, 1));
    TRY(cg_cuda_starnet_backward(&dm.image, dm.image.d_emb));
    TRY(cg_cuda_sync(ctx));
    t0 = now_s();
    for (int i = 0; i < o->steps; i++) {
        TRY(cg_cuda_starnet_forward(&dm.image, NULL, 1));
        TRY(cg_cuda_starnet_zero_grad(&dm.image));
        TRY(cg_cuda_starnet_backward(&dm.image, dm.image.d_emb));
    }
    TRY(cg_cuda_sync(ctx));
    double image_s = (now_s() - t0) / o->steps;
    /* the rest of a step: ClipLoss, clipping, AdamW, the loss read (step - both towers) */
    double rest_s = step_s - image_s - text_s;
    double n_text = (double)text_matmul_params(&m.text);
    double text_flops = 6.0 * n_text * B * T;
    double mfu_text = peak_flops > 0 ? text_flops / text_s / peak_flops : NAN;

    /* free the model's memory before the dwconv buffers */
    cg_cuda_clip_free(&dm);
    have = 0;
    double fwd[4] = {0}, bwd[4] = {0}, fwdt[4] = {0}, bwdt[4] = {0};
    for (int i = 0; i < 4; i++) TRY(bench_dwconv(ctx, o->p, dwC[i], B, dwH[i], dwH[i], &fwd[i], &bwd[i]));
    cg_cuda_set_dw_planes(ctx, 0);   /* the tile kernels, for the comparison */
    for (int i = 0; i < 4; i++) TRY(bench_dwconv(ctx, o->p, dwC[i], B, dwH[i], dwH[i], &fwdt[i], &bwdt[i]));
    cg_cuda_set_dw_planes(ctx, 1);

    double ips = B / step_s;
    printf("%-12s x %-18s %s B=%d S=%d: %8.1f img/s  %7.1f ms/step  loss %.4f  allocated %.2f GiB (device +%.2f GiB)  "
           "text %.1f ms fwd+bwd, MFU %.1f%%\n", image, text, cg_prec_name(o->p), B, S, ips, step_s * 1e3, loss,
           allocated / 1073741824.0, (double)(used1 - used0) / 1073741824.0, text_s * 1e3, 100 * mfu_text);
    printf("    step split: image tower %.1f ms fwd+bwd, text tower %.1f ms (%.1f ms with attention on permuted "
           "copies), the rest (loss, clip, AdamW) %.1f ms\n", image_s * 1e3, text_s * 1e3, text_perm_s * 1e3,
           rest_s * 1e3);
    if (n_prof > 0) {
        printf("    profiled step (a sync after every call) %.1f ms; the largest:\n", prof_step_s * 1e3);
        for (int i = 0; i < n_prof && i < 12; i++)
            printf("      %-40s %8.2f ms/step %5.1f%%  %6.1f calls/step\n", prof[i].name,
                   prof[i].seconds * 1e3 / o->profile_steps, 100 * prof[i].seconds / o->profile_steps / prof_step_s,
                   (double)prof[i].calls / o->profile_steps);
    }
    for (int i = 0; i < 4; i++)
        printf("    dwconv 7x7 stage %d [C %lld, N %d, %lldx%lld]: forward %.0f GB/s, backward %.0f GB/s "
               "(tile kernels: %.0f, %.0f)%s\n", i, (long long)dwC[i], B, (long long)dwH[i], (long long)dwH[i], fwd[i],
               bwd[i], fwdt[i], bwdt[i], peak_bw > 0 ? "" : " (card bandwidth unknown)");
    if (jf) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "side", "clipgrid");
        cJSON_AddStringToObject(j, "image", image);
        cJSON_AddStringToObject(j, "text", text);
        cJSON_AddStringToObject(j, "card", dev->name);
        cJSON_AddStringToObject(j, "precision", cg_prec_name(o->p));
        cJSON_AddNumberToObject(j, "batch", B);
        cJSON_AddNumberToObject(j, "image_size", S);
        cJSON_AddNumberToObject(j, "context", T);
        cJSON_AddNumberToObject(j, "images_per_s", ips);
        cJSON_AddNumberToObject(j, "step_ms", step_s * 1e3);
        cJSON_AddNumberToObject(j, "loss_last", loss);
        cJSON_AddNumberToObject(j, "allocated_gib", allocated / 1073741824.0);
        cJSON_AddNumberToObject(j, "device_used_gib", (double)(used1 - used0) / 1073741824.0);
        cJSON_AddNumberToObject(j, "text_fwd_bwd_ms", text_s * 1e3);
        cJSON_AddNumberToObject(j, "text_fwd_bwd_ms_attn_permuted", text_perm_s * 1e3);
        cJSON_AddNumberToObject(j, "image_fwd_bwd_ms", image_s * 1e3);
        cJSON_AddNumberToObject(j, "rest_ms", rest_s * 1e3);
        cJSON_AddNumberToObject(j, "text_params_matmul", n_text);
        if (peak_flops > 0) cJSON_AddNumberToObject(j, "mfu_text", mfu_text);
        if (n_prof > 0) {
            cJSON_AddNumberToObject(j, "profiled_step_ms", prof_step_s * 1e3);
            cJSON *ks = cJSON_AddArrayToObject(j, "kernels");
            for (int i = 0; i < n_prof; i++) {
                cJSON *k = cJSON_CreateObject();
                cJSON_AddStringToObject(k, "name", prof[i].name);
                cJSON_AddNumberToObject(k, "ms_per_step", prof[i].seconds * 1e3 / o->profile_steps);
                cJSON_AddNumberToObject(k, "calls_per_step", (double)prof[i].calls / o->profile_steps);
                cJSON_AddItemToArray(ks, k);
            }
        }
        cJSON *dw = cJSON_AddArrayToObject(j, "dwconv");
        for (int i = 0; i < 4; i++) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddNumberToObject(d, "stage", i);
            cJSON_AddNumberToObject(d, "C", (double)dwC[i]);
            cJSON_AddNumberToObject(d, "HW", (double)dwH[i]);
            cJSON_AddNumberToObject(d, "forward_gbs", fwd[i]);
            cJSON_AddNumberToObject(d, "backward_gbs", bwd[i]);
            cJSON_AddNumberToObject(d, "forward_gbs_tiles", fwdt[i]);
            cJSON_AddNumberToObject(d, "backward_gbs_tiles", bwdt[i]);
            if (peak_bw > 0) cJSON_AddNumberToObject(d, "forward_of_peak", fwd[i] * 1e9 / peak_bw);
            cJSON_AddItemToArray(dw, d);
        }
        char *line = cJSON_PrintUnformatted(j);
        fprintf(jf, "%s\n", line);
        fflush(jf);
        free(line);
        cJSON_Delete(j);
    }
out:
    if (have) cg_cuda_clip_free(&dm);
    if (ctx) cg_cuda_ctx_destroy(ctx);
    free(images);
    free(ids);
    adamw_free(&oi); adamw_free(&ot); adamw_free(&os);
    clip_model_free(&m);
    return rc;
}

/* --plan: what cg_cuda_clip_create and its context would allocate (arenas and scratch; the
 * cuBLAS workspaces come on top), from the planning arenas: no device needed. */
static int plan_config(const bench_opts *o, const char *image, const char *text) {
    clip_model m;
    if (bench_model(&m, image, text)) return 1;
    int T = m.text.cfg.context;
    size_t arena = cg_cuda_clip_arena_bytes(&m, o->p, o->B, o->S, T, 1);
    size_t scratch = cg_cuda_clip_scratch_bytes(&m, o->p, o->B, o->S, T, 1);
    size_t img = cg_cuda_starnet_arena_bytes(&m.image, o->p, o->B, o->S, o->S);
    size_t txt = cg_cuda_text_arena_bytes(&m.text, o->p, o->B, T);
    printf("%-12s x %-18s %s B=%d S=%d T=%d: %.2f GiB planned (image tower %.2f, text tower %.2f, the rest %.2f, "
           "scratch %.2f)\n", image, text, cg_prec_name(o->p), o->B, o->S, T, (arena + scratch) / 1073741824.0,
           img / 1073741824.0, txt / 1073741824.0, (arena - img - txt) / 1073741824.0, scratch / 1073741824.0);
    clip_model_free(&m);
    return 0;
}

int main(int argc, char **argv) {
    bench_opts o = {"starnet_s1:clip:ViT-B/32,starnet_s4:bert-base-chinese", 256, 224, 10, 3, 2, CG_PREC_BF16, 0, NULL, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--plan")) { o.plan = 1; continue; }
        if (!v) { fprintf(stderr, "%s: needs a value\n", a); return 2; }
        if (!strcmp(a, "--configs")) o.configs = v;
        else if (!strcmp(a, "--batch-size")) o.B = atoi(v);
        else if (!strcmp(a, "--image-size")) o.S = atoi(v);
        else if (!strcmp(a, "--steps")) o.steps = atoi(v);
        else if (!strcmp(a, "--warmup")) o.warmup = atoi(v);
        else if (!strcmp(a, "--profile-steps")) o.profile_steps = atoi(v);
        else if (!strcmp(a, "--peak-tflops")) o.peak_tflops = atof(v);
        else if (!strcmp(a, "--out")) o.out = v;
        else if (!strcmp(a, "--precision")) {
            if (!strcmp(v, "bf16")) o.p = CG_PREC_BF16;
            else if (!strcmp(v, "fp32")) o.p = CG_PREC_FP32;
            else { fprintf(stderr, "--precision %s: fp32 or bf16\n", v); return 2; }
        } else { fprintf(stderr, "unknown option %s (see the comment at the top of bench/bench_cuda_train.c)\n", a); return 2; }
        i++;
    }
    if (o.B < 2 || o.S < 32 || o.steps < 1 || o.warmup < 1 || o.profile_steps < 0) {
        fprintf(stderr, "bad --batch-size/--image-size/--steps/--warmup/--profile-steps\n");
        return 2;
    }
    cg_cuda_device_info dev;
    memset(&dev, 0, sizeof dev);
    if (!o.plan) {
        if (cg_cuda_device_query(0, &dev)) { printf("%s: skipped\n", cg_error_message()); return 77; }
        printf("%s (sm_%d%d, %d SMs, %.0f GiB)\n", dev.name, dev.cc_major, dev.cc_minor, dev.sm_count,
               (double)dev.total_mem / 1073741824.0);
    }
    FILE *jf = o.out && !o.plan ? fopen(o.out, "a") : NULL;
    if (o.out && !o.plan && !jf) { perror(o.out); return 2; }
    char *list = cg_xstrdup(o.configs);
    int failures = 0;
    for (char *save = NULL, *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(c, ':');
        if (!colon) { fprintf(stderr, "--configs: \"%s\" is not IMAGE:TEXT\n", c); failures++; continue; }
        *colon = 0;
        if (o.plan ? plan_config(&o, c, colon + 1) : bench_config(&o, &dev, c, colon + 1, jf)) failures++;
    }
    free(list);
    if (jf) fclose(jf);
    return failures ? 1 : 0;
}
