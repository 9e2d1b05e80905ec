#!/usr/bin/env python3
"""Reference side of the tokenizer benchmark: the same corpora through the Python tokenizers.

Run bench_tokenizer first (it writes the corpora and its ids to DIR), then, with a venv outside
the repository holding ftfy, regex and transformers:

    python3 -m venv /work/venv-tok && /work/venv-tok/bin/pip install ftfy regex transformers
    /work/venv-tok/bin/python bench/tokenizer_ref.py --dir DIR \
        --clip-vocab ../shared/data/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz \
        --bert-vocab ../shared/data/tokenizers/bert_base_chinese_vocab.txt

Compared against (captions/s, each caption -> one padded row as the C side builds):
  * clip-simple: the OpenAI CLIP / open_clip SimpleTokenizer algorithm (ftfy.fix_text, html.unescape
    twice, whitespace clean, lower, the `regex` split, BPE with a per-word cache), re-implemented here
    from its published description (model_specs.md 2.6); with and without ftfy;
  * bert-full: Google BERT's FullTokenizer as Chinese-CLIP vendors it (basic tokenizer + greedy
    WordPiece, do_lower_case=True, 200 chars per word), re-implemented here from the algorithm;
  * transformers (5.x) CLIPTokenizer and BertTokenizer, which in transformers 5 are the Rust
    `tokenizers` implementations (the same classes as ...Fast), built from a vocab.json + merges.txt
    written from the same merges and from vocab.txt (do_lower_case=True), called per caption and
    once on the whole list.
It also checks that the ids equal the C ids (DIR/<corpus>.ids) and prints the agreement counts.
"""
import argparse
import gzip
import html
import json
import os
import sys
import tempfile
import time
from functools import lru_cache

import numpy as np


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def best_of(fn, reps=3):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# ---------------------------------------------------------------- the CLIP BPE algorithm

def byte_symbols():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    order, chars, extra = list(keep), [chr(b) for b in keep], 0
    for b in range(256):
        if b not in keep:
            order.append(b)
            chars.append(chr(256 + extra))
            extra += 1
    return dict(zip(order, chars)), chars


class ClipBpe:
    def __init__(self, gz_path, use_ftfy):
        import regex
        lines = gzip.open(gz_path).read().decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
        self.byte_char, chars = byte_symbols()
        vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        self.ids = {tok: i for i, tok in enumerate(vocab)}
        self.rank = {m: i for i, m in enumerate(merges)}
        self.sot, self.eot = self.ids["<|startoftext|>"], self.ids["<|endoftext|>"]
        self.split = regex.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE)
        self.ws = regex.compile(r"\s+")
        self.fix = None
        if use_ftfy:
            import ftfy
            self.fix = ftfy.fix_text
        self.merge_word = lru_cache(maxsize=None)(self._merge_word)

    def _merge_word(self, word):
        if word in ("<|startoftext|>", "<|endoftext|>"):
            return (word,)
        syms = list(word[:-1]) + [word[-1] + "</w>"]
        while len(syms) > 1:
            pairs = {(syms[i], syms[i + 1]) for i in range(len(syms) - 1)}
            first, second = min(pairs, key=lambda p: self.rank.get(p, 1 << 30))
            if (first, second) not in self.rank:
                break
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == first and syms[i + 1] == second:
                    out.append(first + second)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        return tuple(syms)

    def encode(self, text):
        if self.fix:
            text = self.fix(text)
        text = html.unescape(html.unescape(text)).strip()
        text = self.ws.sub(" ", text).strip().lower()
        ids = []
        for piece in self.split.findall(text):
            word = "".join(self.byte_char[b] for b in piece.encode("utf-8"))
            ids.extend(self.ids[s] for s in self.merge_word(word))
        return ids

    def row(self, text, context=77):
        toks = [self.sot] + self.encode(text) + [self.eot]
        if len(toks) > context:
            toks = toks[:context]
            toks[-1] = self.eot
        return toks + [0] * (context - len(toks))


# ---------------------------------------------------------------- the BERT basic + WordPiece algorithm

class BertWordPiece:
    """Google BERT's FullTokenizer as Chinese-CLIP vendors it (do_lower_case, max 200 chars)."""

    CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
           (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))

    def __init__(self, vocab_path, lower=True, max_chars=200):
        import unicodedata
        self.ud = unicodedata
        self.vocab = {}
        with open(vocab_path, encoding="utf-8") as f:
            for i, line in enumerate(f):
                self.vocab[line.strip()] = i
        self.lower, self.max_chars = lower, max_chars
        self.cls, self.sep, self.pad, self.unk = (self.vocab[t] for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]"))

    def _punct(self, ch):
        cp = ord(ch)
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
            return True
        return self.ud.category(ch).startswith("P")

    def words(self, text):
        out = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or (ch not in "\t\n\r" and self.ud.category(ch) in ("Cc", "Cf")):
                continue
            if ch in " \t\n\r" or self.ud.category(ch) == "Zs":
                out.append(" ")
            elif any(a <= cp <= b for a, b in self.CJK):
                out.append(" " + ch + " ")
            else:
                out.append(ch)
        result = []
        for tok in "".join(out).split():
            if self.lower:
                tok = "".join(c for c in self.ud.normalize("NFD", tok.lower()) if self.ud.category(c) != "Mn")
            cur = ""
            for ch in tok:
                if self._punct(ch):
                    if cur:
                        result.append(cur)
                    result.append(ch)
                    cur = ""
                else:
                    cur += ch
            if cur:
                result.append(cur)
        return result

    def encode(self, text):
        ids = []
        for w in self.words(text):
            if len(w) > self.max_chars:
                ids.append(self.unk)
                continue
            start, pieces = 0, []
            while start < len(w):
                end = len(w)
                while end > start:
                    sub = w[start:end] if start == 0 else "##" + w[start:end]
                    if sub in self.vocab:
                        pieces.append(self.vocab[sub])
                        break
                    end -= 1
                if end == start:
                    pieces = [self.unk]
                    break
                start = end
            ids.extend(pieces)
        return ids

    def row(self, text, context=52):
        toks = [self.cls] + self.encode(text)[: context - 2] + [self.sep]
        return toks + [self.pad] * (context - len(toks))


def write_hf_clip(gz_path, dirname):
    lines = gzip.open(gz_path).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    _, chars = byte_symbols()
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(dirname, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({tok: i for i, tok in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(dirname, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


# ---------------------------------------------------------------- measuring

def agreement(rows, c_ids):
    rows = np.asarray(rows, dtype=np.int32)
    return int((rows == c_ids[: len(rows)]).all(axis=1).sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--clip-vocab", required=True)
    ap.add_argument("--bert-vocab", required=True)
    ap.add_argument("--n-slow", type=int, default=10000, help="captions for the pure-Python tokenizers")
    args = ap.parse_args()

    import transformers
    from transformers import BertTokenizerFast, CLIPTokenizerFast
    transformers.logging.set_verbosity_error()

    corpora = {name: read_lines(os.path.join(args.dir, name + ".txt"))
               for name in ("en_templates", "en_varied", "zh_templates", "zh_varied")}
    c_ids = {}
    for name, lines in corpora.items():
        ctx = 77 if name.startswith("en") else 52
        c_ids[name] = np.fromfile(os.path.join(args.dir, name + ".ids"), dtype=np.int32).reshape(len(lines), ctx)

    results = []

    def record(corpus, tokenizer, n, seconds, agree=None, note=""):
        r = {"corpus": corpus, "tokenizer": tokenizer, "captions": n, "captions_per_s": n / seconds}
        if agree is not None:
            r["same_ids_as_c"] = agree
        if note:
            r["note"] = note
        results.append(r)
        same = "" if agree is None else f"  same ids as C: {agree}/{n}"
        print(f"{corpus:13s} {tokenizer:44s} {n / seconds:12.0f} captions/s{same}", flush=True)

    tmp = tempfile.mkdtemp(prefix="clipgrid_hf_clip_")
    write_hf_clip(args.clip_vocab, tmp)
    vj, mt = os.path.join(tmp, "vocab.json"), os.path.join(tmp, "merges.txt")
    for name in ("en_templates", "en_varied"):
        lines = corpora[name]
        slow = lines[: args.n_slow]
        for use_ftfy in (False, True):
            tok = ClipBpe(args.clip_vocab, use_ftfy)   # fresh cache: the first pass fills it
            dt, rows = best_of(lambda: [tok.row(t) for t in slow], reps=1)
            label = "clip-simple (Python%s, BPE cache)" % (" + ftfy" if use_ftfy else ", no ftfy")
            record(name, label, len(slow), dt, agreement(rows, c_ids[name]))
        # transformers 5 has no pure-Python CLIP/BERT tokenizers: both classes run on `tokenizers` (Rust)
        fast = CLIPTokenizerFast(vj, mt)
        dt, rows = best_of(lambda: [fast(t, padding="max_length", max_length=77, truncation=True)["input_ids"]
                                    for t in lines])
        rows = [r[: r.index(49407, 1) + 1] + [0] * (76 - r.index(49407, 1)) for r in rows]   # HF pads with EOT
        record(name, "transformers CLIPTokenizer(Fast), per caption", len(lines), dt, agreement(rows, c_ids[name]),
               "HF cleaning: no html.unescape")
        dt, _ = best_of(lambda: fast(lines, padding="max_length", max_length=77, truncation=True)["input_ids"])
        record(name, "transformers CLIPTokenizer(Fast), one batch", len(lines), dt)

    for name in ("zh_templates", "zh_varied"):
        lines = corpora[name]
        slow = lines[: args.n_slow]
        bw = BertWordPiece(args.bert_vocab, lower=True, max_chars=200)
        dt, rows = best_of(lambda: [bw.row(t) for t in slow], reps=1)
        record(name, "bert-full (Python, Chinese-CLIP FullTokenizer)", len(slow), dt, agreement(rows, c_ids[name]))
        fast = BertTokenizerFast(args.bert_vocab, do_lower_case=True)
        dt, rows = best_of(lambda: [fast(t, padding="max_length", max_length=52, truncation=True)["input_ids"]
                                    for t in lines])
        record(name, "transformers BertTokenizer(Fast), per caption", len(lines), dt, agreement(rows, c_ids[name]))
        dt, _ = best_of(lambda: fast(lines, padding="max_length", max_length=52, truncation=True)["input_ids"])
        record(name, "transformers BertTokenizer(Fast), one batch", len(lines), dt)

    out = os.path.join(args.dir, "tokenizer_ref.json")
    with open(out, "w") as f:
        json.dump({"python": sys.version.split()[0], "transformers": transformers.__version__,
                   "results": results}, f, indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main()
