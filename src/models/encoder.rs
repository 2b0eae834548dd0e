//! The BERT-family encoder (ARG's "small language model"): a folder with `config.json`, `tokenizer.json` (or
//! `vocab.txt`) and `model.safetensors`, run through candle-transformers' BERT layers.
//!
//! ARG trains only the last encoder layer, so the encoder is split in two: the frozen part (embeddings and all but
//! the last `top_layers` layers), whose outputs can be cached per text, and the top layers. [`Encoder::encode`] runs
//! both; [`Encoder::encode_frozen`] and [`Encoder::forward_top`] run one each. Texts are WordPiece-tokenised,
//! truncated and padded to a fixed length (ARG uses 170), and the mask says which tokens are not padding.

use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder, embedding, layer_norm};
use candle_transformers::models::bert::{Config as BertConfig, HiddenAct, PositionEmbeddingType};
use tokenizers::{PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::{ModelError, Result, check_memory};

/// How texts are cut and batched.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderOptions {
    /// Texts are truncated and padded to this many WordPiece tokens (ARG: 170).
    pub max_len: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// How many of the last encoder layers are outside the frozen part (ARG: 1).
    pub top_layers: usize,
    /// Refuse to load when the model needs more than this many bytes (default: the memory available now).
    pub memory_budget: Option<u64>,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        Self { max_len: 170, batch_size: 32, top_layers: 1, memory_budget: None }
    }
}

/// Token-level output of the encoder for a batch of texts.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// (batch, max_len, hidden), f32.
    pub hidden: Tensor,
    /// (batch, max_len), f32: 1 for a real token, 0 for padding.
    pub mask: Tensor,
}

/// Tokenised texts, ready for the model.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// (batch, max_len), u32.
    pub ids: Tensor,
    /// (batch, max_len), u32.
    pub mask: Tensor,
    /// Number of real tokens of each text (after truncation).
    pub lengths: Vec<usize>,
}

/// BERT's embeddings (word + position + token type, then LayerNorm), token types all zero.
pub struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
}

impl Embeddings {
    pub fn load(vb: VarBuilder, c: &BertConfig) -> candle_core::Result<Self> {
        Ok(Self {
            word: embedding(c.vocab_size, c.hidden_size, vb.pp("word_embeddings"))?,
            position: embedding(c.max_position_embeddings, c.hidden_size, vb.pp("position_embeddings"))?,
            token_type: embedding(c.type_vocab_size, c.hidden_size, vb.pp("token_type_embeddings"))?,
            norm: layer_norm(c.hidden_size, c.layer_norm_eps, vb.pp("LayerNorm"))?,
        })
    }

    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (_, len) = ids.dims2()?;
        let words = self.word.forward(ids)?;
        let positions = Tensor::arange(0u32, len as u32, ids.device())?;
        let positions = self.position.forward(&positions)?;
        let types = self.token_type.forward(&ids.zeros_like()?)?;
        let sum = words.broadcast_add(&positions)?.add(&types)?;
        self.norm.forward(&sum)
    }
}

/// A loaded BERT-family encoder.
pub struct Encoder {
    dir: PathBuf,
    id: String,
    config: BertConfig,
    tokenizer: Tokenizer,
    embeddings: Embeddings,
    frozen: Vec<TrainableBertLayer>,
    top: Vec<TrainableBertLayer>,
    device: Device,
    options: EncoderOptions,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("dir", &self.dir).field("id", &self.id).finish_non_exhaustive()
    }
}

/// Model types whose weights candle-transformers' BERT reads.
const SUPPORTED: &[&str] = &["bert"];

impl Encoder {
    /// Loads the encoder in folder `dir` onto `device`, checking every file first.
    pub fn load(dir: &Path, device: &Device, options: EncoderOptions) -> Result<Self> {
        if !dir.is_dir() {
            return Err(ModelError::Missing {
                path: dir.to_owned(),
                hint: "an encoder is a folder with config.json, tokenizer.json and model.safetensors; \
                       `argus models fetch minilm` gets the demo encoder"
                    .into(),
            });
        }
        let config = read_config(&dir.join("config.json"))?;
        let tokenizer = load_wordpiece(dir, &config, &options)?;
        let weights = dir.join("model.safetensors");
        let (prefix, size) = check_safetensors(&weights)?;
        check_memory(&weights, size + size / 4, options.memory_budget)?;
        if options.top_layers > config.num_hidden_layers || options.max_len > config.max_position_embeddings {
            return Err(ModelError::file(
                dir.join("config.json"),
                format!(
                    "the model has {} layers and {} positions; asked for {} top layers and length {}",
                    config.num_hidden_layers, config.max_position_embeddings, options.top_layers, options.max_len
                ),
            ));
        }
        // Safe to read the whole file: it was checked to be complete; reading (not mmap) keeps a later truncation
        // of the file from crashing the app.
        let bytes = std::fs::read(&weights).map_err(|e| ModelError::file(&weights, e))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, device)
            .map_err(ModelError::candle(weights.display()))?;
        let embeddings = Embeddings::load(vb.pp(format!("{prefix}embeddings")), &config)
            .map_err(ModelError::candle(weights.display()))?;
        let (frozen, top) = load_split_layers(vb, &format!("{prefix}encoder"), &config, options.top_layers)
            .map_err(ModelError::candle(weights.display()))?;
        let id = format!("{}#{}", dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(), size);
        Ok(Self {
            dir: dir.to_owned(),
            id,
            config,
            tokenizer,
            embeddings,
            frozen,
            top,
            device: device.clone(),
            options,
        })
    }

    /// A stable name of these weights (folder name and size), for caches and stored results.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn options(&self) -> &EncoderOptions {
        &self.options
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Tokenises `texts`, truncated and padded to `max_len`.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Tokens> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::file(self.dir.join("tokenizer.json"), e))?;
        let len = self.options.max_len;
        let mut ids = Vec::with_capacity(texts.len() * len);
        let mut mask = Vec::with_capacity(texts.len() * len);
        let mut lengths = Vec::with_capacity(texts.len());
        for e in &encodings {
            debug_assert_eq!(e.get_ids().len(), len);
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
            lengths.push(e.get_attention_mask().iter().filter(|&&m| m != 0).count());
        }
        let n = texts.len();
        let ids = Tensor::from_vec(ids, (n, len), &self.device).map_err(ModelError::candle("token ids"))?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device).map_err(ModelError::candle("mask"))?;
        Ok(Tokens { ids, mask, lengths })
    }

    /// Token-level hidden states of the last layer and the mask, for `texts` (batched internally).
    pub fn encode(&self, texts: &[&str]) -> Result<Encoded> {
        self.batched(texts, |tokens| {
            let frozen = self.frozen_forward(tokens, None)?;
            self.top_forward(&frozen, &tokens.mask, None)
        })
    }

    /// Output of the frozen part (embeddings and all but the top layers): what ARG caches per text.
    pub fn encode_frozen(&self, texts: &[&str]) -> Result<Encoded> {
        self.batched(texts, |tokens| self.frozen_forward(tokens, None))
    }

    /// Runs the top layers on cached frozen outputs.
    pub fn forward_top(&self, frozen: &Encoded) -> Result<Tensor> {
        self.top_forward(&frozen.hidden, &frozen.mask, None).map_err(ModelError::candle("encoder top layers"))
    }

    /// The real tokens' states of each text (token count, tokens × hidden values), of the frozen part or, with
    /// `full`, of the whole encoder. Each batch runs padded only to its longest text, not to `max_len`: with texts
    /// of similar lengths batched together (the encoder cache sorts them so), hardly any work goes into padding.
    /// The states of real tokens are the same as [`Encoder::encode`]'s (padding is masked out of attention).
    pub fn encode_rows(&self, texts: &[&str], full: bool) -> Result<Vec<(usize, Vec<f32>)>> {
        let d = self.config.hidden_size;
        let mut rows = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.options.batch_size.max(1)) {
            let tokens = self.tokenize(chunk)?;
            let longest = tokens.lengths.iter().copied().max().unwrap_or(0).max(1);
            let run = || -> candle_core::Result<Vec<f32>> {
                let trimmed = Tokens {
                    ids: tokens.ids.narrow(1, 0, longest)?,
                    mask: tokens.mask.narrow(1, 0, longest)?,
                    lengths: tokens.lengths.clone(),
                };
                // Padded positions are thrown away below: the position-wise work runs on the real tokens only.
                let packing = Packing::new(&trimmed.mask)?;
                let frozen = self.frozen_forward(&trimmed, packing.as_ref())?;
                let hidden = if full { self.top_forward(&frozen, &trimmed.mask, packing.as_ref())? } else { frozen };
                hidden.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
            };
            let hidden = run().map_err(ModelError::candle(format!("encoding with {}", self.dir.display())))?;
            for (j, &n) in tokens.lengths.iter().enumerate() {
                let start = j * longest * d;
                rows.push((n, hidden[start..start + n * d].to_vec()));
            }
        }
        Ok(rows)
    }

    /// Mean of the token states over real tokens: one vector per text (sentence-transformers' pooling).
    pub fn mean_pool(encoded: &Encoded) -> Result<Tensor> {
        let pool = || -> candle_core::Result<Tensor> {
            let mask = encoded.mask.unsqueeze(D::Minus1)?;
            let sum = encoded.hidden.broadcast_mul(&mask)?.sum(1)?;
            let count = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
            sum.broadcast_div(&count)
        };
        pool().map_err(ModelError::candle("mean pooling"))
    }

    fn batched(&self, texts: &[&str], forward: impl Fn(&Tokens) -> candle_core::Result<Tensor>) -> Result<Encoded> {
        let mut hidden = Vec::new();
        let mut masks = Vec::new();
        for chunk in texts.chunks(self.options.batch_size.max(1)) {
            let tokens = self.tokenize(chunk)?;
            hidden.push(forward(&tokens).map_err(ModelError::candle(format!("encoding with {}", self.dir.display())))?);
            masks.push(tokens.mask.to_dtype(DType::F32).map_err(ModelError::candle("mask"))?);
        }
        if hidden.is_empty() {
            let (l, d) = (self.options.max_len, self.config.hidden_size);
            let hidden =
                Tensor::zeros((0, l, d), DType::F32, &self.device).map_err(ModelError::candle("empty batch"))?;
            let mask = Tensor::zeros((0, l), DType::F32, &self.device).map_err(ModelError::candle("empty batch"))?;
            return Ok(Encoded { hidden, mask });
        }
        let hidden = Tensor::cat(&hidden, 0).map_err(ModelError::candle("joining batches"))?;
        let mask = Tensor::cat(&masks, 0).map_err(ModelError::candle("joining batches"))?;
        Ok(Encoded { hidden, mask })
    }

    /// The frozen part; with `packing`, position-wise work on real tokens only (padded positions come out zero).
    fn frozen_forward(&self, tokens: &Tokens, packing: Option<&Packing>) -> candle_core::Result<Tensor> {
        let mut x = self.embeddings.forward(&tokens.ids)?;
        let mask = tokens.mask.to_dtype(DType::F32)?;
        for layer in &self.frozen {
            x = layer.forward_packed(&x, &mask, None, packing)?;
        }
        Ok(x)
    }

    /// The top layers, as [`Self::frozen_forward`].
    fn top_forward(&self, hidden: &Tensor, mask: &Tensor, packing: Option<&Packing>) -> candle_core::Result<Tensor> {
        let mask = mask.to_dtype(DType::F32)?;
        let mut x = hidden.clone();
        for layer in &self.top {
            x = layer.forward_packed(&x, &mask, None, packing)?;
        }
        Ok(x)
    }
}

/// A whole BERT under one name prefix, split into its frozen part and its top layers (the same layers, the top ones
/// trained): what ARG's encoders are.
///
/// Loaded with [`BertStack::load_top`], only the top layers exist: training from cached frozen outputs needs
/// nothing else.
pub struct BertStack {
    pub embeddings: Option<Embeddings>,
    pub frozen: Option<Vec<TrainableBertLayer>>,
    pub top: Vec<TrainableBertLayer>,
    /// Run the position-wise parts of each layer on the real tokens only ([`Packing`]). The states of real tokens
    /// are the same; those of padded positions come out as zeros, so only a model that ignores padding (ARG's
    /// masked mode, not the paper-quirks mode, which averages over padded positions) may set it.
    pub pack: bool,
}

impl BertStack {
    /// Loads `{prefix}.embeddings.*` and `{prefix}.encoder.layer.*` from the root VarBuilder `root`.
    pub fn load(root: VarBuilder, prefix: &str, config: &BertConfig, top: usize) -> candle_core::Result<Self> {
        let n = config.num_hidden_layers;
        let mut stack = Self::load_top(root.clone(), prefix, config, top)?;
        stack.embeddings = Some(Embeddings::load(root.pp(format!("{prefix}.embeddings")), config)?);
        let frozen = (0..n - top)
            .map(|i| TrainableBertLayer::load(root.pp(format!("{prefix}.encoder.layer.{i}")), config))
            .collect::<candle_core::Result<Vec<_>>>()?;
        stack.frozen = Some(frozen);
        Ok(stack)
    }

    /// Loads only the top `top` layers (`{prefix}.encoder.layer.{n-top..n}`).
    pub fn load_top(root: VarBuilder, prefix: &str, config: &BertConfig, top: usize) -> candle_core::Result<Self> {
        let n = config.num_hidden_layers;
        if top > n {
            candle_core::bail!("{top} top layers asked of a BERT with {n}");
        }
        let top = (n - top..n)
            .map(|i| TrainableBertLayer::load(root.pp(format!("{prefix}.encoder.layer.{i}")), config))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self { embeddings: None, frozen: None, top, pack: false })
    }

    /// Output of the frozen part for token ids and their mask (1 = token).
    pub fn forward_frozen(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (Some(embeddings), Some(frozen)) = (&self.embeddings, &self.frozen) else {
            candle_core::bail!("this encoder was loaded without its frozen layers (it reads cached outputs)");
        };
        let mask = mask.to_dtype(DType::F32)?;
        let packing = if self.pack { Packing::new(&mask)? } else { None };
        let mut x = embeddings.forward(ids)?;
        for layer in frozen {
            x = layer.forward_packed(&x, &mask, None, packing.as_ref())?;
        }
        Ok(x)
    }

    /// The top layers on frozen outputs.
    pub fn forward_top(&self, frozen: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_top_t(frozen, mask, None)
    }

    /// The top layers on frozen outputs; with `dropout`, in training mode.
    pub fn forward_top_t(
        &self,
        frozen: &Tensor,
        mask: &Tensor,
        dropout: Option<&Dropout>,
    ) -> candle_core::Result<Tensor> {
        let mask = mask.to_dtype(DType::F32)?;
        let packing = if self.pack { Packing::new(&mask)? } else { None };
        let mut x = frozen.clone();
        for layer in &self.top {
            x = layer.forward_packed(&x, &mask, dropout, packing.as_ref())?;
        }
        Ok(x)
    }

    /// The last hidden states.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_top(&self.forward_frozen(ids, mask)?, mask)
    }
}

/// Seeded dropout for training: the masks come from this generator, so a training run with the same seed makes the
/// same choices (candle's own dropout draws from an unseeded generator).
///
/// The generator is ChaCha12, the algorithm of `rand`'s `StdRng` (the masks are those `StdRng` would give): its
/// stream can be entered at any word, so a mask is drawn in parallel chunks, each from its own place in the stream.
pub struct Dropout {
    rng: std::cell::RefCell<rand_chacha::ChaCha12Rng>,
}

/// Words of the random stream (one per element) drawn by one parallel task.
const DROPOUT_CHUNK: usize = 1 << 15;

impl Dropout {
    pub fn new(seed: u64) -> Self {
        use rand::SeedableRng;
        Self { rng: std::cell::RefCell::new(rand_chacha::ChaCha12Rng::seed_from_u64(seed)) }
    }

    /// Zeroes each element with probability `p` and scales the rest by 1 / (1 - p).
    pub fn apply(&self, x: &Tensor, p: f32) -> candle_core::Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = self.draw(x.elem_count(), p);
        super::kernels::dropout_with_mask(x, keep, (1.0 / (1.0 - p as f64)) as f32)
    }

    /// `n` keep (true) or drop decisions, each dropping with probability `p`, from the seeded stream.
    fn draw(&self, n: usize, p: f32) -> Vec<bool> {
        use rand::Rng;
        use rayon::prelude::*;
        let threshold = (p as f64 * u32::MAX as f64) as u32;
        let mut rng = self.rng.borrow_mut();
        let start = rng.get_word_pos();
        let base = rng.clone();
        let mut keep = vec![false; n];
        keep.par_chunks_mut(DROPOUT_CHUNK).enumerate().for_each(|(k, keep)| {
            let mut rng = base.clone();
            rng.set_word_pos(start + (k * DROPOUT_CHUNK) as u128);
            let mut bits = [0u32; 1024];
            for keep in keep.chunks_mut(bits.len()) {
                let bits = &mut bits[..keep.len()];
                rng.fill(bits);
                for (k, b) in keep.iter_mut().zip(bits.iter()) {
                    *k = *b >= threshold;
                }
            }
        });
        rng.set_word_pos(start + n as u128);
        keep
    }

    /// As [`Self::apply`] on the packed (real tokens, D) states of `packing`'s batch, with the mask the padded
    /// (B, L, D) states would get: the random stream, and so training with a seed, is the same packed or not.
    pub fn apply_packed(&self, x: &Tensor, p: f32, packing: Option<&Packing>) -> candle_core::Result<Tensor> {
        let Some(packing) = packing else { return self.apply(x, p) };
        if p <= 0.0 {
            return Ok(x.clone());
        }
        let d = x.dim(D::Minus1)?;
        let all = self.draw(packing.batch * packing.len * d, p);
        let keep = packing.rows.iter().flat_map(|&r| &all[r as usize * d..(r as usize + 1) * d]).copied().collect();
        super::kernels::dropout_with_mask(x, keep, (1.0 / (1.0 - p as f64)) as f32)
    }
}

/// Applies `dropout` when training.
pub fn maybe_dropout(x: Tensor, dropout: Option<&Dropout>, p: f32) -> candle_core::Result<Tensor> {
    match dropout {
        Some(d) => d.apply(&x, p),
        None => Ok(x),
    }
}

/// One BERT layer from differentiable operations (candle's fused LayerNorm kernel has no backward pass), same
/// weights and names as candle-transformers' and Hugging Face's.
pub struct TrainableBertLayer {
    query: candle_nn::Linear,
    key: candle_nn::Linear,
    value: candle_nn::Linear,
    attention_out: candle_nn::Linear,
    attention_norm: (Tensor, Tensor),
    intermediate: candle_nn::Linear,
    output: candle_nn::Linear,
    output_norm: (Tensor, Tensor),
    heads: usize,
    eps: f64,
    dropout: f32,
}

impl TrainableBertLayer {
    pub fn load(vb: VarBuilder, c: &BertConfig) -> candle_core::Result<Self> {
        use candle_nn::linear;
        if c.hidden_act != HiddenAct::Gelu {
            candle_core::bail!("BERT layers with {:?} activations are not supported (exact GELU only)", c.hidden_act);
        }
        let (h, i) = (c.hidden_size, c.intermediate_size);
        let norm = |vb: VarBuilder| -> candle_core::Result<(Tensor, Tensor)> {
            Ok((
                vb.get_with_hints(h, "weight", candle_nn::Init::Const(1.0))?,
                vb.get_with_hints(h, "bias", candle_nn::Init::Const(0.0))?,
            ))
        };
        Ok(Self {
            query: linear(h, h, vb.pp("attention.self.query"))?,
            key: linear(h, h, vb.pp("attention.self.key"))?,
            value: linear(h, h, vb.pp("attention.self.value"))?,
            attention_out: linear(h, h, vb.pp("attention.output.dense"))?,
            attention_norm: norm(vb.pp("attention.output.LayerNorm"))?,
            intermediate: linear(h, i, vb.pp("intermediate.dense"))?,
            output: linear(i, h, vb.pp("output.dense"))?,
            output_norm: norm(vb.pp("output.LayerNorm"))?,
            heads: c.num_attention_heads,
            eps: c.layer_norm_eps,
            dropout: c.hidden_dropout_prob as f32,
        })
    }

    /// `x` (B, L, D), `mask` (B, L): 1 for a token, 0 for padding.
    pub fn forward(&self, x: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_t(x, mask, None)
    }

    /// As [`Self::forward`]; with `dropout`, BERT's training-mode dropout (attention probabilities and both
    /// residual branches). Linear layers run as one matrix product over every token, LayerNorm, the masked softmax
    /// and GELU as fused kernels with their own backward passes ([`super::kernels`]).
    pub fn forward_t(&self, x: &Tensor, mask: &Tensor, dropout: Option<&Dropout>) -> candle_core::Result<Tensor> {
        self.forward_packed(x, mask, dropout, None)
    }

    /// As [`Self::forward_t`]; with `packing`, the linear layers, LayerNorms, GELU and dropout run on the real
    /// tokens only (attention itself stays padded and masked), and padded positions come out as zeros.
    pub fn forward_packed(
        &self,
        x: &Tensor,
        mask: &Tensor,
        dropout: Option<&Dropout>,
        packing: Option<&Packing>,
    ) -> candle_core::Result<Tensor> {
        use super::kernels::{MaskFill, attention_softmax, gelu_erf, layer_norm, linear};
        let (b, l, d) = x.dims3()?;
        let dh = d / self.heads;
        let pack = |t: &Tensor| match packing {
            Some(p) => p.pack(t),
            None => Ok(t.clone()),
        };
        let unpack = |t: Tensor| match packing {
            Some(p) => p.unpack(&t),
            None => Ok(t),
        };
        let split = |t: Tensor| unpack(t)?.reshape((b, l, self.heads, dh))?.transpose(1, 2)?.contiguous();
        let xp = pack(x)?;
        let q = split(linear(&self.query, &xp)?)?;
        let k = split(linear(&self.key, &xp)?)?;
        let v = split(linear(&self.value, &xp)?)?;
        let scores = q.matmul(&k.t()?.contiguous()?)?;
        let probs = attention_softmax(&scores, Some(mask), 1.0 / (dh as f64).sqrt(), MaskFill::Additive)?;
        let probs = maybe_dropout(probs, dropout, self.dropout)?;
        let context = pack(&probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, l, d))?)?;
        let drop = |t: Tensor| match dropout {
            Some(d) => d.apply_packed(&t, self.dropout, packing),
            None => Ok(t),
        };
        let attention_out = drop(linear(&self.attention_out, &context)?)?;
        let (w, bias) = &self.attention_norm;
        let attended = layer_norm(&(attention_out + xp)?, w, bias, self.eps)?;
        let hidden = gelu_erf(&linear(&self.intermediate, &attended)?)?;
        let output = drop(linear(&self.output, &hidden)?)?;
        let (w, bias) = &self.output_norm;
        unpack(layer_norm(&(output + &attended)?, w, bias, self.eps)?)
    }
}

/// The real tokens of a padded (B, L) batch: which rows of the flattened (B·L, D) states are real (`gather`), and
/// for every position its row among them, padding pointing at an all-zero row after the last (`scatter`).
pub struct Packing {
    rows: Vec<u32>,
    gather: Tensor,
    scatter: Tensor,
    real: usize,
    batch: usize,
    len: usize,
}

impl Packing {
    /// From a (B, L) mask (1 = token); `None` when nothing is padding.
    pub fn new(mask: &Tensor) -> candle_core::Result<Option<Self>> {
        let (batch, len) = mask.dims2()?;
        let values = mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let gather: Vec<u32> = (0..values.len() as u32).filter(|&i| values[i as usize] != 0.0).collect();
        let real = gather.len();
        if real == values.len() {
            return Ok(None);
        }
        let mut scatter = vec![real as u32; values.len()];
        for (row, &i) in gather.iter().enumerate() {
            scatter[i as usize] = row as u32;
        }
        let device = mask.device();
        Ok(Some(Self {
            gather: Tensor::from_vec(gather.clone(), real, device)?,
            rows: gather,
            scatter: Tensor::from_vec(scatter, batch * len, device)?,
            real,
            batch,
            len,
        }))
    }

    /// (B, L, D) -> (real tokens, D).
    pub fn pack(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let d = x.dim(D::Minus1)?;
        x.reshape((self.batch * self.len, d))?.index_select(&self.gather, 0)
    }

    /// (real tokens, D) -> (B, L, D), zeros at padded positions.
    pub fn unpack(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let d = x.dim(D::Minus1)?;
        debug_assert_eq!(x.dim(0)?, self.real);
        let zero = Tensor::zeros((1, d), x.dtype(), x.device())?;
        Tensor::cat(&[x, &zero], 0)?.index_select(&self.scatter, 0)?.reshape((self.batch, self.len, d))
    }
}

/// LayerNorm over the last dimension, differentiable (the fused kernel on the CPU).
pub fn differentiable_layer_norm(
    x: &Tensor,
    (weight, bias): (&Tensor, &Tensor),
    eps: f64,
) -> candle_core::Result<Tensor> {
    super::kernels::layer_norm(x, weight, bias, eps)
}

/// Loads the encoder layers under `{path}.layer.*` of the root VarBuilder `root` as two stacks: `0..n-top`
/// (frozen) and the last `top`; each layer with one matrix product per linear layer over every token and fused
/// softmax, LayerNorm and GELU kernels (candle-transformers' layers run each linear layer as one small product per
/// text against a broadcast weight).
pub fn load_split_layers(
    root: VarBuilder,
    path: &str,
    config: &BertConfig,
    top: usize,
) -> candle_core::Result<(Vec<TrainableBertLayer>, Vec<TrainableBertLayer>)> {
    let n = config.num_hidden_layers;
    let mut frozen = (0..n)
        .map(|i| TrainableBertLayer::load(root.pp(format!("{path}.layer.{i}")), config))
        .collect::<candle_core::Result<Vec<_>>>()?;
    let upper = frozen.split_off(n - top);
    Ok((frozen, upper))
}

fn read_config(path: &Path) -> Result<BertConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            ModelError::Missing { path: path.to_owned(), hint: "an encoder folder needs its config.json".into() }
        }
        _ => ModelError::file(path, e),
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::file(path, e))?;
    let model_type = value.get("model_type").and_then(|v| v.as_str()).unwrap_or("").to_owned();
    if !SUPPORTED.contains(&model_type.as_str()) {
        return Err(ModelError::Unsupported {
            path: path.to_owned(),
            arch: if model_type.is_empty() { "(no model_type)".into() } else { model_type },
            supported: SUPPORTED.join(", "),
        });
    }
    let config: BertConfig = serde_json::from_value(value).map_err(|e| ModelError::file(path, e))?;
    if config.position_embedding_type != PositionEmbeddingType::Absolute {
        return Err(ModelError::Unsupported {
            path: path.to_owned(),
            arch: "bert with non-absolute position embeddings".into(),
            supported: "bert with absolute positions".into(),
        });
    }
    Ok(config)
}

/// The WordPiece tokenizer: `tokenizer.json`, else one built from `vocab.txt` (BERT's uncased/cased rules from the
/// config), with truncation and fixed padding to `max_len`.
fn load_wordpiece(dir: &Path, config: &BertConfig, options: &EncoderOptions) -> Result<Tokenizer> {
    let json = dir.join("tokenizer.json");
    let vocab = dir.join("vocab.txt");
    let mut tokenizer = if json.is_file() {
        Tokenizer::from_file(&json).map_err(|e| ModelError::file(&json, e))?
    } else if vocab.is_file() {
        tokenizer_from_vocab(&vocab, dir)?
    } else {
        return Err(ModelError::Missing {
            path: json,
            hint: "the encoder folder has neither tokenizer.json nor vocab.txt".into(),
        });
    };
    let pad_id = config.pad_token_id as u32;
    let pad_token = tokenizer.id_to_token(pad_id).unwrap_or_else(|| "[PAD]".to_owned());
    tokenizer.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::Fixed(options.max_len),
        direction: PaddingDirection::Right,
        pad_to_multiple_of: None,
        pad_id,
        pad_type_id: 0,
        pad_token,
    }));
    tokenizer
        .with_truncation(Some(TruncationParams { max_length: options.max_len, ..Default::default() }))
        .map_err(|e| ModelError::file(dir.join("tokenizer.json"), e))?;
    Ok(tokenizer)
}

fn tokenizer_from_vocab(vocab: &Path, dir: &Path) -> Result<Tokenizer> {
    use tokenizers::Model as _;
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::normalizers::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::bert::BertProcessing;
    let lowercase = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("do_lower_case").and_then(|b| b.as_bool()))
        .unwrap_or(true);
    let model = WordPiece::from_file(&vocab.to_string_lossy())
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| ModelError::file(vocab, e))?;
    let cls = model.get_vocab().get("[CLS]").copied();
    let sep = model.get_vocab().get("[SEP]").copied();
    let (Some(cls), Some(sep)) = (cls, sep) else {
        return Err(ModelError::file(vocab, "no [CLS] or [SEP] token in the vocabulary"));
    };
    let mut tokenizer = Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
        .map_err(|e| ModelError::file(vocab, e))?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
    Ok(tokenizer)
}

/// Checks that a safetensors file is complete (header parses, every tensor's bytes are in the file) and returns
/// the name prefix of its BERT tensors (`""` or `"bert."`) and the file's size.
pub fn check_safetensors(path: &Path) -> Result<(String, u64)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            ModelError::Missing { path: path.to_owned(), hint: "an encoder folder needs model.safetensors".into() }
        }
        _ => ModelError::file(path, e),
    })?;
    let size = file.metadata().map_err(|e| ModelError::file(path, e))?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| ModelError::file(path, format!("truncated: {size} bytes, not even a safetensors header")))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > 100 << 20 || 8 + header_len > size {
        return Err(ModelError::file(
            path,
            format!("truncated or not a safetensors file: header of {header_len} bytes in a file of {size} bytes"),
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(|e| ModelError::file(path, e))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| ModelError::file(path, format!("bad safetensors header: {e}")))?;
    let data_end =
        header.values().filter_map(|t| t.get("data_offsets")?.as_array()?.get(1)?.as_u64()).max().unwrap_or(0);
    let expected = 8 + header_len + data_end;
    if size < expected {
        return Err(ModelError::file(
            path,
            format!("truncated: the header describes {expected} bytes but the file has {size} (download it again)"),
        ));
    }
    let prefix = if header.contains_key("embeddings.word_embeddings.weight") {
        String::new()
    } else if header.contains_key("bert.embeddings.word_embeddings.weight") {
        "bert.".to_owned()
    } else {
        return Err(ModelError::Unsupported {
            path: path.to_owned(),
            arch: "weights without BERT embeddings (embeddings.word_embeddings.weight)".into(),
            supported: SUPPORTED.join(", "),
        });
    };
    Ok((prefix, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_dropout_masks_are_the_seeded_stdrng_stream() {
        use rand::{Rng, SeedableRng};
        let dropout = Dropout::new(7);
        let mut reference = rand::rngs::StdRng::seed_from_u64(7);
        let p = 0.3f32;
        let threshold = (p as f64 * u32::MAX as f64) as u32;
        // Sizes across several parallel chunks, a ragged one, and one smaller than a chunk, drawn in turn.
        for n in [3 * DROPOUT_CHUNK + 17, 5, 1000] {
            let mut bits = vec![0u32; n];
            reference.fill(&mut bits[..]);
            let expected: Vec<bool> = bits.iter().map(|&b| b >= threshold).collect();
            assert_eq!(dropout.draw(n, p), expected, "mask of {n}");
        }
    }
}
