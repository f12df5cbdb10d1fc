//! Reading and writing the models' versioned JSON files (formats in FORMAT.md).

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ModelError, Result};

/// Writes `model` as JSON, atomically.
pub(crate) fn save<T: Serialize>(model: &T, path: &Path) -> Result<()> {
    let json = serde_json::to_vec(model).expect("a model always serializes");
    tabtune_features::io::write_bytes_atomic(path, &json).map_err(|e| ModelError::Load {
        path: path.to_owned(),
        message: format!("cannot write: {e}"),
    })
}

/// Reads a model file, refusing another `format` or `format_version` with a message that
/// names the file.
pub(crate) fn load<T: DeserializeOwned>(path: &Path, format: &str, version: u32) -> Result<T> {
    load_versions(path, format, &[version])
}

/// [`load`] accepting any of `versions` (a format whose new fields are optional).
pub(crate) fn load_versions<T: DeserializeOwned>(
    path: &Path,
    format: &str,
    versions: &[u32],
) -> Result<T> {
    let version = *versions.last().expect("at least one version");
    let err = |message: String| ModelError::Load {
        path: path.to_owned(),
        message,
    };
    let text = std::fs::read(path).map_err(|e| ModelError::Io {
        path: path.to_owned(),
        source: e,
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| err(format!("not valid JSON: {e}")))?;
    if value.get("format").and_then(serde_json::Value::as_str) != Some(format) {
        return Err(err(format!("not a {format} model")));
    }
    match value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(v) if versions.iter().any(|&w| u64::from(w) == v) => {}
        other => {
            return Err(err(format!(
                "format version {}, this tabtune reads version {version}",
                other.map_or_else(|| "missing".to_owned(), |v| v.to_string())
            )));
        }
    }
    serde_json::from_value(value).map_err(|e| err(format!("invalid model: {e}")))
}
