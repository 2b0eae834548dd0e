//! `argus bundle export` / `argus bundle import`: a team's work shared as files (after Prodigy's db-out / db-in).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::progress::ProgressBar;
use super::{Global, existing};
use crate::ingest::bundle::{export_bundle, merge_bundles};
use crate::store::Store;

#[derive(Subcommand, Debug)]
pub enum BundleCmd {
    /// Write every judgement, adjudication, feedback form, rationale revision, review and undo of a database, by
    /// annotator and time, naming items by their stable key (JSON Lines).
    Export(ExportBundle),
    /// Merge colleagues' bundles into a database: idempotent, nothing overwritten, disagreements kept, rows about
    /// items the database lacks reported; all files or nothing.
    Import(ImportBundle),
}

impl BundleCmd {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        match self {
            BundleCmd::Export(c) => c.run(g),
            BundleCmd::Import(c) => c.run(g),
        }
    }
}

#[derive(Args, Debug)]
pub struct ExportBundle {
    #[arg(long)]
    db: PathBuf,
    /// The bundle file to write (JSON Lines).
    #[arg(long)]
    out: PathBuf,
}

impl ExportBundle {
    fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let store = Store::open(&self.db)?;
        print!("{}", export_bundle(&store, &self.out)?);
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct ImportBundle {
    #[arg(long)]
    db: PathBuf,
    /// Bundle files, merged in one transaction.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

impl ImportBundle {
    fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let mut store = Store::open(&self.db)?;
        let bar = ProgressBar::new();
        let report = merge_bundles(&mut store, &self.files, &bar)?;
        bar.finish();
        print!("{report}");
        Ok(ExitCode::SUCCESS)
    }
}
