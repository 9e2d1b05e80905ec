/* Tests for src/grid/spec.c and cost.c: grid files, command-line lists, expansion, IDs. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/log.h"
#include "grid/cost.h"
#include "grid/spec.h"

static char tmpdir[256];

static char *write_grid(const char *name, const char *text) {
    char *path = cg_path_join(tmpdir, name);
    if (cg_file_write_atomic(path, text, strlen(text)) != CG_OK) abort();
    return path;
}

static const grid_config *find(const grid_config *c, int n, const char *id) {
    for (int i = 0; i < n; i++)
        if (!strcmp(c[i].id, id)) return &c[i];
    return NULL;
}

static void test_config_ids_are_stable_and_file_safe(void) {
    char *id = grid_config_id("starnet_s1", "clip:ViT-B/32", NULL);
    CHECK_EQ_STR(id, "starnet_s1_clip_ViT-B_32");
    free(id);
    id = grid_config_id("starnet_s2", "bert-base-chinese", "seed1");
    CHECK_EQ_STR(id, "starnet_s2_bert-base-chinese_seed1");
    free(id);
    id = grid_config_id("my net", "a;b$c", NULL);
    CHECK_EQ_STR(id, "my_net_a_b_c");
    free(id);
}

static void test_cli_lists_expand_to_product(void) {
    grid_spec s;
    grid_spec_init(&s);
    CHECK_EQ_INT(grid_spec_set_list(&s, "image", "starnet_s1, starnet_s2"), CG_OK);
    CHECK_EQ_INT(grid_spec_set_list(&s, "text", "clip:ViT-B/32,bert-base-chinese"), CG_OK);
    grid_config *c; int n;
    CHECK_EQ_INT(grid_expand(&s, &c, &n), CG_OK);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_STR(c[0].id, "starnet_s1_clip_ViT-B_32");
    CHECK_EQ_STR(c[1].id, "starnet_s1_bert-base-chinese");
    CHECK_EQ_STR(c[3].id, "starnet_s2_bert-base-chinese");
    CHECK_EQ_STR(c[3].image_encoder, "starnet_s2");
    /* costs come from the encoders: a bigger image encoder costs more with the same text tower */
    CHECK(c[2].cost > c[0].cost);
    grid_configs_free(c, n);
    CHECK_EQ_INT(grid_spec_set_list(&s, "text", " , "), CG_ERR_USAGE);
    CHECK(strstr(cg_error_message(), "--text-encoders is empty") != NULL);
    grid_spec_free(&s);
}

static void test_file_train_overrides_axes_and_configs(void) {
    char *path = write_grid("full.json",
        "{\n"
        "  \"gpus\": [0, 1],\n"
        "  \"image_encoders\": [\"starnet_s1\", \"starnet_s2\"],\n"
        "  \"text_encoders\": [\"clip:ViT-B/32\", \"bert-base-chinese\"],\n"
        "  \"train\": {\"data\": \"fmnist:train\", \"epochs\": 10, \"lr\": 5e-4},\n"
        "  \"overrides\": {\"bert-base-chinese\": {\"context_length\": 52, \"lr\": 1e-4}},\n"
        "  \"configs\": [{\"image_encoder\": \"starnet_s4\", \"text_encoder\": \"clip:ViT-B/32\",\n"
        "                \"train\": {\"lr\": 3e-4}},\n"
        "              {\"image_encoder\": \"starnet_s1\", \"text_encoder\": \"clip:ViT-B/32\",\n"
        "                \"train\": {\"epochs\": 20}}],\n"
        "  \"jobs_per_gpu\": 2, \"log_dir\": \"L\"\n"
        "}\n");
    grid_spec s;
    grid_spec_init(&s);
    CHECK_EQ_INT(grid_spec_load_file(&s, path), CG_OK);
    CHECK_EQ_STR(s.gpus, "0,1");
    CHECK_EQ_INT(cJSON_GetObjectItem(s.launcher, "jobs_per_gpu")->valueint, 2);
    grid_config *c; int n;
    CHECK_EQ_INT(grid_expand(&s, &c, &n), CG_OK);
    CHECK_EQ_INT(n, 5);  /* 2x2 + starnet_s4 (the s1/clip entry refines an existing config) */
    const grid_config *bert = find(c, n, "starnet_s2_bert-base-chinese");
    CHECK(bert != NULL);
    if (bert) {
        CHECK_EQ_INT(cJSON_GetObjectItem(bert->train, "context_length")->valueint, 52);
        CHECK_NEAR(cJSON_GetObjectItem(bert->train, "lr")->valuedouble, 1e-4, 1e-12);
        CHECK_EQ_INT(cJSON_GetObjectItem(bert->train, "epochs")->valueint, 10);
    }
    const grid_config *s4 = find(c, n, "starnet_s4_clip_ViT-B_32");
    CHECK(s4 && fabs(cJSON_GetObjectItem(s4->train, "lr")->valuedouble - 3e-4) < 1e-12);
    const grid_config *s1 = find(c, n, "starnet_s1_clip_ViT-B_32");
    CHECK(s1 && cJSON_GetObjectItem(s1->train, "epochs")->valueint == 20);
    CHECK(s1 && fabs(cJSON_GetObjectItem(s1->train, "lr")->valuedouble - 5e-4) < 1e-12);
    grid_configs_free(c, n);
    grid_spec_free(&s);
    free(path);
}

static void test_axes_multiply_the_grid(void) {
    char *path = write_grid("axes.json",
        "{\"image_encoders\": [\"starnet_s1\"], \"text_encoders\": [\"clip:tiny\"],\n"
        " \"axes\": {\"seed\": [0, 1, 2], \"lr\": [0.001, 0.0005]}}\n");
    grid_spec s;
    grid_spec_init(&s);
    CHECK_EQ_INT(grid_spec_load_file(&s, path), CG_OK);
    grid_config *c; int n;
    CHECK_EQ_INT(grid_expand(&s, &c, &n), CG_OK);
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_STR(c[0].id, "starnet_s1_clip_tiny_seed0_lr0.001");
    CHECK_EQ_STR(c[5].id, "starnet_s1_clip_tiny_seed2_lr0.0005");
    CHECK_EQ_INT(cJSON_GetObjectItem(c[5].train, "seed")->valueint, 2);
    grid_configs_free(c, n);
    grid_spec_free(&s);
    free(path);
}

static void test_cli_lists_override_file(void) {
    char *path = write_grid("cli.json", "{\"image_encoders\": [\"starnet_s1\", \"starnet_s2\"],\n"
                                        " \"text_encoders\": [\"clip:ViT-B/32\"]}\n");
    grid_spec s;
    grid_spec_init(&s);
    CHECK_EQ_INT(grid_spec_load_file(&s, path), CG_OK);
    CHECK_EQ_INT(grid_spec_set_list(&s, "image", "starnet_s4"), CG_OK);
    grid_config *c; int n;
    CHECK_EQ_INT(grid_expand(&s, &c, &n), CG_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(c[0].id, "starnet_s4_clip_ViT-B_32");
    grid_configs_free(c, n);
    grid_spec_free(&s);
    free(path);
}

/* Each bad file gives CG_ERR_CONFIG and a message containing `want` (file:line and the key). */
static void expect_bad(const char *name, const char *text, const char *want) {
    char *path = write_grid(name, text);
    grid_spec s;
    grid_spec_init(&s);
    int rc = grid_spec_load_file(&s, path);
    if (rc == CG_OK) {
        grid_config *c; int n;
        rc = grid_expand(&s, &c, &n);
        if (rc == CG_OK) grid_configs_free(c, n);
    }
    CHECK_EQ_INT(rc, CG_ERR_CONFIG);
    if (!strstr(cg_error_message(), want))
        fprintf(stderr, "  message was: %s\n  expected it to contain: %s\n", cg_error_message(), want);
    CHECK(strstr(cg_error_message(), want) != NULL);
    grid_spec_free(&s);
    free(path);
}

static void test_bad_grid_files(void) {
    expect_bad("malformed.json", "{\n  \"image_encoders\": [\"starnet_s1\",,]\n}\n", "malformed.json:2:");
    expect_bad("unknown.json", "{\n  \"image_encoders\": [\"starnet_s1\"],\n  \"text_encoder\": [\"x\"]\n}\n",
               "unknown.json:3: unknown key \"text_encoder\" in the grid file (did you mean \"text_encoders\"?)");
    expect_bad("trainkey.json", "{\"image_encoders\": [\"a\"], \"text_encoders\": [\"b\"],\n"
               " \"train\": {\n  \"epochs\": 1,\n  \"bach_size\": 2}}\n",
               "trainkey.json:4: unknown key \"bach_size\" in \"train\" (did you mean \"batch_size\"?)");
    expect_bad("empty.json", "{\"image_encoders\": [],\n \"text_encoders\": [\"b\"]}\n",
               "empty.json:1: \"image_encoders\" is empty");
    expect_bad("type.json", "{\"image_encoders\": \"starnet_s1\",\n \"text_encoders\": [\"b\"]}\n",
               "type.json:1: image_encoders must be an array, not a string");
    expect_bad("jpg.json", "{\"image_encoders\": [\"a\"], \"text_encoders\": [\"b\"],\n \"jobs_per_gpu\": 0}\n",
               "jpg.json:2: \"jobs_per_gpu\" must be at least 1");
    expect_bad("notext.json", "{\"image_encoders\": [\"a\"]}\n", "no text encoders");
    expect_bad("dup.json", "{\"image_encoders\": [\"a\", \"a\"], \"text_encoders\": [\"b\"]}\n", "appears twice");
    expect_bad("clash.json", "{\"image_encoders\": [\"a\"], \"text_encoders\": [\"x:y\", \"x/y\"]}\n",
               "get the same ID \"a_x_y\"");
    expect_bad("cfg.json", "{\"configs\": [{\"image_encoder\": \"a\"}]}\n", "\"configs\"[0] needs \"text_encoder\"");
    expect_bad("top.json", "[1, 2]\n", "the grid file must be an object");
}

static void test_costs(void) {
    int known;
    double s1 = cost_image_encoder("starnet_s1", 224, &known);
    CHECK(known);
    CHECK_NEAR(s1, 421.9, 1e-9);
    CHECK_NEAR(cost_image_encoder("starnet_s1", 112, NULL), 421.9 / 4, 1e-9);
    CHECK(cost_image_encoder("starnet_s4", 224, NULL) > cost_image_encoder("starnet_s3", 224, NULL));
    CHECK(cost_text_encoder("bert-base-chinese", NULL) > cost_text_encoder("clip:ViT-B/32", NULL));
    CHECK(cost_text_encoder("clip:ViT-B/32", NULL) > cost_text_encoder("clip:tiny", NULL));
    cost_image_encoder("resnet-from-mars", 224, &known);
    CHECK(!known);
    CHECK_NEAR(cost_config("foo", "bar", 224), cost_config("baz", "qux", 64), 1e-9);  /* unknown names cost the same */
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/grid_spec_XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    TEST_RUN(test_config_ids_are_stable_and_file_safe);
    TEST_RUN(test_cli_lists_expand_to_product);
    TEST_RUN(test_file_train_overrides_axes_and_configs);
    TEST_RUN(test_axes_multiply_the_grid);
    TEST_RUN(test_cli_lists_override_file);
    TEST_RUN(test_bad_grid_files);
    TEST_RUN(test_costs);
    return TEST_REPORT();
}
