//! The SQLite store from the outside: migrations, refusals, durability, undo, revisions, all-or-nothing import.

use argus::domain::{
    NewDataset, NewFeedback, NewItem, NewJudgement, NewRationale, RationaleOrigin, Usefulness, Verdict,
};
use argus::store::{SCHEMA_VERSION, Store, StoreError};

fn dataset(name: &str) -> NewDataset {
    NewDataset { name: name.into(), format: "test".into(), source_path: "memory".into(), license_note: None }
}

fn item(text: &str, gold: Option<Verdict>, rationales: usize) -> NewItem {
    NewItem {
        text: text.into(),
        gold_label: gold,
        original_label: gold.map(|g| g.as_str().to_owned()),
        rationales: (0..rationales)
            .map(|i| NewRationale {
                perspective: if i == 0 { "td".into() } else { "cs".into() },
                origin: RationaleOrigin::Imported,
                model: Some("test-model".into()),
                prompt: None,
                text: format!("rationale {i} of {text}"),
                verdict: Some(Verdict::Fake),
            })
            .collect(),
        ..NewItem::default()
    }
}

/// A store with three items (two rationales each) and one annotator.
fn seeded() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path().join("t.sqlite")).unwrap();
    let items = vec![item("one", Some(Verdict::Fake), 2), item("two", Some(Verdict::Real), 2), item("three", None, 2)];
    store.import(&[(dataset("d"), items)], &mut |_| {}, &|| false).unwrap();
    (dir, store)
}

#[test]
fn fresh_database_is_migrated_with_wal_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.sqlite");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let conn = store.connection();
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(fk, 1);
    for table in [
        "datasets",
        "items",
        "rationales",
        "annotators",
        "judgements",
        "rationale_feedback",
        "model_versions",
        "training_runs",
    ] {
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1", [table], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "table {table} missing");
    }
    drop(store);
    // Reopening is a no-op migration.
    assert_eq!(Store::open(&path).unwrap().schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.sqlite");
    {
        let store = Store::open(&path).unwrap();
        store.connection().pragma_update(None, "user_version", SCHEMA_VERSION + 5).unwrap();
    }
    // A plain rollback-journal file, as another tool would leave it.
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "journal_mode", "DELETE").unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 5), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("future.sqlite") && msg.contains("newer"), "{msg}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, SCHEMA_VERSION + 5);
    drop(conn);
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file must be byte-for-byte unchanged");
}

#[test]
fn foreign_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE mine(x); INSERT INTO mine VALUES (1); PRAGMA user_version = 1;")
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotArgus { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file must be byte-for-byte unchanged");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables: i64 =
        conn.query_row("SELECT COUNT(*) FROM sqlite_schema WHERE type='table'", [], |r| r.get(0)).unwrap();
    assert_eq!(tables, 1, "nothing may be added to a foreign database");
}

#[test]
fn garbage_file_gets_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.sqlite");
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let err = Store::open(&path).unwrap_err().to_string();
    assert!(err.contains("garbage.sqlite"), "{err}");
}

#[test]
fn judgements_are_visible_to_a_second_connection_at_once() {
    let (dir, store) = seeded();
    let ada = store.annotator_id("ada").unwrap();
    store
        .record_judgement(&NewJudgement {
            item_id: 1,
            annotator_id: ada,
            verdict: Verdict::Fake,
            confidence: Some(0.8),
            note: Some("headline exaggerates".into()),
            time_spent_ms: 1234,
        })
        .unwrap();
    // No close, no flush: another connection (another process would be the same) sees it.
    let other = Store::open(dir.path().join("t.sqlite")).unwrap();
    let js = other.judgements(1).unwrap();
    assert_eq!(js.len(), 1);
    assert_eq!(js[0].verdict, Verdict::Fake);
    assert_eq!(js[0].annotator, "ada");
    assert_eq!(js[0].note.as_deref(), Some("headline exaggerates"));
    assert_eq!(js[0].time_spent_ms, 1234);
}

#[test]
fn undo_retracts_without_losing_the_row_and_restores_the_previous_verdict() {
    let (_dir, store) = seeded();
    let ada = store.annotator_id("ada").unwrap();
    let judge = |v| {
        store
            .record_judgement(&NewJudgement {
                item_id: 2,
                annotator_id: ada,
                verdict: v,
                confidence: None,
                note: None,
                time_spent_ms: 10,
            })
            .unwrap()
    };
    let first = judge(Verdict::Real);
    let second = judge(Verdict::Fake);
    assert_eq!(store.standing_verdict(2, ada).unwrap(), Some(Verdict::Fake));
    store.retract_judgement(second).unwrap();
    assert_eq!(store.standing_verdict(2, ada).unwrap(), Some(Verdict::Real));
    store.retract_judgement(first).unwrap();
    assert_eq!(store.standing_verdict(2, ada).unwrap(), None);
    let rows: i64 = store.connection().query_row("SELECT COUNT(*) FROM judgements", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 2, "undo must never delete a row");
    assert!(store.retract_judgement(first).is_err(), "a retracted judgement cannot be retracted twice");
    assert_eq!(store.stats().unwrap().judgements, 0);
}

#[test]
fn a_judgement_on_a_missing_item_is_refused() {
    let (_dir, store) = seeded();
    let ada = store.annotator_id("ada").unwrap();
    let err = store.record_judgement(&NewJudgement {
        item_id: 999,
        annotator_id: ada,
        verdict: Verdict::Fake,
        confidence: None,
        note: None,
        time_spent_ms: 0,
    });
    assert!(err.is_err());
    assert!(
        store
            .record_judgement(&NewJudgement {
                item_id: 1,
                annotator_id: ada,
                verdict: Verdict::Fake,
                confidence: Some(1.5),
                note: None,
                time_spent_ms: 0,
            })
            .is_err()
    );
}

#[test]
fn corrections_form_a_revision_chain() {
    let (_dir, mut store) = seeded();
    let ada = store.annotator_id("ada").unwrap();
    let original = store.rationales(1).unwrap().into_iter().find(|r| r.perspective == "td").unwrap();
    assert_eq!((original.revision, original.parent_id, original.root_id), (1, None, original.id));
    let (r2, _) = store
        .revise_rationale(original.id, "better text", Some(Verdict::Real), RationaleOrigin::Human, Some(ada))
        .unwrap();
    let (r3, rev3) =
        store.revise_rationale(r2, "best text", Some(Verdict::Real), RationaleOrigin::Human, Some(ada)).unwrap();
    assert_eq!(rev3, 3);
    let latest = store.rationales(1).unwrap().into_iter().find(|r| r.perspective == "td").unwrap();
    assert_eq!(latest.id, r3);
    assert_eq!(latest.revision, 3);
    assert_eq!(latest.parent_id, Some(r2));
    assert_eq!(latest.root_id, original.id);
    assert_eq!(latest.author.as_deref(), Some("ada"));
    assert_eq!(latest.model.as_deref(), Some("test-model"), "a correction keeps the model that wrote the original");
    let chain = store.rationale_revisions(original.id).unwrap();
    assert_eq!(
        chain.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
        ["rationale 0 of one", "better text", "best text"]
    );
    assert_eq!(store.stats().unwrap().rationales, 6, "revisions do not add rationales");
    // Revising an older revision appends to the chain; it never reuses a number.
    let (_, rev4) = store.revise_rationale(original.id, "branch", None, RationaleOrigin::Human, Some(ada)).unwrap();
    assert_eq!(rev4, 4);
    // A first revision inserted without a root is its own root (trigger), and (root, revision) is unique.
    let conn = store.connection();
    conn.execute("INSERT INTO rationales(item_id, perspective, origin, text) VALUES (2, 'fc', 'human', 'x')", [])
        .unwrap();
    let id = conn.last_insert_rowid();
    let root: i64 = conn.query_row("SELECT root_id FROM rationales WHERE id = ?1", [id], |r| r.get(0)).unwrap();
    assert_eq!(root, id);
    let dup = conn.execute(
        "INSERT INTO rationales(item_id, root_id, revision, perspective, origin, text) VALUES (1, ?1, 2, 'td', 'human', 'dup')",
        [original.id],
    );
    assert!(dup.is_err(), "a second revision 2 of the same chain must be refused");
}

#[test]
fn feedback_is_stored_against_a_revision() {
    let (_dir, store) = seeded();
    let ada = store.annotator_id("ada").unwrap();
    let r = store.rationales(1).unwrap()[0].id;
    let fb = NewFeedback {
        rationale_id: r,
        annotator_id: ada,
        format: "free-text".into(),
        usefulness: Some(Usefulness::Misleading),
        sufficiency: Some(1),
        faithfulness: Some(2),
        agrees_verdict: Some(false),
        fb_where: Some("second sentence".into()),
        fb_what: Some("invents a statistic".into()),
        fb_fix: Some("drop the number".into()),
        time_spent_ms: 4000,
        ..Default::default()
    };
    let id = store.record_feedback(&fb).unwrap();
    assert_eq!(store.stats().unwrap().feedback, 1);
    store.retract_feedback(id).unwrap();
    assert_eq!(store.stats().unwrap().feedback, 0);
    assert!(store.record_feedback(&NewFeedback { sufficiency: Some(4), ..fb }).is_err());
}

#[test]
fn cancelled_import_writes_nothing() {
    let (_dir, mut store) = seeded();
    let before = store.stats().unwrap();
    let items: Vec<_> = (0..2000).map(|i| item(&format!("bulk {i}"), Some(Verdict::Real), 1)).collect();
    let calls = std::cell::Cell::new(0);
    let err = store
        .import(&[(dataset("bulk"), items)], &mut |_| {}, &|| {
            calls.set(calls.get() + 1);
            calls.get() > 2
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Cancelled(_)), "{err}");
    assert_eq!(store.stats().unwrap(), before);
}

#[test]
fn import_failure_in_a_later_dataset_rolls_back_the_earlier_ones() {
    let (_dir, mut store) = seeded();
    let before = store.stats().unwrap();
    let good = vec![item("fine", None, 1)];
    // An item whose metadata is valid but whose rationale has an empty perspective is still accepted by SQLite, so
    // force a constraint failure instead: a gold label outside real/fake violates the CHECK.
    let bad = vec![NewItem { gold_label: Some(Verdict::Other), ..item("bad", None, 0) }];
    let err = store.import(&[(dataset("good"), good), (dataset("bad"), bad)], &mut |_| {}, &|| false);
    assert!(err.is_err());
    assert_eq!(store.stats().unwrap(), before);
}

#[test]
fn a_version_1_database_is_migrated_and_gets_the_builtin_perspectives() {
    // What the first release wrote: schema 1 exactly as its migration made it, with data and feedback in it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!("../../migrations/0001_init.sql")).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.pragma_update(None, "application_id", argus::store::APPLICATION_ID).unwrap();
        conn.execute_batch(
            "INSERT INTO datasets(id, name, format, source_path) VALUES (1, 'd', 'csv', 'd.csv');
             INSERT INTO items(dataset_id, text, gold_label, text_sha256) VALUES (1, 'one', 'fake', 'a'),
                 (1, 'two', 'real', 'b'), (1, 'three', NULL, 'c');
             INSERT INTO annotators(id, name) VALUES (1, 'ada');
             INSERT INTO rationales(item_id, perspective, origin, text) VALUES (1, 'td', 'imported', 'why');
             INSERT INTO rationale_feedback(rationale_id, annotator_id, usefulness, fb_what)
                 VALUES (1, 1, 'misleading', 'invents a number');",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let keys: Vec<String> = store.perspectives().unwrap().into_iter().map(|p| p.key).collect();
    assert_eq!(keys, ["td", "cs", "fc", "human"]);
    assert_eq!(store.stats().unwrap().items, 3, "the data survives the migration");
    let ada = store.annotator_id("ada").unwrap();
    let form = store.feedback_form(1, ada, "free-text").unwrap().unwrap();
    assert_eq!((form.form.fb_what.as_deref(), form.form.ease), (Some("invents a number"), None));
}

#[test]
fn perspectives_are_data_that_can_be_edited_and_added() {
    let (_dir, store) = seeded();
    let mut cs = store.perspectives().unwrap().into_iter().find(|p| p.key == "cs").unwrap();
    cs.prompt = "Is this plausible? {news}".into();
    store.save_perspective(&cs).unwrap();
    let src = argus::prompting::Perspective {
        key: "src".into(),
        name: "Source credibility".into(),
        prompt: "Who says it, and are they credible? {news}".into(),
        verdict_question: "real, fake or other?".into(),
        generated: true,
    };
    store.save_perspective(&src).unwrap();
    let all = store.perspectives().unwrap();
    assert_eq!(all.iter().find(|p| p.key == "cs").unwrap().prompt, "Is this plausible? {news}");
    assert_eq!(all.last().unwrap(), &src, "a new perspective goes last");
    for bad in [
        argus::prompting::Perspective { key: "Bad Key".into(), ..src.clone() },
        argus::prompting::Perspective { name: " ".into(), ..src.clone() },
        argus::prompting::Perspective { prompt: String::new(), ..src.clone() },
    ] {
        assert!(store.save_perspective(&bad).is_err(), "{bad:?}");
    }
    assert_eq!(store.perspectives().unwrap().len(), 5);
}

#[test]
fn unedited_builtin_prompts_move_to_the_news_first_wording_and_edited_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let builtin = argus::prompting::builtin_perspectives();
    let td = builtin.iter().find(|p| p.key == "td").unwrap();
    {
        let store = Store::open(&path).unwrap();
        // As an earlier Argus left them: td with the old wording, cs edited by someone.
        let old_td = argus::prompting::news_last_wording(&td.prompt);
        assert_ne!(old_td, td.prompt);
        store.save_perspective(&argus::prompting::Perspective { prompt: old_td, ..td.clone() }).unwrap();
        let mut cs = store.perspectives().unwrap().into_iter().find(|p| p.key == "cs").unwrap();
        cs.prompt = "Is this plausible?\n\n{news}".into();
        store.save_perspective(&cs).unwrap();
    }
    let store = Store::open(&path).unwrap();
    let all = store.perspectives().unwrap();
    assert_eq!(all.iter().find(|p| p.key == "td").unwrap().prompt, td.prompt);
    assert!(td.prompt.starts_with("{news}"));
    assert_eq!(all.iter().find(|p| p.key == "cs").unwrap().prompt, "Is this plausible?\n\n{news}");
}
