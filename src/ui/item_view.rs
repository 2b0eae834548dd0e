//! The item view: the news text and its metadata, what the guidance models predict (ARG's P(fake), its trust in
//! each rationale and predicted usefulness and LLM verdict; ARG-D's and BERT's P(fake)), the rationales grouped by
//! perspective and shown in the chosen explanation format (with attribution highlights in the news, feedback
//! forms and revision history: [`super::explain`]), and who judged what.
//!
//! News text and model output are shown as plain text (labels), never as markup or links.

use egui::RichText;

use super::command::AppCommand;
use super::explain::{self, ExplainState, Highlight};
use super::item_list::{risk_color, verdict_color};
use super::keys::{self, KeyCommand};
use super::writer_view::WriterView;
use crate::config::ReviewSettings;
use crate::domain::RatingScale;
use crate::domain::{Rationale, RationaleId, Verdict};
use crate::formats::Format;
use crate::prompting::{Perspective, perspective_name};
use crate::studio::{Command, GuidanceDetail, ItemDetail, Workspace};
use crate::writer::LiveState;

/// UI state of the item view.
pub struct ViewState {
    /// A rationale being corrected: (revision it corrects, edited text, edited verdict).
    pub editing: Option<(RationaleId, String, Option<Verdict>)>,
    /// The format the rationales are shown in (kept across items).
    pub format: Format,
    /// Hovered quote, feedback form drafts, word diffs.
    pub explain: ExplainState,
    /// Shade the news tokens by ARG's attention (when ARG has scored the item).
    pub shade_attention: bool,
    /// The fact-check review being written.
    pub review: ReviewDraft,
}

impl Default for ViewState {
    fn default() -> Self {
        Self {
            editing: None,
            format: Format::FreeText,
            explain: ExplainState::default(),
            shade_attention: false,
            review: ReviewDraft::default(),
        }
    }
}

/// A fact-check review being written, and the scale and publishing settings being edited.
#[derive(Default)]
pub struct ReviewDraft {
    /// The item the draft is for (a new item starts a new draft).
    item: Option<crate::domain::ItemId>,
    rating: String,
    explanation: String,
    /// Evidence links, one per line.
    evidence: String,
    /// The settings as edited, before they are saved.
    settings: Option<ReviewSettings>,
}

/// Draws the selected item; returns the commands it emits.
pub fn item_view_ui(
    ui: &mut egui::Ui,
    ws: &Workspace,
    state: &mut ViewState,
    writer: &WriterView,
    review: &ReviewSettings,
) -> Vec<AppCommand> {
    let mut out = Vec::new();
    state.explain.begin(ws.selected_id(), &mut out);
    let Some(detail) = ws.detail() else {
        ui.centered_and_justified(|ui| {
            ui.label(if ws.filtered_len() == 0 { "No item matches the filter." } else { "Select an item." });
        });
        state.explain.end(ui.ctx(), &mut out);
        return out;
    };
    egui::ScrollArea::vertical().id_salt("item_view").auto_shrink([false, false]).show(ui, |ui| {
        header_ui(ui, detail, ws);
        ui.add_space(6.0);
        let spans = highlights(detail, state.format);
        let shade = attention_ui(ui, detail, state, writer, &mut out);
        if let Some(key) = explain::news_ui(ui, &detail.item.text, &spans, shade, state.explain.hovered.as_ref()) {
            state.explain.hover(key);
        }
        ui.add_space(8.0);
        metadata_ui(ui, detail);
        review_ui(ui, detail, ws, &mut state.review, review, &mut out);
        if !detail.guidance.is_empty() {
            ui.separator();
            guidance_ui(ui, detail, ws.perspectives(), writer, &mut out);
        }
        ui.separator();
        rationales_ui(ui, detail, ws.perspectives(), state, writer, &mut out);
        ui.separator();
        judgements_ui(ui, detail);
        ui.separator();
        explain::repair_stats_ui(ui, &writer.repair_stats);
    });
    state.explain.end(ui.ctx(), &mut out);
    out
}

/// The "shade by ARG's attention" toggle (when the ARG version in use has scored the item); returns the token
/// weights to shade the news with, once computed (in the background, on first use).
fn attention_ui<'a>(
    ui: &mut egui::Ui,
    d: &ItemDetail,
    state: &mut ViewState,
    writer: &'a WriterView,
    out: &mut Vec<AppCommand>,
) -> &'a [crate::guidance::train::TokenWeight] {
    let Some((version, _)) = &d.guidance.arg else { return &[] };
    let item = d.item.id;
    let mut shown: &[crate::guidance::train::TokenWeight] = &[];
    ui.horizontal(|ui| {
        ui.checkbox(&mut state.shade_attention, "Shade by ARG's attention").on_hover_text(
            "darker words weigh more in how ARG reads the news (its attention over the news tokens, version in use)",
        );
        if !state.shade_attention {
            return;
        }
        match &writer.attention {
            Some((i, v, weights)) if *i == item && v == version => shown = weights,
            _ if writer.attention_loading == Some(item) => {
                ui.spinner();
                ui.label(RichText::new("ARG reads the news…").small().weak());
            }
            _ if writer.attention_loading.is_none() => {
                out.push(AppCommand::LoadAttention { item, version: *version });
            }
            _ => {}
        }
    });
    shown
}

/// The supported quote spans of every rendering shown (the chosen format's, else the free text's).
fn highlights(d: &ItemDetail, format: Format) -> Vec<Highlight> {
    let mut spans = Vec::new();
    for r in &d.rationales {
        if let Some(rend) = d.explain.get(&r.id).and_then(|e| explain::shown_rendering(e, format)) {
            explain::highlights(rend, r.id, &mut spans);
        }
    }
    spans
}

fn header_ui(ui: &mut egui::Ui, d: &ItemDetail, ws: &Workspace) {
    let item = &d.item;
    if let Some(title) = item.title.as_deref().filter(|t| !t.trim().is_empty()) {
        ui.heading(title);
    }
    ui.horizontal_wrapped(|ui| {
        let pos = ws.cursor().map_or(0, |c| c + 1);
        ui.label(RichText::new(format!("Item {} · {pos} of {}", item.id, ws.filtered_len())).weak());
        if let Some(source) = &item.source {
            ui.label(format!("· {source}"));
        }
        if let Some(date) = &item.published {
            ui.label(format!("· {date}"));
        }
        match item.gold_label {
            Some(v) => {
                let original = item.original_label.as_deref().map(|o| format!(" ({o})")).unwrap_or_default();
                ui.label(RichText::new(format!("gold: {v}{original}")).color(verdict_color(v)));
            }
            None => {
                ui.label(RichText::new("unlabelled").weak());
            }
        }
    });
}

fn metadata_ui(ui: &mut egui::Ui, d: &ItemDetail) {
    egui::CollapsingHeader::new("Metadata").id_salt("metadata").default_open(false).show(ui, |ui| {
        egui::Grid::new("metadata_grid").num_columns(2).striped(true).show(ui, |ui| {
            let item = &d.item;
            let fixed = [
                ("dataset", Some(d.dataset.clone())),
                ("source id", item.external_id.clone()),
                ("split", item.split.clone()),
                ("original label", item.original_label.clone()),
            ];
            for (k, v) in fixed {
                if let Some(v) = v {
                    ui.label(RichText::new(k).weak());
                    ui.label(v);
                    ui.end_row();
                }
            }
            if let Some(map) = item.metadata.as_object() {
                for (k, v) in map {
                    ui.label(RichText::new(k).weak());
                    ui.label(match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                    ui.end_row();
                }
            }
        });
    });
}

/// The guidance models' view of the item: P(fake) of each model in use, then ARG's per-perspective trust (w_r) as
/// bars, predicted usefulness and predicted LLM verdict, and (on request) how much P(fake) moves when the
/// rationale is swapped, emptied or negated.
fn guidance_ui(
    ui: &mut egui::Ui,
    d: &ItemDetail,
    perspectives: &[Perspective],
    writer: &WriterView,
    out: &mut Vec<AppCommand>,
) {
    let g: &GuidanceDetail = &d.guidance;
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new("Guidance").strong());
        let models = [("ARG", g.arg.as_ref().map(|(v, p)| (*v, p.p_fake))), ("ARG-D", g.argd), ("BERT", g.bert)];
        for (name, p) in models {
            let Some((version, p)) = p else { continue };
            ui.label(RichText::new(format!("{name}: P(fake) {p:.2}")).strong().color(risk_color(p)))
                .on_hover_text(format!("{name} version {version} (in use)"));
        }
    });
    let Some((version, arg)) = &g.arg else { return };
    if arg.gates.is_empty() {
        return;
    }
    let item = d.item.id;
    let checked = match &writer.faithfulness {
        Some((i, v, rows)) if *i == item && v == version => Some(rows.as_slice()),
        _ => None,
    };
    egui::Grid::new("guidance_grid").num_columns(5).spacing([12.0, 4.0]).show(ui, |ui| {
        ui.label(RichText::new("perspective").small().weak());
        ui.label(RichText::new("ARG's trust in the rationale (w_r)").small().weak());
        ui.label(RichText::new("predicted useful").small().weak());
        ui.label(RichText::new("predicted LLM verdict").small().weak());
        if checked.is_some() {
            ui.label(RichText::new("P(fake) moves when the rationale is…").small().weak());
        } else if writer.faithfulness_loading == Some(item) {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(RichText::new("checking…").small().weak());
            });
        } else if ui
            .small_button("Does ARG use them?")
            .on_hover_text(
                "faithfulness: how much ARG's P(fake) for this item moves when each rationale is swapped for another \
                 item's, emptied, or has its verdict negated",
            )
            .clicked()
        {
            out.push(AppCommand::CheckFaithfulness { item, version: *version });
        }
        ui.end_row();
        for (key, w) in &arg.gates {
            ui.label(RichText::new(key).monospace()).on_hover_text(perspective_name(perspectives, key));
            let w = w.clamp(0.0, 1.0);
            ui.add(egui::ProgressBar::new(w as f32).desired_width(180.0).text(format!("{w:.2}")))
                .on_hover_text("how much ARG weighs this rationale for this item (0 to 1)");
            match arg.usefulness.iter().find(|(k, _)| k == key) {
                Some((_, u)) => ui.label(format!("{u:.2}")),
                None => ui.label("—"),
            }
            .on_hover_text("predicted probability that this rationale's verdict is right");
            match arg.judgements.iter().find(|(k, _)| k == key) {
                Some((_, v)) => ui.label(RichText::new(v.human_name()).color(verdict_color(*v))),
                None => ui.label("—"),
            };
            if let Some(rows) = checked {
                match rows.iter().find(|s| &s.perspective == key) {
                    Some(s) => ui.label(faithfulness_text(s)).on_hover_text(
                        "change of ARG's P(fake) for this item: swapped = another item's rationale of this \
                         perspective, emptied = no rationale, negated = its verdict sentence turned around",
                    ),
                    None => ui.label("—"),
                };
            }
            ui.end_row();
        }
    });
}

/// "swapped +0.210 · emptied -0.050 · negated +0.020": ΔP(fake) under each perturbation that applied (no negation
/// when the rationale has no verdict sentence within what ARG reads).
pub fn faithfulness_text(s: &crate::guidance::faithfulness::ItemSensitivity) -> String {
    let parts: Vec<String> = [("swapped", s.dp_swap), ("emptied", s.dp_empty), ("negated", s.dp_negate)]
        .into_iter()
        .filter_map(|(name, dp)| Some(format!("{name} {:+.3}", dp?)))
        .collect();
    if parts.is_empty() { "—".into() } else { parts.join(" · ") }
}

fn rationales_ui(
    ui: &mut egui::Ui,
    d: &ItemDetail,
    perspectives: &[Perspective],
    state: &mut ViewState,
    writer: &WriterView,
    out: &mut Vec<AppCommand>,
) {
    ui.horizontal(|ui| {
        ui.heading("Rationales");
        if writer.running {
            ui.spinner();
            if ui.button("Stop writing").on_hover_text("rationales already written are kept").clicked() {
                out.push(AppCommand::CancelJob(super::command::WRITER_JOB.to_owned()));
            }
        } else if ui
            .add_enabled(!writer.llm_busy, egui::Button::new("Write rationales"))
            .on_hover_text(keys::with_key(
                "ask the rationale writer for this item's rationales and their verdicts",
                KeyCommand::WriteRationales,
            ))
            .clicked()
        {
            out.push(AppCommand::WriteRationales(vec![d.item.id]));
        }
    });
    explain::format_selector(ui, state.format, out);
    // Rationales being written now (those already stored show below with the others).
    for live in writer.live.iter().filter(|l| !matches!(l.state, LiveState::Stored { .. })) {
        ui.add_space(4.0);
        ui.label(RichText::new(perspective_name(perspectives, &live.perspective)).strong());
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| match &live.state {
                LiveState::Writing => {
                    ui.spinner();
                    ui.label(RichText::new("writing…").small().weak());
                }
                LiveState::AskingVerdict => {
                    ui.spinner();
                    ui.label(RichText::new("asking for its verdict…").small().weak());
                }
                LiveState::Failed(e) => {
                    ui.colored_label(ui.visuals().error_fg_color, format!("failed: {e}"));
                }
                LiveState::Stored { .. } => {}
            });
            ui.label(&live.text);
        });
    }
    if d.rationales.is_empty() {
        if writer.live.is_empty() {
            ui.label(RichText::new("No rationales yet for this item.").weak());
        }
        return;
    }
    if state.format == Format::SideBySide {
        side_by_side_ui(ui, d, perspectives, state, writer, out);
        return;
    }
    let mut perspective: Option<&str> = None;
    for r in &d.rationales {
        if perspective != Some(r.perspective.as_str()) {
            perspective = Some(&r.perspective);
            ui.add_space(4.0);
            ui.label(RichText::new(perspective_name(perspectives, &r.perspective)).strong());
        }
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            rationale_ui(ui, r, d, state, writer, out);
        });
    }
}

/// Every perspective in a column of its own, with ARG's trust in it (shown once per item).
fn side_by_side_ui(
    ui: &mut egui::Ui,
    d: &ItemDetail,
    perspectives: &[Perspective],
    state: &mut ViewState,
    writer: &WriterView,
    out: &mut Vec<AppCommand>,
) {
    ui.columns(d.rationales.len(), |columns| {
        for (ui, r) in columns.iter_mut().zip(&d.rationales) {
            ui.with_layout(egui::Layout::top_down(egui::Align::LEFT), |ui| {
                ui.label(RichText::new(perspective_name(perspectives, &r.perspective)).strong());
                if let Some(rend) = d.explain.get(&r.id).and_then(|e| e.rendering(Format::SideBySide)) {
                    explain::trust_ui(ui, rend, r.id);
                }
                egui::Frame::group(ui.style()).show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    rationale_ui(ui, r, d, state, writer, out);
                });
            });
        }
    });
}

/// One rationale (its latest revision) in the chosen format, with "Correct…", its feedback form and its history.
fn rationale_ui(
    ui: &mut egui::Ui,
    r: &Rationale,
    d: &ItemDetail,
    state: &mut ViewState,
    writer: &WriterView,
    out: &mut Vec<AppCommand>,
) {
    let explain = d.explain.get(&r.id);
    let format = state.format;
    ui.horizontal_wrapped(|ui| {
        let who = match (&r.model, &r.author) {
            (_, Some(author)) => format!("corrected by {author}"),
            (Some(model), None) => model.clone(),
            (None, None) => r.origin.as_str().to_owned(),
        };
        ui.label(RichText::new(format!("rev {} · {who}", r.revision)).small().weak());
        if let Some(v) = r.verdict {
            ui.label(RichText::new(format!("implies: {v}")).small().color(verdict_color(v)));
        }
    });
    let editing_this = state.editing.as_ref().is_some_and(|(id, _, _)| *id == r.id);
    if editing_this {
        let mut done = None;
        if let Some((_, text, verdict)) = &mut state.editing {
            let label = ui.label(RichText::new("Corrected text:").small());
            ui.add(
                egui::TextEdit::multiline(text)
                    .hint_text("the corrected rationale")
                    .desired_rows(4)
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(label.id);
            ui.horizontal(|ui| {
                let label = ui.label("implied verdict:");
                egui::ComboBox::from_id_salt(("rationale_verdict", r.id))
                    .selected_text(verdict.map_or("unknown", Verdict::as_str))
                    .show_ui(ui, |ui| {
                        ui.selectable_value(verdict, None, "unknown");
                        for v in Verdict::ALL {
                            ui.selectable_value(verdict, Some(v), v.as_str());
                        }
                    })
                    .response
                    .labelled_by(label.id);
                let changed = text.trim() != r.text.trim() || *verdict != r.verdict;
                if ui
                    .add_enabled(changed && !text.trim().is_empty(), egui::Button::new("Save as new revision"))
                    .clicked()
                {
                    done = Some(Some(Command::ReviseRationale {
                        parent: r.id,
                        text: text.trim().to_owned(),
                        verdict: *verdict,
                    }));
                }
                if ui.button("Cancel").clicked() {
                    done = Some(None);
                }
            });
        }
        if let Some(cmd) = done {
            if let Some(cmd) = cmd {
                out.push(AppCommand::Studio(cmd));
            } else {
                state.editing = None;
            }
        }
    } else {
        explain::format_body(ui, r, explain, format, &mut state.explain, writer, out);
        if ui
            .small_button("Correct…")
            .on_hover_text("edit this rationale; the edit is stored as a new revision")
            .clicked()
        {
            state.editing = Some((r.id, r.text.clone(), r.verdict));
        }
    }
    let Some(explain) = explain else { return };
    // A form on what the person saw: the format when it is written (free text and side by side always are).
    if let Some(rendering) = explain.rendering(format) {
        explain::feedback_ui(ui, r, explain, format, Some(rendering), &mut state.explain, writer, out);
    }
    explain::history_ui(ui, r, explain, &mut state.explain, out);
}

fn judgements_ui(ui: &mut egui::Ui, d: &ItemDetail) {
    ui.heading("Judgements");
    if d.judgements.is_empty() {
        ui.label(RichText::new("Nobody has judged this item yet.").weak());
        return;
    }
    egui::Grid::new("judgements_grid").num_columns(4).striped(true).show(ui, |ui| {
        for j in &d.judgements {
            ui.label(&j.annotator);
            ui.label(RichText::new(j.verdict.human_name()).color(verdict_color(j.verdict)));
            ui.label(j.confidence.map(|c| format!("conf {c:.2}")).unwrap_or_default());
            ui.label(j.note.as_deref().unwrap_or(""));
            ui.end_row();
        }
    });
}

/// The scale the settings name (PolitiFact's when they name none), or why it does not parse.
pub fn review_scale(settings: &ReviewSettings) -> Result<RatingScale, String> {
    if settings.scale.trim().is_empty() { Ok(RatingScale::politifact()) } else { RatingScale::parse(&settings.scale) }
}

/// The fact-checker's review: the history (with undo), a rating on the scale, an explanation and evidence links,
/// Publish; and, folded, the scale and how ClaimReview is published.
fn review_ui(
    ui: &mut egui::Ui,
    d: &ItemDetail,
    ws: &Workspace,
    draft: &mut ReviewDraft,
    settings: &ReviewSettings,
    out: &mut Vec<AppCommand>,
) {
    if draft.item != Some(d.item.id) {
        *draft = ReviewDraft { item: Some(d.item.id), settings: draft.settings.take(), ..Default::default() };
    }
    let standing = d.reviews.iter().find(|r| !r.retracted);
    let title = match standing {
        Some(r) => format!("Fact-check review: {} ({})", r.rating, r.reviewer),
        None => "Fact-check review".to_owned(),
    };
    // Folded by default (the header says the standing review); the body is the form and the history.
    egui::CollapsingHeader::new(title)
        .id_salt("fact_check_review")
        .show(ui, |ui| review_body(ui, d, ws, draft, settings, out));
}

fn review_body(
    ui: &mut egui::Ui,
    d: &ItemDetail,
    ws: &Workspace,
    draft: &mut ReviewDraft,
    settings: &ReviewSettings,
    out: &mut Vec<AppCommand>,
) {
    if d.reviews.is_empty() {
        ui.label(RichText::new("Not reviewed yet.").weak());
    } else {
        egui::Grid::new("review_history").num_columns(5).striped(true).show(ui, |ui| {
            for r in &d.reviews {
                let when = r.created_at.get(..16).unwrap_or(&r.created_at).replace('T', " ");
                let rating = RichText::new(format!("{} ({}/{})", r.rating, r.rating_value, r.best_rating));
                let rating = match r.verdict {
                    Some(v) if !r.retracted => rating.color(verdict_color(v)),
                    _ => rating,
                };
                ui.label(if r.retracted {
                    RichText::new(format!("{when} (undone)")).weak()
                } else {
                    RichText::new(when)
                });
                ui.label(&r.reviewer);
                ui.label(if r.retracted { rating.strikethrough() } else { rating });
                let links = match r.evidence.len() {
                    0 => String::new(),
                    1 => " · 1 link".to_owned(),
                    n => format!(" · {n} links"),
                };
                ui.label(format!("{}{links}", r.explanation)).on_hover_text(r.evidence.join("\n"));
                if !r.retracted && r.reviewer == ws.annotator() && ui.small_button("Undo review").clicked() {
                    out.push(AppCommand::Studio(Command::RetractReview(r.id)));
                }
                ui.end_row();
            }
        });
    }
    let scale = match review_scale(settings) {
        Ok(scale) => scale,
        Err(e) => {
            ui.colored_label(ui.visuals().error_fg_color, format!("The rating scale in the settings: {e}"));
            RatingScale::politifact()
        }
    };
    egui::Grid::new("review_form").num_columns(2).show(ui, |ui| {
        let label = ui.label("Rating:");
        egui::ComboBox::from_id_salt("review_rating")
            .selected_text(if draft.rating.is_empty() { "choose…" } else { draft.rating.as_str() })
            .show_ui(ui, |ui| {
                for level in &scale.levels {
                    let meaning = level.verdict.map_or("no real/fake verdict", |v| v.as_str());
                    ui.selectable_value(&mut draft.rating, level.name.clone(), &level.name).on_hover_text(meaning);
                }
            })
            .response
            .labelled_by(label.id);
        ui.end_row();
        let label = ui.label("Explanation:");
        ui.add(egui::TextEdit::multiline(&mut draft.explanation).desired_rows(2).desired_width(420.0))
            .labelled_by(label.id);
        ui.end_row();
        let label = ui.label("Evidence links:");
        ui.add(
            egui::TextEdit::multiline(&mut draft.evidence)
                .hint_text("one https:// link per line")
                .desired_rows(2)
                .desired_width(420.0),
        )
        .labelled_by(label.id);
        ui.end_row();
    });
    let links: Vec<String> =
        draft.evidence.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    let bad_link = links.iter().find(|l| !(l.starts_with("https://") || l.starts_with("http://")) || l.contains(' '));
    if let Some(l) = bad_link {
        ui.colored_label(ui.visuals().error_fg_color, format!("'{l}' is not an http(s) link"));
    }
    let ready = scale.level(&draft.rating).is_some() && bad_link.is_none();
    if ui.add_enabled(ready, egui::Button::new("Publish review")).clicked() {
        out.push(AppCommand::Studio(Command::PublishReview {
            scale: scale.clone(),
            rating: draft.rating.clone(),
            explanation: draft.explanation.trim().to_owned(),
            evidence: links,
        }));
        *draft = ReviewDraft { item: Some(d.item.id), settings: draft.settings.take(), ..Default::default() };
    }
    egui::CollapsingHeader::new("Rating scale and publishing").id_salt("review_settings").show(ui, |ui| {
        let edit = draft.settings.get_or_insert_with(|| settings.clone());
        egui::Grid::new("review_settings_grid").num_columns(2).show(ui, |ui| {
            let label = ui.label("Scale:");
            ui.add(
                egui::TextEdit::singleline(&mut edit.scale)
                    .hint_text(RatingScale::politifact().spec())
                    .desired_width(420.0),
            )
            .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("ClaimReview URL:");
            ui.add(
                egui::TextEdit::singleline(&mut edit.url_pattern)
                    .hint_text("https://factcheck.example.org/reviews/{key}")
                    .desired_width(420.0),
            )
            .labelled_by(label.id);
            ui.end_row();
            let label = ui.label("Publisher:");
            ui.add(
                egui::TextEdit::singleline(&mut edit.publisher).hint_text("default: the reviewer").desired_width(420.0),
            )
            .labelled_by(label.id);
            ui.end_row();
        });
        let scale_error = review_scale(edit).err();
        if let Some(e) = &scale_error {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        let changed = *edit != *settings;
        if ui.add_enabled(changed && scale_error.is_none(), egui::Button::new("Save review settings")).clicked() {
            out.push(AppCommand::SetReviewSettings(edit.clone()));
        }
    });
}
