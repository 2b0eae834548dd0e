//! Fused CPU kernels with hand-written backward passes, for the layers ARG trains (the encoder's top layer and the
//! head's attentions): LayerNorm, the attention softmax (scale and mask folded in), exact GELU and dropout.
//!
//! Each is one pass over memory where candle's composition of primitive operations makes five to twelve, each into a
//! freshly allocated tensor: GELU's backward alone was eleven passes over a (batch × length × 1536) tensor, and
//! candle's own fused LayerNorm and softmax have no backward pass at all. Linear layers on (B, L, D) run as one
//! (B·L, D) matrix product ([`linear`]) instead of B small ones with a broadcast weight whose gradient is then summed.
//!
//! On other devices (CUDA, Metal) and dtypes the composed candle operations run instead; the two agree to float
//! rounding (the tests below, and the golden tests in `tests/all/guidance.rs`, which pass through these kernels).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, D, DType, Layout, Module, Result, Shape, Tensor};
use rayon::prelude::*;

/// Rows handled by one parallel task (rows are 32 to 1536 floats: a few hundred KB per task).
const ROWS: usize = 64;

/// Whether the fused kernels apply to `x` (f32 on the CPU).
fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

fn f32s<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else { candle_core::bail!("{what}: f32 only") };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => candle_core::bail!("{what}: contiguous input only"),
    }
}

/// A linear layer on any rank: the leading dimensions flattened into one matrix product, the bias added by
/// [`bias_add`] (candle's broadcast add has a serial, strided sum over the rows as its bias gradient).
pub fn linear(layer: &candle_nn::Linear, x: &Tensor) -> Result<Tensor> {
    let dims = x.dims();
    if dims.len() < 2 {
        return layer.forward(x);
    }
    let last = dims[dims.len() - 1];
    let rows = if dims.len() == 2 { x.clone() } else { x.reshape((x.elem_count() / last, last))? };
    let y = match layer.bias() {
        Some(bias) if fused(&rows) => bias_add(&rows.matmul(&layer.weight().t()?)?, bias)?,
        _ => layer.forward(&rows)?,
    };
    if dims.len() == 2 {
        return Ok(y);
    }
    let mut out = dims.to_vec();
    out[dims.len() - 1] = y.dim(1)?;
    y.reshape(out)
}

// ------------------------------------------------------------------------------------------------- bias add

/// `y + bias` for `y` (rows, d) and `bias` (d): one parallel pass, and a backward pass whose bias gradient is a
/// parallel column sum (summed in task order: the same whatever the number of threads).
pub fn bias_add(y: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if !fused(y) || y.rank() != 2 || bias.rank() != 1 {
        return y.broadcast_add(bias);
    }
    y.contiguous()?.apply_op2(&bias.contiguous()?, BiasAdd)
}

struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "argus-bias-add"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, b) = (f32s(s1, l1, "bias add")?, f32s(s2, l2, "bias")?);
        let d = b.len();
        if d == 0 || y.len() % d != 0 {
            candle_core::bail!("bias add: input {:?} against bias {d}", l1.shape());
        }
        let mut out = vec![0f32; y.len()];
        out.par_chunks_mut(d * ROWS).zip(y.par_chunks(d * ROWS)).for_each(|(out, y)| {
            for (o, y) in out.chunks_exact_mut(d).zip(y.chunks_exact(d)) {
                for i in 0..d {
                    o[i] = y[i] + b[i];
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _y: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let db = grad.apply_op1_no_bwd(&ColumnSum)?;
        Ok((Some(grad), Some(db)))
    }
}

/// Sums a (rows, d) tensor over its rows: (d).
struct ColumnSum;

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "argus-column-sum"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(storage, layout, "column sum")?;
        let d = *layout.shape().dims().last().unwrap_or(&0);
        if d == 0 {
            return Ok((CpuStorage::F32(vec![]), Shape::from(0)));
        }
        let partials: Vec<Vec<f32>> = x
            .par_chunks(d * ROWS)
            .map(|x| {
                let mut part = vec![0f32; d];
                for row in x.chunks_exact(d) {
                    for i in 0..d {
                        part[i] += row[i];
                    }
                }
                part
            })
            .collect();
        let mut out = vec![0f32; d];
        for part in partials {
            for (acc, p) in out.iter_mut().zip(part) {
                *acc += p;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(d)))
    }
}

// ------------------------------------------------------------------------------------------ vectorisable math

/// e^x to about 2 ulp, from arithmetic the compiler vectorises (the C library's `expf` is a call per element):
/// x = n ln 2 + r with |r| <= ln 2 / 2, e^r from its degree-6 Taylor polynomial, times 2^n through the exponent bits.
/// -inf (a masked score) gives exactly 0 and NaN stays NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let clamped = x.clamp(-87.0, 88.0);
    // Round to nearest by adding and subtracting 1.5 * 2^23 (`f32::round` is a library call on baseline x86-64).
    const ROUND: f32 = 12_582_912.0;
    let n = (clamped * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (clamped - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    let y = p * scale;
    if x < -87.0 {
        0.0
    } else if x > 88.0 {
        f32::INFINITY
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

/// erf(x), Abramowitz & Stegun 7.1.26 (largest error 1.5e-7; 5.3e-7 in f32 arithmetic), vectorisable.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    if x < 0.0 { -y } else { y }
}

/// Sum of a slice with eight independent accumulators (vectorised; a single running sum is not).
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Dot product, as [`sum`].
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Largest value of a slice (NaN ignored unless every value is NaN), vectorised.
#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for i in 0..8 {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    acc.iter().copied().fold(rest, f32::max)
}

// ---------------------------------------------------------------------------------------------------- LayerNorm

/// LayerNorm over the last dimension, with its backward pass.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if !fused(x) {
        return composed_layer_norm(x, weight, bias, eps);
    }
    x.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, LayerNormOp { eps: eps as f32 })
}

/// LayerNorm from candle's differentiable primitives (every device).
pub fn composed_layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    centred.broadcast_div(&(var + eps)?.sqrt()?)?.broadcast_mul(weight)?.broadcast_add(bias)
}

/// Mean and 1 / standard deviation of one row (biased variance, as LayerNorm).
#[inline]
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += (c[i] - mean) * (c[i] - mean);
        }
    }
    let var = (acc.iter().sum::<f32>() + rest) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

struct LayerNormOp {
    eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "argus-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (f32s(s1, l1, "layer norm")?, f32s(s2, l2, "layer norm weight")?, f32s(s3, l3, "bias")?);
        let d = w.len();
        if d == 0 || b.len() != d || x.len() % d != 0 {
            candle_core::bail!("layer norm: input {:?} against weight {d}", l1.shape());
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(d * ROWS).zip(x.par_chunks(d * ROWS)).for_each(|(out, x)| {
            for (o, x) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                let (mean, rstd) = moments(x, self.eps);
                for i in 0..d {
                    o[i] = (x[i] - mean) * rstd * w[i] + b[i];
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = weight.elem_count();
        let rows = x.elem_count() / d;
        // One pass: (rows + 2, d) = dx, then d(weight), then d(bias).
        let packed = x.apply_op3_no_bwd(weight, &grad.contiguous()?, &LayerNormBackward { eps: self.eps })?;
        let dx = packed.narrow(0, 0, rows)?.reshape(x.shape())?;
        Ok((Some(dx), Some(packed.get(rows)?), Some(packed.get(rows + 1)?)))
    }
}

struct LayerNormBackward {
    eps: f32,
}

impl CustomOp3 for LayerNormBackward {
    fn name(&self) -> &'static str {
        "argus-layer-norm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, g) = (f32s(s1, l1, "layer norm")?, f32s(s2, l2, "weight")?, f32s(s3, l3, "gradient")?);
        let d = w.len();
        let rows = x.len() / d;
        let mut out = vec![0f32; x.len() + 2 * d];
        let (dx, dwb) = out.split_at_mut(x.len());
        // Per task: its rows of dx and its partial sums of d(weight), d(bias); summed in task order afterwards, so
        // the result does not depend on the number of threads.
        let partials: Vec<Vec<f32>> = dx
            .par_chunks_mut(d * ROWS)
            .zip(x.par_chunks(d * ROWS))
            .zip(g.par_chunks(d * ROWS))
            .map(|((dx, x), g)| {
                let mut part = vec![0f32; 2 * d];
                let (dw, db) = part.split_at_mut(d);
                for ((dx, x), g) in dx.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(g.chunks_exact(d)) {
                    let (mean, rstd) = moments(x, self.eps);
                    let (mut sum_g, mut sum_gx) = (0f32, 0f32);
                    for i in 0..d {
                        let xhat = (x[i] - mean) * rstd;
                        let gw = g[i] * w[i];
                        sum_g += gw;
                        sum_gx += gw * xhat;
                        dw[i] += g[i] * xhat;
                        db[i] += g[i];
                    }
                    let (mean_g, mean_gx) = (sum_g / d as f32, sum_gx / d as f32);
                    for i in 0..d {
                        let xhat = (x[i] - mean) * rstd;
                        dx[i] = rstd * (g[i] * w[i] - mean_g - xhat * mean_gx);
                    }
                }
                part
            })
            .collect();
        for part in partials {
            for (acc, p) in dwb.iter_mut().zip(part) {
                *acc += p;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((rows + 2, d))))
    }
}

// ------------------------------------------------------------------------------------------ attention softmax

/// What a masked key gets before the softmax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskFill {
    /// BERT's extended mask: `f32::MIN` added to the scaled score (a row with every key masked is uniform).
    Additive,
    /// The score replaced by -inf (ARG's `masked_fill`; a row with every key masked is NaN, as in PyTorch).
    NegInf,
}

/// `softmax(scores * scale)` over the last dimension, keys where `mask` (B, Lk; 1 = keep) is 0 masked as `fill`
/// says. `scores` is (B, ..., Lk); the mask's batch dimension is broadcast over the middle ones.
pub fn attention_softmax(scores: &Tensor, mask: Option<&Tensor>, scale: f64, fill: MaskFill) -> Result<Tensor> {
    if !fused(scores) {
        return composed_attention_softmax(scores, mask, scale, fill);
    }
    let scores = scores.contiguous()?;
    match mask {
        None => scores.apply_op1(Softmax { scale: scale as f32 }),
        Some(mask) => {
            let mask = mask.to_dtype(DType::F32)?.contiguous()?;
            scores.apply_op2(&mask, MaskedSoftmax { scale: scale as f32, fill })
        }
    }
}

/// The same from candle's differentiable primitives (every device).
pub fn composed_attention_softmax(
    scores: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
    fill: MaskFill,
) -> Result<Tensor> {
    let mut scores = (scores * scale)?;
    if let Some(mask) = mask {
        let mut mask = mask.to_dtype(DType::F32)?;
        while mask.rank() < scores.rank() {
            mask = mask.unsqueeze(1)?;
        }
        scores = match fill {
            MaskFill::Additive => scores.broadcast_add(&(mask.ones_like()? - &mask)?.affine(f32::MIN as f64, 0.0)?)?,
            MaskFill::NegInf => {
                let keep = mask.ne(0f32)?.broadcast_as(scores.shape())?;
                keep.where_cond(&scores, &Tensor::full(f32::NEG_INFINITY, scores.shape(), scores.device())?)?
            }
        };
    }
    candle_nn::ops::softmax(&scores, D::Minus1)
}

/// Softmax of one row in place: subtract the maximum, exponentiate, normalise.
#[inline]
pub fn softmax_row(row: &mut [f32]) {
    let m = max(row);
    for v in row.iter_mut() {
        *v = exp(*v - m);
    }
    let inv = 1.0 / sum(row);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

struct Softmax {
    scale: f32,
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "argus-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(storage, layout, "softmax")?;
        let n = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out: Vec<f32> = x.iter().map(|v| v * self.scale).collect();
        out.par_chunks_mut(n * ROWS).for_each(|rows| rows.chunks_exact_mut(n).for_each(softmax_row));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBackward { scale: self.scale })?))
    }
}

struct MaskedSoftmax {
    scale: f32,
    fill: MaskFill,
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "argus-masked-softmax"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, mask) = (f32s(s1, l1, "softmax")?, f32s(s2, l2, "mask")?);
        let dims = l1.shape().dims();
        let (Some(&keys), Some(&batch)) = (dims.last(), l2.shape().dims().first()) else {
            candle_core::bail!("masked softmax: scores {:?}, mask {:?}", l1.shape(), l2.shape());
        };
        if dims.first() != Some(&batch) || mask.len() != batch * keys || keys == 0 {
            candle_core::bail!("masked softmax: scores {:?} against mask {:?}", l1.shape(), l2.shape());
        }
        let rows_per_item = x.len() / (batch * keys);
        let mut out = vec![0f32; x.len()];
        let (scale, fill) = (self.scale, self.fill);
        out.par_chunks_mut(keys * rows_per_item)
            .zip(x.par_chunks(keys * rows_per_item))
            .zip(mask.par_chunks(keys))
            .for_each(|((out, x), m)| {
                for (o, x) in out.chunks_exact_mut(keys).zip(x.chunks_exact(keys)) {
                    for j in 0..keys {
                        o[j] = match fill {
                            MaskFill::Additive => x[j] * scale + (1.0 - m[j]) * f32::MIN,
                            MaskFill::NegInf if m[j] != 0.0 => x[j] * scale,
                            MaskFill::NegInf => f32::NEG_INFINITY,
                        };
                    }
                    softmax_row(o);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _mask: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBackward { scale: self.scale })?), None))
    }
}

/// d(scores) = scale · p ⊙ (g − Σ g ⊙ p), from the softmax's output `p` and the gradient `g`.
struct SoftmaxBackward {
    scale: f32,
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "argus-softmax-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (p, g) = (f32s(s1, l1, "softmax output")?, f32s(s2, l2, "gradient")?);
        let n = l1.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut out = vec![0f32; p.len()];
        out.par_chunks_mut(n * ROWS).zip(p.par_chunks(n * ROWS)).zip(g.par_chunks(n * ROWS)).for_each(
            |((out, p), g)| {
                for ((o, p), g) in out.chunks_exact_mut(n).zip(p.chunks_exact(n)).zip(g.chunks_exact(n)) {
                    let dot = dot(p, g);
                    for j in 0..n {
                        o[j] = self.scale * p[j] * (g[j] - dot);
                    }
                }
            },
        );
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

// ------------------------------------------------------------------------------------------------------- GELU

/// Exact (erf) GELU with a one-pass backward.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if !fused(x) {
        return x.gelu_erf();
    }
    x.contiguous()?.apply_op1(Gelu)
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "argus-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(storage, layout, "gelu")?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(1 << 14).zip(x.par_chunks(1 << 14)).for_each(|(o, x)| {
            for (o, &v) in o.iter_mut().zip(x) {
                *o = (erf(v * std::f32::consts::FRAC_1_SQRT_2) + 1.) * 0.5 * v;
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &GeluBackward)?))
    }
}

struct GeluBackward;

impl CustomOp2 for GeluBackward {
    fn name(&self) -> &'static str {
        "argus-gelu-erf-backward"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (f32s(s1, l1, "gelu input")?, f32s(s2, l2, "gradient")?);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(1 << 14).zip(x.par_chunks(1 << 14)).zip(g.par_chunks(1 << 14)).for_each(|((o, x), g)| {
            for ((o, &v), &g) in o.iter_mut().zip(x).zip(g) {
                // d/dx gelu(x) = 0.5 (1 + erf(x / √2)) + x φ(x)
                let d = 0.5 + 0.398_942_3 * exp(-0.5 * v * v) * v + 0.5 * erf(v * std::f32::consts::FRAC_1_SQRT_2);
                *o = g * d;
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

// ---------------------------------------------------------------------------------------------------- dropout

/// `x` times `keep` (1 keeps, 0 drops) times `scale`, the same mask applied to the gradient.
pub fn dropout_with_mask(x: &Tensor, keep: Vec<bool>, scale: f32) -> Result<Tensor> {
    if keep.len() != x.elem_count() {
        candle_core::bail!("dropout mask of {} for a tensor of {}", keep.len(), x.elem_count());
    }
    if !fused(x) {
        let keep: Vec<f32> = keep.into_iter().map(|k| k as u8 as f32).collect();
        let keep = Tensor::from_vec(keep, x.shape(), x.device())?;
        return (x * keep)? * scale as f64;
    }
    x.contiguous()?.apply_op1(Dropout { keep: Arc::new(keep), scale })
}

struct Dropout {
    keep: Arc<Vec<bool>>,
    scale: f32,
}

impl Dropout {
    fn apply(&self, x: &[f32]) -> Vec<f32> {
        const CHUNK: usize = 1 << 15;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).zip(self.keep.par_chunks(CHUNK)).for_each(|((o, x), k)| {
            for i in 0..o.len() {
                o[i] = if k[i] { x[i] * self.scale } else { 0.0 };
            }
        });
        out
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "argus-dropout"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(storage, layout, "dropout")?;
        if x.len() != self.keep.len() {
            candle_core::bail!("dropout mask of {} for a tensor of {}", self.keep.len(), x.len());
        }
        Ok((CpuStorage::F32(self.apply(x)), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Dropout { keep: self.keep.clone(), scale: self.scale })?))
    }
}

// ---------------------------------------------------------------------------------------------------- AdamW

/// AdamW (decoupled weight decay, as PyTorch's and candle's) whose update of an f32 CPU variable is one parallel
/// pass over the weights, their gradient and both moments, in place. candle-nn's AdamW makes about fourteen passes
/// per variable, each into a freshly allocated tensor, then copies the results back. Variables elsewhere (CUDA,
/// other dtypes) are updated by candle-nn's AdamW with the same parameters.
pub struct AdamW {
    fused: Vec<FusedVar>,
    rest: candle_nn::AdamW,
    params: candle_nn::ParamsAdamW,
    step_t: i32,
}

struct FusedVar {
    var: candle_core::Var,
    /// First and second moments.
    moments: std::sync::Mutex<(Vec<f32>, Vec<f32>)>,
}

impl candle_nn::Optimizer for AdamW {
    type Config = candle_nn::ParamsAdamW;

    fn new(vars: Vec<candle_core::Var>, params: candle_nn::ParamsAdamW) -> Result<Self> {
        let (fused, rest): (Vec<_>, Vec<_>) =
            vars.into_iter().filter(|v| v.dtype().is_float()).partition(|v| fused(v.as_tensor()));
        let fused = fused
            .into_iter()
            .map(|var| {
                let n = var.elem_count();
                FusedVar { var, moments: std::sync::Mutex::new((vec![0f32; n], vec![0f32; n])) }
            })
            .collect();
        Ok(Self { fused, rest: candle_nn::AdamW::new(rest, params.clone())?, params, step_t: 0 })
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
        self.rest.set_learning_rate(lr);
    }

    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        self.step_t += 1;
        let p = &self.params;
        let update = AdamWUpdate {
            moments: None,
            lr: p.lr as f32,
            decay: (1.0 - p.lr * p.weight_decay) as f32,
            beta1: p.beta1 as f32,
            beta2: p.beta2 as f32,
            scale_m: (1.0 / (1.0 - p.beta1.powi(self.step_t))) as f32,
            scale_v: (1.0 / (1.0 - p.beta2.powi(self.step_t))) as f32,
            eps: p.eps as f32,
        };
        for v in &self.fused {
            if let Some(g) = grads.get(v.var.as_tensor()) {
                let op = AdamWUpdate { moments: Some(&v.moments), ..update };
                v.var.as_tensor().inplace_op2(&g.contiguous()?, &op)?;
            }
        }
        self.rest.step(grads)
    }
}

#[derive(Clone, Copy)]
struct AdamWUpdate<'a> {
    moments: Option<&'a std::sync::Mutex<(Vec<f32>, Vec<f32>)>>,
    lr: f32,
    /// 1 - lr * weight decay.
    decay: f32,
    beta1: f32,
    beta2: f32,
    /// Bias corrections: 1 / (1 - beta^t).
    scale_m: f32,
    scale_v: f32,
    eps: f32,
}

impl candle_core::InplaceOp2 for AdamWUpdate<'_> {
    fn name(&self) -> &'static str {
        "argus-adamw"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout, g: &CpuStorage, g_l: &Layout) -> Result<()> {
        let g = f32s(g, g_l, "adamw gradient")?;
        let CpuStorage::F32(theta) = dst else { candle_core::bail!("adamw: f32 weights only") };
        let Some((start, end)) = dst_l.contiguous_offsets() else { candle_core::bail!("adamw: contiguous weights") };
        let theta = &mut theta[start..end];
        let Some(moments) = self.moments else { candle_core::bail!("adamw: no moments") };
        let mut moments = moments.lock().map_err(|_| candle_core::Error::Msg("adamw: moments lock".into()))?;
        let (m, v) = &mut *moments;
        if theta.len() != g.len() || m.len() != g.len() {
            candle_core::bail!("adamw: {} weights, {} gradients, {} moments", theta.len(), g.len(), m.len());
        }
        const CHUNK: usize = 1 << 14;
        let u = *self;
        theta
            .par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(g.par_chunks(CHUNK))
            .for_each(|(((theta, m), v), g)| {
                for i in 0..theta.len() {
                    m[i] = m[i] * u.beta1 + g[i] * (1.0 - u.beta1);
                    v[i] = v[i] * u.beta2 + g[i] * g[i] * (1.0 - u.beta2);
                    let (m_hat, v_hat) = (m[i] * u.scale_m, v[i] * u.scale_v);
                    theta[i] = theta[i] * u.decay - m_hat / (v_hat.sqrt() + u.eps) * u.lr;
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    fn random(shape: &[usize], seed: u64) -> Tensor {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// Value and gradients (against every input) of `sum(f(inputs) * weights)`, for the fused and composed forms.
    fn check(inputs: &[Tensor], fused: impl Fn(&[Tensor]) -> Tensor, composed: impl Fn(&[Tensor]) -> Tensor) {
        let run = |f: &dyn Fn(&[Tensor]) -> Tensor| {
            let vars: Vec<Var> = inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
            let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
            let out = f(&ts);
            let weights = random(out.dims(), 99);
            let loss = (&out * &weights).unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            let g: Vec<Tensor> = ts.iter().map(|t| grads.get(t).unwrap().clone()).collect();
            (out, g)
        };
        let (a, ga) = run(&fused);
        let (b, gb) = run(&composed);
        assert!(max_diff(&a, &b) < 1e-5, "outputs differ by {}", max_diff(&a, &b));
        for (i, (x, y)) in ga.iter().zip(&gb).enumerate() {
            let d = max_diff(x, y);
            assert!(d < 1e-4, "gradient {i} differs by {d}");
        }
    }

    #[test]
    fn the_vectorisable_exp_and_erf_match_the_c_library() {
        let mut worst_exp = 0f32;
        let mut worst_erf = 0f32;
        for i in -20_000..=20_000 {
            let x = i as f32 * 0.0043;
            let e = x.exp();
            worst_exp = worst_exp.max(((exp(x) - e) / e).abs());
            worst_erf = worst_erf.max((erf(x) - candle_core::cpu::erf::erf_f64(x as f64) as f32).abs());
        }
        assert!(worst_exp < 5e-7, "exp: relative error {worst_exp}");
        assert!(worst_erf < 1e-6, "erf: error {worst_erf}");
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(sum(&[1.0; 19]), 19.0);
        assert_eq!(max(&[1.0, 5.0, -3.0, 2.0, 0.0, 4.0, 4.5, 1.0, 9.0, -1.0]), 9.0);
    }

    #[test]
    fn layer_norm_matches_the_composed_one_with_gradients() {
        let x = random(&[3, 130, 48], 1);
        let (w, b) = (random(&[48], 2), random(&[48], 3));
        check(
            &[x, w, b],
            |t| layer_norm(&t[0], &t[1], &t[2], 1e-12).unwrap(),
            |t| composed_layer_norm(&t[0], &t[1], &t[2], 1e-12).unwrap(),
        );
    }

    #[test]
    fn masked_softmaxes_match_the_composed_ones_with_gradients() {
        let scores = random(&[2, 3, 5, 7], 4);
        let mask =
            Tensor::from_vec(vec![1f32, 1., 1., 0., 0., 1., 0., 1., 1., 1., 1., 1., 1., 0.], (2, 7), &Device::Cpu)
                .unwrap();
        for fill in [MaskFill::Additive, MaskFill::NegInf] {
            let m = mask.clone();
            let m2 = mask.clone();
            check(
                std::slice::from_ref(&scores),
                move |t| attention_softmax(&t[0], Some(&m), 0.3, fill).unwrap(),
                move |t| composed_attention_softmax(&t[0], Some(&m2), 0.3, fill).unwrap(),
            );
        }
        let s3 = random(&[4, 6, 9], 5);
        check(
            &[s3],
            |t| attention_softmax(&t[0], None, 1.0, MaskFill::NegInf).unwrap(),
            |t| composed_attention_softmax(&t[0], None, 1.0, MaskFill::NegInf).unwrap(),
        );
    }

    #[test]
    fn gelu_and_dropout_match_the_composed_ones_with_gradients() {
        let x = random(&[5, 33, 20], 6);
        check(std::slice::from_ref(&x), |t| gelu_erf(&t[0]).unwrap(), |t| t[0].gelu_erf().unwrap());
        let keep: Vec<bool> = (0..x.elem_count()).map(|i| i % 3 != 0).collect();
        let k2 = keep.clone();
        check(
            &[x],
            move |t| dropout_with_mask(&t[0], keep.clone(), 1.5).unwrap(),
            move |t| {
                let keep: Vec<f32> = k2.iter().map(|&k| k as u8 as f32).collect();
                let keep = Tensor::from_vec(keep, t[0].shape(), &Device::Cpu).unwrap();
                ((&t[0] * keep).unwrap() * 1.5).unwrap()
            },
        );
    }

    #[test]
    fn fused_adamw_follows_candles_adamw() {
        use candle_nn::Optimizer;
        let params = candle_nn::ParamsAdamW { lr: 0.01, weight_decay: 0.05, ..Default::default() };
        let start = [random(&[40_000], 11), random(&[7, 3], 12)];
        let run = |fused: bool| -> Vec<Tensor> {
            let vars: Vec<Var> = start.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
            let mut ours = fused.then(|| AdamW::new(vars.clone(), params.clone()).unwrap());
            let mut theirs = (!fused).then(|| candle_nn::AdamW::new(vars.clone(), params.clone()).unwrap());
            for step in 0..5 {
                // A loss whose gradient changes from step to step: sum((x - t)^2 * w).
                let loss = vars
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        let target = random(v.dims(), 20 + step + i as u64);
                        ((v.as_tensor() - target).unwrap().sqr().unwrap() * random(v.dims(), 40 + step))
                            .unwrap()
                            .sum_all()
                            .unwrap()
                    })
                    .reduce(|a, b| (a + b).unwrap())
                    .unwrap();
                match (&mut ours, &mut theirs) {
                    (Some(o), _) => o.backward_step(&loss).unwrap(),
                    (_, Some(t)) => t.backward_step(&loss).unwrap(),
                    _ => unreachable!(),
                }
            }
            vars.iter().map(|v| v.as_tensor().copy().unwrap()).collect()
        };
        for (a, b) in run(true).iter().zip(run(false)) {
            let d = max_diff(a, &b);
            assert!(d < 1e-5, "weights after five steps differ by {d}");
            assert!(max_diff(a, &start[if a.rank() == 1 { 0 } else { 1 }]) > 1e-3, "the weights moved");
        }
    }

    #[test]
    fn bias_add_matches_the_broadcast_add_with_gradients() {
        // 300 rows: several parallel tasks of `ROWS` rows, and a ragged last one.
        let (y, b) = (random(&[300, 37], 7), random(&[37], 8));
        check(&[y, b], |t| bias_add(&t[0], &t[1]).unwrap(), |t| t[0].broadcast_add(&t[1]).unwrap());
    }

    #[test]
    fn linear_on_three_dimensions_is_the_batched_product() {
        let vm = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let layer = candle_nn::linear(20, 12, vb).unwrap();
        let x = random(&[4, 9, 20], 7);
        check(&[x], |t| linear(&layer, &t[0]).unwrap(), |t| layer.forward(&t[0]).unwrap());
    }
}
