#!/usr/bin/env bash
# What storing the encoder cache as q8 (8-bit, a scale per 32 values) instead of f16 costs in quality.
# LIAR2 valid + test (PolitiFact justification as the one rationale), one thread:
#   1. both caches filled from the same texts (f16 with ARGUS_CACHE_PRECISION=f16, q8 by default);
#   2. ARG trained on each from scratch (same seed, same split) -> validation and test macro-F1;
#   3. the f16-trained version evaluated on the q8 cache (the same weights reading q8 states) -> test macro-F1.
# Usage: scripts/measure-cache-precision.sh [ARGUS_BINARY] [EPOCHS] [SEEDS]
set -euo pipefail
cd "$(dirname "$0")/.."
ARGUS=${1:-target/release/argus}
EPOCHS=${2:-2}
SEEDS=${3:-0}
W=target/cache-precision
DATA=(../shared/data/liar2/valid.csv ../shared/data/liar2/test.csv)
# SKIP_ENCODE=1 keeps the databases and caches of an earlier run (only the versions are dropped).
if [ -z "${SKIP_ENCODE:-}" ]; then rm -rf "$W"; mkdir -p "$W"; fi
for p in f16 q8; do
  [ -n "${SKIP_ENCODE:-}" ] && continue
  "$ARGUS" import --db "$W/$p.db" "${DATA[@]}" > /dev/null
  ARGUS_CACHE_PRECISION=$p "$ARGUS" --threads 1 encode --db "$W/$p.db" | tail -1
  ls -l "$W/$p.encoder-cache.sqlite" | awk -v p=$p '{print p, "cache file bytes:", $5}'
done
for seed in ${SEEDS//,/ }; do
  for p in f16 q8; do
    echo "== $p, seed $seed"
    ARGUS_CACHE_PRECISION=$p "$ARGUS" --threads 1 train --db "$W/$p.db" --seed "$seed" --max-epochs "$EPOCHS" \
      --min-epochs "$EPOCHS" | grep -iE "macro|version" | tail -3
  done
done
# The first f16 version, weights copied, read through the q8 cache.
V=$("$ARGUS" versions --db "$W/f16.db" --json | python3 -c 'import json,sys; v=json.load(sys.stdin); v=v if isinstance(v,list) else v["versions"]; print(min(x["id"] for x in v))')
echo "== version $V (trained on f16 states): test macro-F1 on f16 states, then on q8 states"
"$ARGUS" --threads 1 eval --db "$W/f16.db" --version "$V"
mkdir -p "$W/q8-reads.models"
cp "$W/f16.db" "$W/q8-reads.db"; cp -r "$W/f16.models/." "$W/q8-reads.models/"
cp "$W/q8.encoder-cache.sqlite" "$W/q8-reads.encoder-cache.sqlite"
"$ARGUS" --threads 1 eval --db "$W/q8-reads.db" --version "$V"
