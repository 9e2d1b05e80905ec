#include "core/safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/log.h"

static const struct { const char *name; size_t size; } dtypes[CG_ST_NDTYPES] = {
    [CG_ST_F32] = {"F32", 4}, [CG_ST_F16] = {"F16", 2}, [CG_ST_BF16] = {"BF16", 2}, [CG_ST_F64] = {"F64", 8},
    [CG_ST_I64] = {"I64", 8}, [CG_ST_I32] = {"I32", 4}, [CG_ST_I16] = {"I16", 2},   [CG_ST_I8] = {"I8", 1},
    [CG_ST_U8] = {"U8", 1},   [CG_ST_BOOL] = {"BOOL", 1},
};

const char *cg_st_dtype_name(cg_st_dtype d) { return d < CG_ST_NDTYPES ? dtypes[d].name : "?"; }
size_t cg_st_dtype_size(cg_st_dtype d) { return d < CG_ST_NDTYPES ? dtypes[d].size : 0; }

static int dtype_parse(const char *s, cg_st_dtype *d) {
    for (int i = 0; i < CG_ST_NDTYPES; i++)
        if (!strcmp(s, dtypes[i].name)) { *d = (cg_st_dtype)i; return 1; }
    return 0;
}

static uint64_t rd_u64le(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int cmp_by_offset(const void *a, const void *b) {
    const cg_st_tensor *x = a, *y = b;
    return x->data < y->data ? -1 : x->data > y->data;
}

void cg_st_close(cg_safetensors *st) {
    if (!st) return;
    if (st->tensors)
        for (int i = 0; i < st->n; i++) free((char *)st->tensors[i].name);
    for (int i = 0; i < st->n_meta; i++) { free(st->meta_keys[i]); free(st->meta_values[i]); }
    free(st->meta_keys);
    free(st->meta_values);
    free(st->tensors);
    free(st->buf);
    free(st->path);
    memset(st, 0, sizeof *st);
}

int cg_st_open(const char *path, cg_safetensors *st) {
    char *buf;
    size_t len;
    memset(st, 0, sizeof *st);
    int rc = cg_file_read(path, &buf, &len);
    if (rc) return rc;
    return cg_st_parse(path, buf, len, st);
}

int cg_st_parse(const char *path, char *buf, size_t len, cg_safetensors *st) {
    memset(st, 0, sizeof *st);
    st->path = cg_xstrdup(path);
    st->buf = buf;
    st->len = len;
    int rc = CG_OK;
    cJSON *root = NULL;
    if (len < 8) { rc = cg_error_set(CG_ERR_FORMAT, "%s: not a safetensors file (%zu bytes, no header)", path, len); goto fail; }
    uint64_t hlen = rd_u64le((const unsigned char *)buf);
    if (hlen > len - 8 || hlen > (100u << 20)) {
        rc = cg_error_set(CG_ERR_FORMAT, "%s: header length %llu does not fit the file (%zu bytes)", path,
                          (unsigned long long)hlen, len);
        goto fail;
    }
    root = cJSON_ParseWithLength(buf + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        rc = cg_error_set(CG_ERR_FORMAT, "%s: header is not a JSON object", path);
        goto fail;
    }
    const unsigned char *data = (const unsigned char *)buf + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;
    int count = cJSON_GetArraySize(root);
    st->tensors = cg_xcalloc((size_t)count + 1, sizeof *st->tensors);
    for (cJSON *it = root->child; it; it = it->next) {
        const char *name = it->string ? it->string : "";
        if (!strcmp(name, "__metadata__")) {
            if (!cJSON_IsObject(it)) { rc = cg_error_set(CG_ERR_FORMAT, "%s: __metadata__ is not an object", path); goto fail; }
            int nm = cJSON_GetArraySize(it);
            st->meta_keys = cg_xcalloc((size_t)nm + 1, sizeof(char *));
            st->meta_values = cg_xcalloc((size_t)nm + 1, sizeof(char *));
            for (cJSON *m = it->child; m; m = m->next) {
                if (!cJSON_IsString(m)) {
                    rc = cg_error_set(CG_ERR_FORMAT, "%s: __metadata__ value \"%s\" is not a string", path, m->string);
                    goto fail;
                }
                st->meta_keys[st->n_meta] = cg_xstrdup(m->string);
                st->meta_values[st->n_meta++] = cg_xstrdup(m->valuestring);
            }
            continue;
        }
        for (int i = 0; i < st->n; i++)
            if (!strcmp(st->tensors[i].name, name)) {
                rc = cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\" appears twice in the header", path, name);
                goto fail;
            }
        cg_st_tensor *t = &st->tensors[st->n];
        t->name = cg_xstrdup(name);
        st->n++;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsObject(it) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) ||
            cJSON_GetArraySize(off) != 2) {
            rc = cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\": header entry needs dtype, shape and data_offsets[2]", path, name);
            goto fail;
        }
        if (!dtype_parse(dt->valuestring, &t->dtype)) {
            rc = cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\": unsupported dtype \"%s\"", path, name, dt->valuestring);
            goto fail;
        }
        t->ndim = cJSON_GetArraySize(sh);
        if (t->ndim > CG_ST_MAX_DIMS) {
            rc = cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\": %d dimensions (at most %d)", path, name, t->ndim, CG_ST_MAX_DIMS);
            goto fail;
        }
        double numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            cJSON *v = cJSON_GetArrayItem(sh, d);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != (double)(int64_t)v->valuedouble) {
                rc = cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\": bad shape entry %d", path, name, d);
                goto fail;
            }
            t->shape[d] = (int64_t)v->valuedouble;
            numel *= v->valuedouble;
        }
        cJSON *b0 = cJSON_GetArrayItem(off, 0), *b1 = cJSON_GetArrayItem(off, 1);
        if (!cJSON_IsNumber(b0) || !cJSON_IsNumber(b1) || b0->valuedouble < 0 || b1->valuedouble < b0->valuedouble ||
            b1->valuedouble > (double)data_len) {
            rc = cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\": data_offsets outside the data section (%zu bytes)",
                              path, name, data_len);
            goto fail;
        }
        size_t begin = (size_t)b0->valuedouble, end = (size_t)b1->valuedouble;
        if ((double)(end - begin) != numel * (double)dtypes[t->dtype].size) {
            rc = cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\": %zu bytes for %s of %.0f elements", path, name,
                              end - begin, dtypes[t->dtype].name, numel);
            goto fail;
        }
        t->data = data + begin;
        t->nbytes = end - begin;
    }
    /* byte ranges must not overlap */
    if (st->n > 1) {
        cg_st_tensor *sorted = cg_xmalloc((size_t)st->n * sizeof *sorted);
        memcpy(sorted, st->tensors, (size_t)st->n * sizeof *sorted);
        qsort(sorted, (size_t)st->n, sizeof *sorted, cmp_by_offset);
        for (int i = 1; i < st->n; i++)
            if (sorted[i - 1].nbytes && sorted[i].data < sorted[i - 1].data + sorted[i - 1].nbytes) {
                rc = cg_error_set(CG_ERR_FORMAT, "%s: tensors \"%s\" and \"%s\" overlap", path, sorted[i - 1].name,
                                  sorted[i].name);
                free(sorted);
                goto fail;
            }
        free(sorted);
    }
    cJSON_Delete(root);
    return CG_OK;
fail:
    cJSON_Delete(root);
    cg_st_close(st);
    return rc;
}

const cg_st_tensor *cg_st_find(const cg_safetensors *st, const char *name) {
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

const char *cg_st_meta(const cg_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta_keys[i], key)) return st->meta_values[i];
    return NULL;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) bits = sign;
        else {  /* subnormal: renormalize */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) { mant <<= 1; exp--; }
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | (mant << 13);
    else bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int cg_st_read_f32(const cg_safetensors *st, const char *name, float *dst, int ndim, const int64_t *shape) {
    const cg_st_tensor *t = cg_st_find(st, name);
    if (!t) return cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\" is missing", st->path, name);
    int same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same) {
        char a[160], b[160];
        size_t o = 0;
        o += (size_t)snprintf(a + o, sizeof a - o, "[");
        for (int d = 0; d < t->ndim && o < sizeof a; d++) o += (size_t)snprintf(a + o, sizeof a - o, d ? ", %lld" : "%lld", (long long)t->shape[d]);
        if (o < sizeof a) snprintf(a + o, sizeof a - o, "]");
        o = 0;
        o += (size_t)snprintf(b + o, sizeof b - o, "[");
        for (int d = 0; d < ndim && o < sizeof b; d++) o += (size_t)snprintf(b + o, sizeof b - o, d ? ", %lld" : "%lld", (long long)shape[d]);
        if (o < sizeof b) snprintf(b + o, sizeof b - o, "]");
        return cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\" has shape %s, expected %s", st->path, name, a, b);
    }
    size_t n = t->nbytes / dtypes[t->dtype].size;
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case CG_ST_F32: memcpy(dst, p, n * 4); break;
    case CG_ST_F16:
        for (size_t i = 0; i < n; i++) dst[i] = half_to_float((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    case CG_ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = (uint32_t)(p[2 * i] | p[2 * i + 1] << 8) << 16;
            memcpy(&dst[i], &bits, 4);
        }
        break;
    case CG_ST_F64:
        for (size_t i = 0; i < n; i++) { double v; memcpy(&v, p + 8 * i, 8); dst[i] = (float)v; }
        break;
    case CG_ST_I64:
        for (size_t i = 0; i < n; i++) { int64_t v; memcpy(&v, p + 8 * i, 8); dst[i] = (float)v; }
        break;
    case CG_ST_I32:
        for (size_t i = 0; i < n; i++) { int32_t v; memcpy(&v, p + 4 * i, 4); dst[i] = (float)v; }
        break;
    default:
        return cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\": dtype %s cannot be read as float", st->path, name,
                            dtypes[t->dtype].name);
    }
    return CG_OK;
}

int cg_st_read_scalar_i64(const cg_safetensors *st, const char *name, int64_t *v) {
    const cg_st_tensor *t = cg_st_find(st, name);
    if (!t) return cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\" is missing", st->path, name);
    if (t->dtype == CG_ST_I64 && t->nbytes == 8) { memcpy(v, t->data, 8); return CG_OK; }
    if (t->dtype == CG_ST_I32 && t->nbytes == 4) { int32_t x; memcpy(&x, t->data, 4); *v = x; return CG_OK; }
    return cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\": expected one I64 value, found %s of %zu bytes", st->path,
                        name, dtypes[t->dtype].name, t->nbytes);
}

/* ---------------------------------------------------------------- writer */

struct cg_st_wentry {
    char *name;
    cg_st_dtype dtype;
    int ndim;
    int64_t shape[CG_ST_MAX_DIMS];
    void *data;
    size_t nbytes;
};

void cg_st_writer_init(cg_st_writer *w) { memset(w, 0, sizeof *w); }

void cg_st_writer_add(cg_st_writer *w, const char *name, cg_st_dtype dtype, int ndim, const int64_t *shape,
                      const void *data) {
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->entries = cg_xrealloc(w->entries, (size_t)w->cap * sizeof *w->entries);
    }
    struct cg_st_wentry *e = &w->entries[w->n++];
    memset(e, 0, sizeof *e);
    e->name = cg_xstrdup(name);
    e->dtype = dtype;
    e->ndim = ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) { e->shape[d] = shape[d]; numel *= (size_t)shape[d]; }
    e->nbytes = numel * dtypes[dtype].size;
    e->data = cg_xmalloc(e->nbytes ? e->nbytes : 1);
    if (e->nbytes) memcpy(e->data, data, e->nbytes);
}

void cg_st_writer_add_f32(cg_st_writer *w, const char *name, const float *data, int ndim, const int64_t *shape) {
    cg_st_writer_add(w, name, CG_ST_F32, ndim, shape, data);
}

void cg_st_writer_add_i64(cg_st_writer *w, const char *name, int64_t v) {
    cg_st_writer_add(w, name, CG_ST_I64, 0, NULL, &v);
}

void cg_st_writer_meta(cg_st_writer *w, const char *key, const char *value) {
    w->meta_keys = cg_xrealloc(w->meta_keys, (size_t)(w->n_meta + 1) * sizeof(char *));
    w->meta_values = cg_xrealloc(w->meta_values, (size_t)(w->n_meta + 1) * sizeof(char *));
    w->meta_keys[w->n_meta] = cg_xstrdup(key);
    w->meta_values[w->n_meta++] = cg_xstrdup(value);
}

int cg_st_writer_serialize(const cg_st_writer *w, unsigned char **out, size_t *len) {
    for (int i = 0; i < w->n; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(w->entries[i].name, w->entries[j].name))
                return cg_error_set(CG_ERR_STATE, "safetensors writer: tensor \"%s\" added twice", w->entries[i].name);
    cJSON *root = cJSON_CreateObject();
    if (w->n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < w->n_meta; i++) cJSON_AddStringToObject(m, w->meta_keys[i], w->meta_values[i]);
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const struct cg_st_wentry *e = &w->entries[i];
        cJSON *t = cJSON_AddObjectToObject(root, e->name);
        cJSON_AddStringToObject(t, "dtype", dtypes[e->dtype].name);
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < e->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e->shape[d]));
        cJSON *o = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + e->nbytes)));
        off += e->nbytes;
    }
    char *hdr = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    size_t hlen = strlen(hdr);
    size_t padded = (hlen + 7) / 8 * 8;  /* data section 8-byte aligned, as the reference writer does */
    *len = 8 + padded + off;
    unsigned char *buf = cg_xmalloc(*len);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, hdr, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    free(hdr);
    unsigned char *p = buf + 8 + padded;
    for (int i = 0; i < w->n; i++) {
        if (w->entries[i].nbytes) memcpy(p, w->entries[i].data, w->entries[i].nbytes);
        p += w->entries[i].nbytes;
    }
    *out = buf;
    return CG_OK;
}

int cg_st_writer_save(const cg_st_writer *w, const char *path) {
    unsigned char *buf;
    size_t len;
    int rc = cg_st_writer_serialize(w, &buf, &len);
    if (rc) return rc;
    rc = cg_file_write_atomic(path, buf, len);
    free(buf);
    return rc;
}

void cg_st_writer_free(cg_st_writer *w) {
    for (int i = 0; i < w->n; i++) { free(w->entries[i].name); free(w->entries[i].data); }
    free(w->entries);
    for (int i = 0; i < w->n_meta; i++) { free(w->meta_keys[i]); free(w->meta_values[i]); }
    free(w->meta_keys);
    free(w->meta_values);
    memset(w, 0, sizeof *w);
}
