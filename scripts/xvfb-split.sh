#!/usr/bin/env bash
# The project's split key in the Train panel, in a real window under Xvfb: the demo with a first BERT-only version,
# t, then the "Split train / val by" list opened (the fields the items have, with counts). Writes $OUT/train-split.png
# (default ./shots). Needs xvfb, xdotool, imagemagick and a built target/debug/argus.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-shots}; mkdir -p "$OUT"
BIN=${BIN:-target/debug/argus}
tmp=$(mktemp -d); export ARGUS_CONFIG_DIR="$tmp" ARGUS_DATA_DIR="$tmp"
DB="$tmp/demo.sqlite"
"$BIN" import --db "$DB" assets/demo/liar2-sample.csv >/dev/null
"$BIN" train --db "$DB" --model bert --max-epochs 1 --max-len 64 >/dev/null 2>&1
echo '{"annotator": "demo"}' > "$tmp/settings.json"
Xvfb :95 -screen 0 1280x800x24 -nolisten tcp & xvfb=$!
trap 'kill $xvfb 2>/dev/null || true; rm -rf "$tmp"' EXIT
export DISPLAY=:95; unset WAYLAND_DISPLAY; sleep 1
"$BIN" --db "$DB" & app=$!
for _ in $(seq 200); do xdotool search --onlyvisible --name '^Argus$' >/dev/null 2>&1 && break; sleep 0.05; done
win=$(xdotool search --name '^Argus$' | head -1)
sleep 1; xdotool windowfocus --sync "$win"; sleep 0.5
xdotool key t; sleep 1.5
# The list sits under the panel's first two rows (positions in a 1280x800 window).
xdotool mousemove 190 129 click 1; sleep 1; xdotool mousemove 200 172; sleep 0.5
import -window root "$OUT/train-split.png"
kill $app
echo "wrote $OUT/train-split.png"
