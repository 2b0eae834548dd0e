//! `argus stats`: what a database holds.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{Global, existing, print_json};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct Stats {
    #[arg(long)]
    db: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl Stats {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let stats = Store::open(&self.db)?.stats()?;
        if self.json {
            print_json(&stats)?;
        } else {
            println!("{}: {stats}", self.db.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}
