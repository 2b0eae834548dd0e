//! Judgement bundle files (`argus bundle export` / `argus bundle import`, File ▸ Merge a colleague's work): JSON
//! Lines, a header line then one [`BundleRow`] a line, written atomically; read all-or-nothing with `FILE:LINE`
//! errors, every file parsed and checked before one merge transaction.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::export::{ExportError, commit, write_temp};
use super::{ImportError, IngestError, decode_utf8};
use crate::jobs::Progress;
use crate::store::bundle::{BundleRow, MergeReport};
use crate::store::{Store, StoreError};

/// The header line's `format` value.
pub const BUNDLE_FORMAT: &str = "argus-bundle";
/// The bundle format's version.
pub const BUNDLE_VERSION: u64 = 1;

/// What [`export_bundle`] wrote.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BundleSummary {
    pub file: PathBuf,
    /// Rows by kind.
    pub rows: std::collections::BTreeMap<String, usize>,
}

impl std::fmt::Display for BundleSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.rows.iter().map(|(k, n)| format!("{n} {k}")).collect();
        writeln!(
            f,
            "{}: {}",
            self.file.display(),
            if parts.is_empty() { "nothing to share yet".to_string() } else { parts.join(", ") }
        )
    }
}

/// Writes every judgement, feedback form, rationale revision, adjudication, review and undo of `store` to `out`.
pub fn export_bundle(store: &Store, out: &Path) -> Result<BundleSummary, ExportError> {
    let rows = store.bundle_rows()?;
    let mut counts = std::collections::BTreeMap::new();
    for row in &rows {
        *counts.entry(row.kind().to_string()).or_insert(0) += 1;
    }
    let source = store.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let annotators = store.annotators()?;
    let tmp = write_temp(out, |w| {
        let header = json!({
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "source": source,
            "annotators": annotators,
            "rows": rows.len(),
        });
        serde_json::to_writer(&mut *w, &header).map_err(std::io::Error::other)?;
        w.write_all(b"\n")?;
        for row in &rows {
            serde_json::to_writer(&mut *w, row).map_err(std::io::Error::other)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    commit(&tmp, out)?;
    Ok(BundleSummary { file: out.to_path_buf(), rows: counts })
}

/// A bundle file's rows, each with its 1-based line.
pub fn read_bundle(path: &Path) -> Result<Vec<(usize, BundleRow)>, IngestError> {
    let bytes = std::fs::read(path).map_err(|e| IngestError::file(path, format!("cannot read the file: {e}")))?;
    read_bundle_bytes(path, &bytes)
}

/// A bundle's rows from its bytes (`path` names it in errors).
pub fn read_bundle_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<(usize, BundleRow)>, IngestError> {
    let text = decode_utf8(path, bytes)?;
    let mut lines = text.split('\n').enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((i, first)) = lines.next() else {
        return Err(IngestError::file(path, "the file is empty; a bundle starts with its header line"));
    };
    let header: serde_json::Value = serde_json::from_str(first)
        .map_err(|e| IngestError::at(path, i + 1, format!("not an Argus bundle: the header is not JSON ({e})")))?;
    if header["format"] != BUNDLE_FORMAT {
        return Err(IngestError::at(
            path,
            i + 1,
            format!("not an Argus bundle (the header's format is {}, not \"{BUNDLE_FORMAT}\")", header["format"]),
        ));
    }
    match header["version"].as_u64() {
        Some(v) if v <= BUNDLE_VERSION => {}
        v => {
            return Err(IngestError::at(
                path,
                i + 1,
                format!("bundle version {v:?} is newer than this Argus reads ({BUNDLE_VERSION})"),
            ));
        }
    }
    let mut rows = Vec::new();
    for (i, line) in lines {
        // A row whose id is not its content's is refused by the merge (`Store::merge_bundle`), named by its line.
        let row: BundleRow = serde_json::from_str(line)
            .map_err(|e| IngestError::at(path, i + 1, format!("malformed bundle row: {e}")))?;
        rows.push((i + 1, row));
    }
    Ok(rows)
}

/// Merges bundle files into `store`: every file is read and checked first, then all rows are merged in one
/// transaction (all files or none). A row the merge refuses is reported as `FILE:LINE: reason`.
pub fn merge_bundles(
    store: &mut Store,
    paths: &[PathBuf],
    progress: &dyn Progress,
) -> Result<MergeReport, ImportError> {
    let mut rows = Vec::new();
    let mut origin = Vec::new();
    for (n, path) in paths.iter().enumerate() {
        progress.check()?;
        progress.set(n as u64, paths.len() as u64, &format!("reading {}", path.display()));
        for (line, row) in read_bundle(path)? {
            rows.push(row);
            origin.push((path.clone(), line));
        }
    }
    progress.set(0, 1, "merging");
    match store.merge_bundle(&rows, &|| progress.is_cancelled()) {
        Ok(report) => {
            progress.set(1, 1, "merged");
            Ok(report)
        }
        Err(StoreError::BundleRow { row, reason }) => {
            let (path, line) = &origin[row];
            Err(IngestError::at(path, *line, reason).into())
        }
        Err(e) => Err(e.into()),
    }
}
