//! The crate's one error type.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = TrackError> = std::result::Result<T, E>;

/// Everything that can go wrong when tracking runs or using the registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrackError {
    // --- user input ---
    /// A `models:/...` reference or a model/alias name is malformed.
    #[error("invalid model reference `{reference}`: {message}")]
    Reference {
        /// The reference as given.
        reference: String,
        /// What was expected.
        message: String,
    },
    /// A registered model, version or alias does not exist.
    #[error("{what} not found in the {registry} registry{hint}")]
    NotFound {
        /// What was looked up (`model "obesity"`, `version 3 of "obesity"`, ...).
        what: String,
        /// Which registry (`local (checkpoints/registry)`, `MLflow (http://...)`).
        registry: String,
        /// A hint such as the names that do exist (empty or starting with "; ").
        hint: String,
    },
    /// A bundle folder cannot be registered or a downloaded one is damaged.
    #[error("{path}: {message}")]
    Bundle {
        /// The file or folder.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A file of the local store or registry is not what this version writes.
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },

    // --- runtime ---
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The MLflow server could not be reached or answered with an error.
    #[error("MLflow {endpoint}: {message}")]
    Mlflow {
        /// The endpoint (`POST runs/create`, ...).
        endpoint: String,
        /// What went wrong (HTTP status and MLflow's error code and message, or the transport
        /// error).
        message: String,
        /// MLflow's `error_code` (`RESOURCE_DOES_NOT_EXIST`, ...) when it sent one.
        code: Option<String>,
        /// The server could not be reached or kept failing (transport error, 5xx, 429) after
        /// every retry, as opposed to refusing this one request.
        unavailable: bool,
    },
}

impl TrackError {
    /// Whether the error is the user's input rather than a runtime failure.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::Reference { .. } | Self::NotFound { .. } | Self::Bundle { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn bundle(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Bundle {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Whether the MLflow server was unreachable or kept failing (not a refused request).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Mlflow {
                unavailable: true,
                ..
            }
        )
    }

    /// MLflow's error code, when the server sent one.
    pub fn mlflow_code(&self) -> Option<&str> {
        match self {
            Self::Mlflow { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

impl From<tabtune_features::FeaturesError> for TrackError {
    fn from(e: tabtune_features::FeaturesError) -> Self {
        match e {
            tabtune_features::FeaturesError::Io { path, source } => Self::Io { path, source },
            other => Self::Corrupt {
                path: PathBuf::new(),
                message: other.to_string(),
            },
        }
    }
}
