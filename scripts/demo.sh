#!/usr/bin/env bash
# make demo: the demo grid (configs/demo.json: starnet_s050 and starnet_s100 x clip:tiny and
# bert:tiny, 32 px Fashion-MNIST, 100 steps each) trained for real by `clipgrid train` on CPU
# slots, then the launcher's summary table. About 5-7 minutes on 2 cores.
set -euo pipefail
clipgrid="${1:-build/clipgrid}"
cd "$(dirname "$0")/.."
rm -rf demo-out
"$clipgrid" run --config configs/demo.json --dry-run
echo
"$clipgrid" run --config configs/demo.json
