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
  slurmctld slurmd slurm-client munge   # --backend slurm and its test cluster (scripts/slurm-local.sh)
  gettext               # msgfmt/xgettext: the zh_CN message catalog and its test
  locales               # zh_CN.UTF-8 for the Chinese messages (generated below)
  libturbojpeg0-dev libpng-dev libwebp-dev   # image decoders and encoders (src/data/image.c)
  libarchive-dev        # WebDataset tar shards (src/data/wds.c)
  imagemagick libjpeg-turbo-progs pngcrush   # independent encoders for the decoder tests
)

# The zh_CN.UTF-8 locale, so LANG=zh_CN.UTF-8 gives Chinese messages (test_i18n uses it when present).
gen_locale() {
  if ! locale -a 2>/dev/null | grep -qix 'zh_CN.utf8'; then
    echo "install-deps: generating the zh_CN.UTF-8 locale"
    $SUDO localedef -i zh_CN -f UTF-8 zh_CN.UTF-8 || echo "install-deps: could not generate zh_CN.UTF-8 (Chinese messages need it)"
  fi
}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  gen_locale
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Slurm's and munge's packages start their services when installed; nothing here wants that
# (scripts/slurm-local.sh starts them with its own configuration), so deny it for this install.
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  made_policy=1
fi
trap '[ -n "$made_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
gen_locale
