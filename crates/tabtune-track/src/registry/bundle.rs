//! What the registry needs of a bundle folder: its `bundle.json` (name, family, CV metrics,
//! files and their sha256) and a checksum check. The full loader is `tabtune-models`'
//! `Bundle::load`; this crate stays free of the model code.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use tabtune_features::io::sha256_file;

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
    /// Reads `dir/bundle.json`.
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
        serde_json::from_value(value)
            .map_err(|e| TrackError::bundle(&path, format!("invalid: {e}")))
    }
}

/// Reads `bundle.json` and checks the sha256 of every file it lists, naming the first file
/// that does not match.
pub fn verify_bundle(dir: &Path) -> Result<BundleInfo> {
    let info = BundleInfo::read(dir)?;
    for (file, expected) in &info.files {
        if file.contains('/') || file.contains('\\') || file.starts_with('.') {
            return Err(TrackError::bundle(
                dir.join(BUNDLE_FILE),
                format!("lists a file outside the bundle folder: {file}"),
            ));
        }
        let path = dir.join(file);
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
    fn a_folder_without_bundle_json_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = verify_bundle(tmp.path()).expect_err("empty");
        assert!(err.to_string().contains("bundle.json"), "{err}");
    }
}
