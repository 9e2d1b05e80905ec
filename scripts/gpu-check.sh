#!/usr/bin/env bash
# The GPU machine's check: ONE script a session with a lent GPU runs within a few minutes.
#
#   bash scripts/gpu-check.sh prepare   here (no GPU needed): build build-gpu/ (Release, CUDA on),
#                                       compile bench/gpu_busy.cu, copy the shared libraries the
#                                       binaries need into build-gpu/lib (the GPU machine has no
#                                       package registry)
#   bash scripts/gpu-check.sh [run]     on the GPU machine: real NVML, real CUDA jobs through
#                                       `clipgrid run`; prints a table last; JSON to $OUT if set
#
# Checks: `clipgrid gpus` against nvidia-smi; CUDA_VISIBLE_DEVICES=<NVML UUID> pins a job to the
# GPU the launcher chose (the job's CUDA runtime reports the same UUID); the launcher waits for a
# GPU kept busy by another process and starts when it is free; it starts anyway after
# --gpu-wait-timeout with a warning; SIGINT leaves no CUDA process behind; dispatch overhead.
set -uo pipefail
cd "$(dirname "$0")/.."
B="${GPU_BUILD:-build-gpu}"
ROOT="$PWD"

prepare() {
  set -e
  cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DCLIPGRID_WERROR=ON >/dev/null
  cmake --build "$B" -j "$(nproc)"
  nvcc -O2 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
       -gencode arch=compute_90,code=compute_90 -o "$B/gpu_busy" bench/gpu_busy.cu
  mkdir -p "$B/lib"
  for lib in $(ldd "$B/clipgrid" | awk '/=> \// {print $3}'); do
    case "$(basename "$lib")" in libc.so*|libm.so*|libpthread.so*|libdl.so*|ld-linux*) ;; *) cp -L "$lib" "$B/lib/";; esac
  done
  du -sh "$B/lib" "$B/clipgrid" "$B/gpu_busy"
  echo "prepared $B (carry it to the GPU machine)"
}

if [ "${1:-run}" = prepare ]; then prepare; exit $?; fi

# ---------------------------------------------------------------- run (GPU machine)
if [ ! -x "$B/clipgrid" ] || [ ! -x "$B/gpu_busy" ]; then
  if command -v nvcc >/dev/null && command -v cmake >/dev/null && pkg-config --exists libcjson; then prepare || exit 1
  else echo "gpu-check: $B/ is missing and this machine cannot build it: run 'bash scripts/gpu-check.sh prepare' first"; exit 1; fi
fi
export LD_LIBRARY_PATH="$ROOT/$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
unset CLIPGRID_NVML_LIBRARY CUDA_VISIBLE_DEVICES
CG="$ROOT/$B/clipgrid"; BUSY="$ROOT/$B/gpu_busy"
W="$(mktemp -d /tmp/gpucheck.XXXXXX)"
OUTDIR="${OUT:-$W/out}"; mkdir -p "$OUTDIR"
declare -a NAMES RESULTS DETAILS
record() { NAMES+=("$1"); RESULTS+=("$2"); DETAILS+=("$3"); echo "[$2] $1: $3"; }
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@" 2>/dev/null; }
now() { date +%s.%N; }

echo "== machine"
nvidia-smi --query-gpu=index,name,uuid,driver_version,utilization.gpu,memory.used,memory.total --format=csv
nproc; date -u

# 1. clipgrid gpus against nvidia-smi
"$CG" gpus | tee "$W/gpus.txt"; rc=$?
"$CG" gpus --json > "$W/gpus.json"
uuid0=$(nvidia-smi --query-gpu=uuid --format=csv,noheader -i 0 | tr -d ' ')
n_smi=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | wc -l)
n_cg=$(json "$W/gpus.json" "len(d['gpus']) if isinstance(d, dict) else len(d)")
if [ $rc -eq 0 ] && grep -q "$uuid0" "$W/gpus.txt" && [ "$n_cg" = "$n_smi" ]; then
  record "clipgrid gpus = nvidia-smi" PASS "$n_cg GPU(s), GPU 0 $uuid0"
else record "clipgrid gpus = nvidia-smi" FAIL "rc=$rc, clipgrid sees '$n_cg', nvidia-smi $n_smi"; fi

# 2. UUID pinning and slots: 3 CUDA jobs, 2 per GPU, on GPU 0
t=$(now)
"$CG" run --gpus 0 --jobs-per-gpu 2 --image-encoders a,b,c --text-encoders t --log-dir "$W/pin/logs" \
  --out-dir "$W/pin/out" --status-interval 0 --gpu-util-threshold 100 \
  --command "$BUSY 3 > {out_dir}/dev.txt" > "$W/pin.txt" 2>&1; rc=$?
ok=1; for c in a_t b_t c_t; do grep -q "1 visible device(s).*uuid $uuid0" "$W/pin/out/$c/dev.txt" || ok=0; done
wall=$(python3 -c "print(round($(now) - $t, 1))")
if [ $rc -eq 0 ] && [ $ok = 1 ]; then
  record "CUDA_VISIBLE_DEVICES=UUID pins jobs" PASS "3 jobs x 3 s, 2 slots on GPU 0: ${wall} s wall; each job's CUDA saw only $uuid0"
else record "CUDA_VISIBLE_DEVICES=UUID pins jobs" FAIL "rc=$rc; $(cat "$W"/pin/out/*/dev.txt 2>/dev/null | head -3)"; fi

# 3. a GPU kept busy by another process: the job waits, then starts when it frees
"$BUSY" 10 > "$W/hog1.txt" 2>&1 & hog=$!
sleep 2
t=$(now)
"$CG" run --gpus 0 --image-encoders w --text-encoders t --log-dir "$W/wait/logs" --out-dir "$W/wait/out" \
  --status-interval 0 --gpu-poll-interval 0.5 --gpu-util-samples 3 --gpu-wait-timeout 60 \
  --command 'date +%s.%N > {out_dir}/t0' > "$W/wait.txt" 2>&1; rc=$?
wait $hog
started=$(python3 -c "print(round($(cat "$W/wait/out/w_t/t0" 2>/dev/null || echo 0) - $t, 1))")
waited=$(json "$W/wait/logs/summary.json" "d['configs'][0].get('gpu_wait_s', 0)")
if [ $rc -eq 0 ] && grep -q "\[wait\] GPU 0 busy" "$W/wait.txt" && python3 -c "import sys; sys.exit(0 if 5 <= $started <= 14 else 1)"; then
  record "waits while GPU busy (real util)" PASS "hog ran 8 s more; job started after ${started} s (gpu_wait_s=$waited)"
else record "waits while GPU busy (real util)" FAIL "rc=$rc started after ${started} s; $(grep -m2 'wait\|start' "$W/wait.txt")"; fi

# 4. a GPU that stays busy: start anyway after --gpu-wait-timeout, warning in the log
"$BUSY" 12 > "$W/hog2.txt" 2>&1 & hog=$!
sleep 2
t=$(now)
"$CG" run --gpus 0 --image-encoders f --text-encoders t --log-dir "$W/force/logs" --out-dir "$W/force/out" \
  --status-interval 0 --gpu-poll-interval 0.5 --gpu-wait-timeout 4 \
  --command 'date +%s.%N > {out_dir}/t0' > "$W/force.txt" 2>&1; rc=$?
started=$(python3 -c "print(round($(cat "$W/force/out/f_t/t0" 2>/dev/null || echo 0) - $t, 1))")
kill $hog 2>/dev/null; wait $hog 2>/dev/null
if [ $rc -eq 0 ] && grep -q "WARN\] GPU 0 utilization" "$W"/force/logs/f_t_gpu0_*.log && python3 -c "import sys; sys.exit(0 if 4 <= $started <= 9 else 1)"; then
  record "starts after --gpu-wait-timeout" PASS "timeout 4 s: started after ${started} s, warning in the job log"
else record "starts after --gpu-wait-timeout" FAIL "rc=$rc started after ${started} s"; fi

# 5. SIGINT: no CUDA process of any job survives the grace period
"$CG" run --gpus 0 --jobs-per-gpu 2 --image-encoders x,y --text-encoders t --log-dir "$W/int/logs" \
  --out-dir "$W/int/out" --status-interval 0 --gpu-util-threshold 100 --kill-grace 3 \
  --command "$BUSY 120" > "$W/int.txt" 2>&1 & lp=$!
sleep 5
before=$(nvidia-smi --query-compute-apps=pid --format=csv,noheader | wc -l)
t=$(now); kill -INT $lp; wait $lp; rc=$?
stop=$(python3 -c "print(round($(now) - $t, 1))")
sleep 1
after=$(pgrep -f "$BUSY 120" | wc -l)
apps=$(nvidia-smi --query-compute-apps=pid --format=csv,noheader | wc -l)
if [ $rc -eq 130 ] && [ "$after" = 0 ] && [ "$apps" = 0 ] && [ "$before" -ge 2 ]; then
  record "SIGINT stops every CUDA job" PASS "$before CUDA processes before, 0 after; launcher exited 130 in ${stop} s"
else record "SIGINT stops every CUDA job" FAIL "rc=$rc before=$before after=$after nvidia-smi apps=$apps"; fi

# 6. dispatch overhead on this machine's cores (fake NVML, 1000 `true` jobs)
CLIPGRID_BIN="$CG" FAKE_NVML_DIR="$ROOT/$B/tests/fake_nvml" "$ROOT/$B/bench/bench_launcher" 1000 "$OUTDIR/launcher_bench.json" \
  > "$W/bench.txt" 2>&1 && record "dispatch benchmark" PASS "$(grep -m1 'clipgrid run (per' "$W/bench.txt" | awk '{print $(NF)" ms/job"}') ($(nproc) cores)" \
  || record "dispatch benchmark" FAIL "$(tail -2 "$W/bench.txt")"
cat "$W/bench.txt"

# ---------------------------------------------------------------- table + JSON
card=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader -i 0)
{
  echo "{\"card\": \"$card\", \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"checks\": ["
  for i in "${!NAMES[@]}"; do
    sep=","; [ "$i" = $((${#NAMES[@]} - 1)) ] && sep=""
    printf '  {"check": "%s", "result": "%s", "detail": "%s"}%s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${DETAILS[$i]//\"/\'}" "$sep"
  done
  echo "]}"
} > "$OUTDIR/gpu_check.json"
echo
echo "== gpu-check on $card"
fails=0
for i in "${!NAMES[@]}"; do
  printf '%-40s %-5s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${DETAILS[$i]}"
  [ "${RESULTS[$i]}" = PASS ] || fails=$((fails + 1))
done
echo "$(( ${#NAMES[@]} - fails )) passed, $fails failed"
[ $fails -eq 0 ]
