//! Participant mode (Studies ▸ Run a participant…): the whole window shows one participant's run through a study
//! and nothing else (no menus, item list or other panels; full screen in the real window). The steps come from
//! [`crate::studies::flow::Session`]: consent, instructions, practice items with their feedback, the items in the
//! assigned order and condition (the news and the rationale in the condition's format, drawn with the explanation
//! views; the model's verdict only when the condition shows it), attention checks, the questionnaire, and the end
//! with the completion code.
//!
//! Keys: Enter submits the step (the library says what is missing), Tab / Shift+Tab move between questions, the
//! number keys pick an answer of the focused question (or of the first unanswered one when none has the keyboard)
//! and move on to the next question, ← / → change the focused question's answer. Every answer is committed by the
//! workspace before the next step shows (`AppCommand::AnswerStep`). Timing per step: time to the first input event,
//! total time, and how often the window lost focus.

use std::collections::HashMap;
use std::time::Instant;

use egui::{Event, Id, Key, Modifiers, RichText};

use super::command::AppCommand;
use super::explain::{self, ExplainState};
use super::item_list::verdict_color;
use super::window::{Placement, studio_window};
use super::writer_view::WriterView;
use crate::formats::Format;
use crate::formats::generate::Rendered;
use crate::store::studies::Timing;
use crate::studies::flow::{Answered, Asked, Session, Step};
use crate::studies::spec::AnswerKind;
use crate::studio::{RationaleExplain, StudyItemShown, Workspace};

/// How long the step has been shown, when the participant first acted on it, and focus changes.
struct StepTimer {
    started: Instant,
    first_action: Option<Instant>,
    focus_lost: u32,
    was_focused: bool,
}

impl StepTimer {
    fn new() -> Self {
        Self { started: Instant::now(), first_action: None, focus_lost: 0, was_focused: true }
    }

    /// Notes this frame's input: the first input event, and the window losing focus.
    fn observe(&mut self, ctx: &egui::Context) {
        let (acted, focused) = ctx.input(|i| {
            let acted = i.events.iter().any(|e| match e {
                Event::Key { pressed, .. } => *pressed,
                Event::PointerButton { pressed, .. } => *pressed,
                Event::Text(_) | Event::Paste(_) => true,
                _ => false,
            });
            (acted, i.focused)
        });
        if acted && self.first_action.is_none() {
            self.first_action = Some(Instant::now());
        }
        if self.was_focused && !focused {
            self.focus_lost += 1;
        }
        self.was_focused = focused;
    }

    fn timing(&self) -> Timing {
        let ms = |t: Instant| t.duration_since(self.started).as_millis() as i64;
        let total_ms = ms(Instant::now());
        Timing { first_action_ms: self.first_action.map_or(total_ms, ms), total_ms, focus_lost: self.focus_lost }
    }
}

/// A practice item's feedback, shown after it was answered.
struct PracticeFeedback {
    text: String,
    correct: Option<bool>,
}

/// One participant's run in the studio.
pub struct ParticipantRun {
    session: Session,
    /// The current step, its index and its questions (read when it starts).
    step: Step,
    step_index: usize,
    asked: Vec<Asked>,
    /// The item of a practice or item step, as the participant sees it.
    shown: Option<StudyItemShown>,
    load_error: Option<String>,
    /// Answers given so far on this step, by question key.
    answers: HashMap<String, String>,
    /// What the library said of the last submission (a missing or wrong answer).
    error: Option<String>,
    feedback: Option<PracticeFeedback>,
    timer: StepTimer,
    /// The step (1-based) a resumed run started at, shown until its first answer.
    resumed_at: Option<usize>,
    explain: ExplainState,
    /// Give the first question the keyboard when the window has it.
    focus_first: bool,
}

impl ParticipantRun {
    /// A run over a started (or resumed) session; reads the current step.
    pub fn new(session: Session, ws: &Workspace) -> Self {
        let (next, total) = session.progress();
        let mut run = Self {
            step: session.current(),
            step_index: next,
            asked: Vec::new(),
            shown: None,
            load_error: None,
            answers: HashMap::new(),
            error: None,
            feedback: None,
            timer: StepTimer::new(),
            resumed_at: (next > 0 && next < total).then_some(next + 1),
            explain: ExplainState::default(),
            focus_first: true,
            session,
        };
        run.load(ws);
        run
    }

    /// The session (to answer its step through the workspace).
    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    /// The participant's code.
    pub fn code(&self) -> &str {
        &self.session.participant().code
    }

    /// The study's name and version.
    pub fn study(&self) -> (&str, u32) {
        (&self.session.study().name, self.session.study().version)
    }

    /// (index of the current step, steps before the end) and the step.
    pub fn current(&self) -> (usize, usize, &Step) {
        (self.step_index, self.session.progress().1, &self.step)
    }

    /// The step (1-based) this run resumed at, until the first answer.
    pub fn resumed_at(&self) -> Option<usize> {
        self.resumed_at
    }

    /// What the library said of the last submission.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Reads the current step from the session and, for an item, what it shows (once per step).
    fn load(&mut self, ws: &Workspace) {
        self.step = self.session.current();
        self.step_index = self.session.progress().0;
        self.asked = self.session.asked();
        self.answers.clear();
        self.error = None;
        self.load_error = None;
        self.shown = None;
        if let Some(view) = self.step.view() {
            match ws.study_item(view) {
                Ok(mut shown) => {
                    // The participant sees the model's verdict only beside the explanation, and only when the
                    // condition says so; never in the format's footer, nor which model wrote it.
                    if let Some(r) = &mut shown.rendered {
                        r.verdict = None;
                        r.model = None;
                    }
                    self.shown = Some(shown);
                }
                Err(err) => self.load_error = Some(format!("{err:#}")),
            }
        }
        self.timer = StepTimer::new();
        self.focus_first = true;
    }

    /// The step was answered (and stored): show a practice item's feedback, then the next step.
    pub fn answered(&mut self, answered: Answered, ws: &Workspace) {
        self.resumed_at = None;
        if let Some(text) = answered.feedback {
            self.feedback = Some(PracticeFeedback { text, correct: answered.correct });
        }
        self.load(ws);
    }

    /// The library refused the answers: say why and stay on the step.
    pub fn refused(&mut self, error: String) {
        self.error = Some(error);
    }

    /// The answers as the library takes them, in the questions' order (unanswered ones left out).
    fn answer_list(&self) -> Vec<(String, String)> {
        self.asked
            .iter()
            .filter_map(|a| {
                let v = self.answers.get(&a.key)?.trim();
                (!v.is_empty()).then(|| (a.key.clone(), v.to_owned()))
            })
            .collect()
    }

    /// The id that takes the keyboard for question `i` of the current step.
    fn focus_id(&self, i: usize) -> Id {
        let a = &self.asked[i];
        match a.answer {
            AnswerKind::Text => Id::unique(("participant_text", self.step_index, &a.key)),
            _ => Id::unique(("participant_question", self.step_index, &a.key)),
        }
    }
}

/// The values of a choice or scale question, with what the participant reads for each.
fn options_of(a: &Asked) -> Vec<(String, String)> {
    match &a.answer {
        AnswerKind::Choice { options } => options
            .iter()
            .map(|o| {
                let shown = match (a.key.as_str(), o.as_str()) {
                    ("consent", "yes") => "Agree".to_owned(),
                    ("consent", "no") => "Decline".to_owned(),
                    _ => o.replace('_', " "),
                };
                (o.clone(), shown)
            })
            .collect(),
        AnswerKind::Scale { min, max, labels } => {
            let every = labels.len() == usize::from(max - min) + 1;
            (*min..=*max)
                .enumerate()
                .map(|(i, v)| {
                    let shown = if every { format!("{v} {}", labels[i]) } else { v.to_string() };
                    (v.to_string(), shown)
                })
                .collect()
        }
        AnswerKind::Text => Vec::new(),
    }
}

const NUMBER_KEYS: [Key; 9] =
    [Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5, Key::Num6, Key::Num7, Key::Num8, Key::Num9];

/// Draws participant mode over the whole window; returns the commands it emits.
pub fn participant_ui(ui: &mut egui::Ui, run: &mut ParticipantRun) -> Vec<AppCommand> {
    let ctx = ui.ctx().clone();
    let mut out = Vec::new();
    run.timer.observe(&ctx);
    let done = matches!(run.step, Step::Done { .. });
    // (Shift+Enter is a new line in a text answer.)
    let enter = !done && ctx.input_mut(|i| !i.modifiers.shift && i.consume_key(Modifiers::NONE, Key::Enter));
    egui::CentralPanel::default().show(ui, |ui| {
        egui::ScrollArea::vertical().id_salt("participant").auto_shrink([false, false]).show(ui, |ui| {
            let width = ui.available_width().min(880.0);
            let margin = ((ui.available_width() - width) / 2.0).max(0.0);
            ui.horizontal(|ui| {
                ui.add_space(margin);
                ui.vertical(|ui| {
                    ui.set_width(width);
                    header_ui(ui, run);
                    ui.add_space(8.0);
                    if run.feedback.is_some() {
                        feedback_ui(ui, run, enter);
                    } else {
                        step_ui(ui, run, enter, &mut out);
                    }
                });
            });
        });
    });
    out
}

fn header_ui(ui: &mut egui::Ui, run: &ParticipantRun) {
    let (index, total, _) = run.current();
    if total > 0 && !matches!(run.step, Step::Done { .. }) {
        let shown = (index + 1).min(total);
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Step {shown} of {total}")).weak());
            ui.add(egui::ProgressBar::new(index as f32 / total as f32).desired_width(240.0));
        });
    }
    if let Some(at) = run.resumed_at {
        ui.label(RichText::new(format!("Resuming at step {at}")).color(ui.visuals().warn_fg_color))
            .on_hover_text("this participant code already started the study: the run continues where it stopped");
    }
}

fn feedback_ui(ui: &mut egui::Ui, run: &mut ParticipantRun, enter: bool) {
    let Some(fb) = &run.feedback else { return };
    ui.heading("Feedback on the practice item");
    match fb.correct {
        Some(true) => {
            ui.label(
                RichText::new("Your verdict matches the known label.")
                    .color(verdict_color(crate::domain::Verdict::Real)),
            );
        }
        Some(false) => {
            ui.label(
                RichText::new("Your verdict differs from the known label.")
                    .color(verdict_color(crate::domain::Verdict::Fake)),
            );
        }
        None => {}
    }
    ui.add_space(4.0);
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(RichText::new(&fb.text).size(16.0));
    });
    ui.add_space(8.0);
    let button = ui.add(egui::Button::new(RichText::new("Continue (Enter)").strong()));
    if enter || button.clicked() {
        run.feedback = None;
        // The next step starts now, not when its predecessor was answered.
        run.timer = StepTimer::new();
        run.focus_first = true;
    }
}

fn step_ui(ui: &mut egui::Ui, run: &mut ParticipantRun, enter: bool, out: &mut Vec<AppCommand>) {
    match run.step.clone() {
        Step::Consent { text } => {
            ui.heading("Consent");
            text_block(ui, &text);
        }
        Step::Instructions { text } => {
            ui.heading("Instructions");
            text_block(ui, &text);
        }
        Step::Practice { index, .. } => {
            ui.heading(format!("Practice item {}", index + 1));
            ui.label(RichText::new("This item is for practice: you will see feedback after answering.").weak());
            item_ui(ui, run, out);
        }
        Step::Item { position, .. } => {
            let items = run.session.steps().iter().filter(|s| matches!(s, Step::Item { .. })).count();
            ui.heading(format!("Item {} of {items}", position + 1));
            item_ui(ui, run, out);
        }
        Step::Attention { .. } => {
            ui.heading("A quick check");
        }
        Step::Questionnaire { .. } => {
            ui.heading("A few last questions");
        }
        Step::Done { completion_code } => {
            done_ui(ui, run, completion_code.as_deref(), out);
            return;
        }
    }
    ui.add_space(8.0);
    questions_ui(ui, run);
    ui.add_space(8.0);
    if let Some(err) = &run.error {
        ui.colored_label(ui.visuals().error_fg_color, err);
    }
    let label = if run.asked.is_empty() { "Continue (Enter)" } else { "Submit (Enter)" };
    let button = ui.add(egui::Button::new(RichText::new(label).strong()).min_size(egui::vec2(140.0, 28.0)));
    if enter || button.clicked() {
        out.push(AppCommand::AnswerStep { answers: run.answer_list(), timing: run.timer.timing() });
    }
}

fn text_block(ui: &mut egui::Ui, text: &str) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(RichText::new(text).size(16.0));
    });
}

fn done_ui(ui: &mut egui::Ui, run: &ParticipantRun, code: Option<&str>, out: &mut Vec<AppCommand>) {
    ui.add_space(40.0);
    match code {
        Some(code) => {
            ui.heading("Thank you!");
            ui.label("You have completed the study. Your completion code is:");
            ui.label(RichText::new(code).monospace().size(26.0).strong());
        }
        None => {
            ui.heading("Thank you");
            ui.label("You declined to take part; nothing more is asked and no answers were recorded.");
        }
    }
    ui.add_space(30.0);
    ui.label(
        RichText::new(format!("participant {} · {} v{}", run.code(), run.study().0, run.study().1)).small().weak(),
    );
    if ui.button("Back to the studio").clicked() {
        out.push(AppCommand::LeaveParticipantMode);
    }
}

/// The news and the rationale in the condition's format.
fn item_ui(ui: &mut egui::Ui, run: &mut ParticipantRun, out: &mut Vec<AppCommand>) {
    if let Some(err) = &run.load_error {
        ui.colored_label(ui.visuals().error_fg_color, format!("This item cannot be shown: {err}"));
        return;
    }
    let Some(view) = run.step.view().cloned() else { return };
    let Some(shown) = &run.shown else { return };
    run.explain.begin(Some(view.item), out);
    if let Some(title) = shown.item.title.as_deref().filter(|t| !t.trim().is_empty()) {
        ui.label(RichText::new(title).strong().size(17.0));
    }
    let mut spans = Vec::new();
    if let (Some(rend), Some(r)) = (&shown.rendered, &shown.rationale) {
        explain::highlights(rend, r.id, &mut spans);
    }
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        if let Some(key) = explain::news_ui(ui, &shown.item.text, &spans, &[], run.explain.hovered.as_ref()) {
            run.explain.hover(key);
        }
    });
    ui.add_space(6.0);
    match (&shown.rationale, &shown.rendered) {
        (Some(r), Some(rend)) => {
            ui.label(RichText::new("Explanation").strong());
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_width(ui.available_width());
                if rend.format == Format::SideBySide {
                    side_by_side_ui(ui, rend);
                } else {
                    let explain = RationaleExplain { renderings: vec![rend.clone()], ..Default::default() };
                    // Nothing the participant can start: the writer counts as busy, and the format shown is the
                    // one stored (so no "write" button appears).
                    let writer = WriterView { llm_busy: true, ..Default::default() };
                    explain::format_body(ui, r, Some(&explain), rend.format, &mut run.explain, &writer, out);
                }
            });
        }
        _ => {
            ui.label(RichText::new("This item has no explanation.").weak());
        }
    }
    if let Some(v) = view.model_verdict {
        ui.horizontal(|ui| {
            ui.label("The model's verdict:");
            ui.label(RichText::new(v.human_name()).strong().color(verdict_color(v)));
        });
    }
    run.explain.end(ui.ctx(), out);
}

/// Side by side: every perspective's rationale in a column of its own.
fn side_by_side_ui(ui: &mut egui::Ui, rend: &Rendered) {
    if rend.columns.is_empty() {
        ui.label(&rend.text);
        return;
    }
    ui.columns(rend.columns.len(), |columns| {
        for (ui, c) in columns.iter_mut().zip(&rend.columns) {
            ui.with_layout(egui::Layout::top_down(egui::Align::LEFT), |ui| {
                ui.label(RichText::new(&c.name).strong());
                explain::trust_ui(ui, rend, c.rationale.id);
                ui.label(&c.text);
            });
        }
    });
}

/// The questions of the step, with the number keys, arrows and focus moves.
fn questions_ui(ui: &mut egui::Ui, run: &mut ParticipantRun) {
    if run.asked.is_empty() {
        return;
    }
    let ctx = ui.ctx().clone();
    let ids: Vec<Id> = (0..run.asked.len()).map(|i| run.focus_id(i)).collect();
    let focused_widget = ctx.memory(|m| m.focused());
    if run.focus_first && ctx.input(|i| i.focused) {
        run.focus_first = false;
        if focused_widget.is_none_or(|f| !ids.contains(&f)) {
            ctx.memory_mut(|m| m.request_focus(ids[0]));
        }
    }
    let focused = ctx.memory(|m| m.focused());
    let picks = |a: &Asked| !matches!(a.answer, AnswerKind::Text);
    // The question the number keys answer: the focused one, else (nothing has the keyboard) the first unanswered.
    let target = match focused {
        Some(f) => ids.iter().position(|id| *id == f).filter(|&i| picks(&run.asked[i])),
        None => (0..run.asked.len()).find(|&i| picks(&run.asked[i]) && !run.answers.contains_key(&run.asked[i].key)),
    };
    if let Some(q) = target {
        let options = options_of(&run.asked[q]);
        let current = run.answers.get(&run.asked[q].key).and_then(|v| options.iter().position(|(o, _)| o == v));
        let mut picked = None;
        let mut stepped = None;
        ctx.input_mut(|i| {
            for (n, key) in NUMBER_KEYS.iter().enumerate().take(options.len()) {
                if i.consume_key(Modifiers::NONE, *key) {
                    picked = Some(n);
                    // The same key press as text must not land in the next field.
                    let digit = (n + 1).to_string();
                    i.events.retain(|e| !matches!(e, Event::Text(t) if *t == digit));
                }
            }
            if focused.is_some() {
                if i.consume_key(Modifiers::NONE, Key::ArrowRight) {
                    stepped = Some(current.map_or(0, |c| (c + 1).min(options.len() - 1)));
                }
                if i.consume_key(Modifiers::NONE, Key::ArrowLeft) {
                    stepped = Some(current.map_or(0, |c| c.saturating_sub(1)));
                }
            }
        });
        if let Some(n) = picked.or(stepped) {
            run.answers.insert(run.asked[q].key.clone(), options[n].0.clone());
            run.error = None;
        }
        if picked.is_some() {
            // On to the next question.
            let next = ids.get(q + 1).copied().unwrap_or(ids[q]);
            ctx.memory_mut(|m| m.request_focus(next));
        }
    }
    for (a, id) in run.asked.clone().iter().zip(ids) {
        ui.add_space(6.0);
        match a.answer {
            AnswerKind::Text => text_question_ui(ui, run, a, id),
            _ => choice_question_ui(ui, run, a, id),
        }
    }
}

fn prompt_text(a: &Asked) -> String {
    if a.required { a.prompt.clone() } else { format!("{} (optional)", a.prompt) }
}

fn choice_question_ui(ui: &mut egui::Ui, run: &mut ParticipantRun, a: &Asked, id: Id) {
    let options = options_of(a);
    let has_focus = ui.memory(|m| m.has_focus(id));
    if has_focus {
        // ← / → change the answer instead of moving the keyboard elsewhere.
        ui.memory_mut(|m| {
            m.set_focus_lock_filter(id, egui::EventFilter { horizontal_arrows: true, ..Default::default() })
        });
    }
    let ends = match &a.answer {
        AnswerKind::Scale { labels, .. } if labels.len() == 2 && options.len() != 2 => Some(labels.clone()),
        _ => None,
    };
    let inner = ui.vertical(|ui| {
        ui.label(RichText::new(prompt_text(a)).strong());
        ui.horizontal_wrapped(|ui| {
            if let Some(ends) = &ends {
                ui.label(RichText::new(&ends[0]).weak());
            }
            for (n, (value, shown)) in options.iter().enumerate() {
                let selected = run.answers.get(&a.key) == Some(value);
                let text = if matches!(a.answer, AnswerKind::Scale { .. }) {
                    RichText::new(shown.clone())
                } else {
                    RichText::new(format!("{}  {shown}", n + 1))
                };
                let chip =
                    egui::Button::selectable(selected, text).sense(egui::Sense::CLICK).min_size(egui::vec2(36.0, 28.0));
                if ui.add(chip).clicked() {
                    run.answers.insert(a.key.clone(), value.clone());
                    run.error = None;
                    ui.memory_mut(|m| m.request_focus(id));
                }
            }
            if let Some(ends) = &ends {
                ui.label(RichText::new(&ends[1]).weak());
            }
        });
    });
    let rect = inner.response.rect.expand(4.0);
    let group = ui.interact(rect, id, egui::Sense::FOCUSABLE);
    let answer = run.answers.get(&a.key).cloned();
    group.widget_info(|| {
        let mut info = egui::WidgetInfo::labeled(egui::Role::RadioGroup, true, &a.prompt);
        info.current_text_value = answer.clone();
        info
    });
    if group.has_focus() {
        ui.painter().rect_stroke(rect, 4.0, ui.visuals().selection.stroke, egui::StrokeKind::Outside);
    }
}

fn text_question_ui(ui: &mut egui::Ui, run: &mut ParticipantRun, a: &Asked, id: Id) {
    let label = ui.label(RichText::new(prompt_text(a)).strong());
    let text = run.answers.entry(a.key.clone()).or_default();
    let response = ui
        .add(
            egui::TextEdit::multiline(text)
                .id(id)
                .hint_text("Enter: submit · Shift+Enter: new line")
                .desired_rows(2)
                .desired_width(f32::INFINITY)
                .return_key(egui::KeyboardShortcut::new(Modifiers::SHIFT, Key::Enter)),
        )
        .labelled_by(label.id);
    if response.changed() {
        run.error = None;
    }
}

/// Studies ▸ Run a participant…: which study, and the participant's code.
#[derive(Default)]
pub struct RunDialog {
    /// The registered studies, read when the dialog opens.
    pub studies: Vec<String>,
    pub study: String,
    pub code: String,
    /// Why the last start failed.
    pub error: Option<String>,
    /// The code field has been given the keyboard once.
    pub focused_once: bool,
}

/// Draws the dialog; returns the commands it emits and whether it stays open.
pub fn run_dialog_window(ctx: &egui::Context, dialog: &mut RunDialog) -> (Vec<AppCommand>, bool) {
    let mut out = Vec::new();
    let mut open = true;
    studio_window("Run a participant", &mut open, Placement::Dialog).show(ctx, |ui| {
        if dialog.studies.is_empty() {
            ui.label("No study is registered in this database: register one in the Study designer first.");
            return;
        }
        ui.horizontal(|ui| {
            let label = ui.label("Study:");
            egui::ComboBox::from_id_salt("run_study")
                .selected_text(dialog.study.clone())
                .show_ui(ui, |ui| {
                    for name in &dialog.studies {
                        ui.selectable_value(&mut dialog.study, name.clone(), name);
                    }
                })
                .response
                .labelled_by(label.id);
        });
        let edit = ui
            .horizontal(|ui| {
                let label = ui.label("Participant code:");
                ui.add(egui::TextEdit::singleline(&mut dialog.code).hint_text("e.g. P017").desired_width(200.0))
                    .labelled_by(label.id)
            })
            .inner;
        // The code field takes the keyboard once the window has it (as the annotator's name field does).
        if !dialog.focused_once && ui.input(|i| i.focused) {
            edit.request_focus();
            dialog.focused_once = true;
        }
        ui.label(
            RichText::new(
                "The same code resumes a participant where they stopped. The window then shows only the study \
                     (full screen) until its end.",
            )
            .small()
            .weak(),
        );
        if let Some(err) = &dialog.error {
            ui.colored_label(ui.visuals().error_fg_color, err);
        }
        let ready = !dialog.study.is_empty() && !dialog.code.trim().is_empty();
        let entered = edit.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter));
        if (ui.add_enabled(ready, egui::Button::new("Start")).clicked() || entered) && ready {
            out.push(AppCommand::StartParticipant { study: dialog.study.clone(), code: dialog.code.trim().to_owned() });
        }
    });
    (out, open)
}
