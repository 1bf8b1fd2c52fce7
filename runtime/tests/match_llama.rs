//! Ember against llama.cpp's reference outputs (see tests/fixtures and
//! ../shared/reference/README.md for how they were made and how to judge them).

mod support;

use ember::tokenizer::Tokenizer;
use ember::{Model, PlanConfig, Session};
use support::{argmax, reference, variant};

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
        assert_eq!(tok.encode(&r.prompt, true, true).unwrap(), r.prompt_ids, "{name}: prompt ids of {:?}", r.prompt);

        // Last-position logits after the prompt as one batch.
        let mut s = session(&model, r.prompt_ids.len());
        s.eval(&r.prompt_ids).unwrap();
        let logits = s.logits().to_vec();
        let margin = r.top20[0].1 - r.top20[1].1;
        if margin >= 0.5 {
            assert_eq!(argmax(&logits) as u32, r.top20[0].0, "{name}: top-1 of {:?}", r.prompt);
        }
        for &(id, want) in &r.top20 {
            let d = (logits[id as usize] - want).abs();
            worst_logit = worst_logit.max(d);
            assert!(d <= 1.0, "{name}: logit of {id} is {} vs llama.cpp {want} for {:?}", logits[id as usize], r.prompt);
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
                assert!(margin < 0.5, "{name}: position {i} of {:?}: argmax {got}, llama.cpp {want} with margin {margin}", r.prompt);
            }
        }
        prefix_lens.push(prefix.unwrap_or(r.teacher_forced.len()));
    }
    let rate = agree as f64 / total as f64;
    eprintln!(
        "{name}: teacher-forced agreement {agree}/{total} ({:.1}%), worst top-20 logit difference {worst_logit:.3}",
        rate * 100.0
    );
    assert!(rate >= 0.95, "{name}: teacher-forced agreement {:.1}% < 95%", rate * 100.0);
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
    eprintln!("{name}: PPL {ppl:.4} vs llama.cpp {want} ({:+.2}%)", (ppl / want - 1.0) * 100.0);
    assert_eq!(count, 17 * 63);
    assert!(rel <= 0.015, "{name}: PPL {ppl:.4} is {:.2}% from llama.cpp's {want}", rel * 100.0);
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
