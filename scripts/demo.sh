#!/usr/bin/env bash
# make demo: the demo grid (configs/demo.json: starnet_s050 and starnet_s100 x clip:tiny and
# bert:tiny, 32 px, 100 steps each) trained for real by `clipgrid train` on CPU slots, then the
# launcher's summary table. The training data goes through the file path a user's data takes:
# Fashion-MNIST exported as WebDataset shards (PNG + caption), English captions for the CLIP
# text towers and Chinese ones for BERT; zero-shot evaluation on the built-in test split.
set -euo pipefail
clipgrid="${1:-build/clipgrid}"
cd "$(dirname "$0")/.."
rm -rf demo-out
"$clipgrid" data fmnist --out demo-out/data/en --format wds --split train --lang en
"$clipgrid" data fmnist --out demo-out/data/zh --format wds --split train --lang zh
"$clipgrid" run --config configs/demo.json --dry-run
echo
"$clipgrid" run --config configs/demo.json
