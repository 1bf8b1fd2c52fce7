//! AVX-512 VNNI gemm for prompt batches (n activation columns), in place on
//! the mmapped weights.
//!
//! Layout trick: one i32 lane per **weight row**. A tile of `G` × 16 rows is
//! unpacked once per k chunk into a small scratch where, for each sub-block
//! (the unit that carries one scale) and each step `s` of 4 elements, one
//! 64-byte vector holds those 4 quants (as `u8`) of 16 rows. The activation
//! dword of the same 4 elements is broadcast to all lanes, so one
//! `vpdpbusd zmm` does 64 multiply-adds for 16 rows × 1 column, and the
//! per-sub-block scaling (`cvt`, `mul`, `fma`) is done on 16 rows at once.
//! Each unpacked strip is reused across all columns; each activation dword
//! across the tile's rows.
//!
//! Every format is expressed as: sub-blocks of `SUB` elements (32, or 16 for
//! `Q6_K`), unsigned weight quants `q`, a per-row f32 scale `D` and optional
//! per-row f32 min `M` per sub-block, and per activation sub-block an f32
//! scale `dx` and either an i32 offset correction (`-off * Σy`, exact, the
//! initial value of the integer dot) or an f32 sum `sx` (for the min term):
//!
//! `dot = Σ_j D_j · dx_j · (Σ q·y + corr_j) + M_j · sx_j`.
//!
//! The integer sums are exact; only the float accumulation order differs
//! from the scalar reference (and from gemv/vec_dot).

use core::arch::x86_64::*;
use core::ptr::read_unaligned;

use super::f16gemm::Zmm;
use crate::arch::f16gemm;

/// Rows per vector (one i32 lane each).
const L: usize = 16;
/// Vectors of rows per tile.
const G: usize = 2;
/// Rows per tile.
const RT: usize = L * G;
/// Columns per tile.
const C: usize = 4;
/// Most elements per k chunk (scratch size).
const KC_MAX: usize = 768;
/// Most sub-blocks per k chunk (16-element sub-blocks).
const SUB_MAX: usize = KC_MAX / 16;
/// Entries of the per-chunk activation table.
const XT_MAX: usize = 4096;

/// How the activation side enters the formula.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `corr_j` is the initial value of the integer dot.
    Corr,
    /// `M_j · sx_j` is added in f32.
    Min,
}

/// The unpacked weight strip of one tile over one k chunk.
#[repr(C, align(64))]
pub(crate) struct WScratch {
    /// `[j][s][g][64 bytes]`: quants of sub-block `j`, step `s`, rows `16g..16g+16`.
    q: [u8; KC_MAX * RT],
    /// `[j][g][16]`: per-row scales.
    d: [f32; SUB_MAX * RT],
    /// `[j][g][16]`: per-row mins (`Mode::Min` only).
    m: [f32; SUB_MAX * RT],
}

/// A weight format for this kernel.
///
/// # Safety
/// Implementations may only be called with the features of this module's
/// `#[target_feature]` functions available and pointers as documented.
pub(crate) unsafe trait ZFormat {
    /// Elements per weight block.
    const UNIT: usize;
    /// Bytes per weight block.
    const WBYTES: usize;
    /// Bytes per activation block (of `UNIT` elements).
    const XBYTES: usize;
    /// Offset of the quants in an activation block.
    const X_QS: usize;
    /// Elements per sub-block (32 or 16).
    const SUB: usize;
    /// The activation side.
    const MODE: Mode;

    /// Unpacks weight block `u` of 16 rows (`p[i]` is row `i`'s first byte)
    /// into sub-blocks `jb..jb + UNIT / SUB` of row group `g` of `ws`.
    ///
    /// # Safety
    /// Every `p[i]` has `(u + 1) * WBYTES` readable bytes; `jb + UNIT / SUB <=
    /// SUB_MAX`, `(jb + UNIT / SUB) * SUB <= KC_MAX`; `g < G`; the module's features.
    unsafe fn unpack16(p: &[*const u8; L], u: usize, ws: &mut WScratch, jb: usize, g: usize);

    /// The table entries (`[dx bits, corr or sx bits]`) of the `UNIT / SUB`
    /// sub-blocks of the activation block at `x`.
    ///
    /// # Safety
    /// `x` has `XBYTES` readable bytes, `out` `UNIT / SUB` entries; the module's features.
    unsafe fn xprep(x: *const u8, out: &mut [[u32; 2]]);
}

/// Index of step `s` of sub-block `j`, group `g` in `WScratch::q`.
#[inline(always)]
fn qidx(steps: usize, j: usize, s: usize, g: usize) -> usize {
    ((j * steps + s) * G + g) * 64
}

/// Stores an unpacked step vector.
///
/// # Safety
/// The index is in bounds of `ws.q` (checked in debug builds); avx512f.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn put(ws: &mut WScratch, idx: usize, v: __m512i) {
    debug_assert!(idx + 64 <= ws.q.len());
    // SAFETY: in bounds (caller); the scratch is 64-byte aligned and idx a multiple of 64.
    unsafe { _mm512_store_si512(ws.q.as_mut_ptr().add(idx).cast(), v) }
}

/// Dwords 0..4 of the 16 bytes at `p[i] + off`, for the 16 rows: `t[g]`
/// lane `i` is dword `g` of row `i`.
///
/// # Safety
/// 16 readable bytes at every `p[i] + off`; the module's features.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn t16x4(p: &[*const u8; L], off: usize) -> [__m512i; 4] {
    // SAFETY: caller's contract; unaligned loads.
    unsafe {
        let ld = |r: usize| _mm_loadu_si128(p[r].add(off).cast());
        let mut q = [_mm512_setzero_si512(); 4];
        for (i, qi) in q.iter_mut().enumerate() {
            // Lane (128-bit) l holds row i + 4l.
            let v = _mm512_castsi128_si512(ld(i));
            let v = _mm512_inserti32x4::<1>(v, ld(i + 4));
            let v = _mm512_inserti32x4::<2>(v, ld(i + 8));
            *qi = _mm512_inserti32x4::<3>(v, ld(i + 12));
        }
        let t0 = _mm512_unpacklo_epi32(q[0], q[1]);
        let t1 = _mm512_unpackhi_epi32(q[0], q[1]);
        let t2 = _mm512_unpacklo_epi32(q[2], q[3]);
        let t3 = _mm512_unpackhi_epi32(q[2], q[3]);
        [
            _mm512_unpacklo_epi64(t0, t2),
            _mm512_unpackhi_epi64(t0, t2),
            _mm512_unpacklo_epi64(t1, t3),
            _mm512_unpackhi_epi64(t1, t3),
        ]
    }
}

/// The f16 at `p[i] + off` of the 16 rows, as f32 lanes.
///
/// # Safety
/// 2 readable bytes at every `p[i] + off`; the module's features.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn h16(p: &[*const u8; L], off: usize) -> __m512 {
    let mut h = [0u16; L];
    for (hi, pi) in h.iter_mut().zip(p) {
        // SAFETY: caller's contract.
        *hi = unsafe { read_unaligned(pi.add(off).cast::<u16>()) };
    }
    // SAFETY: h is 32 bytes; features available.
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(h.as_ptr().cast())) }
}

/// The u32 at `p[i] + off` of the 16 rows.
///
/// # Safety
/// 4 readable bytes at every `p[i] + off`; the module's features.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn u32x16(p: &[*const u8; L], off: usize) -> __m512i {
    let mut h = [0u32; L];
    for (hi, pi) in h.iter_mut().zip(p) {
        // SAFETY: caller's contract.
        *hi = unsafe { read_unaligned(pi.add(off).cast::<u32>()) };
    }
    // SAFETY: h is 64 bytes; features available.
    unsafe { _mm512_loadu_si512(h.as_ptr().cast()) }
}

/// Stores 16 f32 lanes at `ws.d` / `ws.m` index `(j * G + g) * 16`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn put_f(dst: &mut [f32; SUB_MAX * RT], j: usize, g: usize, v: __m512) {
    let i = (j * G + g) * L;
    let d = &mut dst[i..i + L];
    // SAFETY: d has 16 writable f32.
    unsafe { _mm512_storeu_ps(d.as_mut_ptr(), v) }
}

/// Unpacks the 16 nibble bytes at `off` (element `e` low nibble of byte
/// `e`, element `e + 16` high nibble) of a legacy block, plus the high bits
/// `qh` (bit `e` is `0x10` of element `e`) at `qh_off` if given.
///
/// # Safety
/// As [`ZFormat::unpack16`], block at `base` bytes into each row.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn unpack_nibbles(
    p: &[*const u8; L],
    base: usize,
    off: usize,
    qh_off: Option<usize>,
    ws: &mut WScratch,
    j: usize,
    g: usize,
) {
    // SAFETY: caller's contract.
    unsafe {
        let m4 = _mm512_set1_epi8(0x0F);
        let t = t16x4(p, base + off);
        let mut q = [_mm512_setzero_si512(); 8];
        for s in 0..4 {
            q[s] = _mm512_and_si512(t[s], m4);
            q[s + 4] = _mm512_and_si512(_mm512_srli_epi32::<4>(t[s]), m4);
        }
        if let Some(qo) = qh_off {
            let qh = u32x16(p, base + qo);
            let b16 = _mm512_set1_epi8(0x10);
            for (s, qs) in q.iter_mut().enumerate() {
                // Element 4s + t's bit is bit t (+4 for odd s) of byte s / 2.
                let h = (s / 2) as i32;
                let ctrl = _mm512_broadcast_i32x4(_mm_setr_epi32(
                    h * 0x0101_0101,
                    (4 + h) * 0x0101_0101,
                    (8 + h) * 0x0101_0101,
                    (12 + h) * 0x0101_0101,
                ));
                let bits = if s % 2 == 0 {
                    0x0804_0201u32
                } else {
                    0x8040_2010u32
                };
                let k = _mm512_test_epi8_mask(
                    _mm512_shuffle_epi8(qh, ctrl),
                    _mm512_set1_epi32(bits as i32),
                );
                *qs = _mm512_mask_add_epi8(*qs, k, *qs, b16);
            }
        }
        for (s, &v) in q.iter().enumerate() {
            put(ws, qidx(8, j, s, g), v);
        }
    }
}

macro_rules! legacy_zformat {
    ($name:ident, wbytes = $wb:expr, xbytes = $xb:expr, x_qs = $xqs:expr, mode = $mode:ident,
     qs = $qs:expr, qh = $qh:expr, min = $min:expr, off = $off:expr) => {
        pub(crate) struct $name;
        // SAFETY: uses only the module's features; reads within the blocks.
        unsafe impl ZFormat for $name {
            const UNIT: usize = 32;
            const WBYTES: usize = $wb;
            const XBYTES: usize = $xb;
            const X_QS: usize = $xqs;
            const SUB: usize = 32;
            const MODE: Mode = Mode::$mode;
            #[inline]
            #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
            unsafe fn unpack16(
                p: &[*const u8; L],
                u: usize,
                ws: &mut WScratch,
                jb: usize,
                g: usize,
            ) {
                let base = u * $wb;
                // SAFETY: caller's contract: the block is readable in every row.
                unsafe {
                    unpack_nibbles(p, base, $qs, $qh, ws, jb, g);
                    put_f(&mut ws.d, jb, g, h16(p, base));
                    let min: Option<usize> = $min;
                    if let Some(mo) = min {
                        put_f(&mut ws.m, jb, g, h16(p, base + mo));
                    }
                }
            }
            #[inline]
            #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
            unsafe fn xprep(x: *const u8, out: &mut [[u32; 2]]) {
                // SAFETY: caller's contract.
                unsafe { xprep_legacy::<{ Mode::$mode as u8 }>(x, $off, out) }
            }
        }
    };
}

/// Activation tables of `Q8_0` (`[d, -off·Σy]`) and `Q8_1` (`[d, s]`) blocks.
///
/// # Safety
/// `x` is a whole activation block; `out` has one entry; the module's features.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn xprep_legacy<const MODE: u8>(x: *const u8, off: i32, out: &mut [[u32; 2]]) {
    // SAFETY: caller's contract: Q8_0 is d, qs[32]; Q8_1 is d, s, qs[32].
    unsafe {
        let d = super::isa::f16_1(read_unaligned(x.cast::<[u8; 2]>()));
        if MODE == Mode::Corr as u8 {
            let y = _mm256_loadu_si256(x.add(2).cast());
            let s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), y);
            let sum = super::isa::hsum_epi32(s);
            out[0] = [d.to_bits(), (-off * sum) as u32];
        } else {
            let s = super::isa::f16_1(read_unaligned(x.add(2).cast::<[u8; 2]>()));
            out[0] = [d.to_bits(), s.to_bits()];
        }
    }
}

legacy_zformat!(
    Q4_0,
    wbytes = 18,
    xbytes = 34,
    x_qs = 2,
    mode = Corr,
    qs = 2,
    qh = None,
    min = None,
    off = 8
);
legacy_zformat!(
    Q4_1,
    wbytes = 20,
    xbytes = 36,
    x_qs = 4,
    mode = Min,
    qs = 4,
    qh = None,
    min = Some(2),
    off = 0
);
legacy_zformat!(
    Q5_0,
    wbytes = 22,
    xbytes = 34,
    x_qs = 2,
    mode = Corr,
    qs = 6,
    qh = Some(2),
    min = None,
    off = 16
);
legacy_zformat!(
    Q5_1,
    wbytes = 24,
    xbytes = 36,
    x_qs = 4,
    mode = Min,
    qs = 8,
    qh = Some(4),
    min = Some(2),
    off = 0
);

/// `Q8_0` weights (as `q + 128`) against `Q8_0`.
pub(crate) struct Q8_0;
// SAFETY: uses only the module's features; reads within the blocks.
unsafe impl ZFormat for Q8_0 {
    const UNIT: usize = 32;
    const WBYTES: usize = 34;
    const XBYTES: usize = 34;
    const X_QS: usize = 2;
    const SUB: usize = 32;
    const MODE: Mode = Mode::Corr;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn unpack16(p: &[*const u8; L], u: usize, ws: &mut WScratch, jb: usize, g: usize) {
        let base = u * 34;
        // SAFETY: caller's contract.
        unsafe {
            let x80 = _mm512_set1_epi8(i8::MIN);
            for h in 0..2 {
                let t = t16x4(p, base + 2 + 16 * h);
                for (s, &v) in t.iter().enumerate() {
                    put(ws, qidx(8, jb, 4 * h + s, g), _mm512_xor_si512(v, x80));
                }
            }
            put_f(&mut ws.d, jb, g, h16(p, base));
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn xprep(x: *const u8, out: &mut [[u32; 2]]) {
        // SAFETY: caller's contract.
        unsafe { xprep_legacy::<{ Mode::Corr as u8 }>(x, 128, out) }
    }
}

/// `Q4_K` against `Q8_K`: 8 sub-blocks of 32, `D = d·sc`, `M = -dmin·m`.
pub(crate) struct Q4K;
// SAFETY: uses only the module's features; reads within the blocks.
unsafe impl ZFormat for Q4K {
    const UNIT: usize = 256;
    const WBYTES: usize = 144;
    const XBYTES: usize = 292;
    const X_QS: usize = 4;
    const SUB: usize = 32;
    const MODE: Mode = Mode::Min;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn unpack16(p: &[*const u8; L], u: usize, ws: &mut WScratch, jb: usize, g: usize) {
        let base = u * 144;
        // SAFETY: caller's contract: d@0, dmin@2, scales@4 (12), qs@16 (128).
        unsafe {
            let m4 = _mm512_set1_epi8(0x0F);
            for jj in 0..4 {
                for h in 0..2 {
                    let t = t16x4(p, base + 16 + 32 * jj + 16 * h);
                    for (s, &v) in t.iter().enumerate() {
                        let st = 4 * h + s;
                        put(ws, qidx(8, jb + 2 * jj, st, g), _mm512_and_si512(v, m4));
                        put(
                            ws,
                            qidx(8, jb + 2 * jj + 1, st, g),
                            _mm512_and_si512(_mm512_srli_epi32::<4>(v), m4),
                        );
                    }
                }
            }
            let mut dv = [[0f32; L]; 8];
            let mut mv = [[0f32; L]; 8];
            for (i, &pi) in p.iter().enumerate() {
                let b = pi.add(base);
                let d = super::isa::f16_1(read_unaligned(b.cast::<[u8; 2]>()));
                let dmin = super::isa::f16_1(read_unaligned(b.add(2).cast::<[u8; 2]>()));
                let sc: [u8; 12] = read_unaligned(b.add(4).cast());
                for j in 0..8 {
                    let (s, m) = crate::scalar::dequant::scale_min_k4(j, &sc);
                    dv[j][i] = d * s as f32;
                    mv[j][i] = -dmin * m as f32;
                }
            }
            for j in 0..8 {
                put_f(&mut ws.d, jb + j, g, _mm512_loadu_ps(dv[j].as_ptr()));
                put_f(&mut ws.m, jb + j, g, _mm512_loadu_ps(mv[j].as_ptr()));
            }
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn xprep(x: *const u8, out: &mut [[u32; 2]]) {
        // SAFETY: caller's contract: d f32 @0, qs @4, bsums (16 × i16) @260.
        unsafe {
            let d = f32::from_le_bytes(read_unaligned(x.cast::<[u8; 4]>()));
            let bs: [[u8; 2]; 16] = read_unaligned(x.add(260).cast());
            for (j, o) in out.iter_mut().enumerate().take(8) {
                let s =
                    i16::from_le_bytes(bs[2 * j]) as i32 + i16::from_le_bytes(bs[2 * j + 1]) as i32;
                *o = [d.to_bits(), (d * s as f32).to_bits()];
            }
        }
    }
}

/// `Q6_K` against `Q8_K`: 16 sub-blocks of 16, `q` in `0..64`, `D = d·sc`,
/// correction `-32·bsum`.
pub(crate) struct Q6K;
// SAFETY: uses only the module's features; reads within the blocks.
unsafe impl ZFormat for Q6K {
    const UNIT: usize = 256;
    const WBYTES: usize = 210;
    const XBYTES: usize = 292;
    const X_QS: usize = 4;
    const SUB: usize = 16;
    const MODE: Mode = Mode::Corr;
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn unpack16(p: &[*const u8; L], u: usize, ws: &mut WScratch, jb: usize, g: usize) {
        let base = u * 210;
        // SAFETY: caller's contract: ql@0 (128), qh@128 (64), scales@192 (16 × i8), d@208.
        unsafe {
            let m4 = _mm512_set1_epi8(0x0F);
            let m2 = _mm512_set1_epi8(0x03);
            for n in 0..2 {
                for h in 0..2 {
                    let ta = t16x4(p, base + 64 * n + 16 * h);
                    let tb = t16x4(p, base + 64 * n + 32 + 16 * h);
                    let th = t16x4(p, base + 128 + 32 * n + 16 * h);
                    for s in 0..4 {
                        let hi = |sh: u32| {
                            let v = match sh {
                                0 => th[s],
                                2 => _mm512_srli_epi32::<2>(th[s]),
                                4 => _mm512_srli_epi32::<4>(th[s]),
                                _ => _mm512_srli_epi32::<6>(th[s]),
                            };
                            _mm512_slli_epi32::<4>(_mm512_and_si512(v, m2))
                        };
                        let lo_a = _mm512_and_si512(ta[s], m4);
                        let lo_b = _mm512_and_si512(tb[s], m4);
                        let hi_a = _mm512_and_si512(_mm512_srli_epi32::<4>(ta[s]), m4);
                        let hi_b = _mm512_and_si512(_mm512_srli_epi32::<4>(tb[s]), m4);
                        let j0 = jb + 8 * n + h;
                        put(ws, qidx(4, j0, s, g), _mm512_or_si512(lo_a, hi(0)));
                        put(ws, qidx(4, j0 + 2, s, g), _mm512_or_si512(lo_b, hi(2)));
                        put(ws, qidx(4, j0 + 4, s, g), _mm512_or_si512(hi_a, hi(4)));
                        put(ws, qidx(4, j0 + 6, s, g), _mm512_or_si512(hi_b, hi(6)));
                    }
                }
            }
            let mut dv = [[0f32; L]; 16];
            for (i, &pi) in p.iter().enumerate() {
                let b = pi.add(base);
                let d = super::isa::f16_1(read_unaligned(b.add(208).cast::<[u8; 2]>()));
                let sc: [i8; 16] = read_unaligned(b.add(192).cast());
                for j in 0..16 {
                    dv[j][i] = d * sc[j] as f32;
                }
            }
            for (j, v) in dv.iter().enumerate() {
                put_f(&mut ws.d, jb + j, g, _mm512_loadu_ps(v.as_ptr()));
            }
        }
    }
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn xprep(x: *const u8, out: &mut [[u32; 2]]) {
        // SAFETY: caller's contract: d f32 @0, bsums (16 × i16) @260.
        unsafe {
            let d = f32::from_le_bytes(read_unaligned(x.cast::<[u8; 4]>()));
            let bs: [[u8; 2]; 16] = read_unaligned(x.add(260).cast());
            for (j, o) in out.iter_mut().enumerate().take(16) {
                *o = [d.to_bits(), (-32 * i16::from_le_bytes(bs[j]) as i32) as u32];
            }
        }
    }
}

/// The `RT × C` tile over the `nsub` sub-blocks of the chunk starting at
/// global sub-block `j0`: `out[g][c]` lane `i` is row `16g + i` · column `c`.
///
/// # Safety
/// `xc[c]` are activation rows covering sub-blocks `j0..j0 + nsub`; `xt[c]`
/// has `nsub` entries; `ws` is unpacked for `nsub` sub-blocks; the module's features.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<F: ZFormat>(
    ws: &WScratch,
    nsub: usize,
    j0: usize,
    xc: [*const u8; C],
    xt: [*const [u32; 2]; C],
) -> [[__m512; C]; G] {
    let spu = F::UNIT / F::SUB;
    let steps = F::SUB / 4;
    // SAFETY: caller's contract; scratch indices are below nsub sub-blocks.
    unsafe {
        let mut accf = [[_mm512_setzero_ps(); C]; G];
        for j in 0..nsub {
            let gj = j0 + j;
            let xoff = (gj / spu) * F::XBYTES + F::X_QS + (gj % spu) * F::SUB;
            let mut acci = [[_mm512_setzero_si512(); C]; G];
            if F::MODE == Mode::Corr {
                for c in 0..C {
                    let v = _mm512_set1_epi32((*xt[c].add(j))[1] as i32);
                    for a in acci.iter_mut() {
                        a[c] = v;
                    }
                }
            }
            let qb = ws.q.as_ptr().add(qidx(steps, j, 0, 0));
            for s in 0..steps {
                let mut w = [_mm512_setzero_si512(); G];
                for (g, wg) in w.iter_mut().enumerate() {
                    *wg = _mm512_load_si512(qb.add((s * G + g) * 64).cast());
                }
                for c in 0..C {
                    let xb =
                        _mm512_set1_epi32(read_unaligned(xc[c].add(xoff + 4 * s).cast::<i32>()));
                    for g in 0..G {
                        acci[g][c] = _mm512_dpbusd_epi32(acci[g][c], w[g], xb);
                    }
                }
            }
            for c in 0..C {
                let e = *xt[c].add(j);
                let dx = _mm512_set1_ps(f32::from_bits(e[0]));
                let sx = _mm512_set1_ps(f32::from_bits(e[1]));
                for g in 0..G {
                    let di = (j * G + g) * L;
                    let sc = _mm512_mul_ps(_mm512_loadu_ps(ws.d.as_ptr().add(di)), dx);
                    accf[g][c] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(acci[g][c]), accf[g][c]);
                    if F::MODE == Mode::Min {
                        let mv = _mm512_loadu_ps(ws.m.as_ptr().add(di));
                        accf[g][c] = _mm512_fmadd_ps(mv, sx, accf[g][c]);
                    }
                }
            }
        }
        accf
    }
}

/// `y[r * n + c] = dot(row r of w, column c of x)` for all rows of `w` (`k`
/// elements each) and the `n` activation rows in `x`.
///
/// # Safety
/// The module's features must be available. Sizes validated by the caller:
/// `w` whole rows of `k` elements of `F`, `x` exactly `n` rows, `y.len() ==
/// rows * n`; `k` a multiple of `F::UNIT`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn gemm<F: ZFormat>(k: usize, w: &[u8], x: &[u8], n: usize, y: &mut [f32]) {
    let nu = k / F::UNIT;
    let spu = F::UNIT / F::SUB;
    let wrow = nu * F::WBYTES;
    let xrow = nu * F::XBYTES;
    if nu == 0 || n == 0 || w.len() < wrow || x.len() < n * xrow {
        y.fill(0.0);
        return;
    }
    let m = w.len() / wrow;
    if y.len() < m * n {
        return;
    }
    // Chunks of at most KC_MAX elements, evenly split.
    let upc_max = (KC_MAX / F::UNIT).max(1);
    let nchunks = nu.div_ceil(upc_max);
    let upc = nu.div_ceil(nchunks);
    let mut ws = WScratch {
        q: [0; KC_MAX * RT],
        d: [0.0; SUB_MAX * RT],
        m: [0.0; SUB_MAX * RT],
    };
    let mut xt = [[0u32; 2]; XT_MAX];
    let wp = w.as_ptr();
    let xp = x.as_ptr();
    let mut u0 = 0;
    while u0 < nu {
        let cu = upc.min(nu - u0);
        let nsub = cu * spu;
        let j0 = u0 * spu;
        // Columns per table fill.
        let nc_max = ((XT_MAX / nsub) / C * C).max(C);
        let mut c0 = 0;
        while c0 < n {
            let nc = nc_max.min(n - c0);
            for c in 0..nc {
                for u in 0..cu {
                    let e = c * nsub + u * spu;
                    // SAFETY: column c0 + c < n has xrow bytes; block u0 + u < nu.
                    unsafe {
                        F::xprep(
                            xp.add((c0 + c) * xrow + (u0 + u) * F::XBYTES),
                            &mut xt[e..e + spu],
                        )
                    };
                }
            }
            let mut r0 = 0;
            while r0 < m {
                let rows = RT.min(m - r0);
                for g in 0..G {
                    // Rows past the end repeat the last row (results dropped).
                    let p: [*const u8; L] = core::array::from_fn(|i| {
                        let r = (r0 + g * L + i).min(m - 1);
                        // SAFETY: r < m: row r exists.
                        unsafe { wp.add(r * wrow) }
                    });
                    for u in 0..cu {
                        // SAFETY: block u0 + u < nu of every row; nsub <= SUB_MAX.
                        unsafe { F::unpack16(&p, u0 + u, &mut ws, u * spu, g) };
                    }
                }
                let mut ct = 0;
                while ct < nc {
                    let cols: [usize; C] = core::array::from_fn(|c| (ct + c).min(nc - 1));
                    // SAFETY: columns c0 + cols[c] < n; table rows of nsub entries.
                    let acc = unsafe {
                        tile::<F>(
                            &ws,
                            nsub,
                            j0,
                            cols.map(|c| xp.add((c0 + c) * xrow)),
                            cols.map(|c| xt.as_ptr().add(c * nsub)),
                        )
                    };
                    for (g, ag) in acc.iter().enumerate() {
                        for (c, &a) in ag.iter().enumerate() {
                            if ct + c >= nc {
                                break;
                            }
                            let mut v = [0f32; L];
                            // SAFETY: v has 16 f32.
                            unsafe { _mm512_storeu_ps(v.as_mut_ptr(), a) };
                            let col = c0 + ct + c;
                            for (i, &vi) in v.iter().enumerate() {
                                let r = g * L + i;
                                if r >= rows {
                                    break;
                                }
                                let o = &mut y[(r0 + r) * n + col];
                                if u0 == 0 {
                                    *o = vi;
                                } else {
                                    *o += vi;
                                }
                            }
                        }
                    }
                    ct += C;
                }
                r0 += RT;
            }
            c0 += nc;
        }
        u0 += cu;
    }
}

/// The sums of 8 vectors.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
pub(crate) fn hsum8(v: &[__m512; 8]) -> [f32; 8] {
    // Fold the 256-bit halves of pairs, then the 128-bit quarters of pairs
    // of those: t[i] holds vectors 4i..4i+4, 4 partial lanes each.
    let mut s = [_mm512_setzero_ps(); 4];
    for (i, si) in s.iter_mut().enumerate() {
        let (a, b) = (v[2 * i], v[2 * i + 1]);
        let lo = _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b);
        let hi = _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b);
        *si = _mm512_add_ps(lo, hi);
    }
    let mut t = [_mm512_setzero_ps(); 2];
    for (i, ti) in t.iter_mut().enumerate() {
        let (a, b) = (s[2 * i], s[2 * i + 1]);
        let lo = _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b);
        let hi = _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b);
        *ti = _mm512_add_ps(lo, hi);
    }
    // Quarter l of u: [v_l, v_{l+4}, v_l, v_{l+4}] partials; fold once more.
    let u = _mm512_add_ps(
        _mm512_unpacklo_ps(t[0], t[1]),
        _mm512_unpackhi_ps(t[0], t[1]),
    );
    let u = _mm512_add_ps(u, _mm512_permute_ps::<0b01_00_11_10>(u));
    let mut a = [0f32; 16];
    // SAFETY: a has 16 f32.
    unsafe { _mm512_storeu_ps(a.as_mut_ptr(), u) };
    [a[0], a[4], a[8], a[12], a[1], a[5], a[9], a[13]]
}

/// Mask of the first `cnt` (<= 16) lanes.
#[inline(always)]
pub(crate) fn lanes(cnt: usize) -> u16 {
    if cnt >= 16 {
        u16::MAX
    } else {
        (1u16 << cnt) - 1
    }
}

f16gemm::tier_gemm! {
    /// F16 · F16 prompt batches: [`f16gemm::gemm`] on 16 lanes, tiles of 8
    /// rows × 3 columns (24 accumulators, 3 column vectors, 1 row vector).
    /// The AVX-512 tier's features, no VNNI.
    pub(crate) fn gemm_f16: "avx2,fma,f16c,avx512f,avx512bw,avx512vl", Zmm, 8, 3
}

/// Rows per F16 gemv tile. Four made 2-thread decode 5–8% faster than
/// eight on an Ice Lake host (2026-11-28: F16 at 2 threads, medians of 6
/// and 8 alternating rounds; the same at 1 thread), and two were slower
/// than four. Presumably fewer concurrent row streams per core suit its
/// memory better.
const VR: usize = 4;

/// F16 rows · one F16 column, 16 lanes per step with a masked tail: `y[r]
/// = dot(row r of w, x)` (`k` elements). Each row has one accumulator over
/// the same steps and one reduction ([`hsum8`]), whatever the tile, so
/// [`vec_dot_f16`] (one row) gives identical bits.
///
/// # Safety
/// The AVX-512 tier's features (no VNNI); `w` whole rows of `2k` bytes,
/// `x.len() >= 2k`, `y.len() == w.len() / (2k)`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn gemv_f16(k: usize, w: &[u8], x: &[u8], y: &mut [f32]) {
    let rb = 2 * k;
    if k == 0 || x.len() < rb {
        y.fill(0.0);
        return;
    }
    let m = (w.len() / rb).min(y.len());
    let steps = k.div_ceil(16);
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut r0 = 0;
    while r0 < m {
        let rp: [*const u8; VR] = core::array::from_fn(|r| {
            // SAFETY: row min(r0 + r, m - 1) exists.
            unsafe { wp.add((r0 + r).min(m - 1) * rb) }
        });
        // Prefetch the tile PREFETCH_AHEAD bytes on (gemv streams the weights once).
        let mut pf = super::isa::Prefetcher::ahead_of(wp.wrapping_add(r0 * rb), VR * rb, steps);
        let mut acc = [_mm512_setzero_ps(); VR];
        for s in 0..steps {
            let mask = lanes(k - 16 * s);
            // SAFETY: masked to the rows' elements (masked-off lanes never
            // fault); prefetching never faults.
            unsafe {
                pf.step();
                let xv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, xp.add(32 * s).cast()));
                for (a, &p) in acc.iter_mut().zip(&rp) {
                    let wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, p.add(32 * s).cast()));
                    *a = _mm512_fmadd_ps(wv, xv, *a);
                }
            }
        }
        // hsum8 sums each vector on its own, so the zero padding changes
        // no row's bits.
        let sums = hsum8(&core::array::from_fn(|i| {
            if i < VR {
                acc[i]
            } else {
                _mm512_setzero_ps()
            }
        }));
        let rows = VR.min(m - r0);
        y[r0..r0 + rows].copy_from_slice(&sums[..rows]);
        r0 += VR;
    }
}

/// F16 · F16 dot of `n` elements: the one-row case of [`gemv_f16`] (same bits).
///
/// # Safety
/// The AVX-512 tier's features (no VNNI); `w.len() >= 2n`, `x.len() >= 2n`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn vec_dot_f16(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut acc = [_mm512_setzero_ps(); 1];
    for s in 0..n.div_ceil(16) {
        let mask = lanes(n - 16 * s);
        // SAFETY: masked to the rows' elements; masked-off lanes never fault.
        unsafe {
            let xv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, xp.add(32 * s).cast()));
            let wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, wp.add(32 * s).cast()));
            acc[0] = _mm512_fmadd_ps(wv, xv, acc[0]);
        }
    }
    hsum1(acc[0])
}

/// The sum of one vector, associated exactly as [`hsum8`] sums each of its
/// vectors (256-bit halves, then 128-bit halves, then lanes `(0+2)+(1+3)`),
/// so results match it bit for bit.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
fn hsum1(a: __m512) -> f32 {
    let h = _mm256_add_ps(
        _mm512_castps512_ps256(a),
        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a))),
    );
    let q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h));
    let r = _mm_add_ps(q, _mm_movehl_ps(q, q));
    _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)))
}
