//! Model families of tabtune.
//!
//! Owns: the gradient-boosted tree family ([`gbdt`]: histogram trees grown depth-wise,
//! leaf-wise or oblivious, multi-class softmax and binary log loss, early stopping, importances,
//! a versioned JSON format) and the classification-tree family ([`forest`]: decision tree and
//! random forest with Gini or entropy and out-of-bag score). Must not depend on the trainer, the tuner or the CLI.
#![warn(missing_docs)]

mod any;
pub mod bundle;
mod error;
pub mod forest;
pub mod gbdt;
mod saved;

pub use any::AnyModel;
pub use error::{ModelError, Result};
