//! Schema migrations: ordered SQL files under `migrations/`, applied in one transaction each; the version is kept
//! in `PRAGMA user_version`.

use std::path::Path;

use rusqlite::{Connection, params};

use crate::domain::{KeyAssigner, content_key, item_key, key_family};

use super::{APPLICATION_ID, StoreError};

/// The migrations, in order; migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_perspectives.sql"),
    include_str!("../../migrations/0003_guidance.sql"),
    include_str!("../../migrations/0004_formats.sql"),
    include_str!("../../migrations/0005_studies.sql"),
    include_str!("../../migrations/0006_item_keys_reviews.sql"),
    include_str!("../../migrations/0007_project_settings.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Refuses, without writing anything, a database that is newer than this build or that is not an Argus database.
pub(super) fn check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let sql = |source| StoreError::Sqlite { path: path.to_path_buf(), source };
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sql)?;
    let app_id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(sql)?;
    let tables: i64 =
        conn.query_row("SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table'", [], |r| r.get(0)).map_err(sql)?;
    if tables > 0 && app_id != APPLICATION_ID {
        return Err(StoreError::NotArgus { path: path.to_path_buf() });
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema { path: path.to_path_buf(), found: version, supported: SCHEMA_VERSION });
    }
    Ok(())
}

/// Applies the migrations the database lacks, each in its own transaction. Call [`check`] first.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sql = |source| StoreError::Sqlite { path: path.to_path_buf(), source };
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sql)?;
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let target = i as i64 + 1;
        let fail = |source| StoreError::Migration { path: path.to_path_buf(), version: target, source };
        let tx = conn.transaction().map_err(fail)?;
        tx.execute_batch(migration).map_err(fail)?;
        if target == 6 {
            fill_item_keys(&tx).map_err(fail)?;
        }
        tx.pragma_update(None, "user_version", target).map_err(fail)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(fail)?;
        tx.commit().map_err(fail)?;
        tracing::debug!(path = %path.display(), version = target, "migrated database");
    }
    Ok(())
}

/// Version 6's Rust step: gives every existing item its key, dataset by dataset in id order, by the rules a new
/// import follows (`Store::import`), then makes keys unique: repeats within a dataset get `#n`, and a key an
/// earlier dataset holds with another text falls back to the content key.
fn fill_item_keys(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    type Row = (i64, i64, String, Option<String>, String, Option<String>, String);
    let rows: Vec<Row> = {
        let mut stmt = tx.prepare(
            "SELECT i.id, i.dataset_id, d.format, i.external_id, i.text, i.source, i.text_sha256 \
             FROM items i JOIN datasets d ON d.id = i.dataset_id ORDER BY i.dataset_id, i.id",
        )?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut held: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut update = tx.prepare("UPDATE items SET item_key = ?1 WHERE id = ?2")?;
    let mut keys = KeyAssigner::default();
    let mut dataset = None;
    for (id, dataset_id, format, external_id, text, source, sha) in rows {
        if dataset != Some(dataset_id) {
            dataset = Some(dataset_id);
            keys = KeyAssigner::default();
        }
        let mut key = keys.next(&item_key(key_family(&format), external_id.as_deref(), &text, source.as_deref()));
        if held.get(&key).is_some_and(|other| *other != sha) {
            key = keys.next(&content_key(&text, source.as_deref()));
        }
        // A row the same as one already keyed (the same file imported twice before keys existed) gets a repeat.
        while held.contains_key(&key) {
            key = format!("{key}+");
        }
        held.insert(key.clone(), sha);
        update.execute(params![key, id])?;
    }
    tx.execute_batch("CREATE UNIQUE INDEX items_key ON items(item_key);")
}
