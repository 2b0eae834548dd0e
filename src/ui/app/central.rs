//! Drawing the studio below the menu bar: the central phases (who annotates, opening, a failed open, the item list
//! with the judgement bar and the item view) and the windows of the panels and dialogs. Drawing only: panels get
//! the workspace read-only and their own state, and what they return is queued for `handle`.

use std::path::Path;

use egui::Key;

use super::background::Task;
use super::{ArgusApp, Phase};
use crate::studio::Workspace;
use crate::ui::command::{AppCommand, IMPORT_JOB, LLM_JOBS, ROUTE_ESTIMATE_JOB, ROUTE_JOB, WRITER_JOB};
use crate::ui::import_dialog::import_dialog_ui;
use crate::ui::train_panel::{self, TrainView};
use crate::ui::writer_view::WriterView;
use crate::ui::{
    agreement_panel, analysis_panel, help, item_list, item_view, judgement_bar, participant, perspectives,
    route_dialog, study_designer, writer_settings,
};

/// Memory key: the annotator field has been given the keyboard once.
pub(super) const ANNOTATOR_AUTOFOCUS: &str = "annotator_autofocus_done";

impl ArgusApp {
    pub(super) fn central_ui(&mut self, ui: &mut egui::Ui) {
        let writer = self.writer_view();
        let paused = self.jobs.is_running(IMPORT_JOB);
        let opening = self.jobs.find(|t| *t == Task::Open).map(|s| s.message()).unwrap_or_default();
        match &mut self.phase {
            Phase::ChooseAnnotator { name, db, .. } => {
                let db = db.clone();
                if let Some(cmd) = annotator_modal_ui(ui.ctx(), name, &db) {
                    self.commands.push(cmd);
                }
            }
            Phase::Opening { db } => {
                let db = db.clone();
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.centered_and_justified(|ui| {
                        ui.horizontal(|ui| {
                            ui.spinner();
                            ui.label(format!("Opening {} — {opening}", db.display()));
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
                egui::Panel::bottom("judgement_bar").show(ui, |ui| {
                    self.commands.extend(judgement_bar::judgement_bar_ui(ui, ws, &mut panels.bar, paused));
                });
                egui::CentralPanel::default().show(ui, |ui| {
                    self.commands.extend(item_view::item_view_ui(
                        ui,
                        ws,
                        &mut panels.view,
                        &writer,
                        &self.settings.review,
                    ));
                });
            }
        }
    }

    /// What the item view shows of the model jobs, read from the jobs and the writer's live state.
    fn writer_view(&self) -> WriterView {
        let selected = self.workspace().and_then(Workspace::selected_id);
        let repairing = self.jobs.find_map(|t| match t {
            Task::Repair { feedback } => Some(feedback),
            _ => None,
        });
        WriterView {
            live: selected.map(|id| self.writer.live().for_item(id)).unwrap_or_default(),
            running: self.jobs.is_running(WRITER_JOB),
            llm_busy: LLM_JOBS.iter().any(|name| self.jobs.is_running(name)),
            rendering: self.jobs.find_map(|t| match t {
                Task::Format { rationale, format } => Some((rationale, format)),
                _ => None,
            }),
            repair: repairing.map(|id| match self.writer.live().repair_text() {
                Some((live, text)) if live == id => (id, text),
                _ => (id, String::new()),
            }),
            repair_stats: self.repair_stats.clone(),
            attention: self.attention.clone(),
            attention_loading: self.jobs.find_map(|t| match t {
                Task::Attention { item } => Some(item),
                _ => None,
            }),
            faithfulness: self.faithfulness.clone(),
            faithfulness_loading: self.jobs.find_map(|t| match t {
                Task::Faithfulness { item } => Some(item),
                _ => None,
            }),
        }
    }

    /// The windows over the studio: the import dialog, the panels (while open and a database is open), the
    /// participant dialog and the `?` sheet.
    pub(super) fn windows_ui(&mut self, ctx: &egui::Context) {
        if let Some(dialog) = &mut self.panels.import
            && let Some(choice) = import_dialog_ui(ctx, dialog)
        {
            self.panels.import = None;
            self.commands.extend(choice);
        }
        if self.panels.show_perspectives
            && let Phase::Ready(ws) = &self.phase
        {
            let mut open = true;
            let out = perspectives::perspectives_window(ctx, &mut open, ws, &mut self.panels.perspectives);
            self.commands.extend(out);
            self.panels.show_perspectives = open;
        }
        let jobs = route_dialog::RouteJobs {
            estimating: self.jobs.is_running(ROUTE_ESTIMATE_JOB),
            busy: self.llm_job_running() || self.jobs.is_running(ROUTE_JOB) || self.route_pending.is_some(),
        };
        if let Some(dialog) = &mut self.panels.route {
            let mut open = true;
            let out = route_dialog::route_window(ctx, &mut open, dialog, jobs);
            if !open {
                self.panels.route = None;
            }
            self.commands.extend(out);
        }
        if let Some(draft) = &mut self.panels.writer_settings {
            let mut open = true;
            let out = writer_settings::writer_settings_window(ctx, &mut open, draft);
            if !open || !out.is_empty() {
                self.panels.writer_settings = None;
            }
            self.commands.extend(out);
        }
        let ready = matches!(self.phase, Phase::Ready(_));
        if self.panels.train.open && ready {
            let job = self.jobs.find(|t| *t == Task::Train).cloned();
            let view = TrainView {
                run: self.train_run.as_ref(),
                job,
                versions: &self.versions,
                retrain_every_judgements: self.settings.retrain_every_judgements,
                online_every_judgements: self.settings.online.every_judgements,
                simulation: self.simulation.as_ref(),
                simulating: self.jobs.find(|t| *t == Task::Simulate).cloned(),
            };
            let out = train_panel::train_window(ctx, &mut self.panels.train, &view);
            self.commands.extend(out);
        }
        if self.panels.designer.open && ready {
            let out = study_designer::designer_window(ctx, &mut self.panels.designer);
            self.commands.extend(out);
        }
        if let Some(dialog) = &mut self.panels.run_dialog {
            let (out, open) = participant::run_dialog_window(ctx, dialog);
            self.commands.extend(out);
            if !open {
                self.panels.run_dialog = None;
            }
        }
        if self.panels.analysis.open && ready {
            let out = analysis_panel::analysis_window(ctx, &mut self.panels.analysis);
            self.commands.extend(out);
        }
        if self.panels.agreement.open && ready {
            let out = agreement_panel::agreement_window(ctx, &mut self.panels.agreement);
            self.commands.extend(out);
        }
        if self.panels.show_help {
            let mut open = true;
            help::shortcuts_window(ctx, &mut open);
            if !open {
                self.panels.show_help = false;
            }
        }
    }
}

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
