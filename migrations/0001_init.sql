-- Argus schema, version 1.
-- Every user action is one committed row; nothing is ever deleted by the app: undo sets `retracted_at`.

CREATE TABLE datasets (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    format        TEXT NOT NULL,            -- importer that read it (arg-json, liar2-csv, ...)
    source_path   TEXT NOT NULL,            -- file(s) it came from
    license_note  TEXT,
    imported_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE items (
    id              INTEGER PRIMARY KEY,
    dataset_id      INTEGER NOT NULL REFERENCES datasets(id),
    external_id     TEXT,                   -- id in the source file
    title           TEXT,                   -- headline or claim, when distinct from the text
    text            TEXT NOT NULL,          -- the news text / claim that is judged
    source          TEXT,                   -- speaker, outlet, originator
    published       TEXT,                   -- date as given by the source
    gold_label      TEXT CHECK (gold_label IN ('real', 'fake')),
    original_label  TEXT,                   -- label exactly as in the source (e.g. 'barely-true', '2')
    split           TEXT,                   -- train / val / test when the source says
    metadata        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    text_sha256     TEXT NOT NULL,          -- cache key for encoders (later issues)
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX items_dataset ON items(dataset_id);
CREATE INDEX items_text_sha ON items(text_sha256);

CREATE TABLE annotators (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- A rationale is a chain of revisions. The first revision has parent_id NULL and root_id = its own id;
-- every correction is a new row whose parent_id is the revision it corrects.
CREATE TABLE rationales (
    id            INTEGER PRIMARY KEY,
    item_id       INTEGER NOT NULL REFERENCES items(id),
    root_id       INTEGER REFERENCES rationales(id),
    parent_id     INTEGER REFERENCES rationales(id),
    revision      INTEGER NOT NULL DEFAULT 1,
    perspective   TEXT NOT NULL,            -- td (textual description), cs (commonsense), fc, human, ...
    origin        TEXT NOT NULL CHECK (origin IN ('imported', 'generated', 'human', 'repaired')),
    model         TEXT,                     -- model that wrote it (NULL for humans / imports)
    prompt        TEXT,                     -- exact prompt used
    text          TEXT NOT NULL,
    verdict       TEXT CHECK (verdict IN ('real', 'fake', 'other')),  -- the verdict it implies (ARG's r_pred)
    author_id     INTEGER REFERENCES annotators(id),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    retracted_at  TEXT
);
CREATE INDEX rationales_item ON rationales(item_id);
-- One row per revision number in a chain.
CREATE UNIQUE INDEX rationales_root_revision ON rationales(root_id, revision);
-- A first revision may be inserted without root_id: it is its own root.
CREATE TRIGGER rationales_default_root AFTER INSERT ON rationales
WHEN NEW.root_id IS NULL
BEGIN
    UPDATE rationales SET root_id = NEW.id WHERE id = NEW.id;
END;

CREATE TABLE judgements (
    id             INTEGER PRIMARY KEY,
    item_id        INTEGER NOT NULL REFERENCES items(id),
    annotator_id   INTEGER NOT NULL REFERENCES annotators(id),
    verdict        TEXT NOT NULL CHECK (verdict IN ('real', 'fake', 'other')),
    confidence     REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
    note           TEXT,
    time_spent_ms  INTEGER NOT NULL DEFAULT 0,
    adjudicated    INTEGER NOT NULL DEFAULT 0,  -- 1: this is the final verdict of an adjudicator
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    retracted_at   TEXT                         -- set by undo; the row stays
);
CREATE INDEX judgements_annotator ON judgements(annotator_id);

CREATE TABLE rationale_feedback (
    id             INTEGER PRIMARY KEY,
    rationale_id   INTEGER NOT NULL REFERENCES rationales(id),  -- the exact revision judged
    annotator_id   INTEGER NOT NULL REFERENCES annotators(id),
    format         TEXT NOT NULL DEFAULT 'free-text',
    usefulness     TEXT CHECK (usefulness IN ('useful', 'not_useful', 'misleading')),
    sufficiency    INTEGER CHECK (sufficiency BETWEEN 1 AND 3),
    faithfulness   INTEGER CHECK (faithfulness BETWEEN 1 AND 3),
    agrees_verdict INTEGER CHECK (agrees_verdict IN (0, 1)),
    fb_where       TEXT,
    fb_what        TEXT,
    fb_fix         TEXT,
    time_spent_ms  INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    retracted_at   TEXT
);
CREATE INDEX feedback_rationale ON rationale_feedback(rationale_id);

-- Filled by the guidance-model issue: every training run produces a model version.
CREATE TABLE model_versions (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,          -- arg | argd | bert
    parent_id       INTEGER REFERENCES model_versions(id),
    config          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    metrics         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metrics)),
    weights_path    TEXT,
    weights_sha256  TEXT,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE training_runs (
    id                INTEGER PRIMARY KEY,
    model_version_id  INTEGER REFERENCES model_versions(id),
    status            TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'cancelled')),
    data_snapshot     TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data_snapshot)),
    epochs            TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(epochs)),
    started_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at       TEXT,
    seconds_taken     REAL
);

CREATE INDEX judgements_item_annotator ON judgements(item_id, annotator_id, id);

-- The judgement that stands for each (item, annotator): the newest one not retracted by undo.
CREATE VIEW standing_judgements AS
SELECT j.*
FROM judgements j
WHERE j.retracted_at IS NULL
  AND j.id = (SELECT MAX(j2.id) FROM judgements j2
              WHERE j2.item_id = j.item_id AND j2.annotator_id = j.annotator_id AND j2.retracted_at IS NULL);

-- The newest revision of every rationale chain.
CREATE VIEW latest_rationales AS
SELECT r.*
FROM rationales r
WHERE r.retracted_at IS NULL
  AND r.revision = (SELECT MAX(r2.revision) FROM rationales r2 WHERE r2.root_id = r.root_id AND r2.retracted_at IS NULL);
