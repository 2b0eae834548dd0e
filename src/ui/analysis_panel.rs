//! Studies ▸ Analysis: a study version's results per condition, from [`crate::studies::analysis::analyse`]: per
//! condition n, mean and 95% bootstrap interval of every numeric question, time per item, verdict accuracy and
//! the repair success rate; bar charts with the intervals as error bars (one per measure, the conditions side by
//! side), a histogram of time per item per condition, the participants flagged for failed attention checks and the
//! too-fast counts, with the two exclusion rules as checkboxes; and "Export…" of the tidy files.
//!
//! Nothing is computed here: the app runs the analysis (through the workspace) when the panel opens and when an
//! option changes, and keeps the result in [`AnalysisPanelState::result`]; the panel only draws it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use egui::{Color32, RichText};
use egui_plot::{Bar, BarChart, Line, Plot, PlotPoints};

use super::command::AppCommand;
use super::window::{Placement, studio_window};
use crate::studies::analysis::{Analysis, ConditionAnalysis, Estimate, Exclusions};
use crate::studio::StudyListing;

/// What the panel shows, as the app last computed it.
#[derive(Clone, Debug)]
pub struct AnalysisView {
    pub analysis: Analysis,
    /// Seconds per item answer, per condition (after the same exclusions).
    pub times: Vec<(String, Vec<f64>)>,
    /// How long the analysis took, in milliseconds.
    pub millis: f64,
}

/// The panel's choices and the last result.
#[derive(Default)]
pub struct AnalysisPanelState {
    pub open: bool,
    /// Registered studies, read when the panel opens or a study is registered.
    pub studies: Vec<StudyListing>,
    pub study: Option<String>,
    /// The version analysed (`None`: the newest).
    pub version: Option<u32>,
    pub exclusions: Exclusions,
    pub result: Option<Result<AnalysisView, String>>,
    /// The export folder field.
    pub export_dir: String,
}

impl AnalysisPanelState {
    /// After the studies were re-read: keep the chosen study when it still exists, else the first.
    pub fn pick_defaults(&mut self) {
        let known = |name: &String| self.studies.iter().any(|s| s.name == *name);
        if !self.study.as_ref().is_some_and(known) {
            self.study = self.studies.first().map(|s| s.name.clone());
            self.version = None;
        }
        if let (Some(name), Some(v)) = (&self.study, self.version)
            && !self.studies.iter().any(|s| s.name == *name && s.versions.contains(&v))
        {
            self.version = None;
        }
    }
}

/// Colours of the conditions, in order.
const PALETTE: [Color32; 6] = [
    Color32::from_rgb(90, 160, 240),
    Color32::from_rgb(240, 150, 70),
    Color32::from_rgb(110, 200, 120),
    Color32::from_rgb(210, 110, 200),
    Color32::from_rgb(230, 210, 80),
    Color32::from_rgb(150, 150, 150),
];

fn color(i: usize) -> Color32 {
    PALETTE[i % PALETTE.len()]
}

/// Draws the Analysis window while `state.open`; returns the commands it emits.
pub fn analysis_window(ctx: &egui::Context, state: &mut AnalysisPanelState) -> Vec<AppCommand> {
    let mut out = Vec::new();
    let mut open = state.open;
    studio_window("Study analysis", &mut open, Placement::Panel { pos: [12.0, 30.0], size: [1250.0, 740.0] }).show(
        ctx,
        |ui| {
            controls_ui(ui, state, &mut out);
            ui.separator();
            match &state.result {
                None => {
                    ui.label(RichText::new("Register a study and run participants to see its analysis.").weak());
                }
                Some(Err(err)) => {
                    ui.colored_label(ui.visuals().error_fg_color, err);
                }
                Some(Ok(view)) => {
                    summary_ui(ui, &view.analysis, view.millis);
                    ui.separator();
                    table_ui(ui, &view.analysis);
                    ui.separator();
                    plots_ui(ui, view);
                    ui.separator();
                    flags_ui(ui, &view.analysis);
                }
            }
        },
    );
    if !open {
        out.push(AppCommand::ToggleAnalysisPanel);
    }
    out
}

fn controls_ui(ui: &mut egui::Ui, state: &mut AnalysisPanelState, out: &mut Vec<AppCommand>) {
    let mut changed = false;
    ui.horizontal_wrapped(|ui| {
        let label = ui.label("Study:");
        let names: Vec<String> = state.studies.iter().map(|s| s.name.clone()).collect();
        egui::ComboBox::from_id_salt("analysis_study")
            .selected_text(state.study.clone().unwrap_or_else(|| "(no study registered)".into()))
            .show_ui(ui, |ui| {
                for name in names {
                    if ui.selectable_label(state.study.as_deref() == Some(name.as_str()), &name).clicked() {
                        state.study = Some(name);
                        state.version = None;
                        changed = true;
                    }
                }
            })
            .response
            .labelled_by(label.id);
        let versions: Vec<u32> = state
            .studies
            .iter()
            .find(|s| Some(&s.name) == state.study.as_ref())
            .map(|s| s.versions.clone())
            .unwrap_or_default();
        let label = ui.label("Version:");
        let shown = match (state.version, versions.last()) {
            (Some(v), _) => v.to_string(),
            (None, Some(v)) => format!("{v} (newest)"),
            (None, None) => "—".into(),
        };
        egui::ComboBox::from_id_salt("analysis_version")
            .selected_text(shown)
            .show_ui(ui, |ui| {
                for v in versions.iter().rev() {
                    if ui.selectable_label(state.version == Some(*v), v.to_string()).clicked() {
                        state.version = Some(*v);
                        changed = true;
                    }
                }
            })
            .response
            .labelled_by(label.id);
        changed |= ui
            .checkbox(&mut state.exclusions.failed_attention, "exclude failed attention checks")
            .on_hover_text("leave out every answer of participants who failed any attention check")
            .changed();
        changed |= ui
            .checkbox(&mut state.exclusions.too_fast, "exclude too-fast answers")
            .on_hover_text("leave out item answers faster than the study's minimum time per item")
            .changed();
        if ui.button("Refresh").on_hover_text("read the responses again").clicked() {
            changed = true;
        }
    });
    ui.horizontal_wrapped(|ui| {
        let label = ui.label("Export to folder:");
        ui.add(
            egui::TextEdit::singleline(&mut state.export_dir)
                .hint_text("folder for the tidy files")
                .desired_width(300.0),
        )
        .labelled_by(label.id);
        let study = state.study.clone();
        let dir = state.export_dir.trim().to_owned();
        if ui.add_enabled(study.is_some() && !dir.is_empty(), egui::Button::new("Export")).clicked()
            && let Some(name) = &study
        {
            out.push(AppCommand::ExportStudy { name: name.clone(), dir: PathBuf::from(dir) });
        }
        if ui
            .add_enabled(study.is_some(), egui::Button::new("Export…"))
            .on_hover_text(
                "responses.csv / .jsonl (one row per participant × step × question), participants.csv, study.toml",
            )
            .clicked()
            && let Some(name) = &study
            && let Some(dir) = rfd::FileDialog::new().pick_folder()
        {
            state.export_dir = dir.display().to_string();
            out.push(AppCommand::ExportStudy { name: name.clone(), dir });
        }
    });
    if changed {
        out.push(AppCommand::RunAnalysis);
    }
}

fn summary_ui(ui: &mut egui::Ui, a: &Analysis, millis: f64) {
    ui.horizontal_wrapped(|ui| {
        ui.heading(format!("{} · version {}", a.study, a.version));
        ui.label(
            RichText::new(format!(
                "{}-subjects · 95% intervals: percentile bootstrap over participants, {} resamples · computed in {millis:.0} ms",
                a.design, a.resamples
            ))
            .small()
            .weak(),
        );
    });
    let excluded = |on: bool, n: usize| if on { format!("{n} excluded") } else { "kept".to_owned() };
    ui.label(format!(
        "Participants: {} ({} finished) · failed an attention check: {} ({}) · too-fast item answers: {} ({}) · item \
         answers left out: {}",
        a.participants,
        a.finished,
        a.failed_attention,
        excluded(a.exclusions.failed_attention, a.excluded_participants),
        a.too_fast_items,
        excluded(a.exclusions.too_fast, a.too_fast_items),
        a.excluded_items,
    ));
}

/// The numeric questions of any condition, in a stable order.
fn question_keys(a: &Analysis) -> Vec<String> {
    let keys: BTreeSet<&String> = a.conditions.iter().flat_map(|c| c.questions.keys()).collect();
    keys.into_iter().cloned().collect()
}

/// The measures of the table and the plots: (title, estimate getter, scale to show the mean in, unit).
type Getter = Box<dyn Fn(&ConditionAnalysis) -> Option<Estimate>>;

fn measures(a: &Analysis) -> Vec<(String, Getter, f64)> {
    let mut out: Vec<(String, Getter, f64)> = Vec::new();
    for key in question_keys(a) {
        let k = key.clone();
        out.push((key, Box::new(move |c: &ConditionAnalysis| c.questions.get(&k).copied()), 1.0));
    }
    out.push(("time per item (s)".into(), Box::new(|c: &ConditionAnalysis| c.time_ms), 0.001));
    out.push(("verdict accuracy".into(), Box::new(|c: &ConditionAnalysis| c.verdict_accuracy), 1.0));
    out
}

fn table_ui(ui: &mut egui::Ui, a: &Analysis) {
    ui.strong("Per condition: mean [95% CI] (n)");
    let measures = measures(a);
    egui::ScrollArea::horizontal().id_salt("analysis_table_scroll").show(ui, |ui| {
        egui::Grid::new("analysis_table").striped(true).spacing([14.0, 4.0]).show(ui, |ui| {
            for h in ["condition", "format", "participants", "items"] {
                ui.label(RichText::new(h).small().strong());
            }
            for (title, _, _) in &measures {
                ui.label(RichText::new(title).small().strong());
            }
            ui.label(RichText::new("repair success").small().strong());
            ui.end_row();
            for (i, c) in a.conditions.iter().enumerate() {
                ui.label(RichText::new(&c.condition).strong().color(color(i)));
                let format = if c.shown_as_free_text > 0 {
                    format!("{} ({} as free text)", c.format, c.shown_as_free_text)
                } else {
                    c.format.clone()
                };
                ui.label(format);
                ui.label(c.participants.to_string());
                ui.label(c.items.to_string());
                for (_, get, scale) in &measures {
                    match get(c) {
                        Some(e) => {
                            ui.label(format!(
                                "{:.2} [{:.2}, {:.2}] ({})",
                                e.mean * scale,
                                e.ci_low * scale,
                                e.ci_high * scale,
                                e.n
                            ))
                            .on_hover_text(format!("{} values from {} participants", e.n, e.participants));
                        }
                        None => {
                            ui.label("—");
                        }
                    }
                }
                match c.repair {
                    Some(r) => ui.label(match r.rate {
                        Some(rate) => format!("{:.0}% ({} of {} scored)", rate * 100.0, r.successes, r.scored),
                        None => format!("{} repairs, none scored", r.repairs),
                    }),
                    None => ui.label("—").on_hover_text("no repair was made from this condition's written feedback"),
                };
                ui.end_row();
            }
        });
    });
    if !a.questionnaire.is_empty() {
        ui.add_space(4.0);
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Questionnaire (all participants counted):").small().strong());
            for (key, e) in &a.questionnaire {
                ui.label(
                    RichText::new(format!("{key} {:.2} [{:.2}, {:.2}] ({})", e.mean, e.ci_low, e.ci_high, e.n)).small(),
                );
            }
        });
    }
}

fn plots_ui(ui: &mut egui::Ui, view: &AnalysisView) {
    let a = &view.analysis;
    ui.horizontal(|ui| {
        ui.strong("Means with 95% intervals");
        for (i, c) in a.conditions.iter().enumerate() {
            ui.label(RichText::new(c.condition.as_str()).strong().color(color(i)));
        }
    });
    ui.horizontal_wrapped(|ui| {
        for (title, get, scale) in measures(a) {
            ui.vertical(|ui| {
                ui.label(RichText::new(&title).small());
                bar_plot(ui, &title, a, &get, scale);
            });
        }
        ui.vertical(|ui| {
            ui.label(RichText::new("time per item: histogram (seconds)").small());
            histogram(ui, &view.times);
        });
    });
}

/// One bar per condition at its mean, with the 95% interval as an error bar.
fn bar_plot(ui: &mut egui::Ui, title: &str, a: &Analysis, get: &Getter, scale: f64) {
    let k = a.conditions.len();
    let whisker = ui.visuals().strong_text_color();
    Plot::new(("analysis_bars", title))
        .width(165.0)
        .height(150.0)
        .include_y(0.0)
        .include_x(-0.6)
        .include_x(k as f64 - 0.4)
        .allow_scroll(false)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_boxed_zoom(false)
        .show_grid([false, true])
        // The conditions are told apart by colour (the legend above the plots) and on hover.
        .show_axes([false, true])
        .show(ui, |plot| {
            for (i, c) in a.conditions.iter().enumerate() {
                let Some(e) = get(c) else { continue };
                let x = i as f64;
                let bar = Bar::new(x, e.mean * scale).width(0.6).fill(color(i).gamma_multiply(0.75)).name(&c.condition);
                plot.bar_chart(BarChart::new(c.condition.clone(), vec![bar]).color(color(i)));
                let (lo, hi) = (e.ci_low * scale, e.ci_high * scale);
                let id = format!("{title} ci {i}");
                plot.line(Line::new(id.clone(), PlotPoints::from(vec![[x, lo], [x, hi]])).color(whisker).width(1.5));
                for y in [lo, hi] {
                    plot.line(
                        Line::new(id.clone(), PlotPoints::from(vec![[x - 0.12, y], [x + 0.12, y]]))
                            .color(whisker)
                            .width(1.5)
                            .id(format!("{id} cap {y}")),
                    );
                }
            }
        });
}

/// Counts of item times per condition in shared bins, the conditions' bars side by side.
fn histogram(ui: &mut egui::Ui, times: &[(String, Vec<f64>)]) {
    let max = times.iter().flat_map(|(_, t)| t.iter().copied()).fold(0.0f64, f64::max);
    // A round bin width giving at most 12 bins.
    let width = [1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|w| max / w <= 12.0)
        .unwrap_or(max / 12.0)
        .max(f64::MIN_POSITIVE);
    let bins = ((max / width).floor() as usize + 1).max(1);
    let k = times.len().max(1) as f64;
    Plot::new("analysis_time_histogram")
        .width(300.0)
        .height(150.0)
        .include_y(0.0)
        .include_x(0.0)
        .allow_scroll(false)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_boxed_zoom(false)
        .include_x(width * bins as f64)
        .x_grid_spacer(move |_| {
            (0..=bins)
                .step_by(2)
                // (A label every second bin edge: egui_plot labels marks whose step is 60 points or more.)
                .map(|b| egui_plot::GridMark { value: b as f64 * width, step_size: 4.0 * width })
                .collect()
        })
        .x_axis_formatter(|mark, _| format!("{:.0}", mark.value))
        .show(ui, |plot| {
            for (i, (name, values)) in times.iter().enumerate() {
                let mut counts = vec![0usize; bins];
                for v in values {
                    counts[((v / width) as usize).min(bins - 1)] += 1;
                }
                let bars: Vec<Bar> = counts
                    .iter()
                    .enumerate()
                    .map(|(b, &n)| {
                        let x = (b as f64 + (i as f64 + 0.5) / k) * width;
                        Bar::new(x, n as f64).width(width / k * 0.9).fill(color(i).gamma_multiply(0.8))
                    })
                    .collect();
                plot.bar_chart(BarChart::new(name.clone(), bars).color(color(i)));
            }
        });
}

fn flags_ui(ui: &mut egui::Ui, a: &Analysis) {
    let flagged: Vec<_> =
        a.flags.iter().filter(|f| f.attention_failed > 0 || f.too_fast > 0 || f.gold_wrong > 0).collect();
    ui.strong(format!("Flagged participants ({})", flagged.len()));
    if flagged.is_empty() {
        ui.label(RichText::new("Nobody failed an attention check or answered too fast.").weak());
        return;
    }
    egui::ScrollArea::vertical().id_salt("analysis_flags").max_height(180.0).show(ui, |ui| {
        egui::Grid::new("analysis_flags_grid").striped(true).show(ui, |ui| {
            for h in ["participant", "#", "items", "attention failed", "gold wrong", "too fast", "finished", "excluded"]
            {
                ui.label(RichText::new(h).small().strong());
            }
            ui.end_row();
            for f in flagged {
                ui.label(&f.participant);
                ui.label(f.number.to_string());
                ui.label(f.items.to_string());
                let failed = format!("{} of {}", f.attention_failed, f.attention_checks);
                if f.attention_failed > 0 {
                    ui.colored_label(ui.visuals().warn_fg_color, failed);
                } else {
                    ui.label(failed);
                }
                ui.label(f.gold_wrong.to_string());
                ui.label(f.too_fast.to_string());
                ui.label(if f.withdrawn {
                    "declined"
                } else if f.finished {
                    "yes"
                } else {
                    "no"
                });
                ui.label(if f.excluded { "yes" } else { "" });
                ui.end_row();
            }
        });
    });
}
