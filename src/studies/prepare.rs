//! Preparing a study before its first participant: every item × condition whose format the LLM writes gets its
//! rendering now (stored once, as the studio would write it), so no participant waits for a model and nobody is
//! shown free text in place of the condition's format.

use serde::Serialize;

use super::spec::StudySpec;
use super::{Result, StudyError, resolve_items};
use crate::domain::ItemId;
use crate::formats::generate::{self, Status};
use crate::jobs::Progress;
use crate::models::ChatModel;
use crate::store::Store;

/// What [`prepare`] did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PrepareSummary {
    /// Renderings the model wrote now.
    pub written: usize,
    /// Renderings already stored (by this model, from the current prompt).
    pub already: usize,
    /// Renderings whose answer did not parse twice: those items will be shown as free text.
    pub fallback: usize,
    /// (item, condition) pairs with no rationale of the condition's perspective: shown without one.
    pub missing_rationale: Vec<(ItemId, String)>,
}

/// Writes, with `model`, every rendering the study's items (with its gold and practice items) need in its
/// conditions' formats.
pub fn prepare(
    store: &Store,
    spec: &StudySpec,
    model: &mut dyn ChatModel,
    progress: &dyn Progress,
) -> Result<PrepareSummary> {
    let spec = &super::resolved_spec(store, spec)?;
    let mut items = resolve_items(store, spec)?;
    items.extend(spec.gold_items.iter().copied());
    items.extend(spec.practice.iter().map(|p| p.item));
    items.sort_unstable();
    items.dedup();
    let conditions: Vec<_> = spec.conditions.iter().filter(|c| c.format.needs_llm()).collect();
    let total = (items.len() * conditions.len()) as u64;
    let mut summary = PrepareSummary::default();
    let mut done = 0;
    for &item in &items {
        let rationales = store.rationales(item)?;
        for condition in &conditions {
            if progress.is_cancelled() {
                return Err(StudyError::Invalid("cancelled; what was written is kept".into()));
            }
            progress.set(done, total, &format!("{} of item {item}", condition.format.title().to_lowercase()));
            done += 1;
            let rationale = match &condition.perspective {
                Some(p) => rationales.iter().find(|r| &r.perspective == p),
                None => rationales.first(),
            };
            let Some(rationale) = rationale else {
                summary.missing_rationale.push((item, condition.name.clone()));
                continue;
            };
            let before = store.renderings(rationale.id)?.len();
            let shown = generate::render(store, rationale, condition.format, Some(&mut *model), progress)
                .map_err(|e| StudyError::Invalid(format!("item {item}, condition `{}`: {e:#}", condition.name)))?;
            let wrote = store.renderings(rationale.id)?.len() > before;
            match (wrote, shown.status) {
                (false, _) => summary.already += 1,
                (true, Status::Fallback) => summary.fallback += 1,
                (true, _) => summary.written += 1,
            }
        }
    }
    progress.set(total, total, "prepared");
    Ok(summary)
}
