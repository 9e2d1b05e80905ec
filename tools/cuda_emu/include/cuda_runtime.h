/* cuda_runtime.h — the CUDA emulator's stand-in for the CUDA runtime (tools/cuda_emu/README.md).
 *
 * clipgrid's .cu files compile as C++ against these headers (after rewrite_launches.pl turns
 * each `kernel<<<grid, block, smem, stream>>>(args)` into a cg_emu_launch call) and run on the
 * CPU: device memory is host memory, a stream runs its work at once, and a kernel launch runs
 * every thread of every block — a block's threads as cooperative fibers, so __syncthreads and
 * the warp shuffles work, in a fixed order. Only what clipgrid uses is here.
 */
#ifndef CG_EMU_CUDA_RUNTIME_H
#define CG_EMU_CUDA_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
#include <functional>
#include <type_traits>
#endif

/* ---------------------------------------------------------------- qualifiers */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static   /* one copy, and a block's threads run one after another: shared */

/* ---------------------------------------------------------------- errors */
typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
    cudaErrorDevicesUnavailable = 46,
    cudaErrorStubLibrary = 34,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchFailure = 719
} cudaError_t;

#ifdef __cplusplus
extern "C" {
#endif
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
#ifdef __cplusplus
}
#endif

/* ---------------------------------------------------------------- launch geometry */
struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
#ifdef __cplusplus
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
#endif
};
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

/* the vector type the kernels use for 16-byte shared-memory loads */
struct float4 { alignas(16) float x; float y, z, w; };

/* ---------------------------------------------------------------- streams, memory, devices */
typedef struct cg_emu_stream *cudaStream_t;
enum { cudaStreamDefault = 0, cudaStreamNonBlocking = 1 };
typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3, cudaMemcpyDefault = 4
} cudaMemcpyKind;
typedef enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 } cudaDeviceAttr;

typedef enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType_t;
typedef cudaDataType_t cudaDataType;

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor;
    int multiProcessorCount;
    int l2CacheSize;
    size_t sharedMemPerBlockOptin;
    int warpSize;
    int maxThreadsPerBlock;
};

#ifdef __cplusplus
extern "C" {
#endif
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device);
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMalloc(void **ptr, size_t bytes);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMallocHost(void **ptr, size_t bytes);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemset(void *dst, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags);
cudaError_t cudaStreamCreate(cudaStream_t *s);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
/* CG_EMU_DRY=1: check every launch and library call (configuration, sizes, leading dimensions)
 * without computing; memsets and device-to-device copies are skipped, so device memory stays
 * untouched (unbacked) and full-size shapes fit in host memory. Counts are printed at exit. */
int cg_emu_dry(void);
void cg_emu_dry_count_gemm(void);
/* 1 when [p, p + bytes) lies inside one cudaMalloc allocation (the library calls check their
 * operands with it: an arena piece planned too small shows up as an error, not a silent overrun) */
int cg_emu_in_device_memory(const void *p, size_t bytes);
#ifdef __cplusplus
}
#endif

/* ---------------------------------------------------------------- kernels (C++ only) */
#ifdef __cplusplus
struct cg_emu_config {
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
};
static inline cg_emu_config cg_emu_cfg(dim3 grid, dim3 block, size_t smem = 0, cudaStream_t stream = 0) {
    cg_emu_config c;
    c.grid = grid;
    c.block = block;
    c.smem = smem;
    c.stream = stream;
    return c;
}
/* Runs body once per thread of every block, threadIdx/blockIdx set; records launch errors for
 * cudaGetLastError as the runtime would (block size, grid limits, a kernel that faults). */
void cg_emu_launch(const cg_emu_config &cfg, const std::function<void()> &body, const char *name);

/* A kernel's dynamic shared memory (`extern __shared__ T name[];`, which rewrite_launches.pl
 * turns into `T *const name = (T *)cg_emu_dynamic_shared();`): the launch's `smem` bytes, 16-byte
 * aligned, filled with 0xff bytes (NaN as float) before each block so a read of a word the block
 * has not written shows up; a heap block of exactly that size, so ASan reports an overrun. NULL
 * when the launch asked for none. */
void *cg_emu_dynamic_shared(void);
/* A static `__shared__` array or variable at `p`, `bytes` long (rewrite_launches.pl adds the call
 * after each declaration). In a launch's first block the runtime adds up the distinct ones; static
 * plus dynamic over 48 KiB fails the launch with cudaErrorInvalidValue, as a GPU does (a kernel
 * needs cudaFuncSetAttribute to go beyond). */
void cg_emu_static_shared(const void *p, size_t bytes);

/* block and warp synchronisation (the scheduler's barriers) */
void __syncthreads(void);
void cg_emu_warp_barrier(void);
/* The shuffle's state, for the inline path: the running thread's linear index in its block, and
 * 8 bytes per thread in two banks used by alternate shuffles of a thread (a lane writes a bank
 * again only after the next shuffle's barrier, which every lane reaches after reading it: one
 * barrier per shuffle suffices). */
extern int cg_emu_cur;
extern uint64_t cg_emu_slots[2][1024];
extern uint32_t cg_emu_shfl_count[1024];

template <typename T> static inline T cg_emu_shfl(T v, unsigned int src_lane) {
    static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
    int me = cg_emu_cur, bank = (int)(cg_emu_shfl_count[me]++ & 1u);
    memcpy(&cg_emu_slots[bank][me], &v, sizeof(T));
    cg_emu_warp_barrier();
    T r;
    memcpy(&r, &cg_emu_slots[bank][(me & ~31) | (int)(src_lane & 31u)], sizeof(T));
    return r;
}
static inline unsigned int cg_emu_lane(void) { return (unsigned int)cg_emu_cur & 31u; }

template <typename T> static inline T __shfl_xor_sync(unsigned int mask, T v, int lane_mask, int width = 32) {
    (void)mask;
    (void)width;
    return cg_emu_shfl(v, cg_emu_lane() ^ (unsigned int)lane_mask);
}
template <typename T> static inline T __shfl_down_sync(unsigned int mask, T v, unsigned int delta, int width = 32) {
    (void)mask;
    (void)width;
    unsigned int me = cg_emu_lane();
    return cg_emu_shfl(v, me + delta < 32 ? me + delta : me);
}
template <typename T> static inline T __shfl_sync(unsigned int mask, T v, int src, int width = 32) {
    (void)mask;
    (void)width;
    return cg_emu_shfl(v, (unsigned int)src);
}

/* atomics: the fibers are cooperative, so a plain read-modify-write is atomic */
template <typename T> static inline T atomicOr(T *p, T v) { T o = *p; *p = o | v; return o; }
template <typename T> static inline T atomicAdd(T *p, T v) { T o = *p; *p = o + v; return o; }

/* round-to-nearest intrinsics: the host's float arithmetic is IEEE round-to-nearest (built with
 * -ffp-contract=off, so nothing fuses) */
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }

/* the device's integer min/max overloads */
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline long min(long a, long b) { return a < b ? a : b; }
static inline long max(long a, long b) { return a > b ? a : b; }
static inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
static inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
#endif

#endif
