//! `argus export`: every item with rationales and merged human judgements, as ARG JSON, JSONL or CSV.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{Global, existing};
use crate::ingest::claimreview::ClaimReviewOptions;
use crate::ingest::export::ExportFormat;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct Export {
    #[arg(long)]
    db: PathBuf,
    /// arg-json (a folder with train/val/test.json), jsonl, csv, or claimreview (each reviewed item's standing
    /// review as schema.org ClaimReview JSON-LD: one KEY.jsonld per review in the folder --out, or with
    /// --one-file one JSON array).
    #[arg(long, value_parser = parse_export_format)]
    format: ExportFormat,
    /// Output file (jsonl, csv, claimreview with --one-file) or folder (arg-json, claimreview).
    #[arg(long)]
    out: PathBuf,
    /// claimreview: the fact-check page of an item, with {key} for the item's key, e.g.
    /// https://factcheck.example.org/reviews/{key}.
    #[arg(long)]
    url_pattern: Option<String>,
    /// claimreview: the publishing organisation (else each review's author is its reviewer).
    #[arg(long)]
    publisher: Option<String>,
    /// claimreview: the publisher's home page.
    #[arg(long)]
    publisher_url: Option<String>,
    /// claimreview: one file with a JSON array rather than one file per review.
    #[arg(long)]
    one_file: bool,
}

fn parse_export_format(s: &str) -> Result<ExportFormat, String> {
    s.parse::<ExportFormat>().map_err(|e| e.to_string())
}

impl Export {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let store = Store::open(&self.db)?;
        let claimreview = ClaimReviewOptions {
            url_pattern: self.url_pattern.unwrap_or_default(),
            publisher: self.publisher,
            publisher_url: self.publisher_url,
            one_file: self.one_file,
        };
        let summary = crate::ingest::export::export_with(&store, self.format, &self.out, &claimreview)?;
        if self.format == ExportFormat::ClaimReview {
            println!("exported {} reviews as ClaimReview to {}", summary.items, self.out.display());
        } else {
            println!(
                "exported {} items ({} skipped, no label) to {}",
                summary.items,
                summary.skipped,
                self.out.display()
            );
        }
        for file in &summary.files {
            println!("  {}", file.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}
