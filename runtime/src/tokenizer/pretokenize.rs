//! Pre-tokenization: splitting text into words before BPE, as llama.cpp does.
//!
//! llama.cpp applies a list of regexes in sequence; each one splits the pieces
//! the previous one left (a piece is never merged with its neighbours again),
//! and both the matches and the text between them become pieces. Three of its
//! regexes have hand-written implementations there (GPT-2's, Llama-3's and a
//! bare `\p{N}`), and these are emulated here exactly, quirks included. Any
//! other regex runs on a "collapsed" copy of the text, as llama.cpp runs it
//! through `std::regex`: ASCII stays itself, every other code point becomes one
//! placeholder per Unicode class, and `\p{..}` in the regex is rewritten to
//! match the placeholder plus the ASCII members of that class.

use super::unicode_data::RANGES;
use crate::{Error, Result};
use std::ops::Range;

/// Unassigned code point.
pub(crate) const UNDEFINED: u16 = 0x01;
/// `\p{N}`.
pub(crate) const NUMBER: u16 = 0x02;
/// `\p{L}`.
pub(crate) const LETTER: u16 = 0x04;
/// `\p{M}`.
pub(crate) const MARK: u16 = 0x10;
/// `\p{P}`.
pub(crate) const PUNCT: u16 = 0x20;
/// `\p{S}`.
pub(crate) const SYMBOL: u16 = 0x40;
/// Unicode `White_Space`.
pub(crate) const WHITESPACE: u16 = 0x100;
const CATEGORIES: u16 = 0xFF;

/// The Unicode `White_Space` property (as llama.cpp's tables have it).
fn is_white_space(cp: u32) -> bool {
    matches!(
        cp,
        0x09..=0x0D
            | 0x20
            | 0x85
            | 0xA0
            | 0x1680
            | 0x2000..=0x200A
            | 0x2028
            | 0x2029
            | 0x202F
            | 0x205F
            | 0x3000
    )
}

const fn ascii_classes() -> [u8; 128] {
    let mut out = [0u8; 128];
    let mut i = 0;
    while i < RANGES.len() && RANGES[i].0 < 128 {
        let end = if i + 1 < RANGES.len() && RANGES[i + 1].0 < 128 {
            RANGES[i + 1].0
        } else {
            128
        };
        let mut c = RANGES[i].0;
        while c < end {
            out[c as usize] = RANGES[i].1;
            c += 1;
        }
        i += 1;
    }
    out
}

static ASCII_CLASSES: [u8; 128] = ascii_classes();

/// The class flags of a code point: one category bit, plus [`WHITESPACE`].
pub(crate) fn flags(cp: u32) -> u16 {
    let cat = if cp < 128 {
        ASCII_CLASSES[cp as usize]
    } else if cp >= 0x11_0000 {
        UNDEFINED as u8
    } else {
        let i = RANGES.partition_point(|&(start, _)| start <= cp);
        // RANGES starts at 0, so i >= 1.
        RANGES
            .get(i.wrapping_sub(1))
            .map_or(UNDEFINED as u8, |r| r.1)
    };
    let ws = if is_white_space(cp) { WHITESPACE } else { 0 };
    u16::from(cat) | ws
}

/// One splitting step.
#[derive(Debug)]
enum Stage {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    Gpt2,
    /// Llama-3's regex (`\p{N}{1,3}` numbers, case-insensitive contractions).
    Llama3,
    /// `\p{N}`: every number on its own.
    Digits,
    /// Any other regex, run on the collapsed text (`collapsed`) or on the text
    /// with non-ASCII whitespace replaced by U+000B (`!collapsed`).
    Regex {
        re: Box<fancy_regex::Regex>,
        collapsed: bool,
    },
}

const RE_GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
const RE_LLAMA3_ORIG: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The regex lists llama.cpp uses, by pre-tokenizer family.
const DEFAULT_REGEXES: &[&str] = &[
    r"[\p{P}\$\+<=>\^~\|]+",
    RE_GPT2,
    r"\p{N}+",
    r"[0-9][0-9][0-9]",
];
const GPT2_REGEXES: &[&str] = &[RE_GPT2];
const LLAMA3_REGEXES: &[&str] = &[RE_LLAMA3];
const SMOLLM_REGEXES: &[&str] = &[r"\p{N}", RE_GPT2];
const QWEN2_REGEXES: &[&str] = &[RE_QWEN2];

/// What a `tokenizer.ggml.pre` value selects.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PreConfig {
    /// The canonical family name.
    pub family: &'static str,
    regexes: &'static [&'static str],
    /// Whole words that are tokens skip the merges (Llama-3).
    pub ignore_merges: bool,
    /// Adds BOS unless the GGUF says otherwise.
    pub add_bos: bool,
    /// Detokenizing removes spaces before punctuation.
    pub clean_spaces: bool,
}

/// Looks up a `tokenizer.ggml.pre` value; `None` when unknown.
pub(crate) fn pre_config(pre: &str) -> Option<PreConfig> {
    let c = |family, regexes, ignore_merges, add_bos, clean_spaces| PreConfig {
        family,
        regexes,
        ignore_merges,
        add_bos,
        clean_spaces,
    };
    Some(match pre {
        "" | "default" => c("default", DEFAULT_REGEXES, false, false, true),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" => c("llama3", LLAMA3_REGEXES, true, true, true),
        "dbrx" | "smaug-bpe" => c("llama3", LLAMA3_REGEXES, false, false, true),
        "gpt2" | "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
        | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais"
        | "exaone4" => c("gpt2", GPT2_REGEXES, false, false, true),
        "trillion" | "granite-docling" => c("gpt2", GPT2_REGEXES, false, false, false),
        "smollm" | "command-r" => c("smollm", SMOLLM_REGEXES, false, false, false),
        "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" => {
            c("smollm", SMOLLM_REGEXES, false, false, true)
        }
        "qwen2" | "deepseek-r1-qwen" | "hunyuan" => c("qwen2", QWEN2_REGEXES, false, false, false),
        "stablelm2" | "megrez" => c("qwen2", QWEN2_REGEXES, false, false, true),
        _ => return None,
    })
}

/// A compiled list of splitting stages.
#[derive(Debug)]
pub(crate) struct PreTokenizer {
    stages: Vec<Stage>,
}

/// Category placeholders in the collapsed text (llama.cpp uses these byte values).
const COLLAPSED_OTHER: char = '\u{D0}';
const CATEGORY_CLASSES: &[(&str, u16, char, &str)] = &[
    (r"\p{N}", NUMBER, '\u{D1}', r"0-9"),
    (r"\p{L}", LETTER, '\u{D2}', r"A-Za-z"),
    (r"\p{P}", PUNCT, '\u{D3}', r"!-#%-*,-/:-;?-@\[-\]_\{\}"),
    (r"\p{M}", MARK, '\u{D4}', ""),
    (r"\p{S}", SYMBOL, '\u{D5}', r"\$\+<->\^`\|"),
    (r"\p{Lu}", LETTER, '\u{D2}', r"A-Za-z"),
    (r"\p{Ll}", LETTER, '\u{D2}', r"A-Za-z"),
    (r"\p{Lt}", LETTER, '\u{D2}', r"A-Za-z"),
    (r"\p{Lm}", LETTER, '\u{D2}', r"A-Za-z"),
    (r"\p{Lo}", LETTER, '\u{D2}', r"A-Za-z"),
];

fn uses_categories(re: &str) -> bool {
    CATEGORY_CLASSES.iter().any(|c| re.contains(c.0))
}

/// Rewrites a regex for the collapsed text, as llama.cpp does: `\p{X}` becomes
/// `[<placeholder><ASCII members>]` (without brackets inside a class), and
/// `\d` becomes `[0-9]` (`std::regex`'s `\d` is ASCII-only).
fn collapse_regex(re: &str, categories: bool) -> String {
    let mut out = String::with_capacity(re.len() * 2);
    let mut inside = false;
    let mut prev_backslash = false;
    let mut rest = re;
    while let Some(c) = rest.chars().next() {
        if !prev_backslash {
            if c == '[' {
                inside = true;
            } else if c == ']' {
                inside = false;
            } else if c == '\\' {
                if categories {
                    if let Some(&(pat, _, ph, ascii)) =
                        CATEGORY_CLASSES.iter().find(|x| rest.starts_with(x.0))
                    {
                        if !inside {
                            out.push('[');
                        }
                        out.push_str(&format!("\\x{{{:X}}}", ph as u32));
                        out.push_str(ascii);
                        if !inside {
                            out.push(']');
                        }
                        rest = &rest[pat.len()..];
                        continue;
                    }
                }
                if rest.starts_with(r"\d") {
                    out.push_str(if inside { "0-9" } else { "[0-9]" });
                    rest = &rest[2..];
                    continue;
                }
            }
        }
        prev_backslash = c == '\\' && !prev_backslash;
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Splitting scratch space for one fragment of text.
#[derive(Default)]
pub(crate) struct Scratch {
    cpts: Vec<u32>,
    flags: Vec<u16>,
    byte_off: Vec<usize>,
    lens: Vec<usize>,
    lens_next: Vec<usize>,
    collapsed: String,
    collapsed_off: Vec<usize>,
    collapsed_kind: Option<bool>,
}

impl PreTokenizer {
    /// Compiles a pre-tokenizer configuration.
    pub(crate) fn new(cfg: &PreConfig) -> Result<PreTokenizer> {
        Self::from_regexes(cfg.regexes)
    }

    /// Compiles a list of regexes in llama.cpp's dialect.
    pub(crate) fn from_regexes(regexes: &[&str]) -> Result<PreTokenizer> {
        let mut stages = Vec::with_capacity(regexes.len());
        for &re in regexes {
            let stage = if re == RE_GPT2 {
                Stage::Gpt2
            } else if re == RE_LLAMA3 || re == RE_LLAMA3_ORIG {
                Stage::Llama3
            } else if re == r"\p{N}" {
                Stage::Digits
            } else {
                let collapsed = uses_categories(re);
                let src = collapse_regex(re, collapsed);
                let compiled = fancy_regex::RegexBuilder::new(&src)
                    .backtrack_limit(10_000_000)
                    .build()
                    .map_err(|e| {
                        Error::Tokenizer(format!("bad pre-tokenizer regex {re:?}: {e}"))
                    })?;
                Stage::Regex {
                    re: Box::new(compiled),
                    collapsed,
                }
            };
            stages.push(stage);
        }
        Ok(PreTokenizer { stages })
    }

    /// Splits `text` into words, appending their byte ranges to `out`.
    pub(crate) fn split(
        &self,
        text: &str,
        s: &mut Scratch,
        out: &mut Vec<Range<usize>>,
    ) -> Result<()> {
        s.cpts.clear();
        s.flags.clear();
        s.byte_off.clear();
        for (i, c) in text.char_indices() {
            s.cpts.push(c as u32);
            s.flags.push(flags(c as u32));
            s.byte_off.push(i);
        }
        s.byte_off.push(text.len());
        s.collapsed_kind = None;
        s.lens.clear();
        if !s.cpts.is_empty() {
            s.lens.push(s.cpts.len());
        }
        for stage in &self.stages {
            s.lens_next.clear();
            let mut lens = std::mem::take(&mut s.lens);
            let mut next = std::mem::take(&mut s.lens_next);
            let r = match stage {
                Stage::Gpt2 => {
                    split_gpt2(&s.cpts, &s.flags, &lens, &mut next);
                    Ok(())
                }
                Stage::Llama3 => {
                    split_llama3(&s.cpts, &s.flags, &lens, &mut next);
                    Ok(())
                }
                Stage::Digits => {
                    split_digits(&s.flags, &lens, &mut next);
                    Ok(())
                }
                Stage::Regex { re, collapsed } => {
                    s.ensure_collapsed(*collapsed);
                    split_regex(re, &s.collapsed, &s.collapsed_off, &lens, &mut next)
                }
            };
            lens.clear();
            s.lens = next;
            s.lens_next = lens;
            r?;
        }
        let mut pos = 0usize;
        for &len in &s.lens {
            let (a, b) = (s.byte_off[pos], s.byte_off[pos + len]);
            out.push(a..b);
            pos += len;
        }
        Ok(())
    }
}

impl Scratch {
    fn ensure_collapsed(&mut self, categories: bool) {
        if self.collapsed_kind == Some(categories) {
            return;
        }
        self.collapsed.clear();
        self.collapsed_off.clear();
        for (&cp, &f) in self.cpts.iter().zip(&self.flags) {
            self.collapsed_off.push(self.collapsed.len());
            let c = if cp < 128 {
                char::from_u32(cp).unwrap_or('\0')
            } else if f & WHITESPACE != 0 {
                '\u{0B}'
            } else if !categories {
                char::from_u32(cp).unwrap_or(COLLAPSED_OTHER)
            } else {
                let cat = f & CATEGORIES;
                CATEGORY_CLASSES[..5]
                    .iter()
                    .find(|x| x.1 == cat)
                    .map_or(COLLAPSED_OTHER, |x| x.2)
            };
            self.collapsed.push(c);
        }
        self.collapsed_off.push(self.collapsed.len());
        self.collapsed_kind = Some(categories);
    }
}

/// Emulates llama.cpp's `unicode_regex_split_stl`: matches and the gaps
/// between them all become pieces.
fn split_regex(
    re: &fancy_regex::Regex,
    text: &str,
    off: &[usize],
    lens: &[usize],
    out: &mut Vec<usize>,
) -> Result<()> {
    let mut start = 0usize;
    for &len in lens {
        let (a, b) = (off[start], off[start + len]);
        let chunk = &text[a..b];
        // Code point index of a byte offset within the chunk.
        let cp_at =
            |byte: usize| off[start..=start + len].partition_point(|&o| o < a + byte) + start;
        let mut prev = start;
        for m in re.find_iter(chunk) {
            let m = m.map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex failed: {e}")))?;
            if m.start() == m.end() {
                continue;
            }
            let (ms, me) = (cp_at(m.start()), cp_at(m.end()));
            if ms > prev {
                out.push(ms - prev);
            }
            out.push(me - ms);
            prev = me;
        }
        if start + len > prev {
            out.push(start + len - prev);
        }
        start += len;
    }
    Ok(())
}

/// `\p{N}`: each number code point alone, the runs between them as they are.
fn split_digits(flags: &[u16], lens: &[usize], out: &mut Vec<usize>) {
    let mut start = 0usize;
    for &len in lens {
        let mut run = 0usize;
        for &f in &flags[start..start + len] {
            if f & NUMBER != 0 {
                if run > 0 {
                    out.push(run);
                    run = 0;
                }
                out.push(1);
            } else {
                run += 1;
            }
        }
        if run > 0 {
            out.push(run);
        }
        start += len;
    }
}

const OUT_OF_RANGE: u32 = 0xFFFF_FFFF;

/// A view of one chunk, answering "out of range" past its ends.
struct Chunk<'a> {
    cpts: &'a [u32],
    flags: &'a [u16],
    ini: usize,
    end: usize,
    prev_end: usize,
    out: &'a mut Vec<usize>,
}

impl Chunk<'_> {
    fn cpt(&self, pos: usize) -> u32 {
        if pos >= self.ini && pos < self.end {
            self.cpts[pos]
        } else {
            OUT_OF_RANGE
        }
    }
    fn fl(&self, pos: usize) -> u16 {
        if pos >= self.ini && pos < self.end {
            self.flags[pos]
        } else {
            0
        }
    }
    fn add(&mut self, end: usize) -> usize {
        let len = end.saturating_sub(self.prev_end);
        if len > 0 {
            self.out.push(len);
        }
        self.prev_end = end;
        len
    }
}

const fn is_lnw(f: u16) -> bool {
    f & (LETTER | NUMBER | WHITESPACE) != 0
}

/// llama.cpp's `unicode_regex_split_custom_gpt2`.
fn split_gpt2(cpts: &[u32], flags: &[u16], lens: &[usize], out: &mut Vec<usize>) {
    let mut start = 0usize;
    for &len in lens {
        let (ini, end) = (start, start + len);
        start = end;
        let mut c = Chunk {
            cpts,
            flags,
            ini,
            end,
            prev_end: ini,
            out,
        };
        let mut pos = ini;
        while pos < end {
            let cpt = c.cpt(pos);
            let f = c.fl(pos);
            // 's|'t|'re|'ve|'m|'ll|'d
            if cpt == u32::from('\'') && pos + 1 < end {
                let n = c.cpt(pos + 1);
                if [b's', b't', b'm', b'd'].iter().any(|&x| n == u32::from(x)) {
                    pos += c.add(pos + 2);
                    continue;
                }
                if pos + 2 < end {
                    let nn = c.cpt(pos + 2);
                    let pair = |a: u8, b: u8| n == u32::from(a) && nn == u32::from(b);
                    if pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l') {
                        pos += c.add(pos + 3);
                        continue;
                    }
                }
            }
            let space = cpt == u32::from(' ');
            let f2 = if space { c.fl(pos + 1) } else { f };
            // <space>?\p{L}+
            if f2 & LETTER != 0 {
                pos += usize::from(space);
                while c.fl(pos) & LETTER != 0 {
                    pos += 1;
                }
                c.add(pos);
                continue;
            }
            // <space>?\p{N}+
            if f2 & NUMBER != 0 {
                pos += usize::from(space);
                while c.fl(pos) & NUMBER != 0 {
                    pos += 1;
                }
                c.add(pos);
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+
            if !is_lnw(f2) && f2 != 0 {
                pos += usize::from(space);
                loop {
                    let g = c.fl(pos);
                    if is_lnw(g) || g == 0 {
                        break;
                    }
                    pos += 1;
                }
                c.add(pos);
                continue;
            }
            let mut n_ws = 0usize;
            while c.fl(pos + n_ws) & WHITESPACE != 0 {
                n_ws += 1;
            }
            // \s+(?!\S)
            if n_ws > 1 && c.cpt(pos + n_ws) != OUT_OF_RANGE {
                pos += n_ws - 1;
                c.add(pos);
                continue;
            }
            // \s+
            if n_ws > 0 {
                pos += n_ws;
                c.add(pos);
                continue;
            }
            pos += 1;
            c.add(pos);
        }
    }
}

fn ascii_lower(c: u32) -> u32 {
    if (u32::from(b'A')..=u32::from(b'Z')).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// llama.cpp's `unicode_regex_split_custom_llama3`.
fn split_llama3(cpts: &[u32], flags: &[u16], lens: &[usize], out: &mut Vec<usize>) {
    let cr = u32::from('\r');
    let lf = u32::from('\n');
    let mut start = 0usize;
    for &len in lens {
        let (ini, end) = (start, start + len);
        start = end;
        let mut c = Chunk {
            cpts,
            flags,
            ini,
            end,
            prev_end: ini,
            out,
        };
        let mut pos = ini;
        while pos < end {
            let cpt = c.cpt(pos);
            let f = c.fl(pos);
            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if cpt == u32::from('\'') && pos + 1 < end {
                let n = ascii_lower(c.cpt(pos + 1));
                if [b's', b't', b'm', b'd'].iter().any(|&x| n == u32::from(x)) {
                    pos += c.add(pos + 2);
                    continue;
                }
                if pos + 2 < end {
                    let nn = ascii_lower(c.cpt(pos + 2));
                    let pair = |a: u8, b: u8| n == u32::from(a) && nn == u32::from(b);
                    if pair(b'r', b'e') || pair(b'v', b'e') || pair(b'l', b'l') {
                        pos += c.add(pos + 3);
                        continue;
                    }
                }
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(cpt == cr || cpt == lf || f & NUMBER != 0)
                && (f & LETTER != 0 || c.fl(pos + 1) & LETTER != 0)
            {
                pos += 1;
                while c.fl(pos) & LETTER != 0 {
                    pos += 1;
                }
                c.add(pos);
                continue;
            }
            // \p{N}{1,3}
            if f & NUMBER != 0 {
                let mut first = pos;
                while c.fl(pos) & NUMBER != 0 {
                    pos += 1;
                    if pos - first >= 3 {
                        c.add(pos);
                        first = pos;
                    }
                }
                c.add(pos);
                continue;
            }
            // <space>?[^\s\p{L}\p{N}]+[\r\n]*
            let space = cpt == u32::from(' ');
            let f2 = if space { c.fl(pos + 1) } else { f };
            if !is_lnw(f2) && f != 0 {
                pos += usize::from(space);
                loop {
                    let g = c.fl(pos);
                    if is_lnw(g) || g == 0 {
                        break;
                    }
                    pos += 1;
                }
                while c.cpt(pos) == cr || c.cpt(pos) == lf {
                    pos += 1;
                }
                c.add(pos);
                continue;
            }
            let mut n_ws = 0usize;
            let mut last_rn = 0usize;
            while c.fl(pos + n_ws) & WHITESPACE != 0 {
                let c2 = c.cpt(pos + n_ws);
                if c2 == cr || c2 == lf {
                    last_rn = pos + n_ws + 1;
                }
                n_ws += 1;
            }
            // \s*[\r\n]+
            if last_rn > 0 {
                pos = last_rn;
                c.add(pos);
                continue;
            }
            // \s+(?!\S)
            if n_ws > 1 && c.cpt(pos + n_ws) != OUT_OF_RANGE {
                pos += n_ws - 1;
                c.add(pos);
                continue;
            }
            // \s+
            if n_ws > 0 {
                pos += n_ws;
                c.add(pos);
                continue;
            }
            pos += 1;
            c.add(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(regexes: &[&str], text: &str) -> Vec<String> {
        let p = PreTokenizer::from_regexes(regexes).unwrap();
        let mut s = Scratch::default();
        let mut out = Vec::new();
        p.split(text, &mut s, &mut out).unwrap();
        out.into_iter().map(|r| text[r].to_string()).collect()
    }

    #[test]
    fn classes() {
        assert_eq!(flags('a' as u32), LETTER);
        assert_eq!(flags('7' as u32), NUMBER);
        assert_eq!(flags(' ' as u32) & WHITESPACE, WHITESPACE);
        assert_eq!(flags(0xA0) & WHITESPACE, WHITESPACE);
        assert_eq!(flags('é' as u32), LETTER);
        assert_eq!(flags('日' as u32), LETTER);
        assert_eq!(flags('²' as u32), NUMBER);
        assert_eq!(flags('😀' as u32), SYMBOL);
        assert_eq!(flags(0x0301), MARK);
        assert_eq!(flags(0x10FFFF), UNDEFINED);
        assert_eq!(flags(0x110000), UNDEFINED);
        assert!(super::super::unicode_data::UNICODE_VERSION.starts_with("15."));
    }

    #[test]
    fn gpt2_split() {
        assert_eq!(
            split(GPT2_REGEXES, "Hello  world's 123 !!  "),
            ["Hello", " ", " world", "'s", " 123", " !!", "  "]
        );
        assert_eq!(split(GPT2_REGEXES, "a\n\nb"), ["a", "\n", "\n", "b"]);
        assert_eq!(split(GPT2_REGEXES, ""), Vec::<String>::new());
    }

    #[test]
    fn smollm_digits() {
        assert_eq!(split(SMOLLM_REGEXES, "ab 12x"), ["ab", " ", "1", "2", "x"]);
    }

    #[test]
    fn llama3_split() {
        assert_eq!(
            split(LLAMA3_REGEXES, "I'M 12345 ok?\n\n  x"),
            ["I", "'M", " ", "123", "45", " ok", "?\n\n", " ", " x"]
        );
    }

    #[test]
    fn regex_path_matches_custom() {
        // The Llama-3 regex run through the generic path must agree with the
        // hand-written splitter on a variety of inputs (except the digit
        // grouping, which is the same regex).
        let generic = PreTokenizer {
            stages: vec![Stage::Regex {
                re: Box::new(fancy_regex::Regex::new(&collapse_regex(RE_LLAMA3, true)).unwrap()),
                collapsed: true,
            }],
        };
        let custom = PreTokenizer::from_regexes(LLAMA3_REGEXES).unwrap();
        for text in [
            "Hello world",
            "  leading and trailing  ",
            "I'm 12345 + 678 = \r\n\r\n tabs\tand\u{a0}nbsp",
            "日本語のテキスト😀🚀 «quotes» ¿Qué?",
            "x = [1,2,3]; y = {'a': 1}\n\n\n  ",
            "don't STOP--never—ever ''' 'S 'Ll",
        ] {
            let mut s = Scratch::default();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            generic.split(text, &mut s, &mut a).unwrap();
            custom.split(text, &mut s, &mut b).unwrap();
            assert_eq!(a, b, "{text:?}");
        }
    }

    #[test]
    fn qwen2_split() {
        assert_eq!(
            split(QWEN2_REGEXES, "I'm 123 ok?\n\n  x"),
            ["I", "'m", " ", "1", "2", "3", " ok", "?\n\n", " ", " x"]
        );
    }

    #[test]
    fn default_split() {
        assert_eq!(
            split(DEFAULT_REGEXES, "a+b=12345!"),
            ["a", "+", "b", "=", "123", "45", "!"]
        );
    }

    #[test]
    fn long_whitespace_is_fine() {
        let text = " ".repeat(100_000) + "x";
        let parts = split(QWEN2_REGEXES, &text);
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn collapse_rewrites_categories() {
        assert_eq!(collapse_regex(r"\p{N}", true), r"[\x{D1}0-9]");
        assert_eq!(collapse_regex(r"[^\s\p{L}]", true), r"[^\s\x{D2}A-Za-z]");
        assert_eq!(collapse_regex(r"\d{1,3}", false), r"[0-9]{1,3}");
    }
}
