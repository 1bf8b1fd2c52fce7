//! Token texts in one buffer, with an open-addressing index from text to id.

/// FxHash-style hash of a byte string (fast; the vocabulary is not adversarial,
/// and lookups of user text only cost probes, never correctness).
pub(crate) fn hash_bytes(bytes: &[u8]) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut h: u64 = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rem = chunks.remainder();
    if !rem.is_empty() {
        let mut w = [0u8; 8];
        w[..rem.len()].copy_from_slice(rem);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    // Final avalanche so the low bits (the slot index) depend on every byte.
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^ (h >> 32)
}

const EMPTY: u32 = u32::MAX;

/// All token texts, concatenated, and a hash index over them.
#[derive(Debug, Default)]
pub(crate) struct Vocab {
    buf: String,
    off: Vec<u32>,
    slots: Vec<u32>,
}

impl Vocab {
    /// Builds from texts; duplicates keep their first id (reported back).
    #[cfg(test)]
    pub(crate) fn new<'s>(texts: impl ExactSizeIterator<Item = &'s str>) -> (Vocab, Vec<u32>) {
        let mut v = Vocab::with_capacity(texts.len(), 0);
        for t in texts {
            v.push(t);
        }
        let dups = v.index();
        (v, dups)
    }

    /// An empty vocabulary with room for `n` texts of `bytes` bytes in all.
    pub(crate) fn with_capacity(n: usize, bytes: usize) -> Vocab {
        let mut off = Vec::with_capacity(n + 1);
        off.push(0);
        Vocab {
            buf: String::with_capacity(bytes),
            off,
            slots: Vec::new(),
        }
    }

    /// Appends the text of the next id (not yet indexed: call [`Vocab::index`]).
    pub(crate) fn push(&mut self, text: &str) {
        self.buf.push_str(text);
        self.off
            .push(u32::try_from(self.buf.len()).unwrap_or(u32::MAX));
    }

    /// Indexes every text pushed; duplicates keep their first id and are
    /// returned.
    pub(crate) fn index(&mut self) -> Vec<u32> {
        let n = self.len();
        let cap = (n * 2).max(8).next_power_of_two();
        let mut slots = vec![EMPTY; cap];
        let mask = cap - 1;
        let mut dups = Vec::new();
        for id in 0..n as u32 {
            let text = self.text(id);
            let mut i = hash_bytes(text.as_bytes()) as usize & mask;
            loop {
                let s = slots[i];
                if s == EMPTY {
                    slots[i] = id;
                    break;
                }
                if self.text(s) == text {
                    dups.push(id);
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        self.slots = slots;
        dups
    }

    /// Number of tokens.
    pub(crate) fn len(&self) -> usize {
        self.off.len().saturating_sub(1)
    }

    /// Bytes of text in all.
    pub(crate) fn text_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The text of a token (empty for an id out of range).
    pub(crate) fn text(&self, id: u32) -> &str {
        let i = id as usize;
        match (self.off.get(i), self.off.get(i + 1)) {
            (Some(&a), Some(&b)) => self.buf.get(a as usize..b as usize).unwrap_or(""),
            _ => "",
        }
    }

    /// The id of a token text.
    pub(crate) fn get(&self, text: &str) -> Option<u32> {
        self.get_bytes(text.as_bytes())
    }

    /// The id of a token text given as bytes.
    pub(crate) fn get_bytes(&self, text: &[u8]) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = hash_bytes(text) as usize & mask;
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return None;
            }
            if self.text(s).as_bytes() == text {
                return Some(s);
            }
            i = (i + 1) & mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_roundtrip() {
        let texts: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
        let (v, dups) = Vocab::new(texts.iter().map(|s| s.as_str()));
        assert!(dups.is_empty());
        assert_eq!(v.len(), 1000);
        for (i, t) in texts.iter().enumerate() {
            assert_eq!(v.get(t), Some(i as u32));
            assert_eq!(v.text(i as u32), t);
        }
        assert_eq!(v.get("nope"), None);
        assert_eq!(v.text(5000), "");
        let (v, dups) = Vocab::new(["a", "b", "a"].into_iter());
        assert_eq!(dups, [2]);
        assert_eq!(v.get("a"), Some(0));
    }
}
