#!/usr/bin/env python3
"""Writes the LIAR2-with-Argus-rationales fixture from `argus export --format csv` of the generation database.

usage: liar2-argus-fixture.py EXPORT.csv OUT.csv

Keeps the claims that have both a td and a cs rationale (the export holds the latest rationale of each perspective;
the generation database holds only the demo writer's), as many of each split, in the generation's order (valid 1,
test 1, valid 2, ...), with LIAR2's id, split and label (its name on PolitiFact's scale: pants-fire ... true), the
statement, each rationale with the verdict the writer read from it, and the PolitiFact justification as Argus
imports it (every sentence naming a verdict removed).
"""
import csv
import json
import sys

export, out = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(export, newline="", encoding="utf-8")))
kept = [r for r in rows if r["rationale:td"].strip() and r["rationale:cs"].strip()]
split_name = {"val": "valid", "test": "test"}
by_split = {"valid": [], "test": []}
for r in kept:
    by_split[split_name[r["split"]]].append(r)
# As many of each split (the writer took them in turns; a run stopped mid-batch can hold one more of one split).
n = min(len(by_split["valid"]), len(by_split["test"]))
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["id", "split", "label", "statement", "td_rationale", "td_verdict", "cs_rationale", "cs_verdict",
                "justification"])
    for split in ("valid", "test"):
        for r in by_split[split][:n]:
            label = json.loads(r["metadata"])["label_name"]
            w.writerow([r["external_id"], split, label, r["text"], r["rationale:td"], r["verdict:td"], r["rationale:cs"],
                        r["verdict:cs"], r["rationale:human"]])
print(f"{out}: {n} valid + {n} test claims")
