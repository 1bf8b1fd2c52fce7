//! `ember::quantize` against llama.cpp's `llama-quantize --allow-requantize`
//! (tests/fixtures/requantized.json: every tensor's type and a sha256 prefix
//! of its data, for the default model requantized to Q4_0, Q8_0 and F16),
//! plus the policy's refusals on small synthetic files.

use ember::gguf::{Gguf, GgufFile, GgufWriter, TensorSpec};
use ember::quantize::{quantize_file, FileType, QuantizeOptions};
use ember::{Error, GgmlType};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn fixture() -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/requantized.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A fresh scratch directory under the system temp directory.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ember-quantize-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn requantize(src: &Path, dir: &Path, ty: &str) -> PathBuf {
    let out = dir.join(format!("out.{ty}.gguf"));
    let opts = QuantizeOptions {
        allow_requantize: true,
        ..Default::default()
    };
    let t = GgmlType::from_name(ty).unwrap();
    let mut calls = 0usize;
    let report = quantize_file(src, &out, t, &opts, &mut |done, total, _| {
        calls += 1;
        assert!(done <= total);
    })
    .expect("quantize_file");
    assert_eq!(calls, report.tensors.len());
    eprintln!(
        "{ty}: {} tensors ({} converted) in {:.2?}",
        report.tensors.len(),
        report.n_converted(),
        report.elapsed
    );
    out
}

#[test]
fn requantized_default_model_matches_llama_cpp() {
    let Some(src) = ember::fetch::cached_default_model() else {
        eprintln!("note: the default model is not cached (run `ember pull`); skipping");
        return;
    };
    let fx = fixture();
    let dir = scratch("ref");
    let mut failures = Vec::new();
    for ty in ["Q4_0", "Q8_0", "F16"] {
        let want = &fx["variants"][ty];
        let out = requantize(&src, &dir, ty);
        let f = GgufFile::open(&out).unwrap();
        let g = f.parse().unwrap();

        let ftype = FileType::for_type(GgmlType::from_name(ty).unwrap()).unwrap();
        assert_eq!(g.u32("general.file_type").unwrap(), ftype.id());
        assert_eq!(g.u32("general.quantization_version").unwrap(), 2);

        let per = want["per_tensor"].as_object().unwrap();
        assert_eq!(g.tensors().len(), per.len(), "{ty}: tensor count");
        let mut same = 0;
        let mut all = Sha256::new();
        for t in g.tensors() {
            let data = g.tensor_data(t);
            all.update(data);
            let got_hash = hex(&Sha256::digest(data))[..16].to_string();
            let exp = &per[t.name];
            let (exp_ty, exp_hash) = (exp[0].as_str().unwrap(), exp[1].as_str().unwrap());
            if t.ty.name() == exp_ty && got_hash == exp_hash {
                same += 1;
            } else {
                failures.push(format!(
                    "{ty}: {}: got {} {got_hash}, llama.cpp {exp_ty} {exp_hash}",
                    t.name, t.ty
                ));
            }
        }
        eprintln!(
            "{ty}: {same}/{} tensors identical to llama.cpp's",
            per.len()
        );
        if same == per.len() {
            // The whole data section, in llama.cpp's tensor order.
            assert_eq!(
                hex(&all.finalize()),
                want["all_tensor_data_sha256"].as_str().unwrap(),
                "{ty}: tensor order"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The Q4_K_M build llama.cpp made from the default model, when present.
fn q4_k_m_reference() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("EMBER_Q4_K_M").map(PathBuf::from),
        Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/models/SmolLM2-135M-Instruct.Q4_K_M.gguf"),
        ),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

#[test]
fn requantized_q4_k_m_matches_llama_cpp() {
    let (Some(src), Some(reference)) = (ember::fetch::cached_default_model(), q4_k_m_reference())
    else {
        eprintln!("note: the default model or the Q4_K_M reference is absent; skipping");
        return;
    };
    let dir = scratch("q4km");
    let out = requantize(&src, &dir, "Q4_K");
    let (a, b) = (
        GgufFile::open(&out).unwrap(),
        GgufFile::open(&reference).unwrap(),
    );
    let (ga, gb) = (a.parse().unwrap(), b.parse().unwrap());
    assert_eq!(ga.u32("general.file_type").unwrap(), 15);
    let names_a: Vec<&str> = ga.tensors().iter().map(|t| t.name).collect();
    let names_b: Vec<&str> = gb.tensors().iter().map(|t| t.name).collect();
    assert_eq!(names_a, names_b, "tensor order");
    let mut bad = Vec::new();
    for (x, y) in ga.tensors().iter().zip(gb.tensors()) {
        if x.ty != y.ty || ga.tensor_data(x) != gb.tensor_data(y) {
            bad.push(format!("{}: got {}, llama.cpp {}", x.name, x.ty, y.ty));
        }
    }
    eprintln!(
        "Q4_K_M: {}/{} tensors identical to llama.cpp's",
        ga.tensors().len() - bad.len(),
        ga.tensors().len()
    );
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
    // Metadata and layout too: the whole file is llama.cpp's.
    assert!(a.bytes() == b.bytes(), "same tensors, but the files differ");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tiny llama-like F32 model: tied embeddings, one layer.
fn tiny_model(path: &Path) {
    let mut w = GgufWriter::new();
    w.kv_str("general.architecture", "llama").unwrap();
    w.kv_u32("llama.block_count", 1).unwrap();
    w.kv_u32("general.file_type", 0).unwrap();
    let specs: [(&str, &[u64]); 4] = [
        ("token_embd.weight", &[64, 8]),
        ("blk.0.attn_norm.weight", &[64]),
        ("blk.0.attn_q.weight", &[64, 64]),
        ("blk.0.ffn_down.weight", &[96, 64]),
    ];
    let mut data = Vec::new();
    for (i, (name, dims)) in specs.iter().enumerate() {
        w.tensor(TensorSpec {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty: GgmlType::F32,
        })
        .unwrap();
        let n: u64 = dims.iter().product();
        let v: Vec<u8> = (0..n)
            .flat_map(|k| (((k as f32 + i as f32) * 0.37).sin()).to_le_bytes())
            .collect();
        data.push(v);
    }
    let refs: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
    std::fs::write(path, w.to_bytes(&refs).unwrap()).unwrap();
}

#[test]
fn policy_refusals_and_fallbacks() {
    let dir = scratch("policy");
    let src = dir.join("tiny.f32.gguf");
    tiny_model(&src);
    let none = QuantizeOptions::default();

    // F32 input: no requantization involved.
    let q8 = dir.join("tiny.q8_0.gguf");
    let r = quantize_file(&src, &q8, GgmlType::Q8_0, &none, &mut |_, _, _| {}).unwrap();
    let types: Vec<(String, GgmlType)> = r.tensors.iter().map(|t| (t.name.clone(), t.to)).collect();
    assert_eq!(
        types,
        [
            ("token_embd.weight".to_string(), GgmlType::Q8_0),
            ("blk.0.attn_norm.weight".to_string(), GgmlType::F32),
            ("blk.0.attn_q.weight".to_string(), GgmlType::Q8_0),
            ("blk.0.ffn_down.weight".to_string(), GgmlType::Q8_0),
        ]
    );

    // Q4_K: tied embeddings → Q6_K → Q8_0 (64 is not a multiple of 256);
    // Q4_K → Q5_0 fallback; ffn_down of layer 0 of 1 gets Q6_K → Q8_0.
    let k = dir.join("tiny.q4_k.gguf");
    let r = quantize_file(&src, &k, GgmlType::Q4_K, &none, &mut |_, _, _| {}).unwrap();
    let to: Vec<GgmlType> = r.tensors.iter().map(|t| t.to).collect();
    assert_eq!(
        to,
        [
            GgmlType::Q8_0,
            GgmlType::F32,
            GgmlType::Q5_0,
            GgmlType::Q8_0
        ]
    );
    let g = GgufFile::open(&k).unwrap();
    assert_eq!(g.parse().unwrap().u32("general.file_type").unwrap(), 15);

    // Already quantized input without allow_requantize: refused, nothing written.
    let q4 = dir.join("tiny.q4_0.gguf");
    let e = quantize_file(&q8, &q4, GgmlType::Q4_0, &none, &mut |_, _, _| {}).unwrap_err();
    assert!(matches!(e, Error::Input(_)), "{e}");
    assert!(e.to_string().contains("--allow-requantize"), "{e}");
    assert!(!q4.exists());

    // Never over the input.
    let e = quantize_file(&src, &src, GgmlType::Q8_0, &none, &mut |_, _, _| {}).unwrap_err();
    assert!(matches!(e, Error::Input(_)), "{e}");
    assert!(Gguf::parse(&std::fs::read(&src).unwrap()).is_ok());

    // An unsupported target type.
    let e = quantize_file(&src, &q4, GgmlType::IQ2_XS, &none, &mut |_, _, _| {}).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");

    // No temporary files left behind.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
