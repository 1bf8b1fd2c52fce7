//! The kernel crate's one error type.

use crate::GgmlType;
use core::fmt;

/// Errors from `ember-quant`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No kernel exists for this type and operation.
    Unsupported {
        /// The type.
        ty: GgmlType,
        /// The operation (`"dequantize"`, `"quantize"`, `"dot"`…).
        op: &'static str,
    },
    /// A row length is not a multiple of the type's block size.
    RowLength {
        /// The type.
        ty: GgmlType,
        /// The row length in elements.
        n: usize,
    },
    /// A buffer has the wrong size.
    BufferSize {
        /// What the buffer is.
        what: &'static str,
        /// Bytes or elements expected.
        expected: usize,
        /// Bytes or elements given.
        got: usize,
    },
    /// A row range is inverted or runs past the matrix.
    RowRange {
        /// First row asked for.
        start: usize,
        /// One past the last row asked for.
        end: usize,
        /// Rows the matrix holds.
        rows: usize,
    },
    /// `EMBER_KERNELS` (or an explicit tier) names a tier this CPU cannot run, or no tier at all.
    Tier(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unsupported { ty, op } => {
                write!(
                    f,
                    "no {op} kernel for tensor type {ty} in this version of Ember"
                )
            }
            Error::RowLength { ty, n } => write!(
                f,
                "row of {n} elements is not a multiple of {ty}'s block size {}",
                ty.block_size()
            ),
            Error::BufferSize {
                what,
                expected,
                got,
            } => {
                write!(f, "{what}: expected {expected}, got {got}")
            }
            Error::RowRange { start, end, rows } => {
                write!(
                    f,
                    "row range {start}..{end} is invalid for a matrix of {rows} rows"
                )
            }
            Error::Tier(msg) => f.write_str(msg),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
