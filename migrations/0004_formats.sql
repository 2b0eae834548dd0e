-- Argus schema, version 4: explanation formats, richer feedback forms, and repairs of rationales by the LLM.

-- A structured format written by the LLM from one rationale revision; generated once per
-- (revision, format, model, prompt).
CREATE TABLE format_renderings (
    id                  INTEGER PRIMARY KEY,
    rationale_id        INTEGER NOT NULL REFERENCES rationales(id),
    format              TEXT NOT NULL,
    model               TEXT NOT NULL,
    prompt_key          TEXT NOT NULL,              -- sha256 of the exact messages and the prompt version
    prompt              TEXT NOT NULL,              -- the exact messages, as JSON
    status              TEXT NOT NULL CHECK (status IN ('ok', 'fallback')),
    content             TEXT CHECK (content IS NULL OR json_valid(content)),  -- the parsed JSON shape (ok only)
    raw_answers         TEXT NOT NULL CHECK (json_valid(raw_answers)),        -- the model's answers (1, or 2 on retry)
    notice              TEXT,                       -- why it fell back to free text
    quotes              TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(quotes)), -- every quote with its span or null
    unsupported_quotes  INTEGER NOT NULL DEFAULT 0, -- quotes that match nothing in the news (hallucination signal)
    seconds_taken       REAL,
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX format_renderings_key ON format_renderings(rationale_id, format, model, prompt_key);

-- The feedback form of one (rationale revision, format, annotator) is one row, autosaved as it is filled in.
ALTER TABLE rationale_feedback ADD COLUMN ease INTEGER CHECK (ease BETWEEN 1 AND 4);
ALTER TABLE rationale_feedback ADD COLUMN understanding INTEGER CHECK (understanding BETWEEN 1 AND 7);
ALTER TABLE rationale_feedback ADD COLUMN trust INTEGER CHECK (trust BETWEEN 1 AND 7);
ALTER TABLE rationale_feedback ADD COLUMN rendering_id INTEGER REFERENCES format_renderings(id);
ALTER TABLE rationale_feedback ADD COLUMN updated_at TEXT;
CREATE INDEX feedback_form ON rationale_feedback(rationale_id, annotator_id, format);

-- "Apply feedback": the LLM revises a rationale from three-part feedback; the repair is scored when a label exists.
CREATE TABLE repairs (
    id                     INTEGER PRIMARY KEY,
    feedback_id            INTEGER NOT NULL REFERENCES rationale_feedback(id),
    source_rationale_id    INTEGER NOT NULL REFERENCES rationales(id),  -- the revision the feedback was on
    repaired_rationale_id  INTEGER NOT NULL REFERENCES rationales(id),  -- the new revision (origin 'repaired')
    format                 TEXT NOT NULL,
    model                  TEXT NOT NULL,
    prompt                 TEXT NOT NULL,
    verdict_before         TEXT CHECK (verdict_before IN ('real', 'fake', 'other')),
    verdict_after          TEXT CHECK (verdict_after IN ('real', 'fake', 'other')),
    reference_label        TEXT CHECK (reference_label IN ('real', 'fake')),
    reference_source       TEXT CHECK (reference_source IN ('human', 'gold')),
    right_before           INTEGER CHECK (right_before IN (0, 1)),
    right_after            INTEGER CHECK (right_after IN (0, 1)),
    locality               REAL,     -- share of the words outside the part the feedback points at left unchanged
    changed_words          INTEGER,  -- words deleted or inserted
    success                INTEGER CHECK (success IN (0, 1)),  -- verdict right after, and the edit stayed local
    model_version_id       INTEGER REFERENCES model_versions(id),  -- ARG version that re-scored the item
    p_fake_before          REAL,
    p_fake_after           REAL,
    seconds_taken          REAL,
    created_at             TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX repairs_feedback ON repairs(feedback_id);
