//! The [`Tracker`] trait: a sink that records runs (params, tags, metrics per step, artifacts).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Tag naming the study a run belongs to (sweeps).
pub const TAG_STUDY: &str = "tabtune.study";
/// Tag holding the trial number of a run within its study.
pub const TAG_TRIAL: &str = "tabtune.trial";

/// Milliseconds since the Unix epoch (MLflow's timestamps).
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a run starts with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Experiment (MLflow experiment, TensorBoard and local-store folder), e.g. the study name.
    pub experiment: String,
    /// Run name (MLflow's `mlflow.runName`; the TensorBoard run folder).
    pub name: String,
    /// Hyperparameters (numbers, strings, booleans; nested values are written as JSON text).
    pub params: BTreeMap<String, serde_json::Value>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl RunSpec {
    /// A run named `name` in `experiment`, with no params or tags yet.
    pub fn new(experiment: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            experiment: experiment.into(),
            name: name.into(),
            ..Self::default()
        }
    }

    /// Adds a hyperparameter.
    #[must_use]
    pub fn param(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    /// Adds every entry of a JSON object as a hyperparameter (other values: one param `params`).
    #[must_use]
    pub fn params_json(mut self, params: &serde_json::Value) -> Self {
        match params {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    self.params.insert(k.clone(), v.clone());
                }
            }
            serde_json::Value::Null => {}
            other => {
                self.params.insert("params".into(), other.clone());
            }
        }
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Tags the run as trial `number` of `study` ([`TAG_STUDY`], [`TAG_TRIAL`]).
    #[must_use]
    pub fn trial(self, study: &str, number: u64) -> Self {
        self.tag(TAG_STUDY, study)
            .tag(TAG_TRIAL, number.to_string())
    }
}

/// How a run ended (MLflow's run statuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Still running (never passed to `end`).
    Running,
    /// Completed normally.
    Finished,
    /// Failed with an error.
    Failed,
    /// Stopped (pruned trial, interrupted).
    Killed,
}

impl RunStatus {
    /// MLflow's name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }
}

/// One run in one sink. Methods may block only on local I/O; network sinks queue the work.
pub trait RunSink: Send {
    /// Records `metrics` at `step` (e.g. the fold or epoch).
    fn log_metrics(&mut self, step: u64, metrics: &[(&str, f64)]) -> Result<()>;
    /// Adds or overwrites tags.
    fn set_tags(&mut self, tags: &[(&str, &str)]) -> Result<()>;
    /// Stores a file, or a folder with its files, under its own name in the run's artifacts.
    fn log_artifact(&mut self, path: &Path) -> Result<()>;
    /// Closes the run with `status`.
    fn end(&mut self, status: RunStatus) -> Result<()>;
}

/// A place runs are recorded: the local store, TensorBoard or MLflow.
pub trait Tracker: Send + Sync {
    /// Short name for messages (`local`, `tensorboard`, `mlflow`).
    fn name(&self) -> &str;
    /// Starts a run.
    fn start_run(&self, spec: &RunSpec) -> Result<Box<dyn RunSink>>;
    /// Waits (at most `timeout`) until queued work has been sent. Local sinks return at once.
    fn flush(&self, timeout: Duration) -> Result<()> {
        let _ = timeout;
        Ok(())
    }
    /// Gives up on queued and in-progress network work at once (on SIGTERM/SIGINT, so the
    /// process never waits on a tracking server to exit). Local sinks have nothing to cancel.
    fn cancel(&self) {}
}

/// Text of a param value as MLflow and the local store record it (strings without quotes).
pub(crate) fn param_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_builder_sets_trial_tags_and_flattens_params() {
        let spec = RunSpec::new("study", "trial-3")
            .trial("study", 3)
            .params_json(&serde_json::json!({"lr": 0.1, "growth": "leaf"}));
        assert_eq!(spec.tags[TAG_STUDY], "study");
        assert_eq!(spec.tags[TAG_TRIAL], "3");
        assert_eq!(param_text(&spec.params["growth"]), "leaf");
        assert_eq!(param_text(&spec.params["lr"]), "0.1");
    }

    #[test]
    fn trait_objects_cross_threads() {
        fn is_send<T: Send>() {}
        fn is_send_sync<T: Send + Sync>() {}
        is_send::<Box<dyn RunSink>>();
        is_send_sync::<Box<dyn Tracker>>();
    }
}
