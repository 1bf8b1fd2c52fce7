//! Byte-level BPE (GPT-2 style), as llama.cpp's `llm_tokenizer_bpe_session`.
//!
//! Each pre-tokenized word starts as one symbol per byte (the byte's GPT-2
//! unicode stand-in is a token in every byte-level vocabulary); the adjacent
//! pair with the lowest merge rank (ties: leftmost) is merged until no pair
//! has a rank. Symbols carry token ids and merges are keyed by id pairs, so
//! no strings are built per merge step.

use super::pretokenize::{PreTokenizer, Scratch};
use super::vocab::Vocab;
use crate::Result;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ops::Range;

/// No token.
pub(crate) const NONE: u32 = u32::MAX;

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

/// Merge rank and result of a pair of token ids.
#[derive(Clone, Copy, Debug)]
struct Merge {
    rank: u32,
    result: u32,
}

/// The BPE model: merges and the pre-tokenizer.
#[derive(Debug)]
pub(crate) struct Bpe {
    /// `(left id << 32 | right id)` → rank and merged token.
    merges: HashMap<u64, Merge, BuildFx>,
    /// Merges whose halves are not tokens (malformed vocabularies only), by text.
    slow_merges: HashMap<(String, String), u32>,
    byte_char: [char; 256],
    byte_token: [u32; 256],
    pre: PreTokenizer,
    ignore_merges: bool,
}

/// A fast hasher for integer keys.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BuildFx;

/// See [`BuildFx`].
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FxHasher(u64);

impl std::hash::BuildHasher for BuildFx {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

impl std::hash::Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 ^= super::vocab::hash_bytes(bytes);
    }
    fn write_u64(&mut self, x: u64) {
        let h = (self.0.rotate_left(5) ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}

fn pair_key(a: u32, b: u32) -> u64 {
    (u64::from(a) << 32) | u64::from(b)
}

/// One symbol of a word being merged: a byte range of the word.
#[derive(Clone, Copy, Debug)]
struct Sym {
    start: u32,
    len: u32,
    prev: i32,
    next: i32,
    id: u32,
}

/// A candidate merge: (rank, left, right, merged length, result id); the
/// heap pops the lowest rank, then the leftmost.
type Bigram = (u32, u32, u32, u32, u32);

/// Merges from which [`Bpe::new`] resolves the vocabulary ids on two threads.
const PARALLEL_MERGES: usize = 8192;

/// One merge line resolved against the vocabulary: the key of its two ids
/// and the id of their concatenation, or, when a side is not a token, its
/// two texts (looked up by text when encoding).
enum Resolved<'m> {
    Ids(u64, u32),
    Texts(&'m str, &'m str),
}

/// Resolves merge lines, in order.
fn resolve_merges<'m>(vocab: &Vocab, merges: &[&'m str]) -> Vec<Resolved<'m>> {
    let mut cat = String::new();
    merges
        .iter()
        .map(|&m| {
            // llama.cpp splits at the first space after the first byte.
            let split = m.as_bytes().iter().skip(1).position(|&c| c == b' ');
            let (a, b) = match split {
                Some(p) => (&m[..p + 1], &m[p + 2..]),
                None => ("", ""),
            };
            match (vocab.get(a), vocab.get(b)) {
                (Some(ia), Some(ib)) => {
                    cat.clear();
                    cat.push_str(a);
                    cat.push_str(b);
                    Resolved::Ids(pair_key(ia, ib), vocab.get(&cat).unwrap_or(NONE))
                }
                _ => Resolved::Texts(a, b),
            }
        })
        .collect()
}

/// Scratch space reused across the words of one encode call.
#[derive(Default)]
pub(crate) struct BpeScratch {
    pre: Scratch,
    words: Vec<Range<usize>>,
    syms: Vec<Sym>,
    heap: BinaryHeap<Reverse<Bigram>>,
    text: String,
}

impl Bpe {
    /// Builds the model from merges ("a b" strings, rank = index).
    pub(crate) fn new(
        vocab: &Vocab,
        merges: &[&str],
        pre: PreTokenizer,
        ignore_merges: bool,
    ) -> Bpe {
        let byte_char = byte_to_char_table();
        let mut byte_token = [NONE; 256];
        let mut tmp = [0u8; 4];
        for (b, c) in byte_char.iter().enumerate() {
            byte_token[b] = vocab.get(c.encode_utf8(&mut tmp)).unwrap_or(NONE);
        }
        // Three vocabulary lookups a merge, each a cache miss or two: for a
        // real vocabulary (~50k merges) two threads share them, which takes
        // several ms off the time to first token. The table is then filled
        // in rank order, exactly as one thread would.
        let resolved = if merges.len() >= PARALLEL_MERGES {
            let (lo, hi) = merges.split_at(merges.len() / 2);
            std::thread::scope(|s| {
                let hi = s.spawn(|| resolve_merges(vocab, hi));
                let mut all = resolve_merges(vocab, lo);
                match hi.join() {
                    Ok(h) => all.extend(h),
                    Err(p) => std::panic::resume_unwind(p),
                }
                all
            })
        } else {
            resolve_merges(vocab, merges)
        };
        let mut map: HashMap<u64, Merge, BuildFx> =
            HashMap::with_capacity_and_hasher(resolved.len(), BuildFx);
        let mut slow = HashMap::new();
        for (rank, r) in resolved.into_iter().enumerate() {
            let rank = u32::try_from(rank).unwrap_or(u32::MAX);
            match r {
                Resolved::Ids(key, result) => {
                    map.entry(key).or_insert(Merge { rank, result });
                }
                Resolved::Texts(a, b) => {
                    slow.entry((a.to_string(), b.to_string())).or_insert(rank);
                }
            }
        }
        Bpe {
            merges: map,
            slow_merges: slow,
            byte_char,
            byte_token,
            pre,
            ignore_merges,
        }
    }

    /// The byte → char table.
    pub(crate) fn byte_chars(&self) -> &[char; 256] {
        &self.byte_char
    }

    fn encoded(&self, bytes: &[u8], out: &mut String) {
        out.clear();
        for &b in bytes {
            out.push(self.byte_char[b as usize]);
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
            self.encode_word(vocab, &text.as_bytes()[w.clone()], s, out);
        }
        s.words = words;
        Ok(())
    }

    fn lookup(
        &self,
        vocab: &Vocab,
        s: &BpeScratch,
        word: &[u8],
        l: usize,
        r: usize,
    ) -> Option<Merge> {
        let (a, b) = (s.syms[l], s.syms[r]);
        if a.id != NONE && b.id != NONE {
            return self.merges.get(&pair_key(a.id, b.id)).copied();
        }
        if self.slow_merges.is_empty() {
            return None;
        }
        let mut ta = String::new();
        let mut tb = String::new();
        self.encoded(&word[a.start as usize..(a.start + a.len) as usize], &mut ta);
        self.encoded(&word[b.start as usize..(b.start + b.len) as usize], &mut tb);
        let rank = *self.slow_merges.get(&(ta.clone(), tb.clone()))?;
        ta.push_str(&tb);
        Some(Merge {
            rank,
            result: vocab.get(&ta).unwrap_or(NONE),
        })
    }

    fn add_bigram(&self, vocab: &Vocab, s: &mut BpeScratch, word: &[u8], l: i32, r: i32) {
        if l < 0 || r < 0 {
            return;
        }
        let (l, r) = (l as usize, r as usize);
        if let Some(m) = self.lookup(vocab, s, word, l, r) {
            let size = s.syms[l].len + s.syms[r].len;
            s.heap
                .push(Reverse((m.rank, l as u32, r as u32, size, m.result)));
        }
    }

    fn encode_word(&self, vocab: &Vocab, word: &[u8], s: &mut BpeScratch, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        if self.ignore_merges {
            let mut t = std::mem::take(&mut s.text);
            self.encoded(word, &mut t);
            let id = vocab.get(&t);
            s.text = t;
            if let Some(id) = id {
                out.push(id);
                return;
            }
        }
        s.syms.clear();
        s.heap.clear();
        let n = word.len();
        for (i, &b) in word.iter().enumerate() {
            s.syms.push(Sym {
                start: i as u32,
                len: 1,
                prev: i as i32 - 1,
                next: if i + 1 == n { -1 } else { i as i32 + 1 },
                id: self.byte_token[b as usize],
            });
        }
        for i in 1..n {
            self.add_bigram(vocab, s, word, i as i32 - 1, i as i32);
        }
        while let Some(Reverse((_, l, r, size, result))) = s.heap.pop() {
            let (l, r) = (l as usize, r as usize);
            let (ls, rs) = (s.syms[l], s.syms[r]);
            // Skip pairs one of whose symbols has changed since.
            if ls.len == 0 || rs.len == 0 || ls.len + rs.len != size {
                continue;
            }
            s.syms[l].len += rs.len;
            s.syms[l].id = result;
            s.syms[l].next = rs.next;
            s.syms[r].len = 0;
            if rs.next >= 0 {
                s.syms[rs.next as usize].prev = l as i32;
            }
            let (prev, next) = (s.syms[l].prev, s.syms[l].next);
            self.add_bigram(vocab, s, word, prev, l as i32);
            self.add_bigram(vocab, s, word, l as i32, next);
        }
        let mut i = 0i32;
        while i >= 0 {
            let sym = s.syms[i as usize];
            i = sym.next;
            if sym.len == 0 {
                continue;
            }
            if sym.id != NONE {
                out.push(sym.id);
                continue;
            }
            // Not a token: llama.cpp emits each byte of the encoded text that
            // is a token by itself, and drops the rest.
            let mut t = std::mem::take(&mut s.text);
            self.encoded(
                &word[sym.start as usize..(sym.start + sym.len) as usize],
                &mut t,
            );
            for &b in t.as_bytes() {
                if let Some(id) = vocab.get_bytes(&[b]) {
                    out.push(id);
                }
            }
            s.text = t;
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
