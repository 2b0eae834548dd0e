//! The keyboard shortcut sheet (`?`).

/// Every shortcut of the studio, as (keys, what it does).
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("f", "judge the item fake, go to the next"),
    ("r", "judge the item real, go to the next"),
    ("u", "unsure, go to the next"),
    ("f / r / u", "in Studies ▸ Agreement ▸ Adjudication: record the final verdict of the item shown there"),
    ("space", "skip: next item without a verdict"),
    ("j / ↓", "next item"),
    ("k / ↑", "previous item"),
    ("ctrl+z", "undo the last judgement (kept in the database as retracted)"),
    ("/", "search the item list"),
    ("t", "show or hide the Train panel (retrain the guidance model, compare versions)"),
    (
        "1 … 8",
        "explanation format: free text, annotated report, markup and mask, procedural, subquestions, decision tree, claim card, side by side",
    ),
    ("Tab / shift+Tab", "move between the fields of a feedback form (or any control)"),
    (
        "space / enter",
        "press the focused button, option or section header (space skips the item when nothing is focused)",
    ),
    ("enter", "in a feedback text field: save it (shift+enter: new line)"),
    ("Esc", "leave a text field or focused control / close this sheet"),
    ("?", "show or hide this sheet"),
    (
        "participant mode",
        "Enter: submit the step · Tab / shift+Tab: next / previous question · 1 … 9: pick an answer of the focused \
         question (then the next question) · ← / →: change it · shift+enter: new line in a text answer",
    ),
];

/// Draws the shortcut window while `open`.
pub fn shortcuts_window(ctx: &egui::Context, open: &mut bool) {
    egui::Window::new("Keyboard shortcuts")
        .open(open)
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
        .show(ctx, |ui| {
            egui::Grid::new("shortcuts").striped(true).show(ui, |ui| {
                for (keys, what) in SHORTCUTS {
                    ui.monospace(*keys);
                    ui.label(*what);
                    ui.end_row();
                }
            });
        });
}
