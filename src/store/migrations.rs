//! Schema migrations: ordered SQL files under `migrations/`, applied in one transaction each; the version is kept
//! in `PRAGMA user_version`.

use std::path::Path;

use rusqlite::Connection;

use super::{APPLICATION_ID, StoreError};

/// The migrations, in order; migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_perspectives.sql"),
    include_str!("../../migrations/0003_guidance.sql"),
    include_str!("../../migrations/0004_formats.sql"),
    include_str!("../../migrations/0005_studies.sql"),
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
        tx.pragma_update(None, "user_version", target).map_err(fail)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(fail)?;
        tx.commit().map_err(fail)?;
        tracing::debug!(path = %path.display(), version = target, "migrated database");
    }
    Ok(())
}
