//! ARG-D, the rationale-free student: news BERT -> a transformer block that imitates ARG's rationale-aware feature
//! -> attention pooling -> classifier. Trained with BCE(P(fake), label) + kd_weight * MSE(student feature, teacher
//! feature), the teacher (an [`Arg`]) frozen, in evaluation mode and detached (the reference lets gradients flow
//! into the teacher; they are never used there). Names follow the reference state dict (`bert.*`, `transformer.*`,
//! `attention.*`, `mlp.mlp.*`, `teacher.*`).

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, linear, linear_no_bias};
use candle_transformers::models::bert::Config as BertConfig;

use super::arg::{Arg, ArgConfig, ArgInputs, bce};
use crate::models::encoder::{BertStack, Dropout, differentiable_layer_norm, maybe_dropout};
use crate::models::kernels::{MaskFill, attention_softmax, gelu_erf, linear as linear3};

/// ARG-D's settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArgdConfig {
    /// Heads of the student's transformer block (reference: 4).
    pub heads: usize,
    /// The block's MLP width as a multiple of the hidden size (reference: 4).
    pub mlp_ratio: usize,
    pub mlp_dim: usize,
    /// Weight of the distillation loss (English: 1, Chinese: 15).
    pub kd_weight: f64,
    pub top_layers: usize,
    /// The reference's quirks: the block attends over padding and the pooling is unmasked.
    pub paper_quirks: bool,
}

impl Default for ArgdConfig {
    fn default() -> Self {
        Self { heads: 4, mlp_ratio: 4, mlp_dim: 384, kd_weight: 1.0, top_layers: 1, paper_quirks: false }
    }
}

/// timm's pre-norm transformer block (`Block`): x + attn(norm1(x)), then + mlp(norm2(x)); qkv without bias.
struct Block {
    norm1: (Tensor, Tensor),
    qkv: Linear,
    proj: Linear,
    norm2: (Tensor, Tensor),
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl Block {
    fn load(vb: VarBuilder, dim: usize, heads: usize, mlp_ratio: usize) -> Result<Self> {
        let norm = |vb: VarBuilder| -> Result<(Tensor, Tensor)> {
            Ok((
                vb.get_with_hints(dim, "weight", candle_nn::Init::Const(1.0))?,
                vb.get_with_hints(dim, "bias", candle_nn::Init::Const(0.0))?,
            ))
        };
        Ok(Self {
            norm1: norm(vb.pp("norm1"))?,
            qkv: linear_no_bias(dim, 3 * dim, vb.pp("attn.qkv"))?,
            proj: linear(dim, dim, vb.pp("attn.proj"))?,
            norm2: norm(vb.pp("norm2"))?,
            fc1: linear(dim, dim * mlp_ratio, vb.pp("mlp.fc1"))?,
            fc2: linear(dim * mlp_ratio, dim, vb.pp("mlp.fc2"))?,
            heads,
        })
    }

    /// `mask` (B, L) masks attention keys when given.
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, l, d) = x.dims3()?;
        let dh = d / self.heads;
        let qkv = linear3(&self.qkv, &layer_norm(x, &self.norm1)?)?.reshape((b, l, 3, self.heads, dh))?;
        let part = |i: usize| qkv.narrow(2, i, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous();
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let scores = q.matmul(&k.t()?.contiguous()?)?;
        let attn = attention_softmax(&scores, mask, (dh as f64).powf(-0.5), MaskFill::NegInf)?
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, l, d))?;
        let x = (x + linear3(&self.proj, &attn)?)?;
        let h = linear3(&self.fc2, &gelu_erf(&linear3(&self.fc1, &layer_norm(&x, &self.norm2)?)?)?)?;
        x + h
    }
}

/// timm's LayerNorm (eps 1e-5), from differentiable operations (candle's fused kernel has no backward pass).
fn layer_norm(x: &Tensor, (weight, bias): &(Tensor, Tensor)) -> Result<Tensor> {
    differentiable_layer_norm(x, (weight, bias), 1e-5)
}

/// Everything the student computes.
pub struct ArgdOutput {
    /// (B) P(fake).
    pub p_fake: Tensor,
    /// (B, D) the student's fused feature (imitates the teacher's).
    pub feature: Tensor,
    /// (B, L, D) student BERT states and block output (for checks).
    pub bert_states: Tensor,
    pub block_out: Tensor,
}

/// The loss and its parts.
pub struct ArgdLoss {
    pub total: Tensor,
    pub classify: Tensor,
    pub distill: Tensor,
}

/// The student, and (for training) its teacher.
pub struct ArgD {
    pub config: ArgdConfig,
    pub bert: BertStack,
    block: Block,
    pool: Linear,
    classifier: (Linear, Linear),
    pub teacher: Option<Arg>,
}

impl ArgD {
    /// Loads the student from `vb` (root) and, when `teacher` is given, ARG under `teacher.*`.
    pub fn load(vb: VarBuilder, config: ArgdConfig, bert: &BertConfig, teacher: Option<ArgConfig>) -> Result<Self> {
        let teacher = teacher.map(|t| Arg::load(vb.pp("teacher"), t, bert)).transpose()?;
        let stack = BertStack::load(vb.clone(), "bert", bert, config.top_layers)?;
        Self::load_with(vb, config, bert, stack, teacher)
    }

    /// Loads the student alone with only its encoder's top layers (training on cached frozen outputs; what a model
    /// version's weights file holds).
    pub fn load_student(vb: VarBuilder, config: ArgdConfig, bert: &BertConfig) -> Result<Self> {
        let stack = BertStack::load_top(vb.clone(), "bert", bert, config.top_layers)?;
        Self::load_with(vb, config, bert, stack, None)
    }

    fn load_with(
        vb: VarBuilder,
        config: ArgdConfig,
        bert: &BertConfig,
        mut stack: BertStack,
        teacher: Option<Arg>,
    ) -> Result<Self> {
        // Padded positions matter only in the paper-quirks mode (unmasked block and pooling).
        stack.pack = !config.paper_quirks;
        let dim = bert.hidden_size;
        Ok(Self {
            bert: stack,
            block: Block::load(vb.pp("transformer"), dim, config.heads, config.mlp_ratio)?,
            pool: linear(dim, 1, vb.pp("attention.attention_layer"))?,
            classifier: (
                linear(dim, config.mlp_dim, vb.pp("mlp.mlp.0"))?,
                linear(config.mlp_dim, 1, vb.pp("mlp.mlp.3"))?,
            ),
            teacher,
            config,
        })
    }

    /// The student on news token ids (B, L) and mask: no rationales needed.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<ArgdOutput> {
        let frozen = self.bert.forward_frozen(ids, mask)?;
        self.forward_frozen_states(&frozen, mask, None)
    }

    /// The student on cached frozen outputs of its encoder; with `dropout`, in training mode.
    pub fn forward_frozen_states(
        &self,
        frozen: &Tensor,
        mask: &Tensor,
        dropout: Option<&Dropout>,
    ) -> Result<ArgdOutput> {
        let bert_states = self.bert.forward_top_t(frozen, mask, dropout)?;
        let block_mask = if self.config.paper_quirks { None } else { Some(mask) };
        let block_out = self.block.forward(&bert_states, block_mask)?;
        let scores = linear3(&self.pool, &block_out)?.squeeze(D::Minus1)?;
        let pool_mask = if self.config.paper_quirks { None } else { Some(mask) };
        let weights = attention_softmax(&scores, pool_mask, 1.0, MaskFill::NegInf)?.unsqueeze(1)?;
        let feature = weights.matmul(&block_out)?.squeeze(1)?;
        let p_fake = self.head_t(&feature, dropout)?;
        Ok(ArgdOutput { p_fake, feature, bert_states, block_out })
    }

    /// The classifier on the pooled feature (B, D) -> (B) P(fake): what a quick retrain trains.
    pub fn head_t(&self, feature: &Tensor, dropout: Option<&Dropout>) -> Result<Tensor> {
        let hidden = maybe_dropout(self.classifier.0.forward(feature)?.relu()?, dropout, 0.2)?;
        candle_nn::ops::sigmoid(&self.classifier.1.forward(&hidden)?)?.squeeze(1)
    }

    /// The teacher's fused feature for the same batch, detached (no gradient reaches the teacher).
    pub fn teacher_feature(&self, inputs: &ArgInputs) -> Result<Tensor> {
        let teacher =
            self.teacher.as_ref().ok_or_else(|| candle_core::Error::Msg("ARG-D has no teacher loaded".into()))?;
        Ok(teacher.forward(inputs)?.final_feature.detach())
    }

    /// BCE(P(fake), label) + kd_weight * MSE(student feature, teacher feature).
    pub fn loss(&self, out: &ArgdOutput, label: &Tensor, teacher_feature: &Tensor) -> Result<ArgdLoss> {
        let classify = bce(&out.p_fake, label)?;
        let distill = (&out.feature - teacher_feature)?.sqr()?.mean_all()?;
        let total = (&classify + (&distill * self.config.kd_weight)?)?;
        Ok(ArgdLoss { total, classify, distill })
    }
}
