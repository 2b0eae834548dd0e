#!/usr/bin/env bash
# The import dialog's preview in a real window under Xvfb: the studio opens on the bundled demo with
# `--import tests/data/import/claims-undecided.tsv` and a column and label map filled in; the dialog shows the file's
# first rows as they will be read (text, original label -> gold label, split, rationales) before anything is written.
# Screenshot: $OUT/import-preview.png (default ./shots). Needs xvfb, xdotool, imagemagick and a built
# target/debug/argus. A few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-shots}; mkdir -p "$OUT"
BIN=${BIN:-target/debug/argus}
tmp=$(mktemp -d); export ARGUS_CONFIG_DIR="$tmp" ARGUS_DATA_DIR="$tmp"
echo '{"annotator": "demo"}' > "$tmp/settings.json"
db="$tmp/demo.sqlite"
"$BIN" import --db "$db" assets/demo/liar2-sample.csv
Xvfb :96 -screen 0 1280x800x24 -nolisten tcp & xvfb=$!
trap 'kill $xvfb 2>/dev/null || true' EXIT
export DISPLAY=:96; unset WAYLAND_DISPLAY; sleep 1
"$BIN" --db "$db" --import tests/data/import/claims-undecided.tsv \
  --map 'id=id,content=claim,label=verdict,rationale:human=explanation,source=speaker' \
  --labels 'true=real,false=fake,mostly-false=fake,unproven=unlabelled' & app=$!
sleep 6
xdotool mousemove 1270 790
import -window root "$OUT/import-preview.png"
kill "$app"; wait "$app" 2>/dev/null || true
"$BIN" stats --db "$db" | head -3
