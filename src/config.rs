//! The user's settings that outlive a session: last database, annotator name, theme, the rationale writer, automatic
//! retraining. Where the settings file lives is the `paths` module's business (`paths::settings_path`).
//!
//! Settings are a small JSON file, written atomically. This module knows nothing of the UI or of SQLite.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Colour theme of the studio.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Theme {
    #[default]
    Dark,
    Light,
}

/// Settings remembered between sessions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The database opened last; the studio reopens it.
    pub last_db: Option<PathBuf>,
    /// The annotator name chosen at the last start.
    pub annotator: Option<String>,
    pub theme: Theme,
    /// The rationale writer: local model or server, device, sampling.
    pub writer: crate::rationales::WriterSettings,
    /// Retrain the guidance model (incrementally) after every this many new judgements; 0: only when asked.
    pub retrain_every_judgements: u64,
    /// The online learner: the model in use learns from judgements as they are made.
    pub online: OnlineSettings,
    /// Fact-check reviews: the rating scale and how they are published.
    pub review: ReviewSettings,
}

/// How fact-checkers rate and publish.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReviewSettings {
    /// The rating scale, worst level first (`NAME: LEVEL=real|fake|other, ...`); empty: PolitiFact's six levels.
    pub scale: String,
    /// The fact-check page of an item for ClaimReview's `url`, with `{key}`: e.g.
    /// `https://factcheck.example.org/reviews/{key}`.
    pub url_pattern: String,
    /// The publishing organisation named as ClaimReview's author (empty: the reviewer).
    pub publisher: String,
}

/// When the online learner updates and saves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OnlineSettings {
    /// An update after every this many new judgements (0: off).
    pub every_judgements: u64,
    /// The online state is saved as a model version after this many updates (and when the studio closes).
    pub checkpoint_every_updates: u64,
}

impl Default for OnlineSettings {
    fn default() -> Self {
        Self { every_judgements: 8, checkpoint_every_updates: 4 }
    }
}

impl Settings {
    /// Reads the settings file; a missing file gives defaults, a broken one is reported and replaced by defaults
    /// (the broken file is kept beside it as `settings.json.broken`).
    pub fn load_from(path: &Path) -> Self {
        let Ok(text) = std::fs::read_to_string(path) else { return Self::default() };
        match serde_json::from_str(&text) {
            Ok(settings) => settings,
            Err(err) => {
                tracing::warn!("{}: unreadable settings ({err}); using defaults", path.display());
                let _ = std::fs::rename(path, path.with_extension("json.broken"));
                Self::default()
            }
        }
    }

    /// Writes the settings file atomically (temp file + rename).
    pub fn save_to(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_survive_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        assert_eq!(Settings::load_from(&path), Settings::default());
        let s = Settings {
            last_db: Some("x.sqlite".into()),
            annotator: Some("ada".into()),
            theme: Theme::Light,
            retrain_every_judgements: 50,
            ..Default::default()
        };
        s.save_to(&path).unwrap();
        assert_eq!(Settings::load_from(&path), s);
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(Settings::load_from(&path), Settings::default());
        assert!(path.with_extension("json.broken").exists());
        // A settings file from before a setting existed still loads, with the setting's default.
        std::fs::write(&path, r#"{"annotator": "ada"}"#).unwrap();
        let old = Settings::load_from(&path);
        assert_eq!((old.annotator.as_deref(), old.retrain_every_judgements), (Some("ada"), 0));
    }
}
