//! `argus explain`: a rationale in one explanation format (or all), with every quote's span in the news.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::progress::ProgressBar;
use super::rationales::open_writer;
use super::{Global, existing, print_json};
use crate::formats::{self, explain, generate};
use crate::models::ChatModel;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct Explain {
    #[arg(long)]
    db: PathBuf,
    #[arg(long)]
    item: i64,
    #[arg(long)]
    format: String,
    /// The perspective whose rationale (latest revision) is shown; default: the item's first.
    #[arg(long)]
    perspective: Option<String>,
    /// The model that writes structured formats: a catalog name or a GGUF path (default: the demo writer).
    #[arg(long)]
    writer: Option<String>,
    /// Only show what is stored; never load a model.
    #[arg(long)]
    no_generate: bool,
    /// Print JSON (one object; an array for `--format all`).
    #[arg(long)]
    json: bool,
}

impl Explain {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let formats = explain::formats_named(&self.format).context("--format")?;
        let store = Store::open(&self.db)?;
        let choice = explain::choose(
            &store,
            self.item,
            &formats,
            self.perspective.as_deref(),
            self.writer.is_some(),
            !self.no_generate,
        )?;
        let mut model = if choice.needs_model { Some(open_writer(self.writer, g.device())?) } else { None };
        let bar = ProgressBar::new();
        let mut out = Vec::new();
        for f in formats {
            let m: Option<&mut dyn ChatModel> = match model.as_mut() {
                Some(m) => Some(m.as_mut()),
                None => None,
            };
            out.push(generate::render(&store, &choice.rationale, f, m, &bar)?);
        }
        bar.finish();
        if self.json {
            // Through a `Value`, as before: its keys are sorted.
            let value =
                if let [one] = out.as_slice() { serde_json::to_value(one)? } else { serde_json::to_value(&out)? };
            print_json(&value)?;
        } else {
            let news = store.item(self.item)?.text;
            for r in &out {
                println!("{}", formats::plain_text(r, &news));
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
