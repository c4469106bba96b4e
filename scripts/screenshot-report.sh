#!/usr/bin/env bash
# Renders a report.html in headless Chromium and saves a full-page PNG next to it, so anyone can
# look at what a browser shows. Needs Debian's chromium (apt-get install chromium).
# Usage: scripts/screenshot-report.sh results/<sweep>/report.html [out.png] [height]
set -euo pipefail
html=$(realpath "$1")
out=${2:-${html%.html}.png}
height=${3:-6000}
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$(mktemp -d)" --hide-scrollbars \
  --window-size=1200,"$height" --screenshot="$out" "file://$html" 2>/dev/null
echo "$out"
