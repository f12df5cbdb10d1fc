//! Tracking of `tabtune train` runs: the local store (`reports/runs`), TensorBoard
//! (`reports/tensorboard`) and MLflow when a tracking URI is set. Tracking never fails training:
//! a sink that fails is warned about and the command goes on.

use std::path::Path;
use std::time::Duration;

use tabtune_track::{LocalStore, Mlflow, MultiTracker, RunSpec, RunStatus, TensorBoard};
use tabtune_train::CvReport;

use crate::cli::TrainArgs;
use crate::context::Context;
use crate::model_ref::tracking_uri;

/// Folder of the local run store.
pub const RUNS_DIR: &str = "reports/runs";
/// Folder of the TensorBoard event files.
pub const TENSORBOARD_DIR: &str = "reports/tensorboard";
/// How long the command waits at exit for queued MLflow updates.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// `--tracking-uri` values: empty (tracking off for MLflow) or http(s)://.
pub fn parse_tracking_uri(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() || t.starts_with("http://") || t.starts_with("https://") {
        Ok(t.to_owned())
    } else {
        Err(format!(
            "`{text}`: expected the URL of an MLflow tracking server, for example http://127.0.0.1:5000"
        ))
    }
}

/// The sinks for a command: none with `no_track`, else local + TensorBoard (+ MLflow).
pub fn tracker(no_track: bool, uri: Option<&str>) -> MultiTracker {
    if no_track {
        return MultiTracker::none();
    }
    let mut tracker = MultiTracker::none()
        .with(LocalStore::new(RUNS_DIR))
        .with(TensorBoard::new(TENSORBOARD_DIR));
    if let Some(uri) = tracking_uri(uri) {
        match Mlflow::new(&uri) {
            Ok(sink) => tracker = tracker.with(sink),
            Err(e) => tracing::warn!("MLflow tracking off: {e}"),
        }
    }
    tracker
}

/// Hyperparameters as flat JSON: an enum wrapper (`{"Gbdt": {...}}`) is unwrapped.
fn flat_params(params: &impl serde::Serialize) -> serde_json::Value {
    let value = serde_json::to_value(params).unwrap_or(serde_json::Value::Null);
    match &value {
        serde_json::Value::Object(map) if map.len() == 1 => match map.values().next() {
            Some(inner @ serde_json::Value::Object(_)) => inner.clone(),
            _ => value,
        },
        _ => value,
    }
}

/// Logs a cross-validation run: params, per-fold metrics (step = fold), the CV means, and the
/// bundle folder when one was saved.
pub fn log_train_run(
    ctx: &Context,
    args: &TrainArgs,
    family: &str,
    params: &impl serde::Serialize,
    report: &CvReport,
    bundle: Option<&Path>,
) {
    let tracker = tracker(args.no_track, args.tracking_uri.as_deref());
    if tracker.is_empty() {
        return;
    }
    let experiment = args
        .experiment
        .clone()
        .unwrap_or_else(|| ctx.config.name.clone());
    let spec = RunSpec::new(&experiment, format!("train-{family}"))
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
    for e in tracker.flush(FLUSH_TIMEOUT) {
        // A dead server was already reported once by its sink; a slow one is reported here.
        if e.to_string().contains("(flush)") {
            tracing::warn!("tracking: {e}; the rest of this run may be missing in MLflow");
        } else {
            tracing::debug!("tracking flush: {e}");
        }
    }
    tracing::info!(
        "tracked run {:?} in {} ({})",
        summary.name,
        experiment,
        summary.complete.join(", ")
    );
}
