//! Imports, staged then published, so that a long import does not hold the database's one write lock while it
//! works.
//!
//! 1. **Staging** (no write lock): every item's text hash, stable key and metadata are computed, keys are checked
//!    against the items already there (a read, which in WAL mode blocks no one), and the new rows go into two
//!    `TEMP` tables of this connection. Writing a temporary table takes no lock on the database file, so verdicts,
//!    reviews and other imports from other connections and processes go on meanwhile.
//! 2. **Publishing** (one `IMMEDIATE` transaction): dataset rows, then the staged items and rationales copied in
//!    with one `INSERT … SELECT` each, with ids given in one block. If another writer added one of the staged keys
//!    in between, the staging is redone inside the transaction, so the result is the same as a one-transaction
//!    import's.
//!
//! All or nothing holds as before: nothing reaches the database's tables before the publishing commits, and the
//! temporary tables vanish with the connection (a killed import leaves nothing behind). Another writer waits at
//! most for the publishing: `argus bench writers` measures that wait during a 100k-row import.

use rusqlite::{Connection, OptionalExtension, params};

use super::{ImportSummary, Result, Store, StoreError, text_sha256};
use crate::domain::{KeyAssigner, NewDataset, NewItem, Verdict, content_key, item_key, key_family};

/// Where an import is, for progress reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportStep {
    /// Items staged so far (no lock held: other writers go on).
    Staging(usize),
    /// Copying the staged rows in, in one transaction that holds the write lock.
    Publishing,
}

const STAGE_TABLES: &str = "
CREATE TEMP TABLE IF NOT EXISTS import_items (
    seq INTEGER PRIMARY KEY, file INTEGER NOT NULL, external_id TEXT, title TEXT, text TEXT NOT NULL, source TEXT,
    published TEXT, gold_label TEXT, original_label TEXT, split TEXT, metadata TEXT NOT NULL,
    text_sha256 TEXT NOT NULL, item_key TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS temp.import_items_key ON import_items(item_key);
CREATE TEMP TABLE IF NOT EXISTS import_rationales (
    seq INTEGER PRIMARY KEY, item_seq INTEGER NOT NULL, perspective TEXT NOT NULL, origin TEXT NOT NULL,
    model TEXT, prompt TEXT, text TEXT NOT NULL, verdict TEXT);
DELETE FROM temp.import_items;
DELETE FROM temp.import_rationales;
";

impl Store {
    /// Adds datasets with their items and rationales: all of them, or (on error or cancel) none. Staged first
    /// without holding the write lock, then published in one transaction (see the module documentation).
    ///
    /// `on_progress` is called every few hundred items while staging, then once when publishing starts;
    /// `cancelled()` is polled as often.
    pub fn import(
        &mut self,
        datasets: &[(NewDataset, Vec<NewItem>)],
        on_progress: &mut dyn FnMut(ImportStep),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Vec<ImportSummary>> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        let result = (|| {
            // A deferred transaction that writes only TEMP tables and reads the database: no write lock.
            let staging = self.conn.transaction().map_err(err)?;
            let mut summaries = stage(&staging, datasets, on_progress, cancelled).map_err(|e| e.at(&path))?;
            staging.commit().map_err(err)?;
            if cancelled() {
                return Err(crate::jobs::Cancelled.into());
            }
            on_progress(ImportStep::Publishing);
            let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
            if published_meanwhile(&tx).map_err(err)? {
                // Another writer added a staged key since: stage again, now under the lock.
                summaries = stage(&tx, datasets, &mut |_| {}, cancelled).map_err(|e| e.at(&path))?;
            }
            publish(&tx, datasets, &mut summaries).map_err(err)?;
            if cancelled() {
                return Err(crate::jobs::Cancelled.into()); // dropping `tx` rolls back
            }
            tx.commit().map_err(err)?;
            Ok(summaries)
        })();
        // The staged rows are not needed any more, whatever happened.
        let _ = self.conn.execute_batch("DELETE FROM temp.import_items; DELETE FROM temp.import_rationales;");
        result
    }
}

/// Why staging stopped: SQLite or a cancel.
enum StageError {
    Sqlite(rusqlite::Error),
    Cancelled,
}

impl From<rusqlite::Error> for StageError {
    fn from(e: rusqlite::Error) -> Self {
        StageError::Sqlite(e)
    }
}

impl StageError {
    fn at(self, path: &std::path::Path) -> StoreError {
        match self {
            StageError::Sqlite(source) => StoreError::Sqlite { path: path.to_owned(), source },
            StageError::Cancelled => crate::jobs::Cancelled.into(),
        }
    }
}

/// Fills the temporary tables with the rows `datasets` would add (keys already in the database, or staged earlier
/// in this import, are skipped as "already present") and returns each file's summary without its dataset id.
fn stage(
    conn: &Connection,
    datasets: &[(NewDataset, Vec<NewItem>)],
    on_progress: &mut dyn FnMut(ImportStep),
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<ImportSummary>, StageError> {
    conn.execute_batch(STAGE_TABLES)?;
    let mut insert_item = conn.prepare(
        "INSERT INTO temp.import_items(seq, file, external_id, title, text, source, published, gold_label, \
         original_label, split, metadata, text_sha256, item_key) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    let mut insert_rationale = conn.prepare(
        "INSERT INTO temp.import_rationales(seq, item_seq, perspective, origin, model, prompt, text, verdict) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    // A key is taken when the database has it, or an earlier item of this import does.
    let mut find_key = conn.prepare(
        "SELECT text_sha256 FROM main.items WHERE item_key = ?1 \
         UNION ALL SELECT text_sha256 FROM temp.import_items WHERE item_key = ?1 LIMIT 1",
    )?;
    let mut summaries = Vec::with_capacity(datasets.len());
    let (mut done, mut item_seq, mut rationale_seq) = (0usize, 0i64, 0i64);
    for (file, (dataset, items)) in datasets.iter().enumerate() {
        // Repeats are numbered within one file, so that the file read again gives the same keys.
        let mut keys = KeyAssigner::default();
        let family = key_family(&dataset.format);
        let mut summary = ImportSummary::default();
        for item in items {
            if done.is_multiple_of(512) {
                if cancelled() {
                    return Err(StageError::Cancelled);
                }
                on_progress(ImportStep::Staging(done));
            }
            done += 1;
            let sha = text_sha256(&item.text);
            let mut existing =
                |key: &str| -> rusqlite::Result<Option<String>> { find_key.query_row([key], |r| r.get(0)).optional() };
            let mut key = keys.next(&item_key(family, item.external_id.as_deref(), &item.text, item.source.as_deref()));
            match existing(&key)? {
                Some(other) if other == sha => {
                    summary.already_present += 1;
                    continue;
                }
                // The same id with another text: not the same item (two sources numbering from 1).
                Some(_) => {
                    key = keys.next(&content_key(&item.text, item.source.as_deref()));
                    if existing(&key)?.is_some() {
                        summary.already_present += 1;
                        continue;
                    }
                }
                None => {}
            }
            item_seq += 1;
            let metadata = serde_json::to_string(&item.metadata).unwrap_or_else(|_| "{}".into());
            insert_item.execute(params![
                item_seq,
                file as i64,
                item.external_id,
                item.title,
                item.text,
                item.source,
                item.published,
                item.gold_label.map(Verdict::as_str),
                item.original_label,
                item.split,
                metadata,
                sha,
                key,
            ])?;
            summary.items += 1;
            for r in &item.rationales {
                rationale_seq += 1;
                insert_rationale.execute(params![
                    rationale_seq,
                    item_seq,
                    r.perspective,
                    r.origin.as_str(),
                    r.model,
                    r.prompt,
                    r.text,
                    r.verdict.map(Verdict::as_str),
                ])?;
                summary.rationales += 1;
            }
        }
        summaries.push(summary);
    }
    on_progress(ImportStep::Staging(done));
    Ok(summaries)
}

/// Whether the database gained one of the staged keys since they were staged.
fn published_meanwhile(tx: &Connection) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM temp.import_items s JOIN main.items i ON i.item_key = s.item_key)",
        [],
        |r| r.get(0),
    )
}

/// Copies the staged rows into the database (inside the caller's write transaction): a dataset row for each file
/// that adds items, then items and rationales with ids in one block after the largest ids there.
fn publish(
    tx: &Connection,
    datasets: &[(NewDataset, Vec<NewItem>)],
    summaries: &mut [ImportSummary],
) -> rusqlite::Result<()> {
    let item_base: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) FROM main.items", [], |r| r.get(0))?;
    let rationale_base: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) FROM main.rationales", [], |r| r.get(0))?;
    for (file, ((dataset, _), summary)) in datasets.iter().zip(summaries.iter_mut()).enumerate() {
        if summary.items == 0 {
            continue;
        }
        tx.execute(
            "INSERT INTO datasets(name, format, source_path, license_note) VALUES (?1, ?2, ?3, ?4)",
            params![dataset.name, dataset.format, dataset.source_path, dataset.license_note],
        )?;
        let dataset_id = tx.last_insert_rowid();
        summary.dataset_id = Some(dataset_id);
        tx.execute(
            "INSERT INTO main.items(id, dataset_id, external_id, title, text, source, published, gold_label, \
             original_label, split, metadata, text_sha256, item_key) \
             SELECT ?1 + seq, ?2, external_id, title, text, source, published, gold_label, original_label, split, \
             metadata, text_sha256, item_key FROM temp.import_items WHERE file = ?3 ORDER BY seq",
            params![item_base, dataset_id, file as i64],
        )?;
    }
    tx.execute(
        "INSERT INTO main.rationales(id, root_id, item_id, perspective, origin, model, prompt, text, verdict) \
         SELECT ?1 + seq, ?1 + seq, ?2 + item_seq, perspective, origin, model, prompt, text, verdict \
         FROM temp.import_rationales ORDER BY seq",
        params![rationale_base, item_base],
    )?;
    Ok(())
}
