//! `argus bench store`: judgement commit latency and import rate, each printed beside a peer measured in the same
//! run (bare SQLite for commits, the CSV parser alone for imports). The item-list frame time is measured by
//! `ui::bench`, on the database this benchmark leaves behind.
//!
//! This module knows nothing of the UI.

pub mod device;
pub mod hostile;
pub mod models;
pub mod online;
pub mod quality;
pub mod train;
pub mod writers;

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng, rngs::StdRng};

use crate::domain::{NewJudgement, Verdict};
use crate::ingest::{self, ImportOptions};
use crate::jobs::NoProgress;
use crate::store::Store;

/// Medians and tails of a set of timings.
#[derive(Clone, Copy, Debug)]
pub struct Percentiles {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let n = samples.len();
        let at = |q: usize| samples.get((n * q / 100).min(n.saturating_sub(1))).copied().unwrap_or_default();
        Self { n, p50: at(50), p99: at(99), max: samples.last().copied().unwrap_or_default() }
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:>7.3} ms   p99 {:>7.3} ms   max {:>7.3} ms   (n = {})",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            self.n
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What `argus bench store` measured.
#[derive(Debug)]
pub struct StoreBenchReport {
    pub items: usize,
    pub commit: Percentiles,
    pub commit_peer: Percentiles,
    pub undo: Percentiles,
    /// Median over the repeats: parsing, inserting, and the whole import.
    pub import_parse: Duration,
    pub import_insert: Duration,
    pub import_total: Duration,
    pub import_peer_csv_only: Duration,
    pub repeats: usize,
    /// Folder with the databases the benchmark built (`big.sqlite`: `items` items, `small.sqlite`: 1,000).
    pub dir: PathBuf,
    pub db_path: PathBuf,
    pub small_db_path: PathBuf,
}

impl fmt::Display for StoreBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self.items as f64 / self.import_total.as_secs_f64();
        writeln!(f, "argus bench store ({} items)", self.items)?;
        writeln!(f, "judgement commit, Store::record_judgement (WAL, synchronous=FULL)   {}", self.commit)?;
        writeln!(f, "  peer: bare rusqlite INSERT + autocommit, same database/PRAGMAs   {}", self.commit_peer)?;
        writeln!(f, "undo (retract judgement)                                          {}", self.undo)?;
        writeln!(
            f,
            "import {} synthetic LIAR2 rows, median of {}: total {:.3} s ({:.0} rows/s) = parse {:.3} s + insert {:.3} s",
            self.items,
            self.repeats,
            self.import_total.as_secs_f64(),
            rate,
            self.import_parse.as_secs_f64(),
            self.import_insert.as_secs_f64()
        )?;
        writeln!(
            f,
            "  peer: csv crate reading the same file, no processing: {:.3} s",
            self.import_peer_csv_only.as_secs_f64()
        )
    }
}

/// Writes `n` synthetic rows in LIAR2's CSV layout (deterministic for a seed).
pub fn write_synthetic_liar2(path: &Path, n: usize, seed: u64) -> std::io::Result<()> {
    const WORDS: &[&str] = &[
        "the",
        "senator",
        "said",
        "taxes",
        "rose",
        "percent",
        "jobs",
        "million",
        "since",
        "state",
        "budget",
        "health",
        "care",
        "plan",
        "voters",
        "claimed",
        "crime",
        "fell",
        "schools",
        "wages",
        "federal",
        "spending",
        "record",
        "never",
        "always",
        "every",
        "border",
        "energy",
        "prices",
        "doubled",
        "report",
        "according",
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(
        out,
        "id,label,statement,date,subject,speaker,speaker_description,state_info,true_counts,mostly_true_counts,\
         half_true_counts,mostly_false_counts,false_counts,pants_on_fire_counts,context,justification"
    )?;
    let sentence = |rng: &mut StdRng, words: usize| {
        let mut s = String::new();
        for i in 0..words {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
        }
        s
    };
    for i in 0..n {
        let words = rng.random_range(12..40);
        let statement = sentence(&mut rng, words);
        let justification = format!("{}. {}.", sentence(&mut rng, 30), sentence(&mut rng, 30));
        writeln!(
            out,
            "{i},{},\"{statement}\",\"March {}, 2019\",economy;taxes,speaker {},\"a speaker\",Texas,1,2,3,4,5,6,a debate,\"{justification}\"",
            rng.random_range(0..6),
            rng.random_range(1..29),
            rng.random_range(0..500),
        )?;
    }
    out.flush()
}

/// Runs the store benchmark in a fresh folder under the system temp dir and returns its figures.
pub fn store_bench(items: usize, commits: usize) -> anyhow::Result<StoreBenchReport> {
    let dir = std::env::temp_dir().join(format!("argus-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let csv_path = dir.join("synthetic.csv");
    write_synthetic_liar2(&csv_path, items, 7)?;

    // Import, three times into fresh databases; the last one stays for the commit and frame benchmarks.
    let repeats = 3;
    let (mut parse, mut insert, mut total, mut peer) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let db_path = dir.join("big.sqlite");
    for _ in 0..repeats {
        let t = Instant::now();
        let mut reader = csv::Reader::from_path(&csv_path)?;
        let mut rows = 0usize;
        let mut record = csv::StringRecord::new();
        while reader.read_record(&mut record)? {
            rows += record.len();
        }
        peer.push(t.elapsed());
        anyhow::ensure!(rows > 0, "synthetic file is empty");

        remove_db(&db_path);
        let t0 = Instant::now();
        let parsed = ingest::read_file(&csv_path, &ImportOptions::default())?;
        let t1 = Instant::now();
        let mut store = Store::open(&db_path)?;
        let summaries = store.import(&[(parsed.dataset, parsed.items)], &mut |_| {}, &|| false)?;
        let t2 = Instant::now();
        anyhow::ensure!(summaries[0].items == items, "imported {} of {items} rows", summaries[0].items);
        parse.push(t1 - t0);
        insert.push(t2 - t1);
        total.push(t2 - t0);
    }

    let small_csv = dir.join("small.csv");
    write_synthetic_liar2(&small_csv, 1_000, 8)?;
    let small_db_path = dir.join("small.sqlite");
    remove_db(&small_db_path);
    ingest::import_files(&mut Store::open(&small_db_path)?, &[small_csv], &ImportOptions::default(), &NoProgress)?;

    // Commit latency: our API, then bare SQLite on the same file, interleaved so both see the same disk state.
    let store = Store::open(&db_path)?;
    let annotator = store.annotator_id("bench")?;
    let mut commit = Vec::with_capacity(commits);
    let mut commit_peer = Vec::with_capacity(commits);
    let mut undo = Vec::with_capacity(commits);
    let mut peer_stmt = store.connection().prepare(
        "INSERT INTO judgements(item_id, annotator_id, verdict, confidence, note, time_spent_ms) VALUES (?1, ?2, ?3, NULL, NULL, 0)",
    )?;
    for i in 0..commits {
        let item = (i % items) as i64 + 1;
        let verdict = if i % 2 == 0 { Verdict::Fake } else { Verdict::Real };
        let t = Instant::now();
        let id = store.record_judgement(&NewJudgement {
            item_id: item,
            annotator_id: annotator,
            verdict,
            confidence: None,
            note: None,
            time_spent_ms: 1200,
        })?;
        commit.push(t.elapsed());
        let t = Instant::now();
        peer_stmt.execute(rusqlite::params![item, annotator, verdict.as_str()])?;
        commit_peer.push(t.elapsed());
        if i % 4 == 0 {
            let t = Instant::now();
            store.retract_judgement(id)?;
            undo.push(t.elapsed());
        }
    }
    drop(peer_stmt);

    Ok(StoreBenchReport {
        items,
        commit: Percentiles::of(commit),
        commit_peer: Percentiles::of(commit_peer),
        undo: Percentiles::of(undo),
        import_parse: median(parse),
        import_insert: median(insert),
        import_total: median(total),
        import_peer_csv_only: median(peer),
        repeats,
        dir,
        db_path,
        small_db_path,
    })
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Median of some measurements (durations, seconds): the upper one of an even count; the default when empty.
pub fn median<T: PartialOrd + Copy + Default>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied().unwrap_or_default()
}
