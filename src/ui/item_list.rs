//! The item list: a filter bar, the order (as imported, or by what the guidance models predict; the fact-checker's
//! queue), and a virtualised list (only visible rows are laid out, so 100,000 items scroll and filter smoothly) with
//! each item's P(fake) once a model version has predictions.

use egui::{Color32, RichText};

use super::command::AppCommand;
use super::keys::{self, KeyCommand};
use crate::domain::{ItemSummary, Verdict};
use crate::guidance::triage::Order;
use crate::studio::{Command, LabelFilter, StatusFilter, Workspace};

/// Id of the search field, so `/` can focus it.
pub const SEARCH_ID: &str = "item_search";

/// UI state of the list that is not part of the workspace.
#[derive(Default)]
pub struct ListState {
    /// Set by the `/` shortcut.
    pub focus_search: bool,
    /// The cursor drawn last frame, to scroll a keyboard move into view.
    last_cursor: Option<usize>,
}

/// Height of one list row, in points.
pub fn row_height(ui: &egui::Ui) -> f32 {
    ui.text_style_height(&egui::TextStyle::Body).max(ui.spacing().interact_size.y) + 4.0
}

/// Draws the list; returns the commands it emits.
pub fn item_list_ui(ui: &mut egui::Ui, ws: &Workspace, state: &mut ListState) -> Vec<AppCommand> {
    let mut out = Vec::new();
    let mut filter = ws.filter().clone();

    ui.add_space(4.0);
    let search = ui
        .horizontal(|ui| {
            let label = ui.label("Search:");
            ui.add(
                egui::TextEdit::singleline(&mut filter.text)
                    .id(egui::Id::unique(SEARCH_ID))
                    .hint_text("words in title, text or source  (/)")
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(label.id)
        })
        .inner;
    if state.focus_search {
        search.request_focus();
        state.focus_search = false;
    }
    ui.horizontal_wrapped(|ui| {
        // Each combo is labelled (screen readers, kittest's accessibility check).
        let gold = ui.label("Gold:");
        egui::ComboBox::from_id_salt("label_filter")
            .selected_text(match filter.label {
                LabelFilter::Any => "Any label",
                LabelFilter::Real => "Gold: real",
                LabelFilter::Fake => "Gold: fake",
                LabelFilter::Unlabelled => "Unlabelled",
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut filter.label, LabelFilter::Any, "Any label");
                ui.selectable_value(&mut filter.label, LabelFilter::Real, "Gold: real");
                ui.selectable_value(&mut filter.label, LabelFilter::Fake, "Gold: fake");
                ui.selectable_value(&mut filter.label, LabelFilter::Unlabelled, "Unlabelled");
            })
            .response
            .labelled_by(gold.id);
        let show = ui.label("Show:");
        egui::ComboBox::from_id_salt("status_filter")
            .selected_text(match filter.status {
                StatusFilter::All => "All items",
                StatusFilter::Unjudged => "Unjudged by me",
                StatusFilter::JudgedByMe => "Judged by me",
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut filter.status, StatusFilter::All, "All items");
                ui.selectable_value(&mut filter.status, StatusFilter::Unjudged, "Unjudged by me");
                ui.selectable_value(&mut filter.status, StatusFilter::JudgedByMe, "Judged by me");
            })
            .response
            .labelled_by(show.id);
        ui.checkbox(&mut filter.disagreement_only, "Disagreement");
    });
    if filter != *ws.filter() {
        out.push(AppCommand::Studio(Command::SetFilter(filter.clone())));
    }
    order_ui(ui, ws, &mut out);
    let (reviewed, to_review) = ws.review_counts();
    let counts = if ws.is_fact_check_queue() {
        format!("{} to review in the queue · {reviewed} reviewed · {to_review} not yet", ws.filtered_len())
    } else {
        format!("{} of {} items · {reviewed} reviewed", ws.filtered_len(), ws.progress().1)
    };
    ui.label(RichText::new(counts).small().weak());
    ui.separator();

    let row_h = row_height(ui);
    let spacing = ui.spacing().item_spacing.y;
    let n = ws.filtered_len();
    let cursor = ws.cursor();
    let mut area = egui::ScrollArea::vertical().id_salt("item_rows").auto_shrink([false, false]);
    if cursor != state.last_cursor
        && let Some(c) = cursor
    {
        // Keep the selected row in view after a keyboard move: scroll only when it left the viewport.
        let id = ui.make_persistent_id("item_rows_view");
        let (offset, height) = ui.data(|d| d.get_temp::<(f32, f32)>(id)).unwrap_or((0.0, 0.0));
        let top = c as f32 * (row_h + spacing);
        if top < offset {
            area = area.vertical_scroll_offset(top);
        } else if height > 0.0 && top + row_h > offset + height {
            area = area.vertical_scroll_offset(top + row_h - height);
        }
    }
    state.last_cursor = cursor;
    let output = area.show_rows(ui, row_h, n, |ui, rows| {
        for row in rows {
            let Some(summary) = ws.row(row) else { continue };
            let selected = cursor == Some(row);
            let p_fake = if ws.has_predictions() { Some(ws.p_fake(summary.id)) } else { None };
            if row_ui(ui, summary, selected, p_fake, ws.is_reviewed(summary.id)).clicked() {
                out.push(AppCommand::Studio(Command::SelectRow(row)));
            }
        }
    });
    let id = ui.make_persistent_id("item_rows_view");
    ui.data_mut(|d| d.insert_temp(id, (output.state.clamped_offset().y, output.inner_rect.height())));
    out
}

/// The order combo and the fact-checker's queue toggle.
fn order_ui(ui: &mut egui::Ui, ws: &Workspace, out: &mut Vec<AppCommand>) {
    ui.horizontal_wrapped(|ui| {
        let queue = ws.is_fact_check_queue();
        let mut order = ws.order();
        ui.add_enabled_ui(!queue, |ui| {
            let label = ui.label("Order:");
            egui::ComboBox::from_id_salt("list_order")
                .selected_text(order.label())
                .show_ui(ui, |ui| {
                    for o in Order::ALL {
                        ui.selectable_value(&mut order, o, o.label());
                    }
                })
                .response
                .on_hover_text(
                    "risk: highest P(fake) first · uncertainty: P(fake) nearest 0.5 first · disagreement: where the \
                     models, the rationales' verdicts and people disagree most · random: a shuffle for a cold start",
                )
                .labelled_by(label.id);
        });
        if order != ws.order() {
            out.push(AppCommand::Studio(Command::SetOrder(order)));
        }
        let mut on = queue;
        if ui
            .toggle_value(&mut on, "Fact-check queue")
            .on_hover_text("only the items nobody has judged or reviewed yet, riskiest (highest P(fake)) first")
            .changed()
        {
            out.push(AppCommand::Studio(Command::SetFactCheckQueue(on)));
        }
        if !ws.has_predictions() && (queue || matches!(order, Order::Risk | Order::Uncertainty)) {
            ui.label(
                RichText::new(keys::with_key("no predictions yet: train a model", KeyCommand::ToggleTrainPanel))
                    .small()
                    .weak(),
            );
        }
    });
}

/// Colour of a P(fake): from the real colour at 0 to the fake colour at 1.
pub fn risk_color(p: f64) -> Color32 {
    let (a, b) = (verdict_color(Verdict::Real), verdict_color(Verdict::Fake));
    let t = p.clamp(0.0, 1.0) as f32;
    let mix = |x: u8, y: u8| (x as f32 + (y as f32 - x as f32) * t).round() as u8;
    Color32::from_rgb(mix(a.r(), b.r()), mix(a.g(), b.g()), mix(a.b(), b.b()))
}

/// One row: my verdict, the disagreement mark, P(fake) (`Some` once a model has predictions: `Some(None)` for an
/// item it did not score), the headline.
fn row_ui(
    ui: &mut egui::Ui,
    s: &ItemSummary,
    selected: bool,
    p_fake: Option<Option<f64>>,
    reviewed: bool,
) -> egui::Response {
    let badge = match s.my_verdict {
        Some(Verdict::Fake) => {
            RichText::new(" FAKE ").color(Color32::WHITE).background_color(verdict_color(Verdict::Fake))
        }
        Some(Verdict::Real) => {
            RichText::new(" REAL ").color(Color32::WHITE).background_color(verdict_color(Verdict::Real))
        }
        Some(Verdict::Other) => {
            RichText::new(" ???? ").color(Color32::WHITE).background_color(verdict_color(Verdict::Other))
        }
        None => RichText::new("·").weak(),
    };
    ui.horizontal(|ui| {
        ui.add_sized(egui::vec2(34.0, ui.spacing().interact_size.y), egui::Label::new(badge.monospace().small()));
        // A fixed-width slot, so headlines line up whether or not the mark is there.
        let mark = if s.has_disagreement() { "≠" } else { "" };
        let size = egui::vec2(10.0, ui.spacing().interact_size.y);
        ui.add_sized(size, egui::Label::new(RichText::new(mark).strong().color(ui.visuals().warn_fg_color)))
            .on_hover_text("people disagree, or contradict the gold label");
        let mark = if reviewed { "√" } else { "" };
        ui.add_sized(size, egui::Label::new(RichText::new(mark).strong()))
            .on_hover_text("a fact-check review is published for this item");
        if let Some(p) = p_fake {
            let text = match p {
                Some(p) => RichText::new(format!("{p:.2}")).color(Color32::WHITE).background_color(risk_color(p)),
                None => RichText::new(" -  ").weak(),
            };
            let size = egui::vec2(34.0, ui.spacing().interact_size.y);
            ui.add_sized(size, egui::Label::new(text.monospace().small()))
                .on_hover_text("P(fake) of the guidance model in use (ARG, else ARG-D, else BERT)");
        }
        ui.add(egui::Button::selectable(selected, &s.headline).truncate())
    })
    .inner
}

/// The colour of a verdict, shared by the list and the judgement bar.
pub fn verdict_color(v: Verdict) -> Color32 {
    match v {
        Verdict::Fake => Color32::from_rgb(190, 60, 60),
        Verdict::Real => Color32::from_rgb(50, 140, 80),
        Verdict::Other => Color32::from_rgb(150, 120, 40),
    }
}
