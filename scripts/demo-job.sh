#!/usr/bin/env bash
# A stand-in training job for `make demo` until `clipgrid train` exists (issue 5): it is NOT a
# trainer. It walks through `--steps` fake steps, writing progress.json as a trainer will and a
# result.json at the end, so the demo shows the launcher's live status and summary for real.
# usage: demo-job.sh OUT_DIR IMAGE_ENCODER TEXT_ENCODER [train flags...]
set -euo pipefail
out="$1"; img="$2"; txt="$3"; shift 3
steps=20
while [ $# -gt 0 ]; do
  case "$1" in --steps) steps="$2"; shift 2;; *) shift;; esac
done
mkdir -p "$out"
echo "demo job: $img x $txt, $steps steps (simulated; no training happens)"
# a deterministic per-config "loss curve" and "accuracy" derived from the names
seed=$(printf '%s' "$img$txt" | cksum | cut -d' ' -f1)
for ((s = 1; s <= steps; s++)); do
  loss=$(awk -v s="$s" -v n="$steps" -v k="$seed" 'BEGIN { printf "%.4f", 2.3 * exp(-2.0 * s / n) + (k % 7) / 100 }')
  eta=$(awk -v s="$s" -v n="$steps" 'BEGIN { printf "%.1f", (n - s) * 0.1 }')
  printf '{"step": %d, "total_steps": %d, "loss": %s, "eta_s": %s}\n' "$s" "$steps" "$loss" "$eta" > "$out/progress.json.tmp"
  mv "$out/progress.json.tmp" "$out/progress.json"
  echo "step $s/$steps loss $loss"
  sleep 0.1
done
top1=$(awk -v k="$seed" 'BEGIN { printf "%.4f", 0.70 + (k % 20) / 100 }')
printf '{"zeroshot_top1": %s, "loss": %s, "images_per_s": 0, "simulated": true}\n' "$top1" "$loss" > "$out/result.json.tmp"
mv "$out/result.json.tmp" "$out/result.json"
