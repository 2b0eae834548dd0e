#!/usr/bin/env bash
# The local-models issue's end-to-end check, in a real window under Xvfb: open a database, go to an item, press W,
# and watch the rationale writer stream three perspectives with their verdicts into the item view. Screenshots go to
# $OUT (default ./shots). Needs xvfb, xdotool, imagemagick (apt), a built target/debug/argus, and the writer model
# (WRITER: a catalog name or GGUF path, default the demo writer, fetched on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-shots}; mkdir -p "$OUT"
BIN=${BIN:-target/debug/argus}
DB=${DB:-}
WRITER=${WRITER:-qwen2.5-coder-1.5b}
tmp=$(mktemp -d); export ARGUS_CONFIG_DIR="$tmp" ARGUS_DATA_DIR="$tmp"
if [ -z "$DB" ]; then DB="$tmp/demo.sqlite"; "$BIN" import --db "$DB" assets/demo/liar2-sample.csv; fi
cat > "$tmp/settings.json" <<JSON
{"annotator": "demo", "writer": {"local_model": "$WRITER", "params": {"max_tokens": 160, "temperature": 0.0, "top_p": null, "seed": 1}}}
JSON
Xvfb :96 -screen 0 1280x800x24 -nolisten tcp & xvfb=$!
trap 'kill $xvfb 2>/dev/null || true' EXIT
export DISPLAY=:96; unset WAYLAND_DISPLAY; sleep 1
"$BIN" --db "$DB" & app=$!
for _ in $(seq 200); do xdotool search --onlyvisible --name '^Argus$' >/dev/null 2>&1 && break; sleep 0.05; done
win=$(xdotool search --name '^Argus$' | head -1)
sleep 1; xdotool windowfocus --sync "$win"; sleep 0.5
for k in ${KEYS:-}; do xdotool key "$k"; sleep 0.3; done
xdotool key w
for t in ${SHOTS:-20 60 120}; do
  sleep "$t"; import -window root "$OUT/writing-$t.png"; echo "screenshot after +$t s"
done
kill "$app"; wait "$app" 2>/dev/null || true
"$BIN" stats --db "$DB"
