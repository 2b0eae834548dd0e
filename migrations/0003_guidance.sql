-- Argus schema, version 3: the guidance model's predictions and which version of each kind is in use.

-- What one model version predicted for one item (ARG fills every column; ARG-D and BERT only p_fake).
CREATE TABLE predictions (
    version_id   INTEGER NOT NULL REFERENCES model_versions(id),
    item_id      INTEGER NOT NULL REFERENCES items(id),
    p_fake       REAL NOT NULL CHECK (p_fake >= 0 AND p_fake <= 1),
    -- JSON objects keyed by perspective: trust in each rationale (w_r), predicted usefulness, predicted LLM verdict.
    gates        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(gates)),
    usefulness   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(usefulness)),
    judgements   TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(judgements)),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (version_id, item_id)
) WITHOUT ROWID;
CREATE INDEX predictions_item ON predictions(item_id);

-- The version of each kind (arg, argd, bert) the studio uses; rolling back points it at an older version.
CREATE TABLE active_models (
    kind        TEXT PRIMARY KEY CHECK (kind IN ('arg', 'argd', 'bert')),
    version_id  INTEGER NOT NULL REFERENCES model_versions(id),
    set_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Seconds a version took to train and the data it saw, beside its metrics (also in training_runs).
ALTER TABLE model_versions ADD COLUMN seconds_taken REAL;
ALTER TABLE model_versions ADD COLUMN data_snapshot TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data_snapshot));
