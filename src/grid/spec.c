#include "grid/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "grid/i18n.h"
#include "grid/cost.h"

const char *const grid_train_keys[] = {
    "data", "epochs", "steps", "batch_size", "lr", "wd", "warmup", "image_size", "save_every",
    "eval_every", "seed", "threads", "device", "precision", "text_pretrained", "image_pretrained",
    "freeze_text", "vocab", "context_length", "embed_dim", "beta1", "beta2", "eps", "grad_clip",
    "accum_steps", "drop_path", "eval_data", "eval_samples", "log_every", "vocab_size",
    "dataset_type", "csv_img_key", "csv_caption_key", "csv_separator", "image_tsv", "eval_image_tsv", "workers",
    "shuffle_buffer", "hflip", "retrieval_samples", NULL};

/* Run options a grid file may set at top level; the command line overrides them. */
static const struct { const char *key; int type; double min; } launcher_keys[] = {
    {"jobs_per_gpu", cJSON_Number, 1},       {"max_parallel", cJSON_Number, 1},
    {"gpu_util_threshold", cJSON_Number, 0}, {"gpu_wait_timeout", cJSON_Number, 0},
    {"log_dir", cJSON_String, 0},            {"out_dir", cJSON_String, 0},
    {"command", cJSON_String, 0},            {"retries", cJSON_Number, 0},
    {"timeout", cJSON_Number, 0},            {"order", cJSON_String, 0},
    {"kill_grace", cJSON_Number, 0},         {"status_interval", cJSON_Number, 0},
    {"gpu_poll_interval", cJSON_Number, 0},  {"gpu_util_samples", cJSON_Number, 1},
    {"backend", cJSON_String, 0},
};

/* "slurm": {...} — options of --backend slurm (docs/slurm.md) */
static const char *const slurm_keys[] = {"partition", "account", "time", "mem", "gres", "cpus_per_task",
                                         "job_name", "sbatch_args", "poll_interval", NULL};

static int check_slurm_object(const cg_json_doc *doc, const cJSON *obj) {
    int rc = cg_json_want_type(doc, obj, cJSON_Object, "\"slurm\"");
    if (rc) return rc;
    if ((rc = cg_json_check_keys(doc, obj, slurm_keys, "\"slurm\""))) return rc;
    for (const cJSON *c = obj->child; c; c = c->next) {
        char what[80];
        snprintf(what, sizeof what, "slurm.%s", c->string);
        if (!strcmp(c->string, "sbatch_args")) {
            if ((rc = cg_json_want_type(doc, c, cJSON_Array, what))) return rc;
            for (const cJSON *a = c->child; a; a = a->next)
                if ((rc = cg_json_want_type(doc, a, cJSON_String, what))) return rc;
        } else if (!strcmp(c->string, "poll_interval") || !strcmp(c->string, "cpus_per_task")) {
            if ((rc = cg_json_want_type(doc, c, cJSON_Number, what))) return rc;
            if (c->valuedouble <= 0)
                return cg_error_set(CG_ERR_CONFIG, _("%s:%d: \"%s\" must be positive, not %g"), doc->path,
                                    cg_json_line(doc, c), what, c->valuedouble);
        } else if ((rc = cg_json_want_type(doc, c, cJSON_String, what))) {
            return rc;
        }
    }
    return CG_OK;
}
#define N_LAUNCHER_KEYS (sizeof launcher_keys / sizeof *launcher_keys)

static void free_list(char **list, int n) {
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

void grid_spec_init(grid_spec *s) {
    memset(s, 0, sizeof *s);
    s->train = cJSON_CreateObject();
    s->source = cg_xstrdup("command line");
}

void grid_spec_free(grid_spec *s) {
    free(s->gpus);
    free_list(s->image_encoders, s->n_image);
    free_list(s->text_encoders, s->n_text);
    cJSON_Delete(s->axes);
    cJSON_Delete(s->train);
    cJSON_Delete(s->overrides);
    cJSON_Delete(s->configs);
    cJSON_Delete(s->launcher);
    free(s->source);
    memset(s, 0, sizeof *s);
}

/* ---- validation helpers, all naming file:line:key ---- */

static int check_train_object(const cg_json_doc *doc, const cJSON *obj, const char *where) {
    int rc = cg_json_want_type(doc, obj, cJSON_Object, where);
    if (rc) return rc;
    if ((rc = cg_json_check_keys(doc, obj, grid_train_keys, where))) return rc;
    for (const cJSON *c = obj->child; c; c = c->next) {
        char what[160];
        snprintf(what, sizeof what, "%s.%s", where, c->string);
        if ((rc = cg_json_want_type(doc, c, cJSON_String | cJSON_Number | cJSON_True | cJSON_False, what)))
            return rc;
    }
    return CG_OK;
}

static int read_name_list(const cg_json_doc *doc, const cJSON *arr, const char *key, char ***out, int *n) {
    int rc = cg_json_want_type(doc, arr, cJSON_Array, key);
    if (rc) return rc;
    int count = cJSON_GetArraySize(arr);
    if (count == 0)
        return cg_error_set(CG_ERR_CONFIG, _("%s:%d: \"%s\" is empty: list at least one encoder"), doc->path,
                            cg_json_line(doc, arr), key);
    char **list = cg_xcalloc((size_t)count, sizeof *list);
    int i = 0;
    for (const cJSON *c = arr->child; c; c = c->next, i++) {
        if (!cJSON_IsString(c) || !c->valuestring[0]) {
            free_list(list, i);
            return cg_error_set(CG_ERR_CONFIG, _("%s:%d: \"%s\" entries must be non-empty strings (entry %d)"),
                                doc->path, cg_json_line(doc, c), key, i + 1);
        }
        list[i] = cg_xstrdup(c->valuestring);
    }
    *out = list;
    *n = count;
    return CG_OK;
}

static int read_gpus(const cg_json_doc *doc, const cJSON *g, char **out) {
    if (cJSON_IsString(g)) {
        *out = cg_xstrdup(g->valuestring);
        return CG_OK;
    }
    if (!cJSON_IsArray(g) || cJSON_GetArraySize(g) == 0)
        return cg_error_set(CG_ERR_CONFIG, _("%s:%d: \"gpus\" must be a non-empty list of GPU indices or UUIDs, "
                            "or \"all\", \"cpu\", \"cpu:N\""), doc->path, cg_json_line(doc, g));
    size_t cap = 256, len = 0;
    char *buf = cg_xmalloc(cap);
    buf[0] = 0;
    for (const cJSON *c = g->child; c; c = c->next) {
        char item[128];
        if (cJSON_IsNumber(c) && c->valuedouble >= 0 && c->valuedouble == (int)c->valuedouble) {
            snprintf(item, sizeof item, "%d", c->valueint);
        } else if (cJSON_IsString(c) && c->valuestring[0] && strlen(c->valuestring) < sizeof item) {
            snprintf(item, sizeof item, "%s", c->valuestring);
        } else {
            free(buf);
            return cg_error_set(CG_ERR_CONFIG, _("%s:%d: \"gpus\" entries must be GPU indices (0, 1, ...) or UUIDs"),
                                doc->path, cg_json_line(doc, c));
        }
        size_t need = len + strlen(item) + 2;
        if (need > cap) buf = cg_xrealloc(buf, cap = need * 2);
        len += (size_t)sprintf(buf + len, "%s%s", len ? "," : "", item);
    }
    *out = buf;
    return CG_OK;
}

static int check_launcher_key(const cg_json_doc *doc, const cJSON *c, int *is_launcher) {
    *is_launcher = 0;
    for (size_t i = 0; i < N_LAUNCHER_KEYS; i++) {
        if (strcmp(c->string, launcher_keys[i].key) != 0) continue;
        *is_launcher = 1;
        int rc = cg_json_want_type(doc, c, launcher_keys[i].type, c->string);
        if (rc) return rc;
        if (launcher_keys[i].type == cJSON_Number && c->valuedouble < launcher_keys[i].min)
            return cg_error_set(CG_ERR_CONFIG, _("%s:%d: \"%s\" must be at least %g, not %g"), doc->path,
                                cg_json_line(doc, c), c->string, launcher_keys[i].min, c->valuedouble);
        return CG_OK;
    }
    return CG_OK;
}

int grid_spec_load_file(grid_spec *s, const char *path) {
    static const char *top_keys[] = {
        "gpus", "image_encoders", "text_encoders", "axes", "train", "overrides", "configs",
        "jobs_per_gpu", "max_parallel", "gpu_util_threshold", "gpu_wait_timeout", "log_dir", "out_dir",
        "command", "retries", "timeout", "order", "kill_grace", "status_interval", "gpu_poll_interval",
        "gpu_util_samples", "backend", "slurm", NULL};
    static const char *config_keys[] = {"image_encoder", "text_encoder", "train", NULL};
    cg_json_doc doc;
    int rc = cg_json_load(path, &doc);
    if (rc) return rc;
    const cJSON *root = doc.root;
    if ((rc = cg_json_want_type(&doc, root, cJSON_Object, "the grid file"))) goto out;
    if ((rc = cg_json_check_keys(&doc, root, top_keys, "the grid file"))) goto out;

    for (const cJSON *c = root->child; c; c = c->next) {
        const char *k = c->string;
        int is_launcher;
        if ((rc = check_launcher_key(&doc, c, &is_launcher))) goto out;
        if (!strcmp(k, "slurm") && (rc = check_slurm_object(&doc, c))) goto out;
        if (is_launcher || !strcmp(k, "slurm")) {
            if (!s->launcher) s->launcher = cJSON_CreateObject();
            cJSON_DeleteItemFromObjectCaseSensitive(s->launcher, k);
            cJSON_AddItemToObject(s->launcher, k, cJSON_Duplicate(c, 1));
        } else if (!strcmp(k, "gpus")) {
            free(s->gpus);
            s->gpus = NULL;
            if ((rc = read_gpus(&doc, c, &s->gpus))) goto out;
        } else if (!strcmp(k, "image_encoders") || !strcmp(k, "text_encoders")) {
            int image = k[0] == 'i';
            char **list = NULL; int n = 0;
            if ((rc = read_name_list(&doc, c, k, &list, &n))) goto out;
            if (image) { free_list(s->image_encoders, s->n_image); s->image_encoders = list; s->n_image = n; }
            else { free_list(s->text_encoders, s->n_text); s->text_encoders = list; s->n_text = n; }
        } else if (!strcmp(k, "train")) {
            if ((rc = check_train_object(&doc, c, "\"train\""))) goto out;
            for (const cJSON *t = c->child; t; t = t->next) {
                cJSON_DeleteItemFromObjectCaseSensitive(s->train, t->string);
                cJSON_AddItemToObject(s->train, t->string, cJSON_Duplicate(t, 1));
            }
        } else if (!strcmp(k, "overrides")) {
            if ((rc = cg_json_want_type(&doc, c, cJSON_Object, "\"overrides\""))) goto out;
            for (const cJSON *o = c->child; o; o = o->next) {
                char where[200];
                snprintf(where, sizeof where, "\"overrides\".\"%s\"", o->string);
                if ((rc = check_train_object(&doc, o, where))) goto out;
            }
            cJSON_Delete(s->overrides);
            s->overrides = cJSON_Duplicate(c, 1);
        } else if (!strcmp(k, "axes")) {
            if ((rc = cg_json_want_type(&doc, c, cJSON_Object, "\"axes\""))) goto out;
            if ((rc = cg_json_check_keys(&doc, c, grid_train_keys, "\"axes\" (each axis is a train option)"))) goto out;
            for (const cJSON *a = c->child; a; a = a->next) {
                char where[200];
                snprintf(where, sizeof where, "\"axes\".\"%s\"", a->string);
                if ((rc = cg_json_want_type(&doc, a, cJSON_Array, where))) goto out;
                if (cJSON_GetArraySize(a) == 0) {
                    rc = cg_error_set(CG_ERR_CONFIG, _("%s:%d: %s is empty"), doc.path, cg_json_line(&doc, a), where);
                    goto out;
                }
                for (const cJSON *v = a->child; v; v = v->next)
                    if ((rc = cg_json_want_type(&doc, v, cJSON_String | cJSON_Number, where))) goto out;
            }
            cJSON_Delete(s->axes);
            s->axes = cJSON_Duplicate(c, 1);
        } else if (!strcmp(k, "configs")) {
            if ((rc = cg_json_want_type(&doc, c, cJSON_Array, "\"configs\""))) goto out;
            int i = 0;
            for (const cJSON *e = c->child; e; e = e->next, i++) {
                char where[64];
                snprintf(where, sizeof where, "\"configs\"[%d]", i);
                if ((rc = cg_json_want_type(&doc, e, cJSON_Object, where))) goto out;
                if ((rc = cg_json_check_keys(&doc, e, config_keys, where))) goto out;
                for (int f = 0; f < 2; f++) {
                    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, config_keys[f]);
                    if (!cJSON_IsString(v) || !v->valuestring[0]) {
                        rc = cg_error_set(CG_ERR_CONFIG, _("%s:%d: %s needs \"%s\" (a non-empty string)"), doc.path,
                                          cg_json_line(&doc, v ? v : e), where, config_keys[f]);
                        goto out;
                    }
                }
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "train");
                char twhere[80];
                snprintf(twhere, sizeof twhere, "%s.\"train\"", where);
                if (t && (rc = check_train_object(&doc, t, twhere))) goto out;
            }
            cJSON_Delete(s->configs);
            s->configs = cJSON_Duplicate(c, 1);
        }
    }
    free(s->source);
    s->source = cg_xstrdup(path);
out:
    cg_json_free(&doc);
    return rc;
}

int grid_spec_set_list(grid_spec *s, const char *which, const char *csv) {
    int image = !strcmp(which, "image");
    const char *flag = image ? "--image-encoders" : "--text-encoders";
    int cap = 1;
    for (const char *p = csv; *p; p++) cap += *p == ',';
    char **list = cg_xcalloc((size_t)cap, sizeof *list);
    int n = 0;
    const char *p = csv;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (*p == ' ')) { p++; len--; }
        while (len && p[len - 1] == ' ') len--;
        if (len) {
            list[n] = cg_xmalloc(len + 1);
            memcpy(list[n], p, len);
            list[n++][len] = 0;
        }
        if (!e) break;
        p = e + 1;
    }
    if (n == 0) {
        free(list);
        return cg_error_set(CG_ERR_USAGE, _("%s is empty: list at least one encoder"), flag);
    }
    if (image) { free_list(s->image_encoders, s->n_image); s->image_encoders = list; s->n_image = n; }
    else { free_list(s->text_encoders, s->n_text); s->text_encoders = list; s->n_text = n; }
    return CG_OK;
}

char *grid_config_id(const char *image_encoder, const char *text_encoder, const char *suffix) {
    char *id = cg_xasprintf("%s_%s%s%s", image_encoder, text_encoder, suffix ? "_" : "", suffix ? suffix : "");
    for (char *p = id; *p; p++) {
        unsigned char c = (unsigned char)*p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                 c == '.' || c == '_';
        if (!ok) *p = '_';
    }
    return id;
}

/* Copy every member of `src` (an object or NULL) into `dst`, replacing same-named ones. */
static void merge_into(cJSON *dst, const cJSON *src) {
    if (!src) return;
    for (const cJSON *c = src->child; c; c = c->next) {
        cJSON_DeleteItemFromObjectCaseSensitive(dst, c->string);
        cJSON_AddItemToObject(dst, c->string, cJSON_Duplicate(c, 1));
    }
}

static cJSON *resolve_train(const grid_spec *s, const char *img, const char *txt) {
    cJSON *t = cJSON_Duplicate(s->train, 1);
    if (s->overrides) {
        merge_into(t, cJSON_GetObjectItemCaseSensitive(s->overrides, img));
        merge_into(t, cJSON_GetObjectItemCaseSensitive(s->overrides, txt));
    }
    return t;
}

static int image_size_of(const cJSON *train) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(train, "image_size");
    return cJSON_IsNumber(v) ? v->valueint : 0;
}

typedef struct {
    grid_config *v;
    int n, cap;
} config_list;

static int add_config(config_list *l, const char *img, const char *txt, const char *suffix, cJSON *train,
                      int replace_same_id) {
    char *id = grid_config_id(img, txt, suffix);
    for (int i = 0; i < l->n; i++) {
        if (strcmp(l->v[i].id, id) != 0) continue;
        int same_names = !strcmp(l->v[i].image_encoder, img) && !strcmp(l->v[i].text_encoder, txt);
        if (!same_names) {
            int rc = cg_error_set(CG_ERR_CONFIG,
                _("configs (%s, %s) and (%s, %s) get the same ID \"%s\": rename one of the encoders"),
                l->v[i].image_encoder, l->v[i].text_encoder, img, txt, id);
            free(id);
            cJSON_Delete(train);
            return rc;
        }
        if (!replace_same_id) {
            int rc = cg_error_set(CG_ERR_CONFIG, _("configuration \"%s\" appears twice in the grid "
                                  "(an encoder listed twice?)"), id);
            free(id);
            cJSON_Delete(train);
            return rc;
        }
        merge_into(l->v[i].train, train);  /* an explicit config refines the grid's one */
        cJSON_Delete(train);
        l->v[i].cost = cost_config(img, txt, image_size_of(l->v[i].train));
        free(id);
        return CG_OK;
    }
    if (l->n == l->cap) l->v = cg_xrealloc(l->v, (size_t)(l->cap = l->cap ? l->cap * 2 : 16) * sizeof *l->v);
    grid_config *c = &l->v[l->n];
    c->image_encoder = cg_xstrdup(img);
    c->text_encoder = cg_xstrdup(txt);
    c->id = id;
    c->train = train;
    c->cost = cost_config(img, txt, image_size_of(train));
    c->index = l->n++;
    return CG_OK;
}

/* Value of an axis entry as it appears in an ID ("0", "3e-4", "fmnist_train"). */
static void axis_value_text(const cJSON *v, char *buf, size_t n) {
    if (cJSON_IsNumber(v)) snprintf(buf, n, "%g", v->valuedouble);
    else snprintf(buf, n, "%s", v->valuestring);
}

/* Expand one (image, text) pair over every combination of the axes (odometer order). */
static int expand_pair(const grid_spec *s, config_list *l, const char *img, const char *txt) {
    int naxes = s->axes ? cJSON_GetArraySize(s->axes) : 0;
    if (naxes == 0) return add_config(l, img, txt, NULL, resolve_train(s, img, txt), 0);
    int *pos = cg_xcalloc((size_t)naxes, sizeof *pos);
    int rc = CG_OK;
    for (;;) {
        cJSON *train = resolve_train(s, img, txt);
        char suffix[512] = "";
        size_t len = 0;
        int a = 0;
        for (const cJSON *axis = s->axes->child; axis; axis = axis->next, a++) {
            const cJSON *v = cJSON_GetArrayItem(axis, pos[a]);
            char val[128];
            axis_value_text(v, val, sizeof val);
            len += (size_t)snprintf(suffix + len, sizeof suffix - len, "%s%s%s", len ? "_" : "", axis->string, val);
            if (len >= sizeof suffix) len = sizeof suffix - 1;
            cJSON_DeleteItemFromObjectCaseSensitive(train, axis->string);
            cJSON_AddItemToObject(train, axis->string, cJSON_Duplicate(v, 1));
        }
        if ((rc = add_config(l, img, txt, suffix, train, 0))) break;
        /* next combination: the last axis moves fastest */
        int k = naxes - 1;
        const cJSON *axis;
        for (; k >= 0; k--) {
            axis = cJSON_GetArrayItem(s->axes, k);
            if (++pos[k] < cJSON_GetArraySize(axis)) break;
            pos[k] = 0;
        }
        if (k < 0) break;
    }
    free(pos);
    return rc;
}

int grid_expand(const grid_spec *s, grid_config **out, int *n) {
    *out = NULL;
    *n = 0;
    config_list l = {0};
    int rc = CG_OK;
    int explicit = s->configs ? cJSON_GetArraySize(s->configs) : 0;
    if ((s->n_image == 0) != (s->n_text == 0) && explicit == 0)
        return cg_error_set(CG_ERR_CONFIG, _("%s: no %s encoders: give \"%s\" in the grid file or %s"),
                            s->source, s->n_image ? "text" : "image",
                            s->n_image ? "text_encoders" : "image_encoders",
                            s->n_image ? "--text-encoders" : "--image-encoders");
    for (int i = 0; i < s->n_image && !rc; i++)
        for (int j = 0; j < s->n_text && !rc; j++)
            rc = expand_pair(s, &l, s->image_encoders[i], s->text_encoders[j]);
    for (const cJSON *e = s->configs ? s->configs->child : NULL; e && !rc; e = e->next) {
        const char *img = cJSON_GetObjectItemCaseSensitive(e, "image_encoder")->valuestring;
        const char *txt = cJSON_GetObjectItemCaseSensitive(e, "text_encoder")->valuestring;
        cJSON *train = resolve_train(s, img, txt);
        merge_into(train, cJSON_GetObjectItemCaseSensitive(e, "train"));
        rc = add_config(&l, img, txt, NULL, train, 1);
    }
    if (!rc && l.n == 0)
        rc = cg_error_set(CG_ERR_CONFIG, _("%s: the grid is empty: give image and text encoders "
                          "(--image-encoders/--text-encoders or the grid file)"), s->source);
    if (rc) {
        grid_configs_free(l.v, l.n);
        return rc;
    }
    *out = l.v;
    *n = l.n;
    return CG_OK;
}

void grid_configs_free(grid_config *c, int n) {
    for (int i = 0; i < n; i++) {
        free(c[i].image_encoder);
        free(c[i].text_encoder);
        free(c[i].id);
        cJSON_Delete(c[i].train);
    }
    free(c);
}
