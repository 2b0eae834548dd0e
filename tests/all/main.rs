//! The one integration-test binary: every module below tests one part of Argus from the outside.

mod architecture;
mod bundle;
mod cli;
mod durability;
mod formats;
mod guidance;
mod hostile;
mod ingest;
mod models;
mod models_fetch;
mod openai_backend;
mod rationales;
mod reviews;
mod store;
mod studies;
mod training;
mod ui;
mod ui_formats;
mod ui_studies;
