#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "core/safetensors.h"

static char *ckpt_path(const char *out_dir, const char *kind, int64_t step) {
    return cg_xasprintf("%s/checkpoints/%s_%" PRId64 ".safetensors", out_dir, kind, step);
}

static void add_group_tensors(cg_st_writer *w, const ckpt_group *g) {
    char name[512];
    for (int i = 0; i < g->params->n; i++) {
        const cg_param_entry *e = &g->params->e[i];
        snprintf(name, sizeof name, "%s%s", g->prefix, e->name);
        if (e->kind == CG_KIND_COUNTER) cg_st_writer_add_i64(w, name, *cg_params_counter(g->params, i));
        else cg_st_writer_add_f32(w, name, (e->kind == CG_KIND_PARAM ? g->params->params : g->params->buffers) + e->offset,
                                  e->ndim, e->shape);
    }
}

static void add_group_moments(cg_st_writer *w, const ckpt_group *g) {
    char name[512];
    if (!g->opt) return;
    for (int i = 0; i < g->params->n; i++) {
        const cg_param_entry *e = &g->params->e[i];
        if (e->kind != CG_KIND_PARAM || g->opt->frozen[i]) continue;
        snprintf(name, sizeof name, "%s%s.exp_avg", g->prefix, e->name);
        cg_st_writer_add_f32(w, name, g->opt->m + e->offset, e->ndim, e->shape);
        snprintf(name, sizeof name, "%s%s.exp_avg_sq", g->prefix, e->name);
        cg_st_writer_add_f32(w, name, g->opt->v + e->offset, e->ndim, e->shape);
    }
}

int ckpt_save(const char *out_dir, int64_t step, const ckpt_group *groups, int n, const cJSON *state) {
    char *dir = cg_xasprintf("%s/checkpoints", out_dir);
    int rc = cg_mkdir_p(dir);
    if (rc) { free(dir); return rc; }
    char *model_path = ckpt_path(out_dir, "step", step), *state_path = ckpt_path(out_dir, "state", step);

    cg_st_writer w;
    cg_st_writer_init(&w);
    for (int g = 0; g < n; g++) add_group_tensors(&w, &groups[g]);
    cg_st_writer_meta(&w, "format", "pt");
    rc = cg_st_writer_save(&w, model_path);
    cg_st_writer_free(&w);

    if (!rc) {
        cg_st_writer_init(&w);
        int64_t adamw_step = 0;
        for (int g = 0; g < n; g++) {
            add_group_moments(&w, &groups[g]);
            if (groups[g].opt && !adamw_step) adamw_step = groups[g].opt->step;
        }
        cJSON *meta = state ? cJSON_Duplicate(state, 1) : cJSON_CreateObject();
        cJSON_DeleteItemFromObject(meta, "step");
        cJSON_DeleteItemFromObject(meta, "adamw_step");
        cJSON_AddNumberToObject(meta, "step", (double)step);
        cJSON_AddNumberToObject(meta, "adamw_step", (double)adamw_step);
        char *text = cg_json_print(meta, 0);
        cg_st_writer_meta(&w, "clipgrid_state", text);
        free(text);
        cJSON_Delete(meta);
        rc = cg_st_writer_save(&w, state_path);
        cg_st_writer_free(&w);
    }
    if (!rc) {
        char *latest = cg_xasprintf("%s/latest", dir), *text = cg_xasprintf("%" PRId64 "\n", step);
        rc = cg_file_write_atomic(latest, text, strlen(text));
        free(latest);
        free(text);
    }
    free(dir);
    free(model_path);
    free(state_path);
    return rc;
}

int ckpt_latest(const char *out_dir, int64_t *step) {
    char *path = cg_xasprintf("%s/checkpoints/latest", out_dir), *text = NULL;
    int rc = cg_file_read(path, &text, NULL);
    if (rc == CG_OK) {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        while (*end == '\n' || *end == ' ') end++;
        if (errno || end == text || *end || v < 0)
            rc = cg_error_set(CG_ERR_FORMAT, "%s: expected a step number, found \"%.40s\"", path, text);
        else
            *step = v;
    }
    free(text);
    free(path);
    return rc;
}

static int load_group_tensors(const cg_safetensors *st, const ckpt_group *g, int *count) {
    char name[512];
    for (int i = 0; i < g->params->n; i++) {
        const cg_param_entry *e = &g->params->e[i];
        snprintf(name, sizeof name, "%s%s", g->prefix, e->name);
        int rc;
        if (e->kind == CG_KIND_COUNTER) rc = cg_st_read_scalar_i64(st, name, cg_params_counter(g->params, i));
        else rc = cg_st_read_f32(st, name, (e->kind == CG_KIND_PARAM ? g->params->params : g->params->buffers) + e->offset,
                                 e->ndim, e->shape);
        if (rc) return rc;
        (*count)++;
    }
    return CG_OK;
}

int ckpt_load_model_file(const char *path, const ckpt_group *groups, int n) {
    cg_safetensors st;
    int rc = cg_st_open(path, &st);
    if (rc) return rc;
    int count = 0;
    for (int g = 0; g < n && !rc; g++) rc = load_group_tensors(&st, &groups[g], &count);
    if (!rc && count != st.n)
        rc = cg_error_set(CG_ERR_FORMAT, "%s holds %d tensors, this model has %d: it was saved by another "
                          "configuration", path, st.n, count);
    cg_st_close(&st);
    return rc;
}

int ckpt_load(const char *out_dir, int64_t step, const ckpt_group *groups, int n, cJSON **state) {
    char *model_path = ckpt_path(out_dir, "step", step), *state_path = ckpt_path(out_dir, "state", step);
    int rc = ckpt_load_model_file(model_path, groups, n);
    cg_safetensors st;
    int st_open = 0;
    if (!rc) st_open = (rc = cg_st_open(state_path, &st)) == CG_OK;
    char name[512];
    for (int g = 0; !rc && g < n; g++) {
        const ckpt_group *gr = &groups[g];
        if (!gr->opt) continue;
        for (int i = 0; !rc && i < gr->params->n; i++) {
            const cg_param_entry *e = &gr->params->e[i];
            if (e->kind != CG_KIND_PARAM || gr->opt->frozen[i]) continue;
            snprintf(name, sizeof name, "%s%s.exp_avg", gr->prefix, e->name);
            rc = cg_st_read_f32(&st, name, gr->opt->m + e->offset, e->ndim, e->shape);
            snprintf(name, sizeof name, "%s%s.exp_avg_sq", gr->prefix, e->name);
            if (!rc) rc = cg_st_read_f32(&st, name, gr->opt->v + e->offset, e->ndim, e->shape);
        }
    }
    if (!rc) {
        const char *meta = cg_st_meta(&st, "clipgrid_state");
        cJSON *obj = meta ? cJSON_Parse(meta) : NULL;
        const cJSON *as = obj ? cJSON_GetObjectItemCaseSensitive(obj, "adamw_step") : NULL;
        if (!cJSON_IsNumber(as)) {
            rc = cg_error_set(CG_ERR_FORMAT, "%s: metadata \"clipgrid_state\" is missing or has no \"adamw_step\"",
                              state_path);
            cJSON_Delete(obj);
        } else {
            for (int g = 0; g < n; g++)
                if (groups[g].opt) groups[g].opt->step = (int64_t)as->valuedouble;
            if (state) *state = obj;
            else cJSON_Delete(obj);
        }
    }
    if (st_open) cg_st_close(&st);
    free(model_path);
    free(state_path);
    return rc;
}

void ckpt_prune(const char *out_dir, int keep) {
    int64_t latest;
    if (keep < 1 || ckpt_latest(out_dir, &latest) != CG_OK) return;
    char *dir = cg_xasprintf("%s/checkpoints", out_dir);
    DIR *d = opendir(dir);
    if (!d) { free(dir); return; }
    /* collect the steps that have a model file */
    int64_t *steps = NULL;
    int n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        long long s;
        char tail[32];
        if (sscanf(e->d_name, "step_%lld.%31s", &s, tail) == 2 && !strcmp(tail, "safetensors") && s <= latest) {
            if (n == cap) steps = cg_xrealloc(steps, (size_t)(cap = cap ? cap * 2 : 16) * sizeof *steps);
            steps[n++] = s;
        }
    }
    closedir(d);
    /* keep the `keep` largest */
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++) newer += steps[j] > steps[i];
        if (newer >= keep) {
            char *m = ckpt_path(out_dir, "step", steps[i]), *s = ckpt_path(out_dir, "state", steps[i]);
            unlink(m);
            unlink(s);
            free(m);
            free(s);
        }
    }
    free(steps);
    free(dir);
}
