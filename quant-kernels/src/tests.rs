//! Crate-level tests of the public API (the scalar reference and dispatch).

use super::*;
use crate::blocks::*;
use crate::fp::{f16_to_f32, f32_to_f16};

/// Deterministic pseudo-random data with a few outliers.
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
            let v = (u * 2.0 - 1.0) as f32;
            if i % 97 == 13 {
                v * 8.0
            } else {
                v
            }
        })
        .collect()
}

fn quant(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len() as u64).unwrap() as usize];
    quantize_row(ty, x, &mut out).unwrap();
    out
}

fn dequant(ty: GgmlType, q: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize_row(ty, q, &mut out).unwrap();
    out
}

const QUANTIZABLE: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q8_1,
    GgmlType::Q8_K,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// RMS error of a round trip relative to the data's RMS.
fn rel_rms(a: &[f32], b: &[f32]) -> f32 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
    (num / den).sqrt() as f32
}

#[test]
fn round_trip_error_bounds() {
    let n = 1024;
    let x = data(n, 7);
    for &ty in QUANTIZABLE {
        let y = dequant(ty, &quant(ty, &x), n);
        let e = rel_rms(&x, &y);
        // Observed on this data (with x8 outliers every 97 elements) plus ~30%.
        let bound = match ty {
            GgmlType::F32 => 0.0,
            GgmlType::F16 => 5e-4,
            GgmlType::BF16 => 3e-3,
            GgmlType::Q8_0 | GgmlType::Q8_1 => 0.012,
            GgmlType::Q8_K => 0.024,
            GgmlType::Q6_K => 0.032,
            GgmlType::Q5_1 | GgmlType::Q5_K => 0.06,
            GgmlType::Q5_0 => 0.095,
            GgmlType::Q4_1 | GgmlType::Q4_K => 0.12,
            GgmlType::Q4_0 => 0.18,
            GgmlType::Q3_K => 0.3,
            GgmlType::Q2_K => 0.45,
            _ => unreachable!(),
        };
        assert!(e <= bound, "{ty}: relative rms error {e} > {bound}");
    }
}

#[test]
fn legacy_quants_bound_each_element_by_half_a_step() {
    let x = data(256, 3);
    for ty in [GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::Q5_1] {
        let q = quant(ty, &x);
        let y = dequant(ty, &q, x.len());
        for (bi, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let (mn, mx) = xb
                .iter()
                .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
            let step = match ty {
                GgmlType::Q8_0 => amax / 127.0,
                GgmlType::Q4_1 => (mx - mn) / 15.0,
                _ => (mx - mn) / 31.0,
            };
            // Half a step, plus slack for the f16 rounding of d and m.
            let tol = 0.5 * step + 2e-3 * amax + 1e-6;
            for (a, b) in xb.iter().zip(yb) {
                assert!((a - b).abs() <= tol, "{ty} block {bi}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn known_q4_0_block() {
    // d = 0.5, element j = j - 8 for the low nibbles (j < 16) and the high
    // nibbles hold 15 - j.
    let mut b = BlockQ4_0 {
        d: f32_to_f16(0.5),
        qs: [0; 16],
    };
    for j in 0..16 {
        b.qs[j] = (j as u8) | ((15 - j as u8) << 4);
    }
    let y = dequant(GgmlType::Q4_0, bytemuck::bytes_of(&b), 32);
    for j in 0..16 {
        assert_eq!(y[j], (j as f32 - 8.0) * 0.5);
        assert_eq!(y[j + 16], (7.0 - j as f32) * 0.5);
    }
}

#[test]
fn known_q5_0_block_fifth_bit() {
    // All nibbles 0; the 5th bit set only for elements 3 and 20.
    let qh: u32 = (1 << 3) | (1 << 20);
    let b = BlockQ5_0 {
        d: f32_to_f16(1.0),
        qh: qh.to_le_bytes(),
        qs: [0; 16],
    };
    let y = dequant(GgmlType::Q5_0, bytemuck::bytes_of(&b), 32);
    for (i, &v) in y.iter().enumerate() {
        let want = if i == 3 || i == 20 { 0.0 } else { -16.0 };
        assert_eq!(v, want, "element {i}");
    }
}

#[test]
fn known_q8_0_quantization() {
    let mut x = [0f32; 32];
    for (i, v) in x.iter_mut().enumerate() {
        *v = i as f32 - 16.0; // amax 16 -> d = 16/127
    }
    let q = quant(GgmlType::Q8_0, &x);
    let b: &[BlockQ8_0] = view(&q).unwrap();
    assert_eq!(b[0].d, f32_to_f16(16.0 / 127.0));
    assert_eq!(b[0].qs[0], -127);
    assert_eq!(b[0].qs[16], 0);
    assert_eq!(b[0].qs[17], 8); // 1 * 127/16 = 7.94 -> 8
    assert_eq!(b[0].qs[31], 119); // 15 * 7.9375 = 119.06
}

#[test]
fn q8_1_sum_and_q8_k_bsums() {
    let x = data(256, 11);
    let q = quant(GgmlType::Q8_1, &x);
    for b in view::<BlockQ8_1>(&q).unwrap() {
        let sum: i32 = b.qs.iter().map(|&v| v as i32).sum();
        let want = f32_to_f16(sum as f32 * f16_to_f32(b.d)); // as ggml: sum * d (f32 d)
                                                             // ggml uses the unrounded f32 d; allow one f16 ulp.
        let got = u16::from_le_bytes(b.s) as i32;
        assert!((got - u16::from_le_bytes(want) as i32).abs() <= 1);
    }
    let q = quant(GgmlType::Q8_K, &x);
    let b = &view::<BlockQ8K>(&q).unwrap()[0];
    for j in 0..16 {
        let sum: i32 = b.qs[16 * j..16 * j + 16].iter().map(|&v| v as i32).sum();
        assert_eq!(
            i16::from_le_bytes([b.bsums[2 * j], b.bsums[2 * j + 1]]) as i32,
            sum
        );
    }
    assert!(b.qs.iter().any(|&v| v == 127 || v == -127));
}

#[test]
fn zero_rows_quantize_to_zero() {
    let x = [0f32; 256];
    for &ty in QUANTIZABLE {
        let y = dequant(ty, &quant(ty, &x), 256);
        assert!(y.iter().all(|&v| v == 0.0), "{ty}");
    }
}

#[test]
fn bf16_and_f16_rows() {
    let x = [1.0f32, -2.5, 3.140625, f32::INFINITY, 65504.0, 1e-8];
    let q = quant(GgmlType::F16, &x);
    let y = dequant(GgmlType::F16, &q, x.len());
    assert_eq!(&y[..5], &x[..5]);
    let q = quant(GgmlType::BF16, &x);
    let y = dequant(GgmlType::BF16, &q, x.len());
    assert_eq!(&y[..4], &x[..4]);
    let nan = quant(GgmlType::BF16, &[f32::NAN]);
    assert!(dequant(GgmlType::BF16, &nan, 1)[0].is_nan());
}

/// dot(dequantize(w), dequantize(x)) in f64.
fn reference_dot(ty: GgmlType, w: &[u8], x: &[u8], n: usize) -> f64 {
    let xt = vec_dot_type(ty).unwrap();
    let a = dequant(ty, w, n);
    let b = dequant(xt, x, n);
    a.iter().zip(&b).map(|(&p, &q)| p as f64 * q as f64).sum()
}

const DOT_TYPES: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::IQ4_NL,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// A weight row of type `ty`: quantized if we can, else random IQ4_NL bytes.
fn weight_row(ty: GgmlType, n: usize, seed: u64) -> Vec<u8> {
    let w = data(n, seed);
    if ty == GgmlType::IQ4_NL {
        let mut out = vec![0u8; ty.row_bytes(n as u64).unwrap() as usize];
        for (b, xs) in blocks_mut::<BlockIq4Nl>(&mut out)
            .iter_mut()
            .zip(w.chunks(32))
        {
            b.d = f32_to_f16(0.01);
            for (j, q) in b.qs.iter_mut().enumerate() {
                *q = ((xs[j].to_bits() >> 7) & 0xFF) as u8;
            }
        }
        return out;
    }
    quant(ty, &w)
}

#[test]
fn scalar_vec_dot_matches_dequantized_dot() {
    let n = 512;
    for &ty in DOT_TYPES {
        let xt = vec_dot_type(ty).unwrap();
        let w = weight_row(ty, n, 21);
        let x = quant(xt, &data(n, 22));
        let got = vec_dot_with(Tier::Scalar, ty, n, &w, &x).unwrap() as f64;
        let want = reference_dot(ty, &w, &x, n);
        let scale: f64 = dequant(ty, &w, n)
            .iter()
            .zip(dequant(xt, &x, n))
            .map(|(a, b)| (a * b).abs() as f64)
            .sum();
        // Q*_1 dots use the f16-rounded s = d*sum(q): allow that error.
        let tol =
            1e-5 * scale + 1e-3 * scale * f64::from(matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1));
        assert!(
            (got - want).abs() <= tol + 1e-6,
            "{ty}: {got} vs {want} (tol {tol})"
        );
    }
}

#[test]
fn dispatched_tiers_agree_with_scalar() {
    let n = 1024;
    for &ty in DOT_TYPES {
        let xt = vec_dot_type(ty).unwrap();
        let w = weight_row(ty, n, 5);
        let x = quant(xt, &data(n, 6));
        let s = vec_dot_with(Tier::Scalar, ty, n, &w, &x).unwrap();
        for t in Tier::ALL {
            match vec_dot_with(t, ty, n, &w, &x) {
                Ok(v) => {
                    let tol = 1e-4 * s.abs().max(1.0);
                    assert!((v - s).abs() <= tol, "{ty} on {t}: {v} vs scalar {s}");
                }
                Err(Error::Tier(_)) => assert!(dispatch::check_tier(t).is_err()),
                Err(e) => panic!("{ty} on {t}: {e}"),
            }
        }
        assert!(vec_dot(ty, n, &w, &x).is_ok());
    }
}

#[test]
fn gemv_and_gemm_match_vec_dot() {
    let k = 256;
    let m = 5;
    let nb = 3;
    for &ty in DOT_TYPES {
        let xt = vec_dot_type(ty).unwrap();
        let wrow = ty.row_bytes(k as u64).unwrap() as usize;
        let xrow = xt.row_bytes(k as u64).unwrap() as usize;
        let mut w = Vec::new();
        for r in 0..m {
            w.extend(weight_row(ty, k, 100 + r as u64));
        }
        let mut x = Vec::new();
        for j in 0..nb {
            x.extend(quant(xt, &data(k, 200 + j as u64)));
        }
        let x0 = &x[..xrow];
        let mut y = vec![0f32; 3];
        gemv(ty, &w, k, 1..4, x0, &mut y).unwrap();
        for (i, r) in (1..4).enumerate() {
            let d = vec_dot(ty, k, &w[r * wrow..(r + 1) * wrow], x0).unwrap();
            assert_eq!(y[i], d, "{ty} gemv row {r}");
        }
        // gemm may tile the batch differently (the AVX-512 VNNI gemm keeps
        // one lane per weight row): same exact integer block sums, another
        // f32 accumulation order, so within the conformance tolerance
        // `1e-5 * Σ|w_i·x_i|` of vec_dot rather than bit-identical.
        let mut yy = vec![0f32; 2 * nb];
        gemm(ty, &w, k, 3..5, &x, nb, &mut yy).unwrap();
        for (i, r) in (3..5).enumerate() {
            for j in 0..nb {
                let wr = &w[r * wrow..(r + 1) * wrow];
                let xr = &x[j * xrow..(j + 1) * xrow];
                let d = vec_dot(ty, k, wr, xr).unwrap();
                let scale: f64 = dequant(ty, wr, k)
                    .iter()
                    .zip(dequant(xt, xr, k))
                    .map(|(a, b)| (a * b).abs() as f64)
                    .sum();
                let err = (yy[i * nb + j] as f64 - d as f64).abs();
                assert!(
                    err <= 1e-5 * scale + 1e-30,
                    "{ty} gemm row {r} col {j}: {} vs {d} (err {err:e}, scale {scale:e})",
                    yy[i * nb + j]
                );
            }
        }
        // Empty ranges are fine.
        gemv(ty, &w, k, 2..2, x0, &mut []).unwrap();
        gemm(ty, &w, k, 0..0, &x, nb, &mut []).unwrap();
    }
}

/// On every tier here, `gemm_in` gives the bits of `gemm` whatever its
/// scratch: none, all the columns at once, a few columns (misaligned), and
/// with k in several chunks with a ragged tail (k = 1000: chunks of 512 and
/// 488, not a multiple of 8). Against the scalar tier within tolerance.
#[test]
fn gemm_scratch_never_changes_the_result() {
    let ty = GgmlType::F16;
    for (k, m, nb) in [(576, 19, 37), (1000, 9, 20), (1536, 8, 5)] {
        let mut w = Vec::new();
        for r in 0..m {
            w.extend(weight_row(ty, k, 300 + r as u64));
        }
        let mut x = Vec::new();
        for j in 0..nb {
            x.extend(quant(ty, &data(k, 400 + j as u64)));
        }
        let mut reference = vec![0f32; m * nb];
        gemm_with(Tier::Scalar, ty, &w, k, 0..m, &x, nb, &mut reference).unwrap();
        for t in Tier::ALL.into_iter().filter(|t| t.is_supported()) {
            let mut want = vec![0f32; m * nb];
            gemm_with(t, ty, &w, k, 0..m, &x, nb, &mut want).unwrap();
            for (i, (&a, &b)) in want.iter().zip(&reference).enumerate() {
                let ok = (a - b).abs() <= 1e-4 * b.abs().max(1.0);
                assert!(ok, "{t} k={k} [{i}]: {a} vs scalar {b}");
            }
            let full = gemm_scratch_len(ty, k, nb);
            let step = full.saturating_sub(16) / nb.max(1);
            for len in [0, full, full + 5, 17 * step + 3, 5 * step, step] {
                let mut scratch = vec![f32::NAN; len + 1];
                let mut y = vec![f32::NAN; m * nb];
                // Offset by one f32 so the scratch is not 64-byte aligned.
                gemm_in_with(t, ty, &w, k, 0..m, &x, nb, &mut y, &mut scratch[1..]).unwrap();
                assert_eq!(
                    y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{t} k={k} n={nb}: scratch of {len} changed the result"
                );
            }
        }
    }
}

#[test]
fn length_validation() {
    let ty = GgmlType::Q4_0;
    let mut out = [0f32; 32];
    assert_eq!(
        dequantize_row(ty, &[0u8; 17], &mut out),
        Err(Error::BufferSize {
            what: "dequantize_row: source bytes",
            expected: 18,
            got: 17
        })
    );
    assert_eq!(
        dequantize_row(ty, &[0u8; 18], &mut out[..31]),
        Err(Error::RowLength { ty, n: 31 })
    );
    assert!(matches!(
        dequantize_row(GgmlType::IQ2_XXS, &[0u8; 66], &mut [0f32; 256]),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        quantize_row(ty, &[0f32; 32], &mut [0u8; 19]),
        Err(Error::BufferSize {
            expected: 18,
            got: 19,
            ..
        })
    ));
    assert!(matches!(
        quantize_row(GgmlType::Q4_K, &[0f32; 255], &mut [0u8; 144]),
        Err(Error::RowLength { n: 255, .. })
    ));
    assert!(matches!(
        quantize_row(GgmlType::IQ4_NL, &[0f32; 32], &mut [0u8; 18]),
        Err(Error::Unsupported { op: "quantize", .. })
    ));

    let w = [0u8; 18 * 4]; // 2 rows of k = 64
    let x = [0u8; 34 * 2];
    assert!(matches!(
        vec_dot(ty, 64, &w[..35], &x),
        Err(Error::BufferSize { .. })
    ));
    assert!(matches!(
        vec_dot(ty, 64, &w[..36], &x[..67]),
        Err(Error::BufferSize { .. })
    ));
    assert!(matches!(
        vec_dot(ty, 48, &w[..36], &x),
        Err(Error::RowLength { .. })
    ));
    assert!(matches!(
        vec_dot(GgmlType::Q8_K, 256, &[], &[]),
        Err(Error::Unsupported { .. })
    ));
    assert_eq!(vec_dot(ty, 64, &w[..36], &x), Ok(0.0));

    let mut y = [0f32; 2];
    assert!(gemv(ty, &w, 64, 0..2, &x, &mut y).is_ok());
    assert!(matches!(
        gemv(ty, &w, 64, 1..3, &x, &mut y),
        Err(Error::RowRange { rows: 2, .. })
    ));
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = 2..1;
    assert!(matches!(
        gemv(ty, &w, 64, inverted, &x, &mut []),
        Err(Error::RowRange { .. })
    ));
    assert!(matches!(
        gemv(ty, &w, 64, 0..1, &x, &mut y),
        Err(Error::BufferSize { .. })
    ));
    assert!(matches!(
        gemv(ty, &w[..40], 64, 0..1, &x, &mut y[..1]),
        Err(Error::BufferSize { .. })
    ));
    assert!(matches!(
        gemv(ty, &w, 64, 0..2, &x[..34], &mut y),
        Err(Error::BufferSize { .. })
    ));
    let mut yy = [0f32; 4];
    let xx = [0u8; 68 * 2];
    assert!(gemm(ty, &w, 64, 0..2, &xx, 2, &mut yy).is_ok());
    assert!(matches!(
        gemm(ty, &w, 64, 0..2, &xx, 3, &mut yy),
        Err(Error::BufferSize { .. })
    ));
    assert!(matches!(
        gemm(ty, &w, 64, 0..2, &xx, usize::MAX, &mut yy),
        Err(Error::BufferSize { .. })
    ));
    assert!(matches!(
        gemm(ty, &w, 64, 0..2, &xx[..68], 2, &mut yy),
        Err(Error::BufferSize { .. })
    ));
    // k = 0: every dot is 0.
    assert!(gemv(ty, &[], 0, 0..3, &[], &mut [1.0; 3]).is_ok());
}

#[test]
fn explicit_tiers_report_unavailability() {
    for t in Tier::ALL {
        let r = vec_dot_with(t, GgmlType::F32, 0, &[], &[]);
        if dispatch::check_tier(t).is_ok() {
            assert_eq!(r, Ok(0.0), "{t}");
        } else {
            match r {
                Err(Error::Tier(m)) => assert!(m.contains(t.name()), "{m}"),
                other => panic!("{t}: {other:?}"),
            }
        }
    }
}

#[test]
fn vec_dot_types() {
    assert_eq!(vec_dot_type(GgmlType::Q4_0), Some(GgmlType::Q8_0));
    assert_eq!(vec_dot_type(GgmlType::Q5_1), Some(GgmlType::Q8_1));
    assert_eq!(vec_dot_type(GgmlType::Q6_K), Some(GgmlType::Q8_K));
    assert_eq!(vec_dot_type(GgmlType::IQ4_NL), Some(GgmlType::Q8_0));
    assert_eq!(vec_dot_type(GgmlType::IQ2_XXS), None);
    for &t in DOT_TYPES {
        let xt = vec_dot_type(t).unwrap();
        assert_eq!(t.block_size() % xt.block_size(), 0);
        assert!(scalar::quant_fn(xt).is_some(), "{xt} must be quantizable");
    }
}

/// The run-time activation quantizer is ggml's CPU-backend formula:
/// `d = amax / 127`, `q = round_ties_even(x · (127 / amax))` (checked here
/// against std's rounding), `Q8_1`'s `s = f16(d · Σq)`; every other type is
/// encoded exactly as by `quantize_row`.
#[test]
fn activation_quantizer_is_ggml_runtime_formula() {
    let mut rows = vec![data(1536, 5), data(576, 9), vec![0.0; 64]];
    // Exact ties: amax = 127 makes the multiplier 1, so x.5 values are ties,
    // which go to even here and away from zero in the `_ref` quantizer.
    let mut tie = vec![0.0f32; 32];
    tie[0] = 127.0;
    for (i, v) in tie.iter_mut().enumerate().skip(1) {
        *v = i as f32 - 16.5;
    }
    rows.push(tie.clone());
    for t in Tier::ALL.iter().copied().filter(|t| t.is_supported()) {
        for x in &rows {
            for ty in [GgmlType::Q8_0, GgmlType::Q8_1] {
                let mut got = vec![0u8; ty.row_bytes(x.len() as u64).unwrap() as usize];
                quantize_row_act_with(t, ty, x, &mut got).unwrap();
                let bb = if ty == GgmlType::Q8_0 { 34 } else { 36 };
                for (b, xb) in got.chunks_exact(bb).zip(x.chunks_exact(32)) {
                    let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
                    let q: Vec<i8> = xb
                        .iter()
                        .map(|v| (v * id).round_ties_even() as i8)
                        .collect();
                    let d = amax / 127.0;
                    assert_eq!(b[..2], f32_to_f16(d), "{t} {ty} d");
                    assert_eq!(
                        bytemuck::cast_slice::<u8, i8>(&b[bb - 32..]),
                        &q[..],
                        "{t} {ty} qs"
                    );
                    if ty == GgmlType::Q8_1 {
                        let sum: i32 = q.iter().map(|&v| v as i32).sum();
                        assert_eq!(b[2..4], f32_to_f16(d * sum as f32), "{t} {ty} s");
                    }
                }
            }
            for ty in [GgmlType::Q8_K, GgmlType::F16, GgmlType::F32] {
                let n = if ty == GgmlType::Q8_K {
                    x.len() / 256 * 256
                } else {
                    x.len()
                };
                if n == 0 {
                    continue;
                }
                let mut got = vec![0u8; ty.row_bytes(n as u64).unwrap() as usize];
                quantize_row_act_with(t, ty, &x[..n], &mut got).unwrap();
                assert_eq!(got, quant(ty, &x[..n]), "{t} {ty}");
            }
        }
    }
    // And the tie row really differs from the weight quantizer's.
    let mut act = vec![0u8; 34];
    quantize_row_act(GgmlType::Q8_0, &tie, &mut act).unwrap();
    let w = quant(GgmlType::Q8_0, &tie);
    assert_eq!(act[2 + 14] as i8, -2, "-2.5 to even");
    assert_eq!(w[2 + 14] as i8, -3, "-2.5 away from zero");
}
