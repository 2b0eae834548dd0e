//! The status bar: labelling progress, database and annotator, running jobs with cancel, the last message.

use std::sync::Arc;

use super::command::{AppCommand, Notice};
use crate::jobs::JobState;
use crate::studio::Workspace;

/// Draws the status bar; returns the commands it emits.
pub fn status_bar_ui(
    ui: &mut egui::Ui,
    ws: Option<&Workspace>,
    jobs: &[Arc<JobState>],
    notice: Option<&Notice>,
    writer: &str,
) -> Vec<AppCommand> {
    let mut out = Vec::new();
    ui.horizontal(|ui| {
        ui.label(egui::RichText::new(writer).small()).on_hover_text("the rationale writer: model and device");
        ui.separator();
        if let Some(ws) = ws {
            let (judged, total) = ws.progress();
            let fraction = if total == 0 { 0.0 } else { judged as f32 / total as f32 };
            ui.add(egui::ProgressBar::new(fraction).desired_width(160.0).text(format!("judged {judged} / {total}")));
            ui.label(format!("{} · {}", ws.annotator(), ws.db_path().display()));
        }
        for job in jobs {
            ui.separator();
            ui.spinner();
            let (done, total) = job.progress();
            let text = if total > 0 {
                format!("{}: {} ({done}/{total})", job.name(), job.message())
            } else {
                format!("{}: {}", job.name(), job.message())
            };
            match job.fraction() {
                Some(f) => ui.add(egui::ProgressBar::new(f).desired_width(300.0).text(text)),
                None => ui.label(text),
            };
            if ui.small_button("Cancel").clicked() {
                out.push(AppCommand::CancelJob(job.name().to_owned()));
            }
        }
        if let Some(notice) = notice {
            ui.separator();
            let color = if notice.is_error { ui.visuals().error_fg_color } else { ui.visuals().text_color() };
            ui.colored_label(color, &notice.text);
            if ui.small_button("Dismiss").clicked() {
                out.push(AppCommand::DismissMessage);
            }
        }
    });
    out
}
