//! User studies and annotation quality: the study file ([`spec`]), who sees what in which order ([`assign`]), the
//! participant's run as a UI-free state machine ([`flow`]), simulated participants ([`sim`]), the analysis per
//! condition with bootstrap intervals ([`analysis`]), tidy exports ([`export`]), inter-annotator agreement
//! ([`agreement`]) and per-annotator metrics ([`metrics`]).
//!
//! A study file is registered in the database as a version (canonical JSON + sha256, with its item set resolved);
//! the version freezes when its first participant starts, and a changed file then becomes the next version. Every
//! answer is committed with its step before the flow moves on, so a run resumes at the exact step after a crash.
//!
//! This module knows nothing of the UI (the studio's panels draw [`flow::Step`]s and call [`flow::Session::answer`]);
//! `spec`, `assign` and `agreement` are pure; the rest read and write through `store`.

pub mod agreement;
pub mod analysis;
pub mod assign;
pub mod export;
pub mod flow;
pub mod metrics;
pub mod prepare;
pub mod sim;
pub mod spec;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::domain::ItemId;
use crate::store::studies::{RegisterOutcome, StudyRow};
use crate::store::{Store, StoreError};
use assign::Plan;
use spec::StudySpec;

/// Errors of user studies. Each names the file, the field or the question it is about.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// A study file that cannot be read or parsed (or, with a path, any mistake in it).
    #[error("{}{message}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Spec {
        /// The study file, when known.
        path: Option<PathBuf>,
        /// What is wrong, with the line or the field.
        message: String,
    },
    /// A field of the study file with a wrong value.
    #[error("{field}: {message}")]
    Field {
        /// The field, as a path (`attention_checks.answer`, `conditions[1].name`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An answer that does not fit its question.
    #[error("answer to `{question}`: {message}")]
    Answer {
        /// The question's key.
        question: String,
        /// What is wrong.
        message: String,
    },
    /// No study of that name (or version) in the database.
    #[error("no study called `{name}`{} in this database", version.map(|v| format!(" (version {v})")).unwrap_or_default())]
    NoStudy {
        /// The name asked for.
        name: String,
        /// The version asked for.
        version: Option<u32>,
    },
    /// A file that cannot be written.
    #[error("{path}: {message}", path = path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Items could not be routed to annotators.
    #[error(transparent)]
    Assign(#[from] assign::AssignError),
    /// Anything else, in a sentence.
    #[error("{0}")]
    Invalid(String),
}

impl StudyError {
    /// The same error, said to be about study file `path`.
    pub fn in_file(self, path: &Path) -> StudyError {
        match self {
            StudyError::Spec { message, .. } => StudyError::Spec { path: Some(path.to_owned()), message },
            StudyError::Field { field, message } => {
                StudyError::Spec { path: Some(path.to_owned()), message: format!("{field}: {message}") }
            }
            other => other,
        }
    }
}

/// Result of user-study work.
pub type Result<T, E = StudyError> = std::result::Result<T, E>;

/// One registered version of a study.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Study {
    /// Row id of this version.
    pub id: i64,
    /// The study's name.
    pub name: String,
    /// 1, 2, ...
    pub version: u32,
    /// The study file.
    pub spec: StudySpec,
    /// sha256 of the file's canonical JSON.
    pub sha256: String,
    /// The item set, resolved when this version was registered.
    pub pool: Vec<ItemId>,
    /// When the first participant started (a frozen version never changes).
    pub frozen_at: Option<String>,
    /// When this version was registered.
    pub created_at: String,
}

impl Study {
    /// A stored version, its item keys resolved against `store`.
    pub(crate) fn from_row_in(store: &Store, row: StudyRow) -> Result<Study> {
        let mut study = Self::from_row(row)?;
        resolve_keys(store, &mut study.spec)?;
        Ok(study)
    }

    fn from_row(row: StudyRow) -> Result<Study> {
        let broken = |what: &str, e: serde_json::Error| {
            StudyError::Invalid(format!(
                "study `{}` version {}: stored {what} cannot be read: {e}",
                row.name, row.version
            ))
        };
        Ok(Study {
            spec: serde_json::from_str(&row.spec_json).map_err(|e| broken("study file", e))?,
            pool: serde_json::from_str(&row.items_json).map_err(|e| broken("item set", e))?,
            id: row.id,
            name: row.name,
            version: row.version,
            sha256: row.spec_sha256,
            frozen_at: row.frozen_at,
            created_at: row.created_at,
        })
    }

    /// The plan of participant `number` (1, 2, ...).
    pub fn plan(&self, number: u32) -> Plan {
        assign::plan(&self.spec, &self.pool, number)
    }

    /// The annotator name under which participant `code`'s written feedback is saved as rationale feedback (so the
    /// repair loop of the formats work applies to it).
    pub fn annotator_name(&self, code: &str) -> String {
        format!("{}{code}", annotator_prefix(&self.name))
    }
}

/// The start of the annotator names of study `name`'s participants.
pub fn annotator_prefix(name: &str) -> String {
    format!("study:{name}:")
}

/// Resolves the file's item set against the database and checks that every item the file names exists (gold items
/// with a gold label, practice items apart from the study items) and that the set holds enough items. The error
/// names the field.
pub fn resolve_items(store: &Store, spec: &StudySpec) -> Result<Vec<ItemId>> {
    let resolved;
    let spec =
        if spec.items.keys.is_empty() && spec.gold_keys.is_empty() && spec.practice.iter().all(|p| p.key.is_none()) {
            spec
        } else {
            resolved = resolved_spec(store, spec)?;
            &resolved
        };
    let field = |field: &str, message: String| StudyError::Field { field: field.to_owned(), message };
    let exists = |id: ItemId, name: &str| -> Result<crate::domain::Item> {
        store.item(id).map_err(|e| match e {
            StoreError::NotFound { .. } => field(name, format!("item {id} is not in the database")),
            other => other.into(),
        })
    };
    let set = &spec.items;
    let pool = if set.is_filter() {
        let pool =
            store.items_matching(set.dataset.as_deref(), set.label, set.with_rationale_from.as_deref(), set.limit)?;
        if pool.is_empty() {
            return Err(field("items", "the filter matches no item in the database".into()));
        }
        pool
    } else {
        for &id in &set.ids {
            exists(id, "items.ids")?;
        }
        set.ids.clone()
    };
    for &id in &spec.gold_items {
        if exists(id, "gold_items")?.gold_label.is_none() {
            return Err(field("gold_items", format!("item {id} has no gold label to check verdicts against")));
        }
    }
    for (i, p) in spec.practice.iter().enumerate() {
        exists(p.item, &format!("practice[{i}].item"))?;
        if pool.contains(&p.item) {
            return Err(field(&format!("practice[{i}].item"), format!("item {} is also a study item", p.item)));
        }
    }
    let available = pool.iter().filter(|i| !spec.gold_items.contains(i)).count() + spec.gold_items.len();
    if available < spec.items_per_participant {
        return Err(field(
            "items_per_participant",
            format!(
                "{} items per participant, but the item set and the gold items hold {available}",
                spec.items_per_participant
            ),
        ));
    }
    Ok(pool)
}

/// Validates a study file, resolves its items and registers it: a new study, a new version (the newest version is
/// frozen and the file changed), a replaced draft, or unchanged. The version stored names items by key
/// ([`keyed`]): a file written with database ids is migrated, and the study's file and sha are the same in every
/// database holding its items.
pub fn register(store: &mut Store, spec: &StudySpec) -> Result<(Study, RegisterOutcome)> {
    spec.validate()?;
    let mut resolved = spec.clone();
    resolve_keys(store, &mut resolved)?;
    let pool = resolve_items(store, &resolved)?;
    let stored = keyed(store, &resolved)?;
    let (row, outcome) = store.register_study(&stored.name, &stored.canonical_json(), &stored.sha256(), &pool)?;
    Ok((Study::from_row_in(store, row)?, outcome))
}

/// Version `version` of study `name` (default: the newest).
pub fn load(store: &Store, name: &str, version: Option<u32>) -> Result<Study> {
    let row = store.study_row(name, version)?.ok_or_else(|| StudyError::NoStudy { name: name.to_owned(), version })?;
    Study::from_row_in(store, row)
}

/// Turns the item keys of a study file (`items.keys`, `gold_keys`, `practice[].key`) into this database's ids, as
/// the rest of Argus reads a study; the keys are cleared. An unknown key is an error naming the field.
pub fn resolve_keys(store: &Store, spec: &mut StudySpec) -> Result<()> {
    let id_of = |key: &str, field: &str| -> Result<ItemId> {
        store.item_id_by_key(key)?.ok_or_else(|| StudyError::Field {
            field: field.to_owned(),
            message: format!("item {key} is not in the database (import its dataset first)"),
        })
    };
    for key in std::mem::take(&mut spec.items.keys) {
        let id = id_of(&key, "items.keys")?;
        spec.items.ids.push(id);
    }
    for key in std::mem::take(&mut spec.gold_keys) {
        let id = id_of(&key, "gold_keys")?;
        spec.gold_items.push(id);
    }
    for (i, p) in spec.practice.iter_mut().enumerate() {
        if let Some(key) = p.key.take() {
            p.item = id_of(&key, &format!("practice[{i}].key"))?;
        }
    }
    Ok(())
}

/// The study file with its item keys turned into this database's ids ([`resolve_keys`]).
pub fn resolved_spec(store: &Store, spec: &StudySpec) -> Result<StudySpec> {
    let mut out = spec.clone();
    resolve_keys(store, &mut out)?;
    Ok(out)
}

/// The study file naming every item by its stable key instead of this database's id (what is stored and
/// exported).
pub fn keyed(store: &Store, spec: &StudySpec) -> Result<StudySpec> {
    let keys = store.item_keys()?;
    let key_of = |id: ItemId, field: &str| -> Result<String> {
        keys.get(&id).filter(|k| !k.is_empty()).cloned().ok_or_else(|| StudyError::Field {
            field: field.to_owned(),
            message: format!("item {id} is not in the database"),
        })
    };
    let mut out = spec.clone();
    for id in std::mem::take(&mut out.items.ids) {
        out.items.keys.push(key_of(id, "items.ids")?);
    }
    for id in std::mem::take(&mut out.gold_items) {
        out.gold_keys.push(key_of(id, "gold_items")?);
    }
    for (i, p) in out.practice.iter_mut().enumerate() {
        if p.item > 0 {
            p.key = Some(key_of(p.item, &format!("practice[{i}].item"))?);
            p.item = 0;
        }
    }
    Ok(out)
}

/// Every version of study `name`, oldest first.
pub fn versions(store: &Store, name: &str) -> Result<Vec<Study>> {
    let rows: Vec<StudyRow> = store.study_rows()?.into_iter().filter(|r| r.name == name).collect();
    if rows.is_empty() {
        return Err(StudyError::NoStudy { name: name.to_owned(), version: None });
    }
    rows.into_iter().map(|row| Study::from_row_in(store, row)).collect()
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, synced, then renamed over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let fail = |e: std::io::Error| StudyError::Write { path: path.to_owned(), message: e.to_string() };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(fail)
}
