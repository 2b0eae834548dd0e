//! User studies from the outside: counterbalancing over 24 participants, deterministic plans, the participant flow
//! step by step (answers checked, stored, feedback saved for the repair loop), simulated runs through the CLI,
//! resuming at the exact step after SIGKILL, exclusion rules, the tidy export, study versions frozen by the first
//! participant, routing, adjudication and the agreement command.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use argus::domain::{NewJudgement, Verdict};
use argus::formats::Format;
use argus::jobs::NoProgress;
use argus::store::Store;
use argus::store::studies::{RegisterOutcome, Timing};
use argus::studies::analysis::{Exclusions, analyse};
use argus::studies::assign::{PlanStep, plan};
use argus::studies::flow::{Session, Step};
use argus::studies::spec::{AnswerKind, Condition, Design, StudySpec};
use argus::studies::{StudyError, register, sim};

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/studies/formats-within.toml")
}

fn example() -> StudySpec {
    StudySpec::load(&example_path()).unwrap()
}

fn argus(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_argus")).args(args).env("ARGUS_LOG", "error").output().unwrap()
}

fn demo_store(dir: &Path) -> (PathBuf, Store) {
    let db = dir.join("study.sqlite");
    let mut store = Store::open(&db).unwrap();
    argus::studio::import_demo(&mut store, &NoProgress).unwrap();
    (db, store)
}

/// Answers every question of the current step: the right attention answer, the first choice, the scale's top,
/// and some text.
fn sensible_answers(session: &Session, spec: &StudySpec) -> Vec<(String, String)> {
    session
        .asked()
        .into_iter()
        .map(|a| {
            let value = match (&a.answer, a.key.as_str()) {
                (_, "attention") => spec.attention_checks.as_ref().unwrap().answer.clone(),
                (AnswerKind::Choice { options }, _) => options[0].clone(),
                (AnswerKind::Scale { max, .. }, _) => max.to_string(),
                (AnswerKind::Text, _) => "The second sentence misreads the figure.".into(),
            };
            (a.key, value)
        })
        .collect()
}

const SLOW: Timing = Timing { first_action_ms: 2_000, total_ms: 20_000, focus_lost: 0 };

fn with_conditions(k: usize, design: Design) -> StudySpec {
    let mut spec = example();
    spec.design = design;
    spec.gold_items.clear();
    spec.items.ids = (101..=112).collect();
    spec.items_per_participant = 12;
    spec.conditions = Format::ALL[..k]
        .iter()
        .map(|f| Condition { name: f.as_str().into(), format: *f, perspective: None, show_model_verdict: false })
        .collect();
    spec.validate().unwrap();
    spec
}

#[test]
fn counterbalancing_puts_every_condition_equally_often_in_every_position_over_24_participants() {
    for k in [2, 3, 4] {
        for design in [Design::Within, Design::Between] {
            let spec = with_conditions(k, design);
            let pool: Vec<i64> = (101..=112).collect();
            // position -> condition -> count, and (item, condition) -> count
            let mut at: BTreeMap<usize, BTreeMap<usize, usize>> = BTreeMap::new();
            let mut item_condition: BTreeMap<(i64, usize), usize> = BTreeMap::new();
            for number in 1..=24 {
                for (position, item, condition, _) in plan(&spec, &pool, number).items() {
                    *at.entry(position).or_default().entry(condition).or_default() += 1;
                    *item_condition.entry((item, condition)).or_default() += 1;
                }
            }
            assert_eq!(at.len(), 12);
            for (position, counts) in &at {
                assert_eq!(counts.len(), k, "k {k} {design:?} position {position}: {counts:?}");
                assert!(counts.values().all(|&c| c == 24 / k), "k {k} {design:?} position {position}: {counts:?}");
            }
            // Balanced order also shows every item under every condition equally often.
            assert_eq!(item_condition.len(), 12 * k, "k {k} {design:?}");
            assert!(item_condition.values().all(|&c| c == 24 / k), "k {k} {design:?}: {item_condition:?}");
        }
    }
}

#[test]
fn balanced_order_puts_every_item_in_every_position_over_n_times_k_participants() {
    let spec = with_conditions(3, Design::Within);
    let pool: Vec<i64> = (101..=112).collect();
    let mut seen: BTreeMap<(i64, usize), usize> = BTreeMap::new();
    for number in 1..=36 {
        for (position, item, _, _) in plan(&spec, &pool, number).items() {
            *seen.entry((item, position)).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 144);
    assert!(seen.values().all(|&c| c == 3));
}

#[test]
fn plans_are_deterministic_per_seed_and_change_with_it() {
    let spec = example();
    let pool = spec.items.ids.clone();
    let plans: Vec<_> = (1..=6).map(|n| plan(&spec, &pool, n)).collect();
    assert_eq!(plans, (1..=6).map(|n| plan(&spec, &pool, n)).collect::<Vec<_>>());
    let mut other = spec.clone();
    other.seed += 1;
    assert_ne!(plans, (1..=6).map(|n| plan(&other, &pool, n)).collect::<Vec<_>>());
    // Gold items are in every plan, attention checks every 4 items, practice before the items.
    for p in &plans {
        let gold: BTreeSet<i64> = p.items().filter(|i| i.3).map(|i| i.1).collect();
        assert_eq!(gold, BTreeSet::from([2, 18]));
        assert_eq!(p.items().count(), 8);
        let checks: Vec<usize> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                PlanStep::Attention { after_position, .. } => Some(*after_position),
                _ => None,
            })
            .collect();
        assert_eq!(checks, [3, 7]);
        assert!(matches!(p.steps[2], PlanStep::Practice { item: 1, .. }));
        assert_eq!(p.steps.last(), Some(&PlanStep::Questionnaire));
    }
    // With a probability, checks are seeded per participant and position.
    let mut random = spec.clone();
    random.attention_checks.as_mut().unwrap().every = None;
    random.attention_checks.as_mut().unwrap().probability = Some(0.5);
    let count = |s: &StudySpec| -> Vec<usize> {
        (1..=24)
            .map(|n| plan(s, &pool, n).steps.iter().filter(|s| matches!(s, PlanStep::Attention { .. })).count())
            .collect()
    };
    let total: usize = count(&random).iter().sum();
    assert!((60..=132).contains(&total), "about half of 192 positions: {total}");
    assert_eq!(count(&random), count(&random));
}

#[test]
fn the_participant_flow_checks_stores_and_advances_step_by_step() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut store) = demo_store(dir.path());
    let spec = example();
    register(&mut store, &spec).unwrap();
    let mut s = Session::start(&mut store, &spec.name, "P-001").unwrap();
    assert_eq!(s.participant().number, 1);
    let total = s.progress().1;
    assert_eq!(total, 2 + 1 + 8 + 2 + 1, "consent, instructions, practice, items, checks, questionnaire");
    assert!(matches!(s.current(), Step::Consent { .. }));

    let err = s.answer(&mut store, &[], SLOW).unwrap_err();
    assert!(matches!(&err, StudyError::Answer { question, .. } if question == "consent"), "{err}");
    s.answer(&mut store, &[("consent".into(), "yes".into())], SLOW).unwrap();
    assert!(matches!(s.current(), Step::Instructions { .. }));
    let err = s.answer(&mut store, &[("verdict".into(), "real".into())], SLOW).unwrap_err();
    assert!(err.to_string().contains("`verdict`") && err.to_string().contains("not asked"), "{err}");
    s.answer(&mut store, &[], SLOW).unwrap();

    // Practice: answers checked, feedback returned.
    let Step::Practice { view, feedback, .. } = s.current() else { panic!("{:?}", s.current()) };
    assert_eq!(view.item, 1);
    let mut answers = sensible_answers(&s, &spec);
    answers.retain(|(k, _)| k != "trust");
    let err = s.answer(&mut store, &answers, SLOW).unwrap_err();
    assert_eq!(err.to_string(), "answer to `trust`: is required");
    answers.push(("trust".into(), "9".into()));
    let err = s.answer(&mut store, &answers, SLOW).unwrap_err();
    assert!(err.to_string().starts_with("answer to `trust`: `9` is not a whole number from 1 to 7"), "{err}");
    answers.pop();
    answers.push(("trust".into(), "6".into()));
    let answered = s.answer(&mut store, &answers, SLOW).unwrap();
    assert_eq!(answered.feedback.as_deref(), Some(feedback.as_str()));
    assert_eq!(answered.correct, Some(true), "item 1 is real and the first choice is `real`");

    // Items and attention checks in the plan's order, each committed before the next.
    let mut kinds = Vec::new();
    while !matches!(s.current(), Step::Questionnaire { .. }) {
        let step = s.current();
        kinds.push(step.kind());
        if let Step::Item { view, position, .. } = &step {
            assert_eq!(view.perspective.as_deref(), Some("human"));
            assert_eq!(view.format, Format::FreeText, "no stored annotated report: shown as free text");
            assert!(*position < 8);
        }
        let answers = sensible_answers(&s, &spec);
        s.answer(&mut store, &answers, SLOW).unwrap();
    }
    assert_eq!(kinds.iter().filter(|k| **k == "attention").count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == "gold").count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == "item").count(), 6);
    let answers = sensible_answers(&s, &spec);
    s.answer(&mut store, &answers, SLOW).unwrap();
    let Step::Done { completion_code: Some(code) } = s.current() else { panic!("{:?}", s.current()) };
    assert!(code.starts_with("ARGUS-FMT-") && code.len() == "ARGUS-FMT-".len() + 8, "{code}");
    assert!(s.answer(&mut store, &[], SLOW).is_err(), "nothing to answer after the end");

    // Stored: one row per question of every item, with condition, position, format and version; the participant
    // finished with the code; written feedback became rationale feedback of `study:NAME:CODE` in the format shown.
    let rows = store.study_responses(&spec.name).unwrap();
    let item_rows: Vec<_> = rows.iter().filter(|r| matches!(r.response.kind.as_str(), "item" | "gold")).collect();
    assert_eq!(item_rows.len(), 8 * spec.questions.len());
    assert!(item_rows.iter().all(|r| r.response.condition.is_some() && r.response.position.is_some()));
    assert!(item_rows.iter().all(|r| r.study_version == 1 && r.timing == SLOW));
    let p = store.study_participant(&spec.name, "P-001").unwrap().unwrap();
    assert_eq!(p.completion_code.as_deref(), Some(code.as_str()));
    assert!(p.finished_at.is_some() && !p.withdrawn);
    let feedback = store.feedback_export_rows().unwrap();
    assert_eq!(feedback.len(), 8, "one form per item (practice answers are not feedback)");
    assert!(feedback.iter().all(|f| f.annotator == "study:formats-within:P-001" && f.format == "free-text"));
    assert!(feedback.iter().all(|f| f.understanding == Some(7) && f.fb_fix.is_some()));

    // Resuming a finished participant shows the end; a second participant gets the next number.
    let again = Session::start(&mut store, &spec.name, "P-001").unwrap();
    assert_eq!(again.current(), Step::Done { completion_code: Some(code) });
    assert_eq!(Session::start(&mut store, &spec.name, "P-002").unwrap().participant().number, 2);
}

#[test]
fn declining_consent_ends_the_run_without_a_completion_code() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut store) = demo_store(dir.path());
    let spec = example();
    register(&mut store, &spec).unwrap();
    let mut s = Session::start(&mut store, &spec.name, "no-thanks").unwrap();
    s.answer(&mut store, &[("consent".into(), "no".into())], SLOW).unwrap();
    assert_eq!(s.current(), Step::Done { completion_code: None });
    let resumed = Session::start(&mut store, &spec.name, "no-thanks").unwrap();
    assert_eq!(resumed.current(), Step::Done { completion_code: None });
    assert!(resumed.participant().withdrawn);
}

#[test]
fn a_study_is_frozen_by_its_first_participant_and_a_changed_file_becomes_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut store) = demo_store(dir.path());
    let spec = example();
    let (v1, outcome) = register(&mut store, &spec).unwrap();
    assert_eq!((v1.version, outcome), (1, RegisterOutcome::Created));
    let mut draft = spec.clone();
    draft.description = "a reworded draft".into();
    let (d, outcome) = register(&mut store, &draft).unwrap();
    assert_eq!((d.version, outcome, d.id), (1, RegisterOutcome::ReplacedDraft, v1.id));
    assert_eq!(register(&mut store, &draft).unwrap().1, RegisterOutcome::Unchanged);

    let mut first = Session::start(&mut store, &spec.name, "early").unwrap();
    first.answer(&mut store, &[("consent".into(), "yes".into())], SLOW).unwrap();
    assert!(argus::studies::load(&store, &spec.name, Some(1)).unwrap().frozen_at.is_some());
    assert_eq!(register(&mut store, &draft).unwrap().1, RegisterOutcome::Unchanged);

    let mut changed = draft.clone();
    changed.min_seconds_per_item = 5.0;
    let (v2, outcome) = register(&mut store, &changed).unwrap();
    assert_eq!((v2.version, outcome), (2, RegisterOutcome::NewVersion));
    assert_eq!(argus::studies::load(&store, &spec.name, Some(1)).unwrap().spec, draft, "version 1 kept as frozen");
    // New participants join version 2 (numbered from 1); the early one resumes in version 1 at step 1.
    let late = Session::start(&mut store, &spec.name, "late").unwrap();
    assert_eq!((late.study().version, late.participant().number), (2, 1));
    let early = Session::start(&mut store, &spec.name, "early").unwrap();
    assert_eq!((early.study().version, early.progress().0), (1, 1));
}

#[test]
fn study_files_errors_name_the_file_and_the_line_or_field() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example_path()).unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, text.replacen("seed =", "colour = \"blue\"\nseed =", 1)).unwrap();
    let out = argus(&["study", "check", "--study", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("bad.toml") && stderr.contains("unknown field `colour`") && stderr.contains("line"),
        "{stderr}"
    );

    let wrong = dir.path().join("wrong.json");
    let mut spec = example();
    spec.attention_checks.as_mut().unwrap().answer = "rarely".into();
    std::fs::write(&wrong, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    let err = StudySpec::load(&wrong).unwrap_err().to_string();
    assert!(err.contains("wrong.json: attention_checks.answer: `rarely` is not one of the options"), "{err}");

    // Item ids are checked against the database when the study is registered.
    let (db, _) = demo_store(dir.path());
    let mut missing = example();
    missing.gold_items = vec![2, 99_999];
    let file = dir.path().join("missing.json");
    std::fs::write(&file, serde_json::to_string(&missing).unwrap()).unwrap();
    let out = argus(&["study", "check", "--study", file.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.json: gold_items: item 99999 is not in the database"), "{stderr}");
}

#[test]
fn three_simulated_participants_run_through_the_cli_and_export_a_tidy_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sim.sqlite");
    let (db_s, study) = (db.to_str().unwrap(), example_path());
    let out = argus(&["study", "run-sim", "--study", study.to_str().unwrap(), "--participants", "3", "--db", db_s]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("3 simulated participants (0 resumed), 3 finished, 42 steps answered"), "{stdout}");
    assert!(stdout.contains("1 failed an attention check"), "participant 3 is inattentive: {stdout}");

    let spec = example();
    {
        let store = Store::open(&db).unwrap();
        let participants = store.study_participants(&spec.name).unwrap();
        assert_eq!(participants.len(), 3);
        assert!(participants.iter().all(|p| p.completion_code.is_some()));
    }
    let out_dir = dir.path().join("export");
    let out = argus(&["study", "export", "--db", db_s, "--study", &spec.name, "--out", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut reader = csv::Reader::from_path(out_dir.join("responses.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    for column in ["participant", "item", "condition", "position", "question", "value", "time_ms", "study_version"] {
        assert!(header.iter().any(|h| h == column), "{column} missing from {header:?}");
    }
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let items: Vec<&csv::StringRecord> =
        records.iter().filter(|r| matches!(&r[col("kind")], "item" | "gold")).collect();
    assert_eq!(items.len(), 3 * 8 * spec.questions.len(), "participant x item x question");
    let keys: BTreeSet<(&str, &str, &str)> =
        items.iter().map(|r| (&r[col("participant")], &r[col("item")], &r[col("question")])).collect();
    assert_eq!(keys.len(), items.len(), "one row per participant x item x question");
    assert!(items.iter().all(|r| r[col("time_ms")].parse::<i64>().unwrap() > 0));
    assert!(items.iter().all(|r| r[col("position")].parse::<u32>().unwrap() < 8));
    let failed: BTreeSet<&str> =
        records.iter().filter(|r| &r[col("attention_failed")] == "1").map(|r| &r[col("participant")]).collect();
    assert_eq!(failed, BTreeSet::from(["sim-s0-v1-003"]));

    let jsonl = std::fs::read_to_string(out_dir.join("responses.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), records.len());
    let first: serde_json::Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(first.as_object().unwrap().keys().count(), header.len());
    let participants = csv::Reader::from_path(out_dir.join("participants.csv")).unwrap().records().count();
    assert_eq!(participants, 3);
    let frozen = std::fs::read_to_string(out_dir.join("study.toml")).unwrap();
    // The exported file names items by key; in this database it resolves to the file that was registered.
    let store = Store::open(db_s).unwrap();
    let exported = StudySpec::from_toml(&frozen).unwrap();
    assert_eq!(exported, argus::studies::keyed(&store, &spec).unwrap());
    assert_eq!(argus::studies::resolved_spec(&store, &exported).unwrap(), spec);
    drop(store);
    assert!(std::fs::read_dir(&out_dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains("tmp")));

    let out = argus(&["study", "analyse", "--db", db_s, "--study", &spec.name, "--json", "--exclude-failed-attention"]);
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((a["participants"].as_u64(), a["excluded_participants"].as_u64()), (Some(3), Some(1)));
    assert_eq!(a["conditions"][0]["items"].as_u64(), Some(8), "2 participants x 4 items per condition");
}

#[test]
fn a_run_killed_with_sigkill_resumes_at_the_exact_step_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("killed.sqlite");
    let study = example_path();
    let args = ["study", "run-sim", "--study", study.to_str().unwrap(), "--participants", "2", "--db"];
    let mut child = Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(args)
        .arg(&db)
        .env(argus::cli::study::PAUSE_AFTER_STEPS_ENV, "9")
        .env("ARGUS_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let paused = BufReader::new(stdout).lines().map_while(Result::ok).find(|l| l.starts_with("PAUSED"));
    let paused = paused.expect("the child did not pause");
    assert!(paused.contains("participant sim-s0-v1-001, next step 9"), "{paused}");
    child.kill().unwrap(); // SIGKILL: no destructors, no flush
    child.wait().unwrap();

    let spec = example();
    let mut store = Store::open(&db).unwrap();
    let p = store.study_participant(&spec.name, "sim-s0-v1-001").unwrap().unwrap();
    assert_eq!(store.completed_study_steps(p.id).unwrap(), (0..9).collect::<Vec<u32>>());
    let session = Session::start(&mut store, &spec.name, "sim-s0-v1-001").unwrap();
    assert_eq!(session.progress().0, 9, "resumes at the first step not completed");
    assert_eq!(session.current(), session.steps()[9]);
    let before = store.study_responses(&spec.name).unwrap();
    assert!(before.iter().all(|r| r.step < 9));
    drop(session);
    drop(store);

    // The same command finishes both participants, answering only what was missing.
    let out = argus(&[
        "study",
        "run-sim",
        "--study",
        study.to_str().unwrap(),
        "--participants",
        "2",
        "--db",
        db.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 simulated participants (1 resumed), 2 finished, 19 steps answered now"), "{stdout}");
    let store = Store::open(&db).unwrap();
    let rows = store.study_responses(&spec.name).unwrap();
    let mut seen = BTreeSet::new();
    for r in &rows {
        assert!(seen.insert((r.participant.clone(), r.step, r.response.question.clone())), "duplicate {r:?}");
    }
    assert_eq!(rows.iter().filter(|r| r.participant == "sim-s0-v1-001").count(), rows.len() / 2);
    assert!(before.iter().all(|b| rows.iter().any(|r| r.id == b.id && r == b)), "answers before the kill unchanged");
}

#[test]
fn exclusions_leave_out_failed_attention_and_too_fast_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut store) = demo_store(dir.path());
    let spec = example();
    // 8 participants: number 3 is inattentive, number 6 a speeder.
    let summary = sim::simulate(&mut store, &spec, 8, 0, None).unwrap();
    assert_eq!(summary.personas[2], sim::Persona::Inattentive);
    assert_eq!(summary.personas[5], sim::Persona::Speeder);

    let all = analyse(&store, &spec.name, None, Exclusions::default()).unwrap();
    assert_eq!((all.participants, all.finished, all.failed_attention), (8, 8, 1));
    assert_eq!((all.excluded_participants, all.excluded_items), (0, 0));
    assert_eq!(all.conditions.iter().map(|c| c.items).sum::<usize>(), 64);
    let speeder = all.flags.iter().find(|f| f.number == 6).unwrap();
    assert_eq!(speeder.too_fast, 8, "{speeder:?}");
    let inattentive = all.flags.iter().find(|f| f.number == 3).unwrap();
    assert_eq!((inattentive.attention_checks, inattentive.attention_failed), (2, 2));

    let attentive = analyse(&store, &spec.name, None, Exclusions { failed_attention: true, too_fast: false }).unwrap();
    assert_eq!((attentive.excluded_participants, attentive.excluded_items), (1, 8));
    assert_eq!(attentive.conditions.iter().map(|c| c.items).sum::<usize>(), 56);
    assert!(attentive.conditions.iter().all(|c| c.participants == 7));

    let slow = analyse(&store, &spec.name, None, Exclusions { failed_attention: false, too_fast: true }).unwrap();
    assert_eq!(slow.excluded_items, all.too_fast_items);
    assert_eq!(slow.conditions.iter().map(|c| c.items).sum::<usize>(), 64 - all.too_fast_items);
    for c in &slow.conditions {
        let t = c.time_ms.unwrap();
        assert!(t.ci_low >= spec.min_seconds_per_item * 1000.0 * 0.999, "{c:?}");
        assert!(c.verdict_accuracy.is_some() && c.questions.contains_key("trust"));
        assert!(c.questions.values().all(|e| e.ci_low <= e.mean && e.mean <= e.ci_high));
    }
    let both = analyse(&store, &spec.name, None, Exclusions { failed_attention: true, too_fast: true }).unwrap();
    assert!(both.excluded_items >= attentive.excluded_items.max(slow.excluded_items));

    // Repairs of the participants' written feedback (the formats work's repair loop) count per condition.
    assert!(all.conditions.iter().all(|c| c.repair.is_none()), "no repairs yet");
    let forms = store.feedback_export_rows().unwrap();
    assert!(forms.len() >= 4 && forms.iter().all(|f| f.annotator.starts_with("study:formats-within:sim-")));
    for (i, f) in forms.iter().take(4).enumerate() {
        let repair = argus::store::formats::NewRepair {
            feedback_id: f.feedback_id,
            source_rationale_id: f.rationale_id,
            repaired_rationale_id: f.rationale_id,
            format: f.format.clone(),
            model: "scripted".into(),
            prompt: "[]".into(),
            success: (i != 3).then_some(i != 0),
            ..Default::default()
        };
        store.add_repair(&repair).unwrap();
    }
    let repaired = analyse(&store, &spec.name, None, Exclusions::default()).unwrap();
    let rates: Vec<_> = repaired.conditions.iter().filter_map(|c| c.repair).collect();
    assert_eq!(
        rates.iter().map(|r| (r.repairs, r.scored, r.successes)).fold((0, 0, 0), |a, r| (
            a.0 + r.0,
            a.1 + r.1,
            a.2 + r.2
        )),
        (4, 3, 2)
    );
}

#[test]
fn routing_adjudication_and_the_agreement_command() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = demo_store(dir.path());
    let db_s = db.to_str().unwrap();
    let out = argus(&[
        "assign",
        "--db",
        db_s,
        "--annotators",
        "ann,bob,cat",
        "--k",
        "2",
        "--only",
        "1,2,3,4,5,6,7,8,9,10,11,12",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pairs = store.assignments().unwrap();
    assert_eq!(pairs.len(), 24);
    for name in ["ann", "bob", "cat"] {
        assert_eq!(store.assigned_items(name).unwrap().len(), 8, "{name}");
    }
    // Each annotator judges their items: bob disagrees on every third item.
    for (item, name) in &pairs {
        let gold = store.item(*item).unwrap().gold_label.unwrap();
        let flip = if gold == Verdict::Real { Verdict::Fake } else { Verdict::Real };
        let verdict = if name == "bob" && item % 3 == 0 { flip } else { gold };
        let annotator_id = store.annotator_id(name).unwrap();
        let j =
            NewJudgement { item_id: *item, annotator_id, verdict, confidence: None, note: None, time_spent_ms: 9_000 };
        store.record_judgement(&j).unwrap();
    }
    let open = store.disagreements().unwrap();
    assert!(!open.is_empty());
    let boss = store.annotator_id("adjudicator").unwrap();
    let settled = open[0].item_id;
    store.adjudicate(settled, boss, store.item(settled).unwrap().gold_label.unwrap(), Some("checked")).unwrap();
    assert_eq!(store.disagreements().unwrap().len(), open.len() - 1);
    assert!(store.judgements(settled).unwrap().iter().any(|j| j.adjudicated));

    let out = argus(&["agreement", "--db", db_s, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["agreement"]["n_annotators"].as_u64(), Some(3), "the adjudicator is not a rater");
    assert_eq!(s["agreement"]["n_ratings"].as_u64(), Some(24));
    assert!(s["agreement"]["alpha"]["alpha"].as_f64().is_some());
    assert_eq!(s["adjudicated_items"].as_u64(), Some(1));
    let bob = s["annotators"].as_array().unwrap().iter().find(|a| a["annotator"] == "bob").unwrap();
    assert!(bob["gold_agreement"].as_f64().unwrap() < 1.0);
    let text = argus(&["agreement", "--db", db_s]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("Krippendorff's alpha"));
}

#[test]
fn study_files_name_items_by_key_and_a_file_with_ids_is_migrated_when_registered() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut a) = demo_store(&dir.path().join("a"));
    // Database B holds another dataset first, so the demo's claims have other ids there.
    let mut b = Store::open(dir.path().join("b.sqlite")).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/import/fever-like.csv");
    let opts = argus::ingest::ImportOptions::from_flags(&argus::ingest::ImportFlags {
        map: Some("id=id,content=claim,label=label".into()),
        labels: Some("SUPPORTS=real,REFUTES=fake,NOT ENOUGH INFO=unlabelled".into()),
        ..Default::default()
    })
    .unwrap();
    argus::ingest::import_files(&mut b, &[fixture], &opts, &NoProgress).unwrap();
    argus::studio::import_demo(&mut b, &NoProgress).unwrap();

    // The shipped example names items by database id; registering migrates it to keys.
    let spec = example();
    assert!(!spec.items.ids.is_empty() && spec.items.keys.is_empty());
    let (study_a, _) = register(&mut a, &spec).unwrap();
    let keyed = argus::studies::keyed(&a, &study_a.spec).unwrap();
    assert!(keyed.items.ids.is_empty() && keyed.gold_items.is_empty());
    assert_eq!(keyed.items.keys.len(), spec.items.ids.len());
    assert!(keyed.items.keys.iter().chain(&keyed.gold_keys).all(|k| k.starts_with("liar2:")), "{keyed:?}");
    assert!(keyed.practice.iter().all(|p| p.item == 0 && p.key.is_some()));
    let out = dir.path().join("export");
    argus::studies::export::export_study(&a, &spec.name, &out).unwrap();
    let toml = std::fs::read_to_string(out.join("study.toml")).unwrap();
    assert!(toml.contains("keys = [") && toml.contains("gold_keys = [") && !toml.contains("ids = ["), "{toml}");
    assert_eq!(StudySpec::from_toml(toml.split_once('\n').unwrap().1).unwrap(), keyed, "the exported file reads back");

    // The keyed file registers in B: the same claims under other ids, the same version sha.
    let (study_b, _) = register(&mut b, &keyed).unwrap();
    assert_eq!(study_b.sha256, study_a.sha256, "a study's identity does not depend on the database");
    let texts = |store: &Store, ids: &[i64]| ids.iter().map(|&id| store.item(id).unwrap().text).collect::<Vec<_>>();
    assert_ne!(study_b.pool, study_a.pool);
    assert_eq!(texts(&b, &study_b.pool), texts(&a, &study_a.pool));
    assert_eq!(texts(&b, &study_b.spec.gold_items), texts(&a, &study_a.spec.gold_items));
    let practice = |s: &argus::studies::Study| s.spec.practice.iter().map(|p| p.item).collect::<Vec<_>>();
    assert_eq!(texts(&b, &practice(&study_b)), texts(&a, &practice(&study_a)));

    // A key the database lacks is named with its field, and nothing is registered.
    let mut bad = keyed.clone();
    bad.name = "missing-key".into();
    bad.items.keys[0] = "liar2:0000".into();
    let e = register(&mut b, &bad).unwrap_err().to_string();
    assert!(e.contains("items.keys") && e.contains("item liar2:0000 is not in the database"), "{e}");
    assert!(argus::studies::load(&b, "missing-key", None).is_err());
}
