//! Who sees what, in which order: the deterministic plan of one participant from (study seed, participant number),
//! and the routing of items to k annotators with overlap.
//!
//! Conditions follow a Latin square (participant `p` uses row `p mod k`; the item at position `i` gets the condition
//! in column `i mod k`), so over any multiple of k participants every condition is equally often in every position.
//! Balanced item order rotates the study's item list by `p div k`: within each block of k participants an item sits
//! at the same position under each of the k conditions once, and over `n k` participants every item is in every
//! position equally often. Randomness comes from [`SplitMix64`], whose output is fixed forever (unlike `rand`'s
//! `StdRng`), so a study file gives the same plans in every Argus version.
//!
//! Pure functions: no SQLite, no UI.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::spec::{Design, ItemOrder, StudySpec};
use crate::domain::ItemId;
use crate::store::Store;

/// SplitMix64 (Steele, Lea & Flood 2014): a small seeded generator with a fixed, documented output.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded from several numbers (seed, participant, position, purpose...).
    pub fn new(parts: &[u64]) -> Self {
        let mut state = 0x6A09_E667_F3BC_C908u64;
        for &p in parts {
            state = Self(state ^ p).next_u64();
        }
        Self(state)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, values: &mut [T]) {
        for i in (1..values.len()).rev() {
            values.swap(i, self.below(i + 1));
        }
    }
}

/// Purposes mixed into the seed, so the streams for different decisions are independent.
const ITEM_CHOICE: u64 = 1;
const ITEM_ORDER: u64 = 2;
const ATTENTION: u64 = 3;

/// A k × k Latin square over conditions `0..k`: for even k a Williams design (each condition follows every other
/// exactly once along the rows, balancing first-order carry-over), for odd k the cyclic square.
pub fn latin_square(k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return Vec::new();
    }
    let first: Vec<usize> = if k.is_multiple_of(2) {
        // 0, 1, k-1, 2, k-2, ...
        (0..k)
            .map(|j| {
                if j == 0 {
                    0
                } else if j % 2 == 1 {
                    j.div_ceil(2)
                } else {
                    k - j / 2
                }
            })
            .collect()
    } else {
        (0..k).collect()
    };
    (0..k).map(|r| first.iter().map(|c| (c + r) % k).collect()).collect()
}

/// One step of a participant's run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanStep {
    /// The consent text; agree or decline.
    Consent,
    /// The instructions.
    Instructions,
    /// Practice item `index` of the study file, shown in condition `condition` (an index into the conditions).
    Practice {
        /// Index into the study file's practice items.
        index: usize,
        /// The item.
        item: ItemId,
        /// Index into the study file's conditions.
        condition: usize,
    },
    /// The item at `position` (0-based among the participant's items), in condition `condition`.
    Item {
        /// 0-based position among the participant's items.
        position: usize,
        /// The item.
        item: ItemId,
        /// Index into the study file's conditions.
        condition: usize,
        /// A gold item: its verdict is checked against its known label.
        is_gold: bool,
    },
    /// An attention check after the item at `after_position`.
    Attention {
        /// 0-based count of attention checks before this one.
        index: usize,
        /// The position of the item it follows.
        after_position: usize,
    },
    /// The post-study questionnaire.
    Questionnaire,
}

/// The plan of one participant: every step in order (the end, with the completion code, follows the last).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The participant's number (1, 2, ...).
    pub number: u32,
    /// The steps.
    pub steps: Vec<PlanStep>,
}

impl Plan {
    /// The item steps, in order: (position, item, condition index, is_gold).
    pub fn items(&self) -> impl Iterator<Item = (usize, ItemId, usize, bool)> + '_ {
        self.steps.iter().filter_map(|s| match *s {
            PlanStep::Item { position, item, condition, is_gold } => Some((position, item, condition, is_gold)),
            _ => None,
        })
    }
}

/// The study's items, the same for every participant before ordering: the gold items and the first
/// `items_per_participant - gold` items of a seeded shuffle of the rest of `pool`, in a seeded order. Shorter when
/// the pool is too small (registration refuses that).
pub fn study_items(spec: &StudySpec, pool: &[ItemId]) -> Vec<ItemId> {
    let mut rest: Vec<ItemId> = pool.iter().copied().filter(|i| !spec.gold_items.contains(i)).collect();
    rest.sort_unstable();
    rest.dedup();
    let mut rng = SplitMix64::new(&[spec.seed, ITEM_CHOICE]);
    rng.shuffle(&mut rest);
    rest.truncate(spec.items_per_participant.saturating_sub(spec.gold_items.len()));
    let mut items: Vec<ItemId> = spec.gold_items.iter().copied().chain(rest).collect();
    SplitMix64::new(&[spec.seed, ITEM_ORDER]).shuffle(&mut items);
    items
}

/// The plan of participant `number` (1, 2, ...) from the study's resolved item pool; the same inputs give the same
/// plan.
pub fn plan(spec: &StudySpec, pool: &[ItemId], number: u32) -> Plan {
    let p = number.saturating_sub(1) as usize;
    let k = spec.conditions.len().max(1);
    let square = latin_square(k);
    let mut items = study_items(spec, pool);
    let n = items.len();
    match spec.counterbalance.item_order {
        ItemOrder::Balanced if n > 0 => items.rotate_left((p / k) % n),
        ItemOrder::Balanced => {}
        ItemOrder::Random => SplitMix64::new(&[spec.seed, ITEM_ORDER, u64::from(number)]).shuffle(&mut items),
    }
    let condition_at = |position: usize| match spec.design {
        Design::Within => square[p % k][position % k],
        Design::Between => p % k,
    };
    let mut steps = vec![PlanStep::Consent, PlanStep::Instructions];
    for (index, practice) in spec.practice.iter().enumerate() {
        let condition = practice
            .condition
            .as_deref()
            .and_then(|name| spec.conditions.iter().position(|c| c.name == name))
            .unwrap_or_else(|| condition_at(0));
        steps.push(PlanStep::Practice { index, item: practice.item, condition });
    }
    let mut checks = 0;
    for (position, &item) in items.iter().enumerate() {
        let is_gold = spec.gold_items.contains(&item);
        steps.push(PlanStep::Item { position, item, condition: condition_at(position), is_gold });
        let check = spec.attention_checks.as_ref().is_some_and(|a| match (a.every, a.probability) {
            (Some(every), _) => every > 0 && (position + 1).is_multiple_of(every),
            (None, Some(prob)) => {
                SplitMix64::new(&[spec.seed, ATTENTION, u64::from(number), position as u64]).unit() < prob
            }
            (None, None) => false,
        });
        if check {
            steps.push(PlanStep::Attention { index: checks, after_position: position });
            checks += 1;
        }
    }
    if !spec.questionnaire.is_empty() {
        steps.push(PlanStep::Questionnaire);
    }
    Plan { number, steps }
}

/// Errors of [`assign_items`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssignError {
    /// k is 0 or more than the annotators.
    #[error("--k {k}: each item needs k distinct annotators, and there are {annotators}")]
    BadK {
        /// The k asked for.
        k: usize,
        /// Annotators given.
        annotators: usize,
    },
    /// An annotator is named twice.
    #[error("annotator `{0}` is named twice")]
    Duplicate(String),
    /// An item asked for (`--only`) that the database does not hold.
    #[error("--only: item {0} is not in the database")]
    UnknownItem(ItemId),
}

/// The items still to route: `only` (every item when `None`) less those already assigned; an item of `only` that
/// is not in `all` is refused.
pub fn unassigned(
    all: &[ItemId],
    assigned: &BTreeSet<ItemId>,
    only: Option<Vec<ItemId>>,
) -> Result<Vec<ItemId>, AssignError> {
    if let Some(missing) = only.iter().flatten().find(|i| !all.contains(i)) {
        return Err(AssignError::UnknownItem(*missing));
    }
    Ok(only.unwrap_or_else(|| all.to_vec()).into_iter().filter(|i| !assigned.contains(i)).collect())
}

/// What [`assign_new`] did, as `argus assign` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssignReport {
    /// Items routed now.
    pub items: usize,
    /// Annotators per item.
    pub k: usize,
    /// Assignments added.
    pub added: usize,
    /// Items that were assigned before.
    pub already: usize,
    /// Each annotator with the items assigned to them now (over all runs).
    pub loads: Vec<(String, usize)>,
}

impl std::fmt::Display for AssignReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "assigned {} items to {} annotators each ({} assignments; {} items were already assigned)",
            self.items, self.k, self.added, self.already
        )?;
        for (name, n) in &self.loads {
            writeln!(f, "  {name}: {n} items")?;
        }
        Ok(())
    }
}

/// Routes the items of `only` (every item when `None`) that nobody is assigned yet to `k` of `annotators` each
/// ([`assign_items`], seeded) and stores the assignments. Names are trimmed; empty ones are dropped.
pub fn assign_new(
    store: &mut Store,
    annotators: &[String],
    k: usize,
    seed: u64,
    only: Option<Vec<ItemId>>,
) -> Result<AssignReport, super::StudyError> {
    let names: Vec<String> = annotators.iter().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect();
    let assigned: BTreeSet<ItemId> = store.assignments()?.into_iter().map(|(i, _)| i).collect();
    let todo = unassigned(&store.item_ids()?, &assigned, only)?;
    let pairs = assign_items(&todo, &names, k, seed)?;
    let added = store.add_assignments(&pairs)?;
    let loads = names
        .iter()
        .map(|name| Ok((name.clone(), store.assigned_items(name)?.len())))
        .collect::<Result<_, crate::store::StoreError>>()?;
    Ok(AssignReport { items: todo.len(), k, added, already: assigned.len(), loads })
}

/// Routes every item to `k` distinct annotators with balanced load: items are taken in a seeded order and each
/// goes to the `k` annotators with the fewest items so far (ties broken by a seeded draw), so loads differ by at
/// most one and every pair of annotators shares items (overlap for agreement). Returns `(item, annotator)` pairs,
/// by item.
pub fn assign_items(
    items: &[ItemId],
    annotators: &[String],
    k: usize,
    seed: u64,
) -> Result<Vec<(ItemId, String)>, AssignError> {
    if k == 0 || k > annotators.len() {
        return Err(AssignError::BadK { k, annotators: annotators.len() });
    }
    if let Some((_, a)) = annotators.iter().enumerate().find(|(i, a)| annotators[..*i].contains(a)) {
        return Err(AssignError::Duplicate(a.clone()));
    }
    let mut order = items.to_vec();
    let mut rng = SplitMix64::new(&[seed, 4]);
    rng.shuffle(&mut order);
    let mut load = vec![0usize; annotators.len()];
    let mut out: BTreeMap<ItemId, Vec<String>> = BTreeMap::new();
    for item in order {
        let mut candidates: Vec<(usize, u64, usize)> =
            (0..annotators.len()).map(|a| (load[a], rng.next_u64(), a)).collect();
        candidates.sort_unstable();
        let chosen = out.entry(item).or_default();
        for &(_, _, a) in candidates.iter().take(k) {
            load[a] += 1;
            chosen.push(annotators[a].clone());
        }
        chosen.sort();
    }
    Ok(out.into_iter().flat_map(|(item, names)| names.into_iter().map(move |n| (item, n))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_squares_are_latin_and_williams_for_even_k() {
        for k in 1..=6 {
            let sq = latin_square(k);
            for (c, row) in sq.iter().enumerate() {
                let mut row = row.clone();
                row.sort_unstable();
                assert_eq!(row, (0..k).collect::<Vec<_>>());
                let mut col: Vec<usize> = sq.iter().map(|r| r[c]).collect();
                col.sort_unstable();
                assert_eq!(col, (0..k).collect::<Vec<_>>());
            }
            if k % 2 == 0 {
                let mut follows = std::collections::BTreeSet::new();
                for row in &sq {
                    for w in row.windows(2) {
                        assert!(follows.insert((w[0], w[1])), "k {k}: {w:?} twice");
                    }
                }
                assert_eq!(follows.len(), k * (k - 1));
            }
        }
    }

    #[test]
    fn only_the_items_not_yet_assigned_are_routed_and_unknown_ones_are_refused() {
        let all: Vec<ItemId> = (1..=6).collect();
        let assigned = BTreeSet::from([2, 5]);
        assert_eq!(unassigned(&all, &assigned, None).unwrap(), [1, 3, 4, 6]);
        assert_eq!(unassigned(&all, &assigned, Some(vec![5, 4, 1])).unwrap(), [4, 1], "in the order asked");
        assert_eq!(unassigned(&all, &BTreeSet::new(), Some(vec![])).unwrap(), Vec::<ItemId>::new());
        let err = unassigned(&all, &assigned, Some(vec![3, 9])).unwrap_err();
        assert_eq!(err, AssignError::UnknownItem(9));
        assert_eq!(err.to_string(), "--only: item 9 is not in the database");
    }

    #[test]
    fn assign_new_skips_what_is_assigned_and_reports_each_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path().join("assign.db")).unwrap();
        let dataset = crate::domain::NewDataset {
            name: "six".into(),
            format: "csv".into(),
            source_path: "six.csv".into(),
            license_note: None,
        };
        let items: Vec<crate::domain::NewItem> =
            (1..=6).map(|i| crate::domain::NewItem { text: format!("claim {i}"), ..Default::default() }).collect();
        store.import(&[(dataset, items)], &mut |_| {}, &|| false).unwrap();
        let names: Vec<String> = [" ann", "bob", ""].iter().map(|s| s.to_string()).collect();
        let first = assign_new(&mut store, &names, 1, 0, Some(vec![1, 2, 3, 4])).unwrap();
        assert_eq!((first.items, first.added, first.already), (4, 4, 0));
        assert_eq!(first.loads, [("ann".to_owned(), 2), ("bob".to_owned(), 2)]);
        let second = assign_new(&mut store, &names, 2, 0, Some(vec![3, 4, 5])).unwrap();
        assert_eq!((second.items, second.added, second.already), (1, 2, 4), "items 3 and 4 were assigned");
        assert_eq!(
            second.to_string(),
            "assigned 1 items to 2 annotators each (2 assignments; 4 items were already assigned)\n  ann: 3 items\n  \
             bob: 3 items\n"
        );
        let err = assign_new(&mut store, &names, 1, 0, Some(vec![99_999])).unwrap_err();
        assert!(err.to_string().contains("item 99999 is not in the database"), "{err}");
    }

    #[test]
    fn splitmix_is_the_published_sequence() {
        // First outputs of SplitMix64 seeded with 0 (reference implementation by Vigna).
        let mut g = SplitMix64(0);
        assert_eq!(g.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(g.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn routing_gives_k_distinct_annotators_and_balanced_load() {
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let items: Vec<ItemId> = (1..=30).collect();
        let pairs = assign_items(&items, &names, 2, 7).unwrap();
        assert_eq!(pairs.len(), 60);
        for item in &items {
            let who: Vec<&String> = pairs.iter().filter(|(i, _)| i == item).map(|(_, a)| a).collect();
            assert_eq!(who.len(), 2);
            assert_ne!(who[0], who[1]);
        }
        let loads: Vec<usize> = names.iter().map(|n| pairs.iter().filter(|(_, a)| a == n).count()).collect();
        assert!(loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1, "{loads:?}");
        assert_eq!(pairs, assign_items(&items, &names, 2, 7).unwrap());
        assert_ne!(pairs, assign_items(&items, &names, 2, 8).unwrap());
        assert!(matches!(assign_items(&items, &names, 5, 7), Err(AssignError::BadK { .. })));
        assert!(matches!(assign_items(&items, &names, 0, 7), Err(AssignError::BadK { .. })));
    }
}
