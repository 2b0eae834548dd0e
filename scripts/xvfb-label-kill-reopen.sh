#!/usr/bin/env bash
# The foundation issue's end-to-end check, in a real window under Xvfb:
# open the studio on the built-in demo, type an annotator name, label ten items by keyboard, kill the process with
# SIGKILL, reopen, and check that all ten judgements are there. Screenshots go to $OUT (default ./shots).
# Needs: xvfb, xdotool, imagemagick (apt), and a built target/debug/argus (cargo build).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-shots}; mkdir -p "$OUT"
BIN=${BIN:-target/debug/argus}
tmp=$(mktemp -d); export ARGUS_CONFIG_DIR="$tmp" ARGUS_DATA_DIR="$tmp"
Xvfb :97 -screen 0 1280x800x24 -nolisten tcp & xvfb=$!
trap 'kill $xvfb 2>/dev/null || true' EXIT
export DISPLAY=:97; unset WAYLAND_DISPLAY; sleep 1

start=$(date +%s.%N)
"$BIN" & app=$!
for _ in $(seq 200); do xdotool search --onlyvisible --name '^Argus$' >/dev/null 2>&1 && break; sleep 0.05; done
echo "window up after $(echo "$(date +%s.%N) - $start" | bc) s"
win=$(xdotool search --name '^Argus$' | head -1)
sleep 0.5; xdotool windowfocus --sync "$win"; sleep 0.5
xdotool type --delay 60 "ada"; xdotool key Return; sleep 2
keys=(f r f f u r f r f f)
for k in "${keys[@]}"; do xdotool key "$k"; sleep 0.2; done
sleep 0.3
import -window root "$OUT/labelled.png"
kill -9 "$app"; wait "$app" 2>/dev/null || true
echo "after SIGKILL: $("$BIN" stats --db "$tmp/demo.sqlite")"
n=$("$BIN" stats --db "$tmp/demo.sqlite" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["judgements"])')

"$BIN" & app=$!   # reopens on the last database, as the remembered annotator
sleep 4
import -window root "$OUT/reopened.png"
kill "$app"
rm -rf "$tmp"
if [ "$n" = 10 ]; then echo "OK: all 10 judgements survived SIGKILL"; else echo "FAIL: $n of 10 judgements"; exit 1; fi
