#!/usr/bin/env bash
# make demo: the demo grid (configs/demo.json: 2 StarNets x 2 tiny text towers) through
# `clipgrid run`. Until `clipgrid train` exists, each job is scripts/demo-job.sh, a simulated
# job that reports progress and a result the way the trainer will.
set -euo pipefail
clipgrid="${1:-build/clipgrid}"
cd "$(dirname "$0")/.."
rm -rf demo-out
"$clipgrid" run --config configs/demo.json --dry-run
echo
"$clipgrid" run --config configs/demo.json \
  --command 'bash scripts/demo-job.sh {out_dir} {image_encoder} {text_encoder} {train_args}'
