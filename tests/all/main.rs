//! The one integration-test binary: every module below tests one part of Argus from the outside.

mod architecture;
mod cli;
mod durability;
mod ingest;
mod store;
mod ui;
