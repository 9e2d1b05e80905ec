#!/usr/bin/env bash
# Build the tokenizer fuzz targets with clang + libFuzzer + ASan/UBSan and run each one.
#
#   tests/fuzz/run.sh [RUNS] [OUT_DIR]      RUNS: executions per target (default 200000)
#
# Needs clang and libclang-rt-dev (Debian), CLIPGRID_SHARED_DATA (default ../shared/data next to
# the repository) for the reference vocabularies. Each target first executes the huge seed inputs
# (1 MiB random bytes, a 1 MiB single word, 1 MiB of entities and CJK), then fuzzes from a seed
# corpus of captions for RUNS executions (-max_len 16384; the vocabulary-file target RUNS/10). docs/tokenizers.md records the counts run.
# Data readers: fuzz_manifest_{csv,jsonl,cnclip} and fuzz_tar, RUNS each from small seed files
# (-max_len 65536); docs/data.md records the counts run. FUZZ_ONLY="name ..." runs only those targets.
# Image decoders: fuzz_image_{jpeg,png,webp}, RUNS each from small files written by ImageMagick and
# cjpeg (-max_len 16384); docs/data.md records the counts run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
runs="${1:-200000}"
out="${2:-$root/build-fuzz}"
export CLIPGRID_SHARED_DATA="${CLIPGRID_SHARED_DATA:-$root/../shared/data}"
[ -d "$CLIPGRID_SHARED_DATA/tokenizers" ] || { echo "run.sh: $CLIPGRID_SHARED_DATA/tokenizers is missing" >&2; exit 1; }
CC="${CC:-clang}"
mkdir -p "$out"
only="${FUZZ_ONLY:-}"
want() { [ -z "$only" ] || [[ " $only " == *" $1 "* ]]; }

srcs=()
for f in "$root"/src/text/*.c; do
  case "$(basename "$f")" in tokenize_cli.c) ;; *) srcs+=("$f") ;; esac
done
srcs+=("$root/src/core/log.c" "$root/src/core/fileio.c")
flags=(-std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 -fno-omit-frame-pointer
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I "$root/src" -I "$here")
libs=($(pkg-config --libs libpcre2-8 libutf8proc zlib libcjson) -lpthread)

# seeds: captions, entities, invalid UTF-8, and the huge inputs
seeds="$out/seeds"
huge="$out/huge"
mkdir -p "$seeds" "$huge"
i=0
while IFS= read -r line; do
  printf '%s' "$line" > "$seeds/seed_$i"; i=$((i + 1))
done <<'SEEDS'
a photo of a cat
A Photo Of A Cat. &amp; html &lt;tags&gt; &#x41;&#128;&notin
don't stop believin' I'm 25 years old; it's 3:45pm
emoji 🙂 and café naïve ΣΑΣ İstanbul
一张猫的照片 T恤/上衣 价格：￥199.99元 ２０２４年ＡＢＣ
<|startoftext|>supercalifragilisticexpialidocious<|endoftext|>
深度学习（deep learning）😀表情 𠀀罕见字
SEEDS
printf 'bad \xff\xfe \xed\xa0\x80 \xc3 \xf4\x90\x80\x80 \xe2\x82' > "$seeds/seed_invalid_utf8"
head -c 1048576 /dev/urandom > "$huge/random_1MiB"
head -c 1048576 /dev/zero | tr '\0' 'a' > "$huge/one_word_1MiB"
(yes '&amp;lt;中文&#x1F642;ß' || true) | head -c 1048576 > "$huge/entities_cjk_1MiB"
(yes 'the quick brown fox ' || true) | head -c 1048576 > "$huge/words_1MiB"

status=0
for target in fuzz_clip_bpe fuzz_wordpiece fuzz_vocab; do
  want "$target" || continue
  echo "== $target: build"
  "$CC" "${flags[@]}" "$here/$target.c" "${srcs[@]}" "${libs[@]}" -o "$out/$target"
  echo "== $target: huge inputs"
  "$out/$target" -artifact_prefix="$out/" "$huge"/* 2>&1 | tail -n 2 || status=1
  corpus="$out/corpus_$target"
  mkdir -p "$corpus"
  n="$runs"
  [ "$target" = fuzz_vocab ] && n=$((runs / 10))   # each input loads a vocabulary: ~300 runs/s
  echo "== $target: $n runs"
  if "$out/$target" -runs="$n" -max_len=16384 -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 -artifact_prefix="$out/" \
       "$corpus" "$seeds" > "$out/$target.log" 2>&1; then
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|Done [0-9]+ runs)" "$out/$target.log" || tail -n 3 "$out/$target.log"
  else
    echo "$target FAILED: see $out/$target.log" >&2
    tail -n 40 "$out/$target.log" >&2
    status=1
  fi
done
# ---- data readers: manifests (one binary; FUZZ_MANIFEST picks csv, jsonl or cnclip) and tars
data_srcs=("$root/src/data/manifest.c" "$root/src/data/wds.c" "$root/src/core/log.c" "$root/src/core/fileio.c")
data_libs=($(pkg-config --libs libarchive libcjson) -lm -lpthread)
dseeds="$out/seeds_data"
mkdir -p "$dseeds/csv" "$dseeds/jsonl" "$dseeds/cnclip" "$dseeds/tar" "$dseeds/tar_src/d"
printf '\x00filepath,title\r\na.jpg,"a cat, ""quoted""\r\n\nmulti\r\n"\n/b.png,一只猫\n,\n' > "$dseeds/csv/s1"
printf '\x0ca\tb\nx.jpg\tcap\n"q\t.jpg"\t"open\n' > "$dseeds/csv/s2"
printf '\xef\xbb\xbf{"image": "a.jpg", "caption": "a dog"}\n{"file_name": "b.png", "text": "\\u4e2d"}\r\n[1]\n{"image": 1}\n' > "$dseeds/jsonl/s1"
printf '1\tQUJD\n2\tQUJDRA==\n3\t-_8\n4\tA!\n\x00{"text_id": 1, "text": "连衣裙", "image_ids": [1, 2, 3, 4, 9]}\n' > "$dseeds/cnclip/s1"
(cd "$dseeds/tar_src" && printf JPG > 0.jpg && printf cap > 0.txt && printf '{"caption": "j"}' > 1.json &&
 printf PNG > 1.PNG && printf m > __meta__ && printf x > d/a.seg.jpg && printf y > d/a.txt && printf z > 2.jpg &&
 tar --format=gnu --no-recursion -cf "$dseeds/tar/s1.tar" 0.jpg 0.txt __meta__ 1.json 1.PNG d d/a.seg.jpg d/a.txt 2.jpg 0.jpg &&
 tar --format=posix -czf "$dseeds/tar/s2.tar.gz" 0.jpg 0.txt 1.json 1.PNG)
for spec in fuzz_manifest_csv:csv fuzz_manifest_jsonl:jsonl fuzz_manifest_cnclip:cnclip fuzz_tar:tar; do
  name="${spec%%:*}" kind="${spec#*:}"
  want "$name" || continue
  src="$here/fuzz_manifest.c"; [ "$kind" = tar ] && src="$here/fuzz_tar.c"
  echo "== $name: build"
  "$CC" "${flags[@]}" "$src" "${data_srcs[@]}" "${data_libs[@]}" -o "$out/$name"
  corpus="$out/corpus_$name"
  mkdir -p "$corpus"
  echo "== $name: $runs runs"
  if FUZZ_MANIFEST="$kind" "$out/$name" -runs="$runs" -max_len=65536 -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
       -artifact_prefix="$out/$name-" "$corpus" "$dseeds/$kind" > "$out/$name.log" 2>&1; then
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|Done [0-9]+ runs)" "$out/$name.log" || tail -n 3 "$out/$name.log"
  else
    echo "$name FAILED: see $out/$name.log" >&2
    tail -n 40 "$out/$name.log" >&2
    status=1
  fi
done
# ---- image decoders: fuzz_image_{jpeg,png,webp}, one source (fuzz_image.c) built per decoder, each
# fuzzed RUNS times from its own seeds: small files written here by ImageMagick (/usr/bin/convert
# when present) and cjpeg, each behind a selector byte (0: full size, else a DCT-scaling hint).
# Each binary stamps its format's magic on every input and prints how many inputs reached each
# decoder; docs/data.md records the counts run.
img_cv=convert; [ -x /usr/bin/convert ] && img_cv=/usr/bin/convert
img_seeds="$out/seeds_image"
img_targets=()
for name in fuzz_image_jpeg fuzz_image_png fuzz_image_webp; do
  if want "$name"; then img_targets+=("$name"); fi
done
if [ ${#img_targets[@]} -gt 0 ]; then
  for tool in "$img_cv" cjpeg; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is needed for the image seeds" >&2; exit 1; }
  done
  raw="$img_seeds/raw"
  mkdir -p "$raw/jpeg" "$raw/png" "$raw/webp"
  "$img_cv" -size 40x28 gradient:red-blue -fill yellow -draw 'circle 14,14 20,14' -fill black -draw 'rectangle 26,4 36,12' "$raw/src.ppm"
  "$img_cv" "$raw/src.ppm" \( +clone -fx 'i/w' \) -alpha off -compose CopyOpacity -composite "$raw/src_alpha.png"
  cjpeg -quality 75 "$raw/src.ppm" > "$raw/jpeg/baseline.jpg"
  cjpeg -quality 75 -progressive "$raw/src.ppm" > "$raw/jpeg/progressive.jpg"
  cjpeg -quality 75 -grayscale "$raw/src.ppm" > "$raw/jpeg/gray.jpg"
  cjpeg -quality 75 -restart 1 -sample 1x1 "$raw/src.ppm" > "$raw/jpeg/restart_444.jpg"
  cjpeg -quality 75 -arithmetic "$raw/src.ppm" > "$raw/jpeg/arithmetic.jpg"
  "$img_cv" "$raw/src.ppm" -colorspace CMYK -quality 75 "$raw/jpeg/cmyk.jpg"
  # baseline.jpg with an EXIF APP1 (big-endian TIFF, Orientation = 6) after SOI
  { printf '\xff\xd8\xff\xe1\x00\x22Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00\x00\x00'
    tail -c +3 "$raw/jpeg/baseline.jpg"; } > "$raw/jpeg/exif6.jpg"
  "$img_cv" "$raw/src.ppm" "$raw/png/rgb.png"
  "$img_cv" "$raw/src_alpha.png" "$raw/png/rgba.png"
  "$img_cv" "$raw/src_alpha.png" PNG8:"$raw/png/palette_trns.png"
  "$img_cv" "$raw/src_alpha.png" -colorspace Gray -define png:color-type=4 "$raw/png/gray_alpha.png"
  "$img_cv" "$raw/src.ppm" -depth 16 PNG48:"$raw/png/rgb16.png"
  "$img_cv" "$raw/src.ppm" -interlace PNG "$raw/png/interlaced.png"
  "$img_cv" "$raw/src.ppm" -colorspace Gray -threshold 50% -type Bilevel "$raw/png/bilevel.png"
  "$img_cv" "$raw/src.ppm" -define webp:lossless=true "$raw/webp/lossless.webp"
  "$img_cv" "$raw/src.ppm" -quality 75 "$raw/webp/lossy.webp"
  "$img_cv" "$raw/src_alpha.png" -quality 75 "$raw/webp/lossy_alpha.webp"
  "$img_cv" "$raw/src_alpha.png" -define webp:lossless=true "$raw/webp/lossless_alpha.webp"
  img_libs=($(pkg-config --libs libturbojpeg libpng libwebp) -lm -lpthread)
  for name in "${img_targets[@]}"; do
    fmt="${name#fuzz_image_}"
    seeds="$img_seeds/$fmt"
    mkdir -p "$seeds"
    for f in "$raw/$fmt"/*; do   # selector byte 0 (full size) and 0x21 (hint 5 x 9)
      { printf '\x00'; cat "$f"; } > "$seeds/full_$(basename "$f")"
      { printf '\x21'; cat "$f"; } > "$seeds/hint_$(basename "$f")"
    done
    echo "== $name: build"
    case "$fmt" in jpeg) force=1 ;; png) force=2 ;; *) force=3 ;; esac
    "$CC" "${flags[@]}" -DFUZZ_FORCE_FORMAT=$force "$here/fuzz_image.c" "$root/src/data/image.c" "$root/src/core/log.c" "$root/src/core/fileio.c" \
      "${img_libs[@]}" -o "$out/$name"
    corpus="$out/corpus_$name"
    mkdir -p "$corpus"
    echo "== $name: $runs runs"
    if "$out/$name" -runs="$runs" -max_len=16384 -rss_limit_mb=2048 -timeout=30 -print_final_stats=1 \
         -artifact_prefix="$out/$name-" "$corpus" "$seeds" > "$out/$name.log" 2>&1; then
      grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec|fuzz_image: inputs|Done [0-9]+ runs)" \
        "$out/$name.log" || tail -n 3 "$out/$name.log"
    else
      echo "$name FAILED: see $out/$name.log" >&2
      tail -n 40 "$out/$name.log" >&2
      status=1
    fi
  done
fi
exit $status
