//! Fact-checkers' reviews: a rating on a scale of the user's choosing with what it means for training, a short
//! explanation and evidence links, by reviewer and time. A new review of an item is a new row (the history is kept);
//! undo retracts one.

use std::collections::HashMap;

use rusqlite::params;

use super::{Result, Store, StoreError};
use crate::domain::{ItemId, NewReview, Review, Verdict};

const REVIEW_COLUMNS: &str = "r.id, r.item_id, a.name, r.scale, r.rating, r.rating_value, r.best_rating, \
     r.worst_rating, r.verdict, r.explanation, r.evidence, r.created_at, r.retracted_at IS NOT NULL";

fn row_to_review(r: &rusqlite::Row<'_>) -> rusqlite::Result<Review> {
    let verdict: Option<String> = r.get(8)?;
    let evidence: String = r.get(10)?;
    Ok(Review {
        id: r.get(0)?,
        item_id: r.get(1)?,
        reviewer: r.get(2)?,
        scale: r.get(3)?,
        rating: r.get(4)?,
        rating_value: r.get(5)?,
        best_rating: r.get(6)?,
        worst_rating: r.get(7)?,
        verdict: verdict.as_deref().and_then(Verdict::parse),
        explanation: r.get(9)?,
        evidence: serde_json::from_str(&evidence).unwrap_or_default(),
        created_at: r.get(11)?,
        retracted: r.get(12)?,
    })
}

/// Checks a review before it is stored: the rating is a level of the scale, evidence links are http(s) URLs.
pub fn validate_review(r: &NewReview) -> Result<()> {
    if r.scale.level(&r.rating).is_none() {
        let levels: Vec<&str> = r.scale.levels.iter().map(|l| l.name.as_str()).collect();
        return Err(StoreError::Invalid(format!(
            "'{}' is not a level of the {} scale ({})",
            r.rating,
            r.scale.name,
            levels.join(", ")
        )));
    }
    for link in &r.evidence {
        let l = link.trim();
        let ok = (l.starts_with("https://") || l.starts_with("http://"))
            && l.len() > "https://".len()
            && !l.chars().any(char::is_whitespace);
        if !ok {
            return Err(StoreError::Invalid(format!("evidence link '{link}' is not an http(s) URL")));
        }
    }
    Ok(())
}

impl Store {
    /// Stores a review; committed when this returns. Returns its id.
    pub fn record_review(&self, r: &NewReview) -> Result<i64> {
        validate_review(r)?;
        self.item(r.item_id)?;
        let (value, level) = r.scale.level(&r.rating).expect("validated");
        let evidence: Vec<&str> = r.evidence.iter().map(|e| e.trim()).filter(|e| !e.is_empty()).collect();
        self.conn
            .execute(
                "INSERT INTO reviews(item_id, annotator_id, scale, rating, rating_value, best_rating, worst_rating, \
                 verdict, explanation, evidence) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9)",
                params![
                    r.item_id,
                    r.reviewer,
                    r.scale.name,
                    level.name,
                    value,
                    r.scale.levels.len() as i64,
                    level.verdict.map(Verdict::as_str),
                    r.explanation.trim(),
                    serde_json::to_string(&evidence).unwrap_or_else(|_| "[]".into()),
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Undo of a review: marks it retracted (the row stays); the reviewer's previous review, if any, stands again.
    pub fn retract_review(&self, id: i64) -> Result<()> {
        let n = self
            .conn
            .execute(
                "UPDATE reviews SET retracted_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                 WHERE id = ?1 AND retracted_at IS NULL",
                [id],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(StoreError::NotFound { what: "standing review", id });
        }
        Ok(())
    }

    /// Every review of an item, undone ones included, newest first: its history.
    pub fn reviews_of(&self, item: ItemId) -> Result<Vec<Review>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {REVIEW_COLUMNS} FROM reviews r JOIN annotators a ON a.id = r.annotator_id \
                 WHERE r.item_id = ?1 ORDER BY r.created_at DESC, r.id DESC"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([item], row_to_review).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// The review that stands for each reviewed item: the newest not undone, by time.
    pub fn standing_reviews(&self) -> Result<HashMap<ItemId, Review>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {REVIEW_COLUMNS} FROM reviews r JOIN annotators a ON a.id = r.annotator_id \
                 WHERE r.retracted_at IS NULL ORDER BY r.created_at, r.id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], row_to_review).map_err(|e| self.err(e))?;
        let mut out = HashMap::new();
        for row in rows {
            let review = row.map_err(|e| self.err(e))?;
            out.insert(review.item_id, review);
        }
        Ok(out)
    }
}
