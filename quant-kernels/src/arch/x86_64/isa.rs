//! The few integer/float primitives that differ between the x86 tiers.
//!
//! Kernels in [`super::legacy`], [`super::kquants`] and [`super::half`] are
//! written once, generic over [`Isa`], as `#[inline(always)]` `unsafe fn`s
//! without `#[target_feature]`; each tier instantiates them inside its own
//! `#[target_feature]` entry points, where LLVM inlines the whole body and
//! compiles it with that tier's features.

use core::arch::x86_64::*;

/// A set of x86 instructions the generic kernels may use.
///
/// # Safety
/// Every method may only be called on a CPU with the implementor's features
/// (see its doc), from a function compiled with those features enabled.
pub(crate) unsafe trait Isa {
    /// `acc + sum of 4 adjacent u8·i8 products` per i32 lane. Each adjacent
    /// **pair** sum must fit in i16 (AVX2's `vpmaddubsw` saturates there;
    /// `vpdpbusd` would not, but the kernels are written for both).
    ///
    /// # Safety
    /// The CPU must have the implementor's features.
    unsafe fn udot(acc: __m256i, u: __m256i, s: __m256i) -> __m256i;

    /// Bit `i` of `qh` as `0x10` in byte `i` (else 0).
    ///
    /// # Safety
    /// The CPU must have the implementor's features.
    unsafe fn bits_0x10(qh: u32) -> __m256i;
}

/// AVX2 + FMA + F16C: `vpmaddubsw` + `vpmaddwd`.
pub(crate) struct Avx2;

// SAFETY: the methods only use avx2 instructions; callers uphold the trait contract.
unsafe impl Isa for Avx2 {
    #[inline(always)]
    unsafe fn udot(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: avx2 is available (trait contract).
        unsafe {
            let p16 = _mm256_maddubs_epi16(u, s);
            _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)))
        }
    }

    #[inline(always)]
    unsafe fn bits_0x10(qh: u32) -> __m256i {
        // SAFETY: avx2 is available (trait contract).
        unsafe {
            let shuf = _mm256_set_epi64x(
                0x0303_0303_0303_0303,
                0x0202_0202_0202_0202,
                0x0101_0101_0101_0101,
                0,
            );
            let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(qh as i32), shuf);
            let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
            let set = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
            _mm256_and_si256(set, _mm256_set1_epi8(0x10))
        }
    }
}

/// AVX-512 VL + VNNI on 256-bit vectors (`vpdpbusd ymm`), 32 vector registers.
pub(crate) struct Vnni;

// SAFETY: the methods only use avx512vl+avx512vnni instructions; callers uphold the trait contract.
unsafe impl Isa for Vnni {
    #[inline(always)]
    unsafe fn udot(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        // SAFETY: avx512vl + avx512vnni are available (trait contract).
        unsafe { _mm256_dpbusd_epi32(acc, u, s) }
    }

    #[inline(always)]
    unsafe fn bits_0x10(qh: u32) -> __m256i {
        // SAFETY: avx512bw + avx512vl are available (trait contract).
        unsafe { _mm256_maskz_mov_epi8(qh, _mm256_set1_epi8(0x10)) }
    }
}

/// Sum of the 8 lanes.
///
/// # Safety
/// The CPU must support avx.
#[inline(always)]
pub(crate) unsafe fn hsum_ps(x: __m256) -> f32 {
    // SAFETY: avx is available (caller's contract).
    unsafe {
        let r = _mm_add_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
        let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
        let r = _mm_add_ss(r, _mm_movehdup_ps(r));
        _mm_cvtss_f32(r)
    }
}

/// Sum of the 8 i32 lanes.
///
/// # Safety
/// The CPU must support avx2.
#[inline(always)]
pub(crate) unsafe fn hsum_epi32(x: __m256i) -> i32 {
    // SAFETY: avx2 is available (caller's contract).
    unsafe {
        let r = _mm_add_epi32(_mm256_extracti128_si256::<1>(x), _mm256_castsi256_si128(x));
        let r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
        let r = _mm_add_epi32(r, _mm_shuffle_epi32::<0b01>(r));
        _mm_cvtsi128_si32(r)
    }
}

/// The first 4 bytes at `p` (two f16 values) as `[f32; 4]` lanes `[p0, p1, 0, 0]`.
///
/// # Safety
/// The CPU must support f16c; `p` must have 4 readable bytes.
#[inline(always)]
pub(crate) unsafe fn f16x2(p: *const u8) -> __m128 {
    // SAFETY: 4 readable bytes (caller); unaligned read; f16c available.
    unsafe { _mm_cvtph_ps(_mm_cvtsi32_si128(p.cast::<i32>().read_unaligned())) }
}

/// One f16 value to f32 (exact).
///
/// # Safety
/// The CPU must support f16c.
#[inline(always)]
pub(crate) unsafe fn f16_1(b: [u8; 2]) -> f32 {
    // SAFETY: f16c available (caller).
    unsafe {
        _mm_cvtss_f32(_mm_cvtph_ps(
            _mm_cvtsi32_si128(u16::from_le_bytes(b) as i32),
        ))
    }
}

/// Software prefetch of a byte range spread evenly over the iterations of a
/// loop (Bresenham style): gemv rows are short streams (~1-3 KiB) that the
/// hardware prefetchers pick up too late, so each row tile prefetches a
/// tile [`PREFETCH_AHEAD`] bytes ahead ([`Prefetcher::ahead_of`]) while it
/// computes.
///
/// The lines go to L2 (`prefetcht1`), not L1: on the 2-vCPU Xeon hosts
/// this was measured on (2026-11-27), L2 prefetches 8 KiB ahead decoded
/// 4–20% faster than L1 prefetches two tiles ahead, every format at 1 and
/// 2 threads (`docs/performance.md`, "Software prefetch into L2"). The
/// kernels' own loads then hit L2, and the L1 fill buffers stay free for them.
#[derive(Clone, Copy)]
pub(crate) struct Prefetcher {
    p: *const u8,
    acc: usize,
    lines: usize,
    steps: usize,
}

impl Prefetcher {
    /// Prefetches `bytes` bytes from `base` over `steps` calls of [`Self::step`].
    /// `base` may point anywhere (even past an allocation): it is only
    /// offset with `wrapping_add` and prefetching never faults.
    #[inline(always)]
    pub(crate) fn new(base: *const u8, bytes: usize, steps: usize) -> Prefetcher {
        Prefetcher {
            p: base,
            acc: 0,
            lines: bytes.div_ceil(64),
            steps: steps.max(1),
        }
    }

    /// For a tile of `bytes` bytes at `tile`, computed over `steps` steps:
    /// prefetches the tile [`tiles_ahead`] tiles on, so that the stream stays
    /// [`PREFETCH_AHEAD`] bytes ahead of the loads. Tiles are back to back
    /// (row tiles of a row-major matrix), so that tile starts `k · bytes`
    /// after this one.
    #[inline(always)]
    pub(crate) fn ahead_of(tile: *const u8, bytes: usize, steps: usize) -> Prefetcher {
        Prefetcher::new(tile.wrapping_add(tiles_ahead(bytes) * bytes), bytes, steps)
    }

    /// Prefetches nothing.
    #[inline(always)]
    pub(crate) fn none() -> Prefetcher {
        Prefetcher::new(core::ptr::null(), 0, 1)
    }

    /// Issues this iteration's share of prefetches.
    ///
    /// # Safety
    /// The CPU must support sse (every x86-64 CPU does).
    #[inline(always)]
    pub(crate) unsafe fn step(&mut self) {
        self.acc += self.lines;
        while self.acc >= self.steps {
            self.acc -= self.steps;
            // SAFETY: a prefetch is a hint: it never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(self.p.cast::<i8>()) };
            self.p = self.p.wrapping_add(64);
        }
    }
}

/// How far ahead of the tile being computed a gemv prefetches, in bytes.
pub(crate) const PREFETCH_AHEAD: usize = 8192;

/// Whole tiles of `tile` bytes that make [`PREFETCH_AHEAD`] bytes, and at
/// least two.
#[inline(always)]
fn tiles_ahead(tile: usize) -> usize {
    (PREFETCH_AHEAD / tile.max(1)).max(2)
}
