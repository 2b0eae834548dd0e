#!/usr/bin/env bash
# The explanation-formats issue's screenshot, in a real window under Xvfb: open DB (default: the lead's demo database
# with real renderings, /tmp/argus-formats-demo/demo.db) on item ITEM (default 1), press KEY (default 2: Annotated
# report), optionally hover a quote so its span in the news is drawn stronger, and take a screenshot. Needs xvfb, xdotool, imagemagick
# (apt) and a built target/debug/argus. The database is copied first: nothing is written to it.
#
#   scripts/xvfb-formats.sh [OUT.png]        (default assets/screenshots/formats.png)
set -euo pipefail
cd "$(dirname "$0")/.."
SHOT=${1:-assets/screenshots/formats.png}
BIN=${BIN:-target/debug/argus}
DB=${DB:-/tmp/argus-formats-demo/demo.db}
ITEM=${ITEM:-1}
KEY=${KEY:-2}
[ -f "$DB" ] || { echo "no database at $DB" >&2; exit 1; }
tmp=$(mktemp -d); export ARGUS_CONFIG_DIR="$tmp" ARGUS_DATA_DIR="$tmp"
trap 'rm -rf "$tmp"' EXIT
cp "$DB" "$tmp/demo.db"
for ext in -wal -shm; do [ -f "$DB$ext" ] && cp "$DB$ext" "$tmp/demo.db$ext"; done
echo '{"annotator": "demo"}' > "$tmp/settings.json"
Xvfb :93 -screen 0 1280x800x24 -nolisten tcp & xvfb=$!
trap 'kill $xvfb 2>/dev/null || true; rm -rf "$tmp"' EXIT
export DISPLAY=:93; unset WAYLAND_DISPLAY; sleep 1
"$BIN" --db "$tmp/demo.db" & app=$!
for _ in $(seq 200); do xdotool search --onlyvisible --name '^Argus$' >/dev/null 2>&1 && break; sleep 0.05; done
win=$(xdotool search --name '^Argus$' | head -1)
sleep 2; xdotool windowfocus --sync "$win"; sleep 0.5
# Item ITEM: j moves down the list from item 1.
for _ in $(seq 2 "$ITEM"); do xdotool key j; sleep 0.2; done
xdotool key "$KEY"; sleep 1
# With QUOTE_X/QUOTE_Y (where a quote of the format view sits in the 1280x800 window), hover it: its span in the
# news is drawn stronger. Else the pointer is parked out of the way.
xdotool mousemove "${QUOTE_X:-1275}" "${QUOTE_Y:-795}"; sleep 1
import -window root "$SHOT"; echo "screenshot: $SHOT"
kill "$app"; wait "$app" 2>/dev/null || true
