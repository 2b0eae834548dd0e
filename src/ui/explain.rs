//! Explanation formats in the item view: the format selector, each rationale shown in the chosen format, the
//! attribution highlights in the news text, the feedback form per (revision, format) with "Apply feedback", the
//! revision history with word diffs and restore, and the repairs-by-format table.
//!
//! News text and model output are untrusted: everything is drawn as plain text labels (never markup or links).
//! What is shown comes from `ItemDetail::explain`, read by the workspace when the item loads; nothing here reads
//! the store, and LLM work is asked for with [`AppCommand`]s that the app runs as named background jobs.

use std::collections::HashMap;
use std::time::Instant;

use egui::text::LayoutJob;
use egui::{Color32, Key, KeyboardShortcut, Modifiers, RichText, Stroke, TextFormat, TextStyle};

use super::command::AppCommand;
use super::item_list::verdict_color;
use super::writer_view::WriterView;
use crate::domain::{ItemId, NewFeedback, Rationale, RationaleId, Usefulness, Verdict};
use crate::formats::attribution::QuoteMatch;
use crate::formats::generate::{Rendered, Status};
use crate::formats::repair::{Change, word_diff};
use crate::formats::{Format, Stance, Structured, YesNo};
use crate::store::formats::{FeedbackRow, FormatRepairStats, RepairRow};
use crate::studio::{Command, RationaleExplain};

/// A quote of a rendering: the rationale revision the rendering shows and where the quote sits in the format
/// (`annotations[0].quote`, `columns[1]`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteKey {
    pub rationale: RationaleId,
    pub location: String,
}

/// A highlighted span of the news: characters `start..end` and the quote it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct Highlight {
    pub start: usize,
    pub end: usize,
    pub key: QuoteKey,
}

/// The explanation view's UI state (kept across items, except the drafts of the forms).
#[derive(Default)]
pub struct ExplainState {
    /// The quote hovered in the last frame, in the news or in a format view (both draw it stronger).
    pub hovered: Option<QuoteKey>,
    /// The quote hovered in this frame so far.
    hovered_next: Option<QuoteKey>,
    /// Feedback forms being filled in, per (latest revision, format).
    forms: HashMap<(RationaleId, Format), FormDraft>,
    /// The item the drafts belong to.
    item: Option<ItemId>,
    /// Word diffs of (parent, revision), computed once.
    diffs: HashMap<(RationaleId, RationaleId), Vec<Change>>,
}

/// A feedback form as it is being filled in; every discrete change is saved at once, text on leaving the field.
struct FormDraft {
    form: NewFeedback,
    what: String,
    fix: String,
    /// Milliseconds the form was open before it was last opened (the stored time included).
    spent_ms: i64,
    /// When the form was opened, while it is open.
    opened_at: Option<Instant>,
    /// The form has a row in the database (prefilled, or saved in this session).
    stored: bool,
    /// A text field changed since the last save.
    text_dirty: bool,
    /// Drawn in this frame.
    shown: bool,
}

impl FormDraft {
    fn new(rationale: RationaleId, format: Format, row: Option<&FeedbackRow>) -> Self {
        let form = match row {
            Some(row) => row.form.clone(),
            None => NewFeedback { rationale_id: rationale, format: format.as_str().to_owned(), ..Default::default() },
        };
        Self {
            what: form.fb_what.clone().unwrap_or_default(),
            fix: form.fb_fix.clone().unwrap_or_default(),
            spent_ms: form.time_spent_ms.max(0),
            opened_at: None,
            stored: row.is_some(),
            text_dirty: false,
            shown: false,
            form,
        }
    }

    fn time_ms(&self) -> i64 {
        self.spent_ms + self.opened_at.map_or(0, |t| t.elapsed().as_millis() as i64)
    }

    /// The form as it is saved now.
    fn to_feedback(&self) -> NewFeedback {
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        NewFeedback {
            fb_what: text(&self.what),
            fb_fix: text(&self.fix),
            time_spent_ms: self.time_ms(),
            ..self.form.clone()
        }
    }

    fn save(&mut self, out: &mut Vec<AppCommand>) {
        self.stored = true;
        self.text_dirty = false;
        out.push(AppCommand::Studio(Command::SaveFeedback(self.to_feedback())));
    }

    /// The form is no longer drawn: stop its clock; a stored form gets its time saved.
    fn close(&mut self, out: &mut Vec<AppCommand>) {
        if let Some(t) = self.opened_at.take() {
            self.spent_ms += t.elapsed().as_millis() as i64;
            if self.stored {
                self.save(out);
            }
        }
    }
}

impl ExplainState {
    /// Start of the item view's frame: a new item drops the drafts (saving the time of open stored forms).
    pub fn begin(&mut self, item: Option<ItemId>, out: &mut Vec<AppCommand>) {
        if item != self.item {
            for draft in self.forms.values_mut() {
                draft.close(out);
            }
            self.forms.clear();
            self.diffs.clear();
            self.hovered = None;
            self.item = item;
        }
        for draft in self.forms.values_mut() {
            draft.shown = false;
        }
        self.hovered_next = None;
    }

    /// End of the item view's frame: forms no longer drawn stop their clock; the hovered quote moves on.
    pub fn end(&mut self, ctx: &egui::Context, out: &mut Vec<AppCommand>) {
        for draft in self.forms.values_mut().filter(|d| !d.shown) {
            draft.close(out);
        }
        if self.hovered_next != self.hovered {
            self.hovered = self.hovered_next.take();
            // The other side draws the new hover in the next frame.
            ctx.request_repaint();
        }
    }

    /// Marks a quote hovered in this frame.
    pub fn hover(&mut self, key: QuoteKey) {
        self.hovered_next = Some(key);
    }

    fn is_hovered(&self, key: &QuoteKey) -> bool {
        self.hovered.as_ref() == Some(key)
    }
}

/// The rendering a rationale is shown with in `format`: the format's, else (a structured format not written yet)
/// the free text.
pub fn shown_rendering(explain: &RationaleExplain, format: Format) -> Option<&Rendered> {
    explain.rendering(format).or_else(|| explain.rendering(Format::FreeText))
}

/// The quotes of `rend` that belong to rationale `r` (side by side: its own column only).
fn own_quotes(rend: &Rendered, r: RationaleId) -> Vec<&QuoteMatch> {
    if rend.format != Format::SideBySide {
        return rend.quotes.iter().collect();
    }
    match rend.columns.iter().position(|c| c.rationale.id == r) {
        Some(i) => {
            let location = format!("columns[{i}]");
            rend.quotes.iter().filter(|q| q.location == location).collect()
        }
        None => Vec::new(),
    }
}

/// The supported quote spans of `r`'s rendering, for the news highlights.
pub fn highlights(rend: &Rendered, r: RationaleId, out: &mut Vec<Highlight>) {
    for q in own_quotes(rend, r) {
        if let (Some(start), Some(end)) = (q.start, q.end) {
            out.push(Highlight {
                start,
                end,
                key: QuoteKey { rationale: rend.rationale.id, location: q.location.clone() },
            });
        }
    }
}

/// Background of a quoted span in the news (and of a hovered quote in a format view).
fn highlight_color(ui: &egui::Ui, strong: bool) -> Color32 {
    match (ui.visuals().dark_mode, strong) {
        (true, false) => Color32::from_rgba_unmultiplied(200, 160, 30, 105),
        (true, true) => Color32::from_rgba_unmultiplied(235, 165, 0, 190),
        (false, false) => Color32::from_rgba_unmultiplied(255, 215, 60, 120),
        (false, true) => Color32::from_rgba_unmultiplied(255, 160, 0, 210),
    }
}

fn green(ui: &egui::Ui) -> Color32 {
    if ui.visuals().dark_mode { Color32::from_rgb(110, 200, 120) } else { Color32::from_rgb(20, 120, 40) }
}

fn red(ui: &egui::Ui) -> Color32 {
    if ui.visuals().dark_mode { Color32::from_rgb(235, 110, 110) } else { Color32::from_rgb(180, 30, 30) }
}

/// Dark text on the strong highlight (readable in both themes), else the base format on `background`.
fn section(ui: &egui::Ui, base: &TextFormat, background: Color32) -> TextFormat {
    let color = if background == highlight_color(ui, true) { HOVERED_TEXT } else { base.color };
    TextFormat { background, color, ..base.clone() }
}

/// Text colour on the strong (hovered) highlight.
const HOVERED_TEXT: Color32 = Color32::from_gray(20);

/// Background of a news token by ARG's attention: `share` is its weight relative to the heaviest token.
fn attention_color(ui: &egui::Ui, share: f64) -> Color32 {
    let alpha = (share.clamp(0.0, 1.0) * 170.0).round() as u8;
    if ui.visuals().dark_mode {
        Color32::from_rgba_unmultiplied(80, 140, 255, alpha)
    } else {
        Color32::from_rgba_unmultiplied(40, 110, 240, alpha)
    }
}

/// The news text with every highlighted span on a background (the hovered quote's stronger), and, under the
/// quotes, each token of `shade` tinted by its share of ARG's attention. Returns the quote whose span the pointer
/// is over.
/// Characters of one text the item view lays out: a news text or rationale longer than this (a megabyte pasted as
/// one line, say) shows its beginning and says how much more is stored. Laying out a megabyte took 480 ms, a frame
/// of its own (`argus bench hostile`); 20,000 characters are about eight screens.
pub const SHOWN_CHARS: usize = 20_000;

/// `text` cut to [`SHOWN_CHARS`] characters, and its whole length in characters when it was cut.
pub fn shown_part(text: &str) -> (&str, Option<usize>) {
    match text.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => (&text[..cut], Some(text.chars().count())),
        None => (text, None),
    }
}

/// A rationale's or answer's text as a plain label, cut as [`shown_part`] says.
pub fn long_text_ui(ui: &mut egui::Ui, text: &str) {
    let (text, cut) = shown_part(text);
    ui.label(text);
    if let Some(total) = cut {
        cut_note(ui, total);
    }
}

/// The note under a text that [`shown_part`] cut.
pub fn cut_note(ui: &mut egui::Ui, total: usize) {
    ui.label(
        RichText::new(format!(
            "Showing the first {SHOWN_CHARS} of {total} characters; the whole text is stored, used by the models and \
             exported."
        ))
        .small()
        .weak(),
    );
}

pub fn news_ui(
    ui: &mut egui::Ui,
    news: &str,
    spans: &[Highlight],
    shade: &[crate::guidance::train::TokenWeight],
    hovered: Option<&QuoteKey>,
) -> Option<QuoteKey> {
    let (news, cut) = shown_part(news);
    let quote = news_text_ui(ui, news, spans, shade, hovered);
    if let Some(total) = cut {
        cut_note(ui, total);
    }
    quote
}

fn news_text_ui(
    ui: &mut egui::Ui,
    news: &str,
    spans: &[Highlight],
    shade: &[crate::guidance::train::TokenWeight],
    hovered: Option<&QuoteKey>,
) -> Option<QuoteKey> {
    // Spans are in characters; the layout job wants byte ranges.
    let bytes: Vec<usize> = news.char_indices().map(|(b, _)| b).chain(std::iter::once(news.len())).collect();
    let chars = bytes.len() - 1;
    let spans: Vec<&Highlight> = spans.iter().filter(|s| s.start < s.end && s.end <= chars).collect();
    let mut cuts: Vec<usize> = vec![0, chars];
    for s in &spans {
        cuts.extend([s.start, s.end]);
    }
    let shade: Vec<&crate::guidance::train::TokenWeight> =
        shade.iter().filter(|t| t.start < t.end && t.end <= chars).collect();
    let heaviest = shade.iter().map(|t| t.weight).fold(0.0, f64::max);
    for t in &shade {
        cuts.extend([t.start, t.end]);
    }
    cuts.sort_unstable();
    cuts.dedup();
    let base = TextFormat {
        font_id: egui::FontId::proportional(17.0),
        color: ui.visuals().text_color(),
        ..Default::default()
    };
    let mut job = LayoutJob::default();
    let mut run: Option<(usize, usize, Color32)> = None;
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let inside: Vec<&&Highlight> = spans.iter().filter(|s| s.start <= a && b <= s.end).collect();
        let strong = inside.iter().any(|s| Some(&s.key) == hovered);
        let token = shade.iter().find(|t| t.start <= a && b <= t.end);
        let background = match (inside.is_empty(), strong, token) {
            (true, _, Some(t)) if heaviest > 0.0 => attention_color(ui, t.weight / heaviest),
            (true, _, _) => Color32::TRANSPARENT,
            (false, strong, _) => highlight_color(ui, strong),
        };
        run = match run {
            Some((start, _, bg)) if bg == background => Some((start, b, bg)),
            Some((start, end, bg)) => {
                job.append(&news[bytes[start]..bytes[end]], 0.0, section(ui, &base, bg));
                Some((a, b, background))
            }
            None => Some((a, b, background)),
        };
    }
    if let Some((start, end, bg)) = run {
        job.append(&news[bytes[start]..bytes[end]], 0.0, section(ui, &base, bg));
    }
    let (pos, galley, response) = egui::Label::new(job).layout_in_ui(ui);
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, ui.is_enabled(), galley.text()));
    if ui.is_rect_visible(response.rect) {
        egui::text_selection::LabelSelectionState::label_text_selection(
            ui,
            &response,
            pos,
            galley.clone(),
            ui.visuals().text_color(),
            Stroke::NONE,
        );
    }
    let pointer = response.hover_pos()?;
    let at = galley.cursor_from_pos(pointer - pos).index.0;
    // The cursor falls between characters: the one after it, else the one before.
    [at, at.saturating_sub(1)]
        .into_iter()
        .find_map(|c| spans.iter().find(|s| s.start <= c && c < s.end))
        .map(|s| s.key.clone())
}

/// One selectable button per format, labelled `Format:`; keys `1`..`8` do the same.
pub fn format_selector(ui: &mut egui::Ui, current: Format, out: &mut Vec<AppCommand>) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Format:");
        for (i, f) in Format::ALL.into_iter().enumerate() {
            if ui
                .selectable_label(current == f, f.title())
                .on_hover_text(format!("show the rationales as {} ({})", f.title().to_lowercase(), i + 1))
                .clicked()
                && current != f
            {
                out.push(AppCommand::SetFormat(f));
            }
        }
    });
}

/// A quote of the format: in quotation marks, stronger while it (or its span in the news) is hovered, with a
/// warning mark when the news does not contain it.
fn quote_ui(ui: &mut egui::Ui, state: &mut ExplainState, rend: &Rendered, location: &str, text: &str) {
    let key = QuoteKey { rationale: rend.rationale.id, location: location.to_owned() };
    let matched = rend.quotes.iter().find(|q| q.location == location);
    ui.horizontal_wrapped(|ui| {
        let mut rich = RichText::new(format!("“{text}”")).italics().strong();
        if state.is_hovered(&key) {
            rich = rich.background_color(highlight_color(ui, true)).color(HOVERED_TEXT);
        }
        let response = ui.label(rich);
        match matched {
            Some(q) if !q.supported() => {
                warning_mark(ui, "not in the news")
                    .on_hover_text("this quote matches nothing in the news text: the model may have made it up");
            }
            Some(q) => {
                if response.hovered() {
                    state.hover(key);
                }
                if let Some(method) = q.method.filter(|m| *m != crate::formats::attribution::Method::Exact) {
                    let score = q.score.map(|s| format!(" {s:.2}")).unwrap_or_default();
                    response.on_hover_text(format!("found in the news ({method:?} match{score})").to_lowercase());
                }
            }
            None => {}
        }
    });
}

/// A warning triangle (painted: the bundled fonts have no ⚠ glyph) and `text`, in the warning colour; read out
/// as "⚠ text".
fn warning_mark(ui: &mut egui::Ui, text: &str) -> egui::Response {
    let color = ui.visuals().warn_fg_color;
    let galley = egui::WidgetText::from(RichText::new(text).color(color)).into_galley(
        ui,
        Some(egui::TextWrapMode::Extend),
        f32::INFINITY,
        TextStyle::Body,
    );
    let height = galley.size().y;
    let icon = (height * 0.85).round();
    let (rect, response) =
        ui.allocate_exact_size(egui::vec2(icon + 4.0 + galley.size().x, height), egui::Sense::hover());
    if ui.is_rect_visible(rect) {
        let tri = egui::Rect::from_min_size(rect.min + egui::vec2(0.0, (height - icon) / 2.0), egui::vec2(icon, icon));
        let painter = ui.painter();
        painter.add(egui::Shape::convex_polygon(
            vec![tri.center_top(), tri.right_bottom(), tri.left_bottom()],
            color,
            Stroke::NONE,
        ));
        painter.text(
            tri.center() + egui::vec2(0.0, icon * 0.14),
            egui::Align2::CENTER_CENTER,
            "!",
            egui::FontId::proportional(icon * 0.7),
            ui.visuals().panel_fill,
        );
        painter.galley(rect.min + egui::vec2(icon + 4.0, 0.0), galley, color);
    }
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, ui.is_enabled(), format!("⚠ {text}")));
    response
}

/// The quoted phrases of a free-text rationale (or a side-by-side column), each with its mark.
fn quoted_list_ui(ui: &mut egui::Ui, state: &mut ExplainState, rend: &Rendered, r: RationaleId) {
    let quotes = own_quotes(rend, r);
    if quotes.is_empty() {
        return;
    }
    ui.label(RichText::new("Quoted from the news:").small().weak());
    for q in quotes {
        quote_ui(ui, state, rend, &q.location, &q.quote);
    }
}

/// A small tag (the operation of a step, the stance of a piece of evidence).
fn tag(ui: &mut egui::Ui, text: &str, color: Color32) {
    ui.label(
        RichText::new(format!(" {text} "))
            .monospace()
            .small()
            .color(color)
            .background_color(ui.visuals().faint_bg_color),
    );
}

/// Rationale `r` (its latest revision) in `format`: the structured view when written, else the free text with a
/// "Write …" button; then its verdict, model and unsupported quotes.
pub fn format_body(
    ui: &mut egui::Ui,
    r: &Rationale,
    explain: Option<&RationaleExplain>,
    format: Format,
    state: &mut ExplainState,
    writer: &WriterView,
    out: &mut Vec<AppCommand>,
) {
    let rend = explain.and_then(|e| shown_rendering(e, format));
    let Some(rend) = rend else {
        long_text_ui(ui, &r.text);
        return;
    };
    let missing = format.needs_llm() && rend.format != format;
    match (&rend.status, &rend.content) {
        (Status::Ok, Some(content)) => structured_ui(ui, state, rend, content),
        (Status::Fallback, _) => {
            let notice = rend.notice.as_deref().unwrap_or("the model's answer could not be read; shown as free text");
            ui.label(RichText::new(notice).color(ui.visuals().warn_fg_color));
            long_text_ui(ui, &rend.text);
            quoted_list_ui(ui, state, rend, r.id);
        }
        _ => {
            long_text_ui(ui, &r.text);
            quoted_list_ui(ui, state, rend, r.id);
        }
    }
    if missing {
        ui.horizontal_wrapped(|ui| {
            if writer.rendering == Some((r.id, format)) {
                ui.spinner();
                ui.label(RichText::new(format!("writing the {}…", format.title().to_lowercase())).weak());
            } else {
                let button = egui::Button::new(format!("Write {}", format.title().to_lowercase()));
                if ui
                    .add_enabled(!writer.llm_busy, button)
                    .on_hover_text(format!(
                        "ask the rationale writer to restructure this rationale as {} (stored for next time)",
                        format.title().to_lowercase()
                    ))
                    .on_disabled_hover_text("wait for the running model job (status bar) to finish")
                    .clicked()
                {
                    out.push(AppCommand::RenderFormat { rationale: r.id, format });
                }
                ui.label(RichText::new("not written yet; the free text is shown").small().weak());
            }
        });
        return;
    }
    footer_ui(ui, rend, r.id);
}

/// The format's verdict, the model that wrote it, and how many quotes are not in the news.
fn footer_ui(ui: &mut egui::Ui, rend: &Rendered, r: RationaleId) {
    let unsupported = own_quotes(rend, r).iter().filter(|q| !q.supported()).count();
    let verdict = if rend.format == Format::SideBySide { None } else { rend.verdict };
    if verdict.is_none() && rend.model.is_none() && unsupported == 0 {
        return;
    }
    ui.horizontal_wrapped(|ui| {
        if let Some(v) = verdict {
            ui.label(RichText::new(format!("verdict: {v}")).small().color(verdict_color(v)));
        }
        if let Some(model) = &rend.model {
            ui.label(RichText::new(format!("· written by {model}")).small().weak());
        }
        if unsupported > 0 {
            let s = if unsupported == 1 { "quote" } else { "quotes" };
            ui.label(
                RichText::new(format!("{unsupported} {s} not in the news")).small().color(ui.visuals().warn_fg_color),
            )
            .on_hover_text("quotes that match nothing in the news text are a sign of hallucination");
        }
    });
}

fn structured_ui(ui: &mut egui::Ui, state: &mut ExplainState, rend: &Rendered, content: &Structured) {
    match content {
        Structured::AnnotatedReport { annotations, .. } => {
            for (i, a) in annotations.iter().enumerate() {
                quote_ui(ui, state, rend, &format!("annotations[{i}].quote"), &a.quote);
                ui.indent(("annotation", i), |ui| {
                    ui.label(&a.reasoning);
                });
                ui.add_space(2.0);
            }
        }
        Structured::MarkupAndMask { sentences, .. } => {
            ui.label(RichText::new("Sentences the analysis relies on (marked in the news above):").small().weak());
            for (i, s) in sentences.iter().enumerate() {
                ui.horizontal_wrapped(|ui| {
                    ui.label(format!("{}.", i + 1));
                    quote_ui(ui, state, rend, &format!("sentences[{i}]"), s);
                });
            }
        }
        Structured::Procedural { steps, .. } => {
            for (i, step) in steps.iter().enumerate() {
                ui.horizontal_wrapped(|ui| {
                    ui.label(RichText::new(format!("{}.", i + 1)).strong());
                    tag(ui, step.operation.as_str(), ui.visuals().hyperlink_color);
                    ui.label(&step.detail);
                });
                if let Some(quote) = &step.quote {
                    ui.indent(("step", i), |ui| quote_ui(ui, state, rend, &format!("steps[{i}].quote"), quote));
                }
            }
        }
        Structured::Subquestions { subquestions, .. } => {
            for (i, q) in subquestions.iter().enumerate() {
                ui.label(RichText::new(format!("Q{}: {}", i + 1, q.question)).strong());
                ui.indent(("answer", i), |ui| {
                    ui.label(format!("A: {}", q.answer));
                });
            }
        }
        Structured::DecisionTree { nodes, .. } => {
            for (i, node) in nodes.iter().enumerate() {
                let answer = if node.answer == YesNo::Yes { "yes" } else { "no" };
                let (taken, not_taken) = node.branches();
                ui.label(RichText::new(format!("{}. {}", i + 1, node.question)).strong());
                ui.indent(("node", i), |ui| {
                    ui.label(format!("answer {answer} → {taken}"));
                    ui.label(RichText::new(format!("not taken: {not_taken}")).weak());
                });
            }
        }
        Structured::ClaimCard { claim, evidence, rating, .. } => {
            ui.label(RichText::new(format!("Claim: {claim}")).strong());
            for (i, e) in evidence.iter().enumerate() {
                let (stance, color) = match e.stance {
                    Stance::Supports => ("supports", green(ui)),
                    Stance::Refutes => ("refutes", red(ui)),
                    Stance::Neutral => ("neutral", ui.visuals().weak_text_color()),
                };
                ui.horizontal_wrapped(|ui| {
                    tag(ui, stance, color);
                    quote_ui(ui, state, rend, &format!("evidence[{i}].quote"), &e.quote);
                });
                ui.indent(("evidence", i), |ui| {
                    ui.label(&e.note);
                });
            }
            ui.label(RichText::new(format!("Rating: {rating}")).strong());
        }
    }
}

/// ARG's trust in a side-by-side column, as a small bar.
pub fn trust_ui(ui: &mut egui::Ui, rend: &Rendered, r: RationaleId) {
    let Some(trust) = rend.columns.iter().find(|c| c.rationale.id == r).and_then(|c| c.trust) else { return };
    let w = trust.clamp(0.0, 1.0);
    ui.add(egui::ProgressBar::new(w as f32).desired_width(140.0).text(format!("ARG's trust {w:.2}")))
        .on_hover_text("how much ARG weighs this rationale for this item (w_r, 0 to 1)");
}

/// The sentences of a free text (for the "where" of the feedback).
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        if matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace()) {
            let s = current.trim();
            if !s.is_empty() {
                out.push(s.to_owned());
            }
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_owned());
    }
    out
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

const WHOLE: &str = "whole rationale";

fn verdict_name(v: Option<Verdict>) -> &'static str {
    v.map_or("unknown", Verdict::as_str)
}

/// One line about a repair: revision produced, verdict before → after, reference, success, locality.
pub fn repair_line(r: &RepairRow, revision: Option<u32>) -> String {
    let rep = &r.repair;
    let revision =
        revision.map_or_else(|| format!("rationale {}", rep.repaired_rationale_id), |n| format!("revision {n}"));
    let reference = match (&rep.reference_label, &rep.reference_source) {
        (Some(v), Some(src)) => format!("reference {v} ({src})"),
        (Some(v), None) => format!("reference {v}"),
        _ => "no reference".to_owned(),
    };
    let success = match rep.success {
        Some(true) => "√ success",
        Some(false) => "× no success",
        None => "not scored",
    };
    let locality = rep.locality.map_or_else(|| "locality —".to_owned(), |l| format!("locality {l:.2}"));
    format!(
        "{revision} · verdict {} → {} · {reference} · {success} · {locality}",
        verdict_name(rep.verdict_before),
        verdict_name(rep.verdict_after)
    )
}

/// The feedback form on `r` (its latest revision) shown in `format`: collapsible, autosaved.
#[allow(clippy::too_many_arguments)]
pub fn feedback_ui(
    ui: &mut egui::Ui,
    r: &Rationale,
    explain: &RationaleExplain,
    format: Format,
    rendering: Option<&Rendered>,
    state: &mut ExplainState,
    writer: &WriterView,
    out: &mut Vec<AppCommand>,
) {
    let title = format!("Feedback on this {}", format.title().to_lowercase());
    egui::CollapsingHeader::new(title).id_salt(("feedback", r.id, format)).default_open(false).show(ui, |ui| {
        let saved = explain.form(format);
        let draft = state.forms.entry((r.id, format)).or_insert_with(|| FormDraft::new(r.id, format, saved));
        draft.shown = true;
        if draft.opened_at.is_none() {
            draft.opened_at = Some(Instant::now());
        }
        draft.form.rendering_id = rendering.and_then(|x| x.rendering_id);
        let before = draft.form.clone();
        form_fields_ui(ui, r, rendering, draft, out);
        let f = &draft.form;
        let discrete_change = (f.usefulness, f.sufficiency, f.faithfulness, f.agrees_verdict, &f.fb_where)
            != (before.usefulness, before.sufficiency, before.faithfulness, before.agrees_verdict, &before.fb_where)
            || (f.ease, f.understanding, f.trust) != (before.ease, before.understanding, before.trust);
        if discrete_change {
            draft.save(out);
        }
        apply_ui(ui, explain, saved, writer, out);
    });
}

/// The inputs of the form; text fields save when they lose the keyboard or on Enter (Shift+Enter: new line).
fn form_fields_ui(
    ui: &mut egui::Ui,
    r: &Rationale,
    rendering: Option<&Rendered>,
    draft: &mut FormDraft,
    out: &mut Vec<AppCommand>,
) {
    let f = &mut draft.form;
    ui.horizontal_wrapped(|ui| {
        ui.label("Usefulness:");
        ui.radio_value(&mut f.usefulness, Some(Usefulness::Useful), "useful");
        ui.radio_value(&mut f.usefulness, Some(Usefulness::NotUseful), "not useful");
        ui.radio_value(&mut f.usefulness, Some(Usefulness::Misleading), "misleading");
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("Sufficiency:");
        for (v, name) in [(1, "not sufficient"), (2, "partly sufficient"), (3, "sufficient")] {
            ui.radio_value(&mut f.sufficiency, Some(v), name);
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("Faithfulness to the text:");
        for (v, name) in [(1, "not faithful"), (2, "partly faithful"), (3, "faithful")] {
            ui.radio_value(&mut f.faithfulness, Some(v), name);
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("Agree with the verdict:");
        ui.radio_value(&mut f.agrees_verdict, Some(true), "yes");
        ui.radio_value(&mut f.agrees_verdict, Some(false), "no");
    });
    ui.horizontal(|ui| {
        let label = ui.label("Where:");
        let parts = match rendering.and_then(|x| x.content.as_ref()) {
            Some(content) => content.parts(),
            None => {
                sentences(&r.text).into_iter().enumerate().map(|(i, s)| (format!("sentence {}", i + 1), s)).collect()
            }
        };
        let selected = f.fb_where.as_deref().map_or_else(|| "(choose the faulty part)".to_owned(), |w| shorten(w, 60));
        egui::ComboBox::from_id_salt(("feedback_where", r.id, f.format.clone()))
            .selected_text(selected)
            .width((ui.available_width() - 8.0).clamp(120.0, 520.0))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut f.fb_where, Some(WHOLE.to_owned()), WHOLE);
                for (location, text) in parts {
                    let value = format!("{location}: {text}");
                    ui.selectable_value(&mut f.fb_where, Some(value), shorten(&format!("{location}: {text}"), 90));
                }
            })
            .response
            .on_hover_text("the part of the explanation the problem is in")
            .labelled_by(label.id);
    });
    let text_field = |ui: &mut egui::Ui, name: &str, hint: &str, text: &mut String, dirty: &mut bool| -> bool {
        let label = ui.label(name);
        let response = ui
            .add(
                egui::TextEdit::multiline(text)
                    .hint_text(hint)
                    .desired_rows(2)
                    .desired_width(f32::INFINITY)
                    .return_key(KeyboardShortcut::new(Modifiers::SHIFT, Key::Enter)),
            )
            .labelled_by(label.id);
        if response.changed() {
            *dirty = true;
        }
        let enter = response.has_focus() && ui.input(|i| i.key_pressed(Key::Enter) && !i.modifiers.shift);
        if enter {
            response.surrender_focus();
        }
        (enter || response.lost_focus()) && *dirty
    };
    let mut dirty = draft.text_dirty;
    let save_what = text_field(
        ui,
        "What is wrong:",
        "describe the error (saved when you leave the field or press Enter)",
        &mut draft.what,
        &mut dirty,
    );
    let save_fix = text_field(
        ui,
        "How to fix it:",
        "an actionable fix, without stating the answer (Shift+Enter: new line)",
        &mut draft.fix,
        &mut dirty,
    );
    draft.text_dirty = dirty;
    let f = &mut draft.form;
    let scale =
        |ui: &mut egui::Ui, value: &mut Option<u8>, range: std::ops::RangeInclusive<u8>, name: &str, hint: &str| {
            ui.horizontal(|ui| {
                let mut v = value.unwrap_or((range.start() + range.end()) / 2);
                if ui.add(egui::Slider::new(&mut v, range).text(name)).on_hover_text(hint).changed() {
                    *value = Some(v);
                }
                if value.is_none() {
                    ui.label(RichText::new("not rated").small().weak());
                }
            });
        };
    scale(ui, &mut f.ease, 1..=4, "Ease of giving this feedback", "1 very hard … 4 very easy");
    scale(ui, &mut f.understanding, 1..=7, "Understanding", "I understand how the model reached its verdict (1 … 7)");
    scale(ui, &mut f.trust, 1..=7, "Trust", "I trust this explanation (1 … 7)");
    if save_what || save_fix {
        draft.save(out);
    }
}

/// Saved state, "Apply feedback", the repair being written, and the repairs made from this form.
fn apply_ui(
    ui: &mut egui::Ui,
    explain: &RationaleExplain,
    saved: Option<&FeedbackRow>,
    writer: &WriterView,
    out: &mut Vec<AppCommand>,
) {
    let repairing = match (&writer.repair, saved) {
        (Some((id, text)), Some(row)) if *id == row.id => Some(text),
        _ => None,
    };
    ui.horizontal_wrapped(|ui| {
        match saved {
            Some(row) => {
                let when = row.updated_at.as_deref().unwrap_or(&row.created_at);
                ui.label(RichText::new(format!("saved {when}")).small().weak());
            }
            None => {
                ui.label(RichText::new("not saved yet: every choice is saved as you make it").small().weak());
            }
        }
        if repairing.is_some() {
            ui.spinner();
            ui.label(RichText::new("applying your feedback…").weak());
            return;
        }
        let can_apply = saved.is_some_and(|row| row.form.has_written_feedback());
        let button = ui
            .add_enabled(can_apply && !writer.llm_busy, egui::Button::new("Apply feedback"))
            .on_hover_text(
                "the writer rewrites the rationale as your feedback says; the result is a new revision, and its \
                 verdict is scored against people's verdict (else the gold label)",
            )
            .on_disabled_hover_text(if writer.llm_busy {
                "wait for the running model job (status bar) to finish"
            } else {
                "say what is wrong or how to fix it first"
            });
        if button.clicked()
            && let Some(row) = saved
        {
            out.push(AppCommand::ApplyFeedback { feedback_id: row.id });
        }
    });
    if let Some(text) = repairing {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(if text.is_empty() { "…" } else { text.as_str() });
        });
    }
    let Some(row) = saved else { return };
    let Some(repairs) = explain.repairs.get(&row.id).filter(|r| !r.is_empty()) else { return };
    ui.label(RichText::new("Repairs from this feedback:").small().strong());
    for rep in repairs {
        let revision = explain.revisions.iter().find(|x| x.id == rep.repair.repaired_rationale_id).map(|x| x.revision);
        ui.label(RichText::new(repair_line(rep, revision)).small());
    }
}

/// A word diff as one label: deletions red and struck through, insertions green.
fn diff_ui(ui: &mut egui::Ui, diff: &[Change]) {
    let base = TextFormat {
        font_id: TextStyle::Body.resolve(ui.style()),
        color: ui.visuals().text_color(),
        ..Default::default()
    };
    let (red, green) = (red(ui), green(ui));
    let mut job = LayoutJob::default();
    for (i, change) in diff.iter().enumerate() {
        if i > 0 {
            job.append(" ", 0.0, base.clone());
        }
        match change {
            Change::Equal(t) => job.append(t, 0.0, base.clone()),
            Change::Delete(t) => {
                job.append(t, 0.0, TextFormat { color: red, strikethrough: Stroke::new(1.0, red), ..base.clone() });
            }
            Change::Insert(t) => {
                job.append(t, 0.0, TextFormat { color: green, underline: Stroke::new(1.0, green), ..base.clone() });
            }
        }
    }
    ui.add(egui::Label::new(job));
}

/// Every revision of `r`'s chain, newest first, with a word diff against its parent and "Restore" on the older ones.
pub fn history_ui(
    ui: &mut egui::Ui,
    r: &Rationale,
    explain: &RationaleExplain,
    state: &mut ExplainState,
    out: &mut Vec<AppCommand>,
) {
    let revisions = &explain.revisions;
    let n = revisions.len();
    let title = format!("History ({n} revision{})", if n == 1 { "" } else { "s" });
    egui::CollapsingHeader::new(title).id_salt(("history", r.root_id)).default_open(false).show(ui, |ui| {
        for rev in revisions.iter().rev() {
            ui.horizontal_wrapped(|ui| {
                ui.label(RichText::new(format!("rev {}", rev.revision)).strong());
                ui.label(RichText::new(rev.origin.as_str()).small().monospace());
                let who = rev.author.as_deref().or(rev.model.as_deref()).unwrap_or("—");
                ui.label(RichText::new(who).small());
                match rev.verdict {
                    Some(v) => ui.label(RichText::new(format!("verdict {v}")).small().color(verdict_color(v))),
                    None => ui.label(RichText::new("verdict unknown").small().weak()),
                };
                ui.label(RichText::new(&rev.created_at).small().weak());
                if rev.id == r.id {
                    ui.label(RichText::new("(shown)").small().weak());
                } else if ui
                    .small_button("Restore")
                    .on_hover_text(format!(
                        "bring back revision {}'s text and verdict as a new revision (nothing is deleted)",
                        rev.revision
                    ))
                    .clicked()
                {
                    out.push(AppCommand::Studio(Command::RestoreRevision(rev.id)));
                }
            });
            if rev.id == r.id
                && let Some(p) = &explain.produced_by
            {
                let format =
                    Format::parse(&p.repair.format).map_or_else(|| p.repair.format.clone(), |f| f.title().to_owned());
                ui.label(
                    RichText::new(format!(
                        "repaired from feedback on the {}: {}",
                        format.to_lowercase(),
                        repair_line(p, Some(rev.revision))
                    ))
                    .small()
                    .weak(),
                );
            }
            let parent = rev.parent_id.and_then(|id| revisions.iter().find(|p| p.id == id));
            ui.indent(("revision", rev.id), |ui| match parent {
                Some(parent) => {
                    if parent.verdict != rev.verdict {
                        ui.label(
                            RichText::new(format!(
                                "verdict {} → {}",
                                verdict_name(parent.verdict),
                                verdict_name(rev.verdict)
                            ))
                            .small(),
                        );
                    }
                    let diff =
                        state.diffs.entry((parent.id, rev.id)).or_insert_with(|| word_diff(&parent.text, &rev.text));
                    if diff.iter().all(|c| matches!(c, Change::Equal(_))) {
                        ui.label(RichText::new("text unchanged").small().weak());
                    } else {
                        diff_ui(ui, diff);
                    }
                }
                None => {
                    ui.label(RichText::new(&rev.text).weak());
                }
            });
            ui.add_space(4.0);
        }
    });
}

/// How often feedback given on each format led to a successful repair (from the app's cached repair statistics).
pub fn repair_stats_ui(ui: &mut egui::Ui, stats: &[FormatRepairStats]) {
    egui::CollapsingHeader::new("Repairs by format").id_salt("repair_stats").default_open(false).show(ui, |ui| {
        if stats.is_empty() {
            ui.label(RichText::new("No feedback with written corrections yet.").weak());
            return;
        }
        egui::Grid::new("repair_stats_grid").num_columns(5).striped(true).show(ui, |ui| {
            for head in ["format", "feedback", "repairs", "successful", "rate"] {
                ui.label(RichText::new(head).small().weak());
            }
            ui.end_row();
            for s in stats {
                ui.label(Format::parse(&s.format).map_or_else(|| s.format.clone(), |f| f.title().to_owned()));
                ui.label(s.feedback.to_string());
                ui.label(s.repairs.to_string());
                ui.label(format!("{} of {} scored", s.successes, s.scored));
                ui.label(s.success_rate().map_or_else(|| "—".to_owned(), |r| format!("{:.0} %", r * 100.0)));
                ui.end_row();
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_on_end_marks() {
        assert_eq!(
            sentences("It is fake. The 3.5 figure is wrong! Why? no end"),
            vec!["It is fake.", "The 3.5 figure is wrong!", "Why?", "no end"]
        );
    }
}
