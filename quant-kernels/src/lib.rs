//! Quantized block formats and kernels for Ember.
//!
//! `ember-quant` turns GGUF blocks into numbers. It knows nothing about
//! models. Without the `std` feature it is `no_std`.
//!
//! * [`blocks`]: the `#[repr(C)]`, alignment-1 block layouts, bit-compatible
//!   with ggml, and [`blocks::view`] to see `&[u8]` as `&[Block]`.
//! * [`dequantize_row`] / [`quantize_row`]: exact to ggml's
//!   `dequantize_row_*` / `quantize_row_*_ref` (the scalar reference; the
//!   dispatched SIMD versions, where a tier has them, are bit-exact to it).
//! * [`vec_dot`], [`gemv`], [`gemm`]: dot products of weight rows of type `ty`
//!   with activation rows of type [`vec_dot_type`]`(ty)`, on the dispatched
//!   [`Tier`] (see [`tier`]); the `*_with` variants take an explicit tier.
//!
//! Every entry point validates its lengths and returns an [`Error`] instead
//! of panicking; none allocates.
// Unit tests always link std (for Vec, formatting); the `std` feature alone
// decides detection, so `--no-default-features` tests exercise the no_std paths.
#![cfg_attr(not(any(feature = "std", test)), no_std)]

mod arch;
pub mod attn;
pub mod blocks;
mod dispatch;
mod error;
pub mod fp;
mod scalar;
mod types;
pub mod vecops;

use core::ops::Range;

pub use attn::{
    attn_prefetch, attn_scores, attn_scores_with, attn_values, attn_values_cols,
    attn_values_cols_with, attn_values_with, kv_pos_bytes, kv_prefetch, kv_write_key,
    kv_write_value, KV_CHUNK,
};
pub use dispatch::{cpu_features, resolve_tier, tier, try_tier, CpuFeatures, Tier};
pub use error::Error;
pub use types::{GgmlType, ALL_TYPES};
pub use vecops::{exp, round_f16, softmax, softmax_with, swiglu};

/// Bytes of a row of `n` elements of `ty`, or the matching error.
fn row_bytes(ty: GgmlType, n: usize) -> Result<usize, Error> {
    if !n.is_multiple_of(ty.block_size()) {
        return Err(Error::RowLength { ty, n });
    }
    (n / ty.block_size())
        .checked_mul(ty.type_size())
        .ok_or(Error::RowLength { ty, n })
}

fn expect_len(what: &'static str, expected: usize, got: usize) -> Result<(), Error> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::BufferSize {
            what,
            expected,
            got,
        })
    }
}

/// Decodes one row: `src` holds exactly the blocks for `dst.len()` elements.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), Error> {
    let f = dispatch::dequant_kernel(tier(), ty).ok_or(Error::Unsupported {
        ty,
        op: "dequantize",
    })?;
    let bytes = row_bytes(ty, dst.len())?;
    expect_len("dequantize_row: source bytes", bytes, src.len())?;
    f(src, dst);
    Ok(())
}

/// Encodes one row: `dst` receives exactly the blocks for `src.len()`
/// elements. Bit-exact to ggml's `quantize_row_*_ref` (supported: F32, F16,
/// BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q8_K, Q2_K..Q6_K).
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), Error> {
    let f = dispatch::quant_kernel(tier(), ty).ok_or(Error::Unsupported { ty, op: "quantize" })?;
    let bytes = row_bytes(ty, src.len())?;
    expect_len("quantize_row: destination bytes", bytes, dst.len())?;
    f(src, dst);
    Ok(())
}

/// Encodes one activation row for [`vec_dot`]/[`gemv`]/[`gemm`] the way
/// ggml's CPU backend does at run time, so that a model's outputs track
/// llama.cpp's: for `Q8_0` and `Q8_1`, `d = amax / 127` with the quants
/// `round_ties_even(x · (127 / amax))` (its SIMD `quantize_row_q8_0/1`),
/// where the `_ref` weight quantizer ([`quantize_row`]) uses `x · (1 / d)`
/// rounded half away from zero; the two differ by one step on rare elements.
/// Every other type is encoded as by [`quantize_row`]. All tiers give the
/// same bytes.
pub fn quantize_row_act(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), Error> {
    quantize_row_act_with(tier(), ty, src, dst)
}

/// [`quantize_row_act`] on tier `t` (an error if the CPU lacks it).
pub fn quantize_row_act_with(
    t: Tier,
    ty: GgmlType,
    src: &[f32],
    dst: &mut [u8],
) -> Result<(), Error> {
    dispatch::check_tier(t)?;
    let f = dispatch::act_quant_kernel(t, ty).ok_or(Error::Unsupported { ty, op: "quantize" })?;
    let bytes = row_bytes(ty, src.len())?;
    expect_len("quantize_row_act: destination bytes", bytes, dst.len())?;
    f(src, dst);
    Ok(())
}

/// The activation format that pairs with weights of type `ty` (Q8_0 for
/// Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for Q4_1/Q5_1, Q8_K for K-quants, F16 for
/// F16, BF16 for BF16, F32 for F32), `None` if no dot kernel.
///
/// Activation rows are expected as [`quantize_row`] makes them: their
/// Q8_0 and Q8_1 quants lie in [-127, 127] (ggml's quantizers never write
/// -128 there either). The x86-64 Q8_0 · Q8_0 dots rely on it, as ggml's
/// do: they multiply |w| by y carrying w's sign, and a y of -128 would
/// come out with the wrong sign.
pub fn vec_dot_type(ty: GgmlType) -> Option<GgmlType> {
    use GgmlType::*;
    Some(match ty {
        F32 => F32,
        F16 => F16,
        BF16 => BF16,
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL => Q8_0,
        Q4_1 | Q5_1 => Q8_1,
        Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => Q8_K,
        _ => return None,
    })
}

/// Kernels and row sizes for a (tier, type, k) triple.
struct Plan {
    k: dispatch::Kernels,
    w_row: usize,
    x_row: usize,
}

fn plan(t: Tier, ty: GgmlType, k: usize) -> Result<Plan, Error> {
    dispatch::check_tier(t)?;
    let unsupported = Error::Unsupported { ty, op: "dot" };
    let xt = vec_dot_type(ty).ok_or(unsupported.clone())?;
    let kern = dispatch::kernels_cached(t, ty).ok_or(unsupported)?;
    let w_row = row_bytes(ty, k)?;
    let x_row = row_bytes(xt, k)?;
    Ok(Plan {
        k: kern,
        w_row,
        x_row,
    })
}

/// Dot of one weight row (type `ty`, `n` elements) with one activation row
/// (type `vec_dot_type(ty)`), using the dispatched tier.
pub fn vec_dot(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> Result<f32, Error> {
    vec_dot_with(try_tier()?, ty, n, w, x)
}

/// [`vec_dot`] on an explicit tier (`Error::Tier` if it cannot run here).
pub fn vec_dot_with(t: Tier, ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> Result<f32, Error> {
    let p = plan(t, ty, n)?;
    expect_len("vec_dot: weight row bytes", p.w_row, w.len())?;
    expect_len("vec_dot: activation row bytes", p.x_row, x.len())?;
    Ok((p.k.vec_dot)(n, w, x))
}

/// The bytes of rows `rows` of a row-major matrix `w` with rows of `w_row` bytes.
fn row_slice<'a>(w: &'a [u8], w_row: usize, rows: &Range<usize>) -> Result<&'a [u8], Error> {
    if rows.start > rows.end {
        return Err(Error::RowRange {
            start: rows.start,
            end: rows.end,
            rows: w.len().checked_div(w_row).unwrap_or(0),
        });
    }
    if w_row == 0 {
        return Ok(&[]);
    }
    if !w.len().is_multiple_of(w_row) {
        return Err(Error::BufferSize {
            what: "weight matrix bytes (not a whole number of rows)",
            expected: w.len() / w_row * w_row,
            got: w.len(),
        });
    }
    let n_rows = w.len() / w_row;
    if rows.end > n_rows {
        return Err(Error::RowRange {
            start: rows.start,
            end: rows.end,
            rows: n_rows,
        });
    }
    Ok(&w[rows.start * w_row..rows.end * w_row])
}

/// Matrix-vector: `w` holds a whole row-major matrix of rows of `k` elements
/// in type `ty`; for `r` in `rows`, `y[r - rows.start] = dot(row r, x)`. `x`
/// is one activation row in `vec_dot_type(ty)`.
pub fn gemv(
    ty: GgmlType,
    w: &[u8],
    k: usize,
    rows: Range<usize>,
    x: &[u8],
    y: &mut [f32],
) -> Result<(), Error> {
    gemv_with(try_tier()?, ty, w, k, rows, x, y)
}

/// [`gemv`] on an explicit tier (`Error::Tier` if it cannot run here).
pub fn gemv_with(
    t: Tier,
    ty: GgmlType,
    w: &[u8],
    k: usize,
    rows: Range<usize>,
    x: &[u8],
    y: &mut [f32],
) -> Result<(), Error> {
    let p = plan(t, ty, k)?;
    let ws = row_slice(w, p.w_row, &rows)?;
    expect_len("gemv: activation row bytes", p.x_row, x.len())?;
    expect_len("gemv: output length", rows.len(), y.len())?;
    if p.w_row == 0 {
        y.fill(0.0);
        return Ok(());
    }
    match p.k.gemv {
        Some(g) => g(k, ws, x, y),
        None => {
            for (o, wr) in y.iter_mut().zip(ws.chunks_exact(p.w_row)) {
                *o = (p.k.vec_dot)(k, wr, x);
            }
        }
    }
    Ok(())
}

/// Matrix-matrix for prompt batches: `x` holds `n` activation rows (each
/// `row_bytes(vec_dot_type, k)` bytes, contiguous); output is row-major by
/// weight row: `y[(r - rows.start) * n + j] = dot(row r, x_j)`.
pub fn gemm(
    ty: GgmlType,
    w: &[u8],
    k: usize,
    rows: Range<usize>,
    x: &[u8],
    n: usize,
    y: &mut [f32],
) -> Result<(), Error> {
    gemm_in_with(try_tier()?, ty, w, k, rows, x, n, y, &mut [])
}

/// [`gemm`] on an explicit tier (`Error::Tier` if it cannot run here).
#[allow(clippy::too_many_arguments)]
pub fn gemm_with(
    t: Tier,
    ty: GgmlType,
    w: &[u8],
    k: usize,
    rows: Range<usize>,
    x: &[u8],
    n: usize,
    y: &mut [f32],
) -> Result<(), Error> {
    gemm_in_with(t, ty, w, k, rows, x, n, y, &mut [])
}

/// The f32 scratch with which [`gemm_in`] runs every tier's kernel for
/// weights of type `ty` (rows of `k`) on `n` columns at its fastest: 0
/// where no kernel uses one. Plan it once and pass it to each call.
pub fn gemm_scratch_len(ty: GgmlType, k: usize, n: usize) -> usize {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if ty == GgmlType::F16 {
        return arch::f16gemm::scratch_len(k, n);
    }
    let _ = (ty, k, n);
    0
}

/// [`gemm`] with a caller's `scratch` for the kernels that convert the
/// activations once per call (see [`gemm_scratch_len`]). Any length works,
/// and the result is the same bits whatever the length; a shorter one may
/// be slower.
#[allow(clippy::too_many_arguments)]
pub fn gemm_in(
    ty: GgmlType,
    w: &[u8],
    k: usize,
    rows: Range<usize>,
    x: &[u8],
    n: usize,
    y: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    gemm_in_with(try_tier()?, ty, w, k, rows, x, n, y, scratch)
}

/// [`gemm_in`] on an explicit tier (`Error::Tier` if it cannot run here).
#[allow(clippy::too_many_arguments)]
pub fn gemm_in_with(
    t: Tier,
    ty: GgmlType,
    w: &[u8],
    k: usize,
    rows: Range<usize>,
    x: &[u8],
    n: usize,
    y: &mut [f32],
    scratch: &mut [f32],
) -> Result<(), Error> {
    let p = plan(t, ty, k)?;
    let ws = row_slice(w, p.w_row, &rows)?;
    let x_bytes = p.x_row.checked_mul(n).ok_or(Error::BufferSize {
        what: "gemm: activation bytes (overflow)",
        expected: usize::MAX,
        got: x.len(),
    })?;
    expect_len("gemm: activation bytes", x_bytes, x.len())?;
    let y_len = rows.len().checked_mul(n).ok_or(Error::BufferSize {
        what: "gemm: output length (overflow)",
        expected: usize::MAX,
        got: y.len(),
    })?;
    expect_len("gemm: output length", y_len, y.len())?;
    if p.w_row == 0 || n == 0 {
        y.fill(0.0);
        return Ok(());
    }
    match p.k.gemm {
        Some(g) => g(k, ws, x, n, y, scratch),
        None => {
            // Row-major by weight row; each weight row stays hot across the batch.
            for (yr, wr) in y.chunks_exact_mut(n).zip(ws.chunks_exact(p.w_row)) {
                for (o, xr) in yr.iter_mut().zip(x.chunks_exact(p.x_row)) {
                    *o = (p.k.vec_dot)(k, wr, xr);
                }
            }
        }
    }
    Ok(())
}

/// Support for the benches; not a stable API.
#[doc(hidden)]
pub mod bench_support {
    /// Wrapping sum of the little-endian u64 words of `buf` (a trailing
    /// partial word is ignored): a single-thread read-bandwidth probe, with
    /// 256-bit loads where the CPU has AVX2.
    pub fn sum_u64_words(buf: &[u8]) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if let Some(s) = crate::arch::x86_64::avx2::sum_u64_words(buf) {
            return s;
        }
        buf.chunks_exact(8).fold(0u64, |s, w| {
            s.wrapping_add(u64::from_le_bytes([
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
            ]))
        })
    }
}

#[cfg(test)]
mod tests;
