//! `ember quantize`: convert a GGUF model's weights to another type, as
//! llama.cpp's `llama-quantize` does (same tensor types, same bytes).

use crate::Failure;
use ember::quantize::{quantize_file, FileType, QuantizeOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Arguments of `ember quantize`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The input GGUF model.
    input: PathBuf,
    /// The output file (written to a temporary file, then renamed).
    output: PathBuf,
    /// Target type: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, F16, BF16, F32, Q2_K,
    /// Q3_K_S, Q3_K_M (Q3_K), Q3_K_L, Q4_K_S, Q4_K_M (Q4_K), Q5_K_S,
    /// Q5_K_M (Q5_K), Q6_K, or a llama_ftype number.
    #[arg(value_name = "TYPE")]
    ty: String,
    /// Allow requantizing tensors that are already quantized (quality suffers).
    #[arg(long)]
    allow_requantize: bool,
    /// Worker threads (default: one per CPU).
    #[arg(long, short = 't', default_value_t = 0)]
    threads: usize,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// `ember quantize IN OUT TYPE`.
pub fn run(a: Args) -> Result<(), Failure> {
    let ftype = FileType::from_name(&a.ty).ok_or_else(|| {
        let names: Vec<&str> = FileType::ALL.iter().map(|f| f.name()).collect();
        Failure::new(format!(
            "unknown or unsupported quantization type `{}` (Ember can write: {})",
            a.ty,
            names.join(", ")
        ))
    })?;
    let opts = QuantizeOptions {
        allow_requantize: a.allow_requantize,
        threads: a.threads,
        ftype: Some(ftype),
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("  [{bar:40}] {pos}/{len} tensors  {elapsed}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut progress = |done: usize, total: usize, name: &str| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(name.to_string());
    };
    let r = quantize_file(
        &a.input,
        &a.output,
        ftype.default_type(),
        &opts,
        &mut progress,
    );
    bar.finish_and_clear();
    let r = r?;
    for t in &r.tensors {
        if let Some(wanted) = t.fallback_from {
            eprintln!(
                "ember: warning: {}: row length {} is not a multiple of {} ({wanted}); used {}",
                t.name,
                t.dims[0],
                wanted.block_size(),
                t.to
            );
        }
    }
    eprintln!(
        "ember: {} -> {}: {} tensors ({} converted, {} copied{}), {:.2} MiB -> {:.2} MiB in {:.2}s",
        a.input.display(),
        r.ftype,
        r.tensors.len(),
        r.n_converted(),
        r.tensors.len() - r.n_converted(),
        match r.n_fallback() {
            0 => String::new(),
            n => format!(", {n} with a fallback type"),
        },
        mib(r.bytes_in),
        mib(r.bytes_out),
        r.elapsed.as_secs_f64()
    );
    outln!("{}", a.output.display());
    Ok(())
}
