//! Models ▸ Train… (`t`): retrain a guidance model in the background and judge the result. Model kind, incremental
//! (from the version in use) or from scratch, epochs, seed, the automatic-retrain setting; while a run goes, its
//! progress, Cancel, and the training loss and validation macro-F1 of each epoch as it ends; the versions table
//! (pick two to compare side by side, put one back in use); test macro-F1 across versions; for the chosen version,
//! its confusion matrix and calibration on the held-out test split.
//!
//! The versions are read from the store when the panel opens and when a run ends (`studio::Workspace::versions`,
//! called by the app), never while drawing; the live epochs come from the training job through a shared vector.

use std::sync::{Arc, Mutex};

use crate::guidance::simulate::SimulationReport;
use egui::{Color32, RichText};
use egui_plot::{Legend, Line, LineStyle, MarkerShape, Plot, PlotPoints, Points};

use super::command::AppCommand;
use super::item_list::verdict_color;
use super::window::{Placement, studio_window};
use crate::domain::ModelKind;
use crate::domain::Verdict;
use crate::guidance::metrics::Metrics;
use crate::guidance::train::EpochRecord;
use crate::jobs::JobState;
use crate::studio::{Command, VersionRow, VersionsCache};

/// A training run started from the studio: what the panel plots while it goes, and after it ended.
pub struct LiveRun {
    pub kind: ModelKind,
    pub max_epochs: usize,
    /// The version it started from (incremental), if any.
    pub from: Option<i64>,
    /// The version of its kind that was in use when it started (what the new one is compared with).
    pub replaces: Option<i64>,
    /// Epochs as they end; the job's `on_epoch` pushes here.
    pub epochs: Arc<Mutex<Vec<EpochRecord>>>,
    /// The version it produced, once finished.
    pub version: Option<i64>,
    /// Started by the automatic-retrain setting rather than by the Retrain button.
    pub automatic: bool,
    /// A quick retrain (the head alone).
    pub quick: bool,
}

impl LiveRun {
    fn epochs(&self) -> Vec<EpochRecord> {
        self.epochs.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

/// What the panel shows of training that is not the store's: the run (live or last), its job while it runs.
pub struct TrainView<'a> {
    pub run: Option<&'a LiveRun>,
    /// The training job's state while it runs.
    pub job: Option<Arc<JobState>>,
    pub versions: &'a VersionsCache,
    /// The automatic-retrain setting (0 = off).
    pub retrain_every_judgements: u64,
    /// The online learner's setting (0 = off).
    pub online_every_judgements: u64,
    /// The last simulated annotator's curves, and its job while it runs.
    pub simulation: Option<&'a SimulationReport>,
    pub simulating: Option<Arc<JobState>>,
}

/// What the Retrain button trains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetrainMode {
    /// The head alone, from the version in use, on its cached inputs (seconds).
    Quick,
    /// The encoder's top layer and the head, from the version in use (the paper's setting).
    Full,
    /// From the pretrained encoder.
    Scratch,
}

/// The panel's own choices.
pub struct TrainPanelState {
    pub open: bool,
    pub kind: ModelKind,
    /// The person picked `kind`; until then it follows the newest version's kind.
    kind_chosen: bool,
    /// Quick or full retrain from the version in use of `kind` (when there is one), or from scratch.
    pub mode: RetrainMode,
    pub max_epochs: usize,
    pub seed: u64,
    /// Versions compared: A (whose confusion matrix and calibration are shown, and which "Use this version" puts
    /// in use) and B.
    pub a: Option<i64>,
    pub b: Option<i64>,
    /// The simulated annotator's window is open.
    pub simulation_open: bool,
}

impl Default for TrainPanelState {
    fn default() -> Self {
        Self {
            open: false,
            kind: ModelKind::Arg,
            kind_chosen: false,
            mode: RetrainMode::Quick,
            max_epochs: 10,
            seed: 0,
            a: None,
            b: None,
            simulation_open: false,
        }
    }
}

impl TrainPanelState {
    /// After the versions were re-read: keep the picks that still exist, else A = the version in use of the
    /// chosen kind (or the newest), B = A's parent (or the version before it).
    pub fn pick_defaults(&mut self, versions: &VersionsCache) {
        if !self.kind_chosen
            && let Some(kind) = versions.rows.last().map(|r| r.kind)
        {
            self.kind = kind;
        }
        let exists = |id: Option<i64>| id.filter(|&id| versions.row(id).is_some());
        self.a = exists(self.a).or(versions.active.of(self.kind)).or_else(|| versions.rows.last().map(|r| r.id));
        self.b = exists(self.b).filter(|&b| Some(b) != self.a).or_else(|| self.default_b(versions));
    }

    /// Shows a freshly trained version beside the one it is compared with: its parent, else `previous`.
    pub fn show_new_version(&mut self, versions: &VersionsCache, version: i64, previous: Option<i64>) {
        self.a = Some(version);
        self.b = versions.row(version).and_then(|r| r.parent).or(previous).filter(|&b| b != version);
        if self.b.is_none() {
            self.b = self.default_b(versions);
        }
    }

    /// A's parent, else the newest older version of the same kind, else the newest older version.
    fn default_b(&self, versions: &VersionsCache) -> Option<i64> {
        let a = versions.row(self.a?)?;
        let older = || versions.rows.iter().rev().filter(|r| r.id < a.id);
        a.parent.or_else(|| older().find(|r| r.kind == a.kind).or_else(|| older().next()).map(|r| r.id))
    }
}

/// Draws the Train window while `state.open`; returns the commands it emits.
pub fn train_window(ctx: &egui::Context, state: &mut TrainPanelState, view: &TrainView<'_>) -> Vec<AppCommand> {
    let mut out = Vec::new();
    let mut open = state.open;
    studio_window("Guidance model training", &mut open, Placement::Panel { pos: [16.0, 32.0], size: [1010.0, 730.0] })
        .show(ctx, |ui| {
            controls_ui(ui, state, view, &mut out);
            ui.separator();
            run_ui(ui, state, view, &mut out);
            ui.separator();
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| versions_ui(ui, state, view.versions));
                history_ui(ui, state, view.versions);
            });
            ui.separator();
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| compare_ui(ui, state, view.versions, &mut out));
                quality_ui(ui, state, view.versions);
            });
        });
    if state.simulation_open {
        let mut sim_open = true;
        // Over the Train window, which stays in use behind it.
        studio_window(
            "Simulated annotator",
            &mut sim_open,
            Placement::Panel { pos: [90.0, 90.0], size: [780.0, 420.0] },
        )
        .order(egui::Order::Foreground)
        .show(ctx, |ui| simulation_ui(ui, view, &mut out));
        state.simulation_open = sim_open;
    }
    if !open {
        out.push(AppCommand::ToggleTrainPanel);
    }
    out
}

fn controls_ui(ui: &mut egui::Ui, state: &mut TrainPanelState, view: &TrainView<'_>, out: &mut Vec<AppCommand>) {
    let running = view.job.is_some();
    let in_use = view.versions.active.of(state.kind);
    ui.horizontal_wrapped(|ui| {
        let label = ui.label("Model:");
        egui::ComboBox::from_id_salt("train_kind")
            .selected_text(state.kind.human_name())
            .show_ui(ui, |ui| {
                for kind in ModelKind::ALL {
                    if ui.selectable_value(&mut state.kind, kind, kind.human_name()).clicked() {
                        state.kind_chosen = true;
                    }
                }
            })
            .response
            .labelled_by(label.id);
        let from = in_use.map_or_else(|| "no version yet".to_owned(), |v| format!("from version {v}"));
        ui.add_enabled_ui(in_use.is_some(), |ui| {
            ui.radio_value(&mut state.mode, RetrainMode::Quick, format!("quick ({from})")).on_hover_text(
                "the head alone (usefulness, judgement, gates, aggregator, classifier) on its cached inputs: seconds",
            );
            ui.radio_value(&mut state.mode, RetrainMode::Full, format!("full ({from})"))
                .on_hover_text("the encoder's top layer and the head, on everything labelled so far (minutes)");
        });
        ui.radio_value(&mut state.mode, RetrainMode::Scratch, "from scratch")
            .on_hover_text("start from the pretrained encoder (needed when the perspectives changed)");
    });
    ui.horizontal_wrapped(|ui| {
        let label = ui.label("Max epochs:");
        ui.add(egui::DragValue::new(&mut state.max_epochs).range(1..=500)).labelled_by(label.id);
        let label = ui.label("Seed:");
        ui.add(egui::DragValue::new(&mut state.seed)).labelled_by(label.id);
        let from = if state.mode == RetrainMode::Scratch { None } else { in_use };
        let quick = state.mode == RetrainMode::Quick && from.is_some();
        let button = egui::Button::new(RichText::new("Retrain").strong()).min_size(egui::vec2(96.0, 0.0));
        let hover = match from {
            Some(v) if quick => {
                format!("retrain the head of {} version {v} in the background", state.kind.human_name())
            }
            Some(v) => format!("train a new {} version from version {v} in the background", state.kind.human_name()),
            None => format!("train a new {} version from scratch in the background", state.kind.human_name()),
        };
        let simulate =
            ui.add_enabled(view.simulating.is_none(), egui::Button::new("Simulate labelling")).on_hover_text(format!(
                "does learning help? Replay the gold labels as an annotator who labels in the order each strategy \
                 picks (uncertainty, disagreement, risk, random), {} learning online; nothing is stored",
                if state.kind == ModelKind::Bert { "BERT only" } else { "ARG" }
            ));
        if simulate.clicked() {
            let kind = if state.kind == ModelKind::Argd { ModelKind::Arg } else { state.kind };
            out.push(AppCommand::Simulate { kind });
            state.simulation_open = true;
        }
        if ui.add_enabled(!running, button).on_hover_text(hover).clicked() {
            let (kind, max_epochs, seed) = (state.kind, state.max_epochs, state.seed);
            out.push(AppCommand::Retrain { kind, from, max_epochs, seed, quick });
        }
    });
    split_ui(ui, view.versions, out);
    ui.horizontal_wrapped(|ui| {
        let mut k = view.retrain_every_judgements;
        let label = ui.label("Retrain automatically after every");
        let edit = ui.add(egui::DragValue::new(&mut k).range(0..=100_000)).labelled_by(label.id);
        ui.label("new judgements (0 = off)");
        if edit.changed() {
            out.push(AppCommand::SetAutoRetrain(k));
        }
        edit.on_hover_text(format!(
            "an incremental retrain of {} (with the epochs and seed above) starts once this many judgements were made \
             since the version in use",
            state.kind.human_name()
        ));
    });
    ui.horizontal_wrapped(|ui| {
        let mut k = view.online_every_judgements;
        let label = ui.label("Learn online after every");
        let edit = ui.add(egui::DragValue::new(&mut k).range(0..=10_000)).labelled_by(label.id);
        ui.label("judgements (0 = off)");
        if edit.changed() {
            out.push(AppCommand::SetOnlineEvery(k));
        }
        edit.on_hover_text(
            "the model in use takes a few steps of its head on the new judgements (plus older ones) and re-orders the \
             list and the queue; saved as a version every few updates and when the studio closes",
        );
    });
}

/// The project's split key: the item's text, or a field (an event, a source) so that one group never straddles
/// train and val. A project setting (in the database, for everyone who opens it).
fn split_ui(ui: &mut egui::Ui, versions: &VersionsCache, out: &mut Vec<AppCommand>) {
    const TEXT: &str = "the item's text";
    ui.horizontal_wrapped(|ui| {
        let label = ui.label("Split train / val by:");
        let current = versions.split_group_by.clone();
        let shown = current.as_deref().unwrap_or(TEXT).to_owned();
        let mut chosen = current.clone();
        egui::ComboBox::from_id_salt("split_group_by")
            .selected_text(shown)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut chosen, None, TEXT);
                for (field, n) in &versions.group_fields {
                    ui.selectable_value(&mut chosen, Some(field.clone()), format!("{field} ({n} items)"));
                }
                if let Some(key) = current.as_ref().filter(|k| !versions.group_fields.iter().any(|(f, _)| f == *k)) {
                    // A key set from the command line (`FIELD~REGEX`, say) stays choosable.
                    ui.selectable_value(&mut chosen, Some(key.clone()), key.as_str());
                }
            })
            .response
            .labelled_by(label.id)
            .on_hover_text(
                "group the items by a field (an event, an image, a source) so that near-duplicates of one group never                  sit in both train and validation; items without the field are a group each. The data's own split                  (a test file, say) is kept.",
            );
        ui.label(
            RichText::new("project setting; new versions from scratch use it, retrains keep their parent's split")
                .small()
                .weak(),
        );
        if chosen != current {
            out.push(AppCommand::SetSplitGroupBy(chosen));
        }
    });
}

fn run_ui(ui: &mut egui::Ui, state: &TrainPanelState, view: &TrainView<'_>, out: &mut Vec<AppCommand>) {
    // Curves of the run in progress, else of the last run, else of version A as stored.
    let (title, epochs, max_epochs) = match (view.run, view.job.as_ref()) {
        (Some(run), Some(_)) => {
            let epochs = run.epochs();
            let from = run.from.map_or_else(|| "from scratch".to_owned(), |v| format!("from version {v}"));
            let how = if run.automatic { ", started automatically" } else { "" };
            let what = if run.quick { "Quick retrain of" } else { "Training" };
            (format!("{what} {} {from}{how}", run.kind.human_name()), epochs, run.max_epochs)
        }
        (Some(run), None) => {
            let epochs = run.epochs();
            let what = match run.version {
                Some(v) => format!("Last run: {} version {v}", run.kind.human_name()),
                None => format!("Last run: {} (no version stored)", run.kind.human_name()),
            };
            (what, epochs, run.max_epochs)
        }
        (None, _) => match state.a.and_then(|a| view.versions.row(a)) {
            Some(row) => {
                let n = row.epochs.len();
                (format!("Version {}: {} as trained", row.id, row.kind_name()), row.epochs.clone(), n)
            }
            None => ("No training run yet".to_owned(), Vec::new(), 0),
        },
    };
    ui.horizontal(|ui| {
        ui.strong(title);
        if let Some(job) = &view.job {
            let done = epochs.len();
            ui.label(format!("· epoch {} of at most {max_epochs}", (done + 1).min(max_epochs.max(1))));
            if ui.button("Cancel training").on_hover_text("stop; nothing of this run is stored").clicked() {
                out.push(AppCommand::CancelJob(job.name().to_owned()));
            }
        }
    });
    if let Some(job) = &view.job {
        let bar = egui::ProgressBar::new(job.fraction().unwrap_or(0.0)).text(job.message()).animate(true);
        ui.add(bar);
    }
    let loss: Vec<[f64; 2]> =
        epochs.iter().filter(|e| e.train_loss.is_finite()).map(|e| [e.epoch as f64, e.train_loss]).collect();
    let f1: Vec<[f64; 2]> = epochs.iter().map(|e| [e.epoch as f64, e.val_macro_f1]).collect();
    let best: Vec<[f64; 2]> = epochs.iter().filter(|e| e.best).map(|e| [e.epoch as f64, e.val_macro_f1]).collect();
    let x_max = max_epochs.max(epochs.len()).max(2) as f64;
    let width = ((ui.available_width() - 16.0) / 2.0).max(200.0);
    ui.horizontal(|ui| {
        ui.vertical(|ui| {
            ui.label(RichText::new("Training loss per epoch").small());
            Plot::new("train_loss_plot")
                .width(width)
                .height(140.0)
                .include_x(1.0)
                .include_x(x_max)
                .allow_scroll(false)
                .x_axis_label("epoch")
                .show(ui, |plot| {
                    let color = Color32::from_rgb(240, 140, 90);
                    plot.line(Line::new("train loss", PlotPoints::from(loss.clone())).width(2.0).color(color));
                    let points = Points::new("train loss", PlotPoints::from(loss)).id("train_loss_points");
                    plot.points(points.radius(3.0).filled(true).color(color));
                });
        });
        ui.vertical(|ui| {
            ui.label(RichText::new("Validation macro-F1 per epoch (dots: best so far, the kept checkpoint)").small());
            Plot::new("val_f1_plot")
                .width(width)
                .height(140.0)
                .include_x(1.0)
                .include_x(x_max)
                .include_y(0.0)
                .include_y(1.0)
                .allow_scroll(false)
                .x_axis_label("epoch")
                .show(ui, |plot| {
                    plot.line(Line::new("val macro-F1", PlotPoints::from(f1)).width(2.0).color(Color32::LIGHT_GREEN));
                    plot.points(
                        Points::new("best", PlotPoints::from(best))
                            .radius(4.0)
                            .filled(true)
                            .color(Color32::LIGHT_GREEN),
                    );
                });
        });
    });
}

fn versions_ui(ui: &mut egui::Ui, state: &mut TrainPanelState, versions: &VersionsCache) {
    ui.horizontal(|ui| {
        ui.heading("Versions");
        ui.label(RichText::new("click an id to show it (A), B to compare with it").small().weak());
    });
    if versions.rows.is_empty() {
        ui.label(RichText::new("No model version yet: press Retrain.").weak());
        return;
    }
    egui::ScrollArea::vertical().id_salt("versions_table").max_height(130.0).show(ui, |ui| {
        egui::Grid::new("versions_grid").striped(true).num_columns(12).show(ui, |ui| {
            for h in [
                "A",
                "B",
                "model",
                "trained",
                "parent",
                "test macro-F1",
                "accuracy",
                "AUC",
                "items",
                "seconds",
                "created",
            ] {
                ui.label(RichText::new(h).small().strong());
            }
            ui.label("");
            ui.end_row();
            for row in versions.rows.iter().rev() {
                if ui.add(egui::Button::selectable(state.a == Some(row.id), format!("#{}", row.id))).clicked() {
                    state.a = Some(row.id);
                    if state.b == Some(row.id) {
                        state.b = state.default_b(versions);
                    }
                }
                let is_b = state.b == Some(row.id);
                if ui.add_enabled(state.a != Some(row.id), egui::Button::selectable(is_b, "B")).clicked() {
                    state.b = if is_b { None } else { Some(row.id) };
                }
                ui.label(row.kind_name());
                ui.label(row.how).on_hover_text(format!(
                    "train / val split by {}",
                    row.group_by.as_deref().map_or_else(|| "text".to_owned(), |k| format!("{k:?}"))
                ));
                ui.label(row.parent.map_or_else(|| "—".to_owned(), |p| p.to_string()));
                let t = row.test.as_ref();
                ui.label(t.map_or_else(|| "—".to_owned(), |m| format!("{:.3}", m.macro_f1)));
                ui.label(t.map_or_else(|| "—".to_owned(), |m| format!("{:.3}", m.accuracy)));
                ui.label(t.map_or_else(|| "—".to_owned(), |m| format!("{:.3}", m.auc)));
                ui.label(row.labelled.map_or_else(|| "—".to_owned(), |n| n.to_string())).on_hover_text(format!(
                    "labelled items when trained ({} of them by people); {} test items",
                    row.human_labels.unwrap_or(0),
                    t.map_or(0, |m| m.n)
                ));
                ui.label(row.seconds.map_or_else(|| "—".to_owned(), |s| format!("{s:.1}")));
                ui.label(RichText::new(short_time(&row.created_at)).small());
                if versions.in_use(row) {
                    ui.label(RichText::new("in use").strong().color(Color32::LIGHT_GREEN));
                } else {
                    ui.label("");
                }
                ui.end_row();
            }
        });
    });
}

/// "2026-11-27T11:45:03.123Z" as "2026-11-27 11:45".
fn short_time(iso: &str) -> String {
    iso.get(..16).map_or_else(|| iso.to_owned(), |s| s.replace('T', " "))
}

fn compare_ui(ui: &mut egui::Ui, state: &TrainPanelState, versions: &VersionsCache, out: &mut Vec<AppCommand>) {
    let Some(a) = state.a.and_then(|a| versions.row(a)) else { return };
    let b = state.b.and_then(|b| versions.row(b));
    ui.horizontal(|ui| {
        ui.heading(match b {
            Some(b) => format!("#{} beside #{}", a.id, b.id),
            None => format!("#{}", a.id),
        });
        let in_use = versions.in_use(a);
        let button = ui
            .add_enabled(!in_use, egui::Button::new("Use this version"))
            .on_hover_text(format!(
                "make #{} the {} version in use (roll back or forward); its predictions order the list. \
                 Nothing is deleted.",
                a.id,
                a.kind_name()
            ))
            .on_disabled_hover_text(format!("#{} is the {} version in use", a.id, a.kind_name()));
        if button.clicked() {
            out.push(AppCommand::Studio(Command::UseModelVersion(a.id)));
        }
        if in_use {
            ui.label(RichText::new(format!("#{} is in use", a.id)).weak());
        }
    });
    let fa = figures(a);
    let fb = b.map(figures);
    egui::Grid::new("compare_grid").striped(true).num_columns(4).show(ui, |ui| {
        ui.label("");
        ui.label(RichText::new(format!("#{} {}", a.id, a.kind_name())).strong());
        if let Some(b) = b {
            ui.label(RichText::new(format!("#{} {}", b.id, b.kind_name())).strong());
            ui.label(RichText::new(format!("#{} - #{}", a.id, b.id)).strong());
        }
        ui.end_row();
        for (i, &(name, va, unit, higher_is_better)) in fa.iter().enumerate() {
            ui.label(name);
            ui.label(fmt_value(va, unit));
            if let Some(fb) = &fb {
                let vb = fb[i].1;
                ui.label(fmt_value(vb, unit));
                match (va, vb) {
                    (Some(x), Some(y)) => {
                        let d = x - y;
                        let better = if higher_is_better { d > 1e-9 } else { d < -1e-9 };
                        let worse = if higher_is_better { d < -1e-9 } else { d > 1e-9 };
                        let color = if better {
                            verdict_color(Verdict::Real)
                        } else if worse {
                            verdict_color(Verdict::Fake)
                        } else {
                            ui.visuals().weak_text_color()
                        };
                        ui.label(RichText::new(fmt_delta(d, unit)).color(color));
                    }
                    _ => {
                        ui.label("—");
                    }
                }
            }
            ui.end_row();
        }
    });
}

/// How a compared figure is written.
#[derive(Clone, Copy)]
enum Unit {
    /// A score in 0..1, three decimals.
    Score,
    Count,
    Seconds,
}

/// What the comparison shows of one version: (name, value, unit, higher is better).
fn figures(r: &VersionRow) -> [(&'static str, Option<f64>, Unit, bool); 10] {
    let t = r.test.as_ref();
    [
        ("test macro-F1", t.map(|m| m.macro_f1), Unit::Score, true),
        ("test accuracy", t.map(|m| m.accuracy), Unit::Score, true),
        ("test F1 real", t.map(|m| m.f1_real), Unit::Score, true),
        ("test F1 fake", t.map(|m| m.f1_fake), Unit::Score, true),
        ("test AUC", t.map(|m| m.auc), Unit::Score, true),
        ("test ECE (lower is better)", t.map(|m| m.ece), Unit::Score, false),
        ("validation macro-F1", r.val.as_ref().map(|m| m.macro_f1), Unit::Score, true),
        ("labelled items", r.labelled.map(|n| n as f64), Unit::Count, true),
        ("labels from people", r.human_labels.map(|n| n as f64), Unit::Count, true),
        ("training seconds", r.seconds, Unit::Seconds, false),
    ]
}

fn fmt_value(v: Option<f64>, unit: Unit) -> String {
    match (v, unit) {
        (None, _) => "—".to_owned(),
        (Some(v), Unit::Score) => format!("{v:.3}"),
        (Some(v), Unit::Count) => format!("{v:.0}"),
        (Some(v), Unit::Seconds) => format!("{v:.1}"),
    }
}

fn fmt_delta(d: f64, unit: Unit) -> String {
    match unit {
        Unit::Score => format!("{d:+.3}"),
        Unit::Count => format!("{d:+.0}"),
        Unit::Seconds => format!("{d:+.1}"),
    }
}

/// Colour of each model kind in the history plot.
fn kind_color(kind: &str) -> Color32 {
    match kind {
        "arg" => Color32::from_rgb(90, 160, 255),
        "argd" => Color32::from_rgb(230, 160, 60),
        _ => Color32::from_rgb(170, 130, 220),
    }
}

/// Test macro-F1 of every version, one line per model kind; version A ringed.
fn history_ui(ui: &mut egui::Ui, state: &TrainPanelState, versions: &VersionsCache) {
    if versions.rows.is_empty() {
        return;
    }
    let a = state.a.and_then(|a| versions.row(a)).and_then(|a| Some([a.id as f64, a.test.as_ref()?.macro_f1]));
    let text_color = ui.visuals().text_color();
    ui.vertical(|ui| {
        ui.label(RichText::new("Test macro-F1 across versions").small());
        Plot::new("history_plot")
            .width(280.0)
            .height(150.0)
            .include_y(0.0)
            .include_y(1.0)
            .allow_scroll(false)
            .x_axis_label("version")
            .legend(Legend::default().position(egui_plot::Corner::LeftTop))
            .show(ui, |plot| {
                for kind in ModelKind::ALL {
                    let points: Vec<[f64; 2]> = versions
                        .rows
                        .iter()
                        .filter(|r| r.kind == kind)
                        .filter_map(|r| Some([r.id as f64, r.test.as_ref()?.macro_f1]))
                        .collect();
                    if points.is_empty() {
                        continue;
                    }
                    let color = kind_color(kind.as_str());
                    plot.line(Line::new(kind.human_name(), PlotPoints::from(points.clone())).color(color));
                    plot.points(
                        Points::new(kind.human_name(), PlotPoints::from(points))
                            .id(("history_points", kind.as_str()))
                            .radius(3.5)
                            .filled(true)
                            .color(color),
                    );
                }
                if let Some(a) = a {
                    let ring = Points::new("", PlotPoints::from(vec![a]))
                        .id("history_shown")
                        .radius(7.0)
                        .shape(MarkerShape::Circle);
                    plot.points(ring.filled(false).color(text_color));
                }
            });
    });
}

/// Version A's confusion matrix and calibration on the test split.
fn quality_ui(ui: &mut egui::Ui, state: &TrainPanelState, versions: &VersionsCache) {
    let Some(a) = state.a.and_then(|a| versions.row(a)) else { return };
    let Some(test) = a.test.as_ref() else {
        ui.label("This version recorded no test metrics.");
        return;
    };
    ui.vertical(|ui| {
        let status = if versions.in_use(a) { ", in use" } else { "" };
        ui.label(RichText::new(format!("#{}{status}: {} test items", a.id, test.n)).small());
        confusion_ui(ui, test);
        ui.add_space(4.0);
        ui.label(RichText::new(format!("ECE {:.3}", test.ece)).small())
            .on_hover_text("expected calibration error: how far, on average, P(fake) is from the share actually fake");
    });
    ui.vertical(|ui| {
        ui.label(RichText::new(format!("Calibration of #{} (test)", a.id)).small());
        calibration_ui(ui, test);
    });
}

/// The confusion matrix as a 2x2 grid of counts, each cell shaded by its share of its true class.
fn confusion_ui(ui: &mut egui::Ui, m: &Metrics) {
    ui.strong("Confusion matrix");
    egui::Grid::new("confusion_grid").num_columns(3).spacing([6.0, 6.0]).show(ui, |ui| {
        ui.label("");
        ui.label(RichText::new("predicted real").small());
        ui.label(RichText::new("predicted fake").small());
        ui.end_row();
        for (t, name) in [(0, "true real"), (1, "true fake")] {
            ui.label(RichText::new(name).small());
            let row_total = (m.confusion[t][0] + m.confusion[t][1]).max(1) as f32;
            for p in 0..2 {
                let count = m.confusion[t][p];
                let share = count as f32 / row_total;
                let base = if t == p { verdict_color(Verdict::Real) } else { verdict_color(Verdict::Fake) };
                let fill = base.gamma_multiply(0.15 + 0.85 * share);
                egui::Frame::new().fill(fill).corner_radius(4.0).inner_margin(egui::Margin::symmetric(14, 10)).show(
                    ui,
                    |ui| {
                        ui.set_min_width(64.0);
                        ui.label(RichText::new(count.to_string()).strong().size(18.0).color(Color32::WHITE))
                            .on_hover_text(format!(
                                "{name}, {}: {:.0}% of {name}",
                                ["predicted real", "predicted fake"][p],
                                share * 100.0
                            ));
                    },
                );
            }
            ui.end_row();
        }
    });
}

/// Reliability curve (mean P(fake) against the share actually fake, per non-empty bin) beside the diagonal.
fn calibration_ui(ui: &mut egui::Ui, m: &Metrics) {
    let bins: Vec<[f64; 2]> = m.calibration.iter().filter(|b| b.2 > 0).map(|b| [b.0, b.1]).collect();
    Plot::new("calibration_plot")
        .width(220.0)
        .height(180.0)
        .data_aspect(1.0)
        .include_x(0.0)
        .include_x(1.0)
        .include_y(0.0)
        .include_y(1.0)
        .allow_scroll(false)
        .allow_drag(false)
        .allow_zoom(false)
        .x_axis_label("P(fake)")
        .legend(Legend::default().position(egui_plot::Corner::LeftTop))
        .show(ui, |plot| {
            plot.line(
                Line::new("perfectly calibrated", PlotPoints::from(vec![[0.0, 0.0], [1.0, 1.0]]))
                    .style(LineStyle::dashed_loose())
                    .color(Color32::GRAY),
            );
            plot.line(Line::new("this version", PlotPoints::from(bins.clone())).width(2.0).color(Color32::LIGHT_BLUE));
            let points = Points::new("this version", PlotPoints::from(bins)).id("calibration_points");
            plot.points(points.radius(3.5).filled(true).color(Color32::LIGHT_BLUE));
        });
}

/// Does the loop help? The simulated annotator's macro-F1 against labels, one line per strategy (mean over seeds,
/// the band one standard deviation), with its progress and Cancel while it runs (the Train panel's "Simulate
/// labelling" starts it).
fn simulation_ui(ui: &mut egui::Ui, view: &TrainView<'_>, out: &mut Vec<AppCommand>) {
    if let Some(job) = &view.simulating {
        ui.horizontal(|ui| {
            ui.add(egui::ProgressBar::new(job.fraction().unwrap_or(0.0)).text(job.message()).desired_width(420.0));
            if ui.button("Cancel simulation").clicked() {
                out.push(AppCommand::CancelJob(job.name().to_owned()));
            }
        });
    }
    let Some(report) = view.simulation else {
        ui.label(
            RichText::new("Uncertainty, disagreement and risk sampling beside random order, on this database.").weak(),
        );
        return;
    };
    ui.label(
        RichText::new(format!(
            "{}: macro-F1 on {} {} items after n labels (of {} to pick from), mean over seeds, band ±1 std; an online \
             update every {} labels",
            report.kind.human_name(),
            report.scored_items,
            report.scored_on,
            report.pool,
            report.every
        ))
        .small(),
    );
    let colors = [
        Color32::from_rgb(240, 140, 90),
        Color32::from_rgb(120, 190, 250),
        Color32::from_rgb(230, 90, 120),
        Color32::LIGHT_GRAY,
    ];
    Plot::new("simulation_plot")
        .height(230.0)
        .allow_scroll(false)
        .include_y(0.0)
        .include_y(1.0)
        .x_axis_label("labels")
        .y_axis_label("macro-F1")
        .legend(Legend::default().position(egui_plot::Corner::RightBottom))
        .show(ui, |plot| {
            for (i, (strategy, curve)) in report.curves().into_iter().enumerate() {
                let color = colors[i % colors.len()];
                let mean: Vec<[f64; 2]> = curve.iter().map(|&(n, m, _)| [n as f64, m]).collect();
                let band = |sign: f64| -> Vec<[f64; 2]> {
                    curve.iter().map(|&(n, m, sd)| [n as f64, m + sign * sd]).collect()
                };
                for (sign, id) in [(1.0, "hi"), (-1.0, "lo")] {
                    // Unnamed: the band stays out of the legend.
                    let line = Line::new("", PlotPoints::from(band(sign)))
                        .id(format!("sim_{strategy}_{id}"))
                        .color(color.gamma_multiply(0.5))
                        .style(LineStyle::dashed_dense());
                    plot.line(line);
                }
                plot.line(Line::new(strategy.clone(), PlotPoints::from(mean.clone())).width(2.0).color(color));
                let points = Points::new(strategy.clone(), PlotPoints::from(mean)).id(format!("sim_{strategy}_points"));
                plot.points(points.radius(3.0).filled(true).color(color).shape(MarkerShape::Circle));
            }
        });
    // The figures behind the lines.
    let curves = report.curves();
    egui::Grid::new("simulation_table").striped(true).show(ui, |ui| {
        ui.label(RichText::new("labels").small().strong());
        for (n, _, _) in curves.first().map(|c| c.1.as_slice()).unwrap_or_default() {
            ui.label(RichText::new(n.to_string()).small().strong());
        }
        ui.end_row();
        for (strategy, curve) in &curves {
            ui.label(RichText::new(strategy).small());
            for (_, m, sd) in curve {
                ui.label(RichText::new(format!("{m:.3} ± {sd:.3}")).small());
            }
            ui.end_row();
        }
    });
}
