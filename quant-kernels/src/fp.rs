//! Scalar float helpers that behave the same with and without `std`:
//! half/bfloat16 conversions (as ggml) and the few libm functions the
//! reference quantizers need (`roundf`, `sqrtf`), bit-exact to C.

/// f16 bits (little-endian bytes) to f32. Exact.
#[inline]
pub fn f16_to_f32(b: [u8; 2]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes(b)).to_f32()
}

/// f32 to f16 bytes, round to nearest even (as `GGML_FP32_TO_FP16`).
#[inline]
pub fn f32_to_f16(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_bits().to_le_bytes()
}

/// bf16 bits to f32. Exact.
#[inline]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

/// f32 to bf16 bits as ggml's `ggml_compute_fp32_to_bf16`: round to nearest
/// even; NaNs are truncated and forced quiet.
#[inline]
pub fn f32_to_bf16(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

/// C `roundf`: round half away from zero. (Sign of a zero result is not
/// preserved; callers convert to integers.)
#[inline]
pub fn roundf(x: f32) -> f32 {
    if x.is_nan() || x.abs() >= 8_388_608.0 {
        return x; // already integral, or NaN/inf
    }
    let t = (x as i32) as f32; // truncation; exact below 2^23
    let frac = x - t; // exact
    if frac >= 0.5 {
        t + 1.0
    } else if frac <= -0.5 {
        t - 1.0
    } else {
        t
    }
}

/// Round to nearest, ties to even (the default IEEE mode, as x86's
/// `vroundps` with `_MM_FROUND_TO_NEAREST_INT` and AArch64's `fcvtns`).
/// NaN and values of magnitude ≥ 2^23 (already integral) pass through.
#[inline]
pub fn round_ties_even(x: f32) -> f32 {
    const TWO23: f32 = 8_388_608.0;
    if x.is_nan() || x.abs() >= TWO23 {
        return x;
    }
    // |x| < 2^23: adding 2^23 leaves no fraction bits, so the sum is rounded
    // to an integer in the current (nearest-even) mode; both steps are exact
    // apart from that rounding.
    let r = (x.abs() + TWO23) - TWO23;
    if x.is_sign_negative() {
        -r
    } else {
        r
    }
}

/// ggml's `nearest_int`: round to nearest, ties to even, via the
/// `+ 12582912.0` trick. Valid for `|x| <= 4194303`.
#[inline]
pub fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    ((v.to_bits() & 0x007f_ffff) as i32) - 0x0040_0000
}

/// Correctly rounded `sqrtf` (IEEE), without `std`.
pub fn sqrtf(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 || x == f32::INFINITY {
        return x;
    }
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32;
    let mut m = bits & 0x007f_ffff;
    if e == 0 {
        // Subnormal: normalise so bit 23 is set.
        let shift = m.leading_zeros() - 8;
        m <<= shift;
        e = 1 - shift as i32;
    } else {
        m |= 0x0080_0000;
    }
    // x = m * 2^(e - 150), m in [2^23, 2^24).
    let mut exp = e - 150;
    let mut mm = m as u64;
    if exp & 1 != 0 {
        mm <<= 1;
        exp -= 1;
    }
    // sqrt(x) = sqrt(mm << 26) * 2^(exp/2 - 13); mm << 26 in [2^49, 2^51).
    let v = mm << 26;
    let (mut q, rem) = isqrt_rem(v);
    // q in [2^24, 2^26): keep 24 significant bits, round to nearest
    // (an exact tie is impossible for a square root).
    let mut scale = exp / 2 - 13;
    let drop = if q >= 1 << 25 { 2 } else { 1 };
    let half = 1u64 << (drop - 1);
    let low = q & ((1u64 << drop) - 1);
    q >>= drop;
    scale += drop;
    if low > half || (low == half && (rem != 0 || q & 1 == 1)) {
        q += 1;
        if q == 1 << 24 {
            q >>= 1;
            scale += 1;
        }
    }
    // value = q * 2^scale, q in [2^23, 2^24).
    let biased = scale + 23 + 127;
    f32::from_bits(((biased as u32) << 23) | (q as u32 & 0x007f_ffff))
}

/// Integer square root with remainder: `(q, v - q*q)`, `q = floor(sqrt(v))`.
fn isqrt_rem(v: u64) -> (u64, u64) {
    let mut rem = v;
    let mut res = 0u64;
    let mut bit = 1u64 << 62;
    while bit > v {
        bit >>= 2;
    }
    while bit != 0 {
        if rem >= res + bit {
            rem -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    (res, rem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqrtf_matches_std() {
        let mut s = 0x1234_5678u32;
        for _ in 0..2_000_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let x = f32::from_bits(s & 0x7fff_ffff);
            let a = sqrtf(x);
            let b = x.sqrt();
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{x:e}"
            );
        }
        for x in [
            0.0f32,
            -0.0,
            1.0,
            2.0,
            4.0,
            f32::MIN_POSITIVE,
            1e-45,
            f32::MAX,
            0.5,
        ] {
            assert_eq!(sqrtf(x).to_bits(), x.sqrt().to_bits(), "{x:e}");
        }
        assert!(sqrtf(-1.0).is_nan());
    }

    #[test]
    fn roundf_matches_std() {
        for x in [
            0.5f32,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.49999997,
            -0.49999997,
            126.5,
            -127.5,
            3.0,
            1e10,
            -0.0,
        ] {
            assert_eq!(roundf(x), x.round(), "{x}");
        }
        let mut s = 99u32;
        for _ in 0..200_000 {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let x = (s as i32) as f32 / 1e6;
            assert_eq!(roundf(x), x.round(), "{x}");
        }
    }

    #[test]
    fn nearest_int_ties_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-2.6), -3);
        assert_eq!(nearest_int(127.2), 127);
    }

    #[test]
    fn bf16_rounding() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        // Halfway 1 + 2^-8: ties to even (down).
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        // Halfway above an odd mantissa rounds up.
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        // NaN stays NaN, quiet.
        let n = f32_to_bf16(f32::from_bits(0x7f80_0001));
        assert!(bf16_to_f32(n).is_nan());
        assert_eq!(n & 0x40, 0x40);
        assert_eq!(f32_to_bf16(f32::INFINITY), 0x7f80);
        assert_eq!(f32_to_bf16(f32::MAX), 0x7f80); // rounds to inf, as ggml
    }
}
