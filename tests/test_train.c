/* End-to-end tests of `clipgrid train` and `clipgrid eval`: the real binary on Fashion-MNIST
 * (tiny configurations: starnet_s050 x clip:tiny / bert:tiny, 32 px, batch 8). */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"

static char root[256];

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* Start clipgrid with args (NULL-terminated); output to OUT_DIR-independent files in root. */
static pid_t start(const char *log_name, const char *const *args) {
    pid_t pid = fork();
    if (pid == 0) {
        char *lp = cg_path_join(root, log_name);
        int fd = open(lp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        const char *argv[64];
        int n = 0;
        argv[n++] = CLIPGRID_BIN;
        for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
        argv[n] = NULL;
        setenv("OMP_NUM_THREADS", "2", 1);
        execv(CLIPGRID_BIN, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int finish(pid_t pid) {
    int ws;
    waitpid(pid, &ws, 0);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static int run(const char *log_name, const char *const *args) { return finish(start(log_name, args)); }

static char *read_text(const char *path) {
    char *t;
    return cg_file_read(path, &t, NULL) == CG_OK ? t : cg_xstrdup("");
}

static char *in(const char *dir, const char *name) { return cg_path_join(dir, name); }

static void show_log(const char *name) {
    char *p = cg_path_join(root, name), *t = read_text(p);
    fprintf(stderr, "---- %s ----\n%s----\n", name, t);
    free(p);
    free(t);
}

/* The last "train/loss" logged for each step 1..n, as printed in metrics.jsonl. */
static void losses(const char *dir, char out[][40], int n) {
    char *p = in(dir, "metrics.jsonl"), *t = read_text(p);
    for (int i = 0; i < n; i++) out[i][0] = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *s = cJSON_GetObjectItem(o, "step"), *l = cJSON_GetObjectItem(o, "train/loss");
        if (cJSON_IsNumber(s) && cJSON_IsNumber(l) && s->valueint >= 1 && s->valueint <= n)
            snprintf(out[s->valueint - 1], 40, "%.9g", l->valuedouble);
        cJSON_Delete(o);
    }
    free(t);
    free(p);
}

#define COMMON "--image-encoder", "starnet_s050", "--batch-size", "8", "--image-size", "32", "--context-length", "24", \
               "--eval-samples", "200", "--log-every", "1", "--threads", "2"

static void test_run_leaves_its_files(void) {
    char *out = in(root, "files");
    const char *args[] = {"train", COMMON, "--text-encoder", "bert:tiny", "--steps", "6", "--save-every", "3",
                          "--out", out, NULL};
    int rc = run("files.log", args);
    CHECK_EQ_INT(rc, 0);
    const char *files[] = {"config.json", "vocab.txt", "metrics.csv", "metrics.jsonl", "progress.json", "result.json",
                           "checkpoints/latest", "checkpoints/step_6.safetensors", "checkpoints/state_6.safetensors",
                           "checkpoints/step_3.safetensors", NULL};
    for (int i = 0; files[i]; i++) {
        char *p = in(out, files[i]);
        if (!cg_file_exists(p)) fprintf(stderr, "  missing %s\n", p);
        CHECK(cg_file_exists(p));
        free(p);
    }
    char *lp = in(out, "checkpoints/latest"), *latest = read_text(lp);
    CHECK_EQ_STR(latest, "6\n");
    char *rp = in(out, "result.json");
    cg_json_doc doc;
    CHECK_EQ_INT(cg_json_load(rp, &doc), CG_OK);
    double top1 = cJSON_GetObjectItem(doc.root, "zeroshot_top1")->valuedouble;
    CHECK(top1 >= 0 && top1 <= 1);
    CHECK(cJSON_GetObjectItem(doc.root, "images_per_s")->valuedouble > 0);
    CHECK(cJSON_GetObjectItem(doc.root, "image_to_text_R@1") != NULL);
    cg_json_free(&doc);
    char *csvp = in(out, "metrics.csv"), *csv = read_text(csvp);
    CHECK(strstr(csv, ",train/loss,") && strstr(csv, ",train/lr,") && strstr(csv, ",val/fmnist-zeroshot-top1,"));
    /* clipgrid eval reproduces the run's final zero-shot accuracy from the checkpoint */
    const char *eargs[] = {"eval", "--checkpoint", out, "--eval-samples", "200", "--threads", "2", NULL};
    CHECK_EQ_INT(run("files_eval.log", eargs), 0);
    char *ep = cg_path_join(root, "files_eval.log"), *et = read_text(ep);
    char want[64];
    snprintf(want, sizeof want, "\"fmnist-zeroshot-top1\":\t%g", top1);
    if (!strstr(et, want)) fprintf(stderr, "  eval printed:\n%s\n  wanted %s\n", et, want);
    CHECK(strstr(et, want) != NULL);
    CHECK(strstr(et, "\"device\":\t\"cpu\"") && strstr(et, "\"precision\":\t\"fp32\""));
    /* the evaluation's device flags: bf16 is not a CPU precision, an unknown device is named */
    const char *e_bf16[] = {"eval", "--checkpoint", out, "--precision", "bf16", NULL};
    CHECK_EQ_INT(run("files_eval_bad.log", e_bf16), 2);
    char *bp = cg_path_join(root, "files_eval_bad.log"), *bt = read_text(bp);
    CHECK(strstr(bt, "--precision bf16: the CPU evaluates in fp32 only") != NULL);
    const char *e_tpu[] = {"eval", "--checkpoint", out, "--device", "tpu", NULL};
    CHECK_EQ_INT(run("files_eval_bad.log", e_tpu), 2);
    free(bt);
    bt = read_text(bp);
    CHECK(strstr(bt, "--device tpu: cpu or cuda") != NULL);
    free(bp); free(bt);
    if (check_failures_now) show_log("files.log");
    free(out); free(lp); free(latest); free(rp); free(csvp); free(csv); free(ep); free(et);
}

/* N steps straight == N/2 steps, kill -9, --resume, the rest: the same losses, bit for bit,
 * and byte-identical final checkpoints. `data`: the --data spec (Fashion-MNIST or exported files). */
static void resume_is_exact(const char *data, const char *name) {
    char *a = cg_xasprintf("%s/straight_%s", root, name), *b = cg_xasprintf("%s/resumed_%s", root, name);
    const char *args_a[] = {"train", COMMON, "--text-encoder", "clip:tiny", "--steps", "8", "--save-every", "4",
                            "--data", data, "--workers", "3", "--out", a, NULL};
    CHECK_EQ_INT(run("straight.log", args_a), 0);
    const char *args_b[] = {"train", COMMON, "--text-encoder", "clip:tiny", "--steps", "8", "--save-every", "4",
                            "--data", data, "--workers", "1", "--out", b, NULL};
    pid_t pid = start("resumed.log", args_b);
    char *lp = in(b, "checkpoints/latest");
    double t0 = now_s();
    for (;;) {  /* kill it as soon as step 4 is saved */
        char *t = read_text(lp);
        int at4 = !strcmp(t, "4\n");
        free(t);
        if (at4 || now_s() - t0 > 300) break;
        usleep(2000);
    }
    kill(pid, SIGKILL);
    finish(pid);
    const char *args_r[] = {"train", COMMON, "--text-encoder", "clip:tiny", "--steps", "8", "--save-every", "4",
                            "--data", data, "--workers", "2", "--out", b, "--resume", NULL};
    CHECK_EQ_INT(run("resumed.log", args_r), 0);
    char la[8][40], lb[8][40];
    losses(a, la, 8);
    losses(b, lb, 8);
    for (int i = 0; i < 8; i++) {
        if (strcmp(la[i], lb[i])) fprintf(stderr, "  step %d: %s vs %s\n", i + 1, la[i], lb[i]);
        CHECK(la[i][0] && !strcmp(la[i], lb[i]));
    }
    char *ca = in(a, "checkpoints/step_8.safetensors"), *cb = in(b, "checkpoints/step_8.safetensors");
    char *da, *db;
    size_t na = 0, nb = 0;
    CHECK_EQ_INT(cg_file_read(ca, &da, &na), CG_OK);
    CHECK_EQ_INT(cg_file_read(cb, &db, &nb), CG_OK);
    CHECK(na == nb && na > 0 && memcmp(da, db, na) == 0);
    if (check_failures_now) { show_log("straight.log"); show_log("resumed.log"); }
    free(da); free(db); free(ca); free(cb); free(a); free(b); free(lp);
}

static void test_resume_is_exact(void) { resume_is_exact("fmnist:train", "fmnist"); }

/* ------------------------------------------------------------------ files: manifests and shards */

static char data_dir[300];

/* Export a slice of Fashion-MNIST once: train as WebDataset shards and as JPEG + CSV/JSONL,
 * test as PNG + CSV. */
static int export_data(void) {
    snprintf(data_dir, sizeof data_dir, "%s/data", root);
    char *cmd = cg_xasprintf("%s data fmnist --out %s/wds --format wds --split train --limit 512 --shard-size 128 "
                             ">/dev/null && %s data fmnist --out %s/jpg --format jpg --split train --limit 512 >/dev/null "
                             "&& %s data fmnist --out %s/png --format png --split test --limit 100 >/dev/null",
                             CLIPGRID_BIN, data_dir, CLIPGRID_BIN, data_dir, CLIPGRID_BIN, data_dir);
    int rc = system(cmd);
    free(cmd);
    return rc;
}

static void test_resume_is_exact_on_shards(void) {
    char *spec = cg_xasprintf("%s/wds/train-{000000..000003}.tar", data_dir);
    resume_is_exact(spec, "wds");
    free(spec);
}

/* Train on shards, evaluate retrieval on a PNG manifest, `clipgrid eval` on the manifest; train
 * BERT on a JPEG manifest's Chinese caption column with a vocabulary learned from it. */
static void test_train_on_files(void) {
    char *out = in(root, "on_shards"), *spec = cg_xasprintf("%s/wds/train-{000000..000003}.tar", data_dir);
    char *eval = cg_xasprintf("%s/png/test.csv", data_dir);
    const char *args[] = {"train", COMMON, "--text-encoder", "clip:tiny", "--steps", "6", "--data", spec,
                          "--eval-data", eval, "--retrieval-samples", "64", "--hflip", "--out", out, NULL};
    CHECK_EQ_INT(run("on_shards.log", args), 0);
    char *rp = in(out, "result.json");
    cg_json_doc doc;
    CHECK_EQ_INT(cg_json_load(rp, &doc), CG_OK);
    CHECK(cJSON_GetObjectItem(doc.root, "zeroshot_top1") == NULL);   /* no classes in a manifest */
    const cJSON *r1 = cJSON_GetObjectItem(doc.root, "image_to_text_R@1");
    CHECK(cJSON_IsNumber(r1) && r1->valuedouble >= 0 && r1->valuedouble <= 1);
    CHECK(cJSON_GetObjectItem(doc.root, "eval_images") && cJSON_GetObjectItem(doc.root, "eval_images")->valueint == 64);
    CHECK(cJSON_GetObjectItem(doc.root, "data_skipped") && cJSON_GetObjectItem(doc.root, "data_skipped")->valueint == 0);
    cg_json_free(&doc);
    char *csvp = in(out, "metrics.csv"), *csv = read_text(csvp);
    CHECK(strstr(csv, ",data/skipped,") && strstr(csv, ",val/image_to_text_R@1,"));
    /* the learned vocabulary comes from the shards' captions */
    char *vp = in(out, "bpe_merges.txt.gz");
    CHECK(cg_file_exists(vp));
    const char *eargs[] = {"eval", "--checkpoint", out, "--data", eval, "--retrieval-samples", "64", "--threads", "2", NULL};
    CHECK_EQ_INT(run("on_shards_eval.log", eargs), 0);
    char *ep = cg_path_join(root, "on_shards_eval.log"), *et = read_text(ep);
    CHECK(strstr(et, "\"retrieval_pairs\":\t64") != NULL);
    if (check_failures_now) { show_log("on_shards.log"); show_log("on_shards_eval.log"); }
    free(out); free(spec); free(eval); free(rp); free(csvp); free(csv); free(vp); free(ep); free(et);

    out = in(root, "on_jsonl_zh");
    char *csv_spec = cg_xasprintf("%s/jpg/train.csv", data_dir);
    const char *zh[] = {"train", COMMON, "--text-encoder", "bert:tiny", "--steps", "4", "--data", csv_spec,
                        "--csv-caption-key", "title_zh", "--eval-data", "", "--out", out, NULL};
    CHECK_EQ_INT(run("on_zh.log", zh), 0);
    char *vocab = in(out, "vocab.txt"), *vt = read_text(vocab);
    CHECK(strstr(vt, "\n鞋\n") != NULL || strstr(vt, "\n衫\n") != NULL);   /* characters of the Chinese captions */
    if (check_failures_now) show_log("on_zh.log");
    free(out); free(csv_spec); free(vocab); free(vt);
}

/* Broken samples in a manifest are skipped, counted in metrics and result.json, and training
 * finishes. A manifest that lacks the caption column is an error naming it; nothing is written. */
static void test_broken_files_are_skipped_not_fatal(void) {
    char *man = cg_xasprintf("%s/jpg/broken.csv", data_dir);
    char *cmd = cg_xasprintf("cd %s/jpg && head -c 100 train/000003.jpg > cut.jpg && cp train.csv broken.csv && "
                             "printf 'cut.jpg,a cut file,x,0\nmissing.jpg,no such file,x,0\n' >> broken.csv", data_dir);
    CHECK_EQ_INT(system(cmd), 0);
    char *out = in(root, "broken");
    const char *args[] = {"train", COMMON, "--text-encoder", "clip:tiny", "--epochs", "2", "--batch-size", "64",
                          "--data", man, "--eval-data", "", "--out", out, NULL};
    CHECK_EQ_INT(run("broken.log", args), 0);
    char *rp = in(out, "result.json");
    cg_json_doc doc;
    CHECK_EQ_INT(cg_json_load(rp, &doc), CG_OK);
    const cJSON *sk = cJSON_GetObjectItem(doc.root, "data_skipped");
    CHECK(cJSON_IsNumber(sk) && sk->valueint >= 2 && sk->valueint <= 4);   /* all of epoch 0's, maybe epoch 1's */
    cg_json_free(&doc);
    char *lp = cg_path_join(root, "broken.log"), *log = read_text(lp);
    CHECK(strstr(log, "[WARN] skipped") != NULL);
    if (check_failures_now) show_log("broken.log");

    char *out2 = in(root, "no_column");
    const char *bad[] = {"train", COMMON, "--text-encoder", "clip:tiny", "--steps", "2", "--data", man,
                         "--csv-caption-key", "caption", "--eval-data", "", "--out", out2, NULL};
    CHECK(run("no_column.log", bad) != 0);
    char *np = cg_path_join(root, "no_column.log"), *nt = read_text(np);
    CHECK(strstr(nt, "\"caption\"") && strstr(nt, "broken.csv") && strstr(nt, "title"));
    char *ck = in(out2, "checkpoints/latest");
    CHECK(!cg_file_exists(ck));
    free(man); free(cmd); free(out); free(rp); free(lp); free(log); free(out2); free(np); free(nt); free(ck);
}

/* kill -9 at random moments with a checkpoint every step: every resume starts from a complete
 * checkpoint and the run finishes. */
static void test_kill9_anywhere(void) {
    char *out = in(root, "kill9");
    const char *args[] = {"train", COMMON, "--text-encoder", "clip:tiny", "--steps", "40", "--save-every", "1",
                          "--eval-samples", "50", "--out", out, NULL};
    const char *args_r[] = {"train", COMMON, "--text-encoder", "clip:tiny", "--steps", "40", "--save-every", "1",
                            "--eval-samples", "50", "--out", out, "--resume", NULL};
    srand((unsigned)time(NULL));
    pid_t pid = start("kill9.log", args);
    int kills = 0, finished = 0;
    for (int round = 0; round < 8 && !finished; round++) {
        double delay = 0.05 + (rand() % 1000) / 1000.0 * 0.5;
        double t0 = now_s();
        int ws = 0;
        while (now_s() - t0 < delay && !(finished = waitpid(pid, &ws, WNOHANG) == pid)) usleep(5000);
        if (finished) { CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0); break; }
        kill(pid, SIGKILL);
        finish(pid);
        kills++;
        pid = start("kill9.log", cg_file_exists(out) ? args_r : args);
    }
    if (!finished) CHECK_EQ_INT(finish(pid), 0);
    char *lp = in(out, "checkpoints/latest"), *latest = read_text(lp);
    CHECK_EQ_STR(latest, "40\n");
    CHECK(kills >= 1);
    fprintf(stderr, "    killed %d times, resumed each time\n", kills);
    char *log = cg_path_join(root, "kill9.log"), *text = read_text(log);
    CHECK(strstr(text, "[ERROR]") == NULL);
    if (check_failures_now) show_log("kill9.log");
    free(log); free(text); free(lp); free(latest); free(out);
}

static void test_nan_stops_without_corrupting(void) {
    char *out = in(root, "nan");
    const char *args[] = {"train", COMMON, "--text-encoder", "clip:tiny", "--steps", "6", "--save-every", "1",
                          "--warmup", "0", "--lr", "1e6", "--grad-clip", "0", "--out", out, NULL};
    int rc = run("nan.log", args);
    char *log = cg_path_join(root, "nan.log"), *text = read_text(log);
    CHECK_EQ_INT(rc, 1);
    CHECK(strstr(text, "NaN at step") || strstr(text, "infinite at step"));
    /* latest names a complete checkpoint from before the bad step */
    char *lp = in(out, "checkpoints/latest"), *latest = read_text(lp);
    int step = atoi(latest);
    char *mp = cg_xasprintf("%s/checkpoints/step_%d.safetensors", out, step);
    CHECK(step >= 1 && step < 6 && cg_file_exists(mp));
    char *rp = in(out, "result.json");
    CHECK(!cg_file_exists(rp));
    if (check_failures_now) show_log("nan.log");
    free(log); free(text); free(lp); free(latest); free(mp); free(rp); free(out);
}

static void test_bad_input_is_named_and_nothing_is_lost(void) {
    char *out = in(root, "files");   /* the finished run of the first test */
    char *cp = in(out, "config.json"), *before = read_text(cp);
    const char *again[] = {"train", COMMON, "--text-encoder", "bert:tiny", "--steps", "6", "--out", out, NULL};
    CHECK_EQ_INT(run("bad.log", again), 2);
    char *after = read_text(cp);
    CHECK_EQ_STR(after, before);
    char *other = in(root, "other");
    const char *bad_img[] = {"train", "--image-encoder", "starnet_s9", "--text-encoder", "clip:tiny", "--out", other, NULL};
    CHECK_EQ_INT(run("bad.log", bad_img), 2);
    const char *bad_data[] = {"train", COMMON, "--text-encoder", "clip:tiny", "--data", "imagenet:train", "--out", other, NULL};
    CHECK_EQ_INT(run("bad.log", bad_data), 2);
    const char *bad_flag[] = {"train", COMMON, "--text-encoder", "clip:tiny", "--bach-size", "3", "--out", other, NULL};
    CHECK_EQ_INT(run("bad.log", bad_flag), 2);
    const char *bad_accum[] = {"train", COMMON, "--text-encoder", "clip:tiny", "--accum-steps", "3", "--out", other, NULL};
    CHECK_EQ_INT(run("bad.log", bad_accum), 2);
    char *log = cg_path_join(root, "bad.log"), *text = read_text(log);
    CHECK(strstr(text, "already holds a run") && strstr(text, "--resume"));
    CHECK(strstr(text, "starnet_s9") != NULL);
    CHECK(strstr(text, "imagenet:train") != NULL);
    CHECK(strstr(text, "--bach-size") != NULL);
    CHECK(strstr(text, "--accum-steps 3: must split --batch-size 8") != NULL);
    free(out); free(cp); free(before); free(after); free(other); free(log); free(text);
}

/* --accum-steps: a batch of 8 as 2 micro-batches trains, deterministically. */
static void test_gradient_accumulation_runs(void) {
    char *a = in(root, "accum_a"), *b = in(root, "accum_b");
    const char *args_a[] = {"train", COMMON, "--text-encoder", "bert:tiny", "--steps", "4", "--accum-steps", "2",
                            "--eval-samples", "50", "--out", a, NULL};
    const char *args_b[] = {"train", COMMON, "--text-encoder", "bert:tiny", "--steps", "4", "--accum-steps", "2",
                            "--eval-samples", "50", "--out", b, NULL};
    CHECK_EQ_INT(run("accum.log", args_a), 0);
    CHECK_EQ_INT(run("accum.log", args_b), 0);
    char la[4][40], lb[4][40];
    losses(a, la, 4);
    losses(b, lb, 4);
    for (int i = 0; i < 4; i++) CHECK(la[i][0] && !strcmp(la[i], lb[i]));
    char *cp = in(a, "config.json"), *cfg = read_text(cp);
    CHECK(strstr(cfg, "\"accum_steps\":\t2") != NULL);
    if (check_failures_now) show_log("accum.log");
    free(cp); free(cfg); free(a); free(b);
}

int main(void) {
    snprintf(root, sizeof root, "%s/train_XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    TEST_RUN(test_run_leaves_its_files);
    TEST_RUN(test_resume_is_exact);
    TEST_RUN(test_kill9_anywhere);
    TEST_RUN(test_nan_stops_without_corrupting);
    TEST_RUN(test_bad_input_is_named_and_nothing_is_lost);
    TEST_RUN(test_gradient_accumulation_runs);
    if (export_data() != 0) {
        fprintf(stderr, "cannot export Fashion-MNIST as files with %s data fmnist\n", CLIPGRID_BIN);
        return 1;
    }
    TEST_RUN(test_resume_is_exact_on_shards);
    TEST_RUN(test_train_on_files);
    TEST_RUN(test_broken_files_are_skipped_not_fatal);
    return TEST_REPORT();
}
