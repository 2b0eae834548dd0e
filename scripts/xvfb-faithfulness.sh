#!/usr/bin/env bash
# Faithfulness and routing in a real window under Xvfb, on the bundled demo (300 LIAR2 claims with their stripped
# PolitiFact justification as the one rationale): a small ARG and ARG-D are trained first (3 and 2 epochs, 96
# tokens), then "Does ARG use them?" checks how far ARG's P(fake) for the first claim moves when its rationale is
# swapped, emptied or negated, and Models > Route uncertain items estimates routing's cost. Screenshot:
# $OUT/faithfulness.png (default ./shots). Needs xvfb, xdotool, imagemagick and a built target/debug/argus; the
# encoder is fetched on first use. About three minutes on one core.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-shots}; mkdir -p "$OUT"
BIN=${BIN:-target/debug/argus}
tmp=$(mktemp -d); export ARGUS_CONFIG_DIR="$tmp" ARGUS_DATA_DIR="$tmp"
echo '{"annotator": "demo"}' > "$tmp/settings.json"
db="$tmp/demo.sqlite"
"$BIN" import --db "$db" assets/demo/liar2-sample.csv
"$BIN" --threads 1 train --db "$db" --model arg --max-epochs 3 --max-len 96 --lr 5e-4 | tail -n 1
"$BIN" --threads 1 train --db "$db" --model argd --max-epochs 2 --max-len 96 | tail -n 1
"$BIN" faithfulness --db "$db" --split all
Xvfb :97 -screen 0 1280x800x24 -nolisten tcp & xvfb=$!
trap 'kill $xvfb 2>/dev/null || true' EXIT
export DISPLAY=:97; unset WAYLAND_DISPLAY; sleep 1
"$BIN" --db "$db" & app=$!
sleep 6
win=$(xdotool search --name '^Argus$' | head -1)
xdotool windowfocus --sync "$win"; sleep 0.5
# "Does ARG use them?" at the end of the guidance grid's header row (a 1280x800 window).
xdotool mousemove 921 181 click 1; sleep 10
# Models > Route uncertain items…, then "Score with ARG-D and estimate the cost" in the centred dialog.
xdotool mousemove 103 12 click 1; sleep 1
xdotool mousemove 160 167 click 1; sleep 1.5
xdotool mousemove "${ESTIMATE_X:-530}" "${ESTIMATE_Y:-455}" click 1; sleep 8
xdotool mousemove 1270 790
import -window root "$OUT/faithfulness.png"
kill "$app"; wait "$app" 2>/dev/null || true
