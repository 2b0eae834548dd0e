//! [`ArgusApp`]: the eframe application, split the way rerun's viewer splits its app.
//!
//! - `mod.rs` (here): the app's state, how it starts, and the [`eframe::App`] impl: `logic` polls, `ui` draws.
//! - [`background`]: the named background jobs and the one [`background::Finished`] enum of their results.
//! - `start`: starting each kind of job; `logic`: applying finished jobs and re-reading what panels show.
//! - `handle`: the one place [`AppCommand`]s are carried out; `shortcuts`: keys to commands, from the command
//!   table in [`super::keys`].
//! - `menu` (the menu bar) and `central` (the central phases, the item panels and the windows): drawing only;
//!   they push commands and change no state of their own.

pub(super) mod background;
mod central;
mod handle;
mod logic;
mod menu;
mod shortcuts;
mod start;

use std::path::PathBuf;
use std::sync::Arc;

use self::background::BackgroundJobs;
use super::analysis_panel::AnalysisPanelState;
use super::command::{AppCommand, LLM_JOBS, Notice};
use super::import_dialog::ImportDialog;
use super::participant::{self, ParticipantRun, RunDialog};
use super::train_panel::{LiveRun, TrainPanelState};
use super::{
    agreement_panel, item_list, item_view, judgement_bar, perspectives, route_dialog, status_bar, study_designer,
    writer_settings,
};
use crate::config::{Settings, Theme};
use crate::domain::{ItemId, ItemSummary};
use crate::guidance::faithfulness::ItemSensitivity;
use crate::guidance::train::TokenWeight;
use crate::jobs::Waker;
use crate::store::ImportSummary;
use crate::store::formats::FormatRepairStats;
use crate::studio::{VersionsCache, Workspace};
use crate::writer::Writer;

/// How the studio starts.
#[derive(Clone, Debug)]
pub struct StudioOptions {
    /// Database to open; `None`: the last one, else the built-in demo.
    pub db: Option<PathBuf>,
    /// Fill the database with the bundled demo sample when it is empty (set for the built-in demo).
    pub seed_demo: bool,
    /// Annotator name; `None`: the remembered one, else asked for.
    pub annotator: Option<String>,
    /// Settings file (last database, annotator, theme).
    pub settings_path: PathBuf,
    /// Close the window after this many frames (smoke tests under Xvfb).
    pub quit_after_frames: Option<u64>,
    /// Device for local models, overriding the saved writer settings (`--device`).
    pub device: Option<crate::models::DeviceChoice>,
    /// Where the built-in demo lives (`paths::demo_db_path`; tests put it in a temp folder). Opening it without
    /// any model version trains its first one in the background.
    pub demo_db: PathBuf,
    /// Files to import: File ▸ Import's dialog opens on them once the database is open, with these options
    /// filled in (`argus --import FILE... [--map ...]`). Nothing is imported until the dialog's Start import.
    pub import: Option<(Vec<PathBuf>, crate::ingest::ImportFlags)>,
}

/// Where the window is: asking who annotates, opening a database, or showing it.
enum Phase {
    /// Asking who is annotating before opening `db`.
    ChooseAnnotator {
        name: String,
        db: PathBuf,
        seed_demo: bool,
    },
    /// The open job runs (see [`background::Task::Open`]).
    Opening {
        db: PathBuf,
    },
    Ready(Box<Workspace>),
    Failed {
        error: String,
    },
}

/// What the import job hands back.
pub(super) struct ImportResult {
    summaries: Vec<ImportSummary>,
    items: Vec<ItemSummary>,
    files: usize,
    /// The database and annotator the item list was loaded for.
    db: PathBuf,
    annotator: String,
    /// For a merge of colleagues' bundles: what it did.
    merge: Option<crate::store::bundle::MergeReport>,
}

/// Per-panel UI state that is not part of the workspace.
#[derive(Default)]
pub(super) struct PanelState {
    pub list: item_list::ListState,
    pub bar: judgement_bar::BarState,
    pub view: item_view::ViewState,
    pub show_help: bool,
    pub import: Option<ImportDialog>,
    pub show_perspectives: bool,
    pub perspectives: perspectives::PerspectivesState,
    pub writer_settings: Option<writer_settings::WriterSettingsDraft>,
    pub route: Option<route_dialog::RouteDialog>,
    pub train: TrainPanelState,
    pub designer: study_designer::DesignerState,
    pub run_dialog: Option<RunDialog>,
    pub analysis: AnalysisPanelState,
    pub agreement: agreement_panel::AgreementPanelState,
}

/// The studio application.
pub struct ArgusApp {
    ctx: egui::Context,
    pub(super) settings: Settings,
    settings_path: PathBuf,
    phase: Phase,
    /// Every background job, from its start until its result is applied.
    pub(super) jobs: BackgroundJobs,
    /// The last attention computed: (item, version, token weights).
    attention: Option<(ItemId, i64, Vec<TokenWeight>)>,
    /// The last (item, version) whose attention could not be computed (not asked again).
    attention_failed: Option<(ItemId, i64)>,
    /// The last faithfulness check of one item: (item, version, per-rationale sensitivities).
    faithfulness: Option<(ItemId, i64, Vec<ItemSensitivity>)>,
    /// Items routed to rationales + ARG whose rationales are being written: ARG predicts them when the writer ends.
    route_pending: Option<Vec<ItemId>>,
    /// The writer's speed in its last run this session (tokens/s), for routing's cost.
    writer_tokens_per_second: Option<f64>,
    /// Repairs by format, read on opening a database, after feedback is saved and after a repair (never per frame).
    pub(super) repair_stats: Vec<FormatRepairStats>,
    /// The training run in progress, or the last one (its curves stay in the Train panel).
    pub(super) train_run: Option<LiveRun>,
    /// The model versions, read when the Train panel opens, a run ends or a version is put in use.
    pub(super) versions: VersionsCache,
    /// The judgement count (since the version in use) at the last automatic retrain; cleared when that run
    /// succeeds. After a failed or cancelled run the next try waits for K more judgements instead of starting
    /// again after every judgement.
    auto_retrain_started_at: Option<u64>,
    /// The online learner between its updates (it travels into the job while one runs).
    pub(super) online: Option<Box<crate::guidance::online::OnlineLearner>>,
    /// Judgements (and undos) since the last online update started.
    pub(super) online_pending: u64,
    /// The last simulated annotator's curves (the Train panel plots them).
    pub(super) simulation: Option<crate::guidance::simulate::SimulationReport>,
    /// The demo's first model is training (started on opening the demo without any version).
    demo_model_training: bool,
    /// Where the built-in demo lives.
    demo_db: PathBuf,
    pub(super) writer: Arc<Writer>,
    /// `writer.live().stored_count()` when the shown item was last reloaded.
    writer_seen: u64,
    commands: Vec<AppCommand>,
    notice: Option<Notice>,
    pub(super) panels: PanelState,
    /// Participant mode: the run shown over the whole window instead of the studio.
    pub(super) participant: Option<ParticipantRun>,
    frames: u64,
    quit_after_frames: Option<u64>,
    /// The import dialog to open once the database is open (`StudioOptions::import`).
    pending_import: Option<(Vec<PathBuf>, crate::ingest::ImportFlags)>,
}

impl ArgusApp {
    /// Creates the app and starts opening the database in the background; returns at once.
    pub fn new(ctx: egui::Context, options: StudioOptions) -> Self {
        let mut settings = Settings::load_from(&options.settings_path);
        if let Some(device) = options.device {
            settings.writer.device = device;
        }
        apply_theme(&ctx, settings.theme);
        use_symbol_fallback_font(&ctx);
        let (db, seed_demo) = match options.db.clone().or_else(|| settings.last_db.clone()) {
            Some(db) => {
                let is_demo = db == options.demo_db;
                (db, options.seed_demo || is_demo)
            }
            None => (options.demo_db.clone(), true),
        };
        let annotator = options.annotator.clone().or_else(|| settings.annotator.clone());
        let mut app = Self {
            ctx,
            settings,
            settings_path: options.settings_path,
            phase: Phase::Failed { error: String::new() },
            jobs: BackgroundJobs::default(),
            attention: None,
            attention_failed: None,
            faithfulness: None,
            route_pending: None,
            writer_tokens_per_second: None,
            repair_stats: Vec::new(),
            train_run: None,
            versions: VersionsCache::default(),
            auto_retrain_started_at: None,
            online: None,
            online_pending: 0,
            demo_model_training: false,
            simulation: None,
            demo_db: options.demo_db,
            writer: Arc::new(Writer::default()),
            writer_seen: 0,
            commands: Vec::new(),
            notice: None,
            panels: PanelState::default(),
            participant: None,
            frames: 0,
            quit_after_frames: options.quit_after_frames,
            pending_import: options.import,
        };
        match annotator.filter(|a| !a.trim().is_empty()) {
            Some(name) => app.start_opening(db, seed_demo, name),
            None => app.phase = Phase::ChooseAnnotator { name: String::new(), db, seed_demo },
        }
        app
    }

    /// The open workspace, once loaded.
    pub fn workspace(&self) -> Option<&Workspace> {
        match &self.phase {
            Phase::Ready(ws) => Some(ws),
            _ => None,
        }
    }

    /// The error that stopped the database from opening, if any.
    pub fn open_error(&self) -> Option<&str> {
        match &self.phase {
            Phase::Failed { error } if !error.is_empty() => Some(error),
            _ => None,
        }
    }

    /// The status-bar message.
    pub fn notice(&self) -> Option<&Notice> {
        self.notice.as_ref()
    }

    /// Queues a command as if a panel had emitted it (handled at the end of the next frame).
    pub fn queue(&mut self, command: AppCommand) {
        self.commands.push(command);
    }

    /// True while a job that uses the writer's model runs (rationales, a format, a repair).
    pub(super) fn llm_job_running(&self) -> bool {
        LLM_JOBS.iter().any(|name| self.jobs.is_running(name))
    }

    /// True while a guidance model trains.
    pub(super) fn train_job_running(&self) -> bool {
        self.jobs.find(|t| *t == background::Task::Train).is_some()
    }

    /// What the status bar says of the writer: model and device once loaded, else the settings.
    fn writer_status(&self) -> String {
        match self.writer.live().model() {
            Some(model) => format!("writer: {model}"),
            None => {
                let w = &self.settings.writer;
                match w.backend {
                    crate::rationales::WriterBackend::Local => {
                        format!("writer: {} · device {}", w.local_model, w.device)
                    }
                    crate::rationales::WriterBackend::OpenAi => format!("writer: {} at {}", w.served_model, w.url),
                }
            }
        }
    }

    fn current_annotator(&self) -> String {
        match &self.phase {
            Phase::Ready(ws) => ws.annotator().to_owned(),
            _ => self.settings.annotator.clone().unwrap_or_default(),
        }
    }

    /// Wakes the window: what a job calls when it reports progress or finishes.
    fn waker(&self) -> Waker {
        let ctx = self.ctx.clone();
        Arc::new(move || ctx.request_repaint())
    }

    fn notify(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice { text: text.into(), is_error: false });
    }

    fn notify_error(&mut self, text: impl Into<String>) {
        let text = text.into();
        tracing::error!("{text}");
        self.notice = Some(Notice { text, is_error: true });
    }

    fn save_settings(&self) {
        if let Err(err) = self.settings.save_to(&self.settings_path) {
            tracing::warn!("{}: cannot save settings: {err}", self.settings_path.display());
        }
    }
}

impl eframe::App for ArgusApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.poll_jobs();
        self.frames += 1;
        if matches!(self.phase, Phase::Ready(_))
            && let Some((paths, flags)) = self.pending_import.take()
        {
            self.commands.push(AppCommand::ChooseImportWith(paths, flags));
        }
        if let Some(n) = self.quit_after_frames {
            // Smoke-test mode: keep drawing (egui otherwise waits for input) until the count is reached.
            if self.frames >= n {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            } else {
                ctx.request_repaint();
            }
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        // Participant mode: the run and nothing else (no menus, panels or studio keys).
        if let Some(run) = &mut self.participant {
            let out = participant::participant_ui(ui, run);
            self.commands.extend(out);
            self.handle_commands();
            return;
        }
        self.shortcuts(&ctx);
        egui::Panel::top("menu_bar").show(ui, |ui| self.menu_ui(ui));
        let running: Vec<_> = self.jobs.running().cloned().collect();
        let writer = self.writer_status();
        let ws = self.workspace();
        let out = egui::Panel::bottom("status_bar")
            .show(ui, |ui| status_bar::status_bar_ui(ui, ws, &running, self.notice.as_ref(), &writer))
            .inner;
        self.commands.extend(out);
        self.central_ui(ui);
        self.windows_ui(&ctx);
        self.handle_commands();
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.save_settings();
        self.checkpoint_online();
    }
}

/// Lets proportional text fall back on the bundled monospace font for the symbols Ubuntu-Light lacks (arrows such
/// as "→", geometric shapes), instead of drawing boxes.
fn use_symbol_fallback_font(ctx: &egui::Context) {
    let mut fonts = egui::FontDefinitions::default();
    if fonts.font_data.contains_key("Hack")
        && let Some(family) = fonts.families.get_mut(&egui::FontFamily::Proportional)
        && !family.iter().any(|f| f == "Hack")
    {
        family.push("Hack".to_owned());
        ctx.set_fonts(fonts);
    }
}

fn apply_theme(ctx: &egui::Context, theme: Theme) {
    ctx.set_theme(match theme {
        Theme::Dark => egui::Theme::Dark,
        Theme::Light => egui::Theme::Light,
    });
}
