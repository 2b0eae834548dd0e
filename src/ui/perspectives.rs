//! View ▸ Perspectives: the perspectives rationales are written from, as editable data (name, prompt, verdict
//! question), plus a form to add one. Edits become `studio` commands; rationales already written keep the exact
//! prompt they were written with.

use egui::RichText;

use super::command::AppCommand;
use super::window::{Placement, studio_window};
use crate::prompting::{Perspective, builtin_perspectives};
use crate::studio::{Command, Workspace};

/// Drafts being edited, by perspective key; a draft is dropped once saved or reset.
#[derive(Default)]
pub struct PerspectivesState {
    drafts: std::collections::BTreeMap<String, Perspective>,
    new_key: String,
    new_name: String,
}

/// Draws the perspectives window while `open`; returns the commands it emits.
pub fn perspectives_window(
    ctx: &egui::Context,
    open: &mut bool,
    ws: &Workspace,
    state: &mut PerspectivesState,
) -> Vec<AppCommand> {
    let mut out = Vec::new();
    let builtin_keys: Vec<String> = builtin_perspectives().into_iter().map(|p| p.key).collect();
    studio_window("Perspectives", open, Placement::Floating { width: 640.0 }).show(ctx, |ui| {
        ui.label(
            "Rationales are written from each perspective below. `{news}` marks where the news text goes; it is \
             always fenced as data, so instructions inside a news text are not followed.",
        );
        for p in ws.perspectives().iter().filter(|p| p.generated) {
            let draft = state.drafts.entry(p.key.clone()).or_insert_with(|| p.clone());
            egui::CollapsingHeader::new(format!("{} ({})", p.name, p.key)).id_salt(("perspective", &p.key)).show(
                ui,
                |ui| {
                    egui::Grid::new(("perspective_grid", &p.key)).num_columns(2).show(ui, |ui| {
                        let label = ui.label("Name:");
                        ui.add(egui::TextEdit::singleline(&mut draft.name).desired_width(480.0)).labelled_by(label.id);
                        ui.end_row();
                        let label = ui.label("Prompt:");
                        ui.add(egui::TextEdit::multiline(&mut draft.prompt).desired_rows(4).desired_width(480.0))
                            .labelled_by(label.id);
                        ui.end_row();
                        let label = ui.label("Verdict question:");
                        ui.add(
                            egui::TextEdit::multiline(&mut draft.verdict_question).desired_rows(2).desired_width(480.0),
                        )
                        .labelled_by(label.id);
                        ui.end_row();
                    });
                    ui.horizontal(|ui| {
                        let changed = draft != p;
                        if ui.add_enabled(changed, egui::Button::new("Save")).clicked() {
                            out.push(AppCommand::Studio(Command::SavePerspective(draft.clone())));
                        }
                        if ui.add_enabled(changed, egui::Button::new("Discard changes")).clicked() {
                            *draft = p.clone();
                        }
                        if builtin_keys.contains(&p.key) && ui.button("Reset to default").clicked() {
                            out.push(AppCommand::Studio(Command::ResetPerspective(p.key.clone())));
                        }
                    });
                },
            );
        }
        ui.separator();
        ui.label(RichText::new("Add a perspective").strong());
        ui.horizontal(|ui| {
            let label = ui.label("New key:");
            ui.add(egui::TextEdit::singleline(&mut state.new_key).hint_text("e.g. src").desired_width(80.0))
                .labelled_by(label.id);
            let label = ui.label("New name:");
            ui.add(egui::TextEdit::singleline(&mut state.new_name).hint_text("e.g. Source credibility"))
                .labelled_by(label.id);
            let ready = !state.new_key.trim().is_empty() && !state.new_name.trim().is_empty();
            if ui.add_enabled(ready, egui::Button::new("Add")).clicked() {
                let template = &builtin_perspectives()[0];
                out.push(AppCommand::Studio(Command::SavePerspective(Perspective {
                    key: state.new_key.trim().to_lowercase(),
                    name: state.new_name.trim().to_owned(),
                    prompt: format!(
                        "{{news}}\n\nAnalyse the given news from the perspective of {}. Write a short rationale \
                         (at most 120 words).",
                        state.new_name.trim().to_lowercase()
                    ),
                    verdict_question: template.verdict_question.clone(),
                    generated: true,
                })));
                state.new_key.clear();
                state.new_name.clear();
            }
        });
    });
    out
}

impl PerspectivesState {
    /// Forgets the draft of `key` (after it was saved or reset), so the window shows the stored version.
    pub fn forget(&mut self, key: &str) {
        self.drafts.remove(key);
    }
}
