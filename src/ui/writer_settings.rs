//! Models ▸ Writer settings: which model writes rationales (a local GGUF, or an OpenAI-compatible server), on which
//! device, and how it samples. Saving emits one command; the model is (re)loaded at the next run.

use egui::RichText;

use super::command::AppCommand;
use super::window::{Placement, studio_window};
use crate::models::catalog::{CATALOG, ModelRole};
use crate::models::{DeviceChoice, fetch};
use crate::rationales::{WriterBackend, WriterSettings};

/// The window's state: the settings being edited, and which catalog writers were on disk when it opened (looked up
/// once, not every frame).
pub struct WriterSettingsDraft {
    pub settings: WriterSettings,
    present: Vec<&'static str>,
}

impl WriterSettingsDraft {
    pub fn new(settings: WriterSettings) -> Self {
        let dir = crate::paths::models_dir();
        let present = CATALOG
            .iter()
            .filter(|e| e.kind == ModelRole::Generator && fetch::quick_status(e, &dir) == fetch::ModelStatus::Present)
            .map(|e| e.name)
            .collect();
        Self { settings, present }
    }
}

/// Draws the writer settings window on `draft` while `open`; returns the commands it emits.
pub fn writer_settings_window(
    ctx: &egui::Context,
    open: &mut bool,
    state: &mut WriterSettingsDraft,
) -> Vec<AppCommand> {
    let present = &state.present;
    let draft = &mut state.settings;
    let mut out = Vec::new();
    let mut cancel = false;
    studio_window("Writer settings", open, Placement::Floating { width: 520.0 }).show(ctx, |ui| {
        ui.horizontal(|ui| {
            ui.label("Backend:");
            ui.radio_value(&mut draft.backend, WriterBackend::Local, "local model (this machine)");
            ui.radio_value(&mut draft.backend, WriterBackend::OpenAi, "OpenAI-compatible server");
        });
        ui.separator();
        egui::Grid::new("writer_grid").num_columns(2).show(ui, |ui| match draft.backend {
            WriterBackend::Local => {
                ui.label("Model:");
                egui::ComboBox::from_id_salt("writer_model").selected_text(draft.local_model.clone()).show_ui(
                    ui,
                    |ui| {
                        for entry in CATALOG.iter().filter(|e| e.kind == ModelRole::Generator) {
                            let here = present.contains(&entry.name);
                            let text = format!(
                                "{} ({} MiB{})",
                                entry.name,
                                entry.size_mib,
                                if here { ", here" } else { ", fetched on first use" }
                            );
                            ui.selectable_value(&mut draft.local_model, entry.name.to_owned(), text)
                                .on_hover_text(entry.description);
                        }
                    },
                );
                ui.end_row();
                let label = ui.label("or GGUF path:");
                ui.text_edit_singleline(&mut draft.local_model).labelled_by(label.id);
                ui.end_row();
                ui.label("Device:");
                egui::ComboBox::from_id_salt("writer_device").selected_text(draft.device.to_string()).show_ui(
                    ui,
                    |ui| {
                        for d in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda(0), DeviceChoice::Metal] {
                            ui.selectable_value(&mut draft.device, d, d.to_string());
                        }
                    },
                );
                ui.end_row();
            }
            WriterBackend::OpenAi => {
                let label = ui.label("Server URL:");
                ui.text_edit_singleline(&mut draft.url).labelled_by(label.id);
                ui.end_row();
                let label = ui.label("Model name:");
                ui.text_edit_singleline(&mut draft.served_model).labelled_by(label.id);
                ui.end_row();
                let label = ui.label("API key variable:");
                ui.text_edit_singleline(&mut draft.api_key_env)
                    .labelled_by(label.id)
                    .on_hover_text("the name of an environment variable holding the key; the key is never saved");
                ui.end_row();
                ui.label("Requests at once:");
                ui.add(egui::DragValue::new(&mut draft.concurrency).range(1..=64));
                ui.end_row();
            }
        });
        ui.separator();
        egui::Grid::new("sampling_grid").num_columns(2).show(ui, |ui| {
            ui.label("Temperature:");
            ui.add(egui::Slider::new(&mut draft.params.temperature, 0.0..=1.5).text("0 = greedy"));
            ui.end_row();
            ui.label("Top-p:");
            let mut top_p = draft.params.top_p.unwrap_or(1.0);
            ui.add(egui::Slider::new(&mut top_p, 0.05..=1.0));
            draft.params.top_p = Some(top_p);
            ui.end_row();
            ui.label("Seed:");
            ui.add(egui::DragValue::new(&mut draft.params.seed));
            ui.end_row();
            ui.label("Longest rationale (tokens):");
            ui.add(egui::DragValue::new(&mut draft.params.max_tokens).range(16..=2048));
            ui.end_row();
        });
        ui.label(
            RichText::new("Rationales are stored with the exact prompt and model that wrote them.").small().weak(),
        );
        ui.horizontal(|ui| {
            if ui.button("Save").clicked() {
                out.push(AppCommand::SetWriterSettings(draft.clone()));
            }
            if ui.button("Cancel").clicked() {
                cancel = true;
            }
        });
    });
    if cancel {
        *open = false;
    }
    out
}
