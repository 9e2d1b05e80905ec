/* run_train_clip.sh, the original launcher's interface: with the seed's example variables it
 * produces exactly the plan of the equivalent `clipgrid run --dry-run`; USE_MULTI_CONFIG=false
 * runs the configs one after another in one slot; bad variables are errors naming them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "capture.h"
#include "check.h"
#include "core/log.h"

#define REPO TEST_SOURCE_DIR "/.."

static void test_same_plan_as_clipgrid(void) {
    int s1, s2;
    char *script = test_capture("cd " REPO " && CLIPGRID=" CLIPGRID_BIN " bash run_train_clip.sh --dry-run 2>/dev/null", &s1);
    char *direct = test_capture("cd " REPO " && " CLIPGRID_BIN " run --config configs/seed_example.json --gpus 5 "
                           "--image-encoders starnet_s1,starnet_s2,starnet_s3,starnet_s4 "
                           "--text-encoders clip:ViT-B/32,bert-base-chinese "
                           "--log-dir logs/clip_training --out-dir checkpoints/clip_models --dry-run", &s2);
    CHECK_EQ_INT(s1, 0);
    CHECK_EQ_INT(s2, 0);
    CHECK(strstr(direct, "plan: 8 configs to run on 1 slot (GPUs 5 x 1 job each)") != NULL);
    CHECK(strlen(script) > 500);
    if (strcmp(script, direct) != 0) {
        fprintf(stderr, "---- run_train_clip.sh ----\n%s---- clipgrid run ----\n%s----\n", script, direct);
        CHECK(0);
    }
    free(script);
    free(direct);
    /* it says which clipgrid command it runs */
    char *err = test_capture("cd " REPO " && CLIPGRID=" CLIPGRID_BIN " bash run_train_clip.sh --dry-run 2>&1 >/dev/null", &s1);
    CHECK(strstr(err, "run --config configs/seed_example.json --gpus 5 --image-encoders "
                      "starnet_s1,starnet_s2,starnet_s3,starnet_s4") != NULL);
    free(err);
}

/* USE_MULTI_CONFIG=false: one slot even with two GPUs; true: both GPUs. The GPUS line of a
 * copy of the script is edited, as a user would. */
static void test_multi_config_switch(void) {
    int st;
    char *out = test_capture("cd " REPO " && tmp=$(mktemp -d) && sed 's/^GPUS=(5)/GPUS=(0 1)/' run_train_clip.sh > $tmp/r.sh && "
                        "cp -r configs $tmp/ && CLIPGRID=" CLIPGRID_BIN " USE_MULTI_CONFIG=false bash $tmp/r.sh --dry-run "
                        "2>/dev/null; rm -rf $tmp", &st);
    CHECK_EQ_INT(st, 0);
    CHECK(strstr(out, "plan: 8 configs to run on 1 slot (GPUs 0,1 x 1 job each)") != NULL);
    free(out);
    out = test_capture("cd " REPO " && tmp=$(mktemp -d) && sed 's/^GPUS=(5)/GPUS=(0 1)/' run_train_clip.sh > $tmp/r.sh && "
                  "cp -r configs $tmp/ && CLIPGRID=" CLIPGRID_BIN " bash $tmp/r.sh --dry-run 2>/dev/null; rm -rf $tmp", &st);
    CHECK_EQ_INT(st, 0);
    CHECK(strstr(out, "plan: 8 configs to run on 2 slots (GPUs 0,1 x 1 job each)") != NULL);
    free(out);
}

static void test_bad_variables(void) {
    int st;
    char *err = test_capture("cd " REPO " && CLIPGRID=" CLIPGRID_BIN " USE_MULTI_CONFIG=yes bash run_train_clip.sh --dry-run 2>&1",
                        &st);
    CHECK_EQ_INT(st, 2);
    CHECK(strstr(err, "USE_MULTI_CONFIG=yes") != NULL);
    free(err);
    err = test_capture("cd " REPO " && CLIPGRID=" CLIPGRID_BIN " CONFIG_FILE=nope.json bash run_train_clip.sh --dry-run 2>&1", &st);
    CHECK_EQ_INT(st, 2);
    CHECK(strstr(err, "CONFIG_FILE=nope.json: no such file") != NULL);
    free(err);
}

int main(void) {
    TEST_RUN(test_same_plan_as_clipgrid);
    TEST_RUN(test_multi_config_switch);
    TEST_RUN(test_bad_variables);
    return TEST_REPORT();
}
