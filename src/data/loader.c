#include "data/loader.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "data/image.h"
#include "data/transform.h"
#include "data/wds.h"

#define LOADER_WARN_FIRST 10          /* skipped samples warned one by one; then every 1000th */
#define LOADER_MAX_PREFETCH_BYTES ((size_t)768 << 20)

/* ------------------------------------------------------------------ sources */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int data_spec_kind(const char *spec, const char *type, data_kind *kind) {
    if (!spec || !*spec) return cg_error_set(CG_ERR_USAGE, "no dataset given");
    if (type && *type && strcmp(type, "auto") != 0) {
        if (!strcmp(type, "fmnist")) *kind = DATA_FMNIST;
        else if (!strcmp(type, "csv")) *kind = DATA_CSV;
        else if (!strcmp(type, "jsonl")) *kind = DATA_JSONL;
        else if (!strcmp(type, "webdataset")) *kind = DATA_WDS;
        else
            return cg_error_set(CG_ERR_USAGE, "--dataset-type %s: choose auto, fmnist, csv, jsonl or webdataset", type);
        if (*kind == DATA_FMNIST && strncmp(spec, "fmnist:", 7) != 0)
            return cg_error_set(CG_ERR_USAGE, "%s: Fashion-MNIST is fmnist:train or fmnist:test", spec);
        return CG_OK;
    }
    if (!strncmp(spec, "fmnist:", 7)) *kind = DATA_FMNIST;
    else if (ends_with(spec, ".csv") || ends_with(spec, ".tsv")) *kind = DATA_CSV;
    else if (ends_with(spec, ".jsonl") || ends_with(spec, ".json")) *kind = DATA_JSONL;
    else if (strstr(spec, ".tar") || strchr(spec, '{')) *kind = DATA_WDS;
    else
        return cg_error_set(CG_ERR_USAGE, "%s: not a dataset clipgrid knows: give fmnist:train|test, a .csv/.tsv "
                            "or .jsonl manifest, or WebDataset shards (data-{000000..000009}.tar); "
                            "--dataset-type names the kind when the suffix does not", spec);
    return CG_OK;
}

typedef struct {
    data_kind kind;
    fmnist_set fm;              /* DATA_FMNIST */
    manifest *man;              /* DATA_CSV, DATA_JSONL */
    char **shards;              /* DATA_WDS */
    int nshards;
    int64_t n;                  /* positions per epoch */
    int64_t listing_skipped;    /* manifest rows dropped while reading it */
} source;

static void source_close(source *s) {
    if (s->kind == DATA_FMNIST) fmnist_free(&s->fm);
    if (s->man) manifest_close(s->man);
    if (s->shards) wds_free_paths(s->shards, s->nshards);
    memset(s, 0, sizeof *s);
}

static int source_open(const loader_opts *o, source *s, int count_shards) {
    memset(s, 0, sizeof *s);
    int rc = data_spec_kind(o->spec, o->type, &s->kind);
    if (rc) return rc;
    switch (s->kind) {
    case DATA_FMNIST:
        if ((rc = fmnist_load(NULL, o->spec + 7, &s->fm))) return rc;
        s->n = s->fm.n;
        return CG_OK;
    case DATA_CSV:
    case DATA_JSONL:
        rc = s->kind == DATA_CSV ? manifest_open_csv(o->spec, &o->manifest, &s->man)
                                 : manifest_open_jsonl(o->spec, &o->manifest, &s->man);
        if (rc) return rc;
        s->n = manifest_count(s->man);
        s->listing_skipped = manifest_skipped(s->man);
        if (s->n == 0) {
            rc = cg_error_set(CG_ERR_FORMAT, "%s: no usable sample (%" PRId64 " rows skipped)", o->spec, s->listing_skipped);
            source_close(s);
        }
        return rc;
    case DATA_WDS:
        if ((rc = wds_expand(o->spec, &s->shards, &s->nshards))) return rc;
        if (!count_shards) return CG_OK;
        for (int i = 0; i < s->nshards; i++) {
            int64_t c = 0;
            if (wds_count(s->shards[i], &c)) cg_log_warn("%s (counted %" PRId64 " samples before it)", cg_error_message(), c);
            s->n += c;
        }
        if (s->n == 0) {
            rc = cg_error_set(CG_ERR_FORMAT, "%s: no sample in %d shard%s", o->spec, s->nshards, s->nshards == 1 ? "" : "s");
            source_close(s);
        }
        return rc;
    }
    return CG_OK;
}

/* ------------------------------------------------------------------ deterministic draws */

static uint64_t mix3(uint64_t seed, uint64_t a, uint64_t b) {
    cg_rng r;
    cg_rng_seed(&r, seed ^ (0x9E3779B97F4A7C15ull * (a + 1)) ^ (0xD1B54A32D192ED03ull * (b + 1)));
    return cg_rng_u64(&r);
}

/* Fisher–Yates permutation of 0..n-1 for one epoch, from (seed, epoch) alone. */
static void epoch_permutation(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch, int shuffle) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    if (!shuffle) return;
    cg_rng r;
    cg_rng_seed(&r, mix3(seed, 0x5045524du, (uint64_t)epoch));
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)cg_rng_below(&r, (uint64_t)(i + 1));
        int64_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

/* ------------------------------------------------------------------ the shard stream (reader thread only) */

typedef struct {
    const source *src;
    uint64_t seed;
    int shuffle, buffer_cap;
    int64_t epoch, emitted;     /* emitted: positions handed out in this epoch */
    int *order, next_shard;
    wds_reader *r;
    const char *shard_name;
    wds_sample *buf;            /* shuffle buffer */
    int nbuf;
    cg_rng rng;
} shard_stream;

static void shard_stream_epoch(shard_stream *st, int64_t epoch) {
    st->epoch = epoch;
    st->emitted = 0;
    st->next_shard = 0;
    for (int i = 0; i < st->src->nshards; i++) st->order[i] = i;
    cg_rng_seed(&st->rng, mix3(st->seed, 0x57445321u, (uint64_t)epoch));
    if (st->shuffle)
        for (int i = st->src->nshards - 1; i > 0; i--) {
            int j = (int)cg_rng_below(&st->rng, (uint64_t)(i + 1));
            int t = st->order[i]; st->order[i] = st->order[j]; st->order[j] = t;
        }
}

static void shard_stream_init(shard_stream *st, const source *src, uint64_t seed, int shuffle, int buffer_cap) {
    memset(st, 0, sizeof *st);
    st->src = src;
    st->seed = seed;
    st->shuffle = shuffle;
    st->buffer_cap = shuffle ? (buffer_cap > 0 ? buffer_cap : 1000) : 1;
    st->order = cg_xmalloc((size_t)src->nshards * sizeof *st->order);
    st->buf = cg_xcalloc((size_t)st->buffer_cap, sizeof *st->buf);
    shard_stream_epoch(st, 0);
}

static void shard_stream_free(shard_stream *st) {
    if (st->r) wds_close(st->r);
    for (int i = 0; i < st->nbuf; i++) wds_sample_free(&st->buf[i]);
    free(st->buf);
    free(st->order);
    memset(st, 0, sizeof *st);
}

/* Read one sample from the shards of this epoch into *s: 1, or 0 when the epoch's shards are
 * exhausted. A shard that fails is warned about and left (its samples are unknown, so not counted). */
static int shard_stream_read(shard_stream *st, wds_sample *s) {
    for (;;) {
        if (!st->r) {
            if (st->next_shard >= st->src->nshards) return 0;
            st->shard_name = st->src->shards[st->order[st->next_shard++]];
            if (wds_open(st->shard_name, &st->r)) {
                cg_log_warn("skipping shard: %s", cg_error_message());
                st->r = NULL;
                continue;
            }
        }
        memset(s, 0, sizeof *s);
        int rc = wds_next(st->r, s);
        if (rc == 1) return 1;
        if (rc != 0) {
            cg_log_warn("shard left early: %s", cg_error_message());
        }
        wds_close(st->r);
        st->r = NULL;
    }
}

/* The next position's sample: fill the buffer, then draw one (train) or take the oldest. When
 * the epoch's shards are exhausted the next epoch begins; an epoch that yields nothing at all
 * means no shard is readable. */
static int shard_stream_next(shard_stream *st, wds_sample *out, int64_t *epoch, int64_t *k) {
    for (int round = 0; round < 2; round++) {
        while (st->nbuf < st->buffer_cap) {
            wds_sample s;
            if (!shard_stream_read(st, &s)) break;
            st->buf[st->nbuf++] = s;
        }
        if (st->nbuf > 0) {
            int j = st->shuffle ? (int)cg_rng_below(&st->rng, (uint64_t)st->nbuf) : 0;
            *out = st->buf[j];
            if (st->shuffle) st->buf[j] = st->buf[--st->nbuf];
            else memmove(st->buf, st->buf + 1, (size_t)--st->nbuf * sizeof *st->buf);
            *epoch = st->epoch;
            *k = st->emitted++;
            return CG_OK;
        }
        if (st->emitted == 0) break;
        shard_stream_epoch(st, st->epoch + 1);
    }
    return cg_error_set(CG_ERR_IO, "no sample could be read from any of the %d shards", st->src->nshards);
}

/* ------------------------------------------------------------------ the loader */

enum { SLOT_FREE, SLOT_RAW, SLOT_BUSY, SLOT_DONE };

typedef struct {
    int state;
    int64_t pos, epoch, id;     /* id: sample index (fmnist, manifests) or position in epoch (shards) */
    uint8_t *bytes;             /* shards: the encoded image */
    size_t nbytes;
    char *caption;              /* owned */
    char name[192];             /* for messages */
    int ok, label;
    char why[256];
    float *pixels;              /* 3 × S × S */
} slot;

struct loader {
    loader_opts o;
    char *spec, *type, *img_key, *caption_key, *image_tsv;   /* owned copies of o's strings */
    source src;
    transform_opts tf;
    int nslots, nworkers;
    slot *slots;
    pthread_t reader, *workers;
    pthread_mutex_t mu;
    pthread_cond_t cv_free, cv_raw, cv_done;
    int64_t next_fill, next_decode, next_consume;
    int stop, reader_failed;
    char reader_error[512];
    int64_t skipped, consecutive_skips;
    char **batch_captions;       /* the captions handed out by the last loader_next */
    int nbatch_captions, cap_batch_captions;
    int64_t *perm, perm_epoch;   /* reader: permutation of the current epoch */
    shard_stream st;
};

void loader_opts_defaults(loader_opts *o) {
    memset(o, 0, sizeof *o);
    o->type = "auto";
    o->image_size = 224;
    o->train = 1;
    o->workers = 2;
    o->batch_hint = 64;
    o->shuffle_buffer = 1000;
    o->scale_lo = 0.9f;
    o->scale_hi = 1.0f;
}

data_kind loader_kind(const loader *l) { return l->src.kind; }
int64_t loader_epoch_size(const loader *l) { return l->src.n; }

int64_t loader_position(const loader *l) {
    pthread_mutex_lock((pthread_mutex_t *)&l->mu);
    int64_t p = l->next_consume;
    pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
    return p;
}

int64_t loader_skipped(const loader *l) {
    pthread_mutex_lock((pthread_mutex_t *)&l->mu);
    int64_t s = l->skipped + l->src.listing_skipped;
    pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
    return s;
}

/* Fill a FREE slot with what sits at position p (reader thread, outside the lock). */
static int fill_slot(loader *l, slot *s, int64_t p) {
    s->pos = p;
    s->ok = 1;
    s->why[0] = 0;
    s->label = -1;
    if (l->src.kind == DATA_WDS) {
        wds_sample ws;
        int64_t epoch, k;
        int rc = shard_stream_next(&l->st, &ws, &epoch, &k);
        if (rc) return rc;
        s->epoch = epoch;
        s->id = k;
        snprintf(s->name, sizeof s->name, "%s:%s", l->st.shard_name ? l->st.shard_name : "?", ws.key ? ws.key : "?");
        s->bytes = ws.image;
        s->nbytes = ws.image_n;
        s->caption = ws.caption;
        if (!ws.ok) { s->ok = 0; snprintf(s->why, sizeof s->why, "%s", ws.why); }
        ws.image = NULL;
        ws.caption = NULL;
        wds_sample_free(&ws);
        return CG_OK;
    }
    int64_t n = l->src.n, epoch = p / n;
    if (epoch != l->perm_epoch) {
        epoch_permutation(l->perm, n, l->o.seed, epoch, l->o.train);
        l->perm_epoch = epoch;
    }
    s->epoch = epoch;
    s->id = l->perm[p % n];
    if (l->src.kind == DATA_FMNIST) {
        fmnist_lang lang = l->o.lang;
        int label = l->src.fm.labels[s->id];
        char buf[256];
        fmnist_caption(lang, label, fmnist_template_of(lang, l->o.seed, epoch, s->id), buf, sizeof buf);
        s->caption = cg_xstrdup(buf);
        s->label = label;
        snprintf(s->name, sizeof s->name, "%s #%" PRId64, l->o.spec, s->id);
    } else {
        s->caption = cg_xstrdup(manifest_caption(l->src.man, s->id));
        snprintf(s->name, sizeof s->name, "%s", manifest_image_name(l->src.man, s->id));
    }
    return CG_OK;
}

/* Skip positions [0, start) of the shard stream without decoding (resume). */
static int shard_stream_seek(loader *l, int64_t start) {
    int64_t n = l->src.n, epoch = start / n;
    if (epoch > 0) shard_stream_epoch(&l->st, epoch);
    for (int64_t k = epoch * n; k < start; k++) {
        wds_sample ws;
        int64_t e, kk;
        int rc = shard_stream_next(&l->st, &ws, &e, &kk);
        if (rc) return rc;
        wds_sample_free(&ws);
    }
    return CG_OK;
}

static void *reader_main(void *arg) {
    loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        int64_t p = l->next_fill;
        slot *s = &l->slots[p % l->nslots];
        while (!l->stop && s->state != SLOT_FREE) pthread_cond_wait(&l->cv_free, &l->mu);
        if (l->stop) break;
        pthread_mutex_unlock(&l->mu);
        int rc = fill_slot(l, s, p);
        pthread_mutex_lock(&l->mu);
        if (rc) {
            snprintf(l->reader_error, sizeof l->reader_error, "%s", cg_error_message());
            l->reader_failed = 1;
            pthread_cond_broadcast(&l->cv_done);
            break;
        }
        s->state = SLOT_RAW;
        l->next_fill = p + 1;
        pthread_cond_broadcast(&l->cv_raw);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Decode and transform one sample into s->pixels (worker thread, outside the lock). */
static void decode_slot(loader *l, slot *s, uint8_t *tmp) {
    if (!s->ok) return;
    if (l->src.kind == DATA_FMNIST) {
        fmnist_image(&l->src.fm, (int)s->id, l->o.image_size, l->o.train, l->o.seed, s->epoch, s->pixels);
        return;
    }
    if (!s->caption || !*s->caption) {
        s->ok = 0;
        snprintf(s->why, sizeof s->why, "empty caption");
        return;
    }
    uint8_t *bytes = s->bytes;
    size_t nbytes = s->nbytes;
    int rc = CG_OK;
    if (!bytes) rc = manifest_read_image(l->src.man, s->id, &bytes, &nbytes);
    int w = 0, h = 0;
    if (!rc) rc = image_probe(bytes, nbytes, s->name, &w, &h);
    cg_image img = {0};
    crop_box box = {0, 0, 0, 0};
    int flip = 0;
    if (!rc) {
        cg_rng r;
        cg_rng_seed(&r, mix3(l->o.seed, (uint64_t)s->epoch, (uint64_t)s->id));
        box = transform_plan(&l->tf, &r, w, h, &flip);
        /* decode small enough to save work, large enough that the crop keeps >= size pixels */
        image_decode_opts dopt = {0};
        transform_scale_hint(&l->tf, box, w, h, &dopt.scale_hint_w, &dopt.scale_hint_h);
        rc = image_decode(bytes, nbytes, s->name, &dopt, &img);
    }
    if (!rc) {
        transform_finish(&l->tf, img.rgb, img.w, img.h, box, (float)img.w / (float)w, (float)img.h / (float)h, flip, tmp,
                         s->pixels);
        image_free(&img);
    } else {
        s->ok = 0;
        snprintf(s->why, sizeof s->why, "%s", cg_error_message());
    }
    if (bytes != s->bytes) free(bytes);
}

static void *worker_main(void *arg) {
    loader *l = arg;
    uint8_t *tmp = cg_xmalloc((size_t)l->o.image_size * l->o.image_size * 3);
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->next_decode >= l->next_fill) pthread_cond_wait(&l->cv_raw, &l->mu);
        if (l->stop) break;
        slot *s = &l->slots[l->next_decode % l->nslots];
        l->next_decode++;
        s->state = SLOT_BUSY;
        pthread_mutex_unlock(&l->mu);
        decode_slot(l, s, tmp);
        free(s->bytes);
        s->bytes = NULL;
        pthread_mutex_lock(&l->mu);
        s->state = SLOT_DONE;
        pthread_cond_broadcast(&l->cv_done);
    }
    pthread_mutex_unlock(&l->mu);
    free(tmp);
    return NULL;
}

static char *dup_or_null(const char *s) { return s ? cg_xstrdup(s) : NULL; }

int loader_open(const loader_opts *o, int64_t start_position, loader **out) {
    *out = NULL;
    if (o->image_size < 1) return cg_error_set(CG_ERR_USAGE, "loader: image size %d", o->image_size);
    if (start_position < 0) return cg_error_set(CG_ERR_STATE, "loader: start position %" PRId64, start_position);
    loader *l = cg_xcalloc(1, sizeof *l);
    l->o = *o;
    l->o.spec = l->spec = dup_or_null(o->spec);
    l->o.type = l->type = dup_or_null(o->type);
    l->o.manifest.img_key = l->img_key = dup_or_null(o->manifest.img_key);
    l->o.manifest.caption_key = l->caption_key = dup_or_null(o->manifest.caption_key);
    l->o.manifest.image_tsv = l->image_tsv = dup_or_null(o->manifest.image_tsv);
    if (l->o.workers < 1) l->o.workers = 1;
    int rc = source_open(&l->o, &l->src, 1);
    if (rc) {
        free(l->spec); free(l->type); free(l->img_key); free(l->caption_key); free(l->image_tsv);
        free(l);
        return rc;
    }
    transform_opts_defaults(&l->tf, o->image_size, o->train);
    if (o->scale_lo > 0 && o->scale_hi >= o->scale_lo) { l->tf.scale_lo = o->scale_lo; l->tf.scale_hi = o->scale_hi; }
    l->tf.hflip = o->hflip;

    /* prefetch: two batches by default, bounded in memory */
    size_t per = (size_t)3 * o->image_size * o->image_size * sizeof(float);
    int want = o->prefetch > 0 ? o->prefetch : 2 * (o->batch_hint > 0 ? o->batch_hint : 64);
    if (want < 2 * l->o.workers) want = 2 * l->o.workers;
    if ((size_t)want * per > LOADER_MAX_PREFETCH_BYTES && o->prefetch <= 0) {
        want = (int)(LOADER_MAX_PREFETCH_BYTES / per);
        if (want < 2 * l->o.workers) want = 2 * l->o.workers;
    }
    l->nslots = want;
    l->slots = cg_xcalloc((size_t)l->nslots, sizeof *l->slots);
    for (int i = 0; i < l->nslots; i++) l->slots[i].pixels = cg_xmalloc(per);

    if (l->src.kind == DATA_WDS) {
        shard_stream_init(&l->st, &l->src, o->seed, o->train, o->shuffle_buffer);
        if ((rc = shard_stream_seek(l, start_position))) {
            loader_close(l);
            return rc;
        }
    } else {
        l->perm = cg_xmalloc((size_t)l->src.n * sizeof *l->perm);
        l->perm_epoch = -1;
    }
    l->next_fill = l->next_decode = l->next_consume = start_position;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_free, NULL);
    pthread_cond_init(&l->cv_raw, NULL);
    pthread_cond_init(&l->cv_done, NULL);
    l->nworkers = l->o.workers;
    l->workers = cg_xcalloc((size_t)l->nworkers, sizeof *l->workers);
    pthread_create(&l->reader, NULL, reader_main, l);
    for (int i = 0; i < l->nworkers; i++) pthread_create(&l->workers[i], NULL, worker_main, l);
    *out = l;
    return CG_OK;
}

void loader_close(loader *l) {
    if (!l) return;
    if (l->workers) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv_free);
        pthread_cond_broadcast(&l->cv_raw);
        pthread_cond_broadcast(&l->cv_done);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->reader, NULL);
        for (int i = 0; i < l->nworkers; i++) pthread_join(l->workers[i], NULL);
        free(l->workers);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv_free);
        pthread_cond_destroy(&l->cv_raw);
        pthread_cond_destroy(&l->cv_done);
    }
    for (int i = 0; i < l->nslots; i++) {
        free(l->slots[i].pixels);
        free(l->slots[i].bytes);
        free(l->slots[i].caption);
    }
    free(l->slots);
    for (int i = 0; i < l->nbatch_captions; i++) free(l->batch_captions[i]);
    free(l->batch_captions);
    if (l->src.kind == DATA_WDS && l->st.order) shard_stream_free(&l->st);
    free(l->perm);
    source_close(&l->src);
    free(l->spec); free(l->type); free(l->img_key); free(l->caption_key); free(l->image_tsv);
    free(l);
}

int loader_next(loader *l, int B, float *images, const char **captions, int *labels) {
    size_t plane = (size_t)3 * l->o.image_size * l->o.image_size;
    for (int i = 0; i < l->nbatch_captions; i++) free(l->batch_captions[i]);
    if (l->cap_batch_captions < B) {
        l->batch_captions = cg_xrealloc(l->batch_captions, (size_t)B * sizeof *l->batch_captions);
        l->cap_batch_captions = B;
    }
    l->nbatch_captions = 0;
    pthread_mutex_lock(&l->mu);
    int got = 0, rc = CG_OK;
    while (got < B) {
        slot *s = &l->slots[l->next_consume % l->nslots];
        while (!(s->state == SLOT_DONE && s->pos == l->next_consume) && !l->reader_failed)
            pthread_cond_wait(&l->cv_done, &l->mu);
        if (!(s->state == SLOT_DONE && s->pos == l->next_consume)) {
            rc = cg_error_set(CG_ERR_IO, "%s: %s", l->o.spec, l->reader_error);
            break;
        }
        if (s->ok) {
            memcpy(images + (size_t)got * plane, s->pixels, plane * sizeof *images);
            l->batch_captions[got] = s->caption;
            s->caption = NULL;
            captions[got] = l->batch_captions[got];
            if (labels) labels[got] = s->label;
            got++;
            l->nbatch_captions = got;
            l->consecutive_skips = 0;
        } else {
            l->skipped++;
            l->consecutive_skips++;
            if (l->skipped <= LOADER_WARN_FIRST || l->skipped % 1000 == 0)
            {
                if (strstr(s->why, s->name))   /* the reason already names the file */
                    cg_log_warn("skipped a sample (%" PRId64 " so far): %s", l->skipped, s->why);
                else
                    cg_log_warn("skipped sample %s (%" PRId64 " so far): %s", s->name, l->skipped, s->why);
            }
            free(s->caption);
            s->caption = NULL;
        }
        s->state = SLOT_FREE;
        l->next_consume++;
        pthread_cond_broadcast(&l->cv_free);
        if (l->consecutive_skips > l->src.n) {
            rc = cg_error_set(CG_ERR_FORMAT, "%s: no usable sample in a whole epoch (%" PRId64 " in a row skipped; "
                              "the last: %s)", l->o.spec, l->consecutive_skips, s->why);
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

int loader_captions(const loader_opts *o, int max, char ***texts, int *n) {
    source s;
    int rc = source_open(o, &s, 0);
    *texts = NULL;
    *n = 0;
    if (rc) return rc;
    char **t = cg_xcalloc((size_t)(max > 0 ? max : 1), sizeof *t);
    int k = 0;
    if (s.kind == DATA_FMNIST) {
        for (int i = 0; i < s.fm.n && k < max; i++) {
            char buf[256];
            fmnist_caption(o->lang, s.fm.labels[i], fmnist_template_of(o->lang, o->seed, 0, i), buf, sizeof buf);
            t[k++] = cg_xstrdup(buf);
        }
    } else if (s.kind != DATA_WDS) {
        for (int64_t i = 0; i < s.n && k < max; i++) t[k++] = cg_xstrdup(manifest_caption(s.man, i));
    } else {
        for (int i = 0; i < s.nshards && k < max; i++) {
            wds_reader *r;
            if (wds_open(s.shards[i], &r)) { cg_log_warn("%s", cg_error_message()); continue; }
            wds_sample ws;
            memset(&ws, 0, sizeof ws);
            while (k < max && wds_next(r, &ws) == 1) {
                if (ws.caption && *ws.caption) t[k++] = cg_xstrdup(ws.caption);
                wds_sample_free(&ws);
                memset(&ws, 0, sizeof ws);
            }
            wds_close(r);
        }
    }
    source_close(&s);
    if (k == 0) {
        free(t);
        return cg_error_set(CG_ERR_FORMAT, "%s: no caption to learn a vocabulary from", o->spec);
    }
    *texts = t;
    *n = k;
    return CG_OK;
}
