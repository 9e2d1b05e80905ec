/* bench_text.c — text tower forward+backward throughput on CPU, side by side with PyTorch.
 *
 *   build/bench/bench_text [--threads 2] [--batch 16] [--iters 3]
 *                          [--models clip:tiny,bert:tiny,clip:ViT-B/32,bert-base-chinese]
 *                          [--python PY] [--json out.json]
 *
 * For each zoo text encoder: sequences/s of one training step at its context length (77 CLIP,
 * 52 BERT; full-length texts): forward, backward of sum(emb * r) into every parameter gradient
 * (no optimizer), and the share of the step spent in GEMM. With a Python that has torch +
 * transformers (--python, $CLIPGRID_TORCH_PYTHON, or /work/venv/bin/python), bench/text_torch.py
 * measures the HF model of the same config right after ours (same threads, batch, length).
 * Both sides report the best of --iters steps after one warm-up (the machine may be shared).
 */
#include <cjson/cJSON.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "core/rng.h"
#include "models/text_transformer.h"
#include "nn/gemm.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    char model[48];
    int T;
    double sps, step_s, fwd_s, gemm_share, gemm_gflops, torch_sps;
} result;

static double torch_run(const char *py, const char *model, int batch, int threads, int iters) {
    char out[256], cmd[2048], dir[1024];
    snprintf(dir, sizeof dir, "%s", __FILE__);  /* this file's directory holds text_torch.py */
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, "bench");
    snprintf(out, sizeof out, "/tmp/bench_text_torch_%d.json", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s %s/text_torch.py --models '%s' --batch %d --threads %d --iters %d --json %s", py, dir,
             model, batch, threads, iters, out);
    fprintf(stderr, "[INFO] %s\n", cmd);
    if (system(cmd) != 0) return -1;
    char *text;
    size_t len;
    if (cg_file_read(out, &text, &len)) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    unlink(out);
    double sps = -1;
    cJSON *it = cJSON_GetArrayItem(root, 0);
    if (it && cJSON_GetObjectItem(it, "sps")) sps = cJSON_GetObjectItem(it, "sps")->valuedouble;
    cJSON_Delete(root);
    return sps;
}

int main(int argc, char **argv) {
    int threads = 2, batch = 16, iters = 3;
    const char *models = "clip:tiny,bert:tiny,clip:ViT-B/32,bert-base-chinese", *py = getenv("CLIPGRID_TORCH_PYTHON"),
               *json = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--models")) models = argv[i + 1];
        else if (!strcmp(argv[i], "--python")) py = argv[i + 1];
        else if (!strcmp(argv[i], "--json")) json = argv[i + 1];
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (!py && access("/work/venv/bin/python", X_OK) == 0) py = "/work/venv/bin/python";
    if (py && !strcmp(py, "none")) py = NULL;
    omp_set_num_threads(threads);
    printf("threads %d, batch %d, best of %d steps after 1 warm-up, embedding width 512\n", threads, batch, iters);
    result res[16];
    int nres = 0;
    char mlist[256];
    snprintf(mlist, sizeof mlist, "%s", models);
    for (char *save = NULL, *tok = strtok_r(mlist, ",", &save); tok && nres < 16; tok = strtok_r(NULL, ",", &save)) {
        cg_text_tower m;
        if (cg_text_create_named(&m, tok, 512, 1)) { fprintf(stderr, "%s\n", cg_error_message()); return 2; }
        int T = m.cfg.context, V = m.cfg.vocab_size;
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)batch * T);
        float *r = malloc(sizeof(float) * (size_t)batch * 512);
        cg_rng rng;
        cg_rng_seed(&rng, 2);
        for (int i = 0; i < batch * T; i++) ids[i] = 1 + (int32_t)cg_rng_below(&rng, (uint64_t)V - 2);
        for (int b = 0; b < batch; b++) ids[(int64_t)b * T + T - 1] = V - 1;
        cg_rng_fill_normal(&rng, r, (size_t)batch * 512, 0, 1);
        cg_params_zero_grad(&m.params);
        if (cg_text_forward(&m, ids, batch, T)) { fprintf(stderr, "%s\n", cg_error_message()); return 1; }
        cg_text_backward(&m, r);  /* warm-up (allocates the arena) */
        cg_gemm_profile(1);
        double t = 1e30, tf = 0, gs = 0, gf = 0;
        for (int it = 0; it < iters; it++) {
            cg_gemm_stats_reset();
            double t0 = now();
            cg_params_zero_grad(&m.params);
            cg_text_forward(&m, ids, batch, T);
            double t1 = now();
            cg_text_backward(&m, r);
            double t2 = now();
            if (t2 - t0 < t) { t = t2 - t0; tf = t1 - t0; cg_gemm_stats(&gs, &gf); }
        }
        cg_gemm_profile(0);
        result *q = &res[nres++];
        memset(q, 0, sizeof *q);
        snprintf(q->model, sizeof q->model, "%s", tok);
        q->T = T;
        q->step_s = t;
        q->fwd_s = tf;
        q->sps = batch / t;
        q->gemm_share = gs / t;
        q->gemm_gflops = gs > 0 ? gf / gs / 1e9 : 0;
        q->torch_sps = -1;
        fprintf(stderr, "[INFO] %s: %.2f seq/s\n", tok, q->sps);
        free(ids); free(r);
        cg_text_free(&m);
        /* PyTorch right after, on the same config */
        if (py) q->torch_sps = torch_run(py, tok, batch, threads, iters);
    }
    printf("\n%-18s %4s %10s %10s %7s %8s %8s %7s %8s\n", "model", "T", "seq/s", "torch", "ratio", "step s", "fwd s", "GEMM%",
           "GEMM GF");
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "results");
    cJSON_AddNumberToObject(root, "threads", threads);
    cJSON_AddNumberToObject(root, "batch", batch);
    for (int i = 0; i < nres; i++) {
        result *q = &res[i];
        char tv[16] = "n/a", rv[16] = "n/a";
        if (q->torch_sps > 0) {
            snprintf(tv, sizeof tv, "%.2f", q->torch_sps);
            snprintf(rv, sizeof rv, "%.2fx", q->sps / q->torch_sps);
        }
        printf("%-18s %4d %10.2f %10s %7s %8.3f %8.3f %6.1f%% %8.1f\n", q->model, q->T, q->sps, tv, rv, q->step_s, q->fwd_s,
               100 * q->gemm_share, q->gemm_gflops);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", q->model);
        cJSON_AddNumberToObject(o, "context", q->T);
        cJSON_AddNumberToObject(o, "sequences_per_s", q->sps);
        cJSON_AddNumberToObject(o, "torch_sequences_per_s", q->torch_sps);
        cJSON_AddNumberToObject(o, "step_s", q->step_s);
        cJSON_AddNumberToObject(o, "forward_s", q->fwd_s);
        cJSON_AddNumberToObject(o, "gemm_share", q->gemm_share);
        cJSON_AddNumberToObject(o, "gemm_gflops", q->gemm_gflops);
        cJSON_AddItemToArray(arr, o);
    }
    printf("\nseq/s: sequences per second of forward + backward (all parameter gradients); GEMM%%: share of the step\n"
           "in cg_gemm (attention's per-head products included), GEMM GF: their rate.\n");
    if (json) {
        char *s = cJSON_Print(root);
        cg_file_write_atomic(json, s, strlen(s));
        free(s);
    }
    cJSON_Delete(root);
    return 0;
}
