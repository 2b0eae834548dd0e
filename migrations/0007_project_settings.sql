-- Argus schema, version 7: settings of the project itself, shared by everyone who opens the database (a person's
-- studio settings live in their own settings file). One row per setting; absent = the built-in default.
-- `split.group_by`: the field that train/val splits are hashed over when the data names no split (`FIELD` or
-- `FIELD~REGEX`, see guidance::data::GroupKey); absent: the item's text.

CREATE TABLE project_settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
