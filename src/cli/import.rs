//! `argus import`: dataset files into a database, all files or nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::Global;
use super::progress::ProgressBar;
use crate::ingest::{self, FileFormat, ImportFlags, ImportOptions, ImportReport};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct Import {
    /// Database file (created if missing).
    #[arg(long)]
    db: PathBuf,
    /// Input format; guessed from the extension and header when left out.
    #[arg(long, value_parser = parse_format)]
    format: Option<FileFormat>,
    /// Column mapping for generic csv/tsv/json/jsonl, e.g.
    /// `content=statement,label=label,rationale:human=justification`; in JSON, field paths such as
    /// `content=claim.text,label=verdict.rating,evidence=questions[*].answers[*].answer`.
    #[arg(long)]
    map: Option<String>,
    /// Label mapping replacing the default, e.g. `pants-fire=fake,false=fake,true=real,not enough info=unlabelled`.
    #[arg(long)]
    labels: Option<String>,
    /// What a label the map does not name becomes (`unlabelled`, `real` or `fake`); without it such a label fails
    /// the import.
    #[arg(long)]
    default_label: Option<String>,
    /// Delimiter of a generic delimited file (`,` `;` `|` or tab); guessed from the extension and header.
    #[arg(long)]
    delimiter: Option<String>,
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
        let opts = ImportOptions::from_flags(&ImportFlags {
            format: self.format,
            map: self.map,
            labels: self.labels,
            default_label: self.default_label,
            delimiter: self.delimiter,
            name: self.name,
        })?;
        let mut store = Store::open(&self.db)?;
        let bar = ProgressBar::new();
        let summaries = ingest::import_files(&mut store, &self.files, &opts, &bar)?;
        bar.finish();
        print!("{}", ImportReport { db: self.db, files: self.files.into_iter().zip(summaries).collect() });
        Ok(ExitCode::SUCCESS)
    }
}
