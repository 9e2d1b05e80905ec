#include "train/tensorboard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"

/* CRC-32C, reflected polynomial 0x82F63B78, table-driven (one byte at a time). */
static uint32_t crc_table[256];
static void crc_table_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t crc32c(const void *data, size_t n) {
    if (!crc_table[1]) crc_table_init();
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

uint32_t tb_masked_crc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

/* ---- protobuf wire format, just what an Event needs ---- */

static size_t put_varint(unsigned char *b, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) { b[n++] = (unsigned char)(v | 0x80); v >>= 7; }
    b[n++] = (unsigned char)v;
    return n;
}

static size_t put_le(unsigned char *b, const void *v, size_t n) {
    memcpy(b, v, n);  /* x86-64 and aarch64 are little-endian */
    return n;
}

static size_t put_bytes_field(unsigned char *b, int field, const void *data, size_t n) {
    size_t k = put_varint(b, (uint64_t)(field << 3 | 2));
    k += put_varint(b + k, n);
    memcpy(b + k, data, n);
    return k + n;
}

static size_t put_wall_time(unsigned char *b, double wall_time) {
    b[0] = 0x09;  /* field 1, 64-bit */
    return 1 + put_le(b + 1, &wall_time, 8);
}

size_t tb_encode_file_version(double wall_time, unsigned char *buf) {
    size_t n = put_wall_time(buf, wall_time);
    return n + put_bytes_field(buf + n, 3, "brain.Event:2", 13);
}

size_t tb_encode_scalar(double wall_time, int64_t step, const char *tag, float value, unsigned char *buf) {
    size_t taglen = strlen(tag);
    /* Value { tag = 1; simple_value = 2 (fixed32) } */
    unsigned char *val = cg_xmalloc(taglen + 16);
    size_t vn = put_bytes_field(val, 1, tag, taglen);
    val[vn++] = 0x15;
    vn += put_le(val + vn, &value, 4);
    /* Summary { value = 1 } */
    unsigned char *sum = cg_xmalloc(vn + 16);
    size_t sn = put_bytes_field(sum, 1, val, vn);
    size_t n = put_wall_time(buf, wall_time);
    buf[n++] = 0x10;  /* step, varint */
    n += put_varint(buf + n, (uint64_t)step);
    n += put_bytes_field(buf + n, 5, sum, sn);
    free(val);
    free(sum);
    return n;
}

size_t tb_frame_record(const unsigned char *data, size_t n, unsigned char *out) {
    uint64_t len = n;
    memcpy(out, &len, 8);
    uint32_t lcrc = tb_masked_crc(crc32c(out, 8));
    memcpy(out + 8, &lcrc, 4);
    memcpy(out + 12, data, n);
    uint32_t dcrc = tb_masked_crc(crc32c(data, n));
    memcpy(out + 12 + n, &dcrc, 4);
    return 16 + n;
}

static double wall_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static int write_record(tb_writer *w, const unsigned char *data, size_t n) {
    unsigned char *rec = cg_xmalloc(n + 16);
    size_t len = tb_frame_record(data, n, rec);
    int bad = fwrite(rec, 1, len, w->f) != len || fflush(w->f) != 0;
    free(rec);
    if (bad) return cg_error_set(CG_ERR_IO, "cannot write %s: %s", w->path, strerror(errno));
    return CG_OK;
}

int tb_open(tb_writer *w, const char *dir) {
    memset(w, 0, sizeof *w);
    int rc = cg_mkdir_p(dir);
    if (rc) return rc;
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    double now = wall_now();
    char *name = cg_xasprintf("events.out.tfevents.%010lld.%s", (long long)now, host);
    w->path = cg_path_join(dir, name);
    free(name);
    w->f = fopen(w->path, "ab");
    if (!w->f) {
        rc = cg_error_set(CG_ERR_IO, "cannot create %s: %s", w->path, strerror(errno));
        free(w->path);
        w->path = NULL;
        return rc;
    }
    unsigned char buf[64];
    size_t n = tb_encode_file_version(now, buf);
    return write_record(w, buf, n);
}

int tb_add_scalar(tb_writer *w, const char *tag, int64_t step, float value) {
    unsigned char *buf = cg_xmalloc(strlen(tag) + 64);
    size_t n = tb_encode_scalar(wall_now(), step, tag, value, buf);
    int rc = write_record(w, buf, n);
    free(buf);
    return rc;
}

void tb_close(tb_writer *w) {
    if (w->f) fclose(w->f);
    free(w->path);
    memset(w, 0, sizeof *w);
}
