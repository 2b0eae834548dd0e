//! The app's background jobs in one place: [`BackgroundJobs`] starts each job under its name in the
//! [`JobRegistry`] (which refuses a name still running), maps its result into a [`Finished`] at spawn, and hands the
//! finished ones to the per-frame loop ([`super::ArgusApp::poll_jobs`]) in the order they were started.
//!
//! A job counts as running from its start until its result has been taken: this list is the one answer to "is it
//! running?" for the panels, the menus and the tests. Knows nothing of drawing.

use std::path::PathBuf;
use std::sync::Arc;

use super::ImportResult;
use crate::domain::{ItemId, RationaleId};
use crate::encoding::EncodingSummary;
use crate::formats::Format;
use crate::formats::generate::Rendered;
use crate::formats::repair::RepairOutcome;
use crate::guidance::faithfulness::FaithfulnessReport;
use crate::guidance::online::{OnlineLearner, OnlineUpdate};
use crate::guidance::route::RouteCost;
use crate::guidance::simulate::SimulationReport;
use crate::guidance::train::{TokenWeight, TrainReport};
use crate::jobs::{Job, JobError, JobRegistry, JobState, Progress as _, Waker};
use crate::studio::Workspace;

/// What a background job works on, kept beside it while it runs (the item view shows the format being written,
/// the repair in progress, the item whose attention loads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::ui) enum Task {
    Open,
    Import,
    Export,
    Write,
    Format { rationale: RationaleId, format: Format },
    Attention { item: ItemId },
    Faithfulness { item: ItemId },
    RouteEstimate,
    Route,
    Repair { feedback: i64 },
    Fetch,
    Encode,
    Train,
    Online,
    Simulate,
    StudyExport,
}

/// A job's result, with what the app needs to apply it. One variant per kind of job.
pub(in crate::ui) enum Finished {
    Opened {
        db: PathBuf,
        result: anyhow::Result<Box<Workspace>>,
    },
    Imported(anyhow::Result<ImportResult>),
    Exported(anyhow::Result<String>),
    Wrote(anyhow::Result<crate::rationales::Summary>),
    Rendered {
        format: Format,
        result: anyhow::Result<Rendered>,
    },
    Attention {
        item: ItemId,
        version: i64,
        result: anyhow::Result<Vec<TokenWeight>>,
    },
    Faithfulness {
        item: ItemId,
        version: i64,
        result: anyhow::Result<FaithfulnessReport>,
    },
    RouteEstimated(anyhow::Result<RouteCost>),
    /// ARG predicted the routed items: (ARG version, items predicted).
    Routed(anyhow::Result<(i64, usize)>),
    Repaired(anyhow::Result<RepairOutcome>),
    Fetched(anyhow::Result<String>),
    Encoded(anyhow::Result<EncodingSummary>),
    Trained(anyhow::Result<TrainReport>),
    /// The learner comes back with its update, to be kept for the next one.
    Online(anyhow::Result<(Box<OnlineLearner>, OnlineUpdate)>),
    /// The online state of a database the studio left, saved (as this version) or with nothing to save.
    OnlineSaved(anyhow::Result<Option<i64>>),
    Simulated(anyhow::Result<SimulationReport>),
    StudyExported(anyhow::Result<String>),
}

/// A started job whose result has not been taken yet.
struct Pending {
    task: Task,
    job: Job<Finished>,
    /// What the result becomes when the worker panicked (the registry turns a panic into an error).
    crashed: Box<dyn FnOnce(anyhow::Error) -> Finished + Send>,
}

/// The named background jobs of the app, and their results until the app takes them.
#[derive(Default)]
pub(in crate::ui) struct BackgroundJobs {
    registry: JobRegistry,
    pending: Vec<Pending>,
}

impl BackgroundJobs {
    /// Starts `work` under `name`, refusing a name still running; `finished` maps its result (a panic included) into
    /// the [`Finished`] that [`Self::take_finished`] returns.
    /// The work's own error type (`TrainError`, `WriterError`, ...) travels inside the `anyhow::Error`, so a handler
    /// can match on its variants with `downcast_ref`.
    pub(in crate::ui) fn spawn<T: Send + 'static, E: Into<anyhow::Error> + 'static>(
        &mut self,
        name: impl Into<String>,
        task: Task,
        waker: Waker,
        work: impl FnOnce(&JobState) -> Result<T, E> + Send + 'static,
        finished: impl Fn(anyhow::Result<T>) -> Finished + Clone + Send + 'static,
    ) -> Result<(), JobError> {
        let on_crash = finished.clone();
        let job = self.registry.spawn(name, waker, move |p: &JobState| Ok(finished(work(p).map_err(Into::into))))?;
        self.pending.push(Pending { task, job, crashed: Box::new(move |err| on_crash(Err(err))) });
        Ok(())
    }

    /// The jobs that finished since the last call, in the order they were started, each with whether it had been
    /// asked to stop.
    pub(in crate::ui) fn take_finished(&mut self) -> Vec<(Finished, bool)> {
        let mut done = Vec::new();
        let mut i = 0;
        while i < self.pending.len() {
            match self.pending[i].job.try_take() {
                Some(result) => {
                    let pending = self.pending.remove(i);
                    let cancelled = pending.job.state().is_cancelled();
                    done.push((result.unwrap_or_else(pending.crashed), cancelled));
                }
                None => i += 1,
            }
        }
        done
    }

    /// Jobs started and not yet taken, in start order.
    pub(in crate::ui) fn running(&self) -> impl Iterator<Item = &Arc<JobState>> {
        self.pending.iter().map(|p| p.job.state())
    }

    /// True while a job named `name` runs (or its result waits to be taken).
    pub(in crate::ui) fn is_running(&self, name: &str) -> bool {
        self.running().any(|s| s.name() == name)
    }

    /// The state of the first running job whose task `matches`.
    pub(in crate::ui) fn find(&self, matches: impl Fn(&Task) -> bool) -> Option<&Arc<JobState>> {
        self.pending.iter().find(|p| matches(&p.task)).map(|p| p.job.state())
    }

    /// The first `Some` that `f` makes of a running job's task (what the job works on).
    pub(in crate::ui) fn find_map<R>(&self, f: impl Fn(Task) -> Option<R>) -> Option<R> {
        self.pending.iter().find_map(|p| f(p.task))
    }

    /// Asks the jobs named `name` to stop.
    pub(in crate::ui) fn cancel(&self, name: &str) {
        for state in self.running().filter(|s| s.name() == name) {
            state.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(jobs: &mut BackgroundJobs) -> Vec<(Finished, bool)> {
        let start = std::time::Instant::now();
        loop {
            let done = jobs.take_finished();
            if !done.is_empty() {
                return done;
            }
            assert!(start.elapsed() < std::time::Duration::from_secs(10), "the job did not finish");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    #[test]
    fn a_result_comes_back_as_its_variant_and_the_job_stops_running() {
        let mut jobs = BackgroundJobs::default();
        jobs.spawn(
            "export",
            Task::Export,
            crate::jobs::no_waker(),
            |_| anyhow::Ok("done".to_owned()),
            Finished::Exported,
        )
        .unwrap();
        assert!(jobs.is_running("export"));
        let done = wait_for(&mut jobs);
        assert!(matches!(done.as_slice(), [(Finished::Exported(Ok(text)), false)] if text == "done"));
        assert!(!jobs.is_running("export"));
        assert!(jobs.running().next().is_none());
    }

    #[test]
    fn a_panic_comes_back_as_an_error_of_its_variant() {
        let mut jobs = BackgroundJobs::default();
        jobs.spawn(
            "fetch models",
            Task::Fetch,
            crate::jobs::no_waker(),
            |_| -> anyhow::Result<String> { panic!("boom") },
            Finished::Fetched,
        )
        .unwrap();
        let done = wait_for(&mut jobs);
        assert!(matches!(done.as_slice(), [(Finished::Fetched(Err(e)), false)] if e.to_string().contains("boom")));
    }

    #[test]
    fn a_running_name_is_refused_and_a_cancel_is_reported() {
        let mut jobs = BackgroundJobs::default();
        let work = |p: &JobState| {
            while !p.is_cancelled() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            anyhow::bail!("cancelled")
        };
        jobs.spawn("repair", Task::Repair { feedback: 7 }, crate::jobs::no_waker(), work, Finished::Repaired).unwrap();
        let again =
            jobs.spawn("repair", Task::Repair { feedback: 8 }, crate::jobs::no_waker(), work, Finished::Repaired);
        assert!(matches!(again, Err(JobError::AlreadyRunning(_))));
        let found = jobs.find_map(|t| match t {
            Task::Repair { feedback } => Some(feedback),
            _ => None,
        });
        assert_eq!(found, Some(7));
        jobs.cancel("repair");
        let done = wait_for(&mut jobs);
        assert!(matches!(done.as_slice(), [(Finished::Repaired(Err(_)), true)]));
    }
}
