//! AArch64 dot-product (`sdot`) kernels: the Raspberry Pi 5 (Cortex-A76) tier.
//!
//! The same integer kernels as the NEON tier (`int8_kernels!`: legacy and
//! K-quant vec dots, 4-row gemvs for `Q4_0`, `Q4_1`, `Q8_0`), with the 16-byte
//! dot done by one `sdot`. `F16`/`F32` and the quantizers fall back to NEON.
//!
//! `vdotq_s32` is not stable in Rust, so `sdot` is emitted with `asm!` from
//! a `#[target_feature(enable = "neon,dotprod")]` helper.
//!
//! Soundness: the `#[target_feature]` functions here are reached only through
//! the safe wrappers, and those only through [`kernels`], which hands them
//! out only after checking that the CPU has NEON and dotprod.

use super::common::int8_kernels;
use super::has;
use crate::dispatch::Kernels;
use crate::GgmlType;

int8_kernels!("neon,dotprod");

/// `acc` plus the 16 products `a[i] * b[i]`, four per lane (`sdot`).
#[target_feature(enable = "neon,dotprod")]
#[inline]
pub(super) fn dot16(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: `sdot` needs FEAT_DotProd, which this function's
    // `target_feature` requires of its callers; it only touches registers.
    unsafe {
        core::arch::asm!(
            "sdot {0:v}.4s, {1:v}.16b, {2:v}.16b",
            inout(vreg) acc,
            in(vreg) a,
            in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
    acc
}

/// This tier's kernels for weights of type `ty`; `None` if it has none of
/// its own (or the CPU lacks NEON or dotprod).
pub(crate) fn kernels(ty: GgmlType) -> Option<Kernels> {
    if !(has("neon") && has("dotprod")) {
        return None;
    }
    int8_kernels(ty)
}
