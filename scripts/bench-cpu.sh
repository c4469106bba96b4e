#!/usr/bin/env bash
# hypersweep vs PyTorch eager on this machine's CPU, side by side in one run: training throughput
# of the three reference models (alternating the two sides, REPS repetitions, median), then the
# wall time of two reduced sweeps run by hypersweep vs the same trials one after another in a
# plain PyTorch loop. Not part of CI (minutes); `hypersweep bench` has a smoke test in tests/.
#
#   scripts/bench-cpu.sh            # REPS=3 EPOCHS=2 THREADS="1 2" by default
#
# Each model runs at every thread count in THREADS on both sides; the tables give the ratio at
# each and the 1→2 thread scaling of each side. Peak RSS comes from /usr/bin/time (GNU time):
# the largest of any one command per side. The sweeps run with the sweep's own threads (cores
# shared among running trials) against PyTorch with torch's default threads, one trial after
# another.
#
# PyTorch comes from PyPI into ./bench-venv. PyPI's Linux wheel pulls the CUDA libraries (~5 GB on
# disk, about 1.5 minutes here); `pip install --no-deps torch` does not import without them.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}; EPOCHS=${EPOCHS:-2}; THREADS=${THREADS:-"1 2"}; SWEEP_EPOCHS=${SWEEP_EPOCHS:-3}
TIME=/usr/bin/time
[ -x $TIME ] || apt-get install -y time > /dev/null
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
# Peak RSS in KB of one command, appended to $out/rss-SIDE.
rss() { local side=$1; shift; $TIME -f %M -o "$out/rss.tmp" "$@"; cat "$out/rss.tmp" >> "$out/rss-$side"; }
for r in $(seq "$REPS"); do
  for m in linear mlp cnn; do
    for t in $THREADS; do
      rss hs $HS bench --models $m --threads "$t" --epochs "$EPOCHS" >> "$out/rs.jsonl"
      rss pt $PY benches/bench_torch.py throughput --models $m --threads "$t" --epochs "$EPOCHS" >> "$out/py.jsonl"
    done
  done
done
# Reduced sweeps: S3 (2 MLP trials) and the S2 batch-size study (5 linear trials), SWEEP_EPOCHS each.
mk() { sed -e "s/^  epochs: .*/  epochs: $SWEEP_EPOCHS/" -e "s/^name: .*/name: bench-$2/" "sweeps/$1.yaml" > "$out/$2.yaml"; }
mk s3-activation s3; mk s2-batch-size s2
sed -i 's/60000\]/8000]/' "$out/s2.yaml"
for s in s3 s2; do
  t0=$(date +%s.%N)
  rss hs $HS run "$out/$s.yaml" --out "$out/results" --quiet --no-report --fresh > /dev/null
  t1=$(date +%s.%N)
  echo "{\"side\": \"hypersweep\", \"sweep\": \"$s\", \"start\": $t0, \"end\": $t1}" >> "$out/sweeps.jsonl"
  rss pt $PY benches/bench_torch.py sweep $s --epochs "$SWEEP_EPOCHS" --threads "$(nproc)" >> "$out/sweeps.jsonl"
done
$PY - "$out" <<'PY'
import json, statistics, sys
d = sys.argv[1]
rows = [json.loads(l) for f in ("rs.jsonl", "py.jsonl") for l in open(f"{d}/{f}")]
med = lambda side, m, t: statistics.median(r["samples_per_second"] for r in rows if r["model"] == m and r["side"] == side and r["threads"] == t)
span = lambda v: f"{min(v):,.0f}–{max(v):,.0f}"
threads = sorted({r["threads"] for r in rows})
print(f"\n| model | threads | hypersweep samples/s, median (min–max) | PyTorch samples/s, median (min–max) | ratio | test acc (hs / pt) |")
print("|---|---|---|---|---|---|")
for m in ["linear", "mlp", "cnn"]:
    for t in threads:
        hs = [r for r in rows if r["model"] == m and r["side"] == "hypersweep" and r["threads"] == t]
        pt = [r for r in rows if r["model"] == m and r["side"] == "pytorch" and r["threads"] == t]
        if not hs or not pt:
            continue
        sa = [r["samples_per_second"] for r in hs]
        sb = [r["samples_per_second"] for r in pt]
        a, b = statistics.median(sa), statistics.median(sb)
        print(f"| {m} | {t} | {a:,.0f} ({span(sa)}) | {b:,.0f} ({span(sb)}) | {a / b:.2f}× | "
              f"{hs[-1]['test_accuracy']:.3f} / {pt[-1]['test_accuracy']:.3f} |")
if 1 in threads and 2 in threads:
    print(f"\n| model | hypersweep 1→2 threads | PyTorch 1→2 threads |")
    print("|---|---|---|")
    for m in ["linear", "mlp", "cnn"]:
        print(f"| {m} | {med('hypersweep', m, 2) / med('hypersweep', m, 1):.2f}× | {med('pytorch', m, 2) / med('pytorch', m, 1):.2f}× |")
peak = lambda side: max(int(l) for l in open(f"{d}/rss-{side}") if l.strip().isdigit()) / 1024
print(f"\npeak RSS of one command: hypersweep {peak('hs'):,.0f} MB, PyTorch {peak('pt'):,.0f} MB")
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
