//! The executor: runs the forward pass on a planned arena, with a small team
//! of threads that share matrix rows (in chunks each thread takes as it
//! finishes the last, so a thread the OS slows down does fewer) and
//! attention heads.
//!
//! All working memory comes from the [`Plan`]'s one arena, allocated when the
//! [`Session`] is made (or handed in by the caller). Evaluating tokens
//! allocates nothing: the threads are started once per [`Session::run`] and
//! wait for work by spinning, then parking, between operations.

use crate::model::{Model, RopeMode, Weight};
use crate::ops;
use crate::plan::{KvType, Plan, PlanConfig, Region};
use crate::{Error, GgmlType, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::Thread;

enum Storage<'m> {
    /// Anonymous memory from the OS: zero pages, touched (and counted in
    /// RSS) only as the KV cache fills; a size the OS refuses is an error.
    Owned(memmap2::MmapMut),
    /// Zeroed heap memory, where the platform has no anonymous maps (WASI).
    Heap(Vec<f32>),
    Borrowed(&'m mut [f32]),
}

impl Storage<'_> {
    fn slice(&mut self) -> &mut [f32] {
        match self {
            Storage::Owned(m) => bytemuck::cast_slice_mut(&mut m[..]),
            Storage::Heap(v) => v,
            Storage::Borrowed(s) => s,
        }
    }
}

/// A model with its KV cache and scratch: one conversation's state.
pub struct Session<'m> {
    model: &'m Model,
    plan: Plan,
    arena: Storage<'m>,
    n_past: usize,
    /// Tokens whose logits are in the logits region (1, or the last batch with `logits_all`).
    n_logits: usize,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("plan", &self.plan)
            .field("n_past", &self.n_past)
            .finish()
    }
}

impl<'m> Session<'m> {
    /// Plans a session and allocates its arena.
    pub fn new(model: &'m Model, config: PlanConfig) -> Result<Session<'m>> {
        let plan = Plan::new(model, config)?;
        // Zeroed pages come straight from the OS: nothing is touched (or
        // counted in RSS) until the KV cache fills.
        let bytes = plan.total_bytes().max(4);
        let too_big = |e: &dyn std::fmt::Display| {
            Error::Input(format!(
                "cannot allocate the {:.1} MiB this context needs ({e}); use a smaller -c",
                bytes as f64 / (1 << 20) as f64
            ))
        };
        let arena = match memmap2::MmapMut::map_anon(bytes) {
            Ok(map) => {
                // The KV cache in 2 MiB pages where the kernel gives them
                // (transparent huge pages, `madvise` mode included): a token
                // at depth 1024 reads 24 MB of it, and in 4 KiB pages its
                // attention took a third longer. The cache fills from its
                // start ([`kv_chunk_at`]), so only the pages the context
                // has reached are resident. A hint: if refused, 4 KiB
                // pages serve.
                #[cfg(target_os = "linux")]
                for r in [plan.k_cache, plan.v_cache] {
                    let _ = map.advise_range(memmap2::Advice::HugePage, r.start * 4, r.len * 4);
                }
                Storage::Owned(map)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
                let mut v = Vec::new();
                v.try_reserve_exact(plan.total_f32)
                    .map_err(|e| too_big(&e))?;
                v.resize(plan.total_f32, 0.0);
                Storage::Heap(v)
            }
            Err(e) => return Err(too_big(&e)),
        };
        Ok(Session {
            model,
            plan,
            arena,
            n_past: 0,
            n_logits: 0,
        })
    }

    /// Plans a session in memory the caller provides (firmware, a static buffer).
    /// The buffer must hold [`Plan::total_bytes`] bytes after aligning its start to 4.
    pub fn with_arena(
        model: &'m Model,
        config: PlanConfig,
        arena: &'m mut [u8],
    ) -> Result<Session<'m>> {
        let plan = Plan::new(model, config)?;
        let skip = arena.as_ptr().align_offset(4).min(arena.len());
        let usable = &mut arena[skip..];
        let n = usable.len() / 4 * 4;
        let f: &mut [f32] = bytemuck::try_cast_slice_mut(&mut usable[..n])
            .map_err(|e| Error::Input(format!("arena buffer: {e}")))?;
        if f.len() < plan.total_f32 {
            return Err(Error::Input(format!(
                "the arena buffer holds {} bytes; this plan needs {}",
                f.len() * 4,
                plan.total_bytes()
            )));
        }
        Ok(Session {
            model,
            plan,
            arena: Storage::Borrowed(&mut f[..]),
            n_past: 0,
            n_logits: 0,
        })
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// Tokens in the KV cache.
    pub fn n_past(&self) -> usize {
        self.n_past
    }

    /// Forgets everything after the first `n` tokens.
    pub fn truncate(&mut self, n: usize) {
        self.n_past = self.n_past.min(n);
        self.n_logits = 0;
    }

    /// Forgets the whole conversation.
    pub fn reset(&mut self) {
        self.truncate(0);
    }

    /// Logits of the last evaluated token (empty before any evaluation).
    pub fn logits(&mut self) -> &[f32] {
        let nv = self.model.hp.n_vocab;
        let r = self.plan.logits;
        let n = self.n_logits;
        let s = &self.arena.slice()[r.start..r.start + r.len];
        if n == 0 {
            &[]
        } else {
            &s[(n - 1) * nv..n * nv]
        }
    }

    /// Logits of every token of the last batch (`logits_all` plans), `n × n_vocab`.
    pub fn logits_all(&mut self) -> &[f32] {
        let nv = self.model.hp.n_vocab;
        let r = self.plan.logits;
        let n = self.n_logits;
        &self.arena.slice()[r.start..r.start + n * nv]
    }

    /// Evaluates `tokens` after those already in the cache (starting the
    /// threads for this call only). See [`Exec::eval`].
    pub fn eval(&mut self, tokens: &[u32]) -> Result<()> {
        self.run(|e| e.eval(tokens))
    }

    /// Starts the session's threads and runs `f` with them; use this around
    /// a whole generation so that the threads start once.
    pub fn run<R>(&mut self, f: impl FnOnce(&mut Exec<'_, '_>) -> R) -> R {
        let model = self.model;
        let plan = &self.plan;
        let n_threads = plan.config.n_threads;
        let bufs = carve(self.arena.slice(), plan);
        let Bufs {
            k_cache,
            v_cache,
            x,
            xb,
            q,
            k,
            v,
            hb,
            hb2,
            xq,
            logits,
            outs,
            trs,
            atts,
            scores,
        } = bufs;
        let shared = Shared {
            model,
            plan,
            n_threads,
            xq: RwLock::new(xq),
            q: RwLock::new(q),
            kv: RwLock::new((k_cache, v_cache)),
            outs: outs.into_iter().map(Mutex::new).collect(),
            trs: trs.into_iter().map(Mutex::new).collect(),
            atts: atts.into_iter().map(Mutex::new).collect(),
            scores: scores.into_iter().map(RwLock::new).collect(),
            job: Mutex::new(Job::Idle),
            gen: Padded::default(),
            done: Padded::default(),
            next: Padded::default(),
            chunk_at: (0..MAX_JOB_WEIGHTS * CHUNKS_PER_THREAD * n_threads)
                .map(|_| Padded::default())
                .collect(),
            sleeping: (0..n_threads).map(|_| AtomicBool::new(false)).collect(),
            has_failed: Padded::default(),
            failed: Mutex::new(None),
        };
        let n_past = &mut self.n_past;
        let n_logits = &mut self.n_logits;
        let placement = crate::sys::Placement::new(n_threads);
        std::thread::scope(|s| {
            let mut threads: Vec<Thread> = Vec::with_capacity(n_threads);
            for tid in 1..n_threads {
                let sh = &shared;
                let p = placement.as_ref();
                let h = std::thread::Builder::new()
                    .name(format!("ember-{tid}"))
                    .spawn_scoped(s, move || {
                        if let Some(p) = p {
                            p.pin(tid);
                        }
                        sh.worker(tid)
                    });
                match h {
                    Ok(h) => threads.push(h.thread().clone()),
                    Err(_) => break,
                }
            }
            if let Some(p) = &placement {
                p.pin(0);
            }
            let mut exec = Exec {
                sh: &shared,
                threads,
                x,
                xb,
                k,
                v,
                hb,
                hb2,
                logits,
                n_past,
                n_logits,
                xq_key: None,
                prefetch: None,
                profiling: false,
                profile: Profile::default(),
            };
            let r = f(&mut exec);
            exec.post(Job::Quit);
            if let Some(p) = &placement {
                p.unpin();
            }
            r
        })
    }
}

struct Bufs<'a> {
    k_cache: &'a mut [f32],
    v_cache: &'a mut [f32],
    x: &'a mut [f32],
    xb: &'a mut [f32],
    q: &'a mut [f32],
    k: &'a mut [f32],
    v: &'a mut [f32],
    hb: &'a mut [f32],
    hb2: &'a mut [f32],
    xq: &'a mut [f32],
    logits: &'a mut [f32],
    outs: Vec<&'a mut [f32]>,
    trs: Vec<&'a mut [f32]>,
    atts: Vec<&'a mut [f32]>,
    scores: Vec<&'a mut [f32]>,
}

/// Splits the arena into the plan's regions (which are in increasing order).
fn carve<'a>(arena: &'a mut [f32], plan: &Plan) -> Bufs<'a> {
    let mut rest = arena;
    let mut at = 0usize;
    let mut take = |r: Region| -> &'a mut [f32] {
        let tail = std::mem::take(&mut rest);
        let (_, tail) = tail.split_at_mut(r.start - at);
        let (mine, tail) = tail.split_at_mut(r.len);
        at = r.start + r.len;
        rest = tail;
        mine
    };
    Bufs {
        k_cache: take(plan.k_cache),
        v_cache: take(plan.v_cache),
        x: take(plan.x),
        xb: take(plan.xb),
        q: take(plan.q),
        k: take(plan.k),
        v: take(plan.v),
        hb: take(plan.hb),
        hb2: take(plan.hb2),
        xq: take(plan.xq),
        logits: take(plan.logits),
        outs: plan.thread_out.iter().map(|&r| take(r)).collect(),
        trs: plan.thread_tr.iter().map(|&r| take(r)).collect(),
        atts: plan.thread_att.iter().map(|&r| take(r)).collect(),
        scores: plan.thread_scores.iter().map(|&r| take(r)).collect(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Job {
    Idle,
    /// `n` activation rows in `xq` times the rows of up to three weights
    /// that share an activation format (q, k and v; gate and up).
    MatMul {
        ws: [Weight; 3],
        count: usize,
        n: usize,
        /// Gate and up (`count` 2, the same rows): each thread then applies
        /// SwiGLU to its own rows, into the gate's output.
        swiglu: bool,
    },
    /// Attention of `n` new tokens at positions `pos0..pos0 + n` in `layer`.
    Attn {
        layer: usize,
        n: usize,
        pos0: usize,
    },
    /// One token's attention scores at `pos0` in `layer`, threads sharing
    /// the key chunks (the first half of [`Job::Attn`] for one token).
    AttnScores {
        layer: usize,
        pos0: usize,
    },
    /// Softmax and value sums, threads sharing (KV head, 32-column block)
    /// units: after [`Job::AttnScores`], or with `own_scores` alone, each
    /// thread then computing the scores of the heads its units touch
    /// ([`own_scores_pay`]).
    AttnValues {
        layer: usize,
        pos0: usize,
        own_scores: bool,
    },
    Quit,
}

struct Shared<'a> {
    model: &'a Model,
    plan: &'a Plan,
    n_threads: usize,
    xq: RwLock<&'a mut [f32]>,
    q: RwLock<&'a mut [f32]>,
    kv: RwLock<(&'a mut [f32], &'a mut [f32])>,
    outs: Vec<Mutex<&'a mut [f32]>>,
    trs: Vec<Mutex<&'a mut [f32]>>,
    atts: Vec<Mutex<&'a mut [f32]>>,
    scores: Vec<RwLock<&'a mut [f32]>>,
    job: Mutex<Job>,
    // The counters and flags that threads write while others read them
    // each have a cache line of their own ([`Padded`]), so that a write to
    // one does not take the line from a thread reading another.
    gen: Padded<AtomicUsize>,
    done: Padded<AtomicUsize>,
    /// The next chunk of the running matmul job for a thread to take.
    next: Padded<AtomicUsize>,
    /// Where each chunk of the running matmul job was written: the thread
    /// and the offset in its output buffer ([`pack_at`]).
    chunk_at: Vec<Padded<AtomicU64>>,
    sleeping: Vec<AtomicBool>,
    /// Set with `failed`, so that checking for an error reads a flag rather
    /// than taking a lock.
    has_failed: Padded<AtomicBool>,
    failed: Mutex<Option<Error>>,
}

/// A value alone on its cache line (two 64-byte lines: some CPUs fetch
/// lines in adjacent pairs).
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// Spins this many times waiting for work before parking.
const SPIN: u32 = 200_000;
/// While spinning, yield the core this often, in case threads outnumber free cores.
const YIELD_EVERY: u32 = 2048;

/// The share `tid` of `n` items among `t` threads.
fn share(n: usize, tid: usize, t: usize) -> std::ops::Range<usize> {
    (n * tid / t)..(n * (tid + 1) / t)
}

impl Shared<'_> {
    fn worker(&self, tid: usize) {
        let mut seen = 0usize;
        loop {
            let mut spins = 0u32;
            loop {
                let g = self.gen.load(Ordering::Acquire);
                if g != seen {
                    seen = g;
                    break;
                }
                if spins < SPIN {
                    spins += 1;
                    if spins.is_multiple_of(YIELD_EVERY) {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                } else {
                    self.sleeping[tid].store(true, Ordering::SeqCst);
                    if self.gen.load(Ordering::SeqCst) == seen {
                        std::thread::park_timeout(std::time::Duration::from_millis(10));
                    }
                    self.sleeping[tid].store(false, Ordering::SeqCst);
                }
            }
            let job = *lock(&self.job);
            if let Job::Quit = job {
                return;
            }
            self.work(job, tid);
            self.done.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn fail(&self, e: Error) {
        let mut f = lock(&self.failed);
        if f.is_none() {
            *f = Some(e);
        }
        self.has_failed.store(true, Ordering::Release);
    }

    fn work(&self, job: Job, tid: usize) {
        let r = match job {
            Job::MatMul {
                ws,
                count,
                n,
                swiglu,
            } => self.matmul_chunks(&ws[..count.min(MAX_JOB_WEIGHTS)], n, swiglu, tid),
            Job::Attn { layer, n, pos0 } => self.attn_share(layer, n, pos0, tid),
            Job::AttnScores { layer, pos0 } => self.scores_share(layer, pos0, tid),
            Job::AttnValues {
                layer,
                pos0,
                own_scores,
            } => self.values_share(layer, pos0, tid, own_scores),
            Job::Idle | Job::Quit => Ok(()),
        };
        if let Err(e) = r {
            self.fail(e);
        }
    }

    /// Chunks of `W · xq` for each weight of a matmul job, taken one at a
    /// time from a shared counter until none is left, so that a thread the
    /// OS slows down (another tenant, a little core, a throttled one) does
    /// fewer. Each is written after this thread's previous one in its output
    /// buffer, and [`gather`] finds it through `chunk_at`. A row's result
    /// does not depend on the chunk or thread that computes it.
    ///
    /// With `swiglu` (gate and up, the same rows) a chunk is the same rows
    /// of both, and SwiGLU is applied to it, into the gate's rows.
    fn matmul_chunks(&self, ws: &[Weight], n: usize, swiglu: bool, tid: usize) -> Result<()> {
        let t = self.n_threads;
        let chunked = if swiglu { &ws[..1] } else { ws };
        let total: usize = chunked.iter().map(|w| n_chunks(w.rows, t)).sum();
        let per_row = if swiglu { 2 * n } else { n };
        let largest = chunked
            .iter()
            .map(|w| chunk_rows(w.rows, t).min(w.rows) * per_row)
            .max()
            .unwrap_or(0);
        let xq = read(&self.xq);
        let xq: &[u8] = bytemuck::cast_slice(&xq[..]);
        let mut out = lock(&self.outs[tid]);
        let mut tr = lock(&self.trs[tid]);
        let mut at = 0;
        loop {
            if !room(t, at, largest, out.len()) {
                return Ok(());
            }
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= total {
                return Ok(());
            }
            // Weight `wi`'s chunk `c`.
            let (mut wi, mut c) = (0, i);
            while c >= n_chunks(chunked[wi].rows, t) {
                c -= n_chunks(chunked[wi].rows, t);
                wi += 1;
            }
            let w = &chunked[wi];
            let rows = chunk(w.rows, t, c);
            let len = rows.len() * n;
            let need = if swiglu { 2 * len } else { len };
            let y = out
                .get_mut(at..at + need)
                .ok_or_else(|| Error::Input("the plan's matmul output is too small".into()))?;
            let (g, u) = y.split_at_mut(len);
            self.matmul_rows(w, rows.clone(), n, xq, g, &mut tr)?;
            if swiglu {
                self.matmul_rows(&ws[1], rows, n, xq, u, &mut tr)?;
                ops::swiglu(g, u);
            }
            self.chunk_at[i].store(pack_at(tid, at), Ordering::Relaxed);
            at += need;
        }
    }

    /// `W[rows] · xq` for `n` activation rows into `y`, `[token][row]`.
    fn matmul_rows(
        &self,
        w: &Weight,
        rows: std::ops::Range<usize>,
        n: usize,
        xq: &[u8],
        y: &mut [f32],
        tr: &mut [f32],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let vt = ember_quant::vec_dot_type(w.ty).unwrap_or(GgmlType::F32);
        let rb = vt.row_bytes(w.k as u64).unwrap_or(0) as usize;
        let x = &xq[..n * rb];
        let len = rows.len();
        let data = self.model.data(w);
        if n == 1 {
            ember_quant::gemv(w.ty, data, w.k, rows, x, y)?;
        } else {
            // The gemm writes `[row][token]`; the output is kept
            // `[token][row]`, transposed here by the thread that computed
            // it, so that `gather` only copies.
            if tr.len() < len * n {
                return Err(Error::Input(
                    "the plan's transpose buffer is too small".into(),
                ));
            }
            let (t, scratch) = tr.split_at_mut(len * n);
            ember_quant::gemm_in(w.ty, data, w.k, rows, x, n, t, scratch)?;
            transpose(t, len, n, y);
        }
        Ok(())
    }

    /// The shapes every attention job works with.
    fn attn_geom(&self) -> Result<AttnGeom> {
        let hp = &self.model.hp;
        let kv_t = self.plan.config.kv_type;
        let pb = kv_t.pos_bytes(hp.head_dim)?;
        Ok(AttnGeom {
            hd: hp.head_dim,
            nkv: hp.n_head_kv,
            group: hp.n_head / hp.n_head_kv,
            n_pad: self.plan.config.n_ctx.next_multiple_of(KV_CHUNK),
            kv_t,
            ty: kv_t.ggml(),
            pb,
            cs: hp.n_layer * hp.n_head_kv * KV_CHUNK * pb,
        })
    }

    /// Attention for this thread's share of (token, KV head) units. The
    /// query heads that share a KV head are done together, so each key and
    /// value is read and converted once per group, not once per head.
    fn attn_share(&self, layer: usize, n: usize, pos0: usize, tid: usize) -> Result<()> {
        let geom = self.attn_geom()?;
        let AttnGeom {
            hd,
            nkv,
            group,
            n_pad,
            ty,
            cs,
            ..
        } = geom;
        let qd = self.model.hp.q_dim();
        // Units (token, KV head) in chunks taken as the threads go: a later
        // token attends to more positions, and a core may be slower.
        let total = n * nkv;
        let per = attn_chunk(total, self.n_threads);
        let q = read(&self.q);
        let kv = read(&self.kv);
        let kb: &[u8] = bytemuck::cast_slice(&kv.0[..]);
        let vb: &[u8] = bytemuck::cast_slice(&kv.1[..]);
        let mut out = lock(&self.outs[tid]);
        let mut att = lock(&self.atts[tid]);
        let (probs, rest) = att.split_at_mut(group * n_pad);
        let (qg, _) = rest.split_at_mut(group * hd);
        let mut at = 0;
        loop {
            if !room(self.n_threads, at, per * group * hd, out.len()) {
                return Ok(());
            }
            let c = self.next.fetch_add(1, Ordering::Relaxed);
            if c * per >= total {
                return Ok(());
            }
            let units = c * per..((c + 1) * per).min(total);
            self.chunk_at[c].store(pack_at(tid, at), Ordering::Relaxed);
            for u in units.clone() {
                let (i, kvh) = (u / nkv, u % nkv);
                let len = pos0 + i + 1;
                // The values' first chunk comes in while the scores run.
                geom.prefetch_chunk(vb, layer, kvh, 0, false, 0..hd);
                // The group's queries (heads kvh·group ..).
                let q0 = i * qd + kvh * group * hd;
                geom.head_probabilities(layer, kvh, len, &q[q0..q0 + group * hd], kb, qg, probs)?;
                // The next unit's first key chunk comes in while these
                // values are summed: the next unit is this thread's if it
                // is in this batch of units, or if there is one thread.
                if u + 1 < units.end || (self.n_threads == 1 && u + 1 < total) {
                    geom.prefetch_chunk(kb, layer, (u + 1) % nkv, 0, true, 0..hd);
                }
                // This head's values: whole chunks up to len.
                let v = &vb[geom.chunks(layer, kvh, 0..len.div_ceil(KV_CHUNK))];
                let o = &mut out[at..at + group * hd];
                at += group * hd;
                ember_quant::attn_values(ty, hd, group, probs, n_pad, v, cs, len, o)?;
            }
        }
    }

    /// One token's scores (at `pos0`) for this thread's share of the key
    /// chunks, every KV head, into its `scores` buffer at their places.
    /// Each position's score is computed exactly as [`Self::attn_share`]
    /// computes it, whoever computes it.
    fn scores_share(&self, layer: usize, pos0: usize, tid: usize) -> Result<()> {
        let geom = self.attn_geom()?;
        let AttnGeom {
            hd,
            nkv,
            group,
            n_pad,
            ty,
            cs,
            ..
        } = geom;
        let chunks = share((pos0 + 1).div_ceil(KV_CHUNK), tid, self.n_threads);
        if chunks.is_empty() {
            return Ok(());
        }
        let q = read(&self.q);
        let kv = read(&self.kv);
        let kb: &[u8] = bytemuck::cast_slice(&kv.0[..]);
        let mut sc = write(&self.scores[tid]);
        let mut att = lock(&self.atts[tid]);
        let qg = &mut att[..group * hd];
        for kvh in 0..nkv {
            geom.load_queries(qg, &q[kvh * group * hd..(kvh + 1) * group * hd]);
            if kvh + 1 < nkv {
                geom.prefetch_chunk(kb, layer, kvh + 1, chunks.start, true, 0..hd);
            }
            let k = &kb[geom.chunks(layer, kvh, chunks.clone())];
            let o = &mut sc[kvh * group * n_pad + chunks.start * KV_CHUNK..];
            ember_quant::attn_scores(ty, hd, group, qg, k, cs, chunks.len() * KV_CHUNK, o, n_pad)?;
        }
        Ok(())
    }

    /// Softmax and value sums for this thread's share of (KV head, column
    /// block) units. A thread gets a head's scores once for its units of
    /// that head, and does its softmax: after [`Self::scores_share`] it
    /// gathers them from every thread's buffer; with `own_scores` it
    /// computes them itself, over all the head's chunks, as
    /// [`Self::attn_share`] does. The value columns are split, so each
    /// thread reads only its blocks' part of the value cache.
    fn values_share(&self, layer: usize, pos0: usize, tid: usize, own_scores: bool) -> Result<()> {
        let geom = self.attn_geom()?;
        let AttnGeom {
            hd,
            nkv,
            group,
            n_pad,
            ty,
            cs,
            ..
        } = geom;
        let len = pos0 + 1;
        let nch = len.div_ceil(KV_CHUNK);
        let sw = slab_width(hd);
        let units = share(nkv * (hd / sw), tid, self.n_threads);
        if units.is_empty() {
            return Ok(());
        }
        let kv = read(&self.kv);
        let (kb, vb): (&[u8], &[u8]) = (
            bytemuck::cast_slice(&kv.0[..]),
            bytemuck::cast_slice(&kv.1[..]),
        );
        let mut out = lock(&self.outs[tid]);
        let mut att = lock(&self.atts[tid]);
        let (probs, rest) = att.split_at_mut(group * n_pad);
        let mut have = None;
        let u0 = units.start;
        let unit = |u: usize| (u / (hd / sw), u % (hd / sw));
        for u in units.clone() {
            let (kvh, s) = unit(u);
            if u == u0 {
                // Later units' first value chunks are fetched ahead below.
                geom.prefetch_chunk(vb, layer, kvh, 0, false, s * sw..(s + 1) * sw);
            }
            if have != Some(kvh) && own_scores {
                let q = read(&self.q);
                let qg = rest.get_mut(..group * hd).ok_or_else(|| {
                    Error::Input("the plan's attention buffer is too small".into())
                })?;
                let qh = &q[kvh * group * hd..(kvh + 1) * group * hd];
                geom.head_probabilities(layer, kvh, len, qh, kb, qg, probs)?;
                have = Some(kvh);
            } else if have != Some(kvh) {
                for t in 0..self.n_threads {
                    let ch = share(nch, t, self.n_threads);
                    let (a, b) = (ch.start * KV_CHUNK, (ch.end * KV_CHUNK).min(len));
                    if a >= b {
                        continue;
                    }
                    let sc = read(&self.scores[t]);
                    for g in 0..group {
                        let row = (kvh * group + g) * n_pad;
                        probs[g * n_pad + a..g * n_pad + b].copy_from_slice(&sc[row + a..row + b]);
                    }
                }
                geom.probabilities(probs, len);
                have = Some(kvh);
            }
            // The next unit's first chunks come in while these values are
            // summed: its keys if it starts a head whose scores this thread
            // computes, and its columns of the values.
            if u + 1 < units.end {
                let (nh, ns) = unit(u + 1);
                if nh != kvh && own_scores {
                    geom.prefetch_chunk(kb, layer, nh, 0, true, 0..hd);
                }
                geom.prefetch_chunk(vb, layer, nh, 0, false, ns * sw..(ns + 1) * sw);
            }
            let v = &vb[geom.chunks(layer, kvh, 0..nch)];
            let o = &mut out[(u - u0) * group * sw..(u - u0 + 1) * group * sw];
            let cols = s * sw..(s + 1) * sw;
            ember_quant::attn_values_cols(ty, hd, group, probs, n_pad, v, cs, len, cols, o)?;
        }
        Ok(())
    }
}

/// Head and cache shapes of the attention jobs.
struct AttnGeom {
    /// Head dimension.
    hd: usize,
    /// KV heads.
    nkv: usize,
    /// Query heads per KV head.
    group: usize,
    /// Context rounded up to whole KV chunks.
    n_pad: usize,
    /// Cache type, its ggml type, and bytes per position and head.
    kv_t: KvType,
    ty: GgmlType,
    pb: usize,
    /// Bytes from one chunk of a head to its next ([`kv_chunk_at`]).
    cs: usize,
}

impl AttnGeom {
    /// The cache bytes (keys and values alike) from the start of chunk
    /// `chunks.start` of KV head `kvh` in `layer` to the end of chunk
    /// `chunks.end - 1`: the head's chunks, `cs` apart, with the other
    /// heads' chunks between them.
    fn chunks(
        &self,
        layer: usize,
        kvh: usize,
        chunks: std::ops::Range<usize>,
    ) -> std::ops::Range<usize> {
        let cb = KV_CHUNK * self.pb;
        let at = kv_chunk_at(self.cs, cb, self.nkv, layer, kvh, chunks.start);
        at..at + (chunks.len().max(1) - 1) * self.cs + cb
    }

    /// Hints chunk `c` of KV head `kvh`'s keys (`key`) or of its values'
    /// columns `cols` in `layer` into cache ahead of the kernel that reads
    /// it (`ember_quant::attn_prefetch`). The kernels fetch a head's later
    /// chunks as they go; issued while the stream before this one is read
    /// (a head's keys before its values, one head's values before the next
    /// head's keys), this keeps the reads going across the change instead
    /// of starting each stream on a miss. A hint only: an error (a bad cache
    /// type, which the kernels report) is ignored.
    fn prefetch_chunk(
        &self,
        cache: &[u8],
        layer: usize,
        kvh: usize,
        c: usize,
        key: bool,
        cols: std::ops::Range<usize>,
    ) {
        if let Some(chunk) = cache.get(self.chunks(layer, kvh, c..c + 1)) {
            let _ = ember_quant::attn_prefetch(self.ty, self.hd, chunk, key, cols);
        }
    }

    /// A group's queries copied into `qg`, rounded to the cache's precision
    /// as llama.cpp rounds them before its dot products (an F16 cache; a
    /// Q8_0 cache quantizes them in the scores kernel).
    fn load_queries(&self, qg: &mut [f32], src: &[f32]) {
        qg.copy_from_slice(src);
        if self.kv_t == KvType::F16 {
            ember_quant::round_f16(qg);
        }
    }

    /// KV head `kvh`'s probabilities over its first `len` positions in
    /// `layer`, for its group's `queries` (`[g][hd]`), into `probs` (rows
    /// `n_pad` apart): the queries rounded into `qg`, the scores over the
    /// head's whole chunks of the key cache `kb`, then
    /// [`Self::probabilities`]. One thread's attention and the split
    /// attention's own scores both take this path, which is what makes
    /// their results the same bits.
    #[allow(clippy::too_many_arguments)]
    fn head_probabilities(
        &self,
        layer: usize,
        kvh: usize,
        len: usize,
        queries: &[f32],
        kb: &[u8],
        qg: &mut [f32],
        probs: &mut [f32],
    ) -> Result<()> {
        self.load_queries(qg, queries);
        let k = &kb[self.chunks(layer, kvh, 0..len.div_ceil(KV_CHUNK))];
        let (hd, group) = (self.hd, self.group);
        ember_quant::attn_scores(self.ty, hd, group, qg, k, self.cs, len, probs, self.n_pad)?;
        self.probabilities(probs, len);
        Ok(())
    }

    /// Softmax over the first `len` scores of each of the group's rows
    /// (`n_pad` apart) in `probs`, scaled by `1/√hd`, then rounded to the
    /// cache's precision as llama.cpp rounds them before its product with
    /// the values (its Q8_0 path keeps them f32).
    fn probabilities(&self, probs: &mut [f32], len: usize) {
        let scale = 1.0 / (self.hd as f32).sqrt();
        for g in 0..self.group {
            let pg = &mut probs[g * self.n_pad..g * self.n_pad + len];
            ops::softmax(pg, scale);
            if self.kv_t == KvType::F16 {
                ember_quant::round_f16(pg);
            }
        }
    }
}

/// Columns of a value unit when threads share one token's attention: one
/// 32-column block (a cache line of F16 values, a Q8_0 block), or the whole
/// head if it is not a whole number of blocks.
fn slab_width(hd: usize) -> usize {
    if hd.is_multiple_of(32) {
        32
    } else {
        hd
    }
}

/// Whether one token's split attention ([`Job::AttnValues`]) has each
/// thread compute the scores of every KV head its value units touch, in
/// one job, rather than the threads sharing the key chunks in a job before
/// it ([`Job::AttnScores`]) and each gathering its heads' scores from all
/// their buffers. With `nkv` heads of `per_head` units each over `t`
/// threads, the first does some heads' scores twice (the thread that
/// touches the most heads, `most`, does `most` heads' against `nkv / t`),
/// the second costs a hand-off, a barrier and the gathered copies, which
/// came to more than half a head's scores: with the default model (3 KV
/// heads, 2 units each) at 2 threads at depth 1024, doing the middle head's
/// scores on both threads took the attention from 0.70–0.81 ms a token to
/// 0.60–0.68 with the Q8_0 cache and from 1.09–1.16 to 1.06–1.09 with F16
/// (docs/performance.md, "Eighth session"). So: own scores while `most`
/// exceeds `nkv / t` by half a head or less. Results are the same either
/// way.
fn own_scores_pay(nkv: usize, per_head: usize, t: usize) -> bool {
    let per_head = per_head.max(1);
    let most = (0..t)
        .map(|tid| {
            let u = share(nkv * per_head, tid, t);
            if u.is_empty() {
                0
            } else {
                (u.end - 1) / per_head - u.start / per_head + 1
            }
        })
        .max()
        .unwrap_or(0);
    2 * most * t <= 2 * nkv + t
}

/// Shortest context at which threads share one token's attention by
/// positions and columns rather than by KV head (below it the extra
/// hand-off costs more than the imbalance saves). Results are the same
/// either way.
const SPLIT_ATTN_MIN_LEN: usize = 128;

/// Positions per chunk of the KV cache's layout (`[chunk][layer][kvh]`,
/// see `kv_chunk_at`; each chunk as `ember_quant::attn` lays it out for
/// the cache type).
pub const KV_CHUNK: usize = ember_quant::KV_CHUNK;

/// A session with its threads running: evaluate tokens, read logits.
pub struct Exec<'s, 'a> {
    sh: &'s Shared<'a>,
    threads: Vec<Thread>,
    x: &'a mut [f32],
    xb: &'a mut [f32],
    k: &'a mut [f32],
    v: &'a mut [f32],
    hb: &'a mut [f32],
    hb2: &'a mut [f32],
    logits: &'a mut [f32],
    n_past: &'s mut usize,
    n_logits: &'s mut usize,
    /// What `xq` holds now: (source buffer id, activation type), to skip requantizing.
    xq_key: Option<(u8, GgmlType)>,
    /// KV cache lines to fetch ahead (layer, tokens, first position) once
    /// the next job is posted: see [`Exec::prefetch_kv`].
    prefetch: Option<(usize, usize, usize)>,
    /// Whether [`Exec::eval`] times its stages into `profile`.
    profiling: bool,
    profile: Profile,
}

/// The parts of a forward pass that a [`Profile`] times apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Embedding rows and the RoPE tables.
    Embed,
    /// Per layer: attention norm, q/k/v projections, RoPE, the cache write.
    Qkv,
    /// Per layer: scores, softmax and value sums over the cache.
    Attention,
    /// Per layer: the attention output projection and the residual.
    AttnOut,
    /// Per layer: FFN norm, gate and up projections, SwiGLU.
    FfnUp,
    /// Per layer: the down projection and the residual.
    FfnDown,
    /// Final norm and the output head.
    Output,
}

impl Stage {
    /// How many stages there are.
    pub const COUNT: usize = 7;

    /// Every stage, in the order a forward pass runs them.
    pub const ALL: [Stage; Stage::COUNT] = [
        Stage::Embed,
        Stage::Qkv,
        Stage::Attention,
        Stage::AttnOut,
        Stage::FfnUp,
        Stage::FfnDown,
        Stage::Output,
    ];

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Embed => "embed",
            Stage::Qkv => "q/k/v",
            Stage::Attention => "attention",
            Stage::AttnOut => "attn out",
            Stage::FfnUp => "ffn up",
            Stage::FfnDown => "ffn down",
            Stage::Output => "output",
        }
    }
}

/// Wall time of each [`Stage`] over the batches evaluated while profiling
/// was on ([`Exec::set_profiling`]), and their tokens. The stages follow
/// one another on the main thread, so their times add up to the batches'.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// Tokens evaluated.
    pub tokens: u64,
    /// Nanoseconds in each stage, indexed by `Stage as usize` (the order
    /// of [`Stage::ALL`]).
    pub ns: [u64; Stage::COUNT],
}

impl Profile {
    /// Milliseconds a token in `stage` (0 with no tokens).
    pub fn ms_per_token(&self, stage: Stage) -> f64 {
        if self.tokens == 0 {
            0.0
        } else {
            self.ns[stage as usize] as f64 / 1e6 / self.tokens as f64
        }
    }

    /// What was added since `earlier`, a copy taken from the same session.
    pub fn since(&self, earlier: &Profile) -> Profile {
        let mut ns = [0u64; Stage::COUNT];
        for (d, (a, b)) in ns.iter_mut().zip(self.ns.iter().zip(&earlier.ns)) {
            *d = a.saturating_sub(*b);
        }
        Profile {
            tokens: self.tokens.saturating_sub(earlier.tokens),
            ns,
        }
    }

    /// The sum of two profiles.
    pub fn add(&self, other: &Profile) -> Profile {
        let mut ns = self.ns;
        for (d, b) in ns.iter_mut().zip(&other.ns) {
            *d += b;
        }
        Profile {
            tokens: self.tokens + other.tokens,
            ns,
        }
    }
}

impl std::fmt::Debug for Exec<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exec")
            .field("n_past", &*self.n_past)
            .finish()
    }
}

/// Buffer ids for [`Exec::quantize`].
const SRC_XB: u8 = 1;
const SRC_ATT: u8 = 2;
const SRC_HB: u8 = 3;

impl Exec<'_, '_> {
    /// Tokens in the KV cache.
    pub fn n_past(&self) -> usize {
        *self.n_past
    }

    /// Turns stage timing on or off for the batches evaluated from now on
    /// (off by default; on, it reads the clock five times a layer).
    pub fn set_profiling(&mut self, on: bool) {
        self.profiling = on;
    }

    /// The stage times gathered so far (see [`Exec::set_profiling`]).
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Adds the time since `*at` to `stage` and restarts the clock, when
    /// profiling (`at` is `Some`).
    fn lap(&mut self, at: &mut Option<std::time::Instant>, stage: Stage) {
        if let Some(t) = at {
            let now = std::time::Instant::now();
            self.profile.ns[stage as usize] += (now - *t).as_nanos() as u64;
            *t = now;
        }
    }

    /// Forgets everything after the first `n` tokens.
    pub fn truncate(&mut self, n: usize) {
        *self.n_past = (*self.n_past).min(n);
        *self.n_logits = 0;
    }

    /// Logits of the last evaluated token.
    pub fn logits(&self) -> &[f32] {
        let nv = self.sh.model.hp.n_vocab;
        let n = *self.n_logits;
        if n == 0 {
            &[]
        } else {
            &self.logits[(n - 1) * nv..n * nv]
        }
    }

    /// Logits of every token of the last batch, `n × n_vocab` (all of them
    /// only with a `logits_all` plan; otherwise just the last).
    pub fn logits_all(&self) -> &[f32] {
        let nv = self.sh.model.hp.n_vocab;
        &self.logits[..*self.n_logits * nv]
    }

    fn post(&mut self, job: Job) {
        let sh = self.sh;
        *lock(&sh.job) = job;
        sh.next.store(0, Ordering::Relaxed);
        sh.done.store(0, Ordering::Release);
        sh.gen.fetch_add(1, Ordering::AcqRel);
        for (i, t) in self.threads.iter().enumerate() {
            if sh.sleeping[i + 1].load(Ordering::SeqCst) {
                t.unpark();
            }
        }
        if matches!(job, Job::Quit) {
            return;
        }
        if let Some((layer, n, pos0)) = self.prefetch.take() {
            self.prefetch_kv(layer, n, pos0);
        }
        sh.work(job, 0);
        let others = self.threads.len();
        let mut spins = 0u32;
        while sh.done.load(Ordering::Acquire) < others {
            spins += 1;
            if spins.is_multiple_of(YIELD_EVERY) {
                // Oversubscribed (more threads than free cores): let the worker run.
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    fn check_failed(&self) -> Result<()> {
        // A thread sets the flag before it counts itself done.
        if !self.sh.has_failed.load(Ordering::Acquire) {
            return Ok(());
        }
        self.sh.has_failed.store(false, Ordering::Relaxed);
        match lock(&self.sh.failed).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Quantizes `n` rows of `k` from the buffer `src` into `xq` for weights of type `ty`.
    fn quantize(&mut self, src_id: u8, n: usize, k: usize, ty: GgmlType) -> Result<()> {
        let vt = ember_quant::vec_dot_type(ty).unwrap_or(GgmlType::F32);
        if self.xq_key == Some((src_id, vt)) {
            return Ok(());
        }
        let rb = vt.row_bytes(k as u64).unwrap_or(0) as usize;
        let src: &[f32] = match src_id {
            SRC_XB | SRC_ATT => self.xb,
            _ => self.hb,
        };
        let mut xq = write(&self.sh.xq);
        let xq: &mut [u8] = bytemuck::cast_slice_mut(&mut xq[..]);
        for j in 0..n {
            ember_quant::quantize_row_act(
                vt,
                &src[j * k..(j + 1) * k],
                &mut xq[j * rb..(j + 1) * rb],
            )?;
        }
        self.xq_key = Some((src_id, vt));
        Ok(())
    }

    /// `y[j][r] = W · xq_j` for `n` rows, with the threads splitting `W`'s
    /// rows; up to three weights (sharing an activation format) in one job.
    fn matmul(&mut self, jobs: &[(Weight, Out)], n: usize) -> Result<()> {
        self.matmul_then(jobs, n, false)
    }

    /// [`Self::matmul`]; with `swiglu` (jobs gate and up, the same rows),
    /// the threads apply SwiGLU to their rows and only the gate's output,
    /// `silu(gate) · up`, is gathered.
    fn matmul_then(&mut self, jobs: &[(Weight, Out)], n: usize, swiglu: bool) -> Result<()> {
        let mut ws = [jobs[0].0; 3];
        for (slot, (w, _)) in ws.iter_mut().zip(jobs) {
            *slot = *w;
        }
        self.post(Job::MatMul {
            ws,
            count: jobs.len(),
            n,
            swiglu,
        });
        self.check_failed()?;
        let sh = self.sh;
        // The chunks are numbered weight after weight (see `matmul_chunks`).
        let mut first = 0;
        let gathered = if swiglu { &jobs[..1] } else { jobs };
        for &(w, out) in gathered {
            let at = first;
            first += n_chunks(w.rows, sh.n_threads);
            let y: &mut [f32] = match out {
                Out::Q => {
                    // Copy under the lock that attention readers use.
                    let mut q = write(&sh.q);
                    gather(sh, &w, at, n, &mut q[..]);
                    continue;
                }
                Out::K => self.k,
                Out::V => self.v,
                Out::Hb => self.hb,
                Out::Hb2 => self.hb2,
                Out::Xb => self.xb,
                Out::Logits => self.logits,
            };
            gather(sh, &w, at, n, y);
        }
        Ok(())
    }

    /// Projects the normed input `xb` (`n` rows of `k`) through weights that
    /// read it: one fused job when they share an activation format, else one
    /// job each.
    fn project(&mut self, jobs: &[(Weight, Out)], n: usize, k: usize) -> Result<()> {
        let act = |w: &Weight| ember_quant::vec_dot_type(w.ty);
        if jobs.iter().all(|(w, _)| act(w) == act(&jobs[0].0)) {
            self.quantize(SRC_XB, n, k, jobs[0].0.ty)?;
            return self.matmul(jobs, n);
        }
        for job in jobs {
            self.quantize(SRC_XB, n, k, job.0.ty)?;
            self.matmul(std::slice::from_ref(job), n)?;
        }
        Ok(())
    }

    /// `hb = silu(gate · xb) · (up · xb)` for `n` rows of `k`: one job with
    /// SwiGLU done by each thread on its rows when the two weights share an
    /// activation format and shape, else two projections and SwiGLU here.
    fn ffn_up(&mut self, gate: Weight, up: Weight, n: usize, k: usize) -> Result<()> {
        let act = |w: &Weight| ember_quant::vec_dot_type(w.ty);
        if act(&gate) == act(&up) && gate.rows == up.rows {
            self.quantize(SRC_XB, n, k, gate.ty)?;
            return self.matmul_then(&[(gate, Out::Hb), (up, Out::Hb2)], n, true);
        }
        self.project(&[(gate, Out::Hb), (up, Out::Hb2)], n, k)?;
        let ff = gate.rows;
        ops::swiglu(&mut self.hb[..n * ff], &self.hb2[..n * ff]);
        Ok(())
    }

    /// Evaluates `tokens` at the next positions of the cache. Logits of the
    /// last token (or of every token of the last batch, with a
    /// `logits_all` plan) are then in [`Exec::logits`].
    ///
    /// # Errors
    /// [`Error::Input`] for a token id out of range or a context overflow;
    /// nothing is evaluated then.
    pub fn eval(&mut self, tokens: &[u32]) -> Result<()> {
        let hp = &self.sh.model.hp;
        let cfg = self.sh.plan.config;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= hp.n_vocab) {
            return Err(Error::Input(format!(
                "token id {bad} out of range (the vocabulary has {} tokens)",
                hp.n_vocab
            )));
        }
        if *self.n_past + tokens.len() > cfg.n_ctx {
            return Err(Error::Input(format!(
                "{} tokens do not fit: {} of the context's {} are used (raise --ctx-size)",
                tokens.len(),
                *self.n_past,
                cfg.n_ctx
            )));
        }
        for chunk in tokens.chunks(cfg.n_batch) {
            self.eval_batch(chunk)?;
        }
        Ok(())
    }

    fn eval_batch(&mut self, tokens: &[u32]) -> Result<()> {
        let sh = self.sh;
        let model = sh.model;
        let hp = &model.hp;
        let cfg = sh.plan.config;
        let n = tokens.len();
        let (d, qd, kvd, ff, hd) = (hp.n_embd, hp.q_dim(), hp.kv_dim(), hp.n_ff, hp.head_dim);
        let pos0 = *self.n_past;
        *self.n_logits = 0;
        let mut at = self.profiling.then(std::time::Instant::now);

        // Embeddings.
        let e = &model.tok_embd;
        let erb = e.row_bytes();
        let edata = model.data(e);
        for (j, &t) in tokens.iter().enumerate() {
            let row = &edata[t as usize * erb..(t as usize + 1) * erb];
            ember_quant::dequantize_row(e.ty, row, &mut self.x[j * d..(j + 1) * d])?;
        }

        // RoPE's cos/sin depend on the position only: computed once for
        // every layer when the batch's fit (decode), else per layer.
        let mut rope = [0f32; 1024];
        let rd = hp.rope_dim;
        let hoisted = n * rd <= rope.len();
        if hoisted {
            for j in 0..n {
                let cs = &mut rope[j * rd..(j + 1) * rd];
                ops::rope_cache(cs, pos0 + j, rd, hp.rope_base, hp.rope_freq_scale);
            }
        }
        self.lap(&mut at, Stage::Embed);
        // How a decode token's attention is split, if it is (the same for
        // every layer).
        let own_scores = own_scores_pay(
            hp.n_head_kv,
            hp.head_dim / slab_width(hp.head_dim),
            sh.n_threads,
        );
        for (il, l) in model.layers.iter().enumerate() {
            // Attention.
            ops::rmsnorm_rows(
                &mut self.xb[..n * d],
                &self.x[..n * d],
                &l.attn_norm,
                d,
                hp.norm_eps,
            );
            self.prefetch = Some((il, n, pos0));
            self.xq_key = None;
            self.project(&[(l.wq, Out::Q), (l.wk, Out::K), (l.wv, Out::V)], n, d)?;
            {
                let mut q = write(&sh.q);
                for j in 0..n {
                    if let Some(b) = &l.bq {
                        ops::add(&mut q[j * qd..(j + 1) * qd], b);
                    }
                    if let Some(b) = &l.bk {
                        ops::add(&mut self.k[j * kvd..(j + 1) * kvd], b);
                    }
                    if let Some(b) = &l.bv {
                        ops::add(&mut self.v[j * kvd..(j + 1) * kvd], b);
                    }
                    let cs = if hoisted {
                        &mut rope[j * rd..(j + 1) * rd]
                    } else {
                        let cs = &mut rope[..rd];
                        ops::rope_cache(cs, pos0 + j, rd, hp.rope_base, hp.rope_freq_scale);
                        cs
                    };
                    let neox = hp.rope_mode == RopeMode::Neox;
                    for h in 0..hp.n_head {
                        let o = j * qd + h * hd;
                        ops::rope_apply(&mut q[o..o + hd], cs, hp.rope_dim, neox);
                    }
                    for h in 0..hp.n_head_kv {
                        let o = j * kvd + h * hd;
                        ops::rope_apply(&mut self.k[o..o + hd], cs, hp.rope_dim, neox);
                    }
                }
            }
            self.store_kv(il, n, pos0)?;
            self.lap(&mut at, Stage::Qkv);
            if n == 1 && sh.n_threads > 1 && pos0 + 1 >= SPLIT_ATTN_MIN_LEN {
                if !own_scores {
                    self.post(Job::AttnScores { layer: il, pos0 });
                    self.check_failed()?;
                }
                self.post(Job::AttnValues {
                    layer: il,
                    pos0,
                    own_scores,
                });
                self.check_failed()?;
                gather_attn_split(sh, &mut self.xb[..qd]);
            } else {
                self.post(Job::Attn { layer: il, n, pos0 });
                self.check_failed()?;
                gather_attn(sh, n, &mut self.xb[..n * qd]);
            }
            self.lap(&mut at, Stage::Attention);
            self.xq_key = None;
            self.quantize(SRC_ATT, n, qd, l.wo.ty)?;
            self.matmul(&[(l.wo, Out::Hb)], n)?;
            for j in 0..n {
                let y = &mut self.hb[j * d..(j + 1) * d];
                if let Some(b) = &l.bo {
                    ops::add(y, b);
                }
                ops::add(&mut self.x[j * d..(j + 1) * d], y);
            }
            self.lap(&mut at, Stage::AttnOut);

            // Feed-forward.
            ops::rmsnorm_rows(
                &mut self.xb[..n * d],
                &self.x[..n * d],
                &l.ffn_norm,
                d,
                hp.norm_eps,
            );
            self.xq_key = None;
            self.ffn_up(l.w_gate, l.w_up, n, d)?;
            self.lap(&mut at, Stage::FfnUp);
            self.xq_key = None;
            self.quantize(SRC_HB, n, ff, l.w_down.ty)?;
            self.matmul(&[(l.w_down, Out::Xb)], n)?;
            for j in 0..n {
                ops::add(
                    &mut self.x[j * d..(j + 1) * d],
                    &self.xb[j * d..(j + 1) * d],
                );
            }
            self.lap(&mut at, Stage::FfnDown);
        }

        // Output head: every token's logits, or the last one's.
        let first = if cfg.logits_all { 0 } else { n - 1 };
        let m = n - first;
        ops::rmsnorm_rows(
            &mut self.xb[..m * d],
            &self.x[first * d..n * d],
            &model.output_norm,
            d,
            hp.norm_eps,
        );
        self.xq_key = None;
        self.quantize(SRC_XB, m, d, model.output.ty)?;
        self.matmul(&[(model.output, Out::Logits)], m)?;
        *self.n_logits = m;
        *self.n_past = pos0 + n;
        self.lap(&mut at, Stage::Output);
        if at.is_some() {
            self.profile.tokens += n as u64;
        }
        Ok(())
    }

    /// Writes the batch's keys and values into the cache at `pos0..pos0 + n`.
    fn store_kv(&mut self, layer: usize, n: usize, pos0: usize) -> Result<()> {
        let sh = self.sh;
        let hp = &sh.model.hp;
        let (hd, kvd) = (hp.head_dim, hp.kv_dim());
        let geom = sh.attn_geom()?;
        let ty = geom.ty;
        let mut kv = write(&sh.kv);
        let (kc, vc) = &mut *kv;
        let kc: &mut [u8] = bytemuck::cast_slice_mut(&mut kc[..]);
        let vc: &mut [u8] = bytemuck::cast_slice_mut(&mut vc[..]);
        for j in 0..n {
            let pos = pos0 + j;
            for h in 0..hp.n_head_kv {
                let c = pos / KV_CHUNK;
                let span = geom.chunks(layer, h, c..c + 1);
                let (kchunk, vchunk) = (&mut kc[span.clone()], &mut vc[span]);
                // A new chunk starts clean, so that the keys past the end
                // (scored, then ignored) never hold stale values.
                if pos.is_multiple_of(KV_CHUNK) {
                    kchunk.fill(0);
                }
                let src = j * kvd + h * hd..j * kvd + (h + 1) * hd;
                ember_quant::kv_write_key(ty, hd, kchunk, pos % KV_CHUNK, &self.k[src.clone()])?;
                ember_quant::kv_write_value(ty, hd, vchunk, pos % KV_CHUNK, &self.v[src])?;
            }
        }
        Ok(())
    }

    /// Fetches ahead the cache lines that [`Self::store_kv`] will write
    /// for a decode token (`ember_quant::kv_prefetch`). A key of 64 F16
    /// dims is 64 lines, which miss in turn when written (a whole model's
    /// weights have passed through the caches since the chunk was read).
    /// Issued by the main thread once the q, k, v matmul is posted, the
    /// misses overlap that matmul, and the other threads take the chunks
    /// the main thread has no time for. The layer's first key chunk comes
    /// in then too, so that its attention starts on a hit. A hint only;
    /// only for a few tokens, as a prompt's batch writes whole chunks; an
    /// error here (a bad cache type) is left for `store_kv` to report.
    fn prefetch_kv(&self, layer: usize, n: usize, pos0: usize) {
        const MAX_TOKENS: usize = 4;
        if n > MAX_TOKENS {
            return;
        }
        let sh = self.sh;
        let Ok(geom) = sh.attn_geom() else {
            return;
        };
        let kv = read(&sh.kv);
        let kc: &[u8] = bytemuck::cast_slice(&kv.0[..]);
        let vc: &[u8] = bytemuck::cast_slice(&kv.1[..]);
        for pos in pos0..pos0 + n {
            for h in 0..geom.nkv {
                let c = pos / KV_CHUNK;
                let span = geom.chunks(layer, h, c..c + 1);
                let (Some(k), Some(v)) = (kc.get(span.clone()), vc.get(span)) else {
                    return;
                };
                if ember_quant::kv_prefetch(geom.ty, geom.hd, k, v, pos % KV_CHUNK).is_err() {
                    return;
                }
            }
        }
        // Then the first key chunk of the layer's first head, which its
        // attention reads first (`AttnGeom::prefetch_chunk`).
        geom.prefetch_chunk(kc, layer, 0, 0, true, 0..geom.hd);
    }
}

/// Where chunk `c` (positions `64c..64c + 64`) of KV head `h` in `layer`
/// starts in the key (or value) cache, laid out `[chunk][layer][head]`:
/// all layers' and heads' chunk 0, then all their chunk 1, and so on
/// (`cs` bytes a chunk row, `cb` a chunk). The cache fills from its start
/// as the context grows, so a cache in 2 MiB pages
/// ([`crate::sys`]'s huge-page advice) is resident only as far as the
/// context reaches, and each head's next chunk is `cs` bytes on.
fn kv_chunk_at(cs: usize, cb: usize, nkv: usize, layer: usize, h: usize, c: usize) -> usize {
    c * cs + (layer * nkv + h) * cb
}

#[derive(Clone, Copy)]
enum Out {
    Q,
    K,
    V,
    Hb,
    Hb2,
    Xb,
    Logits,
}

/// Most threads [`gather`] tracks offsets for (the plan caps threads at this).
pub const MAX_THREADS_GATHER: usize = 256;

/// Most weights in one matmul job (q, k and v).
const MAX_JOB_WEIGHTS: usize = 3;
/// Chunks of each weight per thread, about: enough that a thread the OS
/// slows down hands its rows to the others, few enough that a chunk is
/// still whole gemm tiles.
const CHUNKS_PER_THREAD: usize = 4;
/// Chunk rows are multiples of this (the gemm tiles' rows).
const CHUNK_ALIGN: usize = 32;

/// Rows per chunk when `t` threads share a weight of `rows` rows: all of
/// them for one thread.
pub(crate) fn chunk_rows(rows: usize, t: usize) -> usize {
    if t <= 1 {
        rows.max(1)
    } else {
        rows.div_ceil(t * CHUNKS_PER_THREAD)
            .next_multiple_of(CHUNK_ALIGN)
            .max(CHUNK_ALIGN)
    }
}

/// Chunks of a weight of `rows` rows (at most `CHUNKS_PER_THREAD × t`).
fn n_chunks(rows: usize, t: usize) -> usize {
    rows.div_ceil(chunk_rows(rows, t))
}

/// The rows of chunk `c`.
fn chunk(rows: usize, t: usize, c: usize) -> std::ops::Range<usize> {
    let cr = chunk_rows(rows, t);
    (c * cr).min(rows)..((c + 1) * cr).min(rows)
}

/// Attention units per chunk when `t` threads share `total` (at most
/// `CHUNKS_PER_THREAD × t` chunks).
pub(crate) fn attn_chunk(total: usize, t: usize) -> usize {
    total.div_ceil(t * CHUNKS_PER_THREAD).max(1)
}

/// The shapes that size a thread's output buffer.
pub(crate) struct JobShapes {
    /// Threads.
    pub t: usize,
    /// Tokens per batch, and rows of logits per batch.
    pub n_batch: usize,
    pub n_logits: usize,
    /// Rows of q, k (and v), the FFN's gate (and up), the model, the vocabulary.
    pub qd: usize,
    pub kvd: usize,
    pub ff: usize,
    pub d: usize,
    pub nv: usize,
    /// KV heads, and floats of one attention unit (a KV head's group of heads).
    pub nkv: usize,
    pub unit: usize,
}

/// Floats of output buffer each thread needs for the matmul and attention
/// jobs. The threads take chunks as they go, and one stops when another
/// might not fit ([`room`]): with room for its share of any job plus that
/// job's largest chunk, the threads cannot all stop while chunks are left.
/// One thread does a whole job.
pub(crate) fn thread_out_len(s: &JobShapes) -> usize {
    let t = s.t;
    let chunk = |rows: usize| chunk_rows(rows, t).min(rows);
    let room = |job: usize, largest: usize| {
        if t == 1 {
            job
        } else {
            job.div_ceil(t) + largest
        }
    };
    // Fused jobs: q, k and v together; gate and up together (SwiGLU: a
    // chunk holds both).
    let inner_rows = (s.qd + 2 * s.kvd).max(2 * s.ff).max(s.d);
    let largest = chunk(s.qd)
        .max(chunk(s.kvd))
        .max(chunk(s.d))
        .max(2 * chunk(s.ff));
    let matmul = room(inner_rows * s.n_batch, largest * s.n_batch);
    let head = room(s.nv * s.n_logits, chunk(s.nv) * s.n_logits);
    let units = attn_chunk(s.n_batch * s.nkv, t);
    let attn = room(s.n_batch * s.nkv * s.unit, units * s.unit);
    matmul.max(head).max(attn)
}

/// Whether a thread whose output buffer of `cap` floats is filled to `at`
/// may take another chunk of at most `largest` floats. The plan gives each
/// thread room for its share of any job plus its largest chunk, so if every
/// thread stopped here they would together have written more than the
/// whole job: chunks are never left over. One thread always has room.
fn room(t: usize, at: usize, largest: usize, cap: usize) -> bool {
    t == 1 || at + largest <= cap
}

fn pack_at(tid: usize, at: usize) -> u64 {
    ((tid as u64) << 40) | at as u64
}

fn unpack_at(x: u64) -> (usize, usize) {
    ((x >> 40) as usize, (x & ((1 << 40) - 1)) as usize)
}

/// Copies the threads' matmul outputs (`[token][row]` for each thread's
/// rows, at offset `at[tid]` in its buffer) into `y` (`n × rows`). Each
/// thread's buffer is locked once, and its chunks copied in order.
fn gather(sh: &Shared<'_>, w: &Weight, first: usize, n: usize, y: &mut [f32]) {
    let t = sh.n_threads;
    each_chunk(sh, first, n_chunks(w.rows, t), |out, c, at| {
        let rows = chunk(w.rows, t, c);
        let len = rows.len();
        let Some(o) = out.get(at..at + len * n) else {
            return;
        };
        // `[token][row]` (see `Shared::matmul_rows`): one copy per token.
        for (j, src) in o.chunks_exact(len.max(1)).enumerate() {
            let at = j * w.rows + rows.start;
            y[at..at + len].copy_from_slice(src);
        }
    });
}

/// `f(buffer, c, at)` for each of the `count` chunks whose slots start at
/// `chunk_at[first]`: chunk `c` was written at `at` in `buffer`, the output
/// buffer of the thread that took it. Each thread's buffer is locked once.
fn each_chunk(
    sh: &Shared<'_>,
    first: usize,
    count: usize,
    mut f: impl FnMut(&[f32], usize, usize),
) {
    for (tid, out) in sh.outs.iter().enumerate() {
        let out = lock(out);
        for c in 0..count {
            let Some(slot) = sh.chunk_at.get(first + c) else {
                return;
            };
            let (ct, at) = unpack_at(slot.load(Ordering::Relaxed));
            if ct == tid {
                f(&out, c, at);
            }
        }
    }
}

/// `dst[j * rows + r] = src[r * cols + j]`: a `rows × cols` matrix
/// transposed, in tiles so that the strided side stays in cache.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const TILE: usize = 16;
    for r0 in (0..rows).step_by(TILE) {
        let r1 = (r0 + TILE).min(rows);
        for j in 0..cols {
            let d = &mut dst[j * rows + r0..j * rows + r1];
            for (ri, x) in (r0..r1).zip(d.iter_mut()) {
                *x = src[ri * cols + j];
            }
        }
    }
}

/// Copies the threads' outputs of [`Job::AttnValues`] ((KV head, column
/// block) units, `[group][width]` each) into one token's `att` (`q_dim`).
fn gather_attn_split(sh: &Shared<'_>, att: &mut [f32]) {
    let hp = &sh.model.hp;
    let (hd, nkv) = (hp.head_dim, hp.n_head_kv);
    let group = hp.n_head / nkv;
    let sw = slab_width(hd);
    for tid in 0..sh.n_threads {
        let units = share(nkv * (hd / sw), tid, sh.n_threads);
        let out = lock(&sh.outs[tid]);
        for (i, u) in units.enumerate() {
            let (kvh, s) = (u / (hd / sw), u % (hd / sw));
            for g in 0..group {
                let src = &out[(i * group + g) * sw..(i * group + g + 1) * sw];
                let at = (kvh * group + g) * hd + s * sw;
                att[at..at + sw].copy_from_slice(src);
            }
        }
    }
}

/// Copies the threads' attention outputs ((token, head) pairs) into `att` (`n × q_dim`).
fn gather_attn(sh: &Shared<'_>, n: usize, att: &mut [f32]) {
    let hp = &sh.model.hp;
    // A unit is (token, KV head): its group's heads, contiguous in `att`.
    let width = hp.head_dim * (hp.n_head / hp.n_head_kv);
    let total = n * hp.n_head_kv;
    let per = attn_chunk(total, sh.n_threads);
    each_chunk(sh, 0, total.div_ceil(per), |out, c, at| {
        let units = c * per..((c + 1) * per).min(total);
        let len = units.len() * width;
        if let Some(o) = out.get(at..at + len) {
            att[units.start * width..units.start * width + len].copy_from_slice(o);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Own scores where no thread touches more than half a head beyond its
    /// share of the heads; the shared score job where one would do a whole
    /// head more (the default model at 4 threads).
    #[test]
    fn own_scores_where_the_extra_is_half_a_head_at_most() {
        // The default model: 3 KV heads of 64 dims, two 32-column units each.
        assert!(own_scores_pay(3, 2, 2)); // 1.5 heads a thread; one does 2
        assert!(own_scores_pay(3, 2, 3)); // a head each
        assert!(!own_scores_pay(3, 2, 4)); // one thread touches 2 of 0.75
        assert!(own_scores_pay(3, 2, 6)); // a unit each: 1 head of 0.5

        // 8 KV heads of 128 dims (4 units each): whole heads where the
        // threads divide them; at 3 threads one touches 4 heads of 2.67.
        for t in [2, 4, 8, 16] {
            assert!(own_scores_pay(8, 4, t), "{t} threads");
        }
        for t in [3, 5, 12] {
            assert!(!own_scores_pay(8, 4, t), "{t} threads");
        }
        // One unit a head (a head dim that is no multiple of 32).
        assert!(own_scores_pay(3, 1, 2) && own_scores_pay(3, 1, 3));
        assert!(own_scores_pay(1, 2, 1));
    }

    /// Takes chunks of `sizes` floats as [`Shared::matmul_chunks`] does:
    /// thread after thread, each as many as [`room`] lets it (the others
    /// not running yet), or in turns. Every chunk is taken and fits.
    fn take_all(sizes: &[usize], largest: usize, t: usize, cap: usize) {
        for greedy in [true, false] {
            let mut at = vec![0usize; t];
            let mut next = 0;
            let mut stuck = false;
            while next < sizes.len() && !stuck {
                stuck = true;
                for a in at.iter_mut() {
                    while next < sizes.len() && room(t, *a, largest, cap) {
                        *a += sizes[next];
                        assert!(*a <= cap, "a chunk overflows: {a} > {cap}");
                        next += 1;
                        stuck = false;
                        if !greedy {
                            break;
                        }
                    }
                }
            }
            assert_eq!(next, sizes.len(), "chunks left over (t {t}, cap {cap})");
        }
    }

    #[test]
    fn chunks_are_never_left_over() {
        // SmolLM2-135M, a Llama-3-8B-like shape, a tiny one.
        let shapes = [
            (576, 192, 1536, 576, 49152, 3, 3 * 64),
            (4096, 1024, 14336, 4096, 128_256, 8, 4 * 128),
            (64, 64, 172, 64, 100, 1, 64),
        ];
        for (qd, kvd, ff, d, nv, nkv, unit) in shapes {
            for t in 1..=8 {
                for n_batch in [1, 7, 64] {
                    for n_logits in [1, n_batch] {
                        let s = JobShapes {
                            t,
                            n_batch,
                            n_logits,
                            qd,
                            kvd,
                            ff,
                            d,
                            nv,
                            nkv,
                            unit,
                        };
                        let cap = thread_out_len(&s);
                        for n in [1, n_batch.div_ceil(2), n_batch] {
                            let matmul = |rows: &[usize], n: usize, swiglu: bool| {
                                let per_row = if swiglu { 2 * n } else { n };
                                let sizes: Vec<usize> = rows
                                    .iter()
                                    .flat_map(|&r| {
                                        (0..n_chunks(r, t))
                                            .map(move |c| chunk(r, t, c).len() * per_row)
                                    })
                                    .collect();
                                let largest = rows
                                    .iter()
                                    .map(|&r| chunk_rows(r, t).min(r) * per_row)
                                    .max()
                                    .unwrap_or(0);
                                take_all(&sizes, largest, t, cap);
                            };
                            matmul(&[qd, kvd, kvd], n, false);
                            matmul(&[ff], n, true);
                            matmul(&[d], n, false);
                            matmul(&[nv], n.min(n_logits), false);
                            let total = n * nkv;
                            let per = attn_chunk(total, t);
                            let sizes: Vec<usize> = (0..total.div_ceil(per))
                                .map(|c| (((c + 1) * per).min(total) - c * per) * unit)
                                .collect();
                            take_all(&sizes, per * unit, t, cap);
                        }
                    }
                }
            }
        }
    }
}
