//! The `argus` binary: parses the command line, then opens the studio or runs one headless command.
//! Everything it calls lives in the library.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use argus::ingest::{self, ColumnMap, Format, ImportOptions, LabelMap, export::ExportFormat};
use argus::jobs::Progress;
use argus::store::Store;

/// Argus: review news with local-LLM rationales, label items, give feedback, retrain the guidance model.
///
/// Without a subcommand, opens the studio window (on the last database, or on the built-in demo).
#[derive(Parser, Debug)]
#[command(name = "argus", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    studio: StudioArgs,
}

#[derive(Args, Debug)]
struct StudioArgs {
    /// Database to open in the studio (created if missing). Default: the last one, else the demo.
    #[arg(long, global = false)]
    db: Option<PathBuf>,
    /// Annotator name (default: the remembered one, else asked for in the window).
    #[arg(long)]
    annotator: Option<String>,
    /// Close the window after this many frames (smoke tests under Xvfb).
    #[arg(long, hide = true)]
    quit_after_frames: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Import news items (and their rationales) into a database; all files or nothing.
    Import {
        /// Database file (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// Input format; guessed from the extension and header when left out.
        #[arg(long, value_parser = parse_format)]
        format: Option<Format>,
        /// Column mapping for generic csv/jsonl, e.g. `content=statement,label=label,rationale:human=justification`.
        #[arg(long)]
        map: Option<String>,
        /// Label mapping replacing the default, e.g. `pants-fire=fake,false=fake,true=real`.
        #[arg(long)]
        labels: Option<String>,
        /// Dataset name (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// Files to import.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Export every item with rationales and merged human judgements (originals kept).
    Export {
        #[arg(long)]
        db: PathBuf,
        /// arg-json (a folder with train/val/test.json), jsonl or csv.
        #[arg(long, value_parser = parse_export_format)]
        format: ExportFormat,
        /// Output file (jsonl, csv) or folder (arg-json).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print what a database holds.
    Stats {
        #[arg(long)]
        db: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure speed: `argus bench store` (judgement commit latency, import rate, item-list frame time).
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// Commit latency of one judgement, import of synthetic rows, frame time of the item list.
    Store {
        /// Synthetic rows to import, and items in the list.
        #[arg(long, default_value_t = 100_000)]
        items: usize,
        /// Judgements to commit for the latency figures.
        #[arg(long, default_value_t = 2_000)]
        commits: usize,
        /// Frames to draw for the frame-time figures.
        #[arg(long, default_value_t = 300)]
        frames: usize,
    },
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse::<Format>().map_err(|e| e.to_string())
}

fn parse_export_format(s: &str) -> Result<ExportFormat, String> {
    s.parse::<ExportFormat>().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ARGUS_LOG").unwrap_or_else(|_| "warn,argus=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("argus: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => {
            let options = argus::ui::StudioOptions {
                db: cli.studio.db,
                seed_demo: false,
                annotator: cli.studio.annotator,
                settings_path: argus::ui::default_settings_path(),
                quit_after_frames: cli.studio.quit_after_frames,
            };
            argus::ui::run_native(options)?;
        }
        Some(Cmd::Import { db, format, map, labels, name, files }) => {
            let opts = ImportOptions {
                format,
                columns: map.as_deref().map(ColumnMap::parse).transpose().context("--map")?,
                labels: labels.as_deref().map(LabelMap::parse).transpose().context("--labels")?.unwrap_or_default(),
                dataset_name: name,
            };
            let mut store = Store::open(&db)?;
            let bar = ProgressBar::new();
            let summaries = ingest::import_files(&mut store, &files, &opts, &bar)?;
            bar.finish();
            let (items, rationales): (usize, usize) =
                summaries.iter().fold((0, 0), |(i, r), s| (i + s.items, r + s.rationales));
            for (file, s) in files.iter().zip(&summaries) {
                println!("{}: {} items, {} rationales", file.display(), s.items, s.rationales);
            }
            println!("added {items} items and {rationales} rationales to {}", db.display());
        }
        Some(Cmd::Export { db, format, out }) => {
            if !db.exists() {
                anyhow::bail!("{}: no such database", db.display());
            }
            let store = Store::open(&db)?;
            let summary = ingest::export::export(&store, format, &out)?;
            println!("exported {} items ({} skipped, no label) to {}", summary.items, summary.skipped, out.display());
            for file in &summary.files {
                println!("  {}", file.display());
            }
        }
        Some(Cmd::Stats { db, json }) => {
            if !db.exists() {
                anyhow::bail!("{}: no such database", db.display());
            }
            let stats = Store::open(&db)?.stats()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                println!(
                    "{}: {} datasets, {} items ({} judged), {} rationales, {} judgements, {} feedback, {} annotators",
                    db.display(),
                    stats.datasets,
                    stats.items,
                    stats.judged_items,
                    stats.rationales,
                    stats.judgements,
                    stats.feedback,
                    stats.annotators
                );
            }
        }
        Some(Cmd::Bench { what: BenchCmd::Store { items, commits, frames } }) => {
            let report = argus::bench::store_bench(items, commits)?;
            print!("{report}");
            let frame_report = argus::ui::bench::item_list_frames(&report.db_path, &report.small_db_path, frames)?;
            print!("{frame_report}");
            let _ = std::fs::remove_dir_all(&report.dir);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A terminal progress bar for imports (silent when stderr is not a terminal).
struct ProgressBar {
    bar: Option<indicatif::ProgressBar>,
}

impl ProgressBar {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} ({per_sec})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        Self { bar }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for ProgressBar {
    fn set(&self, done: u64, total: u64, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
            bar.set_message(message.to_owned());
        }
    }

    fn is_cancelled(&self) -> bool {
        false
    }
}
