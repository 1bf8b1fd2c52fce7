//! The GGUF parser. Every read is bounds-checked, every count is capped by
//! the bytes that remain, and nested arrays are walked without recursion.

use super::value::{Array, Value, ValueType};
use super::{Gguf, TensorInfo, DEFAULT_ALIGNMENT, MAX_ALIGNMENT, MAX_DIMS, MAX_NAME_LEN};
use crate::{Error, GgmlType, Result};
use std::collections::HashMap;

/// `"GGUF"` as a little-endian u32.
pub(crate) const MAGIC: [u8; 4] = *b"GGUF";

/// The most metadata or tensor records reserved before any is read.
const PREALLOC_MAX: usize = 4096;

/// A bounds-checked reader over a byte slice. `base` is the file offset of
/// `buf[0]`, so error offsets are file offsets.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
}

pub(crate) fn err(offset: u64, msg: impl Into<String>) -> Error {
    Error::Gguf {
        offset,
        msg: msg.into(),
    }
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor {
            buf,
            pos: 0,
            base: 0,
        }
    }

    pub(crate) fn with_base(buf: &'a [u8], pos: usize, base: u64) -> Self {
        Cursor { buf, pos, base }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// File offset of the cursor.
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    #[inline]
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        match self.buf.get(self.pos..).and_then(|rest| rest.get(..n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(self.eof(n, what)),
        }
    }

    #[cold]
    #[inline(never)]
    fn eof(&self, n: usize, what: &str) -> Error {
        err(
            self.offset(),
            format!(
                "file ends inside {what}: needs {n} bytes, {} remain",
                self.remaining()
            ),
        )
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline]
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    #[inline]
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count that must fit in the remaining bytes at `min_each` bytes per item.
    #[inline]
    fn count(&mut self, what: &str, min_each: usize) -> Result<usize> {
        let n = self.u64(what)?;
        let cap = self.remaining() / min_each.max(1);
        if n > cap as u64 {
            return Err(self.too_many(n, cap, what));
        }
        Ok(n as usize)
    }

    /// The error for a count `n` (just read) above `cap`.
    #[cold]
    #[inline(never)]
    fn too_many(&self, n: u64, cap: usize, what: &str) -> Error {
        err(
            self.offset() - 8,
            format!(
                "{what} is {n}, but only {} bytes remain (room for at most {cap})",
                self.remaining()
            ),
        )
    }

    #[inline]
    pub(crate) fn string(&mut self, what: &str) -> Result<&'a str> {
        let n = self.count(what, 1)?;
        let bytes = self.take(n, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s),
            Err(e) => Err(err(
                self.offset() - n as u64 + e.valid_up_to() as u64,
                format!("{what} is not valid UTF-8"),
            )),
        }
    }

    fn value_type(&mut self, what: &str) -> Result<ValueType> {
        let at = self.offset();
        let id = self.u32(what)?;
        ValueType::from_id(id).ok_or_else(|| err(at, format!("unknown metadata value type {id}")))
    }

    /// Reads one value of type `ty`.
    pub(crate) fn value(&mut self, ty: ValueType) -> Result<Value<'a>> {
        let what = "a metadata value";
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(what)?[0]),
            ValueType::I8 => Value::I8(self.array::<1>(what)?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => {
                let at = self.offset();
                match self.array::<1>(what)?[0] {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    b => return Err(err(at, format!("bool value is {b}, not 0 or 1"))),
                }
            }
            ValueType::String => Value::Str(self.string("a string value")?),
            ValueType::Array => Value::Array(self.array_value()?),
        })
    }

    /// Reads an array header and skips over its elements, nested arrays
    /// included, with an explicit stack instead of recursion.
    fn array_value(&mut self) -> Result<Array<'a>> {
        let elem = self.value_type("an array's element type")?;
        let len = self.count("an array's length", elem.min_size())?;
        let start = self.pos;
        let offset = self.offset();
        // Stack of (element type, elements left) for arrays being walked.
        let mut stack: Vec<(ValueType, usize)> = vec![(elem, len)];
        while let Some(top) = stack.last_mut() {
            if top.1 == 0 {
                stack.pop();
                continue;
            }
            let ty = top.0;
            match ty.fixed_size() {
                Some(sz) => {
                    // A run of fixed-size elements: skip them all at once.
                    let n = top.1;
                    top.1 = 0;
                    let bytes = n
                        .checked_mul(sz)
                        .ok_or_else(|| err(self.offset(), "array size overflows"))?;
                    if ty == ValueType::Bool {
                        let at = self.offset();
                        let s = self.take(bytes, "an array of bools")?;
                        if let Some(i) = s.iter().position(|&b| b > 1) {
                            return Err(err(at + i as u64, "bool value is not 0 or 1"));
                        }
                    } else {
                        self.take(bytes, "an array's elements")?;
                    }
                }
                None if ty == ValueType::String => {
                    // A run of strings: walk them in one tight loop.
                    let n = top.1;
                    top.1 = 0;
                    // Lengths are checked here, UTF-8 when an element is read:
                    // a 49152-token vocabulary is walked at every parse.
                    for _ in 0..n {
                        let len = self.count("a string's length in an array", 1)?;
                        self.take(len, "a string in an array")?;
                    }
                }
                None => {
                    top.1 -= 1;
                    let inner = self.value_type("a nested array's element type")?;
                    let n = self.count("a nested array's length", inner.min_size())?;
                    stack.push((inner, n));
                }
            }
        }
        Ok(Array {
            elem,
            len,
            raw: &self.buf[start..self.pos],
            offset,
        })
    }
}

/// Parses a whole GGUF image.
pub(crate) fn parse(bytes: &[u8]) -> Result<Gguf<'_>> {
    let mut c = Cursor::new(bytes);
    if bytes.is_empty() {
        return Err(err(0, "the file is empty, not a GGUF model"));
    }
    let magic = c.take(4, "the magic number")?;
    if magic != MAGIC {
        return Err(err(
            0,
            format!(
                "not a GGUF file (magic is {:02x?}, expected \"GGUF\")",
                magic
            ),
        ));
    }
    let version = c.u32("the version")?;
    match version {
        2 | 3 => {}
        1 => {
            return Err(err(
                4,
                "GGUF version 1 is not supported (convert the file with a current llama.cpp)",
            ))
        }
        // A big-endian writer stores 2 or 3 byte-swapped (the magic stays "GGUF").
        v if (1..=3).contains(&v.swap_bytes()) => {
            return Err(err(
                4,
                "this is a big-endian GGUF file; Ember reads little-endian GGUF only",
            ))
        }
        v => {
            return Err(err(
                4,
                format!("unsupported GGUF version {v} (Ember reads 2 and 3)"),
            ))
        }
    }
    // Each tensor info takes at least 8 (name) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
    let n_tensors = c.count("the tensor count", 32)?;
    // Each key-value takes at least 8 (key) + 4 (type) + 1 (value).
    let n_kv = c.count("the metadata count", 13)?;

    // Counts are capped by the bytes left, but a large hostile file could still
    // ask for a few times its size up front: reserve a bounded amount and let
    // the vectors grow only as records actually parse.
    let mut kvs: Vec<(&str, Value<'_>)> = Vec::with_capacity(n_kv.min(PREALLOC_MAX));
    let mut kv_index: HashMap<&str, usize> = HashMap::with_capacity(n_kv.min(PREALLOC_MAX));
    let mut alignment = DEFAULT_ALIGNMENT;
    for _ in 0..n_kv {
        let at = c.offset();
        let key = c.string("a metadata key")?;
        let ty = c.value_type("a metadata value type")?;
        let val_at = c.offset();
        let v = c.value(ty)?;
        if kv_index.insert(key, kvs.len()).is_some() {
            return Err(err(at, format!("duplicate metadata key `{key}`")));
        }
        if key == "general.alignment" {
            let a = match v {
                Value::U32(a) => a as u64,
                _ => {
                    return Err(err(
                        val_at,
                        format!("general.alignment must be a u32, found {}", v.ty().name()),
                    ))
                }
            };
            if a == 0 || !a.is_power_of_two() || a > MAX_ALIGNMENT {
                return Err(err(
                    val_at,
                    format!("general.alignment is {a}; it must be a power of two from 1 to {MAX_ALIGNMENT}"),
                ));
            }
            alignment = a;
        }
        kvs.push((key, v));
    }

    let mut tensors: Vec<TensorInfo<'_>> = Vec::with_capacity(n_tensors.min(PREALLOC_MAX));
    let mut t_index: HashMap<&str, usize> = HashMap::with_capacity(n_tensors.min(PREALLOC_MAX));
    for _ in 0..n_tensors {
        let at = c.offset();
        let name = c.string("a tensor name")?;
        if name.len() >= MAX_NAME_LEN {
            return Err(err(
                at,
                format!(
                    "tensor name is {} bytes; the limit is {}",
                    name.len(),
                    MAX_NAME_LEN - 1
                ),
            ));
        }
        let nd_at = c.offset();
        let n_dims = c.u32("a tensor's dimension count")?;
        if n_dims == 0 || n_dims as usize > MAX_DIMS {
            return Err(err(
                nd_at,
                format!("tensor `{name}` has {n_dims} dimensions; 1 to {MAX_DIMS} are allowed"),
            ));
        }
        let mut dims = [1u64; MAX_DIMS];
        let mut n_elements: u64 = 1;
        for d in dims.iter_mut().take(n_dims as usize) {
            let d_at = c.offset();
            *d = c.u64("a tensor dimension")?;
            if *d == 0 {
                return Err(err(d_at, format!("tensor `{name}` has a zero dimension")));
            }
            if *d > i64::MAX as u64 {
                return Err(err(
                    d_at,
                    format!("tensor `{name}` has dimension {} (over i64::MAX)", *d),
                ));
            }
            n_elements = n_elements
                .checked_mul(*d)
                .filter(|&n| n <= i64::MAX as u64)
                .ok_or_else(|| err(d_at, format!("tensor `{name}`'s element count overflows")))?;
        }
        let ty_at = c.offset();
        let ty_id = c.u32("a tensor type")?;
        let ty = GgmlType::from_id(ty_id).ok_or_else(|| {
            err(
                ty_at,
                format!("tensor `{name}` has unknown ggml type id {ty_id}"),
            )
        })?;
        if !dims[0].is_multiple_of(ty.block_size() as u64) {
            return Err(err(
                nd_at + 4,
                format!(
                    "tensor `{name}`: row length {} is not a multiple of {}'s block size {}",
                    dims[0],
                    ty,
                    ty.block_size()
                ),
            ));
        }
        let n_bytes = ty
            .row_bytes(n_elements)
            .ok_or_else(|| err(nd_at, format!("tensor `{name}`'s byte size overflows")))?;
        let off_at = c.offset();
        let offset = c.u64("a tensor offset")?;
        if !offset.is_multiple_of(alignment) {
            return Err(err(
                off_at,
                format!("tensor `{name}`'s offset {offset} is not a multiple of the alignment {alignment}"),
            ));
        }
        if t_index.insert(name, tensors.len()).is_some() {
            return Err(err(at, format!("duplicate tensor name `{name}`")));
        }
        tensors.push(TensorInfo {
            name,
            n_dims,
            dims,
            ty,
            offset,
            n_bytes,
            n_elements,
            info_offset: at,
        });
    }

    let info_end = c.offset();
    let data_start = info_end
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| err(info_end, "data section offset overflows"))?;
    let file_len = bytes.len() as u64;
    if data_start > file_len && !tensors.is_empty() {
        return Err(err(
            info_end,
            format!("file ends before the data section (which starts at byte {data_start})"),
        ));
    }
    let data = bytes.get(data_start as usize..).unwrap_or(&[]);
    let data_len = data.len() as u64;

    // Tensor ranges: inside the data section, and not overlapping.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_unstable_by_key(|&i| (tensors[i].offset, tensors[i].n_bytes));
    let mut prev_end = 0u64;
    let mut prev_name = "";
    for &i in &order {
        let t = &tensors[i];
        let end = t.offset.checked_add(t.n_bytes).ok_or_else(|| {
            err(
                t.info_offset,
                format!("tensor `{}`'s range overflows", t.name),
            )
        })?;
        if end > data_len {
            return Err(err(
                data_start.saturating_add(t.offset),
                format!(
                    "tensor `{}` ({} bytes at data offset {}) runs past the end of the file ({} data bytes; is the file truncated?)",
                    t.name, t.n_bytes, t.offset, data_len
                ),
            ));
        }
        if t.offset < prev_end {
            return Err(err(
                data_start + t.offset,
                format!("tensor `{}` overlaps tensor `{prev_name}`", t.name),
            ));
        }
        prev_end = end;
        prev_name = t.name;
    }

    Ok(Gguf {
        version,
        alignment,
        kvs,
        kv_index,
        tensors,
        t_index,
        info_end,
        data_start,
        data,
        file_len,
    })
}
