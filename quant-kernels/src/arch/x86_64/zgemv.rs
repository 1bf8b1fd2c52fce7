//! AVX-512 VNNI vec dot and gemv for the legacy formats (Q4_0, Q4_1,
//! Q5_0, Q5_1, Q8_0): two blocks per 512-bit `vpdpbusd`.
//!
//! The 256-bit legacy path ([`super::legacy`]) spends about 13 µops per
//! (row, block) on Q4_0: unpacking, a scalar f16 scale, the dot with its
//! `-8 · Σy` initialiser, the conversion, the scale's broadcast and the
//! FMA. Here the weights of a (row, block pair) become 64 unsigned bytes
//! ([`Pair::quants`]); one `vpdpbusd` (into a zeroed register), one
//! conversion, one permute of the scales and one FMA do both blocks. On
//! AVX-512 only ports 0 and 5 take 512-bit operations, so what counts is
//! the 512-bit operations per (row, pair), and the front end's µops:
//!
//! * **The activations are prepared once per call** ([`Prepared`]) and
//!   shared by every tile: each pair's 64 quants back to back (one aligned
//!   load, no insert), and per pair the blocks' scales as f32 with, for the
//!   formats without a min, their offset terms `-OFF · Σy` (the weights'
//!   offset: 8, 16 or 128).
//! * **The offset is not in the integer dot.** The weights' unsigned
//!   quants `u = q + OFF` are dotted as they are, and the tile adds
//!   `d_w · d_x · (-OFF · Σy)` for all its rows and both blocks in one FMA
//!   a step, as the formats with a min add `m · s`. Seeding each row's
//!   `vpdpbusd` with the offset instead cost a register copy a row (it
//!   overwrites its accumulator), and the offset's own `vpdpbusd` a step.
//! * **The scales of all the tile's rows** (and their mins, for Q4_1 and
//!   Q5_1) are packed as f16 bits in general registers, converted by one
//!   `vcvtph2ps` and multiplied by the prepared activations' values by one
//!   `vmulps`; each row's pair is spread over the halves by one
//!   single-table permute.
//! * **Row pointers advance a pair a step**, rather than being indexed
//!   from the tile's start: that took the address arithmetic and the
//!   spills of the row bases out of the loop.
//!
//! Per format, the quants:
//! * Q4_0, Q4_1: two broadcast loads, one insert and one mask, leaving the
//!   high nibbles in place at 16 times their value ([`nibble_pair_scaled`]:
//!   no shift on port 0); the tile divides those lanes by 16 once, at the
//!   end.
//! * Q5_0, Q5_1: the nibbles shifted down ([`five_bit_pair`]), then the
//!   fifth bits added with one masked add (the pair's two 32-bit `qh`
//!   words make the 64-bit mask of the bytes that get `0x10`).
//! * Q8_0: two loads, one insert, and the sign bit flipped (`q + 128`).
//!
//! Measured 2026-11-28 on an Ice Lake host, in cache (1536 × 576, the
//! best of 2000 calls, the old and new kernels alternating in one
//! session), ns per (row, pair): Q4_0 2.20 → 1.69, Q4_1 2.18 → 1.79, Q8_0
//! 2.62 → 1.88, Q5_0 2.90 → 2.35 (`docs/performance.md`, "Fewer µops in
//! the AVX-512 pair gemv"). Earlier (2026-11-27), against the 256-bit
//! path: converting all the tile's scales at once made Q4_0 12% faster
//! than one row at a time; eight-row tiles were slower, and still are
//! (spills).
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
/// those lanes' sums by 16 once, after its last step (exact: a power of
/// two, and the integer sums stay below 2^24).
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

/// The most blocks of the activation row prepared at once ([`Prepared`],
/// 20 KiB on the stack): k ≤ 16384, every matrix of the LLaMA-family
/// models up to 13B and of Mistral 7B. Longer rows are taken in column
/// chunks of this many blocks, each a pass over all the rows, without
/// software prefetch (the next tile's bytes are not contiguous then).
const MAX_BLOCKS: usize = 512;

/// One pair of activation blocks' quants, back to back: one aligned
/// 512-bit load.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([i8; 64]);

/// The activation row (or a column chunk of it), prepared once per call
/// and shared by every tile: each pair's 64 quants in one [`Line`], and
/// four f32 per pair.
///
/// * Without a min (Q4_0, Q5_0, Q8_0): `[dx_a, dx_b, -OFF·Σy_a,
///   -OFF·Σy_b]`, the blocks' scales and their offset terms (exact: |Σy| ≤
///   32 · 128, times at most 128, is below 2^24).
/// * With a min (Q4_1, Q5_1): `[dx_a, s_a, dx_b, s_b]`, the Q8_1 blocks'
///   scales and their `s`.
struct Prepared {
    q: [core::mem::MaybeUninit<Line>; MAX_BLOCKS / 2],
    s: [core::mem::MaybeUninit<[f32; 4]>; MAX_BLOCKS / 2],
}

impl Prepared {
    /// Room for up to [`MAX_BLOCKS`] blocks, nothing written.
    #[inline(always)]
    fn new() -> Prepared {
        Prepared {
            q: [core::mem::MaybeUninit::uninit(); MAX_BLOCKS / 2],
            s: [core::mem::MaybeUninit::uninit(); MAX_BLOCKS / 2],
        }
    }

    /// Writes the pairs of `x` (at most [`MAX_BLOCKS`] blocks, an even
    /// count) and returns them.
    ///
    /// # Safety
    /// The CPU must support f16c.
    #[inline(always)]
    unsafe fn fill<F: Pair>(&mut self, x: &[F::X]) -> (&[Line], &[[f32; 4]]) {
        let np = (x.len() / 2).min(MAX_BLOCKS / 2);
        for (p, (q, s)) in self.q[..np].iter_mut().zip(&mut self.s[..np]).enumerate() {
            let mut line = [0i8; 64];
            let mut v = [0f32; 4];
            for e in 0..2 {
                let (bits, qs) = F::act(&x[2 * p + e]);
                line[32 * e..32 * e + 32].copy_from_slice(qs);
                // SAFETY: f16c (caller).
                let f16 = |b: u32| unsafe { super::isa::f16_1((b as u16).to_le_bytes()) };
                let d = f16(bits);
                if F::HAS_MIN {
                    v[2 * e] = d;
                    v[2 * e + 1] = f16(bits >> 16);
                } else {
                    let sum: i32 = qs.iter().map(|&q| i32::from(q)).sum();
                    v[e] = d;
                    v[2 + e] = (-i32::from(F::OFF) * sum) as f32;
                }
            }
            q.write(Line(line));
            s.write(v);
        }
        // SAFETY: the first np elements of each were written just above;
        // MaybeUninit<T> has T's layout.
        unsafe {
            (
                core::slice::from_raw_parts(self.q.as_ptr().cast::<Line>(), np),
                core::slice::from_raw_parts(self.s.as_ptr().cast::<[f32; 4]>(), np),
            )
        }
    }
}

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
    // SAFETY: as this function's.
    unsafe { rows::<F>(nb, wb, &xb[..nb], &mut y[..m]) };
}

/// One row in format `F` · one Q8_0 row of `n` elements: [`gemv`]'s 1-row
/// tile (the legacy 1 × 1 tile where [`gemv`] takes the legacy path).
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
    let mut y = [0f32];
    // SAFETY: as this function's; one row of nb blocks.
    unsafe { rows::<F>(nb, &wb[..nb], &xb[..nb], &mut y) };
    y[0]
}

/// `y[r]` for the `y.len()` rows of `nb` blocks (even, ≥ 2) in `w`, against
/// the activation row `x` (`nb` blocks): tiles of [`R`] rows, then single
/// rows, over each column chunk of at most [`MAX_BLOCKS`] blocks. A row's
/// result does not depend on the tile that computes it.
///
/// # Safety
/// As [`gemv`]; `w` holds at least `y.len()` rows.
#[inline(always)]
unsafe fn rows<F: Pair>(nb: usize, w: &[F::W], x: &[F::X], y: &mut [f32]) {
    let m = y.len();
    let chunked = nb > MAX_BLOCKS;
    let mut prep = Prepared::new();
    let mut c0 = 0;
    while c0 < nb {
        let cn = (nb - c0).min(MAX_BLOCKS);
        // SAFETY: f16c (caller). cn is even: nb and MAX_BLOCKS are.
        let (xq, xs) = unsafe { prep.fill::<F>(&x[c0..c0 + cn]) };
        let mut put = |r0: usize, o: &[f32]| {
            for (y, o) in y[r0..r0 + o.len()].iter_mut().zip(o) {
                *y = if c0 == 0 { *o } else { *y + *o };
            }
        };
        let mut r0 = 0;
        while r0 + R <= m {
            // SAFETY: rows r0..r0 + R exist; features (caller).
            put(r0, &unsafe {
                tile::<F, R>(w, nb, r0, c0, xq, xs, !chunked)
            });
            r0 += R;
        }
        while r0 < m {
            // SAFETY: row r0 exists; features (caller).
            put(r0, &unsafe {
                tile::<F, 1>(w, nb, r0, c0, xq, xs, !chunked)
            });
            r0 += 1;
        }
        c0 += cn;
    }
}

/// Rows `r0..r0 + T` (rows of `nb` blocks in `w`), blocks `c0..c0 + 2 ·
/// xq.len()`, against the prepared activations of those blocks (`xq`,
/// `xs`), two blocks at a time (`T ≤ 8`, the rows whose scales fit one
/// vector, 4 with a min). With `prefetch`, the tile [`PREFETCH_AHEAD`]
/// bytes on is prefetched over the steps (whole rows: `c0 = 0` and `nb =
/// 2 · xq.len()`).
///
/// # Safety
/// As [`gemv`]; rows `r0..r0 + T` exist, `c0 + 2 · xq.len() ≤ nb`, and
/// `xs.len() = xq.len()`.
#[inline(always)]
unsafe fn tile<F: Pair, const T: usize>(
    w: &[F::W],
    nb: usize,
    r0: usize,
    c0: usize,
    xq: &[Line],
    xs: &[[f32; 4]],
    prefetch: bool,
) -> [f32; T] {
    // f16 values per row and pair: d of each block, and m after each d
    // for the formats with a min.
    let h = if F::HAS_MIN { 4 } else { 2 };
    const { assert!(T <= 4 || (T <= 8 && !F::HAS_MIN)) };
    let sz = core::mem::size_of::<F::W>();
    let np = xq.len().min(xs.len());
    let rows: [&[F::W]; T] = core::array::from_fn(|r| {
        let at = (r0 + r) * nb + c0;
        &w[at..at + 2 * np]
    });
    // The tile PREFETCH_AHEAD bytes on, spread over this tile's steps.
    let mut pf = if prefetch {
        let at = w.as_ptr().cast::<u8>().wrapping_add(r0 * nb * sz);
        Prefetcher::ahead_of(at, T * nb * sz, np)
    } else {
        Prefetcher::none()
    };
    // SAFETY: features (caller); row r's pointer stays within rows[r] (2 ·
    // np blocks; one past its end after the last step), qp and sp within
    // xq and xs (np each), and loads read within a block, a line or a
    // pair's floats.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); T];
        // The tile's offset terms (lanes h·r, h·r + 1), or the min terms
        // (lanes h·r + 1 and h·r + 3).
        let mut accm = _mm512_setzero_ps();
        // Lane j of row r's scale vector takes element h·r + (h/2)·(j / 8)
        // of the tile's scale products.
        let idx: [__m512i; T] = core::array::from_fn(|r| {
            let (a, b) = ((h * r) as i32, (h * r + h / 2) as i32);
            _mm512_set_epi32(b, b, b, b, b, b, b, b, a, a, a, a, a, a, a, a)
        });
        // Row r's pair of blocks, and the pair's prepared activations,
        // advanced a pair each step.
        let mut wp: [*const F::W; T] = core::array::from_fn(|r| rows[r].as_ptr());
        let (mut qp, mut sp) = (xq.as_ptr(), xs.as_ptr());
        let end = xq.as_ptr().add(np);
        while qp < end {
            pf.step();
            let yz = _mm512_load_si512((*qp).0.as_ptr().cast());
            let sp4 = (*sp).as_ptr();
            // Every row's scales (and mins) times the activations' (and
            // their s), in one conversion and one multiply: row r's values
            // of the pair's block e are elements h·r + (h/2)·e (d · dx) and
            // the one after (m · s). The f16 bits are packed in general
            // registers.
            let hb = 16 * h;
            let mut bits = [0u64; 4];
            for (r, &row) in wp.iter().enumerate() {
                let (sa, sb) = (F::scales(&*row), F::scales(&*row.add(1)));
                let v = u64::from(sa) | (u64::from(sb) << (hb / 2));
                bits[r * hb / 64] |= v << (r * hb % 64);
            }
            let dw = _mm512_cvtph_ps(_mm256_set_epi64x(
                bits[3] as i64,
                bits[2] as i64,
                bits[1] as i64,
                bits[0] as i64,
            ));
            // The activations' values in the same lanes: [dx_a, s_a, dx_b,
            // s_b] repeated, or [dx_a, dx_b] repeated.
            let xv = if F::HAS_MIN {
                _mm512_broadcast_f32x4(_mm_loadu_ps(sp4))
            } else {
                _mm512_castpd_ps(_mm512_set1_pd(sp4.cast::<f64>().read_unaligned()))
            };
            let dd = _mm512_mul_ps(dw, xv);
            if F::HAS_MIN {
                accm = _mm512_add_ps(accm, dd);
            } else if F::OFF != 0 {
                let c = _mm512_castpd_ps(_mm512_set1_pd(sp4.add(2).cast::<f64>().read_unaligned()));
                accm = _mm512_fmadd_ps(dd, c, accm);
            }
            for (r, row) in wp.iter_mut().enumerate() {
                let q = F::quants(&**row, &*row.add(1));
                let s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, yz);
                let d = _mm512_permutexvar_ps(idx[r], dd);
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), d, acc[r]);
                *row = row.add(2);
            }
            qp = qp.add(1);
            sp = sp.add(1);
        }
        let mut mins = [0f32; 16];
        _mm512_storeu_ps(mins.as_mut_ptr(), accm);
        // The lanes of the high nibbles in place hold 16 times their sums
        // (exact to undo: a power of two).
        let unscale = if F::SCALED_HIGH {
            let q = 1.0 / 16.0;
            _mm512_set_ps(
                q, q, q, q, 1.0, 1.0, 1.0, 1.0, q, q, q, q, 1.0, 1.0, 1.0, 1.0,
            )
        } else {
            _mm512_set1_ps(1.0)
        };
        let mut out = [0f32; T];
        for (r, (o, v)) in out.iter_mut().zip(acc).enumerate() {
            *o = _mm512_reduce_add_ps(_mm512_mul_ps(v, unscale));
            if F::HAS_MIN {
                *o += mins[h * r + 1] + mins[h * r + 3];
            } else if F::OFF != 0 {
                *o += mins[h * r] + mins[h * r + 1];
            }
        }
        out
    }
}
