//! The studio's working state, apart from any drawing: the open database, the annotator, the item list with its
//! filter and order (as imported, or by what the guidance models predict), the selected item with those
//! predictions, the model versions in use, and the undo stack. The UI turns key presses and clicks into
//! [`Command`]s and hands them to [`Workspace::apply`], the one place where user actions reach the store; every
//! action is committed before `apply` returns.
//!
//! This module knows nothing of egui or of background jobs; it is driven the same way by the UI and by tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::domain::ModelKind;
use crate::domain::{
    AnnotatorId, Item, ItemId, ItemSummary, Judgement, JudgementId, NewFeedback, NewJudgement, NewReview, RatingScale,
    Rationale, RationaleId, RationaleOrigin, Review, Verdict,
};
use crate::formats::generate::{self, Rendered};
use crate::formats::{Format, FormatError};
use crate::guidance::metrics::Metrics;
use crate::guidance::train::EpochRecord;
use crate::guidance::triage::{self, Order, Signals};
use crate::ingest;
use crate::jobs::Progress;
use crate::prompting::{Perspective, builtin_perspectives};
use crate::store::formats::{FeedbackRow, FormatRepairStats, RepairRow};
use crate::store::guidance::Prediction;
use crate::store::studies::{RegisterOutcome, Timing};
use crate::store::{Store, StoreError};
use crate::studies::analysis::{self, Analysis, Exclusions};
use crate::studies::flow::{Answered, ItemView, Session};
use crate::studies::metrics::{self, AgreementSummary};
use crate::studies::spec::StudySpec;
use crate::studies::{self, Study, StudyError};

/// Which gold label to show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LabelFilter {
    #[default]
    Any,
    Real,
    Fake,
    Unlabelled,
}

/// Which judgement status to show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatusFilter {
    #[default]
    All,
    /// Not yet judged by the current annotator.
    Unjudged,
    /// Judged by the current annotator.
    JudgedByMe,
}

/// The item list's filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemFilter {
    /// Case-insensitive words that must all occur in the title, text or source.
    pub text: String,
    pub label: LabelFilter,
    pub status: StatusFilter,
    /// Only items where people disagree, or where people contradict the gold label.
    pub disagreement_only: bool,
}

impl ItemFilter {
    /// The search text as lower-case words.
    pub fn words(&self) -> Vec<String> {
        self.text.to_lowercase().split_whitespace().map(str::to_owned).collect()
    }

    /// True when every item this filter shows is also shown by `previous`: the search text only grew word-wise
    /// and nothing else changed. Only for filters whose result does not depend on judgements (which change while
    /// the list is shown), so re-filtering the current list gives the same result as filtering all items.
    pub fn narrows(&self, previous: &ItemFilter) -> bool {
        let (old, new) = (previous.words(), self.words());
        self.label == previous.label
            && self.status == StatusFilter::All
            && previous.status == StatusFilter::All
            && !self.disagreement_only
            && !previous.disagreement_only
            && new.len() >= old.len()
            && old.iter().zip(&new).all(|(o, n)| n.contains(o.as_str()))
    }

    pub fn matches(&self, s: &ItemSummary, words: &[String]) -> bool {
        let label_ok = match self.label {
            LabelFilter::Any => true,
            LabelFilter::Real => s.gold_label == Some(Verdict::Real),
            LabelFilter::Fake => s.gold_label == Some(Verdict::Fake),
            LabelFilter::Unlabelled => s.gold_label.is_none(),
        };
        let status_ok = match self.status {
            StatusFilter::All => true,
            StatusFilter::Unjudged => s.my_verdict.is_none(),
            StatusFilter::JudgedByMe => s.my_verdict.is_some(),
        };
        label_ok
            && status_ok
            && (!self.disagreement_only || s.has_disagreement())
            && words.iter().all(|w| s.search_text.contains(w.as_str()))
    }
}

/// Everything the item view shows of the selected item.
#[derive(Clone, Debug)]
pub struct ItemDetail {
    pub item: Item,
    pub dataset: String,
    /// Latest revision of each rationale, ordered by perspective.
    pub rationales: Vec<Rationale>,
    /// Standing judgements of every annotator.
    pub judgements: Vec<Judgement>,
    /// What the guidance models in use predict for this item.
    pub guidance: GuidanceDetail,
    /// Per rationale (by the id of its latest revision): revisions, formats shown so far, this annotator's
    /// feedback forms, and the repair that produced it.
    pub explain: HashMap<RationaleId, RationaleExplain>,
    /// Fact-checkers' reviews of the item, newest first, undone ones included (the history).
    pub reviews: Vec<Review>,
}

/// What the explanation view needs of one rationale chain; read when the item is loaded or changes, never per
/// frame.
#[derive(Clone, Debug, Default)]
pub struct RationaleExplain {
    /// Every revision of the chain, oldest first (the last is the one shown).
    pub revisions: Vec<Rationale>,
    /// The latest revision in every format available without the model (free text, side by side) and in every
    /// structured format stored for it (the newest per format).
    pub renderings: Vec<Rendered>,
    /// The current annotator's feedback forms on the latest revision, one per format.
    pub forms: Vec<FeedbackRow>,
    /// Repairs made from those forms, by feedback row.
    pub repairs: HashMap<i64, Vec<RepairRow>>,
    /// The repair that produced the latest revision, when it was machine-repaired.
    pub produced_by: Option<RepairRow>,
}

impl RationaleExplain {
    pub fn rendering(&self, format: Format) -> Option<&Rendered> {
        self.renderings.iter().find(|r| r.format == format)
    }

    pub fn form(&self, format: Format) -> Option<&FeedbackRow> {
        self.forms.iter().find(|f| f.form.format == format.as_str())
    }
}

/// The guidance models' predictions for one item: ARG's in full (P(fake), trust in each rationale, predicted
/// usefulness and LLM verdict per perspective), ARG-D's and BERT's P(fake).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GuidanceDetail {
    /// The ARG version in use and its prediction for the item, if any.
    pub arg: Option<(i64, Prediction)>,
    /// (version, P(fake)) of the ARG-D version in use.
    pub argd: Option<(i64, f64)>,
    /// (version, P(fake)) of the BERT-only version in use.
    pub bert: Option<(i64, f64)>,
}

impl GuidanceDetail {
    pub fn is_empty(&self) -> bool {
        self.arg.is_none() && self.argd.is_none() && self.bert.is_none()
    }
}

/// The version in use of each guidance model kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActiveVersions {
    pub arg: Option<i64>,
    pub argd: Option<i64>,
    pub bert: Option<i64>,
}

impl ActiveVersions {
    /// Reads the versions in use from the store.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        Ok(Self {
            arg: store.active_version(ModelKind::Arg)?,
            argd: store.active_version(ModelKind::Argd)?,
            bert: store.active_version(ModelKind::Bert)?,
        })
    }

    /// The version in use of `kind`.
    pub fn of(&self, kind: ModelKind) -> Option<i64> {
        match kind {
            ModelKind::Arg => self.arg,
            ModelKind::Argd => self.argd,
            ModelKind::Bert => self.bert,
        }
    }
}

/// Why the workspace could not do what it was asked. Whatever it had committed before stays; nothing half-done is.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("'{0}' is not a built-in perspective")]
    UnknownPerspective(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Study(#[from] StudyError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Import(#[from] ingest::ImportError),
    #[error(transparent)]
    Ingest(#[from] ingest::IngestError),
}

/// A user action. Produced by the UI (or a test), carried out by [`Workspace::apply`].
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Record the current annotator's verdict on the selected item, then move to the next item.
    Judge {
        verdict: Verdict,
        confidence: Option<f64>,
        note: Option<String>,
    },
    /// Move on without a verdict.
    Skip,
    Next,
    Previous,
    /// Select the item at this position of the filtered list.
    SelectRow(usize),
    /// Take back the last judgement of this session (the row is kept, marked retracted).
    Undo,
    SetFilter(ItemFilter),
    /// Store a corrected rationale text / verdict as a new revision of `parent`.
    ReviseRationale {
        parent: RationaleId,
        text: String,
        verdict: Option<Verdict>,
    },
    /// Add or update a perspective (prompt, verdict question, name).
    SavePerspective(Perspective),
    /// Put a built-in perspective back to how Argus ships it.
    ResetPerspective(String),
    /// Reload the shown item from the database (another connection, e.g. the rationale writer, changed it).
    Refresh,
    /// Order the item list (as imported, by risk, uncertainty, disagreement, or a seeded shuffle).
    SetOrder(Order),
    /// The fact-checker's queue: only items nobody has judged yet, riskiest first (on top of the filter).
    SetFactCheckQueue(bool),
    /// Re-read the guidance models' versions in use and their predictions (a training run, another connection,
    /// stored new ones), re-order the list and reload the shown item.
    ReloadPredictions,
    /// Make this model version the one in use for its kind (roll back, or forward again); nothing is deleted.
    UseModelVersion(i64),
    /// Autosave the current annotator's feedback form on a rationale revision shown in a format (its
    /// `annotator_id` is replaced by the current annotator's).
    SaveFeedback(NewFeedback),
    /// Bring back an earlier revision's text and verdict as a new revision of its chain (nothing is deleted).
    RestoreRevision(RationaleId),
    /// Validate a study file, resolve its items and register it ([`crate::studies::register`]): a new study, a
    /// replaced draft, or a new version when the newest one is frozen.
    RegisterStudy(Box<StudySpec>),
    /// Record the current annotator's final (adjudicated) verdict on an item people disagree on.
    Adjudicate {
        item: ItemId,
        verdict: Verdict,
        note: Option<String>,
    },
    /// Publish the current annotator's fact-check review of the selected item; in the fact-check queue, the next
    /// item to review is shown.
    PublishReview {
        scale: RatingScale,
        rating: String,
        explanation: String,
        evidence: Vec<String>,
    },
    /// Undo a review (the row stays, marked retracted).
    RetractReview(i64),
}

/// What happened, for the UI's status line.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Nothing,
    Judged { item: ItemId, verdict: Verdict, judgement: JudgementId },
    Undone { item: ItemId, verdict: Verdict },
    NothingToUndo,
    Revised { rationale: RationaleId, revision: u32 },
    PerspectiveSaved { key: String },
    Moved,
    Filtered { shown: usize },
    Ordered { order: Order, shown: usize },
    VersionInUse { version: i64, kind: ModelKind },
    FeedbackSaved { id: i64 },
    StudyRegistered { name: String, version: u32, outcome: RegisterOutcome },
    Adjudicated { item: ItemId, verdict: Verdict },
    Reviewed { item: ItemId, rating: String },
    ReviewUndone { item: ItemId },
}

#[derive(Clone, Debug)]
struct UndoEntry {
    judgement: JudgementId,
    item: ItemId,
    verdict: Verdict,
}

/// The studio's state over one open database.
pub struct Workspace {
    store: Store,
    annotator: String,
    annotator_id: AnnotatorId,
    items: Vec<ItemSummary>,
    filter: ItemFilter,
    /// Indices into `items` that pass the filter, in list order.
    filtered: Vec<usize>,
    /// Position in `filtered` of the selected item.
    cursor: Option<usize>,
    detail: Option<ItemDetail>,
    shown_at: Instant,
    undo: Vec<UndoEntry>,
    judged_by_me: usize,
    /// Items whose judgements this session changed, to re-read after the item list is replaced.
    touched: std::collections::BTreeSet<ItemId>,
    perspectives: Vec<Perspective>,
    /// Order of the filtered list.
    order: Order,
    /// Show only the items nobody has judged nor reviewed, riskiest first.
    fact_check_queue: bool,
    /// Items with a standing fact-check review.
    reviewed: std::collections::HashSet<ItemId>,
    /// The guidance model versions in use.
    active: ActiveVersions,
    /// What is known of each item for ordering: models' P(fake) always (when a version is in use); rationale and
    /// people's verdicts only while the list is ordered by disagreement. Read on open and on `SetOrder`,
    /// `SetFactCheckQueue` and `ReloadPredictions`, never per frame.
    signals: HashMap<ItemId, Signals>,
    /// Some item has a P(fake) in `signals`.
    has_predictions: bool,
    /// The online learner's predictions not saved as a version yet; they stand in for the version they grew from
    /// while it is in use.
    live: Option<LivePredictions>,
}

/// Predictions of the online learner (`guidance::online`) for every item, standing in for those of `version`.
#[derive(Clone, Debug, PartialEq)]
pub struct LivePredictions {
    pub kind: ModelKind,
    pub version: i64,
    pub predictions: HashMap<ItemId, Prediction>,
}

impl Workspace {
    /// Opens `db` for `annotator` and loads the item list. With `seed_demo`, an empty database first gets the
    /// bundled demo sample (this is how the built-in demo is created on first use).
    pub fn open(db: &Path, annotator: &str, seed_demo: bool, progress: &dyn Progress) -> Result<Self, WorkspaceError> {
        progress.set(0, 0, "opening database");
        let mut store = Store::open(db)?;
        if seed_demo && store.stats()?.items == 0 {
            import_demo(&mut store, progress)?;
        }
        progress.set(0, 0, "loading items");
        let annotator_id = store.annotator_id(annotator)?;
        let items = store.item_summaries(Some(annotator_id))?;
        let perspectives = store.perspectives()?;
        let active = ActiveVersions::load(&store)?;
        let signals = model_signals(&store, &active)?;
        let reviewed = store.standing_reviews()?.into_keys().collect();
        let mut ws = Self::from_parts(store, annotator.trim().to_owned(), annotator_id, items);
        ws.reviewed = reviewed;
        ws.perspectives = perspectives;
        ws.active = active;
        ws.set_signals(signals);
        // The shown item was loaded before the predictions were known.
        ws.reload_detail()?;
        Ok(ws)
    }

    fn from_parts(store: Store, annotator: String, annotator_id: AnnotatorId, items: Vec<ItemSummary>) -> Self {
        let mut ws = Self {
            store,
            annotator,
            annotator_id,
            items: Vec::new(),
            filter: ItemFilter::default(),
            filtered: Vec::new(),
            cursor: None,
            detail: None,
            shown_at: Instant::now(),
            undo: Vec::new(),
            judged_by_me: 0,
            touched: Default::default(),
            perspectives: Vec::new(),
            order: Order::Natural,
            fact_check_queue: false,
            reviewed: Default::default(),
            active: ActiveVersions::default(),
            signals: HashMap::new(),
            has_predictions: false,
            live: None,
        };
        ws.items = items;
        ws.judged_by_me = ws.items.iter().filter(|s| s.my_verdict.is_some()).count();
        ws.refilter();
        // Resume where this annotator left off: the first item they have not judged.
        let first_unjudged = (0..ws.filtered.len()).find(|&r| ws.items[ws.filtered[r]].my_verdict.is_none());
        ws.select(first_unjudged.or((!ws.filtered.is_empty()).then_some(0)));
        ws
    }

    /// Replaces the item list (after an import in the background), keeping the selection when it still exists.
    ///
    /// The list was loaded by another connection, possibly before this session's latest judgements: the items this
    /// session touched are re-read from the store so that none of them shows a stale verdict.
    pub fn replace_items(&mut self, items: Vec<ItemSummary>) -> Result<(), StoreError> {
        let selected = self.selected_id();
        self.items = items;
        self.reviewed = self.store.standing_reviews()?.into_keys().collect();
        self.judged_by_me = self.items.iter().filter(|s| s.my_verdict.is_some()).count();
        for item in self.touched.clone() {
            self.refresh_summary(item, false)?;
        }
        self.refilter();
        let pos = selected.and_then(|id| self.row_of(id));
        self.select(pos.or((!self.filtered.is_empty()).then_some(0)));
        Ok(())
    }

    /// Position of an item in the filtered list.
    fn row_of(&self, item: ItemId) -> Option<usize> {
        // `items` is in id order; so is `filtered` when the list is shown as imported (a binary search), else a scan.
        let index = self.items.binary_search_by_key(&item, |s| s.id).ok()?;
        if self.is_natural_order() {
            self.filtered.binary_search(&index).ok()
        } else {
            self.filtered.iter().position(|&i| i == index)
        }
    }

    /// True when the list shows the filtered items in import (id) order.
    fn is_natural_order(&self) -> bool {
        self.order == Order::Natural && !self.fact_check_queue
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn db_path(&self) -> PathBuf {
        self.store.path().to_path_buf()
    }

    pub fn annotator(&self) -> &str {
        &self.annotator
    }

    /// The perspectives rationales are written from, in display order.
    pub fn perspectives(&self) -> &[Perspective] {
        &self.perspectives
    }

    pub fn filter(&self) -> &ItemFilter {
        &self.filter
    }

    /// How the list is ordered.
    pub fn order(&self) -> Order {
        self.order
    }

    /// True while the list is the fact-checker's queue (items nobody judged nor reviewed, riskiest first).
    pub fn is_fact_check_queue(&self) -> bool {
        self.fact_check_queue
    }

    /// The fact-check state of the whole list: (reviewed, to review).
    pub fn review_counts(&self) -> (usize, usize) {
        (self.reviewed.len(), self.items.len().saturating_sub(self.reviewed.len()))
    }

    /// True when the item has a standing fact-check review.
    pub fn is_reviewed(&self, item: ItemId) -> bool {
        self.reviewed.contains(&item)
    }

    /// The guidance model versions in use (as of the last open, roll back or `ReloadPredictions`).
    pub fn active_versions(&self) -> ActiveVersions {
        self.active
    }

    /// The best P(fake) the models in use give `item` (ARG, else ARG-D, else BERT).
    pub fn p_fake(&self, item: ItemId) -> Option<f64> {
        self.signals.get(&item).and_then(Signals::p_fake)
    }

    /// True when some model version in use has predictions.
    pub fn has_predictions(&self) -> bool {
        self.has_predictions
    }

    fn set_signals(&mut self, mut signals: HashMap<ItemId, Signals>) {
        if let Some(live) = self.live_in_use() {
            for (item, p) in &live.predictions {
                let s = signals.entry(*item).or_default();
                match live.kind {
                    ModelKind::Arg => s.arg = Some(p.p_fake),
                    ModelKind::Argd => s.argd = Some(p.p_fake),
                    ModelKind::Bert => s.bert = Some(p.p_fake),
                }
            }
        }
        self.has_predictions = signals.values().any(|s| s.p_fake().is_some());
        self.signals = signals;
    }

    /// The online learner's predictions when the version they grew from is still the one in use.
    fn live_in_use(&self) -> Option<&LivePredictions> {
        self.live.as_ref().filter(|l| self.active.of(l.kind) == Some(l.version))
    }

    /// Shows the online learner's new predictions: the list and the fact-check queue re-ordered by them, the
    /// selection kept, the shown item's predictions replaced. Returns how many of the shown items changed place.
    pub fn apply_live_predictions(&mut self, live: LivePredictions) -> Result<usize, StoreError> {
        let before: HashMap<ItemId, usize> =
            self.filtered_ids().into_iter().enumerate().map(|(i, id)| (id, i)).collect();
        self.live = Some(live);
        self.reorder(true)?;
        let after = self.filtered_ids();
        Ok(after.iter().enumerate().filter(|(i, id)| before.get(id) != Some(i)).count())
    }

    /// Number of items passing the filter.
    pub fn filtered_len(&self) -> usize {
        self.filtered.len()
    }

    /// The item at position `row` of the filtered list.
    pub fn row(&self, row: usize) -> Option<&ItemSummary> {
        self.filtered.get(row).map(|&i| &self.items[i])
    }

    /// Position of the selected item in the filtered list.
    pub fn cursor(&self) -> Option<usize> {
        self.cursor
    }

    /// Ids of the items the filter shows, in list order.
    pub fn filtered_ids(&self) -> Vec<ItemId> {
        self.filtered.iter().map(|&i| self.items[i].id).collect()
    }

    pub fn selected_id(&self) -> Option<ItemId> {
        self.cursor.and_then(|c| self.row(c)).map(|s| s.id)
    }

    pub fn detail(&self) -> Option<&ItemDetail> {
        self.detail.as_ref()
    }

    /// (judged by the current annotator, total items).
    pub fn progress(&self) -> (usize, usize) {
        (self.judged_by_me, self.items.len())
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// Milliseconds since the selected item was shown.
    pub fn time_on_item_ms(&self) -> i64 {
        self.shown_at.elapsed().as_millis() as i64
    }

    /// Carries out one user action. Anything it writes is committed when it returns.
    pub fn apply(&mut self, command: Command) -> Result<Outcome, WorkspaceError> {
        match command {
            Command::Judge { verdict, confidence, note } => Ok(self.judge(verdict, confidence, note)?),
            Command::Skip | Command::Next => Ok(self.step(1)),
            Command::Previous => Ok(self.step(-1)),
            Command::SelectRow(row) => {
                if row < self.filtered.len() {
                    self.select(Some(row));
                }
                Ok(Outcome::Moved)
            }
            Command::Undo => Ok(self.undo()?),
            Command::SetFilter(filter) => {
                if filter != self.filter {
                    let selected = self.selected_id();
                    let narrows = filter.narrows(&self.filter);
                    self.filter = filter;
                    if narrows {
                        self.refilter_within_current();
                    } else {
                        self.refilter();
                    }
                    let pos = selected.and_then(|id| self.row_of(id));
                    self.select(pos.or((!self.filtered.is_empty()).then_some(0)));
                }
                Ok(Outcome::Filtered { shown: self.filtered.len() })
            }
            Command::ReviseRationale { parent, text, verdict } => {
                let (id, revision) = self.store.revise_rationale(
                    parent,
                    &text,
                    verdict,
                    RationaleOrigin::Human,
                    Some(self.annotator_id),
                )?;
                self.reload_detail()?;
                Ok(Outcome::Revised { rationale: id, revision })
            }
            Command::SaveFeedback(mut form) => {
                form.annotator_id = self.annotator_id;
                let id = self.store.save_feedback_form(&form)?;
                // Keep the shown item's copy current without re-reading everything (forms autosave often).
                let row = self.store.feedback(id)?;
                if let Some(explain) = self.detail.as_mut().and_then(|d| {
                    d.explain.values_mut().find(|e| e.revisions.last().is_some_and(|r| r.id == form.rationale_id))
                }) {
                    explain.forms.retain(|f| f.id != id && f.form.format != row.form.format);
                    explain.forms.push(row);
                }
                Ok(Outcome::FeedbackSaved { id })
            }
            Command::RestoreRevision(revision) => {
                let old = self.store.rationale(revision)?;
                let latest = self
                    .store
                    .rationale_revisions(old.root_id)?
                    .pop()
                    .ok_or(StoreError::NotFound { what: "rationale", id: old.root_id })?;
                let (id, revision) = self.store.revise_rationale(
                    latest.id,
                    &old.text,
                    old.verdict,
                    RationaleOrigin::Human,
                    Some(self.annotator_id),
                )?;
                self.reload_detail()?;
                Ok(Outcome::Revised { rationale: id, revision })
            }
            Command::SavePerspective(perspective) => {
                self.store.save_perspective(&perspective)?;
                self.perspectives = self.store.perspectives()?;
                Ok(Outcome::PerspectiveSaved { key: perspective.key })
            }
            Command::Refresh => {
                self.reload_detail()?;
                Ok(Outcome::Nothing)
            }
            Command::SetOrder(order) => {
                self.order = order;
                Ok(self.reorder(false)?)
            }
            Command::SetFactCheckQueue(on) => {
                self.fact_check_queue = on;
                Ok(self.reorder(false)?)
            }
            Command::ReloadPredictions => {
                self.active = ActiveVersions::load(&self.store)?;
                self.reorder(true)?;
                Ok(Outcome::Nothing)
            }
            Command::UseModelVersion(version) => {
                self.store.set_active_version(version)?;
                let kind = self.store.model_version(version)?.kind;
                self.active = ActiveVersions::load(&self.store)?;
                self.reorder(true)?;
                Ok(Outcome::VersionInUse { version, kind })
            }
            Command::RegisterStudy(spec) => {
                let (study, outcome) = studies::register(&mut self.store, &spec)?;
                Ok(Outcome::StudyRegistered { name: study.name, version: study.version, outcome })
            }
            Command::Adjudicate { item, verdict, note } => {
                self.store.adjudicate(item, self.annotator_id, verdict, note.as_deref())?;
                self.refresh_summary(item, true)?;
                Ok(Outcome::Adjudicated { item, verdict })
            }
            Command::PublishReview { scale, rating, explanation, evidence } => {
                let Some(item) = self.selected_id() else { return Ok(Outcome::Nothing) };
                // The level's own spelling, as the store keeps it.
                let name = scale.level(&rating).map_or_else(|| rating.clone(), |(_, level)| level.name.clone());
                let review =
                    NewReview { item_id: item, reviewer: self.annotator_id, scale, rating, explanation, evidence };
                self.store.record_review(&review)?;
                let rating = name;
                self.reviewed.insert(item);
                if self.fact_check_queue {
                    // The item leaves the queue: show the next one to review, at the same place in the list.
                    let at = self.cursor.unwrap_or(0);
                    self.refilter();
                    self.select((!self.filtered.is_empty()).then(|| at.min(self.filtered.len() - 1)));
                } else {
                    self.reload_detail()?;
                }
                Ok(Outcome::Reviewed { item, rating })
            }
            Command::RetractReview(id) => {
                let item = self
                    .detail
                    .as_ref()
                    .and_then(|d| d.reviews.iter().find(|r| r.id == id).map(|r| r.item_id))
                    .ok_or(StoreError::NotFound { what: "review of the shown item", id })?;
                self.store.retract_review(id)?;
                if self.store.reviews_of(item)?.iter().all(|r| r.retracted) {
                    self.reviewed.remove(&item);
                }
                self.reload_detail()?;
                Ok(Outcome::ReviewUndone { item })
            }
            Command::ResetPerspective(key) => {
                let builtin = builtin_perspectives()
                    .into_iter()
                    .find(|p| p.key == key)
                    .ok_or_else(|| WorkspaceError::UnknownPerspective(key.clone()))?;
                self.store.save_perspective(&builtin)?;
                self.perspectives = self.store.perspectives()?;
                Ok(Outcome::PerspectiveSaved { key })
            }
        }
    }

    fn judge(
        &mut self,
        verdict: Verdict,
        confidence: Option<f64>,
        note: Option<String>,
    ) -> Result<Outcome, StoreError> {
        let Some(item) = self.selected_id() else { return Ok(Outcome::Nothing) };
        let judgement = self.store.record_judgement(&NewJudgement {
            item_id: item,
            annotator_id: self.annotator_id,
            verdict,
            confidence,
            note,
            time_spent_ms: self.time_on_item_ms(),
        })?;
        self.undo.push(UndoEntry { judgement, item, verdict });
        self.refresh_summary(item, false)?;
        let before = self.cursor;
        self.step(1);
        if self.cursor == before {
            // The last item: nothing to move to, so show the new judgement here.
            self.reload_detail()?;
        }
        Ok(Outcome::Judged { item, verdict, judgement })
    }

    fn undo(&mut self) -> Result<Outcome, StoreError> {
        let Some(entry) = self.undo.pop() else { return Ok(Outcome::NothingToUndo) };
        self.store.retract_judgement(entry.judgement)?;
        self.refresh_summary(entry.item, false)?;
        // Go back to the item whose judgement was taken back, when the filter still shows it.
        match self.row_of(entry.item) {
            Some(pos) => self.select(Some(pos)),
            None => self.reload_detail()?,
        }
        Ok(Outcome::Undone { item: entry.item, verdict: entry.verdict })
    }

    /// Re-reads one item's standing verdicts into its list row (and, with `reload`, the detail if it is selected).
    fn refresh_summary(&mut self, item: ItemId, reload: bool) -> Result<(), StoreError> {
        self.touched.insert(item);
        let verdicts = self.store.standing_verdicts(item)?;
        // `items` is in id order (see `Store::item_summaries`).
        if let Ok(i) = self.items.binary_search_by_key(&item, |s| s.id) {
            let s = &mut self.items[i];
            let had = s.my_verdict.is_some();
            s.my_verdict = verdicts.iter().find(|(who, _)| *who == self.annotator_id).map(|&(_, v)| v);
            s.verdicts = verdicts;
            match (had, s.my_verdict.is_some()) {
                (false, true) => self.judged_by_me += 1,
                (true, false) => self.judged_by_me -= 1,
                _ => {}
            }
        }
        if reload && self.selected_id() == Some(item) {
            self.reload_detail()?;
        }
        Ok(())
    }

    fn step(&mut self, delta: isize) -> Outcome {
        if self.filtered.is_empty() {
            return Outcome::Nothing;
        }
        let last = self.filtered.len() - 1;
        let next = match self.cursor {
            None => 0,
            Some(c) => c.saturating_add_signed(delta).min(last),
        };
        if Some(next) != self.cursor {
            self.select(Some(next));
        }
        Outcome::Moved
    }

    fn select(&mut self, row: Option<usize>) {
        self.cursor = row;
        self.shown_at = Instant::now();
        if let Err(err) = self.reload_detail() {
            tracing::error!("cannot load item: {err}");
            self.detail = None;
        }
    }

    fn reload_detail(&mut self) -> Result<(), StoreError> {
        self.detail = match self.selected_id() {
            None => None,
            Some(id) => {
                let item = self.store.item(id)?;
                let rationales = self.store.rationales(id)?;
                let mut explain = HashMap::new();
                for r in &rationales {
                    explain.insert(r.id, self.explain_of(r)?);
                }
                Some(ItemDetail {
                    dataset: self.store.dataset_name(item.dataset_id)?,
                    rationales,
                    judgements: self.store.judgements(id)?,
                    guidance: self.guidance_of(id)?,
                    explain,
                    reviews: self.store.reviews_of(id)?,
                    item,
                })
            }
        };
        Ok(())
    }

    /// The explanation view's data for the latest revision `r` of a rationale chain.
    fn explain_of(&self, r: &Rationale) -> Result<RationaleExplain, StoreError> {
        // Free text and side by side are read from the store, stored renderings re-parsed: a failure is the store's.
        let invalid = |e: FormatError| match e {
            FormatError::Store(e) => e,
            e => StoreError::Invalid(e.to_string()),
        };
        let mut renderings = Vec::new();
        for format in [Format::FreeText, Format::SideBySide] {
            renderings.push(generate::render(&self.store, r, format, None, &crate::jobs::NoProgress).map_err(invalid)?);
        }
        let news = self.store.item(r.item_id)?.text;
        let mut seen = std::collections::HashSet::new();
        for stored in self.store.renderings(r.id)? {
            if seen.insert(stored.format.clone()) {
                renderings.push(generate::from_stored(&news, r, &stored).map_err(invalid)?);
            }
        }
        renderings.sort_by_key(|x| x.format);
        let mut forms = Vec::new();
        let mut repairs = HashMap::new();
        for format in Format::ALL {
            if let Some(form) = self.store.feedback_form(r.id, self.annotator_id, format.as_str())? {
                repairs.insert(form.id, self.store.repairs_of_feedback(form.id)?);
                forms.push(form);
            }
        }
        Ok(RationaleExplain {
            revisions: self.store.rationale_revisions(r.root_id)?,
            renderings,
            forms,
            repairs,
            produced_by: self.store.repair_producing(r.id)?,
        })
    }

    /// Per format: how often feedback led to a successful repair (read on demand, not per frame).
    pub fn repair_stats(&self) -> Result<Vec<FormatRepairStats>, StoreError> {
        self.store.repair_stats()
    }

    fn guidance_of(&self, item: ItemId) -> Result<GuidanceDetail, StoreError> {
        let p = |v: Option<i64>| -> Result<Option<(i64, Prediction)>, StoreError> {
            Ok(match v {
                Some(v) => self.store.prediction(v, item)?.map(|p| (v, p)),
                None => None,
            })
        };
        let mut g = GuidanceDetail {
            arg: p(self.active.arg)?,
            argd: p(self.active.argd)?.map(|(v, p)| (v, p.p_fake)),
            bert: p(self.active.bert)?.map(|(v, p)| (v, p.p_fake)),
        };
        if let Some(live) = self.live_in_use()
            && let Some(prediction) = live.predictions.get(&item)
        {
            let version = live.version;
            match live.kind {
                ModelKind::Arg => g.arg = Some((version, prediction.clone())),
                ModelKind::Argd => g.argd = Some((version, prediction.p_fake)),
                ModelKind::Bert => g.bert = Some((version, prediction.p_fake)),
            }
        }
        Ok(g)
    }

    /// Re-reads the signals the order needs, re-filters and re-orders. With `keep_selection` (new predictions
    /// under the same order) the selected item stays selected when still shown; else (a new order, the queue) the
    /// list starts at its top, the riskiest item first.
    fn reorder(&mut self, keep_selection: bool) -> Result<Outcome, StoreError> {
        let signals = if self.order == Order::Disagreement && !self.fact_check_queue {
            triage::load_signals(&self.store)?
        } else {
            model_signals(&self.store, &self.active)?
        };
        self.set_signals(signals);
        let selected = self.selected_id().filter(|_| keep_selection);
        self.refilter();
        let pos = selected.and_then(|id| self.row_of(id));
        self.select(pos.or((!self.filtered.is_empty()).then_some(0)));
        Ok(Outcome::Ordered { order: self.order, shown: self.filtered.len() })
    }

    fn refilter(&mut self) {
        let words = self.filter.words();
        let queue = self.fact_check_queue;
        self.filtered = (0..self.items.len())
            .filter(|&i| {
                let s = &self.items[i];
                self.filter.matches(s, &words) && (!queue || (s.verdicts.is_empty() && !self.reviewed.contains(&s.id)))
            })
            .collect();
        if !self.is_natural_order() {
            let order = if self.fact_check_queue { Order::Risk } else { self.order };
            let ids: Vec<ItemId> = self.filtered.iter().map(|&i| self.items[i].id).collect();
            // Random: the same shuffle for the same annotator, a different one for each annotator.
            let ordered = triage::order_ids(&ids, &self.signals, order, self.annotator_id as u64);
            let items = &self.items;
            self.filtered =
                ordered.into_iter().filter_map(|id| items.binary_search_by_key(&id, |s| s.id).ok()).collect();
        }
        self.cursor = self.cursor.filter(|&c| c < self.filtered.len());
    }

    /// Re-filters only the items shown now: enough when the new filter can only narrow the list (typing more of a
    /// search), and much cheaper on a large list.
    fn refilter_within_current(&mut self) {
        let words = self.filter.words();
        let (filter, items) = (&self.filter, &self.items);
        self.filtered.retain(|&i| filter.matches(&items[i], &words));
        self.cursor = self.cursor.filter(|&c| c < self.filtered.len());
    }
}

/// The models' P(fake) of every item, from the predictions of the versions in use (no rationale or people's
/// verdicts: those are read only for the disagreement order).
fn model_signals(store: &Store, active: &ActiveVersions) -> Result<HashMap<ItemId, Signals>, StoreError> {
    triage::model_signals(store, active.arg, active.argd, active.bert)
}

impl Workspace {
    /// Every model version with its metrics and epochs, and the versions in use (for the Train panel).
    /// Sets the project's split key (`None`: the item's text), for every training run from scratch from now on.
    pub fn set_split_group_by(&self, key: Option<&str>) -> Result<(), StoreError> {
        self.store.set_project_setting(crate::store::settings::SPLIT_GROUP_BY, key)
    }

    pub fn versions(&self) -> Result<VersionsCache, StoreError> {
        VersionsCache::load(&self.store)
    }

    /// Standing judgements made since the version of `kind` in use was trained (all of them when there is none):
    /// what the automatic retrain counts.
    pub fn judgements_since_version_in_use(&self, kind: ModelKind) -> Result<u64, StoreError> {
        let since = self.active.of(kind).map(|v| self.store.model_version(v)).transpose()?.map(|v| v.created_at);
        self.store.judgements_since(since.as_deref())
    }
}

/// Loads the item list of `db` for `annotator` with a connection of its own (for a background job).
pub fn load_summaries(db: &Path, annotator: &str) -> Result<Vec<ItemSummary>, StoreError> {
    let store = Store::open(db)?;
    let id = store.annotator_id(annotator)?;
    store.item_summaries(Some(id))
}

/// Imports the bundled demo sample (300 LIAR2 claims, see `assets/demo/SOURCE.md`) into `store`.
pub fn import_demo(store: &mut Store, progress: &dyn Progress) -> Result<(), WorkspaceError> {
    progress.set(0, 0, "importing the demo dataset");
    let parsed = ingest::read_demo_sample()?;
    store.import(&[(parsed.dataset, parsed.items)], &mut |_| {}, &|| progress.is_cancelled())?;
    Ok(())
}

/// A stored model version as the panel shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionRow {
    pub id: i64,
    pub kind: ModelKind,
    pub parent: Option<i64>,
    /// Metrics on the held-out test split and on the validation split, when the version recorded them.
    pub test: Option<Metrics>,
    pub val: Option<Metrics>,
    pub best_epoch: Option<usize>,
    /// Items with a label when it was trained, and how many of those labels came from people.
    pub labelled: Option<u64>,
    pub human_labels: Option<u64>,
    /// Training seconds (the epochs loop).
    pub seconds: Option<f64>,
    pub created_at: String,
    /// The run's epochs, as stored.
    pub epochs: Vec<EpochRecord>,
    /// How it was trained: "full", "quick" (the head alone) or "online" (saved by the online learner).
    pub how: &'static str,
    /// The field its train/val split was grouped by (`None`: the text).
    pub group_by: Option<String>,
}

impl VersionRow {
    /// "ARG", "ARG-D" or "BERT only".
    pub fn kind_name(&self) -> &'static str {
        self.kind.human_name()
    }
}

/// The model versions and the versions in use, read from the store when the panel opens or a run ends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VersionsCache {
    /// Oldest first.
    pub rows: Vec<VersionRow>,
    pub active: ActiveVersions,
    /// The project's split key (`Store::split_group_by`) and the fields it may name, with how many items have each.
    pub split_group_by: Option<String>,
    pub group_fields: Vec<(String, usize)>,
}

impl VersionsCache {
    /// Reads every version (with its metrics and epochs) and the versions in use.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let mut rows = Vec::new();
        for v in store.model_versions()? {
            let metrics = |key: &str| serde_json::from_value::<Metrics>(v.metrics.get(key)?.clone()).ok();
            let count = |key: &str| v.data_snapshot.get(key).and_then(serde_json::Value::as_u64);
            let epochs = serde_json::from_value(store.version_epochs(v.id)?).unwrap_or_default();
            rows.push(VersionRow {
                id: v.id,
                parent: v.parent_id,
                test: metrics("test"),
                val: metrics("val"),
                best_epoch: v.metrics.get("best_epoch").and_then(|e| e.as_u64()).map(|e| e as usize),
                labelled: count("labelled"),
                human_labels: count("human_labels"),
                seconds: v.seconds_taken,
                created_at: v.created_at.clone(),
                epochs,
                kind: v.kind,
                how: if v.config.get("online_updates").is_some_and(|u| !u.is_null()) {
                    "online"
                } else if v.config.pointer("/options/quick") == Some(&serde_json::Value::Bool(true)) {
                    "quick"
                } else {
                    "full"
                },
                group_by: v.config.pointer("/options/group_by").and_then(|g| g.as_str()).map(str::to_owned),
            });
        }
        Ok(Self {
            rows,
            active: ActiveVersions::load(store)?,
            split_group_by: store.split_group_by()?,
            group_fields: store.group_fields()?.into_iter().collect(),
        })
    }

    pub fn row(&self, id: i64) -> Option<&VersionRow> {
        self.rows.iter().find(|r| r.id == id)
    }

    /// True when `row` is the version in use for its kind.
    pub fn in_use(&self, row: &VersionRow) -> bool {
        self.active.of(row.kind) == Some(row.id)
    }
}

/// A registered study: its name and versions (oldest first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StudyListing {
    pub name: String,
    pub versions: Vec<u32>,
}

/// What a participant sees of a study item: the news and the rationale in the format the flow chose.
#[derive(Clone, Debug)]
pub struct StudyItemShown {
    pub item: Item,
    /// The rationale revision shown, if the item has one.
    pub rationale: Option<Rationale>,
    /// That rationale in the shown format (`ItemView::format`).
    pub rendered: Option<Rendered>,
    /// The name of the rationale's perspective.
    pub perspective_name: Option<String>,
}

/// An item people disagree on, with everything the adjudication view shows.
#[derive(Clone, Debug, PartialEq)]
pub struct DisagreementDetail {
    pub item: ItemId,
    pub title: Option<String>,
    pub text: String,
    /// The standing (non-adjudicated) judgements, by annotator name, with their notes.
    pub judgements: Vec<Judgement>,
}

/// User studies and agreement, read and written through the workspace's connection (the studio's panels call these
/// on events: opening a panel, changing an option, answering a step; never per frame).
impl Workspace {
    /// Every registered study with its versions, by name.
    pub fn studies(&self) -> Result<Vec<StudyListing>, StoreError> {
        let mut out: Vec<StudyListing> = Vec::new();
        let mut rows = self.store.study_rows()?;
        rows.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        for row in rows {
            match out.last_mut() {
                Some(l) if l.name == row.name => l.versions.push(row.version),
                _ => out.push(StudyListing { name: row.name, versions: vec![row.version] }),
            }
        }
        Ok(out)
    }

    /// Version `version` (default: the newest) of study `name`.
    pub fn study(&self, name: &str, version: Option<u32>) -> studies::Result<Study> {
        studies::load(&self.store, name, version)
    }

    /// The study file with its item keys resolved and the item set it resolves to in this database (errors name
    /// the field), for the designer's preview.
    pub fn resolve_study_items(&self, spec: &StudySpec) -> studies::Result<(StudySpec, Vec<ItemId>)> {
        let spec = studies::resolved_spec(&self.store, spec)?;
        let pool = studies::resolve_items(&self.store, &spec)?;
        Ok((spec, pool))
    }

    /// Starts participant `code` in study `study`, or resumes them at the first step they have not completed.
    pub fn start_study_session(&mut self, study: &str, code: &str) -> studies::Result<Session> {
        Session::start(&mut self.store, study, code)
    }

    /// Answers the session's current step; committed before this returns.
    pub fn answer_study_step(
        &mut self,
        session: &mut Session,
        answers: &[(String, String)],
        timing: Timing,
    ) -> studies::Result<Answered> {
        session.answer(&mut self.store, answers, timing)
    }

    /// The news and the rationale of a study item as the flow shows it (read once per step).
    pub fn study_item(&self, view: &ItemView) -> Result<StudyItemShown, WorkspaceError> {
        let item = self.store.item(view.item)?;
        let rationale = view.rationale.map(|id| self.store.rationale(id)).transpose()?;
        let rendered = match &rationale {
            Some(r) => Some(generate::render(&self.store, r, view.format, None, &crate::jobs::NoProgress)?),
            None => None,
        };
        let perspective_name = rationale
            .as_ref()
            .map(|r| crate::prompting::perspective_name(&self.perspectives, &r.perspective).to_owned());
        Ok(StudyItemShown { item, rationale, rendered, perspective_name })
    }

    /// The analysis of a study version per condition ([`analysis::analyse`]).
    pub fn analyse_study(&self, name: &str, version: Option<u32>, exclusions: Exclusions) -> studies::Result<Analysis> {
        analysis::analyse(&self.store, name, version, exclusions)
    }

    /// Seconds spent on each item answer of a study version, per condition in the study file's order, after the
    /// same exclusions as [`analysis::analyse`] (for the distribution plot).
    pub fn study_item_times(
        &self,
        name: &str,
        version: u32,
        exclusions: Exclusions,
    ) -> studies::Result<Vec<(String, Vec<f64>)>> {
        let study = studies::load(&self.store, name, Some(version))?;
        let rows: Vec<_> =
            self.store.study_responses(name)?.into_iter().filter(|r| r.study_version == version).collect();
        let failed = analysis::failed_attention(&rows);
        // One time per item step (every question of the step carries the same timing).
        let mut steps: std::collections::BTreeMap<(&str, u32), (&str, f64)> = Default::default();
        for r in rows.iter().filter(|r| matches!(r.response.kind.as_str(), "item" | "gold")) {
            let dropped = (exclusions.failed_attention && failed.contains(&r.participant))
                || (exclusions.too_fast && analysis::is_too_fast(&study.spec, r));
            if let (false, Some(condition)) = (dropped, r.response.condition.as_deref()) {
                steps.insert((r.participant.as_str(), r.step), (condition, r.timing.total_ms as f64 / 1000.0));
            }
        }
        Ok(study
            .spec
            .conditions
            .iter()
            .map(|c| {
                let times = steps.values().filter(|(name, _)| *name == c.name).map(|(_, t)| *t).collect();
                (c.name.clone(), times)
            })
            .collect())
    }

    /// Agreement and per-annotator metrics of the standing judgements ([`metrics::agreement_summary`]).
    pub fn agreement_summary(&self) -> studies::Result<AgreementSummary> {
        metrics::agreement_summary(&self.store)
    }

    /// The items people disagree on and nobody has adjudicated, with their judgements and notes.
    pub fn disagreements(&self) -> Result<Vec<DisagreementDetail>, StoreError> {
        let mut out = Vec::new();
        for d in self.store.disagreements()? {
            let item = self.store.item(d.item_id)?;
            let judgements = self.store.judgements(d.item_id)?.into_iter().filter(|j| !j.adjudicated).collect();
            out.push(DisagreementDetail { item: d.item_id, title: item.title, text: item.text, judgements });
        }
        Ok(out)
    }
}
