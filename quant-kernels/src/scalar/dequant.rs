//! Scalar dequantization, exact to ggml's `dequantize_row_*`.
//!
//! Every function takes a `src` of exactly `dst.len() / ELEMS` blocks; the
//! public entry point validates lengths.

use crate::blocks::*;
use crate::fp::{bf16_to_f32, f16_to_f32};

pub(crate) fn f32_row(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(4)) {
        *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    }
}

pub(crate) fn f16_row(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = f16_to_f32([s[0], s[1]]);
    }
}

pub(crate) fn bf16_row(src: &[u8], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = bf16_to_f32(u16::from_le_bytes([s[0], s[1]]));
    }
}

pub(crate) fn q4_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ4_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_to_f32(b.d);
        for j in 0..QK / 2 {
            let x0 = (b.qs[j] & 0x0F) as i32 - 8;
            let x1 = (b.qs[j] >> 4) as i32 - 8;
            y[j] = x0 as f32 * d;
            y[j + QK / 2] = x1 as f32 * d;
        }
    }
}

pub(crate) fn q4_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ4_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_to_f32(b.d);
        let m = f16_to_f32(b.m);
        for j in 0..QK / 2 {
            let x0 = (b.qs[j] & 0x0F) as f32;
            let x1 = (b.qs[j] >> 4) as f32;
            y[j] = x0 * d + m;
            y[j + QK / 2] = x1 * d + m;
        }
    }
}

#[inline]
fn q5_bits(qh: u32, qs: u8, j: usize) -> (i32, i32) {
    let xh0 = (((qh >> j) << 4) & 0x10) as u8;
    let xh1 = ((qh >> (j + 12)) & 0x10) as u8;
    (((qs & 0x0F) | xh0) as i32, ((qs >> 4) | xh1) as i32)
}

pub(crate) fn q5_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ5_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_to_f32(b.d);
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..QK / 2 {
            let (x0, x1) = q5_bits(qh, b.qs[j], j);
            y[j] = (x0 - 16) as f32 * d;
            y[j + QK / 2] = (x1 - 16) as f32 * d;
        }
    }
}

pub(crate) fn q5_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ5_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_to_f32(b.d);
        let m = f16_to_f32(b.m);
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..QK / 2 {
            let (x0, x1) = q5_bits(qh, b.qs[j], j);
            y[j] = x0 as f32 * d + m;
            y[j + QK / 2] = x1 as f32 * d + m;
        }
    }
}

pub(crate) fn q8_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ8_0>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_to_f32(b.d);
        for (o, &q) in y.iter_mut().zip(b.qs.iter()) {
            *o = q as f32 * d;
        }
    }
}

/// Not in ggml (it has no `dequantize_row_q8_1`); the obvious `d * q`.
pub(crate) fn q8_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ8_1>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_to_f32(b.d);
        for (o, &q) in y.iter_mut().zip(b.qs.iter()) {
            *o = q as f32 * d;
        }
    }
}

pub(crate) fn iq4_nl(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockIq4Nl>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK))
    {
        let d = f16_to_f32(b.d);
        for j in 0..QK / 2 {
            y[j] = d * KVALUES_IQ4NL[(b.qs[j] & 0xF) as usize] as f32;
            y[j + QK / 2] = d * KVALUES_IQ4NL[(b.qs[j] >> 4) as usize] as f32;
        }
    }
}

pub(crate) fn q2_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ2K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = f16_to_f32(b.d);
        let min = f16_to_f32(b.dmin);
        let mut out = 0;
        let mut is = 0;
        for half in 0..2 {
            let q = &b.qs[32 * half..32 * half + 32];
            for shift in [0u32, 2, 4, 6] {
                for part in 0..2 {
                    let sc = b.scales[is];
                    is += 1;
                    let dl = d * (sc & 0xF) as f32;
                    let ml = min * (sc >> 4) as f32;
                    for &ql in &q[16 * part..16 * part + 16] {
                        y[out] = dl * ((ql >> shift) & 3) as f32 - ml;
                        out += 1;
                    }
                }
            }
        }
    }
}

/// Unpacks `Q3_K`'s twelve scale bytes into sixteen 6-bit values (still +32-biased).
#[inline]
pub(crate) fn q3k_scales(s: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0xF } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i8;
    }
    out
}

pub(crate) fn q3_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ3K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d_all = f16_to_f32(b.d);
        let scales = q3k_scales(&b.scales);
        let mut out = 0;
        let mut is = 0;
        let mut m = 1u8;
        for half in 0..2 {
            let q = &b.qs[32 * half..32 * half + 32];
            for shift in [0u32, 2, 4, 6] {
                for part in 0..2 {
                    let dl = d_all * (scales[is] as i32 - 32) as f32;
                    is += 1;
                    for l in 16 * part..16 * part + 16 {
                        let lo = ((q[l] >> shift) & 3) as i32;
                        let hi = if b.hmask[l] & m != 0 { 0 } else { 4 };
                        y[out] = dl * (lo - hi) as f32;
                        out += 1;
                    }
                }
                m <<= 1;
            }
        }
    }
}

/// `get_scale_min_k4`: scale and min of sub-block `j` (0..8) of `Q4_K`/`Q5_K`.
#[inline]
pub(crate) fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

pub(crate) fn q4_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ4K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = f16_to_f32(b.d);
        let min = f16_to_f32(b.dmin);
        for c in 0..4 {
            let (sc1, m1) = scale_min_k4(2 * c, &b.scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, &b.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            let q = &b.qs[32 * c..32 * c + 32];
            let yc = &mut y[64 * c..64 * c + 64];
            for l in 0..32 {
                yc[l] = d1 * (q[l] & 0xF) as f32 - m1;
                yc[l + 32] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

pub(crate) fn q5_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ5K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = f16_to_f32(b.d);
        let min = f16_to_f32(b.dmin);
        let (mut u1, mut u2) = (1u8, 2u8);
        for c in 0..4 {
            let (sc1, m1) = scale_min_k4(2 * c, &b.scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, &b.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            let q = &b.qs[32 * c..32 * c + 32];
            let yc = &mut y[64 * c..64 * c + 64];
            for l in 0..32 {
                let h1 = if b.qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if b.qh[l] & u2 != 0 { 16 } else { 0 };
                yc[l] = d1 * ((q[l] & 0xF) + h1) as f32 - m1;
                yc[l + 32] = d2 * ((q[l] >> 4) + h2) as f32 - m2;
            }
            u1 <<= 2;
            u2 <<= 2;
        }
    }
}

/// The four 6-bit quants (minus 32) at position `l` of half `h` of a `Q6_K` block,
/// for elements `128h + l + {0, 32, 64, 96}`.
#[inline]
pub(crate) fn q6k_quads(b: &BlockQ6K, h: usize, l: usize) -> [i8; 4] {
    let ql = &b.ql[64 * h..64 * h + 64];
    let qh = b.qh[32 * h + l];
    [
        ((ql[l] & 0xF) | ((qh & 3) << 4)) as i8 - 32,
        ((ql[l + 32] & 0xF) | (((qh >> 2) & 3) << 4)) as i8 - 32,
        ((ql[l] >> 4) | (((qh >> 4) & 3) << 4)) as i8 - 32,
        ((ql[l + 32] >> 4) | (((qh >> 6) & 3) << 4)) as i8 - 32,
    ]
}

pub(crate) fn q6_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ6K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = f16_to_f32(b.d);
        for h in 0..2 {
            let sc = &b.scales[8 * h..8 * h + 8];
            let yh = &mut y[128 * h..128 * h + 128];
            for l in 0..32 {
                let is = l / 16;
                let q = q6k_quads(b, h, l);
                yh[l] = d * sc[is] as f32 * q[0] as f32;
                yh[l + 32] = d * sc[is + 2] as f32 * q[1] as f32;
                yh[l + 64] = d * sc[is + 4] as f32 * q[2] as f32;
                yh[l + 96] = d * sc[is + 6] as f32 * q[3] as f32;
            }
        }
    }
}

pub(crate) fn q8_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in blocks::<BlockQ8K>(src)
        .iter()
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = f32::from_le_bytes(b.d);
        for (o, &q) in y.iter_mut().zip(b.qs.iter()) {
            *o = d * q as f32;
        }
    }
}
