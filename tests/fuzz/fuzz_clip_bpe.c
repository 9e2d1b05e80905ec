/* libFuzzer target: CLIP BPE encode on arbitrary bytes (invalid UTF-8, entities, huge words).
 * Checks: no crash or out-of-bounds access (ASan), ids in range, the row layout, the heap merge
 * equal to the reference merge loop on inputs small enough for the quadratic loop. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "text/clip_bpe.h"
#include "text/tokenizer.h"

static clip_bpe *fast, *slow;
static text_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char *p = fuzz_vocab_path("clip_bpe_simple_vocab_16e6.txt.gz");
    text_tok_options o = {.vocab = p};
    if (clip_bpe_load_merges(p, &fast) || clip_bpe_load_merges(p, &slow) || text_tokenizer_load("clip:ViT-B/32", &o, &tok)) {
        fprintf(stderr, "%s\n", cg_error_message());
        abort();
    }
    clip_bpe_force_reference_merge(slow, 1);
    free(p);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    int32_t ids[256], ref[256];
    int more = 0, more2 = 0;
    int n = clip_bpe_encode(fast, text, size, ids, 256, &more);
    FUZZ_ASSERT(n >= 0 && n <= 256);
    for (int i = 0; i < n; i++) FUZZ_ASSERT(ids[i] >= 0 && ids[i] < clip_bpe_vocab_size(fast));
    if (size <= 2048) {
        int m = clip_bpe_encode(slow, text, size, ref, 256, &more2);
        FUZZ_ASSERT(m == n && more == more2 && memcmp(ids, ref, (size_t)n * sizeof *ids) == 0);
    }
    int32_t row[77];
    int truncated = 0;
    int len = text_tokenizer_encode_ex(tok, text, size, row, 77, &truncated);
    FUZZ_ASSERT(len >= 2 && len <= 77);
    FUZZ_ASSERT(row[0] == 49406 && row[len - 1] == 49407);
    for (int i = len; i < 77; i++) FUZZ_ASSERT(row[i] == 0);
    FUZZ_ASSERT(memcmp(row + 1, ids, (size_t)(len - 2) * sizeof *ids) == 0);
    FUZZ_ASSERT(truncated == (n > 75));
    int32_t small[3];
    len = text_tokenizer_encode_ex(tok, text, size, small, 3, &truncated);
    FUZZ_ASSERT(len >= 2 && len <= 3 && small[len - 1] == 49407);
    return 0;
}
