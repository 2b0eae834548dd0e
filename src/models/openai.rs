//! The OpenAI-compatible chat client: sends rationale work to a serving engine (llama.cpp's server,
//! llama-cpp-python, vLLM, Ollama, a hosted API) instead of the local GGUF writer.
//!
//! One request is `POST {url}/chat/completions` with `stream: true`; the answer is read as Server-Sent Events line
//! by line, each delta handed to the caller's token callback as it arrives. Connection errors, 429 and 5xx are
//! retried with exponential backoff, but only while no token has been streamed (a retry after that would repeat
//! text the caller already has). Other 4xx fail at once, quoting the server's own error message and naming the URL.
//!
//! The API key goes only into the `Authorization` header: it is never logged, never in an error, never in
//! [`OpenAiChat::model_id`], and `Debug` of the settings hides it.

use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ChatModel, Completion, GenerationParams, ModelError, Result, StopReason};
use crate::prompting::ChatMessage;

/// First retry delay; each later one doubles, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// How much of a non-JSON error body is quoted.
const QUOTE_CHARS: usize = 300;

/// Where and how to reach an OpenAI-compatible server.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenAiSettings {
    /// Base URL, up to and including the API version: `http://127.0.0.1:8080/v1`.
    pub url: String,
    /// The `model` sent with each request (the server's name for it; see [`list_models`]).
    pub model: String,
    /// Sent as `Authorization: Bearer …` when set; local servers usually need none.
    pub api_key: Option<String>,
    /// Connect timeout, and the longest wait for the next byte of an answer (not for the whole answer, which may
    /// stream for minutes). Stored as seconds.
    #[serde(with = "seconds")]
    pub timeout: Duration,
    /// Retries after a connection error, 429 or 5xx (before any token has been streamed).
    pub max_retries: u32,
    /// How many requests a job may have in flight at once (each on its own clone of [`OpenAiChat`]).
    pub concurrency: usize,
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080/v1".to_owned(),
            model: "default".to_owned(),
            api_key: None,
            timeout: Duration::from_secs(120),
            max_retries: 4,
            concurrency: 2,
        }
    }
}

impl std::fmt::Debug for OpenAiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiSettings")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<hidden>"))
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl OpenAiSettings {
    /// The base URL without a trailing slash.
    fn base(&self) -> &str {
        self.url.trim().trim_end_matches('/')
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.base())
    }

    /// `host[:port]` of the URL, without scheme, user info or path.
    pub fn host(&self) -> &str {
        let base = self.base();
        let rest = base.split_once("://").map_or(base, |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        authority.rsplit_once('@').map_or(authority, |(_, host)| host)
    }

    fn agent(&self) -> ureq::Agent {
        ureq::AgentBuilder::new().timeout_connect(self.timeout).timeout_read(self.timeout).build()
    }
}

/// A chat model served over the OpenAI API. Cheap to clone: clones share one connection pool, so a job can run up
/// to [`OpenAiSettings::concurrency`] of them on as many threads.
#[derive(Clone, Debug)]
pub struct OpenAiChat {
    settings: OpenAiSettings,
    agent: ureq::Agent,
}

impl OpenAiChat {
    pub fn new(settings: OpenAiSettings) -> Self {
        let agent = settings.agent();
        Self { settings, agent }
    }

    pub fn settings(&self) -> &OpenAiSettings {
        &self.settings
    }

    /// Requests a job may run at once (at least one).
    pub fn concurrency(&self) -> usize {
        self.settings.concurrency.max(1)
    }

    fn request_body(&self, messages: &[ChatMessage], params: &GenerationParams) -> Value {
        let messages: Vec<Value> = messages.iter().map(|m| json!({ "role": m.role, "content": m.content })).collect();
        let mut body = json!({
            "model": self.settings.model,
            "messages": messages,
            "stream": true,
            "stream_options": { "include_usage": true },
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            // Servers keep seeds in a signed 64-bit integer (some in 32 bits, and truncate).
            "seed": params.seed & i64::MAX as u64,
        });
        if let Some(top_p) = params.top_p {
            body["top_p"] = json!(top_p);
        }
        body
    }

    /// One attempt: sends the request and reads the streamed answer.
    fn attempt(
        &self,
        url: &str,
        body: &Value,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> std::result::Result<Completion, Failure> {
        let started = Instant::now();
        let request = authorize(self.agent.post(url), &self.settings).set("Accept", "text/event-stream");
        let response = request.send_json(body).map_err(|e| Failure::from_ureq(&self.settings, e))?;
        let streamed = response.content_type() == "text/event-stream";
        let reader = BufReader::new(response.into_reader());
        if streamed {
            read_stream(reader, started, on_token)
        } else {
            // A server that ignores `stream: true` answers with one JSON completion.
            read_whole(reader, started, on_token)
        }
    }
}

impl ChatModel for OpenAiChat {
    fn model_id(&self) -> String {
        format!("openai:{}@{}", self.settings.model, self.settings.host())
    }

    fn chat(
        &mut self,
        messages: &[ChatMessage],
        params: &GenerationParams,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion> {
        let url = self.settings.endpoint("chat/completions");
        let body = self.request_body(messages, params);
        with_retries(&self.settings, &url, || self.attempt(&url, &body, on_token))
    }
}

/// The model ids the server at `settings.url` offers (`GET {url}/models`): checks that a server is there, answers
/// and accepts the key.
pub fn list_models(settings: &OpenAiSettings) -> Result<Vec<String>> {
    let url = settings.endpoint("models");
    let agent = settings.agent();
    with_retries(settings, &url, || {
        let response = authorize(agent.get(&url), settings).call().map_err(|e| Failure::from_ureq(settings, e))?;
        let body: Value =
            response.into_json().map_err(|e| Failure::fatal(format!("the model list is not JSON: {e}")))?;
        let data = body
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| Failure::fatal("the model list has no `data` array (is this an OpenAI-compatible API?)"))?;
        Ok(data.iter().filter_map(|m| m.get("id").and_then(Value::as_str)).map(str::to_owned).collect())
    })
}

fn authorize(request: ureq::Request, settings: &OpenAiSettings) -> ureq::Request {
    match settings.api_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        Some(key) => request.set("Authorization", &format!("Bearer {key}")),
        None => request,
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `settings.max_retries` retries are spent.
fn with_retries<T>(
    settings: &OpenAiSettings,
    url: &str,
    mut attempt: impl FnMut() -> std::result::Result<T, Failure>,
) -> Result<T> {
    let mut retries = 0;
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(failure) if failure.retryable && retries < settings.max_retries => {
                let delay = backoff(retries).max(failure.retry_after.unwrap_or_default().min(MAX_RETRY_AFTER));
                retries += 1;
                tracing::warn!(%url, retry = retries, of = settings.max_retries, "{}; retrying in {delay:.1?}", failure.reason);
                std::thread::sleep(delay);
            }
            Err(failure) => {
                let mut reason = failure.reason;
                if retries > 0 {
                    reason.push_str(&format!(" (after {} attempts)", retries + 1));
                }
                return Err(ModelError::Http { url: url.to_owned(), reason });
            }
        }
    }
}

/// The delay before retry number `retry + 1`: 0.5 s, 1 s, 2 s … capped at 8 s, each plus up to a quarter at random
/// (so that parallel clients do not come back in step).
fn backoff(retry: u32) -> Duration {
    let base = FIRST_BACKOFF.saturating_mul(1 << retry.min(16)).min(MAX_BACKOFF);
    base.mul_f64(1.0 + rand::random::<f64>() / 4.0)
}

/// Why one attempt failed, and whether another may be made.
#[derive(Debug)]
struct Failure {
    reason: String,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn fatal(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), retryable: false, retry_after: None }
    }

    fn retryable(reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), retryable: true, retry_after: None }
    }

    fn from_ureq(settings: &OpenAiSettings, error: ureq::Error) -> Self {
        match error {
            ureq::Error::Status(code, response) => {
                let status = format!("HTTP {code} {}", response.status_text());
                let retry_after = response
                    .header("Retry-After")
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(|s| Duration::from_secs_f64(s.min(MAX_RETRY_AFTER.as_secs_f64())));
                let said = server_message(response);
                let quoted = said.map(|m| format!(": the server says \"{m}\"")).unwrap_or_default();
                match code {
                    429 => Self { retry_after, ..Self::retryable(format!("{status} (too many requests){quoted}")) },
                    500..=599 => Self { retry_after, ..Self::retryable(format!("{status}{quoted}")) },
                    401 | 403 => {
                        let key = match settings.api_key.as_deref().map(str::trim) {
                            Some(k) if !k.is_empty() => {
                                "the API key was refused: check that it is right for this server"
                            }
                            _ => "the server wants an API key and none is set",
                        };
                        Self::fatal(format!("{status}: {key}{quoted}"))
                    }
                    404 => Self::fatal(format!(
                        "{status}: no such endpoint or model (is the URL's base right, e.g. ending in /v1?){quoted}"
                    )),
                    _ => Self::fatal(format!("{status}{quoted}")),
                }
            }
            ureq::Error::Transport(transport) => {
                // Not `transport`'s own Display, which repeats the URL.
                let mut reason = format!("cannot reach the server: {}", transport.kind());
                if let Some(message) = transport.message() {
                    reason.push_str(&format!(": {message}"));
                }
                if let Some(source) = std::error::Error::source(&transport) {
                    reason.push_str(&format!(": {source}"));
                }
                match transport.kind() {
                    ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme | ureq::ErrorKind::InvalidProxyUrl => {
                        Self::fatal(reason)
                    }
                    _ => Self::retryable(reason),
                }
            }
        }
    }
}

/// The message of an error body: OpenAI's `{"error":{"message":…}}`, also `{"error":"…"}`, `{"message":…}` and
/// FastAPI's `{"detail":…}`; else the start of the body as text.
fn server_message(response: ureq::Response) -> Option<String> {
    let mut body = String::new();
    response.into_reader().take(64 * 1024).read_to_string(&mut body).ok()?;
    let body = body.trim();
    if body.is_empty() {
        return None;
    }
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let error = v.get("error");
        let message = error
            .and_then(|e| e.get("message"))
            .or(error.filter(|e| e.is_string()))
            .or_else(|| v.get("message"))
            .or_else(|| v.get("detail"))?;
        Some(match message {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    });
    let message = from_json.unwrap_or_else(|| body.to_owned());
    Some(match message.char_indices().nth(QUOTE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message,
    })
}

/// The text, counts and timing of an answer as it streams in.
struct Progress {
    text: String,
    chunks: usize,
    prompt_tokens: Option<usize>,
    completion_tokens: Option<usize>,
    stop: Option<StopReason>,
    started: Instant,
    first_token: Option<Instant>,
}

impl Progress {
    fn new(started: Instant) -> Self {
        Self {
            text: String::new(),
            chunks: 0,
            prompt_tokens: None,
            completion_tokens: None,
            stop: None,
            started,
            first_token: None,
        }
    }

    /// Takes one chunk (a JSON object) of the answer; `Break` when the caller cancels.
    fn take(
        &mut self,
        chunk: &Value,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> std::result::Result<ControlFlow<()>, Failure> {
        if let Some(error) = chunk.get("error") {
            let message = error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned);
            let reason = format!("the server failed mid-answer: \"{message}\"");
            return Err(match self.first_token {
                None => Failure::retryable(reason),
                Some(_) => Failure::fatal(reason),
            });
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let count = |key: &str| usage.get(key).and_then(Value::as_u64).map(|n| n as usize);
            self.prompt_tokens = count("prompt_tokens").or(self.prompt_tokens);
            self.completion_tokens = count("completion_tokens").or(self.completion_tokens);
        }
        let Some(choice) = chunk.get("choices").and_then(Value::as_array).and_then(|c| c.first()) else {
            return Ok(ControlFlow::Continue(()));
        };
        // A streamed chunk carries `delta`; a whole (non-streamed) answer carries `message`.
        let content = choice
            .get("delta")
            .or_else(|| choice.get("message"))
            .and_then(|d| d.get("content"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !content.is_empty() {
            self.first_token.get_or_insert_with(Instant::now);
            self.chunks += 1;
            self.text.push_str(content);
            if on_token(content).is_break() {
                self.stop = Some(StopReason::Cancelled);
                return Ok(ControlFlow::Break(()));
            }
        }
        match choice.get("finish_reason").and_then(Value::as_str) {
            Some("length") => self.stop = Some(StopReason::Length),
            Some(_) => self.stop = Some(StopReason::EndOfTurn),
            None => {}
        }
        Ok(ControlFlow::Continue(()))
    }

    fn finish(self, stop: StopReason) -> Completion {
        let end = Instant::now();
        let first = self.first_token.unwrap_or(end);
        Completion {
            prompt_tokens: self.prompt_tokens.unwrap_or(0),
            reused_prompt_tokens: 0,
            // The server's count where it sent one; a cancelled answer has none, then each chunk is about a token.
            completion_tokens: self.completion_tokens.filter(|_| stop != StopReason::Cancelled).unwrap_or(self.chunks),
            text: self.text,
            stop,
            prompt_seconds: (first - self.started).as_secs_f64(),
            generate_seconds: (end - first).as_secs_f64(),
        }
    }

    /// A read error or an early end: retryable only while nothing has reached the caller.
    fn broken(&self, what: String) -> Failure {
        match self.first_token {
            None => Failure::retryable(what),
            Some(_) => Failure::fatal(format!("{what}, after {} streamed tokens", self.chunks)),
        }
    }
}

/// Reads Server-Sent Events: `data:` lines gathered up to a blank line make one event; `: …` lines are comments
/// (keep-alive pings); `data: [DONE]` ends the answer.
fn read_stream(
    mut reader: impl BufRead,
    started: Instant,
    on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> std::result::Result<Completion, Failure> {
    let mut progress = Progress::new(started);
    let mut data = String::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line);
        let at_end = match read {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => return Err(progress.broken(format!("the connection broke mid-answer: {e}"))),
        };
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() || at_end {
            // End of an event (or of the stream): dispatch what was gathered.
            if !data.is_empty() {
                if data.trim() == "[DONE]" {
                    let stop = progress.stop.unwrap_or(StopReason::EndOfTurn);
                    return Ok(progress.finish(stop));
                }
                let chunk: Value = serde_json::from_str(&data).map_err(|e| {
                    Failure::fatal(format!("the stream sent an event that is not JSON ({e}): {data:.200}"))
                })?;
                data.clear();
                if progress.take(&chunk, on_token)?.is_break() {
                    // Dropping the reader closes the connection, which tells the server to stop generating.
                    return Ok(progress.finish(StopReason::Cancelled));
                }
            }
            if at_end {
                // No `[DONE]`: fine after a finish reason (some servers just close), else the answer was cut off.
                return match progress.stop {
                    Some(stop) => Ok(progress.finish(stop)),
                    None => Err(progress.broken("the connection closed mid-answer".to_owned())),
                };
            }
            continue;
        }
        if text.starts_with(':') {
            continue;
        }
        let (field, value) = text.split_once(':').unwrap_or((text, ""));
        if field == "data" {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
}

/// Reads a whole JSON completion (a server that does not stream) and hands its text on as one token.
fn read_whole(
    mut reader: impl Read,
    started: Instant,
    on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
) -> std::result::Result<Completion, Failure> {
    let mut body = String::new();
    reader.read_to_string(&mut body).map_err(|e| Failure::retryable(format!("the connection broke: {e}")))?;
    let chunk: Value = serde_json::from_str(&body)
        .map_err(|e| Failure::fatal(format!("the answer is neither an event stream nor JSON ({e}): {body:.200}")))?;
    let mut progress = Progress::new(started);
    if progress.take(&chunk, on_token)?.is_break() {
        return Ok(progress.finish(StopReason::Cancelled));
    }
    let stop = progress.stop.unwrap_or(StopReason::EndOfTurn);
    Ok(progress.finish(stop))
}

/// `Duration` as (fractional) seconds in settings files.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
