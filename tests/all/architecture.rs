//! The UI crates (egui, eframe, egui_plot, rfd) may only be used under `src/ui/` and in `src/main.rs`.

use std::path::{Path, PathBuf};

const UI_CRATES: &[&str] = &["egui", "eframe", "egui_plot", "egui_kittest", "rfd"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Lines of `source` (outside comments) that name a UI crate as a path or in a `use`.
fn ui_uses(source: &str) -> Vec<(usize, String)> {
    let mut hits = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for krate in UI_CRATES {
            let as_path = format!("{krate}::");
            let found = code.match_indices(&as_path).any(|(i, _)| {
                // `egui::` must not be the tail of another identifier such as `my_egui::`.
                !code[..i].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            let as_use = code.trim_start().starts_with(&format!("use {krate}"))
                || code.contains(&format!("extern crate {krate}"));
            if found || as_use {
                hits.push((n + 1, line.trim().to_owned()));
            }
        }
    }
    hits
}

#[test]
fn ui_crates_are_only_used_in_src_ui_and_main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 5, "found too few source files: {files:?}");
    let mut offenders = Vec::new();
    for file in files {
        let rel = file.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        if rel.starts_with("src/ui/") || rel == "src/main.rs" {
            continue;
        }
        for (line, text) in ui_uses(&std::fs::read_to_string(&file).unwrap()) {
            offenders.push(format!("{rel}:{line}: {text}"));
        }
    }
    assert!(offenders.is_empty(), "UI crates used outside src/ui and src/main.rs:\n{}", offenders.join("\n"));
}

#[test]
fn the_checker_catches_what_it_should() {
    assert_eq!(ui_uses("use egui::Ui;").len(), 1);
    assert_eq!(ui_uses("fn f(ctx: &eframe::Frame) {}").len(), 1);
    assert_eq!(ui_uses("let p = rfd::FileDialog::new();").len(), 1);
    assert_eq!(ui_uses("// egui::Ui in a comment").len(), 0);
    assert_eq!(ui_uses("let my_egui::x = 1;").len(), 0);
    assert_eq!(ui_uses("//! knows nothing of egui").len(), 0);
}
