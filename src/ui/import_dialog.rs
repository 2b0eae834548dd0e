//! File ▸ Import: shows the chosen files with the format Argus recognised in each, asks for a column map, a label map,
//! what unmapped labels become and a delimiter when a file is generic (the same `--map` / `--labels` /
//! `--default-label` / `--delimiter` syntax as the CLI), and previews the first rows of a file exactly as the import
//! will read them before anything is written.

use std::io::Read as _;
use std::path::PathBuf;

use super::command::AppCommand;
use super::window::{Placement, studio_window};
use crate::domain::NewItem;
use crate::ingest::{FileFormat, ImportFlags, ImportOptions, PREVIEW_BYTES, Preview, preview_bytes};

/// Rows shown in the preview.
pub const PREVIEW_ROWS: usize = 5;

/// The open import dialog.
pub struct ImportDialog {
    files: Vec<(PathBuf, Result<FileFormat, String>)>,
    /// Each file's head, read once when the dialog opens: the format is recognised from it and the preview made
    /// from it as the options change, without touching the disk again.
    heads: Vec<Result<Vec<u8>, String>>,
    /// The options as typed.
    flags: ImportFlags,
    /// `--default-label unlabelled` when true; strict (an unmapped label fails the import) when false.
    keep_unmapped: bool,
    /// Which file the preview shows.
    previewed: usize,
    /// The preview and the file and options it was made with (remade when they change).
    preview: Option<(usize, ImportFlags, Result<Preview, String>)>,
}

impl ImportDialog {
    /// Reads each file's head (at most [`PREVIEW_BYTES`], not the import) and recognises its format from its name
    /// and first bytes.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        let heads: Vec<Result<Vec<u8>, String>> = paths
            .iter()
            .map(|path| {
                let mut head = Vec::new();
                std::fs::File::open(path)
                    .and_then(|f| f.take(PREVIEW_BYTES).read_to_end(&mut head))
                    .map(|_| head)
                    .map_err(|e| format!("{}: {e}", path.display()))
            })
            .collect();
        let files = paths
            .into_iter()
            .zip(&heads)
            .map(|(path, head)| {
                let format = head
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|h| FileFormat::detect(&path, h).map_err(|e| e.to_string()));
                (path, format)
            })
            .collect();
        Self { files, heads, flags: ImportFlags::default(), keep_unmapped: false, previewed: 0, preview: None }
    }

    /// The dialog with options filled in (the command line's `--import ... --map ...`).
    pub fn with_flags(mut self, flags: ImportFlags) -> Self {
        self.keep_unmapped = flags.default_label.as_deref().is_some_and(|d| d.trim() == crate::ingest::UNLABELLED);
        self.flags = ImportFlags { default_label: None, ..flags };
        self
    }

    /// True when some file can only be read with a column map.
    pub fn needs_map(&self) -> bool {
        self.files.iter().any(|(_, f)| f.as_ref().is_ok_and(|f| f.needs_column_map()))
    }

    /// The options as the dialog stands, in the CLI's words.
    pub fn flags(&self) -> ImportFlags {
        let mut flags = self.flags.clone();
        flags.default_label = self.keep_unmapped.then(|| crate::ingest::UNLABELLED.to_string());
        flags
    }

    /// The command that imports the files as the dialog stands.
    pub fn command(&self) -> AppCommand {
        AppCommand::ImportFiles { paths: self.files.iter().map(|(p, _)| p.clone()).collect(), flags: self.flags() }
    }

    /// The preview of the file shown, made again when the file or the options changed since the last one.
    pub fn refresh_preview(&mut self) -> Option<&Result<Preview, String>> {
        let flags = self.flags();
        let (path, _) = self.files.get(self.previewed)?;
        let stale = !matches!(&self.preview, Some((i, f, _)) if *i == self.previewed && *f == flags);
        if stale {
            let result = match &self.heads[self.previewed] {
                Ok(head) => ImportOptions::from_flags(&flags)
                    .map_err(|e| e.to_string())
                    .and_then(|opts| preview_bytes(path, head, &opts, PREVIEW_ROWS).map_err(|e| e.to_string())),
                Err(e) => Err(e.clone()),
            };
            self.preview = Some((self.previewed, flags, result));
        }
        self.preview.as_ref().map(|(_, _, r)| r)
    }
}

fn text_field(ui: &mut egui::Ui, label: &str, value: &mut Option<String>, hint: &str) {
    let mut text = value.clone().unwrap_or_default();
    let l = ui.label(label);
    if ui.add(egui::TextEdit::singleline(&mut text).hint_text(hint).desired_width(420.0)).labelled_by(l.id).changed() {
        *value = Some(text);
    }
    ui.end_row();
}

fn short(text: &str, chars: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > chars {
        format!("{}…", one_line.chars().take(chars).collect::<String>())
    } else {
        one_line
    }
}

fn preview_ui(ui: &mut egui::Ui, preview: &Preview) {
    let mut summary = format!("Read as {}", preview.format);
    if let Some(d) = preview.delimiter {
        summary.push_str(&format!(
            ", delimiter {}",
            if d == b'\t' { "tab".to_string() } else { format!("'{}'", d as char) }
        ));
    }
    ui.label(summary);
    if !preview.columns.is_empty() {
        ui.label(format!("Columns: {}", short(&preview.columns.join(", "), 300)));
    }
    if preview.items.is_empty() {
        ui.label("The file has no rows.");
        return;
    }
    egui::Grid::new("import_preview").num_columns(5).striped(true).show(ui, |ui| {
        for head in ["#", "content", "label", "split", "rationales"] {
            ui.strong(head);
        }
        ui.end_row();
        for (i, item) in preview.items.iter().enumerate() {
            preview_row(ui, i + 1, item);
        }
    });
}

fn preview_row(ui: &mut egui::Ui, n: usize, item: &NewItem) {
    ui.label(n.to_string());
    ui.label(short(&item.text, 60)).on_hover_text(&item.text);
    let label = match (&item.original_label, item.gold_label) {
        (Some(o), Some(g)) => format!("{o} → {g}"),
        (Some(o), None) => format!("{o} → unlabelled"),
        (None, _) => "—".to_string(),
    };
    ui.label(label);
    ui.label(item.split.as_deref().unwrap_or("—"));
    let rationales: Vec<String> = item
        .rationales
        .iter()
        .map(|r| {
            let verdict = r.verdict.map(|v| format!(" [{v}]")).unwrap_or_default();
            format!("{}{verdict}: {}", r.perspective, short(&r.text, 40))
        })
        .collect();
    ui.label(if rationales.is_empty() { "—".to_string() } else { rationales.join("\n") });
    ui.end_row();
}

/// Draws the dialog; `Some(Some(cmd))`: import, `Some(None)`: cancelled, `None`: still open.
pub fn import_dialog_ui(ctx: &egui::Context, dialog: &mut ImportDialog) -> Option<Option<AppCommand>> {
    let mut result = None;
    let mut open = true;
    studio_window("Import", &mut open, Placement::Dialog).show(ctx, |ui| {
        ui.set_width(720.0);
        egui::Grid::new("import_files").num_columns(3).striped(true).show(ui, |ui| {
            for (i, (path, format)) in dialog.files.iter().enumerate() {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                ui.radio_value(&mut dialog.previewed, i, name).on_hover_text(path.display().to_string());
                match format {
                    Ok(f) if f.needs_column_map() => ui.label(format!("{f} (needs a column map)")),
                    Ok(f) => ui.label(f.as_str()),
                    Err(e) => ui.colored_label(ui.visuals().error_fg_color, e),
                };
                ui.end_row();
            }
        });
        ui.separator();
        egui::Grid::new("import_options").num_columns(2).show(ui, |ui| {
            text_field(
                ui,
                "Column map:",
                &mut dialog.flags.map,
                "content=statement,label=label,rationale:human=justification (JSON: claim.text, verdict.rating)",
            );
            text_field(ui, "Label map:", &mut dialog.flags.labels, "default: PolitiFact scale, real/fake, 0/1");
            ui.label("Other labels:");
            ui.checkbox(&mut dialog.keep_unmapped, "import unlabelled (else a label outside the map stops the import)");
            ui.end_row();
            text_field(ui, "Delimiter:", &mut dialog.flags.delimiter, "guessed: tab for .tsv, else from the header");
            text_field(ui, "Dataset name:", &mut dialog.flags.name, "default: the file name");
        });
        let unrecognised = dialog.files.iter().any(|(_, f)| f.is_err());
        let missing_map = dialog.needs_map() && dialog.flags.map.as_deref().unwrap_or("").trim().is_empty();
        let options_error = ImportOptions::from_flags(&dialog.flags()).err().map(|e| e.to_string());
        if let Some(error) = &options_error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        if missing_map {
            ui.label("A generic CSV/TSV/JSON file needs a column map: at least content=<column>.");
        }
        ui.separator();
        ui.strong("Preview");
        let mut preview_ok = false;
        if !missing_map {
            match dialog.refresh_preview() {
                Some(Ok(preview)) => {
                    preview_ok = true;
                    preview_ui(ui, preview);
                }
                Some(Err(e)) => {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
                None => {}
            }
        } else {
            ui.label("Write a column map to see the first rows as they will be read.");
        }
        ui.separator();
        ui.label("All files are imported in one transaction: if one row is bad, nothing is imported.");
        ui.horizontal(|ui| {
            let ok = !unrecognised && !missing_map && options_error.is_none() && preview_ok;
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
