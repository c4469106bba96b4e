#!/usr/bin/env bash
# The live view (`hypersweep serve`) on a large sweep: a sweep of TRIALS trials is made once with
# the scripted engine, then each trial's result.json and epochs.csv are replaced by those of one
# real trial (a linear model, EPOCHS epochs: a confusion matrix, 25 misclassified digits, every
# epoch's row), with the trial's own id and name, so every file is as large as a real one. Then
#  1. first load: the server started cold, timed until the whole state (every trial's row) has
#     arrived, then the page, the state again and the curves chart, warm;
#  2. updates: the server's own CPU time per second while nothing changes, and while a writer
#     replaces CHANGED result files every 100 ms (1, then 10, then 100 of them): what a refresh
#     costs should follow what changed, not the sweep's size;
#  3. the size of one update on the event stream.
#
#   scripts/bench-serve.sh              # TRIALS=1000 EPOCHS=10
#
# Not part of CI (about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${TRIALS:-1000}; EPOCHS=${EPOCHS:-10}
if [ -z "${HS:-}" ]; then cargo build --release --quiet; HS=./target/release/hypersweep; fi
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
echo "machine: $(nproc) cores; $($HS --version); $TRIALS trials of $EPOCHS epochs"
lrs=$(python3 -c "print(', '.join(str(round(0.001 * (i + 1), 6)) for i in range($TRIALS // 10)))")
printf 'name: big\nfixed: {epochs: %s, data: {train_size: 100}}\ngrid:\n  optimizer.learning_rate: [%s]\nseeds: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n' \
  "$EPOCHS" "$lrs" > "$tmp/big.yaml"
t0=$(date +%s.%N)
HYPERSWEEP_ENGINE=scripted $HS run "$tmp/big.yaml" --out "$tmp/results" -q --no-report >/dev/null
printf 'name: one\nfixed: {model: {kind: linear}, epochs: %s, data: {train_size: 1000}}\n' "$EPOCHS" > "$tmp/one.yaml"
$HS run "$tmp/one.yaml" --out "$tmp/results" -q --no-report >/dev/null
dir=$tmp/results/big
python3 - "$tmp/results/one" "$dir" <<'PY'
import glob, json, os, sys
one, big = sys.argv[1], sys.argv[2]
src = glob.glob(os.path.join(one, "trials", "*"))[0]
result = json.load(open(os.path.join(src, "result.json")))
epochs = open(os.path.join(src, "epochs.csv")).read()
for d in glob.glob(os.path.join(big, "trials", "*")):
    mine = json.load(open(os.path.join(d, "result.json")))
    r = dict(result, id=mine["id"], name=mine["name"])
    json.dump(r, open(os.path.join(d, "result.json"), "w"), indent=2)
    open(os.path.join(d, "epochs.csv"), "w").write(epochs)
PY
echo "made the sweep in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s; a result.json is $(wc -c < "$(ls -d "$dir"/trials/* | sed -n 1p)/result.json") bytes"
ms() { python3 -c "print(round(($(date +%s.%N) - $1) * 1000))"; }

# 1. First load.
t0=$(date +%s.%N)
$HS serve "$dir" --port 0 > "$tmp/url" &
pid=$!
until [ -s "$tmp/url" ]; do sleep 0.005; done
url=$(head -1 "$tmp/url")
rows=$(curl -s "${url}state?since=0" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['trials']))")
echo "first load: server start to the whole state ($rows trial rows): $(ms "$t0") ms"
for what in "" "state?since=0" "curves.svg?metric=train_loss"; do
  t1=$(date +%s.%N); bytes=$(curl -s "${url}${what}" | wc -c)
  echo "  warm GET /${what:-(page)}: $(ms "$t1") ms, $bytes bytes"
done

# 2. Updates: the server's CPU seconds (user + system) over 10 s of each load.
cpu() { awk '{print ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$pid/stat"; }
ids=$(ls "$dir/trials" | sed -n 1,100p)
for changed in 0 1 10 100; do
  writer=""
  if [ "$changed" -gt 0 ]; then
    python3 - "$dir" "$changed" $ids <<'PY' &
import os, sys, time
d, n, ids = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
end = time.time() + 11
while time.time() < end:
    for i in ids[:n]:
        p = os.path.join(d, "trials", i, "result.json")
        text = open(p).read()
        with open(p + ".bench", "w") as f:
            f.write(text)
        os.replace(p + ".bench", p)
    time.sleep(0.1)
PY
    writer=$!
  fi
  sleep 0.5; c0=$(cpu); sleep 10; c1=$(cpu)
  [ -n "$writer" ] && wait "$writer"
  echo "updates: $changed result(s) replaced every 100 ms: server CPU $(python3 -c "print(round(($c1 - $c0) / 10 * 1000))") ms per second"
done

# 3. One update on the stream: a single result replaced.
curl -sN "${url}events?since=$(curl -s "${url}state?since=0" | python3 -c "import json,sys; print(json.load(sys.stdin)['version'])")" > "$tmp/events" &
sleep 0.5
one=$(ls "$dir/trials" | sed -n 1p); cp "$dir/trials/$one/result.json" "$tmp/r"; mv "$tmp/r" "$dir/trials/$one/result.json"
sleep 1
echo "one trial changed: the stream sent $(grep -c '^data:' "$tmp/events") update(s) of $(grep '^data:' "$tmp/events" | tail -1 | wc -c) bytes"
