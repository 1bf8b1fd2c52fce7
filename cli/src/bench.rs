//! `ember bench`: prompt processing and generation speed, as llama-bench measures them.

use crate::common::{load_mode, tier};
use crate::{model, Failure};
use ember::{KvType, Model, PlanConfig, Profile, Session, Stage};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `ember bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Models, comma-separated (default: the default model).
    #[arg(short = 'm', long = "model", value_delimiter = ',')]
    models: Vec<PathBuf>,
    /// Prompt tokens for the pp test (0 skips it).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 128)]
    n_prompt: usize,
    /// Generated tokens for the tg test (0 skips it).
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    n_gen: usize,
    /// Context depths, comma-separated: tokens already in the cache before
    /// each test (as llama-bench's -d).
    #[arg(
        short = 'd',
        long = "n-depth",
        value_delimiter = ',',
        default_value = "0"
    )]
    depths: Vec<usize>,
    /// KV cache type: f16 (default), f32 or q8_0 (as llama-bench's -ctk).
    #[arg(long = "cache-type-k", alias = "ctk", default_value = "f16", value_parser = crate::common::parse_kv)]
    cache_type_k: KvType,
    /// Value cache type: Ember keeps keys and values in one type, so this
    /// must equal `-ctk` when given (accepted for llama-bench's command lines).
    #[arg(long = "cache-type-v", alias = "ctv", value_parser = crate::common::parse_kv)]
    cache_type_v: Option<KvType>,
    /// Thread counts, comma-separated.
    #[arg(short = 't', long = "threads", value_delimiter = ',')]
    threads: Vec<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    reps: usize,
    /// Prompt batch size.
    #[arg(short = 'b', long = "batch-size", default_value_t = 512)]
    batch: usize,
    /// Output format: md (default) or json.
    #[arg(short = 'o', long = "output", default_value = "md")]
    output: String,
    /// Same as `-o json`.
    #[arg(long)]
    json: bool,
    /// Also measure this machine's read bandwidth at each thread count and
    /// report decode against its roofline (bandwidth ÷ weight bytes per token).
    #[arg(long)]
    roofline: bool,
    /// Also time each stage of the forward pass (norms and q/k/v, attention,
    /// attention output, FFN up and down, output head) and print ms per
    /// token for each test (a clock read five times a layer).
    #[arg(long)]
    profile: bool,
    /// 1 (default): map the model file; 0: read it into memory, in huge
    /// pages on Linux (as llama-bench's -mmp; see `ember run --no-mmap`).
    #[arg(long = "mmap", alias = "mmp", default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    mmap: u8,
}

/// Physical memory in bytes (Linux: MemTotal), if known.
fn mem_total() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

/// Read bandwidth in bytes/s with `threads` threads: best of 5 passes over a
/// 512 MiB buffer (beyond the caches of the machines Ember targets; a quarter
/// of RAM on a board with less than 2 GiB), each thread summing its own part.
/// The buffer is in huge pages where the kernel gives them, as the weights
/// are (on a VM, 4 KiB pages read a third slower; see docs/performance.md).
pub fn read_bandwidth(threads: usize) -> f64 {
    let quarter = mem_total().map(|m| (m / 4) as usize).unwrap_or(usize::MAX);
    let size: usize = (512usize << 20).min(quarter).max(16 << 20);
    let mut huge = ember::sys::huge_buffer(size);
    let mut heap = Vec::new();
    let buf: &mut [u8] = match huge.as_deref_mut() {
        Some(b) => b,
        None => {
            heap.resize(size, 0u8);
            &mut heap
        }
    };
    for (i, b) in buf.iter_mut().enumerate() {
        *b = i as u8;
    }
    let buf: &[u8] = buf;
    let mut best = f64::INFINITY;
    let mut sink = 0u64;
    for _ in 0..5 {
        let t = Instant::now();
        let part = size.div_ceil(threads);
        sink = sink.wrapping_add(std::thread::scope(|s| {
            // A part whose thread cannot start (no threads here) is summed
            // on this thread once the others are under way.
            let hs: Vec<_> = buf
                .chunks(part)
                .map(|c| {
                    let sum = move || ember::kernels::sum_u64_words(c);
                    (c, std::thread::Builder::new().spawn_scoped(s, sum).ok())
                })
                .collect();
            hs.into_iter()
                .map(|(c, h)| match h {
                    Some(h) => h.join().unwrap_or(0),
                    None => ember::kernels::sum_u64_words(c),
                })
                .fold(0u64, u64::wrapping_add)
        }));
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    size as f64 / best
}

/// Below this share of the model in huge pages, `ember bench` says so: a
/// file the page cache holds in 4 KiB folios is mapped in 4 KiB pages
/// (docs/performance.md, "Weights in huge pages").
const SMALL_PAGES_NOTE: f64 = 0.5;

/// Peak resident set size of this process in bytes (Linux: VmHWM), if known.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn mean_sd(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = if x.len() > 1 {
        x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, v.sqrt())
}

struct Row {
    model: String,
    model_type: String,
    size: u64,
    params: u64,
    threads: usize,
    n_prompt: usize,
    n_gen: usize,
    n_depth: usize,
    kv_type: KvType,
    samples_ns: Vec<u64>,
    load_ms: f64,
    peak_rss: Option<u64>,
    /// Weight bytes read per generated token.
    bytes_per_token: u64,
    /// Share of the model's resident bytes in huge pages, after the runs
    /// (`ember::sys::huge_page_share`; Linux only).
    huge_pages: Option<f64>,
    /// Stage times over the measured runs, with `--profile`.
    profile: Option<Profile>,
}

impl Row {
    fn tokens(&self) -> usize {
        self.n_prompt + self.n_gen
    }
    fn samples_ts(&self) -> Vec<f64> {
        self.samples_ns
            .iter()
            .map(|&ns| self.tokens() as f64 / (ns as f64 / 1e9))
            .collect()
    }
    fn test(&self) -> String {
        let t = if self.n_gen == 0 {
            format!("pp{}", self.n_prompt)
        } else {
            format!("tg{}", self.n_gen)
        };
        let t = if self.n_depth > 0 {
            format!("{t} @ d{}", self.n_depth)
        } else {
            t
        };
        if self.kv_type == KvType::F16 {
            t
        } else {
            format!("{t} ({} KV)", self.kv_type.name())
        }
    }
}

/// A deterministic token sequence for the benchmark (llama-bench uses random tokens too).
fn tokens(n: usize, n_vocab: usize, seed: u64) -> Vec<u32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % n_vocab as u64) as u32
        })
        .collect()
}

fn bench_model(
    path: &PathBuf,
    a: &Args,
    threads: &[usize],
    rows: &mut Vec<Row>,
) -> Result<(), Failure> {
    let t0 = Instant::now();
    let model = Model::load(path, load_mode(a.mmap == 1))
        .map_err(|e| crate::common::file_failure(path, e))?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let g = model.gguf()?;
    let params: u64 = g.tensors().iter().map(|t| t.n_elements).sum();
    let ftype = g
        .tensors()
        .iter()
        .filter(|t| t.n_dims >= 2 && t.name.starts_with("blk."))
        .map(|t| t.ty.name())
        .next()
        .unwrap_or("F32");
    let size_label = g.str("general.size_label").unwrap_or("?B");
    let model_type = format!("{} {} {}", model.hp.arch, size_label, ftype);
    drop(g);
    for &depth in &a.depths {
        for &t in threads {
            bench_config(
                &model,
                path,
                a,
                depth,
                t,
                &model_type,
                params,
                load_ms,
                rows,
            )?;
        }
    }
    Ok(())
}

/// One model × depth × thread count: its pp and tg rows.
#[allow(clippy::too_many_arguments)]
fn bench_config(
    model: &Model,
    path: &std::path::Path,
    a: &Args,
    depth: usize,
    t: usize,
    model_type: &str,
    params: u64,
    load_ms: f64,
    rows: &mut Vec<Row>,
) -> Result<(), Failure> {
    let nv = model.hp.n_vocab;
    let n_ctx = (depth + a.n_prompt.max(a.n_gen) + 1).max(16);
    let depth_tokens = tokens(depth, nv, 0xdeb7);
    {
        let cfg = PlanConfig {
            n_ctx,
            n_batch: a.batch.max(1),
            n_threads: t,
            kv_type: a.cache_type_k,
            logits_all: false,
        };
        let mut s = Session::new(model, cfg)?;
        for (np, ng) in [(a.n_prompt, 0usize), (0usize, a.n_gen)] {
            if np + ng == 0 {
                continue;
            }
            let prompt = tokens(np.max(1), nv, 0x1234 + np as u64);
            let mut samples = Vec::with_capacity(a.reps);
            let mut profile = Profile::default();
            s.run(|ex| -> Result<(), Failure> {
                ex.set_profiling(a.profile);
                // One warm-up run, then the measured ones.
                for rep in 0..=a.reps {
                    ex.truncate(0);
                    if !depth_tokens.is_empty() {
                        ex.eval(&depth_tokens)?;
                    }
                    let before = ex.profile();
                    let t1 = Instant::now();
                    if ng == 0 {
                        ex.eval(&prompt)?;
                    } else {
                        let mut tok = prompt[0];
                        for _ in 0..ng {
                            ex.eval(std::slice::from_ref(&tok))?;
                            tok = ember::sampler::argmax(ex.logits()) as u32;
                        }
                    }
                    if rep > 0 {
                        samples.push(t1.elapsed().as_nanos() as u64);
                        profile = profile.add(&ex.profile().since(&before));
                    }
                }
                Ok(())
            })?;
            rows.push(Row {
                model: path.display().to_string(),
                model_type: model_type.to_string(),
                size: model.file_size(),
                params,
                threads: t,
                n_prompt: np,
                n_gen: ng,
                n_depth: depth,
                kv_type: a.cache_type_k,
                samples_ns: samples,
                load_ms,
                peak_rss: peak_rss(),
                bytes_per_token: model.weight_bytes_per_token(),
                huge_pages: ember::sys::huge_page_share(model.file().bytes()),
                profile: a.profile.then_some(profile),
            });
        }
    }
    Ok(())
}

/// `ember bench`.
pub fn run(a: Args) -> Result<(), Failure> {
    let tier = tier()?;
    let json_out = a.json || a.output == "json";
    if !json_out && a.output != "md" {
        return Err(Failure::new(format!(
            "unknown output format `{}` (use md or json)",
            a.output
        )));
    }
    if a.reps == 0 {
        return Err(Failure::new("-r must be at least 1"));
    }
    if a.cache_type_v.is_some_and(|v| v != a.cache_type_k) {
        return Err(Failure::new(
            "Ember keeps keys and values in one type: give -ctv the same type as -ctk",
        ));
    }
    let models = if a.models.is_empty() {
        vec![model::resolve(None)?]
    } else {
        a.models.clone()
    };
    let threads = if a.threads.is_empty() {
        vec![ember::generate::physical_cores()]
    } else {
        a.threads.clone()
    };
    if threads.contains(&0) {
        return Err(Failure::new("thread counts must be at least 1"));
    }
    let mut rows = Vec::new();
    for m in &models {
        let before = rows.len();
        bench_model(m, &a, &threads, &mut rows)?;
        let share = rows[before..].last().and_then(|r| r.huge_pages);
        // Mapped, the page cache decides; read in (`--mmap 0`), the memory
        // is advised as huge pages already.
        if let Some(s) = share.filter(|&s| s < SMALL_PAGES_NOTE && a.mmap == 1) {
            eprintln!(
                "note: only {:.0}% of {} is mapped in huge pages (the page cache holds it in small ones), which slows decode, by a quarter at 1 thread on the machine of docs/performance.md; --mmap 0 reads it into huge pages",
                100.0 * s,
                m.display()
            );
        }
    }
    let bw: Vec<(usize, f64)> = if a.roofline {
        threads.iter().map(|&t| (t, read_bandwidth(t))).collect()
    } else {
        Vec::new()
    };
    let roof = |r: &Row| -> Option<(f64, f64)> {
        let b = bw.iter().find(|x| x.0 == r.threads)?.1;
        if r.n_gen == 0 {
            return None;
        }
        let limit = b / r.bytes_per_token as f64;
        Some((b, limit))
    };
    if json_out {
        let arr: Vec<_> = rows
            .iter()
            .map(|r| {
                let ts = r.samples_ts();
                let (avg_ts, sd_ts) = mean_sd(&ts);
                let ns: Vec<f64> = r.samples_ns.iter().map(|&x| x as f64).collect();
                let (avg_ns, sd_ns) = mean_sd(&ns);
                json!({
                    "build_commit": env!("CARGO_PKG_VERSION"),
                    "cpu_info": ember::kernels::cpu_features().to_string(),
                    "backends": "CPU",
                    "kernel_tier": tier.name(),
                    "model_filename": r.model,
                    "model_type": r.model_type,
                    "model_size": r.size,
                    "model_n_params": r.params,
                    "n_batch": a.batch,
                    "n_threads": r.threads,
                    "type_k": r.kv_type.name(),
                    "type_v": r.kv_type.name(),
                    "use_mmap": a.mmap == 1,
                    "n_prompt": r.n_prompt,
                    "n_gen": r.n_gen,
                    "n_depth": r.n_depth,
                    "avg_ns": avg_ns as u64,
                    "stddev_ns": sd_ns as u64,
                    "avg_ts": avg_ts,
                    "stddev_ts": sd_ts,
                    "samples_ns": r.samples_ns,
                    "samples_ts": ts,
                    "load_ms": r.load_ms,
                    "peak_rss_bytes": r.peak_rss,
                    "weight_bytes_per_token": r.bytes_per_token,
                    "weights_huge_page_share": r.huge_pages,
                    "read_bandwidth_bytes_per_s": roof(r).map(|x| x.0),
                    "roofline_ts": roof(r).map(|x| x.1),
                    "roofline_fraction": roof(r).map(|x| avg_ts / x.1),
                    "profile_ms_per_token": r.profile.map(|p| {
                        Stage::ALL
                            .iter()
                            .map(|&st| (st.name().to_string(), json!(p.ms_per_token(st))))
                            .collect::<serde_json::Map<_, _>>()
                    }),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&arr).unwrap_or_default());
    } else {
        outln!("| model | size | params | backend | threads | test | t/s | load ms | peak RSS | roofline |");
        outln!("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for r in &rows {
            let (m, sd) = mean_sd(&r.samples_ts());
            let rl = roof(r)
                .map(|(b, l)| format!("{:.0}% of {l:.0} t/s ({:.1} GB/s)", 100.0 * m / l, b / 1e9))
                .unwrap_or_else(|| "".into());
            outln!(
                "| {} | {:.2} MiB | {:.2} M | CPU ({}) | {} | {} | {:.2} ± {:.2} | {:.1} | {} | {rl} |",
                r.model_type,
                r.size as f64 / 1048576.0,
                r.params as f64 / 1e6,
                tier.name(),
                r.threads,
                r.test(),
                m,
                sd,
                r.load_ms,
                r.peak_rss
                    .map(|b| format!("{:.1} MiB", b as f64 / 1048576.0))
                    .unwrap_or_else(|| "?".into())
            );
        }
        if a.profile {
            print_profile(&rows)?;
        }
    }
    Ok(())
}

/// `--profile`'s table: ms per token in each stage, per test.
fn print_profile(rows: &[Row]) -> Result<(), Failure> {
    outln!("");
    outln!("ms per token in each stage of the forward pass (the measured runs):");
    outln!("");
    let names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
    outln!("| model | threads | test | {} | total |", names.join(" | "));
    outln!(
        "| --- | ---: | ---: |{} ---: |",
        " ---: |".repeat(names.len())
    );
    for r in rows {
        let Some(p) = r.profile else { continue };
        let ms: Vec<f64> = Stage::ALL.iter().map(|&s| p.ms_per_token(s)).collect();
        let cells: Vec<String> = ms.iter().map(|m| format!("{m:.3}")).collect();
        outln!(
            "| {} | {} | {} | {} | {:.3} |",
            r.model_type,
            r.threads,
            r.test(),
            cells.join(" | "),
            ms.iter().sum::<f64>()
        );
    }
    Ok(())
}
