//! The analysis of a study version per condition: for every numeric question (Likert, ease, sufficiency,
//! faithfulness, confidence, agreeing with the verdict as a share), time per item, verdict accuracy against gold
//! labels and the success rate of repairs made from the participants' written feedback: n, mean and a 95%
//! bootstrap interval. Participants who failed an attention check and item answers faster than the study's minimum
//! are flagged, counted, and left out on request.
//!
//! Intervals are percentile bootstraps over participants (a cluster bootstrap: a resample draws participants with
//! replacement and takes the mean of all their answers), since one participant's answers are not independent;
//! [`RESAMPLES`] resamples from a seeded [`SplitMix64`], so the same data give the same intervals.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::assign::SplitMix64;
use super::spec::{Design, QuestionnaireKind, StudySpec};
use super::{Result, Study, annotator_prefix};
use crate::store::Store;
use crate::store::studies::{AnnotatorRepair, ParticipantRow, StudyResponseRow};

/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 2_000;

/// What to leave out of the figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Exclusions {
    /// Leave out every answer of participants who failed any attention check.
    pub failed_attention: bool,
    /// Leave out item answers given faster than the study's `min_seconds_per_item`.
    pub too_fast: bool,
}

/// A mean with its 95% bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// Values.
    pub n: usize,
    /// Participants the values came from (the units resampled).
    pub participants: usize,
    /// The mean.
    pub mean: f64,
    /// 2.5th percentile of the resampled means.
    pub ci_low: f64,
    /// 97.5th percentile of the resampled means.
    pub ci_high: f64,
}

/// The mean of `clusters` (one list of values per participant) with a 95% percentile bootstrap interval that
/// resamples whole clusters. `None` without values.
pub fn bootstrap_mean(clusters: &[Vec<f64>], resamples: usize, seed: u64) -> Option<Estimate> {
    let clusters: Vec<(f64, usize)> =
        clusters.iter().filter(|c| !c.is_empty()).map(|c| (c.iter().sum::<f64>(), c.len())).collect();
    let n: usize = clusters.iter().map(|c| c.1).sum();
    if n == 0 {
        return None;
    }
    let mean = clusters.iter().map(|c| c.0).sum::<f64>() / n as f64;
    let mut rng = SplitMix64::new(&[seed, 0xB007]);
    let mut means: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            let (mut sum, mut count) = (0.0, 0usize);
            for _ in 0..clusters.len() {
                let (s, c) = clusters[rng.below(clusters.len())];
                sum += s;
                count += c;
            }
            sum / count as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    Some(Estimate {
        n,
        participants: clusters.len(),
        mean,
        ci_low: quantile(&means, 0.025),
        ci_high: quantile(&means, 0.975),
    })
}

/// Linear interpolation between order statistics of a sorted, non-empty slice.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let at = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

/// Repairs made from the written feedback given in one condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RepairRate {
    /// Repairs made.
    pub repairs: usize,
    /// Repairs scored against a label.
    pub scored: usize,
    /// Successful ones.
    pub successes: usize,
    /// `successes / scored`.
    pub rate: Option<f64>,
}

/// The figures of one condition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConditionAnalysis {
    /// The condition's name.
    pub condition: String,
    /// The condition's format.
    pub format: String,
    /// Item answers (steps) counted.
    pub items: usize,
    /// Participants counted.
    pub participants: usize,
    /// Items shown in another format than the condition's (a structured format without a stored rendering).
    pub shown_as_free_text: usize,
    /// Every numeric question, by key.
    pub questions: BTreeMap<String, Estimate>,
    /// Total time per item, in milliseconds.
    pub time_ms: Option<Estimate>,
    /// Share of verdicts equal to the gold label (items with one), 0 to 1.
    pub verdict_accuracy: Option<Estimate>,
    /// Repairs from this condition's written feedback; `None` when there were none.
    pub repair: Option<RepairRate>,
    /// Between-subjects only: the questionnaire's Likert items of this condition's participants.
    pub questionnaire: BTreeMap<String, Estimate>,
}

/// What was flagged about one participant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParticipantFlags {
    /// The participant's code.
    pub participant: String,
    /// Their number in the version.
    pub number: u32,
    /// Item steps answered (gold included).
    pub items: usize,
    /// Attention checks answered.
    pub attention_checks: usize,
    /// Of those, answered wrong.
    pub attention_failed: usize,
    /// Gold items answered with a wrong verdict.
    pub gold_wrong: usize,
    /// Item answers faster than the minimum.
    pub too_fast: usize,
    /// Reached the end.
    pub finished: bool,
    /// Declined consent.
    pub withdrawn: bool,
    /// Left out by the exclusions asked for.
    pub excluded: bool,
}

/// The analysis of one study version.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Analysis {
    /// The study's name.
    pub study: String,
    /// The version analysed.
    pub version: u32,
    /// Within- or between-subjects.
    pub design: String,
    /// The exclusions applied.
    pub exclusions: Exclusions,
    /// Bootstrap resamples per interval.
    pub resamples: usize,
    /// Participants who started.
    pub participants: usize,
    /// Of those, who finished.
    pub finished: usize,
    /// Participants left out (failed attention, when excluded).
    pub excluded_participants: usize,
    /// Item answers (steps) left out, by either rule.
    pub excluded_items: usize,
    /// Item answers flagged as too fast (left out or not).
    pub too_fast_items: usize,
    /// Participants who failed an attention check (left out or not).
    pub failed_attention: usize,
    /// Per participant.
    pub flags: Vec<ParticipantFlags>,
    /// Per condition, in the study file's order.
    pub conditions: Vec<ConditionAnalysis>,
    /// The questionnaire's Likert items over all participants counted.
    pub questionnaire: BTreeMap<String, Estimate>,
}

/// The text `argus study analyse` prints: the flags and exclusions, then one line per condition.
impl std::fmt::Display for Analysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |e: &Option<Estimate>, scale: f64, unit: &str| match e {
            Some(e) => format!("{:.2}{unit} [{:.2}, {:.2}]", e.mean * scale, e.ci_low * scale, e.ci_high * scale),
            None => "n/a".to_owned(),
        };
        writeln!(
            f,
            "  {} participants ({} finished); {} failed an attention check, {} item answers too fast; left out: {} \
             participants, {} item answers",
            self.participants,
            self.finished,
            self.failed_attention,
            self.too_fast_items,
            self.excluded_participants,
            self.excluded_items
        )?;
        for c in &self.conditions {
            let questions: Vec<String> =
                c.questions.iter().map(|(k, e)| format!("{k} {}", show(&Some(*e), 1.0, ""))).collect();
            writeln!(
                f,
                "  {} ({}{}): {} items from {} participants; accuracy {}; time {}; {}; repairs {}",
                c.condition,
                c.format,
                if c.shown_as_free_text > 0 {
                    format!(", {} shown as free text", c.shown_as_free_text)
                } else {
                    String::new()
                },
                c.items,
                c.participants,
                show(&c.verdict_accuracy, 1.0, ""),
                show(&c.time_ms, 0.001, " s"),
                questions.join(", "),
                c.repair.map_or("none".to_owned(), |r| format!("{}/{} succeeded", r.successes, r.scored)),
            )?;
        }
        Ok(())
    }
}

/// True for an item answer given faster than the study's minimum time per item.
pub fn is_too_fast(spec: &StudySpec, row: &StudyResponseRow) -> bool {
    matches!(row.response.kind.as_str(), "item" | "gold")
        && spec.min_seconds_per_item > 0.0
        && (row.timing.total_ms as f64) < spec.min_seconds_per_item * 1000.0
}

/// Participants (by code) who answered any attention check wrong.
pub fn failed_attention(rows: &[StudyResponseRow]) -> BTreeSet<String> {
    rows.iter()
        .filter(|r| r.response.kind == "attention" && r.response.correct == Some(false))
        .map(|r| r.participant.clone())
        .collect()
}

/// Analyses version `version` (default: the newest) of study `name`.
pub fn analyse(store: &Store, name: &str, version: Option<u32>, exclusions: Exclusions) -> Result<Analysis> {
    let study = super::load(store, name, version)?;
    let rows: Vec<StudyResponseRow> =
        store.study_responses(name)?.into_iter().filter(|r| r.study_version == study.version).collect();
    let participants: Vec<ParticipantRow> =
        store.study_participants(name)?.into_iter().filter(|p| p.study_version == study.version).collect();
    let repairs = store.repairs_by_annotator_prefix(&annotator_prefix(name))?;
    Ok(analyse_rows(&study, &participants, &rows, &repairs, exclusions))
}

fn analyse_rows(
    study: &Study,
    participants: &[ParticipantRow],
    rows: &[StudyResponseRow],
    repairs: &[AnnotatorRepair],
    exclusions: Exclusions,
) -> Analysis {
    let spec = &study.spec;
    let failed = failed_attention(rows);
    let excluded_participant = |code: &str| exclusions.failed_attention && failed.contains(code);
    // One entry per item step: (participant, step) -> too fast.
    let mut steps: BTreeMap<(&str, u32), bool> = BTreeMap::new();
    for r in rows.iter().filter(|r| matches!(r.response.kind.as_str(), "item" | "gold")) {
        steps.insert((r.participant.as_str(), r.step), is_too_fast(spec, r));
    }
    let kept =
        |r: &StudyResponseRow| !(excluded_participant(&r.participant) || (exclusions.too_fast && is_too_fast(spec, r)));
    let flags: Vec<ParticipantFlags> = participants
        .iter()
        .map(|p| {
            let own =
                |kind: &'static str| rows.iter().filter(move |r| r.participant == p.code && r.response.kind == kind);
            ParticipantFlags {
                participant: p.code.clone(),
                number: p.number,
                items: steps.keys().filter(|(c, _)| *c == p.code).count(),
                attention_checks: own("attention").count(),
                attention_failed: own("attention").filter(|r| r.response.correct == Some(false)).count(),
                gold_wrong: own("gold")
                    .filter(|r| r.response.question == "verdict" && r.response.correct == Some(false))
                    .count(),
                too_fast: steps.iter().filter(|((c, _), fast)| *c == p.code && **fast).count(),
                finished: p.finished_at.is_some() && !p.withdrawn,
                withdrawn: p.withdrawn,
                excluded: excluded_participant(&p.code),
            }
        })
        .collect();
    let excluded_items =
        steps.iter().filter(|((c, _), fast)| excluded_participant(c) || (exclusions.too_fast && **fast)).count();
    let seed = spec.seed;
    let numeric: Vec<&str> = spec.questions.iter().filter(|q| q.numeric_kind()).map(|q| q.key()).collect();
    let mut conditions = Vec::new();
    for condition in &spec.conditions {
        let here: Vec<&StudyResponseRow> = rows
            .iter()
            .filter(|r| matches!(r.response.kind.as_str(), "item" | "gold"))
            .filter(|r| r.response.condition.as_deref() == Some(condition.name.as_str()))
            .filter(|r| kept(r))
            .collect();
        let step_rows: BTreeMap<(&str, u32), &StudyResponseRow> =
            here.iter().map(|r| ((r.participant.as_str(), r.step), *r)).collect();
        let estimate = |values: &mut dyn Iterator<Item = (&str, f64)>| {
            let mut by: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
            for (who, v) in values {
                by.entry(who).or_default().push(v);
            }
            bootstrap_mean(&by.into_values().collect::<Vec<_>>(), RESAMPLES, seed)
        };
        let mut questions = BTreeMap::new();
        for key in &numeric {
            let mut values = here
                .iter()
                .filter(|r| r.response.question == *key)
                .filter_map(|r| Some((r.participant.as_str(), r.response.value_num?)));
            if let Some(e) = estimate(&mut values) {
                questions.insert((*key).to_owned(), e);
            }
        }
        let time_ms = estimate(&mut step_rows.iter().map(|((c, _), r)| (*c, r.timing.total_ms as f64)));
        let verdict_accuracy = estimate(
            &mut here
                .iter()
                .filter(|r| r.response.question == "verdict")
                .filter_map(|r| Some((r.participant.as_str(), f64::from(u8::from(r.response.correct?))))),
        );
        let prefix = annotator_prefix(&study.name);
        let seen: BTreeSet<(&str, i64)> =
            here.iter().filter_map(|r| Some((r.participant.as_str(), r.response.item_id?))).collect();
        let mine: Vec<&AnnotatorRepair> = repairs
            .iter()
            .filter(|r| r.annotator.strip_prefix(&prefix).is_some_and(|code| seen.contains(&(code, r.item_id))))
            .collect();
        let repair = (!mine.is_empty()).then(|| {
            let scored = mine.iter().filter(|r| r.success.is_some()).count();
            let successes = mine.iter().filter(|r| r.success == Some(true)).count();
            RepairRate {
                repairs: mine.len(),
                scored,
                successes,
                rate: (scored > 0).then(|| successes as f64 / scored as f64),
            }
        });
        let members: BTreeSet<&str> = step_rows.keys().map(|(c, _)| *c).collect();
        let questionnaire = if spec.design == Design::Between {
            questionnaire_estimates(spec, rows, &|r| members.contains(r.participant.as_str()) && kept(r))
        } else {
            BTreeMap::new()
        };
        conditions.push(ConditionAnalysis {
            condition: condition.name.clone(),
            format: condition.format.as_str().to_owned(),
            items: step_rows.len(),
            participants: members.len(),
            shown_as_free_text: step_rows
                .values()
                .filter(|r| r.response.format.as_deref() != Some(condition.format.as_str()))
                .count(),
            questions,
            time_ms,
            verdict_accuracy,
            repair,
            questionnaire,
        });
    }
    Analysis {
        study: study.name.clone(),
        version: study.version,
        design: spec.design.as_str().to_owned(),
        exclusions,
        resamples: RESAMPLES,
        participants: participants.len(),
        finished: flags.iter().filter(|f| f.finished).count(),
        excluded_participants: flags.iter().filter(|f| f.excluded).count(),
        excluded_items,
        too_fast_items: steps.values().filter(|fast| **fast).count(),
        failed_attention: failed.len(),
        questionnaire: questionnaire_estimates(spec, rows, &|r| !excluded_participant(&r.participant)),
        flags,
        conditions,
    }
}

fn questionnaire_estimates(
    spec: &StudySpec,
    rows: &[StudyResponseRow],
    keep: &dyn Fn(&StudyResponseRow) -> bool,
) -> BTreeMap<String, Estimate> {
    let mut out = BTreeMap::new();
    for q in spec.questionnaire.iter().filter(|q| q.kind == QuestionnaireKind::Likert) {
        let values: Vec<Vec<f64>> = rows
            .iter()
            .filter(|r| r.response.kind == "questionnaire" && r.response.question == q.key && keep(r))
            .filter_map(|r| r.response.value_num)
            .map(|v| vec![v])
            .collect();
        if let Some(e) = bootstrap_mean(&values, RESAMPLES, spec.seed) {
            out.insert(q.key.clone(), e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_sample_has_a_zero_width_interval() {
        let e = bootstrap_mean(&[vec![4.0, 4.0], vec![4.0], vec![4.0; 5]], RESAMPLES, 1).unwrap();
        assert_eq!((e.n, e.participants, e.mean, e.ci_low, e.ci_high), (8, 3, 4.0, 4.0, 4.0));
        assert!(bootstrap_mean(&[], RESAMPLES, 1).is_none());
        assert!(bootstrap_mean(&[vec![]], RESAMPLES, 1).is_none());
    }

    #[test]
    fn a_large_normal_sample_gets_the_textbook_interval() {
        // 2,000 draws of N(10, 2²): the 95% interval of the mean is about mean ± 1.96 · 2 / √2000 = ± 0.0877.
        let mut rng = SplitMix64::new(&[42]);
        let values: Vec<Vec<f64>> = (0..2_000)
            .map(|_| {
                let (u, v) = (rng.unit().max(1e-12), rng.unit());
                vec![10.0 + 2.0 * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()]
            })
            .collect();
        let e = bootstrap_mean(&values, RESAMPLES, 7).unwrap();
        assert!(e.ci_low < e.mean && e.mean < e.ci_high);
        assert!((e.mean - 10.0).abs() < 0.15, "{e:?}");
        let half = (e.ci_high - e.ci_low) / 2.0;
        assert!((half - 0.0877).abs() < 0.012, "half-width {half}");
        assert_eq!(e, bootstrap_mean(&values, RESAMPLES, 7).unwrap(), "seeded");
    }

    #[test]
    fn quantiles_interpolate() {
        let s = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&s, 0.5), 2.0);
        assert_eq!(quantile(&s, 0.125), 0.5);
        assert_eq!(quantile(&s, 1.0), 4.0);
    }
}
