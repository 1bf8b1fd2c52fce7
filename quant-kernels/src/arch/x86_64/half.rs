//! F16 · F16 dots with F16C conversions and f32 FMAs (AVX2 width).
//!
//! The reference multiplies in f32 and sums in f64; here products are fused
//! into one 8-lane f32 accumulator per row × column (vec_dot is the 1 × 1
//! tile), so results differ by float rounding only, and vec_dot and gemv
//! agree bit for bit. Prompt batches use [`super::f16gemm`], which converts
//! each operand once per call.

use core::arch::x86_64::*;

use super::isa::{f16_1, hsum_ps, Prefetcher};

/// 8 f16 at `p` as f32.
///
/// # Safety
/// f16c + avx available; 16 readable bytes at `p`.
#[inline(always)]
unsafe fn cvt8(p: *const u8) -> __m256 {
    // SAFETY: caller's contract.
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
}

/// f16 element `i` of `b`.
///
/// # Safety
/// f16c available; `2 * i + 2 <= b.len()`.
#[inline(always)]
unsafe fn el(b: &[u8], i: usize) -> f32 {
    // SAFETY: caller's contract.
    unsafe { f16_1([*b.get_unchecked(2 * i), *b.get_unchecked(2 * i + 1)]) }
}

/// Dot of two f16 rows of `n` elements (`2n` bytes each): the `1 × 1`
/// tile, so that vec_dot, gemv and gemm give bit-identical results.
///
/// # Safety
/// avx2, fma, f16c available; `w.len() >= 2n`, `x.len() >= 2n`.
#[inline(always)]
pub(crate) unsafe fn vec_dot(n: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: caller's contract.
    unsafe { tile::<1, 1>(n, [w], [x], Prefetcher::none())[0][0] }
}

/// `R` rows × `C` columns of `n` elements: `out[r][c] = dot(w[r], x[c])`.
///
/// # Safety
/// avx2, fma, f16c available; every slice has at least `2n` bytes.
#[inline(always)]
unsafe fn tile<const R: usize, const C: usize>(
    n: usize,
    w: [&[u8]; R],
    x: [&[u8]; C],
    mut pf: Prefetcher,
) -> [[f32; C]; R] {
    // SAFETY: every access is below 2n bytes; caller's contract.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let mut i = 0;
        while i + 8 <= n {
            pf.step();
            let mut xv = [_mm256_setzero_ps(); C];
            for c in 0..C {
                xv[c] = cvt8(x[c].as_ptr().add(2 * i));
            }
            for r in 0..R {
                let wv = cvt8(w[r].as_ptr().add(2 * i));
                for c in 0..C {
                    acc[r][c] = _mm256_fmadd_ps(wv, xv[c], acc[r][c]);
                }
            }
            i += 8;
        }
        let mut out = [[0.0f32; C]; R];
        for r in 0..R {
            for c in 0..C {
                let mut s = hsum_ps(acc[r][c]);
                for j in i..n {
                    s += el(w[r], j) * el(x[c], j);
                }
                out[r][c] = s;
            }
        }
        out
    }
}

/// `y[r * nx + c] = dot(row r, column c)` over all rows of `w` (`k` f16
/// each) and the `nx` rows of `x`, in tiles of `R` × `C`: gemv (`nx == 1`).
///
/// # Safety
/// avx2, fma, f16c available; sizes validated by the caller.
#[inline(always)]
pub(crate) unsafe fn gemm<const R: usize, const C: usize>(
    k: usize,
    w: &[u8],
    x: &[u8],
    nx: usize,
    y: &mut [f32],
) {
    let rb = 2 * k;
    if rb == 0 {
        y.fill(0.0);
        return;
    }
    let m = w.len() / rb;
    let row = |r: usize| &w[r * rb..(r + 1) * rb];
    let col = |c: usize| &x[c * rb..(c + 1) * rb];
    let mut r0 = 0;
    while r0 < m {
        let full = r0 + R <= m;
        // Prefetch the row tile PREFETCH_AHEAD bytes on (during the first column tile only).
        let mut pf = Prefetcher::ahead_of(w.as_ptr().wrapping_add(r0 * rb), R * rb, k / 8);
        let mut c0 = 0;
        while c0 < nx {
            let cfull = c0 + C <= nx;
            if full && cfull {
                // SAFETY: all slices have 2k bytes; caller's contract.
                let o = unsafe {
                    tile::<R, C>(
                        k,
                        core::array::from_fn(|r| row(r0 + r)),
                        core::array::from_fn(|c| col(c0 + c)),
                        pf,
                    )
                };
                for r in 0..R {
                    y[(r0 + r) * nx + c0..(r0 + r) * nx + c0 + C].copy_from_slice(&o[r]);
                }
                pf = Prefetcher::none();
                c0 += C;
            } else if full {
                // SAFETY: as above.
                let o = unsafe {
                    tile::<R, 1>(k, core::array::from_fn(|r| row(r0 + r)), [col(c0)], pf)
                };
                for r in 0..R {
                    y[(r0 + r) * nx + c0] = o[r][0];
                }
                pf = Prefetcher::none();
                c0 += 1;
            } else {
                for r in r0..m {
                    // SAFETY: as above.
                    y[r * nx + c0] =
                        unsafe { tile::<1, 1>(k, [row(r)], [col(c0)], Prefetcher::none())[0][0] };
                }
                c0 += 1;
            }
        }
        r0 += if full { R } else { m - r0 };
    }
}
