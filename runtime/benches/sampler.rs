//! The sampler over a 49152-token vocabulary (SmolLM2's): llama.cpp's
//! default chain (top-k 40, top-p 0.95, min-p 0.05, temperature 0.8) and
//! greedy, each with no penalty and with a repetition penalty of 1.1 over a
//! 64-token history (ollama's default). Greedy with a penalty takes the
//! path over every candidate; the others read the logits in place.
//!
//! `cargo bench -p ember --bench sampler`

#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ember::sampler::{Sampler, SamplerParams};

/// Logits shaped like a model's: roughly normal, σ ≈ 2.5, with a few
/// large ones.
fn logits(n: usize) -> Vec<f32> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut u = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n)
        .map(|i| {
            let g = (u() + u() + u() + u() - 2.0) * 4.3;
            if i % 997 == 0 {
                g + 12.0
            } else {
                g
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let n = 49152;
    let l = logits(n);
    let mut g = c.benchmark_group("sample_49152");
    for (name, params) in [
        ("default", SamplerParams::default()),
        ("greedy", SamplerParams::greedy()),
    ] {
        // The history: 64 tokens spread over the vocabulary.
        let history: Vec<u32> = (0..64u32).map(|i| (i * 7919) % n as u32).collect();
        for (case, penalty) in [("no_penalty", 1.0), ("repeat_penalty_64", 1.1)] {
            let mut s = Sampler::new(
                n,
                SamplerParams {
                    repeat_penalty: penalty,
                    ..params
                },
            );
            g.bench_function(format!("{name}/{case}"), |b| {
                b.iter(|| s.sample(black_box(&l), &history))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
