//! The model registry: bundle folders registered as numbered versions of a named model, with
//! aliases (`champion`, `challenger`) and tags, and `models:/name@alias` / `models:/name/3`
//! references resolved to a bundle folder on this machine. Two backends: [`LocalRegistry`] (a
//! folder, default `checkpoints/registry`) and [`MlflowRegistry`] (MLflow's model registry,
//! bundles stored as run artifacts through the server's artifact proxy).
//!
//! Safety: only `bundle.json` and the files it lists are registered, each a regular file (a
//! symbolic link is refused) matching its checksum, `bundle.json` matching its own; with a
//! [`LoadCheck`] (the caller's full bundle load) a bundle that does not load is never
//! registered, and an alias is never moved to a version that does not load.

mod bundle;
mod local;
mod mlflow;
mod resolve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use bundle::{BundleInfo, LoadCheck, verify_bundle};
pub use local::{DEFAULT_REGISTRY_DIR, LocalRegistry};
pub use mlflow::{DEFAULT_CACHE_DIR, MlflowRegistry, REGISTRY_EXPERIMENT};
pub use resolve::{
    TABTUNE_MODEL_CACHE, TABTUNE_REGISTRY_DIR, open_registry, resolve_model, tracking_uri,
};

use crate::error::{Result, TrackError};

/// The alias automatic promotion moves.
pub const CHAMPION: &str = "champion";

/// A parsed `models:/...` reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    /// Registered model name.
    pub name: String,
    /// Which version.
    pub selector: Selector,
}

/// The version part of a [`ModelRef`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// `models:/name/3`.
    Version(u64),
    /// `models:/name@champion`.
    Alias(String),
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.selector {
            Selector::Version(v) => write!(f, "models:/{}/{v}", self.name),
            Selector::Alias(a) => write!(f, "models:/{}@{a}", self.name),
        }
    }
}

fn reference_err(reference: &str, message: impl Into<String>) -> TrackError {
    TrackError::Reference {
        reference: reference.to_owned(),
        message: message.into(),
    }
}

/// Checks a registered model name: letters, digits, `_`, `-`, `.`, not starting with `.`.
pub fn check_model_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(reference_err(
            name,
            "a model name is letters, digits, `_`, `-` and `.`, not starting with `.`",
        ));
    }
    Ok(())
}

/// Checks an alias: letters, digits, `_` and `-`; not `latest` and not `v<number>` (MLflow's
/// rules, so an alias works in both backends).
pub fn check_alias(alias: &str) -> Result<()> {
    let version_like = alias.len() > 1
        && (alias.starts_with('v') || alias.starts_with('V'))
        && alias[1..].chars().all(|c| c.is_ascii_digit());
    if alias.is_empty()
        || !alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        || alias.eq_ignore_ascii_case("latest")
        || version_like
    {
        return Err(reference_err(
            alias,
            "an alias is letters, digits, `_` and `-`, and neither `latest` nor `v<number>`",
        ));
    }
    Ok(())
}

impl ModelRef {
    /// Parses `models:/name@alias` or `models:/name/<version>`; `None` when `text` does not
    /// start with `models:/` (a plain path).
    pub fn parse(text: &str) -> Result<Option<Self>> {
        let Some(rest) = text.strip_prefix("models:/") else {
            return Ok(None);
        };
        let expected = "expected models:/NAME@ALIAS or models:/NAME/VERSION";
        let (name, selector) = if let Some((name, alias)) = rest.split_once('@') {
            check_alias(alias).map_err(|e| reference_err(text, format!("{e}; {expected}")))?;
            (name, Selector::Alias(alias.to_owned()))
        } else if let Some((name, version)) = rest.rsplit_once('/') {
            let version: u64 = version.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
                reference_err(
                    text,
                    format!("version `{version}` is not a positive whole number; {expected}"),
                )
            })?;
            (name, Selector::Version(version))
        } else {
            return Err(reference_err(text, expected));
        };
        check_model_name(name).map_err(|e| reference_err(text, format!("{e}; {expected}")))?;
        Ok(Some(Self {
            name: name.to_owned(),
            selector,
        }))
    }
}

/// Whether a larger or a smaller score is better (the workspace's one `Direction`).
pub use tabtune_features::Direction;

/// One registered version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// Version number (1, 2, ...).
    pub version: u64,
    /// When registered, ms since the Unix epoch.
    pub created_ms: u64,
    /// Where it came from (the bundle folder registered; MLflow: `runs:/<run>/bundle`).
    pub source: String,
    /// MLflow run holding the bundle (MLflow backend).
    pub run_id: Option<String>,
    /// The bundle's name.
    pub bundle_name: String,
    /// The bundle's model family.
    pub family: String,
    /// The bundle's CV metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// A registered model with its versions and aliases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    /// Name.
    pub name: String,
    /// Versions, oldest first.
    pub versions: Vec<ModelVersion>,
    /// Alias -> version.
    pub aliases: BTreeMap<String, u64>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl RegisteredModel {
    /// Version `version`.
    pub fn version(&self, version: u64) -> Option<&ModelVersion> {
        self.versions.iter().find(|v| v.version == version)
    }

    /// The aliases pointing at `version`.
    pub fn aliases_of(&self, version: u64) -> Vec<&str> {
        self.aliases
            .iter()
            .filter(|(_, v)| **v == version)
            .map(|(a, _)| a.as_str())
            .collect()
    }

    /// The model as `tabtune registry show --json` prints it: every version with its own
    /// aliases.
    pub fn to_json(&self) -> serde_json::Value {
        let versions: Vec<serde_json::Value> = self
            .versions
            .iter()
            .map(|v| {
                let mut value = serde_json::to_value(v).expect("versions always serialize");
                value["aliases"] = serde_json::json!(self.aliases_of(v.version));
                value["bundle"] = value["bundle_name"].take();
                value
                    .as_object_mut()
                    .expect("a version is an object")
                    .remove("bundle_name");
                value
            })
            .collect();
        serde_json::json!({
            "name": self.name,
            "aliases": self.aliases,
            "tags": self.tags,
            "versions": versions,
        })
    }
}

/// What automatic promotion decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    /// Whether the alias now points at the new version.
    pub promoted: bool,
    /// The alias considered.
    pub alias: String,
    /// The new version.
    pub version: u64,
    /// The version the alias pointed at before, if any.
    pub previous: Option<u64>,
    /// The metric compared.
    pub metric: String,
    /// The new version's score.
    pub score: f64,
    /// The previous holder's score, if it had one.
    pub previous_score: Option<f64>,
    /// Why, in words.
    pub reason: String,
}

/// Decides whether `version` takes `alias` from its current holder (shared by the backends).
pub(crate) fn decide(
    model: &RegisteredModel,
    alias: &str,
    version: u64,
    metric: &str,
    direction: Direction,
) -> Result<Promotion> {
    let new = model.version(version).ok_or_else(|| TrackError::NotFound {
        what: format!("version {version} of {:?}", model.name),
        registry: String::new(),
        hint: String::new(),
    })?;
    let score = *new.metrics.get(metric).ok_or_else(|| {
        TrackError::bundle(
            &new.source,
            format!(
                "version {version} has no metric {metric:?} to compare (it has: {})",
                new.metrics.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let previous = model.aliases.get(alias).copied();
    let previous_score = previous
        .and_then(|p| model.version(p))
        .and_then(|p| p.metrics.get(metric).copied());
    let (promoted, reason) = match (previous, previous_score) {
        (None, _) => (true, format!("no {alias} yet")),
        (Some(p), _) if p == version => (false, format!("version {version} already is {alias}")),
        (Some(p), None) => (true, format!("{alias} (version {p}) has no {metric}")),
        (Some(p), Some(old)) if direction.beats(score, old) => (
            true,
            format!("{metric} {score:.6} beats {old:.6} of version {p}"),
        ),
        (Some(p), Some(old)) => (
            false,
            format!("{metric} {score:.6} does not beat {old:.6} of version {p}"),
        ),
    };
    Ok(Promotion {
        promoted,
        alias: alias.to_owned(),
        version,
        previous,
        metric: metric.to_owned(),
        score,
        previous_score,
        reason,
    })
}

/// A model registry backend.
pub trait Registry: Send + Sync {
    /// Which registry, for messages (`local (checkpoints/registry)`, `MLflow (http://...)`).
    fn describe(&self) -> String;
    /// Registers the bundle folder `bundle` (checksums verified first) as the next version of
    /// `name`, creating the model when new.
    fn register(
        &self,
        name: &str,
        bundle: &Path,
        tags: &BTreeMap<String, String>,
    ) -> Result<ModelVersion>;
    /// Points `alias` of `name` at `version`.
    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<()>;
    /// Names of every registered model.
    fn models(&self) -> Result<Vec<String>>;
    /// One model with its versions and aliases.
    fn model(&self, name: &str) -> Result<RegisteredModel>;
    /// The bundle folder of a version on this machine (MLflow: downloaded into a cache and
    /// verified).
    fn bundle_dir(&self, name: &str, version: u64) -> Result<PathBuf>;
    /// Moves `alias` to `version` if its `metric` beats the current holder's (ties keep the
    /// holder). The local backend decides under its lock.
    fn promote_if_better(
        &self,
        name: &str,
        alias: &str,
        version: u64,
        metric: &str,
        direction: Direction,
    ) -> Result<Promotion> {
        let promotion = decide(&self.model(name)?, alias, version, metric, direction)?;
        if promotion.promoted {
            self.set_alias(name, alias, version)?;
        }
        Ok(promotion)
    }

    /// The version a reference selects.
    fn version_of(&self, reference: &ModelRef) -> Result<u64> {
        match &reference.selector {
            Selector::Version(v) => Ok(*v),
            Selector::Alias(alias) => {
                let model = self.model(&reference.name)?;
                model.aliases.get(alias).copied().ok_or_else(|| {
                    TrackError::NotFound {
                        what: format!("alias {alias:?} of model {:?}", reference.name),
                        registry: self.describe(),
                        hint: if model.aliases.is_empty() {
                            "; it has no aliases yet (tabtune registry promote NAME VERSION --alias ALIAS)".into()
                        } else {
                            format!(
                                "; its aliases: {}",
                                model.aliases.keys().cloned().collect::<Vec<_>>().join(", ")
                            )
                        },
                    }
                })
            }
        }
    }

    /// Resolves a reference to a bundle folder on this machine.
    fn resolve(&self, reference: &ModelRef) -> Result<PathBuf> {
        let version = self.version_of(reference)?;
        self.bundle_dir(&reference.name, version)
    }
}

/// Registers `bundle` as a new version of `name` and moves [`CHAMPION`] to it only if its CV
/// `metric` (from `bundle.json`) beats the current champion's.
pub fn register_and_maybe_promote(
    registry: &dyn Registry,
    name: &str,
    bundle: &Path,
    metric: &str,
    direction: Direction,
) -> Result<(ModelVersion, Promotion)> {
    register_tagged_and_maybe_promote(registry, name, bundle, &BTreeMap::new(), metric, direction)
}

/// [`register_and_maybe_promote`] with version `tags`.
pub fn register_tagged_and_maybe_promote(
    registry: &dyn Registry,
    name: &str,
    bundle: &Path,
    tags: &BTreeMap<String, String>,
    metric: &str,
    direction: Direction,
) -> Result<(ModelVersion, Promotion)> {
    let info = BundleInfo::read(bundle)?;
    if !info.metrics.contains_key(metric) {
        return Err(TrackError::bundle(
            bundle.join("bundle.json"),
            format!(
                "has no metric {metric:?} to compare (it has: {})",
                info.metrics.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let version = registry.register(name, bundle, tags)?;
    let promotion =
        registry.promote_if_better(name, CHAMPION, version.version, metric, direction)?;
    if promotion.promoted {
        tracing::info!(
            "{name}: version {} is the new {CHAMPION} ({})",
            version.version,
            promotion.reason
        );
    } else {
        tracing::info!(
            "{name}: version {} registered; {CHAMPION} stays ({})",
            version.version,
            promotion.reason
        );
    }
    Ok((version, promotion))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        assert_eq!(ModelRef::parse("checkpoints/x").expect("plain"), None);
        assert_eq!(
            ModelRef::parse("models:/obesity@champion").expect("alias"),
            Some(ModelRef {
                name: "obesity".into(),
                selector: Selector::Alias("champion".into())
            })
        );
        assert_eq!(
            ModelRef::parse("models:/obesity/3")
                .expect("version")
                .expect("some")
                .selector,
            Selector::Version(3)
        );
        for bad in [
            "models:/",
            "models:/obesity",
            "models:/obesity/0",
            "models:/obesity/x",
            "models:/ob esity@champion",
            "models:/obesity@latest",
            "models:/obesity@v2",
            "models:/../x/1",
        ] {
            let err = ModelRef::parse(bad).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn directions_compare_strictly() {
        assert!(Direction::Maximize.beats(0.9, 0.8));
        assert!(!Direction::Maximize.beats(0.8, 0.8));
        assert!(Direction::Minimize.beats(0.3, 0.4));
    }
}
