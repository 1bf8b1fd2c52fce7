//! `ember`: run quantized GGUF models on small machines.

/// `print!` for command output: a closed stdout (a pipe whose reader quit)
/// ends the program quietly; another write error is a failure.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let mut so = std::io::stdout().lock();
        if let Err(e) = write!(so, $($t)*).and_then(|_| so.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err($crate::Failure::new(format!("writing output: {e}")));
        }
    }};
}

/// `println!` for command output, as [`out!`].
macro_rules! outln {
    ($($t:tt)*) => {{
        out!($($t)*);
        out!("\n");
    }};
}

mod bench;
mod common;
mod inspect;
mod model;
mod plan;
mod quantize;
mod run;
mod score;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Run quantized GGUF models (LLaMA-family) on small machines.
#[derive(Parser, Debug)]
#[command(name = "ember", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print a GGUF file's version, metadata and tensor table.
    Inspect(inspect::Args),
    /// Fetch the default model (SmolLM2-135M-Instruct Q4_1) into the cache.
    Pull(model::PullArgs),
    /// Generate text from a prompt.
    Run(run::RunArgs),
    /// Chat interactively, with the model's chat template.
    Chat(run::ChatArgs),
    /// Compute perplexity over a text file, as llama-perplexity does.
    Perplexity(score::PerplexityArgs),
    /// Score a token sequence: per-position argmax, margin, top logits, NLL (JSON).
    Eval(score::EvalArgs),
    /// Show the memory plan for a model and context size.
    Plan(plan::Args),
    /// Measure prompt processing and generation speed (as llama-bench).
    Bench(bench::Args),
    /// Convert a model's weights to another type (as llama-quantize does).
    Quantize(quantize::Args),
}

/// An error for the user: one line, and the exit code to leave with.
pub struct Failure {
    /// The message.
    pub msg: String,
    /// Exit code.
    pub code: u8,
}

impl From<ember::Error> for Failure {
    fn from(e: ember::Error) -> Self {
        Failure {
            msg: e.to_string(),
            code: 2,
        }
    }
}

impl Failure {
    /// A failure with exit code 2.
    pub fn new(msg: impl Into<String>) -> Self {
        Failure {
            msg: msg.into(),
            code: 2,
        }
    }
}

/// llama.cpp's multi-letter single-dash flags (`-ctk q8_0`, `-ctv q8_0`),
/// which clap cannot declare, rewritten to their long forms.
fn llama_spellings(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.map(|a| match a.to_str() {
        Some("-ctk") => "--ctk".into(),
        Some("-ctv") => "--ctv".into(),
        _ => a,
    })
    .collect()
}

fn main() -> ExitCode {
    // A panic is a bug, but even then the user gets one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let loc = info
            .location()
            .map(|l| format!(" at {l}"))
            .unwrap_or_default();
        eprintln!("ember: internal error{loc}: {msg} (please report this)");
    }));
    let cli = match Cli::try_parse_from(llama_spellings(std::env::args_os())) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let r = match cli.cmd {
        Cmd::Inspect(a) => inspect::run(a),
        Cmd::Pull(a) => model::pull(a),
        Cmd::Run(a) => run::run(a),
        Cmd::Chat(a) => run::chat(a),
        Cmd::Perplexity(a) => score::perplexity(a),
        Cmd::Eval(a) => score::eval(a),
        Cmd::Plan(a) => plan::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Quantize(a) => quantize::run(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("ember: {}", f.msg);
            ExitCode::from(f.code)
        }
    }
}
