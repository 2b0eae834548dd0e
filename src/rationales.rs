//! The rationale job: for each item and perspective, ask a chat model (local GGUF or OpenAI-compatible server) for
//! a rationale, then for the verdict it implies (ARG's `r_pred`), and store both at once with the exact prompt and
//! the model's id.
//!
//! Runs are resumable: a task is skipped when the item already has a rationale for that perspective written by the
//! same model from exactly the same prompt. A cancelled or failed run keeps every rationale already written; a
//! rationale cut short by a cancel is not stored. Models run on worker threads (one per model: several for a
//! server, up to its concurrency limit) and only the calling thread writes to the store.
//!
//! This module knows nothing of the UI: the studio and the CLI watch it through [`Event`]s and [`Progress`].

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use crate::domain::{ItemId, NewRationale, RationaleId, RationaleOrigin, Verdict};
use crate::jobs::Progress;
use crate::models::{ChatModel, Completion, DeviceChoice, GenerationParams, ModelError, StopReason};
use crate::prompting::{Perspective, parse_verdict, rationale_messages, verdict_messages};
use crate::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// What to generate.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub perspectives: Vec<Perspective>,
    /// Only these items (in this order); `None` means every item in id order.
    pub items: Option<Vec<ItemId>>,
    /// At most this many items that still need work.
    pub limit: Option<usize>,
    pub params: GenerationParams,
    /// Tokens allowed for the verdict answer.
    pub verdict_max_tokens: usize,
    /// Stop after this many failures in a row (a dead server should not fail slowly item after item).
    pub max_consecutive_failures: usize,
    /// Items a model that decodes in batches gets at once (all their perspectives in one batch).
    pub batch_items: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            perspectives: Vec::new(),
            items: None,
            limit: None,
            params: GenerationParams::default(),
            verdict_max_tokens: 12,
            max_consecutive_failures: 3,
            batch_items: 1,
        }
    }
}

/// One rationale to write.
#[derive(Clone, Debug)]
pub struct Task {
    pub item: ItemId,
    pub perspective: Perspective,
    pub news: String,
    /// The exact prompt (the chat messages as JSON), stored with the rationale.
    pub prompt: String,
}

/// The tasks of a run, and how many were skipped because they were done before.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub tasks: Vec<Task>,
    pub already_done: usize,
}

/// What a run reports as it goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Started {
        item: ItemId,
        perspective: String,
    },
    Token {
        item: ItemId,
        perspective: String,
        text: String,
    },
    /// The rationale is written; asking for its verdict.
    AskingVerdict {
        item: ItemId,
        perspective: String,
    },
    Stored {
        item: ItemId,
        perspective: String,
        rationale: RationaleId,
        verdict: Option<Verdict>,
    },
    Failed {
        item: ItemId,
        perspective: String,
        error: String,
    },
}

/// How a run went.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    pub written: usize,
    pub with_verdict: usize,
    pub already_done: usize,
    pub failed: usize,
    pub cancelled: bool,
    pub completion_tokens: usize,
    pub generate_seconds: f64,
    pub last_error: Option<String>,
}

/// The line `argus rationales` ends with.
impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wrote {} rationales ({} with a verdict), {} already done, {} failed; {:.1} tokens/s",
            self.written,
            self.with_verdict,
            self.already_done,
            self.failed,
            self.tokens_per_second()
        )
    }
}

impl Summary {
    pub fn tokens_per_second(&self) -> f64 {
        if self.generate_seconds > 0.0 { self.completion_tokens as f64 / self.generate_seconds } else { 0.0 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Model(#[from] ModelError),
    #[error("stopped after {failures} failures in a row; last: {last}")]
    TooManyFailures { failures: usize, last: String },
}

/// The exact prompt stored with a rationale: the chat messages, as JSON.
pub fn prompt_key(perspective: &Perspective, news: &str) -> String {
    serde_json::to_string(&rationale_messages(perspective, news)).unwrap_or_default()
}

/// Works out which (item, perspective) pairs still need a rationale from `model_id`.
pub fn plan(store: &Store, model_id: &str, options: &RunOptions) -> Result<Plan, RunError> {
    let ids = match &options.items {
        Some(ids) => ids.clone(),
        None => store.item_ids()?,
    };
    let perspectives: Vec<&Perspective> = options.perspectives.iter().filter(|p| p.generated).collect();
    let mut plan = Plan::default();
    let mut items_with_work = 0;
    for id in ids {
        if options.limit.is_some_and(|limit| items_with_work >= limit) {
            break;
        }
        let item = store.item(id)?;
        let news = item.news_text();
        let mut any = false;
        for p in &perspectives {
            let prompt = prompt_key(p, &news);
            if store.has_generated_rationale(id, &p.key, model_id, &prompt)? {
                plan.already_done += 1;
            } else {
                plan.tasks.push(Task { item: id, perspective: (*p).clone(), news: news.clone(), prompt });
                any = true;
            }
        }
        items_with_work += usize::from(any);
    }
    Ok(plan)
}

/// A finished task, sent from a worker to the writing thread.
enum Outcome {
    Written { task: Task, rationale: Completion, verdict: Option<Verdict>, model_id: String },
    Failed { task: Task, error: String },
    Cancelled,
}

enum Message {
    Event(Event),
    Outcome(Outcome),
}

/// Runs `plan` with one worker per model in `models` (borrowed: a caller can keep them loaded for the next run);
/// stores each rationale as it is finished.
pub fn run(
    store: &Store,
    models: &mut [Box<dyn ChatModel>],
    plan: Plan,
    options: &RunOptions,
    progress: &dyn Progress,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Summary, RunError> {
    let total = plan.tasks.len() as u64;
    let mut summary = Summary { already_done: plan.already_done, ..Default::default() };
    if plan.tasks.is_empty() || models.is_empty() {
        progress.set(0, 0, "nothing to do");
        return Ok(summary);
    }
    progress.set(0, total, "starting");
    let queue = Mutex::new(plan.tasks.into_iter().collect::<VecDeque<_>>());
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Message>();
    let started = Instant::now();
    let mut result: Result<(), RunError> = Ok(());
    std::thread::scope(|scope| {
        for model in models.iter_mut() {
            let tx = tx.clone();
            let (queue, stop) = (&queue, &stop);
            scope.spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) || progress.is_cancelled() {
                        break;
                    }
                    // A model that decodes in batches takes an item's perspectives at once.
                    let tasks: Vec<Task> = match queue.lock() {
                        Ok(mut q) => {
                            let mut tasks: Vec<Task> = q.pop_front().into_iter().collect();
                            let mut items = 1;
                            while model.batches()
                                && let Some(next) = q.front()
                                && (next.item == tasks[tasks.len() - 1].item || items < options.batch_items)
                            {
                                items += usize::from(next.item != tasks[tasks.len() - 1].item);
                                tasks.extend(q.pop_front());
                            }
                            tasks
                        }
                        Err(_) => Vec::new(),
                    };
                    if tasks.is_empty() {
                        break;
                    }
                    let outcomes = if tasks.len() == 1 {
                        tasks.into_iter().map(|t| write_one(model.as_mut(), t, options, progress, stop, &tx)).collect()
                    } else {
                        write_together(model.as_mut(), tasks, options, progress, stop, &tx)
                    };
                    let mut cancelled = false;
                    for outcome in outcomes {
                        cancelled |= matches!(outcome, Outcome::Cancelled);
                        if tx.send(Message::Outcome(outcome)).is_err() {
                            cancelled = true;
                        }
                    }
                    if cancelled {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut done = 0u64;
        let mut failures_in_a_row = 0usize;
        for message in rx {
            match message {
                Message::Event(event) => on_event(&event),
                Message::Outcome(Outcome::Cancelled) => summary.cancelled = true,
                Message::Outcome(Outcome::Failed { task, error }) => {
                    done += 1;
                    summary.failed += 1;
                    failures_in_a_row += 1;
                    summary.last_error = Some(error.clone());
                    on_event(&Event::Failed { item: task.item, perspective: task.perspective.key.clone(), error });
                    if failures_in_a_row >= options.max_consecutive_failures.max(1) && result.is_ok() {
                        stop.store(true, Ordering::Relaxed);
                        result = Err(RunError::TooManyFailures {
                            failures: failures_in_a_row,
                            last: summary.last_error.clone().unwrap_or_default(),
                        });
                    }
                }
                Message::Outcome(Outcome::Written { task, rationale, verdict, model_id }) => {
                    done += 1;
                    failures_in_a_row = 0;
                    let row = NewRationale {
                        perspective: task.perspective.key.clone(),
                        origin: RationaleOrigin::Generated,
                        model: Some(model_id),
                        prompt: Some(task.prompt.clone()),
                        text: rationale.text.clone(),
                        verdict,
                    };
                    match store.add_rationale(task.item, &row) {
                        Ok(id) => {
                            summary.written += 1;
                            summary.with_verdict += usize::from(verdict.is_some());
                            summary.completion_tokens += rationale.completion_tokens;
                            summary.generate_seconds += rationale.generate_seconds;
                            on_event(&Event::Stored {
                                item: task.item,
                                perspective: task.perspective.key.clone(),
                                rationale: id,
                                verdict,
                            });
                        }
                        Err(e) => {
                            // The store failing is not the model's fault: stop, keeping what is written.
                            stop.store(true, Ordering::Relaxed);
                            if result.is_ok() {
                                result = Err(e.into());
                            }
                        }
                    }
                    let rate = summary.tokens_per_second();
                    progress.set(
                        done,
                        total,
                        &format!(
                            "{done}/{total} rationales · {rate:.1} tok/s · {:.0} s",
                            started.elapsed().as_secs_f64()
                        ),
                    );
                }
            }
        }
    });
    if progress.is_cancelled() {
        summary.cancelled = true;
    }
    result.map(|()| summary)
}

fn write_one(
    model: &mut dyn ChatModel,
    task: Task,
    options: &RunOptions,
    progress: &dyn Progress,
    stop: &AtomicBool,
    tx: &mpsc::Sender<Message>,
) -> Outcome {
    let key = task.perspective.key.clone();
    let _ = tx.send(Message::Event(Event::Started { item: task.item, perspective: key.clone() }));
    let mut on_token = |piece: &str| {
        let _ = tx.send(Message::Event(Event::Token { item: task.item, perspective: key.clone(), text: piece.into() }));
        if progress.is_cancelled() || stop.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let messages = rationale_messages(&task.perspective, &task.news);
    let rationale = match model.chat(&messages, &options.params, &mut on_token) {
        Ok(c) if c.stop == StopReason::Cancelled => return Outcome::Cancelled,
        Ok(c) if c.text.trim().is_empty() => {
            let mut error = "the model wrote an empty rationale".to_owned();
            if model.model_id().starts_with("openai:") {
                error.push_str(
                    " (a server that cuts a streamed answer short when another request arrives does this, as \
                     llama-cpp-python's does unless started with --interrupt_requests False: lower the concurrency)",
                );
            }
            return Outcome::Failed { task, error };
        }
        Ok(c) => c,
        Err(ModelError::Cancelled(_)) => return Outcome::Cancelled,
        Err(e) => return Outcome::Failed { task, error: e.to_string() },
    };
    let _ = tx.send(Message::Event(Event::AskingVerdict { item: task.item, perspective: key.clone() }));
    let question = verdict_messages(&task.perspective, &task.news, &rationale.text);
    let params = GenerationParams::greedy(options.verdict_max_tokens);
    let mut quiet = |_: &str| {
        if progress.is_cancelled() || stop.load(Ordering::Relaxed) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let verdict = match model.chat(&question, &params, &mut quiet) {
        Ok(c) if c.stop == StopReason::Cancelled => return Outcome::Cancelled,
        Ok(c) => parse_verdict(&c.text),
        Err(ModelError::Cancelled(_)) => return Outcome::Cancelled,
        Err(e) => return Outcome::Failed { task, error: format!("asking for the verdict: {e}") },
    };
    Outcome::Written { model_id: model.model_id(), task, rationale, verdict }
}

/// Writes the perspectives of one item together (`ChatModel::chat_batch`): their rationales decoded in one batch,
/// each streaming into its own card, then their verdict questions in another, each continuing its own conversation.
/// Returns an outcome per task, in order.
fn write_together(
    model: &mut dyn ChatModel,
    tasks: Vec<Task>,
    options: &RunOptions,
    progress: &dyn Progress,
    stop: &AtomicBool,
    tx: &mpsc::Sender<Message>,
) -> Vec<Outcome> {
    for task in &tasks {
        let _ = tx.send(Message::Event(Event::Started { item: task.item, perspective: task.perspective.key.clone() }));
    }
    let halted = || progress.is_cancelled() || stop.load(Ordering::Relaxed);
    let asks: Vec<_> = tasks.iter().map(|t| rationale_messages(&t.perspective, &t.news)).collect();
    let params = vec![options.params.clone(); tasks.len()];
    let mut on_token = |i: usize, piece: &str| {
        let task = &tasks[i];
        let event = Event::Token { item: task.item, perspective: task.perspective.key.clone(), text: piece.into() };
        let _ = tx.send(Message::Event(event));
        if halted() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    };
    let rationales = match model.chat_batch(&asks, &params, &mut on_token) {
        Ok(r) => r,
        Err(ModelError::Cancelled(_)) => return vec![Outcome::Cancelled],
        Err(e) => return tasks.into_iter().map(|task| Outcome::Failed { task, error: e.to_string() }).collect(),
    };
    if rationales.len() < tasks.len() || rationales.iter().any(|c| c.stop == StopReason::Cancelled) {
        return vec![Outcome::Cancelled];
    }
    // The batch's decoding time, shared by its rationales (for the run's tokens/s).
    let share = tasks.len() as f64;
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(tasks.len());
    let mut asking = Vec::new();
    for (i, (task, mut rationale)) in tasks.into_iter().zip(rationales).enumerate() {
        rationale.generate_seconds /= share;
        if rationale.text.trim().is_empty() {
            outcomes.push(Some(Outcome::Failed { task, error: "the model wrote an empty rationale".to_owned() }));
        } else {
            let _ = tx.send(Message::Event(Event::AskingVerdict {
                item: task.item,
                perspective: task.perspective.key.clone(),
            }));
            asking.push((i, task, rationale));
            outcomes.push(None);
        }
    }
    if !asking.is_empty() {
        let questions: Vec<_> =
            asking.iter().map(|(_, t, r)| verdict_messages(&t.perspective, &t.news, &r.text)).collect();
        let params = vec![GenerationParams::greedy(options.verdict_max_tokens); questions.len()];
        let mut quiet = |_: usize, _: &str| if halted() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) };
        let answers = match model.chat_batch(&questions, &params, &mut quiet) {
            Ok(a) if a.len() == questions.len() && a.iter().all(|c| c.stop != StopReason::Cancelled) => a,
            Ok(_) | Err(ModelError::Cancelled(_)) => return vec![Outcome::Cancelled],
            Err(e) => {
                let error = format!("asking for the verdict: {e}");
                for (i, task, _) in asking {
                    outcomes[i] = Some(Outcome::Failed { task, error: error.clone() });
                }
                return outcomes.into_iter().flatten().collect();
            }
        };
        let model_id = model.model_id();
        for ((i, task, rationale), answer) in asking.into_iter().zip(answers) {
            let verdict = parse_verdict(&answer.text);
            outcomes[i] = Some(Outcome::Written { model_id: model_id.clone(), task, rationale, verdict });
        }
    }
    outcomes.into_iter().flatten().collect()
}

/// Where rationales come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriterBackend {
    #[default]
    Local,
    OpenAi,
}

/// A rationale writer's settings: which backend (a local GGUF model on a device, or an OpenAI-compatible server)
/// and how it samples. The studio remembers them between sessions; the CLI builds them from its flags, so the
/// defaults live here and in [`GenerationParams::default`] only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriterSettings {
    pub backend: WriterBackend,
    /// Local: a catalog name or a GGUF path.
    pub local_model: String,
    pub device: DeviceChoice,
    /// OpenAI-compatible server: base URL and served model name.
    pub url: String,
    pub served_model: String,
    /// Name of the environment variable with the API key (the key itself is never stored).
    pub api_key_env: String,
    pub concurrency: usize,
    pub params: GenerationParams,
}

impl Default for WriterSettings {
    fn default() -> Self {
        Self {
            backend: WriterBackend::Local,
            local_model: crate::models::catalog::DEMO_GENERATOR.to_owned(),
            device: DeviceChoice::Auto,
            url: "http://127.0.0.1:8080/v1".to_owned(),
            served_model: String::new(),
            api_key_env: "OPENAI_API_KEY".to_owned(),
            concurrency: 4,
            params: GenerationParams::default(),
        }
    }
}

impl WriterSettings {
    /// A key that changes whenever a different model would be loaded.
    pub(crate) fn model_key(&self) -> String {
        match self.backend {
            WriterBackend::Local => format!("local:{}:{}", self.local_model, self.device),
            WriterBackend::OpenAi => format!("openai:{}:{}:{}", self.url, self.served_model, self.concurrency),
        }
    }
}

/// Which model writes the rationales.
#[derive(Clone, Debug)]
pub enum Backend {
    /// A local GGUF file, on `device`.
    Local {
        gguf: std::path::PathBuf,
        device: crate::models::DeviceChoice,
        options: crate::models::generator::GeneratorOptions,
    },
    /// An OpenAI-compatible server (vLLM, llama.cpp server, Ollama), `concurrency` requests at a time.
    OpenAi(crate::models::openai::OpenAiSettings),
}

/// Why a writer's settings give no backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The OpenAI-compatible backend without a served model's name.
    #[error("the OpenAI-compatible backend needs a model name (Models > Writer settings)")]
    NoServedModel,
    /// The local model could not be fetched.
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl Backend {
    /// The one place a writer's settings become a backend (the CLI builds [`WriterSettings`] from its flags, the
    /// studio keeps them in its settings): a local catalog model is fetched first if missing (progress says so), a
    /// path is taken as it is; the server's API key is read from the environment variable the settings name.
    pub fn from_settings(settings: &WriterSettings, progress: &dyn Progress) -> Result<Self, BackendError> {
        match settings.backend {
            WriterBackend::Local => {
                let gguf = crate::models::fetch::resolve(&settings.local_model, progress)?;
                Ok(Backend::Local { gguf, device: settings.device, options: Default::default() })
            }
            WriterBackend::OpenAi => {
                if settings.served_model.trim().is_empty() {
                    return Err(BackendError::NoServedModel);
                }
                Ok(Backend::OpenAi(crate::models::openai::OpenAiSettings {
                    url: settings.url.clone(),
                    model: settings.served_model.clone(),
                    api_key: std::env::var(&settings.api_key_env).ok().filter(|k| !k.is_empty()),
                    concurrency: settings.concurrency.max(1),
                    ..Default::default()
                }))
            }
        }
    }

    /// A short name: the GGUF's file name, or the served model's name.
    pub fn name(&self) -> String {
        match self {
            Backend::Local { gguf, .. } => {
                gguf.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
            }
            Backend::OpenAi(s) => s.model.clone(),
        }
    }
}

/// Opens the models of `backend`: one local writer, or one client per allowed concurrent request.
pub fn open_models(backend: &Backend) -> Result<Vec<Box<dyn ChatModel>>, ModelError> {
    match backend {
        Backend::Local { gguf, device, options } => {
            let device = device.open()?;
            let generator = crate::models::generator::Generator::load(gguf, &device, options)?;
            Ok(vec![Box::new(generator)])
        }
        Backend::OpenAi(settings) => {
            let client = crate::models::openai::OpenAiChat::new(settings.clone());
            Ok((0..client.concurrency().max(1)).map(|_| Box::new(client.clone()) as Box<dyn ChatModel>).collect())
        }
    }
}

/// A perspective key that the database does not know.
#[derive(Debug, thiserror::Error)]
pub enum PerspectiveError {
    #[error("no perspective `{key}` (known: {})", known.join(", "))]
    Unknown {
        key: String,
        /// The keys of the perspectives a model writes.
        known: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The database's perspectives with these keys, in the order given.
pub fn perspectives_named(store: &Store, keys: &[String]) -> Result<Vec<Perspective>, PerspectiveError> {
    let all = store.perspectives()?;
    keys.iter()
        .map(|key| {
            all.iter().find(|p| &p.key == key).cloned().ok_or_else(|| PerspectiveError::Unknown {
                key: key.clone(),
                known: all.iter().filter(|p| p.generated).map(|p| p.key.clone()).collect(),
            })
        })
        .collect()
}

/// Errors of [`write`].
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Opens the writer of `settings` and writes what `options` asks for ([`Backend::from_settings`], [`open_models`],
/// [`plan`], [`run`]); `on_plan` hears the model's id and the plan before the first rationale is written.
pub fn write(
    store: &Store,
    settings: &WriterSettings,
    options: &RunOptions,
    progress: &dyn Progress,
    on_plan: &mut dyn FnMut(&str, &Plan),
    on_event: &mut dyn FnMut(&Event),
) -> Result<Summary, WriteError> {
    let backend = Backend::from_settings(settings, progress)?;
    let mut models = open_models(&backend)?;
    let model_id = models.first().map(|m| m.model_id()).unwrap_or_default();
    let plan = plan(store, &model_id, options)?;
    on_plan(&model_id, &plan);
    Ok(run(store, &mut models, plan, options, progress, on_event)?)
}
