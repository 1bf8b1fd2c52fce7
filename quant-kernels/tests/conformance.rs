//! Cross-tier conformance: every kernel tier agrees with the scalar reference.
//!
//! [`conformance!`] expands, for one weight format, into a module with one
//! sub-module per tier (`scalar`, `avx2`, `avx512`, `neon`, `dotprod`,
//! `i8mm`), each holding the same tests:
//!
//! * `vec_dot`: `vec_dot_with(tier)` vs `vec_dot_with(Scalar)` for rows of one
//!   block, many (16) blocks and the default model's `k` = 576 and 1536
//!   (those that are whole blocks of the format);
//! * `gemv`: `gemv_with(tier)` for the model's matrix shapes (rows × k):
//!   576×576, 192×576, 1536×576, 576×1536;
//! * `gemv_lm_head`: one 49152-row gemv (k = 576; 768 for K-quants, which
//!   cannot hold a 576-wide row);
//! * `gemm`: `gemm_with(tier)` with n = 1, 3 and 128 activation columns;
//! * `edge_rows_stay_finite`: zero, tiny, subnormal and large-but-representable
//!   rows give finite results on every entry point;
//! * `quantized_dot_tracks_f32_dot`: `dot(quantize(w), quantize(x))` on the
//!   tier is within the format's quantization error of the f32 dot of the
//!   original rows.
//!
//! A tier this CPU cannot run is skipped at run time with a printed note
//! (`cargo test -- --nocapture` shows it).
//!
//! Tolerances (see `docs/kernels.md` for the table): an output `y` from a
//! tier must satisfy `|y - y_scalar| <= tier_tol * Σ|w_i·x_i|`, where `w`, `x`
//! are the dequantized weight and activation rows and the sum is taken in
//! f64 — the natural scale of floating-point reassociation error, as in
//! ggml's `test-quantize-fns`. The quantization test requires
//! `|dot_q - dot_f32| <= quant_tol * Σ|w_i·x_i|` with `w`, `x` the original
//! f32 rows.
//!
//! Weights are made by quantizing random rows with `quantize_row` where Ember
//! has a quantizer, else (IQ4_NL, and every format for the 49152-row matrix,
//! for speed) as random valid blocks: random bytes with sane f16 scales.

use ember_quant::fp::f32_to_f16;
use ember_quant::{
    cpu_features, dequantize_row, gemm_with, gemv_with, quantize_row, vec_dot_type, vec_dot_with,
    Error, GgmlType, Tier,
};
use std::sync::OnceLock;

/// Every tier the suite is generated for (must list all of `Tier::ALL`).
const TIERS: [Tier; 7] = [
    Tier::Scalar,
    Tier::Avx2,
    Tier::Avx512,
    Tier::Neon,
    Tier::Dotprod,
    Tier::I8mm,
    Tier::Simd128,
];

/// The default model's widths (SmolLM2-135M: hidden 576, FFN 1536, vocab 49152).
const HIDDEN: usize = 576;
const FFN: usize = 1536;
const VOCAB: usize = 49152;
/// gemv shapes (rows, k): q/o proj, k/v proj, gate/up, down.
const GEMV_SHAPES: [(usize, usize); 4] = [
    (HIDDEN, HIDDEN),
    (192, HIDDEN),
    (FFN, HIDDEN),
    (HIDDEN, FFN),
];
/// Weight rows of the gemm matrix.
const GEMM_ROWS: usize = 64;
const GEMM_COLS: [usize; 3] = [1, 3, 128];

/// Per-format tolerances, relative to `Σ|w_i·x_i|`.
#[derive(Clone, Copy, Debug)]
struct Tol {
    /// Tier vs scalar reference.
    tier: f64,
    /// Quantized dot vs f32 dot of the original rows, for rows of one block
    /// (one sub-sample: noisy).
    quant_block: f64,
    /// The same for rows of 16 or more blocks (512..4096 elements).
    quant_row: f64,
}

// ---------------------------------------------------------------------------
// Deterministic data
// ---------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03 | 1)
    }
    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f32 {
        (lo + (hi - lo) * self.unit()) as f32
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f32 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
    fn fill_bytes(&mut self, out: &mut [u8]) {
        for c in out.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// Random weights: normal, with a few outliers (as real weights have).
fn weight_f32(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let v = rng.normal() * 0.05;
            if i % 61 == 7 {
                v * 6.0
            } else {
                v
            }
        })
        .collect()
}

/// Random activations: normal, with an occasional large channel.
fn act_f32(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let v = rng.normal();
            if i % 131 == 3 {
                v * 10.0
            } else {
                v
            }
        })
        .collect()
}

fn row_bytes(ty: GgmlType, n: usize) -> usize {
    ty.row_bytes(n as u64).expect("whole blocks") as usize
}

/// Quantizes `src` to `ty`, or `None` if Ember has no quantizer for it.
fn quantize(ty: GgmlType, src: &[f32]) -> Option<Vec<u8>> {
    let mut out = vec![0u8; row_bytes(ty, src.len())];
    match quantize_row(ty, src, &mut out) {
        Ok(()) => Some(out),
        Err(Error::Unsupported { .. }) => None,
        Err(e) => panic!("quantize {ty}: {e}"),
    }
}

fn dequantize(ty: GgmlType, src: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize_row(ty, src, &mut out).unwrap();
    out
}

/// Offsets of the f16 scale fields of a block, and whether each is
/// non-negative in practice (`d` of Q4_1/Q5_1, the K-quants' `dmin`).
fn f16_fields(ty: GgmlType) -> &'static [(usize, bool)] {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL => &[(0, false)],
        Q4_1 | Q5_1 => &[(0, true), (2, false)],
        Q2_K => &[(80, true), (82, true)],
        Q3_K => &[(108, false)],
        Q4_K | Q5_K => &[(0, true), (2, true)],
        Q6_K => &[(208, false)],
        _ => &[],
    }
}

/// `n` elements of random valid `ty` data: random bytes with sane f16
/// scales for block formats, random finite values for float formats.
fn craft(ty: GgmlType, n: usize, rng: &mut Rng) -> Vec<u8> {
    match ty {
        GgmlType::F32 => {
            return (0..n)
                .flat_map(|_| rng.uniform(-0.15, 0.15).to_le_bytes())
                .collect();
        }
        // Random sign and mantissa, exponent for magnitudes in [2^-6, 2^-1).
        GgmlType::F16 | GgmlType::BF16 => {
            let (exp_lo, mant_bits) = if ty == GgmlType::F16 {
                (9u64, 10)
            } else {
                (121, 7)
            };
            return (0..n)
                .flat_map(|_| {
                    let r = rng.next_u64();
                    let sign = (r >> 63) << 15;
                    let exp = (exp_lo + (r >> 32) % 5) << mant_bits;
                    let mant = r & ((1 << mant_bits) - 1);
                    ((sign | exp | mant) as u16).to_le_bytes()
                })
                .collect();
        }
        _ => {}
    }
    let mut out = vec![0u8; row_bytes(ty, n)];
    rng.fill_bytes(&mut out);
    // K-quant scales multiply 6-bit sub-scales; keep weights of similar size.
    let (lo, hi) = if ty.block_size() == 256 {
        (-4.5, -2.5)
    } else {
        (-3.5, -1.5)
    };
    for blk in out.chunks_exact_mut(ty.type_size()) {
        for &(off, nonneg) in f16_fields(ty) {
            let mag = 10f64.powf(rng.uniform(lo, hi) as f64) as f32;
            let v = if nonneg || rng.next_u64() & 1 == 0 {
                mag
            } else {
                -mag
            };
            blk[off..off + 2].copy_from_slice(&f32_to_f16(v));
        }
    }
    out
}

/// A weight matrix: quantized from random rows where possible, else crafted.
/// Returns (bytes, original f32 rows if quantized).
fn weights(ty: GgmlType, rows: usize, k: usize, rng: &mut Rng) -> (Vec<u8>, Option<Vec<f32>>) {
    let f = weight_f32(rows * k, rng);
    match quantize(ty, &f) {
        Some(q) => (q, Some(f)),
        None => (craft(ty, rows * k, rng), None),
    }
}

fn x_type(ty: GgmlType) -> GgmlType {
    vec_dot_type(ty).expect("a dot kernel")
}

/// Activation rows in `vec_dot_type(ty)`: (bytes, original f32).
fn activations(ty: GgmlType, n: usize, k: usize, rng: &mut Rng) -> (Vec<u8>, Vec<f32>) {
    let f = act_f32(n * k, rng);
    (quantize(x_type(ty), &f).expect("activation quantizer"), f)
}

// ---------------------------------------------------------------------------
// Per-format shared data (built once, used by every tier's tests)
// ---------------------------------------------------------------------------

/// A weight matrix and activation rows, with their dequantized values.
struct Case {
    rows: usize,
    k: usize,
    w: Vec<u8>,
    /// Dequantized weights (`rows * k`).
    wd: Vec<f32>,
    /// Original f32 weights, if the matrix was quantized from them.
    wf: Option<Vec<f32>>,
    n: usize,
    x: Vec<u8>,
    /// Dequantized activations (`n * k`).
    xd: Vec<f32>,
    /// Original f32 activations.
    xf: Vec<f32>,
    /// Scalar-tier `dot(w_r, x_j)` at `[r * n + j]`.
    want: Vec<f32>,
    /// `Σ|w_i·x_i|` of the dequantized rows, at `[r * n + j]`.
    scale: Vec<f64>,
}

impl Case {
    fn new(ty: GgmlType, rows: usize, k: usize, n: usize, seed: u64) -> Case {
        let mut rng = Rng::new(seed ^ (ty.id() as u64) << 32);
        let (w, wf) = weights(ty, rows, k, &mut rng);
        let (x, xf) = activations(ty, n, k, &mut rng);
        let mut c = Case {
            rows,
            k,
            wd: dequantize(ty, &w, rows * k),
            xd: dequantize(x_type(ty), &x, n * k),
            w,
            wf,
            n,
            x,
            xf,
            want: Vec::with_capacity(rows * n),
            scale: Vec::with_capacity(rows * n),
        };
        for r in 0..rows {
            for j in 0..n {
                let (wr, xj) = (c.w_row(ty, r), c.x_row(ty, j));
                let want = vec_dot_with(Tier::Scalar, ty, k, wr, xj).unwrap();
                let scale = abs_dot(&c.wd[r * k..(r + 1) * k], &c.xd[j * k..(j + 1) * k]);
                c.want.push(want);
                c.scale.push(scale);
            }
        }
        c
    }
    fn w_row(&self, ty: GgmlType, r: usize) -> &[u8] {
        let b = row_bytes(ty, self.k);
        &self.w[r * b..(r + 1) * b]
    }
    fn x_row(&self, ty: GgmlType, j: usize) -> &[u8] {
        let b = row_bytes(x_type(ty), self.k);
        &self.x[j * b..(j + 1) * b]
    }
}

fn abs_dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&p, &q)| (p as f64 * q as f64).abs())
        .sum()
}

fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&p, &q)| p as f64 * q as f64).sum()
}

struct Suite {
    /// Row pairs for `vec_dot`, one case (4 rows × 4 activations) per `k`.
    dots: Vec<Case>,
    /// One case per valid gemv shape (1 activation row).
    gemv: Vec<Case>,
    /// The gemm matrix with `max(GEMM_COLS)` activation rows.
    gemm: Case,
}

/// The `k` values for `vec_dot` tests: one block, 16 blocks, the model's.
fn dot_ks(ty: GgmlType) -> Vec<usize> {
    let bs = ty.block_size().max(32);
    let mut ks = vec![bs, 16 * bs, HIDDEN, FFN];
    ks.retain(|k| k.is_multiple_of(ty.block_size()));
    ks.dedup();
    ks
}

/// The model's `k` for this format (576 unless it is not whole blocks).
fn model_k(ty: GgmlType) -> usize {
    if HIDDEN.is_multiple_of(ty.block_size()) {
        HIDDEN
    } else {
        FFN
    }
}

impl Suite {
    fn new(ty: GgmlType) -> Suite {
        Suite {
            dots: dot_ks(ty)
                .into_iter()
                .map(|k| Case::new(ty, 4, k, 4, 0x00D0 + k as u64))
                .collect(),
            gemv: GEMV_SHAPES
                .iter()
                .filter(|&&(_, k)| k.is_multiple_of(ty.block_size()))
                .map(|&(rows, k)| Case::new(ty, rows, k, 1, 0x6E0 + (rows * k) as u64))
                .collect(),
            gemm: Case::new(ty, GEMM_ROWS, model_k(ty), GEMM_COLS[2], 0x6E33),
        }
    }
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// `false` (after printing a note) if this CPU cannot run `t`.
fn runnable(t: Tier, ty: GgmlType, test: &str) -> bool {
    if t.is_supported() {
        return true;
    }
    let why = cpu_features().missing_for(t).unwrap_or("?");
    println!("note: skipping {ty} {test} on tier {t}: this CPU lacks {why}");
    false
}

/// Asserts `got` is finite and within `tol * scale` of `want`.
#[track_caller]
fn assert_close(what: &str, got: f32, want: f32, scale: f64, tol: f64) {
    assert!(
        got.is_finite(),
        "{what}: non-finite {got} (scalar says {want})"
    );
    assert!(want.is_finite(), "{what}: scalar reference is {want}");
    let err = (got as f64 - want as f64).abs();
    let bound = tol * scale + f64::from(f32::MIN_POSITIVE);
    assert!(
        err <= bound,
        "{what}: {got} vs scalar {want}: |err| {err:e} > {tol:e} * Σ|w·x| ({scale:e})"
    );
}

/// Unwraps a tier call; `None` (with a note) if the tier turns out not to run here.
fn tier_ok<T>(r: Result<T, Error>, t: Tier, ty: GgmlType) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(Error::Tier(m)) => {
            println!("note: skipping {ty} on tier {t}: {m}");
            None
        }
        Err(e) => panic!("{ty} on tier {t}: {e}"),
    }
}

fn check_vec_dot(ty: GgmlType, t: Tier, tol: Tol, s: &Suite) {
    for c in &s.dots {
        for r in 0..c.rows {
            for j in 0..c.n {
                let (w, x) = (c.w_row(ty, r), c.x_row(ty, j));
                let Some(got) = tier_ok(vec_dot_with(t, ty, c.k, w, x), t, ty) else {
                    return;
                };
                let what = format!("{ty} vec_dot on {t}, k={} row {r} col {j}", c.k);
                let i = r * c.n + j;
                assert_close(&what, got, c.want[i], c.scale[i], tol.tier);
            }
        }
    }
}

fn check_gemv(ty: GgmlType, t: Tier, tol: Tol, s: &Suite) {
    for c in &s.gemv {
        let mut y = vec![f32::NAN; c.rows];
        if tier_ok(gemv_with(t, ty, &c.w, c.k, 0..c.rows, &c.x, &mut y), t, ty).is_none() {
            return;
        }
        for (r, &got) in y.iter().enumerate() {
            let what = format!("{ty} gemv on {t}, {}x{} row {r}", c.rows, c.k);
            assert_close(&what, got, c.want[r], c.scale[r], tol.tier);
        }
        // A sub-range of rows sees the same rows.
        let (a, b) = (c.rows / 3, c.rows / 3 + 5);
        let mut ys = vec![f32::NAN; b - a];
        gemv_with(t, ty, &c.w, c.k, a..b, &c.x, &mut ys).unwrap();
        assert_eq!(
            ys.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            y[a..b].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{ty} gemv on {t}: rows {a}..{b} differ from the full gemv"
        );
    }
}

/// The 49152-row matrix: (k, weights, activation row). Crafted (cheap) and
/// regenerated per test rather than kept in memory (113 MB as F32).
fn lm_head_data(ty: GgmlType) -> (usize, Vec<u8>, Vec<u8>) {
    let k = if HIDDEN.is_multiple_of(ty.block_size()) {
        HIDDEN
    } else {
        768
    };
    let mut rng = Rng::new(0x1A4E_AD00 ^ ty.id() as u64);
    let w = craft(ty, VOCAB * k, &mut rng);
    let (x, _) = activations(ty, 1, k, &mut rng);
    (k, w, x)
}

/// Scalar-tier outputs of the 49152-row gemv.
struct LmHead {
    want: Vec<f32>,
}

impl LmHead {
    fn new(ty: GgmlType) -> LmHead {
        let (k, w, x) = lm_head_data(ty);
        let mut want = vec![0f32; VOCAB];
        gemv_with(Tier::Scalar, ty, &w, k, 0..VOCAB, &x, &mut want).unwrap();
        LmHead { want }
    }
}

fn check_gemv_lm_head(ty: GgmlType, t: Tier, tol: Tol, reference: &LmHead) {
    let (k, w, x) = lm_head_data(ty);
    let mut y = vec![f32::NAN; VOCAB];
    if tier_ok(gemv_with(t, ty, &w, k, 0..VOCAB, &x, &mut y), t, ty).is_none() {
        return;
    }
    let xd = dequantize(x_type(ty), &x, k);
    let mut wd = vec![0f32; k];
    let rows = w.chunks_exact(row_bytes(ty, k));
    for (r, ((&got, &want), wr)) in y.iter().zip(&reference.want).zip(rows).enumerate() {
        if got.to_bits() == want.to_bits() && got.is_finite() {
            continue; // exact: no need for the (costly) error scale
        }
        dequantize_row(ty, wr, &mut wd).unwrap();
        let what = format!("{ty} gemv on {t}, {VOCAB}x{k} row {r}");
        assert_close(&what, got, want, abs_dot(&wd, &xd), tol.tier);
    }
}

fn check_gemm(ty: GgmlType, t: Tier, tol: Tol, s: &Suite) {
    let c = &s.gemm;
    for n in GEMM_COLS {
        let x = &c.x[..n * row_bytes(x_type(ty), c.k)];
        let mut y = vec![f32::NAN; c.rows * n];
        if tier_ok(gemm_with(t, ty, &c.w, c.k, 0..c.rows, x, n, &mut y), t, ty).is_none() {
            return;
        }
        for r in 0..c.rows {
            for j in 0..n {
                let what = format!("{ty} gemm on {t}, {}x{} n={n} [{r}, {j}]", c.rows, c.k);
                let i = r * c.n + j;
                assert_close(&what, y[r * n + j], c.want[i], c.scale[i], tol.tier);
            }
        }
    }
}

/// Rows of finite values that stress scales: zeros, tiny (f16 scale
/// underflows to zero or a subnormal), f32-subnormal, and large values that
/// the format still represents: |x| below ~1e4 and block sums well inside
/// the f16 range, so every f16 field stays finite (Q8_1's `s = d·Σq` overflows
/// f16 when a block of activations sums past 65504, and then `m·s` is
/// legitimately `0·inf` = NaN).
fn edge_rows(k: usize) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(0xED6E);
    let mut rows = vec![vec![0.0; k], vec![-0.0; k]];
    for s in [1e-30f32, 1e-40, 3e-6, 1e3] {
        rows.push((0..k).map(|_| rng.normal() * s).collect());
    }
    // Mixed: one huge element per block among tiny ones, and sign-alternating maxima.
    rows.push(
        (0..k)
            .map(|i| {
                if i % 32 == 5 {
                    9.0e3
                } else {
                    rng.normal() * 1e-6
                }
            })
            .collect(),
    );
    rows.push(
        (0..k)
            .map(|i| if i % 2 == 0 { 1e3 } else { -1e3 })
            .collect(),
    );
    rows.push((0..k).map(|i| if i % 7 == 0 { 1.0 } else { 0.0 }).collect());
    rows
}

fn check_edges(ty: GgmlType, t: Tier, tol: Tol) {
    let k = model_k(ty);
    let rows = edge_rows(k);
    // Weights: the edge rows (quantized, or crafted extremes when Ember has
    // no quantizer for the format); activations: the same edge rows.
    let mut rng = Rng::new(0xED6E_0001);
    let w: Vec<u8> = rows
        .iter()
        .flat_map(|r| quantize(ty, r).unwrap_or_else(|| craft(ty, k, &mut rng)))
        .collect();
    let xt = x_type(ty);
    let x: Vec<u8> = rows
        .iter()
        .flat_map(|r| quantize(xt, r).expect("activation quantizer"))
        .collect();
    let (m, n) = (rows.len(), rows.len());
    let wd = dequantize(ty, &w, m * k);
    let xd = dequantize(xt, &x, n * k);
    let (wb, xb) = (row_bytes(ty, k), row_bytes(xt, k));
    let mut yg = vec![f32::NAN; m * n];
    if tier_ok(gemm_with(t, ty, &w, k, 0..m, &x, n, &mut yg), t, ty).is_none() {
        return;
    }
    for j in 0..n {
        let xj = &x[j * xb..(j + 1) * xb];
        let mut yv = vec![f32::NAN; m];
        gemv_with(t, ty, &w, k, 0..m, xj, &mut yv).unwrap();
        for r in 0..m {
            let wr = &w[r * wb..(r + 1) * wb];
            let want = vec_dot_with(Tier::Scalar, ty, k, wr, xj).unwrap();
            let got = vec_dot_with(t, ty, k, wr, xj).unwrap();
            let scale = abs_dot(&wd[r * k..(r + 1) * k], &xd[j * k..(j + 1) * k]);
            let what = format!("{ty} edge rows on {t}, w{r}·x{j}");
            assert_close(&format!("{what} vec_dot"), got, want, scale, tol.tier);
            assert_close(&format!("{what} gemv"), yv[r], want, scale, tol.tier);
            assert_close(
                &format!("{what} gemm"),
                yg[r * n + j],
                want,
                scale,
                tol.tier,
            );
        }
    }
}

fn check_quant_error(ty: GgmlType, t: Tier, tol: Tol, s: &Suite) {
    let mut worst = (0f64, 0usize);
    for c in &s.dots {
        let k = c.k;
        for r in 0..c.rows {
            // Without a quantizer the "original" weights are the crafted
            // blocks' values: only the activation quantization error remains.
            let w = match &c.wf {
                Some(wf) => &wf[r * k..(r + 1) * k],
                None => &c.wd[r * k..(r + 1) * k],
            };
            for j in 0..c.n {
                let x = &c.xf[j * k..(j + 1) * k];
                let Some(got) = tier_ok(
                    vec_dot_with(t, ty, k, c.w_row(ty, r), c.x_row(ty, j)),
                    t,
                    ty,
                ) else {
                    return;
                };
                assert!(got.is_finite(), "{ty} on {t}: non-finite dot {got}");
                let exact = dot64(w, x);
                let rel = (got as f64 - exact).abs() / abs_dot(w, x);
                if rel > worst.0 {
                    worst = (rel, k);
                }
                let bound = if k <= ty.block_size().max(32) {
                    tol.quant_block
                } else {
                    tol.quant_row
                };
                assert!(
                    rel <= bound,
                    "{ty} on {t}, k={k} row {r} col {j}: quantized dot {got} vs f32 dot {exact}: \
                     error {rel:.3e} of Σ|w·x| > {bound:.1e}"
                );
            }
        }
    }
    println!(
        "{ty} on {t}: worst quantized-dot error {:.3e} of Σ|w·x| (k={})",
        worst.0, worst.1
    );
}

// ---------------------------------------------------------------------------
// The macro
// ---------------------------------------------------------------------------

/// `conformance!(module, Type, tier = T, quant = Q)`: the suite for weights of
/// `GgmlType::Type` on every tier. `T` bounds `|tier - scalar|` and `Q` bounds
/// `|dot_q - dot_f32|`, both relative to `Σ|w_i·x_i|` (see the module docs).
macro_rules! conformance {
    (
        $name:ident, $ty:ident,
        tier = $tier_tol:expr,
        quant = ($quant_block:expr, $quant_row:expr) $(,)?
    ) => {
        mod $name {
            use super::*;

            const TY: GgmlType = GgmlType::$ty;
            const TOL: Tol = Tol {
                tier: $tier_tol,
                quant_block: $quant_block,
                quant_row: $quant_row,
            };

            fn suite() -> &'static Suite {
                static S: OnceLock<Suite> = OnceLock::new();
                S.get_or_init(|| Suite::new(TY))
            }

            fn lm_head() -> &'static LmHead {
                static S: OnceLock<LmHead> = OnceLock::new();
                S.get_or_init(|| LmHead::new(TY))
            }

            conformance!(@tier scalar, Scalar);
            conformance!(@tier avx2, Avx2);
            conformance!(@tier avx512, Avx512);
            conformance!(@tier neon, Neon);
            conformance!(@tier dotprod, Dotprod);
            conformance!(@tier i8mm, I8mm);
            conformance!(@tier simd128, Simd128);
        }
    };
    (@tier $tname:ident, $tier:ident) => {
        mod $tname {
            use super::*;
            const T: Tier = Tier::$tier;

            #[test]
            fn vec_dot() {
                if runnable(T, TY, "vec_dot") {
                    check_vec_dot(TY, T, TOL, suite());
                }
            }

            #[test]
            fn gemv() {
                if runnable(T, TY, "gemv") {
                    check_gemv(TY, T, TOL, suite());
                }
            }

            #[test]
            fn gemv_lm_head() {
                if runnable(T, TY, "gemv_lm_head") {
                    check_gemv_lm_head(TY, T, TOL, lm_head());
                }
            }

            #[test]
            fn gemm() {
                if runnable(T, TY, "gemm") {
                    check_gemm(TY, T, TOL, suite());
                }
            }

            #[test]
            fn edge_rows_stay_finite() {
                if runnable(T, TY, "edge rows") {
                    check_edges(TY, T, TOL);
                }
            }

            #[test]
            fn quantized_dot_tracks_f32_dot() {
                if runnable(T, TY, "quantization error") {
                    check_quant_error(TY, T, TOL, suite());
                }
            }
        }
    };
}

// Tolerances, all relative to Σ|w_i·x_i| (see docs/kernels.md):
//   tier  = |tier - scalar| bound (float reassociation: per-block f32 sums,
//           FMA, lane order; F16/BF16/F32 sum whole rows in f32 lanes, the
//           scalar reference in f64);
//   quant = |dot(quantized w, quantized x) - f32 dot| bound, for one-block
//           rows and for rows of 16+ blocks (observed worst × ~1.5; the data
//           are fixed, so these are regression bounds, not statistics).
//           IQ4_NL has no quantizer: its weights are crafted, so only the
//           activations' Q8_0 error shows.
// quant = (one-block rows, rows of 16+ blocks).
conformance!(q4_0, Q4_0, tier = 1e-5, quant = (0.15, 0.05));
conformance!(q4_1, Q4_1, tier = 1e-5, quant = (0.10, 0.04));
conformance!(q5_0, Q5_0, tier = 1e-5, quant = (0.20, 0.025));
conformance!(q5_1, Q5_1, tier = 1e-5, quant = (0.05, 0.03));
conformance!(q8_0, Q8_0, tier = 1e-5, quant = (0.02, 0.005));
conformance!(q2_k, Q2_K, tier = 1e-5, quant = (0.15, 0.06));
conformance!(q3_k, Q3_K, tier = 1e-5, quant = (0.10, 0.05));
conformance!(q4_k, Q4_K, tier = 1e-5, quant = (0.05, 0.015));
conformance!(q5_k, Q5_K, tier = 1e-5, quant = (0.03, 0.012));
conformance!(q6_k, Q6_K, tier = 1e-5, quant = (0.02, 0.005));
conformance!(iq4_nl, IQ4_NL, tier = 1e-5, quant = (0.005, 0.005));
conformance!(f16, F16, tier = 1e-4, quant = (4e-4, 1.5e-4));
conformance!(bf16, BF16, tier = 1e-4, quant = (3e-3, 1e-3));
conformance!(f32, F32, tier = 1e-4, quant = (1e-6, 1e-6));

#[test]
fn every_tier_is_covered() {
    for t in Tier::ALL {
        assert!(TIERS.contains(&t), "tier {t} has no conformance suite");
    }
    println!("CPU features: {}", cpu_features());
}
