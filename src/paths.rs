//! Where Argus keeps its files: the settings folder, the data folder (the demo database), the models folder.
//!
//! `ARGUS_CONFIG_DIR`, `ARGUS_DATA_DIR` and `ARGUS_MODELS_DIR` override the platform folders (tests, screenshots,
//! several lab profiles on one machine). A leaf: this module depends on no other module of the crate, so settings,
//! models and the studio can all ask it.

use std::path::{Path, PathBuf};

/// Folder of the settings file.
pub fn config_dir() -> PathBuf {
    std::env::var_os("ARGUS_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::config_dir().map(|d| d.join("argus")))
        .unwrap_or_else(|| PathBuf::from(".argus"))
}

/// Folder of Argus's own data (the demo database).
pub fn data_dir() -> PathBuf {
    std::env::var_os("ARGUS_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::data_dir().map(|d| d.join("argus")))
        .unwrap_or_else(|| PathBuf::from(".argus"))
}

pub fn settings_path() -> PathBuf {
    config_dir().join("settings.json")
}

/// The database of the built-in demo.
pub fn demo_db_path() -> PathBuf {
    data_dir().join("demo.sqlite")
}

/// The folder that holds models: `$ARGUS_MODELS_DIR`, else `models/` beside the crate when run from a checkout,
/// else the user's data folder.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ARGUS_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    if checkout.is_dir() {
        return checkout;
    }
    data_dir().join("models")
}
