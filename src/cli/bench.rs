//! `argus bench store | encoder | train | quality | generate` (and the hidden `device-check`, `skeleton`): speed and
//! quality measurements, each printing the library's report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::progress::ProgressBar;
use super::rationales::{local_settings, write_and_print};
use super::train::parse_model_kind;
use super::{Global, model_path};
use crate::domain::ModelKind;
use crate::models::DeviceChoice;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Commit latency of one judgement, import of synthetic rows, frame time of the item list.
    Store(Store),
    /// Encoder sentences/s (batch x length) beside PyTorch + transformers on the same inputs and threads.
    Encoder(Encoder),
    /// CPU against a GPU (`--device cuda`): encoder outputs and greedy tokens compared, both timed, on the real
    /// architectures with seeded random weights (for lent GPU machines that cannot hold real weights).
    #[command(hide = true)]
    DeviceCheck(DeviceCheck),
    /// Writes a weightless skeleton of a GGUF (metadata, tokenizer, tensor shapes) for `bench device-check`.
    #[command(hide = true)]
    Skeleton(Skeleton),
    /// Guidance-model training speed: one ARG training step beside the PyTorch peer (same shapes, threads, run),
    /// then one incremental retrain on 1,000 new judgements with cached frozen features.
    Train(Train),
    /// Quality on any dataset Argus imports (--data FILE... with --format/--map/--labels, or --db; default LIAR2
    /// binarised): test macro-F1 of the LLM verdicts alone, BERT only, ARG, ARG-D and routing (--methods), mean and
    /// std over seeds, with each ARG's faithfulness. With --writer, first writes LLM rationales for the
    /// --perspectives (resumable).
    Quality(Box<Quality>),
    /// Prompt-processing and generation tokens/s of a GGUF beside llama.cpp on the same tokens and threads.
    Generate(Generate),
    /// Hostile text (injections, fake fences and JSON, control and bidirectional characters, megabyte lines,
    /// markup): imported byte for byte, fenced in prompts, parsed without a panic, labels untouched, and the studio's
    /// frame time on every such item. With --json, the last line is one JSON object.
    Hostile(Hostile),
    /// Two writers on one database: a synthetic import (100k rows) on one connection while verdicts are committed
    /// on another every few milliseconds; times each verdict's wait and checks none is lost. With --json, the last
    /// line is one JSON object.
    Writers(Writers),
}

impl BenchCmd {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        match self {
            BenchCmd::Store(c) => c.run(g),
            BenchCmd::Encoder(c) => c.run(g),
            BenchCmd::DeviceCheck(c) => c.run(g),
            BenchCmd::Skeleton(c) => c.run(g),
            BenchCmd::Train(c) => c.run(g),
            BenchCmd::Quality(c) => c.run(g),
            BenchCmd::Generate(c) => c.run(g),
            BenchCmd::Hostile(c) => c.run(g),
            BenchCmd::Writers(c) => c.run(g),
        }
    }
}

#[derive(Args, Debug)]
pub struct Store {
    /// Synthetic rows to import, and items in the list.
    #[arg(long, default_value_t = 100_000)]
    items: usize,
    /// Judgements to commit for the latency figures.
    #[arg(long, default_value_t = 2_000)]
    commits: usize,
    /// Frames to draw for the frame-time figures.
    #[arg(long, default_value_t = 300)]
    frames: usize,
}

impl Store {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        let report = crate::bench::store_bench(self.items, self.commits)?;
        print!("{report}");
        let frame_report = crate::ui::bench::item_list_frames(&report.db_path, &report.small_db_path, self.frames)?;
        print!("{frame_report}");
        let _ = std::fs::remove_dir_all(&report.dir);
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Encoder {
    /// Encoder folder, or a catalog name.
    #[arg(long, default_value = "minilm")]
    model: String,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    #[arg(long, default_value_t = 128)]
    length: usize,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Measure Argus only.
    #[arg(long)]
    no_peer: bool,
    /// Instead of one full batch: encode this many real texts of the demo (claims and justifications) once, as the
    /// encoder cache is filled, beside PyTorch padding every text to --length (default 170 here) and sorted.
    #[arg(long)]
    real: Option<usize>,
}

impl Encoder {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let dir = model_path(&self.model)?;
        if let Some(n) = self.real {
            let length = if self.length == 128 { 170 } else { self.length };
            let report = crate::bench::models::encoder_corpus(&dir, g.device(), n, self.batch, length, !self.no_peer)?;
            print!("{report}");
            return Ok(ExitCode::SUCCESS);
        }
        let report =
            crate::bench::models::encoder(&dir, g.device(), self.batch, self.length, self.reps, !self.no_peer)?;
        print!("{report}");
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct DeviceCheck {
    /// Folder with the encoder's config.json and tokenizer.json.
    #[arg(long)]
    encoder_files: PathBuf,
    /// Skeleton GGUF (metadata and tensor shapes) written by `argus bench skeleton`.
    #[arg(long)]
    skeleton: PathBuf,
    /// Scratch folder for the random-weight models.
    #[arg(long)]
    work: PathBuf,
    #[arg(long, default_value_t = 32)]
    greedy: usize,
}

impl DeviceCheck {
    /// Exits with failure when the GPU's results differ from the CPU's.
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let device = g.device.unwrap_or(DeviceChoice::Cuda(0));
        let report =
            crate::bench::device::device_check(device, &self.encoder_files, &self.skeleton, &self.work, self.greedy)?;
        print!("{report}");
        Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

#[derive(Args, Debug)]
pub struct Skeleton {
    #[arg(long)]
    from: PathBuf,
    #[arg(long)]
    to: PathBuf,
}

impl Skeleton {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        crate::bench::device::write_skeleton(&self.from, &self.to)?;
        println!("wrote {}", self.to.display());
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Train {
    /// Encoder (catalog name or folder).
    #[arg(long, default_value = "minilm")]
    encoder: String,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[arg(long, default_value_t = 170)]
    length: usize,
    #[arg(long, default_value_t = 3)]
    perspectives: usize,
    /// Share of real (non-padding) tokens per text.
    #[arg(long, default_value_t = 0.5)]
    fill: f64,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    #[arg(long)]
    no_peer: bool,
    /// Also time the peer as the reference code runs: the whole BERT every step.
    #[arg(long)]
    peer_full: bool,
    /// Skip the step and time only the retrain (or the reverse with --no-retrain).
    #[arg(long)]
    no_step: bool,
    #[arg(long)]
    no_retrain: bool,
    /// LIAR2 CSV for the retrain database (default ../shared/data/liar2/valid.csv, else the demo repeated).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Model retrained: arg, argd or bert.
    #[arg(long, default_value = "arg", value_parser = parse_model_kind)]
    model: ModelKind,
    #[arg(long, default_value_t = 1000)]
    judgements: usize,
    /// Epochs of the retrain.
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// The full retrain's batches as plain random draws (not grouped by length), as before length grouping.
    #[arg(long)]
    no_length_groups: bool,
    /// Skip the online learner's latency (300 and ~10,000 items).
    #[arg(long)]
    no_online: bool,
    /// Items of the big database of the online figure.
    #[arg(long, default_value_t = 10_000)]
    online_items: usize,
    /// Online updates timed per database (the median is reported).
    #[arg(long, default_value_t = 5)]
    online_rounds: usize,
    /// Skip the encoder's inference beside its peer (batch 32 x 128).
    #[arg(long)]
    no_encoder: bool,
    /// End with one JSON line of every figure (null where skipped).
    #[arg(long)]
    json: bool,
}

impl Train {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let dir = model_path(&self.encoder)?;
        let mut json = serde_json::json!({ "threads": candle_core::utils::get_num_threads() });
        if !self.no_step {
            let (b, l, p, f, r) = (self.batch, self.length, self.perspectives, self.fill, self.reps);
            let step = crate::bench::train::step(&dir, b, l, p, f, r, !self.no_peer, self.peer_full)?;
            print!("{step}");
            json["step_secs"] = step.argus_full_pad.into();
            json["step_dynamic_pad_secs"] = step.argus_dynamic_pad.into();
            if let Ok(peer) = step.peer {
                json["peer_step_secs"] = peer.into();
                json["step_ratio"] = (peer / step.argus_full_pad).into();
            }
        }
        if !self.no_encoder {
            let e = crate::bench::models::encoder(&dir, g.device(), 32, 128, 5, !self.no_peer)?;
            print!("{e}");
            json["encoder_sentences_per_s"] = e.argus_sentences_per_s().into();
            if let Some(theirs) = e.peer.as_ref().ok().and_then(|p| p["sentences_per_second"].as_f64()) {
                json["encoder_ratio"] = (e.argus_sentences_per_s() / theirs).into();
            }
            let c = crate::bench::models::encoder_corpus(&dir, g.device(), 512, 32, 170, !self.no_peer)?;
            print!("{c}");
            json["encoder_real_texts_per_s"] = c.argus_texts_per_s().into();
            if let Some((padded, sorted)) = c.ratios() {
                json["encoder_real_ratio"] = padded.into();
                json["encoder_real_ratio_vs_sorted"] = sorted.into();
            }
        }
        if !self.no_retrain {
            let r = crate::bench::train::retrain(
                self.data.as_deref(),
                &self.encoder,
                self.model,
                self.judgements,
                self.epochs,
                !self.no_length_groups,
            )?;
            print!("{r}");
            json["full_retrain_secs"] = r.retrain_secs.into();
            json["full_retrain_length_grouped"] = r.length_grouped.into();
            json["full_retrain_val_macro_f1"] = r.full_val_f1.into();
            json["quick_retrain_secs"] = r.quick_secs.into();
            json["quick_retrain_val_macro_f1"] = r.quick_val_f1.into();
            json["cache_bytes_per_text"] = r.cache_bytes_per_text.into();
            json["cache_tokens_per_text"] = r.cache_tokens_per_text.into();
        }
        if !self.no_online {
            let o = crate::bench::online::online(&self.encoder, self.online_rounds, self.online_items)?;
            print!("{o}");
            json["online_update_secs"] = o.small.total_secs.into();
            json["online_update_10k_secs"] = o.big.total_secs.into();
            json["online_items"] = serde_json::json!([o.small.items, o.big.items]);
            let frames = crate::ui::bench::frames_while_learning(&o.big_db, ModelKind::Arg, 600)?;
            print!("{frames}");
            json["frame_p99_ms_idle"] = (frames.idle.p99.as_secs_f64() * 1e3).into();
            json["frame_p99_ms_learning"] = (frames.learning.p99.as_secs_f64() * 1e3).into();
        }
        // Measured by `scripts/bench-dev-vs-release.sh` (two builds cannot be timed from inside one).
        json["dev_vs_release_ratio"] = serde_json::Value::Null;
        if self.json {
            println!("{json}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Quality {
    #[command(flatten)]
    options: crate::bench::quality::QualityOptions,
    /// Write LLM rationales first with this model (catalog name or GGUF path), e.g. qwen2.5-coder-1.5b.
    #[arg(long)]
    writer: Option<String>,
    /// Perspectives the writer writes.
    #[arg(long, default_value = "td,cs", value_delimiter = ',')]
    perspectives: Vec<String>,
    /// End with one JSON line: {"dataset", "methods": {KEY: {"macro_f1_mean", "macro_f1_std", "accuracy_mean",
    /// "auc_mean", "seeds", ...}}, ...}.
    #[arg(long)]
    json: bool,
}

impl Quality {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let Quality { options, writer, perspectives, json } = self;
        let bar = ProgressBar::new();
        let db = crate::bench::quality::database(&options, &bar)?;
        if let Some(model) = writer {
            write_and_print(&db, &perspectives, &local_settings(model, g.device()), None, None, 1)?;
        }
        let report = crate::bench::quality::run(&options, g.device(), &bar, &mut |line| bar.println(line))?;
        bar.finish();
        print!("{report}");
        if json {
            println!("{}", report.summary_json());
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Generate {
    /// GGUF file, or a catalog name.
    #[arg(long, default_value = "qwen2.5-coder-1.5b")]
    model: String,
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 64)]
    generate: usize,
    #[arg(long, default_value_t = 3)]
    reps: usize,
    #[arg(long)]
    no_peer: bool,
    /// Also write one demo item's perspectives with their verdicts as the writer does, greedy, with at most this
    /// many tokens per rationale, beside llama.cpp writing the same (0: skip).
    #[arg(long, default_value_t = 256)]
    item_tokens: usize,
    /// Also write this many LIAR2 claims (the demo sample's first) × td and cs through `argus rationales`, beside
    /// llama.cpp writing the same one after another (0: skip; the figure is 50).
    #[arg(long, default_value_t = 0)]
    dataset_claims: usize,
    /// Items decoded together in the dataset figure.
    #[arg(long, default_value_t = 4)]
    batch_items: usize,
    /// Print, last, one JSON object.
    #[arg(long)]
    json: bool,
}

impl Generate {
    pub fn run(self, g: &Global) -> anyhow::Result<ExitCode> {
        let path = model_path(&self.model)?;
        let request = crate::bench::models::GenerateRequest {
            prompt_tokens: self.prompt_tokens,
            generate: self.generate,
            reps: self.reps,
            with_peer: !self.no_peer,
            item: (self.item_tokens > 0).then_some(self.item_tokens),
            dataset_claims: self.dataset_claims,
            batch_items: self.batch_items,
        };
        let report = crate::bench::models::generate(&path, g.device(), &request)?;
        print!("{report}");
        if self.json {
            println!("{}", report.json());
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Args, Debug)]
pub struct Writers {
    /// Rows of the concurrent import.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Milliseconds between two verdicts.
    #[arg(long, default_value_t = 10)]
    interval_ms: u64,
    #[arg(long)]
    json: bool,
}

impl Writers {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        let report =
            crate::bench::writers::writers_bench(self.rows, std::time::Duration::from_millis(self.interval_ms))?;
        print!("{report}");
        if self.json {
            println!("{}", serde_json::to_string(&report)?);
        }
        Ok(if report.lost == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

#[derive(Args, Debug)]
pub struct Hostile {
    /// Folder for the bench database (default: a temporary one).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Frames drawn on each item (the first moves to it).
    #[arg(long, default_value_t = 4)]
    frames_per_item: usize,
    #[arg(long)]
    json: bool,
}

impl Hostile {
    pub fn run(self, _: &Global) -> anyhow::Result<ExitCode> {
        let dir = self
            .dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("argus-bench-hostile-{}", std::process::id())));
        let report = crate::bench::hostile::check(&dir)?;
        print!("{report}");
        let frames = crate::ui::bench::frames_over_every_item(&report.db, self.frames_per_item, "bench-hostile")?;
        print!("{frames}");
        // Browsing every item judged nothing.
        let judgements: i64 = crate::store::Store::open(&report.db)?.connection().query_row(
            "SELECT COUNT(*) FROM judgements",
            [],
            |r| r.get(0),
        )?;
        let budget = std::time::Duration::from_micros(16_667);
        let slow = usize::from(frames.worst > budget);
        let failures = report.failures.len() + slow + usize::from(judgements != 0);
        println!(
            "browsing: {judgements} judgements made; slowest frame {} the 16.7 ms budget",
            if slow == 0 { "within" } else { "over" }
        );
        if self.json {
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
            println!(
                "{}",
                serde_json::json!({
                    "hostile_cases": report.cases, "hostile_checks": report.checks, "hostile_failures": failures,
                    "frame_first_p99_ms": ms(frames.first.p99), "frame_first_max_ms": ms(frames.first.max),
                    "frame_p99_ms": ms(frames.steady.p99), "frame_max_ms": ms(frames.steady.max),
                    "slowest_item": frames.worst_item,
                })
            );
        }
        if self.dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}
