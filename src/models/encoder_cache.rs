//! A cache of encoder outputs per (model, layer stack, length, text hash), so that no text is encoded twice: ARG's
//! incremental retraining reads the frozen layers' outputs from here.
//!
//! It is a SQLite file of its own (never the user's database: it can be deleted at any time and is rebuilt on
//! demand). Only the real (non-padding) token rows are stored, as 8-bit integers in groups of 32 values sharing one
//! half-precision scale (`q8`: 408 bytes a token for a 384-wide encoder, a ninth of f32; the largest rounding error
//! of a value is 1/254 of its group's largest magnitude). Rows written by older versions, f32 or f16, are still
//! read, and `ARGUS_CACHE_PRECISION=f16` writes half precision again (for measuring what q8 costs). A second table holds
//! vectors per key and namespace: the pooled inputs of a model version's head, per item (`guidance::head`).

use std::path::Path;

use candle_core::Tensor;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

use super::encoder::{Encoded, Encoder};
use super::{ModelError, Result};
use crate::jobs::Progress;

/// Which output is cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// Embeddings and all but the top layers (what ARG trains on top of).
    Frozen,
    /// The full encoder.
    Full,
}

impl Stack {
    fn as_str(self) -> &'static str {
        match self {
            Self::Frozen => "frozen",
            Self::Full => "full",
        }
    }
}

/// How many texts a lookup found in the cache and how many it encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: usize,
    pub encoded: usize,
}

/// One text's cached output: its real token count and their states (tokens x hidden values).
pub type Row = (usize, Vec<f32>);

/// The cache file.
pub struct EncoderCache {
    conn: Connection,
    path: String,
}

impl std::fmt::Debug for EncoderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncoderCache").field("path", &self.path).finish()
    }
}

impl EncoderCache {
    /// Opens (creating) the cache at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| ModelError::file(parent, e))?;
        }
        let conn = Connection::open(path).map_err(|e| ModelError::file(path, e))?;
        Self::init(conn, path.display().to_string())
    }

    /// A cache that lives only as long as this value (tests, one-off runs).
    pub fn in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(|e| ModelError::file("(memory)", e))?;
        Self::init(conn, "(memory)".into())
    }

    fn init(conn: Connection, path: String) -> Result<Self> {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS encoded (
                 model TEXT NOT NULL, stack TEXT NOT NULL, max_len INTEGER NOT NULL, text_sha256 BLOB NOT NULL,
                 tokens INTEGER NOT NULL, hidden BLOB NOT NULL,
                 PRIMARY KEY (model, stack, max_len, text_sha256)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS vectors (
                 namespace TEXT NOT NULL, key BLOB NOT NULL, data BLOB NOT NULL,
                 PRIMARY KEY (namespace, key)) WITHOUT ROWID;",
        )
        .map_err(|e| ModelError::file(&path, e))?;
        // Caches written before half precision have no `dtype` column: their rows are f32.
        let has_dtype = conn
            .prepare("SELECT 1 FROM pragma_table_info('encoded') WHERE name = 'dtype'")
            .and_then(|mut s| s.exists([]))
            .map_err(|e| ModelError::file(&path, e))?;
        if !has_dtype {
            conn.execute_batch("ALTER TABLE encoded ADD COLUMN dtype TEXT NOT NULL DEFAULT 'f32'")
                .map_err(|e| ModelError::file(&path, e))?;
        }
        Ok(Self { conn, path })
    }

    /// Number of cached texts.
    pub fn len(&self) -> Result<usize> {
        self.conn
            .query_row("SELECT count(*) FROM encoded", [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(|e| ModelError::file(&self.path, e))
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Cached texts and the bytes their states take (the stored values, without SQLite's overhead).
    pub fn size(&self) -> Result<(usize, u64)> {
        self.conn
            .query_row("SELECT count(*), coalesce(sum(length(hidden)), 0) FROM encoded", [], |r| {
                Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as u64))
            })
            .map_err(|e| ModelError::file(&self.path, e))
    }

    /// Tokens stored in all (every text's real tokens).
    pub fn tokens(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT coalesce(sum(tokens), 0) FROM encoded", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| ModelError::file(&self.path, e))
    }

    /// The vectors stored under `namespace` for `keys` (`None` where there is none).
    pub fn vectors(&self, namespace: &str, keys: &[[u8; 32]]) -> Result<Vec<Option<Vec<f32>>>> {
        let mut lookup = self
            .conn
            .prepare_cached("SELECT data FROM vectors WHERE namespace = ?1 AND key = ?2")
            .map_err(|e| ModelError::file(&self.path, e))?;
        keys.iter()
            .map(|key| {
                lookup
                    .query_row(params![namespace, &key[..]], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
                    .map(|row| row.map(|bytes| f16_bytes_to_f32(&bytes)))
                    .map_err(|e| ModelError::file(&self.path, e))
            })
            .collect()
    }

    /// Stores `rows` under `namespace` (replacing what the same keys had), in one transaction.
    pub fn put_vectors(&mut self, namespace: &str, rows: &[([u8; 32], Vec<f32>)]) -> Result<()> {
        let tx = self.conn.transaction().map_err(|e| ModelError::file(&self.path, e))?;
        {
            let mut insert = tx
                .prepare_cached("INSERT OR REPLACE INTO vectors (namespace, key, data) VALUES (?1, ?2, ?3)")
                .map_err(|e| ModelError::file(&self.path, e))?;
            for (key, values) in rows {
                insert
                    .execute(params![namespace, &key[..], f32_to_f16_bytes(values)])
                    .map_err(|e| ModelError::file(&self.path, e))?;
            }
        }
        tx.commit().map_err(|e| ModelError::file(&self.path, e))
    }

    /// The `stack` outputs of `encoder` for `texts`, encoding (and caching) only those not cached yet.
    pub fn encode(&mut self, encoder: &Encoder, stack: Stack, texts: &[&str]) -> Result<(Encoded, CacheStats)> {
        let max_len = encoder.options().max_len;
        let hidden_size = encoder.hidden_size();
        let (rows, stats) = self.rows(encoder, stack, texts)?;
        // Assemble (n, max_len, hidden) with zero padding rows, and the mask.
        let n = texts.len();
        let mut hidden = vec![0f32; n * max_len * hidden_size];
        let mut mask = vec![0f32; n * max_len];
        for (i, (tokens, values)) in rows.into_iter().enumerate() {
            let start = i * max_len * hidden_size;
            hidden[start..start + values.len()].copy_from_slice(&values);
            mask[i * max_len..i * max_len + tokens].fill(1.0);
        }
        let device = encoder.device();
        let hidden =
            Tensor::from_vec(hidden, (n, max_len, hidden_size), device).map_err(ModelError::candle("cache"))?;
        let mask = Tensor::from_vec(mask, (n, max_len), device).map_err(ModelError::candle("cache"))?;
        Ok((Encoded { hidden, mask }, stats))
    }

    /// The `stack` outputs of `encoder` for `texts` as (real tokens, their states: tokens x hidden values), without
    /// padding; encodes (and caches) only those not cached yet.
    pub fn rows(&mut self, encoder: &Encoder, stack: Stack, texts: &[&str]) -> Result<(Vec<Row>, CacheStats)> {
        let max_len = encoder.options().max_len;
        let hidden_size = encoder.hidden_size();
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| Sha256::digest(t.as_bytes()).into()).collect();
        let mut rows: Vec<Option<(usize, Vec<f32>)>> = Vec::with_capacity(texts.len());
        {
            let mut lookup = self
                .conn
                .prepare_cached(
                    "SELECT tokens, hidden, dtype FROM encoded WHERE model = ?1 AND stack = ?2 AND max_len = ?3 \
                     AND text_sha256 = ?4",
                )
                .map_err(|e| ModelError::file(&self.path, e))?;
            for key in &keys {
                let row = lookup
                    .query_row(params![encoder.id(), stack.as_str(), max_len as i64, &key[..]], |r| {
                        Ok((r.get::<_, i64>(0)? as usize, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?))
                    })
                    .optional()
                    .map_err(|e| ModelError::file(&self.path, e))?;
                rows.push(row.map(|(n, bytes, dtype)| (n, decode(&dtype, &bytes, hidden_size))));
            }
        }
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| rows[i].is_none()).collect();
        let precision = Precision::from_env();
        let stats = CacheStats { hits: texts.len() - missing.len(), encoded: missing.len() };
        if !missing.is_empty() {
            // Similar lengths batched together, so that each batch pads little (see `Encoder::encode_rows`).
            let mut missing = missing;
            missing.sort_by_key(|&i| texts[i].len());
            let missing_texts: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let encoded = encoder.encode_rows(&missing_texts, stack == Stack::Full)?;
            let tx = self.conn.transaction().map_err(|e| ModelError::file(&self.path, e))?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO encoded (model, stack, max_len, text_sha256, tokens, hidden, dtype) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )
                    .map_err(|e| ModelError::file(&self.path, e))?;
                for (&i, (tokens, values)) in missing.iter().zip(&encoded) {
                    let tokens = *tokens;
                    let bytes = precision.encode(values, hidden_size);
                    insert
                        .execute(params![
                            encoder.id(),
                            stack.as_str(),
                            max_len as i64,
                            &keys[i][..],
                            tokens as i64,
                            &bytes,
                            precision.as_str()
                        ])
                        .map_err(|e| ModelError::file(&self.path, e))?;
                    // What the cache gives back later, so that a first run and a cached one see the same values.
                    rows[i] = Some((tokens, decode(precision.as_str(), &bytes, hidden_size)));
                }
            }
            tx.commit().map_err(|e| ModelError::file(&self.path, e))?;
        }
        let rows = rows.into_iter().map(|r| r.expect("every row is cached or encoded")).collect();
        Ok((rows, stats))
    }
}

/// What encoding a set of texts will take: how many are cached already, how many are not, their real tokens and
/// the bytes their states will take in the cache (at its half precision, without SQLite's small overhead).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncodePlan {
    pub cached: usize,
    pub missing: usize,
    pub tokens: usize,
    pub bytes: u64,
}

impl std::fmt::Display for EncodePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} texts to encode ({} tokens; {} already cached): about {:.1} MB more in the cache ({:.0} bytes a text)",
            self.missing,
            self.tokens,
            self.cached,
            self.bytes as f64 / 1e6,
            self.bytes as f64 / self.missing.max(1) as f64
        )
    }
}

impl EncoderCache {
    /// The plan of encoding `texts` with `encoder` into `stack`: tokenises the ones not cached (no model runs).
    pub fn plan(&self, encoder: &Encoder, stack: Stack, texts: &[String]) -> Result<EncodePlan> {
        let max_len = encoder.options().max_len as i64;
        let mut exists = self
            .conn
            .prepare_cached(
                "SELECT 1 FROM encoded WHERE model = ?1 AND stack = ?2 AND max_len = ?3 AND text_sha256 = ?4",
            )
            .map_err(|e| ModelError::file(&self.path, e))?;
        let mut missing: Vec<&str> = Vec::new();
        for t in texts {
            let key: [u8; 32] = Sha256::digest(t.as_bytes()).into();
            let found = exists
                .exists(params![encoder.id(), stack.as_str(), max_len, &key[..]])
                .map_err(|e| ModelError::file(&self.path, e))?;
            if !found {
                missing.push(t);
            }
        }
        let mut tokens = 0;
        for chunk in missing.chunks(256) {
            tokens += encoder.tokenize(chunk)?.lengths.iter().sum::<usize>();
        }
        Ok(EncodePlan {
            cached: texts.len() - missing.len(),
            missing: missing.len(),
            tokens,
            bytes: (tokens * Precision::from_env().bytes_per_token(encoder.hidden_size())) as u64,
        })
    }
}

/// Encodes every text of `texts` not cached yet, a batch at a time, reporting progress and stopping between
/// batches when cancelled (what is cached stays cached). Returns how many were already there and how many were
/// encoded now.
pub fn encode_all(
    cache: &mut EncoderCache,
    encoder: &Encoder,
    stack: Stack,
    texts: &[String],
    progress: &dyn Progress,
) -> Result<CacheStats> {
    let started = std::time::Instant::now();
    let mut total = CacheStats::default();
    let batch = encoder.options().batch_size.max(1);
    // Texts of similar lengths in the same batch: each batch is padded only to its longest text.
    let mut texts: Vec<&String> = texts.iter().collect();
    texts.sort_by_key(|t| t.len());
    for (i, chunk) in texts.chunks(batch).enumerate() {
        if progress.is_cancelled() {
            return Err(crate::jobs::Cancelled.into());
        }
        let refs: Vec<&str> = chunk.iter().map(|t| t.as_str()).collect();
        let (_, stats) = cache.encode(encoder, stack, &refs)?;
        total.hits += stats.hits;
        total.encoded += stats.encoded;
        let done = (i * batch + chunk.len()) as u64;
        let rate = total.encoded as f64 / started.elapsed().as_secs_f64().max(1e-9);
        progress.set(done, texts.len() as u64, &format!("{done}/{} texts · {rate:.1} encoded/s", texts.len()));
    }
    Ok(total)
}

/// Where the encoder cache of the database `db` lives: beside it, `NAME.encoder-cache.sqlite`.
pub fn cache_path_for(db: &Path) -> std::path::PathBuf {
    let name = db.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "argus".into());
    db.with_file_name(format!("{name}.encoder-cache.sqlite"))
}

fn f32_to_f16_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect()
}

fn f16_bytes_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
}

/// Bytes the cache stores per token of a `hidden`-wide encoder (at the precision it writes).
pub fn bytes_per_token(hidden: usize) -> usize {
    Precision::from_env().bytes_per_token(hidden)
}

/// Values per scale in the `q8` rows.
const GROUP: usize = 32;

/// How the cache writes token states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// 8-bit integers, a half-precision scale (largest magnitude / 127) per group of 32 values of a token.
    Q8,
    /// IEEE half precision.
    F16,
}

impl Precision {
    /// `q8`, unless `ARGUS_CACHE_PRECISION=f16`.
    pub fn from_env() -> Self {
        match std::env::var("ARGUS_CACHE_PRECISION").as_deref() {
            Ok("f16") => Self::F16,
            _ => Self::Q8,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Q8 => "q8",
            Self::F16 => "f16",
        }
    }

    pub fn bytes_per_token(self, hidden: usize) -> usize {
        match self {
            Self::Q8 => hidden + 2 * hidden.div_ceil(GROUP),
            Self::F16 => hidden * 2,
        }
    }

    /// Token rows (`hidden` values each) into bytes.
    pub fn encode(self, values: &[f32], hidden: usize) -> Vec<u8> {
        match self {
            Self::F16 => f32_to_f16_bytes(values),
            Self::Q8 => {
                let mut out = Vec::with_capacity(values.len() / hidden.max(1) * self.bytes_per_token(hidden));
                for token in values.chunks(hidden.max(1)) {
                    for group in token.chunks(GROUP) {
                        let max = group.iter().fold(0f32, |m, v| m.max(v.abs()));
                        // The scale as stored (f16), so that quantising and reading back use the same number.
                        let scale = half::f16::from_f32(max / 127.0);
                        let s = scale.to_f32();
                        out.extend_from_slice(&scale.to_le_bytes());
                        for v in group {
                            let q = if s > 0.0 { (v / s).round().clamp(-127.0, 127.0) } else { 0.0 };
                            out.push(q as i8 as u8);
                        }
                    }
                }
                out
            }
        }
    }
}

/// Stored bytes back into f32 values, by the row's `dtype`.
fn decode(dtype: &str, bytes: &[u8], hidden: usize) -> Vec<f32> {
    match dtype {
        "f32" => bytes_to_f32(bytes),
        "f16" => f16_bytes_to_f32(bytes),
        _ => {
            let per_token = Precision::Q8.bytes_per_token(hidden);
            let mut out = Vec::with_capacity(bytes.len() / per_token.max(1) * hidden);
            for token in bytes.chunks(per_token.max(1)) {
                let mut rest = token;
                while rest.len() > 2 {
                    let scale = half::f16::from_le_bytes([rest[0], rest[1]]).to_f32();
                    let n = GROUP.min(rest.len() - 2);
                    out.extend(rest[2..2 + n].iter().map(|&q| q as i8 as f32 * scale));
                    rest = &rest[2 + n..];
                }
            }
            out
        }
    }
}

fn bytes_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_rows_round_trip_within_a_254th_of_their_group_and_take_408_bytes_a_token() {
        let hidden = 384;
        let values: Vec<f32> =
            (0..3 * hidden).map(|i| ((i * 7919 % 1000) as f32 / 100.0 - 5.0) * (1 + i % 3) as f32).collect();
        let bytes = Precision::Q8.encode(&values, hidden);
        assert_eq!(bytes.len(), 3 * 408);
        assert_eq!(Precision::Q8.bytes_per_token(hidden), 408);
        let back = decode("q8", &bytes, hidden);
        assert_eq!(back.len(), values.len());
        for (group, got) in values.chunks(GROUP).zip(back.chunks(GROUP)) {
            let max = group.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (v, g) in group.iter().zip(got) {
                // Half a step of max/127, plus the f16 rounding of the scale.
                assert!((v - g).abs() <= max / 254.0 * 1.01 + 1e-6, "{v} read back as {g} (group max {max})");
            }
        }
        // A width that is not a multiple of the group, and zeros.
        let odd: Vec<f32> = (0..2 * 40).map(|i| if i % 5 == 0 { 0.0 } else { i as f32 / 7.0 }).collect();
        let back = decode("q8", &Precision::Q8.encode(&odd, 40), 40);
        assert_eq!(back.len(), odd.len());
        assert!(odd.iter().zip(&back).all(|(v, g)| (v - g).abs() < 0.05), "{back:?}");
        assert_eq!(decode("q8", &Precision::Q8.encode(&[0.0; 64], 64), 64), vec![0.0; 64]);
    }

    #[test]
    fn rows_written_as_f32_or_f16_are_still_read() {
        let values = [1.5f32, -2.25, 0.0, 3.0];
        let f32_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(decode("f32", &f32_bytes, 4), values);
        assert_eq!(decode("f16", &Precision::F16.encode(&values, 4), 4), values);
    }
}
