//! Faithfulness: does ARG use the rationale it says it trusts? After PINTO's counterfactual check (Wang et al.,
//! ICLR 2023): for each item and each perspective, the rationale is replaced by
//! - **empty**: no rationale at all (how a missing rationale reaches the model);
//! - **swap**: another item's rationale of the same perspective (a seeded derangement);
//! - **negate**: the same rationale with its verdict sentence negated (true ↔ false, real ↔ fake, is ↔ is not, ...;
//!   items whose rationale has no such sentence, or has it past the tokens the model reads, are left out of this
//!   one),
//!
//! and ARG's P(fake) and its trust in that rationale (the gate w_r) are computed again. Per perspective the report
//! gives the mean |ΔP(fake)| and |Δw_r| under each perturbation, and the Pearson correlation over items between
//! w_r and the sensitivity |ΔP(fake)|: a model that leans on the rationales it trusts moves more where w_r is high.
//! A model that ignores its rationales (its gates forced to zero: [`FaithfulnessOptions::zero_gates`], the
//! control) scores zero.
//!
//! Only forward passes: the perturbed texts go through the frozen encoder layers once (into the encoder cache).

use std::fmt;
use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use super::data::{self, Example, Split};
use super::features::FeatureBank;
use super::train::{Inputs, Result, TrainError, VersionConfig, load_version, open_session, predict_all};
use crate::domain::{ItemId, ModelKind};
use crate::jobs::Progress;
use crate::models::DeviceChoice;

/// How a rationale is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Perturbation {
    Empty,
    Swap,
    Negate,
}

impl Perturbation {
    pub const ALL: [Perturbation; 3] = [Perturbation::Empty, Perturbation::Swap, Perturbation::Negate];

    pub fn as_str(self) -> &'static str {
        match self {
            Perturbation::Empty => "empty",
            Perturbation::Swap => "swap",
            Perturbation::Negate => "negate",
        }
    }
}

/// Which items, and the control.
#[derive(Clone, Debug)]
pub struct FaithfulnessOptions {
    /// Items of this split (default: test); ignored when `items` is given.
    pub split: Option<Split>,
    /// These items only (the item view asks for one).
    pub items: Option<Vec<ItemId>>,
    /// At most this many items (the first by id).
    pub limit: Option<usize>,
    /// Seed of the swap's derangement.
    pub seed: u64,
    /// The control: every gate forced to zero before measuring (a model that ignores its rationales).
    pub zero_gates: bool,
}

impl Default for FaithfulnessOptions {
    fn default() -> Self {
        Self { split: Some(Split::Test), items: None, limit: None, seed: 0, zero_gates: false }
    }
}

/// One item's sensitivity to one perspective's rationale.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ItemSensitivity {
    pub item: ItemId,
    pub perspective: String,
    /// ARG's P(fake) and trust w_r with the rationale as it is.
    pub p_fake: f64,
    pub gate: f64,
    /// P(fake) − P(fake) as is, per perturbation (`None`: not applicable, e.g. no verdict sentence to negate).
    pub dp_empty: Option<f64>,
    pub dp_swap: Option<f64>,
    pub dp_negate: Option<f64>,
    /// w_r under the perturbation − w_r as is.
    pub dgate_empty: Option<f64>,
    pub dgate_swap: Option<f64>,
    pub dgate_negate: Option<f64>,
}

impl ItemSensitivity {
    pub fn dp(&self, p: Perturbation) -> Option<f64> {
        match p {
            Perturbation::Empty => self.dp_empty,
            Perturbation::Swap => self.dp_swap,
            Perturbation::Negate => self.dp_negate,
        }
    }

    pub fn dgate(&self, p: Perturbation) -> Option<f64> {
        match p {
            Perturbation::Empty => self.dgate_empty,
            Perturbation::Swap => self.dgate_swap,
            Perturbation::Negate => self.dgate_negate,
        }
    }
}

/// One perturbation's summary over the items of one perspective.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PerturbationSummary {
    pub perturbation: Perturbation,
    /// Items it applied to.
    pub items: usize,
    pub mean_abs_dp: f64,
    pub mean_abs_dgate: f64,
    /// Pearson correlation over items between w_r and |ΔP(fake)| (`None` when either is constant or < 3 items).
    pub gate_sensitivity_corr: Option<f64>,
}

/// One perspective's faithfulness.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PerspectiveFaithfulness {
    pub perspective: String,
    /// Items with a rationale from this perspective.
    pub items: usize,
    pub mean_gate: f64,
    pub perturbations: Vec<PerturbationSummary>,
}

impl PerspectiveFaithfulness {
    pub fn summary(&self, p: Perturbation) -> Option<&PerturbationSummary> {
        self.perturbations.iter().find(|s| s.perturbation == p)
    }
}

/// The whole check for one ARG version.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaithfulnessReport {
    pub version: i64,
    pub items: usize,
    pub zero_gates: bool,
    pub perspectives: Vec<PerspectiveFaithfulness>,
    /// Mean |ΔP(fake)| over every perspective and perturbation that applied: one number to compare versions and
    /// methods by (the control's is zero).
    pub score: f64,
    #[serde(skip)]
    pub per_item: Vec<ItemSensitivity>,
}

impl fmt::Display for FaithfulnessReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "faithfulness of ARG version {} on {} items{}: mean |ΔP(fake)| {:.4}",
            self.version,
            self.items,
            if self.zero_gates { " (control: every gate forced to zero)" } else { "" },
            self.score
        )?;
        writeln!(
            f,
            "| perspective | items | mean w_r | perturbation | applied | mean abs. ΔP(fake) | mean abs. Δw_r | corr(w_r, abs. ΔP) |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|---|")?;
        for p in &self.perspectives {
            for s in &p.perturbations {
                let corr = s.gate_sensitivity_corr.map(|c| format!("{c:+.3}")).unwrap_or_else(|| "n/a".into());
                writeln!(
                    f,
                    "| {} | {} | {:.3} | {} | {} | {:.4} | {:.4} | {corr} |",
                    p.perspective,
                    p.items,
                    p.mean_gate,
                    s.perturbation.as_str(),
                    s.items,
                    s.mean_abs_dp,
                    s.mean_abs_dgate
                )?;
            }
        }
        Ok(())
    }
}

/// Word swaps that turn a verdict around (both directions are tried, longest phrase first; case kept for the
/// first letter): verdict words first; a sentence with none has its copula negated instead.
const VERDICT_WORDS: &[(&str, &str)] = &[
    ("not credible", "credible"),
    ("not misleading", "misleading"),
    ("inaccurate", "accurate"),
    ("unreliable", "reliable"),
    ("untrue", "true"),
    ("unlikely", "likely"),
    ("implausible", "plausible"),
    ("inconsistent", "consistent"),
    ("false", "true"),
    ("fake", "real"),
    ("fabricated", "authentic"),
    ("misleading", "accurate"),
    ("contradicts", "supports"),
    ("refutes", "confirms"),
];

const COPULAS: &[(&str, &str)] = &[
    ("is not", "is"),
    ("are not", "are"),
    ("does not", "does"),
    ("isn't", "is"),
    ("aren't", "are"),
    ("doesn't", "does"),
];

fn is_word_boundary(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(|c| c.is_alphanumeric() || c == '\'') && !after.is_some_and(|c| c.is_alphanumeric())
}

/// `sentence` with its first verdict phrase turned around, or `None` when it has none.
fn negate_sentence(sentence: &str, swaps: &[(&str, &str)]) -> Option<String> {
    let lower = sentence.to_lowercase();
    if lower.len() != sentence.len() {
        // Lower-casing changed byte offsets (rare scripts): leave it alone rather than cut a character.
        return None;
    }
    // The earliest match wins; at one position, the longest phrase.
    let mut best: Option<(usize, usize, &str)> = None;
    for &(a, b) in swaps {
        for (from, to) in [(a, b), (b, a)] {
            let mut at = 0;
            while let Some(i) = lower[at..].find(from) {
                let start = at + i;
                let end = start + from.len();
                if is_word_boundary(&lower, start, end) {
                    let better = match best {
                        None => true,
                        Some((s, e, _)) => start < s || (start == s && end > e),
                    };
                    if better {
                        best = Some((start, end, to));
                    }
                    break;
                }
                at = end;
            }
        }
    }
    let (start, end, to) = best?;
    let original = &sentence[start..end];
    let replacement = if original.chars().next().is_some_and(char::is_uppercase) {
        let mut c = to.chars();
        c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
    } else {
        to.to_owned()
    };
    Some(format!("{}{}{}", &sentence[..start], replacement, &sentence[end..]))
}

/// The rationale with its verdict sentence negated: the last sentence that carries a verdict word (where LLM
/// rationales put their conclusion), else the last one with a copula to negate, else `None`.
pub fn negate_verdict(text: &str) -> Option<String> {
    // Sentence spans: up to and including '.', '!' or '?' followed by whitespace or the end.
    let mut spans = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let next_is_space = chars.get(k + 1).is_none_or(|&(_, n)| n.is_whitespace());
        if matches!(c, '.' | '!' | '?' | '\n') && next_is_space {
            let end = i + c.len_utf8();
            spans.push((start, end));
            start = end;
        }
    }
    if start < text.len() {
        spans.push((start, text.len()));
    }
    for swaps in [VERDICT_WORDS, COPULAS] {
        for &(s, e) in spans.iter().rev() {
            if let Some(negated) = negate_sentence(&text[s..e], swaps) {
                return Some(format!("{}{}{}", &text[..s], negated, &text[e..]));
            }
        }
    }
    None
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    if n < 3 || n != y.len() {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    if sxx <= 1e-18 || syy <= 1e-18 {
        return None;
    }
    Some(sxy / (sxx * syy).sqrt())
}

/// Forces every gate of `net`'s perspectives to zero (the last layer's weights 0, its bias −40: sigmoid ≈ 4e-18).
fn zero_gates(varmap: &candle_nn::VarMap, perspectives: usize) -> Result<()> {
    let data = varmap.data().lock().expect("varmap lock");
    for s in 2..2 + perspectives {
        for (suffix, value) in [("weight", 0.0f64), ("bias", -40.0)] {
            let name = format!("score_mapper_ftr_{s}.8.{suffix}");
            let var =
                data.get(&name).ok_or_else(|| TrainError::Candle(candle_core::Error::Msg(format!("no {name}"))))?;
            let t = (var.as_tensor().zeros_like()? + value)?;
            var.set(&t)?;
        }
    }
    Ok(())
}

/// Measures how ARG `version` (on the database at `db`) moves when each rationale is perturbed.
pub fn faithfulness(
    db: &Path,
    version: i64,
    options: &FaithfulnessOptions,
    device: DeviceChoice,
    progress: &dyn Progress,
) -> Result<FaithfulnessReport> {
    let store = crate::store::Store::open(db)?;
    let v = store.model_version(version)?;
    let config: VersionConfig =
        serde_json::from_value(v.config.clone()).map_err(|source| TrainError::Config { version, source })?;
    if config.architecture.kind != ModelKind::Arg {
        return Err(TrainError::NotArg { version, found: v.kind });
    }
    drop(store);
    let mut session = open_session(db, &config.encoder, device, config.options.max_len, progress)?;
    let bert = session.encoder.config().clone();
    let loaded = load_version(&session.store, version, &session.device, &bert)?;
    let perspectives = loaded.config.architecture.perspectives.clone();
    if options.zero_gates {
        zero_gates(&loaded.varmap, perspectives.len())?;
    }
    let items = session.store.training_items()?;
    let (examples, _) = data::build_grouped(&items, &perspectives, loaded.config.options.group_by.as_deref());
    let mut chosen: Vec<&Example> = examples
        .iter()
        .filter(|e| match &options.items {
            Some(ids) => ids.contains(&e.item),
            None => options.split.is_none_or(|s| e.split == s),
        })
        .filter(|e| e.rationales.iter().any(|r| r.present))
        .collect();
    chosen.sort_by_key(|e| e.item);
    if let Some(n) = options.limit {
        chosen.truncate(n);
    }
    // Swap partners: per perspective, a seeded derangement among the items of the whole database that have a
    // rationale from it (so that one chosen item still gets another item's rationale).
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let wanted: std::collections::HashSet<ItemId> = chosen.iter().map(|e| e.item).collect();
    let mut swaps: Vec<std::collections::HashMap<ItemId, String>> = Vec::new();
    for k in 0..perspectives.len() {
        let pool: Vec<&Example> = examples.iter().filter(|e| e.rationales[k].present).collect();
        let mut order: Vec<usize> = (0..pool.len()).collect();
        order.shuffle(&mut rng);
        let mut map = std::collections::HashMap::new();
        if pool.len() >= 2 {
            // Each item takes the rationale of the next one in the shuffled order: nobody gets their own.
            for (pos, &i) in order.iter().enumerate() {
                let e = pool[i];
                if !wanted.contains(&e.item) {
                    continue;
                }
                let mut donor = pool[order[(pos + 1) % order.len()]];
                if donor.rationales[k].text == e.rationales[k].text {
                    // Same text (duplicates): take the first one that differs, if any.
                    if let Some(other) = pool.iter().find(|o| o.rationales[k].text != e.rationales[k].text) {
                        donor = other;
                    }
                }
                map.insert(e.item, donor.rationales[k].text.clone());
            }
        }
        swaps.push(map);
    }
    // Every variant: (chosen index, perspective, perturbation, example).
    let mut variants: Vec<(usize, usize, Perturbation, Example)> = Vec::new();
    for (i, e) in chosen.iter().enumerate() {
        for (k, swap) in swaps.iter().enumerate() {
            if !e.rationales[k].present {
                continue;
            }
            for p in Perturbation::ALL {
                let text = match p {
                    Perturbation::Empty => Some(String::new()),
                    Perturbation::Swap => swap.get(&e.item).cloned(),
                    Perturbation::Negate => negate_verdict(&e.rationales[k].text),
                };
                let Some(text) = text else { continue };
                let mut changed = (*e).clone();
                changed.rationales[k].present = !text.is_empty();
                changed.rationales[k].text = text;
                variants.push((i, k, p, changed));
            }
        }
    }
    let mut texts: Vec<&str> = Vec::new();
    for e in chosen.iter().copied().chain(variants.iter().map(|v| &v.3)) {
        texts.push(e.news.as_str());
        texts.extend(e.rationales.iter().map(|r| r.text.as_str()));
    }
    progress.set(0, 0, &format!("faithfulness: {} items, {} perturbed copies", chosen.len(), variants.len()));
    let bank = FeatureBank::build(&mut session.cache, &session.encoder, &texts, progress)?;
    // A negation past the last token the encoder keeps (long justifications put their verdict last) is invisible
    // to the model: it does not count as a perturbation.
    variants.retain(|(i, k, p, changed)| {
        *p != Perturbation::Negate || !bank.same(&chosen[*i].rationales[*k].text, &changed.rationales[*k].text)
    });
    let inputs = Inputs::Frozen { bank: &bank, max_len: loaded.config.options.max_len };
    let device = session.device.clone();
    let base = predict_all(&loaded.net, &chosen, inputs, &device)?;
    let perturbed_refs: Vec<&Example> = variants.iter().map(|v| &v.3).collect();
    let perturbed = predict_all(&loaded.net, &perturbed_refs, inputs, &device)?;

    let mut per_item: Vec<ItemSensitivity> = Vec::new();
    let mut slot: std::collections::HashMap<(usize, usize), usize> = std::collections::HashMap::new();
    for (i, e) in chosen.iter().enumerate() {
        for (k, name) in perspectives.iter().enumerate() {
            if !e.rationales[k].present {
                continue;
            }
            slot.insert((i, k), per_item.len());
            per_item.push(ItemSensitivity {
                item: e.item,
                perspective: name.clone(),
                p_fake: f64::from(base.p_fake[i]),
                gate: f64::from(base.gates[i][k]),
                dp_empty: None,
                dp_swap: None,
                dp_negate: None,
                dgate_empty: None,
                dgate_swap: None,
                dgate_negate: None,
            });
        }
    }
    for (j, (i, k, p, _)) in variants.iter().enumerate() {
        let s = &mut per_item[slot[&(*i, *k)]];
        let dp = f64::from(perturbed.p_fake[j]) - s.p_fake;
        let dg = f64::from(perturbed.gates[j][*k]) - s.gate;
        match p {
            Perturbation::Empty => (s.dp_empty, s.dgate_empty) = (Some(dp), Some(dg)),
            Perturbation::Swap => (s.dp_swap, s.dgate_swap) = (Some(dp), Some(dg)),
            Perturbation::Negate => (s.dp_negate, s.dgate_negate) = (Some(dp), Some(dg)),
        }
    }
    Ok(summarise(version, chosen.len(), options.zero_gates, &perspectives, per_item))
}

/// The report from per-item sensitivities.
fn summarise(
    version: i64,
    items: usize,
    zero_gates: bool,
    perspectives: &[String],
    per_item: Vec<ItemSensitivity>,
) -> FaithfulnessReport {
    let mut out = Vec::new();
    let (mut total, mut count) = (0.0, 0usize);
    for name in perspectives {
        let rows: Vec<&ItemSensitivity> = per_item.iter().filter(|s| &s.perspective == name).collect();
        let mean_gate = rows.iter().map(|s| s.gate).sum::<f64>() / rows.len().max(1) as f64;
        let mut perturbations = Vec::new();
        for p in Perturbation::ALL {
            let applied: Vec<(f64, f64, f64)> =
                rows.iter().filter_map(|s| Some((s.gate, s.dp(p)?.abs(), s.dgate(p).unwrap_or(0.0).abs()))).collect();
            let n = applied.len();
            let mean_abs_dp = applied.iter().map(|a| a.1).sum::<f64>() / n.max(1) as f64;
            let mean_abs_dgate = applied.iter().map(|a| a.2).sum::<f64>() / n.max(1) as f64;
            let gates: Vec<f64> = applied.iter().map(|a| a.0).collect();
            let dps: Vec<f64> = applied.iter().map(|a| a.1).collect();
            if n > 0 {
                total += mean_abs_dp;
                count += 1;
            }
            perturbations.push(PerturbationSummary {
                perturbation: p,
                items: n,
                mean_abs_dp,
                mean_abs_dgate,
                gate_sensitivity_corr: pearson(&gates, &dps),
            });
        }
        out.push(PerspectiveFaithfulness { perspective: name.clone(), items: rows.len(), mean_gate, perturbations });
    }
    FaithfulnessReport {
        version,
        items,
        zero_gates,
        perspectives: out,
        score: if count > 0 { total / count as f64 } else { 0.0 },
        per_item,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_sentence_is_negated_and_the_rest_kept() {
        let t = "The claim cites a study. Therefore the news is fake.";
        assert_eq!(negate_verdict(t).unwrap(), "The claim cites a study. Therefore the news is real.");
        // The last sentence with a verdict phrase, not the first.
        let t = "It is true that prices rose. But the post is misleading about why.";
        assert_eq!(
            negate_verdict(t).unwrap(),
            "It is true that prices rose. But the post is not misleading about why."
        );
        // Longest phrase at a position; case of the first letter kept; both directions.
        assert_eq!(negate_verdict("It is not credible.").unwrap(), "It is credible.");
        assert_eq!(negate_verdict("False.").unwrap(), "True.");
        assert_eq!(negate_verdict("This is likely real news").unwrap(), "This is unlikely real news");
        // No verdict word: the copula is negated.
        assert_eq!(
            negate_verdict("The photo is from 2012. It shows a storm.").unwrap(),
            "The photo is from 2012. It shows a storm.".replace("photo is", "photo is not")
        );
        // Whole words only, and no verdict at all gives None.
        assert_eq!(negate_verdict("Isolated, refakeable, untrueish words."), None);
        assert_eq!(negate_verdict("No verdict here."), None);
        assert_eq!(negate_verdict(""), None);
    }

    #[test]
    fn pearson_is_one_for_a_line_and_none_when_constant() {
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pearson(&[1.0, 2.0], &[1.0, 2.0]), None);
    }

    #[test]
    fn the_summary_averages_what_applied() {
        let row = |item: i64, gate: f64, dp: f64| ItemSensitivity {
            item,
            perspective: "td".into(),
            p_fake: 0.5,
            gate,
            dp_empty: Some(-dp),
            dp_swap: Some(dp),
            dp_negate: None,
            dgate_empty: Some(0.1),
            dgate_swap: Some(-0.1),
            dgate_negate: None,
        };
        let r = summarise(3, 3, false, &["td".into()], vec![row(1, 0.2, 0.1), row(2, 0.5, 0.2), row(3, 0.8, 0.3)]);
        let p = &r.perspectives[0];
        assert_eq!(p.items, 3);
        assert!((p.mean_gate - 0.5).abs() < 1e-12);
        let swap = p.summary(Perturbation::Swap).unwrap();
        assert!((swap.mean_abs_dp - 0.2).abs() < 1e-12 && (swap.mean_abs_dgate - 0.1).abs() < 1e-12);
        assert!((swap.gate_sensitivity_corr.unwrap() - 1.0).abs() < 1e-9);
        assert_eq!(p.summary(Perturbation::Negate).unwrap().items, 0);
        // The score averages the perturbations that applied (empty and swap), not the one that did not.
        assert!((r.score - 0.2).abs() < 1e-12);
    }
}
