//! Choosing the next token from logits, with llama.cpp's semantics.
//!
//! The chain is llama.cpp's default order: repetition penalties → top-k →
//! top-p → min-p → temperature → a seeded random draw. A temperature of zero
//! or below is greedy (the highest logit after penalties; the lowest id on
//! ties). The same seed, logits and history always give the same token.
//!
//! [`Sampler::sample`] allocates nothing: its buffers are sized to the
//! vocabulary when the sampler is built.

/// Sampling settings. The defaults are llama.cpp's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerParams {
    /// Softmax temperature; `<= 0` means greedy. Default 0.8.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 keeps all. Default 40.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p`;
    /// 1.0 keeps all. Default 0.95.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the likeliest; 0 keeps all.
    /// Default 0.05.
    pub min_p: f32,
    /// Repetition penalty for tokens in the recent history: a positive logit
    /// is divided by it, a negative one multiplied. 1.0 is off (the default).
    pub repeat_penalty: f32,
    /// How many of the latest tokens the penalties look at. Default 64.
    pub repeat_last_n: usize,
    /// Subtracted once per occurrence in the window. Default 0.
    pub frequency_penalty: f32,
    /// Subtracted once if the token occurs in the window at all. Default 0.
    pub presence_penalty: f32,
    /// Random seed.
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0x5EED,
        }
    }
}

impl SamplerParams {
    /// Greedy decoding: always the most likely token.
    pub fn greedy() -> SamplerParams {
        SamplerParams {
            temperature: 0.0,
            ..SamplerParams::default()
        }
    }
}

/// A small, fast, seedable generator (xorshift64*, seeded through SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for a seed; every seed (0 included) is fine.
    pub fn new(seed: u64) -> Rng {
        // SplitMix64 scrambles the seed so that nearby seeds diverge at once.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng {
            state: if z == 0 { 0x2545_F491_4F6C_DD1D } else { z },
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[derive(Clone, Copy, Debug)]
struct Cand {
    id: u32,
    logit: f32,
}

/// Picks tokens from logits. Build one per generation stream.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplerParams,
    n_vocab: usize,
    rng: Rng,
    cand: Vec<Cand>,
    probs: Vec<f32>,
    counts: Vec<u32>,
}

fn desc(a: &Cand, b: &Cand) -> std::cmp::Ordering {
    b.logit.total_cmp(&a.logit).then(a.id.cmp(&b.id))
}

/// The greatest non-NaN value of `x` (−∞ if none), 16 lanes at a time so
/// that it vectorizes.
fn block_max(x: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 16];
    let mut it = x.chunks_exact(16);
    for c in &mut it {
        for (mi, &v) in m.iter_mut().zip(c) {
            *mi = mi.max(v);
        }
    }
    let tail = it
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &v| a.max(v));
    m.iter().fold(tail, |a, &v| a.max(v))
}

/// The index of the greatest logit, the lowest on ties; NaN is never
/// chosen (0 if every logit is NaN or −∞). Greedy decoding's choice.
pub fn argmax(logits: &[f32]) -> usize {
    let max = block_max(logits);
    if max == f32::NEG_INFINITY {
        return 0;
    }
    // The first 16 that hold it (a branch-free test per 16), then where.
    let first = logits
        .chunks(16)
        .position(|c| c.iter().fold(false, |a, &l| a | (l == max)))
        .unwrap_or(0);
    let c = &logits[16 * first..];
    16 * first + c.iter().position(|&l| l == max).unwrap_or(0)
}

impl Sampler {
    /// A sampler for a vocabulary of `n_vocab` tokens.
    pub fn new(n_vocab: usize, params: SamplerParams) -> Sampler {
        Sampler {
            params,
            n_vocab,
            rng: Rng::new(params.seed),
            cand: Vec::with_capacity(n_vocab),
            probs: Vec::with_capacity(n_vocab),
            counts: vec![0; n_vocab],
        }
    }

    /// The settings.
    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Changes the settings; a new seed restarts the random sequence.
    pub fn set_params(&mut self, params: SamplerParams) {
        if params.seed != self.params.seed {
            self.rng = Rng::new(params.seed);
        }
        self.params = params;
    }

    /// Restarts the random sequence from a seed.
    pub fn reseed(&mut self, seed: u64) {
        self.params.seed = seed;
        self.rng = Rng::new(seed);
    }

    /// Picks the next token.
    ///
    /// `logits` has one entry per token (entries past `n_vocab` are ignored;
    /// NaN counts as impossible); `history` is the tokens so far, of which the
    /// last `repeat_last_n` are penalized. An empty `logits` gives 0.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let n = logits.len().min(self.n_vocab);
        if n == 0 {
            return 0;
        }
        let logits = &logits[..n];
        let p = self.params;
        // Without penalties the logits are the candidates' as they are, so
        // greedy and top-k read them in place (the same choice as the full
        // path below, which `fast_paths_match_the_full_path` checks).
        if !self.penalties_on() {
            if p.temperature <= 0.0 {
                return argmax(logits) as u32;
            }
            if p.top_k > 0 && p.top_k < n {
                self.top_k_of(logits, p.top_k);
                return self.sample_kept();
            }
        } else if p.temperature > 0.0 && p.top_k > 0 {
            let w = history.len().min(p.repeat_last_n);
            if p.top_k + 2 * w < n {
                self.top_k_penalized(logits, &history[history.len() - w..], p.top_k);
                return self.sample_kept();
            }
        }
        self.sample_full(logits, history)
    }

    /// Top-k with penalties on the `window`'s tokens, the logits read in
    /// place. Only a window token's logit changes. So a token outside the
    /// window that is among the `k` best after the penalties has at most
    /// `k − 1` outside tokens above it, before the penalties as after, and
    /// at most `window.len()` window tokens: it is among the `k +
    /// window.len()` best raw logits. Those are taken, the window's tokens
    /// among them dropped, every window token added back with its
    /// penalized logit (computed as [`Self::penalize`] does), and the best
    /// `k` of these kept.
    fn top_k_penalized(&mut self, logits: &[f32], window: &[u32], k: usize) {
        let n = logits.len();
        self.top_k_of(logits, k + window.len());
        for &t in window {
            if (t as usize) < n {
                self.counts[t as usize] += 1;
            }
        }
        let counts = &self.counts;
        self.cand.retain(|c| counts[c.id as usize] == 0);
        for &t in window {
            let i = t as usize;
            if i >= n || self.counts[i] == 0 {
                continue;
            }
            let l = logits[i];
            let l = if l.is_nan() { f32::NEG_INFINITY } else { l };
            self.cand.push(Cand {
                id: t,
                logit: penalized(&self.params, l, self.counts[i]),
            });
            self.counts[i] = 0;
        }
        self.keep_best(k);
        self.cand.sort_unstable_by(desc);
    }

    /// Cuts `cand` back to its `k` best (as [`desc`] orders them, not
    /// sorted) and returns the k-th best logit; `None`, leaving `cand` as
    /// it is, while fewer than `k` (or `k` is 0).
    fn keep_best(&mut self, k: usize) -> Option<f32> {
        if k == 0 || self.cand.len() < k {
            return None;
        }
        self.cand.select_nth_unstable_by(k - 1, desc);
        self.cand.truncate(k);
        Some(self.cand[k - 1].logit)
    }

    /// [`Self::sample`] over every candidate: penalties, then greedy or
    /// top-k by a partial selection of all of them.
    fn sample_full(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let p = self.params;
        self.cand.clear();
        self.cand
            .extend(logits.iter().enumerate().map(|(i, &l)| Cand {
                id: i as u32,
                logit: if l.is_nan() { f32::NEG_INFINITY } else { l },
            }));
        self.penalize(history);

        if p.temperature <= 0.0 {
            return self.argmax();
        }
        // top-k (partial selection, then a sort of the k kept).
        let need_sorted = p.top_p < 1.0 || p.min_p > 0.0;
        if p.top_k > 0 && p.top_k < self.cand.len() {
            self.keep_best(p.top_k);
            self.cand.sort_unstable_by(desc);
        } else if need_sorted {
            self.cand.sort_unstable_by(desc);
        }
        self.sample_kept()
    }

    /// Whether [`Self::penalize`] changes anything.
    fn penalties_on(&self) -> bool {
        let p = &self.params;
        p.repeat_last_n > 0
            && (p.repeat_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0)
    }

    /// The `k` best of `logits` (NaN as −∞; by logit, then lowest id) into
    /// `cand`, sorted as [`desc`] sorts them, as the full path's selection
    /// leaves them. One pass in blocks of 64 seen as 4 rows of 16 lanes:
    /// once `k` are kept, a block's lane-wise maximum (vertical, so it
    /// vectorizes) is compared with the k-th best so far, and only the
    /// lanes that reach it are looked at, so after the first blocks nearly
    /// every block costs a few vector instructions. The kept ones are cut
    /// back to `k` whenever they reach `2k`.
    fn top_k_of(&mut self, logits: &[f32], k: usize) {
        const LANES: usize = 16;
        const BLOCK: usize = 4 * LANES;
        let cap = (2 * k).max(k + BLOCK);
        self.cand.clear();
        // The k-th best so far, once `k` are kept: a logit must beat it.
        let mut floor: Option<f32> = None;
        for (b, block) in logits.chunks(BLOCK).enumerate() {
            let at = b * BLOCK;
            match floor {
                Some(f) if block.len() == BLOCK => {
                    let mut m = [f32::NEG_INFINITY; LANES];
                    for row in block.chunks_exact(LANES) {
                        for (mi, &v) in m.iter_mut().zip(row) {
                            // `f32::max` skips NaN.
                            *mi = mi.max(v);
                        }
                    }
                    if !m.iter().fold(false, |a, &v| a | (v >= f)) {
                        continue;
                    }
                    // In id order, which `offer`'s ties need.
                    for (i, &l) in block.iter().enumerate() {
                        if m[i % LANES] >= f {
                            self.offer(at + i, l, k, cap, &mut floor);
                        }
                    }
                }
                _ => {
                    for (i, &l) in block.iter().enumerate() {
                        self.offer(at + i, l, k, cap, &mut floor);
                    }
                }
            }
            if floor.is_none() {
                floor = self.keep_best(k);
            }
        }
        self.keep_best(k);
        self.cand.sort_unstable_by(desc);
    }

    /// Logit `l` of token `id` for [`Self::top_k_of`]: kept if it beats
    /// `floor`; at `cap` kept, cut back to the `k` best and `floor` raised.
    fn offer(&mut self, id: usize, l: f32, k: usize, cap: usize, floor: &mut Option<f32>) {
        if let Some(f) = *floor {
            // Later ids lose ties, so a winner is strictly above (in
            // `total_cmp`'s order, where +0 is above −0); the cheap tests
            // first.
            if l.is_nan() || l < f || l.total_cmp(&f) != std::cmp::Ordering::Greater {
                return;
            }
        }
        self.cand.push(Cand {
            id: id as u32,
            logit: if l.is_nan() { f32::NEG_INFINITY } else { l },
        });
        if self.cand.len() >= cap {
            *floor = self.keep_best(k);
        }
    }

    /// top-p, min-p, temperature and the draw over `cand` (sorted when
    /// top-p or min-p is on).
    fn sample_kept(&mut self) -> u32 {
        let p = self.params;
        // top-p: the smallest prefix whose probability reaches p.
        if p.top_p < 1.0 {
            self.softmax(1.0);
            let mut cum = 0.0f64;
            let mut keep = self.cand.len();
            for (i, &q) in self.probs.iter().enumerate() {
                cum += f64::from(q);
                if cum >= f64::from(p.top_p) {
                    keep = i + 1;
                    break;
                }
            }
            self.cand.truncate(keep.max(1));
        }
        // min-p: relative to the likeliest (the first, as they are sorted).
        if p.min_p > 0.0 && p.min_p <= 1.0 {
            let threshold = self.cand[0].logit + p.min_p.ln();
            let keep = self
                .cand
                .iter()
                .take_while(|c| c.logit >= threshold)
                .count();
            self.cand.truncate(keep.max(1));
        }
        // temperature, then a draw.
        self.softmax(p.temperature);
        let r = self.rng.next_f64();
        let mut cum = 0.0f64;
        for (c, &q) in self.cand.iter().zip(&self.probs) {
            cum += f64::from(q);
            if r < cum {
                return c.id;
            }
        }
        // Rounding: the last token with any probability.
        self.cand
            .iter()
            .zip(&self.probs)
            .rev()
            .find(|(_, &q)| q > 0.0)
            .map_or(self.cand[0].id, |(c, _)| c.id)
    }

    fn argmax(&self) -> u32 {
        let mut best = self.cand[0];
        for &c in &self.cand[1..] {
            if c.logit > best.logit {
                best = c;
            }
        }
        best.id
    }

    /// Probabilities of `cand` at a temperature, into `probs`.
    fn softmax(&mut self, temperature: f32) {
        let max = self
            .cand
            .iter()
            .map(|c| c.logit)
            .fold(f32::NEG_INFINITY, f32::max);
        self.probs.clear();
        if max == f32::NEG_INFINITY {
            // Nothing is possible: treat all as equally likely.
            let q = 1.0 / self.cand.len() as f32;
            self.probs.extend(self.cand.iter().map(|_| q));
            return;
        }
        let mut sum = 0.0f64;
        for c in &self.cand {
            let e = ((c.logit - max) / temperature).exp();
            sum += f64::from(e);
            self.probs.push(e);
        }
        let inv = (1.0 / sum) as f32;
        for q in &mut self.probs {
            *q *= inv;
        }
    }

    /// Repetition, frequency and presence penalties over the recent history.
    fn penalize(&mut self, history: &[u32]) {
        let p = self.params;
        if p.repeat_last_n == 0
            || (p.repeat_penalty == 1.0 && p.frequency_penalty == 0.0 && p.presence_penalty == 0.0)
        {
            return;
        }
        let window = &history[history.len().saturating_sub(p.repeat_last_n)..];
        let n = self.cand.len();
        for &t in window {
            if (t as usize) < n {
                self.counts[t as usize] += 1;
            }
        }
        for &t in window {
            let i = t as usize;
            if i >= n || self.counts[i] == 0 {
                continue;
            }
            let c = &mut self.cand[i];
            c.logit = penalized(&p, c.logit, self.counts[i]);
            // Penalize each token once.
            self.counts[i] = 0;
        }
    }
}

/// A logit after the penalties for a token seen `count` times in the window.
fn penalized(p: &SamplerParams, mut logit: f32, count: u32) -> f32 {
    if logit <= 0.0 {
        logit *= p.repeat_penalty;
    } else {
        logit /= p.repeat_penalty;
    }
    logit - (count as f32 * p.frequency_penalty + p.presence_penalty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        vec![0.5, 2.0, -1.0, 1.5, 3.0, 0.0, -2.0, 2.9]
    }

    #[test]
    fn greedy_is_argmax() {
        let mut s = Sampler::new(8, SamplerParams::greedy());
        assert_eq!(s.sample(&logits(), &[]), 4);
        // Ties: the lowest id.
        assert_eq!(s.sample(&[1.0, 3.0, 3.0], &[]), 1);
        // NaN is never chosen.
        assert_eq!(s.sample(&[f32::NAN, 0.0, -1.0], &[]), 1);
        assert_eq!(s.sample(&[], &[]), 0);
        // Logits past n_vocab are ignored.
        assert_eq!(
            s.sample(
                &[0.0; 8].iter().chain(&[9.0]).copied().collect::<Vec<_>>(),
                &[]
            ),
            0
        );
    }

    /// Greedy and top-k read the logits in place when no penalty is on;
    /// they must choose exactly as the full path (every candidate, then a
    /// partial selection) on logits with ties, NaN, ±0 and ±∞.
    #[test]
    fn fast_paths_match_the_full_path() {
        let mut rng = Rng::new(7);
        let special = [
            f32::NAN,
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1.0,
            -1.0,
        ];
        for case in 0..6000 {
            let n = 1 + (rng.next_u64() % 400) as usize;
            let ties = rng.next_u64() % 3;
            let logits: Vec<f32> = (0..n)
                .map(|_| {
                    let r = rng.next_u64();
                    match (ties, r % 16) {
                        (_, 0) => special[(r >> 8) as usize % special.len()],
                        (0, _) => (r >> 11) as f32 / (1u64 << 53) as f32 * 20.0 - 10.0,
                        (1, _) => ((r >> 20) % 7) as f32,
                        _ => -(((r >> 20) % 3) as f32),
                    }
                })
                .collect();
            let k_max = if case % 2 == 0 { n + 2 } else { 50 };
            let penalties = [
                (1.0, 0.0, 0.0),
                (1.1, 0.0, 0.0),
                (0.9, 0.1, 0.2),
                (1.3, -0.2, 0.5),
            ];
            let (repeat_penalty, frequency_penalty, presence_penalty) =
                penalties[(case / 18) % penalties.len()];
            let params = SamplerParams {
                temperature: [0.0, 0.8, 1.5][case % 3],
                top_k: 1 + (rng.next_u64() as usize) % k_max,
                top_p: [1.0, 0.95, 0.5][(case / 3) % 3],
                min_p: [0.0, 0.05][(case / 9) % 2],
                repeat_penalty,
                frequency_penalty,
                presence_penalty,
                repeat_last_n: [64, 8, 0][(case / 72) % 3],
                seed: case as u64,
            };
            // Histories with repeats, ids past the vocabulary, and tokens
            // among the best.
            let h = (rng.next_u64() % 80) as usize;
            let history: Vec<u32> = (0..h)
                .map(|_| (rng.next_u64() % (n as u64 + 3)) as u32)
                .collect();
            let mut fast = Sampler::new(n, params);
            let mut full = Sampler::new(n, params);
            for draw in 0..4 {
                let a = fast.sample(&logits, &history);
                let b = full.sample_full(&logits, &history);
                assert_eq!(a, b, "case {case} draw {draw}: n {n} {params:?}");
                assert!(fast.counts.iter().all(|&c| c == 0));
            }
            if params.top_k < n {
                fast.top_k_of(&logits, params.top_k);
                full.sample_full(&logits, &[]);
                full.cand.clear();
                full.cand
                    .extend(logits.iter().enumerate().map(|(i, &l)| Cand {
                        id: i as u32,
                        logit: if l.is_nan() { f32::NEG_INFINITY } else { l },
                    }));
                full.cand.sort_unstable_by(desc);
                full.cand.truncate(params.top_k);
                let ids = |c: &[Cand]| c.iter().map(|c| c.id).collect::<Vec<_>>();
                assert_eq!(
                    ids(&fast.cand),
                    ids(&full.cand),
                    "case {case}: top {}",
                    params.top_k
                );
            }
        }
    }

    #[test]
    fn top_k_one_is_greedy() {
        let params = SamplerParams {
            top_k: 1,
            temperature: 1.5,
            ..SamplerParams::default()
        };
        let mut s = Sampler::new(8, params);
        for _ in 0..50 {
            assert_eq!(s.sample(&logits(), &[]), 4);
        }
    }

    #[test]
    fn same_seed_same_choices() {
        let params = SamplerParams {
            temperature: 2.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 42,
            ..SamplerParams::default()
        };
        let run = |seed| {
            let mut s = Sampler::new(8, SamplerParams { seed, ..params });
            (0..100)
                .map(|_| s.sample(&logits(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
        // All tokens are reachable at a high temperature.
        let seen: std::collections::HashSet<u32> = run(7).into_iter().collect();
        assert!(seen.len() >= 6, "{seen:?}");
    }

    #[test]
    fn top_k_limits_choices() {
        let params = SamplerParams {
            temperature: 5.0,
            top_k: 3,
            top_p: 1.0,
            min_p: 0.0,
            ..SamplerParams::default()
        };
        let mut s = Sampler::new(8, params);
        for _ in 0..200 {
            let t = s.sample(&logits(), &[]);
            assert!([4, 7, 1].contains(&t), "{t}");
        }
    }

    #[test]
    fn top_p_keeps_smallest_prefix() {
        // probs ≈ [0.5, 0.3, 0.2]: p = 0.6 keeps two, p = 0.5 keeps one.
        let l = [0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()];
        let params = SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.6,
            min_p: 0.0,
            ..SamplerParams::default()
        };
        let mut s = Sampler::new(3, params);
        let mut seen = [0; 3];
        for _ in 0..500 {
            seen[s.sample(&l, &[]) as usize] += 1;
        }
        assert_eq!(seen[2], 0);
        assert!(seen[0] > 0 && seen[1] > 0);
        s.set_params(SamplerParams {
            top_p: 0.5,
            ..params
        });
        for _ in 0..100 {
            assert_eq!(s.sample(&l, &[]), 0);
        }
    }

    #[test]
    fn min_p_drops_unlikely() {
        // probs ≈ [0.6, 0.3, 0.1]: min_p 0.2 → threshold 0.12 drops the last.
        let l = [0.6f32.ln(), 0.3f32.ln(), 0.1f32.ln()];
        let params = SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.2,
            ..SamplerParams::default()
        };
        let mut s = Sampler::new(3, params);
        let mut seen = [0; 3];
        for _ in 0..500 {
            seen[s.sample(&l, &[]) as usize] += 1;
        }
        assert_eq!(seen[2], 0);
        assert!(seen[1] > 50);
    }

    #[test]
    fn temperature_sharpens() {
        let l = [1.0, 0.0];
        let count = |t: f32| {
            let mut s = Sampler::new(
                2,
                SamplerParams {
                    temperature: t,
                    top_k: 0,
                    top_p: 1.0,
                    min_p: 0.0,
                    seed: 1,
                    ..SamplerParams::default()
                },
            );
            (0..2000).filter(|_| s.sample(&l, &[]) == 0).count()
        };
        let (cold, warm) = (count(0.25), count(4.0));
        assert!(cold > 1900, "{cold}");
        assert!((1000..1400).contains(&warm), "{warm}");
    }

    #[test]
    fn repetition_penalty() {
        let params = SamplerParams {
            temperature: 0.0,
            repeat_penalty: 2.0,
            ..SamplerParams::default()
        };
        let mut s = Sampler::new(4, params);
        // 3.0 / 2 = 1.5 < 2.0: token 1 wins once 0 is penalized.
        assert_eq!(s.sample(&[3.0, 2.0, -1.0, -1.5], &[0]), 1);
        // Negative logits are multiplied: -1.0 * 2 = -2.0 < -1.5.
        assert_eq!(s.sample(&[-5.0, -5.0, -1.0, -1.5], &[2]), 3);
        // Only the last repeat_last_n tokens count.
        s.set_params(SamplerParams {
            repeat_last_n: 1,
            ..params
        });
        assert_eq!(s.sample(&[3.0, 2.0, -1.0, -1.5], &[0, 3]), 0);
        // Repeats in the window penalize once; ids out of range are ignored.
        assert_eq!(s.sample(&[3.0, 2.0, -1.0, -1.5], &[0, 0, 99]), 0);
    }

    #[test]
    fn no_reallocation_after_new() {
        let n = 1000;
        let mut s = Sampler::new(n, SamplerParams::default());
        let logits: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 / 100.0).collect();
        let (c, p) = (s.cand.capacity(), s.probs.capacity());
        let history: Vec<u32> = (0..100).collect();
        for _ in 0..20 {
            s.sample(&logits, &history);
        }
        assert_eq!((s.cand.capacity(), s.probs.capacity()), (c, p));
    }
}
