//! Hostile GGUF input: truncations of the default model and one named test
//! per class of malformed file. Every malformed input must come back as
//! `Error::Gguf { offset, msg }` naming the problem and where it is: never
//! `Ok`, a panic, an abort or a huge allocation.
//!
//! `docs/gguf.md` maps each malformed-file class to its test here.

mod common;

use common::{default_model, expect_gguf_err, Raw};
use ember::gguf::{Gguf, GgufWriter, TensorSpec, Value, ValueType, MAX_ALIGNMENT};
use ember::{Error, GgmlType};
use std::io::{self, Read};

// ---------------------------------------------------------------------------
// Truncation
// ---------------------------------------------------------------------------

/// Parses `bytes[..n]` for every `n` in `offsets`, on all cores, and checks
/// each is an `Error::Gguf` with a truncation message. For `n` up to
/// `info_end` the error must also lie within the bytes given.
fn check_truncations(bytes: &[u8], offsets: &[usize], info_end: usize) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(16);
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                s.spawn(move || {
                    let mut bad = Vec::new();
                    for &n in offsets.iter().skip(k).step_by(threads) {
                        if let Some(f) = truncation_failure(&bytes[..n], info_end) {
                            bad.push(f);
                            if bad.len() >= 5 {
                                break;
                            }
                        }
                    }
                    bad
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("no panic"))
            .collect()
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Why parsing this truncated image is not the right error, if it isn't.
fn truncation_failure(b: &[u8], info_end: usize) -> Option<String> {
    let n = b.len();
    match Gguf::parse(b) {
        Ok(_) => Some(format!("truncated at {n}: parsed Ok")),
        Err(Error::Gguf { offset, msg }) => {
            let known = [
                "the file is empty",
                "file ends",
                "bytes remain",
                "runs past the end of the file",
            ];
            if !known.iter().any(|k| msg.contains(k)) {
                Some(format!("truncated at {n}: unexpected message {msg:?}"))
            } else if n <= info_end && offset > n as u64 {
                Some(format!(
                    "truncated at {n}: offset {offset} beyond the end: {msg}"
                ))
            } else {
                None
            }
        }
        Err(e) => Some(format!("truncated at {n}: not Error::Gguf: {e:?}")),
    }
}

/// Where the last tensor's data ends, as a file offset.
fn data_end(g: &Gguf<'_>) -> usize {
    g.tensors()
        .iter()
        .map(|t| g.tensor_range(t).end)
        .max()
        .unwrap_or(g.data_offset() as usize)
}

/// Offsets into the data section (before the last tensor's end): 64 spread
/// evenly, the data section's start and the last tensor's last byte.
fn data_samples(g: &Gguf<'_>) -> Vec<usize> {
    let (start, end) = (g.data_offset() as usize, data_end(g));
    let mut v: Vec<usize> = (0..64).map(|i| start + (end - start) * i / 64).collect();
    v.push(end - 1);
    v
}

/// Truncates the default model at a dense, structure-aware set of offsets up
/// to the end of its tensor-info section, and at a sample inside the data
/// section.
///
/// Every offset is not affordable here: each parse walks the whole prefix
/// (the 1.77 MB of metadata is 98k tokenizer strings, up to ~0.3 ms to walk),
/// so the 1.78 M prefixes cost about 4 minutes of CPU. That sweep is
/// `truncated_default_model_at_every_offset_exhaustive` (ignored); this test
/// covers every offset of the header, the scalar keys, the array headers and
/// the start of the vocabulary, the last 256 bytes of the tensor infos, two
/// offsets inside every tensor-info record, and ~900 evenly spread offsets.
/// `truncated_default_model_with_short_vocab_at_every_offset` covers every
/// offset of the same structure with the vocabulary cut short.
#[test]
fn truncated_default_model_is_always_an_error() {
    let Some(f) = default_model("truncated_default_model_is_always_an_error") else {
        return;
    };
    let bytes = f.bytes();
    let g = f.parse().unwrap();
    let info_end = g.tensor_info_end() as usize;
    let mut offsets: Vec<usize> = (0..8192).collect();
    offsets.extend(info_end - 256..=info_end);
    offsets.extend((0..info_end).step_by(1999));
    for t in g.tensors() {
        let at = t.info_offset as usize;
        // Inside the name's length, and inside the dimensions.
        offsets.extend([at + 4, at + 8 + t.name.len() + 4 + 4]);
    }
    offsets.extend(data_samples(&g));
    offsets.sort_unstable();
    offsets.dedup();
    check_truncations(bytes, &offsets, info_end);
}

/// The default model's metadata (its long arrays cut to their first 64
/// elements) and all 272 of its real tensor infos, truncated at every byte
/// offset up to the end of the tensor infos, plus a sample in the data.
#[test]
fn truncated_default_model_with_short_vocab_at_every_offset() {
    let Some(f) = default_model("truncated_default_model_with_short_vocab_at_every_offset") else {
        return;
    };
    let g = f.parse().unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in g.metadata() {
        match v {
            Value::Array(a) if a.len() > 64 => match a.elem_type() {
                ValueType::String => {
                    let s: Vec<&str> = a.iter_str().take(64).map(Result::unwrap).collect();
                    w.kv_str_array(k, &s);
                }
                ValueType::I32 => w.kv_i32_array(k, &a.to_i32_vec().unwrap()[..64]),
                ValueType::F32 => w.kv_f32_array(k, &a.to_f32_vec().unwrap()[..64]),
                t => panic!("{k}: unexpected long array of {t:?}"),
            },
            v => w.kv(k, v).unwrap(),
        }
    }
    for t in g.tensors() {
        w.tensor(TensorSpec {
            name: t.name.to_string(),
            dims: t.shape().to_vec(),
            ty: t.ty,
        })
        .unwrap();
    }
    let sizes: Vec<u64> = w.tensors().iter().map(|t| t.n_bytes().unwrap()).collect();
    let mut bytes = Vec::new();
    w.write(&mut bytes, |i, out| {
        io::copy(&mut io::repeat(0x5a).take(sizes[i]), out).map(|_| ())
    })
    .unwrap();
    let small = Gguf::parse(&bytes).unwrap();
    assert_eq!(small.tensors().len(), g.tensors().len());
    let info_end = small.tensor_info_end() as usize;
    assert!(info_end < 64 * 1024, "{info_end}");
    let mut offsets: Vec<usize> = (0..=info_end).collect();
    offsets.extend(data_samples(&small));
    check_truncations(&bytes, &offsets, info_end);
}

/// The literal sweep: the default model cut at every byte offset up to the
/// end of its tensor infos. About 1.78 M parses of up to 1.78 MB each: run it
/// with `cargo test --release --test gguf_hostile -- --ignored` on a machine
/// with cores to spare. `EMBER_TRUNCATE_FROM` and `EMBER_TRUNCATE_TO` (byte
/// offsets, inclusive) limit it to a range, to split it across machines.
#[test]
#[ignore = "exhaustive: 1.78 M parses, ~4 CPU-minutes; run with --ignored"]
fn truncated_default_model_at_every_offset_exhaustive() {
    let Some(f) = default_model("truncated_default_model_at_every_offset_exhaustive") else {
        return;
    };
    let bytes = f.bytes();
    let g = f.parse().unwrap();
    let info_end = g.tensor_info_end() as usize;
    let env = |k: &str, default: usize| {
        std::env::var(k).map_or(default, |v| v.parse().expect("a byte offset"))
    };
    let (from, to) = (
        env("EMBER_TRUNCATE_FROM", 0),
        env("EMBER_TRUNCATE_TO", info_end).min(info_end),
    );
    let t = std::time::Instant::now();
    check_truncations(bytes, &data_samples(&g), info_end);
    // In chunks, with progress: later chunks cost more (longer prefixes).
    let chunk = 1 << 16;
    for start in (from..=to).step_by(chunk) {
        let offsets: Vec<usize> = (start..=(start + chunk - 1).min(to)).collect();
        check_truncations(bytes, &offsets, info_end);
        eprintln!(
            "every offset from {from} to {} of {info_end}: Err each time ({:?})",
            offsets[offsets.len() - 1],
            t.elapsed()
        );
    }
}

/// Every prefix of a small synthetic model, at alignments 1, 32 and 4096.
#[test]
fn truncated_small_models_at_every_offset() {
    for align in [1, 32, 4096] {
        let bytes = common::small_model(align);
        let g = Gguf::parse(&bytes).unwrap();
        let end = data_end(&g);
        let offsets: Vec<usize> = (0..end).collect();
        check_truncations(&bytes, &offsets, g.tensor_info_end() as usize);
    }
}

// ---------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------

#[test]
fn empty_file() {
    expect_gguf_err(&[], 0, "the file is empty, not a GGUF model");
}

#[test]
fn bad_magic() {
    for magic in [b"GGML", b"ggjt", b"FUGG", b"\0\0\0\0"] {
        let mut r = Raw::header(3, 0, 0);
        r.buf[..4].copy_from_slice(magic);
        let msg = expect_gguf_err(&r.buf, 0, "not a GGUF file");
        assert!(msg.contains("expected \"GGUF\""), "{msg}");
    }
    // A file shorter than the magic.
    expect_gguf_err(b"GGU", 0, "file ends inside the magic number");
    // A text file.
    expect_gguf_err(b"hello, world\n", 0, "not a GGUF file");
}

#[test]
fn big_endian_file() {
    for v in [2u32, 3] {
        // A big-endian writer byte-swaps the version and the counts.
        let mut r = Raw::default();
        r.bytes(b"GGUF")
            .bytes(&v.to_be_bytes())
            .bytes(&0u64.to_be_bytes())
            .bytes(&1u64.to_be_bytes());
        expect_gguf_err(
            &r.buf,
            4,
            "big-endian GGUF file; Ember reads little-endian GGUF only",
        );
    }
}

#[test]
fn unsupported_version() {
    expect_gguf_err(
        &Raw::header(0, 0, 0).buf,
        4,
        "unsupported GGUF version 0 (Ember reads 2 and 3)",
    );
    expect_gguf_err(
        &Raw::header(1, 0, 0).buf,
        4,
        "GGUF version 1 is not supported",
    );
    expect_gguf_err(
        &Raw::header(4, 0, 0).buf,
        4,
        "unsupported GGUF version 4 (Ember reads 2 and 3)",
    );
    expect_gguf_err(
        &Raw::header(u32::MAX, 0, 0).buf,
        4,
        "unsupported GGUF version 4294967295",
    );
    // 2 and 3 are fine.
    for v in [2, 3] {
        assert_eq!(Gguf::parse(&Raw::header(v, 0, 0).buf).unwrap().version(), v);
    }
}

// ---------------------------------------------------------------------------
// Counts larger than the bytes that remain
// ---------------------------------------------------------------------------

#[test]
fn tensor_count_inflated() {
    for n in [u64::MAX, 1 << 40, 1] {
        // No bytes follow the counts, so even one tensor is too many.
        expect_gguf_err(
            &Raw::header(3, n, 0).buf,
            8,
            &format!("the tensor count is {n}, but only 8 bytes remain"),
        );
    }
    // Bytes enough for exactly 2 tensor infos of the minimum size (32): 3 is too many.
    let mut r = Raw::header(3, 3, 0);
    r.fill(64, 0);
    expect_gguf_err(&r.buf, 8, "room for at most 2");
}

#[test]
fn kv_count_inflated() {
    for n in [u64::MAX, 1 << 33, 1] {
        expect_gguf_err(
            &Raw::header(3, 0, n).buf,
            16,
            &format!("the metadata count is {n}, but only 0 bytes remain"),
        );
    }
}

#[test]
fn array_length_inflated() {
    // A top-level array of u32 claiming more elements than bytes remain.
    let mut r = Raw::header(3, 0, 1);
    r.key("a", ValueType::Array).u32(ValueType::U32 as u32);
    let at = r.pos();
    r.u64(u64::MAX).u32(7);
    expect_gguf_err(
        &r.buf,
        at,
        "an array's length is 18446744073709551615, but only 4 bytes remain",
    );
    // 5 strings need at least 40 bytes.
    let mut r = Raw::header(3, 0, 1);
    r.key("a", ValueType::Array).u32(ValueType::String as u32);
    let at = r.pos();
    r.u64(5).fill(39, 0);
    expect_gguf_err(&r.buf, at, "room for at most 4");
    // A nested array's length.
    let mut r = Raw::header(3, 0, 1);
    r.key("a", ValueType::Array)
        .arr(ValueType::Array, 1)
        .u32(ValueType::U64 as u32);
    let at = r.pos();
    r.u64(2).u64(0);
    expect_gguf_err(
        &r.buf,
        at,
        "a nested array's length is 2, but only 8 bytes remain",
    );
}

#[test]
fn string_length_inflated() {
    // A string value.
    let mut r = Raw::header(3, 0, 1);
    r.key("s", ValueType::String);
    let at = r.pos();
    r.u64(1 << 62).bytes(b"abc");
    expect_gguf_err(
        &r.buf,
        at,
        "a string value is 4611686018427387904, but only 3 bytes remain",
    );
    // A key.
    let mut r = Raw::header(3, 0, 1);
    r.u64(u64::MAX).bytes(b"key and more");
    expect_gguf_err(
        &r.buf,
        24,
        "a metadata key is 18446744073709551615, but only 12 bytes remain",
    );
    // A string inside an array.
    let mut r = Raw::header(3, 0, 1);
    r.key("a", ValueType::Array)
        .arr(ValueType::String, 2)
        .str("ok");
    let at = r.pos();
    r.u64(9).bytes(b"12345678");
    expect_gguf_err(
        &r.buf,
        at,
        "a string's length in an array is 9, but only 8 bytes remain",
    );
    // A tensor name.
    let mut r = Raw::header(3, 1, 0);
    r.u64(100).fill(40, b'x');
    expect_gguf_err(&r.buf, 24, "a tensor name is 100, but only 40 bytes remain");
}

// ---------------------------------------------------------------------------
// Metadata values
// ---------------------------------------------------------------------------

#[test]
fn unknown_value_type() {
    for id in [13u32, 255, u32::MAX] {
        let mut r = Raw::header(3, 0, 1);
        r.str("k");
        let at = r.pos();
        r.u32(id).u64(0);
        expect_gguf_err(&r.buf, at, &format!("unknown metadata value type {id}"));
    }
    // As an array's element type.
    let mut r = Raw::header(3, 0, 1);
    r.key("k", ValueType::Array);
    let at = r.pos();
    r.u32(13).u64(0);
    expect_gguf_err(&r.buf, at, "unknown metadata value type 13");
    // As a nested array's element type.
    let mut r = Raw::header(3, 0, 1);
    r.key("k", ValueType::Array).arr(ValueType::Array, 1);
    let at = r.pos();
    r.u32(99).u64(0);
    expect_gguf_err(&r.buf, at, "unknown metadata value type 99");
}

#[test]
fn bad_bool_byte() {
    let mut r = Raw::header(3, 0, 1);
    r.key("b", ValueType::Bool);
    let at = r.pos();
    r.u8(2);
    expect_gguf_err(&r.buf, at, "bool value is 2, not 0 or 1");
    // In an array of bools: the offset is the bad element's.
    let mut r = Raw::header(3, 0, 1);
    r.key("b", ValueType::Array)
        .arr(ValueType::Bool, 4)
        .bytes(&[0, 1, 0]);
    let at = r.pos();
    r.u8(0xff);
    expect_gguf_err(&r.buf, at, "bool value is not 0 or 1");
}

#[test]
fn invalid_utf8_key() {
    let mut r = Raw::header(3, 0, 1);
    r.str(b"general.\xffname").u32(ValueType::U8 as u32).u8(0);
    // The offset is the first bad byte: 24 (key) + 8 (length) + 8 ("general.").
    expect_gguf_err(&r.buf, 40, "a metadata key is not valid UTF-8");
}

#[test]
fn invalid_utf8_string() {
    // A string value: an overlong encoding of '/'.
    let mut r = Raw::header(3, 0, 1);
    r.key("s", ValueType::String);
    let at = r.pos();
    r.str(b"ab\xc0\xaf");
    expect_gguf_err(&r.buf, at + 8 + 2, "a string value is not valid UTF-8");
    // A string in an array: a lone surrogate. Array strings are checked
    // when read, not at parse time (a vocabulary is walked at every parse):
    // the file parses, and reading the element is the error.
    let mut r = Raw::header(3, 0, 1);
    r.key("a", ValueType::Array)
        .arr(ValueType::String, 3)
        .str("fine");
    let at = r.pos();
    r.str(b"\xed\xa0\x80").str("after");
    let g = Gguf::parse(&r.buf).unwrap();
    let a = g.array("a").unwrap();
    let check = |e: Option<ember::Result<&str>>| match e {
        Some(Err(Error::Gguf { offset, msg })) => {
            assert_eq!(offset, at + 8, "{msg}");
            assert!(msg.contains("a string value is not valid UTF-8"), "{msg}");
        }
        other => panic!("{other:?}"),
    };
    let mut it = a.iter_str();
    assert_eq!(it.next().unwrap().unwrap(), "fine");
    check(it.next());
    // Iteration stops at the bad element.
    assert!(it.next().is_none());
    let mut it = a.iter().map(|v| {
        v.map(|v| match v {
            Value::Str(s) => s,
            _ => unreachable!(),
        })
    });
    it.next();
    check(it.next());
    // The raw bytes are there, unchecked.
    let raw: Vec<&[u8]> = a.iter_bytes().collect();
    assert_eq!(raw, [&b"fine"[..], b"\xed\xa0\x80", b"after"]);
    // A multi-byte character cut short at the end of the string.
    let mut r = Raw::header(3, 0, 1);
    r.key("s", ValueType::String);
    let at = r.pos();
    r.str(b"caf\xc3");
    expect_gguf_err(&r.buf, at + 8 + 3, "a string value is not valid UTF-8");
    // A tensor name.
    let mut r = Raw::header(3, 1, 0);
    r.str(b"blk.\x80").u32(1).u64(32).u32(0).u64(0);
    expect_gguf_err(&r.buf, 24 + 8 + 4, "a tensor name is not valid UTF-8");
}

// ---------------------------------------------------------------------------
// Tensor infos
// ---------------------------------------------------------------------------

/// A file with one tensor info record `name` whose fields after the name are
/// written by `f`, followed by `data` bytes of tensor data. Returns the
/// bytes and the offset of the n_dims field.
fn one_tensor(name: &str, f: impl FnOnce(&mut Raw), data: usize) -> (Vec<u8>, u64) {
    let mut r = Raw::header(3, 1, 0);
    r.str(name);
    let nd_at = r.pos();
    f(&mut r);
    r.pad(32).fill(data, 0);
    (r.buf, nd_at)
}

#[test]
fn n_dims_zero() {
    let (b, at) = one_tensor(
        "t",
        |r| {
            r.u32(0).u32(0).u64(0);
        },
        64,
    );
    expect_gguf_err(&b, at, "tensor `t` has 0 dimensions; 1 to 4 are allowed");
}

#[test]
fn n_dims_over_four() {
    for nd in [5u32, 64, u32::MAX] {
        let (b, at) = one_tensor(
            "t",
            |r| {
                r.u32(nd);
                for _ in 0..5 {
                    r.u64(1);
                }
                r.u32(0).u64(0);
            },
            64,
        );
        expect_gguf_err(
            &b,
            at,
            &format!("tensor `t` has {nd} dimensions; 1 to 4 are allowed"),
        );
    }
}

#[test]
fn zero_dim() {
    let (b, at) = one_tensor(
        "t",
        |r| {
            r.u32(3).u64(4).u64(0).u64(2).u32(0).u64(0);
        },
        64,
    );
    expect_gguf_err(&b, at + 4 + 8, "tensor `t` has a zero dimension");
}

#[test]
fn dims_product_overflow() {
    // 2^32 * 2^32 overflows u64.
    let (b, at) = one_tensor(
        "t",
        |r| {
            r.u32(2).u64(1 << 32).u64(1 << 32).u32(0).u64(0);
        },
        64,
    );
    expect_gguf_err(&b, at + 4 + 8, "tensor `t`'s element count overflows");
    // 2^32 * 2^31 = 2^63 fits u64 but not ggml's int64_t.
    let (b, at) = one_tensor(
        "t",
        |r| {
            r.u32(2).u64(1 << 32).u64(1 << 31).u32(0).u64(0);
        },
        64,
    );
    expect_gguf_err(&b, at + 4 + 8, "tensor `t`'s element count overflows");
    // Four dimensions whose product overflows only at the last.
    let (b, at) = one_tensor(
        "t",
        |r| {
            r.u32(4)
                .u64(1 << 20)
                .u64(1 << 20)
                .u64(1 << 20)
                .u64(1 << 20)
                .u32(0)
                .u64(0);
        },
        64,
    );
    expect_gguf_err(&b, at + 4 + 24, "tensor `t`'s element count overflows");
    // One dimension over i64::MAX.
    let (b, at) = one_tensor(
        "t",
        |r| {
            r.u32(1).u64(u64::MAX).u32(0).u64(0);
        },
        64,
    );
    expect_gguf_err(
        &b,
        at + 4,
        "tensor `t` has dimension 18446744073709551615 (over i64::MAX)",
    );
    // An element count that fits, but whose byte size (8 bytes per f64) does not.
    let (b, at) = one_tensor(
        "t",
        |r| {
            r.u32(1).u64(1 << 61).u32(GgmlType::F64.id()).u64(0);
        },
        64,
    );
    expect_gguf_err(&b, at, "tensor `t`'s byte size overflows");
}

#[test]
fn unknown_ggml_type() {
    for id in [42u32, 1000, u32::MAX] {
        let (b, at) = one_tensor(
            "t",
            |r| {
                r.u32(1).u64(32).u32(id).u64(0);
            },
            64,
        );
        expect_gguf_err(
            &b,
            at + 12,
            &format!("tensor `t` has unknown ggml type id {id}"),
        );
    }
}

#[test]
fn retired_ggml_type() {
    // Q4_2, Q4_3 (4, 5), Q4_0_4_4/4_8/8_8 (31..33), IQ4_NL_4_4/4_8/8_8 (36..38).
    for id in [4u32, 5, 31, 32, 33, 36, 37, 38] {
        let (b, at) = one_tensor(
            "t",
            |r| {
                r.u32(1).u64(256).u32(id).u64(0);
            },
            512,
        );
        expect_gguf_err(
            &b,
            at + 12,
            &format!("tensor `t` has unknown ggml type id {id}"),
        );
    }
}

#[test]
fn row_not_multiple_of_block_size() {
    let cases = [
        (
            GgmlType::Q4_0,
            33,
            "row length 33 is not a multiple of Q4_0's block size 32",
        ),
        (
            GgmlType::Q4_K,
            576,
            "row length 576 is not a multiple of Q4_K's block size 256",
        ),
        (
            GgmlType::Q1_0,
            64,
            "row length 64 is not a multiple of Q1_0's block size 128",
        ),
    ];
    for (ty, row, want) in cases {
        let (b, at) = one_tensor(
            "t",
            |r| {
                r.u32(2).u64(row).u64(2).u32(ty.id()).u64(0);
            },
            4096,
        );
        // The offset is the row length's (the first dimension).
        let msg = expect_gguf_err(&b, at + 4, want);
        assert!(msg.starts_with("tensor `t`"), "{msg}");
    }
}

#[test]
fn misaligned_tensor_offset() {
    // Default alignment 32.
    let (b, at) = one_tensor(
        "t",
        |r| {
            r.u32(1).u64(8).u32(0).u64(16);
        },
        64,
    );
    expect_gguf_err(
        &b,
        at + 16,
        "tensor `t`'s offset 16 is not a multiple of the alignment 32",
    );
    // With general.alignment = 64.
    let mut r = Raw::header(3, 1, 1);
    r.kv_u32("general.alignment", 64)
        .str("t")
        .u32(1)
        .u64(8)
        .u32(0);
    let at = r.pos();
    r.u64(32).pad(64).fill(128, 0);
    expect_gguf_err(
        &r.buf,
        at,
        "tensor `t`'s offset 32 is not a multiple of the alignment 64",
    );
}

/// A file with `general.alignment` of type `ty` holding `value`; returns the
/// bytes and the offset of the value.
fn alignment_file(ty: ValueType, value: &[u8]) -> (Vec<u8>, u64) {
    let mut r = Raw::header(3, 0, 1);
    r.key("general.alignment", ty);
    let at = r.pos();
    r.bytes(value);
    (r.buf, at)
}

#[test]
fn alignment_zero() {
    let (b, at) = alignment_file(ValueType::U32, &0u32.to_le_bytes());
    expect_gguf_err(
        &b,
        at,
        "general.alignment is 0; it must be a power of two from 1 to 1048576",
    );
}

#[test]
fn alignment_not_power_of_two() {
    for a in [3u32, 48, 1000, u32::MAX] {
        let (b, at) = alignment_file(ValueType::U32, &a.to_le_bytes());
        expect_gguf_err(
            &b,
            at,
            &format!("general.alignment is {a}; it must be a power of two"),
        );
    }
}

#[test]
fn alignment_too_large() {
    for a in [2u32 << 20, 1 << 31] {
        let (b, at) = alignment_file(ValueType::U32, &a.to_le_bytes());
        expect_gguf_err(
            &b,
            at,
            &format!("general.alignment is {a}; it must be a power of two from 1 to 1048576"),
        );
    }
    // 1 MiB is the largest accepted.
    let (b, _) = alignment_file(ValueType::U32, &(MAX_ALIGNMENT as u32).to_le_bytes());
    assert_eq!(Gguf::parse(&b).unwrap().alignment(), MAX_ALIGNMENT);
}

#[test]
fn alignment_wrong_type() {
    let cases: [(ValueType, Vec<u8>, &str); 4] = [
        (ValueType::U64, 32u64.to_le_bytes().to_vec(), "u64"),
        (ValueType::I32, 32i32.to_le_bytes().to_vec(), "i32"),
        (ValueType::U16, 32u16.to_le_bytes().to_vec(), "u16"),
        (
            ValueType::String,
            {
                let mut v = 2u64.to_le_bytes().to_vec();
                v.extend_from_slice(b"32");
                v
            },
            "str",
        ),
    ];
    for (ty, v, name) in cases {
        let (b, at) = alignment_file(ty, &v);
        expect_gguf_err(
            &b,
            at,
            &format!("general.alignment must be a u32, found {name}"),
        );
    }
}

#[test]
fn tensor_past_end_of_file() {
    // 32 f32s need 128 bytes; 100 are there.
    let (b, _) = one_tensor(
        "t",
        |r| {
            r.u32(1).u64(32).u32(0).u64(0);
        },
        100,
    );
    let data_start = (b.len() - 100) as u64;
    expect_gguf_err(
        &b,
        data_start,
        "tensor `t` (128 bytes at data offset 0) runs past the end of the file (100 data bytes; is the file truncated?)",
    );
    // An offset far past the end (aligned, so only the range check catches it).
    let (b, _) = one_tensor(
        "t",
        |r| {
            r.u32(1).u64(8).u32(0).u64(1 << 40);
        },
        64,
    );
    let data_start = (b.len() - 64) as u64;
    expect_gguf_err(
        &b,
        data_start + (1 << 40),
        "tensor `t` (32 bytes at data offset 1099511627776) runs past the end",
    );
    // An offset whose end overflows u64.
    let (b, at) = one_tensor(
        "t",
        |r| {
            r.u32(1).u64(8).u32(0).u64(u64::MAX - 31);
        },
        64,
    );
    assert_eq!(at, 24 + 8 + 1);
    expect_gguf_err(&b, 24, "tensor `t`'s range overflows");
    // No data section at all: the file ends inside the padding after the infos.
    let mut r = Raw::header(3, 1, 0);
    r.str("t").u32(1).u64(8).u32(0).u64(0);
    let end = r.pos();
    expect_gguf_err(
        &r.buf,
        end,
        "file ends before the data section (which starts at byte 64)",
    );
}

#[test]
fn overlapping_tensors() {
    let mut r = Raw::header(3, 2, 0);
    // `a`: 64 f32 = 256 bytes at 0; `b`: 32 f32 at 128, inside `a`.
    r.tensor("a", &[64], 0, 0)
        .tensor("b", &[32], 0, 128)
        .pad(32);
    let data_start = r.pos();
    r.fill(512, 0);
    expect_gguf_err(&r.buf, data_start + 128, "tensor `b` overlaps tensor `a`");
    // Same offset.
    let mut r = Raw::header(3, 2, 0);
    r.tensor("a", &[8], 0, 0).tensor("b", &[8], 0, 0).pad(32);
    let data_start = r.pos();
    r.fill(64, 0);
    expect_gguf_err(&r.buf, data_start, "overlaps tensor");
    // Adjacent is fine, in either declaration order.
    let mut r = Raw::header(3, 2, 0);
    r.tensor("b", &[8], 0, 32)
        .tensor("a", &[8], 0, 0)
        .pad(32)
        .fill(64, 0);
    assert_eq!(Gguf::parse(&r.buf).unwrap().tensors().len(), 2);
}

#[test]
fn duplicate_key() {
    let mut r = Raw::header(3, 0, 3);
    r.kv_u32("a", 1).kv_str("b", "x");
    let at = r.pos();
    r.kv_u32("a", 2);
    expect_gguf_err(&r.buf, at, "duplicate metadata key `a`");
    // Even with another type.
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("general.alignment", 32);
    let at = r.pos();
    r.kv_str("general.alignment", "64");
    expect_gguf_err(&r.buf, at, "duplicate metadata key `general.alignment`");
}

#[test]
fn duplicate_tensor_name() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor("w", &[8], 0, 0);
    let at = r.pos();
    r.tensor("w", &[8], 0, 32).pad(32).fill(64, 0);
    expect_gguf_err(&r.buf, at, "duplicate tensor name `w`");
}

#[test]
fn tensor_name_too_long() {
    let long = "x".repeat(64);
    let (b, _) = one_tensor(
        &long,
        |r| {
            r.u32(1).u64(8).u32(0).u64(0);
        },
        64,
    );
    expect_gguf_err(&b, 24, "tensor name is 64 bytes; the limit is 63");
    // 63 bytes is fine.
    let ok = "y".repeat(63);
    let (b, _) = one_tensor(
        &ok,
        |r| {
            r.u32(1).u64(8).u32(0).u64(0);
        },
        64,
    );
    assert_eq!(Gguf::parse(&b).unwrap().tensors()[0].name, ok);
}

// ---------------------------------------------------------------------------
// Nesting
// ---------------------------------------------------------------------------

/// An array nested `depth` levels deep (each level one element), the
/// innermost an array of `inner_len` u8s followed by `inner` bytes.
fn nested(depth: usize, inner_len: u64, inner: &[u8]) -> (Vec<u8>, u64) {
    let mut r = Raw::header(3, 0, 1);
    r.key("deep", ValueType::Array);
    for _ in 0..depth {
        r.arr(ValueType::Array, 1);
    }
    let at = r.pos();
    r.arr(ValueType::U8, inner_len).bytes(inner);
    (r.buf, at)
}

#[test]
fn deeply_nested_arrays() {
    const DEPTH: usize = 100_000;
    // Valid: it parses without recursion.
    let (b, _) = nested(DEPTH, 3, &[1, 2, 3]);
    let g = Gguf::parse(&b).unwrap();
    let a = g.array("deep").unwrap();
    assert_eq!((a.elem_type(), a.len()), (ValueType::Array, 1));
    assert_eq!(g.tensor_info_end(), b.len() as u64);
    // A few levels down (each step re-walks the levels below it).
    let mut cur = *a;
    for _ in 0..3 {
        let mut it = cur.iter();
        cur = match it.next() {
            Some(Ok(Value::Array(inner))) => inner,
            other => panic!("{other:?}"),
        };
        assert!(it.next().is_none());
    }
    assert_eq!(cur.elem_type(), ValueType::Array);
    // A small nest iterated to the bottom.
    let (b, _) = nested(5, 3, &[7, 8, 9]);
    let g = Gguf::parse(&b).unwrap();
    let mut v = Value::Array(*g.array("deep").unwrap());
    while let Value::Array(a) = v {
        if a.elem_type() == ValueType::U8 {
            assert_eq!(a.raw(), &[7, 8, 9]);
            break;
        }
        v = a.iter().next().unwrap().unwrap();
    }
    // Malformed at the bottom: the innermost array is longer than the file.
    let (b, at) = nested(DEPTH, 4, &[1, 2, 3]);
    expect_gguf_err(
        &b,
        at + 4,
        "a nested array's length is 4, but only 3 bytes remain",
    );
    // Malformed at the bottom: the innermost element type is unknown.
    let mut b = nested(DEPTH, 0, &[]).0;
    let n = b.len();
    b[n - 12..n - 8].copy_from_slice(&77u32.to_le_bytes());
    expect_gguf_err(&b, (n - 12) as u64, "unknown metadata value type 77");
    // Wide and deep: every level with two elements runs out of bytes quickly.
    let mut r = Raw::header(3, 0, 1);
    r.key("wide", ValueType::Array);
    for _ in 0..DEPTH {
        r.arr(ValueType::Array, 2);
    }
    let end = r.pos();
    r.arr(ValueType::U8, 0);
    // The deepest pair has room for one element only.
    expect_gguf_err(
        &r.buf,
        end - 8,
        "a nested array's length is 2, but only 12 bytes remain",
    );
}

// ---------------------------------------------------------------------------
// Typed access
// ---------------------------------------------------------------------------

fn typed_model() -> Vec<u8> {
    let mut r = Raw::header(3, 0, 9);
    r.kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", 30);
    r.key("neg", ValueType::I32).u32((-1i32) as u32);
    r.key("big", ValueType::U64).u64(1 << 40);
    r.key("eps", ValueType::F32).u32(1e-5f32.to_bits());
    r.key("flag", ValueType::Bool).u8(1);
    r.key("tokens", ValueType::Array)
        .arr(ValueType::String, 2)
        .str("a")
        .str("b");
    r.key("types", ValueType::Array)
        .arr(ValueType::I32, 2)
        .u32(1)
        .u32(3);
    r.key("nest", ValueType::Array).arr(ValueType::Array, 0);
    r.buf
}

#[track_caller]
fn expect_key_type<T: std::fmt::Debug>(
    r: ember::Result<T>,
    key: &str,
    expected: &str,
    found: &str,
) {
    match r {
        Err(Error::KeyType {
            key: k,
            expected: x,
            found: f,
        }) => {
            assert_eq!((k.as_str(), x, f), (key, expected, found));
            let shown = Error::KeyType {
                key: k,
                expected: x,
                found: f,
            }
            .to_string();
            assert_eq!(
                shown,
                format!("metadata key `{key}` is {found}, expected {expected}")
            );
        }
        other => panic!("expected KeyType for `{key}`, got {other:?}"),
    }
}

#[test]
fn typed_access_names_key_and_type() {
    let b = typed_model();
    let g = Gguf::parse(&b).unwrap();
    // The right type.
    assert_eq!(g.str("general.architecture").unwrap(), "llama");
    assert_eq!(g.u32("llama.block_count").unwrap(), 30);
    assert_eq!(g.u64("llama.block_count").unwrap(), 30);
    assert_eq!(g.i32("neg").unwrap(), -1);
    assert_eq!(g.u64("big").unwrap(), 1 << 40);
    assert_eq!(g.f32("eps").unwrap(), 1e-5);
    assert!(g.bool("flag").unwrap());
    assert_eq!(g.array("tokens").unwrap().len(), 2);
    // The wrong type.
    expect_key_type(
        g.u32("general.architecture"),
        "general.architecture",
        "a u32",
        "a string",
    );
    expect_key_type(g.u64("eps"), "eps", "a u64", "a float");
    expect_key_type(g.i32("flag"), "flag", "an i32", "a bool");
    expect_key_type(
        g.str("llama.block_count"),
        "llama.block_count",
        "a string",
        "an integer",
    );
    expect_key_type(
        g.f32("general.architecture"),
        "general.architecture",
        "a float",
        "a string",
    );
    expect_key_type(g.bool("eps"), "eps", "a bool", "a float");
    expect_key_type(g.array("flag"), "flag", "an array", "a bool");
    expect_key_type(g.u32("tokens"), "tokens", "a u32", "an array of strings");
    expect_key_type(g.str("types"), "types", "a string", "an array of numbers");
    expect_key_type(g.f32("nest"), "nest", "a float", "an array of arrays");
    // Integers that do not fit.
    expect_key_type(g.u32("neg"), "neg", "a u32", "an integer out of range");
    expect_key_type(g.u32("big"), "big", "a u32", "an integer out of range");
    expect_key_type(g.i32("big"), "big", "an i32", "an integer out of range");
    // Optional keys: absent is None, present with the wrong type is still an error.
    assert_eq!(g.opt("nope", Gguf::u32).unwrap(), None);
    assert_eq!(g.opt("llama.block_count", Gguf::u32).unwrap(), Some(30));
    expect_key_type(
        g.opt("general.architecture", Gguf::u32),
        "general.architecture",
        "a u32",
        "a string",
    );
}

#[test]
fn missing_key_and_tensor() {
    let b = typed_model();
    let g = Gguf::parse(&b).unwrap();
    match g.u32("llama.context_length") {
        Err(e @ Error::MissingKey(_)) => {
            assert_eq!(
                e.to_string(),
                "the model has no metadata key `llama.context_length`"
            )
        }
        other => panic!("{other:?}"),
    }
    match g.require_tensor("output.weight") {
        Err(e @ Error::MissingTensor(_)) => {
            assert_eq!(e.to_string(), "the model has no tensor `output.weight`")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn array_element_type_errors() {
    let b = typed_model();
    let g = Gguf::parse(&b).unwrap();
    let tokens = g.array("tokens").unwrap();
    let types = g.array("types").unwrap();
    match tokens.to_i32_vec() {
        Err(Error::Gguf { offset, msg }) => {
            assert_eq!(offset, tokens.offset());
            assert!(
                msg.contains(
                    "expected an array of integers that fit i32, found elements of type str"
                ),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
    match types.iter_str().next() {
        Some(Err(Error::Gguf { offset, msg })) => {
            assert_eq!(offset, types.offset());
            assert!(
                msg.contains("expected an array of strings, found elements of type i32"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(types.to_f32_vec().is_err());
    assert_eq!(types.to_u32_vec().unwrap(), [1, 3]);
    assert_eq!(
        tokens
            .iter_str()
            .collect::<ember::Result<Vec<_>>>()
            .unwrap(),
        ["a", "b"]
    );
}

// ---------------------------------------------------------------------------
// The writer refuses what the reader would reject
// ---------------------------------------------------------------------------

#[test]
fn writer_rejects_malformed_tensors_and_alignment() {
    let mut w = GgufWriter::new();
    let spec = |name: &str, dims: &[u64], ty| TensorSpec {
        name: name.into(),
        dims: dims.into(),
        ty,
    };
    assert!(w
        .tensor(spec(&"n".repeat(64), &[8], GgmlType::F32))
        .is_err());
    assert!(w.tensor(spec("t", &[], GgmlType::F32)).is_err());
    assert!(w
        .tensor(spec("t", &[1, 1, 1, 1, 1], GgmlType::F32))
        .is_err());
    assert!(w.tensor(spec("t", &[8, 0], GgmlType::F32)).is_err());
    assert!(w.tensor(spec("t", &[33], GgmlType::Q4_0)).is_err());
    assert!(w.tensor(spec("t", &[1 << 62, 4], GgmlType::F32)).is_err());
    w.tensor(spec("t", &[8], GgmlType::F32)).unwrap();
    assert!(w.tensor(spec("t", &[8], GgmlType::F32)).is_err());
    for a in [0u32, 3, 2 << 20] {
        assert!(w.kv_u32("general.alignment", a).is_err(), "{a}");
    }
    assert!(w.kv("general.alignment", &Value::U64(32)).is_err());
    // Data of the wrong size is an I/O error, not a malformed file.
    assert!(w.to_bytes(&[&[0u8; 31]]).is_err());
}
