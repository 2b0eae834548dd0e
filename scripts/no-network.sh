#!/usr/bin/env bash
# Does a whole demo session stay on this machine? Runs one under `strace -f -e trace=connect` (every process and
# thread Argus starts) and counts the connections it opens that are not local Unix sockets (the X server, D-Bus):
# open the studio on the built-in demo in a real window (Xvfb), review a claim, write rationales with a local model,
# retrain ARG, export items and a bundle. Models must be in the models folder already (`argus models fetch minilm
# smollm2-135m`): fetching them is the one thing that goes out, and `argus models fetch` says where from.
#
# Needs strace and xvfb-run. Prints each non-local connection and, last, one JSON object:
# {"network_connections": N, "local_socket_connections": M, "steps": K}. Exit status 1 when N > 0.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/argus}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ARGUS_CONFIG_DIR="$work/config" ARGUS_DATA_DIR="$work/data" ARGUS_LOG=warn
db="$work/data/demo.sqlite"
n=0
step() {
  n=$((n + 1))
  strace -f -qq -e trace=connect -o "$work/trace.$n" "$@" >"$work/out.$n" 2>&1 || {
    echo "step $n failed: $*" >&2
    tail -n 20 "$work/out.$n" >&2
    exit 2
  }
}

step xvfb-run -a -s "-screen 0 1280x800x24" "$BIN" --annotator net-check --quit-after-frames 60
test -s "$db"
step "$BIN" review --db "$db" --item 1 --rating False --explanation "The record says otherwise."
step "$BIN" rationales --db "$db" --perspectives td --limit 2 --model smollm2-135m --max-tokens 16 --temperature 0
step "$BIN" train --db "$db" --model arg --max-epochs 1 --max-len 64
step "$BIN" export --db "$db" --format jsonl --out "$work/items.jsonl"
step "$BIN" bundle export --db "$db" --out "$work/mine.bundle.jsonl"

# strace names the address family of every connect(); AF_UNIX is a local socket, anything else leaves the process
# for a network stack (loopback included).
network=$(cat "$work"/trace.* | grep 'connect(' | grep -v 'sa_family=AF_UNIX' || true)
local_sockets=$(cat "$work"/trace.* | grep 'connect(' | grep -c 'sa_family=AF_UNIX' || true)
count=0
if [ -n "$network" ]; then
  echo "$network"
  count=$(echo "$network" | wc -l)
fi
echo "demo session in $n steps: $count network connections, $local_sockets local-socket connections"
echo "{\"network_connections\":$count,\"local_socket_connections\":$local_sockets,\"steps\":$n}"
[ "$count" -eq 0 ]
