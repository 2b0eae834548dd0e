//! Models ▸ Route uncertain items: the paper's cost-aware routing in the studio. ARG-D (no rationales needed)
//! scores every item; the share it is least sure about gets rationales written from every perspective and goes
//! through ARG. The cost (items × perspectives, at the writer's measured speed) is shown before anything is
//! written; routing is a second, explicit click.

use egui::RichText;

use super::command::AppCommand;
use super::window::{Placement, studio_window};
use crate::guidance::route::RouteCost;

/// The dialog's state.
pub struct RouteDialog {
    /// Share routed, in percent (the paper: 23).
    pub percent: f64,
    /// The last estimate, for `percent` at the time.
    pub cost: Option<RouteCost>,
}

impl Default for RouteDialog {
    fn default() -> Self {
        Self { percent: 23.0, cost: None }
    }
}

/// What the app tells the dialog about its jobs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RouteJobs {
    /// ARG-D is scoring the items for an estimate.
    pub estimating: bool,
    /// A model job (writer, format, repair) or a routing run is in progress: no second one.
    pub busy: bool,
}

/// Draws the dialog while `open`; returns the commands it emits.
pub fn route_window(ctx: &egui::Context, open: &mut bool, state: &mut RouteDialog, jobs: RouteJobs) -> Vec<AppCommand> {
    let mut out = Vec::new();
    studio_window("Route uncertain items", open, Placement::Dialog).show(ctx, |ui| {
        ui.set_max_width(480.0);
        ui.label(
            "ARG-D scores every item without rationales; the items it is least sure about get rationales from every \
             perspective and are predicted by ARG, which reads them (the ARG paper's cost-aware routing).",
        );
        ui.add_space(4.0);
        let before = state.percent;
        ui.add(egui::Slider::new(&mut state.percent, 5.0..=60.0).suffix(" %").text("least sure share"));
        if (state.percent - before).abs() > f64::EPSILON {
            state.cost = None;
        }
        ui.horizontal(|ui| {
            let estimate = ui
                .add_enabled(!jobs.estimating, egui::Button::new("Score with ARG-D and estimate the cost"))
                .on_hover_text("nothing is written: ARG-D predicts every item and the routed share is counted");
            if estimate.clicked() {
                out.push(AppCommand::EstimateRoute { share: state.percent / 100.0 });
            }
            if jobs.estimating {
                ui.spinner();
            }
        });
        if let Some(cost) = &state.cost {
            ui.separator();
            ui.label(RichText::new(cost.to_string()));
            ui.add_space(4.0);
            let label =
                format!("Write {} rationales and let ARG predict the {} items", cost.rationales, cost.routed.len());
            let go = ui
                .add_enabled(!jobs.busy && !cost.routed.is_empty(), egui::Button::new(label))
                .on_hover_text("the rationale writer runs in the background (Cancel keeps what it wrote)");
            if go.clicked() {
                out.push(AppCommand::RouteItems(cost.routed.clone()));
            }
        }
    });
    out
}
