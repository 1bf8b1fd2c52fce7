//! The x86-64 tiers' f32 vectors for [`crate::arch::f16gemm`].

use core::arch::x86_64::*;

use crate::arch::f16gemm::Lanes;

/// 8 f32 lanes (AVX2 + FMA + F16C).
#[derive(Clone, Copy)]
pub(crate) struct Ymm(__m256);

impl Lanes for Ymm {
    const N: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: avx (caller).
        Ymm(unsafe { _mm256_setzero_ps() })
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: caller's contract.
        Ymm(unsafe { _mm256_load_ps(p) })
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: fma (caller).
        Ymm(unsafe { _mm256_fmadd_ps(a.0, b.0, c.0) })
    }
    #[inline(always)]
    unsafe fn sums<const R: usize>(v: &[Self; R]) -> [f32; R] {
        // SAFETY: avx (caller).
        v.map(|x| unsafe { super::isa::hsum_ps(x.0) })
    }
    #[inline(always)]
    unsafe fn convert(src: *const u8, kc: usize, dst: *mut f32) {
        // SAFETY: within the caller's bounds: 8-element groups below kc,
        // then single elements, then zeros up to a whole vector.
        unsafe {
            let mut i = 0;
            while i + 8 <= kc {
                let h = _mm_loadu_si128(src.add(2 * i).cast());
                _mm256_store_ps(dst.add(i), _mm256_cvtph_ps(h));
                i += 8;
            }
            while i < kc {
                *dst.add(i) = super::isa::f16_1([*src.add(2 * i), *src.add(2 * i + 1)]);
                i += 1;
            }
            while i < kc.next_multiple_of(8) {
                *dst.add(i) = 0.0;
                i += 1;
            }
        }
    }
}

/// 16 f32 lanes (AVX-512 F + BW + VL, F16C).
#[derive(Clone, Copy)]
pub(crate) struct Zmm(__m512);

impl Lanes for Zmm {
    const N: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: avx512f (caller).
        Zmm(unsafe { _mm512_setzero_ps() })
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: caller's contract.
        Zmm(unsafe { _mm512_load_ps(p) })
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: avx512f (caller).
        Zmm(unsafe { _mm512_fmadd_ps(a.0, b.0, c.0) })
    }
    #[inline(always)]
    unsafe fn sums<const R: usize>(v: &[Self; R]) -> [f32; R] {
        // Eight at a time through the shuffle tree (the AVX-512 tile is 8
        // rows; other heights would need a tail).
        const { assert!(R.is_multiple_of(8), "Zmm::sums takes whole groups of 8") };
        let mut out = [0f32; R];
        for i in (0..R).step_by(8) {
            // SAFETY: avx512f (caller).
            let s = unsafe { super::zgemm::hsum8(&core::array::from_fn(|j| v[i + j].0)) };
            out[i..i + 8].copy_from_slice(&s);
        }
        out
    }
    #[inline(always)]
    unsafe fn convert(src: *const u8, kc: usize, dst: *mut f32) {
        for s in 0..kc.div_ceil(16) {
            // SAFETY: masked to the kc elements (masked-off lanes never
            // fault); dst has the whole vector (caller).
            unsafe {
                let h = _mm256_maskz_loadu_epi16(
                    super::zgemm::lanes(kc - 16 * s),
                    src.add(32 * s).cast(),
                );
                _mm512_store_ps(dst.add(16 * s), _mm512_cvtph_ps(h));
            }
        }
    }
}
