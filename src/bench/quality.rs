//! `argus bench quality`: the guidance models on public data, reported and never tuned on the test split.
//!
//! LIAR2, binarised (pants-fire, false, barely-true = fake; half-true, mostly-true, true = real): the public
//! `valid.csv` is divided into train (85%) and validation (15%) by a hash of each claim, `test.csv` is the test
//! split. Rationales: whatever the database holds (LLM rationales from `argus rationales`, run first by
//! `--writer`), plus the PolitiFact justification with every sentence that names a verdict removed (the importer's
//! `human` perspective). Reported per method: test macro-F1 (and accuracy) as mean and standard deviation over
//! the seeds; for the LLM alone, the macro-F1 of each perspective's own verdicts and of their majority.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::domain::ModelKind;
use crate::domain::Verdict;
use crate::guidance::data::{self, Split};
use crate::guidance::metrics::macro_f1_of_verdicts;
use crate::guidance::train::{TrainOptions, TrainRequest, train};
use crate::jobs::Progress;
use crate::store::Store;

/// What to run.
/// What `argus bench quality` measures; its fields are the command's flags (`clap::Args`, flattened into the CLI).
#[derive(Clone, Debug, clap::Args)]
pub struct QualityOptions {
    /// Folder with LIAR2's valid.csv and test.csv.
    #[arg(long, default_value = "../shared/data/liar2")]
    pub liar2: PathBuf,
    /// Working folder (database, encoder cache, weights, quality.json); reused by a second run.
    #[arg(long, default_value = "target/quality-liar2")]
    pub work: PathBuf,
    #[arg(long, default_value = "0,1,2", value_delimiter = ',')]
    pub seeds: Vec<u64>,
    #[arg(long, default_value = "minilm")]
    pub encoder: String,
    #[arg(long, default_value_t = 50)]
    pub max_epochs: usize,
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Also train ARG in the reference's quirks mode.
    #[arg(long)]
    pub paper_quirks: bool,
    /// At most this many claims from each file.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Methods: bert, arg, argd (adds the routing row), arg-quirks. Runs already in quality.json are kept.
    #[arg(long, default_value = "bert,arg,argd", value_delimiter = ',')]
    pub methods: Vec<String>,
}

/// The method names of the report, by option name.
const METHODS: [(&str, &str); 4] =
    [("bert", "BERT only"), ("arg", "ARG"), ("argd", "ARG-D"), ("arg-quirks", "ARG, paper quirks")];

/// One trained model's test figures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    pub method: String,
    pub seed: u64,
    pub version: i64,
    pub macro_f1: f64,
    pub accuracy: f64,
    pub auc: f64,
    pub epochs: usize,
    pub train_secs: f64,
}

/// The whole report (also written to `quality.json` after every run, so a stopped run keeps what it did).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QualityReport {
    pub train: usize,
    pub val: usize,
    pub test: usize,
    pub perspectives: Vec<String>,
    /// (perspective or "majority", macro-F1, items with a real/fake verdict) of the LLM verdicts alone on test.
    pub llm_alone: Vec<(String, f64, usize)>,
    pub runs: Vec<Run>,
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64 } else { 0.0 };
    (mean, var.sqrt())
}

impl fmt::Display for QualityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "LIAR2 binarised: {} train / {} val / {} test claims; rationale perspectives: {}",
            self.train,
            self.val,
            self.test,
            self.perspectives.join(", ")
        )?;
        writeln!(f, "| method | test macro-F1 (mean ± std) | accuracy (mean) | seeds |")?;
        writeln!(f, "|---|---|---|---|")?;
        if self.llm_alone.is_empty() {
            writeln!(f, "| LLM verdicts alone | n/a: no rationale in the database carries a verdict | | |")?;
        }
        for (p, f1, n) in &self.llm_alone {
            writeln!(f, "| LLM verdicts alone ({p}, {n} test items with a real/fake verdict) | {f1:.4} | | - |")?;
        }
        let mut methods: Vec<&str> = Vec::new();
        for r in &self.runs {
            if !methods.contains(&r.method.as_str()) {
                methods.push(&r.method);
            }
        }
        for m in methods {
            let runs: Vec<&Run> = self.runs.iter().filter(|r| r.method == m).collect();
            let (f1, sd) = mean_std(&runs.iter().map(|r| r.macro_f1).collect::<Vec<_>>());
            let (acc, _) = mean_std(&runs.iter().map(|r| r.accuracy).collect::<Vec<_>>());
            let seeds: Vec<String> = runs.iter().map(|r| r.seed.to_string()).collect();
            writeln!(f, "| {m} | {f1:.4} ± {sd:.4} | {acc:.4} | {} |", seeds.join(","))?;
        }
        Ok(())
    }
}

/// Copies the first `limit` records of a CSV (header kept).
fn head_csv(from: &Path, to: &Path, limit: usize) -> anyhow::Result<()> {
    let mut reader = csv::Reader::from_path(from).with_context(|| from.display().to_string())?;
    let mut writer = csv::Writer::from_path(to).with_context(|| to.display().to_string())?;
    writer.write_record(reader.headers()?)?;
    for rec in reader.records().take(limit) {
        writer.write_record(&rec.with_context(|| from.display().to_string())?)?;
    }
    writer.flush()?;
    Ok(())
}

/// The database of the experiment (imported on first use).
pub fn database(options: &QualityOptions, progress: &dyn Progress) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(&options.work).with_context(|| options.work.display().to_string())?;
    let db = options.work.join("liar2.db");
    let mut store = Store::open(&db)?;
    if store.stats()?.items == 0 {
        let mut files = Vec::new();
        for name in ["valid.csv", "test.csv"] {
            let src = options.liar2.join(name);
            match options.limit {
                Some(n) => {
                    let dst = options.work.join(name);
                    head_csv(&src, &dst, n)?;
                    files.push(dst);
                }
                None => files.push(src),
            }
        }
        crate::ingest::import_files(&mut store, &files, &Default::default(), progress)?;
    }
    Ok(db)
}

/// Trains every method for every seed on the experiment database and reports.
pub fn run(
    options: &QualityOptions,
    progress: &dyn Progress,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<QualityReport> {
    let db = database(options, progress)?;
    let store = Store::open(&db)?;
    let items = store.training_items()?;
    let order: Vec<String> = store.perspectives()?.into_iter().map(|p| p.key).collect();
    let perspectives = data::perspectives_present(&items, &order);
    let (examples, snapshot) = data::build(&items, &perspectives);
    let mut report = QualityReport {
        train: snapshot.train,
        val: snapshot.val,
        test: snapshot.test,
        perspectives: perspectives.clone(),
        ..Default::default()
    };
    // The LLM alone: each perspective's verdicts, and their majority, on the test split.
    let test: Vec<_> =
        items.iter().zip(&examples).filter(|(_, e)| e.split == Split::Test && e.fake.is_some()).collect();
    let mut votes: Vec<Vec<Verdict>> = vec![Vec::new(); test.len()];
    for p in &perspectives {
        let (mut pred, mut gold) = (Vec::new(), Vec::new());
        for (i, (item, e)) in test.iter().enumerate() {
            let verdict = item.rationales.iter().rev().find(|r| &r.perspective == p).and_then(|r| r.verdict);
            if let Some(v @ (Verdict::Real | Verdict::Fake)) = verdict {
                pred.push(v == Verdict::Fake);
                gold.push(e.fake == Some(true));
                votes[i].push(v);
            }
        }
        if !pred.is_empty() {
            report.llm_alone.push((p.clone(), macro_f1_of_verdicts(&pred, &gold), pred.len()));
        }
    }
    if report.llm_alone.len() > 1 {
        let (mut pred, mut gold) = (Vec::new(), Vec::new());
        for (v, (_, e)) in votes.iter().zip(&test) {
            let fake = v.iter().filter(|v| **v == Verdict::Fake).count();
            let real = v.len() - fake;
            if fake != real {
                pred.push(fake > real);
                gold.push(e.fake == Some(true));
            }
        }
        report.llm_alone.push(("majority".into(), macro_f1_of_verdicts(&pred, &gold), pred.len()));
    }
    drop(store);
    let save = |report: &QualityReport| -> anyhow::Result<()> {
        let path = options.work.join("quality.json");
        std::fs::write(&path, serde_json::to_vec_pretty(report)?).with_context(|| path.display().to_string())
    };
    // Resumable: runs already in quality.json (same database) are kept and not trained again.
    if let Ok(text) = std::fs::read_to_string(options.work.join("quality.json"))
        && let Ok(previous) = serde_json::from_str::<QualityReport>(&text)
        && (previous.train, previous.val, previous.test) == (report.train, report.val, report.test)
    {
        report.runs = previous.runs;
    }
    for m in &options.methods {
        if !METHODS.iter().any(|(k, _)| k == m) {
            anyhow::bail!("unknown method {m:?}: use bert, arg, argd, arg-quirks");
        }
    }
    save(&report)?;
    for &seed in &options.seeds {
        let base = TrainOptions {
            seed,
            max_epochs: options.max_epochs,
            patience: options.patience,
            ..TrainOptions::default()
        };
        let plan: Vec<(String, ModelKind, TrainOptions)> = METHODS
            .iter()
            .filter(|(k, _)| options.methods.iter().any(|m| m == k) || (*k == "arg-quirks" && options.paper_quirks))
            .map(|(k, name)| {
                let (kind, o) = match *k {
                    "bert" => (ModelKind::Bert, base.clone()),
                    "arg" => (ModelKind::Arg, base.clone()),
                    "argd" => (ModelKind::Argd, base.clone()),
                    _ => (ModelKind::Arg, TrainOptions { paper_quirks: true, ..base.clone() }),
                };
                (name.to_string(), kind, o)
            })
            .collect();
        let mut arg_version = report.runs.iter().find(|r| r.method == "ARG" && r.seed == seed).map(|r| r.version);
        for (method, kind, train_options) in plan {
            if report.runs.iter().any(|r| r.method == method && r.seed == seed) {
                log(&format!("seed {seed}: {method} already in quality.json"));
                continue;
            }
            let request = TrainRequest {
                encoder: options.encoder.clone(),
                options: train_options,
                teacher: if kind == ModelKind::Argd { arg_version } else { None },
                perspectives: Some(perspectives.clone()),
                ..TrainRequest::new(kind)
            };
            log(&format!("seed {seed}: training {method}"));
            let r = train(&db, &request, progress, &mut |e| {
                log(&format!(
                    "  {method} seed {seed} epoch {:>2}: loss {:.4}, val macro-F1 {:.4}{}",
                    e.epoch,
                    e.train_loss,
                    e.val_macro_f1,
                    if e.best { " (best)" } else { "" }
                ))
            })?;
            if kind == ModelKind::Arg && arg_version.is_none() {
                arg_version = Some(r.version);
            }
            if let (ModelKind::Argd, Some(arg)) = (kind, arg_version) {
                // The paper's cost-aware routing: ARG only on ARG-D's least confident 23%.
                let store = Store::open(&db)?;
                let argd_p: std::collections::HashMap<_, _> =
                    store.predictions(r.version)?.into_iter().map(|(k, p)| (k, p.p_fake)).collect();
                let arg_p: std::collections::HashMap<_, _> =
                    store.predictions(arg)?.into_iter().map(|(k, p)| (k, p.p_fake)).collect();
                let test_ids: Vec<_> = test.iter().map(|(item, e)| (item.id, e.fake == Some(true))).collect();
                let argd_test: std::collections::HashMap<_, _> =
                    test_ids.iter().filter_map(|(id, _)| Some((*id, *argd_p.get(id)?))).collect();
                let mixed = crate::guidance::triage::routed(&argd_test, &arg_p, 0.23);
                let (p, y): (Vec<f64>, Vec<bool>) =
                    test_ids.iter().filter_map(|(id, y)| Some((*mixed.get(id)?, *y))).unzip();
                let m = crate::guidance::metrics::evaluate(&p, &y);
                report.runs.push(Run {
                    method: "ARG-D, ARG on its least confident 23%".into(),
                    seed,
                    version: r.version,
                    macro_f1: m.macro_f1,
                    accuracy: m.accuracy,
                    auc: m.auc,
                    epochs: 0,
                    train_secs: 0.0,
                });
            }
            log(&format!("seed {seed}: {method} version {}: test macro-F1 {:.4}", r.version, r.test.macro_f1));
            report.runs.push(Run {
                method,
                seed,
                version: r.version,
                macro_f1: r.test.macro_f1,
                accuracy: r.test.accuracy,
                auc: r.test.auc,
                epochs: r.epochs.len(),
                train_secs: r.train_secs,
            });
            save(&report)?;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[0.5, 0.7, 0.6]);
        assert!((m - 0.6).abs() < 1e-12 && (s - 0.1).abs() < 1e-12);
        assert_eq!(mean_std(&[0.4]), (0.4, 0.0));
    }
}
