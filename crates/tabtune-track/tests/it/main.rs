//! Integration tests of tabtune-track against the real readers: an MLflow server started by
//! `scripts/mlflow-server.sh` (`MLFLOW_TRACKING_URI`; under `CI=true` a missing server fails)
//! and the `tensorboard` package's `EventAccumulator`.

mod common;
mod mlflow;
mod tensorboard;
