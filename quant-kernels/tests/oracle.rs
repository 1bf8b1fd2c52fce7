//! External oracle: `ember-quant`'s scalar reference against gguf-py 0.19.0.
//!
//! The fixtures in `tests/fixtures/` were written by
//! `tools/gen_quant_fixtures.py` (see `tests/fixtures/README.md`); Python is
//! not needed to run these tests.
//!
//! * Dequantization is checked **bit-exact** for every format gguf-py can
//!   decode and Ember implements (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
//!   Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL), on random valid blocks and on
//!   gguf-py's own quantizer output.
//! * Quantization is checked **bit-exact** (every output byte) for F16, BF16,
//!   Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0, whose gguf-py quantizers mirror ggml's
//!   `quantize_row_*_ref`.
//!
//! "Bit-exact" compares `f32::to_bits`, except that any NaN matches any NaN:
//! the bits of a NaN made by arithmetic (`inf * 0` when an f16 scale
//! overflowed) depend on the CPU (x86's default NaN is negative, AArch64's
//! positive), not on the code under test.

use ember_quant::{dequantize_row, quantize_row, GgmlType};

/// One parsed fixture file (layout: see `tools/gen_quant_fixtures.py`).
struct Fixture {
    ty: GgmlType,
    /// The f32 rows gguf-py quantized (quant fixtures only).
    input: Option<Vec<f32>>,
    /// Quantized bytes: gguf-py's output (quant) or random valid blocks (dequant).
    bytes: Vec<u8>,
    /// gguf-py's dequantization of `bytes`.
    dequant: Vec<f32>,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn parse(name: &str, raw: &[u8]) -> Fixture {
    assert_eq!(&raw[..4], b"EMQF", "{name}: bad magic");
    assert_eq!(u32_at(raw, 4), 1, "{name}: unknown fixture version");
    let ty = GgmlType::from_id(u32_at(raw, 8)).expect("known type id");
    let kind = u32_at(raw, 12);
    let n = u32_at(raw, 16) as usize;
    let n_bytes = u32_at(raw, 20) as usize;
    assert_eq!(
        ty.row_bytes(n as u64),
        Some(n_bytes as u64),
        "{name}: {n} elements of {ty} are not {n_bytes} bytes"
    );
    let mut off = 24;
    let input = (kind == 1).then(|| {
        let v = f32s(&raw[off..off + 4 * n]);
        off += 4 * n;
        v
    });
    let bytes = raw[off..off + n_bytes].to_vec();
    off += n_bytes;
    let dequant = f32s(&raw[off..off + 4 * n]);
    off += 4 * n;
    assert_eq!(off, raw.len(), "{name}: trailing bytes");
    Fixture {
        ty,
        input,
        bytes,
        dequant,
    }
}

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn assert_f32_bits(what: &str, ty: GgmlType, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    let bs = ty.block_size();
    let bad: Vec<usize> = (0..got.len()).filter(|&i| !same(got[i], want[i])).collect();
    if let Some(&first) = bad.first() {
        let show: Vec<String> = bad
            .iter()
            .take(8)
            .map(|&i| {
                format!(
                    "[{i} (block {}, elem {})] ember {:e} ({:#010x}) vs gguf-py {:e} ({:#010x})",
                    i / bs,
                    i % bs,
                    got[i],
                    got[i].to_bits(),
                    want[i],
                    want[i].to_bits()
                )
            })
            .collect();
        panic!(
            "{what} {ty}: {} of {} values differ from gguf-py, first at {first}:\n  {}",
            bad.len(),
            got.len(),
            show.join("\n  ")
        );
    }
}

fn check_dequant(what: &str, f: &Fixture) {
    let mut out = vec![0f32; f.dequant.len()];
    dequantize_row(f.ty, &f.bytes, &mut out).unwrap();
    assert_f32_bits(what, f.ty, &out, &f.dequant);
}

/// Known, deliberate differences between gguf-py and ggml's C reference
/// (Ember follows ggml). Returns a description if `ours`/`theirs` differ only
/// in such a way for this block.
///
/// * Q4_0/Q5_0 of a block of zeros that starts with `-0.0`: ggml starts its
///   signed-absmax search at `max = 0.0f` and never replaces it, so
///   `d = +0.0 / -8 = -0.0` (f16 `0x8000`); gguf-py's `argmax` picks the
///   first element, `-0.0`, so `d = +0.0` (`0x0000`). Both decode to zeros.
fn known_divergence(
    ty: GgmlType,
    input: &[f32],
    ours: &[u8],
    theirs: &[u8],
) -> Option<&'static str> {
    let signed_absmax_type = matches!(ty, GgmlType::Q4_0 | GgmlType::Q5_0);
    let zeros = input.iter().all(|&v| v == 0.0) && input[0].is_sign_negative();
    (signed_absmax_type
        && zeros
        && ours[..2] == [0x00, 0x80]
        && theirs[..2] == [0x00, 0x00]
        && ours[2..] == theirs[2..])
        .then_some("all-zero block led by -0.0: ggml's scale is -0.0, gguf-py's +0.0")
}

fn check_quant(f: &Fixture) {
    let input = f.input.as_ref().expect("a quant fixture");
    let mut out = vec![0u8; f.bytes.len()];
    quantize_row(f.ty, input, &mut out).unwrap();
    let ts = f.ty.type_size();
    let bs = f.ty.block_size();
    let mut bad = Vec::new();
    let mut known = 0;
    for (blk, ((o, t), x)) in out
        .chunks_exact(ts)
        .zip(f.bytes.chunks_exact(ts))
        .zip(input.chunks_exact(bs))
        .enumerate()
    {
        if o == t {
            continue;
        }
        match known_divergence(f.ty, x, o, t) {
            Some(why) => {
                println!(
                    "note: {} block {blk}: known gguf-py divergence: {why}",
                    f.ty
                );
                known += 1;
            }
            None => bad.push(blk),
        }
    }
    if let Some(&blk) = bad.first() {
        panic!(
            "quantize {}: {} of {} blocks differ from gguf-py; first is block {blk}:\n  \
             input  {:?}\n  ember  {:02x?}\n  gguf   {:02x?}",
            f.ty,
            bad.len(),
            out.len() / ts,
            &input[blk * bs..(blk + 1) * bs],
            &out[blk * ts..(blk + 1) * ts],
            &f.bytes[blk * ts..(blk + 1) * ts],
        );
    }
    assert!(
        known <= 1,
        "{}: {known} known divergences, expected at most one",
        f.ty
    );
    // And Ember decodes gguf-py's blocks to gguf-py's numbers.
    check_dequant("dequantize (of quantized rows)", f);
}

macro_rules! fixture {
    ($file:literal) => {
        parse(
            $file,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/",
                $file
            )),
        )
    };
}

macro_rules! oracle {
    (dequant: $($name:ident => $file:literal, $ty:ident;)*) => {
        $(
            #[test]
            fn $name() {
                let f = fixture!($file);
                assert_eq!(f.ty, GgmlType::$ty);
                assert!(f.input.is_none());
                check_dequant("dequantize", &f);
            }
        )*
    };
    (quant: $($name:ident => $file:literal, $ty:ident;)*) => {
        $(
            #[test]
            fn $name() {
                let f = fixture!($file);
                assert_eq!(f.ty, GgmlType::$ty);
                check_quant(&f);
            }
        )*
    };
}

mod dequantize_matches_gguf_py {
    use super::*;
    oracle! { dequant:
        f16 => "f16.dequant.bin", F16;
        bf16 => "bf16.dequant.bin", BF16;
        q4_0 => "q4_0.dequant.bin", Q4_0;
        q4_1 => "q4_1.dequant.bin", Q4_1;
        q5_0 => "q5_0.dequant.bin", Q5_0;
        q5_1 => "q5_1.dequant.bin", Q5_1;
        q8_0 => "q8_0.dequant.bin", Q8_0;
        q2_k => "q2_k.dequant.bin", Q2_K;
        q3_k => "q3_k.dequant.bin", Q3_K;
        q4_k => "q4_k.dequant.bin", Q4_K;
        q5_k => "q5_k.dequant.bin", Q5_K;
        q6_k => "q6_k.dequant.bin", Q6_K;
        iq4_nl => "iq4_nl.dequant.bin", IQ4_NL;
    }
}

mod quantize_matches_gguf_py {
    use super::*;
    oracle! { quant:
        f16 => "f16.quant.bin", F16;
        bf16 => "bf16.quant.bin", BF16;
        q4_0 => "q4_0.quant.bin", Q4_0;
        q4_1 => "q4_1.quant.bin", Q4_1;
        q5_0 => "q5_0.quant.bin", Q5_0;
        q5_1 => "q5_1.quant.bin", Q5_1;
        q8_0 => "q8_0.quant.bin", Q8_0;
    }
}

/// The fixtures really exercise what they claim to (guards against a
/// regenerated set silently losing its edge cases).
#[test]
fn fixtures_cover_edge_cases() {
    let q8 = fixture!("q8_0.quant.bin");
    let blocks: Vec<&[u8]> = q8.bytes.chunks_exact(34).collect();
    let d = |b: &[u8]| half_bits(b[0], b[1]);
    assert!(blocks.iter().any(|b| d(b) == 0), "a zero scale");
    assert!(
        blocks.iter().any(|b| d(b) == 0x7c00),
        "an f16 scale overflow"
    );
    assert!(
        blocks.iter().any(|b| (1..0x400).contains(&(d(b) & 0x7fff))),
        "a subnormal f16 scale"
    );
    // Exact roundf ties: input v with v*id = k + 0.5 where d is 1.
    let input = q8.input.as_ref().unwrap();
    let ties = input
        .chunks_exact(32)
        .filter(|b| b.iter().fold(0f32, |m, v| m.max(v.abs())) == 127.0)
        .flat_map(|b| b.iter())
        .filter(|v| v.fract().abs() == 0.5)
        .count();
    assert!(ties >= 10, "only {ties} roundf ties");
    let f16 = fixture!("f16.quant.bin");
    let inp = f16.input.as_ref().unwrap();
    assert!(inp.contains(&65520.0) && inp.contains(&f32::INFINITY));
}

fn half_bits(lo: u8, hi: u8) -> u16 {
    u16::from_le_bytes([lo, hi])
}
