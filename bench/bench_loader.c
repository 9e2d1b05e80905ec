/* bench_loader — images/s out of the threaded loader (data/loader.h) for a --data spec, for
 * each worker count asked: decode + random resized crop + flip + normalise, in train mode, the
 * way `clipgrid train` consumes it (batches in position order). Prints one JSON line per count.
 *
 *   bench_loader --data SPEC [--size 224] [--batch 64] [--batches 20] [--workers 1,2,4]
 *
 * Only the loader runs: no model, so the figure is the most the loader can feed a trainer. The
 * first batch (thread start, prefetch fill) is left out of the timing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/log.h"
#include "data/loader.h"

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

int main(int argc, char **argv) {
    const char *spec = NULL, *workers = "1,2";
    int size = 224, batch = 64, batches = 20;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--data")) spec = argv[i + 1];
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batches")) batches = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--workers")) workers = argv[i + 1];
        else { fprintf(stderr, "bench_loader: unknown option %s\n", argv[i]); return 2; }
    }
    if (!spec || size < 16 || batch < 1 || batches < 2) {
        fprintf(stderr, "usage: bench_loader --data SPEC [--size 224] [--batch 64] [--batches 20] [--workers 1,2,4]\n");
        return 2;
    }
    float *images = cg_xmalloc((size_t)batch * 3 * size * size * sizeof *images);
    const char **caps = cg_xmalloc((size_t)batch * sizeof *caps);
    char *list = cg_xstrdup(workers);
    for (char *w = strtok(list, ","); w; w = strtok(NULL, ",")) {
        loader_opts o;
        loader_opts_defaults(&o);
        o.spec = spec;
        o.image_size = size;
        o.workers = atoi(w);
        o.batch_hint = batch;
        o.hflip = 1;
        loader *l;
        if (loader_open(&o, 0, &l)) { fprintf(stderr, "bench_loader: %s\n", cg_error_message()); return 1; }
        if (loader_next(l, batch, images, caps, NULL)) { fprintf(stderr, "bench_loader: %s\n", cg_error_message()); return 1; }
        double t0 = now_s();
        for (int b = 1; b < batches; b++)
            if (loader_next(l, batch, images, caps, NULL)) { fprintf(stderr, "bench_loader: %s\n", cg_error_message()); return 1; }
        double dt = now_s() - t0;
        printf("{\"data\": \"%s\", \"workers\": %d, \"size\": %d, \"batch\": %d, \"images\": %d, \"seconds\": %.3f, "
               "\"images_per_s\": %.1f, \"skipped\": %lld}\n", spec, o.workers, size, batch, (batches - 1) * batch, dt,
               (batches - 1) * batch / dt, (long long)loader_skipped(l));
        fflush(stdout);
        loader_close(l);
    }
    free(list);
    free(images);
    free(caps);
    return 0;
}
