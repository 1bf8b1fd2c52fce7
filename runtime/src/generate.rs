//! Text generation: the prompt as one batch, then one token at a time.

use crate::exec::Exec;
use crate::sampler::Sampler;
use crate::{Error, Result, Session};
use std::time::{Duration, Instant};

/// What a generation did, for the closing summary.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenStats {
    /// Prompt tokens evaluated.
    pub n_prompt: usize,
    /// Time spent on the prompt.
    pub prompt_time: Duration,
    /// Tokens generated.
    pub n_gen: usize,
    /// Time spent generating (sampling and evaluation of generated tokens).
    pub gen_time: Duration,
    /// Whether generation stopped at an end-of-generation token.
    pub stopped_at_eog: bool,
}

impl GenStats {
    /// Prompt tokens per second.
    pub fn prompt_tps(&self) -> f64 {
        rate(self.n_prompt, self.prompt_time)
    }

    /// Generated tokens per second.
    pub fn gen_tps(&self) -> f64 {
        rate(self.n_gen, self.gen_time)
    }
}

fn rate(n: usize, t: Duration) -> f64 {
    if t.is_zero() {
        0.0
    } else {
        n as f64 / t.as_secs_f64()
    }
}

/// Generation settings.
#[derive(Clone, Debug)]
pub struct GenParams<'a> {
    /// Most tokens to generate.
    pub n_predict: usize,
    /// Keep going past end-of-generation tokens.
    pub ignore_eos: bool,
    /// Tokens that end generation (unless `ignore_eos`).
    pub eog: &'a [u32],
}

/// Evaluates `prompt` after what the session holds and generates up to
/// `n_predict` tokens, calling `on_token` with each; it returns `false` to stop.
///
/// Nothing is allocated per token: the history buffer is reserved up front.
pub fn generate(
    session: &mut Session<'_>,
    prompt: &[u32],
    params: &GenParams<'_>,
    sampler: &mut Sampler,
    on_token: &mut dyn FnMut(u32) -> bool,
) -> Result<GenStats> {
    let n_ctx = session.plan().config.n_ctx;
    let n_past = session.n_past();
    if prompt.is_empty() && n_past == 0 {
        return Err(Error::Input("the prompt is empty".into()));
    }
    if n_past + prompt.len() > n_ctx {
        return Err(Error::Input(format!(
            "the prompt is {} tokens, but the context holds {} ({} in use); raise --ctx-size or shorten the prompt",
            prompt.len(),
            n_ctx,
            n_past
        )));
    }
    if n_past + prompt.len() + params.n_predict > n_ctx {
        return Err(Error::Input(format!(
            "{} prompt tokens + {} to generate exceed the context of {} tokens; lower -n or raise --ctx-size",
            prompt.len(),
            params.n_predict,
            n_ctx - n_past
        )));
    }
    let mut history: Vec<u32> = Vec::with_capacity(prompt.len() + params.n_predict + 1);
    history.extend_from_slice(prompt);
    session.run(|ex: &mut Exec<'_, '_>| {
        let mut st = GenStats {
            n_prompt: prompt.len(),
            ..Default::default()
        };
        let t0 = Instant::now();
        if !prompt.is_empty() {
            ex.eval(prompt)?;
        }
        st.prompt_time = t0.elapsed();
        let t1 = Instant::now();
        for _ in 0..params.n_predict {
            let tok = sampler.sample(ex.logits(), &history);
            if !params.ignore_eos && params.eog.contains(&tok) {
                st.stopped_at_eog = true;
                break;
            }
            history.push(tok);
            st.n_gen += 1;
            if !on_token(tok) {
                break;
            }
            if st.n_gen == params.n_predict {
                break;
            }
            ex.eval(std::slice::from_ref(&tok))?;
        }
        st.gen_time = t1.elapsed();
        Ok(st)
    })
}

/// The number of physical CPU cores (logical CPUs where that can't be told).
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    #[cfg(target_os = "linux")]
    {
        let mut cores = std::collections::HashSet::new();
        for cpu in 0..logical.max(1) * 2 {
            let base = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
            let core = std::fs::read_to_string(format!("{base}/core_id"));
            let pkg = std::fs::read_to_string(format!("{base}/physical_package_id"));
            if let (Ok(c), Ok(p)) = (core, pkg) {
                cores.insert((p.trim().to_string(), c.trim().to_string()));
            }
        }
        if !cores.is_empty() {
            return cores.len().min(logical);
        }
    }
    logical
}
