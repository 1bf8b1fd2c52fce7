//! Attention benches: one decode token's scores and value sums over a KV
//! cache, per cache type (F16, Q8_0) × tier, at the default model's shapes
//! (head dim 64, 3 queries per KV head).
//!
//! `cargo bench -p ember-quant --bench attn`. Two cases, with throughput in
//! bytes of cache read:
//! - `head`: one KV head at depth 1024, warm in cache;
//! - `token`: the 90 KV heads (30 layers × 3) of a whole token at depth
//!   1024, each its own buffer (24 MB for F16), as decode streams them.
//!
//! A summary is printed first (skip it with `EMBER_BENCH_SUMMARY=0`): ms per
//! token and GB/s for `token` warm (the same 90 heads again and again, so
//! they sit in a large L3) and cold (`EMBER_ATTN_COLD` sets of 90 heads, 16
//! by default: 380 MB for F16, visited in turn so that each comes from
//! DRAM, as in a model whose weights stream through the caches between two
//! visits).
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ember_quant::{
    attn_scores_with, attn_values_with, kv_pos_bytes, kv_write_key, kv_write_value, GgmlType, Tier,
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

/// One head's keys and values (`LEN` positions), written as the runtime
/// writes them.
fn head(ty: GgmlType, seed: u32) -> (Vec<u8>, Vec<u8>) {
    let cb = KV_CHUNK * kv_pos_bytes(ty, HD).unwrap();
    let nch = LEN.div_ceil(KV_CHUNK);
    let (mut k, mut v) = (vec![0u8; nch * cb], vec![0u8; nch * cb]);
    let mut s = seed | 1;
    let mut f = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s % 2001) as f32 / 1000.0 - 1.0
    };
    for p in 0..LEN {
        let (c, j) = (p / KV_CHUNK, p % KV_CHUNK);
        let kr: Vec<f32> = (0..HD).map(|_| f()).collect();
        let vr: Vec<f32> = (0..HD).map(|_| f()).collect();
        kv_write_key(ty, HD, &mut k[c * cb..(c + 1) * cb], j, &kr).unwrap();
        kv_write_value(ty, HD, &mut v[c * cb..(c + 1) * cb], j, &vr).unwrap();
    }
    (k, v)
}

/// A cache type and its heads' (keys, values) buffers.
type Heads = (GgmlType, Vec<(Vec<u8>, Vec<u8>)>);

struct Scratch {
    q: Vec<f32>,
    probs: Vec<f32>,
    out: Vec<f32>,
}

fn scratch() -> Scratch {
    let stride = LEN.next_multiple_of(KV_CHUNK);
    Scratch {
        q: (0..GROUP * HD)
            .map(|i| (i % 7) as f32 * 0.1 - 0.3)
            .collect(),
        probs: vec![1.0 / LEN as f32; GROUP * stride],
        out: vec![0f32; GROUP * HD],
    }
}

/// Scores, then value sums, for one head (the probabilities are left
/// uniform: softmax is not what is measured).
fn one(t: Tier, ty: GgmlType, k: &[u8], v: &[u8], s: &mut Scratch) {
    let stride = LEN.next_multiple_of(KV_CHUNK);
    let cb = KV_CHUNK * kv_pos_bytes(ty, HD).unwrap();
    attn_scores_with(t, ty, HD, GROUP, &s.q, k, cb, LEN, &mut s.probs, stride).unwrap();
    s.probs.fill(1.0 / LEN as f32);
    attn_values_with(t, ty, HD, GROUP, &s.probs, stride, v, cb, LEN, &mut s.out).unwrap();
    black_box(&s.out);
}

/// Median seconds per token over `sets` (visited in turn), `reps` tokens.
fn time_tokens(t: Tier, ty: GgmlType, sets: &[&[(Vec<u8>, Vec<u8>)]], reps: usize) -> f64 {
    let mut s = scratch();
    let mut times = Vec::new();
    for r in 0..reps {
        let hs = sets[r % sets.len()];
        let t0 = Instant::now();
        for (k, v) in hs {
            one(t, ty, k, v, &mut s);
        }
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn summary(heads: &[Heads]) {
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
    for (ty, hs) in heads {
        let bytes: usize = hs.iter().map(|(k, v)| k.len() + v.len()).sum();
        let cold: Vec<Vec<(Vec<u8>, Vec<u8>)>> = (0..n_cold)
            .map(|c| {
                (0..HEADS as u32)
                    .map(|i| head(*ty, 1000 * c as u32 + i))
                    .collect()
            })
            .collect();
        let cold: Vec<&[(Vec<u8>, Vec<u8>)]> = cold.iter().map(|c| c.as_slice()).collect();
        for t in tiers() {
            let warm = time_tokens(t, *ty, &[hs.as_slice()], 15);
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

fn benches(c: &mut Criterion) {
    let heads: Vec<Heads> = TYPES
        .iter()
        .map(|&ty| (ty, (0..HEADS as u32).map(|i| head(ty, 77 + i)).collect()))
        .collect();
    summary(&heads);
    let mut g = c.benchmark_group("attn");
    for (ty, hs) in &heads {
        for t in tiers() {
            let (k, v) = &hs[0];
            g.throughput(Throughput::Bytes((k.len() + v.len()) as u64));
            let mut s = scratch();
            g.bench_function(BenchmarkId::new(format!("head/{ty}"), t), |b| {
                b.iter(|| one(t, *ty, k, v, &mut s))
            });
            let bytes: usize = hs.iter().map(|(k, v)| k.len() + v.len()).sum();
            g.throughput(Throughput::Bytes(bytes as u64));
            g.bench_function(BenchmarkId::new(format!("token/{ty}"), t), |b| {
                b.iter(|| {
                    for (k, v) in hs {
                        one(t, *ty, k, v, &mut s);
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = attn;
    config = Criterion::default().sample_size(20).warm_up_time(std::time::Duration::from_millis(500));
    targets = benches
}
criterion_main!(attn);
