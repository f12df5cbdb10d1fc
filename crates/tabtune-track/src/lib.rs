//! Experiment tracking and the model registry of tabtune.
//!
//! Owns: the [`Tracker`] trait and its sinks ([`LocalStore`]: JSON/JSONL under a folder, no
//! server; [`TensorBoard`]: event files with scalars and the HParams plugin's session summaries;
//! [`Mlflow`]: MLflow's REST API 2.0 on a background thread that never blocks or fails training),
//! the fan-out [`MultiTracker`] that trainers use, and the model [`registry`] (local folder or
//! MLflow's model registry; `models:/name@alias` and `models:/name/3` references).
//!
//! Must not depend on: burn, polars, the trainer or the tuner (the inference crate reads the
//! registry). Bundles are handled as folders with a `bundle.json` whose checksums are verified
//! here; the full bundle loader lives in `tabtune-models`.
#![warn(missing_docs)]

mod error;
mod local;
pub mod mlflow;
mod multi;
pub mod registry;
mod tensorboard;
mod tracker;

pub use error::{Result, TrackError};
pub use local::{LocalRun, LocalStore, MetricPoint};
pub use mlflow::{Mlflow, MlflowClient};
pub use multi::{MultiTracker, RunHandle, RunSummary};
pub use tensorboard::{EventWriter, TensorBoard};
pub use tracker::{RunSink, RunSpec, RunStatus, TAG_STUDY, TAG_TRIAL, Tracker, now_millis};

/// Environment variable naming the MLflow tracking server.
pub const MLFLOW_TRACKING_URI: &str = "MLFLOW_TRACKING_URI";
