#!/usr/bin/env bash
# The GPU machine's check: ONE script a session with a lent GPU runs within a few minutes.
#
#   bash scripts/gpu-check.sh prepare   here (no GPU needed): build build-gpu/ (Release, CUDA on),
#                                       compile bench/gpu_busy.cu, copy the shared libraries the
#                                       binaries need into build-gpu/lib (the GPU machine has no
#                                       package registry), and pack what `run` needs into
#                                       build-gpu/bundle.tar.gz (~15 MB: carry that one file)
#   bash scripts/gpu-check.sh [run [SECTION...]]
#                                       on the GPU machine: the CUDA tests, the training benchmark,
#                                       memcheck, real NVML and CUDA jobs through `clipgrid run`;
#                                       prints a table last; JSON and logs to $OUT if set.
#                                       SECTIONs (default all), run in this order of value whatever
#                                       the order given: cuda (the device tests against the CPU,
#                                       incl. `clipgrid train --device cuda`), bench (clipgrid, then
#                                       PyTorch, then the ratios), memcheck (compute-sanitizer on one
#                                       training step and on the layer test), launcher (NVML, pinning,
#                                       waiting, SIGINT, dispatch: passed on an H200 on 2026-11-27)
#
# TORCH_BENCH_ARGS: more arguments for bench/clip_train_gpu_torch.py (e.g. --configs in another
# order, --modes compile), TORCH_BENCH_TIMEOUT / CLIPGRID_BENCH_TIMEOUT: the two benchmarks' caps.
#
# Time: the whole run keeps within GPU_CHECK_BUDGET seconds (default 540, for one device call of
# timeout_s 600): each step gets its own cap or what is left of the budget, whichever is less,
# and a step that would get less than its minimum is a SKIP row ("no time left"). The table is
# printed at the end and $OUT/gpu_check.json is rewritten after every row, so a run cut short
# still brings back every result it had. Measured on H200s (2026-11-27, runs 3-4): cuda ~35 s,
# bench_cuda_train ~45 s, PyTorch eager (both configurations) 46 s, torch.compile (both) 185 s,
# memcheck of one training step 2 s; a machine's start 30-40 s. cuda + bench + memcheck, eager
# and compile, fit one call:
#   run(command="GPU_CHECK_BUDGET=520 TORCH_BENCH_TIMEOUT=360 bash scripts/gpu-check.sh run cuda bench memcheck",
#       timeout_s=580, carry=["build-gpu/bundle.tar.gz"])
# (the eighth session ran it as two calls, TORCH_BENCH_ARGS="--modes eager" then "--modes compile").
#
# Checks: `clipgrid gpus` against nvidia-smi; CUDA_VISIBLE_DEVICES=<NVML UUID> pins a job to the
# GPU the launcher chose (the job's CUDA runtime reports the same UUID); the launcher waits for a
# GPU kept busy by another process and starts when it is free; it starts anyway after
# --gpu-wait-timeout with a warning; SIGINT leaves no CUDA process behind; dispatch overhead;
# every CUDA layer against the CPU reference in fp32 and bf16 (tests/test_cuda_ops), and the same
# test under compute-sanitizer memcheck when the machine has it; the PyTorch side of the training
# benchmark (bench/clip_train_gpu_torch.py, under `timeout`; JSON lines in $OUT/torch_gpu_bench.jsonl)
# and the clipgrid side (bench/bench_cuda_train, $OUT/clipgrid_gpu_bench.jsonl) with the ratios.
# Fashion-MNIST is not on the GPU machine: `prepare` packs its first 4000 training and 1000 test
# images (build-gpu/fmnist-small, ~1 MB) for the `clipgrid train --device cuda` checks.
#
# cuBLAS is not carried: this toolkit has no static cuBLAS and libcublasLt.so.13 alone is ~540 MB,
# over the carry limit. `run` uses the GPU machine's own libcublas.so.13/libcublasLt.so.13 (the CUDA
# toolkit there, or the nvidia-cublas wheel beside PyTorch cu130) and says where it found them.
#
set -uo pipefail
cd "$(dirname "$0")/.."
B="${GPU_BUILD:-build-gpu}"
ROOT="$PWD"

# The device-vs-CPU test programs the bundle carries (tests/test_cuda_*.c).
CUDA_TESTS=(test_cuda_ops test_cuda_starnet test_cuda_text test_cuda_clip test_cuda_train)

prepare() {
  set -e
  cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DCLIPGRID_WERROR="${GPU_WERROR:-ON}" >/dev/null
  cmake --build "$B" -j "${GPU_JOBS:-$(nproc)}"
  nvcc -O2 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
       -gencode arch=compute_90,code=compute_90 -o "$B/gpu_busy" bench/gpu_busy.cu
  mkdir -p "$B/lib" "$B/fmnist-small"
  # the first 4000 / 1000 Fashion-MNIST images, same format (idx, gzip)
  python3 - "${CLIPGRID_FMNIST_DIR:-/usr/share/datasets/fashion-mnist}" "$B/fmnist-small" <<'PY'
import gzip, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for prefix, n in (("train", 4000), ("t10k", 1000)):
    for kind, item in (("images-idx3", 784), ("labels-idx1", 1)):
        raw = gzip.open("%s/%s-%s-ubyte.gz" % (src, prefix, kind)).read()
        hdr = 16 if kind.startswith("images") else 8
        head = bytearray(raw[:hdr]); head[4:8] = struct.pack(">I", n)
        with gzip.open("%s/%s-%s-ubyte.gz" % (dst, prefix, kind), "wb") as f:
            f.write(bytes(head) + raw[hdr:hdr + n * item])
PY
  local bins=("$B/clipgrid") files=(clipgrid gpu_busy bench/bench_launcher tests/fake_nvml lib fmnist-small) t
  [ -f "$B/libclipgrid-cuda.so" ] && { bins+=("$B/libclipgrid-cuda.so"); files+=(libclipgrid-cuda.so); }
  [ -x "$B/bench/bench_cuda_train" ] && { bins+=("$B/bench/bench_cuda_train"); files+=(bench/bench_cuda_train); }
  for t in "${CUDA_TESTS[@]}"; do
    [ -x "$B/tests/$t" ] && { bins+=("$B/tests/$t"); files+=("tests/$t"); }
  done
  for lib in $(ldd "${bins[@]}" | awk '/=> \// {print $3}' | sort -u); do
    case "$(basename "$lib")" in
      libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*) ;;   # the system's own
      libcuda.so*|libnvidia*|libcublas*|libstdc++.so*) ;;                 # the GPU machine's own (see above)
      *) cp -L "$lib" "$B/lib/";;
    esac
  done
  tar czf "$B/bundle.tar.gz" -C "$B" "${files[@]}"
  du -sh "$B/lib" "$B/clipgrid" "$B/gpu_busy" "$B/bundle.tar.gz"
  [ -x "$B/tests/test_cuda_ops" ] && du -sh "$B/tests/test_cuda_ops"
  echo "prepared $B: carry $B/bundle.tar.gz to the GPU machine"
}

if [ "${1:-run}" = prepare ]; then prepare; exit $?; fi
[ "${1:-run}" = run ] && shift
SECTIONS="${*:-cuda bench memcheck launcher}"
for sec in $SECTIONS; do
  case "$sec" in cuda|bench|memcheck|launcher) ;; *) echo "gpu-check: unknown section '$sec' (cuda, bench, memcheck, launcher)"; exit 2;; esac
done
want() { case " $SECTIONS " in *" $1 "*) return 0;; esac; return 1; }
BUDGET="${GPU_CHECK_BUDGET:-540}"
case "$BUDGET" in ''|*[!0-9]*) echo "gpu-check: GPU_CHECK_BUDGET must be a number of seconds, not '$BUDGET'"; exit 2;; esac
T_START=$(date +%s)

# ---------------------------------------------------------------- run (GPU machine)
if [ -f "$B/bundle.tar.gz" ] && { [ ! -x "$B/clipgrid" ] || [ "$B/bundle.tar.gz" -nt "$B/clipgrid" ]; }; then
  tar xzf "$B/bundle.tar.gz" -C "$B" || { echo "gpu-check: cannot unpack $B/bundle.tar.gz"; exit 1; }
fi
if [ ! -x "$B/clipgrid" ] || [ ! -x "$B/gpu_busy" ]; then
  if command -v nvcc >/dev/null && command -v cmake >/dev/null && pkg-config --exists libcjson; then prepare || exit 1
  else echo "gpu-check: $B/ is missing and this machine cannot build it: run 'bash scripts/gpu-check.sh prepare' first"; exit 1; fi
fi
LD_ORIG="${LD_LIBRARY_PATH-}"   # PyTorch (step 9) runs without the carried libraries
export LD_LIBRARY_PATH="$ROOT/$B/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# cuBLAS 13 of this machine (not carried, see the top): the dynamic loader's cache, the CUDA
# toolkit, then the Python packages beside PyTorch, then a search of /usr and /opt.
find_cublas() {
  local f
  f=$(ldconfig -p 2>/dev/null | awk '/libcublasLt\.so\.13 / {print $NF; exit}')
  [ -n "$f" ] && [ -e "$f" ] && { dirname "$f"; return 0; }
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 /usr/local/cuda-13*/targets/x86_64-linux/lib; do
    [ -e "$d/libcublasLt.so.13" ] && [ -e "$d/libcublas.so.13" ] && { echo "$d"; return 0; }
  done
  f=$(python3 - 2>/dev/null <<'PY'
import glob, os, sys
for sp in sys.path:
    for p in glob.glob(os.path.join(sp, "nvidia", "**", "libcublasLt.so.13*"), recursive=True):
        print(os.path.dirname(p)); sys.exit(0)
PY
)
  [ -n "$f" ] && { echo "$f"; return 0; }
  f=$(find /usr /opt -name 'libcublasLt.so.13*' 2>/dev/null | head -1)
  [ -n "$f" ] && { dirname "$f"; return 0; }
  return 1
}
CUBLAS_DIR=$(find_cublas) && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$CUBLAS_DIR"
unset CLIPGRID_NVML_LIBRARY CUDA_VISIBLE_DEVICES
CG="$ROOT/$B/clipgrid"; BUSY="$ROOT/$B/gpu_busy"
export CLIPGRID_FMNIST_DIR="$ROOT/$B/fmnist-small" CLIPGRID_BIN="$CG"
W="$(mktemp -d /tmp/gpucheck.XXXXXX)"
OUTDIR="${OUT:-$W/out}"; mkdir -p "$OUTDIR"
# the logs: $W/logs, packed into $OUTDIR/logs.tar.gz with every row (the device tool brings back
# at most 8 files from $OUT: the JSON results and this one archive)
LOGDIR="$W/logs"; mkdir -p "$LOGDIR"
CARD=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader -i 0 2>/dev/null | head -1 | tr -d "\"")
declare -a NAMES RESULTS DETAILS
# $OUTDIR/gpu_check.json, rewritten after every row (a run cut short keeps what it measured)
write_json() {
  local i sep
  {
    echo "{\"card\": \"$CARD\", \"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"budget_s\": $BUDGET, \"elapsed_s\": $(( $(date +%s) - T_START )), \"checks\": ["
    for i in "${!NAMES[@]}"; do
      sep=","; [ "$i" = $((${#NAMES[@]} - 1)) ] && sep=""
      printf '  {"check": "%s", "result": "%s", "detail": "%s"}%s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${DETAILS[$i]//\"/\'}" "$sep"
    done
    echo "]}"
  } > "$OUTDIR/gpu_check.json"
  tar -czf "$OUTDIR/logs.tar.gz" -C "$W" logs 2>/dev/null
}
record() { NAMES+=("$1"); RESULTS+=("$2"); DETAILS+=("$3"); echo "[$2] $1: $3"; write_json; }
# The seconds a step may run: its CAP, or what is left of GPU_CHECK_BUDGET (less 15 s for the
# table) if that is less; fails when that is under MIN (the caller records no_time).
limit() {
  local cap="$1" min="$2" l
  l=$(( BUDGET - ($(date +%s) - T_START) - 15 ))
  [ "$l" -gt "$cap" ] && l=$cap
  [ "$l" -ge "$min" ] && { echo "$l"; return 0; }
  return 1
}
no_time() { record "$1" SKIP "no time left: $(( $(date +%s) - T_START )) of GPU_CHECK_BUDGET=$BUDGET s spent"; }
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@" 2>/dev/null; }
now() { date +%s.%N; }

echo "== machine"
nvidia-smi --query-gpu=index,name,uuid,driver_version,utilization.gpu,memory.used,memory.total --format=csv
nproc; date -u

# ---------------------------------------------------------------- launcher (steps 1-6)
section_launcher() {
if ! limit 120 60 >/dev/null; then no_time "launcher checks (1-6)"; return; fi
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
}

# One device-vs-CPU test program: run it within CAP seconds (or what is left of the budget), log
# to $LOGDIR/<name>.log, one row.
device_test() {
  local name="$1" cap="$2" row="$3" bin="$ROOT/$B/tests/$1" log="$LOGDIR/${1#test_}.log" t rc secs summary lim
  if [ ! -x "$bin" ]; then record "$row" FAIL "$B/tests/$name missing: prepare on a machine with nvcc"; return; fi
  lim=$(limit "$cap" 20) || { no_time "$row"; return; }
  echo "== $row (limit $lim s)"
  t=$(now)
  timeout -k 5 "$lim" "$bin" > "$log" 2>&1; rc=$?
  secs=$(python3 -c "print(round($(now) - $t, 1))")
  tail -3 "$log"
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
  if [ $rc -eq 0 ]; then record "$row" PASS "$summary in ${secs} s"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then record "$row" FAIL "cut at its limit of $lim s; $summary $(grep -m3 'FAIL' "$log" | tr '\n' ' ' | cut -c1-250)"
  elif [ $rc -eq 77 ]; then record "$row" FAIL "skipped on a GPU machine: $(head -1 "$log" | cut -c1-200)"
  else record "$row" FAIL "rc=$rc $summary; $(grep -m3 'FAIL' "$log" | tr '\n' ' ' | cut -c1-300)"; fi
}

# ---------------------------------------------------------------- cuda (7-7e)
OPS="$ROOT/$B/tests/test_cuda_ops"
section_cuda() {
  local t rc secs worst summary lim
  if [ ! -x "$OPS" ]; then
    record "CUDA layers = CPU (fp32, bf16)" FAIL "$B/tests/test_cuda_ops missing: prepare on a machine with nvcc"; return
  elif [ -z "${CUBLAS_DIR:-}" ]; then
    record "CUDA layers = CPU (fp32, bf16)" FAIL "no libcublasLt.so.13 on this machine (looked in ldconfig, /usr/local/cuda*, python's nvidia/ packages, /usr, /opt)"; return
  fi
  # 7. every CUDA layer against the CPU reference, fp32 and bf16 (per-comparison JSON to $OUT)
  if lim=$(limit 120 20); then
    echo "== CUDA layer tests (cuBLAS from $CUBLAS_DIR, limit $lim s)"
    t=$(now)
    CLIPGRID_CUDA_OPS_JSON="$OUTDIR/cuda_ops.json" timeout -k 5 "$lim" "$OPS" > "$LOGDIR/cuda_ops.log" 2>&1; rc=$?
    secs=$(python3 -c "print(round($(now) - $t, 1))")
    tail -3 "$LOGDIR/cuda_ops.log"
    worst=$(python3 - "$OUTDIR/cuda_ops.json" 2>/dev/null <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
out = []
for prec in ("fp32", "bf16"):
    rs = [c for c in d["comparisons"] if c["precision"] == prec and not isinstance(c["max_rel"], str)]
    if rs:
        w = max(rs, key=lambda c: c["max_rel"] / c["tol"] if c["tol"] else (0 if c["max_rel"] == 0 else 1e9))
        out.append("%s worst %.1e (%s %s, tol %.0e)" % (prec, w["max_rel"], w["layer"], w["tensor"], w["tol"]))
print("; ".join(out))
PY
)
    summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOGDIR/cuda_ops.log" | tail -1)
    if [ $rc -eq 0 ]; then
      record "CUDA layers = CPU (fp32, bf16)" PASS "$summary in ${secs} s; $worst"
    elif [ $rc -eq 77 ]; then
      record "CUDA layers = CPU (fp32, bf16)" FAIL "skipped: $(head -1 "$LOGDIR/cuda_ops.log")"
    else
      record "CUDA layers = CPU (fp32, bf16)" FAIL "rc=$rc $summary; $(grep -m3 'FAIL' "$LOGDIR/cuda_ops.log" | tr '\n' ' ' | cut -c1-300)"
    fi
  else no_time "CUDA layers = CPU (fp32, bf16)"; fi

  # 7b-7d. the device towers and training step against the CPU model, in order (each builds on
  #        the previous): StarNet (forward, every gradient, running stats); the text towers
  #        (clip:tiny, bert:tiny); 3 CLIP training steps (both towers, loss, clipping, AdamW, clamp)
  device_test test_cuda_starnet 60 "CUDA StarNet tower = CPU (fp32, bf16)"
  device_test test_cuda_text 60 "CUDA text towers = CPU (clip, bert; fp32, bf16)"
  device_test test_cuda_clip 90 "CUDA CLIP step = CPU (3 steps; fp32, bf16)"
  # 7e. the product: `clipgrid train --device cuda` (the plugin) against --device cpu, 20 steps
  export TEST_TMPDIR="$W"
  device_test test_cuda_train 180 "clipgrid train --device cuda = cpu (20 steps)"
}

# ---------------------------------------------------------------- bench (8-10)
# 8. the clipgrid side (bench/bench_cuda_train): starnet_s1 x clip:ViT-B/32 and starnet_s4 x
# bert-base-chinese, batch 256, 224 px, bf16; images/s, memory, the step split, text-tower MFU,
# depthwise-conv bandwidth. 9. the PyTorch side (bench/clip_train_gpu_torch.py): timm StarNet +
# transformers text tower, bf16 autocast, eager then torch.compile, the same configurations; runs
# that would start after 60 % of its limit are skipped; it runs with this machine's own library
# path (not build-gpu/lib's libz, libgomp, ...). 10. the ratio of each clipgrid row to PyTorch's.
CB="$ROOT/$B/bench/bench_cuda_train"
TPY="${TORCH_PYTHON:-python3}"
section_bench() {
  local lim rc t secs res name detail
  if [ ! -x "$CB" ]; then
    record "clipgrid cuda training bench" FAIL "$B/bench/bench_cuda_train missing: prepare on a machine with nvcc"
  elif lim=$(limit "${CLIPGRID_BENCH_TIMEOUT:-150}" 30); then
    echo "== clipgrid training benchmark (limit $lim s)"
    rm -f "$OUTDIR/clipgrid_gpu_bench.jsonl"
    timeout -k 10 "$lim" "$CB" --out "$OUTDIR/clipgrid_gpu_bench.jsonl" 2>&1 | tee "$LOGDIR/clipgrid_gpu_bench.log"
    rc=${PIPESTATUS[0]}
    python3 - "$OUTDIR/clipgrid_gpu_bench.jsonl" "$rc" > "$W/cg_rows.tsv" 2> "$W/cg_rows.err" <<'PY'
import json, os, sys
ours = [json.loads(l) for l in open(sys.argv[1])] if os.path.exists(sys.argv[1]) else []
for r in ours:
    d = "%.0f img/s, %.1f ms/step (image %.1f, text %.1f, rest %.1f ms), %.1f GiB allocated" % (
        r["images_per_s"], r["step_ms"], r["image_fwd_bwd_ms"], r["text_fwd_bwd_ms"], r["rest_ms"], r["allocated_gib"])
    if "text_fwd_bwd_ms_attn_permuted" in r:
        d += " (text %.1f ms with attention on permuted copies)" % r["text_fwd_bwd_ms_attn_permuted"]
    if "mfu_text" in r:
        d += ", text MFU %.1f%%" % (100 * r["mfu_text"])
    d += ", dwconv fwd/bwd %s GB/s" % "/".join("%.0f:%.0f" % (x["forward_gbs"], x["backward_gbs"]) for x in r["dwconv"])
    if all("forward_gbs_tiles" in x for x in r["dwconv"]):
        d += " (tile kernels %s)" % "/".join("%.0f:%.0f" % (x["forward_gbs_tiles"], x["backward_gbs_tiles"])
                                             for x in r["dwconv"])
    if r.get("kernels") and r.get("profiled_step_ms"):
        d += "; most time: " + ", ".join("%s %.0f%%" % (k["name"], 100 * k["ms_per_step"] / r["profiled_step_ms"])
                                         for k in r["kernels"][:4])
    print("PASS\tclipgrid cuda %s x %s\t%s" % (r["image"].replace("starnet_", ""), r["text"], d))
if int(sys.argv[2]) != 0:
    print("FAIL\tclipgrid cuda training bench\trc=%s%s, %d configuration(s) measured" % (
        sys.argv[2], " (cut at its limit)" if sys.argv[2] in ("124", "137") else "", len(ours)))
PY
    [ -s "$W/cg_rows.err" ] && record "clipgrid cuda training bench" FAIL "reading its JSON: $(tail -1 "$W/cg_rows.err" | cut -c1-200)"
    while IFS=$'\t' read -r res name detail; do
      [ -n "$res" ] && record "$name" "$res" "$detail"
    done < "$W/cg_rows.tsv"
  else no_time "clipgrid cuda training bench"; fi

  if ! env LD_LIBRARY_PATH="$LD_ORIG" "$TPY" -c "import torch, timm, transformers; assert torch.cuda.is_available(), 'torch sees no CUDA device'" > "$W/torch_import.txt" 2>&1; then
    record "torch training bench" SKIP "$TPY cannot run it: $(tail -1 "$W/torch_import.txt" | cut -c1-200)"
  elif lim=$(limit "${TORCH_BENCH_TIMEOUT:-240}" 40); then
    echo "== PyTorch training benchmark (limit $lim s)"
    rm -f "$OUTDIR/torch_gpu_bench.jsonl"
    t=$(now)
    env LD_LIBRARY_PATH="$LD_ORIG" timeout -k 10 "$lim" "$TPY" bench/clip_train_gpu_torch.py \
      --out "$OUTDIR/torch_gpu_bench.jsonl" --time-budget $((lim * 6 / 10)) ${TORCH_BENCH_ARGS:-} 2>&1 | tee "$LOGDIR/torch_gpu_bench.log"
    rc=${PIPESTATUS[0]}
    secs=$(python3 -c "print(round($(now) - $t, 1))")
    # one line per row: result<TAB>name<TAB>detail
    python3 - "$OUTDIR/torch_gpu_bench.jsonl" "$rc" "$secs" "$LOGDIR/torch_gpu_bench.log" > "$W/torch_rows.tsv" 2> "$W/torch_rows.err" <<'PY'
import json, os, sys
path, rc, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [json.loads(l) for l in open(path)] if os.path.exists(path) else []
for r in rows:
    name = "torch %s %s x %s" % (r["mode"], r["image"].replace("starnet_", ""), r["text"])
    st = r["status"]
    if st == "ok":
        d = "%.0f img/s, %.1f ms/step, peak %s GiB" % (r["images_per_s"], r["step_ms"], r.get("peak_mem_gib"))
        if r.get("compile_s") is not None:
            d += ", compile %.0f s" % r["compile_s"]
        if r.get("mfu_text") is not None:
            d += ", text MFU %.1f%%" % (100 * r["mfu_text"])
        if r.get("mfu_step") is not None:
            d += ", step MFU %.1f%%" % (100 * r["mfu_step"])
        res = "PASS"
    elif st == "oom":
        res, d = "SKIP", "PyTorch out of memory at batch %d (%s GiB allocated at peak)" % (r["batch"], r.get("peak_mem_gib"))
    elif st == "skipped":
        res, d = "SKIP", "not run: %s" % r.get("error")
    elif st == "killed":
        res, d = "SKIP", "cut at the time limit after %s s" % r.get("wall_s")
    else:
        res, d = "FAIL", "%s: %s" % (st, r.get("error"))
    print("%s\t%s\t%s" % (res, name, d.replace("\t", " ").replace("\n", " ")))
# one row per (configuration, mode) the benchmark said it would run ("...; configs A, B; modes eager, compile")
expected = 4
try:
    head = [l for l in open(sys.argv[4])
            if "; configs " in l and "; modes " in l]
except OSError:
    head = []
if head:
    cfgs, modes = head[0].split("; configs ", 1)[1].split("; modes ")
    expected = len(cfgs.split(",")) * len(modes.split(","))
if len(rows) < expected:
    print("%s\ttorch bench (rest)\t%d of %d runs missing: rc=%d after %s s%s" % (
        "SKIP" if rc in (124, 137) else "FAIL", expected - len(rows), expected, rc, secs,
        " (timeout)" if rc in (124, 137) else ""))
PY
    [ -s "$W/torch_rows.err" ] && record "torch training bench" FAIL "rc=$rc; reading its JSON: $(tail -1 "$W/torch_rows.err" | cut -c1-200)"
    while IFS=$'\t' read -r res name detail; do
      [ -n "$res" ] && record "$name" "$res" "$detail"
    done < "$W/torch_rows.tsv"
  else no_time "torch training bench"; fi

  # 10. clipgrid's images/s over PyTorch's, per configuration, against issue 7's goal (>= 1.5x
  # eager, >= 1.0x compile). INFO rows: a benchmark, not a pass or a fail.
  python3 - "$OUTDIR/clipgrid_gpu_bench.jsonl" "$OUTDIR/torch_gpu_bench.jsonl" > "$W/ratio_rows.tsv" 2>/dev/null <<'PY'
import json, os, sys
load = lambda p: [json.loads(l) for l in open(p)] if os.path.exists(p) else []
ours, theirs = load(sys.argv[1]), load(sys.argv[2])
goal = {"eager": 1.5, "compile": 1.0}
for r in ours:
    parts = []
    for t in theirs:
        if t["image"] == r["image"] and t["text"] == r["text"] and t["status"] == "ok":
            x = r["images_per_s"] / t["images_per_s"]
            parts.append("%.2fx torch %s (goal %.1fx: %s)" % (x, t["mode"], goal.get(t["mode"], 0),
                                                             "met" if x >= goal.get(t["mode"], 0) else "NOT met"))
    if parts:
        print("INFO\tclipgrid / torch %s x %s\t%s" % (r["image"].replace("starnet_", ""), r["text"], "; ".join(parts)))
PY
  while IFS=$'\t' read -r res name detail; do
    [ -n "$res" ] && record "$name" "$res" "$detail"
  done < "$W/ratio_rows.tsv"
}

# ---------------------------------------------------------------- memcheck (11-12)
# compute-sanitizer memcheck: out-of-bounds and misaligned accesses, API errors. SKIP when the tool
# is absent or refuses the device (as it did on gVisor H200s).
memcheck_refused() { grep -qi 'device not supported\|unable to\|not supported on' "$1" && ! grep -q 'Invalid\|out of bounds' "$1"; }
# memcheck ROW CAP LOG COMMAND...: the command under compute-sanitizer memcheck within CAP seconds
# (or what is left of the budget; at least 60), its log in LOG, one row.
memcheck() {
  local row="$1" cap="$2" log="$3" lim t rc secs errs
  shift 3
  lim=$(limit "$cap" 60) || { no_time "$row"; return; }
  echo "== compute-sanitizer --tool memcheck: $row (limit $lim s)"
  t=$(now)
  timeout -k 5 "$lim" compute-sanitizer --tool memcheck --error-exitcode 99 "$@" > "$log" 2>&1; rc=$?
  secs=$(python3 -c "print(round($(now) - $t, 1))")
  errs=$(grep -m1 'ERROR SUMMARY' "$log")
  if [ $rc -eq 0 ] && grep -q 'ERROR SUMMARY: 0 errors' "$log"; then
    record "$row" PASS "$errs in ${secs} s"
  elif memcheck_refused "$log"; then
    record "$row" SKIP "compute-sanitizer cannot run here: $(grep -m1 -i 'not supported\|unable' "$log" | cut -c1-160)"
  elif { [ $rc -eq 124 ] || [ $rc -eq 137 ]; } && ! grep -q 'Invalid\|out of bounds' "$log"; then
    record "$row" SKIP "cut at its limit of $lim s (${errs:-no summary yet}, no error reported before)"
  else
    record "$row" FAIL "rc=$rc ${errs:-no summary} ($(grep -m2 -E 'Invalid|out of bounds|Program hit|ERROR' "$log" | tr '\n' ' ' | cut -c1-200))"
  fi
}
section_memcheck() {
  if ! command -v compute-sanitizer >/dev/null; then
    record "memcheck clean (1 training step)" SKIP "compute-sanitizer not on this machine"; return
  fi
  # 11. one real training step and the device evaluation after it
  memcheck "memcheck clean (1 training step)" 240 "$LOGDIR/train_memcheck.log" "$CG" train --image-encoder starnet_s050 \
    --text-encoder clip:tiny --device cuda --steps 1 --batch-size 8 --image-size 32 --context-length 24 \
    --eval-samples 16 --retrieval-samples 8 --drop-path 0.1 --out "$W/memcheck_run"
  # 12. every layer test under memcheck
  # (CG_TEST_UNDER_SANITIZER: the test leaves out its deliberate failed cudaMalloc, an API error to memcheck)
  [ -x "$OPS" ] && memcheck "memcheck clean (test_cuda_ops)" 300 "$LOGDIR/cuda_ops_memcheck.log" \
    env CG_TEST_UNDER_SANITIZER=1 "$OPS"
}

# ---------------------------------------------------------------- the sections, most valuable first
want cuda && section_cuda
want bench && section_bench
want memcheck && section_memcheck
want launcher && section_launcher

# ---------------------------------------------------------------- table + JSON
write_json
echo
echo "== gpu-check on $CARD ($(( $(date +%s) - T_START )) s of GPU_CHECK_BUDGET=$BUDGET)"
fails=0; skips=0; infos=0
for i in "${!NAMES[@]}"; do
  printf '%-40s %-5s %s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${DETAILS[$i]}"
  case "${RESULTS[$i]}" in PASS) ;; SKIP) skips=$((skips + 1));; INFO) infos=$((infos + 1));; *) fails=$((fails + 1));; esac
done
echo "$(( ${#NAMES[@]} - fails - skips - infos )) passed, $fails failed, $skips skipped ($infos benchmark ratios)"
[ $fails -eq 0 ]
