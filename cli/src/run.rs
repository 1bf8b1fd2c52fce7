//! `ember run` and `ember chat`: generate text.

use crate::common::{read_text_file, tier, Loaded, ModelOpts};
use crate::Failure;
use ember::generate::{generate, GenParams, GenStats};
use ember::sampler::{Sampler, SamplerParams};
use ember::tokenizer::StreamDecoder;
use ember::{PlanConfig, Session};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Sampling options, as llama.cpp spells them.
#[derive(clap::Args, Debug, Clone)]
pub struct SampleOpts {
    /// Temperature (0 = greedy).
    #[arg(long = "temp", default_value_t = 0.8)]
    temp: f32,
    /// Top-k (0 = off).
    #[arg(long = "top-k", default_value_t = 40)]
    top_k: usize,
    /// Top-p (1 = off).
    #[arg(long = "top-p", default_value_t = 0.95)]
    top_p: f32,
    /// Min-p (0 = off).
    #[arg(long = "min-p", default_value_t = 0.05)]
    min_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Tokens the repetition penalty looks back over.
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    repeat_last_n: usize,
    /// RNG seed (default: random).
    #[arg(short = 's', long = "seed")]
    seed: Option<u64>,
}

impl SampleOpts {
    fn params(&self) -> SamplerParams {
        let seed = self.seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            t ^ ember::sys::process_tag().rotate_left(32)
        });
        SamplerParams {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed,
            ..SamplerParams::default()
        }
    }
}

/// Arguments of `ember run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    opts: ModelOpts,
    #[command(flatten)]
    sample: SampleOpts,
    /// The prompt.
    #[arg(short = 'p', long = "prompt", conflicts_with = "file")]
    prompt: Option<String>,
    /// Read the prompt from a UTF-8 file.
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Tokens to generate.
    #[arg(short = 'n', long = "n-predict", default_value_t = 256)]
    n_predict: usize,
    /// Context size in tokens (default: 2048, or the model's own if smaller).
    #[arg(short = 'c', long = "ctx-size")]
    ctx: Option<usize>,
    /// Prompt batch size.
    #[arg(short = 'b', long = "batch-size", default_value_t = 64)]
    batch: usize,
    /// Keep generating past the end-of-generation token.
    #[arg(long = "ignore-eos")]
    ignore_eos: bool,
    /// Parse special-token text such as `<|im_start|>` in the prompt.
    #[arg(long = "special")]
    special: bool,
    /// Don't echo the prompt before the generated text.
    #[arg(long = "no-display-prompt")]
    no_display_prompt: bool,
}

fn ctx_size(l: &Loaded, c: Option<usize>) -> usize {
    c.filter(|&c| c > 0)
        .unwrap_or_else(|| 2048.min(l.model.hp.n_ctx_train.max(1)))
}

fn summary(l: &Loaded, st: &GenStats, threads: usize) -> Result<(), Failure> {
    let tier = tier()?;
    eprintln!();
    eprintln!(
        "ember: load {:.1} ms | prompt {} tok, {:.1} tok/s | generation {} tok, {:.1} tok/s | {} threads | kernels {}",
        l.load_time.as_secs_f64() * 1e3,
        st.n_prompt,
        st.prompt_tps(),
        st.n_gen,
        st.gen_tps(),
        threads,
        tier.name()
    );
    Ok(())
}

/// `ember run`.
pub fn run(a: RunArgs) -> Result<(), Failure> {
    tier()?;
    let prompt = match (&a.prompt, &a.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => read_text_file(f)?,
        (None, None) => return Err(Failure::new("give a prompt with -p TEXT or -f FILE")),
    };
    let l = a.opts.load()?;
    let n_ctx = ctx_size(&l, a.ctx);
    let threads = a.opts.threads();
    let ids = l.tok.encode(&prompt, true, a.special)?;
    if ids.is_empty() {
        return Err(Failure::new("the prompt is empty"));
    }
    if ids.len() > n_ctx {
        return Err(Failure::new(format!(
            "the prompt is {} tokens, longer than the context of {n_ctx}; raise --ctx-size",
            ids.len()
        )));
    }
    if ids.len() + a.n_predict > n_ctx {
        return Err(Failure::new(format!(
            "-n {} past the context: {} prompt tokens + {} exceed --ctx-size {n_ctx}",
            a.n_predict,
            ids.len(),
            a.n_predict
        )));
    }
    let cfg = PlanConfig {
        n_ctx,
        n_batch: a.batch,
        n_threads: threads,
        kv_type: a.opts.cache_type,
        logits_all: false,
    };
    let mut session = Session::new(&l.model, cfg)?;
    let mut sampler = Sampler::new(l.model.hp.n_vocab, a.sample.params());
    let out = std::io::stdout();
    let mut out = out.lock();
    if !a.no_display_prompt {
        let _ = out.write_all(prompt.as_bytes());
        let _ = out.flush();
    }
    let mut dec = StreamDecoder::new();
    let mut write_err = None;
    let params = GenParams {
        n_predict: a.n_predict,
        ignore_eos: a.ignore_eos,
        eog: l.tok.eog_ids(),
    };
    let st = generate(
        &mut session,
        &ids,
        &params,
        &mut sampler,
        &mut |t| match dec.push(&l.tok, t) {
            Ok(s) => {
                if let Err(e) = out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
                    write_err = Some(e);
                    return false;
                }
                true
            }
            Err(_) => true,
        },
    );
    let _ = out.write_all(dec.finish().as_bytes());
    let _ = out.flush();
    let st = st?;
    if let Some(e) = write_err {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(Failure::new(format!("writing output: {e}")));
        }
    }
    let _ = writeln!(out);
    summary(&l, &st, threads)
}

/// Arguments of `ember chat`.
#[derive(clap::Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    opts: ModelOpts,
    #[command(flatten)]
    sample: SampleOpts,
    /// A system prompt.
    #[arg(long = "system")]
    system: Option<String>,
    /// Most tokens per reply.
    #[arg(short = 'n', long = "n-predict", default_value_t = 512)]
    n_predict: usize,
    /// Context size in tokens.
    #[arg(short = 'c', long = "ctx-size")]
    ctx: Option<usize>,
}

/// `ember chat`: an interactive chat with the model's chat template.
pub fn chat(a: ChatArgs) -> Result<(), Failure> {
    tier()?;
    let l = a.opts.load()?;
    let n_ctx = ctx_size(&l, a.ctx);
    let threads = a.opts.threads();
    let template = {
        let g = l.model.gguf()?;
        ember::chat::ChatTemplate::from_gguf(&g)
    };
    let cfg = PlanConfig {
        n_ctx,
        n_batch: 64,
        n_threads: threads,
        kv_type: a.opts.cache_type,
        logits_all: false,
    };
    let mut session = Session::new(&l.model, cfg)?;
    let mut sampler = Sampler::new(l.model.hp.n_vocab, a.sample.params());
    let mut messages: Vec<ember::chat::Message> = Vec::new();
    if let Some(s) = &a.system {
        messages.push(ember::chat::Message::new("system", s));
    }
    // Token ids now in the KV cache, to reuse the shared prefix each turn.
    let mut cached: Vec<u32> = Vec::new();
    eprintln!(
        "ember: chatting with {} (template: {:?}); empty line or Ctrl-D to quit",
        l.path.display(),
        template.family()
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("> ");
        let Some(line) = lines.next() else { break };
        let line = line.map_err(|e| Failure::new(format!("reading input: {e}")))?;
        if line.trim().is_empty() {
            break;
        }
        messages.push(ember::chat::Message::new("user", &line));
        let text = template.render(&messages, true);
        let ids = l.tok.encode(&text, true, true)?;
        let common = cached.iter().zip(&ids).take_while(|(a, b)| a == b).count();
        let common = common.min(ids.len().saturating_sub(1));
        session.truncate(common);
        cached.truncate(common);
        let room = n_ctx.saturating_sub(ids.len());
        if room == 0 {
            return Err(Failure::new(format!(
                "the conversation ({} tokens) no longer fits the context of {n_ctx}; raise --ctx-size",
                ids.len()
            )));
        }
        let params = GenParams {
            n_predict: a.n_predict.min(room),
            ignore_eos: false,
            eog: l.tok.eog_ids(),
        };
        let mut dec = StreamDecoder::new();
        let mut reply_ids = Vec::new();
        let out = std::io::stdout();
        let mut out = out.lock();
        let st = generate(
            &mut session,
            &ids[common..],
            &params,
            &mut sampler,
            &mut |t| {
                reply_ids.push(t);
                if let Ok(s) = dec.push(&l.tok, t) {
                    let _ = out.write_all(s.as_bytes());
                    let _ = out.flush();
                }
                true
            },
        )?;
        let _ = out.write_all(dec.finish().as_bytes());
        let _ = writeln!(out);
        let _ = out.flush();
        cached = ids.clone();
        cached.extend_from_slice(&reply_ids);
        cached.truncate(session.n_past());
        let reply = l.tok.decode(&reply_ids).unwrap_or_default();
        messages.push(ember::chat::Message::new("assistant", &reply));
        log::debug!("{} tok/s", st.gen_tps());
    }
    Ok(())
}
