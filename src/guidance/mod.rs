//! The guidance model: ARG (which learns, per item, which LLM rationale to trust), its rationale-free student
//! ARG-D and a BERT-only baseline, in candle; their training from cached frozen encoder outputs, model versions,
//! predictions and triage.
//!
//! This module knows nothing of the UI.

pub mod arg;
pub mod argd;
pub mod bert;
pub mod data;
pub mod faithfulness;
pub mod features;
pub mod head;
pub mod metrics;
pub mod net;
pub mod online;
pub mod route;
pub mod simulate;
pub mod train;
pub mod triage;
pub mod versions;
