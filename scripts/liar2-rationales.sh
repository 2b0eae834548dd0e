#!/usr/bin/env bash
# The demo writer's textual-description (td) and commonsense (cs) rationales, with their verdicts, for a seeded
# sample of LIAR2 validation and test claims: the data of the README's "LIAR2 with Argus's own rationales" table,
# committed as tests/data/liar2-argus/liar2-argus.csv.
#
# usage: scripts/liar2-rationales.sh write [N_PER_SPLIT]   # write (resumable: run it again to go on)
#        scripts/liar2-rationales.sh fixture [OUT.csv]      # write the fixture from what was written
#   N_PER_SPLIT (default 400) claims are drawn from each of LIAR2's valid.csv and test.csv (random.Random(0) and
#   random.Random(1)); the writer takes them in turns (valid 1, test 1, valid 2, ...), so a run stopped early holds
#   as many of each split. Greedy (temperature 0), at most 128 tokens a rationale, 5 items a batch.
#   Environment: ARGUS (default target/release/argus), LIAR2 (default ../shared/data/liar2), WORK (default
#   target/liar2-rationales), THREADS (default: every core).
set -euo pipefail
step=${1:-write}
argus=${ARGUS:-target/release/argus}
liar2=${LIAR2:-../shared/data/liar2}
work=${WORK:-target/liar2-rationales}
threads=${THREADS:-$(nproc)}
model=qwen2.5-coder-1.5b
db="$work/project.sqlite"
case "$step" in
write)
  n=${2:-400}
  mkdir -p "$work"
  if [ ! -f "$db" ]; then
    python3 - "$liar2" "$work" "$n" <<'PY'
import csv, random, sys
src, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for split, seed in (("valid", 0), ("test", 1)):
    rows = list(csv.reader(open(f"{src}/{split}.csv", newline="", encoding="utf-8")))
    pick = random.Random(seed).sample(rows[1:], n)
    with open(f"{work}/{split}.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(rows[0])
        w.writerows(pick)
PY
    "$argus" import --db "$db" "$work/valid.csv" "$work/test.csv"
  fi
  ids=$(python3 - "$db" "$work" <<'PY'
import csv, sqlite3, sys
db, work = sys.argv[1], sys.argv[2]
key_to_id = dict(sqlite3.connect(db).execute("SELECT item_key, id FROM items"))
order = {}
for split in ("valid", "test"):
    rows = csv.DictReader(open(f"{work}/{split}.csv", newline="", encoding="utf-8"))
    order[split] = [key_to_id[f"liar2:{r['id']}"] for r in rows]
print(",".join(str(i) for pair in zip(order["valid"], order["test"]) for i in pair))
PY
)
  "$argus" --threads "$threads" rationales --db "$db" --perspectives td,cs --model "$model" \
    --temperature 0 --max-tokens 128 --batch-items 5 --only "$ids"
  ;;
fixture)
  out=${2:-tests/data/liar2-argus/liar2-argus.csv}
  mkdir -p "$(dirname "$out")"
  "$argus" export --db "$db" --format csv --out "$work/export.csv" >/dev/null
  python3 "$(dirname "$0")/liar2-argus-fixture.py" "$work/export.csv" "$out"
  ;;
*)
  echo "usage: $0 write [N_PER_SPLIT] | fixture [OUT.csv]" >&2
  exit 2
  ;;
esac
