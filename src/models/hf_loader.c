/* hf_loader.c — text towers from Hugging Face model directories (config.json + safetensors).
 *
 * Names: the tower's parameters already carry HF names (text_transformer.h), so loading is a
 * lookup of "<file prefix><name without the tower's root>":
 *   CLIP  root "text_model."; file prefixes tried: "text_model." (CLIPTextModel[WithProjection],
 *         CLIPModel), "" (a bare CLIPTextTransformer state dict)
 *   BERT  root ""; file prefixes tried: "" (BertModel), "bert." (BertForPreTraining /
 *         BertForMaskedLM), "text_model." (ChineseCLIPModel)
 * The prefix is the one under which the token embedding is found. "text_projection.weight"
 * ([E, C], nn.Linear layout) is looked up without prefix; OpenAI's "text_projection" ([C, E],
 * used as x @ P) is accepted too and transposed. LayerNorm "gamma"/"beta" (old TF-converted
 * BERT files) stand for "weight"/"bias". Ignored: everything outside the prefix (vision tower,
 * logit_scale, cls.* heads), and under it "embeddings.position_ids" and "pooler.*" (Chinese-CLIP
 * pools [CLS] without BERT's pooler). Anything else under the prefix that the tower does not
 * have is an error: it means config.json and the weights disagree.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "core/safetensors.h"
#include "models/text_transformer.h"
#include "nn/gelu.h"

/* ---------------------------------------------------------------- config.json */

static int get_int(const cg_json_doc *doc, const cJSON *obj, const char *key, int lo, int *out) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) return CG_OK;
    if (!cJSON_IsNumber(it) || it->valuedouble != (double)(int)it->valuedouble || it->valuedouble < lo)
        return cg_error_set(CG_ERR_CONFIG, "%s:%d: \"%s\" must be an integer >= %d", doc->path, cg_json_line(doc, it),
                            key, lo);
    *out = (int)it->valuedouble;
    return CG_OK;
}

static const char *get_str(const cJSON *obj, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static int kind_of_model_type(const char *t) {
    if (!t) return 0;
    if (!strcmp(t, "clip") || !strcmp(t, "clip_text_model")) return CG_TEXT_CLIP;
    if (!strcmp(t, "bert") || !strcmp(t, "chinese_clip") || !strcmp(t, "chinese_clip_text_model")) return CG_TEXT_BERT;
    return -1;
}

int cg_text_config_from_hf(const char *dir, const cg_text_config *base, cg_text_config *out, int *projection_dim) {
    char *path = cg_path_join(dir, "config.json");
    cg_json_doc doc;
    int rc = cg_json_load(path, &doc);
    free(path);
    if (rc) return rc;
    *out = *base;
    *projection_dim = 0;
    const cJSON *root = doc.root, *tc = root;
    if (!cJSON_IsObject(root)) { rc = cg_error_set(CG_ERR_CONFIG, "%s: not a JSON object", doc.path); goto done; }
    const cJSON *nested = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (cJSON_IsObject(nested)) tc = nested;
    const char *mt = get_str(tc, "model_type");
    if (!mt) mt = get_str(root, "model_type");
    int kind = kind_of_model_type(mt);
    if (kind < 0) {
        rc = cg_error_set(CG_ERR_CONFIG, "%s: model_type \"%s\" is not a text tower clipgrid knows (clip, clip_text_model, "
                                         "bert, chinese_clip)", doc.path, mt);
        goto done;
    }
    if (kind && kind != (int)base->kind) {
        rc = cg_error_set(CG_ERR_CONFIG, "%s: model_type \"%s\" is a %s model, but text encoder \"%s\" is %s", doc.path, mt,
                          kind == CG_TEXT_CLIP ? "CLIP text" : "BERT", base->name,
                          base->kind == CG_TEXT_CLIP ? "a CLIP text transformer" : "a BERT tower");
        goto done;
    }
    if ((rc = get_int(&doc, tc, "vocab_size", 1, &out->vocab_size)) || (rc = get_int(&doc, tc, "hidden_size", 1, &out->width)) ||
        (rc = get_int(&doc, tc, "num_hidden_layers", 0, &out->layers)) ||
        (rc = get_int(&doc, tc, "num_attention_heads", 1, &out->heads)) ||
        (rc = get_int(&doc, tc, "intermediate_size", 1, &out->mlp)) ||
        (rc = get_int(&doc, tc, "max_position_embeddings", 1, &out->max_positions)))
        goto done;
    if (base->kind == CG_TEXT_BERT) {
        if ((rc = get_int(&doc, tc, "type_vocab_size", 1, &out->type_vocab)) || (rc = get_int(&doc, tc, "pad_token_id", 0, &out->pad_id)))
            goto done;
        const char *pe = get_str(tc, "position_embedding_type");
        if (pe && strcmp(pe, "absolute")) {
            rc = cg_error_set(CG_ERR_CONFIG, "%s: position_embedding_type \"%s\" is not supported (only \"absolute\")", doc.path, pe);
            goto done;
        }
    } else {
        out->eos_id = -1;
        int eos = -1;
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(tc, "eos_token_id");
        if (cJSON_IsArray(e) && cJSON_IsNumber(cJSON_GetArrayItem(e, 0)))   /* a list: the first */
            eos = cJSON_GetArrayItem(e, 0)->valueint;
        else if ((rc = get_int(&doc, tc, "eos_token_id", 0, &eos)))
            goto done;
        out->eos_id = eos;
    }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(tc, "layer_norm_eps");
    if (eps) {
        if (!cJSON_IsNumber(eps) || eps->valuedouble <= 0) {
            rc = cg_error_set(CG_ERR_CONFIG, "%s:%d: \"layer_norm_eps\" must be a positive number", doc.path, cg_json_line(&doc, eps));
            goto done;
        }
        out->ln_eps = (float)eps->valuedouble;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(tc, "hidden_act");
    if (act) {
        const char *a = cJSON_IsString(act) ? act->valuestring : "";
        if (!strcmp(a, "gelu")) out->act = CG_ACT_GELU;
        else if (!strcmp(a, "quick_gelu")) out->act = CG_ACT_QUICK_GELU;
        else {
            rc = cg_error_set(CG_ERR_CONFIG, "%s:%d: hidden_act \"%s\" is not supported (gelu, quick_gelu)", doc.path,
                              cg_json_line(&doc, act), a);
            goto done;
        }
    }
    int pd = 0;
    if ((rc = get_int(&doc, root, "projection_dim", 1, &pd))) goto done;
    if (!pd && tc != root && (rc = get_int(&doc, tc, "projection_dim", 1, &pd))) goto done;
    *projection_dim = pd;
    if (out->width % out->heads) {
        rc = cg_error_set(CG_ERR_CONFIG, "%s: hidden_size %d is not a multiple of num_attention_heads %d", doc.path, out->width,
                          out->heads);
        goto done;
    }
    if (out->context > out->max_positions) out->context = out->max_positions;
done:
    cg_json_free(&doc);
    return rc;
}

/* ---------------------------------------------------------------- weight files */

typedef struct {
    cg_safetensors *st;
    int n;
} hf_files;

static void files_close(hf_files *f) {
    for (int i = 0; i < f->n; i++) cg_st_close(&f->st[i]);
    free(f->st);
    memset(f, 0, sizeof *f);
}

static int files_open(const char *dir, hf_files *f) {
    memset(f, 0, sizeof *f);
    char *single = cg_path_join(dir, "model.safetensors"), *index = cg_path_join(dir, "model.safetensors.index.json");
    int rc = CG_OK;
    if (cg_file_exists(single)) {
        f->st = cg_xcalloc(1, sizeof *f->st);
        rc = cg_st_open(single, &f->st[0]);
        if (!rc) f->n = 1;
    } else if (cg_file_exists(index)) {
        cg_json_doc doc;
        rc = cg_json_load(index, &doc);
        if (!rc) {
            const cJSON *map = cJSON_GetObjectItemCaseSensitive(doc.root, "weight_map");
            if (!cJSON_IsObject(map)) {
                rc = cg_error_set(CG_ERR_FORMAT, "%s: no \"weight_map\" object", index);
            } else {
                int cap = cJSON_GetArraySize(map);
                char **names = cg_xcalloc((size_t)cap + 1, sizeof *names);
                int nn = 0;
                const cJSON *it;
                cJSON_ArrayForEach(it, map) {
                    if (!cJSON_IsString(it) || strchr(it->valuestring, '/')) {
                        rc = cg_error_set(CG_ERR_FORMAT, "%s:%d: bad shard file for \"%s\"", index, cg_json_line(&doc, it), it->string);
                        break;
                    }
                    int seen = 0;
                    for (int k = 0; k < nn && !seen; k++) seen = !strcmp(names[k], it->valuestring);
                    if (!seen) names[nn++] = it->valuestring;
                }
                f->st = cg_xcalloc((size_t)nn + 1, sizeof *f->st);
                for (int k = 0; k < nn && !rc; k++) {
                    char *p = cg_path_join(dir, names[k]);
                    rc = cg_st_open(p, &f->st[k]);
                    free(p);
                    if (!rc) f->n++;
                }
                free(names);
            }
            cg_json_free(&doc);
        }
    } else {
        char *bin = cg_path_join(dir, "pytorch_model.bin");
        if (cg_file_exists(bin))
            rc = cg_error_set(CG_ERR_IO, "%s: only pytorch_model.bin; clipgrid reads safetensors (save the model with "
                                         "safe_serialization=True)", dir);
        else
            rc = cg_error_set(CG_ERR_IO, "%s: no model.safetensors (nor model.safetensors.index.json)", dir);
        free(bin);
    }
    free(single);
    free(index);
    if (rc) files_close(f);
    return rc;
}

static const cg_st_tensor *files_find(const hf_files *f, const char *name, const cg_safetensors **in) {
    for (int i = 0; i < f->n; i++) {
        const cg_st_tensor *t = cg_st_find(&f->st[i], name);
        if (t) { if (in) *in = &f->st[i]; return t; }
    }
    return NULL;
}

static const char *tower_root(const cg_text_tower *m) { return m->cfg.kind == CG_TEXT_CLIP ? "text_model." : ""; }

/* the file prefix under which the tower lives, or NULL */
static const char *find_prefix(const hf_files *f, const cg_text_tower *m) {
    static const char *const clip_pre[] = {"text_model.", "", NULL}, *const bert_pre[] = {"", "bert.", "text_model.", NULL};
    const char *const *pre = m->cfg.kind == CG_TEXT_CLIP ? clip_pre : bert_pre;
    const char *emb = m->cfg.kind == CG_TEXT_CLIP ? "embeddings.token_embedding.weight" : "embeddings.word_embeddings.weight";
    char name[256];
    for (int i = 0; pre[i]; i++) {
        snprintf(name, sizeof name, "%s%s", pre[i], emb);
        if (files_find(f, name, NULL)) return pre[i];
    }
    return NULL;
}

/* "...LayerNorm.gamma" -> "...LayerNorm.weight", ".beta" -> ".bias" (in place, if it applies) */
static void normalise_ln(char *s) {
    size_t n = strlen(s);
    if (n >= 15 && !strcmp(s + n - 15, "LayerNorm.gamma")) strcpy(s + n - 5, "weight");
    else if (n >= 14 && !strcmp(s + n - 14, "LayerNorm.beta")) strcpy(s + n - 4, "bias");
}

static int load_from(cg_text_tower *m, const hf_files *f, const char *dir) {
    const char *prefix = find_prefix(f, m), *root = tower_root(m);
    const char *kind = m->cfg.kind == CG_TEXT_CLIP ? "CLIP text" : "BERT";
    if (!prefix)
        return cg_error_set(CG_ERR_FORMAT, "%s: no %s token embedding in %s (looked for %s)", dir, kind, f->st[0].path,
                            m->cfg.kind == CG_TEXT_CLIP ? "text_model.embeddings.token_embedding.weight"
                                                        : "[bert.]embeddings.word_embeddings.weight");
    size_t lp = strlen(prefix), lr = strlen(root);
    char name[320];
    /* 1. nothing under the prefix that the tower lacks */
    for (int k = 0; k < f->n; k++)
        for (int i = 0; i < f->st[k].n; i++) {
            const char *fn = f->st[k].tensors[i].name;
            if (!strcmp(fn, "text_projection.weight") || !strcmp(fn, "text_projection")) continue;
            if (strncmp(fn, prefix, lp)) continue;
            const char *rest = fn + lp;
            if (!strcmp(rest, "embeddings.position_ids") || !strncmp(rest, "pooler.", 7)) continue;
            if (!*prefix && (!strncmp(rest, "cls.", 4) || !strcmp(rest, "logit_scale") || !strncmp(rest, "vision_model.", 13) ||
                             !strncmp(rest, "visual_projection.", 18)))
                continue;
            snprintf(name, sizeof name, "%s%s", root, rest);
            normalise_ln(name);
            if (cg_params_find(&m->params, name) < 0)
                return cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\" is not part of a %s tower with %d layers, vocab %d "
                                                   "(do config.json and the weights agree?)",
                                    f->st[k].path, fn, kind, m->cfg.layers, m->cfg.vocab_size);
        }
    /* 2. every parameter of the tower, with its shape */
    int have_proj = 0;
    for (int i = 0; i < m->params.n; i++) {
        const cg_param_entry *e = &m->params.e[i];
        cg_tensor v = cg_params_value(&m->params, i);
        if (i == m->proj_w) {
            const cg_safetensors *st;
            if (files_find(f, "text_projection.weight", &st)) {
                int rc = cg_st_read_f32(st, "text_projection.weight", v.data, 2, e->shape);
                if (rc) return rc;
                have_proj = 1;
            } else if (files_find(f, "text_projection", &st)) {
                /* OpenAI layout [C, E]: y = x @ P, so P^T is the Linear weight */
                int64_t E = e->shape[0], C = e->shape[1];
                float *tmp = cg_xmalloc((size_t)(E * C) * sizeof(float));
                int rc = cg_st_read_f32(st, "text_projection", tmp, 2, (int64_t[]){C, E});
                if (!rc)
                    for (int64_t c = 0; c < C; c++)
                        for (int64_t o = 0; o < E; o++) v.data[o * C + c] = tmp[c * E + o];
                free(tmp);
                if (rc) return rc;
                have_proj = 1;
            }
            continue;
        }
        snprintf(name, sizeof name, "%s%s", prefix, e->name + lr);
        const cg_safetensors *st;
        if (!files_find(f, name, &st)) {
            /* old spelling */
            size_t n = strlen(name);
            if (n >= 16 && !strcmp(name + n - 16, "LayerNorm.weight")) strcpy(name + n - 6, "gamma");
            else if (n >= 14 && !strcmp(name + n - 14, "LayerNorm.bias")) strcpy(name + n - 4, "beta");
            if (!files_find(f, name, &st)) {
                snprintf(name, sizeof name, "%s%s", prefix, e->name + lr);
                return cg_error_set(CG_ERR_FORMAT, "%s: tensor \"%s\" missing (a %s tower with %d layers needs it)",
                                    f->st[0].path, name, kind, m->cfg.layers);
            }
        }
        int rc = cg_st_read_f32(st, name, v.data, e->ndim, e->shape);
        if (rc) return rc;
    }
    if (!have_proj)
        cg_log_info("%s: no text_projection.weight; the projection [%d, %d] keeps its random initialisation", dir,
                    m->embed_dim, m->cfg.width);
    return CG_OK;
}

int cg_text_load_hf(cg_text_tower *m, const char *dir) {
    hf_files f;
    int rc = files_open(dir, &f);
    if (rc) return rc;
    rc = load_from(m, &f, dir);
    files_close(&f);
    return rc;
}

int cg_text_create_pretrained(cg_text_tower *m, const char *name, const char *dir, int embed_dim, uint64_t seed) {
    memset(m, 0, sizeof *m);
    const cg_text_config *base = cg_zoo_text(name);
    if (!base) return cg_zoo_unknown_text(name);
    cg_text_config cfg;
    int pdim = 0;
    int rc = cg_text_config_from_hf(dir, base, &cfg, &pdim);
    if (rc) return rc;
    hf_files f;
    rc = files_open(dir, &f);
    if (rc) return rc;
    int file_e = 0;
    const cg_st_tensor *t = files_find(&f, "text_projection.weight", NULL);
    if (t && t->ndim == 2) file_e = (int)t->shape[0];
    else if ((t = files_find(&f, "text_projection", NULL)) && t->ndim == 2) file_e = (int)t->shape[1];
    if (!file_e) file_e = pdim;
    if (embed_dim > 0 && file_e && embed_dim != file_e) {
        rc = cg_error_set(CG_ERR_CONFIG, "%s: the text projection of this checkpoint is %d wide, but the run's embedding "
                                         "width is %d", dir, file_e, embed_dim);
        files_close(&f);
        return rc;
    }
    int E = embed_dim > 0 ? embed_dim : file_e ? file_e : cfg.embed_dim;
    cg_text_create(m, &cfg, E, seed);
    rc = load_from(m, &f, dir);
    files_close(&f);
    if (rc) cg_text_free(m);
    return rc;
}
