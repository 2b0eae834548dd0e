//! ARG (adaptive rationale guidance, Hu et al., AAAI 2024) in candle, in candle's model shape: [`ArgConfig`],
//! [`Arg::load`] from a `VarBuilder`, [`Arg::forward`], and [`Arg::loss`]. Generalised from the paper's two
//! perspectives to N; N = 2 with the reference's tensor names reproduces the original (see
//! `../shared/docs/ARG.md` and the golden test in `tests/all/guidance.rs`).
//!
//! Tensor names follow the reference state dict so its checkpoints load as they are: perspective `i` (0-based) uses
//! the suffix `ftr_{i+2}` (`ftr_2` = textual description, `ftr_3` = commonsense).

use candle_core::{D, DType, Module, ModuleT, Result, Tensor};
use candle_nn::{BatchNorm, BatchNormConfig, Linear, VarBuilder, batch_norm, linear};
use candle_transformers::models::bert::Config as BertConfig;

use crate::models::encoder::{BertStack, Dropout, maybe_dropout};
use crate::models::kernels::{MaskFill, attention_softmax, linear as linear3};

/// ARG's settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArgConfig {
    /// Number of perspectives (rationales per item).
    pub perspectives: usize,
    /// Width of the classifier's and the auxiliary heads' hidden layer (reference: 384).
    pub mlp_dim: usize,
    /// Width of the gate MLP's second layer (reference: 64).
    pub gate_dim: usize,
    /// beta_use: weight of the usefulness loss (English: 1.5).
    pub beta_use: f64,
    /// beta_judge: weight of the LLM-judgement loss (English: 1.0).
    pub beta_judge: f64,
    /// Encoder layers outside the frozen part (reference: the last one).
    pub top_layers: usize,
    /// Reproduce the reference's quirks: means over padded positions and an unmasked judgement pooling. Off, the
    /// means and poolings skip padding.
    pub paper_quirks: bool,
    /// Weight of the contrastive term (after QCRD): rejected rationales (r_acc 0: their verdict contradicts the
    /// label, or people marked them misleading / not useful) pushed away from the news representation, useful
    /// ones pulled toward it. 0 (the default): the reference's loss exactly.
    #[serde(default)]
    pub contrastive_weight: f64,
}

impl Default for ArgConfig {
    fn default() -> Self {
        Self {
            perspectives: 2,
            mlp_dim: 384,
            gate_dim: 64,
            beta_use: 1.5,
            beta_judge: 1.0,
            top_layers: 1,
            paper_quirks: false,
            contrastive_weight: 0.0,
        }
    }
}

/// Attention pooling: scores from a Linear(D->1), softmax over positions (padding set to -inf when a mask is
/// given), weighted sum.
pub(crate) struct MaskAttention {
    score: Linear,
}

impl MaskAttention {
    pub(crate) fn load(vb: VarBuilder, dim: usize) -> Result<Self> {
        Ok(Self { score: linear(dim, 1, vb.pp("attention_layer"))? })
    }

    /// (B, L, D) -> (B, D).
    pub(crate) fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        self.weights(x, mask)?.unsqueeze(1)?.matmul(x)?.squeeze(1)
    }

    /// The attention weights over positions, (B, L, D) -> (B, L); masked positions get 0.
    pub(crate) fn weights(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let scores = linear3(&self.score, x)?.squeeze(D::Minus1)?;
        attention_softmax(&scores, mask, 1.0, MaskFill::NegInf)
    }
}

/// One-head cross-attention: Q from `query`, K and V from `kv`, keys where `kv_mask` is 0 masked, then a Linear.
struct CrossAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    scale: f64,
}

impl CrossAttention {
    fn load(vb: VarBuilder, dim: usize) -> Result<Self> {
        let vb = vb.pp("attention");
        Ok(Self {
            q: linear(dim, dim, vb.pp("linear_layers.0"))?,
            k: linear(dim, dim, vb.pp("linear_layers.1"))?,
            v: linear(dim, dim, vb.pp("linear_layers.2"))?,
            out: linear(dim, dim, vb.pp("output_linear"))?,
            scale: 1.0 / (dim as f64).sqrt(),
        })
    }

    /// (B, Lq, D) output; with `dropout`, 0.1 on the attention probabilities (training).
    fn forward(&self, kv: &Tensor, query: &Tensor, kv_mask: &Tensor, dropout: Option<&Dropout>) -> Result<Tensor> {
        let q = linear3(&self.q, query)?;
        let k = linear3(&self.k, kv)?;
        let v = linear3(&self.v, kv)?;
        let scores = q.matmul(&k.transpose(1, 2)?.contiguous()?)?;
        let probs = attention_softmax(&scores, Some(kv_mask), self.scale, MaskFill::NegInf)?;
        let probs = maybe_dropout(probs, dropout, 0.1)?;
        linear3(&self.out, &probs.matmul(&v)?)
    }
}

/// Linear -> ReLU -> Linear (the reference's `nn.Sequential` indices 0 and 2, or 0 and 3 with dropout between).
pub(crate) struct TwoLayer {
    first: Linear,
    second: Linear,
}

impl TwoLayer {
    pub(crate) fn load(vb: VarBuilder, input: usize, hidden: usize, output: usize, second: &str) -> Result<Self> {
        Ok(Self { first: linear(input, hidden, vb.pp("0"))?, second: linear(hidden, output, vb.pp(second))? })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.second.forward(&self.first.forward(x)?.relu()?)
    }

    /// With dropout `p` after the ReLU when training (the classifier's `nn.Dropout` at index 2).
    pub(crate) fn forward_t(&self, x: &Tensor, dropout: Option<&Dropout>, p: f32) -> Result<Tensor> {
        self.second.forward(&maybe_dropout(self.first.forward(x)?.relu()?, dropout, p)?)
    }
}

/// The reweighting gate: Linear, BatchNorm, ReLU, (dropout), Linear, BatchNorm, ReLU, (dropout), Linear, sigmoid.
struct Gate {
    l0: Linear,
    bn1: BatchNorm,
    l4: Linear,
    bn5: BatchNorm,
    l8: Linear,
}

impl Gate {
    fn load(vb: VarBuilder, dim: usize, hidden: usize, second: usize) -> Result<Self> {
        let bn = BatchNormConfig { eps: 1e-5, ..Default::default() };
        Ok(Self {
            l0: linear(dim, hidden, vb.pp("0"))?,
            bn1: batch_norm(hidden, bn, vb.pp("1"))?,
            l4: linear(hidden, second, vb.pp("4"))?,
            bn5: batch_norm(second, bn, vb.pp("5"))?,
            l8: linear(second, 1, vb.pp("8"))?,
        })
    }

    /// (B, D) -> (B, 1) in 0..1. Without `dropout`, evaluation mode (BatchNorm's running statistics); with it,
    /// training mode (batch statistics, running statistics updated, dropout 0.2).
    fn forward(&self, x: &Tensor, dropout: Option<&Dropout>) -> Result<Tensor> {
        let train = dropout.is_some();
        let h = self.bn1.forward_t(&self.l0.forward(x)?, train)?.relu()?;
        let h = maybe_dropout(h, dropout, 0.2)?;
        let h = self.bn5.forward_t(&self.l4.forward(&h)?, train)?.relu()?;
        let h = maybe_dropout(h, dropout, 0.2)?;
        candle_nn::ops::sigmoid(&self.l8.forward(&h)?)
    }
}

/// The modules of one perspective.
struct Perspective {
    /// Query = rationale, key/value = news: f_{r->x}.
    news_from_rationale: CrossAttention,
    /// Query = news, key/value = rationale: f_{x->r}.
    rationale_from_news: CrossAttention,
    usefulness: TwoLayer,
    judge_pool: MaskAttention,
    judge: TwoLayer,
    gate: Gate,
}

/// The encoded inputs of a batch: token-level states and masks (1 = token), from the BERTs or the cache.
pub struct ArgInputs {
    /// (B, L, D) news states.
    pub news: Tensor,
    /// (B, L) news mask.
    pub news_mask: Tensor,
    /// Per perspective: (B, L, D) rationale states and (B, L) mask.
    pub rationales: Vec<(Tensor, Tensor)>,
}

/// The pooled inputs of ARG's vector-level head ([`Arg::pool_t`]): one (B, D) row set each.
pub struct ArgPooled {
    /// The news pooled by ARG's news attention.
    pub news: Tensor,
    /// Per perspective: the mean of f_{r->x} (the news read by the rationale).
    pub expert: Vec<Tensor>,
    /// Per perspective: the mean of f_{x->r} (the rationale read by the news), the gate's and usefulness's input.
    pub cross: Vec<Tensor>,
    /// Per perspective: the rationale pooled for the judgement head.
    pub judge: Vec<Tensor>,
    /// Per perspective (B, L, D): cross-attention outputs before the mean (for checks; empty when rebuilt from
    /// rows).
    pub news_from_rationale: Vec<Tensor>,
    pub rationale_from_news: Vec<Tensor>,
}

impl ArgPooled {
    /// One (B, (1 + 3N) D) tensor: news, then expert, cross, judge of each perspective.
    pub fn flatten(&self) -> Result<Tensor> {
        let mut parts = vec![self.news.clone()];
        for i in 0..self.expert.len() {
            parts.extend([self.expert[i].clone(), self.cross[i].clone(), self.judge[i].clone()]);
        }
        Tensor::cat(&parts, 1)
    }

    /// Back from [`ArgPooled::flatten`]'s layout, for `perspectives` perspectives of width `dim`.
    pub fn from_flat(x: &Tensor, perspectives: usize, dim: usize) -> Result<Self> {
        let part = |i: usize| x.narrow(1, i * dim, dim)?.contiguous();
        let mut pooled = Self {
            news: part(0)?,
            expert: Vec::new(),
            cross: Vec::new(),
            judge: Vec::new(),
            news_from_rationale: Vec::new(),
            rationale_from_news: Vec::new(),
        };
        for k in 0..perspectives {
            pooled.expert.push(part(1 + 3 * k)?);
            pooled.cross.push(part(2 + 3 * k)?);
            pooled.judge.push(part(3 + 3 * k)?);
        }
        Ok(pooled)
    }
}

/// Everything ARG computes for a batch.
pub struct ArgOutput {
    /// (B) P(fake).
    pub p_fake: Tensor,
    /// (B, N) trust in each rationale (w_r).
    pub gates: Tensor,
    /// (B, D) the fused feature (ARG-D's distillation target).
    pub final_feature: Tensor,
    /// (B, D) pooled news.
    pub news_feature: Tensor,
    /// Per perspective (B, D): gate * f_{r->x}.
    pub rationale_features: Vec<Tensor>,
    /// Per perspective (B): predicted usefulness (probability that the rationale's verdict is right).
    pub usefulness: Vec<Tensor>,
    /// Per perspective (B, 3): logits of the LLM's judgement (real, fake, other).
    pub judgement_logits: Vec<Tensor>,
    /// Per perspective (B, D): the rationale pooled for the judgement head (the contrastive term's rationale
    /// representation).
    pub rationale_pooled: Vec<Tensor>,
    /// Per perspective (B, L, D): cross-attention outputs before the mean (for checks).
    pub news_from_rationale: Vec<Tensor>,
    pub rationale_from_news: Vec<Tensor>,
}

/// Targets of a batch.
pub struct ArgTargets {
    /// (B) 1 fake, 0 real, as f32.
    pub label: Tensor,
    /// Per perspective (B) 1 when the rationale's verdict is right, as f32 (r_acc).
    pub useful: Vec<Tensor>,
    /// Per perspective (B) the rationale's verdict, 0 real, 1 fake, 2 other, as u32 (r_pred).
    pub judgement: Vec<Tensor>,
    /// Per perspective (B) 1 when the item has a rationale from it, as f32; empty: every rationale present (only
    /// the contrastive term reads it).
    pub present: Vec<Tensor>,
}

/// The loss and its parts.
pub struct ArgLoss {
    pub total: Tensor,
    pub classify: Tensor,
    pub usefulness: Tensor,
    pub judgement: Tensor,
    /// The contrastive term (unweighted; zero when its weight is 0).
    pub contrastive: Tensor,
}

/// ARG's head (everything after the encoders) and its two encoders.
pub struct Arg {
    pub config: ArgConfig,
    pub news_encoder: BertStack,
    pub rationale_encoder: BertStack,
    news_pool: MaskAttention,
    aggregator: MaskAttention,
    classifier: TwoLayer,
    perspectives: Vec<Perspective>,
}

impl Arg {
    /// Loads ARG under the reference's names from `vb` (root); `bert` is the encoders' config.
    pub fn load(vb: VarBuilder, config: ArgConfig, bert: &BertConfig) -> Result<Self> {
        let news_encoder = BertStack::load(vb.clone(), "bert_content", bert, config.top_layers)?;
        let rationale_encoder = BertStack::load(vb.clone(), "bert_FTR", bert, config.top_layers)?;
        Self::load_with(vb, config, bert, news_encoder, rationale_encoder)
    }

    /// Loads ARG with only the encoders' top layers: what training on cached frozen outputs needs, and what a
    /// model version's weights file holds.
    pub fn load_head(vb: VarBuilder, config: ArgConfig, bert: &BertConfig) -> Result<Self> {
        let news_encoder = BertStack::load_top(vb.clone(), "bert_content", bert, config.top_layers)?;
        let rationale_encoder = BertStack::load_top(vb.clone(), "bert_FTR", bert, config.top_layers)?;
        Self::load_with(vb, config, bert, news_encoder, rationale_encoder)
    }

    fn load_with(
        vb: VarBuilder,
        config: ArgConfig,
        bert: &BertConfig,
        mut news_encoder: BertStack,
        mut rationale_encoder: BertStack,
    ) -> Result<Self> {
        // Padded positions matter only in the paper-quirks mode (means over every position).
        news_encoder.pack = !config.paper_quirks;
        rationale_encoder.pack = !config.paper_quirks;
        let dim = bert.hidden_size;
        let mut perspectives = Vec::with_capacity(config.perspectives);
        for i in 0..config.perspectives {
            let s = i + 2;
            perspectives.push(Perspective {
                news_from_rationale: CrossAttention::load(vb.pp(format!("cross_attention_content_{s}")), dim)?,
                rationale_from_news: CrossAttention::load(vb.pp(format!("cross_attention_ftr_{s}")), dim)?,
                usefulness: TwoLayer::load(vb.pp(format!("hard_mlp_ftr_{s}")), dim, config.mlp_dim, 1, "2")?,
                judge_pool: MaskAttention::load(vb.pp(format!("simple_ftr_{s}_attention")), dim)?,
                judge: TwoLayer::load(vb.pp(format!("simple_mlp_ftr_{s}")), dim, config.mlp_dim, 3, "2")?,
                gate: Gate::load(vb.pp(format!("score_mapper_ftr_{s}")), dim, config.mlp_dim, config.gate_dim)?,
            });
        }
        Ok(Self {
            news_pool: MaskAttention::load(vb.pp("content_attention"), dim)?,
            aggregator: MaskAttention::load(vb.pp("aggregator"), dim)?,
            classifier: TwoLayer::load(vb.pp("mlp.mlp"), dim, config.mlp_dim, 1, "3")?,
            news_encoder,
            rationale_encoder,
            perspectives,
            config,
        })
    }

    /// Encodes token ids (B, L) with masks through both BERTs.
    pub fn encode(&self, news: (&Tensor, &Tensor), rationales: &[(&Tensor, &Tensor)]) -> Result<ArgInputs> {
        let news_states = self.news_encoder.forward(news.0, news.1)?;
        let rationales = rationales
            .iter()
            .map(|(ids, mask)| Ok((self.rationale_encoder.forward(ids, mask)?, (*mask).clone())))
            .collect::<Result<Vec<_>>>()?;
        Ok(ArgInputs { news: news_states, news_mask: news.1.clone(), rationales })
    }

    /// Mean over positions: all of them (the reference) or only real tokens.
    fn mean_over(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        if self.config.paper_quirks {
            return x.mean(1);
        }
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
        let count = mask.sum(1)?.clamp(1.0, f64::MAX)?;
        x.broadcast_mul(&mask)?.sum(1)?.broadcast_div(&count)
    }

    /// Runs the encoders' top layers on cached frozen outputs (news, then each perspective's rationales); with
    /// `dropout`, in training mode.
    pub fn encode_top(
        &self,
        news: (&Tensor, &Tensor),
        rationales: &[(Tensor, Tensor)],
        dropout: Option<&Dropout>,
    ) -> Result<ArgInputs> {
        let news_states = self.news_encoder.forward_top_t(news.0, news.1, dropout)?;
        let rationales = rationales
            .iter()
            .map(|(states, mask)| Ok((self.rationale_encoder.forward_top_t(states, mask, dropout)?, mask.clone())))
            .collect::<Result<Vec<_>>>()?;
        Ok(ArgInputs { news: news_states, news_mask: news.1.clone(), rationales })
    }

    /// How the news feature pools the news tokens: the weights of ARG's news attention (`content_attention`)
    /// over the (B, L) tokens, from cached frozen outputs; in evaluation mode.
    pub fn news_attention(&self, frozen: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let news = self.news_encoder.forward_top_t(frozen, mask, None)?;
        self.news_pool.weights(&news, Some(mask))
    }

    /// The head on encoded inputs, in evaluation mode.
    pub fn forward(&self, inputs: &ArgInputs) -> Result<ArgOutput> {
        self.forward_t(inputs, None)
    }

    /// The head on encoded inputs; with `dropout`, in training mode (dropout, BatchNorm batch statistics).
    pub fn forward_t(&self, inputs: &ArgInputs, dropout: Option<&Dropout>) -> Result<ArgOutput> {
        let pooled = self.pool_t(inputs, dropout)?;
        self.head_t(pooled, dropout)
    }

    /// The token-level part of the head: the news pooling, both cross-attentions of each perspective and their
    /// means, the judgement pooling of each rationale. What the quick retrain and the online learner keep fixed
    /// (and cache per item), [`Arg::head_t`] being what they train.
    pub fn pool_t(&self, inputs: &ArgInputs, dropout: Option<&Dropout>) -> Result<ArgPooled> {
        if inputs.rationales.len() != self.perspectives.len() {
            candle_core::bail!(
                "ARG has {} perspectives, got {} rationales",
                self.perspectives.len(),
                inputs.rationales.len()
            );
        }
        let mut pooled = ArgPooled {
            news: self.news_pool.forward(&inputs.news, Some(&inputs.news_mask))?,
            expert: Vec::new(),
            cross: Vec::new(),
            judge: Vec::new(),
            news_from_rationale: Vec::new(),
            rationale_from_news: Vec::new(),
        };
        for (p, (states, mask)) in self.perspectives.iter().zip(&inputs.rationales) {
            // f_{r->x}: rationale tokens query the news; mean over the rationale's positions.
            let nr = p.news_from_rationale.forward(&inputs.news, states, &inputs.news_mask, dropout)?;
            pooled.expert.push(self.mean_over(&nr, mask)?);
            // f_{x->r}: news tokens query the rationale; mean over the news positions.
            let rn = p.rationale_from_news.forward(states, &inputs.news, mask, dropout)?;
            pooled.cross.push(self.mean_over(&rn, &inputs.news_mask)?);
            let pool_mask = if self.config.paper_quirks { None } else { Some(mask) };
            pooled.judge.push(p.judge_pool.forward(states, pool_mask)?);
            pooled.news_from_rationale.push(nr);
            pooled.rationale_from_news.push(rn);
        }
        Ok(pooled)
    }

    /// The vector-level part of the head on pooled inputs: usefulness, judgement, gates, aggregation, classifier.
    pub fn head_t(&self, pooled: ArgPooled, dropout: Option<&Dropout>) -> Result<ArgOutput> {
        let news_feature = pooled.news;
        let mut rows = vec![news_feature.clone()];
        let mut out = ArgOutput {
            p_fake: news_feature.clone(),
            gates: news_feature.clone(),
            final_feature: news_feature.clone(),
            news_feature,
            rationale_features: Vec::new(),
            usefulness: Vec::new(),
            judgement_logits: Vec::new(),
            rationale_pooled: pooled.judge.clone(),
            news_from_rationale: pooled.news_from_rationale,
            rationale_from_news: pooled.rationale_from_news,
        };
        let mut gates = Vec::new();
        for (i, p) in self.perspectives.iter().enumerate() {
            let m = &pooled.cross[i];
            out.usefulness.push(candle_nn::ops::sigmoid(&p.usefulness.forward(m)?)?.squeeze(1)?);
            out.judgement_logits.push(p.judge.forward(&pooled.judge[i])?);
            let gate = p.gate.forward(m, dropout)?;
            let feature = pooled.expert[i].broadcast_mul(&gate)?;
            rows.push(feature.clone());
            out.rationale_features.push(feature);
            gates.push(gate);
        }
        out.gates = if gates.is_empty() {
            Tensor::zeros((out.news_feature.dim(0)?, 0), DType::F32, out.news_feature.device())?
        } else {
            Tensor::cat(&gates, 1)?
        };
        out.final_feature = self.aggregator.forward(&Tensor::stack(&rows, 1)?, None)?;
        out.p_fake =
            candle_nn::ops::sigmoid(&self.classifier.forward_t(&out.final_feature, dropout, 0.2)?)?.squeeze(1)?;
        Ok(out)
    }

    /// Names of the variables [`Arg::head_t`] reads (prefixes of the reference's names): what a quick retrain
    /// trains.
    pub fn head_prefixes(&self) -> Vec<String> {
        let mut out = vec!["aggregator.".to_owned(), "mlp.mlp.".to_owned()];
        for i in 0..self.perspectives.len() {
            let s = i + 2;
            out.extend([
                format!("hard_mlp_ftr_{s}."),
                format!("simple_mlp_ftr_{s}."),
                format!("score_mapper_ftr_{s}."),
            ]);
        }
        out
    }

    /// BCE(P(fake), label) + beta_use * mean_r BCE(usefulness_r, r_acc) + beta_judge * mean_r CE(judge_r, r_pred).
    pub fn loss(&self, out: &ArgOutput, targets: &ArgTargets) -> Result<ArgLoss> {
        let classify = bce(&out.p_fake, &targets.label)?;
        let n = self.perspectives.len().max(1) as f64;
        let mut usefulness = Tensor::zeros((), DType::F32, out.p_fake.device())?;
        let mut judgement = usefulness.clone();
        for i in 0..self.perspectives.len() {
            usefulness = (usefulness + bce(&out.usefulness[i], &targets.useful[i])?)?;
            judgement = (judgement + candle_nn::loss::cross_entropy(&out.judgement_logits[i], &targets.judgement[i])?)?;
        }
        let usefulness = (usefulness / n)?;
        let judgement = (judgement / n)?;
        let mut total =
            ((&classify + (&usefulness * self.config.beta_use)?)? + (&judgement * self.config.beta_judge)?)?;
        let mut contrastive = Tensor::zeros((), DType::F32, out.p_fake.device())?;
        if self.config.contrastive_weight > 0.0 {
            contrastive = self.contrastive(out, targets)?;
            total = (total + (&contrastive * self.config.contrastive_weight)?)?;
        }
        Ok(ArgLoss { total, classify, usefulness, judgement, contrastive })
    }

    /// Hadsell et al.'s contrastive loss on d = 1 − cos(news, rationale), margin 1: a useful rationale (r_acc 1)
    /// costs d², a rejected one max(0, 1 − d)² (that is, its cosine above 0); the mean over present rationales.
    pub fn contrastive(&self, out: &ArgOutput, targets: &ArgTargets) -> Result<Tensor> {
        let unit = |x: &Tensor| -> Result<Tensor> { x.broadcast_div(&(x.sqr()?.sum_keepdim(1)? + 1e-12)?.sqrt()?) };
        let news = unit(&out.news_feature)?;
        let device = out.p_fake.device();
        let mut sum = Tensor::zeros((), DType::F32, device)?;
        let mut count = Tensor::zeros((), DType::F32, device)?;
        for (k, rationale) in out.rationale_pooled.iter().enumerate() {
            let cos = (&news * unit(rationale)?)?.sum(1)?;
            let d = cos.affine(-1.0, 1.0)?;
            let y = &targets.useful[k];
            let per_item = ((y * d.sqr()?)? + (y.affine(-1.0, 1.0)? * cos.relu()?.sqr()?)?)?;
            let present = match targets.present.get(k) {
                Some(p) => p.clone(),
                None => y.ones_like()?,
            };
            sum = (sum + (per_item * &present)?.sum_all()?)?;
            count = (count + present.sum_all()?)?;
        }
        sum / count.clamp(1f32, f32::MAX)?
    }
}

/// torch's `BCELoss`: mean over the batch, logs clamped at -100. P is first kept inside [1e-7, 1 - 1e-7]: a
/// saturated sigmoid (exactly 0 or 1 in f32, which a head trained at a high learning rate reaches) would otherwise
/// give 0/0 in the backward pass of the log (torch clamps that denominator itself); inside the bounds nothing changes.
pub fn bce(p: &Tensor, y: &Tensor) -> Result<Tensor> {
    let p = p.clamp(1e-7f32, 1.0 - 1e-7f32)?;
    let p = &p;
    let log_p = p.log()?.clamp(-100f32, f32::MAX)?;
    let log_q = p.affine(-1.0, 1.0)?.log()?.clamp(-100f32, f32::MAX)?;
    let y_q = y.affine(-1.0, 1.0)?;
    ((y * log_p)? + (y_q * log_q)?)?.mean_all()?.neg()
}
