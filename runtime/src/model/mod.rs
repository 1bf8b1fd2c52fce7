//! LLaMA-family models: hyperparameters and weights, read from a GGUF file.
//!
//! The weights stay in the file's memory map; a [`Model`] only records where
//! each tensor is. Small 1-D tensors (norm weights, biases) are converted to
//! f32 once at load.

use crate::gguf::{Gguf, GgufFile, LoadMode, TensorInfo};
use crate::{Error, GgmlType, Result};
use std::path::Path;

/// Architectures Ember runs, with the GGUF key prefix each uses.
pub const SUPPORTED_ARCHS: &[&str] = &["llama", "mistral", "qwen2", "smollm3"];

/// How RoPE pairs dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    /// Adjacent pairs (x[2i], x[2i+1]) — LLaMA.
    Normal,
    /// Halves (x[i], x[i + d/2]) — GPT-NeoX, Qwen2.
    Neox,
}

/// Model hyperparameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Hparams {
    /// Architecture name (`general.architecture`).
    pub arch: String,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Embedding width.
    pub n_embd: usize,
    /// Number of layers.
    pub n_layer: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Feed-forward width.
    pub n_ff: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Dimensions RoPE rotates (≤ head_dim).
    pub rope_dim: usize,
    /// RoPE base frequency.
    pub rope_base: f32,
    /// Linear RoPE scaling: positions are multiplied by this (1/factor).
    pub rope_freq_scale: f32,
    /// RoPE pairing.
    pub rope_mode: RopeMode,
    /// RMSNorm epsilon.
    pub norm_eps: f32,
    /// Context length the model was trained with.
    pub n_ctx_train: usize,
}

impl Hparams {
    /// Reads the hyperparameters from GGUF metadata.
    pub fn from_gguf(g: &Gguf<'_>) -> Result<Hparams> {
        let arch = g.architecture()?;
        if !SUPPORTED_ARCHS.contains(&arch) {
            return Err(Error::Unsupported(format!(
                "architecture `{arch}` (Ember runs: {})",
                SUPPORTED_ARCHS.join(", ")
            )));
        }
        let k = |s: &str| format!("{arch}.{s}");
        let u = |s: &str| -> Result<usize> { Ok(g.u32(&k(s))? as usize) };
        let n_embd = u("embedding_length")?;
        let n_layer = u("block_count")?;
        let n_head = u("attention.head_count")?;
        let n_head_kv = g
            .opt(&k("attention.head_count_kv"), |g, k| g.u32(k))?
            .map(|x| x as usize)
            .unwrap_or(n_head);
        let n_ff = u("feed_forward_length")?;
        let bad = |m: String| Err(Error::Unsupported(m));
        if n_embd == 0 || n_layer == 0 || n_head == 0 || n_head_kv == 0 || n_ff == 0 {
            return bad("a zero model dimension in the metadata".into());
        }
        if n_head % n_head_kv != 0 {
            return bad(format!(
                "{n_head} heads is not a multiple of {n_head_kv} KV heads"
            ));
        }
        let head_dim = g
            .opt(&k("attention.key_length"), |g, k| g.u32(k))?
            .map(|x| x as usize)
            .unwrap_or(n_embd / n_head);
        if head_dim == 0 || head_dim % 2 != 0 || head_dim > 1024 {
            return bad(format!("head width {head_dim}"));
        }
        let rope_dim = g
            .opt(&k("rope.dimension_count"), |g, k| g.u32(k))?
            .map(|x| x as usize)
            .unwrap_or(head_dim);
        if rope_dim > head_dim || rope_dim % 2 != 0 {
            return bad(format!(
                "RoPE dimension {rope_dim} with head width {head_dim}"
            ));
        }
        let rope_base = g
            .opt(&k("rope.freq_base"), |g, k| g.f32(k))?
            .unwrap_or(10000.0);
        let scaling = g.opt(&k("rope.scaling.type"), |g, k| g.str(k))?;
        let factor = g.opt(&k("rope.scaling.factor"), |g, k| g.f32(k))?;
        let rope_freq_scale = match (scaling, factor) {
            (None | Some("none"), _) | (_, None) => 1.0,
            (Some("linear"), Some(f)) if f > 0.0 => 1.0 / f,
            (Some(t), _) => return bad(format!("RoPE scaling type `{t}`")),
        };
        let norm_eps = g
            .opt(&k("attention.layer_norm_rms_epsilon"), |g, k| g.f32(k))?
            .unwrap_or(1e-5);
        let n_ctx_train = g
            .opt(&k("context_length"), |g, k| g.u32(k))?
            .map(|x| x as usize)
            .unwrap_or(2048);
        let rope_mode = match arch {
            "qwen2" => RopeMode::Neox,
            _ => RopeMode::Normal,
        };
        let n_vocab = match g.opt(&k("vocab_size"), |g, k| g.u32(k))? {
            Some(v) => v as usize,
            None => g.array("tokenizer.ggml.tokens")?.len(),
        };
        Ok(Hparams {
            arch: arch.to_string(),
            n_vocab,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            n_ff,
            head_dim,
            rope_dim,
            rope_base,
            rope_freq_scale,
            rope_mode,
            norm_eps,
            n_ctx_train,
        })
    }

    /// Width of the query projection.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of the key and value projections.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

/// A weight matrix in the mapped file: `rows` rows of `k` elements of type `ty`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Weight {
    /// Element type.
    pub ty: GgmlType,
    /// Byte offset in the file.
    pub offset: usize,
    /// Byte length.
    pub len: usize,
    /// Rows (output features).
    pub rows: usize,
    /// Row length (input features).
    pub k: usize,
}

impl Weight {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.len / self.rows.max(1)
    }
}

/// One transformer block's tensors.
#[derive(Clone, Debug)]
pub struct Layer {
    /// RMSNorm weight before attention.
    pub attn_norm: Vec<f32>,
    /// Query projection.
    pub wq: Weight,
    /// Key projection.
    pub wk: Weight,
    /// Value projection.
    pub wv: Weight,
    /// Output projection.
    pub wo: Weight,
    /// Optional biases of q, k, v, o.
    pub bq: Option<Vec<f32>>,
    /// Key bias.
    pub bk: Option<Vec<f32>>,
    /// Value bias.
    pub bv: Option<Vec<f32>>,
    /// Output bias.
    pub bo: Option<Vec<f32>>,
    /// RMSNorm weight before the feed-forward.
    pub ffn_norm: Vec<f32>,
    /// Gate projection.
    pub w_gate: Weight,
    /// Up projection.
    pub w_up: Weight,
    /// Down projection.
    pub w_down: Weight,
}

/// A loaded model: hyperparameters, weight locations and the mapped file.
#[derive(Debug)]
pub struct Model {
    file: GgufFile,
    /// Hyperparameters.
    pub hp: Hparams,
    /// Token embedding (`n_vocab` rows of `n_embd`).
    pub tok_embd: Weight,
    /// Final norm.
    pub output_norm: Vec<f32>,
    /// Output head (the token embedding when tied).
    pub output: Weight,
    /// Whether the output head is the token embedding.
    pub tied_output: bool,
    /// The blocks.
    pub layers: Vec<Layer>,
}

fn weight(g: &Gguf<'_>, name: &str, k: usize, rows: usize) -> Result<Weight> {
    let t = g.require_tensor(name)?;
    check_shape(t, &[k as u64, rows as u64])?;
    if ember_quant::vec_dot_type(t.ty).is_none() {
        return Err(Error::Unsupported(format!(
            "tensor `{name}` has type {}, which Ember has no matrix kernel for",
            t.ty
        )));
    }
    let r = g.tensor_range(t);
    Ok(Weight {
        ty: t.ty,
        offset: r.start,
        len: r.len(),
        rows,
        k,
    })
}

fn check_shape(t: &TensorInfo<'_>, want: &[u64]) -> Result<()> {
    let mut shape = t.shape().to_vec();
    while shape.len() > want.len() && shape.last() == Some(&1) {
        shape.pop();
    }
    if shape != want {
        return Err(Error::Unsupported(format!(
            "tensor `{}` has shape {:?}, expected {:?}",
            t.name,
            t.shape(),
            want
        )));
    }
    Ok(())
}

fn vector(g: &Gguf<'_>, name: &str, n: usize) -> Result<Vec<f32>> {
    let t = g.require_tensor(name)?;
    check_shape(t, &[n as u64])?;
    let mut v = vec![0f32; n];
    ember_quant::dequantize_row(t.ty, g.tensor_data(t), &mut v)?;
    Ok(v)
}

fn opt_vector(g: &Gguf<'_>, name: &str, n: usize) -> Result<Option<Vec<f32>>> {
    if g.tensor(name).is_some() {
        vector(g, name, n).map(Some)
    } else {
        Ok(None)
    }
}

impl Model {
    /// Maps and loads a model file.
    pub fn open(path: impl AsRef<Path>) -> Result<Model> {
        Model::load(path, LoadMode::Map)
    }

    /// Loads a model file, mapped or read into memory as `mode` says.
    pub fn load(path: impl AsRef<Path>, mode: LoadMode) -> Result<Model> {
        Model::from_file(GgufFile::load(path, mode)?)
    }

    /// Loads a model from a mapped file.
    pub fn from_file(file: GgufFile) -> Result<Model> {
        let g = file.parse()?;
        let hp = Hparams::from_gguf(&g)?;
        let (d, qd, kvd, ff) = (hp.n_embd, hp.q_dim(), hp.kv_dim(), hp.n_ff);
        let tok_embd = {
            let t = g.require_tensor("token_embd.weight")?;
            check_shape(t, &[d as u64, hp.n_vocab as u64])?;
            let r = g.tensor_range(t);
            // Rows are dequantized one at a time for the lookup.
            let mut probe = vec![0f32; d];
            ember_quant::dequantize_row(
                t.ty,
                &g.tensor_data(t)[..r.len() / hp.n_vocab],
                &mut probe,
            )?;
            Weight {
                ty: t.ty,
                offset: r.start,
                len: r.len(),
                rows: hp.n_vocab,
                k: d,
            }
        };
        let (output, tied_output) = if g.tensor("output.weight").is_some() {
            (weight(&g, "output.weight", d, hp.n_vocab)?, false)
        } else {
            if ember_quant::vec_dot_type(tok_embd.ty).is_none() {
                return Err(Error::Unsupported(format!(
                    "the tied output head has type {}, which Ember has no matrix kernel for",
                    tok_embd.ty
                )));
            }
            (tok_embd, true)
        };
        let output_norm = vector(&g, "output_norm.weight", d)?;
        let mut layers = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}");
            layers.push(Layer {
                attn_norm: vector(&g, &n("attn_norm.weight"), d)?,
                wq: weight(&g, &n("attn_q.weight"), d, qd)?,
                wk: weight(&g, &n("attn_k.weight"), d, kvd)?,
                wv: weight(&g, &n("attn_v.weight"), d, kvd)?,
                wo: weight(&g, &n("attn_output.weight"), qd, d)?,
                bq: opt_vector(&g, &n("attn_q.bias"), qd)?,
                bk: opt_vector(&g, &n("attn_k.bias"), kvd)?,
                bv: opt_vector(&g, &n("attn_v.bias"), kvd)?,
                bo: opt_vector(&g, &n("attn_output.bias"), d)?,
                ffn_norm: vector(&g, &n("ffn_norm.weight"), d)?,
                w_gate: weight(&g, &n("ffn_gate.weight"), d, ff)?,
                w_up: weight(&g, &n("ffn_up.weight"), d, ff)?,
                w_down: weight(&g, &n("ffn_down.weight"), ff, d)?,
            });
        }
        drop(g);
        Ok(Model {
            file,
            hp,
            tok_embd,
            output_norm,
            output,
            tied_output,
            layers,
        })
    }

    /// The mapped file.
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// Parses the file's header again (cheap) for metadata access.
    pub fn gguf(&self) -> Result<Gguf<'_>> {
        self.file.parse()
    }

    /// The bytes of a weight.
    pub fn data(&self, w: &Weight) -> &[u8] {
        self.file
            .bytes()
            .get(w.offset..w.offset + w.len)
            .unwrap_or(&[])
    }

    /// Bytes of weights read per generated token (every matrix once, the output head included,
    /// plus one embedding row).
    pub fn weight_bytes_per_token(&self) -> u64 {
        let mut n = self.output.len as u64 + self.tok_embd.row_bytes() as u64;
        for l in &self.layers {
            for w in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
                n += w.len as u64;
            }
        }
        n
    }

    /// Total bytes of tensor data in the file.
    pub fn file_size(&self) -> u64 {
        self.file.bytes().len() as u64
    }
}
