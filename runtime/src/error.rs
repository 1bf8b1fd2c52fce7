//! The runtime's one error type.

use std::path::PathBuf;

/// Every error the Ember runtime returns.
///
/// Messages are meant for the person running Ember: they say what went wrong
/// and, where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A GGUF file is malformed. `offset` is the byte offset where the problem was found.
    #[error("bad GGUF at byte {offset}: {msg}")]
    Gguf {
        /// Byte offset into the file.
        offset: u64,
        /// What is wrong.
        msg: String,
    },
    /// A metadata key is missing.
    #[error("the model has no metadata key `{0}`")]
    MissingKey(String),
    /// A metadata key has another type than expected.
    #[error("metadata key `{key}` is {found}, expected {expected}")]
    KeyType {
        /// The key.
        key: String,
        /// The type expected.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// A tensor the model needs is missing.
    #[error("the model has no tensor `{0}`")]
    MissingTensor(String),
    /// The model is valid GGUF but Ember cannot run it.
    #[error("unsupported model: {0}")]
    Unsupported(String),
    /// The tokenizer cannot be built or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Bad input from the caller (token ids, prompt length, options).
    #[error("{0}")]
    Input(String),
    /// The default model could not be fetched.
    #[error("{0}")]
    Fetch(String),
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A kernel error.
    #[error(transparent)]
    Kernel(#[from] ember_quant::Error),
}

/// The runtime's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
