//! Simulated participants: seeded answers and timings driven through the real participant flow ([`Session`]), for
//! trying a study file end to end (`argus study run-sim`) and for tests.
//!
//! Each simulated participant has a persona fixed by its number and the seed: most are diligent (verdicts mostly
//! right, Likert answers a little higher for the annotated report, plausible times, written feedback now and then),
//! one in eight is inattentive (fails every attention check) and one in eight answers too fast, so exclusions have
//! something to show. Codes are `sim-s{seed}-v{version}-{n:03}`, so running the simulation again resumes the same
//! participants where they stopped.

use serde::Serialize;

use super::assign::SplitMix64;
use super::flow::{Asked, Session, Step};
use super::spec::{AnswerKind, StudySpec};
use super::{Result, register};
use crate::formats::Format;
use crate::store::Store;
use crate::store::studies::{RegisterOutcome, Timing};

/// How a simulated participant behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Persona {
    /// Reads, answers sensibly, passes attention checks.
    Diligent,
    /// Answers at random and fails every attention check.
    Inattentive,
    /// Answers sensibly but far faster than the study's minimum time per item.
    Speeder,
}

impl Persona {
    /// The persona of the `i`-th simulated participant (1, 2, ...) under `seed`: inattentive when
    /// `(i + seed) mod 8 = 3`, a speeder when it is 6, else diligent.
    pub fn of(i: u32, seed: u64) -> Persona {
        match (u64::from(i) + seed % 8) % 8 {
            3 => Persona::Inattentive,
            6 => Persona::Speeder,
            _ => Persona::Diligent,
        }
    }
}

/// What a simulation did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SimSummary {
    /// The study's name.
    pub study: String,
    /// The version the participants ran in.
    pub version: u32,
    /// What registering the file did.
    pub registered: Option<RegisterOutcome>,
    /// Participants asked for.
    pub participants: u32,
    /// Of those, ones that already existed (resumed or already finished).
    pub resumed: u32,
    /// Participants that reached the end.
    pub finished: u32,
    /// Steps answered by this run.
    pub steps_answered: usize,
    /// Personas, in participant order.
    pub personas: Vec<Persona>,
    /// Set when the run stopped early (`stop_after_steps`): the participant code and the next step's index.
    pub stopped_at: Option<(String, usize)>,
}

/// The code of the `i`-th simulated participant.
pub fn participant_code(seed: u64, version: u32, i: u32) -> String {
    format!("sim-s{seed}-v{version}-{i:03}")
}

/// Registers `spec` and runs `participants` simulated participants through the flow, resuming any that exist.
/// With `stop_after_steps`, returns once that many steps were answered by this call (for crash tests).
pub fn simulate(
    store: &mut Store,
    spec: &StudySpec,
    participants: u32,
    seed: u64,
    stop_after_steps: Option<usize>,
) -> Result<SimSummary> {
    let (study, outcome) = register(store, spec)?;
    let mut summary = SimSummary {
        study: study.name.clone(),
        version: study.version,
        registered: Some(outcome),
        participants,
        ..SimSummary::default()
    };
    for i in 1..=participants {
        let code = participant_code(seed, study.version, i);
        let existed = store.study_participant(&study.name, &code)?.is_some();
        let mut session = Session::start(store, &study.name, &code)?;
        summary.resumed += u32::from(existed);
        let persona = Persona::of(i, seed);
        summary.personas.push(persona);
        while !session.is_done() {
            if stop_after_steps.is_some_and(|k| summary.steps_answered >= k) {
                summary.stopped_at = Some((code, session.progress().0));
                return Ok(summary);
            }
            let step_index = session.progress().0;
            let mut rng = SplitMix64::new(&[seed, u64::from(i), step_index as u64, 0x5157]);
            let (answers, timing) = simulated_answers(&session.current(), &session.asked(), spec, persona, &mut rng);
            session.answer(store, &answers, timing)?;
            summary.steps_answered += 1;
        }
        summary.finished += 1;
    }
    Ok(summary)
}

/// Seeded answers and timing of one step for a persona.
pub fn simulated_answers(
    step: &Step,
    asked: &[Asked],
    spec: &StudySpec,
    persona: Persona,
    rng: &mut SplitMix64,
) -> (Vec<(String, String)>, Timing) {
    let view = step.view();
    // The simulated effect of the condition: the annotated report is understood and trusted a little more.
    let boost = match view.map(|v| v.condition.format) {
        Some(Format::AnnotatedReport) => 0.8,
        _ => 0.0,
    };
    let mut answers = Vec::new();
    let mut wrote_feedback = rng.unit() < 0.35;
    for a in asked {
        let value = match (&a.answer, a.key.as_str()) {
            (_, "consent") => "yes".to_owned(),
            (AnswerKind::Choice { options }, "attention") => {
                let right = spec.attention_checks.as_ref().map(|c| c.answer.clone()).unwrap_or_default();
                if persona == Persona::Inattentive {
                    let wrong: Vec<&String> = options.iter().filter(|o| **o != right).collect();
                    wrong.get(rng.below(wrong.len().max(1))).map(|s| (*s).clone()).unwrap_or_default()
                } else {
                    right
                }
            }
            (AnswerKind::Choice { options }, "verdict") => {
                let gold = view.and_then(|v| v.gold_label).map(|g| g.human_name().to_owned());
                let sensible = persona != Persona::Inattentive && rng.unit() < 0.78;
                match gold {
                    Some(g) if sensible => g,
                    _ if rng.unit() < 0.05 => "unsure".to_owned(),
                    _ => options[rng.below(2.min(options.len()))].clone(),
                }
            }
            (AnswerKind::Choice { options }, _) => options[rng.below(options.len())].clone(),
            (AnswerKind::Scale { min, max, .. }, key) => {
                let (lo, hi) = (f64::from(*min), f64::from(*max));
                let centre = if persona == Persona::Inattentive {
                    lo + rng.unit() * (hi - lo)
                } else {
                    let base = lo + (hi - lo) * 0.55;
                    base + if matches!(key, "understanding" | "trust") { boost } else { 0.0 }
                };
                let noisy = centre + (rng.unit() + rng.unit() - 1.0) * (hi - lo) * 0.35;
                (noisy.round().clamp(lo, hi) as u8).to_string()
            }
            (AnswerKind::Text, "fb_where") if wrote_feedback => "the second sentence".to_owned(),
            (AnswerKind::Text, "fb_what") if wrote_feedback => {
                "It states the figure without saying where it comes from.".to_owned()
            }
            (AnswerKind::Text, "fb_fix") if wrote_feedback => {
                "Name the source of the figure and compare it with the official statistics.".to_owned()
            }
            (AnswerKind::Text, _) if a.required => {
                wrote_feedback = true;
                "No further comments.".to_owned()
            }
            (AnswerKind::Text, _) => String::new(),
        };
        answers.push((a.key.clone(), value));
    }
    let seconds = match (persona, view.is_some()) {
        (Persona::Speeder, true) => 1.0 + 3.0 * rng.unit(),
        (Persona::Inattentive, true) => 5.0 + 10.0 * rng.unit(),
        (_, true) => 12.0 * (5.0f64).powf(rng.unit()),
        (_, false) => 3.0 + 20.0 * rng.unit(),
    };
    let total_ms = (seconds * 1000.0).round() as i64;
    let first_action_ms = (total_ms as f64 * (0.1 + 0.3 * rng.unit())).round() as i64;
    let focus_lost = u32::from(rng.unit() < 0.1);
    (answers, Timing { first_action_ms, total_ms, focus_lost })
}
