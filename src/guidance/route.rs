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

/// What routing will cost, worked out (and shown) before anything is written: ARG-D has scored every item and
/// picked the share it is least sure about; each of those gets a rationale from every perspective.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteCost {
    pub argd: i64,
    pub share: f64,
    /// Items ARG-D scored.
    pub scored: usize,
    /// The items that would be routed, least sure first.
    pub routed: Vec<ItemId>,
    /// Perspectives the writer would write.
    pub perspectives: Vec<String>,
    /// Rationales to write (routed items × perspectives; the writer skips any it already wrote from the same
    /// prompt, so this is an upper bound).
    pub rationales: usize,
    /// Tokens each rationale may take, plus the verdict question's.
    pub max_tokens: usize,
    pub verdict_tokens: usize,
    /// The writer's measured speed (tokens/s), when it has written in this session.
    pub tokens_per_second: Option<f64>,
}

impl RouteCost {
    /// Seconds the writing takes at most, at the measured speed.
    pub fn seconds_at_most(&self) -> Option<f64> {
        let tps = self.tokens_per_second.filter(|t| *t > 0.0)?;
        Some(self.rationales as f64 * (self.max_tokens + self.verdict_tokens) as f64 / tps)
    }
}

fn duration_text(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s.div_ceil(60)),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

impl fmt::Display for RouteCost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ARG-D version {} is least sure about {} of {} items ({:.0}%): {} items × {} perspectives ({}) = {} \
             rationales to write, each up to {} tokens plus a verdict question",
            self.argd,
            self.routed.len(),
            self.scored,
            self.share * 100.0,
            self.routed.len(),
            self.perspectives.len(),
            self.perspectives.join(", "),
            self.rationales,
            self.max_tokens
        )?;
        match (self.tokens_per_second, self.seconds_at_most()) {
            (Some(tps), Some(secs)) => {
                write!(f, "; at the writer's measured {tps:.1} tokens/s, at most {}", duration_text(secs))
            }
            _ => write!(f, "; the writer's speed is not measured yet (write one item's rationales first)"),
        }
    }
}

/// Scores every item with the ARG-D version in use (predictions stored) and works out what routing its least sure
/// `share` to rationales + ARG would cost.
pub fn route_cost(
    db: &Path,
    share: f64,
    device: DeviceChoice,
    perspectives: &[String],
    max_tokens: usize,
    tokens_per_second: Option<f64>,
    progress: &dyn Progress,
) -> Result<RouteCost, RouteError> {
    let argd = Store::open(db)?.active_version(ModelKind::Argd)?.ok_or(RouteError::NoArgd)?;
    super::train::predict(db, argd, device, progress)?;
    let store = Store::open(db)?;
    // Only perspectives the writer writes (generated ones), as the run would.
    let perspectives: Vec<String> = rationales::perspectives_named(&store, perspectives)?
        .into_iter()
        .filter(|p| p.generated)
        .map(|p| p.key)
        .collect();
    let scores: HashMap<ItemId, f64> = store.predictions(argd)?.into_iter().map(|(id, p)| (id, p.p_fake)).collect();
    let routed = triage::route(&scores, share);
    Ok(RouteCost {
        argd,
        share,
        scored: scores.len(),
        rationales: routed.len() * perspectives.len(),
        routed,
        perspectives,
        max_tokens,
        verdict_tokens: RunOptions::default().verdict_max_tokens,
        tokens_per_second,
    })
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
    fn the_cost_says_how_many_rationales_and_how_long_at_most() {
        let mut cost = RouteCost {
            argd: 2,
            share: 0.23,
            scored: 300,
            routed: (1..=69).collect(),
            perspectives: vec!["td".into(), "cs".into()],
            rationales: 138,
            max_tokens: 256,
            verdict_tokens: 12,
            tokens_per_second: Some(4.0),
        };
        // 138 × 268 tokens at 4 tokens/s = 9,246 s.
        assert!((cost.seconds_at_most().unwrap() - 9246.0).abs() < 1e-9);
        let text = cost.to_string();
        assert!(text.starts_with("ARG-D version 2 is least sure about 69 of 300 items (23%): 69 items × 2"), "{text}");
        assert!(text.contains("= 138 rationales to write") && text.ends_with("at most 2 h 34 min"), "{text}");
        cost.tokens_per_second = None;
        assert_eq!(cost.seconds_at_most(), None);
        assert!(cost.to_string().ends_with("not measured yet (write one item's rationales first)"));
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
