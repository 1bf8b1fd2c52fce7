//! Attention products (see `crate::attn`) on AVX-512 (16 lanes) and AVX2
//! (8 lanes). F16 elements are widened exactly with `vcvtph2ps`.
//!
//! Scores: a tile of `P` positions × `G` queries keeps its `G · P / lanes`
//! accumulators in registers over the whole head dimension; each key
//! vector (one dimension, `lanes` positions) is converted once and used for
//! all `G` queries. Values: a tile of `NV` vectors of dimensions × `G`
//! heads stays in registers over all positions; each value row slice is
//! converted once and used for all `G` heads.
//!
//! Soundness: the `#[target_feature]` functions here are only reachable
//! through [`kernels`], which hands them out only when the CPU has the
//! tier's features; sizes are validated by `crate::attn`.

use core::arch::x86_64::*;

use crate::attn::{AttnKernels, KV_CHUNK};
use crate::{GgmlType, Tier};

/// This tier's attention kernels for cache elements of type `ty`; `None`
/// without the tier's features or for other types.
pub(crate) fn kernels(t: Tier, ty: GgmlType) -> Option<AttnKernels> {
    match (t, ty) {
        (Tier::Avx512, GgmlType::F16) if super::has_avx512_tier() => Some(AttnKernels {
            scores: z_scores::<true>,
            values: z_values::<true>,
        }),
        (Tier::Avx512, GgmlType::F32) if super::has_avx512_tier() => Some(AttnKernels {
            scores: z_scores::<false>,
            values: z_values::<false>,
        }),
        (Tier::Avx2, GgmlType::F16) if super::has_avx2_tier() => Some(AttnKernels {
            scores: y_scores::<true>,
            values: y_values::<true>,
        }),
        (Tier::Avx2, GgmlType::F32) if super::has_avx2_tier() => Some(AttnKernels {
            scores: y_scores::<false>,
            values: y_values::<false>,
        }),
        _ => None,
    }
}

/// The Q8_0 kernels (the portable source of `crate::attn`) compiled with
/// tier `t`'s features; `None` without them.
pub(crate) fn q8_kernels(t: Tier) -> Option<AttnKernels> {
    match t {
        Tier::Avx512 if super::has_avx512_tier() => Some(AttnKernels {
            scores: |hd, g, q, k, nch, s, st| {
                // SAFETY: the AVX-512 tier's features were checked above.
                unsafe { z_scores_q8(hd, g, q, k, nch, s, st) }
            },
            values: |hd, g, p, st, v, len, o| {
                // SAFETY: the AVX-512 tier's features were checked above.
                unsafe { z_values_q8(hd, g, p, st, v, len, o) }
            },
        }),
        Tier::Avx2 | Tier::Avx512 if super::has_avx2_tier() => Some(AttnKernels {
            scores: |hd, g, q, k, nch, s, st| {
                // SAFETY: the AVX2 tier's features were checked above.
                unsafe { y_scores_q8(hd, g, q, k, nch, s, st) }
            },
            values: |hd, g, p, st, v, len, o| {
                // SAFETY: the AVX2 tier's features were checked above.
                unsafe { y_values_q8(hd, g, p, st, v, len, o) }
            },
        }),
        _ => None,
    }
}

/// Q8_0 scores on AVX-512: per chunk, tiles of 32 positions (two vectors)
/// × up to 4 queries; each block's integer keys are widened once per tile
/// and its per-position scales applied after the block's 32 dimensions.
///
/// # Safety
/// The AVX-512 tier's features; sizes as `crate::attn` validates them.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn z_scores_q8(
    hd: usize,
    group: usize,
    q: &[f32],
    k: &[u8],
    nch: usize,
    scores: &mut [f32],
    stride: usize,
) {
    let nb = hd / 32;
    let cb = KV_CHUNK * (hd + 4 * nb);
    for c in 0..nch {
        let kc = k[c * cb..(c + 1) * cb].as_ptr();
        let mut g0 = 0;
        while g0 < group {
            let gn = (group - g0).min(4);
            let qp = q[g0 * hd..].as_ptr();
            for half in 0..2 {
                let op = scores[g0 * stride + c * KV_CHUNK + 32 * half..].as_mut_ptr();
                // SAFETY: the chunk holds cb bytes (scales, then hd rows of 64
                // quants), q gn·hd values from g0, scores gn rows of
                // `stride` (≥ this chunk's end) from `op`.
                unsafe {
                    match gn {
                        4 => z_scores_q8_tile::<4>(hd, nb, qp, kc, cb, half, op, stride),
                        3 => z_scores_q8_tile::<3>(hd, nb, qp, kc, cb, half, op, stride),
                        2 => z_scores_q8_tile::<2>(hd, nb, qp, kc, cb, half, op, stride),
                        _ => z_scores_q8_tile::<1>(hd, nb, qp, kc, cb, half, op, stride),
                    }
                }
            }
            g0 += gn;
        }
    }
}

/// 32 positions (`half` of a chunk) × `G` queries.
///
/// # Safety
/// AVX-512 tier features; `kc` holds a whole Q8_0 key chunk of `cb` bytes,
/// `q` `G · hd` f32, `out + g · stride` 32 writable f32 for each `g < G`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn z_scores_q8_tile<const G: usize>(
    hd: usize,
    nb: usize,
    q: *const f32,
    kc: *const u8,
    cb: usize,
    half: usize,
    out: *mut f32,
    stride: usize,
) {
    let zero = _mm512_setzero_ps();
    let mut s = [[zero; 2]; G];
    // SAFETY: caller's contract; every access is within the stated extents.
    unsafe {
        let qs = kc.add(4 * nb * KV_CHUNK + 32 * half);
        let sc = kc.add(4 * 32 * half).cast::<f32>();
        for b in 0..nb {
            let mut acc = [[zero; 2]; G];
            for d in 32 * b..32 * (b + 1) {
                let row = qs.add(d * KV_CHUNK);
                // The same row of the chunk after next (never faults).
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(2 * cb).cast());
                let k0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(row.cast())));
                let k1 =
                    _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(row.add(16).cast())));
                for (g, a) in acc.iter_mut().enumerate() {
                    let qv = _mm512_set1_ps(*q.add(g * hd + d));
                    a[0] = _mm512_fmadd_ps(k0, qv, a[0]);
                    a[1] = _mm512_fmadd_ps(k1, qv, a[1]);
                }
            }
            let d0 = _mm512_loadu_ps(sc.add(b * KV_CHUNK));
            let d1 = _mm512_loadu_ps(sc.add(b * KV_CHUNK + 16));
            for (sg, a) in s.iter_mut().zip(&acc) {
                sg[0] = _mm512_fmadd_ps(d0, a[0], sg[0]);
                sg[1] = _mm512_fmadd_ps(d1, a[1], sg[1]);
            }
        }
        for (g, sg) in s.iter().enumerate() {
            _mm512_storeu_ps(out.add(g * stride), sg[0]);
            _mm512_storeu_ps(out.add(g * stride + 16), sg[1]);
        }
    }
}

/// Q8_0 value sums on AVX-512: tiles of up to 4 heads × 64 dimensions in
/// registers over all positions; each row is widened and scaled once per
/// tile.
///
/// # Safety
/// The AVX-512 tier's features; sizes as `crate::attn` validates them.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn z_values_q8(
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    len: usize,
    out: &mut [f32],
) {
    let nb = hd / 32;
    let cb = KV_CHUNK * (hd + 4 * nb);
    let mut g0 = 0;
    while g0 < group {
        let gn = (group - g0).min(4);
        let mut d0 = 0;
        while d0 < hd {
            let nv = ((hd - d0) / 16).min(4);
            let pp = probs[g0 * stride..].as_ptr();
            let op = out[g0 * hd + d0..].as_mut_ptr();
            let vp = v.as_ptr();
            macro_rules! go {
                ($g:literal, $n:literal) => {
                    // SAFETY: v holds len.div_ceil(64) whole chunks of cb
                    // bytes; this tile reads dims d0..d0 + 16·nv ≤ hd of
                    // each row; probs gn rows of `stride` ≥ len; out gn rows
                    // of hd.
                    unsafe { z_values_q8_tile::<$g, $n>(hd, nb, cb, d0, len, pp, stride, vp, op) }
                };
            }
            // hd is a multiple of 32, so nv is 4 or 2.
            match (gn, nv) {
                (4, 4) => go!(4, 4),
                (4, _) => go!(4, 2),
                (3, 4) => go!(3, 4),
                (3, _) => go!(3, 2),
                (2, 4) => go!(2, 4),
                (2, _) => go!(2, 2),
                (_, 4) => go!(1, 4),
                (_, _) => go!(1, 2),
            }
            d0 += 16 * nv;
        }
        g0 += gn;
    }
}

/// `G` heads × `16·NV` dimensions (from `d0`) over all `len` positions.
///
/// # Safety
/// AVX-512 tier features; `v` holds `len.div_ceil(64)` Q8_0 value chunks
/// of `cb` bytes with `d0 + 16·NV ≤ hd`; `p + g·stride` has `len` f32 and
/// `out + g·hd` `16·NV` writable f32 for each `g < G`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn z_values_q8_tile<const G: usize, const NV: usize>(
    hd: usize,
    nb: usize,
    cb: usize,
    d0: usize,
    len: usize,
    p: *const f32,
    stride: usize,
    v: *const u8,
    out: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); NV]; G];
    // SAFETY: caller's contract; every access is within the stated extents.
    unsafe {
        for pos in 0..len {
            let (c, j) = (pos / KV_CHUNK, pos % KV_CHUNK);
            let base = v.add(c * cb);
            let sc = base.cast::<f32>().add(j * nb);
            let row = base.add(4 * nb * KV_CHUNK + j * hd + d0);
            // The same row of the next chunk (never faults).
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(cb).cast());
            let vf: [__m512; NV] = core::array::from_fn(|n| {
                let x = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                    row.add(16 * n).cast(),
                )));
                _mm512_mul_ps(x, _mm512_set1_ps(*sc.add((d0 + 16 * n) / 32)))
            });
            for (g, a) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*p.add(g * stride + pos));
                for (an, &x) in a.iter_mut().zip(&vf) {
                    *an = _mm512_fmadd_ps(x, w, *an);
                }
            }
        }
        for (g, a) in acc.iter().enumerate() {
            for (n, &an) in a.iter().enumerate() {
                _mm512_storeu_ps(out.add(g * hd + 16 * n), an);
            }
        }
    }
}

/// # Safety
/// The AVX2 tier's features.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn y_scores_q8(
    hd: usize,
    group: usize,
    q: &[f32],
    k: &[u8],
    nch: usize,
    scores: &mut [f32],
    stride: usize,
) {
    crate::attn::scores_q8_generic(hd, group, q, k, nch, scores, stride)
}

/// # Safety
/// The AVX2 tier's features.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn y_values_q8(
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    len: usize,
    out: &mut [f32],
) {
    crate::attn::values_q8_generic(hd, group, probs, stride, v, len, out)
}

// ---------------------------------------------------------------- AVX-512

/// 16 elements at `p` (F16 or F32) as f32.
///
/// # Safety
/// AVX-512 tier features; 16 readable elements at `p`.
#[inline(always)]
unsafe fn zload<const F16: bool>(p: *const u8) -> __m512 {
    // SAFETY: caller's contract (unaligned loads).
    unsafe {
        if F16 {
            _mm512_cvtph_ps(_mm256_loadu_si256(p.cast()))
        } else {
            _mm512_loadu_ps(p.cast())
        }
    }
}

fn z_scores<const F16: bool>(
    hd: usize,
    group: usize,
    q: &[f32],
    k: &[u8],
    nch: usize,
    scores: &mut [f32],
    stride: usize,
) {
    let es = if F16 { 2 } else { 4 };
    let cb = hd * KV_CHUNK * es;
    for c in 0..nch {
        let mut g0 = 0;
        while g0 < group {
            let gn = (group - g0).min(4);
            let kc = k[c * cb..(c + 1) * cb].as_ptr();
            let qp = q[g0 * hd..].as_ptr();
            let op = scores[g0 * stride + c * KV_CHUNK..].as_mut_ptr();
            // SAFETY: only reachable via `kernels`, which checked the AVX-512
            // tier; the chunk holds hd·64 elements, q gn·hd values from g0,
            // and scores gn rows of `stride` (≥ this chunk's end) from `op`.
            unsafe {
                match gn {
                    4 => z_scores_tile::<4, F16>(hd, qp, kc, op, stride),
                    3 => z_scores_tile::<3, F16>(hd, qp, kc, op, stride),
                    2 => z_scores_tile::<2, F16>(hd, qp, kc, op, stride),
                    _ => z_scores_tile::<1, F16>(hd, qp, kc, op, stride),
                }
            }
            g0 += gn;
        }
    }
}

/// One chunk (64 positions) × `G` queries.
///
/// # Safety
/// AVX-512 tier features; `kc` holds `hd · 64` elements, `q` `G · hd` f32,
/// `out + g · stride` 64 writable f32 for each `g < G`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn z_scores_tile<const G: usize, const F16: bool>(
    hd: usize,
    q: *const f32,
    kc: *const u8,
    out: *mut f32,
    stride: usize,
) {
    let es = if F16 { 2 } else { 4 };
    let mut acc = [[_mm512_setzero_ps(); 4]; G];
    // SAFETY: caller's contract; every access is within the stated extents.
    unsafe {
        let cb = hd * KV_CHUNK * es;
        for d in 0..hd {
            let row = kc.add(d * KV_CHUNK * es);
            // The same rows of the chunk after next (prefetching never faults).
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(2 * cb).cast());
            if F16 {
                _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(2 * cb + 64).cast());
            }
            let kv: [__m512; 4] = core::array::from_fn(|j| zload::<F16>(row.add(16 * j * es)));
            for (g, a) in acc.iter_mut().enumerate() {
                let qv = _mm512_set1_ps(*q.add(g * hd + d));
                for (aj, &kj) in a.iter_mut().zip(&kv) {
                    *aj = _mm512_fmadd_ps(kj, qv, *aj);
                }
            }
        }
        for (g, a) in acc.iter().enumerate() {
            for (j, &aj) in a.iter().enumerate() {
                _mm512_storeu_ps(out.add(g * stride + 16 * j), aj);
            }
        }
    }
}

fn z_values<const F16: bool>(
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    len: usize,
    out: &mut [f32],
) {
    if !hd.is_multiple_of(16) {
        return crate::attn::values_fallback(F16, hd, group, probs, stride, v, len, out);
    }
    let es = if F16 { 2 } else { 4 };
    let mut g0 = 0;
    while g0 < group {
        let gn = (group - g0).min(4);
        let mut d0 = 0;
        while d0 < hd {
            let nv = ((hd - d0) / 16).min(4);
            let pp = probs[g0 * stride..].as_ptr();
            let vp = v[d0 * es..].as_ptr();
            let op = out[g0 * hd + d0..].as_mut_ptr();
            macro_rules! go {
                ($g:literal, $n:literal) => {
                    // SAFETY: only reachable via `kernels`, which checked the
                    // AVX-512 tier; v holds len rows of hd elements (this
                    // slab is d0..d0 + 16·nv of each), probs gn rows of
                    // `stride` ≥ len, out gn rows of hd.
                    unsafe { z_values_tile::<$g, $n, F16>(hd, len, pp, stride, vp, op) }
                };
            }
            match (gn, nv) {
                (4, 4) => go!(4, 4),
                (4, 3) => go!(4, 3),
                (4, 2) => go!(4, 2),
                (4, _) => go!(4, 1),
                (3, 4) => go!(3, 4),
                (3, 3) => go!(3, 3),
                (3, 2) => go!(3, 2),
                (3, _) => go!(3, 1),
                (2, 4) => go!(2, 4),
                (2, 3) => go!(2, 3),
                (2, 2) => go!(2, 2),
                (2, _) => go!(2, 1),
                (_, 4) => go!(1, 4),
                (_, 3) => go!(1, 3),
                (_, 2) => go!(1, 2),
                (_, _) => go!(1, 1),
            }
            d0 += 16 * nv;
        }
        g0 += gn;
    }
}

/// `G` heads × `16·NV` dimensions over all `len` positions.
///
/// # Safety
/// AVX-512 tier features; `v` row `pos` (stride `hd` elements) has `16·NV`
/// readable elements for `pos < len`; `p + g·stride` has `len` f32 and `out
/// + g·hd` `16·NV` writable f32 for each `g < G`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn z_values_tile<const G: usize, const NV: usize, const F16: bool>(
    hd: usize,
    len: usize,
    p: *const f32,
    stride: usize,
    v: *const u8,
    out: *mut f32,
) {
    let es = if F16 { 2 } else { 4 };
    let mut acc = [[_mm512_setzero_ps(); NV]; G];
    // SAFETY: caller's contract.
    unsafe {
        for pos in 0..len {
            let row = v.add(pos * hd * es);
            // 16 rows ahead (prefetching never faults).
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(16 * hd * es).cast());
            let vv: [__m512; NV] = core::array::from_fn(|j| zload::<F16>(row.add(16 * j * es)));
            for (g, a) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*p.add(g * stride + pos));
                for (aj, &vj) in a.iter_mut().zip(&vv) {
                    *aj = _mm512_fmadd_ps(vj, w, *aj);
                }
            }
        }
        for (g, a) in acc.iter().enumerate() {
            for (j, &aj) in a.iter().enumerate() {
                _mm512_storeu_ps(out.add(g * hd + 16 * j), aj);
            }
        }
    }
}

// ------------------------------------------------------------------- AVX2

/// 8 elements at `p` (F16 or F32) as f32.
///
/// # Safety
/// AVX2 tier features; 8 readable elements at `p`.
#[inline(always)]
unsafe fn yload<const F16: bool>(p: *const u8) -> __m256 {
    // SAFETY: caller's contract (unaligned loads).
    unsafe {
        if F16 {
            _mm256_cvtph_ps(_mm_loadu_si128(p.cast()))
        } else {
            _mm256_loadu_ps(p.cast())
        }
    }
}

fn y_scores<const F16: bool>(
    hd: usize,
    group: usize,
    q: &[f32],
    k: &[u8],
    nch: usize,
    scores: &mut [f32],
    stride: usize,
) {
    let es = if F16 { 2 } else { 4 };
    let cb = hd * KV_CHUNK * es;
    for c in 0..nch {
        // Half chunks of 32 positions: 4 vectors per query.
        for h in 0..2 {
            let mut g0 = 0;
            while g0 < group {
                let gn = (group - g0).min(3);
                let kc = k[c * cb + 32 * h * es..(c + 1) * cb].as_ptr();
                let qp = q[g0 * hd..].as_ptr();
                let op = scores[g0 * stride + c * KV_CHUNK + 32 * h..].as_mut_ptr();
                // SAFETY: only reachable via `kernels`, which checked the AVX2
                // tier; as `z_scores`, for the half chunk at 32·h.
                unsafe {
                    match gn {
                        3 => y_scores_tile::<3, F16>(hd, qp, kc, op, stride),
                        2 => y_scores_tile::<2, F16>(hd, qp, kc, op, stride),
                        _ => y_scores_tile::<1, F16>(hd, qp, kc, op, stride),
                    }
                }
                g0 += gn;
            }
        }
    }
}

/// 32 positions × `G` queries.
///
/// # Safety
/// AVX2 tier features; `kc + d·64` holds 32 elements for `d < hd`, `q` `G ·
/// hd` f32, `out + g·stride` 32 writable f32 for each `g < G`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn y_scores_tile<const G: usize, const F16: bool>(
    hd: usize,
    q: *const f32,
    kc: *const u8,
    out: *mut f32,
    stride: usize,
) {
    let es = if F16 { 2 } else { 4 };
    let mut acc = [[_mm256_setzero_ps(); 4]; G];
    // SAFETY: caller's contract.
    unsafe {
        for d in 0..hd {
            let row = kc.add(d * KV_CHUNK * es);
            let kv: [__m256; 4] = core::array::from_fn(|j| yload::<F16>(row.add(8 * j * es)));
            for (g, a) in acc.iter_mut().enumerate() {
                let qv = _mm256_set1_ps(*q.add(g * hd + d));
                for (aj, &kj) in a.iter_mut().zip(&kv) {
                    *aj = _mm256_fmadd_ps(kj, qv, *aj);
                }
            }
        }
        for (g, a) in acc.iter().enumerate() {
            for (j, &aj) in a.iter().enumerate() {
                _mm256_storeu_ps(out.add(g * stride + 8 * j), aj);
            }
        }
    }
}

fn y_values<const F16: bool>(
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    len: usize,
    out: &mut [f32],
) {
    if !hd.is_multiple_of(8) {
        return crate::attn::values_fallback(F16, hd, group, probs, stride, v, len, out);
    }
    let es = if F16 { 2 } else { 4 };
    let mut g0 = 0;
    while g0 < group {
        let gn = (group - g0).min(3);
        let mut d0 = 0;
        while d0 < hd {
            let nv = ((hd - d0) / 8).min(4);
            let pp = probs[g0 * stride..].as_ptr();
            let vp = v[d0 * es..].as_ptr();
            let op = out[g0 * hd + d0..].as_mut_ptr();
            macro_rules! go {
                ($g:literal, $n:literal) => {
                    // SAFETY: only reachable via `kernels`, which checked the
                    // AVX2 tier; as in `z_values`, with 8-element vectors.
                    unsafe { y_values_tile::<$g, $n, F16>(hd, len, pp, stride, vp, op) }
                };
            }
            match (gn, nv) {
                (3, 4) => go!(3, 4),
                (3, 3) => go!(3, 3),
                (3, 2) => go!(3, 2),
                (3, _) => go!(3, 1),
                (2, 4) => go!(2, 4),
                (2, 3) => go!(2, 3),
                (2, 2) => go!(2, 2),
                (2, _) => go!(2, 1),
                (_, 4) => go!(1, 4),
                (_, 3) => go!(1, 3),
                (_, 2) => go!(1, 2),
                (_, _) => go!(1, 1),
            }
            d0 += 8 * nv;
        }
        g0 += gn;
    }
}

/// `G` heads × `8·NV` dimensions over all `len` positions.
///
/// # Safety
/// As [`z_values_tile`], with AVX2 tier features and 8-element vectors.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn y_values_tile<const G: usize, const NV: usize, const F16: bool>(
    hd: usize,
    len: usize,
    p: *const f32,
    stride: usize,
    v: *const u8,
    out: *mut f32,
) {
    let es = if F16 { 2 } else { 4 };
    let mut acc = [[_mm256_setzero_ps(); NV]; G];
    // SAFETY: caller's contract.
    unsafe {
        for pos in 0..len {
            let row = v.add(pos * hd * es);
            let vv: [__m256; NV] = core::array::from_fn(|j| yload::<F16>(row.add(8 * j * es)));
            for (g, a) in acc.iter_mut().enumerate() {
                let w = _mm256_set1_ps(*p.add(g * stride + pos));
                for (aj, &vj) in a.iter_mut().zip(&vv) {
                    *aj = _mm256_fmadd_ps(vj, w, *aj);
                }
            }
        }
        for (g, a) in acc.iter().enumerate() {
            for (j, &aj) in a.iter().enumerate() {
                _mm256_storeu_ps(out.add(g * hd + 8 * j), aj);
            }
        }
    }
}
