//! Architecture-specific kernels. The only place `unsafe` is allowed.
//!
//! Each tier module exposes `kernels(ty) -> Option<Kernels>` (and optionally
//! `quant_fn(ty)`), which returns `Some` only when the running CPU has the
//! tier's features: the safe function pointers it hands out wrap
//! `#[target_feature]` functions, and that check is what makes them sound.

use crate::dispatch::CpuFeatures;

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(crate) mod x86_64;

#[cfg(target_arch = "aarch64")]
#[allow(unsafe_code)]
pub(crate) mod aarch64;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[allow(unsafe_code)]
pub(crate) mod wasm32;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[allow(unsafe_code)]
pub(crate) mod f16gemm;

/// What a prefetch hint says of a cache line.
#[derive(Clone, Copy)]
pub(crate) enum Hint {
    /// About to be written: fetch it into L1 (`prefetcht0`, `prfm
    /// pstl1keep`).
    Write,
    /// About to be read: fetch it into L2 (`prefetcht1`, `prfm
    /// pldl2keep`).
    Read,
}

/// Hints that byte `at` of `b` is about to be used as `hint` says, so that
/// its cache line is fetched ahead (nothing where the target has no
/// prefetch here, or `at` is out of range). A hint only: no result depends
/// on it.
pub(crate) fn prefetch(b: &[u8], at: usize, hint: Hint) {
    let Some(p) = b.get(at) else {
        return;
    };
    #[cfg(target_arch = "x86_64")]
    x86_64::prefetch(p, hint);
    #[cfg(target_arch = "aarch64")]
    aarch64::prefetch(p, hint);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = (p, hint);
}

/// The SIMD features of the running CPU (std), or of the compilation target (no_std).
pub(crate) fn detect() -> CpuFeatures {
    #[allow(unused_mut)]
    let mut f = CpuFeatures {
        simd128: cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
        ..CpuFeatures::default()
    };
    #[cfg(target_arch = "x86_64")]
    {
        f.avx2 = x86_64::has("avx2");
        f.fma = x86_64::has("fma");
        f.f16c = x86_64::has("f16c");
        f.avx512f = x86_64::has("avx512f");
        f.avx512bw = x86_64::has("avx512bw");
        f.avx512vl = x86_64::has("avx512vl");
        f.avx512vnni = x86_64::has("avx512vnni");
    }
    #[cfg(target_arch = "aarch64")]
    {
        f.neon = aarch64::has("neon");
        f.dotprod = aarch64::has("dotprod");
        f.i8mm = aarch64::has("i8mm");
    }
    f
}
