/* libFuzzer target: the vocabulary loaders on arbitrary file contents (CLIP merges, BERT
 * vocab.txt). A bad file must give an error, never a crash; a good one must encode. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/log.h"
#include "text/clip_bpe.h"
#include "text/wordpiece.h"

static char path[128];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0]) snprintf(path, sizeof path, "/tmp/clipgrid_fuzz_vocab_%ld.txt", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    static const char sample[] = "the quick brown fox \xe4\xb8\xad\xe6\x96\x87 [CLS] ##a caf\xc3\xa9";
    int32_t ids[64];
    clip_bpe *b = NULL;
    if (clip_bpe_load_merges(path, &b) == CG_OK) {
        int n = clip_bpe_encode(b, sample, sizeof sample - 1, ids, 64, NULL);
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= clip_bpe_vocab_size(b)) abort();
        clip_bpe_free(b);
    }
    wordpiece *w = NULL;
    if (wordpiece_load(path, 1, 0, &w) == CG_OK) {
        int n = wordpiece_encode(w, sample, sizeof sample - 1, ids, 64, NULL);
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= wordpiece_vocab_size(w)) abort();
        wordpiece_free(w);
    }
    cg_error_clear();
    return 0;
}
