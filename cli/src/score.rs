//! `ember perplexity` and `ember eval`: scoring text with the model.

use crate::common::{read_text_file, ModelOpts};
use crate::Failure;
use ember::{PlanConfig, Session};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `ember perplexity`.
#[derive(clap::Args, Debug)]
pub struct PerplexityArgs {
    #[command(flatten)]
    opts: ModelOpts,
    /// Text file to score.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Chunk size in tokens (llama-perplexity's -c).
    #[arg(short = 'c', long = "ctx-size", default_value_t = 128)]
    ctx: usize,
    /// Score at most this many chunks (default: all whole chunks).
    #[arg(long = "chunks")]
    chunks: Option<usize>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `-log softmax(logits)[tok]`, in f64 as llama-perplexity computes it.
fn nll(logits: &[f32], tok: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    -(((logits[tok] - max) as f64) - sum.ln())
}

/// `ember perplexity`: as `llama-perplexity -c N -b N`.
pub fn perplexity(a: PerplexityArgs) -> Result<(), Failure> {
    if a.ctx < 4 {
        return Err(Failure::new("--ctx-size must be at least 4 for perplexity"));
    }
    let text = read_text_file(&a.file)?;
    let l = a.opts.load()?;
    let toks = l.tok.encode(&text, true, false)?;
    let n_ctx = a.ctx;
    let mut n_chunk = toks.len() / n_ctx;
    if let Some(c) = a.chunks {
        n_chunk = n_chunk.min(c);
    }
    if n_chunk == 0 {
        return Err(Failure::new(format!(
            "{}: {} tokens is less than one chunk of {n_ctx}; use a longer text or a smaller --ctx-size",
            a.file.display(),
            toks.len()
        )));
    }
    let cfg = PlanConfig {
        n_ctx,
        n_batch: n_ctx,
        n_threads: a.opts.threads(),
        kv_type: a.opts.cache_type,
        logits_all: true,
    };
    let mut s = Session::new(&l.model, cfg)?;
    let nv = l.model.hp.n_vocab;
    let first = n_ctx / 2;
    let (mut sum, mut sum2, mut count) = (0f64, 0f64, 0usize);
    let bos = if l.tok.add_bos() { l.tok.bos() } else { None };
    if !a.json {
        eprintln!(
            "ember: perplexity over {n_chunk} chunks of {n_ctx} tokens ({} tokens in the text)",
            toks.len()
        );
    }
    let mut chunk = vec![0u32; n_ctx];
    for c in 0..n_chunk {
        chunk.copy_from_slice(&toks[c * n_ctx..(c + 1) * n_ctx]);
        if let Some(b) = bos {
            chunk[0] = b;
        }
        s.reset();
        s.eval(&chunk)?;
        let logits = s.logits_all();
        for i in first..n_ctx - 1 {
            let v = nll(&logits[i * nv..(i + 1) * nv], chunk[i + 1] as usize);
            sum += v;
            sum2 += v * v;
            count += 1;
        }
        if !a.json {
            out!("[{}]{:.4},", c + 1, (sum / count as f64).exp());
            let _ = std::io::stdout().flush();
        }
    }
    let mean = sum / count as f64;
    let ppl = mean.exp();
    let var = sum2 / count as f64 - mean * mean;
    let err = if var > 0.0 && count > 1 {
        (var / (count - 1) as f64).sqrt() * ppl
    } else {
        0.0
    };
    if a.json {
        outln!(
            "{}",
            json!({"ppl": ppl, "stderr": err, "chunks": n_chunk, "tokens_scored": count})
        );
    } else {
        out!("\n");
        outln!("Final estimate: PPL = {ppl:.4} +/- {err:.5}");
    }
    Ok(())
}

/// Arguments of `ember eval`.
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    opts: ModelOpts,
    /// Token ids to score, comma-separated.
    #[arg(long, value_delimiter = ',', conflicts_with = "text")]
    ids: Option<Vec<u32>>,
    /// A UTF-8 text file to tokenize and score.
    #[arg(long)]
    text: Option<PathBuf>,
    /// Parse special-token text (e.g. `<|im_start|>`) in --text.
    #[arg(long)]
    parse_special: bool,
    /// First position to report.
    #[arg(long, default_value_t = 0)]
    from: usize,
    /// Top logits to report per position.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Output JSON (the only format; accepted for clarity).
    #[arg(long)]
    json: bool,
}

/// `ember eval`: per-position argmax, margin, top logits and next-token NLL, as JSON.
pub fn eval(a: EvalArgs) -> Result<(), Failure> {
    let l = a.opts.load()?;
    let ids = match (&a.ids, &a.text) {
        (Some(ids), _) => ids.clone(),
        (None, Some(f)) => {
            let text = read_text_file(f)?;
            l.tok.encode(&text, a.parse_special, a.parse_special)?
        }
        (None, None) => return Err(Failure::new("give --ids 1,2,3 or --text FILE")),
    };
    if ids.is_empty() {
        return Err(Failure::new("nothing to evaluate: the sequence is empty"));
    }
    let nv = l.model.hp.n_vocab;
    if let Some(&bad) = ids.iter().find(|&&t| t as usize >= nv) {
        return Err(Failure::new(format!(
            "token id {bad} out of range (the vocabulary has {nv} tokens)"
        )));
    }
    if a.from >= ids.len() {
        return Err(Failure::new(format!(
            "--from {} is past the end of the {}-token sequence",
            a.from,
            ids.len()
        )));
    }
    let cfg = PlanConfig {
        n_ctx: ids.len(),
        n_batch: ids.len(),
        n_threads: a.opts.threads(),
        kv_type: a.opts.cache_type,
        logits_all: true,
    };
    let mut s = Session::new(&l.model, cfg)?;
    s.eval(&ids)?;
    let logits = s.logits_all();
    let k = a.top.clamp(2, nv);
    let mut positions = Vec::with_capacity(ids.len() - a.from);
    let mut order: Vec<u32> = (0..nv as u32).collect();
    for pos in a.from..ids.len() {
        let row = &logits[pos * nv..(pos + 1) * nv];
        order.select_nth_unstable_by(k - 1, |&x, &y| row[y as usize].total_cmp(&row[x as usize]));
        let top = &mut order[..k];
        top.sort_by(|&x, &y| row[y as usize].total_cmp(&row[x as usize]));
        let next_nll = ids.get(pos + 1).map(|&t| nll(row, t as usize));
        positions.push(json!({
            "pos": pos,
            "argmax": top[0],
            "margin": row[top[0] as usize] - row[top[1] as usize],
            "top": top.iter().take(a.top.max(1)).map(|&t| json!([t, row[t as usize]])).collect::<Vec<_>>(),
            "next_nll": next_nll,
        }));
    }
    let out = json!({
        "model": l.path.display().to_string(),
        "ids": ids,
        "positions": positions,
    });
    outln!("{out}");
    Ok(())
}
