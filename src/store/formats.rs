//! What explanation formats read and write: renderings of a rationale revision in a structured format (generated
//! once per revision, format, model and prompt), the feedback forms (one autosaved row per revision, format and
//! annotator), and repairs of rationales from feedback with their scores.
//!
//! Rows hold JSON values; `formats` gives them their types.

use rusqlite::{OptionalExtension, params};

use super::{
    FEEDBACK_FORM_COLUMNS, FEEDBACK_FORM_PARAMS, Result, Store, StoreError, feedback_values, validate_feedback,
};
use crate::domain::{AnnotatorId, NewFeedback, RationaleId, Usefulness, Verdict};

/// A structured format the LLM wrote from one rationale revision.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRendering {
    pub id: i64,
    pub rationale_id: RationaleId,
    pub format: String,
    pub model: String,
    pub prompt_key: String,
    /// `ok`, or `fallback` when the model's answer did not parse twice (then shown as free text).
    pub status: String,
    /// The parsed JSON shape (`ok` only).
    pub content: Option<serde_json::Value>,
    pub raw_answers: Vec<String>,
    pub notice: Option<String>,
    /// Every quote with its span in the news, or null spans when unsupported.
    pub quotes: serde_json::Value,
    pub unsupported_quotes: u32,
    pub seconds_taken: Option<f64>,
    pub created_at: String,
}

/// A rendering about to be stored.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRendering {
    pub rationale_id: RationaleId,
    pub format: String,
    pub model: String,
    pub prompt_key: String,
    pub prompt: String,
    pub ok: bool,
    pub content: Option<serde_json::Value>,
    pub raw_answers: Vec<String>,
    pub notice: Option<String>,
    pub quotes: serde_json::Value,
    pub unsupported_quotes: u32,
    pub seconds_taken: f64,
}

/// A stored feedback form.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedbackRow {
    pub id: i64,
    pub annotator: String,
    pub form: NewFeedback,
    pub created_at: String,
    pub updated_at: Option<String>,
}

/// A repair about to be stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewRepair {
    pub feedback_id: i64,
    pub source_rationale_id: RationaleId,
    pub repaired_rationale_id: RationaleId,
    pub format: String,
    pub model: String,
    pub prompt: String,
    pub verdict_before: Option<Verdict>,
    pub verdict_after: Option<Verdict>,
    pub reference_label: Option<Verdict>,
    /// `human` (people's verdict) or `gold`.
    pub reference_source: Option<String>,
    pub right_before: Option<bool>,
    pub right_after: Option<bool>,
    pub locality: Option<f64>,
    pub changed_words: Option<u32>,
    pub success: Option<bool>,
    pub model_version_id: Option<i64>,
    pub p_fake_before: Option<f64>,
    pub p_fake_after: Option<f64>,
    pub seconds_taken: f64,
}

/// A stored repair.
#[derive(Clone, Debug, PartialEq)]
pub struct RepairRow {
    pub id: i64,
    pub repair: NewRepair,
    pub created_at: String,
}

/// How often feedback given on one format led to a successful repair.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct FormatRepairStats {
    pub format: String,
    /// Feedback forms with written feedback (what is wrong or how to fix it).
    pub feedback: u64,
    pub repairs: u64,
    /// Repairs with a reference label to score against.
    pub scored: u64,
    pub successes: u64,
}

impl FormatRepairStats {
    /// Successful share of the scored repairs.
    pub fn success_rate(&self) -> Option<f64> {
        (self.scored > 0).then(|| self.successes as f64 / self.scored as f64)
    }
}

/// One feedback row for export, with its revision chain and repair outcome.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FeedbackExportRow {
    pub feedback_id: i64,
    pub annotator: String,
    pub item_id: i64,
    pub external_id: Option<String>,
    pub perspective: String,
    pub format: String,
    pub rationale_id: RationaleId,
    pub revision: u32,
    /// Ids of the chain's revisions from the first to the one judged.
    pub revision_chain: Vec<RationaleId>,
    pub rationale_origin: String,
    pub usefulness: Option<String>,
    pub sufficiency: Option<u8>,
    pub faithfulness: Option<u8>,
    pub agrees_verdict: Option<bool>,
    pub fb_where: Option<String>,
    pub fb_what: Option<String>,
    pub fb_fix: Option<String>,
    pub ease: Option<u8>,
    pub understanding: Option<u8>,
    pub trust: Option<u8>,
    pub time_spent_ms: i64,
    pub created_at: String,
    pub repaired_rationale_id: Option<RationaleId>,
    pub repair_verdict_before: Option<String>,
    pub repair_verdict_after: Option<String>,
    pub repair_reference: Option<String>,
    pub repair_right_before: Option<bool>,
    pub repair_right_after: Option<bool>,
    pub repair_locality: Option<f64>,
    pub repair_success: Option<bool>,
}

fn json(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn row_to_rendering(r: &rusqlite::Row) -> rusqlite::Result<StoredRendering> {
    let raw: String = r.get(7)?;
    Ok(StoredRendering {
        id: r.get(0)?,
        rationale_id: r.get(1)?,
        format: r.get(2)?,
        model: r.get(3)?,
        prompt_key: r.get(4)?,
        status: r.get(5)?,
        content: json(r.get(6)?),
        raw_answers: serde_json::from_str(&raw).unwrap_or_default(),
        notice: r.get(8)?,
        quotes: json(r.get(9)?).unwrap_or(serde_json::Value::Array(Vec::new())),
        unsupported_quotes: r.get(10)?,
        seconds_taken: r.get(11)?,
        created_at: r.get(12)?,
    })
}

const RENDERING_COLUMNS: &str = "id, rationale_id, format, model, prompt_key, status, content, raw_answers, notice, \
     quotes, unsupported_quotes, seconds_taken, created_at";

fn row_to_feedback(r: &rusqlite::Row) -> rusqlite::Result<FeedbackRow> {
    let usefulness: Option<String> = r.get(5)?;
    Ok(FeedbackRow {
        id: r.get(0)?,
        annotator: r.get(1)?,
        form: NewFeedback {
            rationale_id: r.get(2)?,
            annotator_id: r.get(3)?,
            format: r.get(4)?,
            usefulness: usefulness.as_deref().and_then(Usefulness::parse),
            sufficiency: r.get(6)?,
            faithfulness: r.get(7)?,
            agrees_verdict: r.get(8)?,
            fb_where: r.get(9)?,
            fb_what: r.get(10)?,
            fb_fix: r.get(11)?,
            ease: r.get(12)?,
            understanding: r.get(13)?,
            trust: r.get(14)?,
            rendering_id: r.get(15)?,
            time_spent_ms: r.get(16)?,
        },
        created_at: r.get(17)?,
        updated_at: r.get(18)?,
    })
}

const FEEDBACK_COLUMNS: &str = "f.id, a.name, f.rationale_id, f.annotator_id, f.format, f.usefulness, f.sufficiency, \
     f.faithfulness, f.agrees_verdict, f.fb_where, f.fb_what, f.fb_fix, f.ease, f.understanding, f.trust, \
     f.rendering_id, f.time_spent_ms, f.created_at, f.updated_at";

fn row_to_repair(r: &rusqlite::Row) -> rusqlite::Result<RepairRow> {
    let verdict = |i: usize| -> rusqlite::Result<Option<Verdict>> {
        Ok(r.get::<_, Option<String>>(i)?.as_deref().and_then(Verdict::parse))
    };
    Ok(RepairRow {
        id: r.get(0)?,
        repair: NewRepair {
            feedback_id: r.get(1)?,
            source_rationale_id: r.get(2)?,
            repaired_rationale_id: r.get(3)?,
            format: r.get(4)?,
            model: r.get(5)?,
            prompt: r.get(6)?,
            verdict_before: verdict(7)?,
            verdict_after: verdict(8)?,
            reference_label: verdict(9)?,
            reference_source: r.get(10)?,
            right_before: r.get(11)?,
            right_after: r.get(12)?,
            locality: r.get(13)?,
            changed_words: r.get(14)?,
            success: r.get(15)?,
            model_version_id: r.get(16)?,
            p_fake_before: r.get(17)?,
            p_fake_after: r.get(18)?,
            seconds_taken: r.get::<_, Option<f64>>(19)?.unwrap_or_default(),
        },
        created_at: r.get(20)?,
    })
}

const REPAIR_COLUMNS: &str = "id, feedback_id, source_rationale_id, repaired_rationale_id, format, model, prompt, \
     verdict_before, verdict_after, reference_label, reference_source, right_before, right_after, locality, \
     changed_words, success, model_version_id, p_fake_before, p_fake_after, seconds_taken, created_at";

impl Store {
    /// The rendering of `rationale` in `format` by `model` from the prompt with key `prompt_key`, if generated.
    pub fn rendering(
        &self,
        rationale: RationaleId,
        format: &str,
        model: &str,
        prompt_key: &str,
    ) -> Result<Option<StoredRendering>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {RENDERING_COLUMNS} FROM format_renderings \
                     WHERE rationale_id = ?1 AND format = ?2 AND model = ?3 AND prompt_key = ?4"
                ),
                params![rationale, format, model, prompt_key],
                row_to_rendering,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every stored rendering of rationale revision `rationale`, newest first.
    pub fn renderings(&self, rationale: RationaleId) -> Result<Vec<StoredRendering>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {RENDERING_COLUMNS} FROM format_renderings WHERE rationale_id = ?1 ORDER BY id DESC"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([rationale], row_to_rendering).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Stores a rendering (once per key: an existing one is kept) and returns it as stored.
    pub fn save_rendering(&self, r: &NewRendering) -> Result<StoredRendering> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO format_renderings(rationale_id, format, model, prompt_key, prompt, status, \
                 content, raw_answers, notice, quotes, unsupported_quotes, seconds_taken) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    r.rationale_id,
                    r.format,
                    r.model,
                    r.prompt_key,
                    r.prompt,
                    if r.ok { "ok" } else { "fallback" },
                    r.content.as_ref().map(|c| c.to_string()),
                    serde_json::to_string(&r.raw_answers).unwrap_or_else(|_| "[]".into()),
                    r.notice,
                    r.quotes.to_string(),
                    r.unsupported_quotes,
                    r.seconds_taken
                ],
            )
            .map_err(|e| self.err(e))?;
        self.rendering(r.rationale_id, &r.format, &r.model, &r.prompt_key)?
            .ok_or_else(|| StoreError::Invalid("a rendering just stored cannot be read back".into()))
    }

    /// The standing feedback form of `annotator` on rationale revision `rationale` shown in `format`.
    pub fn feedback_form(
        &self,
        rationale: RationaleId,
        annotator: AnnotatorId,
        format: &str,
    ) -> Result<Option<FeedbackRow>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {FEEDBACK_COLUMNS} FROM rationale_feedback f JOIN annotators a ON a.id = f.annotator_id \
                     WHERE f.rationale_id = ?1 AND f.annotator_id = ?2 AND f.format = ?3 AND f.retracted_at IS NULL \
                     ORDER BY f.id DESC LIMIT 1"
                ),
                params![rationale, annotator, format],
                row_to_feedback,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// A feedback row by id.
    pub fn feedback(&self, id: i64) -> Result<FeedbackRow> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {FEEDBACK_COLUMNS} FROM rationale_feedback f JOIN annotators a ON a.id = f.annotator_id \
                     WHERE f.id = ?1"
                ),
                [id],
                row_to_feedback,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound { what: "feedback", id })
    }

    /// Autosaves a feedback form: updates the annotator's standing form on this revision and format, or starts
    /// one. Committed when this returns; returns the row id.
    pub fn save_feedback_form(&mut self, f: &NewFeedback) -> Result<i64> {
        validate_feedback(f)?;
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM rationale_feedback WHERE rationale_id = ?1 AND annotator_id = ?2 AND format = ?3 \
                 AND retracted_at IS NULL ORDER BY id DESC LIMIT 1",
                params![f.rationale_id, f.annotator_id, f.format],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        let values = feedback_values(f);
        let id = match existing {
            Some(id) => {
                let set: Vec<String> = FEEDBACK_FORM_COLUMNS
                    .split(',')
                    .enumerate()
                    .map(|(i, column)| format!("{} = ?{}", column.trim(), i + 1))
                    .collect();
                tx.execute(
                    &format!(
                        "UPDATE rationale_feedback SET {}, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                         WHERE id = ?{}",
                        set.join(", "),
                        values.len() + 1
                    ),
                    rusqlite::params_from_iter(values.into_iter().chain([rusqlite::types::Value::Integer(id)])),
                )
                .map_err(err)?;
                id
            }
            None => {
                tx.execute(
                    &format!(
                        "INSERT INTO rationale_feedback({FEEDBACK_FORM_COLUMNS}, updated_at) \
                         VALUES ({FEEDBACK_FORM_PARAMS}, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
                    ),
                    rusqlite::params_from_iter(values),
                )
                .map_err(err)?;
                tx.last_insert_rowid()
            }
        };
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// Stores a repair; committed when this returns.
    pub fn add_repair(&self, r: &NewRepair) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO repairs(feedback_id, source_rationale_id, repaired_rationale_id, format, model, prompt, \
                 verdict_before, verdict_after, reference_label, reference_source, right_before, right_after, \
                 locality, changed_words, success, model_version_id, p_fake_before, p_fake_after, seconds_taken) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
                params![
                    r.feedback_id,
                    r.source_rationale_id,
                    r.repaired_rationale_id,
                    r.format,
                    r.model,
                    r.prompt,
                    r.verdict_before.map(Verdict::as_str),
                    r.verdict_after.map(Verdict::as_str),
                    r.reference_label.map(Verdict::as_str),
                    r.reference_source,
                    r.right_before,
                    r.right_after,
                    r.locality,
                    r.changed_words,
                    r.success,
                    r.model_version_id,
                    r.p_fake_before,
                    r.p_fake_after,
                    r.seconds_taken
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Repairs made from feedback row `feedback`, oldest first.
    pub fn repairs_of_feedback(&self, feedback: i64) -> Result<Vec<RepairRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {REPAIR_COLUMNS} FROM repairs WHERE feedback_id = ?1 ORDER BY id"))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([feedback], row_to_repair).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// The repair that produced rationale revision `rationale`, if it was machine-repaired.
    pub fn repair_producing(&self, rationale: RationaleId) -> Result<Option<RepairRow>> {
        self.conn
            .query_row(
                &format!("SELECT {REPAIR_COLUMNS} FROM repairs WHERE repaired_rationale_id = ?1"),
                [rationale],
                row_to_repair,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Per format: written feedback, repairs, scored repairs and successful ones.
    pub fn repair_stats(&self) -> Result<Vec<FormatRepairStats>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT f.format, \
                   COUNT(DISTINCT CASE WHEN trim(coalesce(f.fb_what, '') || coalesce(f.fb_fix, '')) <> '' \
                                       THEN f.id END), \
                   COUNT(r.id), COUNT(r.success), coalesce(SUM(r.success), 0) \
                 FROM rationale_feedback f LEFT JOIN repairs r ON r.feedback_id = f.id \
                 WHERE f.retracted_at IS NULL GROUP BY f.format ORDER BY f.format",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(FormatRepairStats {
                    format: r.get(0)?,
                    feedback: r.get::<_, i64>(1)? as u64,
                    repairs: r.get::<_, i64>(2)? as u64,
                    scored: r.get::<_, i64>(3)? as u64,
                    successes: r.get::<_, i64>(4)? as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Every standing feedback row with its rationale's revision chain and the outcome of its newest repair, in
    /// id order.
    pub fn feedback_export_rows(&self) -> Result<Vec<FeedbackExportRow>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {FEEDBACK_COLUMNS}, r.item_id, i.external_id, r.perspective, r.revision, r.root_id, \
                   r.origin, \
                   (SELECT {REPAIR_COLUMNS_P} FROM repairs p WHERE p.feedback_id = f.id ORDER BY p.id DESC LIMIT 1) \
                 FROM rationale_feedback f JOIN annotators a ON a.id = f.annotator_id \
                 JOIN rationales r ON r.id = f.rationale_id JOIN items i ON i.id = r.item_id \
                 WHERE f.retracted_at IS NULL ORDER BY f.id",
                REPAIR_COLUMNS_P = "p.id"
            ))
            .map_err(|e| self.err(e))?;
        type Raw = (FeedbackRow, i64, Option<String>, String, u32, i64, String, Option<i64>);
        let raw: Vec<Raw> = stmt
            .query_map([], |r| {
                Ok((
                    row_to_feedback(r)?,
                    r.get(19)?,
                    r.get(20)?,
                    r.get(21)?,
                    r.get(22)?,
                    r.get(23)?,
                    r.get(24)?,
                    r.get(25)?,
                ))
            })
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(raw.len());
        for (fb, item_id, external_id, perspective, revision, root, origin, repair_id) in raw {
            let chain: Vec<RationaleId> =
                self.rationale_revisions(root)?.into_iter().filter(|r| r.revision <= revision).map(|r| r.id).collect();
            let repair = match repair_id {
                Some(id) => self
                    .conn
                    .query_row(&format!("SELECT {REPAIR_COLUMNS} FROM repairs WHERE id = ?1"), [id], row_to_repair)
                    .optional()
                    .map_err(|e| self.err(e))?,
                None => None,
            }
            .map(|r| r.repair);
            let f = fb.form;
            out.push(FeedbackExportRow {
                feedback_id: fb.id,
                annotator: fb.annotator,
                item_id,
                external_id,
                perspective,
                format: f.format,
                rationale_id: f.rationale_id,
                revision,
                revision_chain: chain,
                rationale_origin: origin,
                usefulness: f.usefulness.map(|u| u.as_str().to_owned()),
                sufficiency: f.sufficiency,
                faithfulness: f.faithfulness,
                agrees_verdict: f.agrees_verdict,
                fb_where: f.fb_where,
                fb_what: f.fb_what,
                fb_fix: f.fb_fix,
                ease: f.ease,
                understanding: f.understanding,
                trust: f.trust,
                time_spent_ms: f.time_spent_ms,
                created_at: fb.created_at,
                repaired_rationale_id: repair.as_ref().map(|r| r.repaired_rationale_id),
                repair_verdict_before: repair.as_ref().and_then(|r| r.verdict_before).map(|v| v.as_str().into()),
                repair_verdict_after: repair.as_ref().and_then(|r| r.verdict_after).map(|v| v.as_str().into()),
                repair_reference: repair.as_ref().and_then(|r| r.reference_label).map(|v| v.as_str().into()),
                repair_right_before: repair.as_ref().and_then(|r| r.right_before),
                repair_right_after: repair.as_ref().and_then(|r| r.right_after),
                repair_locality: repair.as_ref().and_then(|r| r.locality),
                repair_success: repair.as_ref().and_then(|r| r.success),
            });
        }
        Ok(out)
    }
}
