//! Studies ▸ Agreement: inter-annotator agreement on the standing judgements ([`crate::studies::metrics`]): Fleiss'
//! kappa, Krippendorff's alpha and percent agreement overall and per label, the diagnostics that say when those
//! mislead, Cohen's kappa for every pair of annotators as a coloured matrix, and each annotator's figures (items per
//! active hour, agreement with the others' majority and with gold labels, median time per item).
//!
//! Its Adjudication tab lists the items people disagree on that nobody has adjudicated, shows their verdicts side
//! by side with the annotators' names and notes, and records the final verdict (`Command::Adjudicate`; keys f / r
//! / u while the tab is shown). Everything is read by the app when the panel opens and after each adjudication.

use egui::{Color32, RichText, Sense, Stroke};

use super::command::AppCommand;
use super::item_list::verdict_color;
use super::window::{Placement, studio_window};
use crate::domain::Verdict;
use crate::studies::agreement::PairwiseCohen;
use crate::studies::metrics::AgreementSummary;
use crate::studio::{Command, DisagreementDetail};

/// The panel's data (as the app last read it) and choices.
#[derive(Default)]
pub struct AgreementPanelState {
    pub open: bool,
    pub summary: Option<Result<AgreementSummary, String>>,
    pub disagreements: Vec<DisagreementDetail>,
    /// The Adjudication tab is shown.
    pub adjudicating: bool,
    /// The disagreement shown (index into `disagreements`).
    pub selected: usize,
    /// The adjudicator's note for the next verdict.
    pub note: String,
}

impl AgreementPanelState {
    /// The disagreement shown in the Adjudication tab.
    pub fn current(&self) -> Option<&DisagreementDetail> {
        self.disagreements.get(self.selected)
    }

    /// True while f / r / u record the final verdict of the shown disagreement.
    pub fn takes_verdict_keys(&self) -> bool {
        self.open && self.adjudicating && self.current().is_some()
    }

    /// The command that records `verdict` as the final verdict of the shown disagreement.
    pub fn adjudicate(&self, verdict: Verdict) -> Option<AppCommand> {
        let d = self.current()?;
        let note = Some(self.note.trim().to_owned()).filter(|n| !n.is_empty());
        Some(AppCommand::Studio(Command::Adjudicate { item: d.item, verdict, note }))
    }

    /// After a reload: keep the position in the list within bounds.
    pub fn clamp_selection(&mut self) {
        self.selected = self.selected.min(self.disagreements.len().saturating_sub(1));
    }
}

/// Draws the Agreement window while `state.open`; returns the commands it emits.
pub fn agreement_window(ctx: &egui::Context, state: &mut AgreementPanelState) -> Vec<AppCommand> {
    let mut out = Vec::new();
    let mut open = state.open;
    studio_window("Agreement", &mut open, Placement::Panel { pos: [40.0, 40.0], size: [900.0, 680.0] }).show(
        ctx,
        |ui| {
            ui.horizontal(|ui| {
                if ui.add(egui::Button::selectable(!state.adjudicating, "Agreement")).clicked() {
                    state.adjudicating = false;
                }
                let open_items = state.disagreements.len();
                let tab = egui::Button::selectable(state.adjudicating, format!("Adjudication ({open_items} open)"));
                if ui
                    .add(tab)
                    .on_hover_text("record final verdicts where annotators disagree (keys f / r / u)")
                    .clicked()
                {
                    state.adjudicating = true;
                }
                if ui.button("Refresh").clicked() {
                    out.push(AppCommand::ReloadAgreement);
                }
            });
            ui.separator();
            if state.adjudicating {
                adjudication_ui(ui, state, &mut out);
            } else {
                match &state.summary {
                    None => {
                        ui.label(RichText::new("Not read yet.").weak());
                    }
                    Some(Err(err)) => {
                        ui.colored_label(ui.visuals().error_fg_color, err);
                    }
                    Some(Ok(summary)) => summary_ui(ui, summary),
                }
            }
        },
    );
    if !open {
        out.push(AppCommand::ToggleAgreementPanel);
    }
    out
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{:.0}%", v * 100.0))
}

fn summary_ui(ui: &mut egui::Ui, s: &AgreementSummary) {
    let r = &s.agreement;
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(format!("Fleiss' kappa {}", fmt(r.fleiss.kappa))).strong().size(17.0)).on_hover_text(
            format!(
                "over the {} items rated by {} annotators each ({} left out)",
                r.fleiss.units_used, r.fleiss.raters_per_unit, r.fleiss.units_left_out
            ),
        );
        ui.separator();
        ui.label(RichText::new(format!("Krippendorff's alpha {}", fmt(r.alpha.alpha))).strong().size(17.0))
            .on_hover_text(format!("nominal; {} pairable items", r.alpha.pairable_units));
        ui.separator();
        ui.label(RichText::new(format!("percent agreement {}", pct(r.percent_agreement))).strong().size(17.0));
    });
    ui.label(format!(
        "{} items · {} annotators · {} ratings · adjudicated items: {} · open disagreements: {}",
        r.n_items, r.n_annotators, r.n_ratings, s.adjudicated_items, s.open_disagreements
    ));
    for message in &r.diagnostics.messages {
        ui.colored_label(ui.visuals().warn_fg_color, format!("Note: {message}"));
    }
    ui.add_space(6.0);
    ui.horizontal_top(|ui| {
        ui.vertical(|ui| {
            ui.strong("Per label");
            egui::Grid::new("agreement_labels").striped(true).show(ui, |ui| {
                for h in ["label", "share", "Fleiss' kappa", "alpha"] {
                    ui.label(RichText::new(h).small().strong());
                }
                ui.end_row();
                for label in &r.labels {
                    let cat = r.fleiss.categories.iter().find(|c| c.label == *label);
                    let alpha = r.alpha.labels.iter().find(|l| l.label == *label);
                    ui.label(label);
                    ui.label(pct(cat.map(|c| c.proportion)));
                    ui.label(fmt(cat.and_then(|c| c.kappa)));
                    ui.label(fmt(alpha.and_then(|a| a.alpha)));
                    ui.end_row();
                }
            });
        });
        ui.add_space(24.0);
        ui.vertical(|ui| {
            ui.strong("Cohen's kappa per pair of annotators");
            kappa_matrix_ui(ui, &r.pairwise);
        });
    });
    ui.add_space(6.0);
    ui.strong("Per annotator");
    egui::Grid::new("agreement_annotators").striped(true).show(ui, |ui| {
        for h in [
            "annotator",
            "items",
            "items / hour",
            "median time per item",
            "agrees with majority",
            "agrees with gold",
            "mean kappa",
            "",
        ] {
            ui.label(RichText::new(h).small().strong());
        }
        ui.end_row();
        for m in &s.annotators {
            let a = r.annotators.iter().find(|a| a.annotator == m.annotator);
            ui.label(&m.annotator);
            ui.label(m.items_judged.to_string());
            ui.label(m.items_per_hour.map_or_else(|| "—".to_owned(), |v| format!("{v:.1}")));
            ui.label(m.median_time_ms.map_or_else(|| "—".to_owned(), |v| format!("{:.1} s", v / 1000.0)));
            ui.label(pct(m.majority_agreement));
            ui.label(match m.gold_agreement {
                Some(g) => format!("{} of {} items", pct(Some(g)), m.gold_items),
                None => "—".to_owned(),
            });
            ui.label(fmt(a.and_then(|a| a.mean_kappa)));
            if a.is_some_and(|a| a.diverging) {
                ui.colored_label(ui.visuals().warn_fg_color, "diverging");
            } else {
                ui.label("");
            }
            ui.end_row();
        }
    });
}

/// A kappa's cell colour: red below 0, through grey at 0, to green at 1.
fn kappa_color(k: f64) -> Color32 {
    let (low, mid, high) =
        (Color32::from_rgb(200, 70, 70), Color32::from_rgb(120, 120, 120), Color32::from_rgb(60, 170, 90));
    if k < 0.0 { mid.lerp_to_gamma(low, (-k).min(1.0) as f32) } else { mid.lerp_to_gamma(high, k.min(1.0) as f32) }
}

/// The pairwise Cohen's kappa matrix: coloured cells with their values, annotator names on both axes.
fn kappa_matrix_ui(ui: &mut egui::Ui, p: &PairwiseCohen) {
    let k = p.annotators.len();
    if k < 2 {
        ui.label(RichText::new("Needs two or more annotators.").weak());
        return;
    }
    let font = egui::FontId::proportional(12.0);
    let name_width = p
        .annotators
        .iter()
        .map(|a| ui.fonts_mut(|f| f.layout_no_wrap(a.clone(), font.clone(), Color32::WHITE).size().x))
        .fold(0.0f32, f32::max)
        .min(160.0)
        + 8.0;
    let cell = 58.0;
    let header = 20.0;
    let size = egui::vec2(name_width + cell * k as f32, header + cell * k as f32);
    let (rect, _) = ui.allocate_exact_size(size, Sense::hover());
    let painter = ui.painter_at(rect.expand(2.0));
    let text_color = ui.visuals().text_color();
    let short = |name: &str| {
        if name.chars().count() > 8 {
            format!("{}…", name.chars().take(7).collect::<String>())
        } else {
            name.to_owned()
        }
    };
    for (j, name) in p.annotators.iter().enumerate() {
        let x = rect.left() + name_width + cell * (j as f32 + 0.5);
        painter.text(
            egui::pos2(x, rect.top() + header / 2.0),
            egui::Align2::CENTER_CENTER,
            short(name),
            font.clone(),
            text_color,
        );
    }
    for (i, row) in p.annotators.iter().enumerate() {
        let y = rect.top() + header + cell * i as f32;
        painter.text(
            egui::pos2(rect.left() + name_width - 6.0, y + cell / 2.0),
            egui::Align2::RIGHT_CENTER,
            row,
            font.clone(),
            text_color,
        );
        for j in 0..k {
            let cell_rect = egui::Rect::from_min_size(
                egui::pos2(rect.left() + name_width + cell * j as f32, y),
                egui::vec2(cell, cell),
            )
            .shrink(1.5);
            let value = p.kappa[i][j];
            let (fill, text) = match (i == j, value) {
                (true, _) => (ui.visuals().faint_bg_color, format!("n {}", p.n[i][i])),
                (false, Some(v)) => (kappa_color(v), format!("{v:.2}")),
                (false, None) => (ui.visuals().extreme_bg_color, "n/a".to_owned()),
            };
            painter.rect_filled(cell_rect, 3.0, fill);
            painter.rect_stroke(
                cell_rect,
                3.0,
                Stroke::new(0.5, ui.visuals().weak_text_color()),
                egui::StrokeKind::Inside,
            );
            let color = if i == j { ui.visuals().weak_text_color() } else { Color32::WHITE };
            painter.text(
                cell_rect.center(),
                egui::Align2::CENTER_CENTER,
                text,
                egui::FontId::proportional(14.0),
                color,
            );
            let hover = ui.interact(cell_rect, egui::Id::unique(("kappa_cell", i, j)), Sense::hover());
            if i != j {
                hover.on_hover_text(format!(
                    "{} × {}: Cohen's kappa {} on the {} items both judged",
                    row,
                    p.annotators[j],
                    fmt(value),
                    p.n[i][j]
                ));
            }
        }
    }
}

fn adjudication_ui(ui: &mut egui::Ui, state: &mut AgreementPanelState, out: &mut Vec<AppCommand>) {
    if state.disagreements.is_empty() {
        ui.label(RichText::new("No open disagreements: every item people disagree on has a final verdict.").weak());
        return;
    }
    state.clamp_selection();
    ui.horizontal_top(|ui| {
        ui.vertical(|ui| {
            ui.set_width(230.0);
            ui.strong(format!("{} items to adjudicate", state.disagreements.len()));
            egui::ScrollArea::vertical().id_salt("adjudication_list").max_height(420.0).show(ui, |ui| {
                for (i, d) in state.disagreements.iter().enumerate() {
                    let verdicts: Vec<&str> = d.judgements.iter().map(|j| j.verdict.as_str()).collect();
                    let text = format!("item {} · {}", d.item, verdicts.join(" / "));
                    if ui.add(egui::Button::selectable(state.selected == i, text)).clicked() {
                        state.selected = i;
                    }
                }
            });
        });
        ui.separator();
        ui.vertical(|ui| {
            let Some(d) = state.current().cloned() else { return };
            ui.heading(format!("Item {}", d.item));
            if let Some(title) = d.title.as_deref().filter(|t| !t.trim().is_empty()) {
                ui.label(RichText::new(title).strong());
            }
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(RichText::new(&d.text).size(15.0));
            });
            ui.add_space(4.0);
            ui.strong("Verdicts");
            ui.columns(d.judgements.len().max(1), |columns| {
                for (ui, j) in columns.iter_mut().zip(&d.judgements) {
                    egui::Frame::group(ui.style()).show(ui, |ui| {
                        ui.set_width(ui.available_width());
                        ui.label(RichText::new(&j.annotator).strong());
                        ui.label(RichText::new(j.verdict.human_name()).size(16.0).color(verdict_color(j.verdict)));
                        if let Some(c) = j.confidence {
                            ui.label(RichText::new(format!("confidence {c:.2}")).small());
                        }
                        match j.note.as_deref().filter(|n| !n.trim().is_empty()) {
                            Some(note) => ui.label(format!("“{note}”")),
                            None => ui.label(RichText::new("no note").small().weak()),
                        };
                    });
                }
            });
            ui.add_space(6.0);
            ui.horizontal(|ui| {
                let label = ui.label("Adjudicator's note:");
                ui.add(egui::TextEdit::singleline(&mut state.note).hint_text("why (optional)").desired_width(360.0))
                    .labelled_by(label.id);
            });
            ui.horizontal(|ui| {
                ui.label("Final verdict:");
                for (verdict, label) in
                    [(Verdict::Fake, "Fake (f)"), (Verdict::Real, "Real (r)"), (Verdict::Other, "Unsure (u)")]
                {
                    let button = egui::Button::new(RichText::new(label).color(verdict_color(verdict)));
                    if ui.add(button).clicked()
                        && let Some(cmd) = state.adjudicate(verdict)
                    {
                        out.push(cmd);
                    }
                }
            });
        });
    });
}
