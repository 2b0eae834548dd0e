//! `argus encode`: every news text and rationale through the encoder's frozen layers into the encoder cache.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::progress::ProgressBar;
use super::{Global, existing};

#[derive(Args, Debug)]
pub struct Encode {
    #[arg(long)]
    db: PathBuf,
    /// Encoder: a catalog name (`argus models list`) or a folder.
    #[arg(long, default_value = "minilm")]
    model: String,
    /// Tokens per text (truncated and padded; ARG uses 170).
    #[arg(long, default_value_t = 170)]
    max_len: usize,
}

impl Encode {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let bar = ProgressBar::new();
        let summary =
            crate::encoding::encode_database(&self.db, &self.model, g.device(), self.max_len, &bar, &mut |plan| {
                bar.println(&plan.to_string())
            })?;
        bar.finish();
        println!("{summary}");
        Ok(ExitCode::SUCCESS)
    }
}
