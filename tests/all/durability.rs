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

// -------------------------------------------------------------------------------------------------------------
// An import beside other writers

fn claims(n: usize) -> (argus::domain::NewDataset, Vec<argus::domain::NewItem>) {
    let dataset = argus::domain::NewDataset {
        name: "claims".into(),
        format: "csv".into(),
        source_path: "claims.csv".into(),
        license_note: None,
    };
    let items = (0..n)
        .map(|i| argus::domain::NewItem {
            external_id: Some(format!("c{i}")),
            text: format!("Claim {i}: the council spent {i} percent more."),
            gold_label: Some(if i % 2 == 0 { Verdict::Fake } else { Verdict::Real }),
            rationales: vec![argus::domain::NewRationale {
                perspective: "human".into(),
                origin: argus::domain::RationaleOrigin::Imported,
                model: None,
                prompt: None,
                text: format!("Why claim {i} is rated so."),
                verdict: None,
            }],
            ..Default::default()
        })
        .collect();
    (dataset, items)
}

/// While an import stages its rows it holds no write lock: a verdict from another connection commits at once,
/// and the import still lands whole.
#[test]
fn a_verdict_commits_at_once_while_an_import_stages() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.sqlite");
    drop(Workspace::open(&db, "ada", true, &NoProgress).unwrap()); // the demo's 300 items
    let other = Store::open(&db).unwrap();
    let bea = other.annotator_id("bea").unwrap();
    let mut importer = Store::open(&db).unwrap();
    let mut waits = Vec::new();
    let mut publishing = 0;
    let summaries = importer
        .import(
            &[claims(5_000)],
            &mut |step| match step {
                argus::store::ImportStep::Staging(n) if n > 0 => {
                    let t = std::time::Instant::now();
                    other
                        .record_judgement(&argus::domain::NewJudgement {
                            item_id: 1 + (n % 300) as i64,
                            annotator_id: bea,
                            verdict: Verdict::Fake,
                            confidence: None,
                            note: None,
                            time_spent_ms: 0,
                        })
                        .expect("a verdict while the import stages");
                    waits.push(t.elapsed());
                }
                argus::store::ImportStep::Staging(_) => {}
                argus::store::ImportStep::Publishing => publishing += 1,
            },
            &|| false,
        )
        .unwrap();
    assert_eq!((summaries[0].items, summaries[0].rationales), (5_000, 5_000));
    assert_eq!(publishing, 1);
    assert!(waits.len() >= 9, "a verdict every 512 staged items: {}", waits.len());
    let slowest = waits.iter().max().unwrap();
    assert!(*slowest < std::time::Duration::from_millis(500), "a verdict waited {slowest:?} while the import staged");
    let stats = other.stats().unwrap();
    assert_eq!((stats.items, stats.judgements as usize), (5_300, waits.len()));
    // Ids come in one block, and each rationale hangs on its own item.
    let item = importer.item(301).unwrap();
    assert_eq!(item.external_id.as_deref(), Some("c0"));
    let rationales = importer.rationales(5_300).unwrap();
    assert_eq!(rationales.len(), 1);
    assert_eq!(rationales[0].text, "Why claim 4999 is rated so.");
    assert_eq!(rationales[0].root_id, rationales[0].id);
}

/// An item another writer publishes while this import stages it is not imported twice: the import stages again
/// under the lock and counts it as already present.
#[test]
fn an_item_another_writer_adds_meanwhile_is_not_imported_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.sqlite");
    let mut importer = Store::open(&db).unwrap();
    let mut other = Store::open(&db).unwrap();
    let (dataset, items) = claims(2_000);
    let first = (dataset.clone(), items[1_500..1_501].to_vec());
    let mut added = false;
    let summaries = importer
        .import(
            &[(dataset, items)],
            &mut |step| {
                if step == argus::store::ImportStep::Publishing && !added {
                    other.import(std::slice::from_ref(&first), &mut |_| {}, &|| false).unwrap();
                    added = true;
                }
            },
            &|| false,
        )
        .unwrap();
    assert!(added);
    assert_eq!((summaries[0].items, summaries[0].already_present), (1_999, 1));
    let stats = importer.stats().unwrap();
    assert_eq!((stats.items, stats.datasets), (2_000, 2));
    assert_eq!(importer.item_id_by_key("id:c1500").unwrap(), Some(1));
}

/// A database held busy past the busy timeout refuses a verdict with a message that says so, names the file and
/// says nothing was written; once the other writer lets go the same verdict commits.
#[test]
fn a_busy_database_refuses_a_verdict_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("busy.sqlite");
    drop(Workspace::open(&db, "ada", true, &NoProgress).unwrap());
    let store = Store::open(&db).unwrap();
    let ada = store.annotator_id("ada").unwrap();
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE; INSERT INTO annotators(name) VALUES ('holder');").unwrap();
    let judgement = argus::domain::NewJudgement {
        item_id: 1,
        annotator_id: ada,
        verdict: Verdict::Real,
        confidence: None,
        note: Some("kept".into()),
        time_spent_ms: 0,
    };
    let t = std::time::Instant::now();
    let err = store.record_judgement(&judgement).unwrap_err().to_string();
    assert!(t.elapsed() >= std::time::Duration::from_millis(argus::store::BUSY_TIMEOUT_MS - 100), "it retried");
    assert!(err.starts_with(&db.display().to_string()), "{err}");
    assert!(err.contains("the database is busy") && err.contains("nothing of this step was written"), "{err}");
    assert!(store.judgements(1).unwrap().is_empty());
    holder.execute_batch("COMMIT").unwrap();
    store.record_judgement(&judgement).unwrap();
    assert_eq!(store.judgements(1).unwrap().len(), 1);
}

const ONLINE_DB_ENV: &str = "ARGUS_KILL9_ONLINE_DB";

/// The online learner as the studio drives it, for `scripts/kill9.py` (which kills this child at random moments):
/// an annotator judges the demo items not yet judged with their gold label, one commit each; after every 8th the
/// learner updates the model in use and saves it as a version every 2nd update; at 64 judgements it saves and ends.
/// Needs a project with a BERT version in use (the script trains one). Does nothing when run on its own.
#[test]
#[ignore = "child process of scripts/kill9.py"]
fn child_learns_online_while_judging() {
    use argus::domain::ModelKind;
    use argus::guidance::online::{OnlineLearner, OnlineOptions};
    let Some(db) = std::env::var_os(ONLINE_DB_ENV) else { return };
    let db = std::path::PathBuf::from(db);
    let options = OnlineOptions { every: 8, checkpoint_every: 2, ..OnlineOptions::default() };
    let mut learner =
        OnlineLearner::open(&db, ModelKind::Bert, argus::models::DeviceChoice::Cpu, options, &NoProgress).unwrap();
    let store = Store::open(&db).unwrap();
    let annotator = store.annotator_id("online").unwrap();
    let mut judged = store.stats().unwrap().judgements;
    while judged < 64 {
        let item = (1..=300).find(|&i| store.standing_verdict(i, annotator).unwrap().is_none()).unwrap();
        let verdict = store.item(item).unwrap().gold_label.unwrap_or(Verdict::Real);
        let judgement = argus::domain::NewJudgement {
            item_id: item,
            annotator_id: annotator,
            verdict,
            confidence: None,
            note: None,
            time_spent_ms: 0,
        };
        store.record_judgement(&judgement).unwrap();
        judged += 1;
        if judged.is_multiple_of(8) {
            let update = learner.update(&NoProgress).unwrap();
            println!("UPDATE {judged} saved {:?}", update.checkpoint);
        }
    }
    learner.checkpoint(&NoProgress).unwrap();
    println!("DONE {judged}");
}
