#!/usr/bin/env bash
# Fused trials (--fuse K) against one at a time, on one device, side by side in one run: the S5
# MLP and S4 CNN shapes, TRIALS trials of each (a grid over learning rates and seeds, one
# epoch on TRAIN_SIZE samples), trained by hypersweep at each K in KS, and by PyTorch eager one
# model after another on the same device. Prints the sweep wall time and the training
# throughput per trial (samples/s per trial = all trials' samples / wall / trials).
#
#   scripts/bench-fuse.sh                   # DEVICE=cpu KS="1 2 4 8 16" TRIALS=16
#   DEVICE=wgpu scripts/bench-fuse.sh       # lavapipe without a GPU
#   DEVICE=cuda:0 HS=./hypersweep scripts/bench-fuse.sh   # on a GPU machine, a carried binary
#   DEVICE=cpu:1 FLAGS="--threads 1" TORCH_THREADS=1 scripts/bench-fuse.sh   # one core
#
# On a GPU, K=1 is one trial at a time on the device; `--per-device 8` (8 unfused trials
# sharing the GPU) is timed beside it. On CPU, K=1 is the default `--devices cpu` (one trial per
# core), and the fused groups share the same slots. Not part of CI (minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cpu}; KS=${KS:-"1 2 4 8 16"}; TRIALS=${TRIALS:-16}; SHAPES=${SHAPES:-"s5 s4"}
TRAIN_SIZE=${TRAIN_SIZE:-4000}; PY=${PY:-bench-venv/bin/python}
if [ -z "${HS:-}" ]; then cargo build --release --quiet; HS=./target/release/hypersweep; fi
out=$(mktemp -d)
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$out}
echo "machine: $(nproc) cores; device $DEVICE; $($HS --version)"
seeds=$(seq -s, 1 $((TRIALS / 4)))
sweep() {  # the sweep file of shape $1
  local model opt batch norm
  case $1 in
    s5) model="{kind: mlp, hidden: [500, 250, 100], init: xavier_uniform}"; opt="{kind: sgd}"; lrs="[0.05, 0.1, 0.15, 0.2]"; batch=64; norm=unit ;;
    s4) model="{kind: cnn, channels: [16, 32], kernel: 5, padding: 2, pool: 2, hidden: []}"; opt="{kind: adam}"; lrs="[0.001, 0.002, 0.003, 0.004]"; batch=600; norm=mnist ;;
  esac
  printf 'name: fuse-%s\ndata: {train_size: %s, normalize: %s}\nfixed:\n  model: %s\n  optimizer: %s\n  batch_size: %s\n  epochs: 1\ngrid:\n  optimizer.learning_rate: %s\nseeds: [%s]\n' \
    "$1" "$TRAIN_SIZE" "$norm" "$model" "$opt" "$batch" "$lrs" "$seeds" > "$out/$1.yaml"
}
row() {  # shape, label, flags...: one run of hypersweep, its wall time and throughput
  local shape=$1 label=$2; shift 2
  rm -rf "$out/r"
  local t0 t1
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086 # FLAGS is words
  $HS run "$out/$shape.yaml" --out "$out/r" --devices "$DEVICE" --quiet --no-report ${FLAGS:-} "$@" > /dev/null
  t1=$(date +%s.%N)
  python3 - "$out/r" "$shape" "$label" "$t0" "$t1" <<'PY'
import glob, json, sys
d, shape, label, t0, t1 = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
rs = [json.load(open(f)) for f in glob.glob(f"{d}/*/trials/*/result.json")]
wall = t1 - t0
samples = sum(r["data"]["train"] * r["epochs_run"] for r in rs)
acc = sorted(r.get("test_accuracy") or 0 for r in rs)
print(f"| {shape} | hypersweep {label} | {wall:.2f} | {samples / wall / len(rs):,.0f} | {acc[0]:.3f}–{acc[-1]:.3f} | {sum(r['status'] == 'ok' for r in rs)}/{len(rs)} ok |")
PY
}
echo
echo "| shape | side | sweep wall s | samples/s per trial | test acc (min–max) | trials |"
echo "|---|---|---|---|---|---|"
for shape in $SHAPES; do
  sweep "$shape"
  for k in $KS; do row "$shape" "--fuse $k" --fuse "$k"; done
  case $DEVICE in cuda*|wgpu) row "$shape" "--per-device 8" --per-device 8 ;; esac
  if [ -x "$PY" ] || command -v "$PY" > /dev/null; then
    torch_dev=${DEVICE%%:*}; [ "$DEVICE" = wgpu ] && torch_dev=cpu; [ "$torch_dev" = cuda ] && torch_dev=$DEVICE
    $PY benches/bench_torch.py fuse "$shape" --trials "$TRIALS" --train-size "$TRAIN_SIZE" --threads "${TORCH_THREADS:-$(nproc)}" --device "$torch_dev" \
      | python3 -c "import json,sys; r=json.load(sys.stdin); print(f\"| $shape | PyTorch eager, one at a time ($torch_dev) | {r['wall_seconds']:.2f} | {r['samples_per_second_per_trial']:,.0f} | | {r['trials']} |\")"
  fi
done
