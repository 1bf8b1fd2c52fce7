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
//! Elements are F16 (the cache's default, as llama.cpp) or F32; queries,
//! probabilities and outputs are f32. Every tier accumulates in f32 in the
//! same order; tiers with FMA round once per step where the scalar reference
//! rounds twice, so they agree within a few ulp of `Σ|q·k|` (the
//! conformance tests state the bound).

use crate::{dispatch, Error, GgmlType, Tier};

/// Positions per chunk of the chunk-transposed key layout.
pub const KV_CHUNK: usize = 64;

/// Scores kernel: `group` queries of `hd` (`q`, `[g][d]`) against `nch`
/// chunks of keys (`k`); writes `scores[g * stride + p]` for `p < nch *
/// KV_CHUNK`. Sizes validated by the caller.
pub(crate) type ScoresFn =
    fn(hd: usize, group: usize, q: &[f32], k: &[u8], nch: usize, scores: &mut [f32], stride: usize);

/// Values kernel: `out[g * hd + d] = Σ_{pos < len} probs[g * stride + pos] ·
/// v[pos][d]`. Sizes validated by the caller.
pub(crate) type ValuesFn = fn(
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    len: usize,
    out: &mut [f32],
);

/// The attention kernels of one tier for one element type.
#[derive(Clone, Copy)]
pub(crate) struct AttnKernels {
    pub scores: ScoresFn,
    pub values: ValuesFn,
}

/// Bytes per cache element, or an error for an unsupported type.
fn elem_bytes(ty: GgmlType) -> Result<usize, Error> {
    match ty {
        GgmlType::F16 => Ok(2),
        GgmlType::F32 => Ok(4),
        _ => Err(Error::Unsupported {
            ty,
            op: "attention",
        }),
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

fn kernels_for(t: Tier, ty: GgmlType) -> Result<AttnKernels, Error> {
    dispatch::check_tier(t)?;
    elem_bytes(ty)?;
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
/// elements of type `ty` (F16 or F32).
#[allow(clippy::too_many_arguments)]
pub fn attn_scores(
    ty: GgmlType,
    hd: usize,
    group: usize,
    q: &[f32],
    k: &[u8],
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
    len: usize,
    scores: &mut [f32],
    stride: usize,
) -> Result<(), Error> {
    let kern = kernels_for(t, ty)?;
    let es = elem_bytes(ty)?;
    let nch = len.div_ceil(KV_CHUNK);
    let span = nch * KV_CHUNK;
    let overflow = "attn_scores: sizes overflow";
    let k_need = product(overflow, &[span, hd, es])?;
    let q_need = product(overflow, &[group, hd])?;
    check("attn_scores: key bytes", k_need, k.len())?;
    check("attn_scores: queries", q_need, q.len())?;
    check("attn_scores: stride", span, stride)?;
    if group == 0 || hd == 0 || nch == 0 {
        return Ok(());
    }
    let s_need = span_of(overflow, group, stride, span)?;
    check("attn_scores: score buffer", s_need, scores.len())?;
    (kern.scores)(hd, group, &q[..q_need], &k[..k_need], nch, scores, stride);
    Ok(())
}

/// Attention values: `out[g * hd + d] = Σ_{pos < len} probs[g * stride +
/// pos] · v[pos][d]`, with `v` stored by position (`[pos][dim]`, elements of
/// type `ty`, F16 or F32).
#[allow(clippy::too_many_arguments)]
pub fn attn_values(
    ty: GgmlType,
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    len: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    attn_values_with(
        dispatch::try_tier()?,
        ty,
        hd,
        group,
        probs,
        stride,
        v,
        len,
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
    len: usize,
    out: &mut [f32],
) -> Result<(), Error> {
    let kern = kernels_for(t, ty)?;
    let es = elem_bytes(ty)?;
    let overflow = "attn_values: sizes overflow";
    let v_need = product(overflow, &[len, hd, es])?;
    let o_need = product(overflow, &[group, hd])?;
    check("attn_values: value bytes", v_need, v.len())?;
    check("attn_values: output", o_need, out.len())?;
    check("attn_values: stride", len, stride)?;
    let out = &mut out[..o_need];
    if group == 0 || hd == 0 {
        return Ok(());
    }
    if len == 0 {
        out.fill(0.0);
        return Ok(());
    }
    let p_need = span_of(overflow, group, stride, len)?;
    check("attn_values: probabilities", p_need, probs.len())?;
    (kern.values)(hd, group, probs, stride, &v[..v_need], len, out);
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
    out: &mut [f32],
) {
    if f16 {
        values_ref::<2>(hd, group, probs, stride, v, len, out)
    } else {
        values_ref::<4>(hd, group, probs, stride, v, len, out)
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

fn scores_ref<const ES: usize>(
    hd: usize,
    group: usize,
    q: &[f32],
    k: &[u8],
    nch: usize,
    scores: &mut [f32],
    stride: usize,
) {
    let cb = hd * KV_CHUNK * ES;
    for c in 0..nch {
        let kc = &k[c * cb..(c + 1) * cb];
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

fn values_ref<const ES: usize>(
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    len: usize,
    out: &mut [f32],
) {
    out.fill(0.0);
    for g in 0..group {
        let o = &mut out[g * hd..(g + 1) * hd];
        for pos in 0..len {
            let w = probs[g * stride + pos];
            let row = &v[pos * hd * ES..(pos + 1) * hd * ES];
            for (d, od) in o.iter_mut().enumerate() {
                *od += w * elem::<ES>(row, d);
            }
        }
    }
}
