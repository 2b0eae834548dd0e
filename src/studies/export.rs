//! Tidy exports of a study: `responses.csv` and `responses.jsonl` (one row per participant × step × question, with
//! the item, condition, format shown, position, timing and the exclusion flags), `participants.csv` (one row per
//! participant with their questionnaire answers and completion) and `study.toml` (the newest version's file; with
//! several versions also `study-vN.toml` for each). Values are plain numbers and strings (flags are 0/1, missing
//! values empty in CSV and null in JSONL), so `pandas.read_csv` and R's `read.csv` need no options.
//!
//! Every file is written atomically (a temporary file, then a rename).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::analysis::{failed_attention, is_too_fast};
use super::{Result, StudyError, versions, write_atomic};
use crate::store::Store;

/// The columns of `responses.csv`, in order (also the keys of each `responses.jsonl` object).
pub const RESPONSE_COLUMNS: [&str; 22] = [
    "study",
    "study_version",
    "participant",
    "participant_number",
    "step",
    "kind",
    "item",
    "condition",
    "format",
    "perspective",
    "position",
    "question",
    "value",
    "value_num",
    "correct",
    "time_to_first_action_ms",
    "time_ms",
    "focus_lost",
    "attention_failed",
    "too_fast",
    "design",
    "created_at",
];

/// One row of the tidy table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TidyRow {
    /// The study's name.
    pub study: String,
    /// The study version the participant ran.
    pub study_version: u32,
    /// The participant's code.
    pub participant: String,
    /// The participant's number in the version.
    pub participant_number: u32,
    /// The step's index in the participant's run.
    pub step: u32,
    /// consent, practice, item, gold, attention or questionnaire.
    pub kind: String,
    /// The item (practice, item, gold).
    pub item: Option<i64>,
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
    /// The answer (empty when an optional question was not answered).
    pub value: String,
    /// The answer as a number (scales, yes = 1 / no = 0).
    pub value_num: Option<f64>,
    /// 1 when right, 0 when wrong (verdict against the gold label, attention check), empty when not known.
    pub correct: Option<u8>,
    /// Milliseconds to the first action on the step.
    pub time_to_first_action_ms: i64,
    /// Milliseconds on the step.
    pub time_ms: i64,
    /// Times focus was lost on the step.
    pub focus_lost: u32,
    /// 1 when the participant failed any attention check.
    pub attention_failed: u8,
    /// 1 for an item answer faster than the study's minimum time per item.
    pub too_fast: u8,
    /// within or between.
    pub design: String,
    /// When the answer was stored (UTC).
    pub created_at: String,
}

/// What [`export_study`] wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportSummary {
    /// The files written.
    pub files: Vec<PathBuf>,
    /// Rows of the responses table.
    pub responses: usize,
    /// Participants.
    pub participants: usize,
    /// The versions exported.
    pub versions: Vec<u32>,
}

/// The tidy table of every version of study `name`, by version, participant, step and question.
pub fn tidy_rows(store: &Store, name: &str) -> Result<Vec<TidyRow>> {
    let studies = versions(store, name)?;
    let rows = store.study_responses(name)?;
    let failed = failed_attention(&rows);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(study) = studies.iter().find(|s| s.version == r.study_version) else { continue };
        let too_fast = is_too_fast(&study.spec, &r);
        let a = r.response;
        out.push(TidyRow {
            study: study.name.clone(),
            study_version: r.study_version,
            attention_failed: u8::from(failed.contains(&r.participant)),
            participant: r.participant,
            participant_number: r.participant_number,
            step: r.step,
            kind: a.kind,
            item: a.item_id,
            condition: a.condition,
            format: a.format,
            perspective: a.perspective,
            position: a.position,
            question: a.question,
            value: a.value,
            value_num: a.value_num,
            correct: a.correct.map(u8::from),
            time_to_first_action_ms: r.timing.first_action_ms,
            time_ms: r.timing.total_ms,
            focus_lost: r.timing.focus_lost,
            too_fast: u8::from(too_fast),
            design: study.spec.design.as_str().to_owned(),
            created_at: r.created_at,
        });
    }
    Ok(out)
}

fn csv_error(path: &Path, e: impl std::fmt::Display) -> StudyError {
    StudyError::Write { path: path.to_owned(), message: e.to_string() }
}

/// Writes the study's files into `out_dir` (created if missing); see the module documentation.
pub fn export_study(store: &Store, name: &str, out_dir: &Path) -> Result<ExportSummary> {
    let studies = versions(store, name)?;
    std::fs::create_dir_all(out_dir).map_err(|e| csv_error(out_dir, e))?;
    let rows = tidy_rows(store, name)?;
    let mut files = Vec::new();

    let path = out_dir.join("responses.csv");
    let mut csv = csv::Writer::from_writer(Vec::new());
    for row in &rows {
        csv.serialize(row).map_err(|e| csv_error(&path, e))?;
    }
    if rows.is_empty() {
        csv.write_record(RESPONSE_COLUMNS).map_err(|e| csv_error(&path, e))?;
    }
    write_atomic(&path, &csv.into_inner().map_err(|e| csv_error(&path, e))?)?;
    files.push(path);

    let path = out_dir.join("responses.jsonl");
    let mut jsonl = String::new();
    for row in &rows {
        jsonl.push_str(&serde_json::to_string(row).map_err(|e| csv_error(&path, e))?);
        jsonl.push('\n');
    }
    write_atomic(&path, jsonl.as_bytes())?;
    files.push(path);

    let participants = store.study_participants(name)?;
    let path = out_dir.join("participants.csv");
    let keys: Vec<String> = {
        let mut seen = BTreeSet::new();
        studies
            .iter()
            .flat_map(|s| s.spec.questionnaire.iter().map(|q| q.key.clone()))
            .filter(|k| seen.insert(k.clone()))
            .collect()
    };
    let mut csv = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "study",
        "study_version",
        "participant",
        "participant_number",
        "started_at",
        "finished_at",
        "completion_code",
        "withdrawn",
        "condition",
        "items_answered",
        "attention_checks",
        "attention_failed",
        "too_fast_items",
        "verdict_accuracy",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    header.extend(keys.iter().map(|k| format!("q_{k}")));
    csv.write_record(&header).map_err(|e| csv_error(&path, e))?;
    for p in &participants {
        let own: Vec<&TidyRow> = rows.iter().filter(|r| r.participant == p.code).collect();
        let items: BTreeMap<u32, &TidyRow> =
            own.iter().filter(|r| matches!(r.kind.as_str(), "item" | "gold")).map(|r| (r.step, *r)).collect();
        let checks: Vec<&&TidyRow> = own.iter().filter(|r| r.kind == "attention").collect();
        let verdicts: Vec<u8> = own
            .iter()
            .filter(|r| matches!(r.kind.as_str(), "item" | "gold") && r.question == "verdict")
            .filter_map(|r| r.correct)
            .collect();
        let between = studies
            .iter()
            .find(|s| s.version == p.study_version)
            .is_some_and(|s| s.spec.design == super::spec::Design::Between);
        let condition = if between { items.values().find_map(|r| r.condition.clone()) } else { None };
        let opt = |v: Option<String>| v.unwrap_or_default();
        let mut record = vec![
            name.to_owned(),
            p.study_version.to_string(),
            p.code.clone(),
            p.number.to_string(),
            p.started_at.clone(),
            opt(p.finished_at.clone()),
            opt(p.completion_code.clone()),
            u8::from(p.withdrawn).to_string(),
            opt(condition),
            items.len().to_string(),
            checks.len().to_string(),
            checks.iter().filter(|r| r.correct == Some(0)).count().to_string(),
            items.values().filter(|r| r.too_fast == 1).count().to_string(),
            if verdicts.is_empty() {
                String::new()
            } else {
                (verdicts.iter().map(|&v| f64::from(v)).sum::<f64>() / verdicts.len() as f64).to_string()
            },
        ];
        for k in &keys {
            record.push(
                own.iter()
                    .find(|r| r.kind == "questionnaire" && r.question == *k)
                    .map(|r| r.value.clone())
                    .unwrap_or_default(),
            );
        }
        csv.write_record(&record).map_err(|e| csv_error(&path, e))?;
    }
    write_atomic(&path, &csv.into_inner().map_err(|e| csv_error(&path, e))?)?;
    files.push(path);

    if studies.len() > 1 {
        for s in &studies {
            let path = out_dir.join(format!("study-v{}.toml", s.version));
            write_atomic(&path, toml_of(store, s)?.as_bytes())?;
            files.push(path);
        }
    }
    if let Some(newest) = studies.last() {
        let path = out_dir.join("study.toml");
        write_atomic(&path, toml_of(store, newest)?.as_bytes())?;
        files.push(path);
    }
    Ok(ExportSummary {
        files,
        responses: rows.len(),
        participants: participants.len(),
        versions: studies.iter().map(|s| s.version).collect(),
    })
}

/// The study file of a version as stored: items named by key.
fn toml_of(store: &Store, study: &super::Study) -> Result<String> {
    Ok(format!(
        "# Study `{}`, version {} (sha256 of its canonical JSON: {}){}\n{}",
        study.name,
        study.version,
        study.sha256,
        study.frozen_at.as_ref().map(|f| format!(", frozen {f}")).unwrap_or_default(),
        super::keyed(store, &study.spec)?.to_toml()?
    ))
}
