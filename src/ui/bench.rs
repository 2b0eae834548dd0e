//! Frame-time benchmark of the studio's main view (item list + item view + judgement bar) with `ctx.run_ui`,
//! headless: the same drawing code the window runs, on a large and on a small database, so the two figures show
//! whether the list's cost grows with the number of items.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{item_list, item_view, judgement_bar};
use crate::bench::{Percentiles, median};
use crate::jobs::NoProgress;
use crate::studio::{Command, ItemFilter, Workspace};

/// Frame times measured by [`item_list_frames`].
#[derive(Debug)]
pub struct FrameReport {
    pub big_items: usize,
    pub small_items: usize,
    pub big: Percentiles,
    pub small: Percentiles,
    /// Median time to filter the big list by a new search text (a full scan).
    pub filter_big: Duration,
    /// Median time of one more keystroke in the search field (only the shown items are scanned).
    pub filter_keystroke: Duration,
    /// Opening the big database and loading its item list (what the studio's background job does at start).
    pub open_big: Duration,
}

impl fmt::Display for FrameReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "frame (list + item view + bar, run_ui + tessellate), {:>6} items   {}", self.big_items, self.big)?;
        writeln!(
            f,
            "  peer: the same frame,                             {:>6} items   {}",
            self.small_items, self.small
        )?;
        writeln!(
            f,
            "search filter over {} items, new search (median): {:.3} ms; each further keystroke (median): {:.3} ms",
            self.big_items,
            self.filter_big.as_secs_f64() * 1e3,
            self.filter_keystroke.as_secs_f64() * 1e3
        )?;
        writeln!(
            f,
            "open database + load the {}-item list (the studio's background job at start): {:.3} s",
            self.big_items,
            self.open_big.as_secs_f64()
        )
    }
}

/// Draws `frames` frames of the main view on `big_db` and on `small_db`, moving through the list (one row per
/// frame, with a jump every 50 frames so the scroll position changes), and times each.
pub fn item_list_frames(big_db: &Path, small_db: &Path, frames: usize) -> anyhow::Result<FrameReport> {
    let t = Instant::now();
    let mut big = Workspace::open(big_db, "bench", false, &NoProgress)?;
    let open_big = t.elapsed();
    let mut small = Workspace::open(small_db, "bench", false, &NoProgress)?;
    let big_frames = time_frames(&mut big, frames)?;
    let small_frames = time_frames(&mut small, frames)?;

    let filter = |ws: &mut Workspace, text: &str| -> anyhow::Result<Duration> {
        let t = Instant::now();
        ws.apply(Command::SetFilter(ItemFilter { text: text.into(), ..ItemFilter::default() }))?;
        Ok(t.elapsed())
    };
    let (mut new_search, mut keystrokes) = (Vec::new(), Vec::new());
    for word in ["senator", "budget", "taxes", "record", "zzz"] {
        filter(&mut big, "")?;
        new_search.push(filter(&mut big, &word[..1])?);
        for end in 2..=word.len() {
            keystrokes.push(filter(&mut big, &word[..end])?);
        }
    }
    Ok(FrameReport {
        big_items: big.progress().1,
        small_items: small.progress().1,
        big: Percentiles::of(big_frames),
        small: Percentiles::of(small_frames),
        filter_big: median(new_search),
        filter_keystroke: median(keystrokes),
        open_big,
    })
}

/// Frame times of the main view with the online learner idle and while it updates on another thread, on `db`
/// (which has a version in use): does the window keep 60 fps while the model learns?
#[derive(Debug)]
pub struct LearningFrames {
    pub items: usize,
    pub idle: Percentiles,
    pub learning: Percentiles,
    /// Online updates that ran during the timed frames.
    pub updates: usize,
}

impl fmt::Display for LearningFrames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "frame (list + item view + bar), {} items, learner idle:     {}", self.items, self.idle)?;
        writeln!(
            f,
            "  the same frames while the online learner updates ({} updates): {}   (60 fps = 16.7 ms)",
            self.updates, self.learning
        )
    }
}

/// Times `frames` frames on `db` idle, then the same while an online learner updates the version in use of `kind`
/// in a loop on a thread of its own.
pub fn frames_while_learning(
    db: &Path,
    kind: crate::domain::ModelKind,
    frames: usize,
) -> anyhow::Result<LearningFrames> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let mut ws = Workspace::open(db, "bench-frames", false, &NoProgress)?;
    let idle = time_frames(&mut ws, frames)?;
    let options = crate::guidance::online::OnlineOptions { checkpoint_every: usize::MAX, ..Default::default() };
    let mut learner =
        crate::guidance::online::OnlineLearner::open(db, kind, crate::models::DeviceChoice::Cpu, options, &NoProgress)?;
    let (stop, updates) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let (stop_worker, updates_worker) = (stop.clone(), updates.clone());
    let worker = std::thread::Builder::new().name("bench online learner".into()).spawn(move || {
        while !stop_worker.load(Ordering::Relaxed) {
            learner.update(&NoProgress)?;
            updates_worker.fetch_add(1, Ordering::Relaxed);
        }
        anyhow::Ok(())
    })?;
    // The first update fills the learner's cache of pooled inputs (seconds on a big database): wait for it, then
    // time frames, going on past `frames` until at least 3 whole updates ran during the timed frames.
    let deadline = Instant::now() + Duration::from_secs(600);
    while updates.load(Ordering::Relaxed) == 0 && !worker.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = updates.load(Ordering::Relaxed);
    let mut learning = Vec::with_capacity(frames);
    while learning.len() < frames
        || (updates.load(Ordering::Relaxed) - started < 3 && !worker.is_finished() && learning.len() < frames * 50)
    {
        learning.extend(time_frames(&mut ws, 50)?);
    }
    let ran = updates.load(Ordering::Relaxed) - started;
    stop.store(true, Ordering::Relaxed);
    match worker.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.context("the online learner failed while the frames were timed")),
        Err(_) => anyhow::bail!("the online learner panicked while the frames were timed"),
    }
    Ok(LearningFrames {
        items: ws.progress().1,
        idle: Percentiles::of(idle),
        learning: Percentiles::of(learning),
        updates: ran,
    })
}

/// The main view's state between frames, drawn headless.
struct Frames {
    ctx: egui::Context,
    list: item_list::ListState,
    bar: judgement_bar::BarState,
    view: item_view::ViewState,
    frame: usize,
}

impl Frames {
    fn new() -> Self {
        Self {
            ctx: egui::Context::default(),
            list: item_list::ListState::default(),
            bar: judgement_bar::BarState::default(),
            view: item_view::ViewState::default(),
            frame: 0,
        }
    }

    /// One frame, timed like a real one: `command` (a move, which loads the next item), then the drawing and the
    /// tessellation.
    fn draw(&mut self, ws: &mut Workspace, command: Option<Command>) -> anyhow::Result<Duration> {
        let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1280.0, 800.0));
        let input =
            egui::RawInput { screen_rect: Some(screen), time: Some(self.frame as f64 / 60.0), ..Default::default() };
        self.frame += 1;
        let t = Instant::now();
        if let Some(command) = command {
            ws.apply(command)?;
        }
        let Self { ctx, list, bar, view, .. } = self;
        let mut output = ctx.run_ui(input, |ui| {
            egui::Panel::left("item_list").default_size(420.0).show(ui, |ui| {
                let _ = item_list::item_list_ui(ui, ws, list);
            });
            egui::Panel::bottom("judgement_bar").show(ui, |ui| {
                let _ = judgement_bar::judgement_bar_ui(ui, ws, bar, false);
            });
            egui::CentralPanel::default().show(ui, |ui| {
                let _ = item_view::item_view_ui(ui, ws, view, &Default::default(), &Default::default());
            });
        });
        let _meshes = ctx.tessellate(std::mem::take(&mut output.shapes), output.pixels_per_point);
        // No renderer here: the font atlas uploads are dropped on purpose.
        output.textures_delta.clear();
        Ok(t.elapsed())
    }
}

fn time_frames(ws: &mut Workspace, frames: usize) -> anyhow::Result<Vec<Duration>> {
    let mut drawer = Frames::new();
    let mut times = Vec::with_capacity(frames);
    let n = ws.filtered_len().max(1);
    for frame in 0..frames + 10 {
        let command = if frame % 50 == 49 { Command::SelectRow((frame * 7919) % n) } else { Command::Next };
        let t = drawer.draw(ws, Some(command))?;
        if frame >= 10 {
            // The first frames lay out fonts; they are warm-up.
            times.push(t);
        }
    }
    Ok(times)
}

/// Frame times on every item of a database, each item shown for a few frames.
#[derive(Debug)]
pub struct ItemFrames {
    pub items: usize,
    /// The frame that moves to an item (loads it and lays its text out for the first time).
    pub first: Percentiles,
    /// The frames that follow, on the same item.
    pub steady: Percentiles,
    /// The item whose frames were slowest, and that frame.
    pub worst_item: String,
    pub worst: Duration,
}

impl fmt::Display for ItemFrames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "frame moving to each of {} items (load + first layout): {}", self.items, self.first)?;
        writeln!(f, "  the frames that follow on the same item:                 {}", self.steady)?;
        writeln!(f, "  slowest: {:.1} ms on {}   (60 fps = 16.7 ms)", self.worst.as_secs_f64() * 1e3, self.worst_item)
    }
}

/// Shows every item of `db` in turn (from the first, `Next` after `per_item` frames), timing each frame; the
/// workspace is opened as annotator `annotator` and nothing is judged.
pub fn frames_over_every_item(db: &Path, per_item: usize, annotator: &str) -> anyhow::Result<ItemFrames> {
    let mut ws = Workspace::open(db, annotator, false, &NoProgress)?;
    let mut drawer = Frames::new();
    // Warm-up: fonts.
    for _ in 0..10 {
        drawer.draw(&mut ws, None)?;
    }
    let n = ws.filtered_len();
    let (mut first, mut steady) = (Vec::new(), Vec::new());
    let (mut worst, mut worst_item) = (Duration::ZERO, String::new());
    for row in 0..n {
        for k in 0..per_item.max(1) {
            let command = (k == 0).then_some(Command::SelectRow(row));
            let t = drawer.draw(&mut ws, command)?;
            if k == 0 {
                first.push(t)
            } else {
                steady.push(t)
            }
            if t > worst {
                worst = t;
                worst_item = ws
                    .detail()
                    .map(|d| d.item.external_id.clone().unwrap_or_else(|| d.item.key.clone()))
                    .unwrap_or_default();
            }
        }
    }
    Ok(ItemFrames { items: n, first: Percentiles::of(first), steady: Percentiles::of(steady), worst_item, worst })
}
