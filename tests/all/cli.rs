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
