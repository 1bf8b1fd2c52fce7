//! `read(write(x)) == x` for random metadata and tensors, mutated files
//! never panic, the writer reproduces the default model byte for byte, and
//! the fuzz seed corpus parses.

mod common;

use common::{default_model, ok_or_gguf_err, touch_all, Raw};
use ember::gguf::{Gguf, GgufWriter, TensorSpec, Value, ValueType};
use ember::GgmlType;
use proptest::prelude::*;
use std::io::{self, Write};
use std::path::PathBuf;

// ---------------------------------------------------------------------------
// An owned model of metadata values
// ---------------------------------------------------------------------------

/// A metadata value that owns its data. Floats are kept as bits, so NaNs
/// compare equal to themselves.
#[derive(Clone, Debug, PartialEq)]
enum Owned {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(u32),
    Bool(bool),
    Str(String),
    Arr(ValueType, Vec<Owned>),
    U64(u64),
    I64(i64),
    F64(u64),
}

impl Owned {
    fn ty(&self) -> ValueType {
        match self {
            Owned::U8(_) => ValueType::U8,
            Owned::I8(_) => ValueType::I8,
            Owned::U16(_) => ValueType::U16,
            Owned::I16(_) => ValueType::I16,
            Owned::U32(_) => ValueType::U32,
            Owned::I32(_) => ValueType::I32,
            Owned::F32(_) => ValueType::F32,
            Owned::Bool(_) => ValueType::Bool,
            Owned::Str(_) => ValueType::String,
            Owned::Arr(..) => ValueType::Array,
            Owned::U64(_) => ValueType::U64,
            Owned::I64(_) => ValueType::I64,
            Owned::F64(_) => ValueType::F64,
        }
    }

    /// Writes the value's bytes (no type id) as GGUF stores them.
    fn encode(&self, r: &mut Raw) {
        match self {
            Owned::U8(v) => r.u8(*v),
            Owned::I8(v) => r.u8(*v as u8),
            Owned::U16(v) => r.bytes(&v.to_le_bytes()),
            Owned::I16(v) => r.bytes(&v.to_le_bytes()),
            Owned::U32(v) | Owned::F32(v) => r.u32(*v),
            Owned::I32(v) => r.bytes(&v.to_le_bytes()),
            Owned::Bool(v) => r.u8(u8::from(*v)),
            Owned::Str(s) => r.str(s),
            Owned::Arr(ty, v) => {
                r.arr(*ty, v.len() as u64);
                for e in v {
                    e.encode(r);
                }
                r
            }
            Owned::U64(v) | Owned::F64(v) => r.u64(*v),
            Owned::I64(v) => r.bytes(&v.to_le_bytes()),
        };
    }

    /// Reads a parsed value back (arrays element by element).
    fn from_value(v: &Value<'_>) -> Owned {
        match *v {
            Value::U8(x) => Owned::U8(x),
            Value::I8(x) => Owned::I8(x),
            Value::U16(x) => Owned::U16(x),
            Value::I16(x) => Owned::I16(x),
            Value::U32(x) => Owned::U32(x),
            Value::I32(x) => Owned::I32(x),
            Value::F32(x) => Owned::F32(x.to_bits()),
            Value::Bool(x) => Owned::Bool(x),
            Value::Str(s) => Owned::Str(s.to_string()),
            Value::Array(a) => Owned::Arr(
                a.elem_type(),
                a.iter().map(|e| Owned::from_value(&e.unwrap())).collect(),
            ),
            Value::U64(x) => Owned::U64(x),
            Value::I64(x) => Owned::I64(x),
            Value::F64(x) => Owned::F64(x.to_bits()),
        }
    }
}

/// Sets `key` to `v` on the writer, through the public API only: scalars and
/// strings with `kv`, flat string/i32/f32 arrays with the typed helpers, and
/// any other array by parsing it out of a hand-built file and passing the
/// borrowed [`Value::Array`] (its raw bytes) to `kv`.
fn put(w: &mut GgufWriter, key: &str, v: &Owned) {
    let scalar = match v {
        Owned::U8(x) => Value::U8(*x),
        Owned::I8(x) => Value::I8(*x),
        Owned::U16(x) => Value::U16(*x),
        Owned::I16(x) => Value::I16(*x),
        Owned::U32(x) => Value::U32(*x),
        Owned::I32(x) => Value::I32(*x),
        Owned::F32(x) => Value::F32(f32::from_bits(*x)),
        Owned::Bool(x) => Value::Bool(*x),
        Owned::Str(s) => Value::Str(s),
        Owned::U64(x) => Value::U64(*x),
        Owned::I64(x) => Value::I64(*x),
        Owned::F64(x) => Value::F64(f64::from_bits(*x)),
        Owned::Arr(ValueType::String, e) => {
            let s: Vec<&str> = e
                .iter()
                .map(|e| match e {
                    Owned::Str(s) => s.as_str(),
                    _ => unreachable!(),
                })
                .collect();
            return w.kv_str_array(key, &s);
        }
        Owned::Arr(ValueType::I32, e) => {
            let v: Vec<i32> = e
                .iter()
                .map(|e| match e {
                    Owned::I32(x) => *x,
                    _ => unreachable!(),
                })
                .collect();
            return w.kv_i32_array(key, &v);
        }
        Owned::Arr(ValueType::F32, e) => {
            let v: Vec<f32> = e
                .iter()
                .map(|e| match e {
                    Owned::F32(x) => f32::from_bits(*x),
                    _ => unreachable!(),
                })
                .collect();
            return w.kv_f32_array(key, &v);
        }
        Owned::Arr(..) => {
            let mut r = Raw::header(3, 0, 1);
            r.key("a", ValueType::Array);
            v.encode(&mut r);
            let g = Gguf::parse(&r.buf).unwrap();
            let a = *g.array("a").unwrap();
            return w.kv(key, &Value::Array(a)).unwrap();
        }
    };
    w.kv(key, &scalar).unwrap();
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

const SCALAR_TYPES: [ValueType; 12] = [
    ValueType::U8,
    ValueType::I8,
    ValueType::U16,
    ValueType::I16,
    ValueType::U32,
    ValueType::I32,
    ValueType::F32,
    ValueType::Bool,
    ValueType::String,
    ValueType::U64,
    ValueType::I64,
    ValueType::F64,
];

/// Any UTF-8 text: mostly printable, sometimes anything at all.
fn text(max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::string::string_regex(&format!("\\PC{{0,{max}}}")).unwrap(),
        1 => proptest::collection::vec(any::<char>(), 0..max).prop_map(|v| v.into_iter().collect()),
    ]
    .boxed()
}

fn scalar_of(ty: ValueType) -> BoxedStrategy<Owned> {
    match ty {
        ValueType::U8 => any::<u8>().prop_map(Owned::U8).boxed(),
        ValueType::I8 => any::<i8>().prop_map(Owned::I8).boxed(),
        ValueType::U16 => any::<u16>().prop_map(Owned::U16).boxed(),
        ValueType::I16 => any::<i16>().prop_map(Owned::I16).boxed(),
        ValueType::U32 => any::<u32>().prop_map(Owned::U32).boxed(),
        ValueType::I32 => any::<i32>().prop_map(Owned::I32).boxed(),
        ValueType::F32 => any::<u32>().prop_map(Owned::F32).boxed(),
        ValueType::Bool => any::<bool>().prop_map(Owned::Bool).boxed(),
        ValueType::String => text(24).prop_map(Owned::Str).boxed(),
        ValueType::U64 => any::<u64>().prop_map(Owned::U64).boxed(),
        ValueType::I64 => any::<i64>().prop_map(Owned::I64).boxed(),
        ValueType::F64 => any::<u64>().prop_map(Owned::F64).boxed(),
        ValueType::Array => unreachable!(),
    }
}

/// A flat array of one scalar type.
fn flat_array() -> impl Strategy<Value = Owned> {
    proptest::sample::select(&SCALAR_TYPES[..]).prop_flat_map(|ty| {
        proptest::collection::vec(scalar_of(ty), 0..12).prop_map(move |v| Owned::Arr(ty, v))
    })
}

/// Any value: scalars, strings, flat arrays and arrays of arrays (up to 4 deep).
fn value() -> impl Strategy<Value = Owned> {
    let leaf = prop_oneof![
        proptest::sample::select(&SCALAR_TYPES[..]).prop_flat_map(scalar_of),
        flat_array(),
    ];
    leaf.prop_recursive(3, 64, 6, |inner| {
        proptest::collection::vec(inner, 0..5).prop_map(|v| {
            // Elements of an array of arrays must be arrays: wrap scalars.
            let v = v
                .into_iter()
                .map(|e| match e {
                    Owned::Arr(..) => e,
                    s => Owned::Arr(s.ty(), vec![s]),
                })
                .collect();
            Owned::Arr(ValueType::Array, v)
        })
    })
}

/// Metadata with unique keys (never `general.alignment`, set separately).
fn metadata() -> impl Strategy<Value = Vec<(String, Owned)>> {
    let key = prop_oneof![
        3 => "[a-z]{1,8}(\\.[a-z_0-9]{1,8}){0,3}",
        1 => text(12),
    ];
    proptest::collection::vec((key, value()), 0..10).prop_map(|kvs| {
        let mut seen = std::collections::HashSet::new();
        kvs.into_iter()
            .filter(|(k, _)| k != "general.alignment" && seen.insert(k.clone()))
            .collect()
    })
}

/// A tensor: spec and data.
fn tensor(i: usize) -> impl Strategy<Value = (TensorSpec, Vec<u8>)> {
    (
        proptest::sample::select(common::all_ggml_types()),
        1..=3u64,
        proptest::collection::vec(1..=3u64, 0..=3),
        "[a-z0-9_.]{0,40}",
        any::<u64>(),
    )
        .prop_map(move |(ty, k, rest, name, seed)| {
            let mut dims = vec![ty.block_size() as u64 * k];
            dims.extend(rest);
            let spec = TensorSpec {
                name: format!("{i}.{name}"),
                dims,
                ty,
            };
            let n = spec.n_bytes().unwrap() as usize;
            let mut x = seed | 1;
            let data = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            (spec, data)
        })
}

fn tensors() -> impl Strategy<Value = Vec<(TensorSpec, Vec<u8>)>> {
    (0..5usize).prop_flat_map(|n| (0..n).map(tensor).collect::<Vec<_>>())
}

/// `None` (the default, 32) or a power of two up to 4 KiB.
fn alignment() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![Just(None), (0..=12u32).prop_map(|s| Some(1 << s))]
}

// ---------------------------------------------------------------------------
// Round trip
// ---------------------------------------------------------------------------

/// Writes `meta` and `tensors` with the writer.
fn write(
    meta: &[(String, Owned)],
    tensors: &[(TensorSpec, Vec<u8>)],
    align: Option<u32>,
) -> Vec<u8> {
    let mut w = GgufWriter::new();
    if let Some(a) = align {
        w.kv_u32("general.alignment", a).unwrap();
    }
    for (k, v) in meta {
        put(&mut w, k, v);
    }
    for (s, _) in tensors {
        w.tensor(s.clone()).unwrap();
    }
    let data: Vec<&[u8]> = tensors.iter().map(|(_, d)| &d[..]).collect();
    w.to_bytes(&data).unwrap()
}

/// Checks that `g` holds exactly `meta` and `tensors`.
fn check_same(
    g: &Gguf<'_>,
    meta: &[(String, Owned)],
    tensors: &[(TensorSpec, Vec<u8>)],
    align: Option<u32>,
) -> Result<(), TestCaseError> {
    let a = u64::from(align.unwrap_or(32));
    prop_assert_eq!(g.alignment(), a);
    let mut expected: Vec<(String, Owned)> = Vec::new();
    if let Some(a) = align {
        expected.push(("general.alignment".into(), Owned::U32(a)));
    }
    expected.extend(meta.iter().cloned());
    let got: Vec<(String, Owned)> = g
        .metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), Owned::from_value(v)))
        .collect();
    prop_assert_eq!(&got, &expected);
    for (k, v) in meta {
        prop_assert_eq!(Owned::from_value(g.get(k).unwrap()), v.clone());
    }
    prop_assert_eq!(g.tensors().len(), tensors.len());
    prop_assert_eq!(g.data_offset() % a, 0);
    prop_assert!(g.tensor_info_end() <= g.data_offset());
    for (t, (s, d)) in g.tensors().iter().zip(tensors) {
        prop_assert_eq!(t.name, s.name.as_str());
        prop_assert_eq!(t.shape(), &s.dims[..]);
        prop_assert_eq!(t.n_dims as usize, s.dims.len());
        prop_assert_eq!(t.ty, s.ty);
        prop_assert_eq!(t.n_bytes, d.len() as u64);
        prop_assert_eq!(t.n_elements, s.dims.iter().product::<u64>());
        prop_assert_eq!(t.offset % a, 0);
        prop_assert_eq!(g.tensor_data(t), &d[..]);
        prop_assert_eq!(g.tensor(t.name), Some(t));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn read_write_roundtrip(
        meta in metadata(),
        tensors in tensors(),
        align in alignment(),
    ) {
        let bytes = write(&meta, &tensors, align);
        let g = Gguf::parse(&bytes).unwrap();
        prop_assert_eq!(g.version(), 3);
        prop_assert_eq!(g.file_len(), bytes.len() as u64);
        check_same(&g, &meta, &tensors, align)?;
        touch_all(&g, &bytes);

        // Version 2 has the same layout.
        let mut v2 = bytes.clone();
        v2[4..8].copy_from_slice(&2u32.to_le_bytes());
        let g2 = Gguf::parse(&v2).unwrap();
        prop_assert_eq!(g2.version(), 2);
        check_same(&g2, &meta, &tensors, align)?;

        // Copying a parsed file reproduces it byte for byte.
        let mut w = GgufWriter::new();
        w.copy_metadata(&g).unwrap();
        for t in g.tensors() {
            w.tensor(TensorSpec { name: t.name.into(), dims: t.shape().into(), ty: t.ty }).unwrap();
        }
        let data: Vec<&[u8]> = g.tensors().iter().map(|t| g.tensor_data(t)).collect();
        prop_assert!(w.to_bytes(&data).unwrap() == bytes);
    }
}

/// The largest alignment (1 MiB) round-trips too (too big for the proptest).
#[test]
fn roundtrip_max_alignment() {
    let tensors: Vec<_> = [
        common::spec("a", &[32], GgmlType::Q4_0),
        common::spec("b", &[3, 5], GgmlType::F16),
    ]
    .into_iter()
    .map(|s| {
        let d = common::data_for(&s, 9);
        (s, d)
    })
    .collect();
    let meta = vec![("k".to_string(), Owned::Str("v".into()))];
    let bytes = write(&meta, &tensors, Some(1 << 20));
    let g = Gguf::parse(&bytes).unwrap();
    check_same(&g, &meta, &tensors, Some(1 << 20)).unwrap();
    assert_eq!(g.data_offset(), 1 << 20);
    assert_eq!(g.tensors()[1].offset, 1 << 20);
}

// ---------------------------------------------------------------------------
// Mutated files
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Mutation {
    /// XOR a byte.
    Flip(usize, u8),
    /// Overwrite 8 bytes with a u64 (counts, lengths, dims, offsets).
    SetU64(usize, u64),
    /// Overwrite 4 bytes with a u32 (types, n_dims, version).
    SetU32(usize, u32),
    /// Cut the file.
    Truncate(usize),
    /// Remove a run of bytes.
    Delete(usize, usize),
    /// Insert bytes.
    Insert(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let big = prop_oneof![
        proptest::sample::select(vec![
            0,
            1,
            2,
            3,
            4,
            5,
            13,
            31,
            32,
            64,
            255,
            1 << 16,
            1 << 31,
            1 << 32,
            1 << 40,
            1 << 62,
            i64::MAX as u64,
            u64::MAX - 1,
            u64::MAX,
        ]),
        any::<u64>(),
    ];
    prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        3 => (any::<usize>(), big.clone()).prop_map(|(i, v)| Mutation::SetU64(i, v)),
        2 => (any::<usize>(), big).prop_map(|(i, v)| Mutation::SetU32(i, v as u32)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), 1..16usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
    ]
}

fn apply(b: &mut Vec<u8>, m: &Mutation) {
    if b.is_empty() {
        return;
    }
    let at = |i: usize, len: usize| i % len;
    match m {
        Mutation::Flip(i, x) => {
            let i = at(*i, b.len());
            b[i] ^= x;
        }
        Mutation::SetU64(i, v) => {
            let i = at(*i, b.len());
            let n = (b.len() - i).min(8);
            b[i..i + n].copy_from_slice(&v.to_le_bytes()[..n]);
        }
        Mutation::SetU32(i, v) => {
            let i = at(*i, b.len());
            let n = (b.len() - i).min(4);
            b[i..i + n].copy_from_slice(&v.to_le_bytes()[..n]);
        }
        Mutation::Truncate(i) => b.truncate(at(*i, b.len())),
        Mutation::Delete(i, n) => {
            let i = at(*i, b.len());
            let end = (i + n).min(b.len());
            b.drain(i..end);
        }
        Mutation::Insert(i, x) => {
            let i = at(*i, b.len() + 1);
            b.splice(i..i, x.iter().copied());
        }
    }
}

fn bases() -> Vec<Vec<u8>> {
    common::fuzz_seeds().into_iter().map(|(_, b)| b).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Any mutation of a valid file is `Ok` or `Error::Gguf`, never a panic;
    /// when it parses, everything in it can be read.
    #[test]
    fn mutated_files_never_panic(
        base in 0..6usize,
        muts in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut b = bases().swap_remove(base);
        for m in &muts {
            apply(&mut b, m);
        }
        if let Some(g) = ok_or_gguf_err(&b) {
            touch_all(&g, &b);
        }
    }
}

/// Every single-byte change of the all-types file, to every value that
/// matters to the parser's branches, is `Ok` or `Error::Gguf`.
#[test]
fn every_byte_of_all_types_model_mutated() {
    let base = common::all_types_model();
    let mut b = base.clone();
    for i in 0..base.len() {
        for v in [
            0u8,
            1,
            2,
            7,
            8,
            9,
            12,
            13,
            0x7f,
            0x80,
            0xc3,
            0xff,
            base[i] ^ 1,
        ] {
            b[i] = v;
            if let Some(g) = ok_or_gguf_err(&b) {
                touch_all(&g, &b);
            }
        }
        b[i] = base[i];
    }
}

// ---------------------------------------------------------------------------
// The default model
// ---------------------------------------------------------------------------

/// A writer that compares what it is given with the expected bytes.
struct Compare<'a> {
    expected: &'a [u8],
    pos: usize,
    first_diff: Option<usize>,
}

impl Write for Compare<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.first_diff.is_none() {
            let want = self.expected.get(self.pos..).unwrap_or(&[]);
            let n = buf.len().min(want.len());
            if let Some(i) = (0..n).find(|&i| buf[i] != want[i]) {
                self.first_diff = Some(self.pos + i);
            } else if n < buf.len() {
                self.first_diff = Some(self.pos + n);
            }
        }
        self.pos += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Copying the default model (its metadata with `copy_metadata`, its tensor
/// infos in file order, its tensor data) reproduces it exactly: header,
/// metadata, tensor infos, padding and data. This holds because the file was
/// written by llama.cpp's gguf-py, which lays tensors out in declaration order,
/// each at the next multiple of the alignment (32) after the previous one,
/// with zero padding; the same rule as `GgufWriter`.
#[test]
fn writer_reproduces_default_model() {
    let Some(f) = default_model("writer_reproduces_default_model") else {
        return;
    };
    let bytes = f.bytes();
    let g = f.parse().unwrap();
    assert_eq!(g.version(), 3);
    let mut w = GgufWriter::new();
    w.copy_metadata(&g).unwrap();
    for t in g.tensors() {
        w.tensor(TensorSpec {
            name: t.name.to_string(),
            dims: t.shape().to_vec(),
            ty: t.ty,
        })
        .unwrap();
    }
    let mut out = Compare {
        expected: bytes,
        pos: 0,
        first_diff: None,
    };
    w.write(&mut out, |i, o| o.write_all(g.tensor_data(&g.tensors()[i])))
        .unwrap();
    assert_eq!(out.first_diff, None, "first difference at byte");
    assert_eq!(out.pos, bytes.len());
}

// ---------------------------------------------------------------------------
// The fuzz seed corpus
// ---------------------------------------------------------------------------

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/gguf_parse")
}

/// The committed seeds are the files `common::fuzz_seeds` builds, and parse.
#[test]
fn fuzz_seeds_parse() {
    let mut total = 0;
    for (name, want) in common::fuzz_seeds() {
        let g = Gguf::parse(&want).unwrap_or_else(|e| panic!("{name}: {e}"));
        touch_all(&g, &want);
        let path = corpus_dir().join(name);
        match std::fs::read(&path) {
            Ok(have) => assert!(
                have == want,
                "{} is stale: rerun `cargo test -p ember --test gguf_roundtrip -- --ignored write_fuzz_seeds`",
                path.display()
            ),
            Err(e) => panic!("{}: {e}", path.display()),
        }
        total += want.len();
    }
    assert!(total < 100 * 1024, "seeds are {total} bytes");
}

/// Writes the seed corpus (run by hand after changing `common::fuzz_seeds`).
#[test]
#[ignore = "writes fuzz/corpus/gguf_parse/"]
fn write_fuzz_seeds() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, b) in common::fuzz_seeds() {
        std::fs::write(corpus_dir().join(name), b).unwrap();
    }
}
