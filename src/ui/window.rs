//! The one window convention of the studio: every panel (Train, Analysis, Agreement, Study designer, Writer
//! settings, Perspectives) and every dialog (Import, Run a participant, the `?` sheet) is an [`egui::Window`] built
//! here, with a title, a close button bound to its open flag, and one of two placements.
//!
//! Draws nothing itself; knows nothing of the app.

/// Where a window opens and whether it can be resized.
#[derive(Clone, Copy, Debug)]
pub enum Placement {
    /// A panel beside the studio: movable, resizable, scrolling, opened at `pos` with `size`.
    Panel { pos: [f32; 2], size: [f32; 2] },
    /// A panel that opens where egui puts it, `width` wide and as tall as its content: movable, resizable, scrolling.
    Floating { width: f32 },
    /// A dialog: centred, fixed, its size set by its content.
    Dialog,
}

/// The window titled `title`, open while `open`, placed as `placement` says; its close button clears `open`.
pub fn studio_window<'open>(title: &'static str, open: &'open mut bool, placement: Placement) -> egui::Window<'open> {
    let window = egui::Window::new(title).open(open);
    match placement {
        Placement::Panel { pos, size } => window.default_pos(pos).default_size(size).resizable(true).vscroll(true),
        Placement::Floating { width } => window.default_width(width).resizable(true).vscroll(true),
        Placement::Dialog => {
            window.collapsible(false).resizable(false).anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
        }
    }
}
