//! What panels say to the app: [`AppCommand`], the status-bar [`Notice`] and the names of the background jobs.
//!
//! Panels import from here, never from `super::app`: they read the workspace and their own state, and return
//! commands that [`super::ArgusApp`] handles in one place. This module draws nothing and holds no state.

use std::path::PathBuf;

use crate::config::Theme;
use crate::domain::ModelKind;
use crate::domain::{ItemId, RationaleId};
use crate::formats::Format;
use crate::ingest::export::ExportFormat;
use crate::rationales::WriterSettings;
use crate::store::studies::Timing;
use crate::studies::spec::StudySpec;
use crate::studio::Command;

/// Something a panel asks for. Handled once per frame by [`super::ArgusApp::handle_commands`].
#[derive(Clone, Debug, PartialEq)]
pub enum AppCommand {
    /// A user action on the open workspace.
    Studio(Command),
    OpenDatabase(PathBuf),
    OpenDemo,
    /// Ask how to import these files (format, column map) before importing.
    ChooseImport(Vec<PathBuf>),
    /// Open the import dialog on these files with these options filled in.
    ChooseImportWith(Vec<PathBuf>, crate::ingest::ImportFlags),
    /// Import files in the background; the options in the command line's words.
    ImportFiles {
        paths: Vec<PathBuf>,
        flags: crate::ingest::ImportFlags,
    },
    Export {
        format: ExportFormat,
        path: PathBuf,
    },
    SetAnnotator(String),
    SwitchAnnotator,
    SetTheme(Theme),
    /// Save the fact-check review settings (scale, ClaimReview URL pattern, publisher).
    SetReviewSettings(crate::config::ReviewSettings),
    /// Merge colleagues' judgement bundles into the open database, in the background.
    MergeBundles(Vec<PathBuf>),
    /// Write the open database's judgement bundle to a file, in the background.
    ExportBundle(PathBuf),
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
        /// Only the head, on its cached inputs (needs `from`).
        quick: bool,
    },
    /// Retrain automatically after every this many new judgements (0 = off); saved in the settings.
    SetAutoRetrain(u64),
    /// Let the online learner update the model in use after every this many judgements (0 = off); saved.
    SetOnlineEvery(u64),
    /// The project's split key (`None`: the text), stored in the database.
    SetSplitGroupBy(Option<String>),
    /// Replay the database's gold labels as a simulated annotator, by strategy, with online learning (the
    /// "simulated annotator" job), and plot macro-F1 against labels.
    Simulate {
        kind: ModelKind,
    },
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
    /// Measure how ARG `version`'s P(fake) for `item` moves when each rationale is emptied, swapped for another
    /// item's or has its verdict negated, in the background (the "faithfulness" job).
    CheckFaithfulness {
        item: ItemId,
        version: i64,
    },
    /// Show or hide Models ▸ Route uncertain items.
    ToggleRouteDialog,
    /// ARG-D scores every item; the least sure `share` is counted with what writing its rationales would cost.
    EstimateRoute {
        share: f64,
    },
    /// Write rationales for these (routed) items, then let the ARG version in use predict them.
    RouteItems(Vec<ItemId>),
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

/// A message in the status bar.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

/// Name of the job that opens a database and loads its item list.
pub const OPEN_JOB: &str = "open database";
/// Name of the import job; while it runs, the workspace does not write (the import holds SQLite's write lock).
pub const IMPORT_JOB: &str = "import";
/// Name of the export job.
pub const EXPORT_JOB: &str = "export";
/// The job merging colleagues' bundles.
pub const MERGE_JOB: &str = "merge";
/// Name of the job that writes a study's tidy export.
pub const STUDY_EXPORT_JOB: &str = "study export";
/// Name of the rationale writer's job.
pub const WRITER_JOB: &str = "rationale writer";
/// Name of the model fetching job.
pub const FETCH_JOB: &str = "fetch models";
/// Name of the encoding job.
pub const ENCODE_JOB: &str = "encoder";
/// Name of the job that computes ARG's attention over a news text.
pub const ATTENTION_JOB: &str = "attention";
/// Name of the job that checks how much ARG leans on an item's rationales.
pub const FAITHFULNESS_JOB: &str = "faithfulness";
/// Name of the job that scores every item with ARG-D to estimate routing's cost.
pub const ROUTE_ESTIMATE_JOB: &str = "routing estimate";
/// Name of the job in which ARG predicts the routed items once their rationales are written.
pub const ROUTE_JOB: &str = "routing";
/// Name of the job that writes a rationale in a structured explanation format.
pub const FORMAT_JOB: &str = "format";
/// Name of the job that applies feedback to a rationale.
pub const REPAIR_JOB: &str = "repair";
/// The online learner's update (after every N judgements).
pub const ONLINE_JOB: &str = "online learner";
/// The simulated annotator of the Train panel.
pub const SIMULATE_JOB: &str = "simulated annotator";
/// The jobs that use the rationale writer's model (one at a time).
pub const LLM_JOBS: [&str; 3] = [WRITER_JOB, FORMAT_JOB, REPAIR_JOB];

/// Name of the job training a `kind` guidance model (shown in the status bar).
pub fn train_job_name(kind: ModelKind) -> String {
    format!("Training {}", kind.human_name())
}
