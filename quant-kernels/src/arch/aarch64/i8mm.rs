//! AArch64 int8 matrix-multiply (`smmla`) kernels: gemm for `Q8_0` and `Q4_0`
//! weights against `Q8_0` activations (prompt batches).
//!
//! One `smmla` multiplies a 2×8 by an 8×2 int8 tile into a 2×2 int32 tile;
//! a 32-element block of two weight rows and two activation rows is four of
//! them. Odd leftover rows/columns use the dotprod tier's vec dot. Vec dots
//! and gemvs fall back to the dotprod tier.
//!
//! `vmmlaq_s32` is not stable in Rust, so `smmla` is emitted with `asm!` from
//! a `#[target_feature(enable = "neon,dotprod,i8mm")]` helper.
//!
//! Soundness: the `#[target_feature]` functions here are reached only through
//! the safe wrappers, and those only through [`kernels`], which hands them
//! out only after checking that the CPU has NEON, dotprod and i8mm.

use core::arch::aarch64::*;

use super::common::{f16, ld32, ld_f32, nibbles};
use super::dotprod;
use super::has;
use crate::blocks::{blocks, BlockQ4_0, BlockQ8_0};
use crate::dispatch::Kernels;
use crate::GgmlType;

/// This tier's kernels for weights of type `ty`; `None` if it has none of
/// its own (or the CPU lacks NEON, dotprod or i8mm).
pub(crate) fn kernels(ty: GgmlType) -> Option<Kernels> {
    if !(has("neon") && has("dotprod") && has("i8mm")) {
        return None;
    }
    // Vec dot and gemv: the dotprod tier's (checked above).
    let below = dotprod::kernels(ty)?;
    let gemm: crate::dispatch::GemmFn = match ty {
        GgmlType::Q8_0 => gemm_q8_0_q8_0,
        GgmlType::Q4_0 => gemm_q4_0_q8_0,
        _ => return None,
    };
    Some(Kernels {
        gemm: Some(gemm),
        ..below
    })
}

fn gemm_q8_0_q8_0(_k: usize, w: &[u8], x: &[u8], n: usize, y: &mut [f32], _: &mut [f32]) {
    // SAFETY: only handed out by `kernels`, after it checked neon, dotprod and i8mm.
    unsafe { gemm_q8_0(blocks(w), blocks(x), n, y) }
}

fn gemm_q4_0_q8_0(_k: usize, w: &[u8], x: &[u8], n: usize, y: &mut [f32], _: &mut [f32]) {
    // SAFETY: only handed out by `kernels`, after it checked neon, dotprod and i8mm.
    unsafe { gemm_q4_0(blocks(w), blocks(x), n, y) }
}

/// `acc` plus the 2×2 products of the two 8-byte rows of `a` with the two
/// 8-byte rows of `b`: lanes `[a0·b0, a0·b1, a1·b0, a1·b1]` (`smmla`).
#[target_feature(enable = "neon,dotprod,i8mm")]
#[inline]
fn smmla(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: `smmla` needs FEAT_I8MM, which this function's `target_feature`
    // requires of its callers; it only touches registers.
    unsafe {
        core::arch::asm!(
            "smmla {0:v}.4s, {1:v}.16b, {2:v}.16b",
            inout(vreg) acc,
            in(vreg) a,
            in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    acc
}

/// Interleaves two 16-byte rows into 2×8 tiles: (`[a[0..8], b[0..8]]`, `[a[8..16], b[8..16]]`).
#[target_feature(enable = "neon,dotprod,i8mm")]
#[inline]
fn zip8(a: int8x16_t, b: int8x16_t) -> (int8x16_t, int8x16_t) {
    let (a, b) = (vreinterpretq_s64_s8(a), vreinterpretq_s64_s8(b));
    (
        vreinterpretq_s8_s64(vzip1q_s64(a, b)),
        vreinterpretq_s8_s64(vzip2q_s64(a, b)),
    )
}

type Row32 = (int8x16_t, int8x16_t);

/// The 2×2 integer dots of one 32-element block of rows `r0`, `r1` with
/// columns `c0`, `c1`: `[r0·c0, r0·c1, r1·c0, r1·c1]`.
#[target_feature(enable = "neon,dotprod,i8mm")]
#[inline]
fn tile(r0: Row32, r1: Row32, c0: Row32, c1: Row32) -> int32x4_t {
    let (a0, a1) = zip8(r0.0, r1.0);
    let (a2, a3) = zip8(r0.1, r1.1);
    let (b0, b1) = zip8(c0.0, c1.0);
    let (b2, b3) = zip8(c0.1, c1.1);
    let acc = smmla(vdupq_n_s32(0), a0, b0);
    let acc = smmla(acc, a1, b1);
    let acc = smmla(acc, a2, b2);
    smmla(acc, a3, b3)
}

#[target_feature(enable = "neon,dotprod,i8mm")]
#[inline]
fn unpack_q8_0(a: &BlockQ8_0) -> Row32 {
    ld32(&a.qs)
}

#[target_feature(enable = "neon,dotprod,i8mm")]
#[inline]
fn unpack_q4_0(a: &BlockQ4_0) -> Row32 {
    let (lo, hi) = nibbles(&a.qs);
    let eight = vdupq_n_s8(8);
    (
        vsubq_s8(vreinterpretq_s8_u8(lo), eight),
        vsubq_s8(vreinterpretq_s8_u8(hi), eight),
    )
}

/// `y[r * n + j] = dot(w row r, x row j)`: `w` holds whole rows of
/// `x.len() / n` blocks, `x` exactly `n` rows, `y` `rows * n` outputs.
macro_rules! gemm {
    ($name:ident, $W:ty, $unpack:ident, $dot:path) => {
        #[target_feature(enable = "neon,dotprod,i8mm")]
        fn $name(w: &[$W], x: &[BlockQ8_0], n: usize, y: &mut [f32]) {
            if n == 0 || x.is_empty() {
                y.fill(0.0);
                return;
            }
            let nb = x.len() / n;
            let m = w.len() / nb;
            let wr = |r: usize| &w[r * nb..(r + 1) * nb];
            let xr = |j: usize| &x[j * nb..(j + 1) * nb];
            for r in (0..m - m % 2).step_by(2) {
                let (w0, w1) = (wr(r), wr(r + 1));
                for j in (0..n - n % 2).step_by(2) {
                    let (x0, x1) = (xr(j), xr(j + 1));
                    // As the vec dot (see `common::legacy_dot!`): per block
                    // `sumi as f32 * (d_w * d_x)`, even and odd blocks in
                    // separate chains, so each output equals it bit for bit.
                    let block = |i: usize| {
                        let (a0, a1, b0, b1) = (&w0[i], &w1[i], &x0[i], &x1[i]);
                        let p = tile($unpack(a0), $unpack(a1), ld32(&b0.qs), ld32(&b1.qs));
                        let (da0, da1) = (f16(a0.d), f16(a1.d));
                        let (db0, db1) = (f16(b0.d), f16(b1.d));
                        let d = ld_f32(&[da0 * db0, da0 * db1, da1 * db0, da1 * db1]);
                        vmulq_f32(vcvtq_f32_s32(p), d)
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
                    let acc = vaddq_f32(even, odd);
                    y[r * n + j] = vgetq_lane_f32::<0>(acc);
                    y[r * n + j + 1] = vgetq_lane_f32::<1>(acc);
                    y[(r + 1) * n + j] = vgetq_lane_f32::<2>(acc);
                    y[(r + 1) * n + j + 1] = vgetq_lane_f32::<3>(acc);
                }
                if n % 2 == 1 {
                    let j = n - 1;
                    y[r * n + j] = $dot(w0, xr(j));
                    y[(r + 1) * n + j] = $dot(w1, xr(j));
                }
            }
            if m % 2 == 1 {
                let r = m - 1;
                for j in 0..n {
                    y[r * n + j] = $dot(wr(r), xr(j));
                }
            }
        }
    };
}

gemm!(gemm_q8_0, BlockQ8_0, unpack_q8_0, dotprod::vec_dot_q8_0);
gemm!(gemm_q4_0, BlockQ4_0, unpack_q4_0, dotprod::vec_dot_q4_0);
