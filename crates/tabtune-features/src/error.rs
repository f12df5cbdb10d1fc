//! The crate's one error type.

use std::path::PathBuf;

use crate::validate::ValidationReport;

/// Result alias for this crate.
pub type Result<T, E = FeaturesError> = std::result::Result<T, E>;

/// Everything that can go wrong in `tabtune-features`. Each message names the file, key, row,
/// column or value that caused it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FeaturesError {
    // --- configuration -------------------------------------------------------------------
    /// The config file is not valid TOML or does not match the config schema (unknown key,
    /// wrong type). The message from the TOML parser names the key, line and column.
    #[error("{path}: {message}")]
    ConfigParse {
        /// The config file.
        path: PathBuf,
        /// The parser's message (names the key, line and column).
        message: String,
    },
    /// A config value is well-formed TOML but not a valid setting.
    #[error("{path}: invalid value for `{key}`: {message}")]
    ConfigValue {
        /// The config file.
        path: PathBuf,
        /// Dotted key, for example `transforms.log1p[0]`.
        key: String,
        /// What was wrong and what was expected.
        message: String,
    },

    // --- input data ----------------------------------------------------------------------
    /// The file cannot be used at all (empty, header only, missing or extra columns, BOM ...).
    #[error("{path}: {message}")]
    BadFile {
        /// The data file.
        path: PathBuf,
        /// What was wrong and what was expected.
        message: String,
    },
    /// Rows failed validation and the policy was `fail`.
    #[error("{0}")]
    Invalid(Box<ValidationReport>),

    // --- fitted state ----------------------------------------------------------------------
    /// A table does not match what a fitted preprocessor or an operation expects.
    #[error("{0}")]
    Shape(String),
    /// A fitted preprocessor file cannot be read or is incompatible.
    #[error("{path}: {message}")]
    Preprocessor {
        /// The preprocessor file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// Cross-validation splits cannot be made as asked.
    #[error("cannot make {folds}-fold splits: {message}")]
    Split {
        /// Requested number of folds.
        folds: usize,
        /// What was wrong.
        message: String,
    },

    // --- io ----------------------------------------------------------------------------------
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Downloading a dataset failed (network, credentials, checksum).
    #[error("{0}")]
    Fetch(String),
    /// Writing a report or table through an output library failed.
    #[error("{path}: {message}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl FeaturesError {
    /// Whether the error is the user's input (config, data, arguments) rather than a runtime
    /// failure; the CLI maps this to exit code 2.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::ConfigParse { .. }
                | Self::ConfigValue { .. }
                | Self::BadFile { .. }
                | Self::Invalid(_)
                | Self::Shape(_)
                | Self::Preprocessor { .. }
                | Self::Split { .. }
                | Self::Fetch(_)
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::BadFile {
            path: path.into(),
            message: message.into(),
        }
    }
}
