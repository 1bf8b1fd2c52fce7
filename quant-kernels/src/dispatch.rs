//! Kernel tiers and their run-time selection.
//!
//! A [`Tier`] is a family of kernels that need a given set of CPU features.
//! With `std`, the best tier this CPU supports is chosen once, at first use,
//! and cached; `EMBER_KERNELS=scalar|avx2|avx512|neon|dotprod|i8mm` forces
//! one (an [`Error::Tier`] if this CPU cannot run it). Without `std`, the
//! choice is made at compile time from the enabled target features, as it
//! always is on WebAssembly (`simd128`), which cannot detect features at
//! run time.
//!
//! A tier with no specialised kernel for a type uses the next lower tier's
//! (`avx512 → avx2 → scalar`, `i8mm → dotprod → neon → scalar`).

use crate::{scalar, Error, GgmlType};
use core::fmt;

/// A vec dot kernel: `n` elements; `w` and `x` hold exactly the bytes of one
/// weight row and one activation row (validated by the caller).
pub(crate) type VecDotFn = fn(n: usize, w: &[u8], x: &[u8]) -> f32;

/// A matrix-vector kernel: `w` holds exactly `y.len()` rows of `k` elements,
/// `x` exactly one activation row.
pub(crate) type GemvFn = fn(k: usize, w: &[u8], x: &[u8], y: &mut [f32]);

/// A matrix-matrix kernel: `w` holds exactly `m` rows, `x` exactly `n`
/// activation rows, `y` exactly `m * n` outputs (row-major by weight row).
/// `scratch` is the caller's, of any length (see [`crate::gemm_scratch_len`]);
/// a kernel may use it and must give the same result whatever its length.
pub(crate) type GemmFn =
    fn(k: usize, w: &[u8], x: &[u8], n: usize, y: &mut [f32], scratch: &mut [f32]);

/// The kernels one tier has for one weight type. `gemv`/`gemm` default to a
/// loop over `vec_dot`.
#[derive(Clone, Copy)]
pub(crate) struct Kernels {
    pub vec_dot: VecDotFn,
    pub gemv: Option<GemvFn>,
    pub gemm: Option<GemmFn>,
}

impl Kernels {
    /// Only a vec dot; gemv/gemm loop over it.
    pub(crate) const fn dot(vec_dot: VecDotFn) -> Kernels {
        Kernels {
            vec_dot,
            gemv: None,
            gemm: None,
        }
    }
}

/// A family of kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Tier {
    /// Portable Rust, the reference. Always available.
    Scalar,
    /// x86-64 with AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 with AVX-512 F + BW + VL (and the AVX2 tier's features).
    Avx512,
    /// AArch64 Advanced SIMD.
    Neon,
    /// AArch64 with the dot-product extension (`sdot`/`udot`).
    Dotprod,
    /// AArch64 with the int8 matrix-multiply extension (`smmla`), and dotprod.
    I8mm,
    /// WebAssembly SIMD128 (a build with `-C target-feature=+simd128`).
    Simd128,
}

impl Tier {
    /// Every tier, lowest first per architecture.
    pub const ALL: [Tier; 7] = [
        Tier::Scalar,
        Tier::Avx2,
        Tier::Avx512,
        Tier::Neon,
        Tier::Dotprod,
        Tier::I8mm,
        Tier::Simd128,
    ];

    /// The name `EMBER_KERNELS` uses.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Scalar => "scalar",
            Tier::Avx2 => "avx2",
            Tier::Avx512 => "avx512",
            Tier::Neon => "neon",
            Tier::Dotprod => "dotprod",
            Tier::I8mm => "i8mm",
            Tier::Simd128 => "simd128",
        }
    }

    /// The tier for a name (case-insensitive, surrounding spaces ignored).
    pub fn from_name(name: &str) -> Option<Tier> {
        let name = name.trim();
        Tier::ALL
            .iter()
            .copied()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The tier whose kernels this one falls back to for types it lacks.
    pub fn fallback(self) -> Option<Tier> {
        match self {
            Tier::Scalar => None,
            Tier::Avx2 | Tier::Neon | Tier::Simd128 => Some(Tier::Scalar),
            Tier::Avx512 => Some(Tier::Avx2),
            Tier::Dotprod => Some(Tier::Neon),
            Tier::I8mm => Some(Tier::Dotprod),
        }
    }

    /// The CPU features this tier needs (including its fallbacks').
    pub fn required_features(self) -> &'static [&'static str] {
        match self {
            Tier::Scalar => &[],
            Tier::Avx2 => &["avx2", "fma", "f16c"],
            Tier::Avx512 => &["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"],
            Tier::Neon => &["neon"],
            Tier::Dotprod => &["neon", "dotprod"],
            Tier::I8mm => &["neon", "dotprod", "i8mm"],
            Tier::Simd128 => &["simd128"],
        }
    }

    /// Whether this CPU can run the tier.
    pub fn is_supported(self) -> bool {
        let idx = Tier::ALL.iter().position(|&x| x == self).unwrap_or(0);
        tier_support()[idx].is_none()
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The SIMD features seen on this CPU (at run time with `std`, at compile
/// time without).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// x86 AVX2.
    pub avx2: bool,
    /// x86 FMA3.
    pub fma: bool,
    /// x86 F16C.
    pub f16c: bool,
    /// x86 AVX-512 Foundation.
    pub avx512f: bool,
    /// x86 AVX-512 Byte and Word.
    pub avx512bw: bool,
    /// x86 AVX-512 Vector Length.
    pub avx512vl: bool,
    /// x86 AVX-512 VNNI (optional; reported, used by kernels that check it).
    pub avx512vnni: bool,
    /// AArch64 Advanced SIMD.
    pub neon: bool,
    /// AArch64 dot product.
    pub dotprod: bool,
    /// AArch64 int8 matrix multiply.
    pub i8mm: bool,
    /// WebAssembly SIMD128 (compiled in, since it cannot be detected).
    pub simd128: bool,
}

impl CpuFeatures {
    fn list(&self) -> [(&'static str, bool); 11] {
        [
            ("avx2", self.avx2),
            ("fma", self.fma),
            ("f16c", self.f16c),
            ("avx512f", self.avx512f),
            ("avx512bw", self.avx512bw),
            ("avx512vl", self.avx512vl),
            ("avx512vnni", self.avx512vnni),
            ("neon", self.neon),
            ("dotprod", self.dotprod),
            ("i8mm", self.i8mm),
            ("simd128", self.simd128),
        ]
    }

    fn has(&self, name: &str) -> bool {
        self.list().iter().any(|&(n, v)| v && n == name)
    }

    /// The first feature `tier` needs that is missing, if any.
    pub fn missing_for(&self, tier: Tier) -> Option<&'static str> {
        tier.required_features()
            .iter()
            .copied()
            .find(|f| !self.has(f))
    }

    /// The best tier these features allow.
    pub fn best_tier(&self) -> Tier {
        [
            Tier::I8mm,
            Tier::Dotprod,
            Tier::Neon,
            Tier::Avx512,
            Tier::Avx2,
            Tier::Simd128,
        ]
        .into_iter()
        .find(|&t| self.missing_for(t).is_none() && kernels_compiled(t))
        .unwrap_or(Tier::Scalar)
    }
}

impl fmt::Display for CpuFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        for (name, on) in self.list() {
            if on {
                if any {
                    f.write_str(" ")?;
                }
                f.write_str(name)?;
                any = true;
            }
        }
        if !any {
            f.write_str("(no SIMD features)")?;
        }
        Ok(())
    }
}

/// Whether this build contains the tier's kernel modules at all.
fn kernels_compiled(t: Tier) -> bool {
    match t {
        Tier::Scalar => true,
        Tier::Avx2 | Tier::Avx512 => cfg!(target_arch = "x86_64"),
        Tier::Neon | Tier::Dotprod | Tier::I8mm => cfg!(target_arch = "aarch64"),
        Tier::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
    }
}

/// The features of this CPU (detected once, with `std`).
pub fn cpu_features() -> CpuFeatures {
    #[cfg(feature = "std")]
    {
        static FEATURES: std::sync::OnceLock<CpuFeatures> = std::sync::OnceLock::new();
        *FEATURES.get_or_init(crate::arch::detect)
    }
    #[cfg(not(feature = "std"))]
    crate::arch::detect()
}

/// Per tier (in `Tier::ALL` order): the first missing feature, or `None`.
fn tier_support() -> [Option<&'static str>; Tier::ALL.len()] {
    let compute = || {
        let f = cpu_features();
        Tier::ALL.map(|t| f.missing_for(t))
    };
    #[cfg(feature = "std")]
    {
        static SUPPORT: std::sync::OnceLock<[Option<&'static str>; Tier::ALL.len()]> =
            std::sync::OnceLock::new();
        *SUPPORT.get_or_init(compute)
    }
    #[cfg(not(feature = "std"))]
    compute()
}

/// Static messages for `Error::Tier` (the error type carries `&'static str`).
macro_rules! tier_messages {
    ($($tier:ident, $tname:literal: $($feat:literal),*;)*) => {
        fn env_unavailable(t: Tier, feat: &str) -> &'static str {
            match (t, feat) {
                $($( (Tier::$tier, $feat) => concat!(
                    "EMBER_KERNELS=", $tname, " but this CPU lacks ", $feat,
                    " (set EMBER_KERNELS to a supported tier or unset it)"
                ), )*)*
                _ => "EMBER_KERNELS names a tier this CPU cannot run",
            }
        }
        fn call_unavailable(t: Tier, feat: &str) -> &'static str {
            match (t, feat) {
                $($( (Tier::$tier, $feat) => concat!(
                    "kernel tier ", $tname, " cannot run on this CPU: it lacks ", $feat
                ), )*)*
                _ => "kernel tier cannot run on this CPU",
            }
        }
    };
}

tier_messages! {
    Avx2, "avx2": "avx2", "fma", "f16c";
    Avx512, "avx512": "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl";
    Neon, "neon": "neon";
    Dotprod, "dotprod": "neon", "dotprod";
    I8mm, "i8mm": "neon", "dotprod", "i8mm";
    Simd128, "simd128": "simd128";
}

const UNKNOWN_TIER: &str =
    "EMBER_KERNELS names an unknown tier (expected scalar, avx2, avx512, neon, dotprod, i8mm or simd128)";

/// Resolves an `EMBER_KERNELS` value against a feature set. `None` or an
/// empty value means "the best tier".
pub fn resolve_tier(env: Option<&str>, features: &CpuFeatures) -> Result<Tier, Error> {
    let value = match env.map(str::trim) {
        None | Some("") => return Ok(features.best_tier()),
        Some(v) => v,
    };
    let t = Tier::from_name(value).ok_or(Error::Tier(UNKNOWN_TIER))?;
    match features.missing_for(t) {
        Some(feat) => Err(Error::Tier(env_unavailable(t, feat))),
        None if !kernels_compiled(t) => Err(Error::Tier(env_unavailable(t, t.name()))),
        None => Ok(t),
    }
}

/// The tier in use: `EMBER_KERNELS` if set (and runnable), else the best
/// this CPU supports. Chosen once and cached.
#[cfg(feature = "std")]
pub fn try_tier() -> Result<Tier, Error> {
    static SELECTED: std::sync::OnceLock<Result<Tier, Error>> = std::sync::OnceLock::new();
    SELECTED
        .get_or_init(|| {
            let env = std::env::var("EMBER_KERNELS").ok();
            resolve_tier(env.as_deref(), &cpu_features())
        })
        .clone()
}

/// The tier in use: without `std`, the best one the compile-time target
/// features allow.
#[cfg(not(feature = "std"))]
pub fn try_tier() -> Result<Tier, Error> {
    Ok(cpu_features().best_tier())
}

/// The tier in use; the best supported one if `EMBER_KERNELS` is unset or
/// invalid (use [`try_tier`] to see the error).
pub fn tier() -> Tier {
    try_tier().unwrap_or_else(|_| cpu_features().best_tier())
}

/// `Ok(())` if this CPU can run `t`.
pub(crate) fn check_tier(t: Tier) -> Result<(), Error> {
    let idx = Tier::ALL.iter().position(|&x| x == t).unwrap_or(0);
    if let Some(feat) = tier_support()[idx] {
        return Err(Error::Tier(call_unavailable(t, feat)));
    }
    if !kernels_compiled(t) {
        return Err(Error::Tier(call_unavailable(t, t.name())));
    }
    Ok(())
}

/// The kernels for weights of type `ty` on tier `t`, falling back down the
/// tiers. The caller must have checked that `t` runs here ([`check_tier`]);
/// the arch modules re-check feature detection before handing out SIMD
/// kernels, so a wrong tier yields a lower tier's kernels, never unsoundness.
pub(crate) fn kernels(t: Tier, ty: GgmlType) -> Option<Kernels> {
    let mut cur = Some(t);
    while let Some(c) = cur {
        if let Some(k) = tier_kernels(c, ty) {
            return Some(k);
        }
        cur = c.fallback();
    }
    None
}

/// [`kernels`], memoized per (tier, type) with `std`: the lookup runs on
/// every `vec_dot`/`gemv`/`gemm` call (attention makes millions of short
/// `vec_dot` calls per prompt).
pub(crate) fn kernels_cached(t: Tier, ty: GgmlType) -> Option<Kernels> {
    #[cfg(feature = "std")]
    {
        /// Type ids below this are cached (all of ggml's are).
        const IDS: usize = 64;
        type Table = [[Option<Kernels>; IDS]; Tier::ALL.len()];
        static TABLE: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
        let id = ty.id() as usize;
        if let (true, Some(ti)) = (id < IDS, Tier::ALL.iter().position(|&x| x == t)) {
            let tab = TABLE.get_or_init(|| {
                let mut tab: Table = [[None; IDS]; Tier::ALL.len()];
                for (row, &tt) in tab.iter_mut().zip(Tier::ALL.iter()) {
                    for &ty in crate::ALL_TYPES {
                        if let Some(e) = row.get_mut(ty.id() as usize) {
                            *e = kernels(tt, ty);
                        }
                    }
                }
                tab
            });
            return tab[ti][id];
        }
    }
    kernels(t, ty)
}

fn tier_kernels(t: Tier, ty: GgmlType) -> Option<Kernels> {
    match t {
        Tier::Scalar => scalar::vec_dot_fn(ty).map(Kernels::dot),
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => crate::arch::x86_64::avx2::kernels(ty),
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => crate::arch::x86_64::avx512::kernels(ty),
        #[cfg(target_arch = "aarch64")]
        Tier::Neon => crate::arch::aarch64::neon::kernels(ty),
        #[cfg(target_arch = "aarch64")]
        Tier::Dotprod => crate::arch::aarch64::dotprod::kernels(ty),
        #[cfg(target_arch = "aarch64")]
        Tier::I8mm => crate::arch::aarch64::i8mm::kernels(ty),
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Tier::Simd128 => crate::arch::wasm32::kernels(ty),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The first kernel `lookup` has, trying tier `t` and then each tier it
/// falls back to (`avx512 → avx2 → scalar`, `i8mm → dotprod → neon → scalar`).
pub(crate) fn down_from<K>(t: Tier, lookup: impl Fn(Tier) -> Option<K>) -> Option<K> {
    let mut cur = Some(t);
    while let Some(c) = cur {
        if let Some(k) = lookup(c) {
            return Some(k);
        }
        cur = c.fallback();
    }
    None
}

/// The activation quantizer for `ty` on tier `t` (falling back down to the
/// scalar reference). SIMD quantizers must be bit-exact with the reference.
pub(crate) fn quant_kernel(t: Tier, ty: GgmlType) -> Option<scalar::QuantFn> {
    down_from(t, |c| match c {
        Tier::Scalar => scalar::quant_fn(ty),
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => crate::arch::x86_64::avx2::quant_fn(ty),
        #[cfg(target_arch = "aarch64")]
        Tier::Neon => crate::arch::aarch64::neon::quant_fn(ty),
        #[allow(unreachable_patterns)]
        _ => None,
    })
}

/// The run-time activation quantizer for `ty` on tier `t` (falling back down
/// to the scalar one, `scalar::act_quant_fn`); SIMD versions must be
/// bit-exact with it.
pub(crate) fn act_quant_kernel(t: Tier, ty: GgmlType) -> Option<scalar::QuantFn> {
    down_from(t, |c| match c {
        Tier::Scalar => scalar::act_quant_fn(ty),
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => crate::arch::x86_64::avx2::act_quant_fn(ty),
        #[cfg(target_arch = "aarch64")]
        Tier::Neon => crate::arch::aarch64::neon::act_quant_fn(ty),
        #[allow(unreachable_patterns)]
        _ => None,
    })
}

/// The row dequantizer for `ty` on tier `t` (falling back down to the
/// scalar reference). SIMD dequantizers must be exact.
pub(crate) fn dequant_kernel(t: Tier, ty: GgmlType) -> Option<scalar::DequantFn> {
    down_from(t, |c| match c {
        Tier::Scalar => scalar::dequant_fn(ty),
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => crate::arch::x86_64::avx2::dequant_fn(ty),
        #[allow(unreachable_patterns)]
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feats(names: &[&str]) -> CpuFeatures {
        let mut f = CpuFeatures::default();
        for n in names {
            match *n {
                "avx2" => f.avx2 = true,
                "fma" => f.fma = true,
                "f16c" => f.f16c = true,
                "avx512f" => f.avx512f = true,
                "avx512bw" => f.avx512bw = true,
                "avx512vl" => f.avx512vl = true,
                "neon" => f.neon = true,
                "dotprod" => f.dotprod = true,
                "i8mm" => f.i8mm = true,
                _ => panic!("{n}"),
            }
        }
        f
    }

    #[test]
    fn names_round_trip() {
        for t in Tier::ALL {
            assert_eq!(Tier::from_name(t.name()), Some(t));
            assert_eq!(Tier::from_name(&t.name().to_uppercase()), Some(t));
        }
        assert_eq!(Tier::from_name(" avx2 "), Some(Tier::Avx2));
        assert_eq!(Tier::from_name("sse"), None);
    }

    #[test]
    fn override_parsing() {
        let none = CpuFeatures::default();
        assert_eq!(resolve_tier(None, &none), Ok(Tier::Scalar));
        assert_eq!(resolve_tier(Some(""), &none), Ok(Tier::Scalar));
        assert_eq!(resolve_tier(Some("scalar"), &none), Ok(Tier::Scalar));
        assert_eq!(resolve_tier(Some("SCALAR"), &none), Ok(Tier::Scalar));
        assert_eq!(
            resolve_tier(Some("bogus"), &none),
            Err(Error::Tier(UNKNOWN_TIER))
        );

        let avx2_only = feats(&["avx2", "fma", "f16c", "avx512f"]);
        match resolve_tier(Some("avx512"), &avx2_only) {
            Err(Error::Tier(m)) => {
                assert!(
                    m.starts_with("EMBER_KERNELS=avx512 but this CPU lacks avx512bw"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
        match resolve_tier(Some("avx2"), &feats(&["avx2", "fma"])) {
            Err(Error::Tier(m)) => assert!(m.contains("lacks f16c"), "{m}"),
            other => panic!("{other:?}"),
        }
        match resolve_tier(Some("i8mm"), &feats(&["neon", "dotprod"])) {
            Err(Error::Tier(m)) => assert!(m.contains("lacks i8mm"), "{m}"),
            other => panic!("{other:?}"),
        }
        if cfg!(target_arch = "x86_64") {
            assert_eq!(resolve_tier(Some("avx2"), &avx2_only), Ok(Tier::Avx2));
            assert_eq!(resolve_tier(None, &avx2_only), Ok(Tier::Avx2));
            let all = feats(&["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"]);
            assert_eq!(resolve_tier(None, &all), Ok(Tier::Avx512));
            // Features of another architecture never select its tiers.
            assert!(resolve_tier(Some("neon"), &feats(&["neon"])).is_err());
            assert_eq!(feats(&["neon", "dotprod"]).best_tier(), Tier::Scalar);
        }
        if cfg!(target_arch = "aarch64") {
            assert_eq!(
                resolve_tier(None, &feats(&["neon", "dotprod"])),
                Ok(Tier::Dotprod)
            );
        }
    }

    #[test]
    fn fallback_chains_end_at_scalar() {
        for t in Tier::ALL {
            let mut c = t;
            let mut steps = 0;
            while let Some(n) = c.fallback() {
                c = n;
                steps += 1;
                assert!(steps < 6);
            }
            assert_eq!(c, Tier::Scalar);
        }
    }

    #[test]
    fn display_lists_features() {
        let f = feats(&["avx2", "fma"]);
        assert_eq!(f.to_string(), "avx2 fma");
        assert_eq!(CpuFeatures::default().to_string(), "(no SIMD features)");
        // The detected set prints without panicking, and the chosen tier is runnable.
        let _ = cpu_features().to_string();
        assert!(tier().is_supported());
    }

    #[test]
    fn scalar_always_checks_out() {
        assert_eq!(check_tier(Tier::Scalar), Ok(()));
        for t in Tier::ALL {
            assert_eq!(
                check_tier(t).is_ok(),
                t.is_supported() && kernels_compiled(t)
            );
        }
    }
}
