//! The `argus` command line, run as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn argus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_argus")).args(args).env("ARGUS_LOG", "error").output().unwrap()
}

fn shared_data() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(dir.is_dir(), "{} is missing: the tests read the shared data sets", dir.display());
    dir
}

fn stats(db: &Path) -> serde_json::Value {
    let out = argus(&["stats", "--db", db.to_str().unwrap(), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn help_is_there_for_every_command() {
    for args in [
        &["--help"][..],
        &["import", "--help"],
        &["export", "--help"],
        &["stats", "--help"],
        &["bench", "store", "--help"],
    ] {
        let out = argus(args);
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{args:?}");
    }
}

#[test]
fn import_stats_and_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.sqlite");
    let data = shared_data();
    let out = argus(&[
        "import",
        "--db",
        db.to_str().unwrap(),
        data.join("liar2/test.csv").to_str().unwrap(),
        data.join("liar-plus/val2.tsv").to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("added 3580 items"), "{stdout}");
    let s = stats(&db);
    assert_eq!(s["items"], 3580);
    assert_eq!(s["judgements"], 0);
    assert_eq!(s["feedback"], 0);
    assert!(s["rationales"].as_u64().unwrap() > 3000);

    for (format, name) in [("jsonl", "out.jsonl"), ("csv", "out.csv"), ("arg-json", "arg")] {
        let path = dir.path().join(name);
        let out = argus(&["export", "--db", db.to_str().unwrap(), "--format", format, "--out", path.to_str().unwrap()]);
        assert!(out.status.success(), "{format}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(path.exists(), "{format}");
    }
    let jsonl = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 3580);
}

#[test]
fn a_bad_file_fails_with_file_and_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.sqlite");
    let good = shared_data().join("liar2/valid.csv");
    assert!(argus(&["import", "--db", db.to_str().unwrap(), good.to_str().unwrap()]).status.success());
    let before = stats(&db);

    let bad = dir.path().join("bad.csv");
    let text = std::fs::read_to_string(&good).unwrap();
    let mut lines = vec![text.lines().next().unwrap().to_owned()];
    for i in 0..5 {
        lines.push(format!("{i},3,\"claim {i}\",\"May 1, 2020\",x,y,z,Texas,0,0,0,0,0,0,ad,\"why\""));
    }
    lines.push(
        "77,9,\"a claim with a label outside the map\",\"May 1, 2020\",x,y,z,Texas,0,0,0,0,0,0,ad,\"why\"".into(),
    );
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let out = argus(&["import", "--db", db.to_str().unwrap(), bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.csv:7"), "{stderr}");
    assert_eq!(stats(&db), before);
}

#[test]
fn a_database_from_a_newer_argus_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("future.sqlite");
    {
        let store = argus::store::Store::open(&db).unwrap();
        store.connection().pragma_update(None, "user_version", 99).unwrap();
    }
    let out = argus(&["stats", "--db", db.to_str().unwrap(), "--json"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("future.sqlite") && stderr.contains("newer"), "{stderr}");
}

/// `argus` with the models folder the tests use and the CPU (the same weights the library tests fetch).
fn argus_cpu(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(args)
        .args(["--device", "cpu"])
        .env("ARGUS_LOG", "error")
        .output()
        .unwrap()
}

fn stdout_of(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// A small database with one BERT-only, one ARG and one ARG-D version (the ARG-D distilled from the ARG).
fn trained_db(dir: &Path, n: usize) -> PathBuf {
    use argus::domain::ModelKind;
    use argus::guidance::train::{TrainOptions, train};
    let db = super::training::small_db(dir, n);
    for kind in [ModelKind::Bert, ModelKind::Arg, ModelKind::Argd] {
        let mut request = super::training::request(kind, 0);
        request.options = TrainOptions { max_epochs: 1, ..request.options };
        train(&db, &request, &argus::jobs::NoProgress, &mut |_| {}).unwrap();
    }
    db
}

#[test]
fn every_bench_command_explains_its_flags() {
    for (bench, flags) in [
        ("store", &["--items", "--commits", "--frames"][..]),
        ("encoder", &["--model", "--batch", "--length", "--reps", "--no-peer"]),
        (
            "train",
            &["--encoder", "--perspectives", "--fill", "--peer-full", "--no-step", "--no-retrain", "--judgements"],
        ),
        (
            "quality",
            &[
                "--data",
                "--map",
                "--db",
                "--group-by",
                "--liar2",
                "--work",
                "--seeds",
                "--paper-quirks",
                "--writer",
                "--methods",
                "--json",
            ],
        ),
        ("generate", &["--model", "--prompt-tokens", "--generate", "--reps", "--no-peer"]),
        ("device-check", &["--encoder-files", "--skeleton", "--work", "--greedy"]),
        ("skeleton", &["--from", "--to"]),
    ] {
        let out = argus(&["bench", bench, "--help"]);
        let help = stdout_of(&out);
        assert!(help.contains(&format!("Usage: argus bench {bench}")), "{bench}:\n{help}");
        for flag in flags {
            assert!(help.contains(flag), "bench {bench} --help names {flag}:\n{help}");
        }
    }
    // The hidden ones stay out of the list; the listed ones are there.
    let list = stdout_of(&argus(&["bench", "--help"]));
    assert!(list.contains("quality") && list.contains("generate"), "{list}");
    assert!(!list.contains("device-check") && !list.contains("skeleton"), "{list}");
}

#[test]
fn the_test_hooks_are_environment_variables_not_flags() {
    let help = stdout_of(&argus(&["study", "run-sim", "--help"]));
    assert!(help.contains("--participants"), "{help}");
    assert!(!help.contains("pause-after-steps") && !help.contains("kill-after-steps"), "{help}");
    let out = argus(&[
        "study",
        "run-sim",
        "--study",
        "x.toml",
        "--participants",
        "1",
        "--db",
        "x.db",
        "--kill-after-steps",
        "3",
    ]);
    assert!(!out.status.success(), "the old flag is refused");

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("killed.sqlite");
    let study = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/studies/formats-within.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["study", "run-sim", "--study", study.to_str().unwrap(), "--participants", "2", "--db"])
        .arg(&db)
        .env(argus::cli::study::KILL_AFTER_STEPS_ENV, "4")
        .env("ARGUS_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the kill hook aborts");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("aborting after 4 steps (participant sim-s0-v1-001, next step 4)"), "{stderr}");
    let store = argus::store::Store::open(&db).unwrap();
    let spec = argus::studies::spec::StudySpec::load(&study).unwrap();
    let p = store.study_participant(&spec.name, "sim-s0-v1-001").unwrap().unwrap();
    assert_eq!(store.completed_study_steps(p.id).unwrap(), [0, 1, 2, 3]);
}

#[test]
fn versions_lists_every_version_and_use_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = trained_db(dir.path(), 30);
    let db_s = db.to_str().unwrap();
    let table = stdout_of(&argus(&["versions", "--db", db_s]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("*   1 bert  parent -     test macro-F1 "), "{table}");
    assert!(lines[1].starts_with("*   2 arg   parent -     test macro-F1 "), "{table}");
    assert!(lines[2].starts_with("*   3 argd  parent -     test macro-F1 "), "{table}");

    // A second ARG version is in use; `--use 2` rolls back to the first.
    let mut request = super::training::request(argus::domain::ModelKind::Arg, 1);
    request.options.max_epochs = 1;
    argus::guidance::train::train(&db, &request, &argus::jobs::NoProgress, &mut |_| {}).unwrap();
    let table = stdout_of(&argus(&["versions", "--db", db_s]));
    assert!(table.lines().nth(1).unwrap().starts_with("    2 arg "), "{table}");
    assert!(table.lines().nth(3).unwrap().starts_with("*   4 arg "), "{table}");
    let rolled = stdout_of(&argus(&["versions", "--db", db_s, "--use", "2"]));
    assert!(rolled.starts_with("version 2 is now in use\n"), "{rolled}");
    assert!(rolled.lines().nth(2).unwrap().starts_with("*   2 arg "), "{rolled}");
    assert!(rolled.lines().nth(4).unwrap().starts_with("    4 arg "), "{rolled}");
    assert_eq!(argus::store::Store::open(&db).unwrap().active_version(argus::domain::ModelKind::Arg).unwrap(), Some(2));

    let json: serde_json::Value =
        serde_json::from_str(&stdout_of(&argus(&["versions", "--db", db_s, "--json"]))).unwrap();
    let kinds: Vec<&str> = json.as_array().unwrap().iter().map(|v| v["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["bert", "arg", "argd", "arg"]);
    assert!(!argus(&["versions", "--db", db_s, "--use", "99"]).status.success(), "an unknown version is refused");
}

#[test]
fn predict_stores_the_predictions_of_the_arg_version_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let bare = super::training::small_db(dir.path(), 20);
    let out = argus_cpu(&["predict", "--db", bare.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ARG version yet: run `argus train` first"));

    let trained = tempfile::tempdir().unwrap();
    let db = trained_db(trained.path(), 30);
    let store = argus::store::Store::open(&db).unwrap();
    store.connection().execute("DELETE FROM predictions", []).unwrap();
    let out = stdout_of(&argus_cpu(&["predict", "--db", db.to_str().unwrap()]));
    assert_eq!(out, "stored predictions of version 2 for 30 items\n");
    assert_eq!(store.predictions(2).unwrap().len(), 30);
    assert!(store.predictions(1).unwrap().is_empty(), "only the version asked for predicts");
    let out = stdout_of(&argus_cpu(&["predict", "--db", db.to_str().unwrap(), "--version", "1"]));
    assert_eq!(out, "stored predictions of version 1 for 30 items\n");
    assert_eq!(store.predictions(1).unwrap().len(), 30);
}

#[test]
fn route_lists_the_share_argd_is_least_sure_about_and_routes_it_through_the_writer_and_arg() {
    let dir = tempfile::tempdir().unwrap();
    let bare = super::training::small_db(dir.path(), 20);
    let out = argus_cpu(&["route", "--db", bare.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ARG-D version yet: `argus train --model argd`"));

    let dir = tempfile::tempdir().unwrap();
    let db = trained_db(dir.path(), 40);
    let db_s = db.to_str().unwrap();
    let out = stdout_of(&argus_cpu(&["route", "--db", db_s, "--share", "0.5"]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "ARG-D version 3 scored 40 items; the 50% it is least sure about: 20 items", "{out}");
    assert_eq!(lines.len(), 21, "{out}");
    let store = argus::store::Store::open(&db).unwrap();
    let scores = store.predictions(3).unwrap();
    let listed: Vec<(i64, f64)> = lines[1..]
        .iter()
        .map(|l| {
            let (item, p) = l.trim().strip_prefix("item ").unwrap().split_once(": ARG-D P(fake) ").unwrap();
            (item.parse().unwrap(), p.parse().unwrap())
        })
        .collect();
    for w in listed.windows(2) {
        assert!((w[0].1 - 0.5).abs() <= (w[1].1 - 0.5).abs() + 1e-3, "least sure first: {out}");
    }
    for (item, p) in &listed {
        assert!((scores[item].p_fake - p).abs() < 1e-3, "{item}: the stored ARG-D prediction is the one listed");
    }

    // With a writer: rationales for the routed items (2 of 40), then ARG predicts those two.
    super::models::model(argus::models::catalog::TEST_GENERATOR);
    store.connection().execute("DELETE FROM predictions WHERE version_id = 2", []).unwrap();
    let args = ["route", "--db", db_s, "--share", "0.05", "--perspectives", "td"];
    let out = stdout_of(&argus_cpu(&[&args[..], &["--writer", argus::models::catalog::TEST_GENERATOR][..]].concat()));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "ARG-D version 3 scored 40 items; the 5% it is least sure about: 2 items", "{out}");
    assert!(lines[3].starts_with("wrote 2 rationales ("), "{out}");
    assert_eq!(lines[4], "ARG version 2 predicted the 2 routed items", "{out}");
    let routed: Vec<i64> =
        lines[1..3].iter().map(|l| l.trim()[5..].split(':').next().unwrap().parse().unwrap()).collect();
    for item in &routed {
        assert!(
            store.rationales(*item).unwrap().iter().any(|r| r.perspective == "td"),
            "item {item} got a td rationale"
        );
    }
    let arg: Vec<i64> = store.predictions(2).unwrap().into_keys().collect();
    assert_eq!(arg.len(), 2);
    assert!(arg.iter().all(|i| routed.contains(i)), "ARG predicted exactly the routed items: {arg:?} {routed:?}");
}

#[test]
fn repair_writes_a_new_revision_from_feedback() {
    let dir = tempfile::tempdir().unwrap();
    let db = super::training::small_db(dir.path(), 3);
    let (rationale, feedback) = {
        let mut store = argus::store::Store::open(&db).unwrap();
        let rationale = store.rationales(1).unwrap()[0].clone();
        let annotator = store.annotator_id("ada").unwrap();
        let form = argus::domain::NewFeedback {
            rationale_id: rationale.id,
            annotator_id: annotator,
            format: "free-text".into(),
            fb_what: Some("It ignores who paid.".into()),
            fb_fix: Some("Say who paid for the ad.".into()),
            ..Default::default()
        };
        (rationale, store.save_feedback_form(&form).unwrap())
    };
    let db_s = db.to_str().unwrap();
    // Gemma 3 270M: SmolLM2-135M, greedy, echoes the prompt's fences instead of a rationale on some CPUs (no AVX-512).
    let writer = "gemma-3-270m";
    super::models::model(writer);
    let out = argus_cpu(&["repair", "--db", db_s, "--feedback", "999", "--writer", writer]);
    assert!(!out.status.success(), "an unknown feedback row is refused");

    let out = stdout_of(&argus_cpu(&["repair", "--db", db_s, "--feedback", &feedback.to_string(), "--writer", writer]));
    let store = argus::store::Store::open(&db).unwrap();
    let revisions = store.rationale_revisions(rationale.root_id).unwrap();
    assert_eq!(revisions.len(), 2);
    let repaired = revisions.iter().find(|r| r.revision == 2).unwrap();
    assert!(out.starts_with(&format!("revision 2 (rationale {}):\n", repaired.id)), "{out}");
    assert!(out.contains(repaired.text.trim()), "the stored revision's text is printed: {out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("verdict ") && last.contains("; reference ") && last.contains(" words changed; "),
        "{out}"
    );
    assert!(store.repair_producing(repaired.id).unwrap().is_some(), "the repair is stored with its score");
}
