//! Per-frame work that draws nothing: finished background jobs are applied here (one loop, one handler per
//! [`Finished`] variant), and what the panels show is re-read from the workspace on events, never per frame.

use super::background::Finished;
use super::{ArgusApp, ImportResult, Phase};
use crate::domain::ModelKind;
use crate::domain::{ItemId, Verdict};
use crate::encoding::EncodingSummary;
use crate::formats::Format;
use crate::formats::generate::{Rendered, Status};
use crate::formats::repair::RepairOutcome;
use crate::guidance::train::{TokenWeight, TrainReport};
use crate::studio::Command;
use crate::ui::analysis_panel::AnalysisView;
use crate::ui::command::{AppCommand, ONLINE_JOB};

impl ArgusApp {
    /// Applies the jobs that finished since the last frame, in the order they were started, and reloads the shown
    /// item when the writer stored rationales through its own connection.
    pub(super) fn poll_jobs(&mut self) {
        for (finished, cancelled) in self.jobs.take_finished() {
            self.job_finished(finished, cancelled);
        }
        let stored = self.writer.live().stored_count();
        if stored != self.writer_seen {
            self.writer_seen = stored;
            self.commands.push(AppCommand::Studio(Command::Refresh));
        }
    }

    /// The one handler of finished jobs; `cancelled`: the job had been asked to stop.
    fn job_finished(&mut self, finished: Finished, cancelled: bool) {
        match finished {
            Finished::Opened { db, result } => self.opened(db, result),
            Finished::Imported(result) => self.imported(result),
            Finished::Exported(result) => self.report(result, "Export failed"),
            Finished::StudyExported(result) => self.report(result, "Study export failed"),
            Finished::Fetched(result) => self.report(result, "Fetching models failed"),
            Finished::Wrote(result) => self.wrote(result),
            Finished::Rendered { format, result } => self.format_finished(format, result, cancelled),
            Finished::Attention { item, version, result } => self.attention_finished(item, version, result),
            Finished::RouteEstimated(result) => match result {
                Ok(cost) => {
                    self.commands.push(AppCommand::Studio(Command::ReloadPredictions));
                    match &mut self.panels.route {
                        Some(dialog) => dialog.cost = Some(cost),
                        None => self.notify(cost.to_string()),
                    }
                }
                Err(err) => self.notify_error(format!("Routing could not be estimated: {err:#}")),
            },
            Finished::Routed(result) => match result {
                Ok((arg, n)) => {
                    self.notify(format!(
                        "Routing done: ARG version {arg} predicted the {n} routed items from their rationales."
                    ));
                    self.commands.push(AppCommand::Studio(Command::ReloadPredictions));
                }
                Err(err) => self.notify_error(format!("Routing: ARG could not predict the routed items: {err:#}")),
            },
            Finished::Faithfulness { item, version, result } => match result {
                Ok(report) => self.faithfulness = Some((item, version, report.per_item)),
                Err(err) => self.notify_error(format!("ARG's faithfulness could not be checked: {err:#}")),
            },
            Finished::Repaired(result) => self.repair_finished(result, cancelled),
            Finished::Encoded(result) => self.encoded(result),
            Finished::Trained(result) => self.training_finished(result, cancelled),
            Finished::Online(result) => self.online_finished(result, cancelled),
            Finished::OnlineSaved(result) => match result {
                Ok(Some(v)) => tracing::info!("the previous database's online model saved as version {v}"),
                Ok(None) => {}
                Err(err) => {
                    self.notify_error(format!("The online model of the previous database was not saved: {err:#}"))
                }
            },
            Finished::Simulated(result) => match result {
                Ok(report) => {
                    self.notify(format!(
                        "Simulated annotator: {} runs in {:.0} s; the curves are in the Train panel.",
                        report.runs(),
                        report.secs
                    ));
                    self.simulation = Some(report);
                }
                Err(_) if cancelled => self.notify("Simulation cancelled."),
                Err(err) => self.notify_error(format!("Simulation failed: {err:#}")),
            },
        }
    }

    /// A job whose result is a sentence for the status bar.
    fn report(&mut self, result: anyhow::Result<String>, failed: &str) {
        match result {
            Ok(text) => self.notify(text),
            Err(err) => self.notify_error(format!("{failed}: {err:#}")),
        }
    }

    /// The database opened: show it, unless the window moved on meanwhile (another annotator was asked for).
    fn opened(&mut self, db: std::path::PathBuf, result: anyhow::Result<Box<crate::studio::Workspace>>) {
        if !matches!(self.phase, Phase::Opening { .. }) {
            return;
        }
        match result {
            Ok(ws) => {
                self.settings.last_db = Some(db);
                self.save_settings();
                self.phase = Phase::Ready(ws);
                self.reload_repair_stats();
                self.maybe_train_demo_model();
            }
            Err(err) => self.phase = Phase::Failed { error: format!("{err:#}") },
        }
    }

    fn imported(&mut self, result: anyhow::Result<ImportResult>) {
        match result {
            Ok(done) => {
                let items: usize = done.summaries.iter().map(|s| s.items).sum();
                let rationales: usize = done.summaries.iter().map(|s| s.rationales).sum();
                let mut text =
                    format!("Imported {items} items and {rationales} rationales from {} file(s).", done.files);
                let present: usize = done.summaries.iter().map(|s| s.already_present).sum();
                if present > 0 {
                    text = format!("{text} {present} already present.");
                }
                if let Some(report) = &done.merge {
                    let present: usize = report.already_present.values().sum();
                    text = format!(
                        "Merged {} bundle(s): {} rows added, {present} already present, {} undos applied.",
                        done.files,
                        report.total_added(),
                        report.retracted
                    );
                    if !report.missing_items.is_empty() {
                        text = format!(
                            "{text} {} rows skipped: {} items are not in this database (import their dataset first).",
                            report.skipped_rows,
                            report.missing_items.len()
                        );
                    }
                }
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
            Err(err) if crate::jobs::is_cancelled(&err) => {
                self.notify("Import cancelled; nothing was imported.");
            }
            Err(err) => self.notify_error(format!("Import failed, nothing was imported: {err:#}")),
        }
    }

    fn wrote(&mut self, result: anyhow::Result<crate::rationales::Summary>) {
        if let Ok(s) = &result
            && s.generate_seconds > 0.0
        {
            self.writer_tokens_per_second = Some(s.tokens_per_second());
        }
        // A routing run's rationales are written: ARG reads them now (a stopped or failed run routes nothing).
        let routed = self.route_pending.take();
        if let (Some(items), Ok(s)) = (routed, &result)
            && !s.cancelled
        {
            self.start_route_predict(items);
        }
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

    fn attention_finished(&mut self, item: ItemId, version: i64, result: anyhow::Result<Vec<TokenWeight>>) {
        match result {
            Ok(weights) => self.attention = Some((item, version, weights)),
            Err(err) => {
                self.attention_failed = Some((item, version));
                self.notify_error(format!("ARG's attention could not be computed: {err:#}"));
            }
        }
    }

    fn encoded(&mut self, result: anyhow::Result<EncodingSummary>) {
        match result {
            Ok(s) => self.notify(format!(
                "Encoded {} texts ({} were cached already) with {} on {} in {:.1} s.",
                s.stats.encoded, s.stats.hits, s.encoder, s.device, s.seconds
            )),
            Err(err) if crate::jobs::is_cancelled(&err) => {
                self.notify("Encoding stopped; what was encoded stays cached.");
            }
            Err(err) => self.notify_error(format!("Encoding failed: {err:#}")),
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

    /// A training job ended: say how the new version compares, refresh the versions and the list order.
    fn training_finished(&mut self, result: anyhow::Result<TrainReport>, cancelled: bool) {
        let run = self.train_run.as_mut();
        let (kind, automatic) = run.as_ref().map_or((ModelKind::Arg, false), |r| (r.kind, r.automatic));
        let replaces = run.as_ref().and_then(|r| r.replaces);
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
                let text = format!(
                    "{} version {}: test macro-F1 {:.3}{beside}; best epoch {} of {}, {:.1} s. It is now in use.{unused}",
                    report.kind.human_name(),
                    report.version,
                    report.test.macro_f1,
                    report.best_epoch,
                    report.epochs.len(),
                    report.train_secs
                );
                // A collapsed model is in use all the same (the person decides), but the notice says so in red.
                match report.warnings.first() {
                    Some(w) => self.notify_error(format!("{text} Warning: {w}.")),
                    None => self.notify(text),
                }
                self.commands.push(AppCommand::Studio(Command::ReloadPredictions));
                if self.demo_model_training {
                    let was_quick = self.train_run.as_ref().is_some_and(|r| r.quick);
                    if was_quick {
                        // The demo's model is ready: its list in risk order.
                        self.demo_model_training = false;
                        if let Phase::Ready(ws) = &self.phase
                            && ws.order() == crate::guidance::triage::Order::Natural
                        {
                            let risk = crate::guidance::triage::Order::Risk;
                            self.commands.push(AppCommand::Studio(Command::SetOrder(risk)));
                        }
                    } else {
                        // Then its head, quickly, at the head's learning rate: three epochs at the encoder's rate
                        // barely separate the classes yet.
                        self.start_training(ModelKind::Arg, Some(report.version), 30, 0, true, true);
                        self.demo_model_training = self.train_job_running();
                    }
                }
            }
            Err(_) if cancelled => self.notify("Training cancelled; nothing of that run was stored."),
            // The error says what went wrong, typed at its source (`TrainError`): a parent whose weights no longer fit
            // says to train from scratch itself (`TrainError::ParentWeights`), so no hint is guessed here.
            Err(err) => self.notify_error(format!("Training {} failed: {err:#}", kind.human_name())),
        }
    }

    /// After a judgement: with the automatic-retrain setting on, starts an incremental retrain of the Train panel's
    /// model kind once enough judgements were made since its version in use (and none is training).
    pub(super) fn maybe_retrain_automatically(&mut self) {
        let every = self.settings.retrain_every_judgements;
        if every == 0 || self.train_job_running() {
            return;
        }
        let Phase::Ready(ws) = &self.phase else { return };
        let kind = self.panels.train.kind;
        let in_use = ws.active_versions().of(kind);
        let count = match ws.judgements_since_version_in_use(kind) {
            Ok(n) => n,
            Err(err) => {
                tracing::warn!("automatic retrain: cannot count judgements: {err}");
                return;
            }
        };
        let waited = self.auto_retrain_started_at.is_none_or(|at| count >= at + every);
        if count >= every && waited {
            let (max_epochs, seed) = (self.panels.train.max_epochs, self.panels.train.seed);
            let quick = self.panels.train.mode == crate::ui::train_panel::RetrainMode::Quick;
            self.start_training(kind, in_use, max_epochs, seed, quick, true);
            if self.train_job_running() {
                let from = in_use.map_or_else(|| "from scratch".to_owned(), |v| format!("from version {v}"));
                self.notify(format!(
                    "{count} new judgements: retraining {} {from} in the background.",
                    kind.human_name()
                ));
                self.auto_retrain_started_at = Some(count);
            }
        }
    }

    /// The built-in demo opened without any model version: its first ARG version trains in the background from the
    /// bundled demo data (three epochs, seed 0), so that the risk order, P(fake) per row and ARG's trust appear
    /// without a button, and judgements then move them (online learning).
    fn maybe_train_demo_model(&mut self) {
        let Phase::Ready(ws) = &self.phase else { return };
        let active = ws.active_versions();
        if ws.db_path() != self.demo_db
            || ModelKind::ALL.iter().any(|&k| active.of(k).is_some())
            || self.train_job_running()
        {
            return;
        }
        self.start_training(ModelKind::Arg, None, 3, 0, false, true);
        if self.train_job_running() {
            self.demo_model_training = true;
            self.notify(
                "Training the demo's first ARG model in the background (a few minutes): P(fake), the risk order and \
                 ARG's trust in each rationale appear when it is done; label meanwhile.",
            );
        }
    }

    /// After a judgement: with the online setting on, starts an online update of the model in use once enough
    /// judgements were made since the last one (and neither an update nor a training run is going).
    pub(super) fn maybe_update_online(&mut self) {
        let every = self.settings.online.every_judgements;
        if every == 0 || self.online_pending < every || self.jobs.is_running(ONLINE_JOB) || self.train_job_running() {
            return;
        }
        let Phase::Ready(ws) = &self.phase else { return };
        // The Train panel's kind when a version of it is in use, else the first kind that has one.
        let active = ws.active_versions();
        let chosen = self.panels.train.kind;
        let kinds = std::iter::once(chosen).chain(ModelKind::ALL);
        let Some((kind, version)) = kinds.filter_map(|k| active.of(k).map(|v| (k, v))).next() else { return };
        self.start_online_update(kind, version);
    }

    /// An online update ended: keep the learner, show its predictions (the list re-ordered, the selection kept),
    /// and say what moved.
    fn online_finished(
        &mut self,
        result: anyhow::Result<(Box<crate::guidance::online::OnlineLearner>, crate::guidance::online::OnlineUpdate)>,
        cancelled: bool,
    ) {
        match result {
            Ok((learner, update)) => {
                let Phase::Ready(ws) = &mut self.phase else { return };
                // Another database was opened meanwhile: this update is not its.
                if learner.db() != ws.db_path() {
                    return;
                }
                self.online = Some(learner);
                if update.steps == 0 && update.checkpoint.is_none() {
                    // Nothing it could learn from (judgements on validation or test items only): the order stays.
                    self.notify(format!(
                        "{}: no new training labels among the last judgements; the order stays.",
                        update.kind.human_name()
                    ));
                    self.maybe_update_online();
                    return;
                }
                let Phase::Ready(ws) = &mut self.phase else { return };
                let live = crate::studio::LivePredictions {
                    kind: update.kind,
                    version: update.version,
                    predictions: update.predictions.iter().map(|p| (p.item_id, p.clone())).collect(),
                };
                let moved = match ws.apply_live_predictions(live) {
                    Ok(moved) => moved,
                    Err(err) => {
                        self.notify_error(format!("Cannot show the online model's predictions: {err}"));
                        return;
                    }
                };
                let saved = match update.checkpoint {
                    Some(v) => {
                        self.commands.push(AppCommand::Studio(Command::ReloadPredictions));
                        self.reload_versions();
                        format!("; saved as version {v}")
                    }
                    None => String::new(),
                };
                let f1 = update.val_macro_f1.map_or_else(String::new, |f| format!(", validation macro-F1 {f:.3}"));
                self.notify(format!(
                    "{} updated from {} judgements, {moved} items moved ({:.2} s{f1}){saved}",
                    update.kind.human_name(),
                    update.new_labels,
                    update.secs
                ));
                // Judgements made while it ran wait for the next update.
                self.maybe_update_online();
            }
            Err(_) if cancelled => self.notify("Online update cancelled."),
            Err(err) => {
                if let Some(crate::guidance::train::TrainError::QuickWithoutVersion(_)) = err.downcast_ref() {
                    return;
                }
                self.notify_error(format!("Online update failed: {err:#}"));
            }
        }
    }

    /// Saves the online learner's state as a version, when it has updates not saved yet: the studio closes, so this
    /// runs on the UI thread (a background job would not outlive the window).
    pub(super) fn checkpoint_online(&mut self) {
        if let Some(learner) = self.online.as_mut() {
            match learner.checkpoint(&crate::jobs::NoProgress) {
                Ok(Some(v)) => tracing::info!("online model saved as version {v}"),
                Ok(None) => {}
                Err(err) => tracing::error!("cannot save the online model: {err}"),
            }
        }
    }

    /// Re-reads the repairs by format (on events only: opening, feedback saved, a repair done).
    pub(super) fn reload_repair_stats(&mut self) {
        let Phase::Ready(ws) = &self.phase else { return };
        match ws.repair_stats() {
            Ok(stats) => self.repair_stats = stats,
            Err(err) => tracing::warn!("cannot read the repairs by format: {err}"),
        }
    }

    /// Stores the project's split key and says what it changes.
    pub(super) fn set_split_group_by(&mut self, key: Option<String>) {
        let Phase::Ready(ws) = &self.phase else { return };
        match ws.set_split_group_by(key.as_deref()) {
            Ok(()) => {
                self.notify(match &key {
                    Some(k) => format!(
                        "Train / val now split by {k:?} for this project: the next version trained from scratch uses it."
                    ),
                    None => "Train / val now split by the item's text for this project.".to_owned(),
                });
                self.reload_versions();
            }
            Err(err) => self.notify_error(format!("Cannot store the split setting: {err:#}")),
        }
    }

    /// Re-reads the model versions for the Train panel (on opening it, after a run, after a roll back).
    pub(super) fn reload_versions(&mut self) {
        let Phase::Ready(ws) = &self.phase else { return };
        match ws.versions() {
            Ok(versions) => {
                self.versions = versions;
                self.panels.train.pick_defaults(&self.versions);
            }
            Err(err) => self.notify_error(format!("Cannot read the model versions: {err:#}")),
        }
    }

    /// Re-reads the registered studies for the Analysis panel and the participant dialog.
    pub(super) fn reload_study_lists(&mut self) {
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
    pub(super) fn run_analysis(&mut self) {
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
    pub(super) fn reload_agreement(&mut self) {
        let Phase::Ready(ws) = &self.phase else { return };
        let state = &mut self.panels.agreement;
        state.summary = Some(ws.agreement_summary().map_err(|e| e.to_string()));
        match ws.disagreements() {
            Ok(d) => state.disagreements = d,
            Err(err) => state.summary = Some(Err(err.to_string())),
        }
        state.clamp_selection();
    }
}
