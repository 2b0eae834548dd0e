-- Argus schema, version 6: stable item identity, and fact-checkers' reviews.

-- Every item gets a key that does not depend on the database it sits in: the dataset's own id for the item when
-- the file has one (`liar2:11972`, `id:1234`), else a hash of its normalised text and source (`sha:…`). The n-th
-- repeat of a key within one import gets `#n`. Keys of existing rows are filled by the migration's Rust step
-- (`store::migrations`), which then creates the unique index `items_key`.
ALTER TABLE items ADD COLUMN item_key TEXT;

-- A fact-checker's review of an item: a rating on a scale of the user's choosing, mapped to real/fake for training,
-- a short explanation, evidence links and the reviewer. A new review of the same item by the same reviewer is a new
-- row (history); undo sets `retracted_at`.
CREATE TABLE reviews (
    id             INTEGER PRIMARY KEY,
    item_id        INTEGER NOT NULL REFERENCES items(id),
    annotator_id   INTEGER NOT NULL REFERENCES annotators(id),
    scale          TEXT NOT NULL,                 -- the rating scale's name (politifact, ...)
    rating         TEXT NOT NULL,                 -- the rating's name on that scale (pants-fire, ...)
    rating_value   INTEGER NOT NULL,              -- its position, 1 = worst
    best_rating    INTEGER NOT NULL,
    worst_rating   INTEGER NOT NULL,
    verdict        TEXT CHECK (verdict IN ('real', 'fake', 'other')),  -- what the rating means for training
    explanation    TEXT NOT NULL DEFAULT '',
    evidence       TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(evidence)),  -- links, as a JSON array of strings
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    retracted_at   TEXT
);
CREATE INDEX reviews_item ON reviews(item_id, id);

-- A judgement merged from another database keeps the time it was made, so the one that stands for an (item,
-- annotator) is the newest by time (then id), not the one inserted last: merging bundles in any order gives the
-- same standing judgements.
DROP VIEW standing_judgements;
CREATE VIEW standing_judgements AS
SELECT j.*
FROM judgements j
WHERE j.retracted_at IS NULL
  AND j.id = (SELECT j2.id FROM judgements j2
              WHERE j2.item_id = j.item_id AND j2.annotator_id = j.annotator_id AND j2.retracted_at IS NULL
              ORDER BY j2.created_at DESC, j2.id DESC LIMIT 1);
