#!/usr/bin/env bash
# Training throughput of the demo configurations, clipgrid next to PyTorch CPU, same model and
# batch shape, same thread count, one after the other in one run.
# usage: bash bench/clip_train_compare.sh [BUILD_DIR] [PYTHON] [STEPS]
# PYTHON needs torch, timm and transformers (a venv outside the repository).
set -euo pipefail
build="${1:-build}"; py="${2:-/work/venv/bin/python}"; steps="${3:-30}"
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
out="$here/results/clip_train_compare_$(date +%Y%m%d).jsonl"
: > "$out"
printf '%-14s %-10s %12s %12s %7s\n' image text clipgrid_ips pytorch_ips ratio
for img in starnet_s050 starnet_s100; do
  for txt in clip:tiny bert:tiny; do
    d="$tmp/${img}_${txt/:/_}"
    "$build/clipgrid" train --image-encoder "$img" --text-encoder "$txt" --batch-size 64 --image-size 32 \
      --context-length 24 --steps "$steps" --warmup 0 --lr 1e-3 --eval-samples 100 --threads 2 --log-every 1000 \
      --save-every 0 --out "$d" > "$d.log" 2>&1
    c=$(python3 -c "import json; print(json.load(open('$d/result.json'))['images_per_s'])")
    v=$(python3 -c "import json; print(json.load(open('$d/config.json'))['vocab_size'])")
    t=$("$py" "$here/clip_train_torch.py" --image "$img" --text "$txt" --batch 64 --size 32 --context 24 \
        --vocab "$v" --steps "$steps" --threads 2 | tail -1)
    echo "{\"image\": \"$img\", \"text\": \"$txt\", \"clipgrid_images_per_s\": $c, \"pytorch\": $t}" >> "$out"
    tp=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['images_per_s'])" "$t")
    printf '%-14s %-10s %12.1f %12.1f %7.2f\n' "$img" "$txt" "$c" "$tp" "$(python3 -c "print($c/$tp)")"
  done
done
echo "wrote $out"
