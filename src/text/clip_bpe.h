/* clip_bpe.h — the CLIP byte-level BPE tokenizer (OpenAI CLIP / open_clip SimpleTokenizer).
 *
 * Text -> ids, exactly as the reference (docs/tokenizers.md lists what is and is not exact):
 *   1. html.unescape twice, strip, collapse whitespace runs to one space, strip, lower-case
 *      (Python's rules; ftfy.fix_text is not reproduced);
 *   2. split with the reference regex (PCRE2, UTF + UCP + caseless):
 *      <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 *   3. each piece's UTF-8 bytes become byte symbols (bytes_to_unicode order, ids 0..255; the last
 *      symbol takes its "</w>" form, ids 256..511) and the lowest-ranked adjacent pair is merged
 *      until none is in the merge table.
 * Vocabulary: base symbols, their "</w>" forms, one token per merge in merge order, then
 * <|startoftext|> and <|endoftext|> (49406 and 49407 for the OpenAI merges).
 *
 * Files:
 *   - OpenAI's gzip merges (bpe_simple_vocab_16e6.txt.gz) or any text file of merges: line 1 is a
 *     header, then one "A B" merge per line; at most 49152-256-2 = 48,894 merges are used (the
 *     reference's slice), fewer if the file has fewer (a learned vocabulary);
 *   - a Hugging Face directory: vocab.json (token -> id) + merges.txt (same merge format).
 *
 * A loaded tokenizer is read-only: clip_bpe_encode may run concurrently from many threads.
 */
#ifndef CLIPGRID_TEXT_CLIP_BPE_H
#define CLIPGRID_TEXT_CLIP_BPE_H

#include <stddef.h>
#include <stdint.h>

#define CLIP_BPE_MAX_MERGES (49152 - 256 - 2)

typedef struct clip_bpe clip_bpe;

/* Merges file (gzip or plain). Errors name the file and line. */
int clip_bpe_load_merges(const char *path, clip_bpe **out);
/* Hugging Face layout: vocab.json + merges.txt (either path may be NULL to use only the other:
 * merges alone give the reference id order). */
int clip_bpe_load_hf(const char *vocab_json, const char *merges_txt, clip_bpe **out);
void clip_bpe_free(clip_bpe *t);

int clip_bpe_vocab_size(const clip_bpe *t);
int clip_bpe_n_merges(const clip_bpe *t);
int clip_bpe_sot(const clip_bpe *t);
int clip_bpe_eot(const clip_bpe *t);
/* Token string in byte-unicode form ("photo</w>"); NULL for an id out of range. */
const char *clip_bpe_piece(const clip_bpe *t, int id);
/* The token as text: byte-unicode symbols mapped back to bytes, "</w>" shown as a trailing
 * space is dropped. Writes at most cap-1 bytes + NUL into buf; returns buf. */
char *clip_bpe_piece_text(const clip_bpe *t, int id, char *buf, size_t cap);

/* Encode text[0..len) (any bytes; invalid UTF-8 is dropped) without specials. Writes at most
 * `max_ids` ids and returns how many were written; *more (if not NULL) is set when the text had
 * further tokens (the caller truncates). Stops working once max_ids+1 tokens are known. */
int clip_bpe_encode(const clip_bpe *t, const char *text, size_t len, int32_t *ids, int max_ids, int *more);

/* The clean-up stage alone (html unescape, whitespace, lower): for tests and vocab learning.
 * Returns a malloc()ed NUL-terminated UTF-8 string. */
char *clip_bpe_clean(const char *text, size_t len);

/* Split cleaned text with the reference regex; calls fn(piece, piece_len, ctx) per piece and
 * stops early when fn returns non-zero. Returns CG_OK or an error code (PCRE2 failure). */
int clip_bpe_split(const clip_bpe *t, const char *clean, size_t len,
                   int (*fn)(const char *piece, size_t n, void *ctx), void *ctx);

/* Learn merges from captions until the vocabulary has `vocab_size` entries (514 + merges; at
 * most 49,408) or no adjacent pair is left, and write them in the merges-file format (gzip when
 * `path` ends in .gz). The file loads back with clip_bpe_load_merges. */
int clip_bpe_learn(const char *const *texts, size_t n_texts, int vocab_size, const char *path);
/* Write the merges of a loaded tokenizer in the merges-file format. */
int clip_bpe_save_merges(const clip_bpe *t, const char *path);

/* For tests: the reference merge loop (lowest-ranked pair, every occurrence left to right),
 * instead of the heap that encode uses when the merge table allows it. */
void clip_bpe_force_reference_merge(clip_bpe *t, int on);
int clip_bpe_uses_heap(const clip_bpe *t);

#endif
