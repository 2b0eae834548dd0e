//! Starting background work: each `start_*` builds its request from the settings and the open workspace, spawns a
//! named job through [`super::background::BackgroundJobs`] and says at spawn which [`Finished`] variant its result
//! becomes. A refused start (a name still running) is told in the status bar.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::background::{Finished, Task};
use super::{ArgusApp, ImportResult, Phase};
use crate::domain::ModelKind;
use crate::domain::{ItemId, RationaleId};
use crate::formats::Format;
use crate::guidance::faithfulness::FaithfulnessOptions;
use crate::guidance::online::{OnlineLearner, OnlineOptions};
use crate::guidance::train::{TrainError, TrainOptions, TrainRequest};
use crate::ingest::{self, ImportOptions, export::ExportFormat};
use crate::jobs::{JobError, JobState, Progress as _};
use crate::store::Store;
use crate::studio::{self, Workspace};
use crate::ui::command::{
    ATTENTION_JOB, ENCODE_JOB, EXPORT_JOB, FAITHFULNESS_JOB, FETCH_JOB, FORMAT_JOB, IMPORT_JOB, MERGE_JOB, ONLINE_JOB,
    OPEN_JOB, REPAIR_JOB, ROUTE_ESTIMATE_JOB, ROUTE_JOB, SIMULATE_JOB, STUDY_EXPORT_JOB, WRITER_JOB, train_job_name,
};
use crate::ui::train_panel::LiveRun;
use crate::writer::{FormatRequest, RepairRequest, WriteRequest};

/// What the status bar says when a job that needs the writer's model cannot start.
const WRITER_BUSY: &str = "The writer is busy; wait for the running job or cancel it.";

impl ArgusApp {
    /// Tells a refused start in the status bar; true when the job started.
    fn started(&mut self, spawned: Result<(), JobError>) -> bool {
        match spawned {
            Ok(()) => true,
            Err(err) => {
                self.notify_error(err.to_string());
                false
            }
        }
    }

    pub(super) fn start_opening(&mut self, db: PathBuf, seed_demo: bool, annotator: String) {
        let (job_db, name, done_db) = (db.clone(), annotator.clone(), db.clone());
        let spawned = self.jobs.spawn(
            OPEN_JOB,
            Task::Open,
            self.waker(),
            move |p| Workspace::open(&job_db, &name, seed_demo, p).map(Box::new),
            move |result| Finished::Opened { db: done_db.clone(), result },
        );
        if self.started(spawned) {
            self.settings.annotator = Some(annotator);
            self.phase = Phase::Opening { db };
        }
    }

    pub(super) fn start_import(&mut self, paths: Vec<PathBuf>, options: ImportOptions) {
        let Phase::Ready(ws) = &self.phase else { return };
        let (db, annotator) = (ws.db_path(), ws.annotator().to_owned());
        let files = paths.len();
        let work = move |p: &JobState| {
            let mut store = Store::open(&db)?;
            let summaries = ingest::import_files(&mut store, &paths, &options, p)?;
            drop(store);
            p.set(0, 0, "reloading the item list");
            let items = studio::load_summaries(&db, &annotator)?;
            anyhow::Ok(ImportResult { summaries, items, files, db, annotator, merge: None })
        };
        let spawned = self.jobs.spawn(IMPORT_JOB, Task::Import, self.waker(), work, Finished::Imported);
        self.started(spawned);
    }

    pub(super) fn start_export(&mut self, format: ExportFormat, path: PathBuf) {
        let Phase::Ready(ws) = &self.phase else { return };
        let db = ws.db_path();
        let review = &self.settings.review;
        let claimreview = ingest::claimreview::ClaimReviewOptions {
            url_pattern: review.url_pattern.clone(),
            publisher: Some(review.publisher.trim().to_owned()).filter(|p| !p.is_empty()),
            publisher_url: None,
            one_file: false,
        };
        let work = move |p: &JobState| {
            p.set(0, 0, "exporting");
            let store = Store::open(&db)?;
            let summary = ingest::export::export_with(&store, format, &path, &claimreview)?;
            if format == ExportFormat::ClaimReview {
                return anyhow::Ok(format!("Published {} reviews as ClaimReview in {}", summary.items, path.display()));
            }
            anyhow::Ok(format!("Exported {} items ({} skipped) to {}", summary.items, summary.skipped, path.display()))
        };
        let spawned = self.jobs.spawn(EXPORT_JOB, Task::Export, self.waker(), work, Finished::Exported);
        self.started(spawned);
    }

    /// Merges colleagues' bundles into the open database, then reloads the item list, in the background.
    pub(super) fn start_merge(&mut self, paths: Vec<PathBuf>) {
        let Phase::Ready(ws) = &self.phase else { return };
        let (db, annotator) = (ws.db_path(), ws.annotator().to_owned());
        let files = paths.len();
        let work = move |p: &JobState| {
            let mut store = Store::open(&db)?;
            let report = ingest::bundle::merge_bundles(&mut store, &paths, p)?;
            drop(store);
            p.set(0, 0, "reloading the item list");
            let items = studio::load_summaries(&db, &annotator)?;
            anyhow::Ok(ImportResult { summaries: Vec::new(), items, files, db, annotator, merge: Some(report) })
        };
        let spawned = self.jobs.spawn(MERGE_JOB, Task::Import, self.waker(), work, Finished::Imported);
        self.started(spawned);
    }

    /// Writes the open database's judgement bundle to `path`, in the background.
    pub(super) fn start_bundle_export(&mut self, path: PathBuf) {
        let Phase::Ready(ws) = &self.phase else { return };
        let db = ws.db_path();
        let work = move |p: &JobState| {
            p.set(0, 0, "writing the bundle");
            let store = Store::open(&db)?;
            let summary = ingest::bundle::export_bundle(&store, &path)?;
            anyhow::Ok(format!("Shared: {}", summary.to_string().trim()))
        };
        let spawned = self.jobs.spawn(EXPORT_JOB, Task::Export, self.waker(), work, Finished::Exported);
        self.started(spawned);
    }

    /// Writes study `name`'s tidy export into `dir`, in the background.
    pub(super) fn start_study_export(&mut self, name: String, dir: PathBuf) {
        let Phase::Ready(ws) = &self.phase else { return };
        let db = ws.db_path();
        let work = move |p: &JobState| {
            p.set(0, 0, "exporting the study");
            let store = Store::open(&db)?;
            let s = crate::studies::export::export_study(&store, &name, &dir)?;
            anyhow::Ok(format!(
                "Exported study `{name}`: {} response rows, {} participants, {} files in {}",
                s.responses,
                s.participants,
                s.files.len(),
                dir.display()
            ))
        };
        let spawned = self.jobs.spawn(STUDY_EXPORT_JOB, Task::StudyExport, self.waker(), work, Finished::StudyExported);
        self.started(spawned);
    }

    pub(super) fn start_writing(&mut self, items: Vec<ItemId>) {
        if self.llm_job_running() {
            self.notify(WRITER_BUSY);
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
        let work = move |p: &JobState| writer.generate(&request, p, &*wake);
        let spawned = self.jobs.spawn(WRITER_JOB, Task::Write, waker, work, Finished::Wrote);
        if self.started(spawned) {
            self.notify(format!("Writing rationales for {count} item(s)…"));
        }
    }

    /// Starts writing rationale revision `rationale` as `format` with the writer, in the background.
    pub(super) fn start_rendering(&mut self, rationale: RationaleId, format: Format) {
        if self.llm_job_running() {
            self.notify(WRITER_BUSY);
            return;
        }
        let Phase::Ready(ws) = &self.phase else { return };
        let request = FormatRequest { db: ws.db_path(), settings: self.settings.writer.clone(), rationale, format };
        let writer = self.writer.clone();
        let work = move |p: &JobState| {
            p.set(0, 0, &format!("{} of rationale {rationale}", format.title().to_lowercase()));
            writer.render_format(&request, p)
        };
        let task = Task::Format { rationale, format };
        let done = move |result| Finished::Rendered { format, result };
        let spawned = self.jobs.spawn(FORMAT_JOB, task, self.waker(), work, done);
        if self.started(spawned) {
            self.notify(format!("Writing the {}…", format.title().to_lowercase()));
        }
    }

    /// Starts computing ARG `version`'s attention over `item`'s news tokens, in the background, unless it is being
    /// computed, was computed, or could not be.
    pub(super) fn start_attention(&mut self, item: ItemId, version: i64) {
        if self.jobs.find(|t| matches!(t, Task::Attention { .. })).is_some()
            || self.attention_failed == Some((item, version))
            || self.attention.as_ref().is_some_and(|(i, v, _)| (*i, *v) == (item, version))
        {
            return;
        }
        let Phase::Ready(ws) = &self.phase else { return };
        let db = ws.db_path();
        let device = self.settings.writer.device;
        let work = move |p: &JobState| crate::guidance::train::news_attention(&db, version, item, device, p);
        let done = move |result| Finished::Attention { item, version, result };
        let spawned = self.jobs.spawn(ATTENTION_JOB, Task::Attention { item }, self.waker(), work, done);
        self.started(spawned);
    }

    /// Starts checking how much ARG `version` leans on each of `item`'s rationales, in the background, unless it is
    /// being checked or was checked.
    pub(super) fn start_faithfulness(&mut self, item: ItemId, version: i64) {
        if self.jobs.find(|t| matches!(t, Task::Faithfulness { .. })).is_some()
            || self.faithfulness.as_ref().is_some_and(|(i, v, _)| (*i, *v) == (item, version))
        {
            return;
        }
        let Phase::Ready(ws) = &self.phase else { return };
        let db = ws.db_path();
        let device = self.settings.writer.device;
        let options = FaithfulnessOptions { items: Some(vec![item]), ..FaithfulnessOptions::default() };
        let work = move |p: &JobState| crate::guidance::faithfulness::faithfulness(&db, version, &options, device, p);
        let done = move |result| Finished::Faithfulness { item, version, result };
        let spawned = self.jobs.spawn(FAITHFULNESS_JOB, Task::Faithfulness { item }, self.waker(), work, done);
        self.started(spawned);
    }

    /// Starts scoring every item with ARG-D and counting what routing its least sure `share` would cost.
    pub(super) fn start_route_estimate(&mut self, share: f64) {
        let Phase::Ready(ws) = &self.phase else { return };
        let db = ws.db_path();
        let device = self.settings.writer.device;
        let perspectives: Vec<String> =
            ws.perspectives().iter().filter(|p| p.generated).map(|p| p.key.clone()).collect();
        let max_tokens = self.settings.writer.params.max_tokens;
        let tps = self.writer_tokens_per_second;
        let work = move |p: &JobState| {
            crate::guidance::route::route_cost(&db, share, device, &perspectives, max_tokens, tps, p)
        };
        let spawned =
            self.jobs.spawn(ROUTE_ESTIMATE_JOB, Task::RouteEstimate, self.waker(), work, Finished::RouteEstimated);
        self.started(spawned);
    }

    /// Routes `items`: the writer writes their rationales (the usual writer job), then ARG predicts them.
    pub(super) fn start_routing(&mut self, items: Vec<ItemId>) {
        if self.llm_job_running() {
            self.notify(WRITER_BUSY);
            return;
        }
        self.route_pending = Some(items.clone());
        self.start_writing(items);
        if !self.jobs.is_running(WRITER_JOB) {
            self.route_pending = None;
        }
    }

    /// Starts ARG's predictions of the routed `items` (their rationales written), in the background.
    pub(super) fn start_route_predict(&mut self, items: Vec<ItemId>) {
        let Phase::Ready(ws) = &self.phase else { return };
        let Some(arg) = ws.active_versions().arg else {
            self.notify_error("Routing: the rationales are written, but there is no ARG version in use to read them.");
            return;
        };
        let db = ws.db_path();
        let device = self.settings.writer.device;
        let work = move |p: &JobState| {
            crate::guidance::train::predict_items(&db, arg, Some(&items), device, p).map(|n| (arg, n))
        };
        let spawned = self.jobs.spawn(ROUTE_JOB, Task::Route, self.waker(), work, Finished::Routed);
        self.started(spawned);
    }

    /// Starts applying feedback row `feedback` with the writer, in the background.
    pub(super) fn start_repair(&mut self, feedback: i64) {
        if self.llm_job_running() {
            self.notify(WRITER_BUSY);
            return;
        }
        let Phase::Ready(ws) = &self.phase else { return };
        // The ARG version in use re-scores the item afterwards, when there is one.
        let rescore = ws.active_versions().arg.map(|_| self.settings.writer.device);
        let request = RepairRequest { db: ws.db_path(), settings: self.settings.writer.clone(), feedback, rescore };
        let writer = self.writer.clone();
        let waker = self.waker();
        let wake = waker.clone();
        let work = move |p: &JobState| {
            p.set(0, 0, "applying the feedback");
            writer.apply_feedback(&request, p, &*wake)
        };
        let spawned = self.jobs.spawn(REPAIR_JOB, Task::Repair { feedback }, waker, work, Finished::Repaired);
        if self.started(spawned) {
            self.notify("Applying the feedback…");
        }
    }

    pub(super) fn start_encoding(&mut self) {
        let Phase::Ready(ws) = &self.phase else { return };
        let db = ws.db_path();
        let device = self.settings.writer.device;
        let work = move |p: &JobState| {
            crate::encoding::encode_database(&db, crate::models::catalog::DEMO_ENCODER, device, 170, p, &mut |_| {})
        };
        let spawned = self.jobs.spawn(ENCODE_JOB, Task::Encode, self.waker(), work, Finished::Encoded);
        self.started(spawned);
    }

    pub(super) fn start_fetch(&mut self) {
        let work = |p: &JobState| {
            let mut fetched = Vec::new();
            for name in [crate::models::catalog::DEMO_ENCODER, crate::models::catalog::DEMO_GENERATOR] {
                let path = crate::models::fetch::ensure(name, p)?;
                fetched.push(path.display().to_string());
            }
            anyhow::Ok(format!("Models ready: {}", fetched.join(", ")))
        };
        let spawned = self.jobs.spawn(FETCH_JOB, Task::Fetch, self.waker(), work, Finished::Fetched);
        self.started(spawned);
    }

    /// Starts training a new `kind` version in the background; `automatic`: started by the retrain setting.
    pub(super) fn start_training(
        &mut self,
        kind: ModelKind,
        from: Option<i64>,
        max_epochs: usize,
        seed: u64,
        quick: bool,
        automatic: bool,
    ) {
        let Phase::Ready(ws) = &self.phase else { return };
        if self.train_job_running() {
            self.notify("A model is already training; cancel it first or wait for it.");
            return;
        }
        let mut request = TrainRequest::new(kind);
        request.from = from;
        request.device = self.settings.writer.device;
        let quick = quick && from.is_some();
        if quick {
            request.options = TrainOptions::quick();
        } else {
            request.options.max_epochs = max_epochs.max(1);
        }
        request.options.seed = seed;
        let max_epochs = request.options.max_epochs;
        let db = ws.db_path();
        let replaces = ws.active_versions().of(kind);
        let epochs = Arc::new(Mutex::new(Vec::new()));
        let (live, waker) = (epochs.clone(), self.waker());
        let wake = waker.clone();
        let work = move |p: &JobState| {
            crate::guidance::train::train(&db, &request, p, &mut |epoch| {
                if let Ok(mut e) = live.lock() {
                    e.push(epoch.clone());
                }
                wake();
            })
        };
        let spawned = self.jobs.spawn(train_job_name(kind), Task::Train, waker, work, Finished::Trained);
        if self.started(spawned) {
            let max_epochs = max_epochs.max(1);
            self.train_run =
                Some(LiveRun { kind, max_epochs, from, replaces, epochs, version: None, automatic, quick });
        }
    }

    /// Starts the simulated annotator on the open database in the background: every strategy, seeds 0-2, scored
    /// at 25, 50, 100 and 200 labels (fewer when the data has fewer), with the online learner's settings.
    pub(super) fn start_simulation(&mut self, kind: ModelKind) {
        let Phase::Ready(ws) = &self.phase else { return };
        let db = ws.db_path();
        let request = crate::guidance::simulate::SimulateRequest {
            kind: if kind == ModelKind::Argd { ModelKind::Arg } else { kind },
            labels: vec![25, 50, 100, 200],
            every: self.settings.online.every_judgements.max(1) as usize,
            device: self.settings.writer.device,
            ..Default::default()
        };
        let work = move |p: &JobState| crate::guidance::simulate::simulate(&db, &request, p);
        let spawned = self.jobs.spawn(SIMULATE_JOB, Task::Simulate, self.waker(), work, Finished::Simulated);
        self.started(spawned);
    }

    /// The online learner belongs to the database it learned on: another one opens, so it is saved in the
    /// background (when it has updates not saved yet) and dropped.
    pub(super) fn start_online_save(&mut self) {
        if let Some(mut learner) = self.online.take() {
            let work = move |p: &JobState| learner.checkpoint(p);
            let spawned = self.jobs.spawn(ONLINE_JOB, Task::Online, self.waker(), work, Finished::OnlineSaved);
            self.started(spawned);
        }
    }

    /// Starts an update of the online learner in the background (opening it first, or again when the version in
    /// use is no longer the one it grew from); the judgements counted so far are its to learn from.
    pub(super) fn start_online_update(&mut self, kind: ModelKind, in_use: i64) {
        let Phase::Ready(ws) = &self.phase else { return };
        let db = ws.db_path();
        let learner = self.online.take().filter(|l| l.kind() == kind && l.base_version() == in_use);
        let device = self.settings.writer.device;
        let options = OnlineOptions {
            every: self.settings.online.every_judgements,
            checkpoint_every: self.settings.online.checkpoint_every_updates.max(1) as usize,
            ..OnlineOptions::default()
        };
        let work = move |p: &JobState| -> Result<_, TrainError> {
            let mut learner = match learner {
                Some(l) => l,
                None => Box::new(OnlineLearner::open(&db, kind, device, options, p)?),
            };
            let update = learner.update(p)?;
            Ok((learner, update))
        };
        let spawned = self.jobs.spawn(ONLINE_JOB, Task::Online, self.waker(), work, Finished::Online);
        if self.started(spawned) {
            self.online_pending = 0;
        }
    }
}
