//! Model (re)quantization, as llama.cpp's `llama-quantize` does it.
//!
//! [`quantize_file`] reads a GGUF model and writes a copy whose weights are
//! converted to another type. Which tensor gets which type follows
//! llama.cpp's `llama_tensor_get_type` exactly (build 0c1e570), so the
//! output is byte for byte what `llama-quantize` writes for the same input:
//!
//! * only tensors with at least two non-trivial dimensions whose name ends
//!   in `weight` are converted; norms, biases and a list of small or
//!   sensitive tensors are copied as they are ([`tensor_allows_quantization`]);
//! * the output tensor (and the token embedding when it is tied to the
//!   output, i.e. the model has no `output.weight`) gets Q6_K for a quantized
//!   target other than Q8_0, or Q8_0 when its rows do not fit the target's blocks;
//! * the K-quant mixes (Q4_K_M and friends) give more bits to some layers;
//! * a type whose blocks do not divide a row falls back to a 32-element
//!   block type (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, Q2_K/Q3_K → Q4_0),
//!   and to F16 if even that does not fit.
//!
//! Conversion dequantizes each row to f32 and quantizes it with the
//! reference (`quantize_row_*_ref`) quantizers, as llama.cpp does without
//! an importance matrix. Tensors are written in llama.cpp's order (by layer,
//! then by name), metadata is copied with `general.quantization_version`
//! and `general.file_type` set, and the output goes to a temporary file that
//! is renamed over `output` only once complete.

use crate::gguf::{Gguf, GgufFile, GgufWriter, TensorInfo, TensorSpec, Value};
use crate::{Error, GgmlType, Result};
use std::cmp::Ordering;
use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The quantization format version llama.cpp writes (`GGML_QNT_VERSION`).
pub const QUANTIZATION_VERSION: u32 = 2;

/// A llama.cpp file type (`llama_ftype`) that Ember can produce: a default
/// tensor type plus, for the K-quant mixes, which tensors get more bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(non_camel_case_types)]
pub enum FileType {
    /// All F32 (`LLAMA_FTYPE_ALL_F32`).
    F32,
    /// Mostly F16.
    F16,
    /// Mostly BF16.
    BF16,
    /// Mostly Q4_0.
    Q4_0,
    /// Mostly Q4_1.
    Q4_1,
    /// Mostly Q5_0.
    Q5_0,
    /// Mostly Q5_1.
    Q5_1,
    /// Mostly Q8_0.
    Q8_0,
    /// Q2_K mix.
    Q2_K,
    /// Q3_K small mix.
    Q3_K_S,
    /// Q3_K medium mix.
    Q3_K_M,
    /// Q3_K large mix.
    Q3_K_L,
    /// Q4_K small mix.
    Q4_K_S,
    /// Q4_K medium mix.
    Q4_K_M,
    /// Q5_K small mix.
    Q5_K_S,
    /// Q5_K medium mix.
    Q5_K_M,
    /// Q6_K.
    Q6_K,
}

impl FileType {
    /// Every file type Ember can produce.
    pub const ALL: &'static [FileType] = &[
        FileType::F32,
        FileType::F16,
        FileType::BF16,
        FileType::Q4_0,
        FileType::Q4_1,
        FileType::Q5_0,
        FileType::Q5_1,
        FileType::Q8_0,
        FileType::Q2_K,
        FileType::Q3_K_S,
        FileType::Q3_K_M,
        FileType::Q3_K_L,
        FileType::Q4_K_S,
        FileType::Q4_K_M,
        FileType::Q5_K_S,
        FileType::Q5_K_M,
        FileType::Q6_K,
    ];

    /// The `llama_ftype` number, as stored in `general.file_type`.
    pub fn id(self) -> u32 {
        use FileType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q8_0 => 7,
            Q5_0 => 8,
            Q5_1 => 9,
            Q2_K => 10,
            Q3_K_S => 11,
            Q3_K_M => 12,
            Q3_K_L => 13,
            Q4_K_S => 14,
            Q4_K_M => 15,
            Q5_K_S => 16,
            Q5_K_M => 17,
            Q6_K => 18,
            BF16 => 32,
        }
    }

    /// The name as `llama-quantize` spells it.
    pub fn name(self) -> &'static str {
        use FileType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            BF16 => "BF16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q2_K => "Q2_K",
            Q3_K_S => "Q3_K_S",
            Q3_K_M => "Q3_K_M",
            Q3_K_L => "Q3_K_L",
            Q4_K_S => "Q4_K_S",
            Q4_K_M => "Q4_K_M",
            Q5_K_S => "Q5_K_S",
            Q5_K_M => "Q5_K_M",
            Q6_K => "Q6_K",
        }
    }

    /// Parses a type as `llama-quantize` accepts it: a name, case-insensitive
    /// (`Q3_K`, `Q4_K` and `Q5_K` mean the `_M` mixes), or a `llama_ftype` number.
    pub fn from_name(s: &str) -> Option<FileType> {
        let up = s.trim().to_ascii_uppercase();
        let alias = match up.as_str() {
            "Q3_K" => "Q3_K_M",
            "Q4_K" => "Q4_K_M",
            "Q5_K" => "Q5_K_M",
            other => other,
        };
        if let Some(&f) = Self::ALL.iter().find(|f| f.name() == alias) {
            return Some(f);
        }
        let id: u32 = up.parse().ok()?;
        Self::ALL.iter().copied().find(|f| f.id() == id)
    }

    /// The file type `llama-quantize` uses for a tensor type (`Q4_K` → Q4_K_M…).
    pub fn for_type(ty: GgmlType) -> Option<FileType> {
        use GgmlType as T;
        Some(match ty {
            T::F32 => FileType::F32,
            T::F16 => FileType::F16,
            T::BF16 => FileType::BF16,
            T::Q4_0 => FileType::Q4_0,
            T::Q4_1 => FileType::Q4_1,
            T::Q5_0 => FileType::Q5_0,
            T::Q5_1 => FileType::Q5_1,
            T::Q8_0 => FileType::Q8_0,
            T::Q2_K => FileType::Q2_K,
            T::Q3_K => FileType::Q3_K_M,
            T::Q4_K => FileType::Q4_K_M,
            T::Q5_K => FileType::Q5_K_M,
            T::Q6_K => FileType::Q6_K,
            _ => return None,
        })
    }

    /// The tensor type most tensors get (`llama_ftype_get_default_type`).
    pub fn default_type(self) -> GgmlType {
        use FileType::*;
        match self {
            F32 => GgmlType::F32,
            F16 => GgmlType::F16,
            BF16 => GgmlType::BF16,
            Q4_0 => GgmlType::Q4_0,
            Q4_1 => GgmlType::Q4_1,
            Q5_0 => GgmlType::Q5_0,
            Q5_1 => GgmlType::Q5_1,
            Q8_0 => GgmlType::Q8_0,
            Q2_K => GgmlType::Q2_K,
            Q3_K_S | Q3_K_M | Q3_K_L => GgmlType::Q3_K,
            Q4_K_S | Q4_K_M => GgmlType::Q4_K,
            Q5_K_S | Q5_K_M => GgmlType::Q5_K,
            Q6_K => GgmlType::Q6_K,
        }
    }
}

impl std::fmt::Display for FileType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Options of [`quantize_file`].
#[derive(Clone, Debug, Default)]
pub struct QuantizeOptions {
    /// Allow converting tensors that are already quantized (quality suffers:
    /// the errors of both quantizations add up). Without it, such an input
    /// is an [`Error::Input`].
    pub allow_requantize: bool,
    /// Worker threads; 0 means one per CPU.
    pub threads: usize,
    /// The mix to use (for example [`FileType::Q4_K_S`]); its default type
    /// must be the `ty` given to [`quantize_file`]. `None`: [`FileType::for_type`].
    pub ftype: Option<FileType>,
}

/// What happens to one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorPlan {
    /// Index of the tensor in the input's tensor table.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// Its dimensions, innermost first.
    pub dims: Vec<u64>,
    /// Its type in the input.
    pub from: GgmlType,
    /// Its type in the output (equal to `from`: copied unchanged).
    pub to: GgmlType,
    /// The type the policy chose when the row length did not fit it and
    /// `to` is the fallback.
    pub fallback_from: Option<GgmlType>,
}

/// The result of [`quantize_file`].
#[derive(Clone, Debug)]
pub struct QuantizeReport {
    /// The file type written.
    pub ftype: FileType,
    /// Every tensor, in output order.
    pub tensors: Vec<TensorPlan>,
    /// Bytes of tensor data in the input.
    pub bytes_in: u64,
    /// Bytes of tensor data in the output.
    pub bytes_out: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl QuantizeReport {
    /// Tensors whose type changed.
    pub fn n_converted(&self) -> usize {
        self.tensors.iter().filter(|t| t.from != t.to).count()
    }

    /// Tensors that needed a fallback type.
    pub fn n_fallback(&self) -> usize {
        self.tensors
            .iter()
            .filter(|t| t.fallback_from.is_some())
            .count()
    }
}

// ---------------------------------------------------------------------------
// Tensor-type policy (llama.cpp src/llama-quant.cpp).
// ---------------------------------------------------------------------------

/// llama.cpp's broad tensor categories (`tensor_category`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    AttnQ,
    AttnV,
    AttnK,
    AttnQkv,
    AttnKvB,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

fn category(name: &str) -> Category {
    use Category::*;
    if name == "output.weight" {
        return Output;
    }
    if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        return TokenEmbd;
    }
    let table: [(&str, Category); 9] = [
        ("attn_qkv.weight", AttnQkv),
        ("attn_kv_b.weight", AttnKvB),
        ("attn_v.weight", AttnV),
        ("attn_k.weight", AttnK),
        ("attn_q.weight", AttnQ),
        ("attn_output.weight", AttnOutput),
        ("ffn_up", FfnUp),
        ("ffn_gate", FfnGate),
        ("ffn_down", FfnDown),
    ];
    table
        .iter()
        .find(|(pat, _)| name.contains(pat))
        .map_or(Other, |&(_, c)| c)
}

fn is_attn_v_like(c: Category) -> bool {
    matches!(c, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
}

/// ggml's `ggml_n_dims`: 1 + the index of the last dimension above 1.
fn ggml_n_dims(dims: &[u64]) -> usize {
    dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
}

/// Whether llama.cpp would convert this tensor at all
/// (`tensor_allows_quantization`); the others are copied as they are.
pub fn tensor_allows_quantization(name: &str, dims: &[u64]) -> bool {
    // Only 2-D and 3-D (experts) tensors.
    if ggml_n_dims(dims) < 2 {
        return false;
    }
    // `name.rfind("weight") == name.size() - 6`, unsigned arithmetic included
    // (a 5-byte name compares npos with npos).
    let ends_weight = match name.rfind("weight") {
        Some(p) => name.len() >= 6 && p == name.len() - 6,
        None => name.len() == 5,
    };
    if !ends_weight {
        return false;
    }
    const EXCLUDED: &[&str] = &[
        "_norm.weight",
        "ffn_gate_inp.weight",
        "ffn_gate_tid2eid.weight",
        "altup",
        "laurel",
        "per_layer_model_proj",
        "ssm_conv1d",
        "shortconv.conv.weight",
        "indexer.k_proj.weight",
        "indexer.q_proj.weight",
        "time_mix_first.weight",
        "time_mix_w0.weight",
        "time_mix_w1.weight",
        "time_mix_w2.weight",
        "time_mix_v0.weight",
        "time_mix_v1.weight",
        "time_mix_v2.weight",
        "time_mix_a0.weight",
        "time_mix_a1.weight",
        "time_mix_a2.weight",
        "time_mix_g1.weight",
        "time_mix_g2.weight",
        "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
        "attn_rel_b.weight",
        ".position_embd",
        "sam.pos_embd",
        "sam.neck.",
        "sam.net_",
        ".rel_pos",
        ".patch_embd",
        ".patch_merger",
        "a.rvq.codebook",
        "mm.a.code_embd",
    ];
    if EXCLUDED.iter().any(|p| name.contains(p)) {
        return false;
    }
    // Positional embeddings and token types (BERT).
    name != "position_embd.weight" && name != "token_types.weight"
}

/// The model facts the policy looks at.
#[derive(Clone, Debug, Default)]
struct ModelFacts {
    arch: String,
    n_layer: i64,
    n_head: u64,
    n_head_kv: u64,
    n_expert: u64,
    is_70b: bool,
}

impl ModelFacts {
    fn read(g: &Gguf<'_>) -> Result<ModelFacts> {
        let arch = g.architecture()?.to_string();
        // A per-layer array counts by its first element (llama.cpp's il = 0).
        let first = |key: &str| -> Result<Option<u64>> {
            match g.get(key) {
                None => Ok(None),
                Some(Value::Array(a)) => Ok(a.to_u32_vec()?.first().map(|&x| u64::from(x))),
                Some(_) => g.u64(key).map(Some),
            }
        };
        let n_layer = g
            .opt(&format!("{arch}.block_count"), Gguf::u32)?
            .unwrap_or(0);
        let n_head = first(&format!("{arch}.attention.head_count"))?.unwrap_or(0);
        let n_head_kv = first(&format!("{arch}.attention.head_count_kv"))?.unwrap_or(n_head);
        let n_expert = g
            .opt(&format!("{arch}.expert_count"), Gguf::u32)?
            .unwrap_or(0);
        let is_70b = arch == "llama" && n_layer == 80 && n_head != n_head_kv;
        Ok(ModelFacts {
            arch,
            n_layer: i64::from(n_layer),
            n_head,
            n_head_kv,
            n_expert: u64::from(n_expert),
            is_70b,
        })
    }

    fn n_gqa(&self) -> u64 {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }

    fn falcon(&self) -> bool {
        self.arch == "falcon"
    }
}

/// The running state of `quantize_state_impl`.
struct PolicyState<'f> {
    m: &'f ModelFacts,
    ftype: FileType,
    tied_embeddings: bool,
    n_attention_wv: i64,
    i_attention_wv: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
}

fn use_more_bits(i_layer: i64, n_layers: i64) -> bool {
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

impl PolicyState<'_> {
    /// `layer_info`: the counter, or for MoE models the layer in the name.
    fn layer(&self, counter: i64, name: &str) -> Result<(i64, i64)> {
        let n_layer = self.m.n_layer;
        if self.m.n_expert > 1 {
            let i = sscanf_layer(name).ok_or_else(|| {
                Error::Input(format!("failed to determine layer for tensor `{name}`"))
            })?;
            if i < 0 || i >= n_layer {
                return Err(Error::Input(format!(
                    "bad layer {i} for tensor `{name}`: must be in [0, {n_layer})"
                )));
            }
            return Ok((i, n_layer));
        }
        Ok((counter, n_layer))
    }

    /// `llama_tensor_get_type_impl`, for the file types Ember supports.
    fn choose(&mut self, mut t: GgmlType, name: &str, ne0: u64, cat: Category) -> Result<GgmlType> {
        use FileType as F;
        use GgmlType as G;
        let ft = self.ftype;
        let m = self.m;
        if cat == Category::Output || (self.tied_embeddings && cat == Category::TokenEmbd) {
            if m.falcon() || !ne0.is_multiple_of(t.block_size() as u64) {
                t = G::Q8_0;
            } else if t != G::Q8_0 {
                t = G::Q6_K;
            }
        } else if cat == Category::TokenEmbd {
            // Only the IQ and ternary mixes change untied token embeddings.
        } else if is_attn_v_like(cat) {
            let (i, n) = (self.i_attention_wv, self.n_attention_wv);
            if ft == F::Q2_K {
                t = if m.n_gqa() >= 4 { G::Q4_K } else { G::Q3_K };
            } else if ft == F::Q3_K_M {
                t = if i < 2 { G::Q5_K } else { G::Q4_K };
            } else if ft == F::Q3_K_L {
                t = G::Q5_K;
            } else if (ft == F::Q4_K_M || ft == F::Q5_K_M) && use_more_bits(i, n) {
                t = G::Q6_K;
            } else if ft == F::Q4_K_S && i < 4 {
                t = G::Q5_K;
            }
            if m.is_70b && (t == G::Q3_K || t == G::Q4_K) {
                t = G::Q5_K;
            }
            if m.n_expert == 8 {
                t = G::Q8_0;
            }
            self.i_attention_wv += 1;
        } else if cat == Category::AttnK {
            if m.n_expert == 8 {
                t = G::Q8_0;
            }
        } else if cat == Category::AttnQ {
            // Only the IQ3 mixes.
        } else if cat == Category::FfnDown {
            let (i, n) = self.layer(self.i_ffn_down, name)?;
            if ft == F::Q2_K {
                t = G::Q3_K;
            } else if ft == F::Q3_K_M {
                t = if i < n / 16 {
                    G::Q5_K
                } else if !m.falcon() || use_more_bits(i, n) {
                    G::Q4_K
                } else {
                    G::Q3_K
                };
            } else if ft == F::Q3_K_L {
                t = if m.falcon() { G::Q4_K } else { G::Q5_K };
            } else if ft == F::Q4_K_M {
                if m.falcon() {
                    t = if i < n / 16 {
                        G::Q6_K
                    } else if use_more_bits(i, n) {
                        G::Q5_K
                    } else {
                        G::Q4_K
                    };
                } else if use_more_bits(i, n) {
                    t = G::Q6_K;
                }
            } else if ft == F::Q5_K_M && use_more_bits(i, n) {
                t = G::Q6_K;
            } else if ft == F::Q4_K_S && !m.falcon() && i < n / 8 {
                t = G::Q5_K;
            }
            // (Q4_0/Q5_0 bump the first ffn_down layers only with an imatrix.)
            self.i_ffn_down += 1;
        } else if cat == Category::AttnOutput {
            if !m.falcon() {
                if m.n_expert == 8 {
                    if matches!(ft, F::Q2_K | F::Q3_K_S | F::Q3_K_M | F::Q4_K_S | F::Q4_K_M) {
                        t = G::Q5_K;
                    }
                } else if ft == F::Q2_K {
                    t = G::Q3_K;
                } else if ft == F::Q3_K_M {
                    t = G::Q4_K;
                } else if ft == F::Q3_K_L {
                    t = G::Q5_K;
                }
            } else if ft == F::Q3_K_L {
                t = G::Q4_K;
            }
        } else if cat == Category::FfnGate {
            self.layer(self.i_ffn_gate, name)?;
            self.i_ffn_gate += 1;
        } else if cat == Category::FfnUp {
            self.layer(self.i_ffn_up, name)?;
            self.i_ffn_up += 1;
        }
        Ok(t)
    }
}

/// `tensor_type_fallback`: a type whose blocks fit rows of `ne0` elements.
fn fallback(t: GgmlType, ne0: u64, name: &str) -> Result<GgmlType> {
    use GgmlType as G;
    if ne0.is_multiple_of(t.block_size() as u64) {
        return Ok(t);
    }
    let r = match t {
        G::IQ1_S
        | G::IQ1_M
        | G::IQ2_XXS
        | G::IQ2_XS
        | G::IQ2_S
        | G::IQ3_XXS
        | G::IQ3_S
        | G::IQ4_XS => G::IQ4_NL,
        G::Q2_K | G::Q3_K | G::TQ1_0 | G::TQ2_0 => G::Q4_0,
        G::Q4_K => G::Q5_0,
        G::Q5_K => G::Q5_1,
        G::Q6_K => G::Q8_0,
        _ => {
            let why = format!("no tensor type fallback is defined for type {t}");
            return Err(Error::Unsupported(format!(
                "tensor `{name}`: {why} (row length {ne0})"
            )));
        }
    };
    Ok(if ne0.is_multiple_of(r.block_size() as u64) {
        r
    } else {
        G::F16
    })
}

/// C's `sscanf(name, "blk.%d.", &i)` as far as it sets `i`.
fn sscanf_layer(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let v: i64 = digits[..n].parse().ok()?;
    Some(if neg { -v } else { v })
}

/// llama.cpp's `weight_name_comparer`: by layer (`blk.N.`, -1 for none), then name.
fn weight_order(a: &str, b: &str) -> Ordering {
    let la = sscanf_layer(a).unwrap_or(-1);
    let lb = sscanf_layer(b).unwrap_or(-1);
    la.cmp(&lb).then_with(|| a.cmp(b))
}

/// Plans a quantization: every tensor of `g`, in llama.cpp's output order,
/// with the type it gets under `ftype`. Checks nothing about convertibility.
pub fn plan(g: &Gguf<'_>, ftype: FileType) -> Result<Vec<TensorPlan>> {
    let facts = ModelFacts::read(g)?;
    let tensors = g.tensors();
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| weight_order(tensors[a].name, tensors[b].name));

    let cats: Vec<Category> = tensors.iter().map(|t| category(t.name)).collect();
    let mut st = PolicyState {
        m: &facts,
        ftype,
        tied_embeddings: !cats.contains(&Category::Output),
        n_attention_wv: cats.iter().filter(|&&c| is_attn_v_like(c)).count() as i64,
        i_attention_wv: 0,
        i_ffn_down: 0,
        i_ffn_gate: 0,
        i_ffn_up: 0,
    };
    let default = ftype.default_type();
    let mut out = Vec::with_capacity(tensors.len());
    for &i in &order {
        let t: &TensorInfo<'_> = &tensors[i];
        let dims = t.shape().to_vec();
        let mut to = t.ty;
        let mut fallback_from = None;
        if tensor_allows_quantization(t.name, &dims) {
            to = default;
            if default.is_quantized() {
                let chosen = st.choose(default, t.name, t.dims[0], cats[i])?;
                to = fallback(chosen, t.dims[0], t.name)?;
                if to != chosen {
                    fallback_from = Some(chosen);
                }
            }
        }
        out.push(TensorPlan {
            index: i,
            name: t.name.to_string(),
            dims,
            from: t.ty,
            to,
            fallback_from,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Conversion.
// ---------------------------------------------------------------------------

/// Checks up front that every planned conversion can be done.
fn check_plan(plan: &[TensorPlan], opts: &QuantizeOptions) -> Result<()> {
    for p in plan.iter().filter(|p| p.from != p.to) {
        let from_ok = p.from.is_quantized()
            || matches!(p.from, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
        if !from_ok || ember_quant::dequantize_row(p.from, &[], &mut []).is_err() {
            return Err(Error::Unsupported(format!(
                "tensor `{}`: cannot convert from type {} to {}",
                p.name, p.from, p.to
            )));
        }
        if p.from.is_quantized() && !opts.allow_requantize {
            return Err(Error::Input(format!(
                "tensor `{}` is already quantized ({}): requantizing it to {} loses quality; \
                 pass --allow-requantize to do it anyway",
                p.name, p.from, p.to
            )));
        }
        if ember_quant::quantize_row(p.to, &[], &mut []).is_err() {
            return Err(Error::Unsupported(format!(
                "tensor `{}`: Ember cannot quantize to {}",
                p.name, p.to
            )));
        }
    }
    Ok(())
}

/// `ggml_validate_row_data` for the types Ember writes: no inf/NaN in
/// float data or in block scales. Returns the first bad element's byte offset.
fn first_invalid(ty: GgmlType, data: &[u8]) -> Option<usize> {
    use GgmlType as G;
    let bad16 = |b: &[u8]| {
        let h = u16::from_le_bytes([b[0], b[1]]);
        (h & 0x7c00) == 0x7c00
    };
    let badbf16 = |b: &[u8]| {
        let h = u16::from_le_bytes([b[0], b[1]]);
        (h & 0x7f80) == 0x7f80
    };
    // (element size, offsets of f16 fields inside)
    let (size, fields): (usize, &[usize]) = match ty {
        G::F32 => {
            return data
                .chunks_exact(4)
                .position(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite())
                .map(|i| i * 4)
        }
        G::BF16 => return data.chunks_exact(2).position(badbf16).map(|i| i * 2),
        G::F16 => (2, &[0]),
        G::Q4_0 | G::Q5_0 | G::Q8_0 => (ty.type_size(), &[0]),
        G::Q4_1 | G::Q5_1 | G::Q4_K | G::Q5_K => (ty.type_size(), &[0, 2]),
        G::Q2_K => (84, &[80, 82]),
        G::Q3_K => (110, &[108]),
        G::Q6_K => (210, &[208]),
        _ => return None,
    };
    data.chunks_exact(size)
        .position(|b| fields.iter().any(|&o| bad16(&b[o..o + 2])))
        .map(|i| i * size)
}

/// Converts one tensor's data with `threads` workers.
fn convert(p: &TensorPlan, src: &[u8], threads: usize) -> Result<Vec<u8>> {
    let ne0 = p.dims[0] as usize;
    let n: u64 = p.dims.iter().product();
    let rows = (n / p.dims[0]) as usize;
    let bad = || Error::Input(format!("tensor `{}`: size does not fit its type", p.name));
    let src_row = p.from.row_bytes(ne0 as u64).ok_or_else(bad)? as usize;
    let dst_row = p.to.row_bytes(ne0 as u64).ok_or_else(bad)? as usize;
    if src.len() != src_row * rows {
        return Err(bad());
    }
    let mut dst = vec![0u8; dst_row * rows];
    // At least 16 Ki elements per worker, as llama.cpp's chunks.
    let min_rows = (16 * 1024usize).div_ceil(ne0.max(1)).max(1);
    let workers = threads.clamp(1, rows.div_ceil(min_rows).max(1));
    let per = rows.div_ceil(workers).max(1);
    let (from, to) = (p.from, p.to);
    let work = |s: &[u8], d: &mut [u8]| -> Result<()> {
        let mut buf = vec![0f32; ne0];
        for (sr, dr) in s.chunks_exact(src_row).zip(d.chunks_exact_mut(dst_row)) {
            ember_quant::dequantize_row(from, sr, &mut buf)?;
            ember_quant::quantize_row(to, &buf, dr)?;
        }
        Ok(())
    };
    if workers == 1 {
        work(src, &mut dst)?;
    } else {
        std::thread::scope(|sc| -> Result<()> {
            let handles: Vec<_> = src
                .chunks(per * src_row)
                .zip(dst.chunks_mut(per * dst_row))
                .map(|(s, d)| sc.spawn(move || work(s, d)))
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| Error::Input("a quantization worker panicked".into()))??;
            }
            Ok(())
        })?;
    }
    if let Some(off) = first_invalid(to, &dst) {
        return Err(Error::Input(format!(
            "tensor `{}`: quantized data validation failed (inf or NaN near byte {off} of the {to} data)",
            p.name
        )));
    }
    Ok(dst)
}

/// Same file (device and inode on Unix, canonical path elsewhere)?
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (fs::metadata(a), fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

/// Removes the temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Quantizes the GGUF model `input` to `ty` (through the file type
/// `opts.ftype`, or [`FileType::for_type`]`(ty)`), writing `output`.
///
/// `progress(done, total, name)` is called after each tensor is written.
/// `output` appears only when complete (a temporary file in the same
/// directory is renamed over it); it may not be `input`.
///
/// # Errors
/// [`Error::Input`] for an already quantized input without
/// `allow_requantize`, or when `output` is `input`; [`Error::Unsupported`]
/// for a type Ember cannot produce or a tensor it cannot convert;
/// [`Error::Io`] / [`Error::Gguf`] for unreadable input or unwritable output.
pub fn quantize_file(
    input: &Path,
    output: &Path,
    ty: GgmlType,
    opts: &QuantizeOptions,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<QuantizeReport> {
    let start = Instant::now();
    let ftype = match opts.ftype {
        Some(f) if f.default_type() != ty => {
            return Err(Error::Input(format!(
                "file type {f} quantizes to {}, not {ty}",
                f.default_type()
            )))
        }
        Some(f) => f,
        None => FileType::for_type(ty).ok_or_else(|| {
            Error::Unsupported(format!(
                "Ember cannot quantize to {ty} (supported: {})",
                FileType::ALL
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?,
    };
    if same_file(input, output) {
        return Err(Error::Input(format!(
            "the output {} is the input: choose another file name",
            output.display()
        )));
    }

    let file = GgufFile::open(input)?;
    let g = file.parse()?;
    let plan = plan(&g, ftype)?;
    check_plan(&plan, opts)?;

    let mut w = GgufWriter::new();
    w.copy_metadata(&g)?;
    // As gguf_set_val_u32: the key is removed and appended.
    for (key, v) in [
        ("general.quantization_version", QUANTIZATION_VERSION),
        ("general.file_type", ftype.id()),
    ] {
        w.remove(key);
        w.kv_u32(key, v)?;
    }
    for key in ["split.no", "split.count", "split.tensors.count"] {
        w.remove(key);
    }
    for p in &plan {
        w.tensor(TensorSpec {
            name: p.name.clone(),
            dims: p.dims.clone(),
            ty: p.to,
        })?;
    }

    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };

    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| Error::Io { path, source }
    };
    let file_name = output
        .file_name()
        .ok_or_else(|| Error::Input(format!("{}: not a file name", output.display())))?;
    let tmp = output.with_file_name(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        crate::sys::process_tag()
    ));
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    let mut guard = TempGuard(Some(tmp.clone()));
    let mut out = BufWriter::with_capacity(1 << 20, f);

    let total = plan.len();
    let mut failure: Option<Error> = None;
    let mut bytes_in = 0u64;
    let mut bytes_out = 0u64;
    let written = w.write(&mut out, |i, wr| {
        let p = &plan[i];
        let src = g.tensor_data(&g.tensors()[p.index]);
        bytes_in += src.len() as u64;
        let data = if p.from == p.to {
            std::borrow::Cow::Borrowed(src)
        } else {
            match convert(p, src, threads) {
                Ok(d) => std::borrow::Cow::Owned(d),
                Err(e) => {
                    let msg = e.to_string();
                    failure = Some(e);
                    return Err(io::Error::other(msg));
                }
            }
        };
        bytes_out += data.len() as u64;
        wr.write_all(&data)?;
        progress(i + 1, total, &p.name);
        Ok(())
    });
    if let Some(e) = failure {
        return Err(e);
    }
    written.map_err(io_err(&tmp))?;
    let f = out.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, output).map_err(io_err(output))?;
    guard.0 = None;

    Ok(QuantizeReport {
        ftype,
        tensors: plan,
        bytes_in,
        bytes_out,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert_eq!(FileType::from_name("q4_k"), Some(FileType::Q4_K_M));
        assert_eq!(FileType::from_name("Q8_0"), Some(FileType::Q8_0));
        assert_eq!(FileType::from_name("bf16"), Some(FileType::BF16));
        assert_eq!(FileType::from_name("15"), Some(FileType::Q4_K_M));
        assert_eq!(FileType::from_name("IQ2_XS"), None);
        for &f in FileType::ALL {
            assert_eq!(FileType::from_name(f.name()), Some(f));
            assert_eq!(FileType::from_name(&f.id().to_string()), Some(f));
        }
        assert_eq!(FileType::for_type(GgmlType::Q4_0).unwrap().id(), 2);
        assert_eq!(FileType::for_type(GgmlType::Q8_0).unwrap().id(), 7);
        assert_eq!(FileType::for_type(GgmlType::F16).unwrap().id(), 1);
    }

    #[test]
    fn which_tensors_are_quantized() {
        assert!(tensor_allows_quantization(
            "blk.0.attn_q.weight",
            &[576, 576]
        ));
        assert!(!tensor_allows_quantization(
            "blk.0.attn_norm.weight",
            &[576]
        ));
        assert!(!tensor_allows_quantization(
            "blk.0.attn_q.weight",
            &[576, 1]
        ));
        assert!(!tensor_allows_quantization("blk.0.attn_q.bias", &[576, 2]));
        assert!(!tensor_allows_quantization(
            "blk.0.ffn_gate_inp.weight",
            &[576, 8]
        ));
        assert!(!tensor_allows_quantization(
            "position_embd.weight",
            &[576, 8]
        ));
        assert!(tensor_allows_quantization(
            "token_embd.weight",
            &[576, 49152]
        ));
    }

    #[test]
    fn fallbacks() {
        use GgmlType as G;
        assert_eq!(fallback(G::Q6_K, 576, "x").unwrap(), G::Q8_0);
        assert_eq!(fallback(G::Q4_K, 576, "x").unwrap(), G::Q5_0);
        assert_eq!(fallback(G::Q5_K, 576, "x").unwrap(), G::Q5_1);
        assert_eq!(fallback(G::Q3_K, 576, "x").unwrap(), G::Q4_0);
        assert_eq!(fallback(G::Q4_K, 100, "x").unwrap(), G::F16);
        assert_eq!(fallback(G::Q4_K, 512, "x").unwrap(), G::Q4_K);
        assert!(fallback(G::Q4_0, 100, "x").is_err());
    }

    #[test]
    fn order_is_llama_cpp_s() {
        let mut v = vec![
            "blk.10.a",
            "blk.2.b",
            "output.weight",
            "blk.2.a",
            "token_embd.weight",
        ];
        v.sort_by(|a, b| weight_order(a, b));
        assert_eq!(
            v,
            [
                "output.weight",
                "token_embd.weight",
                "blk.2.a",
                "blk.2.b",
                "blk.10.a"
            ]
        );
        assert!(use_more_bits(0, 30) && use_more_bits(29, 30) && !use_more_bits(4, 30));
    }
}
