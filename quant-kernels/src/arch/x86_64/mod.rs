//! x86-64 kernels: AVX2 (+FMA, F16C) and AVX-512 (F, BW, VL).

pub(crate) mod attn;
pub(crate) mod avx2;
pub(crate) mod avx512;
pub(crate) mod f16gemm;
mod half;
mod isa;
mod kquants;
mod legacy;
mod quant;
#[cfg(test)]
mod tests;
pub(crate) mod vec;
pub(crate) mod zgemm;
mod zgemv;

/// Whether the CPU has `feature` (run-time detection with `std`, the
/// compile-time target features without).
pub(crate) fn has(feature: &str) -> bool {
    #[cfg(feature = "std")]
    {
        match feature {
            "avx2" => std::is_x86_feature_detected!("avx2"),
            "fma" => std::is_x86_feature_detected!("fma"),
            "f16c" => std::is_x86_feature_detected!("f16c"),
            "avx512f" => std::is_x86_feature_detected!("avx512f"),
            "avx512bw" => std::is_x86_feature_detected!("avx512bw"),
            "avx512vl" => std::is_x86_feature_detected!("avx512vl"),
            "avx512vnni" => std::is_x86_feature_detected!("avx512vnni"),
            _ => false,
        }
    }
    #[cfg(not(feature = "std"))]
    {
        match feature {
            "avx2" => cfg!(target_feature = "avx2"),
            "fma" => cfg!(target_feature = "fma"),
            "f16c" => cfg!(target_feature = "f16c"),
            "avx512f" => cfg!(target_feature = "avx512f"),
            "avx512bw" => cfg!(target_feature = "avx512bw"),
            "avx512vl" => cfg!(target_feature = "avx512vl"),
            "avx512vnni" => cfg!(target_feature = "avx512vnni"),
            _ => false,
        }
    }
}

/// Hints that the cache line holding `p` is about to be used as `hint`
/// says: written (`prefetcht0`, into L1) or read (`prefetcht1`, into L2, as
/// the attention kernels fetch their streams). SSE, which every x86-64 CPU
/// has.
#[inline]
pub(crate) fn prefetch(p: &u8, hint: super::Hint) {
    use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
    let p = (p as *const u8).cast();
    // SAFETY: a prefetch only hints the cache: it never faults and changes
    // no memory; SSE is in the x86-64 baseline; `p` is a live reference.
    unsafe {
        match hint {
            super::Hint::Write => _mm_prefetch::<_MM_HINT_T0>(p),
            super::Hint::Read => _mm_prefetch::<_MM_HINT_T1>(p),
        }
    }
}

/// The AVX2 tier's features: avx2 + fma + f16c.
#[inline]
pub(crate) fn has_avx2_tier() -> bool {
    has("avx2") && has("fma") && has("f16c")
}

/// The AVX-512 tier's features: the AVX2 tier's plus avx512f + bw + vl.
#[inline]
pub(crate) fn has_avx512_tier() -> bool {
    has_avx2_tier() && has("avx512f") && has("avx512bw") && has("avx512vl")
}
