#!/usr/bin/env bash
# The README's studio command builds the dev profile; this times `argus bench encoder` (MiniLM, batch 32 x 128,
# 1 thread, Argus only) from that build and from the release build in the same run, and ends with one JSON line:
# {"dev_sent_per_s": ..., "release_sent_per_s": ..., "dev_vs_release_ratio": ...}. Builds both profiles first.
set -euo pipefail
cd "$(dirname "$0")/.."
# RELEASE_TARGET_DIR: where the release build lives (default target/), to reuse one built elsewhere.
rel_dir=${RELEASE_TARGET_DIR:-target}
cargo build --quiet
cargo build --quiet --release --target-dir "$rel_dir"
rate() { "$1" --threads 1 bench encoder --no-peer | awk '/argus \(candle\)/ {print $3}'; }
dev=$(rate target/debug/argus)
rel=$(rate "$rel_dir/release/argus")
echo "dev build: $dev sentences/s; release build: $rel sentences/s"
python3 -c "import json; d=float('$dev'); r=float('$rel'); print(json.dumps({'dev_sent_per_s': d, 'release_sent_per_s': r, 'dev_vs_release_ratio': round(d / r, 3)}))"
