//! The table of model versions with their test metrics and which one is in use per kind, as `argus versions`
//! prints it.
//!
//! This module knows nothing of the UI; it reads the store only.

use std::fmt;

use crate::store::guidance::ModelVersion;
use crate::store::{Store, StoreError};

/// Every model version, oldest first, each with whether it is the one in use for its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionsTable {
    pub rows: Vec<(ModelVersion, bool)>,
}

impl VersionsTable {
    /// Reads the versions and the version in use of each kind.
    pub fn read(store: &Store) -> Result<Self, StoreError> {
        let rows = store
            .model_versions()?
            .into_iter()
            .map(|v| {
                let active = store.active_version(v.kind)? == Some(v.id);
                Ok((v, active))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Self { rows })
    }
}

/// One line per version: `*` marks the one in use, then id, kind, parent, test macro-F1 and accuracy, seconds the
/// training took and when it was made.
impl fmt::Display for VersionsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (v, active) in &self.rows {
            let metric = |key: &str| v.metrics.pointer(&format!("/test/{key}")).and_then(|x| x.as_f64());
            let (f1, acc) = (metric("macro_f1").unwrap_or(f64::NAN), metric("accuracy").unwrap_or(f64::NAN));
            writeln!(
                f,
                "{}{:>4} {:<5} parent {:<5} test macro-F1 {f1:.4} accuracy {acc:.4} {:>7.1} s  {}",
                if *active { "*" } else { " " },
                v.id,
                v.kind,
                v.parent_id.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                v.seconds_taken.unwrap_or(0.0),
                v.created_at
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(id: i64, kind: &str, parent_id: Option<i64>) -> ModelVersion {
        ModelVersion {
            id,
            kind: kind.parse().unwrap(),
            parent_id,
            config: serde_json::Value::Null,
            metrics: serde_json::json!({ "test": { "macro_f1": 0.61234, "accuracy": 0.7 } }),
            weights_path: None,
            weights_sha256: None,
            created_at: "2026-01-02 03:04:05".into(),
            seconds_taken: Some(12.34),
            data_snapshot: serde_json::Value::Null,
        }
    }

    #[test]
    fn the_version_in_use_is_starred_and_metrics_are_read_from_the_test_split() {
        let mut no_metrics = version(3, "argd", Some(1));
        no_metrics.metrics = serde_json::json!({});
        let table = VersionsTable { rows: vec![(version(1, "arg", None), false), (no_metrics, true)] };
        assert_eq!(
            table.to_string(),
            "    1 arg   parent -     test macro-F1 0.6123 accuracy 0.7000    12.3 s  2026-01-02 03:04:05\n\
             *   3 argd  parent 1     test macro-F1 NaN accuracy NaN    12.3 s  2026-01-02 03:04:05\n"
        );
    }
}
