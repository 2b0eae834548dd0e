//! `argus route`: cost-aware routing of a database ([`crate::guidance::route`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::progress::ProgressBar;
use super::rationales::{local_settings, print_failure, print_plan};
use super::{Global, existing};
use crate::guidance::route::{RouteRequest, RouteWriter, route_database};

#[derive(Args, Debug)]
pub struct Route {
    #[arg(long)]
    db: PathBuf,
    /// Share of items routed to rationales + ARG (the paper: 0.23).
    #[arg(long, default_value_t = 0.23)]
    share: f64,
    /// Write rationales for the routed items with this model (catalog name or GGUF path), then run ARG.
    #[arg(long)]
    writer: Option<String>,
    #[arg(long, default_value = "td,cs", value_delimiter = ',')]
    perspectives: Vec<String>,
}

impl Route {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let device = g.device();
        let request = RouteRequest {
            share: self.share,
            device,
            writer: self
                .writer
                .map(|model| RouteWriter { settings: local_settings(model, device), perspectives: self.perspectives }),
        };
        let bar = ProgressBar::new();
        let report = route_database(&self.db, &request, &bar, &mut print_plan, &mut print_failure)?;
        bar.finish();
        print!("{report}");
        Ok(ExitCode::SUCCESS)
    }
}
