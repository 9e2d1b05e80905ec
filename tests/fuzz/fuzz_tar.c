/* libFuzzer target: WebDataset samples out of arbitrary bytes, through libarchive's memory
 * reader (tar format, every compression filter) and wds.c's grouping.
 * Checks: no crash, leak or undefined behaviour (ASan/UBSan; libarchive itself is not
 * instrumented); every sample has a key; ok samples have image and caption and an empty `why`,
 * others a reason; after the end or an error the reader stays there; and wds_count on the same
 * bytes (as a file: it skips data instead of reading it) finds as many samples whenever both
 * finish without error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "data/wds.h"
#include "fuzz_common.h"

static char tar_path[256];

/* A per-process scratch file: in $TMPDIR, else /dev/shm (rewriting a file a million times on a
 * disk file system stalls on writeback: 1000 runs/s instead of tens of thousands), else /tmp. */
static void fuzz_temp_path(char *buf, size_t n, const char *stem, const char *ext) {
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(buf, n, "%s/%s_%ld.%s", dir, stem, (long)getpid(), ext);
}

static void remove_temp(void) { unlink(tar_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_temp_path(tar_path, sizeof tar_path, "fuzz_tar", "tar");
    atexit(remove_temp);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    wds_reader *r;
    int rc = wds_open_memory(data, size, "fuzz.tar", &r);
    FUZZ_ASSERT(rc == CG_OK || rc == CG_ERR_FORMAT);
    if (rc) return 0;
    int64_t samples = 0;
    wds_sample s;
    while ((rc = wds_next(r, &s)) == 1) {
        FUZZ_ASSERT(s.key != NULL);
        if (s.ok) FUZZ_ASSERT(s.image && s.caption && s.why[0] == 0);
        else FUZZ_ASSERT(s.why[0] != 0);
        wds_sample_free(&s);
        samples++;
    }
    FUZZ_ASSERT(rc == 0 || rc == CG_ERR_FORMAT);
    FUZZ_ASSERT(wds_next(r, &s) == rc && s.key == NULL);   /* the end, or the error, stays */
    wds_close(r);

    FILE *f = fopen(tar_path, "wb");
    FUZZ_ASSERT(f && fwrite(data, 1, size, f) == size);
    fclose(f);
    int64_t counted = -1;
    int crc = wds_count(tar_path, &counted);
    FUZZ_ASSERT(crc == CG_OK || crc == CG_ERR_FORMAT);
    if (rc == 0 && crc == CG_OK) FUZZ_ASSERT(counted == samples);
    return 0;
}
