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

int ckpt_save(const char *out_dir, int64_t step, const cg_params *model, const adamw_state *opt, const cJSON *state) {
    char *dir = cg_xasprintf("%s/checkpoints", out_dir);
    int rc = cg_mkdir_p(dir);
    if (rc) { free(dir); return rc; }
    char *model_path = ckpt_path(out_dir, "step", step), *state_path = ckpt_path(out_dir, "state", step);

    cg_st_writer w;
    cg_st_writer_init(&w);
    cg_params_to_writer(model, &w, 0);
    cg_st_writer_meta(&w, "format", "pt");
    rc = cg_st_writer_save(&w, model_path);
    cg_st_writer_free(&w);

    if (!rc) {
        cg_st_writer_init(&w);
        for (int i = 0; i < model->n; i++) {
            const cg_param_entry *e = &model->e[i];
            if (e->kind != CG_KIND_PARAM || opt->frozen[i]) continue;
            char name[512];
            snprintf(name, sizeof name, "%s.exp_avg", e->name);
            cg_st_writer_add_f32(&w, name, opt->m + e->offset, e->ndim, e->shape);
            snprintf(name, sizeof name, "%s.exp_avg_sq", e->name);
            cg_st_writer_add_f32(&w, name, opt->v + e->offset, e->ndim, e->shape);
        }
        cJSON *meta = state ? cJSON_Duplicate(state, 1) : cJSON_CreateObject();
        cJSON_DeleteItemFromObject(meta, "step");
        cJSON_DeleteItemFromObject(meta, "adamw_step");
        cJSON_AddNumberToObject(meta, "step", (double)step);
        cJSON_AddNumberToObject(meta, "adamw_step", (double)opt->step);
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

int ckpt_load(const char *out_dir, int64_t step, cg_params *model, adamw_state *opt, cJSON **state) {
    char *model_path = ckpt_path(out_dir, "step", step), *state_path = ckpt_path(out_dir, "state", step);
    int rc = cg_params_load_file(model, model_path, NULL);
    cg_safetensors st;
    int st_open = 0;
    if (!rc) st_open = (rc = cg_st_open(state_path, &st)) == CG_OK;
    for (int i = 0; !rc && i < model->n; i++) {
        const cg_param_entry *e = &model->e[i];
        if (e->kind != CG_KIND_PARAM || opt->frozen[i]) continue;
        char name[512];
        snprintf(name, sizeof name, "%s.exp_avg", e->name);
        rc = cg_st_read_f32(&st, name, opt->m + e->offset, e->ndim, e->shape);
        snprintf(name, sizeof name, "%s.exp_avg_sq", e->name);
        if (!rc) rc = cg_st_read_f32(&st, name, opt->v + e->offset, e->ndim, e->shape);
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
            opt->step = (int64_t)as->valuedouble;
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
