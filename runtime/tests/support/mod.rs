//! Test support: the default model and its variants, and the reference fixtures.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The variants the reference data covers.
pub const VARIANTS: &[&str] = &["Q4_1", "Q8_0", "Q4_0", "F16", "Q4_K_M"];

/// The default model, or `None` (with a note) when it is not cached.
pub fn default_model() -> Option<PathBuf> {
    let p = ember::fetch::cached_default_model();
    if p.is_none() {
        eprintln!(
            "note: the default model is not cached; run `ember pull` (CI does) to run this test"
        );
    }
    p
}

/// A reference fixture file.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The model file for a variant: the default model (Q4_1); Q4_0, Q8_0 and F16
/// made from it with `ember quantize` (cached in the models directory); the
/// Q4_K_M build from `EMBER_Q4_K_M` or `../shared/models` when present.
pub fn variant(name: &str) -> Option<PathBuf> {
    let base = default_model()?;
    match name {
        "Q4_1" => Some(base),
        "Q4_K_M" => {
            let candidates = [
                std::env::var_os("EMBER_Q4_K_M").map(PathBuf::from),
                Some(
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .join("../../shared/models/SmolLM2-135M-Instruct.Q4_K_M.gguf"),
                ),
            ];
            let p = candidates.into_iter().flatten().find(|p| p.is_file());
            if p.is_none() {
                eprintln!("note: no Q4_K_M model (set EMBER_Q4_K_M); skipping that variant");
            }
            p
        }
        ty => {
            static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let out = ember::fetch::models_dir().join(format!("SmolLM2-135M-Instruct.{ty}.gguf"));
            if !out.is_file() {
                let t = ember::GgmlType::from_name(ty).expect("a known type");
                let tmp = out.with_extension(format!("tmp{}", std::process::id()));
                let opts = ember::quantize::QuantizeOptions {
                    allow_requantize: true,
                    ..Default::default()
                };
                ember::quantize::quantize_file(&base, &tmp, t, &opts, &mut |_, _, _| {})
                    .expect("ember quantize");
                std::fs::rename(&tmp, &out).expect("rename");
            }
            Some(out)
        }
    }
}

/// One prompt of a `generate-VARIANT.jsonl` file.
#[derive(Debug, Clone)]
pub struct RefPrompt {
    /// Prompt text.
    pub prompt: String,
    /// Prompt ids.
    pub prompt_ids: Vec<u32>,
    /// Top-20 `(id, logit)` at the last prompt position.
    pub top20: Vec<(u32, f32)>,
    /// Greedy continuation.
    pub greedy: Vec<u32>,
    /// Teacher-forced `(argmax, margin)` per generated position.
    pub teacher_forced: Vec<(u32, f32)>,
}

/// Reads a `generate-VARIANT.jsonl` fixture.
pub fn reference(variant: &str) -> Vec<RefPrompt> {
    let text = std::fs::read_to_string(fixture(&format!("generate-{variant}.jsonl"))).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let ids = |k: &str| -> Vec<u32> {
                v[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            };
            let pairs = |k: &str| -> Vec<(u32, f32)> {
                v[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|p| (p[0].as_u64().unwrap() as u32, p[1].as_f64().unwrap() as f32))
                    .collect()
            };
            RefPrompt {
                prompt: v["prompt"].as_str().unwrap().to_string(),
                prompt_ids: ids("prompt_ids"),
                top20: pairs("top20_last_logits"),
                greedy: ids("greedy48"),
                teacher_forced: pairs("teacher_forced"),
            }
        })
        .collect()
}

/// Index of the largest value.
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}
