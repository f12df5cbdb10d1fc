//! Model bundles: a self-contained folder with the model (and a neural model's
//! `model.safetensors` weights), its fitted preprocessor and
//! `bundle.json` (format version, family, classes, feature schema, hyperparameters, CV metrics,
//! training-data sha256, tabtune version and git commit, and the sha256 of every file).
//! Loading verifies every checksum and the format version, and refuses a modified or
//! incompatible bundle, naming the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tabtune_features::io::{sha256_file, write_bytes_atomic};
use tabtune_features::{Preprocessor, Schema};

use crate::any::AnyModel;
use crate::error::{ModelError, Result};

/// Name of the bundle format.
pub const BUNDLE_FORMAT: &str = "tabtune-bundle";
/// Version of the bundle format.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;
/// The metadata file of a bundle.
pub const BUNDLE_FILE: &str = "bundle.json";
const MODEL_FILE: &str = "model.json";
const PREPROCESSOR_FILE: &str = "preprocessor.json";

/// Where the training data came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingData {
    /// The file, as given.
    pub file: String,
    /// Its sha256.
    pub sha256: String,
    /// Rows the final model was fitted on.
    pub rows: usize,
}

/// `bundle.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundleMeta {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// [`BUNDLE_FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// Bundle name (its folder's name when written).
    pub name: String,
    /// Model family, as `tabtune train --model` names it.
    pub family: String,
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// The input schema.
    pub schema: Schema,
    /// Hyperparameters.
    pub params: serde_json::Value,
    /// Cross-validation metrics (`cv_accuracy_mean`, `cv_accuracy_std`, `cv_logloss_mean`, ...).
    pub metrics: BTreeMap<String, f64>,
    /// The training data.
    pub training_data: TrainingData,
    /// tabtune version that wrote it.
    pub tabtune_version: String,
    /// Git commit tabtune was built from.
    pub git_commit: String,
    /// Seconds since the Unix epoch when written.
    pub created_unix: u64,
    /// sha256 of every other file in the bundle.
    pub files: BTreeMap<String, String>,
}

/// A model with everything needed to use it on raw data.
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    /// Metadata (`files` is filled in by [`Bundle::save`]).
    pub meta: BundleMeta,
    /// The model.
    pub model: AnyModel,
    /// The fitted preprocessor.
    pub preprocessor: Preprocessor,
}

impl BundleMeta {
    /// Metadata for a new bundle of the running tabtune.
    pub fn new(
        name: &str,
        family: &str,
        preprocessor: &Preprocessor,
        params: serde_json::Value,
        training_data: TrainingData,
    ) -> Self {
        Self {
            format: BUNDLE_FORMAT.to_owned(),
            format_version: BUNDLE_FORMAT_VERSION,
            name: name.to_owned(),
            family: family.to_owned(),
            classes: preprocessor.labels.classes.clone(),
            schema: preprocessor.schema.clone(),
            params,
            metrics: BTreeMap::new(),
            training_data,
            tabtune_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_commit: env!("TABTUNE_GIT_COMMIT").to_owned(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            files: BTreeMap::new(),
        }
    }
}

/// File names (in `dir`) of the model's files besides [`MODEL_FILE`].
fn extra_file_names(model: &AnyModel, dir: &Path) -> Vec<String> {
    model
        .extra_files(&dir.join(MODEL_FILE))
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect()
}

fn load_err(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Load {
        path: path.to_owned(),
        message: message.into(),
    }
}

impl Bundle {
    /// Writes the bundle to `dir` as a whole: into a temporary folder beside it, then renamed
    /// into place (an older bundle there is replaced only once the new one is complete).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let io = |e: std::io::Error| ModelError::Io {
            path: dir.to_owned(),
            source: e,
        };
        std::fs::create_dir_all(&parent).map_err(io)?;
        let tmp = tempfile::Builder::new()
            .prefix(".tabtune-bundle-")
            .tempdir_in(&parent)
            .map_err(io)?;
        self.model.save(&tmp.path().join(MODEL_FILE))?;
        self.preprocessor
            .save(&tmp.path().join(PREPROCESSOR_FILE))
            .map_err(|e| load_err(dir, e.to_string()))?;
        let mut meta = self.meta.clone();
        let mut files = vec![MODEL_FILE.to_owned(), PREPROCESSOR_FILE.to_owned()];
        files.extend(extra_file_names(&self.model, tmp.path()));
        for file in &files {
            let sha =
                sha256_file(&tmp.path().join(file)).map_err(|e| load_err(dir, e.to_string()))?;
            meta.files.insert(file.clone(), sha);
        }
        let json = serde_json::to_vec_pretty(&meta).expect("metadata always serializes");
        write_bytes_atomic(&tmp.path().join(BUNDLE_FILE), &json)
            .map_err(|e| load_err(dir, e.to_string()))?;
        #[cfg(unix)]
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(io)?;
        let staged = tmp.keep();
        if dir.exists() {
            let old = parent.join(format!(".tabtune-bundle-old-{}", std::process::id()));
            std::fs::rename(dir, &old).map_err(io)?;
            std::fs::rename(&staged, dir).map_err(io)?;
            std::fs::remove_dir_all(&old).map_err(io)?;
        } else {
            std::fs::rename(&staged, dir).map_err(io)?;
        }
        Ok(())
    }

    /// Reads a bundle, verifying its format version and the sha256 of every file.
    pub fn load(dir: &Path) -> Result<Self> {
        let meta_path = dir.join(BUNDLE_FILE);
        let text = std::fs::read(&meta_path).map_err(|e| {
            load_err(
                &meta_path,
                format!("cannot read ({e}); expected a bundle folder written by tabtune"),
            )
        })?;
        let value: serde_json::Value = serde_json::from_slice(&text)
            .map_err(|e| load_err(&meta_path, format!("not valid JSON: {e}")))?;
        if value.get("format").and_then(serde_json::Value::as_str) != Some(BUNDLE_FORMAT) {
            return Err(load_err(&meta_path, format!("not a {BUNDLE_FORMAT}")));
        }
        match value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
        {
            Some(v) if v == u64::from(BUNDLE_FORMAT_VERSION) => {}
            other => {
                return Err(load_err(
                    &meta_path,
                    format!(
                        "bundle format version {}, this tabtune reads version {BUNDLE_FORMAT_VERSION}; re-export the model",
                        other.map_or_else(|| "missing".to_owned(), |v| v.to_string())
                    ),
                ));
            }
        }
        let meta: BundleMeta = serde_json::from_value(value)
            .map_err(|e| load_err(&meta_path, format!("invalid: {e}")))?;
        // The model and preprocessor files must be listed; every listed file (a neural model's
        // weights too) must match its checksum.
        for file in [MODEL_FILE, PREPROCESSOR_FILE] {
            if !meta.files.contains_key(file) {
                return Err(load_err(
                    &meta_path,
                    format!("lists no checksum for {file}"),
                ));
            }
        }
        for (file, expected) in &meta.files {
            if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                return Err(load_err(
                    &meta_path,
                    format!("lists a file outside the bundle folder: {file}"),
                ));
            }
            let path = dir.join(file);
            let actual = sha256_file(&path).map_err(|e| load_err(&path, e.to_string()))?;
            if &actual != expected {
                return Err(load_err(
                    &path,
                    format!(
                        "sha256 {actual} does not match {expected} in bundle.json: the bundle was modified after it was written; refusing it"
                    ),
                ));
            }
        }
        let model = AnyModel::load(&dir.join(MODEL_FILE))?;
        for extra in extra_file_names(&model, dir) {
            if !meta.files.contains_key(&extra) {
                return Err(load_err(
                    &meta_path,
                    format!("lists no checksum for {extra}, which the model reads"),
                ));
            }
        }
        let preprocessor = Preprocessor::load(&dir.join(PREPROCESSOR_FILE))
            .map_err(|e| load_err(dir, e.to_string()))?;
        if model.feature_names() != preprocessor.feature_names() {
            return Err(load_err(
                dir,
                "the model's features do not match the preprocessor's output",
            ));
        }
        Ok(Self {
            meta,
            model,
            preprocessor,
        })
    }
}
