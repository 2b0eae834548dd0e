//! The guidance-model commands: `argus train`, `eval`, `predict` and `versions` (roll back).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::progress::ProgressBar;
use super::{Global, existing, print_json};
use crate::domain::ModelKind;
use crate::guidance::train::{TrainOptions, TrainRequest};
use crate::guidance::versions::VersionsTable;
use crate::store::Store;

/// `--model arg|argd|bert`.
pub fn parse_model_kind(s: &str) -> Result<ModelKind, String> {
    ModelKind::parse(s).ok_or_else(|| format!("unknown model {s:?}: use arg, argd or bert"))
}

#[derive(Args, Debug)]
pub struct Train {
    #[arg(long)]
    db: PathBuf,
    /// arg, argd (the rationale-free student, distilled from an ARG version) or bert (baseline).
    #[arg(long, default_value = "arg", value_parser = parse_model_kind)]
    model: ModelKind,
    /// Start from this version (an incremental retrain); default: from the pretrained encoder.
    #[arg(long)]
    from: Option<i64>,
    /// ARG-D's teacher (default: the ARG version in use).
    #[arg(long)]
    teacher: Option<i64>,
    #[arg(long, default_value_t = TrainOptions::default().seed)]
    seed: u64,
    /// Encoder: a catalog name or a folder.
    #[arg(long, default_value = "minilm")]
    encoder: String,
    /// ARG's perspectives, comma-separated (default: every perspective some item has a rationale for).
    #[arg(long, value_delimiter = ',')]
    perspectives: Option<Vec<String>>,
    /// Default: 50 (a quick retrain: 30).
    #[arg(long)]
    max_epochs: Option<usize>,
    /// Default: 5 (a quick retrain: 3).
    #[arg(long)]
    patience: Option<usize>,
    /// Early stopping cannot fire before this many epochs.
    #[arg(long, default_value_t = TrainOptions::default().min_epochs)]
    min_epochs: usize,
    #[arg(long, default_value_t = TrainOptions::default().batch_size)]
    batch_size: usize,
    #[arg(long, default_value_t = TrainOptions::default().lr)]
    lr: f64,
    /// Times each item labelled by people counts per epoch.
    #[arg(long, default_value_t = TrainOptions::default().human_weight)]
    human_weight: usize,
    /// Reproduce the reference implementation's quirks (means over padding, unmasked poolings).
    #[arg(long)]
    paper_quirks: bool,
    /// Tokens per text.
    #[arg(long, default_value_t = TrainOptions::default().max_len)]
    max_len: usize,
    /// Split train / val (and test, when the data names no split) by this field instead of by text: an imported
    /// column (e.g. image_id, event, claim_id) or `source`, so one group never straddles train and val. A retrain
    /// with --from keeps its parent's key. `FIELD~REGEX` groups by the part of the value the expression picks
    /// (its first capture group), e.g. `image_id~^[^_]+` for an event named before the first underscore.
    /// Absent: the project's setting (`argus project --group-by`); `text`: by text, whatever the project says.
    #[arg(long, value_parser = crate::guidance::data::check_group_key)]
    group_by: Option<String>,
    /// Choose the decision threshold on the validation split (the one with the best validation macro-F1) instead
    /// of 0.5; stored with the version, used for its test metrics (small, imbalanced data: see the README).
    #[arg(long)]
    threshold_from_val: bool,
    /// A quick retrain: only the head (ARG's usefulness, judgement, gate, aggregator and classifier layers), from
    /// --from or the version in use, on its cached pooled inputs; seconds instead of minutes. Unless given,
    /// --max-epochs is 30 and --patience 3.
    #[arg(long)]
    quick: bool,
    /// Learning rate of the head in a quick retrain.
    #[arg(long, default_value_t = TrainOptions::default().head_lr)]
    head_lr: f64,
    /// ARG: weight of the contrastive term that pushes rejected rationales (misleading / not useful, or implying
    /// the wrong verdict) away from the news representation and pulls useful ones toward it; 0 (default): the
    /// paper's loss.
    #[arg(long, default_value_t = TrainOptions::default().contrastive_weight)]
    contrastive_weight: f64,
    /// Batches as plain random draws, not grouped by length (slower: every batch pads to its longest text).
    #[arg(long)]
    no_length_groups: bool,
}

impl Train {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let seed = self.seed;
        let defaults = if self.quick { TrainOptions::quick() } else { TrainOptions::default() };
        let request = TrainRequest {
            kind: self.model,
            from: self.from,
            teacher: self.teacher,
            encoder: self.encoder,
            device: g.device(),
            options: TrainOptions {
                seed,
                lr: self.lr,
                batch_size: self.batch_size,
                max_epochs: self.max_epochs.unwrap_or(defaults.max_epochs),
                patience: self.patience.unwrap_or(defaults.patience),
                head_lr: self.head_lr,
                min_epochs: self.min_epochs,
                human_weight: self.human_weight,
                paper_quirks: self.paper_quirks,
                max_len: self.max_len,
                group_by: self.group_by,
                threshold_from_val: self.threshold_from_val,
                contrastive_weight: self.contrastive_weight,
                length_grouped: !self.no_length_groups,
                ..defaults
            },
            perspectives: self.perspectives,
        };
        let bar = ProgressBar::new();
        let report = crate::guidance::train::train(&self.db, &request, &bar, &mut |e| {
            bar.println(&format!(
                "epoch {:>3}  loss {:.4}  val macro-F1 {:.4}  accuracy {:.4}  AUC {:.4}  {:.1} s{}",
                e.epoch,
                e.train_loss,
                e.val_macro_f1,
                e.val_accuracy,
                e.val_auc,
                e.seconds,
                if e.best { "  (best)" } else { "" }
            ));
        })?;
        bar.finish();
        let s = &report.snapshot;
        eprintln!(
            "{} version {} (parent {}): {} train / {} val / {} test items, perspectives [{}], best epoch {}, {} texts \
             encoded now",
            report.kind.human_name(),
            report.version,
            report.parent.map(|p| p.to_string()).unwrap_or_else(|| "none".into()),
            s.train,
            s.val,
            s.test,
            s.perspectives.join(","),
            report.best_epoch,
            report.encoded_texts
        );
        let phases: Vec<String> = report.phases.iter().map(|(name, s)| format!("{name} {s:.1} s")).collect();
        eprintln!("time: {}", phases.join(", "));
        for w in &report.warnings {
            eprintln!("warning: {} version {}: {w}", report.kind.human_name(), report.version);
        }
        if let Some(key) = &s.group_by {
            eprintln!(
                "split by {key}: {} train / {} val / {} test groups ({} items have no {key}: a group each)",
                s.groups_train, s.groups_val, s.groups_test, s.ungrouped
            );
        }
        if !report.unused_perspectives.is_empty() {
            eprintln!(
                "note: rationales from perspectives [{}] are not read by this model (it keeps its parent's \
                 perspectives); train without --from to include them",
                report.unused_perspectives.join(",")
            );
        }
        let t = &report.test;
        println!(
            "{}",
            serde_json::json!({
                "version": report.version, "model": report.kind.as_str(), "macro_f1": t.macro_f1,
                "accuracy": t.accuracy, "f1_real": t.f1_real, "f1_fake": t.f1_fake, "auc": t.auc,
                "train_secs": report.train_secs, "test_items": t.n, "best_epoch": report.best_epoch,
                "epochs": report.epochs.len(), "seed": seed, "perspectives": s.perspectives,
                "val_macro_f1": report.val.macro_f1, "threshold": t.threshold,
            })
        );
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Eval {
    #[arg(long)]
    db: PathBuf,
    #[arg(long)]
    version: i64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl Eval {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let bar = ProgressBar::new();
        let m = crate::guidance::train::eval(&self.db, self.version, g.device(), &bar)?;
        bar.finish();
        let version = self.version;
        if self.json {
            println!(
                "{}",
                serde_json::json!({
                    "version": version, "n": m.n, "macro_f1": m.macro_f1, "accuracy": m.accuracy,
                    "f1_real": m.f1_real, "f1_fake": m.f1_fake, "auc": m.auc, "confusion": m.confusion, "ece": m.ece,
                })
            );
        } else {
            println!(
                "version {version} on {} test items: macro-F1 {:.4}, accuracy {:.4}, F1 real {:.4}, F1 fake {:.4}, \
                 AUC {:.4}",
                m.n, m.macro_f1, m.accuracy, m.f1_real, m.f1_fake, m.auc
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Predict {
    #[arg(long)]
    db: PathBuf,
    /// Model version (default: the ARG version in use).
    #[arg(long)]
    version: Option<i64>,
}

impl Predict {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let version = match self.version {
            Some(v) => v,
            None => Store::open(&self.db)?
                .active_version(crate::domain::ModelKind::Arg)?
                .context("no ARG version yet: run `argus train` first")?,
        };
        let bar = ProgressBar::new();
        let n = crate::guidance::train::predict(&self.db, version, g.device(), &bar)?;
        bar.finish();
        println!("stored predictions of version {version} for {n} items");
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Versions {
    #[arg(long)]
    db: PathBuf,
    /// Make this version the one in use for its kind.
    #[arg(long = "use")]
    use_version: Option<i64>,
    #[arg(long)]
    json: bool,
}

impl Versions {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let store = Store::open(&self.db)?;
        if let Some(v) = self.use_version {
            store.set_active_version(v)?;
            println!("version {v} is now in use");
        }
        if self.json {
            print_json(&store.model_versions()?)?;
        } else {
            print!("{}", VersionsTable::read(&store)?);
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Simulate {
    #[arg(long)]
    db: PathBuf,
    /// arg or bert.
    #[arg(long, default_value = "arg", value_parser = parse_model_kind)]
    model: ModelKind,
    /// Strategies, comma-separated: uncertainty, disagreement, risk, random.
    #[arg(long, value_delimiter = ',', default_value = "uncertainty,disagreement,risk,random", value_parser = parse_strategy)]
    strategy: Vec<crate::guidance::triage::Order>,
    /// Label counts at which the model is scored.
    #[arg(long, value_delimiter = ',', default_value = "25,50,100,200,400")]
    labels: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// An online update after every this many labels.
    #[arg(long, default_value_t = crate::guidance::online::OnlineOptions::default().every as usize)]
    every: usize,
    /// Optimiser steps per update.
    #[arg(long, default_value_t = crate::guidance::online::OnlineOptions::default().steps)]
    steps: usize,
    /// Encoder: a catalog name or a folder.
    #[arg(long, default_value = "minilm")]
    encoder: String,
    /// Split by this field instead of by text (as `argus train --group-by`; absent: the project's setting).
    #[arg(long, value_parser = crate::guidance::data::check_group_key)]
    group_by: Option<String>,
    /// Learning rate of the head.
    #[arg(long, default_value_t = TrainOptions::default().head_lr)]
    head_lr: f64,
    /// Tokens per text.
    #[arg(long, default_value_t = TrainOptions::default().max_len)]
    max_len: usize,
    #[arg(long)]
    json: bool,
}

fn parse_strategy(s: &str) -> Result<crate::guidance::triage::Order, String> {
    use crate::guidance::triage::Order;
    match Order::parse(s) {
        Some(o) if o != Order::Natural => Ok(o),
        _ => Err(format!("unknown strategy {s:?}: use uncertainty, disagreement, risk or random")),
    }
}

impl Simulate {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let request = crate::guidance::simulate::SimulateRequest {
            kind: self.model,
            strategies: self.strategy,
            labels: self.labels,
            seeds: self.seeds,
            every: self.every,
            steps: self.steps,
            encoder: self.encoder,
            device: g.device(),
            group_by: self.group_by,
            options: TrainOptions { head_lr: self.head_lr, max_len: self.max_len, ..TrainOptions::default() },
            ..Default::default()
        };
        let bar = ProgressBar::new();
        let report = crate::guidance::simulate::simulate(&self.db, &request, &bar)?;
        bar.finish();
        print!("{report}");
        if self.json {
            println!("{}", serde_json::to_string(&report)?);
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Faithfulness {
    #[arg(long)]
    db: PathBuf,
    /// ARG version (default: the one in use).
    #[arg(long)]
    version: Option<i64>,
    /// Items of this split: test (default), val, train or all.
    #[arg(long, default_value = "test")]
    split: String,
    /// At most this many items (the first by id).
    #[arg(long)]
    limit: Option<usize>,
    /// Seed of the swap (which other item's rationale each item gets).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The control: force every gate to zero first (a model that ignores its rationales scores zero).
    #[arg(long)]
    zero_gates: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

impl Faithfulness {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        use crate::guidance::data::Split;
        use crate::guidance::faithfulness::{FaithfulnessOptions, faithfulness};
        existing(&self.db)?;
        let version = match self.version {
            Some(v) => v,
            None => Store::open(&self.db)?
                .active_version(ModelKind::Arg)?
                .context("no ARG version in use: train one (argus train --model arg) or name one with --version")?,
        };
        let split = match self.split.as_str() {
            "test" => Some(Split::Test),
            "val" => Some(Split::Val),
            "train" => Some(Split::Train),
            "all" => None,
            other => anyhow::bail!("--split {other:?}: use test, val, train or all"),
        };
        let options =
            FaithfulnessOptions { split, limit: self.limit, seed: self.seed, zero_gates: self.zero_gates, items: None };
        let bar = ProgressBar::new();
        let report = faithfulness(&self.db, version, &options, g.device(), &bar)?;
        bar.finish();
        if self.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{report}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
