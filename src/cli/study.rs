//! `argus study check | run-sim | prepare | analyse | export`: user studies from a study file.
//!
//! Test hooks (environment variables read by `run-sim`, not flags, so they stay out of the user's `--help`):
//! - `ARGUS_TEST_PAUSE_AFTER_STEPS=N`: after N answered steps print `PAUSED after N steps: participant CODE, next
//!   step S` and wait ten minutes (for a test to SIGKILL the process at a known step);
//! - `ARGUS_TEST_KILL_AFTER_STEPS=N`: after N answered steps abort the process (no clean-up), a simulated crash.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::progress::ProgressBar;
use super::rationales::open_writer;
use super::{Global, existing, print_json};
use crate::store::Store;
use crate::store::studies::RegisterOutcome;
use crate::studies::analysis::{self, Exclusions};
use crate::studies::assign::PlanStep;
use crate::studies::spec::StudySpec;

/// The test hook that pauses `run-sim` (see the module head).
pub const PAUSE_AFTER_STEPS_ENV: &str = "ARGUS_TEST_PAUSE_AFTER_STEPS";
/// The test hook that aborts `run-sim` (see the module head).
pub const KILL_AFTER_STEPS_ENV: &str = "ARGUS_TEST_KILL_AFTER_STEPS";

#[derive(Subcommand, Debug)]
pub enum StudyCmd {
    /// Validate a study file (TOML or JSON) and print a summary and the plans of the first participants.
    Check(Check),
    /// Register the study and run simulated participants through the real participant flow (seeded answers and
    /// timings; one in eight fails attention checks, one in eight answers too fast). Participants that exist are
    /// resumed. An empty database first gets the built-in demo items.
    RunSim(RunSim),
    /// Write, with the writer, every rendering the study needs before its first participant (each item in each
    /// condition whose format the LLM writes), so nobody is shown free text in place of a format.
    Prepare(Prepare),
    /// Per condition: mean and 95% bootstrap interval of every numeric question, time per item, verdict accuracy
    /// and repair success; attention-check failures and too-fast answers flagged (and left out on request).
    Analyse(Analyse),
    /// Write the tidy tables (responses.csv, responses.jsonl: one row per participant x step x question;
    /// participants.csv) and the study file (study.toml) into a folder.
    Export(Export),
}

impl StudyCmd {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        match self {
            StudyCmd::Check(c) => c.run(g),
            StudyCmd::RunSim(c) => c.run(g),
            StudyCmd::Prepare(c) => c.run(g),
            StudyCmd::Analyse(c) => c.run(g),
            StudyCmd::Export(c) => c.run(g),
        }
    }
}

#[derive(Args, Debug)]
pub struct Check {
    /// The study file.
    #[arg(long)]
    study: PathBuf,
    /// Resolve the item set against this database (needed to list the items of a filtered set).
    #[arg(long)]
    db: Option<PathBuf>,
    /// Plans printed.
    #[arg(long, default_value_t = 4)]
    participants: u32,
}

impl Check {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        let mut spec = StudySpec::load(&self.study)?;
        let (pool, source) = match &self.db {
            Some(db) => {
                existing(db)?;
                let store = Store::open(db)?;
                spec = crate::studies::resolved_spec(&store, &spec).map_err(|e| e.in_file(&self.study))?;
                let pool = crate::studies::resolve_items(&store, &spec).map_err(|e| e.in_file(&self.study))?;
                (pool, "resolved in the database")
            }
            None if !spec.items.is_filter() => (spec.items.ids.clone(), "as listed"),
            None => (Vec::new(), "a filter: pass --db to resolve it"),
        };
        let conditions: Vec<String> = spec.conditions.iter().map(|c| format!("{} ({})", c.name, c.format)).collect();
        println!("{}: study `{}` is valid (sha256 {})", self.study.display(), spec.name, spec.sha256());
        println!(
            "  {}-subjects; conditions: {}; {} items per participant ({} gold) from {} items ({source})",
            spec.design.as_str(),
            conditions.join(", "),
            spec.items_per_participant,
            spec.gold_items.len() + spec.gold_keys.len(),
            pool.len()
        );
        let questions: Vec<&str> = spec.questions.iter().map(|q| q.key()).collect();
        println!(
            "  questions: {}; {} practice item(s); {} questionnaire item(s)",
            questions.join(", "),
            spec.practice.len(),
            spec.questionnaire.len()
        );
        if pool.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        for number in 1..=self.participants {
            let plan = crate::studies::assign::plan(&spec, &pool, number);
            let steps: Vec<String> = plan
                .steps
                .iter()
                .map(|s| match s {
                    PlanStep::Item { item, condition, is_gold, .. } => {
                        format!("{item}{}:{}", if *is_gold { "*" } else { "" }, spec.conditions[*condition].name)
                    }
                    PlanStep::Attention { .. } => "[attention]".to_owned(),
                    PlanStep::Practice { item, .. } => format!("practice {item}"),
                    PlanStep::Consent => "consent".to_owned(),
                    PlanStep::Instructions => "instructions".to_owned(),
                    PlanStep::Questionnaire => "questionnaire".to_owned(),
                })
                .collect();
            println!("  participant {number}: {}", steps.join(" > "));
        }
        println!("  (item:condition; * marks a gold item)");
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct RunSim {
    /// The study file (TOML or JSON).
    #[arg(long)]
    study: PathBuf,
    /// Simulated participants (codes `sim-s{SEED}-v{VERSION}-{N:03}`).
    #[arg(long)]
    participants: u32,
    /// Database (created if missing).
    #[arg(long)]
    db: PathBuf,
    /// Seeds the simulated answers and timings.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print JSON (the simulation's summary and the analysis) instead of text.
    #[arg(long)]
    json: bool,
}

/// A step count from a test-hook variable (unset or not a number: none).
fn steps_from_env(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl RunSim {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        let spec = StudySpec::load(&self.study)?;
        let mut store = Store::open(&self.db)?;
        if store.stats()?.items == 0 {
            crate::studio::import_demo(&mut store, &crate::jobs::NoProgress)?;
            eprintln!("{} was empty: imported the built-in demo items", self.db.display());
        }
        let (kill_after_steps, pause_after_steps) =
            (steps_from_env(KILL_AFTER_STEPS_ENV), steps_from_env(PAUSE_AFTER_STEPS_ENV));
        let stop = match (kill_after_steps, pause_after_steps) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let summary = crate::studies::sim::simulate(&mut store, &spec, self.participants, self.seed, stop)
            .map_err(|e| e.in_file(&self.study))?;
        if let Some((code, step)) = &summary.stopped_at {
            if kill_after_steps.is_some() {
                eprintln!("aborting after {} steps (participant {code}, next step {step})", summary.steps_answered);
                std::process::abort();
            }
            println!("PAUSED after {} steps: participant {code}, next step {step}", summary.steps_answered);
            std::io::stdout().flush()?;
            std::thread::sleep(std::time::Duration::from_secs(600));
            return Ok(ExitCode::SUCCESS);
        }
        let plain = analysis::analyse(&store, &summary.study, Some(summary.version), Default::default())?;
        let strict = Exclusions { failed_attention: true, too_fast: true };
        let excluded = analysis::analyse(&store, &summary.study, Some(summary.version), strict)?;
        if self.json {
            print_json(
                &serde_json::json!({ "simulation": summary, "analysis": plain, "analysis_excluded": excluded }),
            )?;
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "study `{}` version {} ({}): {} simulated participants ({} resumed), {} finished, {} steps answered now",
            summary.study,
            summary.version,
            summary.registered.map_or("", |o| match o {
                RegisterOutcome::Created => "new",
                RegisterOutcome::NewVersion => "new version",
                RegisterOutcome::ReplacedDraft => "draft replaced",
                RegisterOutcome::Unchanged => "unchanged",
            }),
            summary.participants,
            summary.resumed,
            summary.finished,
            summary.steps_answered
        );
        print!("{plain}");
        println!("with failed-attention participants and too-fast answers left out:");
        print!("{excluded}");
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Prepare {
    #[arg(long)]
    study: PathBuf,
    #[arg(long)]
    db: PathBuf,
    /// The writer: a catalog name or a GGUF path (default: the demo writer).
    #[arg(long)]
    writer: Option<String>,
}

impl Prepare {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let spec = StudySpec::load(&self.study)?;
        let store = Store::open(&self.db)?;
        let mut model = open_writer(self.writer, g.device())?;
        let bar = ProgressBar::new();
        let s = crate::studies::prepare::prepare(&store, &spec, model.as_mut(), &bar)
            .map_err(|e| e.in_file(&self.study))?;
        bar.finish();
        println!(
            "{}: {} renderings written now, {} already stored, {} fell back to free text; {} item-condition pairs \
             have no rationale of the condition's perspective",
            spec.name,
            s.written,
            s.already,
            s.fallback,
            s.missing_rationale.len()
        );
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Analyse {
    #[arg(long)]
    db: PathBuf,
    /// The study's name.
    #[arg(long)]
    study: String,
    /// The version (default: the newest).
    #[arg(long)]
    version: Option<u32>,
    /// Leave out participants who failed an attention check.
    #[arg(long)]
    exclude_failed_attention: bool,
    /// Leave out item answers faster than the study's minimum time per item.
    #[arg(long)]
    exclude_too_fast: bool,
    #[arg(long)]
    json: bool,
}

impl Analyse {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let exclusions =
            Exclusions { failed_attention: self.exclude_failed_attention, too_fast: self.exclude_too_fast };
        let a = analysis::analyse(&Store::open(&self.db)?, &self.study, self.version, exclusions)?;
        if self.json {
            print_json(&a)?;
        } else {
            print!("{a}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Export {
    #[arg(long)]
    db: PathBuf,
    /// The study's name.
    #[arg(long)]
    study: String,
    #[arg(long)]
    out: PathBuf,
}

impl Export {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let summary = crate::studies::export::export_study(&Store::open(&self.db)?, &self.study, &self.out)?;
        println!(
            "exported {} responses of {} participants (versions {:?}) to {}",
            summary.responses,
            summary.participants,
            summary.versions,
            self.out.display()
        );
        for file in &summary.files {
            println!("  {}", file.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}
