//! GGUF metadata values, borrowed from the file's bytes.

use crate::{Error, Result};
use std::fmt;

/// A GGUF metadata value type, as stored on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    /// u8
    U8 = 0,
    /// i8
    I8 = 1,
    /// u16
    U16 = 2,
    /// i16
    I16 = 3,
    /// u32
    U32 = 4,
    /// i32
    I32 = 5,
    /// f32
    F32 = 6,
    /// bool (one byte, 0 or 1)
    Bool = 7,
    /// UTF-8 string: u64 length then bytes
    String = 8,
    /// array: u32 element type, u64 count, elements
    Array = 9,
    /// u64
    U64 = 10,
    /// i64
    I64 = 11,
    /// f64
    F64 = 12,
}

impl ValueType {
    /// The type for an on-disk id.
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Size in bytes of a fixed-size value, `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The smallest number of bytes one value of this type takes on disk.
    pub fn min_size(self) -> usize {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            t => t.fixed_size().unwrap_or(1),
        }
    }

    /// The name llama.cpp prints for this type.
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "str",
            Array => "arr",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

/// A metadata value. Strings and arrays borrow the file's bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// u8
    U8(u8),
    /// i8
    I8(i8),
    /// u16
    U16(u16),
    /// i16
    I16(i16),
    /// u32
    U32(u32),
    /// i32
    I32(i32),
    /// f32
    F32(f32),
    /// bool
    Bool(bool),
    /// a UTF-8 string
    Str(&'a str),
    /// an array
    Array(Array<'a>),
    /// u64
    U64(u64),
    /// i64
    I64(i64),
    /// f64
    F64(f64),
}

impl<'a> Value<'a> {
    /// The on-disk type.
    pub fn ty(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::Str(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The value as an integer, if it is one of the integer types.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// A human-readable name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Array(a) => match a.elem_type() {
                ValueType::String => "an array of strings",
                ValueType::Array => "an array of arrays",
                _ => "an array of numbers",
            },
            Value::Str(_) => "a string",
            Value::Bool(_) => "a bool",
            Value::F32(_) | Value::F64(_) => "a float",
            _ => "an integer",
        }
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Str(s) => write!(f, "{s}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Array(a) => write!(f, "arr[{},{}]", a.elem_type().name(), a.len()),
        }
    }
}

/// An array value: its element type, count and the raw bytes of its
/// elements, exactly as in the file. Elements are decoded on access.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Array<'a> {
    pub(crate) elem: ValueType,
    pub(crate) len: usize,
    pub(crate) raw: &'a [u8],
    pub(crate) offset: u64,
}

impl<'a> Array<'a> {
    /// The element type.
    pub fn elem_type(&self) -> ValueType {
        self.elem
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw element bytes as stored in the file (little-endian).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Byte offset of the first element in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Iterates over the elements. Nested arrays come back as [`Value::Array`].
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            arr: *self,
            pos: 0,
            index: 0,
        }
    }

    /// Iterates over an array of strings.
    pub fn iter_str(&self) -> impl Iterator<Item = Result<&'a str>> + 'a {
        let arr = *self;
        let mut it = self.iter();
        std::iter::from_fn(move || {
            let v = it.next()?;
            Some(v.and_then(|v| match v {
                Value::Str(s) => Ok(s),
                other => Err(Error::Gguf {
                    offset: arr.offset,
                    msg: format!(
                        "expected an array of strings, found elements of type {}",
                        other.ty().name()
                    ),
                }),
            }))
        })
    }

    /// Iterates over an array of strings as raw bytes (no UTF-8 check).
    pub fn iter_bytes(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let raw = self.raw;
        let n = if self.elem == ValueType::String {
            self.len
        } else {
            0
        };
        let mut pos = 0usize;
        (0..n).map_while(move |_| {
            let len = raw.get(pos..pos + 8)?;
            let len = usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?;
            let s = raw.get(pos + 8..(pos + 8).checked_add(len)?)?;
            pos += 8 + len;
            Some(s)
        })
    }

    /// The elements as `i32`s; integer elements of any width are accepted when they fit.
    pub fn to_i32_vec(&self) -> Result<Vec<i32>> {
        // The common case (token types), without decoding each value.
        if let Some(v) = self.raw4(ValueType::I32, i32::from_le_bytes) {
            return Ok(v);
        }
        self.iter()
            .map(|v| {
                let v = v?;
                v.as_i128()
                    .and_then(|x| i32::try_from(x).ok())
                    .ok_or_else(|| self.elem_err("integers that fit i32"))
            })
            .collect()
    }

    /// The elements as `u32`s; integer elements of any width are accepted when they fit.
    pub fn to_u32_vec(&self) -> Result<Vec<u32>> {
        self.iter()
            .map(|v| {
                let v = v?;
                v.as_i128()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| self.elem_err("integers that fit u32"))
            })
            .collect()
    }

    /// The elements as `f32`s (f32 or f64 elements).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        // The common case (token scores), without decoding each value.
        if let Some(v) = self.raw4(ValueType::F32, f32::from_le_bytes) {
            return Ok(v);
        }
        self.iter()
            .map(|v| match v? {
                Value::F32(x) => Ok(x),
                Value::F64(x) => Ok(x as f32),
                _ => Err(self.elem_err("floats")),
            })
            .collect()
    }

    /// The elements read straight from the raw bytes, when they are all of
    /// the 4-byte type `ty`.
    fn raw4<T>(&self, ty: ValueType, f: fn([u8; 4]) -> T) -> Option<Vec<T>> {
        (self.elem == ty && self.raw.len() == self.len.saturating_mul(4)).then(|| {
            self.raw
                .chunks_exact(4)
                .map(|c| f([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }

    fn elem_err(&self, want: &str) -> Error {
        Error::Gguf {
            offset: self.offset,
            msg: format!(
                "expected an array of {want}, found elements of type {}",
                self.elem.name()
            ),
        }
    }
}

/// Iterator over an [`Array`]'s elements.
#[derive(Debug, Clone)]
pub struct ArrayIter<'a> {
    arr: Array<'a>,
    pos: usize,
    index: usize,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Result<Value<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.arr.len {
            return None;
        }
        self.index += 1;
        let mut cur = super::parse::Cursor::with_base(self.arr.raw, self.pos, self.arr.offset);
        let r = cur.value(self.arr.elem);
        self.pos = cur.pos();
        if r.is_err() {
            self.index = self.arr.len;
        }
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.arr.len - self.index;
        (n, Some(n))
    }
}
