//! A cache of encoder outputs per (model, layer stack, length, text hash), so that no text is encoded twice: ARG's
//! incremental retraining reads the frozen layers' outputs from here.
//!
//! It is a SQLite file of its own (never the user's database: it can be deleted at any time and is rebuilt on
//! demand). Only the real (non-padding) token rows are stored, at half precision (little-endian f16: 768 bytes a
//! token for a 384-wide encoder; rows written by older versions as f32 are still read). A second table holds
//! vectors per key and namespace: the pooled inputs of a model version's head, per item (`guidance::head`).

use std::path::Path;

use candle_core::{DType, Tensor};
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
                rows.push(row.map(|(n, bytes, dtype)| {
                    (n, if dtype == "f32" { bytes_to_f32(&bytes) } else { f16_bytes_to_f32(&bytes) })
                }));
            }
        }
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| rows[i].is_none()).collect();
        let stats = CacheStats { hits: texts.len() - missing.len(), encoded: missing.len() };
        if !missing.is_empty() {
            let missing_texts: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let encoded = match stack {
                Stack::Frozen => encoder.encode_frozen(&missing_texts)?,
                Stack::Full => encoder.encode(&missing_texts)?,
            };
            let hidden = to_host(&encoded.hidden)?;
            let mask = to_host(&encoded.mask)?;
            let tx = self.conn.transaction().map_err(|e| ModelError::file(&self.path, e))?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO encoded (model, stack, max_len, text_sha256, tokens, hidden, dtype) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'f16')",
                    )
                    .map_err(|e| ModelError::file(&self.path, e))?;
                for (j, &i) in missing.iter().enumerate() {
                    let tokens = mask[j * max_len..(j + 1) * max_len].iter().filter(|&&m| m > 0.5).count();
                    let start = j * max_len * hidden_size;
                    let bytes = f32_to_f16_bytes(&hidden[start..start + tokens * hidden_size]);
                    insert
                        .execute(params![
                            encoder.id(),
                            stack.as_str(),
                            max_len as i64,
                            &keys[i][..],
                            tokens as i64,
                            &bytes
                        ])
                        .map_err(|e| ModelError::file(&self.path, e))?;
                    // What the cache gives back later, so that a first run and a cached one see the same values.
                    rows[i] = Some((tokens, f16_bytes_to_f32(&bytes)));
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
            bytes: (tokens * bytes_per_token(encoder.hidden_size())) as u64,
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
    for (i, chunk) in texts.chunks(batch).enumerate() {
        if progress.is_cancelled() {
            return Err(crate::jobs::Cancelled.into());
        }
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
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

fn to_host(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(ModelError::candle("cache"))
}

fn f32_to_f16_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect()
}

fn f16_bytes_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
}

/// Bytes the cache stores per token of a `hidden`-wide encoder.
pub fn bytes_per_token(hidden: usize) -> usize {
    hidden * 2
}

fn bytes_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}
