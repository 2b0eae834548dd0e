//! Settings of the project (the database itself), shared by everyone who opens it, as against a person's studio
//! settings (`config::Settings`, in their own file). Today one: the field that splits are grouped by.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};

use super::{Result, Store};

/// The field train/val splits are hashed over when the data names no split (`FIELD` or `FIELD~REGEX`); absent: the
/// item's text.
pub const SPLIT_GROUP_BY: &str = "split.group_by";

impl Store {
    /// A project setting's value; `None` when it was never set (the built-in default applies).
    pub fn project_setting(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM project_settings WHERE key = ?1", params![key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Sets a project setting, or removes it (back to the default) with `None`; committed at once.
    pub fn set_project_setting(&self, key: &str, value: Option<&str>) -> Result<()> {
        match value {
            Some(v) => self.conn.execute(
                "INSERT INTO project_settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET \
                 value = excluded.value, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                params![key, v],
            ),
            None => self.conn.execute("DELETE FROM project_settings WHERE key = ?1", params![key]),
        }
        .map(drop)
        .map_err(|e| self.err(e))
    }

    /// The project's split group key (`SPLIT_GROUP_BY`), if one is set.
    pub fn split_group_by(&self) -> Result<Option<String>> {
        Ok(self.project_setting(SPLIT_GROUP_BY)?.filter(|v| !v.trim().is_empty()))
    }

    /// The fields items can be grouped by, with how many items have a value for each: `source` and every key of
    /// the items' imported metadata, by name.
    pub fn group_fields(&self) -> Result<BTreeMap<String, usize>> {
        let mut fields = BTreeMap::new();
        let sources: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM items WHERE TRIM(COALESCE(source, '')) <> ''", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if sources > 0 {
            fields.insert("source".to_owned(), sources as usize);
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT j.key, COUNT(*) FROM items i, json_each(i.metadata) j \
                 WHERE j.type NOT IN ('null', 'object', 'array') AND TRIM(CAST(j.value AS TEXT)) <> '' \
                 GROUP BY j.key",
            )
            .map_err(|e| self.err(e))?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(|e| self.err(e))?;
        for row in rows {
            let (key, n) = row.map_err(|e| self.err(e))?;
            *fields.entry(key).or_default() += n as usize;
        }
        Ok(fields)
    }
}
