//! Cost-aware routing of a whole database, as in the ARG paper: the ARG-D version in use scores every item without
//! rationales; the share it is least sure about ([`triage::route`]) is listed and, with a writer, gets rationales
//! written and is predicted by the ARG version in use.
//!
//! This module knows nothing of the UI or the command line: `argus route` prints the [`RouteReport`].

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::triage;
use crate::domain::{ItemId, ModelKind};
use crate::jobs::Progress;
use crate::models::DeviceChoice;
use crate::rationales::WriterSettings;
use crate::rationales::{self, Event, Plan, RunOptions, Summary};
use crate::store::{Store, StoreError};

/// Items listed by [`RouteReport`]'s text (all of them are in [`RouteReport::routed`]).
pub const LISTED: usize = 20;

/// What to route.
#[derive(Clone, Debug)]
pub struct RouteRequest {
    /// Share (0..1) of the items routed to rationales + ARG (the paper: 0.23).
    pub share: f64,
    /// Device the guidance models run on.
    pub device: DeviceChoice,
    /// Write rationales for the routed items with this writer, then let ARG predict them.
    pub writer: Option<RouteWriter>,
}

/// The writer of the routed items and the perspectives it writes.
#[derive(Clone, Debug)]
pub struct RouteWriter {
    pub settings: WriterSettings,
    /// Perspective keys.
    pub perspectives: Vec<String>,
}

/// What a routing run did.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteReport {
    /// The ARG-D version that scored the items.
    pub argd: i64,
    pub share: f64,
    /// ARG-D's P(fake) per item.
    pub scores: HashMap<ItemId, f64>,
    /// The routed items, most uncertain first.
    pub routed: Vec<ItemId>,
    /// The rationales written for the routed items (with a writer).
    pub written: Option<Summary>,
    /// The ARG version that predicted the routed items, and how many it predicted (with a writer).
    pub arg: Option<(i64, usize)>,
}

/// Why routing stopped.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("no ARG-D version yet: `argus train --model argd`")]
    NoArgd,
    #[error("no ARG version yet: `argus train --model arg`")]
    NoArg,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the routed items' rationales failed (boxed: the model errors inside are large).
    #[error(transparent)]
    Write(Box<rationales::WriteError>),
    #[error(transparent)]
    Perspective(#[from] rationales::PerspectiveError),
    /// Scoring or predicting with a guidance model failed.
    #[error(transparent)]
    Predict(#[from] Box<super::train::TrainError>),
}

impl From<super::train::TrainError> for RouteError {
    fn from(e: super::train::TrainError) -> Self {
        Self::Predict(Box::new(e))
    }
}

impl From<rationales::WriteError> for RouteError {
    fn from(e: rationales::WriteError) -> Self {
        Self::Write(Box::new(e))
    }
}

/// Routes database `db`: ARG-D predicts (and stores) every item, [`triage::route`] picks the least sure share; with
/// a writer, rationales are written for those items (`on_plan` and `on_event` hear the rationale run) and the ARG
/// version in use predicts them.
pub fn route_database(
    db: &Path,
    request: &RouteRequest,
    progress: &dyn Progress,
    on_plan: &mut dyn FnMut(&str, &Plan),
    on_event: &mut dyn FnMut(&Event),
) -> Result<RouteReport, RouteError> {
    let argd = Store::open(db)?.active_version(ModelKind::Argd)?.ok_or(RouteError::NoArgd)?;
    super::train::predict(db, argd, request.device, progress)?;
    let store = Store::open(db)?;
    let scores: HashMap<ItemId, f64> = store.predictions(argd)?.into_iter().map(|(id, p)| (id, p.p_fake)).collect();
    let routed = triage::route(&scores, request.share);
    let mut report = RouteReport { argd, share: request.share, scores, routed, written: None, arg: None };
    let Some(writer) = &request.writer else { return Ok(report) };
    let options = RunOptions {
        perspectives: rationales::perspectives_named(&store, &writer.perspectives)?,
        items: Some(report.routed.clone()),
        params: writer.settings.params.clone(),
        ..Default::default()
    };
    report.written = Some(rationales::write(&store, &writer.settings, &options, progress, on_plan, on_event)?);
    let arg = store.active_version(ModelKind::Arg)?.ok_or(RouteError::NoArg)?;
    let n = super::train::predict_items(db, arg, Some(&report.routed), request.device, progress)?;
    report.arg = Some((arg, n));
    Ok(report)
}

impl fmt::Display for RouteReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ARG-D version {} scored {} items; the {:.0}% it is least sure about: {} items",
            self.argd,
            self.scores.len(),
            self.share * 100.0,
            self.routed.len()
        )?;
        for id in self.routed.iter().take(LISTED) {
            writeln!(f, "  item {id}: ARG-D P(fake) {:.3}", self.scores[id])?;
        }
        if let Some(written) = &self.written {
            writeln!(f, "{written}")?;
        }
        if let Some((arg, n)) = self.arg {
            writeln!(f, "ARG version {arg} predicted the {n} routed items")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_without_argd_is_refused_before_any_model_loads() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("empty.db");
        Store::open(&db).unwrap();
        let request = RouteRequest { share: 0.5, device: DeviceChoice::Cpu, writer: None };
        let err = route_database(&db, &request, &crate::jobs::NoProgress, &mut |_, _| {}, &mut |_| {}).unwrap_err();
        assert!(matches!(err, RouteError::NoArgd), "{err}");
    }

    #[test]
    fn the_report_lists_the_routed_items_least_sure_first() {
        let scores: HashMap<ItemId, f64> = (1..=30).map(|id| (id, id as f64 / 30.0)).collect();
        let routed = triage::route(&scores, 0.9);
        let mut report = RouteReport { argd: 4, share: 0.9, scores, routed, written: None, arg: None };
        let text = report.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ARG-D version 4 scored 30 items; the 90% it is least sure about: 27 items");
        assert_eq!(lines.len(), 1 + LISTED, "only the first {LISTED} routed items are listed");
        assert_eq!(lines[1], "  item 15: ARG-D P(fake) 0.500");
        report.written = Some(Summary { written: 2, ..Default::default() });
        report.arg = Some((3, 27));
        let text = report.to_string();
        assert!(text.ends_with("ARG version 3 predicted the 27 routed items\n"), "{text}");
        assert!(text.contains("\nwrote 2 rationales (0 with a verdict)"), "{text}");
    }
}
