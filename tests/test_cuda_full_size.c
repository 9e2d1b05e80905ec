/* test_cuda_full_size.c — the benchmark's and the trainer's full-size shapes, checked on the CPU
 * emulator before a GPU ever runs them.
 *
 * The device tests run small shapes (batch 4-16, 32 px). A GPU session then runs batch 256 at
 * 224 px, where a launch configuration, a cuBLAS operand or an arena plan can go wrong only at
 * that size (a grid dimension past 65,535, a piece of an arena planned too small for one shape).
 * Under CG_EMU_DRY=1 the emulator (tools/cuda_emu) checks every launch (block and grid limits,
 * shared memory) and every cuBLAS/cuBLASLt call (sizes, leading dimensions, and that each operand
 * lies inside one device allocation) without computing anything; the device memory, never
 * written, stays unbacked, so the 10-14 GiB plans fit on a small machine. Asserted, for:
 *
 *   bench_cuda_train --steps 1 --warmup 1   both benchmark configurations (starnet_s1 x
 *                                           clip:ViT-B/32, starnet_s4 x bert-base-chinese),
 *                                           bf16, batch 256, 224 px, incl. the depthwise-conv runs;
 *   clipgrid train --device cuda            starnet_s4 x bert-base-chinese, fp32, batch 256 in two
 *                                           micro-batches (--accum-steps 2), 224 px, DropPath 0.1,
 *                                           one step and the evaluation after it;
 *   clipgrid eval --device cuda             that run's checkpoint, --batch-size 256;
 *
 * each exits 0, reports at least one checked launch and one checked cuBLAS call, and prints no
 * emulator error ("cuda_emu: ..."). Nothing is computed, so no number is checked here: the
 * other device tests do that at small sizes. With a real GPU (or none) the program skips: a GPU
 * runs the benchmark itself (scripts/gpu-check.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "check.h"
#include "core/log.h"
#include "nn/cuda/cg_cuda.h"

#ifndef BENCH_CUDA_TRAIN
#define BENCH_CUDA_TRAIN ""
#endif

static char root[512];

/* Runs `cmd` (stdout and stderr together; CG_EMU_DRY=1 is set in main, so for every command of
 * it); returns its output (malloc()ed). */
static char *dry_run(const char *cmd, int *status) {
    char *full = cg_xasprintf("%s 2>&1", cmd);
    char *out = test_capture(full, status);
    free(full);
    return out;
}

/* The emulator's summary line: "cuda_emu dry run: L launches of K kernels (...) and G cuBLAS calls
 * checked, none run; peak device memory X GiB". Asserts a clean dry run; returns the peak GiB. */
static double check_dry_output(const char *what, const char *out, int status) {
    CHECK_EQ_INT(status, 0);
    CHECK(strstr(out, "cuda_emu: ") == NULL);   /* every emulator error starts so */
    const char *s = strstr(out, "cuda_emu dry run: ");
    CHECK(s != NULL);
    unsigned long long launches = 0, kernels = 0, gemms = 0;
    double gib = 0;
    if (s) {
        unsigned long long blocks = 0;
        int got = sscanf(s, "cuda_emu dry run: %llu launches of %llu kernels (%llu blocks) and %llu cuBLAS calls "
                            "checked, none run; peak device memory %lf GiB", &launches, &kernels, &blocks, &gemms, &gib);
        CHECK_EQ_INT(got, 5);
    }
    CHECK(launches > 0 && kernels > 0 && gemms > 0);
    fprintf(stderr, "  %s: %llu launches of %llu kernels, %llu cuBLAS calls, peak %.2f GiB\n", what, launches, kernels,
            gemms, gib);
    if (check_failures_now) fprintf(stderr, "---- output of %s ----\n%s\n----\n", what, out);
    return gib;
}

static void test_benchmark_shapes(void) {
    int st;
    char *cmd = cg_xasprintf("'%s' --steps 1 --warmup 1", BENCH_CUDA_TRAIN);
    char *out = dry_run(cmd, &st);
    double gib = check_dry_output("bench_cuda_train (bf16, B 256, 224 px)", out, st);
    CHECK(strstr(out, "starnet_s1   x clip:ViT-B/32      bf16 B=256 S=224") != NULL);
    CHECK(strstr(out, "starnet_s4   x bert-base-chinese  bf16 B=256 S=224") != NULL);
    CHECK(strstr(out, "dwconv 7x7 stage 3 [C 256, N 256, 7x7]") != NULL);
    /* the peak is the larger configuration's plan (bench_cuda_train --plan: 14.02 GiB + cuBLAS
     * workspaces): an arena planned for the wrong shape would move it */
    CHECK(gib > 13.5 && gib < 15.0);
    free(out);
    free(cmd);
}

static void test_trainer_and_eval_shapes(void) {
    int st;
    char *run = cg_xasprintf("%s/run", root);
    char *cmd = cg_xasprintf("rm -rf '%s'; '%s' train --image-encoder starnet_s4 --text-encoder bert-base-chinese "
                             "--device cuda --precision fp32 --accum-steps 2 --steps 1 --batch-size 256 "
                             "--image-size 224 --drop-path 0.1 --eval-samples 256 --retrieval-samples 256 --out '%s'",
                             run, CLIPGRID_BIN, run);
    char *out = dry_run(cmd, &st);
    check_dry_output("clipgrid train --device cuda (fp32, 2 x 128, 224 px)", out, st);
    CHECK(strstr(out, "1 steps of 256 images (224x224)") != NULL);
    free(out);
    free(cmd);

    cmd = cg_xasprintf("'%s' eval --checkpoint '%s' --device cuda --batch-size 256 --eval-samples 512 "
                       "--retrieval-samples 256", CLIPGRID_BIN, run);
    out = dry_run(cmd, &st);
    check_dry_output("clipgrid eval --device cuda (batch 256)", out, st);
    CHECK(strstr(out, "\"precision\":\t\"bf16\"") != NULL);
    free(out);
    free(cmd);
    free(run);
}

int main(void) {
    int n = 0;
    cg_cuda_device_count(&n);
    cg_cuda_device_info info;
    if (n == 0 || cg_cuda_device_query(0, &info) != CG_OK || !strstr(info.name, "emulator") || !*BENCH_CUDA_TRAIN) {
        fprintf(stderr, "skipped: the full-size dry run needs the CPU emulator (make test-cuda-emu); a GPU runs "
                        "the benchmark itself (scripts/gpu-check.sh)\n");
        return 77;
    }
    snprintf(root, sizeof root, "%s/cuda_full_size_tmp", TEST_BINARY_DIR);
    setenv("CG_EMU_DRY", "1", 1);   /* for the commands run (this process has made no launch yet) */
    setenv("OMP_NUM_THREADS", "2", 1);
    TEST_RUN(test_benchmark_shapes);
    TEST_RUN(test_trainer_and_eval_shapes);
    return TEST_REPORT();
}
