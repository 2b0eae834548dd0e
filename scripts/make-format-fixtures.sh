#!/usr/bin/env bash
# Regenerates tests/data/formats/item-*.json: real renderings of every explanation format by the demo writer
# (Qwen2.5-Coder-1.5B, greedy), written by Argus itself from rationales it wrote itself on the bundled demo claims.
# tests/all/formats.rs re-parses the model's raw answers and re-matches their quotes against these files.
#
#   scripts/make-format-fixtures.sh [ITEM...]      (default items: 1 2; about 15 minutes on 2 CPU cores)
#   KEEP_DB=/path/demo.db scripts/make-format-fixtures.sh    also keeps the database (for scripts/xvfb-formats.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
items=("${@:-1 2}")
read -r -a items <<<"${items[*]}"
cargo build --quiet
argus=target/debug/argus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db="$work/fixtures.db"
"$argus" import --db "$db" assets/demo/liar2-sample.csv >/dev/null
ids=$(IFS=,; echo "${items[*]}")
# The rationales themselves, greedy so the fixtures come out the same on every run.
"$argus" --threads "${THREADS:-2}" rationales --db "$db" --perspectives td --temperature 0 --only "$ids"
for item in "${items[@]}"; do
  "$argus" --threads "${THREADS:-2}" explain --db "$db" --item "$item" --perspective td --format all --json \
    >"tests/data/formats/item-$item.json"
  echo "tests/data/formats/item-$item.json: $(jq length "tests/data/formats/item-$item.json") formats"
done
if [ -n "${KEEP_DB:-}" ]; then
  mkdir -p "$(dirname "$KEEP_DB")"
  cp "$db" "$KEEP_DB"
  echo "database kept: $KEEP_DB"
fi
