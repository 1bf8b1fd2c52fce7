//! GGUF: the model file format, read zero-copy and treated as hostile.
//!
//! [`Gguf::parse`] reads any byte slice (a flash region, `include_bytes!`, a
//! memory map); [`GgufFile::open`] maps a file. Tensor data and metadata
//! strings are borrowed from those bytes: nothing is copied.
//!
//! Every malformed input is a typed [`Error::Gguf`](crate::Error::Gguf) that
//! names the problem and the byte offset where it was found.

pub mod mmap;
mod parse;
mod value;
mod writer;

pub use value::{Array, ArrayIter, Value, ValueType};
pub use writer::{GgufWriter, TensorSpec};

use crate::{Error, GgmlType, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The largest `general.alignment` Ember accepts (1 MiB).
pub const MAX_ALIGNMENT: u64 = 1 << 20;
/// The most dimensions a tensor may have.
pub const MAX_DIMS: usize = 4;
/// Tensor names must be shorter than this (ggml's `GGML_MAX_NAME`).
pub const MAX_NAME_LEN: usize = 64;

/// A tensor's description from the file's tensor-info section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    /// The tensor's name.
    pub name: &'a str,
    /// Number of dimensions (1..=4).
    pub n_dims: u32,
    /// Dimensions, innermost (row length) first, as ggml's `ne`; unused ones are 1.
    pub dims: [u64; MAX_DIMS],
    /// Element type.
    pub ty: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Size of the data in bytes.
    pub n_bytes: u64,
    /// Number of elements.
    pub n_elements: u64,
    /// File offset of this tensor's info record.
    pub info_offset: u64,
}

impl TensorInfo<'_> {
    /// The used dimensions.
    pub fn shape(&self) -> &[u64] {
        &self.dims[..self.n_dims as usize]
    }
}

/// A parsed GGUF image, borrowing the bytes it was parsed from.
#[derive(Debug, Clone)]
pub struct Gguf<'a> {
    version: u32,
    alignment: u64,
    kvs: Vec<(&'a str, Value<'a>)>,
    kv_index: HashMap<&'a str, usize>,
    tensors: Vec<TensorInfo<'a>>,
    t_index: HashMap<&'a str, usize>,
    info_end: u64,
    data_start: u64,
    data: &'a [u8],
    file_len: u64,
}

impl<'a> Gguf<'a> {
    /// Parses a GGUF image from bytes.
    ///
    /// # Errors
    /// [`Error::Gguf`] naming the problem and its byte offset, for any
    /// malformed input.
    pub fn parse(bytes: &'a [u8]) -> Result<Gguf<'a>> {
        parse::parse(bytes)
    }

    /// The format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Tensor data alignment.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// The metadata, in file order.
    pub fn metadata(&self) -> &[(&'a str, Value<'a>)] {
        &self.kvs
    }

    /// The tensor infos, in file order.
    pub fn tensors(&self) -> &[TensorInfo<'a>] {
        &self.tensors
    }

    /// File offset where the tensor-info section ends.
    pub fn tensor_info_end(&self) -> u64 {
        self.info_end
    }

    /// File offset where the data section starts.
    pub fn data_offset(&self) -> u64 {
        self.data_start
    }

    /// Size of the whole image in bytes.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// A tensor's info by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo<'a>> {
        self.t_index.get(name).map(|&i| &self.tensors[i])
    }

    /// A tensor's info by name, or [`Error::MissingTensor`].
    pub fn require_tensor(&self, name: &str) -> Result<&TensorInfo<'a>> {
        self.tensor(name)
            .ok_or_else(|| Error::MissingTensor(name.to_string()))
    }

    /// A tensor's data: a borrowed slice of the image.
    pub fn tensor_data(&self, t: &TensorInfo<'_>) -> &'a [u8] {
        // Ranges were checked at parse time; `get` keeps this panic-free for
        // a TensorInfo from another file.
        let start = t.offset as usize;
        self.data
            .get(start..start.saturating_add(t.n_bytes as usize))
            .unwrap_or(&[])
    }

    /// The byte range of a tensor's data within the whole image.
    pub fn tensor_range(&self, t: &TensorInfo<'_>) -> std::ops::Range<usize> {
        // Saturating, so a TensorInfo from another file cannot overflow.
        let start = self.data_start.saturating_add(t.offset) as usize;
        start..start.saturating_add(t.n_bytes as usize)
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.kv_index.get(key).map(|&i| &self.kvs[i].1)
    }

    fn require(&self, key: &str) -> Result<&Value<'a>> {
        self.get(key)
            .ok_or_else(|| Error::MissingKey(key.to_string()))
    }

    fn int(&self, key: &str, expected: &'static str) -> Result<i128> {
        let v = self.require(key)?;
        v.as_i128().ok_or_else(|| Error::KeyType {
            key: key.to_string(),
            expected,
            found: v.type_name(),
        })
    }

    fn fit<T: TryFrom<i128>>(&self, key: &str, v: i128, expected: &'static str) -> Result<T> {
        T::try_from(v).map_err(|_| Error::KeyType {
            key: key.to_string(),
            expected,
            found: "an integer out of range",
        })
    }

    /// An unsigned 32-bit integer (any integer type that fits is accepted).
    pub fn u32(&self, key: &str) -> Result<u32> {
        let v = self.int(key, "a u32")?;
        self.fit(key, v, "a u32")
    }

    /// An unsigned 64-bit integer (any integer type that fits is accepted).
    pub fn u64(&self, key: &str) -> Result<u64> {
        let v = self.int(key, "a u64")?;
        self.fit(key, v, "a u64")
    }

    /// A signed 32-bit integer (any integer type that fits is accepted).
    pub fn i32(&self, key: &str) -> Result<i32> {
        let v = self.int(key, "an i32")?;
        self.fit(key, v, "an i32")
    }

    /// A float (f32, or f64 narrowed).
    pub fn f32(&self, key: &str) -> Result<f32> {
        match *self.require(key)? {
            Value::F32(x) => Ok(x),
            Value::F64(x) => Ok(x as f32),
            ref v => Err(Error::KeyType {
                key: key.to_string(),
                expected: "a float",
                found: v.type_name(),
            }),
        }
    }

    /// A bool.
    pub fn bool(&self, key: &str) -> Result<bool> {
        match *self.require(key)? {
            Value::Bool(b) => Ok(b),
            ref v => Err(Error::KeyType {
                key: key.to_string(),
                expected: "a bool",
                found: v.type_name(),
            }),
        }
    }

    /// A string.
    pub fn str(&self, key: &str) -> Result<&'a str> {
        match *self.require(key)? {
            Value::Str(s) => Ok(s),
            ref v => Err(Error::KeyType {
                key: key.to_string(),
                expected: "a string",
                found: v.type_name(),
            }),
        }
    }

    /// An array.
    pub fn array(&self, key: &str) -> Result<&Array<'a>> {
        match self.require(key)? {
            Value::Array(a) => Ok(a),
            v => Err(Error::KeyType {
                key: key.to_string(),
                expected: "an array",
                found: v.type_name(),
            }),
        }
    }

    /// An optional value: `Ok(None)` when the key is absent, an error when present with the wrong type.
    pub fn opt<T>(&self, key: &str, f: impl FnOnce(&Self, &str) -> Result<T>) -> Result<Option<T>> {
        if self.get(key).is_some() {
            f(self, key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The model architecture (`general.architecture`).
    pub fn architecture(&self) -> Result<&'a str> {
        self.str("general.architecture")
    }
}

/// How a model file's bytes are brought into memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadMode {
    /// Map the file read-only, every page mapped up front: zero-copy, the
    /// page cache is the one copy, shared by every process that maps the
    /// file. The default.
    #[default]
    Map,
    /// Read the file into this process's memory, in transparent huge pages
    /// on Linux (`--no-mmap`, as llama.cpp names it). It costs a copy at
    /// load and private memory, and makes decode faster where the page
    /// cache holds the file in 4 KiB pages and TLB misses are dear. On this
    /// 2-vCPU VM the default model loaded in 42–82 ms (9–15 ms mapped) and
    /// decoded at 1 thread at 119.0 / 117.2 tok/s against 84.9 / 92.5
    /// mapped (`docs/performance.md`, "Weights in huge pages").
    Read,
}

/// A GGUF file mapped into memory.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    map: mmap::Mapped,
}

impl GgufFile {
    /// Maps the file at `path` and checks that it parses.
    ///
    /// # Errors
    /// [`Error::Io`] when the file can't be read, [`Error::Gguf`] when it is malformed.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile> {
        Self::open_with(path, false)
    }

    /// Like [`GgufFile::open`], mapping every page up front when `populate`
    /// is set (for a model about to be run).
    pub fn open_with(path: impl AsRef<Path>, populate: bool) -> Result<GgufFile> {
        let path = path.as_ref();
        GgufFile::checked(path, mmap::Mapped::open_with(path, populate)?)
    }

    /// Brings the file at `path` into memory as `mode` says (mapped and
    /// populated, or read in) and checks that it parses.
    ///
    /// # Errors
    /// As [`GgufFile::open`].
    pub fn load(path: impl AsRef<Path>, mode: LoadMode) -> Result<GgufFile> {
        let path = path.as_ref();
        let map = match mode {
            LoadMode::Map => mmap::Mapped::open_with(path, true)?,
            LoadMode::Read => mmap::Mapped::read_in(path)?,
        };
        GgufFile::checked(path, map)
    }

    /// `map` as the file at `path`, once it parses.
    fn checked(path: &Path, map: mmap::Mapped) -> Result<GgufFile> {
        let f = GgufFile {
            path: path.to_path_buf(),
            map,
        };
        f.parse()?;
        Ok(f)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    /// Parses the mapped bytes (cheap: it reads only the header and tensor infos).
    pub fn parse(&self) -> Result<Gguf<'_>> {
        Gguf::parse(self.map.bytes())
    }

    /// Hints that the tensor data will be read soon.
    pub fn will_need(&self) {
        self.map.will_need()
    }
}
