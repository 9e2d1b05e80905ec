#include "nn/params.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

void cg_params_init(cg_params *p) { memset(p, 0, sizeof *p); }

int cg_params_add(cg_params *p, const char *name, cg_param_kind kind, int ndim, const int64_t *shape) {
    if (p->params || p->buffers || p->counters) cg_tensor_fail("cg_params_add", "\"%s\" added after cg_params_alloc", name);
    if (ndim > 4) cg_tensor_fail("cg_params_add", "\"%s\": at most 4 dims", name);
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 128;
        p->e = cg_xrealloc(p->e, (size_t)p->cap * sizeof *p->e);
    }
    cg_param_entry *e = &p->e[p->n];
    memset(e, 0, sizeof *e);
    e->name = cg_xstrdup(name);
    e->kind = kind;
    e->ndim = ndim;
    e->numel = 1;
    for (int d = 0; d < ndim; d++) { e->shape[d] = shape[d]; e->numel *= shape[d]; }
    int64_t *counter = kind == CG_KIND_PARAM ? &p->n_params : kind == CG_KIND_BUFFER ? &p->n_buffers : &p->n_counters;
    e->offset = *counter;
    *counter += e->numel;
    return p->n++;
}

void cg_params_alloc(cg_params *p) {
    p->params = cg_xcalloc((size_t)p->n_params + 1, sizeof(float));
    p->grads = cg_xcalloc((size_t)p->n_params + 1, sizeof(float));
    p->buffers = cg_xcalloc((size_t)p->n_buffers + 1, sizeof(float));
    p->counters = cg_xcalloc((size_t)p->n_counters + 1, sizeof(int64_t));
}

void cg_params_free(cg_params *p) {
    for (int i = 0; i < p->n; i++) free(p->e[i].name);
    free(p->e);
    free(p->params);
    free(p->grads);
    free(p->buffers);
    free(p->counters);
    memset(p, 0, sizeof *p);
}

int cg_params_find(const cg_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->e[i].name, name)) return i;
    return -1;
}

cg_tensor cg_params_value(const cg_params *p, int i) {
    const cg_param_entry *e = &p->e[i];
    if (e->kind == CG_KIND_COUNTER) cg_tensor_fail("cg_params_value", "\"%s\" is a counter", e->name);
    float *base = e->kind == CG_KIND_PARAM ? p->params : p->buffers;
    return cg_tensor_view(base + e->offset, CG_DEV_CPU, e->ndim, e->shape);
}

cg_tensor cg_params_grad(const cg_params *p, int i) {
    const cg_param_entry *e = &p->e[i];
    if (e->kind != CG_KIND_PARAM) cg_tensor_fail("cg_params_grad", "\"%s\" is not trainable", e->name);
    return cg_tensor_view(p->grads + e->offset, CG_DEV_CPU, e->ndim, e->shape);
}

int64_t *cg_params_counter(const cg_params *p, int i) {
    if (p->e[i].kind != CG_KIND_COUNTER) cg_tensor_fail("cg_params_counter", "\"%s\" is not a counter", p->e[i].name);
    return p->counters + p->e[i].offset;
}

void cg_params_zero_grad(cg_params *p) { memset(p->grads, 0, (size_t)p->n_params * sizeof(float)); }

int64_t cg_params_count(const cg_params *p, const char *exclude_prefix) {
    int64_t n = 0;
    size_t lp = exclude_prefix ? strlen(exclude_prefix) : 0;
    for (int i = 0; i < p->n; i++)
        if (p->e[i].kind == CG_KIND_PARAM && !(lp && !strncmp(p->e[i].name, exclude_prefix, lp))) n += p->e[i].numel;
    return n;
}

static int ignored(const char *name, const char *const *prefixes) {
    for (int i = 0; prefixes && prefixes[i]; i++)
        if (!strncmp(name, prefixes[i], strlen(prefixes[i]))) return 1;
    return 0;
}

int cg_params_load(cg_params *p, const cg_safetensors *st, const char *const *ignore_prefixes) {
    for (int i = 0; i < st->n; i++) {
        const char *name = st->tensors[i].name;
        if (cg_params_find(p, name) < 0 && !ignored(name, ignore_prefixes))
            return cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\" is not part of this model", st->path, name);
    }
    for (int i = 0; i < p->n; i++) {
        const cg_param_entry *e = &p->e[i];
        if (ignored(e->name, ignore_prefixes)) continue;
        int rc;
        if (e->kind == CG_KIND_COUNTER) {
            rc = cg_st_read_scalar_i64(st, e->name, cg_params_counter(p, i));
        } else {
            cg_tensor t = cg_params_value(p, i);
            rc = cg_st_read_f32(st, e->name, t.data, e->ndim, e->shape);
        }
        if (rc) return rc;
    }
    return CG_OK;
}

int cg_params_load_file(cg_params *p, const char *path, const char *const *ignore_prefixes) {
    cg_safetensors st;
    int rc = cg_st_open(path, &st);
    if (rc) return rc;
    rc = cg_params_load(p, &st, ignore_prefixes);
    cg_st_close(&st);
    return rc;
}

void cg_params_to_writer(const cg_params *p, cg_st_writer *w, int grads) {
    for (int i = 0; i < p->n; i++) {
        const cg_param_entry *e = &p->e[i];
        if (e->kind == CG_KIND_COUNTER) {
            if (!grads) cg_st_writer_add_i64(w, e->name, *cg_params_counter(p, i));
        } else if (e->kind == CG_KIND_PARAM) {
            cg_st_writer_add_f32(w, e->name, (grads ? p->grads : p->params) + e->offset, e->ndim, e->shape);
        } else if (!grads) {
            cg_st_writer_add_f32(w, e->name, p->buffers + e->offset, e->ndim, e->shape);
        }
    }
}

int cg_params_save(const cg_params *p, const char *path) {
    cg_st_writer w;
    cg_st_writer_init(&w);
    cg_params_to_writer(p, &w, 0);
    cg_st_writer_meta(&w, "format", "pt");
    int rc = cg_st_writer_save(&w, path);
    cg_st_writer_free(&w);
    return rc;
}
