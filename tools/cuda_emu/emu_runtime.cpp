/* emu_runtime.cpp — the CUDA emulator's runtime (tools/cuda_emu/README.md): devices, memory,
 * streams, errors, and kernel launches.
 *
 * A launch runs the grid's blocks one after another. Block 0 runs its threads as cooperative
 * fibers (a register switch of a few instructions on x86-64, ucontext elsewhere): each runs until it finishes, reaches __syncthreads (a block barrier) or a
 * warp shuffle (a warp barrier); a barrier opens when every unfinished thread of its block (or
 * warp) is waiting at it. So a thread always runs as far as it can before the others start: a
 * missing barrier shows up as a read of shared memory nobody wrote yet. If block 0 never met a
 * barrier, the other blocks run their threads as plain calls (much faster); meeting a barrier
 * there is reported and aborts. CG_EMU_FIBERS=1 runs every block as fibers.
 *
 * Memory: cudaMalloc is aligned host memory, tracked so that cudaMemGetInfo and double frees are
 * right. CG_EMU_NO_DEVICE=1 makes cudaGetDeviceCount fail as a machine without a driver does.
 *
 * CG_EMU_DRY=1 (a dry run): launches and cuBLAS calls are checked and counted, not run; memsets
 * and device-to-device copies are skipped. Device memory is then never written by the emulator,
 * so a full-size allocation (a benchmark's 10+ GiB) stays unbacked address space: the way to
 * check that every launch at the benchmark's batch and image size is a legal configuration
 * before a GPU session spends its minutes on it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "cuda_runtime.h"

/* Under AddressSanitizer every stack switch is announced (ASan's fiber interface), so a kernel's
 * out-of-bounds access is reported as on the host, and the fibers' stacks are not mistaken for
 * overflows: the emulator's stand-in for compute-sanitizer's memcheck. */
#if defined(__SANITIZE_ADDRESS__)
#define CG_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CG_EMU_ASAN 1
#endif
#endif
#ifdef CG_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

struct cg_emu_stream {
    int unused;
};

static cudaError_t last_error = cudaSuccess;
static cudaError_t set_error(cudaError_t e) {
    if (e != cudaSuccess) last_error = e;
    return e;
}

extern "C" const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorDevicesUnavailable: return "cudaErrorDevicesUnavailable";
    case cudaErrorStubLibrary: return "cudaErrorStubLibrary";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    }
    return "cudaErrorUnknown";
}

extern "C" const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected (CG_EMU_NO_DEVICE)";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered (a write past an arena piece)";
    default: return cudaGetErrorName(e);
    }
}

extern "C" cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
extern "C" cudaError_t cudaPeekAtLastError(void) { return last_error; }

/* ---------------------------------------------------------------- devices */

static const size_t EMU_TOTAL = (size_t)64 << 30;

static int no_device(void) {
    const char *e = getenv("CG_EMU_NO_DEVICE");
    return e && *e && strcmp(e, "0");
}

extern "C" cudaError_t cudaGetDeviceCount(int *n) {
    if (no_device()) {
        *n = 0;
        return set_error(cudaErrorNoDevice);
    }
    *n = 1;
    return cudaSuccess;
}

static cudaError_t check_device(int d) {
    if (no_device()) return set_error(cudaErrorNoDevice);
    return d == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice);
}

extern "C" cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device) {
    cudaError_t e = check_device(device);
    if (e) return e;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "clipgrid CUDA emulator (CPU)");
    p->totalGlobalMem = EMU_TOTAL;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 4;
    p->l2CacheSize = 50 << 20;
    p->sharedMemPerBlockOptin = 227 << 10;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    return cudaSuccess;
}

extern "C" cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device) {
    cudaError_t e = check_device(device);
    if (e) return e;
    if (attr != cudaDevAttrMultiProcessorCount) return set_error(cudaErrorInvalidValue);
    *value = 4;
    return cudaSuccess;
}

static int current_device;
extern "C" cudaError_t cudaGetDevice(int *d) {
    *d = current_device;
    return cudaSuccess;
}
extern "C" cudaError_t cudaSetDevice(int d) {
    cudaError_t e = check_device(d);
    if (!e) current_device = d;
    return e;
}
extern "C" cudaError_t cudaDriverGetVersion(int *v) {
    *v = 13000;
    return cudaSuccess;
}
extern "C" cudaError_t cudaRuntimeGetVersion(int *v) {
    *v = 13000;
    return cudaSuccess;
}

/* ---------------------------------------------------------------- dry runs */

static int dry = -1;
static unsigned long long dry_launches, dry_blocks, dry_gemms;
static size_t peak_bytes;
static std::map<std::string, unsigned long long> *dry_kernels;
static void print_dry(void) {
    fprintf(stderr, "cuda_emu dry run: %llu launches of %zu kernels (%llu blocks) and %llu cuBLAS calls checked, "
            "none run; peak device memory %.2f GiB\n", dry_launches, dry_kernels ? dry_kernels->size() : (size_t)0,
            dry_blocks, dry_gemms, peak_bytes / 1073741824.0);
}
extern "C" int cg_emu_dry(void) {
    if (dry < 0) {
        const char *e = getenv("CG_EMU_DRY");
        dry = e && *e && strcmp(e, "0");
        if (dry) {
            dry_kernels = new std::map<std::string, unsigned long long>();
            atexit(print_dry);
        }
    }
    return dry;
}
extern "C" void cg_emu_dry_count_gemm(void) { dry_gemms++; }

/* ---------------------------------------------------------------- memory */

static std::map<void *, size_t> &allocations() {
    static std::map<void *, size_t> m;
    return m;
}
static size_t allocated_bytes;

extern "C" cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    if (no_device()) return set_error(cudaErrorNoDevice);
    *free_bytes = EMU_TOTAL - allocated_bytes;
    *total_bytes = EMU_TOTAL;
    return cudaSuccess;
}

extern "C" cudaError_t cudaMalloc(void **ptr, size_t bytes) {
    *ptr = NULL;
    if (no_device()) return set_error(cudaErrorNoDevice);
    if (bytes > EMU_TOTAL - allocated_bytes) return set_error(cudaErrorMemoryAllocation);
    void *p = NULL;
    if (posix_memalign(&p, 256, bytes ? bytes : 1)) return set_error(cudaErrorMemoryAllocation);
    allocations()[p] = bytes;
    allocated_bytes += bytes;
    if (allocated_bytes > peak_bytes) peak_bytes = allocated_bytes;
    *ptr = p;
    return cudaSuccess;
}

/* ---------------------------------------------------------------- arena pieces
 *
 * The backend's arena (nn/cuda/cg_cuda.cu) hands out pieces of one cudaMalloc. Here it leaves a
 * gap after each (cg_emu_arena_gap, 256 bytes; CG_EMU_ARENA_GAP=n to change, 0 for none) and
 * reports each piece, so that an overrun from one piece into the next — invisible to ASan, both
 * inside one allocation — is caught: a library call or copy whose range leaves its piece is an
 * error; the gap is filled with a canary checked after every kernel (a write past a piece), or,
 * under ASan, poisoned (a read or a write past a piece, reported where it happens). */
static const unsigned char CANARY = 0xA5;
struct piece {
    size_t bytes, slot;   /* requested; slot = bytes + gap, rounded up to the arena's alignment */
};
static std::map<const char *, piece> &pieces() {
    static std::map<const char *, piece> m;
    return m;
}
extern "C" size_t cg_emu_arena_gap(void) {
    static long gap = -1;
    if (gap < 0) {
        const char *e = getenv("CG_EMU_ARENA_GAP");
        gap = e && *e ? atol(e) : 256;
        if (gap < 0) gap = 0;
    }
    return (size_t)gap;
}
extern "C" void cg_emu_arena_piece(const void *p, size_t bytes, size_t slot) {
    const char *c = (const char *)p;
    pieces()[c] = piece{bytes, slot};
    if (slot <= bytes || cg_emu_dry()) return;   /* a dry run never writes device memory */
#ifdef CG_EMU_ASAN
    ASAN_POISON_MEMORY_REGION(c + bytes, slot - bytes);
#else
    memset((char *)c + bytes, CANARY, slot - bytes);
#endif
}
extern "C" void cg_emu_arena_forget(const void *base, size_t bytes) {
    const char *b = (const char *)base;
    auto &m = pieces();
    m.erase(m.lower_bound(b), m.lower_bound(b + bytes));
#ifdef CG_EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(base, bytes);
#endif
}
/* The piece whose slot holds p, or NULL. */
static const std::pair<const char *const, piece> *piece_of(const char *p) {
    auto &m = pieces();
    auto it = m.upper_bound(p);
    if (it == m.begin()) return NULL;
    --it;
    return p < it->first + it->second.slot ? &*it : NULL;
}
/* [q, q + bytes) within the requested bytes of the piece pc (q inside its slot) */
static int inside_piece(const std::pair<const char *const, piece> *pc, const char *q, size_t bytes) {
    return bytes <= pc->second.bytes && (size_t)(q - pc->first) <= pc->second.bytes - bytes;
}
/* Every gap's canary intact? A kernel that wrote past its piece is reported (and the canary
 * painted again, so one overrun is reported once). Returns 0 when something was overwritten. */
static int canaries_intact(const char *kernel) {
#ifdef CG_EMU_ASAN
    (void)kernel;
    return 1;   /* the gaps are poisoned instead */
#else
    int ok = 1;
    for (auto &kv : pieces()) {
        unsigned char *g = (unsigned char *)kv.first + kv.second.bytes;
        size_t n = kv.second.slot - kv.second.bytes;
        for (size_t i = 0; i < n; i++)
            if (g[i] != CANARY) {
                fprintf(stderr, "cuda_emu: kernel %s wrote past an arena piece: byte %zu after the %zu-byte piece at %p\n",
                        kernel, i, kv.second.bytes, (const void *)kv.first);
                memset(g, CANARY, n);
                ok = 0;
                break;
            }
    }
    return ok;
#endif
}

extern "C" int cg_emu_in_device_memory(const void *p, size_t bytes) {
    auto &a = allocations();
    auto it = a.upper_bound((void *)p);   /* the first allocation starting after p */
    if (it == a.begin()) return 0;
    --it;
    const char *start = (const char *)it->first, *q = (const char *)p;
    if (!(q >= start && bytes <= it->second && (size_t)(q - start) <= it->second - bytes)) return 0;
    const std::pair<const char *const, piece> *pc = piece_of(q);   /* inside an arena piece, too */
    return !pc || inside_piece(pc, q, bytes);
}

/* A copy or memset touching device memory must stay inside its arena piece (if any). */
static cudaError_t range_in_piece(const char *fn, const void *p, size_t bytes) {
    const char *q = (const char *)p;
    const std::pair<const char *const, piece> *pc = bytes ? piece_of(q) : NULL;
    if (!pc || inside_piece(pc, q, bytes)) return cudaSuccess;
    fprintf(stderr, "cuda_emu: %s: %zu bytes at %p leave the %zu-byte arena piece at %p\n", fn, bytes, p,
            pc->second.bytes, (const void *)pc->first);
    return set_error(cudaErrorInvalidValue);
}

extern "C" cudaError_t cudaFree(void *ptr) {
    if (!ptr) return cudaSuccess;
    auto it = allocations().find(ptr);
    if (it == allocations().end()) {
        fprintf(stderr, "cuda_emu: cudaFree(%p): not a device allocation\n", ptr);
        return set_error(cudaErrorInvalidValue);
    }
    cg_emu_arena_forget(ptr, it->second);
    allocated_bytes -= it->second;
    allocations().erase(it);
    free(ptr);
    return cudaSuccess;
}

extern "C" cudaError_t cudaMallocHost(void **ptr, size_t bytes) {
    *ptr = malloc(bytes ? bytes : 1);
    return *ptr ? cudaSuccess : set_error(cudaErrorMemoryAllocation);
}
extern "C" cudaError_t cudaFreeHost(void *ptr) {
    free(ptr);
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    cudaError_t e;
    if (kind != cudaMemcpyDeviceToHost && (e = range_in_piece("cudaMemcpy (destination)", dst, bytes))) return e;
    if (kind != cudaMemcpyHostToDevice && (e = range_in_piece("cudaMemcpy (source)", src, bytes))) return e;
    if (kind == cudaMemcpyDeviceToDevice && cg_emu_dry()) return cudaSuccess;
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}
extern "C" cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
    (void)s;
    return cudaMemcpy(dst, src, bytes, kind);
}
extern "C" cudaError_t cudaMemset(void *dst, int value, size_t bytes) {
    cudaError_t e = range_in_piece("cudaMemset", dst, bytes);
    if (e) return e;
    if (bytes && !cg_emu_dry()) memset(dst, value, bytes);
    return cudaSuccess;
}
extern "C" cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t s) {
    (void)s;
    return cudaMemset(dst, value, bytes);
}

/* ---------------------------------------------------------------- streams */

extern "C" cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
    (void)flags;
    if (no_device()) return set_error(cudaErrorNoDevice);
    *s = new cg_emu_stream();
    return cudaSuccess;
}
extern "C" cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
extern "C" cudaError_t cudaStreamDestroy(cudaStream_t s) {
    delete s;
    return cudaSuccess;
}
extern "C" cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    (void)s;
    return cudaSuccess;
}
extern "C" cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

/* ---------------------------------------------------------------- fibers */

#if defined(__x86_64__)
/* cg_emu_switch(&save, to): push the callee-saved registers, store the stack pointer in *save,
 * load `to`, pop, return into the other fiber. No signal-mask system calls (swapcontext makes
 * two), which is what makes a block of 256 fibers with a few barriers cheap. */
extern "C" void cg_emu_switch(void **save, void *to);
asm(".text\n"
    ".globl cg_emu_switch\n"
    ".type cg_emu_switch,@function\n"
    "cg_emu_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size cg_emu_switch, .-cg_emu_switch\n");
#define CG_EMU_FAST_SWITCH 1
#endif

enum { RUNNING, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };

struct fiber {
#ifdef CG_EMU_FAST_SWITCH
    void *sp;
#else
    ucontext_t uc;
#endif
    int state;
    uint3 tid;   /* its threadIdx, computed once a launch */
};

static const size_t STACK_BYTES = 256 << 10;
static std::vector<fiber> fibers;
static std::vector<char *> &stacks = *new std::vector<char *>();   /* never destroyed: the fibers' stacks live until exit */
#ifdef CG_EMU_FAST_SWITCH
static void *scheduler_sp;
#else
static ucontext_t scheduler;
#endif
int cg_emu_cur;                          /* the running thread's linear index in its block */
#define cur cg_emu_cur
static int in_fibers;                    /* the block runs as fibers (else: plain calls) */
static int saw_barrier;                  /* some thread of block 0 met a barrier */
static const std::function<void()> *cur_body;
static const char *cur_name;
static unsigned char *dyn_smem;          /* the launch's dynamic shared memory (cg_emu_dynamic_shared) */
static size_t dyn_smem_bytes;

void *cg_emu_dynamic_shared(void) { return dyn_smem; }

/* static shared memory of the launch, counted in its first block (every block declares the same) */
#define EMU_SMEM_LIMIT (48 * 1024)
static int counting_static;                  /* the launch's first block is running */
static std::vector<const void *> static_seen;
static size_t static_bytes;
static int smem_over;
void cg_emu_static_shared(const void *p, size_t bytes) {
    if (!counting_static) return;
    for (const void *q : static_seen)
        if (q == p) return;
    static_seen.push_back(p);
    static_bytes += bytes;
    if (!smem_over && static_bytes + dyn_smem_bytes > EMU_SMEM_LIMIT) {
        smem_over = 1;
        fprintf(stderr, "cuda_emu: kernel %s: %zu bytes of static and %zu of dynamic shared memory (over 48 KiB "
                "without opt-in): the launch fails on a GPU\n", cur_name, static_bytes, dyn_smem_bytes);
    }
}
uint64_t cg_emu_slots[2][1024];
/* CG_EMU_STATS=1: per kernel name, launches, blocks (as fibers / plain) and fiber resumes, at exit */
struct kstat {
    uint64_t launches, fiber_blocks, plain_blocks, resumes;
};
static std::map<std::string, kstat> *stats;
static kstat *cur_stat;
static void print_stats(void) {
    std::vector<std::pair<uint64_t, std::string>> v;
    for (auto &kv : *stats) v.push_back({kv.second.resumes, kv.first});
    std::sort(v.rbegin(), v.rend());
    fprintf(stderr, "cuda_emu stats: kernel, launches, blocks as fibers, plain blocks, fiber resumes\n");
    for (auto &p : v) {
        kstat &k = (*stats)[p.second];
        fprintf(stderr, "  %-60s %8llu %10llu %10llu %14llu\n", p.second.c_str(), (unsigned long long)k.launches,
                (unsigned long long)k.fiber_blocks, (unsigned long long)k.plain_blocks, (unsigned long long)k.resumes);
    }
}
uint32_t cg_emu_shfl_count[1024];   /* shuffles each thread of the block has made */

static uint3 tid_of(int t) {
    uint3 u;
    u.x = (unsigned int)t % blockDim.x;
    u.y = (unsigned int)t / blockDim.x % blockDim.y;
    u.z = (unsigned int)t / (blockDim.x * blockDim.y);
    return u;
}

/* the running thread (fibers[t].tid is set for every t < the block size at each launch) */
static void set_thread(int t) {
    cur = t;
    threadIdx = fibers[(size_t)t].tid;
}

/* the current block's bookkeeping: unfinished threads, and how many wait at each barrier */
static int live, at_block;
static int warp_live[32], warp_wait[32];

static void release_block(void) {
    for (size_t t = 0; t < fibers.size(); t++)
        if (fibers[t].state == AT_BLOCK_BARRIER) fibers[t].state = RUNNING;
    at_block = 0;
}
static void release_warp(int w) {
    for (int t = w * 32; t < w * 32 + 32 && t < (int)fibers.size(); t++)
        if (fibers[(size_t)t].state == AT_WARP_BARRIER) fibers[(size_t)t].state = RUNNING;
    warp_wait[w] = 0;
}

#ifdef CG_EMU_ASAN
static const void *sched_stack_bottom;   /* the scheduler's stack, as ASan reports it at the first switch */
static size_t sched_stack_size;
static void *fiber_fake_stack[1024];
#endif

static void fiber_entry(void) {
#ifdef CG_EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &sched_stack_bottom, &sched_stack_size);
#endif
    (*cur_body)();
    int me = cur, w = me >> 5;
    fibers[(size_t)me].state = DONE;
    live--;
    warp_live[w]--;
    /* (a thread that leaves while others wait at a barrier: undefined on the device; here the
     * barrier then opens for the rest) */
    if (at_block > 0 && at_block == live) release_block();
    if (warp_wait[w] > 0 && warp_wait[w] == warp_live[w]) release_warp(w);
#ifdef CG_EMU_ASAN
    __sanitizer_start_switch_fiber(NULL, sched_stack_bottom, sched_stack_size);   /* NULL: this fiber ends */
#endif
#ifdef CG_EMU_FAST_SWITCH
    void *dead;
    cg_emu_switch(&dead, scheduler_sp);   /* never resumed */
    abort();
#endif
    /* (ucontext: returns to `scheduler` through uc_link) */
}

/* into fiber t from the scheduler, back when it waits or finishes */
static void resume(int t) {
#ifdef CG_EMU_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, stacks[(size_t)t], STACK_BYTES);
#endif
#ifdef CG_EMU_FAST_SWITCH
    cg_emu_switch(&scheduler_sp, fibers[(size_t)t].sp);
#else
    swapcontext(&scheduler, &fibers[(size_t)t].uc);
#endif
#ifdef CG_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* from the running fiber back to the scheduler */
static void yield_to_scheduler(int me) {
#ifdef CG_EMU_ASAN
    __sanitizer_start_switch_fiber(&fiber_fake_stack[me], sched_stack_bottom, sched_stack_size);
#endif
#ifdef CG_EMU_FAST_SWITCH
    cg_emu_switch(&fibers[(size_t)me].sp, scheduler_sp);
#else
    swapcontext(&fibers[(size_t)me].uc, &scheduler);
#endif
#ifdef CG_EMU_ASAN
    __sanitizer_finish_switch_fiber(fiber_fake_stack[me], NULL, NULL);
#endif
}

static void fiber_init(fiber &f, char *stack, int t) {
#ifdef CG_EMU_ASAN
    __asan_unpoison_memory_region(stack, STACK_BYTES);   /* the frames of the fiber that used it before */
#endif
#ifdef CG_EMU_FAST_SWITCH
    /* the frame cg_emu_switch pops: six registers, then fiber_entry as the return address, placed
     * so that fiber_entry starts with the stack as a call leaves it (rsp = 8 mod 16). The tops
     * are staggered by a few cache lines per fiber: stacks a power of two apart would put every
     * fiber's hot frames in the same cache sets */
    uintptr_t top = ((uintptr_t)stack + STACK_BYTES - (uintptr_t)(t % 61) * 1088) & ~(uintptr_t)15;
    void **sp = (void **)(top - 16);
    sp[0] = (void *)fiber_entry;
    sp -= 6;
    for (int i = 0; i < 6; i++) sp[i] = NULL;
    f.sp = sp;
#else
    getcontext(&f.uc);
    f.uc.uc_stack.ss_sp = stack;
    f.uc.uc_stack.ss_size = STACK_BYTES;
    f.uc.uc_link = &scheduler;
    makecontext(&f.uc, fiber_entry, 0);
#endif
    f.state = RUNNING;
}

/* ---------------------------------------------------------------- the block scheduler */

static void wait_at(int state) {
    if (!in_fibers) {
        fprintf(stderr, "cuda_emu: kernel %s: thread (%u,%u,%u) of block (%u,%u,%u) reached a %s, but block 0 never "
                "did; this emulator only runs blocks as fibers when block 0 does (set CG_EMU_FIBERS=1)\n", cur_name,
                threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y, blockIdx.z,
                state == AT_BLOCK_BARRIER ? "__syncthreads" : "warp shuffle");
        abort();
    }
    saw_barrier = 1;
    int me = cur, w = me >> 5;
    /* the last to arrive opens the barrier and goes on without a switch */
    if (state == AT_BLOCK_BARRIER) {
        if (at_block + 1 == live) {
            release_block();
            return;
        }
        at_block++;
    } else {
        if (warp_wait[w] + 1 == warp_live[w]) {
            release_warp(w);
            return;
        }
        warp_wait[w]++;
    }
    fibers[(size_t)me].state = state;
    yield_to_scheduler(me);
    set_thread(me);
}

void __syncthreads(void) { wait_at(AT_BLOCK_BARRIER); }
void cg_emu_warp_barrier(void) { wait_at(AT_WARP_BARRIER); }

/* CG_EMU_ORDER=reverse: blocks run last to first, and a block's threads from the last: a kernel
 * whose result depends on the order (a block reading what another block of the same launch
 * writes, a thread reading shared memory an earlier thread wrote without a barrier between) then
 * computes something else, and the device tests' comparisons with the CPU fail. */
static int reversed(void) {
    static int r = -1;
    if (r < 0) {
        const char *e = getenv("CG_EMU_ORDER");
        r = e && !strcmp(e, "reverse");
    }
    return r;
}

static void run_block_fibers(int nthreads) {
    if ((int)fibers.size() < nthreads) fibers.resize((size_t)nthreads);
    while ((int)stacks.size() < nthreads) stacks.push_back((char *)malloc(STACK_BYTES));
    for (int t = 0; t < nthreads; t++) fiber_init(fibers[(size_t)t], stacks[(size_t)t], t);
    memset(cg_emu_shfl_count, 0, sizeof cg_emu_shfl_count);
    for (int t = nthreads; t < (int)fibers.size(); t++) fibers[(size_t)t].state = DONE;
    live = nthreads;
    at_block = 0;
    for (int w = 0; w < 32; w++) {
        int lanes = nthreads - w * 32;
        warp_live[w] = lanes < 0 ? 0 : lanes > 32 ? 32 : lanes;
        warp_wait[w] = 0;
    }
    while (live > 0) {
        int ran = 0;
        for (int i = 0; i < nthreads; i++) {
            int t = reversed() ? nthreads - 1 - i : i;
            if (fibers[(size_t)t].state == RUNNING) {
                set_thread(t);
                resume(t);
                ran = 1;
                if (cur_stat) cur_stat->resumes++;
            }
        }
        if (!ran && live > 0) {
            fprintf(stderr, "cuda_emu: kernel %s, block (%u,%u,%u): deadlock — %d of %d threads wait at "
                    "__syncthreads, the others at a warp shuffle (divergent barrier)\n", cur_name, blockIdx.x,
                    blockIdx.y, blockIdx.z, at_block, live);
            abort();
        }
    }
}

void cg_emu_launch(const cg_emu_config &cfg, const std::function<void()> &body, const char *name) {
    const dim3 g = cfg.grid, b = cfg.block;
    uint64_t nthreads = (uint64_t)b.x * b.y * b.z;
    if (nthreads == 0 || nthreads > 1024 || b.z > 64 || g.x == 0 || g.y == 0 || g.z == 0 || g.y > 65535 ||
        g.z > 65535 || g.x > 2147483647u) {
        fprintf(stderr, "cuda_emu: kernel %s: invalid configuration grid (%u,%u,%u) block (%u,%u,%u)\n", name, g.x, g.y,
                g.z, b.x, b.y, b.z);
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    if (cfg.smem > EMU_SMEM_LIMIT) {
        fprintf(stderr, "cuda_emu: kernel %s: %zu bytes of dynamic shared memory (over 48 KiB without opt-in)\n", name,
                cfg.smem);
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    if (cg_emu_dry()) {
        dry_launches++;
        dry_blocks += (unsigned long long)g.x * g.y * g.z;
        (*dry_kernels)[name]++;
        return;
    }
    static int always = -1;
    if (always < 0) always = getenv("CG_EMU_FIBERS") && atoi(getenv("CG_EMU_FIBERS")) > 0;
    if (!stats && getenv("CG_EMU_STATS") && atoi(getenv("CG_EMU_STATS")) > 0) {
        stats = new std::map<std::string, kstat>();
        atexit(print_stats);
    }
    cur_stat = stats ? &(*stats)[name] : NULL;
    if (cur_stat) cur_stat->launches++;
    gridDim = g;
    blockDim = b;
    if (fibers.size() < nthreads) fibers.resize((size_t)nthreads);
    for (int t = 0; t < (int)nthreads; t++) fibers[(size_t)t].tid = tid_of(t);
    cur_body = &body;
    cur_name = name;
    saw_barrier = 0;
    int first = 1;
    const int rev = reversed();
    dyn_smem_bytes = cfg.smem;
    dyn_smem = cfg.smem ? new unsigned char[cfg.smem] : NULL;   /* operator new: 16-byte aligned */
    static_seen.clear();
    static_bytes = 0;
    smem_over = 0;
    counting_static = 1;
    for (unsigned int zi = 0; zi < g.z; zi++)
        for (unsigned int yi = 0; yi < g.y; yi++)
            for (unsigned int xi = 0; xi < g.x; xi++) {
                blockIdx.x = rev ? g.x - 1 - xi : xi;
                blockIdx.y = rev ? g.y - 1 - yi : yi;
                blockIdx.z = rev ? g.z - 1 - zi : zi;
                if (dyn_smem) memset(dyn_smem, 0xff, dyn_smem_bytes);
                in_fibers = first || saw_barrier || always;
                if (cur_stat) (in_fibers ? cur_stat->fiber_blocks : cur_stat->plain_blocks)++;
                if (in_fibers) {
                    run_block_fibers((int)nthreads);
                } else {
                    for (int i = 0; i < (int)nthreads; i++) {
                        set_thread(rev ? (int)nthreads - 1 - i : i);
                        body();
                    }
                }
                first = 0;
                counting_static = 0;
            }
    counting_static = 0;
    delete[] dyn_smem;
    dyn_smem = NULL;
    dyn_smem_bytes = 0;
    if (!canaries_intact(name)) set_error(cudaErrorIllegalAddress);
    if (smem_over) set_error(cudaErrorInvalidValue);
}
