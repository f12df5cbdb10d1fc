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
//!
//! # Running a sweep (storage, study, executor)
//!
//! ```ignore
//! use std::sync::Arc;
//! use tabtune_tune::executor::{optimize, OptimizeOptions, TrialError, WorkerContext};
//! use tabtune_tune::study::{Engine, Study, TrialHandle};
//! use tabtune_tune::{storage, pruner_from_name, sampler_from_name, Direction, SearchSpace};
//!
//! let space = SearchSpace::from_toml_file("configs/sweeps/gbdt.toml".as_ref())?;
//! let sampler = sampler_from_name("tpe", seed, &space)?;
//! let engine = Engine::new(space, sampler, pruner_from_name("median")?);
//! // sqlite:///rel.db | sqlite:////abs.db | postgresql://user@host:port/db | memory
//! let storage: Arc<dyn storage::Storage> = Arc::new(storage::open("sqlite:///runs/s.db")?);
//! // Creates the study or loads it (same name, same direction; a mismatch is a bad-input error).
//! let study = Study::open(storage, "gbdt-1", Direction::Maximize, engine)?;
//! let objective = |trial: &mut TrialHandle, ctx: WorkerContext| -> Result<f64, TrialError> {
//!     let lr = trial.param("learning_rate")?.as_f64();       // sampled, already stored
//!     // ... train; per boosting round / epoch / fold:
//!     if trial.report(step, accuracy)? { return Err(TrialError::Pruned); } // pruner or Ctrl-C
//!     Ok(accuracy)                 // Err(TrialError::Failed(msg)) fails only this trial
//! };
//! let options = OptimizeOptions { n_trials: Some(30), workers: 2, stop: ctrl_c_flag,
//!     timeout: None, ..OptimizeOptions::default() };
//! let summary = optimize(&study, &objective, &options, Some(&|event| bar.update(event)))?;
//! ```
//!
//! - `n_trials` is the number of finished (COMPLETE + PRUNED) trials the *study* should hold:
//!   rerunning the same command resumes up to it; failed trials do not count. The budget is
//!   checked in the transaction that creates a trial, so processes on other machines sharing a
//!   PostgreSQL study never overshoot it.
//! - `ctx.worker` (0..workers) picks the device slot; [`executor::optimize_population`] hands
//!   `P` trials at once to a population trainer.
//! - An objective error or panic fails that trial (stored as the system attribute
//!   `fail_reason`) and the sweep goes on; `max_consecutive_failures` (default 10) failures in a
//!   row end the run with [`TuneError::ObjectiveFailing`].
//! - The stop flag (Ctrl-C): [`study::TrialHandle::report`] returns `true` and
//!   [`study::TrialHandle::interrupted`] turns true; running trials are stored as FAIL with the
//!   reason `interrupted: ...`; no new trial starts.
//! - Each running trial beats (`trial_heartbeats`) every [`study::Engine::heartbeat_interval`];
//!   a RUNNING trial whose heartbeat is older than the grace period (a killed worker) is failed
//!   by the next `ask` and retried with the same parameters, up to `max_retry` times (default
//!   3): a WAITING copy with the system attributes `failed_trial` and `retry_history`, as
//!   Optuna's `RetryFailedTrialCallback` makes.
//! - The progress callback gets a [`executor::TrialEvent`] after every finished trial (the trial,
//!   the best so far, counts). [`executor::Summary`] has what `--json` prints.
//! - Study attributes: system `tabtune:sampler`, `tabtune:pruner`; user `fixed_params`.
#![warn(missing_docs)]

mod error;
pub mod executor;
pub mod model;
pub mod pruner;
pub mod sampler;
pub mod space;
pub mod storage;
pub mod study;

pub use error::{
    DistributionProblem, PrunerProblem, Result, STORAGE_URL_FORMS, SpaceProblem, StorageFailure,
    TuneError, UrlProblem,
};
pub use model::{Choice, Direction, Distribution, FrozenTrial, ParamValue, TrialState};
pub use pruner::{Pruner, StudyView, Verdict, pruner_from_name};
pub use sampler::{Proposal, Sampler, sampler_from_name};
pub use space::{Condition, ParamSpec, SearchSpace};
