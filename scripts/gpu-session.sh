#!/usr/bin/env bash
# The next GPU session's one call (issue 20): times the CNN on cuda:0 with the build before the
# gathered convolution (f1063cf) and the current one, PyTorch beside them, then packing with the
# current one (scripts/bench-gpu-builds.sh). Both binaries travel xz-compressed in gpu-carry/
# (ignored by git; ~21 MB each). Prepare them here, then call the device tool with
#   carry: ["gpu-carry"], command: "OUT=$OUT STEP=120 scripts/gpu-session.sh", timeout_s: 540
# Making them, on the CPU machine:
#   git worktree add /tmp/old f1063cf && (cd /tmp/old && cargo build --release)
#   strip -o gpu-carry/hs-f1063cf /tmp/old/target/release/hypersweep && xz gpu-carry/hs-f1063cf
#   strip -o gpu-carry/hs-now target/release/hypersweep && xz gpu-carry/hs-now
set -uo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
for f in gpu-carry/*.xz; do
  b=$(basename "$f" .xz)
  xz -dc "$f" >"$bin/$b" && chmod +x "$bin/$b"
done
ls -la "$bin"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
scripts/bench-gpu-builds.sh "$bin/hs-f1063cf" "$bin/hs-now"
