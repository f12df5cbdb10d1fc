//! The crate's one error type.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Everything that can go wrong when fitting, using or storing a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A hyperparameter is out of its domain.
    #[error("invalid hyperparameter `{name}` = {value}: expected {expected}")]
    Param {
        /// Parameter name, as on the command line.
        name: String,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: String,
    },
    /// The training or prediction data cannot be used.
    #[error("{0}")]
    Data(String),
    /// A saved model cannot be read.
    #[error("{path}: {message}")]
    Load {
        /// The model file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A device (GPU) or its memory failed the batched fit (see `tabtune_kernels::KernelError`:
    /// out-of-memory names the buffer and its size).
    #[error(transparent)]
    Kernel(#[from] tabtune_kernels::KernelError),
    /// Worker threads could not be started (the system's thread or memory limits).
    #[error("cannot start {threads} worker thread(s): {message}")]
    Threads {
        /// Threads asked for (0: one per core).
        threads: usize,
        /// The system's reason.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl ModelError {
    /// Whether the error is the user's input (parameters, data, files) rather than a runtime
    /// failure.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Param { .. }
                | Self::Data(_)
                | Self::Load { .. }
                | Self::Kernel(tabtune_kernels::KernelError::Invalid(_))
        )
    }

    pub(crate) fn param(name: &str, value: impl ToString, expected: &str) -> Self {
        Self::Param {
            name: name.to_owned(),
            value: value.to_string(),
            expected: expected.to_owned(),
        }
    }
}

/// Parses a `--param NAME=VALUE` value, naming the parameter and what it expects on failure.
pub(crate) fn parse_param<T: std::str::FromStr>(name: &str, value: &str, what: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| ModelError::param(name, value, what))
}
