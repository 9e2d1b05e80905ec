/* cg_cuda.cu — device query, context, arena, copies and conversions (see cg_cuda.h). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nn/cuda/cuda_common.cuh"

#define CG_CUBLAS_WS_BYTES ((size_t)32 << 20)   /* cuBLAS's recommendation for Hopper */
#define CG_LT_WS_BYTES ((size_t)32 << 20)

extern "C" size_t cg_prec_size(cg_precision p) { return p == CG_PREC_BF16 ? 2 : 4; }
extern "C" const char *cg_prec_name(cg_precision p) { return p == CG_PREC_BF16 ? "bf16" : "fp32"; }

/* ---------------------------------------------------------------- launch check */

extern "C" int cg_cuda_launch_check_(struct cg_cuda_ctx *ctx, const char *file, int line, const char *what) {
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && ctx && ctx->sync_each) e = cudaStreamSynchronize(ctx->stream);
    if (e != cudaSuccess)
        return cg_error_set(CG_ERR_DEVICE, "%s:%d: kernel %s: %s (%s)", file, line, what, cudaGetErrorString(e),
                            cudaGetErrorName(e));
    if (ctx && ctx->profiling) cg_cuda_profile_mark_(ctx, what);
    return CG_OK;
}

/* ---------------------------------------------------------------- per-kernel timing */

static double host_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

extern "C" void cg_cuda_profile_mark_(cg_cuda_ctx *ctx, const char *what) {
    if (!ctx->profiling) return;
    (void)cudaStreamSynchronize(ctx->stream);   /* an error here is the next check's to report */
    double t = host_seconds();
    int i = 0;
    while (i < ctx->n_prof && strcmp(ctx->prof[i].name, what) != 0) i++;
    if (i == ctx->n_prof) {
        if (ctx->n_prof < CG_PROF_ROWS - 1) ctx->prof[ctx->n_prof++].name = what;
        else {   /* the last row collects the names that did not fit */
            i = CG_PROF_ROWS - 1;
            ctx->prof[i].name = "(other)";
            ctx->n_prof = CG_PROF_ROWS;
        }
    }
    ctx->prof[i].seconds += t - ctx->prof_last;
    ctx->prof[i].calls++;
    ctx->prof_last = t;
}

extern "C" int cg_cuda_profile_start(cg_cuda_ctx *ctx) {
    CG_CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    memset(ctx->prof, 0, sizeof ctx->prof);
    ctx->n_prof = 0;
    ctx->profiling = 1;
    ctx->prof_last = host_seconds();
    return CG_OK;
}

static int by_time_desc(const void *a, const void *b) {
    double x = ((const cg_cuda_prof_row *)a)->seconds, y = ((const cg_cuda_prof_row *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

extern "C" int cg_cuda_profile_stop(cg_cuda_ctx *ctx, cg_cuda_prof_row *rows, int max) {
    if (!ctx->profiling) return 0;
    ctx->profiling = 0;
    qsort(ctx->prof, (size_t)ctx->n_prof, sizeof ctx->prof[0], by_time_desc);
    for (int i = 0; i < ctx->n_prof && i < max; i++) rows[i] = ctx->prof[i];
    return ctx->n_prof;
}

/* ---------------------------------------------------------------- device */

static int no_device_error(cudaError_t e) {
    return e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorStubLibrary ||
           e == cudaErrorDevicesUnavailable;
}

extern "C" int cg_cuda_device_count(int *count) {
    int n = 0;
    *count = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();  /* do not leave the error for the next check */
        if (no_device_error(e)) return CG_OK;
        return cg_error_set(CG_ERR_DEVICE, "no CUDA device: cudaGetDeviceCount: %s (%s)", cudaGetErrorString(e),
                            cudaGetErrorName(e));
    }
    *count = n;
    return CG_OK;
}

extern "C" int cg_cuda_device_query(int device, cg_cuda_device_info *info) {
    memset(info, 0, sizeof *info);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return cg_error_set(CG_ERR_DEVICE, "no CUDA device: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    }
    if (n == 0) return cg_error_set(CG_ERR_DEVICE, "no CUDA device: the driver reports none");
    if (device < 0 || device >= n)
        return cg_error_set(CG_ERR_DEVICE, "no CUDA device %d: the driver reports %d device(s)", device, n);
    cudaDeviceProp prop;
    CG_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    info->device = device;
    snprintf(info->name, sizeof info->name, "%s", prop.name);
    info->cc_major = prop.major;
    info->cc_minor = prop.minor;
    info->sm_count = prop.multiProcessorCount;
    info->total_mem = prop.totalGlobalMem;
    info->l2_bytes = (size_t)prop.l2CacheSize;
    info->smem_per_block_optin = prop.sharedMemPerBlockOptin;
    CG_CUDA_CHECK(cudaDriverGetVersion(&info->driver_version));
    CG_CUDA_CHECK(cudaRuntimeGetVersion(&info->runtime_version));
    int cur = 0;
    CG_CUDA_CHECK(cudaGetDevice(&cur));
    CG_CUDA_CHECK(cudaSetDevice(device));
    size_t fr = 0, tot = 0;
    e = cudaMemGetInfo(&fr, &tot);
    cudaError_t e2 = cudaSetDevice(cur);
    CG_CUDA_CHECK(e);
    CG_CUDA_CHECK(e2);
    info->free_mem = fr;
    return CG_OK;
}

/* ---------------------------------------------------------------- context */

static int ctx_setup(cg_cuda_ctx *c, int device, size_t scratch_bytes) {
    CG_CUDA_CHECK(cudaSetDevice(device));
    c->device = device;
    CG_CUDA_CHECK(cudaDeviceGetAttribute(&c->sm_count, cudaDevAttrMultiProcessorCount, device));
    CG_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CG_CUBLAS_CHECK(cublasCreate(&c->blas));
    CG_CUBLAS_CHECK(cublasSetStream(c->blas, c->stream));
    /* strict fp32 in fp32 mode (no TF32: the default math mode); bf16 products accumulate in fp32
     * and split-K partial sums must not be kept in reduced precision either */
    CG_CUBLAS_CHECK(cublasSetMathMode(c->blas, (cublasMath_t)(CUBLAS_DEFAULT_MATH |
                                                              CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    CG_CUDA_CHECK(cudaMalloc(&c->blas_ws, CG_CUBLAS_WS_BYTES));
    c->blas_ws_bytes = CG_CUBLAS_WS_BYTES;
    CG_CUBLAS_CHECK(cublasSetWorkspace(c->blas, c->blas_ws, c->blas_ws_bytes));
    CG_CUBLAS_CHECK(cublasLtCreate(&c->lt));
    CG_CUDA_CHECK(cudaMalloc(&c->lt_ws, CG_LT_WS_BYTES));
    c->lt_ws_bytes = CG_LT_WS_BYTES;
    c->scratch_bytes = scratch_bytes ? cg_align_up(scratch_bytes, 256) : ((size_t)64 << 20);
    CG_CUDA_CHECK(cudaMalloc(&c->scratch, c->scratch_bytes));
    CG_CUDA_CHECK(cudaMalloc((void **)&c->faults, sizeof(unsigned int)));
    CG_CUDA_CHECK(cudaMemsetAsync(c->faults, 0, sizeof(unsigned int), c->stream));
    CG_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    c->use_lt = 1;
    const char *s = getenv("CLIPGRID_CUDA_SYNC");
    c->sync_each = s && *s && strcmp(s, "0") != 0;
    return CG_OK;
}

extern "C" int cg_cuda_ctx_create(cg_cuda_ctx **out, int device, size_t scratch_bytes) {
    *out = NULL;
    cg_cuda_device_info info;
    int rc = cg_cuda_device_query(device, &info);
    if (rc) return rc;
    cg_cuda_ctx *c = (cg_cuda_ctx *)calloc(1, sizeof *c);
    if (!c) return cg_error_set(CG_ERR_NOMEM, "cg_cuda_ctx_create: out of host memory");
    rc = ctx_setup(c, device, scratch_bytes);
    if (rc) {
        cg_cuda_ctx_destroy(c);  /* keeps the setup's error message: destroy sets none */
        return rc;
    }
    *out = c;
    return CG_OK;
}

extern "C" void cg_cuda_ctx_destroy(cg_cuda_ctx *c) {
    if (!c) return;
    if (c->stream) (void)cudaStreamSynchronize(c->stream);
    cg_cuda_lt_plans_clear(c);
    if (c->lt) (void)cublasLtDestroy(c->lt);
    if (c->blas) (void)cublasDestroy(c->blas);
    cudaFree(c->faults);
    cudaFree(c->scratch);
    cudaFree(c->lt_ws);
    cudaFree(c->blas_ws);
    if (c->stream) (void)cudaStreamDestroy(c->stream);
    (void)cudaGetLastError();
    free(c);
}

extern "C" int cg_cuda_sync(cg_cuda_ctx *ctx) {
    CG_CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    CG_CUDA_CHECK(cudaGetLastError());
    return CG_OK;
}

extern "C" size_t cg_cuda_scratch_bytes(const cg_cuda_ctx *ctx) { return ctx->scratch_bytes; }
extern "C" long cg_cuda_lt_plan_builds(const cg_cuda_ctx *ctx) { return ctx->lt_plan_builds; }

extern "C" void cg_cuda_set_use_lt(cg_cuda_ctx *ctx, int on) { ctx->use_lt = on != 0; }
extern "C" void cg_cuda_set_dw_planes(cg_cuda_ctx *ctx, int on) { ctx->dw_tiles = on == 0; }
extern "C" void cg_cuda_set_attn_in_place(cg_cuda_ctx *ctx, int on) { ctx->attn_permute = on == 0; }

extern "C" int cg_cuda_check_faults(cg_cuda_ctx *ctx) {
    unsigned int f = 0;
    CG_CUDA_CHECK(cudaMemcpyAsync(&f, ctx->faults, sizeof f, cudaMemcpyDeviceToHost, ctx->stream));
    CG_CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    if (!f) return CG_OK;
    CG_CUDA_CHECK(cudaMemsetAsync(ctx->faults, 0, sizeof(unsigned int), ctx->stream));
    CG_CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    if (f & CG_CUDA_FAULT_EMBEDDING_ID)
        return cg_error_set(CG_ERR_STATE, "CUDA embedding: a token id outside [0, vocab) (its row was left zero)");
    return cg_error_set(CG_ERR_STATE, "CUDA kernels reported data faults 0x%x", f);
}

/* ---------------------------------------------------------------- memory */

extern "C" int cg_cuda_malloc(void **ptr, size_t bytes) {
    *ptr = NULL;
    CG_CUDA_CHECK(cudaMalloc(ptr, bytes ? bytes : 1));
    return CG_OK;
}

extern "C" void cg_cuda_free(void *ptr) {
    if (ptr) (void)cudaFree(ptr);
}

extern "C" size_t cg_cuda_ctx_bytes(const cg_cuda_ctx *ctx) {
    return ctx->scratch_bytes + ctx->blas_ws_bytes + ctx->lt_ws_bytes + sizeof(unsigned int);
}

extern "C" int cg_cuda_mem_used(size_t *used, size_t *total) {
    size_t fr = 0, tot = 0;
    CG_CUDA_CHECK(cudaMemGetInfo(&fr, &tot));
    *used = tot - fr;
    if (total) *total = tot;
    return CG_OK;
}

/* The CPU emulator (tools/cuda_emu) defines these; a GPU build does not (weak: NULL). The arena
 * leaves cg_emu_arena_gap() bytes after every piece and reports each piece, so the emulator can
 * check a library call's operands against the piece (not just the whole allocation) and catch a
 * kernel that writes (or, under ASan, reads) past its piece into the gap. */
extern "C" size_t cg_emu_arena_gap(void) __attribute__((weak));
extern "C" void cg_emu_arena_piece(const void *piece, size_t bytes, size_t slot) __attribute__((weak));
extern "C" void cg_emu_arena_forget(const void *base, size_t bytes) __attribute__((weak));

extern "C" int cg_cuda_arena_init(cg_cuda_arena *a, size_t bytes) {
    memset(a, 0, sizeof *a);
    void *p = NULL;
    CG_CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1));
    a->base = (char *)p;
    a->capacity = bytes;
    return CG_OK;
}

extern "C" void cg_cuda_arena_plan(cg_cuda_arena *a) {
    memset(a, 0, sizeof *a);
    a->planning = 1;
}

extern "C" size_t cg_cuda_arena_gap(void) { return cg_emu_arena_gap ? cg_emu_arena_gap() : 0; }

extern "C" size_t cg_cuda_arena_piece_bytes(size_t bytes) {
    return cg_align_up((bytes ? bytes : 1) + cg_cuda_arena_gap(), CG_CUDA_ARENA_ALIGN);
}

extern "C" void *cg_cuda_arena_alloc(cg_cuda_arena *a, size_t bytes) {
    size_t off = cg_align_up(a->used, CG_CUDA_ARENA_ALIGN);
    size_t end = off + cg_cuda_arena_piece_bytes(bytes);
    if (a->planning) {
        a->used = end;
        if (end > a->peak) a->peak = end;
        return NULL;
    }
    if (!a->base || end > a->capacity) {
        cg_error_set(CG_ERR_NOMEM, "CUDA arena: %zu bytes requested with %zu of %zu in use", bytes, a->used, a->capacity);
        return NULL;
    }
    a->used = end;
    if (end > a->peak) a->peak = end;
    if (cg_emu_arena_piece) cg_emu_arena_piece(a->base + off, bytes, end - off);
    return a->base + off;
}

extern "C" void cg_cuda_arena_reset(cg_cuda_arena *a) {
    if (cg_emu_arena_forget && a->base) cg_emu_arena_forget(a->base, a->capacity);
    a->used = 0;
}

extern "C" void cg_cuda_arena_free(cg_cuda_arena *a) {
    if (cg_emu_arena_forget && a->base) cg_emu_arena_forget(a->base, a->capacity);
    if (a->base) (void)cudaFree(a->base);
    memset(a, 0, sizeof *a);
}

extern "C" int cg_cuda_h2d(cg_cuda_ctx *ctx, void *dst, const void *src, size_t bytes) {
    if (!bytes) return CG_OK;
    CG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx->stream));
    CG_CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    cg_cuda_profile_mark_(ctx, "cudaMemcpy host to device");
    return CG_OK;
}

extern "C" int cg_cuda_d2h(cg_cuda_ctx *ctx, void *dst, const void *src, size_t bytes) {
    if (!bytes) return CG_OK;
    CG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream));
    CG_CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    cg_cuda_profile_mark_(ctx, "cudaMemcpy device to host");
    return CG_OK;
}

extern "C" int cg_cuda_d2d(cg_cuda_ctx *ctx, void *dst, const void *src, size_t bytes) {
    if (!bytes) return CG_OK;
    CG_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
    cg_cuda_profile_mark_(ctx, "cudaMemcpy device to device");
    return CG_OK;
}

extern "C" int cg_cuda_memset0(cg_cuda_ctx *ctx, void *dst, size_t bytes) {
    if (!bytes) return CG_OK;
    CG_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, ctx->stream));
    cg_cuda_profile_mark_(ctx, "cudaMemset");
    return CG_OK;
}

/* ---------------------------------------------------------------- host bf16 */

extern "C" uint16_t cg_f32_to_bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);  /* NaN stays (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u);  /* round to nearest, ties to even; overflow rounds to inf */
    return (uint16_t)(u >> 16);
}

extern "C" float cg_bf16_bits_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

extern "C" float cg_bf16_round(float x) { return cg_bf16_bits_to_f32(cg_f32_to_bf16_bits(x)); }

extern "C" int cg_cuda_upload(cg_cuda_ctx *ctx, cg_precision p, void *dst, const float *src, int64_t n) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(n >= 0, "n = %lld", (long long)n);
    if (n == 0) return CG_OK;
    if (p == CG_PREC_FP32) return cg_cuda_h2d(ctx, dst, src, (size_t)n * sizeof(float));
    uint16_t *tmp = (uint16_t *)malloc((size_t)n * sizeof(uint16_t));
    if (!tmp) return cg_error_set(CG_ERR_NOMEM, "cg_cuda_upload: out of host memory");
    for (int64_t i = 0; i < n; i++) tmp[i] = cg_f32_to_bf16_bits(src[i]);
    int rc = cg_cuda_h2d(ctx, dst, tmp, (size_t)n * sizeof(uint16_t));
    free(tmp);
    return rc;
}

extern "C" int cg_cuda_download(cg_cuda_ctx *ctx, cg_precision p, float *dst, const void *src, int64_t n) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(n >= 0, "n = %lld", (long long)n);
    if (n == 0) return CG_OK;
    if (p == CG_PREC_FP32) return cg_cuda_d2h(ctx, dst, src, (size_t)n * sizeof(float));
    uint16_t *tmp = (uint16_t *)malloc((size_t)n * sizeof(uint16_t));
    if (!tmp) return cg_error_set(CG_ERR_NOMEM, "cg_cuda_download: out of host memory");
    int rc = cg_cuda_d2h(ctx, tmp, src, (size_t)n * sizeof(uint16_t));
    if (!rc)
        for (int64_t i = 0; i < n; i++) dst[i] = cg_bf16_bits_to_f32(tmp[i]);
    free(tmp);
    return rc;
}

/* ---------------------------------------------------------------- conversion, fill */

/* dst[i] = (TO) src[i]                                       (rounding to nearest even into bf16) */
template <typename TO, typename FROM>
__global__ void convert_kernel(TO *__restrict__ dst, const FROM *__restrict__ src, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = stf<TO>(ldf(src[i]));
}

template <typename T> __global__ void fill_kernel(T *__restrict__ dst, float v, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = stf<T>(v);
}

template <typename TO, typename FROM>
static int convert_impl(cg_cuda_ctx *ctx, void *dst, const void *src, int64_t n) {
    convert_kernel<TO, FROM><<<cg_grid(n, 256), 256, 0, ctx->stream>>>((TO *)dst, (const FROM *)src, n);
    CG_CUDA_CHECK_LAUNCH(ctx, "convert_kernel");
    return CG_OK;
}

extern "C" int cg_cuda_convert(cg_cuda_ctx *ctx, cg_precision to, void *dst, cg_precision from, const void *src,
                               int64_t n) {
    CG_CHECK_PREC(to);
    CG_CHECK_PREC(from);
    CG_CUDA_ARG(n >= 0, "n = %lld", (long long)n);
    if (n == 0) return CG_OK;
    if (to == from) return cg_cuda_d2d(ctx, dst, src, (size_t)n * cg_prec_size(to));
    if (to == CG_PREC_BF16) return convert_impl<bf16, float>(ctx, dst, src, n);
    return convert_impl<float, bf16>(ctx, dst, src, n);
}

extern "C" int cg_cuda_fill(cg_cuda_ctx *ctx, cg_precision p, void *dst, float value, int64_t n) {
    CG_CHECK_PREC(p);
    CG_CUDA_ARG(n >= 0, "n = %lld", (long long)n);
    if (n == 0) return CG_OK;
    if (p == CG_PREC_BF16) fill_kernel<bf16><<<cg_grid(n, 256), 256, 0, ctx->stream>>>((bf16 *)dst, value, n);
    else fill_kernel<float><<<cg_grid(n, 256), 256, 0, ctx->stream>>>((float *)dst, value, n);
    CG_CUDA_CHECK_LAUNCH(ctx, "fill_kernel");
    return CG_OK;
}
