//! On-disk block layouts, bit-compatible with ggml's `ggml-common.h`.
//!
//! Every struct is `#[repr(C)]` with **alignment 1**: half floats are stored
//! as `[u8; 2]`, `f32` as `[u8; 4]` and `i16` arrays as little-endian byte
//! pairs. Any `&[u8]` (an mmap of a GGUF file, for instance) can therefore be
//! viewed as `&[Block]` with [`view`], whatever its address. All multi-byte
//! fields are little-endian, as GGUF is.
//!
//! Conventions shared by the 32-element "legacy" formats (`Q4_0`, `Q4_1`,
//! `Q5_0`, `Q5_1`, `IQ4_NL`): byte `qs[j]` holds element `j` in its **low**
//! nibble and element `j + 16` in its **high** nibble.
//!
//! Super-block ("K-quant") formats hold 256 elements (`QK_K`).

use bytemuck::{Pod, Zeroable};

/// Elements per legacy block (`QK4_0`, `QK8_0`, …).
pub const QK: usize = 32;
/// Elements per K-quant super-block (`QK_K`).
pub const QK_K: usize = 256;
/// Size in bytes of the packed 6-bit scales of `Q4_K`/`Q5_K` (`K_SCALE_SIZE`).
pub const K_SCALE_SIZE: usize = 12;

/// The 16 non-linear levels of `IQ4_NL` / `IQ4_XS` (`kvalues_iq4nl`).
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// `Q4_0`: 32 elements, `x = d * (q - 8)` with `q` in `0..16`.
///
/// Layout (18 bytes): `d: f16`, `qs: [u8; 16]`. `qs[j] & 0xF` is element `j`,
/// `qs[j] >> 4` is element `j + 16`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ4_0 {
    /// Scale, f16 bits.
    pub d: [u8; 2],
    /// Nibbles: low = element `j`, high = element `j + 16`.
    pub qs: [u8; QK / 2],
}

/// `Q4_1`: 32 elements, `x = d * q + m` with `q` in `0..16`.
///
/// Layout (20 bytes): `d: f16`, `m: f16`, `qs: [u8; 16]` (nibbles as in `Q4_0`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ4_1 {
    /// Scale, f16 bits.
    pub d: [u8; 2],
    /// Minimum (offset), f16 bits.
    pub m: [u8; 2],
    /// Nibbles: low = element `j`, high = element `j + 16`.
    pub qs: [u8; QK / 2],
}

/// `Q5_0`: 32 elements, `x = d * (q - 16)` with 5-bit `q` in `0..32`.
///
/// Layout (22 bytes): `d: f16`, `qh: [u8; 4]`, `qs: [u8; 16]`. The low four
/// bits come from the nibbles of `qs` as in `Q4_0`; the 5th bit of element
/// `i` (0..32) is bit `i` of the little-endian `u32` in `qh` (so elements
/// 0..16 use bits 0..16, elements 16..32 bits 16..32).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ5_0 {
    /// Scale, f16 bits.
    pub d: [u8; 2],
    /// 5th bits, little-endian `u32`, bit `i` for element `i`.
    pub qh: [u8; 4],
    /// Low nibbles: low = element `j`, high = element `j + 16`.
    pub qs: [u8; QK / 2],
}

/// `Q5_1`: 32 elements, `x = d * q + m` with 5-bit `q`.
///
/// Layout (24 bytes): `d: f16`, `m: f16`, `qh: [u8; 4]`, `qs: [u8; 16]`;
/// bits as in [`BlockQ5_0`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ5_1 {
    /// Scale, f16 bits.
    pub d: [u8; 2],
    /// Minimum (offset), f16 bits.
    pub m: [u8; 2],
    /// 5th bits, little-endian `u32`, bit `i` for element `i`.
    pub qh: [u8; 4],
    /// Low nibbles: low = element `j`, high = element `j + 16`.
    pub qs: [u8; QK / 2],
}

/// `Q8_0`: 32 elements, `x = d * q` with `q: i8` in order.
///
/// Layout (34 bytes): `d: f16`, `qs: [i8; 32]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ8_0 {
    /// Scale, f16 bits.
    pub d: [u8; 2],
    /// Quants, element `i` at `qs[i]`.
    pub qs: [i8; QK],
}

/// `Q8_1`: 32 elements (activations for `Q4_1`/`Q5_1`), `x = d * q`.
///
/// Layout (36 bytes, as ggml — gguf-py's 40 is wrong): `d: f16`,
/// `s: f16` (= `d * sum(qs)`), `qs: [i8; 32]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ8_1 {
    /// Scale, f16 bits.
    pub d: [u8; 2],
    /// `d * sum(qs)`, f16 bits.
    pub s: [u8; 2],
    /// Quants, element `i` at `qs[i]`.
    pub qs: [i8; QK],
}

/// `Q2_K`: 256 elements in 16 sub-blocks of 16; `x = d*sc*q - dmin*m`.
///
/// Layout (84 bytes): `scales: [u8; 16]` (sub-block `s`: scale in the low
/// nibble, min in the high nibble), `qs: [u8; 64]`, `d: f16`, `dmin: f16`.
/// The 2-bit quants come in two halves of 128 elements; in half `h`, byte
/// `qs[32h + l]` holds elements `128h + l + 32k` at bits `2k..2k+2`
/// (`k` = 0..4).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ2K {
    /// 4-bit scale (low) and 4-bit min (high) per 16-element sub-block.
    pub scales: [u8; QK_K / 16],
    /// 2-bit quants, see the type doc.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale for the scales, f16 bits.
    pub d: [u8; 2],
    /// Super-block scale for the mins, f16 bits.
    pub dmin: [u8; 2],
}

/// `Q3_K`: 256 elements in 16 sub-blocks of 16; `x = d * (sc - 32) * q`, `q` in `-4..4`.
///
/// Layout (110 bytes): `hmask: [u8; 32]`, `qs: [u8; 64]`, `scales: [u8; 12]`,
/// `d: f16`. The low two bits of each quant are packed as in [`BlockQ2K`];
/// the high bit of element `i` is bit `i / 32` of `hmask[i % 32]`, and a
/// **clear** high bit means "subtract 4". The sixteen 6-bit scales (stored
/// with a +32 bias) are packed into 12 bytes: scale `j` has its low nibble
/// in `scales[j]` (j < 8, low nibble) or `scales[j - 8]` (j >= 8, high
/// nibble), and its top two bits at bits `2*(j/4)..` of `scales[8 + j % 4]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ3K {
    /// High bits of the quants.
    pub hmask: [u8; QK_K / 8],
    /// Low two bits of the quants.
    pub qs: [u8; QK_K / 4],
    /// Sixteen 6-bit scales, packed, see the type doc.
    pub scales: [u8; 12],
    /// Super-block scale, f16 bits.
    pub d: [u8; 2],
}

/// `Q4_K`: 256 elements in 8 sub-blocks of 32; `x = d*sc*q - dmin*m`.
///
/// Layout (144 bytes): `d: f16`, `dmin: f16`, `scales: [u8; 12]`,
/// `qs: [u8; 128]`. Quants come in 4 chunks of 64 elements: chunk `c` uses
/// `qs[32c..32c+32]`, low nibbles are elements `64c..64c+32`, high nibbles
/// `64c+32..64c+64`.
///
/// The eight 6-bit scales and eight 6-bit mins are packed into 12 bytes
/// (`get_scale_min_k4`): for `j < 4`, scale `j` is `scales[j] & 63` and min
/// `j` is `scales[j + 4] & 63`; for `j >= 4`, scale `j` is
/// `(scales[j + 4] & 0xF) | (scales[j - 4] >> 6) << 4` and min `j` is
/// `(scales[j + 4] >> 4) | (scales[j] >> 6) << 4`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale for the scales, f16 bits.
    pub d: [u8; 2],
    /// Super-block scale for the mins, f16 bits.
    pub dmin: [u8; 2],
    /// Packed 6-bit scales and mins, see the type doc.
    pub scales: [u8; K_SCALE_SIZE],
    /// 4-bit quants, see the type doc.
    pub qs: [u8; QK_K / 2],
}

/// `Q5_K`: as [`BlockQ4K`] with a 5th bit per element.
///
/// Layout (176 bytes): `d: f16`, `dmin: f16`, `scales: [u8; 12]`,
/// `qh: [u8; 32]`, `qs: [u8; 128]`. The low nibbles are packed as in `Q4_K`;
/// the 5th bit of element `i` is bit `i / 32` of `qh[i % 32]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ5K {
    /// Super-block scale for the scales, f16 bits.
    pub d: [u8; 2],
    /// Super-block scale for the mins, f16 bits.
    pub dmin: [u8; 2],
    /// Packed 6-bit scales and mins, as in `Q4_K`.
    pub scales: [u8; K_SCALE_SIZE],
    /// 5th bits.
    pub qh: [u8; QK_K / 8],
    /// Low nibbles.
    pub qs: [u8; QK_K / 2],
}

/// `Q6_K`: 256 elements in 16 sub-blocks of 16; `x = d * sc * (q - 32)`.
///
/// Layout (210 bytes): `ql: [u8; 128]`, `qh: [u8; 64]`, `scales: [i8; 16]`,
/// `d: f16`. Two halves of 128 elements; in half `h`, with `l` in 0..32:
/// element `128h + l` is `ql[64h + l] & 0xF`, `+32` is `ql[64h + 32 + l] & 0xF`,
/// `+64` is `ql[64h + l] >> 4`, `+96` is `ql[64h + 32 + l] >> 4`; their top two
/// bits are bits 0-1, 2-3, 4-5, 6-7 of `qh[32h + l]`. Scale `s` (8-bit signed)
/// covers elements `16s..16s+16`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low four bits of the quants.
    pub ql: [u8; QK_K / 2],
    /// High two bits of the quants.
    pub qh: [u8; QK_K / 4],
    /// Signed 8-bit scale per 16 elements.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale, f16 bits.
    pub d: [u8; 2],
}

/// `Q8_K`: 256 activation values, `x = d * q`, with per-16 sums.
///
/// Layout (292 bytes): `d: f32`, `qs: [i8; 256]`, `bsums: [i16; 16]`
/// (little-endian byte pairs here), `bsums[j] = sum(qs[16j..16j+16])`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockQ8K {
    /// Scale, f32 bits, little-endian.
    pub d: [u8; 4],
    /// Quants, element `i` at `qs[i]`.
    pub qs: [i8; QK_K],
    /// Sums of each 16 quants, `i16` little-endian.
    pub bsums: [u8; QK_K / 16 * 2],
}

/// `IQ4_NL`: 32 elements, `x = d * KVALUES_IQ4NL[q]`.
///
/// Layout (18 bytes): `d: f16`, `qs: [u8; 16]`, nibbles as in `Q4_0`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct BlockIq4Nl {
    /// Scale, f16 bits.
    pub d: [u8; 2],
    /// Indices into [`KVALUES_IQ4NL`]: low = element `j`, high = element `j + 16`.
    pub qs: [u8; QK / 2],
}

const _: () = assert!(core::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(core::mem::size_of::<BlockQ4_1>() == 20);
const _: () = assert!(core::mem::size_of::<BlockQ5_0>() == 22);
const _: () = assert!(core::mem::size_of::<BlockQ5_1>() == 24);
const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(core::mem::size_of::<BlockQ8_1>() == 36);
const _: () = assert!(core::mem::size_of::<BlockQ2K>() == 84);
const _: () = assert!(core::mem::size_of::<BlockQ3K>() == 110);
const _: () = assert!(core::mem::size_of::<BlockQ4K>() == 144);
const _: () = assert!(core::mem::size_of::<BlockQ5K>() == 176);
const _: () = assert!(core::mem::size_of::<BlockQ6K>() == 210);
const _: () = assert!(core::mem::size_of::<BlockQ8K>() == 292);
const _: () = assert!(core::mem::size_of::<BlockIq4Nl>() == 18);
const _: () = assert!(core::mem::align_of::<BlockQ8K>() == 1);
const _: () = assert!(core::mem::align_of::<BlockQ6K>() == 1);
const _: () = assert!(core::mem::align_of::<BlockQ8_1>() == 1);

/// A block type: its size is its ggml `type_size`, its alignment is 1.
pub trait Block: Pod {
    /// Elements per block.
    const ELEMS: usize;
}

macro_rules! impl_block {
    ($($t:ty => $n:expr),* $(,)?) => {
        $(
            impl Block for $t {
                const ELEMS: usize = $n;
            }
            const _: () = assert!(core::mem::align_of::<$t>() == 1);
        )*
    };
}
impl_block! {
    BlockQ4_0 => QK, BlockQ4_1 => QK, BlockQ5_0 => QK, BlockQ5_1 => QK,
    BlockQ8_0 => QK, BlockQ8_1 => QK, BlockIq4Nl => QK,
    BlockQ2K => QK_K, BlockQ3K => QK_K, BlockQ4K => QK_K, BlockQ5K => QK_K,
    BlockQ6K => QK_K, BlockQ8K => QK_K,
}

/// Views bytes as blocks. `None` if the length is not a whole number of blocks.
/// Never fails on alignment (every block has alignment 1).
#[inline]
pub fn view<B: Block>(bytes: &[u8]) -> Option<&[B]> {
    bytemuck::try_cast_slice(bytes).ok()
}

/// Views bytes as mutable blocks. `None` if the length is not a whole number of blocks.
#[inline]
pub fn view_mut<B: Block>(bytes: &mut [u8]) -> Option<&mut [B]> {
    bytemuck::try_cast_slice_mut(bytes).ok()
}

/// Internal: view a buffer whose length the caller has already validated.
#[inline]
pub(crate) fn blocks<B: Block>(bytes: &[u8]) -> &[B] {
    view(bytes).unwrap_or(&[])
}

/// Internal: mutable view of a buffer whose length the caller has already validated.
#[inline]
pub(crate) fn blocks_mut<B: Block>(bytes: &mut [u8]) -> &mut [B] {
    view_mut(bytes).unwrap_or(&mut [])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GgmlType;

    #[test]
    fn sizes_match_type_table() {
        use core::mem::size_of;
        let pairs = [
            (GgmlType::Q4_0, size_of::<BlockQ4_0>(), BlockQ4_0::ELEMS),
            (GgmlType::Q4_1, size_of::<BlockQ4_1>(), BlockQ4_1::ELEMS),
            (GgmlType::Q5_0, size_of::<BlockQ5_0>(), BlockQ5_0::ELEMS),
            (GgmlType::Q5_1, size_of::<BlockQ5_1>(), BlockQ5_1::ELEMS),
            (GgmlType::Q8_0, size_of::<BlockQ8_0>(), BlockQ8_0::ELEMS),
            (GgmlType::Q8_1, size_of::<BlockQ8_1>(), BlockQ8_1::ELEMS),
            (GgmlType::Q2_K, size_of::<BlockQ2K>(), BlockQ2K::ELEMS),
            (GgmlType::Q3_K, size_of::<BlockQ3K>(), BlockQ3K::ELEMS),
            (GgmlType::Q4_K, size_of::<BlockQ4K>(), BlockQ4K::ELEMS),
            (GgmlType::Q5_K, size_of::<BlockQ5K>(), BlockQ5K::ELEMS),
            (GgmlType::Q6_K, size_of::<BlockQ6K>(), BlockQ6K::ELEMS),
            (GgmlType::Q8_K, size_of::<BlockQ8K>(), BlockQ8K::ELEMS),
            (GgmlType::IQ4_NL, size_of::<BlockIq4Nl>(), BlockIq4Nl::ELEMS),
        ];
        for (t, size, elems) in pairs {
            assert_eq!(t.type_size(), size, "{t}");
            assert_eq!(t.block_size(), elems, "{t}");
        }
    }

    #[test]
    fn view_ignores_alignment() {
        let buf = [0u8; 18 * 3 + 1];
        // Odd offset: still viewable.
        let v: &[BlockQ4_0] = view(&buf[1..]).unwrap();
        assert_eq!(v.len(), 3);
        assert!(view::<BlockQ4_0>(&buf[2..]).is_none());
    }
}
