/* test_safetensors.c — the safetensors reader and writer: files written by the Python
 * `safetensors` package (the golden files), our own round trip, and every malformed-file error
 * (each must name the file and, where there is one, the tensor). */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/safetensors.h"

static void test_reads_python_file(void) {
    cg_safetensors st;
    const char *path = TEST_SOURCE_DIR "/golden/starnet_s050/weights.safetensors";
    int rc = cg_st_open(path, &st);
    CHECK(rc == 0);
    if (rc) { fprintf(stderr, "%s\n", cg_error_message()); return; }
    CHECK_EQ_INT(st.n, 162);
    const cg_st_tensor *t = cg_st_find(&st, "stages.1.0.conv.weight");
    CHECK(t && t->dtype == CG_ST_F32 && t->ndim == 4 && t->shape[0] == 32 && t->shape[1] == 16 && t->shape[3] == 3);
    int64_t nbt = 0;
    CHECK(cg_st_read_scalar_i64(&st, "norm.num_batches_tracked", &nbt) == 0);
    CHECK_EQ_INT(nbt, 3);
    const cg_st_tensor *nb = cg_st_find(&st, "norm.num_batches_tracked");
    CHECK(nb && nb->dtype == CG_ST_I64 && nb->ndim == 0);
    float rv[128];
    CHECK(cg_st_read_f32(&st, "norm.running_var", rv, 1, (int64_t[]){128}) == 0);
    for (int i = 0; i < 128; i++) CHECK(rv[i] >= 1.0f && rv[i] <= 1.5f);  /* the script draws 1 + 0.5 U[0,1) */
    CHECK_EQ_STR(cg_st_meta(&st, "format"), "pt");
    /* wrong shape and missing tensor name the tensor */
    CHECK(cg_st_read_f32(&st, "norm.running_var", rv, 1, (int64_t[]){127}) != 0);
    CHECK(strstr(cg_error_message(), "norm.running_var") && strstr(cg_error_message(), "[128]") &&
          strstr(cg_error_message(), "[127]"));
    CHECK(cg_st_read_f32(&st, "norm.nope", rv, 1, (int64_t[]){1}) != 0);
    CHECK(strstr(cg_error_message(), "norm.nope") && strstr(cg_error_message(), "weights.safetensors"));
    cg_st_close(&st);
}

static void test_round_trip(void) {
    cg_st_writer w;
    cg_st_writer_init(&w);
    float a[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 65504};
    cg_st_writer_add_f32(&w, "a.weight", a, 2, (int64_t[]){2, 3});
    cg_st_writer_add_i64(&w, "a.count", -7);
    uint16_t h[3] = {0x3c00, 0xc000, 0x0001};  /* F16: 1, -2, smallest subnormal */
    cg_st_writer_add(&w, "h", CG_ST_F16, 1, (int64_t[]){3}, h);
    uint16_t bf[2] = {0x3f80, 0x4049};  /* BF16: 1, 3.140625 */
    cg_st_writer_add(&w, "bf", CG_ST_BF16, 1, (int64_t[]){2}, bf);
    cg_st_writer_add_f32(&w, "empty", a, 2, (int64_t[]){0, 3});
    cg_st_writer_meta(&w, "step", "12");
    char path[256];
    snprintf(path, sizeof path, "%s/st_rt_%d.safetensors", TEST_BINARY_DIR, (int)getpid());
    CHECK(cg_st_writer_save(&w, path) == 0);
    /* header length is a multiple of 8 (data aligned) */
    char *buf;
    size_t len;
    CHECK(cg_file_read(path, &buf, &len) == 0);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (unsigned char)buf[i];
    CHECK(hl % 8 == 0);
    free(buf);
    cg_safetensors st;
    CHECK(cg_st_open(path, &st) == 0);
    float b[6];
    CHECK(cg_st_read_f32(&st, "a.weight", b, 2, (int64_t[]){2, 3}) == 0);
    CHECK(!memcmp(a, b, sizeof a));
    int64_t c = 0;
    CHECK(cg_st_read_scalar_i64(&st, "a.count", &c) == 0);
    CHECK_EQ_INT(c, -7);
    float hf[3], bff[2];
    CHECK(cg_st_read_f32(&st, "h", hf, 1, (int64_t[]){3}) == 0);
    CHECK(hf[0] == 1.0f && hf[1] == -2.0f && hf[2] == ldexpf(1.0f, -24));
    CHECK(cg_st_read_f32(&st, "bf", bff, 1, (int64_t[]){2}) == 0);
    CHECK(bff[0] == 1.0f && bff[1] == 3.140625f);
    CHECK(cg_st_find(&st, "empty") && cg_st_find(&st, "empty")->nbytes == 0);
    CHECK_EQ_STR(cg_st_meta(&st, "step"), "12");
    cg_st_close(&st);
    unlink(path);
    /* the same name twice is refused */
    cg_st_writer_add_f32(&w, "h", a, 1, (int64_t[]){1});
    unsigned char *out;
    CHECK(cg_st_writer_serialize(&w, &out, &len) != 0);
    CHECK(strstr(cg_error_message(), "\"h\"") != NULL);
    cg_st_writer_free(&w);
}

/* Build a file from a header string and `data_len` bytes of data; parse it; return rc. */
static int parse_hdr(const char *hdr, size_t data_len, int64_t declared_len) {
    size_t hl = strlen(hdr), len = 8 + hl + data_len;
    char *buf = calloc(1, len + 1);
    uint64_t d = declared_len >= 0 ? (uint64_t)declared_len : hl;
    for (int i = 0; i < 8; i++) buf[i] = (char)(d >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    cg_safetensors st;
    int rc = cg_st_parse("bad.safetensors", buf, len, &st);
    if (!rc) cg_st_close(&st);
    return rc;
}

static void expect_error(const char *hdr, size_t data_len, int64_t declared, const char *needle) {
    int rc = parse_hdr(hdr, data_len, declared);
    CHECK(rc == CG_ERR_FORMAT);
    if (rc) {
        CHECK(strstr(cg_error_message(), "bad.safetensors") != NULL);
        if (!strstr(cg_error_message(), needle)) {
            fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", cg_error_message(), needle);
            CHECK(0);
        }
    }
}

static void test_malformed(void) {
    CHECK(parse_hdr("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, -1) == 0);
    expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 1 << 30, "header length");
    expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, -1, "JSON");
    expect_error("{\"t\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, -1, "\"t\"");
    expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1, "\"t\"");
    expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, -1, "outside");
    expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,8]}}", 8, -1, "shape");
    expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, -1, "data_offsets");
    expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"u\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, -1, "overlap");
    expect_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, -1, "twice");
    expect_error("{\"__metadata__\":{\"k\":1}}", 0, -1, "__metadata__");
    /* too short for a header */
    char *tiny = calloc(1, 4);
    cg_safetensors st;
    CHECK(cg_st_parse("bad.safetensors", tiny, 3, &st) == CG_ERR_FORMAT);
    /* a missing file names the path */
    CHECK(cg_st_open("/nonexistent/x.safetensors", &st) != 0);
    CHECK(strstr(cg_error_message(), "/nonexistent/x.safetensors") != NULL);
}

int main(void) {
    TEST_RUN(test_reads_python_file);
    TEST_RUN(test_round_trip);
    TEST_RUN(test_malformed);
    return TEST_REPORT();
}
