//! Model bundles: a self-contained folder with the model (and a neural model's
//! `model.safetensors` weights), its fitted preprocessor and
//! `bundle.json` (format version, family, classes, feature schema, hyperparameters, CV metrics,
//! training-data sha256, tabtune version and git commit, and the sha256 of every file).
//! `bundle.json` carries its own checksum too (`manifest_sha256`, the sha256 of its canonical
//! JSON without that field), so an edited metric or class list is refused like an edited file.
//! Loading verifies the manifest, every checksum, the format version and the structure of
//! everything (schema, classes, preprocessor, every tree and tensor: see [`Bundle::load`]),
//! and refuses a modified, incompatible or malformed bundle, naming the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tabtune_features::io::{
    ManifestCheck, check_manifest, seal_manifest, sha256_file, write_bytes_atomic,
};
use tabtune_features::text::{clip, list};
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
    /// sha256 of this manifest itself (its canonical JSON without this field), set by
    /// [`Bundle::save`]; `None` in bundles written before manifests had one (they load, with a
    /// warning that edits to `bundle.json` cannot be detected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
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
            manifest_sha256: None,
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
    /// into place (an older bundle there is replaced only once the new one is complete). A
    /// symbolic link `dir` is followed (the link stays, its target folder is replaced). Refuses
    /// to replace anything but a bundle folder or an empty folder: a file, a device, or a
    /// folder with other content (`--output ~` must never delete a home folder).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let dir = &output_folder(dir)?;
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
        meta.manifest_sha256 = None;
        let mut files = vec![MODEL_FILE.to_owned(), PREPROCESSOR_FILE.to_owned()];
        files.extend(extra_file_names(&self.model, tmp.path()));
        for file in &files {
            let sha =
                sha256_file(&tmp.path().join(file)).map_err(|e| load_err(dir, e.to_string()))?;
            meta.files.insert(file.clone(), sha);
        }
        let mut value = serde_json::to_value(&meta).expect("metadata always serializes");
        seal_manifest(&mut value);
        let json = serde_json::to_vec_pretty(&value).expect("metadata always serializes");
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
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let old = parent.join(format!(
                ".tabtune-bundle-old-{}-{nanos}",
                std::process::id()
            ));
            std::fs::rename(dir, &old).map_err(io)?;
            std::fs::rename(&staged, dir).map_err(io)?;
            std::fs::remove_dir_all(&old).map_err(io)?;
        } else {
            std::fs::rename(&staged, dir).map_err(io)?;
        }
        Ok(())
    }

    /// Reads a bundle and checks everything before anything may use it:
    /// - `bundle.json`: the format version, its own checksum (`manifest_sha256`; a bundle
    ///   without one loads with a warning), a valid schema, at least two distinct classes equal
    ///   to the schema's target levels;
    /// - every listed file: a regular file in the folder (not a symbolic link) whose sha256
    ///   matches;
    /// - the preprocessor: the same schema and classes, steps that fit the schema;
    /// - the model: its structure (every tree a tree with indices in range, every tensor of the
    ///   declared shape and finite), the preprocessor's output features, the bundle's classes.
    pub fn load(dir: &Path) -> Result<Self> {
        let meta_path = dir.join(BUNDLE_FILE);
        regular_file(&meta_path)?;
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
        if check_manifest(&value).map_err(|e| load_err(&meta_path, e))? == ManifestCheck::Absent {
            tracing::warn!(
                "{}: has no manifest_sha256 (written by an older tabtune): edits to it cannot be \
                 detected; export the model again to add one",
                meta_path.display()
            );
        }
        let meta: BundleMeta = serde_json::from_value(value)
            .map_err(|e| load_err(&meta_path, format!("invalid: {e}")))?;
        meta.schema
            .check()
            .map_err(|e| load_err(&meta_path, format!("invalid schema: {e}")))?;
        check_classes(&meta.classes).map_err(|e| load_err(&meta_path, e))?;
        if meta.classes != meta.schema.classes() {
            return Err(load_err(
                &meta_path,
                format!(
                    "its classes ({}) are not its schema's target levels ({})",
                    list(&meta.classes),
                    list(meta.schema.classes())
                ),
            ));
        }
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
            if file.contains('/') || file.contains('\\') || file.starts_with('.') || file.is_empty()
            {
                return Err(load_err(
                    &meta_path,
                    format!("lists a file outside the bundle folder: {}", clip(file)),
                ));
            }
            let path = dir.join(file);
            regular_file(&path)?;
            let actual = sha256_file(&path).map_err(|e| load_err(&path, e.to_string()))?;
            if &actual != expected {
                return Err(load_err(
                    &path,
                    format!(
                        "sha256 {actual} does not match {} in bundle.json: the bundle was modified after it was written; refusing it",
                        clip(expected)
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
        if preprocessor.schema != meta.schema {
            return Err(load_err(
                dir,
                "the preprocessor's schema is not the one in bundle.json",
            ));
        }
        if model.feature_names() != preprocessor.feature_names() {
            return Err(load_err(
                dir,
                format!(
                    "the model reads {} feature(s) ({}), the preprocessor makes {} ({})",
                    model.feature_names().len(),
                    list(model.feature_names()),
                    preprocessor.feature_names().len(),
                    list(preprocessor.feature_names())
                ),
            ));
        }
        if let AnyModel::Ensemble(e) = &model {
            for i in 0..e.members.len() {
                if let Some(p) = e.member_preprocessor(i)
                    && p.schema != meta.schema
                {
                    return Err(load_err(
                        dir,
                        format!(
                            "ensemble member {i}'s preprocessor has another schema than bundle.json"
                        ),
                    ));
                }
            }
        }
        if model.n_classes() != meta.classes.len() {
            return Err(load_err(
                dir,
                format!(
                    "the model predicts {} classes, bundle.json lists {} ({})",
                    model.n_classes(),
                    meta.classes.len(),
                    list(&meta.classes)
                ),
            ));
        }
        Ok(Self {
            meta,
            model,
            preprocessor,
        })
    }
}

impl Bundle {
    /// Class probabilities of validated raw rows: the bundle's preprocessing and model (an
    /// ensemble of fold models reads them through each member's own preprocessing).
    pub fn predict_proba(&self, table: &tabtune_features::Table) -> Result<ndarray::Array2<f64>> {
        match &self.model {
            AnyModel::Ensemble(e) if e.has_own_preprocessing() => {
                e.predict_table(table, &self.preprocessor)
            }
            model => {
                let m = self
                    .preprocessor
                    .transform(table)
                    .map_err(|e| ModelError::Data(e.to_string()))?;
                model.predict_proba(m.values.view())
            }
        }
    }
}

/// At least two classes, no two alike.
fn check_classes(classes: &[String]) -> std::result::Result<(), String> {
    let distinct: std::collections::BTreeSet<&String> = classes.iter().collect();
    if classes.len() < 2 || distinct.len() != classes.len() {
        return Err(format!(
            "{} class(es), {} distinct ({}); expected at least 2, none repeated",
            classes.len(),
            distinct.len(),
            list(classes)
        ));
    }
    Ok(())
}

/// The file must be a regular file, not a symbolic link (a bundle is self-contained; a link
/// could make it read `/etc/passwd`) nor anything else.
fn regular_file(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) if m.file_type().is_symlink() => Err(load_err(
            path,
            "is a symbolic link; a bundle's files must be regular files inside its folder",
        )),
        Ok(_) => Err(load_err(
            path,
            "is not a regular file; a bundle's files must be regular files inside its folder",
        )),
        Err(e) => Err(load_err(
            path,
            format!("cannot read ({e}); expected a bundle folder written by tabtune"),
        )),
    }
}

/// Where [`Bundle::save`] writes for `dir`: the folder itself, or the target of a symbolic link;
/// refused when something there is not a bundle folder or an empty folder.
fn output_folder(dir: &Path) -> Result<PathBuf> {
    let target = match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => match std::fs::canonicalize(dir) {
            Ok(real) => real,
            // A dangling link: create the folder it names.
            Err(_) => match std::fs::read_link(dir) {
                Ok(link) if link.is_relative() => {
                    dir.parent().map_or_else(|| link.clone(), |p| p.join(&link))
                }
                Ok(link) => link,
                Err(e) => {
                    return Err(ModelError::Io {
                        path: dir.to_owned(),
                        source: e,
                    });
                }
            },
        },
        _ => dir.to_owned(),
    };
    match std::fs::symlink_metadata(&target) {
        Err(_) => Ok(target),
        Ok(m) if m.is_dir() => {
            let mut entries = std::fs::read_dir(&target).map_err(|e| ModelError::Io {
                path: target.clone(),
                source: e,
            })?;
            let empty = entries.next().is_none();
            if empty || target.join(BUNDLE_FILE).is_file() {
                Ok(target)
            } else {
                Err(load_err(
                    dir,
                    "is a folder that is not a tabtune bundle (no bundle.json); refusing to \
                     replace it: choose a new or empty folder",
                ))
            }
        }
        Ok(_) => Err(load_err(
            dir,
            "exists and is not a folder; a bundle is written as a folder: choose a new or empty \
             folder",
        )),
    }
}
