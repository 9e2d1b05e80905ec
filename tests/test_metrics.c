/* Tests for src/train/metrics.c: the three metric files and progress.json, including append on
 * resume. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"
#include "train/metrics.h"

static void test_files_and_resume(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/metrics_XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(dir)) { CHECK(0); return; }
    metrics_log m;
    CHECK_EQ_INT(metrics_open(&m, dir), CG_OK);
    const char *tags[2] = {"train/loss", "train/lr"};
    double v1[2] = {2.5, 1e-3}, v2[2] = {2.25, 9e-4};
    CHECK_EQ_INT(metrics_write(&m, 10, tags, v1, 2), CG_OK);
    CHECK_EQ_INT(metrics_write(&m, 20, tags, v2, 2), CG_OK);
    metrics_close(&m);
    /* resume: a second writer appends (and starts a new event file) */
    CHECK_EQ_INT(metrics_open(&m, dir), CG_OK);
    const char *vt[1] = {"val/image_to_text_R@1"};
    double vv[1] = {0.5};
    CHECK_EQ_INT(metrics_write(&m, 30, vt, vv, 1), CG_OK);
    metrics_close(&m);
    char *csvp = cg_path_join(dir, "metrics.csv"), *csv;
    CHECK_EQ_INT(cg_file_read(csvp, &csv, NULL), CG_OK);
    CHECK(!strncmp(csv, "step,wall_time,tag,value\n10,", 28));
    CHECK(strstr(csv, ",train/loss,2.25\n") != NULL);
    CHECK(strstr(csv, "30,") && strstr(csv, ",val/image_to_text_R@1,0.5\n"));
    int lines = 0;
    for (char *p = csv; *p; p++) lines += *p == '\n';
    CHECK_EQ_INT(lines, 1 + 5);  /* one header, even after resuming */
    char *jp = cg_path_join(dir, "metrics.jsonl"), *jl;
    CHECK_EQ_INT(cg_file_read(jp, &jl, NULL), CG_OK);
    char *second = strchr(jl, '\n') + 1;
    *strchr(second, '\n') = 0;
    cJSON *o = cJSON_Parse(second);
    CHECK(o && cJSON_GetObjectItem(o, "step")->valueint == 20);
    CHECK(o && cJSON_GetObjectItem(o, "train/loss")->valuedouble == 2.25);
    cJSON_Delete(o);
    CHECK_EQ_INT(metrics_progress(dir, 50, 100, 1.5, 42.0, 1234.5), CG_OK);
    char *pp = cg_path_join(dir, "progress.json");
    cg_json_doc doc;
    CHECK_EQ_INT(cg_json_load(pp, &doc), CG_OK);
    CHECK(cJSON_GetObjectItem(doc.root, "total_steps")->valueint == 100);
    CHECK(cJSON_GetObjectItem(doc.root, "eta_s")->valuedouble == 42.0);
    cg_json_free(&doc);
    free(csvp); free(csv); free(jp); free(jl); free(pp);
}

int main(void) {
    TEST_RUN(test_files_and_resume);
    return TEST_REPORT();
}
