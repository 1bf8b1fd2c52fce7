//! Pieces shared by the AArch64 tiers.
//!
//! * Small NEON helpers (`#[target_feature(enable = "neon")]`, `#[inline]`):
//!   they inline into every kernel of the NEON, dotprod and i8mm tiers, whose
//!   feature sets contain `neon`.
//! * [`f16`] / [`f16x8`]: half → single with `fcvt`/`fcvtl` through `asm!`
//!   (base ARMv8-A FP/SIMD, no FEAT_FP16 needed; the intrinsics are unstable).
//! * `int8_kernels!`: the integer kernels (legacy and K-quant vec dots, 4-row
//!   gemvs) written once, in terms of a `dot16(acc, a, b)` that each tier
//!   module defines (`smull`+`sadalp` on NEON, `sdot` on dotprod). The macro
//!   stamps them out with that tier's `#[target_feature]`, so `dot16` inlines.

use core::arch::aarch64::*;
use core::arch::asm;

use crate::blocks::BlockQ8K;

/// f16 bits (little-endian bytes) to f32, exact (`fcvt s, h`).
#[inline(always)]
pub(crate) fn f16(b: [u8; 2]) -> f32 {
    let h = u16::from_le_bytes(b);
    let out: f32;
    // SAFETY: `fcvt` (half to single) is base ARMv8-A floating point, present
    // on every aarch64 target; it only touches the named registers.
    unsafe {
        asm!(
            "fcvt {o:s}, {i:h}",
            o = lateout(vreg) out,
            i = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    out
}

/// Eight f16 (as `u16` lanes) to two vectors of four f32 (`fcvtl`/`fcvtl2`), exact.
#[inline(always)]
pub(crate) fn f16x8(h: uint16x8_t) -> (float32x4_t, float32x4_t) {
    let lo: float32x4_t;
    let hi: float32x4_t;
    // SAFETY: `fcvtl`/`fcvtl2` are base Advanced SIMD (ARMv8-A), present on
    // every aarch64 target; they only touch the named registers.
    unsafe {
        asm!(
            "fcvtl {lo:v}.4s, {h:v}.4h",
            "fcvtl2 {hi:v}.4s, {h:v}.8h",
            // `out`, not `lateout`: written before `h` is read again.
            lo = out(vreg) lo,
            hi = lateout(vreg) hi,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    (lo, hi)
}

/// The first 16 bytes of `s`.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn ld_u8(s: &[u8]) -> uint8x16_t {
    assert!(s.len() >= 16);
    // SAFETY: `s` has at least 16 readable bytes; `ld1` has no alignment requirement.
    unsafe { vld1q_u8(s.as_ptr()) }
}

/// The first 16 bytes of `s`, signed.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn ld_i8(s: &[i8]) -> int8x16_t {
    assert!(s.len() >= 16);
    // SAFETY: `s` has at least 16 readable bytes; `ld1` has no alignment requirement.
    unsafe { vld1q_s8(s.as_ptr()) }
}

/// 32 signed bytes as two vectors.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn ld32(s: &[i8; 32]) -> (int8x16_t, int8x16_t) {
    (ld_i8(&s[..16]), ld_i8(&s[16..]))
}

/// Four f32 from `s[0..4]`.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn ld_f32(s: &[f32]) -> float32x4_t {
    assert!(s.len() >= 4);
    // SAFETY: `s` has at least 4 readable, aligned f32.
    unsafe { vld1q_f32(s.as_ptr()) }
}

/// Stores 16 bytes at `d[0..16]`.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn st_i8(d: &mut [i8], v: int8x16_t) {
    assert!(d.len() >= 16);
    // SAFETY: `d` has at least 16 writable bytes; `st1` has no alignment requirement.
    unsafe { vst1q_s8(d.as_mut_ptr(), v) }
}

/// Nibbles of 16 bytes: (low, high), each as 16 lanes in `0..16`.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn nibbles(qs: &[u8]) -> (uint8x16_t, uint8x16_t) {
    let v = ld_u8(qs);
    (vandq_u8(v, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(v))
}

const Q5_IDX: [[u8; 16]; 2] = [
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
    [2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3],
];
const BIT_OF_LANE: [u8; 16] = [1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128];

/// The 5th bits of `Q5_0`/`Q5_1` as `0x10`/`0` bytes: (elements 0..16, 16..32).
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn q5_high(qh: [u8; 4]) -> (uint8x16_t, uint8x16_t) {
    let v = vreinterpretq_u8_u32(vdupq_n_u32(u32::from_le_bytes(qh)));
    let bits = ld_u8(&BIT_OF_LANE);
    let sixteen = vdupq_n_u8(0x10);
    let lo = vtstq_u8(vqtbl1q_u8(v, ld_u8(&Q5_IDX[0])), bits);
    let hi = vtstq_u8(vqtbl1q_u8(v, ld_u8(&Q5_IDX[1])), bits);
    (vandq_u8(lo, sixteen), vandq_u8(hi, sixteen))
}

/// `Q8_K`'s `d`.
#[inline(always)]
pub(crate) fn q8k_d(b: &BlockQ8K) -> f32 {
    f32::from_le_bytes(b.d)
}

/// `Q8_K`'s 16 `bsums` summed in pairs: lane `j` = `bsums[2j] + bsums[2j+1]`.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn q8k_bsum_pairs(b: &BlockQ8K) -> int16x8_t {
    let lo = vreinterpretq_s16_u8(ld_u8(&b.bsums[..16]));
    let hi = vreinterpretq_s16_u8(ld_u8(&b.bsums[16..]));
    vpaddq_s16(lo, hi)
}

/// `Σ_j pairs[j] * mins[j]` (the `Q4_K`/`Q5_K` min correction, before `dmin`).
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn dot_mins(pairs: int16x8_t, mins: [u8; 8]) -> i32 {
    let m = vreinterpretq_s16_u16(vmovl_u8(vcreate_u8(u64::from_le_bytes(mins))));
    let p = vaddq_s32(
        vmull_s16(vget_low_s16(pairs), vget_low_s16(m)),
        vmull_high_s16(pairs, m),
    );
    vaddvq_s32(p)
}

/// The eight 6-bit scales and eight 6-bit mins of `Q4_K`/`Q5_K` (ggml's `utmp` trick).
#[inline(always)]
pub(crate) fn k4_scales_mins(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let u0 = u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    let u1 = u32::from_le_bytes([s[4], s[5], s[6], s[7]]);
    let u2 = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
    let sc_lo = u0 & KMASK1;
    let sc_hi = (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4);
    let mn_lo = u1 & KMASK1;
    let mn_hi = ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4);
    let mut sc = [0u8; 8];
    let mut mn = [0u8; 8];
    sc[..4].copy_from_slice(&sc_lo.to_le_bytes());
    sc[4..].copy_from_slice(&sc_hi.to_le_bytes());
    mn[..4].copy_from_slice(&mn_lo.to_le_bytes());
    mn[4..].copy_from_slice(&mn_hi.to_le_bytes());
    (sc, mn)
}

/// Writes four f32 to `d[0..4]`.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn st_f32(d: &mut [f32], v: float32x4_t) {
    assert!(d.len() >= 4);
    // SAFETY: `d` has at least 4 writable, aligned f32.
    unsafe { vst1q_f32(d.as_mut_ptr(), v) }
}

/// A legacy (32-element) vec dot and, optionally, its 4-row gemv. Expanded
/// inside `int8_kernels!`, so `dot16`, `f16`, … resolve in the tier module.
///
/// `$blk(a, y) -> int32x4_t`: the integer dot of one weight block with the
/// activation block's two vectors; `$extra(a, b) -> f32`: the per-block
/// float term (`m * s` for `Q4_1`/`Q5_1`, `0` otherwise).
///
/// Float order (shared with the gemvs here and the i8mm gemms, so that they
/// equal the vec dot bit for bit, as the crate promises): each block gives
/// `sumi as f32 * (d_w * d_x)` (the block's exact integer sum); even blocks
/// add into one f32 chain, odd blocks into another (two chains hide the add
/// latency); the result is `(even + odd) + Σ extra`.
macro_rules! legacy_dot {
    ($feat:literal, $dot:ident, gemv: $gemv:ident, $W:ty, $X:ty, $blk:ident, $extra:ident) => {
        legacy_dot!($feat, $dot, $W, $X, $blk, $extra);

        /// Matrix-vector: `w` holds `y.len()` rows of `x.len()` blocks. Four
        /// rows at a time (one per lane) share each activation load; per
        /// row the arithmetic is exactly the vec dot's.
        #[target_feature(enable = $feat)]
        pub(crate) fn $gemv(w: &[$W], x: &[$X], y: &mut [f32]) {
            let nb = x.len();
            if nb == 0 {
                y.fill(0.0);
                return;
            }
            let mut rows = w.chunks_exact(4 * nb);
            let mut ys = y.chunks_exact_mut(4);
            for (w4, y4) in (&mut rows).zip(&mut ys) {
                let (r0, rest) = w4.split_at(nb);
                let (r1, rest) = rest.split_at(nb);
                let (r2, r3) = rest.split_at(nb);
                let mut extra = vdupq_n_f32(0.0);
                // Block `i` of the four rows: lane r = sumi_r as f32 * (d_r * d_x).
                let mut block = |i: usize| {
                    let b = &x[i];
                    let a = [&r0[i], &r1[i], &r2[i], &r3[i]];
                    let yv = ld32(&b.qs);
                    let p = a.map(|a| $blk(a, yv));
                    let sums = vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]));
                    let dy = f16(b.d);
                    let d = ld_f32(&a.map(|a| f16(a.d) * dy));
                    extra = vaddq_f32(extra, ld_f32(&a.map(|a| $extra(a, b))));
                    vmulq_f32(vcvtq_f32_s32(sums), d)
                };
                let (mut even, mut odd) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
                let mut i = 0;
                while i + 1 < nb {
                    even = vaddq_f32(even, block(i));
                    odd = vaddq_f32(odd, block(i + 1));
                    i += 2;
                }
                if i < nb {
                    even = vaddq_f32(even, block(i));
                }
                st_f32(y4, vaddq_f32(vaddq_f32(even, odd), extra));
            }
            for (row, o) in rows.remainder().chunks_exact(nb).zip(ys.into_remainder()) {
                *o = $dot(row, x);
            }
        }
    };
    ($feat:literal, $dot:ident, $W:ty, $X:ty, $blk:ident, $extra:ident) => {
        /// Vec dot over whole blocks (the shorter slice bounds it).
        #[target_feature(enable = $feat)]
        pub(crate) fn $dot(w: &[$W], x: &[$X]) -> f32 {
            let mut extra = 0.0f32;
            let mut block = |a: &$W, b: &$X| {
                extra += $extra(a, b);
                let sumi = vaddvq_s32($blk(a, ld32(&b.qs)));
                sumi as f32 * (f16(a.d) * f16(b.d))
            };
            let (mut even, mut odd) = (0.0f32, 0.0f32);
            let mut pw = w.chunks_exact(2);
            let mut px = x.chunks_exact(2);
            for (a, b) in (&mut pw).zip(&mut px) {
                even += block(&a[0], &b[0]);
                odd += block(&a[1], &b[1]);
            }
            if let (Some(a), Some(b)) = (pw.remainder().first(), px.remainder().first()) {
                even += block(a, b);
            }
            (even + odd) + extra
        }
    };
}
pub(crate) use legacy_dot;

/// The integer kernels of one tier. The invoking module must define
/// `fn dot16(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t` with
/// `#[target_feature(enable = $feat)]`: `acc` plus the 16 products `a[i]*b[i]`
/// spread over the four lanes in any way.
macro_rules! int8_kernels {
    ($feat:literal) => {
        use core::arch::aarch64::*;

        use super::common::{
            dot_mins, f16, k4_scales_mins, ld32, ld_f32, ld_i8, ld_u8, legacy_dot, nibbles,
            q5_high, q8k_bsum_pairs, q8k_d, st_f32,
        };
        use crate::blocks::{
            BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K,
            BlockQ8_0, BlockQ8_1,
        };

        #[target_feature(enable = $feat)]
        #[inline]
        fn dot32(lo: int8x16_t, hi: int8x16_t, y: (int8x16_t, int8x16_t)) -> int32x4_t {
            dot16(dot16(vdupq_n_s32(0), lo, y.0), hi, y.1)
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn blk_q4_0(a: &BlockQ4_0, y: (int8x16_t, int8x16_t)) -> int32x4_t {
            let (lo, hi) = nibbles(&a.qs);
            let eight = vdupq_n_s8(8);
            let lo = vsubq_s8(vreinterpretq_s8_u8(lo), eight);
            let hi = vsubq_s8(vreinterpretq_s8_u8(hi), eight);
            dot32(lo, hi, y)
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn blk_q4_1(a: &BlockQ4_1, y: (int8x16_t, int8x16_t)) -> int32x4_t {
            let (lo, hi) = nibbles(&a.qs);
            dot32(vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi), y)
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn blk_q5_0(a: &BlockQ5_0, y: (int8x16_t, int8x16_t)) -> int32x4_t {
            let (lo, hi) = nibbles(&a.qs);
            let (hlo, hhi) = q5_high(a.qh);
            let sixteen = vdupq_n_s8(16);
            let lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, hlo)), sixteen);
            let hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(hi, hhi)), sixteen);
            dot32(lo, hi, y)
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn blk_q5_1(a: &BlockQ5_1, y: (int8x16_t, int8x16_t)) -> int32x4_t {
            let (lo, hi) = nibbles(&a.qs);
            let (hlo, hhi) = q5_high(a.qh);
            let lo = vreinterpretq_s8_u8(vorrq_u8(lo, hlo));
            let hi = vreinterpretq_s8_u8(vorrq_u8(hi, hhi));
            dot32(lo, hi, y)
        }

        #[target_feature(enable = $feat)]
        #[inline]
        fn blk_q8_0(a: &BlockQ8_0, y: (int8x16_t, int8x16_t)) -> int32x4_t {
            let (lo, hi) = ld32(&a.qs);
            dot32(lo, hi, y)
        }

        #[inline(always)]
        fn no_extra<A, B>(_: &A, _: &B) -> f32 {
            0.0
        }

        #[inline(always)]
        fn min_q4_1(a: &BlockQ4_1, b: &BlockQ8_1) -> f32 {
            f16(a.m) * f16(b.s)
        }

        #[inline(always)]
        fn min_q5_1(a: &BlockQ5_1, b: &BlockQ8_1) -> f32 {
            f16(a.m) * f16(b.s)
        }

        legacy_dot!($feat, vec_dot_q4_0, gemv: gemv_q4_0, BlockQ4_0, BlockQ8_0, blk_q4_0, no_extra);
        legacy_dot!($feat, vec_dot_q4_1, gemv: gemv_q4_1, BlockQ4_1, BlockQ8_1, blk_q4_1, min_q4_1);
        legacy_dot!($feat, vec_dot_q8_0, gemv: gemv_q8_0, BlockQ8_0, BlockQ8_0, blk_q8_0, no_extra);
        legacy_dot!($feat, vec_dot_q5_0, BlockQ5_0, BlockQ8_0, blk_q5_0, no_extra);
        legacy_dot!($feat, vec_dot_q5_1, BlockQ5_1, BlockQ8_1, blk_q5_1, min_q5_1);

        /// `Q4_K`/`Q5_K` body: `unpack(c)` gives chunk `c`'s 64 quants as
        /// four vectors (elements `64c + 16i ..`).
        #[target_feature(enable = $feat)]
        #[inline]
        fn k45_block(
            b: &BlockQ8K,
            d: [u8; 2],
            dmin: [u8; 2],
            scales: &[u8; 12],
            unpack: impl Fn(usize) -> [int8x16_t; 4],
        ) -> (f32, f32) {
            let (sc, mn) = k4_scales_mins(scales);
            let mins = dot_mins(q8k_bsum_pairs(b), mn);
            let mut isum = vdupq_n_s32(0);
            for c in 0..4 {
                let q = unpack(c);
                let y = &b.qs[64 * c..64 * c + 64];
                let y0 = ld_i8(&y[..16]);
                let y1 = ld_i8(&y[16..32]);
                let y2 = ld_i8(&y[32..48]);
                let y3 = ld_i8(&y[48..]);
                let p_lo = dot32(q[0], q[1], (y0, y1));
                let p_hi = dot32(q[2], q[3], (y2, y3));
                isum = vmlaq_n_s32(isum, p_lo, sc[2 * c] as i32);
                isum = vmlaq_n_s32(isum, p_hi, sc[2 * c + 1] as i32);
            }
            let dq = q8k_d(b);
            (
                f16(d) * dq * vaddvq_s32(isum) as f32,
                f16(dmin) * dq * mins as f32,
            )
        }

        /// `Q4_K · Q8_K` over whole super-blocks.
        #[target_feature(enable = $feat)]
        pub(crate) fn vec_dot_q4_k(w: &[BlockQ4K], x: &[BlockQ8K]) -> f32 {
            let mut sumf = 0.0f32;
            let mut summ = 0.0f32;
            for (a, b) in w.iter().zip(x) {
                let (s, m) = k45_block(b, a.d, a.dmin, &a.scales, |c| {
                    let q = &a.qs[32 * c..32 * c + 32];
                    let (l0, h0) = nibbles(&q[..16]);
                    let (l1, h1) = nibbles(&q[16..]);
                    [l0, l1, h0, h1].map(|v| vreinterpretq_s8_u8(v))
                });
                sumf += s;
                summ += m;
            }
            sumf - summ
        }

        /// `Q5_K · Q8_K` over whole super-blocks.
        #[target_feature(enable = $feat)]
        pub(crate) fn vec_dot_q5_k(w: &[BlockQ5K], x: &[BlockQ8K]) -> f32 {
            let mut sumf = 0.0f32;
            let mut summ = 0.0f32;
            let sixteen = vdupq_n_u8(0x10);
            for (a, b) in w.iter().zip(x) {
                let qh0 = ld_u8(&a.qh[..16]);
                let qh1 = ld_u8(&a.qh[16..]);
                let (s, m) = k45_block(b, a.d, a.dmin, &a.scales, |c| {
                    let q = &a.qs[32 * c..32 * c + 32];
                    let (l0, h0) = nibbles(&q[..16]);
                    let (l1, h1) = nibbles(&q[16..]);
                    let m_lo = vdupq_n_u8(1 << (2 * c));
                    let m_hi = vdupq_n_u8(2 << (2 * c));
                    let bit = |h: uint8x16_t, m: uint8x16_t| vandq_u8(vtstq_u8(h, m), sixteen);
                    [
                        vorrq_u8(l0, bit(qh0, m_lo)),
                        vorrq_u8(l1, bit(qh1, m_lo)),
                        vorrq_u8(h0, bit(qh0, m_hi)),
                        vorrq_u8(h1, bit(qh1, m_hi)),
                    ]
                    .map(|v| vreinterpretq_s8_u8(v))
                });
                sumf += s;
                summ += m;
            }
            sumf - summ
        }

        /// `Q6_K · Q8_K` over whole super-blocks.
        #[target_feature(enable = $feat)]
        pub(crate) fn vec_dot_q6_k(w: &[BlockQ6K], x: &[BlockQ8K]) -> f32 {
            let mut sumf = 0.0f32;
            let m4 = vdupq_n_u8(0x0F);
            let m3 = vdupq_n_u8(0x03);
            let off = vdupq_n_s8(32);
            for (a, b) in w.iter().zip(x) {
                let mut isum = vdupq_n_s32(0);
                for h in 0..2 {
                    let ql = &a.ql[64 * h..64 * h + 64];
                    let qh = &a.qh[32 * h..32 * h + 32];
                    let ql = [
                        ld_u8(&ql[..16]),
                        ld_u8(&ql[16..32]),
                        ld_u8(&ql[32..48]),
                        ld_u8(&ql[48..]),
                    ];
                    let qh = [ld_u8(&qh[..16]), ld_u8(&qh[16..])];
                    for k in 0..4 {
                        // Quants 128h + 32k + 16i + j, i = 0, 1.
                        for i in 0..2 {
                            let l = ql[i + 2 * (k & 1)];
                            let low = if k < 2 { vandq_u8(l, m4) } else { vshrq_n_u8::<4>(l) };
                            let high = match k {
                                0 => vandq_u8(qh[i], m3),
                                1 => vandq_u8(vshrq_n_u8::<2>(qh[i]), m3),
                                2 => vandq_u8(vshrq_n_u8::<4>(qh[i]), m3),
                                _ => vshrq_n_u8::<6>(qh[i]),
                            };
                            let q = vorrq_u8(low, vshlq_n_u8::<4>(high));
                            let q = vsubq_s8(vreinterpretq_s8_u8(q), off);
                            let e = 128 * h + 32 * k + 16 * i;
                            let p = dot16(vdupq_n_s32(0), q, ld_i8(&b.qs[e..e + 16]));
                            isum = vmlaq_n_s32(isum, p, a.scales[e / 16] as i32);
                        }
                    }
                }
                sumf += f16(a.d) * q8k_d(b) * vaddvq_s32(isum) as f32;
            }
            sumf
        }

        /// Blocks of `bytes` (whose length the caller validated).
        #[inline(always)]
        fn bl<B: crate::blocks::Block>(bytes: &[u8]) -> &[B] {
            crate::blocks::blocks(bytes)
        }

        // Safe entry points with the dispatcher's signatures.

        fn q4_0_q8_0(_n: usize, w: &[u8], x: &[u8]) -> f32 {
            // SAFETY: only handed out by this module's `kernels`, after it
            // checked that the CPU has this tier's features.
            unsafe { vec_dot_q4_0(bl(w), bl(x)) }
        }

        fn q4_1_q8_1(_n: usize, w: &[u8], x: &[u8]) -> f32 {
            // SAFETY: as `q4_0_q8_0`: reachable only through `kernels`' feature check.
            unsafe { vec_dot_q4_1(bl(w), bl(x)) }
        }

        fn q5_0_q8_0(_n: usize, w: &[u8], x: &[u8]) -> f32 {
            // SAFETY: as `q4_0_q8_0`: reachable only through `kernels`' feature check.
            unsafe { vec_dot_q5_0(bl(w), bl(x)) }
        }

        fn q5_1_q8_1(_n: usize, w: &[u8], x: &[u8]) -> f32 {
            // SAFETY: as `q4_0_q8_0`: reachable only through `kernels`' feature check.
            unsafe { vec_dot_q5_1(bl(w), bl(x)) }
        }

        fn q8_0_q8_0(_n: usize, w: &[u8], x: &[u8]) -> f32 {
            // SAFETY: as `q4_0_q8_0`: reachable only through `kernels`' feature check.
            unsafe { vec_dot_q8_0(bl(w), bl(x)) }
        }

        fn q4_k_q8_k(_n: usize, w: &[u8], x: &[u8]) -> f32 {
            // SAFETY: as `q4_0_q8_0`: reachable only through `kernels`' feature check.
            unsafe { vec_dot_q4_k(bl(w), bl(x)) }
        }

        fn q5_k_q8_k(_n: usize, w: &[u8], x: &[u8]) -> f32 {
            // SAFETY: as `q4_0_q8_0`: reachable only through `kernels`' feature check.
            unsafe { vec_dot_q5_k(bl(w), bl(x)) }
        }

        fn q6_k_q8_k(_n: usize, w: &[u8], x: &[u8]) -> f32 {
            // SAFETY: as `q4_0_q8_0`: reachable only through `kernels`' feature check.
            unsafe { vec_dot_q6_k(bl(w), bl(x)) }
        }

        fn gemv_q4_0_q8_0(_k: usize, w: &[u8], x: &[u8], y: &mut [f32]) {
            // SAFETY: as `q4_0_q8_0`: reachable only through `kernels`' feature check.
            unsafe { gemv_q4_0(bl(w), bl(x), y) }
        }

        fn gemv_q4_1_q8_1(_k: usize, w: &[u8], x: &[u8], y: &mut [f32]) {
            // SAFETY: as `q4_0_q8_0`: reachable only through `kernels`' feature check.
            unsafe { gemv_q4_1(bl(w), bl(x), y) }
        }

        fn gemv_q8_0_q8_0(_k: usize, w: &[u8], x: &[u8], y: &mut [f32]) {
            // SAFETY: as `q4_0_q8_0`: reachable only through `kernels`' feature check.
            unsafe { gemv_q8_0(bl(w), bl(x), y) }
        }

        /// The integer kernels of this tier for weights of type `ty`.
        fn int8_kernels(ty: crate::GgmlType) -> Option<crate::dispatch::Kernels> {
            use crate::dispatch::{GemvFn, Kernels, VecDotFn};
            use crate::GgmlType::*;
            let with_gemv = |vec_dot: VecDotFn, gemv: GemvFn| Kernels {
                vec_dot,
                gemv: Some(gemv),
                gemm: None,
            };
            Some(match ty {
                Q4_0 => with_gemv(q4_0_q8_0, gemv_q4_0_q8_0),
                Q4_1 => with_gemv(q4_1_q8_1, gemv_q4_1_q8_1),
                Q8_0 => with_gemv(q8_0_q8_0, gemv_q8_0_q8_0),
                Q5_0 => Kernels::dot(q5_0_q8_0),
                Q5_1 => Kernels::dot(q5_1_q8_1),
                Q4_K => Kernels::dot(q4_k_q8_k),
                Q5_K => Kernels::dot(q5_k_q8_k),
                Q6_K => Kernels::dot(q6_k_q8_k),
                _ => return None,
            })
        }
    };
}
pub(crate) use int8_kernels;
