//! `argus bench writers`: two writers on one database. A 100k-row import runs on its own connection (as the
//! studio's import job or `argus import` in another process does) while an annotator commits a verdict every few
//! milliseconds on another; every verdict's wait is timed, and afterwards each verdict reported saved must be in
//! the database and the import must have landed whole. The import stages its rows without the write lock and holds
//! it only to publish them (`store::import`), so the longest wait is about the publishing's length.
//!
//! This module knows nothing of the UI.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Percentiles, write_synthetic_liar2};
use crate::domain::{NewJudgement, Verdict};
use crate::ingest::{self, ImportOptions};
use crate::jobs::{NoProgress, Progress};
use crate::store::Store;

/// What `argus bench writers` measured.
#[derive(Debug, serde::Serialize)]
pub struct WritersReport {
    /// Rows of the concurrent import.
    pub import_rows: usize,
    /// The whole import: reading the file, staging, and publishing.
    pub import_secs: f64,
    /// Publishing: the one transaction that holds the write lock (from its start to the import's end).
    pub import_publish_secs: f64,
    /// Verdicts tried while the import ran (each on its own commit).
    pub verdicts: usize,
    /// Verdicts reported saved.
    pub saved: usize,
    /// Verdicts refused with an error (none is silently dropped: each refusal is an error the caller shows).
    pub refused: usize,
    /// Verdicts reported saved but missing afterwards (must be 0).
    pub lost: usize,
    pub wait_p50_ms: f64,
    pub wait_p99_ms: f64,
    pub wait_max_ms: f64,
    /// The first refusal's message, if any.
    pub refusal: Option<String>,
    /// Items in the database afterwards (the base's plus the import's).
    pub items_after: u64,
}

impl std::fmt::Display for WritersReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "import of {} rows on one connection: {:.2} s in all, {:.2} s of it publishing (holding the write lock)",
            self.import_rows, self.import_secs, self.import_publish_secs
        )?;
        writeln!(
            f,
            "verdicts on another connection meanwhile: {} tried, {} saved, {} refused with an error, {} lost",
            self.verdicts, self.saved, self.refused, self.lost
        )?;
        writeln!(
            f,
            "wait of a verdict: p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
            self.wait_p50_ms, self.wait_p99_ms, self.wait_max_ms
        )?;
        if let Some(r) = &self.refusal {
            writeln!(f, "first refusal: {r}")?;
        }
        Ok(())
    }
}

/// Notes when the import starts publishing.
struct Phases {
    publishing_since: Mutex<Option<Instant>>,
}

impl Progress for Phases {
    fn set(&self, _: u64, _: u64, message: &str) {
        if message == ingest::PUBLISHING {
            let mut since = self.publishing_since.lock().unwrap_or_else(|e| e.into_inner());
            since.get_or_insert_with(Instant::now);
        }
    }

    fn is_cancelled(&self) -> bool {
        false
    }
}

/// Imports `rows` synthetic LIAR2 rows into a database of 1,000 items while verdicts are committed on another
/// connection every `interval`; in a fresh folder under the system temp dir, removed afterwards.
pub fn writers_bench(rows: usize, interval: Duration) -> anyhow::Result<WritersReport> {
    let dir = std::env::temp_dir().join(format!("argus-bench-writers-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir, rows, interval);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run(dir: &std::path::Path, rows: usize, interval: Duration) -> anyhow::Result<WritersReport> {
    let base_csv = dir.join("base.csv");
    write_synthetic_liar2(&base_csv, 1_000, 8)?;
    let big_csv = dir.join("big.csv");
    write_synthetic_liar2(&big_csv, rows, 7)?;
    let db: PathBuf = dir.join("shared.sqlite");
    ingest::import_files(&mut Store::open(&db)?, &[base_csv], &ImportOptions::default(), &NoProgress)?;

    let verdicts = Store::open(&db)?;
    let annotator = verdicts.annotator_id("bench")?;
    let done = AtomicBool::new(false);
    let phases = Phases { publishing_since: Mutex::new(None) };
    let (import, waits, saved, refusals) = std::thread::scope(|s| {
        let importer = s.spawn(|| {
            let t = Instant::now();
            let out = Store::open(&db).map_err(anyhow::Error::from).and_then(|mut store| {
                ingest::import_files(&mut store, std::slice::from_ref(&big_csv), &ImportOptions::default(), &phases)
                    .map_err(anyhow::Error::from)
            });
            let end = Instant::now();
            done.store(true, Ordering::SeqCst);
            out.map(|s| (s, t, end))
        });
        let (mut waits, mut saved, mut refusals) = (Vec::new(), Vec::new(), Vec::<String>::new());
        let mut i = 0i64;
        while !done.load(Ordering::SeqCst) {
            let verdict = if i % 2 == 0 { Verdict::Fake } else { Verdict::Real };
            let t = Instant::now();
            let r = verdicts.record_judgement(&NewJudgement {
                item_id: i % 1_000 + 1,
                annotator_id: annotator,
                verdict,
                confidence: None,
                note: Some(format!("verdict {i}")),
                time_spent_ms: 0,
            });
            waits.push(t.elapsed());
            match r {
                Ok(id) => saved.push(id),
                Err(e) => refusals.push(e.to_string()),
            }
            i += 1;
            std::thread::sleep(interval);
        }
        (importer.join(), waits, saved, refusals)
    });
    let (summaries, started, ended) = match import {
        Ok(r) => r?,
        Err(_) => anyhow::bail!("the import thread panicked"),
    };
    anyhow::ensure!(summaries[0].items == rows, "imported {} of {rows} rows", summaries[0].items);
    let publishing_since = phases.publishing_since.lock().unwrap_or_else(|e| e.into_inner()).unwrap_or(started);

    let check = Store::open(&db)?;
    let present: std::collections::HashSet<i64> = {
        let mut stmt = check.connection().prepare("SELECT id FROM judgements WHERE annotator_id = ?1")?;
        let ids = stmt.query_map([annotator], |r| r.get(0))?;
        ids.collect::<rusqlite::Result<_>>()?
    };
    let lost = saved.iter().filter(|id| !present.contains(id)).count();
    let items_after = check.stats()?.items;
    let p = Percentiles::of(waits.clone());
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(WritersReport {
        import_rows: rows,
        import_secs: (ended - started).as_secs_f64(),
        import_publish_secs: (ended - publishing_since).as_secs_f64(),
        verdicts: waits.len(),
        saved: saved.len(),
        refused: refusals.len(),
        lost,
        wait_p50_ms: ms(p.p50),
        wait_p99_ms: ms(p.p99),
        wait_max_ms: ms(p.max),
        refusal: refusals.into_iter().next(),
        items_after,
    })
}
