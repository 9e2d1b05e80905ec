/* cg_cuda.h — the CUDA backend's runtime, callable from C: device query, a context (stream,
 * cuBLAS and cuBLASLt handles, one scratch buffer), a device arena, copies and precision
 * conversion. The layers are in nn/cuda/cuda_ops.h, the optimizer in nn/cuda/cuda_adamw.h.
 *
 * Everything here returns CG_OK or a cg_status code with a message in cg_error_message() that
 * names the file:line of the failing CUDA/cuBLAS call and CUDA's error string; nothing exits.
 * With no driver or no device, cg_cuda_device_query() returns CG_ERR_DEVICE and a message that
 * starts "no CUDA device".
 *
 * Precision. Every op takes a cg_precision p. "X" tensors (activations, their gradients, and the
 * parameter values the forward reads) are float when p = CG_PREC_FP32 and __nv_bfloat16 when
 * p = CG_PREC_BF16; they are passed as void *. Parameter gradients, BatchNorm/LayerNorm
 * statistics, running stats, optimizer state and the loss are always float. Arithmetic inside
 * every kernel is fp32; matrix products run on cuBLAS with fp32 accumulation (in fp32 mode
 * strictly fp32: no TF32).
 *
 * Memory. A run allocates once: cg_cuda_arena_init() makes ONE cudaMalloc and hands out
 * 256-byte-aligned pieces (a planning arena, cg_cuda_arena_plan(), only counts, so the exact size
 * is known before anything is allocated). The context owns a scratch buffer, sized at creation,
 * that ops use for their temporaries (im2col columns, partial sums, attention's permuted
 * copies); each op's *_scratch_bytes() says what it needs. Ops on one context run in order on its
 * stream, so they share the scratch safely; one context must not be used from two threads.
 *
 *   cg_cuda_ctx *ctx;
 *   if (cg_cuda_ctx_create(&ctx, 0, 256u << 20)) { cg_log_error("%s", cg_error_message()); ... }
 *   ... ops ...
 *   if (cg_cuda_sync(ctx)) ...          // surfaces any asynchronous kernel error
 *   cg_cuda_ctx_destroy(ctx);
 *
 * CLIPGRID_CUDA_SYNC=1 in the environment makes every launch synchronize and check, so an
 * asynchronous fault is reported at the file:line of the kernel that caused it.
 */
#ifndef CLIPGRID_NN_CUDA_CG_CUDA_H
#define CLIPGRID_NN_CUDA_CG_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CG_PREC_FP32 = 0, CG_PREC_BF16 = 1 } cg_precision;

/* Bytes of one X element: 4 or 2. */
size_t cg_prec_size(cg_precision p);
const char *cg_prec_name(cg_precision p);

/* ---------------------------------------------------------------- device */

typedef struct {
    int device;
    char name[256];
    int cc_major, cc_minor;
    int sm_count;
    size_t total_mem, free_mem;
    size_t l2_bytes;
    size_t smem_per_block_optin;   /* shared memory a block may opt in to */
    int driver_version, runtime_version;   /* e.g. 13000 */
} cg_cuda_device_info;

/* Number of CUDA devices; 0 with CG_OK when the driver or the device is absent (not an error). */
int cg_cuda_device_count(int *count);
/* CG_OK and the device's properties, or CG_ERR_DEVICE "no CUDA device: ..." / the CUDA error. */
int cg_cuda_device_query(int device, cg_cuda_device_info *info);

/* ---------------------------------------------------------------- context */

typedef struct cg_cuda_ctx cg_cuda_ctx;

/* Select `device`, create a stream, cuBLAS and cuBLASLt handles with their workspaces, and a
 * scratch buffer of scratch_bytes (0: 64 MiB). */
int cg_cuda_ctx_create(cg_cuda_ctx **ctx, int device, size_t scratch_bytes);
void cg_cuda_ctx_destroy(cg_cuda_ctx *ctx);
/* Wait for the stream; returns the first asynchronous error, if any. */
int cg_cuda_sync(cg_cuda_ctx *ctx);
size_t cg_cuda_scratch_bytes(const cg_cuda_ctx *ctx);
/* Device bytes the context allocated: scratch, cuBLAS and cuBLASLt workspaces, the fault word. */
size_t cg_cuda_ctx_bytes(const cg_cuda_ctx *ctx);
/* Linear layers use cuBLASLt (bias fused into the GEMM epilogue) when on (default) and the
 * operands allow it; off: cublasGemmEx plus a bias kernel. For tests and bisection. */
void cg_cuda_set_use_lt(cg_cuda_ctx *ctx, int on);
/* Depthwise convolutions (k = 3, 5, 7) use the whole-plane kernels when on (default) and a
 * zero-padded plane fits in 48 KiB of shared memory: a block holds whole planes, each thread
 * computes 4 outputs of a row from 16-byte shared loads. Off: the 8x32 tile kernels, which also
 * serve larger planes and other k. Both give the same forward bits.
 * For tests and the benchmark's comparison. */
void cg_cuda_set_dw_planes(cg_cuda_ctx *ctx, int on);
/* Attention's products read q, k, v (and dO) where they are and write O and dq, dk, dv into place
 * (pointer-array batched GEMMs over (batch, head)) when on (default); off: q, k, v, dO are first
 * permuted into [B, H, T, D] copies and the results permuted back (strided-batched GEMMs). For
 * tests and the benchmark's comparison. */
void cg_cuda_set_attn_in_place(cg_cuda_ctx *ctx, int on);
/* cuBLASLt plans (descriptors + heuristic's algorithm) built so far. A linear shape is planned
 * once per context and reused (up to 64 shapes; more are planned per call). For tests. */
long cg_cuda_lt_plan_builds(const cg_cuda_ctx *ctx);
/* Sticky data faults a kernel found and skipped instead of reading out of bounds (an embedding
 * id outside [0, V)). Synchronizes; CG_ERR_STATE naming the fault, then clears it. */
int cg_cuda_check_faults(cg_cuda_ctx *ctx);

/* ---------------------------------------------------------------- per-kernel timing */

typedef struct {
    const char *name;   /* the kernel's name as its launch check gives it, "cublasGemmEx", ... */
    double seconds;     /* wall time, summed over the calls */
    long calls;
} cg_cuda_prof_row;

/* From cg_cuda_profile_start until cg_cuda_profile_stop, every checked kernel launch, cuBLAS /
 * cuBLASLt call and copy is followed by a stream synchronisation, and the wall time since the
 * previous one (the host's work in between, the launch, the kernel) is added to its name's row.
 * One sync per call slows the step: for bench/ (where the time goes), not for training. */
int cg_cuda_profile_start(cg_cuda_ctx *ctx);
/* Stops; copies the rows, the largest time first, into rows[0..max) and returns how many there
 * are (all of them, even if more than max); 0 when no profile was running. */
int cg_cuda_profile_stop(cg_cuda_ctx *ctx, cg_cuda_prof_row *rows, int max);

/* ---------------------------------------------------------------- memory */

int cg_cuda_malloc(void **ptr, size_t bytes);
void cg_cuda_free(void *ptr);
/* Device memory in use on the current device (total - free), for peak-memory reports. */
int cg_cuda_mem_used(size_t *used, size_t *total);

typedef struct {
    char *base;          /* NULL in a planning arena */
    size_t capacity;
    size_t used;         /* bytes handed out, including alignment padding */
    size_t peak;         /* largest `used` since init */
    int planning;        /* 1: counts only, cg_cuda_arena_alloc returns NULL */
} cg_cuda_arena;

#define CG_CUDA_ARENA_ALIGN 256

/* One cudaMalloc of `bytes`. */
int cg_cuda_arena_init(cg_cuda_arena *a, size_t bytes);
/* A planning arena: allocs count bytes and return NULL; a.used is then the size to init with. */
void cg_cuda_arena_plan(cg_cuda_arena *a);
/* 256-byte aligned; NULL (and cg_error_set CG_ERR_NOMEM naming sizes) when it does not fit, or
 * always NULL in a planning arena. Never calls cudaMalloc. */
void *cg_cuda_arena_alloc(cg_cuda_arena *a, size_t bytes);
/* What one cg_cuda_arena_alloc(bytes) takes of the arena: bytes (at least 1) plus the gap the
 * arena leaves after each piece, rounded up to CG_CUDA_ARENA_ALIGN. The gap is 0 on a GPU; the
 * CPU emulator leaves one to catch overruns (tools/cuda_emu/README.md). Sizes computed by hand
 * must add pieces this way. */
size_t cg_cuda_arena_piece_bytes(size_t bytes);
size_t cg_cuda_arena_gap(void);
void cg_cuda_arena_reset(cg_cuda_arena *a);
void cg_cuda_arena_free(cg_cuda_arena *a);

/* Byte copies on the context's stream; the host-side ones return when the copy is done. */
int cg_cuda_h2d(cg_cuda_ctx *ctx, void *dst, const void *src, size_t bytes);
int cg_cuda_d2h(cg_cuda_ctx *ctx, void *dst, const void *src, size_t bytes);
int cg_cuda_d2d(cg_cuda_ctx *ctx, void *dst, const void *src, size_t bytes);
int cg_cuda_memset0(cg_cuda_ctx *ctx, void *dst, size_t bytes);

/* n host floats -> n X elements on the device (rounded to bf16, nearest-even, in BF16 mode). */
int cg_cuda_upload(cg_cuda_ctx *ctx, cg_precision p, void *dst, const float *src, int64_t n);
/* n X elements on the device -> n host floats. */
int cg_cuda_download(cg_cuda_ctx *ctx, cg_precision p, float *dst, const void *src, int64_t n);
/* Device-side conversion between element types (also float -> float: a copy). */
int cg_cuda_convert(cg_cuda_ctx *ctx, cg_precision to, void *dst, cg_precision from, const void *src, int64_t n);
/* Fill n X elements with `value` (NaN poisons outputs in tests). */
int cg_cuda_fill(cg_cuda_ctx *ctx, cg_precision p, void *dst, float value, int64_t n);

/* Host helpers: round a float to the nearest bf16 (ties to even; NaN stays NaN), and back. */
uint16_t cg_f32_to_bf16_bits(float x);
float cg_bf16_bits_to_f32(uint16_t b);
float cg_bf16_round(float x);

#ifdef __cplusplus
}
#endif

#endif
