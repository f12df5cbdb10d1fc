//! Training loops of tabtune.
//!
//! Owns: k-fold cross-validation of a model family on a validated [`Table`], with the
//! preprocessor fitted on each fold's training rows only (no leakage), out-of-fold predictions
//! and per-fold metrics. Later: backends and device selection, neural training, objectives for
//! the tuner. Must not depend on the CLI.
//!
//! [`Table`]: tabtune_features::Table
#![warn(missing_docs)]

mod cv;
pub mod decision;
mod error;
mod family;
pub mod objective;
pub mod study_report;

pub use cv::{CvReport, FoldResult, cross_validate, fit_all};
pub use error::{Result, TrainError};
pub use family::{Family, ModelParams};
pub use tabtune_models::gbdt::argmax;
