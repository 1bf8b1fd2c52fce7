//! `ember plan`: the memory a session needs, before running it.

use crate::common::ModelOpts;
use crate::Failure;
use ember::{Plan, PlanConfig};
use serde_json::json;

/// Arguments of `ember plan`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    opts: ModelOpts,
    /// Context size in tokens.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 2048)]
    ctx: usize,
    /// Prompt batch size.
    #[arg(short = 'b', long = "batch-size", default_value_t = 64)]
    batch: usize,
    /// A memory budget (e.g. 512M, 2G): report the largest context that fits in it.
    #[arg(long, value_parser = parse_bytes)]
    mem: Option<u64>,
    /// Output JSON.
    #[arg(long)]
    json: bool,
}

/// Parses `123`, `64K`, `512M`, `2G` (powers of 1024).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => return Err(format!("unknown size suffix in `{s}` (use K, M or G)")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 512M)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("`{s}` is not a size"));
    }
    Ok((v * mul as f64) as u64)
}

fn mib(b: u64) -> String {
    format!("{:.2} MiB", b as f64 / 1048576.0)
}

/// `ember plan`.
pub fn run(a: Args) -> Result<(), Failure> {
    let l = a.opts.load()?;
    let cfg = PlanConfig {
        n_ctx: a.ctx,
        n_batch: a.batch,
        n_threads: a.opts.threads(),
        kv_type: a.opts.cache_type,
        logits_all: false,
    };
    let p = Plan::new(&l.model, cfg)?;
    let max_ctx = match a.mem {
        Some(m) => Some(Plan::max_ctx_for(&l.model, cfg, m)?),
        None => None,
    };
    let total = p.total_bytes() as u64 + p.weights_mapped;
    if a.json {
        let j = json!({
            "model": l.path.display().to_string(),
            "n_ctx": p.config.n_ctx,
            "n_batch": p.config.n_batch,
            "n_threads": p.config.n_threads,
            "kv_type": p.config.kv_type,
            "weights_mapped_bytes": p.weights_mapped,
            "kv_bytes": p.kv_bytes(),
            "scratch_bytes": p.scratch_bytes(),
            "arena_bytes": p.total_bytes(),
            "total_bytes": total,
            "weight_bytes_per_token": l.model.weight_bytes_per_token(),
            "mem_budget": a.mem,
            "max_ctx_in_budget": max_ctx.flatten(),
        });
        println!("{j}");
        return Ok(());
    }
    let hp = &l.model.hp;
    println!("model:          {}", l.path.display());
    println!(
        "architecture:   {} ({} layers, dim {}, heads {}/{}, ff {}, vocab {})",
        hp.arch, hp.n_layer, hp.n_embd, hp.n_head, hp.n_head_kv, hp.n_ff, hp.n_vocab
    );
    println!(
        "context:        {} tokens (batch {}, {} threads, KV {:?})",
        p.config.n_ctx, p.config.n_batch, p.config.n_threads, p.config.kv_type
    );
    println!("weights mapped: {} (memory map, read in place)", mib(p.weights_mapped));
    println!("KV cache:       {}", mib(p.kv_bytes() as u64));
    println!("scratch:        {}", mib(p.scratch_bytes() as u64));
    println!("arena:          {} (one allocation, made at load)", mib(p.total_bytes() as u64));
    println!("total:          {}", mib(total));
    println!(
        "per token:      {} of weights read",
        mib(l.model.weight_bytes_per_token())
    );
    if let (Some(m), Some(c)) = (a.mem, max_ctx) {
        match c {
            Some(c) => println!("largest context in {}: {c} tokens", mib(m)),
            None => println!("the model does not fit in {} at any context", mib(m)),
        }
    }
    Ok(())
}
