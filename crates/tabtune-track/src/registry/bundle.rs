//! What the registry needs of a bundle folder: its `bundle.json` (name, family, CV metrics,
//! files and their sha256) and a checksum check. The full loader is `tabtune-models`'
//! `Bundle::load`; this crate stays free of the model code.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use tabtune_features::io::{ManifestCheck, check_manifest, sha256_file};

use crate::error::{Result, TrackError};

/// The metadata file of a bundle.
pub(crate) const BUNDLE_FILE: &str = "bundle.json";
const BUNDLE_FORMAT: &str = "tabtune-bundle";

/// The parts of `bundle.json` the registry reads.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BundleInfo {
    /// Bundle name.
    pub name: String,
    /// Model family.
    pub family: String,
    /// CV metrics.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// sha256 of every other file.
    pub files: BTreeMap<String, String>,
}

impl BundleInfo {
    /// Reads `dir/bundle.json` and checks its own checksum (see [`verify_bundle`] for the
    /// files).
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(BUNDLE_FILE);
        let text = std::fs::read(&path).map_err(|e| {
            TrackError::bundle(
                &path,
                format!("cannot read ({e}); expected a bundle folder written by tabtune"),
            )
        })?;
        let value: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| TrackError::bundle(&path, format!("not valid JSON: {e}")))?;
        if value.get("format").and_then(serde_json::Value::as_str) != Some(BUNDLE_FORMAT) {
            return Err(TrackError::bundle(&path, format!("not a {BUNDLE_FORMAT}")));
        }
        // Its own checksum: an edited metric must not steer promotion.
        if check_manifest(&value).map_err(|e| TrackError::bundle(&path, e))?
            == ManifestCheck::Absent
        {
            tracing::warn!(
                "{}: has no manifest_sha256 (written by an older tabtune): edits to its metrics \
                 cannot be detected; export the model again to add one",
                path.display()
            );
        }
        serde_json::from_value(value)
            .map_err(|e| TrackError::bundle(&path, format!("invalid: {e}")))
    }
}

/// A full load of a bundle folder (the caller's: `tabtune_models::bundle::Bundle::load`, which
/// this crate must not depend on), returning why it does not load. A registry with one never
/// registers a bundle that does not load, nor moves an alias to such a version.
pub type LoadCheck = Arc<dyn Fn(&Path) -> std::result::Result<(), String> + Send + Sync>;

/// Runs `check` on `dir`, as a bundle error naming the folder.
pub(crate) fn load_checked(check: Option<&LoadCheck>, dir: &Path) -> Result<()> {
    match check {
        Some(check) => check(dir).map_err(|message| {
            TrackError::bundle(dir, format!("does not load ({message}); refusing it"))
        }),
        None => Ok(()),
    }
}

/// The file must be a regular file, not a symbolic link (a link to `/etc/passwd` was once
/// copied into the registry) nor anything else.
pub(crate) fn regular_file(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(TrackError::bundle(
            path,
            "is a symbolic link; a bundle's files must be regular files inside its folder",
        )),
        Ok(_) => Err(TrackError::bundle(
            path,
            "is not a regular file; a bundle's files must be regular files inside its folder",
        )),
        Err(e) => Err(TrackError::bundle(
            path,
            format!("cannot read ({e}); expected a bundle folder written by tabtune"),
        )),
    }
}

/// The files of a bundle folder: `bundle.json` and every file it lists.
pub(crate) fn bundle_files(info: &BundleInfo) -> Vec<String> {
    std::iter::once(BUNDLE_FILE.to_owned())
        .chain(info.files.keys().cloned())
        .collect()
}

/// Reads `bundle.json` and checks it and the files it lists: `bundle.json`'s own checksum
/// (`manifest_sha256`; a bundle written before it existed is accepted with a warning), every
/// file a regular file in the folder (not a symbolic link) whose sha256 matches. Names the first
/// file that does not pass.
pub fn verify_bundle(dir: &Path) -> Result<BundleInfo> {
    let meta_path = dir.join(BUNDLE_FILE);
    regular_file(&meta_path)?;
    let info = BundleInfo::read(dir)?;
    for (file, expected) in &info.files {
        if file.contains('/')
            || file.contains('\\')
            || file.starts_with('.')
            || file.is_empty()
            || file == BUNDLE_FILE
        {
            return Err(TrackError::bundle(
                dir.join(BUNDLE_FILE),
                format!(
                    "lists a file outside the bundle folder: {}",
                    tabtune_features::text::clip(file)
                ),
            ));
        }
        let path = dir.join(file);
        regular_file(&path)?;
        let actual = sha256_file(&path).map_err(|e| TrackError::bundle(&path, e.to_string()))?;
        if &actual != expected {
            return Err(TrackError::bundle(
                &path,
                format!(
                    "sha256 {actual} does not match {expected} in bundle.json: the bundle was modified after it was written; refusing it"
                ),
            ));
        }
    }
    Ok(info)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal bundle folder (checksums right) with `cv_accuracy_mean` = `accuracy`.
    pub(crate) fn fake_bundle(dir: &Path, accuracy: f64) {
        std::fs::create_dir_all(dir).expect("mkdir");
        std::fs::write(dir.join("model.json"), format!("{{\"acc\":{accuracy}}}")).expect("write");
        let sha = sha256_file(&dir.join("model.json")).expect("sha");
        let meta = serde_json::json!({
            "format": "tabtune-bundle", "format_version": 1, "name": "b", "family": "gbdt",
            "metrics": {"cv_accuracy_mean": accuracy, "cv_logloss_mean": 1.0 - accuracy},
            "files": {"model.json": sha},
        });
        std::fs::write(dir.join(BUNDLE_FILE), meta.to_string()).expect("write");
    }

    #[test]
    fn a_modified_file_is_named() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fake_bundle(tmp.path(), 0.5);
        verify_bundle(tmp.path()).expect("intact");
        std::fs::write(tmp.path().join("model.json"), "{}").expect("tamper");
        let err = verify_bundle(tmp.path()).expect_err("tampered");
        let text = err.to_string();
        assert!(
            text.contains("model.json") && text.contains("does not match"),
            "{text}"
        );
    }

    #[test]
    fn an_edited_manifest_and_symlinked_files_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("b");
        fake_bundle(&dir, 0.5);
        let path = dir.join(BUNDLE_FILE);
        let mut meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        tabtune_features::io::seal_manifest(&mut meta);
        std::fs::write(&path, meta.to_string()).expect("write");
        verify_bundle(&dir).expect("sealed and intact");
        // Steering promotion: a better score typed into bundle.json.
        meta["metrics"]["cv_accuracy_mean"] = serde_json::json!(0.999);
        std::fs::write(&path, meta.to_string()).expect("write");
        let err = verify_bundle(&dir).expect_err("edited").to_string();
        assert!(
            err.contains("bundle.json") && err.contains("edited"),
            "{err}"
        );
        #[cfg(unix)]
        {
            fake_bundle(&dir, 0.5);
            // model.json -> a file outside the folder with the same checksum.
            let outside = tmp.path().join("passwd");
            std::fs::copy(dir.join("model.json"), &outside).expect("copy");
            std::fs::remove_file(dir.join("model.json")).expect("rm");
            std::os::unix::fs::symlink(&outside, dir.join("model.json")).expect("link");
            let err = verify_bundle(&dir).expect_err("link").to_string();
            assert!(
                err.contains("model.json") && err.contains("symbolic link"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_folder_without_bundle_json_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = verify_bundle(tmp.path()).expect_err("empty");
        assert!(err.to_string().contains("bundle.json"), "{err}");
    }
}
