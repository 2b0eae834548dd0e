//! `argus bench encoder` and `argus bench generate`: Argus's local models measured beside their peers (PyTorch +
//! transformers for the encoder, llama.cpp for the GGUF writer) in the same invocation, on the same inputs and
//! thread count. The peers are Python scripts under `benches/peers/`, run with the interpreter of
//! `.venv-peers` / `.venv-llama` (or `ARGUS_PEER_PYTHON` / `ARGUS_LLAMA_PYTHON`); a missing peer is reported, not
//! faked.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::median;
use crate::models::encoder::{Encoder, EncoderOptions};
use crate::models::generator::{Generator, GeneratorOptions};
use crate::models::{ModelError, device};

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn python(env_var: &str, venv: &str) -> Option<PathBuf> {
    std::env::var_os(env_var)
        .map(PathBuf::from)
        .or_else(|| Some(repo_dir().join(venv).join("bin/python")))
        .filter(|p| p.is_file())
}

/// Runs a peer script and parses the one JSON object it prints.
pub(crate) fn run_peer(python: &Path, script: &str, args: &[String]) -> Result<serde_json::Value, String> {
    let script = repo_dir().join("benches/peers").join(script);
    let out = Command::new(python)
        .arg(&script)
        .args(args)
        .env("OMP_NUM_THREADS", args.windows(2).find(|w| w[0] == "--threads").map_or("1", |w| w[1].as_str()))
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(format!("{} failed: {}", script.display(), tail.into_iter().rev().collect::<Vec<_>>().join(" | ")));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or("");
    serde_json::from_str(line).map_err(|e| format!("{}: unreadable output ({e}): {stdout}", script.display()))
}

/// Sentences for the encoder bench: claims from the bundled demo, each repeated to be longer than `length` tokens
/// so that every row is a full `length` tokens for both engines.
pub fn bench_sentences(batch: usize) -> Vec<String> {
    let demo = crate::ingest::read_demo_sample().map(|p| p.items).unwrap_or_default();
    let mut out: Vec<String> = demo
        .iter()
        .take(batch)
        .map(|item| {
            let t = item.text.trim();
            format!("{t} {t} {t} {t} {t} {t} {t} {t}")
        })
        .collect();
    while out.len() < batch {
        out.push("The quick brown fox jumps over the lazy dog. ".repeat(40));
    }
    out
}

/// Encoder figures, Argus and peer.
#[derive(Debug)]
pub struct EncoderReport {
    pub model: PathBuf,
    pub device: String,
    pub threads: usize,
    pub batch: usize,
    pub length: usize,
    pub reps: usize,
    pub argus_median_s: f64,
    pub peer: Result<serde_json::Value, String>,
    /// Largest absolute difference of the first sentence's hidden states, Argus vs peer.
    pub max_abs_diff: Option<f64>,
}

impl EncoderReport {
    pub fn argus_sentences_per_s(&self) -> f64 {
        self.batch as f64 / self.argus_median_s
    }
}

impl fmt::Display for EncoderReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "encoder bench: {} on {}, {} threads, batch {} x {} tokens, median of {} runs",
            self.model.display(),
            self.device,
            self.threads,
            self.batch,
            self.length,
            self.reps
        )?;
        let ours = self.argus_sentences_per_s();
        writeln!(
            f,
            "  argus (candle)         {ours:10.1} sentences/s   ({:.1} ms per batch)",
            self.argus_median_s * 1e3
        )?;
        match &self.peer {
            Ok(peer) => {
                let theirs = peer["sentences_per_second"].as_f64().unwrap_or(f64::NAN);
                let engine = peer["engine"].as_str().unwrap_or("peer");
                writeln!(f, "  {engine:<22} {theirs:10.1} sentences/s")?;
                writeln!(f, "  ratio argus/peer       {:10.2}x", ours / theirs)?;
                if let Some(d) = self.max_abs_diff {
                    writeln!(f, "  max |argus - peer| of sentence 1's hidden states: {d:.2e}")?;
                }
            }
            Err(e) => writeln!(f, "  peer: not measured: {e}")?,
        }
        Ok(())
    }
}

/// Measures the encoder in `dir` (batch x length, `reps` timed runs after a warm-up), then its PyTorch peer.
pub fn encoder(
    dir: &Path,
    choice: crate::models::DeviceChoice,
    batch: usize,
    length: usize,
    reps: usize,
    with_peer: bool,
) -> Result<EncoderReport, ModelError> {
    let device = choice.open()?;
    let options = EncoderOptions { max_len: length, batch_size: batch, ..Default::default() };
    let encoder = Encoder::load(dir, &device, options)?;
    let sentences = bench_sentences(batch);
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let first = encoder.encode(&refs)?; // warm-up
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        let out = encoder.encode(&refs)?;
        out.hidden.device().synchronize().map_err(ModelError::candle("synchronising"))?;
        times.push(t.elapsed().as_secs_f64());
    }
    let threads = candle_core::utils::get_num_threads();
    let mut max_abs_diff = None;
    let peer = if !with_peer {
        Err("skipped (--no-peer)".to_owned())
    } else if let Some(py) = python("ARGUS_PEER_PYTHON", ".venv-peers") {
        let tmp = tempdir();
        let inputs = tmp.join("sentences.json");
        let dump = tmp.join("hidden.json");
        std::fs::write(&inputs, serde_json::to_string(&sentences).unwrap_or_default())
            .map_err(|e| ModelError::file(&inputs, e))?;
        let result = run_peer(
            &py,
            "encoder_torch.py",
            &[
                "--model".into(),
                dir.display().to_string(),
                "--inputs".into(),
                inputs.display().to_string(),
                "--batch".into(),
                batch.to_string(),
                "--length".into(),
                length.to_string(),
                "--threads".into(),
                threads.to_string(),
                "--reps".into(),
                reps.to_string(),
                "--dump".into(),
                dump.display().to_string(),
            ],
        );
        if result.is_ok()
            && let Ok(text) = std::fs::read_to_string(&dump)
            && let Ok(theirs) = serde_json::from_str::<Vec<Vec<f64>>>(&text)
            && let Ok(ours) = first.hidden.get(0).and_then(|t| t.to_vec2::<f32>())
        {
            let d = ours
                .iter()
                .flatten()
                .zip(theirs.iter().flatten())
                .map(|(a, b)| (*a as f64 - b).abs())
                .fold(0.0, f64::max);
            max_abs_diff = Some(d);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        result
    } else {
        Err("PyTorch peer not installed (run benches/peers/setup.sh, or set ARGUS_PEER_PYTHON)".to_owned())
    };
    Ok(EncoderReport {
        model: dir.to_owned(),
        device: device::describe(&device),
        threads,
        batch,
        length,
        reps,
        argus_median_s: median(times),
        peer,
        max_abs_diff,
    })
}

/// Real texts of the bundled demo, its claims and their PolitiFact justifications interleaved (short and long
/// texts, as a project's news and rationales are), the first `n`.
pub fn demo_texts(n: usize) -> Vec<String> {
    let items = crate::ingest::read_demo_sample().map(|p| p.items).unwrap_or_default();
    let mut texts = Vec::new();
    for item in items {
        texts.push(item.text.clone());
        texts.extend(item.rationales.iter().map(|r| r.text.clone()));
    }
    texts.truncate(n);
    texts
}

/// Filling the encoder cache from real texts: Argus's way (texts sorted by length, each batch padded to its
/// longest, `Encoder::encode_rows`) beside PyTorch padding every text to the full length (ARG's reference) and
/// PyTorch with the same sorting.
#[derive(Debug)]
pub struct CorpusReport {
    pub threads: usize,
    pub texts: usize,
    pub real_tokens: usize,
    pub length: usize,
    pub batch: usize,
    pub argus_secs: f64,
    pub peer: Result<serde_json::Value, String>,
}

impl CorpusReport {
    pub fn argus_texts_per_s(&self) -> f64 {
        self.texts as f64 / self.argus_secs
    }

    /// Argus against PyTorch padded to the full length, and against PyTorch sorted.
    pub fn ratios(&self) -> Option<(f64, f64)> {
        let p = self.peer.as_ref().ok()?;
        let ours = self.argus_texts_per_s();
        Some((ours / p["padded_texts_per_second"].as_f64()?, ours / p["sorted_texts_per_second"].as_f64()?))
    }
}

impl fmt::Display for CorpusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "encoder on real texts: {} texts of the demo (claims and justifications, {} real tokens, {:.0} a text), \
             length {}, batch {}, {} thread(s), the whole encoder, once each",
            self.texts,
            self.real_tokens,
            self.real_tokens as f64 / self.texts.max(1) as f64,
            self.length,
            self.batch,
            self.threads
        )?;
        writeln!(
            f,
            "  argus, sorted by length, each batch padded to its longest: {:>7.1} texts/s",
            self.argus_texts_per_s()
        )?;
        match (&self.peer, self.ratios()) {
            (Ok(p), Some((padded, sorted))) => {
                let pp = p["padded_texts_per_second"].as_f64().unwrap_or(f64::NAN);
                let ps = p["sorted_texts_per_second"].as_f64().unwrap_or(f64::NAN);
                writeln!(
                    f,
                    "  pytorch, every text padded to {} (ARG's reference): {pp:>7.1} texts/s   argus = {padded:.2}x",
                    self.length
                )?;
                writeln!(
                    f,
                    "  pytorch, sorted the same way:                        {ps:>7.1} texts/s   argus = {sorted:.2}x"
                )
            }
            (Err(e), _) => writeln!(f, "  peer: not measured: {e}"),
            (Ok(p), None) => writeln!(f, "  peer printed no rates: {p}"),
        }
    }
}

/// Times [`CorpusReport`]'s three ways on the first `n` demo texts.
pub fn encoder_corpus(
    dir: &Path,
    choice: crate::models::DeviceChoice,
    n: usize,
    batch: usize,
    length: usize,
    with_peer: bool,
) -> Result<CorpusReport, ModelError> {
    let device = choice.open()?;
    let encoder =
        Encoder::load(dir, &device, EncoderOptions { max_len: length, batch_size: batch, ..Default::default() })?;
    let texts = demo_texts(n);
    let mut sorted: Vec<&str> = texts.iter().map(String::as_str).collect();
    let _ = encoder.encode_rows(&sorted[..batch.min(sorted.len())], true)?; // warm-up
    let t = Instant::now();
    sorted.sort_by_key(|t| t.len());
    let rows = encoder.encode_rows(&sorted, true)?;
    let argus_secs = t.elapsed().as_secs_f64();
    let real_tokens = rows.iter().map(|(n, _)| n).sum();
    let threads = candle_core::utils::get_num_threads();
    let peer = if !with_peer {
        Err("skipped (--no-peer)".to_owned())
    } else if let Some(py) = python("ARGUS_PEER_PYTHON", ".venv-peers") {
        let tmp = tempdir();
        let inputs = tmp.join("texts.json");
        std::fs::write(&inputs, serde_json::to_string(&texts).unwrap_or_default())
            .map_err(|e| ModelError::file(&inputs, e))?;
        let args = [
            "--model",
            &dir.display().to_string(),
            "--inputs",
            &inputs.display().to_string(),
            "--batch",
            &batch.to_string(),
            "--length",
            &length.to_string(),
            "--threads",
            &threads.to_string(),
            "--corpus",
        ]
        .map(String::from);
        let result = run_peer(&py, "encoder_torch.py", &args);
        let _ = std::fs::remove_dir_all(&tmp);
        result
    } else {
        Err("PyTorch peer not installed (run benches/peers/setup.sh, or set ARGUS_PEER_PYTHON)".to_owned())
    };
    Ok(CorpusReport { threads, texts: texts.len(), real_tokens, length, batch, argus_secs, peer })
}

/// Generation figures, Argus and peer.
#[derive(Debug)]
pub struct GenerateReport {
    pub model: PathBuf,
    pub device: String,
    pub threads: usize,
    pub requantized: bool,
    pub prompt_tokens: usize,
    pub generated: usize,
    pub reps: usize,
    pub argus_prompt_tps: f64,
    pub argus_generate_tps: f64,
    pub argus_tokens: Vec<u32>,
    /// The same measured through candle-transformers' model of the family (prompt tok/s, generate tok/s, greedy
    /// tokens), where Argus runs its own decode path for it (`models::decoder`).
    pub candle_transformers: Option<(f64, f64, Vec<u32>)>,
    pub peer: Result<serde_json::Value, String>,
    /// One demo item written as the writer writes it (when asked for).
    pub item: Option<ItemReport>,
    /// Many claims through `argus rationales` (when asked for).
    pub dataset: Option<DatasetReport>,
}

/// LIAR2 claims (the demo sample's first ones) × two perspectives written by `rationales::run` with the local
/// writer, `batch_items` items decoded together, greedy, against llama.cpp writing the same one after another.
#[derive(Debug)]
pub struct DatasetReport {
    pub claims: usize,
    pub rationales: usize,
    pub batch_items: usize,
    pub secs: f64,
    /// Tokens of the rationales (not counting the verdict answers).
    pub tokens: usize,
    pub peer: Result<serde_json::Value, String>,
}

impl DatasetReport {
    pub fn tokens_per_sec(&self) -> f64 {
        self.tokens as f64 / self.secs
    }

    pub fn peer_tokens_per_sec(&self) -> Option<f64> {
        let p = self.peer.as_ref().ok()?;
        Some(p["rationale_tokens"].as_f64()? / p["item_secs"].as_f64()?)
    }
}

impl fmt::Display for DatasetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} LIAR2 claims × 2 perspectives through `argus rationales` ({} items decoded together), each with its verdict:",
            self.claims, self.batch_items
        )?;
        writeln!(
            f,
            "  argus                               {:>7.1} s  {} rationales, {} tokens: {:.1} rationale tokens/s",
            self.secs,
            self.rationales,
            self.tokens,
            self.tokens_per_sec()
        )?;
        match (&self.peer, self.peer_tokens_per_sec()) {
            (Ok(p), Some(rate)) => {
                let engine = p["engine"].as_str().unwrap_or("peer");
                let secs = p["item_secs"].as_f64().unwrap_or(f64::NAN);
                let tokens = p["rationale_tokens"].as_u64().unwrap_or(0);
                writeln!(f, "  {engine:<35} {secs:>7.1} s  {tokens} tokens: {rate:.1} rationale tokens/s")?;
                writeln!(f, "  dataset ratio argus/peer            {:>7.2}x", self.tokens_per_sec() / rate)?;
            }
            (Err(e), _) => writeln!(f, "  peer: not measured: {e}")?,
            (Ok(_), None) => writeln!(f, "  peer: no figures in its answer")?,
        }
        Ok(())
    }
}

/// Writes `claims` demo claims × td and cs with `rationales::run` (the `argus rationales` path) into a temporary
/// database, then has llama.cpp write the same.
fn dataset(
    path: &Path,
    device: &candle_core::Device,
    claims: usize,
    batch_items: usize,
    max_tokens: usize,
    with_peer: bool,
) -> anyhow::Result<DatasetReport> {
    use crate::models::{ChatModel, GenerationParams};
    let dir = tempdir().join("dataset");
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("claims.sqlite");
    let mut store = crate::store::Store::open(&db)?;
    let parsed = crate::ingest::read_demo_sample()?;
    store.import(&[(parsed.dataset, parsed.items.into_iter().take(claims).collect())], &mut |_| {}, &|| false)?;
    let perspectives: Vec<_> =
        crate::prompting::builtin_perspectives().into_iter().filter(|p| p.key == "td" || p.key == "cs").collect();
    let options = crate::rationales::RunOptions {
        perspectives: perspectives.clone(),
        params: GenerationParams::greedy(max_tokens),
        batch_items,
        ..Default::default()
    };
    let generator = Generator::load(path, device, &GeneratorOptions::default())?;
    let mut models: Vec<Box<dyn ChatModel>> = vec![Box::new(generator)];
    let plan = crate::rationales::plan(&store, &models[0].model_id(), &options)?;
    let tasks: Vec<_> = plan.tasks.iter().map(|t| (t.perspective.clone(), t.news.clone())).collect();
    let started = Instant::now();
    let summary = crate::rationales::run(&store, &mut models, plan, &options, &crate::jobs::NoProgress, &mut |_| {})?;
    let secs = started.elapsed().as_secs_f64();
    drop(models);
    let peer = if with_peer {
        llamacpp_writes(path, &tasks, max_tokens, 12, 0)
    } else {
        Err("skipped (--no-peer)".to_owned())
    };
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(DatasetReport {
        claims,
        rationales: summary.written,
        batch_items,
        secs,
        tokens: summary.completion_tokens,
        peer,
    })
}

/// One demo item's perspectives written as the writer writes them (each rationale, then its verdict question in
/// the same conversation), greedy, by Argus and by llama.cpp.
#[derive(Debug)]
pub struct ItemReport {
    pub perspectives: usize,
    pub max_tokens: usize,
    /// Argus, its own decode path reusing the cached prefix.
    pub secs: f64,
    pub prompt_tokens: usize,
    pub reused_prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Argus through candle-transformers' model, every prompt from its start (where the own path runs).
    pub secs_from_scratch: Option<f64>,
    /// Argus with the perspectives decoded one after another (prefix reuse only), and whether its texts are the
    /// same as the batch's.
    pub secs_one_by_one: Option<f64>,
    pub same_one_by_one: Option<bool>,
    /// (rationale, verdict answer) per perspective, Argus's.
    pub written: Vec<(String, String)>,
    pub peer: Result<serde_json::Value, String>,
}

impl ItemReport {
    pub fn peer_secs(&self) -> Option<f64> {
        self.peer.as_ref().ok().and_then(|p| p["item_secs"].as_f64())
    }
}

impl fmt::Display for ItemReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "one demo item, {} perspectives, each a rationale (greedy, at most {} tokens) then its verdict:",
            self.perspectives, self.max_tokens
        )?;
        writeln!(
            f,
            "  argus                               {:>7.2} s  ({} prompt tokens, {} of them reused from the cache; {} generated)",
            self.secs, self.prompt_tokens, self.reused_prompt_tokens, self.generated_tokens
        )?;
        if let Some(s) = self.secs_one_by_one {
            let same = match self.same_one_by_one {
                Some(true) => "the same texts as the batch",
                Some(false) => "texts DIFFER from the batch's",
                None => "",
            };
            writeln!(f, "  argus, perspectives one by one      {s:>7.2} s  ({same})")?;
        }
        if let Some(s) = self.secs_from_scratch {
            writeln!(f, "  argus, every prompt from its start  {s:>7.2} s  (candle-transformers' model, one by one)")?;
        }
        match &self.peer {
            Ok(p) => {
                let engine = p["engine"].as_str().unwrap_or("peer");
                let secs = p["item_secs"].as_f64().unwrap_or(f64::NAN);
                let tokens = p["generated_tokens"].as_u64().unwrap_or(0);
                writeln!(f, "  {engine:<35} {secs:>7.2} s  ({tokens} generated)")?;
                writeln!(f, "  item ratio peer/argus               {:>7.2}x", secs / self.secs)?;
                if let Some(theirs) = p["written"].as_array() {
                    let same = theirs
                        .iter()
                        .zip(&self.written)
                        .filter(|(t, (r, v))| {
                            t["rationale"].as_str() == Some(r.as_str()) && t["verdict"].as_str() == Some(v.as_str())
                        })
                        .count();
                    writeln!(f, "  rationales and verdicts identical to llama.cpp's: {same} of {}", theirs.len())?;
                    let differs = theirs
                        .iter()
                        .zip(&self.written)
                        .find(|(t, (r, _))| t["rationale"].as_str() != Some(r.as_str()));
                    if let Some((t, (r, _))) = differs {
                        let theirs = t["rationale"].as_str().unwrap_or_default();
                        let at = r.chars().zip(theirs.chars()).take_while(|(a, b)| a == b).count();
                        let show = |s: &str| {
                            s.chars().skip(at.saturating_sub(20)).take(60).collect::<String>().replace('\n', " ")
                        };
                        writeln!(
                            f,
                            "  first difference at character {at}: argus «{}» / llama.cpp «{}»",
                            show(r),
                            show(theirs)
                        )?;
                    }
                }
            }
            Err(e) => writeln!(f, "  peer: not measured: {e}")?,
        }
        Ok(())
    }
}

/// Writes the demo's first claim from every built-in generated perspective as `rationales::write_one` does (the
/// same messages, in the same order), greedy; returns seconds, prompt / reused / generated tokens, and the texts.
fn write_item(generator: &mut Generator, max_tokens: usize, verdict_tokens: usize) -> Result<ItemRun, ModelError> {
    use crate::models::{ChatModel as _, GenerationParams};
    let (perspectives, news) = item_tasks();
    let mut quiet = |_: &str| std::ops::ControlFlow::Continue(());
    let (mut prompt, mut reused, mut generated, mut written) = (0, 0, 0, Vec::new());
    generator.forget();
    let started = Instant::now();
    for p in &perspectives {
        let r = generator.chat(
            &crate::prompting::rationale_messages(p, &news),
            &GenerationParams::greedy(max_tokens),
            &mut quiet,
        )?;
        let question = crate::prompting::verdict_messages(p, &news, &r.text);
        let v = generator.chat(&question, &GenerationParams::greedy(verdict_tokens), &mut quiet)?;
        prompt += r.prompt_tokens + v.prompt_tokens;
        reused += r.reused_prompt_tokens + v.reused_prompt_tokens;
        generated += r.completion_tokens + v.completion_tokens;
        written.push((r.text, v.text));
    }
    Ok(ItemRun { secs: started.elapsed().as_secs_f64(), prompt, reused, generated, written })
}

/// One writing of the bench item: seconds, prompt tokens, those reused from the cache, tokens generated, and
/// (rationale, verdict answer) per perspective.
struct ItemRun {
    secs: f64,
    prompt: usize,
    reused: usize,
    generated: usize,
    written: Vec<(String, String)>,
}

/// The same item with its perspectives decoded together (`ChatModel::chat_batch`, as the writer does): the
/// rationales in one batch, then their verdict questions in another, each continuing its own conversation.
fn write_item_batched(
    generator: &mut Generator,
    max_tokens: usize,
    verdict_tokens: usize,
) -> Result<ItemRun, ModelError> {
    use crate::models::{ChatModel as _, GenerationParams};
    let (perspectives, news) = item_tasks();
    let mut quiet = |_: usize, _: &str| std::ops::ControlFlow::Continue(());
    generator.forget();
    let started = Instant::now();
    let asks: Vec<_> = perspectives.iter().map(|p| crate::prompting::rationale_messages(p, &news)).collect();
    let rationales =
        generator.chat_batch(&asks, &vec![GenerationParams::greedy(max_tokens); asks.len()], &mut quiet)?;
    let questions: Vec<_> = perspectives
        .iter()
        .zip(&rationales)
        .map(|(p, r)| crate::prompting::verdict_messages(p, &news, &r.text))
        .collect();
    let verdicts = generator.chat_batch(
        &questions,
        &vec![GenerationParams::greedy(verdict_tokens); questions.len()],
        &mut quiet,
    )?;
    let secs = started.elapsed().as_secs_f64();
    let all = rationales.iter().chain(&verdicts);
    let prompt = all.clone().map(|c| c.prompt_tokens).sum();
    let reused = all.clone().map(|c| c.reused_prompt_tokens).sum();
    let generated = all.map(|c| c.completion_tokens).sum();
    let written = rationales.into_iter().zip(verdicts).map(|(r, v)| (r.text, v.text)).collect();
    Ok(ItemRun { secs, prompt, reused, generated, written })
}

/// The item of the item figure: the demo's first claim, and the built-in perspectives a writer generates.
fn item_tasks() -> (Vec<crate::prompting::Perspective>, String) {
    let news = crate::ingest::read_demo_sample()
        .ok()
        .and_then(|p| p.items.into_iter().next())
        .map(|i| i.text)
        .unwrap_or_default();
    let perspectives = crate::prompting::builtin_perspectives().into_iter().filter(|p| p.generated).collect();
    (perspectives, news)
}

impl fmt::Display for GenerateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "generate bench: {} on {}, {} threads{}, prompt {} tokens, {} generated (greedy), median of {} runs",
            self.model.display(),
            self.device,
            self.threads,
            if self.requantized { ", slow quant types requantised to Q8_0" } else { "" },
            self.prompt_tokens,
            self.generated,
            self.reps
        )?;
        writeln!(f, "  {:<34} {:>14} {:>14}", "", "prompt tok/s", "generate tok/s")?;
        writeln!(f, "  {:<34} {:>14.1} {:>14.1}", "argus", self.argus_prompt_tps, self.argus_generate_tps)?;
        if let Some((pp, tg, tokens)) = &self.candle_transformers {
            writeln!(f, "  {:<34} {pp:>14.1} {tg:>14.1}", "candle-transformers' model")?;
            let same = self.argus_tokens.iter().zip(tokens).take_while(|(a, b)| a == b).count();
            writeln!(f, "  greedy tokens identical to candle-transformers' for the first {same} of {}", tokens.len())?;
        }
        match &self.peer {
            Ok(peer) => {
                let pp = peer["prompt_tokens_per_second"].as_f64().unwrap_or(f64::NAN);
                let tg = peer["generate_tokens_per_second"].as_f64().unwrap_or(f64::NAN);
                let engine = peer["engine"].as_str().unwrap_or("peer");
                writeln!(f, "  {engine:<34} {pp:>14.1} {tg:>14.1}")?;
                writeln!(
                    f,
                    "  {:<34} {:>13.2}x {:>13.2}x",
                    "ratio argus/peer",
                    self.argus_prompt_tps / pp,
                    self.argus_generate_tps / tg
                )?;
                if let Some(theirs) = peer["greedy_tokens"].as_array() {
                    let theirs: Vec<u64> = theirs.iter().filter_map(|v| v.as_u64()).collect();
                    let same = self.argus_tokens.iter().zip(&theirs).take_while(|(a, b)| **a as u64 == **b).count();
                    writeln!(f, "  greedy tokens identical for the first {same} of {}", theirs.len())?;
                }
            }
            Err(e) => writeln!(f, "  peer: not measured: {e}")?,
        }
        if let Some(item) = &self.item {
            write!(f, "{item}")?;
        }
        if let Some(dataset) = &self.dataset {
            write!(f, "{dataset}")?;
        }
        Ok(())
    }
}

impl GenerateReport {
    /// The JSON object of `argus bench generate --json` (issue 13's keys; the dataset figure is not built yet).
    pub fn json(&self) -> serde_json::Value {
        let peer = self.peer.as_ref().ok();
        let rate = |key: &str| peer.and_then(|p| p[key].as_f64());
        let item_secs = self.item.as_ref().map(|i| i.secs);
        let peer_item_secs = self.item.as_ref().and_then(ItemReport::peer_secs);
        serde_json::json!({
            "model": self.model.file_name().map(|n| n.to_string_lossy().into_owned()),
            "device": self.device,
            "threads": self.threads,
            "prompt_tokens_per_sec": self.argus_prompt_tps,
            "decode_tokens_per_sec": self.argus_generate_tps,
            "peer_prompt_tokens_per_sec": rate("prompt_tokens_per_second"),
            "peer_decode_tokens_per_sec": rate("generate_tokens_per_second"),
            "prompt_ratio": rate("prompt_tokens_per_second").map(|p| self.argus_prompt_tps / p),
            "decode_ratio": rate("generate_tokens_per_second").map(|p| self.argus_generate_tps / p),
            "candle_transformers_prompt_tokens_per_sec": self.candle_transformers.as_ref().map(|c| c.0),
            "candle_transformers_decode_tokens_per_sec": self.candle_transformers.as_ref().map(|c| c.1),
            "item_secs": item_secs,
            "item_secs_from_scratch": self.item.as_ref().and_then(|i| i.secs_from_scratch),
            "item_secs_one_by_one": self.item.as_ref().and_then(|i| i.secs_one_by_one),
            "item_batch_same_as_one_by_one": self.item.as_ref().and_then(|i| i.same_one_by_one),
            "item_reused_prompt_tokens": self.item.as_ref().map(|i| i.reused_prompt_tokens),
            "item_prompt_tokens": self.item.as_ref().map(|i| i.prompt_tokens),
            "peer_item_secs": peer_item_secs,
            "item_ratio": item_secs.zip(peer_item_secs).map(|(a, p)| p / a),
            "dataset_claims": self.dataset.as_ref().map(|d| d.claims),
            "dataset_batch_items": self.dataset.as_ref().map(|d| d.batch_items),
            "dataset_tokens_per_sec": self.dataset.as_ref().map(DatasetReport::tokens_per_sec),
            "peer_dataset_tokens_per_sec": self.dataset.as_ref().and_then(DatasetReport::peer_tokens_per_sec),
            "dataset_ratio": self.dataset.as_ref().and_then(|d| d.peer_tokens_per_sec().map(|p| d.tokens_per_sec() / p)),
        })
    }
}

/// The bench prompt: a rationale request on a demo claim, rendered with the model's chat template.
fn bench_prompt(generator: &Generator, prompt_tokens: usize) -> Result<Vec<u32>, ModelError> {
    let demo = crate::ingest::read_demo_sample().map(|p| p.items).unwrap_or_default();
    let mut news = String::new();
    for item in &demo {
        news.push_str(item.text.trim());
        news.push(' ');
        if generator.encode_prompt(&news)?.len() > prompt_tokens {
            break;
        }
    }
    let perspective = crate::prompting::builtin_perspectives().remove(0);
    let prompt = generator.template().render(&crate::prompting::rationale_messages(&perspective, &news));
    let mut ids = generator.encode_prompt(&prompt)?;
    ids.truncate(prompt_tokens);
    Ok(ids)
}

/// What `argus bench generate` measures.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    pub prompt_tokens: usize,
    /// Tokens generated greedily for the decode figure.
    pub generate: usize,
    pub reps: usize,
    pub with_peer: bool,
    /// Write the demo item with at most this many tokens per rationale.
    pub item: Option<usize>,
    /// Claims of the dataset figure (0: skip) and the items decoded together there.
    pub dataset_claims: usize,
    pub batch_items: usize,
}

/// Measures prompt processing and greedy generation of the GGUF at `path`, then the llama.cpp peer on the same
/// token ids; then the item and dataset figures when asked for.
pub fn generate(
    path: &Path,
    choice: crate::models::DeviceChoice,
    request: &GenerateRequest,
) -> anyhow::Result<GenerateReport> {
    let GenerateRequest { prompt_tokens, generate, reps, with_peer, item, dataset_claims, batch_items } =
        request.clone();
    let device = choice.open()?;
    const VERDICT_TOKENS: usize = 12;
    let time = |generator: &mut Generator, prompt: &[u32]| -> Result<(f64, f64, Vec<u32>), ModelError> {
        let (mut prefill, mut decode, mut tokens) = (Vec::new(), Vec::new(), Vec::new());
        for rep in 0..=reps.max(1) {
            let (p, d, t) = generator.time_greedy(prompt, generate)?;
            if rep > 0 {
                prefill.push(p);
                decode.push(d);
            } else {
                tokens = t;
            }
        }
        Ok((prompt.len() as f64 / median(prefill), generate as f64 / median(decode), tokens))
    };
    let mut generator = Generator::load(path, &device, &GeneratorOptions::default())?;
    let prompt = bench_prompt(&generator, prompt_tokens)?;
    let (argus_prompt_tps, argus_generate_tps, tokens) = time(&mut generator, &prompt)?;
    let own = generator.uses_own_decoder();
    let requantized = generator.requantized;
    let item_argus = item.map(|max| write_item_batched(&mut generator, max, VERDICT_TOKENS)).transpose()?;
    let dataset_max_tokens = item.unwrap_or(256);
    let one_by_one = match item {
        Some(max) if own => Some(write_item(&mut generator, max, VERDICT_TOKENS)?),
        _ => None,
    };
    drop(generator);
    let mut secs_from_scratch = None;
    let candle_transformers = if own {
        let options = GeneratorOptions { candle_transformers: true, ..GeneratorOptions::default() };
        let mut generator = Generator::load(path, &device, &options)?;
        let timed = time(&mut generator, &prompt)?;
        if let Some(max) = item {
            secs_from_scratch = Some(write_item(&mut generator, max, VERDICT_TOKENS)?.secs);
        }
        Some(timed)
    } else {
        None
    };
    let threads = candle_core::utils::get_num_threads();
    let peer = if !with_peer {
        Err("skipped (--no-peer)".to_owned())
    } else if let Some(py) = python("ARGUS_LLAMA_PYTHON", ".venv-llama") {
        let tmp = tempdir();
        let file = tmp.join("prompt.json");
        std::fs::write(&file, serde_json::to_string(&prompt).unwrap_or_default())
            .map_err(|e| ModelError::file(&file, e))?;
        let result = run_peer(
            &py,
            "generate_llamacpp.py",
            &[
                "--model".into(),
                path.display().to_string(),
                "--tokens".into(),
                file.display().to_string(),
                "--generate".into(),
                generate.to_string(),
                "--threads".into(),
                threads.to_string(),
                "--reps".into(),
                reps.to_string(),
            ],
        );
        let _ = std::fs::remove_dir_all(&tmp);
        result
    } else {
        Err("llama.cpp peer not installed (run scripts/setup-llama-server.sh, or set ARGUS_LLAMA_PYTHON)".to_owned())
    };
    Ok(GenerateReport {
        model: path.to_owned(),
        device: device::describe(&device),
        threads,
        requantized,
        prompt_tokens: prompt.len(),
        generated: generate,
        reps,
        argus_prompt_tps,
        argus_generate_tps,
        argus_tokens: tokens,
        candle_transformers,
        peer,
        item: match (item, item_argus) {
            (Some(max_tokens), Some(run)) => Some(ItemReport {
                perspectives: run.written.len(),
                max_tokens,
                secs: run.secs,
                prompt_tokens: run.prompt,
                reused_prompt_tokens: run.reused,
                generated_tokens: run.generated,
                secs_from_scratch,
                secs_one_by_one: one_by_one.as_ref().map(|o| o.secs),
                same_one_by_one: one_by_one.as_ref().map(|o| o.written == run.written),
                written: run.written,
                peer: item_peer(path, with_peer, max_tokens, VERDICT_TOKENS),
            }),
            _ => None,
        },
        dataset: if dataset_claims > 0 {
            Some(dataset(path, &device, dataset_claims, batch_items, dataset_max_tokens, with_peer)?)
        } else {
            None
        },
    })
}

/// llama.cpp writing the same item (`benches/peers/item_llamacpp.py`).
fn item_peer(
    path: &Path,
    with_peer: bool,
    max_tokens: usize,
    verdict_tokens: usize,
) -> Result<serde_json::Value, String> {
    if !with_peer {
        return Err("skipped (--no-peer)".to_owned());
    }
    let (perspectives, news) = item_tasks();
    let tasks: Vec<_> = perspectives.iter().map(|p| (p.clone(), news.clone())).collect();
    llamacpp_writes(path, &tasks, max_tokens, verdict_tokens, 1)
}

/// llama.cpp writing `tasks` (perspective, news) one after another as the writer would
/// (`benches/peers/item_llamacpp.py`), `reps` measured rounds after a warm-up (0: one round, measured).
fn llamacpp_writes(
    path: &Path,
    tasks: &[(crate::prompting::Perspective, String)],
    max_tokens: usize,
    verdict_tokens: usize,
    reps: usize,
) -> Result<serde_json::Value, String> {
    let Some(py) = python("ARGUS_LLAMA_PYTHON", ".venv-llama") else {
        return Err(
            "llama.cpp peer not installed (run scripts/setup-llama-server.sh, or set ARGUS_LLAMA_PYTHON)".to_owned()
        );
    };
    let tasks: Vec<serde_json::Value> = tasks
        .iter()
        .map(|(p, news)| {
            serde_json::json!({
                "messages": crate::prompting::rationale_messages(p, news)
                    .iter()
                    .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
                    .collect::<Vec<_>>(),
                "question": p.verdict_question,
            })
        })
        .collect();
    let tmp = tempdir();
    let file = tmp.join("tasks.json");
    std::fs::write(&file, serde_json::Value::Array(tasks).to_string())
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let threads = candle_core::utils::get_num_threads();
    let result = run_peer(
        &py,
        "item_llamacpp.py",
        &[
            "--model".into(),
            path.display().to_string(),
            "--tasks".into(),
            file.display().to_string(),
            "--max-tokens".into(),
            max_tokens.to_string(),
            "--verdict-tokens".into(),
            verdict_tokens.to_string(),
            "--threads".into(),
            threads.to_string(),
            "--reps".into(),
            reps.to_string(),
        ],
    );
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

pub(crate) fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("argus-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    dir
}
