#!/usr/bin/env bash
# Everything Argus checks about keeping people's work, in one command, within a time budget
# (RELIABILITY_BUDGET_SECS, default 9000: the goals, i.e. 50 kills per job and 600 s for each of the 11 fuzz targets;
# under 9000 the kill loops shrink to 5 kills per job and fuzzing shares what is left):
#   - hostile text: `argus bench hostile --json` (57 attack texts; frames on each item);
#   - SIGKILL during judging, two studios on one database, verdicts beside an import, a busy database: the
#     durability tests (tests/all/durability.rs), then `argus bench writers` (a 100k-row import on one connection
#     while verdicts are committed on another: each verdict's wait, and none lost);
#   - no network: scripts/no-network.sh (a demo session under strace);
#   - a full disk: scripts/disk-full.sh (import, encoder cache, retrain weights, exports on a nearly full tmpfs);
#   - kill -9 loops: scripts/kill9.py (eight long jobs, KILLS each, default 50: about three hours, most of it the
#     rationale batch and the repair, whose runs take over a minute each here);
#   - fuzzing: scripts/fuzz.sh, every target for what is left of the budget (at most 600 s each).
#
# Prints each part's output and, last, one JSON object with the keys issue 15 names:
# {"fuzz_targets", "fuzz_secs_per_target", "fuzz_crashes", "kill_jobs", "kills", "lost_rows", "integrity_failures",
#  "two_writer_lost", "disk_full_cases", "disk_full_failures", "hostile_cases", "hostile_failures",
#  "network_connections"}. Needs the test build (`cargo test --no-run`), strace, xvfb-run, unshare with user
# namespaces (or root), and for fuzzing cargo-fuzz with the nightly toolchain.
set -uo pipefail
cd "$(dirname "$0")/.."
BUDGET=${RELIABILITY_BUDGET_SECS:-9000}
export KILLS=${KILLS:-$([ "$BUDGET" -ge 9000 ] && echo 50 || echo 5)}
BIN=${BIN:-target/debug/argus}
export BIN
started=$(date +%s)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== hostile text"
"$BIN" bench hostile --json | tee "$out/hostile"
echo "== SIGKILL and two writers (tests/all/durability.rs, argus bench writers)"
two_writers=null
if cargo test --quiet --test all -- durability:: 2>&1 | tee "$out/durability" | tail -n 3 \
  && grep -q "test result: ok" "$out/durability"; then
  "$BIN" bench writers --json | tee "$out/writers"
  two_writers=$(tail -n 1 "$out/writers" | python3 -c 'import json,sys; print(json.load(sys.stdin)["lost"])' || echo null)
fi
echo "== network (a demo session under strace)"
scripts/no-network.sh | tee "$out/network"
echo "== a full disk"
scripts/disk-full.sh | tee "$out/disk"
echo "== kill -9 loops"
scripts/kill9.py | tee "$out/kill9"

# Fuzzing takes what is left, shared by the targets, at most 600 s each (the goal), at least 10 s.
left=$(( BUDGET - ($(date +%s) - started) ))
secs=$(( left / 11 ))
[ "$secs" -gt 600 ] && secs=600
[ "$secs" -lt 10 ] && secs=10
echo "== fuzzing, $secs s per target"
FUZZ_SECS=$secs scripts/fuzz.sh | tee "$out/fuzz"

python3 - "$out" "$two_writers" <<'PY'
import json, sys
out, two = sys.argv[1], sys.argv[2]
def last_json(name):
    try:
        lines = [l for l in open(f"{out}/{name}") if l.startswith("{")]
        return json.loads(lines[-1]) if lines else {}
    except OSError:
        return {}
h, n, f, d, k = last_json("hostile"), last_json("network"), last_json("fuzz"), last_json("disk"), last_json("kill9")
w = last_json("writers")
print(json.dumps({
    "fuzz_targets": f.get("fuzz_targets"), "fuzz_secs_per_target": f.get("fuzz_secs_per_target"),
    "fuzz_crashes": f.get("fuzz_crashes"),
    "kill_jobs": k.get("kill_jobs"), "kills": k.get("kills"), "lost_rows": k.get("lost_rows"),
    "integrity_failures": k.get("integrity_failures"),
    "two_writer_lost": None if two == "null" else int(two),
    "two_writer_verdict_wait_max_ms": w.get("wait_max_ms"),
    "disk_full_cases": d.get("disk_full_cases"), "disk_full_failures": d.get("disk_full_failures"),
    "hostile_cases": h.get("hostile_cases"), "hostile_failures": h.get("hostile_failures"),
    "network_connections": n.get("network_connections"),
}))
PY
