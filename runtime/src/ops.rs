//! Small element-wise operations of the forward pass, in plain Rust (the
//! compiler vectorizes them). Each follows ggml's arithmetic so results track
//! llama.cpp's.

/// RMSNorm: `out = x / sqrt(mean(x²) + eps) * w`, the sum of squares in f64 as ggml does.
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = sum / x.len() as f64;
    let scale = 1.0f32 / ((mean + eps as f64) as f32).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = (v * scale) * g;
    }
}

/// `y += x`.
pub fn add(y: &mut [f32], x: &[f32]) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a += b;
    }
}

/// SwiGLU: `g = silu(g) * u`.
pub fn swiglu(g: &mut [f32], u: &[f32]) {
    for (a, &b) in g.iter_mut().zip(u) {
        let s = *a / (1.0 + exp(-*a));
        *a = s * b;
    }
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
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    const LO: f32 = -87.336_55; // ln(2^-126)
    const HI: f32 = 88.722_83; // ln(f32::MAX)
    let xc = if x < LO { LO } else { x };
    let xc = if xc > HI { HI } else { xc };
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC; // round(x / ln2), ties to even
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000); // the same n, as an integer
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
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

/// RoPE cos/sin for one position: `cs[2i] = cos θ_i`, `cs[2i+1] = sin θ_i`,
/// θ_i = pos·scale·base^(−2i/dims), computed by repeated multiplication in
/// f32 as ggml's rope cache does.
pub fn rope_cache(cs: &mut [f32], pos: usize, dims: usize, base: f32, freq_scale: f32) {
    let theta_scale = base.powf(-2.0 / dims as f32);
    let mut theta = pos as f32;
    for i in 0..dims / 2 {
        let t = freq_scale * theta;
        cs[2 * i] = t.cos();
        cs[2 * i + 1] = t.sin();
        theta *= theta_scale;
    }
}

/// Rotates one head in place. `neox` pairs x[i] with x[i + dims/2]; otherwise adjacent pairs.
pub fn rope_apply(x: &mut [f32], cs: &[f32], dims: usize, neox: bool) {
    for i in 0..dims / 2 {
        let (c, s) = (cs[2 * i], cs[2 * i + 1]);
        let (a, b) = if neox {
            (i, i + dims / 2)
        } else {
            (2 * i, 2 * i + 1)
        };
        let (x0, x1) = (x[a], x[b]);
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
}

/// Softmax in place over `x` after scaling by `scale`; the sum in f64 as ggml does.
pub fn softmax(x: &mut [f32], scale: f32) {
    /// Independent lanes, so that the loops vectorize.
    const W: usize = 16;
    let mut mx = [f32::NEG_INFINITY; W];
    let mut chunks = x.chunks_exact_mut(W);
    for c in &mut chunks {
        for (m, v) in mx.iter_mut().zip(c.iter_mut()) {
            *v *= scale;
            *m = if *v > *m { *v } else { *m };
        }
    }
    let mut max = mx.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    for v in chunks.into_remainder() {
        *v *= scale;
        max = max.max(*v);
    }
    let mut acc = [0f64; W];
    let mut chunks = x.chunks_exact_mut(W);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c.iter_mut()) {
            *v = exp(*v - max);
            *a += *v as f64;
        }
    }
    let mut sum: f64 = acc.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
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

    #[test]
    fn softmax_sums_to_one_and_orders() {
        let mut x = [1.0f32, 2.0, 3.0, -1e30];
        softmax(&mut x, 1.0);
        let s: f32 = x.iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        assert!(x[2] > x[1] && x[1] > x[0] && x[3] == 0.0);
    }

    #[test]
    fn rope_at_zero_is_identity_and_preserves_norm() {
        let mut cs = [0f32; 8];
        let mut x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        rope_cache(&mut cs, 0, 8, 10000.0, 1.0);
        let y0 = x;
        rope_apply(&mut x, &cs, 8, false);
        assert_eq!(x, y0);
        rope_cache(&mut cs, 17, 8, 10000.0, 1.0);
        rope_apply(&mut x, &cs, 8, true);
        let n0: f32 = y0.iter().map(|v| v * v).sum();
        let n1: f32 = x.iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-3);
    }

    #[test]
    fn rmsnorm_unit_rms() {
        let x = [3.0f32, -4.0, 0.0, 5.0];
        let w = [1.0f32; 4];
        let mut o = [0f32; 4];
        rmsnorm(&mut o, &x, &w, 0.0);
        let rms = (o.iter().map(|v| v * v).sum::<f32>() / 4.0).sqrt();
        assert!((rms - 1.0).abs() < 1e-5);
    }
}
