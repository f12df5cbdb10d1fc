//! The command line's errors: its own usage errors (a flag value out of range) and the errors
//! of the library crates it calls. [`CliError::is_bad_input`] picks the exit code: 2 for bad
//! input or usage, 1 for a runtime failure.

use tabtune_features::FeaturesError;
use tabtune_infer::InferError;
use tabtune_models::ModelError;
use tabtune_pipeline::PipelineError;
use tabtune_track::TrackError;

/// A flag whose value the command cannot take.
#[derive(Debug, thiserror::Error)]
#[error("{flag} must be {expected}, got {value}")]
pub struct UsageError {
    /// The flag, as typed (`--workers`).
    pub flag: &'static str,
    /// The value given.
    pub value: String,
    /// What it takes.
    pub expected: String,
}

impl UsageError {
    /// `flag` got `value` but takes `expected`.
    pub fn new(
        flag: &'static str,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Self {
            flag,
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

/// Every error a command can end with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag value out of range.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The experiment layer (train, sweep, select, export, run, predict, monitor).
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Data, config or features.
    #[error(transparent)]
    Features(#[from] FeaturesError),
    /// Loading or serving a bundle.
    #[error(transparent)]
    Infer(#[from] InferError),
    /// The registry.
    #[error(transparent)]
    Track(#[from] TrackError),
    /// A model bundle.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Ctrl-C or SIGTERM stopped the command after it saved what it had (exit code 130).
    #[error("interrupted: {what}")]
    Interrupted {
        /// What was stopped, and how to go on.
        what: String,
    },
    /// The operating system refused something the command needs (a socket, a signal
    /// handler).
    #[error("{what}: {source}")]
    System {
        /// What the command tried.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// The exit code: 130 when interrupted (as a shell reports SIGINT), 2 for bad input or
    /// usage, 1 for a runtime failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Interrupted { .. } => 130,
            e if e.is_bad_input() => 2,
            _ => 1,
        }
    }

    /// Whether the error is the user's input (exit code 2) rather than a runtime failure (1).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Usage(_) => true,
            Self::Pipeline(e) => e.is_bad_input(),
            Self::Features(e) => e.is_bad_input(),
            Self::Infer(e) => e.is_bad_input(),
            Self::Track(e) => e.is_bad_input(),
            Self::Model(e) => e.is_bad_input(),
            Self::System { .. } | Self::Interrupted { .. } => false,
        }
    }

    /// The data error inside, if any (its validation report goes into `--json`).
    pub fn features(&self) -> Option<&FeaturesError> {
        match self {
            Self::Features(e) => Some(e),
            Self::Pipeline(e) => e.features(),
            _ => None,
        }
    }
}

/// Result alias of the commands.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_name_the_flag_and_exit_2() {
        let e = CliError::from(UsageError::new("--workers", 0, "at least 1"));
        assert_eq!(e.to_string(), "--workers must be at least 1, got 0");
        assert!(e.is_bad_input());
        assert_eq!(e.exit_code(), 2);
        let e = CliError::Interrupted {
            what: "sweep of study s".into(),
        };
        assert_eq!(e.exit_code(), 130);
        assert!(!e.is_bad_input());
        let e = CliError::System {
            what: "cannot listen on 127.0.0.1:1".into(),
            source: std::io::Error::other("in use"),
        };
        assert!(!e.is_bad_input());
    }
}
