//! Board profiles: what a target machine is (CPU, kernel tier, RAM, memory
//! bandwidth, how to build for it), and whether a model fits it and how fast
//! it should decode there.
//!
//! Profiles are data: one TOML file per board in the repository's `boards/`
//! folder (format: `docs/boards.md`). The built-in ones are compiled into the
//! binary, so `ember plan --board rpi5` works on a bare board; any other file
//! loads with [`Board::load`].
//!
//! The speed estimate is a bandwidth bound: generating one token reads every
//! weight matrix once, so decode speed is at most
//! `bandwidth × efficiency / bytes read per token`. The profile's bandwidth is
//! the sustained streaming-read bandwidth of the board (measured or estimated,
//! each profile says which), and the efficiency ([`DEFAULT_DECODE_EFFICIENCY`]
//! unless the profile gives its own) is the share of it decoding achieves.

use crate::kernels::Tier;
use crate::model::Model;
use crate::{Error, KvType, Plan, PlanConfig, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The built-in profiles: `(name, TOML)`, in the order `--list-boards` shows them.
const BUILTIN: &[(&str, &str)] = &[
    ("rpi5", include_str!("../../boards/rpi5.toml")),
    ("rpi4", include_str!("../../boards/rpi4.toml")),
    ("rpi-zero2w", include_str!("../../boards/rpi-zero2w.toml")),
    (
        "rpi-zero2w-32",
        include_str!("../../boards/rpi-zero2w-32.toml"),
    ),
    (
        "jetson-orin-nano",
        include_str!("../../boards/jetson-orin-nano.toml"),
    ),
    (
        "x86-64-desktop",
        include_str!("../../boards/x86-64-desktop.toml"),
    ),
];

/// The share of the board's bandwidth decoding is assumed to achieve when the
/// profile does not say (`[memory].decode_efficiency`).
pub const DEFAULT_DECODE_EFFICIENCY: f64 = 0.7;

/// Usable virtual address space of a 32-bit Linux process (the usual 3 GiB / 1 GiB split).
pub const ADDRESS_SPACE_32: u64 = 3 << 30;

const MIB: u64 = 1 << 20;

/// A board profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Short name (`--board NAME`).
    pub name: String,
    /// One line: the board, its RAM, the OS.
    pub description: String,
    /// How to build for it.
    pub build: Build,
    /// Its CPU.
    pub cpu: Cpu,
    /// Its memory.
    pub memory: Memory,
    /// Hints for running on it.
    #[serde(default)]
    pub run: RunHints,
}

/// `[build]`: how to build Ember for a board.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Rust target triple, e.g. `aarch64-unknown-linux-gnu`.
    pub target: String,
    /// `RUSTFLAGS` for the recommended, portable build (kernels are chosen at run time).
    #[serde(default)]
    pub rustflags: String,
    /// `RUSTFLAGS` for a build tuned to this board only (e.g. `-C target-cpu=cortex-a76`).
    #[serde(default)]
    pub optimized_rustflags: String,
}

/// `[cpu]`: a board's CPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    /// Core type, e.g. `Cortex-A76`.
    pub model: String,
    /// Cores.
    pub cores: usize,
    /// Threads to run with by default.
    pub threads: usize,
    /// The kernel tier Ember picks there (`EMBER_KERNELS` names: scalar, neon, dotprod, ...).
    pub kernel_tier: String,
}

/// `[memory]`: a board's memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// RAM in MiB.
    pub ram_mib: u64,
    /// RAM to leave to the OS and everything else, in MiB.
    pub os_reserve_mib: u64,
    /// Sustained streaming-read bandwidth in GB/s (10^9 bytes per second).
    pub bandwidth_gbps: f64,
    /// Share of the bandwidth decoding achieves (default [`DEFAULT_DECODE_EFFICIENCY`]).
    #[serde(default)]
    pub decode_efficiency: Option<f64>,
    /// The OS's page size in bytes, for information (Ember assumes none).
    #[serde(default)]
    pub page_size: Option<u64>,
}

/// `[run]`: hints for running on a board.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunHints {
    /// The quantization type to pick for this board, e.g. `Q4_K_M`.
    #[serde(default)]
    pub recommended_quant: Option<String>,
}

impl Board {
    /// Parses a profile; `origin` (a path or `built-in NAME`) prefixes error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Board> {
        let b: Board = toml::from_str(text)
            .map_err(|e| Error::Input(format!("{origin}: bad board profile: {e}")))?;
        b.validate()
            .map_err(|m| Error::Input(format!("{origin}: bad board profile: {m}")))?;
        Ok(b)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("`name` is empty".into());
        }
        if Tier::from_name(&self.cpu.kernel_tier).is_none() {
            let names: Vec<&str> = Tier::ALL.iter().map(|t| t.name()).collect();
            return Err(format!(
                "[cpu].kernel_tier `{}` is not one of {}",
                self.cpu.kernel_tier,
                names.join(", ")
            ));
        }
        if self.cpu.cores == 0 || self.cpu.threads == 0 {
            return Err("[cpu].cores and [cpu].threads must be at least 1".into());
        }
        let m = &self.memory;
        if m.ram_mib == 0 || m.os_reserve_mib >= m.ram_mib {
            return Err(format!(
                "[memory].os_reserve_mib ({}) must be less than ram_mib ({})",
                m.os_reserve_mib, m.ram_mib
            ));
        }
        if !(m.bandwidth_gbps.is_finite() && m.bandwidth_gbps > 0.0) {
            return Err("[memory].bandwidth_gbps must be a positive number".into());
        }
        if let Some(e) = m.decode_efficiency {
            if !(e > 0.0 && e <= 1.0) {
                return Err("[memory].decode_efficiency must be in (0, 1]".into());
            }
        }
        self.pointer_width()?;
        Ok(())
    }

    /// The names of the built-in profiles.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|&(n, _)| n)
    }

    /// A built-in profile by name (case-insensitive).
    pub fn builtin(name: &str) -> Result<Board> {
        let (n, text) = BUILTIN
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| {
                Error::Input(format!(
                    "no built-in board `{name}`; the built-in boards are {} (or give a path to a .toml profile)",
                    Board::builtin_names().collect::<Vec<_>>().join(", ")
                ))
            })?;
        Board::parse(text, &format!("built-in board {n}"))
    }

    /// Loads a profile from a TOML file.
    pub fn load(path: impl AsRef<Path>) -> Result<Board> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Board::parse(&text, &path.display().to_string())
    }

    /// A built-in name, or else a path to a profile (`--board NAME|FILE`).
    pub fn resolve(name_or_path: &str) -> Result<Board> {
        let is_builtin =
            Board::builtin_names().any(|n| n.eq_ignore_ascii_case(name_or_path.trim()));
        let looks_like_path = name_or_path.ends_with(".toml")
            || name_or_path.contains(std::path::MAIN_SEPARATOR)
            || name_or_path.contains('/');
        if is_builtin || !looks_like_path {
            Board::builtin(name_or_path)
        } else {
            Board::load(name_or_path)
        }
    }

    /// Every built-in profile.
    pub fn list() -> Result<Vec<Board>> {
        Board::builtin_names().map(Board::builtin).collect()
    }

    /// The kernel tier the board runs.
    pub fn tier(&self) -> Tier {
        // Validated at parse time.
        Tier::from_name(&self.cpu.kernel_tier).unwrap_or(Tier::Scalar)
    }

    /// Pointer width of the board's target, from the triple's architecture:
    /// 64 when it names a 64-bit architecture (`x86_64`, `aarch64`, `riscv64gc`, ...), else 32.
    pub fn pointer_width(&self) -> std::result::Result<u32, String> {
        let arch = self.build.target.split('-').next().unwrap_or_default();
        if arch.is_empty() || !self.build.target.contains('-') {
            return Err(format!(
                "[build].target `{}` is not a target triple (e.g. aarch64-unknown-linux-gnu)",
                self.build.target
            ));
        }
        Ok(if arch.contains("64") || arch == "s390x" {
            64
        } else {
            32
        })
    }

    /// RAM in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.memory.ram_mib * MIB
    }

    /// RAM left to the OS, in bytes.
    pub fn reserve_bytes(&self) -> u64 {
        self.memory.os_reserve_mib * MIB
    }

    /// RAM Ember may use: RAM less the OS reserve.
    pub fn available_bytes(&self) -> u64 {
        self.ram_bytes().saturating_sub(self.reserve_bytes())
    }

    /// The decode efficiency assumed.
    pub fn decode_efficiency(&self) -> f64 {
        self.memory
            .decode_efficiency
            .unwrap_or(DEFAULT_DECODE_EFFICIENCY)
    }

    /// Estimates a session of `config` for `model` on this board. `config.n_threads`
    /// is used as given (callers default it to [`Cpu::threads`]).
    pub fn estimate(&self, model: &Model, config: PlanConfig) -> Result<Estimate> {
        let plan = Plan::new(model, config)?;
        let fp = Footprint {
            weights_mapped: plan.weights_mapped,
            kv_bytes: plan.kv_bytes() as u64,
            scratch_bytes: plan.scratch_bytes() as u64,
            weight_bytes_per_token: model.weight_bytes_per_token(),
        };
        let mut e = Estimate::compute(self, plan.config, fp)?;
        if e.map_ok {
            e.max_ctx = Plan::max_ctx_for(model, plan.config, e.budget_bytes)?;
        }
        e.n_ctx_train = Some(model.hp.n_ctx_train);
        Ok(e)
    }
}

/// Largest file a target of `pointer_width` bits can map: `isize::MAX` there (the
/// same limit `gguf::mmap::Mapped::open` enforces on the running platform).
pub fn max_map_bytes(pointer_width: u32) -> u64 {
    (1u64 << (pointer_width.clamp(8, 64) - 1)) - 1
}

/// Checks that a model file of `len` bytes can be mapped by a `pointer_width`-bit build.
/// The message matches the one the loader gives on such a platform.
pub fn check_mappable(name: &str, len: u64, pointer_width: u32) -> Result<()> {
    if len > max_map_bytes(pointer_width) {
        return Err(Error::Unsupported(format!(
            "{name} is {len} bytes, more than this {pointer_width}-bit platform can map; use a smaller model or a 64-bit build"
        )));
    }
    Ok(())
}

/// The sizes an estimate is computed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Footprint {
    /// Bytes of the memory-mapped model file.
    pub weights_mapped: u64,
    /// KV cache bytes at the planned context.
    pub kv_bytes: u64,
    /// Arena bytes besides the KV cache.
    pub scratch_bytes: u64,
    /// Weight bytes read per generated token.
    pub weight_bytes_per_token: u64,
}

/// Whether a session fits a board, and how fast it should decode there.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimate {
    /// The board's name.
    pub board: String,
    /// Context planned for.
    pub n_ctx: usize,
    /// Batch planned for.
    pub n_batch: usize,
    /// Threads planned for.
    pub n_threads: usize,
    /// KV cache type.
    pub kv_type: KvType,
    /// The kernel tier the board runs.
    pub kernel_tier: String,
    /// The sizes.
    #[serde(flatten)]
    pub footprint: Footprint,
    /// Weights + KV cache + scratch.
    pub total_bytes: u64,
    /// The board's RAM.
    pub ram_bytes: u64,
    /// RAM left to the OS.
    pub os_reserve_bytes: u64,
    /// What a session may use: RAM less the reserve (and, on 32-bit, at most [`ADDRESS_SPACE_32`]).
    pub budget_bytes: u64,
    /// Whether the model file can be mapped at all (32-bit targets map at most 2 GiB).
    pub map_ok: bool,
    /// Whether the session fits the budget.
    pub fits: bool,
    /// Why it does not fit, in words.
    pub problem: Option<String>,
    /// The largest context that fits the budget (capped at the model's training context).
    pub max_ctx: Option<usize>,
    /// The model's training context.
    pub n_ctx_train: Option<usize>,
    /// The board's bandwidth, GB/s.
    pub bandwidth_gbps: f64,
    /// The share of it decoding is assumed to reach.
    pub decode_efficiency: f64,
    /// Estimated decode speed at the start of the context (weights only), tokens/s.
    pub decode_tok_s: f64,
    /// Estimated decode speed with a full context (weights and the whole KV cache read), tokens/s.
    pub decode_tok_s_full_ctx: f64,
    /// The assumption behind the speeds, in words.
    pub assumption: String,
}

impl Estimate {
    /// The estimate from sizes alone (no model needed; `max_ctx` is left `None`).
    pub fn compute(board: &Board, config: PlanConfig, fp: Footprint) -> Result<Estimate> {
        let bits = board
            .pointer_width()
            .map_err(|m| Error::Input(format!("board {}: {m}", board.name)))?;
        let total = fp.weights_mapped + fp.kv_bytes + fp.scratch_bytes;
        let mut budget = board.available_bytes();
        if bits < 64 {
            budget = budget.min(ADDRESS_SPACE_32);
        }
        let map_err = check_mappable("the model file", fp.weights_mapped, bits).err();
        let map_ok = map_err.is_none();
        let problem = if let Some(e) = map_err {
            Some(format!("{e} (target {})", board.build.target))
        } else if total > budget {
            Some(format!(
                "needs {:.1} MiB but {} has {:.1} MiB for it ({} MiB RAM less {} MiB for the OS{})",
                total as f64 / MIB as f64,
                board.name,
                budget as f64 / MIB as f64,
                board.memory.ram_mib,
                board.memory.os_reserve_mib,
                if budget < board.available_bytes() {
                    ", and a 32-bit process's 3 GiB address space"
                } else {
                    ""
                }
            ))
        } else {
            None
        };
        let eff = board.decode_efficiency();
        let bw = board.memory.bandwidth_gbps * 1e9 * eff;
        let rate = |bytes: u64| if bytes == 0 { 0.0 } else { bw / bytes as f64 };
        Ok(Estimate {
            board: board.name.clone(),
            n_ctx: config.n_ctx,
            n_batch: config.n_batch,
            n_threads: config.n_threads,
            kv_type: config.kv_type,
            kernel_tier: board.tier().name().to_string(),
            footprint: fp,
            total_bytes: total,
            ram_bytes: board.ram_bytes(),
            os_reserve_bytes: board.reserve_bytes(),
            budget_bytes: budget,
            map_ok,
            fits: problem.is_none(),
            problem,
            max_ctx: None,
            n_ctx_train: None,
            bandwidth_gbps: board.memory.bandwidth_gbps,
            decode_efficiency: eff,
            decode_tok_s: rate(fp.weight_bytes_per_token),
            decode_tok_s_full_ctx: rate(fp.weight_bytes_per_token + fp.kv_bytes),
            assumption: format!(
                "decoding is memory-bound: each token reads every weight matrix once (and the KV cache so far) at {:.0}% of the board's {} GB/s; compute, caches and thermal throttling are not modelled",
                eff * 100.0,
                board.memory.bandwidth_gbps
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n_ctx: usize) -> PlanConfig {
        PlanConfig {
            n_ctx,
            ..PlanConfig::default()
        }
    }

    #[test]
    fn builtin_profiles_parse_and_are_consistent() {
        let boards = Board::list().unwrap();
        assert_eq!(boards.len(), BUILTIN.len());
        for (b, (name, _)) in boards.iter().zip(BUILTIN) {
            assert_eq!(&b.name, name, "file name and `name` differ");
            let bits = b.pointer_width().unwrap();
            let arch = b.build.target.split('-').next().unwrap();
            let tier = b.tier();
            match arch {
                "aarch64" => {
                    assert_eq!(bits, 64);
                    assert!(
                        matches!(tier, Tier::Neon | Tier::Dotprod | Tier::I8mm),
                        "{name}"
                    );
                    // One aarch64 binary must run on every Pi: no target-cpu in the portable flags.
                    assert!(!b.build.rustflags.contains("target-cpu"), "{name}");
                }
                "x86_64" => {
                    assert_eq!(bits, 64);
                    assert!(
                        matches!(tier, Tier::Avx2 | Tier::Avx512 | Tier::Scalar),
                        "{name}"
                    );
                }
                _ => {
                    assert_eq!(bits, 32, "{name}");
                    assert_eq!(
                        tier,
                        Tier::Scalar,
                        "{name}: no SIMD kernels off aarch64/x86-64"
                    );
                }
            }
            assert!(b.cpu.threads <= b.cpu.cores, "{name}");
            assert!(b.run.recommended_quant.is_some(), "{name}");
        }
    }

    #[test]
    fn builtin_lookup_is_case_insensitive_and_lists_names_on_error() {
        assert_eq!(Board::builtin("RPi5").unwrap().name, "rpi5");
        let e = Board::builtin("rpi9").unwrap_err().to_string();
        assert!(
            e.contains("rpi9") && e.contains("rpi4") && e.contains(".toml"),
            "{e}"
        );
        assert_eq!(Board::resolve("rpi4").unwrap().name, "rpi4");
        let e = Board::resolve("no/such/board.toml").unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }

    #[test]
    fn load_reads_a_file() {
        let dir = std::env::temp_dir().join(format!("ember-boards-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("mine.toml");
        let text = BUILTIN[0].1.replace("name = \"rpi5\"", "name = \"mine\"");
        std::fs::write(&p, text).unwrap();
        let b = Board::resolve(p.to_str().unwrap()).unwrap();
        assert_eq!(b.name, "mine");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_profiles_are_rejected_with_the_reason() {
        let good = BUILTIN[0].1;
        for (from, to, want) in [
            (
                "kernel_tier = \"dotprod\"",
                "kernel_tier = \"sve2\"",
                "kernel_tier",
            ),
            (
                "os_reserve_mib = 1024",
                "os_reserve_mib = 9000",
                "os_reserve_mib",
            ),
            (
                "bandwidth_gbps = 10.0",
                "bandwidth_gbps = 0.0",
                "bandwidth_gbps",
            ),
            (
                "bandwidth_gbps = 10.0",
                "bandwidth_gbps = 10.0\nbandwith = 3",
                "bandwith",
            ),
            ("threads = 4", "threads = 0", "threads"),
            (
                "target = \"aarch64-unknown-linux-gnu\"",
                "target = \"pi\"",
                "target triple",
            ),
        ] {
            assert!(good.contains(from), "{from}");
            let e = Board::parse(&good.replace(from, to), "test.toml").unwrap_err();
            let m = e.to_string();
            assert!(matches!(e, Error::Input(_)), "{m}");
            assert!(
                m.starts_with("test.toml: bad board profile") && m.contains(want),
                "{m}"
            );
        }
    }

    #[test]
    fn map_limit_matches_this_platform() {
        assert_eq!(max_map_bytes(usize::BITS), isize::MAX as u64);
        assert_eq!(max_map_bytes(32), (2u64 << 30) - 1);
        assert!(check_mappable("m.gguf", 2 << 30, 64).is_ok());
        let e = check_mappable("m.gguf", 2 << 30, 32)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.gguf is 2147483648 bytes, more than this 32-bit platform can map"),
            "{e}"
        );
    }

    #[test]
    fn estimate_fits_and_speed() {
        let b = Board::builtin("rpi4").unwrap();
        let fp = Footprint {
            weights_mapped: 100 * MIB,
            kv_bytes: 40 * MIB,
            scratch_bytes: 10 * MIB,
            weight_bytes_per_token: 100_000_000,
        };
        let e = Estimate::compute(&b, cfg(2048), fp).unwrap();
        assert!(e.fits && e.map_ok && e.problem.is_none());
        assert_eq!(e.total_bytes, 150 * MIB);
        assert_eq!(e.budget_bytes, (4096 - 512) * MIB);
        assert_eq!(e.kernel_tier, "neon");
        // 3.5 GB/s × 0.7 / 100 MB = 24.5 tok/s.
        assert!((e.decode_tok_s - 24.5).abs() < 1e-9, "{}", e.decode_tok_s);
        assert!(e.decode_tok_s_full_ctx < e.decode_tok_s);
        assert!(e.assumption.contains("70%"));

        let big = Footprint {
            weights_mapped: 4000 * MIB,
            ..fp
        };
        let e = Estimate::compute(&b, cfg(2048), big).unwrap();
        assert!(!e.fits && e.map_ok);
        assert!(e.problem.unwrap().contains("needs 4050.0 MiB"));
    }

    #[test]
    fn a_32_bit_board_rejects_a_model_it_cannot_map() {
        let b = Board::builtin("rpi-zero2w-32").unwrap();
        assert_eq!(b.pointer_width().unwrap(), 32);
        let mut big = b.clone();
        big.memory.ram_mib = 8192;
        let fp = Footprint {
            weights_mapped: 3 << 30,
            ..Footprint::default()
        };
        let e = Estimate::compute(&big, cfg(512), fp).unwrap();
        assert!(!e.fits && !e.map_ok);
        let p = e.problem.unwrap();
        assert!(
            p.contains("32-bit platform can map") && p.contains("armv7"),
            "{p}"
        );
        // Under the map limit, but over the 32-bit address space with its scratch.
        let fp = Footprint {
            weights_mapped: 2000 * MIB,
            kv_bytes: 1200 * MIB,
            ..Footprint::default()
        };
        let e = Estimate::compute(&big, cfg(512), fp).unwrap();
        assert!(!e.fits && e.map_ok);
        assert_eq!(e.budget_bytes, ADDRESS_SPACE_32);
        assert!(e.problem.unwrap().contains("address space"));
    }

    #[test]
    fn the_default_model_fits_every_builtin_board() {
        let Some(path) = crate::fetch::cached_default_model() else {
            eprintln!("note: skipped: the default model is not cached (run `ember pull`)");
            return;
        };
        let model = Model::open(&path).unwrap();
        for b in Board::list().unwrap() {
            let c = PlanConfig {
                n_threads: b.cpu.threads,
                ..cfg(2048)
            };
            let e = b.estimate(&model, c).unwrap();
            assert!(e.fits && e.problem.is_none(), "{}: {:?}", b.name, e.problem);
            assert_eq!(e.max_ctx, Some(model.hp.n_ctx_train), "{}", b.name);
            assert_eq!(e.footprint.weights_mapped, model.file_size());
            let want = b.memory.bandwidth_gbps * 1e9 * b.decode_efficiency()
                / model.weight_bytes_per_token() as f64;
            assert!((e.decode_tok_s - want).abs() < 1e-9, "{}", b.name);
            // Too long a context for the Zero 2 W's 352 MiB: not fitting, with the largest that does.
            if b.name == "rpi-zero2w" {
                let e = b.estimate(&model, cfg(40_000)).unwrap();
                assert!(!e.fits && e.map_ok);
                assert!(e.problem.as_deref().unwrap_or("").contains("needs"));
                let budget = b.available_bytes();
                let c = e.max_ctx.unwrap();
                let plan = Plan::new(&model, cfg(c)).unwrap();
                assert!(plan.total_bytes() as u64 + plan.weights_mapped <= budget);
            }
        }
    }

    /// On a 32-bit target, the loader itself refuses a file over 2 GiB with the
    /// message above (a sparse file: no disk space is used).
    #[cfg(target_pointer_width = "32")]
    #[test]
    fn a_32_bit_build_refuses_to_map_a_2_gib_file() {
        let dir = std::env::temp_dir().join(format!("ember-map32-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("big.gguf");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(2 << 30).unwrap();
        drop(f);
        let e = crate::gguf::mmap::Mapped::open(&p).unwrap_err();
        let m = e.to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(e, Error::Unsupported(_)), "{m}");
        assert!(
            m.contains("is 2147483648 bytes, more than this 32-bit platform can map"),
            "{m}"
        );
    }
}
