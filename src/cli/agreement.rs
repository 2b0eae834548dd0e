//! `argus agreement`: inter-annotator agreement and per-annotator metrics on the standing judgements.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{Global, existing, print_json};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct Agreement {
    #[arg(long)]
    db: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl Agreement {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let summary = crate::studies::metrics::agreement_summary(&Store::open(&self.db)?)?;
        if self.json {
            print_json(&summary)?;
        } else {
            print!("{summary}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
