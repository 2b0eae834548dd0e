//! `argus rationales`: rationales and their verdicts written by a local GGUF model or an OpenAI-compatible server,
//! resumable. Also the writer the other commands load (`explain`, `repair`, `route`, `study prepare`, `bench
//! quality`): the flags become a [`WriterSettings`], whose defaults are the library's.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::progress::ProgressBar;
use super::{Global, existing};
use crate::models::{ChatModel, DeviceChoice, GenerationParams};
use crate::rationales::{self, Backend, Event, Plan, RunOptions};
use crate::rationales::{WriterBackend, WriterSettings};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct Rationales {
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
    #[arg(long, default_value_t = WriterSettings::default().api_key_env)]
    api_key_env: String,
    /// OpenAI: requests in flight at once.
    #[arg(long, default_value_t = WriterSettings::default().concurrency)]
    concurrency: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = GenerationParams::default().temperature)]
    temperature: f64,
    #[arg(long, default_value_t = default_top_p())]
    top_p: f64,
    #[arg(long, default_value_t = GenerationParams::default().seed)]
    seed: u64,
    /// Longest rationale, in tokens.
    #[arg(long, default_value_t = GenerationParams::default().max_tokens)]
    max_tokens: usize,
    /// Only these item ids, comma-separated.
    #[arg(long = "only", value_delimiter = ',')]
    items: Option<Vec<i64>>,
    /// Items whose perspectives the local writer decodes together in one batch (their KV caches must fit in
    /// memory: it says so before it starts when they do not).
    #[arg(long, default_value_t = 1)]
    batch_items: usize,
}

/// The default nucleus (no nucleus, 1.0, if the library's default ever drops it).
fn default_top_p() -> f64 {
    GenerationParams::default().top_p.unwrap_or(1.0)
}

impl Rationales {
    /// The writer these flags describe.
    fn settings(&self, device: DeviceChoice) -> anyhow::Result<WriterSettings> {
        let defaults = WriterSettings::default();
        let params = GenerationParams {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: Some(self.top_p),
            seed: self.seed,
        };
        let common = WriterSettings {
            device,
            api_key_env: self.api_key_env.clone(),
            concurrency: self.concurrency.max(1),
            params,
            ..defaults
        };
        Ok(match self.backend.as_str() {
            "local" => WriterSettings {
                backend: WriterBackend::Local,
                local_model: self.model.clone().unwrap_or(common.local_model.clone()),
                ..common
            },
            "openai" => WriterSettings {
                backend: WriterBackend::OpenAi,
                url: self.url.clone().context("--backend openai needs --url (e.g. http://127.0.0.1:8080/v1)")?,
                served_model: self.model.clone().context("--backend openai needs --model (the served model's name)")?,
                ..common
            },
            other => anyhow::bail!("--backend: `{other}` (expected local or openai)"),
        })
    }

    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let settings = self.settings(g.device())?;
        write_and_print(&self.db, &self.perspectives, &settings, self.items, self.limit, self.batch_items)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Writes rationales of the `perspectives` (keys) into `db` with the writer of `settings` (only `items`, at most
/// `limit` items with work), saying on stderr what it plans and what fails, and ends with the summary line.
pub fn write_and_print(
    db: &Path,
    perspectives: &[String],
    settings: &WriterSettings,
    items: Option<Vec<i64>>,
    limit: Option<usize>,
    batch_items: usize,
) -> anyhow::Result<()> {
    existing(db)?;
    let store = Store::open(db)?;
    let perspectives = rationales::perspectives_named(&store, perspectives).context("--perspectives")?;
    let options = RunOptions {
        perspectives,
        items,
        limit,
        params: settings.params.clone(),
        batch_items: batch_items.max(1),
        ..Default::default()
    };
    let bar = ProgressBar::new();
    let summary = rationales::write(&store, settings, &options, &bar, &mut print_plan, &mut print_failure)?;
    bar.finish();
    println!("{summary}");
    Ok(())
}

/// A local writer with the library's sampling defaults: a catalog name or a GGUF path.
pub fn local_settings(model: String, device: DeviceChoice) -> WriterSettings {
    WriterSettings { backend: WriterBackend::Local, local_model: model, device, ..WriterSettings::default() }
}

/// Says on stderr how much a rationale run has to do.
pub fn print_plan(model_id: &str, plan: &Plan) {
    eprintln!("{model_id}: {} rationales to write ({} already done)", plan.tasks.len(), plan.already_done);
}

/// Says on stderr which rationale failed and why.
pub fn print_failure(event: &Event) {
    if let Event::Failed { item, perspective, error } = event {
        eprintln!("item {item} ({perspective}): {error}");
    }
}

/// Loads a local writer (catalog name or GGUF path; the demo writer by default), fetching it on first use.
pub fn open_writer(name: Option<String>, device: DeviceChoice) -> anyhow::Result<Box<dyn ChatModel>> {
    let settings = local_settings(name.unwrap_or(WriterSettings::default().local_model), device);
    let bar = ProgressBar::new();
    let backend = Backend::from_settings(&settings, &bar);
    bar.finish();
    rationales::open_models(&backend?)?.into_iter().next().context("no writer model")
}
