/* Tests for src/core: arena, atomic files, JSON with line numbers, errors. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/arena.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/log.h"

static char tmpdir[256];

static void test_arena_alignment_and_reset(void) {
    cg_arena a;
    cg_arena_init(&a, 256);
    char *p1 = cg_arena_alloc(&a, 3);
    char *p2 = cg_arena_alloc(&a, 100);
    char *big = cg_arena_alloc(&a, 10000);   /* larger than a block */
    CHECK(((uintptr_t)p1 % CG_ARENA_ALIGN) == 0);
    CHECK(((uintptr_t)p2 % CG_ARENA_ALIGN) == 0);
    CHECK(((uintptr_t)big % CG_ARENA_ALIGN) == 0);
    CHECK(p2 >= p1 + 3);
    memset(big, 0xab, 10000);
    CHECK(big[9999] == (char)0xab);
    size_t cap = a.capacity;
    CHECK(cap >= 10000 + 256);
    cg_arena_reset(&a);
    CHECK_EQ_INT(a.used, 0);
    CHECK_EQ_INT(a.capacity, cap);         /* memory kept ... */
    char *again = cg_arena_alloc(&a, 10000 + 100);  /* ... and merged: one block fits the round */
    CHECK_EQ_INT(a.capacity, cap);
    CHECK(again[0] == 0 && again[10099] == 0);       /* zeroed */
    CHECK_EQ_STR(cg_arena_strdup(&a, "starnet_s1"), "starnet_s1");
    cg_arena_free(&a);
    CHECK(a.head == NULL);
}

static void test_atomic_write_replaces_whole_file(void) {
    char *path = cg_path_join(tmpdir, "sub/dir/result.json");
    char *dir = cg_path_join(tmpdir, "sub/dir");
    CHECK_EQ_INT(cg_mkdir_p(dir), CG_OK);
    CHECK_EQ_INT(cg_file_write_atomic(path, "first version", 13), CG_OK);
    CHECK_EQ_INT(cg_file_write_atomic(path, "v2", 2), CG_OK);
    char *text; size_t len;
    CHECK_EQ_INT(cg_file_read(path, &text, &len), CG_OK);
    CHECK_EQ_INT(len, 2);
    CHECK_EQ_STR(text, "v2");
    free(text);
    char *tmp = cg_xasprintf("%s.tmp.%ld", path, (long)getpid());
    CHECK(!cg_file_exists(tmp));          /* no temp file left behind */
    free(tmp);
    /* a directory that cannot be created is an error naming it */
    char *blocker = cg_path_join(tmpdir, "afile");
    CHECK_EQ_INT(cg_file_write_atomic(blocker, "x", 1), CG_OK);
    char *under = cg_path_join(blocker, "child");
    CHECK_EQ_INT(cg_mkdir_p(under), CG_ERR_IO);
    CHECK(strstr(cg_error_message(), "afile") != NULL);
    /* write into a missing directory fails and names the path */
    char *missing = cg_path_join(tmpdir, "nope/x.json");
    CHECK_EQ_INT(cg_file_write_atomic(missing, "x", 1), CG_ERR_IO);
    CHECK(strstr(cg_error_message(), "nope") != NULL);
    free(path); free(dir); free(blocker); free(under); free(missing);
}

static void test_append(void) {
    char *path = cg_path_join(tmpdir, "ledger.tsv");
    CHECK_EQ_INT(cg_file_append(path, "a\n", 2), CG_OK);
    CHECK_EQ_INT(cg_file_append(path, "b\n", 2), CG_OK);
    char *text;
    CHECK_EQ_INT(cg_file_read(path, &text, NULL), CG_OK);
    CHECK_EQ_STR(text, "a\nb\n");
    free(text);
    free(path);
}

static void test_json_lines_and_keys(void) {
    const char *src =
        "{\n"
        "  \"gpus\": [0, 1],\n"
        "  \"train\": {\n"
        "    \"epochs\": 10,\n"
        "    \"bach_size\": 256\n"
        "  },\n"
        "  \"text_encoders\": [\"clip:ViT-B/32\",\n"
        "     \"bert-base-chinese\"]\n"
        "}\n";
    cg_json_doc doc;
    CHECK_EQ_INT(cg_json_parse("grid.json", src, strlen(src), &doc), CG_OK);
    cJSON *train = cJSON_GetObjectItemCaseSensitive(doc.root, "train");
    CHECK_EQ_INT(cg_json_line(&doc, train), 3);
    CHECK_EQ_INT(cg_json_line(&doc, cJSON_GetObjectItemCaseSensitive(train, "epochs")), 4);
    cJSON *te = cJSON_GetObjectItemCaseSensitive(doc.root, "text_encoders");
    CHECK_EQ_INT(cg_json_line(&doc, cJSON_GetArrayItem(te, 1)), 8);
    static const char *const train_keys[] = {"epochs", "batch_size", "lr", NULL};
    CHECK_EQ_INT(cg_json_check_keys(&doc, train, train_keys, "\"train\""), CG_ERR_CONFIG);
    CHECK(strstr(cg_error_message(), "grid.json:5:") != NULL);
    CHECK(strstr(cg_error_message(), "bach_size") != NULL);
    CHECK(strstr(cg_error_message(), "did you mean \"batch_size\"") != NULL);
    CHECK_EQ_INT(cg_json_want_type(&doc, train, cJSON_Array, "\"train\""), CG_ERR_CONFIG);
    CHECK(strstr(cg_error_message(), "grid.json:3: \"train\" must be an array, not an object") != NULL);
    cg_json_free(&doc);
}

static void test_json_duplicate_key(void) {
    const char *src = "{\"lr\": 1,\n\"lr\": 2}";
    cg_json_doc doc;
    CHECK_EQ_INT(cg_json_parse("x.json", src, strlen(src), &doc), CG_OK);
    static const char *const keys[] = {"lr", NULL};
    CHECK_EQ_INT(cg_json_check_keys(&doc, doc.root, keys, "top level"), CG_ERR_CONFIG);
    CHECK(strstr(cg_error_message(), "x.json:2: key \"lr\" appears twice") != NULL);
    cg_json_free(&doc);
}

static void test_json_malformed_names_line(void) {
    const char *src = "{\n  \"gpus\": [0, 1],\n  \"train\": {\"epochs\": 10,,}\n}";
    cg_json_doc doc;
    CHECK_EQ_INT(cg_json_parse("bad.json", src, strlen(src), &doc), CG_ERR_CONFIG);
    CHECK(strstr(cg_error_message(), "bad.json:3:") != NULL);
    CHECK(strstr(cg_error_message(), "malformed JSON") != NULL);
    CHECK_EQ_INT(cg_json_load("/nonexistent/grid.json", &doc), CG_ERR_IO);
    CHECK(strstr(cg_error_message(), "/nonexistent/grid.json") != NULL);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/core_test_XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    TEST_RUN(test_arena_alignment_and_reset);
    TEST_RUN(test_atomic_write_replaces_whole_file);
    TEST_RUN(test_append);
    TEST_RUN(test_json_lines_and_keys);
    TEST_RUN(test_json_duplicate_key);
    TEST_RUN(test_json_malformed_names_line);
    return TEST_REPORT();
}
