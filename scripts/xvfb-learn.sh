#!/usr/bin/env bash
# The learning loop in a real window under Xvfb: the built-in demo opened for the first time trains its own first
# ARG version in the background (three full epochs, then a quick head retrain); eight judgements then move it online;
# t and Simulate labelling run the simulated annotator and plot its curves. Screenshots go to $OUT (default ./shots):
# demo-model.png (the list in risk order once the model landed), online.png (after the eighth judgement),
# learn.png (the Train panel with the simulation window). Needs xvfb, xdotool, imagemagick and a built
# target/debug/argus; the encoder is fetched on first use. About ten minutes on one core of a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-shots}; mkdir -p "$OUT"
BIN=${BIN:-target/debug/argus}
tmp=$(mktemp -d); export ARGUS_CONFIG_DIR="$tmp" ARGUS_DATA_DIR="$tmp"
echo '{"annotator": "demo"}' > "$tmp/settings.json"
Xvfb :96 -screen 0 1280x800x24 -nolisten tcp & xvfb=$!
trap 'kill $xvfb 2>/dev/null || true' EXIT
export DISPLAY=:96; unset WAYLAND_DISPLAY; sleep 1
"$BIN" & app=$!
# The demo's two versions (the full run, then the quick one) land in the background.
for _ in $(seq 180); do
  sleep 5
  n=$(sqlite3 "$tmp/demo.sqlite" "SELECT count(*) FROM model_versions" 2>/dev/null || echo 0)
  [ "$n" -ge 2 ] && break
done
echo "demo model versions: $n"; sleep 3
win=$(xdotool search --name '^Argus$' | head -1)
xdotool windowfocus --sync "$win"; sleep 0.5
import -window root "$OUT/demo-model.png"
for k in r f r r f r r f; do xdotool key "$k"; sleep 0.4; done
sleep 5; import -window root "$OUT/online.png"
xdotool key t; sleep 1.5
# "Simulate labelling" in the Train panel's second row (a 1280x800 window).
xdotool mousemove 297 106 click 1; sleep 1; xdotool mousemove 1200 700
# The simulation takes about a minute on one core (SIM_WAIT to wait longer).
sleep "${SIM_WAIT:-100}"; import -window root "$OUT/learn.png"
kill "$app"; wait "$app" 2>/dev/null || true
"$BIN" versions --db "$tmp/demo.sqlite"
