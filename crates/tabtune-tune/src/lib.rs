//! The hyperparameter optimisation engine of tabtune.
//!
//! Generic: no model code and no burn. The trainer hands it an objective. Owns search spaces
//! (TOML), samplers (random, grid, QMC, TPE), pruners (median, percentile, successive halving /
//! Hyperband, Wilcoxon), study storage in Optuna's RDB schema (SQLite, PostgreSQL) and the trial
//! executor.
//!
//! [`model`] holds the types every part shares: directions, trial states, Optuna-compatible
//! distributions and parameter values, and [`FrozenTrial`], a finished or running trial as the
//! storage returns it.
#![warn(missing_docs)]

mod error;
pub mod model;
pub mod pruner;
pub mod sampler;
pub mod space;
pub mod storage;

pub use error::{Result, TuneError};
pub use model::{Choice, Direction, Distribution, FrozenTrial, ParamValue, TrialState};
pub use pruner::{Pruner, StudyView, Verdict, pruner_from_name};
pub use sampler::{Proposal, Sampler, sampler_from_name};
pub use space::{Condition, ParamSpec, SearchSpace};
