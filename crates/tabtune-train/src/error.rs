//! The crate's one error type.

/// Result alias for this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// What can go wrong in a training run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// Data, splits or preprocessing.
    #[error(transparent)]
    Features(#[from] tabtune_features::FeaturesError),
    /// Model parameters or fitting.
    #[error(transparent)]
    Model(#[from] tabtune_models::ModelError),
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
}

impl TrainError {
    /// Whether the error is the user's input rather than a runtime failure.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Features(e) => e.is_bad_input(),
            Self::Model(e) => e.is_bad_input(),
            Self::Invalid(_) => true,
        }
    }
}
