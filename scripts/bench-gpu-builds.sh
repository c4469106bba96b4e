#!/usr/bin/env bash
# Compares hypersweep builds on one GPU in one run (issue 20): for each binary given, S3 (MLP)
# and S4 (CNN) on cuda:0 with their warm-epoch times, then packing (8 CNN trials) with the
# last one. PyTorch on the same GPU for reference.
#   OUT=/tmp/out scripts/bench-gpu-builds.sh /tmp/hs-base /tmp/hs-at /tmp/hs-fu
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-gpu.sh --functions-only
timeout 60 $PY benches/bench_torch.py throughput --models mlp,cnn --device cuda --epochs 6 2>&1
for HS in "$@"; do
  b=$(basename "$HS")
  echo "##### $b"
  with_gpu_memory sweep "$b-s3" sweeps/s3-activation.yaml --devices cuda:0; warm_epochs "$work/$b-s3"
  with_gpu_memory sweep "$b-s4" sweeps/s4-cnn.yaml --devices cuda:0; warm_epochs "$work/$b-s4"
done
(cat sweeps/s4-cnn.yaml; echo "grid: {seed: [1, 2, 3, 4, 5, 6, 7, 8]}") | sed 's/^name: s4-cnn/name: s4-seeds/' >"$work/s4-seeds.yaml"
for k in 1 8; do
  with_gpu_memory sweep "s4seeds-k$k" "$work/s4-seeds.yaml" --devices cuda:0 --per-device "$k"
done
tar czf "$OUT/results3.tgz" -C "$work" --exclude='*.parquet' . 2>/dev/null
echo done
