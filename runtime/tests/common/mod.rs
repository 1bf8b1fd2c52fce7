//! Shared helpers for the GGUF tests: the default model, a byte-level builder
//! for hand-made (often malformed) files, a small synthetic model built with
//! the real writer, and error assertions.
#![allow(dead_code)]

use ember::gguf::{Gguf, GgufFile, GgufWriter, TensorSpec, ValueType};
use ember::{Error, GgmlType};

/// The cached default model, mapped; `None` (after printing a note) when it is absent.
pub fn default_model(test: &str) -> Option<GgufFile> {
    match ember::fetch::cached_default_model() {
        Some(p) => Some(GgufFile::open(&p).expect("the cached default model parses")),
        None => {
            eprintln!(
                "note: {test} skipped: the default model is not cached at {} (run `ember pull`)",
                ember::fetch::default_model_path().display()
            );
            None
        }
    }
}

/// A byte-level GGUF builder that writes exactly what it is told, valid or not.
#[derive(Clone, Debug, Default)]
pub struct Raw {
    /// The bytes so far.
    pub buf: Vec<u8>,
}

impl Raw {
    /// Magic, version, tensor count and metadata count.
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        let mut r = Raw::default();
        r.bytes(b"GGUF").u32(version).u64(n_tensors).u64(n_kv);
        r
    }

    /// The current length: the file offset of the next byte written.
    pub fn pos(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// A little-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// A little-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// A GGUF string: u64 length, then the bytes (not checked for UTF-8).
    pub fn str(&mut self, s: impl AsRef<[u8]>) -> &mut Self {
        let s = s.as_ref();
        self.u64(s.len() as u64).bytes(s)
    }

    /// A key and its value type id; the value follows.
    pub fn key(&mut self, key: &str, ty: ValueType) -> &mut Self {
        self.str(key).u32(ty as u32)
    }

    /// A u32 key-value.
    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.key(key, ValueType::U32).u32(v)
    }

    /// A string key-value.
    pub fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.key(key, ValueType::String).str(v)
    }

    /// An array header (element type and length) after an array key.
    pub fn arr(&mut self, elem: ValueType, len: u64) -> &mut Self {
        self.u32(elem as u32).u64(len)
    }

    /// A tensor info record.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }

    /// Zero bytes up to a multiple of `align`.
    pub fn pad(&mut self, align: u64) -> &mut Self {
        let n = self.pos().next_multiple_of(align) - self.pos();
        self.buf.resize(self.buf.len() + n as usize, 0);
        self
    }

    /// `n` filler bytes.
    pub fn fill(&mut self, n: usize, b: u8) -> &mut Self {
        self.buf.resize(self.buf.len() + n, b);
        self
    }
}

/// Parses `bytes`, expecting `Error::Gguf` at `offset` with `needle` in its message.
/// Returns the message.
#[track_caller]
pub fn expect_gguf_err(bytes: &[u8], offset: u64, needle: &str) -> String {
    match Gguf::parse(bytes) {
        Ok(_) => panic!("expected a GGUF error containing {needle:?} at {offset}, parsed fine"),
        Err(Error::Gguf { offset: o, msg }) => {
            assert!(
                msg.contains(needle),
                "message {msg:?} lacks {needle:?} (offset {o})"
            );
            assert_eq!(o, offset, "wrong offset for {msg:?}");
            let shown = Error::Gguf {
                offset: o,
                msg: msg.clone(),
            }
            .to_string();
            assert!(
                shown.starts_with(&format!("bad GGUF at byte {o}: ")),
                "{shown}"
            );
            msg
        }
        Err(e) => panic!("expected Error::Gguf containing {needle:?}, got {e:?}"),
    }
}

/// `Ok` or `Error::Gguf`, anything else (another error variant) fails the test.
#[track_caller]
pub fn ok_or_gguf_err(bytes: &[u8]) -> Option<Gguf<'_>> {
    match Gguf::parse(bytes) {
        Ok(g) => Some(g),
        Err(Error::Gguf { .. }) => None,
        Err(e) => panic!("expected Ok or Error::Gguf, got {e:?}"),
    }
}

/// Reads everything a consumer could read from a parsed file: every
/// metadata value (arrays iterated fully, nested arrays with an explicit
/// stack) and every tensor's data. Returns a checksum so nothing is optimised away.
pub fn touch_all(g: &Gguf<'_>, bytes: &[u8]) -> u64 {
    let mut sum = 0u64;
    let mut stack = Vec::new();
    for (k, v) in g.metadata() {
        sum = sum.wrapping_add(k.len() as u64);
        stack.push(*v);
        while let Some(v) = stack.pop() {
            match v {
                ember::gguf::Value::Array(a) => {
                    for e in a.iter() {
                        match e {
                            Ok(e) => stack.push(e),
                            // Only array strings are checked lazily (UTF-8);
                            // everything else was checked at parse time.
                            Err(Error::Gguf { msg, .. }) => {
                                assert_eq!(a.elem_type(), ValueType::String, "{msg}");
                                assert!(msg.contains("not valid UTF-8"), "{msg}");
                                sum = sum.wrapping_add(1);
                            }
                            Err(e) => panic!("reading an array element: {e:?}"),
                        }
                    }
                    sum = sum.wrapping_add(a.iter_bytes().map(|b| b.len() as u64).sum::<u64>());
                }
                ember::gguf::Value::Str(s) => sum = sum.wrapping_add(s.len() as u64),
                other => sum = sum.wrapping_add(other.as_i128().unwrap_or(1) as u64),
            }
        }
    }
    for t in g.tensors() {
        let d = g.tensor_data(t);
        assert_eq!(d.len() as u64, t.n_bytes, "tensor `{}`", t.name);
        assert_eq!(&bytes[g.tensor_range(t)], d, "tensor `{}`", t.name);
        sum = sum.wrapping_add(d.iter().map(|&b| u64::from(b)).sum::<u64>());
    }
    sum
}

/// Every ggml type Ember knows (ids 0..64 that `GgmlType::from_id` accepts).
pub fn all_ggml_types() -> Vec<GgmlType> {
    (0..64).filter_map(GgmlType::from_id).collect()
}

/// One tensor of a synthetic model: spec and data.
pub type Tensor = (TensorSpec, Vec<u8>);

/// A tensor spec.
pub fn spec(name: &str, dims: &[u64], ty: GgmlType) -> TensorSpec {
    TensorSpec {
        name: name.to_string(),
        dims: dims.to_vec(),
        ty,
    }
}

/// Deterministic filler bytes for tensor data.
pub fn data_for(spec: &TensorSpec, seed: u8) -> Vec<u8> {
    let n = spec.n_bytes().expect("a valid spec") as usize;
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Writes a file with the writer: metadata set up by `meta`, then `tensors`.
pub fn write_model(meta: impl FnOnce(&mut GgufWriter), tensors: &[Tensor]) -> Vec<u8> {
    let mut w = GgufWriter::new();
    meta(&mut w);
    for (s, _) in tensors {
        w.tensor(s.clone()).expect("a valid tensor");
    }
    let data: Vec<&[u8]> = tensors.iter().map(|(_, d)| &d[..]).collect();
    w.to_bytes(&data).expect("writes to memory")
}

/// A small but complete synthetic model: a few scalars, a string, arrays of
/// strings/ints/floats and three tensors of different types.
pub fn small_model(alignment: u32) -> Vec<u8> {
    let tensors: Vec<Tensor> = [
        spec("token_embd.weight", &[32, 4], GgmlType::Q4_1),
        spec("blk.0.attn_norm.weight", &[32], GgmlType::F32),
        spec("output.weight", &[64, 2, 1], GgmlType::Q8_0),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, s)| {
        let d = data_for(&s, i as u8);
        (s, d)
    })
    .collect();
    write_model(
        |w| {
            w.kv_str("general.architecture", "llama").unwrap();
            w.kv_u32("general.alignment", alignment).unwrap();
            w.kv_u32("llama.block_count", 1).unwrap();
            w.kv_f32("llama.rope.freq_base", 10000.0).unwrap();
            w.kv_bool("tokenizer.ggml.add_bos_token", true).unwrap();
            w.kv_str_array("tokenizer.ggml.tokens", &["<s>", "a", "b", "ab", "é"]);
            w.kv_i32_array("tokenizer.ggml.token_type", &[3, 1, 1, 1, 1]);
            w.kv_f32_array("tokenizer.ggml.scores", &[0.0, -1.0, -2.0, -3.0, -4.0]);
        },
        &tensors,
    )
}

/// A hand-built file with one key of every value type, an array of every
/// element type (nested arrays three deep, mixed inner types, an empty
/// array), `general.alignment` = 16 and two tensors.
pub fn all_types_model() -> Vec<u8> {
    use ValueType as T;
    let mut r = Raw::header(3, 2, 27);
    r.kv_u32("general.alignment", 16);
    r.key("u8", T::U8).u8(200);
    r.key("i8", T::I8).u8(0x80);
    r.key("u16", T::U16).bytes(&0xbeefu16.to_le_bytes());
    r.key("i16", T::I16).bytes(&(-2i16).to_le_bytes());
    r.key("u32", T::U32).u32(0xdead_beef);
    r.key("i32", T::I32).bytes(&i32::MIN.to_le_bytes());
    r.key("f32", T::F32).u32(1.5f32.to_bits());
    r.key("bool", T::Bool).u8(1);
    r.kv_str("str", "héllo, wörld");
    r.key("u64", T::U64).u64(u64::MAX);
    r.key("i64", T::I64).bytes(&i64::MIN.to_le_bytes());
    r.key("f64", T::F64).u64((-0.25f64).to_bits());
    r.key("arr.u8", T::Array).arr(T::U8, 3).bytes(&[1, 2, 3]);
    r.key("arr.i8", T::Array).arr(T::I8, 2).bytes(&[0xff, 0x7f]);
    r.key("arr.u16", T::Array)
        .arr(T::U16, 2)
        .bytes(&[1, 0, 2, 0]);
    r.key("arr.i16", T::Array)
        .arr(T::I16, 1)
        .bytes(&[0xff, 0xff]);
    r.key("arr.u32", T::Array).arr(T::U32, 2).u32(7).u32(8);
    r.key("arr.i32", T::Array)
        .arr(T::I32, 2)
        .u32(1)
        .u32(u32::MAX);
    r.key("arr.f32", T::Array)
        .arr(T::F32, 2)
        .u32(0.5f32.to_bits())
        .u32(f32::NAN.to_bits());
    r.key("arr.bool", T::Array)
        .arr(T::Bool, 3)
        .bytes(&[0, 1, 1]);
    r.key("arr.str", T::Array)
        .arr(T::String, 3)
        .str("a")
        .str("")
        .str("Ġthe");
    r.key("arr.u64", T::Array).arr(T::U64, 1).u64(1 << 40);
    r.key("arr.i64", T::Array).arr(T::I64, 1).u64(u64::MAX);
    r.key("arr.f64", T::Array)
        .arr(T::F64, 1)
        .u64(2.0f64.to_bits());
    // [[["x", "y"], []], [[1u8]]]: arrays of arrays with mixed inner types.
    r.key("arr.nested", T::Array).arr(T::Array, 2);
    r.arr(T::Array, 2)
        .arr(T::String, 2)
        .str("x")
        .str("y")
        .arr(T::I32, 0);
    r.arr(T::Array, 1).arr(T::U8, 1).u8(1);
    r.key("arr.empty", T::Array).arr(T::Array, 0);
    r.tensor("a", &[4, 2], GgmlType::F16.id(), 0);
    r.tensor("b", &[32], GgmlType::Q8_0.id(), 16);
    r.pad(16);
    for i in 0..16u8 {
        r.u8(i);
    }
    r.fill(34, 0x11);
    r.buf
}

/// A GGUF v2 file with arrays nested `depth` deep and a string array at each level.
pub fn nested_model(depth: usize) -> Vec<u8> {
    use ValueType as T;
    let mut r = Raw::header(2, 1, 2);
    r.kv_str("general.architecture", "nest");
    r.key("deep", T::Array);
    for _ in 0..depth {
        r.arr(T::Array, 2).arr(T::String, 1).str("s");
    }
    r.arr(T::U8, 0);
    r.tensor("w", &[8], GgmlType::I8.id(), 0)
        .pad(32)
        .fill(8, 0x7f);
    r.buf
}

/// The fuzz seed corpus (`fuzz/corpus/gguf_parse/`): small valid files.
pub fn fuzz_seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("seed-small-a32", small_model(32)),
        ("seed-small-a1", small_model(1)),
        ("seed-all-types", all_types_model()),
        ("seed-nested-v2", nested_model(4)),
        ("seed-metadata-only", {
            let mut r = Raw::header(3, 0, 2);
            r.kv_str("general.architecture", "llama")
                .kv_u32("llama.context_length", 2048);
            r.buf
        }),
        ("seed-many-types", {
            let tensors: Vec<Tensor> = all_ggml_types()
                .into_iter()
                .enumerate()
                .map(|(i, ty)| {
                    let s = spec(
                        &format!("t{i}.{}", ty.name()),
                        &[ty.block_size() as u64],
                        ty,
                    );
                    let d = data_for(&s, i as u8);
                    (s, d)
                })
                .collect();
            write_model(
                |w| {
                    w.kv_u32("general.alignment", 8).unwrap();
                },
                &tensors,
            )
        }),
    ]
}
