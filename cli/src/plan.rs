//! `ember plan`: the memory a session needs, before running it; with
//! `--board`, whether it fits a board and how fast it should decode there.

use crate::common::ModelOpts;
use crate::Failure;
use ember::boards::{Board, Estimate};
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
    #[arg(long, value_parser = parse_bytes, conflicts_with = "board")]
    mem: Option<u64>,
    /// A board: a built-in name (see --list-boards) or a profile file (.toml). Says whether
    /// the model fits it, the kernel tier and threads it runs with, and the decode speed to expect.
    #[arg(long)]
    board: Option<String>,
    /// List the built-in board profiles and exit.
    #[arg(long, conflicts_with = "board")]
    list_boards: bool,
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
    if a.list_boards {
        return list_boards(a.json);
    }
    if let Some(name) = &a.board {
        let board = Board::resolve(name)?;
        return run_board(&a, &board);
    }
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
        outln!("{j}");
        return Ok(());
    }
    let hp = &l.model.hp;
    outln!("model:          {}", l.path.display());
    outln!(
        "architecture:   {} ({} layers, dim {}, heads {}/{}, ff {}, vocab {})",
        hp.arch,
        hp.n_layer,
        hp.n_embd,
        hp.n_head,
        hp.n_head_kv,
        hp.n_ff,
        hp.n_vocab
    );
    outln!(
        "context:        {} tokens (batch {}, {} threads, KV {:?})",
        p.config.n_ctx,
        p.config.n_batch,
        p.config.n_threads,
        p.config.kv_type
    );
    outln!(
        "weights mapped: {} (memory map, read in place)",
        mib(p.weights_mapped)
    );
    outln!("KV cache:       {}", mib(p.kv_bytes() as u64));
    outln!("scratch:        {}", mib(p.scratch_bytes() as u64));
    outln!(
        "arena:          {} (one allocation, made at load)",
        mib(p.total_bytes() as u64)
    );
    outln!("total:          {}", mib(total));
    outln!(
        "per token:      {} of weights read",
        mib(l.model.weight_bytes_per_token())
    );
    if let (Some(m), Some(c)) = (a.mem, max_ctx) {
        match c {
            Some(c) => outln!("largest context in {}: {c} tokens", mib(m)),
            None => outln!("the model does not fit in {} at any context", mib(m)),
        }
    }
    Ok(())
}

/// `8 GiB`, `512 MiB`, `1.50 GiB`.
fn gb(b: u64) -> String {
    const GIB: u64 = 1 << 30;
    if b >= GIB && b.is_multiple_of(GIB) {
        format!("{} GiB", b / GIB)
    } else if b >= GIB {
        format!("{:.2} GiB", b as f64 / GIB as f64)
    } else if b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else {
        mib(b)
    }
}

/// `ember plan --list-boards`.
fn list_boards(json: bool) -> Result<(), Failure> {
    let boards = Board::list()?;
    if json {
        outln!("{}", json!(boards));
        return Ok(());
    }
    outln!(
        "{:<18} {:<31} {:<8} {:>9} {:>9}  description",
        "board",
        "target",
        "kernels",
        "RAM",
        "GB/s"
    );
    for b in &boards {
        outln!(
            "{:<18} {:<31} {:<8} {:>9} {:>9}  {}",
            b.name,
            b.build.target,
            b.cpu.kernel_tier,
            gb(b.ram_bytes()),
            b.memory.bandwidth_gbps,
            b.description
        );
    }
    outln!("\nUse one with `ember plan --board NAME`, or give a profile file: `--board my-board.toml` (format: docs/boards.md).");
    Ok(())
}

/// `ember plan --board NAME`.
fn run_board(a: &Args, board: &Board) -> Result<(), Failure> {
    let l = a.opts.load()?;
    let threads = a
        .opts
        .threads
        .filter(|&t| t > 0)
        .unwrap_or(board.cpu.threads);
    let cfg = PlanConfig {
        n_ctx: a.ctx,
        n_batch: a.batch,
        n_threads: threads,
        kv_type: a.opts.cache_type,
        logits_all: false,
    };
    let e = board.estimate(&l.model, cfg)?;
    let weight_type = l
        .model
        .layers
        .first()
        .map(|x| x.w_gate.ty.to_string())
        .unwrap_or_default();
    if a.json {
        let mut j = serde_json::to_value(&e).map_err(|x| Failure::new(x.to_string()))?;
        if let Some(o) = j.as_object_mut() {
            o.insert("model".into(), json!(l.path.display().to_string()));
            o.insert("model_weight_type".into(), json!(weight_type));
            o.insert("target".into(), json!(board.build.target));
            o.insert("rustflags".into(), json!(board.build.rustflags));
            o.insert(
                "optimized_rustflags".into(),
                json!(board.build.optimized_rustflags),
            );
            o.insert(
                "recommended_quant".into(),
                json!(board.run.recommended_quant),
            );
        }
        outln!("{j}");
        return Ok(());
    }
    print_estimate(board, &e, &l.path, &weight_type)?;
    Ok(())
}

fn print_estimate(
    board: &Board,
    e: &Estimate,
    model: &std::path::Path,
    weight_type: &str,
) -> Result<(), Failure> {
    let fp = &e.footprint;
    outln!("board:     {} ({})", board.name, board.description);
    outln!("model:     {} ({weight_type} matrices)", model.display());
    let tuned = if board.build.optimized_rustflags.is_empty() {
        String::new()
    } else {
        format!(
            "; tuned for this board only: RUSTFLAGS=\"{}\"",
            board.build.optimized_rustflags
        )
    };
    outln!("build:     --target {}{tuned}", board.build.target);
    outln!(
        "kernels:   {} on {} ({} threads of {} cores)",
        e.kernel_tier,
        board.cpu.model,
        e.n_threads,
        board.cpu.cores
    );
    outln!(
        "memory:    {} weights (mapped) + {} KV cache ({} tokens, {:?}) + {} scratch = {}",
        mib(fp.weights_mapped),
        mib(fp.kv_bytes),
        e.n_ctx,
        e.kv_type,
        mib(fp.scratch_bytes),
        mib(e.total_bytes)
    );
    let limit = if e.budget_bytes < board.available_bytes() {
        ", capped by a 32-bit process's address space"
    } else {
        ""
    };
    outln!(
        "budget:    {} ({} RAM less {} for the OS{limit})",
        mib(e.budget_bytes),
        gb(e.ram_bytes),
        gb(e.os_reserve_bytes)
    );
    if let Some(t) = e.n_ctx_train.filter(|&t| e.n_ctx > t) {
        outln!(
            "note:      {} tokens is past the model's training context ({t}); quality degrades past it",
            e.n_ctx
        );
    }
    let largest = match (e.max_ctx, e.n_ctx_train) {
        (Some(c), Some(t)) if c >= t => format!("{c} tokens (the model's training context)"),
        (Some(c), _) => format!("{c} tokens"),
        (None, _) => "none: the model does not fit at any context".to_string(),
    };
    match &e.problem {
        None => {
            outln!(
                "fits:      yes, {} free at {} tokens",
                mib(e.budget_bytes - e.total_bytes),
                e.n_ctx
            );
            outln!("largest context that fits: {largest}");
        }
        Some(p) => {
            outln!("fits:      NO at {} tokens: {p}", e.n_ctx);
            outln!("largest context that fits: {largest}");
        }
    }
    outln!(
        "decode:    ~{:.1} tok/s at the start of the context, ~{:.1} tok/s with all {} tokens in the KV cache",
        e.decode_tok_s, e.decode_tok_s_full_ctx, e.n_ctx
    );
    outln!(
        "           ({} GB/s x {:.0}% / {} of weights per token)",
        e.bandwidth_gbps,
        e.decode_efficiency * 100.0,
        mib(fp.weight_bytes_per_token)
    );
    outln!("assuming:  {}", e.assumption);
    if let Some(q) = &board.run.recommended_quant {
        outln!("quant:     {q} recommended for this board (this model: {weight_type})");
    }
    Ok(())
}
