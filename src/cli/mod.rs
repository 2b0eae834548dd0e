//! The `argus` command line: the clap definitions, one module per command family, each a `#[derive(Args)]` struct
//! with `run(self, &Global) -> anyhow::Result<ExitCode>` that calls the library and prints its reports.
//!
//! Nothing here decides anything a test would want to check: the work is in the library, behind functions the
//! tests call; this module turns flags into library requests and reports into text. `anyhow` is allowed here (and
//! in the UI's edge) only. `src/main.rs` sets up logging, threads and the allocator, then calls [`Cli::run`].

pub mod agreement;
pub mod assign;
pub mod bench;
pub mod bundle;
pub mod encode;
pub mod explain;
pub mod export;
pub mod import;
pub mod models;
pub mod progress;
pub mod project;
pub mod rationales;
pub mod repair;
pub mod review;
pub mod route;
pub mod stats;
pub mod study;
pub mod train;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::models::DeviceChoice;
use progress::ProgressBar;

/// Argus: review news with local-LLM rationales, label items, give feedback, retrain the guidance model.
///
/// Without a subcommand, opens the studio window (on the last database, or on the built-in demo).
#[derive(Parser, Debug)]
#[command(name = "argus", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
    #[command(flatten)]
    pub studio: StudioArgs,
    #[command(flatten)]
    pub global: Global,
}

// The options every command takes (`--device`, `--threads`). No doc comment: clap would take it for the
// program's description.
#[derive(Args, Clone, Debug, Default)]
pub struct Global {
    /// Device for local models: auto (CUDA/Metal when built in and present, else CPU), cpu, cuda, cuda:N, metal.
    #[arg(long, global = true)]
    pub device: Option<DeviceChoice>,
    /// CPU threads for local models (default: every core; or RAYON_NUM_THREADS).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
}

impl Global {
    /// The device asked for, else `auto`.
    pub fn device(&self) -> DeviceChoice {
        self.device.unwrap_or_default()
    }
}

// The studio's options, read when no subcommand is given.
#[derive(Args, Debug)]
pub struct StudioArgs {
    /// Database to open in the studio (created if missing). Default: the last one, else the demo.
    #[arg(long, global = false)]
    pub db: Option<PathBuf>,
    /// Annotator name (default: the remembered one, else asked for in the window).
    #[arg(long)]
    pub annotator: Option<String>,
    /// Close the window after this many frames (smoke tests under Xvfb).
    #[arg(long, hide = true)]
    pub quit_after_frames: Option<u64>,
    /// Open File ▸ Import's dialog on these files (a preview of their first rows; nothing is imported until Start
    /// import).
    #[arg(long, num_args = 1..)]
    pub import: Vec<PathBuf>,
    /// With --import: the column map to fill in (`argus import`'s --map syntax).
    #[arg(long, requires = "import")]
    pub map: Option<String>,
    /// With --import: the label map to fill in.
    #[arg(long, requires = "import")]
    pub labels: Option<String>,
    /// With --import: what labels outside the map become (`unlabelled`).
    #[arg(long, requires = "import")]
    pub default_label: Option<String>,
}

impl StudioArgs {
    /// Opens the studio window as `argus` without a subcommand does.
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let options = crate::ui::StudioOptions {
            db: self.db,
            seed_demo: false,
            annotator: self.annotator,
            settings_path: crate::ui::default_settings_path(),
            quit_after_frames: self.quit_after_frames,
            device: g.device,
            demo_db: crate::paths::demo_db_path(),
            import: (!self.import.is_empty()).then(|| {
                let flags = crate::ingest::ImportFlags {
                    map: self.map,
                    labels: self.labels,
                    default_label: self.default_label,
                    ..Default::default()
                };
                (self.import, flags)
            }),
        };
        crate::ui::run_native(options)?;
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Import news items (and their rationales) into a database; all files or nothing.
    Import(import::Import),
    /// Export every item with rationales and merged human judgements (originals kept), or reviews as schema.org
    /// ClaimReview.
    Export(export::Export),
    /// Share work across databases: export a bundle of everything people did, merge colleagues' bundles.
    #[command(subcommand)]
    Bundle(bundle::BundleCmd),
    /// Print what a database holds.
    Stats(stats::Stats),
    /// The project's own settings, shared by everyone who opens the database: `--group-by FIELD` splits train/val
    /// by a field (an event, a source) instead of by text, for every training run from now on.
    Project(project::Project),
    /// Review an item as a fact-checker: a rating on a scale, an explanation and evidence links, kept with its
    /// history; published with `argus export --format claimreview`.
    Review(review::Review),
    /// Write rationales and their verdicts for items, with a local GGUF model or an OpenAI-compatible server.
    ///
    /// Resumable: an item and perspective that already have a rationale from the same model and prompt are
    /// skipped, so a run stopped with Ctrl-C goes on where it stopped.
    Rationales(rationales::Rationales),
    /// Encode every news text and rationale of a database into the encoder cache beside it (for the guidance
    /// model); resumable, nothing is encoded twice.
    Encode(encode::Encode),
    /// Train a guidance model version (ARG, ARG-D or the BERT-only baseline) on everything labelled so far.
    ///
    /// Prints one line per epoch, then, as its last line, one JSON object with the new version's metrics on the
    /// held-out test split (`version`, `macro_f1`, `accuracy`, `f1_real`, `f1_fake`, `auc`, `train_secs`, ...).
    Train(train::Train),
    /// Does the learning loop help? Replays the gold labels as an annotator who labels in the order a strategy
    /// picks (uncertainty, disagreement, risk, random), with online learning on, and prints macro-F1 on the test
    /// split against the number of labels (mean ± std over seeds). Writes nothing to the database.
    ///
    /// With --json, the last line is one JSON object: the report with every (strategy, seed, labels) point.
    Simulate(train::Simulate),
    /// Metrics of a model version on the held-out test split, with the labels as they stand now.
    Eval(train::Eval),
    /// How much ARG leans on each rationale: P(fake) and its trust w_r when a rationale is emptied, swapped for
    /// another item's, or has its verdict negated (per perspective; --zero-gates is the control).
    Faithfulness(train::Faithfulness),
    /// Predict every item with a model version and store the predictions (P(fake), trust in each rationale,
    /// usefulness, predicted LLM verdicts).
    Predict(train::Predict),
    /// Cost-aware routing (as in the ARG paper): ARG-D scores every item without rationales; the share it is least
    /// sure about is listed, and with --writer gets rationales written and is predicted by ARG.
    Route(route::Route),
    /// Show a rationale in an explanation format, with every quote's character span in the news (null when the
    /// news does not say it). Structured formats are written by the LLM on first use and stored.
    ///
    /// Formats: free-text, annotated-report, markup-and-mask, procedural, subquestions, decision-tree, claim-card,
    /// side-by-side, or `all`. Spans count characters (Unicode scalar values) of the item's text, end exclusive.
    Explain(explain::Explain),
    /// Apply a person's feedback (a `rationale_feedback` row): the LLM writes a repaired revision of the rationale,
    /// its verdict is asked again, and the repair is scored against people's verdict or the gold label.
    Repair(repair::Repair),
    /// List model versions with their test metrics; `--use V` makes V the version in use for its kind (roll back).
    Versions(train::Versions),
    /// Measure speed: `argus bench store` (judgement commit latency, import rate, item-list frame time).
    Bench {
        #[command(subcommand)]
        what: bench::BenchCmd,
    },
    /// Local models: `argus models list`, `argus models fetch [NAME...]`.
    Models {
        #[command(subcommand)]
        what: models::ModelsCmd,
    },
    /// User studies: `argus study check | run-sim | analyse | export` (see `assets/studies/` for an example file).
    Study {
        #[command(subcommand)]
        what: study::StudyCmd,
    },
    /// Inter-annotator agreement on the standing judgements (Cohen's kappa per pair, Fleiss' kappa, Krippendorff's
    /// alpha per label and overall, diagnostics; adjudicated verdicts left out) and per-annotator metrics (items
    /// per active hour, median time per item, agreement with the others' majority and with gold labels).
    Agreement(agreement::Agreement),
    /// Route items to annotators: each item not yet assigned gets k distinct annotators, loads balanced (overlap
    /// for agreement); seeded.
    Assign(assign::Assign),
}

impl Cli {
    /// Runs the command (the studio when there is none).
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let g = &self.global;
        match self.command {
            None => self.studio.run(g),
            Some(Cmd::Import(c)) => c.run(g),
            Some(Cmd::Export(c)) => c.run(g),
            Some(Cmd::Bundle(c)) => c.run(g),
            Some(Cmd::Review(c)) => c.run(g),
            Some(Cmd::Stats(c)) => c.run(g),
            Some(Cmd::Project(c)) => c.run(g),
            Some(Cmd::Rationales(c)) => c.run(g),
            Some(Cmd::Encode(c)) => c.run(g),
            Some(Cmd::Train(c)) => c.run(g),
            Some(Cmd::Simulate(c)) => c.run(g),
            Some(Cmd::Eval(c)) => c.run(g),
            Some(Cmd::Faithfulness(c)) => c.run(g),
            Some(Cmd::Predict(c)) => c.run(g),
            Some(Cmd::Route(c)) => c.run(g),
            Some(Cmd::Explain(c)) => c.run(g),
            Some(Cmd::Repair(c)) => c.run(g),
            Some(Cmd::Versions(c)) => c.run(g),
            Some(Cmd::Bench { what }) => what.run(g),
            Some(Cmd::Models { what }) => what.run(g),
            Some(Cmd::Study { what }) => what.run(g),
            Some(Cmd::Agreement(c)) => c.run(g),
            Some(Cmd::Assign(c)) => c.run(g),
        }
    }
}

/// Refuses a database file that does not exist (the headless commands never create one by accident).
pub fn existing(db: &Path) -> anyhow::Result<()> {
    if !db.exists() {
        anyhow::bail!("{}: no such database", db.display());
    }
    Ok(())
}

/// A catalog name (fetched if missing) or a path.
pub fn model_path(name: &str) -> anyhow::Result<PathBuf> {
    Ok(crate::models::fetch::resolve(name, &ProgressBar::new())?)
}

/// Prints a JSON value, pretty.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
