//! MLflow: the REST client and the background tracking sink.

mod client;
mod tracker;

pub use client::{
    Cancel, MAX_METRICS_PER_BATCH, MAX_PARAM_VALUE_LEN, MAX_PARAMS_PER_BATCH, MAX_TAGS_PER_BATCH,
    MlflowClient, MlflowVersion, Timeouts,
};
pub(crate) use client::{model_aliases, model_tags};
pub use tracker::{DEFAULT_QUEUE, Mlflow};
