#!/usr/bin/env bash
# Runs every course study on the bundled sample into results/<sweep>/; git keeps each report.md,
# summary.csv and plots/ (the per-trial files stay ignored, see .gitignore).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
for f in "${@:-sweeps/s2-batch-size.yaml sweeps/s2-train-size.yaml sweeps/s3-activation.yaml sweeps/s4-cnn.yaml sweeps/s4-cnn-longer.yaml sweeps/s5-scratch-mlp.yaml sweeps/s1-softmax-fcnn.yaml}"; do
  for file in $f; do
    start=$(date +%s)
    ./target/release/hypersweep run "$file" --quiet
    echo "$file: $(( $(date +%s) - start )) s wall"
  done
done
