//! The crate's one error type.

/// Result alias for this crate.
pub type Result<T, E = TuneError> = std::result::Result<T, E>;

/// What can go wrong in a study.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TuneError {
    /// A search space, distribution or parameter value that is not valid; the message names
    /// the key (and the file, where there is one).
    #[error("{0}")]
    Invalid(String),
    /// The study storage failed (the message names the storage URL and what failed).
    #[error("{0}")]
    Storage(String),
    /// The objective kept failing, so the run stopped (the message names the study, the
    /// count and the last trial's reason).
    #[error("{0}")]
    Objective(String),
}

impl TuneError {
    /// Whether the error is the user's input rather than a runtime failure.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Invalid(_))
    }
}
