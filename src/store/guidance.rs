//! What the guidance model reads and writes: the training view of every item (labels and rationale targets with
//! people's feedback), model versions, the version in use per kind, and predictions.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, StoreError, row_to_judgement};
use crate::domain::{ItemId, Judgement, ModelKind, Usefulness, Verdict, resolve_verdicts};

/// One item as training sees it: the raw facts; turning them into targets is `guidance::data`'s job.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingItem {
    pub id: ItemId,
    pub title: Option<String>,
    pub text: String,
    pub gold: Option<Verdict>,
    pub split: Option<String>,
    /// The item's source (speaker, outlet), and every other imported column ([`crate::domain::Item::metadata`]):
    /// what a group-aware split can be keyed on.
    pub source: Option<String>,
    pub metadata: serde_json::Value,
    /// The people's verdict: the adjudicated one when there is one, else the majority of standing judgements
    /// (`None` on a tie or when nobody judged).
    pub human: Option<Verdict>,
    /// Number of standing judgements.
    pub judgements: usize,
    /// When the newest standing judgement was made.
    pub judged_at: Option<String>,
    /// The newest revision of each rationale chain, oldest chain first.
    pub rationales: Vec<TrainingRationale>,
}

impl TrainingItem {
    /// The news as models read it (see [`crate::domain::news_text`]).
    pub fn news_text(&self) -> String {
        crate::domain::news_text(self.title.as_deref().unwrap_or(""), &self.text)
    }

    /// The value of field `key`, for a group-aware split: `source` is the item's source; any other key names an
    /// imported column kept in the item's metadata (strings as they are, numbers and booleans as written). `None`
    /// when the item has no such field or it is null or empty.
    pub fn field(&self, key: &str) -> Option<String> {
        let value = match key {
            "source" => self.source.clone(),
            _ => match self.metadata.get(key)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Some(v.to_string()),
                v => Some(v.to_string()),
            },
        };
        value.filter(|v| !v.trim().is_empty())
    }
}

/// The newest revision of one rationale and what people said about it.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingRationale {
    pub perspective: String,
    pub text: String,
    /// The verdict it implies (a person's correction when revised).
    pub verdict: Option<Verdict>,
    /// Revision number (1 = as written).
    pub revision: u32,
    /// The newest standing usefulness judgement on any revision of the chain.
    pub usefulness: Option<Usefulness>,
}

/// A trained model version.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ModelVersion {
    pub id: i64,
    pub kind: ModelKind,
    pub parent_id: Option<i64>,
    pub config: serde_json::Value,
    pub metrics: serde_json::Value,
    pub weights_path: Option<String>,
    pub weights_sha256: Option<String>,
    pub created_at: String,
    pub seconds_taken: Option<f64>,
    pub data_snapshot: serde_json::Value,
}

/// A version about to be stored.
#[derive(Clone, Debug)]
pub struct NewModelVersion {
    pub kind: ModelKind,
    pub parent_id: Option<i64>,
    pub config: serde_json::Value,
    pub metrics: serde_json::Value,
    pub weights_path: String,
    pub weights_sha256: String,
    pub seconds_taken: f64,
    pub data_snapshot: serde_json::Value,
    /// Per-epoch records (loss, validation metrics).
    pub epochs: serde_json::Value,
}

/// What one version predicted for one item.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Prediction {
    pub item_id: ItemId,
    pub p_fake: f64,
    /// Per perspective: trust in the rationale (w_r), predicted usefulness, predicted LLM verdict.
    pub gates: Vec<(String, f64)>,
    pub usefulness: Vec<(String, f64)>,
    pub judgements: Vec<(String, Verdict)>,
}

fn to_json_map<T: serde::Serialize>(pairs: &[(String, T)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> =
        pairs.iter().map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default())).collect();
    serde_json::Value::Object(map).to_string()
}

fn from_json_map(text: &str) -> Vec<(String, serde_json::Value)> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
        _ => Vec::new(),
    }
}

impl Store {
    /// Every item with its people's verdict and its rationales' latest revisions and feedback, in id order.
    pub fn training_items(&self) -> Result<Vec<TrainingItem>> {
        let sql = |e| self.err(e);
        let mut judgements: HashMap<ItemId, Vec<Judgement>> = HashMap::new();
        {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT j.id, j.item_id, a.name, j.verdict, j.confidence, j.note, j.time_spent_ms, \
                     j.adjudicated, j.created_at FROM standing_judgements j \
                     JOIN annotators a ON a.id = j.annotator_id ORDER BY j.id",
                )
                .map_err(sql)?;
            for j in stmt.query_map([], row_to_judgement).map_err(sql)? {
                let j = j.map_err(sql)?;
                judgements.entry(j.item_id).or_default().push(j);
            }
        }
        let mut rationales: HashMap<ItemId, Vec<TrainingRationale>> = HashMap::new();
        {
            // The newest standing feedback with a usefulness judgement on any revision of the chain.
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT r.item_id, r.perspective, r.text, r.verdict, r.revision, \
                       (SELECT f.usefulness FROM rationale_feedback f JOIN rationales r2 ON r2.id = f.rationale_id \
                        WHERE r2.root_id = r.root_id AND f.retracted_at IS NULL AND f.usefulness IS NOT NULL \
                        ORDER BY f.id DESC LIMIT 1) \
                     FROM latest_rationales r ORDER BY r.item_id, r.root_id",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, ItemId>(0)?,
                        TrainingRationale {
                            perspective: r.get(1)?,
                            text: r.get(2)?,
                            verdict: r.get::<_, Option<String>>(3)?.as_deref().and_then(Verdict::parse),
                            revision: r.get(4)?,
                            usefulness: r.get::<_, Option<String>>(5)?.as_deref().and_then(Usefulness::parse),
                        },
                    ))
                })
                .map_err(sql)?;
            for row in rows {
                let (item, r) = row.map_err(sql)?;
                rationales.entry(item).or_default().push(r);
            }
        }
        // A published review is the people's verdict, as an adjudication is.
        let reviewed: HashMap<ItemId, Verdict> =
            self.standing_reviews()?.into_iter().filter_map(|(id, r)| Some((id, r.verdict?))).collect();
        let mut stmt = self
            .conn
            .prepare("SELECT id, title, text, gold_label, split, source, metadata FROM items ORDER BY id")
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, ItemId>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(sql)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, title, text, gold, split, source, metadata) = row.map_err(sql)?;
            let js = judgements.remove(&id).unwrap_or_default();
            out.push(TrainingItem {
                id,
                title,
                text,
                gold: gold.as_deref().and_then(Verdict::parse),
                split,
                source,
                metadata: serde_json::from_str(&metadata).unwrap_or_default(),
                human: reviewed.get(&id).copied().or_else(|| resolve_verdicts(&js)),
                judgements: js.len(),
                judged_at: js.iter().map(|j| j.created_at.clone()).max(),
                rationales: rationales.remove(&id).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    /// Standing judgements made after `since` (an ISO timestamp as stored), or all of them.
    pub fn judgements_since(&self, since: Option<&str>) -> Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM standing_judgements WHERE ?1 IS NULL OR created_at > ?1", [since], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Records that a training run started; returns its id.
    pub fn start_training_run(&self, snapshot: &serde_json::Value) -> Result<i64> {
        self.conn
            .execute("INSERT INTO training_runs(status, data_snapshot) VALUES ('running', ?1)", [snapshot.to_string()])
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Closes a training run that produced no version (failed or cancelled).
    pub fn end_training_run(&self, run: i64, status: &str, epochs: &serde_json::Value, seconds: f64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE training_runs SET status = ?2, epochs = ?3, seconds_taken = ?4, \
                 finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
                params![run, status, epochs.to_string(), seconds],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Stores a trained version, closes its run and makes it the kind's active version, in one transaction.
    pub fn add_model_version(&mut self, run: i64, v: &NewModelVersion) -> Result<i64> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO model_versions(kind, parent_id, config, metrics, weights_path, weights_sha256, \
             seconds_taken, data_snapshot) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                v.kind.as_str(),
                v.parent_id,
                v.config.to_string(),
                v.metrics.to_string(),
                v.weights_path,
                v.weights_sha256,
                v.seconds_taken,
                v.data_snapshot.to_string()
            ],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "UPDATE training_runs SET status = 'finished', model_version_id = ?2, epochs = ?3, seconds_taken = ?4, \
             finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?1",
            params![run, id, v.epochs.to_string(), v.seconds_taken],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO active_models(kind, version_id) VALUES (?1, ?2) \
             ON CONFLICT(kind) DO UPDATE SET version_id = excluded.version_id, \
             set_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            params![v.kind.as_str(), id],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// Every model version, oldest first.
    pub fn model_versions(&self) -> Result<Vec<ModelVersion>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, kind, parent_id, config, metrics, weights_path, weights_sha256, created_at, \
                 seconds_taken, data_snapshot FROM model_versions ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], row_to_version).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// One model version.
    pub fn model_version(&self, id: i64) -> Result<ModelVersion> {
        self.conn
            .query_row(
                "SELECT id, kind, parent_id, config, metrics, weights_path, weights_sha256, created_at, \
                 seconds_taken, data_snapshot FROM model_versions WHERE id = ?1",
                [id],
                row_to_version,
            )
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or(StoreError::NotFound { what: "model version", id })
    }

    /// The per-epoch records of the run that produced `version`.
    pub fn version_epochs(&self, version: i64) -> Result<serde_json::Value> {
        let text: Option<String> = self
            .conn
            .query_row("SELECT epochs FROM training_runs WHERE model_version_id = ?1", [version], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(serde_json::Value::Array(Vec::new())))
    }

    /// The version of `kind` in use (the newest trained, unless rolled back).
    pub fn active_version(&self, kind: ModelKind) -> Result<Option<i64>> {
        self.conn
            .query_row("SELECT version_id FROM active_models WHERE kind = ?1", [kind.as_str()], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Makes `version` the one in use for its kind (roll back, or forward again). Nothing is deleted.
    pub fn set_active_version(&self, version: i64) -> Result<()> {
        let kind = self.model_version(version)?.kind;
        self.conn
            .execute(
                "INSERT INTO active_models(kind, version_id) VALUES (?1, ?2) \
                 ON CONFLICT(kind) DO UPDATE SET version_id = excluded.version_id, \
                 set_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                params![kind.as_str(), version],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Replaces the predictions of `version` for these items, in one transaction.
    pub fn save_predictions(&mut self, version: i64, predictions: &[Prediction]) -> Result<()> {
        let path = self.path.clone();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT OR REPLACE INTO predictions(version_id, item_id, p_fake, gates, usefulness, judgements) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            for p in predictions {
                let judgements: Vec<(String, &str)> =
                    p.judgements.iter().map(|(k, v)| (k.clone(), v.as_str())).collect();
                insert
                    .execute(params![
                        version,
                        p.item_id,
                        p.p_fake.clamp(0.0, 1.0),
                        to_json_map(&p.gates),
                        to_json_map(&p.usefulness),
                        to_json_map(&judgements)
                    ])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// Every prediction of `version`, by item id.
    pub fn predictions(&self, version: i64) -> Result<HashMap<ItemId, Prediction>> {
        let mut stmt = self
            .conn
            .prepare("SELECT item_id, p_fake, gates, usefulness, judgements FROM predictions WHERE version_id = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([version], row_to_prediction).map_err(|e| self.err(e))?;
        let mut out = HashMap::new();
        for row in rows {
            let p = row.map_err(|e| self.err(e))?;
            out.insert(p.item_id, p);
        }
        Ok(out)
    }

    /// The prediction of `version` for one item.
    pub fn prediction(&self, version: i64, item: ItemId) -> Result<Option<Prediction>> {
        self.conn
            .query_row(
                "SELECT item_id, p_fake, gates, usefulness, judgements FROM predictions \
                 WHERE version_id = ?1 AND item_id = ?2",
                [version, item],
                row_to_prediction,
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

fn row_to_version(r: &rusqlite::Row<'_>) -> rusqlite::Result<ModelVersion> {
    let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
        Ok(serde_json::from_str(&r.get::<_, String>(i)?).unwrap_or_default())
    };
    Ok(ModelVersion {
        id: r.get(0)?,
        kind: {
            let name: String = r.get(1)?;
            ModelKind::parse(&name).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    1,
                    rusqlite::types::Type::Text,
                    format!("unknown model kind '{name}'").into(),
                )
            })?
        },
        parent_id: r.get(2)?,
        config: json(3)?,
        metrics: json(4)?,
        weights_path: r.get(5)?,
        weights_sha256: r.get(6)?,
        created_at: r.get(7)?,
        seconds_taken: r.get(8)?,
        data_snapshot: json(9)?,
    })
}

fn row_to_prediction(r: &rusqlite::Row<'_>) -> rusqlite::Result<Prediction> {
    let numbers = |text: String| -> Vec<(String, f64)> {
        from_json_map(&text).into_iter().filter_map(|(k, v)| Some((k, v.as_f64()?))).collect()
    };
    Ok(Prediction {
        item_id: r.get(0)?,
        p_fake: r.get(1)?,
        gates: numbers(r.get(2)?),
        usefulness: numbers(r.get(3)?),
        judgements: from_json_map(&r.get::<_, String>(4)?)
            .into_iter()
            .filter_map(|(k, v)| Some((k, Verdict::parse(v.as_str()?)?)))
            .collect(),
    })
}
