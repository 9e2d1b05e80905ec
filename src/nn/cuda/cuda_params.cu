/* cuda_params.cu — the device mirror of a parameter set (nn/cuda/cuda_params.h). Host code only. */
#include "nn/cuda/cuda_params.h"

#include <stdlib.h>
#include <string.h>

extern "C" {
#include "core/log.h"
}

#define CP_TRY(expr) do { int cp_rc_ = (expr); if (cp_rc_) return cp_rc_; } while (0)

extern "C" void cg_cuda_params_layout(cg_cuda_params *d, const cg_params *src) {
    memset(d, 0, sizeof *d);
    d->n_entries = src->n;
    d->offsets = (int64_t *)cg_xcalloc((size_t)(d->n_entries ? d->n_entries : 1), sizeof *d->offsets);
    d->kinds = (cg_param_kind *)cg_xcalloc((size_t)(d->n_entries ? d->n_entries : 1), sizeof *d->kinds);
    for (int i = 0; i < d->n_entries; i++) {
        d->offsets[i] = src->e[i].offset;
        d->kinds[i] = src->e[i].kind;
    }
    d->n_params = src->n_params;
    d->n_buffers = src->n_buffers;
    d->n_counters = src->n_counters;
    d->counters = (int64_t *)cg_xcalloc((size_t)(d->n_counters ? d->n_counters : 1), sizeof *d->counters);
}

extern "C" void cg_cuda_params_free(cg_cuda_params *d) {
    free(d->offsets);
    free(d->kinds);
    free(d->counters);
    d->offsets = NULL;
    d->kinds = NULL;
    d->counters = NULL;
}

extern "C" int cg_cuda_params_check(const cg_cuda_params *d, const cg_params *hp, const char *what) {
    if (hp->n != d->n_entries || hp->n_params != d->n_params || hp->n_buffers != d->n_buffers ||
        hp->n_counters != d->n_counters)
        return cg_error_set(CG_ERR_STATE, "%s: parameter layout differs from the model's (%d entries, %lld params)",
                            what, d->n_entries, (long long)d->n_params);
    for (int i = 0; i < hp->n; i++)
        if (hp->e[i].offset != d->offsets[i] || hp->e[i].kind != d->kinds[i])
            return cg_error_set(CG_ERR_STATE, "%s: entry %s is laid out differently", what, hp->e[i].name);
    return CG_OK;
}

extern "C" int cg_cuda_params_refresh(cg_cuda_ctx *ctx, cg_cuda_params *d, cg_precision p) {
    if (p == CG_PREC_FP32) return CG_OK;
    return cg_cuda_convert(ctx, p, d->wx, CG_PREC_FP32, d->params, d->n_params);
}

extern "C" int cg_cuda_params_upload(cg_cuda_ctx *ctx, cg_cuda_params *d, cg_precision p, const cg_params *src,
                                     const char *what) {
    CP_TRY(cg_cuda_params_check(d, src, what));
    CP_TRY(cg_cuda_h2d(ctx, d->params, src->params, (size_t)d->n_params * sizeof(float)));
    if (d->n_buffers) CP_TRY(cg_cuda_h2d(ctx, d->buffers, src->buffers, (size_t)d->n_buffers * sizeof(float)));
    if (d->n_counters) memcpy(d->counters, src->counters, (size_t)d->n_counters * sizeof(int64_t));
    return cg_cuda_params_refresh(ctx, d, p);
}

extern "C" int cg_cuda_params_download(cg_cuda_ctx *ctx, const cg_cuda_params *d, cg_params *dst, int grads,
                                       const char *what) {
    CP_TRY(cg_cuda_params_check(d, dst, what));
    CP_TRY(cg_cuda_d2h(ctx, dst->params, d->params, (size_t)d->n_params * sizeof(float)));
    if (d->n_buffers) CP_TRY(cg_cuda_d2h(ctx, dst->buffers, d->buffers, (size_t)d->n_buffers * sizeof(float)));
    if (d->n_counters) memcpy(dst->counters, d->counters, (size_t)d->n_counters * sizeof(int64_t));
    if (grads) CP_TRY(cg_cuda_d2h(ctx, dst->grads, d->grads, (size_t)d->n_params * sizeof(float)));
    return CG_OK;
}

extern "C" int cg_cuda_params_zero_grad(cg_cuda_ctx *ctx, cg_cuda_params *d) {
    return cg_cuda_memset0(ctx, d->grads, (size_t)d->n_params * sizeof(float));
}
