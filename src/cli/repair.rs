//! `argus repair`: apply a person's feedback with the writer, the repair scored (and re-scored by ARG on request).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::progress::ProgressBar;
use super::rationales::open_writer;
use super::{Global, existing};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct Repair {
    #[arg(long)]
    db: PathBuf,
    /// Feedback row id.
    #[arg(long)]
    feedback: i64,
    /// Writer: a catalog name or a GGUF path (default: the demo writer).
    #[arg(long)]
    writer: Option<String>,
    /// Let the ARG version in use re-score the item afterwards.
    #[arg(long)]
    rescore: bool,
    #[arg(long)]
    json: bool,
}

impl Repair {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let mut store = Store::open(&self.db)?;
        let mut model = open_writer(self.writer, g.device())?;
        let bar = ProgressBar::new();
        let mut rescore = self.rescore.then(|| crate::guidance::train::rescorer(&self.db, g.device()));
        let outcome = crate::formats::repair::apply_feedback(
            &mut store,
            model.as_mut(),
            self.feedback,
            rescore.as_mut().map(|r| r as crate::formats::repair::Rescore<'_>),
            &bar,
            &mut |_| {},
        )?;
        bar.finish();
        if self.json {
            println!("{}", serde_json::to_string(&outcome)?);
        } else {
            print!("{outcome}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
