//! Argus: a desktop studio for reviewing news with local-LLM rationales, human feedback and the ARG guidance model.
//!
//! The library holds everything, the command line included (`cli`); `src/main.rs` only sets up the process and
//! dispatches. See `ARCHITECTURE.md` for the module map and what each module may not touch.

pub mod bench;
pub mod cli;
pub mod config;
pub mod domain;
pub mod encoding;
pub mod formats;
pub mod guidance;
pub mod ingest;
pub mod jobs;
pub mod models;
pub mod paths;
pub mod prompting;
pub mod rationales;
pub mod store;
pub mod studies;
pub mod studio;
pub mod ui;
pub mod writer;
