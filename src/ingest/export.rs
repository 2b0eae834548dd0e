//! Exporters: write every item of a store, with its latest rationales and people's judgements merged in, as ARG
//! JSON (train/val/test files that ARG and ARG-D read), JSON Lines or flat CSV.
//!
//! Human judgements never overwrite the source's labels: every row keeps the gold label and the label as the
//! source wrote it, and adds `human_verdict` (adjudicated verdict, else the majority; a tie gives none),
//! `n_judgements` and a final `label` (the human verdict when it is real or fake, else the gold label).
//!
//! Every file is written to a temporary file in the same folder and renamed into place, so a failed export never
//! leaves half a file. This module reads the store only through [`Store::export_rows`]; it knows nothing of the UI
//! or of jobs.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::normalize_split;
use crate::domain::{Rationale, Verdict, resolve_verdicts};
use crate::store::formats::FeedbackExportRow;
use crate::store::{ExportRow, Store, StoreError};

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// ARG's `train.json`, `val.json`, `test.json` in an output folder.
    ArgJson,
    /// One JSON object per item, with everything Argus knows of it.
    Jsonl,
    /// One flat row per item.
    Csv,
    /// Each item's standing review as schema.org ClaimReview JSON-LD (see [`super::claimreview`]).
    ClaimReview,
}

crate::domain::named_enum!(ExportFormat, "export format", {
    ArgJson => "arg-json",
    Jsonl => "jsonl",
    Csv => "csv",
    ClaimReview => "claimreview",
});

/// Errors of [`export`]. Nothing is left half-written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing an output file (or folder) failed.
    #[error("{}: {reason}", .path.display())]
    Write { path: PathBuf, reason: String },
}

impl ExportError {
    fn write(path: &Path, reason: impl fmt::Display) -> Self {
        Self::Write { path: path.to_path_buf(), reason: reason.to_string() }
    }
}

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportSummary {
    /// Items written (over all files).
    pub items: usize,
    /// Items left out: ARG JSON needs a label, so items with neither a human verdict nor a gold label are skipped.
    pub skipped: usize,
    /// The files written, in order.
    pub files: Vec<PathBuf>,
}

/// Writes every item of `store` to `out`: a folder for [`ExportFormat::ArgJson`] (created if needed; `train.json`,
/// `val.json` and `test.json` are replaced), a file for the others.
///
/// ARG JSON puts an item in its own split when it is train/val/test (`valid`, `validation`, `dev` count as val);
/// any other item goes by its id: `id % 20` in 0..=13 -> train, 14..=16 -> val, 17..=19 -> test (70/15/15), so the
/// assignment is the same on every export.
///
/// Feedback on rationales (every form, with its format, the rationale's revision chain and the outcome of its
/// newest repair) goes into each item's `feedback` list in JSONL, and into a second file beside the CSV,
/// `NAME.feedback.csv`, one row per form.
pub fn export(store: &Store, format: ExportFormat, out: &Path) -> Result<ExportSummary, ExportError> {
    export_with(store, format, out, &super::claimreview::ClaimReviewOptions::default())
}

/// [`export`], with the publishing options ClaimReview needs.
pub fn export_with(
    store: &Store,
    format: ExportFormat,
    out: &Path,
    claimreview: &super::claimreview::ClaimReviewOptions,
) -> Result<ExportSummary, ExportError> {
    if format == ExportFormat::ClaimReview {
        return super::claimreview::export_claimreview(store, claimreview, out);
    }
    let rows = store.export_rows()?;
    let feedback = store.feedback_export_rows()?;
    match format {
        ExportFormat::ArgJson => export_arg_json(&rows, out),
        ExportFormat::Jsonl => export_jsonl(&rows, &feedback, out),
        ExportFormat::Csv => {
            let feedback_path = feedback_csv_path(out);
            let tmp = write_temp(&feedback_path, |w| write_feedback_csv(&feedback, w))?;
            let mut summary = match export_csv(&rows, out) {
                Ok(s) => s,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            };
            commit(&tmp, &feedback_path)?;
            summary.files.push(feedback_path);
            Ok(summary)
        }
        ExportFormat::ClaimReview => unreachable!("handled above"),
    }
}

/// `NAME.feedback.csv` beside `NAME.csv`.
pub fn feedback_csv_path(out: &Path) -> PathBuf {
    let stem = out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "export".into());
    out.with_file_name(format!("{stem}.feedback.csv"))
}

/// The columns of the feedback CSV, in order (the JSONL's `feedback` objects have the same keys).
const FEEDBACK_COLUMNS: &[&str] = &[
    "feedback_id",
    "annotator",
    "item_id",
    "external_id",
    "perspective",
    "format",
    "rationale_id",
    "revision",
    "revision_chain",
    "rationale_origin",
    "usefulness",
    "sufficiency",
    "faithfulness",
    "agrees_verdict",
    "fb_where",
    "fb_what",
    "fb_fix",
    "ease",
    "understanding",
    "trust",
    "time_spent_ms",
    "created_at",
    "repaired_rationale_id",
    "repair_verdict_before",
    "repair_verdict_after",
    "repair_reference",
    "repair_right_before",
    "repair_right_after",
    "repair_locality",
    "repair_success",
];

fn write_feedback_csv(rows: &[FeedbackExportRow], w: &mut BufWriter<File>) -> std::io::Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    csv.write_record(FEEDBACK_COLUMNS)?;
    for row in rows {
        let value = serde_json::to_value(row).map_err(std::io::Error::other)?;
        let record: Vec<String> = FEEDBACK_COLUMNS
            .iter()
            .map(|c| match &value[*c] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Array(ids) => ids.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" "),
                other => other.to_string(),
            })
            .collect();
        csv.write_record(&record)?;
    }
    csv.flush()
}

/// A row's merged labels.
struct Labels {
    human: Option<Verdict>,
    n_judgements: usize,
    /// The human verdict when real or fake, else the gold label.
    label: Option<Verdict>,
}

fn labels(row: &ExportRow) -> Labels {
    let human = resolve_verdicts(&row.judgements);
    let label = human.filter(|v| *v != Verdict::Other).or(row.item.gold_label);
    Labels { human, n_judgements: row.judgements.len(), label }
}

fn verdict_value(v: Option<Verdict>) -> Value {
    v.map_or(Value::Null, |v| Value::String(v.as_str().to_string()))
}

/// The split an item is exported under in ARG JSON.
fn arg_split(row: &ExportRow) -> &'static str {
    if let Some(s) = row.item.split.as_deref().and_then(normalize_split) {
        return s;
    }
    match row.item.id.rem_euclid(20) {
        0..=13 => "train",
        14..=16 => "val",
        _ => "test",
    }
}

/// The first (lowest-root) latest rationale of each perspective, by perspective.
fn by_perspective(rationales: &[Rationale]) -> Vec<&Rationale> {
    let mut seen = BTreeSet::new();
    let mut out: Vec<&Rationale> = Vec::new();
    let mut sorted: Vec<&Rationale> = rationales.iter().collect();
    sorted.sort_by(|a, b| a.perspective.cmp(&b.perspective).then(a.root_id.cmp(&b.root_id)));
    for r in sorted {
        if seen.insert(r.perspective.as_str()) {
            out.push(r);
        }
    }
    out
}

fn export_arg_json(rows: &[ExportRow], dir: &Path) -> Result<ExportSummary, ExportError> {
    std::fs::create_dir_all(dir).map_err(|e| ExportError::write(dir, format!("cannot create the folder: {e}")))?;
    let mut splits: [(&str, Vec<Value>); 3] = [("train", Vec::new()), ("val", Vec::new()), ("test", Vec::new())];
    let mut summary = ExportSummary::default();
    for row in rows {
        let l = labels(row);
        let Some(label) = l.label else {
            summary.skipped += 1;
            continue;
        };
        let split = arg_split(row);
        let item = &row.item;
        let mut o = Map::new();
        o.insert("content".into(), Value::String(item.text.clone()));
        o.insert("label".into(), Value::from(label.arg_code()));
        o.insert("time".into(), item.published.clone().map_or(Value::Null, Value::String));
        // ARG's loader reads `source_id` into an integer tensor, so it is Argus's item id; the source's own id and
        // every other original field travel beside it.
        o.insert("source_id".into(), Value::from(item.id));
        o.insert("external_id".into(), item.external_id.clone().map_or(Value::Null, Value::String));
        o.insert("item_key".into(), Value::String(item.key.clone()));
        o.insert("metadata".into(), item.metadata.clone());
        for r in by_perspective(&row.rationales) {
            let p = &r.perspective;
            o.insert(format!("{p}_rationale"), Value::String(r.text.clone()));
            if let Some(pred) = r.verdict {
                o.insert(format!("{p}_pred"), Value::from(pred.arg_code()));
                o.insert(format!("{p}_acc"), Value::from(u8::from(pred == label)));
            }
        }
        o.insert("split".into(), Value::String(split.to_string()));
        o.insert("gold_label".into(), verdict_value(item.gold_label));
        o.insert("original_label".into(), item.original_label.clone().map_or(Value::Null, Value::String));
        o.insert("human_verdict".into(), verdict_value(l.human));
        o.insert("n_judgements".into(), Value::from(l.n_judgements));
        if let Some((_, list)) = splits.iter_mut().find(|(s, _)| *s == split) {
            list.push(Value::Object(o));
        }
        summary.items += 1;
    }
    // Write every file to a temporary first; rename only when all three are complete.
    let mut pending = Vec::new();
    for (split, list) in &splits {
        let path = dir.join(format!("{split}.json"));
        let result = write_temp(&path, |w| {
            serde_json::to_writer_pretty(&mut *w, list).map_err(std::io::Error::other)?;
            w.write_all(b"\n")
        });
        match result {
            Ok(tmp) => pending.push((tmp, path)),
            Err(e) => {
                for (tmp, _) in &pending {
                    let _ = std::fs::remove_file(tmp);
                }
                return Err(e);
            }
        }
    }
    for (tmp, path) in pending {
        commit(&tmp, &path)?;
        summary.files.push(path);
    }
    Ok(summary)
}

fn rationale_json(r: &Rationale) -> Value {
    json!({
        "id": r.id,
        "root_id": r.root_id,
        "revision": r.revision,
        "perspective": r.perspective,
        "origin": r.origin.as_str(),
        "model": r.model,
        "prompt": r.prompt,
        "text": r.text,
        "verdict": verdict_value(r.verdict),
        "author": r.author,
        "created_at": r.created_at,
    })
}

fn export_jsonl(rows: &[ExportRow], feedback: &[FeedbackExportRow], out: &Path) -> Result<ExportSummary, ExportError> {
    let mut by_item: std::collections::HashMap<i64, Vec<&FeedbackExportRow>> = std::collections::HashMap::new();
    for f in feedback {
        by_item.entry(f.item_id).or_default().push(f);
    }
    let tmp = write_temp(out, |w| {
        for row in rows {
            let item_feedback = by_item.get(&row.item.id).map(Vec::as_slice).unwrap_or_default();
            let l = labels(row);
            let item = &row.item;
            let judgements: Vec<Value> = row
                .judgements
                .iter()
                .map(|j| {
                    json!({
                        "annotator": j.annotator,
                        "verdict": j.verdict.as_str(),
                        "confidence": j.confidence,
                        "note": j.note,
                        "time_spent_ms": j.time_spent_ms,
                        "adjudicated": j.adjudicated,
                        "created_at": j.created_at,
                    })
                })
                .collect();
            let o = json!({
                "id": item.id,
                "item_key": item.key,
                "dataset": row.dataset,
                "dataset_id": item.dataset_id,
                "external_id": item.external_id,
                "title": item.title,
                "text": item.text,
                "source": item.source,
                "published": item.published,
                "split": item.split,
                "gold_label": verdict_value(item.gold_label),
                "original_label": item.original_label,
                "metadata": item.metadata,
                "rationales": row.rationales.iter().map(rationale_json).collect::<Vec<_>>(),
                "judgements": judgements,
                "human_verdict": verdict_value(l.human),
                "n_judgements": l.n_judgements,
                "label": verdict_value(l.label),
                "feedback": item_feedback,
            });
            serde_json::to_writer(&mut *w, &o).map_err(std::io::Error::other)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    commit(&tmp, out)?;
    Ok(ExportSummary { items: rows.len(), skipped: 0, files: vec![out.to_path_buf()] })
}

fn export_csv(rows: &[ExportRow], out: &Path) -> Result<ExportSummary, ExportError> {
    let perspectives: BTreeSet<&str> =
        rows.iter().flat_map(|r| r.rationales.iter().map(|r| r.perspective.as_str())).collect();
    let tmp = write_temp(out, |w| {
        let mut csv = csv::Writer::from_writer(w);
        let mut header: Vec<String> = [
            "id",
            "item_key",
            "dataset",
            "external_id",
            "title",
            "text",
            "source",
            "published",
            "split",
            "gold_label",
            "original_label",
            "human_verdict",
            "n_judgements",
            "label",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for p in &perspectives {
            header.push(format!("rationale:{p}"));
            header.push(format!("verdict:{p}"));
        }
        header.push("metadata".into());
        csv.write_record(&header)?;
        for row in rows {
            let l = labels(row);
            let item = &row.item;
            let opt = |v: &Option<String>| v.clone().unwrap_or_default();
            let verdict = |v: Option<Verdict>| v.map(|v| v.as_str().to_string()).unwrap_or_default();
            let mut record = vec![
                item.id.to_string(),
                item.key.clone(),
                row.dataset.clone(),
                opt(&item.external_id),
                opt(&item.title),
                item.text.clone(),
                opt(&item.source),
                opt(&item.published),
                opt(&item.split),
                verdict(item.gold_label),
                opt(&item.original_label),
                verdict(l.human),
                l.n_judgements.to_string(),
                verdict(l.label),
            ];
            let chosen = by_perspective(&row.rationales);
            for p in &perspectives {
                let r = chosen.iter().find(|r| r.perspective == *p);
                record.push(r.map(|r| r.text.clone()).unwrap_or_default());
                record.push(verdict(r.and_then(|r| r.verdict)));
            }
            record.push(item.metadata.to_string());
            csv.write_record(&record)?;
        }
        csv.flush()
    })?;
    commit(&tmp, out)?;
    Ok(ExportSummary { items: rows.len(), skipped: 0, files: vec![out.to_path_buf()] })
}

/// Writes `fill`'s output to a hidden temporary file next to `path` and syncs it; returns the temporary's path.
/// On failure the temporary is removed.
pub(super) fn write_temp(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<PathBuf, ExportError> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(name) = path.file_name() else {
        return Err(ExportError::write(path, "not a file name"));
    };
    if path.is_dir() {
        return Err(ExportError::write(path, "is a folder; give a file name"));
    }
    std::fs::create_dir_all(parent)
        .map_err(|e| ExportError::write(parent, format!("cannot create the folder: {e}")))?;
    let tmp = parent.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = File::create(&tmp).and_then(|f| {
        let mut w = BufWriter::new(f);
        fill(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()
    });
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(ExportError::write(path, format!("cannot write: {e}")))
        }
    }
}

/// Renames a finished temporary file into place.
pub(super) fn commit(tmp: &Path, path: &Path) -> Result<(), ExportError> {
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        ExportError::write(path, format!("cannot move the finished file into place: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Item, Judgement};

    fn row(id: i64, split: Option<&str>, gold: Option<Verdict>, verdicts: &[(Verdict, bool)]) -> ExportRow {
        ExportRow {
            item: Item {
                id,
                key: format!("id:{id}"),
                dataset_id: 1,
                external_id: None,
                title: None,
                text: "t".into(),
                source: None,
                published: None,
                gold_label: gold,
                original_label: None,
                split: split.map(str::to_string),
                metadata: Value::Object(Map::new()),
            },
            dataset: "d".into(),
            rationales: Vec::new(),
            judgements: verdicts
                .iter()
                .enumerate()
                .map(|(i, &(verdict, adjudicated))| Judgement {
                    id: i as i64,
                    item_id: id,
                    annotator: format!("a{i}"),
                    verdict,
                    confidence: None,
                    note: None,
                    time_spent_ms: 0,
                    adjudicated,
                    created_at: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn final_label_prefers_a_real_or_fake_human_verdict() {
        use Verdict::*;
        let l = labels(&row(1, None, Some(Real), &[(Fake, false)]));
        assert_eq!((l.human, l.label, l.n_judgements), (Some(Fake), Some(Fake), 1));
        let l = labels(&row(1, None, Some(Real), &[(Other, false)]));
        assert_eq!((l.human, l.label), (Some(Other), Some(Real)));
        let l = labels(&row(1, None, Some(Real), &[(Fake, false), (Real, false)]));
        assert_eq!((l.human, l.label), (None, Some(Real)));
        let l = labels(&row(1, None, None, &[]));
        assert_eq!((l.human, l.label), (None, None));
        let l = labels(&row(1, None, None, &[(Fake, false), (Fake, false), (Real, true)]));
        assert_eq!(l.label, Some(Real));
    }

    #[test]
    fn splits_are_kept_or_assigned_by_id() {
        assert_eq!(arg_split(&row(3, Some("valid"), None, &[])), "val");
        assert_eq!(arg_split(&row(3, Some("test"), None, &[])), "test");
        let counts = (0..2000).fold([0; 3], |mut c, id| {
            let i = ["train", "val", "test"].iter().position(|s| *s == arg_split(&row(id, None, None, &[])));
            c[i.unwrap_or_default()] += 1;
            c
        });
        assert_eq!(counts, [1400, 300, 300]);
    }

    #[test]
    fn export_formats_parse() {
        for f in ExportFormat::ALL {
            assert_eq!(f.as_str().parse::<ExportFormat>(), Ok(f));
        }
        assert!("xml".parse::<ExportFormat>().is_err());
    }
}
