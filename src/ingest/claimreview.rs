//! Reviews published as schema.org `ClaimReview` JSON-LD, the markup fact-checkers put on their pages (Google's
//! fact-check structured data; <https://developers.google.com/search/docs/appearance/structured-data/factcheck>).
//!
//! One object per item's standing review: `claimReviewed` (the claim's text), `reviewRating` (`ratingValue` on the
//! scale, `bestRating` / `worstRating`, `alternateName` and `name`: the level's words), `url` (the publisher's URL
//! pattern with `{key}` replaced by the item's key), `author` (the publisher, else the reviewer), `datePublished`,
//! `reviewBody` (the explanation), `citation` (the evidence links) and `itemReviewed`, a `Claim` with the claim's
//! `author` (its source), `datePublished` and `appearance` / `firstAppearance` when the item's metadata has a URL.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::export::{ExportError, ExportSummary, commit, write_temp};
use crate::domain::{Item, Review};
use crate::store::Store;

/// How reviews are published.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClaimReviewOptions {
    /// The fact-check page of an item: a URL with `{key}` (the item's key, made URL-safe), e.g.
    /// `https://factcheck.example.org/reviews/{key}`. Required: Google requires `url`.
    pub url_pattern: String,
    /// The publishing organisation; without it each review's author is its reviewer (a Person).
    pub publisher: Option<String>,
    /// The publisher's home page.
    pub publisher_url: Option<String>,
    /// One file holding a JSON array (`out` is that file) instead of one file per review (`out` is a folder).
    pub one_file: bool,
}

impl ClaimReviewOptions {
    fn check(&self) -> Result<(), String> {
        let p = self.url_pattern.trim();
        if p.is_empty() {
            return Err("ClaimReview needs the publisher's URL pattern (--url-pattern https://.../{key}): \
                        Google requires every ClaimReview to have a url"
                .into());
        }
        if !(p.starts_with("https://") || p.starts_with("http://")) || !p.contains("{key}") {
            return Err(format!("the URL pattern '{p}' must be an http(s) URL containing {{key}}"));
        }
        Ok(())
    }
}

/// An item key made safe for a URL path or a file name: letters, digits, `-`, `_` and `.` kept, the rest `-`.
pub fn url_safe_key(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' }).collect()
}

/// A URL in an item's metadata where the claim appeared (`url`, `link`, `claim_url`, `source_url`, `appearance`).
fn appearance(item: &Item) -> Option<String> {
    ["url", "link", "claim_url", "source_url", "appearance"].iter().find_map(|k| {
        item.metadata.get(k).and_then(Value::as_str).map(str::trim).filter(|u| u.starts_with("http")).map(str::to_owned)
    })
}

/// The ClaimReview of one review of one item.
pub fn claim_review(item: &Item, review: &Review, opts: &ClaimReviewOptions) -> Value {
    let url = opts.url_pattern.trim().replace("{key}", &url_safe_key(&item.key));
    let author = match &opts.publisher {
        Some(name) => {
            let mut o = json!({"@type": "Organization", "name": name});
            if let Some(u) = &opts.publisher_url {
                o["url"] = json!(u);
            }
            o
        }
        None => json!({"@type": "Person", "name": review.reviewer}),
    };
    let mut claim = json!({"@type": "Claim"});
    if let Some(source) = item.source.as_deref().filter(|s| !s.trim().is_empty()) {
        claim["author"] = json!({"@type": "Person", "name": source});
    }
    if let Some(date) = item.published.as_deref().filter(|s| !s.trim().is_empty()) {
        claim["datePublished"] = json!(date);
    }
    if let Some(u) = appearance(item) {
        claim["appearance"] = json!({"@type": "CreativeWork", "url": u});
        claim["firstAppearance"] = json!({"@type": "CreativeWork", "url": u});
    }
    let mut out = json!({
        "@context": "https://schema.org",
        "@type": "ClaimReview",
        "url": url,
        "claimReviewed": item.news_text(),
        "author": author,
        "datePublished": review.created_at.get(..10).unwrap_or(&review.created_at),
        "itemReviewed": claim,
        "reviewRating": {
            "@type": "Rating",
            "ratingValue": review.rating_value,
            "bestRating": review.best_rating,
            "worstRating": review.worst_rating,
            "alternateName": review.rating,
            "name": review.rating,
        },
    });
    if !review.explanation.trim().is_empty() {
        out["reviewBody"] = json!(review.explanation);
    }
    if !review.evidence.is_empty() {
        out["citation"] = json!(review.evidence);
    }
    out
}

/// Writes every item's standing review as ClaimReview JSON-LD: one `KEY.jsonld` file per review in the folder
/// `out`, or one JSON array in the file `out` ([`ClaimReviewOptions::one_file`]). Written to temporary files and
/// renamed, so nothing half-written is left.
pub fn export_claimreview(store: &Store, opts: &ClaimReviewOptions, out: &Path) -> Result<ExportSummary, ExportError> {
    opts.check().map_err(|reason| ExportError::Write { path: out.to_path_buf(), reason })?;
    let mut reviews: Vec<Review> = store.standing_reviews()?.into_values().collect();
    reviews.sort_by_key(|r| r.item_id);
    let mut docs: Vec<(String, Value)> = Vec::with_capacity(reviews.len());
    for review in &reviews {
        let item = store.item(review.item_id)?;
        docs.push((url_safe_key(&item.key), claim_review(&item, review, opts)));
    }
    let mut files: Vec<PathBuf> = Vec::new();
    if opts.one_file {
        let all: Vec<&Value> = docs.iter().map(|(_, d)| d).collect();
        let tmp = write_temp(out, |w| {
            serde_json::to_writer_pretty(&mut *w, &all).map_err(std::io::Error::other)?;
            w.write_all(b"\n")
        })?;
        commit(&tmp, out)?;
        files.push(out.to_path_buf());
    } else {
        std::fs::create_dir_all(out).map_err(|e| ExportError::Write {
            path: out.to_path_buf(),
            reason: format!("cannot create the folder: {e}"),
        })?;
        let mut temps = Vec::new();
        for (name, doc) in &docs {
            let path = out.join(format!("{name}.jsonld"));
            let tmp = write_temp(&path, |w| {
                serde_json::to_writer_pretty(&mut *w, doc).map_err(std::io::Error::other)?;
                w.write_all(b"\n")
            })?;
            temps.push((tmp, path));
        }
        for (tmp, path) in temps {
            commit(&tmp, &path)?;
            files.push(path);
        }
    }
    Ok(ExportSummary { items: docs.len(), skipped: 0, files })
}
