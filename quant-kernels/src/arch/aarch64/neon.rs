//! AArch64 NEON (Advanced SIMD) kernels: the Raspberry Pi 4 (Cortex-A72) tier.
//!
//! * Integer vec dots (whole blocks) for `Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`,
//!   `Q8_0` (against `Q8_0`/`Q8_1`) and `Q4_K`, `Q5_K`, `Q6_K` (against
//!   `Q8_K`), plus 4-row gemvs for `Q4_0`, `Q4_1`, `Q8_0`; the bodies are
//!   shared with the dotprod tier (`int8_kernels!`), the 16-byte dot here is
//!   `smull`/`smull2` + `sadalp`.
//! * `F16·F16` and `F32·F32` (f32 lanes, `fcvtl` for halves); the F16
//!   prompt-batch gemm is [`crate::arch::f16gemm`] on [`Q`] lanes.
//! * Bit-exact row quantizers for `Q8_0`, `Q8_1`, `Q8_K` (used by every
//!   AArch64 tier through the dispatcher's fallback).
//!
//! Soundness: the `#[target_feature]` functions here are reached only through
//! the safe wrappers, and those only through [`kernels`] / [`quant_fn`], which
//! hand them out only after checking that the CPU has NEON.

use super::common::{int8_kernels, st_i8};
use super::has;
use crate::arch::f16gemm::{self, Lanes};
use crate::dispatch::Kernels;
use crate::scalar::QuantFn;
use crate::GgmlType;

int8_kernels!("neon");

/// `acc` plus the 16 products `a[i] * b[i]` (widening multiplies, then
/// pairwise accumulation; no overflow for any inputs).
#[target_feature(enable = "neon")]
#[inline]
fn dot16(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    let hi = vmull_high_s8(a, b);
    vpadalq_s16(vpadalq_s16(acc, lo), hi)
}

/// This tier's kernels for weights of type `ty`; `None` if it has none of
/// its own (or the CPU lacks NEON).
pub(crate) fn kernels(ty: GgmlType) -> Option<Kernels> {
    if !has("neon") {
        return None;
    }
    match ty {
        GgmlType::F16 => Some(Kernels {
            gemm: Some(f16_gemm),
            ..Kernels::dot(f16_f16)
        }),
        GgmlType::F32 => Some(Kernels::dot(f32_f32)),
        _ => int8_kernels(ty),
    }
}

/// This tier's row quantizers (bit-exact with the scalar reference for
/// finite input); `None` for other types or without NEON.
pub(crate) fn quant_fn(ty: GgmlType) -> Option<QuantFn> {
    if !has("neon") {
        return None;
    }
    match ty {
        GgmlType::Q8_0 => Some(quant_q8_0),
        GgmlType::Q8_1 => Some(quant_q8_1),
        GgmlType::Q8_K => Some(quant_q8_k),
        _ => None,
    }
}

fn f16_f16(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: only handed out by `kernels`, after it checked NEON.
    unsafe { vec_dot_f16(w, x) }
}

fn f32_f32(_n: usize, w: &[u8], x: &[u8]) -> f32 {
    // SAFETY: only handed out by `kernels`, after it checked NEON.
    unsafe { vec_dot_f32(w, x) }
}

fn f16_gemm(k: usize, w: &[u8], x: &[u8], n: usize, y: &mut [f32], scratch: &mut [f32]) {
    // SAFETY: only handed out by `kernels`, after it checked NEON; sizes
    // validated by the caller.
    unsafe { f16_batch(k, w, x, n, y, scratch) }
}

/// Tile of the NEON F16 gemm: rows × columns (24 accumulators, 4 column
/// vectors and 1 row vector of the 32 registers; 10 loads per 24 FMAs).
const F16_R: usize = 6;
const F16_C: usize = 4;

f16gemm::tier_gemm! {
    /// [`f16gemm::gemm`] on 4 lanes.
    fn f16_batch: "neon", Q, F16_R, F16_C
}

/// 4 f32 lanes for [`crate::arch::f16gemm`].
#[derive(Clone, Copy)]
pub(crate) struct Q(float32x4_t);

impl Lanes for Q {
    const N: usize = 4;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: NEON (caller).
        Q(unsafe { vdupq_n_f32(0.0) })
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: caller's contract (4 readable f32; `ld1` needs no alignment).
        Q(unsafe { vld1q_f32(p) })
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: NEON (caller).
        Q(unsafe { vfmaq_f32(c.0, a.0, b.0) })
    }
    #[inline(always)]
    unsafe fn sums<const R: usize>(v: &[Self; R]) -> [f32; R] {
        // SAFETY: NEON (caller).
        v.map(|x| unsafe { vaddvq_f32(x.0) })
    }
    #[inline(always)]
    unsafe fn convert(src: *const u8, kc: usize, dst: *mut f32) {
        use super::common::{f16, f16x8};
        // SAFETY: within the caller's bounds: 8-element groups below kc,
        // then single elements, then zeros up to a whole vector.
        unsafe {
            let mut i = 0;
            while i + 8 <= kc {
                let (lo, hi) = f16x8(vld1q_u16(src.add(2 * i).cast()));
                vst1q_f32(dst.add(i), lo);
                vst1q_f32(dst.add(i + 4), hi);
                i += 8;
            }
            while i < kc {
                *dst.add(i) = f16([*src.add(2 * i), *src.add(2 * i + 1)]);
                i += 1;
            }
            while i < kc.next_multiple_of(4) {
                *dst.add(i) = 0.0;
                i += 1;
            }
        }
    }
}

/// This tier's run-time activation quantizers (bit-exact with
/// `scalar::act_quant_fn`); `None` for other types or without NEON.
pub(crate) fn act_quant_fn(ty: GgmlType) -> Option<QuantFn> {
    if !has("neon") {
        return None;
    }
    match ty {
        GgmlType::Q8_0 => Some(act_q8_0),
        GgmlType::Q8_1 => Some(act_q8_1),
        _ => quant_fn(ty),
    }
}

fn quant_q8_0(src: &[f32], dst: &mut [u8]) {
    // SAFETY: only handed out by `quant_fn`, after it checked NEON.
    unsafe { quantize_q8_0::<false>(src, crate::blocks::blocks_mut(dst)) }
}

fn quant_q8_1(src: &[f32], dst: &mut [u8]) {
    // SAFETY: only handed out by `quant_fn`, after it checked NEON.
    unsafe { quantize_q8_1::<false>(src, crate::blocks::blocks_mut(dst)) }
}

fn act_q8_0(src: &[f32], dst: &mut [u8]) {
    // SAFETY: only handed out by `act_quant_fn`, after it checked NEON.
    unsafe { quantize_q8_0::<true>(src, crate::blocks::blocks_mut(dst)) }
}

fn act_q8_1(src: &[f32], dst: &mut [u8]) {
    // SAFETY: only handed out by `act_quant_fn`, after it checked NEON.
    unsafe { quantize_q8_1::<true>(src, crate::blocks::blocks_mut(dst)) }
}

fn quant_q8_k(src: &[f32], dst: &mut [u8]) {
    // SAFETY: only handed out by `quant_fn`, after it checked NEON.
    unsafe { quantize_q8_k(src, crate::blocks::blocks_mut(dst)) }
}

/// `F16 · F16` over `w.len() / 2` elements: 16 per step into four f32
/// accumulators (halves widened exactly with `fcvtl`), scalar tail.
#[target_feature(enable = "neon")]
fn vec_dot_f16(w: &[u8], x: &[u8]) -> f32 {
    use super::common::f16x8;
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut wc = w.chunks_exact(32);
    let mut xc = x.chunks_exact(32);
    for (a, b) in (&mut wc).zip(&mut xc) {
        let (a0, a1) = f16x8(vreinterpretq_u16_u8(ld_u8(&a[..16])));
        let (a2, a3) = f16x8(vreinterpretq_u16_u8(ld_u8(&a[16..])));
        let (b0, b1) = f16x8(vreinterpretq_u16_u8(ld_u8(&b[..16])));
        let (b2, b3) = f16x8(vreinterpretq_u16_u8(ld_u8(&b[16..])));
        acc[0] = vfmaq_f32(acc[0], a0, b0);
        acc[1] = vfmaq_f32(acc[1], a1, b1);
        acc[2] = vfmaq_f32(acc[2], a2, b2);
        acc[3] = vfmaq_f32(acc[3], a3, b3);
    }
    let mut tail = 0.0f32;
    for (a, b) in wc
        .remainder()
        .chunks_exact(2)
        .zip(xc.remainder().chunks_exact(2))
    {
        tail += f16([a[0], a[1]]) * f16([b[0], b[1]]);
    }
    let s = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
    vaddvq_f32(s) + tail
}

/// `F32 · F32` over `w.len() / 4` elements (little-endian bytes), 16 per
/// step into four accumulators, scalar tail.
#[target_feature(enable = "neon")]
fn vec_dot_f32(w: &[u8], x: &[u8]) -> f32 {
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut wc = w.chunks_exact(64);
    let mut xc = x.chunks_exact(64);
    for (a, b) in (&mut wc).zip(&mut xc) {
        for (i, s) in acc.iter_mut().enumerate() {
            let av = vreinterpretq_f32_u8(ld_u8(&a[16 * i..16 * i + 16]));
            let bv = vreinterpretq_f32_u8(ld_u8(&b[16 * i..16 * i + 16]));
            *s = vfmaq_f32(*s, av, bv);
        }
    }
    let mut tail = 0.0f32;
    for (a, b) in wc
        .remainder()
        .chunks_exact(4)
        .zip(xc.remainder().chunks_exact(4))
    {
        let a = f32::from_le_bytes([a[0], a[1], a[2], a[3]]);
        let b = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        tail += a * b;
    }
    let s = vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3]));
    vaddvq_f32(s) + tail
}

/// Saturating narrow of four i32x4 to 16 i8 (as `as i8` on in-range values).
#[target_feature(enable = "neon")]
#[inline]
fn narrow16(v: [int32x4_t; 4]) -> int8x16_t {
    let a = vqmovn_high_s32(vqmovn_s32(v[0]), v[1]);
    let b = vqmovn_high_s32(vqmovn_s32(v[2]), v[3]);
    vqmovn_high_s16(vqmovn_s16(a), b)
}

/// `x[0..32]` times `id`, rounded half away from zero (`roundf`), or to
/// nearest even with `EVEN`, as 32 i8.
#[target_feature(enable = "neon")]
#[inline]
fn round32<const EVEN: bool>(x: &[f32], id: f32) -> (int8x16_t, int8x16_t) {
    let q = |o: usize| {
        [0, 4, 8, 12].map(|i| {
            let v = vmulq_n_f32(ld_f32(&x[o + i..]), id);
            if EVEN {
                vcvtnq_s32_f32(v)
            } else {
                vcvtaq_s32_f32(v)
            }
        })
    };
    (narrow16(q(0)), narrow16(q(16)))
}

/// `(d, id, round-to-even)` of a block: the weight (`_ref`) flavour
/// `id = 1 / d`, half away from zero, or with `ACT` ggml's run-time
/// activation flavour `id = 127 / amax`, ties to even.
#[target_feature(enable = "neon")]
#[inline]
fn q8_scale<const ACT: bool>(x: &[f32]) -> (f32, f32) {
    let amax = absmax32(x);
    let d = amax / 127.0;
    let id = if ACT {
        if amax != 0.0 {
            127.0 / amax
        } else {
            0.0
        }
    } else if d != 0.0 {
        1.0 / d
    } else {
        0.0
    };
    (d, id)
}

/// `max |x|` over 32 values (exact; NaN-free input).
#[target_feature(enable = "neon")]
#[inline]
fn absmax32(x: &[f32]) -> f32 {
    let mut m = vdupq_n_f32(0.0);
    for i in (0..32).step_by(4) {
        m = vmaxq_f32(m, vabsq_f32(ld_f32(&x[i..])));
    }
    vmaxvq_f32(m)
}

/// As the scalar `q8_0`: `d = amax / 127`, `q = roundf(x / d)`; with `ACT`
/// as the scalar `q8_0_act`.
#[target_feature(enable = "neon")]
fn quantize_q8_0<const ACT: bool>(src: &[f32], dst: &mut [crate::blocks::BlockQ8_0]) {
    for (b, x) in dst.iter_mut().zip(src.chunks_exact(32)) {
        let (d, id) = q8_scale::<ACT>(x);
        b.d = crate::fp::f32_to_f16(d);
        let (lo, hi) = round32::<ACT>(x, id);
        st_i8(&mut b.qs[..16], lo);
        st_i8(&mut b.qs[16..], hi);
    }
}

/// As the scalar `q8_1` (or `q8_1_act` with `ACT`), plus `s = d * sum(q)`.
#[target_feature(enable = "neon")]
fn quantize_q8_1<const ACT: bool>(src: &[f32], dst: &mut [crate::blocks::BlockQ8_1]) {
    for (b, x) in dst.iter_mut().zip(src.chunks_exact(32)) {
        let (d, id) = q8_scale::<ACT>(x);
        b.d = crate::fp::f32_to_f16(d);
        let (lo, hi) = round32::<ACT>(x, id);
        st_i8(&mut b.qs[..16], lo);
        st_i8(&mut b.qs[16..], hi);
        let sum = vaddlvq_s8(lo) as i32 + vaddlvq_s8(hi) as i32;
        b.s = crate::fp::f32_to_f16(sum as f32 * d);
    }
}

/// As the scalar `q8_k`: the signed value of largest magnitude (the first
/// on ties) sets `iscale = -127 / max`; quants round to nearest even.
#[target_feature(enable = "neon")]
fn quantize_q8_k(src: &[f32], dst: &mut [crate::blocks::BlockQ8K]) {
    use crate::blocks::QK_K;
    for (b, x) in dst.iter_mut().zip(src.chunks_exact(QK_K)) {
        let mut m = vdupq_n_f32(0.0);
        for i in (0..QK_K).step_by(4) {
            m = vmaxnmq_f32(m, vabsq_f32(ld_f32(&x[i..])));
        }
        let amax = vmaxvq_f32(m);
        if amax == 0.0 {
            *b = bytemuck::Zeroable::zeroed();
            continue;
        }
        // The first element with |v| == amax, 16 at a time.
        let av = vdupq_n_f32(amax);
        let mut max = amax;
        for c in x.chunks_exact(16) {
            let hit = [0, 4, 8, 12].map(|i| vceqq_f32(vabsq_f32(ld_f32(&c[i..])), av));
            let any = vorrq_u32(vorrq_u32(hit[0], hit[1]), vorrq_u32(hit[2], hit[3]));
            if vmaxvq_u32(any) != 0 {
                if let Some(&v) = c.iter().find(|v| v.abs() == amax) {
                    max = v;
                }
                break;
            }
        }
        let iscale = -127.0 / max;
        let top = vdupq_n_s32(127);
        for (j, c) in x.chunks_exact(16).enumerate() {
            let q = [0, 4, 8, 12]
                .map(|i| vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(ld_f32(&c[i..]), iscale)), top));
            let q = narrow16(q);
            st_i8(&mut b.qs[16 * j..16 * j + 16], q);
            let s = vaddlvq_s8(q);
            b.bsums[2 * j..2 * j + 2].copy_from_slice(&s.to_le_bytes());
        }
        b.d = (1.0 / iscale).to_le_bytes();
    }
}
