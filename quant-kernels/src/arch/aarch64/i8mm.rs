//! AArch64 int8 matrix-multiply (smmla) kernels. None yet: every type falls back to dotprod.
//!
//! To add one: write a `#[target_feature(enable = "...")]` `unsafe fn` with a
//! `# Safety` section, a safe wrapper with the
//! [`crate::dispatch::VecDotFn`] signature, and a `match` arm in [`kernels`].

use super::has;
use crate::dispatch::Kernels;
use crate::GgmlType;

/// This tier's kernels for weights of type `ty`; `None` if it has none of
/// its own (or the CPU lacks the tier's features).
pub(crate) fn kernels(ty: GgmlType) -> Option<Kernels> {
    if !(has("neon") && has("dotprod") && has("i8mm")) {
        return None;
    }
    let _ = ty;
    None
}
