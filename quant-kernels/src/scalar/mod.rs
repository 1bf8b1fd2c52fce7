//! The scalar reference implementation: plain Rust, no `unsafe`, exact to
//! ggml's reference C (`dequantize_row_*`, `quantize_row_*_ref`,
//! `ggml_vec_dot_*_generic`). Kept forever as the oracle for the SIMD tiers.
//! Index loops mirror the C so the two can be read side by side.
#![allow(clippy::needless_range_loop)]

pub(crate) mod dequant;
pub(crate) mod dot;
pub(crate) mod quant;

use crate::dispatch::VecDotFn;
use crate::GgmlType;

/// A row dequantizer: `src` holds exactly the blocks for `dst.len()` elements.
pub(crate) type DequantFn = fn(&[u8], &mut [f32]);
/// A row quantizer: `dst` holds exactly the blocks for `src.len()` elements.
pub(crate) type QuantFn = fn(&[f32], &mut [u8]);

/// The scalar dequantizer for `ty`.
pub(crate) fn dequant_fn(ty: GgmlType) -> Option<DequantFn> {
    use GgmlType::*;
    Some(match ty {
        F32 => dequant::f32_row,
        F16 => dequant::f16_row,
        BF16 => dequant::bf16_row,
        Q4_0 => dequant::q4_0,
        Q4_1 => dequant::q4_1,
        Q5_0 => dequant::q5_0,
        Q5_1 => dequant::q5_1,
        Q8_0 => dequant::q8_0,
        Q8_1 => dequant::q8_1,
        Q2_K => dequant::q2_k,
        Q3_K => dequant::q3_k,
        Q4_K => dequant::q4_k,
        Q5_K => dequant::q5_k,
        Q6_K => dequant::q6_k,
        Q8_K => dequant::q8_k,
        IQ4_NL => dequant::iq4_nl,
        _ => return None,
    })
}

/// The scalar (reference) quantizer for `ty`.
pub(crate) fn quant_fn(ty: GgmlType) -> Option<QuantFn> {
    use GgmlType::*;
    Some(match ty {
        F32 => quant::f32_row,
        F16 => quant::f16_row,
        BF16 => quant::bf16_row,
        Q4_0 => quant::q4_0,
        Q4_1 => quant::q4_1,
        Q5_0 => quant::q5_0,
        Q5_1 => quant::q5_1,
        Q8_0 => quant::q8_0,
        Q8_1 => quant::q8_1,
        Q8_K => quant::q8_k,
        Q2_K => quant::q2_k,
        Q3_K => quant::q3_k,
        Q4_K => quant::q4_k,
        Q5_K => quant::q5_k,
        Q6_K => quant::q6_k,
        _ => return None,
    })
}

/// The scalar run-time activation quantizer for `ty`: ggml's CPU-backend
/// flavour for `Q8_0`/`Q8_1` (see [`quant::q8_0_act`]), the reference
/// quantizer for every other format.
pub(crate) fn act_quant_fn(ty: GgmlType) -> Option<QuantFn> {
    match ty {
        GgmlType::Q8_0 => Some(quant::q8_0_act),
        GgmlType::Q8_1 => Some(quant::q8_1_act),
        _ => quant_fn(ty),
    }
}

/// The scalar vec dot for weights of type `ty` against `vec_dot_type(ty)`.
pub(crate) fn vec_dot_fn(ty: GgmlType) -> Option<VecDotFn> {
    use GgmlType::*;
    Some(match ty {
        F32 => dot::f32_f32,
        F16 => dot::f16_f16,
        BF16 => dot::bf16_bf16,
        Q4_0 => dot::q4_0_q8_0,
        Q4_1 => dot::q4_1_q8_1,
        Q5_0 => dot::q5_0_q8_0,
        Q5_1 => dot::q5_1_q8_1,
        Q8_0 => dot::q8_0_q8_0,
        IQ4_NL => dot::iq4_nl_q8_0,
        Q2_K => dot::q2_k_q8_k,
        Q3_K => dot::q3_k_q8_k,
        Q4_K => dot::q4_k_q8_k,
        Q5_K => dot::q5_k_q8_k,
        Q6_K => dot::q6_k_q8_k,
        _ => return None,
    })
}
