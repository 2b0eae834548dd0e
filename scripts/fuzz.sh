#!/usr/bin/env bash
# Fuzzes every parser Argus runs on outside input with cargo fuzz (libFuzzer; `cargo install cargo-fuzz`, the
# nightly toolchain): the importers (ARG JSON, LIAR-PLUS TSV and JSONL, LIAR2 CSV, generic delimited files and
# generic JSON through a column map, each also as the import dialog's preview), judgement bundles, study files (TOML
# and JSON, then planning), the verdict parser, the explanation formats' strict JSON answers, and GGUF metadata with
# the tokenizer built from it. Corpora are seeded from tests/data, assets and, when present, ../shared/data (heads
# of the files; nothing of them is written into the repository: fuzz/corpus is git-ignored).
#
# FUZZ_SECS seconds per target (default 600), FUZZ_TARGETS to pick some. Limits: 1 s per input, 256 MB per
# allocation (-malloc_limit_mb), 2 GB RSS. Prints a line per target (executions/s, coverage, crashes) and, last,
# one JSON object. A crash leaves its input in fuzz/artifacts/TARGET/; make it a named regression test in
# tests/all/fuzz_regressions.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECS:-600}
ALL="import_arg_json import_liar_plus_tsv import_liar_plus_jsonl import_liar2_csv import_generic_delimited
import_generic_json bundle study_spec verdict format_answers gguf_metadata"
TARGETS=${FUZZ_TARGETS:-$ALL}
BIN=${BIN:-target/debug/argus}
C=fuzz/corpus
seed() { local t=$1; shift; mkdir -p "$C/$t"; for f in "$@"; do [ -f "$f" ] && head -c 32768 "$f" > "$C/$t/seed-$(basename "$f")"; done; true; }
lines() { local t=$1 f=$2 n=$3; mkdir -p "$C/$t"; [ -f "$f" ] && head -n "$n" "$f" > "$C/$t/head-$n-$(basename "$f")"; true; }

# Seeds made with Argus itself: the demo exported as ARG JSON and JSONL, a bundle with judgements and a review.
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$BIN" import --db "$work/s.db" assets/demo/liar2-sample.csv > /dev/null
"$BIN" export --db "$work/s.db" --format arg-json --out "$work/arg" > /dev/null
"$BIN" review --db "$work/s.db" --item 1 --rating False --evidence https://example.org/x > /dev/null
python3 - "$work/s.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("INSERT OR IGNORE INTO annotators(name) VALUES ('ann')")
a = c.execute("SELECT id FROM annotators WHERE name = 'ann'").fetchone()[0]
for i in range(1, 6):
    c.execute("INSERT INTO judgements(item_id, annotator_id, verdict, note) VALUES (?, ?, 'fake', 'n')", (i, a))
c.commit()
PY
"$BIN" bundle export --db "$work/s.db" --out "$work/s.bundle.jsonl" > /dev/null
for f in "$work"/arg/*.json; do lines import_arg_json "$f" 40; done
lines import_liar2_csv assets/demo/liar2-sample.csv 12
lines import_liar2_csv ../shared/data/liar2/valid.csv 8
lines import_liar_plus_tsv ../shared/data/liar-plus/val2.tsv 8
lines import_liar_plus_jsonl ../shared/data/liar-plus/val2.jsonl 8
seed import_generic_delimited tests/data/import/claims.tsv tests/data/import/claims-undecided.tsv tests/data/import/fever-like.csv
lines import_generic_delimited ../shared/data/twitter-qwen/twitter_val.csv 6
seed import_generic_json tests/data/import/averitec-like.json
lines import_generic_json ../shared/data/liar-plus/val2.jsonl 4
seed bundle "$work/s.bundle.jsonl"
seed study_spec assets/studies/*.toml
for t in verdict format_answers; do
  mkdir -p "$C/$t"
  python3 - "$C/$t" tests/data/formats/*.json <<'PY'
import json, sys
out, files = sys.argv[1], sys.argv[2:]
n = 0
for f in files:
    for r in json.load(open(f)):
        for a in r.get("raw_answers") or []:
            open(f"{out}/seed-{n}", "w").write(a if isinstance(a, str) else json.dumps(a)); n += 1
for s in ["Verdict: fake", "REAL", "It is probably not fake.", "{\"verdict\": \"real\"}"]:
    open(f"{out}/seed-{n}", "w").write(s); n += 1
PY
done
seed gguf_metadata tests/data/qwen2.5-coder-1.5b.skeleton.gguf

cargo +nightly fuzz build -O > /dev/null 2>&1 || cargo +nightly fuzz build -O
results=()
crashes=0
for t in $TARGETS; do
  log="fuzz/$t.log"
  set +e
  cargo +nightly fuzz run -O "$t" "$C/$t" -- -max_total_time="$SECS" -timeout=1 -malloc_limit_mb=256 \
    -rss_limit_mb=2048 -print_final_stats=1 > "$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'exec/s: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashed=0; [ "$rc" -ne 0 ] && crashed=1 && crashes=$((crashes + 1))
  printf '%-26s %10s execs %7s exec/s %7s edges  crash=%s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$crashed"
  results+=("\"$t\":{\"execs\":${execs:-0},\"execs_per_sec\":${rate:-0},\"edges\":${cov:-0},\"crashed\":$crashed}")
done
n=$(echo $TARGETS | wc -w)
echo "{\"fuzz_targets\":$n,\"fuzz_secs_per_target\":$SECS,\"fuzz_crashes\":$crashes,\"targets\":{$(IFS=,; echo "${results[*]}")}}"
