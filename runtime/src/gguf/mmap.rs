//! The one place Ember maps files into memory.
//!
//! A [`Mapped`] file is either a read-only memory map of the file (the
//! default) or, for an empty file, an empty buffer (mapping zero bytes is an
//! error on some systems).
#![allow(unsafe_code)]

use crate::{Error, Result};
use std::fs::File;
use std::path::Path;

/// A read-only view of a whole file.
#[derive(Debug)]
pub struct Mapped {
    map: Option<memmap2::Mmap>,
}

impl Mapped {
    /// Maps `path` read-only.
    ///
    /// # Errors
    /// An [`Error::Io`] if the file cannot be opened or mapped, and an
    /// [`Error::Unsupported`] if it is larger than this platform's address
    /// space can map (a 32-bit target and a file over 2 GiB, say).
    pub fn open(path: &Path) -> Result<Mapped> {
        Mapped::open_with(path, false)
    }

    /// Maps `path` read-only; with `populate`, the kernel maps every page up
    /// front (one pass, much cheaper than a page fault per 4 KiB on first use:
    /// for loading a model that will be read whole).
    pub fn open_with(path: &Path, populate: bool) -> Result<Mapped> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Ok(Mapped { map: None });
        }
        if len > isize::MAX as u64 {
            return Err(Error::Unsupported(format!(
                "{} is {len} bytes, more than this {}-bit platform can map; use a smaller model or a 64-bit build",
                path.display(),
                usize::BITS
            )));
        }
        // SAFETY: the map is read-only and private to this process. The usual
        // caveat of every mmap-based loader (llama.cpp included) applies: if
        // another process truncates or rewrites the file while it is mapped,
        // reads may fault or see new bytes. Ember never writes through the map,
        // and every read goes through bounds-checked slices of its length.
        let map = unsafe {
            let mut opts = memmap2::MmapOptions::new();
            if populate {
                opts.populate();
            }
            opts.map(&file)
        }
        .map_err(io)?;
        Ok(Mapped { map: Some(map) })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.map {
            Some(m) => m,
            None => &[],
        }
    }

    /// Hints the kernel that these bytes will be read soon (no-op where unsupported).
    pub fn will_need(&self) {
        #[cfg(unix)]
        if let Some(m) = &self.map {
            let _ = m.advise(memmap2::Advice::WillNeed);
        }
    }
}
