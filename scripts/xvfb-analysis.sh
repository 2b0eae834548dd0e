#!/usr/bin/env bash
# The user-studies issue's screenshot, in a real window under Xvfb: 24 simulated participants of the example study
# (`argus study prepare`, then `argus study run-sim`, into DB, default /tmp/analysis-demo.db, made when missing), then Studies ▸ Analysis with
# "exclude failed attention checks" ticked: the per-condition table with 95% intervals, the bar charts with their
# error bars, the time-per-item histogram, and the flagged participants. Needs xvfb, xdotool, imagemagick (apt) and a
# built target/debug/argus. The database is copied first: nothing is written to it.
#
#   scripts/xvfb-analysis.sh [OUT.png]        (default assets/screenshots/analysis.png)
set -euo pipefail
cd "$(dirname "$0")/.."
SHOT=${1:-assets/screenshots/analysis.png}
BIN=${BIN:-target/debug/argus}
DB=${DB:-/tmp/analysis-demo.db}
if [ ! -f "$DB" ]; then
  "$BIN" import --db "$DB" assets/demo/liar2-sample.csv
  # The demo writer writes the annotated reports the study shows (about 10 minutes on one CPU thread).
  "$BIN" --threads 1 study prepare --study assets/studies/formats-within.toml --db "$DB"
  "$BIN" study run-sim --study assets/studies/formats-within.toml --participants 24 --db "$DB"
fi
tmp=$(mktemp -d); export ARGUS_CONFIG_DIR="$tmp" ARGUS_DATA_DIR="$tmp"
cp "$DB" "$tmp/study.db"
for ext in -wal -shm; do [ -f "$DB$ext" ] && cp "$DB$ext" "$tmp/study.db$ext"; done
echo '{"annotator": "demo"}' > "$tmp/settings.json"
Xvfb :91 -screen 0 1280x800x24 -nolisten tcp & xvfb=$!
trap 'kill $xvfb 2>/dev/null || true; rm -rf "$tmp"' EXIT
export DISPLAY=:91; unset WAYLAND_DISPLAY; sleep 1
"$BIN" --db "$tmp/study.db" & app=$!
for _ in $(seq 200); do xdotool search --onlyvisible --name '^Argus$' >/dev/null 2>&1 && break; sleep 0.05; done
win=$(xdotool search --name '^Argus$' | head -1)
sleep 2; xdotool windowfocus --sync "$win"; sleep 0.5
# Positions in the 1280x800 window: the Studies menu in the menu bar, its "Analysis" entry, then the panel's
# "exclude failed attention checks" checkbox (the Analysis window opens at the top left).
xdotool mousemove "${MENU_X:-183}" "${MENU_Y:-12}" click 1; sleep 0.7
xdotool mousemove "${ENTRY_X:-215}" "${ENTRY_Y:-88}" click 1; sleep 1.5
xdotool mousemove "${EXCLUDE_X:-350}" "${EXCLUDE_Y:-81}" click 1; sleep 1.5
xdotool mousemove 1275 795; sleep 1
import -window root "$SHOT"; echo "screenshot: $SHOT"
kill "$app"; wait "$app" 2>/dev/null || true
