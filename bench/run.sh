#!/usr/bin/env bash
# Runs the benchmarks in bench/ and writes JSON results to bench/results/.
# usage: bash bench/run.sh [BUILD_DIR]
set -euo pipefail
build="${1:-build}"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$here/results"
stamp="$(date +%Y%m%d)"
"$build/bench/bench_launcher" 1000 "$here/results/launcher_${stamp}.json"
