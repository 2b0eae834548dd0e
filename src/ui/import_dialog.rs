//! File ▸ Import: shows the chosen files with the format Argus recognised in each, and asks for a column map and a
//! label map when a file is a generic CSV/JSONL (the same `--map` / `--labels` syntax as the CLI).

use std::io::Read as _;
use std::path::PathBuf;

use super::command::AppCommand;
use super::window::{Placement, studio_window};
use crate::ingest::{ColumnMap, FileFormat, LabelMap};

/// How much of each file is read to recognise its format.
const SNIFF_BYTES: u64 = 64 * 1024;

/// The open import dialog.
pub struct ImportDialog {
    files: Vec<(PathBuf, Result<FileFormat, String>)>,
    map: String,
    labels: String,
    name: String,
}

impl ImportDialog {
    /// Recognises the format of each file from its name and first bytes (a small read, not the import).
    pub fn new(paths: Vec<PathBuf>) -> Self {
        let files = paths
            .into_iter()
            .map(|path| {
                let mut head = Vec::new();
                let format = std::fs::File::open(&path)
                    .and_then(|f| f.take(SNIFF_BYTES).read_to_end(&mut head))
                    .map_err(|e| format!("{}: {e}", path.display()))
                    .and_then(|_| FileFormat::detect(&path, &head).map_err(|e| e.to_string()));
                (path, format)
            })
            .collect();
        Self { files, map: String::new(), labels: String::new(), name: String::new() }
    }

    /// True when some file can only be read with a column map.
    pub fn needs_map(&self) -> bool {
        self.files.iter().any(|(_, f)| f.as_ref().is_ok_and(|f| f.needs_column_map()))
    }

    /// True when every file was recognised and none needs a map: the import can start without asking.
    pub fn is_ready_as_is(&self) -> bool {
        !self.needs_map() && self.files.iter().all(|(_, f)| f.is_ok())
    }

    /// The command that imports the files as the dialog stands.
    pub fn command(&self) -> AppCommand {
        let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        AppCommand::ImportFiles {
            paths: self.files.iter().map(|(p, _)| p.clone()).collect(),
            map: some(&self.map),
            labels: some(&self.labels),
            name: some(&self.name),
        }
    }
}

/// Draws the dialog; `Some(Some(cmd))`: import, `Some(None)`: cancelled, `None`: still open.
pub fn import_dialog_ui(ctx: &egui::Context, dialog: &mut ImportDialog) -> Option<Option<AppCommand>> {
    let mut result = None;
    let mut open = true;
    studio_window("Import", &mut open, Placement::Dialog).show(ctx, |ui| {
        ui.set_width(560.0);
        egui::Grid::new("import_files").num_columns(2).striped(true).show(ui, |ui| {
            for (path, format) in &dialog.files {
                ui.label(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
                    .on_hover_text(path.display().to_string());
                match format {
                    Ok(f) if f.needs_column_map() => ui.label(format!("{f} (needs a column map)")),
                    Ok(f) => ui.label(f.as_str()),
                    Err(e) => ui.colored_label(ui.visuals().error_fg_color, e),
                };
                ui.end_row();
            }
        });
        ui.separator();
        let map_error = (!dialog.map.trim().is_empty())
            .then(|| ColumnMap::parse(dialog.map.trim()).err())
            .flatten()
            .map(|e| e.to_string());
        let labels_error = (!dialog.labels.trim().is_empty())
            .then(|| LabelMap::parse(dialog.labels.trim()).err())
            .flatten()
            .map(|e| e.to_string());
        egui::Grid::new("import_options").num_columns(2).show(ui, |ui| {
            let label = ui.label("Column map:");
            ui.add(
                egui::TextEdit::singleline(&mut dialog.map)
                    .hint_text("content=statement,label=label,rationale:human=justification")
                    .desired_width(380.0),
            )
            .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Label map:");
            ui.add(
                egui::TextEdit::singleline(&mut dialog.labels)
                    .hint_text("default: PolitiFact scale, real/fake, 0/1")
                    .desired_width(380.0),
            )
            .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Dataset name:");
            ui.add(
                egui::TextEdit::singleline(&mut dialog.name).hint_text("default: the file name").desired_width(380.0),
            )
            .labelled_by(label.id);
            ui.end_row();
        });
        for error in [&map_error, &labels_error].into_iter().flatten() {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        let unrecognised = dialog.files.iter().any(|(_, f)| f.is_err());
        let missing_map = dialog.needs_map() && dialog.map.trim().is_empty();
        if missing_map {
            ui.label("A generic CSV/JSONL file needs a column map: at least content=<column>.");
        }
        ui.label("All files are imported in one transaction: if one row is bad, nothing is imported.");
        ui.horizontal(|ui| {
            let ok = !unrecognised && !missing_map && map_error.is_none() && labels_error.is_none();
            if ui.add_enabled(ok, egui::Button::new("Start import")).clicked() {
                result = Some(Some(dialog.command()));
            }
            if ui.button("Cancel").clicked() {
                result = Some(None);
            }
        });
    });
    if !open {
        result = Some(None);
    }
    result
}
