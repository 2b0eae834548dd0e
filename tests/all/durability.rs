//! Every judgement is in SQLite the moment it is made: a labeller process killed with SIGKILL loses nothing.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use argus::domain::Verdict;
use argus::jobs::NoProgress;
use argus::store::Store;
use argus::studio::{Command as StudioCommand, Workspace};

const DB_ENV: &str = "ARGUS_SIGKILL_TEST_DB";

/// Run by `ten_judgements_survive_sigkill` in a child process: labels ten demo items, says so, then waits to be
/// killed. Does nothing when run on its own.
#[test]
#[ignore = "child process of ten_judgements_survive_sigkill"]
fn child_labels_ten_items_then_waits() {
    let Some(db) = std::env::var_os(DB_ENV) else { return };
    let mut ws = Workspace::open(std::path::Path::new(&db), "kill-test", true, &NoProgress).unwrap();
    for i in 0..10 {
        let verdict = if i % 3 == 0 { Verdict::Real } else { Verdict::Fake };
        ws.apply(StudioCommand::Judge { verdict, confidence: None, note: Some(format!("note {i}")) }).unwrap();
    }
    println!("LABELLED 10");
    std::thread::sleep(std::time::Duration::from_secs(120));
}

#[test]
fn ten_judgements_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("killed.sqlite");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "durability::child_labels_ten_items_then_waits",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DB_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let labelled = BufReader::new(stdout).lines().map_while(Result::ok).any(|l| l.contains("LABELLED 10"));
    assert!(labelled, "the child did not report its ten judgements");
    child.kill().unwrap(); // SIGKILL on Unix: no destructors, no flush
    child.wait().unwrap();

    let store = Store::open(&db).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(stats.judgements, 10);
    assert_eq!(stats.judged_items, 10);
    assert_eq!(stats.items, 300, "the demo sample");
    let first = store.judgements(1).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].verdict, Verdict::Real);
    assert_eq!(first[0].note.as_deref(), Some("note 0"));
    drop(store);

    // Reopened, the studio resumes at the first item this annotator has not judged.
    let ws = Workspace::open(&db, "kill-test", true, &NoProgress).unwrap();
    assert_eq!(ws.progress(), (10, 300));
    assert_eq!(ws.selected_id(), Some(11));
}

const TWO_WRITERS_DB_ENV: &str = "ARGUS_TWO_WRITERS_TEST_DB";

/// Run by `two_studios_on_one_database_lose_no_judgement` in a child process: a second annotator judges all 300
/// demo items while the parent's annotator does the same. Does nothing when run on its own.
#[test]
#[ignore = "child process of two_studios_on_one_database_lose_no_judgement"]
fn child_judges_every_item_as_bea() {
    let Some(db) = std::env::var_os(TWO_WRITERS_DB_ENV) else { return };
    let mut ws = Workspace::open(std::path::Path::new(&db), "bea", false, &NoProgress).unwrap();
    println!("OPEN");
    for i in 0..300 {
        let verdict = if i % 2 == 0 { Verdict::Fake } else { Verdict::Real };
        ws.apply(StudioCommand::Judge { verdict, confidence: None, note: None }).unwrap();
    }
    println!("JUDGED 300");
}

/// Two annotators on one project file at once (two processes, each a studio workspace): every judgement of both
/// lands, each in its own commit, none lost or refused (SQLite's write lock plus the store's busy timeout).
#[test]
fn two_studios_on_one_database_lose_no_judgement() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.sqlite");
    drop(Workspace::open(&db, "ada", true, &NoProgress).unwrap()); // the demo, imported once
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["durability::child_judges_every_item_as_bea", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(TWO_WRITERS_DB_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok);
    assert!(lines.any(|l| l.contains("OPEN")), "the second studio did not open");
    // Ada judges while Bea does.
    let mut ws = Workspace::open(&db, "ada", false, &NoProgress).unwrap();
    for i in 0..300 {
        let verdict = if i % 3 == 0 { Verdict::Real } else { Verdict::Fake };
        ws.apply(StudioCommand::Judge { verdict, confidence: None, note: None }).unwrap();
    }
    assert!(lines.any(|l| l.contains("JUDGED 300")), "the second studio did not finish");
    assert!(child.wait().unwrap().success());
    drop(ws);

    let store = Store::open(&db).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!((stats.judgements, stats.judged_items, stats.annotators), (600, 300, 2));
    let records = store.judgement_records().unwrap();
    for who in ["ada", "bea"] {
        assert_eq!(records.iter().filter(|r| r.annotator == who).count(), 300, "{who}'s judgements all stand");
    }
    assert_eq!(store.judgements(1).unwrap().len(), 2, "item 1 has both verdicts");
}
