//! The keyboard shortcut sheet (`?`): the command table of [`super::keys`], then the keys that belong to egui's
//! focus handling or to one panel rather than to a command.

use super::keys::COMMANDS;
use super::window::{Placement, studio_window};

/// Keys the sheet explains that are not studio commands, as (keys, what they do), listed after the commands.
pub const NOTES: &[(&str, &str)] = &[
    ("f / r / u", "in Studies ▸ Agreement ▸ Adjudication: record the final verdict of the item shown there"),
    ("Tab / shift+Tab", "move between the fields of a feedback form (or any control)"),
    (
        "space / enter",
        "press the focused button, option or section header (space skips the item when nothing is focused)",
    ),
    ("enter", "in a feedback text field: save it (shift+enter: new line)"),
    (
        "participant mode",
        "Enter: submit the step · Tab / shift+Tab: next / previous question · 1 … 9: pick an answer of the focused \
         question (then the next question) · ← / →: change it · shift+enter: new line in a text answer",
    ),
];

/// Every row of the sheet, as (keys, what they do): the commands in table order, then the notes.
pub fn rows() -> Vec<(String, &'static str)> {
    let commands = COMMANDS.iter().map(|e| (e.keys_text(), e.does));
    commands.chain(NOTES.iter().map(|(keys, what)| ((*keys).to_owned(), *what))).collect()
}

/// Draws the shortcut window while `open`.
pub fn shortcuts_window(ctx: &egui::Context, open: &mut bool) {
    studio_window("Keyboard shortcuts", open, Placement::Dialog).show(ctx, |ui| {
        egui::Grid::new("shortcuts").striped(true).show(ui, |ui| {
            for (keys, what) in rows() {
                ui.monospace(keys);
                ui.label(what);
                ui.end_row();
            }
        });
    });
}
