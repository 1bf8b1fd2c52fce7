//! AVX-512 tier (F + BW + VL; VNNI where present): the kernel table.
//!
//! Prompt-batch gemm: [`zgemm`] (one zmm lane per weight row, `vpdpbusd`
//! on 512-bit vectors, unpacked weight strips reused across columns) for
//! Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K and Q6_K with VNNI, and its f32-FMA
//! F16 gemm. vec_dot / gemv of the legacy formats (Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0) use `vpdpbusd` on 512-bit vectors, two blocks per vector
//! ([`zgemv`]); Q4_K's take 64 quants per
//! 512-bit step ([`kquants::Q4KZ`]); F16 vec_dot / gemv use 512-bit FMAs with
//! masked tails. Without VNNI the integer formats fall back to the AVX2 tier.
//!
//! Soundness: the `#[target_feature]` functions here are only reachable
//! through the safe wrappers, and those only through [`kernels`], which
//! hands them out only after checking the features they need.

use super::kquants;
use super::legacy;
use super::zgemm;
use super::zgemv;
use crate::dispatch::Kernels;
use crate::GgmlType;

const GEMV_R: usize = 4;

/// This tier's kernels for weights of type `ty`; `None` if it has none of
/// its own (or the CPU lacks the tier's features).
pub(crate) fn kernels(ty: GgmlType) -> Option<Kernels> {
    if !super::has_avx512_tier() {
        return None;
    }
    let vnni = super::has("avx512vnni");
    Some(match ty {
        GgmlType::Q4_0 if vnni => pair_kernels::<legacy::Q4_0, zgemm::Q4_0>(),
        GgmlType::Q4_1 if vnni => pair_kernels::<legacy::Q4_1, zgemm::Q4_1>(),
        GgmlType::Q5_0 if vnni => pair_kernels::<legacy::Q5_0, zgemm::Q5_0>(),
        GgmlType::Q5_1 if vnni => pair_kernels::<legacy::Q5_1, zgemm::Q5_1>(),
        GgmlType::Q8_0 if vnni => pair_kernels::<legacy::Q8_0, zgemm::Q8_0>(),
        // vec_dot / gemv on 512-bit vectors, the batched gemm with VNNI.
        GgmlType::Q4_K if vnni => Kernels {
            vec_dot: q4_k_dot,
            gemv: Some(q4_k_gemv),
            gemm: Some(z_gemm::<zgemm::Q4K>),
        },
        GgmlType::Q6_K if vnni => Kernels {
            gemm: Some(z_gemm::<zgemm::Q6K>),
            ..super::avx2::kernels(ty)?
        },
        GgmlType::F16 => Kernels {
            vec_dot: f16_dot,
            gemv: Some(f16_gemv),
            gemm: Some(f16_gemm),
        },
        _ => return None,
    })
}

/// Q4_K's vec dot: the 1-row tile of [`q4_k_gemv`] (same bits).
fn q4_k_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let mut y = [0.0f32];
    // SAFETY: only reachable via `kernels`, which checked the AVX-512 tier;
    // one row and one column of n elements (validated by the caller).
    unsafe { q4_k_gemm_t::<1>(n, w, x, &mut y) };
    y[0]
}

/// Q4_K's gemv: [`kquants::Q4KZ`] (64 quants per 512-bit step), 4 rows a tile.
fn q4_k_gemv(k: usize, w: &[u8], x: &[u8], y: &mut [f32]) {
    // SAFETY: only reachable via `kernels`, which checked the AVX-512 tier;
    // sizes validated by the caller.
    unsafe { q4_k_gemm_t::<GEMV_R>(k, w, x, y) }
}

/// # Safety
/// The CPU must support the AVX-512 tier; sizes as [`kquants::gemm`] with
/// one column.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn q4_k_gemm_t<const R: usize>(k: usize, w: &[u8], x: &[u8], y: &mut [f32]) {
    // SAFETY: the AVX-512 tier's features are enabled here (Q4KZ's
    // requirement); caller's contract.
    unsafe { kquants::gemm::<kquants::Q4KZ, R>(k, w, x, 1, y) }
}

/// A legacy format's kernels with VNNI: vec dot and gemv from [`zgemv`]
/// (two blocks per vector), the batched gemm from [`zgemm`] (`Z`).
fn pair_kernels<F: zgemv::Pair, Z: zgemm::ZFormat>() -> Kernels {
    Kernels {
        vec_dot: pair_dot::<F>,
        gemv: Some(pair_gemv::<F>),
        gemm: Some(z_gemm::<Z>),
    }
}

/// A legacy format's vec dot: [`zgemv`]'s 1-row tile (two blocks per vector).
fn pair_dot<F: zgemv::Pair>(n: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: only reachable via `kernels`, which checked the AVX-512 tier and
    // VNNI; both rows hold n elements (validated by the caller).
    unsafe { zgemv::vec_dot::<F>(n, w, x) }
}

/// A legacy format's gemv: [`zgemv`] (two blocks per vector).
fn pair_gemv<F: zgemv::Pair>(k: usize, w: &[u8], x: &[u8], y: &mut [f32]) {
    // SAFETY: only reachable via `kernels`, which checked the AVX-512 tier and
    // VNNI; sizes validated by the caller.
    unsafe { zgemv::gemv::<F>(k, w, x, y) }
}

fn f16_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: only reachable via `kernels`, which checked the AVX-512 tier;
    // both rows hold 2n bytes (validated by the caller).
    unsafe { zgemm::vec_dot_f16(n, w, x) }
}

fn f16_gemv(k: usize, w: &[u8], x: &[u8], y: &mut [f32]) {
    // SAFETY: only reachable via `kernels`, which checked the AVX-512 tier;
    // sizes validated by the caller.
    unsafe { zgemm::gemv_f16(k, w, x, y) }
}

fn f16_gemm(k: usize, w: &[u8], x: &[u8], n: usize, y: &mut [f32], scratch: &mut [f32]) {
    // SAFETY: only reachable via `kernels`, which checked the AVX-512 tier
    // (all `gemm_f16` needs); sizes validated by the caller.
    unsafe { zgemm::gemm_f16(k, w, x, n, y, scratch) }
}

fn z_gemm<Z: zgemm::ZFormat>(k: usize, w: &[u8], x: &[u8], n: usize, y: &mut [f32], _: &mut [f32]) {
    // SAFETY: only reachable via `kernels`, which checked the AVX-512 tier and
    // VNNI; sizes validated by the caller.
    unsafe { zgemm::gemm::<Z>(k, w, x, n, y) }
}
