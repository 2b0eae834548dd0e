//! Binary classification metrics as the ARG paper reports them (threshold 0.5): macro-F1 (the headline), accuracy,
//! F1 of each class, ROC AUC; plus the confusion matrix and a reliability (calibration) table for the studio.

use serde::{Deserialize, Serialize};

/// Metrics of P(fake) against labels (true = fake).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: usize,
    pub macro_f1: f64,
    pub accuracy: f64,
    pub f1_real: f64,
    pub f1_fake: f64,
    /// ROC AUC; NaN-free: 0.5 when only one class is present.
    pub auc: f64,
    /// [[real predicted real, real predicted fake], [fake predicted real, fake predicted fake]].
    pub confusion: [[usize; 2]; 2],
    /// Ten equal-width bins of P(fake): (mean predicted, share actually fake, count).
    pub calibration: Vec<(f64, f64, usize)>,
    /// Expected calibration error over those bins.
    pub ece: f64,
    /// P(fake) at or above which an item counts as predicted fake (the paper's 0.5 unless a version chose its own
    /// on the validation split).
    #[serde(default = "half")]
    pub threshold: f64,
}

fn half() -> f64 {
    0.5
}

/// Computes every metric; `p` and `fake` have the same length.
pub fn evaluate(p: &[f64], fake: &[bool]) -> Metrics {
    evaluate_at(p, fake, 0.5)
}

/// [`evaluate`] with items at or above `threshold` counted as predicted fake (AUC and calibration do not depend on
/// it).
pub fn evaluate_at(p: &[f64], fake: &[bool], threshold: f64) -> Metrics {
    assert_eq!(p.len(), fake.len(), "one label per prediction");
    let mut confusion = [[0usize; 2]; 2];
    for (&p, &y) in p.iter().zip(fake) {
        confusion[y as usize][(p >= threshold) as usize] += 1;
    }
    let f1 = |tp: usize, fp: usize, fn_: usize| {
        if tp == 0 { 0.0 } else { 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64 }
    };
    let f1_fake = f1(confusion[1][1], confusion[0][1], confusion[1][0]);
    let f1_real = f1(confusion[0][0], confusion[1][0], confusion[0][1]);
    let n = p.len();
    let accuracy = if n == 0 { 0.0 } else { (confusion[0][0] + confusion[1][1]) as f64 / n as f64 };
    let mut bins = vec![(0.0, 0.0, 0usize); 10];
    for (&p, &y) in p.iter().zip(fake) {
        let b = ((p * 10.0) as usize).min(9);
        bins[b].0 += p;
        bins[b].1 += y as u8 as f64;
        bins[b].2 += 1;
    }
    let mut ece = 0.0;
    let calibration: Vec<_> = bins
        .into_iter()
        .map(|(sp, sy, c)| {
            if c == 0 {
                return (0.0, 0.0, 0);
            }
            let (mp, my) = (sp / c as f64, sy / c as f64);
            ece += (mp - my).abs() * c as f64 / n as f64;
            (mp, my, c)
        })
        .collect();
    Metrics {
        n,
        macro_f1: (f1_real + f1_fake) / 2.0,
        accuracy,
        f1_real,
        f1_fake,
        auc: auc(p, fake),
        confusion,
        calibration,
        ece,
        threshold,
    }
}

/// The threshold that maximises macro-F1 on (`p`, `fake`) (a validation split): every midpoint between two distinct
/// scores is tried, and of equal ones the closest to 0.5 wins. 0.5 when there is nothing to choose from.
pub fn best_threshold(p: &[f64], fake: &[bool]) -> f64 {
    let mut scores: Vec<f64> = p.to_vec();
    scores.sort_by(f64::total_cmp);
    scores.dedup();
    let mut best: (f64, f64) = (evaluate_at(p, fake, 0.5).macro_f1, 0.5);
    for w in scores.windows(2) {
        let t = (w[0] + w[1]) / 2.0;
        let f1 = evaluate_at(p, fake, t).macro_f1;
        if f1 > best.0 + 1e-12 || ((f1 - best.0).abs() <= 1e-12 && (t - 0.5).abs() < (best.1 - 0.5).abs()) {
            best = (f1, t);
        }
    }
    best.1
}

/// Share of the predictions at or above 0.5 (predicted fake) at which a version counts as predicting one class.
pub const ONE_CLASS_SHARE: f64 = 0.95;

/// What a version's figures warn of: the one-class warning of its test split, else of its validation split.
pub fn version_warnings(test: &Metrics, val: &Metrics) -> Vec<String> {
    [(test, "test"), (val, "validation")]
        .into_iter()
        .find_map(|(m, split)| one_class_warning(m, split))
        .into_iter()
        .collect()
}

/// A warning when `m` (of split `split`) shows a model that predicts one class for (nearly) every item: on small,
/// imbalanced data a run can learn "always real" and still rank items well (its AUC says so) while the 0.5
/// threshold throws the ranking away. `None` for a model that predicts both classes, or too few items to tell.
pub fn one_class_warning(m: &Metrics, split: &str) -> Option<String> {
    if m.n < 10 {
        return None;
    }
    let fake = m.confusion[0][1] + m.confusion[1][1];
    let (class, count) = if fake * 2 >= m.n { ("fake", fake) } else { ("real", m.n - fake) };
    let share = count as f64 / m.n as f64;
    (share >= ONE_CLASS_SHARE).then(|| {
        format!(
            "it predicts {class} for {:.0}% of the {} {split} items (F1 real {:.2}, F1 fake {:.2}, AUC {:.2}): \
             it has collapsed onto one class",
            share * 100.0,
            m.n,
            m.f1_real,
            m.f1_fake,
            m.auc
        )
    })
}

/// ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half.
pub fn auc(p: &[f64], fake: &[bool]) -> f64 {
    let positives = fake.iter().filter(|&&y| y).count();
    let negatives = fake.len() - positives;
    if positives == 0 || negatives == 0 {
        return 0.5;
    }
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && p[order[j + 1]] == p[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if fake[k] {
                rank_sum += rank;
            }
        }
        i = j + 1;
    }
    (rank_sum - (positives * (positives + 1)) as f64 / 2.0) / (positives * negatives) as f64
}

/// Macro-F1 of hard verdicts against labels (for the LLM-verdicts-alone baseline).
pub fn macro_f1_of_verdicts(predicted_fake: &[bool], fake: &[bool]) -> f64 {
    let p: Vec<f64> = predicted_fake.iter().map(|&f| if f { 1.0 } else { 0.0 }).collect();
    evaluate(&p, fake).macro_f1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_inverted_predictions() {
        let y = [true, false, true, false];
        let m = evaluate(&[0.9, 0.1, 0.8, 0.3], &y);
        assert_eq!((m.macro_f1, m.accuracy, m.auc), (1.0, 1.0, 1.0));
        let m = evaluate(&[0.1, 0.9, 0.2, 0.7], &y);
        assert_eq!((m.macro_f1, m.accuracy, m.auc), (0.0, 0.0, 0.0));
    }

    #[test]
    fn matches_hand_computed_values() {
        // tp 2, fn 1, fp 1, tn 2: F1 fake = 4/6, F1 real = 4/6.
        let y = [true, true, true, false, false, false];
        let p = [0.9, 0.6, 0.4, 0.7, 0.2, 0.1];
        let m = evaluate(&p, &y);
        assert!((m.f1_fake - 2.0 / 3.0).abs() < 1e-12 && (m.f1_real - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.confusion, [[2, 1], [1, 2]]);
        // Pairs (fake, real) ranked correctly: 0.9 beats all 3, 0.6 beats 2, 0.4 beats 2 -> 7/9.
        assert!((m.auc - 7.0 / 9.0).abs() < 1e-12);
        assert_eq!(m.calibration.iter().map(|b| b.2).sum::<usize>(), 6);
    }

    #[test]
    fn ties_count_half() {
        assert!((auc(&[0.5, 0.5], &[true, false]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn a_model_that_predicts_one_class_is_warned_of() {
        // 30% fake, all predicted real, the ranking right: AUC 1.0, F1 fake 0.
        let fake: Vec<bool> = (0..100).map(|i| i < 30).collect();
        let p: Vec<f64> = (0..100).map(|i| if i < 30 { 0.45 } else { 0.2 }).collect();
        let m = evaluate(&p, &fake);
        let w = one_class_warning(&m, "test").expect("collapsed");
        assert!(w.starts_with("it predicts real for 100% of the 100 test items"), "{w}");
        assert!(w.contains("F1 fake 0.00") && w.contains("AUC 1.00"), "{w}");
        // Both classes predicted: no warning; too few items to tell: none either.
        let p: Vec<f64> = (0..100).map(|i| if i < 30 { 0.7 } else { 0.2 }).collect();
        assert_eq!(one_class_warning(&evaluate(&p, &fake), "test"), None);
        assert_eq!(one_class_warning(&evaluate(&[0.1; 5], &[false, true, false, false, true]), "test"), None);
        // "Always fake" is a collapse too.
        let w = one_class_warning(&evaluate(&[0.9; 40], &fake[..40]), "validation").unwrap();
        assert!(w.starts_with("it predicts fake for 100% of the 40 validation items"), "{w}");
    }

    #[test]
    fn the_best_threshold_is_found_on_the_split_it_is_chosen_on() {
        // A ranking that is right but low: every item below 0.5, fakes above reals.
        let fake = [false, false, false, true, true];
        let p = [0.1, 0.2, 0.25, 0.35, 0.4];
        assert!(evaluate(&p, &fake).f1_fake == 0.0);
        let t = best_threshold(&p, &fake);
        assert!((t - 0.3).abs() < 1e-12, "{t}");
        let m = evaluate_at(&p, &fake, t);
        assert_eq!((m.macro_f1, m.threshold, m.auc), (1.0, t, evaluate(&p, &fake).auc));
        // Nothing better than 0.5 to choose: 0.5 stays.
        assert_eq!(best_threshold(&[0.2, 0.8], &[false, true]), 0.5);
        assert_eq!(best_threshold(&[], &[]), 0.5);
    }
}
