//! What `argus explain` shows before anything is rendered: the formats a name stands for, the rationale revision
//! of the asked perspective, and whether a writer must be loaded at all.
//!
//! This module knows nothing of the UI or the command line; the rendering itself is [`super::generate::render`].

use super::{Format, generate};
use crate::domain::{ItemId, Rationale};
use crate::store::{Store, StoreError};

/// A format name that is neither a format nor `all`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no format `{0}` (known: {known}, all)", known = Format::ALL.map(Format::as_str).join(", "))]
pub struct UnknownFormat(pub String);

/// The formats `name` stands for: one format ([`Format::parse`]), or every format for `all`.
pub fn formats_named(name: &str) -> Result<Vec<Format>, UnknownFormat> {
    if name == "all" {
        return Ok(Format::ALL.to_vec());
    }
    Format::parse(name).map(|f| vec![f]).ok_or_else(|| UnknownFormat(name.to_owned()))
}

/// Why an item cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("item {item} has no rationale from perspective `{perspective}` (it has: {})", have.join(", "))]
    NoSuchPerspective { item: ItemId, perspective: String, have: Vec<String> },
    #[error("item {0} has no rationale yet")]
    NoRationale(ItemId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to explain and whether a writer is needed for it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExplainChoice {
    /// The rationale shown: the latest revision of the asked perspective, else the item's first.
    pub rationale: Rationale,
    /// True when some format must be written by the LLM now: generation is allowed (`generate`) and a format the
    /// LLM writes is not stored yet, or a writer was named (`writer_named`: it writes from its own prompt).
    pub needs_model: bool,
}

/// Chooses the rationale of `item` to show in `formats` (of `perspective`, else the item's first) and whether a
/// model must be loaded for it. An unknown item is a store error.
pub fn choose(
    store: &Store,
    item: ItemId,
    formats: &[Format],
    perspective: Option<&str>,
    writer_named: bool,
    generate: bool,
) -> Result<ExplainChoice, ExplainError> {
    let rationales = store.rationales(item)?;
    store.item(item)?;
    let rationale = match perspective {
        Some(p) => rationales.iter().find(|r| r.perspective == p).ok_or_else(|| ExplainError::NoSuchPerspective {
            item,
            perspective: p.to_owned(),
            have: rationales.iter().map(|r| r.perspective.clone()).collect(),
        })?,
        None => rationales.first().ok_or(ExplainError::NoRationale(item))?,
    };
    let needs_model = generate
        && formats.iter().any(|f| {
            f.needs_llm() && generate::stored(store, rationale.id, *f).ok().flatten().is_none_or(|_| writer_named)
        });
    Ok(ExplainChoice { rationale: rationale.clone(), needs_model })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{NewDataset, NewItem, NewRationale, RationaleOrigin};
    use crate::store::formats::NewRendering;

    #[test]
    fn a_format_name_or_all() {
        assert_eq!(formats_named("decision_tree").unwrap(), [Format::DecisionTree]);
        assert_eq!(formats_named("all").unwrap(), Format::ALL.to_vec());
        let err = formats_named("tree").unwrap_err().to_string();
        assert!(err.starts_with("no format `tree` (known: free-text, annotated-report, "), "{err}");
        assert!(err.ends_with(", side-by-side, all)"), "{err}");
    }

    fn rationale(perspective: &str, text: &str) -> NewRationale {
        NewRationale {
            perspective: perspective.into(),
            origin: RationaleOrigin::Imported,
            model: None,
            prompt: None,
            text: text.into(),
            verdict: None,
        }
    }

    #[test]
    fn the_perspective_picks_the_rationale_and_a_stored_format_needs_no_model() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("explain.db")).unwrap();
        let dataset =
            NewDataset { name: "one".into(), format: "csv".into(), source_path: "one.csv".into(), license_note: None };
        let items = vec![
            NewItem {
                text: "The sky is green.".into(),
                rationales: vec![rationale("td", "It is blue."), rationale("cs", "Look up.")],
                ..Default::default()
            },
            NewItem { text: "No rationale here.".into(), ..Default::default() },
        ];
        store.import(&[(dataset, items)], &mut |_| {}, &|| false).unwrap();
        let (item, bare) = (1, 2);

        let first = choose(&store, item, &[Format::FreeText], None, false, true).unwrap();
        // The store lists an item's rationales by perspective key: `cs` first.
        assert_eq!((first.rationale.perspective.as_str(), first.needs_model), ("cs", false), "free text needs none");
        let td = choose(&store, item, &[Format::Procedural], Some("td"), false, true).unwrap();
        assert_eq!((td.rationale.text.as_str(), td.needs_model), ("It is blue.", true), "nothing stored yet");
        assert!(!choose(&store, item, &[Format::Procedural], Some("td"), true, false).unwrap().needs_model);

        let rendering = NewRendering {
            rationale_id: td.rationale.id,
            format: Format::Procedural.as_str().into(),
            model: "scripted".into(),
            prompt_key: "key".into(),
            prompt: "[]".into(),
            ok: false,
            content: None,
            raw_answers: vec!["{}".into()],
            notice: Some("shown as free text".into()),
            quotes: serde_json::json!([]),
            unsupported_quotes: 0,
            seconds_taken: 0.0,
        };
        store.save_rendering(&rendering).unwrap();
        assert!(!choose(&store, item, &[Format::Procedural], Some("td"), false, true).unwrap().needs_model);
        assert!(
            choose(&store, item, &[Format::Procedural], Some("td"), true, true).unwrap().needs_model,
            "a named writer writes from its own prompt"
        );

        let err = choose(&store, item, &[Format::FreeText], Some("fc"), false, true).unwrap_err().to_string();
        assert_eq!(err, "item 1 has no rationale from perspective `fc` (it has: cs, td)");
        assert!(matches!(choose(&store, bare, &[], None, false, true), Err(ExplainError::NoRationale(2))));
        assert!(matches!(choose(&store, 99, &[], None, false, true), Err(ExplainError::Store(_))));
    }
}
