//! AVX2 + FMA + F16C tier: the kernel table and its safe entry points.
//!
//! Soundness: the `#[target_feature]` functions here are only reachable
//! through the safe wrappers, and those only through [`kernels`] /
//! [`quant_fn`] / [`dequant_fn`], which hand them out only after checking
//! that the CPU has avx2, fma and f16c.

use super::f16gemm::Ymm;
use super::isa::Avx2;
use super::kquants::{self, KQuant};
use super::legacy::{self, Legacy};
use crate::arch::f16gemm;
use crate::blocks::{blocks, blocks_mut};
use crate::dispatch::Kernels;
use crate::scalar::{DequantFn, QuantFn};
use crate::GgmlType;

/// Rows × columns of a legacy-format gemm tile (16 ymm registers).
const GEMM_R: usize = 4;
const GEMM_C: usize = 2;
/// Rows per legacy-format gemv step.
const GEMV_R: usize = 4;

/// This tier's kernels for weights of type `ty`; `None` if it has none of
/// its own or the CPU lacks avx2/fma/f16c.
pub(crate) fn kernels(ty: GgmlType) -> Option<Kernels> {
    if !super::has_avx2_tier() {
        return None;
    }
    Some(match ty {
        GgmlType::Q4_0 => legacy_kernels::<legacy::Q4_0, GEMM_R, GEMM_C>(),
        GgmlType::Q4_1 => legacy_kernels::<legacy::Q4_1, 2, 2>(),
        GgmlType::Q5_0 => legacy_kernels::<legacy::Q5_0, GEMM_R, GEMM_C>(),
        GgmlType::Q5_1 => legacy_kernels::<legacy::Q5_1, 2, 2>(),
        GgmlType::Q8_0 => legacy_kernels::<legacy::Q8_0, GEMM_R, GEMM_C>(),
        GgmlType::Q4_K => k_kernels::<kquants::Q4K>(),
        GgmlType::Q5_K => k_kernels::<kquants::Q5K>(),
        GgmlType::Q6_K => k_kernels::<kquants::Q6K>(),
        GgmlType::F16 => Kernels {
            vec_dot: f16_dot,
            gemv: Some(f16_gemv),
            gemm: Some(f16_gemm),
        },
        _ => return None,
    })
}

/// This tier's (bit-exact) row quantizers.
pub(crate) fn quant_fn(ty: GgmlType) -> Option<QuantFn> {
    if !super::has_avx2_tier() {
        return None;
    }
    Some(match ty {
        GgmlType::Q8_0 => q8_0_row,
        GgmlType::Q8_1 => q8_1_row,
        GgmlType::Q8_K => q8_k_row,
        GgmlType::F16 => f16_row,
        _ => return None,
    })
}

/// This tier's run-time activation quantizers (bit-exact with
/// `scalar::act_quant_fn`).
pub(crate) fn act_quant_fn(ty: GgmlType) -> Option<QuantFn> {
    if !super::has_avx2_tier() {
        return None;
    }
    match ty {
        GgmlType::Q8_0 => Some(q8_0_act_row),
        GgmlType::Q8_1 => Some(q8_1_act_row),
        _ => quant_fn(ty),
    }
}

fn q8_0_row(src: &[f32], dst: &mut [u8]) {
    // SAFETY: only reachable via `quant_fn`, which checked avx2+fma+f16c; sizes validated.
    unsafe { super::quant::quantize_q8_0::<false>(src, blocks_mut(dst)) }
}

fn q8_1_row(src: &[f32], dst: &mut [u8]) {
    // SAFETY: only reachable via `quant_fn`, which checked avx2+fma+f16c; sizes validated.
    unsafe { super::quant::quantize_q8_1::<false>(src, blocks_mut(dst)) }
}

fn q8_0_act_row(src: &[f32], dst: &mut [u8]) {
    // SAFETY: only reachable via `act_quant_fn`, which checked avx2+fma+f16c; sizes validated.
    unsafe { super::quant::quantize_q8_0::<true>(src, blocks_mut(dst)) }
}

fn q8_1_act_row(src: &[f32], dst: &mut [u8]) {
    // SAFETY: only reachable via `act_quant_fn`, which checked avx2+fma+f16c; sizes validated.
    unsafe { super::quant::quantize_q8_1::<true>(src, blocks_mut(dst)) }
}

fn q8_k_row(src: &[f32], dst: &mut [u8]) {
    // SAFETY: only reachable via `quant_fn`, which checked avx2+fma+f16c; sizes validated.
    unsafe { super::quant::quantize_q8_k(src, blocks_mut(dst)) }
}

fn f16_row(src: &[f32], dst: &mut [u8]) {
    // SAFETY: only reachable via `quant_fn`, which checked avx2+fma+f16c; sizes validated.
    unsafe { super::quant::quantize_f16(src, dst) }
}

fn f16_dequant_row(src: &[u8], dst: &mut [f32]) {
    // SAFETY: only reachable via `dequant_fn`, which checked avx2+fma+f16c; sizes validated.
    unsafe { super::quant::dequantize_f16(src, dst) }
}

/// This tier's row dequantizers (exact).
pub(crate) fn dequant_fn(ty: GgmlType) -> Option<DequantFn> {
    if !super::has_avx2_tier() {
        return None;
    }
    match ty {
        GgmlType::F16 => Some(f16_dequant_row),
        _ => None,
    }
}

/// `R × C`: the gemm tile (smaller for the formats with a min term, whose
/// extra accumulators would spill).
fn legacy_kernels<F: Legacy, const R: usize, const C: usize>() -> Kernels {
    Kernels {
        vec_dot: legacy_dot::<F>,
        gemv: Some(legacy_gemv::<F>),
        gemm: Some(legacy_gemm::<F, R, C>),
    }
}

fn legacy_dot<F: Legacy>(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: only reachable via `kernels`, which checked avx2+fma+f16c.
    unsafe { legacy_dot_t::<F>(blocks(w), blocks(x)) }
}

fn legacy_gemv<F: Legacy>(k: usize, w: &[u8], x: &[u8], y: &mut [f32]) {
    // SAFETY: only reachable via `kernels`, which checked avx2+fma+f16c;
    // sizes validated by the caller.
    unsafe { legacy_gemm_t::<F, GEMV_R, 1>(k, w, x, 1, y) }
}

fn legacy_gemm<F: Legacy, const R: usize, const C: usize>(
    k: usize,
    w: &[u8],
    x: &[u8],
    n: usize,
    y: &mut [f32],
    _: &mut [f32],
) {
    // SAFETY: only reachable via `kernels`, which checked avx2+fma+f16c;
    // sizes validated by the caller.
    unsafe { legacy_gemm_t::<F, R, C>(k, w, x, n, y) }
}

fn k_kernels<F: KQuant>() -> Kernels {
    Kernels {
        vec_dot: k_dot::<F>,
        gemv: Some(k_gemv::<F>),
        gemm: Some(k_gemm::<F>),
    }
}

fn k_dot<F: KQuant>(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut y = [0.0f32];
    // SAFETY: only reachable via `kernels`, which checked avx2+fma+f16c;
    // sizes validated by the caller (one row, one column).
    unsafe { k_gemm_t::<F, 1>(n, w, x, 1, &mut y) };
    y[0]
}

fn k_gemv<F: KQuant>(k: usize, w: &[u8], x: &[u8], y: &mut [f32]) {
    // SAFETY: only reachable via `kernels`, which checked avx2+fma+f16c;
    // sizes validated by the caller.
    unsafe { k_gemm_t::<F, 4>(k, w, x, 1, y) }
}

fn k_gemm<F: KQuant>(k: usize, w: &[u8], x: &[u8], n: usize, y: &mut [f32], _: &mut [f32]) {
    // SAFETY: only reachable via `kernels`, which checked avx2+fma+f16c;
    // sizes validated by the caller.
    unsafe { k_gemm_t::<F, 4>(k, w, x, n, y) }
}

/// # Safety
/// The CPU must support avx2, fma and f16c; sizes as [`kquants::gemm`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn k_gemm_t<F: KQuant, const R: usize>(
    k: usize,
    w: &[u8],
    x: &[u8],
    n: usize,
    y: &mut [f32],
) {
    // SAFETY: features enabled here; caller's contract.
    unsafe { kquants::gemm::<F, R>(k, w, x, n, y) }
}

fn f16_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: only reachable via `kernels`, which checked avx2+fma+f16c;
    // both rows hold 2n bytes (validated by the caller).
    unsafe { f16_dot_t(n, w, x) }
}

fn f16_gemv(k: usize, w: &[u8], x: &[u8], y: &mut [f32]) {
    // SAFETY: only reachable via `kernels`, which checked avx2+fma+f16c;
    // sizes validated by the caller.
    unsafe { f16_gemm_t::<4, 1>(k, w, x, 1, y) }
}

fn f16_gemm(k: usize, w: &[u8], x: &[u8], n: usize, y: &mut [f32], scratch: &mut [f32]) {
    // SAFETY: only reachable via `kernels`, which checked avx2+fma+f16c;
    // sizes validated by the caller.
    unsafe { f16_batch(k, w, x, n, y, scratch) }
}

/// Tile of the AVX2 F16 gemm: rows × columns (12 accumulators, 3 column
/// vectors and 1 row vector: the 16 registers). 4 × 3 ran at 77–80
/// GFLOP/s in `gemm_quick`, 6 × 2 at 59–65 (2026-11-27).
const F16_R: usize = 4;
const F16_C: usize = 3;

f16gemm::tier_gemm! {
    /// [`f16gemm::gemm`] on 8 lanes.
    fn f16_batch: "avx2,fma,f16c", Ymm, F16_R, F16_C
}

/// # Safety
/// The CPU must support avx2, fma and f16c; both rows hold `2n` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_dot_t(n: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: features enabled here; caller's contract.
    unsafe { super::half::vec_dot(n, w, x) }
}

/// # Safety
/// The CPU must support avx2, fma and f16c; sizes as [`super::half::gemm`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_gemm_t<const R: usize, const C: usize>(
    k: usize,
    w: &[u8],
    x: &[u8],
    n: usize,
    y: &mut [f32],
) {
    // SAFETY: features enabled here; caller's contract.
    unsafe { super::half::gemm::<R, C>(k, w, x, n, y) }
}

/// # Safety
/// The CPU must support avx2, fma and f16c; `w.len() == x.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn legacy_dot_t<F: Legacy>(w: &[F::W], x: &[F::X]) -> f32 {
    // SAFETY: features enabled here; caller's contract.
    unsafe { legacy::vec_dot::<F, Avx2>(w, x) }
}

/// # Safety
/// The CPU must support avx2, fma and f16c; sizes as [`legacy::gemm`].
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn legacy_gemm_t<F: Legacy, const R: usize, const C: usize>(
    k: usize,
    w: &[u8],
    x: &[u8],
    n: usize,
    y: &mut [f32],
) {
    // SAFETY: features enabled here; caller's contract.
    unsafe { legacy::gemm::<F, Avx2, R, C>(k, w, x, n, y) }
}

/// Wrapping sum of the little-endian u64 words of `buf` (a trailing partial
/// word is ignored), read with 256-bit loads: the read-bandwidth probe of the
/// benches. `None` without avx2.
pub(crate) fn sum_u64_words(buf: &[u8]) -> Option<u64> {
    if !super::has_avx2_tier() {
        return None;
    }
    // SAFETY: avx2+fma+f16c checked just above.
    Some(unsafe { sum_u64_words_t(buf) })
}

/// # Safety
/// The CPU must support avx2.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn sum_u64_words_t(buf: &[u8]) -> u64 {
    use core::arch::x86_64::*;
    let mut chunks = buf.chunks_exact(128);
    let mut acc = [_mm256_setzero_si256(); 4];
    for c in &mut chunks {
        for (j, a) in acc.iter_mut().enumerate() {
            // SAFETY: c has 128 bytes, so 32 bytes at 32 * j are readable; loadu is unaligned.
            let v = unsafe { _mm256_loadu_si256(c.as_ptr().add(32 * j).cast()) };
            *a = _mm256_add_epi64(*a, v);
        }
    }
    let mut lanes = [0u64; 16];
    for (j, a) in acc.iter().enumerate() {
        // SAFETY: 32 writable bytes at lanes[4 * j..]; storeu is unaligned.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().add(4 * j).cast(), *a) };
    }
    let mut s = lanes.iter().fold(0u64, |s, &v| s.wrapping_add(v));
    for w in chunks.remainder().chunks_exact(8) {
        s = s.wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
    }
    s
}
