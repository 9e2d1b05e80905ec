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
#include "data/loader.h"
#include "models/clip_model.h"
#include "text/tokenizer.h"
#include "train/adamw.h"
#include "train/backend.h"
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
    o->workers = 2;
    o->shuffle_buffer = 1000;
}

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* The evaluation set of a run: --eval-data, else fmnist:test when training on Fashion-MNIST,
 * else none (a manifest or shards give no held-out set by themselves). */
static const char *eval_spec_of(const train_options *o) {
    if (o->eval_data) return *o->eval_data ? o->eval_data : NULL;
    return o->data && !strncmp(o->data, "fmnist:", 7) ? "fmnist:test" : NULL;
}

static int check_data_spec(const char *flag, const char *spec, const char *type) {
    data_kind k;
    int rc = data_spec_kind(spec, type, &k);
    if (rc) {
        char *why = cg_xstrdup(cg_error_message());   /* cg_error_set rewrites the message buffer */
        rc = !strncmp(why, "--", 2) ? cg_error_set(rc, "%s", why) : cg_error_set(rc, "%s %s", flag, why);
        free(why);
        return rc;
    }
    if (k == DATA_FMNIST && strcmp(spec, "fmnist:train") && strcmp(spec, "fmnist:test"))
        return cg_error_set(CG_ERR_USAGE, "%s %s: Fashion-MNIST is fmnist:train or fmnist:test", flag, spec);
    return CG_OK;
}

static data_kind loader_kind_of(const loader_opts *lo) {
    data_kind k = DATA_FMNIST;
    data_spec_kind(lo->spec, lo->type, &k);
    return k;
}

/* The loader options of a run for `spec` (train: augmentation and shuffling on). */
static void loader_opts_for(const train_options *o, const char *spec, int train, fmnist_lang lang, loader_opts *lo) {
    loader_opts_defaults(lo);
    lo->spec = spec;
    lo->type = train ? o->dataset_type : NULL;
    lo->manifest.img_key = o->csv_img_key;
    lo->manifest.caption_key = o->csv_caption_key;
    lo->manifest.sep = o->csv_separator;
    lo->manifest.image_tsv = train ? o->image_tsv : o->eval_image_tsv;
    lo->image_size = o->image_size;
    lo->train = train;
    lo->workers = o->workers > 0 ? o->workers : 2;
    lo->batch_hint = o->batch_size;
    lo->shuffle_buffer = o->shuffle_buffer;
    lo->seed = o->seed;
    lo->lang = lang;
    lo->hflip = o->hflip;
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

/* ------------------------------------------------------------------ evaluation */

typedef struct {
    int zeroshot;              /* top1/top5 measured (Fashion-MNIST classes) */
    double top1, top5;
    eval_retrieval retr;
    int n_images, n_retrieval;
} eval_result;

static int evaluate(train_backend *be, const fmnist_set *set, const captions *cap, int image_size, int samples,
                    int retrieval_samples, uint64_t seed, eval_result *r) {
    int E = be->args.model->embed_dim, N = samples > 0 && samples < set->n ? samples : set->n;
    int R = retrieval_samples < N ? retrieval_samples : N;
    int chunk = 250;
    size_t plane = (size_t)3 * image_size * image_size;
    float *imgs = cg_xmalloc((size_t)chunk * plane * sizeof *imgs);
    float *iemb = cg_xmalloc((size_t)N * E * sizeof *iemb);
    int rc = CG_OK;
    for (int s = 0; s < N && !rc; s += chunk) {
        int b = N - s < chunk ? N - s : chunk;
        #pragma omp parallel for schedule(static)
        for (int i = 0; i < b; i++) fmnist_image(set, s + i, image_size, 0, 0, 0, imgs + (size_t)i * plane);
        rc = train_backend_encode_images(be, imgs, b, iemb + (size_t)s * E);
    }
    /* classes: every template of every class, averaged per class */
    int rows = FMNIST_CLASSES * cap->nt;
    float *temb = cg_xmalloc((size_t)rows * E * sizeof *temb), *cls = cg_xmalloc((size_t)FMNIST_CLASSES * E * sizeof *cls);
    if (!rc) rc = train_backend_encode_texts(be, cap->ids, rows, temb);
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
            memcpy(ids + (size_t)i * cap->T, caption_row(cap, set->labels[i], fmnist_template_of(cap->lang, seed, -1, i)),
                   (size_t)cap->T * sizeof *ids);
        float *remb = cg_xmalloc((size_t)R * E * sizeof *remb);
        rc = train_backend_encode_texts(be, ids, R, remb);
        if (!rc) eval_retrieval_metrics(iemb, remb, R, E, &r->retr);
        free(ids);
        free(remb);
    }
    r->zeroshot = 1;
    r->n_images = N;
    r->n_retrieval = R;
    free(imgs); free(iemb); free(temb); free(cls);
    return rc;
}

/* Retrieval on a manifest or shards: the first `samples` usable pairs in file order (centre
 * crop, no augmentation), each image against its own caption. */
static int evaluate_files(train_backend *be, const text_tokenizer *tok, int T, const loader_opts *lo, int samples,
                          eval_result *r) {
    loader *l;
    int rc = loader_open(lo, 0, &l);
    if (rc) return rc;
    int E = be->args.model->embed_dim, S = lo->image_size, chunk = 64;
    int64_t limit = loader_epoch_size(l);
    int cap = samples > 0 && samples < limit ? samples : (int)(limit < 100000 ? limit : 100000);
    size_t plane = (size_t)3 * S * S;
    float *imgs = cg_xmalloc((size_t)chunk * plane * sizeof *imgs);
    float *iemb = cg_xmalloc((size_t)cap * E * sizeof *iemb), *temb = cg_xmalloc((size_t)cap * E * sizeof *temb);
    int32_t *ids = cg_xmalloc((size_t)chunk * T * sizeof *ids);
    const char *caps[1];
    int n = 0, b = 0;
    /* one sample at a time so the epoch's end (file order, skips included) is never passed */
    while (!rc && n < cap && loader_position(l) < limit) {
        if ((rc = loader_next(l, 1, imgs + (size_t)b * plane, caps, NULL))) break;
        text_tokenizer_encode_ex(tok, caps[0], strlen(caps[0]), ids + (size_t)b * T, T, NULL);
        if (++b == chunk || n + b == cap || loader_position(l) >= limit) {
            rc = train_backend_encode_images(be, imgs, b, iemb + (size_t)n * E);
            if (!rc) rc = train_backend_encode_texts(be, ids, b, temb + (size_t)n * E);
            n += b;
            b = 0;
        }
    }
    memset(r, 0, sizeof *r);
    if (!rc && n < 2) rc = cg_error_set(CG_ERR_FORMAT, "%s: fewer than 2 usable samples to evaluate retrieval on", lo->spec);
    if (!rc) eval_retrieval_metrics(iemb, temb, n, E, &r->retr);
    r->n_images = r->n_retrieval = n;
    loader_close(l);
    free(imgs); free(iemb); free(temb); free(ids);
    return rc;
}

static void eval_to_metrics(const eval_result *r, const char **tags, double *vals, int *n) {
    int k = 0;
#define ADD(t, v) do { tags[k] = t; vals[k++] = v; } while (0)
    if (r->zeroshot) {
        ADD("val/fmnist-zeroshot-top1", r->top1);
        ADD("val/fmnist-zeroshot-top5", r->top5);
    }
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

/* Learn a vocabulary for `encoder` into `path`: from Fashion-MNIST's class captions, or from the
 * captions of the training manifest / shards (`data`, the first VOCAB_LEARN_CAPTIONS of them). */
#define VOCAB_LEARN_CAPTIONS 200000
static int vocab_learn_for(const char *encoder, const loader_opts *data, const char *path, int vocab_size) {
    text_tok_defaults d;
    int rc = text_tok_defaults_for(encoder, &d);
    if (rc) return rc;
    if (data && loader_kind_of(data) != DATA_FMNIST) {
        char **texts;
        int n;
        if ((rc = loader_captions(data, VOCAB_LEARN_CAPTIONS, &texts, &n))) return rc;
        rc = text_tokenizer_learn(d.kind, (const char *const *)texts, (size_t)n, vocab_size, d.lower_case, path);
        for (int i = 0; i < n; i++) free(texts[i]);
        free(texts);
        return rc;
    }
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
                           int freeze_text, const loader_opts *vocab_data) {
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
            rc = vocab_learn_for(text_encoder, vocab_data, rm->vocab_path, vocab_size);
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

/* Evaluate on the run's eval set: Fashion-MNIST (zero-shot + retrieval) or a manifest / shards
 * (retrieval). */
static int evaluate_on(train_backend *be, const run_model *rm, const fmnist_set *fm, const loader_opts *lo,
                       int image_size, int samples, int retrieval_samples, uint64_t seed, eval_result *r) {
    memset(r, 0, sizeof *r);
    if (fm && fm->n > 0) return evaluate(be, fm, &rm->cap, image_size, samples, retrieval_samples, seed, r);
    return evaluate_files(be, rm->tok, rm->T, lo, retrieval_samples, r);
}

static void eval_print(const char *prefix, const eval_result *r, const char *spec) {
    if (r->zeroshot)
        printf("%szero-shot top-1 %.4f, top-5 %.4f on %d images of %s; ", prefix, r->top1, r->top5, r->n_images, spec);
    else
        printf("%s", prefix);
    printf("retrieval R@1 image->text %.4f, text->image %.4f on %d pairs\n", r->retr.image_to_text.r1,
           r->retr.text_to_image.r1, r->n_retrieval);
}

/* ------------------------------------------------------------------ training */

static cJSON *options_json(const train_options *o, const run_model *rm, int64_t total_steps, int64_t warmup) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "image_encoder", o->image_encoder);
    cJSON_AddStringToObject(c, "text_encoder", o->text_encoder);
    cJSON_AddStringToObject(c, "data", o->data);
    if (eval_spec_of(o)) cJSON_AddStringToObject(c, "eval_data", eval_spec_of(o));
    else cJSON_AddNullToObject(c, "eval_data");
    if (o->dataset_type) cJSON_AddStringToObject(c, "dataset_type", o->dataset_type);
    if (o->csv_img_key) cJSON_AddStringToObject(c, "csv_img_key", o->csv_img_key);
    if (o->csv_caption_key) cJSON_AddStringToObject(c, "csv_caption_key", o->csv_caption_key);
    if (o->csv_separator) {
        char sep[2] = {o->csv_separator, 0};
        cJSON_AddStringToObject(c, "csv_separator", sep);
    }
    if (o->image_tsv) cJSON_AddStringToObject(c, "image_tsv", o->image_tsv);
    if (o->eval_image_tsv) cJSON_AddStringToObject(c, "eval_image_tsv", o->eval_image_tsv);
    cJSON_AddNumberToObject(c, "workers", o->workers);
    cJSON_AddNumberToObject(c, "shuffle_buffer", o->shuffle_buffer);
    cJSON_AddBoolToObject(c, "hflip", o->hflip);
    cJSON_AddStringToObject(c, "device", o->device ? o->device : "cpu");
    cJSON_AddStringToObject(c, "precision", o->precision);
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
    static const char *const keys[] = {"image_encoder", "text_encoder", "data", "batch_size", "image_size", "hflip",
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


static int write_json_file(const char *dir, const char *name, cJSON *obj) {
    char *path = cg_path_join(dir, name), *text = cg_json_print(obj, 1);
    char *withnl = cg_xasprintf("%s\n", text);
    int rc = cg_file_write_atomic(path, withnl, strlen(withnl));
    free(path); free(text); free(withnl);
    return rc;
}

/* --precision of train and eval: *name defaults to bf16 on cuda, fp32 on the CPU; the enum into
 * *p; CG_ERR_USAGE for a name that is not one, or bf16 on the CPU (`verb`: "trains", "evaluates"). */
static int resolve_precision(int on_cuda, const char **name, train_precision *p, const char *verb) {
    if (!*name) *name = on_cuda ? "bf16" : "fp32";
    int rc = train_precision_parse(*name, p);
    if (!rc && !on_cuda && *p != TRAIN_PREC_FP32)
        rc = cg_error_set(CG_ERR_USAGE, "--precision %s: the CPU %s in fp32 only (bf16 is for --device cuda)", *name,
                          verb);
    return rc;
}

/* exit code of a backend that failed to open: 3 device unavailable, 2 bad setting, 1 otherwise */
static int backend_open_exit_code(int rc) { return rc == CG_ERR_DEVICE ? 3 : rc == CG_ERR_USAGE ? 2 : 1; }

int train_run(const train_options *opts) {
    train_options resolved = *opts;        /* with the device and precision defaults filled in */
    const train_options *o = &resolved;
    if (!resolved.device) resolved.device = "cpu";
    int on_cuda = !strcmp(resolved.device, "cuda");
    const char *eval_spec = eval_spec_of(o);
    int rc = check_data_spec("--data", o->data, o->dataset_type);
    if (!rc && eval_spec) rc = check_data_spec("--eval-data", eval_spec, NULL);
    if (!rc && (!o->image_encoder || !o->text_encoder || !o->out))
        rc = cg_error_set(CG_ERR_USAGE, "train needs --image-encoder, --text-encoder and --out");
    if (!rc && (o->accum_steps < 1 || o->batch_size % o->accum_steps || o->batch_size / o->accum_steps < 2))
        rc = cg_error_set(CG_ERR_USAGE, "--accum-steps %d: must split --batch-size %d into equal micro-batches of at "
                          "least 2", o->accum_steps, o->batch_size);
    if (!rc && o->batch_size < 2) rc = cg_error_set(CG_ERR_USAGE, "--batch-size %d: a contrastive batch needs at least 2", o->batch_size);
    if (!rc && (o->image_size < 16 || o->image_size > 1024))
        rc = cg_error_set(CG_ERR_USAGE, "--image-size %d: choose 16..1024 (StarNet downsamples by 32)", o->image_size);
    train_precision precision = TRAIN_PREC_FP32;
    if (!rc) rc = resolve_precision(on_cuda, &resolved.precision, &precision, "trains");
    if (rc) { cg_log_error("%s", cg_error_message()); return 2; }
    /* the device before anything is written: no device, no run directory */
    char device_desc[256] = "cpu";
    if ((rc = train_backend_probe(o->device, 0, device_desc, sizeof device_desc))) {
        cg_log_error("%s", cg_error_message());
        return 3;
    }
    if (o->threads > 0) omp_set_num_threads(o->threads);

    if ((rc = cg_mkdir_p(o->out))) { cg_log_error("%s", cg_error_message()); return 4; }
    int64_t latest = -1;
    int have_ckpt = ckpt_latest(o->out, &latest) == CG_OK;
    if (have_ckpt && !o->resume) {
        cg_log_error("%s already holds a run (checkpoints/latest is step %" PRId64 "): pass --resume to continue it, "
                     "or choose another --out", o->out, latest);
        return 2;
    }
    loader_opts train_lo, eval_lo;
    loader_opts_for(o, o->data, 1, FMNIST_EN, &train_lo);
    fmnist_set eval_set;
    memset(&eval_set, 0, sizeof eval_set);
    int eval_fmnist = eval_spec && !strncmp(eval_spec, "fmnist:", 7);
    if (eval_fmnist && (rc = fmnist_load(NULL, eval_spec + 7, &eval_set))) { cg_log_error("%s", cg_error_message()); return 4; }

    run_model rm;
    rc = run_model_build(&rm, o->out, o->image_encoder, o->text_encoder, o->text_pretrained, o->image_pretrained, o->vocab,
                         !have_ckpt, o->vocab_size, o->context_length, o->embed_dim, o->drop_path, o->seed, o->freeze_text,
                         &train_lo);
    if (rc) {
        cg_log_error("%s", cg_error_message());
        run_model_free(&rm);
        fmnist_free(&eval_set);
        return rc == CG_ERR_USAGE || rc == CG_ERR_CONFIG ? 2 : 4;
    }
    train_lo.lang = rm.cap.lang;
    loader_opts_for(o, eval_spec, 0, rm.cap.lang, &eval_lo);
    clip_model *m = &rm.model;
    int B = o->batch_size, S = o->image_size, T = rm.T;

    adamw_state opt_img, opt_txt, opt_scale;
    adamw_init(&opt_img, &m->image.params);
    adamw_init(&opt_txt, &m->text.params);
    adamw_init(&opt_scale, &m->scale);
    ckpt_group groups[3] = {{"visual.", &m->image.params, &opt_img},
                            {"text.", &m->text.params, o->freeze_text ? NULL : &opt_txt},
                            {"", &m->scale, &opt_scale}};
    cJSON *config = NULL;
    char *config_path = cg_path_join(o->out, "config.json");
    int64_t start_step = 0, data_position = 0, skipped_before = 0;
    int exit_code = 0;
    loader *data = NULL;
    train_backend be;
    memset(&be, 0, sizeof be);
    if (have_ckpt) {
        cJSON *state = NULL;
        if ((rc = ckpt_load(o->out, latest, groups, 3, &state))) {
            cg_log_error("%s", cg_error_message());
            exit_code = 2;
            goto done;
        }
        const cJSON *dp = cJSON_GetObjectItemCaseSensitive(state, "drop_path_rng");
        if (cJSON_IsString(dp)) m->image.rng.state = strtoull(dp->valuestring, NULL, 16);
        start_step = latest;
        const cJSON *pos = cJSON_GetObjectItemCaseSensitive(state, "data_stream_position");
        const cJSON *sk = cJSON_GetObjectItemCaseSensitive(state, "data_skipped");
        /* checkpoints from before the threaded loader: every step took exactly B samples */
        data_position = cJSON_IsNumber(pos) ? (int64_t)pos->valuedouble : start_step * B;
        skipped_before = cJSON_IsNumber(sk) ? (int64_t)sk->valuedouble : 0;
        cJSON_Delete(state);
    }
    adamw_config acfg = {(float)o->beta1, (float)o->beta2, (float)o->eps, (float)o->wd};
    train_backend_args bargs = {.model = m, .opt_img = &opt_img, .opt_txt = o->freeze_text ? NULL : &opt_txt,
                                .opt_scale = &opt_scale, .acfg = acfg, .grad_clip = (float)o->grad_clip, .batch = B,
                                .image_size = S, .context = T, .accum_steps = o->accum_steps, .precision = precision};
    if ((rc = train_backend_open(o->device, &bargs, &be))) {
        cg_log_error("%s", cg_error_message());
        exit_code = backend_open_exit_code(rc);
        goto done;
    }
    if ((rc = loader_open(&train_lo, data_position, &data))) {
        cg_log_error("%s", cg_error_message());
        exit_code = 4;
        goto done;
    }
    int64_t spe = loader_epoch_size(data) / B;
    if (spe < 1) spe = 1;
    int64_t total = o->steps > 0 ? o->steps : (int64_t)ceil(o->epochs * (double)spe);
    if (total < 1) total = 1;
    int64_t warmup = o->warmup >= 0 ? o->warmup : (total / 10 < 500 ? total / 10 : 500);
    config = options_json(o, &rm, total, warmup);
    if (have_ckpt) {
        if ((rc = check_resume_config(config_path, config))) {
            cg_log_error("%s", cg_error_message());
            exit_code = 2;
            goto done;
        }
        printf("resuming %s from step %" PRId64 " of %" PRId64 " (data position %" PRId64 ")\n", o->out, start_step, total,
               data_position);
    } else if ((rc = write_json_file(o->out, "config.json", config))) {
        cg_log_error("%s", cg_error_message());
        exit_code = 4;
        goto done;
    }

    metrics_log ml;
    if ((rc = metrics_open(&ml, o->out))) { cg_log_error("%s", cg_error_message()); exit_code = 4; goto done; }
    size_t plane = (size_t)3 * S * S;
    float *images = cg_xmalloc((size_t)B * plane * sizeof *images);
    int32_t *ids = cg_xmalloc((size_t)B * T * sizeof *ids);
    const char **caps = cg_xmalloc((size_t)B * sizeof *caps);
    double t_start = now_s(), t_train = 0, t_data = 0, last_progress = 0, loss_sum = 0;
    int loss_count = 0, tty = isatty(1);
    float loss = 0, logit_scale = m->scale.params[0];
    printf("training %s x %s on %s (%s): %" PRId64 " steps of %d images (%dx%d), %d threads, %d data workers, %s (%" PRId64
           " samples an epoch), out %s\n", o->image_encoder, o->text_encoder, device_desc, o->precision, total, B, S, S,
           omp_get_max_threads(), train_lo.workers, o->data, loader_epoch_size(data), o->out);
    fflush(stdout);
    for (int64_t step = start_step; step < total; step++) {
        double t0 = now_s();
        if ((rc = loader_next(data, B, images, caps, NULL))) {
            cg_log_error("step %" PRId64 ": %s", step + 1, cg_error_message());
            exit_code = 4;
            break;
        }
        text_tokenizer_encode_batch(rm.tok, caps, (size_t)B, ids, T, NULL);
        t_data += now_s() - t0;
        float lr = (float)lr_at_step(LR_COSINE, o->lr, warmup, total, step);
        train_step_result sr;
        if ((rc = train_backend_step(&be, images, ids, lr, &sr))) {
            cg_log_error("step %" PRId64 ": %s", step + 1, cg_error_message());
            exit_code = 1;
            break;
        }
        loss = sr.loss;
        if (!isfinite(loss)) {
            int64_t good = -1;
            ckpt_latest(o->out, &good);
            cg_log_error("the loss is %s at step %" PRId64 ": stopping; nothing was saved from this step, checkpoints/latest "
                         "is %s%" PRId64 " (try a lower --lr)", isnan(loss) ? "NaN" : "infinite", step + 1,
                         good >= 0 ? "step " : "absent", good >= 0 ? good : 0);
            exit_code = 1;
            break;
        }
        float acc = sr.acc_i2t, gnorm = sr.grad_norm;
        logit_scale = sr.logit_scale;
        t_train += now_s() - t0;
        loss_sum += loss;
        loss_count++;
        int64_t done = step + 1;
        double ips = (double)(done - start_step) * B / (t_train > 0 ? t_train : 1e-9);
        if (done % o->log_every == 0 || done == total) {
            const char *tags[7] = {"train/loss", "train/lr", "train/scale", "train/grad_norm", "train/samples_per_second",
                                   "data/skipped", "data/wait_fraction"};
            double vals[7] = {loss, lr, exp(logit_scale), gnorm, ips, (double)(skipped_before + loader_skipped(data)),
                              t_data / (t_train > 0 ? t_train : 1e-9)};
            metrics_write(&ml, done, tags, vals, 7);
            double eta = (double)(total - done) * B / (ips > 0 ? ips : 1);
            printf(tty ? "\rstep %" PRId64 "/%" PRId64 "  loss %.4f  acc %.2f  lr %.2e  scale %.1f  %.0f img/s  ETA %.0f s   "
                       : "step %" PRId64 "/%" PRId64 "  loss %.4f  acc %.2f  lr %.2e  scale %.1f  %.0f img/s  ETA %.0f s\n",
                   done, total, loss, acc, lr, exp(logit_scale), ips, eta);
            fflush(stdout);
        }
        if (now_s() - last_progress > 2 || done == total) {
            metrics_progress(o->out, done, total, loss, (double)(total - done) * B / (ips > 0 ? ips : 1), ips);
            last_progress = now_s();
        }
        if (eval_spec && o->eval_every > 0 && done % o->eval_every == 0 && done != total) {
            eval_result er;
            if (evaluate_on(&be, &rm, &eval_set, &eval_lo, S, o->eval_samples, o->retrieval_samples, o->seed, &er) == CG_OK) {
                const char *tags[16];
                double vals[16];
                int n;
                eval_to_metrics(&er, tags, vals, &n);
                metrics_write(&ml, done, tags, vals, n);
                char prefix[64];
                snprintf(prefix, sizeof prefix, "%seval at step %" PRId64 ": ", tty ? "\n" : "", done);
                eval_print(prefix, &er, eval_spec);
            } else {
                cg_log_warn("eval at step %" PRId64 ": %s", done, cg_error_message());
            }
        }
        if ((o->save_every > 0 && done % o->save_every == 0) || done == total) {
            if ((rc = train_backend_to_host(&be))) {
                cg_log_error("step %" PRId64 ": copying the model back from %s: %s", done, device_desc, cg_error_message());
                exit_code = 1;
                break;
            }
            cJSON *state = cJSON_CreateObject();
            char rng[32];
            snprintf(rng, sizeof rng, "%016" PRIx64, m->image.rng.state);
            cJSON_AddStringToObject(state, "drop_path_rng", rng);
            int64_t position = loader_position(data);
            cJSON_AddNumberToObject(state, "epoch", (double)(position / loader_epoch_size(data)));
            cJSON_AddNumberToObject(state, "data_stream_position", (double)position);
            cJSON_AddNumberToObject(state, "data_skipped", (double)(skipped_before + loader_skipped(data)));
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
        const char *tags[16];
        double vals[16];
        int n = 0;
        if (eval_spec) {
            rc = evaluate_on(&be, &rm, &eval_set, &eval_lo, S, o->eval_samples, o->retrieval_samples, o->seed, &er);
            if (rc) { cg_log_error("%s", cg_error_message()); exit_code = 1; }
            eval_to_metrics(&er, tags, vals, &n);
            metrics_write(&ml, total, tags, vals, n);
        }
        int64_t skipped = skipped_before + loader_skipped(data);
        cJSON *res = cJSON_CreateObject();
        cJSON_AddStringToObject(res, "image_encoder", o->image_encoder);
        cJSON_AddStringToObject(res, "text_encoder", o->text_encoder);
        cJSON_AddNumberToObject(res, "steps", (double)total);
        if (er.zeroshot) {
            cJSON_AddNumberToObject(res, "zeroshot_top1", er.top1);
            cJSON_AddNumberToObject(res, "zeroshot_top5", er.top5);
        }
        if (eval_spec) {
            cJSON_AddStringToObject(res, "eval_data", eval_spec);
            cJSON_AddNumberToObject(res, "eval_images", er.n_images);
        }
        cJSON_AddNumberToObject(res, "data_skipped", (double)skipped);
        cJSON_AddNumberToObject(res, "loss", loss_count ? loss_sum / loss_count : loss);
        cJSON_AddNumberToObject(res, "final_step_loss", loss);
        cJSON_AddNumberToObject(res, "images_per_s", (double)(total - start_step) * B / (t_train > 0 ? t_train : 1e-9));
        cJSON_AddNumberToObject(res, "wall_time_s", now_s() - t_start);
        cJSON_AddNumberToObject(res, "logit_scale", m->scale.params[0]);
        train_backend_info bi;
        train_backend_info_get(&be, &bi);
        cJSON_AddStringToObject(res, "device", bi.device);
        cJSON_AddStringToObject(res, "precision", o->precision);
        if (on_cuda) {
            cJSON_AddNumberToObject(res, "peak_gpu_memory_bytes", (double)bi.allocated_bytes);
            cJSON_AddNumberToObject(res, "gpu_memory_used_bytes", (double)bi.device_used_bytes);
        }
        for (int i = er.zeroshot ? 2 : 0; i < n; i++) cJSON_AddNumberToObject(res, tags[i] + 4, vals[i]);  /* drop "val/" */
        write_json_file(o->out, "result.json", res);
        printf("done: mean loss %.4f; %.0f images/s; %" PRId64 " samples skipped\n", loss_count ? loss_sum / loss_count : loss,
               cJSON_GetObjectItem(res, "images_per_s")->valuedouble, skipped);
        if (eval_spec) eval_print("", &er, eval_spec);
        cJSON_Delete(res);
    }
    metrics_close(&ml);
    free(images); free(ids); free(caps);
done:
    free(config_path);
    cJSON_Delete(config);
    train_backend_close(&be);
    adamw_free(&opt_img); adamw_free(&opt_txt); adamw_free(&opt_scale);
    run_model_free(&rm);
    loader_close(data);
    fmnist_free(&eval_set);
    return exit_code;
}

/* ------------------------------------------------------------------ clipgrid eval */

int eval_run(const char *run_dir, const char *data, int64_t step, int eval_samples, int retrieval_samples, int threads,
             const char *device, const char *precision_name, int batch) {
    if (!device) device = "cpu";
    int on_cuda = !strcmp(device, "cuda");
    train_precision precision = TRAIN_PREC_FP32;
    int rc = check_data_spec("--data", data, NULL);
    if (!rc) rc = resolve_precision(on_cuda, &precision_name, &precision, "evaluates");
    if (!rc && batch < 1) rc = cg_error_set(CG_ERR_USAGE, "--batch-size %d: at least 1", batch);
    if (rc) { cg_log_error("%s", cg_error_message()); return 2; }
    char device_desc[256] = "cpu";
    if ((rc = train_backend_probe(device, 0, device_desc, sizeof device_desc))) {
        cg_log_error("%s", cg_error_message());
        return 3;
    }
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
    memset(&set, 0, sizeof set);
    if (!strncmp(data, "fmnist:", 7) && (rc = fmnist_load(NULL, data + 7, &set))) {
        cg_log_error("%s", cg_error_message());
        cg_json_free(&doc);
        return 4;
    }
    /* the manifest settings the run was trained with */
    train_options o;
    train_options_defaults(&o);
    o.csv_img_key = STR("csv_img_key");
    o.csv_caption_key = STR("csv_caption_key");
    o.csv_separator = STR("csv_separator") ? STR("csv_separator")[0] : 0;
    o.eval_image_tsv = STR("eval_image_tsv");
    o.image_size = (int)NUM("image_size");
    o.hflip = 0;
    run_model rm;
    rc = run_model_build(&rm, run_dir, STR("image_encoder") ? STR("image_encoder") : "?", STR("text_encoder") ? STR("text_encoder") : "?",
                         STR("text_pretrained"), NULL, STR("vocab"), 0, 0, (int)NUM("context_length"), (int)NUM("embed_dim"),
                         0, (uint64_t)NUM("seed"), 0, NULL);
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
    loader_opts lo;
    /* the device backend is built for training steps: it takes AdamW states (fresh ones here,
     * never used: no step runs) and a batch, the chunk it encodes per call; the text tower is
     * "frozen" (no text moments on the device). The CPU backend evaluates without them. */
    adamw_state opt_img, opt_scale;
    memset(&opt_img, 0, sizeof opt_img);
    memset(&opt_scale, 0, sizeof opt_scale);
    train_backend be;
    memset(&be, 0, sizeof be);
    if (!rc && on_cuda) {
        adamw_init(&opt_img, &rm.model.image.params);
        adamw_init(&opt_scale, &rm.model.scale);
        rm.model.text.frozen = 1;   /* no step runs: the device keeps no text gradients or moments */
    }
    if (!rc) {
        loader_opts_for(&o, data, 0, rm.cap.lang, &lo);
        train_backend_args ba = {.model = &rm.model, .opt_img = on_cuda ? &opt_img : NULL,
                                 .opt_scale = on_cuda ? &opt_scale : NULL,
                                 .acfg = {0.9f, 0.999f, 1e-8f, 0.0f}, .batch = batch,
                                 .image_size = (int)NUM("image_size"), .context = rm.T, .accum_steps = 1,
                                 .precision = precision};
        rc = train_backend_open(device, &ba, &be);
        if (rc) exit_code = backend_open_exit_code(rc);
        if (!rc) rc = evaluate_on(&be, &rm, &set, &lo, (int)NUM("image_size"), eval_samples, retrieval_samples,
                                  (uint64_t)NUM("seed"), &er);
    }
    train_backend_info bi;
    memset(&bi, 0, sizeof bi);
    snprintf(bi.device, sizeof bi.device, "%s", device_desc);
    if (!rc && be.ops) train_backend_info_get(&be, &bi);
    train_backend_close(&be);
    adamw_free(&opt_img);
    adamw_free(&opt_scale);
    if (rc) {
        cg_log_error("%s", cg_error_message());
        if (!exit_code) exit_code = 2;
    } else {
        const char *tags[16];
        double vals[16];
        int n;
        eval_to_metrics(&er, tags, vals, &n);
        cJSON *res = cJSON_CreateObject();
        cJSON_AddStringToObject(res, "checkpoint", run_dir);
        cJSON_AddNumberToObject(res, "step", (double)step);
        cJSON_AddStringToObject(res, "data", data);
        cJSON_AddStringToObject(res, "device", bi.device);
        cJSON_AddStringToObject(res, "precision", train_precision_name(precision));
        cJSON_AddNumberToObject(res, "images", er.n_images);
        cJSON_AddNumberToObject(res, "retrieval_pairs", er.n_retrieval);
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
