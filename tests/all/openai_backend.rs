//! The OpenAI-compatible chat backend: against a scripted HTTP server in this file (streaming, retries, errors,
//! cancellation), and against a real llama-cpp-python server on loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argus::models::openai::{OpenAiChat, OpenAiSettings, list_models};
use argus::models::{ChatModel, GenerationParams, StopReason};
use argus::prompting::ChatMessage;

const KEY: &str = "sk-test-very-secret-4711";

// ---------------------------------------------------------------------------------------------------------------
// A scripted HTTP server: answers each connection with the next scripted reply, records every request, serves at
// most as many connections as it has replies and stops by itself after a while or when dropped.

#[derive(Clone)]
enum Reply {
    /// An SSE stream of these `data:` payloads (chunked transfer encoding), then `data: [DONE]` when `done`.
    Stream { events: Vec<String>, done: bool },
    /// A status with a JSON body.
    Status(u16, &'static str),
}

#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

struct Scripted {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Scripted {
    fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let server = move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut replies = replies.into_iter();
            while !stop2.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let Some(reply) = replies.next() else { return };
                        stream.set_nonblocking(false).unwrap();
                        serve(stream, reply, &seen2);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => return,
                }
            }
        };
        std::thread::Builder::new().name("scripted server".into()).spawn(server).unwrap();
        Self { base, seen, stop }
    }

    fn settings(&self) -> OpenAiSettings {
        OpenAiSettings {
            url: self.base.clone(),
            model: "tiny-test".into(),
            api_key: Some(KEY.into()),
            timeout: Duration::from_secs(10),
            max_retries: 3,
            concurrency: 2,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, reply: Reply, seen: &Mutex<Vec<Seen>>) {
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse::<usize>().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    seen.lock().unwrap().push(Seen {
        request_line: request_line.trim_end().to_owned(),
        headers,
        body: String::from_utf8(body).unwrap(),
    });
    let mut out = stream;
    // Write errors are expected where the client hangs up early (cancellation).
    let _ = match reply {
        Reply::Status(code, body) => write!(
            out,
            "HTTP/1.1 {code} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        Reply::Stream { events, done } => (|| {
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )?;
            let chunk = |out: &mut TcpStream, text: &str| -> std::io::Result<()> {
                write!(out, "{:x}\r\n{text}\r\n", text.len())?;
                out.flush()?;
                std::thread::sleep(Duration::from_millis(2));
                Ok(())
            };
            chunk(&mut out, ": ping - keep-alive comment\r\n\r\n")?;
            for event in &events {
                chunk(&mut out, &format!("data: {event}\r\n\r\n"))?;
            }
            if done {
                chunk(&mut out, "data: [DONE]\r\n\r\n")?;
                write!(out, "0\r\n\r\n")?;
            }
            // Without `done` the connection just drops: no [DONE], no last chunk.
            Ok(())
        })(),
    };
    let _ = out.shutdown(std::net::Shutdown::Both);
}

fn delta(text: &str) -> String {
    serde_json::json!({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
        .to_string()
}

fn finish(reason: &str) -> String {
    serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}).to_string()
}

fn usage(prompt: u64, completion: u64) -> String {
    serde_json::json!({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}})
        .to_string()
}

fn stream(tokens: &[&str], tail: &[String], done: bool) -> Reply {
    let role = serde_json::json!({"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": null}]});
    let mut events = vec![role.to_string()];
    events.extend(tokens.iter().map(|t| delta(t)));
    events.extend(tail.iter().cloned());
    Reply::Stream { events, done }
}

fn message(role: &str, content: &str) -> ChatMessage {
    ChatMessage { role: role.to_owned(), content: content.to_owned() }
}

fn messages() -> Vec<ChatMessage> {
    vec![message("system", "You are terse."), message("user", "Say hello.")]
}

/// Runs one chat, collecting the tokens the callback saw.
fn chat(
    model: &mut OpenAiChat,
    params: &GenerationParams,
    break_after: Option<usize>,
) -> (argus::models::Result<argus::models::Completion>, Vec<String>) {
    let mut tokens = Vec::new();
    let result = model.chat(&messages(), params, &mut |t| {
        tokens.push(t.to_owned());
        if break_after.is_some_and(|n| tokens.len() >= n) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    });
    (result, tokens)
}

#[test]
fn streams_tokens_and_sends_the_request_openai_expects() {
    let server = Scripted::start(vec![stream(&["Hel", "lo", " there", "!"], &[finish("stop"), usage(17, 4)], true)]);
    let mut model = OpenAiChat::new(server.settings());
    let params = GenerationParams { max_tokens: 33, temperature: 0.25, top_p: Some(0.5), seed: 42 };
    let started = Instant::now();
    let (result, tokens) = chat(&mut model, &params, None);
    let wall_secs = started.elapsed().as_secs_f64();
    let completion = result.unwrap();
    assert_eq!(tokens, ["Hel", "lo", " there", "!"]);
    assert_eq!(completion.text, "Hello there!");
    assert_eq!(completion.stop, StopReason::EndOfTurn);
    assert_eq!((completion.prompt_tokens, completion.completion_tokens), (17, 4), "counts come from `usage`");
    // The two phases are measured inside the call: each non-negative, together no longer than the call took.
    let (p, g) = (completion.prompt_seconds, completion.generate_seconds);
    assert!(p >= 0.0 && g >= 0.0 && p + g <= wall_secs + 1e-3, "prompt {p} s + generate {g} s vs {wall_secs} s");

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].request_line, "POST /v1/chat/completions HTTP/1.1");
    assert_eq!(seen[0].header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    let body = seen[0].json();
    assert_eq!(body["model"], "tiny-test");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["max_tokens"], 33);
    assert_eq!(body["temperature"], 0.25);
    assert_eq!(body["top_p"], 0.5);
    assert_eq!(body["seed"], 42);
    assert_eq!(body["messages"][1]["role"], "user");
    assert_eq!(body["messages"][1]["content"], "Say hello.");

    let id = model.model_id();
    assert_eq!(id, format!("openai:tiny-test@{}", server.base.trim_start_matches("http://").trim_end_matches("/v1")));
    assert!(!id.contains(KEY) && !format!("{:?}", model.settings()).contains(KEY), "the key leaks");
}

#[test]
fn length_finish_and_counting_chunks_without_usage() {
    let server = Scripted::start(vec![stream(&["a", "b", "c"], &[finish("length")], true)]);
    let mut model = OpenAiChat::new(OpenAiSettings { api_key: None, ..server.settings() });
    let (result, _) = chat(&mut model, &GenerationParams::greedy(3), None);
    let completion = result.unwrap();
    assert_eq!(completion.stop, StopReason::Length);
    assert_eq!(completion.text, "abc");
    assert_eq!(completion.completion_tokens, 3, "without `usage` each chunk counts as a token");
    let seen = server.seen();
    assert_eq!(seen[0].header("authorization"), None, "no key, no header");
    assert!(seen[0].json().get("top_p").is_none(), "greedy sends no top_p");
}

#[test]
fn retries_503_with_backoff_then_succeeds() {
    let busy = r#"{"error":{"message":"model is loading","type":"server_error"}}"#;
    let server = Scripted::start(vec![
        Reply::Status(503, busy),
        Reply::Status(503, busy),
        stream(&["ok"], &[finish("stop")], true),
    ]);
    let mut model = OpenAiChat::new(server.settings());
    let started = Instant::now();
    let (result, tokens) = chat(&mut model, &GenerationParams::greedy(8), None);
    let elapsed = started.elapsed();
    assert_eq!(result.unwrap().text, "ok");
    assert_eq!(tokens, ["ok"]);
    assert_eq!(server.seen().len(), 3, "two retries");
    // Backoff 0.5 s then 1 s, each plus up to a quarter of jitter.
    assert!(elapsed >= Duration::from_millis(1400), "retried too fast: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(8), "retried too slowly: {elapsed:?}");
}

#[test]
fn gives_up_after_max_retries_and_says_so() {
    let busy = r#"{"error":{"message":"overloaded"}}"#;
    let server = Scripted::start(vec![Reply::Status(500, busy), Reply::Status(429, busy), Reply::Status(502, busy)]);
    let mut model = OpenAiChat::new(OpenAiSettings { max_retries: 2, ..server.settings() });
    let err = chat(&mut model, &GenerationParams::greedy(8), None).0.unwrap_err().to_string();
    assert_eq!(server.seen().len(), 3);
    assert!(err.contains("502") && err.contains("overloaded") && err.contains("after 3 attempts"), "{err}");
    assert!(!err.contains(KEY));
}

#[test]
fn unauthorized_is_clear_and_not_retried() {
    let body =
        r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
    let server = Scripted::start(vec![Reply::Status(401, body), stream(&["never"], &[finish("stop")], true)]);
    let mut model = OpenAiChat::new(server.settings());
    let err = chat(&mut model, &GenerationParams::greedy(8), None).0.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("API key was refused"), "{err}");
    assert!(err.contains("Incorrect API key provided"), "quotes the server: {err}");
    assert!(err.contains(&format!("{}/chat/completions", server.base)), "names the URL: {err}");
    assert!(!err.contains(KEY), "the key leaks: {err}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.seen().len(), 1, "a 401 is not retried");

    // Without a key the message says one is missing.
    let server = Scripted::start(vec![Reply::Status(401, body)]);
    let mut model = OpenAiChat::new(OpenAiSettings { api_key: None, ..server.settings() });
    let err = chat(&mut model, &GenerationParams::greedy(8), None).0.unwrap_err().to_string();
    assert!(err.contains("none is set"), "{err}");
}

#[test]
fn bad_request_quotes_the_server_message() {
    let body = r#"{"error":{"message":"max_tokens must be at most 2048","type":"invalid_request_error"}}"#;
    let server = Scripted::start(vec![Reply::Status(400, body), stream(&["never"], &[finish("stop")], true)]);
    let mut model = OpenAiChat::new(server.settings());
    let err = chat(&mut model, &GenerationParams::greedy(100_000), None).0.unwrap_err().to_string();
    assert!(err.contains("400") && err.contains("\"max_tokens must be at most 2048\""), "{err}");
    assert!(err.contains(&server.base), "{err}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.seen().len(), 1, "a 400 is not retried");
}

#[test]
fn dropped_stream_after_tokens_fails_without_retry_or_duplicates() {
    let server = Scripted::start(vec![
        stream(&["The", " news", " is"], &[], false),
        stream(&["The", " news", " is", " fine"], &[finish("stop")], true),
    ]);
    let mut model = OpenAiChat::new(server.settings());
    let (result, tokens) = chat(&mut model, &GenerationParams::greedy(8), None);
    let err = result.unwrap_err().to_string();
    assert_eq!(tokens, ["The", " news", " is"], "each token once, no retry replaying them");
    assert!(err.contains("mid-answer") && err.contains("3 streamed tokens"), "{err}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.seen().len(), 1, "no retry once tokens were streamed");
}

#[test]
fn dropped_stream_before_any_token_is_retried() {
    let server = Scripted::start(vec![stream(&[], &[], false), stream(&["fine"], &[finish("stop")], true)]);
    let mut model = OpenAiChat::new(server.settings());
    let (result, tokens) = chat(&mut model, &GenerationParams::greedy(8), None);
    assert_eq!(result.unwrap().text, "fine");
    assert_eq!(tokens, ["fine"]);
    assert_eq!(server.seen().len(), 2);
}

#[test]
fn connection_refused_is_retried_then_named() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let settings = OpenAiSettings {
        url: format!("http://127.0.0.1:{port}/v1/"),
        max_retries: 1,
        timeout: Duration::from_secs(2),
        ..OpenAiSettings::default()
    };
    let mut model = OpenAiChat::new(settings.clone());
    let err = chat(&mut model, &GenerationParams::greedy(8), None).0.unwrap_err().to_string();
    assert!(err.contains(&format!("http://127.0.0.1:{port}/v1/chat/completions")), "{err}");
    assert!(err.contains("cannot reach") && err.contains("after 2 attempts"), "{err}");
    assert!(list_models(&settings).is_err());
}

#[test]
fn break_from_on_token_cancels() {
    let tokens: Vec<String> = (0..200).map(|i| format!("t{i} ")).collect();
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let server = Scripted::start(vec![stream(&tokens, &[finish("stop")], true)]);
    let mut model = OpenAiChat::new(server.settings());
    let (result, seen_tokens) = chat(&mut model, &GenerationParams::greedy(500), Some(2));
    let completion = result.unwrap();
    assert_eq!(completion.stop, StopReason::Cancelled);
    assert_eq!(seen_tokens, ["t0 ", "t1 "]);
    assert_eq!(completion.text, "t0 t1 ");
    assert_eq!(completion.completion_tokens, 2);
}

#[test]
fn list_models_reads_the_ids() {
    let body = r#"{"object":"list","data":[{"id":"smol","object":"model"},{"id":"other","object":"model"}]}"#;
    let server = Scripted::start(vec![Reply::Status(200, body)]);
    assert_eq!(list_models(&server.settings()).unwrap(), ["smol", "other"]);
    let seen = server.seen();
    assert_eq!(seen[0].request_line, "GET /v1/models HTTP/1.1");
    assert_eq!(seen[0].header("authorization"), Some(format!("Bearer {KEY}").as_str()));
}

#[test]
fn settings_round_trip_with_timeout_in_seconds() {
    let settings = OpenAiSettings { timeout: Duration::from_millis(2500), ..OpenAiSettings::default() };
    let json = serde_json::to_value(&settings).unwrap();
    assert_eq!(json["timeout"], 2.5);
    assert_eq!(serde_json::from_value::<OpenAiSettings>(json).unwrap(), settings);
    let partial: OpenAiSettings =
        serde_json::from_str(r#"{"url": "http://localhost:11434/v1", "model": "m"}"#).unwrap();
    assert_eq!(partial.max_retries, OpenAiSettings::default().max_retries);
    assert_eq!(OpenAiChat::new(partial).model_id(), "openai:m@localhost:11434");
}

// ---------------------------------------------------------------------------------------------------------------
// The real thing: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M on loopback.

const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Kills the server (and reaps it) however the test ends.
struct ServerGuard {
    child: Child,
    log: PathBuf,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerGuard {
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = log.char_indices().rev().nth(3000).map_or(0, |(i, _)| i);
        log[start..].to_owned()
    }
}

/// Fails when `what` is missing: the test that needs it is `#[ignore]`d, so it runs only when asked for
/// (`.ci/run` asks, after installing the server), and then it cannot pass by skipping.
fn require(what: &Path, hint: &str) {
    assert!(what.exists(), "{} is missing ({hint})", what.display());
}

/// The real llama.cpp server (llama-cpp-python's) with the SmolLM2 test model. Ignored by a plain `cargo test`
/// because it needs that server installed; `.ci/run` builds it and runs this test with `--ignored`.
#[test]
#[ignore = "needs llama-cpp-python's server: scripts/setup-llama-server.sh, then run with --ignored (.ci/run does)"]
fn real_llama_cpp_python_server() {
    let python = std::env::var_os("ARGUS_LLAMA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-llama/bin/python"));
    let model_path = argus::paths::models_dir().join(MODEL_FILE);
    require(&python, "run scripts/setup-llama-server.sh or set ARGUS_LLAMA_PYTHON");
    require(&model_path, "run `argus models fetch smollm2-135m`");

    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let child = Command::new(&python)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(&model_path)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--n_ctx", "2048", "--chat_format", "chatml"])
        // By default the server cuts a streamed answer short when the next request arrives; with this it queues them.
        .args(["--interrupt_requests", "False"])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    let mut server = ServerGuard { child, log };

    let settings = OpenAiSettings {
        url: format!("http://127.0.0.1:{port}/v1"),
        model: "unknown-yet".into(),
        api_key: None,
        timeout: Duration::from_secs(60),
        max_retries: 0,
        concurrency: 1,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let models = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("the server exited ({status}) before answering:\n{}", server.log_tail());
        }
        match list_models(&settings) {
            Ok(models) => break models,
            Err(e) if Instant::now() > deadline => panic!("no answer in 120 s ({e}):\n{}", server.log_tail()),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    };
    assert!(!models.is_empty(), "the server lists no model");

    let mut model = OpenAiChat::new(OpenAiSettings { model: models[0].clone(), ..settings });
    let messages = [message("user", "What is the capital of France? Answer in one sentence.")];
    let mut tokens = Vec::new();
    let started = Instant::now();
    let completion = model
        .chat(&messages, &GenerationParams::greedy(24), &mut |t| {
            tokens.push(t.to_owned());
            ControlFlow::Continue(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail()));
    eprintln!(
        "llama-cpp-python answered in {:.2?} ({} tokens streamed, {:?}): {:?}",
        started.elapsed(),
        tokens.len(),
        completion.stop,
        completion.text
    );
    assert!(tokens.len() > 1, "tokens should stream one by one: {tokens:?}");
    assert!(!completion.text.trim().is_empty());
    assert_eq!(tokens.concat(), completion.text);
    assert!(completion.completion_tokens > 0 && completion.completion_tokens <= 24, "{completion:?}");
    assert!(matches!(completion.stop, StopReason::EndOfTurn | StopReason::Length));
    assert!(model.model_id().starts_with("openai:") && model.model_id().ends_with(&format!("@127.0.0.1:{port}")));

    // The same rationale job as the local writer, headless, through the server: three perspectives for two items,
    // two requests at a time, each with its verdict; a second run finds everything done.
    let db = dir.path().join("served.sqlite");
    {
        let mut store = argus::store::Store::open(&db).unwrap();
        let parsed = argus::ingest::read_demo_sample().unwrap();
        store.import(&[(parsed.dataset, parsed.items.into_iter().take(2).collect())], &mut |_| {}, &|| false).unwrap();
    }
    let url = format!("http://127.0.0.1:{port}/v1");
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_argus"))
            .args(["rationales", "--db", db.to_str().unwrap(), "--perspectives", "td,cs,fc", "--backend", "openai"])
            .args(["--url", &url, "--model", &models[0], "--max-tokens", "16", "--temperature", "0"])
            .args(["--concurrency", "2"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), server.log_tail());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = run();
    assert!(first.contains("wrote 6 rationales"), "{first}");
    let second = run();
    assert!(second.contains("wrote 0 rationales") && second.contains("6 already done"), "{second}");
    let store = argus::store::Store::open(&db).unwrap();
    let served: i64 = store
        .connection()
        .query_row("SELECT COUNT(*) FROM rationales WHERE model LIKE 'openai:%' AND prompt LIKE '%<<<NEWS%'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(served, 6);
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

#[test]
fn the_server_key_is_sent_to_the_server_and_written_nowhere() {
    const SECRET: &str = "sk-argus-never-write-me-93f1c0de";
    // One item, one perspective: the rationale, then its verdict.
    let server = Scripted::start(vec![
        stream(&["The vote count ", "is public record."], &[finish("stop"), usage(40, 6)], true),
        stream(&["Real."], &[finish("stop"), usage(50, 2)], true),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("secret.sqlite");
    {
        let mut store = argus::store::Store::open(&db).unwrap();
        let parsed = argus::ingest::read_demo_sample().unwrap();
        store.import(&[(parsed.dataset, parsed.items.into_iter().take(1).collect())], &mut |_| {}, &|| false).unwrap();
    }
    let mut printed = String::new();
    let mut argus = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_argus"))
            .args(args)
            .env("ARGUS_TEST_SERVER_KEY", SECRET)
            .env("ARGUS_LOG", "trace")
            .env("ARGUS_CONFIG_DIR", dir.path().join("config"))
            .env("ARGUS_DATA_DIR", dir.path().join("data"))
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{args:?}\n{stdout}\n{stderr}");
        printed.push_str(&stdout);
        printed.push_str(&stderr);
    };
    let db_arg = db.to_str().unwrap();
    argus(
        &["rationales", "--db", db_arg, "--perspectives", "td", "--backend", "openai", "--url", &server.base]
            .into_iter()
            .chain(["--model", "tiny-test", "--api-key-env", "ARGUS_TEST_SERVER_KEY", "--concurrency", "1"])
            .collect::<Vec<_>>(),
    );
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    argus(&["export", "--db", db_arg, "--format", "jsonl", "--out", &out("items.jsonl")]);
    argus(&["export", "--db", db_arg, "--format", "csv", "--out", &out("items.csv")]);
    argus(&["export", "--db", db_arg, "--format", "arg-json", "--out", &out("arg")]);
    argus(&["bundle", "export", "--db", db_arg, "--out", &out("mine.bundle.jsonl")]);
    // The studio's settings name the variable that holds the key, never the key.
    let settings = argus::config::Settings {
        writer: argus::rationales::WriterSettings {
            backend: argus::rationales::WriterBackend::OpenAi,
            url: server.base.clone(),
            api_key_env: "ARGUS_TEST_SERVER_KEY".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    settings.save_to(&dir.path().join("config").join("settings.json")).unwrap();

    // The key went to the server, on every request.
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "the rationale and its verdict");
    for request in &seen {
        assert_eq!(request.header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
    }
    // And nowhere else: not in the database (or its WAL), the settings, the exports, the bundle, nor what was printed.
    let files = files_under(dir.path());
    assert!(files.len() >= 7, "{files:?}");
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "the key is written in {}",
            file.display()
        );
    }
    assert!(!printed.contains(SECRET), "the key is printed");
    assert!(printed.contains("wrote 1 rationales"), "{printed}");
}
