//! [`AppTesting`]: what the UI tests read of the app beyond its public face (which panel is open, what a job is
//! doing, what a panel last computed). An extension trait, so these accessors stay out of [`ArgusApp`]'s own API;
//! tests bring it in with `use argus::ui::testing::AppTesting as _`.

use super::ArgusApp;
use super::command::WRITER_JOB;
use crate::domain::{ItemId, RationaleId};
use crate::formats::Format;
use crate::guidance::train::EpochRecord;
use crate::rationales::WriterSettings;
use crate::store::formats::FormatRepairStats;
use crate::studies::analysis::Analysis;
use crate::studies::flow::Step;
use crate::studies::metrics::AgreementSummary;
use crate::studies::spec::StudySpec;
use crate::studio::{DisagreementDetail, VersionsCache};
use crate::writer::LiveRationale;

/// Read-only views of the app's state for tests.
pub trait AppTesting {
    /// True while any background job runs (or its result waits to be applied).
    fn has_running_jobs(&self) -> bool;
    /// True while the import dialog is open.
    fn is_import_dialog_open(&self) -> bool;
    /// The rationale writer's settings.
    fn writer_settings(&self) -> &WriterSettings;
    /// Live rationales of `item` in the current (or last) writer run.
    fn live_rationales(&self, item: ItemId) -> Vec<LiveRationale>;
    /// True while the rationale writer runs.
    fn is_writing(&self) -> bool;
    /// True while a job that uses the writer's model runs (rationales, a format, a repair).
    fn is_llm_busy(&self) -> bool;
    /// The quote hovered in the news or in a format view: (rationale revision, location in the format).
    fn hovered_quote(&self) -> Option<(RationaleId, String)>;
    /// The format the item view shows the rationales in.
    fn format(&self) -> Format;
    /// Repairs by format, as last read.
    fn repair_stats(&self) -> &[FormatRepairStats];
    /// True while the window shows a participant's run instead of the studio (participant mode).
    fn is_participant_mode(&self) -> bool;
    /// The participant's current step: (index, steps before the end, the step).
    fn participant_step(&self) -> Option<(usize, usize, Step)>;
    /// The step (1-based) a resumed participant run started at, until its first answer.
    fn participant_resumed_at(&self) -> Option<usize>;
    /// What the study library said of the participant's last submission.
    fn participant_error(&self) -> Option<&str>;
    /// The Study designer's draft and what is wrong with it (`None`: it validates).
    fn study_draft(&self) -> (&StudySpec, Option<&str>);
    /// What the Study designer's last open, save or register did.
    fn study_designer_message(&self) -> Option<&str>;
    /// The Analysis panel's last result.
    fn study_analysis(&self) -> Option<&Analysis>;
    /// How long the Analysis panel's last analysis took, in milliseconds.
    fn study_analysis_millis(&self) -> Option<f64>;
    /// The Agreement panel's figures, as last read.
    fn agreement_summary(&self) -> Option<&AgreementSummary>;
    /// The disagreements the Agreement panel's Adjudication tab lists, as last read.
    fn open_disagreements(&self) -> &[DisagreementDetail];
    /// True while a guidance model trains.
    fn is_training(&self) -> bool;
    /// True while the online learner updates the model in use.
    fn is_learning_online(&self) -> bool;
    /// True while the Train panel is open.
    fn is_train_panel_open(&self) -> bool;
    /// Epochs of the training run in progress (or the last one), as they ended.
    fn training_epochs(&self) -> Vec<EpochRecord>;
    /// The model versions as the Train panel last read them.
    fn model_versions(&self) -> &VersionsCache;
}

impl AppTesting for ArgusApp {
    fn has_running_jobs(&self) -> bool {
        self.jobs.running().next().is_some()
    }

    fn is_import_dialog_open(&self) -> bool {
        self.panels.import.is_some()
    }

    fn writer_settings(&self) -> &WriterSettings {
        &self.settings.writer
    }

    fn live_rationales(&self, item: ItemId) -> Vec<LiveRationale> {
        self.writer.live().for_item(item)
    }

    fn is_writing(&self) -> bool {
        self.jobs.is_running(WRITER_JOB)
    }

    fn is_llm_busy(&self) -> bool {
        self.llm_job_running()
    }

    fn hovered_quote(&self) -> Option<(RationaleId, String)> {
        self.panels.view.explain.hovered.as_ref().map(|k| (k.rationale, k.location.clone()))
    }

    fn format(&self) -> Format {
        self.panels.view.format
    }

    fn repair_stats(&self) -> &[FormatRepairStats] {
        &self.repair_stats
    }

    fn is_participant_mode(&self) -> bool {
        self.participant.is_some()
    }

    fn participant_step(&self) -> Option<(usize, usize, Step)> {
        self.participant.as_ref().map(|r| {
            let (index, total, step) = r.current();
            (index, total, step.clone())
        })
    }

    fn participant_resumed_at(&self) -> Option<usize> {
        self.participant.as_ref().and_then(|r| r.resumed_at())
    }

    fn participant_error(&self) -> Option<&str> {
        self.participant.as_ref().and_then(|r| r.error())
    }

    fn study_draft(&self) -> (&StudySpec, Option<&str>) {
        (self.panels.designer.spec(), self.panels.designer.problem())
    }

    fn study_designer_message(&self) -> Option<&str> {
        self.panels.designer.message()
    }

    fn study_analysis(&self) -> Option<&Analysis> {
        match &self.panels.analysis.result {
            Some(Ok(view)) => Some(&view.analysis),
            _ => None,
        }
    }

    fn study_analysis_millis(&self) -> Option<f64> {
        match &self.panels.analysis.result {
            Some(Ok(view)) => Some(view.millis),
            _ => None,
        }
    }

    fn agreement_summary(&self) -> Option<&AgreementSummary> {
        match &self.panels.agreement.summary {
            Some(Ok(summary)) => Some(summary),
            _ => None,
        }
    }

    fn open_disagreements(&self) -> &[DisagreementDetail] {
        &self.panels.agreement.disagreements
    }

    fn is_training(&self) -> bool {
        self.train_job_running()
    }

    fn is_learning_online(&self) -> bool {
        self.jobs.is_running(crate::ui::command::ONLINE_JOB)
    }

    fn is_train_panel_open(&self) -> bool {
        self.panels.train.open
    }

    fn training_epochs(&self) -> Vec<EpochRecord> {
        self.train_run.as_ref().and_then(|r| r.epochs.lock().ok().map(|e| e.clone())).unwrap_or_default()
    }

    fn model_versions(&self) -> &VersionsCache {
        &self.versions
    }
}
