//! The one place [`AppCommand`]s are carried out, once per frame, after the panels have drawn. Store writes go
//! through the workspace ([`Workspace::apply`]) and are committed before [`ArgusApp::handle_commands`] returns;
//! background work is started through `start`.

use std::path::PathBuf;

use super::central::ANNOTATOR_AUTOFOCUS;
use super::{ArgusApp, PanelState, Phase, apply_theme};
use crate::ingest::ImportOptions;
use crate::studies::spec::StudySpec;
use crate::studio::{Command, Outcome, Workspace};
use crate::ui::command::{AppCommand, IMPORT_JOB, MERGE_JOB};
use crate::ui::import_dialog::ImportDialog;
use crate::ui::participant::{ParticipantRun, RunDialog};
use crate::ui::writer_settings::WriterSettingsDraft;

impl ArgusApp {
    /// Carries out the commands the panels emitted this frame. Store writes are committed before this returns.
    pub fn handle_commands(&mut self) {
        for command in std::mem::take(&mut self.commands) {
            self.handle(command);
        }
    }

    /// True while an import publishes its staged rows (it holds SQLite's one write lock for that last second or
    /// so; while it reads and stages, verdicts go on) or a merge runs: the workspace's own writes would wait on the
    /// lock, so they are refused with a message rather than freezing the window.
    pub(super) fn writes_paused(&self) -> bool {
        self.jobs.is_running(MERGE_JOB)
            || self.jobs.running().any(|job| job.name() == IMPORT_JOB && job.message() == crate::ingest::PUBLISHING)
    }

    fn handle(&mut self, command: AppCommand) {
        match command {
            AppCommand::Studio(cmd) => self.handle_studio(cmd),
            AppCommand::OpenDatabase(db) => self.open_database(db),
            AppCommand::OpenDemo => self.open_database(self.demo_db.clone()),
            // Every import is previewed first: the dialog shows the first rows as they will be read.
            AppCommand::ChooseImport(paths) => self.panels.import = Some(ImportDialog::new(paths)),
            AppCommand::ChooseImportWith(paths, flags) => {
                self.panels.import = Some(ImportDialog::new(paths).with_flags(flags));
            }
            AppCommand::ImportFiles { paths, flags } => self.import_files(paths, &flags),
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
                    _ => crate::paths::demo_db_path(),
                };
                let seed_demo = db == crate::paths::demo_db_path();
                self.ctx.data_mut(|d| d.remove_temp::<bool>(egui::Id::unique(ANNOTATOR_AUTOFOCUS)));
                self.phase = Phase::ChooseAnnotator { name: String::new(), db, seed_demo };
            }
            AppCommand::SetReviewSettings(review) => {
                self.settings.review = review;
                self.panels.view.review = Default::default();
                self.save_settings();
                self.notify("Review settings saved.");
            }
            AppCommand::MergeBundles(paths) => self.start_merge(paths),
            AppCommand::ExportBundle(path) => self.start_bundle_export(path),
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
                    None => Some(WriterSettingsDraft::new(self.settings.writer.clone())),
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
            AppCommand::Retrain { kind, from, max_epochs, seed, quick } => {
                self.start_training(kind, from, max_epochs, seed, quick, false);
            }
            AppCommand::SetFormat(format) => self.panels.view.format = format,
            AppCommand::RenderFormat { rationale, format } => self.start_rendering(rationale, format),
            AppCommand::ApplyFeedback { feedback_id } => self.start_repair(feedback_id),
            AppCommand::LoadAttention { item, version } => self.start_attention(item, version),
            AppCommand::CheckFaithfulness { item, version } => self.start_faithfulness(item, version),
            AppCommand::ToggleRouteDialog => {
                self.panels.route = match self.panels.route {
                    Some(_) => None,
                    None => Some(crate::ui::route_dialog::RouteDialog::default()),
                };
            }
            AppCommand::EstimateRoute { share } => self.start_route_estimate(share),
            AppCommand::RouteItems(items) => self.start_routing(items),
            AppCommand::SetAutoRetrain(every) => {
                self.settings.retrain_every_judgements = every;
                self.auto_retrain_started_at = None;
                self.save_settings();
            }
            AppCommand::Simulate { kind } => self.start_simulation(kind),
            AppCommand::SetOnlineEvery(every) => {
                self.settings.online.every_judgements = every;
                self.save_settings();
            }
            AppCommand::SetSplitGroupBy(key) => self.set_split_group_by(key),
            AppCommand::CancelJob(name) => self.jobs.cancel(&name),
            AppCommand::ToggleStudyDesigner => self.panels.designer.open = !self.panels.designer.open,
            AppCommand::PreviewStudy(spec) => self.preview_study(&spec),
            AppCommand::OpenRunParticipant => self.open_run_participant(),
            AppCommand::StartParticipant { study, code } => self.start_participant(&study, &code),
            AppCommand::AnswerStep { answers, timing } => self.answer_step(&answers, timing),
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

    /// A user action on the open workspace: refused while an import writes, else committed, and its outcome told.
    fn handle_studio(&mut self, cmd: Command) {
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
            self.notify_error("Not saved: an import is publishing its rows to the database; judge again in a moment.");
            return;
        }
        let Phase::Ready(ws) = &mut self.phase else { return };
        let is_judge = matches!(cmd, Command::Judge { .. });
        let is_register = matches!(cmd, Command::RegisterStudy(_));
        let restoring = restored_revision(ws, &cmd);
        match ws.apply(cmd) {
            Ok(Outcome::Judged { verdict, .. }) => {
                self.panels.bar.clear_after_judgement();
                self.notify(format!("Saved: {}", verdict.human_name()));
                self.online_pending += 1;
                self.maybe_retrain_automatically();
                self.maybe_update_online();
            }
            Ok(Outcome::VersionInUse { version, kind }) => {
                self.reload_versions();
                let name = kind.human_name();
                self.notify(format!("{name} version {version} is now in use; the list order follows it."));
            }
            Ok(Outcome::Undone { item, verdict }) => {
                self.notify(format!("Undone: {} on item {item}", verdict.human_name()));
                self.online_pending += 1;
                self.maybe_update_online();
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
            Ok(Outcome::Reviewed { item, rating }) => {
                self.notify(format!(
                    "Review of item {item} published: {rating}. It is the item's verdict for training."
                ));
            }
            Ok(Outcome::ReviewUndone { item }) => {
                self.notify(format!("Review of item {item} undone (kept in its history)."))
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

    /// Opens `db` in place of the open database (the panels start afresh; the format shown is kept).
    fn open_database(&mut self, db: PathBuf) {
        let annotator = self.current_annotator();
        let format = self.panels.view.format;
        self.panels = PanelState::default();
        self.panels.view.format = format;
        if !self.train_job_running() {
            self.train_run = None;
        }
        self.start_online_save();
        self.online_pending = 0;
        let seed_demo = db == self.demo_db;
        self.start_opening(db, seed_demo, annotator);
    }

    /// Imports `paths` with the column and label maps in the CLI's syntax.
    fn import_files(&mut self, paths: Vec<PathBuf>, flags: &crate::ingest::ImportFlags) {
        // The same parsing as the command line's, so the dialog accepts exactly what `argus import` does.
        match ImportOptions::from_flags(flags) {
            Ok(options) => self.start_import(paths, options),
            Err(err) => self.notify_error(format!("Import not started: {err}")),
        }
    }

    /// Resolves a draft study's items and plans its first participants, for the designer's preview.
    fn preview_study(&mut self, spec: &StudySpec) {
        let Phase::Ready(ws) = &self.phase else { return };
        let preview = ws
            .resolve_study_items(spec)
            .map(|(spec, pool)| (1..=4).map(|n| crate::studies::assign::plan(&spec, &pool, n)).collect())
            .map_err(|e| e.to_string());
        self.panels.designer.set_preview(preview);
    }

    /// Opens the Run a participant dialog on the registered studies (the one chosen before, else the draft's).
    fn open_run_participant(&mut self) {
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

    /// Starts (or resumes) participant `code` of `study` and switches the window to participant mode.
    fn start_participant(&mut self, study: &str, code: &str) {
        if self.writes_paused() {
            self.notify_error("An import is publishing its rows to the database; start the participant in a moment.");
            return;
        }
        let Phase::Ready(ws) = &mut self.phase else { return };
        match ws.start_study_session(study, code) {
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

    /// Commits the participant's answers to the current step (refused while an import writes).
    fn answer_step(&mut self, answers: &[(String, String)], timing: crate::store::studies::Timing) {
        let paused = self.writes_paused();
        let (Phase::Ready(ws), Some(run)) = (&mut self.phase, &mut self.participant) else { return };
        if paused {
            run.refused("Not saved: the database is busy with an import; press Enter again in a moment.".into());
            return;
        }
        match ws.answer_study_step(run.session_mut(), answers, timing) {
            Ok(answered) => run.answered(answered, ws),
            Err(err) => run.refused(err.to_string()),
        }
    }
}

/// The revision number a restore brings back, for the status line.
fn restored_revision(ws: &Workspace, cmd: &Command) -> Option<u32> {
    match cmd {
        Command::RestoreRevision(id) => ws
            .detail()
            .and_then(|d| d.explain.values().flat_map(|e| &e.revisions).find(|r| r.id == *id).map(|r| r.revision)),
        _ => None,
    }
}
