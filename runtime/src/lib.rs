//! Ember: an inference runtime for quantized GGUF models on edge devices.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod error;
pub mod gguf;

pub use error::{Error, Result};
pub use ember_quant::GgmlType;
