//! Attention products over a KV cache: the scores `q · k` of a group of
//! queries against every cached key, and the probability-weighted sum of the
//! cached values. They are plain multi-vector products over two memory
//! layouts chosen so that both run with no horizontal reductions:
//!
//! * **Keys, chunk-transposed**: chunks of [`KV_CHUNK`] positions, each
//!   stored `[dim][KV_CHUNK]`, so one vector load holds one dimension of
//!   16 (or 8, 4) consecutive positions and the scores of a whole chunk
//!   accumulate lane-wise (`score[p] += k[d][p] · q[d]`, `d` in order).
//! * **Values, by position**: `[pos][dim]`, so each position's row is
//!   scaled by its probability and added into the outputs (`out[d] += p ·
//!   v[pos][d]`, `pos` in order), as ggml's `vec_mad`.
//!
//! Elements are F16 (the cache's default, as llama.cpp), F32 or Q8_0
//! (see [below](#q8_0-cache)); queries,
//! probabilities and outputs are f32. Every tier accumulates in f32 in the
//! same order; tiers with FMA round once per step where the scalar reference
//! rounds twice, so they agree within a few ulp of `Σ|q·k|` (the
//! conformance tests state the bound).
//!
//! # Q8_0 cache
//!
//! A Q8_0 cache stores each position's key and value row of one head as
//! Q8_0 blocks (32 elements, `x = d · q`, quantized as ggml quantizes
//! activations: [`crate::quantize_row_act`]), each scale an f16 as in a
//! GGUF Q8_0 block. That is `hd + 2·hd/32` bytes a position (68 for `hd` =
//! 64, against 128 for F16: the bytes of llama.cpp's `q8_0` cache), in
//! chunks of [`KV_CHUNK`] positions:
//!
//! * **key chunk**: scales `[block][KV_CHUNK]` f16, then quants
//!   `[dim / 4][KV_CHUNK][4]` i8: chunk-transposed in groups of four
//!   dimensions, so that one 32-bit lane holds four consecutive dimensions
//!   of one position, as integer dot-product instructions (`vpdpbusd`,
//!   `sdot`) take them;
//! * **value chunk**: per block of 32 dimensions, its scales `[KV_CHUNK]`
//!   f16 then its quants `[KV_CHUNK][32]` i8 (by position within the
//!   block), so that a thread summing some blocks' columns reads only
//!   those blocks' bytes.
//!
//! Scores take the queries quantized to Q8_0 as well, as llama.cpp does
//! (`ggml_vec_dot_q8_0_q8_0`): with `e_b`, `q_q` the query's block scales
//! and quants, the score of position `p` is `Σ_b (e_b · d_b(p)) ·
//! (Σ_{d in b} q_q[d] · k_q[d][p])`, blocks in order. The inner sums are
//! exact integers, so every tier computes the same ones; only the last
//! multiply-add per block is rounded differently on tiers with FMA (within
//! the stated bound of the reference). Value sums add `w · (d_b · v_q)` in
//! f32 (the product `d_b · v_q` is exact), positions in order, as
//! llama.cpp converts quantized values to f32 to sum them. The x86-64
//! tiers instead sum the int8 quants exactly against the weights `w · d_b`
//! rounded to 16 bits: per chunk, head and block, `w · d_b ≈ s · r` with
//! `s` the largest `|w · d_b|` of the chunk over 32767 and `r` an i16, so
//! each weight is off by at most `s / 2` (`2^-16` of the chunk's largest,
//! finer than the f16 rounding llama.cpp gives an F16 cache's
//! probabilities), and the conformance tests allow that on top of the f32
//! bound; a NaN weight still reaches its outputs. AVX-512 (with VNNI) and
//! AVX2 have their own Q8_0 kernels. On aarch64 the value sums
//! have a NEON kernel on every tier and the scores use `sdot` from the
//! dotprod tier up; the NEON tier's scores (a Pi 4) and the scalar tier
//! compile one portable source, written over whole 64-position chunks so
//! that it vectorizes.

use crate::{dispatch, Error, GgmlType, Tier};

/// Positions per chunk of the chunk-transposed key layout.
pub const KV_CHUNK: usize = 64;

/// Scores kernel: `group` queries of `hd` (`q`, `[g][d]`) against `nch`
/// chunks of keys (`k`, chunk `c` at byte `c · cs`); writes `scores[g *
/// stride + p]` for `p < nch * KV_CHUNK`. Sizes validated by the caller.
pub(crate) type ScoresFn = fn(
    hd: usize,
    group: usize,
    q: &[f32],
    k: &[u8],
    nch: usize,
    cs: usize,
    scores: &mut [f32],
    stride: usize,
);

/// Scores kernel for a Q8_0 cache: `gn ≤ Q8_TILE` queries quantized to
/// Q8_0 (quants `qq`, `[g][hd]`; f32 block scales `qd`, `[g][hd / 32]`)
/// against `nch` key chunks (chunk `c` at byte `c · cs`); writes `scores[g *
/// stride + p]` for `p < nch * KV_CHUNK`. Sizes validated by the caller.
pub(crate) type ScoresQ8Fn = fn(
    hd: usize,
    gn: usize,
    qq: &[i8],
    qd: &[f32],
    k: &[u8],
    nch: usize,
    cs: usize,
    scores: &mut [f32],
    stride: usize,
);

/// Queries a Q8_0 scores kernel takes at once.
pub(crate) const Q8_TILE: usize = 4;

/// The Q8_0-cache attention kernels of one tier.
#[derive(Clone, Copy)]
pub(crate) struct Q8Kernels {
    pub scores: ScoresQ8Fn,
    pub values: ValuesFn,
}

/// Values kernel: `out[g * w + d - c0] = Σ_{pos < len} probs[g * stride +
/// pos] · v[pos][d]` for the columns `d` in `c0..c1` (`w = c1 - c0`; both
/// multiples of 32, or `c1 = hd`), where the 64 positions of chunk `c`
/// start at byte `c · cs` of `v`. Sizes validated by the caller.
pub(crate) type ValuesFn = fn(
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    len: usize,
    cs: usize,
    cols: Cols,
    out: &mut [f32],
);

/// A column range `c0..c1` of the value rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cols {
    pub c0: usize,
    pub c1: usize,
}

impl Cols {
    pub fn width(self) -> usize {
        self.c1 - self.c0
    }
}

/// Value columns `cols` of a head of `hd`, checked: within the head, each
/// end a multiple of 32 (a Q8_0 block, a line of F16 values) or the head's
/// end. `what` names the caller's argument in the error.
fn value_cols(what: &'static str, hd: usize, cols: core::ops::Range<usize>) -> Result<Cols, Error> {
    let edge_ok = |c: usize| c.is_multiple_of(QK) || c == hd;
    if cols.start > cols.end || cols.end > hd || !edge_ok(cols.start) || !edge_ok(cols.end) {
        return Err(Error::BufferSize {
            what,
            expected: hd,
            got: cols.end,
        });
    }
    Ok(Cols {
        c0: cols.start,
        c1: cols.end,
    })
}

/// Bytes of one scale of a Q8_0 cache: an f16, as in a GGUF Q8_0 block.
/// The kernels widen them exactly (`vcvtph2ps`, `fcvtl`) as they load them;
/// stored as f32 they cost 5.6% more bytes a position.
pub(crate) const Q8_SCALE_BYTES: usize = 2;

/// Bytes of one block (32 columns) of a Q8_0 value chunk: 64 f16 scales,
/// then 64 rows of 32 quants.
pub(crate) const V_BLOCK_BYTES: usize = KV_CHUNK * (Q8_SCALE_BYTES + QK);

/// Where a Q8_0 value block's quants start, after its scales.
pub(crate) const V_QUANTS_AT: usize = KV_CHUNK * Q8_SCALE_BYTES;

/// The attention kernels of one tier for one element type.
#[derive(Clone, Copy)]
pub(crate) struct AttnKernels {
    pub scores: ScoresFn,
    pub values: ValuesFn,
}

/// Elements per Q8_0 block.
const QK: usize = 32;

/// Bytes one position of one head (`hd` elements) takes in a cache of
/// type `ty`, for the types the attention kernels read: F16, F32 and Q8_0
/// (whose `hd` must be a multiple of 32).
pub fn kv_pos_bytes(ty: GgmlType, hd: usize) -> Result<usize, Error> {
    let unsupported = Error::Unsupported {
        ty,
        op: "attention",
    };
    let overflow = || Error::BufferSize {
        what: "kv_pos_bytes: head dimension overflows",
        expected: usize::MAX,
        got: hd,
    };
    match ty {
        GgmlType::F16 => hd.checked_mul(2).ok_or_else(overflow),
        GgmlType::F32 => hd.checked_mul(4).ok_or_else(overflow),
        GgmlType::Q8_0 if hd.is_multiple_of(QK) => Ok(hd + Q8_SCALE_BYTES * (hd / QK)),
        GgmlType::Q8_0 => Err(Error::RowLength { ty, n: hd }),
        _ => Err(unsupported),
    }
}

fn check(what: &'static str, need: usize, got: usize) -> Result<(), Error> {
    if got < need {
        return Err(Error::BufferSize {
            what,
            expected: need,
            got,
        });
    }
    Ok(())
}

/// The product of `factors`, or an error naming `what` if it overflows.
fn product(what: &'static str, factors: &[usize]) -> Result<usize, Error> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .ok_or(Error::BufferSize {
            what,
            expected: usize::MAX,
            got: 0,
        })
}

/// Elements spanned by `rows ≥ 1` rows `stride` apart, the last `last` long.
fn span_of(what: &'static str, rows: usize, stride: usize, last: usize) -> Result<usize, Error> {
    let before = product(what, &[rows - 1, stride])?;
    before.checked_add(last).ok_or(Error::BufferSize {
        what,
        expected: usize::MAX,
        got: 0,
    })
}

/// The F16/F32 kernels of tier `t` (Q8_0 has its own: [`q8_kernels`]).
fn kernels_for(t: Tier, ty: GgmlType, hd: usize) -> Result<AttnKernels, Error> {
    dispatch::check_tier(t)?;
    kv_pos_bytes(ty, hd)?;
    let k = dispatch::down_from(t, |c| match c {
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 | Tier::Avx512 => crate::arch::x86_64::attn::kernels(c, ty),
        #[cfg(target_arch = "aarch64")]
        Tier::Neon => crate::arch::aarch64::attn::kernels(ty),
        _ => None,
    });
    Ok(k.unwrap_or_else(|| reference(ty)))
}

/// Attention scores: `scores[g * stride + p] = Σ_d q[g * hd + d] · k[p][d]`
/// for the `group` queries in `q` and every position `p` of the
/// `len.div_ceil(KV_CHUNK)` key chunks in `k` (whole chunks are written:
/// positions past `len` score whatever the cache holds there, zeros in
/// Ember's). `k` is in the chunk-transposed layout (see the module docs) with
/// elements of type `ty` (F16, F32 or Q8_0); chunk `c` starts at byte `c ·
/// chunk_stride`, which is at least a chunk's bytes (exactly that for one
/// head's chunks back to back; more where other heads' chunks lie between,
/// as in Ember's cache, `[chunk][layer][head]`).
#[allow(clippy::too_many_arguments)]
pub fn attn_scores(
    ty: GgmlType,
    hd: usize,
    group: usize,
    q: &[f32],
    k: &[u8],
    chunk_stride: usize,
    len: usize,
    scores: &mut [f32],
    stride: usize,
) -> Result<(), Error> {
    attn_scores_with(
        dispatch::try_tier()?,
        ty,
        hd,
        group,
        q,
        k,
        chunk_stride,
        len,
        scores,
        stride,
    )
}

/// [`attn_scores`] on tier `t`.
#[allow(clippy::too_many_arguments)]
pub fn attn_scores_with(
    t: Tier,
    ty: GgmlType,
    hd: usize,
    group: usize,
    q: &[f32],
    k: &[u8],
    chunk_stride: usize,
    len: usize,
    scores: &mut [f32],
    stride: usize,
) -> Result<(), Error> {
    dispatch::check_tier(t)?;
    let pb = kv_pos_bytes(ty, hd)?;
    let nch = len.div_ceil(KV_CHUNK);
    let span = nch * KV_CHUNK;
    let overflow = "attn_scores: sizes overflow";
    let cb = product(overflow, &[KV_CHUNK, pb])?;
    check("attn_scores: chunk stride", cb, chunk_stride)?;
    let k_need = chunks_span(overflow, nch, chunk_stride, cb)?;
    let q_need = product(overflow, &[group, hd])?;
    check("attn_scores: key bytes", k_need, k.len())?;
    check("attn_scores: queries", q_need, q.len())?;
    check("attn_scores: stride", span, stride)?;
    if group == 0 || hd == 0 || nch == 0 {
        return Ok(());
    }
    let s_need = span_of(overflow, group, stride, span)?;
    check("attn_scores: score buffer", s_need, scores.len())?;
    let (q, k) = (&q[..q_need], &k[..k_need]);
    if ty == GgmlType::Q8_0 {
        return scores_q8(t, hd, group, q, k, nch, chunk_stride, scores, stride);
    }
    let kern = kernels_for(t, ty, hd)?;
    (kern.scores)(hd, group, q, k, nch, chunk_stride, scores, stride);
    Ok(())
}

/// Bytes from the first of `nch` chunks `cs` apart to the end of the last
/// (`cb` bytes); 0 for none.
fn chunks_span(what: &'static str, nch: usize, cs: usize, cb: usize) -> Result<usize, Error> {
    if nch == 0 {
        return Ok(0);
    }
    span_of(what, nch, cs, cb)
}

/// Q8_0 scores: the queries are quantized [`Q8_TILE`] at a time (as ggml
/// quantizes activations), and each tile scored against every chunk.
#[allow(clippy::too_many_arguments)]
fn scores_q8(
    t: Tier,
    hd: usize,
    group: usize,
    q: &[f32],
    k: &[u8],
    nch: usize,
    cs: usize,
    scores: &mut [f32],
    stride: usize,
) -> Result<(), Error> {
    let nb = hd / QK;
    if nb > MAX_ROW_BLOCKS {
        return Err(Error::RowLength {
            ty: GgmlType::Q8_0,
            n: hd,
        });
    }
    let kern = q8_kernels(t);
    let empty = crate::blocks::BlockQ8_0 {
        d: [0; 2],
        qs: [0; QK],
    };
    let mut blocks = [empty; Q8_TILE * MAX_ROW_BLOCKS];
    let mut qq = [0i8; Q8_TILE * MAX_ROW_BLOCKS * QK];
    let mut qd = [0f32; Q8_TILE * MAX_ROW_BLOCKS];
    let mut g0 = 0;
    while g0 < group {
        let gn = (group - g0).min(Q8_TILE);
        for g in 0..gn {
            let row = &mut blocks[g * nb..(g + 1) * nb];
            let src = &q[(g0 + g) * hd..(g0 + g + 1) * hd];
            crate::quantize_row_act_with(t, GgmlType::Q8_0, src, bytemuck::cast_slice_mut(row))?;
            for (b, blk) in row.iter().enumerate() {
                qd[g * nb + b] = crate::fp::f16_to_f32(blk.d);
                qq[(g * nb + b) * QK..(g * nb + b + 1) * QK].copy_from_slice(&blk.qs);
            }
        }
        (kern.scores)(
            hd,
            gn,
            &qq[..gn * hd],
            &qd[..gn * nb],
            k,
            nch,
            cs,
            &mut scores[g0 * stride..],
            stride,
        );
        g0 += gn;
    }
    Ok(())
}

/// Attention values: `out[g * hd + d] = Σ_{pos < len} probs[g * stride +
/// pos] · v[pos][d]`, with `v` stored by position (`[pos][dim]`, elements of
/// type `ty`, F16 or F32; for Q8_0, whole value chunks as in the module
/// docs), the 64 positions of chunk `c` from byte `c · chunk_stride` (as
/// [`attn_scores`]).
#[allow(clippy::too_many_arguments)]
pub fn attn_values(
    ty: GgmlType,
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    chunk_stride: usize,
    len: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    let t = dispatch::try_tier()?;
    attn_values_cols_with(
        t,
        ty,
        hd,
        group,
        probs,
        stride,
        v,
        chunk_stride,
        len,
        0..hd,
        out,
    )
}

/// [`attn_values`] on tier `t`.
#[allow(clippy::too_many_arguments)]
pub fn attn_values_with(
    t: Tier,
    ty: GgmlType,
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    chunk_stride: usize,
    len: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    attn_values_cols_with(
        t,
        ty,
        hd,
        group,
        probs,
        stride,
        v,
        chunk_stride,
        len,
        0..hd,
        out,
    )
}

/// [`attn_values`] for the columns `cols` only, into `out[g * w + d -
/// cols.start]` (`w = cols.len()`): bit for bit what the whole product gives
/// in those columns, so that threads can share one head's values by
/// columns. Both ends must be multiples of 32 (the end may also be `hd`).
#[allow(clippy::too_many_arguments)]
pub fn attn_values_cols(
    ty: GgmlType,
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    chunk_stride: usize,
    len: usize,
    cols: core::ops::Range<usize>,
    out: &mut [f32],
) -> Result<(), Error> {
    let t = dispatch::try_tier()?;
    attn_values_cols_with(
        t,
        ty,
        hd,
        group,
        probs,
        stride,
        v,
        chunk_stride,
        len,
        cols,
        out,
    )
}

/// [`attn_values_cols`] on tier `t`.
#[allow(clippy::too_many_arguments)]
pub fn attn_values_cols_with(
    t: Tier,
    ty: GgmlType,
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    chunk_stride: usize,
    len: usize,
    cols: core::ops::Range<usize>,
    out: &mut [f32],
) -> Result<(), Error> {
    dispatch::check_tier(t)?;
    let pb = kv_pos_bytes(ty, hd)?;
    let values = if ty == GgmlType::Q8_0 {
        q8_kernels(t).values
    } else {
        kernels_for(t, ty, hd)?.values
    };
    let cols = value_cols(
        "attn_values: column range (ends multiples of 32, within the head)",
        hd,
        cols,
    )?;
    let overflow = "attn_values: sizes overflow";
    let cb = product(overflow, &[KV_CHUNK, pb])?;
    check("attn_values: chunk stride", cb, chunk_stride)?;
    // Q8_0 values are stored in whole chunks; F16/F32 rows are plain, so
    // the last chunk need only hold its positions.
    let nch = len.div_ceil(KV_CHUNK);
    let last = if ty == GgmlType::Q8_0 {
        cb
    } else {
        (len - nch.saturating_sub(1) * KV_CHUNK) * pb
    };
    let v_need = chunks_span(overflow, nch, chunk_stride, last)?;
    let o_need = product(overflow, &[group, cols.width()])?;
    check("attn_values: value bytes", v_need, v.len())?;
    check("attn_values: output", o_need, out.len())?;
    check("attn_values: stride", len, stride)?;
    let out = &mut out[..o_need];
    if group == 0 || cols.width() == 0 {
        return Ok(());
    }
    if len == 0 {
        out.fill(0.0);
        return Ok(());
    }
    let p_need = span_of(overflow, group, stride, len)?;
    check("attn_values: probabilities", p_need, probs.len())?;
    values(
        hd,
        group,
        probs,
        stride,
        &v[..v_need],
        len,
        chunk_stride,
        cols,
        out,
    );
    Ok(())
}

/// The scalar reference values kernel, for tiers whose SIMD kernel does not
/// cover a head dimension (`f16`: F16 elements, else F32).
#[allow(clippy::too_many_arguments)]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) fn values_fallback(
    f16: bool,
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
    if f16 {
        values_ref::<2>(hd, group, probs, stride, v, len, cs, cols, out)
    } else {
        values_ref::<4>(hd, group, probs, stride, v, len, cs, cols, out)
    }
}

/// The scalar reference kernels for `ty` (F16 or F32).
fn reference(ty: GgmlType) -> AttnKernels {
    if ty == GgmlType::F32 {
        AttnKernels {
            scores: scores_ref::<4>,
            values: values_ref::<4>,
        }
    } else {
        AttnKernels {
            scores: scores_ref::<2>,
            values: values_ref::<2>,
        }
    }
}

/// Element `i` of a cache row of `ES`-byte elements (2: F16, 4: F32).
#[inline(always)]
fn elem<const ES: usize>(b: &[u8], i: usize) -> f32 {
    if ES == 2 {
        crate::fp::f16_to_f32([b[2 * i], b[2 * i + 1]])
    } else {
        f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
    }
}

#[allow(clippy::too_many_arguments)]
fn scores_ref<const ES: usize>(
    hd: usize,
    group: usize,
    q: &[f32],
    k: &[u8],
    nch: usize,
    cs: usize,
    scores: &mut [f32],
    stride: usize,
) {
    let cb = hd * KV_CHUNK * ES;
    for c in 0..nch {
        let kc = &k[c * cs..c * cs + cb];
        for g in 0..group {
            let qg = &q[g * hd..(g + 1) * hd];
            for j in 0..KV_CHUNK {
                let mut s = 0.0f32;
                for (d, &qd) in qg.iter().enumerate() {
                    s += elem::<ES>(kc, d * KV_CHUNK + j) * qd;
                }
                scores[g * stride + c * KV_CHUNK + j] = s;
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn values_ref<const ES: usize>(
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
    let w = cols.width();
    out.fill(0.0);
    for g in 0..group {
        let o = &mut out[g * w..(g + 1) * w];
        for pos in 0..len {
            let p = probs[g * stride + pos];
            let at = (pos / KV_CHUNK) * cs + (pos % KV_CHUNK) * hd * ES;
            let row = &v[at..at + hd * ES];
            for (od, d) in o.iter_mut().zip(cols.c0..cols.c1) {
                *od += p * elem::<ES>(row, d);
            }
        }
    }
}

// ------------------------------------------------------------ writing rows

/// Writes one position's key row `src` (`hd` values) as entry `j` of a key
/// chunk (`KV_CHUNK · kv_pos_bytes(ty, hd)` bytes) of type `ty`.
pub fn kv_write_key(
    ty: GgmlType,
    hd: usize,
    chunk: &mut [u8],
    j: usize,
    src: &[f32],
) -> Result<(), Error> {
    write_row(ty, hd, chunk, j, src, true)
}

/// Writes one position's value row `src` (`hd` values) as entry `j` of a
/// value chunk (`KV_CHUNK · kv_pos_bytes(ty, hd)` bytes) of type `ty`.
pub fn kv_write_value(
    ty: GgmlType,
    hd: usize,
    chunk: &mut [u8],
    j: usize,
    src: &[f32],
) -> Result<(), Error> {
    write_row(ty, hd, chunk, j, src, false)
}

/// Fetches ahead, for writing, the cache lines that [`kv_write_key`] and
/// [`kv_write_value`] write for entry `j` of a key and a value chunk of
/// type `ty`. A key is one element in each dimension's row of its chunk
/// (64 lines for an F16 head of 64), and a decode token's write of it would
/// otherwise miss on each line in turn, since a whole model's weights have
/// passed through the caches since that chunk was last read. Issued a
/// matmul ahead of the write, the misses overlap that matmul instead. A
/// hint only: the chunks are not changed.
pub fn kv_prefetch(
    ty: GgmlType,
    hd: usize,
    key: &[u8],
    value: &[u8],
    j: usize,
) -> Result<(), Error> {
    // Whole chunks, as the writes take them: this also bounds `hd`.
    let cb = product(
        "kv_prefetch: chunk bytes",
        &[KV_CHUNK, kv_pos_bytes(ty, hd)?],
    )?;
    check("kv_prefetch: key chunk bytes", cb, key.len())?;
    check("kv_prefetch: value chunk bytes", cb, value.len())?;
    row_lines(ty, hd, j, true, |at| {
        crate::arch::prefetch(key, at, crate::arch::Hint::Write)
    })?;
    row_lines(ty, hd, j, false, |at| {
        crate::arch::prefetch(value, at, crate::arch::Hint::Write)
    })
}

/// Hints that one chunk of a head's cache is about to be read: a key chunk
/// (`key`; all of it, as [`attn_scores`] reads it) or the columns `cols` of
/// a value chunk (as [`attn_values_cols`] reads them), so that its cache
/// lines are fetched into L2 ahead (`prefetcht1`, `prfm pldl2keep`; nothing
/// where the target has no prefetch here). The kernels fetch each chunk of
/// a head ahead of reading it, all but the first: issued while the stream
/// before it is read (the head's keys before its values, one head's values
/// before the next head's keys), this keeps the reads going from one
/// stream into the next. Lines past the end of `chunk` are left out. A hint
/// only: no result depends on it.
pub fn attn_prefetch(
    ty: GgmlType,
    hd: usize,
    chunk: &[u8],
    key: bool,
    cols: core::ops::Range<usize>,
) -> Result<(), Error> {
    let pb = kv_pos_bytes(ty, hd)?;
    let cb = product("attn_prefetch: chunk bytes", &[KV_CHUNK, pb])?;
    value_cols(
        "attn_prefetch: column range (ends multiples of 32, within the head)",
        hd,
        cols.clone(),
    )?;
    let chunk = &chunk[..chunk.len().min(cb)];
    let base = chunk.as_ptr() as usize;
    chunk_lines(ty, hd, base, chunk.len(), key, cols, |at| {
        crate::arch::prefetch(chunk, at, crate::arch::Hint::Read)
    });
    Ok(())
}

/// Calls `f` once with an offset into each 64-byte cache line of a chunk
/// of `len` bytes at address `base` that [`attn_prefetch`] fetches (the
/// key chunk, or value columns `cols`, of a valid `ty` and `hd`), in
/// address order, each offset below `len`.
fn chunk_lines(
    ty: GgmlType,
    hd: usize,
    base: usize,
    len: usize,
    key: bool,
    cols: core::ops::Range<usize>,
    mut f: impl FnMut(usize),
) {
    let pb = kv_pos_bytes(ty, hd).unwrap_or(0);
    // Every line that bytes `start..start + n` touch, from `start`'s, but
    // the one the last run ended in (adjacent rows can share it).
    let mut last = None;
    let mut lines = |start: usize, n: usize| {
        let end = start.saturating_add(n).min(len);
        let mut at = start;
        while at < end {
            if last != Some((base + at) / 64) {
                f(at);
                last = Some((base + at) / 64);
            }
            at = ((base + at) | 63) + 1 - base;
        }
    };
    if key {
        lines(0, KV_CHUNK * pb);
    } else if ty == GgmlType::Q8_0 {
        // Whole blocks: scales then quants (`write_row`'s layout).
        let blocks = cols.start / QK..cols.end.div_ceil(QK);
        lines(blocks.start * V_BLOCK_BYTES, blocks.len() * V_BLOCK_BYTES);
    } else {
        let es = pb / hd;
        for j in 0..KV_CHUNK {
            lines(j * pb + cols.start * es, cols.len() * es);
        }
    }
}

/// Calls `f` with byte offsets into a chunk that hit every 64-byte cache
/// line that `write_row(ty, hd, chunk, j, _, key)` writes, whatever the
/// chunk's alignment: one per scattered element (at most 4 bytes, aligned
/// to its size), and for a contiguous run its first byte, every 64th after
/// it and its last.
fn row_lines(
    ty: GgmlType,
    hd: usize,
    j: usize,
    key: bool,
    mut f: impl FnMut(usize),
) -> Result<(), Error> {
    let es = match ty {
        GgmlType::F16 => 2,
        GgmlType::F32 => 4,
        _ => 0,
    };
    if j >= KV_CHUNK {
        return Err(Error::BufferSize {
            what: "kv_prefetch: position within the chunk",
            expected: KV_CHUNK - 1,
            got: j,
        });
    }
    let mut run = |start: usize, len: usize| {
        if len == 0 {
            return;
        }
        for at in (start..start + len).step_by(64) {
            f(at);
        }
        f(start + len - 1);
    };
    kv_pos_bytes(ty, hd)?;
    if es > 0 {
        if key {
            for d in 0..hd {
                run((d * KV_CHUNK + j) * es, es);
            }
        } else {
            run(j * hd * es, hd * es);
        }
    } else {
        // Q8_0 (`write_row`'s layout).
        let nb = hd / QK;
        for b in 0..nb {
            if key {
                run(Q8_SCALE_BYTES * (b * KV_CHUNK + j), Q8_SCALE_BYTES);
            } else {
                run(b * V_BLOCK_BYTES + Q8_SCALE_BYTES * j, Q8_SCALE_BYTES);
                run(b * V_BLOCK_BYTES + V_QUANTS_AT + j * QK, QK);
            }
        }
        if key {
            for d4 in 0..hd / 4 {
                run(Q8_SCALE_BYTES * nb * KV_CHUNK + (d4 * KV_CHUNK + j) * 4, 4);
            }
        }
    }
    Ok(())
}

/// Most Q8_0 blocks one head row may hold when written (`hd` ≤ 1024).
pub(crate) const MAX_ROW_BLOCKS: usize = 32;

fn write_row(
    ty: GgmlType,
    hd: usize,
    chunk: &mut [u8],
    j: usize,
    src: &[f32],
    key: bool,
) -> Result<(), Error> {
    let pb = kv_pos_bytes(ty, hd)?;
    check("kv_write: chunk bytes", KV_CHUNK * pb, chunk.len())?;
    check("kv_write: source row", hd, src.len())?;
    if j >= KV_CHUNK {
        return Err(Error::BufferSize {
            what: "kv_write: position within the chunk",
            expected: KV_CHUNK - 1,
            got: j,
        });
    }
    let src = &src[..hd];
    match ty {
        GgmlType::F16 => {
            // Converted 64 at a time on the dispatched tier; a value row is
            // contiguous, a key row one element per dimension's row.
            let mut h = [0u16; 64];
            for (c, part) in src.chunks(64).enumerate() {
                let h = &mut h[..part.len()];
                crate::vecops::f32_to_f16(part, h);
                if key {
                    let rows = chunk[c * 64 * KV_CHUNK * 2..].chunks_exact_mut(KV_CHUNK * 2);
                    for (&x, row) in h.iter().zip(rows) {
                        row[2 * j..2 * j + 2].copy_from_slice(&x.to_le_bytes());
                    }
                } else {
                    let at = (j * hd + c * 64) * 2;
                    let dst = &mut chunk[at..at + 2 * h.len()];
                    for (&x, d) in h.iter().zip(dst.chunks_exact_mut(2)) {
                        d.copy_from_slice(&x.to_le_bytes());
                    }
                }
            }
        }
        GgmlType::F32 => {
            for (d, &x) in src.iter().enumerate() {
                let at = if key { d * KV_CHUNK + j } else { j * hd + d } * 4;
                chunk[at..at + 4].copy_from_slice(&x.to_le_bytes());
            }
        }
        _ => {
            // Q8_0, quantized as ggml quantizes activations.
            let nb = hd / QK;
            if nb > MAX_ROW_BLOCKS {
                return Err(Error::RowLength { ty, n: hd });
            }
            let mut blocks = [crate::blocks::BlockQ8_0 {
                d: [0; 2],
                qs: [0; QK],
            }; MAX_ROW_BLOCKS];
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut blocks[..nb]);
            crate::quantize_row_act(GgmlType::Q8_0, src, bytes)?;
            for (b, blk) in blocks[..nb].iter().enumerate() {
                let d = blk.d;
                let qs: &[u8] = bytemuck::cast_slice(&blk.qs);
                if key {
                    let (scales, quants) = chunk.split_at_mut(Q8_SCALE_BYTES * nb * KV_CHUNK);
                    let at = Q8_SCALE_BYTES * (b * KV_CHUNK + j);
                    scales[at..at + Q8_SCALE_BYTES].copy_from_slice(&d);
                    for (i, &q) in qs.iter().enumerate() {
                        let d = b * QK + i;
                        quants[((d / 4) * KV_CHUNK + j) * 4 + d % 4] = q;
                    }
                } else {
                    let vb = &mut chunk[b * V_BLOCK_BYTES..(b + 1) * V_BLOCK_BYTES];
                    vb[Q8_SCALE_BYTES * j..Q8_SCALE_BYTES * (j + 1)].copy_from_slice(&d);
                    let at = V_QUANTS_AT + j * QK;
                    vb[at..at + QK].copy_from_slice(qs);
                }
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------- Q8_0 cache

/// The Q8_0 kernels on tier `t`: x86's own for AVX2 and AVX-512; on
/// aarch64 NEON value sums on every NEON tier, with `sdot` scores from the
/// dotprod tier up and the portable scores below it (NEON is the aarch64
/// baseline, so they vectorize there as they are); else the portable
/// source.
fn q8_kernels(t: Tier) -> Q8Kernels {
    #[cfg(target_arch = "x86_64")]
    if let Some(k) = crate::arch::x86_64::attn::q8_kernels(t) {
        return k;
    }
    #[cfg(target_arch = "aarch64")]
    if matches!(t, Tier::Neon | Tier::Dotprod | Tier::I8mm) {
        let dot = matches!(t, Tier::Dotprod | Tier::I8mm);
        if let Some(k) = crate::arch::aarch64::attn::q8_kernels(dot) {
            return k;
        }
    }
    let _ = t;
    Q8Kernels {
        scores: scores_q8_generic,
        values: values_q8_generic,
    }
}

/// The tiles that the AVX2 and dotprod Q8_0 scores kernels cover, 16
/// positions × up to two queries: `tile(chunk, part, g0, n)` for every
/// chunk, 16-position part of it, and run of `n ≤ 2` queries from `g0`.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) fn q8_tiles_16x2(
    nch: usize,
    gn: usize,
    mut tile: impl FnMut(usize, usize, usize, usize),
) {
    for c in 0..nch {
        for part in 0..KV_CHUNK / 16 {
            let mut g0 = 0;
            while g0 < gn {
                let n = (gn - g0).min(2);
                tile(c, part, g0, n);
                g0 += n;
            }
        }
    }
}

/// One tile of the AVX2 and NEON Q8_0 value kernels: `gn` heads × 16
/// columns, `half` of block `b`, over every position. `p` is the first
/// head's probabilities (`stride` apart), `v` block `b`'s part of the first
/// value chunk (chunks `cs` bytes apart), `out` the first head's 16 outputs
/// (rows `ow` apart).
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) struct Q8ValueTile {
    pub gn: usize,
    pub half: usize,
    pub cs: usize,
    pub ow: usize,
    pub p: *const f32,
    pub v: *const u8,
    pub out: *mut f32,
}

/// The tiles of the AVX2 and NEON Q8_0 value kernels (arguments as
/// [`ValuesFn`]'s): `tile` for every run of at most `max_g` heads and every
/// 16 columns of `cols`.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) fn q8_value_tiles_16(
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    cs: usize,
    cols: Cols,
    out: &mut [f32],
    max_g: usize,
    mut tile: impl FnMut(Q8ValueTile),
) {
    let ow = cols.width();
    let mut g0 = 0;
    while g0 < group {
        let gn = (group - g0).min(max_g);
        for c16 in (cols.c0..cols.c1).step_by(16) {
            let b = c16 / QK;
            tile(Q8ValueTile {
                gn,
                half: (c16 % QK) / 16,
                cs,
                ow,
                p: probs[g0 * stride..].as_ptr(),
                v: v[b * V_BLOCK_BYTES..].as_ptr(),
                out: out[g0 * ow + c16 - cols.c0..].as_mut_ptr(),
            });
        }
        g0 += gn;
    }
}

/// Scale `j` of a Q8_0 key or value chunk's block (`b` holds its f16
/// scales, little-endian), widened to f32.
#[inline(always)]
fn q8_scale(b: &[u8], j: usize) -> f32 {
    crate::fp::f16_to_f32([b[Q8_SCALE_BYTES * j], b[Q8_SCALE_BYTES * j + 1]])
}

/// All [`KV_CHUNK`] scales of a Q8_0 key chunk's block ([`q8_scale`]).
#[inline(always)]
fn q8_scales(b: &[u8]) -> [f32; KV_CHUNK] {
    core::array::from_fn(|j| q8_scale(b, j))
}

/// Q8_0 scores (module docs), the reference: per chunk, the integer sums of
/// each block for the `gn` queries, then `s += (e_b · d_b) · sum` per block.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn scores_q8_generic(
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
    let nb = hd / QK;
    let cb = KV_CHUNK * (hd + Q8_SCALE_BYTES * nb);
    for c in 0..nch {
        let kc = &k[c * cs..c * cs + cb];
        let (sc, qs) = kc.split_at(Q8_SCALE_BYTES * nb * KV_CHUNK);
        let mut s = [[0f32; KV_CHUNK]; Q8_TILE];
        for b in 0..nb {
            let mut acc = [[0i32; KV_CHUNK]; Q8_TILE];
            for d4 in b * QK / 4..(b + 1) * QK / 4 {
                let rows = &qs[d4 * 4 * KV_CHUNK..(d4 + 1) * 4 * KV_CHUNK];
                for (g, a) in acc.iter_mut().enumerate().take(gn) {
                    let qv = &qq[g * hd + 4 * d4..g * hd + 4 * d4 + 4];
                    for (aj, kj) in a.iter_mut().zip(rows.chunks_exact(4)) {
                        let mut d = 0i32;
                        for (&x, &y) in qv.iter().zip(kj) {
                            d += i32::from(x) * i32::from(y as i8);
                        }
                        *aj += d;
                    }
                }
            }
            let ds =
                q8_scales(&sc[b * KV_CHUNK * Q8_SCALE_BYTES..(b + 1) * KV_CHUNK * Q8_SCALE_BYTES]);
            for (g, (sg, a)) in s.iter_mut().zip(&acc).enumerate().take(gn) {
                let e = qd[g * nb + b];
                for ((sj, &aj), &dj) in sg.iter_mut().zip(a).zip(&ds) {
                    *sj += e * dj * aj as f32;
                }
            }
        }
        for (g, sg) in s.iter().enumerate().take(gn) {
            let o = g * stride + c * KV_CHUNK;
            scores[o..o + KV_CHUNK].copy_from_slice(sg);
        }
    }
}

/// Q8_0 value sums (module docs): positions in order; each block's row
/// is widened and scaled once for the whole group.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn values_q8_generic(
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
    let out = &mut out[..group * w];
    out.fill(0.0);
    for pos in 0..len {
        let (c, j) = (pos / KV_CHUNK, pos % KV_CHUNK);
        for b in cols.c0 / QK..cols.c1 / QK {
            let at = c * cs + b * V_BLOCK_BYTES;
            let vb = &v[at..at + V_BLOCK_BYTES];
            let d = q8_scale(vb, j);
            let row = &vb[V_QUANTS_AT + j * QK..V_QUANTS_AT + (j + 1) * QK];
            let mut vf = [0f32; QK];
            for (f, &x) in vf.iter_mut().zip(row) {
                *f = d * f32::from(x as i8);
            }
            let o0 = b * QK - cols.c0;
            for (g, o) in out.chunks_exact_mut(w).enumerate() {
                let p = probs[g * stride + pos];
                for (od, &x) in o[o0..o0 + QK].iter_mut().zip(&vf) {
                    *od += p * x;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Each line a chunk's prefetch covers is visited once, in order, and
    /// every byte the kernel reads (the whole key chunk, or the value
    /// columns' bytes) is in a visited line, for any alignment of the chunk.
    #[test]
    fn prefetch_visits_each_line_read_once() {
        use super::*;
        for (ty, hd) in [
            (GgmlType::F16, 64),
            (GgmlType::F32, 64),
            (GgmlType::F16, 80),
            (GgmlType::Q8_0, 64),
            (GgmlType::Q8_0, 96),
        ] {
            let pb = kv_pos_bytes(ty, hd).unwrap();
            let cb = KV_CHUNK * pb;
            let mut parts = vec![(true, 0..hd), (false, 0..hd)];
            for c in (0..hd).step_by(QK) {
                parts.push((false, c..(c + QK).min(hd)));
            }
            for base in [0usize, 4096, 4096 + 2, 4096 + 37, 4096 + 63] {
                for (key, cols) in parts.clone() {
                    let mut seen = Vec::new();
                    chunk_lines(ty, hd, base, cb, key, cols.clone(), |at| seen.push(at));
                    let line = |at: usize| (base + at) / 64;
                    assert!(seen.iter().all(|&at| at < cb), "{ty} {hd} {key}");
                    assert!(
                        seen.windows(2).all(|w| line(w[0]) < line(w[1])),
                        "{ty} {hd} {base} {key} {cols:?}: lines in order, once"
                    );
                    let read: Vec<usize> = if key {
                        (0..cb).collect()
                    } else if ty == GgmlType::Q8_0 {
                        (cols.start / QK * V_BLOCK_BYTES..cols.end.div_ceil(QK) * V_BLOCK_BYTES)
                            .collect()
                    } else {
                        let es = pb / hd;
                        (0..KV_CHUNK)
                            .flat_map(|j| j * pb + cols.start * es..j * pb + cols.end * es)
                            .collect()
                    };
                    let lines: std::collections::BTreeSet<usize> =
                        seen.iter().map(|&at| line(at)).collect();
                    assert!(
                        read.iter().all(|&b| lines.contains(&line(b))),
                        "{ty} {hd} {base} {key} {cols:?}: a byte read is in no line fetched"
                    );
                    assert_eq!(
                        lines.len(),
                        read.iter()
                            .map(|&b| line(b))
                            .collect::<std::collections::BTreeSet<_>>()
                            .len(),
                        "{ty} {hd} {base} {key} {cols:?}: only the lines read"
                    );
                }
            }
        }
    }

    use super::*;

    /// Every byte that a key or value write changes lies in a line that
    /// `row_lines` names, and every line it names holds a written byte
    /// (so `kv_prefetch` fetches what the write needs and nothing else).
    #[test]
    fn prefetched_lines_are_the_written_ones() {
        for ty in [GgmlType::F16, GgmlType::F32, GgmlType::Q8_0] {
            for hd in [32, 64, 96, 128] {
                let pb = kv_pos_bytes(ty, hd).unwrap();
                let src: Vec<f32> = (0..hd).map(|i| 1.0 + i as f32 / 3.0).collect();
                for j in [0, 1, 17, 63] {
                    for key in [true, false] {
                        // Bytes written: those changed from either fill.
                        let mut written = vec![false; KV_CHUNK * pb];
                        for fill in [0x55u8, 0xAA] {
                            let mut chunk = vec![fill; KV_CHUNK * pb];
                            write_row(ty, hd, &mut chunk, j, &src, key).unwrap();
                            for (w, &b) in written.iter_mut().zip(&chunk) {
                                *w |= b != fill;
                            }
                        }
                        let mut hinted = vec![false; (KV_CHUNK * pb).div_ceil(64)];
                        row_lines(ty, hd, j, key, |at| hinted[at / 64] = true).unwrap();
                        let mut holds = vec![false; hinted.len()];
                        for (at, _) in written.iter().enumerate().filter(|(_, &w)| w) {
                            assert!(hinted[at / 64], "{ty:?} hd {hd} j {j} key {key}: byte {at}");
                            holds[at / 64] = true;
                        }
                        assert_eq!(hinted, holds, "{ty:?} hd {hd} j {j} key {key}");
                    }
                }
            }
        }
        assert!(row_lines(GgmlType::F16, 64, KV_CHUNK, true, |_| ()).is_err());
        assert!(row_lines(GgmlType::Q4_0, 64, 0, true, |_| ()).is_err());
        let chunk = vec![0u8; KV_CHUNK * 128];
        assert!(kv_prefetch(GgmlType::F16, 64, &chunk, &chunk, 5).is_ok());
        assert!(kv_prefetch(GgmlType::F16, 64, &chunk[1..], &chunk, 5).is_err());
        assert!(kv_prefetch(GgmlType::F32, usize::MAX / 4, &chunk, &chunk, 0).is_err());
    }
}
