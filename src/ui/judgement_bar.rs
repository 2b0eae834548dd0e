//! The judgement bar: verdict buttons with their keys, an optional confidence, a note, undo.

use egui::RichText;

use super::command::AppCommand;
use super::item_list::verdict_color;
use super::keys::{self, KeyCommand};
use crate::domain::Verdict;
use crate::studio::{Command, Workspace};

/// What the person has typed or set for the next judgement.
#[derive(Default)]
pub struct BarState {
    pub note: String,
    pub use_confidence: bool,
    pub confidence: f64,
}

impl BarState {
    /// The judgement command for `verdict`, carrying the note and confidence set in the bar.
    pub fn judge_command(&self, verdict: Verdict) -> Command {
        Command::Judge {
            verdict,
            confidence: self.use_confidence.then_some(self.confidence),
            note: Some(self.note.trim().to_owned()).filter(|n| !n.is_empty()),
        }
    }

    /// After a judgement the note belongs to that item: clear it for the next one.
    pub fn clear_after_judgement(&mut self) {
        self.note.clear();
    }
}

/// Draws the bar; returns the commands it emits.
///
/// `writes_paused`: an import is publishing (it holds the write lock); the verdict buttons are disabled meanwhile.
pub fn judgement_bar_ui(
    ui: &mut egui::Ui,
    ws: &Workspace,
    state: &mut BarState,
    writes_paused: bool,
) -> Vec<AppCommand> {
    let mut out = Vec::new();
    let has_item = ws.selected_id().is_some() && !writes_paused;
    let mine = ws.cursor().and_then(|c| ws.row(c)).and_then(|s| s.my_verdict);
    ui.add_space(4.0);
    if writes_paused {
        ui.label(
            egui::RichText::new("Verdicts are paused while the import publishes its rows to the database.")
                .color(ui.visuals().warn_fg_color),
        );
    }
    ui.horizontal(|ui| {
        ui.add_enabled_ui(has_item, |ui| {
            for (verdict, key) in [
                (Verdict::Fake, KeyCommand::JudgeFake),
                (Verdict::Real, KeyCommand::JudgeReal),
                (Verdict::Other, KeyCommand::JudgeUnsure),
            ] {
                let text = RichText::new(keys::labelled(key)).strong();
                let mut button = egui::Button::new(text).min_size(egui::vec2(96.0, 28.0));
                if mine == Some(verdict) {
                    button = button.fill(verdict_color(verdict));
                }
                if ui.add(button).clicked() {
                    out.push(AppCommand::Studio(state.judge_command(verdict)));
                }
            }
            if ui.add(egui::Button::new(keys::labelled(KeyCommand::Skip)).min_size(egui::vec2(96.0, 28.0))).clicked() {
                out.push(AppCommand::Studio(Command::Skip));
            }
        });
        if ui
            .add_enabled(ws.can_undo() && !writes_paused, egui::Button::new(keys::labelled(KeyCommand::Undo)))
            .clicked()
        {
            out.push(AppCommand::Studio(Command::Undo));
        }
        ui.separator();
        let confidence = ui.checkbox(&mut state.use_confidence, "Confidence");
        ui.add_enabled(
            state.use_confidence,
            egui::Slider::new(&mut state.confidence, 0.0..=1.0).fixed_decimals(2).text("level"),
        )
        .labelled_by(confidence.id);
    });
    ui.horizontal(|ui| {
        let label = ui.label("Note:");
        ui.add(
            egui::TextEdit::singleline(&mut state.note)
                .hint_text("optional; saved with the next verdict (Esc leaves the field)")
                .desired_width(f32::INFINITY),
        )
        .labelled_by(label.id);
    });
    ui.add_space(2.0);
    out
}
