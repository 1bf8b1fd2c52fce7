//! K-quants (`Q4_K`, `Q5_K`, `Q6_K`) · `Q8_K`, AVX2 (ggml's algorithms).
//!
//! Per super-block the integer sums (quants · activations, each 32- or
//! 16-element group weighted by its integer scale; the mins through the
//! activation block sums) are exact i32; they are scaled in f32 once per
//! super-block. Only the float accumulation order differs from the reference.

use core::arch::x86_64::*;

use super::isa::{f16_1, hsum_ps, Prefetcher};
use crate::blocks::*;

/// A K-quant weight format against `Q8_K`.
///
/// # Safety
/// `block` may only be called with avx2, fma and f16c available.
pub(crate) unsafe trait KQuant {
    /// The weight super-block.
    type W: Block;
    /// Adds `dot(w, x)` to the accumulators: the scaled quant sums to `acc`,
    /// the (negated) min term to lane 0 of `accm`.
    ///
    /// # Safety
    /// avx2, fma and f16c available.
    unsafe fn block(w: &Self::W, x: &BlockQ8K, acc: &mut __m256, accm: &mut __m128);
}

pub(crate) struct Q4K;
pub(crate) struct Q5K;
pub(crate) struct Q6K;

/// 32 bytes at `p`.
///
/// # Safety
/// avx available; 32 readable bytes.
#[inline(always)]
unsafe fn load32(p: *const u8) -> __m256i {
    // SAFETY: caller's contract.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// The 8 scales (bytes 0..8) and 8 mins (bytes 8..16) of a Q4_K/Q5_K block
/// (`get_scale_min_k4` for j = 0..8).
#[inline(always)]
fn scales_mins(s: &[u8; 12]) -> [u32; 4] {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let mut u = [
        u32::from_le_bytes([s[0], s[1], s[2], s[3]]),
        u32::from_le_bytes([s[4], s[5], s[6], s[7]]),
        u32::from_le_bytes([s[8], s[9], s[10], s[11]]),
        0,
    ];
    u[3] = ((u[2] >> 4) & KMASK2) | (((u[1] >> 6) & KMASK3) << 4);
    let uaux = u[1] & KMASK1;
    u[1] = (u[2] & KMASK2) | (((u[0] >> 6) & KMASK3) << 4);
    u[2] = uaux;
    u[0] &= KMASK1;
    // Now bytes 0..8 = scales, 8..16 = mins.
    u
}

/// The i16 scale `j` (0..8) of a 16-lane i16 vector `sc` (both 128-bit halves
/// holding the 8 scales), broadcast to all lanes.
///
/// # Safety
/// avx2 available.
#[inline(always)]
unsafe fn bcast16(sc: __m256i, j: usize) -> __m256i {
    // SAFETY: avx2 available (caller).
    unsafe {
        let b = (2 * j) as i8;
        let pair = i16::from_le_bytes([b as u8, (b + 1) as u8]);
        _mm256_shuffle_epi8(sc, _mm256_set1_epi16(pair))
    }
}

/// Shared Q4_K/Q5_K tail: mins · bsums into `accm`, scales as i16 lanes.
///
/// # Safety
/// avx2, fma, f16c available.
#[inline(always)]
unsafe fn k4_prologue(
    d_bytes: [u8; 2],
    dmin_bytes: [u8; 2],
    scales: &[u8; 12],
    x: &BlockQ8K,
    accm: &mut __m128,
) -> (f32, __m256i) {
    // SAFETY: the loads read x.bsums (32 bytes); features per the caller.
    unsafe {
        let xd = f32::from_le_bytes(x.d);
        let d = xd * f16_1(d_bytes);
        let dmin = -xd * f16_1(dmin_bytes);
        let u = scales_mins(scales);
        let ms = _mm256_cvtepu8_epi16(_mm_set_epi32(
            u[3] as i32,
            u[2] as i32,
            u[1] as i32,
            u[0] as i32,
        ));
        let bs = load32(x.bsums.as_ptr());
        let q8s = _mm_hadd_epi16(
            _mm256_castsi256_si128(bs),
            _mm256_extracti128_si256::<1>(bs),
        );
        let prod = _mm_madd_epi16(_mm256_extracti128_si256::<1>(ms), q8s);
        *accm = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), *accm);
        let sc = _mm256_castsi256_si128(ms);
        (d, _mm256_set_m128i(sc, sc))
    }
}

// SAFETY: uses only avx2/fma/f16c (the trait's contract).
unsafe impl KQuant for Q4K {
    type W = BlockQ4K;
    #[inline(always)]
    unsafe fn block(w: &BlockQ4K, x: &BlockQ8K, acc: &mut __m256, accm: &mut __m128) {
        // SAFETY: loads stay within w.qs (128 bytes) and x.qs (256 bytes); features per the caller.
        unsafe {
            let (d, sc) = k4_prologue(w.d, w.dmin, &w.scales, x, accm);
            let m4 = _mm256_set1_epi8(0x0F);
            let mut sumi = _mm256_setzero_si256();
            for j in 0..4 {
                let q4 = load32(w.qs.as_ptr().add(32 * j));
                let lo = _mm256_and_si256(q4, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q4), m4);
                let yl = load32(x.qs.as_ptr().add(64 * j).cast());
                let yh = load32(x.qs.as_ptr().add(64 * j + 32).cast());
                let pl = _mm256_madd_epi16(bcast16(sc, 2 * j), _mm256_maddubs_epi16(lo, yl));
                let ph = _mm256_madd_epi16(bcast16(sc, 2 * j + 1), _mm256_maddubs_epi16(hi, yh));
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
            }
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), *acc);
        }
    }
}

/// `Q4_K` on 512-bit vectors (the AVX-512 tier): each step takes 64 quants,
/// a 32-byte load broadcast to both halves and shifted per half giving the
/// low nibbles (sub-block `2j`) in the lower half and the high nibbles
/// (`2j + 1`) in the upper, against 64 activations in one load. One
/// `vpmaddubsw` and one `vpmaddwd` with the two sub-blocks' scales do what
/// [`Q4K`] does with two of each on 256-bit vectors. The integer sums are
/// the same (exact), so the result is the same bits as [`Q4K`]'s.
pub(crate) struct Q4KZ;

// SAFETY: uses avx2/fma/f16c and avx512f/avx512bw. The trait's contract
// names only the first three: this impl is only reached through
// `avx512::kernels`, which checked the AVX-512 tier, from functions that
// enable its features.
unsafe impl KQuant for Q4KZ {
    type W = BlockQ4K;
    #[inline(always)]
    unsafe fn block(w: &BlockQ4K, x: &BlockQ8K, acc: &mut __m256, accm: &mut __m128) {
        // SAFETY: loads stay within w.qs (128 bytes) and x.qs (256 bytes);
        // the AVX-512 tier's features per the impl's note.
        unsafe {
            let (d, sc) = k4_prologue(w.d, w.dmin, &w.scales, x, accm);
            // The 8 scales (i16) in every 128-bit lane.
            let sc = _mm512_broadcast_i32x4(_mm256_castsi256_si128(sc));
            let m4 = _mm512_set1_epi8(0x0F);
            let shift = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
            let mut sumi = _mm512_setzero_si512();
            for j in 0..4 {
                let q = _mm512_broadcast_i64x4(load32(w.qs.as_ptr().add(32 * j)));
                let q = _mm512_and_si512(_mm512_srlv_epi64(q, shift), m4);
                let y = _mm512_loadu_si512(x.qs.as_ptr().add(64 * j).cast());
                // Scale 2j in the lower half's i16 lanes, 2j + 1 in the upper.
                let pick = |s: usize| {
                    _mm256_set1_epi16(i16::from_le_bytes([2 * s as u8, 2 * s as u8 + 1]))
                };
                let idx =
                    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(pick(2 * j)), pick(2 * j + 1));
                let p = _mm512_madd_epi16(_mm512_shuffle_epi8(sc, idx), _mm512_maddubs_epi16(q, y));
                sumi = _mm512_add_epi32(sumi, p);
            }
            let sumi = _mm256_add_epi32(
                _mm512_castsi512_si256(sumi),
                _mm512_extracti64x4_epi64::<1>(sumi),
            );
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), *acc);
        }
    }
}

// SAFETY: uses only avx2/fma/f16c (the trait's contract).
unsafe impl KQuant for Q5K {
    type W = BlockQ5K;
    #[inline(always)]
    unsafe fn block(w: &BlockQ5K, x: &BlockQ8K, acc: &mut __m256, accm: &mut __m128) {
        // SAFETY: loads stay within w.qs (128), w.qh (32) and x.qs (256 bytes); features per the caller.
        unsafe {
            let (d, sc) = k4_prologue(w.d, w.dmin, &w.scales, x, accm);
            let m4 = _mm256_set1_epi8(0x0F);
            let b16 = _mm256_set1_epi8(0x10);
            let hb = load32(w.qh.as_ptr());
            let mut sumi = _mm256_setzero_si256();
            for j in 0..4 {
                let q5 = load32(w.qs.as_ptr().add(32 * j));
                let m0 = _mm256_set1_epi8((1u8 << (2 * j)) as i8);
                let m1 = _mm256_set1_epi8((1u8 << (2 * j + 1)) as i8);
                let h0 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, m0), m0), b16);
                let h1 = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, m1), m1), b16);
                let lo = _mm256_or_si256(_mm256_and_si256(q5, m4), h0);
                let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(q5), m4), h1);
                let yl = load32(x.qs.as_ptr().add(64 * j).cast());
                let yh = load32(x.qs.as_ptr().add(64 * j + 32).cast());
                let pl = _mm256_madd_epi16(bcast16(sc, 2 * j), _mm256_maddubs_epi16(lo, yl));
                let ph = _mm256_madd_epi16(bcast16(sc, 2 * j + 1), _mm256_maddubs_epi16(hi, yh));
                sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
            }
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), *acc);
        }
    }
}

// SAFETY: uses only avx2/fma/f16c (the trait's contract).
unsafe impl KQuant for Q6K {
    type W = BlockQ6K;
    #[inline(always)]
    unsafe fn block(w: &BlockQ6K, x: &BlockQ8K, acc: &mut __m256, _accm: &mut __m128) {
        // SAFETY: loads stay within w.ql (128), w.qh (64), w.scales (16) and
        // x.qs (256 bytes); features per the caller.
        unsafe {
            let d = f32::from_le_bytes(x.d) * f16_1(w.d);
            let m4 = _mm256_set1_epi8(0x0F);
            let m2 = _mm256_set1_epi8(0x03);
            let m32 = _mm256_set1_epi8(32);
            let scales = _mm_loadu_si128(w.scales.as_ptr().cast());
            let mut sumi = _mm256_setzero_si256();
            for h in 0..2 {
                let ql1 = load32(w.ql.as_ptr().add(64 * h));
                let ql2 = load32(w.ql.as_ptr().add(64 * h + 32));
                let qh = load32(w.qh.as_ptr().add(32 * h));
                let q = [
                    _mm256_or_si256(
                        _mm256_and_si256(ql1, m4),
                        _mm256_slli_epi16::<4>(_mm256_and_si256(qh, m2)),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(ql2, m4),
                        _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<2>(qh), m2)),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
                        _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<4>(qh), m2)),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql2), m4),
                        _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<6>(qh), m2)),
                    ),
                ];
                for (k, &qk) in q.iter().enumerate() {
                    let y = load32(x.qs.as_ptr().add(128 * h + 32 * k).cast());
                    let p =
                        _mm256_sub_epi16(_mm256_maddubs_epi16(qk, y), _mm256_maddubs_epi16(m32, y));
                    // Scales 8h + 2k and 8h + 2k + 1, 8 bytes each, as i16.
                    let s = (8 * h + 2 * k) as u8;
                    let shuf =
                        _mm_set_epi64x(i64::from_le_bytes([s + 1; 8]), i64::from_le_bytes([s; 8]));
                    let sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, shuf));
                    sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc, p));
                }
            }
            *acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), *acc);
        }
    }
}

/// `R` rows × `C` columns over `nb` super-blocks.
///
/// # Safety
/// avx2, fma, f16c available; every slice has at least `nb` blocks.
#[inline(always)]
unsafe fn tile<F: KQuant, const R: usize, const C: usize>(
    nb: usize,
    w: [&[F::W]; R],
    x: [&[BlockQ8K]; C],
    mut pf: Prefetcher,
) -> [[f32; C]; R] {
    // SAFETY: indices < nb <= every slice's length; caller's contract.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let mut accm = [[_mm_setzero_ps(); C]; R];
        for i in 0..nb {
            pf.step();
            for r in 0..R {
                for c in 0..C {
                    F::block(
                        w[r].get_unchecked(i),
                        x[c].get_unchecked(i),
                        &mut acc[r][c],
                        &mut accm[r][c],
                    );
                }
            }
        }
        let mut out = [[0.0f32; C]; R];
        for r in 0..R {
            for c in 0..C {
                let m = accm[r][c];
                let m = _mm_add_ps(m, _mm_movehl_ps(m, m));
                let m = _mm_add_ss(m, _mm_movehdup_ps(m));
                out[r][c] = hsum_ps(acc[r][c]) + _mm_cvtss_f32(m);
            }
        }
        out
    }
}

/// `y[r * n + c] = dot(row r, column c)`, tiles of `R` rows (columns one by one).
///
/// # Safety
/// avx2, fma, f16c available; sizes validated by the caller.
#[inline(always)]
pub(crate) unsafe fn gemm<F: KQuant, const R: usize>(
    k: usize,
    w: &[u8],
    x: &[u8],
    n: usize,
    y: &mut [f32],
) {
    let nb = k / QK_K;
    let w: &[F::W] = blocks(w);
    let x: &[BlockQ8K] = blocks(x);
    if nb == 0 {
        y.fill(0.0);
        return;
    }
    let m = w.len() / nb;
    let row = |r: usize| &w[r * nb..(r + 1) * nb];
    let mut r0 = 0;
    while r0 < m {
        let rr = if r0 + R <= m { R } else { 1 };
        let sz = core::mem::size_of::<F::W>();
        let at = w.as_ptr().cast::<u8>().wrapping_add(r0 * nb * sz);
        let mut pf = Prefetcher::ahead_of(at, rr * nb * sz, nb);
        for c in 0..n {
            let xc = [&x[c * nb..(c + 1) * nb]];
            if rr == R {
                // SAFETY: every slice has nb blocks; caller's contract.
                let o =
                    unsafe { tile::<F, R, 1>(nb, core::array::from_fn(|r| row(r0 + r)), xc, pf) };
                for r in 0..R {
                    y[(r0 + r) * n + c] = o[r][0];
                }
            } else {
                // SAFETY: as above.
                y[r0 * n + c] = unsafe { tile::<F, 1, 1>(nb, [row(r0)], xc, pf)[0][0] };
            }
            pf = Prefetcher::none();
        }
        r0 += rr;
    }
}
