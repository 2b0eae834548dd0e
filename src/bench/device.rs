//! `argus bench device-check`: the same models on the CPU and on a GPU, compared output for output and timed, for
//! a lent GPU machine that has no network and no room for real weights.
//!
//! Real weights are too big to carry there, so the check builds the real architectures with seeded random weights
//! of the real shapes (speed does not depend on the values, and CPU and GPU get the very same weights):
//! - the encoder: BERT of the shape in a carried `config.json`, with the real `tokenizer.json`;
//! - the writer: a GGUF with the real tokenizer metadata and tensor shapes of a "skeleton" GGUF made here by
//!   [`write_skeleton`] (metadata and tensor shapes, no weights).
//!
//! It reports the largest difference of the encoder outputs, how many greedy tokens agree, and the speed of both.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use super::median;
use crate::models::encoder::{Encoder, EncoderOptions};
use crate::models::generator::{Generator, GeneratorOptions};
use crate::models::{DeviceChoice, ModelError, Result, device};

/// Metadata key of the skeleton GGUF listing the tensors as `name dtype dim0 dim1 ...` lines (candle order).
const SHAPES_KEY: &str = "argus.skeleton.tensors";

/// Writes a weightless copy of the GGUF `from` into `to`: all its metadata (tokenizer included) and the list of
/// its tensors' names, types and shapes.
pub fn write_skeleton(from: &Path, to: &Path) -> Result<()> {
    let (content, _) = crate::models::generator::inspect(from)?;
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let shapes: Vec<String> = names
        .iter()
        .map(|n| {
            let info = &content.tensor_infos[*n];
            let dims: Vec<String> = info.shape.dims().iter().map(|d| d.to_string()).collect();
            format!("{n} {:?} {}", info.ggml_dtype, dims.join(" "))
        })
        .collect();
    let listing = Value::String(shapes.join("\n"));
    let mut metadata: Vec<(&str, &Value)> = content.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    metadata.push((SHAPES_KEY, &listing));
    let mut file = std::fs::File::create(to).map_err(|e| ModelError::file(to, e))?;
    gguf_file::write(&mut file, &metadata, &[]).map_err(ModelError::candle(to.display()))
}

fn normal(rng: &mut StdRng, n: usize, std: f32) -> Vec<f32> {
    let dist = Normal::new(0.0f32, std).expect("valid normal");
    (0..n).map(|_| dist.sample(rng)).collect()
}

/// A GGUF at `to` with the skeleton's metadata and seeded random weights (matrices Q8_0, vectors F32).
fn random_gguf(skeleton: &Path, to: &Path, seed: u64) -> Result<()> {
    let (content, _) = crate::models::generator::inspect(skeleton)?;
    let listing = content
        .metadata
        .get(SHAPES_KEY)
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| ModelError::file(skeleton, "not an Argus skeleton GGUF (no tensor list)"))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for line in listing.lines() {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(_dtype)) = (parts.next(), parts.next()) else { continue };
        let dims: Vec<usize> = parts.filter_map(|d| d.parse().ok()).collect();
        let n: usize = dims.iter().product();
        let ctx = || ModelError::candle(format!("random tensor {name}"));
        let q = if dims.len() == 1 {
            let t = Tensor::from_vec(vec![1f32; n], dims.as_slice(), &Device::Cpu).map_err(ctx())?;
            QTensor::quantize(&t, GgmlDType::F32).map_err(ctx())?
        } else {
            let t = Tensor::from_vec(normal(&mut rng, n, 0.02), dims.as_slice(), &Device::Cpu).map_err(ctx())?;
            QTensor::quantize(&t, GgmlDType::Q8_0).map_err(ctx())?
        };
        tensors.push((name.to_owned(), q));
    }
    let metadata: Vec<(&str, &Value)> =
        content.metadata.iter().filter(|(k, _)| k.as_str() != SHAPES_KEY).map(|(k, v)| (k.as_str(), v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut file = std::fs::File::create(to).map_err(|e| ModelError::file(to, e))?;
    gguf_file::write(&mut file, &metadata, &refs).map_err(ModelError::candle(to.display()))
}

/// A BERT folder at `to` with `config.json` and `tokenizer.json` from `from` and seeded random weights.
fn random_bert(from: &Path, to: &Path, seed: u64) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| ModelError::file(to, e))?;
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(from.join(f), to.join(f)).map_err(|e| ModelError::file(from.join(f), e))?;
    }
    let config: candle_transformers::models::bert::Config = serde_json::from_str(
        &std::fs::read_to_string(from.join("config.json"))
            .map_err(|e| ModelError::file(from.join("config.json"), e))?,
    )
    .map_err(|e| ModelError::file(from.join("config.json"), e))?;
    let (h, i) = (config.hidden_size, config.intermediate_size);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![config.vocab_size, h]),
        ("embeddings.position_embeddings.weight".into(), vec![config.max_position_embeddings, h]),
        ("embeddings.token_type_embeddings.weight".into(), vec![config.type_vocab_size, h]),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    for l in 0..config.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        for (name, dims) in [
            ("attention.self.query", vec![h, h]),
            ("attention.self.key", vec![h, h]),
            ("attention.self.value", vec![h, h]),
            ("attention.output.dense", vec![h, h]),
            ("intermediate.dense", vec![i, h]),
            ("output.dense", vec![h, i]),
        ] {
            shapes.push((format!("{p}.{name}.bias"), vec![dims[0]]));
            shapes.push((format!("{p}.{name}.weight"), dims));
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            shapes.push((format!("{p}.{norm}.weight"), vec![h]));
            shapes.push((format!("{p}.{norm}.bias"), vec![h]));
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tensors = HashMap::new();
    for (name, dims) in shapes {
        let n: usize = dims.iter().product();
        let values = if name.contains("LayerNorm.weight") {
            vec![1f32; n]
        } else if dims.len() == 1 {
            vec![0f32; n]
        } else {
            normal(&mut rng, n, 0.02)
        };
        let t = Tensor::from_vec(values, dims, &Device::Cpu).map_err(ModelError::candle(&name))?;
        tensors.insert(name, t);
    }
    let path = to.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &path).map_err(ModelError::candle(path.display()))
}

/// What the check found.
#[derive(Debug)]
pub struct DeviceReport {
    pub device: String,
    pub encoder_max_abs_diff: f32,
    pub encoder_cpu_s: f64,
    pub encoder_gpu_s: f64,
    /// Largest difference of the writer's logits after the prompt, and the largest logit (for scale).
    pub logits_max_abs_diff: f32,
    pub logits_max_abs: f32,
    pub greedy_same: usize,
    pub greedy_len: usize,
    pub cpu_tokens: Vec<u32>,
    pub gpu_tokens: Vec<u32>,
    pub gen_cpu: (f64, f64),
    pub gen_gpu: (f64, f64),
    pub prompt_len: usize,
    pub work_dir: PathBuf,
}

impl DeviceReport {
    /// The verdict of the check: encoder within 1e-3 and the same greedy tokens.
    pub fn passed(&self) -> bool {
        self.encoder_max_abs_diff <= 1e-3 && self.greedy_same == self.greedy_len
    }
}

impl fmt::Display for DeviceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "device check: CPU vs {} (real architectures, seeded random weights of the real shapes)",
            self.device
        )?;
        writeln!(f, "  encoder: max |cpu - gpu| = {:.2e} (limit 1e-3)", self.encoder_max_abs_diff)?;
        writeln!(
            f,
            "  encoder batch 32 x 128: cpu {:.1} ms, gpu {:.1} ms ({:.1} vs {:.1} sentences/s)",
            self.encoder_cpu_s * 1e3,
            self.encoder_gpu_s * 1e3,
            32.0 / self.encoder_cpu_s,
            32.0 / self.encoder_gpu_s
        )?;
        writeln!(
            f,
            "  writer logits after the prompt: max |cpu - gpu| = {:.2e} (largest |logit| {:.2})",
            self.logits_max_abs_diff, self.logits_max_abs
        )?;
        writeln!(f, "  writer greedy tokens: {} of {} identical", self.greedy_same, self.greedy_len)?;
        writeln!(f, "    cpu {:?}", self.cpu_tokens)?;
        writeln!(f, "    gpu {:?}", self.gpu_tokens)?;
        let tps = |(p, g): (f64, f64)| (self.prompt_len as f64 / p, self.greedy_len as f64 / g);
        let (cp, cg) = tps(self.gen_cpu);
        let (gp, gg) = tps(self.gen_gpu);
        writeln!(f, "  writer prompt {} tokens: cpu {cp:.1} tok/s, gpu {gp:.1} tok/s", self.prompt_len)?;
        writeln!(f, "  writer generation: cpu {cg:.1} tok/s, gpu {gg:.1} tok/s")?;
        writeln!(f, "  {}", if self.passed() { "PASSED" } else { "FAILED" })
    }
}

/// Runs the check: `encoder_files` holds config.json + tokenizer.json, `skeleton` is a skeleton GGUF.
pub fn device_check(
    gpu: DeviceChoice,
    encoder_files: &Path,
    skeleton: &Path,
    work_dir: &Path,
    greedy_len: usize,
) -> Result<DeviceReport> {
    let gpu_device = gpu.open()?;
    std::fs::create_dir_all(work_dir).map_err(|e| ModelError::file(work_dir, e))?;
    // Encoder.
    let bert = work_dir.join("random-bert");
    random_bert(encoder_files, &bert, 17)?;
    let options = EncoderOptions { max_len: 128, batch_size: 32, ..Default::default() };
    let cpu_enc = Encoder::load(&bert, &Device::Cpu, options.clone())?;
    let gpu_enc = Encoder::load(&bert, &gpu_device, options)?;
    let sentences = super::models::bench_sentences(32);
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let time = |enc: &Encoder| -> Result<(Tensor, f64)> {
        let out = enc.encode(&refs)?;
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let o = enc.encode(&refs)?;
            o.hidden.device().synchronize().map_err(ModelError::candle("sync"))?;
            times.push(t.elapsed().as_secs_f64());
        }
        Ok((out.hidden, median(times)))
    };
    let (cpu_hidden, encoder_cpu_s) = time(&cpu_enc)?;
    let (gpu_hidden, encoder_gpu_s) = time(&gpu_enc)?;
    let gpu_hidden = gpu_hidden.to_device(&Device::Cpu).map_err(ModelError::candle("copy"))?;
    let encoder_max_abs_diff = (cpu_hidden - gpu_hidden)
        .and_then(|d| d.abs())
        .and_then(|d| d.max_all())
        .and_then(|d| d.to_dtype(DType::F32))
        .and_then(|d| d.to_scalar::<f32>())
        .map_err(ModelError::candle("comparing encoder outputs"))?;
    // Writer.
    let gguf = work_dir.join("random-writer.gguf");
    random_gguf(skeleton, &gguf, 23)?;
    let mut cpu_gen = Generator::load(&gguf, &Device::Cpu, &GeneratorOptions::default())?;
    let mut gpu_gen = Generator::load(&gguf, &gpu_device, &GeneratorOptions::default())?;
    let prompt_text = cpu_gen.template().render(&crate::prompting::rationale_messages(
        &crate::prompting::builtin_perspectives()[0],
        "A photo shows a shark swimming on a flooded highway after the hurricane.",
    ));
    let prompt = cpu_gen.encode_prompt(&prompt_text)?;
    let run = |g: &mut Generator| -> Result<((f64, f64), Vec<u32>)> {
        let (_, _, tokens) = g.time_greedy(&prompt, greedy_len)?; // warm-up
        let mut pre = Vec::new();
        let mut dec = Vec::new();
        for _ in 0..3 {
            let (p, d, _) = g.time_greedy(&prompt, greedy_len)?;
            pre.push(p);
            dec.push(d);
        }
        Ok(((median(pre), median(dec)), tokens))
    };
    let cpu_logits = cpu_gen.prompt_logits(&prompt)?;
    let gpu_logits = gpu_gen.prompt_logits(&prompt)?;
    let logits_max_abs_diff = cpu_logits.iter().zip(&gpu_logits).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let logits_max_abs = cpu_logits.iter().map(|a| a.abs()).fold(0f32, f32::max);
    let (gen_cpu, cpu_tokens) = run(&mut cpu_gen)?;
    let (gen_gpu, gpu_tokens) = run(&mut gpu_gen)?;
    let greedy_same = cpu_tokens.iter().zip(&gpu_tokens).take_while(|(a, b)| a == b).count();
    Ok(DeviceReport {
        device: device::describe(&gpu_device),
        encoder_max_abs_diff,
        encoder_cpu_s,
        encoder_gpu_s,
        logits_max_abs_diff,
        logits_max_abs,
        greedy_same,
        greedy_len,
        cpu_tokens,
        gpu_tokens,
        gen_cpu,
        gen_gpu,
        prompt_len: prompt.len(),
        work_dir: work_dir.to_owned(),
    })
}
