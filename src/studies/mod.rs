//! User studies: measures over what several people said about the same items.
//!
//! `agreement` computes inter-annotator agreement (Cohen's kappa per pair, Fleiss' kappa, Krippendorff's nominal
//! alpha, percent agreement) and diagnostics from a ratings table. Like every module here it is a pure library:
//! data in, numbers out; it knows nothing of the UI, SQLite or files.

pub mod agreement;
