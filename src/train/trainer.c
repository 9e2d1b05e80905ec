#include "train/trainer.h"

#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "core/rng.h"
#include "data/fmnist.h"
#include "models/clip_model.h"
#include "text/tokenizer.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/eval.h"
#include "train/metrics.h"
#include "train/schedule.h"

void train_options_defaults(train_options *o) {
    memset(o, 0, sizeof *o);
    o->data = "fmnist:train";
    o->device = "cpu";
    o->epochs = 1;
    o->batch_size = 64;
    o->image_size = 64;
    o->lr = 5e-4;
    o->wd = 0.2;
    o->beta1 = 0.9;
    o->beta2 = 0.98;
    o->eps = 1e-6;
    o->grad_clip = 1.0;
    o->warmup = -1;
    o->save_every = 1000;
    o->log_every = 10;
    o->eval_samples = 10000;
    o->retrieval_samples = 1000;
    o->keep_checkpoints = 2;
    o->seed = 0;
    o->vocab_size = 1024;
    o->accum_steps = 1;
}

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* "fmnist:train" -> "train"; anything else is not supported yet. */
static int parse_data(const char *flag, const char *spec, const char **split) {
    if (spec && !strncmp(spec, "fmnist:", 7)) {
        *split = spec + 7;
        if (!strcmp(*split, "train") || !strcmp(*split, "test")) return CG_OK;
    }
    return cg_error_set(CG_ERR_USAGE, "%s %s: the datasets available are fmnist:train and fmnist:test "
                        "(manifests and WebDataset shards are not supported yet)", flag, spec ? spec : "(none)");
}

/* ------------------------------------------------------------------ captions */

typedef struct {
    text_tokenizer *tok;
    fmnist_lang lang;
    int nt, T;
    int32_t *ids;       /* [10 * nt, T]: class c, template t at row c * nt + t */
} captions;

static int captions_build(captions *c, text_tokenizer *tok, fmnist_lang lang, int T) {
    c->tok = tok;
    c->lang = lang;
    c->nt = fmnist_n_templates(lang);
    c->T = T;
    c->ids = cg_xmalloc((size_t)FMNIST_CLASSES * c->nt * T * sizeof *c->ids);
    for (int k = 0; k < FMNIST_CLASSES; k++)
        for (int t = 0; t < c->nt; t++) {
            char buf[256];
            int len = fmnist_caption(lang, k, t, buf, sizeof buf);
            int truncated = 0;
            text_tokenizer_encode_ex(tok, buf, (size_t)len, c->ids + (size_t)(k * c->nt + t) * T, T, &truncated);
            if (truncated)
                return cg_error_set(CG_ERR_CONFIG, "caption \"%s\" does not fit in %d tokens (--context-length)", buf, T);
        }
    return CG_OK;
}

static const int32_t *caption_row(const captions *c, int label, int t) {
    return c->ids + (size_t)(label * c->nt + t) * c->T;
}

/* The template of sample `index` in `epoch`: a function of (seed, epoch, index) only. */
static int template_of(uint64_t seed, int64_t epoch, int index, int nt) {
    cg_rng r;
    cg_rng_seed(&r, seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch * 0xBF58476D1CE4E5B9ull + (uint64_t)index + 1);
    return (int)cg_rng_below(&r, (uint64_t)nt);
}

/* ------------------------------------------------------------------ evaluation */

typedef struct {
    double top1, top5;
    eval_retrieval retr;
    int n_images, n_retrieval;
} eval_result;

static int evaluate(clip_model *m, const fmnist_set *set, const captions *cap, int image_size, int samples,
                    int retrieval_samples, uint64_t seed, eval_result *r) {
    int E = m->embed_dim, N = samples > 0 && samples < set->n ? samples : set->n;
    int R = retrieval_samples < N ? retrieval_samples : N;
    int chunk = 250;
    size_t plane = (size_t)3 * image_size * image_size;
    float *imgs = cg_xmalloc((size_t)chunk * plane * sizeof *imgs);
    float *iemb = cg_xmalloc((size_t)N * E * sizeof *iemb);
    for (int s = 0; s < N; s += chunk) {
        int b = N - s < chunk ? N - s : chunk;
        #pragma omp parallel for schedule(static)
        for (int i = 0; i < b; i++) fmnist_image(set, s + i, image_size, 0, 0, 0, imgs + (size_t)i * plane);
        clip_model_encode_images(m, imgs, b, image_size, iemb + (size_t)s * E);
    }
    /* classes: every template of every class, averaged per class */
    int rows = FMNIST_CLASSES * cap->nt;
    float *temb = cg_xmalloc((size_t)rows * E * sizeof *temb), *cls = cg_xmalloc((size_t)FMNIST_CLASSES * E * sizeof *cls);
    int rc = clip_model_encode_texts(m, cap->ids, rows, cap->T, temb);
    if (!rc) {
        for (int k = 0; k < FMNIST_CLASSES; k++)
            eval_class_embedding(temb + (size_t)k * cap->nt * E, cap->nt, E, cls + (size_t)k * E);
        int *labels = cg_xmalloc((size_t)N * sizeof *labels);
        for (int i = 0; i < N; i++) labels[i] = set->labels[i];
        eval_zero_shot(iemb, N, cls, FMNIST_CLASSES, E, labels, &r->top1, &r->top5);
        free(labels);
    }
    /* retrieval: the first R images with one caption each */
    if (!rc && R > 1) {
        int32_t *ids = cg_xmalloc((size_t)R * cap->T * sizeof *ids);
        for (int i = 0; i < R; i++)
            memcpy(ids + (size_t)i * cap->T, caption_row(cap, set->labels[i], template_of(seed, -1, i, cap->nt)),
                   (size_t)cap->T * sizeof *ids);
        float *remb = cg_xmalloc((size_t)R * E * sizeof *remb);
        rc = clip_model_encode_texts(m, ids, R, cap->T, remb);
        if (!rc) eval_retrieval_metrics(iemb, remb, R, E, &r->retr);
        free(ids);
        free(remb);
    }
    r->n_images = N;
    r->n_retrieval = R;
    free(imgs); free(iemb); free(temb); free(cls);
    return rc;
}

static void eval_to_metrics(const eval_result *r, const char **tags, double *vals, int *n) {
    int k = 0;
#define ADD(t, v) do { tags[k] = t; vals[k++] = v; } while (0)
    ADD("val/fmnist-zeroshot-top1", r->top1);
    ADD("val/fmnist-zeroshot-top5", r->top5);
    ADD("val/image_to_text_R@1", r->retr.image_to_text.r1);
    ADD("val/image_to_text_R@5", r->retr.image_to_text.r5);
    ADD("val/image_to_text_R@10", r->retr.image_to_text.r10);
    ADD("val/image_to_text_mean_rank", r->retr.image_to_text.mean_rank);
    ADD("val/text_to_image_R@1", r->retr.text_to_image.r1);
    ADD("val/text_to_image_R@5", r->retr.text_to_image.r5);
    ADD("val/text_to_image_R@10", r->retr.text_to_image.r10);
    ADD("val/text_to_image_mean_rank", r->retr.text_to_image.mean_rank);
#undef ADD
    *n = k;
}

/* ------------------------------------------------------------------ setup shared by train and eval */

typedef struct {
    clip_model model;
    text_tokenizer *tok;
    captions cap;
    char *vocab_path;      /* the vocabulary used (copied into the run dir when learned) */
    int T;
} run_model;

static int vocab_learn_for(const char *encoder, const fmnist_set *set_unused, const char *path, int vocab_size) {
    (void)set_unused;
    text_tok_defaults d;
    int rc = text_tok_defaults_for(encoder, &d);
    if (rc) return rc;
    fmnist_lang lang = d.kind == TEXT_TOK_WORDPIECE ? FMNIST_ZH : FMNIST_EN;
    int nt = fmnist_n_templates(lang);
    char **texts = cg_xcalloc((size_t)FMNIST_CLASSES * nt, sizeof *texts);
    for (int k = 0; k < FMNIST_CLASSES; k++)
        for (int t = 0; t < nt; t++) {
            char buf[256];
            fmnist_caption(lang, k, t, buf, sizeof buf);
            texts[k * nt + t] = cg_xstrdup(buf);
        }
    rc = text_tokenizer_learn(d.kind, (const char *const *)texts, (size_t)FMNIST_CLASSES * nt, vocab_size, d.lower_case, path);
    for (int i = 0; i < FMNIST_CLASSES * nt; i++) free(texts[i]);
    free(texts);
    return rc;
}

static const char *learned_vocab_name(const char *encoder) {
    text_tok_defaults d;
    if (text_tok_defaults_for(encoder, &d) == CG_OK && d.kind == TEXT_TOK_WORDPIECE) return "vocab.txt";
    return "bpe_merges.txt.gz";
}

/* Build tokenizer, captions and model. `learn` (fresh from-scratch runs): write a vocabulary
 * into the run dir first. */
static int run_model_build(run_model *rm, const char *run_dir, const char *image_encoder, const char *text_encoder,
                           const char *text_pretrained, const char *image_pretrained, const char *vocab, int learn,
                           int vocab_size, int context, int embed_dim, double drop_path, uint64_t seed,
                           int freeze_text) {
    memset(rm, 0, sizeof *rm);
    text_tok_options to = {0};
    int rc;
    if (!cg_zoo_starnet(image_encoder)) return cg_zoo_unknown_image(image_encoder);
    if (!cg_zoo_text(text_encoder)) return cg_zoo_unknown_text(text_encoder);
    if (text_pretrained) to.pretrained = text_pretrained;
    else if (vocab) to.vocab = vocab;
    else {
        rm->vocab_path = cg_path_join(run_dir, learned_vocab_name(text_encoder));
        if (learn) {
            rc = vocab_learn_for(text_encoder, NULL, rm->vocab_path, vocab_size);
            if (rc) return rc;
        }
        to.vocab = rm->vocab_path;
    }
    to.context = context;
    rc = text_tokenizer_load(text_encoder, &to, &rm->tok);
    if (rc) return rc;
    rm->T = context > 0 ? context : text_tokenizer_context(rm->tok);
    text_tok_defaults d;
    text_tok_defaults_for(text_encoder, &d);
    clip_model_options mo = {
        .image_encoder = image_encoder, .text_encoder = text_encoder, .embed_dim = embed_dim,
        .drop_path = (float)drop_path, .seed = seed, .text_pretrained = text_pretrained,
        .image_pretrained = image_pretrained, .vocab_size = text_pretrained ? 0 : text_tokenizer_vocab_size(rm->tok),
        .pad_id = text_pretrained ? -1 : text_tokenizer_pad(rm->tok),
        .eos_id = text_pretrained ? -1 : text_tokenizer_eos(rm->tok), .freeze_text = freeze_text};
    rc = clip_model_create(&rm->model, &mo);
    if (rc) return rc;
    if (rm->T > rm->model.text.cfg.max_positions)
        return cg_error_set(CG_ERR_CONFIG, "--context-length %d is longer than %s's %d positions", rm->T, text_encoder,
                            rm->model.text.cfg.max_positions);
    return captions_build(&rm->cap, rm->tok, d.kind == TEXT_TOK_WORDPIECE ? FMNIST_ZH : FMNIST_EN, rm->T);
}

static void run_model_free(run_model *rm) {
    clip_model_free(&rm->model);
    if (rm->tok) text_tokenizer_free(rm->tok);
    free(rm->cap.ids);
    free(rm->vocab_path);
    memset(rm, 0, sizeof *rm);
}

/* ------------------------------------------------------------------ training */

static cJSON *options_json(const train_options *o, const run_model *rm, int64_t total_steps, int64_t warmup) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "image_encoder", o->image_encoder);
    cJSON_AddStringToObject(c, "text_encoder", o->text_encoder);
    cJSON_AddStringToObject(c, "data", o->data);
    cJSON_AddStringToObject(c, "eval_data", o->eval_data ? o->eval_data : "fmnist:test");
    cJSON_AddStringToObject(c, "device", "cpu");
    if (o->text_pretrained) cJSON_AddStringToObject(c, "text_pretrained", o->text_pretrained);
    if (o->image_pretrained) cJSON_AddStringToObject(c, "image_pretrained", o->image_pretrained);
    cJSON_AddStringToObject(c, "vocab", text_tokenizer_vocab_path(rm->tok));
    cJSON_AddBoolToObject(c, "vocab_learned", !o->text_pretrained && !o->vocab);
    cJSON_AddNumberToObject(c, "vocab_size", text_tokenizer_vocab_size(rm->tok));
    cJSON_AddBoolToObject(c, "freeze_text", o->freeze_text);
    cJSON_AddNumberToObject(c, "steps", (double)total_steps);
    cJSON_AddNumberToObject(c, "batch_size", o->batch_size);
    cJSON_AddNumberToObject(c, "accum_steps", o->accum_steps);
    cJSON_AddNumberToObject(c, "image_size", o->image_size);
    cJSON_AddNumberToObject(c, "context_length", rm->T);
    cJSON_AddNumberToObject(c, "embed_dim", rm->model.embed_dim);
    cJSON_AddNumberToObject(c, "lr", o->lr);
    cJSON_AddNumberToObject(c, "wd", o->wd);
    cJSON_AddNumberToObject(c, "beta1", o->beta1);
    cJSON_AddNumberToObject(c, "beta2", o->beta2);
    cJSON_AddNumberToObject(c, "eps", o->eps);
    cJSON_AddNumberToObject(c, "warmup", (double)warmup);
    cJSON_AddNumberToObject(c, "grad_clip", o->grad_clip);
    cJSON_AddNumberToObject(c, "drop_path", o->drop_path);
    cJSON_AddNumberToObject(c, "seed", (double)o->seed);
    cJSON_AddNumberToObject(c, "threads", o->threads > 0 ? o->threads : omp_get_max_threads());
    return c;
}

/* The checks --resume makes against the run's config.json: the model and data must match. */
static int check_resume_config(const char *path, const cJSON *now) {
    static const char *const keys[] = {"image_encoder", "text_encoder", "data", "batch_size", "image_size",
                                       "context_length", "embed_dim", "seed", "steps", NULL};
    cg_json_doc doc;
    int rc = cg_json_load(path, &doc);
    if (rc) return rc;
    for (int i = 0; keys[i] && !rc; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(doc.root, keys[i]), *b = cJSON_GetObjectItemCaseSensitive(now, keys[i]);
        if (!a || !b || !cJSON_Compare(a, b, 1)) {
            char *sa = a ? cJSON_PrintUnformatted(a) : cg_xstrdup("(none)"), *sb = b ? cJSON_PrintUnformatted(b) : cg_xstrdup("(none)");
            rc = cg_error_set(CG_ERR_CONFIG, "--resume: %s was %s in the run being resumed (%s), now %s", keys[i], sa, path, sb);
            free(sa);
            free(sb);
        }
    }
    cg_json_free(&doc);
    return rc;
}

static void shuffle(int *perm, int n, uint64_t seed, int64_t epoch) {
    cg_rng r;
    cg_rng_seed(&r, seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(epoch + 1)));
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)cg_rng_below(&r, (uint64_t)i + 1);
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

static int write_json_file(const char *dir, const char *name, cJSON *obj) {
    char *path = cg_path_join(dir, name), *text = cg_json_print(obj, 1);
    char *withnl = cg_xasprintf("%s\n", text);
    int rc = cg_file_write_atomic(path, withnl, strlen(withnl));
    free(path); free(text); free(withnl);
    return rc;
}

int train_run(const train_options *o) {
    const char *split, *eval_split;
    int rc = parse_data("--data", o->data, &split);
    if (!rc) rc = parse_data("--eval-data", o->eval_data ? o->eval_data : "fmnist:test", &eval_split);
    if (!rc && (!o->image_encoder || !o->text_encoder || !o->out))
        rc = cg_error_set(CG_ERR_USAGE, "train needs --image-encoder, --text-encoder and --out");
    if (!rc && (o->accum_steps < 1 || o->batch_size % o->accum_steps || o->batch_size / o->accum_steps < 2))
        rc = cg_error_set(CG_ERR_USAGE, "--accum-steps %d: must split --batch-size %d into equal micro-batches of at "
                          "least 2", o->accum_steps, o->batch_size);
    if (!rc && o->batch_size < 2) rc = cg_error_set(CG_ERR_USAGE, "--batch-size %d: a contrastive batch needs at least 2", o->batch_size);
    if (!rc && (o->image_size < 16 || o->image_size > 1024))
        rc = cg_error_set(CG_ERR_USAGE, "--image-size %d: choose 16..1024 (StarNet downsamples by 32)", o->image_size);
    if (rc) { cg_log_error("%s", cg_error_message()); return 2; }
    if (o->device && strcmp(o->device, "cpu") != 0)
        cg_log_warn("--device %s: this build has no %s backend yet; training on the CPU", o->device, o->device);
    if (o->threads > 0) omp_set_num_threads(o->threads);

    if ((rc = cg_mkdir_p(o->out))) { cg_log_error("%s", cg_error_message()); return 4; }
    int64_t latest = -1;
    int have_ckpt = ckpt_latest(o->out, &latest) == CG_OK;
    if (have_ckpt && !o->resume) {
        cg_log_error("%s already holds a run (checkpoints/latest is step %" PRId64 "): pass --resume to continue it, "
                     "or choose another --out", o->out, latest);
        return 2;
    }
    fmnist_set train_set, eval_set;
    if ((rc = fmnist_load(NULL, split, &train_set))) { cg_log_error("%s", cg_error_message()); return 4; }
    if ((rc = fmnist_load(NULL, eval_split, &eval_set))) { cg_log_error("%s", cg_error_message()); fmnist_free(&train_set); return 4; }

    run_model rm;
    rc = run_model_build(&rm, o->out, o->image_encoder, o->text_encoder, o->text_pretrained, o->image_pretrained, o->vocab,
                         !have_ckpt, o->vocab_size, o->context_length, o->embed_dim, o->drop_path, o->seed, o->freeze_text);
    if (rc) {
        cg_log_error("%s", cg_error_message());
        run_model_free(&rm);
        fmnist_free(&train_set); fmnist_free(&eval_set);
        return rc == CG_ERR_USAGE || rc == CG_ERR_CONFIG ? 2 : 4;
    }
    clip_model *m = &rm.model;
    int B = o->batch_size, S = o->image_size, T = rm.T;
    int64_t spe = train_set.n / B;
    int64_t total = o->steps > 0 ? o->steps : (int64_t)ceil(o->epochs * (double)spe);
    if (total < 1) total = 1;
    int64_t warmup = o->warmup >= 0 ? o->warmup : (total / 10 < 500 ? total / 10 : 500);

    adamw_state opt_img, opt_txt, opt_scale;
    adamw_init(&opt_img, &m->image.params);
    adamw_init(&opt_txt, &m->text.params);
    adamw_init(&opt_scale, &m->scale);
    ckpt_group groups[3] = {{"visual.", &m->image.params, &opt_img},
                            {"text.", &m->text.params, o->freeze_text ? NULL : &opt_txt},
                            {"", &m->scale, &opt_scale}};
    cJSON *config = options_json(o, &rm, total, warmup);
    char *config_path = cg_path_join(o->out, "config.json");
    int64_t start_step = 0;
    int exit_code = 0;
    if (have_ckpt) {
        cJSON *state = NULL;
        rc = check_resume_config(config_path, config);
        if (!rc) rc = ckpt_load(o->out, latest, groups, 3, &state);
        if (rc) {
            cg_log_error("%s", cg_error_message());
            exit_code = 2;
            goto done;
        }
        const cJSON *dp = cJSON_GetObjectItemCaseSensitive(state, "drop_path_rng");
        if (cJSON_IsString(dp)) m->image.rng.state = strtoull(dp->valuestring, NULL, 16);
        start_step = latest;
        cJSON_Delete(state);
        printf("resuming %s from step %" PRId64 " of %" PRId64 "\n", o->out, start_step, total);
    } else if ((rc = write_json_file(o->out, "config.json", config))) {
        cg_log_error("%s", cg_error_message());
        exit_code = 4;
        goto done;
    }

    metrics_log ml;
    if ((rc = metrics_open(&ml, o->out))) { cg_log_error("%s", cg_error_message()); exit_code = 4; goto done; }
    adamw_config acfg = {(float)o->beta1, (float)o->beta2, (float)o->eps, (float)o->wd};
    size_t plane = (size_t)3 * S * S;
    float *images = cg_xmalloc((size_t)B * plane * sizeof *images);
    int32_t *ids = cg_xmalloc((size_t)B * T * sizeof *ids);
    int *perm = cg_xmalloc((size_t)train_set.n * sizeof *perm);
    int64_t perm_epoch = -1;
    double t_start = now_s(), t_train = 0, last_progress = 0, loss_sum = 0;
    int loss_count = 0, tty = isatty(1);
    float loss = 0;
    printf("training %s x %s: %" PRId64 " steps of %d images (%dx%d), %d threads, out %s\n", o->image_encoder,
           o->text_encoder, total, B, S, S, omp_get_max_threads(), o->out);
    fflush(stdout);
    for (int64_t step = start_step; step < total; step++) {
        double t0 = now_s();
        int64_t epoch = step / spe, pos = step % spe;
        if (epoch != perm_epoch) { shuffle(perm, train_set.n, o->seed, epoch); perm_epoch = epoch; }
        const int *idx = perm + pos * B;
        #pragma omp parallel for schedule(static)
        for (int i = 0; i < B; i++) fmnist_image(&train_set, idx[i], S, 1, o->seed, epoch, images + (size_t)i * plane);
        for (int i = 0; i < B; i++)
            memcpy(ids + (size_t)i * T, caption_row(&rm.cap, train_set.labels[idx[i]], template_of(o->seed, epoch, idx[i], rm.cap.nt)),
                   (size_t)T * sizeof *ids);
        float acc = 0;
        if ((rc = clip_model_step_accum(m, images, B, S, ids, T, o->accum_steps, &loss, &acc))) {
            cg_log_error("step %" PRId64 ": %s", step + 1, cg_error_message());
            exit_code = 1;
            break;
        }
        if (!isfinite(loss)) {
            int64_t good = -1;
            ckpt_latest(o->out, &good);
            cg_log_error("the loss is %s at step %" PRId64 ": stopping; nothing was saved from this step, checkpoints/latest "
                         "is %s%" PRId64 " (try a lower --lr)", isnan(loss) ? "NaN" : "infinite", step + 1,
                         good >= 0 ? "step " : "absent", good >= 0 ? good : 0);
            exit_code = 1;
            break;
        }
        cg_params *sets[3] = {&m->image.params, &m->text.params, &m->scale};
        const unsigned char *frozen[3] = {opt_img.frozen, o->freeze_text ? NULL : opt_txt.frozen, opt_scale.frozen};
        int nsets = o->freeze_text ? 2 : 3;
        if (o->freeze_text) { sets[1] = &m->scale; frozen[1] = opt_scale.frozen; }
        float gnorm = clip_grad_norm(sets, frozen, nsets, (float)o->grad_clip);
        float lr = (float)lr_at_step(LR_COSINE, o->lr, warmup, total, step);
        adamw_step(&opt_img, &m->image.params, &acfg, lr);
        if (!o->freeze_text) adamw_step(&opt_txt, &m->text.params, &acfg, lr);
        adamw_step(&opt_scale, &m->scale, &acfg, lr);
        clip_model_clamp_scale(m);
        t_train += now_s() - t0;
        loss_sum += loss;
        loss_count++;
        int64_t done = step + 1;
        double ips = (double)(done - start_step) * B / (t_train > 0 ? t_train : 1e-9);
        if (done % o->log_every == 0 || done == total) {
            const char *tags[5] = {"train/loss", "train/lr", "train/scale", "train/grad_norm", "train/samples_per_second"};
            double vals[5] = {loss, lr, exp(m->scale.params[0]), gnorm, ips};
            metrics_write(&ml, done, tags, vals, 5);
            double eta = (double)(total - done) * B / (ips > 0 ? ips : 1);
            printf(tty ? "\rstep %" PRId64 "/%" PRId64 "  loss %.4f  acc %.2f  lr %.2e  scale %.1f  %.0f img/s  ETA %.0f s   "
                       : "step %" PRId64 "/%" PRId64 "  loss %.4f  acc %.2f  lr %.2e  scale %.1f  %.0f img/s  ETA %.0f s\n",
                   done, total, loss, acc, lr, exp(m->scale.params[0]), ips, eta);
            fflush(stdout);
        }
        if (now_s() - last_progress > 2 || done == total) {
            metrics_progress(o->out, done, total, loss, (double)(total - done) * B / (ips > 0 ? ips : 1), ips);
            last_progress = now_s();
        }
        if (o->eval_every > 0 && done % o->eval_every == 0 && done != total) {
            eval_result er;
            if (evaluate(m, &eval_set, &rm.cap, S, o->eval_samples, o->retrieval_samples, o->seed, &er) == CG_OK) {
                const char *tags[16];
                double vals[16];
                int n;
                eval_to_metrics(&er, tags, vals, &n);
                metrics_write(&ml, done, tags, vals, n);
                printf("%seval at step %" PRId64 ": zero-shot top-1 %.4f top-5 %.4f (%d images)\n", tty ? "\n" : "", done,
                       er.top1, er.top5, er.n_images);
            }
        }
        if ((o->save_every > 0 && done % o->save_every == 0) || done == total) {
            cJSON *state = cJSON_CreateObject();
            char rng[32];
            snprintf(rng, sizeof rng, "%016" PRIx64, m->image.rng.state);
            cJSON_AddStringToObject(state, "drop_path_rng", rng);
            cJSON_AddNumberToObject(state, "epoch", (double)(done / spe));
            cJSON_AddNumberToObject(state, "data_position", (double)((done % spe) * B));
            rc = ckpt_save(o->out, done, groups, 3, state);
            cJSON_Delete(state);
            if (rc) { cg_log_error("%s", cg_error_message()); exit_code = 4; break; }
            ckpt_prune(o->out, o->keep_checkpoints);
        }
    }
    if (tty) printf("\n");
    if (exit_code == 0) {
        eval_result er;
        memset(&er, 0, sizeof er);
        rc = evaluate(m, &eval_set, &rm.cap, S, o->eval_samples, o->retrieval_samples, o->seed, &er);
        if (rc) { cg_log_error("%s", cg_error_message()); exit_code = 1; }
        const char *tags[16];
        double vals[16];
        int n;
        eval_to_metrics(&er, tags, vals, &n);
        metrics_write(&ml, total, tags, vals, n);
        cJSON *res = cJSON_CreateObject();
        cJSON_AddStringToObject(res, "image_encoder", o->image_encoder);
        cJSON_AddStringToObject(res, "text_encoder", o->text_encoder);
        cJSON_AddNumberToObject(res, "steps", (double)total);
        cJSON_AddNumberToObject(res, "zeroshot_top1", er.top1);
        cJSON_AddNumberToObject(res, "zeroshot_top5", er.top5);
        cJSON_AddNumberToObject(res, "eval_images", er.n_images);
        cJSON_AddNumberToObject(res, "loss", loss_count ? loss_sum / loss_count : loss);
        cJSON_AddNumberToObject(res, "final_step_loss", loss);
        cJSON_AddNumberToObject(res, "images_per_s", (double)(total - start_step) * B / (t_train > 0 ? t_train : 1e-9));
        cJSON_AddNumberToObject(res, "wall_time_s", now_s() - t_start);
        cJSON_AddNumberToObject(res, "logit_scale", m->scale.params[0]);
        for (int i = 2; i < n; i++) cJSON_AddNumberToObject(res, tags[i] + 4, vals[i]);  /* drop "val/" */
        write_json_file(o->out, "result.json", res);
        printf("done: zero-shot top-1 %.4f, top-5 %.4f on %d %s images; mean loss %.4f; %.0f images/s\n", er.top1,
               er.top5, er.n_images, eval_split, loss_count ? loss_sum / loss_count : loss,
               cJSON_GetObjectItem(res, "images_per_s")->valuedouble);
        cJSON_Delete(res);
    }
    metrics_close(&ml);
    free(images); free(ids); free(perm);
done:
    free(config_path);
    cJSON_Delete(config);
    adamw_free(&opt_img); adamw_free(&opt_txt); adamw_free(&opt_scale);
    run_model_free(&rm);
    fmnist_free(&train_set);
    fmnist_free(&eval_set);
    return exit_code;
}

/* ------------------------------------------------------------------ clipgrid eval */

int eval_run(const char *run_dir, const char *data, int64_t step, int eval_samples, int retrieval_samples, int threads) {
    const char *split;
    int rc = parse_data("--data", data, &split);
    if (rc) { cg_log_error("%s", cg_error_message()); return 2; }
    if (threads > 0) omp_set_num_threads(threads);
    char *cpath = cg_path_join(run_dir, "config.json");
    cg_json_doc doc;
    rc = cg_json_load(cpath, &doc);
    free(cpath);
    if (rc) { cg_log_error("%s (is %s a clipgrid train --out directory?)", cg_error_message(), run_dir); return 2; }
#define STR(k) (cJSON_IsString(cJSON_GetObjectItem(doc.root, k)) ? cJSON_GetObjectItem(doc.root, k)->valuestring : NULL)
#define NUM(k) (cJSON_IsNumber(cJSON_GetObjectItem(doc.root, k)) ? cJSON_GetObjectItem(doc.root, k)->valuedouble : 0)
    if (step < 0 && ckpt_latest(run_dir, &step) != CG_OK) {
        cg_log_error("%s", cg_error_message());
        cg_json_free(&doc);
        return 2;
    }
    fmnist_set set;
    if ((rc = fmnist_load(NULL, split, &set))) { cg_log_error("%s", cg_error_message()); cg_json_free(&doc); return 4; }
    run_model rm;
    rc = run_model_build(&rm, run_dir, STR("image_encoder") ? STR("image_encoder") : "?", STR("text_encoder") ? STR("text_encoder") : "?",
                         STR("text_pretrained"), NULL, STR("vocab"), 0, 0, (int)NUM("context_length"), (int)NUM("embed_dim"),
                         0, (uint64_t)NUM("seed"), 0);
    int exit_code = 0;
    if (!rc) {
        char *mpath = cg_xasprintf("%s/checkpoints/step_%" PRId64 ".safetensors", run_dir, step);
        ckpt_group groups[3] = {{"visual.", &rm.model.image.params, NULL}, {"text.", &rm.model.text.params, NULL},
                                {"", &rm.model.scale, NULL}};
        rc = ckpt_load_model_file(mpath, groups, 3);
        free(mpath);
    }
    eval_result er;
    memset(&er, 0, sizeof er);
    if (!rc) rc = evaluate(&rm.model, &set, &rm.cap, (int)NUM("image_size"), eval_samples, retrieval_samples,
                           (uint64_t)NUM("seed"), &er);
    if (rc) {
        cg_log_error("%s", cg_error_message());
        exit_code = 2;
    } else {
        const char *tags[16];
        double vals[16];
        int n;
        eval_to_metrics(&er, tags, vals, &n);
        cJSON *res = cJSON_CreateObject();
        cJSON_AddStringToObject(res, "checkpoint", run_dir);
        cJSON_AddNumberToObject(res, "step", (double)step);
        cJSON_AddStringToObject(res, "data", data);
        cJSON_AddNumberToObject(res, "images", er.n_images);
        for (int i = 0; i < n; i++) cJSON_AddNumberToObject(res, tags[i] + 4, vals[i]);
        char *text = cg_json_print(res, 1);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(res);
    }
#undef STR
#undef NUM
    run_model_free(&rm);
    fmnist_free(&set);
    cg_json_free(&doc);
    return exit_code;
}
