//! The `ember` binary as a user meets it: bad input gets one line and exit
//! code 2, never a panic; good input gives the expected output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn ember() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ember"))
}

fn run(args: &[&str]) -> Output {
    ember()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ember")
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ember-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Exit code 2 and exactly one line on stderr, naming `needle`, with no panic.
fn assert_one_line_error(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("ember: "), "{err}");
    assert!(lines[0].contains(needle), "expected {needle:?} in: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
}

fn default_model() -> Option<PathBuf> {
    let p = ember::fetch::cached_default_model();
    if p.is_none() {
        eprintln!("note: default model not cached (run `ember pull`); skipping");
    }
    p
}

#[test]
fn missing_model_file() {
    let o = run(&["run", "-m", "/nonexistent/model.gguf", "-p", "hi"]);
    assert_one_line_error(&o, "No such file");
}

#[test]
fn corrupt_model_names_the_offset() {
    let p = tmp("corrupt.gguf");
    std::fs::write(&p, b"GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff").unwrap();
    for cmd in ["run", "inspect"] {
        let o = if cmd == "run" {
            run(&["run", "-m", p.to_str().unwrap(), "-p", "hi"])
        } else {
            run(&["inspect", p.to_str().unwrap()])
        };
        assert_one_line_error(&o, "bad GGUF at byte 8");
    }
}

/// A tiny GGUF (width 256) with the given architecture and one tensor of type `ty`.
fn tiny_model(path: &Path, arch: &str, ty: ember::GgmlType) {
    let mut w = ember::gguf::GgufWriter::new();
    w.kv_str("general.architecture", arch).unwrap();
    w.kv_u32(&format!("{arch}.block_count"), 1).unwrap();
    w.kv_u32(&format!("{arch}.embedding_length"), 256).unwrap();
    w.kv_u32(&format!("{arch}.attention.head_count"), 1)
        .unwrap();
    w.kv_u32(&format!("{arch}.feed_forward_length"), 32)
        .unwrap();
    w.kv_str("tokenizer.ggml.model", "gpt2").unwrap();
    w.kv_str_array("tokenizer.ggml.tokens", &["a", "b"]);
    w.kv_str_array("tokenizer.ggml.merges", &["a b"]);
    w.tensor(ember::gguf::TensorSpec {
        name: "token_embd.weight".into(),
        dims: vec![256, 2],
        ty,
    })
    .unwrap();
    let n = ty.row_bytes(512).unwrap() as usize;
    let bytes = w.to_bytes(&[&vec![0u8; n]]).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn unsupported_architecture() {
    let p = tmp("gpt2.gguf");
    tiny_model(&p, "gpt2", ember::GgmlType::F32);
    let o = run(&["run", "-m", p.to_str().unwrap(), "-p", "hi"]);
    assert_one_line_error(&o, "architecture `gpt2`");
}

#[test]
fn unsupported_tensor_type() {
    let p = tmp("iq.gguf");
    tiny_model(&p, "llama", ember::GgmlType::IQ2_XXS);
    let o = run(&["run", "-m", p.to_str().unwrap(), "-p", "hi"]);
    assert_one_line_error(&o, "IQ2_XXS");
}

#[test]
fn prompt_longer_than_context() {
    let Some(m) = default_model() else { return };
    let long = "word ".repeat(100);
    let o = run(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        &long,
        "-c",
        "32",
        "-n",
        "1",
    ]);
    assert_one_line_error(&o, "longer than the context");
}

#[test]
fn n_predict_past_context() {
    let Some(m) = default_model() else { return };
    let o = run(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "Hello",
        "-c",
        "64",
        "-n",
        "100",
    ]);
    assert_one_line_error(&o, "past the context");
}

#[test]
fn token_id_out_of_range() {
    let Some(m) = default_model() else { return };
    let o = run(&[
        "eval",
        "-m",
        m.to_str().unwrap(),
        "--ids",
        "1,2,999999",
        "--json",
    ]);
    assert_one_line_error(&o, "token id 999999 out of range");
}

#[test]
fn context_too_large_to_allocate() {
    let Some(m) = default_model() else { return };
    // About 2 TB of KV cache: more than the OS will hand out.
    let o = run(&[
        "run",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "hi",
        "-n",
        "1",
        "-c",
        "100000000",
    ]);
    assert_one_line_error(&o, "cannot allocate");
}

#[test]
fn kv_cache_types() {
    let Some(m) = default_model() else { return };
    let m = m.to_str().unwrap();
    // llama.cpp's spellings, a Q8_0 cache generating text.
    let o = run(&[
        "run", "-m", m, "-p", "Hello", "-n", "4", "--temp", "0", "-ctk", "q8_0", "-ctv", "q8_0",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("Hello"));
    // Keys and values in different types, and a type Ember has no cache for.
    let o = run(&["run", "-m", m, "-p", "hi", "-ctk", "q8_0", "-ctv", "f16"]);
    assert_one_line_error(&o, "one type");
    let o = run(&["run", "-m", m, "-p", "hi", "-ctk", "q4_0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("use f16, f32 or q8_0"));
}

#[test]
fn non_utf8_prompt_file() {
    let Some(m) = default_model() else { return };
    let p = tmp("latin1.txt");
    std::fs::write(&p, b"caf\xe9 au lait").unwrap();
    let o = run(&["run", "-m", m.to_str().unwrap(), "-f", p.to_str().unwrap()]);
    assert_one_line_error(&o, "not valid UTF-8");
}

#[test]
fn forced_tier_the_cpu_lacks_is_a_clear_error() {
    let tier = if cfg!(target_arch = "x86_64") {
        "neon"
    } else {
        "avx2"
    };
    let o = ember()
        .args(["run", "-p", "hi", "-m", "/nonexistent.gguf"])
        .env("EMBER_KERNELS", tier)
        .output()
        .unwrap();
    assert_one_line_error(&o, "EMBER_KERNELS");
}

#[test]
fn greedy_run_is_deterministic_and_seeded_sampling_repeats() {
    let Some(m) = default_model() else { return };
    let m = m.to_str().unwrap();
    let args = [
        "run",
        "-m",
        m,
        "-p",
        "Once upon a time",
        "-n",
        "16",
        "--temp",
        "0",
        "--no-display-prompt",
    ];
    let a = run(&args);
    let b = run(&args);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
    assert!(!a.stdout.is_empty());
    // The weights read into memory (`--no-mmap`) are the same bytes.
    let read_in = run(&[&args[..], &["--no-mmap"]].concat());
    assert!(
        read_in.status.success(),
        "{}",
        String::from_utf8_lossy(&read_in.stderr)
    );
    assert_eq!(read_in.stdout, a.stdout, "--no-mmap changed the output");
    let err = String::from_utf8_lossy(&a.stderr);
    assert!(
        err.contains("tok/s") && err.contains("kernels "),
        "summary missing: {err}"
    );
    let seeded = [
        "run",
        "-m",
        m,
        "-p",
        "Once upon a time",
        "-n",
        "16",
        "--seed",
        "7",
        "--temp",
        "1.0",
    ];
    assert_eq!(run(&seeded).stdout, run(&seeded).stdout);
}

#[test]
fn eval_json_has_the_documented_fields() {
    let Some(m) = default_model() else { return };
    let o = run(&[
        "eval",
        "-m",
        m.to_str().unwrap(),
        "--ids",
        "19556,905,28",
        "--top",
        "3",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ids"], serde_json::json!([19556, 905, 28]));
    let pos = v["positions"].as_array().unwrap();
    assert_eq!(pos.len(), 3);
    for (i, p) in pos.iter().enumerate() {
        assert_eq!(p["pos"], i);
        assert_eq!(p["top"].as_array().unwrap().len(), 3);
        assert_eq!(p["argmax"], p["top"][0][0]);
        assert!(p["margin"].as_f64().unwrap() >= 0.0);
    }
    assert!(pos[0]["next_nll"].as_f64().unwrap() > 0.0);
    assert!(pos[2]["next_nll"].is_null());
}

#[test]
fn chat_answers_and_quits_on_empty_line() {
    let Some(m) = default_model() else { return };
    use std::io::Write;
    let mut child = ember()
        .args(["chat", "-m", m.to_str().unwrap(), "-n", "24", "--temp", "0"])
        .args(["--system", "You are a helpful assistant."])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"What is the capital of France?\nAnd of Italy?\n\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Paris"), "{out}");
    assert!(
        out.lines().filter(|l| !l.trim().is_empty()).count() >= 2,
        "{out}"
    );
}

#[test]
fn perplexity_json() {
    let Some(m) = default_model() else { return };
    let p = tmp("text.txt");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/tests/fixtures/apache-2.0.txt"),
    )
    .unwrap();
    std::fs::write(&p, &text).unwrap();
    let o = run(&[
        "perplexity",
        "-m",
        m.to_str().unwrap(),
        "-f",
        p.to_str().unwrap(),
        "-c",
        "128",
        "--chunks",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["chunks"], 2);
    assert_eq!(v["tokens_scored"], 126);
    let ppl = v["ppl"].as_f64().unwrap();
    assert!(ppl > 1.0 && ppl < 100.0, "{ppl}");
}

#[test]
fn bench_json_has_llama_bench_fields_and_the_profile() {
    let Some(m) = default_model() else { return };
    let m = m.to_str().unwrap();
    let args = ["bench", "-m", m, "-p", "8", "-n", "4", "-r", "2", "-t", "1"];
    let o = run(&[&args[..], &["-o", "json", "--profile"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "a pp and a tg row");
    for (r, (np, ng)) in rows.iter().zip([(8, 0), (0, 4)]) {
        assert_eq!(
            (r["n_prompt"].as_u64(), r["n_gen"].as_u64()),
            (Some(np), Some(ng))
        );
        assert_eq!(r["n_threads"], 1);
        assert_eq!(r["samples_ts"].as_array().unwrap().len(), 2);
        assert!(r["avg_ts"].as_f64().unwrap() > 0.0);
        // The model is resident after the runs, so on Linux its share in
        // huge pages is known; elsewhere it is null.
        let share = &r["weights_huge_page_share"];
        if cfg!(target_os = "linux") {
            let s = share.as_f64().unwrap();
            assert!((0.0..=1.0).contains(&s), "{s}");
        } else {
            assert!(share.is_null());
        }
        let p = r["profile_ms_per_token"].as_object().unwrap();
        let names = [
            "embed",
            "q/k/v",
            "attention",
            "attn out",
            "ffn up",
            "ffn down",
            "output",
        ];
        assert_eq!(p.len(), names.len());
        let total: f64 = names.iter().map(|n| p[*n].as_f64().unwrap()).sum();
        // The stages' ms per token add up to at most the measured time a
        // token (1000 / tok/s), and to most of it.
        let ms = 1000.0 / r["avg_ts"].as_f64().unwrap();
        assert!(
            total > 0.5 * ms && total < 1.05 * ms,
            "{total} ms of {ms} ms a token"
        );
    }
    // Without --profile there is no profile; markdown has the stage table.
    let o = run(&[&args[..], &["-o", "json"]].concat());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v[0]["profile_ms_per_token"].is_null());
    let o = run(&[&args[..], &["--profile"]].concat());
    let md = String::from_utf8_lossy(&o.stdout);
    assert!(
        md.contains("| model | threads | test | embed | q/k/v | attention |"),
        "{md}"
    );
}
