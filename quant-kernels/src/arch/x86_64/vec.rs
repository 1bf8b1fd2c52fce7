//! The vector kernels of `crate::vecops` compiled with the AVX2 / AVX-512
//! tier's features: the same source, so the same bits, on wider vectors.
//!
//! Soundness: the `#[target_feature]` functions are only called after the
//! tier's support was checked (`Tier` values only come from dispatch, which
//! checked them; [`softmax`] and [`swiglu`] check again).

use crate::vecops::{f32_to_f16_generic, round_f16_generic, softmax_generic, swiglu_generic};
use crate::Tier;

/// Softmax on tier `t` (AVX2 or AVX-512; anything else, or a CPU without
/// the tier, runs the portable build).
pub(crate) fn softmax(t: Tier, x: &mut [f32], scale: f32) {
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

/// # Safety
/// The AVX-512 tier's features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn softmax_z(x: &mut [f32], scale: f32) {
    softmax_generic(x, scale)
}

/// # Safety
/// The AVX2 tier's features.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn softmax_y(x: &mut [f32], scale: f32) {
    softmax_generic(x, scale)
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
