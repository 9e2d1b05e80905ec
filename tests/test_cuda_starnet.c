/* test_cuda_starnet.c — the device StarNet tower (models/cuda/starnet_cuda.h) against the CPU model
 * (models/starnet.h), which is the timm-exact reference.
 *
 * starnet_s050 with a 32-wide head, built on the CPU from a seed, copied to the device; B = 3
 * images of 64x64. For fp32 and bf16, without DropPath and with rate 0.3 (the device draws the
 * CPU's per-sample scales from its copy of the generator: the same comparisons hold, and after
 * the train-mode pass both generators are in the same state):
 *   1. upload then download gives back the parameters, buffers and counters bit for bit, and a
 *      checkpoint saved from the downloaded copy loads into a fresh model with the same values;
 *   2. train mode: forward (embedding), backward from a random d_emb (every parameter gradient),
 *      running statistics and num_batches_tracked after the step;
 *   3. eval mode (running statistics from step 2): forward and every parameter gradient.
 * In bf16 mode the CPU model's parameters, the images and d_emb are first rounded to bf16, so
 * the CPU computes in fp32 on the values the device holds; the error measured is the device's
 * bf16 storage of activations and activation gradients through the whole tower.
 *
 * Metric per tensor: max |gpu - cpu| / max |cpu|. Tolerances: fp32 forward 1e-4, gradients
 * 1e-3, running stats 1e-4; bf16 forward 5e-2, running stats 2e-2, gradients 0.4 with an L2
 * relative error (||gpu - cpu|| / ||cpu||) within 0.15 — bf16 activations flip ReLU6 masks and
 * BatchNorm over 12 values (the last stage at B = 3) amplifies: on the CPU emulator
 * (tools/cuda_emu) the worst were max 0.25 / L2 0.10 in train mode, 0.10 / 0.036 in eval mode,
 * forward 0.011, running stats 0.018; fp32 forward 6.4e-7, gradients 1.2e-5, stats 7.8e-7.
 * A tensor with a zero true gradient (conv biases before a train-mode BN) is held to the
 * zero-gradient rule of cuda_check.h instead. Not yet run on a GPU. NaN never passes.
 *
 * No device: prints "no CUDA device: skipped" and exits 77 (ctest: skipped).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cuda_check.h"
#include "core/log.h"
#include "core/rng.h"
#include "models/cuda/starnet_cuda.h"
#include "models/starnet.h"
#include "models/zoo.h"
#include "nn/cuda/cg_cuda.h"
#include "nn/params.h"

#define B 3
#define HW 64
#define EMBED 32
#define SEED 1234

static cg_cuda_ctx *ctx;



#define VERBOSE "CLIPGRID_CUDA_STARNET_VERBOSE"

static void compare_buffers(const char *what, cg_precision p, const cg_params *got, const cg_params *ref, double tol) {
    for (int i = 0; i < ref->n; i++) {
        const cg_param_entry *e = &ref->e[i];
        if (e->kind == CG_KIND_BUFFER)
            cmp_tensor(VERBOSE, what, e->name, p, 2, got->buffers + e->offset, ref->buffers + e->offset, e->numel, tol, 0);
        else if (e->kind == CG_KIND_COUNTER)
            CHECK_EQ_INT(got->counters[e->offset], ref->counters[e->offset]);
    }
}

static void run_precision(cg_precision p, float drop) {
    const cg_starnet_config *cfg = cg_zoo_starnet("starnet_s050");
    CHECK(cfg != NULL);
    if (!cfg) return;
    double tol_fwd = p == CG_PREC_FP32 ? 1e-4 : 5e-2;
    double tol_grad = p == CG_PREC_FP32 ? 1e-3 : 0.4, tol_grad_l2 = p == CG_PREC_FP32 ? 0 : 0.15;
    double tol_stats = p == CG_PREC_FP32 ? 1e-4 : 2e-2;

    cg_starnet cpu, dl;
    cg_starnet_create(&cpu, cfg, EMBED, drop, SEED);
    cg_starnet_create(&dl, cfg, EMBED, drop, SEED + 1);   /* same layout, other values: receives downloads */
    if (p == CG_PREC_BF16) round_bf16(cpu.params.params, cpu.params.n_params);

    cg_rng rng;
    cg_rng_seed(&rng, 99 + (uint64_t)p);
    int64_t nimg = (int64_t)B * 3 * HW * HW, nemb = (int64_t)B * EMBED;
    float *images = malloc((size_t)nimg * sizeof(float)), *demb = malloc((size_t)nemb * sizeof(float));
    float *emb = malloc((size_t)nemb * sizeof(float));
    cg_rng_fill_normal(&rng, images, (size_t)nimg, 0.0f, 1.0f);
    cg_rng_fill_normal(&rng, demb, (size_t)nemb, 0.0f, 1.0f);
    if (p == CG_PREC_BF16) {
        round_bf16(images, nimg);
        round_bf16(demb, nemb);
    }

    cg_cuda_starnet m;
    size_t arena = cg_cuda_starnet_arena_bytes(&cpu, p, B, HW, HW);
    fprintf(stderr, "  %s: arena %.1f MiB, scratch %.1f MiB\n", cg_prec_name(p), (double)arena / (1 << 20),
            (double)cg_cuda_starnet_scratch_bytes(&cpu, p, B, HW, HW) / (1 << 20));
    int rc = cg_cuda_starnet_create(&m, ctx, &cpu, p, B, HW, HW);
    OK(rc);
    if (rc) goto out;
    CHECK(m.arena.capacity == arena);

    /* 1. round trip of the parameters, and through a checkpoint */
    OK(cg_cuda_starnet_download(&m, &dl.params, 0));
    CHECK(!memcmp(dl.params.params, cpu.params.params, (size_t)cpu.params.n_params * sizeof(float)));
    CHECK(!memcmp(dl.params.buffers, cpu.params.buffers, (size_t)cpu.params.n_buffers * sizeof(float)));
    CHECK(!memcmp(dl.params.counters, cpu.params.counters, (size_t)cpu.params.n_counters * sizeof(int64_t)));
    {
        char path[] = "/tmp/test_cuda_starnet_XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        if (fd >= 0) {
            close(fd);
            cg_starnet back;
            cg_starnet_create(&back, cfg, EMBED, 0.0f, SEED + 2);
            CHECK_EQ_INT(cg_starnet_save(&dl, path), CG_OK);
            CHECK_EQ_INT(cg_starnet_load(&back, path, 0), CG_OK);
            CHECK(!memcmp(back.params.params, cpu.params.params, (size_t)cpu.params.n_params * sizeof(float)));
            cg_starnet_free(&back);
            unlink(path);
        }
    }

    /* 2. train mode */
    for (int train = 1; train >= 0; train--) {
        const char *fw = train ? "train" : "eval";
        cg_starnet_forward(&cpu, images, B, HW, HW, train);
        OK(cg_cuda_starnet_forward(&m, images, train));
        OK(cg_cuda_starnet_read_emb(&m, emb));
        cmp_tensor(VERBOSE, fw, "emb (forward)", p, 0, emb, cpu.emb.data, nemb, tol_fwd, 0);

        cg_params_zero_grad(&cpu.params);
        cg_starnet_backward(&cpu, demb);
        OK(cg_cuda_starnet_zero_grad(&m));
        OK(cg_cuda_starnet_set_d_emb(&m, demb));
        OK(cg_cuda_starnet_backward(&m, m.d_emb));
        OK(cg_cuda_sync(ctx));
        OK(cg_cuda_starnet_download(&m, &dl.params, 1));
        cmp_grads(VERBOSE, fw, p, &dl.params, &cpu.params, tol_grad, tol_grad_l2, p == CG_PREC_FP32 ? 1e-5 : 2e-2);
        compare_buffers(fw, p, &dl.params, &cpu.params, tol_stats);
        /* parameters are untouched by forward and backward */
        CHECK(!memcmp(dl.params.params, cpu.params.params, (size_t)cpu.params.n_params * sizeof(float)));
        /* the same DropPath draws (none in eval mode, or without DropPath) */
        CHECK(cg_cuda_starnet_rng(&m).state == cpu.rng.state);
    }

    cg_cuda_starnet_free(&m);
out:
    free(images);
    free(demb);
    free(emb);
    cg_starnet_free(&cpu);
    cg_starnet_free(&dl);
}

static void test_fp32(void) { run_precision(CG_PREC_FP32, 0.0f); }
static void test_bf16(void) { run_precision(CG_PREC_BF16, 0.0f); }
static void test_fp32_drop_path(void) { run_precision(CG_PREC_FP32, 0.3f); }
static void test_bf16_drop_path(void) { run_precision(CG_PREC_BF16, 0.3f); }

int main(void) {
    cg_cuda_device_info info;
    if (skip_without_device(&info)) return 77;
    fprintf(stderr, "device 0: %s, compute capability %d.%d\n", info.name, info.cc_major, info.cc_minor);
    const cg_starnet_config *cfg = cg_zoo_starnet("starnet_s050");
    cg_starnet probe;
    cg_starnet_create(&probe, cfg, EMBED, 0.0f, SEED);
    size_t s32 = cg_cuda_starnet_scratch_bytes(&probe, CG_PREC_FP32, B, HW, HW);
    size_t s16 = cg_cuda_starnet_scratch_bytes(&probe, CG_PREC_BF16, B, HW, HW);
    cg_starnet_free(&probe);
    if (cuda_test_ctx(&ctx, s32 > s16 ? s32 : s16)) return 1;
    TEST_RUN(test_fp32);
    TEST_RUN(test_bf16);
    TEST_RUN(test_fp32_drop_path);
    TEST_RUN(test_bf16_drop_path);
    for (int p = 0; p < 2; p++)
        fprintf(stderr, "%s worst: forward %.3g, gradients %.3g, running stats %.3g\n",
                cg_prec_name((cg_precision)p), cmp_worst()[p][0], cmp_worst()[p][1], cmp_worst()[p][2]);
    cuda_test_finish(ctx);
    return TEST_REPORT();
}
