//! Training, evaluation and prediction of guidance model versions over an Argus database.
//!
//! A run reads every item's targets (people's feedback first, see `data`), takes the frozen encoder outputs from
//! the encoder cache beside the database (encoding only texts it has not seen), and trains only the encoders' top
//! layer and the head: Adam(W), batch 64, early stopping on validation macro-F1 with patience 5, the best epoch
//! kept, seeded. An incremental run starts from a parent version and trains on everything labelled so far, with
//! people's labels counted `human_weight` times, so nothing is forgotten. Each finished run is a version in the
//! database (config, data snapshot, metrics on the fixed test split, weights file with checksum) and the version
//! in use for its kind; its predictions for every item are stored with it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use candle_nn::{Optimizer, VarMap};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::arg::ArgConfig;
use super::argd::ArgdConfig;
use super::bert::BertConfigHead;
use super::data::{self, DataSnapshot, Example, Split};
use super::features::FeatureBank;
use super::head::HeadBank;
use super::metrics::Metrics;
use super::net::{self, Architecture, Net};
use crate::domain::ModelKind;
use crate::domain::Verdict;
use crate::jobs::{Cancelled, Progress};
use crate::models::encoder::{Dropout, Encoder, EncoderOptions};
use crate::models::encoder_cache::{self, EncoderCache};
use crate::models::{DeviceChoice, fetch};
use crate::store::guidance::{NewModelVersion, Prediction};
use crate::store::{Store, StoreError};

/// Why a training, evaluation or prediction run could not be done. Nothing half-done is kept: a run that fails
/// stores no version (its training run is marked failed or cancelled).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(
        "{db}: only {train} labelled training items ({labelled} labelled in all); label more items (or import \
         labelled data) before training"
    )]
    NoLabels { db: PathBuf, train: usize, labelled: usize },
    #[error("model version {version} is {found}, not {wanted}")]
    WrongKind { version: i64, found: ModelKind, wanted: ModelKind },
    #[error("a quick retrain starts from a {0} version: there is none yet (train one in full first)")]
    QuickWithoutVersion(ModelKind),
    #[error("ARG-D learns from an ARG version: train ARG first (`argus train --model arg`)")]
    TeacherMissing,
    #[error("model version {version} is {found}, not an ARG version to distil from")]
    TeacherNotArg { version: i64, found: ModelKind },
    #[error("model version {version} is {found}, not ARG: it has no news attention")]
    NotArg { version: i64, found: ModelKind },
    #[error("model version {version}: its config cannot be read by this Argus: {source}")]
    Config {
        version: i64,
        #[source]
        source: serde_json::Error,
    },
    #[error("model version {version}: its weights file {} is missing", path.display())]
    WeightsMissing { version: i64, path: PathBuf },
    #[error(
        "{}: checksum {found} does not match the one recorded for model version {version} ({expected}); the file \
         was changed or truncated",
        path.display()
    )]
    Checksum { path: PathBuf, version: i64, found: String, expected: String },
    #[error("{}: cannot load the weights of model version {version}: {source}", path.display())]
    Weights {
        path: PathBuf,
        version: i64,
        #[source]
        source: candle_core::Error,
    },
    /// The parent version's weights do not fit the run built from it (its perspectives or encoder changed).
    #[error(
        "{}: cannot start from model version {version}: {source} (if the perspectives changed since that version, \
         train from scratch)",
        path.display()
    )]
    ParentWeights {
        path: PathBuf,
        version: i64,
        #[source]
        source: candle_core::Error,
    },
    #[error("{}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot write weights: {source}", path.display())]
    WriteWeights {
        path: PathBuf,
        #[source]
        source: candle_core::Error,
    },
    #[error("tokenising item {item}: {reason}")]
    Tokenize { item: crate::domain::ItemId, reason: String },
    #[error(transparent)]
    Cancelled(#[from] Cancelled),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl TrainError {
    /// True when the run stopped because someone cancelled it (whichever layer noticed).
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            Self::Cancelled(_)
                | Self::Model(crate::models::ModelError::Cancelled(_))
                | Self::Store(StoreError::Cancelled(_))
        )
    }
}

pub(super) type Result<T, E = TrainError> = std::result::Result<T, E>;

/// How a run trains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainOptions {
    pub seed: u64,
    /// Adam learning rate (English: 5e-5).
    pub lr: f64,
    pub weight_decay: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Epochs without a better validation macro-F1 before stopping.
    pub patience: usize,
    /// Early stopping cannot fire before this many epochs (small data can look best after the first epoch while it
    /// has only learned the majority class). 1: it may stop as soon as patience runs out.
    pub min_epochs: usize,
    /// Each item labelled by people counts this many times per epoch.
    pub human_weight: usize,
    /// Reproduce the reference's quirks (means over padding, unmasked poolings; fixed-length padding).
    pub paper_quirks: bool,
    pub beta_use: f64,
    pub beta_judge: f64,
    pub kd_weight: f64,
    /// WordPiece length of every text (ARG: 170).
    pub max_len: usize,
    /// Choose the decision threshold on the validation split (the one that maximises its macro-F1) instead of the
    /// paper's 0.5; stored with the version and used for its test metrics and later evaluations.
    pub threshold_from_val: bool,
    /// Hash the splits the data does not name over this field (an imported column, or `source`) instead of the
    /// text, so that items of one group never straddle train and val (`guidance::data::build_grouped`).
    pub group_by: Option<String>,
    /// A quick retrain: only the head (ARG's usefulness, judgement, gate, aggregator and classifier layers; ARG-D's
    /// and BERT's classifier), from a version, on its pooled inputs cached per item (`guidance::head`); the encoder
    /// top layer, cross-attentions and poolings stay the parent's. Off: the paper's setting (top layer + head).
    pub quick: bool,
    /// Adam learning rate of a quick retrain and of the online learner (the head's small layers).
    pub head_lr: f64,
    /// ARG: weight of the contrastive term (rejected rationales as negatives, `ArgConfig::contrastive_weight`);
    /// 0 leaves the reference's loss unchanged.
    pub contrastive_weight: f64,
    /// Batches of similar lengths (each epoch: shuffle, sort runs of `LENGTH_GROUP_BATCHES` batches by length, cut
    /// them into batches, shuffle the batches), so that a batch pads to little more than its texts; off: every batch
    /// a plain random draw. Ignored with `paper_quirks` (fixed-length padding) and by the quick retrain (no tokens).
    pub length_grouped: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            lr: 5e-5,
            weight_decay: 5e-5,
            batch_size: 64,
            max_epochs: 50,
            patience: 5,
            min_epochs: 1,
            human_weight: 2,
            paper_quirks: false,
            beta_use: 1.5,
            beta_judge: 1.0,
            kd_weight: 1.0,
            max_len: 170,
            threshold_from_val: false,
            group_by: None,
            quick: false,
            head_lr: 1e-3,
            contrastive_weight: 0.0,
            length_grouped: true,
        }
    }
}

impl TrainOptions {
    /// The quick retrain's defaults: the head only, up to 30 epochs, patience 3.
    pub fn quick() -> Self {
        Self { quick: true, max_epochs: 30, patience: 3, ..Self::default() }
    }
}

/// What to train.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    pub kind: ModelKind,
    /// Start from this version's weights (an incremental retrain); `None`: from the pretrained encoder.
    pub from: Option<i64>,
    /// ARG-D's teacher (default: the ARG version in use).
    pub teacher: Option<i64>,
    /// Encoder: a catalog name or a folder (ignored when starting from a version: its encoder is used).
    pub encoder: String,
    pub device: DeviceChoice,
    pub options: TrainOptions,
    /// ARG's perspectives (default: every perspective some item has a rationale for, in the studio's order).
    pub perspectives: Option<Vec<String>>,
}

impl TrainRequest {
    pub fn new(kind: ModelKind) -> Self {
        Self {
            kind,
            from: None,
            teacher: None,
            encoder: crate::models::catalog::DEMO_ENCODER.to_owned(),
            device: DeviceChoice::Cpu,
            options: TrainOptions::default(),
            perspectives: None,
        }
    }
}

/// One epoch of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_macro_f1: f64,
    pub val_accuracy: f64,
    pub val_auc: f64,
    pub seconds: f64,
    /// True when this epoch became the best so far (the kept checkpoint).
    pub best: bool,
}

/// What a finished run produced.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    pub version: i64,
    pub kind: ModelKind,
    pub parent: Option<i64>,
    pub test: Metrics,
    pub val: Metrics,
    pub epochs: Vec<EpochRecord>,
    pub best_epoch: usize,
    /// Seconds of the training loop (epochs and validation).
    pub train_secs: f64,
    /// Seconds of the whole run (reading data and features, training, saving, predicting).
    pub total_secs: f64,
    pub snapshot: DataSnapshot,
    /// Texts whose frozen features were encoded during this run (the rest came from the cache).
    pub encoded_texts: usize,
    /// A quick retrain: items whose pooled head inputs were not cached and were computed during this run.
    pub head_inputs_computed: usize,
    pub predictions: usize,
    /// Perspectives that items have rationales for but the model does not read (an incremental run keeps its
    /// parent's perspectives; train from scratch to add them).
    pub unused_perspectives: Vec<String>,
    /// What the run's figures warn of (a model that predicts one class for nearly every item); also stored in the
    /// version's metrics as `warnings`.
    pub warnings: Vec<String>,
    /// Where the run's time went, phase by phase in order (seconds): reading labels, loading the encoder and the
    /// model, reading frozen features, training, predicting every item, saving.
    pub phases: Vec<(&'static str, f64)>,
}

/// What is stored in a version's `config`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct VersionConfig {
    pub(super) architecture: Architecture,
    pub(super) options: TrainOptions,
    /// Catalog name or folder of the encoder, and the id its cache entries carry.
    pub(super) encoder: String,
    encoder_id: String,
    teacher: Option<i64>,
    /// The decision threshold chosen on the validation split (`TrainOptions::threshold_from_val`); `None`: 0.5.
    #[serde(default)]
    pub(super) threshold: Option<f64>,
    /// The weights sha256 of the version whose fixed part (encoder top layers, cross-attentions, poolings) this one
    /// shares: its parent's for a quick retrain; `None`: its own. Names its cached head inputs.
    #[serde(default)]
    pub(super) fixed_part: Option<String>,
    /// A version saved by the online learner: how many of its updates it folds in.
    #[serde(default)]
    pub(super) online_updates: Option<usize>,
}

/// Everything loaded to run a model.
pub(super) struct Session {
    pub(super) store: Store,
    pub(super) encoder: Encoder,
    pub(super) cache: EncoderCache,
    pub(super) device: Device,
}

pub(super) fn open_session(
    db: &Path,
    encoder: &str,
    device: DeviceChoice,
    max_len: usize,
    progress: &dyn Progress,
) -> Result<Session> {
    let store = Store::open(db)?;
    let dir = fetch::resolve(encoder, progress)?;
    progress.set(0, 0, "loading the encoder");
    let device = device.open()?;
    let encoder = Encoder::load(&dir, &device, EncoderOptions { max_len, ..Default::default() })?;
    let cache = EncoderCache::open(&encoder_cache::cache_path_for(db))?;
    Ok(Session { store, encoder, cache, device })
}

/// Where version weights live: `NAME.models/` beside the database.
pub fn weights_dir_for(db: &Path) -> PathBuf {
    let name = db.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "argus".into());
    db.with_file_name(format!("{name}.models"))
}

fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let bytes =
        std::fs::read(path).map_err(|source| TrainError::Io { path: path.to_owned(), what: "cannot read", source })?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// A version's model, loaded and checked.
pub(super) struct LoadedVersion {
    pub(super) net: Net,
    pub(super) config: VersionConfig,
    pub(super) varmap: VarMap,
}

pub(super) fn load_version(
    store: &Store,
    version: i64,
    device: &Device,
    bert: &candle_transformers::models::bert::Config,
) -> Result<LoadedVersion> {
    let v = store.model_version(version)?;
    let config: VersionConfig =
        serde_json::from_value(v.config.clone()).map_err(|source| TrainError::Config { version, source })?;
    let path = PathBuf::from(v.weights_path.as_deref().unwrap_or_default());
    if !path.is_file() {
        return Err(TrainError::WeightsMissing { version, path });
    }
    let sha = sha256_file(&path)?;
    if Some(sha.as_str()) != v.weights_sha256.as_deref() {
        let expected = v.weights_sha256.clone().unwrap_or_else(|| "none".into());
        return Err(TrainError::Checksum { path, version, found: sha, expected });
    }
    let mut varmap = VarMap::new();
    let net = Net::build(&varmap, &config.architecture, bert, device)?;
    if let Err(source) = varmap.load(&path) {
        return Err(TrainError::Weights { path, version, source });
    }
    Ok(LoadedVersion { net, config, varmap })
}

/// Texts whose frozen features `examples` need for `arch`.
fn texts_needed<'a>(examples: impl IntoIterator<Item = &'a Example>, with_rationales: bool) -> Vec<&'a str> {
    let mut texts = Vec::new();
    for e in examples {
        texts.push(e.news.as_str());
        if with_rationales {
            texts.extend(e.rationales.iter().map(|r| r.text.as_str()));
        }
    }
    texts
}

/// What a model reads its examples from: frozen encoder outputs (the full model runs), or the pooled inputs of its
/// head (a quick retrain, the online learner: only the head runs).
#[derive(Clone, Copy)]
pub(super) enum Inputs<'a> {
    Frozen { bank: &'a FeatureBank, max_len: usize },
    Head(&'a HeadBank),
}

impl Inputs<'_> {
    /// Predictions for one batch, in evaluation mode.
    fn predict(self, net: &Net, examples: &[&Example], device: &Device) -> Result<net::BatchPrediction> {
        Ok(match self {
            Inputs::Frozen { bank, max_len } => net.predict(&net.batch(examples, bank, max_len, None, device)?)?,
            Inputs::Head(bank) => net.head_predict(&net.head_batch(examples, bank, device)?.inputs)?,
        })
    }

    /// The training loss of one batch (`teacher`: ARG-D's targets of these examples).
    pub(super) fn loss(
        self,
        net: &Net,
        examples: &[&Example],
        teacher: Option<&[Vec<f32>]>,
        dropout: &Dropout,
        device: &Device,
    ) -> Result<candle_core::Tensor> {
        Ok(match self {
            Inputs::Frozen { bank, max_len } => {
                net.loss(&net.batch(examples, bank, max_len, teacher, device)?, Some(dropout))?
            }
            Inputs::Head(bank) => net.head_loss(&net.head_batch(examples, bank, device)?, Some(dropout))?,
        })
    }

    /// Sort key that makes batches pad little: the longest of the example's texts the model reads (a rationale is
    /// usually longer than its claim).
    fn length(self, example: &Example) -> usize {
        match self {
            Inputs::Frozen { bank, .. } => std::iter::once(&example.news)
                .chain(example.rationales.iter().map(|r| &r.text))
                .filter_map(|t| bank.tokens_of(t))
                .max()
                .unwrap_or(0),
            Inputs::Head(_) => 0,
        }
    }
}

/// Runs `net` over `examples` in evaluation mode, a batch at a time.
pub(super) fn predict_all(
    net: &Net,
    examples: &[&Example],
    inputs: Inputs,
    device: &Device,
) -> Result<net::BatchPrediction> {
    let mut all = net::BatchPrediction {
        p_fake: vec![],
        gates: vec![],
        usefulness: vec![],
        judgements: vec![],
        features: Some(vec![]),
        head_inputs: vec![],
    };
    // Sorted by length so that batches pad little; results are put back in order.
    let mut order: Vec<usize> = (0..examples.len()).collect();
    order.sort_by_key(|&i| inputs.length(examples[i]));
    let chunk_size = if matches!(inputs, Inputs::Head(_)) { 512 } else { 64 };
    type Slot = (f32, Vec<f32>, Vec<f32>, Vec<u32>, Option<Vec<f32>>, Vec<f32>);
    let mut slots: Vec<Option<Slot>> = vec![None; examples.len()];
    for chunk in order.chunks(chunk_size) {
        let batch_examples: Vec<&Example> = chunk.iter().map(|&i| examples[i]).collect();
        let mut p = inputs.predict(net, &batch_examples, device)?;
        for (j, &i) in chunk.iter().enumerate() {
            slots[i] = Some((
                p.p_fake[j],
                std::mem::take(&mut p.gates[j]),
                std::mem::take(&mut p.usefulness[j]),
                std::mem::take(&mut p.judgements[j]),
                p.features.as_mut().map(|f| std::mem::take(&mut f[j])),
                std::mem::take(&mut p.head_inputs[j]),
            ));
        }
    }
    for s in slots.into_iter().flatten() {
        all.p_fake.push(s.0);
        all.gates.push(s.1);
        all.usefulness.push(s.2);
        all.judgements.push(s.3);
        match (&mut all.features, s.4) {
            (Some(f), Some(v)) => f.push(v),
            (f, None) => *f = None,
            _ => {}
        }
        all.head_inputs.push(s.5);
    }
    Ok(all)
}

pub(super) fn metrics_of(
    net: &Net,
    examples: &[&Example],
    inputs: Inputs,
    device: &Device,
    threshold: f64,
) -> Result<Metrics> {
    let labelled: Vec<&Example> = examples.iter().copied().filter(|e| e.fake.is_some()).collect();
    let p = predict_all(net, &labelled, inputs, device)?;
    let y: Vec<bool> = labelled.iter().map(|e| e.fake == Some(true)).collect();
    let p: Vec<f64> = p.p_fake.iter().map(|&v| v as f64).collect();
    Ok(super::metrics::evaluate_at(&p, &y, threshold))
}

pub(super) fn to_predictions(
    examples: &[&Example],
    p: &net::BatchPrediction,
    perspectives: &[String],
) -> Vec<Prediction> {
    examples
        .iter()
        .enumerate()
        .map(|(i, e)| Prediction {
            item_id: e.item,
            p_fake: p.p_fake[i] as f64,
            gates: perspectives.iter().cloned().zip(p.gates[i].iter().map(|&g| g as f64)).collect(),
            usefulness: perspectives.iter().cloned().zip(p.usefulness[i].iter().map(|&g| g as f64)).collect(),
            judgements: perspectives
                .iter()
                .cloned()
                .zip(p.judgements[i].iter().map(|&c| match c {
                    0 => Verdict::Real,
                    1 => Verdict::Fake,
                    _ => Verdict::Other,
                }))
                .collect(),
        })
        .collect()
}

/// Trains a new version of `request.kind` on the database at `db`; `on_epoch` sees each epoch as it ends.
pub fn train(
    db: &Path,
    request: &TrainRequest,
    progress: &dyn Progress,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<TrainReport> {
    let started = Instant::now();
    let mut phases = Phases::new();
    let store = Store::open(db)?;
    // What the run starts from: a parent version fixes the encoder, the perspectives and the architecture.
    // A quick retrain starts from a version: the one given, else the one in use.
    let from = match (request.from, request.options.quick) {
        (Some(v), _) => Some(v),
        (None, true) => Some(store.active_version(request.kind)?.ok_or(TrainError::QuickWithoutVersion(request.kind))?),
        (None, false) => None,
    };
    let parent = from.map(|v| store.model_version(v)).transpose()?;
    if let Some(p) = &parent
        && p.kind != request.kind
    {
        return Err(TrainError::WrongKind { version: p.id, found: p.kind, wanted: request.kind });
    }
    let parent_config: Option<VersionConfig> = parent
        .as_ref()
        .map(|p| {
            serde_json::from_value(p.config.clone()).map_err(|source| TrainError::Config { version: p.id, source })
        })
        .transpose()?;
    let teacher_id = match request.kind {
        ModelKind::Argd => Some(match request.teacher.or(parent_config.as_ref().and_then(|c| c.teacher)) {
            Some(t) => t,
            None => store.active_version(ModelKind::Arg)?.ok_or(TrainError::TeacherMissing)?,
        }),
        _ => None,
    };
    let teacher_config: Option<VersionConfig> = teacher_id
        .map(|t| -> Result<VersionConfig> {
            let v = store.model_version(t)?;
            if v.kind != ModelKind::Arg {
                return Err(TrainError::TeacherNotArg { version: t, found: v.kind });
            }
            serde_json::from_value(v.config).map_err(|source| TrainError::Config { version: t, source })
        })
        .transpose()?;
    let encoder_name = parent_config
        .as_ref()
        .or(teacher_config.as_ref())
        .map(|c| c.encoder.clone())
        .unwrap_or_else(|| request.encoder.clone());
    let mut options = request.options.clone();
    options.group_by = data::resolve_group_by(options.group_by.as_deref(), store.split_group_by()?);
    if let Some(c) = parent_config.as_ref().or(teacher_config.as_ref()) {
        // The architecture's switches and text length are the parent's; the rest (seed, epochs, ...) this run's.
        options.paper_quirks = c.options.paper_quirks;
        options.max_len = c.options.max_len;
        // The same splits as the parent's, so that its validation figures and this run's compare.
        options.group_by.clone_from(&c.options.group_by);
    }
    progress.set(0, 0, "reading labels and feedback");
    let items = store.training_items()?;
    let order: Vec<String> = store.perspectives()?.into_iter().map(|p| p.key).collect();
    let perspectives = match (request.kind, &parent_config, &teacher_config) {
        (_, Some(c), _) | (ModelKind::Argd, None, Some(c)) => c.architecture.perspectives.clone(),
        (ModelKind::Arg, None, _) => {
            request.perspectives.clone().unwrap_or_else(|| data::perspectives_present(&items, &order))
        }
        _ => Vec::new(),
    };
    let unused_perspectives: Vec<String> = if request.kind == ModelKind::Bert {
        Vec::new()
    } else {
        data::perspectives_present(&items, &order).into_iter().filter(|p| !perspectives.contains(p)).collect()
    };
    let (examples, snapshot) = data::build_grouped(&items, &perspectives, options.group_by.as_deref());
    let train_set: Vec<&Example> = examples.iter().filter(|e| e.split == Split::Train && e.fake.is_some()).collect();
    let mut val_set: Vec<&Example> = examples.iter().filter(|e| e.split == Split::Val && e.fake.is_some()).collect();
    let test_set: Vec<&Example> = examples.iter().filter(|e| e.split == Split::Test && e.fake.is_some()).collect();
    if train_set.len() < 2 {
        return Err(TrainError::NoLabels { db: db.to_owned(), train: train_set.len(), labelled: snapshot.labelled });
    }
    if val_set.is_empty() {
        tracing::warn!("no labelled validation items: early stopping watches the training items");
        val_set = train_set.clone();
    }
    drop(store);

    phases.lap("read labels and feedback");
    let mut session = open_session(db, &encoder_name, request.device, options.max_len, progress)?;
    let device = session.device.clone();
    let bert = session.encoder.config().clone();
    let uses_rationales = request.kind == ModelKind::Arg || request.kind == ModelKind::Argd;

    let arch = match &parent_config {
        // Keep the parent's architecture, with this run's loss weights.
        Some(c) => Architecture {
            arg: ArgConfig {
                beta_use: options.beta_use,
                beta_judge: options.beta_judge,
                contrastive_weight: options.contrastive_weight,
                ..c.architecture.arg.clone()
            },
            argd: ArgdConfig { kd_weight: options.kd_weight, ..c.architecture.argd.clone() },
            ..c.architecture.clone()
        },
        None => architecture(request.kind, &perspectives, &options),
    };

    // Build: seeded initialisation, then the encoder's pretrained top layers (or the parent's / teacher's weights).
    let mut varmap = VarMap::new();
    let model = Net::build(&varmap, &arch, &bert, &device)?;
    net::seeded_init(&varmap, options.seed)?;
    match &parent {
        Some(p) => {
            let path = PathBuf::from(p.weights_path.as_deref().unwrap_or_default());
            let sha = sha256_file(&path)?;
            if Some(sha.as_str()) != p.weights_sha256.as_deref() {
                let expected = p.weights_sha256.clone().unwrap_or_else(|| "none".into());
                return Err(TrainError::Checksum { path, version: p.id, found: sha, expected });
            }
            if let Err(source) = varmap.load(&path) {
                return Err(TrainError::ParentWeights { path, version: p.id, source });
            }
        }
        None => {
            copy_pretrained(&session, &varmap, request.kind)?;
            if let (ModelKind::Argd, Some(t)) = (request.kind, teacher_id) {
                // The student starts from its teacher's news encoder and classifier.
                let tv = session.store.model_version(t)?;
                let teacher = net::load_tensors(Path::new(tv.weights_path.as_deref().unwrap_or_default()), &device)?;
                net::copy_matching(&varmap, &teacher, "bert_content.", "bert.")?;
                net::copy_matching(&varmap, &teacher, "mlp.mlp.", "mlp.mlp.")?;
            }
        }
    }

    phases.lap("load encoder and model");
    // What the model reads: a quick retrain, its parent's pooled head inputs (cached per item, computed for the
    // items that lack them); else frozen encoder outputs.
    let fixed_part = match (&parent, &parent_config) {
        (Some(p), Some(c)) if options.quick => {
            Some(c.fixed_part.clone().or_else(|| p.weights_sha256.clone()).unwrap_or_default())
        }
        _ => None,
    };
    let all: Vec<&Example> = examples.iter().collect();
    let mut head_inputs_computed = 0;
    let (bank, head_bank) = match &fixed_part {
        Some(sha) => {
            let (head, computed) = head_bank(&mut session, &model, sha, &all, options.max_len, progress)?;
            head_inputs_computed = computed;
            (None, Some(head))
        }
        None => {
            let texts = texts_needed(&examples, uses_rationales);
            (Some(FeatureBank::build(&mut session.cache, &session.encoder, &texts, progress)?), None)
        }
    };
    let inputs = match (&bank, &head_bank) {
        (_, Some(h)) => Inputs::Head(h),
        (Some(bank), None) => Inputs::Frozen { bank, max_len: options.max_len },
        (None, None) => unreachable!("one of the banks is built"),
    };

    phases.lap("read frozen features");
    // ARG-D's targets: the teacher's fused features on the training items, computed once (teacher in eval mode).
    // A quick retrain keeps the student's pooled feature fixed, so the distillation term has nothing to move.
    let teacher_features: Option<Vec<Vec<f32>>> = match (teacher_id, &bank) {
        (Some(t), Some(bank)) => {
            progress.set(0, 0, &format!("computing the teacher's features (ARG version {t})"));
            let teacher = load_version(&session.store, t, &device, &bert)?;
            let p = predict_all(&teacher.net, &train_set, Inputs::Frozen { bank, max_len: options.max_len }, &device)?;
            // ARG's predictions always carry its fused features (`predict_all` of an ARG net).
            Some(p.features.ok_or(TrainError::TeacherNotArg { version: t, found: ModelKind::Arg })?)
        }
        _ => None,
    };

    let trainable =
        if options.quick { net::vars_with_prefixes(&varmap, &model.head_prefixes()) } else { all_vars(&varmap) };
    let lr = if options.quick { options.head_lr } else { options.lr };
    let run = session.store.start_training_run(&serde_json::to_value(&snapshot)?)?;
    let result = fit(
        &model,
        &varmap,
        trainable,
        lr,
        &options,
        &train_set,
        &val_set,
        teacher_features.as_deref(),
        inputs,
        &device,
        progress,
        on_epoch,
    );
    phases.lap("train");
    let (epochs, best_epoch, train_secs) = match result {
        Ok(r) => r,
        Err(e) => {
            let status = if progress.is_cancelled() { "cancelled" } else { "failed" };
            session.store.end_training_run(
                run,
                status,
                &serde_json::Value::Array(vec![]),
                started.elapsed().as_secs_f64(),
            )?;
            return Err(e);
        }
    };
    // Every item once (eval mode: an item's prediction does not depend on its batch); the validation and test
    // metrics read their items' rows.
    progress.set(0, 0, "predicting every item");
    let p = predict_all(&model, &all, inputs, &device)?;
    let row: std::collections::HashMap<crate::domain::ItemId, usize> =
        all.iter().enumerate().map(|(i, e)| (e.item, i)).collect();
    let scored = |set: &[&Example]| -> (Vec<f64>, Vec<bool>) {
        set.iter().map(|e| (f64::from(p.p_fake[row[&e.item]]), e.fake == Some(true))).unzip()
    };
    let (val_p, val_y) = scored(&val_set);
    let threshold = options.threshold_from_val.then(|| super::metrics::best_threshold(&val_p, &val_y));
    let val = super::metrics::evaluate_at(&val_p, &val_y, threshold.unwrap_or(0.5));
    let (test_p, test_y) = scored(&test_set);
    let test = super::metrics::evaluate_at(&test_p, &test_y, threshold.unwrap_or(0.5));

    phases.lap("predict every item");
    let config = VersionConfig {
        architecture: arch.clone(),
        options: options.clone(),
        encoder: encoder_name.clone(),
        encoder_id: session.encoder.id().to_owned(),
        teacher: teacher_id,
        threshold,
        fixed_part: fixed_part.clone(),
        online_updates: None,
    };
    let warnings = super::metrics::version_warnings(&test, &val);
    let metrics = serde_json::json!({
        "test": test, "val": val, "best_epoch": best_epoch, "train_secs": train_secs, "warnings": warnings,
    });
    let predictions = to_predictions(&all, &p, if request.kind == ModelKind::Arg { &perspectives } else { &[] });
    let saved = save_version(
        db,
        &mut session.store,
        &varmap,
        SaveVersion {
            run,
            kind: request.kind,
            parent: parent.as_ref().map(|p| p.id),
            seed: options.seed,
            config: &config,
            metrics,
            train_secs,
            snapshot: &snapshot,
            epochs: &epochs,
            predictions: &predictions,
        },
    )?;
    // A full run's fixed part is new: keep its pooled head inputs for the quick retrains that start from it.
    if fixed_part.is_none() {
        let rows: Vec<([u8; 32], Vec<f32>)> =
            all.iter().zip(p.head_inputs).map(|(e, row)| (super::head::example_key(e), row)).collect();
        session.cache.put_vectors(&super::head::namespace(&saved.sha256), &rows)?;
    }
    phases.lap("save");
    Ok(TrainReport {
        version: saved.version,
        kind: request.kind,
        parent: parent.map(|p| p.id),
        test,
        val,
        epochs,
        best_epoch,
        train_secs,
        total_secs: started.elapsed().as_secs_f64(),
        snapshot,
        encoded_texts: bank.as_ref().map(|b| b.stats.encoded).unwrap_or(0),
        head_inputs_computed,
        predictions: predictions.len(),
        unused_perspectives,
        warnings,
        phases: phases.done,
    })
}

/// Seconds per phase of a run, each lap the time since the previous one.
struct Phases {
    last: Instant,
    done: Vec<(&'static str, f64)>,
}

impl Phases {
    fn new() -> Self {
        Self { last: Instant::now(), done: Vec::new() }
    }

    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.done.push((name, (now - self.last).as_secs_f64()));
        tracing::debug!(phase = name, secs = (now - self.last).as_secs_f64(), "training phase");
        self.last = now;
    }
}

/// The architecture of a new `kind` model reading `perspectives`, with `options`' switches.
pub(super) fn architecture(kind: ModelKind, perspectives: &[String], options: &TrainOptions) -> Architecture {
    Architecture {
        kind,
        perspectives: perspectives.to_vec(),
        arg: ArgConfig {
            perspectives: perspectives.len(),
            beta_use: options.beta_use,
            beta_judge: options.beta_judge,
            paper_quirks: options.paper_quirks,
            contrastive_weight: options.contrastive_weight,
            ..ArgConfig::default()
        },
        argd: ArgdConfig { kd_weight: options.kd_weight, paper_quirks: options.paper_quirks, ..ArgdConfig::default() },
        bert: BertConfigHead::default(),
    }
}

/// Copies the session encoder's pretrained top layers into `varmap`'s encoder stacks (ARG's two, or the one of
/// ARG-D and BERT).
pub(super) fn copy_pretrained(session: &Session, varmap: &VarMap, kind: ModelKind) -> Result<()> {
    let weights_path = session.encoder.dir().join("model.safetensors");
    let (prefix, _) = crate::models::encoder::check_safetensors(&weights_path)?;
    let pretrained = net::load_tensors(&weights_path, &session.device)?;
    let stacks: &[&str] = match kind {
        ModelKind::Arg => &["bert_content.", "bert_FTR."],
        _ => &["bert."],
    };
    for to in stacks {
        net::copy_matching(varmap, &pretrained, &prefix, to)?;
    }
    Ok(())
}

/// Every variable of `varmap` but scalars: what a full run trains.
fn all_vars(varmap: &VarMap) -> Vec<candle_core::Var> {
    varmap.all_vars().into_iter().filter(|v| !v.dims().is_empty()).collect()
}

/// What [`save_version`] stores.
pub(super) struct SaveVersion<'a> {
    pub run: i64,
    pub kind: ModelKind,
    pub parent: Option<i64>,
    pub seed: u64,
    pub config: &'a VersionConfig,
    pub metrics: serde_json::Value,
    pub train_secs: f64,
    pub snapshot: &'a DataSnapshot,
    pub epochs: &'a [EpochRecord],
    pub predictions: &'a [Prediction],
}

/// A version as saved.
pub(super) struct Saved {
    pub version: i64,
    pub sha256: String,
}

/// Writes `varmap` to a new weights file beside `db` (written aside, then moved into place: a version row always
/// has its whole file), then the version row and its predictions.
pub(super) fn save_version(db: &Path, store: &mut Store, varmap: &VarMap, v: SaveVersion) -> Result<Saved> {
    let dir = weights_dir_for(db);
    std::fs::create_dir_all(&dir).map_err(|source| TrainError::Io {
        path: dir.clone(),
        what: "cannot create folder",
        source,
    })?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
    let path = dir.join(format!("{}-{stamp}-seed{}.safetensors", v.kind.as_str(), v.seed));
    let partial = path.with_extension("partial");
    varmap.save(&partial).map_err(|source| TrainError::WriteWeights { path: partial.clone(), source })?;
    std::fs::rename(&partial, &path).map_err(|source| TrainError::Io {
        path: path.clone(),
        what: "cannot move into place",
        source,
    })?;
    let sha = sha256_file(&path)?;
    let version = store.add_model_version(
        v.run,
        &NewModelVersion {
            kind: v.kind,
            parent_id: v.parent,
            config: serde_json::to_value(v.config)?,
            metrics: v.metrics,
            weights_path: path.display().to_string(),
            weights_sha256: sha.clone(),
            seconds_taken: v.train_secs,
            data_snapshot: serde_json::to_value(v.snapshot)?,
            epochs: serde_json::to_value(v.epochs)?,
        },
    )?;
    store.save_predictions(version, v.predictions)?;
    Ok(Saved { version, sha256: sha })
}

/// The pooled head inputs of `examples` for the fixed part of the weights whose sha256 is `fixed_part` (loaded in
/// `net`): read from the encoder cache, the missing ones computed from frozen encoder outputs and stored.
pub(super) fn head_bank(
    session: &mut Session,
    net: &Net,
    fixed_part: &str,
    examples: &[&Example],
    max_len: usize,
    progress: &dyn Progress,
) -> Result<(HeadBank, usize)> {
    let namespace = super::head::namespace(fixed_part);
    let keys: Vec<[u8; 32]> = examples.iter().map(|e| super::head::example_key(e)).collect();
    progress.set(0, 0, "reading the head's cached inputs");
    let cached = session.cache.vectors(&namespace, &keys)?;
    let mut bank = HeadBank::new(net.head_width(session.encoder.hidden_size()));
    // Each missing key once (items with the same texts share their inputs).
    let mut missing: Vec<&Example> = Vec::new();
    let mut queued = std::collections::HashSet::new();
    for ((e, key), row) in examples.iter().zip(&keys).zip(cached) {
        match row {
            Some(row) if row.len() == bank.width() => bank.insert(*key, row),
            _ if queued.insert(*key) => missing.push(e),
            _ => {}
        }
    }
    if !missing.is_empty() {
        progress.set(0, 0, &format!("computing the head's inputs of {} items", missing.len()));
        let texts = texts_needed(missing.iter().copied(), !matches!(net, Net::Bert(_)));
        let frozen = FeatureBank::build(&mut session.cache, &session.encoder, &texts, progress)?;
        let p = predict_all(net, &missing, Inputs::Frozen { bank: &frozen, max_len }, &session.device)?;
        let rows: Vec<([u8; 32], Vec<f32>)> =
            missing.iter().zip(p.head_inputs).map(|(e, row)| (super::head::example_key(e), row)).collect();
        session.cache.put_vectors(&namespace, &rows)?;
        // Read back at the cache's precision, so that a first run and a cached one see the same values.
        let again = session.cache.vectors(&namespace, &rows.iter().map(|r| r.0).collect::<Vec<_>>())?;
        for ((key, _), row) in rows.iter().zip(again) {
            bank.insert(*key, row.expect("just stored"));
        }
    }
    Ok((bank, missing.len()))
}

/// Batches of a run of this many batches are cut from one length-sorted run of the shuffled pool.
pub const LENGTH_GROUP_BATCHES: usize = 16;

/// One epoch's batches of positions into the training set: `pool` shuffled and cut into batches; with `lengths`,
/// each run of `LENGTH_GROUP_BATCHES` batches is sorted by length before it is cut and the batches are shuffled
/// again, so a batch holds texts of similar length (what Hugging Face calls grouping by length) and still a random
/// draw of the data and a random place in the epoch.
pub(super) fn epoch_batches(
    pool: &mut [usize],
    batch_size: usize,
    lengths: Option<&[usize]>,
    rng: &mut impl rand::Rng,
) -> Vec<Vec<usize>> {
    pool.shuffle(rng);
    let Some(lengths) = lengths else {
        return pool.chunks(batch_size).map(<[usize]>::to_vec).collect();
    };
    let mut batches: Vec<Vec<usize>> = Vec::with_capacity(pool.len().div_ceil(batch_size));
    for run in pool.chunks_mut(batch_size * LENGTH_GROUP_BATCHES) {
        run.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        batches.extend(run.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(rng);
    batches
}

/// The training loop: returns the epoch records, the best epoch and the loop's seconds; the best checkpoint is
/// left in `varmap`.
#[allow(clippy::too_many_arguments)]
fn fit(
    model: &Net,
    varmap: &VarMap,
    trainable: Vec<candle_core::Var>,
    lr: f64,
    options: &TrainOptions,
    train_set: &[&Example],
    val_set: &[&Example],
    teacher: Option<&[Vec<f32>]>,
    inputs: Inputs,
    device: &Device,
    progress: &dyn Progress,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<(Vec<EpochRecord>, usize, f64)> {
    let started = Instant::now();
    let mut optimizer = crate::models::kernels::AdamW::new(
        trainable,
        candle_nn::ParamsAdamW { lr, weight_decay: options.weight_decay, ..Default::default() },
    )?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let dropout = Dropout::new(options.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1));
    // Positions into train_set, people's labels repeated.
    let mut pool: Vec<usize> = Vec::new();
    for (i, e) in train_set.iter().enumerate() {
        let copies = if e.human { options.human_weight.max(1) } else { 1 };
        pool.extend(std::iter::repeat_n(i, copies));
    }
    let batch_size = options.batch_size.max(2);
    let batches_per_epoch = pool.len().div_ceil(batch_size);
    // Each example's padded length, when batches are grouped by it.
    let lengths: Option<Vec<usize>> = (options.length_grouped && !options.paper_quirks)
        .then(|| train_set.iter().map(|e| inputs.length(e)).collect())
        .filter(|l: &Vec<usize>| l.iter().any(|&n| n > 0));
    let mut epochs = Vec::new();
    type Checkpoint = (f64, usize, Vec<(String, candle_core::Tensor)>);
    let mut best: Option<Checkpoint> = None;
    let mut since_best = 0;
    for epoch in 1..=options.max_epochs.max(1) {
        let epoch_started = Instant::now();
        let batches = epoch_batches(&mut pool, batch_size, lengths.as_deref(), &mut rng);
        let mut loss_sum = 0.0;
        let mut seen = 0usize;
        for (b, chunk) in batches.iter().enumerate() {
            if progress.is_cancelled() {
                return Err(crate::jobs::Cancelled.into());
            }
            // BatchNorm cannot normalise a batch of one.
            if chunk.len() < 2 {
                continue;
            }
            let examples: Vec<&Example> = chunk.iter().map(|&i| train_set[i]).collect();
            let teacher_rows: Option<Vec<Vec<f32>>> = teacher.map(|t| chunk.iter().map(|&i| t[i].clone()).collect());
            let loss = inputs.loss(model, &examples, teacher_rows.as_deref(), &dropout, device)?;
            optimizer.backward_step(&loss)?;
            let l = loss.to_scalar::<f32>()? as f64;
            loss_sum += l * chunk.len() as f64;
            seen += chunk.len();
            progress.set(
                ((epoch - 1) * batches_per_epoch + b + 1) as u64,
                (options.max_epochs * batches_per_epoch) as u64,
                &format!("epoch {epoch}/{} · batch {}/{batches_per_epoch} · loss {l:.4}", options.max_epochs, b + 1),
            );
        }
        let val = metrics_of(model, val_set, inputs, device, 0.5)?;
        let improved = best.as_ref().is_none_or(|(f1, _, _)| val.macro_f1 > *f1);
        if improved {
            best = Some((val.macro_f1, epoch, net::snapshot(varmap)?));
            since_best = 0;
        } else {
            since_best += 1;
        }
        let record = EpochRecord {
            epoch,
            train_loss: if seen > 0 { loss_sum / seen as f64 } else { f64::NAN },
            val_macro_f1: val.macro_f1,
            val_accuracy: val.accuracy,
            val_auc: val.auc,
            seconds: epoch_started.elapsed().as_secs_f64(),
            best: improved,
        };
        on_epoch(&record);
        epochs.push(record);
        if since_best >= options.patience.max(1) && epoch >= options.min_epochs {
            break;
        }
    }
    let (_, best_epoch, values) = best.expect("at least one epoch ran");
    net::restore(varmap, &values)?;
    Ok((epochs, best_epoch, started.elapsed().as_secs_f64()))
}

/// Metrics of `version` on the database's held-out test split (labels as they stand now).
pub fn eval(db: &Path, version: i64, device: DeviceChoice, progress: &dyn Progress) -> Result<Metrics> {
    let (examples, loaded, bank, device) = prepare_version(db, version, device, progress)?;
    let test: Vec<&Example> = examples.iter().filter(|e| e.split == Split::Test).collect();
    metrics_of(
        &loaded.net,
        &test,
        Inputs::Frozen { bank: &bank, max_len: loaded.config.options.max_len },
        &device,
        loaded.config.threshold.unwrap_or(0.5),
    )
}

/// Predicts every item with `version` and stores the predictions; returns how many.
pub fn predict(db: &Path, version: i64, device: DeviceChoice, progress: &dyn Progress) -> Result<usize> {
    predict_items(db, version, None, device, progress)
}

/// [`predict_items`] for one item at a time, bound to a database and a device: how the repair loop re-scores an
/// item ([`crate::formats::repair::Rescore`]).
pub fn rescorer(
    db: &Path,
    device: DeviceChoice,
) -> impl FnMut(i64, crate::domain::ItemId, &dyn Progress) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + use<>
{
    let db = db.to_owned();
    move |version, item, progress| {
        predict_items(&db, version, Some(&[item]), device, progress).map(|_| ()).map_err(|e| e.into())
    }
}

/// Predicts `items` (all when `None`) with `version` and stores the predictions; returns how many.
pub fn predict_items(
    db: &Path,
    version: i64,
    items: Option<&[crate::domain::ItemId]>,
    device: DeviceChoice,
    progress: &dyn Progress,
) -> Result<usize> {
    let (examples, loaded, bank, device) = prepare_version(db, version, device, progress)?;
    let all: Vec<&Example> = examples.iter().filter(|e| items.is_none_or(|ids| ids.contains(&e.item))).collect();
    progress.set(0, all.len() as u64, "predicting");
    let p = predict_all(
        &loaded.net,
        &all,
        Inputs::Frozen { bank: &bank, max_len: loaded.config.options.max_len },
        &device,
    )?;
    let perspectives = if loaded.config.architecture.kind == ModelKind::Arg {
        loaded.config.architecture.perspectives.clone()
    } else {
        Vec::new()
    };
    let predictions = to_predictions(&all, &p, &perspectives);
    let mut store = Store::open(db)?;
    store.save_predictions(version, &predictions)?;
    Ok(predictions.len())
}

/// One token of the news text with the attention ARG gives it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TokenWeight {
    /// Character span of the token in the item's text (end exclusive).
    pub start: usize,
    pub end: usize,
    /// Its share of ARG's news attention (the weights over the item's tokens sum to at most 1: tokens of the title
    /// are left out).
    pub weight: f64,
}

/// The attention of ARG `version` over the tokens of `item`'s news text (what its news feature pools), with each
/// token's character span in the item's text; the encoder loads on `device`, and the frozen outputs come from (or
/// go into) the encoder cache.
pub fn news_attention(
    db: &Path,
    version: i64,
    item: crate::domain::ItemId,
    device: DeviceChoice,
    progress: &dyn Progress,
) -> Result<Vec<TokenWeight>> {
    let store = Store::open(db)?;
    let v = store.model_version(version)?;
    let config: VersionConfig =
        serde_json::from_value(v.config.clone()).map_err(|source| TrainError::Config { version, source })?;
    if config.architecture.kind != ModelKind::Arg {
        return Err(TrainError::NotArg { version, found: v.kind });
    }
    let it = store.item(item)?;
    drop(store);
    let news = it.news_text();
    let mut session = open_session(db, &config.encoder, device, config.options.max_len, progress)?;
    let bert = session.encoder.config().clone();
    let loaded = load_version(&session.store, version, &session.device, &bert)?;
    let Net::Arg(arg) = &loaded.net else {
        return Err(TrainError::NotArg { version, found: loaded.config.architecture.kind });
    };
    progress.set(0, 0, "ARG reads the news");
    let bank = FeatureBank::build(&mut session.cache, &session.encoder, &[news.as_str()], progress)?;
    let (frozen, mask) = bank.batch(&[bank.id(&news)], None, &session.device)?;
    let weights: Vec<f32> = arg.news_attention(&frozen, &mask)?.squeeze(0)?.to_vec1()?;
    // Token spans: byte offsets into `news` from the encoder's tokenizer, then characters of the item's text (the
    // news may start with the title).
    let encoding = session
        .encoder
        .tokenizer()
        .encode(news.as_str(), true)
        .map_err(|e| TrainError::Tokenize { item, reason: e.to_string() })?;
    let text_start = news.find(it.text.trim()).unwrap_or(0);
    let char_of = |byte: usize| news[..byte.min(news.len())].chars().count();
    let first_char = char_of(text_start);
    let lead = it.text.len() - it.text.trim_start().len();
    let lead_chars = it.text[..lead].chars().count();
    let mut out = Vec::new();
    for (i, (&(s, e), &special)) in encoding.get_offsets().iter().zip(encoding.get_special_tokens_mask()).enumerate() {
        if special == 1 || e <= s || i >= weights.len() || s < text_start {
            continue;
        }
        out.push(TokenWeight {
            start: char_of(s) - first_char + lead_chars,
            end: char_of(e) - first_char + lead_chars,
            weight: f64::from(weights[i]),
        });
    }
    Ok(out)
}

fn prepare_version(
    db: &Path,
    version: i64,
    device: DeviceChoice,
    progress: &dyn Progress,
) -> Result<(Vec<Example>, LoadedVersion, FeatureBank, Device)> {
    let store = Store::open(db)?;
    let v = store.model_version(version)?;
    let config: VersionConfig =
        serde_json::from_value(v.config.clone()).map_err(|source| TrainError::Config { version, source })?;
    drop(store);
    let mut session = open_session(db, &config.encoder, device, config.options.max_len, progress)?;
    let bert = session.encoder.config().clone();
    let loaded = load_version(&session.store, version, &session.device, &bert)?;
    let items = session.store.training_items()?;
    let (examples, _) = data::build_grouped(
        &items,
        &loaded.config.architecture.perspectives,
        loaded.config.options.group_by.as_deref(),
    );
    let with_rationales = loaded.config.architecture.kind == ModelKind::Arg;
    let bank =
        FeatureBank::build(&mut session.cache, &session.encoder, &texts_needed(&examples, with_rationales), progress)?;
    Ok((examples, loaded, bank, session.device))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn length_grouped_batches_hold_every_example_once_and_texts_of_like_length() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 37) % 170 + 1).collect();
        let mut pool: Vec<usize> = (0..lengths.len()).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let batch = 16;
        let grouped = epoch_batches(&mut pool, batch, Some(&lengths), &mut rng);
        let mut seen: Vec<usize> = grouped.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>(), "every example once");
        assert!(grouped.iter().all(|b| b.len() <= batch));
        // Padding: each batch pads to its longest text. Grouped, the padded tokens are far fewer than drawn at
        // random, and a batch's texts are sorted, longest first.
        let padded = |batches: &[Vec<usize>]| -> usize {
            batches.iter().map(|b| b.len() * b.iter().map(|&i| lengths[i]).max().unwrap_or(0)).sum()
        };
        let random = epoch_batches(&mut pool, batch, None, &mut rng);
        let real: usize = lengths.iter().sum();
        assert!(padded(&grouped) - real < (padded(&random) - real) / 5, "{} vs {}", padded(&grouped), padded(&random));
        assert!(grouped.iter().all(|b| b.windows(2).all(|w| lengths[w[0]] >= lengths[w[1]])));
        // Still a random draw: another epoch gives other batches, in another order.
        let next = epoch_batches(&mut pool, batch, Some(&lengths), &mut rng);
        assert_ne!(next, grouped);
    }
}
