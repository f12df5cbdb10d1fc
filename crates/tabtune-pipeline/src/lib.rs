//! The experiment layer of tabtune: what turns a table and a config into the best model.
//!
//! Owns: sweep objectives (tree and neural trials, population batching, pruning, out-of-fold
//! recording) and the study attributes they store ([`sweep`]); sequential feature selection
//! ([`select`]); the decision layer on out-of-fold predictions and its ensemble bundle
//! ([`decision`]); exporting trials as bundles ([`export`]) and bundles as ONNX files or Triton entries
//! ([`portable`]); cross-validating one family
//! ([`train`]); the engineered table of a file ([`features`]); the study HTML report ([`report`]); batch prediction, monitoring and EDA as
//! steps of a run ([`predict`], [`monitor`], [`eda`]); the whole pipeline ([`run()`]); the
//! experiment settings of a config (`[run]`, [`settings`]); and the data every path trains
//! on, loaded, de-duplicated and split once ([`data`]).
//!
//! Typed settings in, typed outcomes out: no command-line parsing and no printing. Progress
//! goes to a [`Progress`] the caller provides (the CLI draws bars; [`Silent`] draws nothing),
//! and a stop flag in [`Hooks`] ends long work cleanly. Must not depend on the CLI; the
//! server (`tabtune-infer`) never depends on this crate.
//!
//! Features: `wgpu` and `cuda` add those backends for neural training.
//!
//! A sweep from Rust (see `examples/sweep.rs` for a whole program):
//!
//! ```no_run
//! use std::sync::Arc;
//! use tabtune_features::Config;
//! use tabtune_pipeline::{Hooks, SweepSettings, sweep};
//!
//! let config = Arc::new(Config::load("configs/obesity.toml".as_ref())?);
//! let mut settings = SweepSettings::new(config, "configs/sweeps/quick-gbdt.toml");
//! settings.n_trials = 6;
//! settings.pruner = "median".into();
//! let outcome = sweep(&settings, &Hooks::default())?;
//! for trial in outcome.ranked().iter().take(3) {
//!     println!("#{} {:?}", trial.number, trial.value);
//! }
//! # Ok::<(), tabtune_pipeline::PipelineError>(())
//! ```
#![warn(missing_docs)]

pub mod data;
pub mod decision;
pub mod eda;
mod error;
pub mod export;
pub mod features;
mod json;
pub mod monitor;
pub mod portable;
pub mod predict;
pub mod progress;
pub mod report;
pub mod run;
pub mod select;
pub mod settings;
pub mod sweep;
pub mod tracking;
pub mod train;

pub use error::{PipelineError, Result};
pub use progress::{Hooks, Progress, Silent, Task};
pub use run::{RunOutcome, RunPlan, run};
pub use sweep::{SweepOutcome, SweepSettings, sweep};
