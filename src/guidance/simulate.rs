//! Does the learning loop help? `argus simulate` replays a database's gold labels as an annotator who labels the
//! items in the order a strategy picks (uncertainty, disagreement, risk, or at random), with the online learner on:
//! after every `every` labels, a few head steps over the new ones plus a replay of older ones, as in the studio.
//! At each checkpoint (25, 50, 100, ... labels) the model is scored on the held-out test split (validation when the
//! data has no test split). Nothing is written to the database: the labels stay in memory.
//!
//! Every run starts from the same model with nothing learned: the encoder's pretrained top layer and a seeded
//! head (the fixed part, seed 0, whose pooled inputs are cached beside the database like a version's), the head
//! then re-initialised with each run's seed. So the strategies differ only in which items reach the learner, and
//! the seeds in the head's start and the replay.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::time::Instant;

use candle_nn::{Optimizer as _, ParamsAdamW, VarMap};

use crate::models::kernels::AdamW;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use sha2::{Digest, Sha256};

use super::data::{self, Example, Split};
use super::metrics::evaluate_at;
use super::net::{self, Net};
use super::online::HeadSteps;
use super::train::{
    Inputs, TrainError, TrainOptions, architecture, copy_pretrained, head_bank, open_session, predict_all,
};
use super::triage::{Order, Signals};
use crate::domain::{ModelKind, Verdict};
use crate::jobs::Progress;
use crate::models::DeviceChoice;
use crate::models::encoder::Dropout;

type Result<T, E = TrainError> = std::result::Result<T, E>;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimulateRequest {
    /// ARG or BERT-only (ARG-D needs a teacher trained on labels first).
    pub kind: ModelKind,
    /// Risk, uncertainty, disagreement or random.
    pub strategies: Vec<Order>,
    /// Label counts at which the model is scored.
    pub labels: Vec<usize>,
    pub seeds: Vec<u64>,
    /// An online update after every this many labels.
    pub every: usize,
    pub steps: usize,
    pub batch: usize,
    pub encoder: String,
    pub device: DeviceChoice,
    /// Splits over this field instead of the text (as `argus train --group-by`).
    pub group_by: Option<String>,
    pub options: TrainOptions,
}

impl Default for SimulateRequest {
    fn default() -> Self {
        let online = super::online::OnlineOptions::default();
        Self {
            kind: ModelKind::Arg,
            strategies: vec![Order::Uncertainty, Order::Disagreement, Order::Risk, Order::Random],
            labels: vec![25, 50, 100, 200, 400],
            seeds: vec![0, 1, 2],
            every: online.every as usize,
            steps: online.steps,
            batch: online.batch,
            encoder: crate::models::catalog::DEMO_ENCODER.to_owned(),
            device: DeviceChoice::Cpu,
            group_by: None,
            options: TrainOptions::default(),
        }
    }
}

/// One score.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SimPoint {
    pub strategy: String,
    pub seed: u64,
    pub labels: usize,
    pub macro_f1: f64,
    pub auc: f64,
    /// Share of the labels so far that are "fake".
    pub fake_share: f64,
}

/// Every run's curve.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SimulationReport {
    pub kind: ModelKind,
    /// "test", or "validation" when the data has no test split.
    pub scored_on: &'static str,
    pub scored_items: usize,
    /// Labelled training items the annotator can pick from.
    pub pool: usize,
    pub every: usize,
    pub steps: usize,
    /// Pool items whose rationales imply a verdict (none: disagreement has nothing to weigh and keeps the random
    /// order).
    pub with_llm_verdicts: usize,
    pub points: Vec<SimPoint>,
    pub secs: f64,
}

/// One strategy's curve: (labels, mean macro-F1, its standard deviation over seeds).
pub type Curve = Vec<(usize, f64, f64)>;

/// Mean and (population) standard deviation.
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    (mean, (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt())
}

impl SimulationReport {
    /// Runs simulated: (strategy, seed) pairs.
    pub fn runs(&self) -> usize {
        self.points.iter().map(|p| (&p.strategy, p.seed)).collect::<HashSet<_>>().len()
    }

    /// Per strategy and label count: (mean, std) of macro-F1 over the seeds.
    pub fn curves(&self) -> Vec<(String, Curve)> {
        let mut strategies: Vec<String> = Vec::new();
        for p in &self.points {
            if !strategies.contains(&p.strategy) {
                strategies.push(p.strategy.clone());
            }
        }
        strategies
            .into_iter()
            .map(|s| {
                let mut labels: Vec<usize> = self.points.iter().filter(|p| p.strategy == s).map(|p| p.labels).collect();
                labels.sort_unstable();
                labels.dedup();
                let points = labels
                    .into_iter()
                    .map(|n| {
                        let f1: Vec<f64> = self
                            .points
                            .iter()
                            .filter(|p| p.strategy == s && p.labels == n)
                            .map(|p| p.macro_f1)
                            .collect();
                        let (m, sd) = mean_std(&f1);
                        (n, m, sd)
                    })
                    .collect();
                (s, points)
            })
            .collect()
    }
}

impl fmt::Display for SimulationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seeds: HashSet<u64> = self.points.iter().map(|p| p.seed).collect();
        writeln!(
            f,
            "simulated annotator, {}: {} labelled training items to pick from, online update every {} labels ({} \
             steps), macro-F1 on {} {} items, mean ± std over {} seeds ({:.0} s)",
            self.kind.human_name(),
            self.pool,
            self.every,
            self.steps,
            self.scored_items,
            self.scored_on,
            seeds.len(),
            self.secs
        )?;
        let curves = self.curves();
        let labels: Vec<usize> = curves.first().map(|(_, c)| c.iter().map(|p| p.0).collect()).unwrap_or_default();
        write!(f, "  {:<13}", "labels")?;
        for n in &labels {
            write!(f, " {n:>13}")?;
        }
        writeln!(f)?;
        for (strategy, points) in &curves {
            write!(f, "  {strategy:<13}")?;
            for (_, m, sd) in points {
                write!(f, " {:>13}", format!("{m:.3} ± {sd:.3}"))?;
            }
            writeln!(f)?;
        }
        if self.with_llm_verdicts == 0 && curves.iter().any(|c| c.0 == "disagreement") {
            writeln!(
                f,
                "  (no rationale here implies a verdict: disagreement has nothing to weigh and keeps the random order)"
            )?;
        }
        Ok(())
    }
}

/// Runs every strategy with every seed on `db`'s gold labels.
pub fn simulate(db: &Path, request: &SimulateRequest, progress: &dyn Progress) -> Result<SimulationReport> {
    let started = Instant::now();
    if request.kind == ModelKind::Argd {
        return Err(TrainError::TeacherMissing);
    }
    let mut session = open_session(db, &request.encoder, request.device, request.options.max_len, progress)?;
    let items = session.store.training_items()?;
    let order: Vec<String> = session.store.perspectives()?.into_iter().map(|p| p.key).collect();
    let perspectives =
        if request.kind == ModelKind::Arg { data::perspectives_present(&items, &order) } else { Vec::new() };
    // Gold labels only: the simulated annotator's answers are the data's labels.
    let items: Vec<_> = items
        .into_iter()
        .map(|mut i| {
            i.human = None;
            i
        })
        .collect();
    let group_by = data::resolve_group_by(request.group_by.as_deref(), session.store.split_group_by()?);
    let (examples, _) = data::build_grouped(&items, &perspectives, group_by.as_deref());
    // The verdicts the items' rationales imply (what disagreement weighs the model against, whether or not the
    // model reads the rationales).
    let llm: HashMap<crate::domain::ItemId, Vec<Verdict>> = items
        .iter()
        .map(|i| (i.id, i.rationales.iter().filter_map(|r| r.verdict).filter(|v| *v != Verdict::Other).collect()))
        .collect();
    let pool: Vec<&Example> = examples.iter().filter(|e| e.split == Split::Train && e.fake.is_some()).collect();
    let test: Vec<&Example> = examples.iter().filter(|e| e.split == Split::Test && e.fake.is_some()).collect();
    let (scored, scored_on) = if test.is_empty() {
        (examples.iter().filter(|e| e.split == Split::Val && e.fake.is_some()).collect::<Vec<_>>(), "validation")
    } else {
        (test, "test")
    };
    if pool.len() < 2 || scored.is_empty() {
        return Err(TrainError::NoLabels { db: db.to_owned(), train: pool.len(), labelled: scored.len() });
    }

    // The fixed part: pretrained top layers, everything else seeded with 0; its pooled inputs for every item.
    let device = session.device.clone();
    let bert = session.encoder.config().clone();
    let arch = architecture(request.kind, &perspectives, &request.options);
    let fixed = VarMap::new();
    let fixed_net = Net::build(&fixed, &arch, &bert, &device)?;
    net::seeded_init(&fixed, 0)?;
    copy_pretrained(&session, &fixed, request.kind)?;
    let key = {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&arch)?);
        h.update(session.encoder.id().as_bytes());
        h.update(request.options.max_len.to_le_bytes());
        format!("untrained-{:x}", h.finalize())
    };
    let all: Vec<&Example> = examples.iter().collect();
    let (bank, _) = head_bank(&mut session, &fixed_net, &key, &all, request.options.max_len, progress)?;
    let fixed_values = net::snapshot(&fixed)?;
    let head_prefixes = fixed_net.head_prefixes();

    let mut points = Vec::new();
    let last = request.labels.iter().copied().max().unwrap_or(0).min(pool.len());
    let runs = request.strategies.len() * request.seeds.len();
    for (r, (&strategy, &seed)) in
        request.strategies.iter().flat_map(|s| request.seeds.iter().map(move |seed| (s, seed))).enumerate()
    {
        progress.check()?;
        progress.set(r as u64, runs as u64, &format!("{} seed {seed}", strategy.label()));
        // The head re-initialised with this seed on the shared fixed part.
        let varmap = VarMap::new();
        let model = Net::build(&varmap, &arch, &bert, &device)?;
        net::seeded_init(&varmap, seed)?;
        let keep: Vec<(String, candle_core::Tensor)> = fixed_values
            .iter()
            .filter(|(name, _)| !head_prefixes.iter().any(|p| name.starts_with(p.as_str())))
            .cloned()
            .collect();
        net::restore(&varmap, &keep)?;
        let mut optimizer = AdamW::new(
            net::vars_with_prefixes(&varmap, &head_prefixes),
            ParamsAdamW {
                lr: request.options.head_lr,
                weight_decay: request.options.weight_decay,
                ..Default::default()
            },
        )?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let dropout = Dropout::new(seed.wrapping_add(0x51_u64));
        let mut shuffled = pool.clone();
        shuffled.shuffle(&mut rng);
        let mut labelled: Vec<&Example> = Vec::new();
        let mut taken: HashSet<crate::domain::ItemId> = HashSet::new();
        let mut checkpoints: Vec<usize> = request.labels.iter().copied().filter(|&n| n <= pool.len()).collect();
        checkpoints.sort_unstable();
        let mut next_checkpoint = 0;
        while labelled.len() < last {
            let want = request.every.max(1).min(last - labelled.len());
            let picks = pick(strategy, &model, &bank, &shuffled, &taken, &llm, want, &device)?;
            for e in &picks {
                taken.insert(e.item);
            }
            let mut new = picks.clone();
            let replay = labelled.clone();
            labelled.extend(picks);
            let mut steps = HeadSteps {
                net: &model,
                optimizer: &mut optimizer,
                bank: &bank,
                rng: &mut rng,
                dropout: &dropout,
                device: &device,
            };
            steps.run(&mut new, &replay, request.steps, request.batch, &crate::jobs::NoProgress)?;
            while next_checkpoint < checkpoints.len() && labelled.len() >= checkpoints[next_checkpoint] {
                let p = predict_all(&model, &scored, Inputs::Head(&bank), &device)?;
                let y: Vec<bool> = scored.iter().map(|e| e.fake == Some(true)).collect();
                let m = evaluate_at(&p.p_fake.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(), &y, 0.5);
                let fakes = labelled.iter().filter(|e| e.fake == Some(true)).count();
                points.push(SimPoint {
                    strategy: strategy_name(strategy).to_owned(),
                    seed,
                    labels: checkpoints[next_checkpoint],
                    macro_f1: m.macro_f1,
                    auc: m.auc,
                    fake_share: fakes as f64 / labelled.len() as f64,
                });
                next_checkpoint += 1;
            }
        }
    }
    Ok(SimulationReport {
        kind: request.kind,
        scored_on,
        scored_items: scored.len(),
        pool: pool.len(),
        with_llm_verdicts: pool.iter().filter(|e| llm.get(&e.item).is_some_and(|v| !v.is_empty())).count(),
        every: request.every,
        steps: request.steps,
        points,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// The next `want` items the strategy picks from `pool` (not yet `taken`), under the current model.
#[allow(clippy::too_many_arguments)]
fn pick<'a>(
    strategy: Order,
    model: &Net,
    bank: &super::head::HeadBank,
    pool: &[&'a Example],
    taken: &HashSet<crate::domain::ItemId>,
    llm: &HashMap<crate::domain::ItemId, Vec<Verdict>>,
    want: usize,
    device: &candle_core::Device,
) -> Result<Vec<&'a Example>> {
    let open: Vec<&Example> = pool.iter().copied().filter(|e| !taken.contains(&e.item)).collect();
    if strategy == Order::Random || strategy == Order::Natural {
        // `pool` is shuffled per seed: its order is the random order.
        return Ok(open.into_iter().take(want).collect());
    }
    let p = predict_all(model, &open, Inputs::Head(bank), device)?;
    let scores: Vec<f64> = open
        .iter()
        .zip(&p.p_fake)
        .map(|(e, &p_fake)| {
            let p_fake = f64::from(p_fake);
            match strategy {
                Order::Risk => p_fake,
                Order::Uncertainty => 1.0 - (2.0 * p_fake - 1.0).abs(),
                _ => {
                    let llm = llm.get(&e.item).cloned().unwrap_or_default();
                    Signals { arg: Some(p_fake), llm, ..Signals::default() }.disagreement()
                }
            }
        })
        .collect();
    let mut order: Vec<usize> = (0..open.len()).collect();
    // Highest score first; ties keep the seeded shuffle's order.
    order.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap_or(std::cmp::Ordering::Equal));
    Ok(order.into_iter().take(want).map(|i| open[i]).collect())
}

/// The strategy's name as the command line takes it.
pub fn strategy_name(strategy: Order) -> &'static str {
    match strategy {
        Order::Natural => "as-imported",
        Order::Risk => "risk",
        Order::Uncertainty => "uncertainty",
        Order::Disagreement => "disagreement",
        Order::Random => "random",
    }
}
