/* Learning test (label "slow"; not run under the sanitizers): a small CLIP trained on
 * Fashion-MNIST captions for a fixed budget reaches a zero-shot top-1 far above chance (10%). */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"

static double train_and_score(const char *dir, const char *text_encoder) {
    char *out = cg_path_join(dir, text_encoder[0] == 'c' ? "clip" : "bert");
    pid_t pid = fork();
    if (pid == 0) {
        execl(CLIPGRID_BIN, CLIPGRID_BIN, "train", "--image-encoder", "starnet_s050", "--text-encoder", text_encoder,
              "--batch-size", "64", "--image-size", "32", "--context-length", "24", "--steps", "120", "--lr", "1e-3",
              "--eval-samples", "1000", "--log-every", "40", "--threads", "2", "--out", out, (char *)NULL);
        _exit(127);
    }
    int ws;
    waitpid(pid, &ws, 0);
    CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    char *rp = cg_path_join(out, "result.json");
    cg_json_doc doc;
    double top1 = -1;
    if (cg_json_load(rp, &doc) == CG_OK) {
        top1 = cJSON_GetObjectItem(doc.root, "zeroshot_top1")->valuedouble;
        cg_json_free(&doc);
    }
    fprintf(stderr, "    starnet_s050 x %s, 120 steps of 64: zero-shot top-1 %.4f on 1000 test images\n", text_encoder, top1);
    free(rp);
    free(out);
    return top1;
}

static void test_clip_tiny_learns(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/learn_XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(dir)) { CHECK(0); return; }
    CHECK(train_and_score(dir, "clip:tiny") >= 0.5);
}

static void test_bert_tiny_learns(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/learn_XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(dir)) { CHECK(0); return; }
    CHECK(train_and_score(dir, "bert:tiny") >= 0.5);
}

int main(void) {
    TEST_RUN(test_clip_tiny_learns);
    TEST_RUN(test_bert_tiny_learns);
    return TEST_REPORT();
}
