//! Inference from tabtune model bundles.
//!
//! Owns: loading a bundle for prediction and predicting on raw (unpreprocessed) data with the
//! bundle's own schema and preprocessor; the HTTP API ([`serve`], feature `serve`). Must not
//! depend on `tabtune-train` or `tabtune-tune`.
#![warn(missing_docs)]

mod error;
pub mod monitor;
mod predictor;
#[cfg(feature = "serve")]
pub mod serve;

pub use error::{InferError, Result};
pub use predictor::{Prediction, Predictor, load_bundle};
