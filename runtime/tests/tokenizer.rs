//! Tokenizer tests: llama.cpp's own ids for the default model (a fixture made
//! with llama.cpp), plus synthetic vocabularies for SPM and streaming.

use ember::gguf::GgufFile;
use ember::tokenizer::{StreamDecoder, Tokenizer, TokenizerKind, TokenizerParts};
use std::path::PathBuf;

const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn model_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("EMBER_MODEL") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = ember::fetch::cached_default_model() {
        return Some(p);
    }
    let home = std::env::var_os("EMBER_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/ember")))?;
    let p = home.join("models").join(MODEL_FILE);
    p.is_file().then_some(p)
}

fn default_tokenizer() -> Option<Tokenizer> {
    let Some(path) = model_path() else {
        eprintln!("note: the default model is not cached; skipping (set EMBER_MODEL)");
        return None;
    };
    let file = GgufFile::open(&path).expect("open model");
    let g = file.parse().expect("parse model");
    Some(Tokenizer::from_gguf(&g).expect("build tokenizer"))
}

struct Case {
    text: String,
    ids: Vec<u32>,
    ids_parse_special: Vec<u32>,
    /// `None`: the default model. Otherwise a vocabulary derived from it
    /// (see [`variant_tokenizer`]).
    variant: Option<String>,
}

/// The fixture: the first 40 lines are the reference made with llama.cpp for
/// the default model; the rest were made with llama.cpp too (llama-cpp-python
/// 0.3.36) for generated text, some for derived vocabularies.
fn fixture() -> Vec<Case> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer.jsonl");
    let text = std::fs::read_to_string(&path).expect("read fixture");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("fixture line is JSON");
            let ids = |k: &str| -> Vec<u32> {
                v[k].as_array()
                    .expect("ids array")
                    .iter()
                    .map(|x| x.as_u64().expect("id") as u32)
                    .collect()
            };
            Case {
                text: v["text"].as_str().expect("text").to_string(),
                ids: ids("ids"),
                ids_parse_special: ids("ids_parse_special"),
                variant: v
                    .get("variant")
                    .and_then(|x| x.as_str())
                    .map(str::to_string),
            }
        })
        .collect()
}

/// Checks cases against a tokenizer; returns (plain ok, special ok, failures).
fn check_cases<'c>(
    tok: &Tokenizer,
    cases: impl Iterator<Item = &'c Case>,
) -> (usize, usize, Vec<String>) {
    let (mut plain_ok, mut special_ok) = (0, 0);
    let mut failures = Vec::new();
    for c in cases {
        let plain = tok.encode(&c.text, false, false).unwrap();
        if plain == c.ids {
            plain_ok += 1;
        } else {
            failures.push(format!(
                "plain {:?}: got {plain:?}, want {:?}",
                c.text, c.ids
            ));
        }
        let special = tok.encode(&c.text, true, true).unwrap();
        if special == c.ids_parse_special {
            special_ok += 1;
        } else {
            failures.push(format!(
                "special {:?}: got {special:?}, want {:?}",
                c.text, c.ids_parse_special
            ));
        }
    }
    (plain_ok, special_ok, failures)
}

#[test]
fn default_model_matches_llama_cpp() {
    let Some(tok) = default_tokenizer() else {
        return;
    };
    assert_eq!(tok.kind(), TokenizerKind::Bpe);
    assert_eq!(tok.pre(), "smollm");
    assert_eq!(tok.n_vocab(), 49152);
    let cases = fixture();
    assert!(cases.len() >= 40, "fixture has {} lines", cases.len());
    let (p, s, mut failures) = check_cases(&tok, cases[..40].iter());
    eprintln!("tokenizer reference: {p}/40 plain, {s}/40 parse_special");
    let extra: Vec<&Case> = cases[40..].iter().filter(|c| c.variant.is_none()).collect();
    let (p, s, f) = check_cases(&tok, extra.iter().copied());
    eprintln!(
        "tokenizer extra: {p}/{n} plain, {s}/{n} parse_special",
        n = extra.len()
    );
    failures.extend(f);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The default model's vocabulary data, as plain parts.
struct VocabData {
    tokens: Vec<String>,
    merges: Vec<String>,
    types: Vec<i32>,
}

fn default_vocab_data() -> Option<VocabData> {
    let path = model_path()?;
    let file = GgufFile::open(&path).unwrap();
    let g = file.parse().unwrap();
    let strings = |k: &str| -> Vec<String> {
        g.array(k)
            .unwrap()
            .iter_str()
            .map(|s| s.unwrap().to_string())
            .collect()
    };
    Some(VocabData {
        tokens: strings("tokenizer.ggml.tokens"),
        merges: strings("tokenizer.ggml.merges"),
        types: g
            .array("tokenizer.ggml.token_type")
            .unwrap()
            .to_i32_vec()
            .unwrap(),
    })
}

/// A vocabulary derived from the default model's: the same BPE vocabulary
/// under another pre-tokenizer (`gpt-2`, `llama-bpe`, `qwen2`, `default`), or
/// (`spm`) an SPM vocabulary made from it: `<unk> <s> </s>`, the 256
/// `<0xXX>` byte tokens, then its tokens with `Ġ` → `▁` and `Ċ` → newline
/// (first occurrence kept), scored `-(original id)`.
fn variant_tokenizer(d: &VocabData, variant: &str, spm: &mut Vec<String>) -> Tokenizer {
    if variant != "spm" {
        return Tokenizer::from_parts(TokenizerParts {
            model: "gpt2",
            pre: Some(variant),
            tokens: d.tokens.iter().map(String::as_str).collect(),
            token_types: Some(d.types.clone()),
            merges: d.merges.iter().map(String::as_str).collect(),
            bos: Some(1),
            eos: Some(2),
            unk: Some(0),
            pad: Some(2),
            add_bos: Some(false),
            add_space_prefix: Some(false),
            ..Default::default()
        })
        .unwrap();
    }
    spm.clear();
    spm.extend(["<unk>", "<s>", "</s>"].map(String::from));
    spm.extend((0..256).map(|b| format!("<0x{b:02X}>")));
    let mut types = vec![2, 3, 3];
    types.extend([6; 256]);
    let mut scores = vec![0.0f32; 259];
    let mut seen: std::collections::HashSet<String> = spm.iter().cloned().collect();
    for (i, t) in d.tokens.iter().enumerate() {
        let t2 = t.replace('Ġ', "▁").replace('Ċ', "\n");
        if seen.insert(t2.clone()) {
            spm.push(t2);
            types.push(d.types[i]);
            scores.push(-(i as f32));
        }
    }
    Tokenizer::from_parts(TokenizerParts {
        model: "llama",
        tokens: spm.iter().map(String::as_str).collect(),
        token_types: Some(types),
        scores: Some(scores),
        bos: Some(1),
        eos: Some(2),
        unk: Some(0),
        pad: Some(0),
        add_bos: Some(true),
        add_space_prefix: Some(true),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn derived_vocabularies_match_llama_cpp() {
    let Some(d) = default_vocab_data() else {
        eprintln!("note: the default model is not cached; skipping");
        return;
    };
    let cases = fixture();
    let mut failures = Vec::new();
    let mut spm = Vec::new();
    for variant in ["gpt-2", "llama-bpe", "qwen2", "default", "spm"] {
        let tok = variant_tokenizer(&d, variant, &mut spm);
        let mine: Vec<&Case> = cases
            .iter()
            .filter(|c| c.variant.as_deref() == Some(variant))
            .collect();
        assert!(mine.len() >= 40, "{variant}: {} cases", mine.len());
        let (p, s, f) = check_cases(&tok, mine.iter().copied());
        eprintln!(
            "{variant}: {p}/{n} plain, {s}/{n} parse_special",
            n = mine.len()
        );
        failures.extend(f.into_iter().map(|x| format!("{variant}: {x}")));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn default_model_roundtrips_and_specials() {
    let Some(tok) = default_tokenizer() else {
        return;
    };
    for c in fixture().into_iter().filter(|c| c.variant.is_none()) {
        // Byte-level BPE is lossless; smollm does not clean spaces.
        assert_eq!(tok.decode(&c.ids).unwrap(), c.text);
        // Control tokens vanish unless asked for.
        let rendered = tok.detokenize(&c.ids_parse_special, false, true).unwrap();
        assert_eq!(rendered, c.text);
    }
    let im_start = tok.token_id("<|im_start|>").unwrap();
    let im_end = tok.token_id("<|im_end|>").unwrap();
    let eot = tok.token_id("<|endoftext|>").unwrap();
    assert!(tok.is_eog(im_end));
    assert!(tok.is_eog(eot));
    assert!(!tok.is_eog(im_start));
    assert!(tok.is_control(im_start));
    assert_eq!(tok.token_to_piece(im_start, false).unwrap(), b"");
    assert_eq!(tok.token_to_piece(im_start, true).unwrap(), b"<|im_start|>");
    assert!(!tok.add_bos());
    // SmolLM2's BOS and EOS are <|im_start|>/<|im_end|>-style control tokens.
    assert!(tok.bos().is_some() && tok.eos().is_some());
    let n = tok.n_vocab() as u32;
    let err = tok.token_to_piece(n, false).unwrap_err().to_string();
    assert_eq!(err, format!("token id {n} out of range (vocab has {n})"));
    assert!(tok.decode(&[1, n + 5]).is_err());
    assert!(tok.token_text(n).is_err());
}

/// Cases beyond the fixture whose ids follow from the merges and llama.cpp's
/// splitting rules; they check properties rather than exact ids.
#[test]
fn default_model_general_properties() {
    let Some(tok) = default_tokenizer() else {
        return;
    };
    let texts = [
        "",
        " ",
        "\t\t\n \u{0}\u{1}\u{7f}",
        "The quick brown fox jumps over the lazy dog. THE END!!!",
        "Ünïcödé ñ ß ẞ ǅ Ωμέγα İstanbul",
        "中文测试，标点符号。한국어 テスト ｶﾀｶﾅ",
        "👩‍👩‍👧‍👦 🏳️‍🌈 🇯🇵 1️⃣ 🫨",
        "ℕ ① ½ ² Ⅻ ٣٤٥ ०१२",
        "\u{200b}\u{feff}\u{2028}\u{3000}\u{85}end",
        "<|im_start|><|im_start|>x<|im_end|  <|im_end|>>",
        "'''''\"\"\"'s'S'Ll",
        "   \n\n\n\t   \r\n\r\r\n    x",
    ];
    for t in texts {
        let ids = tok.encode(t, false, false).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), t, "roundtrip {t:?}");
        let ids2 = tok.encode(t, true, true).unwrap();
        assert_eq!(
            tok.detokenize(&ids2, false, true).unwrap(),
            t,
            "special roundtrip {t:?}"
        );
    }
    // smollm: every digit alone.
    let ids = tok.encode("0123456789 ٣٤", false, false).unwrap();
    let digits: Vec<u32> = "0123456789"
        .chars()
        .map(|c| tok.token_id(&c.to_string()).unwrap())
        .collect();
    assert_eq!(&ids[..10], &digits[..]);
    // parse_special splits control tokens out, longest first.
    let ids = tok.encode("a<|im_start|>b", false, true).unwrap();
    assert_eq!(ids[1], tok.token_id("<|im_start|>").unwrap());
    assert_eq!(ids.len(), 3);
    // Long inputs are fine and linear-ish.
    let long = "Lorem ipsum dolor sit amet, 12345 consectetur. ".repeat(2000);
    let t0 = std::time::Instant::now();
    let ids = tok.encode(&long, false, false).unwrap();
    eprintln!(
        "encoded {} bytes into {} tokens in {:?}",
        long.len(),
        ids.len(),
        t0.elapsed()
    );
    assert_eq!(tok.decode(&ids).unwrap(), long);
    let spaces = " ".repeat(50_000);
    let ids = tok.encode(&spaces, false, false).unwrap();
    assert_eq!(tok.decode(&ids).unwrap(), spaces);
}

#[test]
fn stream_decoder_holds_partial_characters() {
    let Some(tok) = default_tokenizer() else {
        return;
    };
    for text in ["日本語のテキスト", "emoji 😀🚀 party 🎉", "café ☃ ❤️ مرحبا"]
    {
        let ids = tok.encode(text, false, false).unwrap();
        let mut dec = StreamDecoder::new();
        let mut out = String::new();
        let mut split_seen = false;
        for &id in &ids {
            let s = dec.push(&tok, id).unwrap();
            split_seen |= dec.has_pending();
            assert!(!s.contains('\u{FFFD}'), "{text:?}");
            out.push_str(&s);
        }
        out.push_str(&dec.finish());
        assert_eq!(out, text);
        if text.starts_with('日') {
            assert!(split_seen, "a CJK character spans tokens in this vocab");
        }
    }
}

// ---- synthetic vocabularies ----

/// A small SPM vocabulary: `<unk>`, `<s>`, `</s>`, 256 byte tokens, then pieces.
fn spm_parts<'a>(pieces: &'a [(String, f32)], bytes: &'a [String]) -> TokenizerParts<'a> {
    let mut tokens = vec!["<unk>", "<s>", "</s>"];
    let mut scores = vec![0.0, 0.0, 0.0];
    let mut types = vec![2, 3, 3];
    for b in bytes {
        tokens.push(b);
        scores.push(0.0);
        types.push(6);
    }
    for (p, s) in pieces {
        tokens.push(p);
        scores.push(*s);
        types.push(1);
    }
    TokenizerParts {
        model: "llama",
        tokens,
        scores: Some(scores),
        token_types: Some(types),
        ..Default::default()
    }
}

fn byte_names() -> Vec<String> {
    (0..256).map(|b| format!("<0x{b:02X}>")).collect()
}

fn spm_pieces() -> Vec<(String, f32)> {
    [
        ("▁", -1.0),
        ("h", -2.0),
        ("e", -2.0),
        ("l", -2.0),
        ("o", -2.0),
        ("w", -2.0),
        ("r", -2.0),
        ("d", -2.0),
        ("he", -3.0),
        ("ll", -3.5),
        ("llo", -4.0),
        ("hello", -5.0),
        ("▁hello", -6.0),
        ("▁w", -7.0),
        ("or", -7.5),
        ("▁wor", -8.0),
        ("ld", -8.5),
        ("▁world", -9.0),
        ("é", -2.0),
    ]
    .iter()
    .map(|&(p, s)| (p.to_string(), s))
    .collect()
}

#[test]
fn spm_merges_by_score_with_byte_fallback() {
    let pieces = spm_pieces();
    let bytes = byte_names();
    let tok = Tokenizer::from_parts(spm_parts(&pieces, &bytes)).unwrap();
    assert_eq!(tok.kind(), TokenizerKind::Spm);
    let id = |t: &str| tok.token_id(t).unwrap();
    // Defaults for llama: BOS 1, EOS 2, add BOS, add a space prefix.
    assert_eq!(tok.bos(), Some(1));
    assert_eq!(tok.eos(), Some(2));
    assert!(tok.add_bos());
    let ids = tok.encode("hello world", true, false).unwrap();
    assert_eq!(ids, [1, id("▁hello"), id("▁world")]);
    // No BOS without add_special.
    assert_eq!(tok.encode("hello", false, false).unwrap(), [id("▁hello")]);
    // Unknown characters fall back to bytes: "ж" is D0 B6.
    let ids = tok.encode("hé ж", false, false).unwrap();
    assert_eq!(
        ids,
        [
            id("▁"),
            id("h"),
            id("é"),
            id("▁"),
            id("<0xD0>"),
            id("<0xB6>")
        ]
    );
    // Decoding: ▁ → space, bytes → bytes, the prefix space removed.
    assert_eq!(tok.decode(&ids).unwrap(), "hé ж");
    assert_eq!(
        tok.decode(&[1, id("▁hello"), id("▁world")]).unwrap(),
        " hello world"
    );
    // llama.cpp keeps the space when it removes a leading BOS.
    assert_eq!(
        tok.detokenize(&[1, id("▁hello"), id("▁world")], true, false)
            .unwrap(),
        " hello world"
    );
    assert_eq!(
        tok.decode(&[id("▁hello"), id("▁world")]).unwrap(),
        "hello world"
    );
    assert_eq!(
        tok.detokenize(&[1, id("▁hello")], false, true).unwrap(),
        "<s> hello"
    );
    // Special tokens in text: split only with parse_special; a space prefix follows them.
    let ids = tok.encode("hello</s>world", false, true).unwrap();
    assert_eq!(ids, [id("▁hello"), 2, id("▁world")]);
    let ids = tok.encode("</s>", false, false).unwrap();
    assert!(!ids.contains(&2));
    assert!(tok.is_eog(2));
    // Streaming across byte tokens.
    let ids = tok.encode("жé", false, false).unwrap();
    let mut dec = StreamDecoder::new();
    let mut parts = Vec::new();
    for &i in &ids {
        parts.push(dec.push(&tok, i).unwrap());
    }
    assert_eq!(parts.concat(), " жé");
    assert!(
        parts.iter().any(|p| p.is_empty()),
        "the split character was held back: {parts:?}"
    );
}

#[test]
fn spm_score_order_and_ties() {
    // "ab" scores higher than "bc": "abc" → "ab" + "c"; equal scores → leftmost first.
    let mk = |ab: f32, bc: f32| {
        let pieces: Vec<(String, f32)> = vec![
            ("a".into(), -1.0),
            ("b".into(), -1.0),
            ("c".into(), -1.0),
            ("ab".into(), ab),
            ("bc".into(), bc),
        ];
        pieces
    };
    let bytes = byte_names();
    for (ab, bc, want) in [
        (-2.0, -3.0, ["ab", "c"]),
        (-3.0, -2.0, ["a", "bc"]),
        (-2.0, -2.0, ["ab", "c"]),
    ] {
        let pieces = mk(ab, bc);
        let mut parts = spm_parts(&pieces, &bytes);
        parts.add_space_prefix = Some(false);
        let tok = Tokenizer::from_parts(parts).unwrap();
        let ids = tok.encode("abc", false, false).unwrap();
        let got: Vec<&str> = ids.iter().map(|&i| tok.token_text(i).unwrap()).collect();
        assert_eq!(got, want, "ab={ab} bc={bc}");
    }
}

#[test]
fn bpe_synthetic_merges_and_errors() {
    // A tiny byte-level vocab: the 256 byte characters, then merges.
    let table: Vec<String> = {
        let mut n = 0;
        (0..256u32)
            .map(|b| {
                let keep = (0x21..=0x7E).contains(&b)
                    || (0xA1..=0xAC).contains(&b)
                    || (0xAE..=0xFF).contains(&b);
                let cp = if keep {
                    b
                } else {
                    n += 1;
                    255 + n
                };
                char::from_u32(cp).unwrap().to_string()
            })
            .collect()
    };
    let mut tokens: Vec<&str> = table.iter().map(String::as_str).collect();
    tokens.extend(["ab", "Ġab", "abc", "<|end|>"]);
    let merges = vec!["a b", "Ġ ab", "ab c"];
    let mut types = vec![1; tokens.len()];
    *types.last_mut().unwrap() = 3;
    let parts = TokenizerParts {
        model: "gpt2",
        pre: Some("gpt-2"),
        tokens: tokens.clone(),
        token_types: Some(types),
        merges,
        bos: Some(tokens.len() as u32 - 1),
        eos: Some(tokens.len() as u32 - 1),
        ..Default::default()
    };
    let tok = Tokenizer::from_parts(parts.clone()).unwrap();
    let id = |t: &str| tok.token_id(t).unwrap();
    assert_eq!(
        tok.encode("abc ab", false, false).unwrap(),
        [id("abc"), id("Ġab")]
    );
    assert_eq!(
        tok.encode("abd", false, false).unwrap(),
        [id("ab"), id("d")]
    );
    assert_eq!(tok.decode(&[id("abc"), id("Ġab")]).unwrap(), "abc ab");
    // gpt2 default: no BOS added.
    assert_eq!(tok.encode("ab", true, false).unwrap(), [id("ab")]);
    assert!(tok.is_eog(id("<|end|>")));
    // Unknown pre-tokenizer: falls back to the default one.
    let mut p = parts.clone();
    p.pre = Some("no-such-pre");
    assert_eq!(Tokenizer::from_parts(p).unwrap().pre(), "default");
    // Errors, not panics.
    let mut p = parts.clone();
    p.model = "bert";
    assert!(Tokenizer::from_parts(p).is_err());
    let mut p = parts.clone();
    p.tokens.clear();
    assert!(Tokenizer::from_parts(p).is_err());
    let mut p = parts;
    p.add_bos = Some(true);
    p.bos = None;
    p.token_types = None;
    // Default BOS for gpt2 is 11, which exists here.
    assert_eq!(Tokenizer::from_parts(p).unwrap().bos(), Some(11));
}

#[test]
fn build_is_fast() {
    let Some(path) = model_path() else {
        return;
    };
    let file = GgufFile::open(&path).unwrap();
    let g = file.parse().unwrap();
    let t0 = std::time::Instant::now();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let dt = t0.elapsed();
    eprintln!("built a {}-token tokenizer in {dt:?}", tok.n_vocab());
}

/// Differential check against llama.cpp on generated cases: set
/// `EMBER_TOKENIZER_DIFF=model.gguf=cases.jsonl[;model2.gguf=cases2.jsonl]`,
/// the cases made with llama.cpp in the fixture's format. Off by default.
#[test]
fn differential_cases_from_env() {
    let Some(spec) = std::env::var_os("EMBER_TOKENIZER_DIFF") else {
        return;
    };
    let spec = spec.to_string_lossy().into_owned();
    let mut bad = 0usize;
    for pair in spec.split(';').filter(|s| !s.is_empty()) {
        let (model, cases) = pair.split_once('=').expect("model=cases");
        let file = GgufFile::open(model).unwrap();
        let tok = Tokenizer::from_gguf(&file.parse().unwrap()).unwrap();
        let text = std::fs::read_to_string(cases).unwrap();
        let (mut n, mut ok) = (0, 0);
        for line in text.lines().filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let t = v["text"].as_str().unwrap();
            let want = |k: &str| -> Vec<u32> {
                v[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect()
            };
            let (a, b) = (
                tok.encode(t, false, false).unwrap(),
                tok.encode(t, true, true).unwrap(),
            );
            n += 2;
            for (got, w) in [(a, want("ids")), (b, want("ids_parse_special"))] {
                if got == w {
                    ok += 1;
                } else if bad < 20 {
                    bad += 1;
                    eprintln!("MISMATCH {model} {t:?}\n  got  {got:?}\n  want {w:?}");
                } else {
                    bad += 1;
                }
            }
        }
        eprintln!("{model}: {ok}/{n} match");
    }
    assert_eq!(bad, 0);
}

#[test]
fn types_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
    assert_send_sync::<StreamDecoder>();
    assert_send_sync::<ember::sampler::Sampler>();
    assert_send_sync::<ember::chat::ChatTemplate>();
}

/// Differential check of every token's piece and the EOG set against
/// llama.cpp: `EMBER_TOKENIZER_PIECES=model.gguf=pieces.jsonl[;…]`, lines
/// `{"id", "p": hex, "ps": hex}` (special off/on), then `{"eog", "bos", "eos", "eot"}`.
#[test]
fn differential_pieces_from_env() {
    let Some(spec) = std::env::var_os("EMBER_TOKENIZER_PIECES") else {
        return;
    };
    let spec = spec.to_string_lossy().into_owned();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    for pair in spec.split(';').filter(|s| !s.is_empty()) {
        let (model, cases) = pair.split_once('=').expect("model=pieces");
        let file = GgufFile::open(model).unwrap();
        let tok = Tokenizer::from_gguf(&file.parse().unwrap()).unwrap();
        let mut bad = 0;
        for line in std::fs::read_to_string(cases).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(eog) = v.get("eog") {
                let eog: Vec<u32> = eog
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect();
                assert_eq!(tok.eog_ids(), &eog[..], "{model} eog");
                let id = |k: &str| u32::try_from(v[k].as_i64().unwrap()).ok();
                assert_eq!(
                    (tok.bos(), tok.eos(), tok.eot()),
                    (id("bos"), id("eos"), id("eot")),
                    "{model}"
                );
                continue;
            }
            let id = v["id"].as_u64().unwrap() as u32;
            let (p, ps) = (
                tok.token_to_piece(id, false).unwrap(),
                tok.token_to_piece(id, true).unwrap(),
            );
            if hex(p) != v["p"].as_str().unwrap() || hex(ps) != v["ps"].as_str().unwrap() {
                bad += 1;
                if bad < 10 {
                    eprintln!("MISMATCH {model} piece {id}: {p:?} {ps:?} vs {v}");
                }
            }
        }
        eprintln!("{model}: {bad} piece mismatches");
        assert_eq!(bad, 0);
    }
}
