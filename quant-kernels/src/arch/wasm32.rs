//! WebAssembly SIMD128 tier: 128-bit integer dots for the legacy formats the
//! LLaMA-family GGUFs use most (Q4_0, Q4_1, Q8_0).
//!
//! WebAssembly has no run-time feature detection: a module either was
//! compiled with `simd128` (`-C target-feature=+simd128`) or was not, and an
//! engine refuses to load a module with instructions it lacks. So this
//! module exists only in builds with the feature, where the tier is always
//! supported, and its intrinsics need no `#[target_feature]` of their own.
//!
//! An 8-bit dot is exact: `i16x8_extmul_*_i8x16` multiplies 8 pairs into
//! i16 (|a·b| <= 128·128 fits), and `i32x4_extadd_pairwise_i16x8` adds
//! neighbours into i32. Each block's integer sum is then scaled in f32, four
//! lanes at a time, and the lanes are added at the end.

use core::arch::wasm32::*;

use crate::blocks::{blocks, BlockQ4_0, BlockQ4_1, BlockQ8_0, BlockQ8_1};
use crate::dispatch::Kernels;
use crate::fp::f16_to_f32;
use crate::GgmlType;

/// This tier's kernels for weights of type `ty`; `None` where it has none
/// (the scalar tier's are used).
pub(crate) fn kernels(ty: GgmlType) -> Option<Kernels> {
    Some(match ty {
        GgmlType::Q4_0 => Kernels::dot(q4_0_q8_0),
        GgmlType::Q4_1 => Kernels::dot(q4_1_q8_1),
        GgmlType::Q8_0 => Kernels::dot(q8_0_q8_0),
        _ => return None,
    })
}

/// 16 bytes as a vector.
#[inline(always)]
fn load16(b: &[u8; 16]) -> v128 {
    // SAFETY: `b` is 16 readable bytes; `v128_load` has no alignment
    // requirement.
    unsafe { v128_load(b.as_ptr().cast()) }
}

/// 32 quants as two vectors.
#[inline(always)]
fn load32(q: &[i8; 32]) -> (v128, v128) {
    // SAFETY: `q` is 32 readable bytes; no alignment requirement.
    unsafe {
        (
            v128_load(q.as_ptr().cast()),
            v128_load(q.as_ptr().add(16).cast()),
        )
    }
}

/// `acc + Σ a[i]·b[i]` over 16 signed bytes, into 4 i32 lanes (exact).
#[inline(always)]
fn dot16(acc: v128, a: v128, b: v128) -> v128 {
    let lo = i32x4_extadd_pairwise_i16x8(i16x8_extmul_low_i8x16(a, b));
    let hi = i32x4_extadd_pairwise_i16x8(i16x8_extmul_high_i8x16(a, b));
    i32x4_add(acc, i32x4_add(lo, hi))
}

/// The sum of 4 f32 lanes.
#[inline(always)]
fn hsum(v: v128) -> f32 {
    f32x4_extract_lane::<0>(v)
        + f32x4_extract_lane::<1>(v)
        + f32x4_extract_lane::<2>(v)
        + f32x4_extract_lane::<3>(v)
}

/// A Q4 block's nibbles as signed bytes: low (elements 0..16) and high
/// (16..32), each minus `off`.
#[inline(always)]
fn nibbles(qs: &[u8; 16], off: i8) -> (v128, v128) {
    let q = load16(qs);
    let lo = v128_and(q, u8x16_splat(0x0F));
    let hi = u8x16_shr(q, 4);
    let o = i8x16_splat(off);
    (i8x16_sub(lo, o), i8x16_sub(hi, o))
}

/// One block's exact integer dot: its 32 weights (two vectors of signed
/// bytes) against 32 activation quants, in 4 i32 lanes.
#[inline(always)]
fn dot32((w0, w1): (v128, v128), y: &[i8; 32]) -> v128 {
    let (y0, y1) = load32(y);
    dot16(dot16(i32x4_splat(0), w0, y0), w1, y1)
}

/// `acc + s · d`: a block's integer lanes scaled by the product of its
/// scales, added in f32.
#[inline(always)]
fn scale_add(acc: v128, s: v128, d: f32) -> v128 {
    f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(s), f32x4_splat(d)))
}

fn q4_0_q8_0(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut acc = f32x4_splat(0.0);
    for (a, b) in blocks::<BlockQ4_0>(w).iter().zip(blocks::<BlockQ8_0>(x)) {
        let s = dot32(nibbles(&a.qs, 8), &b.qs);
        acc = scale_add(acc, s, f16_to_f32(a.d) * f16_to_f32(b.d));
    }
    hsum(acc)
}

fn q4_1_q8_1(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut acc = f32x4_splat(0.0);
    let mut mins = 0.0f32;
    for (a, b) in blocks::<BlockQ4_1>(w).iter().zip(blocks::<BlockQ8_1>(x)) {
        let s = dot32(nibbles(&a.qs, 0), &b.qs);
        acc = scale_add(acc, s, f16_to_f32(a.d) * f16_to_f32(b.d));
        mins += f16_to_f32(a.m) * f16_to_f32(b.s);
    }
    hsum(acc) + mins
}

fn q8_0_q8_0(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut acc = f32x4_splat(0.0);
    for (a, b) in blocks::<BlockQ8_0>(w).iter().zip(blocks::<BlockQ8_0>(x)) {
        let s = dot32(load32(&a.qs), &b.qs);
        acc = scale_add(acc, s, f16_to_f32(a.d) * f16_to_f32(b.d));
    }
    hsum(acc)
}
