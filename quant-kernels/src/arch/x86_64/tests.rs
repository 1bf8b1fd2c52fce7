//! The x86 kernels against the scalar reference.
//!
//! * Quantizers (`Q8_0`, `Q8_1`, `Q8_K`, `F16`) and the F16 dequantizer:
//!   bit-exact, on random rows (several scales, outliers, exact ties,
//!   zeros, subnormals).
//! * Dots (vec_dot, gemv, gemm on both x86 tiers): the integer block sums are
//!   exact, so only the order of the f32 accumulation differs. Tolerance:
//!   `|simd - scalar| <= 1e-6 * (blocks + 1) * T` with
//!   `T = sum_i (|w_i| + |o_i|) * |x_i|` (f64), `w` the dequantized weights,
//!   `o` each block's offset term (`m` of Q4_1/Q5_1, `dmin * min` of
//!   Q4_K/Q5_K) and `x` the dequantized activations: a few ulps of the
//!   magnitude of what is summed, per summation step.

use crate::fp::{f16_to_f32, f32_to_f16};
use crate::{dequantize_row, scalar, vec_dot_type, GgmlType, Tier};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn rows(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..n)
        .map(|i| {
            let v = r.f() * scale;
            if i % 89 == 7 {
                v * 13.0
            } else {
                v
            }
        })
        .collect()
}

fn quant_scalar(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len() as u64).unwrap() as usize];
    (scalar::quant_fn(ty).unwrap())(x, &mut out);
    out
}

fn dequant(ty: GgmlType, q: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    dequantize_row(ty, q, &mut out).unwrap();
    out
}

fn check_quant_exact(ty: GgmlType, x: &[f32]) {
    let reference = quant_scalar(ty, x);
    let f = super::avx2::quant_fn(ty).expect("avx2 quantizer");
    check_same(&format!("{ty}"), f, x, &reference);
    // The run-time activation flavour against its scalar version.
    let mut act = vec![0u8; reference.len()];
    (scalar::act_quant_fn(ty).unwrap())(x, &mut act);
    let f = super::avx2::act_quant_fn(ty).expect("avx2 activation quantizer");
    check_same(&format!("{ty} (activation)"), f, x, &act);
}

fn check_same(what: &str, f: crate::scalar::QuantFn, x: &[f32], reference: &[u8]) {
    let mut out = vec![0u8; reference.len()];
    f(x, &mut out);
    if out != reference {
        let i = out.iter().zip(reference).position(|(a, b)| a != b).unwrap();
        panic!("{what}: first difference at byte {i} (n = {})", x.len());
    }
}

fn x86_tiers() -> Vec<Tier> {
    [Tier::Avx2, Tier::Avx512]
        .into_iter()
        .filter(|t| t.is_supported())
        .collect()
}

#[test]
fn quantizers_bit_exact() {
    if !super::has_avx2_tier() {
        return;
    }
    for ty in [
        GgmlType::Q8_0,
        GgmlType::Q8_1,
        GgmlType::Q8_K,
        GgmlType::F16,
    ] {
        for seed in 0..200u64 {
            let scale = [1.0f32, 1e-3, 37.5, 1e-30, 3e4][seed as usize % 5];
            let n = [256, 512, 1536, 2304][seed as usize % 4];
            check_quant_exact(ty, &rows(n, seed, scale));
        }
        // Exact ties: amax = 127 makes d = 1 for Q8_0/Q8_1 (then v * id = v);
        // a leading -127 makes iscale = 1 for Q8_K.
        let mut x = vec![0.0f32; 256];
        x[0] = -127.0;
        for (i, v) in x.iter_mut().enumerate().skip(1) {
            let t = (i as f32 - 128.0) * 0.5; // ..., -0.5, 0, 0.5, 1, 1.5, ...
            *v = t.clamp(-126.5, 126.5);
        }
        for blk in x.chunks_mut(32) {
            blk[0] = -127.0;
        }
        check_quant_exact(ty, &x);
        // Zeros, a lone value, subnormals, ties of magnitude with opposite signs.
        check_quant_exact(ty, &[0.0; 256]);
        let mut y = vec![0.0f32; 256];
        y[200] = -3.0;
        y[201] = 3.0;
        y[5] = 1e-40;
        y[6] = -2.5;
        check_quant_exact(ty, &y);
        let z: Vec<f32> = (0..256).map(|i| (i as f32 - 100.0) * 1e-41).collect();
        check_quant_exact(ty, &z);
    }
    // F16: non-multiples of 8, infinities, overflow, NaN.
    let mut v = rows(37, 3, 7e4);
    v[3] = f32::INFINITY;
    v[4] = f32::NEG_INFINITY;
    v[5] = f32::NAN;
    v[6] = 65520.0;
    v[7] = 5.96e-8;
    v[8] = 2.9e-8;
    check_quant_exact(GgmlType::F16, &v);
}

#[test]
fn f16_dequant_exact() {
    if !super::has_avx2_tier() {
        return;
    }
    let src: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    let f = super::avx2::dequant_fn(GgmlType::F16).unwrap();
    for n in [65536usize, 13] {
        let mut a = vec![0f32; n];
        let mut b = vec![0f32; n];
        f(&src[..2 * n], &mut a);
        (scalar::dequant_fn(GgmlType::F16).unwrap())(&src[..2 * n], &mut b);
        for i in 0..n {
            assert_eq!(a[i].to_bits(), b[i].to_bits(), "f16 bits {i:#x}");
        }
    }
}

/// Random weight rows: random quant bytes with sane scales.
fn weights(ty: GgmlType, rows: usize, k: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1);
    if ty == GgmlType::F16 {
        return (0..rows * k)
            .flat_map(|_| f32_to_f16(r.f() * 2.0))
            .collect();
    }
    let bs = ty.type_size();
    let mut w: Vec<u8> = (0..rows * k / ty.block_size() * bs)
        .map(|_| r.next() as u8)
        .collect();
    // (offset, magnitude) of the f16 scale fields.
    let fields: &[(usize, f32)] = match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[(0, 0.05)],
        GgmlType::Q4_1 | GgmlType::Q5_1 => &[(0, 0.05), (2, 0.5)],
        GgmlType::Q4_K | GgmlType::Q5_K => &[(0, 0.01), (2, 0.01)],
        GgmlType::Q6_K => &[(208, 0.002)],
        _ => panic!("{ty}"),
    };
    for b in w.chunks_exact_mut(bs) {
        for &(off, mag) in fields {
            b[off..off + 2].copy_from_slice(&f32_to_f16(r.f() * mag));
        }
    }
    w
}

/// Per-element offset terms (`m`, `dmin * min`) of one weight row.
fn offsets(ty: GgmlType, w: &[u8], k: usize) -> Vec<f32> {
    let mut o = vec![0f32; k];
    match ty {
        GgmlType::Q4_1 | GgmlType::Q5_1 => {
            for (b, oc) in w.chunks_exact(ty.type_size()).zip(o.chunks_exact_mut(32)) {
                oc.fill(f16_to_f32([b[2], b[3]]));
            }
        }
        GgmlType::Q4_K | GgmlType::Q5_K => {
            for (b, oc) in w.chunks_exact(ty.type_size()).zip(o.chunks_exact_mut(256)) {
                let dmin = f16_to_f32([b[2], b[3]]);
                let sc: [u8; 12] = b[4..16].try_into().unwrap();
                for (j, s) in oc.chunks_exact_mut(32).enumerate() {
                    s.fill(dmin * scalar::dequant::scale_min_k4(j, &sc).1 as f32);
                }
            }
        }
        _ => {}
    }
    o
}

struct Case {
    ty: GgmlType,
    k: usize,
    w: Vec<u8>,
    x: Vec<u8>,
}

impl Case {
    fn new(ty: GgmlType, m: usize, k: usize, n: usize, seed: u64) -> Case {
        let xt = vec_dot_type(ty).unwrap();
        let xf = rows(k * n, seed + 1000, 1.0);
        let x = quant_scalar(xt, &xf);
        Case {
            ty,
            k,
            w: weights(ty, m, k, seed),
            x,
        }
    }
    fn w_row(&self) -> usize {
        self.ty.row_bytes(self.k as u64).unwrap() as usize
    }
    fn x_row(&self) -> usize {
        vec_dot_type(self.ty)
            .unwrap()
            .row_bytes(self.k as u64)
            .unwrap() as usize
    }
    fn tol(&self, r: usize, c: usize) -> f64 {
        let (wr, xr) = (self.w_row(), self.x_row());
        let wb = &self.w[r * wr..(r + 1) * wr];
        let w = dequant(self.ty, wb, self.k);
        let o = offsets(self.ty, wb, self.k);
        let x = dequant(
            vec_dot_type(self.ty).unwrap(),
            &self.x[c * xr..(c + 1) * xr],
            self.k,
        );
        let t: f64 = (0..self.k)
            .map(|i| (w[i].abs() as f64 + o[i].abs() as f64) * x[i].abs() as f64)
            .sum();
        let blocks = self.k / self.ty.block_size();
        1e-6 * (blocks as f64 + 1.0) * t + 1e-30
    }
    fn check(&self, what: &str, tier: Tier, r: usize, c: usize, got: f32, want: f32) {
        assert!(got.is_finite(), "{what} {} {tier}: not finite", self.ty);
        let err = (got as f64 - want as f64).abs();
        let tol = self.tol(r, c);
        assert!(
            err <= tol,
            "{what} {} {tier} k={} row {r} col {c}: {got} vs {want} (err {err:e} > tol {tol:e})",
            self.ty,
            self.k
        );
    }
}

const DOT_TYPES: [GgmlType; 9] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::F16,
];

fn check_gemv(ty: GgmlType, m: usize, k: usize, seed: u64, sample_every: usize) {
    if !k.is_multiple_of(ty.block_size()) {
        return; // e.g. K-quants at k = 576
    }
    let case = Case::new(ty, m, k, 1, seed);
    let mut want = vec![0f32; m];
    crate::gemv_with(Tier::Scalar, ty, &case.w, k, 0..m, &case.x, &mut want).unwrap();
    for t in x86_tiers() {
        let mut got = vec![0f32; m];
        crate::gemv_with(t, ty, &case.w, k, 0..m, &case.x, &mut got).unwrap();
        for r in (0..m).step_by(sample_every) {
            case.check("gemv", t, r, 0, got[r], want[r]);
        }
        let wr = case.w_row();
        for r in (0..m).step_by(sample_every.max(m / 7).max(1)) {
            let d = crate::vec_dot_with(t, ty, k, &case.w[r * wr..(r + 1) * wr], &case.x).unwrap();
            case.check("vec_dot", t, r, 0, d, want[r]);
            // vec_dot is the 1 × 1 tile of gemv: identical bits.
            assert_eq!(
                d.to_bits(),
                got[r].to_bits(),
                "vec_dot vs gemv {ty} {t} row {r}"
            );
        }
    }
}

#[test]
fn dots_small_shapes() {
    for ty in DOT_TYPES {
        let bs = ty.block_size().max(32);
        for (i, &(m, nb)) in [(1, 1), (3, 1), (4, 2), (5, 3), (9, 7), (13, 33)]
            .iter()
            .enumerate()
        {
            check_gemv(
                ty,
                m,
                nb * bs.max(256 * (ty.block_size() / 256)),
                i as u64,
                1,
            );
        }
    }
}

#[test]
fn dots_model_shapes() {
    for ty in DOT_TYPES {
        for (m, k) in [(576, 576), (192, 576), (1536, 576), (576, 1536)] {
            check_gemv(ty, m, k, (m * 7 + k) as u64, 1);
        }
    }
}

#[test]
fn dots_long_rows() {
    // Longer than the AVX-512 pair kernels prepare at once (512 blocks):
    // column chunks of 512, 512 and 2 blocks, and LLaMA-2 70B's FFN width
    // (896 blocks), with a row count that leaves single rows after the
    // 4-row tiles.
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
    ] {
        for (i, nb) in [1026usize, 896, 512].into_iter().enumerate() {
            check_gemv(ty, 7, nb * 32, 40 + i as u64, 1);
        }
    }
}

#[test]
fn gemv_output_head_shape() {
    // 49152 × 576 (the tied embedding / output head); every 37th row checked.
    for ty in [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::F16,
    ] {
        check_gemv(ty, 49152, 576, 5, 37);
    }
}

#[test]
fn gemm_matches_scalar() {
    for ty in DOT_TYPES {
        for &(m, k, n) in &[
            (1usize, 256usize, 1usize),
            (5, 256, 3),
            (9, 512, 7),
            (16, 576, 17),
            (6, 1536, 8),
        ] {
            if !k.is_multiple_of(ty.block_size()) {
                continue;
            }
            let case = Case::new(ty, m, k, n, (m + n) as u64);
            let mut want = vec![0f32; m * n];
            crate::gemm_with(Tier::Scalar, ty, &case.w, k, 0..m, &case.x, n, &mut want).unwrap();
            for t in x86_tiers() {
                let mut got = vec![0f32; m * n];
                crate::gemm_with(t, ty, &case.w, k, 0..m, &case.x, n, &mut got).unwrap();
                for r in 0..m {
                    for c in 0..n {
                        case.check("gemm", t, r, c, got[r * n + c], want[r * n + c]);
                    }
                }
            }
        }
    }
}

#[test]
fn f16_vec_dot_long_and_odd() {
    // Attention: dots over n_ctx f16 elements, and rows of 64 f16 (K cache).
    for &(m, k) in &[(1, 4096), (3, 1001), (37, 64), (4, 7), (1, 1)] {
        check_gemv(GgmlType::F16, m, k, k as u64, 1);
    }
}

#[test]
fn q4_k_avx512_gemv_is_the_avx2_bits() {
    // The 512-bit Q4_K block sums the same exact integers as the 256-bit one
    // and scales them the same way, so the two tiers give the same bits.
    if !(Tier::Avx2.is_supported() && Tier::Avx512.is_supported()) {
        return;
    }
    for (m, k, seed) in [(5, 256, 1u64), (576, 1536, 2), (13, 256 * 9, 3)] {
        let case = Case::new(GgmlType::Q4_K, m, k, 1, seed);
        let mut y2 = vec![0f32; m];
        let mut y5 = vec![0f32; m];
        crate::gemv_with(
            Tier::Avx2,
            GgmlType::Q4_K,
            &case.w,
            k,
            0..m,
            &case.x,
            &mut y2,
        )
        .unwrap();
        crate::gemv_with(
            Tier::Avx512,
            GgmlType::Q4_K,
            &case.w,
            k,
            0..m,
            &case.x,
            &mut y5,
        )
        .unwrap();
        for r in 0..m {
            assert_eq!(y2[r].to_bits(), y5[r].to_bits(), "Q4_K row {r} of {m}×{k}");
        }
    }
}

#[test]
fn q8_0_values_without_vnni_are_the_vnni_bits() {
    // `vpmaddwd` + add sums the same exact i16 pairs as `vpdpwssd`; a CPU
    // with AVX-512 but no VNNI takes that path, so check it here.
    if !(Tier::Avx512.is_supported() && super::has("avx512vnni")) {
        return;
    }
    let (hd, group) = (64usize, 3usize);
    let ty = GgmlType::Q8_0;
    let cb = crate::KV_CHUNK * crate::kv_pos_bytes(ty, hd).unwrap();
    let mut r = Rng(0x0A11_CE55);
    for len in [1usize, 64, 65, 130] {
        let nch = len.div_ceil(crate::KV_CHUNK);
        let mut v = vec![0u8; nch * cb];
        for p in 0..len {
            let row: Vec<f32> = (0..hd).map(|_| r.f()).collect();
            let c = p / crate::KV_CHUNK;
            let chunk = &mut v[c * cb..(c + 1) * cb];
            crate::kv_write_value(ty, hd, chunk, p % crate::KV_CHUNK, &row).unwrap();
        }
        let stride = nch * crate::KV_CHUNK;
        let probs: Vec<f32> = (0..group * stride).map(|_| r.f().abs()).collect();
        let cols = crate::attn::Cols { c0: 0, c1: hd };
        let (mut a, mut b) = (vec![0f32; group * hd], vec![0f32; group * hd]);
        // SAFETY: AVX-512 and VNNI checked above; sizes as crate::attn
        // validates them (whole chunks, probabilities and outputs sized).
        unsafe {
            super::attn::z_values_q8(hd, group, &probs, stride, &v, len, cb, cols, &mut a);
            super::attn::z_values_q8_vnni(hd, group, &probs, stride, &v, len, cb, cols, &mut b);
        }
        for i in 0..group * hd {
            assert_eq!(a[i].to_bits(), b[i].to_bits(), "len {len} [{i}]");
        }
    }
}

/// Distance in units in the last place (same-sign finite values).
fn ulps(a: f32, b: f32) -> u32 {
    (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
}

/// The softmax's vector `e^x` on both tiers: within 2 ulp of libm over the
/// normal range, the same edges as `vecops::exp`, and the same bits on both.
#[test]
fn exp_lanes_within_two_ulp_and_alike() {
    let (lo, hi) = (-87.33f64, 88.72f64);
    let n = 1_000_000u64;
    let mut xs: Vec<f32> = (0..=n)
        .map(|i| (lo + (hi - lo) * i as f64 / n as f64) as f32)
        .collect();
    xs.extend((0..200).flat_map(|k| {
        let v = 10f32.powf(-(k as f32) / 10.0);
        [v, -v]
    }));
    let edges = [
        0.0,
        -0.0,
        -87.3,
        -87.4,
        -100.0,
        f32::NEG_INFINITY,
        88.7,
        88.8,
        100.0,
        f32::INFINITY,
        f32::NAN,
    ];
    xs.extend(edges);
    let mut runs = Vec::new();
    for t in [Tier::Avx2, Tier::Avx512] {
        let mut out = vec![0f32; xs.len()];
        if !super::vec::exp_lanes(t, &xs, &mut out) {
            continue;
        }
        let mut worst = (0u32, 0f32);
        for (&x, &y) in xs.iter().zip(&out).take(xs.len() - edges.len()) {
            let u = ulps(y, x.exp());
            if u > worst.0 {
                worst = (u, x);
            }
        }
        assert!(worst.0 <= 2, "{t}: exp({}) is {} ulp off", worst.1, worst.0);
        let e = &out[xs.len() - edges.len()..];
        assert_eq!(&e[..2], &[1.0, 1.0], "{t}");
        assert!(
            e[2] > 0.0 && e[3] == 0.0 && e[4] == 0.0 && e[5] == 0.0,
            "{t}: {e:?}"
        );
        assert!(e[6] > 3e38 && e[6].is_finite(), "{t}: {e:?}");
        assert!(e[7..10].iter().all(|&v| v == f32::INFINITY), "{t}: {e:?}");
        assert!(e[10].is_nan(), "{t}");
        runs.push(out);
    }
    if let [a, b] = &runs[..] {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "exp({})",
                xs[i]
            );
        }
    }
}

/// Softmax on the x86 tiers: the same bits on both, and each probability
/// within the rounding of its exponent's argument (the generic build rounds
/// `s·x` before subtracting the maximum, the tiers fuse the two) and a few
/// ulp of the generic build's.
#[test]
fn softmax_tiers_alike_and_near_the_generic_build() {
    let mut r = Rng(0x5EED_50F7);
    for &n in &[
        1usize, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 100, 1037, 1056,
    ] {
        for &(spread, scale) in &[(1.0f32, 0.125f32), (8.0, 1.0), (200.0, 0.125), (0.01, 3.0)] {
            let mut x: Vec<f32> = (0..n).map(|_| r.f() * spread).collect();
            if n > 20 {
                x[n / 3] = f32::NEG_INFINITY; // a masked position
                x[n / 2] = -1e30;
            }
            let mut want = x.clone();
            crate::vecops::softmax_generic(&mut want, scale);
            let max = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let mut runs = Vec::new();
            for t in x86_tiers().into_iter().filter(|t| *t != Tier::Scalar) {
                let mut got = x.clone();
                super::vec::softmax(t, &mut got, scale);
                let sum: f64 = got.iter().map(|&v| v as f64).sum();
                assert!((sum - 1.0).abs() < 1e-5, "{t} n {n}: sum {sum}");
                for i in 0..n {
                    let arg = (scale * x[i]).abs() + (scale * max).abs();
                    let arg = if arg.is_finite() { arg } else { 0.0 };
                    let tol = want[i] * (arg * 2f32.powi(-22) + 2f32.powi(-20)) + 1e-37;
                    assert!(
                        (got[i] - want[i]).abs() <= tol,
                        "{t} n {n} spread {spread}: [{i}] {} vs {}",
                        got[i],
                        want[i]
                    );
                }
                runs.push(got);
            }
            if let [a, b] = &runs[..] {
                assert_eq!(a, b, "n {n} spread {spread}: AVX2 and AVX-512 differ");
            }
        }
    }
}

/// A NaN anywhere in the row reaches every probability, on every tier (as
/// in the generic build).
#[test]
fn softmax_nan_reaches_every_output() {
    for n in [5usize, 16, 40, 1000] {
        for at in [0, n / 2, n - 1] {
            let mut x: Vec<f32> = (0..n).map(|i| (i % 13) as f32 * 0.3).collect();
            x[at] = f32::NAN;
            for t in x86_tiers() {
                let mut got = x.clone();
                super::vec::softmax(t, &mut got, 0.125);
                assert!(got.iter().all(|v| v.is_nan()), "{t} n {n} NaN at {at}");
            }
        }
    }
}
