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
//! - **Decoding on Argus's kernels** ([`super::qgemv`]): the weights as the file holds them, q/k/v and gate/up
//!   sharing one quantisation of their input and one parallel region, and between the products a step on plain
//!   rows with no tensor operations ([`Decoder::step`]). Prompts run on candle's tensor operations and tiled
//!   kernels (Argus's where candle has none for a matrix). Off the CPU, or without AVX-512, candle's throughout
//!   (`QTensor::gemv_fused_shared_lhs` where it has the fused kernel).
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
    /// The weights for Argus's kernels (and candle's tensor).
    w: super::qgemv::Matrix,
    mm: QMatMul,
}

impl Proj {
    fn new(q: Arc<QTensor>) -> Result<Self> {
        Ok(Self { mm: QMatMul::from_arc(q.clone())?, w: super::qgemv::Matrix::new(q)? })
    }

    /// `x` (`[1, n, k]`) times this matrix: Argus's kernel where it applies; else candle's, with one row of a
    /// Q6_K matrix sent through the same kernel as several rows (candle multiplies one row with a compact AVX2 dot
    /// product and several with its repacked AVX-512 VNNI kernel), so that a sequence decodes to the same tokens
    /// alone as in a batch.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(mut out) = super::qgemv::matmul(&[&self.w], x)? {
            return Ok(out.remove(0));
        }
        if x.dim(1)? == 1 && self.w.qtensor().dtype() == GgmlDType::Q6K && x.device().is_cpu() {
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
    /// The same norms' weights and the biases as plain values, for [`Decoder::step`].
    plain: PlainLayer,
}

struct PlainLayer {
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    bias: Option<[Vec<f32>; 3]>,
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
    /// For [`Decoder::step`]: the final norm's weights and the rotary tables (`[context, head_dim / 2]`) as plain
    /// values.
    plain_norm: Vec<f32>,
    plain_cos: Vec<f32>,
    plain_sin: Vec<f32>,
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
        let norm_q = content.tensor(reader, "output_norm.weight", device)?;
        let plain_norm = norm_q.dequantize(device)?.to_vec1()?;
        let norm = RmsNorm::from_qtensor(norm_q, config.rms_eps)?;
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
            let attn_norm_q = content.tensor(reader, &name("attn_norm.weight"), device)?;
            let ffn_norm_q = content.tensor(reader, &name("ffn_norm.weight"), device)?;
            let plain = PlainLayer {
                attn_norm: attn_norm_q.dequantize(device)?.to_vec1()?,
                ffn_norm: ffn_norm_q.dequantize(device)?.to_vec1()?,
                bias: match &bias {
                    Some([q, k, v]) => Some([q.to_vec1()?, k.to_vec1()?, v.to_vec1()?]),
                    None => None,
                },
            };
            let attn_norm = RmsNorm::from_qtensor(attn_norm_q, config.rms_eps)?;
            let ffn_norm = RmsNorm::from_qtensor(ffn_norm_q, config.rms_eps)?;
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
                plain,
            });
        }
        let (cos, sin) = rotary_tables(config.head_dim, config.rope_base, config.context, device)?;
        let (plain_cos, plain_sin) = (cos.flatten_all()?.to_vec1()?, sin.flatten_all()?.to_vec1()?);
        Ok(Self {
            plain_norm,
            plain_cos,
            plain_sin,
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
    /// One decoding step of one or several sequences: `tokens[i]` follows what `caches[i]` holds. The weight
    /// matrices are read once for all of them (decoding is bound by those reads); attention runs per sequence on
    /// its own cache. Returns each sequence's logits (`[vocab]`, f32). On the CPU this is [`Decoder::step`], which
    /// also runs prompts' last tokens (alone or several prompts' together; the tokens before them go through
    /// [`Decoder::forward`]), so a prompt's last token is computed the same way whether or not a cached prefix
    /// spared the tokens before it, and whatever the batch.
    pub fn forward_batch(&self, tokens: &[u32], caches: &mut [&mut KvCache]) -> Result<Vec<Tensor>> {
        let b = tokens.len();
        if b == 0 || b != caches.len() {
            candle_core::bail!("{b} tokens for {} caches", caches.len());
        }
        if let Some(logits) = self.step(tokens, caches)? {
            return Ok(logits);
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

impl Decoder {
    /// One decoding step of one token per sequence on the CPU without candle's tensor operations: the weights go
    /// through Argus's kernels (`qgemv`, else candle's matrix product) and everything between them (norms, rotary
    /// embedding, attention over the cache, SiLU, residuals) runs on plain rows, the attention's heads in
    /// parallel. A decoding step is otherwise a few hundred small tensor operations, each with its allocation and
    /// dispatch: on SmolLM2-135M they took longer than the weights' reads. Each sequence's row goes through the same
    /// operations whatever the batch, so its tokens are the same alone and in a batch. `None` off the CPU (the
    /// tensor path runs instead).
    fn step(&self, tokens: &[u32], caches: &mut [&mut KvCache]) -> Result<Option<Vec<Tensor>>> {
        let m = tokens.len();
        if !self.device.is_cpu() || m == 0 || m != caches.len() {
            return Ok(None);
        }
        if let Some(full) = caches.iter().find(|k| k.len + 1 > k.capacity) {
            candle_core::bail!("a sequence of {} tokens does not fit its cache", full.len + 1);
        }
        let c = &self.config;
        let (hidden, d, heads, kv_heads) = (c.hidden, c.head_dim, c.heads, c.kv_heads);
        let (group, half) = (heads / kv_heads, d / 2);
        let scale = 1.0 / (d as f32).sqrt();
        let eps = c.rms_eps as f32;
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x: Vec<f32> = self.embeddings.embedding(&ids)?.flatten_all()?.to_vec1()?; // m × hidden
        let positions: Vec<usize> = caches.iter().map(|k| k.len).collect();
        let mut h = vec![0f32; m * hidden];
        let mut y = vec![0f32; m * heads * d];
        for (l, layer) in self.layers.iter().enumerate() {
            rms_norm_rows(&x, &layer.plain.attn_norm, eps, &mut h);
            let mut qkv = self.project(&[&layer.q, &layer.k, &layer.v], &h, m)?.into_iter();
            let (Some(mut q), Some(mut k), Some(mut v)) = (qkv.next(), qkv.next(), qkv.next()) else {
                candle_core::bail!("three projections expected");
            };
            if let Some([bq, bk, bv]) = &layer.plain.bias {
                for (rows, b) in [(&mut q, bq), (&mut k, bk), (&mut v, bv)] {
                    for row in rows.chunks_exact_mut(b.len()) {
                        row.iter_mut().zip(b).for_each(|(r, b)| *r += b);
                    }
                }
            }
            for (i, &pos) in positions.iter().enumerate() {
                let (cos, sin) = (&self.plain_cos[pos * half..][..half], &self.plain_sin[pos * half..][..half]);
                for head in q[i * heads * d..][..heads * d]
                    .chunks_exact_mut(d)
                    .chain(k[i * kv_heads * d..][..kv_heads * d].chunks_exact_mut(d))
                {
                    rotate(head, cos, sin, c.rope_neox);
                }
                let cache = &mut *caches[i];
                write_row(&cache.keys[l], &k[i * kv_heads * d..][..kv_heads * d], pos, cache.capacity, d)?;
                write_row(&cache.values[l], &v[i * kv_heads * d..][..kv_heads * d], pos, cache.capacity, d)?;
            }
            // Attention: one task per (sequence, query head), on the cache as it sits.
            let guards: Vec<_> =
                caches.iter().map(|k| (k.keys[l].storage_and_layout(), k.values[l].storage_and_layout())).collect();
            let mut views = Vec::with_capacity(m);
            for ((ks, kl), (vs, vl)) in &guards {
                let (
                    candle_core::Storage::Cpu(candle_core::CpuStorage::F32(kv)),
                    candle_core::Storage::Cpu(candle_core::CpuStorage::F32(vv)),
                ) = (&**ks, &**vs)
                else {
                    return Ok(None);
                };
                views.push((&kv[kl.start_offset()..], &vv[vl.start_offset()..]));
            }
            let capacity: Vec<usize> = caches.iter().map(|k| k.capacity).collect();
            let work = positions.iter().sum::<usize>() * heads * d;
            super::qgemv::par_rows(&mut y, d, work >= 1 << 16, |task, yh| {
                let (i, head) = (task / heads, task % heads);
                let (keys, values) = views[i];
                let base = (head / group) * capacity[i] * d;
                let total = positions[i] + 1;
                let qh = &q[(i * heads + head) * d..][..d];
                let mut scores: Vec<f32> =
                    (0..total).map(|t| super::qgemv::dot(qh, &keys[base + t * d..][..d]) * scale).collect();
                super::kernels::softmax_row(&mut scores);
                yh.fill(0.0);
                for (t, &p) in scores.iter().enumerate() {
                    super::qgemv::axpy(yh, p, &values[base + t * d..][..d]);
                }
            });
            drop(views);
            drop(guards);
            let o = self.project(&[&layer.o], &y, m)?.remove(0);
            x.iter_mut().zip(&o).for_each(|(x, o)| *x += o);
            rms_norm_rows(&x, &layer.plain.ffn_norm, eps, &mut h);
            let mut gu = self.project(&[&layer.gate, &layer.up], &h, m)?.into_iter();
            let (Some(mut gate), Some(up)) = (gu.next(), gu.next()) else {
                candle_core::bail!("two projections expected");
            };
            gate.iter_mut().zip(&up).for_each(|(g, u)| *g = *g / (1.0 + (-*g).exp()) * u);
            let down = self.project(&[&layer.down], &gate, m)?.remove(0);
            x.iter_mut().zip(&down).for_each(|(x, o)| *x += o);
        }
        for cache in caches.iter_mut() {
            cache.len += 1;
        }
        rms_norm_rows(&x, &self.plain_norm, eps, &mut h);
        let logits = self.project(&[&self.output], &h, m)?.remove(0);
        let vocab = logits.len() / m;
        logits.chunks_exact(vocab).map(|row| Tensor::new(row, &self.device)).collect::<Result<Vec<_>>>().map(Some)
    }

    /// `m` rows of `x` times each of `ws`: Argus's kernels where they apply, else candle's matrix product.
    fn project(&self, ws: &[&Proj], x: &[f32], m: usize) -> Result<Vec<Vec<f32>>> {
        let qs: Vec<&super::qgemv::Matrix> = ws.iter().map(|w| &w.w).collect();
        if let Some(out) = super::qgemv::matmul_rows(&qs, x, m)? {
            return Ok(out);
        }
        let t = Tensor::from_slice(x, (1, m, x.len() / m), &self.device)?;
        ws.iter().map(|w| w.forward(&t)?.flatten_all()?.to_vec1()).collect()
    }
}

/// RMS norm of each row of `x` (rows of `w.len()`) into `out`, as candle's (`x / sqrt(mean(x²) + eps) · w`).
fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    for (row, o) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        let mean = row.iter().map(|v| v * v).sum::<f32>() / w.len() as f32;
        let inv = 1.0 / (mean + eps).sqrt();
        for ((o, v), w) in o.iter_mut().zip(row).zip(w) {
            *o = v * inv * w;
        }
    }
}

/// Rotary embedding of one head in place: pairs (i, i + d/2) (NeoX) or (2i, 2i + 1).
fn rotate(head: &mut [f32], cos: &[f32], sin: &[f32], neox: bool) {
    let half = cos.len();
    for i in 0..half {
        let (a, b) = if neox { (i, i + half) } else { (2 * i, 2 * i + 1) };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0 * cos[i] - x1 * sin[i];
        head[b] = x0 * sin[i] + x1 * cos[i];
    }
}

/// Writes one token's keys or values (`kv_heads × d`) at position `at` of a cache tensor (`[1, kv_heads, capacity,
/// d]`), in place.
fn write_row(cache: &Tensor, row: &[f32], at: usize, capacity: usize, d: usize) -> Result<()> {
    struct WriteRow<'a> {
        row: &'a [f32],
        at: usize,
        capacity: usize,
        d: usize,
    }
    impl candle_core::InplaceOp1 for WriteRow<'_> {
        fn name(&self) -> &'static str {
            "kv-write-row"
        }
        fn cpu_fwd(&self, storage: &mut candle_core::CpuStorage, layout: &candle_core::Layout) -> Result<()> {
            let candle_core::CpuStorage::F32(values) = storage else { candle_core::bail!("the cache is f32") };
            let values = &mut values[layout.start_offset()..];
            for (head, src) in self.row.chunks_exact(self.d).enumerate() {
                values[(head * self.capacity + self.at) * self.d..][..self.d].copy_from_slice(src);
            }
            Ok(())
        }
    }
    cache.inplace_op1(&WriteRow { row, at, capacity, d })
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
    let qs: Vec<&super::qgemv::Matrix> = ws.iter().map(|w| &w.w).collect();
    if let Some(out) = super::qgemv::matmul(&qs, x)? {
        return Ok(Some(out));
    }
    if x.dim(1)? != 1 || !x.device().is_cpu() || ws.iter().any(|w| !matches!(w.mm, QMatMul::QTensor(_))) {
        return Ok(None);
    }
    let ts: Vec<&QTensor> = ws.iter().map(|w| w.w.qtensor()).collect();
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
