//! F16 · F16 prompt-batch gemm with every operand converted once per call,
//! written once over the tier's f32 vector ([`Lanes`]): 16 lanes on
//! AVX-512, 8 on AVX2, 4 on NEON.
//!
//! Per k chunk (at most [`FKC`] elements, evenly split), the call's
//! activation columns are converted to f32, as many at a time as the
//! caller's scratch holds (all of them with [`scratch_len`]; else
//! [`COLS_STACK`] on the tier's stack). Each tile of `R` weight rows is
//! converted once to an f32 buffer that stays in L1, and every block of `C`
//! converted columns passes over it, so the inner loop is loads and FMAs
//! only. Each output's lanes are summed per chunk and the chunks added in
//! order: a result does not depend on the scratch, the tile or the rows
//! asked for.
//!
//! Like the other generic kernels here, these are `#[inline(always)]`
//! without `#[target_feature]`; each tier instantiates them inside its own
//! `#[target_feature]` function.

/// Most elements per k chunk.
pub(crate) const FKC: usize = 768;
/// f32 padding after each converted row, so that rows a multiple of 4 KiB
/// long do not all fall in the same L1 sets.
const FPAD: usize = 16;
/// Columns converted at a time when the caller's scratch holds fewer (the
/// tiers' stack buffers hold this many).
pub(crate) const COLS_STACK: usize = 16;
/// f32 per converted row at most: what a stack buffer needs per column.
pub(crate) const ROW_MAX: usize = FKC + FPAD;

/// Elements per k chunk for rows of `k`: chunks of at most [`FKC`], evenly
/// split, rounded up to whole 16-lane vectors.
fn chunk(k: usize) -> usize {
    k.div_ceil(k.div_ceil(FKC).max(1)).next_multiple_of(16)
}

/// f32 per converted row (chunk plus padding).
fn row_len(k: usize) -> usize {
    chunk(k) + FPAD
}

/// The f32 scratch with which [`gemm`] converts all `n` columns of a chunk
/// at once (so that each weight is converted once per call), plus 16 for
/// alignment.
pub(crate) fn scratch_len(k: usize, n: usize) -> usize {
    n.saturating_mul(row_len(k)).saturating_add(16)
}

/// A tier's f32 vector.
pub(crate) trait Lanes: Copy {
    /// f32 lanes per vector.
    const N: usize;
    /// # Safety
    /// The tier's features.
    unsafe fn zero() -> Self;
    /// # Safety
    /// The tier's features; `N` readable f32 at `p`, `4N`-byte aligned.
    unsafe fn load(p: *const f32) -> Self;
    /// `a * b + c`, fused.
    ///
    /// # Safety
    /// The tier's features.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// The lane sums of `R` vectors.
    ///
    /// # Safety
    /// The tier's features.
    unsafe fn sums<const R: usize>(v: &[Self; R]) -> [f32; R];
    /// `kc` f16 at `src` to f32 at `dst`, zero-filled to whole vectors.
    ///
    /// # Safety
    /// The tier's features; `2 * kc` readable bytes at `src`; room for
    /// `kc.next_multiple_of(N)` f32 at `dst`, `4N`-byte aligned.
    unsafe fn convert(src: *const u8, kc: usize, dst: *mut f32);
}

/// Where [`gemm`] converts the columns: `cols` rows of the caller's
/// scratch, or `None` if it holds fewer than `min(n, COLS_STACK)`.
pub(crate) fn scratch_rows(k: usize, n: usize, scratch: &mut [f32]) -> Option<(&mut [f32], usize)> {
    let st = row_len(k);
    let off = scratch.as_ptr().align_offset(64).min(scratch.len());
    let fit = (scratch.len() - off) / st;
    if n == 0 || fit < n.min(COLS_STACK) {
        return None;
    }
    let cols = fit.min(n);
    Some((&mut scratch[off..off + cols * st], cols))
}

/// `y[r * n + c] = dot(row r of w, column c of x)` (`k` f16 each), in tiles
/// of `R` rows × `C` columns, with `xs` holding `cols` converted columns
/// ([`scratch_rows`] or a stack buffer of [`COLS_STACK`] × [`ROW_MAX`]).
///
/// # Safety
/// The tier's features for `V`; sizes validated by the caller (`w` whole
/// rows of `2k` bytes, `x` exactly `n` rows, `y.len() == rows * n`); `xs`
/// 64-byte aligned with `cols >= 1` rows of `row_len(k)` f32;
/// `R * row_len(k)` within the tile buffer (`R <= 8`).
#[inline(always)]
pub(crate) unsafe fn gemm<V: Lanes, const R: usize, const C: usize>(
    k: usize,
    w: &[u8],
    x: &[u8],
    n: usize,
    y: &mut [f32],
    xs: &mut [f32],
    cols: usize,
) {
    #[repr(C, align(64))]
    struct Ws([f32; 8 * ROW_MAX]);
    let rb = 2 * k;
    if k == 0 || n == 0 || x.len() < n * rb {
        y.fill(0.0);
        return;
    }
    let m = w.len() / rb;
    if m == 0 || y.len() < m * n || cols == 0 || xs.len() < cols * row_len(k) || R > 8 {
        return;
    }
    let mut ws = Ws([0.0; 8 * ROW_MAX]);
    let kcn = chunk(k);
    let st = row_len(k);
    let (wp, xp) = (w.as_ptr(), x.as_ptr());
    let mut k0 = 0;
    while k0 < k {
        let kc = kcn.min(k - k0);
        let steps = kc.div_ceil(V::N);
        let mut c0 = 0;
        while c0 < n {
            let ng = cols.min(n - c0);
            for c in 0..ng {
                // SAFETY: column c0 + c < n has elements k0..k0 + kc; row c
                // of xs has st >= kc rounded up to whole vectors; aligned.
                unsafe {
                    V::convert(
                        xp.add((c0 + c) * rb + 2 * k0),
                        kc,
                        xs.as_mut_ptr().add(c * st),
                    )
                };
            }
            let mut r0 = 0;
            while r0 < m {
                for r in 0..R {
                    // Rows past the end repeat the last row (results dropped).
                    // SAFETY: row min(r0 + r, m - 1) has elements k0..k0 + kc;
                    // ws row r < 8 has st f32, aligned.
                    unsafe {
                        V::convert(
                            wp.add((r0 + r).min(m - 1) * rb + 2 * k0),
                            kc,
                            ws.0.as_mut_ptr().add(r * st),
                        )
                    };
                }
                let mut cb = 0;
                while cb < ng {
                    // Columns past the group's end repeat its last (dropped).
                    let xc: [*const f32; C] = core::array::from_fn(|c| {
                        // SAFETY: row min(cb + c, ng - 1) < cols of xs.
                        unsafe { xs.as_ptr().add((cb + c).min(ng - 1) * st) }
                    });
                    // SAFETY: the tier's features (caller).
                    let mut acc = [[unsafe { V::zero() }; R]; C];
                    for s in 0..steps {
                        // SAFETY: vector s of each converted row (N * steps
                        // <= st); aligned.
                        unsafe {
                            let xv: [V; C] = core::array::from_fn(|c| V::load(xc[c].add(V::N * s)));
                            for r in 0..R {
                                let wv = V::load(ws.0.as_ptr().add(r * st + V::N * s));
                                for (ac, &xv) in acc.iter_mut().zip(&xv) {
                                    ac[r] = V::fma(wv, xv, ac[r]);
                                }
                            }
                        }
                    }
                    for (c, ac) in acc.iter().enumerate().take(ng - cb) {
                        // SAFETY: the tier's features (caller).
                        let sums = unsafe { V::sums(ac) };
                        let col = c0 + cb + c;
                        for (r, &v) in sums.iter().enumerate().take(m - r0) {
                            let o = &mut y[(r0 + r) * n + col];
                            if k0 == 0 {
                                *o = v;
                            } else {
                                *o += v;
                            }
                        }
                    }
                    cb += C;
                }
                r0 += R;
            }
            c0 += ng;
        }
        k0 += kc;
    }
}

/// A tier's F16 prompt-batch gemm, `$vis unsafe fn $name(k, w, x, n, y,
/// scratch)` under `#[target_feature(enable = $feat)]`: [`gemm`] on
/// `$lanes` in tiles of `$r` rows × `$c` columns. The columns are converted
/// into the caller's scratch where [`scratch_rows`] finds room, else
/// [`COLS_STACK`] at a time into a stack buffer, in a frame of its own so
/// that the scratch path does not carry it.
///
/// A macro rather than a generic function because each copy must carry its
/// tier's `#[target_feature]` for the inlined kernel to use its vectors.
/// The generated function's `# Safety`: the tier's features are available
/// and the sizes were validated by the caller (`w` whole rows of `2k`
/// bytes, `x` exactly `n` rows, `y.len() == rows * n`).
macro_rules! tier_gemm {
    ($(#[$attr:meta])* $vis:vis fn $name:ident: $feat:literal, $lanes:ty, $r:expr, $c:expr) => {
        $(#[$attr])*
        ///
        /// # Safety
        #[doc = concat!("The CPU must support ", $feat, "; sizes validated by the caller")]
        /// (`w` whole rows of `2k` bytes, `x` exactly `n` rows,
        /// `y.len() == rows * n`).
        #[target_feature(enable = $feat)]
        $vis unsafe fn $name(
            k: usize,
            w: &[u8],
            x: &[u8],
            n: usize,
            y: &mut [f32],
            scratch: &mut [f32],
        ) {
            use $crate::arch::f16gemm::{gemm, scratch_rows, COLS_STACK, ROW_MAX};

            /// The columns [`COLS_STACK`] at a time in a stack buffer.
            ///
            /// # Safety
            /// As the enclosing function.
            #[inline(never)]
            #[target_feature(enable = $feat)]
            unsafe fn on_stack(k: usize, w: &[u8], x: &[u8], n: usize, y: &mut [f32]) {
                #[repr(C, align(64))]
                struct Xs([f32; COLS_STACK * ROW_MAX]);
                let mut xs = Xs([0.0; COLS_STACK * ROW_MAX]);
                let cols = COLS_STACK.min(n);
                // SAFETY: features and sizes (caller); 64-byte aligned, and
                // each of the `cols` rows fits in ROW_MAX.
                unsafe { gemm::<$lanes, { $r }, { $c }>(k, w, x, n, y, &mut xs.0, cols) }
            }

            match scratch_rows(k, n, scratch) {
                // SAFETY: features and sizes (caller); rows from `scratch_rows`.
                Some((xs, cols)) => unsafe {
                    gemm::<$lanes, { $r }, { $c }>(k, w, x, n, y, xs, cols)
                },
                // SAFETY: as above.
                None => unsafe { on_stack(k, w, x, n, y) },
            }
        }
    };
}
pub(crate) use tier_gemm;
