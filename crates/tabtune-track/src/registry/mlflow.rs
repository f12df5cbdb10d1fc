//! MLflow's model registry. Registering uploads the bundle as the `bundle` artifact of a run
//! in experiment [`REGISTRY_EXPERIMENT`] and creates a model version with source
//! `runs:/<run>/bundle`; the bundle's CV metrics and family travel as version tags
//! (`tabtune.metric.<name>`, `tabtune.family`, `tabtune.bundle`). Resolving downloads the
//! bundle into a cache folder (default [`DEFAULT_CACHE_DIR`]) and verifies every checksum
//! before handing out the folder.
//!
//! Promotion reads the champion and then sets the alias: MLflow offers no compare-and-set, so
//! two sweeps promoting at the same instant can race (the local registry cannot).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::bundle::{BUNDLE_FILE, LoadCheck, bundle_files, load_checked, verify_bundle};
use super::{ModelVersion, RegisteredModel, Registry, check_alias, check_model_name};
use crate::error::{Result, TrackError};
use crate::local::safe_name;
use crate::mlflow::{MlflowClient, MlflowVersion, model_aliases, model_tags};
use crate::tracker::now_millis;

/// Experiment holding the runs that carry registered bundles.
pub const REGISTRY_EXPERIMENT: &str = "tabtune-registry";
/// Default download cache of MLflow-registered bundles.
pub const DEFAULT_CACHE_DIR: &str = "checkpoints/.mlflow-cache";
const METRIC_TAG: &str = "tabtune.metric.";
const FAMILY_TAG: &str = "tabtune.family";
const BUNDLE_TAG: &str = "tabtune.bundle";
const ARTIFACT: &str = "bundle";

/// MLflow's model registry on one server.
#[derive(Clone)]
pub struct MlflowRegistry {
    client: MlflowClient,
    cache: PathBuf,
    load_check: Option<LoadCheck>,
}

impl std::fmt::Debug for MlflowRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlflowRegistry")
            .field("client", &self.client)
            .field("cache", &self.cache)
            .field("load_check", &self.load_check.is_some())
            .finish()
    }
}

impl MlflowRegistry {
    /// The registry of the server at `uri`, downloading into `cache`.
    pub fn new(uri: &str, cache: impl Into<PathBuf>) -> Result<Self> {
        Ok(Self {
            client: MlflowClient::new(uri)?,
            cache: cache.into(),
            load_check: None,
        })
    }

    /// Loads every bundle fully before registering it and every version (downloaded) before an
    /// alias moves to it (`check` is the caller's bundle loader).
    #[must_use]
    pub fn with_load_check(mut self, check: LoadCheck) -> Self {
        self.load_check = Some(check);
        self
    }

    /// Uses `client` (its timeouts, retries and cancel switch).
    #[must_use]
    pub fn with_client(mut self, client: MlflowClient) -> Self {
        self.client = client;
        self
    }

    /// The client (for reading runs back).
    pub fn client(&self) -> &MlflowClient {
        &self.client
    }

    fn to_version(v: MlflowVersion) -> ModelVersion {
        let mut metrics = BTreeMap::new();
        let mut tags = BTreeMap::new();
        let mut family = String::new();
        let mut bundle_name = String::new();
        for (k, value) in v.tags {
            if let Some(metric) = k.strip_prefix(METRIC_TAG) {
                if let Ok(x) = value.parse() {
                    metrics.insert(metric.to_owned(), x);
                }
            } else if k == FAMILY_TAG {
                family = value;
            } else if k == BUNDLE_TAG {
                bundle_name = value;
            } else {
                tags.insert(k, value);
            }
        }
        ModelVersion {
            version: v.version,
            created_ms: v.created_ms,
            source: v.source,
            run_id: v.run_id,
            bundle_name,
            family,
            metrics,
            tags,
        }
    }

    fn map_missing(&self, e: TrackError, what: String) -> TrackError {
        if e.mlflow_code() == Some("RESOURCE_DOES_NOT_EXIST") {
            TrackError::NotFound {
                what,
                registry: self.describe(),
                hint: String::new(),
            }
        } else {
            e
        }
    }

    /// Downloads `runs:/<run>/<path>` into `target` (a staging folder).
    fn download(&self, source: &str, target: &Path) -> Result<()> {
        let rest = source.strip_prefix("runs:/").ok_or_else(|| {
            TrackError::bundle(
                source,
                "only runs:/<run id>/<path> sources (what tabtune registers) can be downloaded",
            )
        })?;
        let (run_id, rel) = rest.split_once('/').unwrap_or((rest, ""));
        let run = self.client.get_run(run_id)?;
        let artifact_uri = run
            .pointer("/run/info/artifact_uri")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let files = self.client.list_artifacts(run_id, rel)?;
        if files.is_empty() {
            return Err(TrackError::bundle(
                source,
                "the run has no files there; the upload did not finish",
            ));
        }
        std::fs::create_dir_all(target).map_err(|e| TrackError::io(target, e))?;
        for file in files {
            let name = file
                .strip_prefix(rel)
                .unwrap_or(&file)
                .trim_start_matches('/');
            if name.contains('/') || name.starts_with('.') || name.is_empty() {
                continue; // bundles are flat; nothing else belongs in the folder
            }
            let bytes = self.client.download_artifact(&artifact_uri, &file)?;
            let path = target.join(name);
            std::fs::write(&path, bytes).map_err(|e| TrackError::io(&path, e))?;
        }
        Ok(())
    }
}

impl Registry for MlflowRegistry {
    fn describe(&self) -> String {
        format!("MLflow ({})", self.client.uri())
    }

    fn register(
        &self,
        name: &str,
        bundle: &Path,
        tags: &BTreeMap<String, String>,
    ) -> Result<ModelVersion> {
        check_model_name(name)?;
        let info = verify_bundle(bundle)?;
        load_checked(self.load_check.as_ref(), bundle)?;
        let experiment = self.client.experiment_id(REGISTRY_EXPERIMENT)?;
        let run_tags = vec![
            ("tabtune.model".to_owned(), name.to_owned()),
            ("mlflow.source.name".to_owned(), "tabtune".to_owned()),
        ];
        let (run_id, artifact_uri) = self.client.create_run(
            &experiment,
            &format!("register {name} ({})", info.name),
            now_millis(),
            &run_tags,
        )?;
        let now = now_millis();
        let metrics: Vec<(String, f64, u64, u64)> = info
            .metrics
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| (k.clone(), *v, now, 0))
            .collect();
        self.client.log_batch(&run_id, &metrics, &[], &[])?;
        // Only the bundle's own files (each a regular file, checked above), nothing else in
        // the folder.
        for file in bundle_files(&info) {
            self.client.upload_artifact(
                &artifact_uri,
                &format!("{ARTIFACT}/{file}"),
                &bundle.join(&file),
            )?;
        }
        self.client.end_run(&run_id, "FINISHED", now_millis())?;
        self.client.create_registered_model(name)?;
        let mut version_tags: Vec<(String, String)> =
            tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        version_tags.push((FAMILY_TAG.into(), info.family.clone()));
        version_tags.push((BUNDLE_TAG.into(), info.name.clone()));
        for (k, v) in &info.metrics {
            version_tags.push((format!("{METRIC_TAG}{k}"), format!("{v:?}")));
        }
        let version = self.client.create_model_version(
            name,
            &format!("runs:/{run_id}/{ARTIFACT}"),
            &run_id,
            &version_tags,
        )?;
        Ok(Self::to_version(version))
    }

    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<()> {
        check_alias(alias)?;
        if self.load_check.is_some() {
            // Never point an alias at a version that does not load.
            let dir = self.bundle_dir(name, version)?;
            load_checked(self.load_check.as_ref(), &dir)?;
        }
        self.client
            .set_alias(name, alias, version)
            .map_err(|e| self.map_missing(e, format!("version {version} of model {name:?}")))
    }

    fn models(&self) -> Result<Vec<String>> {
        self.client.registered_model_names()
    }

    fn model(&self, name: &str) -> Result<RegisteredModel> {
        check_model_name(name)?;
        let model = self
            .client
            .registered_model(name)
            .map_err(|e| self.map_missing(e, format!("model {name:?}")))?;
        let versions = self
            .client
            .model_versions(name)?
            .into_iter()
            .map(Self::to_version)
            .collect();
        Ok(RegisteredModel {
            name: name.to_owned(),
            versions,
            aliases: model_aliases(&model),
            tags: model_tags(&model),
        })
    }

    fn bundle_dir(&self, name: &str, version: u64) -> Result<PathBuf> {
        check_model_name(name)?;
        let v = self
            .client
            .model_version(name, version)
            .map_err(|e| self.map_missing(e, format!("version {version} of model {name:?}")))?;
        // One cache folder per server, model, version and run: a re-created server never
        // serves a stale copy.
        let dir = self
            .cache
            .join(safe_name(self.client.uri()))
            .join(name)
            .join(format!(
                "{version}-{}",
                safe_name(v.run_id.as_deref().unwrap_or("norun"))
            ));
        if dir.join(BUNDLE_FILE).is_file() && verify_bundle(&dir).is_ok() {
            return Ok(dir);
        }
        let parent = dir.parent().expect("cache folders have parents").to_owned();
        std::fs::create_dir_all(&parent).map_err(|e| TrackError::io(&parent, e))?;
        let staging = tempfile::Builder::new()
            .prefix(".download-")
            .tempdir_in(&parent)
            .map_err(|e| TrackError::io(&parent, e))?;
        self.download(&v.source, staging.path())?;
        // The downloaded copy must match its own checksums before anyone may load it.
        verify_bundle(staging.path()).map_err(|e| match e {
            TrackError::Bundle { path, message } => TrackError::Bundle {
                path,
                message: format!(
                    "{message} (downloaded from {} for models:/{name}/{version})",
                    self.client.uri()
                ),
            },
            other => other,
        })?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| TrackError::io(&dir, e))?;
        }
        let kept = staging.keep();
        std::fs::rename(&kept, &dir).map_err(|e| TrackError::io(&dir, e))?;
        Ok(dir)
    }
}
