//! Model families of tabtune.
//!
//! Owns: the gradient-boosted tree family ([`gbdt`]: histogram trees grown depth-wise,
//! leaf-wise or oblivious, multi-class softmax and binary log loss, early stopping, importances,
//! a versioned JSON format). Must not depend on the trainer, the tuner or the CLI.
#![warn(missing_docs)]

mod error;
pub mod gbdt;

pub use error::{ModelError, Result};
