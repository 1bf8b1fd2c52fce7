//! Options and helpers shared by the subcommands.

use crate::{model, Failure};
use ember::tokenizer::Tokenizer;
use ember::{KvType, Model};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Model and execution options, as llama.cpp spells them.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelOpts {
    /// Model file (GGUF). Default: the default model, fetched on first use.
    #[arg(short = 'm', long = "model")]
    pub model: Option<PathBuf>,
    /// Threads (default: the number of physical cores).
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// KV cache type, for keys and values: f16 (default), f32 or q8_0.
    #[arg(long = "cache-type", short = 'k', aliases = ["ctk", "cache-type-k"], default_value = "f16", value_parser = parse_kv)]
    pub cache_type: KvType,
    /// Value cache type: Ember keeps keys and values in one type, so this
    /// must equal `--cache-type` when given (llama.cpp's `-ctv`).
    #[arg(long = "cache-type-v", alias = "ctv", value_parser = parse_kv)]
    pub cache_type_v: Option<KvType>,
    /// Read the weights into memory (in huge pages on Linux) instead of
    /// mapping the file: a slower load (42–82 ms for the default model,
    /// against 9–15 ms mapped, on the machine of docs/performance.md) and
    /// private memory for the weights, for faster decode where the page
    /// cache holds the file in 4 KiB pages.
    #[arg(long = "no-mmap")]
    pub no_mmap: bool,
}

/// Map the model file (the default), or read it into memory
/// (`--no-mmap`, `ember bench --mmap 0`).
pub fn load_mode(mmap: bool) -> ember::LoadMode {
    if mmap {
        ember::LoadMode::Map
    } else {
        ember::LoadMode::Read
    }
}

pub fn parse_kv(s: &str) -> Result<KvType, String> {
    match s.to_ascii_lowercase().as_str() {
        "f16" => Ok(KvType::F16),
        "f32" => Ok(KvType::F32),
        "q8_0" => Ok(KvType::Q8_0),
        _ => Err(format!("unknown cache type `{s}` (use f16, f32 or q8_0)")),
    }
}

/// A loaded model and its tokenizer, with the time it took.
pub struct Loaded {
    /// The model.
    pub model: Model,
    /// Its tokenizer.
    pub tok: Tokenizer,
    /// Load time.
    pub load_time: Duration,
    /// Path it came from.
    pub path: PathBuf,
}

impl ModelOpts {
    /// Threads to use.
    pub fn threads(&self) -> usize {
        self.threads
            .filter(|&t| t > 0)
            .unwrap_or_else(ember::generate::physical_cores)
    }

    /// Loads the model (fetching the default one if needed) and its tokenizer.
    pub fn load(&self) -> Result<Loaded, Failure> {
        if self.cache_type_v.is_some_and(|v| v != self.cache_type) {
            return Err(Failure::new(
                "Ember keeps keys and values in one type: give -ctv the same type as -ctk",
            ));
        }
        let path = model::resolve(self.model.clone())?;
        let mode = load_mode(!self.no_mmap);
        let t0 = Instant::now();
        // One map of the file, populated (in 2 MiB pages where the page
        // cache has them, see `ember::gguf::mmap`), then the tokenizer from
        // the same bytes. A second map read by another thread at the same
        // time made a cold read of the file fill the cache partly in 4 KiB
        // pages (61 of 92 MiB in 2 MiB pages, against all of them alone).
        let m = Model::load(&path, mode).map_err(|e| file_failure(&path, e))?;
        let tok = m
            .gguf()
            .and_then(|g| Tokenizer::from_gguf(&g))
            .map_err(|e| file_failure(&path, e))?;
        Ok(Loaded {
            model: m,
            tok,
            load_time: t0.elapsed(),
            path,
        })
    }
}

/// A failure about a file: the error, prefixed with the path unless it names it already.
pub fn file_failure(path: &std::path::Path, e: ember::Error) -> Failure {
    match e {
        ember::Error::Io { .. } => Failure::new(e.to_string()),
        e => Failure::new(format!("{}: {e}", path.display())),
    }
}

/// Reads a prompt file, which must be UTF-8.
pub fn read_text_file(path: &std::path::Path) -> Result<String, Failure> {
    let bytes =
        std::fs::read(path).map_err(|e| Failure::new(format!("{}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|e| {
        Failure::new(format!(
            "{}: not valid UTF-8 (at byte {}); save it as UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The kernel tier in use, or a failure if `EMBER_KERNELS` asks for one this CPU lacks.
pub fn tier() -> Result<ember::kernels::Tier, Failure> {
    ember::kernels::try_tier().map_err(|e| Failure::new(e.to_string()))
}
