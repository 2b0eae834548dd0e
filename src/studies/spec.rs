//! The study file: what a study shows, to whom, in which order, and what it asks. It loads from TOML or JSON (the
//! same fields), refuses unknown fields naming the file and the line, and [`StudySpec::validate`] names the field of
//! every other mistake. Its canonical JSON and that text's sha256 identify a study version.
//!
//! Pure data: no SQLite, no UI.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StudyError;
use crate::domain::{ItemId, Verdict};
use crate::formats::Format;

/// A study file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySpec {
    /// The study's name: what its versions, participants and exports are filed under.
    pub name: String,
    /// What the study is for (for the researcher; not shown to participants).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Seeds item choice, item order (`random`), attention checks (`probability`) and the bootstrap.
    #[serde(default)]
    pub seed: u64,
    /// Within-subjects (every participant sees every condition) or between-subjects (one condition each).
    pub design: Design,
    /// Which items the study draws from.
    pub items: ItemSet,
    /// Items each participant judges, gold items included.
    pub items_per_participant: usize,
    /// The conditions compared.
    pub conditions: Vec<Condition>,
    /// How conditions and item order are balanced.
    #[serde(default)]
    pub counterbalance: Counterbalance,
    /// Attention checks inserted between items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_checks: Option<AttentionChecks>,
    /// Items with a known (gold) label that every participant judges; their verdict is checked against it.
    /// Database ids; a file names them by key in `gold_keys` instead (see [`crate::studies::resolve_keys`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gold_items: Vec<ItemId>,
    /// The gold items by stable item key (`liar2:11972`), the same in every database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gold_keys: Vec<String>,
    /// Item answers faster than this are flagged as too fast (0: no flag).
    #[serde(default)]
    pub min_seconds_per_item: f64,
    /// The questions asked about every item, in order.
    pub questions: Vec<Question>,
    /// Make the written feedback questions (`fb_where`, `fb_what`, `fb_fix`) required; by default they are optional.
    #[serde(default)]
    pub require_feedback_text: bool,
    /// The consent text; the participant agrees or declines.
    pub consent: String,
    /// The instructions shown after consent.
    pub instructions: String,
    /// Practice items, answered like items and then shown their feedback text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub practice: Vec<PracticeItem>,
    /// The questions after the last item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub questionnaire: Vec<QuestionnaireItem>,
    /// The completion code shown at the end starts with this.
    #[serde(default = "default_prefix")]
    pub completion_code_prefix: String,
}

fn default_prefix() -> String {
    "ARGUS".into()
}

/// Between- or within-subjects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Design {
    /// Every participant sees every condition, alternating by position.
    Within,
    /// Each participant sees one condition.
    Between,
}

impl Design {
    /// The name in study files.
    pub fn as_str(self) -> &'static str {
        match self {
            Design::Within => "within",
            Design::Between => "between",
        }
    }
}

/// The items a study draws from: a list of ids, or a filter over the database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemSet {
    /// These item ids (database ids); excludes every filter field. Files written by Argus name items by key in
    /// `keys` instead; ids still load (they are turned into keys when the study is registered).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<ItemId>,
    /// These items, by stable item key (`liar2:11972`, `id:av-1`, `sha:…`); excludes every filter field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Filter: items of the dataset with this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Filter: items with this gold label (`real` or `fake`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Verdict>,
    /// Filter: items with a rationale from this perspective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_rationale_from: Option<String>,
    /// Filter: at most this many items (the first by id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl ItemSet {
    /// True when the set is a filter rather than a list.
    pub fn is_filter(&self) -> bool {
        self.ids.is_empty() && self.keys.is_empty()
    }
}

/// One condition: how the rationale is shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The condition's name (in exports and analyses).
    pub name: String,
    /// The explanation format.
    pub format: Format,
    /// The perspective whose rationale is shown (default: the item's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perspective: Option<String>,
    /// Show the model's verdict beside the explanation.
    #[serde(default)]
    pub show_model_verdict: bool,
}

/// How conditions and items are balanced over participants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counterbalance {
    /// How conditions are spread over positions and participants.
    #[serde(default)]
    pub conditions: ConditionBalance,
    /// How items are ordered per participant.
    #[serde(default)]
    pub item_order: ItemOrder,
}

/// How conditions are balanced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConditionBalance {
    /// A Latin square over conditions (balanced for first-order carry-over when the number of conditions is even).
    #[default]
    LatinSquare,
}

/// How items are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemOrder {
    /// Rotated per participant: every item in every position equally often, and every item under every condition.
    #[default]
    Balanced,
    /// A seeded shuffle per participant.
    Random,
}

/// Attention checks: a question with a known right answer, inserted every N items or with a probability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionChecks {
    /// A check after every `every` items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<usize>,
    /// A check after each item with this probability (seeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// The question.
    pub prompt: String,
    /// The choices.
    pub options: Vec<String>,
    /// The right choice (one of `options`).
    pub answer: String,
}

fn is_zero(id: &ItemId) -> bool {
    *id == 0
}

/// A practice item: answered like an item, then its feedback text is shown.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PracticeItem {
    /// The item (database id; 0 when the file names it by `key`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub item: ItemId,
    /// The item by stable key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Shown after the participant answers.
    pub feedback: String,
    /// The condition shown (by name; default: the participant's condition at the first position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// A question asked about each item (the feedback forms of the formats work, plus verdict and confidence).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Question {
    /// real / fake / unsure.
    Verdict,
    /// useful / not_useful / misleading.
    Usefulness,
    /// 1..=3.
    Sufficiency,
    /// 1..=3.
    Faithfulness,
    /// yes / no.
    AgreesVerdict,
    /// Text: where the problem is.
    FbWhere,
    /// Text: what is wrong.
    FbWhat,
    /// Text: how to fix it.
    FbFix,
    /// 1..=4: how easy giving feedback was.
    Ease,
    /// 1..=7 Likert.
    Understanding,
    /// 1..=7 Likert.
    Trust,
    /// 1..=5: how sure the participant is of their verdict.
    Confidence,
}

/// The kind of answer a question takes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnswerKind {
    /// One of these values.
    Choice {
        /// The values, as stored.
        options: Vec<String>,
    },
    /// An integer from `min` to `max`.
    Scale {
        /// Lowest value.
        min: u8,
        /// Highest value.
        max: u8,
        /// Labels of the points (all of them, or the two ends), possibly empty.
        labels: Vec<String>,
    },
    /// Free text.
    Text,
}

impl Question {
    /// Every question, in the order of the feedback form.
    pub const ALL: [Question; 12] = [
        Question::Verdict,
        Question::Usefulness,
        Question::Sufficiency,
        Question::Faithfulness,
        Question::AgreesVerdict,
        Question::FbWhere,
        Question::FbWhat,
        Question::FbFix,
        Question::Ease,
        Question::Understanding,
        Question::Trust,
        Question::Confidence,
    ];

    /// The key in study files, answers and exports.
    pub fn key(self) -> &'static str {
        match self {
            Question::Verdict => "verdict",
            Question::Usefulness => "usefulness",
            Question::Sufficiency => "sufficiency",
            Question::Faithfulness => "faithfulness",
            Question::AgreesVerdict => "agrees_verdict",
            Question::FbWhere => "fb_where",
            Question::FbWhat => "fb_what",
            Question::FbFix => "fb_fix",
            Question::Ease => "ease",
            Question::Understanding => "understanding",
            Question::Trust => "trust",
            Question::Confidence => "confidence",
        }
    }

    /// The question by key.
    pub fn parse(key: &str) -> Option<Question> {
        Question::ALL.into_iter().find(|q| q.key() == key)
    }

    /// What the participant reads.
    pub fn prompt(self) -> &'static str {
        match self {
            Question::Verdict => "Is this news real or fake?",
            Question::Usefulness => "How useful is the explanation?",
            Question::Sufficiency => "Does the explanation give enough to reach its verdict?",
            Question::Faithfulness => "Does the explanation stay faithful to the news text?",
            Question::AgreesVerdict => "Do you agree with the model's verdict?",
            Question::FbWhere => "Where is the explanation wrong (which step or part)?",
            Question::FbWhat => "What is wrong there?",
            Question::FbFix => "How could it be fixed (without stating the answer)?",
            Question::Ease => "How easy was it to give feedback on this explanation?",
            Question::Understanding => "I understand how the model reached its verdict.",
            Question::Trust => "I trust this explanation.",
            Question::Confidence => "How sure are you of your verdict?",
        }
    }

    /// The answer it takes.
    pub fn answer_kind(self) -> AnswerKind {
        let choice = |o: &[&str]| AnswerKind::Choice { options: o.iter().map(|s| (*s).to_owned()).collect() };
        let scale = |max: u8, labels: &[&str]| AnswerKind::Scale {
            min: 1,
            max,
            labels: labels.iter().map(|s| (*s).to_owned()).collect(),
        };
        match self {
            Question::Verdict => choice(&["real", "fake", "unsure"]),
            Question::Usefulness => choice(&["useful", "not_useful", "misleading"]),
            Question::AgreesVerdict => choice(&["yes", "no"]),
            Question::Sufficiency => scale(3, &["insufficient", "partly sufficient", "sufficient"]),
            Question::Faithfulness => scale(3, &["unfaithful", "partly faithful", "faithful"]),
            Question::Ease => scale(4, &["very hard", "hard", "easy", "very easy"]),
            Question::Understanding | Question::Trust => scale(7, &["strongly disagree", "strongly agree"]),
            Question::Confidence => scale(5, &["not sure at all", "completely sure"]),
            Question::FbWhere | Question::FbWhat | Question::FbFix => AnswerKind::Text,
        }
    }

    /// True for the written feedback questions.
    pub fn is_text(self) -> bool {
        matches!(self, Question::FbWhere | Question::FbWhat | Question::FbFix)
    }

    /// True when the answer has a number for analysis (scales, and agreeing with the verdict as 1/0).
    pub fn numeric_kind(self) -> bool {
        self == Question::AgreesVerdict || matches!(self.answer_kind(), AnswerKind::Scale { .. })
    }

    /// The answer as a number for analysis: the scale point, or 1/0 for agreeing with the verdict.
    pub fn numeric(self, value: &str) -> Option<f64> {
        match self.answer_kind() {
            AnswerKind::Scale { .. } => value.trim().parse::<f64>().ok(),
            _ if self == Question::AgreesVerdict => match value {
                "yes" => Some(1.0),
                "no" => Some(0.0),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A post-study question.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionnaireItem {
    /// Its key in answers and exports (a-z, 0-9, _).
    pub key: String,
    /// Likert scale or free text.
    pub kind: QuestionnaireKind,
    /// The question or statement.
    pub text: String,
    /// Likert: points of the scale (default 7).
    #[serde(default = "default_points")]
    pub points: u8,
    /// Likert: labels of every point, or of the two ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Must be answered (default: Likert yes, text no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
}

fn default_points() -> u8 {
    7
}

impl QuestionnaireItem {
    /// True when it must be answered.
    pub fn is_required(&self) -> bool {
        self.required.unwrap_or(self.kind == QuestionnaireKind::Likert)
    }

    /// The answer it takes.
    pub fn answer_kind(&self) -> AnswerKind {
        match self.kind {
            QuestionnaireKind::Likert => AnswerKind::Scale { min: 1, max: self.points, labels: self.labels.clone() },
            QuestionnaireKind::Text => AnswerKind::Text,
        }
    }
}

/// The kind of a post-study question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuestionnaireKind {
    /// 1..=points.
    Likert,
    /// Free text.
    Text,
}

fn key_ok(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl StudySpec {
    /// Reads a study file: TOML (`.toml`) or JSON (`.json`; other names are read as JSON when they start with
    /// `{`), then validates it. Every error names the file, and the line or the field.
    pub fn load(path: &Path) -> Result<StudySpec, StudyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StudyError::Spec { path: Some(path.to_owned()), message: format!("cannot read: {e}") })?;
        let json = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("json") => true,
            Some("toml") => false,
            _ => text.trim_start().starts_with('{'),
        };
        let spec = if json { Self::from_json(&text) } else { Self::from_toml(&text) };
        spec.and_then(|s| s.validate().map(|()| s)).map_err(|e| e.in_file(path))
    }

    /// Parses TOML (not validated).
    pub fn from_toml(text: &str) -> Result<StudySpec, StudyError> {
        toml::from_str(text).map_err(|e| StudyError::Spec { path: None, message: e.to_string().trim_end().to_owned() })
    }

    /// Parses JSON (not validated).
    pub fn from_json(text: &str) -> Result<StudySpec, StudyError> {
        serde_json::from_str(text).map_err(|e| StudyError::Spec { path: None, message: e.to_string() })
    }

    /// The spec as TOML (reads back to an equal spec).
    pub fn to_toml(&self) -> Result<String, StudyError> {
        toml::to_string(self).map_err(|e| StudyError::Invalid(format!("study `{}` as TOML: {e}", self.name)))
    }

    /// The canonical JSON: keys sorted, no spaces. Equal specs give equal text.
    pub fn canonical_json(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        let mut out = String::new();
        write_canonical(&value, &mut out);
        out
    }

    /// sha256 (hex) of the canonical JSON: what identifies a study version.
    pub fn sha256(&self) -> String {
        Sha256::digest(self.canonical_json().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The condition called `name`.
    pub fn condition(&self, name: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.name == name)
    }

    /// True when answering `question` is required.
    pub fn is_required(&self, question: Question) -> bool {
        !question.is_text() || self.require_feedback_text
    }

    /// Checks everything that parsing cannot; the error names the field.
    pub fn validate(&self) -> Result<(), StudyError> {
        let bad = |field: &str, message: String| Err(StudyError::Field { field: field.to_owned(), message });
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty".into());
        }
        if self.seed > i64::MAX as u64 {
            return bad("seed", format!("must be at most {} (TOML integers are signed 64-bit)", i64::MAX));
        }
        let set = &self.items;
        if !set.is_filter() && (set.dataset.is_some() || set.label.is_some() || set.with_rationale_from.is_some()) {
            return bad(
                "items",
                "give either `keys` (or `ids`) or a filter (`dataset`, `label`, `with_rationale_from`), not both"
                    .into(),
            );
        }
        if let Some(dup) = first_duplicate(&set.keys) {
            return bad("items.keys", format!("item {dup} is listed twice"));
        }
        if let Some(dup) = first_duplicate(&self.gold_keys) {
            return bad("gold_keys", format!("item {dup} is listed twice"));
        }
        if set.label == Some(Verdict::Other) {
            return bad("items.label", "must be `real` or `fake`".into());
        }
        if set.limit == Some(0) {
            return bad("items.limit", "must be at least 1".into());
        }
        if let Some(dup) = first_duplicate(&set.ids) {
            return bad("items.ids", format!("item {dup} is listed twice"));
        }
        if self.items_per_participant == 0 {
            return bad("items_per_participant", "must be at least 1".into());
        }
        if let Some(dup) = first_duplicate(&self.gold_items) {
            return bad("gold_items", format!("item {dup} is listed twice"));
        }
        let gold = self.gold_items.len() + self.gold_keys.len();
        if gold >= self.items_per_participant {
            return bad(
                if self.gold_keys.is_empty() { "gold_items" } else { "gold_keys" },
                format!(
                    "{gold} gold items leave no room among the {} items per participant",
                    self.items_per_participant
                ),
            );
        }
        if self.conditions.is_empty() {
            return bad("conditions", "give at least one condition".into());
        }
        for (i, c) in self.conditions.iter().enumerate() {
            if c.name.trim().is_empty() {
                return bad(&format!("conditions[{i}].name"), "must not be empty".into());
            }
            if self.conditions[..i].iter().any(|o| o.name == c.name) {
                return bad(&format!("conditions[{i}].name"), format!("`{}` is used twice", c.name));
            }
            if c.perspective.as_deref().is_some_and(|p| p.trim().is_empty()) {
                return bad(&format!("conditions[{i}].perspective"), "must not be empty when given".into());
            }
        }
        if let Some(a) = &self.attention_checks {
            match (a.every, a.probability) {
                (Some(_), Some(_)) | (None, None) => {
                    return bad("attention_checks", "give exactly one of `every` and `probability`".into());
                }
                (Some(0), _) => return bad("attention_checks.every", "must be at least 1".into()),
                (_, Some(p)) if !(p > 0.0 && p <= 1.0) => {
                    return bad("attention_checks.probability", format!("{p} is not in (0, 1]"));
                }
                _ => {}
            }
            if a.prompt.trim().is_empty() {
                return bad("attention_checks.prompt", "must not be empty".into());
            }
            if a.options.len() < 2 {
                return bad("attention_checks.options", "give at least two options".into());
            }
            if !a.options.contains(&a.answer) {
                return bad("attention_checks.answer", format!("`{}` is not one of the options", a.answer));
            }
        }
        if !(self.min_seconds_per_item >= 0.0 && self.min_seconds_per_item.is_finite()) {
            return bad("min_seconds_per_item", "must be a number of seconds, 0 or more".into());
        }
        if self.questions.is_empty() {
            return bad("questions", "ask at least one question per item".into());
        }
        if let Some(dup) = first_duplicate(&self.questions) {
            return bad("questions", format!("`{}` is asked twice", dup.key()));
        }
        if gold > 0 && !self.questions.contains(&Question::Verdict) {
            return bad("questions", "gold items need the `verdict` question".into());
        }
        if self.consent.trim().is_empty() {
            return bad("consent", "must not be empty".into());
        }
        if self.instructions.trim().is_empty() {
            return bad("instructions", "must not be empty".into());
        }
        for (i, p) in self.practice.iter().enumerate() {
            if p.feedback.trim().is_empty() {
                return bad(&format!("practice[{i}].feedback"), "must not be empty".into());
            }
            if let Some(c) = p.condition.as_deref().filter(|c| self.condition(c).is_none()) {
                return bad(&format!("practice[{i}].condition"), format!("no condition is called `{c}`"));
            }
            if p.key.is_none() && p.item <= 0 {
                return bad(&format!("practice[{i}].item"), "name the item by `key` (or `item`, its id)".into());
            }
            if p.item > 0 && (set.ids.contains(&p.item) || self.gold_items.contains(&p.item)) {
                return bad(&format!("practice[{i}].item"), format!("item {} is also a study item", p.item));
            }
            if let Some(k) = p.key.as_ref().filter(|k| set.keys.contains(k) || self.gold_keys.contains(k)) {
                return bad(&format!("practice[{i}].key"), format!("item {k} is also a study item"));
            }
        }
        for (i, q) in self.questionnaire.iter().enumerate() {
            if !key_ok(&q.key) {
                return bad(
                    &format!("questionnaire[{i}].key"),
                    format!("`{}` must be 1-64 characters of a-z, 0-9, _", q.key),
                );
            }
            if self.questionnaire[..i].iter().any(|o| o.key == q.key) {
                return bad(&format!("questionnaire[{i}].key"), format!("`{}` is used twice", q.key));
            }
            if q.text.trim().is_empty() {
                return bad(&format!("questionnaire[{i}].text"), "must not be empty".into());
            }
            if q.kind == QuestionnaireKind::Likert {
                if !(2..=11).contains(&q.points) {
                    return bad(&format!("questionnaire[{i}].points"), format!("{} is not in 2..=11", q.points));
                }
                if !q.labels.is_empty() && q.labels.len() != 2 && q.labels.len() != q.points as usize {
                    return bad(
                        &format!("questionnaire[{i}].labels"),
                        format!("give 2 labels (the ends) or {} (every point), not {}", q.points, q.labels.len()),
                    );
                }
            }
        }
        if !key_ok(&self.completion_code_prefix.to_ascii_lowercase().replace('-', "_")) {
            return bad("completion_code_prefix", "must be 1-64 letters, digits, - or _".into());
        }
        Ok(())
    }
}

fn first_duplicate<T: PartialEq + Clone>(values: &[T]) -> Option<T> {
    values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)).map(|(_, v)| v.clone())
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(values) => {
            out.push('[');
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../assets/studies/formats-within.toml");

    #[test]
    fn the_example_study_loads_validates_and_round_trips_through_toml_and_json() {
        let spec = StudySpec::from_toml(EXAMPLE).unwrap();
        spec.validate().unwrap();
        assert_eq!(spec.design, Design::Within);
        assert_eq!(spec.conditions.len(), 2);
        let again = StudySpec::from_toml(&spec.to_toml().unwrap()).unwrap();
        assert_eq!(again, spec);
        let json = serde_json::to_string_pretty(&spec).unwrap();
        assert_eq!(StudySpec::from_json(&json).unwrap(), spec);
        assert_eq!(again.sha256(), spec.sha256());
        assert_eq!(spec.sha256().len(), 64);
    }

    #[test]
    fn written_toml_reads_back_with_awkward_strings() {
        let mut spec = StudySpec::from_toml(EXAMPLE).unwrap();
        spec.description = "quotes \" and \\ backslashes,\ttabs, \u{1} and \"\"\" triple quotes".into();
        spec.consent = "line one\n\"quoted\"\nline three \\ end\n".into();
        spec.min_seconds_per_item = 2.5;
        let text = spec.to_toml().unwrap();
        assert!(text.starts_with("name = "), "{text}");
        assert_eq!(StudySpec::from_toml(&text).unwrap(), spec, "{text}");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_line() {
        let text = EXAMPLE.replacen("seed =", "sede = 1\nseed =", 1);
        let err = StudySpec::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("unknown field `sede`") && err.contains("line"), "{err}");
        let err = StudySpec::from_json(r#"{"name": "x", "colour": 1}"#).unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        let base = StudySpec::from_toml(EXAMPLE).unwrap();
        type Change = Box<dyn Fn(&mut StudySpec)>;
        let cases: Vec<(&str, Change)> = vec![
            ("attention_checks.answer", Box::new(|s| s.attention_checks.as_mut().unwrap().answer = "maybe".into())),
            ("conditions[1].name", Box::new(|s| s.conditions[1].name = s.conditions[0].name.clone())),
            ("items_per_participant", Box::new(|s| s.items_per_participant = 0)),
            ("gold_items", Box::new(|s| s.gold_items = vec![1, 2, 3, 4, 5, 6, 7, 8])),
            ("questions", Box::new(|s| s.questions.clear())),
            ("questionnaire[0].key", Box::new(|s| s.questionnaire[0].key = "Bad Key".into())),
            ("attention_checks", Box::new(|s| s.attention_checks.as_mut().unwrap().probability = Some(0.5))),
        ];
        for (field, change) in cases {
            let mut spec = base.clone();
            change(&mut spec);
            let err = spec.validate().unwrap_err().to_string();
            assert!(err.starts_with(field), "{field}: {err}");
        }
    }

    #[test]
    fn the_canonical_json_ignores_key_order_but_not_values() {
        let spec = StudySpec::from_toml(EXAMPLE).unwrap();
        let mut changed = spec.clone();
        changed.seed += 1;
        assert_ne!(spec.sha256(), changed.sha256());
        assert!(spec.canonical_json().starts_with("{\"attention_checks\":"));
    }
}
