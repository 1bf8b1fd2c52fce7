//! Quick prompt-batch GEMM table: GFLOP/s (2·rows·k·n) per format × tier at
//! the default model's shapes with n = 128 columns, best of a few runs.
//!
//! `cargo bench -p ember-quant --bench gemm_quick` (optional argument: a
//! format name filter, e.g. `-- Q4_0`). A shared machine is noisy: compare
//! tiers within one run.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use ember_quant::{gemm_in_with, gemm_scratch_len, quantize_row, vec_dot_type, GgmlType, Tier};

const FORMATS: [GgmlType; 9] = [
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::F16,
];
const SHAPES: [(usize, usize); 3] = [(576, 576), (1536, 576), (576, 1536)];
const N: usize = 128;

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

fn main() {
    let filter = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let tiers: Vec<Tier> = [
        Tier::Avx2,
        Tier::Avx512,
        Tier::Neon,
        Tier::Dotprod,
        Tier::I8mm,
        Tier::Simd128,
    ]
    .into_iter()
    .filter(|t| t.is_supported())
    .collect();
    println!("{:<6} {:>12} GFLOP/s per tier", "format", "shape");
    for ty in FORMATS {
        if !filter.is_empty() && !format!("{ty}").eq_ignore_ascii_case(&filter) {
            continue;
        }
        let xt = vec_dot_type(ty).unwrap();
        for (rows, k) in SHAPES {
            if !k.is_multiple_of(ty.block_size()) {
                continue;
            }
            let w: Vec<u8> = (0..rows)
                .flat_map(|r| quant(ty, &floats(k, r as u64 % 64 + 1)))
                .collect();
            let x = quant(xt, &floats(k * N, 7));
            let mut y = vec![0f32; rows * N];
            // The scratch the runtime plans.
            let mut scratch = vec![0f32; gemm_scratch_len(ty, k, N)];
            let mut line = format!("{:<6} {:>12}", format!("{ty}"), format!("{rows}x{k}x{N}"));
            for &t in &tiers {
                let mut best = f64::INFINITY;
                for _ in 0..15 {
                    let s = Instant::now();
                    gemm_in_with(
                        t,
                        ty,
                        black_box(&w),
                        k,
                        0..rows,
                        black_box(&x),
                        N,
                        &mut y,
                        &mut scratch,
                    )
                    .unwrap();
                    best = best.min(s.elapsed().as_secs_f64());
                }
                let gf = 2.0 * (rows * k * N) as f64 / best / 1e9;
                line += &format!("  {}: {gf:7.1}", t.name());
            }
            println!("{line}");
        }
    }
}
