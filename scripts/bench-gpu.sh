#!/usr/bin/env bash
# GPU verification (issue 20), on a machine with an NVIDIA GPU, its driver and PyTorch, from a
# checkout holding a hypersweep binary built elsewhere (HS, default target/release/hypersweep):
#   1. correctness: the quickstart sweep, S3 and S4 on cuda:0 (accuracy, device, time per trial);
#   2. throughput: `hypersweep bench` on cuda:0 next to PyTorch eager on the same GPU (the first
#      epoch compiles kernels: the warm epochs printed under 1. are the fair figure);
#   3. packing: S5 with --per-device 1, 2, 4, 8: wall time each, GPU memory of the process.
# Each step has its own time limit so that one that hangs does not take the rest with it.
# NVRTC (cubecl compiles its kernels at run time): a pip PyTorch carries the CUDA 13 libnvrtc in
# site-packages/nvidia/…; the toolkit's lib64 is tried too.
#   HS=/tmp/hs OUT=/tmp/out scripts/bench-gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
HS=${HS:-./target/release/hypersweep}
PY=${PY:-python3}
OUT=${OUT:-$(mktemp -d)}
STEP=${STEP:-90} # seconds allowed to each sweep
work=$(mktemp -d)
site=$($PY -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)
nvrtc=$(find "$site/nvidia" /usr/local/cuda/lib64 /usr/local/cuda/targets -name 'libnvrtc.so*' -not -path '*stubs*' -printf '%h:' 2>/dev/null)
export LD_LIBRARY_PATH="${nvrtc}${LD_LIBRARY_PATH:-}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
nproc

# name, status, device, accuracy and seconds of each trial of a results directory
summary() {
  $PY - "$1" <<'EOF'
import json, sys, pathlib
for p in sorted(pathlib.Path(sys.argv[1]).glob("trials/*/result.json")):
    r = json.loads(p.read_text())
    print(f"  {r['name']:<28} {r['status']:<8} {r.get('device')}  acc={r.get('test_accuracy')}"
          f"  train_s={r.get('train_seconds')}  {r.get('error') or ''}")
EOF
}

# runs a sweep with a time limit, prints wall time and the trials; $1 label, $2 sweep, rest flags
sweep() {
  local label=$1 file=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  timeout -s TERM "$STEP" "$HS" run "$file" --out "$work/$label" --quiet --no-report "$@" \
    >"$work/$label.log" 2>&1
  local rc=$?
  t1=$(date +%s.%N)
  echo "== $label: rc=$rc wall=$($PY -c "print(round($t1 - $t0, 1))") s"
  tail -3 "$work/$label.log"
  summary "$work/$label"/*/
}

# median training seconds of the epochs after the first, per trial (the `seconds` column)
warm_epochs() {
  for f in "$1"/*/trials/*/epochs.csv; do
    local col first
    col=$(head -1 "$f" | tr , '\n' | grep -nx seconds | cut -d: -f1)
    first=$(awk -F, -v c="$col" 'NR==2{print $c}' "$f")
    awk -F, -v c="$col" 'NR>2{print $c}' "$f" | sort -n |
      awk -v first="$first" '{a[NR]=$1} END{printf "   warm epoch median %.3f s (first %s)\n", a[int((NR+1)/2)], first}'
  done
}

# the largest GPU memory of hypersweep processes while a command runs
with_gpu_memory() {
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits -lms 200 \
    >"$work/apps.csv" 2>/dev/null &
  local smi=$!
  "$@"
  kill $smi 2>/dev/null
  wait $smi 2>/dev/null
  echo "   peak GPU memory of the process: $(sort -t, -k2 -n "$work/apps.csv" | tail -1 | cut -d, -f2) MiB"
}

# scripts/bench-gpu-builds.sh takes the setup and functions above and runs its own steps
[[ "${1:-}" == --functions-only ]] && return 0

echo "### 1. correctness"
with_gpu_memory sweep quick-cuda sweeps/quickstart.yaml --devices cuda:0
sweep quick-cpu sweeps/quickstart.yaml --devices cpu:4
with_gpu_memory sweep s3-cuda sweeps/s3-activation.yaml --devices cuda:0
warm_epochs "$work/s3-cuda"
with_gpu_memory sweep s4-cuda sweeps/s4-cnn.yaml --devices cuda:0
warm_epochs "$work/s4-cuda"

echo "### 2. throughput (3 epochs, samples/s of the training steps)"
timeout 120 "$HS" bench --models linear,mlp,cnn --device cuda:0 --epochs 3 2>&1 | tee "$work/hs.jsonl"
timeout 90 $PY benches/bench_torch.py throughput --models linear,mlp,cnn --device cuda --epochs 3 2>&1 | tee "$work/pt.jsonl"

echo "### 3. packing: S5 on cuda:0"
for k in 1 2 4 8; do
  with_gpu_memory sweep "s5-k$k" sweeps/s5-scratch-mlp.yaml --devices cuda:0 --per-device "$k"
done
tar czf "$OUT/results.tgz" -C "$work" . 2>/dev/null
echo "done"
