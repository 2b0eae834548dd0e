//! `argus project`: the settings of a project (its database), shared by everyone who opens it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{Global, existing};
use crate::guidance::data::{TEXT_GROUP, check_group_key};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct Project {
    #[arg(long)]
    db: PathBuf,
    /// Split train / val (and test, when the data names no split) by this field from now on, for everyone who
    /// trains on this database (the studio, `argus train`, `simulate`, `bench quality --db`): an imported column
    /// (e.g. image_id, event, claim_id), `source`, or `FIELD~REGEX`. `text`: by the item's text again (the default).
    /// Versions trained before keep their split, and so do retrains from them.
    #[arg(long, value_parser = check_group_key)]
    group_by: Option<String>,
    /// End with one JSON line: {"group_by", "group_fields": {FIELD: items with a value}}.
    #[arg(long)]
    json: bool,
}

impl Project {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let store = Store::open(&self.db)?;
        let fields = store.group_fields()?;
        if let Some(key) = &self.group_by {
            if key.trim() == TEXT_GROUP {
                store.set_project_setting(crate::store::settings::SPLIT_GROUP_BY, None)?;
            } else {
                let field = crate::guidance::data::GroupKey::parse(key).map_err(anyhow::Error::msg)?.field;
                if !fields.contains_key(&field) {
                    let known: Vec<&str> = fields.keys().map(String::as_str).collect();
                    anyhow::bail!(
                        "{}: no item has a field {field:?} to group by (fields: {}; or `text`)",
                        self.db.display(),
                        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                    );
                }
                store.set_project_setting(crate::store::settings::SPLIT_GROUP_BY, Some(key))?;
            }
        }
        let group_by = store.split_group_by()?;
        println!(
            "{}: splits grouped by {}",
            self.db.display(),
            group_by.as_deref().map_or_else(|| "the item's text (default)".to_owned(), |k| format!("{k:?}"))
        );
        let listed: Vec<String> = fields.iter().map(|(k, n)| format!("{k} ({n} items)")).collect();
        println!("fields to group by: {}", if listed.is_empty() { "none".to_owned() } else { listed.join(", ") });
        if self.json {
            println!("{}", serde_json::json!({ "group_by": group_by, "group_fields": fields }));
        }
        Ok(ExitCode::SUCCESS)
    }
}
