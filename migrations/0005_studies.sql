-- Argus schema, version 5: user studies (versioned study files, participants, every answer with its timing) and the
-- routing of items to annotators.

-- One version of a study file. A version is frozen when its first participant starts; a changed file then becomes
-- a new version, while an unfrozen draft is replaced in place.
CREATE TABLE studies (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    version      INTEGER NOT NULL CHECK (version >= 1),
    spec_json    TEXT NOT NULL CHECK (json_valid(spec_json)),   -- the study file as canonical JSON
    spec_sha256  TEXT NOT NULL,                                 -- sha256 of spec_json: what identifies a version
    items        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(items)), -- the item set resolved when registered
    frozen_at    TEXT,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at   TEXT,
    UNIQUE (name, version)
);

-- A participant of one study version; `number` (1, 2, ...) decides the counterbalanced plan.
CREATE TABLE participants (
    id               INTEGER PRIMARY KEY,
    study_id         INTEGER NOT NULL REFERENCES studies(id),
    number           INTEGER NOT NULL CHECK (number >= 1),
    code             TEXT NOT NULL,
    started_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at      TEXT,
    completion_code  TEXT,
    withdrawn        INTEGER NOT NULL DEFAULT 0 CHECK (withdrawn IN (0, 1)),  -- declined consent
    UNIQUE (study_id, number),
    UNIQUE (study_id, code)
);

-- The steps a participant has completed: a resumed session continues at the first step missing here.
CREATE TABLE study_steps (
    participant_id           INTEGER NOT NULL REFERENCES participants(id),
    step                     INTEGER NOT NULL CHECK (step >= 0),
    kind                     TEXT NOT NULL CHECK (kind IN ('consent', 'instructions', 'practice', 'item', 'attention',
                                                           'gold', 'questionnaire')),
    time_to_first_action_ms  INTEGER NOT NULL DEFAULT 0,
    total_ms                 INTEGER NOT NULL DEFAULT 0,
    focus_lost               INTEGER NOT NULL DEFAULT 0,
    completed_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (participant_id, step)
) WITHOUT ROWID;

-- One answer to one question of one step (unanswered optional questions are stored with an empty value).
CREATE TABLE study_responses (
    id                       INTEGER PRIMARY KEY,
    participant_id           INTEGER NOT NULL REFERENCES participants(id),
    step                     INTEGER NOT NULL,
    kind                     TEXT NOT NULL CHECK (kind IN ('consent', 'instructions', 'practice', 'item', 'attention',
                                                           'gold', 'questionnaire')),
    item_id                  INTEGER REFERENCES items(id),
    condition                TEXT,              -- the condition's name
    format                   TEXT,              -- the explanation format shown (free text when a rendering was missing)
    perspective              TEXT,              -- the perspective of the rationale shown
    position                 INTEGER,           -- 0-based position among the participant's items
    question                 TEXT NOT NULL,
    value                    TEXT NOT NULL,
    value_num                REAL,              -- the value as a number, for scales and yes/no
    correct                  INTEGER CHECK (correct IN (0, 1)),  -- verdict vs gold label, attention answer
    time_to_first_action_ms  INTEGER NOT NULL DEFAULT 0,
    total_ms                 INTEGER NOT NULL DEFAULT 0,
    focus_lost               INTEGER NOT NULL DEFAULT 0,
    study_version            INTEGER NOT NULL,
    created_at               TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (participant_id, step, question)
);

-- Routing: which annotators an item is assigned to (k per item, with overlap, for agreement).
CREATE TABLE assignments (
    id            INTEGER PRIMARY KEY,
    item_id       INTEGER NOT NULL REFERENCES items(id),
    annotator_id  INTEGER NOT NULL REFERENCES annotators(id),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (item_id, annotator_id)
);
CREATE INDEX assignments_annotator ON assignments(annotator_id);
