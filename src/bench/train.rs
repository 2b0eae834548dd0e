//! `argus bench train`: the guidance model's training speed.
//!
//! 1. **One ARG training step** (batch 64, length 170, N perspectives, forward + backward + Adam) on the demo
//!    encoder's top layer and ARG's head, from cached frozen states, beside the PyTorch peer
//!    (`benches/peers/arg_step_torch.py`) doing the same work on the same shapes and threads in the same run. Both
//!    pad every text to the full length (the peer's reference behaviour); Argus's own default, padding each batch to
//!    its longest text, is timed too.
//! 2. **One incremental retrain on 1,000 new judgements**: a database of LIAR2 claims (the bundled demo repeated
//!    when the full file is absent) with its PolitiFact justifications as the one rationale perspective, a first
//!    version, then 1,000 judgements and a retrain from that version, its frozen features already cached.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, VarMap};
use rand::{Rng, SeedableRng};

use super::median;
use super::models::{python, run_peer};
use crate::domain::ModelKind;
use crate::guidance::arg::ArgConfig;
use crate::guidance::argd::ArgdConfig;
use crate::guidance::bert::BertConfigHead;
use crate::guidance::net::{self, Architecture, Batch, Net};
use crate::guidance::train::{TrainOptions, TrainRequest, train};
use crate::jobs::NoProgress;
use crate::models::encoder::Dropout;

/// Step timings.
pub struct StepReport {
    pub threads: usize,
    pub batch: usize,
    pub len: usize,
    pub perspectives: usize,
    pub fill: f64,
    /// Median seconds, padded to `len` (the peer's shapes).
    pub argus_full_pad: f64,
    /// Median seconds, padded to the longest real text of the batch (Argus's default).
    pub argus_dynamic_pad: f64,
    pub peer: Result<f64, String>,
    pub peer_full: Result<f64, String>,
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ARG training step: batch {}, length {} ({:.0}% real tokens), {} perspectives, {} thread(s), forward + backward + Adam",
            self.batch,
            self.len,
            self.fill * 100.0,
            self.perspectives,
            self.threads
        )?;
        writeln!(f, "  argus (candle), padded to {:>3}:         {:>8.3} s (median)", self.len, self.argus_full_pad)?;
        match &self.peer {
            Ok(p) => writeln!(
                f,
                "  pytorch peer, same work:              {:>8.3} s (median)   argus speed = {:.2}x the peer's",
                p,
                p / self.argus_full_pad
            )?,
            Err(e) => writeln!(f, "  pytorch peer: {e}")?,
        }
        match &self.peer_full {
            Ok(p) => writeln!(
                f,
                "  pytorch, as the reference code runs (whole BERT every step): {:>8.3} s   argus = {:.2}x",
                p,
                p / self.argus_full_pad
            )?,
            Err(e) => writeln!(f, "  pytorch reference-style step: {e}")?,
        }
        writeln!(f, "  argus default, padded to the batch's longest text: {:>8.3} s (median)", self.argus_dynamic_pad)
    }
}

/// Times one ARG training step on random frozen states against the PyTorch peer.
#[allow(clippy::too_many_arguments)]
pub fn step(
    encoder_dir: &Path,
    batch: usize,
    len: usize,
    perspectives: usize,
    fill: f64,
    reps: usize,
    with_peer: bool,
    peer_full: bool,
) -> anyhow::Result<StepReport> {
    let device = Device::Cpu;
    let config: candle_transformers::models::bert::Config =
        serde_json::from_str(&std::fs::read_to_string(encoder_dir.join("config.json"))?)?;
    let real = ((len as f64) * fill).round().max(1.0) as usize;
    let time_with = |pad: usize| -> anyhow::Result<f64> {
        let varmap = VarMap::new();
        let arch = Architecture {
            kind: ModelKind::Arg,
            perspectives: (0..perspectives).map(|i| format!("p{i}")).collect(),
            arg: ArgConfig { perspectives, ..ArgConfig::default() },
            argd: ArgdConfig::default(),
            bert: BertConfigHead::default(),
        };
        let model = Net::build(&varmap, &arch, &config, &device)?;
        net::seeded_init(&varmap, 0)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let d = config.hidden_size;
        let mut states = || -> candle_core::Result<(Tensor, Tensor)> {
            let values: Vec<f32> = (0..batch * pad * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut mask = vec![0f32; batch * pad];
            for b in 0..batch {
                mask[b * pad..b * pad + real].fill(1.0);
            }
            Ok((Tensor::from_vec(values, (batch, pad, d), &device)?, Tensor::from_vec(mask, (batch, pad), &device)?))
        };
        let news = states()?;
        let rationales = (0..perspectives).map(|_| states()).collect::<candle_core::Result<Vec<_>>>()?;
        let label = Tensor::from_vec((0..batch).map(|i| (i % 2) as f32).collect::<Vec<_>>(), batch, &device)?;
        let useful = (0..perspectives)
            .map(|_| {
                Tensor::from_vec((0..batch).map(|i| (i % 3 == 0) as u8 as f32).collect::<Vec<_>>(), batch, &device)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let judgement = (0..perspectives)
            .map(|_| Tensor::from_vec((0..batch).map(|i| (i % 3) as u32).collect::<Vec<_>>(), batch, &device))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let batch_tensors = Batch { news, rationales, label, useful, judgement, present: vec![], teacher: None };
        let mut optimizer = crate::models::kernels::AdamW::new(
            varmap.all_vars(),
            candle_nn::ParamsAdamW { lr: 5e-5, weight_decay: 5e-5, ..Default::default() },
        )?;
        let dropout = Dropout::new(1);
        let mut times = Vec::new();
        for i in 0..=reps.max(1) {
            let t = Instant::now();
            let loss = model.loss(&batch_tensors, Some(&dropout))?;
            optimizer.backward_step(&loss)?;
            let _ = loss.to_dtype(DType::F32)?.to_scalar::<f32>()?;
            if i > 0 {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        Ok(median(times))
    };
    let argus_full_pad = time_with(len)?;
    let argus_dynamic_pad = time_with(real)?;
    let threads = candle_core::utils::get_num_threads();
    let run = |mode: &str| -> Result<f64, String> {
        if !with_peer {
            return Err("skipped (--no-peer)".into());
        }
        let py = python("ARGUS_PEER_PYTHON", ".venv-peers")
            .ok_or("PyTorch peer not installed (run benches/peers/setup.sh, or set ARGUS_PEER_PYTHON)")?;
        let v = run_peer(
            &py,
            "arg_step_torch.py",
            &[
                "--bert-dir".into(),
                encoder_dir.display().to_string(),
                "--batch".into(),
                batch.to_string(),
                "--len".into(),
                len.to_string(),
                "--perspectives".into(),
                perspectives.to_string(),
                "--threads".into(),
                threads.to_string(),
                "--steps".into(),
                reps.max(1).to_string(),
                "--fill".into(),
                fill.to_string(),
                "--mode".into(),
                mode.into(),
            ],
        )?;
        v["median_secs"].as_f64().ok_or_else(|| format!("peer printed no median_secs: {v}"))
    };
    let peer = run("cached");
    let peer_full = if peer_full { run("full") } else { Err("skipped (add --peer-full)".into()) };
    Ok(StepReport { threads, batch, len, perspectives, fill, argus_full_pad, argus_dynamic_pad, peer, peer_full })
}

/// The incremental retrain figure.
pub struct RetrainReport {
    pub items: usize,
    pub judgements: usize,
    pub encode_secs: f64,
    pub first_secs: f64,
    pub epochs: usize,
    pub retrain_secs: f64,
    /// The full retrain's batches were grouped by length (`TrainOptions::length_grouped`).
    pub length_grouped: bool,
    /// The full retrain's time by phase.
    pub retrain_phases: Vec<(&'static str, f64)>,
    pub retrain_train_secs: f64,
    pub per_epoch_secs: f64,
    pub encoded_during_retrain: usize,
    pub threads: usize,
    pub kind: ModelKind,
    pub macro_f1_before: f64,
    pub macro_f1_after: f64,
    /// "test", or "validation" when the data has no test split (e.g. LIAR2's valid.csv alone).
    pub metric_split: &'static str,
    /// Validation macro-F1 of the full retrain and of the quick one.
    pub full_val_f1: f64,
    /// The quick retrain (head only, from the same first version, on its cached pooled inputs).
    pub quick_secs: f64,
    pub quick_epochs: usize,
    pub quick_val_f1: f64,
    pub quick_metric_after: f64,
    /// Texts in the encoder cache and the bytes their stored states take, per text.
    pub cache_texts: usize,
    pub cache_bytes_per_text: f64,
    /// Real tokens a cached text has on average (what the bytes per text depend on).
    pub cache_tokens_per_text: f64,
}

impl fmt::Display for RetrainReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "incremental {} retrain on {} new judgements ({} items, {} thread(s), frozen features cached: {} texts encoded during the retrain)",
            self.kind.human_name(),
            self.judgements,
            self.items,
            self.threads,
            self.encoded_during_retrain
        )?;
        writeln!(f, "  caching frozen features first (not timed below): {:.1} s", self.encode_secs)?;
        writeln!(f, "  first version: {:.1} s", self.first_secs)?;
        writeln!(
            f,
            "  full retrain from it (top layer + head), {} epoch(s) max, over every labelled item (people's labels \
             counted twice), batches {}: {:.1} s in all (training loop {:.1} s, {:.1} s per epoch), goal < 60 s",
            self.epochs,
            if self.length_grouped { "grouped by length" } else { "drawn at random" },
            self.retrain_secs,
            self.retrain_train_secs,
            self.per_epoch_secs
        )?;
        let phases: Vec<String> = self.retrain_phases.iter().map(|(name, s)| format!("{name} {s:.1} s")).collect();
        writeln!(f, "    where its time went: {}", phases.join(", "))?;
        writeln!(
            f,
            "  {} macro-F1 {:.4} -> {:.4} (validation {:.4})",
            self.metric_split, self.macro_f1_before, self.macro_f1_after, self.full_val_f1
        )?;
        writeln!(
            f,
            "  quick retrain from the same version (head only, cached pooled inputs): {:.2} s, {} epoch(s), {} \
             macro-F1 {:.4} (validation {:.4}, {:+.4} against the full retrain), goal < 10 s",
            self.quick_secs,
            self.quick_epochs,
            self.metric_split,
            self.quick_metric_after,
            self.quick_val_f1,
            self.quick_val_f1 - self.full_val_f1
        )?;
        writeln!(
            f,
            "  encoder cache: {} texts, {:.0} bytes per text (rows written at {}; a text is {:.0} tokens on average)",
            self.cache_texts,
            self.cache_bytes_per_text,
            crate::models::encoder_cache::Precision::from_env().as_str(),
            self.cache_tokens_per_text
        )
    }
}

/// Builds the bench database and times one incremental retrain.
pub fn retrain(
    data: Option<&Path>,
    encoder: &str,
    kind: ModelKind,
    judgements: usize,
    epochs: usize,
    length_grouped: bool,
) -> anyhow::Result<RetrainReport> {
    // A fresh database each time, but its encoder cache is kept between runs (the figure assumes cached features).
    let dir = std::env::temp_dir().join("argus-bench-train");
    let db: PathBuf = dir.join("bench-train.db");
    for stale in [db.clone(), db.with_extension("db-wal"), db.with_extension("db-shm")] {
        let _ = std::fs::remove_file(stale);
    }
    let _ = std::fs::remove_dir_all(crate::guidance::train::weights_dir_for(&db));
    let mut store = crate::store::Store::open(&db)?;
    let liar2 = data
        .map(Path::to_path_buf)
        .or_else(|| Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/liar2/valid.csv")))
        .filter(|p| p.is_file());
    match &liar2 {
        Some(path) => {
            crate::ingest::import_files(&mut store, std::slice::from_ref(path), &Default::default(), &NoProgress)?;
        }
        None => {
            for _ in 0..judgements.div_ceil(300) + 1 {
                crate::studio::import_demo(&mut store, &NoProgress)?;
            }
        }
    }
    let items = store.item_ids()?;
    let started = Instant::now();
    crate::encoding::encode_database(&db, encoder, crate::models::DeviceChoice::Cpu, 170, &NoProgress, &mut |_| {})?;
    let encode_secs = started.elapsed().as_secs_f64();
    let options = TrainOptions { max_epochs: 1, ..TrainOptions::default() };
    let first = train(
        &db,
        &TrainRequest { options: options.clone(), encoder: encoder.into(), ..TrainRequest::new(kind) },
        &NoProgress,
        &mut |_| {},
    )?;
    // 1,000 judgements by one annotator: the gold label, one in ten flipped (people disagree with the data).
    let annotator = store.annotator_id("bench")?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let golds = store.training_items()?;
    for item in golds.iter().filter(|i| i.gold.is_some()).take(judgements) {
        let gold = item.gold.expect("filtered");
        let verdict = if rng.random_bool(0.1) {
            match gold {
                crate::domain::Verdict::Fake => crate::domain::Verdict::Real,
                _ => crate::domain::Verdict::Fake,
            }
        } else {
            gold
        };
        store.record_judgement(&crate::domain::NewJudgement {
            item_id: item.id,
            annotator_id: annotator,
            verdict,
            confidence: None,
            note: None,
            time_spent_ms: 0,
        })?;
    }
    drop(store);
    let t = Instant::now();
    let options = TrainOptions { max_epochs: epochs, length_grouped, ..TrainOptions::default() };
    let again = train(
        &db,
        &TrainRequest { from: Some(first.version), options, encoder: encoder.into(), ..TrainRequest::new(kind) },
        &NoProgress,
        &mut |_| {},
    )?;
    let retrain_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let quick = train(
        &db,
        &TrainRequest {
            from: Some(first.version),
            options: TrainOptions::quick(),
            encoder: encoder.into(),
            ..TrainRequest::new(kind)
        },
        &NoProgress,
        &mut |_| {},
    )?;
    let quick_secs = t.elapsed().as_secs_f64();
    let cache = crate::models::encoder_cache::EncoderCache::open(&crate::models::encoder_cache::cache_path_for(&db))?;
    let (cache_texts, cache_bytes) = cache.size()?;
    let cache_tokens_per_text = cache.tokens()? as f64 / cache_texts.max(1) as f64;
    let after = |r: &crate::guidance::train::TrainReport| if r.test.n > 0 { r.test.macro_f1 } else { r.val.macro_f1 };
    Ok(RetrainReport {
        full_val_f1: again.val.macro_f1,
        quick_secs,
        quick_epochs: quick.epochs.len(),
        quick_val_f1: quick.val.macro_f1,
        quick_metric_after: after(&quick),
        cache_texts,
        cache_bytes_per_text: cache_bytes as f64 / cache_texts.max(1) as f64,
        cache_tokens_per_text,
        items: items.len(),
        judgements,
        encode_secs,
        first_secs: first.total_secs,
        epochs,
        retrain_secs,
        length_grouped,
        retrain_phases: again.phases.clone(),
        retrain_train_secs: again.train_secs,
        per_epoch_secs: median(again.epochs.iter().map(|e| e.seconds).collect()),
        encoded_during_retrain: again.encoded_texts,
        threads: candle_core::utils::get_num_threads(),
        kind,
        macro_f1_before: if first.test.n > 0 { first.test.macro_f1 } else { first.val.macro_f1 },
        macro_f1_after: if again.test.n > 0 { again.test.macro_f1 } else { again.val.macro_f1 },
        metric_split: if again.test.n > 0 { "test" } else { "validation" },
    })
}
