//! Ember: an inference runtime for quantized GGUF models on edge devices.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod boards;
pub mod chat;
pub mod error;
pub mod exec;
pub mod fetch;
pub mod generate;
pub mod gguf;
pub mod model;
pub mod ops;
pub mod plan;
pub mod quantize;
pub mod sampler;
pub mod sys;
pub mod tokenizer;

pub use ember_quant::GgmlType;

/// The kernel tiers and CPU features, from `ember-quant`.
pub mod kernels {
    pub use ember_quant::bench_support::sum_u64_words;
    pub use ember_quant::{cpu_features, tier, try_tier, CpuFeatures, Tier};
}
pub use error::{Error, Result};
pub use exec::{Exec, Profile, Session, Stage};
pub use gguf::LoadMode;
pub use model::Model;
pub use plan::{KvType, Plan, PlanConfig};
