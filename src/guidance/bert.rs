//! The BERT-only baseline ARG is compared with: the news encoder (last layer trained), masked attention pooling and
//! ARG's classifier MLP (D -> 384 -> 1, dropout 0.2), trained on BCE alone. No rationales.
//!
//! Names: `bert.encoder.layer.*` (top layers), `attention.attention_layer`, `mlp.mlp.{0,3}`, as ARG-D's student.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config as BertConfig;

use super::arg::{MaskAttention, TwoLayer, bce};
use crate::models::encoder::{BertStack, Dropout};

/// The baseline's settings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BertConfigHead {
    pub mlp_dim: usize,
    pub top_layers: usize,
}

impl Default for BertConfigHead {
    fn default() -> Self {
        Self { mlp_dim: 384, top_layers: 1 }
    }
}

/// Encoder top layers, pooling, classifier.
pub struct BertClassifier {
    pub config: BertConfigHead,
    pub bert: BertStack,
    pool: MaskAttention,
    classifier: TwoLayer,
}

impl BertClassifier {
    /// Loads the top layers and the head from `vb` (root).
    pub fn load_head(vb: VarBuilder, config: BertConfigHead, bert: &BertConfig) -> Result<Self> {
        let dim = bert.hidden_size;
        // The pooling is masked: padded positions never matter.
        let mut stack = BertStack::load_top(vb.clone(), "bert", bert, config.top_layers)?;
        stack.pack = true;
        Ok(Self {
            bert: stack,
            pool: MaskAttention::load(vb.pp("attention"), dim)?,
            classifier: TwoLayer::load(vb.pp("mlp.mlp"), dim, config.mlp_dim, 1, "3")?,
            config,
        })
    }

    /// (B) P(fake) from frozen encoder outputs (B, L, D) and their mask; with `dropout`, in training mode.
    pub fn forward(&self, frozen: &Tensor, mask: &Tensor, dropout: Option<&Dropout>) -> Result<Tensor> {
        let states = self.bert.forward_top_t(frozen, mask, dropout)?;
        self.head_t(&self.pool.forward(&states, Some(mask))?, dropout)
    }

    /// The pooled news (B, D) (frozen outputs through the top layers and the attention pooling, evaluation mode).
    pub fn pooled(&self, frozen: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.pool.forward(&self.bert.forward_top_t(frozen, mask, None)?, Some(mask))
    }

    /// The classifier on the pooled news (B, D) -> (B) P(fake): what a quick retrain trains.
    pub fn head_t(&self, pooled: &Tensor, dropout: Option<&Dropout>) -> Result<Tensor> {
        candle_nn::ops::sigmoid(&self.classifier.forward_t(pooled, dropout, 0.2)?)?.squeeze(1)
    }

    /// BCE against the labels (B) as f32.
    pub fn loss(&self, p_fake: &Tensor, label: &Tensor) -> Result<Tensor> {
        bce(p_fake, label)
    }
}
