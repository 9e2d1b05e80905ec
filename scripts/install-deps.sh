#!/usr/bin/env bash
# Installs the Debian packages clipgrid needs to build and test.
# Idempotent: installs only what is missing. Run as root (or with sudo available).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libcjson-dev          # JSON (grid files, configs, results)
  libopenblas-dev       # GEMM for the CPU backend
  zlib1g-dev            # Fashion-MNIST idx.gz, checkpoints
  libpcre2-dev libutf8proc-dev   # tokenizers (split regex, NFD/categories)
  libomp-dev            # OpenMP runtime for clang sanitizer/fuzz builds
  clang libclang-rt-14-dev       # sanitizer and libFuzzer runtimes
  dataset-fashion-mnist # built-in training data
  procps                # pgrep/ps used by the launcher tests
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
