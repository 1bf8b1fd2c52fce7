//! Byte-level BPE (GPT-2 style), as llama.cpp's `llm_tokenizer_bpe_session`.
//!
//! Each pre-tokenized word starts as one symbol per byte (the byte's GPT-2
//! unicode stand-in is a token in every byte-level vocabulary); the adjacent
//! pair with the lowest merge rank (ties: leftmost) is merged until no pair
//! has a rank. Pairs are looked up by text, as llama.cpp does, in an index
//! built from the merge lines at load; the merged symbols become ids at the
//! end of each word.

use super::pretokenize::{PreTokenizer, Scratch};
use super::vocab::{hash_bytes, Vocab};
use crate::{Error, Result};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::ops::Range;

/// GPT-2's byte → unicode mapping: printable bytes stand for themselves, the
/// rest are shifted to U+0100 and up, in order.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let keep =
            (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
        let cp = if keep {
            b
        } else {
            n += 1;
            255 + n
        };
        table[b as usize] = char::from_u32(cp).unwrap_or('\0');
    }
    table
}

/// The inverse mapping, indexed by code point (0..0x144).
pub(crate) fn char_to_byte_table(fwd: &[char; 256]) -> Vec<i16> {
    let mut inv = vec![-1i16; 0x144];
    for (b, &c) in fwd.iter().enumerate() {
        if let Some(slot) = inv.get_mut(c as usize) {
            *slot = b as i16;
        }
    }
    inv
}

const EMPTY: u64 = u64::MAX;

/// The merge lines ("a b", rank = line number) and an open-addressing index
/// over their text, as llama.cpp's `bpe_ranks`.
///
/// Building it hashes each line once and looks nothing up in the
/// vocabulary, so a 50k-merge model is ready in about a millisecond; pairs
/// are looked up by text while encoding.
#[derive(Debug, Default)]
pub(crate) struct Merges {
    text: String,
    off: Vec<u32>,
    /// `hash tag << 32 | rank`, or [`EMPTY`].
    slots: Vec<u64>,
}

impl Merges {
    /// An empty table with room for `n` lines of `bytes` bytes in all.
    pub(crate) fn with_capacity(n: usize, bytes: usize) -> Merges {
        let mut off = Vec::with_capacity(n + 1);
        off.push(0);
        Merges {
            text: String::with_capacity(bytes),
            off,
            slots: Vec::new(),
        }
    }

    /// Appends the line of the next rank (not yet indexed: call [`Merges::index`]).
    ///
    /// # Errors
    /// [`Error::Tokenizer`] once the lines pass 4 GiB or 2³² − 1 ranks.
    pub(crate) fn push(&mut self, line: &str) -> Result<()> {
        self.text.push_str(line);
        let end = u32::try_from(self.text.len())
            .ok()
            .filter(|_| self.off.len() < u32::MAX as usize);
        match end {
            Some(end) => {
                self.off.push(end);
                Ok(())
            }
            None => Err(Error::Tokenizer(
                "tokenizer.ggml.merges is too large".into(),
            )),
        }
    }

    /// Number of lines.
    pub(crate) fn len(&self) -> usize {
        self.off.len().saturating_sub(1)
    }

    fn line(&self, rank: u32) -> &[u8] {
        let i = rank as usize;
        match (self.off.get(i), self.off.get(i + 1)) {
            (Some(&a), Some(&b)) => self
                .text
                .as_bytes()
                .get(a as usize..b as usize)
                .unwrap_or(&[]),
            _ => &[],
        }
    }

    /// Indexes every line pushed; a repeated line keeps its first rank.
    pub(crate) fn index(&mut self) {
        let cap = (self.len() * 2).max(8).next_power_of_two();
        let mut slots = vec![EMPTY; cap];
        let mask = cap - 1;
        for rank in 0..self.len() as u32 {
            let line = self.line(rank);
            let h = hash_bytes(line);
            let tag = h >> 32;
            let mut i = h as usize & mask;
            loop {
                let s = slots[i];
                if s == EMPTY {
                    slots[i] = tag << 32 | u64::from(rank);
                    break;
                }
                if s >> 32 == tag && self.line(s as u32) == line {
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        self.slots = slots;
    }

    /// The rank of merging `a` with `b`, if a line says so; `key` is scratch.
    ///
    /// llama.cpp splits each line at the first space after its first byte,
    /// so `a` can only be a line's left side if it has no space after its
    /// first byte.
    pub(crate) fn rank(&self, a: &str, b: &str, key: &mut Vec<u8>) -> Option<u32> {
        if self.slots.is_empty() || a.as_bytes().iter().skip(1).any(|&c| c == b' ') {
            return None;
        }
        key.clear();
        key.extend_from_slice(a.as_bytes());
        key.push(b' ');
        key.extend_from_slice(b.as_bytes());
        let h = hash_bytes(key);
        let tag = h >> 32;
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            if s >> 32 == tag && self.line(s as u32) == key.as_slice() {
                return Some(s as u32);
            }
            i = (i + 1) & mask;
        }
    }
}

/// The BPE model: merges and the pre-tokenizer.
#[derive(Debug)]
pub(crate) struct Bpe {
    merges: Merges,
    byte_char: [char; 256],
    pre: PreTokenizer,
    ignore_merges: bool,
}

/// One symbol of a word being merged: a byte range of the word.
#[derive(Clone, Copy, Debug)]
struct Sym {
    start: u32,
    len: u32,
    prev: i32,
    next: i32,
}

/// A candidate merge: (rank, left, right, merged length); the heap pops the
/// lowest rank, then the leftmost.
type Bigram = (u32, u32, u32, u32);

/// Scratch space reused across the words of one encode call.
#[derive(Default)]
pub(crate) struct BpeScratch {
    pre: Scratch,
    words: Vec<Range<usize>>,
    syms: Vec<Sym>,
    heap: BinaryHeap<Reverse<Bigram>>,
    /// The word in GPT-2's byte characters, and where each byte's character starts.
    text: String,
    text_off: Vec<u32>,
    key: Vec<u8>,
    /// Words seen in this call → their ids' range in `cached_ids`: text
    /// repeats its words, and a word's tokens never depend on its context.
    cache: HashMap<Box<[u8]>, (u32, u32), BuildHash>,
    cached_ids: Vec<u32>,
}

/// Words a [`BpeScratch`] remembers before it starts over.
const CACHE_WORDS: usize = 1 << 16;

/// Hashes word bytes with [`hash_bytes`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BuildHash;

/// See [`BuildHash`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BytesHasher(u64);

impl BuildHasher for BuildHash {
    type Hasher = BytesHasher;
    fn build_hasher(&self) -> BytesHasher {
        BytesHasher(0)
    }
}

impl Hasher for BytesHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = self.0.rotate_left(5) ^ hash_bytes(bytes);
    }
}

impl BpeScratch {
    /// The text of bytes `start..start + len` of the current word.
    fn sym_text(&self, start: u32, len: u32) -> &str {
        let a = self.text_off.get(start as usize).copied().unwrap_or(0);
        let b = self
            .text_off
            .get((start + len) as usize)
            .copied()
            .unwrap_or(0);
        self.text.get(a as usize..b as usize).unwrap_or("")
    }
}

impl Bpe {
    /// Builds the model from indexed merges.
    pub(crate) fn new(merges: Merges, pre: PreTokenizer, ignore_merges: bool) -> Bpe {
        Bpe {
            merges,
            byte_char: byte_to_char_table(),
            pre,
            ignore_merges,
        }
    }

    /// Tokenizes one fragment of raw text (no special tokens in it).
    pub(crate) fn encode(
        &self,
        vocab: &Vocab,
        text: &str,
        s: &mut BpeScratch,
        out: &mut Vec<u32>,
    ) -> Result<()> {
        s.words.clear();
        self.pre.split(text, &mut s.pre, &mut s.words)?;
        let words = std::mem::take(&mut s.words);
        for w in &words {
            let word = &text.as_bytes()[w.clone()];
            if let Some(&(a, b)) = s.cache.get(word) {
                out.extend_from_slice(&s.cached_ids[a as usize..b as usize]);
                continue;
            }
            let start = out.len();
            self.encode_word(vocab, word, s, out);
            if s.cache.len() >= CACHE_WORDS || s.cached_ids.len() >= u32::MAX as usize / 2 {
                s.cache.clear();
                s.cached_ids.clear();
            }
            let a = s.cached_ids.len() as u32;
            s.cached_ids.extend_from_slice(&out[start..]);
            s.cache.insert(word.into(), (a, s.cached_ids.len() as u32));
        }
        s.words = words;
        Ok(())
    }

    fn add_bigram(&self, s: &mut BpeScratch, l: i32, r: i32) {
        if l < 0 || r < 0 {
            return;
        }
        let (ls, rs) = (s.syms[l as usize], s.syms[r as usize]);
        let mut key = std::mem::take(&mut s.key);
        let rank = self.merges.rank(
            s.sym_text(ls.start, ls.len),
            s.sym_text(rs.start, rs.len),
            &mut key,
        );
        s.key = key;
        if let Some(rank) = rank {
            s.heap
                .push(Reverse((rank, l as u32, r as u32, ls.len + rs.len)));
        }
    }

    fn encode_word(&self, vocab: &Vocab, word: &[u8], s: &mut BpeScratch, out: &mut Vec<u32>) {
        if word.is_empty() || word.len() >= i32::MAX as usize {
            return;
        }
        s.text.clear();
        s.text_off.clear();
        for &b in word {
            s.text_off.push(s.text.len() as u32);
            s.text.push(self.byte_char[b as usize]);
        }
        s.text_off.push(s.text.len() as u32);
        if self.ignore_merges {
            if let Some(id) = vocab.get(&s.text) {
                out.push(id);
                return;
            }
        }
        s.syms.clear();
        s.heap.clear();
        let n = word.len();
        for i in 0..n {
            s.syms.push(Sym {
                start: i as u32,
                len: 1,
                prev: i as i32 - 1,
                next: if i + 1 == n { -1 } else { i as i32 + 1 },
            });
        }
        for i in 1..n {
            self.add_bigram(s, i as i32 - 1, i as i32);
        }
        while let Some(Reverse((_, l, r, size))) = s.heap.pop() {
            let (l, r) = (l as usize, r as usize);
            let (ls, rs) = (s.syms[l], s.syms[r]);
            // Skip pairs one of whose symbols has changed since.
            if ls.len == 0 || rs.len == 0 || ls.len + rs.len != size {
                continue;
            }
            s.syms[l].len += rs.len;
            s.syms[l].next = rs.next;
            s.syms[r].len = 0;
            if rs.next >= 0 {
                s.syms[rs.next as usize].prev = l as i32;
            }
            let (prev, next) = (s.syms[l].prev, s.syms[l].next);
            self.add_bigram(s, prev, l as i32);
            self.add_bigram(s, l as i32, next);
        }
        let mut i = 0i32;
        while i >= 0 {
            let sym = s.syms[i as usize];
            i = sym.next;
            if sym.len == 0 {
                continue;
            }
            let t = s.sym_text(sym.start, sym.len);
            if let Some(id) = vocab.get(t) {
                out.push(id);
                continue;
            }
            // Not a token: llama.cpp emits each byte of the encoded text that
            // is a token by itself, and drops the rest.
            for &b in t.as_bytes() {
                if let Some(id) = vocab.get_bytes(&[b]) {
                    out.push(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_gpt2s() {
        let t = byte_to_char_table();
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[0], 'Ā');
        assert_eq!(t[0xAD], '\u{143}');
        let inv = char_to_byte_table(&t);
        for (b, c) in t.iter().enumerate() {
            assert_eq!(inv[*c as usize], b as i16);
        }
    }
}
