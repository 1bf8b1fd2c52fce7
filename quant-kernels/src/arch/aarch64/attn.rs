//! Attention products (see `crate::attn`) on NEON: 4-lane f32 FMAs, F16
//! elements widened exactly with `fcvtl`/`fcvtl2` ([`f16x8`]).
//!
//! Scores: tiles of 16 positions × up to 4 queries (16 accumulators) over
//! the whole head dimension. Values: tiles of 16 dimensions × up to 4
//! heads over all positions. 32 vector registers hold either tile.
//!
//! Soundness: the `#[target_feature]` functions here are only reachable
//! through [`kernels`], which hands them out only on CPUs with NEON; sizes
//! are validated by `crate::attn`.

use core::arch::aarch64::*;

use super::common::f16x8;
use super::has;
use crate::attn::{AttnKernels, Cols, Q8Kernels, KV_CHUNK, Q8_SCALE_BYTES, V_QUANTS_AT};
use crate::GgmlType;

/// The Q8_0-cache kernels on NEON: value sums in [`values_q8`]; scores
/// with `sdot` when `dot` (the dotprod tier up) and the CPU has it, else
/// with widening multiplies ([`scores_q8_neon`], the Pi 4). `None` without
/// NEON.
pub(crate) fn q8_kernels(dot: bool) -> Option<Q8Kernels> {
    if !has("neon") {
        return None;
    }
    let values: crate::attn::ValuesFn = |hd, g, p, st, v, len, cs, cols, o| {
        // SAFETY: NEON was checked above; `crate::attn` validated the sizes.
        unsafe { values_q8(hd, g, p, st, v, len, cs, cols, o) }
    };
    if !(dot && has("dotprod")) {
        return Some(Q8Kernels {
            scores: |hd, gn, qq, qd, k, nch, cs, s, st| {
                // SAFETY: NEON was checked above.
                unsafe { scores_q8_neon(hd, gn, qq, qd, k, nch, cs, s, st) }
            },
            values,
        });
    }
    Some(Q8Kernels {
        scores: |hd, gn, qq, qd, k, nch, cs, s, st| {
            // SAFETY: NEON and dotprod were checked above.
            unsafe { scores_q8_dot(hd, gn, qq, qd, k, nch, cs, s, st) }
        },
        values,
    })
}

/// Q8_0 scores without `sdot` (a Pi 4): the tiles of [`scores_q8_dot`],
/// each 16-byte product of four positions' four dimensions done as two
/// widening multiplies (`smull`, `smull2`: i8 · i8 → i16) and two pairwise
/// widening adds into i32 (`sadalp`), which cannot overflow; a block's two
/// half sums per position are added at its end (`addp`). The integer sums
/// are exact, so they are the reference's. Under six instructions per 16
/// products, loads included, where the portable source's loop spends ten
/// (162 per 256; `objdump -d`).
///
/// # Safety
/// NEON; sizes as `crate::attn` validates them.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
unsafe fn scores_q8_neon(
    hd: usize,
    gn: usize,
    qq: &[i8],
    qd: &[f32],
    k: &[u8],
    nch: usize,
    cs: usize,
    scores: &mut [f32],
    stride: usize,
) {
    let nb = hd / 32;
    q8_score_tiles(
        hd,
        gn,
        qq,
        qd,
        k,
        nch,
        cs,
        scores,
        stride,
        |two, q, d, kc, part, o| {
            // SAFETY: NEON (this function's contract); the extents are
            // `q8_score_tiles`'s.
            unsafe {
                if two {
                    scores_q8_neon_tile::<2>(hd, nb, q, d, kc, part, o, stride);
                } else {
                    scores_q8_neon_tile::<1>(hd, nb, q, d, kc, part, o, stride);
                }
            }
        },
    );
}

/// The tiles of a Q8_0 scores kernel ([`crate::attn::q8_tiles_16x2`]):
/// `tile(two, q, d, kc, part, o)` for each, with `two` when it has two
/// queries, `q` and `d` their first quants and scales, `kc` the key chunk
/// (whole, `KV_CHUNK · (hd + 2·hd/32)` bytes: f16 scales, then hd/4 rows of 64
/// positions × 4 quants; chunks `cs` bytes apart in `k`), `part` its 16
/// positions, and `o` their scores in
/// the first query's row (the second's `stride` on). Sizes as
/// `crate::attn` validates them.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn q8_score_tiles(
    hd: usize,
    gn: usize,
    qq: &[i8],
    qd: &[f32],
    k: &[u8],
    nch: usize,
    cs: usize,
    scores: &mut [f32],
    stride: usize,
    tile: impl Fn(bool, *const i8, *const f32, *const u8, usize, *mut f32),
) {
    let nb = hd / 32;
    let cb = KV_CHUNK * (hd + Q8_SCALE_BYTES * nb);
    crate::attn::q8_tiles_16x2(nch, gn, |c, part, g0, n| {
        let kc = k[c * cs..c * cs + cb].as_ptr();
        let o = scores[g0 * stride + c * KV_CHUNK + 16 * part..].as_mut_ptr();
        tile(
            n == 2,
            qq[g0 * hd..].as_ptr(),
            qd[g0 * nb..].as_ptr(),
            kc,
            part,
            o,
        );
    });
}

/// 16 positions (`part` of a chunk) × `G` queries, as
/// [`scores_q8_dot_tile`] without `sdot`.
///
/// # Safety
/// NEON; `kc` holds a whole Q8_0 key chunk, `qq` `G · hd` quants, `qd`
/// `G · nb` scales, `out + g · stride` 16 writable f32 for each `g < G`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
unsafe fn scores_q8_neon_tile<const G: usize>(
    hd: usize,
    nb: usize,
    qq: *const i8,
    qd: *const f32,
    kc: *const u8,
    part: usize,
    out: *mut f32,
    stride: usize,
) {
    // SAFETY: caller's contract; every access is within the stated extents.
    unsafe {
        let mut s = [[vdupq_n_f32(0.0); 4]; G];
        let qs = kc
            .add(Q8_SCALE_BYTES * nb * KV_CHUNK + 4 * 16 * part)
            .cast::<i8>();
        let sc = kc.cast::<u16>().add(16 * part);
        for b in 0..nb {
            // Per query and 4 positions: lanes (position, half) from the
            // low 8 bytes, and from the high 8.
            let mut lo = [[vdupq_n_s32(0); 4]; G];
            let mut hi = [[vdupq_n_s32(0); 4]; G];
            for d4 in 8 * b..8 * (b + 1) {
                let row = qs.add(d4 * 4 * KV_CHUNK);
                let kv: [int8x16_t; 4] = core::array::from_fn(|i| vld1q_s8(row.add(16 * i)));
                for g in 0..G {
                    let qv =
                        vreinterpretq_s8_s32(vld1q_dup_s32(qq.add(g * hd + 4 * d4).cast::<i32>()));
                    for i in 0..4 {
                        let l = vmull_s8(vget_low_s8(kv[i]), vget_low_s8(qv));
                        let h = vmull_high_s8(kv[i], qv);
                        lo[g][i] = vpadalq_s16(lo[g][i], l);
                        hi[g][i] = vpadalq_s16(hi[g][i], h);
                    }
                }
            }
            let d = block_scales(sc.add(b * KV_CHUNK));
            for g in 0..G {
                let e = *qd.add(g * nb + b);
                for i in 0..4 {
                    // Lanes of `lo`: positions 0, 0, 1, 1 (of these four);
                    // of `hi`: 2, 2, 3, 3.
                    let sum = vpaddq_s32(lo[g][i], hi[g][i]);
                    let dd = vmulq_n_f32(d[i], e);
                    s[g][i] = vfmaq_f32(s[g][i], dd, vcvtq_f32_s32(sum));
                }
            }
        }
        for (g, sg) in s.iter().enumerate() {
            for (i, &si) in sg.iter().enumerate() {
                vst1q_f32(out.add(g * stride + 4 * i), si);
            }
        }
    }
}

/// Q8_0 value sums: tiles of up to four heads × 16 columns (half a block)
/// over all positions. Per chunk, each head's weights `p · d` for the
/// block's 64 positions come first (vector products, as the scales are
/// contiguous); then each position's 16 quants are widened to f32 once and
/// added into every head's four accumulators with one FMA each. The
/// portable source reloads and stores its outputs at every position and
/// scales each row before weighting it: 159 instructions a position and
/// block for three heads in its loop, against 58 here (`objdump -d`).
///
/// # Safety
/// NEON; sizes as `crate::attn` validates them (`hd` a multiple of 32,
/// `v` whole chunks covering `len`, `probs` `group` rows of `stride` ≥
/// `len`, `out` `group` rows of `cols.width()`).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
unsafe fn values_q8(
    _hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    len: usize,
    cs: usize,
    cols: Cols,
    out: &mut [f32],
) {
    crate::attn::q8_value_tiles_16(group, probs, stride, v, cs, cols, out, 4, |t| {
        // SAFETY: NEON (this function's contract); v holds len.div_ceil(64)
        // whole chunks t.cs bytes apart, the tile's block part of each at t.v;
        // t.p gn rows of `stride` ≥ len; t.out gn rows of t.ow, 16 columns.
        unsafe {
            match t.gn {
                4 => values_q8_tile::<4>(t.cs, t.ow, t.half, len, t.p, stride, t.v, t.out),
                3 => values_q8_tile::<3>(t.cs, t.ow, t.half, len, t.p, stride, t.v, t.out),
                2 => values_q8_tile::<2>(t.cs, t.ow, t.half, len, t.p, stride, t.v, t.out),
                _ => values_q8_tile::<1>(t.cs, t.ow, t.half, len, t.p, stride, t.v, t.out),
            }
        }
    });
}

/// `G` heads × 16 columns (`half` of a block) over all `len` positions.
///
/// # Safety
/// NEON; `v + c·cs` is the block's part of value chunk `c` (64 f16 scales,
/// then 64 rows of 32 quants) for `c < len.div_ceil(64)`; `p + g·stride`
/// has `len` f32 and `out + g·ow` 16 writable f32 for each `g < G`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
unsafe fn values_q8_tile<const G: usize>(
    cs: usize,
    ow: usize,
    half: usize,
    len: usize,
    p: *const f32,
    stride: usize,
    v: *const u8,
    out: *mut f32,
) {
    let mut acc = [[vdupq_n_f32(0.0); 4]; G];
    let mut pd = [[0f32; KV_CHUNK]; G];
    // SAFETY: caller's contract; every access is within the stated extents.
    unsafe {
        for c in 0..len.div_ceil(KV_CHUNK) {
            let n = (len - c * KV_CHUNK).min(KV_CHUNK);
            // The chunk's 64 scales, widened once for every head.
            let sc = v.add(c * cs).cast::<u16>();
            let mut d = [0f32; KV_CHUNK];
            for i in 0..KV_CHUNK / 8 {
                let (lo, hi) = f16x8(vld1q_u16(sc.add(8 * i)));
                vst1q_f32(d.as_mut_ptr().add(8 * i), lo);
                vst1q_f32(d.as_mut_ptr().add(8 * i + 4), hi);
            }
            for (g, pg) in pd.iter_mut().enumerate() {
                let pr = p.add(g * stride + c * KV_CHUNK);
                let mut j = 0;
                while j + 4 <= n {
                    let x = vmulq_f32(vld1q_f32(pr.add(j)), vld1q_f32(d.as_ptr().add(j)));
                    vst1q_f32(pg.as_mut_ptr().add(j), x);
                    j += 4;
                }
                while j < n {
                    pg[j] = *pr.add(j) * d[j];
                    j += 1;
                }
            }
            let qs = v.add(c * cs + V_QUANTS_AT + 16 * half).cast::<i8>();
            for j in 0..n {
                let q = vld1q_s8(qs.add(32 * j));
                let (lo, hi) = (vmovl_s8(vget_low_s8(q)), vmovl_high_s8(q));
                let vf = [
                    vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))),
                    vcvtq_f32_s32(vmovl_high_s16(lo)),
                    vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))),
                    vcvtq_f32_s32(vmovl_high_s16(hi)),
                ];
                for (a, pg) in acc.iter_mut().zip(&pd) {
                    let wj = pg[j];
                    for (ai, &x) in a.iter_mut().zip(&vf) {
                        *ai = vfmaq_n_f32(*ai, x, wj);
                    }
                }
            }
        }
        for (g, a) in acc.iter().enumerate() {
            for (i, &ai) in a.iter().enumerate() {
                vst1q_f32(out.add(g * ow + 4 * i), ai);
            }
        }
    }
}

/// Q8_0 scores with `sdot`: tiles of 16 positions (four vectors, each lane
/// four dimensions of one position, as the key layout stores them) × up
/// to two queries, each query's four dimensions broadcast to every lane.
/// The integer sums are exact, so they are the reference's.
///
/// # Safety
/// NEON and dotprod; sizes as `crate::attn` validates them.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon,dotprod")]
unsafe fn scores_q8_dot(
    hd: usize,
    gn: usize,
    qq: &[i8],
    qd: &[f32],
    k: &[u8],
    nch: usize,
    cs: usize,
    scores: &mut [f32],
    stride: usize,
) {
    let nb = hd / 32;
    q8_score_tiles(
        hd,
        gn,
        qq,
        qd,
        k,
        nch,
        cs,
        scores,
        stride,
        |two, q, d, kc, part, o| {
            // SAFETY: NEON and dotprod (this function's contract); the extents
            // are `q8_score_tiles`'s.
            unsafe {
                if two {
                    scores_q8_dot_tile::<2>(hd, nb, q, d, kc, part, o, stride);
                } else {
                    scores_q8_dot_tile::<1>(hd, nb, q, d, kc, part, o, stride);
                }
            }
        },
    );
}

/// 16 positions (`part` of a chunk) × `G` queries.
///
/// # Safety
/// NEON and dotprod; `kc` holds a whole Q8_0 key chunk, `qq` `G · hd`
/// quants, `qd` `G · nb` scales, `out + g · stride` 16 writable f32 for
/// each `g < G`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon,dotprod")]
unsafe fn scores_q8_dot_tile<const G: usize>(
    hd: usize,
    nb: usize,
    qq: *const i8,
    qd: *const f32,
    kc: *const u8,
    part: usize,
    out: *mut f32,
    stride: usize,
) {
    // SAFETY: caller's contract; every access is within the stated extents.
    unsafe {
        let mut s = [[vdupq_n_f32(0.0); 4]; G];
        let qs = kc
            .add(Q8_SCALE_BYTES * nb * KV_CHUNK + 4 * 16 * part)
            .cast::<i8>();
        let sc = kc.cast::<u16>().add(16 * part);
        for b in 0..nb {
            let mut acc = [[vdupq_n_s32(0); 4]; G];
            for d4 in 8 * b..8 * (b + 1) {
                let row = qs.add(d4 * 4 * KV_CHUNK);
                let kv: [int8x16_t; 4] = core::array::from_fn(|i| vld1q_s8(row.add(16 * i)));
                for (g, a) in acc.iter_mut().enumerate() {
                    let qv =
                        vreinterpretq_s8_s32(vld1q_dup_s32(qq.add(g * hd + 4 * d4).cast::<i32>()));
                    for (ai, &ki) in a.iter_mut().zip(&kv) {
                        *ai = super::dotprod::dot16(*ai, ki, qv);
                    }
                }
            }
            let d = block_scales(sc.add(b * KV_CHUNK));
            for (g, (sg, a)) in s.iter_mut().zip(&acc).enumerate() {
                let e = *qd.add(g * nb + b);
                for (si, (&ai, &di)) in sg.iter_mut().zip(a.iter().zip(&d)) {
                    let dd = vmulq_n_f32(di, e);
                    *si = vfmaq_f32(*si, dd, vcvtq_f32_s32(ai));
                }
            }
        }
        for (g, sg) in s.iter().enumerate() {
            for (i, &si) in sg.iter().enumerate() {
                vst1q_f32(out.add(g * stride + 4 * i), si);
            }
        }
    }
}

/// A Q8_0 key block's 16 f16 scales at `sc` (one tile's positions), widened.
///
/// # Safety
/// NEON; 16 readable `u16` at `sc`.
#[inline(always)]
unsafe fn block_scales(sc: *const u16) -> [float32x4_t; 4] {
    // SAFETY: caller's contract; `ld1` has no alignment requirement.
    unsafe {
        let (a, b) = f16x8(vld1q_u16(sc));
        let (c, d) = f16x8(vld1q_u16(sc.add(8)));
        [a, b, c, d]
    }
}

/// The NEON attention kernels for cache elements of type `ty`.
pub(crate) fn kernels(ty: GgmlType) -> Option<AttnKernels> {
    if !has("neon") {
        return None;
    }
    match ty {
        GgmlType::F16 => Some(AttnKernels {
            scores: scores::<true>,
            values: values::<true>,
        }),
        GgmlType::F32 => Some(AttnKernels {
            scores: scores::<false>,
            values: values::<false>,
        }),
        _ => None,
    }
}

/// 16 elements at `p` (F16 or F32) as four f32 vectors.
///
/// # Safety
/// NEON; 16 readable elements at `p`.
#[inline(always)]
unsafe fn load16<const F16: bool>(p: *const u8) -> [float32x4_t; 4] {
    // SAFETY: caller's contract; `ld1` has no alignment requirement.
    unsafe {
        if F16 {
            let (a, b) = f16x8(vld1q_u16(p.cast()));
            let (c, d) = f16x8(vld1q_u16(p.add(16).cast()));
            [a, b, c, d]
        } else {
            let f = p.cast::<f32>();
            [
                vld1q_f32(f),
                vld1q_f32(f.add(4)),
                vld1q_f32(f.add(8)),
                vld1q_f32(f.add(12)),
            ]
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn scores<const F16: bool>(
    hd: usize,
    group: usize,
    q: &[f32],
    k: &[u8],
    nch: usize,
    cs: usize,
    scores: &mut [f32],
    stride: usize,
) {
    let es = if F16 { 2 } else { 4 };
    let cb = hd * KV_CHUNK * es;
    for c in 0..nch {
        for t in 0..KV_CHUNK / 16 {
            let mut g0 = 0;
            while g0 < group {
                let gn = (group - g0).min(4);
                let kc = k[c * cs + 16 * t * es..c * cs + cb].as_ptr();
                let qp = q[g0 * hd..].as_ptr();
                let op = scores[g0 * stride + c * KV_CHUNK + 16 * t..].as_mut_ptr();
                // SAFETY: only reachable via `kernels`, which checked NEON;
                // the 16 positions at 16·t of each of the chunk's hd rows are
                // in `k`, q has gn·hd values from g0, scores gn rows from op.
                unsafe {
                    match gn {
                        4 => scores_tile::<4, F16>(hd, qp, kc, op, stride),
                        3 => scores_tile::<3, F16>(hd, qp, kc, op, stride),
                        2 => scores_tile::<2, F16>(hd, qp, kc, op, stride),
                        _ => scores_tile::<1, F16>(hd, qp, kc, op, stride),
                    }
                }
                g0 += gn;
            }
        }
    }
}

/// 16 positions × `G` queries.
///
/// # Safety
/// NEON; `kc + d·64` has 16 readable elements for `d < hd`, `q` `G·hd` f32,
/// `out + g·stride` 16 writable f32 for each `g < G`.
#[target_feature(enable = "neon")]
unsafe fn scores_tile<const G: usize, const F16: bool>(
    hd: usize,
    q: *const f32,
    kc: *const u8,
    out: *mut f32,
    stride: usize,
) {
    let es = if F16 { 2 } else { 4 };
    let mut acc = [[vdupq_n_f32(0.0); 4]; G];
    // SAFETY: caller's contract.
    unsafe {
        for d in 0..hd {
            let kv = load16::<F16>(kc.add(d * KV_CHUNK * es));
            for (g, a) in acc.iter_mut().enumerate() {
                let qd = *q.add(g * hd + d);
                for (aj, &kj) in a.iter_mut().zip(&kv) {
                    *aj = vfmaq_n_f32(*aj, kj, qd);
                }
            }
        }
        for (g, a) in acc.iter().enumerate() {
            for (j, &aj) in a.iter().enumerate() {
                vst1q_f32(out.add(g * stride + 4 * j), aj);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn values<const F16: bool>(
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    len: usize,
    cs: usize,
    cols: Cols,
    out: &mut [f32],
) {
    if !hd.is_multiple_of(16) {
        return crate::attn::values_fallback(F16, hd, group, probs, stride, v, len, cs, cols, out);
    }
    let es = if F16 { 2 } else { 4 };
    let w = cols.width();
    let mut g0 = 0;
    while g0 < group {
        let gn = (group - g0).min(4);
        for d0 in (cols.c0..cols.c1).step_by(16) {
            let pp = probs[g0 * stride..].as_ptr();
            let vp = v[d0 * es..].as_ptr();
            let op = out[g0 * w + d0 - cols.c0..].as_mut_ptr();
            // SAFETY: only reachable via `kernels`, which checked NEON; v
            // holds len rows of hd elements in chunks of 64, cs bytes apart
            // (this slab is d0..d0 + 16), probs gn rows of `stride` ≥ len,
            // out gn rows of w.
            unsafe {
                match gn {
                    4 => values_tile::<4, F16>(hd, w, len, cs, pp, stride, vp, op),
                    3 => values_tile::<3, F16>(hd, w, len, cs, pp, stride, vp, op),
                    2 => values_tile::<2, F16>(hd, w, len, cs, pp, stride, vp, op),
                    _ => values_tile::<1, F16>(hd, w, len, cs, pp, stride, vp, op),
                }
            }
        }
        g0 += gn;
    }
}

/// `G` heads × 16 dimensions over all `len` positions.
///
/// # Safety
/// NEON; `v` row `pos` (`hd` elements apart within a chunk of 64, chunks
/// `cs` bytes apart) has 16 readable elements for `pos < len`; `p +
/// g·stride` has `len` f32 and `out + g·ow` 16 writable f32 for each `g <
/// G`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
unsafe fn values_tile<const G: usize, const F16: bool>(
    hd: usize,
    ow: usize,
    len: usize,
    cs: usize,
    p: *const f32,
    stride: usize,
    v: *const u8,
    out: *mut f32,
) {
    let es = if F16 { 2 } else { 4 };
    let mut acc = [[vdupq_n_f32(0.0); 4]; G];
    // SAFETY: caller's contract.
    unsafe {
        for c in 0..len.div_ceil(KV_CHUNK) {
            let base = v.add(c * cs);
            for j in 0..(len - c * KV_CHUNK).min(KV_CHUNK) {
                let vv = load16::<F16>(base.add(j * hd * es));
                let pos = c * KV_CHUNK + j;
                for (g, a) in acc.iter_mut().enumerate() {
                    let w = *p.add(g * stride + pos);
                    for (aj, &vj) in a.iter_mut().zip(&vv) {
                        *aj = vfmaq_n_f32(*aj, vj, w);
                    }
                }
            }
        }
        for (g, a) in acc.iter().enumerate() {
            for (j, &aj) in a.iter().enumerate() {
                vst1q_f32(out.add(g * ow + 4 * j), aj);
            }
        }
    }
}
