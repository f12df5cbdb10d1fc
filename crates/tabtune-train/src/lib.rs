//! Training loops of tabtune.
//!
//! Owns: k-fold cross-validation of a model family on a validated [`Table`], with the
//! preprocessor fitted on each fold's training rows only (no leakage), out-of-fold predictions
//! and per-fold metrics; neural training on burn ([`nn`]: device selection, the training loop,
//! population training of many trials or folds as one stacked model, and the `on_epoch` hook a
//! tuner uses for intermediate values and pruning). Training only: sweep objectives, the
//! decision layer and reports live in `tabtune-pipeline`. Must not depend on the tuner, the
//! experiment layer or the CLI.
//!
//! Features: `wgpu` and `cuda` add those burn backends (`--device wgpu`, `--device cuda:N`);
//! without them neural models train on the CPU (flex).
//!
//! [`Table`]: tabtune_features::Table
#![warn(missing_docs)]

mod cv;
mod error;
mod family;
pub mod nn;
pub mod trees;

pub use cv::{
    CvCache, CvHooks, CvReport, FoldModel, FoldResult, cross_validate, cross_validate_cached,
    cross_validate_on, cross_validate_with, fit_all, fit_all_on,
};
pub use error::{Result, TrainError};
pub use family::{Family, ModelParams};
