//! The menu bar: File, View, Models, Studies, Annotator and the Train toggle. Drawing only: each entry pushes an
//! [`AppCommand`]; the labels that name a key come from the command table ([`crate::ui::keys`]). File dialogs open
//! here, on the UI thread (the I/O they lead to runs in a job).

use super::{ArgusApp, Phase};
use crate::config::Theme;
use crate::ingest::export::ExportFormat;
use crate::ui::command::{AppCommand, ENCODE_JOB, FETCH_JOB};
use crate::ui::keys::{self, KeyCommand};

impl ArgusApp {
    pub(super) fn menu_ui(&mut self, ui: &mut egui::Ui) {
        let ready = matches!(self.phase, Phase::Ready(_));
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| self.file_menu_ui(ui, ready));
            ui.menu_button("View", |ui| self.view_menu_ui(ui, ready));
            ui.menu_button("Models", |ui| self.models_menu_ui(ui, ready));
            ui.menu_button("Studies", |ui| self.studies_menu_ui(ui, ready));
            ui.menu_button("Annotator", |ui| {
                ui.label(format!("Annotating as: {}", self.current_annotator()));
                if ui.button("Switch annotator…").clicked() {
                    self.commands.push(AppCommand::SwitchAnnotator);
                    ui.close();
                }
            });
            ui.separator();
            let train = egui::Button::selectable(self.panels.train.open, "Train");
            let hover = keys::with_key("show or hide the Train panel", KeyCommand::ToggleTrainPanel);
            if ui.add_enabled(ready, train).on_hover_text(hover).clicked() {
                self.commands.push(AppCommand::ToggleTrainPanel);
            }
        });
    }

    fn file_menu_ui(&mut self, ui: &mut egui::Ui, ready: bool) {
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
        if ui.add_enabled(ready, egui::Button::new("Merge a colleague's work…")).clicked() {
            if let Some(paths) = rfd::FileDialog::new().add_filter("Argus bundle", &["jsonl"]).pick_files() {
                self.commands.push(AppCommand::MergeBundles(paths));
            }
            ui.close();
        }
        if ui.add_enabled(ready, egui::Button::new("Share my work (bundle)…")).clicked() {
            if let Some(path) = rfd::FileDialog::new().set_file_name("my-work.bundle.jsonl").save_file() {
                self.commands.push(AppCommand::ExportBundle(path));
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
                if ui.button("ClaimReview JSON-LD (reviews)…").clicked() {
                    if let Some(dir) = rfd::FileDialog::new().pick_folder() {
                        self.commands.push(AppCommand::Export { format: ExportFormat::ClaimReview, path: dir });
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
    }

    fn view_menu_ui(&mut self, ui: &mut egui::Ui, ready: bool) {
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
        if ui.button(keys::labelled(KeyCommand::ToggleHelp)).clicked() {
            self.commands.push(AppCommand::ToggleHelp);
            ui.close();
        }
    }

    fn models_menu_ui(&mut self, ui: &mut egui::Ui, ready: bool) {
        ui.label(self.writer_status());
        ui.separator();
        let selected = match &self.phase {
            Phase::Ready(ws) => ws.selected_id(),
            _ => None,
        };
        let writing = self.llm_job_running();
        if ui
            .add_enabled(selected.is_some() && !writing, egui::Button::new(keys::labelled(KeyCommand::WriteRationales)))
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
        if ui.add_enabled(!self.jobs.is_running(FETCH_JOB), egui::Button::new("Fetch the demo models")).clicked() {
            self.commands.push(AppCommand::FetchDemoModels);
            ui.close();
        }
        if ui
            .add_enabled(!self.jobs.is_running(ENCODE_JOB), egui::Button::new("Encode items for the guidance model"))
            .on_hover_text(
                "every news text and rationale through the encoder's frozen layers, cached beside the database",
            )
            .clicked()
        {
            self.commands.push(AppCommand::EncodeItems);
            ui.close();
        }
        if ui
            .add_enabled(ready, egui::Button::new("Route uncertain items…"))
            .on_hover_text("ARG-D scores everything; its least sure share gets rationales and goes through ARG")
            .clicked()
        {
            self.commands.push(AppCommand::ToggleRouteDialog);
            ui.close();
        }
        if ui.button("Writer settings…").clicked() {
            self.commands.push(AppCommand::ToggleWriterSettings);
            ui.close();
        }
        ui.separator();
        if ui
            .add_enabled(ready, egui::Button::new(keys::labelled(KeyCommand::ToggleTrainPanel)))
            .on_hover_text("retrain the guidance model, compare versions, roll back")
            .clicked()
        {
            self.commands.push(AppCommand::ToggleTrainPanel);
            ui.close();
        }
    }

    fn studies_menu_ui(&mut self, ui: &mut egui::Ui, ready: bool) {
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
    }
}
