/* libFuzzer target: BERT WordPiece encode on arbitrary bytes, both casing settings.
 * Checks: no crash or out-of-bounds access (ASan), ids in range, the row layout. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "text/tokenizer.h"
#include "text/wordpiece.h"

static wordpiece *lower, *cased, *short_words;
static text_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char *p = fuzz_vocab_path("bert_base_chinese_vocab.txt");
    text_tok_options o = {.vocab = p};
    if (wordpiece_load(p, 1, 0, &lower) || wordpiece_load(p, 0, 0, &cased) || wordpiece_load(p, 1, 3, &short_words) ||
        text_tokenizer_load("bert-base-chinese", &o, &tok)) {
        fprintf(stderr, "%s\n", cg_error_message());
        abort();
    }
    free(p);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    int32_t ids[256];
    int more = 0;
    wordpiece *all[3] = {lower, cased, short_words};
    int n_lower = 0;
    for (int k = 0; k < 3; k++) {
        int n = wordpiece_encode(all[k], text, size, ids, 256, &more);
        FUZZ_ASSERT(n >= 0 && n <= 256);
        for (int i = 0; i < n; i++) FUZZ_ASSERT(ids[i] >= 0 && ids[i] < wordpiece_vocab_size(all[k]));
        if (k == 0) n_lower = n;
    }
    int32_t raw[256], row[52];
    int n = wordpiece_encode(lower, text, size, raw, 256, &more);
    FUZZ_ASSERT(n == n_lower);
    int truncated = 0;
    int len = text_tokenizer_encode_ex(tok, text, size, row, 52, &truncated);
    FUZZ_ASSERT(len >= 2 && len <= 52 && row[0] == 101 && row[len - 1] == 102);
    for (int i = len; i < 52; i++) FUZZ_ASSERT(row[i] == 0);
    FUZZ_ASSERT(memcmp(row + 1, raw, (size_t)(len - 2) * sizeof *raw) == 0);
    return 0;
}
