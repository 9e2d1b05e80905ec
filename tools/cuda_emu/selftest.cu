/* selftest.cu — the emulator's own test (ctest cuda_emu_selftest, emulator builds only): kernels
 * with a known ordering hazard, run once in forward order and once under CG_EMU_ORDER=reverse, each
 * in a child process (the order is read once per process). The hazard must stay hidden in
 * forward order (the result equals the hazard-free one: that is why the reverse pass exists) and
 * show in reverse order; a hazard-free kernel must give the same result both ways.
 *
 *   in-place neighbour read   block i computes x[i] += x[i + 1] in place, one element per block:
 *                             right only if block i + 1 has not run yet;
 *   missing barrier           thread t writes slot t of shared memory and reads slot t - 1 with no
 *                             __syncthreads between: right only if thread t - 1 ran first;
 *   out of place (control)    y[i] = x[i] + x[i + 1] into another buffer: always right.
 *
 * And the shared-memory budget a GPU enforces: 2 KiB of static shared memory with 47 KiB of
 * dynamic fails the launch (over 48 KiB), with 46 KiB it runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cuda_runtime.h>

enum { N = 64, THREADS = 128 };

__global__ void inplace_neighbour_kernel(float *x, int n) {
    int i = blockIdx.x;
    if (i + 1 < n) x[i] += x[i + 1];
}

__global__ void out_of_place_kernel(float *y, const float *x, int n) {
    int i = blockIdx.x;
    if (i + 1 < n) y[i] = x[i] + x[i + 1];
    else y[i] = x[i];
}

/* (No barrier at all: after one, the emulator lets the last thread to arrive go first, so forward
 * order would catch this case too.) */
__global__ void missing_barrier_kernel(int *out) {
    __shared__ int slot[THREADS];
    int t = threadIdx.x;
    slot[t] = t + 1000;
    out[t] = t > 0 ? slot[t - 1] : 999;   /* needs a __syncthreads before this read */
}

/* 2 KiB static + `smem` bytes dynamic shared memory */
__global__ void shared_budget_kernel(float *out) {
    extern __shared__ float dyn[];
    __shared__ float stat[512];
    int t = threadIdx.x;
    stat[t] = 1.0f;
    dyn[t] = 2.0f;
    __syncthreads();
    out[t] = stat[t] + dyn[t];
}

/* 0: the kernels gave the hazard-free results; 1: some differed; 2: a CUDA call failed */
static int run_kernels(const char *which) {
    float h[N], want[N], got[N];
    for (int i = 0; i < N; i++) h[i] = (float)(i * i % 17);
    for (int i = 0; i < N; i++) want[i] = i + 1 < N ? h[i] + h[i + 1] : h[i];
    float *x = NULL, *y = NULL;
    int *o = NULL, ho[THREADS];
    if (cudaMalloc((void **)&x, sizeof h) || cudaMalloc((void **)&y, sizeof h) || cudaMalloc((void **)&o, sizeof ho))
        return 2;
    cudaMemcpy(x, h, sizeof h, cudaMemcpyHostToDevice);
    int differs = 0;
    if (!strcmp(which, "inplace")) {
        inplace_neighbour_kernel<<<N, 1>>>(x, N);
        cudaMemcpy(got, x, sizeof got, cudaMemcpyDeviceToHost);
        differs = memcmp(got, want, sizeof got) != 0;
    } else if (!strcmp(which, "control")) {
        out_of_place_kernel<<<N, 1>>>(y, x, N);
        cudaMemcpy(got, y, sizeof got, cudaMemcpyDeviceToHost);
        differs = memcmp(got, want, sizeof got) != 0;
    } else if (!strcmp(which, "smem47") || !strcmp(which, "smem46")) {
        shared_budget_kernel<<<1, N, (which[5] == '7' ? 47 : 46) * 1024>>>(y);
        cudaMemcpy(got, y, sizeof(float) * N, cudaMemcpyDeviceToHost);
        for (int t = 0; t < N; t++) differs |= got[t] != 3.0f;
    } else {
        missing_barrier_kernel<<<1, THREADS>>>(o);
        cudaMemcpy(ho, o, sizeof ho, cudaMemcpyDeviceToHost);
        for (int t = 0; t < THREADS; t++) differs |= ho[t] != t + 999;
    }
    if (cudaGetLastError() != cudaSuccess) return 2;
    cudaFree(x);
    cudaFree(y);
    cudaFree(o);
    return differs;
}

/* the exit status of run_kernels(which) in a child with CG_EMU_ORDER set (or not) */
static int in_child(const char *which, int reverse) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (reverse) setenv("CG_EMU_ORDER", "reverse", 1);
        else unsetenv("CG_EMU_ORDER");
        _exit(run_kernels(which));
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 3;
}

int main(void) {
    struct {
        const char *which;
        int forward, reverse;   /* expected: 0 the hazard-free result, 1 a different one, 2 launch failed */
    } cases[] = {{"inplace", 0, 1}, {"barrier", 0, 1}, {"control", 0, 0}, {"smem47", 2, 2}, {"smem46", 0, 0}};
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    const char *what[] = {"as without the hazard", "differs", "launch failed", "child died"};
    int failed = 0;
    for (int i = 0; i < ncases; i++) {
        int f = in_child(cases[i].which, 0), r = in_child(cases[i].which, 1);
        int ok = f == cases[i].forward && r == cases[i].reverse;
        printf("%-8s forward: %s, reverse: %s  %s\n", cases[i].which, what[f > 3 ? 3 : f], what[r > 3 ? 3 : r],
               ok ? "ok" : "FAIL");
        failed += !ok;
    }
    printf("%d passed, %d failed\n", ncases - failed, failed);
    return failed ? 1 : 0;
}
