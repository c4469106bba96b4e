#!/usr/bin/env bash
# GPU verification (issue 7), to run on a machine with an NVIDIA GPU and PyTorch installed, from
# a checkout holding a hypersweep binary built elsewhere (target/release/hypersweep):
#   1. correctness: the S3 MLP and the S4 CNN on cuda:0 vs cpu, same seeds;
#   2. throughput: hypersweep vs PyTorch eager on the same GPU (S3 MLP batch 128, S4 CNN batch 600);
#   3. wall time of the S2 batch-size and S3 sweeps with --per-device 1, 2, 4.
# NVRTC: the CUDA 13 nvrtc of a pip PyTorch lives in site-packages/nvidia/cuda_nvrtc/lib (or
# nvidia/cu13/lib); this script puts it on LD_LIBRARY_PATH. Not yet run: no GPU has been lent.
set -euo pipefail
cd "$(dirname "$0")/.."
HS=${HS:-./target/release/hypersweep}
PY=${PY:-python3}
site=$($PY -c 'import site; print(site.getsitepackages()[0])')
export LD_LIBRARY_PATH="$(find "$site/nvidia" -name 'libnvrtc.so*' -printf '%h:' 2>/dev/null)${LD_LIBRARY_PATH:-}"
out=$(mktemp -d)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
for dev in cuda:0 cpu; do
  for m in mlp cnn; do $HS bench --models $m --device $dev --epochs 3; done
done | tee "$out/hs.jsonl"
for m in mlp cnn; do $PY benches/bench_torch.py throughput --models $m --device cuda --epochs 3; done | tee "$out/pt.jsonl"
for s in s2-batch-size s3-activation; do
  for k in 1 2 4; do
    t0=$(date +%s.%N)
    $HS run sweeps/$s.yaml --devices cuda:0 --per-device $k --out "$out/k$k" --quiet --no-report
    echo "$s per-device $k: $(python3 -c "import time; print(round(time.time() - $t0, 1))") s"
  done
done
