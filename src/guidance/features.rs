//! Frozen encoder outputs of every text a training run needs, read from the encoder cache (encoding only what it
//! lacks) and held in memory without padding; batches are padded to their longest text (or to the fixed length
//! when reproducing the reference, whose means run over padding).

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::jobs::Progress;
use crate::models::ModelError;
use crate::models::encoder::Encoder;
use crate::models::encoder_cache::{CacheStats, EncoderCache, Stack};

/// Frozen-layer outputs per distinct text.
pub struct FeatureBank {
    hidden: usize,
    rows: Vec<(usize, Vec<f32>)>,
    index: HashMap<String, usize>,
    pub stats: CacheStats,
}

impl FeatureBank {
    /// The frozen outputs of `texts` (duplicates are read once), from `cache` or encoded into it.
    pub fn build(
        cache: &mut EncoderCache,
        encoder: &Encoder,
        texts: &[&str],
        progress: &dyn Progress,
    ) -> Result<Self, ModelError> {
        let mut index = HashMap::new();
        let mut distinct: Vec<&str> = Vec::new();
        for &t in texts {
            if !index.contains_key(t) {
                index.insert(t.to_owned(), distinct.len());
                distinct.push(t);
            }
        }
        let mut rows = Vec::with_capacity(distinct.len());
        let mut stats = CacheStats::default();
        let batch = encoder.options().batch_size.max(1) * 4;
        for chunk in distinct.chunks(batch) {
            if progress.is_cancelled() {
                return Err(crate::jobs::Cancelled.into());
            }
            let (got, s) = cache.rows(encoder, Stack::Frozen, chunk)?;
            stats.hits += s.hits;
            stats.encoded += s.encoded;
            rows.extend(got);
            progress.set(
                rows.len() as u64,
                distinct.len() as u64,
                &format!(
                    "reading frozen features: {}/{} texts ({} encoded now)",
                    rows.len(),
                    distinct.len(),
                    stats.encoded
                ),
            );
        }
        Ok(Self { hidden: encoder.hidden_size(), rows, index, stats })
    }

    /// Number of distinct texts.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row of `text` (it must have been in the texts the bank was built from).
    pub fn id(&self, text: &str) -> usize {
        self.index[text]
    }

    /// Tokens of `text`, when the bank holds it.
    pub fn tokens_of(&self, text: &str) -> Option<usize> {
        self.index.get(text).map(|&i| self.tokens(i))
    }

    /// True when the two texts read the same to the model: the same frozen states (a change past the last token
    /// the encoder keeps is invisible to it).
    pub fn same(&self, a: &str, b: &str) -> bool {
        match (self.index.get(a), self.index.get(b)) {
            (Some(&i), Some(&j)) => i == j || self.rows[i] == self.rows[j],
            _ => false,
        }
    }

    /// Real tokens of row `id`.
    pub fn tokens(&self, id: usize) -> usize {
        self.rows[id].0
    }

    /// (B, L, D) states and (B, L) mask for rows `ids`; L is the longest of them, or `pad_to` when given.
    pub fn batch(
        &self,
        ids: &[usize],
        pad_to: Option<usize>,
        device: &Device,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let longest = ids.iter().map(|&i| self.rows[i].0).max().unwrap_or(1).max(1);
        let len = pad_to.unwrap_or(longest).max(longest);
        let d = self.hidden;
        let mut hidden = vec![0f32; ids.len() * len * d];
        let mut mask = vec![0f32; ids.len() * len];
        for (b, &i) in ids.iter().enumerate() {
            let (tokens, values) = &self.rows[i];
            hidden[b * len * d..b * len * d + values.len()].copy_from_slice(values);
            mask[b * len..b * len + tokens].fill(1.0);
        }
        Ok((Tensor::from_vec(hidden, (ids.len(), len, d), device)?, Tensor::from_vec(mask, (ids.len(), len), device)?))
    }
}
