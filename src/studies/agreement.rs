//! Inter-annotator agreement on nominal labels: Cohen's kappa for a pair of annotators (and for every pair),
//! Fleiss' kappa, Krippendorff's alpha, percent agreement, and diagnostics that say when those figures mislead.
//!
//! Input is a [`Ratings`] table, one row per item (unit) and one slot per annotator (coder), `None` where that
//! annotator did not rate the item; build it from `(item, annotator, label)` triples with [`Ratings::from_triples`].
//! [`agreement_report`] gives everything at once. No function here panics or returns NaN: a figure that is
//! undefined (one label only, too few items) is `None`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// Fewer units rated by two or more annotators than this gives a diagnostic.
pub const MIN_PAIRABLE_UNITS: usize = 10;
/// A label with more than this share of all ratings gives a diagnostic (the kappa paradox).
pub const SKEW_SHARE: f64 = 0.9;
/// An annotator whose mean Cohen's kappa with the others is more than this below the mean kappa among the others
/// is flagged as diverging.
pub const DIVERGENCE_GAP: f64 = 0.2;

/// Chance agreement this close to 1 makes kappa undefined.
const EPS: f64 = 1e-12;

/// A ratings table: one row per item, one slot per annotator, nominal labels, `None` for a missing rating.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Ratings {
    /// Item keys, one per row of `units`.
    pub items: Vec<String>,
    /// Annotator keys, one per slot of each row.
    pub annotators: Vec<String>,
    /// `units[item][annotator]`: the label given, if any. Each row has one slot per annotator.
    pub units: Vec<Vec<Option<String>>>,
}

impl Ratings {
    /// Builds the table from `(item, annotator, label)` triples. Items and annotators are sorted by their keys'
    /// own order (numeric ids sort as numbers), then stored as strings; a later triple for the same item and
    /// annotator replaces an earlier one. Items and annotators appear only if some triple names them.
    pub fn from_triples<K, A, V>(triples: impl IntoIterator<Item = (K, A, V)>) -> Self
    where
        K: Ord + ToString,
        A: Ord + ToString,
        V: Into<String>,
    {
        let mut cells: BTreeMap<K, BTreeMap<A, String>> = BTreeMap::new();
        for (item, annotator, label) in triples {
            cells.entry(item).or_default().insert(annotator, label.into());
        }
        let annotators: BTreeSet<&A> = cells.values().flat_map(BTreeMap::keys).collect();
        let slot: BTreeMap<&A, usize> = annotators.iter().enumerate().map(|(i, a)| (*a, i)).collect();
        let units = cells
            .values()
            .map(|row| {
                let mut slots = vec![None; slot.len()];
                for (annotator, label) in row {
                    slots[slot[annotator]] = Some(label.clone());
                }
                slots
            })
            .collect();
        Self {
            items: cells.keys().map(ToString::to_string).collect(),
            annotators: annotators.iter().map(|a| a.to_string()).collect(),
            units,
        }
    }

    /// The distinct labels used anywhere in the table, sorted.
    pub fn labels(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.units.iter().flatten().flatten().collect();
        set.into_iter().cloned().collect()
    }

    /// One annotator's labels, item by item (`None` where missing or past the end of a short row).
    pub fn column(&self, annotator: usize) -> Vec<Option<&str>> {
        self.units.iter().map(|row| row.get(annotator).and_then(|l| l.as_deref())).collect()
    }

    /// How many ratings (non-missing slots) the table holds.
    pub fn n_ratings(&self) -> usize {
        self.units.iter().flatten().flatten().count()
    }

    /// The sorted labels and, per unit, how many ratings each label got.
    fn label_counts(&self) -> (Vec<String>, Vec<Vec<usize>>) {
        let labels = self.labels();
        let counts = self
            .units
            .iter()
            .map(|row| {
                let mut c = vec![0; labels.len()];
                for j in row.iter().flatten().filter_map(|label| labels.binary_search(label).ok()) {
                    c[j] += 1;
                }
                c
            })
            .collect();
        (labels, counts)
    }
}

/// Cohen's kappa for two annotators over the items both rated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CohenKappa {
    /// (p_o − p_e) / (1 − p_e).
    pub kappa: f64,
    /// Observed agreement p_o: the share of items both labelled the same.
    pub observed: f64,
    /// Chance agreement p_e from each annotator's own label frequencies.
    pub expected: f64,
    /// Items both annotators rated.
    pub n: usize,
}

/// Cohen's kappa between two annotators' labels, slot by slot (items where either is `None` are left out).
/// `None` when fewer than 2 items were rated by both, or when chance agreement is 1 (both used one same label).
pub fn cohen_kappa<L: Ord>(a: &[Option<L>], b: &[Option<L>]) -> Option<CohenKappa> {
    let pairs: Vec<(&L, &L)> = a.iter().zip(b).filter_map(|(x, y)| Some((x.as_ref()?, y.as_ref()?))).collect();
    let n = pairs.len();
    if n < 2 {
        return None;
    }
    let (mut left, mut right) = (BTreeMap::<&L, usize>::new(), BTreeMap::<&L, usize>::new());
    for &(x, y) in &pairs {
        *left.entry(x).or_default() += 1;
        *right.entry(y).or_default() += 1;
    }
    let nf = n as f64;
    let observed = pairs.iter().filter(|(x, y)| x == y).count() as f64 / nf;
    let expected = left.iter().map(|(l, &c)| (c * right.get(l).copied().unwrap_or(0)) as f64).sum::<f64>() / (nf * nf);
    (expected < 1.0 - EPS).then(|| CohenKappa {
        kappa: (observed - expected) / (1.0 - expected),
        observed,
        expected,
        n,
    })
}

/// Cohen's kappa for every pair of annotators, as square matrices in the order of `annotators`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairwiseCohen {
    /// Row and column names.
    pub annotators: Vec<String>,
    /// `kappa[i][j]`: Cohen's kappa of annotators i and j (symmetric); `None` where undefined and on the diagonal.
    pub kappa: Vec<Vec<Option<f64>>>,
    /// `n[i][j]`: items both i and j rated; on the diagonal, the items i rated.
    pub n: Vec<Vec<usize>>,
}

/// Cohen's kappa for every pair of annotators of the table.
pub fn pairwise_cohen(ratings: &Ratings) -> PairwiseCohen {
    let k = ratings.annotators.len();
    let columns: Vec<Vec<Option<&str>>> = (0..k).map(|c| ratings.column(c)).collect();
    let mut kappa = vec![vec![None; k]; k];
    let mut n = vec![vec![0; k]; k];
    for (i, a) in columns.iter().enumerate() {
        n[i][i] = a.iter().flatten().count();
        for (j, b) in columns.iter().enumerate().skip(i + 1) {
            let both = a.iter().zip(b).filter(|(x, y)| x.is_some() && y.is_some()).count();
            let value = cohen_kappa(a, b).map(|c| c.kappa);
            (n[i][j], n[j][i], kappa[i][j], kappa[j][i]) = (both, both, value, value);
        }
    }
    PairwiseCohen { annotators: ratings.annotators.clone(), kappa, n }
}

/// One label's share and kappa in Fleiss' analysis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CategoryKappa {
    /// The label.
    pub label: String,
    /// p_j: the share of all ratings (in the units used) that gave this label.
    pub proportion: f64,
    /// Fleiss's kappa_j for this label; `None` when p_j is 0 or 1.
    pub kappa: Option<f64>,
}

/// Fleiss' kappa over the units rated by the modal number of raters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleissKappa {
    /// Overall kappa (P̄ − P̄e) / (1 − P̄e); `None` with no units used or when P̄e is 1 (one label only).
    pub kappa: Option<f64>,
    /// m: the number of raters of every unit used (0 when no unit has 2 or more).
    pub raters_per_unit: usize,
    /// Units with exactly m ratings, the only ones used.
    pub units_used: usize,
    /// Units left out (rated by some other number of annotators, or by fewer than 2).
    pub units_left_out: usize,
    /// P̄: mean agreement among pairs of raters within a unit.
    pub observed: Option<f64>,
    /// P̄e = Σ p_j²: chance agreement.
    pub expected: Option<f64>,
    /// Per label, in the table's label order (empty when no unit is used).
    pub categories: Vec<CategoryKappa>,
}

/// Fleiss' kappa (Fleiss 1971), overall and per category.
///
/// Fleiss' kappa needs the same number of raters m for every unit. The units used are those with exactly the
/// modal number of ratings among units with 2 or more (ties go to the larger number); the others are left out
/// and counted in [`FleissKappa::units_left_out`]. Rater identity does not matter. Krippendorff's alpha uses every
/// unit with 2 or more ratings and is the figure to prefer when data are missing.
pub fn fleiss_kappa(ratings: &Ratings) -> FleissKappa {
    let (labels, counts) = ratings.label_counts();
    let mut units_by_m = BTreeMap::<usize, usize>::new();
    for row in &counts {
        let m = row.iter().sum::<usize>();
        if m >= 2 {
            *units_by_m.entry(m).or_default() += 1;
        }
    }
    let m = units_by_m.iter().max_by_key(|&(m, units)| (*units, *m)).map_or(0, |(m, _)| *m);
    let used: Vec<&Vec<usize>> = counts.iter().filter(|row| m >= 2 && row.iter().sum::<usize>() == m).collect();
    let mut result = FleissKappa {
        kappa: None,
        raters_per_unit: m,
        units_used: used.len(),
        units_left_out: counts.len() - used.len(),
        observed: None,
        expected: None,
        categories: Vec::new(),
    };
    if used.is_empty() {
        return result;
    }
    let (units, mf) = (used.len() as f64, m as f64);
    let proportions: Vec<f64> =
        (0..labels.len()).map(|j| used.iter().map(|row| row[j]).sum::<usize>() as f64 / (units * mf)).collect();
    let observed =
        used.iter().map(|row| (row.iter().map(|&c| c * c).sum::<usize>() - m) as f64 / (mf * (mf - 1.0))).sum::<f64>()
            / units;
    let expected = proportions.iter().map(|p| p * p).sum::<f64>();
    result.kappa = (expected < 1.0 - EPS).then(|| (observed - expected) / (1.0 - expected));
    result.observed = Some(observed);
    result.expected = Some(expected);
    result.categories = labels
        .into_iter()
        .zip(&proportions)
        .enumerate()
        .map(|(j, (label, &p))| {
            let spread = p * (1.0 - p);
            let disagreement = used.iter().map(|row| row[j] * (m - row[j])).sum::<usize>() as f64;
            let kappa = (spread > EPS).then(|| 1.0 - disagreement / (units * mf * (mf - 1.0) * spread));
            CategoryKappa { label, proportion: p, kappa }
        })
        .collect();
    result
}

/// One label's alpha, label against the rest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelAlpha {
    /// The label.
    pub label: String,
    /// n_c: pairable values that are this label.
    pub values: usize,
    /// Nominal alpha of the data binarised to this label vs any other; `None` when n_c is 0 or all values.
    pub alpha: Option<f64>,
}

/// Krippendorff's nominal alpha and the figures it comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KrippendorffAlpha {
    /// 1 − D_o / D_e; `None` with fewer than 2 pairable values or when only one label is used.
    pub alpha: Option<f64>,
    /// Units with 2 or more values (the others cannot be paired and are dropped).
    pub pairable_units: usize,
    /// n: the values in pairable units.
    pub pairable_values: usize,
    /// D_o: observed disagreement, the off-diagonal share of the coincidence matrix.
    pub observed_disagreement: Option<f64>,
    /// D_e: disagreement expected from the pooled label frequencies.
    pub expected_disagreement: Option<f64>,
    /// Per label, in the table's label order.
    pub labels: Vec<LabelAlpha>,
}

/// Krippendorff's alpha for nominal data with missing values (Krippendorff 2011, coincidence-matrix method).
///
/// Units with fewer than 2 values are not pairable and are dropped. A unit with m_u values adds
/// n_uc·n_uk / (m_u − 1) to the coincidence o_ck of labels c ≠ k; with n_c = Σ_k o_ck and n = Σ_c n_c,
/// alpha = 1 − (n − 1) · Σ_{c≠k} o_ck / Σ_{c≠k} n_c·n_k. The per-label alpha of c is the nominal alpha of the
/// same values binarised to "c" vs "not c", i.e. 1 − (n − 1) · o_{c,¬c} / (n_c · (n − n_c)).
pub fn krippendorff_alpha_nominal(ratings: &Ratings) -> KrippendorffAlpha {
    let (labels, counts) = ratings.label_counts();
    let pairable: Vec<(&Vec<usize>, usize)> =
        counts.iter().map(|row| (row, row.iter().sum::<usize>())).filter(|&(_, m)| m >= 2).collect();
    let n = pairable.iter().map(|&(_, m)| m).sum::<usize>();
    let nf = n as f64;
    let mut per_label_n = vec![0usize; labels.len()];
    let mut per_label_off = vec![0f64; labels.len()];
    let mut off_diagonal = 0.0;
    for &(row, m) in &pairable {
        let weight = 1.0 / (m - 1) as f64;
        off_diagonal += (m * m - row.iter().map(|&c| c * c).sum::<usize>()) as f64 * weight;
        for (j, &c) in row.iter().enumerate() {
            per_label_n[j] += c;
            per_label_off[j] += (c * (m - c)) as f64 * weight;
        }
    }
    let expected_pairs = (n * n - per_label_n.iter().map(|&c| c * c).sum::<usize>()) as f64;
    let defined = n >= 2 && expected_pairs > 0.0;
    KrippendorffAlpha {
        alpha: defined.then(|| 1.0 - (nf - 1.0) * off_diagonal / expected_pairs),
        pairable_units: pairable.len(),
        pairable_values: n,
        observed_disagreement: defined.then(|| off_diagonal / nf),
        expected_disagreement: defined.then(|| expected_pairs / (nf * (nf - 1.0))),
        labels: labels
            .into_iter()
            .enumerate()
            .map(|(j, label)| {
                let values = per_label_n[j];
                let spread = (values * (n - values)) as f64;
                let alpha = (n >= 2 && spread > 0.0).then(|| 1.0 - (nf - 1.0) * per_label_off[j] / spread);
                LabelAlpha { label, values, alpha }
            })
            .collect(),
    }
}

/// Percent agreement: over units with 2 or more ratings, the share of pairs of ratings within the unit that give
/// the same label, averaged over units (Fleiss's P̄, allowing a different number of raters per unit). `None` when
/// no unit has 2 ratings.
pub fn percent_agreement(ratings: &Ratings) -> Option<f64> {
    let (_, counts) = ratings.label_counts();
    let shares: Vec<f64> = counts
        .iter()
        .filter_map(|row| {
            let m = row.iter().sum::<usize>();
            (m >= 2).then(|| row.iter().map(|&c| c * c.saturating_sub(1)).sum::<usize>() as f64 / (m * (m - 1)) as f64)
        })
        .collect();
    (!shares.is_empty()).then(|| shares.iter().sum::<f64>() / shares.len() as f64)
}

/// How one annotator agrees with the others.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AnnotatorAgreement {
    /// The annotator.
    pub annotator: String,
    /// Items this annotator rated.
    pub items_rated: usize,
    /// Mean Cohen's kappa with each other annotator (pairs where kappa is defined).
    pub mean_kappa: Option<f64>,
    /// Mean Cohen's kappa among the pairs of other annotators (pairs where kappa is defined).
    pub others_mean_kappa: Option<f64>,
    /// Share of this annotator's items on which their label is the others' majority label (items where the other
    /// annotators' most frequent label is unique).
    pub majority_agreement: Option<f64>,
    /// `mean_kappa` is more than [`DIVERGENCE_GAP`] below `others_mean_kappa`.
    pub diverging: bool,
}

/// Each annotator's agreement with the others. The rule for [`AnnotatorAgreement::diverging`]: the annotator's
/// mean pairwise Cohen's kappa with the others is more than [`DIVERGENCE_GAP`] below the mean pairwise kappa among
/// the other annotators; so it needs 3 or more annotators.
pub fn annotator_agreement(ratings: &Ratings) -> Vec<AnnotatorAgreement> {
    annotators_from(ratings, &pairwise_cohen(ratings))
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, count) = values.fold((0.0, 0usize), |(s, c), v| (s + v, c + 1));
    (count > 0).then(|| sum / count as f64)
}

fn annotators_from(ratings: &Ratings, pairwise: &PairwiseCohen) -> Vec<AnnotatorAgreement> {
    let k = ratings.annotators.len();
    let pairs = |keep: &dyn Fn(usize, usize) -> bool| {
        mean(
            (0..k)
                .flat_map(|i| (i + 1..k).map(move |j| (i, j)))
                .filter(|&(i, j)| keep(i, j))
                .filter_map(|(i, j)| pairwise.kappa.get(i).and_then(|row| row.get(j)).copied().flatten()),
        )
    };
    (0..k)
        .map(|a| {
            let mean_kappa = pairs(&|i, j| i == a || j == a);
            let others_mean_kappa = pairs(&|i, j| i != a && j != a);
            let (mut items_rated, mut rated, mut matched) = (0, 0, 0);
            for row in &ratings.units {
                let Some(Some(own)) = row.get(a) else { continue };
                items_rated += 1;
                let mut votes = BTreeMap::<&str, usize>::new();
                for label in row.iter().enumerate().filter(|&(c, _)| c != a).filter_map(|(_, l)| l.as_deref()) {
                    *votes.entry(label).or_default() += 1;
                }
                let top = votes.values().copied().max().unwrap_or(0);
                let mut leaders = votes.iter().filter(|&(_, &v)| v == top);
                if let (Some((leader, _)), None) = (leaders.next(), leaders.next()) {
                    rated += 1;
                    matched += usize::from(*leader == own.as_str());
                }
            }
            AnnotatorAgreement {
                annotator: ratings.annotators[a].clone(),
                items_rated,
                mean_kappa,
                others_mean_kappa,
                majority_agreement: (rated > 0).then(|| matched as f64 / rated as f64),
                diverging: matches!((mean_kappa, others_mean_kappa), (Some(m), Some(o)) if o - m > DIVERGENCE_GAP),
            }
        })
        .collect()
}

/// A label and its share of all ratings.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelShare {
    /// The label.
    pub label: String,
    /// Its share of all ratings, 0 to 1.
    pub share: f64,
}

/// Conditions under which the agreement figures mislead, with a sentence for each.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Diagnostics {
    /// Units rated by 2 or more annotators.
    pub pairable_units: usize,
    /// Fewer than [`MIN_PAIRABLE_UNITS`] pairable units.
    pub too_few_units: bool,
    /// The label with more than [`SKEW_SHARE`] of all ratings, if one has.
    pub dominant_label: Option<LabelShare>,
    /// Annotators flagged by the rule of [`annotator_agreement`].
    pub diverging: Vec<String>,
    /// One human-readable sentence per condition found, in the order above.
    pub messages: Vec<String>,
}

/// The diagnostics of a table: too few pairable units, one label dominating (kappa paradox), diverging annotators.
pub fn diagnostics(ratings: &Ratings) -> Diagnostics {
    diagnose(ratings, &annotator_agreement(ratings))
}

fn diagnose(ratings: &Ratings, annotators: &[AnnotatorAgreement]) -> Diagnostics {
    let mut d = Diagnostics {
        pairable_units: ratings.units.iter().filter(|row| row.iter().flatten().count() >= 2).count(),
        ..Diagnostics::default()
    };
    d.too_few_units = d.pairable_units < MIN_PAIRABLE_UNITS;
    if d.too_few_units {
        d.messages.push(format!(
            "only {} item(s) were rated by two or more annotators (fewer than {MIN_PAIRABLE_UNITS}): agreement \
             figures on so few items are unreliable",
            d.pairable_units
        ));
    }
    let (labels, counts) = ratings.label_counts();
    let total = ratings.n_ratings();
    let top = (0..labels.len()).map(|j| (j, counts.iter().map(|row| row[j]).sum::<usize>())).max_by_key(|&(_, c)| c);
    if let Some((j, count)) = top.filter(|_| total > 0) {
        let share = count as f64 / total as f64;
        if share > SKEW_SHARE {
            d.messages.push(if count == total {
                format!("every rating is `{}`: kappa and alpha are undefined when a single label is used", labels[j])
            } else {
                format!(
                    "`{}` is {:.0}% of all ratings: kappa and alpha can be low even when annotators mostly agree \
                     (the kappa paradox); read them beside percent agreement",
                    labels[j],
                    share * 100.0
                )
            });
            d.dominant_label = Some(LabelShare { label: labels[j].clone(), share });
        }
    }
    for a in annotators.iter().filter(|a| a.diverging) {
        if let (Some(own), Some(others)) = (a.mean_kappa, a.others_mean_kappa) {
            d.messages.push(format!(
                "annotator `{}` diverges from the others: mean Cohen's kappa with them {own:.2}, against {others:.2} \
                 among them",
                a.annotator
            ));
        }
        d.diverging.push(a.annotator.clone());
    }
    d
}

/// Every agreement figure of a table, for display or export.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AgreementReport {
    /// Items (rows) in the table, rated or not.
    pub n_items: usize,
    /// Annotators (columns).
    pub n_annotators: usize,
    /// Ratings given.
    pub n_ratings: usize,
    /// The labels used, sorted.
    pub labels: Vec<String>,
    /// See [`percent_agreement`].
    pub percent_agreement: Option<f64>,
    /// Fleiss' kappa, overall and per label.
    pub fleiss: FleissKappa,
    /// Krippendorff's nominal alpha, overall and per label.
    pub alpha: KrippendorffAlpha,
    /// Cohen's kappa per pair of annotators.
    pub pairwise: PairwiseCohen,
    /// Each annotator against the others.
    pub annotators: Vec<AnnotatorAgreement>,
    /// What to be wary of; `diagnostics.messages` is the human-readable list.
    pub diagnostics: Diagnostics,
}

/// Computes every figure of [`AgreementReport`] for a table.
pub fn agreement_report(ratings: &Ratings) -> AgreementReport {
    let pairwise = pairwise_cohen(ratings);
    let annotators = annotators_from(ratings, &pairwise);
    AgreementReport {
        n_items: ratings.units.len(),
        n_annotators: ratings.annotators.len(),
        n_ratings: ratings.n_ratings(),
        labels: ratings.labels(),
        percent_agreement: percent_agreement(ratings),
        fleiss: fleiss_kappa(ratings),
        alpha: krippendorff_alpha_nominal(ratings),
        diagnostics: diagnose(ratings, &annotators),
        pairwise,
        annotators,
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    fn close(actual: Option<f64>, expected: f64) {
        let actual = actual.expect("a defined figure");
        assert!((actual - expected).abs() < 5e-4, "got {actual}, expected {expected} to 3 decimals");
    }

    /// A table from one line per coder, values separated by spaces, `.` for missing.
    fn coders(lines: &[(&str, &str)]) -> Ratings {
        Ratings::from_triples(lines.iter().flat_map(|&(coder, line)| {
            line.split_whitespace().enumerate().filter(|&(_, v)| v != ".").map(move |(unit, v)| (unit, coder, v))
        }))
    }

    #[test]
    fn krippendorff_2011_reliability_data_nominal_alpha_is_0_743() {
        let r = coders(&[
            ("A", "1 2 3 3 2 1 4 1 2 . . ."),
            ("B", "1 2 3 3 2 2 4 1 2 5 . 3"),
            ("C", ". 3 3 3 2 3 4 2 2 5 1 ."),
            ("D", "1 2 3 3 2 4 4 1 2 5 1 ."),
        ]);
        assert_eq!((r.units.len(), r.annotators.len(), r.n_ratings()), (12, 4, 41));
        let a = krippendorff_alpha_nominal(&r);
        close(a.alpha, 0.743);
        assert_eq!((a.pairable_units, a.pairable_values), (11, 40)); // unit 12 has a single value
        assert_eq!(a.labels.iter().map(|l| l.values).collect::<Vec<_>>(), [9, 13, 10, 5, 3]);
        assert!(a.labels.iter().all(|l| l.alpha.is_some()));
    }

    fn wikipedia_fleiss() -> Ratings {
        // Counts of categories 1..5 per subject, 14 raters each.
        let rows =
            "0 0 0 0 14|0 2 6 4 2|0 0 3 5 6|0 3 9 2 0|2 2 8 1 1|7 7 0 0 0|3 2 6 3 0|2 5 3 2 2|6 5 2 1 0|0 2 2 3 7";
        let rows = rows.split('|').map(|row| row.split(' ').map(|c| c.parse().unwrap()).collect::<Vec<usize>>());
        Ratings::from_triples(rows.enumerate().flat_map(|(unit, row)| {
            let labels = row.into_iter().enumerate().flat_map(|(j, c)| std::iter::repeat_n(j + 1, c));
            labels.enumerate().map(move |(rater, label)| (unit, rater, label.to_string()))
        }))
    }

    #[test]
    fn fleiss_wikipedia_example_is_0_210() {
        let r = wikipedia_fleiss();
        assert_eq!((r.units.len(), r.annotators.len()), (10, 14));
        let f = fleiss_kappa(&r);
        assert_eq!((f.raters_per_unit, f.units_used, f.units_left_out), (14, 10, 0));
        close(f.kappa, 0.210);
        close(f.observed, 0.378);
        close(f.expected, 0.213);
        for (category, p) in f.categories.iter().zip([0.143, 0.200, 0.279, 0.150, 0.229]) {
            close(Some(category.proportion), p);
        }
        // Fleiss (1971): overall kappa is the p_j·q_j-weighted mean of the per-category kappas.
        let weights: Vec<f64> = f.categories.iter().map(|c| c.proportion * (1.0 - c.proportion)).collect();
        let weighted = f.categories.iter().zip(&weights).map(|(c, w)| c.kappa.unwrap() * w).sum::<f64>();
        assert!((weighted / weights.iter().sum::<f64>() - f.kappa.unwrap()).abs() < 1e-12);
    }

    #[test]
    fn cohen_wikipedia_example_is_0_40() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (count, x, y) in [(20, "yes", "yes"), (5, "yes", "no"), (10, "no", "yes"), (15, "no", "no")] {
            a.extend(std::iter::repeat_n(Some(x), count));
            b.extend(std::iter::repeat_n(Some(y), count));
        }
        let k = cohen_kappa(&a, &b).unwrap();
        assert_eq!(k.n, 50);
        close(Some(k.kappa), 0.40);
        close(Some(k.observed), 0.70);
        close(Some(k.expected), 0.50);
    }

    #[test]
    fn perfect_agreement_is_one_for_every_measure() {
        let labels = ["a", "b", "c"];
        let r = Ratings::from_triples((0..12).flat_map(|i| ["x", "y", "z"].map(move |c| (i, c, labels[i % 3]))));
        let report = agreement_report(&r);
        close(report.percent_agreement, 1.0);
        close(report.fleiss.kappa, 1.0);
        close(report.alpha.alpha, 1.0);
        assert!(report.pairwise.kappa.iter().flatten().flatten().all(|&k| (k - 1.0).abs() < 1e-12));
        assert!(report.fleiss.categories.iter().all(|c| c.kappa == Some(1.0)));
        assert!(report.alpha.labels.iter().all(|l| (l.alpha.unwrap() - 1.0).abs() < 1e-12));
        assert!(report.diagnostics.messages.is_empty(), "{:?}", report.diagnostics.messages);
    }

    #[test]
    fn a_single_label_is_undefined_not_nan_and_diagnosed() {
        let r = Ratings::from_triples((0..20).flat_map(|i| ["x", "y", "z"].map(move |c| (i, c, "real"))));
        let report = agreement_report(&r);
        assert_eq!(report.fleiss.kappa, None);
        assert_eq!(report.alpha.alpha, None);
        assert!(report.pairwise.kappa.iter().flatten().all(Option::is_none));
        assert_eq!(report.fleiss.categories[0].kappa, None);
        assert_eq!(report.alpha.labels[0].alpha, None);
        close(report.percent_agreement, 1.0);
        assert_eq!(report.diagnostics.dominant_label, Some(LabelShare { label: "real".into(), share: 1.0 }));
        assert!(report.diagnostics.messages.iter().any(|m| m.contains("single label")));
        assert!(!serde_json::to_string(&report).unwrap().contains("NaN"));
        // An empty table is as safe.
        let empty = agreement_report(&Ratings::default());
        assert_eq!((empty.fleiss.kappa, empty.alpha.alpha, empty.percent_agreement), (None, None, None));
        assert!(empty.diagnostics.too_few_units);
    }

    #[test]
    fn skewed_labels_and_few_items_are_diagnosed() {
        // 8 items, 15 of 16 ratings "real": high agreement, low kappa.
        let mut triples: Vec<(usize, &str, &str)> =
            (0..8).flat_map(|i| ["x", "y"].map(move |c| (i, c, "real"))).collect();
        triples[0].2 = "fake";
        let d = diagnostics(&Ratings::from_triples(triples));
        assert!(d.too_few_units && d.pairable_units == 8);
        assert_eq!(d.dominant_label.as_ref().map(|l| l.label.as_str()), Some("real"));
        assert!(d.messages[0].contains("only 8 item(s)") && d.messages[1].contains("kappa paradox"), "{d:?}");
    }

    #[test]
    fn an_annotator_answering_at_random_is_flagged() {
        let mut rng = StdRng::seed_from_u64(7);
        let labels = ["real", "fake", "other"];
        let mut triples = Vec::new();
        for item in 0..60 {
            let truth = labels[item % 3];
            for coder in ["ann", "bob", "cat"] {
                // The three agree on all but an occasional item.
                let label = if rng.random_bool(0.1) { labels[rng.random_range(0..3)] } else { truth };
                triples.push((item, coder, label));
            }
            triples.push((item, "rnd", labels[rng.random_range(0..3)]));
        }
        let report = agreement_report(&Ratings::from_triples(triples));
        assert_eq!(report.diagnostics.diverging, ["rnd"]);
        let rnd = report.annotators.iter().find(|a| a.annotator == "rnd").unwrap();
        assert!(rnd.diverging && rnd.mean_kappa.unwrap() < 0.2 && rnd.majority_agreement.unwrap() < 0.5);
        assert!(report.annotators.iter().filter(|a| a.annotator != "rnd").all(|a| !a.diverging));
        assert!(report.diagnostics.messages.iter().any(|m| m.contains("`rnd` diverges")));
    }

    #[test]
    fn missing_ratings_are_left_out_pair_by_pair() {
        // x rates everything, y items 0..10, z items 5..15: 15 items.
        let mut triples = Vec::new();
        for i in 0..15usize {
            let label = if i % 2 == 0 { "real" } else { "fake" };
            triples.push((i, "x", label));
            if i < 10 {
                triples.push((i, "y", label));
            }
            if i >= 5 {
                triples.push((i, "z", if i == 13 { "real" } else { label }));
            }
        }
        let r = Ratings::from_triples(triples);
        let p = pairwise_cohen(&r);
        assert_eq!(p.n, [[15, 10, 10], [10, 10, 5], [10, 5, 10]]);
        assert_eq!(p.kappa[0][1], Some(1.0));
        assert_eq!(p.kappa[0][0], None);
        assert!(p.kappa[0][2].unwrap() < 1.0 && p.kappa[0][2] == p.kappa[2][0]);
        // Fleiss uses the modal count: 10 items have 2 ratings, the 5 items 5..10 have 3.
        let f = fleiss_kappa(&r);
        assert_eq!((f.raters_per_unit, f.units_used, f.units_left_out), (2, 10, 5));
        // Alpha uses all 15 units, 35 values.
        let a = krippendorff_alpha_nominal(&r);
        assert_eq!((a.pairable_units, a.pairable_values), (15, 35));
        assert!(a.alpha.unwrap() < 1.0);
    }

    #[test]
    fn from_triples_sorts_keys_by_their_own_order_and_keeps_the_last_rating() {
        let r = Ratings::from_triples([(10, 2, "a"), (2, 1, "b"), (10, 1, "c"), (10, 2, "d")]);
        assert_eq!(r.items, ["2", "10"]);
        assert_eq!(r.annotators, ["1", "2"]);
        assert_eq!(r.column(1), [None, Some("d")]);
        assert_eq!(r.column(5), [None, None]);
        assert_eq!(r.labels(), ["b", "c", "d"]);
    }
}
