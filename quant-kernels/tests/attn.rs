//! Attention kernels on every tier this CPU runs, against an f64 oracle
//! computed here from the decoded cache elements: scores and value sums
//! must be within `4 · 2^-24 · (hd + len)` of `Σ|terms|` (f32 accumulation of
//! that many products), for F16 and F32 caches, head dims that are and are
//! not multiples of the vector width, GQA groups from 1 to 9, and lengths
//! around the 64-position chunk. Odd lengths lay their chunks out with a gap
//! of 0xFF bytes between them (NaN as F16 and F32 elements and as Q8_0
//! scales),
//! as a cache laid out `[chunk][layer][head]` has other heads' chunks
//! there, so a kernel that reads past a chunk or misplaces the next fails.

use ember_quant::fp::{f16_to_f32, f32_to_f16};
use ember_quant::{
    attn_prefetch, attn_scores_with, attn_values_cols_with, attn_values_with, kv_pos_bytes,
    kv_write_key, kv_write_value, quantize_row_act, GgmlType, Tier, KV_CHUNK,
};

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn tiers() -> Vec<Tier> {
    Tier::ALL
        .iter()
        .copied()
        .filter(|t| t.is_supported())
        .collect()
}

fn encode(ty: GgmlType, v: f32) -> (Vec<u8>, f32) {
    if ty == GgmlType::F16 {
        let b = f32_to_f16(v);
        (b.to_vec(), f16_to_f32(b))
    } else {
        (v.to_le_bytes().to_vec(), v)
    }
}

/// Bytes from one chunk to the next for a test of `len` positions with
/// chunks of `cb` bytes: back to back for even lengths, with a gap for odd.
fn chunk_stride(len: usize, cb: usize) -> usize {
    if len % 2 == 1 {
        cb + 320
    } else {
        cb
    }
}

fn tol(n: usize, abs_sum: f64) -> f64 {
    4.0 * (n as f64) * f64::from(f32::EPSILON) * 0.5 * abs_sum + 1e-30
}

#[test]
fn attention_kernels_match_f64_oracle() {
    let mut rng = Rng(0x5EED_A77E);
    let mut checked = 0usize;
    for t in tiers() {
        for ty in [GgmlType::F16, GgmlType::F32] {
            for &hd in &[64usize, 80, 128, 40, 8] {
                for &group in &[1usize, 3, 4, 5, 9] {
                    for &len in &[1usize, 63, 64, 65, 129, 200] {
                        let nch = len.div_ceil(KV_CHUNK);
                        let span = nch * KV_CHUNK;
                        let es = if ty == GgmlType::F16 { 2 } else { 4 };
                        let cb = hd * KV_CHUNK * es;
                        let cs = chunk_stride(len, cb);
                        // Keys: chunk-transposed, zeros past len; values by
                        // position; chunks cs bytes apart, 0xFF between.
                        let mut kd = vec![0f32; span * hd]; // decoded [pos][d]
                        let mut kb = vec![0xFFu8; (nch - 1) * cs + cb];
                        for c in 0..nch {
                            kb[c * cs..c * cs + cb].fill(0);
                        }
                        for p in 0..len {
                            for d in 0..hd {
                                let (b, dec) = encode(ty, rng.f() * 3.0);
                                kd[p * hd + d] = dec;
                                let at = (p / KV_CHUNK) * cs + (d * KV_CHUNK + p % KV_CHUNK) * es;
                                kb[at..at + es].copy_from_slice(&b);
                            }
                        }
                        let mut vd = vec![0f32; len * hd];
                        let last = (len - (nch - 1) * KV_CHUNK) * hd * es;
                        let mut vb = vec![0xFFu8; (nch - 1) * cs + last];
                        for p in 0..len {
                            for d in 0..hd {
                                let (b, dec) = encode(ty, rng.f() * 2.0);
                                vd[p * hd + d] = dec;
                                let at = (p / KV_CHUNK) * cs + ((p % KV_CHUNK) * hd + d) * es;
                                vb[at..at + es].copy_from_slice(&b);
                            }
                        }
                        let q: Vec<f32> = (0..group * hd).map(|_| rng.f()).collect();
                        let stride = span + 3;
                        let mut scores = vec![f32::NAN; group * stride];
                        attn_scores_with(t, ty, hd, group, &q, &kb, cs, len, &mut scores, stride)
                            .unwrap();
                        for g in 0..group {
                            for p in 0..span {
                                let terms =
                                    (0..hd).map(|d| q[g * hd + d] as f64 * kd[p * hd + d] as f64);
                                let want: f64 = terms.clone().sum();
                                let abs: f64 = terms.map(f64::abs).sum();
                                let got = scores[g * stride + p] as f64;
                                assert!((got - want).abs() <= tol(hd, abs), "{t} {ty} hd {hd} group {group} len {len}: score[{g}][{p}] {got} vs {want}");
                            }
                        }
                        let probs: Vec<f32> = (0..group * stride).map(|_| rng.f().abs()).collect();
                        let mut out = vec![f32::NAN; group * hd];
                        attn_values_with(t, ty, hd, group, &probs, stride, &vb, cs, len, &mut out)
                            .unwrap();
                        // One byte short of the last chunk's rows is refused.
                        let short = &vb[..vb.len() - 1];
                        let r = attn_values_with(
                            t, ty, hd, group, &probs, stride, short, cs, len, &mut out,
                        );
                        assert!(r.is_err());
                        for g in 0..group {
                            for d in 0..hd {
                                let terms = (0..len)
                                    .map(|p| probs[g * stride + p] as f64 * vd[p * hd + d] as f64);
                                let want: f64 = terms.clone().sum();
                                let abs: f64 = terms.map(f64::abs).sum();
                                let got = out[g * hd + d] as f64;
                                assert!((got - want).abs() <= tol(len, abs), "{t} {ty} hd {hd} group {group} len {len}: out[{g}][{d}] {got} vs {want}");
                            }
                        }
                        assert_cols_match(t, ty, hd, group, &probs, stride, &vb, cs, len, &out);
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked >= 2 * 5 * 5 * 5);
}

#[test]
fn attention_rejects_bad_sizes() {
    let t = Tier::Scalar;
    let k = vec![0u8; 64 * 64 * 2];
    let q = vec![0f32; 64];
    let mut s = vec![0f32; 64];
    let cb = 64 * 64 * 2;
    assert!(attn_scores_with(t, GgmlType::F16, 64, 1, &q, &k, cb, 64, &mut s, 64).is_ok());
    // Keys for 65 positions need two chunks.
    assert!(attn_scores_with(t, GgmlType::F16, 64, 1, &q, &k, cb, 65, &mut s, 128).is_err());
    // Chunks closer than a chunk's bytes; chunks whose stride overflows.
    assert!(attn_scores_with(t, GgmlType::F16, 64, 1, &q, &k, cb - 1, 64, &mut s, 64).is_err());
    let mut s2 = vec![0f32; 128];
    let r = attn_scores_with(
        t,
        GgmlType::F16,
        64,
        1,
        &q,
        &k,
        usize::MAX,
        65,
        &mut s2,
        128,
    );
    assert!(r.is_err());
    // Too small a stride, too few queries, an unsupported type.
    assert!(attn_scores_with(t, GgmlType::F16, 64, 1, &q, &k, cb, 64, &mut s, 32).is_err());
    assert!(attn_scores_with(t, GgmlType::F16, 64, 2, &q, &k, cb, 64, &mut s, 64).is_err());
    assert!(attn_scores_with(t, GgmlType::Q4_0, 64, 1, &q, &k, cb, 64, &mut s, 64).is_err());
    // A Q8_0 cache needs heads a whole number of blocks wide.
    let cb8 = 64 * 68;
    assert!(attn_scores_with(t, GgmlType::Q8_0, 64, 1, &q, &k, cb8, 64, &mut s, 64).is_ok());
    assert!(attn_scores_with(t, GgmlType::Q8_0, 40, 1, &q, &k, cb8, 64, &mut s, 64).is_err());
    let row = [0f32; 64];
    let mut chunk = vec![0u8; 64 * 68];
    assert!(kv_write_key(GgmlType::Q8_0, 64, &mut chunk, 63, &row).is_ok());
    assert!(kv_write_key(GgmlType::Q8_0, 64, &mut chunk, 64, &row).is_err());
    assert!(kv_write_value(GgmlType::Q8_0, 64, &mut chunk[1..], 0, &row).is_err());
    assert!(kv_write_value(GgmlType::Q8_0, 64, &mut chunk, 0, &row[1..]).is_err());
    let v = vec![0u8; 10 * 64 * 2];
    let p = vec![0f32; 10];
    let mut o = vec![0f32; 64];
    assert!(attn_values_with(t, GgmlType::F16, 64, 1, &p, 10, &v, cb, 10, &mut o).is_ok());
    assert!(attn_values_with(t, GgmlType::F16, 64, 1, &p, 10, &v, cb, 11, &mut o).is_err());
    assert!(attn_values_with(t, GgmlType::F16, 64, 2, &p, 10, &v, cb, 10, &mut o).is_err());
    assert!(attn_values_with(t, GgmlType::F16, 64, 1, &p, 10, &v, cb - 2, 10, &mut o).is_err());
    // The prefetch hint checks its type, head and columns as the kernels
    // do; a short or unaligned chunk is fine (lines past it are left out).
    let c = vec![0u8; cb];
    for ty in [GgmlType::F16, GgmlType::F32, GgmlType::Q8_0] {
        assert!(attn_prefetch(ty, 64, &c, true, 0..64).is_ok());
        assert!(attn_prefetch(ty, 64, &c, false, 32..64).is_ok());
        assert!(attn_prefetch(ty, 64, &c[3..100], false, 0..64).is_ok());
        assert!(attn_prefetch(ty, 64, &[], true, 0..64).is_ok());
        assert!(attn_prefetch(ty, 64, &c, false, 0..40).is_err());
        assert!(attn_prefetch(ty, 64, &c, false, 32..96).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = attn_prefetch(ty, 64, &c, false, 64..32);
        assert!(backwards.is_err());
    }
    assert!(attn_prefetch(GgmlType::Q4_0, 64, &c, true, 0..64).is_err());
    assert!(attn_prefetch(GgmlType::Q8_0, 40, &c, true, 0..40).is_err());
}

/// The f16 at index `i` of a little-endian byte slice.
fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[2 * i], b[2 * i + 1]]).to_f32()
}

/// A Q8_0 cache written with `kv_write_key` / `kv_write_value`, decoded
/// here from the documented layout: the rows must round-trip to within half
/// a step (`d = amax / 127`, rounded to f16), and every tier's scores and
/// value sums must match the f64 products of the decoded elements.
#[test]
fn q8_0_cache_matches_f64_oracle() {
    let ty = GgmlType::Q8_0;
    let mut rng = Rng(0x0C8C_AC4E);
    let mut checked = 0usize;
    for &hd in &[64usize, 32, 96, 128] {
        let nb = hd / 32;
        let pb = kv_pos_bytes(ty, hd).unwrap();
        assert_eq!(pb, hd + 2 * nb);
        let cb = KV_CHUNK * pb;
        for &len in &[1usize, 63, 64, 65, 129, 200] {
            let nch = len.div_ceil(KV_CHUNK);
            let span = nch * KV_CHUNK;
            let cs = chunk_stride(len, cb);
            // Chunks cs bytes apart, 0xFF between them.
            let mut kb = vec![0xFFu8; (nch - 1) * cs + cb];
            let mut vb = vec![0xFFu8; (nch - 1) * cs + cb];
            for c in 0..nch {
                kb[c * cs..c * cs + cb].fill(0);
                vb[c * cs..c * cs + cb].fill(0);
            }
            let mut kd = vec![0f32; span * hd];
            let mut vd = vec![0f32; span * hd];
            // The values' scales and quants, for the bound on the weights'
            // rounding below.
            let mut vs = vec![0f32; span * nb];
            let mut vi = vec![0f32; span * hd];
            for p in 0..len {
                let (c, j) = (p / KV_CHUNK, p % KV_CHUNK);
                let amp = 0.1 + 4.0 * rng.f().abs();
                let kr: Vec<f32> = (0..hd).map(|_| rng.f() * amp).collect();
                let vr: Vec<f32> = (0..hd).map(|_| rng.f() * amp).collect();
                kv_write_key(ty, hd, &mut kb[c * cs..c * cs + cb], j, &kr).unwrap();
                kv_write_value(ty, hd, &mut vb[c * cs..c * cs + cb], j, &vr).unwrap();
                let (ks, kq) = kb[c * cs..c * cs + cb].split_at(2 * nb * KV_CHUNK);
                let vc = &vb[c * cs..c * cs + cb];
                for d in 0..hd {
                    let b = d / 32;
                    let dk = f16_at(ks, b * KV_CHUNK + j);
                    // Values: per block, 64 f16 scales then 64 rows of 32
                    // quants.
                    let vblk = &vc[b * KV_CHUNK * 34..(b + 1) * KV_CHUNK * 34];
                    let dv = f16_at(vblk, j);
                    // Keys: quants in groups of four dimensions per position.
                    kd[p * hd + d] = dk * (kq[((d / 4) * KV_CHUNK + j) * 4 + d % 4] as i8) as f32;
                    vi[p * hd + d] = (vblk[2 * KV_CHUNK + 32 * j + d % 32] as i8) as f32;
                    vd[p * hd + d] = dv * vi[p * hd + d];
                    vs[p * nb + b] = dv;
                    for (src, dec, dd) in [(&kr, &kd, dk), (&vr, &vd, dv)] {
                        let amax = src[32 * b..32 * b + 32]
                            .iter()
                            .fold(0f32, |m, x| m.max(x.abs()));
                        assert!((dd - amax / 127.0).abs() <= amax / 127.0 * 1e-3);
                        // Half a step, plus the scale's f16 rounding times 127.
                        let slack = 127.0 * (dd - amax / 127.0).abs();
                        assert!((dec[p * hd + d] - src[d]).abs() <= dd * 0.5 + slack + 1e-6);
                    }
                }
            }
            for t in tiers() {
                for &group in &[1usize, 3, 4, 5, 9] {
                    let q: Vec<f32> = (0..group * hd).map(|_| rng.f()).collect();
                    let stride = span + 5;
                    let mut scores = vec![f32::NAN; group * stride];
                    attn_scores_with(t, ty, hd, group, &q, &kb, cs, len, &mut scores, stride)
                        .unwrap();
                    // The queries are quantized to Q8_0 first, as llama.cpp
                    // does: decode them as the keys.
                    let qdec = dequant_q8_0(&q);
                    for g in 0..group {
                        for p in 0..span {
                            let terms =
                                (0..hd).map(|d| qdec[g * hd + d] as f64 * kd[p * hd + d] as f64);
                            let want: f64 = terms.clone().sum();
                            let abs: f64 = terms.map(f64::abs).sum();
                            let got = scores[g * stride + p] as f64;
                            assert!(
                                (got - want).abs() <= tol(hd, abs),
                                "{t} hd {hd} group {group} len {len}: score[{g}][{p}] {got} vs {want}"
                            );
                        }
                    }
                    let probs: Vec<f32> = (0..group * stride).map(|_| rng.f().abs()).collect();
                    let mut out = vec![f32::NAN; group * hd];
                    attn_values_with(t, ty, hd, group, &probs, stride, &vb, cs, len, &mut out)
                        .unwrap();
                    for g in 0..group {
                        for d in 0..hd {
                            let terms = (0..len)
                                .map(|p| probs[g * stride + p] as f64 * vd[p * hd + d] as f64);
                            let want: f64 = terms.clone().sum();
                            let abs: f64 = terms.map(f64::abs).sum();
                            // A tier may round each weight `p · d` to a
                            // 16-bit step of its chunk's largest (module
                            // `attn`): half a step times the quant.
                            let b = d / 32;
                            let steps: f64 = (0..nch)
                                .map(|c| {
                                    let ps = c * KV_CHUNK..len.min((c + 1) * KV_CHUNK);
                                    let m = ps
                                        .clone()
                                        .map(|p| (probs[g * stride + p] * vs[p * nb + b]).abs())
                                        .fold(0f32, f32::max);
                                    let q: f64 = ps.map(|p| f64::from(vi[p * hd + d].abs())).sum();
                                    f64::from(m) / 65534.0 * q
                                })
                                .sum();
                            let got = out[g * hd + d] as f64;
                            assert!(
                                (got - want).abs() <= tol(len, abs) + steps * (1.0 + 1e-6),
                                "{t} hd {hd} group {group} len {len}: out[{g}][{d}] {got} vs {want}"
                            );
                        }
                    }
                    assert_cols_match(t, ty, hd, group, &probs, stride, &vb, cs, len, &out);
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 4 * 5 * 5);
}

/// `x` quantized as ggml quantizes activations to Q8_0, then decoded.
fn dequant_q8_0(x: &[f32]) -> Vec<f32> {
    let mut bytes = vec![0u8; x.len() / 32 * 34];
    quantize_row_act(GgmlType::Q8_0, x, &mut bytes).unwrap();
    let mut out = Vec::with_capacity(x.len());
    for blk in bytes.chunks_exact(34) {
        let d = f16_to_f32([blk[0], blk[1]]);
        out.extend(blk[2..].iter().map(|&q| d * (q as i8) as f32));
    }
    // Within half a step of the input (the scale is amax / 127, in f16).
    for (a, b) in x.chunks(32).zip(out.chunks(32)) {
        let amax = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (u, v) in a.iter().zip(b) {
            assert!((u - v).abs() <= amax / 127.0 * 0.5 + amax * 2e-3 + 1e-7);
        }
    }
    out
}

/// Every column range a thread may take (ends on multiples of 32, or the
/// head's end) gives exactly the bits of the whole product in its columns.
#[allow(clippy::too_many_arguments)]
fn assert_cols_match(
    t: Tier,
    ty: GgmlType,
    hd: usize,
    group: usize,
    probs: &[f32],
    stride: usize,
    v: &[u8],
    cs: usize,
    len: usize,
    whole: &[f32],
) {
    let mut edges: Vec<usize> = (0..hd).step_by(32).collect();
    edges.push(hd);
    for (i, &c0) in edges.iter().enumerate() {
        for &c1 in &edges[i..] {
            let w = c1 - c0;
            let mut part = vec![f32::NAN; group * w];
            attn_values_cols_with(
                t,
                ty,
                hd,
                group,
                probs,
                stride,
                v,
                cs,
                len,
                c0..c1,
                &mut part,
            )
            .unwrap();
            for g in 0..group {
                for d in c0..c1 {
                    assert_eq!(
                        part[g * w + d - c0].to_bits(),
                        whole[g * hd + d].to_bits(),
                        "{t} {ty} hd {hd} group {group} len {len} cols {c0}..{c1}: [{g}][{d}]"
                    );
                }
            }
        }
    }
    // Ends that are not block edges (nor the head's end) are refused.
    if hd > 16 {
        let mut part = vec![0f32; group * hd];
        let r = attn_values_cols_with(
            t,
            ty,
            hd,
            group,
            probs,
            stride,
            v,
            cs,
            len,
            16..hd,
            &mut part,
        );
        assert!(r.is_err());
    }
}

/// A NaN probability reaches the value sums of its query, and only its,
/// on every tier and cache type (a kernel that rescales or quantizes the
/// weights must not lose it).
#[test]
fn nan_probability_reaches_its_sums() {
    let (hd, group, len) = (64usize, 3usize, 100usize);
    let mut rng = Rng(0x5EED_0A17);
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0] {
        let cb = KV_CHUNK * kv_pos_bytes(ty, hd).unwrap();
        let nch = len.div_ceil(KV_CHUNK);
        let mut vb = vec![0u8; nch * cb];
        for p in 0..len {
            let row: Vec<f32> = (0..hd).map(|_| rng.f()).collect();
            let c = p / KV_CHUNK;
            kv_write_value(ty, hd, &mut vb[c * cb..(c + 1) * cb], p % KV_CHUNK, &row).unwrap();
        }
        let stride = nch * KV_CHUNK;
        let mut probs = vec![1.0 / len as f32; group * stride];
        probs[stride + 70] = f32::NAN;
        for t in tiers() {
            let mut out = vec![0f32; group * hd];
            attn_values_with(t, ty, hd, group, &probs, stride, &vb, cb, len, &mut out).unwrap();
            for g in 0..group {
                for d in 0..hd {
                    let o = out[g * hd + d];
                    assert_eq!(o.is_nan(), g == 1, "{t} {ty} [{g}][{d}] = {o}");
                }
            }
        }
    }
}

/// The x86-64 tiers round the same Q8_0 value weights and add in the same
/// order, so their value sums agree bit for bit (`docs/kernels.md`).
#[cfg(target_arch = "x86_64")]
#[test]
fn x86_q8_0_value_sums_agree_bit_for_bit() {
    let ty = GgmlType::Q8_0;
    let x86: Vec<Tier> = tiers()
        .into_iter()
        .filter(|t| matches!(t, Tier::Avx2 | Tier::Avx512))
        .collect();
    let mut rng = Rng(0xB17_B17);
    for &hd in &[32usize, 64, 128] {
        let cb = KV_CHUNK * kv_pos_bytes(ty, hd).unwrap();
        for &len in &[1usize, 63, 64, 100, 200] {
            let nch = len.div_ceil(KV_CHUNK);
            let mut vb = vec![0u8; nch * cb];
            for p in 0..len {
                let amp = 0.1 + 4.0 * rng.f().abs();
                let row: Vec<f32> = (0..hd).map(|_| rng.f() * amp).collect();
                let c = p / KV_CHUNK;
                kv_write_value(ty, hd, &mut vb[c * cb..(c + 1) * cb], p % KV_CHUNK, &row).unwrap();
            }
            for &group in &[1usize, 3, 5] {
                let stride = nch * KV_CHUNK;
                let probs: Vec<f32> = (0..group * stride).map(|_| rng.f().abs()).collect();
                let outs: Vec<Vec<u32>> = x86
                    .iter()
                    .map(|&t| {
                        let mut out = vec![0f32; group * hd];
                        attn_values_with(t, ty, hd, group, &probs, stride, &vb, cb, len, &mut out)
                            .unwrap();
                        out.iter().map(|x| x.to_bits()).collect()
                    })
                    .collect();
                for (t, o) in x86.iter().zip(&outs).skip(1) {
                    assert_eq!(
                        o, &outs[0],
                        "{t} vs {}: hd {hd} len {len} group {group}",
                        x86[0]
                    );
                }
            }
        }
    }
}
