//! Background work: named jobs on their own threads, each with progress, a cancel flag and a `Result`.
//!
//! A job's result is a [`poll_promise::Promise`] (as in egui's own apps and rerun's background tasks): the owner
//! polls it once per frame and takes the value when it is ready. A job never panics into its owner: a panic inside
//! the worker becomes an error. When a job reports progress or finishes, it calls the waker it was given (the studio
//! passes `ctx.request_repaint`), so a UI wakes without polling. The [`Progress`] trait is how long-running library
//! code (imports, encoding, training, rationale runs, fetches) reports progress and learns of a cancel, whether it
//! runs in a job, in the CLI (a progress bar) or in a test; work that stops on a cancel returns [`Cancelled`], the
//! one cancellation error every module's error type converts from.
//!
//! This module knows nothing of the UI, of storage or of file formats.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use poll_promise::Promise;

/// The work stopped because someone asked it to (a Cancel button, Ctrl-C, a closing window). Nothing half-done was
/// written. Every module's error type has a variant that converts from it, so `?` carries it up unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// True when `err` (or any error in its chain) is a [`Cancelled`], whichever module's error carried it.
pub fn is_cancelled(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<Cancelled>())
}

/// Where long-running work reports progress and learns that it should stop.
pub trait Progress: Sync {
    /// `done` of `total` units (items, rows, epochs), with a short message of what is happening.
    fn set(&self, done: u64, total: u64, message: &str);
    /// True once someone asked the work to stop; work should then return promptly, writing nothing half-done.
    fn is_cancelled(&self) -> bool;
    /// `Err(Cancelled)` once someone asked the work to stop: `progress.check()?` between units of work.
    fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() { Err(Cancelled) } else { Ok(()) }
    }
}

/// A [`Progress`] that reports nowhere and is never cancelled.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn set(&self, _done: u64, _total: u64, _message: &str) {}
    fn is_cancelled(&self) -> bool {
        false
    }
}

/// Live state of one job, shared between the worker and whoever watches it.
pub struct JobState {
    name: String,
    done: AtomicU64,
    total: AtomicU64,
    message: Mutex<String>,
    cancel: AtomicBool,
    finished: AtomicBool,
    waker: Waker,
}

/// Called whenever a job has news (progress, finished).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobState").field("name", &self.name).field("progress", &self.progress()).finish()
    }
}

impl JobState {
    fn new(name: String, waker: Waker) -> Self {
        Self {
            name,
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            message: Mutex::new(String::new()),
            cancel: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            waker,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// (done, total); total 0 means unknown.
    pub fn progress(&self) -> (u64, u64) {
        (self.done.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed))
    }

    /// Fraction done in 0..=1, if the total is known.
    pub fn fraction(&self) -> Option<f32> {
        let (done, total) = self.progress();
        (total > 0).then(|| (done as f64 / total as f64).clamp(0.0, 1.0) as f32)
    }

    pub fn message(&self) -> String {
        self.message.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Asks the job to stop.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

impl Progress for JobState {
    fn set(&self, done: u64, total: u64, message: &str) {
        self.done.store(done, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        if let Ok(mut m) = self.message.lock()
            && *m != message
        {
            message.clone_into(&mut m);
        }
        (self.waker)();
    }

    fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// A running or finished job that yields a `T`: its live state and the promise of its result.
pub struct Job<T: Send + 'static> {
    state: Arc<JobState>,
    /// `None` once the result was taken.
    promise: Option<Promise<anyhow::Result<T>>>,
}

impl<T: Send + 'static> Job<T> {
    pub fn state(&self) -> &Arc<JobState> {
        &self.state
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        self.state.name()
    }

    /// Takes the result once the job has finished; `None` while it runs (or after it was taken).
    pub fn try_take(&mut self) -> Option<anyhow::Result<T>> {
        match self.promise.take()?.try_take() {
            Ok(result) => Some(result),
            Err(pending) => {
                self.promise = Some(pending);
                None
            }
        }
    }

    /// Blocks until the job is done and returns its result (for the CLI and tests).
    pub fn wait(mut self) -> anyhow::Result<T> {
        match self.promise.take() {
            Some(p) => p.block_and_take(),
            None => Err(anyhow::anyhow!("job '{}': its result was already taken", self.state.name)),
        }
    }
}

/// Errors of the job registry.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("a job named '{0}' is already running")]
    AlreadyRunning(String),
    #[error("cannot start a thread for job '{name}': {source}")]
    Spawn {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// The named jobs of one owner (the studio). A name can run once at a time.
#[derive(Default)]
pub struct JobRegistry {
    jobs: BTreeMap<String, Arc<JobState>>,
}

impl JobRegistry {
    /// Starts `work` on a new thread under `name`, refusing a name that is still running.
    pub fn spawn<T: Send + 'static>(
        &mut self,
        name: impl Into<String>,
        waker: Waker,
        work: impl FnOnce(&JobState) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<Job<T>, JobError> {
        let name = name.into();
        self.jobs.retain(|_, s| !s.is_finished());
        if self.jobs.contains_key(&name) {
            return Err(JobError::AlreadyRunning(name));
        }
        let job = spawn(name.clone(), waker, work)?;
        self.jobs.insert(name, job.state.clone());
        Ok(job)
    }

    /// Jobs still running, by name.
    pub fn running(&self) -> impl Iterator<Item = &Arc<JobState>> {
        self.jobs.values().filter(|s| !s.is_finished())
    }

    pub fn is_running(&self, name: &str) -> bool {
        self.jobs.get(name).is_some_and(|s| !s.is_finished())
    }
}

/// Starts `work` on a new thread; outside a registry (the CLI, tests).
pub fn spawn<T: Send + 'static>(
    name: String,
    waker: Waker,
    work: impl FnOnce(&JobState) -> anyhow::Result<T> + Send + 'static,
) -> Result<Job<T>, JobError> {
    let state = Arc::new(JobState::new(name.clone(), waker));
    let (sender, promise) = Promise::new();
    let worker_state = state.clone();
    // Not `Promise::spawn_thread`: it panics when no thread can be started, and the worker's panic would leave the
    // promise without a value (a panic in whoever polls it). Here both become errors.
    std::thread::Builder::new()
        .name(format!("job: {name}"))
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&worker_state)))
                .unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(anyhow::anyhow!("job '{}' crashed: {what}", worker_state.name))
                });
            // Finished before the value is sent: whoever has the value (`wait`, `try_take`) also sees the name free.
            worker_state.finished.store(true, Ordering::Release);
            sender.send(outcome);
            (worker_state.waker)();
        })
        .map_err(|source| JobError::Spawn { name, source })?;
    Ok(Job { state, promise: Some(promise) })
}

/// A waker that does nothing (CLI, tests).
pub fn no_waker() -> Waker {
    Arc::new(|| {})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_reports_progress_and_result() {
        let job = spawn("count".into(), no_waker(), |p| {
            for i in 0..=10 {
                p.set(i, 10, "counting");
            }
            Ok(42)
        })
        .unwrap();
        assert_eq!(job.wait().unwrap(), 42);
    }

    #[test]
    fn cancel_is_seen_by_the_worker() {
        let job = spawn::<()>("spin".into(), no_waker(), |p| {
            while !p.is_cancelled() {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(Cancelled.into())
        })
        .unwrap();
        job.state().cancel();
        let err = job.wait().unwrap_err();
        assert!(is_cancelled(&err), "{err:#}");
    }

    #[test]
    fn try_take_is_none_while_running_then_the_result_once() {
        let gate = Arc::new(AtomicBool::new(false));
        let g = gate.clone();
        let mut job = spawn("gated".into(), no_waker(), move |_| {
            while !g.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Ok(7)
        })
        .unwrap();
        assert!(job.try_take().is_none());
        gate.store(true, Ordering::Relaxed);
        let result = loop {
            if let Some(r) = job.try_take() {
                break r;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        assert!(job.state().is_finished());
        assert_eq!(result.unwrap(), 7);
        assert!(job.try_take().is_none(), "a result is taken once");
    }

    #[test]
    fn the_waker_fires_when_the_job_finishes() {
        let woken = Arc::new(AtomicU64::new(0));
        let w = woken.clone();
        let job = spawn("wake".into(), Arc::new(move || _ = w.fetch_add(1, Ordering::SeqCst)), |_| Ok(())).unwrap();
        job.wait().unwrap();
        // `wait` returns once the value is sent; the waker runs right after on the worker thread.
        let start = std::time::Instant::now();
        while woken.load(Ordering::SeqCst) == 0 && start.elapsed().as_secs() < 5 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(woken.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn cancelled_is_recognised_through_other_errors() {
        let err = anyhow::Error::new(Cancelled).context("importing x.csv");
        assert!(is_cancelled(&err));
        assert!(!is_cancelled(&anyhow::anyhow!("disk full")));
        struct Stop;
        impl Progress for Stop {
            fn set(&self, _: u64, _: u64, _: &str) {}
            fn is_cancelled(&self) -> bool {
                true
            }
        }
        assert_eq!(Stop.check(), Err(Cancelled));
        assert_eq!(NoProgress.check(), Ok(()));
    }

    #[test]
    fn panic_becomes_an_error() {
        let job = spawn::<()>("boom".into(), no_waker(), |_| panic!("kaput")).unwrap();
        let err = job.wait().unwrap_err().to_string();
        assert!(err.contains("kaput"), "{err}");
    }

    #[test]
    fn registry_refuses_a_duplicate_running_name() {
        let mut reg = JobRegistry::default();
        let gate = Arc::new(AtomicBool::new(false));
        let g = gate.clone();
        let first = reg
            .spawn("import", no_waker(), move |_| {
                while !g.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(())
            })
            .unwrap();
        assert!(matches!(reg.spawn("import", no_waker(), |_| Ok(())), Err(JobError::AlreadyRunning(_))));
        gate.store(true, Ordering::Relaxed);
        first.wait().unwrap();
        assert!(reg.spawn("import", no_waker(), |_| Ok(())).is_ok());
    }
}
