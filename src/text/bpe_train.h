/* bpe_train.h — the pair-merging loop shared by the vocabulary learners (internal to src/text/).
 *
 * Words are sequences of token ids with a count. Each round merges the most frequent adjacent
 * pair (ties: the smaller left token string, then the smaller right one, byte order) into a new
 * token, in every word, left to right. A pair whose merged string is already a token is skipped
 * for good, so every token string is made by exactly one merge and every merge's inputs exist
 * before it (what the encoder's heap merge relies on).
 */
#ifndef CLIPGRID_TEXT_BPE_TRAIN_H
#define CLIPGRID_TEXT_BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "text/text_util.h"

typedef struct {
    /* words */
    int32_t **syms;
    int *len;
    int64_t *count;
    size_t n_words, cap_words;
    /* tokens */
    char **tok;          /* malloc()ed strings */
    int n_tok, cap_tok;
    tx_strmap tok_map;   /* string -> id */
    /* merges made */
    int32_t *merge_a, *merge_b;
    int n_merges;
} tx_bpe_state;

void tx_bpe_init(tx_bpe_state *s);
void tx_bpe_free(tx_bpe_state *s);
/* Add a token (copied); returns its id, or the existing id when present. */
int32_t tx_bpe_add_token(tx_bpe_state *s, const char *str, size_t n);
/* Add a word (ids copied) occurring `count` times. */
void tx_bpe_add_word(tx_bpe_state *s, const int32_t *ids, int n, int64_t count);
/* Merge until n_tok reaches max_tokens or no pair is left. wordpiece: the right token's
 * leading "##" is dropped when forming the merged string. */
void tx_bpe_train(tx_bpe_state *s, int max_tokens, int wordpiece);

#endif
