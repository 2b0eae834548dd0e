//! `argus export`: every item with rationales and merged human judgements, as ARG JSON, JSONL or CSV.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{Global, existing};
use crate::ingest::export::ExportFormat;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct Export {
    #[arg(long)]
    db: PathBuf,
    /// arg-json (a folder with train/val/test.json), jsonl or csv.
    #[arg(long, value_parser = parse_export_format)]
    format: ExportFormat,
    /// Output file (jsonl, csv) or folder (arg-json).
    #[arg(long)]
    out: PathBuf,
}

fn parse_export_format(s: &str) -> Result<ExportFormat, String> {
    s.parse::<ExportFormat>().map_err(|e| e.to_string())
}

impl Export {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let store = Store::open(&self.db)?;
        let summary = crate::ingest::export::export(&store, self.format, &self.out)?;
        println!("exported {} items ({} skipped, no label) to {}", summary.items, summary.skipped, self.out.display());
        for file in &summary.files {
            println!("  {}", file.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}
