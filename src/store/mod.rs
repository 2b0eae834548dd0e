//! The SQLite store: one real database file per project, schema migrations, and every read and write Argus makes.
//!
//! Every user action is committed the moment it is recorded; undo retracts a row (sets `retracted_at`), it never
//! deletes one. An import is staged beside the database and published in one transaction, so a failed or cancelled
//! import leaves the database as it was, and other writers wait only for the publishing (see `import`).
//!
//! This module knows nothing of the UI, of file formats (see `ingest`) or of background jobs.

pub mod bundle;
pub mod formats;
pub mod guidance;
mod import;
mod migrations;
pub mod reviews;
pub mod settings;
pub mod studies;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::domain::{
    AnnotatorId, DatasetId, Item, ItemId, ItemSummary, Judgement, JudgementId, NewFeedback, NewJudgement, Rationale,
    RationaleId, RationaleOrigin, Stats, Verdict,
};
use crate::prompting::{Perspective, builtin_perspectives};

pub use import::ImportStep;
pub use migrations::SCHEMA_VERSION;

/// Identifies an Argus database (`PRAGMA application_id`), "ARGU" in ASCII.
pub const APPLICATION_ID: i32 = 0x4152_4755;

/// How long a writer waits for another connection's lock before giving up.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {}", sqlite_message(.source))]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "{path}: this database has schema version {found}, newer than this Argus supports ({supported}); \
         it was left untouched: open it with a newer Argus"
    )]
    NewerSchema { path: PathBuf, found: i64, supported: i64 },
    #[error("{path}: not an Argus database (it already holds other tables); it was left untouched")]
    NotArgus { path: PathBuf },
    #[error("{path}: migration to schema version {version} failed: {source}")]
    Migration {
        path: PathBuf,
        version: i64,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: i64 },
    #[error("cancelled; nothing was written")]
    Cancelled(#[from] crate::jobs::Cancelled),
    #[error("{0}")]
    Invalid(String),
    /// A bundle row that cannot be merged (`row` is its 0-based index among the rows merged).
    #[error("bundle row {}: {reason}", .row + 1)]
    BundleRow { row: usize, reason: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// SQLite's message, or for a busy database (another connection held the write lock through every retry of the
/// busy timeout) what happened and what to do.
fn sqlite_message(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => format!(
            "the database is busy: another studio or command (an import, a merge, a retrain) held its write lock \
             for more than {} s of retries; nothing of this step was written, try it again ({e})",
            BUSY_TIMEOUT_MS / 1000
        ),
        _ => format!("SQLite error: {e}"),
    }
}

/// What an import added.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    /// The dataset row the new items went to; `None` when every item was already present.
    pub dataset_id: Option<DatasetId>,
    /// Items added.
    pub items: usize,
    /// Rationales added with them.
    pub rationales: usize,
    /// Items whose key the database already had with the same text (a re-import): skipped.
    pub already_present: usize,
}

/// One item with everything an exporter writes.
#[derive(Clone, Debug)]
pub struct ExportRow {
    pub item: Item,
    pub dataset: String,
    /// Latest revision of each rationale.
    pub rationales: Vec<Rationale>,
    /// Standing judgements (one per annotator).
    pub judgements: Vec<Judgement>,
}

/// An open Argus database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, sets its PRAGMAs and migrates it to the current schema.
    ///
    /// A database whose schema is newer than this build is refused untouched.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Invalid(format!("{}: cannot create folder: {e}", parent.display())))?;
        }
        let conn = Connection::open(&path).map_err(|source| StoreError::Sqlite { path: path.clone(), source })?;
        let mut store = Self { conn, path };
        // Check before anything writes: even switching the journal mode changes the file.
        migrations::check(&store.conn, &store.path)?;
        store.configure()?;
        migrations::migrate(&mut store.conn, &store.path)?;
        store.add_missing_builtin_perspectives()?;
        Ok(store)
    }

    fn configure(&self) -> Result<()> {
        // journal_mode returns a row, so it is read rather than executed.
        let sql = |e| self.err(e);
        let _mode: String = self.conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).map_err(sql)?;
        // 64 MiB page cache: bulk imports update several indexes at random places.
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA cache_size = -65536;")
            .map_err(|e| self.err(e))?;
        self.conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS)).map_err(|e| self.err(e))?;
        Ok(())
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite { path: self.path.clone(), source }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<i64> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| self.err(e))
    }

    /// Raw connection, for benchmarks and tests that measure SQLite itself.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    // ---------------------------------------------------------------------------------------------------------
    // Perspectives

    fn add_missing_builtin_perspectives(&self) -> Result<()> {
        for (position, p) in builtin_perspectives().iter().enumerate() {
            self.conn
                .execute(
                    "INSERT OR IGNORE INTO perspectives(key, name, prompt, verdict_question, generated, position) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![p.key, p.name, p.prompt, p.verdict_question, p.generated, position as i64],
                )
                .map_err(|e| self.err(e))?;
            // A built-in prompt nobody edited, still worded with the news last, moves to the current wording
            // (news first, so an item's perspectives share their prefix); an edited one stays as it is.
            let old = crate::prompting::news_last_wording(&p.prompt);
            if old != p.prompt {
                self.conn
                    .execute(
                        "UPDATE perspectives SET prompt = ?1 WHERE key = ?2 AND prompt = ?3",
                        params![p.prompt, p.key, old],
                    )
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }

    /// Every perspective, in display order.
    pub fn perspectives(&self) -> Result<Vec<Perspective>> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, name, prompt, verdict_question, generated FROM perspectives ORDER BY position, key")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Perspective {
                    key: r.get(0)?,
                    name: r.get(1)?,
                    prompt: r.get(2)?,
                    verdict_question: r.get(3)?,
                    generated: r.get(4)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Adds or updates a perspective (by key). Rationales already written keep the exact prompt they were written
    /// with.
    pub fn save_perspective(&self, p: &Perspective) -> Result<()> {
        let key_ok = !p.key.is_empty()
            && p.key.len() <= 32
            && p.key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !key_ok {
            return Err(StoreError::Invalid(format!(
                "perspective key '{}' must be 1-32 characters of a-z, 0-9, _ or -",
                p.key
            )));
        }
        if p.name.trim().is_empty() {
            return Err(StoreError::Invalid(format!("perspective '{}' needs a name", p.key)));
        }
        if p.generated && (p.prompt.trim().is_empty() || p.verdict_question.trim().is_empty()) {
            return Err(StoreError::Invalid(format!("perspective '{}' needs a prompt and a verdict question", p.key)));
        }
        self.conn
            .execute(
                "INSERT INTO perspectives(key, name, prompt, verdict_question, generated, position) \
                 VALUES (?1, ?2, ?3, ?4, ?5, (SELECT COALESCE(MAX(position), 0) + 1 FROM perspectives)) \
                 ON CONFLICT(key) DO UPDATE SET name = excluded.name, prompt = excluded.prompt, \
                 verdict_question = excluded.verdict_question, generated = excluded.generated, \
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                params![p.key, p.name.trim(), p.prompt, p.verdict_question, p.generated],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    // ---------------------------------------------------------------------------------------------------------
    // Annotators

    /// The id of the annotator called `name`, created on first use.
    pub fn annotator_id(&self, name: &str) -> Result<AnnotatorId> {
        let name = name.trim();
        if name.is_empty() {
            return Err(StoreError::Invalid("an annotator needs a name".into()));
        }
        self.conn.execute("INSERT OR IGNORE INTO annotators(name) VALUES (?1)", [name]).map_err(|e| self.err(e))?;
        self.conn.query_row("SELECT id FROM annotators WHERE name = ?1", [name], |r| r.get(0)).map_err(|e| self.err(e))
    }

    /// All annotator names, alphabetically.
    pub fn annotators(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT name FROM annotators ORDER BY name").map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    // ---------------------------------------------------------------------------------------------------------
    // Items

    /// Summaries of every item, in id order, with `annotator`'s standing verdicts filled in.
    pub fn item_summaries(&self, annotator: Option<AnnotatorId>) -> Result<Vec<ItemSummary>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, title, text, source, gold_label FROM items ORDER BY id")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        let mut index = std::collections::HashMap::new();
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let id: ItemId = r.get(0).map_err(|e| self.err(e))?;
            let title: Option<String> = r.get(1).map_err(|e| self.err(e))?;
            let text: String = r.get(2).map_err(|e| self.err(e))?;
            let source: Option<String> = r.get(3).map_err(|e| self.err(e))?;
            let gold: Option<String> = r.get(4).map_err(|e| self.err(e))?;
            let headline = headline(title.as_deref(), &text);
            let mut search_text = String::with_capacity(text.len() + 64);
            for part in [title.as_deref(), Some(text.as_str()), source.as_deref()].into_iter().flatten() {
                search_text.push_str(&part.to_lowercase());
                search_text.push('\n');
            }
            index.insert(id, out.len());
            out.push(ItemSummary {
                id,
                headline,
                search_text,
                gold_label: gold.as_deref().and_then(Verdict::parse),
                my_verdict: None,
                verdicts: Vec::new(),
            });
        }
        let mut stmt = self
            .conn
            .prepare("SELECT item_id, annotator_id, verdict FROM standing_judgements")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let item_id: ItemId = r.get(0).map_err(|e| self.err(e))?;
            let who: AnnotatorId = r.get(1).map_err(|e| self.err(e))?;
            let verdict: String = r.get(2).map_err(|e| self.err(e))?;
            let (Some(&i), Some(v)) = (index.get(&item_id), Verdict::parse(&verdict)) else { continue };
            out[i].verdicts.push((who, v));
            if Some(who) == annotator {
                out[i].my_verdict = Some(v);
            }
        }
        Ok(out)
    }

    /// One item.
    pub fn item(&self, id: ItemId) -> Result<Item> {
        self.conn
            .query_row(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE id = ?1"), [id], row_to_item)
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound { what: "item", id })
    }

    /// Name of a dataset.
    pub fn dataset_name(&self, id: DatasetId) -> Result<String> {
        self.conn.query_row("SELECT name FROM datasets WHERE id = ?1", [id], |r| r.get(0)).map_err(|e| self.err(e))
    }

    // ---------------------------------------------------------------------------------------------------------
    // Rationales

    /// Latest revision of every rationale of an item, ordered by perspective.
    pub fn rationales(&self, item: ItemId) -> Result<Vec<Rationale>> {
        self.query_rationales(
            "SELECT r.id, r.item_id, r.root_id, r.parent_id, r.revision, r.perspective, r.origin, r.model, r.prompt, \
             r.text, r.verdict, a.name, r.created_at \
             FROM latest_rationales r LEFT JOIN annotators a ON a.id = r.author_id \
             WHERE r.item_id = ?1 ORDER BY r.perspective, r.root_id",
            item,
        )
    }

    /// Every revision of the rationale chain `root`, oldest first.
    pub fn rationale_revisions(&self, root: RationaleId) -> Result<Vec<Rationale>> {
        self.query_rationales(
            "SELECT r.id, r.item_id, r.root_id, r.parent_id, r.revision, r.perspective, r.origin, r.model, r.prompt, \
             r.text, r.verdict, a.name, r.created_at \
             FROM rationales r LEFT JOIN annotators a ON a.id = r.author_id \
             WHERE r.root_id = ?1 AND r.retracted_at IS NULL ORDER BY r.revision",
            root,
        )
    }

    /// One rationale revision by id (retracted or not).
    pub fn rationale(&self, id: RationaleId) -> Result<Rationale> {
        self.query_rationales(
            "SELECT r.id, r.item_id, r.root_id, r.parent_id, r.revision, r.perspective, r.origin, r.model, r.prompt, \
             r.text, r.verdict, a.name, r.created_at \
             FROM rationales r LEFT JOIN annotators a ON a.id = r.author_id WHERE r.id = ?1",
            id,
        )?
        .pop()
        .ok_or(StoreError::NotFound { what: "rationale", id })
    }

    fn query_rationales(&self, sql: &str, key: i64) -> Result<Vec<Rationale>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([key], row_to_rationale).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Stores a correction of rationale revision `parent` as a new revision; the parent row is kept.
    pub fn revise_rationale(
        &mut self,
        parent: RationaleId,
        text: &str,
        verdict: Option<Verdict>,
        origin: RationaleOrigin,
        author: Option<AnnotatorId>,
    ) -> Result<(RationaleId, u32)> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        // IMMEDIATE: no other writer can take the same revision number between the read and the insert.
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        type Parent = (i64, i64, String, Option<String>, Option<String>);
        let (item_id, root_id, perspective, model, prompt): Parent = tx
            .query_row(
                "SELECT item_id, root_id, perspective, model, prompt FROM rationales WHERE id = ?1",
                [parent],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(err)?
            .ok_or(StoreError::NotFound { what: "rationale", id: parent })?;
        let next: u32 = tx
            .query_row("SELECT MAX(revision) + 1 FROM rationales WHERE root_id = ?1", [root_id], |r| r.get(0))
            .map_err(err)?;
        tx.execute(
            "INSERT INTO rationales(item_id, root_id, parent_id, revision, perspective, origin, model, prompt, \
             text, verdict, author_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                item_id,
                root_id,
                parent,
                next,
                perspective,
                origin.as_str(),
                model,
                prompt,
                text,
                verdict.map(Verdict::as_str),
                author
            ],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        tx.commit().map_err(err)?;
        Ok((id, next))
    }

    // ---------------------------------------------------------------------------------------------------------
    // Judgements

    /// Records a judgement; committed when this returns.
    pub fn record_judgement(&self, j: &NewJudgement) -> Result<JudgementId> {
        if let Some(c) = j.confidence.filter(|c| !(0.0..=1.0).contains(c)) {
            return Err(StoreError::Invalid(format!("confidence {c} is outside 0..1")));
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT INTO judgements(item_id, annotator_id, verdict, confidence, note, time_spent_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(|e| self.err(e))?;
        stmt.execute(params![
            j.item_id,
            j.annotator_id,
            j.verdict.as_str(),
            j.confidence,
            j.note.as_deref().filter(|n| !n.trim().is_empty()),
            j.time_spent_ms.max(0)
        ])
        .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Undo of a judgement: marks it retracted (the row stays). The annotator's previous judgement, if any,
    /// stands again.
    pub fn retract_judgement(&self, id: JudgementId) -> Result<()> {
        let n = self
            .conn
            .execute(
                "UPDATE judgements SET retracted_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                 WHERE id = ?1 AND retracted_at IS NULL",
                [id],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(StoreError::NotFound { what: "standing judgement", id });
        }
        Ok(())
    }

    /// Standing judgements (one per annotator) of an item.
    pub fn judgements(&self, item: ItemId) -> Result<Vec<Judgement>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT j.id, j.item_id, a.name, j.verdict, j.confidence, j.note, j.time_spent_ms, j.adjudicated, \
                 j.created_at FROM standing_judgements j JOIN annotators a ON a.id = j.annotator_id \
                 WHERE j.item_id = ?1 ORDER BY a.name",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([item], row_to_judgement).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Standing verdicts of an item, one per annotator.
    pub fn standing_verdicts(&self, item: ItemId) -> Result<Vec<(AnnotatorId, Verdict)>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT annotator_id, verdict FROM standing_judgements WHERE item_id = ?1 ORDER BY annotator_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([item], |r| Ok((r.get::<_, AnnotatorId>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (who, v) = row.map_err(|e| self.err(e))?;
            if let Some(v) = Verdict::parse(&v) {
                out.push((who, v));
            }
        }
        Ok(out)
    }

    /// The standing verdict of one annotator on one item.
    pub fn standing_verdict(&self, item: ItemId, annotator: AnnotatorId) -> Result<Option<Verdict>> {
        let v: Option<String> = self
            .conn
            .query_row(
                "SELECT verdict FROM standing_judgements WHERE item_id = ?1 AND annotator_id = ?2",
                [item, annotator],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(v.as_deref().and_then(Verdict::parse))
    }

    // ---------------------------------------------------------------------------------------------------------
    // Feedback

    /// Records structured feedback on one rationale revision as a new row; committed when this returns. (The
    /// studio's forms autosave into one row per revision, format and annotator: [`Store::save_feedback_form`].)
    pub fn record_feedback(&self, f: &NewFeedback) -> Result<i64> {
        validate_feedback(f)?;
        self.conn
            .execute(
                &format!("INSERT INTO rationale_feedback({FEEDBACK_FORM_COLUMNS}) VALUES ({FEEDBACK_FORM_PARAMS})"),
                rusqlite::params_from_iter(feedback_values(f)),
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Undo of feedback: marks it retracted.
    pub fn retract_feedback(&self, id: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE rationale_feedback SET retracted_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
                [id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Stores a new rationale (first revision) for `item`, committed at once.
    pub fn add_rationale(&self, item: ItemId, r: &crate::domain::NewRationale) -> Result<RationaleId> {
        self.conn
            .execute(
                "INSERT INTO rationales(item_id, perspective, origin, model, prompt, text, verdict) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    item,
                    r.perspective,
                    r.origin.as_str(),
                    r.model,
                    r.prompt,
                    r.text,
                    r.verdict.map(|v| v.as_str())
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// True when `item` already has a rationale for `perspective` written by `model` from exactly `prompt`
    /// (what makes a rationale run resumable).
    pub fn has_generated_rationale(&self, item: ItemId, perspective: &str, model: &str, prompt: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM rationales WHERE item_id = ?1 AND perspective = ?2 AND model = ?3 \
                 AND prompt = ?4 AND retracted_at IS NULL)",
                params![item, perspective, model, prompt],
                |r| r.get::<_, bool>(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Every item, in id order.
    pub fn items_all(&self) -> Result<Vec<Item>> {
        let mut stmt =
            self.conn.prepare(&format!("SELECT {ITEM_COLUMNS} FROM items ORDER BY id")).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], row_to_item).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// The item with a stable key ([`crate::domain::item_key`]), if this database has it.
    pub fn item_id_by_key(&self, key: &str) -> Result<Option<ItemId>> {
        self.conn
            .prepare_cached("SELECT id FROM items WHERE item_key = ?1")
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// Every item's key by id.
    pub fn item_keys(&self) -> Result<std::collections::HashMap<ItemId, String>> {
        let mut stmt =
            self.conn.prepare_cached("SELECT id, COALESCE(item_key, '') FROM items").map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Ids of every item, in id order.
    pub fn item_ids(&self) -> Result<Vec<ItemId>> {
        let mut stmt = self.conn.prepare_cached("SELECT id FROM items ORDER BY id").map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get::<_, i64>(0)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    // ---------------------------------------------------------------------------------------------------------
    // Stats and export

    /// Counts of what the database holds (retracted rows not counted).
    pub fn stats(&self) -> Result<Stats> {
        let count = |sql: &str| -> Result<u64> {
            self.conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map(|n| n as u64).map_err(|e| self.err(e))
        };
        Ok(Stats {
            datasets: count("SELECT COUNT(*) FROM datasets")?,
            items: count("SELECT COUNT(*) FROM items")?,
            rationales: count("SELECT COUNT(*) FROM latest_rationales")?,
            rationales_with_verdict: count("SELECT COUNT(*) FROM latest_rationales WHERE verdict IS NOT NULL")?,
            judgements: count("SELECT COUNT(*) FROM standing_judgements")?,
            feedback: count("SELECT COUNT(*) FROM rationale_feedback WHERE retracted_at IS NULL")?,
            annotators: count("SELECT COUNT(*) FROM annotators")?,
            judged_items: count("SELECT COUNT(DISTINCT item_id) FROM standing_judgements")?,
        })
    }

    /// Every item with its latest rationales and standing judgements, in id order.
    pub fn export_rows(&self) -> Result<Vec<ExportRow>> {
        let mut datasets = std::collections::HashMap::new();
        {
            let mut stmt = self.conn.prepare("SELECT id, name FROM datasets").map_err(|e| self.err(e))?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))).map_err(|e| self.err(e))?;
            for row in rows {
                let (id, name) = row.map_err(|e| self.err(e))?;
                datasets.insert(id, name);
            }
        }
        let mut stmt =
            self.conn.prepare(&format!("SELECT {ITEM_COLUMNS} FROM items ORDER BY id")).map_err(|e| self.err(e))?;
        let items = stmt.query_map([], row_to_item).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in items {
            let item = item.map_err(|e| self.err(e))?;
            out.push(ExportRow {
                dataset: datasets.get(&item.dataset_id).cloned().unwrap_or_default(),
                rationales: self.rationales(item.id)?,
                judgements: self.judgements(item.id)?,
                item,
            });
        }
        Ok(out)
    }
}

/// The columns of a feedback form, in the order of [`feedback_values`], and their placeholders.
pub(crate) const FEEDBACK_FORM_COLUMNS: &str = "rationale_id, annotator_id, format, usefulness, sufficiency, \
     faithfulness, agrees_verdict, fb_where, fb_what, fb_fix, time_spent_ms, ease, understanding, trust, rendering_id";
pub(crate) const FEEDBACK_FORM_PARAMS: &str = "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15";

/// A feedback form's values, in the order of [`FEEDBACK_FORM_COLUMNS`].
pub(crate) fn feedback_values(f: &NewFeedback) -> [rusqlite::types::Value; 15] {
    use rusqlite::types::Value;
    let opt_text = |t: &Option<String>| t.clone().map_or(Value::Null, Value::Text);
    let opt_int = |v: Option<u8>| v.map_or(Value::Null, |v| Value::Integer(v.into()));
    [
        Value::Integer(f.rationale_id),
        Value::Integer(f.annotator_id),
        Value::Text(f.format.clone()),
        f.usefulness.map_or(Value::Null, |u| Value::Text(u.as_str().to_owned())),
        opt_int(f.sufficiency),
        opt_int(f.faithfulness),
        f.agrees_verdict.map_or(Value::Null, |a| Value::Integer(a.into())),
        opt_text(&f.fb_where),
        opt_text(&f.fb_what),
        opt_text(&f.fb_fix),
        Value::Integer(f.time_spent_ms.max(0)),
        opt_int(f.ease),
        opt_int(f.understanding),
        opt_int(f.trust),
        f.rendering_id.map_or(Value::Null, Value::Integer),
    ]
}

/// Refuses answers outside their scales, naming the field.
pub(crate) fn validate_feedback(f: &NewFeedback) -> Result<()> {
    let scales = [
        ("sufficiency", f.sufficiency, 3),
        ("faithfulness", f.faithfulness, 3),
        ("ease", f.ease, 4),
        ("understanding", f.understanding, 7),
        ("trust", f.trust, 7),
    ];
    for (name, v, top) in scales {
        if let Some(v) = v.filter(|v| !(1..=top).contains(v)) {
            return Err(StoreError::Invalid(format!("{name} {v} is outside 1..{top}")));
        }
    }
    Ok(())
}

/// SHA-256 of a text, hex: the key under which encoders cache their outputs.
pub fn text_sha256(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut s = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A one-line headline for the item list: the title, or the start of the text.
fn headline(title: Option<&str>, text: &str) -> String {
    let src = title.filter(|t| !t.trim().is_empty()).unwrap_or(text);
    let one_line: String = src.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(140) {
        Some((cut, _)) => format!("{}…", &one_line[..cut]),
        None => one_line,
    }
}

/// The columns [`row_to_item`] reads, in its order.
const ITEM_COLUMNS: &str = "id, dataset_id, external_id, title, text, source, published, gold_label, original_label, \
     split, metadata, item_key";

fn row_to_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    let gold: Option<String> = r.get(7)?;
    let metadata: String = r.get(10)?;
    Ok(Item {
        id: r.get(0)?,
        key: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
        dataset_id: r.get(1)?,
        external_id: r.get(2)?,
        title: r.get(3)?,
        text: r.get(4)?,
        source: r.get(5)?,
        published: r.get(6)?,
        gold_label: gold.as_deref().and_then(Verdict::parse),
        original_label: r.get(8)?,
        split: r.get(9)?,
        metadata: serde_json::from_str(&metadata).unwrap_or(serde_json::Value::Null),
    })
}

fn row_to_rationale(r: &rusqlite::Row<'_>) -> rusqlite::Result<Rationale> {
    let origin: String = r.get(6)?;
    let verdict: Option<String> = r.get(10)?;
    Ok(Rationale {
        id: r.get(0)?,
        item_id: r.get(1)?,
        root_id: r.get(2)?,
        parent_id: r.get(3)?,
        revision: r.get(4)?,
        perspective: r.get(5)?,
        origin: RationaleOrigin::parse(&origin).unwrap_or(RationaleOrigin::Imported),
        model: r.get(7)?,
        prompt: r.get(8)?,
        text: r.get(9)?,
        verdict: verdict.as_deref().and_then(Verdict::parse),
        author: r.get(11)?,
        created_at: r.get(12)?,
    })
}

pub(crate) fn row_to_judgement(r: &rusqlite::Row<'_>) -> rusqlite::Result<Judgement> {
    let verdict: String = r.get(3)?;
    Ok(Judgement {
        id: r.get(0)?,
        item_id: r.get(1)?,
        annotator: r.get(2)?,
        verdict: Verdict::parse(&verdict).unwrap_or(Verdict::Other),
        confidence: r.get(4)?,
        note: r.get(5)?,
        time_spent_ms: r.get(6)?,
        adjudicated: r.get::<_, i64>(7)? != 0,
        created_at: r.get(8)?,
    })
}
