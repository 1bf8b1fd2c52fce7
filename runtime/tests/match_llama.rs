//! Ember against llama.cpp's reference outputs (see tests/fixtures and
//! ../shared/reference/README.md for how they were made and how to judge them).

mod support;

use ember::generate::{generate, GenParams};
use ember::sampler::{Sampler, SamplerParams};
use ember::tokenizer::Tokenizer;
use ember::{Model, PlanConfig, Session};
use support::{argmax, reference, variant};

/// Positions where llama.cpp's reference (made on another x86 CPU) cannot be
/// reproduced even by llama.cpp itself on a different CPU, so the "margin ≥ 0.5
/// must match" rule does not apply: (variant, prompt, position).
///
/// Measured with llama.cpp 0c1e570 (llama-cpp-python 0.3.36) on an Intel Xeon
/// with AVX-512 VNNI, flash attention on and off, 1 and 2 threads: for
/// Q4_K_M it takes token 613 over the reference's 40113 at this position,
/// whose reference margin is 0.593, as Ember does. Its overall agreement with
/// the reference there is 742/768, Ember's 742/768. See docs/matching.md.
const NOT_REPRODUCIBLE_BY_LLAMA_CPP: &[(&str, &str, usize)] = &[(
    "Q4_K_M",
    "Translate to French: 'Good morning, how are you?'\nFrench:",
    8,
)];

fn session(model: &Model, n: usize) -> Session<'_> {
    Session::new(
        model,
        PlanConfig {
            n_ctx: n.max(1),
            n_batch: n.max(1),
            n_threads: 1,
            logits_all: true,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Criteria 1–3 of the reference README, for one variant.
fn check_variant(name: &str) {
    let Some(path) = variant(name) else { return };
    let model = Model::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&model.gguf().unwrap()).unwrap();
    let refs = reference(name);
    let nv = model.hp.n_vocab;
    let (mut agree, mut total, mut worst_logit) = (0usize, 0usize, 0f32);
    let mut prefix_lens = Vec::new();
    for r in &refs {
        // Tokenization of the prompt (add_special, parse_special).
        assert_eq!(
            tok.encode(&r.prompt, true, true).unwrap(),
            r.prompt_ids,
            "{name}: prompt ids of {:?}",
            r.prompt
        );

        // Last-position logits after the prompt as one batch.
        let mut s = session(&model, r.prompt_ids.len());
        s.eval(&r.prompt_ids).unwrap();
        let logits = s.logits().to_vec();
        let margin = r.top20[0].1 - r.top20[1].1;
        if margin >= 0.5 {
            assert_eq!(
                argmax(&logits) as u32,
                r.top20[0].0,
                "{name}: top-1 of {:?}",
                r.prompt
            );
        }
        for &(id, want) in &r.top20 {
            let d = (logits[id as usize] - want).abs();
            worst_logit = worst_logit.max(d);
            assert!(
                d <= 1.0,
                "{name}: logit of {id} is {} vs llama.cpp {want} for {:?}",
                logits[id as usize],
                r.prompt
            );
        }

        // Teacher-forced argmax over prompt + greedy48 as one batch.
        let mut all = r.prompt_ids.clone();
        all.extend_from_slice(&r.greedy);
        let mut s = session(&model, all.len());
        s.eval(&all).unwrap();
        let la = s.logits_all();
        let mut prefix = None;
        for (i, &(want, margin)) in r.teacher_forced.iter().enumerate() {
            let pos = r.prompt_ids.len() - 1 + i;
            let got = argmax(&la[pos * nv..(pos + 1) * nv]) as u32;
            total += 1;
            if got == want {
                agree += 1;
            } else {
                prefix.get_or_insert(i);
                let exempt = NOT_REPRODUCIBLE_BY_LLAMA_CPP
                    .iter()
                    .any(|&(v, p, at)| v == name && p == r.prompt && at == i);
                assert!(margin < 0.5 || exempt, "{name}: position {i} of {:?}: argmax {got}, llama.cpp {want} with margin {margin}", r.prompt);
            }
        }
        let _ = prefix;

        // Free-running greedy (information, not a criterion): tokens equal to
        // llama.cpp's greedy48 before the first divergence.
        let mut s = Session::new(
            &model,
            PlanConfig {
                n_ctx: all.len() + 1,
                n_batch: 64,
                n_threads: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let mut sampler = Sampler::new(nv, SamplerParams::greedy());
        let params = GenParams {
            n_predict: r.greedy.len(),
            ignore_eos: true,
            eog: &[],
        };
        let mut got = Vec::new();
        generate(&mut s, &r.prompt_ids, &params, &mut sampler, &mut |t| {
            got.push(t);
            true
        })
        .unwrap();
        prefix_lens.push(
            got.iter()
                .zip(&r.greedy)
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    let rate = agree as f64 / total as f64;
    eprintln!(
        "{name}: teacher-forced agreement {agree}/{total} ({:.1}%), worst top-20 logit difference {worst_logit:.3}, \
         free-running greedy prefix matching llama.cpp {prefix_lens:?} of {}",
        rate * 100.0,
        refs[0].greedy.len()
    );
    assert!(
        rate >= 0.95,
        "{name}: teacher-forced agreement {:.1}% < 95%",
        rate * 100.0
    );
}

#[test]
fn q4_1_matches_llama_cpp() {
    check_variant("Q4_1");
}

#[test]
fn q8_0_matches_llama_cpp() {
    check_variant("Q8_0");
}

#[test]
fn q4_0_matches_llama_cpp() {
    check_variant("Q4_0");
}

#[test]
fn f16_matches_llama_cpp() {
    check_variant("F16");
}

#[test]

fn q4_k_m_matches_llama_cpp() {
    check_variant("Q4_K_M");
}

/// llama-perplexity's figures on tests/fixtures/apache-2.0.txt at -c 128.
const PPL: &[(&str, f64)] = &[
    ("Q4_1", 16.6009),
    ("Q8_0", 16.6013),
    ("Q4_0", 23.7533),
    ("Q4_K_M", 19.3507),
    ("F16", 16.4958),
];

fn perplexity(name: &str) {
    let Some(path) = variant(name) else { return };
    let want = PPL.iter().find(|p| p.0 == name).unwrap().1;
    let model = Model::open(&path).unwrap();
    let tok = Tokenizer::from_gguf(&model.gguf().unwrap()).unwrap();
    let text = std::fs::read_to_string(support::fixture("apache-2.0.txt")).unwrap();
    let ids = tok.encode(&text, true, false).unwrap();
    let n_ctx = 128;
    let nv = model.hp.n_vocab;
    let mut s = session(&model, n_ctx);
    let (mut nll, mut count) = (0f64, 0usize);
    let chunks = ids.len() / n_ctx;
    assert_eq!(chunks, 17, "the text should make 17 chunks of 128 tokens");
    for c in 0..chunks {
        let chunk = &ids[c * n_ctx..(c + 1) * n_ctx];
        s.reset();
        s.eval(chunk).unwrap();
        let la = s.logits_all();
        for i in n_ctx / 2..n_ctx - 1 {
            let row = &la[i * nv..(i + 1) * nv];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f64 = row.iter().map(|&l| ((l - max) as f64).exp()).sum();
            nll += -(((row[chunk[i + 1] as usize] - max) as f64) - sum.ln());
            count += 1;
        }
    }
    let ppl = (nll / count as f64).exp();
    let rel = (ppl - want).abs() / want;
    eprintln!(
        "{name}: PPL {ppl:.4} vs llama.cpp {want} ({:+.2}%)",
        (ppl / want - 1.0) * 100.0
    );
    assert_eq!(count, 17 * 63);
    assert!(
        rel <= 0.015,
        "{name}: PPL {ppl:.4} is {:.2}% from llama.cpp's {want}",
        rel * 100.0
    );
}

#[test]
fn q4_1_perplexity() {
    perplexity("Q4_1");
}

#[test]
fn q8_0_perplexity() {
    perplexity("Q8_0");
}

#[test]
fn q4_0_perplexity() {
    perplexity("Q4_0");
}

#[test]
fn f16_perplexity() {
    perplexity("F16");
}

#[test]

fn q4_k_m_perplexity() {
    perplexity("Q4_K_M");
}
