//! AVX-512 VNNI vec dot and gemv for Q4_0, Q5_0 and Q8_0 weights: two
//! blocks per 512-bit `vpdpbusd`.
//!
//! The 256-bit legacy path ([`super::legacy`]) spends about 13 µops per
//! (row, block) on Q4_0: unpacking, a scalar f16 scale, the dot with its
//! `-8 · Σy` initialiser, the conversion, the scale's broadcast and the
//! FMA. Here the weights of a (row, block pair) become 64 unsigned bytes
//! ([`Pair::quants`]); one `vpdpbusd`, one conversion and one FMA do both
//! blocks. The scales of all the tile's rows are packed (as f16 bits, in
//! general registers) into one vector, converted by one `vcvtph2ps`,
//! multiplied by the activations' by one `vmulps`, and each row's pair
//! spread over the halves by one permute (2026-11-28: 12% faster in cache
//! than converting each row's pair on its own, `gemv/Q4_0/avx512`; Q5_0
//! unchanged; eight-row tiles were slower).
//!
//! * Q4_0, Q5_0: the pair's nibbles come from two broadcast loads, one
//!   insert, one shift and one mask; Q5_0 adds its fifth bits with one
//!   masked add (the pair's two 32-bit `qh` words make the 64-bit mask of
//!   the bytes that get `0x10`).
//! * Q8_0: two loads, one insert, and the sign bit flipped (`q + 128`),
//!   taken off again through the initialiser (`-128 · Σy`). In cache 32
//!   GiB/s against 27 for the 256-bit `vpmaddubsw` path it replaces;
//!   decoding the Q8_0 model 4% faster at 1 thread and 11% at 2 (three
//!   interleaved rounds of `ember bench -p 0 -n 128 -t 1,2 -r 3`).
//!
//! The activations (Q8_0) are prepared once per pair and shared by the
//! tile's rows: their 64 quants, `-off · Σy` per i32 lane (the weights'
//! offset, 8, 16 or 128), and their two scales (f16 bits).
//!
//! A row's result does not depend on the tile it is computed in, and the
//! vec dot is the 1-row tile, so a row gets the same bits from either. An
//! odd block count takes the legacy path for both.
//!
//! Q4_1 was tried the same way (2026-11-27) and decoded no faster than the
//! legacy path (five interleaved rounds of `ember bench -p 0 -n 128 -t 1,2`),
//! so it stays there: its legacy dot has no offset to initialise.

use core::arch::x86_64::*;

use super::isa::{Prefetcher, Vnni};
use super::legacy::{self, Legacy};
use crate::blocks::{blocks, Block, BlockQ4_0, BlockQ5_0, BlockQ8_0};

/// A weight format this module takes two blocks at a time: 32 elements a
/// block, an f16 scale, and quants that become unsigned bytes offset by
/// [`Self::OFF`] (`x = d · (u - OFF)`).
///
/// # Safety
/// [`Self::L`] must be the legacy path for the same blocks (the fallback
/// for odd block counts).
pub(crate) unsafe trait Pair {
    /// The weight block.
    type W: Block;
    /// The legacy format for the same weights.
    type L: Legacy<W = Self::W, X = BlockQ8_0>;
    /// What the unsigned quants are offset by.
    const OFF: u8;
    /// The block's scale (f16 bits).
    fn scale(w: &Self::W) -> [u8; 2];
    /// The unsigned quants of blocks `a` (bytes 0..32) and `b` (32..64).
    ///
    /// # Safety
    /// The AVX-512 tier's features.
    unsafe fn quants(a: &Self::W, b: &Self::W) -> __m512i;
}

/// The nibbles of two blocks' 16 bytes each (low nibbles elements 0..16,
/// high nibbles 16..32), as bytes 0..32 and 32..64.
///
/// # Safety
/// The AVX-512 tier's features.
#[inline(always)]
unsafe fn nibble_pair(a: &[u8; 16], b: &[u8; 16]) -> __m512i {
    // SAFETY: 16 readable bytes each; features (caller).
    unsafe {
        let qa = _mm256_broadcastsi128_si256(_mm_loadu_si128(a.as_ptr().cast()));
        let qb = _mm256_broadcastsi128_si256(_mm_loadu_si128(b.as_ptr().cast()));
        let q = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qa), qb);
        let shift = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
        _mm512_and_si512(_mm512_srlv_epi64(q, shift), _mm512_set1_epi8(0x0F))
    }
}

// SAFETY: legacy::Q4_0 is the legacy path for BlockQ4_0.
unsafe impl Pair for legacy::Q4_0 {
    type W = BlockQ4_0;
    type L = legacy::Q4_0;
    const OFF: u8 = 8;
    #[inline(always)]
    fn scale(w: &BlockQ4_0) -> [u8; 2] {
        w.d
    }
    #[inline(always)]
    unsafe fn quants(a: &BlockQ4_0, b: &BlockQ4_0) -> __m512i {
        // SAFETY: features (caller).
        unsafe { nibble_pair(&a.qs, &b.qs) }
    }
}

// SAFETY: legacy::Q5_0 is the legacy path for BlockQ5_0.
unsafe impl Pair for legacy::Q5_0 {
    type W = BlockQ5_0;
    type L = legacy::Q5_0;
    const OFF: u8 = 16;
    #[inline(always)]
    fn scale(w: &BlockQ5_0) -> [u8; 2] {
        w.d
    }
    #[inline(always)]
    unsafe fn quants(a: &BlockQ5_0, b: &BlockQ5_0) -> __m512i {
        // Byte j of the pair is element j of a (j < 32), of b after: the
        // pair's two `qh` words are the mask of the bytes that get 0x10.
        let m = u64::from(u32::from_le_bytes(a.qh)) | (u64::from(u32::from_le_bytes(b.qh)) << 32);
        // SAFETY: features (caller).
        unsafe {
            let q = nibble_pair(&a.qs, &b.qs);
            _mm512_mask_add_epi8(q, m, q, _mm512_set1_epi8(0x10))
        }
    }
}

// SAFETY: legacy::Q8_0 is the legacy path for BlockQ8_0.
unsafe impl Pair for legacy::Q8_0 {
    type W = BlockQ8_0;
    type L = legacy::Q8_0;
    const OFF: u8 = 128;
    #[inline(always)]
    fn scale(w: &BlockQ8_0) -> [u8; 2] {
        w.d
    }
    #[inline(always)]
    unsafe fn quants(a: &BlockQ8_0, b: &BlockQ8_0) -> __m512i {
        // SAFETY: 32 readable bytes each; features (caller). Flipping the
        // sign bit is adding 128 (mod 256): i8 q becomes u8 q + 128.
        unsafe {
            let q = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_loadu_si256(a.qs.as_ptr().cast())),
                _mm256_loadu_si256(b.qs.as_ptr().cast()),
            );
            _mm512_xor_si512(q, _mm512_set1_epi8(-128))
        }
    }
}

/// Rows per tile.
const R: usize = 4;

/// `y[r] = dot(row r of w, x)` for rows of `k` elements in format `F` and
/// one Q8_0 activation row.
///
/// # Safety
/// The AVX-512 tier's features and avx512vnni must be available; sizes
/// validated by the caller (`w` whole rows, `x` one row, `y` one output per
/// row).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn gemv<F: Pair>(k: usize, w: &[u8], x: &[u8], y: &mut [f32]) {
    let nb = k / 32;
    let wb: &[F::W] = blocks(w);
    let xb: &[BlockQ8_0] = blocks(x);
    if nb == 0 {
        y.fill(0.0);
        return;
    }
    let m = wb.len() / nb;
    if !nb.is_multiple_of(2) || xb.len() < nb || y.len() < m {
        // SAFETY: features (caller); the legacy gemm takes any block count.
        unsafe { legacy::gemm::<F::L, Vnni, 4, 1>(k, w, x, 1, y) };
        return;
    }
    let mut r0 = 0;
    while r0 + R <= m {
        // SAFETY: rows r0..r0 + R exist; features (caller).
        let o = unsafe { tile::<F, R>(nb, wb, r0, xb) };
        y[r0..r0 + R].copy_from_slice(&o);
        r0 += R;
    }
    while r0 < m {
        // SAFETY: row r0 exists; features (caller).
        y[r0] = unsafe { tile::<F, 1>(nb, wb, r0, xb) }[0];
        r0 += 1;
    }
}

/// One row in format `F` · one Q8_0 row of `n` elements: the 1-row tile of
/// [`gemv`] (the legacy 1 × 1 tile for an odd block count, as there).
///
/// # Safety
/// As [`gemv`]; `w` and `x` hold one row each.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn vec_dot<F: Pair>(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let nb = n / 32;
    let wb: &[F::W] = blocks(w);
    let xb: &[BlockQ8_0] = blocks(x);
    if !nb.is_multiple_of(2) || wb.len() < nb || xb.len() < nb {
        // SAFETY: features (caller); the legacy dot takes any block count.
        return unsafe { legacy::vec_dot::<F::L, Vnni>(wb, xb) };
    }
    // SAFETY: row 0 has nb blocks; features (caller).
    let [d] = unsafe { tile::<F, 1>(nb, wb, 0, xb) };
    d
}

/// Rows `r0..r0 + T` against `x`, two blocks at a time (`nb` even; `T ≤
/// 8`, the rows whose scales fit one vector).
///
/// # Safety
/// As [`gemv`]; rows `r0..r0 + T` exist and `x` has `nb` blocks.
#[inline(always)]
unsafe fn tile<F: Pair, const T: usize>(
    nb: usize,
    w: &[F::W],
    r0: usize,
    x: &[BlockQ8_0],
) -> [f32; T] {
    const { assert!(T <= 8) };
    let sz = core::mem::size_of::<F::W>();
    let rows: [&[F::W]; T] = core::array::from_fn(|r| &w[(r0 + r) * nb..(r0 + r + 1) * nb]);
    // The tile PREFETCH_AHEAD bytes on, spread over this tile's steps.
    let at = w.as_ptr().cast::<u8>().wrapping_add(r0 * nb * sz);
    let mut pf = Prefetcher::ahead_of(at, T * nb * sz, nb / 2);
    // SAFETY: features (caller); every index below is < nb <= each slice's
    // length (i + 1 < nb since nb is even), and loads read within a block.
    unsafe {
        let off = _mm512_set1_epi8(F::OFF as i8);
        let mut acc = [_mm512_setzero_ps(); T];
        // Lane j of row r's scale vector takes element 2r + j / 8 of the
        // tile's scale products.
        let idx: [__m512i; T] = core::array::from_fn(|r| {
            let (a, b) = (2 * r as i32, 2 * r as i32 + 1);
            _mm512_set_epi32(b, b, b, b, b, b, b, b, a, a, a, a, a, a, a, a)
        });
        let mut i = 0;
        while i < nb {
            pf.step();
            let (x0, x1) = (x.get_unchecked(i), x.get_unchecked(i + 1));
            let yz = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_loadu_si256(x0.qs.as_ptr().cast())),
                _mm256_loadu_si256(x1.qs.as_ptr().cast()),
            );
            let corr = _mm512_sub_epi32(
                _mm512_setzero_si512(),
                _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, yz),
            );
            // Every row's two scales times the activations' two, in one
            // conversion and one multiply: element 2r + h is row r's scale
            // of block i + h times x's (the same f32 product as one row at a
            // time). The f16 bits are packed in general registers.
            let mut bits = [0u64; 4];
            for (r, row) in rows.iter().enumerate() {
                let (da, db) = (
                    F::scale(row.get_unchecked(i)),
                    F::scale(row.get_unchecked(i + 1)),
                );
                let pair =
                    u64::from(u16::from_le_bytes(da)) | (u64::from(u16::from_le_bytes(db)) << 16);
                bits[r / 2] |= pair << (32 * (r % 2));
            }
            let xbits =
                u32::from(u16::from_le_bytes(x0.d)) | (u32::from(u16::from_le_bytes(x1.d)) << 16);
            let dx = _mm512_cvtph_ps(_mm256_set1_epi32(xbits as i32));
            let dw = _mm512_cvtph_ps(_mm256_set_epi64x(
                bits[3] as i64,
                bits[2] as i64,
                bits[1] as i64,
                bits[0] as i64,
            ));
            let dd = _mm512_mul_ps(dw, dx);
            for (r, row) in rows.iter().enumerate() {
                let q = F::quants(row.get_unchecked(i), row.get_unchecked(i + 1));
                let s = _mm512_dpbusd_epi32(corr, q, yz);
                let d = _mm512_permutexvar_ps(idx[r], dd);
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, acc[r]);
            }
            i += 2;
        }
        let mut out = [0f32; T];
        for (o, v) in out.iter_mut().zip(acc) {
            *o = _mm512_reduce_add_ps(v);
        }
        out
    }
}
