//! Argus's own quantised matrix × vector kernels for decoding: a few rows of activations (one token of each
//! sequence being decoded) times a Q4_K, Q6_K or Q8_0 weight matrix ([`Matrix`]): Q4_K repacked at load into
//! tiles of 16 rows nearly as compact as the file (see [`Matrix`]), Q6_K and Q8_0 read in their GGUF layout.
//!
//! Why not candle's: candle 0.11 multiplies Q4_K (and Q6_K with more than one row) through weights repacked into
//! tiles of 16 rows whose scales are expanded to f32: 6 bits a weight for Q4_K (4.5 in the file) and 10 for Q6_K
//! (6.56). Decoding reads every weight once per token and is bound by those reads, so the expansion costs what it
//! saves in arithmetic. Here each weight is read once, at about the file's size, and unpacked in registers; each
//! activation row is quantised once per matrix product to 8 bits per 256 values (Q8_K, the same rounding as candle
//! and ggml), and the integer dot products are exact.
//!
//! - **Rows of activations are independent**: a row's result is the same sequence of operations whatever the
//!   number of rows beside it, so a sequence decodes to the same tokens alone and in a batch.
//! - **Fused**: several matrices sharing their input (q/k/v, gate/up) are one parallel region over all their
//!   rows, on candle's own worker pool (no second pool competing for the cores).
//! - **Where it runs**: x86-64 with AVX-512 (F, BW and VNNI), f32 activations on the CPU, decoding (a prompt too
//!   where candle has no tiled kernel for the matrix: see [`matmul`]); elsewhere the caller uses candle's kernels. [`dot_reference`] is the same arithmetic in plain Rust, for the
//!   tests.
// SIMD intrinsics and raw block pointers are unsafe by nature; every unsafe block reads only inside the tensors'
// own byte ranges (checked in `matmul` before any kernel runs) and writes disjoint output rows per task.
#![allow(unsafe_code)]

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Result, Tensor};

/// Values per K-quant block.
const QK_K: usize = 256;
/// Bytes of one Q4_K block: d, dmin (f16), 12 bytes of 6-bit scales and mins, 128 bytes of nibbles.
const Q4K_BYTES: usize = 144;
/// Bytes of one Q6_K block: 128 bytes of low nibbles, 64 of high bit pairs, 16 signed scales, d (f16).
const Q6K_BYTES: usize = 210;
/// Bytes of one Q8_0 block: d (f16), 32 signed bytes.
const Q8_0_BYTES: usize = 34;
/// Most activation rows [`matmul`] takes where candle has a tiled kernel for the matrix: with more (a prompt),
/// those reuse each weight across rows better than this one does. (SmolLM2's 576-wide rows have none.)
pub const MAX_ROWS: usize = 16;
/// Weight rows a parallel task takes.
const TASK_ROWS: usize = 16;

/// One block of 256 activations quantised to 8 bits, in the orders the two kernels read.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Act {
    /// In order (Q6_K's layout).
    qs: [i8; QK_K],
    /// In the order of a Q4_K block's nibbles: each 128 values as [0..32, 64..96, 32..64, 96..128].
    q4: [i8; QK_K],
    d: f32,
    /// Sums of each 16 values.
    bsums: [i16; 16],
    /// Sums of each 32 values.
    sums32: [i16; 8],
}

/// Two blocks of 32 activations quantised to 8 bits (for Q8_0 weights), laid out for one 512-bit product.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct ActPair {
    qs: [i8; 64],
    /// Each block's scale, in the eight lanes of its products.
    d: [f32; 16],
    /// 16 × each block's sum, in the same lanes: the weights are read offset by +128, and 128 × the sum spread
    /// over eight lanes is 16 × the sum in each.
    offset: [i32; 16],
}

/// Quantises one row (a multiple of 64 values) to blocks of 32 with a scale each, exactly as candle's and ggml's
/// `quantize_row_q8_0`.
fn quantize_row_pairs(x: &[f32], out: &mut Vec<ActPair>) {
    for xs in x.chunks_exact(64) {
        let mut pair = ActPair { qs: [0; 64], d: [0.0; 16], offset: [0; 16] };
        for (b, block) in xs.chunks_exact(32).enumerate() {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let qs = &mut pair.qs[b * 32..(b + 1) * 32];
            round_scaled(block, id, qs);
            let sum: i32 = qs.iter().map(|&q| q as i32).sum();
            // The scale is kept at half precision, as candle's and ggml's Q8_0 blocks keep it: the same products.
            pair.d[b * 8..(b + 1) * 8].fill(half::f16::from_f32(d).to_f32());
            pair.offset[b * 8..(b + 1) * 8].fill(16 * sum);
        }
        out.push(pair);
    }
}

/// Quantises one row (a multiple of 256 values) to Q8_K blocks: the scale maps the value of largest magnitude to
/// -127, values round half away from zero (candle's and ggml's `quantize_row_q8_K`).
fn quantize_row(x: &[f32], out: &mut Vec<Act>) {
    for xs in x.chunks_exact(QK_K) {
        let mut act = Act { qs: [0; QK_K], q4: [0; QK_K], d: 0.0, bsums: [0; 16], sums32: [0; 8] };
        // The first value of largest magnitude (its sign sets the scale's).
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let max = xs.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0);
        if amax != 0.0 {
            let iscale = -127f32 / max;
            round_scaled(xs, iscale, &mut act.qs);
            act.d = 1.0 / iscale;
        }
        for (j, sum) in act.bsums.iter_mut().enumerate() {
            *sum = act.qs[j * 16..(j + 1) * 16].iter().map(|&q| q as i16).sum();
        }
        for (j, sum) in act.sums32.iter_mut().enumerate() {
            *sum = act.bsums[2 * j] + act.bsums[2 * j + 1];
        }
        for half in 0..2 {
            let (src, dst) = (&act.qs[half * 128..half * 128 + 128], half * 128);
            for (part, from) in [0, 64, 32, 96].into_iter().enumerate() {
                act.q4[dst + part * 32..dst + part * 32 + 32].copy_from_slice(&src[from..from + 32]);
            }
        }
        out.push(act);
    }
}

/// `q[i] = round(x[i] · scale)` clamped to i8, rounding half away from zero (`f32::round`, as candle and ggml
/// round activations), sixteen lanes at a time where the kernels run.
fn round_scaled(x: &[f32], scale: f32, q: &mut [i8]) {
    assert_eq!(x.len(), q.len());
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the features are there; both slices have x.len() values.
        return unsafe { x86::round_scaled(x.as_ptr(), scale, q.as_mut_ptr(), x.len()) };
    }
    round_scaled_plain(x, scale, q);
}

fn round_scaled_plain(x: &[f32], scale: f32, q: &mut [i8]) {
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * scale).round().clamp(-128.0, 127.0) as i8;
    }
}

/// Bytes of one Q4_K tile block: 16 weight rows × 256 values (see [`Matrix`]).
const TILE_BYTES: usize = 2368;
/// Weight rows of a tile.
const TILE: usize = 16;

/// 64 bytes, 64-byte aligned (the tiles' storage unit).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A quantised weight matrix for these kernels: candle's tensor, and for Q4_K (rows a multiple of 16) the same
/// weights repacked at load into tiles of 16 rows, which VNNI's `vpdpbusd` multiplies 16 rows × 4 values at a time
/// against 4 broadcast activations, so that one instruction does what `maddubs` + `madd` do for 64 values of one
/// row in the file's layout, and the nibbles are unpacked once for all the activation rows of a batch. A tile
/// block (16 rows × 256 values, 2368 bytes, 2.8% more than the file's 2304) holds:
///
/// - `[0, 2048)`: for each group g of 8 values and each row, 4 bytes: byte j is value 8g + j in its low nibble and
///   8g + 4 + j in its high one;
/// - `[2048, 2176)`: the 8 sub-block scales (6 bits) of each of the 16 rows, sub-block major;
/// - `[2176, 2304)`: the 8 sub-block mins, as pairs of sub-blocks × 16 rows × 2 (a 16-bit pair per row, for
///   VNNI's `vpdpwssd` against two sums of activations);
/// - `[2304, 2368)`: the 16 rows' `d`, then their `dmin` (f16, as in the file).
///
/// Candle's own kernels still serve prompts (many rows), from its own repacking.
pub struct Matrix {
    q: std::sync::Arc<QTensor>,
    tiles: Option<Vec<Line>>,
}

impl Matrix {
    /// Wraps `q`, repacking it into tiles where the tile kernel applies (on candle's worker pool).
    pub fn new(q: std::sync::Arc<QTensor>) -> Result<Self> {
        let dims = q.shape().dims().to_vec();
        let tiles = if available()
            && q.dtype() == GgmlDType::Q4K
            && dims.len() == 2
            && q.device().is_cpu()
            && dims[0].is_multiple_of(TILE)
            && dims[1].is_multiple_of(QK_K)
        {
            Some(pack_q4k(&q.data()?, dims[0], dims[1]))
        } else {
            None
        };
        Ok(Self { q, tiles })
    }

    pub fn qtensor(&self) -> &QTensor {
        &self.q
    }

    /// Whether the weights are held as tiles too.
    pub fn tiled(&self) -> bool {
        self.tiles.is_some()
    }
}

/// Q4_K rows (`rows × k`, the file's blocks) into tiles (see [`Matrix`]): tile t's block b at
/// `(t * k / 256 + b) * TILE_BYTES`.
fn pack_q4k(data: &[u8], rows: usize, k: usize) -> Vec<Line> {
    let kb = k / QK_K;
    let lines = rows / TILE * kb * TILE_BYTES / 64;
    let mut out = vec![Line([0; 64]); lines];
    let ptr = SendPtr(out.as_mut_ptr());
    let tile_lines = kb * TILE_BYTES / 64;
    candle_core::utils::barrier_pool().execute_chunked(rows / TILE, |range| {
        for t in range {
            // SAFETY: tile t's lines, written by this task alone, inside `out` (which outlives the region).
            let dst = unsafe { std::slice::from_raw_parts_mut(ptr.at(t * tile_lines) as *mut u8, kb * TILE_BYTES) };
            for b in 0..kb {
                let tb = &mut dst[b * TILE_BYTES..(b + 1) * TILE_BYTES];
                for r in 0..TILE {
                    let blk = &data[((t * TILE + r) * kb + b) * Q4K_BYTES..][..Q4K_BYTES];
                    let qs = &blk[16..];
                    let q = |v: usize| {
                        let (chunk, at) = (v / 64, v % 64);
                        if at < 32 { qs[chunk * 32 + at] & 0x0F } else { qs[chunk * 32 + at - 32] >> 4 }
                    };
                    for g in 0..32 {
                        for j in 0..4 {
                            tb[(g * TILE + r) * 4 + j] = q(8 * g + j) | (q(8 * g + 4 + j) << 4);
                        }
                    }
                    let (sc, mn) = q4k_scales_mins(&blk[4..16]);
                    for sub in 0..8 {
                        tb[2048 + sub * TILE + r] = sc[sub];
                        tb[2176 + (sub / 2) * 32 + r * 2 + sub % 2] = mn[sub];
                    }
                    tb[2304 + 2 * r..2304 + 2 * r + 2].copy_from_slice(&blk[0..2]);
                    tb[2336 + 2 * r..2336 + 2 * r + 2].copy_from_slice(&blk[2..4]);
                }
            }
        }
    });
    out
}

/// Whether this CPU runs the kernels.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether `w` (rows × k) has a kernel here: Q4_K and Q6_K with k a multiple of 256; Q8_0 with k a multiple of
/// 64 where candle has no tiled kernel for it (k not a multiple of 256, or rows not of 16), which then serves every
/// number of rows, so that a token's result does not depend on how many were run together.
pub fn supports(w: &QTensor) -> bool {
    let dims = w.shape().dims();
    if dims.len() != 2 || !w.device().is_cpu() {
        return false;
    }
    match w.dtype() {
        GgmlDType::Q4K | GgmlDType::Q6K => dims[1].is_multiple_of(QK_K),
        GgmlDType::Q8_0 => dims[1].is_multiple_of(64) && !candle_tiles(w),
        _ => false,
    }
}

/// Whether candle 0.11 multiplies `w` with its tiled (repacked) x86 kernels.
fn candle_tiles(w: &QTensor) -> bool {
    let dims = w.shape().dims();
    dims[1].is_multiple_of(QK_K) && dims[0].is_multiple_of(16)
}

/// Bytes of one row of `k` values of `dtype`.
fn row_bytes(dtype: GgmlDType, k: usize) -> usize {
    match dtype {
        GgmlDType::Q4K => k / QK_K * Q4K_BYTES,
        GgmlDType::Q8_0 => k / 32 * Q8_0_BYTES,
        _ => k / QK_K * Q6K_BYTES,
    }
}

/// `x` (`[.., m, k]`, f32 on the CPU) times each of `ws` (`rows × k`, transposed as a linear layer does):
/// `[.., m, rows]` each. `None` where the kernels do not apply (another CPU, type or device), or where candle's
/// tiled kernels serve more than [`MAX_ROWS`] rows better: the caller falls back to candle.
pub fn matmul(ws: &[&Matrix], x: &Tensor) -> Result<Option<Vec<Tensor>>> {
    let dims = x.dims();
    if !available() || dims.len() < 2 || x.dtype() != DType::F32 || !x.device().is_cpu() {
        return Ok(None);
    }
    let k = dims[dims.len() - 1];
    let m = x.elem_count() / k.max(1);
    if m == 0 || ws.is_empty() || ws.iter().any(|w| !supports(&w.q) || w.q.shape().dims()[1] != k) {
        return Ok(None);
    }
    // Many rows (a prompt): candle's tiled kernels, where it has them, reuse each weight across rows better.
    if m > MAX_ROWS && ws.iter().any(|w| candle_tiles(&w.q)) {
        return Ok(None);
    }
    let xs = x.flatten_all()?.to_vec1::<f32>()?;
    let lead = &dims[..dims.len() - 1];
    let Some(outs) = matmul_rows(ws, &xs, m)? else { return Ok(None) };
    ws.iter()
        .zip(outs)
        .map(|(w, out)| {
            let mut shape = lead.to_vec();
            shape.push(w.q.shape().dims()[0]);
            Tensor::from_vec(out, shape, x.device())
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// [`matmul`] on plain rows: `x` holds `m` rows of `k` values; returns, per matrix, `m` rows of its row count.
pub fn matmul_rows(ws: &[&Matrix], x: &[f32], m: usize) -> Result<Option<Vec<Vec<f32>>>> {
    let k = x.len() / m.max(1);
    if !available()
        || m == 0
        || x.len() != m * k
        || ws.is_empty()
        || ws.iter().any(|w| !supports(&w.q) || w.q.shape().dims()[1] != k)
    {
        return Ok(None);
    }
    let kb = k / QK_K;
    let (mut acts, mut pairs) = (Vec::new(), Vec::new());
    for row in x.chunks_exact(k) {
        if ws.iter().any(|w| w.q.dtype() == GgmlDType::Q8_0) {
            quantize_row_pairs(row, &mut pairs);
        }
        if ws.iter().any(|w| w.q.dtype() != GgmlDType::Q8_0) {
            quantize_row(row, &mut acts);
        }
    }
    let datas = ws.iter().map(|w| w.q.data()).collect::<Result<Vec<_>>>()?;
    let mut outs: Vec<Vec<f32>> = Vec::with_capacity(ws.len());
    let mut tasks = Vec::new(); // (matrix, first row, end row)
    for (i, (w, data)) in ws.iter().zip(&datas).enumerate() {
        let rows = w.q.shape().dims()[0];
        if data.len() != rows * row_bytes(w.q.dtype(), k) {
            candle_core::bail!("a {:?} tensor of {rows} × {k} holds {} bytes", w.q.dtype(), data.len());
        }
        if let Some(tiles) = &w.tiles
            && tiles.len() * 64 != rows / TILE * (k / QK_K) * TILE_BYTES
        {
            candle_core::bail!("the tiles of a {rows} × {k} matrix hold {} bytes", tiles.len() * 64);
        }
        outs.push(vec![0f32; m * rows]);
        tasks.extend((0..rows).step_by(TASK_ROWS).map(|r| (i, r, (r + TASK_ROWS).min(rows))));
    }
    let out_ptrs: Vec<SendPtr<f32>> = outs.iter_mut().map(|o| SendPtr(o.as_mut_ptr())).collect();
    let run = |range: std::ops::Range<usize>| {
        for &(i, r0, r1) in &tasks[range] {
            let (rows, dtype) = (ws[i].q.shape().dims()[0], ws[i].q.dtype());
            let mut at = 0;
            while at < m {
                let take = (m - at).min(4);
                // Output rows at..at + take of `outs[i]` (m × rows); each task writes only its weight rows' outputs.
                let out = out_ptrs[i].at(at * rows);
                let these = if dtype == GgmlDType::Q8_0 {
                    Acts::Pairs(&pairs[at * (k / 64)..(at + take) * (k / 64)])
                } else {
                    Acts::K(&acts[at * kb..(at + take) * kb])
                };
                match (&ws[i].tiles, these) {
                    (Some(tiles), Acts::K(a)) => tiles_times(tiles, r0..r1, a, k, take, out, rows),
                    _ => rows_times(dtype, &datas[i], r0..r1, these, k, take, out, rows),
                }
                at += take;
            }
        }
    };
    if tasks.len() == 1 {
        run(0..1);
    } else {
        candle_core::utils::barrier_pool().execute_chunked(tasks.len(), run);
    }
    Ok(Some(outs))
}

struct SendPtr<T>(*mut T);
// SAFETY: the pointer is only written at disjoint indices by the pool's tasks, and outlives the parallel region.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The address `offset` values on (a method, so closures capture the whole `Send` wrapper).
    fn at(self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

/// Quantised activation rows in the layout a weight type's kernel reads.
#[derive(Clone, Copy)]
enum Acts<'a> {
    /// Q8_K blocks (Q4_K, Q6_K weights).
    K(&'a [Act]),
    /// Pairs of 32-value blocks (Q8_0 weights).
    Pairs(&'a [ActPair]),
}

/// Weight rows `rows` (`k` values of `dtype` each, in `data`) times `m` (1 to 4) activation rows: writes
/// `out[j * stride + r]` for activation row j and weight row r.
#[allow(clippy::too_many_arguments)]
fn rows_times(
    dtype: GgmlDType,
    data: &[u8],
    rows: std::ops::Range<usize>,
    acts: Acts,
    k: usize,
    m: usize,
    out: *mut f32,
    stride: usize,
) {
    let per_row = match acts {
        Acts::K(a) => a.len() * QK_K,
        Acts::Pairs(a) => a.len() * 64,
    };
    assert!(rows.end * row_bytes(dtype, k) <= data.len() && per_row == m * k && (1..=4).contains(&m));
    #[cfg(target_arch = "x86_64")]
    {
        debug_assert!(available());
        // SAFETY: `matmul_rows` checked the CPU features; the assertion above the rows' and activations' extents;
        // the caller gives `out` room for m rows of `stride`, of which this task writes only `rows`.
        unsafe {
            let (p, r) = (data.as_ptr(), rows);
            match acts {
                Acts::K(acts) => {
                    let kb = k / QK_K;
                    let a = |j: usize| acts[j.min(m - 1) * kb..].as_ptr();
                    let q6 = dtype == GgmlDType::Q6K;
                    match m {
                        1 => x86::k_rows::<1>(q6, p, r, kb, [a(0)], out, stride),
                        2 => x86::k_rows::<2>(q6, p, r, kb, [a(0), a(1)], out, stride),
                        3 => x86::k_rows::<3>(q6, p, r, kb, [a(0), a(1), a(2)], out, stride),
                        _ => x86::k_rows::<4>(q6, p, r, kb, [a(0), a(1), a(2), a(3)], out, stride),
                    }
                }
                Acts::Pairs(acts) => {
                    let np = k / 64;
                    let a = |j: usize| acts[j.min(m - 1) * np..].as_ptr();
                    match m {
                        1 => x86::q8_0_rows::<1>(p, r, np, [a(0)], out, stride),
                        2 => x86::q8_0_rows::<2>(p, r, np, [a(0), a(1)], out, stride),
                        3 => x86::q8_0_rows::<3>(p, r, np, [a(0), a(1), a(2)], out, stride),
                        _ => x86::q8_0_rows::<4>(p, r, np, [a(0), a(1), a(2), a(3)], out, stride),
                    }
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (data, rows, acts, k, m, out, stride);
        unreachable!("the kernels are x86-64 only (`available` is false elsewhere)");
    }
}

/// Rows `rows` (whole tiles) of a tiled Q4_K matrix times `m` (1 to 4) activation rows: writes
/// `out[j * stride + r]` for activation row j and weight row r.
fn tiles_times(
    tiles: &[Line],
    rows: std::ops::Range<usize>,
    acts: &[Act],
    k: usize,
    m: usize,
    out: *mut f32,
    stride: usize,
) {
    let kb = k / QK_K;
    assert!(
        rows.start.is_multiple_of(TILE)
            && rows.end.is_multiple_of(TILE)
            && rows.end / TILE * kb * TILE_BYTES <= tiles.len() * 64
            && acts.len() == m * kb
            && (1..=4).contains(&m)
    );
    #[cfg(target_arch = "x86_64")]
    {
        debug_assert!(available());
        let a = |j: usize| acts[j.min(m - 1) * kb..].as_ptr();
        let p = tiles.as_ptr() as *const u8;
        for t in rows.start / TILE..rows.end / TILE {
            // SAFETY: `Matrix::new` checked the CPU features; the assertion above the tiles' and activations'
            // extents; the caller gives `out` room for m rows of `stride`, of which this writes only tile t's 16.
            unsafe {
                let (w, o) = (p.add(t * kb * TILE_BYTES), out.add(t * TILE));
                match m {
                    1 => x86::q4k_tile::<1>(w, kb, [a(0)], o, stride),
                    2 => x86::q4k_tile::<2>(w, kb, [a(0), a(1)], o, stride),
                    3 => x86::q4k_tile::<3>(w, kb, [a(0), a(1), a(2)], o, stride),
                    _ => x86::q4k_tile::<4>(w, kb, [a(0), a(1), a(2), a(3)], o, stride),
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (tiles, rows, acts, kb, m, out, stride);
        unreachable!("the kernels are x86-64 only (`available` is false elsewhere)");
    }
}

/// `a · b` (f32), sixteen lanes at a time where the kernels run (attention's scores in the decode step). The
/// portable `kernels` dot product is what the training kernels use; the build targets baseline x86-64, where the
/// compiler vectorises it four lanes wide, and this one is chosen at run time.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the features are there; both slices have a.len() values.
        return unsafe { x86::dot(a.as_ptr(), b.as_ptr(), a.len()) };
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += p · x` (f32), sixteen lanes at a time where the kernels run (attention's weighted values).
pub fn axpy(y: &mut [f32], p: f32, x: &[f32]) {
    assert_eq!(y.len(), x.len());
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the features are there; both slices have y.len() values.
        return unsafe { x86::axpy(y.as_mut_ptr(), p, x.as_ptr(), y.len()) };
    }
    for (y, x) in y.iter_mut().zip(x) {
        *y += p * x;
    }
}

/// Runs `f(i, row)` for each row of `out` (rows of `len` values), on candle's worker pool where `parallel`, each
/// row handed to exactly one task.
pub fn par_rows(out: &mut [f32], len: usize, parallel: bool, f: impl Fn(usize, &mut [f32]) + Sync) {
    let rows = out.len() / len.max(1);
    if !parallel || rows < 2 {
        out.chunks_exact_mut(len.max(1)).enumerate().for_each(|(i, row)| f(i, row));
        return;
    }
    let ptr = SendPtr(out.as_mut_ptr());
    candle_core::utils::barrier_pool().execute_chunked(rows, |range| {
        for i in range {
            // SAFETY: row i (inside `out`, which outlives the region) is given to this task alone.
            let row = unsafe { std::slice::from_raw_parts_mut(ptr.at(i * len), len) };
            f(i, row);
        }
    });
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// The 8 six-bit scales and 8 six-bit mins of a Q4_K block's 12 scale bytes (ggml's `get_scale_min_k4`).
fn q4k_scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..8 {
        if j < 4 {
            sc[j] = s[j] & 63;
            mn[j] = s[j + 4] & 63;
        } else {
            sc[j] = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
            mn[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
    (sc, mn)
}

/// The dot product of one weight row with one row of f32 activations, the same quantisation and integer sums in
/// plain Rust (the tests' reference for the SIMD kernels).
pub fn dot_reference(dtype: GgmlDType, row: &[u8], x: &[f32]) -> f32 {
    if dtype == GgmlDType::Q8_0 {
        let mut pairs = Vec::new();
        quantize_row_pairs(x, &mut pairs);
        let mut total = 0f32;
        for (p, pair) in pairs.iter().enumerate() {
            for b in 0..2 {
                let blk = &row[(2 * p + b) * Q8_0_BYTES..(2 * p + b + 1) * Q8_0_BYTES];
                let sum: i32 =
                    blk[2..].iter().zip(&pair.qs[b * 32..(b + 1) * 32]).map(|(&w, &a)| w as i8 as i32 * a as i32).sum();
                total += f16_at(blk, 0) * pair.d[b * 8] * sum as f32;
            }
        }
        return total;
    }
    let mut acts = Vec::new();
    quantize_row(x, &mut acts);
    let mut total = 0f32;
    for (b, a) in acts.iter().enumerate() {
        match dtype {
            GgmlDType::Q4K => {
                let blk = &row[b * Q4K_BYTES..(b + 1) * Q4K_BYTES];
                let (d, dmin) = (f16_at(blk, 0), f16_at(blk, 2));
                let (sc, mn) = q4k_scales_mins(&blk[4..16]);
                let qs = &blk[16..144];
                let (mut sum, mut mins) = (0i32, 0i32);
                for sub in 0..8 {
                    let (chunk, high) = (sub / 2, sub % 2 == 1);
                    let mut s = 0i32;
                    for j in 0..32 {
                        let byte = qs[chunk * 32 + j];
                        let q = if high { byte >> 4 } else { byte & 0x0F };
                        s += q as i32 * a.qs[sub * 32 + j] as i32;
                    }
                    sum += sc[sub] as i32 * s;
                    mins += mn[sub] as i32 * a.sums32[sub] as i32;
                }
                total += d * a.d * sum as f32 - dmin * a.d * mins as f32;
            }
            _ => {
                let blk = &row[b * Q6K_BYTES..(b + 1) * Q6K_BYTES];
                let (ql, qh, sc, d) = (&blk[0..128], &blk[128..192], &blk[192..208], f16_at(blk, 208));
                let mut sum = 0i32;
                for v in 0..QK_K {
                    let (half, i) = (v / 128, v % 128);
                    let (l, part) = (i % 32, i / 32);
                    let low = ql[half * 64 + l + 32 * (part % 2)];
                    let low = if part < 2 { low & 0x0F } else { low >> 4 };
                    let high = (qh[half * 32 + l] >> (2 * part)) & 3;
                    let q = (low | (high << 4)) as i32 - 32;
                    sum += sc[v / 16] as i8 as i32 * q * a.qs[v] as i32;
                }
                total += d * a.d * sum as f32;
            }
        }
    }
    total
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Act, ActPair, Q4K_BYTES, Q6K_BYTES, Q8_0_BYTES};

    #[inline]
    #[target_feature(enable = "f16c")]
    unsafe fn f16(p: *const u8) -> f32 {
        // SAFETY: the caller passes a pointer to two bytes inside a block.
        let bits = unsafe { std::ptr::read_unaligned(p as *const u16) };
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }

    /// Sixteen i16 lanes each of `a` then `b`: a 512-bit index vector for `_mm512_permutexvar_epi16`.
    const fn halves(a: i16, b: i16) -> [i16; 32] {
        let mut out = [0i16; 32];
        let mut i = 0;
        while i < 32 {
            out[i] = if i < 16 { a } else { b };
            i += 1;
        }
        out
    }

    /// Lane j of 32: `base + j / 8` (Q6_K: the scale of the 16 values lane j's pair belongs to).
    const fn eighths(base: i16) -> [i16; 32] {
        let mut out = [0i16; 32];
        let mut i = 0;
        while i < 32 {
            out[i] = base + (i / 8) as i16;
            i += 1;
        }
        out
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn idx(v: &[i16; 32]) -> __m512i {
        // SAFETY: 64 bytes of `v`.
        unsafe { _mm512_loadu_si512(v.as_ptr() as *const _) }
    }

    /// See `super::round_scaled`. `x · scale` is the same single product as the plain code's; truncating and then
    /// stepping one away from zero where the dropped fraction (exact in f32) is at least one half is
    /// `f32::round`; the conversion saturates to i8 as the clamp does.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn round_scaled(x: *const f32, scale: f32, q: *mut i8, n: usize) {
        // SAFETY: the caller gives n values at each pointer.
        unsafe {
            let (s, half, one) = (_mm512_set1_ps(scale), _mm512_set1_ps(0.5), _mm512_set1_ps(1.0));
            let mut i = 0;
            while i + 16 <= n {
                let p = _mm512_mul_ps(_mm512_loadu_ps(x.add(i)), s);
                let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(p);
                let frac = _mm512_sub_ps(p, t);
                let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(frac, half);
                let down = _mm512_cmp_ps_mask::<_CMP_LE_OQ>(frac, _mm512_set1_ps(-0.5));
                let r = _mm512_mask_sub_ps(_mm512_mask_add_ps(t, up, t, one), down, t, one);
                let r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-128.0)), _mm512_set1_ps(127.0));
                _mm_storeu_si128(q.add(i) as *mut _, _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(r)));
                i += 16;
            }
            while i < n {
                *q.add(i) = (*x.add(i) * scale).round().clamp(-128.0, 127.0) as i8;
                i += 1;
            }
        }
    }

    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn dot(a: *const f32, b: *const f32, n: usize) -> f32 {
        // SAFETY: the caller gives n values at each pointer.
        unsafe {
            let mut acc = _mm512_setzero_ps();
            let mut i = 0;
            while i + 16 <= n {
                acc = _mm512_fmadd_ps(_mm512_loadu_ps(a.add(i)), _mm512_loadu_ps(b.add(i)), acc);
                i += 16;
            }
            let mut sum = _mm512_reduce_add_ps(acc);
            while i < n {
                sum += *a.add(i) * *b.add(i);
                i += 1;
            }
            sum
        }
    }

    #[target_feature(enable = "avx512f,fma")]
    pub(super) unsafe fn axpy(y: *mut f32, p: f32, x: *const f32, n: usize) {
        // SAFETY: the caller gives n values at each pointer.
        unsafe {
            let pv = _mm512_set1_ps(p);
            let mut i = 0;
            while i + 16 <= n {
                _mm512_storeu_ps(y.add(i), _mm512_fmadd_ps(pv, _mm512_loadu_ps(x.add(i)), _mm512_loadu_ps(y.add(i))));
                i += 16;
            }
            while i < n {
                *y.add(i) += p * *x.add(i);
                i += 1;
            }
        }
    }

    /// Rows `rows` of a Q4_K matrix (a Q6_K one where `q6`; `kb` blocks a row from `w`) · M activation rows, into
    /// `out[j * stride + r]`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn k_rows<const M: usize>(
        q6: bool,
        w: *const u8,
        rows: std::ops::Range<usize>,
        kb: usize,
        acts: [*const Act; M],
        out: *mut f32,
        stride: usize,
    ) {
        let row_bytes = kb * if q6 { Q6K_BYTES } else { Q4K_BYTES };
        for r in rows {
            // SAFETY: the caller's contract (see `rows_times`).
            unsafe {
                let row = w.add(r * row_bytes);
                let dots = if q6 { q6k::<M>(row, kb, acts) } else { q4k::<M>(row, kb, acts) };
                for (j, d) in dots.into_iter().enumerate() {
                    *out.add(j * stride + r) = d;
                }
            }
        }
    }

    /// Rows `rows` of a Q8_0 matrix (`np` pairs of blocks a row from `w`) · M activation rows, into
    /// `out[j * stride + r]`. The signed weights are read offset by +128 (one XOR) so that VNNI's unsigned × signed
    /// product applies; the activations' `offset` takes the 128 × sum back.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn q8_0_rows<const M: usize>(
        w: *const u8,
        rows: std::ops::Range<usize>,
        np: usize,
        acts: [*const ActPair; M],
        out: *mut f32,
        stride: usize,
    ) {
        // SAFETY: the caller's contract (see `rows_times`).
        unsafe {
            let flip = _mm512_set1_epi8(0x80u8 as i8);
            for r in rows {
                let row = w.add(r * np * 2 * Q8_0_BYTES);
                let mut acc = [_mm512_setzero_ps(); M];
                for p in 0..np {
                    let (b0, b1) = (row.add(2 * p * Q8_0_BYTES), row.add((2 * p + 1) * Q8_0_BYTES));
                    let lo = _mm256_loadu_si256(b0.add(2) as *const _);
                    let hi = _mm256_loadu_si256(b1.add(2) as *const _);
                    let wq = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), flip);
                    let dw = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(f16(b0)), _mm512_set1_ps(f16(b1)));
                    for i in 0..M {
                        let a = &*acts[i].add(p);
                        let s = _mm512_dpbusd_epi32(
                            _mm512_setzero_si512(),
                            wq,
                            _mm512_loadu_si512(a.qs.as_ptr() as *const _),
                        );
                        let s = _mm512_sub_epi32(s, _mm512_loadu_si512(a.offset.as_ptr() as *const _));
                        let scale = _mm512_mul_ps(dw, _mm512_loadu_ps(a.d.as_ptr()));
                        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), scale, acc[i]);
                    }
                }
                for (j, a) in acc.into_iter().enumerate() {
                    *out.add(j * stride + r) = _mm512_reduce_add_ps(a);
                }
            }
        }
    }

    /// Tile blocks ahead that `q4k_tile` prefetches.
    const PREFETCH_BLOCKS: usize = 4;

    /// One tile of a tiled Q4_K matrix (16 rows, `kb` tile blocks at `w`; see `super::Matrix`) · M activation
    /// rows, into `out[j * stride + r]` for r in 0..16. Per tile block and activation row: 64 `vpdpbusd` (16 rows ×
    /// 4 values each), each sub-block's integer sums × its 16 rows' scales in f32, the mins through `vpdpwssd`
    /// against the activations' sums of 32, and the block's scales last.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn q4k_tile<const M: usize>(
        w: *const u8,
        kb: usize,
        acts: [*const Act; M],
        out: *mut f32,
        stride: usize,
    ) {
        // SAFETY: `w` holds `kb` tile blocks, each of `acts` `kb` activation blocks, and `out` room for M rows of
        // `stride` from this tile's first row (the caller's contract).
        unsafe {
            let nib = _mm512_set1_epi8(0x0F);
            let mut acc = [_mm512_setzero_ps(); M];
            for b in 0..kb {
                let blk = w.add(b * super::TILE_BYTES);
                // A few blocks ahead (into the next tile's at a tile's end: tiles lie one after the other), ahead
                // of the hardware prefetcher: measured, prompts of 16 tokens ran 15-20% faster.
                let ahead = blk.wrapping_add(PREFETCH_BLOCKS * super::TILE_BYTES);
                for line in 0..super::TILE_BYTES / 64 {
                    _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(line * 64) as *const i8);
                }
                let d = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(2304) as *const _));
                let dmin = _mm512_cvtph_ps(_mm256_loadu_si256(blk.add(2336) as *const _));
                let mut main = [_mm512_setzero_ps(); M];
                let mut mins = [_mm512_setzero_si512(); M];
                let qs: [*const i8; M] = std::array::from_fn(|i| (*acts[i].add(b)).qs.as_ptr());
                for pair in 0..4 {
                    let (sa, sb) = (2 * pair, 2 * pair + 1);
                    // Two sub-blocks at once, in separate sums, so that few rows do not wait on one chain.
                    let mut isa = [_mm512_setzero_si512(); M];
                    let mut isb = [_mm512_setzero_si512(); M];
                    for g4 in 0..4 {
                        let (ga, gb) = (sa * 4 + g4, sb * 4 + g4);
                        let wa = _mm512_load_si512(blk.add(ga * 64) as *const _);
                        let wb = _mm512_load_si512(blk.add(gb * 64) as *const _);
                        let (la, ha) = (_mm512_and_si512(wa, nib), _mm512_and_si512(_mm512_srli_epi16(wa, 4), nib));
                        let (lb, hb) = (_mm512_and_si512(wb, nib), _mm512_and_si512(_mm512_srli_epi16(wb, 4), nib));
                        for i in 0..M {
                            macro_rules! at {
                                ($o:expr) => {
                                    _mm512_set1_epi32(std::ptr::read_unaligned(qs[i].add($o) as *const i32))
                                };
                            }
                            isa[i] = _mm512_dpbusd_epi32(isa[i], la, at!(ga * 8));
                            isa[i] = _mm512_dpbusd_epi32(isa[i], ha, at!(ga * 8 + 4));
                            isb[i] = _mm512_dpbusd_epi32(isb[i], lb, at!(gb * 8));
                            isb[i] = _mm512_dpbusd_epi32(isb[i], hb, at!(gb * 8 + 4));
                        }
                    }
                    macro_rules! scales {
                        ($sub:expr) => {
                            _mm512_mul_ps(
                                _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                                    blk.add(2048 + $sub * 16) as *const _
                                ))),
                                d,
                            )
                        };
                    }
                    let (sca, scb) = (scales!(sa), scales!(sb));
                    let mn = _mm512_cvtepu8_epi16(_mm256_loadu_si256(blk.add(2176 + pair * 32) as *const _));
                    for i in 0..M {
                        main[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isa[i]), sca, main[i]);
                        main[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isb[i]), scb, main[i]);
                        let a = &*acts[i].add(b);
                        let sums = std::ptr::read_unaligned(a.sums32.as_ptr().add(2 * pair) as *const i32);
                        mins[i] = _mm512_dpwssd_epi32(mins[i], mn, _mm512_set1_epi32(sums));
                    }
                }
                for i in 0..M {
                    let block = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(mins[i]), dmin, main[i]);
                    acc[i] = _mm512_fmadd_ps(block, _mm512_set1_ps((*acts[i].add(b)).d), acc[i]);
                }
            }
            for (j, a) in acc.into_iter().enumerate() {
                _mm512_storeu_ps(out.add(j * stride), a);
            }
        }
    }

    /// Q4_K row (`kb` blocks at `w`) · M activation rows.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn q4k<const M: usize>(w: *const u8, kb: usize, acts: [*const Act; M]) -> [f32; M] {
        // SAFETY: `w` holds `kb` Q4_K blocks and each of `acts` `kb` activation blocks (the caller's contract).
        unsafe {
            let nib = _mm512_set1_epi8(0x0F);
            let (i02, i13, i46, i57) = (idx(&halves(0, 2)), idx(&halves(1, 3)), idx(&halves(4, 6)), idx(&halves(5, 7)));
            let mut acc = [_mm512_setzero_ps(); M];
            let mut macc = [_mm_setzero_ps(); M];
            for b in 0..kb {
                let blk = w.add(b * Q4K_BYTES);
                let (d, dmin) = (f16(blk), f16(blk.add(2)));
                let u0 = std::ptr::read_unaligned(blk.add(4) as *const u32);
                let u1 = std::ptr::read_unaligned(blk.add(8) as *const u32);
                let u2 = std::ptr::read_unaligned(blk.add(12) as *const u32);
                let sc_lo = u0 & 0x3f3f_3f3f;
                let sc_hi = (u2 & 0x0f0f_0f0f) | (((u0 >> 6) & 0x0303_0303) << 4);
                let mn_lo = u1 & 0x3f3f_3f3f;
                let mn_hi = ((u2 >> 4) & 0x0f0f_0f0f) | (((u1 >> 6) & 0x0303_0303) << 4);
                let sc = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((sc_lo as u64 | (sc_hi as u64) << 32) as i64));
                let mn = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((mn_lo as u64 | (mn_hi as u64) << 32) as i64));
                let scz = _mm512_castsi128_si512(sc);
                let (s0, s1) = (_mm512_permutexvar_epi16(i02, scz), _mm512_permutexvar_epi16(i13, scz));
                let (s2, s3) = (_mm512_permutexvar_epi16(i46, scz), _mm512_permutexvar_epi16(i57, scz));
                let qa = _mm512_loadu_si512(blk.add(16) as *const _);
                let qb = _mm512_loadu_si512(blk.add(80) as *const _);
                let w0 = _mm512_and_si512(qa, nib);
                let w1 = _mm512_and_si512(_mm512_srli_epi16(qa, 4), nib);
                let w2 = _mm512_and_si512(qb, nib);
                let w3 = _mm512_and_si512(_mm512_srli_epi16(qb, 4), nib);
                for i in 0..M {
                    let a = &*acts[i].add(b);
                    let p = a.q4.as_ptr();
                    macro_rules! ld {
                        ($o:expr) => {
                            _mm512_loadu_si512(p.add($o) as *const _)
                        };
                    }
                    // maddubs: pairs of 4-bit × 8-bit products as i16; VNNI's dpwssd: × the sub-block's scale,
                    // summed in pairs into i32 (one instruction for madd + add).
                    let mut s = _mm512_madd_epi16(_mm512_maddubs_epi16(w0, ld!(0)), s0);
                    s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(w1, ld!(64)), s1);
                    s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(w2, ld!(128)), s2);
                    s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(w3, ld!(192)), s3);
                    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(d * a.d), acc[i]);
                    let ms = _mm_madd_epi16(mn, _mm_loadu_si128(a.sums32.as_ptr() as *const _));
                    macc[i] = _mm_fmadd_ps(_mm_cvtepi32_ps(ms), _mm_set1_ps(dmin * a.d), macc[i]);
                }
            }
            let mut out = [0f32; M];
            for i in 0..M {
                let m = _mm_add_ps(macc[i], _mm_movehl_ps(macc[i], macc[i]));
                let m = _mm_add_ss(m, _mm_shuffle_ps(m, m, 1));
                out[i] = _mm512_reduce_add_ps(acc[i]) - _mm_cvtss_f32(m);
            }
            out
        }
    }

    /// Q6_K row (`kb` blocks at `w`) · M activation rows.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    pub(super) unsafe fn q6k<const M: usize>(w: *const u8, kb: usize, acts: [*const Act; M]) -> [f32; M] {
        // SAFETY: `w` holds `kb` Q6_K blocks and each of `acts` `kb` activation blocks (the caller's contract).
        unsafe {
            let nib = _mm512_set1_epi8(0x0F);
            let two = _mm512_set1_epi8(0x03);
            let (sh01, sh23) = (idx(&halves(0, 2)), idx(&halves(4, 6)));
            let (v0, v1, v2, v3) = (idx(&eighths(0)), idx(&eighths(4)), idx(&eighths(8)), idx(&eighths(12)));
            let mut acc = [_mm512_setzero_ps(); M];
            for b in 0..kb {
                let blk = w.add(b * Q6K_BYTES);
                let d = f16(blk.add(208));
                let sc = _mm256_cvtepi8_epi16(_mm_loadu_si128(blk.add(192) as *const _));
                let scz = _mm512_castsi256_si512(sc);
                let (s0, s1) = (_mm512_permutexvar_epi16(v0, scz), _mm512_permutexvar_epi16(v1, scz));
                let (s2, s3) = (_mm512_permutexvar_epi16(v2, scz), _mm512_permutexvar_epi16(v3, scz));
                macro_rules! unpack {
                    ($ql:expr, $qh:expr) => {{
                        let l = _mm512_loadu_si512($ql as *const _);
                        let h = _mm512_broadcast_i64x4(_mm256_loadu_si256($qh as *const _));
                        let hi01 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(h, sh01), two), 4);
                        let hi23 = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(h, sh23), two), 4);
                        let lo = _mm512_or_si512(_mm512_and_si512(l, nib), hi01);
                        let hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), nib), hi23);
                        (lo, hi)
                    }};
                }
                let (q0, q1) = unpack!(blk, blk.add(128));
                let (q2, q3) = unpack!(blk.add(64), blk.add(160));
                for i in 0..M {
                    let a = &*acts[i].add(b);
                    let p = a.qs.as_ptr();
                    macro_rules! ld {
                        ($o:expr) => {
                            _mm512_loadu_si512(p.add($o) as *const _)
                        };
                    }
                    let mut s = _mm512_madd_epi16(_mm512_maddubs_epi16(q0, ld!(0)), s0);
                    s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(q1, ld!(64)), s1);
                    s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(q2, ld!(128)), s2);
                    s = _mm512_dpwssd_epi32(s, _mm512_maddubs_epi16(q3, ld!(192)), s3);
                    // The weights are stored as q + 32: take 32 × Σ scale × (sum of the 16 activations) back.
                    let offset = _mm256_madd_epi16(sc, _mm256_loadu_si256(a.bsums.as_ptr() as *const _));
                    s = _mm512_sub_epi32(s, _mm512_zextsi256_si512(_mm256_slli_epi32(offset, 5)));
                    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(d * a.d), acc[i]);
                }
            }
            let mut out = [0f32; M];
            for i in 0..M {
                out[i] = _mm512_reduce_add_ps(acc[i]);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::quantized::{QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};

    use super::*;

    fn random(rows: usize, k: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..rows * k)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 2.0
            })
            .collect()
    }

    fn weights(dtype: GgmlDType, rows: usize, k: usize, seed: u64) -> std::sync::Arc<QTensor> {
        let w = Tensor::from_vec(random(rows, k, seed), (rows, k), &Device::Cpu).unwrap();
        std::sync::Arc::new(QTensor::quantize(&w, dtype).unwrap())
    }

    #[test]
    fn the_reference_dot_is_candles_matrix_product() {
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K, GgmlDType::Q8_0] {
            let (rows, k) = (8, 512);
            let w = weights(dtype, rows, k, 1);
            let x = random(1, k, 2);
            let xt = Tensor::from_vec(x.clone(), (1, k), &Device::Cpu).unwrap();
            let candle = QMatMul::from_arc(w.clone()).unwrap().forward(&xt).unwrap().flatten_all().unwrap();
            let candle = candle.to_vec1::<f32>().unwrap();
            let data = w.data().unwrap();
            let bytes = data.len() / rows;
            for (r, &c) in candle.iter().enumerate() {
                let mine = dot_reference(dtype, &data[r * bytes..(r + 1) * bytes], &x);
                // candle keeps a Q8_0 activation block's scale at half precision, this kernel at single.
                let tolerance = if dtype == GgmlDType::Q8_0 { 2e-3 } else { 1e-4 };
                assert!((mine - c).abs() <= tolerance * c.abs().max(1.0), "{dtype:?} row {r}: {mine} vs candle {c}");
            }
        }
    }

    #[test]
    fn the_kernels_match_the_reference_and_a_row_is_the_same_alone_and_in_a_batch() {
        assert!(
            available() || !cfg!(target_arch = "x86_64") || !std::arch::is_x86_feature_detected!("avx512bw"),
            "AVX-512 is here but the kernels are off"
        );
        if !available() {
            eprintln!("no AVX-512 here: only the reference is checked (the test above)");
            return;
        }
        // 40 rows: the file's layout; 48: Q4_K's tiles.
        for (dtype, k, rows) in [
            (GgmlDType::Q4K, 768, 40),
            (GgmlDType::Q4K, 768, 48),
            (GgmlDType::Q6K, 768, 40),
            (GgmlDType::Q8_0, 576, 40),
        ] {
            let w = Matrix::new(weights(dtype, rows, k, 3)).unwrap();
            assert_eq!(w.tiled(), rows == 48, "{dtype:?} {rows}");
            let data = w.qtensor().data().unwrap();
            let bytes = data.len() / rows;
            let xs = random(MAX_ROWS, k, 4);
            let batch = Tensor::from_vec(xs.clone(), (1, MAX_ROWS, k), &Device::Cpu).unwrap();
            let out = matmul(&[&w, &w], &batch).unwrap().expect("the kernel applies");
            assert_eq!(out[0].dims(), &[1, MAX_ROWS, rows]);
            // Any number of rows through the plain-rows entry (a prompt's).
            let many = random(37, k, 6);
            let got = matmul_rows(&[&w], &many, 37).unwrap().expect("the kernel applies").remove(0);
            for (i, x) in many.chunks_exact(k).enumerate() {
                for r in 0..rows {
                    let reference = dot_reference(dtype, &data[r * bytes..(r + 1) * bytes], x);
                    assert!(
                        (got[i * rows + r] - reference).abs() <= 1e-5 * reference.abs().max(1.0),
                        "{dtype:?} {i} {r}"
                    );
                }
            }
            let out0 = out[0].squeeze(0).unwrap().to_vec2::<f32>().unwrap();
            assert_eq!(out0, out[1].squeeze(0).unwrap().to_vec2::<f32>().unwrap());
            for (i, x) in xs.chunks_exact(k).enumerate() {
                for r in 0..rows {
                    let reference = dot_reference(dtype, &data[r * bytes..(r + 1) * bytes], x);
                    let got = out0[i][r];
                    assert!(
                        (got - reference).abs() <= 1e-5 * reference.abs().max(1.0),
                        "{dtype:?} row {i}, weight row {r}: {got} vs {reference}"
                    );
                }
                for m in [1, 3] {
                    let lone = matmul_rows(&[&w], &x.repeat(m), m).unwrap().unwrap().remove(0);
                    assert_eq!(lone[(m - 1) * rows..], out0[i], "{dtype:?} row {i}: the same alone and in a batch");
                }
            }
        }
    }

    #[test]
    fn activations_round_as_f32_round_does() {
        // Ties (x.5 both signs), values just off them, the clamp's edges and plain random values.
        let mut x: Vec<f32> = (-300..300).map(|i| i as f32 * 0.5).collect();
        x.extend((-300..300).map(|i| i as f32 * 0.5 + f32::EPSILON * 8.0 * (i % 3 - 1) as f32));
        x.extend(random(1, 1000, 7).iter().map(|v| v * 140.0));
        x.extend([0.49999997, -0.49999997, 0.5, -0.5, 127.5, -128.5, 1e9, -1e9, 0.0, -0.0]);
        let (mut simd, mut plain) = (vec![0i8; x.len()], vec![0i8; x.len()]);
        for scale in [1.0f32, -1.0, 0.37, -127.0 / 99.3] {
            round_scaled(&x, scale, &mut simd);
            round_scaled_plain(&x, scale, &mut plain);
            assert_eq!(simd, plain, "scale {scale}");
        }
    }

    #[test]
    fn it_declines_what_it_has_no_kernel_for() {
        let w = Matrix::new(weights(GgmlDType::Q4_1, 8, 256, 5)).unwrap();
        let x = Tensor::zeros((1, 1, 256), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(matmul(&[&w], &x).unwrap().is_none());
        let w = Matrix::new(weights(GgmlDType::Q4K, 16, 256, 5)).unwrap();
        let many = Tensor::zeros((1, MAX_ROWS + 1, 256), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(matmul(&[&w], &many).unwrap().is_none());
    }
}
