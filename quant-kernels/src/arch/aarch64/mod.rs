//! AArch64 kernels: NEON, dotprod (`sdot`), i8mm (`smmla`).

pub(crate) mod attn;
pub(crate) mod common;
pub(crate) mod dotprod;
pub(crate) mod i8mm;
pub(crate) mod neon;

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
