//! The smallest complete use of the `ember` library: load a model, tokenize a
//! prompt, generate greedily, print as tokens stream.
//!
//! ```sh
//! cargo run --release -p ember --example generate -- [MODEL.gguf] "Once upon a time"
//! ```

use ember::generate::{generate, GenParams};
use ember::sampler::{Sampler, SamplerParams};
use ember::tokenizer::{StreamDecoder, Tokenizer};
use ember::{Model, PlanConfig, Session};
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = match args.next() {
        Some(p) => std::path::PathBuf::from(p),
        None => ember::fetch::ensure_default_model(&mut |_| {})?,
    };
    let prompt = args.next().unwrap_or_else(|| "Once upon a time".into());

    let model = Model::open(&path)?;
    let tok = Tokenizer::from_gguf(&model.gguf()?)?;
    // Every byte of working memory is planned here, once.
    let mut session = Session::new(
        &model,
        PlanConfig {
            n_ctx: 512,
            ..Default::default()
        },
    )?;
    let ids = tok.encode(&prompt, true, false)?;
    let mut sampler = Sampler::new(model.hp.n_vocab, SamplerParams::greedy());
    let params = GenParams {
        n_predict: 48,
        ignore_eos: false,
        eog: tok.eog_ids(),
    };
    let mut dec = StreamDecoder::new();
    let mut out = std::io::stdout().lock();
    write!(out, "{prompt}")?;
    let stats = generate(&mut session, &ids, &params, &mut sampler, &mut |t| {
        let piece = dec.push(&tok, t).unwrap_or_default();
        out.write_all(piece.as_bytes()).is_ok() && out.flush().is_ok()
    })?;
    writeln!(out)?;
    eprintln!("{} tokens at {:.1} tok/s", stats.n_gen, stats.gen_tps());
    Ok(())
}
