//! Scalar quantization, exact to ggml's `quantize_row_*_ref`.
//!
//! Every function takes a `dst` of exactly `src.len() / ELEMS` blocks; the
//! public entry point validates lengths.

use crate::blocks::*;
use crate::fp::{f32_to_bf16, f32_to_f16, nearest_int, round_ties_even, roundf, sqrtf};

pub(crate) fn f32_row(src: &[f32], dst: &mut [u8]) {
    for (d, &s) in dst.chunks_exact_mut(4).zip(src) {
        d.copy_from_slice(&s.to_le_bytes());
    }
}

pub(crate) fn f16_row(src: &[f32], dst: &mut [u8]) {
    for (d, &s) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&f32_to_f16(s));
    }
}

pub(crate) fn bf16_row(src: &[f32], dst: &mut [u8]) {
    for (d, &s) in dst.chunks_exact_mut(2).zip(src) {
        d.copy_from_slice(&f32_to_bf16(s).to_le_bytes());
    }
}

/// The signed value of largest magnitude (first one on ties), as ggml's
/// `if (amax < fabsf(v)) { amax = fabsf(v); max = v; }`.
#[inline]
fn signed_absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

#[inline]
fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

#[inline]
fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

pub(crate) fn q4_0(src: &[f32], dst: &mut [u8]) {
    for (b, x) in blocks_mut::<BlockQ4_0>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK))
    {
        let d = signed_absmax(x) / -8.0;
        let id = inv(d);
        b.d = f32_to_f16(d);
        for j in 0..QK / 2 {
            let x0 = x[j] * id;
            let x1 = x[j + QK / 2] * id;
            let xi0 = ((x0 + 8.5) as i8).min(15) as u8;
            let xi1 = ((x1 + 8.5) as i8).min(15) as u8;
            b.qs[j] = xi0 | (xi1 << 4);
        }
    }
}

pub(crate) fn q4_1(src: &[f32], dst: &mut [u8]) {
    for (b, x) in blocks_mut::<BlockQ4_1>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK))
    {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inv(d);
        b.d = f32_to_f16(d);
        b.m = f32_to_f16(min);
        for j in 0..QK / 2 {
            let x0 = (x[j] - min) * id;
            let x1 = (x[j + QK / 2] - min) * id;
            let xi0 = ((x0 + 0.5) as i8).min(15) as u8;
            let xi1 = ((x1 + 0.5) as i8).min(15) as u8;
            b.qs[j] = xi0 | (xi1 << 4);
        }
    }
}

pub(crate) fn q5_0(src: &[f32], dst: &mut [u8]) {
    for (b, x) in blocks_mut::<BlockQ5_0>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK))
    {
        let d = signed_absmax(x) / -16.0;
        let id = inv(d);
        b.d = f32_to_f16(d);
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            let x0 = x[j] * id;
            let x1 = x[j + QK / 2] * id;
            let xi0 = ((x0 + 16.5) as i8).min(31) as u8;
            let xi1 = ((x1 + 16.5) as i8).min(31) as u8;
            b.qs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
            qh |= (((xi0 & 0x10) >> 4) as u32) << j;
            qh |= (((xi1 & 0x10) >> 4) as u32) << (j + QK / 2);
        }
        b.qh = qh.to_le_bytes();
    }
}

pub(crate) fn q5_1(src: &[f32], dst: &mut [u8]) {
    for (b, x) in blocks_mut::<BlockQ5_1>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK))
    {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inv(d);
        b.d = f32_to_f16(d);
        b.m = f32_to_f16(min);
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            let x0 = (x[j] - min) * id;
            let x1 = (x[j + QK / 2] - min) * id;
            let xi0 = (x0 + 0.5) as u8;
            let xi1 = (x1 + 0.5) as u8;
            b.qs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
            qh |= (((xi0 & 0x10) >> 4) as u32) << j;
            qh |= (((xi1 & 0x10) >> 4) as u32) << (j + QK / 2);
        }
        b.qh = qh.to_le_bytes();
    }
}

#[inline]
fn absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    for &v in x {
        // ggml's MAX(amax, fabsf(v)) = (amax > |v| ? amax : |v|)
        let a = v.abs();
        amax = if amax > a { amax } else { a };
    }
    amax
}

pub(crate) fn q8_0(src: &[f32], dst: &mut [u8]) {
    for (b, x) in blocks_mut::<BlockQ8_0>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK))
    {
        let d = absmax(x) / 127.0;
        let id = inv(d);
        b.d = f32_to_f16(d);
        for (q, &v) in b.qs.iter_mut().zip(x) {
            *q = roundf(v * id) as i8;
        }
    }
}

pub(crate) fn q8_1(src: &[f32], dst: &mut [u8]) {
    for (b, x) in blocks_mut::<BlockQ8_1>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK))
    {
        let d = absmax(x) / 127.0;
        let id = inv(d);
        b.d = f32_to_f16(d);
        let mut sum = 0i32;
        for (q, &v) in b.qs.iter_mut().zip(x) {
            *q = roundf(v * id) as i8;
            sum += *q as i32;
        }
        b.s = f32_to_f16(sum as f32 * d);
    }
}

/// `Q8_0` as ggml's CPU backend quantizes activations at run time (its x86
/// SIMD `quantize_row_q8_0`): `d = amax / 127`, `id = 127 / amax` (not
/// `1 / d`), quants rounded to nearest even (not half away from zero).
/// Differs from [`q8_0`] (the `_ref` weight quantizer) in the last bit of
/// `id` and on exact ties, i.e. by one step on rare elements.
pub(crate) fn q8_0_act(src: &[f32], dst: &mut [u8]) {
    for (b, x) in blocks_mut::<BlockQ8_0>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK))
    {
        let (d, _) = q8_act_block(x, &mut b.qs);
        b.d = f32_to_f16(d);
    }
}

/// `Q8_1` as ggml's CPU backend quantizes activations (see [`q8_0_act`]),
/// with `s = f16(d · Σq)`, `d` unrounded f32.
pub(crate) fn q8_1_act(src: &[f32], dst: &mut [u8]) {
    for (b, x) in blocks_mut::<BlockQ8_1>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK))
    {
        let (d, sum) = q8_act_block(x, &mut b.qs);
        b.d = f32_to_f16(d);
        b.s = f32_to_f16(d * sum as f32);
    }
}

/// One run-time activation block: returns `(d, Σq)`. Out-of-range and NaN
/// products saturate / become 0, as `as i8` does.
#[inline]
fn q8_act_block(x: &[f32], qs: &mut [i8; QK]) -> (f32, i32) {
    let amax = absmax(x);
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = round_ties_even(v * id) as i8;
        sum += *q as i32;
    }
    (d, sum)
}

pub(crate) fn q8_k(src: &[f32], dst: &mut [u8]) {
    for (b, x) in blocks_mut::<BlockQ8K>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK_K))
    {
        let max = signed_absmax(x);
        if max == 0.0 {
            *b = BlockQ8K::zeroed();
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in b.qs.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for j in 0..QK_K / 16 {
            let sum: i32 = b.qs[16 * j..16 * j + 16].iter().map(|&q| q as i32).sum();
            b.bsums[2 * j..2 * j + 2].copy_from_slice(&(sum as i16).to_le_bytes());
        }
        b.d = (1.0 / iscale).to_le_bytes();
    }
}

use bytemuck::Zeroable;

// ---------------------------------------------------------------------------
// K-quant reference quantizers (`quantize_row_q{2..6}_K_ref`).
// ---------------------------------------------------------------------------

const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `make_qx_quants` with `rmse_type == 1` and no importance weights
/// (`w = x*x`). `L` receives values in `0..2*nmax`.
fn make_qx_quants(x: &[f32], nmax: i32, l_out: &mut [i8]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let clamp = |l: i32| l.clamp(-nmax, nmax - 1);
    let mut iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let l = clamp(nearest_int(iscale * x[i]));
        l_out[i] = (l + nmax) as i8;
        let w = x[i] * x[i];
        sumlx += w * x[i] * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &v in x {
            let l = clamp(nearest_int(iscale * v));
            let w = v * v;
            sumlx += w * v * l as f32;
            suml2 += w * l as f32 * l as f32;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for i in 0..n {
                let l = nearest_int(iscale * x[i]);
                l_out[i] = (nmax + clamp(l)) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse == true`. `L` receives `0..2*nmax`.
fn make_q3_quants(x: &[f32], nmax: i32, l_out: &mut [i8]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..n].fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l_out[i] = l as i8;
        let w = x[i] * x[i];
        sumlx += w * x[i] * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = x[i] * x[i];
            let li = l_out[i] as i32;
            let mut slx = sumlx - w * x[i] * li as f32;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li as f32 * li as f32;
                let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != li {
                    slx += w * x[i] * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for l in l_out[..n].iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// ggml's `make_qkx2_quants`. Returns `(scale, the_min)`; `the_min >= 0` is
/// subtracted on dequantization.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    x: &[f32],
    weights: &[f32],
    nmax: i32,
    l_out: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out[..n].fill(0);
        return (0.0, -min);
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        let diff = if use_mad { diff.abs() } else { diff * diff };
        best_error += weights[i] * diff;
    }
    if nstep < 1 {
        return (scale, -min);
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmaxf) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let dd = sum_w * sum_l2 - sum_l * sum_l;
        if dd > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / dd;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / dd;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * laux[i] as f32 + this_min - x[i];
                let diff = if use_mad { diff.abs() } else { diff * diff };
                cur_error += weights[i] * diff;
            }
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Packs 2-bit values: `qs[32h + l]` holds `L[128h + l + 32k]` at bits `2k`.
fn pack_2bit(l_vals: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for h in 0..2 {
        let j = 128 * h;
        for l in 0..32 {
            qs[j / 4 + l] = l_vals[j + l]
                | (l_vals[j + l + 32] << 2)
                | (l_vals[j + l + 64] << 4)
                | (l_vals[j + l + 96] << 6);
        }
    }
}

pub(crate) fn q2_k(src: &[f32], dst: &mut [u8]) {
    const Q4SCALE: f32 = 15.0;
    let mut l_vals = [0u8; QK_K];
    let mut laux = [0u8; 16];
    let mut weights = [0f32; 16];
    let mut mins = [0f32; QK_K / 16];
    let mut scales = [0f32; QK_K / 16];
    for (y, x) in blocks_mut::<BlockQ2K>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK_K))
    {
        let mut max_scale = 0.0f32;
        let mut max_min = 0.0f32;
        for j in 0..QK_K / 16 {
            let xs = &x[16 * j..16 * j + 16];
            for (w, &v) in weights.iter_mut().zip(xs) {
                *w = v.abs();
            }
            let (s, m) = make_qkx2_quants(
                xs,
                &weights,
                3,
                &mut l_vals[16 * j..16 * j + 16],
                &mut laux,
                -0.5,
                0.1,
                15,
                true,
            );
            scales[j] = s;
            mins[j] = m;
            if s > max_scale {
                max_scale = s;
            }
            if m > max_min {
                max_min = m;
            }
        }
        if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for j in 0..QK_K / 16 {
                y.scales[j] = nearest_int(iscale * scales[j]) as u8;
            }
            y.d = f32_to_f16(max_scale / Q4SCALE);
        } else {
            y.scales = [0; QK_K / 16];
            y.d = f32_to_f16(0.0);
        }
        if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for j in 0..QK_K / 16 {
                let l = nearest_int(iscale * mins[j]);
                y.scales[j] |= (l << 4) as u8;
            }
            y.dmin = f32_to_f16(max_min / Q4SCALE);
        } else {
            y.dmin = f32_to_f16(0.0);
        }
        let dd = crate::fp::f16_to_f32(y.d);
        let dmin = crate::fp::f16_to_f32(y.dmin);
        for j in 0..QK_K / 16 {
            let d = dd * (y.scales[j] & 0xF) as f32;
            if d == 0.0 {
                continue;
            }
            let dm = dmin * (y.scales[j] >> 4) as f32;
            for ii in 0..16 {
                let l = nearest_int((x[16 * j + ii] + dm) / d).clamp(0, 3);
                l_vals[16 * j + ii] = l as u8;
            }
        }
        pack_2bit(&l_vals, &mut y.qs);
    }
}

pub(crate) fn q3_k(src: &[f32], dst: &mut [u8]) {
    let mut l_vals = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    for (y, x) in blocks_mut::<BlockQ3K>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK_K))
    {
        let mut max_scale = 0.0f32;
        let mut amax = 0.0f32;
        for j in 0..QK_K / 16 {
            scales[j] =
                make_q3_quants(&x[16 * j..16 * j + 16], 4, &mut l_vals[16 * j..16 * j + 16]);
            let scale = scales[j].abs();
            if scale > amax {
                amax = scale;
                max_scale = scales[j];
            }
        }
        y.scales = [0; 12];
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for j in 0..QK_K / 16 {
                // C: int8_t l = nearest_int(...); l = MAX(-32, MIN(31, l)) + 32;
                let l = ((nearest_int(iscale * scales[j]) as i8).clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    y.scales[j] = l & 0xF;
                } else {
                    y.scales[j - 8] |= (l & 0xF) << 4;
                }
                y.scales[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
            }
            y.d = f32_to_f16(1.0 / iscale);
        } else {
            y.d = f32_to_f16(0.0);
        }
        let dd = crate::fp::f16_to_f32(y.d);
        let sc = super::dequant::q3k_scales(&y.scales);
        for j in 0..QK_K / 16 {
            let d = dd * (sc[j] as i32 - 32) as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let l = nearest_int(x[16 * j + ii] / d).clamp(-4, 3);
                l_vals[16 * j + ii] = (l + 4) as i8;
            }
        }
        y.hmask = [0; QK_K / 8];
        let mut m = 0usize;
        let mut hm = 1u8;
        for l in l_vals.iter_mut() {
            if *l > 3 {
                y.hmask[m] |= hm;
                *l -= 4;
            }
            m += 1;
            if m == QK_K / 8 {
                m = 0;
                hm <<= 1;
            }
        }
        let mut lu = [0u8; QK_K];
        for (u, &l) in lu.iter_mut().zip(l_vals.iter()) {
            *u = l as u8;
        }
        pack_2bit(&lu, &mut y.qs);
    }
}

/// Packs eight 6-bit scales and mins as `Q4_K`/`Q5_K` expect.
fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8], scales: &mut [u8; 12]) {
    for j in 0..8 {
        let (s, m) = (ls[j], lm[j]);
        if j < 4 {
            scales[j] = s;
            scales[j + 4] = m;
        } else {
            scales[j + 4] = (s & 0xF) | ((m & 0xF) << 4);
            scales[j - 4] |= (s >> 4) << 6;
            scales[j] |= (m >> 4) << 6;
        }
    }
}

/// Shared front half of `quantize_row_q4_K_ref` / `q5_K_ref`: per-32 scales
/// and mins, packed; then re-quantization of `L` against the stored values.
#[allow(clippy::too_many_arguments)]
fn q45_k_block(
    x: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
    d_out: &mut [u8; 2],
    dmin_out: &mut [u8; 2],
    scales_out: &mut [u8; 12],
    l_vals: &mut [u8; QK_K],
) {
    let mut laux = [0u8; 32];
    let mut weights = [0f32; 32];
    let mut mins = [0f32; 8];
    let mut scales = [0f32; 8];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..QK_K / 32 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = sqrtf(sum_x2 / 32.0);
        for (w, &v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (s, m) = make_qkx2_quants(
            xs,
            &weights,
            nmax,
            &mut l_vals[32 * j..32 * j + 32],
            &mut laux,
            rmin,
            0.1,
            nstep,
            false,
        );
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..8 {
        // C: uint8_t ls = nearest_int(...); ls = MIN(63, ls);
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    *scales_out = [0; 12];
    pack_scale_min_k4(&ls, &lm, scales_out);
    *d_out = f32_to_f16(max_scale / 63.0);
    *dmin_out = f32_to_f16(max_min / 63.0);
    let dd = crate::fp::f16_to_f32(*d_out);
    let dmin = crate::fp::f16_to_f32(*dmin_out);
    for j in 0..QK_K / 32 {
        let (sc, m) = super::dequant::scale_min_k4(j, scales_out);
        let d = dd * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin * m as f32;
        for ii in 0..32 {
            let l = nearest_int((x[32 * j + ii] + dm) / d).clamp(0, nmax);
            l_vals[32 * j + ii] = l as u8;
        }
    }
}

pub(crate) fn q4_k(src: &[f32], dst: &mut [u8]) {
    let mut l_vals = [0u8; QK_K];
    for (y, x) in blocks_mut::<BlockQ4K>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK_K))
    {
        q45_k_block(
            x,
            15,
            -1.0,
            20,
            &mut y.d,
            &mut y.dmin,
            &mut y.scales,
            &mut l_vals,
        );
        for c in 0..4 {
            for l in 0..32 {
                y.qs[32 * c + l] = l_vals[64 * c + l] | (l_vals[64 * c + l + 32] << 4);
            }
        }
    }
}

pub(crate) fn q5_k(src: &[f32], dst: &mut [u8]) {
    let mut l_vals = [0u8; QK_K];
    for (y, x) in blocks_mut::<BlockQ5K>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK_K))
    {
        q45_k_block(
            x,
            31,
            -0.5,
            15,
            &mut y.d,
            &mut y.dmin,
            &mut y.scales,
            &mut l_vals,
        );
        y.qh = [0; QK_K / 8];
        let (mut m1, mut m2) = (1u8, 2u8);
        for c in 0..4 {
            for j in 0..32 {
                let mut l1 = l_vals[64 * c + j];
                if l1 > 15 {
                    l1 -= 16;
                    y.qh[j] |= m1;
                }
                let mut l2 = l_vals[64 * c + j + 32];
                if l2 > 15 {
                    l2 -= 16;
                    y.qh[j] |= m2;
                }
                y.qs[32 * c + j] = l1 | (l2 << 4);
            }
            m1 <<= 2;
            m2 <<= 2;
        }
    }
}

pub(crate) fn q6_k(src: &[f32], dst: &mut [u8]) {
    let mut l_vals = [0i8; QK_K];
    let mut scales = [0f32; QK_K / 16];
    for (y, x) in blocks_mut::<BlockQ6K>(dst)
        .iter_mut()
        .zip(src.chunks_exact(QK_K))
    {
        let mut max_scale = 0.0f32;
        let mut max_abs_scale = 0.0f32;
        for ib in 0..QK_K / 16 {
            let scale = make_qx_quants(
                &x[16 * ib..16 * ib + 16],
                32,
                &mut l_vals[16 * ib..16 * ib + 16],
            );
            scales[ib] = scale;
            let abs_scale = scale.abs();
            if abs_scale > max_abs_scale {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if max_abs_scale < GROUP_MAX_EPS {
            *y = BlockQ6K::zeroed();
            continue;
        }
        let iscale = -128.0 / max_scale;
        y.d = f32_to_f16(1.0 / iscale);
        for ib in 0..QK_K / 16 {
            // C: int8_t = MIN(127, nearest_int(...)) (an int; truncated to int8)
            y.scales[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
        }
        let dd = crate::fp::f16_to_f32(y.d);
        for j in 0..QK_K / 16 {
            let d = dd * y.scales[j] as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let l = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
                l_vals[16 * j + ii] = (l + 32) as i8;
            }
        }
        for h in 0..2 {
            let j = 128 * h;
            for l in 0..32 {
                let lv = |k: usize| l_vals[j + l + k] as u8;
                y.ql[64 * h + l] = (lv(0) & 0xF) | ((lv(64) & 0xF) << 4);
                y.ql[64 * h + l + 32] = (lv(32) & 0xF) | ((lv(96) & 0xF) << 4);
                y.qh[32 * h + l] = (lv(0) >> 4)
                    | ((lv(32) >> 4) << 2)
                    | ((lv(64) >> 4) << 4)
                    | ((lv(96) >> 4) << 6);
            }
        }
    }
}
