//! Studies ▸ Study designer: open a study file (or start from the bundled example), edit its main fields, see
//! `StudySpec::validate`'s error (naming the field) as you type, save it as TOML, register it in the database, and
//! preview the plans of the first four participants (the condition and item at every position).
//!
//! The draft is a [`StudySpec`]; fields that are lists in the file (item ids, gold items, attention options) are
//! edited as comma-separated text. Validation is pure and runs when the draft changes; the preview needs the
//! database (the item set is resolved there) and is asked of the app (`AppCommand::PreviewStudy`) on a change.

use std::path::{Path, PathBuf};

use egui::RichText;

use super::command::AppCommand;
use super::window::{Placement, studio_window};
use crate::domain::{ItemId, Verdict};
use crate::formats::Format;
use crate::store::studies::RegisterOutcome;
use crate::studies::assign::{Plan, PlanStep};
use crate::studies::spec::{
    AttentionChecks, Condition, Design, ItemOrder, PracticeItem, Question, QuestionnaireItem, QuestionnaireKind,
    StudySpec,
};
use crate::studio::Command;

/// The example study shipped with Argus (`assets/studies/formats-within.toml`).
pub const EXAMPLE: &str = include_str!("../../assets/studies/formats-within.toml");

/// The designer's state: the draft, its text fields, validation, the preview and the last message.
pub struct DesignerState {
    pub open: bool,
    spec: StudySpec,
    ids_text: String,
    gold_text: String,
    use_filter: bool,
    options_text: String,
    /// The path field (open / save).
    pub path: String,
    /// A list field that does not parse, or `validate()`'s error; `None` when the draft is valid.
    problem: Option<String>,
    /// The draft (and list-field problem) last checked: validation and preview are redone when it changes.
    checked: Option<(StudySpec, Option<String>)>,
    /// The plans of the first participants, or why there are none.
    preview: Option<Result<Vec<Plan>, String>>,
    /// What the last open, save or register did (text, is an error).
    message: Option<(String, bool)>,
}

impl Default for DesignerState {
    fn default() -> Self {
        let spec = StudySpec::from_toml(EXAMPLE).expect("the bundled example study parses");
        let mut state = Self {
            open: false,
            ids_text: String::new(),
            gold_text: String::new(),
            use_filter: false,
            options_text: String::new(),
            path: String::new(),
            problem: None,
            checked: None,
            preview: None,
            message: None,
            spec: spec.clone(),
        };
        state.set_spec(spec);
        state
    }
}

fn join_ids(ids: &[ItemId]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn parse_ids(field: &str, text: &str) -> Result<Vec<ItemId>, String> {
    text.split([',', ' ', ';'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<ItemId>().map_err(|_| format!("{field}: `{t}` is not an item id")))
        .collect()
}

impl DesignerState {
    /// Replaces the draft (after opening a file or the example).
    fn set_spec(&mut self, spec: StudySpec) {
        self.ids_text = join_ids(&spec.items.ids);
        self.gold_text = join_ids(&spec.gold_items);
        self.use_filter = spec.items.is_filter();
        self.options_text = spec.attention_checks.as_ref().map(|a| a.options.join(", ")).unwrap_or_default();
        self.spec = spec;
        self.checked = None;
        self.preview = None;
    }

    /// The draft.
    pub fn spec(&self) -> &StudySpec {
        &self.spec
    }

    /// What is wrong with the draft (`None`: it validates).
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// The last message (open, save, register).
    pub fn message(&self) -> Option<&str> {
        self.message.as_ref().map(|(m, _)| m.as_str())
    }

    /// Opens a study file into the draft.
    pub fn open_file(&mut self, path: &Path) {
        match StudySpec::load(path) {
            Ok(spec) => {
                self.set_spec(spec);
                self.path = path.display().to_string();
                self.message = Some((format!("Opened {}", path.display()), false));
            }
            Err(err) => self.message = Some((err.to_string(), true)),
        }
    }

    /// Starts from the bundled example study.
    pub fn open_example(&mut self) {
        if let Ok(spec) = StudySpec::from_toml(EXAMPLE) {
            self.set_spec(spec);
            self.message = Some(("Started from the example study (formats-within).".into(), false));
        }
    }

    /// Writes the draft as TOML to `path`.
    fn save_to(&mut self, path: &Path) {
        let written =
            self.spec.to_toml().map_err(|e| e.to_string()).and_then(|text| {
                std::fs::write(path, text).map_err(|e| format!("{}: cannot write: {e}", path.display()))
            });
        self.message = Some(match written {
            Ok(()) => {
                self.path = path.display().to_string();
                (format!("Saved {}", path.display()), false)
            }
            Err(err) => (err, true),
        });
    }

    /// The preview the app computed for the draft.
    pub fn set_preview(&mut self, preview: Result<Vec<Plan>, String>) {
        self.preview = Some(preview);
    }

    /// What registering did, as the app was told.
    pub fn registered(&mut self, name: &str, version: u32, outcome: RegisterOutcome) {
        let what = match outcome {
            RegisterOutcome::Created => format!("Registered `{name}`: new study, version {version} (a draft)."),
            RegisterOutcome::ReplacedDraft => {
                format!("Registered `{name}`: replaced the draft of version {version} (no participant had started).")
            }
            RegisterOutcome::NewVersion => format!(
                "Registered `{name}` as version {version}: a new version, because version {} is frozen (participants \
                 started it).",
                version.saturating_sub(1)
            ),
            RegisterOutcome::Unchanged => format!("`{name}` version {version} is already registered as it is."),
        };
        self.message = Some((what, false));
    }

    /// Registering failed.
    pub fn register_failed(&mut self, error: String) {
        self.message = Some((format!("Not registered: {error}"), true));
    }

    /// Copies the list fields into the draft and validates it when it changed. Returns `None` when nothing
    /// changed, else the draft to preview when it is valid.
    fn check(&mut self) -> Option<Option<StudySpec>> {
        let mut parse_problem = None;
        if self.use_filter {
            self.spec.items.ids.clear();
        } else {
            match parse_ids("items.ids", &self.ids_text) {
                Ok(ids) => self.spec.items.ids = ids,
                Err(e) => parse_problem = Some(e),
            }
            let set = &mut self.spec.items;
            (set.dataset, set.label, set.with_rationale_from, set.limit) = (None, None, None, None);
        }
        match parse_ids("gold_items", &self.gold_text) {
            Ok(gold) => self.spec.gold_items = gold,
            Err(e) => parse_problem = parse_problem.or(Some(e)),
        }
        if let Some(a) = &mut self.spec.attention_checks {
            a.options = self.options_text.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect();
        }
        let input = (self.spec.clone(), parse_problem.clone());
        if self.checked.as_ref() == Some(&input) {
            return None;
        }
        self.checked = Some(input);
        self.problem = parse_problem.or_else(|| self.spec.validate().err().map(|e| e.to_string()));
        if self.problem.is_some() {
            self.preview = None;
            return Some(None);
        }
        Some(Some(self.spec.clone()))
    }
}

/// Draws the designer window while `state.open`; returns the commands it emits.
pub fn designer_window(ctx: &egui::Context, state: &mut DesignerState) -> Vec<AppCommand> {
    let mut out = Vec::new();
    let mut open = state.open;
    studio_window("Study designer", &mut open, Placement::Panel { pos: [24.0, 36.0], size: [900.0, 700.0] }).show(
        ctx,
        |ui| {
            file_ui(ui, state);
            status_ui(ui, state, &mut out);
            ui.separator();
            main_fields_ui(ui, state);
            ui.separator();
            conditions_ui(ui, &mut state.spec);
            ui.separator();
            attention_ui(ui, state);
            ui.separator();
            questions_ui(ui, &mut state.spec);
            ui.separator();
            questionnaire_ui(ui, &mut state.spec);
            ui.separator();
            practice_ui(ui, &mut state.spec);
            ui.separator();
            texts_ui(ui, &mut state.spec);
            if let Some(valid) = state.check() {
                // The status line above shows the new verdict in the next frame.
                ui.ctx().request_repaint();
                if let Some(spec) = valid {
                    out.push(AppCommand::PreviewStudy(Box::new(spec)));
                }
            }
            ui.separator();
            preview_ui(ui, state);
        },
    );
    if !open {
        out.push(AppCommand::ToggleStudyDesigner);
    }
    out
}

fn labelled_text(ui: &mut egui::Ui, label: &str, text: &mut String, width: f32, hint: &str) -> egui::Response {
    let l = ui.label(label);
    ui.add(egui::TextEdit::singleline(text).desired_width(width).hint_text(hint)).labelled_by(l.id)
}

fn file_ui(ui: &mut egui::Ui, state: &mut DesignerState) {
    ui.horizontal_wrapped(|ui| {
        if ui.button("Open…").on_hover_text("open a study file (TOML or JSON)").clicked()
            && let Some(path) = rfd::FileDialog::new().add_filter("Study file", &["toml", "json"]).pick_file()
        {
            state.open_file(&path);
        }
        if ui.button("Start from the example").clicked() {
            state.open_example();
        }
        labelled_text(ui, "File:", &mut state.path, 320.0, "path of a study file (.toml)");
        let path = PathBuf::from(state.path.trim());
        let has_path = !state.path.trim().is_empty();
        if ui.add_enabled(has_path, egui::Button::new("Open file")).clicked() {
            state.open_file(&path);
        }
        if ui.add_enabled(has_path, egui::Button::new("Save")).on_hover_text("write the draft as TOML").clicked() {
            state.save_to(&path);
        }
        if ui.button("Save as…").clicked()
            && let Some(path) = rfd::FileDialog::new().set_file_name(format!("{}.toml", state.spec.name)).save_file()
        {
            state.save_to(&path);
        }
    });
}

fn main_fields_ui(ui: &mut egui::Ui, state: &mut DesignerState) {
    let spec = &mut state.spec;
    ui.horizontal_wrapped(|ui| {
        labelled_text(ui, "Name:", &mut spec.name, 200.0, "study name");
        let l = ui.label("Seed:");
        ui.add(egui::DragValue::new(&mut spec.seed)).labelled_by(l.id);
        let l = ui.label("Design:");
        egui::ComboBox::from_id_salt("designer_design")
            .selected_text(spec.design.as_str())
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut spec.design, Design::Within, "within");
                ui.selectable_value(&mut spec.design, Design::Between, "between");
            })
            .response
            .labelled_by(l.id)
            .on_hover_text("within: every participant sees every condition; between: one condition each");
        let l = ui.label("Item order:");
        let order = &mut spec.counterbalance.item_order;
        egui::ComboBox::from_id_salt("designer_item_order")
            .selected_text(match order {
                ItemOrder::Balanced => "balanced",
                ItemOrder::Random => "random",
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(order, ItemOrder::Balanced, "balanced");
                ui.selectable_value(order, ItemOrder::Random, "random");
            })
            .response
            .labelled_by(l.id);
    });
    ui.horizontal(|ui| {
        labelled_text(ui, "Description:", &mut spec.description, 600.0, "what the study is for (not shown)");
    });
    ui.horizontal_wrapped(|ui| {
        let l = ui.label("Items per participant:");
        ui.add(egui::DragValue::new(&mut spec.items_per_participant).range(0..=1000)).labelled_by(l.id);
        let l = ui.label("Min seconds per item:");
        ui.add(egui::DragValue::new(&mut spec.min_seconds_per_item).range(0.0..=3600.0).speed(0.5))
            .labelled_by(l.id)
            .on_hover_text("faster item answers are flagged as too fast (0: no flag)");
        labelled_text(ui, "Gold items:", &mut state.gold_text, 120.0, "ids, e.g. 2, 18");
        labelled_text(ui, "Completion code prefix:", &mut spec.completion_code_prefix, 110.0, "e.g. ARGUS");
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("Items:");
        ui.radio_value(&mut state.use_filter, false, "these ids");
        ui.radio_value(&mut state.use_filter, true, "a filter");
        if state.use_filter {
            let set = &mut spec.items;
            let mut dataset = set.dataset.clone().unwrap_or_default();
            labelled_text(ui, "dataset", &mut dataset, 120.0, "any dataset");
            set.dataset = Some(dataset.trim().to_owned()).filter(|d| !d.is_empty());
            let l = ui.label("label");
            egui::ComboBox::from_id_salt("designer_label")
                .selected_text(set.label.map_or("any", Verdict::as_str))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut set.label, None, "any");
                    ui.selectable_value(&mut set.label, Some(Verdict::Real), "real");
                    ui.selectable_value(&mut set.label, Some(Verdict::Fake), "fake");
                })
                .response
                .labelled_by(l.id);
            let mut perspective = set.with_rationale_from.clone().unwrap_or_default();
            labelled_text(ui, "with a rationale from", &mut perspective, 80.0, "any perspective");
            set.with_rationale_from = Some(perspective.trim().to_owned()).filter(|p| !p.is_empty());
            let mut limited = set.limit.is_some();
            ui.checkbox(&mut limited, "at most");
            let mut limit = set.limit.unwrap_or(50);
            if limited {
                let l = ui.label("items:");
                ui.add(egui::DragValue::new(&mut limit).range(0..=100_000)).labelled_by(l.id);
            }
            set.limit = limited.then_some(limit);
        } else {
            labelled_text(ui, "ids", &mut state.ids_text, 360.0, "item ids, e.g. 3, 5, 6");
        }
    });
}

fn conditions_ui(ui: &mut egui::Ui, spec: &mut StudySpec) {
    ui.strong("Conditions");
    let mut remove = None;
    for (i, c) in spec.conditions.iter_mut().enumerate() {
        ui.horizontal_wrapped(|ui| {
            ui.label(format!("{}.", i + 1));
            labelled_text(ui, "name", &mut c.name, 150.0, "condition name");
            let l = ui.label("format");
            egui::ComboBox::from_id_salt(("designer_format", i))
                .selected_text(c.format.title())
                .show_ui(ui, |ui| {
                    for f in Format::ALL {
                        ui.selectable_value(&mut c.format, f, f.title());
                    }
                })
                .response
                .labelled_by(l.id);
            let mut perspective = c.perspective.clone().unwrap_or_default();
            labelled_text(ui, "perspective", &mut perspective, 80.0, "item's first");
            c.perspective = Some(perspective.trim().to_owned()).filter(|p| !p.is_empty());
            ui.checkbox(&mut c.show_model_verdict, "show the model's verdict");
            if ui.button("Remove").on_hover_text(format!("remove condition {}", i + 1)).clicked() {
                remove = Some(i);
            }
        });
    }
    if let Some(i) = remove {
        spec.conditions.remove(i);
    }
    if ui.button("Add condition").clicked() {
        let used: Vec<Format> = spec.conditions.iter().map(|c| c.format).collect();
        let format = Format::ALL.into_iter().find(|f| !used.contains(f)).unwrap_or(Format::FreeText);
        spec.conditions.push(Condition {
            name: format.as_str().to_owned(),
            format,
            perspective: spec.conditions.first().and_then(|c| c.perspective.clone()),
            show_model_verdict: false,
        });
    }
}

fn attention_ui(ui: &mut egui::Ui, state: &mut DesignerState) {
    let spec = &mut state.spec;
    let mut on = spec.attention_checks.is_some();
    ui.checkbox(&mut on, RichText::new("Attention checks").strong());
    if !on {
        spec.attention_checks = None;
        return;
    }
    let a = spec.attention_checks.get_or_insert_with(|| {
        let options: Vec<String> = ["never", "sometimes", "often", "always"].map(String::from).to_vec();
        state.options_text = options.join(", ");
        AttentionChecks {
            every: Some(4),
            probability: None,
            prompt: "To show that you are reading carefully, choose \"often\".".into(),
            options,
            answer: "often".into(),
        }
    });
    ui.horizontal_wrapped(|ui| {
        let mut every = a.every.is_some();
        ui.radio_value(&mut every, true, "every");
        if every {
            let mut n = a.every.unwrap_or(4);
            let l = ui.label("N items:");
            ui.add(egui::DragValue::new(&mut n).range(0..=1000)).labelled_by(l.id);
            a.every = Some(n);
            a.probability = None;
        }
        ui.radio_value(&mut every, false, "with probability");
        if !every {
            let mut p = a.probability.unwrap_or(0.2);
            let l = ui.label("after each item:");
            ui.add(egui::DragValue::new(&mut p).range(0.0..=1.0).speed(0.01)).labelled_by(l.id);
            a.probability = Some(p);
            a.every = None;
        }
    });
    ui.horizontal(|ui| {
        labelled_text(ui, "Prompt:", &mut a.prompt, 560.0, "the question");
    });
    ui.horizontal_wrapped(|ui| {
        labelled_text(ui, "Options:", &mut state.options_text, 320.0, "comma-separated");
        let l = ui.label("Answer:");
        let options: Vec<String> =
            state.options_text.split(',').map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect();
        egui::ComboBox::from_id_salt("designer_attention_answer")
            .selected_text(a.answer.clone())
            .show_ui(ui, |ui| {
                for o in &options {
                    ui.selectable_value(&mut a.answer, o.clone(), o);
                }
            })
            .response
            .labelled_by(l.id);
    });
}

fn questions_ui(ui: &mut egui::Ui, spec: &mut StudySpec) {
    ui.strong("Questions about every item");
    ui.horizontal_wrapped(|ui| {
        for q in Question::ALL {
            let mut on = spec.questions.contains(&q);
            if ui.checkbox(&mut on, q.key()).on_hover_text(q.prompt()).changed() {
                if on {
                    spec.questions.push(q);
                } else {
                    spec.questions.retain(|x| *x != q);
                }
            }
        }
    });
    ui.checkbox(&mut spec.require_feedback_text, "written feedback (fb_where, fb_what, fb_fix) is required");
}

fn questionnaire_ui(ui: &mut egui::Ui, spec: &mut StudySpec) {
    ui.strong("Questionnaire after the last item");
    let mut remove = None;
    for (i, q) in spec.questionnaire.iter_mut().enumerate() {
        ui.horizontal_wrapped(|ui| {
            ui.label(format!("{}.", i + 1));
            labelled_text(ui, "key", &mut q.key, 110.0, "a-z, 0-9, _");
            let l = ui.label("kind");
            egui::ComboBox::from_id_salt(("designer_q_kind", i))
                .selected_text(match q.kind {
                    QuestionnaireKind::Likert => "likert",
                    QuestionnaireKind::Text => "text",
                })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut q.kind, QuestionnaireKind::Likert, "likert");
                    ui.selectable_value(&mut q.kind, QuestionnaireKind::Text, "text");
                })
                .response
                .labelled_by(l.id);
            if q.kind == QuestionnaireKind::Likert {
                let l = ui.label("points");
                ui.add(egui::DragValue::new(&mut q.points).range(0..=20)).labelled_by(l.id);
            }
            if ui.button("Remove").on_hover_text(format!("remove question {}", i + 1)).clicked() {
                remove = Some(i);
            }
        });
        ui.horizontal(|ui| {
            ui.add_space(18.0);
            labelled_text(ui, "text", &mut q.text, 520.0, "the question or statement");
        });
        if q.kind == QuestionnaireKind::Likert {
            ui.horizontal(|ui| {
                ui.add_space(18.0);
                let mut labels = q.labels.join(", ");
                labelled_text(ui, "labels", &mut labels, 400.0, "the two ends, or every point, comma-separated");
                q.labels = labels.split(',').map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()).collect();
            });
        }
    }
    if let Some(i) = remove {
        spec.questionnaire.remove(i);
    }
    ui.horizontal(|ui| {
        if ui.button("Add Likert item").clicked() {
            let n = spec.questionnaire.len() + 1;
            spec.questionnaire.push(QuestionnaireItem {
                key: format!("q{n}"),
                kind: QuestionnaireKind::Likert,
                text: String::new(),
                points: 7,
                labels: vec!["strongly disagree".into(), "strongly agree".into()],
                required: None,
            });
        }
        if ui.button("Add text item").clicked() {
            let n = spec.questionnaire.len() + 1;
            spec.questionnaire.push(QuestionnaireItem {
                key: format!("q{n}"),
                kind: QuestionnaireKind::Text,
                text: String::new(),
                points: 7,
                labels: Vec::new(),
                required: None,
            });
        }
    });
}

fn practice_ui(ui: &mut egui::Ui, spec: &mut StudySpec) {
    ui.strong("Practice items (answered like items, then their feedback is shown)");
    let mut remove = None;
    for (i, p) in spec.practice.iter_mut().enumerate() {
        ui.horizontal(|ui| {
            let l = ui.label(format!("{}. item", i + 1));
            ui.add(egui::DragValue::new(&mut p.item).range(1..=i64::MAX)).labelled_by(l.id);
            labelled_text(ui, "feedback", &mut p.feedback, 520.0, "shown after answering");
            if ui.button("Remove").on_hover_text(format!("remove practice item {}", i + 1)).clicked() {
                remove = Some(i);
            }
        });
    }
    if let Some(i) = remove {
        spec.practice.remove(i);
    }
    if ui.button("Add practice item").clicked() {
        spec.practice.push(PracticeItem { item: 1, key: None, feedback: String::new(), condition: None });
    }
}

fn texts_ui(ui: &mut egui::Ui, spec: &mut StudySpec) {
    for (name, text) in [("Consent:", &mut spec.consent), ("Instructions:", &mut spec.instructions)] {
        let l = ui.strong(name);
        ui.add(egui::TextEdit::multiline(text).desired_rows(3).desired_width(f32::INFINITY)).labelled_by(l.id);
    }
}

fn status_ui(ui: &mut egui::Ui, state: &mut DesignerState, out: &mut Vec<AppCommand>) {
    ui.horizontal_wrapped(|ui| {
        match &state.problem {
            Some(problem) => {
                ui.colored_label(ui.visuals().error_fg_color, format!("Not valid: {problem}"));
            }
            None => {
                ui.colored_label(egui::Color32::from_rgb(90, 180, 100), "Valid");
            }
        }
        let valid = state.problem.is_none();
        if ui
            .add_enabled(valid, egui::Button::new(RichText::new("Register in the database").strong()))
            .on_hover_text(
                "a new study, or: replaces the draft while no participant has started; a new version once one has",
            )
            .clicked()
        {
            out.push(AppCommand::Studio(Command::RegisterStudy(Box::new(state.spec.clone()))));
        }
    });
    if let Some((message, is_error)) = &state.message {
        let color = if *is_error { ui.visuals().error_fg_color } else { ui.visuals().text_color() };
        ui.colored_label(color, message);
    }
}

fn preview_ui(ui: &mut egui::Ui, state: &DesignerState) {
    ui.strong("Plan of the first 4 participants (condition and item at each position)");
    let plans = match &state.preview {
        None => {
            ui.label(RichText::new("shown once the draft is valid").weak());
            return;
        }
        Some(Err(err)) => {
            ui.colored_label(ui.visuals().error_fg_color, err);
            return;
        }
        Some(Ok(plans)) => plans,
    };
    let positions = plans.iter().map(|p| p.items().count()).max().unwrap_or(0);
    egui::Grid::new("designer_preview").striped(true).show(ui, |ui| {
        ui.strong("participant");
        for pos in 0..positions {
            ui.strong(format!("{}", pos + 1));
        }
        ui.end_row();
        for plan in plans {
            ui.label(format!("#{}", plan.number));
            for (position, item, condition, gold) in plan.items() {
                let name = state.spec.conditions.get(condition).map_or("?", |c| c.name.as_str());
                let checked = plan
                    .steps
                    .iter()
                    .any(|s| matches!(s, PlanStep::Attention { after_position, .. } if *after_position == position));
                let mut text = format!("{name}\nitem {item}");
                if gold {
                    text.push_str(" (gold)");
                }
                if checked {
                    text.push_str(" + check");
                }
                ui.label(RichText::new(text).small());
            }
            ui.end_row();
        }
    });
}
