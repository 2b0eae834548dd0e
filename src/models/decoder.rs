//! Argus's own decode path for the llama family (llama incl. SmolLM2, and qwen2) on quantised GGUF weights, in
//! candle's model shape: a [`DecoderConfig`] read from the GGUF, [`Decoder::from_gguf`], and a
//! [`Decoder::forward`] that does no I/O.
//!
//! What differs from candle-transformers' `quantized_llama` / `quantized_qwen2`:
//! - **The KV cache is the caller's** ([`KvCache`]): preallocated for the whole context and written in place
//!   (`slice_set`), never grown with `Tensor::cat`, and it can be cut back to any length
//!   ([`KvCache::truncate`]). So a prompt that shares a prefix with what the cache holds (the verdict question
//!   after its rationale, the next perspective of the same item after the shared system prompt) costs only its new
//!   tokens.
//! - **Grouped-query attention without copies**: the queries of one KV head's group are laid out as rows of one
//!   matrix and multiplied with that head's keys as they sit in the cache (a strided view), instead of repeating
//!   the keys and values for every query head and making them contiguous each step.
//! - **Fused projections in decode**: q/k/v, and gate/up, share one quantisation of their input and one parallel
//!   region (`QTensor::gemv_fused_shared_lhs`, where candle has the kernel: same type, AVX-512 VNNI).
//! - **Embeddings stay quantised**: rows are dequantised as they are looked up (the 151,936 × 1,536 Qwen2 table
//!   would take 0.9 GB as f32).
//!
//! The arithmetic is the same as candle-transformers' (a test compares greedy tokens on the real models).

use std::sync::Arc;

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_transformers::quantized_nn::RmsNorm;

/// Shapes and constants of a llama-family model, from its GGUF metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderConfig {
    /// `general.architecture`: `llama` or `qwen2`.
    pub architecture: String,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub rms_eps: f64,
    pub rope_base: f32,
    /// Rotary pairs (i, i + d/2) (NeoX, Qwen2) rather than (2i, 2i + 1) (GGUF llama).
    pub rope_neox: bool,
    pub context: usize,
}

/// The architectures [`Decoder`] runs.
pub const DECODER_ARCHITECTURES: &[&str] = &["llama", "qwen2"];

impl DecoderConfig {
    pub fn from_gguf(content: &Content) -> Result<Self> {
        let meta = |key: &str| {
            content.metadata.get(key).ok_or_else(|| candle_core::Error::Msg(format!("no {key} in the GGUF metadata")))
        };
        let architecture = meta("general.architecture")?.to_string()?.clone();
        if !DECODER_ARCHITECTURES.contains(&architecture.as_str()) {
            candle_core::bail!("architecture {architecture} is not of the llama family");
        }
        let a = architecture.as_str();
        let get = |key: &str| meta(&format!("{a}.{key}")).and_then(|v| v.to_u32()).map(|v| v as usize);
        let heads = get("attention.head_count")?;
        let hidden = get("embedding_length")?;
        let head_dim = get("rope.dimension_count").unwrap_or(hidden / heads);
        if head_dim * heads != hidden {
            candle_core::bail!("rotary dimension {head_dim} × {heads} heads is not the hidden size {hidden}");
        }
        Ok(Self {
            layers: get("block_count")?,
            heads,
            kv_heads: get("attention.head_count_kv")?,
            head_dim,
            hidden,
            rms_eps: meta(&format!("{a}.attention.layer_norm_rms_epsilon"))?.to_f32()? as f64,
            rope_base: meta(&format!("{a}.rope.freq_base")).and_then(|v| v.to_f32()).unwrap_or(10_000.0),
            rope_neox: a == "qwen2",
            context: get("context_length")?,
            architecture,
        })
    }
}

/// A weight matrix, as the quantised tensor (for the fused kernels) and as candle's matmul over it.
struct Proj {
    q: Arc<QTensor>,
    mm: QMatMul,
}

impl Proj {
    fn new(q: Arc<QTensor>) -> Result<Self> {
        Ok(Self { mm: QMatMul::from_arc(q.clone())?, q })
    }

    /// `x` (`[1, n, k]`) times this matrix. One row of a Q6_K matrix goes through the same kernel as several rows
    /// (candle multiplies one row with a compact AVX2 dot product and several with its repacked AVX-512 VNNI
    /// kernel): so a sequence decodes to the same tokens alone as in a batch, and faster.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(mut out) = super::qgemv::matmul(&[self.q.as_ref()], x)? {
            return Ok(out.remove(0));
        }
        if x.dim(1)? == 1 && self.q.dtype() == GgmlDType::Q6K && x.device().is_cpu() {
            let two = Tensor::cat(&[x, x], 1)?;
            return self.mm.forward(&two)?.narrow(1, 0, 1);
        }
        self.mm.forward(x)
    }
}

struct Layer {
    q: Proj,
    k: Proj,
    v: Proj,
    bias: Option<[Tensor; 3]>,
    o: Proj,
    gate: Proj,
    up: Proj,
    down: Proj,
    attn_norm: RmsNorm,
    ffn_norm: RmsNorm,
}

impl Layer {
    /// Queries, keys and values of the rows of `x` (`[1, n, hidden]`: the tokens of one sequence, or one token of
    /// each sequence of a batch), heads first (`[1, heads, n, d]`), queries and keys rotated by the rows' `cos` /
    /// `sin` (`[n, d / 2]`).
    fn attention_inputs(
        &self,
        x: &Tensor,
        c: &DecoderConfig,
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let n = x.dim(1)?;
        let h = self.attn_norm.forward(x)?;
        let [q, k, v] = projections3(&h, [&self.q, &self.k, &self.v])?;
        let (q, k, v) = match &self.bias {
            Some([bq, bk, bv]) => (q.broadcast_add(bq)?, k.broadcast_add(bk)?, v.broadcast_add(bv)?),
            None => (q, k, v),
        };
        let heads = |t: Tensor, count: usize| -> Result<Tensor> {
            t.reshape((1, n, count, c.head_dim))?.transpose(1, 2)?.contiguous()
        };
        let rope = |t: &Tensor| {
            if c.rope_neox {
                candle_nn::rotary_emb::rope(t, cos, sin)
            } else {
                candle_nn::rotary_emb::rope_i(t, cos, sin)
            }
        };
        Ok((rope(&heads(q, c.heads)?)?, rope(&heads(k, c.kv_heads)?)?, heads(v, c.kv_heads)?))
    }

    /// The rest of the layer once attention gave `y` (`[1, n, hidden]`): output projection and residual, then the
    /// gated MLP and its residual.
    fn after_attention(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        let x = (x + self.o.forward(y)?)?;
        let h = self.ffn_norm.forward(&x)?;
        let [gate, up] = projections2(&h, [&self.gate, &self.up])?;
        let h = (candle_nn::ops::silu(&gate)? * up)?;
        &x + self.down.forward(&h)?
    }
}

/// A loaded llama-family model. Stateless: the sequence lives in a [`KvCache`].
pub struct Decoder {
    config: DecoderConfig,
    embeddings: QMatMul,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: Proj,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// Keys and values of one sequence for every layer, preallocated for `capacity` tokens and written in place.
pub struct KvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// Tokens whose keys and values are held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every token from `len` on (the next forward writes over them).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Makes this cache hold the first `len` tokens of `other` (a prefix both sequences share, computed once).
    pub fn copy_prefix_from(&mut self, other: &KvCache, len: usize) -> Result<()> {
        let len = len.min(other.len).min(self.capacity);
        for (mine, theirs) in self.keys.iter().zip(&other.keys).chain(self.values.iter().zip(&other.values)) {
            mine.slice_set(&theirs.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
        }
        self.len = len;
        Ok(())
    }

    /// Bytes it holds.
    pub fn bytes(&self) -> usize {
        self.keys.iter().chain(&self.values).map(|t| t.elem_count() * t.dtype().size_in_bytes()).sum()
    }
}

fn qtensor(
    content: &Content,
    reader: &mut (impl std::io::Read + std::io::Seek),
    name: &str,
    device: &Device,
) -> Result<Arc<QTensor>> {
    content.tensor(reader, name, device).map(Arc::new)
}

impl Decoder {
    pub fn from_gguf<R: std::io::Read + std::io::Seek>(
        content: Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self> {
        let config = DecoderConfig::from_gguf(&content)?;
        let embeddings = qtensor(&content, reader, "token_embd.weight", device)?;
        let output = match content.tensor(reader, "output.weight", device) {
            Ok(t) => Proj::new(Arc::new(t))?,
            Err(_) => Proj::new(embeddings.clone())?, // tied embeddings (SmolLM2)
        };
        let norm = RmsNorm::from_qtensor(content.tensor(reader, "output_norm.weight", device)?, config.rms_eps)?;
        let mut layers = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let name = |part: &str| format!("blk.{i}.{part}");
            let mut t = |part: &str| qtensor(&content, reader, &name(part), device);
            let (q, k, v) = (t("attn_q.weight")?, t("attn_k.weight")?, t("attn_v.weight")?);
            let (o, gate, up, down) =
                (t("attn_output.weight")?, t("ffn_gate.weight")?, t("ffn_up.weight")?, t("ffn_down.weight")?);
            let bias = if content.tensor_infos.contains_key(&name("attn_q.bias")) {
                let mut b =
                    |part: &str| -> Result<Tensor> { content.tensor(reader, &name(part), device)?.dequantize(device) };
                Some([b("attn_q.bias")?, b("attn_k.bias")?, b("attn_v.bias")?])
            } else {
                None
            };
            let attn_norm =
                RmsNorm::from_qtensor(content.tensor(reader, &name("attn_norm.weight"), device)?, config.rms_eps)?;
            let ffn_norm =
                RmsNorm::from_qtensor(content.tensor(reader, &name("ffn_norm.weight"), device)?, config.rms_eps)?;
            layers.push(Layer {
                q: Proj::new(q)?,
                k: Proj::new(k)?,
                v: Proj::new(v)?,
                bias,
                o: Proj::new(o)?,
                gate: Proj::new(gate)?,
                up: Proj::new(up)?,
                down: Proj::new(down)?,
                attn_norm,
                ffn_norm,
            });
        }
        let (cos, sin) = rotary_tables(config.head_dim, config.rope_base, config.context, device)?;
        Ok(Self {
            config,
            embeddings: QMatMul::from_arc(embeddings)?,
            layers,
            norm,
            output,
            cos,
            sin,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Bytes of a cache for `capacity` tokens.
    pub fn cache_bytes(&self, capacity: usize) -> u64 {
        let c = &self.config;
        (2 * c.layers * c.kv_heads * c.head_dim * capacity.min(c.context) * 4) as u64
    }

    /// An empty cache for up to `capacity` tokens (at most the model's context).
    pub fn new_cache(&self, capacity: usize) -> Result<KvCache> {
        let capacity = capacity.min(self.config.context).max(1);
        let shape = (1, self.config.kv_heads, capacity, self.config.head_dim);
        let zeros = || Tensor::zeros(shape, DType::F32, &self.device);
        let keys = (0..self.config.layers).map(|_| zeros()).collect::<Result<Vec<_>>>()?;
        let values = (0..self.config.layers).map(|_| zeros()).collect::<Result<Vec<_>>>()?;
        Ok(KvCache { keys, values, len: 0, capacity })
    }

    /// Runs `tokens` after what `cache` holds, appends their keys and values to it, and returns the logits of the
    /// last token (`[vocab]`, f32).
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let n = tokens.len();
        if n == 0 {
            candle_core::bail!("no tokens to run");
        }
        let start = cache.len;
        if start + n > cache.capacity {
            candle_core::bail!("{} tokens do not fit the cache of {} tokens", start + n, cache.capacity);
        }
        let c = &self.config;
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.embeddings.embedding(&ids)?.unsqueeze(0)?; // [1, n, hidden]
        let cos = self.cos.narrow(0, start, n)?;
        let sin = self.sin.narrow(0, start, n)?;
        let total = start + n;
        let group = c.heads / c.kv_heads;
        let mask = if n > 1 { Some(causal_mask(n, start, group, &self.device)?) } else { None };
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        for (layer, (keys, values)) in self.layers.iter().zip(cache.keys.iter().zip(&cache.values)) {
            let (q, k, v) = layer.attention_inputs(&x, c, &cos, &sin)?;
            keys.slice_set(&k, 2, start)?;
            values.slice_set(&v, 2, start)?;
            let keys = keys.narrow(2, 0, total)?; // [1, kv, total, d], strided over the capacity
            let values = values.narrow(2, 0, total)?;
            // The queries of each KV head's group as rows: [1, kv, group × n, d].
            let q = q.reshape((1, c.kv_heads, group * n, c.head_dim))?;
            let scores = (q.matmul(&keys.t()?)? * scale)?;
            let scores = match &mask {
                Some(m) => scores.broadcast_add(m)?,
                None => scores,
            };
            let attention = candle_nn::ops::softmax_last_dim(&scores)?;
            let y = attention.matmul(&values)?; // [1, kv, group × n, d]
            let y = y.reshape((1, c.heads, n, c.head_dim))?.transpose(1, 2)?.reshape((1, n, c.hidden))?;
            x = layer.after_attention(&x, &y)?;
        }
        cache.len = total;
        let last = x.narrow(1, n - 1, 1)?;
        let logits = self.output.forward(&self.norm.forward(&last)?)?;
        logits.flatten_all()?.to_dtype(DType::F32)
    }
}

impl Decoder {
    /// One decoding step of several sequences at once: `tokens[i]` follows what `caches[i]` holds. The weight
    /// matrices are read once for all of them (decoding is bound by those reads); attention runs per sequence on
    /// its own cache. Returns each sequence's logits (`[vocab]`, f32).
    pub fn forward_batch(&self, tokens: &[u32], caches: &mut [&mut KvCache]) -> Result<Vec<Tensor>> {
        let b = tokens.len();
        if b == 0 || b != caches.len() {
            candle_core::bail!("{b} tokens for {} caches", caches.len());
        }
        if let [cache] = caches {
            return Ok(vec![self.forward(tokens, cache)?]);
        }
        for cache in caches.iter() {
            if cache.len + 1 > cache.capacity {
                candle_core::bail!("a sequence of {} tokens does not fit its cache", cache.len + 1);
            }
        }
        let c = &self.config;
        let group = c.heads / c.kv_heads;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let positions: Vec<u32> = caches.iter().map(|k| k.len as u32).collect();
        let positions = Tensor::new(positions.as_slice(), &self.device)?;
        let cos = self.cos.index_select(&positions, 0)?; // one row per sequence
        let sin = self.sin.index_select(&positions, 0)?;
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self.embeddings.embedding(&ids)?.unsqueeze(0)?; // [1, b, hidden]: the sequences as rows
        for (l, layer) in self.layers.iter().enumerate() {
            let (q, k, v) = layer.attention_inputs(&x, c, &cos, &sin)?; // q: [1, heads, b, d]
            let mut ys = Vec::with_capacity(b);
            for (i, cache) in caches.iter().enumerate() {
                let at = cache.len;
                cache.keys[l].slice_set(&k.narrow(2, i, 1)?.contiguous()?, 2, at)?;
                cache.values[l].slice_set(&v.narrow(2, i, 1)?.contiguous()?, 2, at)?;
                let keys = cache.keys[l].narrow(2, 0, at + 1)?;
                let values = cache.values[l].narrow(2, 0, at + 1)?;
                let qi = q.narrow(2, i, 1)?.contiguous()?.reshape((1, c.kv_heads, group, c.head_dim))?;
                let scores = (qi.matmul(&keys.t()?)? * scale)?;
                let attention = candle_nn::ops::softmax_last_dim(&scores)?;
                ys.push(attention.matmul(&values)?.reshape((1, c.heads, 1, c.head_dim))?);
            }
            let y = Tensor::cat(&ys, 2)?.transpose(1, 2)?.reshape((1, b, c.hidden))?;
            x = layer.after_attention(&x, &y)?;
        }
        for cache in caches.iter_mut() {
            cache.len += 1;
        }
        let logits = self.output.forward(&self.norm.forward(&x)?)?.squeeze(0)?.to_dtype(DType::F32)?; // [b, vocab]
        (0..b).map(|i| logits.get(i)).collect()
    }
}

/// `x` times each of `ws` (`[1, n, k]` → `[1, n, rows]`), fused into one pass where candle has the kernel.
fn projections3(x: &Tensor, ws: [&Proj; 3]) -> Result<[Tensor; 3]> {
    if let Some(out) = fused(x, &ws)? {
        let mut out = out.into_iter();
        if let (Some(a), Some(b), Some(c)) = (out.next(), out.next(), out.next()) {
            return Ok([a, b, c]);
        }
    }
    Ok([ws[0].forward(x)?, ws[1].forward(x)?, ws[2].forward(x)?])
}

fn projections2(x: &Tensor, ws: [&Proj; 2]) -> Result<[Tensor; 2]> {
    if let Some(out) = fused(x, &ws)? {
        let mut out = out.into_iter();
        if let (Some(a), Some(b)) = (out.next(), out.next()) {
            return Ok([a, b]);
        }
    }
    Ok([ws[0].forward(x)?, ws[1].forward(x)?])
}

fn fused(x: &Tensor, ws: &[&Proj]) -> Result<Option<Vec<Tensor>>> {
    let qs: Vec<&QTensor> = ws.iter().map(|w| w.q.as_ref()).collect();
    if let Some(out) = super::qgemv::matmul(&qs, x)? {
        return Ok(Some(out));
    }
    if x.dim(1)? != 1 || !x.device().is_cpu() || ws.iter().any(|w| !matches!(w.mm, QMatMul::QTensor(_))) {
        return Ok(None);
    }
    let ts: Vec<&QTensor> = ws.iter().map(|w| w.q.as_ref()).collect();
    QTensor::gemv_fused_shared_lhs(&ts, &x.contiguous()?)
}

/// Additive causal mask for `n` new tokens after `start` cached ones, repeated for the `group` query heads that
/// share a KV head: `[group × n, start + n]`, 0 where a query may look, -inf where it may not.
fn causal_mask(n: usize, start: usize, group: usize, device: &Device) -> Result<Tensor> {
    let total = start + n;
    let mut m = vec![0f32; group * n * total];
    for g in 0..group {
        for i in 0..n {
            let row = (g * n + i) * total;
            for j in start + i + 1..total {
                m[row + j] = f32::NEG_INFINITY;
            }
        }
    }
    Tensor::from_vec(m, (group * n, total), device)
}

/// Rotary angles' cosines and sines for every position of the context: `[context, head_dim / 2]` each.
fn rotary_tables(head_dim: usize, base: f32, context: usize, device: &Device) -> Result<(Tensor, Tensor)> {
    let inv: Vec<f32> = (0..head_dim).step_by(2).map(|i| 1.0 / base.powf(i as f32 / head_dim as f32)).collect();
    let inv = Tensor::new(inv.as_slice(), device)?.reshape((1, head_dim / 2))?;
    let positions = Tensor::arange(0, context as u32, device)?.to_dtype(DType::F32)?.reshape((context, 1))?;
    let angles = positions.matmul(&inv)?;
    Ok((angles.cos()?, angles.sin()?))
}
