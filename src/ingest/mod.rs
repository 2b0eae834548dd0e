//! Importers and exporters: reads dataset files (ARG JSON, LIAR-PLUS TSV/JSONL, LIAR2 CSV, and any CSV or JSONL
//! through a column map) into [`NewItem`]s, hands them to the store in one transaction, and writes the store back out
//! (see [`export`]).
//!
//! Every reader first reads the whole file as bytes, strips a UTF-8 byte-order mark and validates UTF-8, so every
//! error can name the file and the 1-based physical line it concerns ([`IngestError`]). Nothing touches the database
//! until every file of an import has parsed.
//!
//! This module knows nothing of the UI, of egui, or of the jobs registry: long work reports through
//! [`Progress`] only. It talks to the database only through [`Store::import`] and [`Store::export_rows`].

pub mod bundle;
pub mod claimreview;
pub mod export;
mod path;
mod readers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::domain::{NewDataset, NewItem, Verdict};
use crate::jobs::Progress;
use crate::store::{ImportStep, ImportSummary, Store, StoreError};

pub use export::{ExportError, ExportFormat, ExportSummary, export};

/// A problem with one input file, located as precisely as the reader could: `FILE:LINE: reason`.
///
/// `line` is the 1-based physical line of the file where the offending record (or byte) starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {reason}", .file.display(), line_suffix(.line))]
pub struct IngestError {
    /// The file being read.
    pub file: PathBuf,
    /// 1-based physical line number, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong, in words.
    pub reason: String,
}

fn line_suffix(line: &Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

impl IngestError {
    /// An error at a line of a file.
    pub fn at(file: &Path, line: usize, reason: impl Into<String>) -> Self {
        Self { file: file.to_path_buf(), line: Some(line), reason: reason.into() }
    }

    /// An error about a whole file.
    pub fn file(file: &Path, reason: impl Into<String>) -> Self {
        Self { file: file.to_path_buf(), line: None, reason: reason.into() }
    }
}

/// Why a command-line value (`--format`, `--map`, `--labels`, export format) was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseOptionError(pub String);

/// Errors of [`import_files`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A file did not parse; nothing was written.
    #[error(transparent)]
    Parse(#[from] IngestError),
    /// The database refused the import; nothing was written.
    #[error(transparent)]
    Store(StoreError),
    /// Someone cancelled the import; nothing was written.
    #[error("import cancelled; nothing was written")]
    Cancelled(#[from] crate::jobs::Cancelled),
}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Cancelled(c) => Self::Cancelled(c),
            e => Self::Store(e),
        }
    }
}

// -------------------------------------------------------------------------------------------------------------
// Formats

/// An input format that Argus reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileFormat {
    /// ICTMCG/ARG's `train.json`/`val.json`/`test.json`: a JSON array of objects with `content`, `label` and
    /// `<perspective>_rationale` / `_pred` / `_acc`.
    ArgJson,
    /// LIAR-PLUS `*.tsv`: 16 tab-separated columns, no header.
    LiarPlusTsv,
    /// LIAR-PLUS `*.jsonl`: one object per line with `claim`, `json_file_id`, `justification`, ...
    LiarPlusJsonl,
    /// LIAR2 `*.csv`: a header of exactly LIAR2's 16 columns, integer labels 0..5.
    Liar2Csv,
    /// Any delimited text with a header (comma, tab, semicolon, ...: `.tsv` and `.csv` guessed from the extension
    /// and the header, or [`ImportOptions::delimiter`]), read through a [`ColumnMap`].
    Csv,
    /// A JSON array of objects (or JSON Lines), read through a [`ColumnMap`] whose names are field paths.
    Json,
    /// JSON Lines (or a JSON array of objects: the first byte tells), read through a [`ColumnMap`] whose names are
    /// field paths.
    Jsonl,
}

crate::domain::named_enum!(FileFormat, "format", {
    ArgJson => "arg-json",
    LiarPlusTsv => "liar-plus-tsv",
    LiarPlusJsonl => "liar-plus-jsonl",
    Liar2Csv => "liar2-csv",
    Csv => "csv",
    Json => "json",
    Jsonl => "jsonl",
});

impl FileFormat {
    /// True for the generic formats, which need a [`ColumnMap`].
    pub fn needs_column_map(self) -> bool {
        matches!(self, Self::Csv | Self::Json | Self::Jsonl)
    }

    /// The one-line license note stored with datasets of a known public source, if any.
    pub fn license_note(self) -> Option<&'static str> {
        match self {
            Self::Liar2Csv => Some("LIAR2 (chengxuphd/liar2), Apache-2.0; PolitiFact text"),
            Self::LiarPlusTsv | Self::LiarPlusJsonl => Some(
                "LIAR-PLUS (Tariq60/LIAR-PLUS), CC0 1.0 per LICENSE; README says research use only; PolitiFact text",
            ),
            _ => None,
        }
    }

    /// Guesses the format of a file from its extension and, for `.jsonl` and `.csv`, its first record:
    ///
    /// * `.json` -> `arg-json`; `.tsv` -> `liar-plus-tsv` when its first line is a LIAR-PLUS record (a row index
    ///   and a `NNNN.json` statement id), else `csv` (tab-separated, with a header);
    /// * `.jsonl` -> `liar-plus-jsonl` when the first object has `claim` and `json_file_id`, else `jsonl`;
    /// * `.csv` -> `liar2-csv` when the header is exactly LIAR2's columns, else `csv`.
    ///
    /// `csv`, `json` and `jsonl` need a column map to be read; with a column map, `.json` reads as `json` and
    /// `.tsv` as `csv` (tab-separated). `bytes` is the file's content (a BOM is allowed).
    pub fn detect(path: &Path, bytes: &[u8]) -> Result<Self, IngestError> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
        let bytes = strip_bom(bytes);
        match ext.as_str() {
            "json" => Ok(Self::ArgJson),
            "tsv" => Ok(if readers::looks_like_liar_plus_tsv(bytes) { Self::LiarPlusTsv } else { Self::Csv }),
            "jsonl" | "ndjson" => {
                Ok(if readers::looks_like_liar_plus_jsonl(bytes) { Self::LiarPlusJsonl } else { Self::Jsonl })
            }
            "csv" => Ok(if readers::looks_like_liar2_csv(bytes) { Self::Liar2Csv } else { Self::Csv }),
            _ => Err(IngestError::file(
                path,
                format!(
                    "cannot tell the format from the file name (extension {}); name one of: {}",
                    if ext.is_empty() { "none".to_string() } else { format!("'.{ext}'") },
                    format_names()
                ),
            )),
        }
    }
}

fn format_names() -> String {
    FileFormat::ALL.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
}

// -------------------------------------------------------------------------------------------------------------
// Label map

/// Maps a source's label (trimmed, lower-cased) to a binary gold verdict, or to no gold label at all
/// (`unlabelled`: the item is kept with its original label, and left out of training and metrics).
///
/// The default map knows PolitiFact's six-way scale (`pants-fire`/`pants-on-fire`, `false`, `barely-true`,
/// `mostly-false` -> fake; `half-true`, `mostly-true`, `true` -> real), `real`/`fake`, and ARG's integer coding
/// (`0` -> real, `1` -> fake). A user map ([`LabelMap::parse`]) replaces it entirely. A label the map does not name
/// fails the import unless a default target is set ([`LabelMap::with_default`], `--default-label`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelMap {
    map: BTreeMap<String, Option<Verdict>>,
    /// What a label the map does not name becomes; `None`: such a label is an error (the strict default).
    default: Option<Option<Verdict>>,
}

impl Default for LabelMap {
    fn default() -> Self {
        let fake = ["fake", "1", "pants-fire", "pants-on-fire", "false", "barely-true", "mostly-false"];
        let real = ["real", "0", "half-true", "mostly-true", "true"];
        let map = fake
            .iter()
            .map(|k| (k.to_string(), Some(Verdict::Fake)))
            .chain(real.iter().map(|k| (k.to_string(), Some(Verdict::Real))))
            .collect();
        Self { map, default: None }
    }
}

/// The target word for "no gold label".
pub const UNLABELLED: &str = "unlabelled";

/// Reads a label map target: `real`, `fake`, or `unlabelled` (also spelled `unlabeled`, `none`).
fn label_target(word: &str) -> Option<Option<Verdict>> {
    match word.trim().to_ascii_lowercase().as_str() {
        "real" => Some(Some(Verdict::Real)),
        "fake" => Some(Some(Verdict::Fake)),
        "unlabelled" | "unlabeled" | "none" => Some(None),
        _ => None,
    }
}

impl LabelMap {
    /// Parses a user map such as `pants-fire=fake,false=fake,half-true=real,not enough info=unlabelled`:
    /// comma-separated `label=real|fake|unlabelled` pairs. Labels are matched trimmed and case-insensitively.
    pub fn parse(spec: &str) -> Result<Self, ParseOptionError> {
        let mut map = BTreeMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((label, target)) = part.rsplit_once('=') else {
                return Err(ParseOptionError(format!(
                    "label map entry '{part}' is not LABEL=real, LABEL=fake or LABEL=unlabelled"
                )));
            };
            let label = label.trim().to_lowercase();
            if label.is_empty() {
                return Err(ParseOptionError(format!("label map entry '{part}' has an empty label")));
            }
            let Some(verdict) = label_target(target) else {
                return Err(ParseOptionError(format!(
                    "label map entry '{part}': '{}' is not a gold label (real, fake or unlabelled)",
                    target.trim()
                )));
            };
            if let Some(previous) = map.insert(label.clone(), verdict).filter(|&p| p != verdict) {
                return Err(ParseOptionError(format!(
                    "label map maps '{label}' twice ({} and {})",
                    target_name(previous),
                    target_name(verdict)
                )));
            }
        }
        if map.is_empty() {
            return Err(ParseOptionError("the label map is empty; write it as LABEL=real,LABEL=fake,...".into()));
        }
        Ok(Self { map, default: None })
    }

    /// The same map, with labels it does not name read as `target` (`real`, `fake` or `unlabelled`) instead of
    /// failing the import.
    pub fn with_default(mut self, target: &str) -> Result<Self, ParseOptionError> {
        let t = label_target(target).ok_or_else(|| {
            ParseOptionError(format!("'{}' is not a gold label (real, fake or unlabelled)", target.trim()))
        })?;
        self.default = Some(t);
        Ok(self)
    }

    /// The gold label of a source label: `Some(Some(v))` a gold label, `Some(None)` unlabelled, `None` a label the
    /// map does not name (with no default).
    pub fn get(&self, label: &str) -> Option<Option<Verdict>> {
        self.map.get(&label.trim().to_lowercase()).copied().or(self.default)
    }

    /// The gold label for a source label: `Ok(None)` for an empty label or one mapped to `unlabelled`, an error
    /// message for a label the map does not know.
    pub fn resolve(&self, label: &str) -> Result<Option<Verdict>, String> {
        if label.trim().is_empty() {
            return Ok(None);
        }
        self.get(label).ok_or_else(|| self.unknown(label))
    }

    /// The message for a label that is not in the map.
    pub(crate) fn unknown(&self, label: &str) -> String {
        format!(
            "label '{}' is not in the label map (known: {}); map it (LABEL=unlabelled keeps such items without a \
             gold label) or pass --default-label unlabelled",
            label.trim(),
            self.known().join(", ")
        )
    }

    /// The labels the map knows, sorted.
    pub fn known(&self) -> Vec<&str> {
        self.map.keys().map(String::as_str).collect()
    }
}

fn target_name(t: Option<Verdict>) -> &'static str {
    t.map_or(UNLABELLED, Verdict::as_str)
}

impl FromStr for LabelMap {
    type Err = ParseOptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// -------------------------------------------------------------------------------------------------------------
// Column map

/// The columns (or JSON keys) of one rationale in a generic CSV/JSONL file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RationaleColumns {
    /// Perspective the rationale is stored under (`human`, `td`, `cs`, ...).
    pub perspective: String,
    /// Column with the rationale's text.
    pub text: String,
    /// Optional column with the verdict it implies (`real`/`fake`/`other` or `0`/`1`/`2`).
    pub verdict: Option<String>,
}

/// Which source column (CSV header name or JSON key) fills which item field, for the generic `csv` and `jsonl`
/// formats. Columns that are not mapped go to the item's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnMap {
    /// The text that is judged (required).
    pub content: String,
    /// The source label, read through the label map.
    pub label: Option<String>,
    /// A headline distinct from the text.
    pub title: Option<String>,
    /// Speaker, outlet or originator.
    pub source: Option<String>,
    /// Publication date, kept as written.
    pub date: Option<String>,
    /// The id in the source (stored as the external id).
    pub id: Option<String>,
    /// train/val/test; without it the split comes from the file name.
    pub split: Option<String>,
    /// `rationale:<perspective>` and `verdict:<perspective>` targets, in the order given.
    pub rationales: Vec<RationaleColumns>,
    /// `meta:<name>` targets (and `evidence`, which is `meta:evidence`): a column or nested field copied into the
    /// item's metadata under `name`, arrays joined by new lines.
    pub metadata: Vec<(String, String)>,
}

const COLUMN_TARGETS: &str = "content, label, title, source, date, id, split, rationale:<perspective>, \
                              verdict:<perspective>, meta:<name>, evidence";

impl ColumnMap {
    /// Parses `content=statement,label=label,rationale:human=justification,title=headline,...`: comma-separated
    /// `target=column` pairs. Targets: `content` (required), `label`, `title`, `source`, `date`, `id`, `split`,
    /// `rationale:<perspective>` (repeatable), `verdict:<perspective>` (the verdict of that rationale),
    /// `meta:<name>` (copied into metadata) and `evidence` (`meta:evidence`).
    /// Column names are trimmed and cannot contain `,` or `=`. In JSON files a column is a field path
    /// (`claim.text`, `verdict.rating`, `questions[*].answers[*].answer`, `reviews[0].rating`).
    pub fn parse(spec: &str) -> Result<Self, ParseOptionError> {
        let err = |m: String| Err(ParseOptionError(m));
        let mut singles: BTreeMap<&str, String> = BTreeMap::new();
        let mut rationales: Vec<RationaleColumns> = Vec::new();
        let mut verdicts: Vec<(String, String)> = Vec::new();
        let mut metadata: Vec<(String, String)> = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((target, column)) = part.split_once('=') else {
                return err(format!("column map entry '{part}' is not TARGET=COLUMN"));
            };
            let (target, column) = (target.trim(), column.trim());
            if column.is_empty() {
                return err(format!("column map entry '{part}' names no column"));
            }
            if let Some(p) = target.strip_prefix("rationale:") {
                let p = perspective_name(p, part)?;
                if rationales.iter().any(|r| r.perspective == p) {
                    return err(format!("column map gives rationale:{p} twice"));
                }
                rationales.push(RationaleColumns { perspective: p, text: column.to_string(), verdict: None });
            } else if let Some(p) = target.strip_prefix("verdict:") {
                let p = perspective_name(p, part)?;
                if verdicts.iter().any(|(v, _)| *v == p) {
                    return err(format!("column map gives verdict:{p} twice"));
                }
                verdicts.push((p, column.to_string()));
            } else if let Some(name) = target.strip_prefix("meta:").or((target == "evidence").then_some("evidence")) {
                let name = perspective_name(name, part)?;
                if metadata.iter().any(|(n, _)| *n == name) {
                    return err(format!("column map gives meta:{name} twice"));
                }
                metadata.push((name, column.to_string()));
            } else {
                let key = match target {
                    "content" => "content",
                    "label" => "label",
                    "title" => "title",
                    "source" => "source",
                    "date" => "date",
                    "id" => "id",
                    "split" => "split",
                    _ => return err(format!("unknown column map target '{target}'; targets: {COLUMN_TARGETS}")),
                };
                if singles.insert(key, column.to_string()).is_some() {
                    return err(format!("column map gives '{key}' twice"));
                }
            }
        }
        for (p, column) in verdicts {
            match rationales.iter_mut().find(|r| r.perspective == p) {
                Some(r) => r.verdict = Some(column),
                None => return err(format!("column map gives verdict:{p} but no rationale:{p}")),
            }
        }
        let Some(content) = singles.remove("content") else {
            return err("a column map needs content=COLUMN (the text to judge)".into());
        };
        Ok(Self {
            content,
            label: singles.remove("label"),
            title: singles.remove("title"),
            source: singles.remove("source"),
            date: singles.remove("date"),
            id: singles.remove("id"),
            split: singles.remove("split"),
            rationales,
            metadata,
        })
    }

    /// Every mapped column with the target it fills, in a stable order (content first).
    pub fn mapped(&self) -> Vec<(String, &str)> {
        let mut out = vec![("content".to_string(), self.content.as_str())];
        for (target, column) in [
            ("label", &self.label),
            ("title", &self.title),
            ("source", &self.source),
            ("date", &self.date),
            ("id", &self.id),
            ("split", &self.split),
        ] {
            if let Some(c) = column {
                out.push((target.to_string(), c.as_str()));
            }
        }
        for r in &self.rationales {
            out.push((format!("rationale:{}", r.perspective), r.text.as_str()));
            if let Some(v) = &r.verdict {
                out.push((format!("verdict:{}", r.perspective), v.as_str()));
            }
        }
        for (name, column) in &self.metadata {
            out.push((format!("meta:{name}"), column.as_str()));
        }
        out
    }
}

fn perspective_name(p: &str, part: &str) -> Result<String, ParseOptionError> {
    let p = p.trim();
    if p.is_empty() || !p.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return Err(ParseOptionError(format!(
            "column map entry '{part}': a perspective or metadata name is a non-empty name of letters, digits, '_' \
             or '-'"
        )));
    }
    Ok(p.to_string())
}

impl FromStr for ColumnMap {
    type Err = ParseOptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// -------------------------------------------------------------------------------------------------------------
// Public API

/// How to read input files.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The format; `None` guesses it from each file ([`FileFormat::detect`]).
    pub format: Option<FileFormat>,
    /// Column map for the generic `csv`/`json`/`jsonl` formats. Given without a format, it makes `.csv`, `.tsv`,
    /// `.json` and `.jsonl` files read as generic files even when they look like LIAR2/LIAR-PLUS/ARG; with a preset
    /// format it is an error.
    pub columns: Option<ColumnMap>,
    /// Source label -> gold label.
    pub labels: LabelMap,
    /// The delimiter of a generic `csv` file; `None` guesses it (tab for `.tsv`, else the most frequent of comma,
    /// tab, semicolon and `|` in the header).
    pub delimiter: Option<u8>,
    /// Dataset name; `None` uses the file name. With several files, each dataset is named `NAME: FILE NAME`.
    pub dataset_name: Option<String>,
}

/// A `--map`, `--labels`, `--default-label` or `--delimiter` value that did not parse; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// The column map (`--map`).
    #[error("--map: {0}")]
    Map(ParseOptionError),
    /// The label map (`--labels`).
    #[error("--labels: {0}")]
    Labels(ParseOptionError),
    /// What labels outside the map become (`--default-label`).
    #[error("--default-label: {0}")]
    DefaultLabel(ParseOptionError),
    /// The delimiter (`--delimiter`).
    #[error("--delimiter: {0}")]
    Delimiter(ParseOptionError),
}

/// The words a user typed for an import (the CLI's flags, the studio's import dialog), before they are checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportFlags {
    /// `--format`; `None` guesses per file.
    pub format: Option<FileFormat>,
    /// `--map`, [`ColumnMap::parse`]'s syntax.
    pub map: Option<String>,
    /// `--labels`, [`LabelMap::parse`]'s syntax; replaces the default map.
    pub labels: Option<String>,
    /// `--default-label`: `unlabelled`, `real` or `fake` for labels the map does not name.
    pub default_label: Option<String>,
    /// `--delimiter`: one character, or `tab`, `comma`, `semicolon`, `pipe`.
    pub delimiter: Option<String>,
    /// `--name`.
    pub name: Option<String>,
}

/// Reads a delimiter: one ASCII character (`\t` written out allowed), or `tab`, `comma`, `semicolon`, `pipe`.
pub fn parse_delimiter(s: &str) -> Result<u8, ParseOptionError> {
    match s {
        "tab" | "\\t" | "\t" => return Ok(b'\t'),
        "comma" => return Ok(b','),
        "semicolon" => return Ok(b';'),
        "pipe" => return Ok(b'|'),
        _ => {}
    }
    match s.as_bytes() {
        [b] if b.is_ascii() && !matches!(b, b'"' | b'\n' | b'\r') => Ok(*b),
        _ => Err(ParseOptionError(format!(
            "'{s}' is not a delimiter: give one character (',' ';' '|'), or tab, comma, semicolon, pipe"
        ))),
    }
}

impl ImportOptions {
    /// Import options from the words a user typed: a format (`None` guesses it per file), a column map
    /// ([`ColumnMap::parse`]), a label map replacing the default ([`LabelMap::parse`]) with an optional default
    /// target, a delimiter and a dataset name.
    pub fn from_flags(flags: &ImportFlags) -> Result<Self, OptionsError> {
        let given = |s: &Option<String>| s.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let labels = given(&flags.labels)
            .map(|l| LabelMap::parse(&l))
            .transpose()
            .map_err(OptionsError::Labels)?
            .unwrap_or_default();
        let labels = match given(&flags.default_label) {
            Some(d) => labels.with_default(&d).map_err(OptionsError::DefaultLabel)?,
            None => labels,
        };
        // A delimiter is not trimmed: a tab is whitespace.
        let delimiter = flags.delimiter.as_deref().filter(|d| !d.is_empty());
        Ok(Self {
            format: flags.format,
            columns: given(&flags.map).map(|m| ColumnMap::parse(&m)).transpose().map_err(OptionsError::Map)?,
            labels,
            delimiter: delimiter.map(parse_delimiter).transpose().map_err(OptionsError::Delimiter)?,
            dataset_name: given(&flags.name),
        })
    }
}

/// What an import added, file by file, as `argus import` prints it.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportReport {
    /// The database imported into.
    pub db: PathBuf,
    /// Each file with what it added, in order.
    pub files: Vec<(PathBuf, ImportSummary)>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (mut items, mut rationales, mut present) = (0, 0, 0);
        for (file, s) in &self.files {
            write!(f, "{}: {} items, {} rationales", file.display(), s.items, s.rationales)?;
            if s.already_present > 0 {
                write!(f, ", {} already present", s.already_present)?;
            }
            writeln!(f)?;
            items += s.items;
            rationales += s.rationales;
            present += s.already_present;
        }
        write!(f, "added {items} items and {rationales} rationales to {}", self.db.display())?;
        if present > 0 {
            write!(f, "; {present} already present (same key and text), not added again")?;
        }
        writeln!(f)
    }
}

/// One file, read and checked, ready for [`Store::import`].
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedFile {
    /// The dataset row: name, format, source path, license note.
    pub dataset: NewDataset,
    /// Every record of the file, in file order, with its rationales.
    pub items: Vec<NewItem>,
}

/// Reads one file from disk; see [`read_bytes`].
pub fn read_file(path: &Path, opts: &ImportOptions) -> Result<ParsedFile, IngestError> {
    let bytes = std::fs::read(path).map_err(|e| IngestError::file(path, format!("cannot read the file: {e}")))?;
    read_bytes(path, &bytes, opts)
}

/// Reads a file's content. `name` is used for format detection, split-from-file-name, messages and the dataset's
/// name and source path only (so the bundled demo can be read from memory).
pub fn read_bytes(name: &Path, bytes: &[u8], opts: &ImportOptions) -> Result<ParsedFile, IngestError> {
    let text = decode_utf8(name, bytes)?;
    let format = resolve_format(name, text.as_bytes(), opts)?;
    let ctx = readers::Context { path: name, labels: &opts.labels, stem_split: split_from_stem(name), limit: None };
    let items = read_items(&ctx, name, text, format, opts)?;
    let file_name =
        name.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| name.display().to_string());
    Ok(ParsedFile {
        dataset: NewDataset {
            name: opts.dataset_name.clone().filter(|n| !n.trim().is_empty()).unwrap_or(file_name),
            format: format.as_str().to_string(),
            source_path: name.display().to_string(),
            license_note: format.license_note().map(str::to_string),
        },
        items,
    })
}

/// How much of a file's head [`preview_bytes`] reads.
pub const PREVIEW_BYTES: u64 = 1 << 20;

/// The first rows of a file as an import will read them, for the studio's import dialog: the format chosen, the
/// delimiter of a delimited file, and up to `rows` items. Reads at most [`PREVIEW_BYTES`] of the file, so rows past
/// that head are neither shown nor checked; the import itself reads and checks everything.
#[derive(Clone, Debug, PartialEq)]
pub struct Preview {
    /// The format the file will be read in.
    pub format: FileFormat,
    /// The delimiter, for a generic delimited file.
    pub delimiter: Option<u8>,
    /// The first items, as they will be stored.
    pub items: Vec<NewItem>,
    /// The file's top-level columns or keys (header of a delimited file, keys of the first JSON object), to help
    /// write the column map.
    pub columns: Vec<String>,
}

/// The first `rows` items of a file's head (its first bytes; at most [`PREVIEW_BYTES`] of them are read) as an
/// import with `opts` would read them; see [`Preview`].
pub fn preview_bytes(path: &Path, head: &[u8], opts: &ImportOptions, rows: usize) -> Result<Preview, IngestError> {
    let head = &head[..head.len().min(PREVIEW_BYTES as usize)];
    let text = match decode_utf8(path, head) {
        Ok(t) => t,
        // A head cut inside a character: read up to it.
        Err(e) if head.len() as u64 == PREVIEW_BYTES && e.line.is_some() => {
            let body = strip_bom(head);
            let valid = std::str::from_utf8(body).map_err(|u| u.valid_up_to()).err().unwrap_or(body.len());
            if body.len() - valid > 3 {
                return Err(e);
            }
            std::str::from_utf8(&body[..valid]).unwrap_or_default()
        }
        Err(e) => return Err(e),
    };
    let format = resolve_format(path, text.as_bytes(), opts)?;
    let ctx =
        readers::Context { path, labels: &opts.labels, stem_split: split_from_stem(path), limit: Some(rows.max(1)) };
    let items = read_items(&ctx, path, text, format, opts)?;
    let delimiter = (format == FileFormat::Csv).then(|| opts.delimiter.unwrap_or_else(|| guess_delimiter(path, text)));
    let columns = readers::columns_of(text, format, delimiter);
    Ok(Preview { format, delimiter, items, columns })
}

fn read_items(
    ctx: &readers::Context<'_>,
    name: &Path,
    text: &str,
    format: FileFormat,
    opts: &ImportOptions,
) -> Result<Vec<NewItem>, IngestError> {
    let items = match format {
        FileFormat::ArgJson => readers::arg_json(ctx, text)?,
        FileFormat::LiarPlusTsv => readers::liar_plus_tsv(ctx, text)?,
        FileFormat::LiarPlusJsonl => readers::liar_plus_jsonl(ctx, text)?,
        FileFormat::Liar2Csv => readers::liar2_csv(ctx, text)?,
        FileFormat::Csv | FileFormat::Json | FileFormat::Jsonl => {
            let Some(columns) = opts.columns.as_ref() else {
                return Err(IngestError::file(
                    name,
                    format!(
                        "format {format} needs a column map (--map content=COLUMN,label=COLUMN,...); \
                         or name a preset format: {}",
                        format_names()
                    ),
                ));
            };
            if format == FileFormat::Csv {
                let delimiter = opts.delimiter.unwrap_or_else(|| guess_delimiter(name, text));
                readers::generic_csv(ctx, text, columns, delimiter)?
            } else {
                readers::generic_json(ctx, text, columns)?
            }
        }
    };
    Ok(items)
}

/// The delimiter of a generic delimited file: tab for `.tsv`, else the most frequent of `,` `\t` `;` `|` in the
/// header line outside quotes (comma on a tie or when there is none).
pub fn guess_delimiter(name: &Path, text: &str) -> u8 {
    if name.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("tsv")) {
        return b'\t';
    }
    let mut counts = [(b',', 0usize), (b'\t', 0), (b';', 0), (b'|', 0)];
    let mut quoted = false;
    for b in text.bytes() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            _ if !quoted => {
                if let Some(c) = counts.iter_mut().find(|(d, _)| *d == b) {
                    c.1 += 1;
                }
            }
            _ => {}
        }
    }
    counts.iter().fold((b',', 0), |best, &(d, n)| if n > best.1 { (d, n) } else { best }).0
}

/// File name of the bundled demo sample: 300 LIAR2 statements (see `assets/demo/SOURCE.md`).
pub const DEMO_SAMPLE_NAME: &str = "liar2-sample.csv";

/// The bundled demo sample's bytes (LIAR2 CSV; Apache-2.0, PolitiFact text).
pub const DEMO_SAMPLE_CSV: &[u8] = include_bytes!("../../assets/demo/liar2-sample.csv");

/// Reads the bundled demo sample as a `liar2-csv` dataset named "LIAR2 demo sample".
pub fn read_demo_sample() -> Result<ParsedFile, IngestError> {
    let opts = ImportOptions {
        format: Some(FileFormat::Liar2Csv),
        dataset_name: Some("LIAR2 demo sample".into()),
        ..ImportOptions::default()
    };
    read_bytes(Path::new(DEMO_SAMPLE_NAME), DEMO_SAMPLE_CSV, &opts)
}

fn resolve_format(name: &Path, bytes: &[u8], opts: &ImportOptions) -> Result<FileFormat, IngestError> {
    let map_only = || IngestError::file(name, "--map only applies to the csv, json and jsonl formats");
    match (opts.format, &opts.columns) {
        (Some(f), Some(_)) if !f.needs_column_map() => Err(map_only()),
        (Some(f), _) => Ok(f),
        (None, None) => FileFormat::detect(name, bytes),
        (None, Some(_)) => match FileFormat::detect(name, bytes)? {
            FileFormat::Csv | FileFormat::Liar2Csv | FileFormat::LiarPlusTsv => Ok(FileFormat::Csv),
            FileFormat::Jsonl | FileFormat::LiarPlusJsonl => Ok(FileFormat::Jsonl),
            FileFormat::ArgJson | FileFormat::Json => Ok(FileFormat::Json),
        },
    }
}

/// The progress message of an import while it stages rows (other writers go on).
pub const STAGING: &str = "importing";
/// The progress message of an import while it publishes them in one transaction (other writers wait).
pub const PUBLISHING: &str = "publishing";

/// Parses every file first (nothing touches the database until all have parsed), then imports all of them with one
/// [`Store::import`]: all files or none; other writers wait only while it publishes. Returns one [`ImportSummary`] per file, in order.
///
/// Reports progress through `progress` (reading: one unit per file; inserting: one unit per item) and stops,
/// writing nothing, once it is cancelled.
pub fn import_files(
    store: &mut Store,
    paths: &[PathBuf],
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<Vec<ImportSummary>, ImportError> {
    let mut parsed = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        if progress.is_cancelled() {
            return Err(crate::jobs::Cancelled.into());
        }
        let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        progress.set(i as u64, paths.len() as u64, &format!("reading {name}"));
        let mut file = read_file(path, opts)?;
        if paths.len() > 1
            && let Some(name) = opts.dataset_name.as_deref().filter(|n| !n.trim().is_empty())
        {
            let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            file.dataset.name = format!("{name}: {file_name}");
        }
        parsed.push((file.dataset, file.items));
    }
    if progress.is_cancelled() {
        return Err(crate::jobs::Cancelled.into());
    }
    let total: usize = parsed.iter().map(|(_, items)| items.len()).sum();
    progress.set(0, total as u64, STAGING);
    let mut report = |step| match step {
        ImportStep::Staging(done) => progress.set(done as u64, total as u64, STAGING),
        ImportStep::Publishing => progress.set(total as u64, total as u64, PUBLISHING),
    };
    let summaries = store.import(&parsed, &mut report, &|| progress.is_cancelled())?;
    Ok(summaries)
}

// -------------------------------------------------------------------------------------------------------------
// Shared helpers

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(BOM).unwrap_or(bytes)
}

/// Strips a BOM and validates UTF-8; an error names the line and byte column of the first invalid byte.
fn decode_utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, IngestError> {
    let body = strip_bom(bytes);
    std::str::from_utf8(body).map_err(|e| {
        let offset = bytes.len() - body.len() + e.valid_up_to();
        let before = &bytes[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        IngestError::at(
            path,
            line,
            format!(
                "invalid UTF-8 (byte 0x{:02x} at column {}); save the file as UTF-8",
                bytes[offset],
                offset - line_start + 1
            ),
        )
    })
}

/// The split named by a file's stem: `train`/`train2` -> train, `val`/`val2`/`valid`/`validation`/`dev` -> val,
/// `test`/`test2` -> test.
pub fn split_from_stem(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?.to_ascii_lowercase();
    normalize_split(&stem).map(str::to_string)
}

/// The canonical name (`train`, `val`, `test`) of a split name, if it is one of the usual spellings.
pub fn normalize_split(name: &str) -> Option<&'static str> {
    match name.trim().to_ascii_lowercase().as_str() {
        "train" | "train2" | "training" => Some("train"),
        "val" | "val2" | "valid" | "validation" | "dev" => Some("val"),
        "test" | "test2" => Some("test"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_flags_parse_both_maps_and_name_the_flag_that_failed() {
        let flags = |map: Option<&str>, labels: Option<&str>| ImportFlags {
            format: Some(FileFormat::Csv),
            map: map.map(str::to_owned),
            labels: labels.map(str::to_owned),
            name: Some("mine".into()),
            ..Default::default()
        };
        let o =
            ImportOptions::from_flags(&flags(Some("content=statement,label=label"), Some("pants-fire=fake,true=real")))
                .unwrap();
        assert_eq!(o.format, Some(FileFormat::Csv));
        assert_eq!(o.columns.unwrap().content, "statement");
        assert_eq!(o.labels.get("true"), Some(Some(Verdict::Real)));
        assert_eq!(o.labels.get("half-true"), None, "a user label map replaces the default");
        assert_eq!(o.dataset_name.as_deref(), Some("mine"));
        let defaults = ImportOptions::from_flags(&ImportFlags::default()).unwrap();
        assert!(defaults.columns.is_none() && defaults.labels == LabelMap::default() && defaults.delimiter.is_none());
        let map = ImportOptions::from_flags(&flags(Some("label=x"), None)).unwrap_err();
        assert!(matches!(map, OptionsError::Map(_)) && map.to_string().starts_with("--map: "), "{map}");
        let labels = ImportOptions::from_flags(&flags(None, Some("a=maybe"))).unwrap_err();
        assert!(matches!(labels, OptionsError::Labels(_)) && labels.to_string().starts_with("--labels: "), "{labels}");
        let default = ImportFlags { default_label: Some("maybe".into()), ..Default::default() };
        let e = ImportOptions::from_flags(&default).unwrap_err();
        assert!(e.to_string().starts_with("--default-label: 'maybe' is not a gold label"), "{e}");
        let tab = ImportFlags { delimiter: Some("\t".into()), ..Default::default() };
        assert_eq!(ImportOptions::from_flags(&tab).unwrap().delimiter, Some(b'\t'));
        let bad = ImportFlags { delimiter: Some("::".into()), ..Default::default() };
        assert!(ImportOptions::from_flags(&bad).unwrap_err().to_string().starts_with("--delimiter: '::'"));
    }

    #[test]
    fn delimiters_parse_and_are_guessed_from_the_extension_and_header() {
        for (word, d) in [("tab", b'\t'), ("\\t", b'\t'), (";", b';'), ("semicolon", b';'), ("|", b'|'), (",", b',')] {
            assert_eq!(parse_delimiter(word), Ok(d), "{word}");
        }
        assert!(parse_delimiter("\"").is_err() && parse_delimiter("").is_err());
        let p = Path::new;
        assert_eq!(guess_delimiter(p("x.tsv"), "a,b,c\n"), b'\t', "the extension wins");
        assert_eq!(guess_delimiter(p("x.csv"), "a\tb\tc\n1,2\t3\t4\n"), b'\t');
        assert_eq!(guess_delimiter(p("x.csv"), "a;b;\"c,d,e\"\n"), b';', "quoted commas do not count");
        assert_eq!(guess_delimiter(p("x.txt"), "one\n"), b',');
    }

    #[test]
    fn unlabelled_targets_and_the_default_label() {
        let m = LabelMap::parse("Not Enough Evidence=unlabelled,Refuted=fake,Supported=real").unwrap();
        assert_eq!(m.resolve("not enough evidence"), Ok(None));
        assert_eq!(m.resolve("REFUTED"), Ok(Some(Verdict::Fake)));
        let e = m.resolve("Conflicting").unwrap_err();
        assert!(e.contains("--default-label unlabelled"), "{e}");
        let lenient = m.clone().with_default("unlabelled").unwrap();
        assert_eq!(lenient.resolve("Conflicting"), Ok(None));
        assert_eq!(lenient.resolve("supported"), Ok(Some(Verdict::Real)), "the map still wins");
        assert!(LabelMap::parse("a=unlabelled,a=fake").unwrap_err().0.contains("twice (unlabelled and fake)"));
    }

    #[test]
    fn default_label_map_knows_politifact_and_arg() {
        let m = LabelMap::default();
        for fake in ["pants-fire", "Pants-On-Fire", " false ", "barely-true", "mostly-false", "fake", "1"] {
            assert_eq!(m.get(fake), Some(Some(Verdict::Fake)), "{fake}");
        }
        for real in ["half-true", "mostly-true", "TRUE", "real", "0"] {
            assert_eq!(m.get(real), Some(Some(Verdict::Real)), "{real}");
        }
        assert_eq!(m.resolve("  "), Ok(None));
        let e = m.resolve("xyz").unwrap_err();
        assert!(e.starts_with("label 'xyz' is not in the label map (known: "), "{e}");
        assert!(e.contains("pants-fire"), "{e}");
    }

    #[test]
    fn user_label_map_replaces_the_default() {
        let m = LabelMap::parse("0=fake, 1=fake,2=fake,3=real,4=real,5=REAL").unwrap();
        assert_eq!(m.get("5"), Some(Some(Verdict::Real)));
        assert_eq!(m.get("0"), Some(Some(Verdict::Fake)));
        assert_eq!(m.get("true"), None);
        assert_eq!(m.known(), ["0", "1", "2", "3", "4", "5"]);
        assert!(LabelMap::parse("").is_err());
        assert!(LabelMap::parse("a=maybe").is_err());
        assert!(LabelMap::parse("a").is_err());
        assert!(LabelMap::parse("a=real,A=fake").is_err());
        assert!(LabelMap::parse("=real").is_err());
    }

    #[test]
    fn column_map_parses_every_target() {
        let m = ColumnMap::parse(
            "content=statement, label=label,rationale:human=justification,verdict:human=jv,title=headline,\
             source=speaker,date=date,id=id,split=split,rationale:td=td text",
        )
        .unwrap();
        assert_eq!(m.content, "statement");
        assert_eq!(m.label.as_deref(), Some("label"));
        assert_eq!(m.title.as_deref(), Some("headline"));
        assert_eq!(m.source.as_deref(), Some("speaker"));
        assert_eq!(m.date.as_deref(), Some("date"));
        assert_eq!(m.id.as_deref(), Some("id"));
        assert_eq!(m.split.as_deref(), Some("split"));
        assert_eq!(
            m.rationales,
            [
                RationaleColumns {
                    perspective: "human".into(),
                    text: "justification".into(),
                    verdict: Some("jv".into())
                },
                RationaleColumns { perspective: "td".into(), text: "td text".into(), verdict: None },
            ]
        );
        assert_eq!(m.mapped().len(), 10);
        let nested =
            ColumnMap::parse("content=claim.text,evidence=questions[*].answers[*].answer,meta:who=a.b").unwrap();
        assert_eq!(
            nested.metadata,
            [("evidence".to_string(), "questions[*].answers[*].answer".to_string()), ("who".into(), "a.b".into())]
        );
    }

    #[test]
    fn column_map_rejects_bad_specs() {
        for (spec, needle) in [
            ("label=x", "needs content"),
            ("content=a,headline=b", "unknown column map target 'headline'"),
            ("content=a,content=b", "twice"),
            ("content=a,verdict:td=v", "no rationale:td"),
            ("content=a,rationale:=x", "perspective"),
            ("content", "TARGET=COLUMN"),
            ("content=", "names no column"),
        ] {
            let e = ColumnMap::parse(spec).unwrap_err().0;
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn formats_round_trip_and_detect() {
        for f in FileFormat::ALL {
            assert_eq!(f.as_str().parse::<FileFormat>(), Ok(f));
        }
        assert!("xml".parse::<FileFormat>().is_err());
        let p = Path::new;
        assert_eq!(FileFormat::detect(p("a/train.json"), b"[]"), Ok(FileFormat::ArgJson));
        assert_eq!(FileFormat::detect(p("val2.TSV"), b""), Ok(FileFormat::LiarPlusTsv));
        assert_eq!(FileFormat::detect(p("v.tsv"), b"0\t11972.json\ttrue\tx\n"), Ok(FileFormat::LiarPlusTsv));
        assert_eq!(FileFormat::detect(p("claims.tsv"), b"claim\tverdict\nx\ttrue\n"), Ok(FileFormat::Csv));
        let lp = b"\xEF\xBB\xBF\n{\"id\": 0, \"json_file_id\": \"1.json\", \"claim\": \"c\"}\n";
        assert_eq!(FileFormat::detect(p("x.jsonl"), lp), Ok(FileFormat::LiarPlusJsonl));
        assert_eq!(FileFormat::detect(p("x.jsonl"), b"{\"claim\": \"c\"}\n"), Ok(FileFormat::Jsonl));
        let header = "id,label,statement,date,subject,speaker,speaker_description,state_info,true_counts,\
                      mostly_true_counts,half_true_counts,mostly_false_counts,false_counts,pants_on_fire_counts,\
                      context,justification\r\n1,2,x";
        assert_eq!(FileFormat::detect(p("t.csv"), header.as_bytes()), Ok(FileFormat::Liar2Csv));
        assert_eq!(FileFormat::detect(p("t.csv"), b"id,label,statement\n"), Ok(FileFormat::Csv));
        let e = FileFormat::detect(p("notes.txt"), b"").unwrap_err();
        assert!(e.to_string().starts_with("notes.txt: cannot tell the format"), "{e}");
    }

    #[test]
    fn bad_utf8_names_line_and_column() {
        let e = decode_utf8(Path::new("f.csv"), b"a,b\nc,d\nxy\xffz\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.to_string(), "f.csv:3: invalid UTF-8 (byte 0xff at column 3); save the file as UTF-8");
        assert_eq!(decode_utf8(Path::new("f"), b"\xEF\xBB\xBFok").unwrap(), "ok");
    }

    #[test]
    fn splits_from_file_stems() {
        assert_eq!(split_from_stem(Path::new("x/val2.tsv")).as_deref(), Some("val"));
        assert_eq!(split_from_stem(Path::new("valid.csv")).as_deref(), Some("val"));
        assert_eq!(split_from_stem(Path::new("test2.jsonl")).as_deref(), Some("test"));
        assert_eq!(split_from_stem(Path::new("train.json")).as_deref(), Some("train"));
        assert_eq!(split_from_stem(Path::new("liar2-sample.csv")), None);
    }

    #[test]
    fn error_display() {
        assert_eq!(IngestError::at(Path::new("a/b.csv"), 7, "bad").to_string(), "a/b.csv:7: bad");
        assert_eq!(IngestError::file(Path::new("b.csv"), "bad").to_string(), "b.csv: bad");
    }
}
