//! The memory plan: every byte of working memory a session needs, computed
//! once from the hyperparameters, the context size and the batch size, and
//! laid out in one arena.

use crate::model::{Model, Weight};
use crate::{Error, GgmlType, Result};
use serde::Serialize;

/// Element type of the KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum KvType {
    /// Half precision (llama.cpp's default).
    F16,
    /// Single precision.
    F32,
    /// 8-bit blocks of 32 with a scale (llama.cpp's `-ctk q8_0 -ctv q8_0`):
    /// 0.56× the bytes of F16, so long contexts read less and fit in less
    /// memory. Heads must be a multiple of 32 wide.
    Q8_0,
}

impl KvType {
    /// The ggml type of the cache's elements.
    pub fn ggml(self) -> GgmlType {
        match self {
            KvType::F16 => GgmlType::F16,
            KvType::F32 => GgmlType::F32,
            KvType::Q8_0 => GgmlType::Q8_0,
        }
    }

    /// Bytes one position of one head of `head_dim` takes in the cache.
    pub fn pos_bytes(self, head_dim: usize) -> Result<usize> {
        ember_quant::kv_pos_bytes(self.ggml(), head_dim).map_err(|e| {
            Error::Input(format!(
                "a {} KV cache cannot hold this model's heads ({head_dim} wide): {e}",
                self.name()
            ))
        })
    }

    /// The name the command line uses (`f16`, `f32`, `q8_0`).
    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
            KvType::Q8_0 => "q8_0",
        }
    }
}

/// What a session is planned for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PlanConfig {
    /// Context size in tokens (the KV cache's length).
    pub n_ctx: usize,
    /// Most tokens evaluated in one batch.
    pub n_batch: usize,
    /// Threads (each gets its own scratch).
    pub n_threads: usize,
    /// KV cache element type.
    pub kv_type: KvType,
    /// Keep logits for every token of a batch (perplexity, eval) rather than only the last.
    pub logits_all: bool,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            n_ctx: 2048,
            n_batch: 64,
            n_threads: 1,
            kv_type: KvType::F16,
            logits_all: false,
        }
    }
}

/// A region of the arena, in units of f32 (4 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Region {
    /// Start, in f32 units.
    pub start: usize,
    /// Length, in f32 units.
    pub len: usize,
}

/// Regions are aligned to 64 bytes.
const ALIGN_F32: usize = 16;

/// The arena's layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// What it was planned for.
    pub config: PlanConfig,
    /// Key cache: `n_layer × n_ctx × kv_dim` elements, in chunks of 64
    /// positions laid out `[chunk][layer][kv head]` (`exec::kv_chunk_at`).
    pub k_cache: Region,
    /// Value cache, same shape.
    pub v_cache: Region,
    /// Residual stream: `n_batch × n_embd`.
    pub x: Region,
    /// Normed input / attention output: `n_batch × max(n_embd, q_dim)`.
    pub xb: Region,
    /// Queries: `n_batch × q_dim`.
    pub q: Region,
    /// New keys: `n_batch × kv_dim`.
    pub k: Region,
    /// New values: `n_batch × kv_dim`.
    pub v: Region,
    /// Feed-forward gate / hidden: `n_batch × n_ff`.
    pub hb: Region,
    /// Feed-forward up: `n_batch × n_ff`.
    pub hb2: Region,
    /// Quantized activations: `n_batch` rows in the widest activation format.
    pub xq: Region,
    /// Logits: `n_logits × n_vocab`.
    pub logits: Region,
    /// Per-thread output scratch (one region per thread).
    pub thread_out: Vec<Region>,
    /// Per-thread matmul scratch for batches: a thread's share of one
    /// weight's rows × the batch, which it transposes into its output
    /// region, so that the gather after the job is a copy per token (empty
    /// when the batch is one token).
    pub thread_tr: Vec<Region>,
    /// Per-thread attention scratch (scores and converted rows).
    pub thread_att: Vec<Region>,
    /// Per-thread decode scores (`n_head × n_ctx`, for the positions the
    /// thread scored when threads share one token's attention); empty with
    /// one thread.
    pub thread_scores: Vec<Region>,
    /// Total arena size in f32 units.
    pub total_f32: usize,
    /// Bytes of weights the plan leaves in the memory map.
    pub weights_mapped: u64,
}

fn max_act_row_bytes(model: &Model, k: usize, ws: &[&Weight]) -> Result<usize> {
    let mut m = 0;
    for w in ws {
        let vt = ember_quant::vec_dot_type(w.ty).ok_or_else(|| {
            Error::Unsupported(format!("no matrix kernel for tensor type {}", w.ty))
        })?;
        let b = vt.row_bytes(k as u64).ok_or_else(|| {
            Error::Unsupported(format!(
                "row length {k} does not fit {vt}, the activation format of {} weights",
                w.ty
            ))
        })?;
        m = m.max(b as usize);
    }
    let _ = model;
    Ok(m)
}

impl Plan {
    /// Plans a session of `config` for `model`.
    pub fn new(model: &Model, config: PlanConfig) -> Result<Plan> {
        let hp = &model.hp;
        if config.n_ctx == 0 || config.n_batch == 0 || config.n_threads == 0 {
            return Err(Error::Input(
                "context, batch and thread counts must be at least 1".into(),
            ));
        }
        if config.n_threads > crate::exec::MAX_THREADS_GATHER {
            return Err(Error::Input(format!(
                "{} threads is more than Ember supports ({})",
                config.n_threads,
                crate::exec::MAX_THREADS_GATHER
            )));
        }
        let n_batch = config.n_batch.min(config.n_ctx);
        let config = PlanConfig { n_batch, ..config };
        let t = config.n_threads;
        let (d, qd, kvd, ff, nv) = (hp.n_embd, hp.q_dim(), hp.kv_dim(), hp.n_ff, hp.n_vocab);
        let n_logits = if config.logits_all { n_batch } else { 1 };

        // Widest quantized activation row.
        let mut xq_row = 0usize;
        for l in &model.layers {
            xq_row = xq_row.max(max_act_row_bytes(
                model,
                d,
                &[&l.wq, &l.wk, &l.wv, &l.w_gate, &l.w_up],
            )?);
            xq_row = xq_row.max(max_act_row_bytes(model, qd, &[&l.wo])?);
            xq_row = xq_row.max(max_act_row_bytes(model, ff, &[&l.w_down])?);
        }
        xq_row = xq_row.max(max_act_row_bytes(model, d, &[&model.output])?);
        let xq_f32 = (n_batch * xq_row).div_ceil(4);

        // Per-thread output of the matmul and attention jobs.
        let chunk = |rows: usize| crate::exec::chunk_rows(rows, t).min(rows);
        let out = crate::exec::thread_out_len(&crate::exec::JobShapes {
            t,
            n_batch,
            n_logits,
            qd,
            kvd,
            ff,
            d,
            nv,
            nkv: hp.n_head_kv,
            unit: (hp.n_head / hp.n_head_kv.max(1)) * hp.head_dim,
        });
        // One chunk × the batch, before it is transposed, then the gemm
        // kernels' scratch (F16 converts the batch's activations once).
        let tr = if n_batch > 1 {
            let scratch = |ws: &[&Weight], n: usize| {
                ws.iter()
                    .map(|w| ember_quant::gemm_scratch_len(w.ty, w.k, n))
                    .max()
                    .unwrap_or(0)
            };
            let mut gemm_scratch = scratch(&[&model.output], n_logits);
            for l in &model.layers {
                let ws = [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down];
                gemm_scratch = gemm_scratch.max(scratch(&ws, n_batch));
            }
            (chunk(qd.max(kvd).max(ff).max(d)) * n_batch).max(chunk(nv) * n_logits) + gemm_scratch
        } else {
            0
        };
        // Attention scratch: scores over the context, one head's query and value rows.
        let n_pad = config.n_ctx.next_multiple_of(crate::exec::KV_CHUNK);
        let group = hp.n_head / hp.n_head_kv;
        // Scores/probabilities of a query group over the (padded) context,
        // and the group's queries.
        let att = group * n_pad + group * hp.head_dim + 64;

        let pos_bytes = config.kv_type.pos_bytes(hp.head_dim)?;
        let kv = hp
            .n_layer
            .checked_mul(n_pad)
            .and_then(|x| x.checked_mul(hp.n_head_kv))
            .and_then(|x| x.checked_mul(pos_bytes))
            .map(|b| b.div_ceil(4))
            .ok_or_else(|| Error::Input("the KV cache size overflows".into()))?;

        let mut cursor = 0usize;
        let mut take = |len: usize| {
            let r = Region { start: cursor, len };
            cursor = (cursor + len).next_multiple_of(ALIGN_F32);
            r
        };
        let k_cache = take(kv);
        let v_cache = take(kv);
        let x = take(n_batch * d);
        let xb = take(n_batch * d.max(qd));
        let q = take(n_batch * qd);
        let k = take(n_batch * kvd);
        let v = take(n_batch * kvd);
        let hb = take(n_batch * ff);
        let hb2 = take(n_batch * ff);
        let xq = take(xq_f32);
        let logits = take(n_logits * nv);
        let thread_out = (0..t).map(|_| take(out)).collect();
        let thread_tr = (0..t).map(|_| take(tr)).collect();
        let thread_att = (0..t).map(|_| take(att)).collect();
        let scores = if t > 1 { hp.n_head * n_pad } else { 0 };
        let thread_scores = (0..t).map(|_| take(scores)).collect();
        let weights_mapped = model.file_size();
        Ok(Plan {
            config,
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
            thread_out,
            thread_tr,
            thread_att,
            thread_scores,
            total_f32: cursor,
            weights_mapped,
        })
    }

    /// Arena size in bytes.
    pub fn total_bytes(&self) -> usize {
        self.total_f32 * 4
    }

    /// KV cache bytes (keys and values).
    pub fn kv_bytes(&self) -> usize {
        (self.k_cache.len + self.v_cache.len) * 4
    }

    /// Everything but the KV cache.
    pub fn scratch_bytes(&self) -> usize {
        self.total_bytes() - self.kv_bytes()
    }

    /// The largest context whose plan (with these other settings) fits in
    /// `budget` bytes together with the mapped weights, or `None` if none does.
    pub fn max_ctx_for(model: &Model, config: PlanConfig, budget: u64) -> Result<Option<usize>> {
        let fits = |n_ctx: usize| -> Result<bool> {
            let p = Plan::new(model, PlanConfig { n_ctx, ..config })?;
            Ok(p.total_bytes() as u64 + p.weights_mapped <= budget)
        };
        if !fits(1)? {
            return Ok(None);
        }
        let (mut lo, mut hi) = (1usize, model.hp.n_ctx_train.max(1));
        if fits(hi)? {
            return Ok(Some(hi));
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(Some(lo))
    }
}
