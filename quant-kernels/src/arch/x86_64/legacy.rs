//! The 32-element ("legacy") formats against 8-bit activations, generic over
//! the [`Isa`]: `Q4_0`, `Q5_0`, `Q8_0` · `Q8_0` and `Q4_1`, `Q5_1` · `Q8_1`.
//!
//! Every block dot is an exact integer sum (weights are unpacked to unsigned
//! bytes, `u8·i8` products summed in i32; the `- 8`, `- 16`, `- 128` offsets
//! of the symmetric formats are applied through a per-activation-block
//! initialiser `-off * sum(y)`), then `d_w * d_x` scales it in f32 with one
//! FMA per 8 lanes. Only the float accumulation order differs from the
//! scalar reference.
//!
//! [`gemm`] runs tiles of `R` weight rows × `C` activation columns: each
//! weight block is unpacked once per tile and each activation block prepared
//! once per tile. gemv is the `C = 1` case.

use core::arch::x86_64::*;

use super::isa::{f16_1, f16x2, hsum_ps, Isa, Prefetcher};
use crate::blocks::*;

/// One activation block, loaded and prepared, shared by the rows of a tile.
#[derive(Clone, Copy)]
pub(crate) struct XPrep {
    /// The 32 quants.
    y: __m256i,
    /// Initial i32 lanes of the block's integer dot (the offset correction).
    init: __m256i,
    /// `[d, s, 0, 0]` (`s` only for `Q8_1`).
    ds: __m128,
}

/// A legacy weight format and its activation format.
///
/// # Safety
/// Every method may only be called with `I`'s CPU features available.
pub(crate) unsafe trait Legacy {
    /// The weight block.
    type W: Block;
    /// The activation block.
    type X: Block;
    /// Whether the dot has the `m_w * s_x` term (`Q4_1`, `Q5_1`).
    const HAS_MIN: bool;

    /// Loads an activation block.
    ///
    /// # Safety
    /// `I`'s features must be available.
    unsafe fn xprep<I: Isa>(x: &Self::X) -> XPrep;

    /// Unpacks a weight block: its quants as bytes and `[d, m, .., ..]`.
    ///
    /// # Safety
    /// `I`'s features must be available.
    unsafe fn wprep<I: Isa>(w: &Self::W) -> (__m256i, __m128);

    /// The block's integer dot as 8 i32 lanes (exact).
    ///
    /// # Safety
    /// `I`'s features must be available.
    unsafe fn idot<I: Isa>(wu: __m256i, xp: &XPrep) -> __m256i;
}

/// 32 bytes at `p`.
///
/// # Safety
/// avx must be available; `p` must have 32 readable bytes.
#[inline(always)]
unsafe fn load32(p: *const u8) -> __m256i {
    // SAFETY: 32 readable bytes (caller); loadu has no alignment requirement.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// The 16 bytes at `p` as 32 nibbles: low nibbles in bytes 0..16, high
/// nibbles in bytes 16..32 (element order of the legacy formats).
///
/// # Safety
/// avx2 must be available; `p` must have 16 readable bytes.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> __m256i {
    // SAFETY: 16 readable bytes (caller); avx2 available.
    unsafe {
        // A broadcast load (no shuffle port) and a per-half variable shift.
        let v = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.cast()));
        let v = _mm256_srlv_epi64(v, _mm256_set_epi64x(4, 4, 0, 0));
        _mm256_and_si256(v, _mm256_set1_epi8(0x0F))
    }
}

/// `-off * (sum of 4 adjacent y)` per lane.
///
/// # Safety
/// `I`'s features must be available.
#[inline(always)]
unsafe fn neg_offset<I: Isa>(off: i8, y: __m256i) -> __m256i {
    // SAFETY: I's features available (caller); |off * (y0 + y1)| <= 64 * 256
    // fits i16 for |off| <= 64 (callers pass 8 or 16).
    unsafe {
        let s = I::udot(_mm256_setzero_si256(), _mm256_set1_epi8(off), y);
        _mm256_sub_epi32(_mm256_setzero_si256(), s)
    }
}

/// `[d, 0, 0, 0]` from f16 bytes.
///
/// # Safety
/// f16c must be available.
#[inline(always)]
unsafe fn d1(d: [u8; 2]) -> __m128 {
    // SAFETY: f16c available (caller).
    unsafe { _mm_set_ss(f16_1(d)) }
}

pub(crate) struct Q4_0;
pub(crate) struct Q4_1;
pub(crate) struct Q5_0;
pub(crate) struct Q5_1;
pub(crate) struct Q8_0;

/// Q8_0 activations with the `-off * sum(y)` initialiser.
///
/// # Safety
/// `I`'s features must be available.
#[inline(always)]
unsafe fn xprep_q8_0<I: Isa>(x: &BlockQ8_0, off: i8) -> XPrep {
    // SAFETY: qs is 32 bytes; features per caller.
    unsafe {
        let y = load32(x.qs.as_ptr().cast());
        XPrep {
            y,
            init: if off == 0 {
                _mm256_setzero_si256()
            } else {
                neg_offset::<I>(off, y)
            },
            ds: d1(x.d),
        }
    }
}

/// Q8_1 activations (no offset).
///
/// # Safety
/// `I`'s features must be available.
#[inline(always)]
unsafe fn xprep_q8_1(x: &BlockQ8_1) -> XPrep {
    // SAFETY: the block is 36 bytes (d, s adjacent, then 32 quants); avx2+f16c per caller.
    unsafe {
        XPrep {
            y: load32(x.qs.as_ptr().cast()),
            init: _mm256_setzero_si256(),
            ds: f16x2(x.d.as_ptr()),
        }
    }
}

// SAFETY: all methods use only avx2/f16c and I's features (caller's contract).
unsafe impl Legacy for Q4_0 {
    type W = BlockQ4_0;
    type X = BlockQ8_0;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn xprep<I: Isa>(x: &BlockQ8_0) -> XPrep {
        // SAFETY: caller's contract.
        unsafe { xprep_q8_0::<I>(x, 8) }
    }
    #[inline(always)]
    unsafe fn wprep<I: Isa>(w: &BlockQ4_0) -> (__m256i, __m128) {
        // SAFETY: qs is 16 bytes; caller's contract.
        unsafe { (nibbles(w.qs.as_ptr()), d1(w.d)) }
    }
    #[inline(always)]
    unsafe fn idot<I: Isa>(wu: __m256i, xp: &XPrep) -> __m256i {
        // SAFETY: nibble · i8 pairs fit i16; caller's contract.
        unsafe { I::udot(xp.init, wu, xp.y) }
    }
}

// SAFETY: all methods use only avx2/f16c and I's features (caller's contract).
unsafe impl Legacy for Q4_1 {
    type W = BlockQ4_1;
    type X = BlockQ8_1;
    const HAS_MIN: bool = true;
    #[inline(always)]
    unsafe fn xprep<I: Isa>(x: &BlockQ8_1) -> XPrep {
        // SAFETY: caller's contract.
        unsafe { xprep_q8_1(x) }
    }
    #[inline(always)]
    unsafe fn wprep<I: Isa>(w: &BlockQ4_1) -> (__m256i, __m128) {
        // SAFETY: d and m are adjacent (4 bytes); qs is 16 bytes; caller's contract.
        unsafe { (nibbles(w.qs.as_ptr()), f16x2(w.d.as_ptr())) }
    }
    #[inline(always)]
    unsafe fn idot<I: Isa>(wu: __m256i, xp: &XPrep) -> __m256i {
        // SAFETY: nibble · i8 pairs fit i16; caller's contract.
        unsafe { I::udot(xp.init, wu, xp.y) }
    }
}

// SAFETY: all methods use only avx2/f16c and I's features (caller's contract).
unsafe impl Legacy for Q5_0 {
    type W = BlockQ5_0;
    type X = BlockQ8_0;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn xprep<I: Isa>(x: &BlockQ8_0) -> XPrep {
        // SAFETY: caller's contract.
        unsafe { xprep_q8_0::<I>(x, 16) }
    }
    #[inline(always)]
    unsafe fn wprep<I: Isa>(w: &BlockQ5_0) -> (__m256i, __m128) {
        // SAFETY: qs is 16 bytes; caller's contract.
        unsafe {
            let q = _mm256_or_si256(
                nibbles(w.qs.as_ptr()),
                I::bits_0x10(u32::from_le_bytes(w.qh)),
            );
            (q, d1(w.d))
        }
    }
    #[inline(always)]
    unsafe fn idot<I: Isa>(wu: __m256i, xp: &XPrep) -> __m256i {
        // SAFETY: 5-bit · i8 pairs fit i16; caller's contract.
        unsafe { I::udot(xp.init, wu, xp.y) }
    }
}

// SAFETY: all methods use only avx2/f16c and I's features (caller's contract).
unsafe impl Legacy for Q5_1 {
    type W = BlockQ5_1;
    type X = BlockQ8_1;
    const HAS_MIN: bool = true;
    #[inline(always)]
    unsafe fn xprep<I: Isa>(x: &BlockQ8_1) -> XPrep {
        // SAFETY: caller's contract.
        unsafe { xprep_q8_1(x) }
    }
    #[inline(always)]
    unsafe fn wprep<I: Isa>(w: &BlockQ5_1) -> (__m256i, __m128) {
        // SAFETY: d and m are adjacent; qs is 16 bytes; caller's contract.
        unsafe {
            let q = _mm256_or_si256(
                nibbles(w.qs.as_ptr()),
                I::bits_0x10(u32::from_le_bytes(w.qh)),
            );
            (q, f16x2(w.d.as_ptr()))
        }
    }
    #[inline(always)]
    unsafe fn idot<I: Isa>(wu: __m256i, xp: &XPrep) -> __m256i {
        // SAFETY: 5-bit · i8 pairs fit i16; caller's contract.
        unsafe { I::udot(xp.init, wu, xp.y) }
    }
}

// SAFETY: all methods use only avx2/f16c and I's features (caller's contract).
unsafe impl Legacy for Q8_0 {
    type W = BlockQ8_0;
    type X = BlockQ8_0;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn xprep<I: Isa>(x: &BlockQ8_0) -> XPrep {
        // SAFETY: caller's contract.
        unsafe { xprep_q8_0::<I>(x, 0) }
    }
    #[inline(always)]
    unsafe fn wprep<I: Isa>(w: &BlockQ8_0) -> (__m256i, __m128) {
        // SAFETY: qs is 32 bytes; caller's contract.
        unsafe { (load32(w.qs.as_ptr().cast()), d1(w.d)) }
    }
    #[inline(always)]
    unsafe fn idot<I: Isa>(wu: __m256i, xp: &XPrep) -> __m256i {
        // SAFETY: caller's contract. Sign trick: |a| · (y with a's sign); pairs
        // fit i16 (|a| <= 128, |y| <= 127). A y of -128 (never produced by the
        // quantizer) would be wrong.
        unsafe {
            I::udot(
                xp.init,
                _mm256_sign_epi8(wu, wu),
                _mm256_sign_epi8(xp.y, wu),
            )
        }
    }
}

/// One row · one column: the `1 × 1` tile, so that vec_dot, gemv and gemm
/// give bit-identical results for the same row and column.
///
/// # Safety
/// `I`'s features (and avx2, fma, f16c) must be available; `w.len() == x.len()`.
#[inline(always)]
pub(crate) unsafe fn vec_dot<F: Legacy, I: Isa>(w: &[F::W], x: &[F::X]) -> f32 {
    let nb = w.len().min(x.len());
    // SAFETY: both slices have at least nb blocks; caller's contract.
    unsafe { tile::<F, I, 1, 1>(nb, [w], [x], Prefetcher::none())[0][0] }
}

/// `R` rows × `C` columns over `nb` blocks: `out[r][c] = dot(w[r], x[c])`.
///
/// # Safety
/// `I`'s features (and avx2, fma, f16c) must be available; every `w[r]` and
/// `x[c]` has at least `nb` blocks.
#[inline(always)]
unsafe fn tile<F: Legacy, I: Isa, const R: usize, const C: usize>(
    nb: usize,
    w: [&[F::W]; R],
    x: [&[F::X]; C],
    mut pf: Prefetcher,
) -> [[f32; C]; R] {
    // SAFETY: caller's contract; indices are < nb <= every slice's length.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let mut accm = [[_mm_setzero_ps(); C]; R];
        for i in 0..nb {
            pf.step();
            let xp: [XPrep; C] = core::array::from_fn(|c| {
                // i < nb <= x[c].len(); features per the caller.
                F::xprep::<I>(x[c].get_unchecked(i))
            });
            for r in 0..R {
                let (wu, wds) = F::wprep::<I>(w[r].get_unchecked(i));
                for c in 0..C {
                    let s = F::idot::<I>(wu, &xp[c]);
                    let d = _mm_mul_ps(wds, xp[c].ds);
                    if F::HAS_MIN {
                        accm[r][c] = _mm_add_ps(accm[r][c], d);
                    }
                    acc[r][c] =
                        _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(s), acc[r][c]);
                }
            }
        }
        let mut out = [[0.0f32; C]; R];
        for r in 0..R {
            for c in 0..C {
                out[r][c] = hsum_ps(acc[r][c]);
                if F::HAS_MIN {
                    out[r][c] += _mm_cvtss_f32(_mm_movehdup_ps(accm[r][c]));
                }
            }
        }
        out
    }
}

/// Rows `r0..r0 + R` against all columns, in tiles of `C` (then single columns).
///
/// # Safety
/// As [`gemm`]; rows `r0..r0 + R` exist.
#[inline(always)]
unsafe fn row_tile<F: Legacy, I: Isa, const R: usize, const C: usize>(
    nb: usize,
    w: &[F::W],
    r0: usize,
    x: &[F::X],
    n: usize,
    y: &mut [f32],
) {
    let wr: [&[F::W]; R] = core::array::from_fn(|r| &w[(r0 + r) * nb..(r0 + r + 1) * nb]);
    // Prefetch the row tile PREFETCH_AHEAD bytes on (during the first column tile only).
    let row_bytes = nb * core::mem::size_of::<F::W>();
    let at = w.as_ptr().cast::<u8>().wrapping_add(r0 * row_bytes);
    let mut pf = Prefetcher::ahead_of(at, R * row_bytes, nb);
    let mut c0 = 0;
    while c0 + C <= n {
        let xc: [&[F::X]; C] = core::array::from_fn(|c| &x[(c0 + c) * nb..(c0 + c + 1) * nb]);
        // SAFETY: every slice has nb blocks; features per the caller.
        let o = unsafe { tile::<F, I, R, C>(nb, wr, xc, pf) };
        pf = Prefetcher::none();
        for r in 0..R {
            y[(r0 + r) * n + c0..(r0 + r) * n + c0 + C].copy_from_slice(&o[r]);
        }
        c0 += C;
    }
    while c0 < n {
        let xc = [&x[c0 * nb..(c0 + 1) * nb]];
        // SAFETY: every slice has nb blocks; features per the caller.
        let o = unsafe { tile::<F, I, R, 1>(nb, wr, xc, pf) };
        pf = Prefetcher::none();
        for r in 0..R {
            y[(r0 + r) * n + c0] = o[r][0];
        }
        c0 += 1;
    }
}

/// `y[r * n + c] = dot(row r of w, column c of x)` for all rows of `w`
/// (`k` elements each) and the `n` activation rows in `x`; tiles of `R`
/// rows × `C` columns. gemv is `n == 1`.
///
/// # Safety
/// `I`'s features (and avx2, fma, f16c) must be available. The caller has
/// validated the sizes: `w` whole rows, `x` exactly `n` rows, `y.len() == rows * n`.
#[inline(always)]
pub(crate) unsafe fn gemm<F: Legacy, I: Isa, const R: usize, const C: usize>(
    k: usize,
    w: &[u8],
    x: &[u8],
    n: usize,
    y: &mut [f32],
) {
    let nb = k / QK;
    let w: &[F::W] = blocks(w);
    let x: &[F::X] = blocks(x);
    if nb == 0 {
        y.fill(0.0);
        return;
    }
    let m = w.len() / nb;
    let mut r0 = 0;
    while r0 + R <= m {
        // SAFETY: rows r0..r0+R exist; caller's contract.
        unsafe { row_tile::<F, I, R, C>(nb, w, r0, x, n, y) };
        r0 += R;
    }
    while r0 < m {
        // SAFETY: row r0 exists; caller's contract.
        unsafe { row_tile::<F, I, 1, C>(nb, w, r0, x, n, y) };
        r0 += 1;
    }
}
