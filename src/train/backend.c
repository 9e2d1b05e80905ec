/* backend.c — choosing and loading a training backend (train/backend.h).
 *
 * "cpu" is linked in. "cuda" is the plugin libclipgrid-cuda.so: dlopen'ed once, on first use, with
 * RTLD_NOW (a missing cuBLAS or CUDA runtime shows up here, by name, not in the middle of a run),
 * its entry point called once, and its table checked against TRAIN_BACKEND_ABI so a plugin from
 * another build is refused instead of misreading the arguments.
 */
#include "train/backend.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"

int train_precision_parse(const char *s, train_precision *p) {
    if (s && !strcmp(s, "fp32")) *p = TRAIN_PREC_FP32;
    else if (s && !strcmp(s, "bf16")) *p = TRAIN_PREC_BF16;
    else return cg_error_set(CG_ERR_USAGE, "--precision %s: fp32 or bf16", s ? s : "(none)");
    return CG_OK;
}

const char *train_precision_name(train_precision p) { return p == TRAIN_PREC_BF16 ? "bf16" : "fp32"; }

/* ------------------------------------------------------------------ the CUDA plugin */

/* Where the plugin may be, in order: $CLIPGRID_CUDA_BACKEND, next to the executable (the build
 * tree), <prefix>/lib/clipgrid/ (an install). n_out candidates written. */
static int plugin_candidates(char cand[3][PATH_MAX + 64], int *n_out) {
    int n = 0;
    const char *env = getenv("CLIPGRID_CUDA_BACKEND");
    if (env && *env) {   /* a bare name is a file here, not a library-path search as dlopen would make it */
        snprintf(cand[n++], PATH_MAX + 64, "%s%s", strchr(env, '/') ? "" : "./", env);
        *n_out = n;
        return CG_OK;
    }
    char exe[PATH_MAX];
    if (cg_self_exe(exe, sizeof exe, 1) == 0) {
        snprintf(cand[n++], PATH_MAX + 64, "%s/%s", exe, TRAIN_BACKEND_CUDA_LIBRARY);
        snprintf(cand[n++], PATH_MAX + 64, "%s/../lib/clipgrid/%s", exe, TRAIN_BACKEND_CUDA_LIBRARY);
    }
    *n_out = n;
    return CG_OK;
}

/* Loaded once and never unloaded: the CUDA runtime inside registers exit handlers. A handle
 * refused by the checks below is not closed either (the process is about to stop with exit 3). */
static int plugin_load(const train_backend_ops **ops, void **dl) {
    static void *loaded;
    static const train_backend_ops *loaded_ops;
    if (loaded) {
        *ops = loaded_ops;
        *dl = loaded;
        return CG_OK;
    }
    char cand[3][PATH_MAX + 64];
    int n = 0;
    plugin_candidates(cand, &n);
    const char *found = NULL;
    for (int i = 0; i < n && !found; i++)
        if (cg_file_exists(cand[i])) found = cand[i];
    if (!found)
        return cg_error_set(CG_ERR_DEVICE, "--device cuda: this clipgrid has no CUDA backend (no %s at %s%s%s); build it "
                            "where nvcc is installed, or set CLIPGRID_CUDA_BACKEND", TRAIN_BACKEND_CUDA_LIBRARY,
                            n > 0 ? cand[0] : "?", n > 1 ? " or " : "", n > 1 ? cand[1] : "");
    void *h = dlopen(found, RTLD_NOW | RTLD_LOCAL);
    if (!h) return cg_error_set(CG_ERR_DEVICE, "--device cuda: cannot load %s: %s", found, dlerror());
    train_backend_entry_fn entry = (train_backend_entry_fn)dlsym(h, TRAIN_BACKEND_CUDA_ENTRY);
    if (!entry)
        return cg_error_set(CG_ERR_DEVICE, "--device cuda: %s has no %s (not a clipgrid backend)", found,
                            TRAIN_BACKEND_CUDA_ENTRY);
    const train_backend_ops *t = entry();
    if (!t || t->abi != TRAIN_BACKEND_ABI)
        return cg_error_set(CG_ERR_DEVICE, "--device cuda: %s speaks backend ABI %d, this clipgrid %d (a plugin from "
                            "another build: rebuild both)", found, t ? t->abi : -1, TRAIN_BACKEND_ABI);
    if (t->layout_id != train_backend_layout_id())
        return cg_error_set(CG_ERR_DEVICE, "--device cuda: %s was built with other model structures than this clipgrid "
                            "(layout %016llx, here %016llx): rebuild both", found, (unsigned long long)t->layout_id,
                            (unsigned long long)train_backend_layout_id());
    loaded = h;
    loaded_ops = t;
    *ops = t;
    *dl = h;
    return CG_OK;
}

static int ops_for(const char *device, const train_backend_ops **ops, void **dl) {
    *dl = NULL;
    if (!device || !strcmp(device, "cpu")) {
        *ops = train_backend_cpu_ops();
        return CG_OK;
    }
    if (!strcmp(device, "cuda")) return plugin_load(ops, dl);
    return cg_error_set(CG_ERR_USAGE, "--device %s: cpu or cuda", device);
}

/* ------------------------------------------------------------------ the public calls */

int train_backend_probe(const char *device, int device_index, char *what, size_t n) {
    const train_backend_ops *ops;
    void *dl;
    int rc = ops_for(device, &ops, &dl);
    return rc ? rc : ops->probe(device_index, what, n);
}

int train_backend_open(const char *device, const train_backend_args *a, train_backend *b) {
    memset(b, 0, sizeof *b);
    int rc = ops_for(device, &b->ops, &b->dl);
    if (rc) return rc;
    b->args = *a;
    b->args.abi = TRAIN_BACKEND_ABI;
    b->args.args_size = sizeof b->args;
    if (b->args.accum_steps < 1) b->args.accum_steps = 1;
    rc = b->ops->create(&b->args, &b->h);
    if (rc) memset(b, 0, sizeof *b);
    return rc;
}

void train_backend_close(train_backend *b) {
    if (!b->ops) return;
    if (b->h) b->ops->destroy(b->h);
    /* the plugin stays loaded (plugin_load) */
    memset(b, 0, sizeof *b);
}

int train_backend_step(train_backend *b, const float *images, const int32_t *ids, float lr, train_step_result *r) {
    return b->ops->step(b->h, images, ids, lr, r);
}

int train_backend_encode_images(train_backend *b, const float *images, int n, float *emb) {
    return b->ops->encode_images(b->h, images, n, emb);
}

int train_backend_encode_texts(train_backend *b, const int32_t *ids, int n, float *emb) {
    return b->ops->encode_texts(b->h, ids, n, emb);
}

int train_backend_to_host(train_backend *b) { return b->ops->to_host(b->h); }

void train_backend_info_get(train_backend *b, train_backend_info *i) { b->ops->info(b->h, i); }
