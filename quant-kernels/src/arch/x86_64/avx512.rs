//! AVX-512 (F + BW + VL) kernels. None yet: every type falls back to AVX2.
//!
//! To add one: write a `#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]`
//! `unsafe fn` with a `# Safety` section, a safe wrapper with the
//! [`crate::dispatch::VecDotFn`] signature, and a `match` arm in [`kernels`].

use crate::dispatch::Kernels;
use crate::GgmlType;

/// This tier's kernels for weights of type `ty`; `None` if it has none of
/// its own (or the CPU lacks the tier's features).
pub(crate) fn kernels(ty: GgmlType) -> Option<Kernels> {
    if !super::has_avx512_tier() {
        return None;
    }
    let _ = ty;
    None
}
