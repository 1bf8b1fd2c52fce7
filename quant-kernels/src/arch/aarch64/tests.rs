//! AArch64 kernels against the scalar reference, on every AArch64 tier the
//! CPU (or qemu's `-cpu`) supports.
//!
//! Tolerances (absolute error of the dot against the scalar reference, as a
//! multiple of `Σ|w_i·x_i|` over the dequantized rows, plus `1e-6`):
//! * integer formats (`Q4_0` … `Q8_0`, `Q4_K`, `Q5_K`, `Q6_K`): `2e-6` — the
//!   integer sums are exact; only the order of the f32 block accumulation
//!   (4 lanes vs one scalar, a per-block `d` vs ggml's 8 lane sums) differs.
//! * `F16`, `F32`: `1e-5` — f32 lane sums vs the reference's f64 sum.
//!
//! Gemvs must equal the same tier's vec dot bit for bit; the quantizers must
//! equal the scalar ones byte for byte.

use crate::blocks::QK_K;
use crate::dispatch::{act_quant_kernel, kernels, quant_kernel};
use crate::{scalar, vec_dot_type, GgmlType, Tier};

/// Deterministic xorshift stream.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
    }
}

/// Activations/weights with a few outliers and, every 7th row, a constant run.
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n)
        .map(|i| {
            let v = r.f();
            if i % 97 == 13 {
                v * 8.0
            } else if seed % 7 == 3 && i % 64 < 8 {
                0.25
            } else {
                v
            }
        })
        .collect()
}

fn quant(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len() as u64).unwrap() as usize];
    (scalar::quant_fn(ty).unwrap())(x, &mut out);
    out
}

fn deq(ty: GgmlType, q: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    (scalar::dequant_fn(ty).unwrap())(q, &mut out);
    out
}

/// The AArch64 tiers this CPU runs.
fn tiers() -> Vec<Tier> {
    [Tier::Neon, Tier::Dotprod, Tier::I8mm]
        .into_iter()
        .filter(|t| t.is_supported())
        .collect()
}

/// Types with a vec dot of their own on `t`, and the tolerance.
fn dot_types(t: Tier) -> Vec<(GgmlType, f32)> {
    use GgmlType::*;
    let int = [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K].map(|ty| (ty, 2e-6));
    let mut v = int.to_vec();
    if t == Tier::Neon {
        v.extend([(F16, 1e-5), (F32, 1e-5)]);
    }
    v
}

fn sizes(ty: GgmlType) -> &'static [usize] {
    match ty.block_size() {
        1 => &[1, 7, 15, 16, 17, 33, 576, 1536, 4096],
        32 => &[32, 64, 96, 576, 1536, 4096],
        _ => &[256, 512, 1536, 4096],
    }
}

fn check_dot(t: Tier, ty: GgmlType, tol: f32, n: usize, w: &[u8], x: &[u8], what: &str) {
    let xt = vec_dot_type(ty).unwrap();
    let got = (kernels(t, ty).unwrap().vec_dot)(n, w, x);
    let want = (scalar::vec_dot_fn(ty).unwrap())(n, w, x);
    let (wd, xd) = (deq(ty, w, n), deq(xt, x, n));
    let mag: f32 = wd.iter().zip(&xd).map(|(a, b)| (a * b).abs()).sum();
    assert!(got.is_finite(), "{t} {ty} n={n} {what}: {got}");
    let err = (got - want).abs();
    assert!(
        err <= tol * mag + 1e-6,
        "{t} {ty} n={n} {what}: got {got}, scalar {want}, err {err:e}, Σ|wx| {mag}"
    );
}

#[test]
fn own_kernels_are_used() {
    for t in tiers() {
        for (ty, _) in dot_types(t) {
            let k = kernels(t, ty).unwrap().vec_dot as usize;
            let s = scalar::vec_dot_fn(ty).unwrap() as usize;
            assert_ne!(k, s, "{t} {ty} fell back to scalar");
        }
        for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
            let k = quant_kernel(t, ty).unwrap() as usize;
            assert_ne!(k, scalar::quant_fn(ty).unwrap() as usize, "{t} {ty} quant");
        }
    }
}

#[test]
fn vec_dot_matches_scalar() {
    for t in tiers() {
        for (ty, tol) in dot_types(t) {
            let xt = vec_dot_type(ty).unwrap();
            for &n in sizes(ty) {
                for seed in 0..4u64 {
                    let w = quant(ty, &data(n, seed * 2 + 1));
                    let x = quant(xt, &data(n, seed * 2 + 2));
                    check_dot(t, ty, tol, n, &w, &x, "quantized data");
                }
            }
        }
    }
}

/// Random bits in every quant field (full ranges: `-128` activations, `0xFF`
/// nibbles, negative `Q6_K` scales), scales forced to 1.
#[test]
fn vec_dot_full_range_bits() {
    use GgmlType::*;
    const ONE: [u8; 2] = [0x00, 0x3C];
    for t in tiers() {
        for (ty, tol) in dot_types(t) {
            if matches!(ty, F16 | F32) {
                continue;
            }
            let xt = vec_dot_type(ty).unwrap();
            for &n in sizes(ty) {
                let mut r = Rng::new(n as u64 + ty as u64);
                let mut w: Vec<u8> = (0..ty.row_bytes(n as u64).unwrap())
                    .map(|_| r.next() as u8)
                    .collect();
                let mut x: Vec<u8> = (0..xt.row_bytes(n as u64).unwrap())
                    .map(|_| r.next() as u8)
                    .collect();
                for b in w.chunks_exact_mut(ty.type_size()) {
                    match ty {
                        Q4_0 | Q5_0 | Q8_0 => b[..2].copy_from_slice(&ONE),
                        Q4_1 | Q5_1 | Q4_K | Q5_K => {
                            b[..2].copy_from_slice(&ONE);
                            b[2..4].copy_from_slice(&ONE);
                        }
                        Q6_K => b[208..].copy_from_slice(&ONE),
                        _ => unreachable!(),
                    }
                }
                for b in x.chunks_exact_mut(xt.type_size()) {
                    match xt {
                        Q8_0 => b[..2].copy_from_slice(&ONE),
                        Q8_1 => {
                            b[..2].copy_from_slice(&ONE);
                            b[2..4].copy_from_slice(&ONE);
                        }
                        Q8_K => {
                            b[..4].copy_from_slice(&1.0f32.to_le_bytes());
                            for j in 0..QK_K / 16 {
                                let s: i32 = b[4 + 16 * j..4 + 16 * j + 16]
                                    .iter()
                                    .map(|&q| q as i8 as i32)
                                    .sum();
                                let at = 4 + QK_K + 2 * j;
                                b[at..at + 2].copy_from_slice(&(s as i16).to_le_bytes());
                            }
                        }
                        _ => unreachable!(),
                    }
                }
                check_dot(t, ty, tol, n, &w, &x, "random bits");
            }
        }
    }
}

#[test]
fn gemv_equals_vec_dot() {
    use GgmlType::*;
    for t in tiers() {
        for ty in [Q4_0, Q4_1, Q8_0, Q5_0, Q4_K, Q6_K] {
            let xt = vec_dot_type(ty).unwrap();
            for k in [ty.block_size().max(32), 1536] {
                let rows = 11;
                let w = quant(ty, &data(k * rows, k as u64));
                let x = quant(xt, &data(k, 99));
                let w_row = ty.row_bytes(k as u64).unwrap() as usize;
                for range in [0..rows, 0..1, 1..6, 3..11, 2..10] {
                    let mut y = vec![f32::NAN; range.len()];
                    crate::gemv_with(t, ty, &w, k, range.clone(), &x, &mut y).unwrap();
                    for (i, r) in range.clone().enumerate() {
                        let want =
                            crate::vec_dot_with(t, ty, k, &w[r * w_row..(r + 1) * w_row], &x)
                                .unwrap();
                        assert_eq!(y[i].to_bits(), want.to_bits(), "{t} {ty} k={k} row {r}");
                    }
                }
            }
        }
    }
}

/// Rows that stress rounding: exact halves after scaling, equal `±max`,
/// zero blocks, tiny and huge magnitudes.
fn quant_rows() -> Vec<Vec<f32>> {
    let n = 1024;
    let mut rows: Vec<Vec<f32>> = (0..6).map(|s| data(n, 1000 + s)).collect();
    // amax = 127 → d = 1 (Q8_0/Q8_1), iscale = -1 (Q8_K): every x.5 is a tie.
    rows.push(
        (0..n)
            .map(|i| match i % 32 {
                0 => 127.0,
                j => (j as f32 - 16.0) * 4.5 + 0.5,
            })
            .collect(),
    );
    // -max before +max (Q8_K keeps the first), then the reverse.
    rows.push((0..n).map(|i| [0.5, -3.0, 1.0, 3.0][i % 4]).collect());
    rows.push((0..n).map(|i| [0.5, 3.0, 1.0, -3.0][i % 4]).collect());
    rows.push(vec![0.0; n]);
    rows.push(
        (0..n)
            .map(|i| if i < 300 { 0.0 } else { 1e-30 * (i % 5) as f32 })
            .collect(),
    );
    rows.push(data(n, 77).iter().map(|v| v * 3e4).collect());
    rows
}

#[test]
fn quantize_bit_exact() {
    for t in tiers() {
        for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
            let f = quant_kernel(t, ty).unwrap();
            let fa = act_quant_kernel(t, ty).unwrap();
            let sa = scalar::act_quant_fn(ty).unwrap();
            for (i, x) in quant_rows().iter().enumerate() {
                let want = quant(ty, x);
                let mut got = vec![0xAAu8; want.len()];
                f(x, &mut got);
                assert!(got == want, "{t} {ty} row set {i}");
                // The run-time activation flavour against its scalar version.
                let mut want = vec![0u8; want.len()];
                sa(x, &mut want);
                let mut got = vec![0xAAu8; want.len()];
                fa(x, &mut got);
                assert!(got == want, "{t} {ty} (activation) row set {i}");
            }
        }
    }
}

/// Prints the tier in use; with `EMBER_EXPECT_TIER` set, asserts it (CI runs
/// this under qemu with `-cpu cortex-a72` → `neon`, `cortex-a76` → `dotprod`,
/// `max` → `i8mm`).
#[test]
fn expect_tier() {
    let t = crate::tier();
    println!(
        "ember-quant tier: {t} (features: {})",
        crate::cpu_features()
    );
    if let Ok(want) = std::env::var("EMBER_EXPECT_TIER") {
        let want = want.trim().to_ascii_lowercase();
        if !want.is_empty() {
            assert_eq!(t.name(), want, "features: {}", crate::cpu_features());
        }
    }
}

#[test]
fn gemm_matches_scalar() {
    use GgmlType::*;
    for t in tiers() {
        for ty in [Q8_0, Q4_0, Q4_1, Q4_K] {
            let xt = vec_dot_type(ty).unwrap();
            for k in [ty.block_size().max(32), 576.max(ty.block_size() * 3)] {
                let (m, n) = (5, 7);
                let w = quant(ty, &data(k * m, k as u64 + 5));
                let x = quant(xt, &data(k * n, k as u64 + 6));
                let (w_row, x_row) = (
                    ty.row_bytes(k as u64).unwrap() as usize,
                    xt.row_bytes(k as u64).unwrap() as usize,
                );
                for (rows, cols) in [(0..m, n), (0..2, 2), (1..4, 3), (4..5, 1), (0..m, 1)] {
                    let mut y = vec![f32::NAN; rows.len() * cols];
                    let xs = &x[..cols * x_row];
                    crate::gemm_with(t, ty, &w, k, rows.clone(), xs, cols, &mut y).unwrap();
                    for (i, r) in rows.clone().enumerate() {
                        let wr = &w[r * w_row..(r + 1) * w_row];
                        for j in 0..cols {
                            let xr = &xs[j * x_row..(j + 1) * x_row];
                            let got = y[i * cols + j];
                            let want = (scalar::vec_dot_fn(ty).unwrap())(k, wr, xr);
                            let mag: f32 = deq(ty, wr, k)
                                .iter()
                                .zip(deq(xt, xr, k))
                                .map(|(a, b)| (a * b).abs())
                                .sum();
                            assert!(
                                (got - want).abs() <= 2e-6 * mag + 1e-6,
                                "{t} {ty} k={k} ({r},{j}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn i8mm_gemm_is_used() {
    if Tier::I8mm.is_supported() {
        for ty in [GgmlType::Q8_0, GgmlType::Q4_0] {
            assert!(kernels(Tier::I8mm, ty).unwrap().gemm.is_some(), "{ty}");
        }
    }
}
