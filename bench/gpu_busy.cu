// gpu_busy SECONDS [idle]: a real CUDA workload for the launcher's device check
// (scripts/gpu-check.sh). Prints the device it sees — name and UUID in NVML's text form — so the
// check can prove that CUDA_VISIBLE_DEVICES=<NVML UUID> pins the job to the GPU the launcher
// chose, then keeps the GPU busy (a clock-spinning kernel on every SM) for SECONDS, or just
// holds a context when "idle" is given.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <cuda_runtime.h>

#define CUDA_CHECK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) { \
    fprintf(stderr, "gpu_busy: %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); return 1; } } while (0)

__global__ void spin(long long cycles) {
    long long t0 = clock64();
    while (clock64() - t0 < cycles) { }
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 5;
    int idle = argc > 2 && !strcmp(argv[2], "idle");
    int n = 0;
    CUDA_CHECK(cudaGetDeviceCount(&n));
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    const unsigned char *u = (const unsigned char *)p.uuid.bytes;
    printf("gpu_busy: %d visible device(s); device 0: %s uuid GPU-", n, p.name);
    for (int i = 0; i < 16; i++) printf("%02x%s", u[i], (i == 3 || i == 5 || i == 7 || i == 9) ? "-" : "");
    printf(" pci %04x:%02x:%02x\n", p.pciDomainID, p.pciBusID, p.pciDeviceID);
    fflush(stdout);
    time_t end = time(NULL) + (time_t)(seconds + 0.5);
    int khz = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, 0));
    long long cycles = (long long)khz * 200;  // ~0.2 s per launch (the clock rate is in kHz)
    while (time(NULL) < end) {
        if (!idle) spin<<<p.multiProcessorCount, 32>>>(cycles);
        CUDA_CHECK(cudaGetLastError());
        CUDA_CHECK(cudaDeviceSynchronize());
        if (idle) { struct timespec ts = {0, 200000000}; nanosleep(&ts, NULL); }
    }
    return 0;
}
