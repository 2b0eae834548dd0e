//! `argus bench quality`: the guidance models on any dataset Argus can import, reported and never tuned on the
//! test split.
//!
//! The data: `--data FILE... [--format F] [--map ...] [--labels ...]` (what `argus import` reads, imported once
//! into the working folder), or an existing `--db`, or by default LIAR2 binarised (pants-fire, false, barely-true
//! = fake; half-true, mostly-true, true = real; its PolitiFact justification, stripped of every sentence that names
//! a verdict, is the `human` rationale). Splits are the data's own (a `valid` file is divided into train and val by
//! a stable hash, over `--group-by`'s field when given; `test` is test). Methods, mean and standard deviation over
//! `--seeds`:
//! - `llm`: each perspective's own verdicts (the LLM alone), and their majority;
//! - `bert`: BERT only (news alone); `arg`: ARG with every perspective; `arg-quirks`: ARG in the reference's
//!   quirks mode; `argd`: ARG-D distilled from the same seed's ARG; `argd-routed`: ARG-D with ARG on its least
//!   confident 23% (the paper's cost-aware routing); `arg-contrastive`: ARG with rejected rationales as
//!   contrastive negatives (`--contrastive-weight`).
//!
//! Each ARG run is also checked for faithfulness (`guidance::faithfulness`) on up to `--faithfulness-items` test
//! items, and the first seed's ARG once more with its gates forced to zero (the control). Every finished run is
//! written to `quality.json` in the working folder at once, so a stopped run resumes where it stopped.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::domain::ModelKind;
use crate::domain::Verdict;
use crate::guidance::data::{self, Split};
use crate::guidance::faithfulness::{FaithfulnessOptions, faithfulness};
use crate::guidance::metrics::evaluate;
use crate::guidance::train::{TrainOptions, TrainRequest, train};
use crate::ingest::{FileFormat, ImportOptions};
use crate::jobs::Progress;
use crate::models::DeviceChoice;
use crate::store::Store;

fn parse_format(s: &str) -> Result<FileFormat, String> {
    s.parse::<FileFormat>().map_err(|e| e.to_string())
}

/// What `argus bench quality` measures; its fields are the command's flags (`clap::Args`, flattened into the CLI).
#[derive(Clone, Debug, clap::Args)]
pub struct QualityOptions {
    /// Dataset files, in any format `argus import` reads (imported once into the working folder). Without --data
    /// or --db: LIAR2's valid.csv and test.csv from --liar2.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Format of the --data files (guessed when left out).
    #[arg(long, value_parser = parse_format)]
    pub format: Option<FileFormat>,
    /// Column map of the --data files, as `argus import --map`.
    #[arg(long)]
    pub map: Option<String>,
    /// Label map of the --data files, as `argus import --labels`.
    #[arg(long)]
    pub labels: Option<String>,
    /// An existing database instead of --data (versions are added to it).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// The dataset's name in the report (default: the first file's name, the database's, or liar2).
    #[arg(long)]
    pub name: Option<String>,
    /// Folder with LIAR2's valid.csv and test.csv (the default dataset).
    #[arg(long, default_value = "../shared/data/liar2")]
    pub liar2: PathBuf,
    /// Working folder (database, encoder cache, weights, quality.json); reused by a second run. Default:
    /// target/quality-NAME.
    #[arg(long)]
    pub work: Option<PathBuf>,
    #[arg(long, default_value = "0,1,2", value_delimiter = ',')]
    pub seeds: Vec<u64>,
    #[arg(long, default_value = "minilm")]
    pub encoder: String,
    #[arg(long, default_value_t = 50)]
    pub max_epochs: usize,
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Early stopping cannot fire before this many epochs.
    #[arg(long, default_value_t = TrainOptions::default().min_epochs)]
    pub min_epochs: usize,
    /// Learning rate of every trained method.
    #[arg(long, default_value_t = TrainOptions::default().lr)]
    pub lr: f64,
    /// Tokens per text.
    #[arg(long, default_value_t = TrainOptions::default().max_len)]
    pub max_len: usize,
    /// Split train / val by this field (e.g. image_id) instead of by text, so one event never straddles them;
    /// `FIELD~REGEX` groups by the part of the value the expression picks (e.g. `image_id~^[^_]+`).
    #[arg(long, value_parser = crate::guidance::data::check_group_key)]
    pub group_by: Option<String>,
    /// Choose each version's decision threshold on the validation split instead of 0.5.
    #[arg(long)]
    pub threshold_from_val: bool,
    /// Weight of the contrastive term of `arg-contrastive`.
    #[arg(long, default_value_t = 0.1)]
    pub contrastive_weight: f64,
    /// Also train ARG in the reference's quirks mode (the same as adding arg-quirks to --methods).
    #[arg(long)]
    pub paper_quirks: bool,
    /// At most this many claims from each LIAR2 file.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Test items each ARG run's faithfulness check reads (0: no check).
    #[arg(long, default_value_t = 300)]
    pub faithfulness_items: usize,
    /// Methods: llm, bert, arg, arg-quirks, argd, argd-routed, arg-contrastive. Runs already in quality.json are
    /// kept.
    #[arg(long, default_value = "llm,bert,arg,argd,argd-routed", value_delimiter = ',')]
    pub methods: Vec<String>,
}

impl QualityOptions {
    /// The dataset's name in the report.
    pub fn dataset_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned());
        match (&self.db, self.data.first()) {
            (Some(db), _) => stem(db).unwrap_or_else(|| "db".into()),
            (None, Some(f)) => stem(f).unwrap_or_else(|| "data".into()),
            (None, None) => "liar2".into(),
        }
    }

    /// The working folder.
    pub fn work_dir(&self) -> PathBuf {
        self.work.clone().unwrap_or_else(|| PathBuf::from(format!("target/quality-{}", self.dataset_name())))
    }
}

/// Method keys (as `--methods` and the JSON name them) and their names in the table.
const METHODS: [(&str, &str); 7] = [
    ("llm", "LLM verdicts alone"),
    ("bert", "BERT only"),
    ("arg", "ARG"),
    ("arg-quirks", "ARG, paper quirks"),
    ("arg-contrastive", "ARG, rejected rationales as contrastive negatives"),
    ("argd", "ARG-D"),
    ("argd-routed", "ARG-D, ARG on its least confident 23%"),
];

fn method_name(key: &str) -> String {
    if let Some(p) = key.strip_prefix("llm-") {
        return format!("LLM verdicts alone ({p})");
    }
    METHODS.iter().find(|(k, _)| *k == key).map(|(_, n)| n.to_string()).unwrap_or_else(|| key.to_owned())
}

/// One method's test figures for one seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    /// The method's key (`bert`, `arg`, ..., `llm-td`, `llm-majority`).
    pub method: String,
    pub seed: u64,
    /// The version trained (`None` for the LLM alone).
    pub version: Option<i64>,
    pub macro_f1: f64,
    pub accuracy: f64,
    pub auc: f64,
    /// Test items scored (the LLM alone: items whose rationale implies real or fake).
    pub n: usize,
    pub epochs: usize,
    pub train_secs: f64,
    /// ARG runs: mean |ΔP(fake)| of the faithfulness check.
    #[serde(default)]
    pub faithfulness: Option<f64>,
}

/// The whole report (also written to `quality.json` after every run, so a stopped run keeps what it did).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QualityReport {
    pub dataset: String,
    pub train: usize,
    pub val: usize,
    pub test: usize,
    /// The field train / val were split by (`None`: each item's text), and the groups in each split.
    #[serde(default)]
    pub group_by: Option<String>,
    #[serde(default)]
    pub groups: [usize; 3],
    pub perspectives: Vec<String>,
    pub runs: Vec<Run>,
    /// The faithfulness score of the first seed's ARG with every gate forced to zero (the control).
    #[serde(default)]
    pub zero_gate_faithfulness: Option<f64>,
    /// Wall seconds spent by this and earlier (resumed) invocations.
    #[serde(default)]
    pub seconds: f64,
}

/// Mean and sample standard deviation.
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64 } else { 0.0 };
    (mean, var.sqrt())
}

impl QualityReport {
    /// Method keys in the order they were first run.
    fn methods(&self) -> Vec<&str> {
        let mut methods: Vec<&str> = Vec::new();
        for r in &self.runs {
            if !methods.contains(&r.method.as_str()) {
                methods.push(&r.method);
            }
        }
        methods
    }

    /// `{"dataset": ..., "methods": {KEY: {"macro_f1_mean", "macro_f1_std", "accuracy_mean", "auc_mean", "seeds",
    /// ...}}, ...}`: what `--json` prints as its last line.
    pub fn summary_json(&self) -> serde_json::Value {
        let mut methods = BTreeMap::new();
        for m in self.methods() {
            let runs: Vec<&Run> = self.runs.iter().filter(|r| r.method == m).collect();
            let (f1, sd) = mean_std(&runs.iter().map(|r| r.macro_f1).collect::<Vec<_>>());
            let (acc, _) = mean_std(&runs.iter().map(|r| r.accuracy).collect::<Vec<_>>());
            let (auc, _) = mean_std(&runs.iter().map(|r| r.auc).collect::<Vec<_>>());
            let (secs, _) = mean_std(&runs.iter().map(|r| r.train_secs).collect::<Vec<_>>());
            let faith: Vec<f64> = runs.iter().filter_map(|r| r.faithfulness).collect();
            let mut entry = serde_json::json!({
                "macro_f1_mean": f1, "macro_f1_std": sd, "accuracy_mean": acc, "auc_mean": auc,
                "seeds": runs.iter().map(|r| r.seed).collect::<Vec<_>>(), "train_secs_mean": secs,
                "test_items": runs.first().map(|r| r.n).unwrap_or(0),
            });
            if !faith.is_empty() {
                entry["faithfulness_mean"] = serde_json::json!(mean_std(&faith).0);
            }
            methods.insert(m.to_owned(), entry);
        }
        serde_json::json!({
            "dataset": self.dataset, "train": self.train, "val": self.val, "test": self.test,
            "group_by": self.group_by, "groups": self.groups, "perspectives": self.perspectives,
            "methods": methods, "zero_gate_faithfulness": self.zero_gate_faithfulness, "seconds": self.seconds,
        })
    }
}

impl fmt::Display for QualityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} train / {} val / {} test items; rationale perspectives: {}",
            self.dataset,
            self.train,
            self.val,
            self.test,
            self.perspectives.join(", ")
        )?;
        if let Some(key) = &self.group_by {
            writeln!(
                f,
                "train / val split by {key}: {} / {} / {} groups in train / val / test",
                self.groups[0], self.groups[1], self.groups[2]
            )?;
        }
        writeln!(
            f,
            "| method | test macro-F1 (mean ± std) | accuracy (mean) | AUC (mean) | faithfulness (mean abs. ΔP(fake)) | seeds |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|")?;
        for m in self.methods() {
            let runs: Vec<&Run> = self.runs.iter().filter(|r| r.method == m).collect();
            let (f1, sd) = mean_std(&runs.iter().map(|r| r.macro_f1).collect::<Vec<_>>());
            let (acc, _) = mean_std(&runs.iter().map(|r| r.accuracy).collect::<Vec<_>>());
            let (auc, _) = mean_std(&runs.iter().map(|r| r.auc).collect::<Vec<_>>());
            let faith: Vec<f64> = runs.iter().filter_map(|r| r.faithfulness).collect();
            let faith = if faith.is_empty() { String::new() } else { format!("{:.4}", mean_std(&faith).0) };
            let seeds: Vec<String> = runs.iter().map(|r| r.seed.to_string()).collect();
            let seeds = if m.starts_with("llm") { format!("- ({} items)", runs[0].n) } else { seeds.join(",") };
            let auc = if m.starts_with("llm") { String::new() } else { format!("{auc:.4}") };
            writeln!(f, "| {} | {f1:.4} ± {sd:.4} | {acc:.4} | {auc} | {faith} | {seeds} |", method_name(m))?;
        }
        if let Some(z) = self.zero_gate_faithfulness {
            writeln!(f, "faithfulness of the control (first seed's ARG, every gate forced to zero): {z:.4}")?;
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

/// The database of the experiment: `--db`, or the working folder's (imported on first use).
pub fn database(options: &QualityOptions, progress: &dyn Progress) -> anyhow::Result<PathBuf> {
    if let Some(db) = &options.db {
        anyhow::ensure!(db.is_file(), "{}: no such database", db.display());
        return Ok(db.clone());
    }
    let work = options.work_dir();
    std::fs::create_dir_all(&work).with_context(|| work.display().to_string())?;
    let db = work.join(format!("{}.db", options.dataset_name()));
    let mut store = Store::open(&db)?;
    if store.stats()?.items == 0 {
        let (files, import) = if options.data.is_empty() {
            let mut files = Vec::new();
            for name in ["valid.csv", "test.csv"] {
                let src = options.liar2.join(name);
                match options.limit {
                    Some(n) => {
                        let dst = work.join(name);
                        head_csv(&src, &dst, n)?;
                        files.push(dst);
                    }
                    None => files.push(src),
                }
            }
            (files, ImportOptions::default())
        } else {
            let import = ImportOptions::from_flags(&crate::ingest::ImportFlags {
                format: options.format,
                map: options.map.clone(),
                labels: options.labels.clone(),
                name: options.name.clone(),
                ..Default::default()
            })?;
            (options.data.clone(), import)
        };
        crate::ingest::import_files(&mut store, &files, &import, progress)?;
    }
    Ok(db)
}

/// The methods to run, in dependency order (ARG before ARG-D, ARG-D before its routing), with what they need
/// added.
fn plan_methods(options: &QualityOptions) -> anyhow::Result<Vec<&'static str>> {
    let mut wanted: Vec<String> = options.methods.iter().map(|m| m.trim().to_owned()).collect();
    if options.paper_quirks {
        wanted.push("arg-quirks".into());
    }
    for m in &wanted {
        anyhow::ensure!(
            METHODS.iter().any(|(k, _)| k == m),
            "unknown method {m:?}: use {}",
            METHODS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
        );
    }
    let needs = |m: &str| match m {
        "argd-routed" => vec!["argd", "arg"],
        "argd" => vec!["arg"],
        _ => vec![],
    };
    let mut all: Vec<String> = wanted.clone();
    for m in &wanted {
        all.extend(needs(m).into_iter().map(str::to_owned));
    }
    Ok(METHODS.iter().map(|(k, _)| *k).filter(|k| all.iter().any(|m| m == k)).collect())
}

/// The LLM alone on the test split: each perspective's verdicts (items whose rationale implies real or fake), and
/// their majority (ties left out).
fn llm_alone(
    items: &[crate::store::guidance::TrainingItem],
    examples: &[data::Example],
    perspectives: &[String],
) -> Vec<Run> {
    let test: Vec<_> = items.iter().zip(examples).filter(|(_, e)| e.split == Split::Test && e.fake.is_some()).collect();
    let mut votes: Vec<Vec<Verdict>> = vec![Vec::new(); test.len()];
    let mut out = Vec::new();
    let run = |key: String, pred: &[bool], gold: &[bool]| {
        let p: Vec<f64> = pred.iter().map(|&f| f64::from(u8::from(f))).collect();
        let m = evaluate(&p, gold);
        Run {
            method: key,
            seed: 0,
            version: None,
            macro_f1: m.macro_f1,
            accuracy: m.accuracy,
            auc: m.auc,
            n: pred.len(),
            epochs: 0,
            train_secs: 0.0,
            faithfulness: None,
        }
    };
    for p in perspectives {
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
            out.push(run(format!("llm-{p}"), &pred, &gold));
        }
    }
    if out.len() > 1 {
        let (mut pred, mut gold) = (Vec::new(), Vec::new());
        for (v, (_, e)) in votes.iter().zip(&test) {
            let fake = v.iter().filter(|v| **v == Verdict::Fake).count();
            let real = v.len() - fake;
            if fake != real {
                pred.push(fake > real);
                gold.push(e.fake == Some(true));
            }
        }
        out.push(run("llm-majority".into(), &pred, &gold));
    }
    out
}

/// Trains every method for every seed on the experiment database and reports.
pub fn run(
    options: &QualityOptions,
    device: DeviceChoice,
    progress: &dyn Progress,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<QualityReport> {
    let started = std::time::Instant::now();
    let methods = plan_methods(options)?;
    let db = database(options, progress)?;
    let work = options.work_dir();
    std::fs::create_dir_all(&work).with_context(|| work.display().to_string())?;
    let store = Store::open(&db)?;
    let items = store.training_items()?;
    let order: Vec<String> = store.perspectives()?.into_iter().map(|p| p.key).collect();
    let perspectives = data::perspectives_present(&items, &order);
    // The project's split key when none is asked for (`--db` of a project that set one); explicit from here on.
    let mut options = options.clone();
    options.group_by = data::resolve_group_by(options.group_by.as_deref(), store.split_group_by()?);
    let options = &options;
    let (examples, snapshot) = data::build_grouped(&items, &perspectives, options.group_by.as_deref());
    drop(store);
    let mut report = QualityReport {
        dataset: options.dataset_name(),
        train: snapshot.train,
        val: snapshot.val,
        test: snapshot.test,
        group_by: options.group_by.clone(),
        groups: [snapshot.groups_train, snapshot.groups_val, snapshot.groups_test],
        perspectives: perspectives.clone(),
        ..Default::default()
    };
    let path = work.join("quality.json");
    // Resumable: runs already in quality.json (same data and splits) are kept and not trained again.
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(previous) = serde_json::from_str::<QualityReport>(&text)
        && (previous.train, previous.val, previous.test, &previous.group_by)
            == (report.train, report.val, report.test, &report.group_by)
    {
        report.runs = previous.runs;
        report.zero_gate_faithfulness = previous.zero_gate_faithfulness;
        report.seconds = previous.seconds;
    }
    let earlier_seconds = report.seconds;
    let save = |report: &mut QualityReport| -> anyhow::Result<()> {
        report.seconds = earlier_seconds + started.elapsed().as_secs_f64();
        std::fs::write(&path, serde_json::to_vec_pretty(report)?).with_context(|| path.display().to_string())
    };
    if methods.contains(&"llm") && !report.runs.iter().any(|r| r.method.starts_with("llm")) {
        report.runs.extend(llm_alone(&items, &examples, &perspectives));
    }
    save(&mut report)?;
    let test_items: std::collections::HashMap<_, bool> =
        examples.iter().filter(|e| e.split == Split::Test).filter_map(|e| Some((e.item, e.fake?))).collect();
    let faith_options = |zero_gates: bool| FaithfulnessOptions {
        split: Some(Split::Test),
        limit: Some(options.faithfulness_items),
        zero_gates,
        ..FaithfulnessOptions::default()
    };
    for &seed in &options.seeds {
        let base = TrainOptions {
            seed,
            max_epochs: options.max_epochs,
            patience: options.patience,
            min_epochs: options.min_epochs,
            lr: options.lr,
            max_len: options.max_len,
            group_by: options.group_by.clone(),
            threshold_from_val: options.threshold_from_val,
            ..TrainOptions::default()
        };
        let version_of = |report: &QualityReport, key: &str| {
            report.runs.iter().find(|r| r.method == key && r.seed == seed).and_then(|r| r.version)
        };
        for &method in &methods {
            if method == "llm" || report.runs.iter().any(|r| r.method == method && r.seed == seed) {
                continue;
            }
            if method == "argd-routed" {
                // The paper's cost-aware routing: ARG only on ARG-D's least confident 23%.
                let (Some(argd), Some(arg)) = (version_of(&report, "argd"), version_of(&report, "arg")) else {
                    continue;
                };
                let store = Store::open(&db)?;
                let argd_p: std::collections::HashMap<_, _> = store
                    .predictions(argd)?
                    .into_iter()
                    .filter(|(k, _)| test_items.contains_key(k))
                    .map(|(k, p)| (k, p.p_fake))
                    .collect();
                let arg_p: std::collections::HashMap<_, _> =
                    store.predictions(arg)?.into_iter().map(|(k, p)| (k, p.p_fake)).collect();
                let mixed = crate::guidance::triage::routed(&argd_p, &arg_p, 0.23);
                let (p, y): (Vec<f64>, Vec<bool>) =
                    test_items.iter().filter_map(|(id, y)| Some((*mixed.get(id)?, *y))).unzip();
                let m = evaluate(&p, &y);
                log(&format!("seed {seed}: argd-routed: test macro-F1 {:.4}", m.macro_f1));
                report.runs.push(Run {
                    method: method.into(),
                    seed,
                    version: Some(argd),
                    macro_f1: m.macro_f1,
                    accuracy: m.accuracy,
                    auc: m.auc,
                    n: p.len(),
                    epochs: 0,
                    train_secs: 0.0,
                    faithfulness: None,
                });
                save(&mut report)?;
                continue;
            }
            let (kind, train_options) = match method {
                "bert" => (ModelKind::Bert, base.clone()),
                "arg" => (ModelKind::Arg, base.clone()),
                "argd" => (ModelKind::Argd, base.clone()),
                "arg-quirks" => (ModelKind::Arg, TrainOptions { paper_quirks: true, ..base.clone() }),
                "arg-contrastive" => {
                    (ModelKind::Arg, TrainOptions { contrastive_weight: options.contrastive_weight, ..base.clone() })
                }
                other => unreachable!("planned method {other}"),
            };
            let request = TrainRequest {
                encoder: options.encoder.clone(),
                device,
                options: train_options,
                teacher: if kind == ModelKind::Argd { version_of(&report, "arg") } else { None },
                perspectives: Some(perspectives.clone()),
                ..TrainRequest::new(kind)
            };
            log(&format!("seed {seed}: training {method}"));
            let r = train(&db, &request, progress, &mut |e| {
                log(&format!(
                    "  {method} seed {seed} epoch {:>2}: loss {:.4}, val macro-F1 {:.4} ({:.0} s){}",
                    e.epoch,
                    e.train_loss,
                    e.val_macro_f1,
                    e.seconds,
                    if e.best { " (best)" } else { "" }
                ))
            })?;
            let faith = if kind == ModelKind::Arg && options.faithfulness_items > 0 && !perspectives.is_empty() {
                let f = faithfulness(&db, r.version, &faith_options(false), device, progress)?;
                log(&format!("seed {seed}: {method} faithfulness (mean |ΔP(fake)|) {:.4}", f.score));
                if report.zero_gate_faithfulness.is_none() && method == "arg" {
                    let z = faithfulness(&db, r.version, &faith_options(true), device, progress)?;
                    log(&format!("seed {seed}: the zero-gate control's faithfulness {:.4}", z.score));
                    report.zero_gate_faithfulness = Some(z.score);
                }
                Some(f.score)
            } else {
                None
            };
            log(&format!(
                "seed {seed}: {method} version {}: test macro-F1 {:.4}, {} epochs, {:.0} s",
                r.version,
                r.test.macro_f1,
                r.epochs.len(),
                r.train_secs
            ));
            report.runs.push(Run {
                method: method.into(),
                seed,
                version: Some(r.version),
                macro_f1: r.test.macro_f1,
                accuracy: r.test.accuracy,
                auc: r.test.auc,
                n: r.test.n,
                epochs: r.epochs.len(),
                train_secs: r.train_secs,
                faithfulness: faith,
            });
            save(&mut report)?;
        }
    }
    save(&mut report)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> QualityOptions {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            options: QualityOptions,
        }
        Cli::parse_from(std::iter::once("quality").chain(args.iter().copied())).options
    }

    #[test]
    fn methods_are_planned_in_dependency_order_with_what_they_need() {
        assert_eq!(plan_methods(&options(&[])).unwrap(), ["llm", "bert", "arg", "argd", "argd-routed"]);
        assert_eq!(plan_methods(&options(&["--methods", "argd-routed"])).unwrap(), ["arg", "argd", "argd-routed"]);
        assert_eq!(plan_methods(&options(&["--methods", "bert", "--paper-quirks"])).unwrap(), ["bert", "arg-quirks"]);
        let err = plan_methods(&options(&["--methods", "gpt"])).unwrap_err().to_string();
        assert!(err.contains("unknown method \"gpt\"") && err.contains("argd-routed"), "{err}");
    }

    #[test]
    fn the_dataset_and_its_folder_are_named_after_the_data() {
        let o = options(&["--data", "x/twitter_val.csv", "x/twitter_test.csv"]);
        assert_eq!(o.dataset_name(), "twitter_val");
        assert_eq!(o.work_dir(), PathBuf::from("target/quality-twitter_val"));
        assert_eq!(options(&[]).dataset_name(), "liar2");
        assert_eq!(options(&["--name", "tw", "--work", "w"]).work_dir(), PathBuf::from("w"));
    }

    #[test]
    fn the_summary_json_has_the_keys_the_issue_names() {
        let run = |method: &str, seed, f1| Run {
            method: method.into(),
            seed,
            version: Some(1),
            macro_f1: f1,
            accuracy: 0.5,
            auc: 0.6,
            n: 10,
            epochs: 3,
            train_secs: 1.0,
            faithfulness: (method == "arg").then_some(0.1),
        };
        let report = QualityReport {
            dataset: "tw".into(),
            runs: vec![run("arg", 0, 0.6), run("arg", 1, 0.8), run("bert", 0, 0.5)],
            ..Default::default()
        };
        let j = report.summary_json();
        assert_eq!(j["dataset"], "tw");
        let arg = &j["methods"]["arg"];
        assert!((arg["macro_f1_mean"].as_f64().unwrap() - 0.7).abs() < 1e-12);
        assert!(arg["macro_f1_std"].as_f64().unwrap() > 0.1);
        assert_eq!(arg["seeds"], serde_json::json!([0, 1]));
        assert!(arg["accuracy_mean"].is_number() && arg["auc_mean"].is_number());
        assert!((arg["faithfulness_mean"].as_f64().unwrap() - 0.1).abs() < 1e-12);
        assert!(j["methods"]["bert"].get("faithfulness_mean").is_none());
        assert!(report.to_string().contains("| ARG | 0.7000 ± 0.1414 |"), "{report}");
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[0.5, 0.7, 0.6]);
        assert!((m - 0.6).abs() < 1e-12 && (s - 0.1).abs() < 1e-12);
        assert_eq!(mean_std(&[0.4]), (0.4, 0.0));
    }
}
