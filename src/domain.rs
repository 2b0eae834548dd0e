//! Plain data types shared by every layer: items, rationales, judgements, feedback, verdicts.
//!
//! This module holds no I/O and knows nothing of SQLite, files, jobs or the UI.

use serde::{Deserialize, Serialize};

/// Row id of an item in the store.
pub type ItemId = i64;
/// Row id of one rationale revision.
pub type RationaleId = i64;
/// Row id of an annotator.
pub type AnnotatorId = i64;
/// Row id of a judgement.
pub type JudgementId = i64;
/// Row id of a dataset.
pub type DatasetId = i64;

/// A name that matches no variant of a [`named_enum!`] enum: what was given, and every name that would do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{given}'; known: {known}")]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub known: String,
}

/// Gives a fieldless enum the names it is typed, stored and exported under: `ALL` (every variant, in the order
/// users see them), `as_str`, `Display`, and `FromStr` (any case, surrounding spaces ignored) whose error,
/// [`UnknownName`], lists the known names. One table per enum instead of three hand-written `match`es.
macro_rules! named_enum {
    ($name:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every variant, in the order they are listed to users.
            pub const ALL: [Self; [$($text),+].len()] = [$(Self::$variant),+];

            /// The name used on the command line, in files and in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            /// The name, honouring width and alignment (`{:<5}` pads it in tables).
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let given = s.trim();
                Self::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(given)).ok_or_else(|| {
                    $crate::domain::UnknownName {
                        what: $what,
                        given: given.to_owned(),
                        known: [$($text),+].join(", "),
                    }
                })
            }
        }
    };
}
pub(crate) use named_enum;

/// A verdict on a news item: what a person, a gold label or a rationale says about it.
///
/// `Other` is ARG's third LLM class ("other": the rationale takes no side); for a person it means *unsure*.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Real,
    Fake,
    Other,
}

impl Verdict {
    pub const ALL: [Self; 3] = [Self::Real, Self::Fake, Self::Other];

    /// The value stored in SQLite and written to exports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Real => "real",
            Self::Fake => "fake",
            Self::Other => "other",
        }
    }

    /// How a person's verdict is named in the studio (`Other` reads as "unsure").
    pub fn human_name(self) -> &'static str {
        match self {
            Self::Real => "real",
            Self::Fake => "fake",
            Self::Other => "unsure",
        }
    }

    /// ARG's integer coding for labels and LLM judgements: real = 0, fake = 1, other = 2.
    pub fn arg_code(self) -> u8 {
        match self {
            Self::Real => 0,
            Self::Fake => 1,
            Self::Other => 2,
        }
    }

    /// Parses the stored form, and the human synonym "unsure".
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "real" => Some(Self::Real),
            "fake" => Some(Self::Fake),
            "other" | "unsure" => Some(Self::Other),
            _ => None,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which guidance model (a version in the store has one kind; one version of each kind is in use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// ARG: news plus rationales.
    Arg,
    /// ARG-D: the rationale-free student distilled from an ARG version.
    Argd,
    /// BERT-only baseline.
    Bert,
}

named_enum!(ModelKind, "model kind", { Arg => "arg", Argd => "argd", Bert => "bert" });

impl ModelKind {
    /// The stored name (`arg`, `argd`, `bert`), any case, surrounding spaces ignored.
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    pub fn human_name(self) -> &'static str {
        match self {
            Self::Arg => "ARG",
            Self::Argd => "ARG-D",
            Self::Bert => "BERT only",
        }
    }
}

/// Where a rationale revision came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RationaleOrigin {
    /// Read from a dataset file (ARG's GPT-3.5 rationales, PolitiFact justifications).
    Imported,
    /// Written by a local or served LLM.
    Generated,
    /// Corrected by a person.
    Human,
    /// Rewritten by an LLM from a person's feedback.
    Repaired,
}

named_enum!(RationaleOrigin, "rationale origin", {
    Imported => "imported",
    Generated => "generated",
    Human => "human",
    Repaired => "repaired",
});

impl RationaleOrigin {
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// The news text a model sees: the title, a blank line and the text (the title alone is left out when the text
/// already starts with it).
pub fn news_text(title: &str, text: &str) -> String {
    if title.trim().is_empty() || text.starts_with(title.trim()) {
        text.trim().to_owned()
    } else {
        format!("{}\n\n{}", title.trim(), text.trim())
    }
}

/// The namespace of an item key for the format a dataset was read in: a source's ids are unique within it only.
pub fn key_family(format: &str) -> &'static str {
    match format {
        "liar2-csv" => "liar2",
        "liar-plus-tsv" | "liar-plus-jsonl" => "liar-plus",
        "arg-json" => "arg",
        _ => "id",
    }
}

/// The content-addressed key of an item without an id of its own: `sha:` and 20 hex digits of the sha256 of its
/// text and source, each lower-cased with runs of white space made one space.
pub fn content_key(text: &str, source: Option<&str>) -> String {
    use sha2::{Digest as _, Sha256};
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    let mut h = Sha256::new();
    h.update(norm(text).as_bytes());
    h.update([0x1f]);
    h.update(norm(source.unwrap_or("")).as_bytes());
    let digest = h.finalize();
    let mut key = String::from("sha:");
    for b in &digest[..10] {
        key.push_str(&format!("{b:02x}"));
    }
    key
}

/// The stable key of an item, the same in every database it is imported into: `FAMILY:ID` (see [`key_family`])
/// when the source gives the item an id, else [`content_key`].
pub fn item_key(family: &str, external_id: Option<&str>, text: &str, source: Option<&str>) -> String {
    match external_id.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => format!("{family}:{id}"),
        None => content_key(text, source),
    }
}

/// Hands out item keys for a sequence of items in a stable order: the n-th repeat of a key gets `#n`, so the same
/// file read twice gives the same keys.
#[derive(Debug, Default)]
pub struct KeyAssigner {
    seen: std::collections::HashMap<String, u32>,
}

impl KeyAssigner {
    /// The key for the next item whose base key is `base`.
    pub fn next(&mut self, base: &str) -> String {
        let n = self.seen.entry(base.to_string()).or_insert(0);
        *n += 1;
        if *n == 1 { base.to_string() } else { format!("{base}#{n}") }
    }
}

/// One level of a fact-checker's rating scale, with what it means for training (`None`: no real/fake verdict, for
/// example "missing context").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingLevel {
    pub name: String,
    pub verdict: Option<Verdict>,
}

/// A rating scale of the user's choosing, worst level first (ClaimReview's `worstRating` is 1, `bestRating` the
/// number of levels).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatingScale {
    pub name: String,
    pub levels: Vec<RatingLevel>,
}

impl Default for RatingScale {
    fn default() -> Self {
        Self::politifact()
    }
}

impl RatingScale {
    /// PolitiFact's six levels (Truth-O-Meter), mapped as Argus's default label map maps them.
    pub fn politifact() -> Self {
        let level = |name: &str, v| RatingLevel { name: name.into(), verdict: Some(v) };
        Self {
            name: "politifact".into(),
            levels: vec![
                level("Pants on Fire", Verdict::Fake),
                level("False", Verdict::Fake),
                level("Mostly False", Verdict::Fake),
                level("Half True", Verdict::Real),
                level("Mostly True", Verdict::Real),
                level("True", Verdict::Real),
            ],
        }
    }

    /// Parses `NAME: LEVEL=real|fake|other, ...` (worst level first; the name and `NAME:` are optional), e.g.
    /// `afp: False=fake, Misleading=fake, Missing context=other, True=real`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (name, levels) = match spec.split_once(':') {
            Some((n, rest)) if !n.contains('=') => (n.trim().to_string(), rest),
            _ => ("custom".to_string(), spec),
        };
        let mut out = Vec::new();
        for part in levels.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (level, verdict) =
                part.rsplit_once('=').ok_or_else(|| format!("'{part}' is not LEVEL=real|fake|other"))?;
            let level = level.trim();
            if level.is_empty() {
                return Err(format!("'{part}' names no level"));
            }
            let verdict = match verdict.trim().to_ascii_lowercase().as_str() {
                "real" => Some(Verdict::Real),
                "fake" => Some(Verdict::Fake),
                "other" | "none" => None,
                v => return Err(format!("'{part}': '{v}' is not real, fake or other")),
            };
            if out.iter().any(|l: &RatingLevel| l.name.eq_ignore_ascii_case(level)) {
                return Err(format!("level '{level}' is given twice"));
            }
            out.push(RatingLevel { name: level.to_string(), verdict });
        }
        if out.len() < 2 {
            return Err("a rating scale needs at least two levels, worst first".into());
        }
        if name.is_empty() {
            return Err("the scale's name is empty".into());
        }
        Ok(Self { name, levels: out })
    }

    /// The scale in [`Self::parse`]'s syntax.
    pub fn spec(&self) -> String {
        let levels: Vec<String> =
            self.levels.iter().map(|l| format!("{}={}", l.name, l.verdict.map_or("other", Verdict::as_str))).collect();
        format!("{}: {}", self.name, levels.join(", "))
    }

    /// A level by name (case-insensitive) with its 1-based value.
    pub fn level(&self, name: &str) -> Option<(i64, &RatingLevel)> {
        let name = name.trim();
        self.levels.iter().enumerate().find(|(_, l)| l.name.eq_ignore_ascii_case(name)).map(|(i, l)| (i as i64 + 1, l))
    }
}

/// A fact-checker's review about to be stored.
#[derive(Clone, Debug, PartialEq)]
pub struct NewReview {
    pub item_id: ItemId,
    pub reviewer: AnnotatorId,
    pub scale: RatingScale,
    /// A level of `scale`.
    pub rating: String,
    pub explanation: String,
    /// Links to the evidence (http or https).
    pub evidence: Vec<String>,
}

/// A stored review.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Review {
    pub id: i64,
    pub item_id: ItemId,
    pub reviewer: String,
    pub scale: String,
    pub rating: String,
    pub rating_value: i64,
    pub best_rating: i64,
    pub worst_rating: i64,
    pub verdict: Option<Verdict>,
    pub explanation: String,
    pub evidence: Vec<String>,
    pub created_at: String,
    /// Undone (the row stays, as history).
    pub retracted: bool,
}

/// A news item or claim, as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: ItemId,
    /// The item's stable key ([`item_key`]): how bundles, exports and study files name it across databases.
    #[serde(default)]
    pub key: String,
    pub dataset_id: DatasetId,
    pub external_id: Option<String>,
    pub title: Option<String>,
    pub text: String,
    pub source: Option<String>,
    pub published: Option<String>,
    /// Binary gold label (real/fake) derived from `original_label` through the import's label map.
    pub gold_label: Option<Verdict>,
    /// The label exactly as the source gave it.
    pub original_label: Option<String>,
    pub split: Option<String>,
    /// Every source column that has no field of its own, as a JSON object.
    pub metadata: serde_json::Value,
}

impl Item {
    /// The news as models read it: the title (when there is one) and the text, as [`news_text`] joins them.
    pub fn news_text(&self) -> String {
        news_text(self.title.as_deref().unwrap_or(""), &self.text)
    }
}

/// One revision of a rationale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rationale {
    pub id: RationaleId,
    pub item_id: ItemId,
    /// Id of the first revision of this rationale.
    pub root_id: RationaleId,
    /// The revision this one corrects; `None` for the first.
    pub parent_id: Option<RationaleId>,
    pub revision: u32,
    pub perspective: String,
    pub origin: RationaleOrigin,
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub text: String,
    /// The verdict the rationale implies (ARG's r_pred), when known.
    pub verdict: Option<Verdict>,
    pub author: Option<String>,
    pub created_at: String,
}

/// A person's verdict on an item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub id: JudgementId,
    pub item_id: ItemId,
    pub annotator: String,
    pub verdict: Verdict,
    pub confidence: Option<f64>,
    pub note: Option<String>,
    pub time_spent_ms: i64,
    pub adjudicated: bool,
    pub created_at: String,
}

/// What a person is about to record as a judgement.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJudgement {
    pub item_id: ItemId,
    pub annotator_id: AnnotatorId,
    pub verdict: Verdict,
    pub confidence: Option<f64>,
    pub note: Option<String>,
    pub time_spent_ms: i64,
}

/// How useful a person found a rationale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Usefulness {
    Useful,
    NotUseful,
    Misleading,
}

impl Usefulness {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Useful => "useful",
            Self::NotUseful => "not_useful",
            Self::Misleading => "misleading",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "useful" => Some(Self::Useful),
            "not_useful" => Some(Self::NotUseful),
            "misleading" => Some(Self::Misleading),
            _ => None,
        }
    }
}

/// Structured feedback on one rationale revision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewFeedback {
    pub rationale_id: RationaleId,
    pub annotator_id: AnnotatorId,
    pub format: String,
    pub usefulness: Option<Usefulness>,
    /// 1..=3
    pub sufficiency: Option<u8>,
    /// 1..=3
    pub faithfulness: Option<u8>,
    pub agrees_verdict: Option<bool>,
    /// Natural-language feedback in three parts: where the problem is, what is wrong, how to fix it.
    pub fb_where: Option<String>,
    pub fb_what: Option<String>,
    pub fb_fix: Option<String>,
    /// How easy giving the feedback was, 1 (very hard) ..= 4 (very easy).
    pub ease: Option<u8>,
    /// Likert 1 ..= 7: "I understand how the model reached its verdict".
    pub understanding: Option<u8>,
    /// Likert 1 ..= 7: "I trust this explanation".
    pub trust: Option<u8>,
    /// The stored rendering of the format the person saw, when it was written by the LLM.
    pub rendering_id: Option<i64>,
    pub time_spent_ms: i64,
}

impl NewFeedback {
    /// True when the three-part natural-language feedback says what is wrong or how to fix it.
    pub fn has_written_feedback(&self) -> bool {
        [&self.fb_what, &self.fb_fix].iter().any(|t| t.as_deref().is_some_and(|t| !t.trim().is_empty()))
    }
}

/// A dataset about to be imported.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDataset {
    pub name: String,
    /// The importer that read it (`arg-json`, `liar2-csv`, ...).
    pub format: String,
    pub source_path: String,
    pub license_note: Option<String>,
}

/// An item about to be imported, with the rationales that come with it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewItem {
    pub external_id: Option<String>,
    pub title: Option<String>,
    pub text: String,
    pub source: Option<String>,
    pub published: Option<String>,
    pub gold_label: Option<Verdict>,
    pub original_label: Option<String>,
    pub split: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub rationales: Vec<NewRationale>,
}

/// A first revision of a rationale about to be stored.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRationale {
    pub perspective: String,
    pub origin: RationaleOrigin,
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub text: String,
    pub verdict: Option<Verdict>,
}

/// What the item list needs of one item: small enough to hold 100,000 in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemSummary {
    pub id: ItemId,
    /// Title, or the start of the text.
    pub headline: String,
    /// Lower-cased title + text + source, for the list's text filter.
    pub search_text: String,
    pub gold_label: Option<Verdict>,
    /// The standing verdict of the current annotator, if any.
    pub my_verdict: Option<Verdict>,
    /// Standing verdicts of all annotators (one per annotator).
    pub verdicts: Vec<(AnnotatorId, Verdict)>,
}

impl ItemSummary {
    /// True when people disagree with each other, or their resolved verdict contradicts the gold label.
    pub fn has_disagreement(&self) -> bool {
        let Some(&(_, first)) = self.verdicts.first() else { return false };
        if self.verdicts.iter().any(|&(_, v)| v != first) {
            return true;
        }
        match self.gold_label {
            Some(gold) => first != Verdict::Other && first != gold,
            None => false,
        }
    }
}

/// Counts printed by `argus stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub datasets: u64,
    pub items: u64,
    pub rationales: u64,
    /// Latest rationales that carry an implied verdict (ARG's r_pred).
    pub rationales_with_verdict: u64,
    pub judgements: u64,
    pub feedback: u64,
    pub annotators: u64,
    /// Items with at least one standing judgement.
    pub judged_items: u64,
}

/// One line: `3 datasets, 3580 items (0 judged), 3100 rationales, 0 judgements, 0 feedback, 0 annotators`.
impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} datasets, {} items ({} judged), {} rationales, {} judgements, {} feedback, {} annotators",
            self.datasets,
            self.items,
            self.judged_items,
            self.rationales,
            self.judgements,
            self.feedback,
            self.annotators
        )
    }
}

/// Resolves several people's verdicts on one item into one: an adjudicated verdict wins, else the majority;
/// a tie gives `None`.
pub fn resolve_verdicts<'a>(judgements: impl IntoIterator<Item = &'a Judgement>) -> Option<Verdict> {
    let mut counts = [0usize; 3];
    let mut adjudicated = None;
    for j in judgements {
        if j.adjudicated {
            adjudicated = Some(j.verdict);
        }
        counts[j.verdict.arg_code() as usize] += 1;
    }
    if adjudicated.is_some() {
        return adjudicated;
    }
    let max = *counts.iter().max()?;
    if max == 0 {
        return None;
    }
    let winners: Vec<_> = Verdict::ALL.into_iter().filter(|v| counts[v.arg_code() as usize] == max).collect();
    (winners.len() == 1).then(|| winners[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(verdict: Verdict, adjudicated: bool) -> Judgement {
        Judgement {
            id: 0,
            item_id: 1,
            annotator: "a".into(),
            verdict,
            confidence: None,
            note: None,
            time_spent_ms: 0,
            adjudicated,
            created_at: String::new(),
        }
    }

    #[test]
    fn majority_wins_and_ties_are_unresolved() {
        let v = [j(Verdict::Fake, false), j(Verdict::Fake, false), j(Verdict::Real, false)];
        assert_eq!(resolve_verdicts(&v), Some(Verdict::Fake));
        let v = [j(Verdict::Fake, false), j(Verdict::Real, false)];
        assert_eq!(resolve_verdicts(&v), None);
        assert_eq!(resolve_verdicts(&[]), None);
    }

    #[test]
    fn adjudicated_verdict_overrides_majority() {
        let v = [j(Verdict::Fake, false), j(Verdict::Fake, false), j(Verdict::Real, true)];
        assert_eq!(resolve_verdicts(&v), Some(Verdict::Real));
    }

    #[test]
    fn verdict_round_trips() {
        for v in Verdict::ALL {
            assert_eq!(Verdict::parse(v.as_str()), Some(v));
        }
        assert_eq!(Verdict::parse(" Unsure "), Some(Verdict::Other));
        assert_eq!(Verdict::parse("maybe"), None);
    }
}
