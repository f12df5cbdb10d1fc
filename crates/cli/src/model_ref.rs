//! `--model` arguments: a bundle folder, or a registry reference (`models:/name@alias`,
//! `models:/name/3`) resolved to a local bundle folder.

use std::path::PathBuf;

use anyhow::Result;
use tabtune_track::registry::{
    DEFAULT_CACHE_DIR, DEFAULT_REGISTRY_DIR, LocalRegistry, MlflowRegistry, ModelRef, Registry,
};

/// Environment variable naming the MLflow tracking server (`--tracking-uri` wins over it).
pub const MLFLOW_TRACKING_URI: &str = tabtune_track::MLFLOW_TRACKING_URI;
/// Environment variable overriding the local registry folder (default `checkpoints/registry`).
pub const TABTUNE_REGISTRY_DIR: &str = "TABTUNE_REGISTRY_DIR";
/// Environment variable overriding the download cache of MLflow-registered bundles.
pub const TABTUNE_MODEL_CACHE: &str = "TABTUNE_MODEL_CACHE";

fn env_path(name: &str, default: &str) -> PathBuf {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// The tracking URI in effect: `explicit`, else `MLFLOW_TRACKING_URI` when set and non-empty.
pub fn tracking_uri(explicit: Option<&str>) -> Option<String> {
    explicit
        .map(str::to_owned)
        .or_else(|| std::env::var(MLFLOW_TRACKING_URI).ok())
        .filter(|u| !u.trim().is_empty())
}

/// The registry in effect: MLflow's model registry when a tracking URI is set (`tracking_uri`,
/// else `MLFLOW_TRACKING_URI`), else the local registry (`TABTUNE_REGISTRY_DIR`, default
/// `checkpoints/registry`).
pub fn open_registry(tracking: Option<&str>) -> Result<Box<dyn Registry>> {
    Ok(match tracking_uri(tracking) {
        Some(uri) => Box::new(MlflowRegistry::new(
            &uri,
            env_path(TABTUNE_MODEL_CACHE, DEFAULT_CACHE_DIR),
        )?),
        None => Box::new(LocalRegistry::new(env_path(
            TABTUNE_REGISTRY_DIR,
            DEFAULT_REGISTRY_DIR,
        ))),
    })
}

/// Resolves a `--model` argument to a bundle folder on this machine.
///
/// A plain path is returned as is (the bundle loader checks it). A `models:/` reference is looked
/// up in the registry: MLflow's model registry when `tracking_uri` (or, when it is `None`,
/// `MLFLOW_TRACKING_URI`) is set, else the local registry under `checkpoints/registry/`.
/// Call it again to pick up a moved alias (hot reload).
pub fn resolve_model(arg: &str, tracking_uri: Option<&str>) -> Result<PathBuf> {
    let Some(reference) = ModelRef::parse(arg)? else {
        return Ok(PathBuf::from(arg));
    };
    let registry = open_registry(tracking_uri)?;
    let dir = registry.resolve(&reference)?;
    tracing::info!(
        "{reference} is {} in the {} registry",
        dir.display(),
        registry.describe()
    );
    Ok(dir)
}
