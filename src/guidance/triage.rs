//! Triage and active learning: orders items by what the guidance models predict, and routes the costly work.
//!
//! - **risk**: P(fake) first (ARG's, else ARG-D's, else BERT's), the fact-checker's queue;
//! - **uncertainty**: closest to 0.5 first (highest binary entropy), for labelling what the model knows least;
//! - **disagreement**: where ARG, ARG-D, the LLM rationales' verdicts and people disagree most;
//! - **random**: a seeded shuffle, for a cold start with no model yet.
//!
//! Cost-aware routing (as in the paper): ARG-D scores everything without rationales; only the share of items it
//! is least sure about get rationales written and go through ARG.

use std::collections::HashMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::domain::{ItemId, ModelKind, Verdict};
use crate::store::{Result, Store};

/// How to order items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// As imported.
    #[default]
    Natural,
    Risk,
    Uncertainty,
    Disagreement,
    Random,
}

impl Order {
    pub const ALL: [Order; 5] = [Order::Natural, Order::Risk, Order::Uncertainty, Order::Disagreement, Order::Random];

    pub fn label(self) -> &'static str {
        match self {
            Self::Natural => "as imported",
            Self::Risk => "risk (P(fake))",
            Self::Uncertainty => "uncertainty",
            Self::Disagreement => "disagreement",
            Self::Random => "random",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "natural" | "none" | "imported" => Some(Self::Natural),
            "risk" => Some(Self::Risk),
            "uncertainty" | "uncertain" => Some(Self::Uncertainty),
            "disagreement" | "disagree" => Some(Self::Disagreement),
            "random" => Some(Self::Random),
            _ => None,
        }
    }
}

/// What is known about one item.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals {
    /// P(fake) of the ARG, ARG-D and BERT versions in use.
    pub arg: Option<f64>,
    pub argd: Option<f64>,
    pub bert: Option<f64>,
    /// Verdicts the item's rationales imply.
    pub llm: Vec<Verdict>,
    /// People's standing verdicts.
    pub human: Vec<Verdict>,
}

impl Signals {
    /// The best available P(fake): ARG, else ARG-D, else BERT.
    pub fn p_fake(&self) -> Option<f64> {
        self.arg.or(self.argd).or(self.bert)
    }

    /// 1 - |2p - 1|: 1 at 0.5, 0 at certainty.
    pub fn uncertainty(&self) -> Option<f64> {
        self.p_fake().map(|p| 1.0 - (2.0 * p - 1.0).abs())
    }

    /// Spread of the opinions on "fake": the standard deviation of the models' P(fake) and of each LLM and human
    /// real/fake verdict as 0 or 1 (0 = all agree; 0.5 = split evenly).
    pub fn disagreement(&self) -> f64 {
        let mut votes: Vec<f64> = [self.arg, self.argd, self.bert].into_iter().flatten().collect();
        for v in self.llm.iter().chain(&self.human) {
            match v {
                Verdict::Fake => votes.push(1.0),
                Verdict::Real => votes.push(0.0),
                Verdict::Other => {}
            }
        }
        if votes.len() < 2 {
            return 0.0;
        }
        let mean = votes.iter().sum::<f64>() / votes.len() as f64;
        (votes.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / votes.len() as f64).sqrt()
    }
}

/// The models' P(fake) of every item, from the predictions of these ARG, ARG-D and BERT versions.
pub fn model_signals(
    store: &Store,
    arg: Option<i64>,
    argd: Option<i64>,
    bert: Option<i64>,
) -> Result<HashMap<ItemId, Signals>> {
    let mut out: HashMap<ItemId, Signals> = HashMap::new();
    for (kind, version) in [("arg", arg), ("argd", argd), ("bert", bert)] {
        let Some(version) = version else { continue };
        for (item, p) in store.predictions(version)? {
            let s = out.entry(item).or_default();
            match kind {
                "arg" => s.arg = Some(p.p_fake),
                "argd" => s.argd = Some(p.p_fake),
                _ => s.bert = Some(p.p_fake),
            }
        }
    }
    Ok(out)
}

/// The signals of every item: predictions of the versions in use, rationale verdicts, people's verdicts.
pub fn load_signals(store: &Store) -> Result<HashMap<ItemId, Signals>> {
    let mut out = model_signals(
        store,
        store.active_version(ModelKind::Arg)?,
        store.active_version(ModelKind::Argd)?,
        store.active_version(ModelKind::Bert)?,
    )?;
    for item in store.training_items()? {
        let s = out.entry(item.id).or_default();
        s.llm = item.rationales.iter().filter_map(|r| r.verdict).collect();
        if let Some(h) = item.human {
            s.human.push(h);
        }
    }
    Ok(out)
}

/// `ids` in `order`; items without the needed signal go last, in their original order. `seed` drives Random.
pub fn order_ids(ids: &[ItemId], signals: &HashMap<ItemId, Signals>, order: Order, seed: u64) -> Vec<ItemId> {
    let key = |id: &ItemId| -> Option<f64> {
        let s = signals.get(id)?;
        match order {
            Order::Natural | Order::Random => None,
            Order::Risk => s.p_fake(),
            Order::Uncertainty => s.uncertainty(),
            Order::Disagreement => Some(s.disagreement()),
        }
    };
    match order {
        Order::Natural => ids.to_vec(),
        Order::Random => {
            let mut out = ids.to_vec();
            out.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
            out
        }
        _ => {
            let mut keyed: Vec<(usize, ItemId, Option<f64>)> =
                ids.iter().enumerate().map(|(i, id)| (i, *id, key(id))).collect();
            // Highest first; missing last; ties keep their order.
            keyed.sort_by(|a, b| match (a.2, b.2) {
                (Some(x), Some(y)) => y.total_cmp(&x).then(a.0.cmp(&b.0)),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => a.0.cmp(&b.0),
            });
            keyed.into_iter().map(|(_, id, _)| id).collect()
        }
    }
}

/// Cost-aware routing: of the items ARG-D scored, the `share` (0..1) it is least sure about (closest to 0.5), the
/// ones worth rationales and ARG. Returns them most uncertain first.
pub fn route(argd: &HashMap<ItemId, f64>, share: f64) -> Vec<ItemId> {
    let mut items: Vec<(ItemId, f64)> = argd.iter().map(|(&id, &p)| (id, (p - 0.5).abs())).collect();
    items.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let n = ((items.len() as f64) * share.clamp(0.0, 1.0)).round() as usize;
    items.into_iter().take(n).map(|(id, _)| id).collect()
}

/// Cost-aware predictions: ARG's P(fake) for the routed share (ARG-D least sure), ARG-D's for the rest.
pub fn routed(argd: &HashMap<ItemId, f64>, arg: &HashMap<ItemId, f64>, share: f64) -> HashMap<ItemId, f64> {
    let mut out = argd.clone();
    for id in route(argd, share) {
        if let Some(&p) = arg.get(&id) {
            out.insert(id, p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(arg: Option<f64>) -> Signals {
        Signals { arg, ..Default::default() }
    }

    #[test]
    fn risk_and_uncertainty_orders() {
        let signals: HashMap<ItemId, Signals> =
            [(1, sig(Some(0.1))), (2, sig(Some(0.9))), (3, sig(Some(0.55))), (4, sig(None))].into_iter().collect();
        let ids = [1, 2, 3, 4, 5];
        assert_eq!(order_ids(&ids, &signals, Order::Risk, 0), [2, 3, 1, 4, 5]);
        assert_eq!(order_ids(&ids, &signals, Order::Uncertainty, 0), [3, 1, 2, 4, 5]);
        assert_eq!(order_ids(&ids, &signals, Order::Natural, 0), ids);
        let r = order_ids(&ids, &signals, Order::Random, 7);
        assert_eq!(r, order_ids(&ids, &signals, Order::Random, 7));
        let mut sorted = r.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
    }

    #[test]
    fn disagreement_counts_models_llm_and_people() {
        let agree = Signals {
            arg: Some(0.9),
            argd: Some(0.95),
            llm: vec![Verdict::Fake],
            human: vec![Verdict::Fake],
            ..Default::default()
        };
        let split = Signals {
            arg: Some(0.9),
            argd: Some(0.2),
            llm: vec![Verdict::Real],
            human: vec![Verdict::Fake],
            ..Default::default()
        };
        assert!(split.disagreement() > agree.disagreement() + 0.2);
        let signals: HashMap<ItemId, Signals> = [(1, agree), (2, split)].into_iter().collect();
        assert_eq!(order_ids(&[1, 2], &signals, Order::Disagreement, 0), [2, 1]);
    }

    #[test]
    fn routing_takes_the_least_confident_share() {
        let argd: HashMap<ItemId, f64> = [(1, 0.02), (2, 0.48), (3, 0.7), (4, 0.99), (5, 0.4)].into_iter().collect();
        assert_eq!(route(&argd, 0.4), [2, 5]);
        assert_eq!(route(&argd, 0.0), Vec::<ItemId>::new());
        assert_eq!(route(&argd, 1.0).len(), 5);
        let arg: HashMap<ItemId, f64> = [(2, 0.9), (5, 0.1), (1, 0.9)].into_iter().collect();
        let r = routed(&argd, &arg, 0.4);
        assert_eq!((r[&2], r[&5], r[&1], r[&3]), (0.9, 0.1, 0.02, 0.7));
    }
}
