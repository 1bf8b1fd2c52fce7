//! AVX2 activation quantizers, bit-exact with the scalar reference
//! (`crate::scalar::quant`), and the F16C row conversions.
//!
//! * `Q8_0`/`Q8_1` weights (`_ref`): C `roundf` (half away from zero) is rebuilt from a
//!   truncation and the exact fraction `x - trunc(x)`; results are clamped
//!   like Rust's saturating `as i8` and NaN lanes become 0, so even
//!   non-finite inputs match the reference.
//! * `Q8_K`: ggml's `nearest_int` (`+ 12582912.0` bit trick, ties to even)
//!   done lane-wise with the same wrapping `as i8`.
//! * F16: `vcvtps2ph` with round-to-nearest-even, as `half::f16::from_f32`.
//!
//! Scales (`d`, `s`) are computed with the same scalar f32 operations as the
//! reference, so they match bit for bit.

use core::arch::x86_64::*;

use super::isa::hsum_epi32;
use crate::blocks::*;
use crate::fp::f32_to_f16;

/// f16 bytes of `a` and `b` (`vcvtps2ph`, round to nearest even: the bits of
/// `half::f16::from_f32`, which the scalar reference uses).
///
/// # Safety
/// f16c available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_pair(a: f32, b: f32) -> ([u8; 2], [u8; 2]) {
    let h = _mm_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT }>(_mm_setr_ps(a, b, 0.0, 0.0));
    let bits = _mm_cvtsi128_si32(h) as u32;
    (
        (bits as u16).to_le_bytes(),
        ((bits >> 16) as u16).to_le_bytes(),
    )
}

/// 8 floats at `p`.
///
/// # Safety
/// avx available; 8 readable f32 at `p`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8(p: *const f32) -> __m256 {
    // SAFETY: caller's contract.
    unsafe { _mm256_loadu_ps(p) }
}

/// Largest lane.
///
/// # Safety
/// avx available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hmax_ps(x: __m256) -> f32 {
    let r = _mm_max_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
    let r = _mm_max_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_max_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// `|x|`.
///
/// # Safety
/// avx available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn abs_ps(x: __m256) -> __m256 {
    _mm256_andnot_ps(_mm256_set1_ps(-0.0), x)
}

/// `roundf(v) as i8` per lane (as i32 lanes): half away from zero,
/// saturating, NaN to 0.
///
/// # Safety
/// avx available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn roundf_i8(v: __m256) -> __m256i {
    let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
    let f = _mm256_sub_ps(v, t); // exact
    let one = _mm256_set1_ps(1.0);
    let up = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(f, _mm256_set1_ps(0.5)), one);
    let dn = _mm256_and_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(f, _mm256_set1_ps(-0.5)), one);
    let r = _mm256_sub_ps(_mm256_add_ps(t, up), dn);
    let r = _mm256_min_ps(
        _mm256_max_ps(r, _mm256_set1_ps(-128.0)),
        _mm256_set1_ps(127.0),
    );
    let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(v, v));
    _mm256_cvttps_epi32(r)
}

/// `v` rounded to nearest even, as i32 lanes clamped to `[-128, 127]`; NaN
/// lanes become 0 (as the scalar `round_ties_even(v) as i8`).
///
/// # Safety
/// avx available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn round_even_i8(v: __m256) -> __m256i {
    let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
    let r = _mm256_min_ps(
        _mm256_max_ps(r, _mm256_set1_ps(-128.0)),
        _mm256_set1_ps(127.0),
    );
    let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(v, v));
    _mm256_cvttps_epi32(r)
}

/// Packs 4×8 i32 lanes in `[-128, 127]` into 32 bytes in order.
///
/// # Safety
/// avx2 available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn pack_i8(q: [__m256i; 4]) -> __m256i {
    let a = _mm256_packs_epi32(q[0], q[1]);
    let b = _mm256_packs_epi32(q[2], q[3]);
    let c = _mm256_packs_epi16(a, b);
    _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// `1 / d`, or 0 for `d == 0` (as the reference).
#[inline(always)]
fn inv(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// Quantizes one block of 32: the scale and the i32 lanes of the quants.
///
/// # Safety
/// avx2, fma available.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_block<const ACT: bool>(x: &[f32; 32]) -> (f32, [__m256i; 4]) {
    // SAFETY: the 4 loads read x[0..32]; avx2 available (caller).
    unsafe {
        let v: [__m256; 4] = core::array::from_fn(|j| load8(x.as_ptr().add(8 * j)));
        let m = _mm256_max_ps(
            _mm256_max_ps(abs_ps(v[0]), abs_ps(v[1])),
            _mm256_max_ps(abs_ps(v[2]), abs_ps(v[3])),
        );
        let amax = hmax_ps(m);
        let d = amax / 127.0;
        if ACT {
            // ggml's run-time flavour: 127 / amax, ties to even.
            let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
            let q = core::array::from_fn(|j| round_even_i8(_mm256_mul_ps(v[j], id)));
            (d, q)
        } else {
            let id = _mm256_set1_ps(inv(d));
            let q = core::array::from_fn(|j| roundf_i8(_mm256_mul_ps(v[j], id)));
            (d, q)
        }
    }
}

/// `quantize_row_q8_0_ref` (`ACT = false`) or the run-time activation
/// flavour `scalar::quant::q8_0_act` (`ACT = true`), bit-exact for finite input.
///
/// # Safety
/// The CPU must support avx2, fma and f16c; `dst` holds `src.len() / 32` blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_q8_0<const ACT: bool>(src: &[f32], dst: &mut [BlockQ8_0]) {
    for (b, x) in dst.iter_mut().zip(src.chunks_exact(QK)) {
        let x: &[f32; 32] = x.try_into().unwrap_or(&[0.0; 32]);
        // SAFETY: features enabled here; qs is 32 writable bytes.
        unsafe {
            let (d, q) = q8_block::<ACT>(x);
            b.d = f16_pair(d, 0.0).0;
            _mm256_storeu_si256(b.qs.as_mut_ptr().cast(), pack_i8(q));
        }
    }
}

/// `quantize_row_q8_1_ref` (`ACT = false`) or `scalar::quant::q8_1_act`
/// (`ACT = true`), bit-exact for finite input.
///
/// # Safety
/// The CPU must support avx2, fma and f16c; `dst` holds `src.len() / 32` blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_q8_1<const ACT: bool>(src: &[f32], dst: &mut [BlockQ8_1]) {
    for (b, x) in dst.iter_mut().zip(src.chunks_exact(QK)) {
        let x: &[f32; 32] = x.try_into().unwrap_or(&[0.0; 32]);
        // SAFETY: features enabled here; qs is 32 writable bytes.
        unsafe {
            let (d, q) = q8_block::<ACT>(x);
            let sum = hsum_epi32(_mm256_add_epi32(
                _mm256_add_epi32(q[0], q[1]),
                _mm256_add_epi32(q[2], q[3]),
            ));
            (b.d, b.s) = f16_pair(d, d * sum as f32);
            _mm256_storeu_si256(b.qs.as_mut_ptr().cast(), pack_i8(q));
        }
    }
}

/// `quantize_row_q8_K_ref`, bit-exact (finite input).
///
/// # Safety
/// The CPU must support avx2, fma and f16c; `dst` holds `src.len() / 256` blocks.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_q8_k(src: &[f32], dst: &mut [BlockQ8K]) {
    for (b, x) in dst.iter_mut().zip(src.chunks_exact(QK_K)) {
        // SAFETY: features enabled here; every load reads within x (256 floats),
        // every store writes within b.qs (256 bytes).
        let iscale = unsafe {
            let p = x.as_ptr();
            // max(|v|, acc) returns acc for a NaN |v|: NaNs are skipped as in the reference.
            let mut m = _mm256_setzero_ps();
            for j in 0..32 {
                m = _mm256_max_ps(abs_ps(load8(p.add(8 * j))), m);
            }
            let amax = hmax_ps(m);
            if amax == 0.0 {
                *b = bytemuck::Zeroable::zeroed();
                continue;
            }
            // The first element of largest magnitude, with its sign.
            let am = _mm256_set1_ps(amax);
            let mut max = 0.0f32;
            for j in 0..32 {
                let e = _mm256_cmp_ps::<_CMP_EQ_OQ>(abs_ps(load8(p.add(8 * j))), am);
                let bits = _mm256_movemask_ps(e);
                if bits != 0 {
                    max = x[8 * j + bits.trailing_zeros() as usize];
                    break;
                }
            }
            let iscale = -127.0 / max;
            let is = _mm256_set1_ps(iscale);
            let magic = _mm256_set1_ps(12_582_912.0);
            for g in 0..8 {
                let q: [__m256i; 4] = [0, 1, 2, 3].map(|j| {
                    let v = _mm256_add_ps(_mm256_mul_ps(is, load8(p.add(32 * g + 8 * j))), magic);
                    let i = _mm256_sub_epi32(
                        _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x007f_ffff)),
                        _mm256_set1_epi32(0x0040_0000),
                    );
                    // `.min(127) as i8`: the low byte (wrapping).
                    _mm256_and_si256(
                        _mm256_min_epi32(i, _mm256_set1_epi32(127)),
                        _mm256_set1_epi32(0xFF),
                    )
                });
                let a = _mm256_packus_epi32(q[0], q[1]);
                let c = _mm256_packus_epi32(q[2], q[3]);
                let bytes = _mm256_packus_epi16(a, c);
                let bytes =
                    _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256(b.qs.as_mut_ptr().add(32 * g).cast(), bytes);
            }
            iscale
        };
        for j in 0..QK_K / 16 {
            let sum: i32 = b.qs[16 * j..16 * j + 16].iter().map(|&q| q as i32).sum();
            b.bsums[2 * j..2 * j + 2].copy_from_slice(&(sum as i16).to_le_bytes());
        }
        b.d = (1.0 / iscale).to_le_bytes();
    }
}

/// f32 → f16 (round to nearest even), exact to `half::f16::from_f32`.
///
/// # Safety
/// The CPU must support avx2, fma and f16c; `dst.len() == 2 * src.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn quantize_f16(src: &[f32], dst: &mut [u8]) {
    let mut s = src.chunks_exact(8);
    let mut d = dst.chunks_exact_mut(16);
    for (x, o) in (&mut s).zip(&mut d) {
        // SAFETY: 8 floats read, 16 bytes written; f16c enabled here.
        unsafe {
            let h = _mm256_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT }>(load8(x.as_ptr()));
            _mm_storeu_si128(o.as_mut_ptr().cast(), h);
        }
    }
    for (x, o) in s
        .remainder()
        .iter()
        .zip(d.into_remainder().chunks_exact_mut(2))
    {
        o.copy_from_slice(&f32_to_f16(*x));
    }
}

/// f16 → f32 (exact).
///
/// # Safety
/// The CPU must support avx2, fma and f16c; `src.len() == 2 * dst.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn dequantize_f16(src: &[u8], dst: &mut [f32]) {
    let mut s = src.chunks_exact(16);
    let mut d = dst.chunks_exact_mut(8);
    for (x, o) in (&mut s).zip(&mut d) {
        // SAFETY: 16 bytes read, 8 floats written; f16c enabled here.
        unsafe {
            let v = _mm256_cvtph_ps(_mm_loadu_si128(x.as_ptr().cast()));
            _mm256_storeu_ps(o.as_mut_ptr(), v);
        }
    }
    for (x, o) in s.remainder().chunks_exact(2).zip(d.into_remainder()) {
        *o = crate::fp::f16_to_f32([x[0], x[1]]);
    }
}
