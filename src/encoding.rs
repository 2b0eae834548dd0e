//! The encoding job: every item's news text and every rationale of a database through the encoder's frozen
//! layers into the encoder cache beside the database, so that ARG's incremental retraining never encodes a text
//! twice. Fetches the encoder on first use; progress and cancel between batches (what is cached stays cached).
//!
//! This module knows nothing of the UI.

use std::path::{Path, PathBuf};

use crate::jobs::Progress;
use crate::models::encoder::{Encoder, EncoderOptions};
use crate::models::encoder_cache::{self, CacheStats, EncodePlan, EncoderCache, Stack};
use crate::models::{DeviceChoice, fetch};
use crate::store::{Store, StoreError};

/// Why an encoding run stopped: the encoder (fetch, load, cache) or the database. What was cached stays cached.
#[derive(Debug, thiserror::Error)]
pub enum EncodingError {
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an encoding run did.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodingSummary {
    pub texts: usize,
    pub stats: CacheStats,
    pub cache: PathBuf,
    pub encoder: String,
    pub device: String,
    pub seconds: f64,
    /// What it was to take, computed before it started.
    pub plan: EncodePlan,
}

/// One line: how many texts, encoded now or found in the cache, by which encoder on which device, where.
impl std::fmt::Display for EncodingSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} texts: {} encoded now, {} already cached ({} on {}, {:.1} s) in {}",
            self.texts,
            self.stats.encoded,
            self.stats.hits,
            self.encoder,
            self.device,
            self.seconds,
            self.cache.display()
        )
    }
}

/// The distinct texts of `db` an ARG model reads: news (title and text) and the latest rationales.
pub fn texts_of(store: &Store) -> Result<Vec<String>, StoreError> {
    let mut texts = Vec::new();
    for id in store.item_ids()? {
        let item = store.item(id)?;
        texts.push(item.news_text());
        texts.extend(store.rationales(id)?.into_iter().map(|r| r.text));
    }
    let mut seen = std::collections::HashSet::new();
    texts.retain(|t| seen.insert(t.clone()));
    Ok(texts)
}

/// Encodes the texts of the database at `db` with `encoder` (a catalog name or a folder) into its cache;
/// `on_plan` hears what it will take (texts, tokens, bytes on disk) before anything is encoded.
pub fn encode_database(
    db: &Path,
    encoder: &str,
    device: DeviceChoice,
    max_len: usize,
    progress: &dyn Progress,
    on_plan: &mut dyn FnMut(&EncodePlan),
) -> Result<EncodingSummary, EncodingError> {
    let dir = fetch::resolve(encoder, progress)?;
    progress.set(0, 0, "loading the encoder");
    let device = device.open()?;
    let encoder = Encoder::load(&dir, &device, EncoderOptions { max_len, ..Default::default() })?;
    let store = Store::open(db)?;
    progress.set(0, 0, "reading texts");
    let texts = texts_of(&store)?;
    drop(store);
    let cache_path = encoder_cache::cache_path_for(db);
    let mut cache = EncoderCache::open(&cache_path)?;
    progress.set(0, 0, "counting tokens");
    let plan = cache.plan(&encoder, Stack::Frozen, &texts)?;
    on_plan(&plan);
    progress.set(0, texts.len() as u64, &plan.to_string());
    let started = std::time::Instant::now();
    let stats = encoder_cache::encode_all(&mut cache, &encoder, Stack::Frozen, &texts, progress)?;
    Ok(EncodingSummary {
        texts: texts.len(),
        stats,
        cache: cache_path,
        encoder: encoder.id().to_owned(),
        device: crate::models::device::describe(&device),
        seconds: started.elapsed().as_secs_f64(),
        plan,
    })
}
