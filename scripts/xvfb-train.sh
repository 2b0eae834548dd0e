#!/usr/bin/env bash
# The retraining issue's end-to-end check, in a real window under Xvfb: a first guidance model version trained with
# the CLI on the demo, then, in the studio, t (the Train panel), max epochs set, Retrain pressed; screenshots while
# the curves grow and after the run, with the new version beside its parent. Screenshots go to $OUT (default
# ./shots). Needs xvfb, xdotool, imagemagick (apt) and a built target/debug/argus; the encoder is fetched on first
# use. MODEL (arg, argd, bert; default arg) and EPOCHS (default 3) pick the run; on this 2-core CPU ARG takes about
# 50 s an epoch, BERT-only about 7 s.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-shots}; mkdir -p "$OUT"
BIN=${BIN:-target/debug/argus}
MODEL=${MODEL:-arg}
EPOCHS=${EPOCHS:-3}
tmp=$(mktemp -d); export ARGUS_CONFIG_DIR="$tmp" ARGUS_DATA_DIR="$tmp"
DB="$tmp/demo.sqlite"
"$BIN" import --db "$DB" assets/demo/liar2-sample.csv
"$BIN" train --db "$DB" --model "$MODEL" --max-epochs "$EPOCHS"
echo '{"annotator": "demo"}' > "$tmp/settings.json"
Xvfb :94 -screen 0 1280x800x24 -nolisten tcp & xvfb=$!
trap 'kill $xvfb 2>/dev/null || true' EXIT
export DISPLAY=:94; unset WAYLAND_DISPLAY; sleep 1
"$BIN" --db "$DB" & app=$!
for _ in $(seq 200); do xdotool search --onlyvisible --name '^Argus$' >/dev/null 2>&1 && break; sleep 0.05; done
win=$(xdotool search --name '^Argus$' | head -1)
sleep 1; xdotool windowfocus --sync "$win"; sleep 0.5
xdotool key t; sleep 1.5
# The panel opens at the window's top left: "Max epochs:" field, then Retrain (positions in a 1280x800 window).
xdotool mousemove 122 106 click 1; sleep 0.4; xdotool key ctrl+a; xdotool type "$EPOCHS"; xdotool key Return
sleep 0.5; xdotool mousemove 286 106 click 1; sleep 0.5; xdotool mousemove 1200 600
for t in ${SHOTS:-30 90 240}; do
  sleep "$t"; import -window root "$OUT/train-$t.png"; echo "screenshot after +$t s"
done
kill "$app"; wait "$app" 2>/dev/null || true
"$BIN" versions --db "$DB"
