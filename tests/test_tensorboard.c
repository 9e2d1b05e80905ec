/* Tests for src/train/tensorboard.c: CRC-32C and record framing against the byte-exact vectors
 * of shared/reference/training_in_c.md §4.4 (from TensorBoard's own tests), and a written file
 * read back record by record. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/fileio.h"
#include "core/log.h"
#include "train/tensorboard.h"

static void test_crc32c_vectors(void) {
    unsigned char zeros[32] = {0};
    CHECK_EQ_INT(crc32c(zeros, 32), 0x8a9136aau);
    const char msg[] = "\x1a\x11" "CRC test, one two";
    CHECK_EQ_INT(tb_masked_crc(crc32c(msg, sizeof msg - 1)), 0x5794d08au);
}

static void test_file_version_record_bytes(void) {
    static const unsigned char wall[8] = {0x00, 0x00, 0x80, 0x38, 0x99, 0xd6, 0xd7, 0x41};
    double wall_time;
    memcpy(&wall_time, wall, 8);
    unsigned char data[64], rec[96];
    size_t n = tb_encode_file_version(wall_time, data);
    static const unsigned char want[] = {0x09, 0x00, 0x00, 0x80, 0x38, 0x99, 0xd6, 0xd7, 0x41, 0x1a, 0x0d,
                                         'b', 'r', 'a', 'i', 'n', '.', 'E', 'v', 'e', 'n', 't', ':', '2'};
    CHECK_EQ_INT(n, sizeof want);
    CHECK(memcmp(data, want, sizeof want) == 0);
    size_t len = tb_frame_record(data, n, rec);
    CHECK_EQ_INT(len, 16 + 24);
    static const unsigned char head[12] = {0x18, 0, 0, 0, 0, 0, 0, 0, 0xa3, 0x7f, 0x4b, 0x22};
    CHECK(memcmp(rec, head, 12) == 0);
    static const unsigned char tail[4] = {0x12, 0x4b, 0x36, 0xab};
    CHECK(memcmp(rec + 12 + 24, tail, 4) == 0);
}

static void test_scalar_event_bytes(void) {
    unsigned char buf[64];
    size_t n = tb_encode_scalar(1.0, 7, "loss", 0.5f, buf);
    static const unsigned char want[] = {0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x07, 0x2a, 0x0d, 0x0a, 0x0b,
                                         0x0a, 0x04, 'l', 'o', 's', 's', 0x15, 0x00, 0x00, 0x00, 0x3f};
    CHECK_EQ_INT(n, sizeof want);
    CHECK(memcmp(buf, want, sizeof want) == 0);
    /* a step that needs a multi-byte varint */
    n = tb_encode_scalar(1.0, 300, "x", 1.0f, buf);
    CHECK(buf[9] == 0x10 && buf[10] == 0xac && buf[11] == 0x02);
}

/* Read a varint at *p. */
static uint64_t get_varint(const unsigned char **p) {
    uint64_t v = 0;
    int shift = 0;
    while (**p & 0x80) { v |= (uint64_t)(**p & 0x7f) << shift; shift += 7; (*p)++; }
    v |= (uint64_t)**p << shift;
    (*p)++;
    return v;
}

static void test_written_file_reads_back(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "%s/tb_XXXXXX", TEST_BINARY_DIR);
    if (!mkdtemp(dir)) { CHECK(0); return; }
    char *sub = cg_path_join(dir, "run1");
    tb_writer w;
    CHECK_EQ_INT(tb_open(&w, sub), CG_OK);
    CHECK(strstr(w.path, "/events.out.tfevents.") != NULL);
    char *path = cg_xstrdup(w.path);
    float values[3] = {2.5f, 1.25f, -0.125f};
    const char *tags[3] = {"train/loss", "train/lr", "val/image_to_text_R@1"};
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(tb_add_scalar(&w, tags[i], 100 + i, values[i]), CG_OK);
    tb_close(&w);
    char *buf;
    size_t len;
    CHECK_EQ_INT(cg_file_read(path, &buf, &len), CG_OK);
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    int records = 0;
    while (p + 12 <= end) {
        uint64_t n;
        uint32_t lcrc, dcrc;
        memcpy(&n, p, 8);
        memcpy(&lcrc, p + 8, 4);
        CHECK_EQ_INT(lcrc, tb_masked_crc(crc32c(p, 8)));
        const unsigned char *data = p + 12;
        CHECK(data + n + 4 <= end);
        memcpy(&dcrc, data + n, 4);
        CHECK_EQ_INT(dcrc, tb_masked_crc(crc32c(data, n)));
        if (records > 0) {  /* decode: wall_time, step, summary.value.{tag, simple_value} */
            const unsigned char *q = data;
            CHECK(*q == 0x09);
            q += 9;
            CHECK(*q++ == 0x10);
            CHECK_EQ_INT(get_varint(&q), 100 + records - 1);
            CHECK(*q++ == 0x2a);
            get_varint(&q);
            CHECK(*q++ == 0x0a);
            get_varint(&q);
            CHECK(*q++ == 0x0a);
            uint64_t tl = get_varint(&q);
            CHECK(tl == strlen(tags[records - 1]) && !memcmp(q, tags[records - 1], tl));
            q += tl;
            CHECK(*q++ == 0x15);
            float v;
            memcpy(&v, q, 4);
            CHECK(v == values[records - 1]);
        } else {
            CHECK(n == 24 && !memcmp(data + 11, "brain.Event:2", 13));
        }
        p = data + n + 4;
        records++;
    }
    CHECK_EQ_INT(records, 4);
    CHECK(p == end);
    free(buf);
    /* a directory that cannot be made is an error naming it */
    char *blocked = cg_path_join(path, "x");
    CHECK_EQ_INT(tb_open(&w, blocked), CG_ERR_IO);
    CHECK(strstr(cg_error_message(), "events.out.tfevents") != NULL);
    free(blocked);
    free(path);
    free(sub);
}

int main(void) {
    TEST_RUN(test_crc32c_vectors);
    TEST_RUN(test_file_version_record_bytes);
    TEST_RUN(test_scalar_event_bytes);
    TEST_RUN(test_written_file_reads_back);
    return TEST_REPORT();
}
