#!/usr/bin/env bash
# A fact-checker's review in a real window under Xvfb: on the bundled demo, the first claim gets two reviews from the
# command line (`argus review`, PolitiFact scale: one by eli, then a later one by dana with an evidence link); the
# studio opens and the "Fact-check review" section under the claim is unfolded: the history, the rating form and
# the folded scale and publishing settings. Screenshot: $OUT/review.png (default
# ./shots). Needs xvfb, xdotool, imagemagick and a built target/debug/argus. A few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-shots}; mkdir -p "$OUT"
BIN=${BIN:-target/debug/argus}
tmp=$(mktemp -d); export ARGUS_CONFIG_DIR="$tmp" ARGUS_DATA_DIR="$tmp"
echo '{"annotator": "dana"}' > "$tmp/settings.json"
db="$tmp/demo.sqlite"
"$BIN" import --db "$db" assets/demo/liar2-sample.csv
"$BIN" review --db "$db" --item 1 --reviewer eli --rating "Half True" \
  --explanation "Refused PAC money, not money from oil industry employees."
"$BIN" review --db "$db" --item 1 --reviewer dana --rating "Mostly True" \
  --explanation "He refused oil PAC and lobbyist money; employees' donations are another matter." \
  --evidence https://www.politifact.com/factchecks/2008/apr/16/barack-obama/
Xvfb :95 -screen 0 1280x800x24 -nolisten tcp & xvfb=$!
trap 'kill $xvfb 2>/dev/null || true' EXIT
export DISPLAY=:95; unset WAYLAND_DISPLAY; sleep 1
"$BIN" --db "$db" & app=$!
sleep 6
win=$(xdotool search --name '^Argus$' | head -1)
xdotool windowfocus --sync "$win"; sleep 0.5
# "Fact-check review: ..." under the claim's Metadata (a 1280x800 window).
xdotool mousemove "${REVIEW_X:-470}" "${REVIEW_Y:-126}" click 1; sleep 1
xdotool mousemove 1270 790
import -window root "$OUT/review.png"
kill "$app"; wait "$app" 2>/dev/null || true
