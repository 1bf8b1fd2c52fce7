//! AVX-512 VNNI vec dot and gemv for the legacy formats (Q4_0, Q4_1,
//! Q5_0, Q5_1, Q8_0): two blocks per 512-bit `vpdpbusd`.
//!
//! The 256-bit legacy path ([`super::legacy`]) spends about 13 µops per
//! (row, block) on Q4_0: unpacking, a scalar f16 scale, the dot with its
//! `-8 · Σy` initialiser, the conversion, the scale's broadcast and the
//! FMA. Here the weights of a (row, block pair) become 64 unsigned bytes
//! ([`Pair::quants`]); one `vpdpbusd`, one conversion and one FMA do both
//! blocks. The scales of all the tile's rows (and their mins, for Q4_1 and
//! Q5_1) are packed as f16 bits in general registers, converted by one
//! `vcvtph2ps`, multiplied by the activations' (`d`, and `s` against the
//! mins) by one `vmulps`, and each row's pair spread over the halves by
//! one permute; the min products of all rows add into one vector.
//!
//! * Q4_0, Q4_1: two broadcast loads, one insert and one mask, leaving the
//!   high nibbles in place at 16 times their value ([`nibble_pair_scaled`]:
//!   no shift on port 0; their lanes' scales are divided by 16).
//! * Q5_0, Q5_1: the nibbles shifted down ([`five_bit_pair`]), then the
//!   fifth bits added with one masked add (the pair's two 32-bit `qh`
//!   words make the 64-bit mask of the bytes that get `0x10`).
//! * Q8_0: two loads, one insert, and the sign bit flipped (`q + 128`),
//!   taken off again through the initialiser (`-128 · Σy`).
//!
//! Measured 2026-11-27 (`cargo bench -p ember-quant --bench kernels --
//! '^gemv/…/avx512'`, in cache, against the 256-bit path in the same
//! session): Q8_0 32 against 27 GiB/s (it had `vpmaddubsw`), Q4_1 19–21
//! against 18–19, Q5_1 18–20 against 16–18; converting all the tile's
//! scales at once made Q4_0 12% faster than one row at a time; eight-row
//! tiles were slower. Decode (three interleaved rounds of `ember bench -p
//! 0 -n 128 -t 1,2 -r 3`): Q8_0 +4% at 1 thread and +11% at 2, Q4_1 +8%
//! and +4%.
//!
//! The activations (Q8_0, or Q8_1 for the formats with a min) are prepared
//! once per pair and shared by the tile's rows: their 64 quants, `-off ·
//! Σy` per i32 lane (the weights' offset: 8, 16 or 128, none for Q4_1 and
//! Q5_1), and their scales (f16 bits).
//!
//! A row's result does not depend on the tile it is computed in, and the
//! vec dot is the 1-row tile, so a row gets the same bits from either. An
//! odd block count takes the legacy path for both.

use core::arch::x86_64::*;

use super::isa::{Prefetcher, Vnni};
use super::legacy::{self, Legacy};
use crate::blocks::{
    blocks, Block, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1,
};

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
    /// The activation block (Q8_0, or Q8_1 for the formats with a min).
    type X: Block;
    /// The legacy format for the same blocks.
    type L: Legacy<W = Self::W, X = Self::X>;
    /// What the unsigned quants are offset by.
    const OFF: u8;
    /// Whether the dot has the `m_w · s_x` term (Q4_1, Q5_1).
    const HAS_MIN: bool;
    /// Whether [`Self::quants`] leaves each block's high nibbles in place,
    /// 16 times their value (bytes 16..32 and 48..64; see
    /// [`nibble_pair_scaled`]).
    const SCALED_HIGH: bool = false;
    /// The block's scale as f16 bits, and its min in the high half.
    fn scales(w: &Self::W) -> u32;
    /// The activation block's scale as f16 bits (and `s` in the high half
    /// for Q8_1), and its quants.
    fn act(x: &Self::X) -> (u32, &[i8; 32]);
    /// The unsigned quants of blocks `a` (bytes 0..32) and `b` (32..64).
    ///
    /// # Safety
    /// The AVX-512 tier's features.
    unsafe fn quants(a: &Self::W, b: &Self::W) -> __m512i;
}

/// Q8_0 activations: the scale and the quants.
#[inline(always)]
fn act_q8_0(x: &BlockQ8_0) -> (u32, &[i8; 32]) {
    (u32::from(u16::from_le_bytes(x.d)), &x.qs)
}

/// Q8_1 activations: the scale, `s` in the high half, and the quants.
#[inline(always)]
fn act_q8_1(x: &BlockQ8_1) -> (u32, &[i8; 32]) {
    (
        u32::from(u16::from_le_bytes(x.d)) | (u32::from(u16::from_le_bytes(x.s)) << 16),
        &x.qs,
    )
}

/// `d` and `m` (f16 bits) as one word, `m` in the high half.
#[inline(always)]
fn dm(d: [u8; 2], m: [u8; 2]) -> u32 {
    u32::from(u16::from_le_bytes(d)) | (u32::from(u16::from_le_bytes(m)) << 16)
}

/// The pair's 64-bit mask of fifth bits: byte `j` of the pair is element
/// `j` of `a` (`j < 32`), of `b` after.
#[inline(always)]
fn fifth_bits(a: [u8; 4], b: [u8; 4]) -> u64 {
    u64::from(u32::from_le_bytes(a)) | (u64::from(u32::from_le_bytes(b)) << 32)
}

/// Two blocks' 16 bytes of nibbles, each copied into both 128-bit halves
/// of its 256-bit half: `[a, a, b, b]`.
///
/// # Safety
/// The AVX-512 tier's features.
#[inline(always)]
unsafe fn broadcast_pair(a: &[u8; 16], b: &[u8; 16]) -> __m512i {
    // SAFETY: 16 readable bytes each; features (caller).
    unsafe {
        let qa = _mm256_broadcastsi128_si256(_mm_loadu_si128(a.as_ptr().cast()));
        let qb = _mm256_broadcastsi128_si256(_mm_loadu_si128(b.as_ptr().cast()));
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(qa), qb)
    }
}

/// The nibbles of two blocks' 16 bytes each (low nibbles elements 0..16,
/// high nibbles 16..32), as bytes 0..32 and 32..64, plus `0x10` where the
/// blocks' fifth bits (`qh`) are set (Q5_0, Q5_1).
///
/// # Safety
/// The AVX-512 tier's features.
#[inline(always)]
unsafe fn five_bit_pair(qa: &[u8; 16], qb: &[u8; 16], ha: [u8; 4], hb: [u8; 4]) -> __m512i {
    // SAFETY: features (caller).
    unsafe {
        let shift = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
        let q = _mm512_and_si512(
            _mm512_srlv_epi64(broadcast_pair(qa, qb), shift),
            _mm512_set1_epi8(0x0F),
        );
        _mm512_mask_add_epi8(q, fifth_bits(ha, hb), q, _mm512_set1_epi8(0x10))
    }
}

/// Two blocks' nibbles with the high nibbles masked in place instead of
/// shifted down: bytes 0..16 and 32..48 hold the low nibbles, bytes 16..32
/// and 48..64 16 times the high ones (Q4_0, Q4_1). That takes the shift
/// off port 0, the port that also runs `vpdpbusd` and the conversions (on
/// AVX-512, only ports 0 and 5 take 512-bit operations); the tile divides
/// those lanes' scales by 16 (exact: a power of two, and the integer sums
/// stay below 2^24).
///
/// # Safety
/// The AVX-512 tier's features.
#[inline(always)]
unsafe fn nibble_pair_scaled(a: &[u8; 16], b: &[u8; 16]) -> __m512i {
    // SAFETY: features (caller).
    unsafe {
        let (lo, hi) = (
            0x0F0F_0F0F_0F0F_0F0F_u64 as i64,
            0xF0F0_F0F0_F0F0_F0F0_u64 as i64,
        );
        let keep = _mm512_set_epi64(hi, hi, lo, lo, hi, hi, lo, lo);
        _mm512_and_si512(broadcast_pair(a, b), keep)
    }
}

// SAFETY: legacy::Q4_0 is the legacy path for BlockQ4_0.
unsafe impl Pair for legacy::Q4_0 {
    type W = BlockQ4_0;
    type X = BlockQ8_0;
    type L = legacy::Q4_0;
    const OFF: u8 = 8;
    const HAS_MIN: bool = false;
    const SCALED_HIGH: bool = true;
    #[inline(always)]
    fn scales(w: &BlockQ4_0) -> u32 {
        u32::from(u16::from_le_bytes(w.d))
    }
    #[inline(always)]
    fn act(x: &BlockQ8_0) -> (u32, &[i8; 32]) {
        act_q8_0(x)
    }
    #[inline(always)]
    unsafe fn quants(a: &BlockQ4_0, b: &BlockQ4_0) -> __m512i {
        // SAFETY: features (caller).
        unsafe { nibble_pair_scaled(&a.qs, &b.qs) }
    }
}

// SAFETY: legacy::Q5_0 is the legacy path for BlockQ5_0.
unsafe impl Pair for legacy::Q5_0 {
    type W = BlockQ5_0;
    type X = BlockQ8_0;
    type L = legacy::Q5_0;
    const OFF: u8 = 16;
    const HAS_MIN: bool = false;
    #[inline(always)]
    fn scales(w: &BlockQ5_0) -> u32 {
        u32::from(u16::from_le_bytes(w.d))
    }
    #[inline(always)]
    fn act(x: &BlockQ8_0) -> (u32, &[i8; 32]) {
        act_q8_0(x)
    }
    #[inline(always)]
    unsafe fn quants(a: &BlockQ5_0, b: &BlockQ5_0) -> __m512i {
        // SAFETY: features (caller).
        unsafe { five_bit_pair(&a.qs, &b.qs, a.qh, b.qh) }
    }
}

// SAFETY: legacy::Q4_1 is the legacy path for BlockQ4_1.
unsafe impl Pair for legacy::Q4_1 {
    type W = BlockQ4_1;
    type X = BlockQ8_1;
    type L = legacy::Q4_1;
    const OFF: u8 = 0;
    const HAS_MIN: bool = true;
    const SCALED_HIGH: bool = true;
    #[inline(always)]
    fn scales(w: &BlockQ4_1) -> u32 {
        dm(w.d, w.m)
    }
    #[inline(always)]
    fn act(x: &BlockQ8_1) -> (u32, &[i8; 32]) {
        act_q8_1(x)
    }
    #[inline(always)]
    unsafe fn quants(a: &BlockQ4_1, b: &BlockQ4_1) -> __m512i {
        // SAFETY: features (caller).
        unsafe { nibble_pair_scaled(&a.qs, &b.qs) }
    }
}

// SAFETY: legacy::Q5_1 is the legacy path for BlockQ5_1.
unsafe impl Pair for legacy::Q5_1 {
    type W = BlockQ5_1;
    type X = BlockQ8_1;
    type L = legacy::Q5_1;
    const OFF: u8 = 0;
    const HAS_MIN: bool = true;
    #[inline(always)]
    fn scales(w: &BlockQ5_1) -> u32 {
        dm(w.d, w.m)
    }
    #[inline(always)]
    fn act(x: &BlockQ8_1) -> (u32, &[i8; 32]) {
        act_q8_1(x)
    }
    #[inline(always)]
    unsafe fn quants(a: &BlockQ5_1, b: &BlockQ5_1) -> __m512i {
        // SAFETY: features (caller).
        unsafe { five_bit_pair(&a.qs, &b.qs, a.qh, b.qh) }
    }
}

// SAFETY: legacy::Q8_0 is the legacy path for BlockQ8_0.
unsafe impl Pair for legacy::Q8_0 {
    type W = BlockQ8_0;
    type X = BlockQ8_0;
    type L = legacy::Q8_0;
    const OFF: u8 = 128;
    const HAS_MIN: bool = false;
    #[inline(always)]
    fn scales(w: &BlockQ8_0) -> u32 {
        u32::from(u16::from_le_bytes(w.d))
    }
    #[inline(always)]
    fn act(x: &BlockQ8_0) -> (u32, &[i8; 32]) {
        act_q8_0(x)
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
    let xb: &[F::X] = blocks(x);
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
    let xb: &[F::X] = blocks(x);
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
unsafe fn tile<F: Pair, const T: usize>(nb: usize, w: &[F::W], r0: usize, x: &[F::X]) -> [f32; T] {
    // f16 values per row and pair: d of each block, and m after each d
    // for the formats with a min.
    let h = if F::HAS_MIN { 4 } else { 2 };
    const { assert!(T <= 4 || (T <= 8 && !F::HAS_MIN)) };
    // The scaled lanes' offset, 16 · OFF, must fit an unsigned byte.
    const { assert!(!F::SCALED_HIGH || F::OFF < 16) };
    let sz = core::mem::size_of::<F::W>();
    let rows: [&[F::W]; T] = core::array::from_fn(|r| &w[(r0 + r) * nb..(r0 + r + 1) * nb]);
    // The tile PREFETCH_AHEAD bytes on, spread over this tile's steps.
    let at = w.as_ptr().cast::<u8>().wrapping_add(r0 * nb * sz);
    let mut pf = Prefetcher::ahead_of(at, T * nb * sz, nb / 2);
    // SAFETY: features (caller); every index below is < nb <= each slice's
    // length (i + 1 < nb since nb is even), and loads read within a block.
    unsafe {
        // The offset per byte: 16 times it where the high nibbles are.
        let off = if F::SCALED_HIGH {
            // u64 products: 16 · OFF fills a byte's top bit (0x80 for Q4_0).
            let (lo, hi) = (
                (u64::from(F::OFF) * 0x0101_0101_0101_0101) as i64,
                (u64::from(F::OFF) * 0x1010_1010_1010_1010) as i64,
            );
            _mm512_set_epi64(hi, hi, lo, lo, hi, hi, lo, lo)
        } else {
            _mm512_set1_epi8(F::OFF as i8)
        };
        let mut acc = [_mm512_setzero_ps(); T];
        // The min terms of every row, lanes h·r + 1 and h·r + 3.
        let mut accm = _mm512_setzero_ps();
        // Lane j of row r's scale vector takes element h·r + (h/2)·(j / 8)
        // of the tile's scale products; with the high nibbles in place,
        // lanes 4..8 and 12..16 take the same elements of the products
        // divided by 16 (indices + 16: the second table of a two-table
        // permute).
        let idx: [__m512i; T] = core::array::from_fn(|r| {
            let (a, b) = ((h * r) as i32, (h * r + h / 2) as i32);
            let (a2, b2) = if F::SCALED_HIGH {
                (a + 16, b + 16)
            } else {
                (a, b)
            };
            _mm512_set_epi32(b2, b2, b2, b2, b, b, b, b, a2, a2, a2, a2, a, a, a, a)
        });
        let mut i = 0;
        while i < nb {
            pf.step();
            let ((xs0, xq0), (xs1, xq1)) =
                (F::act(x.get_unchecked(i)), F::act(x.get_unchecked(i + 1)));
            let yz = _mm512_inserti64x4::<1>(
                _mm512_castsi256_si512(_mm256_loadu_si256(xq0.as_ptr().cast())),
                _mm256_loadu_si256(xq1.as_ptr().cast()),
            );
            let corr = if F::OFF == 0 {
                _mm512_setzero_si512()
            } else {
                _mm512_sub_epi32(
                    _mm512_setzero_si512(),
                    _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, yz),
                )
            };
            // Every row's scales (and mins) times the activations' (and
            // their s), in one conversion and one multiply: row r's values
            // of block i + e are elements h·r + (h/2)·e (d · dx) and the one
            // after (m · s) — the same f32 products as one row at a time.
            // The f16 bits are packed in general registers.
            let hb = 16 * h;
            let mut bits = [0u64; 4];
            for (r, row) in rows.iter().enumerate() {
                let (sa, sb) = (
                    F::scales(row.get_unchecked(i)),
                    F::scales(row.get_unchecked(i + 1)),
                );
                let v = u64::from(sa) | (u64::from(sb) << (hb / 2));
                bits[r * hb / 64] |= v << (r * hb % 64);
            }
            let xv = u64::from(xs0) | (u64::from(xs1) << (hb / 2));
            let xv = if F::HAS_MIN { xv } else { xv | (xv << 32) };
            let dx = _mm512_cvtph_ps(_mm256_set1_epi64x(xv as i64));
            let dw = _mm512_cvtph_ps(_mm256_set_epi64x(
                bits[3] as i64,
                bits[2] as i64,
                bits[1] as i64,
                bits[0] as i64,
            ));
            let dd = _mm512_mul_ps(dw, dx);
            if F::HAS_MIN {
                accm = _mm512_add_ps(accm, dd);
            }
            let dd16 = if F::SCALED_HIGH {
                _mm512_mul_ps(dd, _mm512_set1_ps(1.0 / 16.0))
            } else {
                dd
            };
            for (r, row) in rows.iter().enumerate() {
                let q = F::quants(row.get_unchecked(i), row.get_unchecked(i + 1));
                let s = _mm512_dpbusd_epi32(corr, q, yz);
                let d = if F::SCALED_HIGH {
                    _mm512_permutex2var_ps(dd, idx[r], dd16)
                } else {
                    _mm512_permutexvar_ps(idx[r], dd)
                };
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, acc[r]);
            }
            i += 2;
        }
        let mut mins = [0f32; 16];
        _mm512_storeu_ps(mins.as_mut_ptr(), accm);
        let mut out = [0f32; T];
        for (r, (o, v)) in out.iter_mut().zip(acc).enumerate() {
            *o = _mm512_reduce_add_ps(v);
            if F::HAS_MIN {
                *o += mins[h * r + 1] + mins[h * r + 3];
            }
        }
        out
    }
}
