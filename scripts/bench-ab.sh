#!/usr/bin/env bash
# Side-by-side throughput of several hypersweep binaries (e.g. before and after a change), the
# binaries alternating within each repetition; prints the median samples/s per binary, model and
# thread count. Used for the attributions in benches/RESULTS.md.
#
#   scripts/bench-ab.sh old=/path/to/hypersweep new=target/release/hypersweep
#   REPS=3 EPOCHS=2 MODELS=linear,mlp,cnn THREADS="1 2" scripts/bench-ab.sh a=... b=...
set -euo pipefail
REPS=${REPS:-3}; EPOCHS=${EPOCHS:-2}; MODELS=${MODELS:-linear,mlp,cnn}; THREADS=${THREADS:-"1 2"}
out=$(mktemp)
for r in $(seq "$REPS"); do
  for t in $THREADS; do
    for m in ${MODELS//,/ }; do
      for nb in "$@"; do
        name=${nb%%=*}; bin=${nb#*=}
        "$bin" bench --models "$m" --threads "$t" --epochs "$EPOCHS" | sed "s/^{/{\"bin\": \"$name\", /" >> "$out"
      done
    done
  done
done
python3 - "$out" "$@" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = [a.split("=", 1)[0] for a in sys.argv[2:]]
print("| model | threads | " + " | ".join(f"{n} samples/s" for n in names) + " | test acc |")
print("|---|---|" + "---|" * len(names) + "---|")
for m in dict.fromkeys(r["model"] for r in rows):
    for t in sorted({r["threads"] for r in rows}):
        cells, accs = [], []
        for n in names:
            sel = [r for r in rows if r["bin"] == n and r["model"] == m and r["threads"] == t]
            cells.append(f"{statistics.median(r['samples_per_second'] for r in sel):,.0f}")
            accs.append(f"{sel[-1]['test_accuracy']:.4f}")
        print(f"| {m} | {t} | " + " | ".join(cells) + " | " + " / ".join(accs) + " |")
PY
