//! The studio window: everything that draws with egui lives here (and only here).
//!
//! Panels read the [`crate::studio::Workspace`] and return [`AppCommand`]s, declared in `command` (panels import
//! it, never the app); [`ArgusApp`] handles them in one place, once per frame. Opening a database, loading the item
//! list, importing and exporting run as named background jobs ([`crate::jobs`]), so the window never waits on them.
//! The UI never writes to the store itself: a user action becomes a [`crate::studio::Command`] that the workspace
//! commits. The keys are written once, in [`keys`]; the windows share one convention (`window`).

mod agreement_panel;
mod analysis_panel;
mod app;
pub mod bench;
mod command;
mod explain;
mod help;
mod import_dialog;
mod item_list;
mod item_view;
mod judgement_bar;
pub mod keys;
mod participant;
mod perspectives;
mod route_dialog;
mod status_bar;
mod study_designer;
pub mod testing;
mod train_panel;
mod window;
mod writer_settings;
mod writer_view;

use std::path::PathBuf;

pub use app::{ArgusApp, StudioOptions};
pub use command::{AppCommand, Notice};

/// Opens the studio window and runs it until it is closed.
pub fn run_native(options: StudioOptions) -> anyhow::Result<()> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Argus")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([720.0, 480.0]),
        renderer: eframe::Renderer::Glow,
        ..Default::default()
    };
    eframe::run_native("Argus", native, Box::new(move |cc| Ok(Box::new(ArgusApp::new(cc.egui_ctx.clone(), options)))))
        .map_err(|e| anyhow::anyhow!("cannot open the studio window: {e}"))
}

/// Where the studio looks for its settings, unless told otherwise.
pub fn default_settings_path() -> PathBuf {
    crate::paths::settings_path()
}
