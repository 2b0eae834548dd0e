//! Rendering a rationale revision in a format: free text and side by side come from what is stored; the structured
//! formats are written by the LLM once per (revision, format, model, prompt) and stored. A malformed answer is
//! asked again once with the parse error; a second failure is stored as a fallback and shown as free text with a
//! notice.

use std::ops::ControlFlow;
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::attribution::{Matcher, QuoteMatch};
use super::{Format, FormatError, PROMPT_VERSION, Structured, parse, prompt, quoted_phrases, retry_message};
use crate::domain::{ItemId, ModelKind, Rationale, RationaleId, Verdict};
use crate::jobs::Progress;
use crate::models::{ChatModel, GenerationParams};
use crate::prompting::{ChatMessage, perspective_name};
use crate::store::Store;
use crate::store::formats::{NewRendering, StoredRendering};

type Result<T, E = FormatError> = std::result::Result<T, E>;

/// Longest answer for a structured format, in tokens.
pub const FORMAT_MAX_TOKENS: usize = 640;

/// How a rendering came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Shown from the stored rationale (free text, side by side).
    AsStored,
    /// The model's answer parsed.
    Ok,
    /// The model's answer did not parse twice: shown as free text with a notice.
    Fallback,
}

/// The rationale revision a rendering shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RationaleRef {
    pub id: RationaleId,
    pub root_id: RationaleId,
    pub revision: u32,
    pub origin: String,
    pub model: Option<String>,
    pub verdict: Option<Verdict>,
}

impl From<&Rationale> for RationaleRef {
    fn from(r: &Rationale) -> Self {
        Self {
            id: r.id,
            root_id: r.root_id,
            revision: r.revision,
            origin: r.origin.as_str().to_owned(),
            model: r.model.clone(),
            verdict: r.verdict,
        }
    }
}

/// One perspective's column of the side-by-side format.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Column {
    pub perspective: String,
    pub name: String,
    pub rationale: RationaleRef,
    pub text: String,
    /// ARG's trust in this rationale for this item (w_r), when the ARG version in use has scored it.
    pub trust: Option<f64>,
}

/// A rationale shown in one format: what `argus explain --json` prints and the studio draws.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rendered {
    pub item: ItemId,
    pub perspective: String,
    pub format: Format,
    /// The text quote spans index into: the item's news text.
    pub news: String,
    pub rationale: RationaleRef,
    pub status: Status,
    /// Why a structured format fell back to free text.
    pub notice: Option<String>,
    /// The model that wrote the structured format.
    pub model: Option<String>,
    /// Row of `format_renderings` (structured formats).
    pub rendering_id: Option<i64>,
    /// The rationale as written.
    pub text: String,
    /// The structured format (status `ok`).
    pub content: Option<Structured>,
    /// The verdict the format reaches: the structured one's, else the rationale's.
    pub verdict: Option<Verdict>,
    /// Every quote of the news the format makes, with its character span (null when unsupported).
    pub quotes: Vec<QuoteMatch>,
    /// Quotes that match nothing in the news: the model said the news says something it does not.
    pub unsupported: usize,
    /// Side by side: every perspective of the item.
    pub columns: Vec<Column>,
    /// Seconds the model took (structured formats).
    pub seconds: Option<f64>,
    /// The model's answers, as written (structured formats: one, or two after a retry).
    pub raw_answers: Vec<String>,
}

/// Key of a format prompt: sha256 of the prompt version and the exact messages.
pub fn prompt_key(messages: &[ChatMessage]) -> String {
    let mut h = Sha256::new();
    h.update(format!("formats-v{PROMPT_VERSION}\n"));
    h.update(serde_json::to_string(messages).unwrap_or_default());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The news as the model sees it (title and text) and as quotes are matched against (the text).
fn news_of(store: &Store, item: ItemId) -> Result<(String, String)> {
    let item = store.item(item)?;
    Ok((item.news_text(), item.text))
}

fn base(item: ItemId, news: &str, rationale: &Rationale, format: Format) -> Rendered {
    Rendered {
        item,
        perspective: rationale.perspective.clone(),
        format,
        news: news.to_owned(),
        rationale: rationale.into(),
        status: Status::AsStored,
        notice: None,
        model: None,
        rendering_id: None,
        text: rationale.text.clone(),
        content: None,
        verdict: rationale.verdict,
        quotes: Vec::new(),
        unsupported: 0,
        columns: Vec::new(),
        seconds: None,
        raw_answers: Vec::new(),
    }
}

fn with_quotes(mut r: Rendered, quotes: Vec<QuoteMatch>) -> Rendered {
    r.unsupported = quotes.iter().filter(|q| !q.supported()).count();
    r.quotes = quotes;
    r
}

/// A stored rendering of `rationale`, as shown.
pub fn from_stored(news: &str, rationale: &Rationale, stored: &StoredRendering) -> Result<Rendered> {
    let item = rationale.item_id;
    let format = Format::parse(&stored.format)
        .ok_or_else(|| FormatError::UnknownFormat { id: stored.id, format: stored.format.clone() })?;
    let mut r = base(item, news, rationale, format);
    r.model = Some(stored.model.clone());
    r.rendering_id = Some(stored.id);
    r.notice = stored.notice.clone();
    r.seconds = stored.seconds_taken;
    r.raw_answers = stored.raw_answers.clone();
    if stored.status == "ok" {
        let content: Structured =
            serde_json::from_value(stored.content.clone().ok_or(FormatError::NoContent(stored.id))?)?;
        r.verdict = Some(content.verdict());
        r.content = Some(content);
        r.status = Status::Ok;
    } else {
        r.status = Status::Fallback;
    }
    let quotes: Vec<QuoteMatch> = serde_json::from_value(stored.quotes.clone()).unwrap_or_default();
    Ok(with_quotes(r, quotes))
}

/// The newest stored rendering of `rationale` in `format`, by any model.
pub fn stored(store: &Store, rationale: RationaleId, format: Format) -> Result<Option<StoredRendering>> {
    Ok(store.renderings(rationale)?.into_iter().find(|r| r.format == format.as_str()))
}

/// Renders rationale revision `rationale` in `format`.
///
/// Free text and side by side come from the store. A structured format is read from the store when `model` has
/// written it from the current prompt (or, without a model, when any model has); otherwise `model` writes it now
/// (streaming nothing; `progress` can cancel, which stores nothing) and it is stored.
pub fn render(
    store: &Store,
    rationale: &Rationale,
    format: Format,
    model: Option<&mut dyn ChatModel>,
    progress: &dyn Progress,
) -> Result<Rendered> {
    let item = rationale.item_id;
    let (news, text) = news_of(store, item)?;
    // Normalising the news for quote matching costs a pass over it (a megabyte: milliseconds): only when there are
    // quotes to find.
    let attribute = |quotes: &[(String, String)]| {
        if quotes.is_empty() { Vec::new() } else { Matcher::new(&text).attribute(quotes) }
    };
    match format {
        Format::FreeText => {
            let quotes: Vec<(String, String)> = quoted_phrases(&rationale.text)
                .into_iter()
                .enumerate()
                .map(|(i, q)| (format!("text[{i}]"), q))
                .collect();
            Ok(with_quotes(base(item, &text, rationale, format), attribute(&quotes)))
        }
        Format::SideBySide => {
            let mut r = base(item, &text, rationale, format);
            let perspectives = store.perspectives()?;
            let gates = match store.active_version(ModelKind::Arg)? {
                Some(v) => store.prediction(v, item)?.map(|p| p.gates).unwrap_or_default(),
                None => Vec::new(),
            };
            let mut quotes = Vec::new();
            for (i, other) in store.rationales(item)?.iter().enumerate() {
                quotes.extend(quoted_phrases(&other.text).into_iter().map(|q| (format!("columns[{i}]"), q)));
                r.columns.push(Column {
                    perspective: other.perspective.clone(),
                    name: perspective_name(&perspectives, &other.perspective).to_owned(),
                    rationale: other.into(),
                    text: other.text.clone(),
                    trust: gates.iter().find(|(k, _)| *k == other.perspective).map(|(_, w)| *w),
                });
            }
            Ok(with_quotes(r, attribute(&quotes)))
        }
        _ => {
            let messages = prompt(format, &news, &rationale.text);
            let key = prompt_key(&messages);
            let Some(model) = model else {
                let stored = stored(store, rationale.id, format)?.ok_or(FormatError::NotWritten {
                    rationale: rationale.id,
                    item,
                    revision: rationale.revision,
                    format,
                })?;
                return from_stored(&text, rationale, &stored);
            };
            let model_id = model.model_id();
            if let Some(stored) = store.rendering(rationale.id, format.as_str(), &model_id, &key)? {
                return from_stored(&text, rationale, &stored);
            }
            let started = Instant::now();
            let written = write(model, format, &messages, &news, progress)?;
            let (ok, content, notice) = match written.parsed {
                Ok(s) => (true, Some(s), None),
                Err(e) => (
                    false,
                    None,
                    Some(format!(
                        "the model's answer was not a valid {} twice ({e}); shown as free text",
                        format.title().to_lowercase()
                    )),
                ),
            };
            let quotes = content.as_ref().map(|c| attribute(&c.quotes())).unwrap_or_default();
            let unsupported = quotes.iter().filter(|q| !q.supported()).count();
            let saved = store.save_rendering(&NewRendering {
                rationale_id: rationale.id,
                format: format.as_str().to_owned(),
                model: model_id,
                prompt_key: key,
                prompt: serde_json::to_string(&messages)?,
                ok,
                content: content.as_ref().map(serde_json::to_value).transpose()?,
                raw_answers: written.answers,
                notice,
                quotes: serde_json::to_value(&quotes)?,
                unsupported_quotes: unsupported as u32,
                seconds_taken: started.elapsed().as_secs_f64(),
            })?;
            from_stored(&text, rationale, &saved)
        }
    }
}

/// The model's answers and what the last one parsed to.
pub struct Written {
    pub answers: Vec<String>,
    pub parsed: Result<Structured, super::ParseError>,
}

/// Asks `model` for `format` (greedy); a malformed answer is asked again once, with the parse error, sampling
/// (seeded) so that the second answer is not the first one again.
pub fn write(
    model: &mut dyn ChatModel,
    format: Format,
    messages: &[ChatMessage],
    news: &str,
    progress: &dyn Progress,
) -> Result<Written> {
    let mut params = GenerationParams::greedy(FORMAT_MAX_TOKENS);
    let mut conversation = messages.to_vec();
    let mut answers = Vec::new();
    loop {
        let mut pieces = 0u64;
        let completion = model.chat(&conversation, &params, &mut |_| {
            pieces += 1;
            progress.set(pieces, FORMAT_MAX_TOKENS as u64, &format!("writing the {}", format.title().to_lowercase()));
            if progress.is_cancelled() { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        })?;
        if progress.is_cancelled() {
            return Err(crate::jobs::Cancelled.into());
        }
        answers.push(completion.text.clone());
        let parsed = parse(format, &completion.text, news);
        match parsed {
            Err(e) if answers.len() < 2 => {
                conversation.push(ChatMessage { role: "assistant".into(), content: completion.text });
                conversation.push(retry_message(&e, format));
                params = GenerationParams { temperature: 0.5, top_p: Some(0.9), seed: 1, ..params };
            }
            parsed => return Ok(Written { answers, parsed }),
        }
    }
}
