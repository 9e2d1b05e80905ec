/* libFuzzer target: the manifest readers on arbitrary bytes. FUZZ_MANIFEST picks the reader:
 *   csv     CSV/TSV (manifest_parse_csv); the first byte picks separator and column names
 *   jsonl   JSONL {"image","caption"} / {"file_name","text"}
 *   cnclip  Chinese-CLIP: the bytes before the first NUL are the image TSV (written to a temp
 *           file, since the TSV is always a mapped file), the rest the text JSONL; every sample's
 *           base64 is decoded
 * Checks: no crash, leak or undefined behaviour (ASan/UBSan); every sample has a non-empty
 * caption and image name; image reads succeed or fail with CG_ERR_FORMAT, never empty. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "data/manifest.h"
#include "fuzz_common.h"

enum { MODE_CSV, MODE_JSONL, MODE_CNCLIP };
static int mode;
static char tsv_path[256];

/* A per-process scratch file: in $TMPDIR, else /dev/shm (rewriting a file a million times on a
 * disk file system stalls on writeback: 1000 runs/s instead of tens of thousands), else /tmp. */
static void fuzz_temp_path(char *buf, size_t n, const char *stem, const char *ext) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(buf, n, "%s/%s_%ld.%s", dir, stem, (long)getpid(), ext);
}

static void remove_temp(void) { unlink(tsv_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *m = getenv("FUZZ_MANIFEST");
    if (!m || strcmp(m, "csv") == 0) mode = MODE_CSV;
    else if (strcmp(m, "jsonl") == 0) mode = MODE_JSONL;
    else if (strcmp(m, "cnclip") == 0) mode = MODE_CNCLIP;
    else {
        fprintf(stderr, "FUZZ_MANIFEST must be csv, jsonl or cnclip\n");
        abort();
    }
    fuzz_temp_path(tsv_path, sizeof tsv_path, "fuzz_manifest", "tsv");
    atexit(remove_temp);
    cg_log_set_level(CG_LOG_ERROR);   /* skipped rows warn; millions of runs need no such lines */
    return 0;
}

static void check_samples(const manifest *m, int read_images) {
    int64_t n = manifest_count(m);
    FUZZ_ASSERT(n >= 0 && manifest_skipped(m) >= 0);
    for (int64_t i = 0; i < n; i++) {
        const char *c = manifest_caption(m, i), *name = manifest_image_name(m, i);
        FUZZ_ASSERT(c && c[0] && name && name[0]);
        if (!read_images || i >= 64) continue;
        uint8_t *data;
        size_t len;
        int rc = manifest_read_image(m, i, &data, &len);
        FUZZ_ASSERT(rc == CG_OK || rc == CG_ERR_FORMAT);
        FUZZ_ASSERT(rc == CG_OK ? data != NULL && len > 0 : data == NULL);
        free(data);
    }
    FUZZ_ASSERT(manifest_caption(m, n) == NULL && manifest_image_name(m, -1) == NULL);
}

static void fuzz_csv(const uint8_t *data, size_t size) {
    if (size < 1) return;
    uint8_t sel = data[0];
    static const char seps[4] = {0, ',', '\t', ';'};
    manifest_opts o = {.sep = seps[sel & 3]};
    if (sel & 4) o.img_key = "a", o.caption_key = "b";
    manifest *m;
    int rc = manifest_parse_csv(sel & 8 ? "d/x.tsv" : "x.csv", (const char *)data + 1, size - 1, &o, &m);
    FUZZ_ASSERT(rc == CG_OK || rc == CG_ERR_FORMAT);
    if (rc) return;
    check_samples(m, 0);
    manifest_close(m);
}

static void fuzz_jsonl(const uint8_t *data, size_t size) {
    manifest *m;
    int rc = manifest_parse_jsonl("d/x.jsonl", (const char *)data, size, NULL, &m);
    FUZZ_ASSERT(rc == CG_OK);
    check_samples(m, 0);
    manifest_close(m);
}

static void fuzz_cnclip(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t tn = nul ? (size_t)(nul - data) : size;
    FILE *f = fopen(tsv_path, "wb");
    FUZZ_ASSERT(f);
    FUZZ_ASSERT(fwrite(data, 1, tn, f) == tn);
    fclose(f);
    const char *text = nul ? (const char *)nul + 1 : "";
    size_t len = nul ? size - tn - 1 : 0;
    manifest_opts o = {.image_tsv = tsv_path};
    manifest *m;
    int rc = manifest_parse_jsonl("x.jsonl", text, len, &o, &m);
    FUZZ_ASSERT(rc == CG_OK);
    check_samples(m, 1);
    manifest_close(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (mode == MODE_CSV) fuzz_csv(data, size);
    else if (mode == MODE_JSONL) fuzz_jsonl(data, size);
    else fuzz_cnclip(data, size);
    return 0;
}
