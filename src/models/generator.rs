//! The local rationale writer: an instruction-tuned GGUF model run through candle-transformers' quantized model
//! families (llama incl. SmolLM2, qwen2, gemma3), with the chat template of its family, seeded sampling
//! (temperature, top-p), streaming and a stop at the end of the model's turn.
//!
//! Loading checks the file first (GGUF magic, that every tensor's bytes are in the file, the architecture, the
//! memory it needs) and finds a tokenizer: a tokenizer.json beside the model, else one built from the GGUF's own
//! metadata. Tensors in quantisation types that candle has no fast CPU kernel for (Q4_1, Q5_0, Q5_1) are
//! requantised to Q8_0 at load (a second or two; decoding gets about 4x faster).

use std::io::{Cursor, Read, Seek};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::quantized::gguf_file::{self, Content};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::{quantized_gemma3, quantized_llama, quantized_qwen2};
use tokenizers::Tokenizer;

use super::decoder::{DECODER_ARCHITECTURES, Decoder, KvCache};
use super::{ChatModel, Completion, GenerationParams, ModelError, Result, StopReason, check_memory};
use crate::prompting::ChatMessage;

/// Architectures this writer runs (`general.architecture` of the GGUF).
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "qwen2", "gemma3"];

/// How a model's chat turns are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\n...<|im_end|>\n` (SmolLM2, Qwen2).
    ChatMl,
    /// `<start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n` (Gemma).
    Gemma,
    /// `<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>` (Llama 3).
    Llama3,
}

impl ChatTemplate {
    /// The prompt for `messages`, ending where the assistant's answer starts.
    pub fn render(self, messages: &[ChatMessage]) -> String {
        let mut out = String::new();
        match self {
            Self::ChatMl => {
                for m in messages {
                    out.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content));
                }
                out.push_str("<|im_start|>assistant\n");
            }
            Self::Gemma => {
                // Gemma has no system role: the system message opens the first user turn.
                let mut pending_system = String::new();
                for m in messages {
                    match m.role.as_str() {
                        "system" => pending_system = format!("{}\n\n", m.content),
                        "assistant" => out.push_str(&format!("<start_of_turn>model\n{}<end_of_turn>\n", m.content)),
                        _ => {
                            out.push_str(&format!(
                                "<start_of_turn>user\n{}{}<end_of_turn>\n",
                                std::mem::take(&mut pending_system),
                                m.content
                            ));
                        }
                    }
                }
                out.push_str("<start_of_turn>model\n");
            }
            Self::Llama3 => {
                out.push_str("<|begin_of_text|>");
                for m in messages {
                    out.push_str(&format!("<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>", m.role, m.content));
                }
                out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
            }
        }
        out
    }

    /// Tokens that end the assistant's turn.
    fn stop_tokens(self) -> &'static [&'static str] {
        match self {
            Self::ChatMl => &["<|im_end|>", "<|endoftext|>"],
            Self::Gemma => &["<end_of_turn>", "<eos>"],
            Self::Llama3 => &["<|eot_id|>", "<|end_of_text|>"],
        }
    }
}

/// Load-time choices.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratorOptions {
    /// Requantise Q4_1/Q5_0/Q5_1 tensors to Q8_0 on the CPU (faster kernels).
    pub requantize: bool,
    /// Longest prompt + answer, in tokens (bounded by the model's own context length).
    pub context: usize,
    /// Refuse to load when the model needs more than this many bytes (default: the memory available now).
    pub memory_budget: Option<u64>,
    /// Run llama and qwen2 models through candle-transformers' implementations instead of Argus's own decode path
    /// (`models::decoder`), which reuses the cached prefix of a prompt. For comparisons.
    pub candle_transformers: bool,
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        Self { requantize: true, context: 4096, memory_budget: None, candle_transformers: false }
    }
}

enum Weights {
    /// Argus's own decode path (llama, qwen2): a decoder and the sequences its caches hold (slot 0 for one
    /// conversation at a time, one slot per conversation of a batch).
    Own {
        decoder: Decoder,
        slots: Vec<Slot>,
        context: usize,
    },
    Llama(quantized_llama::ModelWeights),
    Qwen2(quantized_qwen2::ModelWeights),
    Gemma3(quantized_gemma3::ModelWeights),
}

/// A KV cache and the tokens it holds.
struct Slot {
    cache: KvCache,
    tokens: Vec<u32>,
}

/// Tokens of a new slot's cache; it grows to the model's context when a sequence needs more.
const SLOT_TOKENS: usize = 2048;

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Weights {
    fn forward(&mut self, x: &Tensor, pos: usize) -> candle_core::Result<Tensor> {
        match self {
            Self::Own { .. } => candle_core::bail!("the own decode path runs through prefill and decode"),
            Self::Llama(m) => m.forward(x, pos),
            Self::Qwen2(m) => m.forward(x, pos),
            Self::Gemma3(m) => m.forward(x, pos),
        }
    }

    /// Makes sure the own path has `n` slots whose caches can hold `tokens` tokens each.
    fn ensure_slots(&mut self, n: usize, tokens: usize) -> candle_core::Result<()> {
        if let Self::Own { decoder, slots, context } = self {
            while slots.len() < n {
                slots.push(Slot { cache: decoder.new_cache(SLOT_TOKENS.min(*context))?, tokens: Vec::new() });
            }
            for slot in slots.iter_mut().take(n) {
                if slot.cache.capacity() < tokens.min(*context) {
                    let mut bigger = decoder.new_cache(*context)?;
                    bigger.copy_prefix_from(&slot.cache, slot.cache.len())?;
                    slot.cache = bigger;
                }
            }
        }
        Ok(())
    }

    /// Own decode path: runs all of `prompt` but its last token in slot `i`, reusing the longest prefix it shares
    /// with this slot's sequence or with another slot's (whose keys and values are then copied), and returns how
    /// many of its tokens were already cached. The last token is left for [`Weights::decode_batch`], alone or with
    /// the other sequences' last tokens: a decoding step computes each row the same way whatever the rows beside
    /// it, so the logits an answer starts from are the same whether a cached prefix spared the tokens before it or
    /// not, and whether the prompt came alone or in a batch (in one tensor pass with the tokens before it, another
    /// row count sums in another order, and with activations quantised to 8 bits before each product that can
    /// move a sampled token).
    fn prefill_prefix(&mut self, i: usize, prompt: &[u32]) -> candle_core::Result<usize> {
        let Self::Own { decoder, slots, .. } = self else {
            candle_core::bail!("prefix reuse runs on the own decode path");
        };
        let last = prompt.len() - 1; // at least one token runs, for its logits
        let own = common_prefix(&slots[i].tokens, prompt).min(last);
        let best = (0..slots.len())
            .filter(|&j| j != i)
            .map(|j| (common_prefix(&slots[j].tokens, prompt).min(last), j))
            .max()
            .filter(|&(n, _)| n > own);
        let shared = match best {
            Some((n, j)) => {
                let (a, b) = if i < j { slots.split_at_mut(j) } else { slots.split_at_mut(i) };
                let (mine, theirs) = if i < j { (&mut a[i], &b[0]) } else { (&mut b[0], &a[j]) };
                mine.cache.copy_prefix_from(&theirs.cache, n)?;
                mine.tokens.clear();
                mine.tokens.extend_from_slice(&prompt[..n]);
                n
            }
            None => own,
        };
        let slot = &mut slots[i];
        slot.cache.truncate(shared);
        slot.tokens.truncate(shared);
        if shared < last {
            decoder.forward(&prompt[shared..last], &mut slot.cache)?;
        }
        slot.tokens.extend_from_slice(&prompt[shared..last]);
        Ok(shared)
    }

    /// The logits (`[vocab]`) after `prompt` in slot `i`, and how many of its tokens were already cached (own
    /// decode path: see [`Weights::prefill_prefix`]; candle-transformers' models start over).
    fn prefill_slot(&mut self, i: usize, prompt: &[u32], device: &Device) -> candle_core::Result<(Tensor, usize)> {
        match self {
            Self::Own { .. } => {
                let shared = self.prefill_prefix(i, prompt)?;
                let logits = self.decode_batch(&[i], &prompt[prompt.len() - 1..])?.remove(0);
                Ok((logits, shared))
            }
            other => {
                let input = Tensor::new(prompt, device)?.unsqueeze(0)?;
                Ok((other.forward(&input, 0)?.flatten_all()?, 0))
            }
        }
    }

    fn prefill(&mut self, prompt: &[u32], device: &Device, budget: usize) -> candle_core::Result<(Tensor, usize)> {
        self.ensure_slots(1, prompt.len() + budget)?;
        self.prefill_slot(0, prompt, device)
    }

    /// The logits after one more token at position `pos` (slot 0).
    fn decode(&mut self, token: u32, pos: usize, device: &Device) -> candle_core::Result<Tensor> {
        match self {
            Self::Own { decoder, slots, .. } => {
                let slot = &mut slots[0];
                let logits = decoder.forward_batch(&[token], &mut [&mut slot.cache])?.remove(0);
                slot.tokens.push(token);
                Ok(logits)
            }
            other => {
                let input = Tensor::new(&[token], device)?.unsqueeze(0)?;
                other.forward(&input, pos)?.flatten_all()
            }
        }
    }

    /// One step of the sequences in `active` slots, each with its next token; their logits in that order.
    fn decode_batch(&mut self, active: &[usize], tokens: &[u32]) -> candle_core::Result<Vec<Tensor>> {
        let Self::Own { decoder, slots, .. } = self else {
            candle_core::bail!("batched decoding runs on the own decode path");
        };
        let mut caches: Vec<&mut KvCache> = Vec::with_capacity(active.len());
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Some(at) = active.iter().position(|&a| a == i) {
                slot.tokens.push(tokens[at]);
                caches.push(&mut slot.cache);
            }
        }
        // `caches` is in slot order; `active` is sorted, so it is the same order.
        decoder.forward_batch(tokens, &mut caches)
    }

    /// Forgets the cached sequences (benchmarks time a prompt from scratch).
    fn forget(&mut self) {
        if let Self::Own { slots, .. } = self {
            for slot in slots {
                slot.tokens.clear();
                slot.cache.truncate(0);
            }
        }
    }
}

/// Facts about a GGUF file read without loading its weights.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufInfo {
    pub architecture: String,
    pub name: Option<String>,
    pub context_length: Option<usize>,
    /// Tensor count per quantisation type, e.g. `Q4_1: 210`.
    pub tensor_types: Vec<(String, usize)>,
    pub file_size: u64,
}

/// Reads and checks a GGUF file's header: magic, metadata, tensor table, and that every tensor's bytes are there.
pub fn inspect(path: &Path) -> Result<(Content, GgufInfo)> {
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ModelError::Missing {
            path: path.to_owned(),
            hint: "`argus models fetch` gets the demo writer; `argus models list` shows what is here".into(),
        },
        _ => ModelError::file(path, e),
    })?;
    let file_size = file.metadata().map_err(|e| ModelError::file(path, e))?.len();
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || &magic != b"GGUF" {
        return Err(ModelError::file(path, "not a GGUF file (it does not start with `GGUF`)"));
    }
    file.rewind().map_err(|e| ModelError::file(path, e))?;
    let content = Content::read(&mut std::io::BufReader::new(&mut file))
        .map_err(|e| ModelError::file(path, format!("unreadable GGUF header (truncated?): {e}")))?;
    let mut data_end = content.tensor_data_offset;
    let mut types = std::collections::BTreeMap::<String, usize>::new();
    for info in content.tensor_infos.values() {
        let bytes = info.shape.elem_count() / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
        data_end = data_end.max(content.tensor_data_offset + info.offset + bytes as u64);
        *types.entry(format!("{:?}", info.ggml_dtype)).or_default() += 1;
    }
    if data_end > file_size {
        return Err(ModelError::file(
            path,
            format!("truncated: its tensors need {data_end} bytes but the file has {file_size} (fetch it again)"),
        ));
    }
    let architecture = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| ModelError::file(path, "no general.architecture in the GGUF metadata"))?;
    let name = content.metadata.get("general.name").and_then(|v| v.to_string().ok()).cloned();
    let context_length = content
        .metadata
        .get(&format!("{architecture}.context_length"))
        .and_then(|v| v.to_u32().ok())
        .map(|n| n as usize);
    let info = GgufInfo { architecture, name, context_length, tensor_types: types.into_iter().collect(), file_size };
    Ok((content, info))
}

/// A loaded GGUF rationale writer.
pub struct Generator {
    path: PathBuf,
    id: String,
    info: GgufInfo,
    weights: Weights,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    stop_ids: Vec<u32>,
    bos: Option<u32>,
    context: usize,
    device: Device,
    /// Whether slow quantisation types were requantised at load.
    pub requantized: bool,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator").field("path", &self.path).field("info", &self.info).finish_non_exhaustive()
    }
}

/// Quantisation types with no fast candle CPU kernel, requantised to Q8_0 at load.
const SLOW_TYPES: &[GgmlDType] = &[GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q5_1];

impl Generator {
    pub fn load(path: &Path, device: &Device, options: &GeneratorOptions) -> Result<Self> {
        let (content, info) = inspect(path)?;
        if !SUPPORTED_ARCHITECTURES.contains(&info.architecture.as_str()) {
            return Err(ModelError::Unsupported {
                path: path.to_owned(),
                arch: info.architecture.clone(),
                supported: SUPPORTED_ARCHITECTURES.join(", "),
            });
        }
        let requantize = options.requantize
            && device.is_cpu()
            && content.tensor_infos.values().any(|t| SLOW_TYPES.contains(&t.ggml_dtype));
        // The weights, plus a requantised copy while it is built.
        let needed = if requantize { info.file_size * 3 } else { info.file_size + info.file_size / 4 };
        check_memory(path, needed, options.memory_budget)?;
        let tokenizer = load_tokenizer(path, &content)?;
        let template = detect_template(&tokenizer, &info.architecture).ok_or_else(|| {
            ModelError::file(path, "no known chat format (ChatML, Gemma or Llama 3) in its vocabulary")
        })?;
        let mut stop_ids: Vec<u32> = template.stop_tokens().iter().filter_map(|t| tokenizer.token_to_id(t)).collect();
        if let Some(eos) = content.metadata.get("tokenizer.ggml.eos_token_id").and_then(|v| v.to_u32().ok())
            && !stop_ids.contains(&eos)
        {
            stop_ids.push(eos);
        }
        let add_bos = content.metadata.get("tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok());
        let bos_id = content.metadata.get("tokenizer.ggml.bos_token_id").and_then(|v| v.to_u32().ok());
        let bos = match (add_bos, template) {
            (Some(true), _) | (None, ChatTemplate::Gemma) => bos_id,
            _ => None,
        };
        let file = std::fs::File::open(path).map_err(|e| ModelError::file(path, e))?;
        let mut reader = std::io::BufReader::new(file);
        let arch = info.architecture.clone();
        let context = options.context.min(info.context_length.unwrap_or(options.context)).max(64);
        let own = !options.candle_transformers && DECODER_ARCHITECTURES.contains(&arch.as_str());
        let weights = if requantize {
            let bytes = requantized_gguf(&content, &mut reader, path)?;
            let mut cursor = Cursor::new(bytes);
            let content = Content::read(&mut cursor).map_err(ModelError::candle(path.display()))?;
            load_weights(&arch, own, context, content, &mut cursor, device, path)?
        } else {
            load_weights(&arch, own, context, content, &mut reader, device, path)?
        };
        let stem = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let id = format!("{stem}#{}", info.file_size);
        Ok(Self {
            path: path.to_owned(),
            id,
            info,
            weights,
            tokenizer,
            template,
            stop_ids,
            bos,
            context,
            device: device.clone(),
            requantized: requantize,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Forgets the sequence its cache holds, so that the next prompt is processed from its start.
    pub fn forget(&mut self) {
        self.weights.forget();
    }

    /// Whether it runs on Argus's own decode path (`models::decoder`) rather than candle-transformers' model.
    pub fn uses_own_decoder(&self) -> bool {
        matches!(self.weights, Weights::Own { .. })
    }

    pub fn info(&self) -> &GgufInfo {
        &self.info
    }

    pub fn template(&self) -> ChatTemplate {
        self.template
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Token ids of `prompt` (chat markers are single tokens), with BOS where the model wants one.
    pub fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        let encoding = self.tokenizer.encode(prompt, false).map_err(|e| ModelError::file(&self.path, e))?;
        let mut ids = Vec::with_capacity(encoding.len() + 1);
        ids.extend(self.bos);
        ids.extend_from_slice(encoding.get_ids());
        Ok(ids)
    }

    /// Generates from raw prompt tokens. `on_token` gets each new piece of text; `Break` stops.
    pub fn generate_tokens(
        &mut self,
        prompt: &[u32],
        params: &GenerationParams,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<(Vec<u32>, Completion)> {
        if prompt.is_empty() {
            return Err(ModelError::file(&self.path, "empty prompt"));
        }
        if prompt.len() >= self.context {
            return Err(ModelError::file(
                &self.path,
                format!("the prompt has {} tokens; this model's context is {}", prompt.len(), self.context),
            ));
        }
        let ctx = || ModelError::candle(format!("generating with {}", self.path.display()));
        let mut sampler = sampler_for(params);
        let budget = params.max_tokens.min(self.context - prompt.len());
        let started = Instant::now();
        let (logits, reused) = self.weights.prefill(prompt, &self.device, budget).map_err(ctx())?;
        let mut next = sample_last(&logits, &mut sampler).map_err(ctx())?;
        let prompt_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut generated: Vec<u32> = Vec::new();
        let mut stream = TextStream::default();
        let mut stop = StopReason::Length;
        while generated.len() < budget {
            if self.stop_ids.contains(&next) {
                stop = StopReason::EndOfTurn;
                break;
            }
            generated.push(next);
            if let Some(piece) = stream.push(&self.tokenizer, &generated)
                && on_token(&piece).is_break()
            {
                stop = StopReason::Cancelled;
                break;
            }
            if generated.len() == budget {
                break;
            }
            let logits = self.weights.decode(next, prompt.len() + generated.len() - 1, &self.device).map_err(ctx())?;
            next = sample_last(&logits, &mut sampler).map_err(ctx())?;
        }
        let text = self.tokenizer.decode(&generated, true).map_err(|e| ModelError::file(&self.path, e))?;
        if let Some(rest) = stream.finish(&text) {
            let _ = on_token(&rest);
        }
        let completion = Completion {
            text: text.trim().to_owned(),
            prompt_tokens: prompt.len(),
            reused_prompt_tokens: reused,
            completion_tokens: generated.len(),
            stop,
            prompt_seconds,
            generate_seconds: started.elapsed().as_secs_f64(),
        };
        Ok((generated, completion))
    }
}

impl Generator {
    /// The logits after `prompt` from an empty cache (for comparing devices and paths).
    pub fn prompt_logits(&mut self, prompt: &[u32]) -> Result<Vec<f32>> {
        self.weights.forget();
        self.cached_prompt_logits(prompt).map(|(logits, _)| logits)
    }

    /// The logits after `prompt`, reusing what the cache holds (as a chat does), and how many of its tokens were
    /// reused.
    pub fn cached_prompt_logits(&mut self, prompt: &[u32]) -> Result<(Vec<f32>, usize)> {
        let ctx = || ModelError::candle(format!("running {}", self.path.display()));
        let (logits, reused) = self.weights.prefill(prompt, &self.device, 1).map_err(ctx())?;
        Ok((logits.to_dtype(candle_core::DType::F32).and_then(|l| l.to_vec1()).map_err(ctx())?, reused))
    }

    /// Teacher forcing, for comparing two ways of computing the same model: the logits after `prompt`, then after
    /// each of `tokens` fed one decoding step at a time (whatever this model would have chosen), from an empty
    /// cache. `tokens.len() + 1` rows.
    pub fn forced_logits(&mut self, prompt: &[u32], tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        let ctx = || ModelError::candle(format!("running {}", self.path.display()));
        let rows = |l: Tensor| l.to_dtype(candle_core::DType::F32).and_then(|l| l.to_vec1::<f32>());
        self.weights.forget();
        let (logits, _) = self.weights.prefill(prompt, &self.device, tokens.len()).map_err(ctx())?;
        let mut out = vec![rows(logits).map_err(ctx())?];
        for (i, &t) in tokens.iter().enumerate() {
            let logits = self.weights.decode(t, prompt.len() + i, &self.device).map_err(ctx())?;
            out.push(rows(logits).map_err(ctx())?);
        }
        Ok(out)
    }

    /// For benchmarks: seconds to process `prompt` in one batch, seconds to then generate `n` tokens greedily one
    /// at a time (not stopping at the end of the turn), and the tokens.
    pub fn time_greedy(&mut self, prompt: &[u32], n: usize) -> Result<(f64, f64, Vec<u32>)> {
        let ctx = || ModelError::candle(format!("generating with {}", self.path.display()));
        let mut sampler = LogitsProcessor::from_sampling(0, Sampling::ArgMax);
        self.weights.forget();
        let started = Instant::now();
        let (logits, _) = self.weights.prefill(prompt, &self.device, n).map_err(ctx())?;
        let mut next = sample_last(&logits, &mut sampler).map_err(ctx())?;
        self.device.synchronize().map_err(ctx())?;
        let prefill = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut tokens = Vec::with_capacity(n);
        for i in 0..n {
            tokens.push(next);
            let logits = self.weights.decode(next, prompt.len() + i, &self.device).map_err(ctx())?;
            next = sample_last(&logits, &mut sampler).map_err(ctx())?;
        }
        Ok((prefill, started.elapsed().as_secs_f64(), tokens))
    }
}

impl ChatModel for Generator {
    fn model_id(&self) -> String {
        format!("local:{}", self.id)
    }

    fn device_name(&self) -> Option<String> {
        Some(super::device::describe(&self.device))
    }

    fn chat(
        &mut self,
        messages: &[ChatMessage],
        params: &GenerationParams,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> Result<Completion> {
        let prompt = self.template.render(messages);
        let ids = self.encode_prompt(&prompt)?;
        self.generate_tokens(&ids, params, on_token).map(|(_, c)| c)
    }

    fn batches(&self) -> bool {
        self.uses_own_decoder()
    }

    fn chat_batch(
        &mut self,
        conversations: &[Vec<ChatMessage>],
        params: &[GenerationParams],
        on_token: &mut dyn FnMut(usize, &str) -> ControlFlow<()>,
    ) -> Result<Vec<Completion>> {
        if conversations.len() != params.len() {
            return Err(ModelError::file(&self.path, "one set of generation parameters per conversation"));
        }
        if self.uses_own_decoder() && conversations.len() > 1 {
            return self.generate_batch(conversations, params, on_token);
        }
        super::chat_one_by_one(self, conversations, params, on_token)
    }
}

/// One conversation of a batch as it decodes.
struct Sequence {
    prompt_tokens: usize,
    reused: usize,
    budget: usize,
    sampler: LogitsProcessor,
    next: u32,
    generated: Vec<u32>,
    stream: TextStream,
    stop: Option<StopReason>,
    prompt_seconds: f64,
}

fn sampler_for(params: &GenerationParams) -> LogitsProcessor {
    let sampling = if params.temperature <= 0.0 {
        Sampling::ArgMax
    } else {
        match params.top_p {
            Some(p) if p < 1.0 => Sampling::TopP { p, temperature: params.temperature },
            _ => Sampling::All { temperature: params.temperature },
        }
    };
    LogitsProcessor::from_sampling(params.seed, sampling)
}

impl Generator {
    /// Decodes `conversations` together on the own decode path: each is prefilled in its own cache slot (reusing
    /// the prefix it shares with what a slot holds), then every step feeds the next token of each unfinished one in
    /// one batch. Each has its own sampler, budget and stop; `on_token(i, piece)` streams conversation `i`, and
    /// `Break` stops them all.
    fn generate_batch(
        &mut self,
        conversations: &[Vec<ChatMessage>],
        params: &[GenerationParams],
        on_token: &mut dyn FnMut(usize, &str) -> ControlFlow<()>,
    ) -> Result<Vec<Completion>> {
        let ctx = || ModelError::candle(format!("generating with {}", self.path.display()));
        let mut prompts = Vec::with_capacity(conversations.len());
        for messages in conversations {
            let ids = self.encode_prompt(&self.template.render(messages))?;
            if ids.is_empty() || ids.len() >= self.context {
                return Err(ModelError::file(
                    &self.path,
                    format!("the prompt has {} tokens; this model's context is {}", ids.len(), self.context),
                ));
            }
            prompts.push(ids);
        }
        let longest = prompts.iter().zip(params).map(|(p, q)| p.len() + q.max_tokens).max().unwrap_or(0);
        if let Weights::Own { decoder, slots, context } = &self.weights {
            // Memory for the caches this batch adds, checked before any is allocated.
            let capacity = if longest > SLOT_TOKENS { *context } else { SLOT_TOKENS.min(*context) };
            let new = prompts.len().saturating_sub(slots.len()) as u64 * decoder.cache_bytes(capacity);
            if let Some(available) = super::available_memory()
                && new > available
            {
                return Err(ModelError::file(
                    &self.path,
                    format!(
                        "{} sequences at once need {} MiB more for their KV caches; {} MiB are available: decode \
                         fewer items together",
                        prompts.len(),
                        new >> 20,
                        available >> 20
                    ),
                ));
            }
        }
        self.weights.ensure_slots(prompts.len(), longest).map_err(ctx())?;
        // Each prompt but its last token in its own slot, then every last token in one decoding step (the weights
        // read once for all of them; each row's result is the same as alone).
        let mut seqs = Vec::with_capacity(prompts.len());
        for (i, (prompt, params)) in prompts.iter().zip(params).enumerate() {
            let started = Instant::now();
            let reused = self.weights.prefill_prefix(i, prompt).map_err(ctx())?;
            seqs.push(Sequence {
                prompt_tokens: prompt.len(),
                reused,
                budget: params.max_tokens.min(self.context - prompt.len()),
                sampler: sampler_for(params),
                next: 0,
                generated: Vec::new(),
                stream: TextStream::default(),
                stop: None,
                prompt_seconds: started.elapsed().as_secs_f64(),
            });
        }
        let started = Instant::now();
        let all: Vec<usize> = (0..prompts.len()).collect();
        let lasts: Vec<u32> = prompts.iter().map(|p| p[p.len() - 1]).collect();
        let logits = self.weights.decode_batch(&all, &lasts).map_err(ctx())?;
        let last_step = started.elapsed().as_secs_f64();
        for (seq, logits) in seqs.iter_mut().zip(&logits) {
            seq.next = sample_last(logits, &mut seq.sampler).map_err(ctx())?;
            seq.prompt_seconds += last_step; // the step all the prompts' last tokens shared
        }
        let started = Instant::now();
        let mut cancelled = false;
        loop {
            let mut feed = Vec::new();
            for (i, seq) in seqs.iter_mut().enumerate() {
                if seq.stop.is_some() {
                    continue;
                }
                if seq.generated.len() >= seq.budget {
                    seq.stop = Some(StopReason::Length);
                    continue;
                }
                if self.stop_ids.contains(&seq.next) {
                    seq.stop = Some(StopReason::EndOfTurn);
                    continue;
                }
                seq.generated.push(seq.next);
                if let Some(piece) = seq.stream.push(&self.tokenizer, &seq.generated)
                    && on_token(i, &piece).is_break()
                {
                    cancelled = true;
                }
                if seq.generated.len() == seq.budget {
                    seq.stop = Some(StopReason::Length);
                } else {
                    feed.push(i);
                }
            }
            if cancelled || feed.is_empty() {
                break;
            }
            let tokens: Vec<u32> = feed.iter().map(|&i| seqs[i].next).collect();
            let logits = self.weights.decode_batch(&feed, &tokens).map_err(ctx())?;
            for (&i, logits) in feed.iter().zip(&logits) {
                let seq = &mut seqs[i];
                seq.next = sample_last(logits, &mut seq.sampler).map_err(ctx())?;
            }
        }
        let generate_seconds = started.elapsed().as_secs_f64();
        let mut out = Vec::with_capacity(seqs.len());
        for (i, mut seq) in seqs.into_iter().enumerate() {
            let text = self.tokenizer.decode(&seq.generated, true).map_err(|e| ModelError::file(&self.path, e))?;
            if !cancelled && let Some(rest) = seq.stream.finish(&text) {
                let _ = on_token(i, &rest);
            }
            out.push(Completion {
                text: text.trim().to_owned(),
                prompt_tokens: seq.prompt_tokens,
                reused_prompt_tokens: seq.reused,
                completion_tokens: seq.generated.len(),
                stop: if cancelled { StopReason::Cancelled } else { seq.stop.unwrap_or(StopReason::Length) },
                prompt_seconds: seq.prompt_seconds,
                generate_seconds,
            });
        }
        Ok(out)
    }
}

/// Samples from the last token's logits (`[vocab]`).
fn sample_last(logits: &Tensor, sampler: &mut LogitsProcessor) -> candle_core::Result<u32> {
    sampler.sample(&logits.to_dtype(candle_core::DType::F32)?)
}

/// Turns a growing list of tokens into text pieces, holding back incomplete UTF-8 sequences.
#[derive(Default)]
struct TextStream {
    emitted: String,
}

impl TextStream {
    fn push(&mut self, tokenizer: &Tokenizer, ids: &[u32]) -> Option<String> {
        let text = tokenizer.decode(ids, true).ok()?;
        if text.ends_with('\u{fffd}') || !text.starts_with(&self.emitted) || text.len() <= self.emitted.len() {
            return None;
        }
        let piece = text[self.emitted.len()..].to_owned();
        self.emitted = text;
        Some(piece)
    }

    fn finish(&mut self, text: &str) -> Option<String> {
        let rest = text.strip_prefix(&self.emitted)?;
        (!rest.is_empty()).then(|| rest.to_owned())
    }
}

fn detect_template(tokenizer: &Tokenizer, arch: &str) -> Option<ChatTemplate> {
    let has = |t: &str| tokenizer.token_to_id(t).is_some();
    if has("<|im_start|>") && has("<|im_end|>") {
        Some(ChatTemplate::ChatMl)
    } else if has("<start_of_turn>") || arch == "gemma3" {
        Some(ChatTemplate::Gemma)
    } else if has("<|start_header_id|>") {
        Some(ChatTemplate::Llama3)
    } else {
        None
    }
}

/// A tokenizer.json beside the model (`NAME.tokenizer.json`, else `tokenizer.json` in the same folder), else one
/// built from the GGUF's metadata.
fn load_tokenizer(path: &Path, content: &Content) -> Result<Tokenizer> {
    let beside = [path.with_extension("tokenizer.json"), path.with_file_name("tokenizer.json")];
    for candidate in beside {
        if candidate.is_file() {
            return Tokenizer::from_file(&candidate).map_err(|e| ModelError::file(&candidate, e));
        }
    }
    super::gguf_tokenizer::from_gguf(content, path)
}

fn load_weights<R: Read + Seek>(
    arch: &str,
    own: bool,
    context: usize,
    content: Content,
    reader: &mut R,
    device: &Device,
    path: &Path,
) -> Result<Weights> {
    let ctx = ModelError::candle(format!("loading {}", path.display()));
    if own {
        let decoder = Decoder::from_gguf(content, reader, device).map_err(ctx)?;
        return Ok(Weights::Own { decoder, slots: Vec::new(), context });
    }
    match arch {
        "llama" => quantized_llama::ModelWeights::from_gguf(content, reader, device).map(Weights::Llama).map_err(ctx),
        "qwen2" => quantized_qwen2::ModelWeights::from_gguf(content, reader, device).map(Weights::Qwen2).map_err(ctx),
        "gemma3" => {
            quantized_gemma3::ModelWeights::from_gguf(content, reader, device).map(Weights::Gemma3).map_err(ctx)
        }
        other => Err(ModelError::Unsupported {
            path: path.to_owned(),
            arch: other.to_owned(),
            supported: SUPPORTED_ARCHITECTURES.join(", "),
        }),
    }
}

/// A copy of the GGUF in memory with every slow-type tensor requantised to Q8_0.
fn requantized_gguf<R: Read + Seek>(content: &Content, reader: &mut R, path: &Path) -> Result<Vec<u8>> {
    let ctx = || ModelError::candle(format!("requantising {}", path.display()));
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    for name in names {
        let q = content.tensor(reader, name, &Device::Cpu).map_err(ctx())?;
        let q = if SLOW_TYPES.contains(&q.dtype()) && q.shape().dims().last().is_some_and(|d| d % 32 == 0) {
            let dense = q.dequantize(&Device::Cpu).map_err(ctx())?;
            QTensor::quantize(&dense, GgmlDType::Q8_0).map_err(ctx())?
        } else {
            q
        };
        tensors.push((name.clone(), q));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensor_refs).map_err(ctx())?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into() }
    }

    #[test]
    fn chatml_template() {
        let p = ChatTemplate::ChatMl.render(&[msg("system", "S"), msg("user", "U")]);
        assert_eq!(p, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn gemma_template_folds_system_into_first_user_turn() {
        let p = ChatTemplate::Gemma.render(&[
            msg("system", "S"),
            msg("user", "U"),
            msg("assistant", "A"),
            msg("user", "V"),
        ]);
        assert_eq!(
            p,
            "<start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n\
             <start_of_turn>user\nV<end_of_turn>\n<start_of_turn>model\n"
        );
    }
}
