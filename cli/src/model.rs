//! Finding the model: `-m PATH`, or the default model, fetched on first use.

use crate::Failure;
use ember::fetch::{self, FetchEvent};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Arguments of `ember pull`.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Fetch again even if the model is cached.
    #[arg(long)]
    force: bool,
}

/// Fetches the default model, showing progress on stderr.
fn fetch_default(force: bool) -> Result<PathBuf, Failure> {
    if !force {
        if let Some(p) = fetch::cached_default_model() {
            return Ok(p);
        }
    }
    eprintln!(
        "ember: fetching the default model ({}) into {}",
        fetch::DEFAULT_MODEL.file_name,
        fetch::models_dir().display()
    );
    let mut bar: Option<ProgressBar> = None;
    let mut progress = |ev: FetchEvent<'_>| match ev {
        FetchEvent::Step(s) => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            eprintln!("ember: {s}");
        }
        FetchEvent::Verify { done, total } => {
            let b = bar.get_or_insert_with(|| {
                let b = ProgressBar::new(total);
                b.set_style(
                    ProgressStyle::with_template(
                        "  {bar:40} {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b
            });
            b.set_position(done);
        }
    };
    let p = fetch::fetch(
        &fetch::DEFAULT_MODEL,
        &fetch::default_model_path(),
        &mut progress,
    )?;
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
    eprintln!("ember: default model ready at {}", p.display());
    Ok(p)
}

/// `ember pull`.
pub fn pull(a: PullArgs) -> Result<(), Failure> {
    let p = fetch_default(a.force)?;
    outln!("{}", p.display());
    Ok(())
}

/// The model to use: the one given, else the default model (fetched on first use).
pub fn resolve(model: Option<PathBuf>) -> Result<PathBuf, Failure> {
    match model {
        Some(p) => Ok(p),
        None => fetch_default(false),
    }
}
