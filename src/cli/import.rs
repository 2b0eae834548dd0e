//! `argus import`: dataset files into a database, all files or nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::Global;
use super::progress::ProgressBar;
use crate::ingest::{self, FileFormat, ImportOptions, ImportReport};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct Import {
    /// Database file (created if missing).
    #[arg(long)]
    db: PathBuf,
    /// Input format; guessed from the extension and header when left out.
    #[arg(long, value_parser = parse_format)]
    format: Option<FileFormat>,
    /// Column mapping for generic csv/jsonl, e.g. `content=statement,label=label,rationale:human=justification`.
    #[arg(long)]
    map: Option<String>,
    /// Label mapping replacing the default, e.g. `pants-fire=fake,false=fake,true=real`.
    #[arg(long)]
    labels: Option<String>,
    /// Dataset name (default: the file name).
    #[arg(long)]
    name: Option<String>,
    /// Files to import.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

fn parse_format(s: &str) -> Result<FileFormat, String> {
    s.parse::<FileFormat>().map_err(|e| e.to_string())
}

impl Import {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        let opts = ImportOptions::from_flags(self.format, self.map.as_deref(), self.labels.as_deref(), self.name)?;
        let mut store = Store::open(&self.db)?;
        let bar = ProgressBar::new();
        let summaries = ingest::import_files(&mut store, &self.files, &opts, &bar)?;
        bar.finish();
        print!("{}", ImportReport { db: self.db, files: self.files.into_iter().zip(summaries).collect() });
        Ok(ExitCode::SUCCESS)
    }
}
