//! User studies in the studio, driven headless with egui_kittest: a participant's whole run by keyboard only (rows
//! and completion code checked in SQLite through the library), resuming a participant at the exact step in a new
//! window, the study designer (live validation naming the field, registering, the plan preview), the analysis panel
//! over simulated participants with its exclusions and export, and the agreement panel with adjudication by key.

use std::path::{Path, PathBuf};

use argus::domain::{NewJudgement, Verdict};
use argus::store::Store;
use argus::studies::flow::Step;
use argus::studies::spec::StudySpec;
use argus::ui::testing::AppTesting as _;
use argus::ui::{AppCommand, ArgusApp, StudioOptions};
use egui::Key;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use super::ui::step_until;

const STUDY: &str = "formats-within";

fn example() -> StudySpec {
    StudySpec::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/studies/formats-within.toml")).unwrap()
}

/// A fresh demo database; with `register`, the example study is registered in it.
fn demo_db(dir: &Path, register: bool) -> PathBuf {
    let db = dir.join("study.sqlite");
    let mut store = Store::open(&db).unwrap();
    argus::studio::import_demo(&mut store, &argus::jobs::NoProgress).unwrap();
    if register {
        argus::studies::register(&mut store, &example()).unwrap();
    }
    db
}

/// The studio on `db` as "ada", in a headless 1280x800 window (the settings live in `dir`).
fn studio_at(dir: &Path, db: &Path) -> Harness<'static, ArgusApp> {
    let opts = StudioOptions {
        db: Some(db.to_path_buf()),
        seed_demo: false,
        annotator: Some("ada".into()),
        settings_path: dir.join("settings.json"),
        quit_after_frames: None,
        device: Some(argus::models::DeviceChoice::Cpu),
        // Where the built-in demo would live: no test's own database (opening the demo trains its first model).
        demo_db: dir.join("builtin-demo.sqlite"),
        import: None,
    };
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(move |cc| ArgusApp::new(cc.egui_ctx.clone(), opts));
    step_until(&mut harness, "the database to open", |app| app.workspace().is_some());
    harness
}

fn press(h: &mut Harness<'static, ArgusApp>, key: Key) {
    h.key_press(key);
    h.step();
    h.step();
}

fn type_text(h: &mut Harness<'static, ArgusApp>, text: &str) {
    h.event(egui::Event::Text(text.into()));
    h.step();
}

fn step_of(h: &Harness<'static, ArgusApp>) -> (usize, Step) {
    let (index, _, step) = h.state().participant_step().expect("participant mode");
    (index, step)
}

/// Starts participant `code` through Studies ▸ Run a participant… (the code typed into the dialog).
fn start_participant(h: &mut Harness<'static, ArgusApp>, code: &str) {
    h.state_mut().queue(AppCommand::OpenRunParticipant);
    h.run_steps(3);
    assert_eq!(h.get_by_label("Study:").value().as_deref(), Some(STUDY));
    h.get_by_label("Participant code:").focus();
    h.step();
    h.get_by_label("Participant code:").type_text(code);
    h.step();
    h.get_by_label("Start").click();
    h.run_steps(3);
    assert!(h.state().is_participant_mode(), "{:?}", h.state().notice());
}

/// Answers the current step by keyboard: number keys (which also move to the next question), text typed into the
/// text question that has the keyboard, Tab to the next one, Enter to submit. Practice feedback is dismissed with
/// Enter too. Returns the step answered.
fn answer_by_keyboard(h: &mut Harness<'static, ArgusApp>) -> Step {
    let (_, step) = step_of(h);
    match &step {
        Step::Consent { .. } => press(h, Key::Num1),
        Step::Instructions { .. } => {}
        Step::Practice { .. } | Step::Item { .. } => {
            // verdict 1 (real) or 2 (fake), understanding 5, trust 6, ease 3; then fb_what has the keyboard.
            let verdict =
                if matches!(step, Step::Item { position, .. } if position % 2 == 1) { Key::Num2 } else { Key::Num1 };
            for key in [verdict, Key::Num5, Key::Num6, Key::Num3] {
                press(h, key);
            }
            type_text(h, "The second sentence gives no source.");
            press(h, Key::Tab);
            type_text(h, "Name the source of the figure.");
        }
        Step::Attention { options, .. } => {
            let right = options.iter().position(|o| o == "often").unwrap();
            press(h, [Key::Num1, Key::Num2, Key::Num3, Key::Num4][right]);
        }
        Step::Questionnaire { .. } => {
            // Two 7-point Likert items, then the optional comments field.
            press(h, Key::Num6);
            press(h, Key::Num2);
            type_text(h, "Clear enough.");
        }
        Step::Done { .. } => panic!("nothing to answer at the end"),
    }
    press(h, Key::Enter);
    if matches!(step, Step::Practice { .. }) {
        h.get_by_label("Feedback on the practice item");
        press(h, Key::Enter);
    }
    step
}

#[test]
fn a_participant_runs_the_whole_study_by_keyboard_and_every_answer_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_db(dir.path(), true);
    let mut h = studio_at(dir.path(), &db);
    start_participant(&mut h, "P001");
    // Participant mode: no menus, no item list, no judgement bar.
    assert!(h.query_by_label("Studies").is_none() && h.query_by_label("Fake (f)").is_none());
    h.get_by_label("Consent");
    assert_eq!(
        h.state().participant_step().unwrap().1,
        14,
        "consent, instructions, 1 practice, 8 items, 2 checks, questionnaire"
    );

    // Enter without an answer: the library's error, and nothing stored.
    press(&mut h, Key::Enter);
    let error = h.state().participant_error().unwrap().to_owned();
    assert!(error.contains("consent") && error.contains("required"), "{error}");
    h.get_by_label(&error);
    assert_eq!(step_of(&h).0, 0);

    // The window loses focus once while the consent shows.
    h.input_mut().focused = false;
    h.step();
    h.input_mut().focused = true;
    h.step();
    let mut kinds = Vec::new();
    for _ in 0..20 {
        if matches!(step_of(&h).1, Step::Done { .. }) {
            break;
        }
        if let Step::Item { position: 0, .. } = step_of(&h).1 {
            // The first item shows the news and the explanation; Enter with nothing answered names the question.
            h.get_by_label("Explanation");
            // The question's prompt and its group of answers (one keyboard stop) both carry it.
            assert_eq!(h.query_all_by_label("Is this news real or fake?").count(), 2);
            h.check_accessibility();
            press(&mut h, Key::Enter);
            assert!(h.state().participant_error().unwrap().contains("`verdict`: is required"));
        }
        let kind = answer_by_keyboard(&mut h).kind();
        kinds.push(if kind == "gold" { "item" } else { kind });
    }
    let expected = ["consent", "instructions", "practice", "item", "item", "item", "item", "attention"];
    let expected: Vec<&str> =
        expected.into_iter().chain(["item", "item", "item", "item", "attention", "questionnaire"]).collect();
    assert_eq!(kinds, expected);
    let Step::Done { completion_code: Some(code) } = step_of(&h).1 else { panic!("not done: {:?}", step_of(&h)) };
    h.get_by_label("Thank you!");
    h.get_by_label(&code);
    h.check_accessibility();

    // In SQLite, through the library: every answer, with its timing, and the completion.
    let store = Store::open(&db).unwrap();
    let rows = store.study_responses(STUDY).unwrap();
    // consent 1 + practice 6 + 8 items × 6 questions + 2 checks + questionnaire 3.
    assert_eq!(rows.len(), 60);
    assert!(rows.iter().all(|r| r.participant == "P001" && r.timing.first_action_ms <= r.timing.total_ms));
    let attention: Vec<_> = rows.iter().filter(|r| r.response.kind == "attention").collect();
    assert!(attention.iter().all(|r| r.response.correct == Some(true) && r.response.value == "often"));
    let completed = store.completed_study_steps(store.study_participant(STUDY, "P001").unwrap().unwrap().id).unwrap();
    assert_eq!(completed.len(), 14);
    let item_rows: Vec<_> = rows.iter().filter(|r| matches!(r.response.kind.as_str(), "item" | "gold")).collect();
    assert!(
        item_rows
            .iter()
            .any(|r| r.response.question == "fb_fix" && r.response.value == "Name the source of the figure.")
    );
    assert!(item_rows.iter().any(|r| r.response.question == "understanding" && r.response.value == "5"));
    let questionnaire: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.response.kind == "questionnaire")
        .map(|r| (r.response.question.as_str(), r.response.value.as_str()))
        .collect();
    assert_eq!(questionnaire, [("format_preference", "6"), ("effort", "2"), ("comments", "Clear enough.")]);
    assert!(rows.iter().all(|r| r.timing.focus_lost == u32::from(r.step == 0)), "focus lost once, on the consent");
    let participant = store.study_participant(STUDY, "P001").unwrap().unwrap();
    assert_eq!(participant.completion_code.as_deref(), Some(code.as_str()));
    assert!(participant.finished_at.is_some() && !participant.withdrawn);

    // Back to the studio.
    h.get_by_label("Back to the studio").click();
    h.run_steps(3);
    assert!(!h.state().is_participant_mode());
    h.get_by_label("Studies");
}

#[test]
fn starting_again_with_the_same_code_resumes_at_the_exact_step() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_db(dir.path(), true);
    {
        let mut h = studio_at(dir.path(), &db);
        start_participant(&mut h, "P002");
        // consent, instructions, practice (+ its feedback), the first item.
        for _ in 0..4 {
            answer_by_keyboard(&mut h);
        }
        assert_eq!(step_of(&h).0, 4);
        // Half an answer on the second item is not stored.
        press(&mut h, Key::Num2);
    }
    let mut h = studio_at(dir.path(), &db);
    start_participant(&mut h, "P002");
    assert_eq!(h.state().participant_resumed_at(), Some(5));
    h.get_by_label("Resuming at step 5");
    let (index, step) = step_of(&h);
    assert_eq!(index, 4);
    assert!(matches!(step, Step::Item { position: 1, .. }), "{step:?}");
    h.get_by_label("Item 2 of 8");
    answer_by_keyboard(&mut h);
    assert!(h.state().participant_resumed_at().is_none());
    let store = Store::open(&db).unwrap();
    let rows = store.study_responses(STUDY).unwrap();
    let steps: std::collections::BTreeSet<u32> = rows.iter().map(|r| r.step).collect();
    assert_eq!(steps.into_iter().collect::<Vec<_>>(), [0, 2, 3, 4], "instructions store no answer; no step twice");
    assert_eq!(rows.iter().filter(|r| r.step == 4).count(), 6);
    assert_eq!(store.study_participants(STUDY).unwrap().len(), 1, "the same participant, not a new one");
}

#[test]
fn declining_consent_ends_the_run_without_a_code() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_db(dir.path(), true);
    let mut h = studio_at(dir.path(), &db);
    start_participant(&mut h, "P003");
    press(&mut h, Key::Num2);
    press(&mut h, Key::Enter);
    assert_eq!(step_of(&h).1, Step::Done { completion_code: None });
    h.get_by_label_contains("You declined to take part");
    let store = Store::open(&db).unwrap();
    let p = store.study_participant(STUDY, "P003").unwrap().unwrap();
    assert!(p.withdrawn && p.completion_code.is_none());
    let rows = store.study_responses(STUDY).unwrap();
    assert_eq!(
        rows.iter().map(|r| (r.response.question.as_str(), r.response.value.as_str())).collect::<Vec<_>>(),
        [("consent", "no")]
    );
}

#[test]
fn the_designer_validates_as_you_type_registers_and_previews_the_plans() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_db(dir.path(), false);
    let mut h = studio_at(dir.path(), &db);
    h.state_mut().queue(AppCommand::ToggleStudyDesigner);
    h.run_steps(3);
    h.get_by_label("Start from the example").click();
    h.run_steps(3);
    assert_eq!(h.state().study_draft().0, &example());
    assert_eq!(h.state().study_draft().1, None);
    h.get_by_label("Valid");
    // The plan of the first four participants: the conditions alternate, counterbalanced.
    h.get_by_label("#4");
    assert!(h.query_all_by_label_contains("annotated-report\nitem").count() >= 16);

    // A duplicate condition name: the error names the field.
    let names: Vec<_> = h.query_all_by_label("name").collect();
    assert_eq!(names.len(), 2);
    names[1].focus();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, Key::A);
    h.step();
    h.get_all_by_label("name").nth(1).unwrap().type_text("annotated-report");
    h.run_steps(2);
    let problem = h.state().study_draft().1.unwrap().to_owned();
    assert!(problem.starts_with("conditions[1].name"), "{problem}");
    h.get_by_label(&format!("Not valid: {problem}"));
    h.key_press_modifiers(egui::Modifiers::COMMAND, Key::A);
    h.step();
    h.get_all_by_label("name").nth(1).unwrap().type_text("plain");
    h.run_steps(2);
    assert_eq!(h.state().study_draft().1, None);

    // Register: a new study; save as TOML: it reads back equal.
    h.get_by_label("Register in the database").click();
    h.run_steps(2);
    let message = h.state().study_designer_message().unwrap().to_owned();
    assert!(message.contains("new study, version 1"), "{message}");
    let store = Store::open(&db).unwrap();
    let study = argus::studies::load(&store, STUDY, None).unwrap();
    assert_eq!(study.spec.conditions[1].name, "plain");
    let file = dir.path().join("saved.toml");
    h.get_by_label("File:").focus();
    h.step();
    h.get_by_label("File:").type_text(&file.display().to_string());
    h.step();
    h.get_by_label("Save").click();
    h.run_steps(2);
    assert_eq!(StudySpec::load(&file).unwrap(), study.spec);
    h.check_accessibility();
}

#[test]
fn the_analysis_panel_shows_each_condition_with_intervals_and_applies_the_exclusions() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_db(dir.path(), false);
    {
        // 8 simulated participants, seed 1: number 2 is inattentive (fails the checks), number 5 answers too fast.
        let mut store = Store::open(&db).unwrap();
        let summary = argus::studies::sim::simulate(&mut store, &example(), 8, 1, None).unwrap();
        assert_eq!(summary.finished, 8);
    }
    let mut h = studio_at(dir.path(), &db);
    h.state_mut().queue(AppCommand::ToggleAnalysisPanel);
    h.run_steps(4);
    let a = h.state().study_analysis().expect("analysed on open").clone();
    assert_eq!((a.participants, a.conditions.len(), a.excluded_participants), (8, 2, 0));
    assert!(a.failed_attention >= 1 && a.too_fast_items >= 1, "{a:?}");
    // A row per condition, with its mean and interval for each measure.
    for c in &a.conditions {
        assert!(h.query_all_by_label(&c.condition).count() >= 2, "table row and legend");
        let trust = c.questions["trust"];
        h.get_by_label(&format!("{:.2} [{:.2}, {:.2}] ({})", trust.mean, trust.ci_low, trust.ci_high, trust.n));
    }
    assert!(h.query_by_label_contains(&format!("failed an attention check: {} (kept)", a.failed_attention)).is_some());
    h.get_by_label_contains("Flagged participants");
    // Analysed on the UI thread (about 25 ms here in a debug build); a generous bound for a busy machine.
    let millis = h.state().study_analysis_millis().unwrap();
    eprintln!("analysis of 8 simulated participants: {millis:.1} ms");
    assert!(millis < 250.0, "{millis} ms");

    // Exclude both: the panel analyses again, and says what was left out.
    h.get_by_label("exclude failed attention checks").click();
    h.run_steps(3);
    h.get_by_label("exclude too-fast answers").click();
    h.run_steps(3);
    let b = h.state().study_analysis().unwrap().clone();
    assert_eq!(b.exclusions, argus::studies::analysis::Exclusions { failed_attention: true, too_fast: true });
    assert_eq!(b.excluded_participants, a.failed_attention);
    assert!(b.excluded_items > 0);
    // The same figures as the library's own analysis.
    let store = Store::open(&db).unwrap();
    assert_eq!(b, argus::studies::analysis::analyse(&store, STUDY, None, b.exclusions).unwrap());
    let text = format!(
        "failed an attention check: {} ({} excluded) · too-fast item answers: {} ({} excluded)",
        b.failed_attention, b.excluded_participants, b.too_fast_items, b.too_fast_items
    );
    assert!(h.query_by_label_contains(&text).is_some(), "{text}");
    h.check_accessibility();

    // Export into a folder typed in the field, in the background.
    let out = dir.path().join("export");
    h.get_by_label("Export to folder:").focus();
    h.step();
    h.get_by_label("Export to folder:").type_text(&out.display().to_string());
    h.step();
    h.get_by_label("Export").click();
    step_until(&mut h, "the export", |app| {
        app.notice().is_some_and(|n| n.text.starts_with("Exported study") || n.is_error)
    });
    assert!(!h.state().notice().unwrap().is_error, "{}", h.state().notice().unwrap().text);
    assert!(out.join("responses.csv").exists() && out.join("participants.csv").exists());
}

#[test]
fn the_agreement_panel_shows_kappa_and_f_records_the_adjudicated_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_db(dir.path(), false);
    {
        // Three annotators on 12 items; bob disagrees on items 3 and 7, cy on item 7 and 11.
        let store = Store::open(&db).unwrap();
        for (name, flips) in [("ann", vec![]), ("bob", vec![3, 7]), ("cy", vec![7, 11])] {
            let who = store.annotator_id(name).unwrap();
            for item in 1..=12 {
                let base = if item % 3 == 0 { Verdict::Real } else { Verdict::Fake };
                let verdict = match (flips.contains(&item), base) {
                    (true, Verdict::Fake) => Verdict::Real,
                    (true, _) => Verdict::Fake,
                    (false, v) => v,
                };
                let note = (name == "bob" && item == 3).then(|| "the quote is out of context".to_owned());
                let j = NewJudgement {
                    item_id: item,
                    annotator_id: who,
                    verdict,
                    confidence: None,
                    note,
                    time_spent_ms: 9_000,
                };
                store.record_judgement(&j).unwrap();
            }
        }
    }
    let mut h = studio_at(dir.path(), &db);
    h.state_mut().queue(AppCommand::ToggleAgreementPanel);
    h.run_steps(4);
    let summary = h.state().agreement_summary().expect("read on open").clone();
    let expected = argus::studies::metrics::agreement_summary(&Store::open(&db).unwrap()).unwrap();
    assert_eq!(summary, expected);
    let kappa = summary.agreement.fleiss.kappa.unwrap();
    h.get_by_label(&format!("Fleiss' kappa {kappa:.3}"));
    h.get_by_label_contains("Krippendorff's alpha");
    assert_eq!(summary.open_disagreements, 3);
    assert!(h.query_all_by_label("bob").count() >= 1, "the per-annotator table");
    h.check_accessibility();

    // Adjudication: item 3 first, with bob's note; a note of our own, then f.
    h.get_by_label("Adjudication (3 open)").click();
    h.run_steps(3);
    h.get_by_label("Item 3");
    h.get_by_label("“the quote is out of context”");
    h.get_by_label("Adjudicator's note:").focus();
    h.step();
    h.get_by_label("Adjudicator's note:").type_text("checked the source");
    h.step();
    // While typing, f is a letter; Esc leaves the field, then f records the final verdict.
    press(&mut h, Key::Escape);
    press(&mut h, Key::F);
    let store = Store::open(&db).unwrap();
    let adjudicated: Vec<(i64, String, Option<String>)> = store
        .connection()
        .prepare("SELECT item_id, verdict, note FROM judgements WHERE adjudicated = 1")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(adjudicated, vec![(3, "fake".to_owned(), Some("checked the source".to_owned()))]);
    assert_eq!(store.disagreements().unwrap().len(), 2);
    assert_eq!(h.state().open_disagreements().len(), 2);
    h.get_by_label("Adjudication (2 open)");
    // ada's own judgements were not touched: f went to the adjudication.
    let ada = store.annotator_id("ada").unwrap();
    assert!(store.standing_verdict(1, ada).unwrap().is_none());
}
