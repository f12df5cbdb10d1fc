//! Where runs are tracked: the local store (`reports/runs`), TensorBoard
//! (`reports/tensorboard`) and MLflow when a tracking URI is in effect. Tracking never fails an
//! experiment: a sink that fails is warned about and the work goes on.

use std::path::Path;
use std::time::Duration;

use tabtune_track::registry::tracking_uri;
use tabtune_track::{LocalStore, Mlflow, MultiTracker, RunSpec, RunStatus, TensorBoard};
use tabtune_train::CvReport;

/// Folder of the local run store.
pub const RUNS_DIR: &str = "reports/runs";
/// Folder of the TensorBoard event files.
pub const TENSORBOARD_DIR: &str = "reports/tensorboard";
/// How long a finished command waits for queued MLflow updates.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Which sinks track an experiment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracking {
    /// Track at all (`false`: no local record, TensorBoard file or MLflow run).
    pub enabled: bool,
    /// The MLflow tracking server; `None`: `MLFLOW_TRACKING_URI` when set, else no MLflow.
    pub uri: Option<String>,
}

impl Default for Tracking {
    fn default() -> Self {
        Self {
            enabled: true,
            uri: None,
        }
    }
}

impl Tracking {
    /// No tracking at all.
    pub fn off() -> Self {
        Self {
            enabled: false,
            uri: None,
        }
    }

    /// The MLflow tracking URI in effect, if any.
    pub fn mlflow_uri(&self) -> Option<String> {
        tracking_uri(self.uri.as_deref())
    }

    /// The sinks: none when disabled, else local + TensorBoard (+ MLflow).
    pub fn tracker(&self) -> MultiTracker {
        if !self.enabled {
            return MultiTracker::none();
        }
        let mut tracker = MultiTracker::none()
            .with(LocalStore::new(RUNS_DIR))
            .with(TensorBoard::new(TENSORBOARD_DIR));
        if let Some(uri) = self.mlflow_uri() {
            match Mlflow::new(&uri) {
                Ok(sink) => tracker = tracker.with(sink),
                Err(e) => tracing::warn!("MLflow tracking off: {e}"),
            }
        }
        tracker
    }
}

/// Hyperparameters as flat JSON: an enum wrapper (`{"Gbdt": {...}}`) is unwrapped.
pub(crate) fn flat_params(params: &impl serde::Serialize) -> serde_json::Value {
    let value = serde_json::to_value(params).unwrap_or(serde_json::Value::Null);
    match &value {
        serde_json::Value::Object(map) if map.len() == 1 => match map.values().next() {
            Some(inner @ serde_json::Value::Object(_)) => inner.clone(),
            _ => value,
        },
        _ => value,
    }
}

/// Waits for the sinks' queued updates, warning about a slow server.
pub(crate) fn flush(tracker: &MultiTracker) {
    for e in tracker.flush(FLUSH_TIMEOUT) {
        // A dead server was already reported once by its sink; a slow one is reported here.
        if e.to_string().contains("(flush)") {
            tracing::warn!("tracking: {e}; the rest of this run may be missing in MLflow");
        } else {
            tracing::debug!("tracking flush: {e}");
        }
    }
}

/// Logs a cross-validation run under `experiment`: params, per-fold metrics (step = fold),
/// the CV means, and the bundle folder when one was saved.
pub fn log_cv_run(
    tracking: &Tracking,
    experiment: &str,
    family: &str,
    params: &impl serde::Serialize,
    report: &CvReport,
    bundle: Option<&Path>,
) {
    let tracker = tracking.tracker();
    if tracker.is_empty() {
        return;
    }
    let spec = RunSpec::new(experiment, format!("train-{family}"))
        .params_json(&flat_params(params))
        .param("family", family)
        .param("folds", report.folds.len())
        .tag("tabtune.command", "train")
        .tag("tabtune.family", family);
    let mut run = tracker.start_run(&spec);
    for (step, fold) in report.folds.iter().enumerate() {
        run.log_metrics(
            step as u64,
            &[
                ("fold_accuracy", fold.accuracy),
                ("fold_logloss", fold.logloss),
                ("fold_rounds", fold.rounds as f64),
                ("fold_seconds", fold.seconds),
            ],
        );
    }
    run.log_metrics(
        0,
        &[
            ("cv_accuracy_mean", report.accuracy_mean),
            ("cv_accuracy_std", report.accuracy_std),
            ("cv_logloss_mean", report.logloss_mean),
            ("seconds", report.seconds),
        ],
    );
    if let Some(dir) = bundle {
        run.log_artifact(dir);
    }
    let summary = run.end(RunStatus::Finished);
    flush(&tracker);
    tracing::info!(
        "tracked run {:?} in {} ({})",
        summary.name,
        experiment,
        summary.complete.join(", ")
    );
}
