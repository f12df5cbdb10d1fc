//! The crate's one error type.

/// Result alias for this crate.
pub type Result<T, E = InferError> = std::result::Result<T, E>;

/// What can go wrong when predicting or monitoring.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferError {
    /// The input data.
    #[error(transparent)]
    Features(#[from] tabtune_features::FeaturesError),
    /// The bundle or the model.
    #[error(transparent)]
    Model(#[from] tabtune_models::ModelError),
    /// A registry reference (`models:/name@alias`) that does not resolve.
    #[error(transparent)]
    Registry(#[from] tabtune_track::TrackError),
    /// Too few rows for a report.
    #[error("{what}: {rows} row(s); at least {needed} needed")]
    NotEnoughData {
        /// Which data.
        what: String,
        /// Rows there are.
        rows: usize,
        /// Rows needed.
        needed: usize,
    },
    /// Two tables (or two models) that should share a schema do not.
    #[error("schema mismatch: {message}")]
    SchemaMismatch {
        /// What differs.
        message: String,
    },
}

impl InferError {
    /// Whether the error is the user's input rather than a runtime failure.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Features(e) => e.is_bad_input(),
            Self::Model(e) => e.is_bad_input(),
            Self::Registry(e) => e.is_bad_input(),
            Self::NotEnoughData { .. } | Self::SchemaMismatch { .. } => true,
        }
    }
}
