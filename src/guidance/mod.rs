//! The guidance model: ARG (which learns, per item, which LLM rationale to trust) in candle. Work in progress for
//! the guidance issue: the network and its loss, checked against the reference implementation's golden outputs and
//! gradients; training, versions and the studio's Train panel come next.
//!
//! This module knows nothing of the UI or of storage.

pub mod arg;
pub mod argd;
