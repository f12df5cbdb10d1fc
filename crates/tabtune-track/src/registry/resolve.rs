//! Which registry is in effect and what a `--model` argument names: a bundle folder, or a
//! `models:/name@alias` / `models:/name/3` reference resolved to a bundle folder on this
//! machine. The CLI, the experiment layer and the server's hot reload all resolve here.

use std::path::PathBuf;

use super::{
    DEFAULT_CACHE_DIR, DEFAULT_REGISTRY_DIR, LocalRegistry, MlflowRegistry, ModelRef, Registry,
};
use crate::MLFLOW_TRACKING_URI;
use crate::error::Result;

/// Environment variable overriding the local registry folder (default `checkpoints/registry`).
pub const TABTUNE_REGISTRY_DIR: &str = "TABTUNE_REGISTRY_DIR";
/// Environment variable overriding the download cache of MLflow-registered bundles.
pub const TABTUNE_MODEL_CACHE: &str = "TABTUNE_MODEL_CACHE";

fn env_path(name: &str, default: &str) -> PathBuf {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// The tracking URI in effect: `explicit`, else `MLFLOW_TRACKING_URI` when set and non-empty
/// (as MLflow's own clients read it).
pub fn tracking_uri(explicit: Option<&str>) -> Option<String> {
    explicit
        .map(str::to_owned)
        .or_else(|| std::env::var(MLFLOW_TRACKING_URI).ok())
        .filter(|u| !u.trim().is_empty())
}

/// The registry in effect: MLflow's model registry when a tracking URI is in effect (see
/// [`tracking_uri`]), else the local registry (`TABTUNE_REGISTRY_DIR`, default
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
/// A plain path is returned as is (the bundle loader checks it). A `models:/` reference is
/// looked up in the registry of [`open_registry`]`(tracking)`. Call it again to pick up a
/// moved alias (hot reload).
pub fn resolve_model(arg: &str, tracking: Option<&str>) -> Result<PathBuf> {
    let Some(reference) = ModelRef::parse(arg)? else {
        return Ok(PathBuf::from(arg));
    };
    let registry = open_registry(tracking)?;
    let dir = registry.resolve(&reference)?;
    tracing::info!(
        "{reference} is {} in the {} registry",
        dir.display(),
        registry.describe()
    );
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_path_is_returned_and_a_bad_reference_is_named() {
        assert_eq!(
            resolve_model("checkpoints/m", None).expect("a path"),
            PathBuf::from("checkpoints/m")
        );
        let e = resolve_model("models:/", Some("")).expect_err("no name");
        assert!(e.to_string().contains("models:/"), "{e}");
        assert!(e.is_bad_input());
    }

    #[test]
    fn an_explicit_uri_wins_and_blank_means_none() {
        assert_eq!(
            tracking_uri(Some("http://127.0.0.1:1")).as_deref(),
            Some("http://127.0.0.1:1")
        );
        assert_eq!(tracking_uri(Some("  ")), None);
    }
}
