//! Training the guidance models end to end on a real (small) database and the real demo encoder: versions,
//! reproducibility, incremental retrains with people's feedback, distillation, roll back, bad weights files, CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use argus::domain::ModelKind;
use argus::domain::{NewJudgement, Verdict};
use argus::guidance::train::{TrainOptions, TrainRequest, eval, news_attention, predict, train};
use argus::jobs::NoProgress;
use argus::store::Store;

use super::models::model;

/// A database of the first `n` demo items (LIAR2 claims with their justification as a `human` rationale).
pub(super) fn small_db(dir: &Path, n: usize) -> PathBuf {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo/liar2-sample.csv");
    let mut reader = csv::Reader::from_path(&demo).unwrap();
    let subset = dir.join("small.csv");
    let mut writer = csv::Writer::from_path(&subset).unwrap();
    writer.write_record(reader.headers().unwrap()).unwrap();
    for rec in reader.records().take(n) {
        writer.write_record(&rec.unwrap()).unwrap();
    }
    writer.flush().unwrap();
    let db = dir.join("small.db");
    let mut store = Store::open(&db).unwrap();
    argus::ingest::import_files(&mut store, &[subset], &Default::default(), &NoProgress).unwrap();
    db
}

/// Short texts and few epochs: these tests check behaviour, not quality.
pub(super) fn request(kind: ModelKind, seed: u64) -> TrainRequest {
    let encoder = model(argus::models::catalog::DEMO_ENCODER);
    TrainRequest {
        encoder: encoder.display().to_string(),
        options: TrainOptions { seed, max_epochs: 2, max_len: 32, batch_size: 16, ..TrainOptions::default() },
        ..TrainRequest::new(kind)
    }
}

#[test]
fn a_seeded_run_is_reproducible_and_becomes_a_version_with_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 60);
    let mut epochs_seen = 0;
    let a = train(&db, &request(ModelKind::Arg, 7), &NoProgress, &mut |_| epochs_seen += 1).unwrap();
    let b = train(&db, &request(ModelKind::Arg, 7), &NoProgress, &mut |_| {}).unwrap();
    assert_eq!(epochs_seen, a.epochs.len());
    assert_eq!(a.snapshot.perspectives, ["human"]);
    assert!(a.encoded_texts > 0 && b.encoded_texts == 0, "the second run reads every frozen feature from the cache");
    // Same seed, same data: the same losses, metrics and predictions.
    let losses = |r: &argus::guidance::train::TrainReport| r.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b));
    assert_eq!(a.test, b.test);
    let store = Store::open(&db).unwrap();
    let (pa, pb) = (store.predictions(a.version).unwrap(), store.predictions(b.version).unwrap());
    assert_eq!(pa.len(), 60);
    assert_eq!(pa, pb);
    let p = pa.values().next().unwrap();
    assert!((0.0..=1.0).contains(&p.p_fake));
    assert_eq!(p.gates.len(), 1, "one trust value per perspective: {p:?}");
    assert_eq!(p.usefulness.len(), 1);
    // Versions: both stored, the newest in use, the weights file matches its checksum, metrics on the test split.
    let versions = store.model_versions().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(store.active_version(ModelKind::Arg).unwrap(), Some(b.version));
    let v = &versions[0];
    let bytes = std::fs::read(v.weights_path.as_ref().unwrap()).unwrap();
    use sha2::Digest;
    assert_eq!(format!("{:x}", sha2::Sha256::digest(&bytes)), v.weights_sha256.clone().unwrap());
    assert_eq!(v.metrics["test"]["n"].as_u64().unwrap() as usize, a.snapshot.test);
    assert_eq!(store.version_epochs(a.version).unwrap().as_array().unwrap().len(), a.epochs.len());
    // Evaluating the stored version gives the metrics the run reported.
    let m = eval(&db, a.version, argus::models::DeviceChoice::Cpu, &NoProgress).unwrap();
    assert!((m.macro_f1 - a.test.macro_f1).abs() < 1e-9 && m.n == a.test.n);
    // A different seed trains differently.
    let c = train(&db, &request(ModelKind::Arg, 8), &NoProgress, &mut |_| {}).unwrap();
    assert_ne!(losses(&a), losses(&c));
    // Roll back: the older version is in use again; nothing is deleted.
    store.set_active_version(a.version).unwrap();
    assert_eq!(store.active_version(ModelKind::Arg).unwrap(), Some(a.version));
    assert_eq!(store.model_versions().unwrap().len(), 3);

    // ARG's attention over the news tokens: a distribution over the item's (truncated) tokens, each with its
    // character span in the item's text.
    let item = store.item(1).unwrap();
    let weights = news_attention(&db, a.version, 1, argus::models::DeviceChoice::Cpu, &NoProgress).unwrap();
    assert!(!weights.is_empty() && weights.len() <= 30, "at most 32 tokens, less [CLS] and [SEP]");
    let total: f64 = weights.iter().map(|w| w.weight).sum();
    assert!(total > 0.0 && total <= 1.0 + 1e-4, "a share of one softmax (the rest is on [CLS]/[SEP]): {total}");
    let chars: Vec<char> = item.text.chars().collect();
    for w in &weights {
        let token: String = chars[w.start..w.end].iter().collect();
        assert!(!token.trim().is_empty() && w.weight >= 0.0, "{w:?}");
    }
    assert!(weights.windows(2).all(|p| p[0].end <= p[1].start), "spans in reading order");
    let err = news_attention(&db, 999, 1, argus::models::DeviceChoice::Cpu, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("999"), "{err}");

    // A repair of item 1's rationale is re-scored by the ARG version in use.
    drop(store);
    let mut store = Store::open(&db).unwrap();
    let rationale = store.rationales(1).unwrap()[0].id;
    let annotator = store.annotator_id("ada").unwrap();
    let form = argus::domain::NewFeedback {
        rationale_id: rationale,
        annotator_id: annotator,
        format: "free-text".into(),
        fb_what: Some("It ignores who paid.".into()),
        ..Default::default()
    };
    let feedback = store.save_feedback_form(&form).unwrap();
    let mut model =
        super::formats::Scripted::new("scripted", &["Obama took money from oil industry employees.", "fake"]);
    let mut rescore = argus::guidance::train::rescorer(store.path(), argus::models::DeviceChoice::Cpu);
    let outcome = argus::formats::repair::apply_feedback(
        &mut store,
        &mut model,
        feedback,
        Some(&mut rescore),
        &NoProgress,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(outcome.rescore_note, None);
    let (before, after) = (outcome.p_fake_before.unwrap(), outcome.p_fake_after.unwrap());
    assert!((0.0..=1.0).contains(&before) && (0.0..=1.0).contains(&after));
    assert_eq!(store.prediction(a.version, 1).unwrap().unwrap().p_fake, after, "the stored prediction is the new one");
    let repair = store.repair_producing(outcome.repaired_rationale).unwrap().unwrap().repair;
    assert_eq!((repair.model_version_id, repair.p_fake_after), (Some(a.version), Some(after)));
}

#[test]
fn an_incremental_retrain_starts_from_its_parent_and_learns_from_people() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 50);
    let first = train(&db, &request(ModelKind::Bert, 1), &NoProgress, &mut |_| {}).unwrap();
    // Two annotators disagree with the gold label on 10 items; on one more they split and an adjudicator decides.
    let store = Store::open(&db).unwrap();
    let items = store.training_items().unwrap();
    let (ann, other, judge) =
        (store.annotator_id("ann").unwrap(), store.annotator_id("bob").unwrap(), store.annotator_id("adj").unwrap());
    let flip = |v: Option<Verdict>| if v == Some(Verdict::Fake) { Verdict::Real } else { Verdict::Fake };
    for item in items.iter().take(10) {
        for who in [ann, other] {
            let j = NewJudgement {
                item_id: item.id,
                annotator_id: who,
                verdict: flip(item.gold),
                confidence: None,
                note: None,
                time_spent_ms: 1,
            };
            store.record_judgement(&j).unwrap();
        }
    }
    let split = &items[10];
    for (who, verdict) in [(ann, Verdict::Fake), (other, Verdict::Real)] {
        let j = NewJudgement {
            item_id: split.id,
            annotator_id: who,
            verdict,
            confidence: None,
            note: None,
            time_spent_ms: 1,
        };
        store.record_judgement(&j).unwrap();
    }
    let j = NewJudgement {
        item_id: split.id,
        annotator_id: judge,
        verdict: flip(split.gold),
        confidence: None,
        note: None,
        time_spent_ms: 1,
    };
    let id = store.record_judgement(&j).unwrap();
    store.connection().execute("UPDATE judgements SET adjudicated = 1 WHERE id = ?1", [id]).unwrap();
    drop(store);
    let again = train(
        &db,
        &TrainRequest { from: Some(first.version), ..request(ModelKind::Bert, 1) },
        &NoProgress,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(again.parent, Some(first.version));
    assert_eq!(again.snapshot.human_labels, 11);
    assert_eq!(again.snapshot.human_overrides, 11, "{:?}", again.snapshot);
    // It trains on everything labelled, not only the new judgements.
    assert_eq!(again.snapshot.train + again.snapshot.val + again.snapshot.test, 50);
    let store = Store::open(&db).unwrap();
    let v = store.model_version(again.version).unwrap();
    assert_eq!(v.parent_id, Some(first.version));
    assert_eq!(v.data_snapshot["human_labels"], 11);
    // A parent of another kind is refused.
    let err =
        train(&db, &TrainRequest { from: Some(first.version), ..request(ModelKind::Arg, 1) }, &NoProgress, &mut |_| {})
            .unwrap_err();
    assert!(err.to_string().contains("is bert, not arg"), "{err}");
}

/// Judgements by `who` that flip the gold label of the first `n` items.
fn flip_first(db: &Path, who: &str, n: usize) {
    let store = Store::open(db).unwrap();
    let annotator = store.annotator_id(who).unwrap();
    for item in store.training_items().unwrap().iter().take(n) {
        let verdict = if item.gold == Some(Verdict::Fake) { Verdict::Real } else { Verdict::Fake };
        let j = NewJudgement {
            item_id: item.id,
            annotator_id: annotator,
            verdict,
            confidence: None,
            note: None,
            time_spent_ms: 1,
        };
        store.record_judgement(&j).unwrap();
    }
}

fn quick(kind: ModelKind, seed: u64) -> TrainRequest {
    let full = request(kind, seed);
    TrainRequest {
        options: TrainOptions { seed, max_len: 32, batch_size: 16, max_epochs: 5, ..TrainOptions::quick() },
        ..full
    }
}

#[test]
fn a_quick_retrain_trains_only_the_head_on_cached_inputs_and_its_predictions_match_the_full_path() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 60);
    let err = train(&db, &quick(ModelKind::Arg, 0), &NoProgress, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("there is none yet"), "{err}");
    let first = train(&db, &request(ModelKind::Arg, 0), &NoProgress, &mut |_| {}).unwrap();
    flip_first(&db, "ann", 15);
    // From the version in use (the first), on the head inputs the full run cached: no encoder work at all.
    let a = train(&db, &quick(ModelKind::Arg, 3), &NoProgress, &mut |_| {}).unwrap();
    assert_eq!(a.parent, Some(first.version));
    assert_eq!((a.encoded_texts, a.head_inputs_computed), (0, 0), "every input came from the cache");
    assert_eq!(a.snapshot.human_labels, 15);
    // (`a` is in use now: start from the first version again.)
    let b =
        train(&db, &TrainRequest { from: Some(first.version), ..quick(ModelKind::Arg, 3) }, &NoProgress, &mut |_| {})
            .unwrap();
    let losses = |r: &argus::guidance::train::TrainReport| r.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b), "reproducible per seed");
    // Only the head moved: the encoder's top layers and the cross-attentions are the parent's, bit for bit.
    let store = Store::open(&db).unwrap();
    let weights = |v: i64| {
        let path = store.model_version(v).unwrap().weights_path.unwrap();
        candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap()
    };
    let (parent, child) = (weights(first.version), weights(a.version));
    let same = |name: &str| {
        let d = (&parent[name] - &child[name]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        d == 0.0
    };
    let fixed: Vec<&String> = parent
        .keys()
        .filter(|k| k.starts_with("bert_") || k.starts_with("cross_attention") || k.starts_with("content_attention"))
        .collect();
    assert!(!fixed.is_empty() && fixed.iter().all(|k| same(k)), "the fixed part is the parent's");
    assert!(!same("mlp.mlp.0.weight") && !same("aggregator.attention_layer.weight"), "the head trained");
    // What the quick path predicted and stored equals the full model run from frozen outputs (half-precision cache).
    let stored = store.predictions(a.version).unwrap();
    drop(store);
    predict(&db, a.version, argus::models::DeviceChoice::Cpu, &NoProgress).unwrap();
    let recomputed = Store::open(&db).unwrap().predictions(a.version).unwrap();
    assert_eq!(stored.len(), 60);
    for (item, p) in &stored {
        let q = &recomputed[item];
        assert!((p.p_fake - q.p_fake).abs() < 5e-3, "item {item}: {} vs {}", p.p_fake, q.p_fake);
        assert!((p.gates[0].1 - q.gates[0].1).abs() < 5e-3);
    }
    // A quick retrain of a quick version shares the same cached inputs; a corrected rationale is computed again.
    let mut store = Store::open(&db).unwrap();
    let rationale = store.rationales(1).unwrap()[0].id;
    store
        .revise_rationale(
            rationale,
            "A corrected rationale: the claim is false.",
            Some(Verdict::Fake),
            argus::domain::RationaleOrigin::Human,
            None,
        )
        .unwrap();
    drop(store);
    let c = train(&db, &TrainRequest { from: Some(a.version), ..quick(ModelKind::Arg, 3) }, &NoProgress, &mut |_| {})
        .unwrap();
    assert_eq!(c.parent, Some(a.version));
    assert_eq!(c.head_inputs_computed, 1, "only the item whose rationale changed");
    // BERT-only and ARG-D have quick retrains too.
    train(&db, &request(ModelKind::Bert, 0), &NoProgress, &mut |_| {}).unwrap();
    let q = train(&db, &quick(ModelKind::Bert, 0), &NoProgress, &mut |_| {}).unwrap();
    assert_eq!((q.encoded_texts, q.head_inputs_computed), (0, 0));
}

#[test]
fn the_online_learner_moves_predictions_toward_new_judgements_and_checkpoints_a_version() {
    use argus::guidance::online::{OnlineLearner, OnlineOptions};
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 60);
    let first = train(&db, &request(ModelKind::Arg, 0), &NoProgress, &mut |_| {}).unwrap();
    let options = OnlineOptions { steps: 20, batch: 16, checkpoint_every: 2, ..OnlineOptions::default() };
    let mut learner =
        OnlineLearner::open(&db, ModelKind::Arg, argus::models::DeviceChoice::Cpu, options, &NoProgress).unwrap();
    assert_eq!(learner.base_version(), first.version);
    let before = Store::open(&db).unwrap().predictions(first.version).unwrap();
    // People say the opposite of the gold label on 20 items.
    flip_first(&db, "ann", 20);
    let update = learner.update(&NoProgress).unwrap();
    assert_eq!(update.version, first.version);
    // A learner opened after the judgements learns from them too (they are newer than its version).
    let mut late = OnlineLearner::open(
        &db,
        ModelKind::Arg,
        argus::models::DeviceChoice::Cpu,
        OnlineOptions { checkpoint_every: 100, ..OnlineOptions::default() },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(late.update(&NoProgress).unwrap().new_labels, update.new_labels);
    assert!(update.new_labels > 0 && update.new_labels <= 20, "only training items train: {}", update.new_labels);
    assert_eq!(update.steps, 20);
    assert_eq!(update.predictions.len(), 60);
    assert_eq!(update.checkpoint, None, "not yet: every second update");
    // On the items people relabelled, P(fake) moved toward their label.
    let store = Store::open(&db).unwrap();
    let relabelled: Vec<_> = store.training_items().unwrap().into_iter().take(20).collect();
    let mut toward = 0.0;
    for item in &relabelled {
        let after = update.predictions.iter().find(|p| p.item_id == item.id).unwrap().p_fake;
        let sign = if item.human == Some(Verdict::Fake) { 1.0 } else { -1.0 };
        toward += sign * (after - before[&item.id].p_fake);
    }
    assert!(toward > 0.0, "mean move toward people's labels: {toward}");
    // Nothing new: no steps, the same predictions; and the second update saves a version in use.
    let again = learner.update(&NoProgress).unwrap();
    assert_eq!((again.new_labels, again.steps), (0, 0));
    for (a, b) in again.predictions.iter().zip(&update.predictions) {
        assert!((a.p_fake - b.p_fake).abs() < 1e-6);
    }
    let saved = again.checkpoint.expect("the second update checkpoints");
    assert_eq!(learner.base_version(), saved);
    let v = store.model_version(saved).unwrap();
    assert_eq!(v.parent_id, Some(first.version));
    assert_eq!(v.config["online_updates"], 2);
    assert_eq!(store.active_version(ModelKind::Arg).unwrap(), Some(saved));
    assert_eq!(store.predictions(saved).unwrap().len(), 60);
    // A checkpoint with nothing new saves nothing.
    assert_eq!(learner.checkpoint(&NoProgress).unwrap(), None);
    // Another version put in use meanwhile (a roll back): the online state is not saved over it.
    flip_first(&db, "bob", 5);
    learner.update(&NoProgress).unwrap();
    Store::open(&db).unwrap().set_active_version(first.version).unwrap();
    assert_eq!(learner.checkpoint(&NoProgress).unwrap(), None);
    assert_eq!(Store::open(&db).unwrap().active_version(ModelKind::Arg).unwrap(), Some(first.version));
    // The saved version loads and predicts through the full path like the learner did.
    drop(store);
    predict(&db, saved, argus::models::DeviceChoice::Cpu, &NoProgress).unwrap();
    let full = Store::open(&db).unwrap().predictions(saved).unwrap();
    for p in &again.predictions {
        assert!((full[&p.item_id].p_fake - p.p_fake).abs() < 5e-3);
    }
}

#[test]
fn simulate_replays_gold_labels_by_strategy_reproducibly_and_writes_nothing() {
    use argus::guidance::simulate::{SimulateRequest, simulate};
    use argus::guidance::triage::Order;
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 60);
    let request = SimulateRequest {
        kind: ModelKind::Arg,
        strategies: vec![Order::Uncertainty, Order::Random],
        labels: vec![8, 16, 1000],
        seeds: vec![0, 1],
        encoder: request(ModelKind::Arg, 0).encoder,
        options: TrainOptions { max_len: 32, ..TrainOptions::default() },
        ..SimulateRequest::default()
    };
    let a = simulate(&db, &request, &NoProgress).unwrap();
    // 2 strategies x 2 seeds x 2 label counts (1,000 is more than the pool holds: left out).
    assert_eq!(a.points.len(), 8, "{:?}", a.points);
    assert!(a.points.iter().all(|p| (0.0..=1.0).contains(&p.macro_f1) && [8, 16].contains(&p.labels)));
    assert_eq!(a.scored_on, "test");
    let b = simulate(&db, &request, &NoProgress).unwrap();
    assert_eq!(a.points, b.points, "the same seeds replay the same curves");
    let curves = a.curves();
    assert_eq!(curves.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["uncertainty", "random"]);
    assert!(a.to_string().contains("uncertainty"));
    let store = Store::open(&db).unwrap();
    assert!(store.model_versions().unwrap().is_empty(), "a simulation stores no version");
    assert_eq!(store.training_items().unwrap().iter().filter(|i| i.human.is_some()).count(), 0);
}

#[test]
fn argd_distils_from_an_arg_version_and_predicts_without_rationales() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 40);
    let err = train(&db, &request(ModelKind::Argd, 0), &NoProgress, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("train ARG first"), "{err}");
    let teacher = train(&db, &request(ModelKind::Arg, 0), &NoProgress, &mut |_| {}).unwrap();
    let student = train(&db, &request(ModelKind::Argd, 0), &NoProgress, &mut |_| {}).unwrap();
    let store = Store::open(&db).unwrap();
    let v = store.model_version(student.version).unwrap();
    assert_eq!(v.config["teacher"], teacher.version);
    // The student predicts items that have no rationale at all.
    store.connection().execute("UPDATE rationales SET retracted_at = 'now'", []).unwrap();
    drop(store);
    assert_eq!(predict(&db, student.version, argus::models::DeviceChoice::Cpu, &NoProgress).unwrap(), 40);
}

#[test]
fn a_changed_weights_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 30);
    let r = train(
        &db,
        &TrainRequest {
            options: TrainOptions { max_epochs: 1, ..request(ModelKind::Bert, 0).options },
            ..request(ModelKind::Bert, 0)
        },
        &NoProgress,
        &mut |_| {},
    )
    .unwrap();
    let path = PathBuf::from(Store::open(&db).unwrap().model_version(r.version).unwrap().weights_path.unwrap());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = eval(&db, r.version, argus::models::DeviceChoice::Cpu, &NoProgress).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()) && err.contains("checksum"), "{err}");
    let err =
        train(&db, &TrainRequest { from: Some(r.version), ..request(ModelKind::Bert, 0) }, &NoProgress, &mut |_| {})
            .unwrap_err()
            .to_string();
    assert!(err.contains("checksum"), "{err}");
}

#[test]
fn too_few_labels_is_a_clear_error_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("empty.db");
    Store::open(&db).unwrap();
    let err = train(&db, &request(ModelKind::Bert, 0), &NoProgress, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("labelled training items"), "{err}");
    assert!(Store::open(&db).unwrap().model_versions().unwrap().is_empty());
}

#[test]
fn the_train_command_ends_with_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 40);
    let encoder = model(argus::models::catalog::DEMO_ENCODER);
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["train", "--db", db.to_str().unwrap(), "--model", "bert", "--max-epochs", "1", "--max-len", "32"])
        .args(["--encoder", encoder.to_str().unwrap(), "--seed", "3"])
        .env("ARGUS_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l.starts_with("epoch   1")), "{stdout}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for key in ["version", "macro_f1", "accuracy", "f1_real", "f1_fake", "auc", "train_secs"] {
        assert!(last.get(key).is_some(), "{key} missing from {last}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["eval", "--db", db.to_str().unwrap(), "--version", "1", "--json"])
        .output()
        .unwrap();
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(eval["macro_f1"], last["macro_f1"]);
}

#[test]
fn a_group_aware_split_keeps_each_speaker_in_one_split_and_eval_uses_it() {
    use argus::guidance::data::{Split, build, build_grouped};
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 80);
    let mut req = request(ModelKind::Bert, 0);
    req.options.max_epochs = 1;
    req.options.group_by = Some("source".into());
    let report = train(&db, &req, &NoProgress, &mut |_| {}).unwrap();
    let s = &report.snapshot;
    assert_eq!(s.group_by.as_deref(), Some("source"));
    assert!(s.groups_train > 0 && s.groups_test > 0 && s.groups_train < s.train, "{s:?}");
    // Every speaker's items sit in one split, which the text hash does not give on the same items.
    let store = Store::open(&db).unwrap();
    let items = store.training_items().unwrap();
    let speaker_splits = |ex: &[argus::guidance::data::Example]| {
        let mut by: std::collections::HashMap<String, std::collections::BTreeSet<String>> = Default::default();
        for (it, e) in items.iter().zip(ex) {
            by.entry(it.source.clone().unwrap_or_default()).or_default().insert(format!("{:?}", e.split));
        }
        by.values().filter(|splits| splits.len() > 1).count()
    };
    let (grouped, _) = build_grouped(&items, &[], Some("source"));
    let (by_text, _) = build(&items, &[]);
    assert_eq!(speaker_splits(&grouped), 0);
    assert!(speaker_splits(&by_text) > 0, "some speaker straddles splits when texts are hashed");
    let test_ids = |ex: &[argus::guidance::data::Example]| {
        ex.iter().filter(|e| e.split == Split::Test && e.fake.is_some()).map(|e| e.item).collect::<Vec<_>>()
    };
    assert_ne!(test_ids(&grouped), test_ids(&by_text));
    // The key is stored with the version, and evaluating it later uses the same test split.
    let v = store.model_version(report.version).unwrap();
    assert_eq!(v.data_snapshot["group_by"], "source");
    assert_eq!(v.config["options"]["group_by"], "source");
    let m = eval(&db, report.version, argus::models::DeviceChoice::Cpu, &NoProgress).unwrap();
    assert_eq!(m.n, test_ids(&grouped).len());
    assert!((m.macro_f1 - report.test.macro_f1).abs() < 1e-9);
}

#[test]
fn the_projects_split_key_applies_to_every_run_that_names_none() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 60);
    let argus = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_argus"))
            .args(["project", "--db", db.to_str().unwrap()])
            .args(args)
            .env("ARGUS_LOG", "error")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The fields it may name are listed; a field no item has is refused, naming the ones there are.
    let (ok, stdout, _) = argus(&["--json"]);
    assert!(ok && stdout.contains("the item's text (default)"), "{stdout}");
    let listed: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(listed["group_fields"]["source"].as_u64().unwrap() > 0, "{listed}");
    assert!(listed["group_by"].is_null());
    let (ok, _, stderr) = argus(&["--group-by", "event"]);
    assert!(!ok && stderr.contains("no item has a field \"event\"") && stderr.contains("source"), "{stderr}");
    assert_eq!(Store::open(&db).unwrap().split_group_by().unwrap(), None);
    let (ok, stdout, stderr) = argus(&["--group-by", "source"]);
    assert!(ok && stdout.contains("grouped by \"source\""), "{stdout}{stderr}");

    // A run that names no key splits by the project's; `text` overrides it; a retrain keeps its parent's.
    let mut req = request(ModelKind::Bert, 0);
    req.options.max_epochs = 1;
    let by_project = train(&db, &req, &NoProgress, &mut |_| {}).unwrap();
    assert_eq!(by_project.snapshot.group_by.as_deref(), Some("source"));
    let mut by_text = req.clone();
    by_text.options.group_by = Some("text".into());
    assert_eq!(train(&db, &by_text, &NoProgress, &mut |_| {}).unwrap().snapshot.group_by, None);
    let (ok, _, _) = argus(&["--group-by", "text"]);
    assert!(ok);
    assert_eq!(Store::open(&db).unwrap().split_group_by().unwrap(), None);
    let mut again = req.clone();
    again.from = Some(by_project.version);
    assert_eq!(train(&db, &again, &NoProgress, &mut |_| {}).unwrap().snapshot.group_by.as_deref(), Some("source"));
    assert_eq!(train(&db, &req, &NoProgress, &mut |_| {}).unwrap().snapshot.group_by, None);
}

#[test]
fn early_stopping_waits_for_the_minimum_epochs_and_a_collapsed_model_is_warned_of() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 60);
    // Patience 1 stops a run at the first epoch that is not better; with min_epochs 4 it cannot stop before 4.
    let mut req = request(ModelKind::Bert, 3);
    req.options = TrainOptions { max_epochs: 4, patience: 1, min_epochs: 4, lr: 0.0, ..req.options };
    let r = train(&db, &req, &NoProgress, &mut |_| {}).unwrap();
    assert_eq!(r.epochs.len(), 4, "lr 0 never improves after epoch 1, yet the run went on to the minimum");
    req.options.min_epochs = 1;
    let r = train(&db, &req, &NoProgress, &mut |_| {}).unwrap();
    assert_eq!(r.epochs.len(), 2, "patience 1: the first epoch that is not better stops the run");
    // The report's warnings say whether the version predicts one class for nearly every item, and they are stored.
    let expected = argus::guidance::metrics::one_class_warning(&r.test, "test")
        .or_else(|| argus::guidance::metrics::one_class_warning(&r.val, "validation"));
    assert_eq!(r.warnings.first(), expected.as_ref());
    let stored = Store::open(&db).unwrap().model_version(r.version).unwrap().metrics["warnings"].clone();
    assert_eq!(stored, serde_json::json!(r.warnings));
}

#[test]
fn a_threshold_chosen_on_validation_is_stored_and_used_for_test_and_eval() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 60);
    let mut req = request(ModelKind::Bert, 0);
    req.options.max_epochs = 1;
    let plain = train(&db, &req, &NoProgress, &mut |_| {}).unwrap();
    assert_eq!((plain.test.threshold, plain.val.threshold), (0.5, 0.5));
    req.options.threshold_from_val = true;
    let tuned = train(&db, &req, &NoProgress, &mut |_| {}).unwrap();
    let t = tuned.test.threshold;
    assert!(t > 0.0 && t < 1.0 && tuned.val.threshold == t, "{t}");
    // On the split it was chosen on, the threshold is at least as good as 0.5 (same seed: same model as `plain`).
    assert!(tuned.val.macro_f1 >= plain.val.macro_f1 - 1e-12, "{} < {}", tuned.val.macro_f1, plain.val.macro_f1);
    assert_eq!(tuned.test.auc, plain.test.auc, "the ranking does not depend on the threshold");
    // Stored with the version; a later evaluation uses it.
    let store = Store::open(&db).unwrap();
    assert_eq!(store.model_version(tuned.version).unwrap().metrics["test"]["threshold"], t);
    let m = eval(&db, tuned.version, argus::models::DeviceChoice::Cpu, &NoProgress).unwrap();
    assert_eq!((m.threshold, m.confusion), (t, tuned.test.confusion));
}

#[test]
fn faithfulness_sees_a_trained_arg_lean_on_its_rationales_and_the_zero_gate_control_not_at_all() {
    use argus::guidance::faithfulness::{FaithfulnessOptions, Perturbation, faithfulness};
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 60);
    // A few epochs at a higher rate than the paper's, so that this small model comes to read its rationales.
    let mut req = request(ModelKind::Arg, 3);
    (req.options.lr, req.options.max_epochs, req.options.max_len) = (1e-3, 4, 64);
    let r = train(&db, &req, &NoProgress, &mut |_| {}).unwrap();
    let all = FaithfulnessOptions { split: None, ..FaithfulnessOptions::default() };
    let cpu = argus::models::DeviceChoice::Cpu;
    let report = faithfulness(&db, r.version, &all, cpu, &NoProgress).unwrap();
    assert_eq!(report.items, 60);
    let human = &report.perspectives[0];
    assert_eq!((human.perspective.as_str(), human.items), ("human", 60));
    let empty = human.summary(Perturbation::Empty).unwrap();
    let swap = human.summary(Perturbation::Swap).unwrap();
    assert_eq!((empty.items, swap.items), (60, 60), "every item can be emptied and swapped");
    eprintln!("{report}score {:e}", report.score);
    assert!(empty.mean_abs_dp > 1e-4 && swap.mean_abs_dp > 1e-4, "{report}");
    assert!(report.score > 1e-4, "{report}");
    // Deterministic, and the per-item rows agree with the summary.
    let again = faithfulness(&db, r.version, &all, cpu, &NoProgress).unwrap();
    assert_eq!(report, again);
    let swaps: Vec<f64> = report.per_item.iter().filter_map(|s| s.dp_swap).map(f64::abs).collect();
    assert!((swaps.iter().sum::<f64>() / swaps.len() as f64 - swap.mean_abs_dp).abs() < 1e-12);
    // The control: with every gate at zero, no rationale can move P(fake).
    let control = FaithfulnessOptions { zero_gates: true, ..all.clone() };
    let zero = faithfulness(&db, r.version, &control, cpu, &NoProgress).unwrap();
    assert!(zero.score < 1e-6 && zero.score * 100.0 < report.score, "control {} vs {}", zero.score, report.score);
    assert!(zero.per_item.iter().all(|s| s.gate < 1e-9));
    // BERT has no rationales to check: a clear error.
    let bert = train(&db, &request(ModelKind::Bert, 0), &NoProgress, &mut |_| {}).unwrap();
    let err = faithfulness(&db, bert.version, &all, cpu, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("not ARG"), "{err}");
}

#[test]
fn the_contrastive_term_changes_training_only_when_weighted() {
    let dir = tempfile::tempdir().unwrap();
    let db = small_db(dir.path(), 40);
    let plain = train(&db, &request(ModelKind::Arg, 5), &NoProgress, &mut |_| {}).unwrap();
    let mut zero = request(ModelKind::Arg, 5);
    zero.options.contrastive_weight = 0.0;
    let zero = train(&db, &zero, &NoProgress, &mut |_| {}).unwrap();
    let losses = |r: &argus::guidance::train::TrainReport| r.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>();
    assert_eq!(losses(&plain), losses(&zero), "weight 0 is the reference's loss exactly");
    let mut weighted = request(ModelKind::Arg, 5);
    weighted.options.contrastive_weight = 1.0;
    let weighted = train(&db, &weighted, &NoProgress, &mut |_| {}).unwrap();
    assert_ne!(losses(&plain), losses(&weighted));
    let store = Store::open(&db).unwrap();
    let config = store.model_version(weighted.version).unwrap().config;
    assert_eq!(config["architecture"]["arg"]["contrastive_weight"], 1.0);
}
