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

    /// The identities of the earlier rows this one refers to.
    pub fn references(&self) -> Vec<&str> {
        match self {
            Self::Rationale(r) => r.parent.as_deref().into_iter().collect(),
            Self::Feedback(f) => vec![f.rationale.as_str()],
            Self::Retraction(r) => vec![r.of.as_str()],
            _ => Vec::new(),
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

/// A local rationale as (id, root, parent, its bundle row without identities).
type LocalRationaleRow = (i64, i64, Option<i64>, BundleRationale);

/// A local rationale revision with what a child needs.
#[derive(Clone, Copy)]
struct LocalRationale {
    id: i64,
    root: i64,
}

impl Store {
    /// Every row a bundle of this database holds, in an order a merge can follow (a revision after the one it
    /// corrects, a form after its revision, undos last). Rationales travel when people or repairs wrote them, or
    /// when feedback or a correction refers to them; imported and generated ones otherwise stay home.
    pub fn bundle_rows(&self) -> Result<Vec<BundleRow>> {
        let mut out = Vec::new();
        let mut retractions = Vec::new();
        // Rationales, in id order (a parent always has a smaller id than its child).
        type Row = (i64, Option<i64>, BundleRationale, Option<String>);
        let rationales: Vec<Row> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT r.id, r.parent_id, COALESCE(i.item_key, ''), r.perspective, r.origin, r.model, r.prompt, \
                     r.text, r.verdict, a.name, r.created_at, r.retracted_at FROM rationales r \
                     JOIN items i ON i.id = r.item_id LEFT JOIN annotators a ON a.id = r.author_id ORDER BY r.id",
                )
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        BundleRationale {
                            id: String::new(),
                            item_key: r.get(2)?,
                            perspective: r.get(3)?,
                            origin: r.get(4)?,
                            model: r.get(5)?,
                            prompt: r.get(6)?,
                            text: r.get(7)?,
                            verdict: r.get(8)?,
                            author: r.get(9)?,
                            parent: None,
                            created_at: r.get(10)?,
                        },
                        r.get(11)?,
                    ))
                })
                .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))?
        };
        let mut ids: HashMap<i64, String> = HashMap::with_capacity(rationales.len());
        let mut parents: HashMap<i64, i64> = HashMap::new();
        let mut rows_by_id: Vec<(i64, BundleRationale, Option<String>)> = Vec::with_capacity(rationales.len());
        for (id, parent, mut r, retracted) in rationales {
            r.parent = parent.and_then(|p| ids.get(&p).cloned());
            r.id = r.identity();
            ids.insert(id, r.id.clone());
            if let Some(p) = parent {
                parents.insert(id, p);
            }
            rows_by_id.push((id, r, retracted));
        }
        // Feedback, to know which rationales it needs.
        let feedback: Vec<(i64, BundleFeedback, Option<String>)> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT f.rationale_id, a.name, f.format, f.usefulness, f.sufficiency, f.faithfulness, \
                     f.agrees_verdict, f.fb_where, f.fb_what, f.fb_fix, f.ease, f.understanding, f.trust, \
                     f.time_spent_ms, f.created_at, f.updated_at, f.retracted_at \
                     FROM rationale_feedback f JOIN annotators a ON a.id = f.annotator_id ORDER BY f.id",
                )
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        BundleFeedback {
                            id: String::new(),
                            rationale: String::new(),
                            annotator: r.get(1)?,
                            format: r.get(2)?,
                            usefulness: r.get(3)?,
                            sufficiency: r.get(4)?,
                            faithfulness: r.get(5)?,
                            agrees_verdict: r.get(6)?,
                            fb_where: r.get(7)?,
                            fb_what: r.get(8)?,
                            fb_fix: r.get(9)?,
                            ease: r.get(10)?,
                            understanding: r.get(11)?,
                            trust: r.get(12)?,
                            time_spent_ms: r.get(13)?,
                            created_at: r.get(14)?,
                            updated_at: r.get(15)?,
                        },
                        r.get(16)?,
                    ))
                })
                .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))?
        };
        let mut needed: BTreeSet<i64> = rows_by_id
            .iter()
            .filter(|(_, r, _)| r.origin == "human" || r.origin == "repaired" || r.parent.is_some())
            .map(|(id, _, _)| *id)
            .collect();
        needed.extend(feedback.iter().map(|(rid, _, _)| *rid));
        for id in needed.clone() {
            let mut at = id;
            while let Some(&p) = parents.get(&at) {
                needed.insert(p);
                at = p;
            }
        }
        for (id, r, retracted) in rows_by_id {
            if needed.contains(&id) {
                if let Some(at) = retracted {
                    retractions.push(BundleRetraction { of: r.id.clone(), at });
                }
                out.push(BundleRow::Rationale(r));
            }
        }
        for (rid, mut f, retracted) in feedback {
            f.rationale = ids.get(&rid).cloned().unwrap_or_default();
            f.id = f.identity();
            if let Some(at) = retracted {
                retractions.push(BundleRetraction { of: f.id.clone(), at });
            }
            out.push(BundleRow::Feedback(f));
        }
        // Judgements and adjudications.
        {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT COALESCE(i.item_key, ''), a.name, j.verdict, j.confidence, j.note, j.time_spent_ms, \
                     j.adjudicated, j.created_at, j.retracted_at FROM judgements j \
                     JOIN items i ON i.id = j.item_id JOIN annotators a ON a.id = j.annotator_id ORDER BY j.id",
                )
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        BundleJudgement {
                            id: String::new(),
                            item_key: r.get(0)?,
                            annotator: r.get(1)?,
                            verdict: r.get(2)?,
                            confidence: r.get(3)?,
                            note: r.get(4)?,
                            time_spent_ms: r.get(5)?,
                            adjudicated: r.get::<_, i64>(6)? != 0,
                            created_at: r.get(7)?,
                        },
                        r.get::<_, Option<String>>(8)?,
                    ))
                })
                .map_err(|e| self.err(e))?;
            for row in rows {
                let (mut j, retracted) = row.map_err(|e| self.err(e))?;
                j.id = j.identity();
                if let Some(at) = retracted {
                    retractions.push(BundleRetraction { of: j.id.clone(), at });
                }
                out.push(BundleRow::Judgement(j));
            }
        }
        // Reviews.
        for (review, retracted) in self.review_rows()? {
            if let Some(at) = retracted {
                retractions.push(BundleRetraction { of: review.id.clone(), at });
            }
            out.push(BundleRow::Review(review));
        }
        out.extend(retractions.into_iter().map(BundleRow::Retraction));
        Ok(out)
    }

    fn review_rows(&self) -> Result<Vec<(BundleReview, Option<String>)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT COALESCE(i.item_key, ''), a.name, r.scale, r.rating, r.rating_value, r.best_rating, \
                 r.worst_rating, r.verdict, r.explanation, r.evidence, r.created_at, r.retracted_at FROM reviews r \
                 JOIN items i ON i.id = r.item_id JOIN annotators a ON a.id = r.annotator_id ORDER BY r.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let evidence: String = r.get(9)?;
                Ok((
                    BundleReview {
                        id: String::new(),
                        item_key: r.get(0)?,
                        reviewer: r.get(1)?,
                        scale: r.get(2)?,
                        rating: r.get(3)?,
                        rating_value: r.get(4)?,
                        best_rating: r.get(5)?,
                        worst_rating: r.get(6)?,
                        verdict: r.get(7)?,
                        explanation: r.get(8)?,
                        evidence: serde_json::from_str(&evidence).unwrap_or_default(),
                        created_at: r.get(10)?,
                    },
                    r.get(11)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (mut review, retracted) = row.map_err(|e| self.err(e))?;
            review.id = review.identity();
            out.push((review, retracted));
        }
        Ok(out)
    }

    /// Merges bundle rows into this database in one transaction (all or nothing); see the module documentation.
    ///
    /// A row whose claimed identity is not its content's, or that refers to a row neither earlier in `rows` nor in
    /// the database, is an error naming its index in `rows`; nothing is written then.
    pub fn merge_bundle(&mut self, rows: &[BundleRow], cancelled: &dyn Fn() -> bool) -> Result<MergeReport> {
        // What the database has, by identity (computed the way `bundle_rows` does).
        let mut rationales: HashMap<String, LocalRationale> = HashMap::new();
        {
            let mut by_local: HashMap<i64, String> = HashMap::new();
            for row in self.bundle_rationales_all()? {
                let (id, root, parent, mut r) = row;
                r.parent = parent.and_then(|p| by_local.get(&p).cloned());
                let identity = r.identity();
                by_local.insert(id, identity.clone());
                rationales.insert(identity, LocalRationale { id, root });
            }
        }
        let mut judgements: HashMap<String, i64> = HashMap::new();
        let mut forms: HashMap<String, (i64, Option<String>)> = HashMap::new();
        let mut reviews: HashMap<String, i64> = HashMap::new();
        {
            let local = self.bundle_rows()?;
            // `bundle_rows` leaves out local ids; read them beside, in the same order.
            let judgement_ids = self.ids_in_order("judgements")?;
            let feedback_ids = self.ids_in_order("rationale_feedback")?;
            let review_ids = self.ids_in_order("reviews")?;
            let (mut ji, mut fi, mut ri) =
                (judgement_ids.into_iter(), feedback_ids.into_iter(), review_ids.into_iter());
            for row in local {
                match row {
                    BundleRow::Judgement(j) => {
                        judgements.insert(j.id, ji.next().unwrap_or_default());
                    }
                    BundleRow::Feedback(f) => {
                        forms.insert(f.id, (fi.next().unwrap_or_default(), f.updated_at));
                    }
                    BundleRow::Review(r) => {
                        reviews.insert(r.id, ri.next().unwrap_or_default());
                    }
                    _ => {}
                }
            }
        }
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
                return Err(bad(i, format!("its id {claimed} is not its content's ({actual}); was it edited?")));
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
                            rationales.insert(r.id.clone(), LocalRationale { id, root: id });
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
                            rationales.insert(r.id.clone(), LocalRationale { id, root: p.root });
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

    /// Every rationale as (id, root, parent, bundle row without identities), in id order.
    fn bundle_rationales_all(&self) -> Result<Vec<LocalRationaleRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.id, COALESCE(r.root_id, r.id), r.parent_id, COALESCE(i.item_key, ''), r.perspective, \
                 r.origin, r.model, r.text FROM rationales r JOIN items i ON i.id = r.item_id ORDER BY r.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    BundleRationale {
                        id: String::new(),
                        item_key: r.get(3)?,
                        perspective: r.get(4)?,
                        origin: r.get(5)?,
                        model: r.get(6)?,
                        prompt: None,
                        text: r.get(7)?,
                        verdict: None,
                        author: None,
                        parent: None,
                        created_at: String::new(),
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    fn ids_in_order(&self, table: &str) -> Result<Vec<i64>> {
        let sql = match table {
            "judgements" => {
                "SELECT j.id FROM judgements j JOIN items i ON i.id = j.item_id \
                             JOIN annotators a ON a.id = j.annotator_id ORDER BY j.id"
            }
            "rationale_feedback" => {
                "SELECT f.id FROM rationale_feedback f JOIN annotators a ON a.id = f.annotator_id \
                                     ORDER BY f.id"
            }
            "reviews" => {
                "SELECT r.id FROM reviews r JOIN items i ON i.id = r.item_id \
                          JOIN annotators a ON a.id = r.annotator_id ORDER BY r.id"
            }
            _ => return Err(StoreError::Invalid(format!("no such bundle table {table}"))),
        };
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }
}
