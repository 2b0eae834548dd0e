//! Judgement bundles, after Prodigy's `db-out` / `db-in`: everything people did in a database (judgements and
//! adjudications, feedback forms, rationale revisions they wrote or had repaired, reviews, and undos) as rows that
//! name items by their stable key and each other by a content identity, and the merge of such rows into another
//! database.
//!
//! The merge is idempotent (a row whose identity the database has is skipped), overwrites nothing (rows are added;
//! an undo travels as a retraction row; a feedback form, autosaved in place, takes the newer save of the same
//! form), keeps disagreements between annotators as they are (agreement and adjudication read them after the
//! merge), reports rows about items the database does not have, and happens in one transaction.
//!
//! The file format (JSON Lines) is `ingest::bundle`'s; this module knows rows only.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rusqlite::params;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::{Result, Store, StoreError};

/// One row of a bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BundleRow {
    Rationale(BundleRationale),
    Judgement(BundleJudgement),
    Feedback(BundleFeedback),
    Review(BundleReview),
    Retraction(BundleRetraction),
}

/// A rationale revision: a first revision, or a correction of `parent` (an earlier row's or the database's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundleRationale {
    /// Content identity ([`BundleRow::identity`]).
    pub id: String,
    pub item_key: String,
    pub perspective: String,
    pub origin: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub prompt: Option<String>,
    pub text: String,
    #[serde(default)]
    pub verdict: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    /// The identity of the revision this one corrects.
    #[serde(default)]
    pub parent: Option<String>,
    pub created_at: String,
}

/// A judgement of an item (an adjudication when `adjudicated`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundleJudgement {
    pub id: String,
    pub item_key: String,
    pub annotator: String,
    pub verdict: String,
    #[serde(default)]
    pub confidence: Option<f64>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub time_spent_ms: i64,
    #[serde(default)]
    pub adjudicated: bool,
    pub created_at: String,
}

/// A feedback form on a rationale revision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundleFeedback {
    pub id: String,
    /// The identity of the rationale revision judged.
    pub rationale: String,
    pub annotator: String,
    pub format: String,
    #[serde(default)]
    pub usefulness: Option<String>,
    #[serde(default)]
    pub sufficiency: Option<i64>,
    #[serde(default)]
    pub faithfulness: Option<i64>,
    #[serde(default)]
    pub agrees_verdict: Option<i64>,
    #[serde(default)]
    pub fb_where: Option<String>,
    #[serde(default)]
    pub fb_what: Option<String>,
    #[serde(default)]
    pub fb_fix: Option<String>,
    #[serde(default)]
    pub ease: Option<i64>,
    #[serde(default)]
    pub understanding: Option<i64>,
    #[serde(default)]
    pub trust: Option<i64>,
    #[serde(default)]
    pub time_spent_ms: i64,
    pub created_at: String,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// A fact-checker's review.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundleReview {
    pub id: String,
    pub item_key: String,
    pub reviewer: String,
    pub scale: String,
    pub rating: String,
    pub rating_value: i64,
    pub best_rating: i64,
    pub worst_rating: i64,
    #[serde(default)]
    pub verdict: Option<String>,
    #[serde(default)]
    pub explanation: String,
    #[serde(default)]
    pub evidence: Vec<String>,
    pub created_at: String,
}

/// An undo: the row with identity `of` was retracted at `at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundleRetraction {
    pub of: String,
    pub at: String,
}

fn identity(kind: &str, fields: serde_json::Value) -> String {
    let digest = Sha256::digest(format!("{kind}\u{1f}{fields}").as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{kind}:{hex}")
}

impl BundleRationale {
    /// What makes two revisions the same: item, perspective, origin, model, text and the revision corrected (not
    /// when or in which database it was stored, so an imported rationale is the same in every database).
    pub fn identity(&self) -> String {
        identity("rationale", json!([self.item_key, self.perspective, self.origin, self.model, self.text, self.parent]))
    }
}

impl BundleJudgement {
    pub fn identity(&self) -> String {
        identity(
            "judgement",
            json!([
                self.item_key,
                self.annotator,
                self.verdict,
                self.confidence,
                self.note,
                self.time_spent_ms,
                self.adjudicated,
                self.created_at
            ]),
        )
    }
}

impl BundleFeedback {
    /// A form is autosaved in place, so its identity is where and when it was started, not what it says.
    pub fn identity(&self) -> String {
        identity("feedback", json!([self.rationale, self.annotator, self.format, self.created_at]))
    }
}

impl BundleReview {
    pub fn identity(&self) -> String {
        identity(
            "review",
            json!([
                self.item_key,
                self.reviewer,
                self.scale,
                self.rating,
                self.explanation,
                self.evidence,
                self.created_at
            ]),
        )
    }
}

impl BundleRow {
    /// The row's identity as its content gives it (`None` for a retraction, which names another row).
    pub fn identity(&self) -> Option<String> {
        match self {
            Self::Rationale(r) => Some(r.identity()),
            Self::Judgement(j) => Some(j.identity()),
            Self::Feedback(f) => Some(f.identity()),
            Self::Review(r) => Some(r.identity()),
            Self::Retraction(_) => None,
        }
    }

    /// The identity the row claims (`id`), for checking against [`Self::identity`].
    pub fn claimed_id(&self) -> Option<&str> {
        match self {
            Self::Rationale(r) => Some(&r.id),
            Self::Judgement(j) => Some(&j.id),
            Self::Feedback(f) => Some(&f.id),
            Self::Review(r) => Some(&r.id),
            Self::Retraction(_) => None,
        }
    }

    /// The kind, as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rationale(_) => "rationale",
            Self::Judgement(_) => "judgement",
            Self::Feedback(_) => "feedback",
            Self::Review(_) => "review",
            Self::Retraction(_) => "retraction",
        }
    }
}

/// What a merge did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MergeReport {
    /// Rows added, by kind.
    pub added: BTreeMap<String, usize>,
    /// Rows the database already had, by kind.
    pub already_present: BTreeMap<String, usize>,
    /// Feedback forms the bundle had a newer save of.
    pub updated_forms: usize,
    /// Undos applied.
    pub retracted: usize,
    /// Rows skipped because their item is not in this database.
    pub skipped_rows: usize,
    /// The keys of those items.
    pub missing_items: BTreeSet<String>,
}

impl MergeReport {
    /// Rows added, all kinds.
    pub fn total_added(&self) -> usize {
        self.added.values().sum()
    }

    /// True when the merge changed nothing.
    pub fn changed_nothing(&self) -> bool {
        self.total_added() == 0 && self.updated_forms == 0 && self.retracted == 0
    }
}

impl std::fmt::Display for MergeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |m: &BTreeMap<String, usize>| {
            if m.is_empty() {
                "none".to_string()
            } else {
                m.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
            }
        };
        writeln!(f, "added: {}", list(&self.added))?;
        writeln!(f, "already present: {}", list(&self.already_present))?;
        if self.updated_forms > 0 {
            writeln!(f, "feedback forms brought up to a newer save: {}", self.updated_forms)?;
        }
        if self.retracted > 0 {
            writeln!(f, "undos applied: {}", self.retracted)?;
        }
        if !self.missing_items.is_empty() {
            let shown: Vec<&str> = self.missing_items.iter().take(10).map(String::as_str).collect();
            writeln!(
                f,
                "skipped {} rows about {} items this database does not have (import their dataset first): {}{}",
                self.skipped_rows,
                self.missing_items.len(),
                shown.join(", "),
                if self.missing_items.len() > shown.len() { ", ..." } else { "" }
            )?;
        }
        Ok(())
    }
}

/// A row of this database with its local id and, when it was undone, when.
struct Local<T> {
    id: i64,
    row: T,
    retracted: Option<String>,
}

/// A rationale revision of this database: its local id, chain root and parent, and its bundle row (identities set).
struct LocalRationale {
    id: i64,
    root: i64,
    parent: Option<i64>,
    row: BundleRationale,
    retracted: Option<String>,
}

/// Where a local rationale revision sits: its id and its chain's root.
#[derive(Clone, Copy)]
struct ChainPlace {
    id: i64,
    root: i64,
}

/// Everything people did in this database as bundle rows with their identities, beside their local ids: what
/// [`Store::bundle_rows`] writes and what [`Store::merge_bundle`] compares against.
struct LocalRows {
    /// In id order (a parent always has a smaller id than its child).
    rationales: Vec<LocalRationale>,
    /// With the local id of the revision each form is on.
    feedback: Vec<(i64, Local<BundleFeedback>)>,
    judgements: Vec<Local<BundleJudgement>>,
    reviews: Vec<Local<BundleReview>>,
}

impl Store {
    fn local_rows(&self) -> Result<LocalRows> {
        let sql = |e| self.err(e);
        let mut rationales: Vec<LocalRationale> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT r.id, COALESCE(r.root_id, r.id), r.parent_id, COALESCE(i.item_key, ''), r.perspective, \
                     r.origin, r.model, r.prompt, r.text, r.verdict, a.name, r.created_at, r.retracted_at \
                     FROM rationales r JOIN items i ON i.id = r.item_id LEFT JOIN annotators a ON a.id = r.author_id \
                     ORDER BY r.id",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(LocalRationale {
                        id: r.get(0)?,
                        root: r.get(1)?,
                        parent: r.get(2)?,
                        row: BundleRationale {
                            id: String::new(),
                            item_key: r.get(3)?,
                            perspective: r.get(4)?,
                            origin: r.get(5)?,
                            model: r.get(6)?,
                            prompt: r.get(7)?,
                            text: r.get(8)?,
                            verdict: r.get(9)?,
                            author: r.get(10)?,
                            parent: None,
                            created_at: r.get(11)?,
                        },
                        retracted: r.get(12)?,
                    })
                })
                .map_err(sql)?;
            rows.collect::<rusqlite::Result<_>>().map_err(sql)?
        };
        let mut identities: HashMap<i64, String> = HashMap::with_capacity(rationales.len());
        for r in &mut rationales {
            r.row.parent = r.parent.and_then(|p| identities.get(&p).cloned());
            r.row.id = r.row.identity();
            identities.insert(r.id, r.row.id.clone());
        }
        let feedback = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT f.id, f.rationale_id, a.name, f.format, f.usefulness, f.sufficiency, f.faithfulness, \
                     f.agrees_verdict, f.fb_where, f.fb_what, f.fb_fix, f.ease, f.understanding, f.trust, \
                     f.time_spent_ms, f.created_at, f.updated_at, f.retracted_at \
                     FROM rationale_feedback f JOIN annotators a ON a.id = f.annotator_id ORDER BY f.id",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map([], |r| {
                    let rationale: i64 = r.get(1)?;
                    let mut row = BundleFeedback {
                        id: String::new(),
                        rationale: identities.get(&rationale).cloned().unwrap_or_default(),
                        annotator: r.get(2)?,
                        format: r.get(3)?,
                        usefulness: r.get(4)?,
                        sufficiency: r.get(5)?,
                        faithfulness: r.get(6)?,
                        agrees_verdict: r.get(7)?,
                        fb_where: r.get(8)?,
                        fb_what: r.get(9)?,
                        fb_fix: r.get(10)?,
                        ease: r.get(11)?,
                        understanding: r.get(12)?,
                        trust: r.get(13)?,
                        time_spent_ms: r.get(14)?,
                        created_at: r.get(15)?,
                        updated_at: r.get(16)?,
                    };
                    row.id = row.identity();
                    Ok((rationale, Local { id: r.get(0)?, row, retracted: r.get(17)? }))
                })
                .map_err(sql)?;
            rows.collect::<rusqlite::Result<_>>().map_err(sql)?
        };
        let judgements = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT j.id, COALESCE(i.item_key, ''), a.name, j.verdict, j.confidence, j.note, \
                     j.time_spent_ms, j.adjudicated, j.created_at, j.retracted_at FROM judgements j \
                     JOIN items i ON i.id = j.item_id JOIN annotators a ON a.id = j.annotator_id ORDER BY j.id",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map([], |r| {
                    let mut row = BundleJudgement {
                        id: String::new(),
                        item_key: r.get(1)?,
                        annotator: r.get(2)?,
                        verdict: r.get(3)?,
                        confidence: r.get(4)?,
                        note: r.get(5)?,
                        time_spent_ms: r.get(6)?,
                        adjudicated: r.get::<_, i64>(7)? != 0,
                        created_at: r.get(8)?,
                    };
                    row.id = row.identity();
                    Ok(Local { id: r.get(0)?, row, retracted: r.get(9)? })
                })
                .map_err(sql)?;
            rows.collect::<rusqlite::Result<_>>().map_err(sql)?
        };
        let reviews = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT r.id, COALESCE(i.item_key, ''), a.name, r.scale, r.rating, r.rating_value, \
                     r.best_rating, r.worst_rating, r.verdict, r.explanation, r.evidence, r.created_at, \
                     r.retracted_at FROM reviews r JOIN items i ON i.id = r.item_id \
                     JOIN annotators a ON a.id = r.annotator_id ORDER BY r.id",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map([], |r| {
                    let evidence: String = r.get(10)?;
                    let mut row = BundleReview {
                        id: String::new(),
                        item_key: r.get(1)?,
                        reviewer: r.get(2)?,
                        scale: r.get(3)?,
                        rating: r.get(4)?,
                        rating_value: r.get(5)?,
                        best_rating: r.get(6)?,
                        worst_rating: r.get(7)?,
                        verdict: r.get(8)?,
                        explanation: r.get(9)?,
                        evidence: serde_json::from_str(&evidence).unwrap_or_default(),
                        created_at: r.get(11)?,
                    };
                    row.id = row.identity();
                    Ok(Local { id: r.get(0)?, row, retracted: r.get(12)? })
                })
                .map_err(sql)?;
            rows.collect::<rusqlite::Result<_>>().map_err(sql)?
        };
        Ok(LocalRows { rationales, feedback, judgements, reviews })
    }

    /// Every row a bundle of this database holds, in an order a merge can follow (a revision after the one it
    /// corrects, a form after its revision, undos last). Rationales travel when people or repairs wrote them, or
    /// when feedback or a correction refers to them; imported and generated ones otherwise stay home.
    pub fn bundle_rows(&self) -> Result<Vec<BundleRow>> {
        let local = self.local_rows()?;
        let mut out = Vec::new();
        let mut retractions = Vec::new();
        let mut undone = |id: &str, retracted: Option<String>| {
            if let Some(at) = retracted {
                retractions.push(BundleRetraction { of: id.to_owned(), at });
            }
        };
        let parents: HashMap<i64, i64> = local.rationales.iter().filter_map(|r| Some((r.id, r.parent?))).collect();
        let mut needed: BTreeSet<i64> = local
            .rationales
            .iter()
            .filter(|r| r.row.origin == "human" || r.row.origin == "repaired" || r.parent.is_some())
            .map(|r| r.id)
            .collect();
        needed.extend(local.feedback.iter().map(|(rationale, _)| *rationale));
        for id in needed.clone() {
            let mut at = id;
            while let Some(&p) = parents.get(&at) {
                needed.insert(p);
                at = p;
            }
        }
        for r in local.rationales.into_iter().filter(|r| needed.contains(&r.id)) {
            undone(&r.row.id, r.retracted);
            out.push(BundleRow::Rationale(r.row));
        }
        for (_, f) in local.feedback {
            undone(&f.row.id, f.retracted);
            out.push(BundleRow::Feedback(f.row));
        }
        for j in local.judgements {
            undone(&j.row.id, j.retracted);
            out.push(BundleRow::Judgement(j.row));
        }
        for r in local.reviews {
            undone(&r.row.id, r.retracted);
            out.push(BundleRow::Review(r.row));
        }
        out.extend(retractions.into_iter().map(BundleRow::Retraction));
        Ok(out)
    }

    /// Merges bundle rows into this database in one transaction (all or nothing); see the module documentation.
    ///
    /// A row whose claimed identity is not its content's, or that refers to a row neither earlier in `rows` nor in
    /// the database, is an error naming its index in `rows`; nothing is written then.
    pub fn merge_bundle(&mut self, rows: &[BundleRow], cancelled: &dyn Fn() -> bool) -> Result<MergeReport> {
        // What the database has, by identity.
        let local = self.local_rows()?;
        let mut rationales: HashMap<String, ChainPlace> =
            local.rationales.into_iter().map(|r| (r.row.id, ChainPlace { id: r.id, root: r.root })).collect();
        let mut judgements: HashMap<String, i64> = local.judgements.into_iter().map(|j| (j.row.id, j.id)).collect();
        let mut forms: HashMap<String, (i64, Option<String>)> =
            local.feedback.into_iter().map(|(_, f)| (f.row.id, (f.id, f.row.updated_at))).collect();
        let mut reviews: HashMap<String, i64> = local.reviews.into_iter().map(|r| (r.row.id, r.id)).collect();
        let items: HashMap<String, i64> = self.item_keys()?.into_iter().map(|(id, key)| (key, id)).collect();

        let path = self.path.clone();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        let mut annotators: HashMap<String, i64> = HashMap::new();
        let mut annotator = |name: &str| -> Result<i64> {
            if let Some(&id) = annotators.get(name) {
                return Ok(id);
            }
            tx.execute("INSERT OR IGNORE INTO annotators(name) VALUES (?1)", [name]).map_err(err)?;
            let id = tx.query_row("SELECT id FROM annotators WHERE name = ?1", [name], |r| r.get(0)).map_err(err)?;
            annotators.insert(name.to_string(), id);
            Ok(id)
        };
        let mut report = MergeReport::default();
        // Revision chains that got a merged revision: renumbered by time at the end.
        let mut grown_chains: BTreeSet<i64> = BTreeSet::new();
        // Rows skipped with their item, so that rows referring to them are skipped too.
        let mut skipped: BTreeSet<String> = BTreeSet::new();
        let bad = |row: usize, reason: String| StoreError::BundleRow { row, reason };
        for (i, row) in rows.iter().enumerate() {
            if i % 512 == 0 && cancelled() {
                return Err(crate::jobs::Cancelled.into());
            }
            if let (Some(claimed), Some(actual)) = (row.claimed_id(), row.identity())
                && claimed != actual
            {
                return Err(bad(
                    i,
                    format!("the row's id {claimed} is not its content's ({actual}); was it edited by hand?"),
                ));
            }
            let kind = row.kind().to_string();
            let skip = |report: &mut MergeReport, skipped: &mut BTreeSet<String>, key: &str, id: &str| {
                report.skipped_rows += 1;
                report.missing_items.insert(key.to_string());
                skipped.insert(id.to_string());
            };
            match row {
                BundleRow::Rationale(r) => {
                    if rationales.contains_key(&r.id) {
                        *report.already_present.entry(kind).or_default() += 1;
                        continue;
                    }
                    let Some(&item) = items.get(&r.item_key) else {
                        skip(&mut report, &mut skipped, &r.item_key, &r.id);
                        continue;
                    };
                    let parent = match &r.parent {
                        None => None,
                        Some(p) => match rationales.get(p) {
                            Some(local) => Some(*local),
                            None if skipped.contains(p) => {
                                skip(&mut report, &mut skipped, &r.item_key, &r.id);
                                continue;
                            }
                            None => {
                                return Err(bad(
                                    i,
                                    format!(
                                        "it corrects {p}, which is neither earlier in the bundle nor in the database"
                                    ),
                                ));
                            }
                        },
                    };
                    let author = r.author.as_deref().map(&mut annotator).transpose()?;
                    match parent {
                        None => {
                            tx.execute(
                                "INSERT INTO rationales(item_id, perspective, origin, model, prompt, text, verdict, \
                                 author_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                                params![
                                    item,
                                    r.perspective,
                                    r.origin,
                                    r.model,
                                    r.prompt,
                                    r.text,
                                    r.verdict,
                                    author,
                                    r.created_at
                                ],
                            )
                            .map_err(err)?;
                            let id = tx.last_insert_rowid();
                            rationales.insert(r.id.clone(), ChainPlace { id, root: id });
                        }
                        Some(p) => {
                            // A second correction of the same revision (two people corrected it) goes after the
                            // chain's newest: nothing is overwritten.
                            let revision: i64 = tx
                                .query_row(
                                    "SELECT COALESCE(MAX(revision), 0) + 1 FROM rationales WHERE root_id = ?1",
                                    [p.root],
                                    |x| x.get(0),
                                )
                                .map_err(err)?;
                            tx.execute(
                                "INSERT INTO rationales(item_id, root_id, parent_id, revision, perspective, origin, \
                                 model, prompt, text, verdict, author_id, created_at) \
                                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                                params![
                                    item,
                                    p.root,
                                    p.id,
                                    revision,
                                    r.perspective,
                                    r.origin,
                                    r.model,
                                    r.prompt,
                                    r.text,
                                    r.verdict,
                                    author,
                                    r.created_at
                                ],
                            )
                            .map_err(err)?;
                            let id = tx.last_insert_rowid();
                            rationales.insert(r.id.clone(), ChainPlace { id, root: p.root });
                            grown_chains.insert(p.root);
                        }
                    }
                    *report.added.entry(kind).or_default() += 1;
                }
                BundleRow::Judgement(j) => {
                    if judgements.contains_key(&j.id) {
                        *report.already_present.entry(kind).or_default() += 1;
                        continue;
                    }
                    let Some(&item) = items.get(&j.item_key) else {
                        skip(&mut report, &mut skipped, &j.item_key, &j.id);
                        continue;
                    };
                    let who = annotator(&j.annotator)?;
                    tx.execute(
                        "INSERT INTO judgements(item_id, annotator_id, verdict, confidence, note, time_spent_ms, \
                         adjudicated, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        params![
                            item,
                            who,
                            j.verdict,
                            j.confidence,
                            j.note,
                            j.time_spent_ms,
                            j.adjudicated,
                            j.created_at
                        ],
                    )
                    .map_err(err)?;
                    judgements.insert(j.id.clone(), tx.last_insert_rowid());
                    *report.added.entry(kind).or_default() += 1;
                }
                BundleRow::Feedback(f) => {
                    let Some(rationale) = rationales.get(&f.rationale).copied() else {
                        if skipped.contains(&f.rationale) {
                            report.skipped_rows += 1;
                            skipped.insert(f.id.clone());
                            continue;
                        }
                        return Err(bad(
                            i,
                            format!(
                                "its rationale {} is neither earlier in the bundle nor in the database",
                                f.rationale
                            ),
                        ));
                    };
                    if let Some((local, updated)) = forms.get(&f.id).cloned() {
                        if f.updated_at.is_some() && f.updated_at > updated {
                            tx.execute(
                                "UPDATE rationale_feedback SET usefulness = ?2, sufficiency = ?3, faithfulness = ?4, \
                                 agrees_verdict = ?5, fb_where = ?6, fb_what = ?7, fb_fix = ?8, ease = ?9, \
                                 understanding = ?10, trust = ?11, time_spent_ms = ?12, updated_at = ?13 WHERE id = ?1",
                                params![
                                    local,
                                    f.usefulness,
                                    f.sufficiency,
                                    f.faithfulness,
                                    f.agrees_verdict,
                                    f.fb_where,
                                    f.fb_what,
                                    f.fb_fix,
                                    f.ease,
                                    f.understanding,
                                    f.trust,
                                    f.time_spent_ms,
                                    f.updated_at
                                ],
                            )
                            .map_err(err)?;
                            forms.insert(f.id.clone(), (local, f.updated_at.clone()));
                            report.updated_forms += 1;
                        } else {
                            *report.already_present.entry(kind).or_default() += 1;
                        }
                        continue;
                    }
                    let who = annotator(&f.annotator)?;
                    tx.execute(
                        "INSERT INTO rationale_feedback(rationale_id, annotator_id, format, usefulness, sufficiency, \
                         faithfulness, agrees_verdict, fb_where, fb_what, fb_fix, ease, understanding, trust, \
                         time_spent_ms, created_at, updated_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                        params![
                            rationale.id,
                            who,
                            f.format,
                            f.usefulness,
                            f.sufficiency,
                            f.faithfulness,
                            f.agrees_verdict,
                            f.fb_where,
                            f.fb_what,
                            f.fb_fix,
                            f.ease,
                            f.understanding,
                            f.trust,
                            f.time_spent_ms,
                            f.created_at,
                            f.updated_at
                        ],
                    )
                    .map_err(err)?;
                    forms.insert(f.id.clone(), (tx.last_insert_rowid(), f.updated_at.clone()));
                    *report.added.entry(kind).or_default() += 1;
                }
                BundleRow::Review(r) => {
                    if reviews.contains_key(&r.id) {
                        *report.already_present.entry(kind).or_default() += 1;
                        continue;
                    }
                    let Some(&item) = items.get(&r.item_key) else {
                        skip(&mut report, &mut skipped, &r.item_key, &r.id);
                        continue;
                    };
                    let who = annotator(&r.reviewer)?;
                    let evidence = serde_json::to_string(&r.evidence).unwrap_or_else(|_| "[]".into());
                    tx.execute(
                        "INSERT INTO reviews(item_id, annotator_id, scale, rating, rating_value, best_rating, \
                         worst_rating, verdict, explanation, evidence, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                        params![
                            item,
                            who,
                            r.scale,
                            r.rating,
                            r.rating_value,
                            r.best_rating,
                            r.worst_rating,
                            r.verdict,
                            r.explanation,
                            evidence,
                            r.created_at
                        ],
                    )
                    .map_err(err)?;
                    reviews.insert(r.id.clone(), tx.last_insert_rowid());
                    *report.added.entry(kind).or_default() += 1;
                }
                BundleRow::Retraction(x) => {
                    let target = match x.of.split_once(':').map(|(k, _)| k) {
                        Some("rationale") => rationales.get(&x.of).map(|r| ("rationales", r.id)),
                        Some("judgement") => judgements.get(&x.of).map(|&id| ("judgements", id)),
                        Some("feedback") => forms.get(&x.of).map(|(id, _)| ("rationale_feedback", *id)),
                        Some("review") => reviews.get(&x.of).map(|&id| ("reviews", id)),
                        _ => return Err(bad(i, format!("'{}' names no kind of row", x.of))),
                    };
                    let Some((table, id)) = target else {
                        if skipped.contains(&x.of) {
                            report.skipped_rows += 1;
                            continue;
                        }
                        return Err(bad(
                            i,
                            format!("it undoes {}, which is neither earlier in the bundle nor in the database", x.of),
                        ));
                    };
                    let n = tx
                        .execute(
                            &format!("UPDATE {table} SET retracted_at = ?2 WHERE id = ?1 AND retracted_at IS NULL"),
                            params![id, x.at],
                        )
                        .map_err(err)?;
                    report.retracted += n;
                }
            }
        }
        // Two people who corrected the same revision made two revisions after it; number a chain's revisions by
        // when they were made (then text), so that merging in any order gives the same chains and the same newest
        // revision.
        for root in grown_chains {
            let order: Vec<i64> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT id FROM rationales WHERE root_id = ?1 ORDER BY revision = 1 DESC, created_at, text",
                    )
                    .map_err(err)?;
                stmt.query_map([root], |r| r.get(0)).map_err(err)?.collect::<rusqlite::Result<_>>().map_err(err)?
            };
            tx.execute("UPDATE rationales SET revision = -revision WHERE root_id = ?1", [root]).map_err(err)?;
            for (n, id) in order.iter().enumerate() {
                tx.execute("UPDATE rationales SET revision = ?2 WHERE id = ?1", params![id, n as i64 + 1])
                    .map_err(err)?;
            }
        }
        if cancelled() {
            return Err(crate::jobs::Cancelled.into());
        }
        tx.commit().map_err(err)?;
        Ok(report)
    }
}
