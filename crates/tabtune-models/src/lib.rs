//! Model families of tabtune.
//!
//! Owns: the gradient-boosted tree family ([`gbdt`]: histogram trees grown depth-wise,
//! leaf-wise or oblivious, multi-class softmax and binary log loss, early stopping, importances,
//! a versioned JSON format) and the classification-tree family ([`forest`]: decision tree and
//! random forest with Gini or entropy and out-of-bag score), and the neural family ([`nn`]: MLP
//! and TabM modules on burn, stacked so many trials train as one model; CPU prediction).
//! [`metrics`] holds what every family and caller measures with (argmax, log loss, accuracy,
//! the training callbacks' [`metrics::Control`]). Must not depend on the trainer, the tuner or the CLI.
//!
//! Features: `wgpu` and `cuda` add those burn backends (used by `tabtune-train`); the CPU
//! backend (flex) is always built, so every bundle predicts on the CPU.
#![warn(missing_docs)]

mod any;
pub mod bundle;
mod check;
pub mod ensemble;
mod error;
pub mod forest;
pub mod gbdt;
pub mod metrics;
pub mod nn;
mod saved;
mod threads;

pub use any::AnyModel;
pub use error::{ModelError, Result};
pub use threads::max_threads;
