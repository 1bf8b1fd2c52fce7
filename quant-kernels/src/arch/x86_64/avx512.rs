//! AVX-512 tier (F + BW + VL; VNNI where present): the kernel table.
//!
//! The integer kernels use `vpdpbusd` on 256-bit vectors (AVX-512 VL +
//! VNNI) with the 32-register file for bigger gemm tiles; without VNNI the
//! integer formats fall back to the AVX2 tier.
//!
//! Soundness: the `#[target_feature]` functions here are only reachable
//! through the safe wrappers, and those only through [`kernels`], which
//! hands them out only after checking the features they need.

use super::isa::Vnni;
use super::legacy::{self, Legacy};
use crate::blocks::blocks;
use crate::dispatch::Kernels;
use crate::GgmlType;

const GEMM_R: usize = 4;
const GEMM_C: usize = 4;
const GEMV_R: usize = 4;

/// This tier's kernels for weights of type `ty`; `None` if it has none of
/// its own (or the CPU lacks the tier's features).
pub(crate) fn kernels(ty: GgmlType) -> Option<Kernels> {
    if !super::has_avx512_tier() {
        return None;
    }
    let vnni = super::has("avx512vnni");
    Some(match ty {
        GgmlType::Q4_0 if vnni => legacy_kernels::<legacy::Q4_0, GEMM_R, GEMM_C>(),
        GgmlType::Q4_1 if vnni => legacy_kernels::<legacy::Q4_1, 4, 2>(),
        GgmlType::Q5_0 if vnni => legacy_kernels::<legacy::Q5_0, GEMM_R, GEMM_C>(),
        GgmlType::Q5_1 if vnni => legacy_kernels::<legacy::Q5_1, 4, 2>(),
        GgmlType::Q8_0 if vnni => legacy_kernels::<legacy::Q8_0, GEMM_R, GEMM_C>(),
        _ => return None,
    })
}

/// Legacy-format kernels; only handed out with VNNI.
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
    // SAFETY: only reachable via `kernels`, which checked the AVX-512 tier and VNNI.
    unsafe { legacy_dot_t::<F>(blocks(w), blocks(x)) }
}

fn legacy_gemv<F: Legacy>(k: usize, w: &[u8], x: &[u8], y: &mut [f32]) {
    // SAFETY: only reachable via `kernels`, which checked the AVX-512 tier and
    // VNNI; sizes validated by the caller.
    unsafe { legacy_gemm_t::<F, GEMV_R, 1>(k, w, x, 1, y) }
}

fn legacy_gemm<F: Legacy, const R: usize, const C: usize>(
    k: usize,
    w: &[u8],
    x: &[u8],
    n: usize,
    y: &mut [f32],
) {
    // SAFETY: only reachable via `kernels`, which checked the AVX-512 tier and
    // VNNI; sizes validated by the caller.
    unsafe { legacy_gemm_t::<F, R, C>(k, w, x, n, y) }
}

/// # Safety
/// The CPU must support the AVX-512 tier and avx512vnni; `w.len() == x.len()`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn legacy_dot_t<F: Legacy>(w: &[F::W], x: &[F::X]) -> f32 {
    // SAFETY: features enabled here; caller's contract.
    unsafe { legacy::vec_dot::<F, Vnni>(w, x) }
}

/// # Safety
/// The CPU must support the AVX-512 tier and avx512vnni; sizes as [`legacy::gemm`].
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn legacy_gemm_t<F: Legacy, const R: usize, const C: usize>(
    k: usize,
    w: &[u8],
    x: &[u8],
    n: usize,
    y: &mut [f32],
) {
    // SAFETY: features enabled here; caller's contract.
    unsafe { legacy::gemm::<F, Vnni, R, C>(k, w, x, n, y) }
}
