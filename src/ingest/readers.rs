//! One reader per input format: each turns a file's (already UTF-8-checked) text into [`NewItem`]s, or an
//! [`IngestError`] naming the file and the 1-based physical line of the offending record.
//!
//! Readers only parse and map fields; they never touch the database, the UI or the jobs registry, and they do not
//! detect formats (see the parent module).

use std::path::Path;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::path::FieldPath;
use super::{ColumnMap, FileFormat, IngestError, LabelMap};
use crate::domain::{NewItem, NewRationale, RationaleOrigin, Verdict};

/// What every reader needs besides the text.
pub(super) struct Context<'a> {
    /// The file, for messages.
    pub path: &'a Path,
    pub labels: &'a LabelMap,
    /// The split named by the file's stem (`val2.tsv` -> `val`), used when a record names none.
    pub stem_split: Option<String>,
    /// Read only this many records (a preview of the file's head: the rest may be cut off and is not checked).
    pub limit: Option<usize>,
}

impl Context<'_> {
    fn err(&self, line: usize, reason: impl Into<String>) -> IngestError {
        IngestError::at(self.path, line, reason)
    }

    fn limit(&self) -> usize {
        self.limit.unwrap_or(usize::MAX)
    }

    fn gold(&self, line: usize, label: &str) -> Result<Option<Verdict>, IngestError> {
        self.labels.resolve(label).map_err(|m| self.err(line, m))
    }
}

/// LIAR2's CSV header, exactly.
pub(super) const LIAR2_COLUMNS: [&str; 16] = [
    "id",
    "label",
    "statement",
    "date",
    "subject",
    "speaker",
    "speaker_description",
    "state_info",
    "true_counts",
    "mostly_true_counts",
    "half_true_counts",
    "mostly_false_counts",
    "false_counts",
    "pants_on_fire_counts",
    "context",
    "justification",
];

/// LIAR2's integer labels (inferred from the README's class order; see `shared/data/liar2/SOURCE.md`).
pub(super) const LIAR2_LABEL_NAMES: [&str; 6] =
    ["pants-fire", "false", "barely-true", "half-true", "mostly-true", "true"];

/// Perspective of PolitiFact justifications.
const HUMAN: &str = "human";

// -------------------------------------------------------------------------------------------------------------
// Detection helpers

/// True when the first non-blank line is a JSON object with `claim` and `json_file_id`.
pub(super) fn looks_like_liar_plus_jsonl(bytes: &[u8]) -> bool {
    let Some(line) = bytes.split(|&b| b == b'\n').find(|l| l.iter().any(|b| !b.is_ascii_whitespace())) else {
        return false;
    };
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(o)) => o.contains_key("claim") && o.contains_key("json_file_id"),
        _ => false,
    }
}

/// True when the first non-blank line looks like a LIAR-PLUS record (no header: a row index, then a statement id
/// ending in `.json`).
pub(super) fn looks_like_liar_plus_tsv(bytes: &[u8]) -> bool {
    let Some(line) = bytes.split(|&b| b == b'\n').find(|l| l.iter().any(|b| !b.is_ascii_whitespace())) else {
        return true; // an empty file: let the LIAR-PLUS reader say so
    };
    let mut fields = line.split(|&b| b == b'\t');
    let (Some(_), Some(id)) = (fields.next(), fields.next()) else { return false };
    id.trim_ascii().ends_with(b".json")
}

/// True when the CSV header is exactly LIAR2's columns.
pub(super) fn looks_like_liar2_csv(bytes: &[u8]) -> bool {
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    match rdr.byte_headers() {
        Ok(h) => h.iter().eq(LIAR2_COLUMNS.iter().map(|c| c.as_bytes())),
        Err(_) => false,
    }
}

// -------------------------------------------------------------------------------------------------------------
// ARG JSON

/// ICTMCG/ARG's JSON: an array of objects. `content` is the text; `label` is `"real"`/`"fake"` or `0`/`1` (through
/// the label map); each `<p>_rationale` is a rationale of perspective `<p>` whose verdict is `<p>_pred`; `time`
/// is the publication time, `source_id` the external id, `split` the split (else the file's stem). Every other key,
/// `<p>_acc` included, goes to metadata.
pub(super) fn arg_json(ctx: &Context<'_>, text: &str) -> Result<Vec<NewItem>, IngestError> {
    let objects = json_array_objects(
        ctx,
        text,
        "expected a JSON array of objects (ARG format: [{\"content\": ..., \"label\": ...}])",
    )?;
    objects.into_iter().map(|(line, obj)| arg_item(ctx, line, obj)).collect()
}

/// Every element of a JSON array of objects, with the 1-based line it starts on. `not_array` is the message when
/// the text does not start with `[`.
fn json_array_objects(ctx: &Context<'_>, text: &str, not_array: &str) -> Result<Vec<LineObject>, IngestError> {
    let lines = LineIndex::new(text);
    let bytes = text.as_bytes();
    let skip_ws = |mut pos: usize| {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        pos
    };
    let mut pos = skip_ws(0);
    if bytes.get(pos) != Some(&b'[') {
        let line = if pos < bytes.len() { lines.line_of(pos) } else { 1 };
        return Err(ctx.err(line, not_array));
    }
    pos += 1;
    let mut items = Vec::new();
    loop {
        if items.len() >= ctx.limit() {
            return Ok(items);
        }
        pos = skip_ws(pos);
        if items.is_empty() && bytes.get(pos) == Some(&b']') {
            pos += 1;
            break;
        }
        if pos >= bytes.len() {
            return Err(ctx.err(lines.line_of(pos), "the file ends inside the JSON array (truncated file?)"));
        }
        let line = lines.line_of(pos);
        let mut stream = serde_json::Deserializer::from_str(&text[pos..]).into_iter::<Value>();
        let value = match stream.next() {
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                let at = line + e.line().max(1) - 1;
                return Err(ctx.err(at, format!("malformed JSON: {e}")));
            }
            None => return Err(ctx.err(line, "the file ends inside the JSON array (truncated file?)")),
        };
        pos += stream.byte_offset();
        let Value::Object(obj) = value else {
            return Err(ctx.err(line, format!("element {} of the array is not an object", items.len() + 1)));
        };
        items.push((line, obj));
        pos = skip_ws(pos);
        match bytes.get(pos) {
            Some(b',') => pos += 1,
            Some(b']') => {
                pos += 1;
                break;
            }
            Some(_) => return Err(ctx.err(lines.line_of(pos), "malformed JSON: expected ',' or ']' after an object")),
            None => return Err(ctx.err(lines.line_of(pos), "the file ends inside the JSON array (truncated file?)")),
        }
    }
    let end = skip_ws(pos);
    if end < bytes.len() {
        return Err(ctx.err(lines.line_of(end), "malformed JSON: unexpected content after the array"));
    }
    Ok(items)
}

fn arg_item(ctx: &Context<'_>, line: usize, mut obj: Map<String, Value>) -> Result<NewItem, IngestError> {
    let content = match obj.remove("content") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(Value::String(_)) | Some(Value::Null) | None => {
            return Err(ctx.err(line, "empty or missing 'content' (the news text)"));
        }
        Some(other) => return Err(ctx.err(line, format!("'content' is not a string: {other}"))),
    };
    let (original_label, gold_label) = match obj.remove("label") {
        None | Some(Value::Null) => (None, None),
        Some(Value::String(s)) => {
            let gold = ctx.gold(line, &s)?;
            (Some(s).filter(|s| !s.trim().is_empty()), gold)
        }
        Some(Value::Number(n)) => {
            let s = n.to_string();
            let gold = ctx.gold(line, &s)?;
            (Some(s), gold)
        }
        Some(other) => return Err(ctx.err(line, format!("'label' is neither a string nor a number: {other}"))),
    };
    let published = take_scalar(ctx, line, &mut obj, "time")?;
    let external_id = take_scalar(ctx, line, &mut obj, "source_id")?;
    let split = take_scalar(ctx, line, &mut obj, "split")?.or_else(|| ctx.stem_split.clone());

    let perspectives: Vec<String> =
        obj.keys().filter_map(|k| k.strip_suffix("_rationale")).filter(|p| !p.is_empty()).map(str::to_string).collect();
    let mut rationales = Vec::new();
    for p in perspectives {
        let key = format!("{p}_rationale");
        let text = match obj.remove(&key) {
            Some(Value::String(s)) => s,
            Some(Value::Null) | None => String::new(),
            Some(other) => return Err(ctx.err(line, format!("'{key}' is not a string: {other}"))),
        };
        if text.trim().is_empty() {
            continue; // its `_pred`, if any, stays in metadata
        }
        let pred_key = format!("{p}_pred");
        let verdict = match obj.remove(&pred_key) {
            Some(v) => parse_pred(&v).map_err(|m| ctx.err(line, format!("'{pred_key}': {m}")))?,
            None => None,
        };
        rationales.push(imported_rationale(&p, text.trim(), verdict));
    }
    Ok(NewItem {
        external_id,
        title: None,
        text: content,
        source: None,
        published,
        gold_label,
        original_label,
        split,
        metadata: obj,
        rationales,
    })
}

/// Removes `key` and returns it as a string when it is a scalar (string trimmed, number, boolean); `null` and empty
/// strings give `None`.
fn take_scalar(
    ctx: &Context<'_>,
    line: usize,
    obj: &mut Map<String, Value>,
    key: &str,
) -> Result<Option<String>, IngestError> {
    match obj.remove(key) {
        None => Ok(None),
        Some(v) => scalar(&v).ok_or_else(|| ctx.err(line, format!("'{key}' is not a string or a number: {v}"))),
    }
}

/// A scalar JSON value as an optional string; `None` (the outer one) for arrays and objects.
fn scalar(v: &Value) -> Option<Option<String>> {
    match v {
        Value::Null => Some(None),
        Value::String(s) => Some(non_empty(s)),
        Value::Number(n) => Some(Some(n.to_string())),
        Value::Bool(b) => Some(Some(b.to_string())),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// An LLM or rationale verdict: `real`/`fake`/`other` (or `unsure`) or ARG's `0`/`1`/`2`; empty or null is unknown.
pub(super) fn parse_pred(v: &Value) -> Result<Option<Verdict>, String> {
    let s = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        other => return Err(format!("{other} is not a verdict (real/fake/other or 0/1/2)")),
    };
    parse_pred_str(&s)
}

fn parse_pred_str(s: &str) -> Result<Option<Verdict>, String> {
    let s = s.trim();
    match s {
        "" => Ok(None),
        "0" => Ok(Some(Verdict::Real)),
        "1" => Ok(Some(Verdict::Fake)),
        "2" => Ok(Some(Verdict::Other)),
        _ => Verdict::parse(s).map(Some).ok_or_else(|| format!("'{s}' is not a verdict (real/fake/other or 0/1/2)")),
    }
}

fn imported_rationale(perspective: &str, text: &str, verdict: Option<Verdict>) -> NewRationale {
    NewRationale {
        perspective: perspective.to_string(),
        origin: RationaleOrigin::Imported,
        model: None,
        prompt: None,
        text: text.to_string(),
        verdict,
    }
}

/// A PolitiFact justification as a `human` rationale, when it has any text.
fn justification(text: &str) -> Option<NewRationale> {
    let text = text.trim();
    (!text.is_empty()).then(|| imported_rationale(HUMAN, text, None))
}

// -------------------------------------------------------------------------------------------------------------
// LIAR-PLUS

/// LIAR-PLUS TSV: 16 tab-separated columns, no header (column 0 a row index, 1 the statement id, 2 the six-way
/// label, 3 the statement, 4 subjects, 5 speaker, 6 job title, 7 state, 8 party, 9-13 credit-history counts,
/// 14 context, 15 the justification). Quoted fields follow the usual CSV double-quote rules.
pub(super) fn liar_plus_tsv(ctx: &Context<'_>, text: &str) -> Result<Vec<NewItem>, IngestError> {
    const COUNTS: [&str; 5] =
        ["barely_true_counts", "false_counts", "half_true_counts", "mostly_true_counts", "pants_on_fire_counts"];
    check_quotes(ctx, text, b'\t')?;
    let lines = CsvLines::new(text);
    let mut rdr = csv_reader(text, b'\t', false);
    let mut items = Vec::new();
    for rec in rdr.records().take(ctx.limit()) {
        let rec = rec.map_err(|e| lines.error(ctx, &e))?;
        let line = lines.of(&rec);
        if rec.len() != 16 {
            return Err(ctx.err(line, format!("expected 16 tab-separated columns (LIAR-PLUS), found {}", rec.len())));
        }
        let text = non_empty(&rec[3]).ok_or_else(|| ctx.err(line, "empty statement (column 4)"))?;
        let mut metadata = Map::new();
        put(&mut metadata, "row_index", number_or_string(&rec[0]));
        put(&mut metadata, "subjects", list(&rec[4], ','));
        put(&mut metadata, "speaker_job_title", string(&rec[6]));
        put(&mut metadata, "state", string(&rec[7]));
        put(&mut metadata, "party", string(&rec[8]));
        for (i, key) in COUNTS.iter().enumerate() {
            put(&mut metadata, key, number_or_string(&rec[9 + i]));
        }
        put(&mut metadata, "context", string(&rec[14]));
        items.push(NewItem {
            external_id: non_empty(&rec[1]),
            title: None,
            text,
            source: non_empty(&rec[5]),
            published: None,
            gold_label: ctx.gold(line, &rec[2])?,
            original_label: non_empty(&rec[2]),
            split: ctx.stem_split.clone(),
            metadata,
            rationales: justification(&rec[15]).into_iter().collect(),
        });
    }
    Ok(items)
}

/// LIAR-PLUS JSONL: one object per line with `id`, `json_file_id` (external id), `label`, `claim` (text),
/// `topics`, `originator` (source), `title` (the speaker's job title), `party` (which holds the state in the
/// published files) and `justification`. Unknown keys go to metadata.
pub(super) fn liar_plus_jsonl(ctx: &Context<'_>, text: &str) -> Result<Vec<NewItem>, IngestError> {
    let mut items = Vec::new();
    for (line, mut obj) in jsonl_objects(ctx, text)? {
        let text = match obj.remove("claim") {
            Some(Value::String(s)) => non_empty(&s),
            _ => None,
        }
        .ok_or_else(|| ctx.err(line, "empty or missing 'claim' (the statement)"))?;
        let label = take_scalar(ctx, line, &mut obj, "label")?;
        let gold_label = match &label {
            Some(l) => ctx.gold(line, l)?,
            None => None,
        };
        let external_id = take_scalar(ctx, line, &mut obj, "json_file_id")?;
        let source = take_scalar(ctx, line, &mut obj, "originator")?;
        let rationale = match obj.remove("justification") {
            Some(Value::String(s)) => justification(&s),
            Some(Value::Null) | None => None,
            Some(other) => return Err(ctx.err(line, format!("'justification' is not a string: {other}"))),
        };
        let mut metadata = Map::new();
        for (key, value) in obj {
            let key = match key.as_str() {
                "id" => "row_index".to_string(),
                "topics" => "subjects".to_string(),
                "title" => "speaker_job_title".to_string(),
                _ => key,
            };
            if !is_empty_value(&value) {
                metadata.insert(key, value);
            }
        }
        items.push(NewItem {
            external_id,
            title: None,
            text,
            source,
            published: None,
            gold_label,
            original_label: label,
            split: ctx.stem_split.clone(),
            metadata,
            rationales: rationale.into_iter().collect(),
        });
    }
    Ok(items)
}

// -------------------------------------------------------------------------------------------------------------
// LIAR2

/// LIAR2 CSV (header [`LIAR2_COLUMNS`]): integer labels 0..5 are named ([`LIAR2_LABEL_NAMES`], stored in metadata
/// `label_name`) and the name goes through the label map (falling back to the integer itself, so a user map may use
/// either); `statement` is the text, `speaker` the source, `date` the publication date. The `justification`, minus
/// every sentence that contains a verdict word, is a `human` rationale; when that removed anything, the unmodified
/// text is kept in metadata `justification_original`.
pub(super) fn liar2_csv(ctx: &Context<'_>, text: &str) -> Result<Vec<NewItem>, IngestError> {
    check_quotes(ctx, text, b',')?;
    let lines = CsvLines::new(text);
    let mut rdr = csv_reader(text, b',', true);
    let header = rdr.headers().map_err(|e| lines.error(ctx, &e))?.clone();
    let header_line = lines.of(&header);
    if !header.iter().eq(LIAR2_COLUMNS.iter().copied()) {
        return Err(ctx.err(
            header_line,
            format!(
                "not a LIAR2 header; expected: {}; found: {}",
                LIAR2_COLUMNS.join(","),
                header.iter().collect::<Vec<_>>().join(",")
            ),
        ));
    }
    let mut items = Vec::new();
    for rec in rdr.records().take(ctx.limit()) {
        let rec = rec.map_err(|e| lines.error(ctx, &e))?;
        let line = lines.of(&rec);
        if rec.len() != LIAR2_COLUMNS.len() {
            return Err(ctx.err(line, format!("expected {} columns (LIAR2), found {}", LIAR2_COLUMNS.len(), rec.len())));
        }
        let text = non_empty(&rec[2]).ok_or_else(|| ctx.err(line, "empty statement"))?;
        let raw_label = rec[1].trim();
        let mut metadata = Map::new();
        let gold_label = if raw_label.is_empty() {
            None
        } else {
            let name = raw_label
                .parse::<usize>()
                .ok()
                .and_then(|i| LIAR2_LABEL_NAMES.get(i))
                .ok_or_else(|| ctx.err(line, format!("LIAR2 label '{raw_label}' is not an integer 0..5")))?;
            metadata.insert("label_name".into(), Value::String(name.to_string()));
            let gold = ctx.labels.get(name).or_else(|| ctx.labels.get(raw_label));
            gold.ok_or_else(|| ctx.err(line, format!("{} ({name})", ctx.labels.unknown(raw_label))))?
        };
        put(&mut metadata, "subjects", list(&rec[4], ';'));
        put(&mut metadata, "speaker_description", string(&rec[6]));
        put(&mut metadata, "state", string(&rec[7]));
        for (i, key) in LIAR2_COLUMNS.iter().enumerate().take(14).skip(8) {
            put(&mut metadata, key, number_or_string(&rec[i]));
        }
        put(&mut metadata, "context", string(&rec[14]));
        let stripped = strip_verdict_sentences(&rec[15]);
        if !stripped.split_whitespace().eq(rec[15].split_whitespace()) {
            // Keep what was removed: the unmodified justification, only when stripping changed it.
            put(&mut metadata, "justification_original", string(&rec[15]));
        }
        let rationale = justification(&stripped);
        items.push(NewItem {
            external_id: non_empty(&rec[0]),
            title: None,
            text,
            source: non_empty(&rec[5]),
            published: non_empty(&rec[3]),
            gold_label,
            original_label: Some(rec[1].to_string()).filter(|l| !l.trim().is_empty()),
            split: ctx.stem_split.clone(),
            metadata,
            rationales: rationale.into_iter().collect(),
        });
    }
    Ok(items)
}

/// LIAR-PLUS's verdict words (`assets/forbidden_words.txt`), lower-cased and deduplicated.
fn verdict_words() -> &'static [String] {
    static WORDS: OnceLock<Vec<String>> = OnceLock::new();
    WORDS.get_or_init(|| {
        let mut words: Vec<String> = include_str!("../../assets/forbidden_words.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_lowercase)
            .collect();
        words.sort();
        words.dedup();
        words
    })
}

/// One automaton over all verdict words, matching ASCII case-insensitively (the words are ASCII).
fn verdict_matcher() -> Option<&'static aho_corasick::AhoCorasick> {
    static MATCHER: OnceLock<Option<aho_corasick::AhoCorasick>> = OnceLock::new();
    MATCHER
        .get_or_init(|| aho_corasick::AhoCorasick::builder().ascii_case_insensitive(true).build(verdict_words()).ok())
        .as_ref()
}

/// Removes every sentence that contains a verdict word (case-insensitively, whole words or phrases only: `true`
/// matches "True." but not "untrue"), joining the remaining sentences with single spaces.
pub(super) fn strip_verdict_sentences(text: &str) -> String {
    sentences(text).into_iter().filter(|s| !has_verdict_phrase(s)).collect::<Vec<_>>().join(" ")
}

/// True when a verdict word or phrase occurs in `sentence` with a non-word character (or the edge) on both sides.
fn has_verdict_phrase(sentence: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let Some(matcher) = verdict_matcher() else {
        return verdict_words().iter().any(|w| contains_phrase(&sentence.to_lowercase(), w));
    };
    matcher.find_overlapping_iter(sentence).any(|m| {
        let before = sentence[..m.start()].chars().next_back();
        let after = sentence[m.end()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// True when `phrase` occurs in `haystack` with a non-word character (or the text's edge) on both sides.
fn contains_phrase(haystack: &str, phrase: &str) -> bool {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    haystack.match_indices(phrase).any(|(i, m)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + m.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// Splits text into sentences: a sentence ends at `.`, `!` or `?` (plus any closing quotes or brackets) followed
/// by whitespace or the end of the text. Sentences are trimmed; empty ones are dropped.
fn sentences(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        if matches!(chars[i].1, '.' | '!' | '?') {
            let mut j = i + 1;
            while j < chars.len() && matches!(chars[j].1, '.' | '!' | '?' | '"' | '\'' | ')' | ']' | '”' | '’') {
                j += 1;
            }
            if j == chars.len() || chars[j].1.is_whitespace() {
                let end = chars.get(j).map_or(text.len(), |&(b, _)| b);
                let s = text[start..end].trim();
                if !s.is_empty() {
                    out.push(s);
                }
                start = end;
                i = j;
                continue;
            }
        }
        i += 1;
    }
    let tail = text[start..].trim();
    if !tail.is_empty() {
        out.push(tail);
    }
    out
}

// -------------------------------------------------------------------------------------------------------------
// Generic CSV / JSONL through a column map

/// Any delimited file with a header, read through a column map; unmapped columns go to metadata as strings.
pub(super) fn generic_csv(
    ctx: &Context<'_>,
    text: &str,
    map: &ColumnMap,
    delimiter: u8,
) -> Result<Vec<NewItem>, IngestError> {
    check_quotes(ctx, text, delimiter)?;
    let lines = CsvLines::new(text);
    let mut rdr = csv_reader(text, delimiter, true);
    let header = rdr.headers().map_err(|e| lines.error(ctx, &e))?.clone();
    let header_line = lines.of(&header);
    if header.is_empty() {
        return Err(ctx.err(1, "the file is empty: a delimited file needs a header line"));
    }
    let names: Vec<&str> = header.iter().map(str::trim).collect();
    let index = |column: &str| names.iter().position(|n| *n == column);
    let mut mapped_idx = Vec::new();
    for (target, column) in map.mapped() {
        match index(column) {
            Some(i) => mapped_idx.push(i),
            None => {
                let shown = match delimiter {
                    b'\t' => "tab".to_string(),
                    d => format!("'{}'", d as char),
                };
                return Err(ctx.err(
                    header_line,
                    format!(
                        "column '{column}' (mapped to {target}) is not in the header; the header's columns \
                         (delimiter {shown}) are: {}",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    let col = |name: &Option<String>| name.as_deref().and_then(index);
    let content = index(&map.content).unwrap_or_default();
    let (label, title, source, date, id, split) =
        (col(&map.label), col(&map.title), col(&map.source), col(&map.date), col(&map.id), col(&map.split));
    let rationale_cols: Vec<(&str, usize, Option<usize>)> = map
        .rationales
        .iter()
        .filter_map(|r| Some((r.perspective.as_str(), index(&r.text)?, col(&r.verdict))))
        .collect();
    let meta_cols: Vec<(&str, usize)> =
        map.metadata.iter().filter_map(|(name, c)| Some((name.as_str(), index(c)?))).collect();

    let mut items = Vec::new();
    for rec in rdr.records().take(ctx.limit()) {
        let rec = rec.map_err(|e| lines.error(ctx, &e))?;
        let line = lines.of(&rec);
        if rec.len() != names.len() {
            return Err(
                ctx.err(line, format!("expected {} columns (as in the header), found {}", names.len(), rec.len()))
            );
        }
        let get = |i: Option<usize>| i.and_then(|i| non_empty(&rec[i]));
        let text =
            non_empty(&rec[content]).ok_or_else(|| ctx.err(line, format!("empty text (column '{}')", map.content)))?;
        let original_label = get(label);
        let gold_label = match &original_label {
            Some(l) => ctx.gold(line, l)?,
            None => None,
        };
        let mut rationales = Vec::new();
        for &(perspective, text_col, verdict_col) in &rationale_cols {
            let Some(text) = non_empty(&rec[text_col]) else { continue };
            let verdict = match verdict_col {
                Some(v) => parse_pred_str(&rec[v]).map_err(|m| ctx.err(line, format!("'{}': {m}", names[v])))?,
                None => None,
            };
            rationales.push(imported_rationale(perspective, &text, verdict));
        }
        let mut metadata = Map::new();
        for (i, value) in rec.iter().enumerate() {
            if !mapped_idx.contains(&i) && !value.trim().is_empty() {
                metadata.insert(names[i].to_string(), Value::String(value.to_string()));
            }
        }
        for &(name, i) in &meta_cols {
            put(&mut metadata, name, string(&rec[i]));
        }
        items.push(NewItem {
            external_id: get(id),
            title: get(title),
            text,
            source: get(source),
            published: get(date),
            gold_label,
            original_label,
            split: get(split).or_else(|| ctx.stem_split.clone()),
            metadata,
            rationales,
        });
    }
    Ok(items)
}

/// A JSON array of objects or a JSON Lines file (the first byte tells), read through a column map whose names are
/// field paths ([`FieldPath`]); top-level keys no path starts from go to metadata. Every mapped path must start
/// from a key of the first object.
pub(super) fn generic_json(ctx: &Context<'_>, text: &str, map: &ColumnMap) -> Result<Vec<NewItem>, IngestError> {
    let objects = if text.trim_start().starts_with('[') {
        json_array_objects(ctx, text, "expected a JSON array of objects")?
    } else {
        jsonl_objects(ctx, text)?
    };
    let mut paths = Vec::new();
    for (target, column) in map.mapped() {
        let path = FieldPath::parse(column).map_err(|m| IngestError::file(ctx.path, format!("{target}: {m}")))?;
        paths.push((target, path));
    }
    if let Some((line, first)) = objects.first() {
        for (target, path) in &paths {
            if !path.starts_in(first) {
                return Err(ctx.err(
                    *line,
                    format!(
                        "key '{}' (mapped to {target}) is not in the first object; its keys are: {}",
                        path.top_key(first),
                        first.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
    }
    let path_of = |target: &str| paths.iter().find(|(t, _)| t == target).map(|(_, p)| p);
    let mut items = Vec::new();
    for (line, obj) in objects {
        let at = |target: &str, m: String| ctx.err(line, format!("{target}: {m}"));
        let one = |target: &str| -> Result<Option<String>, IngestError> {
            match path_of(target) {
                Some(p) => p.scalar(&obj).map_err(|m| at(target, m)),
                None => Ok(None),
            }
        };
        let joined = |target: &str, sep: &str| -> Result<Option<String>, IngestError> {
            match path_of(target) {
                Some(p) => p.text(&obj, sep).map_err(|m| at(target, m)),
                None => Ok(None),
            }
        };
        let label = one("label")?;
        let title = joined("title", " ")?;
        let source = joined("source", ", ")?;
        let published = one("date")?;
        let external_id = one("id")?;
        let split = one("split")?;
        let text = joined("content", "\n")?
            .ok_or_else(|| ctx.err(line, format!("empty or missing text ('{}', mapped to content)", map.content)))?;
        let gold_label = match &label {
            Some(l) => ctx.gold(line, l)?,
            None => None,
        };
        let mut rationales = Vec::new();
        for r in &map.rationales {
            let Some(text) = joined(&format!("rationale:{}", r.perspective), "\n")? else { continue };
            let verdict = match one(&format!("verdict:{}", r.perspective))? {
                Some(v) => parse_pred_str(&v)
                    .map_err(|m| at(&format!("verdict:{}", r.perspective), format!("'{}': {m}", v.trim())))?,
                None => None,
            };
            rationales.push(imported_rationale(&r.perspective, &text, verdict));
        }
        let used: Vec<&str> = paths.iter().map(|(_, p)| p.top_key(&obj)).collect();
        let mut metadata: Map<String, Value> = obj
            .iter()
            .filter(|(k, v)| !used.contains(&k.as_str()) && !is_empty_value(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, _) in &map.metadata {
            if let Some(v) = joined(&format!("meta:{name}"), "\n")? {
                metadata.insert(name.clone(), Value::String(v));
            }
        }
        items.push(NewItem {
            external_id,
            title,
            text,
            source,
            published,
            gold_label,
            original_label: label,
            split: split.or_else(|| ctx.stem_split.clone()),
            metadata,
            rationales,
        });
    }
    Ok(items)
}

/// The top-level columns of a file's head, to help write a column map: a delimited file's header, or the keys of
/// the first JSON object (array or lines). Empty when there is none (LIAR-PLUS TSV has no header) or the head does
/// not parse.
pub(super) fn columns_of(text: &str, format: FileFormat, delimiter: Option<u8>) -> Vec<String> {
    match format {
        FileFormat::Csv | FileFormat::Liar2Csv => {
            let mut rdr = csv_reader(text, delimiter.unwrap_or(b','), true);
            rdr.headers().map(|h| h.iter().map(|c| c.trim().to_string()).collect()).unwrap_or_default()
        }
        FileFormat::LiarPlusTsv => Vec::new(),
        FileFormat::ArgJson | FileFormat::Json | FileFormat::Jsonl | FileFormat::LiarPlusJsonl => {
            let body = text.trim_start();
            let first = if let Some(rest) = body.strip_prefix('[') {
                serde_json::Deserializer::from_str(rest.trim_start()).into_iter::<Value>().next().and_then(Result::ok)
            } else {
                body.lines().find(|l| !l.trim().is_empty()).and_then(|l| serde_json::from_str::<Value>(l).ok())
            };
            match first {
                Some(Value::Object(o)) => o.keys().cloned().collect(),
                _ => Vec::new(),
            }
        }
    }
}

// -------------------------------------------------------------------------------------------------------------
// Shared parsing helpers

/// A JSON object with the 1-based line it is on.
type LineObject = (usize, Map<String, Value>);

/// Every non-blank line of a JSON Lines text as an object, with its 1-based line number.
fn jsonl_objects(ctx: &Context<'_>, text: &str) -> Result<Vec<LineObject>, IngestError> {
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        if out.len() >= ctx.limit() {
            break;
        }
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(o)) => out.push((line, o)),
            Ok(other) => {
                let kind = match other {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    Value::Null | Value::Object(_) => "null",
                };
                return Err(ctx.err(line, format!("expected a JSON object, found {kind}")));
            }
            Err(e) => {
                return Err(ctx.err(line, format!("malformed JSON at column {}: {e}", e.column())));
            }
        }
    }
    Ok(out)
}

fn csv_reader(text: &str, delimiter: u8, has_headers: bool) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new().delimiter(delimiter).has_headers(has_headers).flexible(true).from_reader(text.as_bytes())
}

/// Physical line numbers of CSV records.
///
/// The csv crate's `Position::line()` is one too small in CRLF files (a record's position is taken before the
/// `\n` that ends the previous record), so the line is computed from the record's byte offset instead: past any
/// line-end bytes, which never start a record.
struct CsvLines<'a> {
    bytes: &'a [u8],
    index: LineIndex,
}

impl<'a> CsvLines<'a> {
    fn new(text: &'a str) -> Self {
        Self { bytes: text.as_bytes(), index: LineIndex::new(text) }
    }

    fn of_position(&self, p: &csv::Position) -> usize {
        let mut b = usize::try_from(p.byte()).unwrap_or(usize::MAX).min(self.bytes.len());
        while b < self.bytes.len() && matches!(self.bytes[b], b'\r' | b'\n') {
            b += 1;
        }
        self.index.line_of(b)
    }

    fn of(&self, rec: &csv::StringRecord) -> usize {
        rec.position().map_or(1, |p| self.of_position(p))
    }

    fn error(&self, ctx: &Context<'_>, e: &csv::Error) -> IngestError {
        match e.position() {
            Some(p) => ctx.err(self.of_position(p), format!("malformed CSV: {e}")),
            None => IngestError::file(ctx.path, format!("malformed CSV: {e}")),
        }
    }
}

/// Fails when the text ends inside a quoted field (a truncated file), naming the line where that record starts.
///
/// Follows the csv crate's default rules: a quote opens a quoted field only at the start of a field, `""` inside
/// one is a literal quote, and `\r` or `\n` outside quotes ends a record.
fn check_quotes(ctx: &Context<'_>, text: &str, delimiter: u8) -> Result<(), IngestError> {
    if ctx.limit.is_some() {
        return Ok(()); // a preview reads a head whose end may be cut anywhere
    }
    let b = text.as_bytes();
    let (mut i, mut line, mut record_line, mut field_start) = (0, 1, 1, true);
    while i < b.len() {
        let c = b[i];
        if field_start && c == b'"' {
            i += 1;
            loop {
                match b.get(i) {
                    None => {
                        return Err(ctx.err(
                            record_line,
                            "the file ends inside a quoted field of the record starting here (truncated file?)",
                        ));
                    }
                    Some(b'"') if b.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\n') => {
                        line += 1;
                        i += 1;
                    }
                    Some(_) => i += 1,
                }
            }
            field_start = false;
            continue;
        }
        if c == b'\n' {
            line += 1;
            record_line = line;
            field_start = true;
        } else {
            field_start = c == delimiter || c == b'\r';
        }
        i += 1;
    }
    Ok(())
}

/// 1-based line numbers of byte offsets.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Self { starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn string(s: &str) -> Value {
    non_empty(s).map_or(Value::Null, Value::String)
}

/// An integer when the field is one, else the trimmed string.
fn number_or_string(s: &str) -> Value {
    let t = s.trim();
    t.parse::<i64>().map(Value::from).unwrap_or_else(|_| string(t))
}

/// A `sep`-separated list as a JSON array of trimmed, non-empty strings.
fn list(s: &str, sep: char) -> Value {
    let parts: Vec<Value> = s.split(sep).filter_map(non_empty).map(Value::String).collect();
    if parts.is_empty() { Value::Null } else { Value::Array(parts) }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Inserts a metadata value unless it is empty.
fn put(metadata: &mut Map<String, Value>, key: &str, value: Value) {
    if !is_empty_value(&value) {
        metadata.insert(key.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_on_terminal_punctuation() {
        assert_eq!(
            sentences("He said \"no.\" Then 3.5 percent left! Why? Because"),
            ["He said \"no.\"", "Then 3.5 percent left!", "Why?", "Because"]
        );
        assert!(sentences("  ").is_empty());
    }

    #[test]
    fn verdict_sentences_are_removed() {
        let text = "Obama took good-faith measures. We rate it Mostly True. The claim is Pants on Fire! \
                    An untrue rumour spread. TRUE, he said. It is half-true.";
        assert_eq!(strip_verdict_sentences(text), "Obama took good-faith measures. An untrue rumour spread.");
        assert_eq!(strip_verdict_sentences("That's false."), "");
        // Phrases match whole words only.
        assert_eq!(strip_verdict_sentences("It was a truthful account."), "It was a truthful account.");
        assert!(verdict_words().contains(&"pants on fire".to_string()));
        assert!(!verdict_words().iter().any(|w| w.starts_with('#')));
    }

    #[test]
    fn phrases_need_word_boundaries() {
        assert!(contains_phrase("it's true.", "true"));
        assert!(contains_phrase("half-true", "true"));
        assert!(!contains_phrase("untrue", "true"));
        assert!(!contains_phrase("trueness", "true"));
        assert!(contains_phrase("rated pants on fire!", "pants on fire"));
    }

    #[test]
    fn predictions_parse() {
        assert_eq!(parse_pred(&Value::from(2)), Ok(Some(Verdict::Other)));
        assert_eq!(parse_pred(&Value::from("fake")), Ok(Some(Verdict::Fake)));
        assert_eq!(parse_pred(&Value::Null), Ok(None));
        assert!(parse_pred(&Value::from(7)).is_err());
        assert!(parse_pred(&Value::Bool(true)).is_err());
    }

    #[test]
    fn line_index_is_one_based() {
        let idx = LineIndex::new("a\nbc\n\nd");
        assert_eq!([0, 1, 2, 4, 5, 6].map(|o| idx.line_of(o)), [1, 1, 2, 2, 3, 4]);
    }
}
