//! The crate's one error type.

use std::fmt;
use std::path::PathBuf;

use tabtune_models::ModelError;

/// Result alias for this crate.
pub type Result<T, E = OnnxError> = std::result::Result<T, E>;

/// The part of a bundle that an error is about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// A model family (`gbdt-leafwise`, `mlp`, ...), with the ensemble member it is, if any.
    Family {
        /// The family, as `tabtune train --model` names it, or the model kind.
        family: String,
        /// The ensemble member (`member 2 (obesity-nn#3)`), when the model is one.
        member: Option<String>,
    },
    /// A preprocessing step (`numeric column Height`, `engineered feature BMI`, ...).
    Step {
        /// The step.
        step: String,
    },
    /// The bundle as a whole (classes, feature names).
    Bundle,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Family {
                family,
                member: None,
            } => write!(f, "model family `{family}`"),
            Self::Family {
                family,
                member: Some(m),
            } => write!(f, "model family `{family}` (ensemble {m})"),
            Self::Step { step } => write!(f, "preprocessing step `{step}`"),
            Self::Bundle => write!(f, "the bundle"),
        }
    }
}

/// Everything that can go wrong when exporting a bundle to ONNX.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// The bundle cannot be read, or was modified after it was written (refused exactly as
    /// `tabtune predict` refuses it).
    #[error(transparent)]
    Bundle(#[from] ModelError),
    /// A part of the bundle has no ONNX form; nothing was written.
    #[error("{part} cannot be expressed in ONNX: {reason}")]
    Unsupported {
        /// The family or preprocessing step.
        part: Part,
        /// Why, with the offending values.
        reason: String,
    },
    /// The model would exceed protobuf's 2 GiB limit for one file.
    #[error(
        "the ONNX model would be {bytes} bytes, over protobuf's limit of {limit} bytes for one \
         file; export a smaller model (fewer rounds or trees)"
    )]
    TooLarge {
        /// Size of the encoded model.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl OnnxError {
    /// Whether the error is the user's input (an unreadable, modified or inexpressible bundle)
    /// rather than a runtime failure (exit code 2 against 1 in the CLI).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Bundle(e) => e.is_bad_input(),
            Self::Unsupported { .. } | Self::TooLarge { .. } => true,
            Self::Io { .. } => false,
        }
    }

    pub(crate) fn family(family: &str, member: Option<&str>, reason: impl Into<String>) -> Self {
        Self::Unsupported {
            part: Part::Family {
                family: family.to_owned(),
                member: member.map(str::to_owned),
            },
            reason: reason.into(),
        }
    }

    pub(crate) fn step(step: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Unsupported {
            part: Part::Step { step: step.into() },
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, message: impl ToString) -> Self {
        Self::Io {
            path: path.into(),
            message: message.to_string(),
        }
    }
}
