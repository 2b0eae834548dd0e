//! Turns the store's training view into ARG's examples and targets, with people's feedback taking precedence:
//! a person's verdict (adjudicated, else the majority) overrides the item's label; a person's "useful" /
//! "not useful" / "misleading" judgement of a rationale overrides r_acc; a corrected rationale verdict overrides
//! r_pred and a corrected text replaces the text (both come with the latest revision).
//!
//! Splits are fixed: an item's own `split` (train / val|valid|dev / test) when the data says, otherwise a hash of
//! its text, so an item never moves between splits as people judge it. When the data names no training split
//! (LIAR2's public valid + test files), the validation items are divided into train (85%) and val (15%) by the
//! same hash; when it names no split at all, 70 / 15 / 15.
//!
//! With a group key ([`build_grouped`], `argus train --group-by image_id`), whole groups are divided instead of
//! texts, so every item of one event, source or claim lands in the same split and validation measures what carries
//! over to unseen groups: the groups taken into val are chosen in hash order per class until val holds about 15%
//! of each class's items ([`stratified_val_groups`]). Items without the key are groups of their own.

use sha2::{Digest, Sha256};

use crate::domain::{ItemId, Usefulness, Verdict};
use crate::store::guidance::TrainingItem;

/// Which part of the data an example belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
}

/// One rationale's inputs and targets.
#[derive(Clone, Debug, PartialEq)]
pub struct RationaleTarget {
    /// The text (empty when the item has no rationale from this perspective).
    pub text: String,
    pub present: bool,
    /// r_pred: the verdict the rationale implies, 0 real, 1 fake, 2 other (also when unknown or missing).
    pub r_pred: u32,
    /// r_acc: 1 when the rationale is right (or a person called it useful).
    pub r_acc: f32,
}

/// One item ready for the guidance model.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub item: ItemId,
    /// The news text (title and text).
    pub news: String,
    /// The label (true = fake), when the item has one; unlabelled items are only predicted.
    pub fake: Option<bool>,
    /// True when the label is people's (their verdict overrode or supplied it).
    pub human: bool,
    pub split: Split,
    /// One per perspective, in the model's perspective order.
    pub rationales: Vec<RationaleTarget>,
}

/// Counts of what a training run saw (stored with each version).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataSnapshot {
    pub items: usize,
    pub labelled: usize,
    /// Labels that come from people (overriding or supplying the gold label).
    pub human_labels: usize,
    /// Of those, how many disagree with the gold label.
    pub human_overrides: usize,
    pub train: usize,
    pub val: usize,
    pub test: usize,
    pub perspectives: Vec<String>,
    /// Per perspective: items with a rationale.
    pub rationales: Vec<usize>,
    /// Rationales whose usefulness comes from a person's feedback.
    pub usefulness_feedback: usize,
    /// Rationales that people corrected (revision > 1).
    pub corrected_rationales: usize,
    /// The field the train/val/test hash was taken over; `None`: each item's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by: Option<String>,
    /// With `group_by`: distinct groups among the labelled items of each split (items without the field count
    /// as a group each).
    #[serde(default)]
    pub groups_train: usize,
    #[serde(default)]
    pub groups_val: usize,
    #[serde(default)]
    pub groups_test: usize,
    /// With `group_by`: items that have no value for it.
    #[serde(default)]
    pub ungrouped: usize,
}

/// The perspectives that have at least one rationale, in `order` first, then any others alphabetically.
pub fn perspectives_present(items: &[TrainingItem], order: &[String]) -> Vec<String> {
    let mut present: Vec<String> = Vec::new();
    for item in items {
        for r in &item.rationales {
            if !present.contains(&r.perspective) {
                present.push(r.perspective.clone());
            }
        }
    }
    let mut out: Vec<String> = order.iter().filter(|p| present.contains(p)).cloned().collect();
    let mut rest: Vec<String> = present.into_iter().filter(|p| !out.contains(p)).collect();
    rest.sort();
    out.extend(rest);
    out
}

fn hash_percent(text: &str) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes")) % 100
}

fn explicit_split(split: Option<&str>) -> Option<Split> {
    match split?.trim().to_ascii_lowercase().as_str() {
        "train" | "training" => Some(Split::Train),
        "val" | "valid" | "validation" | "dev" => Some(Split::Val),
        "test" => Some(Split::Test),
        _ => None,
    }
}

fn label_of(item: &TrainingItem) -> (Option<bool>, bool) {
    match item.human {
        Some(Verdict::Fake) => (Some(true), true),
        Some(Verdict::Real) => (Some(false), true),
        // A person said neither: the item is not a training example either way.
        Some(Verdict::Other) => (None, true),
        None => match item.gold {
            Some(Verdict::Fake) => (Some(true), false),
            Some(Verdict::Real) => (Some(false), false),
            _ => (None, false),
        },
    }
}

/// What a split is grouped by: a field (an imported column, or `source`), or `FIELD~REGEX`: the part of the field's
/// value the regular expression picks (its first capture group, else its whole match; a value it does not match
/// is its own group). `image_id~^[^_]+` groups twitter-qwen's posts by event (`nepal_25` → `nepal`), not by image.
#[derive(Clone, Debug)]
pub struct GroupKey {
    pub field: String,
    pub pattern: Option<regex::Regex>,
}

impl GroupKey {
    /// Reads `FIELD` or `FIELD~REGEX`; the error says what is wrong with it.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let (field, pattern) = match spec.split_once('~') {
            Some((f, p)) => (f.trim(), Some(p)),
            None => (spec.trim(), None),
        };
        if field.is_empty() {
            return Err(format!("{spec:?}: no field to group by (FIELD or FIELD~REGEX)"));
        }
        let pattern = pattern
            .map(|p| regex::Regex::new(p).map_err(|e| format!("{spec:?}: bad regular expression: {e}")))
            .transpose()?;
        Ok(Self { field: field.to_owned(), pattern })
    }

    /// The group of `item`: its field's value, or the part the pattern picks; `None` when it has no value.
    pub fn value(&self, item: &TrainingItem) -> Option<String> {
        let value = item.field(&self.field)?;
        let Some(re) = &self.pattern else { return Some(value) };
        Some(match re.captures(&value) {
            Some(c) => c.get(1).or_else(|| c.get(0)).map_or(value.clone(), |m| m.as_str().to_owned()),
            None => value,
        })
    }
}

/// The group key that means "hash the item's text" (the built-in default), overriding a project's setting.
pub const TEXT_GROUP: &str = "text";

/// The key a run splits by: the one asked for (`TEXT_GROUP`: none, the text), else the project's setting
/// (`Store::split_group_by`), else none.
pub fn resolve_group_by(requested: Option<&str>, project: Option<String>) -> Option<String> {
    match requested.map(str::trim) {
        Some(TEXT_GROUP) => None,
        Some(key) => Some(key.to_owned()),
        None => project,
    }
}

/// `--group-by`'s value parser: the spec as given, once [`GroupKey::parse`] accepts it.
pub fn check_group_key(spec: &str) -> Result<String, String> {
    GroupKey::parse(spec).map(|_| spec.to_owned())
}

/// The groups that form the validation split when a group key divides train from val: per class (a group's
/// majority gold label; unlabelled groups are a class of their own), groups in the order of their hash are taken
/// until val holds 15% of that class's items, skipping a group that would take it past 1.5 times that share (one
/// huge event stays in train rather than become most of val). A plain hash of 15% of the groups would leave val
/// with whatever classes its few groups happen to have: on twitter-qwen's val file (63 images, each one class),
/// 172 real posts and 4 fake ones. Gold labels, not people's verdicts, so a split never moves as people judge.
fn stratified_val_groups(
    items: &[&TrainingItem],
    group_of: &dyn Fn(&TrainingItem) -> String,
) -> std::collections::HashSet<String> {
    use std::collections::{BTreeMap, HashMap};
    // group -> (items per class: real, fake, unlabelled)
    let mut counts: HashMap<String, [usize; 3]> = HashMap::new();
    for item in items {
        let class = match item.gold {
            Some(Verdict::Real) => 0,
            Some(Verdict::Fake) => 1,
            _ => 2,
        };
        counts.entry(group_of(item)).or_default()[class] += 1;
    }
    // class -> groups (hash, name, size)
    let mut by_class: BTreeMap<usize, Vec<(u64, String, usize)>> = BTreeMap::new();
    for (group, c) in counts {
        let class = (0..3).max_by_key(|&k| (c[k], std::cmp::Reverse(k))).expect("three classes");
        let digest = Sha256::digest(group.as_bytes());
        let h = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        by_class.entry(class).or_default().push((h, group, c.iter().sum()));
    }
    let mut val = std::collections::HashSet::new();
    for (_, mut groups) in by_class {
        groups.sort();
        let total: usize = groups.iter().map(|g| g.2).sum();
        let target = total as f64 * 0.15;
        let mut taken = 0usize;
        for (_, group, size) in groups {
            if taken as f64 >= target {
                break;
            }
            if (taken + size) as f64 <= (target * 1.5).max(1.0) {
                taken += size;
                val.insert(group);
            }
        }
    }
    val
}

/// Builds one example per item, with `perspectives` in that order; splits hashed over each item's text.
pub fn build(items: &[TrainingItem], perspectives: &[String]) -> (Vec<Example>, DataSnapshot) {
    build_grouped(items, perspectives, None)
}

/// [`build`], with the splits the data does not name hashed over the items' value of `group_by` (see the module
/// head) when it is given.
pub fn build_grouped(
    items: &[TrainingItem],
    perspectives: &[String],
    group_by: Option<&str>,
) -> (Vec<Example>, DataSnapshot) {
    let explicit: Vec<Option<Split>> = items.iter().map(|i| explicit_split(i.split.as_deref())).collect();
    let any_train = explicit.contains(&Some(Split::Train));
    let any_test = explicit.contains(&Some(Split::Test));
    let mut snapshot = DataSnapshot {
        items: items.len(),
        perspectives: perspectives.to_vec(),
        rationales: vec![0; perspectives.len()],
        group_by: group_by.map(str::to_owned),
        ..Default::default()
    };
    let mut groups: [std::collections::HashSet<String>; 3] = Default::default();
    let key = group_by.map(|spec| {
        GroupKey::parse(spec).unwrap_or_else(|err| {
            // The command line and the studio check the key first; a bad one stored elsewhere groups by the field.
            tracing::warn!("group key {spec:?}: {err}; grouping by the field as a whole");
            GroupKey { field: spec.split('~').next().unwrap_or(spec).to_owned(), pattern: None }
        })
    });
    // The group of each item: its value of the key, marked so that it cannot collide with a text; an item without
    // one is its own group.
    let group_of = |item: &TrainingItem| -> String {
        let group = key.as_ref().and_then(|key| key.value(item));
        group.map_or_else(|| format!("text\u{0}{}", item.news_text()), |g| format!("group\u{0}{g}"))
    };
    // Items divided into train and val by the hash (the data names no train split).
    let divided = |explicit: Option<Split>| match explicit {
        Some(Split::Val) => !any_train,
        None => any_test,
        _ => false,
    };
    let val_groups = group_by.map(|_| {
        let divided: Vec<&TrainingItem> =
            items.iter().zip(&explicit).filter(|(_, e)| divided(**e)).map(|(i, _)| i).collect();
        stratified_val_groups(&divided, &group_of)
    });
    let mut examples = Vec::with_capacity(items.len());
    for (item, explicit) in items.iter().zip(explicit) {
        let news = item.news_text();
        if key.as_ref().is_some_and(|key| key.value(item).is_none()) {
            snapshot.ungrouped += 1;
        }
        let group = group_of(item);
        let h = if group_by.is_some() { hash_percent(&group) } else { hash_percent(&news) };
        let train_or_val = || match &val_groups {
            Some(val) if val.contains(&group) => Split::Val,
            Some(_) => Split::Train,
            None if h < 85 => Split::Train,
            None => Split::Val,
        };
        let split = match explicit {
            Some(Split::Val) if !any_train => train_or_val(),
            Some(s) => s,
            None if any_test => train_or_val(),
            None => match h {
                0..70 => Split::Train,
                70..85 => Split::Val,
                _ => Split::Test,
            },
        };
        let (fake, human) = label_of(item);
        let mut rationales = Vec::with_capacity(perspectives.len());
        for (k, perspective) in perspectives.iter().enumerate() {
            // The newest chain of this perspective (an item may hold several, e.g. from two models).
            let Some(r) = item.rationales.iter().rev().find(|r| &r.perspective == perspective) else {
                rationales.push(RationaleTarget { text: String::new(), present: false, r_pred: 2, r_acc: 0.0 });
                continue;
            };
            snapshot.rationales[k] += 1;
            if r.revision > 1 {
                snapshot.corrected_rationales += 1;
            }
            let r_pred = r.verdict.map(|v| v.arg_code() as u32).unwrap_or(2);
            let r_acc = match r.usefulness {
                Some(u) => {
                    snapshot.usefulness_feedback += 1;
                    (u == Usefulness::Useful) as u8 as f32
                }
                None => match (fake, r.verdict) {
                    (Some(fake), Some(v)) => (v == if fake { Verdict::Fake } else { Verdict::Real }) as u8 as f32,
                    _ => 0.0,
                },
            };
            rationales.push(RationaleTarget { text: r.text.clone(), present: true, r_pred, r_acc });
        }
        if fake.is_some() {
            snapshot.labelled += 1;
            match split {
                Split::Train => snapshot.train += 1,
                Split::Val => snapshot.val += 1,
                Split::Test => snapshot.test += 1,
            }
            if group_by.is_some() {
                groups[split as usize].insert(group);
            }
        }
        if human && fake.is_some() {
            snapshot.human_labels += 1;
            let gold = item.gold.filter(|g| *g != Verdict::Other).map(|g| g == Verdict::Fake);
            if gold.is_some() && gold != fake {
                snapshot.human_overrides += 1;
            }
        }
        examples.push(Example { item: item.id, news, fake, human, split, rationales });
    }
    [snapshot.groups_train, snapshot.groups_val, snapshot.groups_test] = groups.map(|g| g.len());
    (examples, snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::guidance::TrainingRationale;

    fn item(id: i64, gold: Option<Verdict>, human: Option<Verdict>, split: Option<&str>) -> TrainingItem {
        TrainingItem {
            id,
            title: None,
            text: format!("claim number {id}"),
            gold,
            split: split.map(str::to_owned),
            source: None,
            metadata: serde_json::json!({}),
            human,
            judgements: human.is_some() as usize,
            judged_at: None,
            rationales: Vec::new(),
        }
    }

    fn rationale(
        p: &str,
        verdict: Option<Verdict>,
        revision: u32,
        usefulness: Option<Usefulness>,
    ) -> TrainingRationale {
        TrainingRationale { perspective: p.into(), text: format!("{p} r{revision}"), verdict, revision, usefulness }
    }

    #[test]
    fn human_verdict_overrides_the_label_and_other_unlabels() {
        let items = [
            item(1, Some(Verdict::Real), Some(Verdict::Fake), None),
            item(2, Some(Verdict::Fake), None, None),
            item(3, Some(Verdict::Fake), Some(Verdict::Other), None),
            item(4, None, None, None),
        ];
        let (ex, snap) = build(&items, &[]);
        assert_eq!(ex.iter().map(|e| e.fake).collect::<Vec<_>>(), [Some(true), Some(true), None, None]);
        assert!(ex[0].human && !ex[1].human);
        assert_eq!((snap.labelled, snap.human_labels, snap.human_overrides), (2, 1, 1));
    }

    #[test]
    fn feedback_and_corrections_override_rationale_targets() {
        let mut it = item(1, Some(Verdict::Fake), None, None);
        it.rationales = vec![
            // Says fake (right) but a person found it misleading: r_acc 0.
            rationale("td", Some(Verdict::Fake), 1, Some(Usefulness::Misleading)),
            // Corrected to real (wrong for a fake item), no feedback: r_pred 0, r_acc 0, revised text.
            rationale("cs", Some(Verdict::Real), 2, None),
        ];
        let persp = vec!["td".to_owned(), "cs".to_owned(), "fc".to_owned()];
        let (ex, snap) = build(&[it], &persp);
        let r = &ex[0].rationales;
        assert_eq!((r[0].r_pred, r[0].r_acc), (1, 0.0));
        assert_eq!((r[1].r_pred, r[1].r_acc, r[1].text.as_str()), (0, 0.0, "cs r2"));
        assert!(!r[2].present && r[2].text.is_empty() && r[2].r_pred == 2);
        assert_eq!((snap.usefulness_feedback, snap.corrected_rationales), (1, 1));
        assert_eq!(snap.rationales, [1, 1, 0]);
    }

    #[test]
    fn useful_feedback_sets_r_acc_even_for_a_wrong_verdict() {
        let mut it = item(1, Some(Verdict::Fake), None, None);
        it.rationales = vec![rationale("td", Some(Verdict::Real), 1, Some(Usefulness::Useful))];
        let (ex, _) = build(&[it], &["td".to_owned()]);
        assert_eq!(ex[0].rationales[0].r_acc, 1.0);
    }

    #[test]
    fn splits_are_stable_and_follow_the_data() {
        let items: Vec<_> = (0..200).map(|i| item(i, Some(Verdict::Real), None, None)).collect();
        let (a, snap) = build(&items, &[]);
        assert!(snap.train > 100 && snap.val > 10 && snap.test > 10, "{snap:?}");
        // Judging an item does not move it.
        let mut judged = items.clone();
        judged[5].human = Some(Verdict::Fake);
        let (b, _) = build(&judged, &[]);
        assert!(a.iter().zip(&b).all(|(x, y)| x.split == y.split));
        // LIAR2's public files: valid + test. Test stays test; valid is divided into train and val.
        let items: Vec<_> =
            (0..100).map(|i| item(i, Some(Verdict::Real), None, Some(if i < 50 { "valid" } else { "test" }))).collect();
        let (ex, snap) = build(&items, &[]);
        assert!(ex[50..].iter().all(|e| e.split == Split::Test));
        assert!(snap.train > 30 && snap.val > 0 && snap.test == 50, "{snap:?}");
    }

    #[test]
    fn a_group_key_keeps_every_item_of_a_group_in_one_split() {
        // 300 posts about 30 events (10 each), the file naming only val (twitter-qwen's val file, LIAR2's valid):
        // train and val are hashed from it, by text or by event.
        let mut items: Vec<_> = (0..300)
            .map(|i| {
                let mut it = item(i, Some(if i % 3 == 0 { Verdict::Fake } else { Verdict::Real }), None, Some("val"));
                it.metadata = serde_json::json!({ "image_id": format!("event{}", i / 10), "n": i / 10 });
                it
            })
            .collect();
        items.push(item(300, Some(Verdict::Real), None, Some("val"))); // no image_id: a group of its own
        let straddling = |ex: &[Example], key: &dyn Fn(usize) -> String| {
            let mut seen: std::collections::HashMap<String, Split> = std::collections::HashMap::new();
            ex[..300].iter().enumerate().filter(|(i, e)| *seen.entry(key(*i)).or_insert(e.split) != e.split).count()
        };
        let event = |i: usize| format!("event{}", i / 10);
        let (by_text, snap) = build(&items, &[]);
        assert!(straddling(&by_text, &event) > 0, "hashing texts splits events across train and val");
        assert_eq!((snap.group_by, snap.groups_train, snap.ungrouped), (None, 0, 0));

        let (by_event, snap) = build_grouped(&items, &[], Some("image_id"));
        assert_eq!(straddling(&by_event, &event), 0, "no event is in both train and val");
        assert_eq!(snap.group_by.as_deref(), Some("image_id"));
        assert_eq!(snap.groups_train + snap.groups_val + snap.groups_test, 31, "{snap:?}");
        assert!(snap.groups_train > 15 && snap.groups_val > 0 && snap.groups_test == 0, "{snap:?}");
        assert!((40..=70).contains(&snap.val), "about 15% of the items in val: {snap:?}");
        assert_eq!(snap.ungrouped, 1);
        assert_eq!((snap.train + snap.val, snap.test), (301, 0));
        // FIELD~REGEX groups by the part the expression picks: here, ten events of three image ids each.
        for (i, it) in items.iter_mut().enumerate().take(300) {
            it.metadata["photo"] = serde_json::json!(format!("ev{}_img{}", i / 30, i / 10));
        }
        let (by_prefix, snap) = build_grouped(&items, &[], Some("photo~^([^_]+)_"));
        assert_eq!(straddling(&by_prefix, &|i| format!("ev{}", i / 30)), 0);
        assert_eq!(snap.groups_train + snap.groups_val, 11, "ten events and the item without a photo: {snap:?}");
        assert!(GroupKey::parse("photo~(").unwrap_err().contains("bad regular expression"));
        assert!(GroupKey::parse("~x").unwrap_err().contains("no field"));
        // A number works as a key as well as a string, and gives the same grouping.
        let (by_number, _) = build_grouped(&items, &[], Some("n"));
        assert_eq!(straddling(&by_number, &event), 0);
        // `source` is a key too; a key nobody has leaves every item its own group (the text hash's grouping).
        let (by_missing, snap) = build_grouped(&items, &[], Some("no_such_column"));
        assert_eq!(snap.ungrouped, 301);
        assert_eq!(snap.groups_train + snap.groups_val, 301);
        assert!(by_missing.iter().zip(&by_text).all(|(a, b)| a.item == b.item));
    }

    #[test]
    fn a_group_split_gives_val_its_share_of_each_class_and_leaves_a_huge_group_in_train() {
        // Twitter's shape: every image one class; one real image holds 40% of the posts.
        let mut items = Vec::new();
        let mut add = |image: String, fake: bool, n: usize| {
            for _ in 0..n {
                let id = items.len() as i64;
                let mut it = item(id, Some(if fake { Verdict::Fake } else { Verdict::Real }), None, Some("val"));
                it.text = format!("post {id}");
                it.metadata = serde_json::json!({ "image_id": image });
                items.push(it);
            }
        };
        add("huge_real".into(), false, 400);
        for k in 0..30 {
            add(format!("real_{k}"), false, 10);
            add(format!("fake_{k}"), true, 13);
        }
        let (ex, snap) = build_grouped(&items, &[], Some("image_id"));
        let val_of = |fake: bool| ex.iter().filter(|e| e.split == Split::Val && e.fake == Some(fake)).count();
        let (real_total, fake_total) = (700.0, 390.0);
        for (fake, total) in [(false, real_total), (true, fake_total)] {
            let share = val_of(fake) as f64 / total;
            assert!((0.12..=0.23).contains(&share), "val holds {share:.2} of class fake={fake}: {snap:?}");
        }
        assert!(ex[..400].iter().all(|e| e.split == Split::Train), "the huge image stays in train");
        // The same data gives the same split.
        assert_eq!(build_grouped(&items, &[], Some("image_id")).0, ex);
    }

    #[test]
    fn perspectives_follow_the_configured_order() {
        let mut it = item(1, None, None, None);
        it.rationales =
            vec![rationale("zz", None, 1, None), rationale("cs", None, 1, None), rationale("td", None, 1, None)];
        let order = vec!["td".to_owned(), "cs".to_owned()];
        assert_eq!(perspectives_present(&[it], &order), ["td", "cs", "zz"]);
    }
}
