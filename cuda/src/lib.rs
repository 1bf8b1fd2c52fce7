//! CUDA backend for Ember.
//!
//! This crate keeps its API whether or not CUDA support is built. Without the
//! `cuda` feature (the default), [`Device::open`] returns [`Error::NotBuilt`].

/// Errors from the CUDA backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Ember was built without the `cuda` feature.
    #[error("this Ember was built without CUDA support: rebuild with `--features cuda` to use an NVIDIA GPU, or run on the CPU (the default)")]
    NotBuilt,
    /// CUDA support is built but no usable driver or device was found.
    #[error("no CUDA device available: {0}")]
    NoDevice(String),
}

/// A CUDA device handle.
#[derive(Debug)]
pub struct Device {
    ordinal: usize,
}

impl Device {
    /// Opens CUDA device `ordinal`.
    ///
    /// # Errors
    /// [`Error::NotBuilt`] when Ember was built without the `cuda` feature;
    /// [`Error::NoDevice`] when no driver or device is present.
    pub fn open(ordinal: usize) -> Result<Device, Error> {
        if cfg!(feature = "cuda") {
            // The GPU kernels are a later issue; say so rather than pretend.
            let _ = ordinal;
            Err(Error::NoDevice(
                "the CUDA kernels are not implemented yet in this version of Ember".into(),
            ))
        } else {
            Err(Error::NotBuilt)
        }
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
}

/// Whether this build includes the CUDA backend.
pub fn is_built() -> bool {
    cfg!(feature = "cuda")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_without_cuda_is_a_clear_error() {
        let err = Device::open(0).unwrap_err();
        if !is_built() {
            assert!(matches!(err, Error::NotBuilt));
            assert!(err.to_string().contains("--features cuda"));
        }
    }
}
