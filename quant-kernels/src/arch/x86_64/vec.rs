//! The vector kernels of `crate::vecops` on the AVX2 / AVX-512 tiers.
//!
//! SwiGLU and the f16 rounding are the generic source compiled with the
//! tier's features: the same source, so the same bits, on wider vectors.
//! Softmax (attention's, over every cached position of every query head,
//! 0.3 M exponentials a token at depth 1024) has its own code: one pass
//! less than the generic one, and `e^x` with fused multiply-adds. Its two
//! tiers give the same bits as each other (see [`softmax_y`]); against
//! the generic build they differ by a few ulp.
//!
//! Soundness: the `#[target_feature]` functions are only called after the
//! tier's support was checked (`Tier` values only come from dispatch, which
//! checked them; [`softmax`] and [`swiglu`] check again).

use core::arch::x86_64::*;

use crate::vecops::{f32_to_f16_generic, round_f16_generic, softmax_generic, swiglu_generic};
use crate::Tier;

/// Softmax on tier `t` (AVX2 or AVX-512; anything else, or a CPU without
/// the tier, runs the portable build).
pub(crate) fn softmax(t: Tier, x: &mut [f32], scale: f32) {
    // The tiers' code fuses the scale into the exponent's argument, which
    // needs it positive (the maximum of s·x is then s·max x).
    if scale.is_nan() || scale <= 0.0 {
        return softmax_generic(x, scale);
    }
    match t {
        // SAFETY: the AVX-512 tier's features were just checked.
        Tier::Avx512 if super::has_avx512_tier() => unsafe { softmax_z(x, scale) },
        // SAFETY: the AVX2 tier's features were just checked.
        Tier::Avx2 | Tier::Avx512 if super::has_avx2_tier() => unsafe { softmax_y(x, scale) },
        _ => softmax_generic(x, scale),
    }
}

/// SwiGLU on tier `t`, as [`softmax`].
pub(crate) fn swiglu(t: Tier, g: &mut [f32], u: &[f32]) {
    match t {
        // SAFETY: the AVX-512 tier's features were just checked.
        Tier::Avx512 if super::has_avx512_tier() => unsafe { swiglu_z(g, u) },
        // SAFETY: the AVX2 tier's features were just checked.
        Tier::Avx2 | Tier::Avx512 if super::has_avx2_tier() => unsafe { swiglu_y(g, u) },
        _ => swiglu_generic(g, u),
    }
}

/// Rounding to f16 precision on tier `t`, as [`softmax`].
pub(crate) fn round_f16(t: Tier, x: &mut [f32]) {
    match t {
        // SAFETY: the AVX-512 tier's features were just checked.
        Tier::Avx512 if super::has_avx512_tier() => unsafe { round_f16_z(x) },
        // SAFETY: the AVX2 tier's features were just checked.
        Tier::Avx2 | Tier::Avx512 if super::has_avx2_tier() => unsafe { round_f16_y(x) },
        _ => round_f16_generic(x),
    }
}

/// f32 to f16 bits on tier `t` (as [`round_f16`]).
pub(crate) fn f32_to_f16(t: Tier, src: &[f32], dst: &mut [u16]) {
    match t {
        // SAFETY: the AVX-512 tier's features were just checked.
        Tier::Avx512 if super::has_avx512_tier() => unsafe { f32_to_f16_z(src, dst) },
        // SAFETY: the AVX2 tier's features were just checked.
        Tier::Avx2 | Tier::Avx512 if super::has_avx2_tier() => unsafe { f32_to_f16_y(src, dst) },
        _ => f32_to_f16_generic(src, dst),
    }
}

/// # Safety
/// The AVX-512 tier's features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn f32_to_f16_z(src: &[f32], dst: &mut [u16]) {
    f32_to_f16_generic(src, dst)
}

/// # Safety
/// The AVX2 tier's features.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_to_f16_y(src: &[f32], dst: &mut [u16]) {
    f32_to_f16_generic(src, dst)
}

/// # Safety
/// The AVX-512 tier's features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn round_f16_z(x: &mut [f32]) {
    round_f16_generic(x)
}

/// # Safety
/// The AVX2 tier's features.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn round_f16_y(x: &mut [f32]) {
    round_f16_generic(x)
}

// `crate::vecops::exp`'s constants: Cody–Waite reduction `x = n·ln2 + r`,
// Cephes' degree-6 polynomial for `e^r`, and the range it covers.
use crate::vecops::exp_consts::{HI as EXP_HI, LN2_HI, LN2_LO, LO as EXP_LO, LOG2E, MAGIC, POLY};

/// Lanes of the softmax sums: element `j` is added to partial sum `j mod
/// 32` on both tiers, so their sums, like their exponentials, are the same.
const PARTIALS: usize = 32;

/// The partial sums, added in f64 in their order, to the reciprocal that
/// normalizes the row.
fn reciprocal(parts: &[f32; PARTIALS]) -> f32 {
    let sum: f64 = parts.iter().map(|&p| p as f64).sum();
    (1.0 / sum) as f32
}

/// `e^x` on 16 lanes: `crate::vecops::exp`'s reduction and polynomial with
/// fused multiply-adds, and `2^n` by `vscalefps`. Within 2 ulp of the
/// correctly rounded result for normal results; 0 below `EXP_LO`,
/// infinity above `EXP_HI`, NaN stays NaN. (Safe to call from code with
/// the AVX-512 tier's features: it touches no memory.)
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
fn exp_z(x: __m512) -> __m512 {
    let small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(EXP_LO));
    let big = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_set1_ps(EXP_HI));
    // max/min return their second operand when either is NaN: x's NaN
    // goes through.
    let xc = _mm512_min_ps(
        _mm512_set1_ps(EXP_HI),
        _mm512_max_ps(_mm512_set1_ps(EXP_LO), x),
    );
    // n = round(x·log2 e), ties to even: adding 1.5·2^23 rounds to an
    // integer (one fused op and a subtraction, where `vrndscaleps` is two).
    let magic = _mm512_set1_ps(MAGIC);
    let n = _mm512_sub_ps(_mm512_fmadd_ps(xc, _mm512_set1_ps(LOG2E), magic), magic);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), xc);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(POLY[0]);
    for &c in &POLY[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let e = _mm512_add_ps(
        _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r),
        _mm512_set1_ps(1.0),
    );
    let y = _mm512_maskz_scalef_ps(!small, e, n);
    _mm512_mask_blend_ps(big, y, _mm512_set1_ps(f32::INFINITY))
}

/// `e^x` on 8 lanes, as [`exp_z`] to the bit: the same reduction and
/// polynomial, and `2^n` as two exact power-of-two factors (one rounding,
/// as `vscalefps` rounds once). Safe to call from code with the AVX2
/// tier's features.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn exp_y(x: __m256) -> __m256 {
    let small = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(EXP_LO));
    let big = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(EXP_HI));
    let xc = _mm256_min_ps(
        _mm256_set1_ps(EXP_HI),
        _mm256_max_ps(_mm256_set1_ps(EXP_LO), x),
    );
    let magic = _mm256_set1_ps(MAGIC);
    let n = _mm256_sub_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(LOG2E), magic), magic);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(POLY[0]);
    for &c in &POLY[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let e = _mm256_add_ps(
        _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
        _mm256_set1_ps(1.0),
    );
    // n in [-126, 128] (NaN converts to i32::MIN, and NaN·anything stays
    // NaN): 2^n = 2^(n>>1) · 2^(n − (n>>1)), each a normal f32.
    let ni = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(ni);
    let n2 = _mm256_sub_epi32(ni, n1);
    let bias = _mm256_set1_epi32(127);
    let s1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias)));
    let s2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n2, bias)));
    let y = _mm256_mul_ps(_mm256_mul_ps(e, s1), s2);
    let y = _mm256_andnot_ps(small, y);
    _mm256_blendv_ps(y, _mm256_set1_ps(f32::INFINITY), big)
}

/// Softmax on 16 lanes: `x_i = e^{s·x_i − s·max} / Σ`, in three passes
/// (the maximum of the unscaled row, the exponentials and their sums, the
/// normalization), with the scale fused into the exponent's argument.
/// Only for `scale > 0`, which [`softmax`] checks.
///
/// # Safety
/// The AVX-512 tier's features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn softmax_z(x: &mut [f32], scale: f32) {
    // SAFETY: the tier's features (caller); every load and store is of
    // elements i..i+16 of x with i < n, masked to the first n − i.
    unsafe {
        let n = x.len();
        let p = x.as_mut_ptr();
        let tail = |i: usize| -> __mmask16 { ((1u32 << (n - i).min(16)) - 1) as __mmask16 };
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        let (mut m0, mut m1) = (ninf, ninf);
        let mut i = 0;
        while i + 32 <= n {
            // The maximum skips NaN (the second operand is kept), as the
            // generic build's does; a NaN still reaches every output.
            m0 = _mm512_max_ps(_mm512_loadu_ps(p.add(i)), m0);
            m1 = _mm512_max_ps(_mm512_loadu_ps(p.add(i + 16)), m1);
            i += 32;
        }
        while i < n {
            let k = tail(i);
            m0 = _mm512_mask_max_ps(m0, k, _mm512_maskz_loadu_ps(k, p.add(i)), m0);
            i += 16;
        }
        let max = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
        let (s, smax) = (_mm512_set1_ps(scale), _mm512_set1_ps(scale * max));
        let zero = _mm512_setzero_ps();
        let mut acc = [zero; 2];
        let mut i = 0;
        while i < n {
            let k = tail(i);
            let v = _mm512_maskz_loadu_ps(k, p.add(i));
            let e = exp_z(_mm512_fmsub_ps(v, s, smax));
            _mm512_mask_storeu_ps(p.add(i), k, e);
            let a = &mut acc[(i / 16) % 2];
            *a = _mm512_mask_add_ps(*a, k, *a, e);
            i += 16;
        }
        let mut parts = [0f32; PARTIALS];
        _mm512_storeu_ps(parts.as_mut_ptr(), acc[0]);
        _mm512_storeu_ps(parts.as_mut_ptr().add(16), acc[1]);
        let inv = _mm512_set1_ps(reciprocal(&parts));
        let mut i = 0;
        while i < n {
            let k = tail(i);
            let v = _mm512_maskz_loadu_ps(k, p.add(i));
            _mm512_mask_storeu_ps(p.add(i), k, _mm512_mul_ps(v, inv));
            i += 16;
        }
    }
}

/// Softmax on 8 lanes, as [`softmax_z`] to the bit: the same maximum, the
/// same exponentials ([`exp_y`]), each added to the same one of the 32
/// partial sums, and those added in the same order.
///
/// # Safety
/// The AVX2 tier's features.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn softmax_y(x: &mut [f32], scale: f32) {
    // SAFETY: the tier's features (caller); every load and store is of
    // elements i..i+8 of x with i < n, masked to the first n − i.
    unsafe {
        let n = x.len();
        let p = x.as_mut_ptr();
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let tail = |i: usize| -> __m256i {
            _mm256_cmpgt_epi32(_mm256_set1_epi32((n - i).min(8) as i32), lanes)
        };
        let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut m = [ninf; 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, mj) in m.iter_mut().enumerate() {
                *mj = _mm256_max_ps(_mm256_loadu_ps(p.add(i + 8 * j)), *mj);
            }
            i += 32;
        }
        while i < n {
            let k = tail(i);
            // Masked-off lanes load 0.0: keep the old maximum there.
            let v = _mm256_blendv_ps(
                ninf,
                _mm256_maskload_ps(p.add(i), k),
                _mm256_castsi256_ps(k),
            );
            m[0] = _mm256_max_ps(v, m[0]);
            i += 8;
        }
        let m01 = _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3]));
        let mut lanes_max = [0f32; 8];
        _mm256_storeu_ps(lanes_max.as_mut_ptr(), m01);
        let max = lanes_max
            .iter()
            .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
        let (s, smax) = (_mm256_set1_ps(scale), _mm256_set1_ps(scale * max));
        let zero = _mm256_setzero_ps();
        let mut acc = [zero; 4];
        let mut i = 0;
        while i < n {
            let k = tail(i);
            let v = _mm256_maskload_ps(p.add(i), k);
            let e = exp_y(_mm256_fmsub_ps(v, s, smax));
            _mm256_maskstore_ps(p.add(i), k, e);
            let a = &mut acc[(i / 8) % 4];
            *a = _mm256_add_ps(*a, _mm256_and_ps(e, _mm256_castsi256_ps(k)));
            i += 8;
        }
        let mut parts = [0f32; PARTIALS];
        for (j, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(parts.as_mut_ptr().add(8 * j), *a);
        }
        let inv = _mm256_set1_ps(reciprocal(&parts));
        let mut i = 0;
        while i < n {
            let k = tail(i);
            let v = _mm256_maskload_ps(p.add(i), k);
            _mm256_maskstore_ps(p.add(i), k, _mm256_mul_ps(v, inv));
            i += 8;
        }
    }
}

/// # Safety
/// The AVX-512 tier's features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn swiglu_z(g: &mut [f32], u: &[f32]) {
    swiglu_generic(g, u)
}

/// # Safety
/// The AVX2 tier's features.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn swiglu_y(g: &mut [f32], u: &[f32]) {
    swiglu_generic(g, u)
}

/// `e^x` of each element on tier `t`'s vectors ([`exp_z`], [`exp_y`]), for
/// the tests; false if the CPU lacks the tier.
#[cfg(test)]
pub(crate) fn exp_lanes(t: Tier, x: &[f32], out: &mut [f32]) -> bool {
    assert_eq!(x.len(), out.len());
    match t {
        Tier::Avx512 if super::has_avx512_tier() => {
            for (xs, os) in x.chunks(16).zip(out.chunks_mut(16)) {
                let mut v = [0f32; 16];
                v[..xs.len()].copy_from_slice(xs);
                // SAFETY: the AVX-512 tier's features were just checked;
                // the arrays hold 16 f32.
                unsafe { _mm512_storeu_ps(v.as_mut_ptr(), exp_z(_mm512_loadu_ps(v.as_ptr()))) };
                os.copy_from_slice(&v[..os.len()]);
            }
            true
        }
        Tier::Avx2 if super::has_avx2_tier() => {
            for (xs, os) in x.chunks(8).zip(out.chunks_mut(8)) {
                let mut v = [0f32; 8];
                v[..xs.len()].copy_from_slice(xs);
                // SAFETY: the AVX2 tier's features were just checked; the
                // arrays hold 8 f32.
                unsafe { _mm256_storeu_ps(v.as_mut_ptr(), exp_y(_mm256_loadu_ps(v.as_ptr()))) };
                os.copy_from_slice(&v[..os.len()]);
            }
            true
        }
        _ => false,
    }
}
