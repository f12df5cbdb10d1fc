//! Inference from tabtune model bundles.
//!
//! Owns: loading a bundle (a folder, or a registry reference resolved through
//! `tabtune-track`, again on every hot reload) for prediction and predicting on raw (unpreprocessed) data with the
//! bundle's own schema and preprocessor; monitoring reports ([`monitor`]: drift, data quality,
//! model performance); the HTTP API ([`serve`], feature `serve`: predictions, monitoring over a
//! window of recent requests, feedback, hot reload, optional bearer token). Must not depend on
//! `tabtune-train`, `tabtune-tune` or `tabtune-pipeline`.
//!
//! Cargo features: `report` (HTML reports with SVG charts), `serve` (the axum API; implies
//! `report`).
#![warn(missing_docs)]

mod error;
pub mod monitor;
mod predictor;
#[cfg(feature = "serve")]
pub mod serve;

pub use error::{InferError, Result};
pub use predictor::{Prediction, Predictor, load_bundle, load_model};
