//! Attention benches: one decode token's scores and value sums over a KV
//! cache, per cache type (F16, Q8_0) × tier, at the default model's shapes
//! (head dim 64, 3 queries per KV head).
//!
//! `cargo bench -p ember-quant --bench attn`. Two cases, with throughput in
//! bytes of cache read:
//! - `head`: one KV head at depth 1024, warm in cache;
//! - `token`: the 90 KV heads (30 layers × 3) of a whole token at depth
//!   1024 (24 MB for F16), as decode streams them.
//!
//! `softmax/token` times one token's softmax at depth 1056 (270 rows: 9
//! query heads × 30 layers), per tier.
//!
//! The cache is laid out as the runtime lays it out: one buffer each for
//! keys and values, `[chunk][head]`, in 2 MiB pages (see [`Token`]), and
//! read with the runtime's hints (`attn_prefetch`): a head's first value
//! chunk fetched ahead before its scores, the next head's first key chunk
//! before its value sums.
//!
//! A summary is printed first (skip it with `EMBER_BENCH_SUMMARY=0`): ms per
//! token and GB/s for `token` warm (the same 90 heads again and again, so
//! they sit in a large L3) and cold (`EMBER_ATTN_COLD` tokens' caches, 16
//! by default: 380 MB for F16, visited in turn so that each comes from
//! DRAM). `EMBER_ATTN_ONLY=scores` or `=values` times one of the two
//! products alone (and counts only its bytes).
//!
//! `EMBER_ATTN_MODEL=1` adds decode-like tokens: per layer a gemv over that
//! layer's share of the default model's weights (Q4_1, 84 MB a token), then
//! the layer's attention, with the gemvs and the attention timed apart. The
//! cache is then cold only as it is in the model, where the weights stream
//! through the caches between two visits, and the gemvs show what reading
//! the cache costs them. A row with only a plain read of the same bytes in
//! the same order (the roofline's read probe) gives the least any attention
//! kernel could add.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ember_quant::bench_support::sum_u64_words;
use ember_quant::{
    attn_prefetch, attn_scores_with, attn_values_with, gemv_with, kv_pos_bytes, kv_write_key,
    kv_write_value, quantize_row, quantize_row_act, softmax_with, vec_dot_type, GgmlType, Tier,
    KV_CHUNK,
};

const HD: usize = 64;
const GROUP: usize = 3;
const LEN: usize = 1024;
const HEADS: usize = 90;
const TYPES: [GgmlType; 2] = [GgmlType::F16, GgmlType::Q8_0];

fn tiers() -> Vec<Tier> {
    [Tier::Avx2, Tier::Avx512, Tier::Neon]
        .into_iter()
        .filter(|t| t.is_supported())
        .collect()
}

/// One token's cache at depth `LEN`, laid out as the runtime lays it out:
/// chunk `c` of head `h` (of the `HEADS` = layers × KV heads) at `(c ·
/// HEADS + h) · cb`, so a head's chunks are `cs = HEADS · cb` apart, in
/// anonymous maps advised into 2 MiB pages (on Linux), as the session's
/// arena is.
struct Token {
    k: memmap2::MmapMut,
    v: memmap2::MmapMut,
    cb: usize,
}

impl Token {
    fn new(ty: GgmlType, seed: u32) -> Token {
        let cb = KV_CHUNK * kv_pos_bytes(ty, HD).unwrap();
        let len = LEN.div_ceil(KV_CHUNK) * HEADS * cb;
        let map = || {
            let m = memmap2::MmapMut::map_anon(len).unwrap();
            #[cfg(target_os = "linux")]
            let _ = m.advise(memmap2::Advice::HugePage);
            m
        };
        let (mut k, mut v) = (map(), map());
        let mut s = seed | 1;
        let mut f = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2001) as f32 / 1000.0 - 1.0
        };
        let cs = HEADS * cb;
        for h in 0..HEADS {
            for p in 0..LEN {
                let at = (p / KV_CHUNK) * cs + h * cb;
                let kr: Vec<f32> = (0..HD).map(|_| f()).collect();
                let vr: Vec<f32> = (0..HD).map(|_| f()).collect();
                kv_write_key(ty, HD, &mut k[at..at + cb], p % KV_CHUNK, &kr).unwrap();
                kv_write_value(ty, HD, &mut v[at..at + cb], p % KV_CHUNK, &vr).unwrap();
            }
        }
        Token { k, v, cb }
    }

    /// Head `h`'s keys and values, from its first chunk on.
    fn head(&self, h: usize) -> (&[u8], &[u8]) {
        (&self.k[h * self.cb..], &self.v[h * self.cb..])
    }

    /// The bytes one token reads of each.
    fn bytes(&self) -> usize {
        LEN.div_ceil(KV_CHUNK) * HEADS * self.cb
    }
}

/// What the summary times: both products (the default), or only one of
/// them (`EMBER_ATTN_ONLY=scores|values`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Both,
    Scores,
    Values,
}

struct Scratch {
    part: Part,
    q: Vec<f32>,
    probs: Vec<f32>,
    out: Vec<f32>,
}

fn scratch() -> Scratch {
    let stride = LEN.next_multiple_of(KV_CHUNK);
    let part = match std::env::var("EMBER_ATTN_ONLY").as_deref() {
        Ok("scores") => Part::Scores,
        Ok("values") => Part::Values,
        _ => Part::Both,
    };
    Scratch {
        part,
        q: (0..GROUP * HD)
            .map(|i| (i % 7) as f32 * 0.1 - 0.3)
            .collect(),
        probs: vec![1.0 / LEN as f32; GROUP * stride],
        out: vec![0f32; GROUP * HD],
    }
}

/// Scores, then value sums, for one head (the probabilities are left
/// uniform: softmax is not what is measured), with the runtime's hints:
/// the values' first chunk fetched ahead before the scores, and the next
/// head's first key chunk (`next`) before the values.
fn one(t: Tier, ty: GgmlType, (k, v): (&[u8], &[u8]), next: Option<&[u8]>, s: &mut Scratch) {
    let stride = LEN.next_multiple_of(KV_CHUNK);
    let cb = KV_CHUNK * kv_pos_bytes(ty, HD).unwrap();
    let cs = HEADS * cb;
    if s.part != Part::Values {
        if s.part == Part::Both {
            attn_prefetch(ty, HD, &v[..cb], false, 0..HD).unwrap();
        }
        attn_scores_with(t, ty, HD, GROUP, &s.q, k, cs, LEN, &mut s.probs, stride).unwrap();
        s.probs.fill(1.0 / LEN as f32);
    }
    if s.part != Part::Scores {
        if let Some(nk) = next.filter(|_| s.part == Part::Both) {
            attn_prefetch(ty, HD, &nk[..cb], true, 0..HD).unwrap();
        }
        attn_values_with(t, ty, HD, GROUP, &s.probs, stride, v, cs, LEN, &mut s.out).unwrap();
    }
    black_box(&s.out);
}

/// One token's attention: every head of `tok`.
fn token(t: Tier, ty: GgmlType, tok: &Token, s: &mut Scratch) {
    for h in 0..HEADS {
        let next = (h + 1 < HEADS).then(|| tok.head(h + 1).0);
        one(t, ty, tok.head(h), next, s);
    }
}

/// Median seconds per token over `toks` (visited in turn), `reps` tokens.
fn time_tokens(t: Tier, ty: GgmlType, toks: &[Token], reps: usize) -> f64 {
    let mut s = scratch();
    let mut times = Vec::new();
    for r in 0..reps {
        let t0 = Instant::now();
        token(t, ty, &toks[r % toks.len()], &mut s);
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn summary(warm: &[(GgmlType, Token)]) {
    if std::env::var("EMBER_BENCH_SUMMARY").as_deref() == Ok("0") {
        return;
    }
    let n_cold: usize = std::env::var("EMBER_ATTN_COLD")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
        .max(2);
    println!("attention, one token at depth {LEN} ({HEADS} KV heads, head dim {HD}, {GROUP} queries each):");
    println!("| cache | tier | MB read | warm ms/token | warm GB/s | cold ms/token | cold GB/s |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (ty, tok) in warm {
        let bytes = match scratch().part {
            Part::Both => 2 * tok.bytes(),
            Part::Scores | Part::Values => tok.bytes(),
        };
        let cold: Vec<Token> = (0..n_cold)
            .map(|c| Token::new(*ty, 1000 * c as u32))
            .collect();
        for t in tiers() {
            let warm = time_tokens(t, *ty, std::slice::from_ref(tok), 15);
            let cold = time_tokens(t, *ty, &cold, 3 * n_cold);
            let gb = |s: f64| bytes as f64 / s / 1e9;
            println!(
                "| {ty} | {t} | {:.1} | {:.3} | {:.2} | {:.3} | {:.2} |",
                bytes as f64 / 1e6,
                warm * 1e3,
                gb(warm),
                cold * 1e3,
                gb(cold)
            );
        }
    }
}

/// Weights as the default model streams them (Q4_1, dim 576): per layer a
/// 6144-row matrix (q, k, v, o, gate, up and down, 2.2 MB), then the
/// output head's 49,152 rows; 84 MB in all, in 2 MiB pages.
struct Weights {
    w: memmap2::MmapMut,
    x: Vec<u8>,
    y: Vec<f32>,
}

const DIM: usize = 576;
const LAYER_ROWS: usize = 6144;
const HEAD_ROWS: usize = 49152;
const LAYERS: usize = HEADS / 3;

impl Weights {
    fn new() -> Weights {
        let ty = GgmlType::Q4_1;
        let row = ty.row_bytes(DIM as u64).unwrap() as usize;
        let rows = LAYERS * LAYER_ROWS + HEAD_ROWS;
        let mut w = memmap2::MmapMut::map_anon(rows * row).unwrap();
        #[cfg(target_os = "linux")]
        let _ = w.advise(memmap2::Advice::HugePage);
        let src: Vec<f32> = (0..DIM)
            .map(|i| ((i * 7919) % 201) as f32 / 100.0 - 1.0)
            .collect();
        for r in w.chunks_exact_mut(row) {
            quantize_row(ty, &src, r).unwrap();
        }
        let xt = vec_dot_type(ty).unwrap();
        let mut x = vec![0u8; xt.row_bytes(DIM as u64).unwrap() as usize];
        quantize_row_act(xt, &src, &mut x).unwrap();
        Weights {
            w,
            x,
            y: vec![0f32; HEAD_ROWS],
        }
    }

    /// The gemv over `rows` of the weights.
    fn gemv(&mut self, t: Tier, rows: std::ops::Range<usize>) {
        let n = rows.len();
        gemv_with(
            t,
            GgmlType::Q4_1,
            &self.w,
            DIM,
            rows,
            &self.x,
            &mut self.y[..n],
        )
        .unwrap();
        black_box(&self.y);
    }
}

/// What runs after each layer's gemv.
#[derive(Clone, Copy)]
enum After<'a> {
    Nothing,
    /// The layer's attention over this cache.
    Attention(&'a Token),
    /// Only a read of the bytes the attention would read, in its order:
    /// no arithmetic, so the least any kernel can take.
    Read(&'a Token),
}

/// Sums the bytes of head `h`'s chunks (the bench's read probe).
fn read_head(tok: &Token, h: usize) -> u64 {
    let cs = HEADS * tok.cb;
    (0..LEN.div_ceil(KV_CHUNK))
        .map(|c| {
            let at = c * cs + h * tok.cb;
            sum_u64_words(&tok.k[at..at + tok.cb])
                .wrapping_add(sum_u64_words(&tok.v[at..at + tok.cb]))
        })
        .fold(0, u64::wrapping_add)
}

/// Decode tokens as the model runs them, with `after` after each layer's
/// gemv: the median ms a token of the gemvs and of the rest, timed apart.
fn model_tokens(t: Tier, ty: GgmlType, ws: &mut Weights, after: After) -> (f64, f64) {
    let mut s = scratch();
    let (mut gs, mut at) = (Vec::new(), Vec::new());
    for _ in 0..24 {
        let (mut g, mut a) = (0f64, 0f64);
        for l in 0..LAYERS {
            let t0 = Instant::now();
            ws.gemv(t, l * LAYER_ROWS..(l + 1) * LAYER_ROWS);
            let t1 = Instant::now();
            match after {
                After::Nothing => {}
                After::Attention(tok) => {
                    // The runtime fetches a layer's first key chunk
                    // during its q/k/v matmul, the rest as above.
                    attn_prefetch(ty, HD, &tok.head(3 * l).0[..tok.cb], true, 0..HD).unwrap();
                    for h in 3 * l..3 * l + 3 {
                        let next = (h + 1 < 3 * l + 3).then(|| tok.head(h + 1).0);
                        one(t, ty, tok.head(h), next, &mut s);
                    }
                }
                After::Read(tok) => {
                    for h in 3 * l..3 * l + 3 {
                        black_box(read_head(tok, h));
                    }
                }
            }
            g += (t1 - t0).as_secs_f64();
            a += t1.elapsed().as_secs_f64();
        }
        let t0 = Instant::now();
        ws.gemv(t, LAYERS * LAYER_ROWS..LAYERS * LAYER_ROWS + HEAD_ROWS);
        gs.push(g + t0.elapsed().as_secs_f64());
        at.push(a);
    }
    gs.sort_by(f64::total_cmp);
    at.sort_by(f64::total_cmp);
    (gs[gs.len() / 2] * 1e3, at[at.len() / 2] * 1e3)
}

/// `EMBER_ATTN_MODEL=1`: the gemvs' time a token without attention and
/// with each cache type's attention between them, in alternating rounds.
fn model_summary(toks: &[(GgmlType, Token)]) {
    if std::env::var("EMBER_ATTN_MODEL").as_deref() != Ok("1") {
        return;
    }
    let mut ws = Weights::new();
    let t = ember_quant::tier();
    println!("decode-like tokens ({t}): per layer a 2.2 MB Q4_1 gemv, then the layer's attention at depth {LEN}; ms a token, median of 24:");
    println!("| round | after each gemv | gemvs | after | total |");
    println!("|---|---|---:|---:|---:|");
    for r in 0..3 {
        let (g, _) = model_tokens(t, GgmlType::F16, &mut ws, After::Nothing);
        println!("| {r} | nothing | {g:.3} | 0 | {g:.3} |");
        for (ty, tok) in toks {
            for (what, after) in [
                ("attention", After::Attention(tok)),
                ("read only", After::Read(tok)),
            ] {
                let (g, a) = model_tokens(t, *ty, &mut ws, after);
                println!("| {r} | {ty} {what} | {g:.3} | {a:.3} | {:.3} |", g + a);
            }
        }
    }
}

fn benches(c: &mut Criterion) {
    let toks: Vec<(GgmlType, Token)> = TYPES.iter().map(|&ty| (ty, Token::new(ty, 77))).collect();
    summary(&toks);
    model_summary(&toks);
    let mut g = c.benchmark_group("attn");
    for (ty, tok) in &toks {
        for t in tiers() {
            g.throughput(Throughput::Bytes((2 * tok.bytes() / HEADS) as u64));
            let mut s = scratch();
            g.bench_function(BenchmarkId::new(format!("head/{ty}"), t), |b| {
                b.iter(|| one(t, *ty, tok.head(0), None, &mut s))
            });
            g.throughput(Throughput::Bytes(2 * tok.bytes() as u64));
            g.bench_function(BenchmarkId::new(format!("token/{ty}"), t), |b| {
                b.iter(|| token(t, *ty, tok, &mut s))
            });
        }
    }
    // One token's softmax at depth 1056 (the middle of `ember bench -n 64
    // -d 1024`): a row per query head and layer, 9 · 30 of them, each warm.
    let rows: Vec<f32> = (0..4 * 1056)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.013 - 6.0)
        .collect();
    g.throughput(Throughput::Elements(270 * 1056));
    for t in [Tier::Scalar].into_iter().chain(tiers()) {
        let mut x = rows.clone();
        g.bench_function(BenchmarkId::new("softmax/token", t), |b| {
            b.iter(|| {
                for r in 0..270 {
                    let row = &mut x[(r % 4) * 1056..(r % 4 + 1) * 1056];
                    row.copy_from_slice(&rows[(r % 4) * 1056..(r % 4 + 1) * 1056]);
                    softmax_with(t, row, 0.125).unwrap();
                }
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = attn;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500));
    targets = benches
}
criterion_main!(attn);
