//! A GGUF v3 writer: metadata, tensor infos and aligned tensor data.

use super::value::{Value, ValueType};
use super::{Gguf, DEFAULT_ALIGNMENT, MAX_ALIGNMENT, MAX_DIMS, MAX_NAME_LEN};
use crate::{Error, GgmlType, Result};
use std::io::{self, Write};

/// A tensor to be written: name, dimensions (innermost first) and type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// Name.
    pub name: String,
    /// Dimensions, innermost (row length) first.
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
}

impl TensorSpec {
    /// Bytes of data this tensor takes.
    pub fn n_bytes(&self) -> Option<u64> {
        let n = self.dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
        self.ty.row_bytes(n)
    }
}

/// Builds a GGUF v3 file.
#[derive(Clone, Debug, Default)]
pub struct GgufWriter {
    alignment: u64,
    /// Keys with their encoded type id and value bytes.
    kvs: Vec<(String, Vec<u8>)>,
    tensors: Vec<TensorSpec>,
}

fn put_str(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s);
}

fn encode(buf: &mut Vec<u8>, v: &Value<'_>) {
    match *v {
        Value::U8(x) => buf.push(x),
        Value::I8(x) => buf.push(x as u8),
        Value::U16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => buf.push(x as u8),
        Value::Str(s) => put_str(buf, s.as_bytes()),
        Value::U64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => buf.extend_from_slice(&x.to_le_bytes()),
        Value::Array(a) => {
            // The raw bytes are already in file format, nested arrays included.
            buf.extend_from_slice(&(a.elem_type() as u32).to_le_bytes());
            buf.extend_from_slice(&(a.len() as u64).to_le_bytes());
            buf.extend_from_slice(a.raw());
        }
    }
}

impl GgufWriter {
    /// A writer with the default alignment (32).
    pub fn new() -> GgufWriter {
        GgufWriter {
            alignment: DEFAULT_ALIGNMENT,
            ..Default::default()
        }
    }

    /// Copies every metadata key of `src`, in order.
    pub fn copy_metadata(&mut self, src: &Gguf<'_>) -> Result<()> {
        for (k, v) in src.metadata() {
            self.kv(k, v)?;
        }
        Ok(())
    }

    /// Sets a metadata value (replacing any earlier value of that key).
    /// `general.alignment` also sets the data alignment.
    pub fn kv(&mut self, key: &str, v: &Value<'_>) -> Result<()> {
        if key == "general.alignment" {
            match *v {
                Value::U32(a) if a.is_power_of_two() && u64::from(a) <= MAX_ALIGNMENT => {
                    self.alignment = a.into()
                }
                _ => {
                    return Err(Error::Input(
                        "general.alignment must be a u32 power of two up to 1 MiB".into(),
                    ))
                }
            }
        }
        let mut buf = Vec::new();
        buf.extend_from_slice(&(v.ty() as u32).to_le_bytes());
        encode(&mut buf, v);
        self.set_raw(key, buf);
        Ok(())
    }

    fn set_raw(&mut self, key: &str, buf: Vec<u8>) {
        if let Some(slot) = self.kvs.iter_mut().find(|(k, _)| k == key) {
            slot.1 = buf;
        } else {
            self.kvs.push((key.to_string(), buf));
        }
    }

    /// Removes a metadata key, if present.
    pub fn remove(&mut self, key: &str) {
        self.kvs.retain(|(k, _)| k != key);
    }

    /// Sets a u32 value.
    pub fn kv_u32(&mut self, key: &str, v: u32) -> Result<()> {
        self.kv(key, &Value::U32(v))
    }

    /// Sets an f32 value.
    pub fn kv_f32(&mut self, key: &str, v: f32) -> Result<()> {
        self.kv(key, &Value::F32(v))
    }

    /// Sets a bool value.
    pub fn kv_bool(&mut self, key: &str, v: bool) -> Result<()> {
        self.kv(key, &Value::Bool(v))
    }

    /// Sets a string value.
    pub fn kv_str(&mut self, key: &str, v: &str) -> Result<()> {
        self.kv(key, &Value::Str(v))
    }

    fn array_header(elem: ValueType, len: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        buf.extend_from_slice(&(ValueType::Array as u32).to_le_bytes());
        buf.extend_from_slice(&(elem as u32).to_le_bytes());
        buf.extend_from_slice(&(len as u64).to_le_bytes());
        buf
    }

    /// Sets an array of strings.
    pub fn kv_str_array<S: AsRef<str>>(&mut self, key: &str, v: &[S]) {
        let mut buf = Self::array_header(ValueType::String, v.len());
        for s in v {
            put_str(&mut buf, s.as_ref().as_bytes());
        }
        self.set_raw(key, buf);
    }

    /// Sets an array of i32.
    pub fn kv_i32_array(&mut self, key: &str, v: &[i32]) {
        let mut buf = Self::array_header(ValueType::I32, v.len());
        v.iter()
            .for_each(|x| buf.extend_from_slice(&x.to_le_bytes()));
        self.set_raw(key, buf);
    }

    /// Sets an array of f32.
    pub fn kv_f32_array(&mut self, key: &str, v: &[f32]) {
        let mut buf = Self::array_header(ValueType::F32, v.len());
        v.iter()
            .for_each(|x| buf.extend_from_slice(&x.to_le_bytes()));
        self.set_raw(key, buf);
    }

    /// Declares a tensor. Data are supplied, in declaration order, to [`GgufWriter::write`].
    pub fn tensor(&mut self, spec: TensorSpec) -> Result<()> {
        let bad = |m: String| Err(Error::Input(format!("tensor `{}`: {m}", spec.name)));
        if spec.name.len() >= MAX_NAME_LEN {
            return bad(format!("name longer than {} bytes", MAX_NAME_LEN - 1));
        }
        if spec.dims.is_empty() || spec.dims.len() > MAX_DIMS || spec.dims.contains(&0) {
            return bad("needs 1 to 4 non-zero dimensions".into());
        }
        if !spec.dims[0].is_multiple_of(spec.ty.block_size() as u64) || spec.n_bytes().is_none() {
            return bad(format!(
                "row length {} does not fit type {}",
                spec.dims[0], spec.ty
            ));
        }
        if self.tensors.iter().any(|t| t.name == spec.name) {
            return bad("duplicate name".into());
        }
        self.tensors.push(spec);
        Ok(())
    }

    /// The declared tensors.
    pub fn tensors(&self) -> &[TensorSpec] {
        &self.tensors
    }

    /// Writes the file. `data(i, w)` must write exactly the bytes of tensor `i`.
    pub fn write<W: Write>(
        &self,
        w: &mut W,
        mut data: impl FnMut(usize, &mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        let a = self.alignment;
        let mut head = Vec::new();
        head.extend_from_slice(b"GGUF");
        head.extend_from_slice(&3u32.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            put_str(&mut head, k.as_bytes());
            head.extend_from_slice(v);
        }
        let mut offset = 0u64;
        let mut sizes = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            put_str(&mut head, t.name.as_bytes());
            head.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            t.dims
                .iter()
                .for_each(|d| head.extend_from_slice(&d.to_le_bytes()));
            head.extend_from_slice(&t.ty.id().to_le_bytes());
            head.extend_from_slice(&offset.to_le_bytes());
            let n = t.n_bytes().unwrap_or(0);
            sizes.push(n);
            offset = (offset + n).next_multiple_of(a);
        }
        let pad = (head.len() as u64).next_multiple_of(a) - head.len() as u64;
        head.resize(head.len() + pad as usize, 0);
        w.write_all(&head)?;
        for (i, &n) in sizes.iter().enumerate() {
            let mut cw = Counting { inner: w, n: 0 };
            data(i, &mut cw)?;
            if cw.n != n {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "tensor `{}`: wrote {} bytes, expected {n}",
                        self.tensors[i].name, cw.n
                    ),
                ));
            }
            let pad = n.next_multiple_of(a) - n;
            w.write_all(&vec![0u8; pad as usize])?;
        }
        Ok(())
    }

    /// Writes the file to memory, with the tensor data given in declaration order.
    pub fn to_bytes(&self, data: &[&[u8]]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write(&mut out, |i, w| {
            w.write_all(data.get(i).copied().unwrap_or(&[]))
        })?;
        Ok(out)
    }
}

struct Counting<'w, W: Write> {
    inner: &'w mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
