-- Argus schema, version 2: perspectives are data. Each has a prompt and a verdict question; the built-in ones are
-- added by the app when missing (see prompting::builtin_perspectives), and people may edit them or add their own.
CREATE TABLE perspectives (
    key               TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 32),
    name              TEXT NOT NULL,
    prompt            TEXT NOT NULL,
    verdict_question  TEXT NOT NULL,
    generated         INTEGER NOT NULL DEFAULT 1 CHECK (generated IN (0, 1)),
    position          INTEGER NOT NULL DEFAULT 0,
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
