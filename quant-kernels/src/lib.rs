//! Quantized block formats and kernels for Ember.
//!
//! `ember-quant` turns GGUF blocks into numbers. It knows nothing about
//! models. Without the `std` feature it is `no_std`.
#![cfg_attr(not(feature = "std"), no_std)]

mod error;
mod types;

pub use error::Error;
pub use types::{GgmlType, ALL_TYPES};
