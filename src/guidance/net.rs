//! The three trainable guidance models behind one interface, built in a `VarMap` (so that they can be trained,
//! saved and loaded): seeded initialisation, the encoder's pretrained top layers copied in, batches from the
//! feature bank, loss and predictions.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::Config as BertConfig;
use rand::{Rng, SeedableRng};

use super::arg::{Arg, ArgConfig, ArgPooled, ArgTargets};
use super::argd::{ArgD, ArgdConfig};
use super::bert::{BertClassifier, BertConfigHead};
use super::data::Example;
use super::features::FeatureBank;
use super::head::HeadBank;
use crate::domain::ModelKind;
use crate::models::encoder::Dropout;

/// Everything needed to rebuild a model's architecture (stored in each version's config).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Architecture {
    pub kind: ModelKind,
    /// Perspectives of ARG's rationales (for ARG-D: its teacher's).
    pub perspectives: Vec<String>,
    pub arg: ArgConfig,
    pub argd: ArgdConfig,
    pub bert: BertConfigHead,
}

/// A built model.
pub enum Net {
    Arg(Box<Arg>),
    Argd(Box<ArgD>),
    Bert(Box<BertClassifier>),
}

/// A batch of examples as tensors.
pub struct Batch {
    pub news: (Tensor, Tensor),
    pub rationales: Vec<(Tensor, Tensor)>,
    pub label: Tensor,
    pub useful: Vec<Tensor>,
    pub judgement: Vec<Tensor>,
    /// Per perspective (B): 1 when the item has a rationale from it.
    pub present: Vec<Tensor>,
    /// ARG-D: the teacher's fused features (B, D).
    pub teacher: Option<Tensor>,
}

/// What a model predicts for a batch (host values).
pub struct BatchPrediction {
    pub p_fake: Vec<f32>,
    /// Per example, per perspective (ARG only).
    pub gates: Vec<Vec<f32>>,
    pub usefulness: Vec<Vec<f32>>,
    pub judgements: Vec<Vec<u32>>,
    /// (B, D) fused features (ARG only; ARG-D's distillation target).
    pub features: Option<Vec<Vec<f32>>>,
    /// (B, F) the pooled inputs of the model's head (what [`Net::head_predict`] reads; cached for quick retrains).
    pub head_inputs: Vec<Vec<f32>>,
}

/// A batch for the head alone: pooled inputs from a [`HeadBank`] and the targets.
pub struct HeadBatch {
    pub inputs: Tensor,
    pub targets: Targets,
}

/// The targets of a batch.
pub struct Targets {
    pub label: Tensor,
    pub useful: Vec<Tensor>,
    pub judgement: Vec<Tensor>,
    pub present: Vec<Tensor>,
}

impl BatchPrediction {
    /// Predictions of a model that reads no rationales: P(fake) alone.
    fn p_fake_only(p_fake: Vec<f32>) -> Self {
        let b = p_fake.len();
        Self {
            p_fake,
            gates: vec![vec![]; b],
            usefulness: vec![vec![]; b],
            judgements: vec![vec![]; b],
            features: None,
            head_inputs: vec![vec![]; b],
        }
    }
}

impl Net {
    /// Builds the architecture in `varmap` (new variables get candle's initialisation; see [`seeded_init`]).
    pub fn build(varmap: &VarMap, arch: &Architecture, bert: &BertConfig, device: &Device) -> Result<Self> {
        let vb = VarBuilder::from_varmap(varmap, DType::F32, device);
        Ok(match arch.kind {
            ModelKind::Arg => Net::Arg(Box::new(Arg::load_head(
                vb,
                ArgConfig { perspectives: arch.perspectives.len(), ..arch.arg.clone() },
                bert,
            )?)),
            ModelKind::Argd => Net::Argd(Box::new(ArgD::load_student(vb, arch.argd.clone(), bert)?)),
            ModelKind::Bert => Net::Bert(Box::new(BertClassifier::load_head(vb, arch.bert.clone(), bert)?)),
        })
    }

    /// Reference fixed padding: the reference means run over all positions, so quirks mode pads to the full length.
    fn quirks(&self) -> bool {
        match self {
            Net::Arg(m) => m.config.paper_quirks,
            Net::Argd(m) => m.config.paper_quirks,
            Net::Bert(_) => false,
        }
    }

    /// The loss of a batch; with `dropout`, in training mode.
    pub fn loss(&self, batch: &Batch, dropout: Option<&Dropout>) -> Result<Tensor> {
        match self {
            Net::Arg(m) => {
                let inputs = m.encode_top((&batch.news.0, &batch.news.1), &batch.rationales, dropout)?;
                let out = m.forward_t(&inputs, dropout)?;
                let targets = ArgTargets {
                    label: batch.label.clone(),
                    useful: batch.useful.clone(),
                    judgement: batch.judgement.clone(),
                    present: batch.present.clone(),
                };
                Ok(m.loss(&out, &targets)?.total)
            }
            Net::Argd(m) => {
                let out = m.forward_frozen_states(&batch.news.0, &batch.news.1, dropout)?;
                let teacher =
                    batch.teacher.as_ref().ok_or_else(|| candle_core::Error::Msg("no teacher features".into()))?;
                Ok(m.loss(&out, &batch.label, teacher)?.total)
            }
            Net::Bert(m) => {
                let p = m.forward(&batch.news.0, &batch.news.1, dropout)?;
                m.loss(&p, &batch.label)
            }
        }
    }

    /// Predictions in evaluation mode (through the head, so that they equal [`Net::head_predict`] of the pooled
    /// inputs they also return).
    pub fn predict(&self, batch: &Batch) -> Result<BatchPrediction> {
        let inputs = self.head_inputs(batch)?;
        let mut p = self.head_predict(&inputs)?;
        p.head_inputs = inputs.to_vec2()?;
        Ok(p)
    }

    /// The pooled inputs of the head (B, F), in evaluation mode: ARG's news pooling, cross-attention means and
    /// judgement poolings ([`ArgPooled::flatten`]); ARG-D's and BERT's pooled news.
    pub fn head_inputs(&self, batch: &Batch) -> Result<Tensor> {
        match self {
            Net::Arg(m) => {
                let inputs = m.encode_top((&batch.news.0, &batch.news.1), &batch.rationales, None)?;
                m.pool_t(&inputs, None)?.flatten()
            }
            Net::Argd(m) => Ok(m.forward_frozen_states(&batch.news.0, &batch.news.1, None)?.feature),
            Net::Bert(m) => m.pooled(&batch.news.0, &batch.news.1),
        }
    }

    /// Width of [`Net::head_inputs`]' rows for an encoder `dim` wide.
    pub fn head_width(&self, dim: usize) -> usize {
        match self {
            Net::Arg(m) => (1 + 3 * m.config.perspectives) * dim,
            _ => dim,
        }
    }

    /// Predictions of the head on pooled inputs (B, F), in evaluation mode.
    pub fn head_predict(&self, inputs: &Tensor) -> Result<BatchPrediction> {
        let rows = |t: &Tensor| -> Result<Vec<Vec<f32>>> { t.to_vec2::<f32>() };
        match self {
            Net::Arg(m) => {
                let out = m.head_t(self.arg_pooled(m, inputs)?, None)?;
                let b = out.p_fake.dim(0)?;
                let mut usefulness = vec![Vec::new(); b];
                let mut judgements = vec![Vec::new(); b];
                for (u, j) in out.usefulness.iter().zip(&out.judgement_logits) {
                    for (i, v) in u.to_vec1::<f32>()?.into_iter().enumerate() {
                        usefulness[i].push(v);
                    }
                    for (i, v) in j.argmax(1)?.to_vec1::<u32>()?.into_iter().enumerate() {
                        judgements[i].push(v);
                    }
                }
                Ok(BatchPrediction {
                    p_fake: out.p_fake.to_vec1()?,
                    gates: rows(&out.gates)?,
                    usefulness,
                    judgements,
                    features: Some(rows(&out.final_feature)?),
                    head_inputs: vec![vec![]; b],
                })
            }
            Net::Argd(m) => Ok(BatchPrediction::p_fake_only(m.head_t(inputs, None)?.to_vec1()?)),
            Net::Bert(m) => Ok(BatchPrediction::p_fake_only(m.head_t(inputs, None)?.to_vec1()?)),
        }
    }

    fn arg_pooled(&self, m: &Arg, inputs: &Tensor) -> Result<ArgPooled> {
        let perspectives = m.config.perspectives;
        ArgPooled::from_flat(inputs, perspectives, inputs.dim(1)? / (1 + 3 * perspectives))
    }

    /// The loss of the head alone on pooled inputs; with `dropout`, in training mode. ARG's usefulness and
    /// judgement losses are part of it; ARG-D's distillation term is not (its pooled feature is fixed).
    pub fn head_loss(&self, batch: &HeadBatch, dropout: Option<&Dropout>) -> Result<Tensor> {
        let t = &batch.targets;
        match self {
            Net::Arg(m) => {
                let out = m.head_t(self.arg_pooled(m, &batch.inputs)?, dropout)?;
                let targets = ArgTargets {
                    label: t.label.clone(),
                    useful: t.useful.clone(),
                    judgement: t.judgement.clone(),
                    present: t.present.clone(),
                };
                Ok(m.loss(&out, &targets)?.total)
            }
            Net::Argd(m) => super::arg::bce(&m.head_t(&batch.inputs, dropout)?, &t.label),
            Net::Bert(m) => m.loss(&m.head_t(&batch.inputs, dropout)?, &t.label),
        }
    }

    /// Prefixes of the variables the head reads: what a quick retrain and the online learner train.
    pub fn head_prefixes(&self) -> Vec<String> {
        match self {
            Net::Arg(m) => m.head_prefixes(),
            _ => vec!["mlp.mlp.".to_owned()],
        }
    }

    /// A batch for the head: `examples`' pooled inputs from `bank`, and their targets.
    pub fn head_batch(&self, examples: &[&Example], bank: &HeadBank, device: &Device) -> Result<HeadBatch> {
        let width = bank.width();
        let mut flat = Vec::with_capacity(examples.len() * width);
        for e in examples {
            flat.extend_from_slice(bank.row(e));
        }
        Ok(HeadBatch {
            inputs: Tensor::from_vec(flat, (examples.len(), width), device)?,
            targets: self.targets(examples, device)?,
        })
    }

    fn targets(&self, examples: &[&Example], device: &Device) -> Result<Targets> {
        let label: Vec<f32> = examples.iter().map(|e| e.fake.unwrap_or(false) as u8 as f32).collect();
        let label = Tensor::from_vec(label, examples.len(), device)?;
        let mut useful = Vec::new();
        let mut judgement = Vec::new();
        let mut present = Vec::new();
        if let Net::Arg(m) = self {
            for k in 0..m.config.perspectives {
                let acc: Vec<f32> = examples.iter().map(|e| e.rationales[k].r_acc).collect();
                useful.push(Tensor::from_vec(acc, examples.len(), device)?);
                let pred: Vec<u32> = examples.iter().map(|e| e.rationales[k].r_pred).collect();
                judgement.push(Tensor::from_vec(pred, examples.len(), device)?);
                let has: Vec<f32> = examples.iter().map(|e| f32::from(u8::from(e.rationales[k].present))).collect();
                present.push(Tensor::from_vec(has, examples.len(), device)?);
            }
        }
        Ok(Targets { label, useful, judgement, present })
    }

    /// Assembles a batch of `examples` from `bank`; `teacher` holds ARG-D's targets by example position.
    pub fn batch(
        &self,
        examples: &[&Example],
        bank: &FeatureBank,
        max_len: usize,
        teacher: Option<&[Vec<f32>]>,
        device: &Device,
    ) -> Result<Batch> {
        let pad = self.quirks().then_some(max_len);
        let news_ids: Vec<usize> = examples.iter().map(|e| bank.id(&e.news)).collect();
        let news = bank.batch(&news_ids, pad, device)?;
        let Targets { label, useful, judgement, present } = self.targets(examples, device)?;
        let mut rationales = Vec::new();
        if let Net::Arg(m) = self {
            for k in 0..m.config.perspectives {
                let ids: Vec<usize> = examples.iter().map(|e| bank.id(&e.rationales[k].text)).collect();
                rationales.push(bank.batch(&ids, pad, device)?);
            }
        }
        let teacher = match teacher {
            Some(rows) if matches!(self, Net::Argd(_)) => {
                let d = rows.first().map(Vec::len).unwrap_or(0);
                let flat: Vec<f32> = rows.iter().flatten().copied().collect();
                Some(Tensor::from_vec(flat, (rows.len(), d), device)?)
            }
            _ => None,
        };
        Ok(Batch { news, rationales, label, useful, judgement, present, teacher })
    }
}

/// The variables of `varmap` whose names start with one of `prefixes` (the head's, for a quick retrain), in name
/// order.
pub fn vars_with_prefixes(varmap: &VarMap, prefixes: &[String]) -> Vec<candle_core::Var> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut named: Vec<(&String, &candle_core::Var)> =
        data.iter().filter(|(name, _)| prefixes.iter().any(|p| name.starts_with(p.as_str()))).collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    named.into_iter().filter(|(_, v)| !v.dims().is_empty()).map(|(_, v)| v.clone()).collect()
}

/// Re-initialises every variable of `varmap` from a generator seeded with `seed`, in name order, as PyTorch
/// initialises these layers: Linear weights and biases uniform in ±1/sqrt(fan_in), norm scales 1 and shifts 0,
/// BatchNorm running mean 0 and variance 1. (candle's own initialisation draws from an unseeded generator.)
pub fn seeded_init(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let n: usize = dims.iter().product();
        let stem = name.rsplit_once('.').map(|(s, _)| s).unwrap_or("");
        let values: Vec<f32> = if name.ends_with("running_var") {
            vec![1.0; n]
        } else if name.ends_with("running_mean") {
            vec![0.0; n]
        } else {
            let weight = data.get(&format!("{stem}.weight"));
            let fan_in = match (dims.len(), weight) {
                (2, _) => Some(dims[1]),
                (1, Some(w)) if w.dims().len() == 2 && name.ends_with("bias") => Some(w.dims()[1]),
                _ => None,
            };
            match fan_in {
                Some(fan_in) => {
                    let bound = 1.0 / (fan_in as f32).sqrt();
                    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
                }
                None if name.ends_with("weight") => vec![1.0; n],
                None => vec![0.0; n],
            }
        };
        var.set(&Tensor::from_vec(values, dims, var.device())?)?;
    }
    Ok(())
}

/// Sets every variable named `{to}{rest}` from the tensor `{from}{rest}` of `source`, when it has one; returns how
/// many were set.
pub fn copy_matching(varmap: &VarMap, source: &HashMap<String, Tensor>, from: &str, to: &str) -> Result<usize> {
    let data = varmap.data().lock().expect("varmap lock");
    let mut copied = 0;
    for (name, var) in data.iter() {
        let Some(rest) = name.strip_prefix(to) else { continue };
        if let Some(t) = source.get(&format!("{from}{rest}")) {
            if t.dims() != var.dims() {
                candle_core::bail!("{name}: shape {:?} does not match the source's {:?}", var.dims(), t.dims());
            }
            var.set(&t.to_dtype(DType::F32)?.to_device(var.device())?)?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// Every variable's current value, copied (the best checkpoint kept in memory during training).
pub fn snapshot(varmap: &VarMap) -> Result<Vec<(String, Tensor)>> {
    let data = varmap.data().lock().expect("varmap lock");
    data.iter().map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?))).collect()
}

/// Puts back a [`snapshot`].
pub fn restore(varmap: &VarMap, values: &[(String, Tensor)]) -> Result<()> {
    let data = varmap.data().lock().expect("varmap lock");
    for (k, t) in values {
        if let Some(v) = data.get(k) {
            v.set(t)?;
        }
    }
    Ok(())
}

/// Loads the tensors of a safetensors file onto `device`.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device)
}
