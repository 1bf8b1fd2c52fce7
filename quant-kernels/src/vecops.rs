//! Element-wise vector kernels of the forward pass that need `exp`: softmax
//! and SwiGLU. One generic source, written with explicit 16-lane blocks so
//! it vectorizes; the x86 tiers compile it again with their target features
//! (`arch::x86_64::vec`), so every tier gives the same bits, except for
//! softmax, which has its own code on AVX2 and AVX-512 (the same bits on
//! both, a few ulp from this source's).

use crate::{dispatch, Error, Tier};

/// The constants of [`exp`] (and of the x86 tiers' vector `e^x`).
pub(crate) mod exp_consts {
    pub const LOG2E: f32 = core::f32::consts::LOG2_E;
    /// `ln 2` in two parts (Cody–Waite): `LN2_HI` has few bits, so `n ·
    /// LN2_HI` is exact.
    pub const LN2_HI: f32 = 0.693_359_4;
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    /// 1.5 · 2^23: adding it rounds to an integer.
    pub const MAGIC: f32 = 12_582_912.0;
    /// ln(2^-126): below it, 0.
    pub const LO: f32 = -87.336_55;
    /// ln(f32::MAX): above it, infinity.
    pub const HI: f32 = 88.722_83;
    /// Cephes' `expf` polynomial for `(e^r − 1 − r) / r²`, highest degree
    /// first.
    pub const POLY: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
}

/// `e^x` in f32 within 2 ulp of the correctly rounded result for normal
/// results, written branch-free so that loops over it vectorize (libm's
/// `expf` is a call per element). Below ~−87.3 (where `e^x` leaves the
/// normal range) it returns 0, above ~88.7 infinity; NaN stays NaN.
///
/// Cody–Waite reduction `x = n·ln2 + r`, `|r| ≤ ln2/2`, then a degree-6
/// polynomial (Cephes' `expf` coefficients) and `2^n` built in the exponent bits.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    use exp_consts::*;
    let xc = if x < LO { LO } else { x };
    let xc = if xc > HI { HI } else { xc };
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC; // round(x / ln2), ties to even
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000); // the same n, as an integer
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = POLY[1..].iter().fold(POLY[0], |p, &c| p * r + c);
    let e = p * (r * r) + r + 1.0;
    // 2^n for n in [-126, 128]: n = 128 only at the clamp, where e·2^127·2 = inf.
    let (n1, n2) = (ni >> 1, ni - (ni >> 1));
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    let y = e * s1 * s2;
    let y = if x < LO { 0.0 } else { y };
    let y = if x > HI { f32::INFINITY } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// Lanes of the block loops (independent accumulators).
const W: usize = 16;

/// Softmax in place after scaling by `scale`: `x_i = e^{s·x_i − max} / Σ`.
/// The sum is kept in 16 f32 lanes, combined in f64.
#[inline(always)]
pub(crate) fn softmax_generic(x: &mut [f32], scale: f32) {
    let mut mx = [f32::NEG_INFINITY; W];
    let mut chunks = x.chunks_exact_mut(W);
    for c in &mut chunks {
        for (m, v) in mx.iter_mut().zip(c.iter_mut()) {
            *v *= scale;
            *m = if *v > *m { *v } else { *m };
        }
    }
    let mut max = mx
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    for v in chunks.into_remainder() {
        *v *= scale;
        max = if *v > max { *v } else { max };
    }
    let mut acc = [0f32; W];
    let mut chunks = x.chunks_exact_mut(W);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c.iter_mut()) {
            *v = exp(*v - max);
            *a += *v;
        }
    }
    let mut sum: f64 = acc.iter().map(|&a| a as f64).sum();
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// SwiGLU in place: `g_i = g_i / (1 + e^{−g_i}) · u_i`.
#[inline(always)]
pub(crate) fn swiglu_generic(g: &mut [f32], u: &[f32]) {
    for (a, &b) in g.iter_mut().zip(u) {
        let s = *a / (1.0 + exp(-*a));
        *a = s * b;
    }
}

/// Rounds every element to the nearest f16 (ties to even) and back to f32,
/// as `half::f16::from_f32(v).to_f32()` does (NaN stays NaN), written
/// branch-free on the bits so that it vectorizes. llama.cpp rounds queries
/// and attention probabilities to f16 before their products with an F16
/// cache; this does the same at vector speed.
#[inline(always)]
pub(crate) fn round_f16_generic(x: &mut [f32]) {
    for v in x.iter_mut() {
        let u = v.to_bits();
        let sign = u & 0x8000_0000;
        let a = u & 0x7FFF_FFFF;
        // Normal f16 range: keep 10 mantissa bits, ties to even.
        let normal = (a + 0x0FFF + ((a >> 13) & 1)) & !0x1FFF;
        // Below 2^-14 the f16 grid is 2^-24: adding 0.5 (whose ulp is 2^-24)
        // rounds to it, ties to even; subtracting 0.5 back is exact.
        let sub = ((f32::from_bits(a) + 0.5) - 0.5).to_bits();
        let r = if a < 0x3880_0000 { sub } else { normal };
        // 65520 and above round past the largest f16 (65504): infinity.
        let r = if a >= 0x477F_F000 { 0x7F80_0000 } else { r };
        // NaN stays NaN (quiet).
        let r = if a > 0x7F80_0000 { a | 0x0040_0000 } else { r };
        *v = f32::from_bits(sign | r);
    }
}

/// f32 to f16 bits, round to nearest even, as `half::f16::from_f32` (a NaN
/// becomes a quiet NaN keeping the top of its payload), written branch-free
/// on the bits so that it vectorizes.
#[inline(always)]
pub(crate) fn f32_to_f16_generic(src: &[f32], dst: &mut [u16]) {
    for (h, v) in dst.iter_mut().zip(src) {
        let u = v.to_bits();
        let sign = (u >> 16) & 0x8000;
        let a = u & 0x7FFF_FFFF;
        // Normal f16 range: keep 10 mantissa bits, ties to even, rebias
        // (127 − 15 = 112); a carry out of the mantissa bumps the exponent.
        let normal = ((a + 0x0FFF + ((a >> 13) & 1)) >> 13).wrapping_sub(112 << 10);
        // Below 2^-14 the f16 grid is 2^-24: adding 0.5 (whose ulp is 2^-24)
        // rounds to it, ties to even, and leaves the count of 2^-24 steps in
        // the low bits of the sum.
        let sub = (f32::from_bits(a) + 0.5)
            .to_bits()
            .wrapping_sub(0x3F00_0000);
        let r = if a < 0x3880_0000 { sub } else { normal };
        // 65520 and above round past the largest f16 (65504): infinity.
        let r = if a >= 0x477F_F000 { 0x7C00 } else { r };
        let r = if a > 0x7F80_0000 {
            0x7E00 | ((a & 0x007F_FFFF) >> 13)
        } else {
            r
        };
        *h = (sign | r) as u16;
    }
}

/// f32 to f16 bits (see [`f32_to_f16_generic`]) over `min(src.len(),
/// dst.len())` elements, on the dispatched tier.
pub fn f32_to_f16(src: &[f32], dst: &mut [u16]) {
    match dispatch::tier() {
        #[cfg(target_arch = "x86_64")]
        t @ (Tier::Avx2 | Tier::Avx512) => crate::arch::x86_64::vec::f32_to_f16(t, src, dst),
        _ => f32_to_f16_generic(src, dst),
    }
}

/// Rounds `x` to f16 precision in place (see [`round_f16_generic`]), on
/// the dispatched tier.
pub fn round_f16(x: &mut [f32]) {
    match dispatch::tier() {
        #[cfg(target_arch = "x86_64")]
        t @ (Tier::Avx2 | Tier::Avx512) => crate::arch::x86_64::vec::round_f16(t, x),
        _ => round_f16_generic(x),
    }
}

/// Softmax in place over `x` after scaling by `scale`, on the dispatched tier.
pub fn softmax(x: &mut [f32], scale: f32) {
    softmax_on(dispatch::tier(), x, scale);
}

/// [`softmax`] on tier `t` (benches and tier comparisons); an error if this
/// CPU or build lacks the tier.
pub fn softmax_with(t: Tier, x: &mut [f32], scale: f32) -> Result<(), Error> {
    dispatch::check_tier(t)?;
    softmax_on(t, x, scale);
    Ok(())
}

fn softmax_on(t: Tier, x: &mut [f32], scale: f32) {
    match t {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 | Tier::Avx512 => crate::arch::x86_64::vec::softmax(t, x, scale),
        _ => softmax_generic(x, scale),
    }
}

/// SwiGLU in place (`g = silu(g) · u` over `min(g.len(), u.len())`), on the
/// dispatched tier.
pub fn swiglu(g: &mut [f32], u: &[f32]) {
    match dispatch::tier() {
        #[cfg(target_arch = "x86_64")]
        t @ (Tier::Avx2 | Tier::Avx512) => crate::arch::x86_64::vec::swiglu(t, g, u),
        _ => swiglu_generic(g, u),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place (same-sign finite values).
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_within_two_ulp_of_libm() {
        let mut worst = (0u32, 0f32);
        let (lo, hi) = (-87.33f64, 88.72f64);
        let n = 2_000_000u64;
        let near_zero = (0..200).map(|k| 10f32.powf(-(k as f32) / 10.0));
        let grid = (0..=n).map(|i| (lo + (hi - lo) * i as f64 / n as f64) as f32);
        let mut i = 0u64;
        for x in grid.chain(near_zero.clone()).chain(near_zero.map(|v| -v)) {
            let u = ulps(exp(x), x.exp());
            if u > worst.0 {
                worst = (u, x);
            }
            i += 1;
        }
        assert!(i > 1_000_000, "{i} points");
        assert!(worst.0 <= 2, "exp({}) is {} ulp off", worst.1, worst.0);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(88.7) < f32::INFINITY && exp(88.7) > 3e38);
    }

    /// The bit trick against the `half` crate over a stride of all f32 bit
    /// patterns and every value next to an f16 rounding boundary.
    #[test]
    fn f32_to_f16_matches_half() {
        let mut xs: Vec<f32> = (0..200_000u32)
            .map(|i| f32::from_bits(i.wrapping_mul(21_473)))
            .collect();
        // Every f16 boundary region: around each f16 value and its halfway points.
        for h in (0..0x7C00u16).step_by(7) {
            let v = half::f16::from_bits(h).to_f32();
            let b = v.to_bits();
            xs.extend([v, f32::from_bits(b + 1), f32::from_bits(b.wrapping_sub(1))]);
            xs.extend([v, -v].map(|v| v + half::f16::from_bits(1).to_f32() / 2.0));
        }
        xs.extend([
            0.0,
            -0.0,
            65504.0,
            65519.9,
            65520.0,
            1e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ]);
        xs.extend([
            f32::MIN_POSITIVE,
            5.96e-8,
            2.98e-8,
            2.9802326e-8,
            6.1e-5,
            f32::NAN,
        ]);
        let want: Vec<u16> = xs
            .iter()
            .map(|&x| half::f16::from_f32(x).to_bits())
            .collect();
        let mut got = vec![0u16; xs.len()];
        f32_to_f16_generic(&xs, &mut got);
        let mut disp = vec![0u16; xs.len()];
        f32_to_f16(&xs, &mut disp);
        for (i, x) in xs.iter().enumerate() {
            assert_eq!(got[i], want[i], "{x:e} ({:#x})", x.to_bits());
            assert_eq!(disp[i], want[i], "{x:e} ({:#x}) dispatched", x.to_bits());
        }
    }

    #[test]
    fn round_f16_matches_half() {
        let mut xs: Vec<f32> = (0..=u32::MAX / 4099)
            .map(|i| f32::from_bits(i * 4099))
            .collect();
        for h in 0..=u16::MAX {
            let f = half::f16::from_bits(h).to_f32();
            let b = f.to_bits();
            for d in [0u32, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF] {
                xs.push(f32::from_bits(b.wrapping_add(d)));
                xs.push(f32::from_bits(b.wrapping_sub(d)));
            }
        }
        xs.extend([
            65504.0,
            65519.99,
            65520.0,
            1e-8,
            2.98e-8,
            5.96e-8,
            1e-45,
            f32::INFINITY,
        ]);
        let mut got = xs.clone();
        round_f16_generic(&mut got);
        let mut disp = xs.clone();
        round_f16(&mut disp);
        for ((&x, &g), &d) in xs.iter().zip(&got).zip(&disp) {
            let want = half::f16::from_f32(x).to_f32();
            if want.is_nan() {
                assert!(g.is_nan() && d.is_nan(), "{x:e}");
            } else {
                assert_eq!(g.to_bits(), want.to_bits(), "{x:e} ({:#x})", x.to_bits());
                assert_eq!(d.to_bits(), want.to_bits(), "dispatched, {x:e}");
            }
        }
    }

    #[test]
    fn tiers_agree() {
        let x0: Vec<f32> = (0..1037)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.013 - 6.0)
            .collect();
        let u: Vec<f32> = (0..1037)
            .map(|i| ((i * 104729) % 997) as f32 * 0.01 - 5.0)
            .collect();
        let mut want = x0.clone();
        softmax_generic(&mut want, 0.125);
        let s: f64 = want.iter().map(|&v| v as f64).sum();
        assert!((s - 1.0).abs() < 1e-5);
        let mut want_sw = x0.clone();
        swiglu_generic(&mut want_sw, &u);
        for (i, (&a, &b)) in want_sw.iter().zip(&x0).enumerate() {
            let silu = b as f64 / (1.0 + (-(b as f64)).exp());
            assert!(
                (a as f64 - silu * u[i] as f64).abs() <= 1e-5 * (1.0 + (silu * u[i] as f64).abs())
            );
        }
        for n in [0usize, 1, 15, 16, 17, 1037] {
            let mut got = x0[..n].to_vec();
            softmax(&mut got, 0.125);
            let mut w = x0[..n].to_vec();
            softmax_generic(&mut w, 0.125);
            // The x86 tiers' softmax has its own code (a few ulp apart,
            // bounded in `arch::x86_64::tests`); the rest is this source.
            for (g, w) in got.iter().zip(&w) {
                assert!((g - w).abs() <= 1e-6 * w, "softmax n = {n}: {g} vs {w}");
            }
            let mut got = x0[..n].to_vec();
            swiglu(&mut got, &u[..n]);
            assert_eq!(got, want_sw[..n], "swiglu n = {n}");
        }
    }
}
