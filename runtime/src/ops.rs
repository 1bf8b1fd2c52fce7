//! Small element-wise operations of the forward pass, in plain Rust (the
//! compiler vectorizes them). Each follows ggml's arithmetic so results track
//! llama.cpp's.

/// RMSNorm: `out = x / sqrt(mean(x²) + eps) * w`, the sum of squares in
/// f64 as ggml does (see [`sum_squares`] for its order).
pub fn rmsnorm(out: &mut [f32], x: &[f32], w: &[f32], eps: f32) {
    rmsnorm_rows(out, x, w, x.len(), eps);
}

/// [`rmsnorm`] of each `d`-wide row of `x` into the rows of `out`.
pub fn rmsnorm_rows(out: &mut [f32], x: &[f32], w: &[f32], d: usize, eps: f32) {
    if d == 0 {
        return;
    }
    for (o, row) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
        let mean = sum_squares(row) / d as f64;
        let scale = 1.0f32 / ((mean + eps as f64) as f32).sqrt();
        for ((o, &v), &g) in o.iter_mut().zip(row).zip(w) {
            *o = (v * scale) * g;
        }
    }
}

/// `Σ x²` in f64 over eight lanes (element `i` into lane `i mod 8`), the
/// lanes then added in order: eight short chains of dependent adds rather
/// than one of `x.len()` (a 576-wide row's single chain took about as
/// long as the rest of the norm). Each square is rounded to f32 first, as
/// ggml's `(ggml_float)(x*x)`; only the order of the f64 adds differs from
/// ggml's, which moves the sum by ulps of an f64, far below the f32 the
/// scale is rounded to.
fn sum_squares(x: &[f32]) -> f64 {
    const L: usize = 8;
    let mut lanes = [0f64; L];
    let mut chunks = x.chunks_exact(L);
    for c in &mut chunks {
        for (s, &v) in lanes.iter_mut().zip(c) {
            *s += (v * v) as f64;
        }
    }
    for (s, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *s += (v * v) as f64;
    }
    lanes.iter().fold(0.0, |a, &s| a + s)
}

/// `y += x`.
pub fn add(y: &mut [f32], x: &[f32]) {
    for (a, &b) in y.iter_mut().zip(x) {
        *a += b;
    }
}

/// SwiGLU: `g = silu(g) * u` (`ember_quant::swiglu`: a vectorized `exp`
/// on the widest tier, as ggml's `ggml_v_silu`).
pub fn swiglu(g: &mut [f32], u: &[f32]) {
    ember_quant::swiglu(g, u);
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

/// Softmax in place over `x` after scaling by `scale` (`ember_quant::softmax`).
pub fn softmax(x: &mut [f32], scale: f32) {
    ember_quant::softmax(x, scale);
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Against ggml's order (one f64 chain): the eight lanes move the sum
    /// by ulps of an f64, so every output is within one f32 ulp, and
    /// nearly all are the same bits.
    #[test]
    fn rmsnorm_tracks_ggml_order() {
        let (mut same, mut total) = (0usize, 0usize);
        for d in [1, 7, 8, 9, 37, 64, 576, 1000] {
            let w: Vec<f32> = (0..d).map(|i| 0.5 + i as f32 / 7.0).collect();
            for n in 1..6 {
                let x: Vec<f32> = (0..n * d)
                    .map(|i| ((i * 7919 % 1013) as f32 - 500.0) / (97.0 + d as f32))
                    .collect();
                let mut got = vec![0.0; n * d];
                rmsnorm_rows(&mut got, &x, &w, d, 1e-5);
                for (row, g) in x.chunks_exact(d).zip(got.chunks_exact(d)) {
                    let sum = row.iter().fold(0f64, |a, &v| a + (v * v) as f64);
                    let scale = 1.0f32 / ((sum / d as f64 + 1e-5) as f32).sqrt();
                    for ((&v, &gw), &o) in row.iter().zip(&w).zip(g) {
                        let want = (v * scale) * gw;
                        let ulps = (want.to_bits() as i64 - o.to_bits() as i64).abs();
                        assert!(ulps <= 1, "d {d}: {o} against {want}");
                        same += usize::from(ulps == 0);
                        total += 1;
                    }
                }
            }
        }
        assert!(same * 100 >= total * 99, "{same} of {total} the same bits");
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
