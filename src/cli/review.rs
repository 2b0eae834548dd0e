//! `argus review`: a fact-checker's review of an item (rating on a scale, explanation, evidence), stored with its
//! history; `--history` prints an item's reviews.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use super::{Global, existing};
use crate::domain::{NewReview, RatingScale};
use crate::store::Store;

#[derive(Args, Debug)]
pub struct Review {
    #[arg(long)]
    db: PathBuf,
    /// The item: its key (`liar2:11972`, `id:av-1`, `sha:...`) or its id in this database.
    #[arg(long)]
    item: String,
    /// The rating, a level of the scale (PolitiFact's by default: Pants on Fire, False, Mostly False, Half True,
    /// Mostly True, True).
    #[arg(long, required_unless_present = "history")]
    rating: Option<String>,
    /// The rating scale, worst level first: `NAME: LEVEL=real|fake|other, ...`.
    #[arg(long)]
    scale: Option<String>,
    /// A short explanation of the rating.
    #[arg(long, default_value = "")]
    explanation: String,
    /// An evidence link (repeatable).
    #[arg(long)]
    evidence: Vec<String>,
    /// The reviewer's name.
    #[arg(long, default_value = "reviewer")]
    reviewer: String,
    /// Print the item's reviews, newest first, instead of adding one.
    #[arg(long)]
    history: bool,
}

impl Review {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        existing(&self.db)?;
        let store = Store::open(&self.db)?;
        let item = match store.item_id_by_key(&self.item)? {
            Some(id) => id,
            None => self
                .item
                .parse::<i64>()
                .ok()
                .filter(|id| store.item(*id).is_ok())
                .with_context(|| format!("{}: no item with key or id '{}'", self.db.display(), self.item))?,
        };
        if !self.history {
            let scale = match &self.scale {
                Some(spec) => RatingScale::parse(spec).map_err(|e| anyhow::anyhow!("--scale: {e}"))?,
                None => RatingScale::politifact(),
            };
            let review = NewReview {
                item_id: item,
                reviewer: store.annotator_id(&self.reviewer)?,
                scale,
                rating: self.rating.unwrap_or_default(),
                explanation: self.explanation,
                evidence: self.evidence,
            };
            let id = store.record_review(&review)?;
            println!("review {id} of item {} stored", self.item);
        }
        for r in store.reviews_of(item)? {
            println!(
                "{} {}{}: {} ({}/{} on {}){}{}",
                r.created_at,
                r.reviewer,
                if r.retracted { " (undone)" } else { "" },
                r.rating,
                r.rating_value,
                r.best_rating,
                r.scale,
                if r.explanation.is_empty() { String::new() } else { format!(" - {}", r.explanation) },
                if r.evidence.is_empty() { String::new() } else { format!(" [{}]", r.evidence.join(" ")) },
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
