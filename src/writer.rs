//! The studio's rationale writer, without the UI: its settings, the live text of rationales being written (shared
//! between the background job and whoever draws it), a loaded model kept between runs, and the job body that
//! fetches the model on first use, loads it, and writes rationales for chosen items.
//!
//! This module knows nothing of egui; the studio runs [`generate`] as a named job and reads [`Live`] each frame.

use std::path::PathBuf;
use std::sync::Mutex;

use crate::domain::{ItemId, RationaleId, Verdict};
use crate::formats::{self, Format, generate::Rendered, repair::RepairOutcome};
use crate::jobs::Progress;
use crate::models::{ChatModel, DeviceChoice};
use crate::prompting::Perspective;
use crate::rationales::{self, Backend, Event, RunOptions, Summary, WriterSettings};
use crate::store::Store;

/// State of one rationale being written.
#[derive(Clone, Debug, PartialEq)]
pub enum LiveState {
    Writing,
    AskingVerdict,
    Stored { verdict: Option<Verdict> },
    Failed(String),
}

/// A rationale being (or just) written, as the studio shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveRationale {
    pub item: ItemId,
    pub perspective: String,
    pub text: String,
    pub state: LiveState,
}

/// What the studio reads each frame while a run goes on.
#[derive(Debug, Default)]
pub struct Live {
    entries: Mutex<Vec<LiveRationale>>,
    /// The model and device in use, once loaded ("qwen2.5… on CPU (1 threads)").
    model: Mutex<Option<String>>,
    /// Bumped whenever a rationale is stored, so the studio knows to reload the item it shows.
    stored: std::sync::atomic::AtomicU64,
    /// The repaired rationale being written: (feedback row, text so far).
    repair: Mutex<Option<(i64, String)>>,
}

impl Live {
    /// Live rationales of `item` (those still being written, and those stored or failed in this run).
    pub fn for_item(&self, item: ItemId) -> Vec<LiveRationale> {
        self.entries.lock().map(|e| e.iter().filter(|r| r.item == item).cloned().collect()).unwrap_or_default()
    }

    pub fn model(&self) -> Option<String> {
        self.model.lock().ok().and_then(|m| m.clone())
    }

    pub fn stored_count(&self) -> u64 {
        self.stored.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The repaired rationale being written now (or last): (feedback row, text so far).
    pub fn repair_text(&self) -> Option<(i64, String)> {
        self.repair.lock().ok().and_then(|r| r.clone())
    }

    fn apply(&self, event: &Event) {
        let Ok(mut entries) = self.entries.lock() else { return };
        let find = |entries: &mut Vec<LiveRationale>, item: ItemId, p: &str| {
            entries.iter().position(|r| r.item == item && r.perspective == p)
        };
        match event {
            Event::Started { item, perspective } => {
                if let Some(i) = find(&mut entries, *item, perspective) {
                    entries.remove(i);
                }
                entries.push(LiveRationale {
                    item: *item,
                    perspective: perspective.clone(),
                    text: String::new(),
                    state: LiveState::Writing,
                });
            }
            Event::Token { item, perspective, text } => {
                if let Some(i) = find(&mut entries, *item, perspective) {
                    entries[i].text.push_str(text);
                }
            }
            Event::AskingVerdict { item, perspective } => {
                if let Some(i) = find(&mut entries, *item, perspective) {
                    entries[i].state = LiveState::AskingVerdict;
                }
            }
            Event::Stored { item, perspective, verdict, .. } => {
                if let Some(i) = find(&mut entries, *item, perspective) {
                    entries[i].state = LiveState::Stored { verdict: *verdict };
                }
                self.stored.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Event::Failed { item, perspective, error } => {
                if let Some(i) = find(&mut entries, *item, perspective) {
                    entries[i].state = LiveState::Failed(error.clone());
                }
            }
        }
    }
}

/// A model kept loaded between runs (loading a 1 GB GGUF takes seconds).
struct Loaded {
    key: String,
    models: Vec<Box<dyn ChatModel>>,
    description: String,
}

/// A format to show with the writer.
#[derive(Clone, Debug)]
pub struct FormatRequest {
    pub db: PathBuf,
    pub settings: WriterSettings,
    pub rationale: RationaleId,
    pub format: Format,
}

/// Feedback to apply with the writer.
#[derive(Clone, Debug)]
pub struct RepairRequest {
    pub db: PathBuf,
    pub settings: WriterSettings,
    pub feedback: i64,
    /// Device on which the ARG version in use re-scores the item afterwards (none: no re-score).
    pub rescore: Option<DeviceChoice>,
}

/// What to write.
#[derive(Clone, Debug)]
pub struct WriteRequest {
    pub db: PathBuf,
    pub settings: WriterSettings,
    pub items: Vec<ItemId>,
    pub perspectives: Vec<Perspective>,
}

/// The studio's writer: the live text of the current run and the model kept loaded between runs. Shared (in an
/// `Arc`) between the studio and its background job.
#[derive(Default)]
pub struct Writer {
    live: Live,
    loaded: Mutex<Option<Loaded>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("model", &self.live.model()).finish_non_exhaustive()
    }
}

/// Why the writer could not write: its model could not be had, or the work under it failed. Whatever was stored
/// before stays stored.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// A panic while a model was loaded or writing poisoned the writer's slot.
    #[error("the writer crashed earlier; restart Argus")]
    Crashed,
    #[error(transparent)]
    Cancelled(#[from] crate::jobs::Cancelled),
    #[error(transparent)]
    Backend(#[from] rationales::BackendError),
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Format(#[from] formats::FormatError),
    #[error(transparent)]
    Run(#[from] rationales::RunError),
}

impl WriterError {
    /// True when the work stopped because someone cancelled it (whichever layer noticed).
    pub fn is_cancelled(&self) -> bool {
        match self {
            Self::Cancelled(_)
            | Self::Model(crate::models::ModelError::Cancelled(_))
            | Self::Store(crate::store::StoreError::Cancelled(_)) => true,
            Self::Format(e) => e.is_cancelled(),
            Self::Backend(rationales::BackendError::Model(crate::models::ModelError::Cancelled(_))) => true,
            _ => false,
        }
    }
}

type Result<T, E = WriterError> = std::result::Result<T, E>;

impl Writer {
    pub fn live(&self) -> &Live {
        &self.live
    }

    /// Fetches (first use) and loads the writer of `settings`, or reuses the one loaded; the slot holds it.
    fn load(
        &self,
        settings: &WriterSettings,
        progress: &dyn Progress,
    ) -> Result<std::sync::MutexGuard<'_, Option<Loaded>>> {
        let key = settings.model_key();
        let mut slot = self.loaded.lock().map_err(|_| WriterError::Crashed)?;
        if slot.as_ref().is_none_or(|l| l.key != key) {
            *slot = None;
            let backend = Backend::from_settings(settings, progress)?;
            let description = backend.name();
            if progress.is_cancelled() {
                return Err(crate::jobs::Cancelled.into());
            }
            progress.set(0, 0, &format!("loading {description}"));
            let models = rationales::open_models(&backend)?;
            let description = match (&backend, models.first().and_then(|m| m.device_name())) {
                (Backend::OpenAi(s), _) => format!("{} at {} ({} at a time)", s.model, s.url, s.concurrency),
                (_, Some(device)) => format!("{description} on {device}"),
                (_, None) => description,
            };
            *slot = Some(Loaded { key, models, description });
        }
        if let (Ok(mut m), Some(loaded)) = (self.live.model.lock(), slot.as_ref()) {
            *m = Some(loaded.description.clone());
        }
        Ok(slot)
    }

    /// Shows rationale revision `request.rationale` in `request.format`: read from the store when a model already
    /// wrote it (nothing is loaded), else written by the writer (loaded on first use) and stored.
    pub fn render_format(&self, request: &FormatRequest, progress: &dyn Progress) -> Result<Rendered> {
        let store = Store::open(&request.db)?;
        let rationale = store.rationale(request.rationale)?;
        // Free text and side by side need no model, nor does a format some model has already written.
        if !request.format.needs_llm() || formats::generate::stored(&store, rationale.id, request.format)?.is_some() {
            return Ok(formats::generate::render(&store, &rationale, request.format, None, progress)?);
        }
        let mut slot = self.load(&request.settings, progress)?;
        let loaded = slot.as_mut().expect("loaded by load()");
        let model = loaded.models[0].as_mut();
        Ok(formats::generate::render(&store, &rationale, request.format, Some(model), progress)?)
    }

    /// "Apply feedback": the writer repairs the rationale the feedback row is about, streaming the new text into
    /// [`Live::repair_text`]; the new revision and the scored repair are stored.
    pub fn apply_feedback(
        &self,
        request: &RepairRequest,
        progress: &dyn Progress,
        wake: &dyn Fn(),
    ) -> Result<RepairOutcome> {
        let mut store = Store::open(&request.db)?;
        let mut slot = self.load(&request.settings, progress)?;
        let loaded = slot.as_mut().expect("loaded by load()");
        let model = loaded.models[0].as_mut();
        if let Ok(mut r) = self.live.repair.lock() {
            *r = Some((request.feedback, String::new()));
        }
        let mut rescore = request.rescore.map(|device| crate::guidance::train::rescorer(&request.db, device));
        let rescore = rescore.as_mut().map(|r| r as formats::repair::Rescore<'_>);
        let outcome =
            formats::repair::apply_feedback(&mut store, model, request.feedback, rescore, progress, &mut |t| {
                if let Ok(mut r) = self.live.repair.lock()
                    && let Some((_, text)) = r.as_mut()
                {
                    text.push_str(t);
                }
                wake();
            });
        if outcome.is_ok() {
            self.live.stored.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(outcome?)
    }

    /// Fetches (first use), loads (or reuses) the writer of `request.settings`, and writes rationales for
    /// `request.items` into the database. Progress says what it is doing; cancel keeps what is written; `wake` is
    /// called on every streamed piece of text.
    pub fn generate(&self, request: &WriteRequest, progress: &dyn Progress, wake: &dyn Fn()) -> Result<Summary> {
        let mut slot = self.load(&request.settings, progress)?;
        let loaded = slot.as_mut().expect("loaded by load()");
        let store = Store::open(&request.db)?;
        let options = RunOptions {
            perspectives: request.perspectives.clone(),
            items: Some(request.items.clone()),
            params: request.settings.params.clone(),
            ..Default::default()
        };
        let model_id = loaded.models[0].model_id();
        let plan = rationales::plan(&store, &model_id, &options)?;
        // The run borrows the models: they stay loaded for the next run.
        let summary = rationales::run(&store, &mut loaded.models, plan, &options, progress, &mut |event| {
            self.live.apply(event);
            wake();
        })?;
        Ok(summary)
    }
}
