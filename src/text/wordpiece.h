/* wordpiece.h — BERT WordPiece tokenizer (Google BERT's FullTokenizer, as vendored by
 * Chinese-CLIP; HF BertTokenizer gives the same ids for the same settings).
 *
 * Basic tokenizer, in the reference's order:
 *   1. drop U+0000, U+FFFD and control characters (categories Cc, Cf; \t \n \r are whitespace);
 *      map whitespace (space, \t \n \r, category Zs) to a space;
 *   2. put spaces around every CJK ideograph (the reference's code-point ranges);
 *   3. split on whitespace (Python's str.split());
 *   4. per word, when lower-casing: Python's str.lower(), then NFD and drop Mn (accents);
 *   5. split off every punctuation character (ASCII 33-47, 58-64, 91-96, 123-126, category P*).
 * Then WordPiece: a word longer than max_input_chars_per_word characters is [UNK]; otherwise
 * greedy longest match from the left, pieces after the first looked up as "##" + piece; a word
 * with an unmatched position is a single [UNK].
 *
 * The vocabulary file is vocab.txt: one token per line, id = line number - 1 (a later duplicate
 * wins the lookup, as in the reference's dict). [CLS] [SEP] [PAD] [UNK] must be present.
 * A loaded tokenizer is read-only: wordpiece_encode may run concurrently from many threads.
 */
#ifndef CLIPGRID_TEXT_WORDPIECE_H
#define CLIPGRID_TEXT_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

typedef struct wordpiece wordpiece;

#define WORDPIECE_MAX_CHARS_DEFAULT 200   /* Chinese-CLIP's copy; the original BERT code says 100 */

/* lower_case: 1 = lower-case and strip accents (Chinese-CLIP), 0 = neither (HF bert-base-chinese).
 * max_chars <= 0 means WORDPIECE_MAX_CHARS_DEFAULT. Errors name the file and line. */
int wordpiece_load(const char *vocab_txt, int lower_case, int max_chars, wordpiece **out);
void wordpiece_free(wordpiece *t);

int wordpiece_vocab_size(const wordpiece *t);
int wordpiece_cls(const wordpiece *t);
int wordpiece_sep(const wordpiece *t);
int wordpiece_pad(const wordpiece *t);
int wordpiece_unk(const wordpiece *t);
int wordpiece_lower_case(const wordpiece *t);
const char *wordpiece_piece(const wordpiece *t, int id);

/* Encode text[0..len) without [CLS]/[SEP] (invalid UTF-8 is dropped). Writes at most max_ids ids,
 * returns the count; *more (if not NULL) is set when further tokens existed. */
int wordpiece_encode(const wordpiece *t, const char *text, size_t len, int32_t *ids, int max_ids, int *more);

/* The basic tokenizer alone: fn(word_utf8, n, ctx) per word (after lower-casing and punctuation
 * splitting); stop early when fn returns non-zero. */
void wordpiece_basic_tokens(const char *text, size_t len, int lower_case,
                            int (*fn)(const char *word, size_t n, void *ctx), void *ctx);

/* Learn a vocabulary of `vocab_size` tokens from captions: [PAD] [UNK] [CLS] [SEP] [MASK], then
 * every character (CJK ideographs are words of their own; other characters also in their "##"
 * form when they occur inside words), most frequent first, then "##"-style merges of the most
 * frequent adjacent pieces until the size is reached. Written as vocab.txt. */
int wordpiece_learn(const char *const *texts, size_t n_texts, int vocab_size, int lower_case, const char *path);
int wordpiece_save(const wordpiece *t, const char *path);

#endif
