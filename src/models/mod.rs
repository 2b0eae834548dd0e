//! Local models: where they live, how they are fetched, the device they run on, the BERT-family encoder and the
//! GGUF rationale writer, and the OpenAI-compatible client that sends the same work to a serving engine.
//!
//! This module knows nothing of the UI or of storage: the rationale job (the `rationales` module, above this one)
//! joins models and the store. Every error names the file (or URL) it is about.

pub mod catalog;
pub mod decoder;
pub mod device;
pub mod encoder;
pub mod encoder_cache;
pub mod fetch;
pub mod generator;
pub mod gguf_tokenizer;
pub mod kernels;
pub mod openai;
pub mod qgemv;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::prompting::ChatMessage;

pub use catalog::{CatalogEntry, ModelRole};
pub use device::DeviceChoice;

/// Everything that can go wrong with a model, each naming the file, URL or setting it is about.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: model not found ({hint})")]
    Missing { path: PathBuf, hint: String },
    #[error("{path}: unsupported architecture `{arch}` (supported: {supported})")]
    Unsupported { path: PathBuf, arch: String, supported: String },
    #[error(
        "{path}: the model needs about {needed_mib} MiB of memory but only {available_mib} MiB are available; choose \
         a smaller model or close other programs"
    )]
    TooBig { path: PathBuf, needed_mib: u64, available_mib: u64 },
    #[error("device `{device}`: {reason}")]
    Device { device: String, reason: String },
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("fetching {name}: {reason}")]
    Fetch { name: String, reason: String },
    #[error("cancelled")]
    Cancelled(#[from] crate::jobs::Cancelled),
    #[error("{context}: {source}")]
    Candle {
        context: String,
        #[source]
        source: candle_core::Error,
    },
}

impl ModelError {
    pub fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Self::File { path: path.into(), reason: reason.to_string() }
    }

    pub fn candle(context: impl std::fmt::Display) -> impl FnOnce(candle_core::Error) -> Self {
        let context = context.to_string();
        move |source| Self::Candle { context, source }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Sampling settings of one generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationParams {
    pub max_tokens: usize,
    /// 0 means greedy.
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub seed: u64,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self { max_tokens: 256, temperature: 0.7, top_p: Some(0.9), seed: 299_792_458 }
    }
}

impl GenerationParams {
    pub fn greedy(max_tokens: usize) -> Self {
        Self { max_tokens, temperature: 0.0, top_p: None, seed: 0 }
    }
}

/// Why a generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopReason {
    /// The model ended its turn.
    EndOfTurn,
    /// `max_tokens` reached.
    Length,
    /// The caller's token callback asked to stop (cancel).
    Cancelled,
}

/// A finished chat completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values were already cached from the previous sequence (the local writer's
    /// shared prefix); 0 where the backend cannot tell.
    pub reused_prompt_tokens: usize,
    pub completion_tokens: usize,
    pub stop: StopReason,
    /// Seconds spent on the prompt (prefill) and on generating, where the backend can tell them apart.
    pub prompt_seconds: f64,
    pub generate_seconds: f64,
}

/// Something that answers chat messages: the local GGUF writer or an OpenAI-compatible server.
pub trait ChatModel: Send {
    /// What is stored in a rationale's `model` column: stable for the same weights and backend.
    fn model_id(&self) -> String;

    /// The device a local model runs on ("CPU (1 threads)", "CUDA GPU"); `None` for a server.
    fn device_name(&self) -> Option<String> {
        None
    }

    /// Answers `messages`, calling `on_token` with each new piece of text as it is produced; `on_token` returning
    /// `Break` stops the generation (the text so far is returned with [`StopReason::Cancelled`]).
    fn chat(
        &mut self,
        messages: &[ChatMessage],
        params: &GenerationParams,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion>;

    /// Whether [`ChatModel::chat_batch`] decodes conversations together (then the writer hands it an item's
    /// perspectives at once); a server answers them one request each, concurrently across workers.
    fn batches(&self) -> bool {
        false
    }

    /// Answers several conversations (an item's perspectives); `on_token(i, piece)` streams conversation `i`. The
    /// local writer decodes them together in one batch (the weights are read once per step for all); the default
    /// answers them one after another.
    fn chat_batch(
        &mut self,
        conversations: &[Vec<ChatMessage>],
        params: &[GenerationParams],
        on_token: &mut dyn FnMut(usize, &str) -> ControlFlow<()>,
    ) -> Result<Vec<Completion>> {
        chat_one_by_one(self, conversations, params, on_token)
    }
}

/// Answers `conversations` one after another with [`ChatModel::chat`], stopping after a cancelled one.
pub fn chat_one_by_one<M: ChatModel + ?Sized>(
    model: &mut M,
    conversations: &[Vec<ChatMessage>],
    params: &[GenerationParams],
    on_token: &mut dyn FnMut(usize, &str) -> ControlFlow<()>,
) -> Result<Vec<Completion>> {
    let mut out = Vec::with_capacity(conversations.len());
    for (i, (messages, params)) in conversations.iter().zip(params).enumerate() {
        let completion = model.chat(messages, params, &mut |piece| on_token(i, piece))?;
        let cancelled = completion.stop == StopReason::Cancelled;
        out.push(completion);
        if cancelled {
            break;
        }
    }
    Ok(out)
}

/// Memory available to a new model, in bytes (`MemAvailable` of /proc/meminfo), or `None` where unknown.
/// `ARGUS_MEMORY_LIMIT_MIB` overrides it (useful to test the "model bigger than memory" path, and for users who
/// want to keep room for other work).
pub fn available_memory() -> Option<u64> {
    if let Some(mib) = std::env::var("ARGUS_MEMORY_LIMIT_MIB").ok().and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(mib << 20);
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib << 10)
}

/// Refuses to load `path` when it needs (about) `needed` bytes and less memory than that is available (or than
/// `budget`, when given).
pub fn check_memory(path: &Path, needed: u64, budget: Option<u64>) -> Result<()> {
    if let Some(available) = budget.or_else(available_memory)
        && needed > available
    {
        return Err(ModelError::TooBig {
            path: path.to_owned(),
            needed_mib: needed >> 20,
            available_mib: available >> 20,
        });
    }
    Ok(())
}

/// Threads for CPU inference and training: `ARGUS_THREADS`, else every core. The window stays responsive while a
/// model uses them all: its frames are 1-2 ms of work, and on 2 cores with the online learner updating on both,
/// the studio's frame p99 was 6.6 ms, max 9.1 ms (`argus --threads 2 bench train`, 2026-12-07); keeping a core
/// back (the earlier default) left training and writing at half speed on a 2-core machine.
pub fn default_threads() -> usize {
    if let Some(n) = std::env::var("ARGUS_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).filter(|&n| n > 0) {
        return n;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().max(1))
}
