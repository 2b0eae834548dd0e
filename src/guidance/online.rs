//! The online learner: while people label, the version in use learns from their judgements without a button
//! (after Prodigy's `update()`). Every update re-reads the labels, takes a few optimiser steps of the head alone
//! (the quick retrain's layers, on the pooled inputs cached per item, `guidance::head`) over the labels people
//! changed since the last update plus a replay sample of older ones, and predicts every item again, so that the
//! studio can re-order its list and the fact-check queue.
//!
//! The online state lives in memory; [`OnlineLearner::checkpoint`] saves it as a model version (its parent the
//! version it grew from, its config that of a quick retrain with the number of updates it folds in), which becomes
//! the one in use: every `checkpoint_every` updates and when the studio closes. A kill loses at most the updates
//! since the last checkpoint, never a judgement (those are committed by the workspace before any update reads
//! them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_nn::{Optimizer, ParamsAdamW, VarMap};

use crate::models::kernels::AdamW;
use rand::SeedableRng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::data::{self, DataSnapshot, Example, Split};
use super::head::HeadBank;
use super::metrics::{Metrics, evaluate_at};
use super::net::{self, Net};
use super::train::{
    Inputs, SaveVersion, Session, TrainError, VersionConfig, head_bank, load_version, open_session, predict_all,
    save_version, to_predictions,
};
use crate::domain::{ItemId, ModelKind};
use crate::jobs::Progress;
use crate::models::DeviceChoice;
use crate::models::encoder::Dropout;
use crate::store::Store;
use crate::store::guidance::Prediction;

type Result<T, E = TrainError> = std::result::Result<T, E>;

/// How the online learner works.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OnlineOptions {
    /// An update after every this many new judgements (the studio's setting; 0: off).
    pub every: u64,
    /// Optimiser steps per update.
    pub steps: usize,
    /// Examples per step: the changed labels first, the rest a replay sample of older ones.
    pub batch: usize,
    /// Save the online state as a model version after this many updates (and on close).
    pub checkpoint_every: usize,
    pub seed: u64,
}

impl Default for OnlineOptions {
    fn default() -> Self {
        Self { every: 8, steps: 4, batch: 32, checkpoint_every: 4, seed: 0 }
    }
}

/// What one update did.
#[derive(Clone, Debug)]
pub struct OnlineUpdate {
    pub kind: ModelKind,
    /// The version whose predictions these replace (the one in use when the update started).
    pub version: i64,
    /// Labels by people that changed since the previous update (new judgements, undone ones) and that train.
    pub new_labels: usize,
    pub steps: usize,
    /// Every item's prediction after the update.
    pub predictions: Vec<Prediction>,
    /// Validation macro-F1 after the update (when the data has labelled validation items).
    pub val_macro_f1: Option<f64>,
    /// The version this update saved the online state as (every `checkpoint_every` updates).
    pub checkpoint: Option<i64>,
    pub secs: f64,
}

/// The online state of one model kind over one database.
pub struct OnlineLearner {
    db: PathBuf,
    kind: ModelKind,
    /// The version the state grew from (the last checkpoint, or the version in use when it opened).
    base: i64,
    config: VersionConfig,
    fixed_part: String,
    net: Net,
    varmap: VarMap,
    optimizer: AdamW,
    session: Session,
    bank: HeadBank,
    /// Per item: the label and whether it was people's, as the learner last trained on them.
    seen: HashMap<ItemId, (Option<bool>, bool)>,
    updates_since_checkpoint: usize,
    labels_since_checkpoint: usize,
    secs_since_checkpoint: f64,
    rng: rand::rngs::StdRng,
    dropout: Dropout,
    options: OnlineOptions,
}

impl OnlineLearner {
    /// Loads the `kind` version in use of `db` and the pooled inputs of every item (computing those not cached).
    pub fn open(
        db: &Path,
        kind: ModelKind,
        device: DeviceChoice,
        options: OnlineOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let store = Store::open(db)?;
        let base = store.active_version(kind)?.ok_or(TrainError::QuickWithoutVersion(kind))?;
        let v = store.model_version(base)?;
        let config: VersionConfig =
            serde_json::from_value(v.config.clone()).map_err(|source| TrainError::Config { version: base, source })?;
        drop(store);
        let mut session = open_session(db, &config.encoder, device, config.options.max_len, progress)?;
        let bert = session.encoder.config().clone();
        let loaded = load_version(&session.store, base, &session.device, &bert)?;
        let fixed_part = config.fixed_part.clone().or(v.weights_sha256.clone()).unwrap_or_default();
        let items = session.store.training_items()?;
        let (examples, _) =
            data::build_grouped(&items, &config.architecture.perspectives, config.options.group_by.as_deref());
        // Judgements made after the version was saved are new to it: the first update learns from them.
        let judged_since: std::collections::HashSet<ItemId> = items
            .iter()
            .filter(|i| i.judged_at.as_deref().is_some_and(|at| at > v.created_at.as_str()))
            .map(|i| i.id)
            .collect();
        let all: Vec<&Example> = examples.iter().collect();
        let (bank, _) = head_bank(&mut session, &loaded.net, &fixed_part, &all, config.options.max_len, progress)?;
        let trainable = net::vars_with_prefixes(&loaded.varmap, &loaded.net.head_prefixes());
        let optimizer = AdamW::new(
            trainable,
            ParamsAdamW { lr: config.options.head_lr, weight_decay: config.options.weight_decay, ..Default::default() },
        )?;
        Ok(Self {
            db: db.to_owned(),
            kind,
            base,
            fixed_part,
            net: loaded.net,
            varmap: loaded.varmap,
            optimizer,
            session,
            bank,
            seen: examples
                .iter()
                .filter(|e| !judged_since.contains(&e.item))
                .map(|e| (e.item, (e.fake, e.human)))
                .collect(),
            updates_since_checkpoint: 0,
            labels_since_checkpoint: 0,
            secs_since_checkpoint: 0.0,
            rng: rand::rngs::StdRng::seed_from_u64(options.seed),
            dropout: Dropout::new(options.seed.wrapping_add(0x0bad_5eed)),
            options,
            config,
        })
    }

    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// The database it learns on.
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// The version the online state grew from.
    pub fn base_version(&self) -> i64 {
        self.base
    }

    /// Updates not saved as a version yet.
    pub fn pending_updates(&self) -> usize {
        self.updates_since_checkpoint
    }

    pub fn options(&self) -> &OnlineOptions {
        &self.options
    }

    /// One update: re-read the labels, train the head on the changed ones plus replay, predict every item; saves a
    /// version every `checkpoint_every` updates.
    pub fn update(&mut self, progress: &dyn Progress) -> Result<OnlineUpdate> {
        let started = Instant::now();
        let version = self.base;
        progress.set(0, 0, "reading labels");
        let (examples, snapshot) = self.examples()?;
        // New items, or items whose rationales changed: their pooled inputs first.
        let missing: Vec<&Example> = examples.iter().filter(|e| !self.bank.contains(e)).collect();
        if !missing.is_empty() {
            let max_len = self.config.options.max_len;
            let (more, _) = head_bank(&mut self.session, &self.net, &self.fixed_part, &missing, max_len, progress)?;
            for e in &missing {
                self.bank.insert(super::head::example_key(e), more.row(e).to_vec());
            }
        }
        let trains = |e: &Example| e.split == Split::Train && e.fake.is_some();
        let mut changed: Vec<&Example> = examples
            .iter()
            .filter(|e| trains(e) && e.human && self.seen.get(&e.item) != Some(&(e.fake, e.human)))
            .collect();
        let changed_ids: std::collections::HashSet<ItemId> = changed.iter().map(|e| e.item).collect();
        let replay: Vec<&Example> = examples.iter().filter(|e| trains(e) && !changed_ids.contains(&e.item)).collect();
        let device = self.session.device.clone();
        let mut steps = 0;
        if !changed.is_empty() {
            progress.set(0, self.options.steps as u64, "learning from the new judgements");
            let mut step = HeadSteps {
                net: &self.net,
                optimizer: &mut self.optimizer,
                bank: &self.bank,
                rng: &mut self.rng,
                dropout: &self.dropout,
                device: &device,
            };
            steps = step.run(&mut changed, &replay, self.options.steps, self.options.batch, progress)?;
        }
        self.seen = examples.iter().map(|e| (e.item, (e.fake, e.human))).collect();
        progress.set(0, 0, "predicting every item");
        let all: Vec<&Example> = examples.iter().collect();
        let p = predict_all(&self.net, &all, Inputs::Head(&self.bank), &device)?;
        let perspectives: &[String] =
            if self.kind == ModelKind::Arg { &self.config.architecture.perspectives } else { &[] };
        let predictions = to_predictions(&all, &p, perspectives);
        let threshold = self.config.threshold.unwrap_or(0.5);
        let val = split_metrics(&all, &p.p_fake, Split::Val, threshold);
        self.updates_since_checkpoint += 1;
        self.labels_since_checkpoint += changed.len();
        self.secs_since_checkpoint += started.elapsed().as_secs_f64();
        let checkpoint =
            if self.updates_since_checkpoint >= self.options.checkpoint_every.max(1) && self.still_in_use()? {
                Some(self.save(&all, &p.p_fake, &snapshot, &predictions)?)
            } else {
                None
            };
        Ok(OnlineUpdate {
            kind: self.kind,
            version,
            new_labels: changed.len(),
            steps,
            predictions,
            val_macro_f1: (val.n > 0).then_some(val.macro_f1),
            checkpoint,
            secs: started.elapsed().as_secs_f64(),
        })
    }

    /// Saves the online state as a version now (the studio closes, a person asks), unless nothing changed since the
    /// last one; returns it.
    pub fn checkpoint(&mut self, progress: &dyn Progress) -> Result<Option<i64>> {
        if self.updates_since_checkpoint == 0 || !self.still_in_use()? {
            return Ok(None);
        }
        progress.set(0, 0, "saving the online model");
        let (examples, snapshot) = self.examples()?;
        // Items added since the last update have no cached inputs: the version predicts the ones it knows.
        let all: Vec<&Example> = examples.iter().filter(|e| self.bank.contains(e)).collect();
        let p = predict_all(&self.net, &all, Inputs::Head(&self.bank), &self.session.device.clone())?;
        let perspectives: &[String] =
            if self.kind == ModelKind::Arg { &self.config.architecture.perspectives } else { &[] };
        let predictions = to_predictions(&all, &p, perspectives);
        self.save(&all, &p.p_fake, &snapshot, &predictions).map(Some)
    }

    /// True while the version the state grew from is the one in use. Once a retrain or a roll back put another one
    /// in use, the online state is not saved over it (the studio opens a new learner on the version in use).
    fn still_in_use(&self) -> Result<bool> {
        Ok(self.session.store.active_version(self.kind)? == Some(self.base))
    }

    /// Every item as the model reads it, with the labels as they stand now.
    fn examples(&self) -> Result<(Vec<Example>, DataSnapshot)> {
        let items = self.session.store.training_items()?;
        Ok(data::build_grouped(&items, &self.config.architecture.perspectives, self.config.options.group_by.as_deref()))
    }

    fn save(
        &mut self,
        examples: &[&Example],
        p_fake: &[f32],
        snapshot: &DataSnapshot,
        predictions: &[Prediction],
    ) -> Result<i64> {
        let threshold = self.config.threshold.unwrap_or(0.5);
        let val = split_metrics(examples, p_fake, Split::Val, threshold);
        let test = split_metrics(examples, p_fake, Split::Test, threshold);
        let mut config = self.config.clone();
        config.options.quick = true;
        config.fixed_part = Some(self.fixed_part.clone());
        config.online_updates = Some(self.updates_since_checkpoint);
        let warnings = super::metrics::version_warnings(&test, &val);
        let metrics = serde_json::json!({
            "test": test, "val": val, "best_epoch": 0, "train_secs": self.secs_since_checkpoint, "warnings": warnings,
            "online_updates": self.updates_since_checkpoint, "online_labels": self.labels_since_checkpoint,
        });
        let run = self.session.store.start_training_run(&serde_json::to_value(snapshot)?)?;
        let saved = save_version(
            &self.db,
            &mut self.session.store,
            &self.varmap,
            SaveVersion {
                run,
                kind: self.kind,
                parent: Some(self.base),
                seed: self.options.seed,
                config: &config,
                metrics,
                train_secs: self.secs_since_checkpoint,
                snapshot,
                epochs: &[],
                predictions,
            },
        )?;
        self.base = saved.version;
        self.config = config;
        self.updates_since_checkpoint = 0;
        self.labels_since_checkpoint = 0;
        self.secs_since_checkpoint = 0.0;
        Ok(saved.version)
    }
}

/// Optimiser steps of a model's head on pooled inputs: the online learner's and the simulated annotator's.
pub(super) struct HeadSteps<'a> {
    pub net: &'a Net,
    pub optimizer: &'a mut AdamW,
    pub bank: &'a HeadBank,
    pub rng: &'a mut rand::rngs::StdRng,
    pub dropout: &'a Dropout,
    pub device: &'a candle_core::Device,
}

impl HeadSteps<'_> {
    /// Up to `steps` steps, each over `batch` examples: the `changed` ones first (a random `batch` of them when
    /// there are more), the rest a replay sample of `replay`. Returns the steps taken.
    pub(super) fn run(
        &mut self,
        changed: &mut [&Example],
        replay: &[&Example],
        steps: usize,
        batch: usize,
        progress: &dyn Progress,
    ) -> Result<usize> {
        let mut taken = 0;
        for step in 0..steps {
            progress.check()?;
            changed.shuffle(self.rng);
            let take = changed.len().min(batch);
            let mut examples: Vec<&Example> = changed[..take].to_vec();
            let fill = batch.saturating_sub(take).min(replay.len());
            examples.extend(replay.choose_multiple(self.rng, fill).copied());
            // BatchNorm cannot normalise a batch of one.
            if examples.len() < 2 {
                break;
            }
            let loss = Inputs::Head(self.bank).loss(self.net, &examples, None, self.dropout, self.device)?;
            self.optimizer.backward_step(&loss)?;
            taken += 1;
            progress.set(step as u64 + 1, steps as u64, "learning from the new judgements");
        }
        Ok(taken)
    }
}

/// Metrics of the labelled `split` examples from their P(fake).
pub(super) fn split_metrics(examples: &[&Example], p_fake: &[f32], split: Split, threshold: f64) -> Metrics {
    let (p, y): (Vec<f64>, Vec<bool>) = examples
        .iter()
        .zip(p_fake)
        .filter(|(e, _)| e.split == split && e.fake.is_some())
        .map(|(e, &p)| (f64::from(p), e.fake == Some(true)))
        .unzip();
    evaluate_at(&p, &y, threshold)
}
