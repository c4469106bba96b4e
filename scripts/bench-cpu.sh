#!/usr/bin/env bash
# hypersweep vs PyTorch eager on this machine's CPU, side by side in one run: training throughput
# of the three reference models (alternating the two sides, REPS repetitions, median), then the
# wall time of two reduced sweeps run by hypersweep vs the same trials one after another in a
# plain PyTorch loop. Not part of CI (minutes); `hypersweep bench` has a smoke test in tests/.
#
#   scripts/bench-cpu.sh            # REPS=3 EPOCHS=2 THREADS=2 by default
#
# PyTorch comes from PyPI into ./bench-venv. PyPI's Linux wheel pulls the CUDA libraries (~5 GB on
# disk, about 1.5 minutes here); `pip install --no-deps torch` does not import without them.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}; EPOCHS=${EPOCHS:-2}; THREADS=${THREADS:-2}; SWEEP_EPOCHS=${SWEEP_EPOCHS:-3}
cargo build --release --quiet
HS=./target/release/hypersweep
if [ ! -x bench-venv/bin/python ] || ! bench-venv/bin/python -c "import torch" 2>/dev/null; then
  python3 -m venv bench-venv
  bench-venv/bin/pip install --quiet torch numpy
fi
PY=bench-venv/bin/python
out=$(mktemp -d)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "torch $($PY -c 'import torch; print(torch.__version__)'), hypersweep $($HS --version)"
for r in $(seq "$REPS"); do
  for m in linear mlp cnn; do
    $HS bench --models $m --threads "$THREADS" --epochs "$EPOCHS" >> "$out/rs.jsonl"
    $PY benches/bench_torch.py throughput --models $m --threads "$THREADS" --epochs "$EPOCHS" >> "$out/py.jsonl"
  done
done
# Reduced sweeps: S3 (2 MLP trials) and the S2 batch-size study (5 linear trials), SWEEP_EPOCHS each.
mk() { sed -e "s/^  epochs: .*/  epochs: $SWEEP_EPOCHS/" -e "s/^name: .*/name: bench-$2/" "sweeps/$1.yaml" > "$out/$2.yaml"; }
mk s3-activation s3; mk s2-batch-size s2
sed -i 's/60000\]/8000]/' "$out/s2.yaml"
for s in s3 s2; do
  t0=$(date +%s.%N)
  $HS run "$out/$s.yaml" --out "$out/results" --quiet --no-report --fresh > /dev/null
  t1=$(date +%s.%N)
  echo "{\"side\": \"hypersweep\", \"sweep\": \"$s\", \"start\": $t0, \"end\": $t1}" >> "$out/sweeps.jsonl"
  $PY benches/bench_torch.py sweep $s --epochs "$SWEEP_EPOCHS" --threads "$THREADS" >> "$out/sweeps.jsonl"
done
$PY - "$out" <<'PY'
import json, statistics, sys
d = sys.argv[1]
rows = [json.loads(l) for f in ("rs.jsonl", "py.jsonl") for l in open(f"{d}/{f}")]
print(f"\n| model | hypersweep samples/s, median (min–max) | PyTorch samples/s, median (min–max) | ratio | threads | test acc (hs / pt) |")
print("|---|---|---|---|---|---|")
for m in ["linear", "mlp", "cnn"]:
    hs = [r for r in rows if r["model"] == m and r["side"] == "hypersweep"]
    pt = [r for r in rows if r["model"] == m and r["side"] == "pytorch"]
    sa = [r["samples_per_second"] for r in hs]
    sb = [r["samples_per_second"] for r in pt]
    a, b = statistics.median(sa), statistics.median(sb)
    span = lambda v: f"{min(v):,.0f}–{max(v):,.0f}"
    print(f"| {m} | {a:,.0f} ({span(sa)}) | {b:,.0f} ({span(sb)}) | {a / b:.2f}× | {hs[0]['threads']} / {pt[0]['threads']} | "
          f"{hs[-1]['test_accuracy']:.3f} / {pt[-1]['test_accuracy']:.3f} |")
sw = [json.loads(l) for l in open(f"{d}/sweeps.jsonl")]
for r in sw:
    r.setdefault("wall_seconds", r.get("end", 0) - r.get("start", 0))
print(f"\n| reduced sweep | hypersweep wall s | PyTorch sequential wall s | ratio |")
print("|---|---|---|---|")
for s in ["s3", "s2"]:
    a = next(r["wall_seconds"] for r in sw if r["sweep"] == s and r["side"] == "hypersweep")
    b = next(r["wall_seconds"] for r in sw if r["sweep"] == s and r["side"] == "pytorch")
    print(f"| {s} | {a:.1f} | {b:.1f} | {a / b:.2f}× |")
PY
