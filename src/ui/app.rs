//! [`ArgusApp`]: the eframe application. Polls background jobs in `logic`, draws the panels in `ui`, and handles
//! the commands the panels return in one place ([`ArgusApp::handle_commands`]).

use std::path::{Path, PathBuf};

use egui::{Key, Modifiers};

use super::analysis_panel::{self, AnalysisView};
use super::import_dialog::{ImportDialog, import_dialog_ui};
use super::participant::{self, ParticipantRun, RunDialog};
use super::train_panel::{self, LiveRun};
use super::{agreement_panel, study_designer};
use super::{help, item_list, item_view, judgement_bar, perspectives, status_bar, writer_settings};
use crate::config::{Settings, Theme};
use crate::domain::{ItemId, ItemSummary, RationaleId, Verdict};
use crate::formats::Format;
use crate::formats::generate::{Rendered, Status};
use crate::formats::repair::RepairOutcome;
use crate::guidance::net::ModelKind;
use crate::guidance::train::{TokenWeight, TrainReport, TrainRequest};
use crate::ingest::{self, ColumnMap, ImportOptions, LabelMap, export::ExportFormat};
use crate::jobs::{Job, JobRegistry, Progress, Waker};
use crate::store::formats::FormatRepairStats;
use crate::store::studies::Timing;
use crate::store::{ImportSummary, Store};
use crate::studies::flow::Step;
use crate::studies::spec::StudySpec;
use crate::studio::{self, Command, Outcome, VersionsCache, Workspace};
use crate::writer::{FormatRequest, RepairRequest, WriteRequest, Writer, WriterSettings};
use std::sync::{Arc, Mutex};

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
}

/// Something a panel asks for. Handled once per frame by [`ArgusApp::handle_commands`].
#[derive(Clone, Debug, PartialEq)]
pub enum AppCommand {
    /// A user action on the open workspace.
    Studio(Command),
    OpenDatabase(PathBuf),
    OpenDemo,
    /// Ask how to import these files (format, column map) before importing.
    ChooseImport(Vec<PathBuf>),
    /// Import files in the background; `map`, `labels` as on the command line.
    ImportFiles {
        paths: Vec<PathBuf>,
        map: Option<String>,
        labels: Option<String>,
        name: Option<String>,
    },
    Export {
        format: ExportFormat,
        path: PathBuf,
    },
    SetAnnotator(String),
    SwitchAnnotator,
    SetTheme(Theme),
    ToggleHelp,
    TogglePerspectives,
    /// Write rationales (and their verdicts) for these items with the rationale writer, in the background.
    WriteRationales(Vec<ItemId>),
    /// Fetch the demo encoder and rationale writer in the background.
    FetchDemoModels,
    /// Encode every text of the database into the encoder cache (for the guidance model), in the background.
    EncodeItems,
    ToggleWriterSettings,
    SetWriterSettings(WriterSettings),
    /// Show or hide the Train panel (`t`).
    ToggleTrainPanel,
    /// Train a new guidance model version in the background: from version `from` (incremental) or from scratch.
    Retrain {
        kind: ModelKind,
        from: Option<i64>,
        max_epochs: usize,
        seed: u64,
    },
    /// Retrain automatically after every this many new judgements (0 = off); saved in the settings.
    SetAutoRetrain(u64),
    /// Show the rationales in this explanation format (keys `1`..`8`); kept across items.
    SetFormat(Format),
    /// Have the rationale writer restructure rationale revision `rationale` as `format`, in the background
    /// (the "format" job); the item reloads when it is stored.
    RenderFormat {
        rationale: RationaleId,
        format: Format,
    },
    /// Have the rationale writer apply a saved feedback form, in the background (the "repair" job): a new
    /// revision, scored.
    ApplyFeedback {
        feedback_id: i64,
    },
    /// Compute ARG `version`'s attention over `item`'s news tokens, in the background (the "attention" job), to
    /// shade the news by it.
    LoadAttention {
        item: ItemId,
        version: i64,
    },
    /// Show or hide the Study designer (Studies menu).
    ToggleStudyDesigner,
    /// Resolve a valid draft study's items in the database and plan its first participants (the designer's preview).
    PreviewStudy(Box<StudySpec>),
    /// Ask which study and participant code to run (Studies ▸ Run a participant…).
    OpenRunParticipant,
    /// Start (or resume) participant `code` in study `study` and switch the window to participant mode.
    StartParticipant {
        study: String,
        code: String,
    },
    /// Answer the participant's current step (committed before the next step shows).
    AnswerStep {
        answers: Vec<(String, String)>,
        timing: Timing,
    },
    /// Leave participant mode (after the end of the run) and show the studio again.
    LeaveParticipantMode,
    /// Show or hide the Analysis panel (Studies menu); it analyses the chosen study when it opens.
    ToggleAnalysisPanel,
    /// Analyse the study, version and exclusions chosen in the Analysis panel again.
    RunAnalysis,
    /// Write a study's tidy export into a folder, in the background.
    ExportStudy {
        name: String,
        dir: PathBuf,
    },
    /// Show or hide the Agreement panel (Studies menu); it reads agreement and disagreements when it opens.
    ToggleAgreementPanel,
    /// Read the agreement figures and open disagreements again.
    ReloadAgreement,
    CancelJob(String),
    DismissMessage,
    Quit,
}

enum Phase {
    /// Asking who is annotating before opening `db`.
    ChooseAnnotator {
        name: String,
        db: PathBuf,
        seed_demo: bool,
    },
    Opening {
        job: Job<Workspace>,
        db: PathBuf,
    },
    Ready(Box<Workspace>),
    Failed {
        error: String,
    },
}

/// A message in the status bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

struct ImportResult {
    summaries: Vec<ImportSummary>,
    items: Vec<ItemSummary>,
    files: usize,
    /// The database and annotator the item list was loaded for.
    db: PathBuf,
    annotator: String,
}

/// Name of the import job; while it runs, the workspace does not write (the import holds SQLite's write lock).
const IMPORT_JOB: &str = "import";
/// Name of the rationale writer's job.
pub const WRITER_JOB: &str = "rationale writer";
/// Name of the model fetching job.
pub const FETCH_JOB: &str = "fetch models";
/// Name of the encoding job.
pub const ENCODE_JOB: &str = "encoder";
/// Name of the job that computes ARG's attention over a news text.
pub const ATTENTION_JOB: &str = "attention";
/// Name of the job that writes a rationale in a structured explanation format.
pub const FORMAT_JOB: &str = "format";
/// Name of the job that applies feedback to a rationale.
pub const REPAIR_JOB: &str = "repair";
/// The jobs that use the rationale writer's model (one at a time).
const LLM_JOBS: [&str; 3] = [WRITER_JOB, FORMAT_JOB, REPAIR_JOB];

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
    pub train: train_panel::TrainPanelState,
    pub designer: study_designer::DesignerState,
    pub run_dialog: Option<RunDialog>,
    pub analysis: analysis_panel::AnalysisPanelState,
    pub agreement: agreement_panel::AgreementPanelState,
}

/// The studio application.
pub struct ArgusApp {
    ctx: egui::Context,
    settings: Settings,
    settings_path: PathBuf,
    phase: Phase,
    jobs: JobRegistry,
    import_job: Option<Job<ImportResult>>,
    export_job: Option<Job<String>>,
    writer_job: Option<Job<crate::rationales::Summary>>,
    /// Writing a structured format: the job, the rationale revision and the format.
    format_job: Option<(Job<Rendered>, RationaleId, Format)>,
    /// ARG's attention over a news text being computed: (job, item, version).
    attention_job: Option<(Job<Vec<TokenWeight>>, ItemId, i64)>,
    /// The last attention computed: (item, version, token weights).
    attention: Option<(ItemId, i64, Vec<TokenWeight>)>,
    /// The last (item, version) whose attention could not be computed (not asked again).
    attention_failed: Option<(ItemId, i64)>,
    /// Applying feedback: the job and the feedback row.
    repair_job: Option<(Job<RepairOutcome>, i64)>,
    /// Repairs by format, read on opening a database, after feedback is saved and after a repair (never per frame).
    repair_stats: Vec<FormatRepairStats>,
    fetch_job: Option<Job<String>>,
    encode_job: Option<Job<crate::encoding::EncodingSummary>>,
    train_job: Option<Job<TrainReport>>,
    /// The training run in progress, or the last one (its curves stay in the Train panel).
    train_run: Option<LiveRun>,
    /// The model versions, read when the Train panel opens, a run ends or a version is put in use.
    versions: VersionsCache,
    /// The judgement count (since the version in use) at the last automatic retrain; cleared when that run
    /// succeeds. After a failed or cancelled run the next try waits for K more judgements instead of starting
    /// again after every judgement.
    auto_retrain_started_at: Option<u64>,
    writer: Arc<Writer>,
    /// `writer.live().stored_count()` when the shown item was last reloaded.
    writer_seen: u64,
    commands: Vec<AppCommand>,
    notice: Option<Notice>,
    panels: PanelState,
    /// Participant mode: the run shown over the whole window instead of the studio.
    participant: Option<ParticipantRun>,
    /// Writing a study's tidy export.
    study_export_job: Option<Job<String>>,
    frames: u64,
    quit_after_frames: Option<u64>,
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
                let is_demo = db == crate::config::demo_db_path();
                (db, options.seed_demo || is_demo)
            }
            None => (crate::config::demo_db_path(), true),
        };
        let annotator = options.annotator.clone().or_else(|| settings.annotator.clone());
        let mut app = Self {
            ctx,
            settings,
            settings_path: options.settings_path,
            phase: Phase::Failed { error: String::new() },
            jobs: JobRegistry::default(),
            import_job: None,
            export_job: None,
            writer_job: None,
            format_job: None,
            attention_job: None,
            attention: None,
            attention_failed: None,
            repair_job: None,
            repair_stats: Vec::new(),
            fetch_job: None,
            encode_job: None,
            train_job: None,
            train_run: None,
            versions: VersionsCache::default(),
            auto_retrain_started_at: None,
            writer: Arc::new(Writer::default()),
            writer_seen: 0,
            commands: Vec::new(),
            notice: None,
            panels: PanelState::default(),
            participant: None,
            study_export_job: None,
            frames: 0,
            quit_after_frames: options.quit_after_frames,
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

    /// True while the database is being opened or the item list loaded.
    pub fn is_loading(&self) -> bool {
        matches!(self.phase, Phase::Opening { .. })
    }

    /// The error that stopped the database from opening, if any.
    pub fn open_error(&self) -> Option<&str> {
        match &self.phase {
            Phase::Failed { error } if !error.is_empty() => Some(error),
            _ => None,
        }
    }

    /// Queues a command as if a panel had emitted it (handled at the end of the next frame).
    pub fn queue(&mut self, command: AppCommand) {
        self.commands.push(command);
    }

    /// True while the import dialog is open.
    pub fn is_import_dialog_open(&self) -> bool {
        self.panels.import.is_some()
    }

    /// The status-bar message.
    pub fn notice(&self) -> Option<&Notice> {
        self.notice.as_ref()
    }

    /// True while any background job runs.
    pub fn has_running_jobs(&self) -> bool {
        self.jobs.running().next().is_some()
    }

    /// The rationale writer's settings.
    pub fn writer_settings(&self) -> &WriterSettings {
        &self.settings.writer
    }

    /// Live rationales of `item` in the current (or last) writer run.
    pub fn live_rationales(&self, item: ItemId) -> Vec<crate::writer::LiveRationale> {
        self.writer.live().for_item(item)
    }

    /// True while the rationale writer runs.
    pub fn is_writing(&self) -> bool {
        self.jobs.is_running(WRITER_JOB)
    }

    /// True while a job that uses the writer's model runs (rationales, a format, a repair).
    pub fn is_llm_busy(&self) -> bool {
        LLM_JOBS.iter().any(|name| self.jobs.is_running(name))
    }

    /// The quote hovered in the news or in a format view: (rationale revision, location in the format).
    pub fn hovered_quote(&self) -> Option<(RationaleId, String)> {
        self.panels.view.explain.hovered.as_ref().map(|k| (k.rationale, k.location.clone()))
    }

    /// The format the item view shows the rationales in.
    pub fn format(&self) -> Format {
        self.panels.view.format
    }

    /// Repairs by format, as last read.
    pub fn repair_stats(&self) -> &[FormatRepairStats] {
        &self.repair_stats
    }

    /// Re-reads the repairs by format (on events only: opening, feedback saved, a repair done).
    fn reload_repair_stats(&mut self) {
        let Phase::Ready(ws) = &self.phase else { return };
        match ws.repair_stats() {
            Ok(stats) => self.repair_stats = stats,
            Err(err) => tracing::warn!("cannot read the repairs by format: {err}"),
        }
    }

    /// Starts writing rationale revision `rationale` as `format` with the writer, in the background.
    fn start_rendering(&mut self, rationale: RationaleId, format: Format) {
        if self.is_llm_busy() {
            self.notify("The writer is busy; wait for the running job or cancel it.");
            return;
        }
        let Phase::Ready(ws) = &self.phase else { return };
        let request = FormatRequest { db: ws.db_path(), settings: self.settings.writer.clone(), rationale, format };
        let writer = self.writer.clone();
        let spawned = self.jobs.spawn(FORMAT_JOB, self.waker(), move |p: &crate::jobs::JobState| {
            p.set(0, 0, &format!("{} of rationale {rationale}", format.title().to_lowercase()));
            Ok(writer.render_format(&request, p)?)
        });
        match spawned {
            Ok(job) => {
                self.format_job = Some((job, rationale, format));
                self.notify(format!("Writing the {}…", format.title().to_lowercase()));
            }
            Err(err) => self.notify_error(err.to_string()),
        }
    }

    /// Starts computing ARG `version`'s attention over `item`'s news tokens, in the background.
    fn start_attention(&mut self, item: ItemId, version: i64) {
        if self.attention_job.is_some()
            || self.attention_failed == Some((item, version))
            || self.attention.as_ref().is_some_and(|(i, v, _)| (*i, *v) == (item, version))
        {
            return;
        }
        let Phase::Ready(ws) = &self.phase else { return };
        let db = ws.db_path();
        let device = self.settings.writer.device;
        let spawned = self.jobs.spawn(ATTENTION_JOB, self.waker(), move |p: &crate::jobs::JobState| {
            Ok(crate::guidance::train::news_attention(&db, version, item, device, p)?)
        });
        match spawned {
            Ok(job) => self.attention_job = Some((job, item, version)),
            Err(err) => self.notify_error(err.to_string()),
        }
    }

    /// Starts applying feedback row `feedback` with the writer, in the background.
    fn start_repair(&mut self, feedback: i64) {
        if self.is_llm_busy() {
            self.notify("The writer is busy; wait for the running job or cancel it.");
            return;
        }
        let Phase::Ready(ws) = &self.phase else { return };
        // The ARG version in use re-scores the item afterwards, when there is one.
        let rescore = ws.active_versions().arg.map(|_| self.settings.writer.device);
        let request = RepairRequest { db: ws.db_path(), settings: self.settings.writer.clone(), feedback, rescore };
        let writer = self.writer.clone();
        let waker = self.waker();
        let wake = waker.clone();
        let spawned = self.jobs.spawn(REPAIR_JOB, waker, move |p: &crate::jobs::JobState| {
            p.set(0, 0, "applying the feedback");
            Ok(writer.apply_feedback(&request, p, &*wake)?)
        });
        match spawned {
            Ok(job) => {
                self.repair_job = Some((job, feedback));
                self.notify("Applying the feedback…");
            }
            Err(err) => self.notify_error(err.to_string()),
        }
    }

    /// True while the window shows a participant's run instead of the studio (participant mode).
    pub fn is_participant_mode(&self) -> bool {
        self.participant.is_some()
    }

    /// The participant's current step: (index, steps before the end, the step).
    pub fn participant_step(&self) -> Option<(usize, usize, Step)> {
        self.participant.as_ref().map(|r| {
            let (index, total, step) = r.current();
            (index, total, step.clone())
        })
    }

    /// The step (1-based) a resumed participant run started at, until its first answer.
    pub fn participant_resumed_at(&self) -> Option<usize> {
        self.participant.as_ref().and_then(ParticipantRun::resumed_at)
    }

    /// What the study library said of the participant's last submission.
    pub fn participant_error(&self) -> Option<&str> {
        self.participant.as_ref().and_then(ParticipantRun::error)
    }

    /// The Study designer's draft and what is wrong with it (`None`: it validates).
    pub fn study_draft(&self) -> (&StudySpec, Option<&str>) {
        (self.panels.designer.spec(), self.panels.designer.problem())
    }

    /// What the Study designer's last open, save or register did.
    pub fn study_designer_message(&self) -> Option<&str> {
        self.panels.designer.message()
    }

    /// The Analysis panel's last result.
    pub fn study_analysis(&self) -> Option<&crate::studies::analysis::Analysis> {
        match &self.panels.analysis.result {
            Some(Ok(view)) => Some(&view.analysis),
            _ => None,
        }
    }

    /// How long the Analysis panel's last analysis took, in milliseconds.
    pub fn study_analysis_millis(&self) -> Option<f64> {
        match &self.panels.analysis.result {
            Some(Ok(view)) => Some(view.millis),
            _ => None,
        }
    }

    /// The Agreement panel's figures, as last read.
    pub fn agreement_summary(&self) -> Option<&crate::studies::metrics::AgreementSummary> {
        match &self.panels.agreement.summary {
            Some(Ok(summary)) => Some(summary),
            _ => None,
        }
    }

    /// The disagreements the Agreement panel's Adjudication tab lists, as last read.
    pub fn open_disagreements(&self) -> &[studio::DisagreementDetail] {
        &self.panels.agreement.disagreements
    }

    /// Re-reads the registered studies for the Analysis panel and the participant dialog.
    fn reload_study_lists(&mut self) {
        let Phase::Ready(ws) = &self.phase else { return };
        match ws.studies() {
            Ok(list) => {
                if let Some(dialog) = &mut self.panels.run_dialog {
                    dialog.studies = list.iter().map(|s| s.name.clone()).collect();
                }
                self.panels.analysis.studies = list;
                self.panels.analysis.pick_defaults();
            }
            Err(err) => self.notify_error(format!("Cannot read the studies: {err}")),
        }
    }

    /// Analyses the study, version and exclusions chosen in the Analysis panel, through the workspace and on the UI
    /// thread: 24-36 ms for 24 simulated participants of the example study in a debug build (2,000 bootstrap
    /// resamples per interval), under the 50 ms that would call for a background job. The panel shows the time.
    fn run_analysis(&mut self) {
        let Phase::Ready(ws) = &self.phase else { return };
        let state = &mut self.panels.analysis;
        let Some(name) = state.study.clone() else {
            state.result = None;
            return;
        };
        let started = std::time::Instant::now();
        let result = ws.analyse_study(&name, state.version, state.exclusions).and_then(|analysis| {
            let times = ws.study_item_times(&name, analysis.version, state.exclusions)?;
            Ok((analysis, times))
        });
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        tracing::debug!("analysis of study `{name}` took {millis:.1} ms");
        state.result =
            Some(result.map(|(analysis, times)| AnalysisView { analysis, times, millis }).map_err(|e| e.to_string()));
    }

    /// Re-reads the agreement figures and the open disagreements for the Agreement panel.
    fn reload_agreement(&mut self) {
        let Phase::Ready(ws) = &self.phase else { return };
        let state = &mut self.panels.agreement;
        state.summary = Some(ws.agreement_summary().map_err(|e| e.to_string()));
        match ws.disagreements() {
            Ok(d) => state.disagreements = d,
            Err(err) => state.summary = Some(Err(err.to_string())),
        }
        state.clamp_selection();
    }

    /// Writes study `name`'s tidy export into `dir`, in the background.
    fn start_study_export(&mut self, name: String, dir: PathBuf) {
        let Phase::Ready(ws) = &self.phase else { return };
        let db = ws.db_path();
        let spawned = self.jobs.spawn("study export", self.waker(), move |p: &crate::jobs::JobState| {
            p.set(0, 0, "exporting the study");
            let store = Store::open(&db)?;
            let s = crate::studies::export::export_study(&store, &name, &dir)?;
            Ok(format!(
                "Exported study `{name}`: {} response rows, {} participants, {} files in {}",
                s.responses,
                s.participants,
                s.files.len(),
                dir.display()
            ))
        });
        match spawned {
            Ok(job) => self.study_export_job = Some(job),
            Err(err) => self.notify_error(err.to_string()),
        }
    }

    /// True while a guidance model trains.
    pub fn is_training(&self) -> bool {
        self.train_job.is_some()
    }

    /// True while the Train panel is open.
    pub fn is_train_panel_open(&self) -> bool {
        self.panels.train.open
    }

    /// Epochs of the training run in progress (or the last one), as they ended.
    pub fn training_epochs(&self) -> Vec<crate::guidance::train::EpochRecord> {
        self.train_run.as_ref().and_then(|r| r.epochs.lock().ok().map(|e| e.clone())).unwrap_or_default()
    }

    /// The model versions as the Train panel last read them.
    pub fn model_versions(&self) -> &VersionsCache {
        &self.versions
    }

    /// Re-reads the model versions for the Train panel (on opening it, after a run, after a roll back).
    fn reload_versions(&mut self) {
        let Phase::Ready(ws) = &self.phase else { return };
        match ws.versions() {
            Ok(versions) => {
                self.versions = versions;
                self.panels.train.pick_defaults(&self.versions);
            }
            Err(err) => self.notify_error(format!("Cannot read the model versions: {err:#}")),
        }
    }

    /// Starts training a new `kind` version in the background; `automatic`: started by the retrain setting.
    fn start_training(&mut self, kind: ModelKind, from: Option<i64>, max_epochs: usize, seed: u64, automatic: bool) {
        let Phase::Ready(ws) = &self.phase else { return };
        if self.train_job.is_some() {
            self.notify("A model is already training; cancel it first or wait for it.");
            return;
        }
        let mut request = TrainRequest::new(kind);
        request.from = from;
        request.device = self.settings.writer.device;
        request.options.max_epochs = max_epochs.max(1);
        request.options.seed = seed;
        let db = ws.db_path();
        let replaces = ws.active_versions().of(kind);
        let epochs = Arc::new(Mutex::new(Vec::new()));
        let (live, waker) = (epochs.clone(), self.waker());
        let wake = waker.clone();
        let name = format!("Training {}", kind.human_name());
        let spawned = self.jobs.spawn(name, waker, move |p: &crate::jobs::JobState| {
            Ok(crate::guidance::train::train(&db, &request, p, &mut |epoch| {
                if let Ok(mut e) = live.lock() {
                    e.push(epoch.clone());
                }
                wake();
            })?)
        });
        match spawned {
            Ok(job) => {
                self.train_job = Some(job);
                self.train_run = Some(LiveRun {
                    kind,
                    max_epochs: max_epochs.max(1),
                    from,
                    replaces,
                    epochs,
                    version: None,
                    automatic,
                });
            }
            Err(err) => self.notify_error(err.to_string()),
        }
    }

    /// After a judgement: with the automatic-retrain setting on, starts an incremental retrain of the Train panel's
    /// model kind once enough judgements were made since its version in use (and none is training).
    fn maybe_retrain_automatically(&mut self) {
        let every = self.settings.retrain_every_judgements;
        if every == 0 || self.train_job.is_some() {
            return;
        }
        let Phase::Ready(ws) = &self.phase else { return };
        let kind = self.panels.train.kind;
        let in_use = ws.active_versions().of(kind);
        let count = ws.judgements_since_version_in_use(kind);
        let count = match count {
            Ok(n) => n,
            Err(err) => {
                tracing::warn!("automatic retrain: cannot count judgements: {err}");
                return;
            }
        };
        let waited = self.auto_retrain_started_at.is_none_or(|at| count >= at + every);
        if count >= every && waited {
            let (max_epochs, seed) = (self.panels.train.max_epochs, self.panels.train.seed);
            self.start_training(kind, in_use, max_epochs, seed, true);
            if self.train_job.is_some() {
                let from = in_use.map_or_else(|| "from scratch".to_owned(), |v| format!("from version {v}"));
                self.notify(format!(
                    "{count} new judgements: retraining {} {from} in the background.",
                    kind.human_name()
                ));
                self.auto_retrain_started_at = Some(count);
            }
        }
    }

    /// A training job ended: say how the new version compares, refresh the versions and the list order.
    fn training_finished(&mut self, result: anyhow::Result<TrainReport>, cancelled: bool) {
        let run = self.train_run.as_mut();
        let (kind, automatic) = run.as_ref().map_or((ModelKind::Arg, false), |r| (r.kind, r.automatic));
        let (from, replaces) = run.as_ref().map_or((None, None), |r| (r.from, r.replaces));
        match result {
            Ok(report) => {
                if let Some(run) = run {
                    run.version = Some(report.version);
                }
                if automatic {
                    self.auto_retrain_started_at = None;
                }
                self.reload_versions();
                self.panels.train.show_new_version(&self.versions, report.version, report.parent.or(replaces));
                let beside = match self.panels.train.b.and_then(|b| self.versions.row(b)) {
                    Some(b) => match b.test.as_ref() {
                        Some(m) => format!(
                            ", beside {:.3} of version {}{} ({:+.3})",
                            m.macro_f1,
                            b.id,
                            if report.parent == Some(b.id) { ", its parent" } else { "" },
                            report.test.macro_f1 - m.macro_f1
                        ),
                        None => String::new(),
                    },
                    None => " (the first version)".to_owned(),
                };
                let unused = if report.unused_perspectives.is_empty() {
                    String::new()
                } else {
                    format!(
                        " It does not read the {} rationales (its parent had no such perspective): retrain from \
                         scratch to include them.",
                        report.unused_perspectives.join(", ")
                    )
                };
                self.notify(format!(
                    "{} version {}: test macro-F1 {:.3}{beside}; best epoch {} of {}, {:.1} s. It is now in use.{unused}",
                    report.kind.human_name(),
                    report.version,
                    report.test.macro_f1,
                    report.best_epoch,
                    report.epochs.len(),
                    report.train_secs
                ));
                self.commands.push(AppCommand::Studio(Command::ReloadPredictions));
            }
            Err(_) if cancelled => self.notify("Training cancelled; nothing of that run was stored."),
            Err(err) => {
                let hint = if from.is_some() {
                    " (if the perspectives changed since that version, train from scratch)"
                } else {
                    ""
                };
                self.notify_error(format!("Training {} failed: {err:#}{hint}", kind.human_name()));
            }
        }
    }

    /// What the status bar says of the writer: model and device once loaded, else the settings.
    fn writer_status(&self) -> String {
        match self.writer.live().model() {
            Some(model) => format!("writer: {model}"),
            None => {
                let w = &self.settings.writer;
                match w.backend {
                    crate::writer::WriterBackend::Local => format!("writer: {} · device {}", w.local_model, w.device),
                    crate::writer::WriterBackend::OpenAi => format!("writer: {} at {}", w.served_model, w.url),
                }
            }
        }
    }

    fn start_writing(&mut self, items: Vec<ItemId>) {
        if self.is_llm_busy() {
            self.notify("The writer is busy; wait for the running job or cancel it.");
            return;
        }
        if items.is_empty() {
            self.notify("No items to write rationales for.");
            return;
        }
        let Phase::Ready(ws) = &self.phase else { return };
        let perspectives: Vec<_> = ws.perspectives().iter().filter(|p| p.generated).cloned().collect();
        let count = items.len();
        let request = WriteRequest { db: ws.db_path(), settings: self.settings.writer.clone(), items, perspectives };
        let writer = self.writer.clone();
        let waker = self.waker();
        let wake = waker.clone();
        let spawned =
            self.jobs.spawn(WRITER_JOB, waker, move |p: &crate::jobs::JobState| Ok(writer.generate(&request, p, &*wake)?));
        match spawned {
            Ok(job) => {
                self.writer_job = Some(job);
                self.notify(format!("Writing rationales for {count} item(s)…"));
            }
            Err(err) => self.notify_error(err.to_string()),
        }
    }

    fn start_encoding(&mut self) {
        let Phase::Ready(ws) = &self.phase else { return };
        let db = ws.db_path();
        let device = self.settings.writer.device;
        let waker = self.waker();
        let spawned = self.jobs.spawn(ENCODE_JOB, waker, move |p: &crate::jobs::JobState| {
            Ok(crate::encoding::encode_database(&db, crate::models::catalog::DEMO_ENCODER, device, 170, p)?)
        });
        match spawned {
            Ok(job) => self.encode_job = Some(job),
            Err(err) => self.notify_error(err.to_string()),
        }
    }

    fn start_fetch(&mut self) {
        let waker = self.waker();
        let spawned = self.jobs.spawn(FETCH_JOB, waker, move |p: &crate::jobs::JobState| {
            let mut fetched = Vec::new();
            for name in [crate::models::catalog::DEMO_ENCODER, crate::models::catalog::DEMO_GENERATOR] {
                let path = crate::models::fetch::ensure(name, p)?;
                fetched.push(path.display().to_string());
            }
            Ok(format!("Models ready: {}", fetched.join(", ")))
        });
        match spawned {
            Ok(job) => self.fetch_job = Some(job),
            Err(err) => self.notify_error(err.to_string()),
        }
    }

    fn waker(&self) -> Waker {
        let ctx = self.ctx.clone();
        std::sync::Arc::new(move || ctx.request_repaint())
    }

    fn start_opening(&mut self, db: PathBuf, seed_demo: bool, annotator: String) {
        let waker = self.waker();
        let job_db = db.clone();
        let name = annotator.clone();
        match self.jobs.spawn("open database", waker, move |p| Ok(Workspace::open(&job_db, &name, seed_demo, p)?)) {
            Ok(job) => {
                self.settings.annotator = Some(annotator);
                self.phase = Phase::Opening { job, db };
            }
            Err(err) => self.notify_error(err.to_string()),
        }
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

    /// Per-frame work that draws nothing: finished jobs are applied here.
    fn poll_jobs(&mut self) {
        if let Phase::Opening { job, db } = &mut self.phase
            && let Some(result) = job.try_take()
        {
            match result {
                Ok(ws) => {
                    self.settings.last_db = Some(db.clone());
                    self.save_settings();
                    self.phase = Phase::Ready(Box::new(ws));
                    self.reload_repair_stats();
                }
                Err(err) => self.phase = Phase::Failed { error: format!("{err:#}") },
            }
        }
        if let Some(job) = &mut self.import_job
            && let Some(result) = job.try_take()
        {
            self.import_job = None;
            match result {
                Ok(done) => {
                    let items: usize = done.summaries.iter().map(|s| s.items).sum();
                    let rationales: usize = done.summaries.iter().map(|s| s.rationales).sum();
                    let mut text =
                        format!("Imported {items} items and {rationales} rationales from {} file(s).", done.files);
                    if let Phase::Ready(ws) = &mut self.phase {
                        // Only if the same database and annotator are still open.
                        if ws.db_path() == done.db && ws.annotator() == done.annotator {
                            if let Err(err) = ws.replace_items(done.items) {
                                text = format!("{text} The list could not be refreshed: {err}");
                            }
                        } else {
                            text = format!("{text} (into {})", done.db.display());
                        }
                    }
                    self.notify(text);
                }
                Err(err) if matches!(err.downcast_ref(), Some(ingest::ImportError::Cancelled(_))) => {
                    self.notify("Import cancelled; nothing was imported.");
                }
                Err(err) => self.notify_error(format!("Import failed, nothing was imported: {err:#}")),
            }
        }
        if let Some(job) = &mut self.writer_job
            && let Some(result) = job.try_take()
        {
            self.writer_job = None;
            match result {
                Ok(s) if s.cancelled => self.notify(format!(
                    "Stopped: {} rationale(s) written and kept; the rest can be written later.",
                    s.written
                )),
                Ok(s) => {
                    let failed = if s.failed > 0 {
                        format!(" {} failed (last: {}).", s.failed, s.last_error.clone().unwrap_or_default())
                    } else {
                        String::new()
                    };
                    self.notify(format!(
                        "Wrote {} rationale(s), {} with a verdict ({:.1} tokens/s); {} were already there.{failed}",
                        s.written,
                        s.with_verdict,
                        s.tokens_per_second(),
                        s.already_done
                    ));
                }
                Err(err) => self.notify_error(format!("The rationale writer stopped: {err:#}")),
            }
        }
        if let Some((job, _, format)) = &mut self.format_job
            && let Some(result) = job.try_take()
        {
            let (format, cancelled) = (*format, job.state().is_cancelled());
            self.format_job = None;
            self.format_finished(format, result, cancelled);
        }
        if let Some((job, item, version)) = &mut self.attention_job
            && let Some(result) = job.try_take()
        {
            let (item, version) = (*item, *version);
            self.attention_job = None;
            match result {
                Ok(weights) => self.attention = Some((item, version, weights)),
                Err(err) => {
                    self.attention_failed = Some((item, version));
                    self.notify_error(format!("ARG's attention could not be computed: {err:#}"));
                }
            }
        }
        if let Some((job, _)) = &mut self.repair_job
            && let Some(result) = job.try_take()
        {
            let cancelled = job.state().is_cancelled();
            self.repair_job = None;
            self.repair_finished(result, cancelled);
        }
        if let Some(job) = &mut self.encode_job
            && let Some(result) = job.try_take()
        {
            self.encode_job = None;
            match result {
                Ok(s) => self.notify(format!(
                    "Encoded {} texts ({} were cached already) with {} on {} in {:.1} s.",
                    s.stats.encoded, s.stats.hits, s.encoder, s.device, s.seconds
                )),
                Err(err) if matches!(err.downcast_ref(), Some(crate::models::ModelError::Cancelled(_))) => {
                    self.notify("Encoding stopped; what was encoded stays cached.");
                }
                Err(err) => self.notify_error(format!("Encoding failed: {err:#}")),
            }
        }
        if let Some(job) = &mut self.train_job
            && let Some(result) = job.try_take()
        {
            let cancelled = job.state().is_cancelled();
            self.train_job = None;
            self.training_finished(result, cancelled);
        }
        if let Some(job) = &mut self.fetch_job
            && let Some(result) = job.try_take()
        {
            self.fetch_job = None;
            match result {
                Ok(text) => self.notify(text),
                Err(err) => self.notify_error(format!("Fetching models failed: {err:#}")),
            }
        }
        // Rationales stored by the writer's own connection: reload the shown item.
        let stored = self.writer.live().stored_count();
        if stored != self.writer_seen {
            self.writer_seen = stored;
            self.commands.push(AppCommand::Studio(Command::Refresh));
        }
        if let Some(job) = &mut self.export_job
            && let Some(result) = job.try_take()
        {
            self.export_job = None;
            match result {
                Ok(text) => self.notify(text),
                Err(err) => self.notify_error(format!("Export failed: {err:#}")),
            }
        }
        if let Some(job) = &mut self.study_export_job
            && let Some(result) = job.try_take()
        {
            self.study_export_job = None;
            match result {
                Ok(text) => self.notify(text),
                Err(err) => self.notify_error(format!("Study export failed: {err:#}")),
            }
        }
    }

    /// A format job ended: reload the item so that it shows (or say why not).
    fn format_finished(&mut self, format: Format, result: anyhow::Result<Rendered>, cancelled: bool) {
        let name = format.title().to_lowercase();
        match result {
            Ok(rendered) => {
                self.commands.push(AppCommand::Studio(Command::Refresh));
                let revision = rendered.rationale.revision;
                if rendered.status == Status::Fallback {
                    let notice = rendered.notice.unwrap_or_default();
                    self.notify_error(format!("The {name} of revision {revision} is shown as free text: {notice}"));
                } else {
                    let unsupported = match rendered.unsupported {
                        0 => String::new(),
                        1 => "; 1 quote is not in the news".to_owned(),
                        n => format!("; {n} quotes are not in the news"),
                    };
                    self.notify(format!("Wrote the {name} of revision {revision}{unsupported}."));
                }
            }
            Err(_) if cancelled => self.notify(format!("Stopped writing the {name}; nothing was stored.")),
            Err(err) => self.notify_error(format!("Writing the {name} failed: {err:#}")),
        }
    }

    /// A repair job ended: reload the item and the repair statistics, and say how it went.
    fn repair_finished(&mut self, result: anyhow::Result<RepairOutcome>, cancelled: bool) {
        match result {
            Ok(o) => {
                self.commands.push(AppCommand::Studio(Command::Refresh));
                self.reload_repair_stats();
                let verdict = |v: Option<Verdict>| v.map_or("unknown", Verdict::as_str);
                let success = match o.success {
                    Some(true) => "success",
                    Some(false) => "no success",
                    None => "not scored",
                };
                let locality = o.locality.map_or_else(|| "locality —".to_owned(), |l| format!("locality {l:.2}"));
                self.notify(format!(
                    "repaired: revision {}, verdict {} → {}, {success}, {locality}",
                    o.revision,
                    verdict(o.verdict_before),
                    verdict(o.verdict_after)
                ));
            }
            Err(_) if cancelled => self.notify("Stopped applying the feedback; nothing was stored."),
            Err(err) => self.notify_error(format!("Applying the feedback failed: {err:#}")),
        }
    }

    /// Keyboard shortcuts of the labelling flow; ignored while a text field has the keyboard, and letter keys only
    /// count without modifiers (alt+f is not f).
    fn shortcuts(&mut self, ctx: &egui::Context) {
        if !matches!(self.phase, Phase::Ready(_)) {
            return;
        }
        let typing = ctx.text_edit_focused();
        // A widget reached with Tab (a radio button, a button) takes Space and Esc leaves it.
        let focused = ctx.memory(|m| m.focused().is_some());
        let mut out = Vec::new();
        let mut leave_field = false;
        ctx.input_mut(|i| {
            if typing {
                leave_field = i.consume_key(Modifiers::NONE, Key::Escape);
                return;
            }
            if focused && !self.panels.show_help {
                leave_field = i.consume_key(Modifiers::NONE, Key::Escape);
            }
            if i.modifiers.command_only() && i.consume_key(Modifiers::COMMAND, Key::Z) {
                out.push(AppCommand::Studio(Command::Undo));
            }
            if i.consume_key(Modifiers::NONE, Key::Questionmark)
                || i.consume_key(Modifiers::SHIFT, Key::Questionmark)
                || i.consume_key(Modifiers::SHIFT, Key::Slash)
            {
                out.push(AppCommand::ToggleHelp);
            }
            if i.consume_key(Modifiers::NONE, Key::Escape) && self.panels.show_help {
                out.push(AppCommand::ToggleHelp);
            }
            if !i.modifiers.is_none() {
                return;
            }
            if i.consume_key(Modifiers::NONE, Key::Slash) {
                self.panels.list.focus_search = true;
            }
            let bar = &self.panels.bar;
            // In the Agreement panel's Adjudication tab, f / r / u record the final verdict of the item shown there.
            let agreement = &self.panels.agreement;
            for (key, verdict) in [(Key::F, Verdict::Fake), (Key::R, Verdict::Real), (Key::U, Verdict::Other)] {
                if i.consume_key(Modifiers::NONE, key) {
                    if agreement.takes_verdict_keys() {
                        out.extend(agreement.adjudicate(verdict));
                    } else {
                        out.push(AppCommand::Studio(bar.judge_command(verdict)));
                    }
                }
            }
            if i.consume_key(Modifiers::NONE, Key::W)
                && let Phase::Ready(ws) = &self.phase
                && let Some(id) = ws.selected_id()
            {
                out.push(AppCommand::WriteRationales(vec![id]));
            }
            if i.consume_key(Modifiers::NONE, Key::T) {
                out.push(AppCommand::ToggleTrainPanel);
            }
            if !focused && i.consume_key(Modifiers::NONE, Key::Space) {
                out.push(AppCommand::Studio(Command::Skip));
            }
            let number_keys = [Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5, Key::Num6, Key::Num7, Key::Num8];
            for (key, format) in number_keys.into_iter().zip(Format::ALL) {
                if i.consume_key(Modifiers::NONE, key) {
                    out.push(AppCommand::SetFormat(format));
                }
            }
            for key in [Key::J, Key::ArrowDown] {
                if i.consume_key(Modifiers::NONE, key) {
                    out.push(AppCommand::Studio(Command::Next));
                }
            }
            for key in [Key::K, Key::ArrowUp] {
                if i.consume_key(Modifiers::NONE, key) {
                    out.push(AppCommand::Studio(Command::Previous));
                }
            }
        });
        if leave_field {
            ctx.memory_mut(|m| {
                if let Some(id) = m.focused() {
                    m.surrender_focus(id);
                }
            });
        }
        self.commands.extend(out);
    }

    /// True while an import writes: the workspace's own writes would wait on SQLite's lock, so they are refused.
    pub fn writes_paused(&self) -> bool {
        self.jobs.is_running(IMPORT_JOB)
    }

    /// Carries out the commands the panels emitted this frame. Store writes are committed before this returns.
    pub fn handle_commands(&mut self) {
        for command in std::mem::take(&mut self.commands) {
            self.handle(command);
        }
    }

    fn handle(&mut self, command: AppCommand) {
        match command {
            AppCommand::Studio(cmd) => {
                let writes = matches!(
                    cmd,
                    Command::Judge { .. }
                        | Command::Undo
                        | Command::ReviseRationale { .. }
                        | Command::SavePerspective(_)
                        | Command::ResetPerspective(_)
                        | Command::UseModelVersion(_)
                        | Command::SaveFeedback(_)
                        | Command::RestoreRevision(_)
                        | Command::RegisterStudy(_)
                        | Command::Adjudicate { .. }
                );
                if writes && self.writes_paused() {
                    self.notify_error("Not saved: an import is writing to the database; judge again when it is done.");
                    return;
                }
                let Phase::Ready(ws) = &mut self.phase else { return };
                let is_judge = matches!(cmd, Command::Judge { .. });
                let is_register = matches!(cmd, Command::RegisterStudy(_));
                // The revision number a restore brings back, for the status line.
                let restoring = match &cmd {
                    Command::RestoreRevision(id) => ws.detail().and_then(|d| {
                        d.explain.values().flat_map(|e| &e.revisions).find(|r| r.id == *id).map(|r| r.revision)
                    }),
                    _ => None,
                };
                match ws.apply(cmd) {
                    Ok(Outcome::Judged { verdict, .. }) => {
                        self.panels.bar.clear_after_judgement();
                        self.notify(format!("Saved: {}", verdict.human_name()));
                        self.maybe_retrain_automatically();
                    }
                    Ok(Outcome::VersionInUse { version, kind }) => {
                        self.reload_versions();
                        let name = kind.human_name();
                        self.notify(format!("{name} version {version} is now in use; the list order follows it."));
                    }
                    Ok(Outcome::Undone { item, verdict }) => {
                        self.notify(format!("Undone: {} on item {item}", verdict.human_name()));
                    }
                    Ok(Outcome::NothingToUndo) => self.notify("Nothing to undo in this session."),
                    Ok(Outcome::Revised { revision, .. }) => {
                        self.panels.view.editing = None;
                        match restoring {
                            Some(old) => self.notify(format!("Restored revision {old} as revision {revision}.")),
                            None => self.notify(format!("Saved the correction as revision {revision}.")),
                        }
                    }
                    Ok(Outcome::FeedbackSaved { .. }) => self.reload_repair_stats(),
                    Ok(Outcome::PerspectiveSaved { key }) => {
                        self.panels.perspectives.forget(&key);
                        self.notify(format!("Saved perspective '{key}'."));
                    }
                    Ok(Outcome::StudyRegistered { name, version, outcome }) => {
                        self.panels.designer.registered(&name, version, outcome);
                        self.notify(format!("Registered study `{name}` version {version} ({outcome:?})."));
                        self.reload_study_lists();
                        if self.panels.analysis.open {
                            self.run_analysis();
                        }
                    }
                    Ok(Outcome::Adjudicated { item, verdict }) => {
                        self.panels.agreement.note.clear();
                        self.reload_agreement();
                        self.notify(format!("Final verdict on item {item}: {}", verdict.human_name()));
                    }
                    Ok(_) => {}
                    Err(err) if is_judge => self.notify_error(format!("Not saved: {err}")),
                    Err(err) if is_register => {
                        self.panels.designer.register_failed(err.to_string());
                        self.notify_error(format!("Study not registered: {err}"));
                    }
                    Err(err) => self.notify_error(err.to_string()),
                }
            }
            AppCommand::OpenDatabase(db) => {
                let annotator = self.current_annotator();
                let format = self.panels.view.format;
                self.panels = PanelState::default();
                self.panels.view.format = format;
                if self.train_job.is_none() {
                    self.train_run = None;
                }
                let seed_demo = db == crate::config::demo_db_path();
                self.start_opening(db, seed_demo, annotator);
            }
            AppCommand::OpenDemo => self.handle(AppCommand::OpenDatabase(crate::config::demo_db_path())),
            AppCommand::ChooseImport(paths) => {
                let dialog = ImportDialog::new(paths);
                if dialog.is_ready_as_is() {
                    self.handle(dialog.command());
                } else {
                    self.panels.import = Some(dialog);
                }
            }
            AppCommand::ImportFiles { paths, map, labels, name } => {
                let options = (|| -> anyhow::Result<ImportOptions> {
                    Ok(ImportOptions {
                        format: None,
                        columns: map.as_deref().map(ColumnMap::parse).transpose()?,
                        labels: labels.as_deref().map(LabelMap::parse).transpose()?.unwrap_or_default(),
                        dataset_name: name,
                    })
                })();
                match options {
                    Ok(options) => self.start_import(paths, options),
                    Err(err) => self.notify_error(format!("Import not started: {err}")),
                }
            }
            AppCommand::Export { format, path } => self.start_export(format, path),
            AppCommand::SetAnnotator(name) => {
                if let Phase::ChooseAnnotator { db, seed_demo, .. } = &self.phase {
                    let (db, seed_demo) = (db.clone(), *seed_demo);
                    self.start_opening(db, seed_demo, name.trim().to_owned());
                    self.save_settings();
                }
            }
            AppCommand::SwitchAnnotator => {
                let db = match &self.phase {
                    Phase::Ready(ws) => ws.db_path(),
                    _ => crate::config::demo_db_path(),
                };
                let seed_demo = db == crate::config::demo_db_path();
                self.ctx.data_mut(|d| d.remove_temp::<bool>(egui::Id::unique(ANNOTATOR_AUTOFOCUS)));
                self.phase = Phase::ChooseAnnotator { name: String::new(), db, seed_demo };
            }
            AppCommand::SetTheme(theme) => {
                self.settings.theme = theme;
                apply_theme(&self.ctx, theme);
                self.save_settings();
            }
            AppCommand::ToggleHelp => self.panels.show_help = !self.panels.show_help,
            AppCommand::TogglePerspectives => self.panels.show_perspectives = !self.panels.show_perspectives,
            AppCommand::WriteRationales(items) => self.start_writing(items),
            AppCommand::FetchDemoModels => self.start_fetch(),
            AppCommand::EncodeItems => self.start_encoding(),
            AppCommand::ToggleWriterSettings => {
                self.panels.writer_settings = match self.panels.writer_settings {
                    Some(_) => None,
                    None => Some(writer_settings::WriterSettingsDraft::new(self.settings.writer.clone())),
                };
            }
            AppCommand::SetWriterSettings(writer) => {
                self.settings.writer = writer;
                self.save_settings();
                self.notify("Writer settings saved; the model is (re)loaded at the next run.");
            }
            AppCommand::ToggleTrainPanel => {
                self.panels.train.open = !self.panels.train.open;
                if self.panels.train.open {
                    self.reload_versions();
                }
            }
            AppCommand::Retrain { kind, from, max_epochs, seed } => {
                self.start_training(kind, from, max_epochs, seed, false);
            }
            AppCommand::SetFormat(format) => self.panels.view.format = format,
            AppCommand::RenderFormat { rationale, format } => self.start_rendering(rationale, format),
            AppCommand::ApplyFeedback { feedback_id } => self.start_repair(feedback_id),
            AppCommand::LoadAttention { item, version } => self.start_attention(item, version),
            AppCommand::SetAutoRetrain(every) => {
                self.settings.retrain_every_judgements = every;
                self.auto_retrain_started_at = None;
                self.save_settings();
            }
            AppCommand::CancelJob(name) => {
                if let Some(job) = self.jobs.running().find(|j| j.name() == name) {
                    job.cancel();
                }
            }
            AppCommand::ToggleStudyDesigner => self.panels.designer.open = !self.panels.designer.open,
            AppCommand::PreviewStudy(spec) => {
                let Phase::Ready(ws) = &self.phase else { return };
                let preview = ws
                    .resolve_study_items(&spec)
                    .map(|pool| (1..=4).map(|n| crate::studies::assign::plan(&spec, &pool, n)).collect())
                    .map_err(|e| e.to_string());
                self.panels.designer.set_preview(preview);
            }
            AppCommand::OpenRunParticipant => {
                let chosen = self.panels.run_dialog.take().map(|d| d.study);
                let Phase::Ready(ws) = &self.phase else { return };
                match ws.studies() {
                    Ok(list) => {
                        let studies: Vec<String> = list.into_iter().map(|s| s.name).collect();
                        let draft = &self.panels.designer.spec().name;
                        let study = chosen
                            .filter(|c| studies.contains(c))
                            .or_else(|| studies.iter().find(|s| *s == draft).cloned())
                            .or_else(|| studies.first().cloned())
                            .unwrap_or_default();
                        self.panels.run_dialog = Some(RunDialog { studies, study, ..Default::default() });
                    }
                    Err(err) => self.notify_error(format!("Cannot read the studies: {err}")),
                }
            }
            AppCommand::StartParticipant { study, code } => {
                if self.writes_paused() {
                    self.notify_error("An import is writing to the database; start the participant when it is done.");
                    return;
                }
                let Phase::Ready(ws) = &mut self.phase else { return };
                match ws.start_study_session(&study, &code) {
                    Ok(session) => {
                        self.participant = Some(ParticipantRun::new(session, ws));
                        self.panels.run_dialog = None;
                        self.ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(true));
                    }
                    Err(err) => match &mut self.panels.run_dialog {
                        Some(dialog) => dialog.error = Some(err.to_string()),
                        None => self.notify_error(err.to_string()),
                    },
                }
            }
            AppCommand::AnswerStep { answers, timing } => {
                let paused = self.writes_paused();
                let (Phase::Ready(ws), Some(run)) = (&mut self.phase, &mut self.participant) else { return };
                if paused {
                    run.refused(
                        "Not saved: the database is busy with an import; press Enter again in a moment.".into(),
                    );
                    return;
                }
                match ws.answer_study_step(run.session_mut(), &answers, timing) {
                    Ok(answered) => run.answered(answered, ws),
                    Err(err) => run.refused(err.to_string()),
                }
            }
            AppCommand::LeaveParticipantMode => {
                if let Some(run) = self.participant.take() {
                    let (study, version) = run.study();
                    self.notify(format!("Participant {} of `{study}` version {version} is done.", run.code()));
                }
                self.ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(false));
                if self.panels.analysis.open {
                    self.run_analysis();
                }
            }
            AppCommand::ToggleAnalysisPanel => {
                self.panels.analysis.open = !self.panels.analysis.open;
                if self.panels.analysis.open {
                    self.reload_study_lists();
                    self.run_analysis();
                }
            }
            AppCommand::RunAnalysis => self.run_analysis(),
            AppCommand::ExportStudy { name, dir } => self.start_study_export(name, dir),
            AppCommand::ToggleAgreementPanel => {
                self.panels.agreement.open = !self.panels.agreement.open;
                if self.panels.agreement.open {
                    self.reload_agreement();
                }
            }
            AppCommand::ReloadAgreement => self.reload_agreement(),
            AppCommand::DismissMessage => self.notice = None,
            AppCommand::Quit => self.ctx.send_viewport_cmd(egui::ViewportCommand::Close),
        }
    }

    fn current_annotator(&self) -> String {
        match &self.phase {
            Phase::Ready(ws) => ws.annotator().to_owned(),
            _ => self.settings.annotator.clone().unwrap_or_default(),
        }
    }

    fn start_import(&mut self, paths: Vec<PathBuf>, options: ImportOptions) {
        let Phase::Ready(ws) = &self.phase else { return };
        let (db, annotator) = (ws.db_path(), ws.annotator().to_owned());
        let waker = self.waker();
        let files = paths.len();
        let spawned = self.jobs.spawn(IMPORT_JOB, waker, move |p: &crate::jobs::JobState| {
            let mut store = Store::open(&db)?;
            let summaries = ingest::import_files(&mut store, &paths, &options, p)?;
            drop(store);
            p.set(0, 0, "reloading the item list");
            let items = studio::load_summaries(&db, &annotator)?;
            Ok(ImportResult { summaries, items, files, db, annotator })
        });
        match spawned {
            Ok(job) => self.import_job = Some(job),
            Err(err) => self.notify_error(err.to_string()),
        }
    }

    fn start_export(&mut self, format: ExportFormat, path: PathBuf) {
        let Phase::Ready(ws) = &self.phase else { return };
        let db = ws.db_path();
        let waker = self.waker();
        let spawned = self.jobs.spawn("export", waker, move |p: &crate::jobs::JobState| {
            p.set(0, 0, "exporting");
            let store = Store::open(&db)?;
            let summary = ingest::export::export(&store, format, &path)?;
            Ok(format!("Exported {} items ({} skipped) to {}", summary.items, summary.skipped, path.display()))
        });
        match spawned {
            Ok(job) => self.export_job = Some(job),
            Err(err) => self.notify_error(err.to_string()),
        }
    }

    fn menu_ui(&mut self, ui: &mut egui::Ui) {
        let ready = matches!(self.phase, Phase::Ready(_));
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open database…").clicked() {
                    if let Some(path) =
                        rfd::FileDialog::new().add_filter("Argus database", &["sqlite", "db", "sqlite3"]).pick_file()
                    {
                        self.commands.push(AppCommand::OpenDatabase(path));
                    }
                    ui.close();
                }
                if ui.button("New database…").clicked() {
                    if let Some(path) = rfd::FileDialog::new().set_file_name("argus.sqlite").save_file() {
                        self.commands.push(AppCommand::OpenDatabase(path));
                    }
                    ui.close();
                }
                if ui.button("Open the demo").clicked() {
                    self.commands.push(AppCommand::OpenDemo);
                    ui.close();
                }
                ui.separator();
                if ui.add_enabled(ready, egui::Button::new("Import…")).clicked() {
                    if let Some(paths) =
                        rfd::FileDialog::new().add_filter("News data", &["csv", "tsv", "json", "jsonl"]).pick_files()
                    {
                        self.commands.push(AppCommand::ChooseImport(paths));
                    }
                    ui.close();
                }
                ui.add_enabled_ui(ready, |ui| {
                    ui.menu_button("Export", |ui| {
                        if ui.button("ARG JSON (train/val/test)…").clicked() {
                            if let Some(dir) = rfd::FileDialog::new().pick_folder() {
                                self.commands.push(AppCommand::Export { format: ExportFormat::ArgJson, path: dir });
                            }
                            ui.close();
                        }
                        for (label, format, name) in [
                            ("JSONL…", ExportFormat::Jsonl, "argus-export.jsonl"),
                            ("CSV…", ExportFormat::Csv, "argus-export.csv"),
                        ] {
                            if ui.button(label).clicked() {
                                if let Some(path) = rfd::FileDialog::new().set_file_name(name).save_file() {
                                    self.commands.push(AppCommand::Export { format, path });
                                }
                                ui.close();
                            }
                        }
                    });
                });
                ui.separator();
                if ui.button("Quit").clicked() {
                    self.commands.push(AppCommand::Quit);
                }
            });
            ui.menu_button("View", |ui| {
                let theme = self.settings.theme;
                if ui.radio(theme == Theme::Dark, "Dark theme").clicked() {
                    self.commands.push(AppCommand::SetTheme(Theme::Dark));
                    ui.close();
                }
                if ui.radio(theme == Theme::Light, "Light theme").clicked() {
                    self.commands.push(AppCommand::SetTheme(Theme::Light));
                    ui.close();
                }
                ui.separator();
                if ui.add_enabled(ready, egui::Button::new("Perspectives…")).clicked() {
                    self.commands.push(AppCommand::TogglePerspectives);
                    ui.close();
                }
                if ui.button("Keyboard shortcuts (?)").clicked() {
                    self.commands.push(AppCommand::ToggleHelp);
                    ui.close();
                }
            });
            ui.menu_button("Models", |ui| {
                ui.label(self.writer_status());
                ui.separator();
                let selected = match &self.phase {
                    Phase::Ready(ws) => ws.selected_id(),
                    _ => None,
                };
                let writing = self.is_llm_busy();
                if ui
                    .add_enabled(
                        selected.is_some() && !writing,
                        egui::Button::new("Write rationales for this item (W)"),
                    )
                    .clicked()
                {
                    self.commands.push(AppCommand::WriteRationales(selected.into_iter().collect()));
                    ui.close();
                }
                let shown = match &self.phase {
                    Phase::Ready(ws) => ws.filtered_ids(),
                    _ => Vec::new(),
                };
                if ui
                    .add_enabled(
                        !shown.is_empty() && !writing,
                        egui::Button::new(format!("Write rationales for the {} items shown", shown.len())),
                    )
                    .on_hover_text("resumable: items that already have them from the same model and prompt are skipped")
                    .clicked()
                {
                    self.commands.push(AppCommand::WriteRationales(shown));
                    ui.close();
                }
                ui.separator();
                if ui
                    .add_enabled(!self.jobs.is_running(FETCH_JOB), egui::Button::new("Fetch the demo models"))
                    .clicked()
                {
                    self.commands.push(AppCommand::FetchDemoModels);
                    ui.close();
                }
                if ui
                    .add_enabled(
                        !self.jobs.is_running(ENCODE_JOB),
                        egui::Button::new("Encode items for the guidance model"),
                    )
                    .on_hover_text(
                        "every news text and rationale through the encoder's frozen layers, cached beside the database",
                    )
                    .clicked()
                {
                    self.commands.push(AppCommand::EncodeItems);
                    ui.close();
                }
                if ui.button("Writer settings…").clicked() {
                    self.commands.push(AppCommand::ToggleWriterSettings);
                    ui.close();
                }
                ui.separator();
                if ui
                    .add_enabled(ready, egui::Button::new("Train… (t)"))
                    .on_hover_text("retrain the guidance model, compare versions, roll back")
                    .clicked()
                {
                    self.commands.push(AppCommand::ToggleTrainPanel);
                    ui.close();
                }
            });
            ui.menu_button("Studies", |ui| {
                let opens = [
                    (
                        "Study designer",
                        "design a study file, validate it, register it",
                        self.panels.designer.open,
                        AppCommand::ToggleStudyDesigner,
                    ),
                    (
                        "Run a participant…",
                        "take a participant through a registered study (full screen)",
                        false,
                        AppCommand::OpenRunParticipant,
                    ),
                    (
                        "Analysis",
                        "results per condition with confidence intervals, exclusions, export",
                        self.panels.analysis.open,
                        AppCommand::ToggleAnalysisPanel,
                    ),
                    (
                        "Agreement",
                        "inter-annotator agreement, per-annotator metrics, adjudication",
                        self.panels.agreement.open,
                        AppCommand::ToggleAgreementPanel,
                    ),
                ];
                for (i, (label, hover, open, command)) in opens.into_iter().enumerate() {
                    if i == 2 {
                        ui.separator();
                    }
                    if ui.add_enabled(ready, egui::Button::new(label)).on_hover_text(hover).clicked() {
                        // An open panel stays open.
                        if !open {
                            self.commands.push(command);
                        }
                        ui.close();
                    }
                }
            });
            ui.menu_button("Annotator", |ui| {
                ui.label(format!("Annotating as: {}", self.current_annotator()));
                if ui.button("Switch annotator…").clicked() {
                    self.commands.push(AppCommand::SwitchAnnotator);
                    ui.close();
                }
            });
            ui.separator();
            let train = egui::Button::selectable(self.panels.train.open, "Train");
            if ui.add_enabled(ready, train).on_hover_text("show or hide the Train panel (t)").clicked() {
                self.commands.push(AppCommand::ToggleTrainPanel);
            }
        });
    }

    fn central_ui(&mut self, ui: &mut egui::Ui) {
        match &mut self.phase {
            Phase::ChooseAnnotator { name, db, .. } => {
                let db = db.clone();
                if let Some(cmd) = annotator_modal_ui(ui.ctx(), name, &db) {
                    self.commands.push(cmd);
                }
            }
            Phase::Opening { job, db } => {
                let (message, db) = (job.state().message(), db.clone());
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.centered_and_justified(|ui| {
                        ui.horizontal(|ui| {
                            ui.spinner();
                            ui.label(format!("Opening {} — {message}", db.display()));
                        });
                    });
                });
            }
            Phase::Failed { error } => {
                let error = error.clone();
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.heading("Could not open the database");
                    ui.colored_label(ui.visuals().error_fg_color, &error);
                    ui.label("Nothing in it was changed. Open another database or the demo from the File menu.");
                    if ui.button("Open the demo").clicked() {
                        self.commands.push(AppCommand::OpenDemo);
                    }
                });
            }
            Phase::Ready(ws) => {
                let ws: &Workspace = ws;
                let panels = &mut self.panels;
                egui::Panel::left("item_list").default_size(420.0).min_size(260.0).show(ui, |ui| {
                    self.commands.extend(item_list::item_list_ui(ui, ws, &mut panels.list));
                });
                let paused = self.jobs.is_running(IMPORT_JOB);
                egui::Panel::bottom("judgement_bar").show(ui, |ui| {
                    self.commands.extend(judgement_bar::judgement_bar_ui(ui, ws, &mut panels.bar, paused));
                });
                let repairing = self.repair_job.as_ref().map(|(_, id)| *id);
                let writer = item_view::WriterView {
                    live: ws.selected_id().map(|id| self.writer.live().for_item(id)).unwrap_or_default(),
                    running: self.jobs.is_running(WRITER_JOB),
                    llm_busy: LLM_JOBS.iter().any(|name| self.jobs.is_running(name)),
                    rendering: self.format_job.as_ref().map(|(_, r, f)| (*r, *f)),
                    repair: repairing.map(|id| match self.writer.live().repair_text() {
                        Some((live, text)) if live == id => (id, text),
                        _ => (id, String::new()),
                    }),
                    repair_stats: self.repair_stats.clone(),
                    attention: self.attention.clone(),
                    attention_loading: self.attention_job.as_ref().map(|(_, item, _)| *item),
                };
                egui::CentralPanel::default().show(ui, |ui| {
                    self.commands.extend(item_view::item_view_ui(ui, ws, &mut panels.view, &writer));
                });
            }
        }
    }
}

impl eframe::App for ArgusApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.poll_jobs();
        self.frames += 1;
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
        let ws = match &self.phase {
            Phase::Ready(ws) => Some(&**ws),
            _ => None,
        };
        let running: Vec<_> = self.jobs.running().cloned().collect();
        let writer = self.writer_status();
        egui::Panel::bottom("status_bar").show(ui, |ui| {
            self.commands.extend(status_bar::status_bar_ui(ui, ws, &running, self.notice.as_ref(), &writer));
        });
        self.central_ui(ui);
        if let Some(dialog) = &mut self.panels.import
            && let Some(choice) = import_dialog_ui(&ctx, dialog)
        {
            self.panels.import = None;
            self.commands.extend(choice);
        }
        if self.panels.show_perspectives
            && let Phase::Ready(ws) = &self.phase
        {
            let mut open = true;
            let out = perspectives::perspectives_window(&ctx, &mut open, ws, &mut self.panels.perspectives);
            self.commands.extend(out);
            self.panels.show_perspectives = open;
        }
        if let Some(draft) = &mut self.panels.writer_settings {
            let mut open = true;
            let out = writer_settings::writer_settings_window(&ctx, &mut open, draft);
            if !open || !out.is_empty() {
                self.panels.writer_settings = None;
            }
            self.commands.extend(out);
        }
        if self.panels.train.open && matches!(self.phase, Phase::Ready(_)) {
            let job = self.train_job.as_ref().map(|j| j.state().clone());
            let view = train_panel::TrainView {
                run: self.train_run.as_ref(),
                job,
                versions: &self.versions,
                retrain_every_judgements: self.settings.retrain_every_judgements,
            };
            let out = train_panel::train_window(&ctx, &mut self.panels.train, &view);
            self.commands.extend(out);
        }
        let ready = matches!(self.phase, Phase::Ready(_));
        if self.panels.designer.open && ready {
            let out = study_designer::designer_window(&ctx, &mut self.panels.designer);
            self.commands.extend(out);
        }
        if let Some(dialog) = &mut self.panels.run_dialog {
            let (out, open) = participant::run_dialog_window(&ctx, dialog);
            self.commands.extend(out);
            if !open {
                self.panels.run_dialog = None;
            }
        }
        if self.panels.analysis.open && ready {
            let out = analysis_panel::analysis_window(&ctx, &mut self.panels.analysis);
            self.commands.extend(out);
        }
        if self.panels.agreement.open && ready {
            let out = agreement_panel::agreement_window(&ctx, &mut self.panels.agreement);
            self.commands.extend(out);
        }
        if self.panels.show_help {
            let mut open = true;
            help::shortcuts_window(&ctx, &mut open);
            if !open {
                self.panels.show_help = false;
            }
        }
        self.handle_commands();
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.save_settings();
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

/// Memory key: the annotator field has been given the keyboard once.
const ANNOTATOR_AUTOFOCUS: &str = "annotator_autofocus_done";

/// Asks for the annotator's name before the database opens.
fn annotator_modal_ui(ctx: &egui::Context, name: &mut String, db: &Path) -> Option<AppCommand> {
    let mut out = None;
    egui::Modal::new(egui::Id::unique("annotator_modal")).show(ctx, |ui| {
        ui.set_width(360.0);
        ui.heading("Who is annotating?");
        ui.label(format!("Your judgements in {} are stored under this name.", db.display()));
        let label = ui.label("Your name:");
        let edit = ui
            .add(egui::TextEdit::singleline(name).hint_text("e.g. ada").id(egui::Id::unique("annotator_name")))
            .labelled_by(label.id);
        // Give the name field the keyboard once the window has it. (Asking earlier, while the window is not yet
        // focused, switches X11 input methods on too soon and winit then drops the window's input under Xvfb.)
        let autofocus = egui::Id::unique(ANNOTATOR_AUTOFOCUS);
        let done = ui.data(|d| d.get_temp::<bool>(autofocus).unwrap_or(false));
        if !done && ui.input(|i| i.focused) {
            edit.request_focus();
            ui.data_mut(|d| d.insert_temp(autofocus, true));
        }
        let entered = edit.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
        let ok = ui.add_enabled(!name.trim().is_empty(), egui::Button::new("Start annotating")).clicked();
        if (ok || entered) && !name.trim().is_empty() {
            out = Some(AppCommand::SetAnnotator(name.trim().to_owned()));
        }
    });
    out
}
