//! Kernel benches: GEMV / GEMM per format × tier at the default model's
//! shapes, a "whole model" GEMV sweep over > 64 MiB of distinct weights, and a
//! single-thread read-bandwidth probe to compare it with.
//!
//! `cargo bench -p ember-quant --bench kernels` (criterion filters work:
//! `-- sweep`). Throughput is bytes of weights streamed (criterion prints
//! GiB/s). A summary table with decimal GB/s, GFLOP/s and the sweep's
//! fraction of the read bandwidth is printed first (skip it with
//! `EMBER_BENCH_SUMMARY=0`). `EMBER_SWEEP_MIB` sets the sweep/probe size
//! (default 320 MiB of weights, probe buffer 512 MiB), larger than the L3 of
//! most machines.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ember_quant::{
    gemm_with, gemv_with, quantize_row, quantize_row_act_with, vec_dot_type, GgmlType, Tier,
};

const FORMATS: [GgmlType; 9] = [
    GgmlType::Q4_1,
    GgmlType::Q4_0,
    GgmlType::Q8_0,
    GgmlType::Q5_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::F16,
    GgmlType::Q5_K,
    GgmlType::Q5_1,
];

/// rows × k of the default model's matrices.
const GEMV_SHAPES: [(usize, usize); 5] = [
    (576, 576),
    (192, 576),
    (1536, 576),
    (576, 1536),
    (49152, 576),
];
const GEMM_SHAPES: [(usize, usize); 2] = [(576, 576), (1536, 576)];
const GEMM_N: usize = 128;

fn tiers() -> Vec<Tier> {
    [
        Tier::Scalar,
        Tier::Avx2,
        Tier::Avx512,
        Tier::Neon,
        Tier::Dotprod,
        Tier::I8mm,
        Tier::Simd128,
    ]
    .into_iter()
    .filter(|t| t.is_supported())
    .collect()
}

fn simd_tiers() -> Vec<Tier> {
    tiers().into_iter().filter(|&t| t != Tier::Scalar).collect()
}

fn floats(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn quant(ty: GgmlType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len() as u64).unwrap() as usize];
    quantize_row(ty, x, &mut out).unwrap();
    out
}

/// A rows × k weight matrix (quantized from random data, row by row so
/// K-quants need k % 256 == 0 only per row).
fn matrix(ty: GgmlType, rows: usize, k: usize) -> Vec<u8> {
    // Quantize a few distinct rows and repeat them (K-quant quantizers are slow).
    let distinct = rows.min(64);
    let proto: Vec<Vec<u8>> = (0..distinct)
        .map(|r| quant(ty, &floats(k, r as u64 + 1)))
        .collect();
    (0..rows)
        .flat_map(|r| proto[r % distinct].iter().copied())
        .collect()
}

fn supported(ty: GgmlType, k: usize) -> bool {
    k.is_multiple_of(ty.block_size())
}

fn gemv_benches(c: &mut Criterion) {
    for ty in FORMATS {
        let xt = vec_dot_type(ty).unwrap();
        let mut g = c.benchmark_group(format!("gemv/{ty}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(500));
        for (rows, k) in GEMV_SHAPES {
            if !supported(ty, k) {
                continue;
            }
            let w = matrix(ty, rows, k);
            let x = quant(xt, &floats(k, 99));
            let mut y = vec![0f32; rows];
            g.throughput(Throughput::Bytes(w.len() as u64));
            for t in tiers() {
                // The scalar tier only at one shape (reference point; it is slow).
                if t == Tier::Scalar && (rows, k) != (1536, 576) {
                    continue;
                }
                g.bench_with_input(
                    BenchmarkId::new(t.name(), format!("{rows}x{k}")),
                    &(),
                    |b, _| {
                        b.iter(|| {
                            gemv_with(t, ty, black_box(&w), k, 0..rows, black_box(&x), &mut y)
                                .unwrap()
                        })
                    },
                );
            }
        }
        g.finish();
    }
}

/// Activation quantization (`quantize_row_act`): serial on the main thread
/// between a prompt batch's matmuls, once per weight input and token.
fn act_quant_benches(c: &mut Criterion) {
    // A 64-token batch of the FFN's widest input (1536).
    let (n, k) = (64, 1536);
    let x = floats(n * k, 5);
    for ty in [GgmlType::Q8_0, GgmlType::Q8_1] {
        let mut g = c.benchmark_group(format!("quantize_act/{ty}"));
        g.sample_size(20)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(500));
        g.throughput(Throughput::Bytes((4 * n * k) as u64));
        let rb = ty.row_bytes(k as u64).unwrap() as usize;
        let mut out = vec![0u8; n * rb];
        for t in tiers() {
            g.bench_with_input(
                BenchmarkId::new(t.name(), format!("{n}x{k}")),
                &(),
                |b, _| {
                    b.iter(|| {
                        for (src, dst) in x.chunks_exact(k).zip(out.chunks_exact_mut(rb)) {
                            quantize_row_act_with(t, ty, black_box(src), dst).unwrap();
                        }
                    })
                },
            );
        }
        g.finish();
    }
}

fn gemm_benches(c: &mut Criterion) {
    for ty in FORMATS {
        let xt = vec_dot_type(ty).unwrap();
        let mut g = c.benchmark_group(format!("gemm{GEMM_N}/{ty}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(500));
        for (rows, k) in GEMM_SHAPES {
            if !supported(ty, k) {
                continue;
            }
            let w = matrix(ty, rows, k);
            let x = quant(xt, &floats(k * GEMM_N, 7));
            let mut y = vec![0f32; rows * GEMM_N];
            g.throughput(Throughput::Bytes(w.len() as u64));
            for t in simd_tiers() {
                g.bench_with_input(
                    BenchmarkId::new(t.name(), format!("{rows}x{k}")),
                    &(),
                    |b, _| {
                        b.iter(|| {
                            gemm_with(
                                t,
                                ty,
                                black_box(&w),
                                k,
                                0..rows,
                                black_box(&x),
                                GEMM_N,
                                &mut y,
                            )
                            .unwrap()
                        })
                    },
                );
            }
        }
        g.finish();
    }
}

fn sweep_mib() -> usize {
    std::env::var("EMBER_SWEEP_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(320)
}

/// Distinct 1536 × 576 (or × 1536 for K-quants' sake: k = 1536) matrices
/// totalling at least `sweep_mib()` MiB, back to back in one buffer.
struct Sweep {
    ty: GgmlType,
    k: usize,
    rows: usize,
    mat_bytes: usize,
    buf: Vec<u8>,
    x: Vec<u8>,
}

impl Sweep {
    fn new(ty: GgmlType) -> Sweep {
        let (rows, k) = (1536, 1536);
        let one = matrix(ty, rows, k);
        let count = (sweep_mib() << 20).div_ceil(one.len());
        let mut buf = Vec::with_capacity(one.len() * count);
        for _ in 0..count {
            buf.extend_from_slice(&one);
        }
        let x = quant(vec_dot_type(ty).unwrap(), &floats(k, 5));
        Sweep {
            ty,
            k,
            rows,
            mat_bytes: one.len(),
            buf,
            x,
        }
    }
    fn run(&self, t: Tier, y: &mut [f32]) {
        for m in self.buf.chunks_exact(self.mat_bytes) {
            gemv_with(t, self.ty, black_box(m), self.k, 0..self.rows, &self.x, y).unwrap();
        }
    }
}

fn probe_buf() -> Vec<u8> {
    let n = (sweep_mib().max(512)) << 20;
    (0..n).map(|i| (i * 31 + 7) as u8).collect()
}

const SWEEP_FORMATS: [GgmlType; 7] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q8_0,
    GgmlType::Q5_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::F16,
];

fn sweep_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("sweep");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    {
        let buf = probe_buf();
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_function("read_bandwidth", |b| {
            b.iter(|| ember_quant::bench_support::sum_u64_words(black_box(&buf)))
        });
    }
    for ty in SWEEP_FORMATS {
        let s = Sweep::new(ty);
        let mut y = vec![0f32; s.rows];
        g.throughput(Throughput::Bytes(s.buf.len() as u64));
        for t in simd_tiers() {
            g.bench_function(BenchmarkId::new(format!("{ty}"), t.name()), |b| {
                b.iter(|| s.run(t, &mut y))
            });
        }
    }
    g.finish();
}

/// Best-of-`reps` seconds of `f`.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Seconds for `chunks` pieces of work, each timed separately and taken at
/// its best over `reps` passes (pass-major, so every pass streams the whole
/// working set again). Robust to preemption on a shared machine: a piece is
/// short (~0.1-1 ms), so most passes run it undisturbed.
fn chunked_best(reps: usize, chunks: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut best = vec![f64::INFINITY; chunks];
    for _ in 0..reps {
        for (i, b) in best.iter_mut().enumerate() {
            let t = Instant::now();
            f(i);
            *b = b.min(t.elapsed().as_secs_f64());
        }
    }
    best.iter().sum()
}

/// A plain table: decimal GB/s of weights, GFLOP/s (2·rows·k·n), and the
/// sweep's fraction of the single-thread read bandwidth, both measured
/// with [`chunked_best`].
fn summary(_c: &mut Criterion) {
    if std::env::var("EMBER_BENCH_SUMMARY").as_deref() == Ok("0") {
        return;
    }
    let reps = 7;
    let buf = probe_buf();
    const PIECE: usize = 2 << 20;
    let secs = chunked_best(reps, buf.len() / PIECE, |i| {
        black_box(ember_quant::bench_support::sum_u64_words(black_box(
            &buf[i * PIECE..(i + 1) * PIECE],
        )));
    });
    let bw = buf.len() as f64 / secs / 1e9;
    drop(buf);
    println!("\n== summary (single thread; per-piece best of {reps} passes) ==");
    println!(
        "read bandwidth ({} MiB in 2 MiB pieces, AVX2 loads): {bw:.2} GB/s",
        sweep_mib().max(512)
    );
    println!(
        "{:<8} {:<7} {:>14} {:>9} {:>9} {:>8}",
        "format", "tier", "shape", "GB/s", "GFLOP/s", "of BW"
    );
    for ty in SWEEP_FORMATS {
        let s = Sweep::new(ty);
        let mut y = vec![0f32; s.rows];
        let count = s.buf.len() / s.mat_bytes;
        for t in simd_tiers() {
            let secs = chunked_best(reps, count, |i| {
                let m = &s.buf[i * s.mat_bytes..(i + 1) * s.mat_bytes];
                gemv_with(t, s.ty, black_box(m), s.k, 0..s.rows, &s.x, &mut y).unwrap();
            });
            let gbs = s.buf.len() as f64 / secs / 1e9;
            let flops = 2.0 * (count * s.rows * s.k) as f64 / secs / 1e9;
            println!(
                "{:<8} {:<7} {:>14} {gbs:>9.2} {flops:>9.2} {:>7.0}%",
                format!("{ty}"),
                t.name(),
                format!("sweep{}M", s.buf.len() >> 20),
                100.0 * gbs / bw
            );
        }
    }
    for ty in FORMATS {
        let xt = vec_dot_type(ty).unwrap();
        for &(rows, k, n) in &[
            (1536usize, 576usize, 1usize),
            (576, 1536, 1),
            (49152, 576, 1),
            (1536, 576, GEMM_N),
        ] {
            if !supported(ty, k) {
                continue;
            }
            let w = matrix(ty, rows, k);
            let x = quant(xt, &floats(k * n, 3));
            let mut y = vec![0f32; rows * n];
            for t in tiers() {
                if t == Tier::Scalar && (rows, n) != (576, 1) {
                    continue;
                }
                let secs = best(reps, || {
                    gemm_with(t, ty, &w, k, 0..rows, &x, n, &mut y).unwrap()
                });
                let gbs = w.len() as f64 / secs / 1e9;
                let flops = 2.0 * (rows * k * n) as f64 / secs / 1e9;
                println!(
                    "{:<8} {:<7} {:>14} {gbs:>9.2} {flops:>9.2}",
                    format!("{ty}"),
                    t.name(),
                    format!("{rows}x{k}x{n}")
                );
            }
        }
    }
    println!();
}

criterion_group!(
    benches,
    summary,
    sweep_benches,
    gemv_benches,
    gemm_benches,
    act_quant_benches
);
criterion_main!(benches);
