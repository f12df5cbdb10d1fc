//! The local registry: a folder.
//!
//! ```text
//! <root>/.lock                      held (OS file lock) by whoever changes the registry
//! <root>/<name>/registered-model.json versions, aliases, tags (written atomically)
//! <root>/<name>/versions/<n>/       a verified copy of the registered bundle
//! ```
//! Every change runs under the lock, so two processes registering at once get distinct version
//! numbers and promotion compares against the champion of the moment.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tabtune_features::io::write_bytes_atomic;

use super::bundle::verify_bundle;
use super::{
    Direction, ModelVersion, Promotion, RegisteredModel, Registry, check_alias, check_model_name,
    decide,
};
use crate::error::{Result, TrackError};
use crate::local::copy_tree;
use crate::tracker::now_millis;

/// Default folder of the local registry.
pub const DEFAULT_REGISTRY_DIR: &str = "checkpoints/registry";
const MODEL_FILE: &str = "registered-model.json";
const VERSIONS_DIR: &str = "versions";
const LOCK_FILE: &str = ".lock";

/// A registry in a folder.
#[derive(Clone, Debug)]
pub struct LocalRegistry {
    root: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct ModelFile {
    name: String,
    created_ms: u64,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    aliases: BTreeMap<String, u64>,
    #[serde(default)]
    versions: Vec<ModelVersion>,
}

impl From<ModelFile> for RegisteredModel {
    fn from(m: ModelFile) -> Self {
        Self {
            name: m.name,
            versions: m.versions,
            aliases: m.aliases,
            tags: m.tags,
        }
    }
}

/// Holds the registry's lock until dropped.
struct Lock(File);

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl LocalRegistry {
    /// A registry in `root` (created on the first registration).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The registry's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> Result<Lock> {
        std::fs::create_dir_all(&self.root).map_err(|e| TrackError::io(&self.root, e))?;
        let path = self.root.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| TrackError::io(&path, e))?;
        file.lock().map_err(|e| TrackError::io(&path, e))?;
        Ok(Lock(file))
    }

    fn model_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join(MODEL_FILE)
    }

    fn read(&self, name: &str) -> Result<Option<ModelFile>> {
        check_model_name(name)?;
        let path = self.model_path(name);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                TrackError::corrupt(&path, format!("not a tabtune registry record: {e}"))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TrackError::io(&path, e)),
        }
    }

    fn write(&self, model: &ModelFile) -> Result<()> {
        let json = serde_json::to_vec_pretty(model).expect("registry records always serialize");
        write_bytes_atomic(&self.model_path(&model.name), &json)?;
        Ok(())
    }

    fn not_found(&self, name: &str) -> TrackError {
        let names = self.models().unwrap_or_default();
        TrackError::NotFound {
            what: format!("model {name:?}"),
            registry: self.describe(),
            hint: if names.is_empty() {
                "; nothing is registered yet (tabtune registry register --name NAME --bundle DIR)"
                    .into()
            } else {
                format!("; registered: {}", names.join(", "))
            },
        }
    }

    fn existing(&self, name: &str) -> Result<ModelFile> {
        self.read(name)?.ok_or_else(|| self.not_found(name))
    }

    fn set_alias_locked(&self, model: &mut ModelFile, alias: &str, version: u64) -> Result<()> {
        check_alias(alias)?;
        if !model.versions.iter().any(|v| v.version == version) {
            return Err(TrackError::NotFound {
                what: format!("version {version} of model {:?}", model.name),
                registry: self.describe(),
                hint: format!(
                    "; versions: {}",
                    model
                        .versions
                        .iter()
                        .map(|v| v.version.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        model.aliases.insert(alias.to_owned(), version);
        self.write(model)
    }
}

impl Registry for LocalRegistry {
    fn describe(&self) -> String {
        format!("local ({})", self.root.display())
    }

    fn register(
        &self,
        name: &str,
        bundle: &Path,
        tags: &BTreeMap<String, String>,
    ) -> Result<ModelVersion> {
        check_model_name(name)?;
        let info = verify_bundle(bundle)?;
        let _lock = self.lock()?;
        let mut model = self.read(name)?.unwrap_or_else(|| ModelFile {
            name: name.to_owned(),
            created_ms: now_millis(),
            tags: BTreeMap::new(),
            aliases: BTreeMap::new(),
            versions: Vec::new(),
        });
        let number = model.versions.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        let versions = self.root.join(name).join(VERSIONS_DIR);
        let target = versions.join(number.to_string());
        // Copy into a staging folder, verify the copy, then rename: a version folder is whole.
        let staging = versions.join(format!(".{number}.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        copy_tree(bundle, &staging)?;
        if let Err(e) = verify_bundle(&staging) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        if target.exists() {
            // Left by a crash between the rename and the record: this number was never recorded.
            std::fs::remove_dir_all(&target).map_err(|e| TrackError::io(&target, e))?;
        }
        std::fs::rename(&staging, &target).map_err(|e| TrackError::io(&target, e))?;
        let version = ModelVersion {
            version: number,
            created_ms: now_millis(),
            source: std::fs::canonicalize(bundle)
                .unwrap_or_else(|_| bundle.to_owned())
                .display()
                .to_string(),
            run_id: None,
            bundle_name: info.name,
            family: info.family,
            metrics: info.metrics,
            tags: tags.clone(),
        };
        model.versions.push(version.clone());
        self.write(&model)?;
        Ok(version)
    }

    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<()> {
        let _lock = self.lock()?;
        let mut model = self.existing(name)?;
        self.set_alias_locked(&mut model, alias, version)
    }

    fn models(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(TrackError::io(&self.root, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| TrackError::io(&self.root, e))?;
            if entry.path().join(MODEL_FILE).is_file() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn model(&self, name: &str) -> Result<RegisteredModel> {
        Ok(self.existing(name)?.into())
    }

    fn bundle_dir(&self, name: &str, version: u64) -> Result<PathBuf> {
        let model = self.existing(name)?;
        if !model.versions.iter().any(|v| v.version == version) {
            return Err(TrackError::NotFound {
                what: format!("version {version} of model {name:?}"),
                registry: self.describe(),
                hint: format!(
                    "; versions: {}",
                    model
                        .versions
                        .iter()
                        .map(|v| v.version.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        Ok(self
            .root
            .join(name)
            .join(VERSIONS_DIR)
            .join(version.to_string()))
    }

    fn promote_if_better(
        &self,
        name: &str,
        alias: &str,
        version: u64,
        metric: &str,
        direction: Direction,
    ) -> Result<Promotion> {
        check_alias(alias)?;
        let _lock = self.lock()?;
        let mut model = self.existing(name)?;
        let promotion = decide(
            &RegisteredModel {
                name: model.name.clone(),
                versions: model.versions.clone(),
                aliases: model.aliases.clone(),
                tags: model.tags.clone(),
            },
            alias,
            version,
            metric,
            direction,
        )?;
        if promotion.promoted {
            self.set_alias_locked(&mut model, alias, version)?;
        }
        Ok(promotion)
    }
}

#[cfg(test)]
mod tests {
    use super::super::bundle::tests::fake_bundle;
    use super::super::{CHAMPION, ModelRef, register_and_maybe_promote};
    use super::*;

    #[test]
    fn promotion_moves_the_champion_only_on_a_better_score() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let registry = LocalRegistry::new(tmp.path().join("reg"));
        let scores = [0.80, 0.85, 0.83, 0.85];
        let mut promoted = Vec::new();
        for (i, score) in scores.iter().enumerate() {
            let bundle = tmp.path().join(format!("b{i}"));
            fake_bundle(&bundle, *score);
            let (v, p) = register_and_maybe_promote(
                &registry,
                "obesity",
                &bundle,
                "cv_accuracy_mean",
                Direction::Maximize,
            )
            .expect("register");
            assert_eq!(v.version, i as u64 + 1);
            promoted.push(p.promoted);
        }
        assert_eq!(promoted, vec![true, true, false, false]);
        let model = registry.model("obesity").expect("model");
        assert_eq!(model.aliases[CHAMPION], 2);
        let dir = registry
            .resolve(
                &ModelRef::parse("models:/obesity@champion")
                    .expect("p")
                    .expect("s"),
            )
            .expect("resolve");
        assert_eq!(dir, tmp.path().join("reg/obesity/versions/2"));
        verify_bundle(&dir).expect("the copy is intact");
    }

    #[test]
    fn lookups_name_what_exists() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let registry = LocalRegistry::new(tmp.path());
        let err = registry.model("nope").expect_err("missing");
        assert!(
            err.to_string().contains("nothing is registered yet"),
            "{err}"
        );
        fake_bundle(&tmp.path().join("b"), 0.5);
        registry
            .register("m", &tmp.path().join("b"), &BTreeMap::new())
            .expect("register");
        let err = registry.model("nope").expect_err("missing");
        assert!(err.to_string().contains("registered: m"), "{err}");
        let err = registry
            .resolve(
                &ModelRef::parse("models:/m@champion")
                    .expect("p")
                    .expect("s"),
            )
            .expect_err("no alias");
        assert!(err.to_string().contains("no aliases yet"), "{err}");
        let err = registry.set_alias("m", "champion", 7).expect_err("no v7");
        assert!(err.to_string().contains("versions: 1"), "{err}");
    }

    #[test]
    fn a_tampered_bundle_is_not_registered() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bundle = tmp.path().join("b");
        fake_bundle(&bundle, 0.5);
        std::fs::write(bundle.join("model.json"), "{}").expect("tamper");
        let registry = LocalRegistry::new(tmp.path().join("reg"));
        let err = registry
            .register("m", &bundle, &BTreeMap::new())
            .expect_err("tampered");
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(registry.models().expect("list").is_empty());
    }

    #[test]
    fn concurrent_writers_get_distinct_versions() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bundle = tmp.path().join("b");
        fake_bundle(&bundle, 0.5);
        let root = tmp.path().join("reg");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (root, bundle) = (root.clone(), bundle.clone());
                std::thread::spawn(move || {
                    LocalRegistry::new(root)
                        .register("m", &bundle, &BTreeMap::new())
                        .expect("register")
                        .version
                })
            })
            .collect();
        let mut versions: Vec<u64> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        versions.sort_unstable();
        assert_eq!(versions, vec![1, 2, 3, 4]);
    }
}
