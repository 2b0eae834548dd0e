//! A participant's run through a study, without drawing: participant code → consent → instructions → practice
//! items (with feedback) → the items in the assigned order and condition, with attention checks → questionnaire →
//! the end, with a completion code.
//!
//! [`Session::start`] creates the participant (the next free number of the newest study version, which freezes it)
//! or resumes one by code at the first step not completed. [`Session::current`] says what to show;
//! [`Session::answer`] checks the answers against the step's questions, stores them with the step's timing in one
//! transaction, and moves on. The studio's panel draws each [`Step`] (the item's rationale with
//! `formats::generate::render` in [`ItemView::format`]); `argus study run-sim` drives the same code.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::assign::PlanStep;
use super::spec::{AnswerKind, Condition, Question, QuestionnaireItem};
use super::{Result, Study, StudyError};
use crate::domain::{ItemId, NewFeedback, RationaleId, Usefulness, Verdict};
use crate::formats::{Format, generate};
use crate::store::Store;
use crate::store::studies::{Finish, NewStudyResponse, ParticipantRow, Timing};

/// Longest text answer, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;

/// An item as a participant sees it in one condition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ItemView {
    /// The item.
    pub item: ItemId,
    /// The condition, as in the study file.
    pub condition: Condition,
    /// The rationale revision shown (the latest of the condition's perspective, else the item's first); none when
    /// the item has no rationale.
    pub rationale: Option<RationaleId>,
    /// The perspective of the rationale shown.
    pub perspective: Option<String>,
    /// The format shown: the condition's, or free text when a structured format has no stored rendering yet.
    pub format: Format,
    /// The stored rendering shown, for structured formats.
    pub rendering_id: Option<i64>,
    /// The model's verdict, when the condition shows it and the rationale has one.
    pub model_verdict: Option<Verdict>,
    /// The item's gold label (never shown; checks verdicts).
    #[serde(skip)]
    pub gold_label: Option<Verdict>,
}

/// What the participant sees now.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// The consent text; answer `consent` = `yes` or `no`.
    Consent {
        /// The text.
        text: String,
    },
    /// The instructions; no answers.
    Instructions {
        /// The text.
        text: String,
    },
    /// A practice item: answered like an item, then `feedback` is shown.
    Practice {
        /// Index among the practice items.
        index: usize,
        /// What is shown.
        view: ItemView,
        /// Shown after answering.
        feedback: String,
    },
    /// A study item.
    Item {
        /// 0-based position among the participant's items.
        position: usize,
        /// What is shown.
        view: ItemView,
        /// A gold item (not told to the participant).
        is_gold: bool,
    },
    /// An attention check; answer `attention` with one of `options`.
    Attention {
        /// 0-based index among the participant's checks.
        index: usize,
        /// The question.
        prompt: String,
        /// The choices.
        options: Vec<String>,
    },
    /// The post-study questionnaire.
    Questionnaire {
        /// The questions.
        items: Vec<QuestionnaireItem>,
    },
    /// The end.
    Done {
        /// The code to show (none when consent was declined).
        completion_code: Option<String>,
    },
}

impl Step {
    /// The kind stored with the step's answers.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Consent { .. } => "consent",
            Step::Instructions { .. } => "instructions",
            Step::Practice { .. } => "practice",
            Step::Item { is_gold: true, .. } => "gold",
            Step::Item { .. } => "item",
            Step::Attention { .. } => "attention",
            Step::Questionnaire { .. } => "questionnaire",
            Step::Done { .. } => "done",
        }
    }

    /// The item view of practice and item steps.
    pub fn view(&self) -> Option<&ItemView> {
        match self {
            Step::Practice { view, .. } | Step::Item { view, .. } => Some(view),
            _ => None,
        }
    }
}

/// One question of a step, as the UI asks it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Asked {
    /// The key answers are given under.
    pub key: String,
    /// What the participant reads.
    pub prompt: String,
    /// The answer it takes.
    pub answer: AnswerKind,
    /// Must be answered.
    pub required: bool,
}

/// What [`Session::answer`] reports back.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answered {
    /// A practice item's feedback, to show before going on.
    pub feedback: Option<String>,
    /// Whether the verdict (practice, items) or the attention answer was right, when that is known.
    pub correct: Option<bool>,
}

/// A participant's session: the plan with everything each step shows, and the first step not completed.
#[derive(Clone, Debug)]
pub struct Session {
    study: Study,
    participant: ParticipantRow,
    steps: Vec<Step>,
    next: usize,
}

impl Session {
    /// Starts participant `code` in study `study` (its newest version, which freezes when its first participant
    /// starts), or resumes them — in whichever version they started — at the first step they have not completed.
    pub fn start(store: &mut Store, study: &str, code: &str) -> Result<Session> {
        let code = code.trim();
        if code.is_empty() || code.len() > 128 || code.chars().any(char::is_control) {
            return Err(StudyError::Answer {
                question: "participant code".into(),
                message: "must be 1-128 printable characters".into(),
            });
        }
        let participant = match store.study_participant(study, code)? {
            Some(p) => p,
            None => {
                let newest = super::load(store, study, None)?;
                store.add_study_participant(newest.id, code)?
            }
        };
        let study = super::Study::from_row_in(store, store.study_row_by_id(participant.study_id)?)?;
        let plan = study.plan(participant.number);
        let mut steps = Vec::with_capacity(plan.steps.len() + 1);
        for s in &plan.steps {
            steps.push(resolve(store, &study, s)?);
        }
        let completed = store.completed_study_steps(participant.id)?;
        let next = if participant.withdrawn || participant.finished_at.is_some() {
            steps.len()
        } else {
            (0..steps.len()).find(|i| completed.binary_search(&(*i as u32)).is_err()).unwrap_or(steps.len())
        };
        Ok(Session { study, participant, steps, next })
    }

    /// The study version this participant is in.
    pub fn study(&self) -> &Study {
        &self.study
    }

    /// The participant.
    pub fn participant(&self) -> &ParticipantRow {
        &self.participant
    }

    /// The index of the current step and the number of steps before the end.
    pub fn progress(&self) -> (usize, usize) {
        (self.next, self.steps.len())
    }

    /// Every step of the plan, resolved (the end not included).
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// What to show now.
    pub fn current(&self) -> Step {
        match self.steps.get(self.next) {
            Some(step) => step.clone(),
            None => Step::Done { completion_code: (!self.participant.withdrawn).then(|| self.completion_code()) },
        }
    }

    /// True once the run is over (finished, or consent declined).
    pub fn is_done(&self) -> bool {
        self.next >= self.steps.len()
    }

    /// The questions of the current step.
    pub fn asked(&self) -> Vec<Asked> {
        asked(&self.study, &self.current())
    }

    /// The code shown at the end: the study's prefix and 8 hex digits derived from the study version and the
    /// participant's code.
    pub fn completion_code(&self) -> String {
        if let Some(code) = &self.participant.completion_code {
            return code.clone();
        }
        let digest =
            Sha256::digest(format!("{}\n{}\n{}", self.study.sha256, self.participant.code, self.participant.number));
        let hex: String = digest.iter().take(4).map(|b| format!("{b:02X}")).collect();
        format!("{}-{hex}", self.study.spec.completion_code_prefix)
    }

    /// Answers the current step: checks `answers` (question key, value) against its questions (an unknown or
    /// repeated key, a missing required answer or a value off its scale is an error naming the question, and
    /// nothing is stored), stores every answer with `timing` and the step's completion in one transaction, and
    /// moves to the next step. Written feedback on an item (not a practice item) is also saved as the
    /// participant's rationale feedback on the rationale shown, in the format shown, so the repair loop applies.
    pub fn answer(&mut self, store: &mut Store, answers: &[(String, String)], timing: Timing) -> Result<Answered> {
        let step = self.current();
        if let Step::Done { .. } = step {
            return Err(StudyError::Invalid(format!(
                "participant `{}` has finished the study; there is nothing left to answer",
                self.participant.code
            )));
        }
        let values = check_answers(&asked(&self.study, &step), answers)?;
        let mut correct = None;
        let mut rows = Vec::with_capacity(values.len());
        let (view, position) = match &step {
            Step::Practice { view, .. } => (Some(view), None),
            Step::Item { view, position, .. } => (Some(view), Some(*position as u32)),
            _ => (None, None),
        };
        for (key, value) in &values {
            let question = Question::parse(key).filter(|_| view.is_some());
            let row_correct = match (&step, question) {
                (Step::Attention { .. }, _) => self.study.spec.attention_checks.as_ref().map(|a| a.answer == *value),
                (_, Some(Question::Verdict)) => view
                    .and_then(|v| v.gold_label)
                    .and_then(|gold| (!value.is_empty()).then(|| Verdict::parse(value).is_some_and(|v| v == gold))),
                _ => None,
            };
            if row_correct.is_some() {
                correct = row_correct;
            }
            let value_num = match (&step, question) {
                (_, Some(q)) => q.numeric(value),
                (Step::Questionnaire { items }, None) => items
                    .iter()
                    .find(|i| i.key == *key && matches!(i.answer_kind(), AnswerKind::Scale { .. }))
                    .and_then(|_| value.parse::<f64>().ok()),
                _ => None,
            };
            rows.push(NewStudyResponse {
                kind: step.kind().to_owned(),
                item_id: view.map(|v| v.item),
                condition: view.map(|v| v.condition.name.clone()),
                format: view.map(|v| v.format.as_str().to_owned()),
                perspective: view.and_then(|v| v.perspective.clone()),
                position,
                question: key.clone(),
                value: value.clone(),
                value_num,
                correct: row_correct,
            });
        }
        if let (Step::Item { view, .. }, Some(rationale)) = (&step, view.and_then(|v| v.rationale)) {
            let form = feedback_form(&values, rationale, view, timing);
            if form.has_written_feedback() {
                // Saved before the step: a crash in between redoes the step, and the form is updated in place.
                let annotator = store.annotator_id(&self.study.annotator_name(&self.participant.code))?;
                store.save_feedback_form(&NewFeedback { annotator_id: annotator, ..form })?;
            }
        }
        let declined = matches!(step, Step::Consent { .. }) && values.iter().any(|(k, v)| k == "consent" && v == "no");
        let last = self.next + 1 >= self.steps.len();
        let finish = (declined || last)
            .then(|| Finish { completion_code: (!declined).then(|| self.completion_code()), withdrawn: declined });
        store.complete_study_step(
            self.participant.id,
            self.next as u32,
            step.kind(),
            timing,
            &rows,
            finish.as_ref(),
        )?;
        if let Some(f) = finish {
            self.participant.completion_code = f.completion_code;
            self.participant.withdrawn = f.withdrawn;
            self.next = self.steps.len();
        } else {
            self.next += 1;
        }
        let feedback = match step {
            Step::Practice { feedback, .. } => Some(feedback),
            _ => None,
        };
        Ok(Answered { feedback, correct })
    }
}

/// The questions of `step` in `study`.
pub fn asked(study: &Study, step: &Step) -> Vec<Asked> {
    let spec = &study.spec;
    let choice = |options: &[&str]| AnswerKind::Choice { options: options.iter().map(|o| (*o).to_owned()).collect() };
    match step {
        Step::Consent { .. } => vec![Asked {
            key: "consent".into(),
            prompt: "Do you agree to take part?".into(),
            answer: choice(&["yes", "no"]),
            required: true,
        }],
        Step::Instructions { .. } | Step::Done { .. } => Vec::new(),
        Step::Practice { .. } | Step::Item { .. } => spec
            .questions
            .iter()
            .map(|&q| Asked {
                key: q.key().into(),
                prompt: q.prompt().into(),
                answer: q.answer_kind(),
                required: spec.is_required(q),
            })
            .collect(),
        Step::Attention { prompt, options, .. } => vec![Asked {
            key: "attention".into(),
            prompt: prompt.clone(),
            answer: AnswerKind::Choice { options: options.clone() },
            required: true,
        }],
        Step::Questionnaire { items } => items
            .iter()
            .map(|i| Asked {
                key: i.key.clone(),
                prompt: i.text.clone(),
                answer: i.answer_kind(),
                required: i.is_required(),
            })
            .collect(),
    }
}

/// Checks answers against the questions; returns one normalised value per question, in the questions' order
/// (empty for an unanswered optional question).
pub fn check_answers(asked: &[Asked], answers: &[(String, String)]) -> Result<Vec<(String, String)>> {
    let err = |question: &str, message: String| StudyError::Answer { question: question.to_owned(), message };
    for (i, (key, _)) in answers.iter().enumerate() {
        if !asked.iter().any(|a| a.key == *key) {
            let keys: Vec<&str> = asked.iter().map(|a| a.key.as_str()).collect();
            let known = if keys.is_empty() { "none".to_owned() } else { keys.join(", ") };
            return Err(err(key, format!("not asked at this step (asked: {known})")));
        }
        if answers[..i].iter().any(|(k, _)| k == key) {
            return Err(err(key, "given twice".into()));
        }
    }
    let mut out = Vec::with_capacity(asked.len());
    for a in asked {
        let given = answers.iter().find(|(k, _)| *k == a.key).map(|(_, v)| v.trim()).unwrap_or("");
        if given.is_empty() {
            if a.required {
                return Err(err(&a.key, "is required".into()));
            }
            out.push((a.key.clone(), String::new()));
            continue;
        }
        let value = match &a.answer {
            AnswerKind::Choice { options } => {
                let normalised = if a.key == "verdict" { Verdict::parse(given).map(Verdict::human_name) } else { None };
                let value = normalised.unwrap_or(given);
                if !options.iter().any(|o| o == value) {
                    return Err(err(&a.key, format!("`{given}` is not one of {}", options.join(", "))));
                }
                value.to_owned()
            }
            AnswerKind::Scale { min, max, .. } => match given.parse::<u8>() {
                Ok(v) if (*min..=*max).contains(&v) => v.to_string(),
                _ => return Err(err(&a.key, format!("`{given}` is not a whole number from {min} to {max}"))),
            },
            AnswerKind::Text => {
                if given.chars().count() > MAX_TEXT_CHARS {
                    return Err(err(&a.key, format!("longer than {MAX_TEXT_CHARS} characters")));
                }
                given.to_owned()
            }
        };
        out.push((a.key.clone(), value));
    }
    Ok(out)
}

/// The rationale feedback form that an item's answers amount to (annotator left 0).
fn feedback_form(values: &[(String, String)], rationale: RationaleId, view: &ItemView, timing: Timing) -> NewFeedback {
    let get =
        |q: Question| values.iter().find(|(k, _)| k == q.key()).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let scale = |q: Question| get(q).and_then(|v| v.parse::<u8>().ok());
    let text = |q: Question| get(q).map(str::to_owned);
    NewFeedback {
        rationale_id: rationale,
        annotator_id: 0,
        format: view.format.as_str().to_owned(),
        usefulness: get(Question::Usefulness).and_then(Usefulness::parse),
        sufficiency: scale(Question::Sufficiency),
        faithfulness: scale(Question::Faithfulness),
        agrees_verdict: get(Question::AgreesVerdict).map(|v| v == "yes"),
        fb_where: text(Question::FbWhere),
        fb_what: text(Question::FbWhat),
        fb_fix: text(Question::FbFix),
        ease: scale(Question::Ease),
        understanding: scale(Question::Understanding),
        trust: scale(Question::Trust),
        rendering_id: view.rendering_id,
        time_spent_ms: timing.total_ms,
    }
}

/// What a planned step shows, read from the store.
fn resolve(store: &Store, study: &Study, step: &PlanStep) -> Result<Step> {
    let spec = &study.spec;
    Ok(match *step {
        PlanStep::Consent => Step::Consent { text: spec.consent.trim().to_owned() },
        PlanStep::Instructions => Step::Instructions { text: spec.instructions.trim().to_owned() },
        PlanStep::Practice { index, item, condition } => Step::Practice {
            index,
            view: item_view(store, &spec.conditions[condition], item)?,
            feedback: spec.practice[index].feedback.clone(),
        },
        PlanStep::Item { position, item, condition, is_gold } => {
            Step::Item { position, view: item_view(store, &spec.conditions[condition], item)?, is_gold }
        }
        PlanStep::Attention { index, .. } => {
            let a = spec.attention_checks.as_ref().ok_or_else(|| {
                StudyError::Invalid("the plan has an attention check but the study file has none".into())
            })?;
            Step::Attention { index, prompt: a.prompt.clone(), options: a.options.clone() }
        }
        PlanStep::Questionnaire => Step::Questionnaire { items: spec.questionnaire.clone() },
    })
}

fn item_view(store: &Store, condition: &Condition, item: ItemId) -> Result<ItemView> {
    let gold_label = store.item(item)?.gold_label;
    let rationales = store.rationales(item)?;
    let rationale = condition
        .perspective
        .as_deref()
        .and_then(|p| rationales.iter().find(|r| r.perspective == p))
        .or_else(|| rationales.first());
    let (mut format, mut rendering_id) = (condition.format, None);
    if let Some(r) = rationale.filter(|_| format.needs_llm()) {
        match generate::stored(store, r.id, format).map_err(|e| StudyError::Invalid(format!("{e:#}")))? {
            Some(stored) if stored.status == "ok" => rendering_id = Some(stored.id),
            _ => format = Format::FreeText,
        }
    } else if rationale.is_none() {
        format = Format::FreeText;
    }
    Ok(ItemView {
        item,
        condition: condition.clone(),
        rationale: rationale.map(|r| r.id),
        perspective: rationale.map(|r| r.perspective.clone()),
        format,
        rendering_id,
        model_verdict: rationale.and_then(|r| r.verdict).filter(|_| condition.show_model_verdict),
        gold_label,
    })
}
