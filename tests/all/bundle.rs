//! Judgement bundles: three annotators label on three databases, their bundles merge into one database in either
//! order with the same result, a second merge changes nothing, agreement is computed on the merge, rows about items
//! the target lacks are reported, and a bad bundle changes nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use argus::domain::{NewFeedback, NewJudgement, RationaleOrigin, Usefulness, Verdict};
use argus::ingest::bundle::{export_bundle, merge_bundles, read_bundle};
use argus::ingest::{self, ImportFlags, ImportOptions};
use argus::jobs::NoProgress;
use argus::store::Store;
use argus::studies::agreement::{Ratings, krippendorff_alpha_nominal};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/import").join(name)
}

/// A database with the built-in demo (300 LIAR2 claims), as each annotator's laptop has.
fn laptop(dir: &Path, name: &str) -> Store {
    let mut store = Store::open(dir.join(format!("{name}.db"))).unwrap();
    argus::studio::import_demo(&mut store, &NoProgress).unwrap();
    store
}

fn judge(store: &Store, who: &str, item: i64, verdict: Verdict) -> i64 {
    let annotator_id = store.annotator_id(who).unwrap();
    store
        .record_judgement(&NewJudgement {
            item_id: item,
            annotator_id,
            verdict,
            confidence: Some(0.75),
            note: Some(format!("{who} on {item}")),
            time_spent_ms: 1200 + item,
        })
        .unwrap()
}

fn feedback(store: &mut Store, who: &str, rationale: i64, usefulness: Usefulness, what: &str) {
    let annotator_id = store.annotator_id(who).unwrap();
    store
        .save_feedback_form(&NewFeedback {
            rationale_id: rationale,
            annotator_id,
            format: "free-text".into(),
            usefulness: Some(usefulness),
            fb_what: Some(what.into()),
            time_spent_ms: 900,
            ..Default::default()
        })
        .unwrap();
}

fn first_rationale(store: &Store, item: i64) -> i64 {
    store.rationales(item).unwrap()[0].id
}

/// Everything people did, named by item keys and texts (never by this database's ids), in a set.
fn snapshot(store: &Store) -> BTreeSet<String> {
    let keys = store.item_keys().unwrap();
    let conn = store.connection();
    let mut out = BTreeSet::new();
    let mut stmt = conn
        .prepare(
            "SELECT j.item_id, a.name, j.verdict, j.confidence, j.note, j.time_spent_ms, j.adjudicated, j.created_at, \
             j.retracted_at IS NOT NULL FROM judgements j JOIN annotators a ON a.id = j.annotator_id",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(format!(
                "judgement {} {} {} {:?} {:?} {} {} {} retracted={}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<f64>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, bool>(8)?
            ))
        })
        .unwrap();
    for row in rows {
        let row = row.unwrap();
        let id: i64 = row.split(' ').nth(1).unwrap().parse().unwrap();
        out.insert(row.replacen(&format!("judgement {id} "), &format!("judgement {} ", keys[&id]), 1));
    }
    let mut stmt = conn
        .prepare(
            "SELECT j.item_id, a.name, j.verdict FROM standing_judgements j JOIN annotators a ON a.id = j.annotator_id",
        )
        .unwrap();
    for row in
        stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))).unwrap()
    {
        let (item, who, verdict) = row.unwrap();
        out.insert(format!("standing {} {who} {verdict}", keys[&item]));
    }
    let mut stmt = conn
        .prepare(
            "SELECT r.item_id, r.perspective, r.origin, r.revision, r.text, p.text, a.name, r.retracted_at IS NOT NULL \
             FROM rationales r LEFT JOIN rationales p ON p.id = r.parent_id LEFT JOIN annotators a ON a.id = r.author_id",
        )
        .unwrap();
    for row in stmt
        .query_map([], |r| {
            Ok(format!(
                "{}|{}|{}|rev {}|{}|parent {:?}|{:?}|retracted={}",
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, bool>(7)?
            ))
        })
        .unwrap()
    {
        let row = row.unwrap();
        let parts: Vec<&str> = row.splitn(4, '|').collect();
        let item: i64 = parts[2].parse().unwrap();
        out.insert(format!("rationale {}|{}|{}|{}", keys[&item], parts[0], parts[1], parts[3]));
    }
    let mut stmt = conn
        .prepare(
            "SELECT r.text, a.name, f.format, f.usefulness, f.fb_what, f.created_at, f.updated_at, \
             f.retracted_at IS NOT NULL FROM rationale_feedback f JOIN rationales r ON r.id = f.rationale_id \
             JOIN annotators a ON a.id = f.annotator_id",
        )
        .unwrap();
    for row in stmt
        .query_map([], |r| {
            Ok(format!(
                "feedback {:?} {} {} {:?} {:?} {} {:?} {}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, bool>(7)?
            ))
        })
        .unwrap()
    {
        out.insert(row.unwrap());
    }
    out
}

/// Krippendorff's alpha over the standing judgements, items named by key.
fn alpha(store: &Store) -> f64 {
    let keys = store.item_keys().unwrap();
    let records = store.judgement_records().unwrap();
    let ratings = Ratings::from_triples(
        records
            .iter()
            .filter(|r| !r.adjudicated)
            .map(|r| (keys[&r.item_id].clone(), r.annotator.clone(), r.verdict.as_str())),
    );
    krippendorff_alpha_nominal(&ratings).alpha.expect("alpha is defined on the merge")
}

#[test]
fn three_annotators_bundles_merge_in_either_order_with_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Ann labels items 1-20, changes her mind on 5, undoes 6, finds item 1's rationale misleading and corrects the
    // rationale of item 2.
    let mut ann = laptop(d, "ann");
    for item in 1..=20 {
        judge(&ann, "ann", item, if item % 3 == 0 { Verdict::Fake } else { Verdict::Real });
    }
    judge(&ann, "ann", 5, Verdict::Fake);
    let undone = judge(&ann, "ann", 6, Verdict::Other);
    ann.retract_judgement(undone).unwrap();
    let r1 = first_rationale(&ann, 1);
    feedback(&mut ann, "ann", r1, Usefulness::Misleading, "it cites the wrong year");
    let ann_id = ann.annotator_id("ann").unwrap();
    ann.revise_rationale(
        first_rationale(&ann, 2),
        "Ann's corrected rationale.",
        Some(Verdict::Fake),
        RationaleOrigin::Human,
        Some(ann_id),
    )
    .unwrap();

    // Bea labels 10-30 (disagreeing with Ann on some), gives feedback on item 1 too, and corrects item 2's
    // rationale her own way.
    let mut bea = laptop(d, "bea");
    for item in 10..=30 {
        judge(&bea, "bea", item, if item % 2 == 0 { Verdict::Fake } else { Verdict::Real });
    }
    let r1 = first_rationale(&bea, 1);
    feedback(&mut bea, "bea", r1, Usefulness::Useful, "");
    let bea_id = bea.annotator_id("bea").unwrap();
    bea.revise_rationale(
        first_rationale(&bea, 2),
        "Bea's corrected rationale.",
        Some(Verdict::Real),
        RationaleOrigin::Human,
        Some(bea_id),
    )
    .unwrap();

    // Cal labels 15-25, adjudicates item 12, and labels an item of a dataset only Cal imported.
    let cal = laptop(d, "cal");
    for item in 15..=25 {
        judge(&cal, "cal", item, if item % 4 == 0 { Verdict::Fake } else { Verdict::Real });
    }
    cal.adjudicate(12, cal.annotator_id("cal").unwrap(), Verdict::Fake, Some("checked the source")).unwrap();
    let mut cal = cal;
    let extra = ImportOptions::from_flags(&ImportFlags {
        map: Some("id=id,content=claim,label=label".into()),
        labels: Some("SUPPORTS=real,REFUTES=fake,NOT ENOUGH INFO=unlabelled".into()),
        ..Default::default()
    })
    .unwrap();
    ingest::import_files(&mut cal, &[fixture("fever-like.csv")], &extra, &NoProgress).unwrap();
    judge(&cal, "cal", 301, Verdict::Real);

    let bundles: Vec<PathBuf> = [("ann", &ann), ("bea", &bea), ("cal", &cal)]
        .iter()
        .map(|(name, store)| {
            let out = d.join(format!("{name}.bundle.jsonl"));
            export_bundle(store, &out).unwrap();
            out
        })
        .collect();
    let ann_rows = read_bundle(&bundles[0]).unwrap();
    assert_eq!(ann_rows.iter().filter(|(_, r)| r.kind() == "judgement").count(), 22);
    assert_eq!(ann_rows.iter().filter(|(_, r)| r.kind() == "retraction").count(), 1);
    assert!(ann_rows.iter().all(|(line, _)| *line >= 2), "line 1 is the header");

    // Merge all three into a fresh database in one go, and into another one by one in the reverse order.
    let mut forward = laptop(d, "forward");
    let report = merge_bundles(&mut forward, &bundles, &NoProgress).unwrap();
    assert_eq!(report.added["judgement"], 22 + 21 + 12, "cal's judgement of the fever item is skipped");
    assert_eq!(report.missing_items, BTreeSet::from(["id:75397".to_string()]));
    assert_eq!(report.skipped_rows, 1);
    assert_eq!(report.retracted, 1);
    let mut backward = laptop(d, "backward");
    for bundle in bundles.iter().rev() {
        merge_bundles(&mut backward, std::slice::from_ref(bundle), &NoProgress).unwrap();
    }
    let merged = snapshot(&forward);
    assert_eq!(merged, snapshot(&backward), "the order of merging changes nothing");

    // Nothing was overwritten: both corrections of item 2's rationale are there, one after the other by time, and
    // both people's feedback on item 1's rationale.
    let item2 = forward.rationales(2).unwrap();
    let chain = forward.rationale_revisions(item2[0].root_id).unwrap();
    let texts: Vec<&str> = chain.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(&texts[1..], ["Ann's corrected rationale.", "Bea's corrected rationale."]);
    assert_eq!(merged.iter().filter(|l| l.starts_with("feedback ")).count(), 2);
    // Standing verdicts follow time, not merge order: Ann's second verdict on 5 stands, her undone one on 6 not.
    let ann_standing = forward
        .judgement_records()
        .unwrap()
        .into_iter()
        .filter(|r| r.annotator == "ann")
        .map(|r| (r.item_id, r.verdict))
        .collect::<Vec<_>>();
    assert_eq!(ann_standing.len(), 20);
    assert!(ann_standing.contains(&(5, Verdict::Fake)) && ann_standing.contains(&(6, Verdict::Fake)));

    // Agreement on the merge: three annotators, the same alpha in both databases; the adjudication is kept.
    let records = forward.judgement_records().unwrap();
    let annotators: BTreeSet<&str> = records.iter().map(|r| r.annotator.as_str()).collect();
    assert_eq!(annotators, BTreeSet::from(["ann", "bea", "cal"]));
    assert!(records.iter().any(|r| r.adjudicated && r.item_id == 12 && r.verdict == Verdict::Fake));
    let a = alpha(&forward);
    assert!((a - alpha(&backward)).abs() < 1e-12 && a.is_finite(), "{a}");

    // A second merge changes nothing.
    let again = merge_bundles(&mut forward, &bundles, &NoProgress).unwrap();
    assert!(again.changed_nothing(), "{again}");
    assert_eq!(snapshot(&forward), merged);
    // Merging a database's own bundle into it changes nothing either.
    assert!(merge_bundles(&mut ann, &bundles[..1], &NoProgress).unwrap().changed_nothing());

    // A bundle whose row was edited by hand is refused with its line, and nothing of any file is merged.
    let edited = d.join("edited.bundle.jsonl");
    let text = std::fs::read_to_string(&bundles[1]).unwrap();
    let line = text.lines().position(|l| l.contains("\"kind\":\"judgement\"")).unwrap() + 1;
    let tampered: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == line { l.replacen("bea on ", "BEA on ", 1) } else { l.to_string() })
        .collect();
    std::fs::write(&edited, tampered.join("\n")).unwrap();
    let mut fresh = laptop(d, "fresh");
    let before = snapshot(&fresh);
    let e = merge_bundles(&mut fresh, &[bundles[0].clone(), edited.clone()], &NoProgress).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:{line}: ", edited.display())) && e.contains("was it edited by hand"), "{e}");
    assert_eq!(snapshot(&fresh), before);
}

#[test]
fn the_command_line_shares_and_merges_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ann = laptop(d, "ann");
    for item in 1..=5 {
        judge(&ann, "ann", item, Verdict::Fake);
    }
    drop(laptop(d, "team"));
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_argus"))
            .args(args)
            .env("ARGUS_LOG", "error")
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let (ann_db, team_db, out) = (d.join("ann.db"), d.join("team.db"), d.join("ann.bundle.jsonl"));
    let printed = run(&["bundle", "export", "--db", ann_db.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(printed.contains("5 judgement"), "{printed}");
    let printed = run(&["bundle", "import", "--db", team_db.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(printed.contains("added: 5 judgement"), "{printed}");
    let printed = run(&["bundle", "import", "--db", team_db.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(printed.contains("added: none") && printed.contains("already present: 5 judgement"), "{printed}");
    // Not a bundle: refused with the file and line, exit status 1.
    let bad = d.join("not-a-bundle.jsonl");
    std::fs::write(&bad, "{\"hello\": 1}\n").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["bundle", "import", "--db", team_db.to_str().unwrap(), bad.to_str().unwrap()])
        .env("ARGUS_LOG", "error")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains(&format!("{}:1: not an Argus bundle", bad.display())), "{stderr}");
}
