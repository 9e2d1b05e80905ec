#include "train/metrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"

static double wall_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static FILE *open_append(const char *dir, const char *name, const char *header, int *rc) {
    char *path = cg_path_join(dir, name);
    int fresh = !cg_file_exists(path);
    FILE *f = fopen(path, "a");
    if (!f) *rc = cg_error_set(CG_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    else if (fresh && header) fputs(header, f);
    free(path);
    return f;
}

int metrics_open(metrics_log *m, const char *dir) {
    memset(m, 0, sizeof *m);
    int rc = cg_mkdir_p(dir);
    if (rc) return rc;
    m->dir = cg_xstrdup(dir);
    m->csv = open_append(dir, "metrics.csv", "step,wall_time,tag,value\n", &rc);
    if (!rc) m->jsonl = open_append(dir, "metrics.jsonl", NULL, &rc);
    if (!rc) rc = tb_open(&m->tb, dir);
    if (rc) metrics_close(m);
    return rc;
}

int metrics_write(metrics_log *m, int64_t step, const char *const *tags, const double *values, int n) {
    double t = wall_now();
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddNumberToObject(obj, "step", (double)step);
    cJSON_AddNumberToObject(obj, "wall_time", t);
    int rc = CG_OK;
    for (int i = 0; i < n; i++) {
        fprintf(m->csv, "%lld,%.3f,%s,%.9g\n", (long long)step, t, tags[i], values[i]);
        cJSON_AddNumberToObject(obj, tags[i], values[i]);
        if (!rc) rc = tb_add_scalar(&m->tb, tags[i], step, (float)values[i]);
    }
    char *line = cg_json_print(obj, 0);
    fprintf(m->jsonl, "%s\n", line);
    free(line);
    cJSON_Delete(obj);
    if ((fflush(m->csv) != 0 || fflush(m->jsonl) != 0) && !rc)
        rc = cg_error_set(CG_ERR_IO, "cannot write metrics in %s: %s", m->dir, strerror(errno));
    return rc;
}

void metrics_close(metrics_log *m) {
    if (m->csv) fclose(m->csv);
    if (m->jsonl) fclose(m->jsonl);
    tb_close(&m->tb);
    free(m->dir);
    memset(m, 0, sizeof *m);
}

int metrics_progress(const char *dir, int64_t step, int64_t total_steps, double loss, double eta_s,
                     double images_per_s) {
    char *path = cg_path_join(dir, "progress.json");
    char *text = cg_xasprintf("{\"step\": %lld, \"total_steps\": %lld, \"loss\": %.6g, \"eta_s\": %.1f, "
                              "\"images_per_s\": %.1f}\n", (long long)step, (long long)total_steps, loss, eta_s,
                              images_per_s);
    int rc = cg_file_write_atomic(path, text, strlen(text));
    free(text);
    free(path);
    return rc;
}
