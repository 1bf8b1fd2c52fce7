//! AArch64 kernels: NEON, dotprod (`sdot`), i8mm (`smmla`).

pub(crate) mod attn;
pub(crate) mod common;
pub(crate) mod dotprod;
pub(crate) mod i8mm;
pub(crate) mod neon;

/// Hints that the cache line holding `p` is about to be used as `hint`
/// says: written (`prfm pstl1keep`) or read (`prfm pldl2keep`, into L2).
/// Both are in the base ISA.
#[inline]
pub(crate) fn prefetch(p: &u8, hint: super::Hint) {
    let p = p as *const u8;
    // SAFETY: PRFM only hints the cache: it never faults and changes no
    // memory (hence `readonly`); `p` comes from a live reference.
    unsafe {
        match hint {
            super::Hint::Write => core::arch::asm!(
                "prfm pstl1keep, [{p}]",
                p = in(reg) p,
                options(nostack, preserves_flags, readonly)
            ),
            super::Hint::Read => core::arch::asm!(
                "prfm pldl2keep, [{p}]",
                p = in(reg) p,
                options(nostack, preserves_flags, readonly)
            ),
        }
    }
}

/// Whether the CPU has `feature` (run-time detection with `std`, the
/// compile-time target features without).
pub(crate) fn has(feature: &str) -> bool {
    #[cfg(feature = "std")]
    {
        match feature {
            "neon" => std::arch::is_aarch64_feature_detected!("neon"),
            "dotprod" => std::arch::is_aarch64_feature_detected!("dotprod"),
            "i8mm" => std::arch::is_aarch64_feature_detected!("i8mm"),
            _ => false,
        }
    }
    #[cfg(not(feature = "std"))]
    {
        match feature {
            "neon" => cfg!(target_feature = "neon"),
            "dotprod" => cfg!(target_feature = "dotprod"),
            "i8mm" => cfg!(target_feature = "i8mm"),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
