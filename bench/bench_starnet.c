/* bench_starnet.c — StarNet forward+backward throughput on CPU, side by side with PyTorch.
 *
 *   build/bench/bench_starnet [--threads 2] [--batch 32] [--iters 3] [--models s050,s1,s4]
 *                             [--sizes 64,224] [--python PY] [--json out.json]
 *
 * For each model and image size: images/s of one training step (train-mode forward, backward
 * of sum(emb * r); no optimizer), the share of the step spent in GEMM (cg_gemm wall time) and
 * the GEMM rate against this machine's measured sgemm peak, and the time and achieved memory
 * bandwidth of the depthwise 7x7 convolutions (run alone on the model's shapes). With a Python
 * that has torch + timm (--python, $CLIPGRID_TORCH_PYTHON, or /work/venv/bin/python when it
 * exists), bench/starnet_torch.py measures timm's model the same way (same threads, batch,
 * sizes), config by config right after ours, and its figures are printed next to ours.
 * Both sides report the best of --iters steps (robust on a machine shared with other work).
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
#include "models/starnet.h"
#include "nn/dwconv2d.h"
#include "nn/gemm.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* sgemm peak: best of a few 1536^3 products split over the threads (as cg_gemm runs them). */
static double sgemm_peak_gflops(void) {
    int n = 1536;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = calloc((size_t)n * n, sizeof(float));
    cg_rng r;
    cg_rng_seed(&r, 1);
    cg_rng_fill_uniform(&r, a, (size_t)n * n, -1, 1);
    cg_rng_fill_uniform(&r, b, (size_t)n * n, -1, 1);
    double best = 0;
    for (int it = 0; it < 4; it++) {
        double t = now();
        cg_gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t = now() - t;
        double gf = 2.0 * n * n * n / t / 1e9;
        if (gf > best) best = gf;
    }
    free(a); free(b); free(c);
    return best;
}

typedef struct {
    char model[48];
    int size;
    double ips, step_s, gemm_share, gemm_gflops, dw_s, dw_share, dw_gbs, dw_gflops, torch_ips;
} result;

/* Depthwise convs of the model at this batch, alone: time and bytes (fwd: read x, write y;
 * bwd: read dy and x, read+write dx). Two per block. */
static void dw_bench(const cg_starnet *m, int N, int H, double *seconds, double *gbs, double *gflops) {
    double t_total = 0, bytes = 0, flops = 0;
    int h = (H + 1) / 2;
    for (int i = 0, k = 0; i < 4; i++) {
        h = (h + 1) / 2;
        int C = m->widths[i];
        int64_t n = (int64_t)C * N * h * h;
        float *x = calloc((size_t)n, sizeof(float)), *y = calloc((size_t)n, sizeof(float)), *dx = calloc((size_t)n, sizeof(float));
        float *w = calloc((size_t)C * 49, sizeof(float)), *dw = calloc((size_t)C * 49, sizeof(float));
        float *b = calloc((size_t)C, sizeof(float)), *db = calloc((size_t)C, sizeof(float));
        cg_tensor tx = cg_tensor_4d(x, CG_DEV_CPU, C, N, h, h), ty = cg_tensor_4d(y, CG_DEV_CPU, C, N, h, h);
        cg_tensor tdx = cg_tensor_4d(dx, CG_DEV_CPU, C, N, h, h), tw = cg_tensor_4d(w, CG_DEV_CPU, C, 1, 7, 7);
        cg_tensor tdw = cg_tensor_4d(dw, CG_DEV_CPU, C, 1, 7, 7), tb = cg_tensor_1d(b, CG_DEV_CPU, C), tdb = cg_tensor_1d(db, CG_DEV_CPU, C);
        cg_dwconv2d_forward(&ty, &tx, &tw, &tb);  /* warm */
        double t = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now();
            cg_dwconv2d_forward(&ty, &tx, &tw, &tb);
            cg_dwconv2d_backward(&tdx, &tdw, &tdb, &ty, &tx, &tw);
            t0 = now() - t0;
            if (t0 < t) t = t0;
        }
        int nb = m->cfg.depths[i];
        t_total += t * 2 * nb;
        bytes += (2.0 + 4.0) * 4.0 * (double)n * 2 * nb;
        flops += 3.0 * 2.0 * 49.0 * (double)n * 2 * nb;  /* fwd, dx, dw: 49 MACs per element each */
        k += nb;
        free(x); free(y); free(dx); free(w); free(dw); free(b); free(db);
    }
    *seconds = t_total;
    *gbs = bytes / t_total / 1e9;
    *gflops = flops / t_total / 1e9;
}

static int run_torch(const char *py, const char *models, const char *sizes, int batch, int threads, int iters, result *res,
                     int nres) {
    char out[256], cmd[2048], dir[1024];
    snprintf(dir, sizeof dir, "%s", __FILE__);  /* this file's directory holds starnet_torch.py */
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, "bench");
    snprintf(out, sizeof out, "/tmp/bench_starnet_torch_%d.json", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s %s/starnet_torch.py --models %s --sizes %s --batch %d --threads %d --iters %d --json %s",
             py, dir, models, sizes, batch, threads, iters, out);
    fprintf(stderr, "[INFO] %s\n", cmd);
    if (system(cmd) != 0) return -1;
    char *text;
    size_t len;
    if (cg_file_read(out, &text, &len)) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    unlink(out);
    cJSON *it;
    cJSON_ArrayForEach(it, root) {
        const char *name = cJSON_GetObjectItem(it, "model")->valuestring;
        int size = cJSON_GetObjectItem(it, "size")->valueint;
        for (int i = 0; i < nres; i++)
            if (!strcmp(res[i].model, name) && res[i].size == size) res[i].torch_ips = cJSON_GetObjectItem(it, "ips")->valuedouble;
    }
    cJSON_Delete(root);
    return 0;
}

int main(int argc, char **argv) {
    int threads = 2, batch = 32, iters = 3;
    const char *models = "s050,s1,s4", *sizes = "64,224", *py = getenv("CLIPGRID_TORCH_PYTHON"), *json = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--models")) models = argv[i + 1];
        else if (!strcmp(argv[i], "--sizes")) sizes = argv[i + 1];
        else if (!strcmp(argv[i], "--python")) py = argv[i + 1];
        else if (!strcmp(argv[i], "--json")) json = argv[i + 1];
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (!py && access("/work/venv/bin/python", X_OK) == 0) py = "/work/venv/bin/python";
    omp_set_num_threads(threads);
    double peak = sgemm_peak_gflops();
    printf("threads %d, batch %d, best of %d steps after 1 warm-up; sgemm peak %.1f GFLOP/s (1536^3, %d threads)\n", threads,
           batch, iters, peak, threads);
    result res[32];
    int nres = 0;
    char mlist[256];
    snprintf(mlist, sizeof mlist, "%s", models);
    for (char *save = NULL, *tok = strtok_r(mlist, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char name[40];
        snprintf(name, sizeof name, "starnet_%s", tok);
        const cg_starnet_config *cfg = cg_zoo_starnet(name);
        if (!cfg) { cg_zoo_unknown_image(name); fprintf(stderr, "%s\n", cg_error_message()); return 2; }
        char slist[128];
        snprintf(slist, sizeof slist, "%s", sizes);
        for (char *s2 = NULL, *st = strtok_r(slist, ",", &s2); st; st = strtok_r(NULL, ",", &s2)) {
            int S = atoi(st);
            cg_starnet m;
            cg_starnet_create(&m, cfg, 512, 0.0f, 1);
            float *x = malloc(sizeof(float) * (size_t)batch * 3 * S * S), *r = malloc(sizeof(float) * (size_t)batch * 512);
            cg_rng rng;
            cg_rng_seed(&rng, 2);
            cg_rng_fill_normal(&rng, x, (size_t)batch * 3 * S * S, 0, 1);
            cg_rng_fill_normal(&rng, r, (size_t)batch * 512, 0, 1);
            cg_params_zero_grad(&m.params);
            cg_starnet_forward(&m, x, batch, S, S, 1);  /* warm-up (allocates the arena) */
            cg_starnet_backward(&m, r);
            cg_gemm_profile(1);
            /* best of `iters` steps: robust against other processes on a shared machine */
            double t = 1e30, gs = 0, gf = 0;
            for (int it = 0; it < iters; it++) {
                cg_gemm_stats_reset();
                double t0 = now();
                cg_params_zero_grad(&m.params);
                cg_starnet_forward(&m, x, batch, S, S, 1);
                cg_starnet_backward(&m, r);
                t0 = now() - t0;
                if (t0 < t) { t = t0; cg_gemm_stats(&gs, &gf); }
            }
            cg_gemm_profile(0);
            result *q = &res[nres++];
            memset(q, 0, sizeof *q);
            snprintf(q->model, sizeof q->model, "%s", name);
            q->size = S;
            q->step_s = t;
            q->ips = batch / t;
            q->gemm_share = gs / t;
            q->gemm_gflops = gf / gs / 1e9;
            dw_bench(&m, batch, S, &q->dw_s, &q->dw_gbs, &q->dw_gflops);
            q->dw_share = q->dw_s / t;
            q->torch_ips = -1;
            fprintf(stderr, "[INFO] %s %d: %.2f img/s\n", name, S, q->ips);
            /* PyTorch right after, on the same config: the machine may be shared, so both sides
             * are measured close in time and each reports its best step */
            if (py && run_torch(py, tok, st, batch, threads, iters, q, 1)) fprintf(stderr, "[WARN] PyTorch run failed\n");
            free(x); free(r);
            cg_starnet_free(&m);
        }
    }
    printf("\n%-13s %5s %10s %10s %7s %8s %8s %8s %9s %8s %7s\n", "model", "size", "img/s", "torch", "ratio", "step s", "GEMM%",
           "GEMM GF", "dwconv%", "dw GB/s", "dw GF");
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "results");
    cJSON_AddNumberToObject(root, "threads", threads);
    cJSON_AddNumberToObject(root, "batch", batch);
    cJSON_AddNumberToObject(root, "sgemm_peak_gflops", peak);
    for (int i = 0; i < nres; i++) {
        result *q = &res[i];
        char tv[16] = "n/a", rv[16] = "n/a";
        if (q->torch_ips > 0) {
            snprintf(tv, sizeof tv, "%.2f", q->torch_ips);
            snprintf(rv, sizeof rv, "%.2fx", q->ips / q->torch_ips);
        }
        printf("%-13s %5d %10.2f %10s %7s %8.3f %7.1f%% %8.1f %8.1f%% %8.1f %7.1f\n", q->model, q->size, q->ips, tv, rv,
               q->step_s, 100 * q->gemm_share, q->gemm_gflops, 100 * q->dw_share, q->dw_gbs, q->dw_gflops);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", q->model);
        cJSON_AddNumberToObject(o, "size", q->size);
        cJSON_AddNumberToObject(o, "images_per_s", q->ips);
        cJSON_AddNumberToObject(o, "torch_images_per_s", q->torch_ips);
        cJSON_AddNumberToObject(o, "gemm_share", q->gemm_share);
        cJSON_AddNumberToObject(o, "gemm_gflops", q->gemm_gflops);
        cJSON_AddNumberToObject(o, "dwconv_share", q->dw_share);
        cJSON_AddNumberToObject(o, "dwconv_gbs", q->dw_gbs);
        cJSON_AddNumberToObject(o, "dwconv_gflops", q->dw_gflops);
        cJSON_AddItemToArray(arr, o);
    }
    printf("\nGEMM%%: share of the step in cg_gemm; GEMM GF: its rate (peak %.1f); dwconv%%: the 7x7 depthwise convs run\n"
           "alone on the model's shapes (fwd+bwd), dw GB/s: bytes they must move / their time, dw GF: their FLOP rate.\n", peak);
    if (json) {
        char *s = cJSON_Print(root);
        cg_file_write_atomic(json, s, strlen(s));
        free(s);
    }
    cJSON_Delete(root);
    return 0;
}
