//! Tokenization, built from a GGUF's own vocabulary, giving the same ids as
//! llama.cpp.
//!
//! Two vocabulary models are supported:
//! - `gpt2`: byte-level BPE with ranked merges, after a pre-tokenizer chosen
//!   by `tokenizer.ggml.pre` (`default`, `gpt2`, `llama3`/`llama-bpe`,
//!   `smollm`, `qwen2` and their aliases);
//! - `llama`: SentencePiece-style BPE with scores and `<0xXX>` byte fallback.
//!
//! Special tokens (control, user-defined) found in the text are split out
//! before BPE, longest first, as llama.cpp's `tokenizer_st_partition` does:
//! user-defined tokens always, control tokens only with `parse_special`.
//!
//! ```no_run
//! # fn main() -> ember::Result<()> {
//! let file = ember::gguf::GgufFile::open("model.gguf")?;
//! let tok = ember::tokenizer::Tokenizer::from_gguf(&file.parse()?)?;
//! let ids = tok.encode("Hello world", true, true)?;
//! assert_eq!(tok.decode(&ids)?, "Hello world");
//! # Ok(()) }
//! ```

mod bpe;
mod pretokenize;
mod spm;
mod unicode_data;
mod vocab;

use crate::gguf::{Array, Gguf, ValueType};
use crate::{Error, Result};
use bpe::{Bpe, BpeScratch, Merges};
use vocab::Vocab;

/// Token attribute bits (llama.cpp's `llama_token_attr`).
mod attr {
    pub const UNKNOWN: u16 = 1 << 0;
    pub const UNUSED: u16 = 1 << 1;
    pub const NORMAL: u16 = 1 << 2;
    pub const CONTROL: u16 = 1 << 3;
    pub const USER_DEFINED: u16 = 1 << 4;
    pub const BYTE: u16 = 1 << 5;
    pub const LSTRIP: u16 = 1 << 7;
    pub const RSTRIP: u16 = 1 << 8;
}

/// The kind of a token, from `tokenizer.ggml.token_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    /// No type (0, or a value Ember doesn't know).
    Undefined,
    /// An ordinary piece of text (1).
    Normal,
    /// The unknown token (2).
    Unknown,
    /// A control token such as BOS/EOS or `<|im_start|>` (3).
    Control,
    /// A user-defined token, always matched as a whole (4).
    UserDefined,
    /// A reserved, unused token (5).
    Unused,
    /// A byte-fallback token such as `<0x0A>` (6).
    Byte,
}

impl TokenType {
    /// The type for a `tokenizer.ggml.token_type` value.
    pub fn from_gguf(v: i32) -> TokenType {
        match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }

    fn attr(self) -> u16 {
        match self {
            TokenType::Undefined => 0,
            TokenType::Normal => attr::NORMAL,
            TokenType::Unknown => attr::UNKNOWN,
            TokenType::Control => attr::CONTROL,
            TokenType::UserDefined => attr::USER_DEFINED,
            TokenType::Unused => attr::UNUSED,
            TokenType::Byte => attr::BYTE,
        }
    }
}

/// The vocabulary model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// Byte-level BPE with merges (`tokenizer.ggml.model = "gpt2"`).
    Bpe,
    /// SentencePiece BPE with scores (`tokenizer.ggml.model = "llama"`).
    Spm,
}

/// A tokenizer's description as plain data: what [`Tokenizer::from_gguf`]
/// reads from the GGUF metadata, for tests and synthetic vocabularies.
///
/// `None` means "the key is absent": llama.cpp's defaults for the model apply.
#[derive(Clone, Debug, Default)]
pub struct TokenizerParts<'a> {
    /// `tokenizer.ggml.model`: `"gpt2"` or `"llama"`.
    pub model: &'a str,
    /// `tokenizer.ggml.pre` (BPE only).
    pub pre: Option<&'a str>,
    /// `tokenizer.ggml.tokens`: the text of each token, by id.
    pub tokens: Vec<&'a str>,
    /// `tokenizer.ggml.scores` (SPM merge priorities).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type`, as stored (1 normal, 2 unknown, 3 control,
    /// 4 user-defined, 5 unused, 6 byte). Absent: all normal.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges` ("a b", rank = index; BPE only).
    pub merges: Vec<&'a str>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`.
    pub eot: Option<u32>,
    /// `tokenizer.ggml.eom_token_id`.
    pub eom: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.fim_pre_token_id` (or the older `prefix_token_id`).
    pub fim_pre: Option<u32>,
    /// `tokenizer.ggml.fim_suf_token_id` (or the older `suffix_token_id`).
    pub fim_suf: Option<u32>,
    /// `tokenizer.ggml.fim_mid_token_id` (or the older `middle_token_id`).
    pub fim_mid: Option<u32>,
    /// `tokenizer.ggml.fim_pad_token_id`.
    pub fim_pad: Option<u32>,
    /// `tokenizer.ggml.fim_rep_token_id`.
    pub fim_rep: Option<u32>,
    /// `tokenizer.ggml.fim_sep_token_id`.
    pub fim_sep: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix` (SPM).
    pub add_space_prefix: Option<bool>,
    /// `general.name` (llama.cpp sets per-token attributes for a few models by name).
    pub model_name: Option<&'a str>,
}

#[derive(Debug)]
enum Model {
    Bpe(Box<Bpe>),
    Spm {
        scores: Vec<f32>,
        bytes: Box<[Option<u32>; 256]>,
    },
}

/// A tokenizer: text ↔ token ids, identical to llama.cpp's for the same GGUF.
///
/// Building one reads the whole vocabulary once; encoding and decoding never
/// panic and never recurse on input-driven depth.
#[derive(Debug)]
pub struct Tokenizer {
    vocab: Vocab,
    attrs: Vec<u16>,
    model: Model,
    pre_name: String,
    /// Each token's output bytes as a normal token.
    pieces: Pieces,
    /// Control/user-defined/unknown tokens, longest first.
    specials: Vec<u32>,
    eog: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
}

/// A piece of input after special-token partitioning.
#[derive(Clone, Copy, Debug)]
enum Frag {
    Text(usize, usize),
    Token(u32),
}

/// C's `isspace` in the "C" locale.
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];

fn out_of_range(id: u32, n: usize) -> Error {
    Error::Input(format!("token id {id} out of range (vocab has {n})"))
}

/// Parses the hex digits at `text[3..5]` like C's `strtol` (a prefix; 0 if none).
fn byte_of_text(text: &str) -> u8 {
    let mut v = 0u32;
    for &c in text.as_bytes().iter().skip(3).take(2) {
        match (c as char).to_digit(16) {
            Some(d) => v = v * 16 + d,
            None => break,
        }
    }
    v as u8
}

/// Every byte value, for byte tokens' one-byte pieces.
static BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i as u8;
        i += 1;
    }
    t
};

/// Vocabularies from which [`Tokenizer::build`] uses two threads.
const PARALLEL_BUILD: usize = 8192;

/// Where token texts or merge lines come from: plain data, or a GGUF
/// array read in place.
#[derive(Clone, Copy)]
enum Lines<'p, 'a> {
    Slice(&'p [&'a str]),
    Gguf(&'p Array<'a>),
}

impl Lines<'_, '_> {
    fn len(&self) -> usize {
        match self {
            Lines::Slice(s) => s.len(),
            Lines::Gguf(a) => a.len(),
        }
    }

    /// Bytes of text in all (a capacity hint).
    fn text_bytes(&self) -> usize {
        match self {
            Lines::Slice(s) => s.iter().map(|t| t.len()).sum(),
            Lines::Gguf(a) => a.raw().len().saturating_sub(8 * a.len()),
        }
    }

    /// Each element as bytes.
    ///
    /// # Errors
    /// [`Error::Gguf`] for an array whose elements are not strings or are
    /// cut short.
    fn for_each(&self, mut f: impl FnMut(usize, &[u8]) -> Result<()>) -> Result<()> {
        match *self {
            Lines::Slice(s) => s
                .iter()
                .enumerate()
                .try_for_each(|(i, t)| f(i, t.as_bytes())),
            Lines::Gguf(a) => {
                let bad = |msg: String| Error::Gguf {
                    offset: a.offset(),
                    msg,
                };
                if a.elem_type() != ValueType::String {
                    return Err(bad(format!(
                        "expected an array of strings, found elements of type {}",
                        a.elem_type().name()
                    )));
                }
                let mut n = 0;
                for (i, b) in a.iter_bytes().enumerate() {
                    f(i, b)?;
                    n += 1;
                }
                if n != a.len() {
                    return Err(bad(format!(
                        "the array of {} strings ends after {n}",
                        a.len()
                    )));
                }
                Ok(())
            }
        }
    }
}

/// Each token's text, as the vocabulary keeps it: text that is not UTF-8
/// lossily, and an empty text renamed as llama.cpp does, so that it can't
/// match anything.
fn for_each_token(tokens: Lines<'_, '_>, mut f: impl FnMut(&str)) -> Result<()> {
    let mut name = String::new();
    tokens.for_each(|i, b| {
        if b.is_empty() {
            name.clear();
            name.push_str(&format!("[EMPTY_{i}]"));
            f(&name);
        } else {
            f(&String::from_utf8_lossy(b));
        }
        Ok(())
    })
}

/// Each merge line.
///
/// # Errors
/// [`Error::Tokenizer`] for a line that is not UTF-8.
fn for_each_merge(merges: Lines<'_, '_>, mut f: impl FnMut(&str) -> Result<()>) -> Result<()> {
    merges.for_each(|i, b| match std::str::from_utf8(b) {
        Ok(line) => f(line),
        Err(_) => Err(Error::Tokenizer(format!(
            "tokenizer.ggml.merges: line {i} is not UTF-8"
        ))),
    })
}

/// Every token's bytes as output for a normal token (the token's attributes
/// choose between these, its text and a byte when decoding), concatenated.
#[derive(Debug, Default)]
struct Pieces {
    bytes: Vec<u8>,
    off: Vec<u32>,
}

impl Pieces {
    fn build(kind: TokenizerKind, vocab: &Vocab) -> Pieces {
        let mut bytes = Vec::with_capacity(vocab.text_bytes());
        let mut off = Vec::with_capacity(vocab.len() + 1);
        off.push(0u32);
        let inv = match kind {
            TokenizerKind::Bpe => bpe::char_to_byte_table(&bpe::byte_to_char_table()),
            TokenizerKind::Spm => Vec::new(),
        };
        for id in 0..vocab.len() as u32 {
            let text = vocab.text(id);
            match kind {
                TokenizerKind::Spm => {
                    for (j, part) in text.split('\u{2581}').enumerate() {
                        if j > 0 {
                            bytes.push(b' ');
                        }
                        bytes.extend_from_slice(part.as_bytes());
                    }
                }
                // Printable ASCII stands for itself in GPT-2's byte map.
                TokenizerKind::Bpe if text.bytes().all(|b| (0x21..=0x7E).contains(&b)) => {
                    bytes.extend_from_slice(text.as_bytes());
                }
                TokenizerKind::Bpe => {
                    for c in text.chars() {
                        match inv.get(c as usize) {
                            Some(&b) if b >= 0 => bytes.push(b as u8),
                            _ => {
                                // llama.cpp's marker for a char outside the byte map.
                                let mut u = [0u8; 4];
                                bytes.extend_from_slice(b"[UNK_BYTE_0x");
                                for x in c.encode_utf8(&mut u).as_bytes() {
                                    bytes.extend_from_slice(format!("{x:02x}").as_bytes());
                                }
                                bytes.extend_from_slice(text.as_bytes());
                                bytes.push(b']');
                            }
                        }
                    }
                }
            }
            off.push(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
        }
        Pieces { bytes, off }
    }

    /// Token `i`'s bytes (empty out of range).
    fn get(&self, i: usize) -> &[u8] {
        match (self.off.get(i), self.off.get(i + 1)) {
            (Some(&a), Some(&b)) => self.bytes.get(a as usize..b as usize).unwrap_or(&[]),
            _ => &[],
        }
    }
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF's `tokenizer.*` metadata.
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for a missing or malformed vocabulary or an
    /// unsupported model; metadata type errors as the GGUF reader reports them.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Tokenizer> {
        let model = g.str("tokenizer.ggml.model")?;
        let tokens = g.array("tokenizer.ggml.tokens")?;
        let merges = match g.get("tokenizer.ggml.merges") {
            Some(_) => Some(g.array("tokenizer.ggml.merges")?),
            None if model == "gpt2" => {
                return Err(Error::Tokenizer(
                    "the model has no tokenizer.ggml.merges".into(),
                ))
            }
            None => None,
        };
        let id = |k: &str| -> Result<Option<u32>> {
            // llama.cpp reads these as u32; a negative (e.g. -1) means "none".
            match g.get(k) {
                None => Ok(None),
                Some(v) => Ok(v.as_i128().and_then(|x| u32::try_from(x).ok())),
            }
        };
        let id2 = |a: &str, b: &str| -> Result<Option<u32>> { Ok(id(a)?.or(id(b)?)) };
        let flag = |k: &str| g.opt(k, |g, k| g.bool(k));
        let scores = match g.get("tokenizer.ggml.scores") {
            Some(_) => Some(
                g.array("tokenizer.ggml.scores")?
                    .to_f32_vec()
                    .or_else(|_| {
                        g.array("tokenizer.ggml.scores")?
                            .to_i32_vec()
                            .map(|v| v.into_iter().map(|x| x as f32).collect())
                    })?,
            ),
            None => None,
        };
        let token_types = match g.get("tokenizer.ggml.token_type") {
            Some(_) => Some(g.array("tokenizer.ggml.token_type")?.to_i32_vec()?),
            None => None,
        };
        let parts = TokenizerParts {
            model,
            pre: g.opt("tokenizer.ggml.pre", |g, k| g.str(k))?,
            tokens: Vec::new(),
            scores,
            token_types,
            merges: Vec::new(),
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            eot: id("tokenizer.ggml.eot_token_id")?,
            eom: id("tokenizer.ggml.eom_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            fim_pre: id2(
                "tokenizer.ggml.fim_pre_token_id",
                "tokenizer.ggml.prefix_token_id",
            )?,
            fim_suf: id2(
                "tokenizer.ggml.fim_suf_token_id",
                "tokenizer.ggml.suffix_token_id",
            )?,
            fim_mid: id2(
                "tokenizer.ggml.fim_mid_token_id",
                "tokenizer.ggml.middle_token_id",
            )?,
            fim_pad: id("tokenizer.ggml.fim_pad_token_id")?,
            fim_rep: id("tokenizer.ggml.fim_rep_token_id")?,
            fim_sep: id("tokenizer.ggml.fim_sep_token_id")?,
            add_bos: flag("tokenizer.ggml.add_bos_token")?,
            add_eos: flag("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix")?,
            model_name: g.opt("general.name", |g, k| g.str(k)).ok().flatten(),
        };
        let merges = merges.map_or(Lines::Slice(&[]), Lines::Gguf);
        Tokenizer::build(&parts, Lines::Gguf(tokens), merges)
    }

    /// Builds the tokenizer from plain data (see [`TokenizerParts`]).
    ///
    /// # Errors
    /// [`Error::Tokenizer`] for an empty vocabulary, an unknown model, arrays
    /// shorter than the vocabulary, or BOS/EOS required but absent.
    pub fn from_parts(parts: TokenizerParts<'_>) -> Result<Tokenizer> {
        Tokenizer::build(
            &parts,
            Lines::Slice(&parts.tokens),
            Lines::Slice(&parts.merges),
        )
    }

    /// Builds from `parts`, whose texts and merge lines come from `tokens`
    /// and `merges`.
    fn build(
        parts: &TokenizerParts<'_>,
        tokens: Lines<'_, '_>,
        merges: Lines<'_, '_>,
    ) -> Result<Tokenizer> {
        let n = tokens.len();
        if n == 0 {
            return Err(Error::Tokenizer("the vocabulary is empty".into()));
        }
        if n >= u32::MAX as usize {
            return Err(Error::Tokenizer("the vocabulary is too large".into()));
        }
        let kind = match parts.model {
            "gpt2" => TokenizerKind::Bpe,
            "llama" => TokenizerKind::Spm,
            other => {
                return Err(Error::Tokenizer(format!(
                    "unsupported tokenizer model {other:?} (Ember supports \"gpt2\" and \"llama\")"
                )))
            }
        };

        // The vocabulary and its output pieces on this thread, the merges
        // (~50k lines) on another: this is on the path to the first token,
        // since the prompt must be tokenized.
        let vocab_part = || -> Result<(Vocab, Vec<u32>, Pieces)> {
            let mut v = Vocab::with_capacity(n, tokens.text_bytes());
            for_each_token(tokens, |t| v.push(t))?;
            let dups = v.index();
            let pieces = Pieces::build(kind, &v);
            Ok((v, dups, pieces))
        };
        let side_part = || -> Result<Merges> {
            let mut m = Merges::with_capacity(merges.len(), merges.text_bytes());
            if kind == TokenizerKind::Bpe {
                for_each_merge(merges, |line| m.push(line))?;
                m.index();
            }
            Ok(m)
        };
        let (vocab_part, side_part) = if n >= PARALLEL_BUILD {
            crate::sys::join(vocab_part, side_part)
        } else {
            (vocab_part(), side_part())
        };
        let (vocab, dups, pieces) = vocab_part?;
        let merges = side_part?;
        if let Some(&d) = dups.first() {
            log::warn!(
                "tokenizer: {} duplicate token text(s), e.g. id {d} {:?}; the first id wins",
                dups.len(),
                vocab.text(d)
            );
        }

        let mut attrs = vec![attr::NORMAL; n];
        if let Some(tt) = &parts.token_types {
            if tt.len() < n {
                return Err(Error::Tokenizer(format!(
                    "tokenizer.ggml.token_type has {} entries for {n} tokens",
                    tt.len()
                )));
            }
            for (a, &t) in attrs.iter_mut().zip(tt) {
                *a = TokenType::from_gguf(t).attr();
            }
        }

        // Model defaults, then the GGUF's overrides.
        let (mut add_bos, mut add_eos, mut add_space_prefix, clean_spaces, mut pre_name);
        let (mut bos, mut eos, mut unk) = match kind {
            TokenizerKind::Bpe => (Some(11), Some(11), None),
            TokenizerKind::Spm => (Some(1), Some(2), Some(0)),
        };
        let mut bpe_cfg = None;
        match kind {
            TokenizerKind::Bpe => {
                let pre = parts.pre.unwrap_or("");
                if pre.is_empty() {
                    log::warn!("tokenizer: missing pre-tokenizer type, using 'default'; generation quality will be degraded");
                }
                let cfg = match pretokenize::pre_config(pre) {
                    Some(c) => c,
                    None => {
                        log::warn!(
                            "tokenizer: unknown pre-tokenizer type {pre:?}, using 'default'"
                        );
                        pretokenize::pre_config("default")
                            .ok_or_else(|| Error::Tokenizer("no default pre-tokenizer".into()))?
                    }
                };
                add_bos = cfg.add_bos;
                add_eos = false;
                add_space_prefix = false;
                clean_spaces = cfg.clean_spaces;
                pre_name = cfg.family.to_string();
                bpe_cfg = Some(cfg);
            }
            TokenizerKind::Spm => {
                add_bos = true;
                add_eos = false;
                add_space_prefix = true;
                clean_spaces = false;
                pre_name = String::new();
            }
        }
        if let Some(v) = parts.add_space_prefix {
            add_space_prefix = v;
        }

        let check = |what: &str, default: Option<u32>, given: Option<u32>| -> Option<u32> {
            let default = default.filter(|&d| (d as usize) < n);
            match given {
                Some(g) if (g as usize) < n => Some(g),
                Some(g) => {
                    log::warn!("tokenizer: bad special token {what} = {g} (vocab has {n}), using default {default:?}");
                    default
                }
                None => default,
            }
        };
        bos = check("bos", bos, parts.bos);
        eos = check("eos", eos, parts.eos);
        unk = check("unk", unk, parts.unk);
        let mut eot = check("eot", None, parts.eot);
        let mut eom = check("eom", None, parts.eom);
        let pad = check("pad", None, parts.pad);
        let mut fim = [
            check("fim_pre", None, parts.fim_pre),
            check("fim_suf", None, parts.fim_suf),
            check("fim_mid", None, parts.fim_mid),
            check("fim_pad", None, parts.fim_pad),
            check("fim_rep", None, parts.fim_rep),
            check("fim_sep", None, parts.fim_sep),
        ];
        if let Some(v) = parts.add_bos {
            add_bos = v;
        }
        if let Some(v) = parts.add_eos {
            add_eos = v;
        }
        if add_bos && bos.is_none() {
            return Err(Error::Tokenizer(
                "tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set"
                    .into(),
            ));
        }
        if add_eos && eos.is_none() {
            return Err(Error::Tokenizer(
                "tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set"
                    .into(),
            ));
        }

        // Special tokens found by their text, as llama.cpp does; it forces them
        // to be control tokens.
        let force_control = |attrs: &mut [u16], id: u32| {
            let a = &mut attrs[id as usize];
            if *a & attr::CONTROL == 0 {
                log::warn!(
                    "tokenizer: control-looking token {id} {:?} was not control-type; treating it as control",
                    vocab.text(id)
                );
                *a |= attr::CONTROL;
            }
        };
        let detect = |attrs: &mut [u16], slot: &mut Option<u32>, texts: &[&str]| {
            if slot.is_none() {
                if let Some(id) = texts.iter().filter_map(|t| vocab.get(t)).min() {
                    *slot = Some(id);
                    force_control(attrs, id);
                }
            }
        };
        detect(&mut attrs, &mut eot, EOT_TEXTS);
        detect(&mut attrs, &mut eom, &["<|eom_id|>"]);
        for (slot, texts) in fim.iter_mut().zip([
            FIM_PRE_TEXTS,
            FIM_SUF_TEXTS,
            FIM_MID_TEXTS,
            FIM_PAD_TEXTS,
            FIM_REP_TEXTS,
            FIM_SEP_TEXTS,
        ]) {
            detect(&mut attrs, slot, texts);
        }
        // Control tokens named "unused" are unused.
        for (id, a) in attrs.iter_mut().enumerate() {
            if *a & attr::CONTROL != 0 && vocab.text(id as u32).contains("unused") {
                *a |= attr::UNUSED;
            }
        }
        // End-of-generation tokens.
        let mut eog: Vec<u32> = fim[3..].iter().flatten().copied().collect();
        for t in EOG_TEXTS {
            if let Some(id) = vocab.get(t) {
                eog.push(id);
                let a = &mut attrs[id as usize];
                if *a & attr::CONTROL == 0 {
                    log::warn!("tokenizer: control-looking token {id} {t:?} was not control-type; treating it as control");
                    *a |= attr::CONTROL;
                }
            }
        }
        // gpt-oss: always render these.
        for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(id) = vocab.get(t) {
                attrs[id as usize] = attr::USER_DEFINED;
            }
        }
        eog.extend([eos, eot, eom].into_iter().flatten());
        eog.sort_unstable();
        eog.dedup();
        // o200k_harmony / solar-open: "<|end|>" is not an end of generation there.
        let has = |eog: &[u32], t: &str| {
            vocab
                .get(t)
                .is_some_and(|id| eog.binary_search(&id).is_ok())
        };
        if (has(&eog, "<|return|>") && has(&eog, "<|call|>") && has(&eog, "<|end|>"))
            || (has(&eog, "<|calls|>") && has(&eog, "<|flush|>") && has(&eog, "<|end|>"))
        {
            if let Some(end) = vocab.get("<|end|>") {
                eog.retain(|&x| x != end);
                attrs[end as usize] = attr::USER_DEFINED;
            }
        }
        // gemma4 / paddleocr: "</s>" is not an end of generation there.
        if has(&eog, "<|tool_response>") && has(&eog, "</s>") {
            if let Some(s) = vocab.get("</s>") {
                eog.retain(|&x| x != s);
                attrs[s as usize] = attr::NORMAL;
            }
        }

        // Special tokens, longest first.
        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&id| {
                attrs[id as usize] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0
            })
            .collect();
        specials.sort_by_key(|&id| std::cmp::Reverse(vocab.text(id).len()));

        let model = match kind {
            TokenizerKind::Bpe => {
                let cfg = bpe_cfg.ok_or_else(|| Error::Tokenizer("no pre-tokenizer".into()))?;
                let pre = pretokenize::PreTokenizer::new(&cfg)?;
                Model::Bpe(Box::new(Bpe::new(merges, pre, cfg.ignore_merges)))
            }
            TokenizerKind::Spm => {
                let scores = match &parts.scores {
                    Some(s) if s.len() >= n => s[..n].iter().map(|&x| spm::norm_score(x)).collect(),
                    Some(s) => {
                        return Err(Error::Tokenizer(format!(
                            "tokenizer.ggml.scores has {} entries for {n} tokens",
                            s.len()
                        )))
                    }
                    None => vec![0.0; n],
                };
                Model::Spm {
                    scores,
                    bytes: Box::new(spm::byte_tokens(&vocab)),
                }
            }
        };
        if kind == TokenizerKind::Spm {
            pre_name = String::new();
        }

        let mut tok = Tokenizer {
            vocab,
            attrs,
            model,
            pre_name,
            pieces,
            specials,
            eog,
            bos,
            eos,
            eot,
            eom,
            unk,
            pad,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces,
        };

        // Per-model token attributes llama.cpp sets by name.
        if let Some(name) = parts.model_name {
            let name = name.to_ascii_lowercase();
            if name.contains("phi-3") || name.contains("phi3") {
                for &id in &tok.specials {
                    tok.attrs[id as usize] |= attr::RSTRIP;
                }
                if let Some(id) = tok.vocab.get("</s>") {
                    tok.attrs[id as usize] |= attr::RSTRIP;
                }
                for t in ["<unk>", "<s>", "<|endoftext|>"] {
                    if let Some(id) = tok.vocab.get(t) {
                        tok.attrs[id as usize] &= !attr::RSTRIP;
                    }
                }
            }
        }
        Ok(tok)
    }

    /// Splits out special tokens, as llama.cpp's `tokenizer_st_partition`.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Frag> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Frag::Text(0, text.len()));
        let mut next = Vec::new();
        let bytes = text.as_bytes();
        for &id in &self.specials {
            let a = self.attrs[id as usize];
            if !parse_special && a & (attr::CONTROL | attr::UNKNOWN) != 0 {
                continue;
            }
            let pat = self.vocab.text(id);
            if pat.is_empty() || pat.len() > text.len() {
                continue;
            }
            next.clear();
            let mut changed = false;
            for &f in &frags {
                let Frag::Text(start, end) = f else {
                    next.push(f);
                    continue;
                };
                let mut base = start;
                loop {
                    let Some(m) = text.get(base..end).and_then(|s| s.find(pat)) else {
                        if base < end {
                            next.push(Frag::Text(base, end));
                        }
                        break;
                    };
                    changed = true;
                    let m = base + m;
                    let mut left_end = m;
                    if a & attr::LSTRIP != 0 {
                        while left_end > base && c_isspace(bytes[left_end - 1]) {
                            left_end -= 1;
                        }
                    }
                    if left_end > base {
                        next.push(Frag::Text(base, left_end));
                    }
                    next.push(Frag::Token(id));
                    base = m + pat.len();
                    if a & attr::RSTRIP != 0 {
                        while base < end && c_isspace(bytes[base]) {
                            base += 1;
                        }
                    }
                    if base >= end {
                        break;
                    }
                }
            }
            if changed {
                std::mem::swap(&mut frags, &mut next);
            }
        }
        frags
    }

    /// Tokenizes `text`.
    ///
    /// `add_special` adds BOS/EOS where the model asks for them;
    /// `parse_special` turns the text of control tokens (e.g. `<|im_start|>`)
    /// into those tokens (user-defined tokens are always matched).
    ///
    /// # Errors
    /// [`Error::Tokenizer`] only for malformed vocabularies (e.g. an SPM
    /// vocabulary without byte tokens meeting an unknown character).
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let frags = self.partition(text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        match &self.model {
            Model::Bpe(bpe) => {
                let mut s = BpeScratch::default();
                for f in frags {
                    match f {
                        Frag::Text(a, b) => {
                            bpe.encode(&self.vocab, &text[a..b], &mut s, &mut out)?
                        }
                        Frag::Token(id) => out.push(id),
                    }
                }
            }
            Model::Spm { scores, bytes } => {
                let mut s = spm::SpmScratch::default();
                let mut buf = String::new();
                let mut prev_special = true;
                for f in frags {
                    match f {
                        Frag::Text(a, b) => {
                            buf.clear();
                            if self.add_space_prefix && prev_special {
                                buf.push('\u{2581}');
                            }
                            for c in text[a..b].chars() {
                                buf.push(if c == ' ' { '\u{2581}' } else { c });
                            }
                            spm::encode(
                                &self.vocab,
                                scores,
                                bytes,
                                self.unk,
                                &buf,
                                &mut s,
                                &mut out,
                            )?;
                            prev_special = false;
                        }
                        Frag::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        Ok(out)
    }

    fn check(&self, id: u32) -> Result<usize> {
        let i = id as usize;
        if i < self.vocab.len() {
            Ok(i)
        } else {
            Err(out_of_range(id, self.vocab.len()))
        }
    }

    /// The bytes a token stands for. Control and unknown tokens are empty
    /// unless `special`; a piece may be part of a UTF-8 character.
    ///
    /// # Errors
    /// [`Error::Input`] for an id out of range.
    pub fn token_to_piece(&self, id: u32, special: bool) -> Result<&[u8]> {
        let i = self.check(id)?;
        let a = self.attrs[i];
        Ok(if a & (attr::UNKNOWN | attr::CONTROL) != 0 && !special {
            &[]
        } else if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
            self.vocab.text(id).as_bytes()
        } else if a & attr::NORMAL != 0 {
            self.pieces.get(i)
        } else if a & attr::BYTE != 0 {
            let b = usize::from(byte_of_text(self.vocab.text(id)));
            &BYTES[b..b + 1]
        } else {
            &[]
        })
    }

    /// Turns ids back into text, as llama.cpp's `llama_detokenize`.
    ///
    /// `remove_special` drops a leading BOS / trailing EOS the model adds;
    /// `unparse_special` renders control tokens as their text. Invalid UTF-8
    /// (a character cut between tokens) becomes U+FFFD.
    ///
    /// # Errors
    /// [`Error::Input`] for an id out of range.
    pub fn detokenize(
        &self,
        ids: &[u32],
        remove_special: bool,
        unparse_special: bool,
    ) -> Result<String> {
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if remove_special && self.add_bos && self.bos.is_some() && ids.first().copied() == self.bos
        {
            remove_space = false;
            ids = &ids[1..];
        }
        if remove_special && self.add_eos && self.eos.is_some() && ids.last().copied() == self.eos {
            ids = &ids[..ids.len() - 1];
        }
        let mut text = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let mut p = self.token_to_piece(id, unparse_special)?;
            if remove_space {
                if let Some(rest) = p.strip_prefix(b" ") {
                    p = rest;
                }
            }
            remove_space = false;
            text.extend_from_slice(p);
        }
        if self.clean_spaces {
            clean_spaces(&mut text);
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// Turns ids back into text, control tokens omitted (see [`Self::detokenize`]).
    ///
    /// # Errors
    /// [`Error::Input`] for an id out of range.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.detokenize(ids, false, false)
    }

    /// Whether a token ends generation (EOS, EOT, `<|im_end|>`-style tokens).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// All end-of-generation tokens, ascending.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// The BOS token, if the model has one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The EOS token, if the model has one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// The end-of-turn token, if the model has one.
    pub fn eot(&self) -> Option<u32> {
        self.eot
    }

    /// The end-of-message token, if the model has one.
    pub fn eom(&self) -> Option<u32> {
        self.eom
    }

    /// The unknown token, if the model has one.
    pub fn unk(&self) -> Option<u32> {
        self.unk
    }

    /// The padding token, if the model has one.
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }

    /// Whether `encode(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    /// The vocabulary model.
    pub fn kind(&self) -> TokenizerKind {
        match self.model {
            Model::Bpe(_) => TokenizerKind::Bpe,
            Model::Spm { .. } => TokenizerKind::Spm,
        }
    }

    /// The pre-tokenizer family in use (`default`, `gpt2`, `llama3`, `smollm`,
    /// `qwen2`); empty for SPM.
    pub fn pre(&self) -> &str {
        &self.pre_name
    }

    /// The id of the token whose text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.get(text)
    }

    /// A token's text as stored in the vocabulary (e.g. `Ġhello`, `▁hello`).
    ///
    /// # Errors
    /// [`Error::Input`] for an id out of range.
    pub fn token_text(&self, id: u32) -> Result<&str> {
        self.check(id)?;
        Ok(self.vocab.text(id))
    }

    /// A token's type (control tokens detected by text count as control).
    ///
    /// # Errors
    /// [`Error::Input`] for an id out of range.
    pub fn token_type(&self, id: u32) -> Result<TokenType> {
        let a = self.attrs[self.check(id)?];
        Ok(if a & attr::UNUSED != 0 {
            TokenType::Unused
        } else if a & attr::CONTROL != 0 {
            TokenType::Control
        } else if a & attr::UNKNOWN != 0 {
            TokenType::Unknown
        } else if a & attr::USER_DEFINED != 0 {
            TokenType::UserDefined
        } else if a & attr::BYTE != 0 {
            TokenType::Byte
        } else if a & attr::NORMAL != 0 {
            TokenType::Normal
        } else {
            TokenType::Undefined
        })
    }

    /// Whether a token is a control token (rendered empty by default).
    pub fn is_control(&self, id: u32) -> bool {
        self.attrs
            .get(id as usize)
            .is_some_and(|a| a & attr::CONTROL != 0)
    }
}

/// llama.cpp's `clean_up_tokenization_spaces`, byte for byte, in place.
fn clean_spaces(t: &mut Vec<u8>) {
    // First pass: " ?", " !", " .", " ," lose the space.
    let n1 = t.len();
    let mut total = usize::from(n1 > 0);
    for i in 1..n1 {
        let x = t[i];
        if t[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        t[total] = x;
        total += 1;
    }
    // Second pass: a lone apostrophe between spaces loses both spaces.
    let n2 = total;
    total = usize::from(n2 > 0);
    let mut i = 1;
    while i < n2 {
        let x = t[i];
        if x == b'\'' && i + 1 < n2 && t[i - 1] == b' ' && t[i + 1] == b' ' {
            total -= 1;
            i += 1;
            t[i] = 0;
        }
        t[total] = x;
        total += 1;
        i += 1;
    }
    // Third pass: " 's", " 'm", " 're", " 've" lose the space.
    let n3 = total;
    total = usize::from(n3 > 0);
    for i in 1..n3 {
        let x = t[i];
        if t[i - 1] == b' ' && x == b'\'' && i + 1 < n3 {
            let x1 = t[i + 1];
            if x1 == b's' || x1 == b'm' {
                total -= 1;
            } else if i + 2 < n3 && x1 != b't' && x1 != b'd' {
                let x2 = t[i + 2];
                if x2 == b'e' && (x1 == b'r' || x1 == b'v') {
                    total -= 1;
                }
            }
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);
}

/// Decodes ids one at a time for streaming output, yielding only complete
/// UTF-8 characters: a character split across tokens is held back until its
/// last byte arrives. Invalid sequences become U+FFFD.
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    special: bool,
}

impl StreamDecoder {
    /// A decoder that omits control tokens.
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// A decoder that renders control tokens as their text when `special`.
    pub fn with_special(special: bool) -> StreamDecoder {
        StreamDecoder {
            pending: Vec::new(),
            special,
        }
    }

    /// Adds a token; returns the text completed by it (possibly empty).
    ///
    /// # Errors
    /// [`Error::Input`] for an id out of range (the decoder is unchanged).
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> Result<String> {
        let piece = tok.token_to_piece(id, self.special)?;
        self.pending.extend_from_slice(piece);
        let mut out = String::new();
        let mut start = 0usize;
        loop {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(
                        std::str::from_utf8(&self.pending[start..start + valid]).unwrap_or(""),
                    );
                    start += valid;
                    match e.error_len() {
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            start += bad;
                        }
                        // An incomplete character at the end: keep it.
                        None => break,
                    }
                }
            }
        }
        self.pending.drain(..start);
        Ok(out)
    }

    /// Whether bytes of an incomplete character are held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Ends the stream: whatever is held back, as U+FFFD.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_spaces_like_llama_cpp() {
        let run = |s: &str| {
            let mut v = s.as_bytes().to_vec();
            clean_spaces(&mut v);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(run("Hello , world !"), "Hello, world!");
        assert_eq!(run("it ' s"), "it's");
        assert_eq!(
            run("I 'm you 're they 've he 's"),
            "I'm you're they've he's"
        );
        assert_eq!(run("don 't we 'd 'll"), "don 't we 'd 'll");
        assert_eq!(run(""), "");
        assert_eq!(run(" "), " ");
    }

    #[test]
    fn byte_text() {
        assert_eq!(byte_of_text("<0x0A>"), 10);
        assert_eq!(byte_of_text("<0xFF>"), 255);
        assert_eq!(byte_of_text("<0xG>"), 0);
        assert_eq!(byte_of_text(""), 0);
    }
}
