#!/usr/bin/env python3
"""A LIAR2 subset with 30% fake claims, for the small-imbalanced-data check of the README ("No silent collapse").

usage: liar2-imbalanced-subset.py SRC.csv DST.csv N SEED

LIAR2's labels 0-2 (pants-fire, false, barely-true) are fake, 3-5 real, as Argus binarises them; N rows are drawn
(round(0.3 N) fake) with Python's random.Random(SEED), then shuffled. The file keeps its name's split (valid / test).
"""
import csv
import random
import sys

src, dst, n, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rows = list(csv.reader(open(src, newline="", encoding="utf-8")))
head, body = rows[0], rows[1:]
fake = [r for r in body if r[1] in ("0", "1", "2")]
real = [r for r in body if r[1] in ("3", "4", "5")]
rng = random.Random(seed)
n_fake = round(n * 0.3)
pick = rng.sample(fake, n_fake) + rng.sample(real, n - n_fake)
rng.shuffle(pick)
with open(dst, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(head)
    w.writerows(pick)
print(dst, len(pick), "rows,", n_fake, "fake")
