//! SentencePiece-style BPE with scores, as llama.cpp's `llm_tokenizer_spm`.
//!
//! The text (spaces already escaped to U+2581) starts as one symbol per
//! character; the adjacent pair whose concatenation is the highest-scoring
//! token (ties: leftmost) is merged until no pair forms a token. A symbol that
//! is not a token falls back to `<0xXX>` byte tokens.

use super::vocab::Vocab;
use crate::{Error, Result};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Clone, Copy, Debug)]
struct Sym {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
}

#[derive(Clone, Copy, Debug)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bigram {
    // Max-heap: highest score first, then the leftmost.
    fn cmp(&self, o: &Self) -> Ordering {
        self.score
            .total_cmp(&o.score)
            .then_with(|| o.left.cmp(&self.left))
    }
}

/// Normalizes a score so that `total_cmp` orders like `<` does in C++.
pub(crate) fn norm_score(x: f32) -> f32 {
    if x.is_nan() {
        f32::NEG_INFINITY
    } else {
        x + 0.0
    }
}

/// Scratch space for one encode call.
#[derive(Default)]
pub(crate) struct SpmScratch {
    syms: Vec<Sym>,
    heap: BinaryHeap<Bigram>,
}

/// Byte fallback ids: `<0xXX>`, else the byte itself as a token.
pub(crate) fn byte_tokens(vocab: &Vocab) -> [Option<u32>; 256] {
    let mut out = [None; 256];
    for (b, slot) in out.iter_mut().enumerate() {
        let hex = format!("<0x{b:02X}>");
        *slot = vocab.get(&hex).or_else(|| vocab.get_bytes(&[b as u8]));
    }
    out
}

fn try_add(
    vocab: &Vocab,
    scores: &[f32],
    text: &str,
    s: &mut SpmScratch,
    left: isize,
    right: isize,
) {
    if left < 0 || right < 0 {
        return;
    }
    let (l, r) = (s.syms[left as usize], s.syms[right as usize]);
    let Some(piece) = text.get(l.start..l.start + l.len + r.len) else {
        return;
    };
    let Some(id) = vocab.get(piece) else {
        return;
    };
    let Some(&score) = scores.get(id as usize) else {
        return;
    };
    s.heap.push(Bigram {
        score,
        left: left as usize,
        right: right as usize,
        size: piece.len(),
    });
}

/// Tokenizes `text` (whitespace already escaped) into `out`.
pub(crate) fn encode(
    vocab: &Vocab,
    scores: &[f32],
    bytes: &[Option<u32>; 256],
    unk: Option<u32>,
    text: &str,
    s: &mut SpmScratch,
    out: &mut Vec<u32>,
) -> Result<()> {
    s.syms.clear();
    s.heap.clear();
    let n = text.chars().count();
    for (i, (start, c)) in text.char_indices().enumerate() {
        s.syms.push(Sym {
            start,
            len: c.len_utf8(),
            prev: i as isize - 1,
            next: if i + 1 == n { -1 } else { i as isize + 1 },
        });
    }
    for i in 1..s.syms.len() {
        try_add(vocab, scores, text, s, i as isize - 1, i as isize);
    }
    while let Some(b) = s.heap.pop() {
        let (l, r) = (s.syms[b.left], s.syms[b.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue;
        }
        s.syms[b.left].len += r.len;
        s.syms[b.right].len = 0;
        s.syms[b.left].next = r.next;
        if r.next >= 0 {
            s.syms[r.next as usize].prev = b.left as isize;
        }
        let (prev, next) = (s.syms[b.left].prev, s.syms[b.left].next);
        try_add(vocab, scores, text, s, prev, b.left as isize);
        try_add(vocab, scores, text, s, b.left as isize, next);
    }
    // Every merged symbol is a token (only token-forming pairs are merged), so
    // llama.cpp's re-segmentation reduces to: the symbol's token, or its bytes.
    let mut i: isize = if s.syms.is_empty() { -1 } else { 0 };
    while i >= 0 {
        let sym = s.syms[i as usize];
        i = sym.next;
        let piece = &text[sym.start..sym.start + sym.len];
        if let Some(id) = vocab.get(piece) {
            out.push(id);
            continue;
        }
        for &b in piece.as_bytes() {
            match bytes[b as usize].or(unk) {
                Some(id) => out.push(id),
                None => {
                    return Err(Error::Tokenizer(format!(
                        "the vocabulary has no byte token <0x{b:02X}> for {piece:?} and no unknown token"
                    )))
                }
            }
        }
    }
    Ok(())
}
