#!/usr/bin/env bash
# Grid vs random vs TPE, each with and without hyperband, on one 24-trial budget for the S3 MLP on
# the bundled sample (7,000 train / 1,000 val / 2,000 test, 6 epochs per trial): the best test
# accuracy any trial reached and the epochs trained in all. Usage: benches/search.sh [out-dir]
# (default /tmp/hs-search-bench); configurations: CONFIGS="grid grid+hb random+hb …".
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/hs-search-bench}
bin=${HYPERSWEEP:-target/release/hypersweep}
configs=${CONFIGS:-"grid grid+hb random+hb tpe+hb random tpe"}
mkdir -p "$out"
base='data: {source: mnist, split: {train: 0.7, val: 0.1, test: 0.2}, normalize: unit}
fixed: {model: {kind: mlp, init: default}, optimizer: {kind: adam}, epochs: 6, seed: 42}'
grid='grid:
  optimizer.learning_rate: [0.0003, 0.001, 0.003]
  model.hidden: [[128], [512, 256]]
  batch_size: [32, 128]
  model.dropout: [0.0, 0.2]'
space='count: 24
search_seed: 7
space:
  optimizer.learning_rate: {distribution: log_uniform, min: 0.0003, max: 0.003}
  model.hidden: {values: [[128], [512, 256]]}
  batch_size: {distribution: int_log_uniform, min: 32, max: 128}
  model.dropout: {distribution: uniform, min: 0.0, max: 0.2}'
hb='early_terminate: {type: hyperband, metric: val_accuracy, min_epochs: 1, eta: 3}'
echo "| configuration | trials | pruned | epochs trained | best test accuracy | wall s |" > "$out/table.md"
echo "|---|---|---|---|---|---|" >> "$out/table.md"
for c in $configs; do
  name="bench-${c/+/-}"
  method=${c%+hb}
  {
    echo "name: $name"
    echo "$base"
    if [ "$method" = grid ]; then echo "$grid"; else echo "method: $method"; echo "$space"; fi
    if [[ "$c" == *+hb ]]; then echo "$hb"; fi
  } > "$out/$name.yaml"
  start=$(date +%s.%N)
  "$bin" run "$out/$name.yaml" --out "$out/results" --devices cpu:2 --quiet --no-report > "$out/$name.log"
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  python3 - "$out/results/$name" "$c" "$wall" >> "$out/table.md" <<'PY'
import json, pathlib, sys
d, c, wall = pathlib.Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
rs = [json.loads(p.read_text()) for p in d.glob("trials/*/result.json")]
best = max((r["test_accuracy"] or 0) for r in rs)
print(f"| {c} | {len(rs)} | {sum(r['status'] == 'pruned' for r in rs)} | "
      f"{sum(r['epochs_run'] for r in rs)} | {best:.4f} | {wall:.0f} |")
PY
  tail -1 "$out/table.md"
done
