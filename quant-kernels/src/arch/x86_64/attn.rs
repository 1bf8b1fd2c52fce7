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
//! The cache is read once per token, cold, so every kernel prefetches
//! ahead of its loads (keys two chunks on, values 32 rows on), into L2
//! (`prefetcht1`) as the gemvs do: into L1 the F16 pair of kernels ran a
//! cold token at depth 1024 in 2.14 ms, into L2 in 1.85–1.89 ms (`cargo
//! bench -p ember-quant --bench attn`, 2026-11-27; Q8_0 unchanged at
//! 1.26–1.30 ms; one chunk ahead, or 64 rows, no better). Prefetches stop
//! at the last chunk being read ([`ahead_chunks`]): past it lie the cache's
//! unwritten positions, or another thread's chunks.
//!
//! Soundness: the `#[target_feature]` functions here are only reachable
//! through [`kernels`], which hands them out only when the CPU has the
//! tier's features; sizes are validated by `crate::attn`.

use core::arch::x86_64::*;

use crate::attn::{
    AttnKernels, Cols, Q8Kernels, ScoresQ8Fn, KV_CHUNK, MAX_ROW_BLOCKS, Q8_SCALE_BYTES, Q8_TILE,
    V_BLOCK_BYTES, V_QUANTS_AT,
};
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

/// This tier's Q8_0-cache attention kernels; `None` without the tier's
/// features. AVX-512 scores need VNNI; without it they are AVX2's.
pub(crate) fn q8_kernels(t: Tier) -> Option<Q8Kernels> {
    let y_scores: ScoresQ8Fn = |hd, gn, qq, qd, k, nch, cs, s, st| {
        // SAFETY: only handed out after the AVX2 tier's features were checked.
        unsafe { y_scores_q8(hd, gn, qq, qd, k, nch, cs, s, st) }
    };
    match t {
        Tier::Avx512 if super::has_avx512_tier() => Some(Q8Kernels {
            scores: if super::has("avx512vnni") {
                |hd, gn, qq, qd, k, nch, cs, s, st| {
                    // SAFETY: the AVX-512 tier's features and VNNI were checked above.
                    unsafe { z_scores_q8(hd, gn, qq, qd, k, nch, cs, s, st) }
                }
            } else {
                y_scores
            },
            values: if super::has("avx512vnni") {
                |hd, g, p, st, v, len, cs, cols, o| {
                    // SAFETY: the AVX-512 tier's features and VNNI were checked above.
                    unsafe { z_values_q8_vnni(hd, g, p, st, v, len, cs, cols, o) }
                }
            } else {
                |hd, g, p, st, v, len, cs, cols, o| {
                    // SAFETY: the AVX-512 tier's features were checked above.
                    unsafe { z_values_q8(hd, g, p, st, v, len, cs, cols, o) }
                }
            },
        }),
        Tier::Avx2 | Tier::Avx512 if super::has_avx2_tier() => Some(Q8Kernels {
            scores: y_scores,
            values: |hd, g, p, st, v, len, cs, cols, o| {
                // SAFETY: the AVX2 tier's features were checked above.
                unsafe { y_values_q8(hd, g, p, st, v, len, cs, cols, o) }
            },
        }),
        _ => None,
    }
}

/// The bytes from chunk `c` to the chunk that its loop prefetches, `k`
/// chunks on (`cs` bytes apart), while that one is among the `nch` being
/// read; past them, 0: the prefetches then touch chunk `c` itself, which
/// is in cache, rather than fetching positions that no one reads (the
/// cache's unwritten end, or another thread's chunks).
#[inline(always)]
fn ahead_chunks(c: usize, nch: usize, k: usize, cs: usize) -> usize {
    if c + k < nch {
        k * cs
    } else {
        0
    }
}

/// The Q8_0 value weights' i16 rounding, shared by the AVX-512 and AVX2
/// tiers so that their sums agree bit for bit: for a chunk's weights of
/// largest magnitude `amax` (`nan` if any is NaN), the factor that takes a
/// weight to its i16 and the step that takes the i16 sums back. A NaN or
/// infinite weight makes the step NaN, so it reaches the outputs as the
/// f32 sums would carry it.
fn i16_steps(amax: f32, nan: bool) -> (f32, f32) {
    if nan || amax.is_infinite() {
        (0.0, f32::NAN)
    } else if amax > 0.0 {
        (32767.0 / amax, amax / 32767.0)
    } else {
        (0.0, 0.0)
    }
}

/// `128 · Σ q` over each block of each of the `gn` quantized queries: what
/// biasing the keys by 128 (to make them unsigned for `vpdpbusd`) adds to
/// each block's sum.
/// Indexed `[block][query]`.
fn bias_sums(hd: usize, gn: usize, qq: &[i8]) -> [[i32; Q8_TILE]; MAX_ROW_BLOCKS] {
    let mut out = [[0i32; Q8_TILE]; MAX_ROW_BLOCKS];
    for (b, ob) in out.iter_mut().enumerate().take(hd / 32) {
        for (g, og) in ob.iter_mut().enumerate().take(gn) {
            let blk = &qq[g * hd + 32 * b..g * hd + 32 * (b + 1)];
            *og = 128 * blk.iter().map(|&x| i32::from(x)).sum::<i32>();
        }
    }
    out
}

/// Q8_0 scores on AVX-512 VNNI: per chunk, tiles of 32 positions (two
/// vectors of 16 lanes, each lane four dimensions of one position) × the
/// `gn` queries. Keys are made unsigned by flipping their sign bit (`k +
/// 128`), summed against the signed queries with `vpdpbusd`, and the bias
/// `128 · Σ q` taken off per block: the exact integer sums of the
/// reference.
///
/// # Safety
/// The AVX-512 tier's features and VNNI; sizes as `crate::attn` validates
/// them (`gn ≤ Q8_TILE`, `hd ≤ 1024`).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn z_scores_q8(
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
    let cb = KV_CHUNK * (hd + Q8_SCALE_BYTES * nb);
    let bias = bias_sums(hd, gn, qq);
    let (qp, dp) = (qq.as_ptr(), qd.as_ptr());
    for c in 0..nch {
        let kc = k[c * cs..c * cs + cb].as_ptr();
        let op = scores[c * KV_CHUNK..].as_mut_ptr();
        let ahead = ahead_chunks(c, nch, 2, cs);
        macro_rules! go {
            ($g:literal, $p:literal, $part:expr) => {
                // SAFETY: the chunk holds cb bytes (scales, then hd/4 rows
                // of 64 positions × 4 quants), qq gn·hd quants and qd gn·nb
                // scales, scores gn rows of `stride` (≥ this chunk's end)
                // from `op`.
                unsafe {
                    z_scores_q8_tile::<$g, $p>(hd, nb, qp, dp, &bias, kc, ahead, $part, op, stride)
                }
            };
        }
        // Three queries or fewer take the whole chunk at once, so each
        // 256-byte row is read in order; four take it in halves (their
        // 32 accumulators would not fit in registers).
        match gn {
            4 => {
                go!(4, 2, 0);
                go!(4, 2, 1);
            }
            3 => go!(3, 4, 0),
            2 => go!(2, 4, 0),
            _ => go!(1, 4, 0),
        }
    }
}

/// `16 · P` positions (part `part` of a chunk) × `G` queries.
///
/// # Safety
/// AVX-512 tier features and VNNI; `kc` holds a whole Q8_0 key chunk (the
/// one `ahead` bytes on is prefetched only), `qq` `G · hd` quants, `qd` `G
/// · nb` scales, `out + g · stride` 64 writable f32 for each `g < G`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn z_scores_q8_tile<const G: usize, const P: usize>(
    hd: usize,
    nb: usize,
    qq: *const i8,
    qd: *const f32,
    bias: &[[i32; Q8_TILE]; MAX_ROW_BLOCKS],
    kc: *const u8,
    ahead: usize,
    part: usize,
    out: *mut f32,
    stride: usize,
) {
    let mut s = [[_mm512_setzero_ps(); P]; G];
    let flip = _mm512_set1_epi8(-128);
    // SAFETY: caller's contract; every access is within the stated extents.
    unsafe {
        let qs = kc.add(Q8_SCALE_BYTES * nb * KV_CHUNK + 64 * P * part);
        let sc = kc.cast::<u16>().add(16 * P * part);
        let out = out.add(16 * P * part);
        for (b, bias_b) in bias.iter().enumerate().take(nb) {
            // This block's scales (P · 32 bytes) in the chunk after next
            // (never faults).
            for l in (0..P).step_by(2) {
                _mm_prefetch::<_MM_HINT_T1>(
                    sc.add(b * KV_CHUNK + 16 * l)
                        .cast::<u8>()
                        .wrapping_add(ahead)
                        .cast(),
                );
            }
            // Each sum starts at `−128 · Σ q`, the bias the flipped keys add.
            let mut acc: [[__m512i; P]; G] =
                core::array::from_fn(|g| [_mm512_set1_epi32(-bias_b[g]); P]);
            for d4 in 8 * b..8 * (b + 1) {
                let row = qs.add(d4 * 4 * KV_CHUNK);
                let k: [__m512i; P] = core::array::from_fn(|v| {
                    // The same 64 bytes of the chunk after next.
                    _mm_prefetch::<_MM_HINT_T1>(row.wrapping_add(ahead + 64 * v).cast());
                    _mm512_xor_si512(_mm512_loadu_si512(row.add(64 * v).cast()), flip)
                });
                for (g, a) in acc.iter_mut().enumerate() {
                    let qv =
                        _mm512_set1_epi32(qq.add(g * hd + 4 * d4).cast::<i32>().read_unaligned());
                    for (av, kv) in a.iter_mut().zip(&k) {
                        *av = _mm512_dpbusd_epi32(*av, *kv, qv);
                    }
                }
            }
            for (g, (sg, a)) in s.iter_mut().zip(&acc).enumerate() {
                let e = _mm512_set1_ps(*qd.add(g * nb + b));
                for (v, (sv, av)) in sg.iter_mut().zip(a).enumerate() {
                    let d =
                        _mm512_cvtph_ps(_mm256_loadu_si256(sc.add(b * KV_CHUNK + 16 * v).cast()));
                    *sv = _mm512_fmadd_ps(_mm512_mul_ps(d, e), _mm512_cvtepi32_ps(*av), *sv);
                }
            }
        }
        for (g, sg) in s.iter().enumerate() {
            for (v, sv) in sg.iter().enumerate() {
                _mm512_storeu_ps(out.add(g * stride + 16 * v), *sv);
            }
        }
    }
}

/// Q8_0 value sums on AVX-512 with VNNI (`vpdpwssd`): see
/// [`z_values_q8_tile`].
///
/// # Safety
/// The AVX-512 tier's features and VNNI; sizes as `crate::attn` validates
/// them.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn z_values_q8_vnni(
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
    // SAFETY: this function's contract.
    unsafe { z_values_q8_impl::<true>(hd, group, probs, stride, v, len, cs, cols, out) }
}

/// Q8_0 value sums on AVX-512 without VNNI (`vpmaddwd` and an add in place
/// of `vpdpwssd`, the same exact sums).
///
/// # Safety
/// The AVX-512 tier's features; sizes as `crate::attn` validates them.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn z_values_q8(
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
    // SAFETY: this function's contract.
    unsafe { z_values_q8_impl::<false>(hd, group, probs, stride, v, len, cs, cols, out) }
}

/// Q8_0 value sums on AVX-512: a tile is one block (32 columns, two
/// vectors) or two × up to 4 heads over all positions.
///
/// # Safety
/// The AVX-512 tier's features, and VNNI if `VNNI`; sizes as `crate::attn`
/// validates them.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn z_values_q8_impl<const VNNI: bool>(
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
    let w = cols.width();
    let mut g0 = 0;
    while g0 < group {
        let gn = (group - g0).min(4);
        let mut b = cols.c0 / 32;
        while b < cols.c1 / 32 {
            let two = b + 1 < cols.c1 / 32;
            let pp = probs[g0 * stride..].as_ptr();
            let op = out[g0 * w + 32 * b - cols.c0..].as_mut_ptr();
            let vp = v[b * V_BLOCK_BYTES..].as_ptr();
            macro_rules! go {
                ($g:literal, $nb:literal) => {
                    // SAFETY: v holds len.div_ceil(64) whole chunks, cs
                    // bytes apart, each with blocks b.. (`$nb` of them) at
                    // b·V_BLOCK_BYTES; probs gn rows of `stride` ≥ len; out
                    // gn rows of w from block b's first column.
                    unsafe { z_values_q8_tile::<$g, $nb, VNNI>(cs, w, len, pp, stride, vp, op) }
                };
            }
            match (gn, two) {
                (4, true) => go!(4, 2),
                (3, true) => go!(3, 2),
                (2, true) => go!(2, 2),
                (_, true) => go!(1, 2),
                (4, false) => go!(4, 1),
                (3, false) => go!(3, 1),
                (2, false) => go!(2, 1),
                (_, false) => go!(1, 1),
            }
            b += if two { 2 } else { 1 };
        }
        g0 += gn;
    }
}

/// `G` heads × `NB` blocks' 32 columns over all `len` positions.
///
/// Per chunk, each (head, block)'s weights `p · d` are quantized to i16
/// against their largest magnitude in the chunk (`w ≈ m/32767 · q`), and
/// the int8 values are summed against them exactly with `vpdpwssd`, two
/// positions to a lane: a third of the instructions of widening every
/// value to f32. The i32 sums are scaled back into f32 per chunk. Each
/// weight is off by at most `m / 65534`, finer than the f16 rounding the
/// F16 cache's probabilities get (see `crate::attn`).
///
/// # Safety
/// AVX-512 tier features, and VNNI if `VNNI`; `v + c·cs` is the first
/// block's part of value chunk `c` for `c < len.div_ceil(64)`, the others
/// following; `p + g·stride` has `len` f32 and `out + g·ow` `32·NB`
/// writable f32 for each `g < G`.
#[inline(always)]
unsafe fn z_values_q8_tile<const G: usize, const NB: usize, const VNNI: bool>(
    cs: usize,
    ow: usize,
    len: usize,
    p: *const f32,
    stride: usize,
    v: *const u8,
    out: *mut f32,
) {
    // Per chunk, each (head, block)'s quantized weights and their step.
    let mut qw = [[[0i16; KV_CHUNK]; NB]; G];
    let mut unq = [[0f32; NB]; G];
    // SAFETY: caller's contract; every access is within the stated extents.
    unsafe {
        // f32 sums, each vector's columns in `vpunpck*wd` order (undone at
        // the end): [0] holds columns 0–3, 8–11, 16–19, 24–27, [1] the rest.
        let mut acc = [[[_mm512_setzero_ps(); 2]; NB]; G];
        let nch = len.div_ceil(KV_CHUNK);
        for c in 0..nch {
            let n = (len - c * KV_CHUNK).min(KV_CHUNK);
            let ahead = ahead_chunks(c, nch, 1, cs);
            for bi in 0..NB {
                // The next chunk's scales (never faults).
                let sc = v.add(c * cs + bi * V_BLOCK_BYTES).wrapping_add(ahead);
                for l in 0..V_QUANTS_AT / 64 {
                    _mm_prefetch::<_MM_HINT_T1>(sc.wrapping_add(64 * l).cast());
                }
            }
            for g in 0..G {
                for bi in 0..NB {
                    let sc = v.add(c * cs + bi * V_BLOCK_BYTES).cast::<u16>();
                    let pp = p.add(g * stride + c * KV_CHUNK);
                    // Past `len` the weights are zero (the probabilities
                    // there are only padding, the scales maybe not written).
                    let w: [__m512; KV_CHUNK / 16] = core::array::from_fn(|i| {
                        let m: __mmask16 = if 16 * i >= n {
                            0
                        } else if 16 * i + 16 <= n {
                            0xFFFF
                        } else {
                            (1u16 << (n - 16 * i)) - 1
                        };
                        _mm512_mul_ps(
                            _mm512_maskz_loadu_ps(m, pp.add(16 * i)),
                            _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, sc.add(16 * i).cast())),
                        )
                    });
                    let amax = _mm512_reduce_max_ps(_mm512_max_ps(
                        _mm512_max_ps(_mm512_abs_ps(w[0]), _mm512_abs_ps(w[1])),
                        _mm512_max_ps(_mm512_abs_ps(w[2]), _mm512_abs_ps(w[3])),
                    ));
                    let nan = w
                        .iter()
                        .any(|x| _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(*x, *x) != 0);
                    let (scale, back) = i16_steps(amax, nan);
                    unq[g][bi] = back;
                    let sv = _mm512_set1_ps(scale);
                    for (i, wi) in w.iter().enumerate() {
                        let q = _mm512_cvtps_epi32(_mm512_mul_ps(*wi, sv));
                        _mm256_storeu_si256(
                            qw[g][bi].as_mut_ptr().add(16 * i).cast(),
                            _mm512_cvtepi32_epi16(q),
                        );
                    }
                }
            }
            let mut ia = [[[_mm512_setzero_si512(); 2]; NB]; G];
            // Pairs of positions; an odd `n`'s last pair reads one row past
            // it, inside the chunk, against a zero weight.
            for j in (0..n).step_by(2) {
                let vp: [[__m512i; 2]; NB] = core::array::from_fn(|bi| {
                    let row = v.add(c * cs + bi * V_BLOCK_BYTES + V_QUANTS_AT + 32 * j);
                    // The same rows of the next chunk (never faults).
                    _mm_prefetch::<_MM_HINT_T1>(row.wrapping_add(ahead).cast());
                    let a = _mm512_cvtepi8_epi16(_mm256_loadu_si256(row.cast()));
                    let b = _mm512_cvtepi8_epi16(_mm256_loadu_si256(row.add(32).cast()));
                    [_mm512_unpacklo_epi16(a, b), _mm512_unpackhi_epi16(a, b)]
                });
                for (ig, qg) in ia.iter_mut().zip(&qw) {
                    for ((ib, vb), qb) in ig.iter_mut().zip(&vp).zip(qg) {
                        let wp =
                            _mm512_set1_epi32(qb.as_ptr().add(j).cast::<i32>().read_unaligned());
                        for (a, x) in ib.iter_mut().zip(vb) {
                            *a = if VNNI {
                                _mm512_dpwssd_epi32(*a, *x, wp)
                            } else {
                                _mm512_add_epi32(*a, _mm512_madd_epi16(*x, wp))
                            };
                        }
                    }
                }
            }
            for ((ag, ig), ug) in acc.iter_mut().zip(&ia).zip(&unq) {
                for ((ab, ib), &u) in ag.iter_mut().zip(ig).zip(ug) {
                    let uv = _mm512_set1_ps(u);
                    ab[0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ib[0]), uv, ab[0]);
                    ab[1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ib[1]), uv, ab[1]);
                }
            }
        }
        let lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
        let hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
        for (g, a) in acc.iter().enumerate() {
            for (bi, ab) in a.iter().enumerate() {
                let o = out.add(g * ow + 32 * bi);
                _mm512_storeu_ps(o, _mm512_permutex2var_ps(ab[0], lo, ab[1]));
                _mm512_storeu_ps(o.add(16), _mm512_permutex2var_ps(ab[0], hi, ab[1]));
            }
        }
    }
}

/// Q8_0 scores on AVX2: as [`z_scores_q8`] with 16-position tiles (two
/// 8-lane vectors) and `vpmaddubsw` for the integer sums: `|q| ·
/// sign(q)·k` pairs stay within i16 (2 · 127 · 127), then `vpmaddwd`
/// adds pairs into i32, so the sums are exact.
///
/// # Safety
/// The AVX2 tier's features; sizes as `crate::attn` validates them.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn y_scores_q8(
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
    let cb = KV_CHUNK * (hd + Q8_SCALE_BYTES * nb);
    let (qp, dp) = (qq.as_ptr(), qd.as_ptr());
    crate::attn::q8_tiles_16x2(nch, gn, |c, part, g0, n| {
        let kc = k[c * cs..c * cs + cb].as_ptr();
        let op = scores[c * KV_CHUNK + 16 * part..].as_mut_ptr();
        // SAFETY: the AVX2 tier's features (this function's contract); as
        // in `z_scores_q8`, for 16 positions from 16·part and queries g0..
        // (n of them).
        unsafe {
            let (q, d, o) = (qp.add(g0 * hd), dp.add(g0 * nb), op.add(g0 * stride));
            let ahead = ahead_chunks(c, nch, 2, cs);
            if n == 2 {
                y_scores_q8_tile::<2>(hd, nb, q, d, kc, ahead, part, o, stride);
            } else {
                y_scores_q8_tile::<1>(hd, nb, q, d, kc, ahead, part, o, stride);
            }
        }
    });
}

/// 16 positions (`part` of a chunk) × `G` queries.
///
/// # Safety
/// AVX2 tier features; `kc` holds a whole Q8_0 key chunk (the one `ahead`
/// bytes on is prefetched only), `qq` `G · hd` quants, `qd` `G · nb`
/// scales, `out + g · stride` 16 writable f32 for each `g < G`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn y_scores_q8_tile<const G: usize>(
    hd: usize,
    nb: usize,
    qq: *const i8,
    qd: *const f32,
    kc: *const u8,
    ahead: usize,
    part: usize,
    out: *mut f32,
    stride: usize,
) {
    let mut s = [[_mm256_setzero_ps(); 2]; G];
    let ones = _mm256_set1_epi16(1);
    // SAFETY: caller's contract; every access is within the stated extents.
    unsafe {
        let qs = kc.add(Q8_SCALE_BYTES * nb * KV_CHUNK + 4 * 16 * part);
        let sc = kc.cast::<u16>().add(16 * part);
        for b in 0..nb {
            let mut acc = [[_mm256_setzero_si256(); 2]; G];
            for d4 in 8 * b..8 * (b + 1) {
                let row = qs.add(d4 * 4 * KV_CHUNK);
                _mm_prefetch::<_MM_HINT_T1>(row.wrapping_add(ahead).cast());
                let k0 = _mm256_loadu_si256(row.cast());
                let k1 = _mm256_loadu_si256(row.add(32).cast());
                for (g, a) in acc.iter_mut().enumerate() {
                    let qv =
                        _mm256_set1_epi32(qq.add(g * hd + 4 * d4).cast::<i32>().read_unaligned());
                    let qa = _mm256_sign_epi8(qv, qv);
                    let p0 = _mm256_maddubs_epi16(qa, _mm256_sign_epi8(k0, qv));
                    let p1 = _mm256_maddubs_epi16(qa, _mm256_sign_epi8(k1, qv));
                    a[0] = _mm256_add_epi32(a[0], _mm256_madd_epi16(p0, ones));
                    a[1] = _mm256_add_epi32(a[1], _mm256_madd_epi16(p1, ones));
                }
            }
            let d0 = _mm256_cvtph_ps(_mm_loadu_si128(sc.add(b * KV_CHUNK).cast()));
            let d1 = _mm256_cvtph_ps(_mm_loadu_si128(sc.add(b * KV_CHUNK + 8).cast()));
            for (g, (sg, a)) in s.iter_mut().zip(&acc).enumerate() {
                let e = _mm256_set1_ps(*qd.add(g * nb + b));
                let i0 = _mm256_cvtepi32_ps(a[0]);
                let i1 = _mm256_cvtepi32_ps(a[1]);
                sg[0] = _mm256_fmadd_ps(_mm256_mul_ps(d0, e), i0, sg[0]);
                sg[1] = _mm256_fmadd_ps(_mm256_mul_ps(d1, e), i1, sg[1]);
            }
        }
        for (g, sg) in s.iter().enumerate() {
            _mm256_storeu_ps(out.add(g * stride), sg[0]);
            _mm256_storeu_ps(out.add(g * stride + 8), sg[1]);
        }
    }
}

/// Q8_0 value sums on AVX2: tiles of up to 3 heads × 16 columns (half a
/// block).
///
/// # Safety
/// The AVX2 tier's features; sizes as `crate::attn` validates them.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn y_values_q8(
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
    crate::attn::q8_value_tiles_16(group, probs, stride, v, cs, cols, out, 3, |t| {
        // SAFETY: the AVX2 tier's features (this function's contract); as
        // in `z_values_q8`, for the tile's 16 columns (t.half of its block).
        unsafe {
            match t.gn {
                3 => y_values_q8_tile::<3>(t.cs, t.ow, t.half, len, t.p, stride, t.v, t.out),
                2 => y_values_q8_tile::<2>(t.cs, t.ow, t.half, len, t.p, stride, t.v, t.out),
                _ => y_values_q8_tile::<1>(t.cs, t.ow, t.half, len, t.p, stride, t.v, t.out),
            }
        }
    });
}

/// `G` heads × 16 columns (`half` of a block) over all `len` positions,
/// as [`z_values_q8_tile`]: the weights `p · d` of each chunk rounded to
/// i16 against the chunk's largest (the same weights for both halves of a
/// block), the int8 quants summed against them exactly, two positions to
/// a lane (`vpmaddwd`), the i32 sums scaled back into f32 once a chunk.
///
/// # Safety
/// AVX2 tier features; as [`z_values_q8_tile`], with 16 writable f32 at
/// `out + g·ow`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn y_values_q8_tile<const G: usize>(
    cs: usize,
    ow: usize,
    half: usize,
    len: usize,
    p: *const f32,
    stride: usize,
    v: *const u8,
    out: *mut f32,
) {
    let mut qw = [[0i16; KV_CHUNK]; G];
    let mut unq = [0f32; G];
    // SAFETY: caller's contract; every access is within the stated extents.
    unsafe {
        // f32 sums, each vector's columns in `vpunpck*wd` order (undone at
        // the end): [0] holds columns 0–3 and 8–11, [1] the rest.
        let mut acc = [[_mm256_setzero_ps(); 2]; G];
        let nch = len.div_ceil(KV_CHUNK);
        for c in 0..nch {
            let n = (len - c * KV_CHUNK).min(KV_CHUNK);
            let base = v.add(c * cs);
            let ahead = ahead_chunks(c, nch, 1, cs);
            // The next chunk's scales (never faults).
            for l in 0..V_QUANTS_AT / 64 {
                _mm_prefetch::<_MM_HINT_T1>(base.wrapping_add(ahead + 64 * l).cast());
            }
            let sc = base.cast::<u16>();
            for (g, (qg, ug)) in qw.iter_mut().zip(unq.iter_mut()).enumerate() {
                let pp = p.add(g * stride + c * KV_CHUNK);
                // Past `len` the weights are zero (the probabilities there
                // are only padding, the scales maybe not written).
                let w: [__m256; KV_CHUNK / 8] = core::array::from_fn(|i| {
                    if 8 * i + 8 <= n {
                        _mm256_mul_ps(
                            _mm256_loadu_ps(pp.add(8 * i)),
                            _mm256_cvtph_ps(_mm_loadu_si128(sc.add(8 * i).cast())),
                        )
                    } else {
                        let (mut t, mut d) = ([0f32; 8], [0u16; 8]);
                        for (k, (tk, dk)) in t
                            .iter_mut()
                            .zip(&mut d)
                            .enumerate()
                            .take(n.saturating_sub(8 * i))
                        {
                            *tk = *pp.add(8 * i + k);
                            *dk = sc.add(8 * i + k).read_unaligned();
                        }
                        _mm256_mul_ps(
                            _mm256_loadu_ps(t.as_ptr()),
                            _mm256_cvtph_ps(_mm_loadu_si128(d.as_ptr().cast())),
                        )
                    }
                });
                let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
                let mut m = _mm256_and_ps(w[0], abs);
                let mut nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(w[0], w[0]);
                for wi in &w[1..] {
                    m = _mm256_max_ps(m, _mm256_and_ps(*wi, abs));
                    nan = _mm256_or_ps(nan, _mm256_cmp_ps::<_CMP_UNORD_Q>(*wi, *wi));
                }
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), m);
                let amax = lanes.iter().fold(0f32, |a, &b| a.max(b));
                let (scale, back) = i16_steps(amax, _mm256_movemask_ps(nan) != 0);
                *ug = back;
                let sv = _mm256_set1_ps(scale);
                for (i, pair) in w.chunks_exact(2).enumerate() {
                    let q0 = _mm256_cvtps_epi32(_mm256_mul_ps(pair[0], sv));
                    let q1 = _mm256_cvtps_epi32(_mm256_mul_ps(pair[1], sv));
                    // Saturation never bites (|q| ≤ 32767); the lane
                    // interleave of `packs` is undone by the permute.
                    let q = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(q0, q1));
                    _mm256_storeu_si256(qg.as_mut_ptr().add(16 * i).cast(), q);
                }
            }
            let mut ia = [[_mm256_setzero_si256(); 2]; G];
            // Pairs of positions; an odd `n`'s last pair reads one row past
            // it, inside the chunk, against a zero weight.
            for j in (0..n).step_by(2) {
                let row = base.add(V_QUANTS_AT + 32 * j + 16 * half);
                // The same rows of the next chunk (never faults).
                _mm_prefetch::<_MM_HINT_T1>(row.wrapping_add(ahead).cast());
                let a = _mm256_cvtepi8_epi16(_mm_loadu_si128(row.cast()));
                let b = _mm256_cvtepi8_epi16(_mm_loadu_si128(row.add(32).cast()));
                let x = [_mm256_unpacklo_epi16(a, b), _mm256_unpackhi_epi16(a, b)];
                for (ig, qg) in ia.iter_mut().zip(&qw) {
                    let wp = _mm256_set1_epi32(qg.as_ptr().add(j).cast::<i32>().read_unaligned());
                    for (a, xv) in ig.iter_mut().zip(&x) {
                        *a = _mm256_add_epi32(*a, _mm256_madd_epi16(*xv, wp));
                    }
                }
            }
            for ((ag, ig), &u) in acc.iter_mut().zip(&ia).zip(&unq) {
                let uv = _mm256_set1_ps(u);
                for (a, i) in ag.iter_mut().zip(ig) {
                    *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(*i), uv, *a);
                }
            }
        }
        for (g, a) in acc.iter().enumerate() {
            let o = out.add(g * ow);
            _mm256_storeu_ps(o, _mm256_permute2f128_ps::<0x20>(a[0], a[1]));
            _mm256_storeu_ps(o.add(8), _mm256_permute2f128_ps::<0x31>(a[0], a[1]));
        }
    }
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

#[allow(clippy::too_many_arguments)]
fn z_scores<const F16: bool>(
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
        let mut g0 = 0;
        while g0 < group {
            let gn = (group - g0).min(4);
            let kc = k[c * cs..c * cs + cb].as_ptr();
            let qp = q[g0 * hd..].as_ptr();
            let op = scores[g0 * stride + c * KV_CHUNK..].as_mut_ptr();
            let ahead = ahead_chunks(c, nch, 2, cs);
            // SAFETY: only reachable via `kernels`, which checked the AVX-512
            // tier; the chunk holds hd·64 elements, q gn·hd values from g0,
            // and scores gn rows of `stride` (≥ this chunk's end) from `op`.
            unsafe {
                match gn {
                    4 => z_scores_tile::<4, F16>(hd, qp, kc, ahead, op, stride),
                    3 => z_scores_tile::<3, F16>(hd, qp, kc, ahead, op, stride),
                    2 => z_scores_tile::<2, F16>(hd, qp, kc, ahead, op, stride),
                    _ => z_scores_tile::<1, F16>(hd, qp, kc, ahead, op, stride),
                }
            }
            g0 += gn;
        }
    }
}

/// One chunk (64 positions) × `G` queries.
///
/// # Safety
/// AVX-512 tier features; `kc` holds `hd · 64` elements (the chunk
/// `ahead` bytes on is prefetched only), `q` `G · hd` f32, `out + g ·
/// stride` 64 writable f32 for each `g < G`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn z_scores_tile<const G: usize, const F16: bool>(
    hd: usize,
    q: *const f32,
    kc: *const u8,
    ahead: usize,
    out: *mut f32,
    stride: usize,
) {
    let es = if F16 { 2 } else { 4 };
    let mut acc = [[_mm512_setzero_ps(); 4]; G];
    // SAFETY: caller's contract; every access is within the stated extents.
    unsafe {
        for d in 0..hd {
            let row = kc.add(d * KV_CHUNK * es);
            // The same rows of the chunk after next (prefetching never faults).
            _mm_prefetch::<_MM_HINT_T1>(row.wrapping_add(ahead).cast());
            if F16 {
                _mm_prefetch::<_MM_HINT_T1>(row.wrapping_add(ahead + 64).cast());
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

#[allow(clippy::too_many_arguments)]
fn z_values<const F16: bool>(
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
        let mut d0 = cols.c0;
        while d0 < cols.c1 {
            let nv = ((cols.c1 - d0) / 16).min(4);
            let pp = probs[g0 * stride..].as_ptr();
            let vp = v[d0 * es..].as_ptr();
            let op = out[g0 * w + d0 - cols.c0..].as_mut_ptr();
            macro_rules! go {
                ($g:literal, $n:literal) => {
                    // SAFETY: only reachable via `kernels`, which checked the
                    // AVX-512 tier; v holds len rows of hd elements, in
                    // chunks of 64 cs bytes apart (this slab is d0..d0 +
                    // 16·nv of each), probs gn rows of `stride` ≥ len, out
                    // gn rows of w.
                    unsafe { z_values_tile::<$g, $n, F16>(hd, w, len, cs, pp, stride, vp, op) }
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
/// AVX-512 tier features; `v` row `pos` (`hd` elements apart within a
/// chunk of 64, chunks `cs` bytes apart) has `16·NV` readable elements for
/// `pos < len`; `p + g·stride` has `len` f32 and `out + g·ow` `16·NV`
/// writable f32 for each `g < G`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn z_values_tile<const G: usize, const NV: usize, const F16: bool>(
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
    let rb = hd * es;
    let mut acc = [[_mm512_setzero_ps(); NV]; G];
    // SAFETY: caller's contract.
    unsafe {
        let nch = len.div_ceil(KV_CHUNK);
        for c in 0..nch {
            let base = v.add(c * cs);
            for j in 0..(len - c * KV_CHUNK).min(KV_CHUNK) {
                let row = base.add(j * rb);
                // 32 rows ahead, in this chunk or the next (if read), each
                // cache line this tile reads of the row (prefetching never
                // faults).
                let ahead = if j < KV_CHUNK - 32 {
                    row.wrapping_add(32 * rb)
                } else if c + 1 < nch {
                    base.wrapping_add(cs + (j + 32 - KV_CHUNK) * rb)
                } else {
                    row
                };
                _mm_prefetch::<_MM_HINT_T1>(ahead.cast());
                if 16 * NV * es > 64 {
                    _mm_prefetch::<_MM_HINT_T1>(ahead.wrapping_add(64).cast());
                }
                let vv: [__m512; NV] = core::array::from_fn(|i| zload::<F16>(row.add(16 * i * es)));
                let pos = c * KV_CHUNK + j;
                for (g, a) in acc.iter_mut().enumerate() {
                    let w = _mm512_set1_ps(*p.add(g * stride + pos));
                    for (aj, &vj) in a.iter_mut().zip(&vv) {
                        *aj = _mm512_fmadd_ps(vj, w, *aj);
                    }
                }
            }
        }
        for (g, a) in acc.iter().enumerate() {
            for (j, &aj) in a.iter().enumerate() {
                _mm512_storeu_ps(out.add(g * ow + 16 * j), aj);
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

#[allow(clippy::too_many_arguments)]
fn y_scores<const F16: bool>(
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
        // Half chunks of 32 positions: 4 vectors per query.
        for h in 0..2 {
            let mut g0 = 0;
            while g0 < group {
                let gn = (group - g0).min(3);
                let kc = k[c * cs + 32 * h * es..c * cs + cb].as_ptr();
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

#[allow(clippy::too_many_arguments)]
fn y_values<const F16: bool>(
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
    if !hd.is_multiple_of(8) {
        return crate::attn::values_fallback(F16, hd, group, probs, stride, v, len, cs, cols, out);
    }
    let es = if F16 { 2 } else { 4 };
    let w = cols.width();
    let mut g0 = 0;
    while g0 < group {
        let gn = (group - g0).min(3);
        let mut d0 = cols.c0;
        while d0 < cols.c1 {
            let nv = ((cols.c1 - d0) / 8).min(4);
            let pp = probs[g0 * stride..].as_ptr();
            let vp = v[d0 * es..].as_ptr();
            let op = out[g0 * w + d0 - cols.c0..].as_mut_ptr();
            macro_rules! go {
                ($g:literal, $n:literal) => {
                    // SAFETY: only reachable via `kernels`, which checked the
                    // AVX2 tier; as in `z_values`, with 8-element vectors.
                    unsafe { y_values_tile::<$g, $n, F16>(hd, w, len, cs, pp, stride, vp, op) }
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
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn y_values_tile<const G: usize, const NV: usize, const F16: bool>(
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
    let mut acc = [[_mm256_setzero_ps(); NV]; G];
    // SAFETY: caller's contract.
    unsafe {
        for c in 0..len.div_ceil(KV_CHUNK) {
            let base = v.add(c * cs);
            for j in 0..(len - c * KV_CHUNK).min(KV_CHUNK) {
                let row = base.add(j * hd * es);
                let vv: [__m256; NV] = core::array::from_fn(|i| yload::<F16>(row.add(8 * i * es)));
                let pos = c * KV_CHUNK + j;
                for (g, a) in acc.iter_mut().enumerate() {
                    let w = _mm256_set1_ps(*p.add(g * stride + pos));
                    for (aj, &vj) in a.iter_mut().zip(&vv) {
                        *aj = _mm256_fmadd_ps(vj, w, *aj);
                    }
                }
            }
        }
        for (g, a) in acc.iter().enumerate() {
            for (j, &aj) in a.iter().enumerate() {
                _mm256_storeu_ps(out.add(g * ow + 8 * j), aj);
            }
        }
    }
}
