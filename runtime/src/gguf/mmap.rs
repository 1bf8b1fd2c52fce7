//! The one place Ember maps files into memory.
//!
//! A [`Mapped`] file is a read-only memory map of the file (the default);
//! an empty buffer for an empty file (mapping zero bytes is an error on
//! some systems); the file read into anonymous memory, advised as
//! transparent huge pages on Linux ([`Mapped::read_in`], `--no-mmap`); or,
//! where the platform cannot map files at all (WASI, whose `memmap2`
//! reports `Unsupported`), the file read once into an 8-byte aligned
//! buffer, so that the same loader runs there.
#![allow(unsafe_code)]

use crate::{Error, Result};
use std::fs::File;
use std::path::Path;

/// A read-only view of a whole file.
#[derive(Debug)]
pub struct Mapped {
    backing: Backing,
}

#[derive(Debug)]
enum Backing {
    Empty,
    Map(memmap2::Mmap),
    /// The file's `len` bytes at the start of `words` (no memory map here).
    Read {
        words: Vec<u64>,
        len: usize,
    },
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
        let (file, len) = open_sized(path)?;
        if len == 0 {
            return Ok(Mapped {
                backing: Backing::Empty,
            });
        }
        // On Linux the pages are populated after the huge-page advice (see
        // `advise_huge`), elsewhere by the map itself.
        let map_populates = populate && !cfg!(target_os = "linux");
        // SAFETY: the map is read-only and private to this process. The usual
        // caveat of every mmap-based loader (llama.cpp included) applies: if
        // another process truncates or rewrites the file while it is mapped,
        // reads may fault or see new bytes. Ember never writes through the map,
        // and every read goes through bounds-checked slices of its length.
        let map = unsafe {
            let mut opts = memmap2::MmapOptions::new();
            if map_populates {
                opts.populate();
            }
            opts.map(&file)
        };
        let backing = match map {
            Ok(m) => {
                advise_huge(&m, populate && !map_populates);
                Backing::Map(m)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                read_whole(file, len as u64, path)?
            }
            Err(e) => return Err(io(e)),
        };
        Ok(Mapped { backing })
    }

    /// Reads `path` into this process's memory instead of mapping it: an
    /// anonymous map, advised as transparent huge pages on Linux, filled
    /// by one read and then made read-only. The weights then cost a copy at
    /// load and private memory, but a token's pass over them takes one TLB
    /// entry per 2 MiB instead of per 4 KiB (see `docs/performance.md`,
    /// "Weights in huge pages"). Where anonymous maps are unsupported the
    /// file is read into an aligned buffer, as [`Mapped::open`] does there.
    ///
    /// # Errors
    /// As [`Mapped::open`]; also an [`Error::Io`] if the file is shorter
    /// than its length by the time it is read.
    pub fn read_in(path: &Path) -> Result<Mapped> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let (mut file, len) = open_sized(path)?;
        if len == 0 {
            return Ok(Mapped {
                backing: Backing::Empty,
            });
        }
        let mut anon = match huge_anon(len) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                return Ok(Mapped {
                    backing: read_whole(file, len as u64, path)?,
                })
            }
            Err(e) => return Err(io(e)),
        };
        {
            use std::io::Read;
            file.read_exact(&mut anon[..]).map_err(io)?;
        }
        let map = anon.make_read_only().map_err(io)?;
        Ok(Mapped {
            backing: Backing::Map(map),
        })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.backing {
            Backing::Empty => &[],
            Backing::Map(m) => m,
            Backing::Read { words, len } => {
                let b: &[u8] = bytemuck::cast_slice(words);
                &b[..*len]
            }
        }
    }

    /// Hints the kernel that these bytes will be read soon (no-op where unsupported).
    pub fn will_need(&self) {
        #[cfg(unix)]
        if let Backing::Map(m) = &self.backing {
            let _ = m.advise(memmap2::Advice::WillNeed);
        }
    }
}

/// `path` opened for reading, with its length in bytes.
///
/// # Errors
/// An [`Error::Io`] if it cannot be opened or its length read, and an
/// [`Error::Unsupported`] if it is larger than this platform's address
/// space (a 32-bit target and a file over 2 GiB, say).
fn open_sized(path: &Path) -> Result<(File, usize)> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= isize::MAX as usize)
        .ok_or_else(|| {
            Error::Unsupported(format!(
                "{} is {len} bytes, more than this {}-bit platform can map; use a smaller model or a 64-bit build",
                path.display(),
                usize::BITS
            ))
        })?;
    Ok((file, len))
}

/// `len` zeroed bytes of anonymous memory, advised as transparent huge
/// pages on Linux before anything touches them, so that the page faults
/// take whole huge pages (only a hint: without THP they take 4 KiB ones).
pub(crate) fn huge_anon(len: usize) -> std::io::Result<memmap2::MmapMut> {
    let m = memmap2::MmapMut::map_anon(len)?;
    #[cfg(target_os = "linux")]
    let _ = m.advise(memmap2::Advice::HugePage);
    Ok(m)
}

/// Advises `m` as transparent huge pages and, with `populate`, maps every
/// page up front (one pass, much cheaper than a fault per page on first
/// use). Where the page cache holds the file in 2 MiB folios the kernel
/// then maps each with one page-table entry, and a token's pass over the
/// weights misses the TLB once per 2 MiB instead of once per 4 KiB
/// (zero-copy still: these are the page cache's own pages). The advice also
/// makes a cold read of the file through any of its maps (the tokenizer's
/// too) fill the page cache in 2 MiB folios. Both are hints; a kernel
/// without them maps 4 KiB pages, or faults them in on first use.
#[cfg(target_os = "linux")]
fn advise_huge(m: &memmap2::Mmap, populate: bool) {
    let _ = m.advise(memmap2::Advice::HugePage);
    if populate && m.advise(memmap2::Advice::PopulateRead).is_err() {
        // Kernels before 5.14: start the reads at least.
        let _ = m.advise(memmap2::Advice::WillNeed);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: &memmap2::Mmap, _: bool) {}

/// The whole file read into 8-byte aligned memory, for a platform that
/// cannot map files. A file shorter than `len` by the time it is read is an
/// error; the allocation is checked, so a size the platform cannot give is
/// an error too.
fn read_whole(mut file: File, len: u64, path: &Path) -> Result<Backing> {
    use std::io::Read;
    let too_big = || {
        Error::Unsupported(format!(
            "{} is {len} bytes, more than this platform can hold in memory",
            path.display()
        ))
    };
    let len = usize::try_from(len).map_err(|_| too_big())?;
    let n_words = len.div_ceil(8);
    let mut words: Vec<u64> = Vec::new();
    words.try_reserve_exact(n_words).map_err(|_| too_big())?;
    words.resize(n_words, 0);
    let buf: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    file.read_exact(&mut buf[..len])
        .map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(Backing::Read { words, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read-into-memory fallback gives the same bytes as the map, for
    /// lengths that are and are not whole words.
    #[test]
    fn read_fallback_matches_the_map() {
        let dir = std::env::temp_dir().join(format!("ember-mmap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for len in [1usize, 7, 8, 9, 4096 + 3] {
            let p = dir.join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            std::fs::write(&p, &data).unwrap();
            let mapped = Mapped::open(&p).unwrap();
            let read = Mapped {
                backing: read_whole(File::open(&p).unwrap(), len as u64, &p).unwrap(),
            };
            assert_eq!(mapped.bytes(), &data[..]);
            assert_eq!(read.bytes(), &data[..]);
            let read_in = Mapped::read_in(&p).unwrap();
            assert_eq!(read_in.bytes(), &data[..]);
            assert_eq!(read_in.bytes().as_ptr().align_offset(8), 0);
            assert_eq!(read.bytes().as_ptr().align_offset(8), 0);
            // A file that shrank after its length was taken is an error.
            let short = read_whole(File::open(&p).unwrap(), len as u64 + 1, &p);
            assert!(matches!(short, Err(Error::Io { .. })));
        }
        let empty = dir.join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(Mapped::read_in(&empty).unwrap().bytes().is_empty());
        assert!(matches!(
            Mapped::read_in(&dir.join("missing")),
            Err(Error::Io { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
