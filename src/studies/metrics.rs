//! Per-annotator metrics from standing judgements: items judged, items per active hour, median time per item,
//! agreement with the majority of the other annotators and with gold labels; and the agreement summary of a
//! database (the [`agreement`](super::agreement) report on item × annotator × verdict, adjudicated verdicts left out,
//! plus these metrics and the open disagreements).
//!
//! Active time: the gaps between an annotator's consecutive judgements, leaving out gaps over [`ACTIVE_GAP_MS`]
//! (a break), plus the time spent on the first item after each break (as the studio measured it).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Result;
use super::agreement::{AgreementReport, Ratings, agreement_report, annotator_agreement};
use crate::store::Store;
use crate::store::studies::JudgementRecord;

/// A gap between two judgements longer than this is a break, not work.
pub const ACTIVE_GAP_MS: i64 = 10 * 60 * 1000;

/// One annotator's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnnotatorMetrics {
    /// The annotator.
    pub annotator: String,
    /// Items with a standing (non-adjudicating) judgement by them.
    pub items_judged: usize,
    /// Active hours (see the module documentation).
    pub active_hours: f64,
    /// Judgements per active hour; `None` without active time.
    pub items_per_hour: Option<f64>,
    /// Median time spent per item, in milliseconds (judgements that recorded one).
    pub median_time_ms: Option<f64>,
    /// Share of their items where their verdict is the other annotators' unique majority verdict.
    pub majority_agreement: Option<f64>,
    /// Their judged items that have a gold label.
    pub gold_items: usize,
    /// Share of those where their verdict equals the gold label.
    pub gold_agreement: Option<f64>,
}

/// The ratings table of standing, non-adjudicated judgements: item × annotator × verdict.
pub fn ratings(records: &[JudgementRecord]) -> Ratings {
    Ratings::from_triples(
        records.iter().filter(|r| !r.adjudicated).map(|r| (r.item_id, r.annotator.clone(), r.verdict.as_str())),
    )
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let m = values.len() / 2;
    Some(if values.len() % 2 == 1 { values[m] } else { (values[m - 1] + values[m]) / 2.0 })
}

/// The metrics of every annotator with a standing judgement (adjudicated verdicts left out), by name.
pub fn annotator_metrics(records: &[JudgementRecord]) -> Vec<AnnotatorMetrics> {
    let ratings = ratings(records);
    let majority: BTreeMap<String, Option<f64>> =
        annotator_agreement(&ratings).into_iter().map(|a| (a.annotator, a.majority_agreement)).collect();
    let mut by: BTreeMap<&str, Vec<&JudgementRecord>> = BTreeMap::new();
    for r in records.iter().filter(|r| !r.adjudicated) {
        by.entry(r.annotator.as_str()).or_default().push(r);
    }
    by.into_iter()
        .map(|(annotator, mut own)| {
            own.sort_by_key(|r| r.created_ms);
            let mut active_ms = own.first().map_or(0, |r| r.time_spent_ms.max(0));
            for w in own.windows(2) {
                let gap = w[1].created_ms - w[0].created_ms;
                active_ms += if (0..=ACTIVE_GAP_MS).contains(&gap) { gap } else { w[1].time_spent_ms.max(0) };
            }
            let active_hours = active_ms as f64 / 3_600_000.0;
            let mut times: Vec<f64> =
                own.iter().filter(|r| r.time_spent_ms > 0).map(|r| r.time_spent_ms as f64).collect();
            let gold: Vec<bool> = own.iter().filter_map(|r| Some(r.verdict == r.gold_label?)).collect();
            AnnotatorMetrics {
                annotator: annotator.to_owned(),
                items_judged: own.len(),
                active_hours,
                items_per_hour: (active_ms > 0).then(|| own.len() as f64 / active_hours),
                median_time_ms: median(&mut times),
                majority_agreement: majority.get(annotator).copied().flatten(),
                gold_items: gold.len(),
                gold_agreement: (!gold.is_empty())
                    .then(|| gold.iter().filter(|&&g| g).count() as f64 / gold.len() as f64),
            }
        })
        .collect()
}

/// Agreement and annotator metrics of a database.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgreementSummary {
    /// Cohen (pairs), Fleiss, Krippendorff (per label and overall), percent agreement, diagnostics.
    pub agreement: AgreementReport,
    /// Per annotator.
    pub annotators: Vec<AnnotatorMetrics>,
    /// Items with an adjudicated verdict.
    pub adjudicated_items: usize,
    /// Items whose annotators disagree and that no one has adjudicated yet.
    pub open_disagreements: usize,
}

/// The text `argus agreement` prints: the agreement coefficients, Cohen's kappa per pair, each annotator's
/// metrics, adjudication, and the diagnostics as notes.
impl std::fmt::Display for AgreementSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.3}"));
        let r = &self.agreement;
        writeln!(
            f,
            "{} items, {} annotators, {} ratings; labels: {}",
            r.n_items,
            r.n_annotators,
            r.n_ratings,
            r.labels.join(", ")
        )?;
        writeln!(
            f,
            "percent agreement {}; Fleiss' kappa {} ({} units with {} raters); Krippendorff's alpha {} ({} pairable \
             units)",
            show(r.percent_agreement),
            show(r.fleiss.kappa),
            r.fleiss.units_used,
            r.fleiss.raters_per_unit,
            show(r.alpha.alpha),
            r.alpha.pairable_units
        )?;
        for l in &r.alpha.labels {
            let fleiss = r.fleiss.categories.iter().find(|c| c.label == l.label).and_then(|c| c.kappa);
            writeln!(f, "  {}: alpha {}, Fleiss' kappa {}", l.label, show(l.alpha), show(fleiss))?;
        }
        let p = &r.pairwise;
        for i in 0..p.annotators.len() {
            for j in i + 1..p.annotators.len() {
                if p.n[i][j] > 0 {
                    writeln!(
                        f,
                        "  Cohen's kappa {} / {}: {} on {} items",
                        p.annotators[i],
                        p.annotators[j],
                        show(p.kappa[i][j]),
                        p.n[i][j]
                    )?;
                }
            }
        }
        for m in &self.annotators {
            writeln!(
                f,
                "  {}: {} items, {} per active hour, median {} s per item, majority agreement {}, gold agreement {} \
                 ({} items)",
                m.annotator,
                m.items_judged,
                m.items_per_hour.map_or("n/a".to_owned(), |v| format!("{v:.1}")),
                m.median_time_ms.map_or("n/a".to_owned(), |v| format!("{:.1}", v / 1000.0)),
                show(m.majority_agreement),
                show(m.gold_agreement),
                m.gold_items
            )?;
        }
        writeln!(f, "{} items adjudicated, {} disagreements open", self.adjudicated_items, self.open_disagreements)?;
        for m in &r.diagnostics.messages {
            writeln!(f, "note: {m}")?;
        }
        Ok(())
    }
}

/// The agreement summary of the standing judgements in `store`.
pub fn agreement_summary(store: &Store) -> Result<AgreementSummary> {
    let records = store.judgement_records()?;
    let adjudicated: std::collections::BTreeSet<i64> =
        records.iter().filter(|r| r.adjudicated).map(|r| r.item_id).collect();
    Ok(AgreementSummary {
        agreement: agreement_report(&ratings(&records)),
        annotators: annotator_metrics(&records),
        adjudicated_items: adjudicated.len(),
        open_disagreements: store.disagreements()?.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Verdict::{self, Fake, Real};

    fn rec(
        item: i64,
        who: &str,
        verdict: Verdict,
        at_min: i64,
        spent_ms: i64,
        gold: Option<Verdict>,
    ) -> JudgementRecord {
        JudgementRecord {
            item_id: item,
            annotator: who.into(),
            verdict,
            time_spent_ms: spent_ms,
            created_ms: at_min * 60_000,
            adjudicated: false,
            gold_label: gold,
        }
    }

    #[test]
    fn breaks_do_not_count_as_active_time() {
        // a: judgements at minutes 0, 2, 4, then after a 60-minute break at 64 and 65; 30 s on each.
        let records: Vec<JudgementRecord> = [0, 2, 4, 64, 65]
            .iter()
            .enumerate()
            .map(|(i, &m)| rec(i as i64 + 1, "a", Real, m, 30_000, Some(if i < 3 { Real } else { Fake })))
            .collect();
        let m = &annotator_metrics(&records)[0];
        // Active: 30 s (first) + 2 + 2 min + 30 s (first after the break) + 1 min = 6 min.
        assert!((m.active_hours - 0.1).abs() < 1e-9, "{m:?}");
        assert!((m.items_per_hour.unwrap() - 50.0).abs() < 1e-9);
        assert_eq!(m.median_time_ms, Some(30_000.0));
        assert_eq!((m.gold_items, m.gold_agreement), (5, Some(0.6)));
    }

    #[test]
    fn majority_agreement_comes_from_the_others_and_adjudications_are_left_out() {
        let mut records = vec![
            rec(1, "a", Real, 0, 0, None),
            rec(1, "b", Real, 0, 0, None),
            rec(1, "c", Fake, 0, 0, None),
            rec(2, "a", Fake, 1, 0, None),
            rec(2, "b", Fake, 1, 0, None),
            rec(2, "c", Fake, 1, 0, None),
        ];
        let mut adjudication = rec(1, "boss", Fake, 5, 0, None);
        adjudication.adjudicated = true;
        records.push(adjudication);
        let m = annotator_metrics(&records);
        assert_eq!(m.iter().map(|m| m.annotator.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(m[0].majority_agreement, Some(1.0));
        assert_eq!(m[2].majority_agreement, Some(0.5));
        assert_eq!(m[0].items_per_hour, Some(120.0), "2 judgements in one active minute");
        let lone = annotator_metrics(&[rec(1, "d", Real, 0, 0, None)]);
        assert_eq!(lone[0].items_per_hour, None, "no time between judgements and none recorded");
        assert_eq!(ratings(&records).annotators, ["a", "b", "c"]);
    }
}
