//! Scalar vec dots, following ggml's `ggml_vec_dot_*_generic` integer
//! accumulation order (per-block `i32` sums, then one float multiply-add per
//! block; K-quants through 8 `i32` lanes and 8 `f32` lane sums).
//!
//! Each takes `n` elements; `w` and `x` hold exactly `n / ELEMS` blocks of
//! their types (validated by the caller).

use crate::blocks::*;
use crate::fp::{bf16_to_f32, f16_to_f32};

/// f32·f32, products in f32, sum in f64 (as ggml's scalar path).
pub(crate) fn f32_f32(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (a, b) in w.chunks_exact(4).zip(x.chunks_exact(4)) {
        let a = f32::from_le_bytes([a[0], a[1], a[2], a[3]]);
        let b = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        sum += (a * b) as f64;
    }
    sum as f32
}

/// f16·f16, products in f32, sum in f64.
pub(crate) fn f16_f16(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (a, b) in w.chunks_exact(2).zip(x.chunks_exact(2)) {
        sum += (f16_to_f32([a[0], a[1]]) * f16_to_f32([b[0], b[1]])) as f64;
    }
    sum as f32
}

/// bf16·bf16, products in f32, sum in f64.
pub(crate) fn bf16_bf16(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sum = 0.0f64;
    for (a, b) in w.chunks_exact(2).zip(x.chunks_exact(2)) {
        let a = bf16_to_f32(u16::from_le_bytes([a[0], a[1]]));
        let b = bf16_to_f32(u16::from_le_bytes([b[0], b[1]]));
        sum += (a * b) as f64;
    }
    sum as f32
}

pub(crate) fn q4_0_q8_0(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in blocks::<BlockQ4_0>(w).iter().zip(blocks::<BlockQ8_0>(x)) {
        let (mut s0, mut s1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let v0 = (a.qs[j] & 0x0F) as i32 - 8;
            let v1 = (a.qs[j] >> 4) as i32 - 8;
            s0 += v0 * b.qs[j] as i32;
            s1 += v1 * b.qs[j + QK / 2] as i32;
        }
        let sumi = s0 + s1;
        sumf += sumi as f32 * f16_to_f32(a.d) * f16_to_f32(b.d);
    }
    sumf
}

pub(crate) fn q4_1_q8_1(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in blocks::<BlockQ4_1>(w).iter().zip(blocks::<BlockQ8_1>(x)) {
        let (mut s0, mut s1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            s0 += (a.qs[j] & 0x0F) as i32 * b.qs[j] as i32;
            s1 += (a.qs[j] >> 4) as i32 * b.qs[j + QK / 2] as i32;
        }
        let sumi = s0 + s1;
        sumf +=
            (f16_to_f32(a.d) * f16_to_f32(b.d)) * sumi as f32 + f16_to_f32(a.m) * f16_to_f32(b.s);
    }
    sumf
}

#[inline]
fn q5_pair(qh: u32, qs: u8, j: usize) -> (i32, i32) {
    let xh0 = (((qh >> j) << 4) & 0x10) as u8;
    let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
    (((qs & 0x0F) | xh0) as i32, ((qs >> 4) | xh1) as i32)
}

pub(crate) fn q5_0_q8_0(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in blocks::<BlockQ5_0>(w).iter().zip(blocks::<BlockQ8_0>(x)) {
        let qh = u32::from_le_bytes(a.qh);
        let (mut s0, mut s1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let (x0, x1) = q5_pair(qh, a.qs[j], j);
            s0 += (x0 - 16) * b.qs[j] as i32;
            s1 += (x1 - 16) * b.qs[j + QK / 2] as i32;
        }
        let sumi = s0 + s1;
        sumf += (f16_to_f32(a.d) * f16_to_f32(b.d)) * sumi as f32;
    }
    sumf
}

pub(crate) fn q5_1_q8_1(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in blocks::<BlockQ5_1>(w).iter().zip(blocks::<BlockQ8_1>(x)) {
        let qh = u32::from_le_bytes(a.qh);
        let (mut s0, mut s1) = (0i32, 0i32);
        for j in 0..QK / 2 {
            let (x0, x1) = q5_pair(qh, a.qs[j], j);
            s0 += x0 * b.qs[j] as i32;
            s1 += x1 * b.qs[j + QK / 2] as i32;
        }
        let sumi = s0 + s1;
        sumf +=
            (f16_to_f32(a.d) * f16_to_f32(b.d)) * sumi as f32 + f16_to_f32(a.m) * f16_to_f32(b.s);
    }
    sumf
}

pub(crate) fn q8_0_q8_0(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in blocks::<BlockQ8_0>(w).iter().zip(blocks::<BlockQ8_0>(x)) {
        let mut sumi = 0i32;
        for j in 0..QK {
            sumi += a.qs[j] as i32 * b.qs[j] as i32;
        }
        sumf += sumi as f32 * (f16_to_f32(a.d) * f16_to_f32(b.d));
    }
    sumf
}

pub(crate) fn iq4_nl_q8_0(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in blocks::<BlockIq4Nl>(w).iter().zip(blocks::<BlockQ8_0>(x)) {
        let d = f16_to_f32(b.d) * f16_to_f32(a.d);
        let (mut s1, mut s2) = (0i32, 0i32);
        for j in 0..QK / 2 {
            s1 += b.qs[j] as i32 * KVALUES_IQ4NL[(a.qs[j] & 0xF) as usize] as i32;
            s2 += b.qs[j + QK / 2] as i32 * KVALUES_IQ4NL[(a.qs[j] >> 4) as usize] as i32;
        }
        sumf += d * (s1 + s2) as f32;
    }
    sumf
}

#[inline]
fn q8k_d(b: &BlockQ8K) -> f32 {
    f32::from_le_bytes(b.d)
}

#[inline]
fn q8k_bsum(b: &BlockQ8K, j: usize) -> i32 {
    i16::from_le_bytes([b.bsums[2 * j], b.bsums[2 * j + 1]]) as i32
}

pub(crate) fn q2_k_q8_k(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sumf = 0.0f32;
    for (a, b) in blocks::<BlockQ2K>(w).iter().zip(blocks::<BlockQ8K>(x)) {
        let sc = &a.scales;
        let mut summs = 0i32;
        for (j, &s) in sc.iter().enumerate() {
            summs += q8k_bsum(b, j) * (s >> 4) as i32;
        }
        let dall = q8k_d(b) * f16_to_f32(a.d);
        let dmin = q8k_d(b) * f16_to_f32(a.dmin);
        let mut isum = 0i32;
        let mut is = 0;
        let mut q8 = &b.qs[..];
        for half in 0..2 {
            let q2 = &a.qs[32 * half..32 * half + 32];
            for shift in [0u32, 2, 4, 6] {
                let d = (sc[is] & 0xF) as i32;
                is += 1;
                let mut isuml = 0i32;
                for l in 0..16 {
                    isuml += q8[l] as i32 * ((q2[l] >> shift) & 3) as i32;
                }
                isum += d * isuml;
                let d = (sc[is] & 0xF) as i32;
                is += 1;
                isuml = 0;
                for l in 16..32 {
                    isuml += q8[l] as i32 * ((q2[l] >> shift) & 3) as i32;
                }
                isum += d * isuml;
                q8 = &q8[32..];
            }
        }
        sumf += dall * isum as f32 - dmin * summs as f32;
    }
    sumf
}

/// The 8-lane `aux32` accumulation of ggml's generic K-quant dots: for each
/// sub-block of `sub` elements with integer scale `scale(j)`, lane `l`
/// accumulates `scale * (q8[l] * a[l])` over groups of 8.
#[inline]
fn lanes8(a: &[i8; QK_K], q8: &[i8; QK_K], sub: usize, scale: impl Fn(usize) -> i32) -> [i32; 8] {
    let mut aux32 = [0i32; 8];
    for (g, (ac, qc)) in a.chunks_exact(8).zip(q8.chunks_exact(8)).enumerate() {
        let s = scale(g * 8 / sub);
        for l in 0..8 {
            // aux16 = q8 * a fits i16; then widened.
            let p = (qc[l] as i16).wrapping_mul(ac[l] as i16) as i32;
            aux32[l] += s * p;
        }
    }
    aux32
}

pub(crate) fn q3_k_q8_k(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sums = [0f32; 8];
    let mut aux8 = [0i8; QK_K];
    for (a, b) in blocks::<BlockQ3K>(w).iter().zip(blocks::<BlockQ8K>(x)) {
        let mut m = 1u8;
        let mut k = 0;
        for half in 0..2 {
            let q3 = &a.qs[32 * half..32 * half + 32];
            for shift in [0u32, 2, 4, 6] {
                for l in 0..32 {
                    let lo = ((q3[l] >> shift) & 3) as i8;
                    aux8[k + l] = lo - if a.hmask[l] & m != 0 { 0 } else { 4 };
                }
                k += 32;
                m <<= 1;
            }
        }
        let scales = super::dequant::q3k_scales(&a.scales);
        let aux32 = lanes8(&aux8, &b.qs, 16, |j| scales[j] as i32 - 32);
        let d = f16_to_f32(a.d) * q8k_d(b);
        for l in 0..8 {
            sums[l] += d * aux32[l] as f32;
        }
    }
    let mut sumf = 0.0f32;
    for s in sums {
        sumf += s;
    }
    sumf
}

/// Unpacks the 6-bit scales and mins of `Q4_K`/`Q5_K` (`utmp` in ggml).
#[inline]
fn k4_scales_mins(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    for j in 0..8 {
        let (a, b) = super::dequant::scale_min_k4(j, s);
        sc[j] = a;
        mn[j] = b;
    }
    (sc, mn)
}

fn q45_k_dot<B>(
    w: &[B],
    x: &[BlockQ8K],
    unpack: impl Fn(&B, &mut [i8; QK_K]),
    parts: impl Fn(&B) -> ([u8; 2], [u8; 2], [u8; 12]),
) -> f32 {
    let mut sums = [0f32; 8];
    let mut sumf = 0.0f32;
    let mut aux8 = [0i8; QK_K];
    for (a, b) in w.iter().zip(x) {
        unpack(a, &mut aux8);
        let (d, dmin, packed) = parts(a);
        let (scales, mins) = k4_scales_mins(&packed);
        let mut sumi = 0i32;
        for j in 0..QK_K / 16 {
            sumi += q8k_bsum(b, j) * mins[j / 2] as i32;
        }
        let aux32 = lanes8(&aux8, &b.qs, 32, |j| scales[j] as i32);
        let dd = f16_to_f32(d) * q8k_d(b);
        for l in 0..8 {
            sums[l] += dd * aux32[l] as f32;
        }
        let dmin = f16_to_f32(dmin) * q8k_d(b);
        sumf -= dmin * sumi as f32;
    }
    for s in sums {
        sumf += s;
    }
    sumf
}

pub(crate) fn q4_k_q8_k(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    q45_k_dot(
        blocks::<BlockQ4K>(w),
        blocks::<BlockQ8K>(x),
        |a, aux8| {
            for c in 0..4 {
                for l in 0..32 {
                    let q = a.qs[32 * c + l];
                    aux8[64 * c + l] = (q & 0xF) as i8;
                    aux8[64 * c + 32 + l] = (q >> 4) as i8;
                }
            }
        },
        |a| (a.d, a.dmin, a.scales),
    )
}

pub(crate) fn q5_k_q8_k(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    q45_k_dot(
        blocks::<BlockQ5K>(w),
        blocks::<BlockQ8K>(x),
        |a, aux8| {
            let mut m = 1u8;
            for c in 0..4 {
                for l in 0..32 {
                    let q = a.qs[32 * c + l];
                    let h1 = if a.qh[l] & m != 0 { 16 } else { 0 };
                    let h2 = if a.qh[l] & (m << 1) != 0 { 16 } else { 0 };
                    aux8[64 * c + l] = (q & 0xF) as i8 + h1;
                    aux8[64 * c + 32 + l] = (q >> 4) as i8 + h2;
                }
                m <<= 2;
            }
        },
        |a| (a.d, a.dmin, a.scales),
    )
}

pub(crate) fn q6_k_q8_k(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut sums = [0f32; 8];
    let mut aux8 = [0i8; QK_K];
    for (a, b) in blocks::<BlockQ6K>(w).iter().zip(blocks::<BlockQ8K>(x)) {
        for h in 0..2 {
            for l in 0..32 {
                let q = super::dequant::q6k_quads(a, h, l);
                for (k, &v) in q.iter().enumerate() {
                    aux8[128 * h + 32 * k + l] = v;
                }
            }
        }
        let aux32 = lanes8(&aux8, &b.qs, 16, |j| a.scales[j] as i32);
        let d = f16_to_f32(a.d) * q8k_d(b);
        for l in 0..8 {
            sums[l] += d * aux32[l] as f32;
        }
    }
    let mut sumf = 0.0f32;
    for s in sums {
        sumf += s;
    }
    sumf
}
