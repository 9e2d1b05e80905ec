#!/usr/bin/env bash
# run_train_clip.sh — the original launcher's interface, now a front for `clipgrid run`.
#
# Edit the variables below as before. Any arguments go on to `clipgrid run`:
#   bash run_train_clip.sh --dry-run            # the plan, starting nothing
#   bash run_train_clip.sh --resume             # after an interruption: only what is missing
#   bash run_train_clip.sh --backend slurm      # the same grid as one Slurm job array
# The equivalent clipgrid command line is printed before it runs.
set -euo pipefail

GPUS=(5)                                   # GPUs to use (NVML indices)
IMAGE_ENCODERS=("starnet_s1" "starnet_s2" "starnet_s3" "starnet_s4")
TEXT_ENCODERS=("clip:ViT-B/32" "bert-base-chinese")
USE_MULTI_CONFIG="${USE_MULTI_CONFIG:-true}"    # true: configs in parallel, one per GPU; false: one after another
CONFIG_FILE="${CONFIG_FILE-configs/seed_example.json}"   # grid file (train options, extra configs); "" for none
LOG_DIR="${LOG_DIR:-logs/clip_training}"
OUTPUT_DIR="${OUTPUT_DIR:-checkpoints/clip_models}"

# ---------------------------------------------------------------------------------------------
cd "$(dirname "$0")"
die() { echo "run_train_clip.sh: $*" >&2; exit 2; }

CLIPGRID="${CLIPGRID:-}"
if [ -z "$CLIPGRID" ]; then
    if [ -x build/clipgrid ]; then CLIPGRID=build/clipgrid
    elif command -v clipgrid >/dev/null; then CLIPGRID=clipgrid
    else die "clipgrid not found: build it with 'make' (or set CLIPGRID=/path/to/clipgrid)"
    fi
fi

join() { local IFS=,; echo "$*"; }
args=()
if [ -n "$CONFIG_FILE" ]; then
    [ -f "$CONFIG_FILE" ] || die "CONFIG_FILE=$CONFIG_FILE: no such file"
    args+=(--config "$CONFIG_FILE")
fi
[ ${#GPUS[@]} -gt 0 ] && args+=(--gpus "$(join "${GPUS[@]}")")
[ ${#IMAGE_ENCODERS[@]} -gt 0 ] && args+=(--image-encoders "$(join "${IMAGE_ENCODERS[@]}")")
[ ${#TEXT_ENCODERS[@]} -gt 0 ] && args+=(--text-encoders "$(join "${TEXT_ENCODERS[@]}")")
case "$USE_MULTI_CONFIG" in
    true) ;;
    false) args+=(--max-parallel 1) ;;   # one slot: the configs run one after another
    *) die "USE_MULTI_CONFIG=$USE_MULTI_CONFIG: use true or false" ;;
esac
args+=(--log-dir "$LOG_DIR" --out-dir "$OUTPUT_DIR")

quote() { if [[ "$1" =~ ^[A-Za-z0-9_,./:=+@%-]+$ ]]; then printf ' %s' "$1"; else printf " %q" "$1"; fi; }
{ printf 'run_train_clip.sh: %s run' "$CLIPGRID"; for a in "${args[@]}" "$@"; do quote "$a"; done; printf '\n'; } >&2
exec "$CLIPGRID" run "${args[@]}" "$@"
