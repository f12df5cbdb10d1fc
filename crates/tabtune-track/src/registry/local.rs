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

use super::bundle::{LoadCheck, bundle_files, load_checked, verify_bundle};
use super::{
    Direction, ModelVersion, Promotion, RegisteredModel, Registry, check_alias, check_model_name,
    decide,
};
use crate::error::{Result, TrackError};
use crate::tracker::now_millis;

/// Default folder of the local registry.
pub const DEFAULT_REGISTRY_DIR: &str = "checkpoints/registry";
const MODEL_FILE: &str = "registered-model.json";
const VERSIONS_DIR: &str = "versions";
const LOCK_FILE: &str = ".lock";

/// A registry in a folder.
#[derive(Clone)]
pub struct LocalRegistry {
    root: PathBuf,
    load_check: Option<LoadCheck>,
}

impl std::fmt::Debug for LocalRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRegistry")
            .field("root", &self.root)
            .field("load_check", &self.load_check.is_some())
            .finish()
    }
}

/// Removes a staging folder unless disarmed (a failed copy, a full disk or a bundle that does
/// not load leaves no `.partial` folder behind).
struct Staging(Option<PathBuf>);

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Copies `bundle.json` and the files it lists (each already checked to be a regular file)
/// from `from` into the new folder `to`; nothing else in `from` is copied.
fn copy_bundle(from: &Path, to: &Path, files: &[String]) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| TrackError::io(to, e))?;
    for file in files {
        let source = from.join(file);
        super::bundle::regular_file(&source)?;
        let target = to.join(file);
        std::fs::copy(&source, &target).map_err(|e| TrackError::io(&target, e))?;
    }
    Ok(())
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
    /// A registry in `root` (created on the first registration). Without
    /// [`with_load_check`](Self::with_load_check) bundles are checked by checksums only.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            load_check: None,
        }
    }

    /// Loads every bundle fully before registering it and every version before an alias moves
    /// to it (`check` is the caller's bundle loader).
    #[must_use]
    pub fn with_load_check(mut self, check: LoadCheck) -> Self {
        self.load_check = Some(check);
        self
    }

    fn version_dir(&self, name: &str, version: u64) -> PathBuf {
        self.root
            .join(name)
            .join(VERSIONS_DIR)
            .join(version.to_string())
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
        // Never point an alias at a version that does not load (its files changed on disk, or
        // it was registered before loads were checked).
        let dir = self.version_dir(&model.name, version);
        verify_bundle(&dir)?;
        load_checked(self.load_check.as_ref(), &dir)?;
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
        load_checked(self.load_check.as_ref(), bundle)?;
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
        // Copy the bundle's own files into a staging folder, verify and load the copy, then
        // rename: a version folder is whole, and a failure (a full disk) leaves no staging.
        let staging = versions.join(format!(".{number}.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        let mut guard = Staging(Some(staging.clone()));
        copy_bundle(bundle, &staging, &bundle_files(&info))?;
        let copied = verify_bundle(&staging)?;
        if copied != info {
            return Err(TrackError::bundle(
                bundle,
                "changed while it was being registered; try again",
            ));
        }
        load_checked(self.load_check.as_ref(), &staging)?;
        if target.exists() {
            // Left by a crash between the rename and the record: this number was never recorded.
            std::fs::remove_dir_all(&target).map_err(|e| TrackError::io(&target, e))?;
        }
        std::fs::rename(&staging, &target).map_err(|e| TrackError::io(&target, e))?;
        guard.0 = None;
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
        Ok(self.version_dir(name, version))
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

    /// Recomputes the checksums in `bundle.json` after a file was changed (what an attacker
    /// or a damaged export would leave).
    fn reseal(dir: &Path) {
        let path = dir.join("bundle.json");
        let mut meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let files: Vec<String> = meta["files"]
            .as_object()
            .expect("files")
            .keys()
            .cloned()
            .collect();
        for f in files {
            meta["files"][&f] =
                serde_json::json!(tabtune_features::io::sha256_file(&dir.join(&f)).expect("sha"));
        }
        std::fs::write(&path, meta.to_string()).expect("write");
    }

    /// The stand-in for `Bundle::load` (this crate cannot load models): model.json must be
    /// JSON with an `acc`.
    fn loader() -> LoadCheck {
        std::sync::Arc::new(|dir: &Path| {
            let v: serde_json::Value = serde_json::from_slice(
                &std::fs::read(dir.join("model.json")).map_err(|e| e.to_string())?,
            )
            .map_err(|e| format!("model.json: {e}"))?;
            v.get("acc")
                .and_then(serde_json::Value::as_f64)
                .map(|_| ())
                .ok_or_else(|| "model.json has no acc".to_owned())
        })
    }

    fn no_partials(registry: &LocalRegistry, name: &str) {
        let versions = registry.root().join(name).join(VERSIONS_DIR);
        if let Ok(entries) = std::fs::read_dir(&versions) {
            for e in entries {
                let n = e.expect("entry").file_name().to_string_lossy().into_owned();
                assert!(!n.ends_with(".partial"), "a staging folder was left: {n}");
            }
        }
    }

    #[test]
    fn a_truncated_model_claiming_a_high_score_never_becomes_champion() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let registry = LocalRegistry::new(tmp.path().join("reg")).with_load_check(loader());
        let good = tmp.path().join("good");
        fake_bundle(&good, 0.8);
        register_and_maybe_promote(
            &registry,
            "m",
            &good,
            "cv_accuracy_mean",
            Direction::Maximize,
        )
        .expect("registers");
        let bad = tmp.path().join("bad");
        fake_bundle(&bad, 0.999);
        std::fs::write(bad.join("model.json"), "{\"ac").expect("truncate");
        reseal(&bad);
        let err = register_and_maybe_promote(
            &registry,
            "m",
            &bad,
            "cv_accuracy_mean",
            Direction::Maximize,
        )
        .expect_err("does not load")
        .to_string();
        assert!(
            err.contains("does not load") && err.contains("model.json"),
            "{err}"
        );
        let model = registry.model("m").expect("model");
        assert_eq!(model.versions.len(), 1);
        assert_eq!(model.aliases[CHAMPION], 1);
        no_partials(&registry, "m");
        // A registered version damaged on disk afterwards: no alias moves to it.
        let v1 = registry.bundle_dir("m", 1).expect("dir");
        std::fs::write(v1.join("model.json"), "{}").expect("damage");
        reseal(&v1);
        let err = registry
            .set_alias("m", "challenger", 1)
            .expect_err("does not load")
            .to_string();
        assert!(err.contains("does not load"), "{err}");
        assert!(
            !registry
                .model("m")
                .expect("model")
                .aliases
                .contains_key("challenger")
        );
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_and_unlisted_files_never_enter_the_registry() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let registry = LocalRegistry::new(tmp.path().join("reg"));
        let bundle = tmp.path().join("b");
        fake_bundle(&bundle, 0.5);
        // model.json -> a file outside the bundle, its checksum written into bundle.json.
        let outside = tmp.path().join("passwd");
        std::fs::write(&outside, "root:x:0:0:root:/root:/bin/bash\n").expect("write");
        std::fs::remove_file(bundle.join("model.json")).expect("rm");
        std::os::unix::fs::symlink(&outside, bundle.join("model.json")).expect("link");
        reseal(&bundle);
        let err = registry
            .register("m", &bundle, &BTreeMap::new())
            .expect_err("symlink")
            .to_string();
        assert!(
            err.contains("model.json") && err.contains("symbolic link"),
            "{err}"
        );
        assert!(registry.models().expect("list").is_empty());
        no_partials(&registry, "m");
        // Files the bundle does not list (a link, a stray file) are not copied.
        std::fs::remove_file(bundle.join("model.json")).expect("rm the link");
        fake_bundle(&bundle, 0.5);
        std::os::unix::fs::symlink(&outside, bundle.join("extra")).expect("link");
        std::fs::write(bundle.join("notes.txt"), "x").expect("write");
        registry
            .register("m", &bundle, &BTreeMap::new())
            .expect("registers");
        let dir = registry.bundle_dir("m", 1).expect("dir");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["bundle.json", "model.json"]);
    }

    /// Run in a child process by `a_full_disk_leaves_no_partial_folder`, under a file size
    /// limit: copying the bundle fails part way, as on a full disk.
    #[test]
    #[ignore = "run by a_full_disk_leaves_no_partial_folder in a child process with ulimit -f"]
    fn child_register_under_a_file_size_limit() {
        let root =
            PathBuf::from(std::env::var("TABTUNE_TEST_REGISTRY").expect("set by the parent"));
        let registry = LocalRegistry::new(root.join("reg"));
        let err = registry
            .register("m", &root.join("b"), &BTreeMap::new())
            .expect_err("the copy cannot fit");
        eprintln!("refused as expected: {err}");
        no_partials(&registry, "m");
        assert!(registry.model("m").is_err(), "nothing was recorded");
    }

    #[cfg(unix)]
    #[test]
    fn a_full_disk_leaves_no_partial_folder() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bundle = tmp.path().join("b");
        fake_bundle(&bundle, 0.5);
        // A 300 kB model file: over the child's 100-block (51,200-byte) file size limit.
        std::fs::write(
            bundle.join("model.json"),
            format!("{{\"acc\":0.5,\"pad\":\"{}\"}}", "x".repeat(300_000)),
        )
        .expect("write");
        reseal(&bundle);
        let exe = std::env::current_exe().expect("test binary");
        // SIGXFSZ ignored (kept across exec): a write past the limit fails with EFBIG.
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg("trap '' XFSZ; ulimit -f 100; exec \"$0\" --exact --ignored --nocapture registry::local::tests::child_register_under_a_file_size_limit")
            .arg(&exe)
            .env("TABTUNE_TEST_REGISTRY", tmp.path())
            .status()
            .expect("sh runs");
        assert!(status.success(), "the child test failed: {status}");
        let staged: Vec<String> = std::fs::read_dir(tmp.path().join("reg/m/versions"))
            .map(|d| {
                d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(staged.is_empty(), "left behind: {staged:?}");
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
