//! What user studies and annotation routing read and write: study versions (the study file as canonical JSON, its
//! sha256, the resolved item set, frozen when the first participant starts), participants, completed steps, every
//! answer with its timing, judgements for agreement and annotator metrics, adjudication, and item assignments.
//!
//! Rows hold JSON text and plain values; `studies` gives them their types. Each participant step (its answers and
//! its completion) is one transaction, committed before the call returns.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError};
use crate::domain::{AnnotatorId, ItemId, JudgementId, Verdict};

/// One stored version of a study.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyRow {
    /// Row id (one per name and version).
    pub id: i64,
    /// The study's name (from its file).
    pub name: String,
    /// 1, 2, ...: a new version is made when a frozen version's file changes.
    pub version: u32,
    /// The study file as canonical JSON.
    pub spec_json: String,
    /// sha256 of `spec_json`.
    pub spec_sha256: String,
    /// The item set resolved from the file's `items` when this version was registered, as a JSON array of ids.
    pub items_json: String,
    /// Set when the first participant started; a frozen version never changes.
    pub frozen_at: Option<String>,
    /// When this version was first registered.
    pub created_at: String,
}

/// What [`Store::register_study`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegisterOutcome {
    /// No study of that name existed: version 1.
    Created,
    /// The newest version was frozen and the file differs: a new version.
    NewVersion,
    /// The newest version was an unfrozen draft and the file differs: the draft was replaced in place.
    ReplacedDraft,
    /// The file is the newest version's (a draft's item set is resolved again).
    Unchanged,
}

/// A participant of one study version.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ParticipantRow {
    /// Row id.
    pub id: i64,
    /// The study version's row id.
    pub study_id: i64,
    /// The study version.
    pub study_version: u32,
    /// 1, 2, ... within the study version: decides the counterbalanced plan.
    pub number: u32,
    /// The code the participant entered (unique per study name).
    pub code: String,
    /// When the participant started.
    pub started_at: String,
    /// When the last step was completed (or consent declined).
    pub finished_at: Option<String>,
    /// The code shown at the end (none when consent was declined).
    pub completion_code: Option<String>,
    /// Declined consent.
    pub withdrawn: bool,
}

/// How long a step took, as the UI measured it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Timing {
    /// From showing the step to the participant's first input.
    pub first_action_ms: i64,
    /// From showing the step to submitting it.
    pub total_ms: i64,
    /// Times the window lost focus while the step was shown.
    pub focus_lost: u32,
}

/// The end of a participant's run, recorded with their last step.
#[derive(Clone, Debug, PartialEq)]
pub struct Finish {
    /// Shown to the participant (none when they declined consent).
    pub completion_code: Option<String>,
    /// Declined consent.
    pub withdrawn: bool,
}

/// One answer, about to be stored or as stored.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct NewStudyResponse {
    /// `consent`, `instructions`, `practice`, `item`, `attention`, `gold` or `questionnaire`.
    pub kind: String,
    /// The item shown (practice, item, gold).
    pub item_id: Option<ItemId>,
    /// The condition's name.
    pub condition: Option<String>,
    /// The format shown.
    pub format: Option<String>,
    /// The perspective of the rationale shown.
    pub perspective: Option<String>,
    /// 0-based position among the participant's items.
    pub position: Option<u32>,
    /// The question's key.
    pub question: String,
    /// The answer as given (empty for an unanswered optional question).
    pub value: String,
    /// The answer as a number, for scales and yes/no.
    pub value_num: Option<f64>,
    /// Whether the answer is right (verdict vs gold label, attention check), when that is known.
    pub correct: Option<bool>,
}

/// A stored answer with who gave it, in which study version, and the step's timing.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StudyResponseRow {
    /// Row id.
    pub id: i64,
    /// The study version.
    pub study_version: u32,
    /// The participant's code.
    pub participant: String,
    /// The participant's number within the study version.
    pub participant_number: u32,
    /// The step's index in the participant's plan.
    pub step: u32,
    /// The answer, as stored.
    #[serde(flatten)]
    pub response: NewStudyResponse,
    /// The step's timing.
    pub timing: Timing,
    /// When it was stored.
    pub created_at: String,
}

/// One standing judgement with what agreement and annotator metrics need.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct JudgementRecord {
    /// The item.
    pub item_id: ItemId,
    /// The annotator's name.
    pub annotator: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Time the annotator spent on the item, as the studio measured it.
    pub time_spent_ms: i64,
    /// When it was recorded, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// An adjudicator's final verdict.
    pub adjudicated: bool,
    /// The item's gold label.
    pub gold_label: Option<Verdict>,
}

/// A repair made from one annotator's feedback form.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AnnotatorRepair {
    /// Who gave the feedback.
    pub annotator: String,
    /// The item of the rationale repaired.
    pub item_id: ItemId,
    /// The format the feedback was given on.
    pub format: String,
    /// Whether the repair succeeded (`None`: it could not be scored).
    pub success: Option<bool>,
}

/// An item whose annotators disagree and that has no adjudicated verdict yet.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Disagreement {
    /// The item.
    pub item_id: ItemId,
    /// Each annotator's standing verdict, by annotator name.
    pub verdicts: Vec<(String, Verdict)>,
}

const STUDY_COLUMNS: &str = "id, name, version, spec_json, spec_sha256, items, frozen_at, created_at";

fn row_to_study(r: &rusqlite::Row) -> rusqlite::Result<StudyRow> {
    Ok(StudyRow {
        id: r.get(0)?,
        name: r.get(1)?,
        version: r.get(2)?,
        spec_json: r.get(3)?,
        spec_sha256: r.get(4)?,
        items_json: r.get(5)?,
        frozen_at: r.get(6)?,
        created_at: r.get(7)?,
    })
}

const PARTICIPANT_COLUMNS: &str = "p.id, p.study_id, s.version, p.number, p.code, p.started_at, p.finished_at, \
     p.completion_code, p.withdrawn";

fn row_to_participant(r: &rusqlite::Row) -> rusqlite::Result<ParticipantRow> {
    Ok(ParticipantRow {
        id: r.get(0)?,
        study_id: r.get(1)?,
        study_version: r.get(2)?,
        number: r.get(3)?,
        code: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        completion_code: r.get(7)?,
        withdrawn: r.get(8)?,
    })
}

impl Store {
    // ---------------------------------------------------------------------------------------------------------
    // Studies

    /// Registers a study file (as canonical JSON with its sha256) and its resolved item set. A new name makes
    /// version 1; a changed file makes a new version when the newest one is frozen, else replaces the draft; the
    /// same file changes nothing (a draft's item set is stored again). Committed when this returns.
    pub fn register_study(
        &mut self,
        name: &str,
        spec_json: &str,
        spec_sha256: &str,
        items: &[ItemId],
    ) -> Result<(StudyRow, RegisterOutcome)> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        let items_json = serde_json::to_string(items).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        let newest: Option<(i64, u32, String, bool)> = tx
            .query_row(
                "SELECT id, version, spec_sha256, frozen_at IS NOT NULL FROM studies WHERE name = ?1 \
                 ORDER BY version DESC LIMIT 1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(err)?;
        let (id, outcome) = match newest {
            None => {
                tx.execute(
                    "INSERT INTO studies(name, version, spec_json, spec_sha256, items) VALUES (?1, 1, ?2, ?3, ?4)",
                    params![name, spec_json, spec_sha256, items_json],
                )
                .map_err(err)?;
                (tx.last_insert_rowid(), RegisterOutcome::Created)
            }
            Some((id, _, sha, true)) if sha == spec_sha256 => (id, RegisterOutcome::Unchanged),
            Some((id, _, sha, false)) => {
                tx.execute(
                    "UPDATE studies SET spec_json = ?1, spec_sha256 = ?2, items = ?3, \
                     updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?4",
                    params![spec_json, spec_sha256, items_json, id],
                )
                .map_err(err)?;
                let outcome =
                    if sha == spec_sha256 { RegisterOutcome::Unchanged } else { RegisterOutcome::ReplacedDraft };
                (id, outcome)
            }
            Some((_, version, _, true)) => {
                tx.execute(
                    "INSERT INTO studies(name, version, spec_json, spec_sha256, items) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![name, version + 1, spec_json, spec_sha256, items_json],
                )
                .map_err(err)?;
                (tx.last_insert_rowid(), RegisterOutcome::NewVersion)
            }
        };
        let row = tx
            .query_row(&format!("SELECT {STUDY_COLUMNS} FROM studies WHERE id = ?1"), [id], row_to_study)
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok((row, outcome))
    }

    /// Version `version` of study `name`, or its newest version.
    pub fn study_row(&self, name: &str, version: Option<u32>) -> Result<Option<StudyRow>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {STUDY_COLUMNS} FROM studies WHERE name = ?1 AND (?2 IS NULL OR version = ?2) \
                     ORDER BY version DESC LIMIT 1"
                ),
                params![name, version],
                row_to_study,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// A study version by row id.
    pub fn study_row_by_id(&self, id: i64) -> Result<StudyRow> {
        self.conn
            .query_row(&format!("SELECT {STUDY_COLUMNS} FROM studies WHERE id = ?1"), [id], row_to_study)
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound { what: "study", id })
    }

    /// Every version of every study, by name then version.
    pub fn study_rows(&self) -> Result<Vec<StudyRow>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {STUDY_COLUMNS} FROM studies ORDER BY name, version"))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], row_to_study).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    // ---------------------------------------------------------------------------------------------------------
    // Participants

    /// The participant with `code` in any version of study `name`.
    pub fn study_participant(&self, name: &str, code: &str) -> Result<Option<ParticipantRow>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {PARTICIPANT_COLUMNS} FROM participants p JOIN studies s ON s.id = p.study_id \
                     WHERE s.name = ?1 AND p.code = ?2"
                ),
                params![name, code],
                row_to_participant,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every participant of every version of study `name`, by version then number.
    pub fn study_participants(&self, name: &str) -> Result<Vec<ParticipantRow>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {PARTICIPANT_COLUMNS} FROM participants p JOIN studies s ON s.id = p.study_id \
                 WHERE s.name = ?1 ORDER BY s.version, p.number"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([name], row_to_participant).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Adds a participant to study version `study_id` with the next free number, and freezes that version (if not
    /// yet frozen), in one transaction. A code already used in any version of the same study is refused.
    pub fn add_study_participant(&mut self, study_id: i64, code: &str) -> Result<ParticipantRow> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        let taken: bool = tx
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM participants p JOIN studies s ON s.id = p.study_id \
                 WHERE p.code = ?2 AND s.name = (SELECT name FROM studies WHERE id = ?1))",
                params![study_id, code],
                |r| r.get(0),
            )
            .map_err(err)?;
        if taken {
            return Err(StoreError::Invalid(format!("participant code `{code}` is already used in this study")));
        }
        tx.execute(
            "INSERT INTO participants(study_id, number, code) \
             VALUES (?1, (SELECT COALESCE(MAX(number), 0) + 1 FROM participants WHERE study_id = ?1), ?2)",
            params![study_id, code],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE studies SET frozen_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1 AND frozen_at IS NULL",
            [study_id],
        )
        .map_err(err)?;
        let row = tx
            .query_row(
                &format!(
                    "SELECT {PARTICIPANT_COLUMNS} FROM participants p JOIN studies s ON s.id = p.study_id \
                     WHERE p.id = ?1"
                ),
                [id],
                row_to_participant,
            )
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(row)
    }

    /// The steps participant `participant` has completed, ascending.
    pub fn completed_study_steps(&self, participant: i64) -> Result<Vec<u32>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT step FROM study_steps WHERE participant_id = ?1 ORDER BY step")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([participant], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Records one completed step of a participant: its answers, its timing and (with `finish`) the end of the run,
    /// in one transaction committed when this returns. A step already completed is refused and nothing is written.
    pub fn complete_study_step(
        &mut self,
        participant: i64,
        step: u32,
        kind: &str,
        timing: Timing,
        responses: &[NewStudyResponse],
        finish: Option<&Finish>,
    ) -> Result<()> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        let version: u32 = tx
            .query_row(
                "SELECT s.version FROM participants p JOIN studies s ON s.id = p.study_id WHERE p.id = ?1",
                [participant],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?
            .ok_or(StoreError::NotFound { what: "participant", id: participant })?;
        let inserted = tx
            .execute(
                "INSERT OR IGNORE INTO study_steps(participant_id, step, kind, time_to_first_action_ms, total_ms, \
                 focus_lost) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    participant,
                    step,
                    kind,
                    timing.first_action_ms.max(0),
                    timing.total_ms.max(0),
                    timing.focus_lost
                ],
            )
            .map_err(err)?;
        if inserted == 0 {
            return Err(StoreError::Invalid(format!(
                "step {step} of participant {participant} is already answered; nothing was written"
            )));
        }
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO study_responses(participant_id, step, kind, item_id, condition, format, perspective, \
                     position, question, value, value_num, correct, time_to_first_action_ms, total_ms, focus_lost, \
                     study_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )
                .map_err(err)?;
            for r in responses {
                insert
                    .execute(params![
                        participant,
                        step,
                        r.kind,
                        r.item_id,
                        r.condition,
                        r.format,
                        r.perspective,
                        r.position,
                        r.question,
                        r.value,
                        r.value_num,
                        r.correct,
                        timing.first_action_ms.max(0),
                        timing.total_ms.max(0),
                        timing.focus_lost,
                        version
                    ])
                    .map_err(err)?;
            }
        }
        if let Some(f) = finish {
            tx.execute(
                "UPDATE participants SET finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), completion_code = ?1, \
                 withdrawn = ?2 WHERE id = ?3",
                params![f.completion_code, f.withdrawn, participant],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(())
    }

    /// Every answer in every version of study `name`, by version, participant number, step and id.
    pub fn study_responses(&self, name: &str) -> Result<Vec<StudyResponseRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.id, r.study_version, p.code, p.number, r.step, r.kind, r.item_id, r.condition, r.format, \
                 r.perspective, r.position, r.question, r.value, r.value_num, r.correct, r.time_to_first_action_ms, \
                 r.total_ms, r.focus_lost, r.created_at \
                 FROM study_responses r JOIN participants p ON p.id = r.participant_id \
                 JOIN studies s ON s.id = p.study_id WHERE s.name = ?1 \
                 ORDER BY s.version, p.number, r.step, r.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([name], |r| {
                Ok(StudyResponseRow {
                    id: r.get(0)?,
                    study_version: r.get(1)?,
                    participant: r.get(2)?,
                    participant_number: r.get(3)?,
                    step: r.get(4)?,
                    response: NewStudyResponse {
                        kind: r.get(5)?,
                        item_id: r.get(6)?,
                        condition: r.get(7)?,
                        format: r.get(8)?,
                        perspective: r.get(9)?,
                        position: r.get(10)?,
                        question: r.get(11)?,
                        value: r.get(12)?,
                        value_num: r.get(13)?,
                        correct: r.get(14)?,
                    },
                    timing: Timing { first_action_ms: r.get(15)?, total_ms: r.get(16)?, focus_lost: r.get(17)? },
                    created_at: r.get(18)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Repairs of the feedback forms written by annotators whose name starts with `annotator_prefix` (a study's
    /// participants), oldest first.
    pub fn repairs_by_annotator_prefix(&self, annotator_prefix: &str) -> Result<Vec<AnnotatorRepair>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT a.name, r.item_id, f.format, p.success FROM repairs p \
                 JOIN rationale_feedback f ON f.id = p.feedback_id JOIN annotators a ON a.id = f.annotator_id \
                 JOIN rationales r ON r.id = f.rationale_id \
                 WHERE f.retracted_at IS NULL AND substr(a.name, 1, length(?1)) = ?1 ORDER BY p.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([annotator_prefix], |r| {
                Ok(AnnotatorRepair { annotator: r.get(0)?, item_id: r.get(1)?, format: r.get(2)?, success: r.get(3)? })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    // ---------------------------------------------------------------------------------------------------------
    // Item sets

    /// Ids of the items that match every given filter, in id order: dataset name, gold label, having a standing
    /// rationale from a perspective; at most `limit`.
    pub fn items_matching(
        &self,
        dataset: Option<&str>,
        label: Option<Verdict>,
        with_rationale_from: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<ItemId>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT i.id FROM items i JOIN datasets d ON d.id = i.dataset_id \
                 WHERE (?1 IS NULL OR d.name = ?1) AND (?2 IS NULL OR i.gold_label = ?2) \
                 AND (?3 IS NULL OR EXISTS(SELECT 1 FROM latest_rationales r WHERE r.item_id = i.id \
                                           AND r.perspective = ?3)) \
                 ORDER BY i.id LIMIT ?4",
            )
            .map_err(|e| self.err(e))?;
        let limit = limit.map_or(-1, |l| l.min(i64::MAX as usize) as i64);
        let rows = stmt
            .query_map(params![dataset, label.map(Verdict::as_str), with_rationale_from, limit], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    // ---------------------------------------------------------------------------------------------------------
    // Judgements for agreement, metrics and adjudication

    /// Every standing judgement with its item's gold label and its time in milliseconds since the Unix epoch, by
    /// annotator then time.
    pub fn judgement_records(&self) -> Result<Vec<JudgementRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT j.item_id, a.name, j.verdict, j.time_spent_ms, \
                 CAST(round((julianday(j.created_at) - 2440587.5) * 86400000.0) AS INTEGER), j.adjudicated, \
                 i.gold_label FROM standing_judgements j JOIN annotators a ON a.id = j.annotator_id \
                 JOIN items i ON i.id = j.item_id ORDER BY a.name, j.created_at, j.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let verdict: String = r.get(2)?;
                let gold: Option<String> = r.get(6)?;
                Ok(JudgementRecord {
                    item_id: r.get(0)?,
                    annotator: r.get(1)?,
                    verdict: Verdict::parse(&verdict).unwrap_or(Verdict::Other),
                    time_spent_ms: r.get(3)?,
                    created_ms: r.get::<_, Option<i64>>(4)?.unwrap_or_default(),
                    adjudicated: r.get::<_, i64>(5)? != 0,
                    gold_label: gold.as_deref().and_then(Verdict::parse),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Records an adjudicator's final verdict on an item (`judgements.adjudicated = 1`); committed when this
    /// returns. It stands beside the annotators' verdicts and overrides them wherever people's verdicts are resolved.
    pub fn adjudicate(
        &self,
        item: ItemId,
        adjudicator: AnnotatorId,
        verdict: Verdict,
        note: Option<&str>,
    ) -> Result<JudgementId> {
        self.item(item)?;
        self.conn
            .execute(
                "INSERT INTO judgements(item_id, annotator_id, verdict, note, adjudicated) VALUES (?1, ?2, ?3, ?4, 1)",
                params![item, adjudicator, verdict.as_str(), note.filter(|n| !n.trim().is_empty())],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Items whose annotators' standing verdicts differ and that have no adjudicated verdict, in id order: what an
    /// adjudication view lists.
    pub fn disagreements(&self) -> Result<Vec<Disagreement>> {
        let mut out: Vec<Disagreement> = Vec::new();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT j.item_id, a.name, j.verdict FROM standing_judgements j \
                 JOIN annotators a ON a.id = j.annotator_id WHERE j.adjudicated = 0 \
                 AND j.item_id NOT IN (SELECT item_id FROM standing_judgements WHERE adjudicated = 1) \
                 ORDER BY j.item_id, a.name",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, ItemId>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .map_err(|e| self.err(e))?;
        for row in rows {
            let (item, who, verdict) = row.map_err(|e| self.err(e))?;
            let Some(verdict) = Verdict::parse(&verdict) else { continue };
            match out.last_mut() {
                Some(d) if d.item_id == item => d.verdicts.push((who, verdict)),
                _ => out.push(Disagreement { item_id: item, verdicts: vec![(who, verdict)] }),
            }
        }
        out.retain(|d| d.verdicts.iter().any(|(_, v)| *v != d.verdicts[0].1));
        Ok(out)
    }

    // ---------------------------------------------------------------------------------------------------------
    // Assignments (routing)

    /// Stores item assignments `(item, annotator name)`; ones already stored are skipped. Returns how many were
    /// added. One transaction.
    pub fn add_assignments(&mut self, assignments: &[(ItemId, String)]) -> Result<usize> {
        let mut ids = std::collections::HashMap::new();
        for (_, name) in assignments {
            if !ids.contains_key(name) {
                ids.insert(name.clone(), self.annotator_id(name)?);
            }
        }
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(err)?;
        let mut added = 0;
        {
            let mut insert =
                tx.prepare("INSERT OR IGNORE INTO assignments(item_id, annotator_id) VALUES (?1, ?2)").map_err(err)?;
            for (item, name) in assignments {
                added += insert.execute(params![item, ids[name]]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(added)
    }

    /// Every assignment `(item, annotator name)`, by item then annotator.
    pub fn assignments(&self) -> Result<Vec<(ItemId, String)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT s.item_id, a.name FROM assignments s JOIN annotators a ON a.id = s.annotator_id \
                 ORDER BY s.item_id, a.name",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// The items assigned to annotator `name`, in id order.
    pub fn assigned_items(&self, name: &str) -> Result<Vec<ItemId>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT s.item_id FROM assignments s JOIN annotators a ON a.id = s.annotator_id WHERE a.name = ?1 \
                 ORDER BY s.item_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([name], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }
}
