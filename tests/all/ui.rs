//! The studio window, driven headless with egui_kittest: widgets are found by their labels, keys are pressed as a
//! person presses them, and what lands in SQLite is checked with a separate connection.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use argus::domain::Verdict;
use argus::store::Store;
use argus::ui::testing::AppTesting as _;
use argus::ui::{ArgusApp, StudioOptions};
use egui::Key;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};

pub(super) struct Studio {
    pub(super) _dir: tempfile::TempDir,
    pub(super) db: PathBuf,
    pub(super) harness: Harness<'static, ArgusApp>,
}

fn options(dir: &Path, db: &Path, annotator: Option<&str>) -> StudioOptions {
    StudioOptions {
        db: Some(db.to_path_buf()),
        seed_demo: true,
        annotator: annotator.map(str::to_owned),
        settings_path: dir.join("settings.json"),
        quit_after_frames: None,
        device: Some(argus::models::DeviceChoice::Cpu),
        // Where the built-in demo would live: no test's own database (opening the demo trains its first model).
        demo_db: dir.join("builtin-demo.sqlite"),
        import: None,
    }
}

/// The studio app in a headless 1280x800 window.
fn studio_window(opts: StudioOptions) -> Harness<'static, ArgusApp> {
    Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(move |cc| ArgusApp::new(cc.egui_ctx.clone(), opts))
}

/// Steps the harness (in real time: loading runs on a job thread) until `done` holds.
pub(super) fn step_until(harness: &mut Harness<'static, ArgusApp>, what: &str, done: impl Fn(&ArgusApp) -> bool) {
    step_within(harness, what, Duration::from_secs(60), done);
}

fn step_within(
    harness: &mut Harness<'static, ArgusApp>,
    what: &str,
    limit: Duration,
    done: impl Fn(&ArgusApp) -> bool,
) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.step();
}

/// The studio on a fresh copy of the built-in demo, as annotator "ada".
fn demo_studio() -> Studio {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.sqlite");
    let opts = options(dir.path(), &db, Some("ada"));
    let mut harness = studio_window(opts);
    step_until(&mut harness, "the demo to open", |app| app.workspace().is_some());
    Studio { _dir: dir, db, harness }
}

fn my_verdicts(db: &Path) -> Vec<(i64, Verdict)> {
    let store = Store::open(db).unwrap();
    let ada = store.annotator_id("ada").unwrap();
    (1..=300).filter_map(|id| store.standing_verdict(id, ada).unwrap().map(|v| (id, v))).collect()
}

#[test]
fn opens_on_the_demo_and_f_stores_a_judgement_before_the_next_frame() {
    let mut s = demo_studio();
    assert_eq!(s.harness.state().workspace().unwrap().progress(), (0, 300));
    s.harness.get_by_label("Fake (f)");
    s.harness.get_by_label("Real (r)");
    s.harness.key_press(Key::F);
    s.harness.step();
    assert_eq!(my_verdicts(&s.db), vec![(1, Verdict::Fake)]);
    // The list shows it, the status bar counts it, the selection moved on.
    s.harness.step();
    assert!(s.harness.query_by_label_contains("judged 1 / 300").is_some());
    assert_eq!(s.harness.state().workspace().unwrap().selected_id(), Some(2));
}

#[test]
fn keyboard_flow_labels_skips_navigates_and_undoes() {
    let mut s = demo_studio();
    for key in [Key::F, Key::R, Key::U, Key::Space, Key::F, Key::K, Key::K, Key::J] {
        s.harness.key_press(key);
        s.harness.step();
    }
    // f on 1, r on 2, u on 3, skip 4, f on 5, then back twice to 4 and forward to 5... the cursor is on item 5.
    assert_eq!(
        my_verdicts(&s.db),
        vec![(1, Verdict::Fake), (2, Verdict::Real), (3, Verdict::Other), (5, Verdict::Fake)]
    );
    assert_eq!(s.harness.state().workspace().unwrap().selected_id(), Some(5));
    s.harness.key_press_modifiers(egui::Modifiers::COMMAND, Key::Z);
    s.harness.step();
    assert_eq!(my_verdicts(&s.db), vec![(1, Verdict::Fake), (2, Verdict::Real), (3, Verdict::Other)]);
    let store = Store::open(&s.db).unwrap();
    let rows: i64 = store.connection().query_row("SELECT COUNT(*) FROM judgements", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 4, "undo keeps the row");
}

#[test]
fn clicking_the_buttons_works_like_the_keys() {
    let mut s = demo_studio();
    s.harness.get_by_label("Real (r)").click();
    s.harness.step();
    s.harness.step();
    assert_eq!(my_verdicts(&s.db), vec![(1, Verdict::Real)]);
    s.harness.get_by_label("Undo (ctrl+z)").click();
    s.harness.step();
    s.harness.step();
    assert!(my_verdicts(&s.db).is_empty());
    // Every input of the main view has an accessible name, the confidence slider included once it is enabled.
    s.harness.get_by_label("Confidence").click();
    s.harness.step();
    s.harness.step();
    s.harness.check_accessibility();
}

#[test]
fn typing_in_the_search_field_does_not_judge() {
    let mut s = demo_studio();
    s.harness.key_press(Key::Slash);
    s.harness.step();
    s.harness.step();
    s.harness.get_by_label("Search:").type_text("fraud");
    s.harness.step();
    s.harness.step();
    assert!(my_verdicts(&s.db).is_empty(), "letters typed into the search field are not verdicts");
    let ws = s.harness.state().workspace().unwrap();
    assert_eq!(ws.filter().text, "fraud");
    assert!(ws.filtered_len() < 300);
}

#[test]
fn question_mark_shows_the_shortcut_sheet() {
    let mut s = demo_studio();
    assert!(s.harness.query_by_label("Keyboard shortcuts").is_none());
    s.harness.key_press(Key::Questionmark);
    s.harness.step();
    s.harness.step();
    assert!(s.harness.query_by_label("Keyboard shortcuts").is_some());
}

#[test]
fn asks_for_the_annotator_and_remembers_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.sqlite");
    let opts = options(dir.path(), &db, None);
    let mut harness = studio_window(opts);
    harness.step();
    harness.step();
    harness.get_by_label("Who is annotating?");
    // The name field has the keyboard from the start: a person just types.
    harness.event(egui::Event::Text("grace".into()));
    harness.step();
    harness.step();
    assert_eq!(harness.get_by_label("Your name:").value().as_deref(), Some("grace"));
    harness.get_by_label("Start annotating").click();
    step_until(&mut harness, "the demo to open", |app| app.workspace().is_some());
    assert_eq!(harness.state().workspace().unwrap().annotator(), "grace");
    let settings = argus::config::Settings::load_from(&dir.path().join("settings.json"));
    assert_eq!(settings.annotator.as_deref(), Some("grace"));
    assert_eq!(settings.last_db.as_deref(), Some(db.as_path()));
}

#[test]
fn a_newer_database_is_shown_as_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("future.sqlite");
    Store::open(&db).unwrap().connection().pragma_update(None, "user_version", 42).unwrap();
    let opts = options(dir.path(), &db, Some("ada"));
    let mut harness = studio_window(opts);
    step_until(&mut harness, "the open to fail", |app| app.open_error().is_some());
    harness.get_by_label("Could not open the database");
    assert!(harness.state().open_error().unwrap().contains("newer"));
}

/// Regression: asking for text focus before the window had it made winit drop all input under Xvfb (no window
/// manager); the field now takes the keyboard once the window is focused.
#[test]
fn name_field_takes_the_keyboard_once_the_window_is_focused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.sqlite");
    let opts = options(dir.path(), &db, None);
    let mut harness = studio_window(opts);
    harness.input_mut().focused = false;
    harness.step();
    harness.step();
    harness.input_mut().focused = true;
    harness.event(egui::Event::WindowFocused(true));
    harness.step();
    harness.step();
    harness.event(egui::Event::Text("grace".into()));
    harness.step();
    harness.step();
    assert_eq!(harness.get_by_label("Your name:").value().as_deref(), Some("grace"));
}

#[test]
fn ctrl_z_in_a_text_field_does_not_undo_a_judgement() {
    let mut s = demo_studio();
    s.harness.key_press(Key::F);
    s.harness.step();
    assert_eq!(my_verdicts(&s.db).len(), 1);
    s.harness.get_by_label("Note:").focus();
    s.harness.step();
    s.harness.get_by_label("Note:").type_text("typo");
    s.harness.step();
    // ctrl+z belongs to the text field (it takes back the typing), f is a letter: neither reaches the judgements.
    s.harness.key_press_modifiers(egui::Modifiers::COMMAND, Key::Z);
    s.harness.step();
    s.harness.key_press(Key::F);
    s.harness.step();
    assert_eq!(my_verdicts(&s.db), vec![(1, Verdict::Fake)]);
    assert_eq!(s.harness.get_by_label("Note:").value().as_deref(), Some(""));
    s.harness.get_by_label("Note:").type_text("check the source");
    s.harness.step();
    // Esc leaves the field; then the keys are shortcuts again, and the note goes with the next verdict.
    s.harness.key_press(Key::Escape);
    s.harness.step();
    s.harness.key_press(Key::R);
    s.harness.step();
    assert_eq!(my_verdicts(&s.db), vec![(1, Verdict::Fake), (2, Verdict::Real)]);
    let note: Option<String> = Store::open(&s.db)
        .unwrap()
        .connection()
        .query_row("SELECT note FROM judgements WHERE item_id = 2", [], |r| r.get(0))
        .unwrap();
    assert_eq!(note.as_deref(), Some("check the source"));
}

#[test]
fn modified_letters_are_not_verdicts() {
    let mut s = demo_studio();
    s.harness.key_press_modifiers(egui::Modifiers::ALT, Key::F);
    s.harness.step();
    s.harness.key_press_modifiers(egui::Modifiers::SHIFT, Key::R);
    s.harness.step();
    assert!(my_verdicts(&s.db).is_empty());
}

#[test]
fn file_import_asks_for_a_column_map_for_a_generic_csv_and_imports_in_the_background() {
    let mut s = demo_studio();
    let csv = s._dir.path().join("claims.csv");
    std::fs::write(
        &csv,
        "headline,verdict,why\n\"Moon made of cheese\",fake,\"it is rock\"\n\"Water is wet\",real,\"physics\"\n",
    )
    .unwrap();
    s.harness.state_mut().queue(argus::ui::AppCommand::ChooseImport(vec![csv]));
    // One frame handles the command, the next lays the new window out unseen, the third shows it.
    s.harness.run_steps(3);
    assert!(s.harness.state().is_import_dialog_open());
    s.harness.get_by_label("Column map:").focus();
    s.harness.step();
    s.harness.get_by_label("Column map:").type_text("content=headline,label=verdict,rationale:human=why");
    s.harness.step();
    s.harness.get_by_label("Start import").click();
    step_until(&mut s.harness, "the import to finish", |app| {
        app.workspace().is_some_and(|ws| ws.progress().1 == 302) && !app.has_running_jobs()
    });
    let stats = Store::open(&s.db).unwrap().stats().unwrap();
    assert_eq!((stats.items, stats.datasets), (302, 2));
    assert!(s.harness.state().notice().unwrap().text.contains("Imported 2 items"));
}

#[test]
fn a_bad_file_is_reported_in_the_window_and_imports_nothing() {
    let mut s = demo_studio();
    let bad = s._dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"claim\": \"ok\", \"json_file_id\": \"1.json\", \"label\": \"true\"}\n{not json\n")
        .unwrap();
    s.harness.state_mut().queue(argus::ui::AppCommand::ChooseImport(vec![bad.clone()]));
    s.harness.run_steps(3);
    // The preview already reads the bad line: the dialog names it and will not start.
    assert!(s.harness.query_by_label_contains("bad.jsonl:2: malformed JSON").is_some());
    assert!(s.harness.get_by_label("Start import").accesskit_node().is_disabled(), "Start import is disabled");
    // An import started anyway (as the command line would) fails with the same line and imports nothing.
    s.harness.get_by_label("Cancel").click();
    s.harness.step();
    s.harness.state_mut().queue(argus::ui::AppCommand::ImportFiles { paths: vec![bad], flags: Default::default() });
    step_until(&mut s.harness, "the import to fail", |app| app.notice().is_some_and(|n| n.is_error));
    let notice = s.harness.state().notice().unwrap().text.clone();
    assert!(notice.contains("bad.jsonl:2"), "{notice}");
    assert_eq!(Store::open(&s.db).unwrap().stats().unwrap().items, 300);
}

#[test]
fn perspectives_are_edited_in_the_studio_and_stored() {
    let mut s = demo_studio();
    s.harness.state_mut().queue(argus::ui::AppCommand::TogglePerspectives);
    s.harness.run_steps(3);
    s.harness.get_by_label("Commonsense (cs)").click();
    s.harness.run_steps(2);
    let verdict_questions = s.harness.get_all_by_label("Verdict question:").count();
    assert_eq!(verdict_questions, 1, "one perspective is open");
    s.harness.get_by_label("Name:").focus();
    s.harness.step();
    s.harness.get_by_label("Name:").type_text(" and plausibility");
    s.harness.step();
    s.harness.get_by_label("Save").click();
    s.harness.run_steps(2);
    let stored = Store::open(&s.db).unwrap().perspectives().unwrap();
    assert_eq!(stored.iter().find(|p| p.key == "cs").unwrap().name, "Commonsense and plausibility");
    assert_eq!(s.harness.state().workspace().unwrap().perspectives()[1].name, "Commonsense and plausibility");

    for (label, text) in [("New key:", "src"), ("New name:", "Source credibility")] {
        s.harness.get_by_label(label).focus();
        s.harness.step();
        s.harness.get_by_label(label).type_text(text);
        s.harness.step();
    }
    s.harness.get_by_label("Add").click();
    s.harness.run_steps(2);
    let added = Store::open(&s.db).unwrap().perspectives().unwrap().into_iter().find(|p| p.key == "src").unwrap();
    assert_eq!(added.name, "Source credibility");
    assert!(added.prompt.contains("{news}") && added.verdict_question.contains("fake"));
}

#[test]
fn cancelling_an_import_imports_nothing_and_says_so() {
    let mut s = demo_studio();
    // Large enough that the job is still running when Cancel is pressed.
    let big = s._dir.path().join("big.csv");
    argus::bench::write_synthetic_liar2(&big, 60_000, 1).unwrap();
    s.harness.state_mut().queue(argus::ui::AppCommand::ChooseImport(vec![big]));
    // The centred dialog settles its size (and so its place) once the preview is laid out.
    s.harness.run_steps(8);
    // Even a file Argus recognises (LIAR2 here) is previewed first.
    assert!(s.harness.query_by_label_contains("Read as liar2-csv").is_some());
    s.harness.get_by_label("Start import").click();
    step_until(&mut s.harness, "the import to start", |app| app.has_running_jobs());
    s.harness.get_by_label("Cancel").click();
    step_until(&mut s.harness, "the import to stop", |app| !app.has_running_jobs());
    s.harness.run_steps(2);
    assert_eq!(s.harness.state().notice().unwrap().text, "Import cancelled; nothing was imported.");
    assert_eq!(Store::open(&s.db).unwrap().stats().unwrap().items, 300);
}

/// The demo studio with the rationale writer set to `model` (a GGUF path), short greedy rationales.
fn studio_with_writer(model: &Path) -> Studio {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.sqlite");
    let mut settings = argus::config::Settings::default();
    settings.writer.local_model = model.display().to_string();
    settings.writer.params = argus::models::GenerationParams::greedy(24);
    settings.save_to(&dir.path().join("settings.json")).unwrap();
    let opts = options(dir.path(), &db, Some("ada"));
    let mut harness = studio_window(opts);
    step_until(&mut harness, "the demo to open", |app| app.workspace().is_some());
    Studio { _dir: dir, db, harness }
}

/// Like `step_until`, with a longer limit for model work.
fn step_until_slow(harness: &mut Harness<'static, ArgusApp>, what: &str, done: impl Fn(&ArgusApp) -> bool) {
    step_within(harness, what, Duration::from_secs(300), done);
}

#[test]
fn the_writer_streams_three_perspectives_with_verdicts_into_the_item_view() {
    let gguf = super::models::model(argus::models::catalog::TEST_GENERATOR);
    let mut s = studio_with_writer(&gguf);
    let item = s.harness.state().workspace().unwrap().selected_id().unwrap();
    let generated = |db: &Path| {
        let store = Store::open(db).unwrap();
        store.rationales(item).unwrap().into_iter().filter(|r| r.model.is_some()).count()
    };
    assert_eq!(generated(&s.db), 0);
    s.harness.get_by_label("Write rationales").click();
    s.harness.step();
    // Text streams in before the first rationale is stored.
    step_until_slow(&mut s.harness, "streamed text", |app| {
        app.live_rationales(item).iter().any(|r| !r.text.is_empty())
    });
    assert!(s.harness.query_by_label("Stop writing").is_some());
    step_until_slow(&mut s.harness, "the writer to finish", |app| !app.is_writing());
    s.harness.step();
    assert_eq!(generated(&s.db), 3, "td, cs and fc");
    let notice = s.harness.state().notice().unwrap().text.clone();
    assert!(notice.starts_with("Wrote 3 rationale(s)"), "{notice}");
    // The stored rationales show in the view, with the model that wrote them; the status bar names the device.
    assert_eq!(s.harness.query_all_by_label_contains("· local:SmolLM2-135M-Instruct").count(), 3);
    assert!(s.harness.query_by_label_contains("on CPU").is_some());
    // W writes again: nothing to do, every rationale is already there from the same model and prompt.
    s.harness.key_press(Key::W);
    s.harness.step();
    step_until_slow(&mut s.harness, "the second run", |app| !app.is_writing());
    s.harness.step();
    let notice = s.harness.state().notice().unwrap().text.clone();
    assert!(notice.contains("Wrote 0 rationale(s)") && notice.contains("3 were already there"), "{notice}");
}

#[test]
fn a_broken_model_is_reported_and_the_studio_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.gguf");
    let bytes = std::fs::read(super::models::model(argus::models::catalog::TEST_GENERATOR)).unwrap();
    std::fs::write(&broken, &bytes[..5_000_000]).unwrap();
    let mut s = studio_with_writer(&broken);
    s.harness.get_by_label("Write rationales").click();
    s.harness.step();
    step_until_slow(&mut s.harness, "the writer to fail", |app| app.notice().is_some_and(|n| n.is_error));
    let notice = s.harness.state().notice().unwrap().text.clone();
    assert!(notice.contains("broken.gguf") && notice.contains("truncated"), "{notice}");
    // Judging still works.
    s.harness.key_press(Key::F);
    s.harness.step();
    assert_eq!(my_verdicts(&s.db), vec![(1, Verdict::Fake)]);
}

#[test]
fn writer_settings_switch_to_a_server_and_are_remembered() {
    let mut s = demo_studio();
    s.harness.state_mut().queue(argus::ui::AppCommand::ToggleWriterSettings);
    s.harness.run_steps(3);
    s.harness.get_by_label("OpenAI-compatible server").click();
    s.harness.run_steps(2);
    for (label, text) in [("Model name:", "qwen2.5-7b-instruct"), ("Server URL:", "0")] {
        s.harness.get_by_label(label).focus();
        s.harness.step();
        s.harness.get_by_label(label).type_text(text);
        s.harness.step();
    }
    s.harness.get_by_label("Save").click();
    s.harness.run_steps(2);
    let writer = s.harness.state().writer_settings().clone();
    assert_eq!(writer.backend, argus::rationales::WriterBackend::OpenAi);
    assert_eq!(writer.served_model, "qwen2.5-7b-instruct");
    assert_eq!(writer.url, "http://127.0.0.1:8080/v10");
    // Remembered in the settings file, and shown in the status bar.
    let saved = argus::config::Settings::load_from(&s._dir.path().join("settings.json"));
    assert_eq!(saved.writer, writer);
    assert!(s.harness.query_by_label_contains("writer: qwen2.5-7b-instruct at http://127.0.0.1:8080/v10").is_some());
    // The key itself is never stored: only the name of the variable that holds it.
    let text = std::fs::read_to_string(s._dir.path().join("settings.json")).unwrap();
    assert!(text.contains("OPENAI_API_KEY"));
}

/// A database with the first `n` items of the bundled demo sample; `labelled`: keep their gold labels and
/// rationales (else neither: nothing to train on).
fn demo_subset(db: &Path, n: usize, labelled: bool) {
    let mut store = Store::open(db).unwrap();
    let mut parsed = argus::ingest::read_demo_sample().unwrap();
    parsed.items.truncate(n);
    if !labelled {
        for item in &mut parsed.items {
            item.gold_label = None;
            item.rationales.clear();
        }
    }
    store.import(&[(parsed.dataset, parsed.items)], &mut |_| {}, &|| false).unwrap();
}

/// The studio on `db` as "ada", with `settings` written first.
pub(super) fn studio_on(dir: tempfile::TempDir, db: PathBuf, settings: argus::config::Settings) -> Studio {
    settings.save_to(&dir.path().join("settings.json")).unwrap();
    let mut opts = options(dir.path(), &db, Some("ada"));
    opts.seed_demo = false;
    let mut harness = studio_window(opts);
    step_until(&mut harness, "the database to open", |app| app.workspace().is_some());
    Studio { _dir: dir, db, harness }
}

/// As [`studio_on`] with default settings, drawing a box (tofu) for characters no font has, as the window does
/// (the test harness panics on them by default): for texts in any script.
pub(super) fn studio_on_any_text(dir: tempfile::TempDir, db: PathBuf) -> Studio {
    let mut opts = options(dir.path(), &db, Some("ada"));
    opts.seed_demo = false;
    let mut harness = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .allow_missing_glyphs()
        .build_eframe(move |cc| ArgusApp::new(cc.egui_ctx.clone(), opts));
    step_until(&mut harness, "the database to open", |app| app.workspace().is_some());
    Studio { _dir: dir, db, harness }
}

#[test]
fn the_train_panel_retrains_in_the_background_compares_versions_and_rolls_back() {
    use argus::domain::ModelKind;
    use argus::guidance::train::{TrainRequest, train};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("small.sqlite");
    // 40 labelled items and a first version (BERT only, one epoch: the encoder's cache is filled here, once).
    demo_subset(&db, 40, true);
    let mut request = TrainRequest::new(ModelKind::Bert);
    request.options.max_epochs = 1;
    let first = train(&db, &request, &argus::jobs::NoProgress, &mut |_| {}).unwrap();
    assert_eq!(first.version, 1);
    let mut s = studio_on(dir, db, argus::config::Settings::default());

    // t opens the panel on the kind trained last, incremental from the version in use.
    s.harness.key_press(Key::T);
    s.harness.run_steps(3);
    assert!(s.harness.state().is_train_panel_open());
    assert_eq!(s.harness.get_by_label("Model:").value().as_deref(), Some("BERT only"));
    s.harness.get_by_label("quick (from version 1)");
    s.harness.get_by_label("full (from version 1)").click();
    s.harness.run_steps(2);
    s.harness.get_by_label("Max epochs:").focus();
    s.harness.step();
    s.harness.key_press(Key::Backspace);
    s.harness.key_press(Key::Backspace);
    s.harness.get_by_label("Max epochs:").type_text("1");
    s.harness.key_press(Key::Enter);
    s.harness.run_steps(2);
    s.harness.get_by_label("Retrain").click();
    s.harness.step();
    assert!(s.harness.state().is_training(), "the run goes in the background");
    // The window keeps drawing while it trains; the job shows in the status bar with the panel's Cancel.
    s.harness.run_steps(2);
    assert!(s.harness.query_all_by_label_contains("Training BERT only").count() >= 2, "status bar and panel");
    assert!(s.harness.query_by_label("Cancel training").is_some());
    step_within(&mut s.harness, "the training to finish", Duration::from_secs(240), |app| !app.is_training());
    s.harness.run_steps(2);

    // The epoch arrived live, the new version is compared with its parent, in use, and listed beside the old one.
    assert_eq!(s.harness.state().training_epochs().len(), 1);
    let notice = s.harness.state().notice().unwrap().clone();
    assert!(!notice.is_error, "{}", notice.text);
    assert!(
        notice.text.starts_with("BERT only version 2: test macro-F1")
            && notice.text.contains("of version 1, its parent"),
        "{}",
        notice.text
    );
    let store = Store::open(&s.db).unwrap();
    assert_eq!(store.active_version(ModelKind::Bert).unwrap(), Some(2));
    assert_eq!(store.model_version(2).unwrap().parent_id, Some(1));
    assert_eq!(s.harness.state().model_versions().rows.len(), 2);
    s.harness.get_by_label("#2 beside #1");
    assert!(s.harness.query_by_label("Confusion matrix").is_some());
    // The list shows the new version's P(fake).
    assert!(s.harness.state().workspace().unwrap().has_predictions());

    // Pick version 1 and put it back in use.
    s.harness.get_by_label("#1").click();
    s.harness.run_steps(2);
    s.harness.get_by_label("Use this version").click();
    s.harness.run_steps(2);
    assert_eq!(store.active_version(ModelKind::Bert).unwrap(), Some(1));
    assert_eq!(s.harness.state().model_versions().active.bert, Some(1));
    let notice = s.harness.state().notice().unwrap().text.clone();
    assert_eq!(notice, "BERT only version 1 is now in use; the list order follows it.");

    // The simulated annotator: every strategy over three seeds, in the background, plotted in the panel.
    s.harness.get_by_label("Simulate labelling").click();
    s.harness.run_steps(2);
    let notice = s.harness.state().notice().map(|n| n.text.clone());
    assert!(s.harness.query_by_label("Cancel simulation").is_some(), "{notice:?}");
    step_within(&mut s.harness, "the simulation", Duration::from_secs(120), |app| {
        app.notice().is_some_and(|n| n.text.starts_with("Simulated annotator") || n.is_error)
    });
    s.harness.run_steps(2);
    let notice = s.harness.state().notice().unwrap().clone();
    assert!(!notice.is_error && notice.text.contains("12 runs"), "{}", notice.text);
    assert!(s.harness.query_by_label_contains("macro-F1 on").is_some());
}

#[test]
fn every_eighth_judgement_updates_the_model_online_and_reorders_the_list_without_moving_the_selection() {
    use argus::domain::ModelKind;
    use argus::guidance::train::{TrainRequest, train};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("online.sqlite");
    demo_subset(&db, 40, true);
    let mut request = TrainRequest::new(ModelKind::Bert);
    request.options.max_epochs = 1;
    train(&db, &request, &argus::jobs::NoProgress, &mut |_| {}).unwrap();
    // Every update saved as a version here (the default saves every fourth).
    let online = argus::config::OnlineSettings { every_judgements: 8, checkpoint_every_updates: 2 };
    let mut s = studio_on(dir, db, argus::config::Settings { online, ..Default::default() });
    s.harness.get_by_label("Order:").click();
    s.harness.run_steps(2);
    s.harness.get_by_label("risk (P(fake))").click();
    s.harness.run_steps(2);
    assert_eq!(s.harness.state().workspace().unwrap().order(), argus::guidance::triage::Order::Risk);
    let order_before = s.harness.state().workspace().unwrap().filtered_ids();
    for round in 0..2 {
        for i in 0..8 {
            s.harness.key_press(if i % 2 == 0 { Key::F } else { Key::R });
            s.harness.step();
        }
        assert!(s.harness.state().is_learning_online(), "the eighth judgement starts an update (round {round})");
        let selected = s.harness.state().workspace().unwrap().selected_id();
        step_within(&mut s.harness, "the online update", Duration::from_secs(60), |app| !app.is_learning_online());
        s.harness.run_steps(2);
        let ws = s.harness.state().workspace().unwrap();
        assert_eq!(ws.selected_id(), selected, "the selection stays where it was");
        let notice = s.harness.state().notice().unwrap().clone();
        assert!(!notice.is_error, "{}", notice.text);
        assert!(
            notice.text.starts_with("BERT only updated from") && notice.text.contains("items moved"),
            "{}",
            notice.text
        );
    }
    // The second update saved the online state as a version in use, grown from the first.
    let notice = s.harness.state().notice().unwrap().text.clone();
    assert!(notice.contains("saved as version 2"), "{notice}");
    s.harness.run_steps(2);
    let store = Store::open(&s.db).unwrap();
    assert_eq!(store.active_version(ModelKind::Bert).unwrap(), Some(2));
    assert_eq!(store.model_version(2).unwrap().parent_id, Some(1));
    assert_eq!(s.harness.state().model_versions().row(2).unwrap().how, "online");
    let order_after = s.harness.state().workspace().unwrap().filtered_ids();
    assert_eq!(order_before.len(), order_after.len());
}

#[test]
fn the_demo_opened_without_a_model_trains_its_first_arg_version_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo.sqlite");
    let mut harness = studio_window(StudioOptions { demo_db: demo.clone(), ..options(dir.path(), &demo, Some("ada")) });
    step_until(&mut harness, "the demo to open", |app| app.workspace().is_some());
    harness.run_steps(2);
    assert!(harness.state().is_training(), "the demo's first model trains without a button");
    let notice = harness.state().notice().unwrap().text.clone();
    assert!(notice.starts_with("Training the demo's first ARG model in the background"), "{notice}");
    // The studio stays usable meanwhile: a judgement is saved.
    harness.key_press(Key::F);
    harness.run_steps(2);
    assert_eq!(harness.state().workspace().unwrap().progress().0, 1);
    // Stopped, nothing is stored; another database is no demo: nothing starts there.
    harness.key_press(Key::T);
    harness.run_steps(3);
    harness.get_by_label("Cancel training").click();
    harness.run_steps(1);
    step_until(&mut harness, "the run to stop", |app| !app.is_training());
    assert!(Store::open(&demo).unwrap().model_versions().unwrap().is_empty());
    let other = dir.path().join("other.sqlite");
    demo_subset(&other, 30, true);
    let mut s = studio_on(tempfile::tempdir().unwrap(), other, argus::config::Settings::default());
    s.harness.run_steps(3);
    assert!(!s.harness.state().is_training());
}

#[test]
fn the_train_panel_sets_the_projects_split_key_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("small.sqlite");
    demo_subset(&db, 40, true);
    let mut s = studio_on(dir, db, argus::config::Settings::default());
    s.harness.key_press(Key::T);
    s.harness.run_steps(3);
    assert_eq!(s.harness.get_by_label("Split train / val by:").value().as_deref(), Some("the item's text"));
    // The list offers the fields the items have, with how many items have each.
    s.harness.get_by_label("Split train / val by:").click();
    s.harness.run_steps(3);
    s.harness.get_by_label_contains("source (").click();
    s.harness.run_steps(3);
    assert_eq!(Store::open(&s.db).unwrap().split_group_by().unwrap().as_deref(), Some("source"));
    let notice = s.harness.state().notice().unwrap().text.clone();
    assert!(notice.contains("split by \"source\""), "{notice}");
    assert_eq!(s.harness.get_by_label("Split train / val by:").value().as_deref(), Some("source"));
    // And back to the text.
    s.harness.get_by_label("Split train / val by:").click();
    s.harness.run_steps(3);
    s.harness.get_by_label("the item's text").click();
    s.harness.run_steps(3);
    assert_eq!(Store::open(&s.db).unwrap().split_group_by().unwrap(), None);
}

#[test]
fn retraining_without_labels_says_why_and_the_automatic_retrain_waits_for_more_judgements() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("unlabelled.sqlite");
    demo_subset(&db, 30, false);
    let settings = argus::config::Settings { retrain_every_judgements: 2, ..Default::default() };
    let mut s = studio_on(dir, db, settings);
    s.harness.get_by_label("Train").click();
    s.harness.run_steps(3);
    s.harness.get_by_label("from scratch");
    s.harness.get_by_label("Retrain").click();
    step_until(&mut s.harness, "the training to fail", |app| app.notice().is_some_and(|n| n.is_error));
    let notice = s.harness.state().notice().unwrap().text.clone();
    assert!(notice.starts_with("Training ARG failed:") && notice.contains("label more items"), "{notice}");
    assert_eq!(Store::open(&s.db).unwrap().model_versions().unwrap().len(), 0);

    // Close the panel (t), then judge: the second judgement starts a retrain by itself (and it fails the same way).
    s.harness.key_press(Key::T);
    s.harness.step();
    assert!(!s.harness.state().is_train_panel_open());
    s.harness.key_press(Key::F);
    s.harness.step();
    assert!(!s.harness.state().is_training());
    s.harness.key_press(Key::R);
    // Two judgements since no version: an automatic retrain. It can fail before the frame that started it polls it
    // (on a loaded machine), so what shows that it ran is its failure replacing the "Saved: real" notice.
    step_until(&mut s.harness, "the automatic retrain to fail", |app| {
        !app.is_training() && app.notice().is_some_and(|n| n.is_error && n.text.starts_with("Training ARG failed:"))
    });
    // The next judgement does not retry at once: it waits for two more.
    s.harness.key_press(Key::F);
    s.harness.step();
    assert!(!s.harness.state().is_training());
    assert_eq!(s.harness.state().notice().unwrap().text, "Saved: fake");
}

#[test]
fn the_list_orders_by_risk_shows_p_fake_and_the_item_view_shows_args_trust() {
    use argus::store::guidance::{NewModelVersion, Prediction};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.sqlite");
    {
        let mut store = Store::open(&db).unwrap();
        argus::studio::import_demo(&mut store, &argus::jobs::NoProgress).unwrap();
        // An ARG version with made-up predictions: item 7 the riskiest, then 42; the rest below 0.9.
        let run = store.start_training_run(&serde_json::json!({})).unwrap();
        let version = NewModelVersion {
            kind: argus::domain::ModelKind::Arg,
            parent_id: None,
            config: serde_json::json!({}),
            metrics: serde_json::json!({}),
            weights_path: "none".into(),
            weights_sha256: "none".into(),
            seconds_taken: 1.0,
            data_snapshot: serde_json::json!({}),
            epochs: serde_json::json!([]),
        };
        let v = store.add_model_version(run, &version).unwrap();
        let predictions: Vec<Prediction> = (1..=300)
            .map(|id| Prediction {
                item_id: id,
                p_fake: match id {
                    7 => 0.97,
                    42 => 0.91,
                    _ => (id % 80) as f64 / 100.0,
                },
                gates: vec![("td".into(), 0.8), ("cs".into(), 0.25)],
                usefulness: vec![("td".into(), 0.7), ("cs".into(), 0.4)],
                judgements: vec![("td".into(), Verdict::Fake), ("cs".into(), Verdict::Real)],
            })
            .collect();
        store.save_predictions(v, &predictions).unwrap();
    }
    let mut s = studio_on(dir, db, argus::config::Settings::default());
    // The item view shows ARG's P(fake) and trust of item 1; the list shows P(fake) per row.
    s.harness.run_steps(2);
    assert!(s.harness.query_by_label("ARG: P(fake) 0.01").is_some());
    assert!(s.harness.query_by_label("ARG's trust in the rationale (w_r)").is_some());
    assert!(s.harness.query_by_label("0.97").is_some(), "item 7's P(fake) in the list");

    // Order: risk.
    assert_eq!(s.harness.get_by_label("Order:").value().as_deref(), Some("as imported"));
    s.harness.get_by_label("Order:").click();
    s.harness.run_steps(2);
    s.harness.get_by_label("risk (P(fake))").click();
    s.harness.run_steps(2);
    let ws = s.harness.state().workspace().unwrap();
    assert_eq!(ws.order(), argus::guidance::triage::Order::Risk);
    assert_eq!((ws.row(0).unwrap().id, ws.row(1).unwrap().id), (7, 42));
    assert_eq!(ws.selected_id(), Some(7), "a new order starts at its top");

    // Judge item 7; the fact-check queue then starts with the riskiest item nobody has judged.
    s.harness.key_press(Key::F);
    s.harness.step();
    assert_eq!(my_verdicts(&s.db), vec![(7, Verdict::Fake)]);
    s.harness.get_by_label("Fact-check queue").click();
    s.harness.run_steps(2);
    let ws = s.harness.state().workspace().unwrap();
    assert_eq!((ws.filtered_len(), ws.row(0).unwrap().id, ws.selected_id()), (299, 42, Some(42)));

    // Shading the news by ARG's attention runs as a job; this made-up version has no weights, which it says.
    s.harness.get_by_label("Shade by ARG's attention").click();
    step_until(&mut s.harness, "the attention job to fail", |app| app.notice().is_some_and(|n| n.is_error));
    let notice = s.harness.state().notice().unwrap().text.clone();
    assert!(notice.contains("ARG's attention could not be computed") && notice.contains("model version"), "{notice}");
}

/// The keys in the first column of README.md's `| key | does |` table (section "Using the studio"): every
/// backticked key, a run such as `1` … `8` expanded.
fn readme_keys(readme: &str) -> std::collections::BTreeSet<String> {
    let section = readme.split("\n## Using the studio").nth(1).expect("README has a \"Using the studio\" section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut lines = section.lines().skip_while(|l| !l.starts_with("| key | does |")).skip(2);
    let mut keys = std::collections::BTreeSet::new();
    for row in lines.by_ref().take_while(|l| l.starts_with('|')) {
        let cell = row.split('|').nth(1).unwrap_or_default();
        let tokens: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        if cell.contains('…')
            && let [first, last] = tokens.as_slice()
            && let (Ok(a), Ok(b)) = (first.parse::<u32>(), last.parse::<u32>())
        {
            keys.extend((a..=b).map(|n| n.to_string()));
        } else {
            keys.extend(tokens.iter().map(|t| (*t).to_owned()));
        }
    }
    keys
}

#[test]
fn readme_key_table_lists_the_keys_of_the_command_table() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table: std::collections::BTreeSet<String> = argus::ui::keys::shown_key_texts().into_iter().collect();
    let documented = readme_keys(&readme);
    assert!(documented.contains("ctrl+z") && documented.contains("8"), "the README table was not read: {documented:?}");
    let missing: Vec<_> = table.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&table).collect();
    assert!(missing.is_empty(), "keys of the command table missing from README.md's key table: {missing:?}");
    assert!(unknown.is_empty(), "keys in README.md's key table that no command has: {unknown:?}");
    // The check can fail: the README without its `t` row lacks a key of the table.
    let without_t = readme.replace("| `t` |", "| the Train panel |");
    assert!(table.difference(&readme_keys(&without_t)).any(|k| k == "t"));
}

#[test]
fn the_item_view_checks_args_faithfulness_and_routing_shows_its_cost_before_writing() {
    use argus::domain::ModelKind;
    use argus::guidance::train::{TrainOptions, TrainRequest, train};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("small.sqlite");
    demo_subset(&db, 40, true);
    let encoder = super::models::model(argus::models::catalog::DEMO_ENCODER).display().to_string();
    let quick = TrainOptions { max_epochs: 1, max_len: 32, batch_size: 16, ..TrainOptions::default() };
    let request = |kind| TrainRequest { encoder: encoder.clone(), options: quick.clone(), ..TrainRequest::new(kind) };
    let arg = train(&db, &request(ModelKind::Arg), &argus::jobs::NoProgress, &mut |_| {}).unwrap();
    let argd = train(&db, &request(ModelKind::Argd), &argus::jobs::NoProgress, &mut |_| {}).unwrap();
    let mut settings = argus::config::Settings::default();
    let gguf = super::models::model(argus::models::catalog::TEST_GENERATOR);
    settings.writer.local_model = gguf.display().to_string();
    settings.writer.params = argus::models::GenerationParams::greedy(16);
    settings.writer.device = argus::models::DeviceChoice::Cpu;
    let mut s = studio_on(dir, db, settings);
    s.harness.run_steps(2);

    // Faithfulness of the selected item, on request, as a job: P(fake)'s move per perturbation in the guidance grid.
    s.harness.get_by_label("Does ARG use them?").click();
    s.harness.step();
    step_until_slow(&mut s.harness, "the faithfulness check", |app| !app.has_running_jobs());
    s.harness.run_steps(2);
    assert!(s.harness.query_by_label("P(fake) moves when the rationale is…").is_some());
    assert!(s.harness.query_by_label_contains("swapped ").is_some_and(|n| format!("{n:?}").contains("emptied")));
    // Routing: the cost first (ARG-D scores all 40 items, 23% of them are routed: 9 items × td, cs, fc).
    s.harness.state_mut().queue(argus::ui::AppCommand::ToggleRouteDialog);
    s.harness.run_steps(3);
    s.harness.get_by_label("Score with ARG-D and estimate the cost").click();
    s.harness.step();
    step_until_slow(&mut s.harness, "the routing estimate", |app| !app.has_running_jobs());
    s.harness.run_steps(2);
    let expected =
        format!("ARG-D version {} is least sure about 9 of 40 items (23%): 9 items × 3 perspectives", argd.version);
    let cost = s.harness.get_by_label_contains(&expected);
    let cost = format!("{cost:?}");
    assert!(cost.contains("= 27 rationales to write") && cost.contains("not measured yet"), "{cost}");
    let written = |db: &Path| {
        let store = Store::open(db).unwrap();
        (1..=40)
            .map(|id| store.rationales(id).unwrap().into_iter().filter(|r| r.model.is_some()).count())
            .sum::<usize>()
    };
    assert_eq!(written(&s.db), 0, "nothing is written before the second click");
    s.harness.get_by_label("Write 27 rationales and let ARG predict the 9 items").click();
    s.harness.step();
    step_until_slow(&mut s.harness, "the routing to finish", |app| {
        app.notice().is_some_and(|n| n.text.starts_with("Routing done") || n.is_error)
    });
    let notice = s.harness.state().notice().unwrap().text.clone();
    assert_eq!(
        notice,
        format!("Routing done: ARG version {} predicted the 9 routed items from their rationales.", arg.version)
    );
    assert_eq!(written(&s.db), 27);
}

#[test]
fn the_import_dialog_previews_a_tsv_with_undecided_labels_before_anything_is_written() {
    let mut s = demo_studio();
    let tsv = s._dir.path().join("claims.tsv");
    std::fs::write(
        &tsv,
        "claim\tverdict\nThe river flooded the old town twice.\ttrue\nThe school serves only frozen food.\tmaybe\n",
    )
    .unwrap();
    s.harness.state_mut().queue(argus::ui::AppCommand::ChooseImport(vec![tsv.clone()]));
    s.harness.run_steps(3);
    for (field, text) in [("Column map:", "content=claim,label=verdict"), ("Label map:", "true=real,maybe=unlabelled")]
    {
        s.harness.get_by_label(field).focus();
        s.harness.step();
        s.harness.get_by_label(field).type_text(text);
        s.harness.step();
    }
    s.harness.run_steps(2);
    // The first rows as they will be read, and nothing written yet.
    assert!(s.harness.query_by_label_contains("Read as csv, delimiter tab").is_some());
    assert!(s.harness.query_by_label("The river flooded the old town twice.").is_some());
    assert!(s.harness.query_by_label("maybe → unlabelled").is_some());
    assert!(s.harness.query_by_label("true → real").is_some());
    assert_eq!(Store::open(&s.db).unwrap().stats().unwrap().items, 300);
    s.harness.get_by_label("Start import").click();
    step_until(&mut s.harness, "the import to finish", |app| !app.has_running_jobs() && app.notice().is_some());
    assert_eq!(Store::open(&s.db).unwrap().stats().unwrap().items, 302);
    // The same file again adds nothing and says so.
    s.harness.state_mut().queue(argus::ui::AppCommand::ImportFiles {
        paths: vec![tsv],
        flags: argus::ingest::ImportFlags {
            map: Some("content=claim,label=verdict".into()),
            labels: Some("true=real,maybe=unlabelled".into()),
            ..Default::default()
        },
    });
    step_until(&mut s.harness, "the second import", |app| {
        !app.has_running_jobs() && app.notice().is_some_and(|n| n.text.contains("already present"))
    });
    assert!(
        s.harness.state().notice().unwrap().text.contains("Imported 0 items"),
        "{}",
        s.harness.state().notice().unwrap().text
    );
    assert_eq!(Store::open(&s.db).unwrap().stats().unwrap().items, 302);
}

#[test]
fn a_fact_checker_reviews_from_the_queue_and_can_undo_the_review() {
    let mut s = demo_studio();
    s.harness.state_mut().queue(argus::ui::AppCommand::Studio(argus::studio::Command::SetFactCheckQueue(true)));
    s.harness.run_steps(2);
    let first = s.harness.state().workspace().unwrap().selected_id().unwrap();
    s.harness.get_by_label("Fact-check review").click();
    s.harness.run_steps(2);
    s.harness.get_by_label("Rating:").click();
    s.harness.run_steps(2);
    s.harness.get_by_label("Mostly False").click();
    s.harness.run_steps(2);
    for (field, text) in
        [("Explanation:", "The record shows otherwise."), ("Evidence links:", "https://example.org/record")]
    {
        s.harness.get_by_label(field).focus();
        s.harness.step();
        s.harness.get_by_label(field).type_text(text);
        s.harness.step();
    }
    s.harness.get_by_label("Publish review").click();
    s.harness.run_steps(2);
    let store = Store::open(&s.db).unwrap();
    let review = store.standing_reviews().unwrap().remove(&first).expect("the review is stored");
    assert_eq!((review.rating.as_str(), review.reviewer.as_str()), ("Mostly False", "ada"));
    assert_eq!(review.explanation, "The record shows otherwise.");
    assert_eq!(review.evidence, ["https://example.org/record"]);
    let ws = s.harness.state().workspace().unwrap();
    assert_ne!(ws.selected_id(), Some(first), "the reviewed item left the queue; the next one is shown");
    assert!(!ws.filtered_ids().contains(&first));
    assert_eq!(ws.review_counts(), (1, 299));
    assert!(s.harness.query_by_label_contains("1 reviewed").is_some());

    // Back in the whole list, the item's history shows the review, and it can be undone.
    s.harness.state_mut().queue(argus::ui::AppCommand::Studio(argus::studio::Command::SetFactCheckQueue(false)));
    s.harness.step();
    let row = s.harness.state().workspace().unwrap().filtered_ids().iter().position(|&id| id == first).unwrap();
    s.harness.state_mut().queue(argus::ui::AppCommand::Studio(argus::studio::Command::SelectRow(row)));
    s.harness.run_steps(2);
    // The section stays open from item to item; its header names the standing review.
    assert!(s.harness.query_by_label("Fact-check review: Mostly False (ada)").is_some(), "the header names it");
    assert!(s.harness.query_by_label("Mostly False (3/6)").is_some());
    s.harness.get_by_label("Undo review").click();
    s.harness.run_steps(2);
    let history = Store::open(&s.db).unwrap().reviews_of(first).unwrap();
    assert!(history.len() == 1 && history[0].retracted, "{history:?}");
    assert_eq!(s.harness.state().workspace().unwrap().review_counts(), (0, 300));
}

#[test]
fn merging_a_colleagues_bundle_in_the_studio_shows_their_verdicts() {
    let mut s = demo_studio();
    // A colleague's database with the same demo, three verdicts, and their bundle.
    let colleague = s._dir.path().join("ben.sqlite");
    let mut store = Store::open(&colleague).unwrap();
    argus::studio::import_demo(&mut store, &argus::jobs::NoProgress).unwrap();
    let ben = store.annotator_id("ben").unwrap();
    for item in [1, 2, 3] {
        store
            .record_judgement(&argus::domain::NewJudgement {
                item_id: item,
                annotator_id: ben,
                verdict: Verdict::Fake,
                confidence: None,
                note: None,
                time_spent_ms: 1000,
            })
            .unwrap();
    }
    let bundle = s._dir.path().join("ben.bundle.jsonl");
    argus::ingest::bundle::export_bundle(&store, &bundle).unwrap();
    drop(store);
    s.harness.state_mut().queue(argus::ui::AppCommand::MergeBundles(vec![bundle]));
    step_until(&mut s.harness, "the merge", |app| !app.has_running_jobs() && app.notice().is_some());
    let notice = s.harness.state().notice().unwrap().text.clone();
    assert!(notice.starts_with("Merged 1 bundle(s): 3 rows added"), "{notice}");
    let ws = s.harness.state().workspace().unwrap();
    let first = ws.row(0).unwrap();
    assert!(first.verdicts.iter().any(|(_, v)| *v == Verdict::Fake), "the list shows ben's verdict");
}
