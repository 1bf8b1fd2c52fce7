//! AVX2 + FMA + F16C kernels (whole blocks, ggml's algorithms).
//!
//! Soundness: the `#[target_feature]` functions here are only reachable
//! through the safe wrappers, and those only through [`kernels`], which
//! returns them only after checking that the CPU has avx2, fma and f16c.

use core::arch::x86_64::*;

use crate::blocks::{blocks, BlockQ4_0, BlockQ4_1, BlockQ8_0, BlockQ8_1};
use crate::dispatch::Kernels;
use crate::scalar::QuantFn;
use crate::GgmlType;

/// This tier's kernels for weights of type `ty`; `None` if it has none of
/// its own or the CPU lacks avx2/fma/f16c.
pub(crate) fn kernels(ty: GgmlType) -> Option<Kernels> {
    if !super::has_avx2_tier() {
        return None;
    }
    match ty {
        GgmlType::Q4_0 => Some(Kernels::dot(q4_0_q8_0)),
        GgmlType::Q4_1 => Some(Kernels::dot(q4_1_q8_1)),
        GgmlType::Q8_0 => Some(Kernels::dot(q8_0_q8_0)),
        _ => None,
    }
}

/// This tier's (bit-exact) row quantizers; none yet.
pub(crate) fn quant_fn(ty: GgmlType) -> Option<QuantFn> {
    if !super::has_avx2_tier() {
        return None;
    }
    let _ = ty;
    None
}

fn q4_0_q8_0(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: only reachable via `kernels`, which checked avx2+fma+f16c.
    unsafe { vec_dot_q4_0_q8_0(blocks(w), blocks(x)) }
}

fn q4_1_q8_1(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: only reachable via `kernels`, which checked avx2+fma+f16c.
    unsafe { vec_dot_q4_1_q8_1(blocks(w), blocks(x)) }
}

fn q8_0_q8_0(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: only reachable via `kernels`, which checked avx2+fma+f16c.
    unsafe { vec_dot_q8_0_q8_0(blocks(w), blocks(x)) }
}

/// f16 bits to f32 with F16C (exact).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn f16(b: [u8; 2]) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(
        _mm_cvtsi32_si128(u16::from_le_bytes(b) as i32),
    ))
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_f32x8(x: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// 32 signed bytes · 32 signed bytes, as 8 f32 lanes of partial sums.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_sum_i8_pairs(x: __m256i, y: __m256i) -> __m256 {
    // |x| · (y with x's sign): maddubs needs an unsigned first operand.
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    mul_sum_us8_pairs(ax, sy)
}

/// 32 unsigned bytes · 32 signed bytes, as 8 f32 lanes of partial sums.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn mul_sum_us8_pairs(ax: __m256i, sy: __m256i) -> __m256 {
    let dot16 = _mm256_maddubs_epi16(ax, sy);
    let dot32 = _mm256_madd_epi16(dot16, _mm256_set1_epi16(1));
    _mm256_cvtepi32_ps(dot32)
}

/// The 16 bytes of `qs` as 32 nibbles: low nibbles in bytes 0..16, high in 16..32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn nibbles(qs: &[u8; 16]) -> __m256i {
    // SAFETY: `qs` is 16 readable bytes; `loadu` has no alignment requirement.
    let v = unsafe { _mm_loadu_si128(qs.as_ptr().cast::<__m128i>()) };
    let hi = _mm_srli_epi16::<4>(v);
    let both = _mm256_set_m128i(hi, v);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn load32(qs: &[i8; 32]) -> __m256i {
    // SAFETY: `qs` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(qs.as_ptr().cast::<__m256i>()) }
}

/// `Q4_0 · Q8_0` over whole blocks (the shorter slice bounds the loop).
///
/// # Safety
/// The CPU must support avx2, fma and f16c.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q4_0_q8_0(w: &[BlockQ4_0], x: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let off = _mm256_set1_epi8(8);
    for (a, b) in w.iter().zip(x) {
        let d = _mm256_set1_ps(f16(a.d) * f16(b.d));
        let qx = _mm256_sub_epi8(nibbles(&a.qs), off);
        let qy = load32(&b.qs);
        acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs(qx, qy), acc);
    }
    hsum_f32x8(acc)
}

/// `Q4_1 · Q8_1` over whole blocks.
///
/// # Safety
/// The CPU must support avx2, fma and f16c.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q4_1_q8_1(w: &[BlockQ4_1], x: &[BlockQ8_1]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut summs = 0.0f32;
    for (a, b) in w.iter().zip(x) {
        summs += f16(a.m) * f16(b.s);
        let d = _mm256_set1_ps(f16(a.d) * f16(b.d));
        let qx = nibbles(&a.qs);
        let qy = load32(&b.qs);
        acc = _mm256_fmadd_ps(d, mul_sum_us8_pairs(qx, qy), acc);
    }
    hsum_f32x8(acc) + summs
}

/// `Q8_0 · Q8_0` over whole blocks.
///
/// # Safety
/// The CPU must support avx2, fma and f16c.
#[target_feature(enable = "avx2,fma,f16c")]
pub(crate) unsafe fn vec_dot_q8_0_q8_0(w: &[BlockQ8_0], x: &[BlockQ8_0]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for (a, b) in w.iter().zip(x) {
        let d = _mm256_set1_ps(f16(a.d) * f16(b.d));
        acc = _mm256_fmadd_ps(d, mul_sum_i8_pairs(load32(&a.qs), load32(&b.qs)), acc);
    }
    hsum_f32x8(acc)
}
