//! `argus assign`: route the items nobody is assigned yet to k annotators each, loads balanced, seeded.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{Global, existing};
use crate::store::Store;
use crate::studies::StudyError;
use crate::studies::assign::AssignError;

#[derive(Args, Debug)]
pub struct Assign {
    #[arg(long)]
    db: PathBuf,
    /// Annotator names, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    annotators: Vec<String>,
    /// Annotators per item.
    #[arg(long, default_value_t = 2)]
    k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Only these item ids, comma-separated (default: every item).
    #[arg(long = "only", value_delimiter = ',')]
    items: Option<Vec<i64>>,
}

impl Assign {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let mut store = Store::open(&self.db)?;
        match crate::studies::assign::assign_new(&mut store, &self.annotators, self.k, self.seed, self.items) {
            Ok(report) => print!("{report}"),
            Err(StudyError::Assign(AssignError::UnknownItem(item))) => {
                anyhow::bail!("--only: item {item} is not in {}", self.db.display())
            }
            Err(e) => return Err(e.into()),
        }
        Ok(ExitCode::SUCCESS)
    }
}
