//! The quick path of the learning loop: per item, the pooled inputs of a model version's head (ARG: the news
//! pooling, each perspective's cross-attention means and judgement pooling; ARG-D and BERT: the pooled news), so that
//! a quick retrain and the online learner run only the head's small layers instead of the encoder's top layer and
//! the cross-attentions.
//!
//! The inputs depend on the version's fixed part only (its encoder top layers, cross-attentions and poolings), which
//! a quick retrain does not change: a version trained quickly shares its parent's inputs. They are stored in the
//! encoder cache beside the database (`vectors`, at half precision), under a namespace naming the weights file
//! whose fixed part produced them, and keyed by a hash of the texts the item is read from, so that a changed
//! rationale is computed again and nothing stale is read.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::data::Example;

/// The cache key of `example`'s inputs: its news text and its rationales' texts, in the model's perspective order.
pub fn example_key(example: &Example) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(example.news.as_bytes());
    for r in &example.rationales {
        h.update([0u8]);
        h.update(r.text.as_bytes());
    }
    h.finalize().into()
}

/// The namespace of the inputs computed by the fixed part of the weights file whose sha256 is `weights_sha256`.
pub fn namespace(weights_sha256: &str) -> String {
    format!("head-inputs:{weights_sha256}")
}

/// Pooled head inputs per example key, in memory.
#[derive(Clone, Debug, Default)]
pub struct HeadBank {
    width: usize,
    rows: Vec<Vec<f32>>,
    index: HashMap<[u8; 32], usize>,
}

impl HeadBank {
    /// An empty bank of rows `width` wide.
    pub fn new(width: usize) -> Self {
        Self { width, rows: Vec::new(), index: HashMap::new() }
    }

    /// Adds (or replaces) the row of `key`.
    pub fn insert(&mut self, key: [u8; 32], row: Vec<f32>) {
        debug_assert_eq!(row.len(), self.width);
        match self.index.get(&key) {
            Some(&i) => self.rows[i] = row,
            None => {
                self.index.insert(key, self.rows.len());
                self.rows.push(row);
            }
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn contains(&self, example: &Example) -> bool {
        self.index.contains_key(&example_key(example))
    }

    /// The row of `example` (it must be in the bank).
    pub fn row(&self, example: &Example) -> &[f32] {
        &self.rows[self.index[&example_key(example)]]
    }
}
