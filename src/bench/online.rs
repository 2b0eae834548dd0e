//! The online learner's latency: from the eighth judgement to a re-ordered list (the learner's update: labels
//! re-read, a few head steps, every item predicted; then the workspace re-orders by the new predictions, the
//! selection kept), on the demo database (300 items) and on the demo repeated to about 10,000 items, one ARG version
//! for both (trained once on the demo, its cached head inputs shared).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng as _, SeedableRng as _};

use super::median;
use crate::domain::{ModelKind, Verdict};
use crate::guidance::online::{OnlineLearner, OnlineOptions};
use crate::guidance::train::{TrainOptions, TrainRequest, train};
use crate::guidance::triage::Order;
use crate::jobs::NoProgress;
use crate::models::encoder_cache::cache_path_for;
use crate::store::Store;
use crate::store::guidance::NewModelVersion;
use crate::studio::{Command, LivePredictions, Workspace};

/// Latencies of one database.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OnlineLatency {
    pub items: usize,
    pub rounds: usize,
    /// Median seconds from the judgement to the re-ordered list, and its two parts.
    pub total_secs: f64,
    pub update_secs: f64,
    pub reorder_secs: f64,
    /// Median number of shown items that changed place.
    pub moved: usize,
    /// Median labels learned from (judgements of training items) and optimiser steps per update.
    pub new_labels: usize,
    pub steps: usize,
}

/// Both databases.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OnlineReport {
    pub threads: usize,
    /// The two databases (kept in the temp folder).
    pub small_db: PathBuf,
    pub big_db: PathBuf,
    pub small: OnlineLatency,
    pub big: OnlineLatency,
}

impl fmt::Display for OnlineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "online learning, ARG, every 8 judgements, {} thread(s): judgement -> re-ordered list (median of {} updates)",
            self.threads, self.small.rounds
        )?;
        for (l, goal) in [(&self.small, "goal < 1 s"), (&self.big, "goal < 3 s")] {
            writeln!(
                f,
                "  {:>6} items: {:.3} s (update {:.3} s + re-order {:.3} s), {} new training labels, {} steps, {} items \
                 moved, {goal}",
                l.items, l.total_secs, l.update_secs, l.reorder_secs, l.new_labels, l.steps, l.moved
            )?;
        }
        Ok(())
    }
}

/// Measures `rounds` updates on each database (kept in the temp folder between runs with their encoder caches).
pub fn online(encoder: &str, rounds: usize, big_items: usize) -> anyhow::Result<OnlineReport> {
    let dir = std::env::temp_dir().join("argus-bench-online");
    std::fs::create_dir_all(&dir)?;
    let small = dir.join("demo.db");
    let version = demo_version(&small, encoder)?;
    let big = dir.join(format!("demo-x{big_items}.db"));
    repeated(&small, version, &big, big_items)?;
    Ok(OnlineReport {
        threads: candle_core::utils::get_num_threads(),
        small: latency(&small, rounds)?,
        big: latency(&big, rounds)?,
        small_db: small,
        big_db: big,
    })
}

/// The demo database with an ARG version in use (trained here once, one epoch, then reused).
fn demo_version(db: &Path, encoder: &str) -> anyhow::Result<i64> {
    if db.is_file() {
        let store = Store::open(db)?;
        if let Some(v) = store.active_version(ModelKind::Arg)? {
            return Ok(v);
        }
    }
    remove_db(db);
    let mut store = Store::open(db)?;
    crate::studio::import_demo(&mut store, &NoProgress)?;
    drop(store);
    let request = TrainRequest {
        encoder: encoder.into(),
        options: TrainOptions { max_epochs: 1, ..TrainOptions::default() },
        ..TrainRequest::new(ModelKind::Arg)
    };
    Ok(train(db, &request, &NoProgress, &mut |_| {})?.version)
}

/// A database of the demo imported until it holds `items`, with `version` of `small` (same weights file) in use
/// and `small`'s encoder cache (its head inputs are keyed by the texts, so they serve every copy).
fn repeated(small: &Path, version: i64, big: &Path, items: usize) -> anyhow::Result<()> {
    let source = Store::open(small)?.model_version(version)?;
    if big.is_file() {
        let store = Store::open(big)?;
        let same = store
            .active_version(ModelKind::Arg)?
            .map(|v| store.model_version(v))
            .transpose()?
            .is_some_and(|v| v.weights_sha256 == source.weights_sha256);
        if same {
            return Ok(());
        }
    }
    remove_db(big);
    let mut store = Store::open(big)?;
    while store.item_ids()?.len() < items {
        crate::studio::import_demo(&mut store, &NoProgress)?;
    }
    let run = store.start_training_run(&source.data_snapshot)?;
    store.add_model_version(
        run,
        &NewModelVersion {
            kind: ModelKind::Arg,
            parent_id: None,
            config: source.config.clone(),
            metrics: source.metrics.clone(),
            weights_path: source.weights_path.clone().unwrap_or_default(),
            weights_sha256: source.weights_sha256.clone().unwrap_or_default(),
            seconds_taken: source.seconds_taken.unwrap_or(0.0),
            data_snapshot: source.data_snapshot.clone(),
            epochs: serde_json::json!([]),
        },
    )?;
    std::fs::copy(cache_path_for(small), cache_path_for(big))?;
    Ok(())
}

fn remove_db(db: &Path) {
    let wal = |ext: &str| PathBuf::from(format!("{}{ext}", db.display()));
    for stale in [db.to_owned(), wal("-wal"), wal("-shm"), cache_path_for(db)] {
        let _ = std::fs::remove_file(stale);
    }
}

/// Judges 8 items, then times the update and the re-order, `rounds` times (nothing is checkpointed).
fn latency(db: &Path, rounds: usize) -> anyhow::Result<OnlineLatency> {
    let mut ws = Workspace::open(db, "bench", false, &NoProgress)?;
    ws.apply(Command::SetOrder(Order::Risk))?;
    let options = OnlineOptions { checkpoint_every: usize::MAX, ..OnlineOptions::default() };
    let mut learner = OnlineLearner::open(db, ModelKind::Arg, crate::models::DeviceChoice::Cpu, options, &NoProgress)?;
    let (mut totals, mut updates, mut reorders, mut moved) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut learned, mut steps) = (Vec::new(), Vec::new());
    // Items anywhere in the list (the risk order's top holds copies of one claim in the repeated database).
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for round in 0..rounds.max(1) {
        for i in 0..8 {
            let verdict = if (round + i) % 3 == 0 { Verdict::Real } else { Verdict::Fake };
            ws.apply(Command::SelectRow(rng.random_range(0..ws.filtered_len().max(1))))?;
            ws.apply(Command::Judge { verdict, confidence: None, note: None })?;
        }
        let t = Instant::now();
        let update = learner.update(&NoProgress)?;
        let updated = t.elapsed().as_secs_f64();
        learned.push(update.new_labels as f64);
        steps.push(update.steps as f64);
        let live = LivePredictions {
            kind: update.kind,
            version: update.version,
            predictions: update.predictions.into_iter().map(|p| (p.item_id, p)).collect(),
        };
        moved.push(ws.apply_live_predictions(live)? as f64);
        let total = t.elapsed().as_secs_f64();
        totals.push(total);
        updates.push(updated);
        reorders.push(total - updated);
    }
    Ok(OnlineLatency {
        items: ws.store().item_ids()?.len(),
        rounds: totals.len(),
        total_secs: median(totals),
        update_secs: median(updates),
        reorder_secs: median(reorders),
        moved: median(moved) as usize,
        new_labels: median(learned) as usize,
        steps: median(steps) as usize,
    })
}
