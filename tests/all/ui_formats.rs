//! The explanation formats in the studio, driven headless with egui_kittest: the format selector (clicks and keys
//! `1`..`8`), a stored Annotated report with its unsupported quote, attribution highlights linked both ways, the
//! feedback form filled in by keyboard only and autosaved, history with word diffs and restore, and the model jobs
//! ("format", "repair") reporting a broken model instead of loading a real one.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use argus::formats::{Format, generate};
use argus::models::{ChatModel, Completion, GenerationParams, StopReason};
use argus::prompting::ChatMessage;
use argus::store::Store;
use argus::ui::ArgusApp;
use argus::ui::testing::AppTesting as _;
use egui::Key;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};

use super::ui::{Studio, step_until, studio_on};

/// A chat model that always gives the same answer.
struct Scripted(&'static str);

impl ChatModel for Scripted {
    fn model_id(&self) -> String {
        "test:scripted".into()
    }

    fn chat(
        &mut self,
        _messages: &[ChatMessage],
        _params: &GenerationParams,
        on_token: &mut dyn FnMut(&str) -> ControlFlow<()>,
    ) -> argus::models::Result<Completion> {
        let _ = on_token(self.0);
        Ok(Completion {
            text: self.0.to_owned(),
            prompt_tokens: 10,
            reused_prompt_tokens: 0,
            completion_tokens: 10,
            stop: StopReason::EndOfTurn,
            prompt_seconds: 0.0,
            generate_seconds: 0.0,
        })
    }
}

/// Item 1 of the demo: `Barack Obama is "the only candidate who doesn't take a dime from oil company PACs or
/// lobbyists.` The second quote is not in the news.
const REPORT: &str = r#"{"annotations": [
  {"quote": "the only candidate who doesn't take a dime", "reasoning": "An absolute claim: one donation is enough to disprove it."},
  {"quote": "Obama returned every oil donation twice", "reasoning": "The analysis says he took good-faith measures."}
], "verdict": "real"}"#;

const QUOTE: &str = "“the only candidate who doesn't take a dime”";

/// A fresh demo database; with `report`, item 1's rationale has a stored Annotated report (by the scripted model).
fn demo_db(dir: &Path, report: bool) -> PathBuf {
    let db = dir.join("demo.sqlite");
    let mut store = Store::open(&db).unwrap();
    argus::studio::import_demo(&mut store, &argus::jobs::NoProgress).unwrap();
    if report {
        let rationale = store.rationales(1).unwrap().remove(0);
        let mut model = Scripted(REPORT);
        let rendered = generate::render(
            &store,
            &rationale,
            Format::AnnotatedReport,
            Some(&mut model as &mut dyn ChatModel),
            &argus::jobs::NoProgress,
        )
        .unwrap();
        assert_eq!((rendered.quotes.len(), rendered.unsupported), (2, 1));
    }
    db
}

/// The studio on a demo database whose writer is a model file that does not exist: model jobs fail at once.
fn formats_studio(report: bool) -> Studio {
    let dir = tempfile::tempdir().unwrap();
    let db = demo_db(dir.path(), report);
    let mut settings = argus::config::Settings::default();
    settings.writer.local_model = dir.path().join("missing-writer.gguf").display().to_string();
    studio_on(dir, db, settings)
}

fn press(harness: &mut Harness<'static, ArgusApp>, key: Key) {
    harness.key_press(key);
    harness.step();
    harness.step();
}

/// Presses Tab until the widget labelled `label` has the keyboard.
fn tab_to(harness: &mut Harness<'static, ArgusApp>, label: &str) {
    for _ in 0..80 {
        // (A slider and its number field share their label: the slider comes first.)
        if harness.query_all_by_label(label).any(|n| n.is_focused()) {
            return;
        }
        press(harness, Key::Tab);
    }
    panic!("Tab never reached {label:?}");
}

#[test]
fn formats_switch_by_click_and_key_and_a_stored_annotated_report_shows_its_unsupported_quote() {
    let mut s = formats_studio(true);
    let h = &mut s.harness;
    h.run_steps(2);
    assert_eq!(h.state().format(), Format::FreeText);
    assert!(h.query_by_label(QUOTE).is_none());

    // Click: the stored report shows, each quote with its reasoning, the made-up one marked.
    h.get_by_label("Annotated report").click();
    h.run_steps(3);
    assert_eq!(h.state().format(), Format::AnnotatedReport);
    h.get_by_label(QUOTE);
    h.get_by_label("An absolute claim: one donation is enough to disprove it.");
    h.get_by_label("“Obama returned every oil donation twice”");
    assert_eq!(h.query_all_by_label("⚠ not in the news").count(), 1, "only the unsupported quote is marked");
    h.get_by_label("1 quote not in the news");
    h.get_by_label("verdict: real");
    h.get_by_label("· written by test:scripted");

    // Hovering the quote marks it as hovered (the news draws its span stronger); hovering its span in the news
    // does the same from the other side.
    h.get_by_label(QUOTE).hover();
    h.run_steps(2);
    assert_eq!(h.state().hovered_quote(), Some((1, "annotations[0].quote".to_owned())));
    // The news text in the item view (the list on the left shows it too).
    let news = h
        .query_all_by_label_contains("Barack Obama is")
        .map(|n| n.rect())
        .max_by(|a, b| a.left().total_cmp(&b.left()))
        .unwrap();
    h.remove_cursor();
    h.run_steps(2);
    assert_eq!(h.state().hovered_quote(), None);
    let mut found = None;
    for i in 0..60 {
        let x = news.left() + news.width() * (i as f32 + 0.5) / 60.0;
        h.hover_at(egui::pos2(x, news.top() + 10.0));
        h.run_steps(2);
        if let Some(q) = h.state().hovered_quote() {
            found = Some(q);
            break;
        }
    }
    assert_eq!(found, Some((1, "annotations[0].quote".to_owned())), "the quoted span in the news is hoverable");
    h.remove_cursor();

    // Keys 1..8 pick the formats; not while a text field has the keyboard.
    press(h, Key::Num1);
    assert_eq!(h.state().format(), Format::FreeText);
    assert!(h.query_by_label(QUOTE).is_none());
    press(h, Key::Num6);
    assert_eq!(h.state().format(), Format::DecisionTree);
    h.get_by_label("Write decision tree");
    press(h, Key::Num8);
    assert_eq!(h.state().format(), Format::SideBySide);
    h.get_by_label("Feedback on this side by side");
    press(h, Key::Num2);
    assert_eq!(h.state().format(), Format::AnnotatedReport);
    h.get_by_label(QUOTE);
    press(h, Key::Slash);
    assert!(h.get_by_label("Search:").is_focused());
    press(h, Key::Num5);
    assert_eq!(h.state().format(), Format::AnnotatedReport, "digits belong to a focused text field");
    press(h, Key::Escape);

    // The choice is kept across items; item 2 has no report yet: its free text shows with a "Write" button.
    press(h, Key::J);
    assert_eq!(h.state().workspace().unwrap().selected_id(), Some(2));
    assert_eq!(h.state().format(), Format::AnnotatedReport);
    assert!(h.query_by_label(QUOTE).is_none());

    // "Write annotated report" runs the "format" job; the writer model is missing, so it fails and says so.
    h.get_by_label("Write annotated report").click();
    h.step();
    step_until(h, "the format job to fail", |app| app.notice().is_some_and(|n| n.is_error));
    let notice = h.state().notice().unwrap().text.clone();
    assert!(
        notice.starts_with("Writing the annotated report failed") && notice.contains("missing-writer.gguf"),
        "{notice}"
    );
    assert!(!h.state().is_llm_busy());
}

#[test]
fn the_feedback_form_is_filled_in_by_keyboard_autosaves_and_passes_the_accessibility_check() {
    let mut s = formats_studio(false);
    let h = &mut s.harness;
    h.run_steps(2);
    // Open the form from the keyboard: focus its header, Space.
    h.get_by_label("Feedback on this free text").focus();
    h.run_steps(2);
    press(h, Key::Space);
    assert_eq!(h.state().workspace().unwrap().selected_id(), Some(1), "Space on a focused control does not skip");
    h.get_by_label("What is wrong:");
    // Every input of the open form has an accessible name (run() checks it once the ui settles).
    h.run();

    tab_to(h, "useful");
    press(h, Key::Space);
    tab_to(h, "partly sufficient");
    press(h, Key::Space);
    tab_to(h, "no");
    press(h, Key::Space);
    tab_to(h, "What is wrong:");
    h.get_by_label("What is wrong:").type_text("It never says which donations Obama got.");
    h.step();
    // Tab leaves the field: saved.
    press(h, Key::Tab);
    tab_to(h, "How to fix it:");
    h.get_by_label("How to fix it:").type_text("Name the lobbyist donations and their amounts.");
    h.step();
    // Enter saves too (Shift+Enter would be a new line).
    press(h, Key::Enter);
    tab_to(h, "Ease of giving this feedback");
    press(h, Key::ArrowRight);
    h.run_steps(2);

    let store = Store::open(&s.db).unwrap();
    let ada = store.annotator_id("ada").unwrap();
    let row = store.feedback_form(1, ada, "free-text").unwrap().expect("the form is saved");
    let f = &row.form;
    assert_eq!(f.usefulness, Some(argus::domain::Usefulness::Useful));
    assert_eq!(f.sufficiency, Some(2));
    assert_eq!(f.agrees_verdict, Some(false));
    assert_eq!(f.fb_what.as_deref(), Some("It never says which donations Obama got."));
    assert_eq!(f.fb_fix.as_deref(), Some("Name the lobbyist donations and their amounts."));
    assert_eq!(f.ease, Some(3), "one step right of the middle of 1..4");
    assert_eq!((f.understanding, f.trust), (None, None));
    assert!(f.time_spent_ms > 0, "{}", f.time_spent_ms);
    assert_eq!(f.rendering_id, None, "free text has no stored rendering");
    assert_eq!(store.feedback_form(1, ada, "annotated-report").unwrap(), None);
    let s_ = h.state().repair_stats().iter().find(|x| x.format == "free-text").cloned().unwrap();
    assert_eq!((s_.feedback, s_.repairs), (1, 0), "the repairs table follows saved feedback");

    // The saved form has written feedback: Apply feedback starts the "repair" job (which fails: no model file).
    tab_to(h, "Apply feedback");
    press(h, Key::Space);
    step_until(h, "the repair job to fail", |app| app.notice().is_some_and(|n| n.is_error));
    let notice = h.state().notice().unwrap().text.clone();
    assert!(notice.starts_with("Applying the feedback failed") && notice.contains("missing-writer.gguf"), "{notice}");
    h.run();
}

#[test]
fn a_correction_shows_as_a_diff_in_history_and_restore_brings_revision_one_back() {
    let mut s = formats_studio(false);
    let h = &mut s.harness;
    h.run_steps(2);
    let original = Store::open(&s.db).unwrap().rationales(1).unwrap().remove(0);
    h.get_by_label("History (1 revision)");
    h.get_by_label("Correct…").click();
    h.run_steps(2);
    h.get_by_label("Corrected text:").focus();
    h.step();
    h.key_press_modifiers(egui::Modifiers::COMMAND, Key::A);
    h.step();
    h.get_by_label("Corrected text:").type_text("Obama took money from oil lobbyists, so the claim is false.");
    h.step();
    h.get_by_label("Save as new revision").click();
    h.run_steps(3);
    assert_eq!(h.state().notice().unwrap().text, "Saved the correction as revision 2.");

    h.get_by_label("History (2 revisions)").click();
    h.run_steps(3);
    // Revision 2 against revision 1: the old words struck out, the new ones inserted, in one line.
    let labels: Vec<String> =
        h.query_all_by_label_contains("so the claim is false.").filter_map(|n| n.accesskit_node().value()).collect();
    assert!(
        labels.iter().any(|l| l.contains("It's worth noting") && l.contains("so the claim is false.")),
        "no diff line among {labels:?}"
    );
    assert_eq!(h.query_all_by_label("Restore").count(), 1, "only the older revision can be restored");
    h.get_by_label("Restore").scroll_to_me();
    h.run_steps(2);
    h.get_by_label("Restore").click();
    h.run_steps(3);
    assert_eq!(h.state().notice().unwrap().text, "Restored revision 1 as revision 3.");
    h.get_by_label("History (3 revisions)");

    let store = Store::open(&s.db).unwrap();
    let revisions = store.rationale_revisions(original.root_id).unwrap();
    assert_eq!(revisions.len(), 3);
    assert_eq!(revisions[2].revision, 3);
    assert_eq!(revisions[2].text, original.text);
    assert_eq!(revisions[2].verdict, original.verdict);
    assert_eq!(store.rationales(1).unwrap()[0].id, revisions[2].id, "revision 3 is the one shown");
}
